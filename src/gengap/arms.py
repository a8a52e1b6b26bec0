"""The arms a study can train, as data.

An arm is a name and a small spec: its kind (sft, grpo or ppo), the curated data variant it
trains on (SFT), whether it filters prompts by the difficulty pass (RL), recipe keys it sets
(`recipe`: multi-turn or online filtering), the arm whose learning rate it shares (ablations
vary one thing only), and for the hard-ratio ablation its hard share. The
study writes every arm's spec into ``plan.json``, so the report reads arms from the study
directory and never imports the study.
"""

from __future__ import annotations

from typing import Any

# Arm -> spec. SFT arms train on a curated variant (`gengap curate`); GRPO arms on the task's
# train prompts, all of them or those the difficulty pass rated neither 0/k nor k/k (the offline
# filter: groups that would have zero reward variance are dropped before training).
CATALOG: dict[str, dict[str, Any]] = {
    "sft-all": {"kind": "sft", "data": "all", "label": "SFT (all data)"},
    "sft-e": {"kind": "sft", "data": "balanced:E", "label": "SFT on easy"},
    "sft-m": {"kind": "sft", "data": "balanced:M", "label": "SFT on medium"},
    "sft-h": {"kind": "sft", "data": "balanced:H", "label": "SFT on hard"},
    "sft-em": {"kind": "sft", "data": "EM", "label": "SFT-EM (DC-SFT)"},
    "grpo": {"kind": "grpo", "label": "GRPO"},
    "grpo-filtered": {"kind": "grpo", "filter": "difficulty", "lr_from": "grpo",
                      "label": "GRPO, offline difficulty filter"},
    # GRPO that drops zero-variance groups as it trains and refills the batch (TRL #3708).
    "grpo-online": {"kind": "grpo", "recipe": {"online_filter": True}, "lr_from": "grpo",
                    "label": "GRPO, online difficulty filter"},
    # Episodes of V attempts with the verifier's feedback between them (multi-turn GRPO).
    "grpo-mt": {"kind": "grpo", "recipe": {"multi_turn": True}, "lr_from": "grpo",
                "label": "GRPO, multi-turn (V attempts)"},
    # PPO with a value head and GAE over an episode's attempts ("SFT Memorizes, RL
    # Generalizes").
    "ppo": {"kind": "ppo", "label": "PPO (value head, GAE)"},
}
RL_KINDS = ("grpo", "ppo")  # arms that train on the task's prompts with its verifier
HARD_PREFIX = "sft-em-hard"


def hard_arm(ratio: float) -> str:
    """The ablation arm that adds a share `ratio` of hard samples to SFT-EM."""
    return f"{HARD_PREFIX}{round(100 * ratio)}"


def hard_share(arm: str) -> float | None:
    """The inverse of `hard_arm`: sft-em-hard15 -> 0.15; None for any other arm."""
    if not arm.startswith(HARD_PREFIX):
        return None
    return int(arm.removeprefix(HARD_PREFIX)) / 100


# "SFT Memorizes, RL Generalizes"' RL experiments, as arm families:
# - the verification-iteration ablation: <rl>-v<V> trains episodes of V attempts (ppo-v5,
#   grpo-mt-v3), its learning rate shared with <rl>'s;
# - RL without the SFT warm-up: <rl>-nowarmup starts from the start model's architecture with
#   fresh random weights (a model that does not follow the format);
# - RL from an over-fitted SFT checkpoint: sft-overfit trains SFT-all `overfit_factor` times
#   longer, <rl>-from-overfit starts from its final checkpoint.
RL_FAMILIES = {"ppo": ("ppo", {}), "grpo-mt": ("grpo", {"multi_turn": True}),
               "grpo": ("grpo", {})}
OVERFIT_ARM = "sft-overfit"


def verify_iters_of(arm: str) -> tuple[str, int] | None:
    """("ppo", 5) for ppo-v5, ("grpo-mt", 3) for grpo-mt-v3; None for any other arm."""
    head, _, tail = arm.rpartition("-v")
    if head in RL_FAMILIES and tail.isdigit() and int(tail) >= 1:
        return head, int(tail)
    return None


def arm_spec(arm: str) -> dict[str, Any]:
    """The spec of a catalogue arm or of an arm family (hard ratio, V ablation, warm-up,
    over-fitted start); a `KeyError` for an unknown name."""
    share = hard_share(arm)
    if share is not None:
        return {"kind": "sft", "data": f"EM+hard:{share}", "hard_share": share,
                "lr_from": "sft-em", "label": f"SFT-EM + {round(100 * share)}% hard"}
    if (found := verify_iters_of(arm)) is not None:
        family, v = found
        kind, recipe = RL_FAMILIES[family]
        return {"kind": kind, "recipe": {**recipe, "verify_iters": v}, "verify_iters": v,
                "family": family, "lr_from": "grpo" if family == "grpo-mt" else family,
                "label": f"{family.upper()}, V={v}"}
    if arm == OVERFIT_ARM:
        return {"kind": "sft", "data": "all", "steps_factor": "overfit_factor",
                "lr_from": "sft-all", "label": "SFT (all data), over-fitted"}
    for suffix, start, label in (("-nowarmup", "random", "without SFT warm-up"),
                                 ("-from-overfit", OVERFIT_ARM, "from over-fitted SFT")):
        base = arm.removesuffix(suffix)
        if arm.endswith(suffix) and base in CATALOG and CATALOG[base]["kind"] in RL_KINDS:
            return {**CATALOG[base], "start": start, "lr_from": base,
                    "label": f"{CATALOG[base]['label']}, {label}"}
    return dict(CATALOG[arm])


def known_arm(arm: str) -> bool:
    """Whether `arm` names a catalogue arm or a member of an arm family."""
    try:
        arm_spec(arm)
    except KeyError:
        return False
    return True


def arm_specs(arms: list[str], hard_ratios: list[float]) -> dict[str, dict[str, Any]]:
    """Every trained arm with its spec, ablation arms included (in report order)."""
    names = list(arms)
    if "sft-em" in arms:
        names += [hard_arm(r) for r in hard_ratios]
    specs = {name: arm_spec(name) for name in names}
    # An arm that starts from another arm's checkpoint needs that arm (trained first).
    for spec in list(specs.values()):
        source = spec.get("start")
        if source not in (None, "random") and source not in specs:
            specs = {source: arm_spec(source), **specs}
    return specs
