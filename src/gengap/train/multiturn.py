"""Multi-turn GRPO: whole episodes in TRL's `GRPOTrainer` through its `rollout_func`.

An episode is the task's `Episode` (a retry after the verifier's feedback for GeneralPoints,
route steps for navigation), run with the policy being trained by gengap's sampler. TRL's
`rollout_func(prompts, trainer)` receives one prompt per completion (each of a batch's prompts
`num_generations` times in a row) and returns, per completion:

- ``prompt_ids``: the first observation's prompt, as the chat template renders it;
- ``completion_ids``: every attempt and, between attempts, the tokens the environment adds
  (the end of the assistant turn, the feedback user turn, the next generation prompt);
- ``env_mask``: 1 for tokens the model wrote, 0 for the environment's: TRL multiplies it into
  the loss mask, so feedback and observation tokens carry no gradient;
- ``logprobs``: the policy's per-token log-probabilities of the completion (one no-grad
  forward; TRL uses them only for vLLM's importance-sampling correction);
- ``episode_reward`` / ``episode_success`` / ``first_success``: passed on to the reward
  function; the episode's reward is the sum of its steps' shaped rewards (the study's return)
  or, with ``reward: binary``, 1 for success within the episode.

**What TRL cannot carry.** With a `rollout_func`, TRL 1.16 feeds the forward pass the dataset
row's images (it restores them after the rollout), never images an episode adds on later
turns. A retry episode keeps its first images, so GeneralPoints' image episodes train whole.
A task whose later observations bring new images (navigation's next state) trains **per
decision point** instead (`turn_mode: decision`, chosen automatically by `turn_mode: auto`):
the start model's episodes are replayed into one row per observation (the history in the
prompt, that observation's images), and each row's completion is rewarded by replaying the
episode's earlier attempts and stepping it once (the step's own reward).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from gengap.tasks.base import Observation
from gengap.train.turns import encode, replay, tokenizer_of

PREFIX_COLUMN = "gengap_prefix"  # decision-point rows: the episode's earlier attempts (JSON)


def inputs_aware(base: type) -> type:
    """A `GRPOTrainer` subclass that keeps the rows it is scoring (`_gengap_inputs`), so the
    rollout finds each prompt's sample by its index column: prompts alone do not identify a
    sample (image tasks share one prompt text across samples)."""

    class InputsAwareGRPOTrainer(base):
        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]
                                            ) -> dict[str, Any]:
            self._gengap_inputs = inputs
            return super()._generate_and_score_completions(inputs)

    return InputsAwareGRPOTrainer


def new_images_later(task: Any, sample: Any, verify_iters: int | None) -> bool:
    """Whether the sample's episode shows new images after its first turn (probed with an
    empty attempt: an episode that continues past it reveals its next observation)."""
    env = task.episode(sample, verify_iters)
    first = env.reset()
    step = env.step("")
    if step.done or step.observation is None:
        return False
    later = step.observation.images
    return len(later) != len(first.images) or any(
        a.tobytes() != b.tobytes() for a, b in zip(later, first.images, strict=False))


def episode_tokens(processor: Any, turns: Sequence[Any], max_new_tokens: int
                   ) -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, completion_ids, env_mask) of one episode's turns.

    Each turn's rendered prompt must extend the previous turn's prompt and completion (true of
    chat templates: the history is rendered as it was). The environment's tokens are what
    the next rendered prompt adds past what the model has written; they get mask 0.
    """
    first = encode(processor, turns[0].observation, "")
    prompt_ids = first.prompt_ids
    tokenizer = tokenizer_of(processor)
    completion, mask = [], []
    for i, turn in enumerate(turns):
        ids = tokenizer(turn.completion, add_special_tokens=False)["input_ids"]
        finished = len(ids) < max_new_tokens  # a clipped attempt wrote no EOS
        if finished and tokenizer.eos_token_id is not None:
            ids = [*ids, tokenizer.eos_token_id]
        completion += ids
        mask += [1] * len(ids)
        if i + 1 < len(turns):
            written = prompt_ids + completion
            following = encode(processor, turns[i + 1].observation, "").prompt_ids
            if following[:len(written)] == written:
                gap = following[len(written):]
            else:  # the template re-renders the attempt differently (e.g. no EOS written)
                gap = _text_gap(processor, turns[i].observation, turns[i + 1].observation,
                                turn.completion)
            completion += gap
            mask += [0] * len(gap)
    return prompt_ids, completion, mask


def _text_gap(processor: Any, before: Observation, after: Observation,
              completion: str) -> list[int]:
    """The environment's tokens when token prefixes do not line up: the rendered text the
    next prompt adds after the previous prompt and the attempt."""
    render = processor.apply_chat_template
    old = render(before.messages, add_generation_prompt=True, tokenize=False) + completion
    new = render(after.messages, add_generation_prompt=True, tokenize=False)
    tail = new[len(old):] if new.startswith(old) else new
    return tokenizer_of(processor)(tail, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def completion_logprobs(model: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                        temperature: float, pad_id: int) -> list[list[float]]:
    """Per-token log-probabilities of each completion under `model` at `temperature`."""
    device = next(model.parameters()).device
    seqs = [p + c for p, c in zip(prompt_ids, completion_ids, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = torch.tensor(seq)
        attention[row, :len(seq)] = 1
    was_training = model.training
    model.eval()
    logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
    model.train(was_training)
    out = []
    for row, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        step = torch.log_softmax(logits[row, len(p) - 1: len(p) + len(c) - 1].float()
                                 / temperature, dim=-1)
        out.append(step.gather(-1, torch.tensor(c, device=device)[:, None]).squeeze(-1)
                   .tolist())
    return out


class EpisodeRollout:
    """TRL `rollout_func`: one whole episode per completion (see the module doc)."""

    def __init__(self, task: Any, samples: Sequence[Any], *, index_column: str,
                 verify_iters: int | None,
                 reward: str, processor: Any, max_new_tokens: int, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0, generated: Any = None):
        self.task, self.samples, self.verify_iters = task, list(samples), verify_iters
        self.index_column = index_column
        self.reward, self.processor, self.max_new_tokens = reward, processor, max_new_tokens
        self.top_k, self.top_p, self.seed, self.generated = top_k, top_p, seed, generated
        self.calls = 0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        from gengap.rollout import SamplingParams, make_sampler, run_episodes
        from gengap.train.turns import episode_return

        inputs = getattr(trainer, "_gengap_inputs", None)
        if inputs is None or len(inputs) != len(prompts):
            raise RuntimeError("EpisodeRollout needs the trainer of `inputs_aware`")
        keys = [int(x[self.index_column]) for x in inputs]
        order: list[int] = []
        for key in keys:
            if key not in order:
                order.append(key)
        counts = {key: keys.count(key) for key in order}
        k = counts[order[0]]
        if any(c != k for c in counts.values()):
            raise RuntimeError(f"rollout_func got uneven prompt groups: {sorted(counts.values())}")
        model = trainer.accelerator.unwrap_model(trainer.model)
        temperature = float(trainer.temperature)
        params = SamplingParams(k=k, temperature=temperature, top_k=self.top_k,
                                top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                                seed=self.seed * 1000003 + self.calls)
        self.calls += 1
        results = run_episodes(make_sampler(model, self.processor), self.task,
                               [self.samples[key] for key in order], params,
                               verify_iters=self.verify_iters)
        by_key = {key: results[i * k:(i + 1) * k] for i, key in enumerate(order)}
        taken = dict.fromkeys(order, 0)
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "env_mask": [],
                                "episode_reward": [], "episode_success": [],
                                "first_success": [], "attempts": []}
        for key in keys:
            result = by_key[key][taken[key]]
            taken[key] += 1
            turns = replay(self.task, result, self.verify_iters)
            p, c, m = episode_tokens(self.processor, turns, self.max_new_tokens)
            out["prompt_ids"].append(p)
            out["completion_ids"].append(c)
            out["env_mask"].append(m)
            out["episode_reward"].append(episode_return(result.verdicts, self.reward))
            out["episode_success"].append(float(result.success))
            out["first_success"].append(float(bool(result.verdicts[0].correct)))
            out["attempts"].append(len(turns))
            if self.generated is not None:
                self.generated.n += sum(m)
        tokenizer = tokenizer_of(self.processor)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        out["logprobs"] = completion_logprobs(model, out["prompt_ids"], out["completion_ids"],
                                              temperature, pad)
        return out


def episode_reward_fn(name: str) -> Any:
    """The reward function of multi-turn rows: the episode's reward the rollout computed."""

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        log = columns.get("log_metric")
        if callable(log):
            n = len(columns["episode_success"])
            log("accuracy", sum(columns["episode_success"]) / n)  # success within V
            log("first_attempt_accuracy", sum(columns["first_success"]) / n)
            log("attempts", sum(columns["attempts"]) / n)
        return [float(r) for r in columns["episode_reward"]]

    reward.__name__ = name
    return reward


def decision_rows(task: Any, samples: Sequence[Any], model: Any, processor: Any, *,
                  verify_iters: int | None, temperature: float, max_new_tokens: int,
                  index_column: str, seed: int = 0) -> list[dict[str, Any]]:
    """One GRPO row per decision point of the start model's episodes: the observation's
    messages (history included) and images, the sample's position, its earlier attempts."""
    from gengap.rollout import SamplingParams, make_sampler, run_episodes

    params = SamplingParams(k=1, temperature=temperature, max_new_tokens=max_new_tokens,
                            seed=seed)
    results = run_episodes(make_sampler(model, processor), task, list(samples), params,
                           verify_iters=verify_iters)
    rows = []
    for position, result in enumerate(results):
        prefix: list[str] = []
        for turn in replay(task, result, verify_iters):
            row = {"prompt": turn.observation.messages, index_column: position,
                   PREFIX_COLUMN: json.dumps(prefix)}
            if turn.observation.images:
                row["images"] = list(turn.observation.images)
            rows.append(row)
            prefix = [*prefix, turn.completion]
    return rows


def decision_reward_fn(task: Any, samples: Sequence[Any], *, verify_iters: int | None,
                       mode: str, index_column: str, name: str, generated: Any = None) -> Any:
    """The reward of a decision-point row's completion: replay the earlier attempts, step
    once, and take that step's reward (shaped, or 1/0 correct)."""

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        if generated is not None:
            generated.n += sum(len(ids) for ids in columns.get("completion_ids") or [])
        out, correct = [], []
        for i, completion in enumerate(completions):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            env = task.episode(samples[int(columns[index_column][i])], verify_iters)
            env.reset()
            for earlier in json.loads(columns[PREFIX_COLUMN][i]):
                env.step(earlier)
            verdict = env.step(text).verdict
            correct.append(verdict.correct)
            out.append(float(verdict.correct) if mode == "binary" else float(verdict.reward))
        if callable(columns.get("log_metric")) and correct:
            columns["log_metric"]("accuracy", sum(correct) / len(correct))
        return out

    reward.__name__ = name
    return reward
