"""Qwen2-VL / Qwen2.5-VL without torchvision, and a tiny random Qwen2.5-VL for tests.

The DC-SFT study's model family is Qwen2.5-VL. Its modelling code needs only torch, but its
processor insists on a video processor, and transformers' video processors need torchvision,
which does not import beside the CPU torch build these machines use. gengap therefore
provides `ImageOnlyQwen2_5_VLProcessor` (and the Qwen2-VL twin): the stock processor minus the
video processor. It tokenizes, expands image tokens and builds `pixel_values` /
`image_grid_thw` exactly like the stock one for images (the video path raises). `load_model`
uses it for Qwen2-VL-family checkpoints whenever torchvision does not import; with a working
torchvision the stock `AutoProcessor` is used.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoImageProcessor,
    PreTrainedModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from gengap.models.tokenizer import build_char_tokenizer, chat_template, load_tokenizer

QWEN_VL_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = (
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
)


@cache
def torchvision_works() -> bool:
    """Whether torchvision imports (it is installed but broken beside some CPU torch builds)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or a RuntimeError from mismatched compiled ops
        return False
    return True


class _ImageOnlyMixin:
    """The stock Qwen-VL processor without the video processor (no torchvision needed)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                 chat_template: str | None = None, **kwargs: Any):
        # Mirrors the stock __init__ minus the video processor argument, whose class check
        # needs torchvision.
        self.image_token = getattr(tokenizer, "image_token", None) or IMAGE_PAD
        self.video_token = getattr(tokenizer, "video_token", None) or VIDEO_PAD
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.video_processor = None

    def to_dict(self) -> dict[str, Any]:
        # Saved under the stock class name so that tools with torchvision load the stock
        # processor (it then builds its default video processor).
        out = super().to_dict()  # type: ignore[misc]
        out["processor_class"] = type(self).__mro__[2].__name__
        return out


class ImageOnlyQwen2_5_VLProcessor(_ImageOnlyMixin, Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` for images and text only."""


class ImageOnlyQwen2VLProcessor(_ImageOnlyMixin, Qwen2VLProcessor):
    """`Qwen2VLProcessor` for images and text only."""


def load_image_only_processor(path: str | Path, model_type: str) -> ProcessorMixin:
    """Build the image-only processor of a Qwen2-VL-family checkpoint from its files."""
    tokenizer = load_tokenizer(path)
    try:
        image_processor = AutoImageProcessor.from_pretrained(path, backend="pil")
    except (TypeError, ValueError):  # older signature without `backend`
        image_processor = AutoImageProcessor.from_pretrained(path)
    cls = ImageOnlyQwen2_5_VLProcessor if model_type == "qwen2_5_vl" else ImageOnlyQwen2VLProcessor
    return cls(image_processor=image_processor, tokenizer=tokenizer,
               chat_template=tokenizer.chat_template)


def build_tiny_qwen2_5_vl(
    *, seed: int | None = 0, image_pixels: int = 56 * 56, **text_overrides: Any
) -> tuple[PreTrainedModel, ImageOnlyQwen2_5_VLProcessor]:
    """A tiny random Qwen2.5-VL (~0.2M parameters) with gengap's character tokenizer.

    For tests of the real model family's code paths (eval, SFT, GRPO) on CPU; it learns
    nothing useful. Images are resized to `image_pixels` pixels (56x56 by default: 16 patches
    of 14 px, merged 2x2 into 4 image tokens). `text_overrides` are Qwen2.5-VL text-config
    fields.
    """
    template = chat_template(VISION_START + IMAGE_PAD + VISION_END)
    tokenizer = build_char_tokenizer(
        extra_special_tokens=(VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD), template=template
    )
    tokenizer.image_token = IMAGE_PAD
    tokenizer.video_token = VIDEO_PAD
    image_processor = Qwen2VLImageProcessorPil(min_pixels=image_pixels, max_pixels=image_pixels,
                                               patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = ImageOnlyQwen2_5_VLProcessor(image_processor=image_processor,
                                             tokenizer=tokenizer, chat_template=template)
    head_dim_half = 8  # hidden 64 / 4 heads / 2: multimodal RoPE splits it over (t, h, w)
    text = {
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                            "mrope_section": [2, 3, head_dim_half - 5]},
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id, **text_overrides,
    }
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
              "out_hidden_size": text["hidden_size"], "window_size": 56,
              "fullatt_block_indexes": [1]}
    token_ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", IMAGE_PAD), ("video_token_id", VIDEO_PAD),
        ("vision_start_token_id", VISION_START), ("vision_end_token_id", VISION_END))}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids)
    if seed is not None:
        torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, processor
