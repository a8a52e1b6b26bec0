"""GeneralPoints, the 24 card game of "SFT Memorizes, RL Generalizes"."""

from gengap.tasks.generalpoints.task import GeneralPointsTask

__all__ = ["GeneralPointsTask"]
