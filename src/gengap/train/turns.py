"""Episodes as training data: the turns of multi-step rollouts, tokenized for a loss.

PPO and multi-turn GRPO train on the same thing: episodes a task runs through its `Episode`
interface (a retry after feedback for GeneralPoints, the next state for navigation) with the
rollout engine (`gengap.rollout.run_episodes`). `replay` turns a finished episode back into
its turns (the observation the model saw, its completion, the verdict, whether the episode
ended) by stepping a fresh episode with the recorded completions: episodes are deterministic
given their completions, so this is exact for any task, and the rollout code stays the one
sampling path evaluation and difficulty use.

`encode` tokenizes one turn: the rendered prompt (chat template, generation prompt) and the
completion (plus EOS when the model ended it), with the processor's image tensors when the
observation carries images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gengap.tasks.base import Observation, Verdict


@dataclass
class Turn:
    """One decision point of an episode."""

    observation: Observation
    completion: str
    verdict: Verdict
    done: bool
    generated_tokens: int = 0
    target: str = ""  # the episode's oracle completion for this observation


@dataclass
class EncodedTurn:
    """One turn as token ids: prompt, completion, and the image tensors of the prompt."""

    prompt_ids: list[int]
    completion_ids: list[int]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


def replay(task: Any, result: Any, verify_iters: int | None) -> list[Turn]:
    """The turns of a finished `EpisodeResult`, re-stepped through a fresh episode."""
    env = task.episode(result.sample, verify_iters)
    observation = env.reset()
    turns = []
    per_turn = result.generated_tokens / max(1, len(result.attempts))
    for completion, recorded in zip(result.attempts, result.verdicts, strict=True):
        target = env.oracle()
        step = env.step(completion)
        if step.verdict.reward != recorded.reward:  # a task whose episodes are not replayable
            raise RuntimeError(f"task {task.name!r}: replaying an episode changed its verdict")
        turns.append(Turn(observation, completion, step.verdict, step.done, round(per_turn),
                          target))
        if step.done:
            break
        observation = step.observation
    return turns


def tokenizer_of(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def encode(processor: Any, observation: Observation, completion: str,
           finished: bool = True) -> EncodedTurn:
    """Tokenize a turn as the model saw and wrote it (EOS appended when it ended the text)."""
    text = processor.apply_chat_template(observation.messages, add_generation_prompt=True,
                                         tokenize=False)
    tokenizer = tokenizer_of(processor)
    extra: dict[str, torch.Tensor] = {}
    if observation.images:
        enc = processor(text=[text], images=[list(observation.images)], return_tensors="pt",
                        add_special_tokens=False)
        prompt_ids = enc["input_ids"][0].tolist()
        extra = {k: v for k, v in enc.items()
                 if k not in ("input_ids", "attention_mask") and isinstance(v, torch.Tensor)}
    else:
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if finished and tokenizer.eos_token_id is not None:
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
    return EncodedTurn(list(prompt_ids), list(completion_ids), extra)


def episode_return(verdicts: Sequence[Verdict], mode: str = "shaped") -> float:
    """An episode's reward from its steps': the sum of the shaped rewards (the study's return),
    or 1/0 for success within the episode ("binary")."""
    if mode == "binary":
        return float(any(v.correct for v in verdicts))
    return float(sum(v.reward for v in verdicts))
