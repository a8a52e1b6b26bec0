"""An exact solver as a table over every hand.

There are only C(13+3, 4) = 1,820 multisets of four values in 1..13, so we solve them all once
per target and look hands up. The solution *strings* follow the study's enumeration (every
distinct ordering of the numbers x every operator triple x seven bracket patterns, written
without spaces), because its partial-credit reward asks whether a formula is a prefix of one of
them. Values are exact: shapes are screened over all hands at once with numpy floats and every
hit is confirmed with Fractions, so 8/(3-8/3) counts (the study's float check drops it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

import numpy as np

from gengap.tasks.generalpoints.arithmetic import evaluate, tokenize

# The study's bracket patterns over "a o b o c o d", in its order: none, five single pairs,
# and the double pair (a o b) o (c o d).
BRACKET_PATTERNS = (
    "{0}{4}{1}{5}{2}{6}{3}",
    "({0}{4}{1}){5}{2}{6}{3}",
    "({0}{4}{1}{5}{2}){6}{3}",
    "{0}{4}({1}{5}{2}){6}{3}",
    "{0}{4}({1}{5}{2}{6}{3})",
    "{0}{4}{1}{5}({2}{6}{3})",
    "({0}{4}{1}){5}({2}{6}{3})",
)
MULTISETS: tuple[tuple[int, ...], ...] = tuple(
    itertools.combinations_with_replacement(range(1, 14), 4)
)


@dataclass(frozen=True)
class Entry:
    """Everything known about one multiset of values for one target."""

    values: tuple[int, ...]
    solutions: tuple[str, ...]  # sorted; empty if unsolvable
    _prefixes: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def solvable(self) -> bool:
        return bool(self.solutions)

    @property
    def canonical(self) -> str | None:
        """The shortest solution (ties broken alphabetically): the oracle answer."""
        return min(self.solutions, key=lambda s: (len(s), s)) if self.solutions else None

    def solution_set(self) -> frozenset[str]:
        """The solutions as a set, for O(1) membership (cached)."""
        if "set" not in self._prefixes:
            self._prefixes["set"] = frozenset(self.solutions)
        return self._prefixes["set"]

    def prefixes(self) -> frozenset[str]:
        """Every prefix of every solution (built on first use, then cached)."""
        if "all" not in self._prefixes:
            self._prefixes["all"] = frozenset(
                s[:i] for s in self.solutions for i in range(1, len(s) + 1)
            )
        return self._prefixes["all"]


@cache
def solution_table(target: int = 24) -> dict[tuple[int, ...], Entry]:
    """Solve all 1,820 multisets for `target` (about a second; cached per process)."""
    # One row per (multiset, distinct ordering of its values).
    rows: list[tuple[int, tuple[int, ...]]] = []
    for m, values in enumerate(MULTISETS):
        rows.extend((m, perm) for perm in sorted(set(itertools.permutations(values))))
    owner = np.array([m for m, _ in rows])
    perms = [p for _, p in rows]
    columns = np.array(perms, dtype=np.float64).T  # 4 x rows

    found: list[set[str]] = [set() for _ in MULTISETS]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for ops in itertools.product("+-*/", repeat=3):
            for pattern in BRACKET_PATTERNS:
                shape = tokenize(pattern.format("0", "1", "2", "3", *ops))
                # Leaves are the digit placeholders 0..3; each maps to one column.
                values = evaluate(shape, leaf=lambda i: columns[i])
                for r in np.flatnonzero(np.abs(values - target) < 1e-6):
                    text = pattern.format(*perms[r], *ops)
                    if _exact(text) == target:
                        found[owner[r]].add(text)
    return {
        values: Entry(values, tuple(sorted(found[m]))) for m, values in enumerate(MULTISETS)
    }


def _exact(formula: str) -> Fraction | None:
    try:
        return evaluate(tokenize(formula))
    except Exception:  # division by zero inside a float-screened hit
        return None


def lookup(values: tuple[int, ...] | list[int], target: int = 24) -> Entry:
    """The table entry for four card values (any order)."""
    return solution_table(target)[tuple(sorted(values))]
