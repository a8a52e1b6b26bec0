"""The two studies' headline claims, the numbers they reported, and this run's verdict.

A verdict compares two arms' mean final success with their combined standard error: a
difference beyond two standard errors in the claimed direction "agrees", beyond two in the
other direction "disagrees", anything else is "inconclusive". The presets are never tuned to
make a claim come out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gengap.report.collect import Study

Z = 2.0  # standard errors a difference must exceed to count


@dataclass
class Claim:
    """One headline claim, the study's evidence, what we measured and our verdict."""

    claim: str
    study: str
    measured: str
    verdict: str


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def compare(study: Study, better: str, worse: str, split: str) -> tuple[str, str] | None:
    """(measured text, verdict) for the claim `better` > `worse` on `split`."""
    a, b = study.final_success(better, split), study.final_success(worse, split)
    if not a or not b:
        return None
    diff, se = a[0] - b[0], math.hypot(a[1], b[1])
    verdict = ("agrees" if diff > Z * se else "disagrees" if diff < -Z * se else "inconclusive")
    text = (f"{split}: {better} {_pct(a[0])} ± {_pct(a[1])} vs {worse} {_pct(b[0])} ± "
            f"{_pct(b[1])} (difference {diff * 100:+.1f}, ±{Z * se * 100:.1f} at 2 se)")
    return text, verdict


def _arm_seconds(study: Study, arm: str) -> float | None:
    budgets = [r.budget["wall_seconds"] for r in study.runs.get(arm, []) if r.budget]
    return sum(budgets) / len(budgets) if budgets else None


def evaluate_claims(study: Study) -> list[Claim]:
    """Every claim the study's data can speak to (claims without data are listed as such)."""
    ood = study.ood_splits
    claims: list[Claim] = []

    def add(claim: str, evidence: str, results: list[tuple[str, str] | None]) -> None:
        found = [r for r in results if r]
        if not found:
            claims.append(Claim(claim, evidence, "not measured in this run", "—"))
            return
        verdicts = {v for _, v in found}
        verdict = verdicts.pop() if len(verdicts) == 1 else "mixed: " + ", ".join(
            v for _, v in found)
        claims.append(Claim(claim, evidence, "; ".join(t for t, _ in found), verdict))

    # Each claim quotes what the studies published on this study's task when the task
    # declares it (`Task.references`), else where the studies measured it.
    add("RL beats SFT out of distribution",
        study.reference("rl_beats_sft_ood",
                        "GP-L rule OOD: init 11.5, RL 15.0, SFT 3.4 (Chu et al., "
                        "Llama-3.2-Vision-11B); ImageNet-R: GRPO 51.38, SFT 49.58 (Lu et al.)"),
        [compare(study, "grpo", "sft-all", s) for s in ood])
    add("SFT on hard samples hurts OOD generalization",
        study.reference("hard_sft_hurts_ood",
                        "measured on ImageNet-R, not this task: SFT-hard 43.25 vs easy 59.37, "
                        "medium 58.67, base 57.32 (Lu et al., Qwen2.5-VL-7B)"),
        [compare(study, "sft-m", "sft-h", s) for s in ood]
        + [compare(study, "sft-e", "sft-h", s) for s in ood])
    add("SFT-EM (DC-SFT) matches or beats RL out of distribution",
        study.reference("sft_em_matches_rl",
                        "measured on ImageNet/RefCOCO, not this task: OOD average SFT-EM "
                        "62.10, GRPO 59.48, SFT 57.62 (Lu et al.)"),
        [compare(study, "sft-em", "grpo", s) for s in ood])
    # The smallest hard share this run trained: the closest to the study's 5%.
    hard = study.hard_ratio_arms()
    add("Adding hard samples to SFT-EM costs OOD accuracy",
        study.reference("hard_share_costs_ood",
                        "measured on ImageNet, not this task: +5% hard costs 3.7 (ImageNet-R) "
                        "and 2.5 (ImageNet-A) points (Lu et al.)"),
        [compare(study, "sft-em", hard[0][1], s) for s in ood] if hard else [])

    grpo, em = _arm_seconds(study, "grpo"), _arm_seconds(study, "sft-em")
    difficulty = (study.difficulty or {}).get("speed", {}).get("compute_seconds")
    if grpo and em and difficulty is not None:
        ratio = grpo / (em + difficulty)
        verdict = "agrees" if ratio >= 2 else "disagrees" if ratio <= 1 else "inconclusive"
        claims.append(Claim(
            "DC-SFT is several times cheaper than RL",
            study.reference("dcsft_cheaper",
                            "GRPO vs DC-SFT incl. the difficulty pass: 261 vs 53 min (4.9x, "
                            "ImageNet), 298 vs 93 min (3.2x, RefCOCO)"),
            f"GRPO {grpo:.0f} s vs SFT-EM {em:.0f} s + difficulty pass {difficulty:.0f} s: "
            f"{ratio:.1f}x", verdict))
    else:
        claims.append(Claim("DC-SFT is several times cheaper than RL",
                            "4.9x (ImageNet), 3.2x (RefCOCO)", "not measured in this run", "—"))
    return claims
