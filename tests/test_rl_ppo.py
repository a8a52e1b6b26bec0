"""PPO: GAE against hand-computed cases, the loss, and a short run that moves the policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from gengap.config import load_recipe
from gengap.train.ppo import PPORecipe, gae, masked_whiten, ppo_loss, train_ppo

TASK = ["task=generalpoints", "task_options.modality=text", "task_options.prompt_style=compact"]


def test_gae_one_step_is_the_td_error() -> None:
    adv, ret = gae(torch.tensor([[1.0]]), torch.tensor([[0.25]]), gamma=0.9, lam=0.95)
    assert adv.item() == pytest.approx(0.75) and ret.item() == pytest.approx(1.0)


def test_gae_three_steps_by_hand() -> None:
    # rewards r = (0, 0, 1), values v = (0.5, 0.2, 0.4), episode ends after step 3
    g, lam = 0.9, 0.95
    d2 = 1 + g * 0 - 0.4            # 0.6
    d1 = 0 + g * 0.4 - 0.2          # 0.16
    d0 = 0 + g * 0.2 - 0.5          # -0.32
    a2 = d2
    a1 = d1 + g * lam * a2          # 0.16 + 0.855 * 0.6 = 0.673
    a0 = d0 + g * lam * a1          # -0.32 + 0.855 * 0.673
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.2, 0.4]]),
                   gamma=g, lam=lam)
    assert adv[0].tolist() == pytest.approx([a0, a1, a2])
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.2, a2 + 0.4])


def test_gae_skips_masked_positions_and_pads() -> None:
    # Episode 1: two valid steps then padding; episode 2: a masked step between two valid.
    rewards = torch.tensor([[0.0, 1.0, 5.0], [0.0, 9.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 7.0], [0.5, 3.0, 0.2]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    adv, _ = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    expected = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.2]]),
                   gamma=0.9, lam=0.95)[0][0]
    # a masked tail is not seen by the valid steps before it ...
    assert adv[0, :2].tolist() == pytest.approx(expected.tolist())
    # ... and a masked step is skipped: step 0 looks through it to step 2
    assert adv[1, [0, 2]].tolist() == pytest.approx(expected.tolist())


def test_masked_whiten() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = masked_whiten(x, mask)
    assert out[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)  # unbiased std 1


def test_ppo_loss_clips_the_ratio() -> None:
    recipe = PPORecipe(model="tiny", out="x", entropy_coef=0.0, value_coef=0.0)
    old = torch.zeros(2)
    adv = torch.tensor([1.0, -1.0])
    logp = torch.log(torch.tensor([1.5, 0.5]))  # ratios 1.5 and 0.5, both past clip 0.1
    loss, parts = ppo_loss(logp, old, torch.zeros(2), torch.zeros(2), adv, torch.zeros(2),
                           torch.zeros(2), recipe)
    # min(1.5 * 1, 1.1 * 1) = 1.1; min(0.5 * -1, 0.9 * -1) = -0.9 -> loss -(1.1 - 0.9) / 2
    assert loss.item() == pytest.approx(-0.1) and parts["clip_fraction"] == 1.0


@pytest.fixture(scope="module")
def tiny(micro_checkpoint: Path) -> Path:
    return micro_checkpoint


def test_ppo_run_moves_the_policy_and_writes_the_run_files(tmp_path: Path, tiny: Path) -> None:
    out = tmp_path / "ppo"
    recipe = load_recipe(PPORecipe, None, [
        "rollout_steps=6", "mini_batch_size=4", "ppo_epochs=2", "verify_iters=2",
        "learning_rate=1e-3", "max_grad_norm=1.0", "save_every=1", "eval_every=0",
        "max_completion_length=6", "n_prompts=8", "temperature=1.0", *TASK],
        model=str(tiny), out=str(out), steps=2)
    result = train_ppo(recipe)
    before = dict(AutoModelForCausalLM.from_pretrained(tiny).state_dict())
    after = dict(AutoModelForCausalLM.from_pretrained(result.final_model).state_dict())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    logs = [json.loads(line) for line in (out / "log_history.jsonl").open()]
    assert len(logs) == 2 and all(log["rollout/env_steps"] >= 6 for log in logs)
    assert all(torch.isfinite(torch.tensor(log["loss"])) for log in logs)
    assert (out / "checkpoint-1" / "value_head.safetensors").is_file()
    budget = result.budget
    assert budget["kind"] == "ppo" and budget["steps_done"] == 2
    assert budget["study_flops"]["D_buffer"] > 0 and budget["study_flops"]["D"] > 0

    # A run killed after checkpoint-1 resumes at update 2 from the saved weights and state.
    import shutil

    shutil.rmtree(out / "final")
    shutil.rmtree(out / "checkpoint-2")
    resumed = train_ppo(recipe)
    assert resumed.budget["steps_done"] == 2
    logs = [json.loads(line) for line in (out / "log_history.jsonl").open()]
    assert [log["step"] for log in logs] == [1, 2]


def test_cli_train_ppo_refuses_bad_values(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gengap.cli import app

    result = CliRunner().invoke(app, ["train", "ppo", "--model", "tiny", "--task",
                                      "generalpoints", "--out", str(tmp_path / "x"),
                                      "clip_range=1.5"])
    assert result.exit_code == 2 and "clip_range" in result.output
    result = CliRunner().invoke(app, ["export", "verl", "--task", "generalpoints", "--out",
                                      str(tmp_path / "y"), "--n", "0"])
    assert result.exit_code == 2
