"""The embedded default model: a tiny random LLaVA-architecture VLM or Qwen2 decoder.

gengap builds it from a config, never downloads it:

- text tasks: `Qwen2ForCausalLM` (the decoder alone);
- image tasks: `LlavaForConditionalGeneration` = SigLIP vision tower + projector + the same
  Qwen2 decoder, with `LlavaProcessor` + `SiglipImageProcessorPil` (no torchvision needed).

Both use gengap's character-level tokenizer (`gengap.models.tokenizer`) and save / load with
the standard `save_pretrained` / `from_pretrained`, so any tool that reads HF checkpoints reads
them. Sizes are chosen for a CPU cold start of a few minutes (`gengap.coldstart`).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipVisionConfig,
)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from gengap.errors import InputError
from gengap.models.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN, build_char_tokenizer

MODALITIES = ("text", "image")

# Decoder defaults (keys of `Qwen2Config`): ~1.06M parameters with the 105-token vocabulary,
# the size whose cold start fits the CPU budget (see `gengap.coldstart`).
TEXT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,  # the paper-style prompt is ~700 characters
    "tie_word_embeddings": True,
}

# Vision tower defaults (keys of `SiglipVisionConfig`, given to `build_tiny` with a `vision_`
# prefix). The compact GeneralPoints image is a 64 px 2x2 grid of cards; 16 px patches give
# 16 image tokens (2x2 per card) are enough to read a rank glyph and 4x cheaper than 8 px.
VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": 64,
    "patch_size": 16,
    "num_channels": 3,
}


def _split_overrides(
    modality: str, overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `build_tiny` keyword overrides into decoder and vision-tower settings."""
    text, vision = dict(TEXT_DEFAULTS), dict(VISION_DEFAULTS)
    for key, value in overrides.items():
        if key.startswith("vision_"):
            if modality != "image":
                raise InputError(
                    f"{key!r} only applies to the image model", hint="use modality='image'"
                )
            vision[key.removeprefix("vision_")] = value
        else:
            text[key] = value
    # Reject typos early: a misspelt key would otherwise be stored silently on the config.
    unknown = [k for k in text if k not in Qwen2Config().to_dict()]
    unknown += [f"vision_{k}" for k in vision if k not in SiglipVisionConfig().to_dict()]
    if unknown:
        raise InputError(
            f"unknown tiny-model setting(s): {', '.join(sorted(unknown))}",
            hint="decoder keys are Qwen2Config fields; vision keys are SiglipVisionConfig "
            "fields prefixed with 'vision_'",
        )
    if vision["image_size"] % vision["patch_size"]:
        raise InputError("vision_image_size must be a multiple of vision_patch_size")
    return text, vision


def build_tokenizer_and_processor(
    modality: str, vision: dict[str, Any] | None = None, extra_characters: tuple[str, ...] = ()
) -> PreTrainedTokenizerFast | LlavaProcessor:
    """The tokenizer (text) or `LlavaProcessor` (image) that goes with a tiny model."""
    tokenizer = build_char_tokenizer(extra_characters=extra_characters)
    if modality == "text":
        return tokenizer
    vision = vision or VISION_DEFAULTS
    size = vision["image_size"]
    image_processor = SiglipImageProcessorPil(
        size={"height": size, "width": size},
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        # SigLIP has no CLS token: every patch becomes one image token.
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny(
    modality: str = "text", *, seed: int | None = None,
    extra_characters: tuple[str, ...] = (), **config_overrides: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast | LlavaProcessor]:
    """A fresh, randomly initialised tiny model and its tokenizer / processor.

    `config_overrides` are `Qwen2Config` fields for the decoder (e.g. ``hidden_size=128``) and
    `SiglipVisionConfig` fields prefixed with ``vision_`` for the vision tower
    (e.g. ``vision_image_size=64``). `seed` makes the initial weights reproducible;
    `extra_characters` extend the character vocabulary (a task's non-ASCII characters).
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}", hint=f"one of {MODALITIES}")
    text, vision = _split_overrides(modality, config_overrides)
    processor = build_tokenizer_and_processor(modality, vision, extra_characters)
    tokenizer = processor if modality == "text" else processor.tokenizer
    token_ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    text_config = Qwen2Config(**text, **token_ids)
    if seed is not None:
        torch.manual_seed(seed)
    if modality == "text":
        model: PreTrainedModel = Qwen2ForCausalLM(text_config)
    else:
        vision_config = SiglipVisionConfig(**vision)
        grid = vision["image_size"] // vision["patch_size"]
        config = LlavaConfig(
            vision_config=vision_config,
            text_config=text_config,
            image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            image_seq_length=grid * grid,
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
            projector_hidden_act="gelu",
            tie_word_embeddings=text["tie_word_embeddings"],
        )
        model = LlavaForConditionalGeneration(config)
    # Generation defaults that keep `generate` self-contained (stop at <|end|>, pad on <pad>).
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.eval()
    return model, processor


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
