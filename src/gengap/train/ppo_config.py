"""`gengap train ppo` keys: PPO as "SFT Memorizes, RL Generalizes" runs it.

Defaults are the study's (reference/rl.md): GAE gamma 0.9 and lambda 0.95, clip 0.1, 4 PPO
epochs per update, value-loss coefficient 0.5, entropy coefficient 0.01, grad-norm clip 0.01,
generation temperature 0.2, 256 environment steps per update, learning rate 1e-6 (their 11B
model; a tiny model needs a larger one). One environment step is one attempt of an episode
(`Task.episode`: a retry after the verifier's feedback, or a move to the next state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gengap.errors import InputError
from gengap.train.common import TrainRecipe


@dataclass(kw_only=True)
class PPORecipe(TrainRecipe):
    """PPO keys (plus the shared ones of `TrainRecipe`; `steps` = PPO updates)."""

    split: str | None = None  # None: the task's train split
    n_prompts: int | None = None  # episodes start from samples 0 .. n-1 (cycled)
    data_seed: int = 0
    reward: Literal["shaped", "binary"] = "shaped"  # per-step reward: the study's table or 1/0
    verify_iters: int | None = None  # attempts per episode (None: the task's; GP 5, nav 2)
    rollout_steps: int = 256  # environment steps collected per update (whole episodes)
    ppo_epochs: int = 4
    mini_batch_size: int = 32  # transitions per gradient step
    gamma: float = 0.9
    lam: float = 0.95
    clip_range: float = 0.1
    clip_value: bool = True  # PPO2's clipped value loss (same range)
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.01
    learning_rate: float = 1e-6
    value_learning_rate: float | None = None  # the value head's (None: learning_rate)
    whiten_advantages: bool = True
    temperature: float = 0.2
    top_k: int = 0
    max_completion_length: int | None = None  # None: the task's budget
    filter_by_difficulty: str | None = None  # as GRPO's: drop pass rate 0 / 1 prompts

    def validate(self) -> None:
        """Raise `InputError` for values no run can use."""
        super().validate()
        for key in ("rollout_steps", "ppo_epochs", "mini_batch_size"):
            if getattr(self, key) < 1:
                raise InputError(f"{key!r} must be >= 1, got {getattr(self, key)}")
        if self.verify_iters is not None and self.verify_iters < 1:
            raise InputError(f"'verify_iters' must be >= 1, got {self.verify_iters}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise InputError(f"gamma and lam must lie in [0, 1]: {self.gamma}, {self.lam}")
        if not 0 < self.clip_range < 1:
            raise InputError(f"'clip_range' must lie in (0, 1), got {self.clip_range}")
        if self.temperature <= 0:
            raise InputError("'temperature' must be > 0 (PPO samples its actions)")
        if self.filter_by_difficulty and not Path(self.filter_by_difficulty).is_dir():
            raise InputError(f"no difficulty run at {self.filter_by_difficulty}",
                             where="filter_by_difficulty", hint="run `gengap difficulty` first")
