"""The study report: paired verdicts, the rule's settings, stability, tables, figures, partial
studies -- all on synthetic study directories in the layout `gengap.study` writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gengap.arms import arm_specs
from gengap.report import write_report
from gengap.report.claims import evaluate_claims
from gengap.report.collect import load_study
from gengap.report.stability import Row, stability
from gengap.report.stats import paired_interval, t_quantile, verdict
from gengap.train.sweep import bracket

SPLITS = ["test-id", "test-ood-rule"]
ARMS = ["sft-all", "sft-e", "sft-m", "sft-h", "sft-em", "grpo"]
# (ID, OOD) test success per arm: grpo clearly above sft-all OOD; sft-h clearly below sft-m
# and sft-e; sft-em within a point of grpo; +5% hard clearly below sft-em.
RATES = {"init": (0.40, 0.20), "sft-all": (0.70, 0.10), "sft-e": (0.50, 0.25),
         "sft-m": (0.60, 0.27), "sft-h": (0.60, 0.08), "sft-em": (0.65, 0.295),
         "grpo": (0.60, 0.30), "sft-em-hard5": (0.64, 0.15)}
N = 600  # test episodes per split


def write_test(run: Path, step: int, rates: dict[str, float], start: int) -> None:
    """RUN/test/step-N as `gengap eval` writes it: results.json + one samples.jsonl row per
    episode. Outcomes share one latent draw per episode, so arms are paired (and a start
    differs from another only where its rates do)."""
    d = run / "test" / f"step-{step}"
    d.mkdir(parents=True)
    rows, results = [], {}
    for split, p in rates.items():
        latent = np.random.default_rng(SPLITS.index(split)).random(N)
        success = latent < p
        rows += [{"id": f"{split}-{i}", "split": split, "success": bool(s)}
                 for i, s in enumerate(success)]
        results[split] = {"success": float(success.mean()), "success_stderr": 0.02, "n": N}
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "results.json").write_text(json.dumps({"results": results}))


def write_run(root: Path, arm: str, start: int, seed: int, finals: dict[str, float], *,
              seconds: float = 10.0, grad: bool = False, best: dict[str, float] | None = None,
              steps: int = 20) -> None:
    d = root / f"start-{start}" / "runs" / arm / f"seed-{seed}"
    d.mkdir(parents=True)
    last = 0 if arm == "init" else steps
    rows = [{"step": step, "split": s, "success": v * (step + 1) / (last + 1),
             "success_stderr": 0.02} for step in sorted({0, last // 2, last})
            for s, v in finals.items()]
    (d / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best_step = last if best is None else last // 2
    (d / "selection.json").write_text(json.dumps({
        "val": {str(last // 2): 0.5, str(last): 0.6 if best is None else 0.4},
        "best_step": best_step, "last_step": last}))
    write_test(d, last, finals, start)
    if best is not None:
        write_test(d, best_step, best, start)
    if arm == "init":
        return
    (d / "budget.json").write_text(json.dumps({
        "wall_seconds": seconds * 3, "cpu_seconds": seconds, "steps": steps, "epochs": 1.5,
        "tokens": 1000, "flops": {"training": seconds * 1e9, "total": seconds * 1e9},
        "learning_rate": 1e-3}))
    if grad:
        (d / "grad_norms.jsonl").write_text("".join(
            json.dumps({"step": s, "bucket": b, "grad_norm": g})
            + "\n" for s in (0, 10) for b, g in (("easy", 1.0), ("medium", 2.0), ("hard", 5.0))))


def write_plan(root: Path, starts=(0, 1, 2), modality: str = "text", arms=None,
               checkpoint: str = "best") -> None:
    """plan.json as the study writes it: design, split roles, arms as data, verdict settings."""
    (root / "plan.json").write_text(json.dumps({
        "preset": "unit",
        "task": {"name": "generalpoints", "modality": modality, "splits": {
            "test-id": {"name": "test-id", "role": "test"},
            "test-ood-rule": {"name": "test-ood-rule", "role": "ood", "axis": "rule"}},
            "references": {}},
        "eval_splits": SPLITS, "arms": arm_specs(arms or ARMS, [0.05]),
        "design": {str(c): [c] for c in starts},
        "budget": {"steps": 20, "batch_size": 8, "eval_every": 10},
        "evaluation": {"curve_n": 100, "test_n": N, "val_n": 50},
        "verdict": {"checkpoint": checkpoint, "alpha": 0.05, "margin": 0.02}}))


def make_study(root: Path, *, starts=(0, 1, 2), rates=RATES) -> None:
    root.mkdir(parents=True, exist_ok=True)
    config = {"task": "generalpoints", "eval_splits": SPLITS, "seeds": list(starts),
              "arms": ARMS, "steps": 20, "batch_size": 8}
    (root / "study.json").write_text(json.dumps({"fingerprint": "x", "config": config}))
    write_plan(root, starts)
    for start in starts:
        sdir = root / f"start-{start}"
        (sdir / "difficulty").mkdir(parents=True)
        (sdir / "difficulty" / "summary.json").write_text(json.dumps({
            "n": 100, "k": 8, "buckets": {"easy": 30, "medium": 50, "hard": 20},
            "pass_rate_histogram": {f"{j}/8": c for j, c in enumerate(
                [20, 8, 7, 6, 5, 6, 8, 10, 30])},
            "mean_pass_rate": 0.5, "sampling": {"temperature": 0.9},
            "speed": {"compute_seconds": 15.0, "cpu_seconds": 5.0, "flops": 5e9}}))
        for arm, (id_, ood) in rates.items():
            write_run(root, arm, start, start, {"test-id": id_, "test-ood-rule": ood},
                      seconds=100.0 if arm == "grpo" else 10.0, grad=arm.startswith("sft"))
        (sdir / "lr_sweep").mkdir()
        (sdir / "lr_sweep" / "sft-all.json").write_text(json.dumps(
            {"lrs": [1e-4, 1e-3, 3e-3], "id_val": [0.3, 0.5, 0.4], "ood": [0.2, 0.1, 0.1],
             "picked": 1e-3, "extended": [3e-3], "bracketed": True}))
        (sdir / "lr_sweep" / "sft-em.json").write_text(json.dumps(
            {"lrs": [1e-5, 1e-4], "id_val": [0.5, 0.5], "ood": [0.2, 0.2],
             "picked": 1e-5, "extended": [], "bracketed": True}))


def claims_of(root: Path) -> dict[str, object]:
    return {c.key: c for c in evaluate_claims(load_study(root))}


def test_paired_verdicts_and_the_cost_claim(tmp_path: Path) -> None:
    make_study(tmp_path)
    claims = claims_of(tmp_path)
    assert claims["rl_beats_sft_ood"].verdict == "agrees"
    assert claims["hard_sft_hurts_ood"].verdict == "agrees"
    assert len(claims["hard_sft_hurts_ood"].parts) == 2  # M vs H and E vs H
    assert claims["hard_share_costs_ood"].verdict == "agrees"
    # SFT-EM half a point below GRPO on every start and episode draw: non-inferior within
    # the 2-point margin.
    part = claims["sft_em_matches_rl"].parts[0]
    assert part.margin == 0.02 and -0.02 < part.interval.low < part.interval.estimate < 0
    assert claims["sft_em_matches_rl"].verdict == "agrees"
    # Bonferroni: 5 comparisons at alpha 0.05 -> 99% intervals.
    assert part.interval.level == pytest.approx(0.99)
    cost = claims["dcsft_cheaper"]
    # 100 / (10 + 5) in FLOPs and in CPU seconds; wall seconds (300 / (30 + 15)) shown only.
    assert cost.verdict == "agrees" and "6.7x in FLOPs" in cost.measured
    assert "6.7x in CPU s" in cost.measured and "wall s" in cost.measured


def test_reversed_evidence_disagrees(tmp_path: Path) -> None:
    # SFT wins OOD widely; SFT-EM trails GRPO by 5 points (beyond the margin).
    make_study(tmp_path, rates={**RATES, "sft-all": (0.7, 0.45), "sft-em": (0.65, 0.25)})
    claims = claims_of(tmp_path)
    assert claims["rl_beats_sft_ood"].verdict == "disagrees"
    assert claims["sft_em_matches_rl"].verdict == "disagrees"


def test_start_to_start_spread_makes_a_claim_inconclusive(tmp_path: Path) -> None:
    """Each start alone shows a clear gap, but its sign flips between starts: the t interval
    over starts keeps the verdict from claiming either direction."""
    make_study(tmp_path)
    for start, ood in ((0, 0.45), (1, 0.15), (2, 0.40)):  # grpo is at 0.30 on every start
        run = tmp_path / f"start-{start}" / "runs" / "sft-all" / f"seed-{start}"
        for p in (run / "test").iterdir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        write_test(run, 20, {"test-id": 0.7, "test-ood-rule": ood}, start)
    part = claims_of(tmp_path)["rl_beats_sft_ood"].parts[0]
    assert part.verdict == "inconclusive"
    low, high = part.interval.bootstrap
    assert high - low < part.interval.high - part.interval.low  # t over starts is wider


def test_best_and_last_checkpoints(tmp_path: Path) -> None:
    make_study(tmp_path)
    # grpo's best-on-validation checkpoint (step 10) is worse OOD than its last one.
    for start in (0, 1, 2):
        run = tmp_path / f"start-{start}" / "runs" / "grpo" / f"seed-{start}"
        write_test(run, 10, {"test-id": 0.6, "test-ood-rule": 0.1}, start)
        (run / "selection.json").write_text(json.dumps(
            {"val": {"10": 0.7, "20": 0.6}, "best_step": 10, "last_step": 20}))
    claims = claims_of(tmp_path)
    part = claims["rl_beats_sft_ood"].parts[0]
    assert abs(part.interval.estimate) < 0.01 and part.other.estimate > 0.15
    assert "last checkpoint" in claims["rl_beats_sft_ood"].measured
    write_plan(tmp_path, checkpoint="last")  # the verdict reads the last checkpoint instead
    assert claims_of(tmp_path)["rl_beats_sft_ood"].verdict == "agrees"


def test_report_tables_figures_and_rule(tmp_path: Path) -> None:
    make_study(tmp_path)
    text = write_report(tmp_path).read_text()
    assert "What the studies claim and what this run measured" in text
    assert "Bonferroni over the m = 5 comparisons" in text and "99.00% interval" in text
    assert "| grpo | 30." in text  # test success at the best checkpoint
    assert "difficulty pass (start 1)" in text
    assert "tried [0.0001, 0.001, 0.003], extended by [0.003], picked **0.001** bracketed\n" in text
    assert "picked **1e-05** bracketed (a plateau: the edge ties its neighbour)" in text
    assert "No replicate yet" in text
    for name in ("success_vs_step", "id_vs_ood", "pass_rate_hist", "grad_norms", "cost",
                 "lr_sweep", "hard_ratio", "intervals"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 5000, name
        assert f"figures/{name}.png" in text


def test_one_start_is_flagged(tmp_path: Path) -> None:
    make_study(tmp_path, starts=(0,))
    text = write_report(tmp_path).read_text()
    assert "This run has 1 start" in text
    part = claims_of(tmp_path)["rl_beats_sft_ood"].parts[0]
    assert part.interval.t_interval is None and not part.interval.covers_starts


def test_stability_table_and_flips(tmp_path: Path) -> None:
    make_study(tmp_path)
    make_study(tmp_path / "replicate", starts=(3, 4, 5),
               rates={**RATES, "sft-all": (0.7, 0.45)})
    rows = {r.key: r for r in stability(tmp_path, tmp_path / "replicate")}
    assert rows["rl_beats_sft_ood"].status == "FLIP"
    assert rows["hard_sft_hurts_ood"].status == "same"
    text = write_report(tmp_path).read_text()
    assert "| RL beats SFT out of distribution | agrees | disagrees | FLIP |" in text
    assert rows["hard_sft_hurts_ood"].pooled == "agrees"  # six starts, the same rule
    assert "| replicate | grpo > sft-all (test-ood-rule)" in text
    assert Row("k", "c", "agrees", "inconclusive").status == "differs (not a contradiction)"


def test_partial_study_still_reports(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps({"config": {"eval_splits": SPLITS}}))
    write_plan(tmp_path)
    write_run(tmp_path, "init", 0, 0, {"test-id": 0.4, "test-ood-rule": 0.1})
    text = write_report(tmp_path).read_text()
    assert "not measured in this run" in text
    assert "no data yet" in text
    # A torn last line of a curve (interrupted run) is ignored, not fatal.
    with (tmp_path / "start-0" / "runs" / "init" / "seed-0" / "curve.jsonl").open("a") as f:
        f.write('{"step": 3')
    assert write_report(tmp_path).exists()


def test_report_names_modality_and_skipped_arms(tmp_path: Path) -> None:
    make_study(tmp_path)
    write_plan(tmp_path, modality="image")
    (tmp_path / "start-1" / "data").mkdir()
    why = "EM+hard:0.15 needs 31 hard samples, the run has 23"
    (tmp_path / "start-1" / "data" / "skipped.json").write_text(
        json.dumps({"sft-em-hard15": why}))
    text = write_report(tmp_path).read_text()
    assert "Task `generalpoints` (image)" in text
    assert f"- start 1, `sft-em-hard15`: {why}" in text


def test_t_quantiles_and_paired_intervals() -> None:
    for df, q in ((1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-3)
    rng = np.random.default_rng(0)
    latent = {c: rng.random(2000) for c in range(3)}
    # Paired: the same episodes decide both arms, so a 3-point gap is resolved ...
    data = {c: ((u < 0.33)[None], (u < 0.30)[None]) for c, u in latent.items()}
    paired = paired_interval(data, level=0.95)
    assert paired.estimate == pytest.approx(0.03, abs=0.01) and verdict(paired) == "agrees"
    assert paired.discordant == pytest.approx(0.03, abs=0.01)
    # ... while two independent draws of the same rates leave it open.
    data = {c: ((u < 0.33)[None], (rng.random(2000) < 0.30)[None]) for c, u in latent.items()}
    assert paired_interval(data, level=0.95).half_width > 2 * paired.half_width
    assert paired_interval({}) is None
    assert verdict(paired, margin=0.02) == "agrees"


def test_sweep_brackets_the_best_rate() -> None:
    assert bracket([1e-4, 3e-4, 1e-3], [0.5, 0.6, 0.4]) == (None, True)
    assert bracket([1e-4, 3e-4, 1e-3], [0.6, 0.5, 0.4]) == (3.33e-05, False)
    assert bracket([1e-4, 3e-4, 1e-3], [0.4, 0.5, 0.6]) == (3.33e-03, False)
    # A tie at the low edge is a plateau: nothing beyond it to find.
    assert bracket([1e-4, 3e-4, 1e-3], [0.6, 0.6, 0.4]) == (None, True)


def test_cost_table_steps_are_what_ran_with_the_cap_when_flops_stopped_early() -> None:
    from gengap.report.markdown import steps_text

    assert steps_text([{"steps": 60, "steps_done": 60}]) == "60"
    assert steps_text([{"steps": 100, "steps_done": 6}, {"steps": 100, "steps_done": 8}]) == (
        "7 (cap 100)")
    assert steps_text([{"steps": 40}]) == "40"  # an older budget without steps_done


def add_recognition(root: Path, rates: dict[str, tuple[float, float]]) -> None:
    """Give every run's test episodes a first-attempt card recognition (0/1, one latent draw
    per episode, so arms stay paired) and its curve a recognition column, as GeneralPoints'
    image form records them."""
    for run in root.glob("start-*/runs/*/seed-*"):
        id_, ood = rates[run.parent.name]
        for samples in run.glob("test/step-*/samples.jsonl"):
            rows = [json.loads(line) for line in samples.read_text().splitlines()]
            for row in rows:
                split, i = row["id"].rsplit("-", 1)
                p = id_ if split == "test-id" else ood
                latent = np.random.default_rng(100 + SPLITS.index(split)).random(N)[int(i)]
                row["verdicts"] = [{"correct": row["success"],
                                    "metrics": {"recognition": float(latent < p)}}]
            samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        curve = run / "curve.jsonl"
        rows = [json.loads(line) for line in curve.read_text().splitlines()]
        for row in rows:
            row["recognition"] = id_ if row["split"] == "test-id" else ood
        curve.write_text("".join(json.dumps(r) + "\n" for r in rows))


# Recognition (ID, OOD): GRPO above Init on both splits, SFT-all below it.
RECOGNITION = {"init": (0.80, 0.60), "sft-all": (0.70, 0.45), "sft-e": (0.8, 0.6),
               "sft-m": (0.8, 0.6), "sft-h": (0.8, 0.6), "sft-em": (0.95, 0.9),
               "grpo": (0.90, 0.75), "sft-em-hard5": (0.8, 0.6)}


def test_recognition_claim_is_paired_per_episode_and_drawn(tmp_path: Path) -> None:
    """Figure 8: RL raises recognition and OOD success, SFT on all data lowers both; read per
    episode from the first attempt's verdict metric; DC-SFT arms are not part of it."""
    make_study(tmp_path)
    assert "rl_recognition" not in claims_of(tmp_path)  # no recognition metric: no claim
    write_plan(tmp_path, modality="image")
    add_recognition(tmp_path, RECOGNITION)
    claim = claims_of(tmp_path)["rl_recognition"]
    labels = {p.label for p in claim.parts}
    assert labels == {"grpo > init (test-id, recognition)",
                      "grpo > init (test-ood-rule, recognition)",
                      "init > sft-all (test-id, recognition)",
                      "init > sft-all (test-ood-rule, recognition)",
                      "grpo > init (test-ood-rule)", "init > sft-all (test-ood-rule)"}
    assert claim.verdict == "agrees"
    rec = next(p for p in claim.parts if p.label == "grpo > init (test-id, recognition)")
    assert rec.interval.estimate == pytest.approx(0.10, abs=0.03)  # 0.90 - 0.80, paired
    # SFT-all reading the cards better than Init: that part disagrees, the claim is mixed.
    add_recognition(tmp_path, {**RECOGNITION, "sft-all": (0.95, 0.9)})
    assert claims_of(tmp_path)["rl_recognition"].verdict == "mixed"
    text = write_report(tmp_path).read_text()
    assert "figures/recognition_vs_success.png" in text
    assert (tmp_path / "figures" / "recognition_vs_success.png").stat().st_size > 5000


def test_an_arm_far_past_its_flops_match_is_named(tmp_path: Path) -> None:
    """PPO's one update can cost several times GRPO's whole budget: the report says the arm
    is not at equal compute instead of letting the cost table imply it."""
    from gengap.report.markdown import match_lines

    make_study(tmp_path, starts=(0,))
    for arm, spent_d, steps in (("sft-all", 110, 9), ("grpo", 100, 10)):
        path = tmp_path / "start-0" / "runs" / arm / "seed-0" / "budget.json"
        budget = json.loads(path.read_text())
        # N = 1e6: the start's 6N*D_init = 60 GFLOPs; the target 60 + 6N*100 / 1e9 = 60.6.
        study = {"N": 1e6, "D": spent_d, "D_buffer": 0, "D_init": 10_000}
        study["gflops"] = 6e-9 * study["N"] * (study["D_init"] + spent_d)
        budget.update(study_flops=study, max_gflops=60.6, steps_done=steps)
        path.write_text(json.dumps(budget))
    assert match_lines(load_study(tmp_path)) == []  # 1.1x: within the step's granularity
    path = tmp_path / "start-0" / "runs" / "grpo" / "seed-0" / "budget.json"
    budget = json.loads(path.read_text())
    budget["study_flops"].update(D=800, gflops=6e-9 * 1e6 * 10_800)
    budget["steps_done"] = 1
    path.write_text(json.dumps(budget))
    lines = match_lines(load_study(tmp_path))
    assert len(lines) == 4 and "`grpo` spent 8.0x the FLOPs" in lines[2]
    assert "steps run: 1" in lines[2]
    assert "not at equal compute" in write_report(tmp_path).read_text()
