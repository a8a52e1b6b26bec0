"""The difficulty report: why are samples hard?

`write_report(DIR)` reads a finished difficulty run and writes, into ``DIR/report/``:

- ``pass_rate_histogram.png``: samples by number of correct rollouts, coloured by bucket;
- ``categories.png``: mean pass rate per value of each task category;
- ``report.md``: bucket sizes, the histogram as a table, one breakdown table per category
  (GeneralPoints: face cards in the hand, number of solutions; classification: per class,
  hardest first) and a few examples per bucket (prompt, target, rollouts if stored).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gengap.difficulty.estimate import (
    BUCKETS,
    config_from_dict,
    load_records,
    load_run_config,
    pass_rate_histogram,
)
from gengap.io import atomic_open
from gengap.tasks.base import message_text

BUCKET_COLOURS = {"hard": "#c0392b", "medium": "#e6a23c", "easy": "#27ae60"}
MAX_CATEGORY_ROWS = 15  # per-class tables over 100 classes: show the hardest ones
NUMERIC_BINS = 6


def _category_rows(records: Sequence[dict[str, Any]]) -> dict[str, dict[Any, list[dict]]]:
    groups: dict[str, dict[Any, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for name, value in json.loads(r.get("categories") or "{}").items():
            groups[name][value].append(r)
    return groups


def _bin_numeric(values_to_rows: dict[Any, list[dict]]) -> dict[str, list[dict]]:
    """Group a numeric category with many values into ranges of about equal size."""
    values = sorted(values_to_rows)
    total = sum(len(rows) for rows in values_to_rows.values())
    bins: dict[str, list[dict]] = {}
    current: list[dict] = []
    first = None
    for value in values:
        first = value if first is None else first
        current += values_to_rows[value]
        seen = sum(len(rows) for rows in bins.values()) + len(current)
        if seen >= total * (len(bins) + 1) / NUMERIC_BINS or value == values[-1]:
            bins[str(first) if first == value else f"{first}-{value}"] = current
            current, first = [], None
    return bins


def category_breakdown(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per category: one row per value (or value range) with count, mean pass rate, buckets.

    Numeric categories with more than `NUMERIC_BINS * 2` values are binned into ranges of about
    equal size; other categories with many values are sorted hardest first.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for name, by_value in _category_rows(records).items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in by_value)
        groups: dict[Any, list[dict]]
        if numeric and len(by_value) > NUMERIC_BINS * 2:
            groups = _bin_numeric(by_value)  # already in increasing order
        else:
            groups = {v: by_value[v] for v in sorted(by_value, key=lambda v: (str(type(v)), v))}
        keys = list(groups)
        rows = []
        for key in keys:
            members = groups[key]
            n = len(members)
            row = {"value": key, "n": n,
                   "mean_pass_rate": sum(m["pass_rate"] for m in members) / n}
            for bucket in BUCKETS:
                row[bucket] = sum(m["bucket"] == bucket for m in members) / n
            rows.append(row)
        if not numeric and len(rows) > MAX_CATEGORY_ROWS:
            rows.sort(key=lambda r: (r["mean_pass_rate"], -r["n"]))
        out[name] = rows
    return out


def plot_histogram(records: Sequence[dict[str, Any]], k: int, path: Path, title: str) -> None:
    """Bar chart of samples by correct rollouts (0..k), coloured by bucket."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    counts = list(pass_rate_histogram(records, k).values())
    colours = [BUCKET_COLOURS["hard"]] + [BUCKET_COLOURS["medium"]] * (k - 1) + \
        [BUCKET_COLOURS["easy"]]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    bars = ax.bar(range(k + 1), counts, color=colours[: k + 1])
    ax.bar_label(bars, labels=[str(c) for c in counts], fontsize=8, padding=2)
    ax.set_xticks(range(k + 1), [f"{j}/{k}" for j in range(k + 1)])
    ax.set_xlabel("correct rollouts (pass rate)")
    ax.set_ylabel("samples")
    ax.set_title(title, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=BUCKET_COLOURS[b]) for b in BUCKETS]
    totals = {b: sum(r["bucket"] == b for r in records) for b in BUCKETS}
    ax.legend(handles, [f"{b} ({totals[b]})" for b in BUCKETS], frameon=False)
    ax.margins(y=0.12)
    fig.tight_layout()
    _save(fig, path)


def plot_categories(breakdown: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Mean pass rate per category value, one panel per category; False if none."""
    # A category with one value (e.g. the face rule of an ID-only split) says nothing here.
    names = [name for name, rows in breakdown.items() if len(rows) > 1]
    if not names:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), dpi=110,
                             squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = breakdown[name][:MAX_CATEGORY_ROWS]
        # Stacked bucket shares show *how* the pass rate moves, not only its mean.
        labels = [f"{r['value']}\nn={r['n']}" for r in rows]
        bottom = [0.0] * len(rows)
        for bucket in ("hard", "medium", "easy"):
            shares = [r[bucket] for r in rows]
            ax.bar(labels, shares, bottom=bottom, color=BUCKET_COLOURS[bucket], label=bucket)
            bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
        ax.plot(labels, [r["mean_pass_rate"] for r in rows], "k.-", label="mean pass rate")
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelrotation=45 if len(rows) > 6 else 0, labelsize=8)
    axes[0][0].set_ylabel("share of samples")
    handles, legend_labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, fontsize=8, frameon=False, loc="upper center",
               ncol=4, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    _save(fig, path)
    return True


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def pick_examples(records: Sequence[dict[str, Any]], per_bucket: int, seed: int = 0
                  ) -> dict[str, list[dict[str, Any]]]:
    """A few random records per bucket (seeded, so the report is reproducible)."""
    rng = random.Random(seed)
    out = {}
    for bucket in BUCKETS:
        members = [r for r in records if r["bucket"] == bucket]
        out[bucket] = sorted(rng.sample(members, min(per_bucket, len(members))),
                             key=lambda r: r["index"])
    return out


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_markdown(
    summary: dict[str, Any],
    breakdown: dict[str, list[dict[str, Any]]],
    examples: dict[str, list[dict[str, Any]]],
    task: Any,
    figures: list[str],
) -> str:
    """The report's markdown text."""
    n, k = summary["n"], summary["k"]
    s = summary["sampling"]
    lines = [
        f"# Difficulty report: {summary['task']} / {summary['split']}",
        "",
        f"Model `{summary['model'].get('spec')}` ({summary['model'].get('path') or '-'}), "
        f"{n} samples x k={k} rollouts at temperature {s['temperature']}, top_p {s['top_p']}, "
        f"top_k {s['top_k']}, max {s['max_new_tokens']} new tokens, seed {s['seed']}. "
        "Buckets as in DC-SFT: easy = k/k correct, hard = 0/k, medium = anything between.",
        "",
        "| bucket | samples | share |",
        "|---|---:|---:|",
    ]
    for bucket in BUCKETS:
        count = summary["buckets"][bucket]
        lines.append(f"| {bucket} | {count} | {count / n:.1%} |")
    lines += ["", f"Mean pass rate: {summary['mean_pass_rate']:.3f}.", ""]
    speed = summary.get("speed", {})
    if speed.get("samples_per_second"):
        lines += [f"Cost: {speed['compute_seconds']:.1f} s of sampling and verification, "
                  f"{speed['samples_per_second']:.1f} samples/s "
                  f"({speed['rollouts_per_second']:.1f} rollouts/s).", ""]
    lines += [f"![{name}]({name})" for name in figures] + [""]
    lines += ["## Pass-rate histogram", "", "| correct | samples |", "|---|---:|"]
    lines += [f"| {label} | {count} |" for label, count in summary["pass_rate_histogram"].items()]
    for name, rows in breakdown.items():
        lines += ["", f"## By {name}", ""]
        if len(rows) > MAX_CATEGORY_ROWS:
            lines += [f"{len(rows)} values; the {MAX_CATEGORY_ROWS} hardest are shown.", ""]
        lines += [f"| {name} | samples | mean pass rate | easy | medium | hard |",
                  "|---|---:|---:|---:|---:|---:|"]
        for row in rows[:MAX_CATEGORY_ROWS]:
            lines.append(f"| {row['value']} | {row['n']} | {row['mean_pass_rate']:.3f} | "
                         f"{row['easy']:.0%} | {row['medium']:.0%} | {row['hard']:.0%} |")
    lines += ["", "## Examples per bucket"]
    for bucket in BUCKETS:
        lines += ["", f"### {bucket}"]
        if not examples[bucket]:
            lines += ["", "(none)"]
        for r in examples[bucket]:
            sample = task.sample_from_row(json.loads(r["task_row"]))
            cats = json.loads(r.get("categories") or "{}")
            lines += [
                "",
                f"**{r['id']}**: {r['n_correct']}/{r['k']} correct"
                + ("; " + ", ".join(f"{key}={_fmt(v)}" for key, v in cats.items()) if cats
                   else ""),
                "",
                "```text",
                message_text(task.messages(sample), image="<image>", sep="\n").strip()[:600],
                "```",
                f"target: `{task.target(sample)}`",
            ]
            if r.get("generations"):
                lines += ["", "rollouts:"]
                for text, ok in list(zip(r["generations"], r["correct"], strict=True))[:4]:
                    one_line = text.replace("\n", " ").strip()[:160]
                    lines.append(f"- {'right' if ok else 'wrong'}: `{one_line}`")
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 examples_per_bucket: int = 3, seed: int = 0) -> Path:
    """Write the report of a finished difficulty run; returns the markdown file's path."""
    from gengap.tasks.registry import build_task

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    stored = load_run_config(run_dir)
    config = config_from_dict(stored["config"])
    records = load_records(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text())
    task = build_task(config.task, config.task_options)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    title = (f"{config.task} / {config.split}: {len(records)} samples, k={config.k}, "
             f"model {Path(config.model).name}")  # a checkpoint's full path overflows the plot
    plot_histogram(records, config.k, out_dir / "pass_rate_histogram.png", title)
    figures.append("pass_rate_histogram.png")
    breakdown = category_breakdown(records)
    if plot_categories(breakdown, out_dir / "categories.png"):
        figures.append("categories.png")
    examples = pick_examples(records, examples_per_bucket, seed)
    text = render_markdown(summary, breakdown, examples, task, figures)
    path = out_dir / "report.md"
    with atomic_open(path) as f:
        f.write(text)
    return path
