"""The task protocol: the one seam between tasks and everything downstream.

Rollout, difficulty estimation, curation, training rewards and evaluation talk to a task only
through `Task`, so a new task is one new package plus a line in `registry.py`.

A task instance is *configured* (modality, prompt style, ...) when it is built; its samples are
plain records whose `fields` are JSON-serialisable, so a sample survives a round trip through
JSONL/Parquet unchanged (`Task.sample_from_row`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

Message = dict[str, Any]
"""A chat message: ``{"role": ..., "content": str | list[content parts]}`` (HF chat format)."""


@dataclass(frozen=True)
class Sample:
    """One task instance: an id, its split, the task-specific fields and the oracle answer."""

    id: str
    task: str
    split: str
    fields: Mapping[str, Any]
    answer: str


@dataclass(frozen=True)
class Verdict:
    """How a task judges one completion.

    reward:   the study's shaped reward (what RL optimises with the default reward mode).
    correct:  the binary outcome; pass rates, difficulty buckets and success rates use it.
    feedback: the message a multi-turn episode shows the model after a failed attempt.
    info:     task-specific extras (e.g. ``{"recognised": False}`` for image tasks).
    """

    reward: float
    correct: bool
    feedback: str
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """What every task provides. See `gengap.tasks.generalpoints.task` for the reference one."""

    name: str
    splits: tuple[str, ...]
    # Variant axes and their allowed values, e.g. {"modality": ("text", "image"), ...}.
    variants: Mapping[str, tuple[str, ...]]
    # Verification iterations the study allows per episode (1 = single-turn).
    default_verify_iters: int
    # Budget for one completion in the current prompt style.
    max_new_tokens: int

    def sample(self, split: str, index: int, seed: int) -> Sample:
        """Sample `index` of `split`: a pure function of (split, seed, index)."""
        ...

    def messages(self, sample: Sample) -> list[Message]:
        """The chat messages of the first turn (the image, if any, as a content part)."""
        ...

    def image(self, sample: Sample) -> Image.Image | None:
        """The sample's image, or None for text-only samples."""
        ...

    def verify(self, sample: Sample, completion: str) -> Verdict:
        """Judge one completion. Must run in bounded time on any string."""
        ...

    def target(self, sample: Sample) -> str:
        """The ground-truth completion in the current prompt style (the SFT target)."""
        ...

    def failure_turn(self, verdict: Verdict) -> str:
        """The user turn that follows a failed attempt in a multi-turn episode."""
        ...

    def categories(self, sample: Sample) -> dict[str, Any]:
        """Task-specific categories for the difficulty report (may be empty)."""
        ...

    def sample_from_row(self, row: Mapping[str, Any], *, line: int | None = None) -> Sample:
        """Rebuild a sample from a data row (raises `gengap.errors.InputError` if invalid)."""
        ...

    def row(self, sample: Sample) -> dict[str, Any]:
        """The sample as a flat JSON-serialisable data row (without image bytes)."""
        ...
