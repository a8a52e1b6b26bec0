"""Load any model gengap works with: the embedded tiny default or an HF checkpoint.

`load_model("tiny", task=task)` resolves to the cached cold-started tiny model for that
configured task (running the cold start once if it is missing). Any other
spec is a local directory or, on a machine with hub access, a hub id; causal LMs load with
`AutoModelForCausalLM` + `AutoTokenizer`, VLMs (LLaVA, Qwen2-VL / Qwen2.5-VL, Mllama, ...)
with `AutoModelForImageTextToText` + `AutoProcessor`. A PEFT adapter directory (an
`adapter_config.json`, no `config.json`) is a model too: its base (`base_model_name_or_path`,
itself any spec, adapters included) is loaded and the adapter merged into it. Optional fresh
LoRA adapters go through PEFT.

Devices and precision: `device="auto"` is CUDA (this process's local rank) when visible, else
the CPU; `dtype="auto"` is float32 on the CPU and bfloat16 on GPUs that support it (else
float16). What was used is on the `LoadedModel` and in `describe()`, which every command
records beside its results.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
)
from transformers.utils import logging as hf_logging

from gengap.errors import InputError
from gengap.models.tokenizer import load_tokenizer

TINY_SPEC = "tiny"
ADAPTER_CONFIG = "adapter_config.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
# What a checkpoint without a chat template needs (one sentence, used by every error about it).
CHAT_TEMPLATE_FIX = (
    "write the model's chat template (Jinja) to DIR/chat_template.jinja in the checkpoint "
    "directory (transformers loads it with the tokenizer), use an instruct/chat checkpoint, "
    "or pass chat_template=... to gengap.models.load_model"
)

# LoRA defaults (PEFT `LoraConfig` fields); the DC-SFT study's GRPO baseline used r=32, alpha=64.
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": "all-linear",
    "bias": "none",
}


@dataclass
class LoadedModel:
    """A model ready for generation or training, with everything needed to prompt it.

    model:     the torch module (eval mode; a `PeftModel` when LoRA was requested).
    processor: what TRL's `processing_class` takes: the tokenizer for text models, the
               multimodal processor for VLMs. Render prompts with
               `processor.apply_chat_template(messages, add_generation_prompt=True,
               tokenize=False)`.
    tokenizer: the text tokenizer (the processor's own for VLMs).
    is_vlm:    whether the model takes images.
    path:      the checkpoint directory (or hub id) the weights came from (for an adapter:
               the adapter directory).
    spec:      what the caller asked for ("tiny", a path or a hub id).
    device:    where the weights are ("cpu", "cuda:0", ...).
    dtype:     their dtype ("float32", "bfloat16", "float16").
    base:      for an adapter directory: the base checkpoint it was merged into.
    """

    model: PreTrainedModel
    processor: Any
    tokenizer: Any
    is_vlm: bool
    path: Path | str
    spec: str
    device: str = "cpu"
    dtype: str = "float32"
    base: str | None = None

    @property
    def chat_template(self) -> str | None:
        return getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None
        )


def is_vlm_config(config: Any) -> bool:
    """Whether a model config describes an image-text-to-text model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or hasattr(
        config, "vision_config"
    )


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> str:
    """'auto' -> CUDA (this process's local rank) when a GPU is visible, else CPU."""
    if device is None or str(device) == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    text = str(device)
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {text!r} was asked for but no CUDA GPU is visible",
                         hint="use --device auto or --device cpu")
    try:
        torch.device(text)
    except RuntimeError:
        raise InputError(f"unknown device {text!r}", hint="auto, cpu, cuda or cuda:N") from None
    return text


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """'auto' / None -> float32 on CPU, bfloat16 on a GPU that supports it, else float16.

    An explicit dtype is checked against the device (bfloat16 needs an Ampere-or-newer GPU;
    on the CPU every dtype runs, half precision slowly).
    """
    device = torch.device(device)
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = DTYPE_ALIASES.get(str(dtype or "auto"), str(dtype or "auto"))
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}",
                         hint="auto, float32, bfloat16 or float16 (bf16, fp16)")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"{device} does not support bfloat16",
                         hint="use --dtype float16 (or auto)")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """'float32', 'bfloat16', ... (for run metadata)."""
    return str(dtype).removeprefix("torch.")


def is_adapter_dir(path: str | Path) -> bool:
    """Whether `path` is a PEFT adapter directory (adapter_config.json, no config.json)."""
    path = Path(path)
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter directory was trained on (its `base_model_name_or_path`).

    A relative base is taken relative to the adapter directory when it exists there, else as
    given (relative to the working directory, or a hub id).
    """
    path = Path(path)
    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable {ADAPTER_CONFIG}: {exc}", where=str(path)) from None
    base = config.get("base_model_name_or_path")
    if not base:
        raise InputError(f"{ADAPTER_CONFIG} names no base model", where=str(path),
                         hint="set base_model_name_or_path to the base checkpoint directory")
    beside = path / base
    return str(beside) if not Path(base).is_absolute() and beside.exists() else str(base)


def resolve_spec(spec: str, *, task: Any = None) -> Path | str:
    """'tiny' -> the cached cold-started checkpoint; a directory -> itself; else a hub id.

    A PEFT adapter directory resolves to itself (`load_model` merges it into its base).
    """
    if spec == TINY_SPEC:
        if task is None:
            raise InputError(
                "the embedded tiny model is cold-started per task: a task is needed",
                hint="pass --task together with --model tiny",
            )
        from gengap.coldstart import coldstart

        return coldstart(task)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not is_adapter_dir(path):
            raise InputError(
                f"{path} has no config.json (nor adapter_config.json): not a Hugging Face "
                "checkpoint or PEFT adapter directory",
                hint="point --model at a directory written by save_pretrained, or use 'tiny'",
            )
        return path
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError(
            f"model {spec!r} is neither a checkpoint directory nor a hub id",
            hint="pass 'tiny', a directory with config.json, or an 'org/name' hub id",
        )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") and not _in_hub_cache(spec):
        import difflib

        close = difflib.get_close_matches(spec, [TINY_SPEC], n=1)
        raise InputError(
            f"model {spec!r} is not a checkpoint directory, and no hub model of that name is in "
            "the local Hugging Face cache (gengap runs offline)",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "pass 'tiny', a directory with config.json, or set HF_HUB_OFFLINE=0 to download",
        )
    return spec  # a hub id: from_pretrained resolves it (needs network or a local HF cache)


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local HF cache holds a config.json of `repo_id` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed id: not in the cache either
        return False
    return isinstance(found, str)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time chatter (e.g. the torchvision fallback notice)."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def load_model(
    spec: str,
    *,
    task: Any = None,
    modality: str | None = None,
    lora: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    chat_template: str | None = None,
) -> LoadedModel:
    """Load `spec` ("tiny", a checkpoint or PEFT adapter directory, or a hub id) for `task`.

    modality:      what the caller will feed it (default: the task's, else text); an image
                   task needs a vision-language model.
    lora:          PEFT `LoraConfig` fields (merged over `LORA_DEFAULTS`); `{}` = defaults.
    device:        "auto" (CUDA when visible, else CPU), "cpu", "cuda", "cuda:N".
    dtype:         "auto" / None (float32 on CPU; bfloat16, else float16, on a GPU),
                   "float32", "bfloat16", "float16" or a torch dtype.
    chat_template: a Jinja template for checkpoints that ship none (base models).
    """
    modality = modality or (task.modality if task is not None else "text")
    path = resolve_spec(spec, task=task)
    device = torch.device(resolve_device(device))
    torch_dtype = resolve_dtype(dtype, device)
    try:
        with _quiet_transformers():
            model, processor, vlm, base = _load_weights(path, torch_dtype)
    except (OSError, ValueError, SafetensorError, json.JSONDecodeError) as exc:
        # A truncated or corrupt weights file raises SafetensorError ("incomplete metadata",
        # "header too large"), a damaged config a JSONDecodeError: both are the user's files.
        raise InputError(
            f"could not load model {spec!r}: {exc}",
            where=str(path),
            hint="check the path; a checkpoint whose files are damaged must be re-saved or "
                 "re-trained; hub ids need network access or a local HF cache",
        ) from None
    tokenizer = getattr(processor, "tokenizer", processor)
    if modality == "image" and not vlm:
        raise InputError(
            f"model {spec!r} is a text-only causal LM but the task uses images",
            hint="use --modality text, or a vision-language checkpoint",
        )

    if chat_template is not None:
        processor.chat_template = chat_template
        tokenizer.chat_template = chat_template
    if not (getattr(processor, "chat_template", None) or tokenizer.chat_template):
        raise InputError(
            f"model {spec!r} has no chat template: gengap prompts every model with chat "
            "messages rendered by the model's own template",
            where=str(path), hint=CHAT_TEMPLATE_FIX,
        )
    if tokenizer.pad_token is None:
        # Batched generation and TRL's collators need a pad token; EOS is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    # Decoder-only generation continues from the right end of every row.
    tokenizer.padding_side = "left"
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    if lora is not None:
        model = apply_lora(model, lora)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, processor=processor, tokenizer=tokenizer, is_vlm=vlm,
                       path=path, spec=spec, device=str(device),
                       dtype=dtype_name(torch_dtype), base=base)


def _load_weights(path: Path | str, dtype: torch.dtype) -> tuple[Any, Any, bool, str | None]:
    """(model, processor, is_vlm, base) of a checkpoint, or of an adapter merged into its base.

    An adapter's processor is its own when it saved one (trainers do), else its base's.
    """
    if is_adapter_dir(path):
        from peft import PeftModel

        base_spec = adapter_base(path)
        base_path = resolve_spec(base_spec)
        model, processor, vlm, _ = _load_weights(base_path, dtype)
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        if any((Path(path) / name).is_file() for name in
               ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json")):
            processor = (_load_vlm_processor(path, model.config.model_type) if vlm
                         else load_tokenizer(path))
        return model, processor, vlm, str(base_path)
    config = AutoConfig.from_pretrained(path)
    vlm = is_vlm_config(config)
    if vlm:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        processor = _load_vlm_processor(path, config.model_type)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        processor = load_tokenizer(path)
    return model, processor, vlm, None


def load_processor(path: str | Path) -> tuple[Any, bool]:
    """(processor, is_vlm) of a checkpoint directory, without loading its weights."""
    with _quiet_transformers():
        config = AutoConfig.from_pretrained(path)
        vlm = is_vlm_config(config)
        processor = _load_vlm_processor(path, config.model_type) if vlm else load_tokenizer(path)
    return processor, vlm


def _load_vlm_processor(path: Path | str, model_type: str) -> Any:
    """`AutoProcessor`, or the image-only Qwen-VL processor when torchvision is broken."""
    from gengap.models.qwen_vl import (
        QWEN_VL_MODEL_TYPES,
        load_image_only_processor,
        torchvision_works,
    )

    if model_type in QWEN_VL_MODEL_TYPES and not torchvision_works():
        return load_image_only_processor(path, model_type)
    processor = AutoProcessor.from_pretrained(path)
    if not hasattr(processor, "tokenizer"):
        # AutoProcessor falls back to a bare tokenizer when it cannot build the processor.
        raise InputError(
            f"no multimodal processor could be built for {path} (got {type(processor).__name__})",
            hint="the checkpoint needs a processor_config.json / preprocessor_config.json",
        )
    return processor


def apply_lora(model: PreTrainedModel, lora: dict[str, Any]) -> Any:
    """Wrap `model` with fresh LoRA adapters; only adapter weights stay trainable."""
    from peft import LoraConfig, get_peft_model

    settings = {**LORA_DEFAULTS, **lora}
    try:
        config = LoraConfig(task_type="CAUSAL_LM", **settings)
    except TypeError as exc:
        raise InputError(f"bad LoRA setting: {exc}",
                         hint="keys are peft.LoraConfig fields") from None
    return get_peft_model(model, config)


def _unwrapped(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def describe(loaded: LoadedModel) -> dict[str, Any]:
    """A JSON-serialisable summary of a loaded model (for run metadata)."""
    params = sum(p.numel() for p in loaded.model.parameters())
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    info: dict[str, Any] = {
        "spec": loaded.spec,
        "path": str(loaded.path),
        "is_vlm": loaded.is_vlm,
        "parameters": params,
        "trainable_parameters": trainable,
        "architecture": type(_unwrapped(loaded.model)).__name__,
        "model_type": getattr(loaded.model.config, "model_type", None),
        "device": loaded.device,
        "dtype": loaded.dtype,
    }
    if loaded.base is not None:
        info["adapter_base"] = loaded.base
    recipe = Path(str(loaded.path)) / "coldstart_recipe.json"
    if recipe.is_file():
        info["coldstart_recipe"] = json.loads(recipe.read_text())
    return info
