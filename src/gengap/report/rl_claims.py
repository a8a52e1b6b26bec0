""""SFT Memorizes, RL Generalizes"' RL experiments as report claims.

- `verification_iterations`: the V ablation at equal compute (arms <rl>-v<V>, matched in the
  study's FLOPs with ``match: flops``): the largest V beats the smallest out of distribution;
  each V's paired OOD gain over Init is listed beside the study's.
- `rl_needs_warmup`: RL from the warm-up (SFT) start beats RL from fresh weights (<rl>-nowarmup).
- `overfit_rl_no_recovery`: RL from an over-fitted SFT checkpoint (<rl>-from-overfit) stays
  below Init out of distribution (it does not recover).
- `rl_recognition`: for tasks whose verdicts carry a `recognition` metric (GeneralPoints'
  image form), RL raises recognition and success over Init while SFT on all data lowers both
  (Figure 8): paired per episode like the rest; recognition is the first attempt's (the
  study measures it with V = 1) on the ID test set and every OOD split, success on the OOD
  splits (in the same study SFT raises ID success: Figure 5's memorisation). The DC-SFT arms
  (curated data) are not SFT in this claim's sense and are left out.

Paired claims are `Part`s like the others (the same intervals, the same Bonferroni family).
"""

from __future__ import annotations

from typing import Any

from gengap.arms import verify_iters_of
from gengap.cost import gflops_past_start

CLAIMS = {
    "verification_iterations": (
        "More verification iterations give RL a larger OOD gain (equal compute)",
        "GP-L OOD gain at equal compute: V=1 +0.48, V=3 +2.15, V=5 +2.99, V=10 +5.99 points "
        "(Chu et al., Figure 10)"),
    "rl_needs_warmup": (
        "RL needs the SFT warm-up",
        "RL without the SFT warm-up failed: the base model does not follow the format "
        "(Chu et al., Section 6)"),
    "overfit_rl_no_recovery": (
        "RL from an over-fitted SFT checkpoint does not recover OOD performance",
        "RL from an over-fitted SFT checkpoint did not recover OOD performance "
        "(Chu et al., Section 6)"),
    "rl_recognition": (
        "RL raises recognition and success; SFT lowers both (image arms)",
        "GP-VL: RL raises recognition and success, SFT lowers both (Chu et al., Figure 8)"),
}
STUDY_V_GAINS = {1: 0.48, 3: 2.15, 5: 2.99, 10: 5.99}


def v_arms(study: Any) -> dict[str, list[tuple[int, str]]]:
    """family -> [(V, arm)] of the trained V-ablation arms, smallest V first."""
    out: dict[str, list[tuple[int, str]]] = {}
    for arm in study.runs:
        if (found := verify_iters_of(arm)) is not None:
            out.setdefault(found[0], []).append((found[1], arm))
    return {k: sorted(v) for k, v in out.items()}


def rl_parts(study: Any, part: type) -> dict[str, list[Any]]:
    """The paired comparisons of the RL claims (`part` is `claims.Part`)."""
    ood = study.ood_splits
    parts: dict[str, list[Any]] = {"verification_iterations": [], "rl_needs_warmup": [],
                                   "overfit_rl_no_recovery": [], "rl_recognition": []}
    for arms in v_arms(study).values():
        if len(arms) > 1:
            parts["verification_iterations"] += [part(arms[-1][1], arms[0][1], s, None)
                                                 for s in ood]
    for arm in study.runs:
        if arm.endswith("-nowarmup") and arm.removesuffix("-nowarmup") in study.runs:
            base = arm.removesuffix("-nowarmup")
            parts["rl_needs_warmup"] += [part(base, arm, s, None)
                                         for s in [*study.with_role("test"), *ood]]
        if arm.endswith("-from-overfit"):
            parts["overfit_rl_no_recovery"] += [part("init", arm, s, None) for s in ood]
    parts["rl_recognition"] = recognition_parts(study, part)
    return parts


def recognition_parts(study: Any, part: type) -> list[Any]:
    """Figure 8's comparisons: each RL arm from the warm-up above Init, and each SFT arm on
    all data below it, in recognition (where Init's test episodes carry a value: none on
    tasks without the metric) and in OOD success."""
    init = [r.test("last") for r in study.runs.get("init", [])]
    splits = [s for s in [*study.with_role("test"), *study.ood_splits]
              if any(t and t.values(s, "recognition") for t in init)]
    measures = [(s, "recognition") for s in splits] + [
        (s, "success") for s in splits if s in study.ood_splits]
    rl = [a for a in study.runs if study.arm_spec(a).get("kind") in ("grpo", "ppo")
          and not study.arm_spec(a).get("start")]
    sft = [a for a in study.runs if study.arm_spec(a).get("kind") == "sft"
           and study.arm_spec(a).get("data") == "all"]
    return [part(*pair, s, None, metric=metric) for s, metric in measures
            for pair in [*((a, "init") for a in rl), *(("init", a) for a in sft)]]


def v_gain_text(study: Any, which: str) -> str:
    """Each V arm's paired OOD gain over Init, beside the study's."""
    cells = []
    for family, arms in v_arms(study).items():
        for v, arm in arms:
            gains = [study.paired_delta(arm, "init", s, which) for s in study.ood_splits]
            gains = [g for g in gains if g is not None]
            if gains:
                ours = 100 * sum(gains) / len(gains)
                theirs = STUDY_V_GAINS.get(v)
                cells.append(f"{family} V={v} {ours:+.1f}" + (
                    f" (study {theirs:+.2f})" if theirs is not None else ""))
    return ("OOD gain over init: " + ", ".join(cells)) if cells else ""


def v_table(study: Any, which: str = "best") -> list[str]:
    """The V ablation as a markdown table: per arm, ID / OOD success and the OOD gain."""
    arms = [a for family in v_arms(study).values() for _, a in family]
    if not arms:
        return []
    id_split = study.id_split
    lines = ["| arm | V | GFLOPs past the start | ID (%) | OOD (%) | OOD gain vs init | "
             "study gain |",
             "|---|---|---|---|---|---|---|"]
    for arm in arms:
        _, v = verify_iters_of(arm)
        ood = [study.success(arm, s, which) for s in study.ood_splits]
        ood = [o for o in ood if o]
        gains = [g for s in study.ood_splits
                 if (g := study.paired_delta(arm, "init", s, which)) is not None]
        gflops = [gflops_past_start(r.budget["study_flops"]) for r in study.runs[arm]
                  if r.budget and r.budget.get("study_flops")]
        ident = study.success(arm, id_split, which) if id_split else None
        lines.append(
            f"| {arm} | {v} | {sum(gflops) / len(gflops):.1f} |" if gflops
            else f"| {arm} | {v} | — |")
        lines[-1] += (f" {100 * ident[0]:.1f} |" if ident else " — |")
        lines[-1] += (f" {100 * sum(o[0] for o in ood) / len(ood):.1f} |" if ood else " — |")
        lines[-1] += (f" {100 * sum(gains) / len(gains):+.1f} |" if gains else " — |")
        theirs = STUDY_V_GAINS.get(v)
        lines[-1] += f" {theirs:+.2f} |" if theirs is not None else " — |"
    return [*lines, ""]
