"""Tiny random models of every family the studies use, each with its own chat format.

"SFT Memorizes, RL Generalizes" trains Llama-3.2-Vision (Mllama); DC-SFT trains Qwen2.5-VL;
the field around them uses Qwen2/Qwen3, Llama, Mistral, Gemma, Phi, LLaVA and Idefics3 /
SmolVLM. `build_family(name)` builds a randomly initialised, CPU-sized model of one family from
its transformers config, with a tokenizer (gengap's character vocabulary plus the family's own
special tokens), the family's chat format (turn markers, BOS, end-of-turn token as EOS) and,
for VLMs, the family's own processor and image processor (PIL backends: no torchvision, no
downloads). Saved with `save_pretrained`, each directory loads like a real checkpoint of its
family, so the suite runs every command on every family (tests/test_families.py).

The chat templates are written here in each family's published turn format, shortened: the
real templates' tool-calling and date branches are left out, the formats of the turns are not.
What a tiny random model generates is noise; what matters is that every code path of the
family runs (its attention variants, positions, processor, template and stop tokens).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from gengap.errors import InputError
from gengap.models.tokenizer import build_char_tokenizer

# One set of decoder sizes for every family (~60k parameters without the vocabulary): small
# enough for a CPU test, grouped-query (4 query heads, 2 KV heads) like the real models, and a
# wide initialisation so greedy completions vary from prompt to prompt.
TEXT_SIZE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
    "initializer_range": 0.3,
}
# Sliding-window families get a window far below the prompt lengths, so the window matters.
WINDOW = 24
# Gemma scales its input embeddings by sqrt(hidden_size); with the output head tied to them a
# random model only repeats its last input token. The tiny Gemmas untie them (the real ones
# tie), so that their greedy completions differ between prompts.
_GEMMA_TINY = {"tie_word_embeddings": False}

# Jinja pieces: the content of a message is a string or a list of {"type": ...} parts.
_PARTS = (
    "{%- macro render(content, image) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{ image }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)


def _template(body: str, image: str = "") -> str:
    return _PARTS + "{%- set image = " + json.dumps(image) + " -%}" + body


# ChatML (Qwen2 / Qwen2.5 / Qwen3 and the Qwen-VL models), with Qwen's default system turn.
CHATML = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif -%}"
    "{%- for m in messages -%}"
    "{{ '<|im_start|>' + m['role'] + '\\n' }}{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ render(m['content'], image) + '<|im_end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ render(m['content'], image) + '<|im_end|>' }}{%- endif -%}{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# Llama 3.x (and Llama-3.2-Vision): header tokens, <|eot_id|> ends a turn.
LLAMA3 = (
    "{{ '<|begin_of_text|>' }}"
    "{%- for m in messages -%}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ render(m['content'], image) | trim + '<|eot_id|>' }}"
    "{%- endgeneration -%}"
    "{%- else -%}{{ render(m['content'], image) | trim + '<|eot_id|>' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)
# Mistral instruct: [INST] ... [/INST] answer</s>; a system turn is folded into the first user
# turn; roles must alternate (as the real template demands).
MISTRAL = (
    "{{ '<s>' }}"
    "{%- set system = messages[0]['content'] + '\\n\\n' if messages[0]['role'] == 'system' "
    "else '' -%}"
    "{%- set turns = messages[1:] if system else messages -%}"
    "{%- for m in turns -%}"
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/...') }}"
    "{%- endif -%}"
    "{%- if m['role'] == 'user' -%}"
    "{{ '[INST] ' + (system if loop.first else '') + render(m['content'], image) + ' [/INST]' }}"
    "{%- else -%}{%- generation -%}{{ ' ' + render(m['content'], image) + '</s>' }}"
    "{%- endgeneration -%}{%- endif -%}"
    "{%- endfor -%}"
)
# Gemma (1, 2, 3): the assistant is "model"; a system turn is folded into the first user turn.
GEMMA = (
    "{{ '<bos>' }}"
    "{%- set system = messages[0]['content'] + '\\n\\n' if messages[0]['role'] == 'system' "
    "else '' -%}"
    "{%- for m in (messages[1:] if system else messages) -%}"
    "{%- set role = 'model' if m['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (system if loop.first else '') }}"
    "{%- if role == 'model' -%}"
    "{%- generation -%}{{ render(m['content'], image) | trim + '<end_of_turn>' }}"
    "{%- endgeneration -%}"
    "{%- else -%}{{ render(m['content'], image) | trim + '<end_of_turn>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)
# Phi-3 / Phi-3.5 / Phi-4-mini: <|role|> markers, <|end|> ends a turn.
PHI3 = (
    "{%- for m in messages -%}"
    "{{ '<|' + m['role'] + '|>\\n' }}{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ render(m['content'], image) + '<|end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ render(m['content'], image) + '<|end|>' }}{%- endif -%}{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
)
# Phi-2 ships no chat template; its model card's QA format ("Instruct: ...\nOutput:").
PHI2 = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ ' ' + render(m['content'], image) + '<|endoftext|>' }}"
    "{%- endgeneration -%}{{ '\\n' }}"
    "{%- else -%}{{ 'Instruct: ' + render(m['content'], image) + '\\nOutput:' }}{%- endif -%}"
    "{%- endfor -%}"
)
# LLaVA-1.5: "USER: <image>\n... ASSISTANT: ...</s>".
LLAVA15 = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ ' ' + render(m['content'], image) + '</s>' }}{%- endgeneration -%}"
    "{%- else -%}{{ ('' if loop.first else ' ') + m['role'].upper() + ': ' "
    "+ render(m['content'], image) }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)
# Idefics3 / SmolVLM: "<|im_start|>User:<image>...<end_of_utterance>\nAssistant: ...".
IDEFICS3 = (
    "{{ '<|im_start|>' }}"
    "{%- for m in messages -%}"
    "{{ m['role'] | capitalize + ':' }}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- generation -%}{{ ' ' + render(m['content'], image) + '<end_of_utterance>' }}"
    "{%- endgeneration -%}"
    "{%- else -%}{{ render(m['content'], image) + '<end_of_utterance>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)


@dataclass(frozen=True)
class Family:
    """One model family: how to build a tiny random member, and what it stands for."""

    name: str
    modality: str  # "text" or "image"
    architecture: str  # the transformers class
    stands_for: str  # the real checkpoints of this family
    build: Callable[..., tuple[PreTrainedModel, Any]]


def _tokenizer(template: str, specials: tuple[str, ...], *, eos: str, bos: str | None = None,
               pad: str | None = None, image: str | None = None) -> PreTrainedTokenizerFast:
    """gengap's character vocabulary plus a family's special tokens, EOS and chat template."""
    tokenizer = build_char_tokenizer(extra_special_tokens=specials, template=template)
    tokenizer.eos_token = eos
    if bos is not None:
        tokenizer.bos_token = bos
    if pad is not None:
        tokenizer.pad_token = pad
    if image is not None:
        tokenizer.image_token = image
    return tokenizer


def _token_ids(tokenizer: Any) -> dict[str, Any]:
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


def _finish(model: PreTrainedModel, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
    """Generation defaults as the family's checkpoints ship them (EOS list, pad)."""
    eos = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(list(stop))]
    model.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.eval()


def _seeded(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)


# ------------------------------------------------------------------------------------ text


def _text_family(config_cls: str, model_cls: str, template: str, specials: tuple[str, ...],
                 eos: str, *, bos: str | None = None, stop: tuple[str, ...] = (),
                 **config: Any) -> Callable[..., tuple[PreTrainedModel, Any]]:
    def build(seed: int | None = 0, **size: Any) -> tuple[PreTrainedModel, Any]:
        import transformers

        tokenizer = _tokenizer(_template(template), specials, eos=eos, bos=bos)
        settings = {**TEXT_SIZE, **config, **size, **_token_ids(tokenizer)}
        cfg = getattr(transformers, config_cls)(**settings)
        _seeded(seed)
        model = getattr(transformers, model_cls)(cfg)
        _finish(model, tokenizer, stop)
        return model, tokenizer

    return build


_QWEN = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_LLAMA = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
          "<|eot_id|>", "<|finetune_right_pad_id|>")
_GEMMA = ("<eos>", "<start_of_turn>", "<end_of_turn>")
_MISTRAL = ("<s>", "</s>", "[INST]", "[/INST]")
_PHI = ("<|endoftext|>",)


# ------------------------------------------------------------------------------------ VLMs


def _llava(seed: int | None = 0) -> tuple[PreTrainedModel, Any]:
    """LLaVA-1.5 layout: CLIP vision tower (CLS token dropped), MLP projector, Llama decoder."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer(_template(LLAVA15, "<image>\n"), _MISTRAL[:2], eos="</s>", bos="<s>",
                           image="<image>")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=8, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, image_token="<image>",
                               chat_template=tokenizer.chat_template)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=32, patch_size=8,
                              projection_dim=32)
    text = LlamaConfig(**TEXT_SIZE, **_token_ids(tokenizer))
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=16, vision_feature_select_strategy="default",
                         vision_feature_layer=-2)
    _seeded(seed)
    model = LlavaForConditionalGeneration(config)
    _finish(model, tokenizer)
    return model, processor


def _qwen_vl(version: str) -> Callable[[int | None], tuple[PreTrainedModel, Any]]:
    def build(seed: int | None = 0) -> tuple[PreTrainedModel, Any]:
        import transformers
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        from gengap.models import qwen_vl

        markup = qwen_vl.VISION_START + qwen_vl.IMAGE_PAD + qwen_vl.VISION_END
        specials = (*_QWEN, qwen_vl.VISION_START, qwen_vl.VISION_END, qwen_vl.IMAGE_PAD,
                    qwen_vl.VIDEO_PAD)
        tokenizer = _tokenizer(_template(CHATML, markup), specials, eos="<|im_end|>",
                               pad="<|endoftext|>", image=qwen_vl.IMAGE_PAD)
        tokenizer.video_token = qwen_vl.VIDEO_PAD
        pixels = 56 * 56  # 16 patches of 14 px, merged 2x2 into 4 image tokens
        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2,
            temporal_patch_size=2)
        processor_cls = (qwen_vl.ImageOnlyQwen2_5_VLProcessor if version == "2.5"
                         else qwen_vl.ImageOnlyQwen2VLProcessor)
        processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer,
                                  chat_template=tokenizer.chat_template)
        half = TEXT_SIZE["head_dim"] // 2  # multimodal RoPE splits it over (t, h, w)
        text = {**TEXT_SIZE, **_token_ids(tokenizer),
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                    "mrope_section": [2, 3, half - 5]}}
        text.pop("head_dim")
        if version == "2.5":
            vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                      "out_hidden_size": text["hidden_size"], "window_size": 56,
                      "fullatt_block_indexes": [1]}
            config_cls, model_cls = "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"
        else:
            vision = {"depth": 2, "embed_dim": 32, "hidden_size": text["hidden_size"],
                      "mlp_ratio": 2, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2,
                      "temporal_patch_size": 2}
            config_cls, model_cls = "Qwen2VLConfig", "Qwen2VLForConditionalGeneration"
        ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
            ("image_token_id", qwen_vl.IMAGE_PAD), ("video_token_id", qwen_vl.VIDEO_PAD),
            ("vision_start_token_id", qwen_vl.VISION_START),
            ("vision_end_token_id", qwen_vl.VISION_END))}
        config = getattr(transformers, config_cls)(text_config=text, vision_config=vision, **ids)
        _seeded(seed)
        model = getattr(transformers, model_cls)(config)
        _finish(model, tokenizer)
        return model, processor

    return build


def _mllama(seed: int | None = 0) -> tuple[PreTrainedModel, Any]:
    """Llama-3.2-Vision layout: tiled vision encoder, cross-attention layers in the decoder."""
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaProcessor,
    )
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    # <|image|> is the last id, one past the text vocabulary (as in the real checkpoints).
    tokenizer = _tokenizer(_template(LLAMA3, "<|image|>"), (*_LLAMA, "<|python_tag|>",
                                                            "<|image|>"),
                           eos="<|eot_id|>", bos="<|begin_of_text|>",
                           pad="<|finetune_right_pad_id|>", image="<|image|>")
    image_processor = MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=4)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=tokenizer.chat_template)
    vision = {"hidden_size": 32, "num_hidden_layers": 2, "num_global_layers": 1,
              "attention_heads": 2, "intermediate_size": 64, "vision_output_dim": 64,
              "image_size": 28, "patch_size": 14, "max_num_tiles": 4,
              "intermediate_layers_indices": [0]}
    text = {**TEXT_SIZE, **_token_ids(tokenizer), "vocab_size": len(tokenizer) - 1,
            "num_hidden_layers": 3, "cross_attention_layers": [1]}
    config = MllamaConfig(vision_config=vision, text_config=text,
                          image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"))
    _seeded(seed)
    model = MllamaForConditionalGeneration(config)
    _finish(model, tokenizer, stop=("<|end_of_text|>",))
    return model, processor


def _idefics3(seed: int | None = 0) -> tuple[PreTrainedModel, Any]:
    """Idefics3 / SmolVLM layout: SigLIP-style encoder, pixel shuffle, Llama decoder."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    specials = ("<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                "<global-img>", "<|endoftext|>")
    tokenizer = _tokenizer(_template(IDEFICS3, "<image>"), specials, eos="<end_of_utterance>",
                           bos="<|im_start|>", pad="<|endoftext|>", image="<image>")
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32},
        max_image_size={"longest_edge": 32})
    # 32 px / 8 px patches = 16 patches, pixel-shuffled by 2 into 4 image tokens.
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=4, chat_template=tokenizer.chat_template)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    text = {**TEXT_SIZE, **_token_ids(tokenizer), "model_type": "llama"}
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    _seeded(seed)
    model = Idefics3ForConditionalGeneration(config)
    _finish(model, tokenizer)
    return model, processor


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("qwen2", "text", "Qwen2ForCausalLM", "Qwen2 / Qwen2.5 (-Instruct)",
           _text_family("Qwen2Config", "Qwen2ForCausalLM", CHATML, _QWEN, "<|im_end|>",
                        tie_word_embeddings=True)),
    Family("qwen3", "text", "Qwen3ForCausalLM", "Qwen3",
           _text_family("Qwen3Config", "Qwen3ForCausalLM", CHATML, _QWEN, "<|im_end|>")),
    Family("llama", "text", "LlamaForCausalLM", "Llama 3.x (-Instruct), SmolLM",
           _text_family("LlamaConfig", "LlamaForCausalLM", LLAMA3, _LLAMA, "<|eot_id|>",
                        bos="<|begin_of_text|>", stop=("<|end_of_text|>",),
                        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                         "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 512})),
    Family("mistral", "text", "MistralForCausalLM", "Mistral-7B-Instruct (sliding window)",
           _text_family("MistralConfig", "MistralForCausalLM", MISTRAL, _MISTRAL, "</s>",
                        bos="<s>", sliding_window=WINDOW)),
    Family("gemma", "text", "GemmaForCausalLM", "Gemma 1",
           _text_family("GemmaConfig", "GemmaForCausalLM", GEMMA, _GEMMA, "<eos>",
                        stop=("<end_of_turn>",), **_GEMMA_TINY)),
    Family("gemma2", "text", "Gemma2ForCausalLM",
           "Gemma 2 (sliding window, attention and final logit soft-capping)",
           _text_family("Gemma2Config", "Gemma2ForCausalLM", GEMMA, _GEMMA, "<eos>",
                        stop=("<end_of_turn>",), sliding_window=WINDOW,
                        attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                        query_pre_attn_scalar=16, **_GEMMA_TINY)),
    Family("gemma3", "text", "Gemma3ForCausalLM",
           "Gemma 3 text (local sliding + global layers, two rotary bases)",
           _text_family("Gemma3TextConfig", "Gemma3ForCausalLM", GEMMA, _GEMMA, "<eos>",
                        stop=("<end_of_turn>",), sliding_window=WINDOW,
                        layer_types=["sliding_attention", "full_attention"],
                        query_pre_attn_scalar=16, **_GEMMA_TINY)),
    Family("phi3", "text", "Phi3ForCausalLM", "Phi-3 / Phi-3.5 / Phi-4-mini (partial rotary)",
           _text_family("Phi3Config", "Phi3ForCausalLM", PHI3, _PHI, "<|endoftext|>",
                        stop=("<|end|>",), partial_rotary_factor=0.75)),
    Family("phi", "text", "PhiForCausalLM", "Phi-1.5 / Phi-2 (parallel block, LayerNorm)",
           _text_family("PhiConfig", "PhiForCausalLM", PHI2, _PHI, "<|endoftext|>",
                        partial_rotary_factor=0.5)),
    Family("llava", "image", "LlavaForConditionalGeneration",
           "LLaVA-1.5 (CLIP tower, Llama decoder)", _llava),
    Family("qwen2_vl", "image", "Qwen2VLForConditionalGeneration", "Qwen2-VL",
           _qwen_vl("2")),
    Family("qwen2_5_vl", "image", "Qwen2_5_VLForConditionalGeneration",
           "Qwen2.5-VL (the DC-SFT study's family)", _qwen_vl("2.5")),
    Family("mllama", "image", "MllamaForConditionalGeneration",
           "Llama-3.2-Vision (the SFT-vs-RL study's family)", _mllama),
    Family("idefics3", "image", "Idefics3ForConditionalGeneration",
           "Idefics3 / SmolVLM", _idefics3),
)}


def build_family(name: str, seed: int | None = 0, **size: Any) -> tuple[PreTrainedModel, Any]:
    """A tiny random model of family `name` and its tokenizer (text) or processor (VLMs).

    `size`: decoder config fields overriding `TEXT_SIZE` (text families only), e.g. the
    benchmark's ``hidden_size=128, num_hidden_layers=4``.
    """
    if name not in FAMILIES:
        raise InputError(f"unknown model family {name!r}", hint=f"one of {', '.join(FAMILIES)}")
    if size and FAMILIES[name].modality != "text":
        raise InputError("size overrides apply to the text families only", where=name)
    return FAMILIES[name].build(seed, **size)


def save_family(name: str, path: str | Path, seed: int | None = 0) -> Path:
    """Build family `name` and save it as a checkpoint directory (model + processor)."""
    model, processor = build_family(name, seed)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
