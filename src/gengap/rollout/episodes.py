"""Episodes: the one path from samples to judged completions.

Every stage that samples a model and judges what it wrote -- difficulty, evaluation, the
learning-rate sweep's validation, the cold start's quality check -- calls `run_episodes`.
It drives the task's episodes (`Task.episode`: reset -> observation; step(completion) ->
verdict, next observation, done) in lock step: each round samples the next completion of every
running episode in one batch, so a retry after feedback (GeneralPoints) and a move to the next
state (navigation) cost the same machinery.

With ``params.k > 1`` each sample starts k episodes (`EpisodeResult.sample_index` = 0..k-1).
Their first observations are identical (episodes reset deterministically), so round 1 samples
k completions of one prompt in one call (the engine shares the prompt's prefill) under the
sample id's random stream; later rounds sample one continuation per episode under the key
``{id}#{j}#attempt{t}``. The episodes therefore do not depend on which other samples run beside
them, and a single-round run (verify_iters=1) reproduces the per-sample k draws exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tqdm.auto import tqdm

from gengap.errors import InputError
from gengap.rollout.sampling import Sampler, SamplingParams
from gengap.tasks.base import Episode, Observation, Sample, Task, Verdict

MAX_ROUNDS = 1000  # a guard against an episode that never ends


@dataclass
class EpisodeResult:
    """One finished episode: the completions, their verdicts, the outcome and its metrics."""

    sample: Sample
    sample_index: int = 0
    attempts: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    success: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    generated_tokens: int = 0
    first_prompt: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sample_id(self) -> str:
        return self.sample.id

    @property
    def num_attempts(self) -> int:
        return len(self.attempts)

    @property
    def reward(self) -> float:
        """The episode's return: the sum of its steps' shaped rewards."""
        return float(sum(v.reward for v in self.verdicts))


def run_episodes(
    sampler: Sampler,
    task: Task,
    samples: Sequence[Sample],
    params: SamplingParams,
    verify_iters: int | None = None,
    progress: bool = False,
    usage: dict[str, int] | None = None,
) -> list[EpisodeResult]:
    """Run k episodes per sample to the end; return them sample-major (k per sample).

    `usage`, when given, accumulates the engine's token counts over every round:
    ``prompt_tokens`` (prompts encoded; a prompt shared by k samples counts once) and
    ``generated_tokens`` -- what a FLOPs estimate of the run counts (`gengap.cost`).
    """
    if verify_iters is not None and verify_iters < 1:
        raise InputError("verify_iters must be >= 1", where="run_episodes")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise InputError("sample ids must be unique within a run: they key the random streams",
                         hint="give every row of the dataset its own id")
    k = params.k
    envs: list[Episode] = [task.episode(s, verify_iters) for s in samples for _ in range(k)]
    results = [EpisodeResult(s, j) for s in samples for j in range(k)]
    observations: list[Observation | None] = [env.reset() for env in envs]
    for result, obs in zip(results, observations, strict=True):
        result.first_prompt = obs.messages

    def record(i: int, text: str, tokens: int) -> None:
        step = envs[i].step(text)
        results[i].attempts.append(text)
        results[i].verdicts.append(step.verdict)
        results[i].generated_tokens += tokens
        observations[i] = None if step.done else step.observation

    def count(batch: Any) -> None:
        if usage is not None:
            usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + int(batch.prompt_tokens)
            usage["generated_tokens"] = (usage.get("generated_tokens", 0)
                                         + int(batch.generated_tokens))

    bar = tqdm(desc="episode rounds", unit="round", disable=not progress)
    # Round 1: k completions per prompt in one call (the backend shares each prompt's prefill).
    first = [observations[i * k] for i in range(len(samples))]
    batch = sampler.generate([o.messages for o in first], [list(o.images) for o in first],
                             params, keys=ids)
    count(batch)
    for s_index, completions in enumerate(batch.completions):
        for j, completion in enumerate(completions):
            record(s_index * k + j, completion.text, completion.num_tokens)
    bar.update(1)
    single = replace(params, k=1)
    for round_ in range(1, MAX_ROUNDS):
        running = [i for i, obs in enumerate(observations) if obs is not None]
        if not running:
            break
        keys = [f"{ids[i // k]}#{i % k}#attempt{round_}" for i in running]
        batch = sampler.generate([observations[i].messages for i in running],
                                 [list(observations[i].images) for i in running], single,
                                 keys=keys)
        count(batch)
        for i, completions in zip(running, batch.completions, strict=True):
            record(i, completions[0].text, completions[0].num_tokens)
        bar.update(1)
    else:
        raise RuntimeError(f"episodes of task {task.name!r} ran past {MAX_ROUNDS} rounds")
    bar.close()
    for result, env in zip(results, envs, strict=True):
        result.success = bool(env.success)
        result.metrics = {k_: float(v) for k_, v in env.metrics().items()}
    return results


def group_by_sample(results: Sequence[EpisodeResult], k: int) -> list[list[EpisodeResult]]:
    """`run_episodes` output as one list of k episodes per sample."""
    return [list(results[i:i + k]) for i in range(0, len(results), k)]
