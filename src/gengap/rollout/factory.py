"""Pick a sampling backend by name."""

from __future__ import annotations

from typing import Any

from gengap.errors import InputError
from gengap.rollout.sampling import Sampler

BACKENDS = ("hf", "vllm")


def make_sampler(model: Any, processor: Any = None, backend: str = "hf", **kwargs: Any) -> Sampler:
    """A sampler for `model` (a transformers model, or for vLLM also a checkpoint directory).

    hf:   `HFSampler(model, processor, **kwargs)` (strategy, max_batch_rows, memory_fraction).
    vllm: `VLLMSampler` (needs the `vllm` package; see scripts/vllm_env.sh for CPU machines);
          an in-memory model is saved to a temporary directory first. kwargs go to `vllm.LLM`.
    """
    if backend == "hf":
        from gengap.rollout.hf import HFSampler

        if processor is None:
            raise InputError("the hf backend needs the model's tokenizer or processor")
        return HFSampler(model, processor, **kwargs)
    if backend == "vllm":
        from gengap.rollout.vllm_backend import VLLMSampler

        return VLLMSampler(model, processor, **kwargs)
    raise InputError(f"unknown sampling backend {backend!r}", hint=f"one of {BACKENDS}")
