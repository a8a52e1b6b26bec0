"""The revision phase of the tiny model's cold start: learning to use a verification turn.

A cold start that only ever saw first turns gives the model no reason to answer a failure
turn differently: with V attempts its success within V equals its first-attempt success. The
study's models arrive with an instruction-tuned prior that reads feedback; this phase gives
the tiny model one, from **its own failed attempts**:

1. the cold-started model plays retry episodes (`Task.episode`, up to `attempts` + 1 tries)
   on fresh warmup samples at `temperature`;
2. every observation that follows a failed attempt -- the conversation with the model's
   wrong answer and the verifier's feedback (``You failed this trial because ...``) -- becomes
   a training row. Its completion is the **oracle answer** (`Episode.oracle`;
   ``targets="oracle"``) or, with ``targets="own"``, the model's **own correct answer** when a
   retry of that question went on to succeed, or with ``targets="sampled"`` its most frequent
   correct answer among `sample_k` fresh samples of the question that differs from the failed
   ones (the oracle answer otherwise): a revision the model can already produce, so the row
   teaches "after this failure, answer differently" rather than a new solution. ("sampled" is
   the best-of-k self-distillation of RISE, Qu et al. 2024: a model that fails greedily often
   holds a right answer further down its distribution -- pass@k above pass@1 -- and the
   retry learns to reach for it.)
3. a `plain_share` of first-turn rows (prompt -> oracle answer) keeps first attempts as good;
4. one `SFTTrainer` pass, like every cold-start phase.

The target of a row is the episode's `oracle()` for that observation, so the phase serves any
task's episodes: a retry asks the same question again (GeneralPoints), a route episode retries
the same decision point after a wrong action (navigation); observations that follow a success
(a route's next point) are not revision rows.

`ColdStartRecipe.revision` (a dict of `RevisionPhase` fields) turns it on: the checkpoint is
the task's ordinary cold start (cached, trained first if needed) plus this phase, cached
under its own key. `measure_revision` reports first-attempt success and success within V,
greedy and at each of `eval_temperatures` (the study generates at 0.2): a model that ignores
the feedback repeats its greedy answer, so greedy within-V minus first attempt measures the
use of the verification turn; at a temperature, resampling alone adds some.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from tqdm.auto import tqdm

from gengap.errors import InputError
from gengap.tasks.base import unique_samples

TARGETS = ("oracle", "own", "sampled")


@dataclass
class RevisionPhase:
    """Settings of the revision phase (keys of `ColdStartRecipe.revision`)."""

    steps: int = 150
    batch_size: int = 64
    learning_rate: float = 3e-4
    attempts: int = 2  # failed attempts a row may carry before the oracle answer
    temperature: float = 0.9  # the model's own attempts are sampled, as in RL
    plain_share: float = 0.3  # first-turn rows mixed in (prompt -> oracle answer)
    lr_scheduler_type: str = "cosine"
    warmup_fraction: float = 0.05
    chunk: int = 256  # warmup samples played per sampling round
    eval_n: int = 200  # episodes per test split for the before / after measurement (0: off)
    # "oracle": rows after a failure train on the oracle answer; "own": on the model's own
    # later correct attempt in that episode, where there is one; "sampled": on the model's most
    # frequent correct answer among `sample_k` fresh samples of the question that differs from
    # the row's failed attempts (RISE-style best-of-k self-distillation). Both fall back to the
    # oracle answer.
    targets: str = "oracle"
    sample_k: int = 8
    # Each step's rows trained as this many length-balanced micro-batches (gradients
    # accumulated: the same rows and loss per step). Rows after failures run from ~60 to
    # ~1000 tokens, and one batch padded to its longest row trains mostly padding (measured,
    # benchmarks/revision_batching.py: 10.1 s/step as one batch of 64, 1.6 with 4, 1.1 with 8).
    micro_batches: int = 8
    eval_temperatures: tuple[float, ...] = (0.0, 0.2)  # 0.0: greedy

    def validate(self) -> None:
        if min(self.steps, self.batch_size, self.attempts, self.chunk, self.micro_batches) < 1:
            raise InputError("revision: steps, batch_size, attempts, chunk and micro_batches "
                             "must be >= 1")
        if self.batch_size % self.micro_batches:
            raise InputError(f"revision: batch_size {self.batch_size} is not a multiple of "
                             f"micro_batches {self.micro_batches}")
        if not 0 <= self.plain_share < 1:
            raise InputError(f"revision: plain_share must lie in [0, 1), got {self.plain_share}")
        if self.temperature <= 0:
            raise InputError("revision: temperature must be > 0 (the failures are sampled)")
        if self.targets not in TARGETS:
            raise InputError(f"revision: targets must be one of {', '.join(TARGETS)}, "
                             f"got {self.targets!r}")
        if self.sample_k < 1:
            raise InputError("revision: sample_k must be >= 1")
        if any(t < 0 for t in self.eval_temperatures):
            raise InputError("revision: eval_temperatures must be >= 0 (0: greedy)")


def revision_phase(settings: dict[str, Any]) -> RevisionPhase:
    """`RevisionPhase` from a recipe dict, checked."""
    try:
        phase = RevisionPhase(**settings)
    except TypeError as exc:
        raise InputError(f"bad revision setting: {exc}",
                         hint=f"keys: {', '.join(RevisionPhase.__dataclass_fields__)}") from None
    phase.validate()
    return phase


def revision_rows(task: Any, model: Any, processor: Any, phase: RevisionPhase, *, split: str,
                  first_index: int, seed: int) -> tuple[list[Any], list[str], list[Any], dict]:
    """(prompts, completions, images, stats) of the phase: observations after the model's
    own failures -> the `targets` answer (the oracle's where it has none), plus first-turn
    rows, `steps x batch_size` in all."""
    from gengap.rollout import SamplingParams, make_sampler, run_episodes
    from gengap.train.turns import replay

    rows = phase.steps * phase.batch_size
    want_plain = round(rows * phase.plain_share)
    want_revision = rows - want_plain
    rng = random.Random(f"{seed}/revision")
    size = task.split(split).size
    sampler = make_sampler(model, processor)
    params = SamplingParams(k=1, temperature=phase.temperature, top_k=50,
                            max_new_tokens=task.max_new_tokens, seed=seed)
    revision: list[tuple[Any, str, bool]] = []  # (observation, target, the model's own?)
    plain: list[tuple[Any, str]] = []  # (first observation, its oracle answer)
    played = failed_first = 0
    index = first_index
    bar = tqdm(total=want_revision, desc="revision: rows after failures", unit="row")
    while len(revision) < want_revision:
        if played > 50 * rows:
            raise InputError("revision: the model rarely fails, too few failure rows",
                             hint="lower plain_share or skip the revision phase")
        samples = [task.sample(split, (index + j) % size if size else index + j, seed)
                   for j in range(phase.chunk)]
        index += phase.chunk
        played += len(samples)
        played_rows: list[tuple[Any, list[Any], int]] = []  # (episode, its turns, row turn)
        for result in run_episodes(sampler, task, unique_samples(samples), params,
                                   verify_iters=phase.attempts + 1):
            turns = replay(task, result, phase.attempts + 1)
            failed_first += not turns[0].verdict.correct
            # Each turn that follows a failure is a row; a turn after a success is not.
            played_rows += [(result, turns, i) for i in range(1, len(turns))
                            if not turns[i - 1].verdict.correct]
            if len(plain) < want_plain:
                plain.append((turns[0].observation, turns[0].target))
        if phase.targets == "own":
            chosen = [own_revision(turns, i) for _, turns, i in played_rows]
        elif phase.targets == "sampled":
            chosen = sampled_revisions(task, sampler, replace(params, k=phase.sample_k),
                                       played_rows, phase.attempts + 1)
        else:
            chosen = [None] * len(played_rows)
        revision += [(turns[i].observation, own or turns[i].target, own is not None)
                     for (_, turns, i), own in zip(played_rows, chosen, strict=True)]
        bar.update(min(len(revision), want_revision) - bar.n)
    bar.close()
    rng.shuffle(revision)
    revision = revision[:want_revision]
    while len(plain) < want_plain:  # more first-turn rows than episodes played: repeat
        plain.append(plain[len(plain) % max(1, len(plain))])
    prompts, completions, images = [], [], []
    for observation, target in [(o, t) for o, t, _ in revision] + plain:
        prompts.append(observation.messages)
        completions.append(target)
        images.append(list(observation.images))
    order = list(range(len(prompts)))
    rng.shuffle(order)
    stats = {"rows": len(order), "revision_rows": len(revision), "plain_rows": len(plain),
             "episodes_played": played,
             "first_attempt_failure_rate": round(failed_first / max(1, played), 4),
             "own_target_rows": sum(own for *_, own in revision),
             "next_index": index}
    return ([prompts[i] for i in order], [completions[i] for i in order],
            [images[i] for i in order], stats)


def own_revision(turns: list[Any], i: int) -> str | None:
    """The model's own first correct answer to the question turn `i` asks (that turn or a
    later retry of it: the same oracle, no success in between), or None."""
    for turn in turns[i:]:
        if turn.target != turns[i].target:  # the episode moved on to another question
            return None
        if turn.verdict.correct:
            return turn.completion
    return None


def question_start(turns: list[Any], i: int) -> int:
    """The turn that first asked the question turn `i` retries (same oracle, failures since)."""
    j = i
    while j > 0 and turns[j - 1].target == turns[i].target and not turns[j - 1].verdict.correct:
        j -= 1
    return j


def sampled_revisions(task: Any, sampler: Any, params: Any, rows: list[tuple[Any, list, int]],
                      verify_iters: int) -> list[str | None]:
    """Per row (episode, turns, i): the model's most frequent correct answer among `params.k`
    fresh samples of the question (its first asking, without the failed history) that none of
    the row's failed attempts already is; None where no sample qualifies."""
    # One draw per question asked: the rows after a question's 1st and 2nd failure share it.
    asks: dict[tuple[int, int], Any] = {}  # (episode, turn that asked) -> the observation
    for result, turns, i in rows:
        j = question_start(turns, i)
        asks.setdefault((id(result), j), (result, turns[j].observation))
    batch = sampler.generate(
        [obs.messages for _, obs in asks.values()], [list(obs.images) for _, obs in asks.values()],
        params, keys=[f"{r.sample.id}#{r.sample_index}#resample{j}"
                      for (_, j), (r, _) in asks.items()])
    drawn = dict(zip(asks, batch.completions, strict=True))
    out: list[str | None] = []
    for result, turns, i in rows:
        j = question_start(turns, i)
        failed = {turn.completion.strip() for turn in turns[j:i]}
        counts = Counter(c.text for c in drawn[id(result), j] if c.text.strip() not in failed)
        out.append(next((text for text, _ in counts.most_common()
                         if judge_at(task, result, j, text, verify_iters)), None))
    return out


def judge_at(task: Any, result: Any, j: int, completion: str, verify_iters: int) -> bool:
    """Whether `completion` is right at turn `j` of the episode (replayed to that point:
    episodes are deterministic given their completions)."""
    env = task.episode(result.sample, verify_iters)
    env.reset()
    for attempt in result.attempts[:j]:
        env.step(attempt)
    return bool(env.step(completion).verdict.correct)


def questions(turns: list[Any]) -> list[list[Any]]:
    """An episode's turns grouped by the question they answer: a retry continues its
    question; a success or a new oracle answer starts the next (a route's next point)."""
    groups: list[list[Any]] = []
    for i, turn in enumerate(turns):
        if groups and question_start(turns, i) != i:
            groups[-1].append(turn)
        else:
            groups.append([turn])
    return groups


def measure_revision(model: Any, processor: Any, task: Any, splits: list[str], *, n: int = 200,
                     verify_iters: int | None = None, temperature: float = 0.0,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """Per split, over the questions the episodes asked (a GeneralPoints episode asks one, a
    route episode one per decision point it reached): first-attempt success, success within V
    attempts, and how often a second attempt repeats the failed first one word for word
    (`repeats`); greedy by default. `episode_success` is the episodes' own outcome."""
    from gengap.rollout import SamplingParams, make_sampler, run_episodes
    from gengap.train.turns import replay

    v = verify_iters or task.verify_iters
    sampler = make_sampler(model, processor)
    out = {}
    for split in tqdm(splits, desc=f"revision: measuring (T={temperature:g})", unit="split"):
        count = min(n, task.split(split).size or n)
        samples = [task.sample(split, i, seed) for i in range(count)]
        results = run_episodes(sampler, task, samples, SamplingParams(
            k=1, temperature=temperature, top_k=50 if temperature else 0,
            max_new_tokens=task.max_new_tokens, seed=seed), verify_iters=v)
        asked = [q for r in results for q in questions(replay(task, r, v))]
        first = sum(bool(q[0].verdict.correct) for q in asked) / len(asked)
        within = sum(any(t.verdict.correct for t in q) for q in asked) / len(asked)
        retried = [q for q in asked if len(q) > 1]
        repeats = sum(q[1].completion.strip() == q[0].completion.strip() for q in retried)
        out[split] = {"first_attempt": first, f"within_{v}": within, "gain": within - first,
                      "mean_attempts": sum(len(q) for q in asked) / len(asked),
                      "repeats": repeats / len(retried) if retried else 0.0,
                      "episode_success": sum(r.success for r in results) / count,
                      "n": count, "questions": len(asked), "V": v}
    return out


def measure_at(model: Any, processor: Any, task: Any, splits: list[str], phase: RevisionPhase,
               seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """`measure_revision` at each of the phase's `eval_temperatures` ("greedy", "t0.2", ...)."""
    return {("greedy" if t == 0 else f"t{t:g}"): measure_revision(
        model, processor, task, splits, n=phase.eval_n, temperature=t, seed=seed)
        for t in phase.eval_temperatures} if phase.eval_n else {}
