"""Read a study directory (finished or partial) into plain tables for the report.

Layout written by `gengap.study`:

    DIR/study.json                       the resolved config (and its fingerprint)
    DIR/plan.json                        design (start -> seeds), arms as data, the task's
                                         splits by role, references, the verdict's settings
    DIR/start-<c>/difficulty/summary.json   the start's difficulty pass (buckets, cost)
    DIR/start-<c>/lr_sweep/<arm>.json       {"lrs", "id_val", "ood", "picked", "bracketed"}
    DIR/start-<c>/data/skipped.json         {arm: why its SFT data could not be curated}
    DIR/start-<c>/runs/<arm>/seed-<s>/
        curve.jsonl        {"step", "split", "success", "success_stderr", ...}
        budget.json        steps, epochs, wall and CPU seconds, tokens, FLOPs, lr
        selection.json     {"val": {step: ID-validation success}, "best_step", "last_step"}
        test/step-<N>/     `gengap eval` of checkpoint N on the test sets (samples.jsonl:
                           one row per episode, keyed by (split, id))
        grad_norms.jsonl   SFT arms: {"step", "bucket", "grad_norm"}
        log_history.jsonl  TRL's logs (GRPO: frac_reward_zero_std)

Run directories are `gengap train` outputs (see `gengap.train.common`).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gengap.arms import hard_share
from gengap.report.stats import Interval, paired_estimate, paired_interval

SKIPPED_FILE = "skipped.json"  # DIR/start-<c>/data/skipped.json (written by the study)
CHECKPOINTS = ("best", "last")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from an interrupted run
    return rows


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass
class TestEval:
    """One checkpoint on the test sets: per-split metrics and per-episode outcomes."""

    step: int
    results: dict[str, dict[str, Any]]
    outcomes: dict[str, dict[str, float]]  # split -> episode id -> success (0/1)
    # split -> metric -> episode id -> the first attempt's value (e.g. card recognition 0/1:
    # the studies measure verdict metrics with V = 1), for paired comparisons of metrics.
    metric_outcomes: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def values(self, split: str, metric: str = "success") -> dict[str, float] | None:
        """episode id -> value of `metric` on `split` (None when not measured)."""
        if metric == "success":
            return self.outcomes.get(split)
        return self.metric_outcomes.get(split, {}).get(metric)


@dataclass
class Run:
    """One arm trained on one start with one seed."""

    arm: str
    start: int
    seed: int
    curve: list[dict[str, Any]]
    budget: dict[str, Any] | None
    grad_norms: list[dict[str, Any]]
    train_log: list[dict[str, Any]]
    selection: dict[str, Any] = field(default_factory=dict)
    tests: dict[int, TestEval] = field(default_factory=dict)

    def final(self, split: str) -> dict[str, Any] | None:
        """The curve's evaluation at the last step that has `split`."""
        rows = [r for r in self.curve if r["split"] == split]
        return max(rows, key=lambda r: r["step"]) if rows else None

    def step(self, which: str) -> int | None:
        """The step of the `which` ("best" on ID validation, or "last") checkpoint."""
        return self.selection.get(f"{which}_step")

    def test(self, which: str) -> TestEval | None:
        step = self.step(which)
        return self.tests.get(step) if step is not None else None

    @property
    def validation(self) -> dict[int, float]:
        """ID-validation success by checkpoint step."""
        return {int(k): v for k, v in self.selection.get("val", {}).items()}


@dataclass
class Study:
    """Everything the report needs, as read from disk."""

    root: Path
    meta: dict[str, Any]
    plan: dict[str, Any] = field(default_factory=dict)
    difficulty: dict[int, dict[str, Any]] = field(default_factory=dict)  # start -> summary
    runs: dict[str, list[Run]] = field(default_factory=dict)
    sweeps: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[int, dict[str, str]] = field(default_factory=dict)  # start -> arm -> why

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config", {})

    @property
    def splits(self) -> list[str]:
        """The evaluated splits (the study's plan; else its config)."""
        return list(self.plan.get("eval_splits") or self.config.get("eval_splits") or [])

    @property
    def starts(self) -> list[int]:
        """Start seeds with at least one run on disk."""
        return sorted({r.start for runs in self.runs.values() for r in runs})

    @property
    def planned_starts(self) -> list[int]:
        return sorted(int(c) for c in self.plan.get("design", {})) or self.starts

    def split_info(self, split: str) -> dict[str, Any]:
        return self.plan.get("task", {}).get("splits", {}).get(split, {})

    def with_role(self, role: str) -> list[str]:
        """Evaluated splits of `role` (test, ood)."""
        return [s for s in self.splits if self.split_info(s).get("role") == role]

    @property
    def ood_splits(self) -> list[str]:
        return self.with_role("ood")

    @property
    def id_split(self) -> str | None:
        found = self.with_role("test")
        return found[0] if found else None

    def axis(self, split: str) -> str:
        return self.split_info(split).get("axis") or split

    def reference(self, claim: str, default: str) -> str:
        """What the studies published for this claim on this study's task (else `default`)."""
        return self.plan.get("task", {}).get("references", {}).get(claim, default)

    def arm_spec(self, arm: str) -> dict[str, Any]:
        return self.plan.get("arms", {}).get(arm, {})

    def arms(self) -> list[str]:
        order = ["init", *self.plan.get("arms", {})]
        return [a for a in order if a in self.runs] + sorted(set(self.runs) - set(order))

    def hard_ratio_arms(self) -> list[tuple[float, str]]:
        """(hard share, arm) of the trained SFT-EM + hard ablation arms, smallest share first."""
        shares = {arm: self.arm_spec(arm).get("hard_share", hard_share(arm))
                  for arm in self.runs}
        return sorted((share, arm) for arm, share in shares.items() if share is not None)

    @property
    def verdict_settings(self) -> dict[str, Any]:
        """checkpoint ("best" / "last"), alpha, margin (the plan's, else the defaults)."""
        found = self.plan.get("verdict", {})
        return {"checkpoint": found.get("checkpoint", "best"),
                "alpha": found.get("alpha", 0.05), "margin": found.get("margin", 0.02)}

    def runs_of(self, arm: str, start: int | None = None) -> list[Run]:
        return [r for r in self.runs.get(arm, []) if start is None or r.start == start]

    def success(self, arm: str, split: str, which: str = "best") -> tuple[float, float, int] | None:
        """Test-set success of the `which` checkpoint: (mean, standard error, runs).

        Mean over starts of each start's mean over seeds; the standard error is across starts
        (two or more), else the binomial error of the one start's episodes.
        """
        per_start, binomial = [], []
        for start in self.starts:
            values = []
            for run in self.runs_of(arm, start):
                test = run.test(which)
                if test and split in test.results:
                    values.append(test.results[split]["success"])
                    binomial.append(test.results[split].get("success_stderr", 0.0))
            if values:
                per_start.append(statistics.fmean(values))
        if not per_start:
            return None
        mean = statistics.fmean(per_start)
        if len(per_start) > 1:
            se = statistics.stdev(per_start) / math.sqrt(len(per_start))
        else:
            se = binomial[0] / math.sqrt(len(binomial))
        return mean, se, len(binomial)

    def paired_data(self, a: str, b: str, split: str, which: str = "best",
                    metric: str = "success") -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """start -> (A[seeds, episodes], B[seeds, episodes]) on the episodes both arms' runs
        of that start were tested on (aligned by episode id); `metric` other than success:
        the first attempt's verdict metric of each episode."""
        out = {}
        for start in self.starts:
            tests = {arm: [v for run in self.runs_of(arm, start)
                           if (t := run.test(which)) and (v := t.values(split, metric))]
                     for arm in (a, b)}
            if not tests[a] or not tests[b]:
                continue
            ids = set.intersection(*(set(o) for o in tests[a] + tests[b]))
            order = sorted(ids)
            if not order:
                continue
            out[start] = tuple(np.array([[o[i] for i in order] for o in tests[arm]])
                               for arm in (a, b))
        return out

    def paired(self, a: str, b: str, split: str, which: str = "best", *,
               level: float = 0.95, seed: int = 0, metric: str = "success") -> Interval | None:
        """The paired difference A - B on `split` (see `gengap.report.stats`)."""
        return paired_interval(self.paired_data(a, b, split, which, metric), level=level,
                               seed=seed)

    def paired_delta(self, a: str, b: str, split: str, which: str = "best",
                     metric: str = "success") -> float | None:
        """The paired difference's point estimate alone (no interval: cheap, for tables)."""
        return paired_estimate(self.paired_data(a, b, split, which, metric))


def pooled(first: Study, second: Study) -> Study:
    """Two runs of one preset with disjoint starts read as one study (more starts: narrower
    intervals over starts). Plan and config are the first's."""
    if set(first.starts) & set(second.starts):
        raise ValueError("the studies share start seeds: they are not independent replicates")
    merged = Study(first.root, first.meta, plan=first.plan,
                   difficulty={**first.difficulty, **second.difficulty},
                   sweeps={**first.sweeps, **second.sweeps},
                   skipped={**first.skipped, **second.skipped})
    for arm in set(first.runs) | set(second.runs):
        merged.runs[arm] = first.runs.get(arm, []) + second.runs.get(arm, [])
    return merged


def _test_evals(run_dir: Path) -> dict[int, TestEval]:
    """RUN/test/step-N: one `gengap eval` directory, or one per split size (N/whole, N/n1000)."""
    out = {}
    for step_dir in sorted((run_dir / "test").glob("step-*")):
        if not step_dir.name.split("-")[1].isdigit():
            continue
        parts = [step_dir] if (step_dir / "results.json").is_file() else sorted(
            p for p in step_dir.iterdir() if p.is_dir())
        results: dict[str, Any] = {}
        outcomes: dict[str, dict[str, float]] = {}
        metrics: dict[str, dict[str, dict[str, float]]] = {}
        for part in parts:
            found = _json(part / "results.json")
            if not found:
                continue  # an evaluation that has not finished
            results.update(found.get("results", {}))
            for row in _jsonl(part / "samples.jsonl"):
                outcomes.setdefault(row["split"], {})[row["id"]] = float(bool(row["success"]))
                first = (row.get("verdicts") or [{}])[0].get("metrics", {})
                for name, value in first.items():
                    metrics.setdefault(row["split"], {}).setdefault(name, {})[row["id"]] = (
                        float(value))
        if results:
            step = int(step_dir.name.split("-")[1])
            out[step] = TestEval(step, results, outcomes, metrics)
    return out


def load_study(root: str | Path) -> Study:
    """Read whatever a (possibly partial) study directory holds."""
    root = Path(root)
    study = Study(root, _json(root / "study.json") or {}, plan=_json(root / "plan.json") or {})
    for start_dir in sorted(root.glob("start-*")):
        tail = start_dir.name.split("-", 1)[1]
        if not tail.lstrip("-").isdigit():
            continue
        start = int(tail)
        if (summary := _json(start_dir / "difficulty" / "summary.json")) is not None:
            study.difficulty[start] = summary
        study.skipped[start] = _json(start_dir / "data" / SKIPPED_FILE) or {}
        for sweep in sorted((start_dir / "lr_sweep").glob("*.json")):
            if (data := _json(sweep)) is not None:
                study.sweeps.setdefault(start, {})[sweep.stem] = data
        runs_dir = start_dir / "runs"
        if not runs_dir.is_dir():
            continue
        for arm_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
            for seed_dir in sorted(arm_dir.glob("seed-*")):
                run = Run(
                    arm=arm_dir.name, start=start,
                    seed=int(seed_dir.name.split("-", 1)[1]),
                    curve=_jsonl(seed_dir / "curve.jsonl"),
                    budget=_json(seed_dir / "budget.json"),
                    grad_norms=_jsonl(seed_dir / "grad_norms.jsonl"),
                    train_log=_jsonl(seed_dir / "log_history.jsonl"),
                    selection=_json(seed_dir / "selection.json") or {},
                    tests=_test_evals(seed_dir),
                )
                if run.curve or run.budget or run.tests:
                    study.runs.setdefault(arm_dir.name, []).append(run)
    return study
