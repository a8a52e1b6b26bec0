"""`gengap reproduce` end to end on a miniature preset, its resumption, and `gengap report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gengap.cli import app
from gengap.errors import InputError
from gengap.study import Study, load_preset, replicate_config

# The quick preset, shrunk further so the whole study runs in about a minute. A cold start
# this short leaves most buckets empty (balanced arms then have no rows and are skipped, with
# a note), so the arms are the two that any bucket mix can feed.
MINI = [
    "coldstart.steps_scale=0.05", "coldstart.eval_n=0", "difficulty_n=48", "k=4",
    "arms=[sft-all,grpo]", "hard_ratios=[]", "steps=4", "batch_size=8",
    "eval_every=2", "eval_n=12", "grpo.num_generations=4", "sweep_val_n=8", "test_n=16",
    "seeds=[0]",
]


def test_presets_load_and_validate() -> None:
    full = load_preset("tiny-gp-text")
    quick = load_preset("tiny-gp-text", quick=True)
    assert full.seeds == [0, 1, 2] and quick.seeds == [0]
    # Replicates include the start: each seed is a start of its own, unless `starts` crosses.
    assert full.design() == {0: [0], 1: [1], 2: [2]}
    crossed = load_preset("tiny-gp-text", overrides=["starts=[5,6]", "seeds=[0,1]"])
    assert crossed.design() == {5: [0, 1], 6: [0, 1]}
    assert replicate_config(full).design() == {3: [3], 4: [4], 5: [5]}
    assert replicate_config(crossed).design() == {7: [0, 1], 8: [0, 1]}
    assert quick.steps < full.steps and quick.test_n < full.test_n
    assert "sft-em-hard5" in full.all_arms()
    image = load_preset("tiny-gp-image")
    assert "test-ood-visual" in image.eval_splits
    with pytest.raises(InputError, match="unknown preset"):
        load_preset("huge")
    with pytest.raises(InputError, match="unknown key"):
        load_preset("tiny-gp-text", overrides=["stepz=3"])
    with pytest.raises(InputError, match="unknown arm"):
        load_preset("tiny-gp-text", overrides=["arms=[ppx]"])
    with pytest.raises(InputError, match="verdict_checkpoint"):
        load_preset("tiny-gp-text", overrides=["verdict_checkpoint=middle"])
    with pytest.raises(InputError, match="repeats"):
        load_preset("tiny-gp-text", overrides=["seeds=[1,1]"])
    with pytest.raises(InputError, match="eval_verify_iters"):
        load_preset("tiny-gp-text", overrides=["eval_verify_iters=-1"])
    assert load_preset("tiny-gp-text").eval_verify_iters == 1  # DC-SFT: the first attempt
    assert load_preset("tiny-gp-rl").eval_verify_iters == 0  # the study's: within the task's V


@pytest.mark.slow
def test_reproduce_end_to_end_and_resume(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    runner = CliRunner()
    result = runner.invoke(app, ["reproduce", "--preset", "tiny-gp-text", "--quick",
                                 "--out", str(out), *MINI])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "What the studies claim and what this run measured" in report
    for arm in ("init", "sft-all", "grpo"):
        assert f"| {arm} |" in report, arm
    runs = out / "start-0" / "runs"
    curve = [json.loads(x) for x in
             (runs / "grpo" / "seed-0" / "curve.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in curve}) == [0, 2, 4]
    assert {r["split"] for r in curve} == {"test-id", "test-ood-rule"}
    budget = json.loads((runs / "sft-all" / "seed-0" / "budget.json").read_text())
    assert budget["steps"] == 4 and budget["wall_seconds"] > 0 and budget["cpu_seconds"] > 0
    assert budget["flops"]["total"] > 0
    # Every checkpoint is validated on ID; the best one and the last one get the test sets.
    selection = json.loads((runs / "grpo" / "seed-0" / "selection.json").read_text())
    assert set(selection["val"]) == {"2", "4"} and selection["last_step"] == 4
    tested = {p.name for p in (runs / "grpo" / "seed-0" / "test").iterdir()}
    assert tested == {f"step-{selection['best_step']}", "step-4"}
    rows = (runs / "grpo" / "seed-0" / "test" / "step-4" / "samples.jsonl").read_text()
    assert len(rows.splitlines()) == 2 * 16  # test_n per split
    assert (out / "figures" / "success_vs_step.png").exists()
    summary = json.loads((out / "start-0" / "difficulty" / "summary.json").read_text())
    assert summary["n"] == 48 and sum(summary["buckets"].values()) == 48
    assert summary["speed"]["cpu_seconds"] > 0 and summary["speed"]["flops"] > 0

    # A second call finds every stage complete: nothing is trained again.
    final = runs / "grpo" / "seed-0" / "final"
    stamp = max(p.stat().st_mtime for p in final.iterdir())
    result = runner.invoke(app, ["reproduce", "--preset", "tiny-gp-text", "--quick",
                                 "--out", str(out), *MINI])
    assert result.exit_code == 0, result.output
    assert max(p.stat().st_mtime for p in final.iterdir()) == stamp

    # Other settings in the same directory are refused; `gengap report` rebuilds the report.
    result = runner.invoke(app, ["reproduce", "--preset", "tiny-gp-text", "--quick",
                                 "--out", str(out), *MINI, "steps=5"])
    assert result.exit_code == 2 and "different settings" in result.output
    (out / "report.md").unlink()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report.md").exists()


def test_filtered_grpo_arm_reads_its_starts_difficulty_run(tmp_path: Path) -> None:
    config = load_preset("tiny-gp-text", overrides=["arms=[grpo,grpo-filtered]"])
    study = Study(config, tmp_path)
    filtered = study._recipe(1, "grpo-filtered", tmp_path / "m", None, 0, tmp_path / "a")
    plain = study._recipe(1, "grpo", tmp_path / "m", None, 0, tmp_path / "b")
    assert filtered.filter_by_difficulty == str(tmp_path / "start-1" / "difficulty")
    assert plain.filter_by_difficulty is None
    assert (filtered.steps, filtered.batch_size) == (plain.steps, plain.batch_size)


def test_hard_share_inverts_hard_arm() -> None:
    from gengap.arms import hard_arm, hard_share

    for ratio in (0.05, 0.1, 0.15, 0.3):
        assert hard_share(hard_arm(ratio)) == ratio
    assert hard_share("sft-em") is None and hard_share("grpo") is None


def test_only_starts_of_the_design_run(tmp_path: Path) -> None:
    study = Study(load_preset("tiny-gp-text"), tmp_path)
    with pytest.raises(InputError, match="not in this study's design"):
        study.run(starts=[7])
