"""Pick a sampling backend by name; load a model spec straight into one."""

from __future__ import annotations

from typing import Any

from gengap.errors import InputError
from gengap.rollout.sampling import Sampler

BACKENDS = ("hf", "vllm")
# vLLM engine arguments gengap's commands pass through (others: `make_sampler(**kwargs)`).
VLLM_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len")


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


def backend_options(backend: str, *, tensor_parallel_size: int | None = None,
                    gpu_memory_utilization: float | None = None) -> dict[str, Any]:
    """The backend keyword arguments a command's options ask for (checked; unset = default)."""
    options: dict[str, Any] = {}
    if tensor_parallel_size is not None:
        if tensor_parallel_size < 1:
            raise InputError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        options["tensor_parallel_size"] = tensor_parallel_size
    if gpu_memory_utilization is not None:
        if not 0 < gpu_memory_utilization <= 1:
            raise InputError("gpu_memory_utilization must be in (0, 1], got "
                             f"{gpu_memory_utilization}")
        options["gpu_memory_utilization"] = gpu_memory_utilization
    if options and backend != "vllm":
        raise InputError(f"{', '.join(options)} only apply to the vllm backend",
                         hint="add --backend vllm, or drop the option")
    return options


def load_sampler(
    spec: str,
    task: Any,
    *,
    backend: str = "hf",
    device: str = "auto",
    dtype: str | None = "auto",
    **options: Any,
) -> tuple[Sampler, dict[str, Any]]:
    """Load a model spec ("tiny", a checkpoint or adapter directory) into a sampler.

    Returns the sampler and what to record about the model (`gengap.models.describe` plus the
    backend, the HF strategy and the engine's reason). vLLM reads a checkpoint directory
    itself (its own device placement, `tensor_parallel_size`, `gpu_memory_utilization`); an
    adapter is merged with transformers first and handed over in memory.
    """
    from gengap.models.loading import (
        describe,
        is_adapter_dir,
        load_model,
        load_processor,
        resolve_spec,
    )

    if backend not in BACKENDS:
        raise InputError(f"unknown sampling backend {backend!r}", hint=f"one of {BACKENDS}")
    if backend == "vllm":
        path = resolve_spec(spec, task=task)
        info: dict[str, Any] = {"spec": spec, "path": str(path), "backend": "vllm",
                                "dtype": dtype or "auto", **options}
        if dtype not in (None, "auto"):
            options = {**options, "dtype": dtype}
        if is_adapter_dir(path):
            loaded = load_model(spec, task=task, device="cpu", dtype=dtype)
            info.update(describe(loaded))
            sampler = make_sampler(loaded.model, loaded.processor, backend="vllm", **options)
        else:
            processor, is_vlm = load_processor(path)
            info["is_vlm"] = is_vlm
            sampler = make_sampler(str(path), processor, backend="vllm", **options)
        return sampler, info
    loaded = load_model(spec, task=task, device=device, dtype=dtype)
    sampler = make_sampler(loaded.model, loaded.processor, backend="hf", **options)
    info = {**describe(loaded), "backend": "hf", "strategy": sampler.strategy,
            "engine": sampler.support.reason}
    return sampler, info
