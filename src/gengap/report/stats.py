"""Paired comparisons of two arms: the interval a verdict reads, and the verdict rule.

The data of one comparison are, for every start (cold-start checkpoint) the two arms share,
each arm's per-episode success on the same test episodes (one row per training seed):
``{start: (A[seeds_a, episodes], B[seeds_b, episodes])}``, columns aligned by episode id.

The estimate is the mean over starts of the per-start paired difference
``D_c = mean_seeds(A_c) - mean_seeds(B_c)`` (averaged over episodes). Its interval is the wider
envelope of two intervals at the same level:

- a two-stage paired bootstrap: resample starts; within each drawn start resample its episodes
  (the same draw for both arms: the pairing) and each arm's training seeds;
- a Student-t interval over the per-start differences (C - 1 degrees of freedom), because a
  bootstrap over a handful of starts is overconfident (it cannot see start-to-start variance
  it did not draw: with 3 starts its spread is ~2.7x too narrow). With one start only the
  bootstrap over episodes (and seeds) remains, and the result says the start is not covered.

numpy does the bootstrap; the t quantile is computed here (closed-form t CDF for integer
degrees of freedom, inverted by bisection) because the stack has no scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

Arrays = Mapping[int, tuple[np.ndarray, np.ndarray]]  # start -> (A[seeds, eps], B[seeds, eps])


@dataclass
class Interval:
    """A paired difference (A - B, as a share) with the interval a verdict reads."""

    estimate: float
    low: float
    high: float
    level: float  # e.g. 0.99 (a Bonferroni-adjusted 95%)
    starts: int
    episodes: int  # paired episodes per start
    per_start: list[float] = field(default_factory=list)
    bootstrap: tuple[float, float] = (math.nan, math.nan)
    t_interval: tuple[float, float] | None = None
    discordant: float = math.nan  # share of episodes where the arms' outcomes differ

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def covers_starts(self) -> bool:
        """Whether start-to-start variance is in the interval (two or more starts)."""
        return self.starts >= 2


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer `df` (exact finite series)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        series, term = 0.0, 1.0
        if df > 1:
            series = term = 1.0
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                series += term
            series *= math.sin(theta) * math.cos(theta)
        inside = 2 / math.pi * (theta + series)
    else:
        series = term = 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= c2 * (2 * k - 1) / (2 * k)
            series += term
        inside = math.sin(theta) * series
    return 0.5 + math.copysign(inside / 2, t)


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile of Student's t with integer `df` (bisection on `t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError("p must lie in (0, 1)")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def paired_estimate(data: Arrays) -> float | None:
    """The point estimate alone (mean over starts of the per-start paired difference)."""
    diffs = [float(np.mean(a) - np.mean(b)) for a, b in data.values() if a.size and b.size]
    return float(np.mean(diffs)) if diffs else None


def paired_interval(data: Arrays, *, level: float = 0.95, n_boot: int = 2000,
                    seed: int = 0) -> Interval | None:
    """The paired difference A - B over the starts in `data` (None without data)."""
    starts = sorted(c for c, (a, b) in data.items() if a.size and b.size)
    if not starts:
        return None
    rng = np.random.default_rng(seed)
    per_start, within, discordant, episodes = [], [], [], []
    for c in starts:
        a, b = (np.asarray(x, dtype=np.uint8) for x in data[c])  # 0/1 outcomes
        if a.ndim == 1:
            a = a[None]
        if b.ndim == 1:
            b = b[None]
        n = a.shape[1]
        if b.shape[1] != n:
            raise ValueError(f"start {c}: the arms hold {a.shape[1]} and {b.shape[1]} episodes")
        episodes.append(n)
        per_start.append(float(a.mean() - b.mean()))
        discordant.append(float(np.mean(a.mean(0) != b.mean(0))))
        within.append(_within_start(a, b, n_boot, rng))
    # Stage 1: starts with replacement; each draw of a start takes one of its own within-start
    # replicates at random, so a start drawn twice contributes two independent draws.
    picks = rng.integers(0, len(starts), size=(n_boot, len(starts)))
    reps = rng.integers(0, n_boot, size=(n_boot, len(starts)))
    stacked = np.stack(within)  # (starts, n_boot)
    boot = stacked[picks, reps].mean(axis=1)
    alpha = 1 - level
    b_low, b_high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    estimate = float(np.mean(per_start))
    low, high = b_low, b_high
    t_int = None
    if len(starts) >= 2:
        se = float(np.std(per_start, ddof=1)) / math.sqrt(len(starts))
        q = t_quantile(1 - alpha / 2, len(starts) - 1)
        t_int = (estimate - q * se, estimate + q * se)
        low, high = min(low, t_int[0]), max(high, t_int[1])
    return Interval(estimate, low, high, level, len(starts), min(episodes), per_start,
                    (b_low, b_high), t_int, float(np.mean(discordant)))


def _within_start(a: np.ndarray, b: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of one start's paired difference: episodes (shared by both arms)
    and each arm's seeds resampled."""
    n = a.shape[1]
    out = np.empty(n_boot)
    chunk = max(1, 4_000_000 // max(n, 1))  # bounded memory: chunk x n indices at a time
    for lo in range(0, n_boot, chunk):
        size = min(chunk, n_boot - lo)
        # One episode draw per replicate, shared by both arms.
        idx = rng.integers(0, n, size=(size, n), dtype=np.int32)
        sa = rng.integers(0, a.shape[0], size=(size, a.shape[0]))
        sb = rng.integers(0, b.shape[0], size=(size, b.shape[0]))
        # Each seed's mean on the resampled episodes, then the resampled seeds' mean.
        a_means = np.stack([np.take(row, idx).sum(axis=1, dtype=np.int32) / n for row in a], 1)
        b_means = np.stack([np.take(row, idx).sum(axis=1, dtype=np.int32) / n for row in b], 1)
        rows = np.arange(size)[:, None]
        out[lo:lo + size] = a_means[rows, sa].mean(1) - b_means[rows, sb].mean(1)
    return out


# The verdict rule -------------------------------------------------------------------------

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"


def verdict(interval: Interval | None, *, margin: float | None = None) -> str:
    """The verdict on "A beats B" (margin None) or "A matches or beats B" (margin m > 0).

    Beats: agrees when the whole interval lies above 0, disagrees when it lies below 0.
    Matches or beats (non-inferiority): agrees when the interval lies above -m, disagrees
    when it lies below -m. Anything else is inconclusive.
    """
    if interval is None:
        return "—"
    edge = 0.0 if margin is None else -margin
    if interval.low > edge:
        return AGREES
    if interval.high < edge:
        return DISAGREES
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """One verdict for a claim made of several comparisons (e.g. one per OOD split): agrees
    (disagrees) only when every part does; parts that agree and disagree make it mixed."""
    found = [v for v in verdicts if v != "—"]
    if not found:
        return "—"
    if all(v == AGREES for v in found):
        return AGREES
    if all(v == DISAGREES for v in found):
        return DISAGREES
    if AGREES in found and DISAGREES in found:
        return "mixed"
    return INCONCLUSIVE
