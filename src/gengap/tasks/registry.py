"""Name -> task. A new task is one package under `gengap.tasks` plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gengap.errors import InputError
from gengap.tasks.base import Task
from gengap.tasks.generalpoints.task import GeneralPointsTask

TASKS: dict[str, Callable[..., Task]] = {
    "generalpoints": GeneralPointsTask,
}


def get_task(name: str, **options: Any) -> Task:
    """Build task `name` with its options (e.g. modality="image", prompt_style="compact")."""
    try:
        factory = TASKS[name]
    except KeyError:
        known = ", ".join(TASKS)
        raise InputError(f"unknown task {name!r}", hint=f"known tasks: {known}") from None
    try:
        return factory(**options)
    except TypeError as exc:  # an option the task does not take
        raise InputError(f"bad option for task {name!r}: {exc}") from None
