"""Which models the shared-prefix engine serves exactly, and the positions it feeds them.

The engine is used only for families whose exactness the suite checks (tests/test_families.py:
greedy = `model.generate` token for token, sampled = `generate` with the same draws, per-step
logits = a full forward pass), by `config.model_type`:

- text decoders: Qwen2, Qwen3, Llama, Mistral, Gemma 1/2/3, Phi, Phi-3 (1-D rotary positions;
  sliding windows, soft-capping, partial rotary and logit scaling included);
- VLMs whose image enters only through the prompt: LLaVA and Idefics3 around one of those
  decoders, and Qwen2-VL / Qwen2.5-VL (3-D multimodal rotary positions: the prompt's come from
  the model's own `get_rope_index`, decode positions continue its text positions).

Everything else samples with `model.generate` (same draws, per-key streams, no shared prefix),
with a one-line notice saying why -- e.g. Mllama (Llama-3.2-Vision), whose cross-attention
layers attend to the image at every decode step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

ENGINE_DECODERS = frozenset({
    "qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text", "phi", "phi3",
    "qwen2_vl_text", "qwen2_5_vl_text",
})
# VLM wrappers whose decode steps are plain decoder steps (the image lives in the prompt KV).
ENGINE_VLMS = frozenset({"llava", "idefics3", "qwen2_vl", "qwen2_5_vl"})
MROPE_VLMS = frozenset({"qwen2_vl", "qwen2_5_vl"})
# Families the engine declines, and why (the notice prints the reason).
DECLINED = {
    "mllama": "its cross-attention layers attend to the image at every decode step",
    "gemma3": "its image tokens attend bidirectionally in the prompt (token_type_ids)",
}


@dataclass(frozen=True)
class Support:
    """Whether the engine serves a model, and why (not)."""

    engine: bool
    reason: str


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def text_config(model: torch.nn.Module) -> Any:
    """The decoder's config (the text config of a VLM)."""
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def engine_support(model: torch.nn.Module) -> Support:
    """Whether the shared-prefix engine can drive `model` exactly (else: `generate`)."""
    config = model.config
    name = type(base_model(model)).__name__
    outer = getattr(config, "model_type", None)
    inner = getattr(text_config(model), "model_type", None)
    if outer in DECLINED:
        return Support(False, f"{name}: {DECLINED[outer]}")
    if outer != inner and outer not in ENGINE_VLMS:
        return Support(False, f"{name} (model_type {outer!r}) is not a VLM the engine is "
                              "verified on")
    if inner not in ENGINE_DECODERS:
        return Support(False, f"{name} (decoder model_type {inner!r}) is not a decoder the "
                              "engine is verified on")
    return Support(True, f"{name}: verified exact against generate")


def uses_mrope(model: torch.nn.Module) -> bool:
    """Whether the model takes Qwen2-VL's 3-D multimodal rotary positions."""
    return getattr(model.config, "model_type", None) in MROPE_VLMS


def prefill_positions(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, extra: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ids of left-padded prompts and the position of each one's first new token.

    1-D rotary: positions count real tokens only (as `generate` does), so the next token of a
    prompt with n real tokens sits at n. Qwen2-VL family: the model's own 3-D positions of the
    prompt (`get_rope_index`); the next token sits at n + the prompt's rope delta, in all three
    components, as `generate` continues it.
    """
    real = mask.sum(-1)
    if uses_mrope(model) and "mm_token_type_ids" in extra:
        rope_index = base_model(model).model.get_rope_index
        positions, deltas = rope_index(
            ids, mm_token_type_ids=extra["mm_token_type_ids"],
            image_grid_thw=extra.get("image_grid_thw"), attention_mask=mask,
        )
        return positions, real + deltas.reshape(-1).to(real.device)
    return (mask.cumsum(-1) - 1).clamp(min=0), real


def decode_positions(model: torch.nn.Module, next_positions: torch.Tensor) -> torch.Tensor:
    """Position ids of one decode step (``[rows, 1]``, or ``[3, rows, 1]`` for 3-D rotary)."""
    positions = next_positions.unsqueeze(-1)
    if uses_mrope(model):
        return positions.unsqueeze(0).expand(3, -1, -1)
    return positions
