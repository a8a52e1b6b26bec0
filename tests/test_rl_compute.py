"""Compute in the study's FLOPs: per checkpoint, in the curve, arms stopped at a budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gengap import cost
from gengap.config import load_recipe
from gengap.train import GRPORecipe, SFTRecipe, train_grpo, train_sft

MINI = [  # test_study's miniature quick preset
    "coldstart.steps_scale=0.05", "coldstart.eval_n=0", "difficulty_n=48", "k=4",
    "arms=[sft-all,grpo]", "hard_ratios=[]", "steps=4", "batch_size=8",
    "eval_every=2", "eval_n=12", "grpo.num_generations=4", "sweep_val_n=8", "test_n=16",
    "seeds=[0]",
]
TASK = ["task=generalpoints", "task_options.modality=text", "task_options.prompt_style=compact"]


@pytest.fixture(scope="module")
def tiny(micro_checkpoint: Path) -> Path:
    return micro_checkpoint


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gengap.tasks.registry import get_task

    task = get_task("generalpoints", modality="text", prompt_style="compact")
    path = tmp_path_factory.mktemp("data") / "curated.jsonl"
    with path.open("w") as f:
        for i in range(16):
            sample = task.sample("train", i, 0)
            f.write(json.dumps({"id": sample.id, "index": i, "prompt": task.messages(sample),
                                "completion": [{"role": "assistant",
                                                "content": task.target(sample)}]}) + "\n")
    return path


def fake_eval(model: Any, processor: Any, step: int) -> dict[str, dict[str, float]]:
    return {"test-id": {"success": 0.5, "n": 2}}


def test_study_formulas_by_hand() -> None:
    sft = cost.study_flops(1000, trained_tokens=50, init_tokens=10)
    assert sft["flops"] == 6 * 1000 * 60 and sft["D_buffer"] == 0
    rl = cost.study_flops(1000, trained_tokens=50, buffer_tokens=7, init_tokens=10,
                          init_buffer_tokens=3)
    assert rl["flops"] == 6 * 1000 * 60 + 2 * 1000 * 10
    assert rl["gflops"] == pytest.approx(rl["flops"] / 1e9)


def test_sft_records_flops_per_checkpoint_and_curve(tmp_path: Path, tiny: Path,
                                                    sft_data: Path) -> None:
    recipe = load_recipe(SFTRecipe, None, ["batch_size=4", "save_every=2", "eval_every=2",
                                           "grad_norm_every=0", *TASK],
                         model=str(tiny), data=str(sft_data), out=str(tmp_path / "a"), steps=4)
    result = train_sft(recipe, eval_fn=fake_eval)
    n = result.budget["parameters"]
    study = result.budget["study_flops"]
    assert study["D"] == result.budget["tokens"] > 0 and study["D_init"] == 0
    assert study["flops"] == 6 * n * study["D"]
    two = cost.read_compute(tmp_path / "a" / "checkpoint-2")
    four = cost.read_compute(tmp_path / "a" / "checkpoint-4")
    assert 0 < two["study_flops"]["flops"] < four["study_flops"]["flops"]
    assert cost.read_compute(result.final_model)["tokens_trained"] == study["D"]
    gflops = [r["gflops"] for r in result.curve]
    assert gflops[0] == 0 and gflops == sorted(gflops) and gflops[-1] == study["gflops"]

    # A run from that checkpoint counts its tokens as D_init; a FLOPs budget stops it early.
    target = study["gflops"] * 1.5
    again = load_recipe(SFTRecipe, None, ["batch_size=4", "save_every=50", "eval_every=5",
                                          "grad_norm_every=0", f"max_gflops={target}", *TASK],
                        model=str(result.final_model), data=str(sft_data),
                        out=str(tmp_path / "b"), steps=50)
    stopped = train_sft(again, eval_fn=fake_eval)
    second = stopped.budget
    # The curve ends where the budget stopped the run, not at the last multiple of eval_every.
    assert [r["step"] for r in stopped.curve][-1] == second["steps_done"]
    assert second["study_flops"]["D_init"] == study["D"]
    assert second["study_flops"]["D_init_known"] is True
    assert second["gflops"] >= target and second["steps_done"] < 50
    assert second["steps_done"] in (2, 3)  # ~half the first run's 4 steps reach 1.5x


@pytest.mark.slow
def test_grpo_counts_the_rollout_buffer(tmp_path: Path, tiny: Path) -> None:
    recipe = load_recipe(GRPORecipe, None, ["batch_size=2", "num_generations=4",
                                            "n_prompts=8", "eval_every=0", "save_every=2",
                                            "max_completion_length=8", "logging_steps=1", *TASK],
                         model=str(tiny), out=str(tmp_path / "g"), steps=2)
    budget = train_grpo(recipe).budget
    study = budget["study_flops"]
    logs = [json.loads(line) for line in (tmp_path / "g" / "log_history.jsonl").open()]
    lengths = [log["completions/mean_length"] * 8 for log in logs
               if "completions/mean_length" in log]
    assert len(lengths) == 2  # 8 completions per step of (at most) 8 generated tokens each
    assert study["D_buffer"] == pytest.approx(sum(lengths)) and 0 < study["D_buffer"] <= 128
    assert study["flops"] == 6 * budget["parameters"] * study["D"] + 2 * budget[
        "parameters"] * study["D_buffer"]


@pytest.mark.slow
def test_study_matches_arms_in_flops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gengap.study import reproduce

    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    reproduce("tiny-gp-text", out, quick=True, log=lambda *_: None,
              overrides=[*MINI, "match=flops", "steps=6", "eval_every=2"])
    runs = out / "start-0" / "runs"
    sft = json.loads((runs / "sft-all" / "seed-0" / "budget.json").read_text())
    grpo = json.loads((runs / "grpo" / "seed-0" / "budget.json").read_text())
    assert sft["steps_done"] == 6 and grpo["max_gflops"] == sft["gflops"]
    # GRPO stops at the first step at or past the SFT arm's FLOPs (not at its step count).
    assert grpo["gflops"] >= sft["gflops"]
    per_step = (grpo["gflops"] - grpo["study_flops"]["D_init"] * 6e-9 * grpo["parameters"]
                ) / grpo["steps_done"]
    assert grpo["gflops"] - per_step < sft["gflops"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["budget"]["match"] == "flops" and plan["budget"]["match_arm"] == "sft-all"
    assert (out / "figures" / "success_vs_gflops.png").is_file()
    assert "success_vs_gflops.png" in (out / "report.md").read_text()
