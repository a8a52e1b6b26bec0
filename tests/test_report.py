"""The study report: tables, claims and verdicts, figures, partial studies."""

from __future__ import annotations

import json
from pathlib import Path

from gengap.arms import arm_specs
from gengap.report import write_report
from gengap.report.claims import evaluate_claims
from gengap.report.collect import load_study

SPLITS = ["test-id", "test-ood-rule"]


def write_run(root: Path, arm: str, seed: int, finals: dict[str, float], seconds: float = 10.0,
              grad: bool = False) -> None:
    d = root / "runs" / arm / f"seed-{seed}"
    d.mkdir(parents=True)
    rows = [{"step": step, "split": s, "success": v * step / 20, "success_stderr": 0.02}
            for step in (0, 10, 20) for s, v in finals.items()]
    (d / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "budget.json").write_text(json.dumps({"wall_seconds": seconds, "steps": 20,
                                               "epochs": 1.5, "tokens": 1000,
                                               "flops": {"training": 1e9, "total": 1e9},
                                               "learning_rate": 1e-3}))
    if grad:
        (d / "grad_norms.jsonl").write_text("".join(
            json.dumps({"step": s, "bucket": b, "grad_norm": g})
            + "\n" for s in (0, 10) for b, g in (("easy", 1.0), ("medium", 2.0), ("hard", 5.0))))


def write_plan(root: Path, modality: str = "text", arms=None) -> None:
    """plan.json as the study writes it: split roles, arms as data."""
    arms = arms or ["sft-all", "sft-e", "sft-m", "sft-h", "sft-em", "grpo"]
    (root / "plan.json").write_text(json.dumps({
        "preset": "unit",
        "task": {"name": "generalpoints", "modality": modality, "splits": {
            "test-id": {"name": "test-id", "role": "test"},
            "test-ood-rule": {"name": "test-ood-rule", "role": "ood", "axis": "rule"}},
            "references": {}},
        "eval_splits": SPLITS, "arms": arm_specs(arms, [0.05])}))


def make_study(root: Path, *, seeds=(0, 1, 2)) -> None:
    root.mkdir(parents=True, exist_ok=True)
    config = {"task": "generalpoints", "eval_splits": SPLITS, "seeds": list(seeds),
              "arms": ["sft-all", "sft-e", "sft-m", "sft-h", "sft-em", "grpo"],
              "steps": 20, "batch_size": 8, "eval_n": 100}
    (root / "study.json").write_text(json.dumps({"fingerprint": "x", "config": config}))
    write_plan(root)
    (root / "difficulty").mkdir()
    (root / "difficulty" / "summary.json").write_text(json.dumps({
        "n": 100, "k": 8, "buckets": {"easy": 30, "medium": 50, "hard": 20},
        "pass_rate_histogram": {f"{j}/8": c for j, c in enumerate(
            [20, 8, 7, 6, 5, 6, 8, 10, 30])},
        "mean_pass_rate": 0.5, "sampling": {"temperature": 0.9},
        "speed": {"compute_seconds": 5.0}}))
    # OOD: grpo clearly above sft-all; sft-h clearly below sft-m; sft-em ~ grpo.
    jitter = {0: -0.01, 1: 0.0, 2: 0.01}
    arms = {"init": (0.4, 0.20), "sft-all": (0.7, 0.10), "sft-e": (0.5, 0.25),
            "sft-m": (0.6, 0.27), "sft-h": (0.6, 0.08), "sft-em": (0.65, 0.29),
            "grpo": (0.6, 0.30), "sft-em-hard5": (0.64, 0.2)}
    for arm, (id_, ood) in arms.items():
        for seed in seeds:
            write_run(root, arm, seed, {"test-id": id_ + jitter[seed],
                                        "test-ood-rule": ood + jitter[seed]},
                      seconds=100.0 if arm == "grpo" else 10.0, grad=arm.startswith("sft"))
    (root / "lr_sweep").mkdir()
    (root / "lr_sweep" / "sft-all.json").write_text(json.dumps(
        {"lrs": [1e-4, 1e-3], "id_val": [0.3, 0.5], "ood": [0.2, 0.1], "picked": 1e-3}))


def test_claims_and_verdicts(tmp_path: Path) -> None:
    make_study(tmp_path)
    claims = {c.claim: c for c in evaluate_claims(load_study(tmp_path))}
    assert claims["RL beats SFT out of distribution"].verdict == "agrees"
    assert claims["SFT on hard samples hurts OOD generalization"].verdict == "agrees"
    assert claims["SFT-EM (DC-SFT) matches or beats RL out of distribution"].verdict == (
        "inconclusive")
    assert claims["Adding hard samples to SFT-EM costs OOD accuracy"].verdict == "agrees"
    cost = claims["DC-SFT is several times cheaper than RL"]
    assert cost.verdict == "agrees" and "6.7x" in cost.measured  # 100 / (10 + 5)


def test_reversed_evidence_disagrees(tmp_path: Path) -> None:
    make_study(tmp_path)
    for seed in (0, 1, 2):  # make SFT win OOD by a wide margin
        curve = tmp_path / "runs" / "sft-all" / f"seed-{seed}" / "curve.jsonl"
        rows = [json.loads(x) for x in curve.read_text().splitlines()]
        for r in rows:
            if r["split"] == "test-ood-rule" and r["step"] == 20:
                r["success"] = 0.9
        curve.write_text("".join(json.dumps(r) + "\n" for r in rows))
    claims = {c.claim: c for c in evaluate_claims(load_study(tmp_path))}
    assert claims["RL beats SFT out of distribution"].verdict == "disagrees"


def test_report_tables_and_figures(tmp_path: Path) -> None:
    make_study(tmp_path)
    path = write_report(tmp_path)
    text = path.read_text()
    assert "| grpo | 30.0 ± 0.6 | +10.0 | 3 |" in text  # mean ± se over seeds, Δ vs init
    assert "What the studies claim and what this run measured" in text
    for name in ("success_vs_step", "id_vs_ood", "pass_rate_hist", "grad_norms", "wall_time",
                 "lr_sweep", "hard_ratio"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 5000, name
        assert f"figures/{name}.png" in text


def test_partial_study_still_reports(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps({"config": {"eval_splits": SPLITS}}))
    write_plan(tmp_path)
    write_run(tmp_path, "init", 0, {"test-id": 0.4, "test-ood-rule": 0.1})
    text = write_report(tmp_path).read_text()
    assert "not measured in this run" in text
    assert "no data yet" in text
    # A torn last line of a curve (interrupted run) is ignored, not fatal.
    with (tmp_path / "runs" / "init" / "seed-0" / "curve.jsonl").open("a") as f:
        f.write('{"step": 3')
    assert write_report(tmp_path).exists()


def test_report_names_modality_and_skipped_arms(tmp_path: Path) -> None:
    make_study(tmp_path)
    write_plan(tmp_path, modality="image")
    (tmp_path / "data").mkdir()
    why = "EM+hard:0.15 needs 31 hard samples, the run has 23"
    (tmp_path / "data" / "skipped.json").write_text(json.dumps({"sft-em-hard15": why}))
    text = write_report(tmp_path).read_text()
    assert "Task `generalpoints` (image)" in text
    assert f"- `sft-em-hard15`: {why}" in text
