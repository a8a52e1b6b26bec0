"""The stability check: the same preset from other starts, claim by claim.

`gengap reproduce --replicate` runs a study twice (DIR and DIR/replicate, with disjoint start
seeds); `stability` reads both and says, per claim, whether the verdicts are the same, and
what the two runs say pooled (all starts of both: the same rule, more starts). A claim
that agrees in one run and disagrees in the other is a flip: the verdict rule failed it. One
that is inconclusive in one run and decided in the other is not a contradiction (an interval
that excludes 0 in one run may just reach it in the other), and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gengap.report.claims import evaluate_claims
from gengap.report.collect import load_study, pooled

DECIDED = ("agrees", "disagrees")


@dataclass
class Row:
    """One claim in both runs."""

    key: str
    claim: str
    first: str
    second: str
    pooled: str = "—"

    @property
    def status(self) -> str:
        if self.first == self.second:
            return "same"
        if {self.first, self.second} == set(DECIDED):
            return "FLIP"
        if "—" in (self.first, self.second):
            return "not measured in one run"
        return "differs (not a contradiction)"


def stability(first: str | Path, second: str | Path) -> list[Row]:
    """Per claim, the verdict of each study directory."""
    one, two = load_study(first), load_study(second)
    a = {c.key: c for c in evaluate_claims(one)}
    b = {c.key: c for c in evaluate_claims(two)}
    both = {c.key: c for c in evaluate_claims(pooled(one, two))}
    return [Row(k, a[k].claim, a[k].verdict, b[k].verdict if k in b else "—",
                both[k].verdict if k in both else "—") for k in a]


def format_stability(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    width = max((len(r.claim) for r in rows), default=10)
    lines = [f"{'claim':<{width}}  {'run':<13}{'replicate':<13}{'status':<31}pooled"]
    lines += [f"{r.claim:<{width}}  {r.first:<13}{r.second:<13}{r.status:<31}{r.pooled}"
              for r in rows]
    return "\n".join(lines)
