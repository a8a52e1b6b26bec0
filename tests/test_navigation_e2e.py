"""Navigation through every command: tasks, data, score, eval, difficulty, curate, train sft,
train grpo and reproduce --quick (a tiny cold start; `tests/fixtures/navigation_tiny.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gengap.cli import app

TASK = str(Path(__file__).parent / "fixtures" / "navigation_tiny.py") + ":TinyNavigation"
OPTIONS = ["-O", "prompt_style=compact", "-O", "test_routes=4", "-O", "validation_routes=4"]


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_every_command_runs_navigation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    result = run("tasks", "--task", "navigation")
    assert result.exit_code == 0 and "test-ood-rule" in result.output

    data = tmp_path / "train.jsonl"
    assert run("data", "--task", TASK, *OPTIONS, "--split", "train", "--n", "6",
               "--out", data).exit_code == 0
    rows = read(data)
    assert len(rows) == 6 and all("|" in r["sft_target"] for r in rows)
    scored_in = tmp_path / "completions.jsonl"
    scored_in.write_text("".join(json.dumps({**r, "completion": c}) + "\n"
                                 for r, c in zip(rows, [rows[0]["sft_target"], "x"])))
    result = run("score", "--task", TASK, *OPTIONS, "--input", scored_in,
                 "--output", tmp_path / "s.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["correct"] for r in read(tmp_path / "s.jsonl")] == [True, False]

    result = run("eval", "--model", "tiny", "--task", TASK, *OPTIONS, "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert set(results["results"]) == {"test-id", "test-ood-rule"}
    assert results["results"]["test-id"]["n"] == 4
    assert 0 <= results["results"]["test-id"]["route_progress"] <= 1
    assert results["splits"]["test-ood-rule"]["axis"] == "rule"

    diff = tmp_path / "difficulty"
    result = run("difficulty", "--model", "tiny", "--task", TASK, *OPTIONS, "--n", "12",
                 "--k", "2", "--out", diff, "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((diff / "summary.json").read_text())
    assert summary["n"] == 12 and summary["split"] == "train"

    sft = tmp_path / "sft.jsonl"
    assert run("curate", "--difficulty", diff, "--variant", "all", "--out", sft).exit_code == 0
    curated = read(sft)
    assert len(curated) == 12 and "A_" not in curated[0]["prompt"][0]["content"]
    result = run("train", "sft", "--config", "sft-tiny", "--model", "tiny", "--data", sft,
                 "--out", tmp_path / "arm", "steps=2", "batch_size=4", "save_every=2",
                 "eval_n=2", "grad_norm_every=0", "max_length=512")
    assert result.exit_code == 0, result.output

    result = run("train", "grpo", "--config", "grpo-tiny", "--model", "tiny", "--task", TASK,
                 *OPTIONS, "--out", tmp_path / "grpo", "steps=2", "batch_size=2",
                 "num_generations=4", "save_every=2", "eval_n=2", "n_prompts=16")
    assert result.exit_code == 0, result.output

    preset = tmp_path / "nav.yaml"
    preset.write_text(yaml.safe_dump({
        "task": TASK, "task_options": {"prompt_style": "compact", "test_routes": 4,
                                       "validation_routes": 4},
        "seeds": [0], "difficulty_n": 16, "k": 2, "arms": ["sft-all", "grpo"],
        "hard_ratios": [], "steps": 2, "batch_size": 4, "eval_every": 2, "eval_n": 2,
        "test_n": 4, "sft_lrs": [1e-3], "grpo_lrs": [1e-4], "sweep_val_n": 2,
        "sweep_ood_n": 2, "sft": {"max_length": 512}, "grpo": {"num_generations": 4}}))
    result = run("reproduce", "--preset", preset, "--quick", "--out", tmp_path / "study")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "study" / "report.md").read_text()
    assert "`test-ood-rule` (ood, rule)" in report and "| grpo |" in report
