"""`DIR/report.md` (and figures in `DIR/figures/`) from a finished or partial study."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from gengap.io import atomic_open
from gengap.report import figures
from gengap.report.claims import UNITS, arm_cost, comparisons, difficulty_cost, evaluate_claims
from gengap.report.collect import Study, load_study

REPLICATE_DIR = "replicate"  # the stability check's second run (`gengap reproduce --replicate`)


def _cell(value: tuple[float, float, int] | None) -> str:
    return f"{100 * value[0]:.1f} ± {100 * value[1]:.1f}" if value else "—"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def design_lines(study: Study) -> list[str]:
    """What was run: starts, seeds, budget, evaluation sizes."""
    cfg, plan = study.config, study.plan
    modality = plan.get("task", {}).get("modality", "text")
    roles = ", ".join(f"`{s}` ({study.split_info(s).get('role', '?')}"
                      + (f", {study.axis(s)}" if study.split_info(s).get("axis") else "")
                      + ")" for s in study.splits)
    design = plan.get("design", {})
    seeds = sorted({s for v in design.values() for s in v})
    ev, budget = plan.get("evaluation", {}), plan.get("budget", {})
    lines = [f"Task `{cfg.get('task')}` ({modality}); evaluated on {roles}.", ""]
    if design:
        lines += [
            f"- **Starts**: {len(design)} ({', '.join(design)}), each "
            f"{plan.get('start_kind', 'a start checkpoint')} with its own difficulty pass, "
            f"curated sets and learning-rate sweep; training seeds per start: "
            + "; ".join(f"{c}: {v}" for c, v in design.items())
            + f" ({len(seeds)} distinct).",
            f"- **Budget**: {budget.get('steps')} steps of {budget.get('batch_size')} prompts "
            f"for every arm, a checkpoint every {budget.get('eval_every')} steps.",
            f"- **Evaluation** (greedy, {attempts_text(ev.get('attempts', 1))}): curves "
            f"{ev.get('curve_n')} episodes per "
            f"split and checkpoint; ID validation {ev.get('val_n')} held-out episodes per "
            f"checkpoint (picks the best one); test sets {ev.get('test_n')} episodes per split "
            "(a smaller finite split whole), the same episodes for every arm and start, on each "
            "arm's best-on-validation and last checkpoint.", ""]
    return lines


def rule_lines(study: Study, m: int, level: float) -> list[str]:
    """The verdict rule, as applied in this report."""
    s = study.verdict_settings
    starts = len(study.starts)
    lines = [
        "**Verdict rule.** Each claim is one or more paired comparisons of two arms on the same "
        f"starts and the same test episodes, at each arm's **{s['checkpoint']}** checkpoint "
        f"({'best on ID validation' if s['checkpoint'] == 'best' else 'end of the budget'}; "
        "the other checkpoint's difference is shown beside it, without a verdict). The "
        "difference's interval is the wider of a two-stage paired bootstrap (starts, then "
        "episodes and training seeds within each start) and a Student-t interval over the "
        "per-start differences (the bootstrap alone is overconfident with few starts). "
        f"Multiple comparisons: Bonferroni over the m = {m} comparisons of this report, so "
        f"every interval is a {100 * level:.2f}% interval and all verdicts together err with "
        f"probability at most {s['alpha']:g}. A comparison **agrees** when its interval lies "
        "wholly on the claimed side of 0, **disagrees** when it lies wholly on the other side, "
        "and is **inconclusive** otherwise; “matches or beats” is non-inferiority with a "
        f"margin of {100 * s['margin']:.0f} points (agrees when the interval lies above "
        f"−{100 * s['margin']:.0f}, disagrees when below). A claim agrees (disagrees) only "
        "when all its comparisons do. Differences are in points: estimate [interval]."]
    if starts < 2:
        lines += ["", f"*This run has {starts} start: its intervals cover episodes and seeds "
                  "but not the start checkpoint, so they are too narrow for a claim about "
                  "the method (use two or more starts).*"]
    return lines + [""]


def interval_table(parts_by_run: dict[str, list]) -> list[str]:
    """Every comparison's interval: half-width and its parts (bootstrap, t over starts)."""
    lines = ["| run | comparison | estimate | interval | half-width | bootstrap half-width "
             "| t half-width | starts | episodes/start | discordant | ±2 needs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, parts in parts_by_run.items():
        for p in parts:
            i = p.interval
            if i is None:
                continue
            t = (i.t_interval[1] - i.t_interval[0]) / 2 if i.t_interval else None
            lines.append(
                f"| {name} | {p.label} | {100 * i.estimate:+.1f} | [{100 * i.low:+.1f}, "
                f"{100 * i.high:+.1f}] | {100 * i.half_width:.1f} | "
                f"{100 * (i.bootstrap[1] - i.bootstrap[0]) / 2:.1f} | "
                f"{_num(None if t is None else 100 * t, '.1f')} | {i.starts} | {i.episodes} | "
                f"{100 * i.discordant:.0f}% | {episodes_for(i)} |")
    return lines + ["", "±2 needs: test episodes per start for a 95% interval of ±2 points from "
                    "the episodes alone at the measured discordance (paired 0/1 outcomes: "
                    "variance = discordant share − difference²); the start-to-start part "
                    "shrinks only with more starts.", ""]


def episodes_for(i, half_width: float = 0.02) -> int:
    """Episodes per start for a 95% episode-only interval of ±`half_width` on this difference."""
    variance = max(i.discordant - i.estimate ** 2, 0.0)
    return math.ceil((1.96 / half_width) ** 2 * variance / max(i.starts, 1))


def results_tables(study: Study) -> list[str]:
    """One table per split: test success at the best and the last checkpoint, the paired
    change from Init, and the steps the best checkpoints sit at."""
    lines = []
    for split in study.splits:
        lines += [f"### {split}", "",
                  "| arm | best checkpoint (%) | Δ vs init | last checkpoint (%) | Δ vs init "
                  "| best steps | runs |", "|---|---|---|---|---|---|---|"]
        for arm in study.arms():
            best = study.success(arm, split, "best")
            last = study.success(arm, split, "last")
            if arm == "init":
                lines.append(f"| init | {_cell(last)} | | {_cell(last)} | | 0 | "
                             f"{last[2] if last else 0} |")
                continue
            deltas = []
            for which in ("best", "last"):
                d = study.paired_delta(arm, "init", split, which)
                deltas.append(f"{100 * d:+.1f}" if d is not None else "—")
            steps = sorted({r.step("best") for r in study.runs[arm] if r.step("best")})
            lines.append(f"| {arm} | {_cell(best)} | {deltas[0]} | {_cell(last)} | "
                         f"{deltas[1]} | {', '.join(map(str, steps)) or '—'} | "
                         f"{last[2] if last else 0} |")
        lines.append("")
    lines += ["Success: mean over starts (± se over starts; one start: binomial se). Δ: the "
              "paired difference from Init on the same start and episodes.", ""]
    return lines


def metric_tables(study: Study, which: str = "best") -> list[str]:
    """The task's own verdict metrics (`Task.metric_docs`, e.g. OOD accuracy on seen and on
    unseen classes) per split and arm at the `which` checkpoint: mean over runs."""
    docs = study.plan.get("task", {}).get("metric_docs", {})
    lines: list[str] = []
    for split in study.splits:
        table: dict[str, dict[str, list[float]]] = {}
        for arm in study.arms():
            for run in study.runs.get(arm, []):
                test = run.test(which) or (run.test("last") if arm == "init" else None)
                result = (test.results.get(split) if test else None) or {}
                for name in docs:
                    if isinstance(result.get(name), int | float):
                        table.setdefault(arm, {}).setdefault(name, []).append(result[name])
        names = [n for n in docs if any(n in row for row in table.values())]
        if not names:
            continue
        lines += [f"### {split}", "", "| arm | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for arm, row in table.items():
            cells = [f"{100 * statistics.fmean(row[n]):.1f}" if n in row else "—" for n in names]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    if lines:
        lines = ["## Task metrics", "", "At each arm's " + which + " checkpoint (%), mean over "
                 "runs: " + "; ".join(f"`{n}`: {d}" for n, d in docs.items()) + ".", ""] + lines
    return lines


def attempts_text(attempts: int) -> str:
    """How many tries a test episode gives the model."""
    if attempts <= 1:
        return "one attempt"
    return (f"up to {attempts} attempts with the verifier's feedback between them: success "
            f"within {attempts}; ID validation reads the first attempt")


def steps_text(budgets: list[dict]) -> str:
    """Optimizer steps the runs took (mean), with the cap when a FLOPs match stopped them
    early (`steps` is then a cap, `steps_done` what ran)."""
    cap = budgets[0].get("steps")
    done = [b.get("steps_done", b.get("steps")) for b in budgets]
    if any(d is None for d in done):
        return str(cap if cap is not None else "—")
    text = f"{statistics.fmean(done):.3g}"
    return f"{text} (cap {cap})" if cap is not None and min(done) < cap else text


def budget_table(study: Study) -> list[str]:
    """What each arm cost and saw: lr picked per start, epochs, FLOPs, CPU and wall seconds."""
    lines = ["| arm | lr per start | steps | epochs | FLOPs | CPU s | wall s | tokens |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in study.arms():
        budgets = [r.budget for r in study.runs[arm] if r.budget]
        if not budgets:
            continue

        def mean(unit: str, budgets=budgets) -> float | None:
            vals = [v for b in budgets if (v := arm_cost(b, unit)) is not None]
            return statistics.fmean(vals) if vals else None

        lrs = ", ".join(f"{r.start}: {r.budget.get('learning_rate'):g}"
                        for r in study.runs[arm] if r.budget)
        epochs = [b["epochs"] for b in budgets if b.get("epochs") is not None]
        tokens = [b["tokens"] for b in budgets if b.get("tokens") is not None]
        lines.append(f"| {arm} | {lrs} | {steps_text(budgets)} | "
                     f"{_num(statistics.fmean(epochs) if epochs else None, '.2f')} | "
                     f"{_num(mean('flops'), '.2e')} | {_num(mean('cpu_seconds'), '.0f')} | "
                     f"{_num(mean('wall_seconds'), '.0f')} | "
                     f"{_num(statistics.fmean(tokens) if tokens else None, ',.0f')} |")
    for start, summary in sorted(study.difficulty.items()):
        values = {u: difficulty_cost(summary, u) for u in UNITS}
        lines.append(f"| difficulty pass (start {start}) | | | | "
                     f"{_num(values['flops'], '.2e')} | {_num(values['cpu_seconds'], '.0f')} | "
                     f"{_num(values['wall_seconds'], '.0f')} | |")
    lines += ["", "Means over runs. Training only (evaluation and probes excluded); FLOPs are "
              "estimates (`gengap.cost`: 6N per trained token, 2N per generated or encoded "
              "token), CPU seconds the process's own. Wall seconds depend on what else runs on "
              "the machine: no verdict reads them.", ""]
    return lines


OVERSHOOT = 1.5  # an arm past 1.5x its FLOPs target is not "at equal compute"


def match_lines(study: Study) -> list[str]:
    """Arms matched in FLOPs that spent far more than their target past the start: a FLOPs
    match stops at the first step past the target, so an arm whose one step costs more than
    the whole target (PPO re-encodes each episode's history for every transition and trains
    several epochs on it) cannot be matched finer than that step."""
    from gengap.cost import gflops_past_start

    lines = []
    for arm in study.arms():
        ratios, steps = [], []
        for run in study.runs[arm]:
            b = run.budget or {}
            if not b.get("max_gflops") or not b.get("study_flops"):
                continue
            spent = gflops_past_start(b["study_flops"])
            target = b["max_gflops"] - (b["study_flops"]["gflops"] - spent)
            if target > 0:
                ratios.append(spent / target)
                steps.append(b.get("steps_done"))
        if ratios and statistics.fmean(ratios) > OVERSHOOT:
            lines.append(f"- `{arm}` spent {statistics.fmean(ratios):.1f}x the FLOPs it was "
                         f"matched to past its start (steps run: {', '.join(map(str, steps))}): "
                         "one of its steps costs more than the target, so it is not at equal "
                         "compute; read its comparisons as such.")
    return ([f"FLOPs matches missed by more than {OVERSHOOT}x:", "", *lines, ""]
            if lines else [])


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


def sweep_lines(study: Study) -> list[str]:
    lines = []
    for start, sweeps in sorted(study.sweeps.items()):
        for arm, sweep in sweeps.items():
            edge = sweep.get("lrs") and sweep.get("picked") in (min(sweep["lrs"]),
                                                                max(sweep["lrs"]))
            status = ("bracketed" + (" (a plateau: the edge ties its neighbour)" if edge else "")
                      if sweep.get("bracketed")
                      else "**not bracketed** (at the grid's edge after every extension)"
                      if "bracketed" in sweep else "")
            extended = f", extended by {sweep['extended']}" if sweep.get("extended") else ""
            lines.append(f"- start {start}, `{arm}`: tried {sweep['lrs']}{extended}, picked "
                         f"**{sweep.get('picked')}** {status}")
    return lines


def stability_lines(root: Path) -> list[str]:
    from gengap.report.stability import stability

    other = root / REPLICATE_DIR
    if not (other / "study.json").is_file():
        return ["*No replicate yet: `gengap reproduce ... --replicate` runs this preset again "
                "from other starts and fills this section.*", ""]
    rows = stability(root, other)
    starts = load_study(other).planned_starts
    lines = [f"The same preset from other starts ({starts}, in `{REPLICATE_DIR}/`). A flip "
             "(agrees in one run, disagrees in the other) would mean the rule failed. Pooled: "
             "both runs' starts together under the same rule (more starts, narrower intervals; "
             "not either run's verdict).", "",
             "| claim | this run | replicate | status | pooled |", "|---|---|---|---|---|"]
    lines += [f"| {r.claim} | {r.first} | {r.second} | {r.status} | {r.pooled} |"
              for r in rows]
    return lines + [""]


def write_report(root: str | Path) -> Path:
    """Rebuild `root/report.md` and its figures from whatever the study directory holds."""
    study = load_study(root)
    fig_dir = study.root / "figures"
    which = study.verdict_settings["checkpoint"]
    parts, m, level = comparisons(study)
    parts_by_run = {"this run": [p for ps in parts.values() for p in ps]}
    replicate = study.root / REPLICATE_DIR
    if (replicate / "study.json").is_file():
        other, _, _ = comparisons(load_study(replicate))
        parts_by_run["replicate"] = [p for ps in other.values() for p in ps]
    made = {
        "curves": figures.success_curves(study, fig_dir / "success_vs_step.png"),
        "scatter": figures.id_vs_ood(study, fig_dir / "id_vs_ood.png", which),
        "gflops": figures.success_vs_gflops(study, fig_dir / "success_vs_gflops.png"),
        "recognition": figures.recognition_vs_success(
            study, fig_dir / "recognition_vs_success.png"),
        "hist": figures.pass_rate_histogram(study, fig_dir / "pass_rate_hist.png"),
        "ablation": figures.hard_ratio(study, fig_dir / "hard_ratio.png", which),
        "grad": figures.grad_norms(study, fig_dir / "grad_norms.png"),
        "cost": figures.costs(study, fig_dir / "cost.png"),
        "lr": figures.lr_sweeps(study, fig_dir / "lr_sweep.png"),
        "intervals": figures.intervals(parts_by_run, fig_dir / "intervals.png",
                                       study.verdict_settings["margin"]),
    }

    def image(key: str, caption: str) -> list[str]:
        path = made[key]
        return [f"![{caption}]({path.relative_to(study.root)})", ""] if path else [
            f"*{caption}: no data yet.*", ""]

    preset = study.plan.get("preset") or study.config.get("preset") or study.root.name
    lines = [f"# gengap study: {preset}", ""]
    if study.config:
        lines += design_lines(study)
    lines += ["## What the studies claim and what this run measured", "",
              "| claim | the study | this run | verdict |", "|---|---|---|---|"]
    for c in evaluate_claims(study):
        lines.append(f"| {c.claim} | {c.study} | {c.measured} | **{c.verdict}** |")
    lines += [""] + rule_lines(study, m, level)
    lines += ["## Stability: a second run from other starts", ""] + stability_lines(study.root)
    lines += ["## Interval widths", ""] + interval_table(parts_by_run)
    lines += image("intervals", "Paired differences and their intervals")
    lines += ["## Success on the test sets", ""] + results_tables(study)
    lines += metric_tables(study, which)
    skipped = {(c, a): why for c, arms in study.skipped.items() for a, why in arms.items()}
    if skipped:
        lines += ["Arms not trained (their data could not be curated):", ""]
        lines += [f"- start {c}, `{arm}`: {why}" for (c, arm), why in skipped.items()] + [""]
    lines += ["## Curves to the full budget", ""]
    lines += image("curves", "Success vs training step")
    lines += image("scatter", "ID vs OOD success per arm")
    lines += image("gflops", "OOD success vs training GFLOPs (the study's compute)")
    if made["recognition"]:  # tasks whose verdicts carry a recognition metric
        lines += image("recognition", "Recognition vs success per checkpoint (Figure 8)")
    lines += ["## Difficulty", ""]
    for start, d in sorted(study.difficulty.items()):
        lines.append(f"- start {start}: {d['n']} training samples, k={d['k']} rollouts at "
                     f"temperature {d['sampling']['temperature']}: easy {d['buckets']['easy']}, "
                     f"medium {d['buckets']['medium']}, hard {d['buckets']['hard']} (mean pass "
                     f"rate {d['mean_pass_rate']:.2f}).")
    lines += [""] + image("hist", "Pass-rate histogram")
    lines += image("grad", "Per-bucket gradient norm during SFT")
    lines += ["## Hard-ratio ablation", ""] + image("ablation", "SFT-EM plus hard samples")
    from gengap.report.rl_claims import v_table

    if table := v_table(study, which):
        lines += ["## Verification-iteration ablation (equal compute)", ""] + table
    lines += ["## Cost", ""] + budget_table(study) + match_lines(study)
    lines += zero_std_lines(study) + [""]
    lines += image("cost", "Cost per arm")
    lines += ["## Learning rates", "",
              "Each arm's learning rate is picked per start on ID validation (never OOD); a "
              "pick at the grid's edge extends the grid until it is bracketed.", ""]
    lines += sweep_lines(study)
    lines += [""] + image("lr", "Success vs learning rate")
    path = study.root / "report.md"
    with atomic_open(path) as f:
        f.write("\n".join(lines).rstrip() + "\n")
    return path
