"""Multi-turn GRPO (episodes through TRL's rollout_func, feedback masked) and online filtering."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from gengap.config import load_recipe
from gengap.rollout.episodes import EpisodeResult
from gengap.tasks.registry import get_task
from gengap.train.multiturn import episode_tokens
from gengap.train.online_filter import merge_rows, online_filter_trainer, varied_groups
from gengap.train.turns import episode_return, replay

TASK = ["task=generalpoints", "task_options.modality=text", "task_options.prompt_style=compact"]


@pytest.fixture(scope="module")
def task() -> Any:
    return get_task("generalpoints", modality="text", prompt_style="compact")


@pytest.fixture(scope="module")
def tiny(micro_checkpoint: Path) -> Path:
    return micro_checkpoint


def played(task: Any, sample: Any, attempts: list[str], v: int) -> EpisodeResult:
    env = task.episode(sample, v)
    env.reset()
    result = EpisodeResult(sample, attempts=[], verdicts=[])
    for text in attempts:
        step = env.step(text)
        result.attempts.append(text)
        result.verdicts.append(step.verdict)
        if step.done:
            break
    return result


def test_env_mask_covers_exactly_the_model_tokens(task: Any, tiny: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    sample = task.sample("train", 0, 0)
    result = played(task, sample, ["1+1", "2*2", "(3"], 3)
    turns = replay(task, result, 3)
    assert len(turns) == 3 and [t.done for t in turns] == [False, False, True]
    prompt, completion, mask = episode_tokens(tokenizer, turns, max_new_tokens=64)
    assert len(completion) == len(mask)
    model_text = tokenizer.decode([t for t, m in zip(completion, mask) if m])
    env_text = tokenizer.decode([t for t, m in zip(completion, mask) if not m])
    eos = tokenizer.eos_token
    assert model_text == f"1+1{eos}2*2{eos}(3{eos}"
    # (the char tokenizer's decode drops spaces: compare without them)
    assert env_text.count("Youfailedthistrialbecause") == 2
    # prompt + completion is exactly the conversation the model saw at its last attempt
    last = tokenizer.apply_chat_template(turns[-1].observation.messages,
                                         add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(prompt + completion) == (last + f"(3{eos}").replace(" ", "")


def test_episode_return_shaped_and_binary(task: Any) -> None:
    sample = task.sample("train", 0, 0)
    right = task.target(sample)
    result = played(task, sample, ["1+1", right], 5)
    assert [v.correct for v in result.verdicts] == [False, True]
    assert episode_return(result.verdicts, "binary") == 1.0
    assert episode_return(result.verdicts, "shaped") == pytest.approx(
        sum(v.reward for v in result.verdicts))


@pytest.mark.slow
def test_multi_turn_grpo_trains_on_episodes(tmp_path: Path, tiny: Path) -> None:
    from transformers import AutoModelForCausalLM

    from gengap.train import GRPORecipe, train_grpo

    out = tmp_path / "mt"
    recipe = load_recipe(GRPORecipe, None, [
        "batch_size=2", "num_generations=4", "n_prompts=8", "learning_rate=1e-2",
        "logging_steps=1", "save_every=2", "eval_every=0", "multi_turn=true",
        "verify_iters=3", "max_completion_length=6", "reward=shaped", *TASK],
        model=str(tiny), out=str(out), steps=2)
    result = train_grpo(recipe)
    before = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    after = AutoModelForCausalLM.from_pretrained(result.final_model).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    logs = [json.loads(line) for line in (out / "log_history.jsonl").open()]
    steps = [log for log in logs if "attempts" in log]
    # a random model fails every attempt: episodes run all 3 of them
    assert len(steps) == 2 and all(log["attempts"] == pytest.approx(3) for log in steps)
    assert all("first_attempt_accuracy" in log for log in steps)
    # the shaped episode reward sums its 3 failed attempts
    assert steps[0]["reward"] <= 3 * -1.0  # each failure costs at least 1
    budget = result.budget
    assert budget["multi_turn"] == "episode" and budget["verify_iters"] == 3
    assert 0 < budget["study_flops"]["D_buffer"] <= 2 * 2 * 4 * 3 * 6
    assert budget["study_flops"]["D"] > budget["study_flops"]["D_buffer"]


# ------------------------------------------------------------------------------------------
# Online filtering


def test_varied_groups_and_merge() -> None:
    adv = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0])
    assert varied_groups(adv, 2) == [1]
    a = {"prompt_ids": torch.tensor([[9, 1], [9, 2]]), "prompt_mask": torch.ones(2, 2),
         "completion_ids": torch.tensor([[5], [6]]), "completion_mask": torch.ones(2, 1),
         "advantages": torch.tensor([1.0, -1.0])}
    b = {"prompt_ids": torch.tensor([[1, 2, 3]]), "prompt_mask": torch.ones(1, 3),
         "completion_ids": torch.tensor([[7, 8]]), "completion_mask": torch.ones(1, 2),
         "advantages": torch.tensor([0.5])}
    merged = merge_rows([(a, [1]), (b, [0])], pad_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 9, 2], [1, 2, 3]]  # left padded
    assert merged["completion_ids"].tolist() == [[6, 0], [7, 8]]  # right padded
    assert merged["completion_mask"].tolist() == [[1, 0], [1, 1]]
    assert merged["num_items_in_batch"].item() == 3


class FakeTrainer:
    """What the online filter uses of GRPOTrainer: a prompt's group varies iff its id is odd."""

    num_generations = 2
    pad_token_id = 0

    def __init__(self) -> None:
        self.model = SimpleNamespace(training=True)
        self.train_dataset = [{"id": i} for i in range(20)]
        self._metrics = {"train": defaultdict(list)}
        self.accelerator = SimpleNamespace(gather=lambda x: x)
        self.scored: list[int] = []

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [x["id"] for x in inputs]
        self.scored += ids[::2]
        adv = torch.tensor([(1.0 if j % 2 == 0 else -1.0) if i % 2 else 0.0
                            for j, i in enumerate(ids)])
        n = len(ids)
        return {"prompt_ids": torch.tensor([[i] for i in ids]), "prompt_mask": torch.ones(n, 1),
                "completion_ids": torch.tensor([[i, i] for i in ids]),
                "completion_mask": torch.ones(n, 2), "advantages": adv,
                "num_items_in_batch": torch.tensor(2.0 * n)}


def test_online_filter_drops_zero_variance_groups_and_refills() -> None:
    trainer = online_filter_trainer(FakeTrainer, max_refills=20, seed=0)()
    batch = [{"id": i} for i in (0, 0, 1, 1, 2, 2, 4, 4)]  # one varied group of four
    out = trainer._generate_and_score_completions(batch)
    assert out["advantages"].shape[0] == 8
    groups = out["prompt_ids"].view(-1, 2)[:, 0].tolist()
    assert all(g % 2 == 1 for g in groups)  # only varied (odd) prompts remain
    assert out["advantages"].abs().min().item() == 1.0
    metrics = trainer._metrics["train"]
    assert metrics["online_filter/first_batch_zero_std"] == [0.75]
    assert metrics["online_filter/kept_groups"] == [4]
    assert metrics["online_filter/scored_groups"][0] > 4


def test_online_filter_gives_up_after_max_refills() -> None:
    class Never(FakeTrainer):
        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]
                                            ) -> dict[str, Any]:
            out = super()._generate_and_score_completions(inputs)
            out["advantages"] = torch.zeros_like(out["advantages"])
            return out

    trainer = online_filter_trainer(Never, max_refills=2)()
    out = trainer._generate_and_score_completions([{"id": 0}] * 4)
    assert out["advantages"].shape[0] == 4  # the batch keeps its size (no gradient, as before)
    assert trainer._metrics["train"]["online_filter/refills"] == [2]
    assert trainer._metrics["train"]["online_filter/scored_groups"] == [2 + 2 + 2]


@pytest.mark.slow
def test_online_filter_and_decision_points_run_in_trl(tmp_path: Path, tiny: Path) -> None:
    from gengap.train import GRPORecipe, train_grpo

    common = ["batch_size=2", "num_generations=4", "n_prompts=8", "logging_steps=1",
              "save_every=2", "eval_every=0", "max_completion_length=6", *TASK]
    out = tmp_path / "online"
    train_grpo(load_recipe(GRPORecipe, None, [*common, "online_filter=true",
                                              "online_max_refills=2"],
                           model=str(tiny), out=str(out), steps=1))
    log = next(json.loads(line) for line in (out / "log_history.jsonl").open()
               if "online_filter/refills" in line)
    # a random model's groups are all "illegal" (zero variance): both refills are spent
    assert log["online_filter/refills"] == 2 and log["online_filter/kept_groups"] == 0
    assert log["online_filter/scored_groups"] == 2 + 2 + 2

    out = tmp_path / "decision"
    result = train_grpo(load_recipe(GRPORecipe, None, [*common, "multi_turn=true",
                                                       "turn_mode=decision", "verify_iters=2"],
                                    model=str(tiny), out=str(out), steps=1))
    assert result.budget["multi_turn"] == "decision"
    assert result.budget["dataset_rows"] == 16  # 8 episodes x 2 decision points
