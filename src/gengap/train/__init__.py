"""Training: TRL's SFTTrainer and GRPOTrainer from YAML recipes, with matched budgets.

`train_sft(SFTRecipe)` and `train_grpo(GRPORecipe)` run one arm each into a run directory
(see `gengap.train.common` for its files); `pick_lr` sweeps an arm's learning rate on an ID
validation split. Recipes load with `gengap.config.load_recipe`. `TRAINERS` maps an arm's
kind to its trainer.
"""

from gengap.train.common import TrainRecipe, TrainResult
from gengap.train.grpo import GRPORecipe, train_grpo
from gengap.train.ppo import PPORecipe, train_ppo
from gengap.train.sft import SFTRecipe, train_sft

TRAINERS = {"sft": train_sft, "grpo": train_grpo, "ppo": train_ppo}
RECIPES = {"sft": SFTRecipe, "grpo": GRPORecipe, "ppo": PPORecipe}

__all__ = ["RECIPES", "TRAINERS", "GRPORecipe", "PPORecipe", "SFTRecipe", "TrainRecipe",
           "TrainResult", "train_grpo", "train_ppo", "train_sft"]
