"""`DIR/report.md` (and figures in `DIR/figures/`) from a finished or partial study."""

from __future__ import annotations

import statistics
from pathlib import Path

from gengap.io import atomic_open
from gengap.report import figures
from gengap.report.claims import evaluate_claims
from gengap.report.collect import Study, load_study


def _cell(value: tuple[float, float, int] | None) -> str:
    return f"{100 * value[0]:.1f} ± {100 * value[1]:.1f}" if value else "—"


def _delta(value: tuple[float, float, int] | None, init: tuple[float, float, int] | None) -> str:
    return f"{100 * (value[0] - init[0]):+.1f}" if value and init else "—"


def results_tables(study: Study) -> list[str]:
    """One table per split: success (mean ± se over seeds) and change from Init."""
    lines = []
    init = {s: study.final_success("init", s) for s in study.splits}
    for split in study.splits:
        lines += [f"### {split}", "", "| arm | success (%) | Δ vs init | seeds |",
                  "|---|---|---|---|"]
        for arm in study.arms():
            value = study.final_success(arm, split)
            lines.append(f"| {arm} | {_cell(value)} | "
                         f"{'' if arm == 'init' else _delta(value, init[split])} | "
                         f"{value[2] if value else 0} |")
        lines.append("")
    return lines


def budget_table(study: Study) -> list[str]:
    """What each arm cost and saw: lr picked, epochs, wall time, tokens, FLOPs."""
    lines = ["| arm | lr | steps | epochs | wall (s) | tokens | FLOPs (est.) |",
             "|---|---|---|---|---|---|---|"]
    for arm in study.arms():
        budgets = [r.budget for r in study.runs[arm] if r.budget]
        if not budgets:
            continue

        def mean(key: str, budgets=budgets) -> float:
            vals = [b[key] for b in budgets if b.get(key) is not None]
            vals = [v["total"] if isinstance(v, dict) else v for v in vals]
            return statistics.fmean(vals) if vals else float("nan")

        lines.append(f"| {arm} | {budgets[0].get('learning_rate', '—')} | "
                     f"{budgets[0].get('steps', '—')} | {mean('epochs'):.2f} | "
                     f"{mean('wall_seconds'):.0f} | {mean('tokens'):,.0f} | "
                     f"{mean('flops'):.2e} |")
    return lines


def zero_std_lines(study: Study) -> list[str]:
    """GRPO's share of zero-variance groups (no gradient), with and without the offline filter."""
    lines = []
    for arm in study.arms():
        if study.arm_spec(arm).get("kind") != "grpo":
            continue
        values = [row["frac_reward_zero_std"] for run in study.runs[arm] for row in run.train_log
                  if "frac_reward_zero_std" in row]
        if values:
            line = (f"- `{arm}`: mean `frac_reward_zero_std` {statistics.fmean(values):.2f} "
                    f"over {len(values)} logged steps")
            kept = next((r.budget["difficulty_filter"] for r in study.runs[arm]
                         if r.budget and r.budget.get("difficulty_filter")), None)
            if kept:
                line += (f"; the offline filter kept {kept['prompts_after']} of "
                         f"{kept['prompts_before']} prompts (dropped {kept['dropped_easy']} "
                         f"easy, {kept['dropped_hard']} hard: groups with no gradient)")
            lines.append(line)
    return lines


def write_report(root: str | Path) -> Path:
    """Rebuild `root/report.md` and its figures from whatever the study directory holds."""
    study = load_study(root)
    fig_dir = study.root / "figures"
    made = {
        "curves": figures.success_curves(study, fig_dir / "success_vs_step.png"),
        "scatter": figures.id_vs_ood(study, fig_dir / "id_vs_ood.png"),
        "hist": figures.pass_rate_histogram(study.difficulty, fig_dir / "pass_rate_hist.png"),
        "ablation": figures.hard_ratio(study, fig_dir / "hard_ratio.png"),
        "grad": figures.grad_norms(study, fig_dir / "grad_norms.png"),
        "time": figures.wall_time(study, fig_dir / "wall_time.png"),
        "lr": figures.lr_sweeps(study, fig_dir / "lr_sweep.png"),
    }

    def image(key: str, caption: str) -> list[str]:
        path = made[key]
        return [f"![{caption}]({path.relative_to(study.root)})", ""] if path else [
            f"*{caption}: no data yet.*", ""]

    cfg = study.meta.get("config", {})
    preset = study.plan.get("preset") or cfg.get("preset") or study.root.name
    lines = [f"# gengap study: {preset}", ""]
    if cfg:
        modality = study.plan.get("task", {}).get("modality", "text")
        roles = ", ".join(f"`{s}` ({study.split_info(s).get('role', '?')}"
                          + (f", {study.axis(s)}" if study.split_info(s).get("axis") else "")
                          + ")" for s in study.splits)
        lines += [f"Task `{cfg.get('task')}` ({modality}); evaluated on {roles}; "
                  f"seeds {cfg.get('seeds')}, {cfg.get('steps')} steps per arm, "
                  f"{cfg.get('batch_size')} prompts per step; every arm starts from the "
                  "same cold-start checkpoint. Success is greedy, over "
                  f"{cfg.get('eval_n')} episodes per split.", ""]
    lines += ["## What the studies claim and what this run measured", "",
              "| claim | the study | this run | verdict |", "|---|---|---|---|"]
    for c in evaluate_claims(study):
        lines.append(f"| {c.claim} | {c.study} | {c.measured} | **{c.verdict}** |")
    lines += ["", "Verdicts compare mean final success over seeds; a difference must exceed two "
              "combined standard errors to count.", "", "## Success by split", ""]
    lines += results_tables(study)
    if study.skipped:
        lines += ["Arms not trained (their data could not be curated):", ""]
        lines += [f"- `{arm}`: {why}" for arm, why in study.skipped.items()] + [""]
    lines += image("curves", "Success vs training step")
    lines += image("scatter", "ID vs OOD success per arm")
    lines += ["## Difficulty", ""]
    if study.difficulty:
        d = study.difficulty
        lines += [f"{d['n']} training samples, k={d['k']} rollouts at temperature "
                  f"{d['sampling']['temperature']}: easy {d['buckets']['easy']}, medium "
                  f"{d['buckets']['medium']}, hard {d['buckets']['hard']} (mean pass rate "
                  f"{d['mean_pass_rate']:.2f}).", ""]
    lines += image("hist", "Pass-rate histogram")
    lines += image("grad", "Per-bucket gradient norm during SFT")
    lines += ["## Hard-ratio ablation", ""] + image("ablation", "SFT-EM plus hard samples")
    lines += ["## Budgets", ""] + budget_table(study) + [""]
    lines += zero_std_lines(study) + [""]
    lines += image("time", "Wall time per arm")
    lines += ["## Learning rates", "",
              "Each arm's learning rate is picked on an ID validation split (never OOD)."]
    for arm, sweep in study.sweeps.items():
        lines.append(f"- `{arm}`: tried {sweep['lrs']}, picked **{sweep.get('picked')}**")
    lines += [""] + image("lr", "Success vs learning rate")
    path = study.root / "report.md"
    with atomic_open(path) as f:
        f.write("\n".join(lines).rstrip() + "\n")
    return path
