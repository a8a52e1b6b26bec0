"""The study's RL experiments in `gengap reproduce`: arms, FLOPs matching, claims, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gengap.arms import arm_spec, arm_specs, known_arm, verify_iters_of
from gengap.study import load_preset

MINI = [
    "coldstart.steps_scale=0.05", "coldstart.eval_n=0", "difficulty_n=48", "k=4",
    "steps=4", "batch_size=8", "eval_every=2", "eval_n=12", "grpo.num_generations=4",
    "sweep_val_n=8", "test_n=16", "seeds=[0]", "ppo.rollout_steps=8", "ppo.mini_batch_size=8",
    "overfit_factor=2", "grpo.max_completion_length=8", "ppo.max_completion_length=8",
    "coldstart.revision={eval_n: 0, batch_size: 16}",
]


def test_rl_arm_families() -> None:
    assert verify_iters_of("ppo-v10") == ("ppo", 10)
    assert verify_iters_of("grpo-mt-v3") == ("grpo-mt", 3)
    assert verify_iters_of("sft-all") is None and verify_iters_of("ppo-v0") is None
    spec = arm_spec("grpo-mt-v3")
    assert spec["kind"] == "grpo" and spec["recipe"] == {"multi_turn": True, "verify_iters": 3}
    assert arm_spec("grpo-nowarmup")["start"] == "random"
    assert arm_spec("ppo-from-overfit")["start"] == "sft-overfit"
    # an arm that starts from another arm's checkpoint brings that arm along, first
    assert list(arm_specs(["grpo-from-overfit"], [])) == ["sft-overfit", "grpo-from-overfit"]
    assert not known_arm("sft-nowarmup") and not known_arm("grpo-v")
    preset = load_preset("tiny-gp-rl", quick=True)
    assert preset.match == "flops" and preset.match_arm == "grpo"
    assert "grpo-mt-v10" in preset.all_arms()


@pytest.mark.slow
def test_rl_study_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gengap.study import reproduce

    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    reproduce("tiny-gp-rl", out, quick=True, log=lambda *_: None, overrides=[
        *MINI, "arms=[grpo,sft-all,ppo,grpo-mt-v1,grpo-mt-v3,grpo-nowarmup,grpo-from-overfit]"])
    runs = out / "start-0" / "runs"
    budgets = {arm.name: json.loads((arm / "seed-0" / "budget.json").read_text())
               for arm in runs.iterdir() if (arm / "seed-0" / "budget.json").is_file()}
    target = budgets["grpo"]["gflops"]
    for arm in ("sft-all", "ppo", "grpo-mt-v1", "grpo-mt-v3"):
        assert budgets[arm]["max_gflops"] == target and budgets[arm]["gflops"] >= target, arm
    assert budgets["grpo-nowarmup"]["study_flops"]["D_init"] == 0
    assert budgets["grpo-nowarmup"]["steps_done"] == 4
    # sft-overfit spends overfit_factor x the matched training FLOPs: longer than SFT-all.
    overfit = budgets["sft-overfit"]
    base = 6e-9 * overfit["parameters"] * overfit["study_flops"]["D_init"]
    assert overfit["max_gflops"] == pytest.approx(base + 2 * (target - base))
    assert overfit["gflops"] >= overfit["max_gflops"]
    assert overfit["steps_done"] > budgets["sft-all"]["steps_done"]
    assert budgets["grpo-from-overfit"]["study_flops"]["D_init"] == (
        overfit["study_flops"]["D_init"] + overfit["study_flops"]["D"])
    assert budgets["grpo-mt-v3"]["verify_iters"] == 3 and budgets["ppo"]["kind"] == "ppo"
    report = (out / "report.md").read_text()
    # The preset tests every arm as the study does: success within V = 5 attempts.
    plan = json.loads((out / "plan.json").read_text())
    assert plan["evaluation"]["attempts"] == 5 and "success within 5" in report
    test = json.loads(next((runs / "grpo" / "seed-0" / "test").rglob("results.json")).read_text())
    assert test["verify_iters"] == 5 and test["results"]["test-id"]["mean_attempts"] > 1
    for title in ("More verification iterations give RL a larger OOD gain",
                  "RL needs the SFT warm-up", "does not recover OOD performance",
                  "Verification-iteration ablation (equal compute)"):
        assert title in report, title
    assert "V=1 +0.48" in report  # the study's numbers beside ours
