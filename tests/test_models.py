"""The model layer: char tokenizer, tiny models, loading by path / 'tiny', LoRA, Qwen2.5-VL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from gengap.errors import InputError
from gengap.models import build_tiny, count_parameters, load_model
from gengap.models.tokenizer import EOS_TOKEN, IMAGE_TOKEN, build_char_tokenizer

# Small enough that every test here runs in well under a second of compute.
SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 2}
SMALL_VISION = {"vision_hidden_size": 32, "vision_intermediate_size": 64,
                "vision_num_hidden_layers": 1, "vision_num_attention_heads": 2}
USER_IMAGE = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "24 as10"}]}]


def _card_image() -> Image.Image:
    return Image.new("RGB", (64, 64), (53, 101, 77))


# -- tokenizer -----------------------------------------------------------------------------


def test_char_tokenizer_round_trips_any_printable_text() -> None:
    tokenizer = build_char_tokenizer()
    text = "Cards: ['4', '10', 'K']\n{\"formula\": '(10-6)*4+8=24'}\t~"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids


def test_char_tokenizer_maps_unknown_characters_to_unk() -> None:
    tokenizer = build_char_tokenizer()
    ids = tokenizer("4♥", add_special_tokens=False)["input_ids"]
    assert ids[1] == tokenizer.unk_token_id


def test_chat_template_marks_turns_and_assistant_tokens() -> None:
    tokenizer = build_char_tokenizer()
    prompt = [{"role": "user", "content": "24 as10 4,3,2,K"}]
    rendered = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert rendered == "<|user|>24 as10 4,3,2,K<|end|><|assistant|>"
    full = prompt + [{"role": "assistant", "content": "4*3+2+10"}]
    out = tokenizer.apply_chat_template(full, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    # The prompt-with-generation-prompt is a prefix of the full conversation (TRL relies on it).
    prefix = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert out["input_ids"][: len(prefix)] == prefix
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "4*3+2+10" + EOS_TOKEN
    images = tokenizer.apply_chat_template(USER_IMAGE, add_generation_prompt=True,
                                           tokenize=False)
    assert images == f"<|user|>{IMAGE_TOKEN}24 as10<|end|><|assistant|>"


def test_chat_template_rejects_unknown_roles() -> None:
    tokenizer = build_char_tokenizer()
    with pytest.raises(Exception, match="unsupported chat role"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


# -- tiny models ---------------------------------------------------------------------------


def test_build_tiny_is_reproducible_per_seed() -> None:
    a, _ = build_tiny("text", seed=1, **SMALL)
    b, _ = build_tiny("text", seed=1, **SMALL)
    c, _ = build_tiny("text", seed=2, **SMALL)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_build_tiny_rejects_unknown_settings() -> None:
    with pytest.raises(InputError, match="hiden_size"):
        build_tiny("text", hiden_size=8)
    with pytest.raises(InputError, match="image model"):
        build_tiny("text", vision_hidden_size=8)
    with pytest.raises(InputError, match="modality"):
        build_tiny("audio")


def test_text_model_save_load_round_trip_keeps_logits(tmp_path: Path) -> None:
    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert not loaded.is_vlm and loaded.processor is loaded.tokenizer
    text = loaded.processor.apply_chat_template(
        [{"role": "user", "content": "24 as10 4,3,2,K"}], add_generation_prompt=True,
        tokenize=False)
    batch = loaded.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded.model(**batch).logits)
    assert not loaded.model.training


def test_llava_tiny_forward_with_image_and_round_trip(tmp_path: Path) -> None:
    model, processor = build_tiny("image", seed=0, **SMALL, **SMALL_VISION)
    text = processor.apply_chat_template(USER_IMAGE, add_generation_prompt=True, tokenize=False)
    batch = processor(text=[text, text], images=[_card_image(), _card_image()],
                      return_tensors="pt", padding=True)
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    # One image token per patch of the 64 px image.
    patch = model.config.vision_config.patch_size
    assert int((batch["input_ids"][0] == image_id).sum()) == (64 // patch) ** 2
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), modality="image")
    assert loaded.is_vlm and type(loaded.processor).__name__ == "LlavaProcessor"
    again = loaded.processor(text=[text, text], images=[_card_image(), _card_image()],
                             return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(loaded.model(**again).logits, logits)


def test_text_model_refuses_image_modality(tmp_path: Path) -> None:
    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(InputError, match="text-only"):
        load_model(str(tmp_path), modality="image")


def test_load_model_explains_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"config\.json"):
        load_model(str(tmp_path))
    with pytest.raises(InputError, match="neither"):
        load_model(str(tmp_path / "missing" / "dir"))
    with pytest.raises(InputError, match="a task is needed"):
        load_model("tiny")


def test_lora_leaves_only_adapters_trainable(tmp_path: Path) -> None:
    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    full = load_model(str(tmp_path))
    adapted = load_model(str(tmp_path), lora={"r": 4})
    trainable = [n for n, p in adapted.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    n_trainable = sum(p.numel() for p in adapted.model.parameters() if p.requires_grad)
    assert 0 < n_trainable < count_parameters(full.model) / 2
    with pytest.raises(InputError, match="LoRA"):
        load_model(str(tmp_path), lora={"rank": 4})


def test_load_tiny_uses_the_cold_start_cache(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """'tiny' resolves through `gengap.coldstart.coldstart` (here a stub that saves a model)."""
    import gengap.coldstart

    calls: list[tuple[str, str]] = []

    def fake_coldstart(task: Any, **_: object) -> Path:
        task_name, modality = task.name, task.modality
        calls.append((task_name, modality))
        out = tmp_path / f"{task_name}-{modality}"
        if not out.exists():
            model, processor = build_tiny(modality, seed=0, **SMALL)
            model.save_pretrained(out)
            processor.save_pretrained(out)
        return out

    monkeypatch.setattr(gengap.coldstart, "coldstart", fake_coldstart)
    from gengap.tasks import build_task

    loaded = load_model("tiny", task=build_task("generalpoints", tiny=True))
    assert calls == [("generalpoints", "text")]
    assert Path(loaded.path) == tmp_path / "generalpoints-text" and loaded.spec == "tiny"


# -- Qwen2.5-VL (the DC-SFT model family) without torchvision --------------------------------


def test_tiny_qwen2_5_vl_round_trip_and_generate(tmp_path: Path) -> None:
    from gengap.models.qwen_vl import build_tiny_qwen2_5_vl

    model, processor = build_tiny_qwen2_5_vl(seed=0)
    text = processor.apply_chat_template(USER_IMAGE, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text
    batch = processor(text=[text], images=[_card_image()], return_tensors="pt")
    assert "image_grid_thw" in batch
    with torch.no_grad():
        logits = model(**batch).logits
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5_VLProcessor"  # stock name for other tools
    loaded = load_model(str(tmp_path), modality="image")
    assert loaded.is_vlm
    again = loaded.processor(text=[text], images=[_card_image()], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(loaded.model(**again).logits, logits)
        out = loaded.model.generate(**again, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= again["input_ids"].shape[1] + 4


# -- precision ---------------------------------------------------------------------------------


def test_dtype_resolution_per_device() -> None:
    from gengap.models.loading import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") == torch.float16
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_dtype("int8", "cpu")
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert resolve_dtype("auto", "cuda:0") == expected


def test_load_in_bfloat16_is_recorded(tmp_path: Path) -> None:
    from gengap.models.loading import describe

    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), dtype="bfloat16", device="cpu")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    info = describe(loaded)
    assert (info["dtype"], info["device"], info["architecture"]) == (
        "bfloat16", "cpu", "Qwen2ForCausalLM")


# -- LoRA adapter directories as models --------------------------------------------------------


def _adapter(base: Path, out: Path, seed: int) -> Any:
    """A PEFT adapter with random (non-zero) weights over the checkpoint at `base`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    return peft


def test_adapter_directory_loads_merged_into_its_base(tmp_path: Path) -> None:
    from gengap.models.loading import describe, is_adapter_dir

    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    peft = _adapter(base, tmp_path / "adapter", seed=1)
    assert is_adapter_dir(tmp_path / "adapter")
    loaded = load_model(str(tmp_path / "adapter"))
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"  # merged, not a PeftModel
    assert loaded.base == str(base) and describe(loaded)["adapter_base"] == str(base)
    batch = loaded.tokenizer(["<|user|>24 as10 4,3,2,K<|end|><|assistant|>"],
                             return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = peft.eval()(**batch).logits
        torch.testing.assert_close(loaded.model(**batch).logits, expected, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(model(**batch).logits, expected, atol=1e-3)  # it matters

    # An adapter over an adapter (e.g. a kept LoRA arm started from a kept LoRA arm).
    from gengap.models.loading import ADAPTER_CONFIG

    merged_first = tmp_path / "merged"
    loaded.model.save_pretrained(merged_first)
    second = _adapter(merged_first, tmp_path / "second", seed=2)
    config_path = tmp_path / "second" / ADAPTER_CONFIG
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "adapter")
    config_path.write_text(json.dumps(config))
    chained = load_model(str(tmp_path / "second"))
    with torch.no_grad():
        torch.testing.assert_close(chained.model(**batch).logits, second.eval()(**batch).logits,
                                   atol=1e-5, rtol=1e-4)


def test_bad_adapter_directories_are_input_errors(tmp_path: Path) -> None:
    from gengap.models.loading import ADAPTER_CONFIG

    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(InputError, match="names no base model"):
        load_model(str(tmp_path))
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps(
        {"peft_type": "LORA", "base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(InputError, match="neither a checkpoint directory"):
        load_model(str(tmp_path))


# -- chat templates ----------------------------------------------------------------------------


def test_a_checkpoint_without_chat_template_gets_the_fix(tmp_path: Path) -> None:
    """Base models ship no chat template: the error names the fix, and the fix works."""
    from typer.testing import CliRunner

    from gengap.cli import app
    from gengap.models.families import PHI2, _template, save_family

    path = save_family("phi", tmp_path / "phi2")
    (path / "chat_template.jinja").unlink()
    config = json.loads((path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    args = ["eval", "--model", str(path), "--task", "generalpoints", "-O",
            "prompt_style=compact", "--splits", "test-id", "--n", "1", "--verify-iters", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "has no chat template" in result.output and "chat_template.jinja" in result.output
    (path / "chat_template.jinja").write_text(_template(PHI2))
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
