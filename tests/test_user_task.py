"""A task of the user's own goes through every command with no edit outside its own file.

`tests/fixtures/addition_task.py` is loaded the way a user's task is (`--task FILE:Class`); the
commands below are the ones a user runs: tasks, data, score, eval, difficulty, curate, train sft,
train grpo and reproduce --quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gengap.cli import app
from gengap.tasks import build_task

TASK = str(Path(__file__).parent / "fixtures" / "addition_task.py") + ":AdditionTask"


def run(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_user_task_builds_and_declares_its_contract() -> None:
    task = build_task(TASK, words=["digits=2", "ood_digits=3"])
    assert task.config.digits == 2
    assert [s.role for s in task.splits.values()] == ["warmup", "train", "validation", "test",
                                                     "ood"]
    sample = task.sample("longer", 3, 0)
    assert sample.id.startswith("q-") and len(sample.fields["a"].__str__()) == 3
    assert task.sample_from_row(task.row(sample)) == sample
    with pytest.raises(Exception, match="40 samples"):
        task.sample("test", 40, 0)


def test_bad_options_and_specs_are_clear(tmp_path: Path) -> None:
    result = run("tasks", "--task", TASK, "-O", "digits=3")
    assert result.exit_code == 2 and "digits < ood_digits" in result.output
    result = run("tasks", "--task", TASK, "-O", "digitz=3")
    assert result.exit_code == 2 and "unknown key 'digitz'" in result.output
    result = run("tasks", "--task", "no_such_module:Task")
    assert result.exit_code == 2 and "cannot import" in result.output
    result = run("tasks", "--task", str(tmp_path / "missing.py") + ":Task")
    assert result.exit_code == 2 and "no such file" in result.output
    result = run("eval", "--model", "tiny", "--task", TASK, "--n", "41", "--splits", "test",
                 "--out", tmp_path / "e")
    assert result.exit_code == 2 and "holds 40 samples" in result.output


@pytest.mark.slow
def test_every_command_runs_the_user_task(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    result = run("tasks", "--task", TASK)
    assert result.exit_code == 0 and "longer" in result.output and "digits" in result.output

    data = tmp_path / "test.jsonl"
    assert run("data", "--task", TASK, "--split", "test", "--out", data).exit_code == 0
    rows = read(data)
    assert len(rows) == 40 and rows[0]["sft_target"] == rows[0]["answer"]
    scored_in = tmp_path / "completions.jsonl"
    scored_in.write_text("".join(json.dumps({**r, "completion": c}) + "\n"
                                 for r, c in zip(rows, [rows[0]["answer"], "x"])))
    result = run("score", "--task", TASK, "--input", scored_in, "--output", tmp_path / "s.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["correct"] for r in read(tmp_path / "s.jsonl")] == [True, False]

    result = run("eval", "--model", "tiny", "--task", TASK, "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(results["results"]) == {"test", "longer"}  # test and OOD roles, whole splits
    assert results["results"]["test"]["n"] == 40
    assert 0 <= results["results"]["test"]["off_by_one"] <= 1  # the task's own metric
    assert set(results["results"]["test"]["by_category"]["carry"]) <= {"True", "False"}
    assert results["splits"]["longer"]["axis"] == "digits"

    diff = tmp_path / "difficulty"
    result = run("difficulty", "--model", "tiny", "--task", TASK, "--n", "48", "--k", "4",
                 "--out", diff, "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((diff / "summary.json").read_text())
    assert summary["n"] == 48 and summary["split"] == "train"

    sft = tmp_path / "sft.jsonl"
    assert run("curate", "--difficulty", diff, "--variant", "all", "--out", sft).exit_code == 0
    result = run("train", "sft", "--config", "sft-tiny", "--model", "tiny", "--data", sft,
                 "--out", tmp_path / "arm", "steps=2", "batch_size=8", "save_every=2",
                 "eval_n=8", "grad_norm_every=0")
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load((tmp_path / "arm" / "recipe.yaml").read_text())
    assert recipe["task"] == TASK and recipe["task_options"]["digits"] == 1  # from the data

    result = run("train", "grpo", "--config", "grpo-tiny", "--model", "tiny", "--task", TASK,
                 "--out", tmp_path / "grpo", "steps=2", "batch_size=2", "num_generations=4",
                 "save_every=2", "eval_n=8")
    assert result.exit_code == 0, result.output
    budget = json.loads((tmp_path / "grpo" / "budget.json").read_text())
    assert budget["dataset_rows"] == 300  # the finite train split, whole

    preset = tmp_path / "mine.yaml"
    preset.write_text(yaml.safe_dump({
        "task": TASK, "seeds": [0], "difficulty_n": None, "k": 4,
        "arms": ["sft-all", "grpo"], "hard_ratios": [], "steps": 2, "batch_size": 8,
        "eval_every": 2, "eval_n": 8, "sft_lrs": [1e-3], "grpo_lrs": [1e-4],
        "sweep_val_n": 8, "grpo": {"num_generations": 4},
        "quick": {"difficulty_n": 32}}))
    result = run("reproduce", "--preset", preset, "--quick", "--out", tmp_path / "study")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "study" / "report.md").read_text()
    assert "`longer` (ood, digits)" in report and "| grpo |" in report
