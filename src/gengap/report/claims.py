"""The two studies' headline claims, the numbers they reported, and this run's verdict.

Every success claim is made of paired comparisons "arm A beats (or matches) arm B on split S":
the same starts, the same test episodes, at the checkpoint the study's settings name (the best
on ID validation by default). The interval of each comparison comes from
`gengap.report.stats.paired_interval` at the Bonferroni level 1 - alpha/m, m = the number of
comparisons in the report, so all verdicts together are wrong with probability at most alpha.
A comparison agrees when its interval lies wholly on the claimed side of 0 (of -margin for
"matches or beats"), disagrees when it lies wholly on the other side, and is inconclusive
otherwise; a claim agrees (disagrees) only when all its comparisons do.

The cost claim compares GRPO with SFT-EM plus its difficulty pass in FLOPs and in process CPU
seconds (wall seconds are shown, never used: other processes on the machine change them).
The presets are never tuned to make a claim come out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gengap.cost import total
from gengap.report.collect import Study
from gengap.report.stats import Interval, combine, verdict

CHEAPER = 2.0  # "several times cheaper": at least 2x in both units agrees, at most 1x disagrees


@dataclass
class Part:
    """One paired comparison: `better` - `worse` on `split`, in `metric` (the episode's success,
    or a verdict metric of its first attempt, e.g. card recognition)."""

    better: str
    worse: str
    split: str
    margin: float | None  # None: "beats"; m: "matches or beats" within m
    metric: str = "success"
    interval: Interval | None = None
    other: Interval | None = None  # the same comparison at the other checkpoint (no verdict)
    verdict: str = "—"

    @property
    def label(self) -> str:
        relation = ">" if self.margin is None else "≥"
        metric = "" if self.metric == "success" else f", {self.metric}"
        return f"{self.better} {relation} {self.worse} ({self.split}{metric})"


@dataclass
class Claim:
    """One headline claim, the study's evidence, what we measured and our verdict."""

    key: str
    claim: str
    study: str
    measured: str
    verdict: str
    parts: list[Part] = field(default_factory=list)


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _interval_text(i: Interval) -> str:
    return f"{_pts(i.estimate)} [{_pts(i.low)}, {_pts(i.high)}]"


def _part_text(part: Part, which: str, other: str) -> str:
    if part.interval is None:
        return f"{part.label}: not measured"
    text = f"{part.label}: {_interval_text(part.interval)}"
    if part.margin is not None:
        text += f" (margin −{100 * part.margin:.0f})"
    if part.other is not None:
        text += f"; {other} checkpoint {_pts(part.other.estimate)}"
    return text


def claim_parts(study: Study) -> dict[str, list[Part]]:
    """The comparisons of every success claim (before any interval is computed)."""
    ood = study.ood_splits
    margin = study.verdict_settings["margin"]
    hard = study.hard_ratio_arms()
    from gengap.report.rl_claims import rl_parts

    return {
        **rl_parts(study, Part),
        "rl_beats_sft_ood": [Part("grpo", "sft-all", s, None) for s in ood],
        "hard_sft_hurts_ood": [Part("sft-m", "sft-h", s, None) for s in ood]
        + [Part("sft-e", "sft-h", s, None) for s in ood],
        "sft_em_matches_rl": [Part("sft-em", "grpo", s, margin) for s in ood],
        # The smallest hard share this run trained: the closest to the study's 5%.
        "hard_share_costs_ood": [Part("sft-em", hard[0][1], s, None) for s in ood]
        if hard else [],
    }


CLAIMS = {
    "rl_beats_sft_ood": (
        "RL beats SFT out of distribution",
        "GP-L rule OOD: init 11.5, RL 15.0, SFT 3.4 (Chu et al., Llama-3.2-Vision-11B); "
        "ImageNet-R: GRPO 51.38, SFT 49.58 (Lu et al.)"),
    "hard_sft_hurts_ood": (
        "SFT on hard samples hurts OOD generalization",
        "measured on ImageNet-R, not this task: SFT-hard 43.25 vs easy 59.37, medium 58.67, "
        "base 57.32 (Lu et al., Qwen2.5-VL-7B)"),
    "sft_em_matches_rl": (
        "SFT-EM (DC-SFT) matches or beats RL out of distribution",
        "measured on ImageNet/RefCOCO, not this task: OOD average SFT-EM 62.10, GRPO 59.48, "
        "SFT 57.62 (Lu et al.)"),
    "hard_share_costs_ood": (
        "Adding hard samples to SFT-EM costs OOD accuracy",
        "measured on ImageNet, not this task: +5% hard costs 3.7 (ImageNet-R) and 2.5 "
        "(ImageNet-A) points (Lu et al.)"),
    "dcsft_cheaper": (
        "DC-SFT is several times cheaper than RL",
        "GRPO vs DC-SFT incl. the difficulty pass: 261 vs 53 min (4.9x, ImageNet), 298 vs 93 "
        "min (3.2x, RefCOCO)"),
}


def comparisons(study: Study) -> tuple[dict[str, list[Part]], int, float]:
    """Every claim's comparisons with intervals and verdicts; (parts, m, level)."""
    settings = study.verdict_settings
    which = settings["checkpoint"]
    other = "last" if which == "best" else "best"
    parts = claim_parts(study)
    measured = [p for ps in parts.values() for p in ps
                if study.paired_data(p.better, p.worse, p.split, which, p.metric)]
    m = max(1, len(measured))
    level = 1 - settings["alpha"] / m
    for i, part in enumerate(p for ps in parts.values() for p in ps):
        part.interval = study.paired(part.better, part.worse, part.split, which, level=level,
                                     seed=i, metric=part.metric)
        part.other = study.paired(part.better, part.worse, part.split, other, level=level,
                                  seed=i, metric=part.metric)
        part.verdict = verdict(part.interval, margin=part.margin)
    return parts, m, level


@dataclass
class Cost:
    """GRPO against SFT-EM + difficulty pass, summed over the starts that have all three."""

    starts: list[int]
    grpo: dict[str, float]  # unit -> total
    dcsft: dict[str, float]

    def ratio(self, unit: str) -> float | None:
        a, b = self.grpo.get(unit), self.dcsft.get(unit)
        return a / b if a and b else None


UNITS = {"flops": "FLOPs", "cpu_seconds": "CPU s", "wall_seconds": "wall s"}


def arm_cost(budget: dict | None, unit: str) -> float | None:
    """An arm's training cost in `unit` (flops, cpu_seconds, wall_seconds)."""
    if not budget:
        return None
    return total(budget.get("flops")) if unit == "flops" else budget.get(unit)


def difficulty_cost(summary: dict | None, unit: str) -> float | None:
    """The difficulty pass's cost in `unit` (its sampling and judging only)."""
    speed = (summary or {}).get("speed", {})
    key = {"flops": "flops", "cpu_seconds": "cpu_seconds",
           "wall_seconds": "compute_seconds"}[unit]
    return speed.get(key)


def cost(study: Study, arm: str = "grpo", reference: str = "sft-em") -> Cost | None:
    """The cost comparison over the starts where GRPO, SFT-EM and the difficulty pass ran."""
    grpo = {u: 0.0 for u in UNITS}
    dcsft = {u: 0.0 for u in UNITS}
    used = []
    for start in study.starts:
        a = [r.budget for r in study.runs_of(arm, start) if r.budget]
        b = [r.budget for r in study.runs_of(reference, start) if r.budget]
        d = study.difficulty.get(start)
        if not a or not b or d is None:
            continue
        used.append(start)
        for unit in UNITS:
            values_a = [arm_cost(x, unit) for x in a]
            values_b = [arm_cost(x, unit) for x in b]
            extra = difficulty_cost(d, unit)
            if None in values_a or None in values_b or extra is None:
                grpo[unit] = dcsft[unit] = float("nan")
                continue
            grpo[unit] += sum(values_a) / len(values_a)
            dcsft[unit] += sum(values_b) / len(values_b) + extra
    if not used:
        return None
    clean = {u for u in UNITS if grpo[u] == grpo[u] and dcsft[u] == dcsft[u]}
    return Cost(used, {u: grpo[u] for u in clean}, {u: dcsft[u] for u in clean})


def evaluate_claims(study: Study) -> list[Claim]:
    """Every claim the study's data can speak to (claims without data are listed as such)."""
    settings = study.verdict_settings
    which = settings["checkpoint"]
    other = "last" if which == "best" else "best"
    from gengap.report import rl_claims

    parts, _, _ = comparisons(study)
    claims: list[Claim] = []
    table = {**CLAIMS, **rl_claims.CLAIMS}
    for key, comps in parts.items():
        title, default = table[key]
        evidence = study.reference(key, default)
        found = [p for p in comps if p.interval is not None]
        if not comps and key in rl_claims.CLAIMS:
            continue  # an RL experiment this study did not plan (its arms are absent)
        if not found:
            claims.append(Claim(key, title, evidence, "not measured in this run", "—", comps))
            continue
        text = "; ".join(_part_text(p, which, other) for p in found)
        if key == "verification_iterations" and (gains := rl_claims.v_gain_text(study, which)):
            text += "; " + gains
        claims.append(Claim(key, title, evidence, text, combine([p.verdict for p in found]),
                            found))
    title, default = CLAIMS["dcsft_cheaper"]
    evidence = study.reference("dcsft_cheaper", default)
    c = cost(study)
    robust = ("flops", "cpu_seconds")
    if c is None or any(c.ratio(u) is None for u in robust):
        claims.append(Claim("dcsft_cheaper", title, evidence, "not measured in this run", "—"))
        return claims
    ratios = {u: c.ratio(u) for u in UNITS if c.ratio(u) is not None}
    if all(ratios[u] >= CHEAPER for u in robust):
        result = "agrees"
    elif all(ratios[u] <= 1 for u in robust):
        result = "disagrees"
    else:
        result = "inconclusive"
    text = (f"GRPO / (SFT-EM + difficulty pass), {len(c.starts)} start(s): "
            + ", ".join(f"{ratios[u]:.1f}x in {UNITS[u]}" for u in ratios)
            + " (the verdict reads FLOPs and CPU seconds; wall seconds are shown only)")
    claims.append(Claim("dcsft_cheaper", title, evidence, text, result))
    return claims
