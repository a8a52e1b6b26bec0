"""Visual grounding (DC-SFT's RefCOCO task): generated scenes and real referring-expression data."""

from gengap.tasks.grounding.task import GroundingConfig, GroundingTask

__all__ = ["GroundingConfig", "GroundingTask"]
