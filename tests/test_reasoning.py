"""reasoning-gym through the task contract: items, the score == 1.0 rule, the 24-game override,
config errors, and (slow) every command on a reduced cold start and preset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("reasoning_gym")

from gengap.cli import app
from gengap.errors import InputError
from gengap.tasks import build_task

TASK = "reasoning-gym"


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def chain() -> object:
    return build_task(TASK, {"prompt_style": "compact"})


def test_splits_by_role_and_ood_axis_named_after_the_change(chain) -> None:
    splits = chain.splits
    assert [s.role for s in splits.values()] == ["warmup", "train", "validation", "test", "ood"]
    ood = splits["test-ood-terms"]
    assert ood.axis == "terms" and ood.size == 1000
    assert all(s.finite for s in splits.values())
    sample = chain.sample("test-ood-terms", 0, 0)
    assert sample.fields["metadata"]["num_terms"] in (4, 5)
    assert all(chain.sample("test-id", i, 0).fields["metadata"]["num_terms"] in (2, 3)
               for i in range(20))
    named = build_task(TASK, {"ood_config": {"max_digits": 3, "min_digits": 2},
                              "ood_axis": "digits"})
    assert "test-ood-digits" in named.splits
    assert "ood" not in {s.role for s in build_task(TASK, {"ood_config": {}}).splits.values()}


def test_items_are_deterministic_and_splits_differ(chain) -> None:
    fresh = build_task(TASK, {"prompt_style": "compact"})
    for split in chain.splits:
        a = [chain.sample(split, i, 3) for i in range(10)]
        b = [fresh.sample(split, i, 3) for i in range(10)]
        assert a == b
    questions = {split: [chain.sample(split, i, 0).fields["question"] for i in range(30)]
                 for split in ("train", "test-id", "validation")}
    assert questions["train"] != questions["test-id"] != questions["validation"]
    other_seed = [chain.sample("train", i, 1).fields["question"] for i in range(30)]
    assert other_seed != questions["train"]
    # reasoning-gym item i of seed s is item i-1 of seed s+1: hashed split seeds avoid that.
    shifted = [chain.sample("train", i + 1, 0).fields["question"] for i in range(29)]
    assert shifted != other_seed[:29]
    fixed = build_task(TASK, {"seed": 7})
    assert fixed.sample("train", 0, 0) == fixed.sample("train", 0, 1)
    with pytest.raises(InputError, match="2000 samples"):
        chain.sample("train", 2000, 0)


def test_warmup_mixes_in_the_ood_generator(chain) -> None:
    generators = [chain.sample("warmup", i, 0).fields["generator"] for i in range(400)]
    share = generators.count("ood") / len(generators)
    assert 0.15 < share < 0.35  # warmup_ood_share = 0.25


def test_correct_means_score_one_and_partial_credit_is_wrong(chain) -> None:
    sample = next(s for s in (chain.sample("test-id", i, 0) for i in range(50))
                  if not s.answer.startswith("-") and len(s.answer) >= 2)
    gold = sample.answer
    right = chain.verify(sample, gold)
    assert right.correct and right.reward == 1.0 and right.metrics["score"] == 1.0
    assert chain.verify(sample, f"<answer>{gold}</answer>").correct
    assert chain.verify(sample, f"{gold}.0").correct  # the scorer's numeric equality
    for wrong in (f"-{gold}", f"1{gold}", f"{gold}0"):
        verdict = chain.verify(sample, wrong)
        assert 0.0 < verdict.metrics["score"] < 1.0, wrong  # reasoning-gym's partial credit
        assert not verdict.correct and verdict.reward == verdict.metrics["score"]
    assert chain.verify(sample, "x").reward == 0.0
    paper = build_task(TASK)
    assert not paper.verify(sample, gold).correct  # paper prompts ask for <answer> tags
    assert paper.verify(sample, f"think... <answer>{gold}</answer>").correct
    assert paper.target(sample) == f"<answer>{gold}</answer>"


def test_reasoning_gyms_puzzle24_scorer_accepts_wrong_answers_ours_does_not() -> None:
    from reasoning_gym import create_dataset

    task = build_task(TASK, {"dataset": "puzzle24", "prompt_style": "compact"})
    sample = next(s for s in (task.sample("test-id", i, 0) for i in range(5))
                  if 1 not in s.fields["metadata"]["numbers"])
    entry = {"question": sample.fields["question"], "answer": sample.answer,
             "metadata": sample.fields["metadata"]}
    rg_scorer = create_dataset("puzzle24", seed=0, size=1)
    # The claim, checked: numbers that are not the hand's, and 24.5 truncated to 24, score 1.0.
    for wrong in ("6*4*1*1", "7*7/2*1"):
        assert rg_scorer.score_answer(wrong, entry) == 1.0
        verdict = task.verify(sample, wrong)
        assert not verdict.correct and verdict.reward == 0.0
        assert verdict.info["judge"] == "generalpoints"
    assert "numbers" in task.verify(sample, "6*4*1*1").feedback
    for i in range(3):  # the SFT target (solver canonical when sympy's form fails) is right
        s = task.sample("test-id", i, 0)
        assert task.verify(s, task.target(s)).correct
        assert task.verify(s, f"<answer>{s.answer.replace('', ' ').strip()}</answer>").correct


@pytest.mark.parametrize("dataset", ["chain_sum", "basic_arithmetic", "products", "gcd", "lcm",
                                     "number_sorting", "base_conversion", "simple_equations",
                                     "fraction_simplification", "spell_backward"])
def test_gold_answers_survive_a_row_round_trip(dataset: str) -> None:
    task = build_task(TASK, {"dataset": dataset, "ood_config": {}, "train_size": 20})
    for i in range(4):
        sample = task.sample("train", i, 0)
        again = task.sample_from_row(json.loads(json.dumps(task.row(sample))))
        assert again == sample
        assert task.verify(again, task.target(again)).correct, (dataset, sample.answer)


def test_compact_prompts_drop_the_shared_template(chain) -> None:
    sample = chain.sample("test-id", 0, 0)
    prompt = chain.messages(sample)[0]["content"]
    assert prompt == sample.fields["metadata"]["expression"]
    assert "State the final answer" in sample.fields["question"]
    assert chain.max_new_tokens <= 16
    from gengap.coldstart import task_characters

    assert task_characters(chain, 0, per_split=20) == ()  # chain_sum is ASCII
    words = build_task(TASK, {"dataset": "spell_backward", "ood_config": {},
                              "prompt_style": "compact"})
    assert words.messages(words.sample("test-id", 0, 0))[0]["content"]


def test_config_errors_name_the_problem_and_the_fix() -> None:
    with pytest.raises(InputError, match="did you mean 'chain_sum'"):
        build_task(TASK, {"dataset": "chain_sums"})
    with pytest.raises(InputError, match="did you mean 'max_terms'"):
        build_task(TASK, words=["config.max_term=4"])
    with pytest.raises(InputError, match="changes nothing"):
        build_task(TASK, {"ood_config": {"max_terms": 3}})
    with pytest.raises(InputError, match="inside the ID"):
        build_task(TASK, {"config": {"max_terms": 6}, "ood_config": {"min_terms": 4,
                                                                        "max_terms": 5}})
    with pytest.raises(InputError, match="gengap sets it"):
        build_task(TASK, words=["config.seed=3"])
    with pytest.raises(InputError, match="reasoning-gym refused"):
        build_task(TASK, words=["config.min_terms=0"])
    with pytest.raises(InputError, match="warmup_ood_share"):
        build_task(TASK, {"warmup_ood_share": 1.5})
    with pytest.raises(InputError, match="system_prompt"):
        build_task(TASK, {"system_prompt": "chatty"})
    result = run("tasks", "--task", TASK, "-O", "dataset=chain_sums")
    assert result.exit_code == 2 and "did you mean 'chain_sum'" in result.output


def test_a_missing_extra_is_an_input_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(InputError, match=r"gengap\[reasoning\]"):
        build_task(TASK)


def test_the_preset_loads() -> None:
    from gengap.study import load_preset

    config = load_preset("tiny-reasoning", quick=True)
    task = build_task(config.task, config.task_options, tiny=True)
    assert task.split_for("ood") == "test-ood-terms" and config.seeds == [0]


@pytest.mark.slow
def test_every_command_runs_reasoning_gym(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    opts = ["-O", "prompt_style=compact", "-O", "train_size=64", "-O", "test_size=16",
            "-O", "ood_size=16", "-O", "validation_size=16"]
    result = run("tasks", "--task", TASK)
    assert result.exit_code == 0 and "test-ood-terms" in result.output

    data = tmp_path / "test.jsonl"
    assert run("data", "--task", TASK, *opts, "--split", "test-id", "--out", data).exit_code == 0
    rows = read(data)
    assert len(rows) == 16 and rows[0]["sft_target"] == rows[0]["answer"]
    scored_in = tmp_path / "completions.jsonl"
    scored_in.write_text("".join(json.dumps({**r, "completion": c}) + "\n"
                                 for r, c in zip(rows, [rows[0]["answer"],
                                                        f"9{rows[1]['answer']}9"])))
    result = run("score", "--task", TASK, *opts, "--input", scored_in,
                 "--output", tmp_path / "s.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["correct"] for r in read(tmp_path / "s.jsonl")] == [True, False]

    model = tmp_path / "start"
    result = run("coldstart", "--task", TASK, *opts, "--out", model, "steps_scale=0.02",
                 "eval_n=0")
    assert result.exit_code == 0, result.output
    result = run("eval", "--model", model, "--task", TASK, *opts, "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(results["results"]) == {"test-id", "test-ood-terms"}
    assert 0 <= results["results"]["test-id"]["score"] <= 1
    assert results["splits"]["test-ood-terms"]["axis"] == "terms"

    diff = tmp_path / "difficulty"
    result = run("difficulty", "--model", model, "--task", TASK, *opts, "--n", "24", "--k", "4",
                 "--out", diff, "--no-progress")
    assert result.exit_code == 0, result.output
    sft = tmp_path / "sft.jsonl"
    assert run("curate", "--difficulty", diff, "--variant", "all", "--out", sft).exit_code == 0
    result = run("train", "sft", "--config", "sft-tiny", "--model", model, "--data", sft,
                 "--out", tmp_path / "arm", "steps=2", "batch_size=8", "save_every=2",
                 "eval_n=8", "grad_norm_every=0")
    assert result.exit_code == 0, result.output
    result = run("train", "grpo", "--config", "grpo-tiny", "--model", model, "--task", TASK,
                 *opts, "--out", tmp_path / "grpo", "steps=2", "batch_size=2",
                 "num_generations=4", "save_every=2", "eval_n=8")
    assert result.exit_code == 0, result.output

    preset = yaml.safe_load((Path(__file__).parents[1] / "src/gengap/configs/presets/"
                             "tiny-reasoning.yaml").read_text())
    preset["task_options"].update(train_size=64, test_size=16, ood_size=16, validation_size=16)
    preset["coldstart"] = {"steps_scale": 0.02, "eval_n": 0}
    preset["quick"].update(difficulty_n=32, steps=2, eval_every=2, eval_n=8, test_n=16,
                           sweep_steps=2, sweep_val_n=8, sweep_ood_n=8,
                           arms=["sft-all", "grpo"], hard_ratios=[])
    preset["grpo"] = {"num_generations": 4}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(preset))
    result = run("reproduce", "--preset", path, "--quick", "--out", tmp_path / "study")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "study" / "report.md").read_text()
    assert "`test-ood-terms` (ood, terms)" in report and "| grpo |" in report
