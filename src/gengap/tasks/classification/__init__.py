"""Image classification (DC-SFT's ImageNet task): rendered offline set and real-data loaders."""

from gengap.tasks.classification.task import ClassificationConfig, ClassificationTask

__all__ = ["ClassificationConfig", "ClassificationTask"]
