"""The task contract: the one seam between tasks and everything downstream.

Rollout, difficulty, curation, training rewards, evaluation, the study and the report talk to a
task only through what this module defines, so a new task is one package plus its registration
(`gengap.tasks.registry`), or a class of the user's own given as ``module:Class``.

A task is built from its **config dataclass** (`Task.Config`, documented fields, `validate()`),
and then knows:

- its modality and its **splits by role** (`Split`): ``warmup`` (the tiny model's cold start),
  ``train``, ``validation``, ``test`` (in distribution) and ``ood`` tests, each OOD split naming
  its axis (rule, visual, unseen classes, ...); a split is finite (``size``) or generated;
- sample ``i`` of a split (`Task.sample`), deterministic for a seed; opaque string ids;
- the chat messages and any number of images of a sample;
- how to judge a completion (`Verdict`: shaped reward, binary `correct`, feedback for the next
  turn, numeric `metrics` that results and reports aggregate without knowing the task);
- the SFT target (`Task.target`);
- an **episode** for multi-step work (`Episode`: reset -> observation; step(completion) ->
  verdict, next observation, done). A retry after feedback (`RetryEpisode`, the default) and a
  move to the next state (navigation) are the same interface.

`TaskBase` implements the parts most tasks share; a task subclasses it and fills in
`Config`, `splits`, `sample`, `messages`, `verify` and `target`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from PIL import Image

from gengap.errors import InputError

Message = dict[str, Any]
"""A chat message: ``{"role": ..., "content": str | list[content parts]}`` (HF chat format).
An image is a ``{"type": "image"}`` part; a prompt's images fill its parts in order."""

ROLES = ("warmup", "train", "validation", "test", "ood")
"""What a split is for. ``test`` is the in-distribution test; ``ood`` splits name an axis."""

MODALITIES = ("text", "image")


@dataclass(frozen=True)
class Split:
    """One split of a configured task.

    name:  what commands call it (``--split test-ood-rule``).
    role:  one of `ROLES`; stages pick splits by role, never by name.
    size:  number of samples of a finite split; None for a generated (unbounded) one.
    axis:  for ``ood`` splits, the axis of the shift ("rule", "visual", "unseen-classes", ...).
    """

    name: str
    role: str
    size: int | None = None
    axis: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"split {self.name!r}: role must be one of {ROLES}, got {self.role!r}")

    @property
    def finite(self) -> bool:
        return self.size is not None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Sample:
    """One task instance.

    id:     opaque string, unique within its split (keys random streams and resumable runs).
    index:  position in its split (0-based); sample(split, index, seed) rebuilds it.
    fields: task-specific, JSON-serialisable (a sample survives a round trip through a row).
    answer: the ground truth in the task's own terms (a formula, a label, a box, ...).
    """

    id: str
    task: str
    split: str
    index: int
    fields: Mapping[str, Any]
    answer: str


@dataclass(frozen=True)
class Verdict:
    """How a task judges one completion.

    reward:   the study's shaped reward (what RL optimises with the default reward mode).
    correct:  the binary outcome; pass rates, difficulty buckets and success rates use it.
    feedback: the verifier's message (a retry episode shows it in the next user turn).
    metrics:  numeric measurements (IoU, recognition 0/1, ...). Results aggregate each one as
              its mean over first attempts (``<name>``) and over all attempts.
    info:     anything else worth keeping per attempt (parsed answer, predicted box, ...).
    """

    reward: float
    correct: bool
    feedback: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form written to samples.jsonl."""
        out: dict[str, Any] = {"reward": self.reward, "correct": self.correct,
                               "feedback": self.feedback}
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        if self.info:
            out["info"] = dict(self.info)
        return out


@dataclass(frozen=True)
class Observation:
    """What the model sees next: the whole conversation and its images, in placeholder order."""

    messages: list[Message]
    images: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class Step:
    """The result of one episode step: the verdict, what comes next, and whether it ended."""

    verdict: Verdict
    observation: Observation | None
    done: bool


@runtime_checkable
class Episode(Protocol):
    """Multi-step interaction with one sample (gym-like).

    `reset()` returns the first observation; `step(completion)` judges the completion and
    returns the next observation (None when done). `oracle()` is a correct completion for the
    current observation (the SFT target there: a retry asks the same question, a route's next
    point a new one). `success` is the episode's binary outcome, `metrics()` its episode-level
    numbers (e.g. per-step accuracy), aggregated as means.
    """

    def reset(self) -> Observation: ...

    def step(self, completion: str) -> Step: ...

    def oracle(self) -> str: ...

    @property
    def success(self) -> bool: ...

    def metrics(self) -> dict[str, float]: ...


@runtime_checkable
class Task(Protocol):
    """What every task provides. `TaskBase` implements the shared parts."""

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]
    config: Any

    @property
    def modality(self) -> str: ...

    @property
    def splits(self) -> dict[str, Split]: ...

    @property
    def verify_iters(self) -> int: ...

    @property
    def max_new_tokens(self) -> int: ...

    def sample(self, split: str, index: int, seed: int) -> Sample: ...

    def messages(self, sample: Sample) -> list[Message]: ...

    def images(self, sample: Sample) -> list[Image.Image]: ...

    def verify(self, sample: Sample, completion: str) -> Verdict: ...

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str: ...

    def episode(self, sample: Sample, verify_iters: int | None = None) -> Episode: ...

    def categories(self, sample: Sample) -> dict[str, Any]: ...

    def row(self, sample: Sample) -> dict[str, Any]: ...

    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample: ...

    def identity(self) -> dict[str, Any]: ...


@dataclass
class NoOptions:
    """A task without options."""


class RetryEpisode:
    """The single-question episode: up to `verify_iters` attempts, feedback in between.

    After a failed attempt the conversation grows by the assistant turn and a user turn
    ``task.failure_turn(verdict)``; the images stay where the first turn put them. The episode
    ends at the first correct attempt. ("SFT Memorizes, RL Generalizes": verification
    iterations.)
    """

    def __init__(self, task: TaskBase, sample: Sample, verify_iters: int):
        if verify_iters < 1:
            raise InputError(f"verify_iters must be >= 1, got {verify_iters}")
        self.task, self.sample, self.verify_iters = task, sample, verify_iters
        self.verdicts: list[Verdict] = []
        self._messages: list[Message] = []
        self._images: tuple[Image.Image, ...] = ()

    def reset(self) -> Observation:
        self.verdicts = []
        self._messages = list(self.task.messages(self.sample))
        self._images = tuple(self.task.images(self.sample))
        return Observation(list(self._messages), self._images)

    def step(self, completion: str) -> Step:
        verdict = self.task.verify(self.sample, completion)
        self.verdicts.append(verdict)
        if verdict.correct or len(self.verdicts) >= self.verify_iters:
            return Step(verdict, None, True)
        self._messages += [{"role": "assistant", "content": completion},
                           {"role": "user", "content": self.task.failure_turn(verdict)}]
        return Step(verdict, Observation(list(self._messages), self._images), False)

    def oracle(self) -> str:
        """Every attempt answers the same question: the task's target for the sample."""
        return self.task.target(self.sample)

    @property
    def success(self) -> bool:
        return any(v.correct for v in self.verdicts)

    def metrics(self) -> dict[str, float]:
        return {}


class TaskBase:
    """Shared defaults for tasks: configuration, split lookup, rows, retry episodes.

    A subclass sets the class attributes below and implements `splits`, `sample`, `messages`,
    `verify` and `target` (and `images` for image tasks).
    """

    name: ClassVar[str] = "task"
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    # Options the embedded tiny model needs unless the user sets them (e.g. compact prompts).
    tiny_options: ClassVar[dict[str, Any]] = {}
    # Verdict metrics the task reports: name -> what it means (aggregated as means).
    metric_docs: ClassVar[dict[str, str]] = {}
    # Category keys whose values eval breaks success down by (e.g. seen vs unseen classes).
    report_by: ClassVar[tuple[str, ...]] = ()
    # Target variants `target` accepts ("answer" = the SFT target).
    target_variants: ClassVar[tuple[str, ...]] = ("answer",)
    # What the studies published for this task, by claim id (the report quotes them).
    references: ClassVar[dict[str, str]] = {}
    # The tiny model's cold-start recipe for this task, per modality (`gengap.coldstart`).
    coldstart_recipe: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any = None, **options: Any):
        self.spec = self.name  # `build_task` records the name it was built from
        if config is None:
            config = self.Config(**options)
        elif options:
            raise TypeError("pass either a config or options, not both")
        validate = getattr(config, "validate", None)
        if callable(validate):
            validate()
        self.config = config

    # -- configuration ---------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        """The config as a plain dict (enough to rebuild an identical task)."""
        return dataclasses.asdict(self.config)

    @property
    def modality(self) -> str:
        return getattr(self.config, "modality", "text")

    @property
    def verify_iters(self) -> int:
        """Attempts per episode the study allows (1 = single-turn)."""
        return 1

    @property
    def max_new_tokens(self) -> int:
        """Budget for one completion."""
        return 128

    def identity(self) -> dict[str, Any]:
        """What decides this task's samples: name, options and a data fingerprint if any."""
        return {"task": self.name, "options": self.options,
                "data": self.data_fingerprint()}

    def data_fingerprint(self) -> str | None:
        """A hash of the data files a task reads (None for generated tasks)."""
        return None

    # -- splits ----------------------------------------------------------------------------
    @property
    def splits(self) -> dict[str, Split]:
        raise NotImplementedError

    def split(self, name: str) -> Split:
        """The split called `name`, or an `InputError` listing the splits there are."""
        try:
            return self.splits[name]
        except KeyError:
            raise InputError(
                f"task {self.name!r} has no split {name!r}",
                hint=f"splits: {', '.join(self.splits)}",
            ) from None

    def with_role(self, *roles: str) -> list[Split]:
        """The splits whose role is one of `roles`, in declaration order."""
        return [s for s in self.splits.values() if s.role in roles]

    def split_for(self, role: str) -> str:
        """The name of the task's first split of `role` (an `InputError` if it has none)."""
        found = self.with_role(role)
        if not found:
            raise InputError(f"task {self.name!r} has no split with role {role!r}",
                             hint=f"its splits: {', '.join(self.splits)}")
        return found[0].name

    def check_index(self, split: str, index: int) -> Split:
        """Raise an `InputError` unless `index` is a valid position in `split`."""
        spec = self.split(split)
        if index < 0:
            raise InputError(f"sample index must be >= 0, got {index}")
        if spec.size is not None and index >= spec.size:
            raise InputError(
                f"split {split!r} of task {self.name!r} has {spec.size} samples; "
                f"index {index} is past its end",
                hint=f"ask for at most {spec.size} samples",
            )
        return spec

    def count(self, split: str, n: int | None, *, default: int = 234, where: str = "--n") -> int:
        """How many samples to take from `split`: `n`, checked against a finite split's size.

        n=None means the whole split when it is finite, else `default`.
        """
        spec = self.split(split)
        if n is None:
            return spec.size if spec.size is not None else default
        if n < 1:
            raise InputError(f"{where} must be >= 1, got {n}", where=where,
                             hint="ask for at least one sample")
        if spec.size is not None and n > spec.size:
            raise InputError(
                f"split {split!r} of task {self.name!r} holds {spec.size} samples, "
                f"{n} were asked for", where=where,
                hint=f"pass {where.lstrip('-').replace('-', '_')} <= {spec.size} "
                     "(or leave it unset for the whole split)",
            )
        return n

    # -- samples, prompts, judging ---------------------------------------------------------
    def sample(self, split: str, index: int, seed: int) -> Sample:
        raise NotImplementedError

    def messages(self, sample: Sample) -> list[Message]:
        raise NotImplementedError

    def images(self, sample: Sample) -> list[Image.Image]:
        """The sample's images, in the order of the messages' image parts (none by default)."""
        return []

    def verify(self, sample: Sample, completion: str) -> Verdict:
        raise NotImplementedError

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        raise NotImplementedError

    def failure_turn(self, verdict: Verdict) -> str:
        """The user turn after a failed attempt in a retry episode."""
        return f"You failed this trial because {verdict.feedback}"

    def episode(self, sample: Sample, verify_iters: int | None = None) -> Episode:
        """A retry episode of up to `verify_iters` attempts (default: the task's)."""
        return RetryEpisode(self, sample, verify_iters or self.verify_iters)

    def categories(self, sample: Sample) -> dict[str, Any]:
        """Task-specific categories for the difficulty report and eval breakdowns."""
        return {}

    # -- rows ------------------------------------------------------------------------------
    def row(self, sample: Sample) -> dict[str, Any]:
        """The sample as a flat JSON-serialisable data row (without image bytes)."""
        return {"id": sample.id, "task": self.name, "split": sample.split,
                "index": sample.index, **sample.fields, "answer": sample.answer}

    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from `row(sample)` (raises `InputError` if a field is missing)."""
        missing = [k for k in ("id", "split", "index") if k not in row]
        if missing:
            raise InputError(f"missing field(s) {', '.join(missing)}", where=where,
                             hint="rows come from `gengap data` or `Task.row`")
        reserved = {"id", "task", "split", "index", "answer", "prompt", "images", "completion",
                    "sft_target", "reward", "correct", "feedback", "metrics"}
        fields = {k: v for k, v in row.items() if k not in reserved}
        return Sample(str(row["id"]), self.name, str(row["split"]), int(row["index"]), fields,
                      str(row.get("answer", "")))


def image_parts(n: int) -> list[dict[str, str]]:
    """`n` image content parts (the images come first in a user turn, as in both studies)."""
    return [{"type": "image"} for _ in range(n)]


def user_turn(text: str, n_images: int = 0) -> Message:
    """A user message with `n_images` image parts before the text."""
    if not n_images:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [*image_parts(n_images), {"type": "text", "text": text}]}


def message_text(messages: Sequence[Message], *, image: str = "", sep: str = "") -> str:
    """A conversation's text: every text part joined by `sep`, image parts as `image`."""
    parts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [image if p.get("type") == "image" else p.get("text") or ""
                      for p in content]
    return sep.join(parts)


def count_images(messages: Sequence[Message]) -> int:
    """Image parts in a conversation (what its image list must match)."""
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for part in m["content"] if isinstance(part, dict) and part.get("type") == "image")


def unique_samples(samples: Sequence[Sample]) -> list[Sample]:
    """`samples` without repeats (by id), in first-seen order: a small finite prompt pool
    cycles, and one rollout call should play each sample once."""
    seen: set[str] = set()
    out = []
    for sample in samples:
        if sample.id not in seen:
            seen.add(sample.id)
            out.append(sample)
    return out
