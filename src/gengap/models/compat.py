"""What a model family needs from the training stack (TRL 1.16) beyond its defaults.

- Mllama (Llama-3.2-Vision) SFT: TRL's vision-language collator concatenates the processed
  prompt with the tokenized completion and flushes padding left, but leaves Mllama's
  `cross_attention_mask` (which tokens see which image tiles) at the prompt's length and
  layout; the model then fails on the shape. It also tokenizes the completion text with the
  processor, and `MllamaProcessor` puts a BOS token in front of every text, so the completion
  would start with a stray <|begin_of_text|>. `adapt_sft_collator` tokenizes completions with
  the plain tokenizer and rebuilds the mask from the final token ids with the processor's own
  functions (every token from an image token on sees that image's tiles, as the processor
  does for a whole prompt): the batch equals the processor's output for prompt + completion.
- Mllama GRPO: TRL's GRPOTrainer hands the processor's `cross_attention_mask` and aspect-ratio
  tensors to its log-prob pass, which does not accept them: `check_trainable` refuses the run
  up front with that reason instead of a traceback mid-training.
"""

from __future__ import annotations

from typing import Any

import torch

from gengap.errors import InputError

UNSUPPORTED = {
    ("mllama", "grpo"): (
        "TRL's GRPOTrainer cannot train Mllama (Llama-3.2-Vision): its log-prob pass does not "
        "take the model's cross_attention_mask / aspect_ratio inputs"
    ),
}


def _model_type(model: Any) -> str | None:
    get = getattr(model, "get_base_model", None)
    base = get() if callable(get) else model
    return getattr(base.config, "model_type", None)


def check_trainable(model: Any, kind: str) -> None:
    """Raise `InputError` when this family cannot be trained with `kind` ("sft" / "grpo")."""
    reason = UNSUPPORTED.get((_model_type(model), kind))
    if reason:
        raise InputError(reason, hint="train this family with SFT, or sample it (eval, "
                                      "difficulty), which works")


class _TextWithoutImages:
    """The processor for calls with images; its plain tokenizer for text-only calls (TRL's
    completions), so that no BOS is added in front of a completion."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, *args: Any, images: Any = None, **kwargs: Any) -> Any:
        if images is None:
            return self.processor.tokenizer(*args, **kwargs)
        return self.processor(*args, images=images, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)


class MllamaCrossAttentionMask:
    """Wrap a collator: recompute `cross_attention_mask` for the batch's final token ids."""

    def __init__(self, collator: Any, processor: Any):
        self.collator, self.processor = collator, processor
        if hasattr(collator, "processor"):
            collator.processor = _TextWithoutImages(processor)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        batch = self.collator(examples)
        if "cross_attention_mask" not in batch or "aspect_ratio_mask" not in batch:
            return batch
        ids = batch["input_ids"]
        image_id = self.processor.image_token_id
        sparse = [get_cross_attention_token_mask(row.tolist(), image_id) for row in ids]
        # Tiles per image: the aspect-ratio mask marks each image's real tiles.
        tiles = batch["aspect_ratio_mask"].sum(-1).tolist()
        dense = convert_sparse_cross_attention_mask_to_dense(
            sparse, num_tiles=tiles, max_num_tiles=batch["aspect_ratio_mask"].shape[-1],
            length=ids.shape[1])
        batch["cross_attention_mask"] = torch.as_tensor(
            dense, dtype=batch["cross_attention_mask"].dtype)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collator, name)


def adapt_sft_collator(collator: Any, model: Any, processor: Any) -> Any:
    """The SFT collator `model`'s family needs (the given one for every other family)."""
    if _model_type(model) == "mllama":
        return MllamaCrossAttentionMask(collator, processor)
    return collator
