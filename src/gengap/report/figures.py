"""The study's figures (matplotlib, PNG). Each function returns the file it wrote, or None
when the study holds no data for it yet (a partial study still gets a report)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np

from gengap.arms import hard_share, verify_iters_of
from gengap.report.collect import Study

ARM_COLOURS = {
    "init": "#555555", "sft-all": "#d62728", "sft-e": "#ff9896", "sft-m": "#9467bd",
    "sft-h": "#8c564b", "sft-em": "#2ca02c", "grpo": "#1f77b4", "grpo-filtered": "#17becf",
    "grpo-online": "#aec7e8", "grpo-mt": "#393b79", "ppo": "#ff7f0e",
}
BUCKET_COLOURS = {"easy": "#2ca02c", "medium": "#ff7f0e", "hard": "#d62728"}


# The RL experiments' arms with a start of their own (matched by name suffix, in this order).
RL_VARIANT_COLOURS = {"-nowarmup": "#7f7f7f", "-from-overfit": "#e377c2", "-overfit": "#bcbd22"}
# A verification-iteration arm shades from pale to deep as V goes from 1 to 10.
_PURPLES = (np.array([0.78, 0.72, 0.95]), np.array([0.23, 0.10, 0.45]))
V_SHADES = {"grpo": _PURPLES, "grpo-mt": _PURPLES,
            "ppo": (np.array([0.99, 0.80, 0.55]), np.array([0.55, 0.27, 0.07]))}


def _colour(arm: str) -> Any:
    """The arm's colour. SFT-EM + hard arms shade from light green to olive as the share
    grows; a verification-iteration arm (`verify_iters_of`) from pale to deep purple (GRPO) or
    brown (PPO) as V grows; an arm no rule knows gets None (matplotlib's cycle)."""
    share = hard_share(arm)
    if share is not None:
        light, dark = np.array([0.60, 0.87, 0.54]), np.array([0.50, 0.50, 0.0])
        return tuple(light + min(1.0, share / 0.3) * (dark - light))
    if (v_arm := verify_iters_of(arm)) is not None:
        light, dark = V_SHADES[v_arm[0]]
        return tuple(light + min(1.0, np.log10(v_arm[1])) * (dark - light))
    for suffix, colour in RL_VARIANT_COLOURS.items():
        if arm.endswith(suffix):
            return colour
    return ARM_COLOURS.get(arm)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mean_curve(study: Study, arm: str, split: str | None) -> tuple[list[int], list[float],
                                                                   list[float]]:
    """Mean (± se over runs) success by step; split None: ID validation (the pick's)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in study.runs.get(arm, []):
        if split is None:
            for step, value in run.validation.items():
                by_step[step].append(value)
            continue
        for row in run.curve:
            if row["split"] == split:
                by_step[row["step"]].append(row["success"])
    steps = sorted(by_step)
    means = [statistics.fmean(by_step[s]) for s in steps]
    ses = [statistics.stdev(by_step[s]) / len(by_step[s]) ** 0.5 if len(by_step[s]) > 1 else 0.0
           for s in steps]
    return steps, means, ses


def success_curves(study: Study, out: Path) -> Path | None:
    """Success vs training step to the full budget, one panel per split plus ID validation
    (the checkpoint pick's), one line per arm (mean ± se over runs); Init dashed; each arm's
    mean best-on-validation step marked on the validation panel."""
    panels: list[str | None] = [*study.splits, None]
    arms = [a for a in study.arms() if hard_share(a) is None and a != "init"]
    if not study.splits or not arms:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4), squeeze=False)
    # The budget's steps, or further where an arm ran past them (FLOPs-matched arms do).
    last = budget = study.plan.get("budget", {}).get("steps") or 0
    for ax, split in zip(axes[0], panels):
        for arm in arms:
            steps, means, ses = _mean_curve(study, arm, split)
            if split is None and steps and steps[0] != 0:
                init = _mean_curve(study, "init", None)
                if init[0]:
                    steps, means, ses = [0, *steps], [init[1][0], *means], [0.0, *ses]
            if not steps:
                continue
            last = max(last, steps[-1])
            ax.plot(steps, [100 * m for m in means], marker="o", ms=3, label=arm,
                    color=_colour(arm))
            ax.fill_between(steps, [100 * (m - e) for m, e in zip(means, ses)],
                            [100 * (m + e) for m, e in zip(means, ses)], alpha=0.15,
                            color=_colour(arm))
            if split is None:
                best = [r.step("best") for r in study.runs[arm] if r.step("best")]
                if best:
                    b = statistics.fmean(best)
                    ax.axvline(b, color=_colour(arm), lw=0.8, ls=":")
        init = study.success("init", split, "last") if split else None
        if init:
            ax.axhline(100 * init[0], color="#555555", ls="--", lw=1, label="init")
        if budget:
            ax.set_xlim(0, last * 1.02)
        ax.set_title(split or "ID validation (picks the best checkpoint; dotted: best step)",
                     fontsize=9 if split is None else 11)
        ax.set_xlabel("training step")
        ax.set_ylabel("success (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    return _save(fig, out)


def success_vs_gflops(study: Study, out: Path) -> Path | None:
    """OOD (and ID) success against training compute in the study's GFLOPs
    (6N(D_init + D) + 2N*D_buffer, "SFT Memorizes, RL Generalizes" Figures 5-6), counted from
    each run's start (its 6N*D_init, the same for the arms of a start, is subtracted): one
    panel per evaluated split, OOD first, one line per arm (means over runs per checkpoint)."""
    splits = [*study.ood_splits, *(s for s in study.splits if s not in study.ood_splits)]
    arms = [a for a in study.arms() if a != "init"]
    lines: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for arm in arms:
        for split in splits:
            by_step: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for run in study.runs.get(arm, []):
                rows = [r for r in run.curve
                        if r["split"] == split and r.get("gflops") is not None]
                # The start's own compute (6N*D_init at step 0) is every warm arm's and would
                # stack them all at one x: plot what each run spent past its start.
                spent = min((r["gflops"] for r in rows), default=0.0)
                for row in rows:
                    by_step[row["step"]].append((row["gflops"] - spent, row["success"]))
            if by_step:
                steps = sorted(by_step)
                lines[arm, split] = (
                    [statistics.fmean(g for g, _ in by_step[s]) for s in steps],
                    [100 * statistics.fmean(v for _, v in by_step[s]) for s in steps])
    if not lines:
        return None
    splits = [s for s in splits if any(k[1] == s for k in lines)]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.8 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for arm in arms:
            if (arm, split) in lines:
                x, y = lines[arm, split]
                ax.plot(x, y, marker="o", ms=3, label=arm, color=_colour(arm))
        init = study.success("init", split, "last")
        if init:
            ax.axhline(100 * init[0], color="#555555", ls="--", lw=1, label="init")
        role = "OOD" if split in study.ood_splits else "ID"
        ax.set_title(f"{split} ({role})")
        ax.set_xlabel("GFLOPs past the start (6N·D + 2N·D_buffer)")
        ax.set_ylabel("success (%)")
        ax.grid(alpha=0.3)
    # Many arms (the RL experiments): the legend goes beside the panels, not over the lines.
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, out)


def id_vs_ood(study: Study, out: Path, which: str = "best") -> Path | None:
    """Test-set ID success against OOD success, one point per arm (± se over starts)."""
    ood, id_split = study.ood_splits, study.id_split
    if id_split is None or not ood:
        return None
    fig, axes = plt.subplots(1, len(ood), figsize=(5 * len(ood), 4.2), squeeze=False)
    # Past a handful of arms, labels beside the points collide: a legend names them instead.
    crowded = len(study.arms()) > 8
    for ax, split in zip(axes[0], ood):
        labels_at: dict[tuple[float, float], int] = {}  # arms on one point: stack their labels
        for arm in study.arms():
            x = study.success(arm, id_split, "last" if arm == "init" else which)
            y = study.success(arm, split, "last" if arm == "init" else which)
            if not x or not y:
                continue
            point = (round(100 * x[0], 1), round(100 * y[0], 1))
            ax.errorbar(*point, xerr=100 * x[1], yerr=100 * y[1], fmt="o",
                        color=_colour(arm), capsize=3, label=arm)
            if crowded:
                continue
            stacked = labels_at.get(point, 0)
            labels_at[point] = stacked + 1
            ax.annotate(arm, point, textcoords="offset points", xytext=(5, 4 - 10 * stacked),
                        fontsize=8)
        ax.set_xlabel(f"ID success (%, {id_split})")
        ax.set_ylabel(f"{split} success (%)")
        ax.set_title(f"{which} checkpoint on the test sets", fontsize=10)
        ax.grid(alpha=0.3)
    if crowded:
        axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, out)


def recognition_vs_success(study: Study, out: Path) -> Path | None:
    """Card recognition against success per checkpoint ("SFT Memorizes, RL Generalizes"
    Figure 8): one panel per arm whose curve reports `recognition` (the first attempt's), ID
    test splits as stars and OOD splits as circles, opacity growing with training compute,
    each checkpoint's ID and OOD points joined; means over runs per step."""
    arms = [a for a in study.arms() if a != "init" and hard_share(a) is None and any(
        "recognition" in row for run in study.runs[a] for row in run.curve)]
    if not arms:
        return None
    marks = {s: ("*", "#d62728") for s in study.with_role("test")}
    blues = ["#1f77b4", "#17becf", "#393b79"]
    marks.update({s: ("o", blues[j % len(blues)]) for j, s in enumerate(study.ood_splits)})
    cols = min(4, len(arms))
    rows_n = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.8 * rows_n), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[len(arms):]:
        ax.set_visible(False)
    for ax, arm in zip(axes.flat, arms):
        points: dict[str, dict[int, tuple[float, float]]] = {}
        for split in marks:
            by_step: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for run in study.runs[arm]:
                for row in run.curve:
                    if row["split"] == split and "recognition" in row:
                        by_step[row["step"]].append((row["success"], row["recognition"]))
            points[split] = {s: (100 * statistics.fmean(x for x, _ in v),
                                 100 * statistics.fmean(y for _, y in v))
                             for s, v in sorted(by_step.items())}
        steps = sorted({s for found in points.values() for s in found})
        shade = {s: 0.25 + 0.75 * j / max(1, len(steps) - 1) for j, s in enumerate(steps)}
        ids = [s for s in points if marks[s][0] == "*"]
        for step in steps:  # the same checkpoint's ID point joined to each OOD point
            for id_split in ids:
                for split in (s for s in points if s not in ids):
                    if step in points[id_split] and step in points[split]:
                        ax.plot(*zip(points[id_split][step], points[split][step]),
                                color="#aaaaaa", lw=0.5, ls=":", alpha=shade[step])
        for split, found in points.items():
            if not found:
                continue
            marker, colour = marks[split]
            ax.plot(*zip(*found.values()), color=colour, lw=1.2, alpha=0.6)
            for step, xy in found.items():
                ax.scatter(*xy, marker=marker, s=70 if marker == "*" else 36, color=colour,
                           alpha=shade[step], label=split if step == steps[-1] else None)
        ax.set_title(arm)
        ax.set_xlabel("success (%)")
        ax.tick_params(labelbottom=True)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("recognition (%, first attempt)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       title="faint -> solid:\nmore compute;\ndotted: one checkpoint",
                       title_fontsize=7)
    return _save(fig, out)


def pass_rate_histogram(study: Study, out: Path) -> Path | None:
    """Samples by number of correct rollouts, one bar group per start, coloured by bucket."""
    summaries = study.difficulty
    if not summaries:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    width = 0.8 / len(summaries)
    titles = []
    for j, (start, summary) in enumerate(sorted(summaries.items())):
        hist = summary["pass_rate_histogram"]
        k = len(hist) - 1
        colours = [BUCKET_COLOURS["hard"]] + [BUCKET_COLOURS["medium"]] * (k - 1) + [
            BUCKET_COLOURS["easy"]]
        xs = np.arange(len(hist)) + (j - (len(summaries) - 1) / 2) * width
        ax.bar(xs, list(hist.values()), width=width, color=colours,
               alpha=1.0 - 0.25 * j / max(1, len(summaries) - 1), edgecolor="black", lw=0.3)
        b = summary["buckets"]
        titles.append(f"start {start}: {b['easy']}/{b['medium']}/{b['hard']}")
        ax.set_xticks(np.arange(len(hist)), list(hist))
    ax.set_title(f"pass rate over k rollouts, bars per start (easy/medium/hard: "
                 f"{'; '.join(titles)})", fontsize=8)
    ax.set_xlabel("correct rollouts")
    ax.set_ylabel("samples")
    return _save(fig, out)


def hard_ratio(study: Study, out: Path, which: str = "best") -> Path | None:
    """OOD (and ID) test success of SFT-EM as the share of hard samples grows."""
    points = study.hard_ratio_arms()
    if points and "sft-em" in study.runs:
        points.insert(0, (0.0, "sft-em"))
    if len(points) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for split in study.splits:
        vals = [study.success(arm, split, which) for _, arm in points]
        xs = [100 * r for (r, _), v in zip(points, vals) if v]
        ys = [100 * v[0] for v in vals if v]
        es = [100 * v[1] for v in vals if v]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=split)
    ax.set_xlabel("hard samples added to SFT-EM (% of the set)")
    ax.set_ylabel(f"success (%, {which} checkpoint)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


def grad_norms(study: Study, out: Path) -> Path | None:
    """Per-bucket gradient norm during SFT (the DC-SFT study's proposed mechanism)."""
    rows = [(run.arm, r) for arm in study.arms() for run in study.runs[arm]
            for r in run.grad_norms]
    if not rows:
        return None
    arms = sorted({a for a, _ in rows})
    cols = min(4, len(arms))
    rows_n = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(arms):]:
        ax.set_visible(False)
    for ax, arm in zip(axes.flat, arms):
        for bucket, colour in BUCKET_COLOURS.items():
            by_step: dict[int, list[float]] = defaultdict(list)
            for a, r in rows:
                if a == arm and r["bucket"] == bucket:
                    by_step[r["step"]].append(r["grad_norm"])
            if by_step:
                steps = sorted(by_step)
                ax.plot(steps, [statistics.fmean(by_step[s]) for s in steps], color=colour,
                        label=bucket)
        ax.set_title(arm)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("gradient norm (probe batch)")
    axes[0][0].legend(fontsize=8)
    return _save(fig, out)


def costs(study: Study, out: Path) -> Path | None:
    """Training cost per arm in FLOPs, CPU seconds and wall seconds (mean per start); arms
    curated by difficulty stacked with the difficulty pass, as the study counts them."""
    from gengap.report.claims import UNITS, arm_cost, difficulty_cost

    arms = [a for a in study.arms() if any(r.budget for r in study.runs[a])]
    if not arms:
        return None
    fig, axes = plt.subplots(1, len(UNITS), figsize=(4.2 * len(UNITS) + 1, 3.8), squeeze=False)
    for ax, (unit, name) in zip(axes[0], UNITS.items()):
        train = []
        for a in arms:
            values = [v for r in study.runs[a] if (v := arm_cost(r.budget, unit)) is not None]
            train.append(statistics.fmean(values) if values else 0.0)
        extras = [v for d in study.difficulty.values()
                  if (v := difficulty_cost(d, unit)) is not None]
        difficulty = statistics.fmean(extras) if extras else 0.0
        # DC-SFT arms (curated by difficulty) pay for the difficulty pass; SFT-all does not.
        extra = [difficulty if study.arm_spec(a).get("kind") == "sft"
                 and study.arm_spec(a).get("data") != "all" else 0.0 for a in arms]
        ax.bar(arms, train, color=[_colour(a) or "#999999" for a in arms], label="training")
        ax.bar(arms, extra, bottom=train, color="#bbbbbb", label="difficulty pass")
        ax.set_title(name + (" (shown only: load changes it)" if unit == "wall_seconds"
                             else ""), fontsize=10)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0][0].legend(fontsize=8)
    return _save(fig, out)


def lr_sweeps(study: Study, out: Path) -> Path | None:
    """ID-validation and OOD success against learning rate for every swept arm and start."""
    if not study.sweeps:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False, sharex=True)
    styles = ["-", "--", ":", "-."]
    for j, (_start, sweeps) in enumerate(sorted(study.sweeps.items())):
        for arm, sweep in sweeps.items():
            lrs = sweep["lrs"]
            label = arm if j == 0 else None
            style = styles[j % len(styles)]
            axes[0][0].plot(lrs, [100 * v for v in sweep["id_val"]], marker="o", ls=style,
                            color=_colour(arm), label=label, ms=3)
            if sweep.get("ood") and None not in sweep["ood"]:
                axes[0][1].plot(lrs, [100 * v for v in sweep["ood"]], marker="o", ls=style,
                                color=_colour(arm), label=label, ms=3)
            picked = sweep.get("picked")
            if picked in lrs:
                axes[0][0].scatter([picked], [100 * sweep["id_val"][lrs.index(picked)]], s=90,
                                   facecolors="none", edgecolors="black")
    for ax, title in zip(axes[0], ("ID validation (picks the lr; circles: picked)",
                                   "OOD (reported, never used)")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (line style: start)")
        ax.set_ylabel("success (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, out)


def intervals(runs: dict[str, list[Any]], out: Path, margin: float) -> Path | None:
    """Every verdict's paired difference with its interval, one row per comparison and one
    marker per run (this run, the replicate): the verdict interval (bar), the bootstrap part
    (thick), 0 and the non-inferiority line."""
    labelled = [(name, p) for name, parts in runs.items() for p in parts
                if p.interval is not None]
    if not labelled:
        return None
    labels = list(dict.fromkeys(p.label for _, p in labelled))
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.6))
    names = list(runs)
    for name, part in labelled:
        j = names.index(name)
        y = labels.index(part.label) + (j - (len(names) - 1) / 2) * 0.3
        i = part.interval
        colour = {"agrees": "#2ca02c", "disagrees": "#d62728"}.get(part.verdict, "#555555")
        ax.plot([100 * i.low, 100 * i.high], [y, y], color=colour, lw=1.5)
        ax.plot([100 * i.bootstrap[0], 100 * i.bootstrap[1]], [y, y], color=colour, lw=4,
                alpha=0.5)
        ax.plot(100 * i.estimate, y, "o" if j == 0 else "s", color=colour,
                label=f"{name}" if part.label == labelled[0][1].label else None)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(-100 * margin, color="black", lw=0.6, ls=":")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("paired difference (points); thin: verdict interval, thick: bootstrap part")
    ax.grid(alpha=0.3, axis="x")
    if len(names) > 1:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out)
