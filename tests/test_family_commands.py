"""Every command on every model family, from checkpoint directories as a user has them.

Each family's tiny random model (`gengap.models.families`, saved with `save_pretrained`, its
own chat template and processor) goes through `gengap eval`, `gengap difficulty`,
`gengap curate`, `gengap train sft` and `gengap train grpo` (full and LoRA; LoRA kept as an
adapter directory, which `eval` then takes as a model) and `gengap reproduce` with a `model:`
key. Two families run by default (Llama: the issue's case, a text family; Mllama: the
SFT-vs-RL study's family, sampled with generate, trained by SFT only), each command on its
own; the rest are marked slow and go through the study (eval, difficulty, curate, LoRA SFT
and GRPO kept as adapters) plus the commands the study does not run (eval of a kept adapter,
full SFT, full GRPO), which keeps them at about half the cost. `--device auto` is the CPU
here; on a GPU machine the same commands run on CUDA.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gengap.cli import app
from gengap.models.families import FAMILIES, save_family

FAST = ("llama", "mllama")
GRPO_UNSUPPORTED = {"mllama"}  # TRL's GRPOTrainer cannot pass Mllama's inputs
STRATEGY = {"mllama": "generate"}  # every other family samples with the engine
DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"
DTYPE = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if DEVICE != "cpu" \
    else "float32"


def families() -> list:
    return [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
            for name in FAMILIES]


TRAIN = ["--steps", 1, "--batch-size", 2, "--eval-every", 0, "--lr", 1e-2]
SFT = ["grad_norm_every=0", "max_length=null"]
GRPO = ["num_generations=2", "max_completion_length=6", "n_prompts=4"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory):
    saved: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in saved:
            saved[name] = save_family(name, tmp_path_factory.mktemp(name) / "ckpt")
        return saved[name]

    return get


def task_options(name: str) -> list[str]:
    image = FAMILIES[name].modality == "image"
    return ["-O", "prompt_style=compact", *(["-O", "modality=image"] if image else [])]


def run(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def ok(*args: object):
    result = run(*args)
    assert result.exit_code == 0, (args[:2], result.output[-2000:], result.exception)
    return result


def changed(before: Path, after: Path) -> list[str]:
    a, b = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    return [k for k in a if k in b and not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("name", FAST)
def test_every_command(name: str, checkpoints, tmp_path: Path) -> None:
    ckpt = checkpoints(name)
    opts = task_options(name)
    strategy = STRATEGY.get(name, "engine")

    ok("eval", "--model", ckpt, "--task", "generalpoints", *opts, "--splits", "test-id",
       "--n", 2, "--verify-iters", 2, "--out", tmp_path / "eval")
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["results"]["test-id"]["n"] == 2
    model = results["model"]
    assert (model["device"], model["dtype"], model["strategy"]) == (DEVICE, DTYPE, strategy)
    assert model["architecture"] == FAMILIES[name].architecture

    ok("difficulty", "--model", ckpt, "--task", "generalpoints", *opts, "--out",
       tmp_path / "difficulty", "--n", 4, "--k", 2, "--max-new-tokens", 6, "--no-progress",
       "--format", "jsonl")
    summary = json.loads((tmp_path / "difficulty" / "summary.json").read_text())
    assert summary["n"] == 4 and summary["model"]["dtype"] == DTYPE
    ok("curate", "--difficulty", tmp_path / "difficulty", "--variant", "all", "--out",
       tmp_path / "data.jsonl")

    train, sft = TRAIN, SFT
    ok("train", "sft", "--model", ckpt, "--data", tmp_path / "data.jsonl", "--out",
       tmp_path / "sft", *train, *sft)
    assert changed(ckpt, tmp_path / "sft" / "final"), "full SFT moved no parameter"
    run_info = json.loads((tmp_path / "sft" / "run.json").read_text())
    assert run_info["runtime"]["device"] == DEVICE.split(":")[0]
    ok("train", "sft", "--model", ckpt, "--data", tmp_path / "data.jsonl", "--out",
       tmp_path / "sft-lora", *train, *sft, "--lora", "lora_r=4", "lora_alpha=8",
       "merge_adapters=false")
    adapter = tmp_path / "sft-lora" / "final"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(ckpt.resolve())
    assert not (adapter / "model.safetensors").exists()

    grpo = ["--task", "generalpoints", *opts, *train, *GRPO]
    for kind in ("full", "lora"):
        lora = ["--lora", "lora_r=4", "lora_alpha=8"] if kind == "lora" else []
        result = run("train", "grpo", "--model", ckpt, "--out", tmp_path / f"grpo-{kind}",
                     *grpo, *lora)
        if name in GRPO_UNSUPPORTED:
            assert result.exit_code == 2 and "GRPOTrainer cannot train" in result.output
            continue
        assert result.exit_code == 0, (result.output[-2000:], result.exception)
        budget = json.loads((tmp_path / f"grpo-{kind}" / "budget.json").read_text())
        assert budget["steps_done"] == 1
        assert (tmp_path / f"grpo-{kind}" / "final" / "model.safetensors").exists()  # merged

    # The kept adapter is a model like any other: merged into its base when loaded.
    ok("eval", "--model", adapter, "--task", "generalpoints", *opts, "--splits", "test-id",
       "--n", 1, "--verify-iters", 1, "--out", tmp_path / "eval-adapter")
    model = json.loads((tmp_path / "eval-adapter" / "results.json").read_text())["model"]
    assert model["adapter_base"] == str(ckpt.resolve()) and model["strategy"] == strategy


@pytest.mark.parametrize("name", families())
def test_reproduce_with_a_model_key(name: str, checkpoints, tmp_path: Path) -> None:
    """The whole study from the family's checkpoint, LoRA arms kept as adapter directories;
    for the families `test_every_command` does not run, the commands the study leaves out."""
    ckpt = checkpoints(name)
    image = FAMILIES[name].modality == "image"
    arms = "[sft-all]" if name in GRPO_UNSUPPORTED else "[sft-all,grpo]"
    words = [
        f"model={ckpt}", "task=generalpoints",
        "task_options={prompt_style: compact" + (", modality: image}" if image else "}"),
        "seeds=[0]", "difficulty_n=4", "k=2", f"arms={arms}", "hard_ratios=[]", "steps=1",
        "batch_size=2", "eval_every=1", "eval_n=1", "eval_splits=[test-id]",
        "sft_lrs=[1e-3]", "grpo_lrs=[1e-3]", "lora=true", "merge_adapters=false",
        "grpo={num_generations: 2, max_completion_length: 6}",
        "sft={max_length: null, grad_norm_every: 0, lora_r: 4, lora_alpha: 8}",
    ]
    out = tmp_path / "study"
    ok("reproduce", "--preset", "tiny-gp-text", "--quick", "--out", out, *words)
    report = (out / "report.md").read_text()
    for arm in ("init", *arms.strip("[]").split(",")):
        assert f"| {arm} |" in report, arm
        final = out / "start-0" / "runs" / arm / "seed-0" / "final"
        if arm != "init":
            assert (final / "adapter_config.json").is_file()
    difficulty = json.loads((out / "start-0" / "difficulty" / "summary.json").read_text())
    assert difficulty["model"]["path"] == str(ckpt)
    assert difficulty["model"]["strategy"] == STRATEGY.get(name, "engine")
    start = out / "start-0"
    init_eval = start / "runs" / "init" / "seed-0" / "test" / "step-0"
    init = json.loads((init_eval / "results.json").read_text())
    assert (init["model"]["device"], init["model"]["dtype"]) == (DEVICE, DTYPE)
    if name in FAST:
        return

    opts = task_options(name)
    adapter = start / "runs" / "sft-all" / "seed-0" / "final"
    ok("eval", "--model", adapter, "--task", "generalpoints", *opts, "--splits", "test-id",
       "--n", 1, "--verify-iters", 1, "--out", tmp_path / "eval-adapter")
    model = json.loads((tmp_path / "eval-adapter" / "results.json").read_text())["model"]
    assert model["adapter_base"] == str(ckpt.resolve())
    assert model["strategy"] == STRATEGY.get(name, "engine")
    ok("train", "sft", "--model", ckpt, "--data", start / "data" / "sft-all.jsonl", "--out",
       tmp_path / "sft", *TRAIN, *SFT)
    assert changed(ckpt, tmp_path / "sft" / "final"), "full SFT moved no parameter"
    ok("train", "grpo", "--model", ckpt, "--out", tmp_path / "grpo", "--task", "generalpoints",
       *opts, *TRAIN, *GRPO)
    assert (tmp_path / "grpo" / "final" / "model.safetensors").exists()


def test_mllama_sft_batches_get_the_whole_sequences_cross_attention_mask() -> None:
    """TRL's collator leaves Mllama's cross-attention mask at the prompt's length; gengap's
    wrapper gives every token of prompt + completion the mask the processor gives the whole
    text."""
    from PIL import Image
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from gengap.models.compat import adapt_sft_collator
    from gengap.models.families import build_family

    model, processor = build_family("mllama")
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "24"}]}]
    completion = [{"role": "assistant", "content": "10+10+4"}]
    image = Image.new("RGB", (56, 28), "red")  # two tiles
    inner = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    collator = adapt_sft_collator(inner, model, processor)
    batch = collator([{"prompt": prompt, "completion": completion, "images": [image]}])
    text = processor.apply_chat_template(prompt + completion, tokenize=False)
    whole = processor(text=[text], images=[[image]], return_tensors="pt",
                      add_special_tokens=False)
    assert torch.equal(batch["input_ids"], whole["input_ids"])
    assert torch.equal(batch["cross_attention_mask"], whole["cross_attention_mask"])
    with torch.no_grad():
        model(**{k: v for k, v in batch.items() if k not in ("completion_mask",)})
