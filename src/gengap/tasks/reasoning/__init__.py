"""reasoning-gym's procedural datasets as a gengap task (optional extra `gengap[reasoning]`)."""

from gengap.tasks.reasoning.task import ReasoningGymTask

__all__ = ["ReasoningGymTask"]
