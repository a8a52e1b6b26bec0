"""Tasks: data, prompts and verifiers behind one protocol (`base.Task`)."""

from gengap.tasks.base import Sample, Task, Verdict
from gengap.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "Sample", "Task", "Verdict", "get_task"]
