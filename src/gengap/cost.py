"""Cost bookkeeping in one place: FLOPs estimates and a wall + CPU clock.

Wall seconds on a shared machine measure the machine as much as the job: another busy process
on two cores slows PyTorch here by up to 23x. Every stage that reports a cost therefore reports
three numbers, from these helpers:

- FLOPs, estimated from parameters and tokens (load cannot change them);
- process CPU seconds (`time.process_time`: every thread of this process; what the job itself
  computed, nearly independent of other processes when torch runs one thread);
- wall seconds (what a user waits; reported, never used to compare arms).

The FLOPs conventions are the ones "SFT Memorizes, RL Generalizes" matches compute with: a
forward pass costs 2N per token, training 6N per token (4N with LoRA: no weight gradients),
generation 2N per token processed (prompt tokens the engine encodes plus generated tokens).
SFT, GRPO, the difficulty pass (and any new trainer) take their numbers from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FlopsFn = Callable[[int], dict[str, float]]
"""tokens -> {component: estimated FLOPs}."""


def forward_flops(n_params: int, tokens: int) -> float:
    """One forward pass over `tokens` tokens: 2N per token."""
    return 2.0 * n_params * tokens


def training_flops(n_params: int, tokens: int, *, lora: bool = False) -> float:
    """Forward + backward over `tokens`: 6N per token (4N with LoRA: no weight gradients)."""
    return (4.0 if lora else 6.0) * n_params * tokens


def generation_flops(n_params: int, tokens: int) -> float:
    """Sampling: 2N per token processed (prompt tokens encoded + tokens generated)."""
    return forward_flops(n_params, tokens)


def sft_flops(n_params: int, lora: bool) -> FlopsFn:
    """Tokens trained on -> SFT's FLOPs."""
    return lambda tokens: {"training": training_flops(n_params, tokens, lora=lora)}


def grpo_flops(n_params: int, *, beta: float, num_iterations: int, lora: bool) -> FlopsFn:
    """Tokens (prompt + completion, per completion) -> GRPO's FLOPs per component.

    generation 2N per token; reference model 2N when beta > 0; old-policy log-probs 2N when
    num_iterations > 1; training 6N per token per iteration (4N with LoRA).
    """

    def flops(tokens: int) -> dict[str, float]:
        out = {"generation": generation_flops(n_params, tokens)}
        if beta > 0:
            out["reference"] = forward_flops(n_params, tokens)
        if num_iterations > 1:
            out["old_logprobs"] = forward_flops(n_params, tokens)
        out["training"] = training_flops(n_params, tokens, lora=lora) * num_iterations
        return out

    return flops


def total(flops: dict[str, float] | float | None) -> float | None:
    """The total of a FLOPs entry as budgets store it ({..., "total": x}) or a plain number."""
    if isinstance(flops, dict):
        return flops.get("total", sum(v for k, v in flops.items() if k != "total"))
    return flops


@dataclass
class Clock:
    """Accumulates wall and process CPU seconds over the intervals it is entered.

        clock = Clock()
        with clock:
            work()
        clock.wall, clock.cpu
    """

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Clock:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall += time.perf_counter() - self._wall0
        self.cpu += time.process_time() - self._cpu0


def now() -> tuple[float, float]:
    """(wall, process CPU) seconds on monotonic clocks, for differences."""
    return time.perf_counter(), time.process_time()
