"""`gengap reproduce` end to end on a miniature preset, its resumption, and `gengap report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gengap.cli import app
from gengap.errors import InputError
from gengap.study import load_preset

# The quick preset, shrunk further so the whole study runs in about a minute. A cold start
# this short leaves most buckets empty (balanced arms then have no rows and are skipped, with
# a note), so the arms are the two that any bucket mix can feed.
MINI = [
    "coldstart.steps_scale=0.05", "coldstart.eval_n=0", "difficulty_n=48", "k=4",
    "arms=[sft-all,grpo]", "hard_ratios=[]", "steps=4", "batch_size=8",
    "eval_every=2", "eval_n=12", "grpo.num_generations=4", "sweep_val_n=8",
]


def test_presets_load_and_validate() -> None:
    full = load_preset("tiny-gp-text")
    quick = load_preset("tiny-gp-text", quick=True)
    assert full.seeds == [0, 1, 2] and quick.seeds == [0]
    assert quick.steps < full.steps
    assert "sft-em-hard5" in full.all_arms()
    image = load_preset("tiny-gp-image")
    assert "test-ood-visual" in image.eval_splits
    with pytest.raises(InputError, match="unknown preset"):
        load_preset("huge")
    with pytest.raises(InputError, match="unknown key"):
        load_preset("tiny-gp-text", overrides=["stepz=3"])
    with pytest.raises(InputError, match="unknown arm"):
        load_preset("tiny-gp-text", overrides=["arms=[ppo]"])


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
    curve = [json.loads(x) for x in
             (out / "runs" / "grpo" / "seed-0" / "curve.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in curve}) == [0, 2, 4]
    assert {r["split"] for r in curve} == {"test-id", "test-ood-rule"}
    budget = json.loads((out / "runs" / "sft-all" / "seed-0" / "budget.json").read_text())
    assert budget["steps"] == 4 and budget["wall_seconds"] > 0
    assert (out / "figures" / "success_vs_step.png").exists()
    summary = json.loads((out / "difficulty" / "summary.json").read_text())
    assert summary["n"] == 48 and sum(summary["buckets"].values()) == 48

    # A second call finds every stage complete: nothing is trained again.
    final = out / "runs" / "grpo" / "seed-0" / "final"
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


def test_filtered_grpo_arm_reads_the_difficulty_run(tmp_path: Path) -> None:
    from gengap.study import Study

    config = load_preset("tiny-gp-text")
    assert "grpo-filtered" in config.arms
    study = Study(config, tmp_path)
    filtered = study._recipe("grpo-filtered", tmp_path / "m", None, 0, tmp_path / "a")
    plain = study._recipe("grpo", tmp_path / "m", None, 0, tmp_path / "b")
    assert filtered.filter_by_difficulty == str(tmp_path / "difficulty")
    assert plain.filter_by_difficulty is None
    assert (filtered.steps, filtered.batch_size) == (plain.steps, plain.batch_size)


def test_hard_share_inverts_hard_arm() -> None:
    from gengap.arms import hard_arm, hard_share

    for ratio in (0.05, 0.1, 0.15, 0.3):
        assert hard_share(hard_arm(ratio)) == ratio
    assert hard_share("sft-em") is None and hard_share("grpo") is None
