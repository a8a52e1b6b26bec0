"""Fuzzing: every task's verifier judges any string in bounded time without raising.

Property-based (hypothesis): arbitrary text, text built from the characters answers are made
of, and mutations of the right answer. A task that needs options to be built gets them from
`OPTIONS`; every built-in task is covered (a new task without an entry fails here).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gengap.tasks import Verdict, build_task, known_tasks

# Options for tasks that cannot be built bare (e.g. a dataset needs its path).
OPTIONS: dict[str, dict[str, Any]] = {
    "dataset": {"path": str(Path(__file__).parent / "fixtures" / "dataset_tiny.jsonl")},
}
SKIP: dict[str, str] = {}
ALPHABET = "0123456789+-*/()=|,.[]{}\"': abcxyzAJQK\n\t" + "٤４\u200b\u0000"
FUZZ = settings(max_examples=150, deadline=timedelta(milliseconds=250),
                suppress_health_check=[HealthCheck.too_slow])


def _tasks() -> list[Any]:
    out = []
    for name in known_tasks():
        if name in SKIP:
            continue
        try:
            task = build_task(name, OPTIONS.get(name, {}), tiny=True)
        except Exception as exc:  # an optional extra that is not installed
            if "cannot import" in str(exc):
                continue
            raise
        out.append(task)
        if "modality" in getattr(task.config, "__dataclass_fields__", {}):
            out.append(build_task(name, {**OPTIONS.get(name, {}), "modality": "image"},
                                  tiny=True))
    return out


TASKS = _tasks()
IDS = [f"{t.spec}-{t.modality}" for t in TASKS]


def _samples(task: Any) -> list[Any]:
    split = task.split_for("test")
    return [task.sample(split, i, 0) for i in range(3)]


def _check(task: Any, sample: Any, text: str) -> None:
    verdict = task.verify(sample, text)
    assert isinstance(verdict, Verdict)
    assert isinstance(verdict.correct, bool) and isinstance(verdict.reward, float | int)
    assert all(isinstance(v, float | int) for v in verdict.metrics.values())


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_verifier_survives_any_text(task: Any) -> None:
    samples = _samples(task)

    @FUZZ
    @given(text=st.text(max_size=2000), which=st.integers(0, 2))
    def run(text: str, which: int) -> None:
        _check(task, samples[which], text)

    run()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_verifier_survives_answer_shaped_text(task: Any) -> None:
    samples = _samples(task)

    @FUZZ
    @given(text=st.text(alphabet=ALPHABET, max_size=600), which=st.integers(0, 2))
    def run(text: str, which: int) -> None:
        _check(task, samples[which], text)

    run()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_verifier_survives_mutated_answers(task: Any) -> None:
    samples = _samples(task)
    targets = [task.target(s) for s in samples]
    for sample, target in zip(samples, targets, strict=True):
        assert task.verify(sample, target).correct, "the SFT target must be judged correct"

    @FUZZ
    @given(which=st.integers(0, 2), cut=st.integers(0, 400), insert=st.text(max_size=8),
           repeat=st.integers(1, 50))
    def run(which: int, cut: int, insert: str, repeat: int) -> None:
        target = targets[which]
        position = cut % (len(target) + 1)
        _check(task, samples[which], target[:position] + insert * repeat + target[position:])

    run()


def test_adversarial_repetition_is_bounded() -> None:
    """Inputs built to make regexes backtrack: still judged (the deadline bounds the time)."""
    for task in TASKS:
        sample = _samples(task)[0]
        for text in ('"cards": [' * 3000, '"formula": "' * 3000, "(" * 20000, "[1," * 5000,
                     "{" + '"a": ' * 4000, "9" * 50000):
            _check(task, sample, text)
