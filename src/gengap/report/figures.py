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

from gengap.arms import hard_share
from gengap.report.collect import Study

ARM_COLOURS = {
    "init": "#555555", "sft-all": "#d62728", "sft-e": "#ff9896", "sft-m": "#9467bd",
    "sft-h": "#8c564b", "sft-em": "#2ca02c", "grpo": "#1f77b4", "grpo-filtered": "#17becf",
}
BUCKET_COLOURS = {"easy": "#2ca02c", "medium": "#ff7f0e", "hard": "#d62728"}


def _colour(arm: str) -> Any:
    """The arm's colour; SFT-EM + hard arms shade from light green to olive as the share grows."""
    share = hard_share(arm)
    if share is not None:
        light, dark = np.array([0.60, 0.87, 0.54]), np.array([0.50, 0.50, 0.0])
        return tuple(light + min(1.0, share / 0.3) * (dark - light))
    return ARM_COLOURS.get(arm)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mean_curve(study: Study, arm: str, split: str) -> tuple[list[int], list[float], list[float]]:
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in study.runs.get(arm, []):
        for row in run.curve:
            if row["split"] == split:
                by_step[row["step"]].append(row["success"])
    steps = sorted(by_step)
    means = [statistics.fmean(by_step[s]) for s in steps]
    ses = [statistics.stdev(by_step[s]) / len(by_step[s]) ** 0.5 if len(by_step[s]) > 1 else 0.0
           for s in steps]
    return steps, means, ses


def success_curves(study: Study, out: Path) -> Path | None:
    """Success vs training step, one panel per split, one line per arm (mean +- se)."""
    splits = study.splits
    arms = [a for a in study.arms() if hard_share(a) is None and a != "init"]
    if not splits or not arms:
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 4), squeeze=False)
    init = {s: study.final_success("init", s) for s in splits}
    for ax, split in zip(axes[0], splits):
        for arm in arms:
            steps, means, ses = _mean_curve(study, arm, split)
            if not steps:
                continue
            ax.plot(steps, [100 * m for m in means], marker="o", ms=3, label=arm,
                    color=_colour(arm))
            ax.fill_between(steps, [100 * (m - e) for m, e in zip(means, ses)],
                            [100 * (m + e) for m, e in zip(means, ses)], alpha=0.15,
                            color=_colour(arm))
        if init[split]:
            ax.axhline(100 * init[split][0], color="#555555", ls="--", lw=1, label="init")
        ax.set_title(split)
        ax.set_xlabel("training step")
        ax.set_ylabel("success (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    return _save(fig, out)


def id_vs_ood(study: Study, out: Path) -> Path | None:
    """Final ID success against final OOD success, one point per arm (with error bars)."""
    ood, id_split = study.ood_splits, study.id_split
    if id_split is None or not ood:
        return None
    fig, axes = plt.subplots(1, len(ood), figsize=(5 * len(ood), 4.2), squeeze=False)
    for ax, split in zip(axes[0], ood):
        labels_at: dict[tuple[float, float], int] = {}  # arms on one point: stack their labels
        for arm in study.arms():
            x, y = study.final_success(arm, id_split), study.final_success(arm, split)
            if not x or not y:
                continue
            point = (100 * x[0], 100 * y[0])
            ax.errorbar(*point, xerr=100 * x[1], yerr=100 * y[1], fmt="o",
                        color=_colour(arm), capsize=3)
            stacked = labels_at.get(point, 0)
            labels_at[point] = stacked + 1
            ax.annotate(arm, point, textcoords="offset points", xytext=(5, 4 - 10 * stacked),
                        fontsize=8)
        ax.set_xlabel(f"ID success (%, {id_split})")
        ax.set_ylabel(f"{split} success (%)")
        ax.grid(alpha=0.3)
    return _save(fig, out)


def pass_rate_histogram(summary: dict[str, Any] | None, out: Path) -> Path | None:
    """Samples by number of correct rollouts, coloured by bucket, with bucket sizes."""
    if not summary:
        return None
    hist = summary["pass_rate_histogram"]
    labels = list(hist)
    k = len(labels) - 1
    colours = [BUCKET_COLOURS["hard"]] + [BUCKET_COLOURS["medium"]] * (k - 1) + [
        BUCKET_COLOURS["easy"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.bar(labels, list(hist.values()), color=colours)
    b = summary["buckets"]
    ax.set_title(f"pass rate over k={k} rollouts (n={summary['n']}): easy {b['easy']}, "
                 f"medium {b['medium']}, hard {b['hard']}", fontsize=10)
    ax.set_xlabel("correct rollouts")
    ax.set_ylabel("samples")
    return _save(fig, out)


def hard_ratio(study: Study, out: Path) -> Path | None:
    """OOD (and ID) success of SFT-EM as the share of hard samples grows."""
    points = study.hard_ratio_arms()
    if points and "sft-em" in study.runs:
        points.insert(0, (0.0, "sft-em"))
    if len(points) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for split in study.splits:
        vals = [study.final_success(arm, split) for _, arm in points]
        xs = [100 * r for (r, _), v in zip(points, vals) if v]
        ys = [100 * v[0] for v in vals if v]
        es = [100 * v[1] for v in vals if v]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=split)
    ax.set_xlabel("hard samples added to SFT-EM (% of the set)")
    ax.set_ylabel("success (%)")
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


def wall_time(study: Study, out: Path) -> Path | None:
    """Wall time per arm; DC-SFT arms stacked with the difficulty pass, as the study counts."""
    arms = [a for a in study.arms() if any(r.budget for r in study.runs[a])]
    if not arms:
        return None
    difficulty = (study.difficulty or {}).get("speed", {}).get("compute_seconds") or 0.0
    train = [statistics.fmean(r.budget["wall_seconds"] for r in study.runs[a] if r.budget)
             for a in arms]
    # DC-SFT arms (curated by difficulty) pay for the difficulty pass; SFT-all does not.
    extra = [difficulty if study.arm_spec(a).get("kind") == "sft"
             and study.arm_spec(a).get("data") != "all" else 0.0 for a in arms]
    fig, ax = plt.subplots(figsize=(1.0 * len(arms) + 3, 3.8))
    ax.bar(arms, train, color=[_colour(a) or "#999999" for a in arms], label="training")
    ax.bar(arms, extra, bottom=train, color="#bbbbbb", label="difficulty pass")
    ax.set_ylabel("wall time (s)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    return _save(fig, out)


def lr_sweeps(study: Study, out: Path) -> Path | None:
    """ID-validation and OOD success against learning rate for every swept arm."""
    if not study.sweeps:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False, sharex=True)
    for arm, sweep in study.sweeps.items():
        lrs = sweep["lrs"]
        axes[0][0].plot(lrs, [100 * v for v in sweep["id_val"]], marker="o",
                        color=_colour(arm), label=arm)
        if sweep.get("ood"):
            axes[0][1].plot(lrs, [100 * v for v in sweep["ood"]], marker="o",
                            color=_colour(arm), label=arm)
        picked = sweep.get("picked")
        if picked in lrs:
            axes[0][0].scatter([picked], [100 * sweep["id_val"][lrs.index(picked)]], s=90,
                               facecolors="none", edgecolors="black")
    for ax, title in zip(axes[0], ("ID validation (picks the lr)", "OOD (reported, never used)")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("success (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(fig, out)
