"""Read a study directory (finished or partial) into plain tables for the report.

Layout written by `gengap.study`:

    DIR/study.json                       the resolved config (and its fingerprint)
    DIR/plan.json                        arms as data, the task's splits by role, references
    DIR/difficulty/summary.json          the difficulty pass (bucket counts, histogram, time)
    DIR/runs/<arm>/seed-<s>/curve.jsonl  {"step", "split", "success", "success_stderr", ...}
    DIR/runs/<arm>/seed-<s>/budget.json  steps, epochs, wall seconds, tokens, FLOPs, lr
    DIR/runs/<arm>/seed-<s>/grad_norms.jsonl    SFT arms: {"step", "bucket", "grad_norm"}
    DIR/runs/<arm>/seed-<s>/log_history.jsonl   TRL's logs (GRPO: frac_reward_zero_std)
    DIR/lr_sweep/<arm>.json              {"lrs", "id_val", "ood", "picked"}
    DIR/data/skipped.json                {arm: why its SFT data could not be curated}

Run directories are `gengap train` outputs (see `gengap.train.common`).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.arms import hard_share

SKIPPED_FILE = "skipped.json"  # DIR/data/skipped.json (written by the study)


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
class Run:
    """One arm trained with one seed."""

    arm: str
    seed: int
    curve: list[dict[str, Any]]
    budget: dict[str, Any] | None
    grad_norms: list[dict[str, Any]]
    train_log: list[dict[str, Any]]

    def final(self, split: str) -> dict[str, Any] | None:
        """The evaluation at the last step that has `split`."""
        rows = [r for r in self.curve if r["split"] == split]
        return max(rows, key=lambda r: r["step"]) if rows else None


@dataclass
class Study:
    """Everything the report needs, as read from disk."""

    root: Path
    meta: dict[str, Any]
    difficulty: dict[str, Any] | None
    plan: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[Run]] = field(default_factory=dict)
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # arm -> why it was not trained

    @property
    def splits(self) -> list[str]:
        """The evaluated splits (the study's plan; older studies: their config)."""
        return list(self.plan.get("eval_splits")
                    or self.meta.get("config", {}).get("eval_splits") or [])

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

    def final_success(self, arm: str, split: str) -> tuple[float, float, int] | None:
        """Mean and standard error over seeds of the final success (binomial se for 1 seed)."""
        finals = [f for run in self.runs.get(arm, []) if (f := run.final(split))]
        if not finals:
            return None
        values = [f["success"] for f in finals]
        mean = statistics.fmean(values)
        if len(values) > 1:
            se = statistics.stdev(values) / math.sqrt(len(values))
        else:
            se = finals[0].get("success_stderr", 0.0)
        return mean, se, len(values)


def load_study(root: str | Path) -> Study:
    """Read whatever a (possibly partial) study directory holds."""
    root = Path(root)
    study = Study(root, _json(root / "study.json") or {},
                  _json(root / "difficulty" / "summary.json"),
                  plan=_json(root / "plan.json") or {},
                  skipped=_json(root / "data" / SKIPPED_FILE) or {})
    runs_dir = root / "runs"
    if runs_dir.is_dir():
        for arm_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
            for seed_dir in sorted(arm_dir.glob("seed-*")):
                run = Run(
                    arm=arm_dir.name,
                    seed=int(seed_dir.name.split("-", 1)[1]),
                    curve=_jsonl(seed_dir / "curve.jsonl"),
                    budget=_json(seed_dir / "budget.json"),
                    grad_norms=_jsonl(seed_dir / "grad_norms.jsonl"),
                    train_log=_jsonl(seed_dir / "log_history.jsonl"),
                )
                if run.curve or run.budget:
                    study.runs.setdefault(arm_dir.name, []).append(run)
    for sweep in sorted((root / "lr_sweep").glob("*.json")):
        if (data := _json(sweep)) is not None:
            study.sweeps[sweep.stem] = data
    return study
