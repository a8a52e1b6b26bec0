"""Tasks: data, prompts and verifiers behind one contract (`base.Task`)."""

from gengap.tasks.base import Episode, Observation, Sample, Split, Step, Task, TaskBase, Verdict
from gengap.tasks.registry import build_task, get_task, known_tasks

__all__ = ["Episode", "Observation", "Sample", "Split", "Step", "Task", "TaskBase", "Verdict",
           "build_task", "get_task", "known_tasks"]
