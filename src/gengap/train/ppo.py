"""`gengap train ppo`: PPO with a value head, as "SFT Memorizes, RL Generalizes" runs it.

TRL 1.13+ has no PPO (its PPOTrainer and value-head models were removed), so this is our own
loop on transformers (the policy and its generation), accelerate (device, mixed precision,
backward, gradient clipping) and PEFT (LoRA) primitives. Keys and defaults: `PPORecipe`.

The study's PPO (RL4VLM's) is action-level: one environment step is one attempt (a whole
completion), its log-probability the sum of its tokens' and its value the value head on the
last prompt token's hidden state. Each update:

1. rollout: whole episodes (`Task.episode`: V attempts with the verifier's feedback, or route
   steps) at temperature 0.2 through gengap's sampler, until `rollout_steps` environment
   steps are in the buffer; per-step rewards from the verdicts (shaped or binary);
2. GAE over each episode's steps (gamma 0.9, lambda 0.95; terminal value 0), returns =
   advantages + values, advantages whitened over the buffer;
3. `ppo_epochs` passes over shuffled minibatches: clipped surrogate (0.1), clipped value loss
   x 0.5, entropy bonus x 0.01, gradients clipped to norm 0.01.

Checkpoints (`checkpoint-N/`: the policy as any HF checkpoint, `value_head.safetensors`, the
optimizer) resume like TRL's; the run directory has the same files as SFT / GRPO runs (curve,
budget with the study's FLOPs, log history, final/). transformers' `TrainerCallback`s drive
the curve, budget and FLOPs limit, with a `TrainerState` this loop keeps.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from gengap.tasks.base import unique_samples
from gengap.train.callbacks import EvalFn, task_eval_fn
from gengap.train.common import (
    TrainResult,
    compute_callbacks,
    count_parameters,
    finish,
    finished_result,
    load_for_training,
    lora_config,
    precision,
    prepare_run_dir,
    resolve_task,
    run_dir,
)
from gengap.train.grpo import prompt_indices
from gengap.train.ppo_config import PPORecipe
from gengap.train.turns import encode, replay, tokenizer_of

VALUE_HEAD_FILE = "value_head.safetensors"
OPTIMIZER_FILE = "optimizer.pt"

__all__ = ["PPORecipe", "ValueHead", "gae", "masked_whiten", "train_ppo"]


# ------------------------------------------------------------------------------------------
# Advantages


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None, *,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation along the last axis: (advantages, returns).

    rewards, values, mask: [batch, T]. Positions with mask 0 are skipped: they carry neither
    value nor TD error, so a step sees the next *valid* step's value (verl's convention for
    observation tokens inside a response). After the last valid step the value is 0 (the
    episode ended). returns = advantages + values. Not whitened (see `masked_whiten`).
    """
    if mask is None:
        mask = torch.ones_like(rewards)
    mask = mask.to(rewards.dtype)
    next_value = torch.zeros_like(rewards[:, 0])
    last = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        candidate = delta + gamma * lam * last
        next_value = values[:, t] * mask[:, t] + (1 - mask[:, t]) * next_value
        last = candidate * mask[:, t] + (1 - mask[:, t]) * last
        out.append(last)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, advantages + values


def masked_whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - mean) / sqrt(var + 1e-8) over the masked entries (unbiased variance)."""
    mask = mask.to(values.dtype)
    count = mask.sum()
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / count
    if count > 1:
        var = var * count / (count - 1)
    return (values - mean) * torch.rsqrt(var + 1e-8)


# ------------------------------------------------------------------------------------------
# Value head


class ValueHead(nn.Module):
    """A scalar value from the policy's last hidden state (a linear layer, zero-initialised
    so the first advantages are the rewards' own)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)


def hidden_size(model: Any) -> int:
    config = model.config
    text = getattr(config, "text_config", None) or config
    return int(text.hidden_size)


# ------------------------------------------------------------------------------------------
# The loss pieces


def evaluate_actions(model: Any, head: ValueHead, turns: list[Any], temperature: float,
                     pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(action log-prob [n], value [n], mean token entropy [n]) of encoded turns.

    Text turns are right-padded into one batch; turns with image tensors run one by one (their
    pixel tensors differ in shape between prompts).
    """
    logps, values, entropies = [None] * len(turns), [None] * len(turns), [None] * len(turns)
    plain = [i for i, t in enumerate(turns) if not t.extra]
    groups = [plain] if plain else []
    groups += [[i] for i, t in enumerate(turns) if t.extra]
    device = next(model.parameters()).device
    for group in groups:
        width = max(len(turns[i].ids) for i in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for row, i in enumerate(group):
            seq = turns[i].ids
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
        extra = {k: v.to(device) for k, v in turns[group[0]].extra.items()} if len(
            group) == 1 else {}
        out = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                    output_hidden_states=True, **extra)
        logits, hidden = out.logits.float() / temperature, out.hidden_states[-1]
        for row, i in enumerate(group):
            p, c = len(turns[i].prompt_ids), len(turns[i].completion_ids)
            step_logits = logits[row, p - 1: p + c - 1]
            logprobs = torch.log_softmax(step_logits, dim=-1)
            target = torch.tensor(turns[i].completion_ids, device=device)
            logps[i] = logprobs.gather(-1, target[:, None]).squeeze(-1).sum()
            entropies[i] = -(logprobs.exp() * logprobs).sum(-1).mean()
            values[i] = head(hidden[row, p - 1])
    return torch.stack(logps), torch.stack(values), torch.stack(entropies)


def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, value: torch.Tensor,
             old_value: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
             entropy: torch.Tensor, recipe: PPORecipe) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO2's loss: clipped surrogate + value_coef x (clipped) value loss - entropy_coef x
    entropy; and its parts for the log."""
    ratio = torch.exp(logp - old_logp)
    clip = recipe.clip_range
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    policy_loss = -surrogate.mean()
    value_loss = (value - returns) ** 2
    if recipe.clip_value:
        clipped = old_value + (value - old_value).clamp(-clip, clip)
        value_loss = torch.max(value_loss, (clipped - returns) ** 2)
    value_loss = 0.5 * value_loss.mean()
    loss = policy_loss + recipe.value_coef * value_loss - recipe.entropy_coef * entropy.mean()
    with torch.no_grad():
        clipped_share = ((ratio - 1).abs() > clip).float().mean().item()
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                  "entropy": entropy.mean().item(), "clip_fraction": clipped_share,
                  "approx_kl": (old_logp - logp).mean().item()}


# ------------------------------------------------------------------------------------------
# Rollout


def collect(task: Any, sampler: Any, samples: list[Any], processor: Any, recipe: PPORecipe,
            max_new_tokens: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Run whole episodes (one per sample) and return their transitions with per-step rewards
    and the GAE inputs (`episode`, `t`), plus rollout statistics."""
    from gengap.rollout import SamplingParams, run_episodes

    params = SamplingParams(k=1, temperature=recipe.temperature, top_k=recipe.top_k,
                            max_new_tokens=max_new_tokens, seed=seed)
    usage: dict[str, int] = {}
    results = run_episodes(sampler, task, samples, params, verify_iters=recipe.verify_iters,
                           usage=usage)
    transitions = []
    for e, result in enumerate(results):
        for t, turn in enumerate(replay(task, result, recipe.verify_iters)):
            encoded = encode(processor, turn.observation, turn.completion)
            if len(encoded.completion_ids) > max_new_tokens:  # clipped: no EOS was written
                encoded.completion_ids = encoded.completion_ids[:max_new_tokens]
            reward = float(turn.verdict.correct) if recipe.reward == "binary" else float(
                turn.verdict.reward)
            transitions.append({"turn": encoded, "reward": reward, "episode": e, "t": t,
                                "done": turn.done})
    stats = {
        "episodes": len(results),
        "env_steps": len(transitions),
        "success": sum(r.success for r in results) / max(1, len(results)),
        "first_attempt_success": sum(bool(r.verdicts and r.verdicts[0].correct)
                                     for r in results) / max(1, len(results)),
        "mean_return": sum(r.reward for r in results) / max(1, len(results)),
        "generated_tokens": usage.get("generated_tokens", 0),
    }
    return transitions, stats


def episode_tensors(transitions: list[dict[str, Any]], values: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Rewards, values and mask as [episodes, max steps], and each transition's place."""
    episodes = max(x["episode"] for x in transitions) + 1
    steps = max(x["t"] for x in transitions) + 1
    rewards = torch.zeros(episodes, steps)
    grid = torch.zeros(episodes, steps)
    mask = torch.zeros(episodes, steps)
    places = []
    for i, x in enumerate(transitions):
        e, t = x["episode"], x["t"]
        rewards[e, t], grid[e, t], mask[e, t] = x["reward"], values[i], 1.0
        places.append((e, t))
    return rewards, grid, mask, places


# ------------------------------------------------------------------------------------------
# The run


def train_ppo(recipe: PPORecipe, *, eval_fn: EvalFn | None = None) -> TrainResult:
    """Run (or resume, or return the finished) PPO arm described by `recipe`."""
    out = Path(recipe.out)
    recipe, task = resolve_task(recipe)
    if recipe.split is None:
        recipe = dataclasses.replace(recipe, split=task.split_for("train"))
    last = prepare_run_dir(recipe, "ppo")
    if (done := finished_result(out)) is not None:
        return done
    with run_dir(recipe, "ppo").lock():
        return _train(recipe, task, out, last, eval_fn)


def _train(recipe: PPORecipe, task: Any, out: Path, last: str | None,
           eval_fn: EvalFn | None) -> TrainResult:
    from accelerate import Accelerator
    from transformers import TrainerControl, TrainerState

    from gengap.cost import generation_flops, training_flops
    from gengap.rollout import make_sampler

    runtime = precision(recipe)
    accelerator = Accelerator(cpu=runtime["use_cpu"], mixed_precision=runtime["mixed_precision"])
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    indices = prompt_indices(recipe, task, out)[0]
    loaded = load_for_training(last or recipe.model, recipe, task)
    model, processor = loaded.model, loaded.processor
    if recipe.lora and not hasattr(model, "peft_config"):
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(recipe))
    head = ValueHead(hidden_size(model))
    state = TrainerState()
    if last is not None:
        from safetensors.torch import load_file

        head.load_state_dict(load_file(str(Path(last) / VALUE_HEAD_FILE)))
        state = TrainerState.load_from_json(str(Path(last) / "trainer_state.json"))
    state.max_steps = recipe.steps
    params = [{"params": [p for p in model.parameters() if p.requires_grad],
               "lr": recipe.learning_rate},
              {"params": list(head.parameters()),
               "lr": recipe.value_learning_rate or recipe.learning_rate}]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate,
                                  weight_decay=recipe.weight_decay)
    if last is not None and (Path(last) / OPTIMIZER_FILE).is_file():
        optimizer.load_state_dict(torch.load(Path(last) / OPTIMIZER_FILE, weights_only=True))
    model, head, optimizer = accelerator.prepare(model, head, optimizer)
    policy = accelerator.unwrap_model(model)
    tokenizer = tokenizer_of(processor)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_new = recipe.max_completion_length or task.max_new_tokens

    n_params, trainable = count_parameters(policy)
    generated = {"n": 0}
    epochs = recipe.ppo_epochs
    static = {
        "kind": "ppo", "steps": recipe.steps, "prompts_per_step": recipe.rollout_steps,
        "env_steps_per_update": recipe.rollout_steps, "dataset_rows": len(indices),
        "learning_rate": recipe.learning_rate, "lr_scheduler_type": "constant",
        "lora": recipe.lora, "parameters": n_params, "trainable_parameters": trainable,
        "reward": recipe.reward, "ppo_epochs": epochs, "verify_iters": recipe.verify_iters
        or task.verify_iters,
    }

    def flops(tokens: int) -> dict[str, float]:
        # tokens = sequence tokens trained on, every epoch counted; generation 2N per token
        # generated; old log-probs and values: one forward per buffer sequence.
        return {"generation": generation_flops(n_params, generated["n"]),
                "old_logprobs": 2.0 * n_params * tokens / epochs,
                "training": training_flops(n_params, tokens, lora=recipe.lora)}

    from gengap.models.loading import resolve_spec

    start = loaded.path if last is None else resolve_spec(recipe.model, task=task)
    callbacks = compute_callbacks(recipe, out, static, flops, [],
                                  eval_fn or task_eval_fn(recipe), last=last,
                                  start=start, generated=lambda: generated["n"])
    budget = callbacks[0]
    args = SimpleNamespace(output_dir=str(out))
    control = TrainerControl()
    hooks = {"model": policy, "processing_class": processor}

    def fire(event: str, **extra: Any) -> None:
        for callback in callbacks:
            getattr(callback, event)(args, state, control, **hooks, **extra)

    fire("on_train_begin")
    cursor = state.global_step * recipe.rollout_steps  # where the prompt stream continues
    rng = random.Random(f"{recipe.seed}/minibatches")
    while state.global_step < recipe.steps and not control.should_training_stop:
        # 1. rollout: whole episodes until the buffer holds rollout_steps environment steps
        sampler = make_sampler(policy, processor)
        transitions: list[dict[str, Any]] = []
        stats_all: list[dict[str, float]] = []
        while len(transitions) < recipe.rollout_steps:
            need = recipe.rollout_steps - len(transitions)
            batch = [task.sample(recipe.split, indices[(cursor + j) % len(indices)],
                                 recipe.data_seed) for j in range(need)]
            cursor += need
            found, stats = collect(task, sampler, unique_samples(batch), processor, recipe,
                                   max_new, seed=recipe.seed * 100003 + state.global_step * 101
                                   + len(stats_all))
            offset = (max(x["episode"] for x in transitions) + 1) if transitions else 0
            for x in found:
                x["episode"] += offset
            transitions += found
            stats_all.append(stats)
            generated["n"] += int(stats["generated_tokens"])
        # 2. old log-probs, values, GAE
        turns = [x["turn"] for x in transitions]
        model.eval()
        with torch.no_grad():
            old_logp, old_values = [], []
            for chunk in _chunks(list(range(len(turns))), recipe.mini_batch_size):
                lp, v, _ = evaluate_actions(model, head, [turns[i] for i in chunk],
                                            recipe.temperature, pad_id)
                old_logp.append(lp.cpu())
                old_values.append(v.cpu())
            old_logp, old_values = torch.cat(old_logp), torch.cat(old_values)
        rewards, grid, mask, places = episode_tensors(transitions, old_values)
        adv_grid, ret_grid = gae(rewards, grid, mask, gamma=recipe.gamma, lam=recipe.lam)
        if recipe.whiten_advantages:
            adv_grid = masked_whiten(adv_grid, mask)
        advantages = torch.stack([adv_grid[e, t] for e, t in places])
        returns = torch.stack([ret_grid[e, t] for e, t in places])
        # 3. PPO epochs over shuffled minibatches
        model.train()
        logs: list[dict[str, float]] = []
        order = list(range(len(turns)))
        for _ in range(epochs):
            rng.shuffle(order)
            for chunk in _chunks(order, recipe.mini_batch_size):
                lp, v, ent = evaluate_actions(model, head, [turns[i] for i in chunk],
                                              recipe.temperature, pad_id)
                idx = torch.tensor(chunk)
                loss, parts = ppo_loss(lp, old_logp[idx].to(lp.device), v,
                                       old_values[idx].to(v.device),
                                       advantages[idx].to(lp.device),
                                       returns[idx].to(v.device), ent, recipe)
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                norm = accelerator.clip_grad_norm_(
                    [p for g in optimizer.param_groups for p in g["params"]],
                    recipe.max_grad_norm)
                optimizer.step()
                logs.append({**parts, "loss": loss.item(), "grad_norm": float(norm)})
                state.num_input_tokens_seen += sum(len(turns[i].ids) for i in chunk)
        state.global_step += 1
        state.epoch = state.global_step * recipe.rollout_steps / max(1, len(indices))
        log = {k: sum(x[k] for x in logs) / len(logs) for k in logs[0]}
        for key in ("success", "first_attempt_success", "mean_return"):
            log[f"rollout/{key}"] = sum(s[key] * s["episodes"] for s in stats_all) / sum(
                s["episodes"] for s in stats_all)
        log.update({"rollout/env_steps": len(transitions), "step": state.global_step,
                    "advantage_abs_mean": advantages.abs().mean().item(),
                    "return_mean": returns.mean().item()})
        state.log_history.append(log)
        fire("on_log", logs=log)
        fire("on_step_end")
        if state.global_step % recipe.save_every == 0 or state.global_step == recipe.steps:
            _save_checkpoint(out, state, policy, accelerator.unwrap_model(head), optimizer,
                             processor)
            fire("on_save")
    fire("on_train_end")
    trainer = SimpleNamespace(model=policy, state=state)
    _save_value_head(out / "value_head", accelerator.unwrap_model(head))
    return finish(trainer, loaded, recipe, out, budget)




def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _save_value_head(path: Path, head: ValueHead) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
              str(path / VALUE_HEAD_FILE))


def _save_checkpoint(out: Path, state: Any, policy: Any, head: ValueHead, optimizer: Any,
                     processor: Any) -> None:
    """checkpoint-N/: the policy (HF format; adapters for LoRA), value head, optimizer, state."""
    from gengap.runs import atomic_dir

    with atomic_dir(out / f"checkpoint-{state.global_step}") as tmp:
        policy.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        _save_value_head(Path(tmp), head)
        torch.save(optimizer.state_dict(), Path(tmp) / OPTIMIZER_FILE)
        state.save_to_json(str(Path(tmp) / "trainer_state.json"))
    (out / "log_history.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in state.log_history))
