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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


# ------------------------------------------------------------------------------------------
# The study's compute: "SFT Memorizes, RL Generalizes" matches arms in these FLOPs

COMPUTE_FILE = "gengap_compute.json"
"""In every checkpoint gengap writes: the tokens that made it (cumulative from the random or
pretrained model) and its study FLOPs, so a run that starts from it knows its D_init."""


def study_flops(n_params: int, *, trained_tokens: int, buffer_tokens: int = 0,
                init_tokens: int = 0, init_buffer_tokens: int = 0) -> dict[str, Any]:
    """The study's formulas: SFT 6N(D_init + D); RL 6N(D_init + D) + 2N·D_buffer.

    N parameters; D tokens trained on (this run); D_init tokens the start checkpoint was
    trained on (its SFT warm-up); D_buffer tokens generated into the rollout buffer (zero for
    SFT). A start that was itself an RL run brings its own buffer tokens (`init_buffer_tokens`),
    so the record stays cumulative along a chain of runs.
    """
    buffer = buffer_tokens + init_buffer_tokens
    flops = 6.0 * n_params * (init_tokens + trained_tokens) + 2.0 * n_params * buffer
    return {
        "formula": "6N(D_init + D) + 2N*D_buffer",
        "N": n_params, "D_init": init_tokens, "D": trained_tokens,
        "D_buffer": buffer, "flops": flops, "gflops": round(flops / 1e9, 6),
    }


def gflops_past_start(study: dict[str, Any]) -> float:
    """What a run spent itself in the study's GFLOPs (6N*D + 2N*D_buffer of this run): its
    `study_flops` total without the start checkpoint's share, which is every arm's of a start
    and most of the total."""
    buffer = study.get("D_buffer_run", study["D_buffer"])
    return (6.0 * study["N"] * study["D"] + 2.0 * study["N"] * buffer) / 1e9


def read_compute(checkpoint: str | Path) -> dict[str, Any] | None:
    """The compute record of a checkpoint gengap wrote (None for any other model)."""
    path = Path(checkpoint) / COMPUTE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def start_tokens(checkpoint: str | Path) -> dict[str, Any]:
    """D_init of a run starting at `checkpoint`: its cumulative trained and buffer tokens.

    `known` is False for a checkpoint without a compute record (a hub model, or a cold start
    cached before it recorded one): D_init is then 0, which leaves arms of the same start
    comparable (they share it) but understates the absolute FLOPs.
    """
    record = read_compute(checkpoint)
    if not record:
        return {"tokens_trained": 0, "tokens_buffer": 0, "known": False}
    return {"tokens_trained": int(record.get("tokens_trained", 0)),
            "tokens_buffer": int(record.get("tokens_buffer", 0)), "known": True}


def write_compute(checkpoint: str | Path, study: dict[str, Any], **extra: Any) -> None:
    """Write a checkpoint's compute record from its `study_flops` entry."""
    from gengap.io import write_json

    write_json(Path(checkpoint) / COMPUTE_FILE, {
        "tokens_trained": study["D_init"] + study["D"], "tokens_buffer": study["D_buffer"],
        "study_flops": study, **extra})
