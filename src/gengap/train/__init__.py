"""Training: TRL's SFTTrainer and GRPOTrainer from YAML recipes, with matched budgets.

`train_sft(SFTRecipe)` and `train_grpo(GRPORecipe)` run one arm each into a run directory
(see `gengap.train.common` for its files); `pick_lr` sweeps an arm's learning rate on an ID
validation split. Recipes load with `gengap.config.load_recipe`. `TRAINERS` maps an arm's
kind to its trainer.
"""

from gengap.train.common import TrainRecipe, TrainResult
from gengap.train.grpo import GRPORecipe, train_grpo
from gengap.train.sft import SFTRecipe, train_sft

TRAINERS = {"sft": train_sft, "grpo": train_grpo}

__all__ = ["TRAINERS", "GRPORecipe", "SFTRecipe", "TrainRecipe", "TrainResult", "train_grpo",
           "train_sft"]
