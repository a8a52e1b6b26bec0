"""Your own data as a gengap task (`--task dataset`)."""

from gengap.tasks.dataset.config import DatasetConfig
from gengap.tasks.dataset.task import DatasetTask

__all__ = ["DatasetConfig", "DatasetTask"]
