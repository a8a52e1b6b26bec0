"""Multi-turn episodes: up to V attempts per sample, with the verifier's feedback in between.

Round 1 samples every episode's first attempt from the task's first-turn messages. After a
failed attempt the conversation grows by the assistant turn (the completion) and a user turn
``task.failure_turn(verdict)``; the image, if any, stays only in the first user turn. Episodes
that succeed stop; the still-running ones are sampled together, one batch per round.

With ``params.k > 1`` each of a sample's k first attempts starts its own episode (so a sample
gives k episodes, `Episode.sample_index` = 0..k-1); later rounds sample one continuation per
episode. Each attempt's random stream is keyed by (sample id, sample index, attempt), so the
episodes do not depend on which other samples run beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from gengap.errors import InputError
from gengap.rollout.sampling import Messages, Sampler, SamplingParams
from gengap.tasks.base import Sample, Task, Verdict


@dataclass
class Episode:
    """One episode: the attempts made, their verdicts, and whether any attempt was correct."""

    sample_id: str
    attempts: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    sample_index: int = 0
    generated_tokens: int = 0

    @property
    def success(self) -> bool:
        """True when some attempt was correct (the episode stops at the first correct one)."""
        return any(v.correct for v in self.verdicts)

    @property
    def num_attempts(self) -> int:
        """Attempts made (1..verify_iters)."""
        return len(self.attempts)


def continue_conversation(
    first_turn: Messages, attempts: Sequence[str], feedback: Sequence[str]
) -> Messages:
    """The messages for the next attempt: first turn, then (assistant, user feedback) pairs."""
    messages = list(first_turn)
    for attempt, user_turn in zip(attempts, feedback, strict=True):
        messages.append({"role": "assistant", "content": attempt})
        messages.append({"role": "user", "content": user_turn})
    return messages


def run_episodes(
    sampler: Sampler,
    task: Task,
    samples: list[Sample],
    params: SamplingParams,
    verify_iters: int,
    progress: bool = True,
) -> list[Episode]:
    """Run episodes of up to `verify_iters` attempts; return them sample-major (k per sample)."""
    if verify_iters < 1:
        raise InputError("verify_iters must be >= 1", where="run_episodes")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise InputError("sample ids must be unique: they key the random streams")
    k = params.k
    first_turns = [task.messages(s) for s in samples]
    images = [task.image(s) for s in samples]
    episodes = [Episode(s.id, sample_index=j) for s in samples for j in range(k)]
    feedback: list[list[str]] = [[] for _ in episodes]

    def record(index: int, text: str, tokens: int) -> None:
        episode = episodes[index]
        verdict = task.verify(samples[index // k], text)
        episode.attempts.append(text)
        episode.verdicts.append(verdict)
        episode.generated_tokens += tokens
        if not verdict.correct and episode.num_attempts < verify_iters:
            feedback[index].append(task.failure_turn(verdict))

    bar = tqdm(total=verify_iters, desc="episode rounds", disable=not progress)
    # Round 1: k samples per prompt in one call (the backend shares each prompt's prefill).
    result = sampler.generate(first_turns, images, params, keys=[f"{i}#attempt0" for i in ids])
    for s_index, completions in enumerate(result.completions):
        for j, completion in enumerate(completions):
            record(s_index * k + j, completion.text, completion.num_tokens)
    bar.update(1)
    single = replace(params, k=1)
    for attempt in range(1, verify_iters):
        running = [i for i, e in enumerate(episodes) if not e.success]
        if not running:
            break
        prompts = [
            continue_conversation(first_turns[i // k], episodes[i].attempts, feedback[i])
            for i in running
        ]
        keys = [f"{ids[i // k]}#{episodes[i].sample_index}#attempt{attempt}" for i in running]
        result = sampler.generate(prompts, [images[i // k] for i in running], single, keys=keys)
        for i, completions in zip(running, result.completions, strict=True):
            record(i, completions[0].text, completions[0].num_tokens)
        bar.update(1)
    bar.close()
    return episodes
