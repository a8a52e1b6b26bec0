"""Training arms: SFT and GRPO on a tiny model, LoRA, run files, curves, budgets, sweeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from gengap.cli import app
from gengap.config import load_recipe
from gengap.errors import InputError
from gengap.tasks.registry import get_task
from gengap.train import GRPORecipe, SFTRecipe, train_grpo, train_sft
from gengap.train.grpo import difficulty_filter, grpo_flops, make_reward
from gengap.train.sweep import pick_lr, validation_indices

TASK_OPTIONS = ["task=generalpoints", "task_options.modality=text",
                "task_options.prompt_style=compact"]
BUCKETS = ("easy", "medium", "hard")


@pytest.fixture(scope="module")
def task() -> Any:
    return get_task("generalpoints", modality="text", prompt_style="compact")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~90k-parameter char-level Qwen2 saved like any HF checkpoint."""
    from conftest import save_tiny_text

    return save_tiny_text(tmp_path_factory.mktemp("tiny"), hidden_size=64,
                          intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=2)


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory, task: Any) -> Path:
    """A curated-format file: conversational prompt/completion + id, index, bucket, pass_rate."""
    path = tmp_path_factory.mktemp("data") / "curated.jsonl"
    with path.open("w") as f:
        for i in range(24):
            sample = task.sample("train", i, 0)
            f.write(json.dumps({
                "id": sample.id, "index": i, "prompt": task.messages(sample),
                "completion": [{"role": "assistant", "content": task.target(sample)}],
                "bucket": BUCKETS[i % 3], "pass_rate": (1.0, 0.5, 0.0)[i % 3],
            }) + "\n")
    return path


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory, tiny: Path, sft_data: Path) -> Path:
    """The tiny model after a short SFT: it writes formula-like answers, so GRPO groups get
    different rewards (a random model's completions are all 'illegal', a zero-variance group)."""
    out = tmp_path_factory.mktemp("warm") / "run"
    return train_sft(sft_recipe(tiny, sft_data, out, "eval_every=0", "grad_norm_every=0",
                                "save_every=100", "learning_rate=1e-2", steps=20)).final_model


def fake_eval(model: Any, processor: Any, step: int) -> dict[str, dict[str, float]]:
    return {"test-id": {"success": step / 100, "n": 2},
            "test-ood-rule": {"success": step / 200, "n": 2}}


def sft_recipe(tiny: Path, data: Path, out: Path, *extra: str, **explicit: Any) -> SFTRecipe:
    overrides = ["batch_size=8", "learning_rate=3e-3", "logging_steps=1", "save_every=2",
                 "grad_norm_every=2", "grad_norm_probe=4", *TASK_OPTIONS, *extra]
    return load_recipe(SFTRecipe, None, overrides, model=str(tiny), data=str(data),
                       out=str(out), **{"steps": 4, **explicit})


def grpo_recipe(tiny: Path, out: Path, *extra: str, **explicit: Any) -> GRPORecipe:
    overrides = ["batch_size=2", "num_generations=4", "n_prompts=16", "learning_rate=1e-2",
                 "logging_steps=1", "save_every=2", *TASK_OPTIONS, *extra]
    return load_recipe(GRPORecipe, None, overrides, model=str(tiny), out=str(out),
                       **{"steps": 2, **explicit})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return dict(AutoModelForCausalLM.from_pretrained(path).state_dict())


def completion_loss(model_dir: Path, data: Path) -> float:
    """Mean completion-token loss of a model on the (whole, small) training file."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    losses = []
    for line in data.read_text().splitlines():
        row = json.loads(line)
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                               tokenize=False)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False, return_tensors="pt").input_ids
        labels = ids.clone()
        labels[0, : len(tokenizer(prompt, add_special_tokens=False).input_ids)] = -100
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


# ------------------------------------------------------------------------------------------
# Fast pieces


def test_reward_finds_the_sample_and_scores_it(task: Any) -> None:
    from gengap.train.grpo import INDEX_COLUMN, prompt_rows

    samples = [task.sample("train", i, 0) for i in range(2)]
    rows = prompt_rows(task, samples)
    # Trainer rows hold TRL's columns and one key, never the task's fields: a task whose
    # samples carry a `prompt` field cannot collide with TRL's `prompt` column.
    assert set(rows[0]) == {"prompt", INDEX_COLUMN}
    columns = {INDEX_COLUMN: [r[INDEX_COLUMN] for r in rows]}
    metrics: dict[str, float] = {}
    completions = [[{"role": "assistant", "content": task.target(samples[0])}],
                   [{"role": "assistant", "content": "nonsense"}]]
    shaped = make_reward(task, samples, "shaped")
    binary = make_reward(task, samples, "binary")
    got = shaped(prompts=[None, None], completions=completions,
                 log_metric=metrics.__setitem__, **columns)
    assert got == [task.verify(samples[0], task.target(samples[0])).reward,
                   task.verify(samples[1], "nonsense").reward]
    assert got[0] > got[1] and metrics["accuracy"] == 0.5
    assert binary(prompts=[None, None], completions=completions, **columns) == [1.0, 0.0]
    assert shaped.__name__ == "generalpoints_shaped"
    with pytest.raises(InputError):
        make_reward(task, samples, "dense")


def write_difficulty_run(path: Path, rates: dict[int, float], **config: Any) -> Path:
    """A finished `gengap difficulty` directory in its on-disk format (config + records)."""
    path.mkdir(parents=True)
    stored = {"task": "generalpoints", "split": "train", "data_seed": 0, "k": 8, **config}
    (path / "config.json").write_text(json.dumps({"fingerprint": "x", "shards": 1,
                                                  "config": stored}))
    with (path / "difficulty.jsonl").open("w") as f:
        for index, rate in rates.items():
            f.write(json.dumps({"index": index, "id": f"generalpoints/train/{index}",
                                "pass_rate": rate, "bucket": "x"}) + "\n")
    return path


def test_difficulty_filter_drops_pass_rate_0_and_1(tmp_path: Path) -> None:
    run = write_difficulty_run(tmp_path / "diff", {0: 1.0, 1: 0.5, 2: 0.0, 3: 0.125, 4: 1.0})
    ids = [f"generalpoints/train/{i}" for i in range(6)]
    drop, info = difficulty_filter(run, ids, task="generalpoints", split="train", data_seed=0)
    assert drop == {"generalpoints/train/0", "generalpoints/train/2", "generalpoints/train/4"}
    assert info["dropped_easy"] == 2 and info["dropped_hard"] == 1
    assert info["prompts_after"] == 3 and info["not_estimated"] == 1
    assert info["zero_variance_share_before"] == pytest.approx(3 / 5)
    with pytest.raises(InputError, match="data_seed"):
        difficulty_filter(run, ids, task="generalpoints", split="train", data_seed=1)


def test_flops_estimates() -> None:
    recipe = load_recipe(GRPORecipe, None, [], model="tiny", out="x")
    assert grpo_flops(10, recipe)(100) == {"generation": 2000.0, "reference": 2000.0,
                                           "training": 6000.0}
    no_kl = load_recipe(GRPORecipe, None, ["beta=0", "lora=true"], model="tiny", out="x")
    assert grpo_flops(10, no_kl)(100) == {"generation": 2000.0, "training": 4000.0}


def test_validation_prompts_never_overlap_training(tmp_path: Path, sft_data: Path,
                                                   task: Any) -> None:
    grpo = load_recipe(GRPORecipe, None, ["n_prompts=50"], model="tiny", out="x")
    assert validation_indices(grpo, 10, None, task) == ("train", 0, range(50, 60))
    with pytest.raises(InputError, match="overlaps"):
        validation_indices(grpo, 10, 40, task)
    sft = load_recipe(SFTRecipe, None, [], model="tiny", out="x", data=str(sft_data))
    assert validation_indices(sft, 5, None, task) == ("train", 0, range(24, 29))


def test_a_run_dir_with_another_recipe_is_refused(tmp_path: Path, tiny: Path,
                                                  sft_data: Path) -> None:
    out = tmp_path / "run"
    first = sft_recipe(tiny, sft_data, out, "learning_rate=0.5")
    from gengap.train.common import resolve_task, run_dir

    run_dir(resolve_task(first)[0], "sft").claim()
    (out / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(InputError, match=r"different settings.*learning_rate: 0.5 -> 0.003"):
        train_sft(sft_recipe(tiny, sft_data, out))


# ------------------------------------------------------------------------------------------
# Real training on the tiny model (a few seconds each)


def test_sft_trains_and_writes_the_run_files(tmp_path: Path, tiny: Path, sft_data: Path) -> None:
    out = tmp_path / "sft"
    result = train_sft(sft_recipe(tiny, sft_data, out, "eval_every=2"), eval_fn=fake_eval)

    before, after = weights(tiny), weights(result.final_model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert completion_loss(result.final_model, sft_data) < completion_loss(tiny, sft_data)

    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and run["kind"] == "sft" and "git_commit" in run
    assert {"torch", "transformers", "trl"} <= set(run["versions"])
    assert run["config"]["learning_rate"] == pytest.approx(3e-3)
    assert "learning_rate: 0.003" in (out / "recipe.yaml").read_text()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    assert [(r["step"], r["split"]) for r in result.curve] == [
        (s, split) for s in (0, 2, 4) for split in ("test-id", "test-ood-rule")]
    assert result.curve[-2]["success"] == pytest.approx(0.04)  # test-id at step 4

    budget = json.loads((out / "budget.json").read_text())
    assert budget == result.budget
    assert budget["steps_done"] == 4 and budget["prompts_per_step"] == 8
    assert budget["epochs"] == pytest.approx(4 * 8 / 24, abs=1e-3)
    assert budget["tokens"] > 0 and budget["wall_seconds"] > 0
    assert budget["flops"]["training"] == 6 * budget["parameters"] * budget["tokens"]
    assert budget["learning_rate"] == pytest.approx(3e-3)
    assert budget["buckets"] == {"easy": 8, "medium": 8, "hard": 8}

    norms = [json.loads(line) for line in (out / "grad_norms.jsonl").read_text().splitlines()]
    assert {(r["step"], r["bucket"]) for r in norms} == {
        (s, b) for s in (0, 2, 4) for b in BUCKETS}
    assert all(r["grad_norm"] > 0 and r["rows"] == 4 for r in norms)

    # A finished run is returned as it is, not trained again.
    mtime = (out / "final" / "model.safetensors").stat().st_mtime
    again = train_sft(sft_recipe(tiny, sft_data, out, "eval_every=2"), eval_fn=fake_eval)
    assert again.budget == budget
    assert (out / "final" / "model.safetensors").stat().st_mtime == mtime


def test_sft_lora_trains_only_adapters(tmp_path: Path, tiny: Path, sft_data: Path) -> None:
    recipe = sft_recipe(tiny, sft_data, tmp_path / "lora", "lora=true", "lora_r=4",
                        "lora_alpha=8", "eval_every=0", "grad_norm_every=0", steps=2)
    result = train_sft(recipe)
    budget = result.budget
    assert 0 < budget["trainable_parameters"] < budget["parameters"] / 5
    assert budget["flops"]["training"] == 4 * budget["parameters"] * budget["tokens"]
    before, after = weights(tiny), weights(result.final_model)  # adapters merged on save
    assert set(before) == set(after)
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert torch.equal(before["model.norm.weight"], after["model.norm.weight"])
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"],
                           after["model.layers.0.self_attn.q_proj.weight"])
    assert not (tmp_path / "lora" / "curve.jsonl").exists()


@pytest.mark.slow
def test_grpo_trains_with_the_task_reward(tmp_path: Path, warm: Path) -> None:
    out = tmp_path / "grpo"
    result = train_grpo(grpo_recipe(warm, out, "eval_every=2", "reward=shaped"),
                        eval_fn=fake_eval)
    before, after = weights(warm), weights(result.final_model)
    # The first on-policy step has loss ~0 by construction: check that weights moved instead.
    assert any(not torch.equal(before[k], after[k]) for k in before)
    logs = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    steps = [log for log in logs if "frac_reward_zero_std" in log]
    assert len(steps) == 2 and all(0 <= log["frac_reward_zero_std"] <= 1 for log in steps)
    assert "rewards/generalpoints_shaped/mean" in steps[0] and "accuracy" in steps[0]
    budget = result.budget
    assert budget["frac_reward_zero_std"] == pytest.approx(
        sum(log["frac_reward_zero_std"] for log in steps) / 2, abs=1e-4)
    assert budget["completions_per_step"] == 8 and budget["epochs"] == pytest.approx(2 * 2 / 16)
    assert set(budget["flops"]) == {"generation", "reference", "training", "total"}
    assert [r["step"] for r in result.curve] == [0, 0, 2, 2]


def test_grpo_filter_by_difficulty(tmp_path: Path, tiny: Path) -> None:
    rates = {i: (1.0, 0.5, 0.0, 0.25)[i % 4] for i in range(16)}
    run = write_difficulty_run(tmp_path / "diff", rates)
    out = tmp_path / "grpo"
    result = train_grpo(grpo_recipe(tiny, out, "eval_every=0", f"filter_by_difficulty={run}",
                                    steps=1))
    info = json.loads((out / "difficulty_filter.json").read_text())
    assert info["prompts_before"] == 16 and info["prompts_after"] == 8
    assert info["dropped_easy"] == 4 and info["dropped_hard"] == 4
    assert result.budget["dataset_rows"] == 8 and result.budget["difficulty_filter"] == info
    everything = write_difficulty_run(tmp_path / "all-solved", dict.fromkeys(range(16), 1.0))
    with pytest.raises(InputError, match="dropped every prompt"):
        train_grpo(grpo_recipe(tiny, tmp_path / "none", f"filter_by_difficulty={everything}"))


def test_checkpoint_eval_runs_gengap_eval(tmp_path: Path, tiny: Path, sft_data: Path) -> None:
    out = tmp_path / "sft"
    result = train_sft(sft_recipe(tiny, sft_data, out, "eval_n=2", "grad_norm_every=0",
                                  steps=2))
    assert [(r["step"], r["split"]) for r in result.curve] == [
        (0, "test-id"), (0, "test-ood-rule"), (2, "test-id"), (2, "test-ood-rule")]
    assert all(0 <= r["success"] <= 1 and r["n"] == 2 for r in result.curve)
    assert (out / "eval" / "step-2" / "results.json").is_file()


def test_cli_train_sft(tmp_path: Path, tiny: Path, sft_data: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "train", "sft", "--model", str(tiny), "--data", str(sft_data), "--steps", "1",
        "--out", str(out), "--lr", "1e-3", "--batch-size", "4", "eval_every=0",
        "grad_norm_every=0", *TASK_OPTIONS])
    assert result.exit_code == 0, result.output
    assert "sft: 1 steps" in result.output
    assert (out / "final" / "config.json").is_file()


@pytest.mark.slow
def test_pick_lr_records_every_candidate(tmp_path: Path, tiny: Path, sft_data: Path) -> None:
    recipe = sft_recipe(tiny, sft_data, tmp_path / "unused", "eval_every=0",
                        "grad_norm_every=0")
    sweep = pick_lr(recipe, [1e-4, 3e-3], tmp_path / "sweep", val_n=4, steps=2)
    stored = json.loads((tmp_path / "sweep" / "lr_sweep.json").read_text())
    assert stored["picked"] == sweep["picked"] in (1e-4, 3e-3)
    assert [r["learning_rate"] for r in stored["results"]] == [1e-4, 3e-3]
    assert stored["validation"] == {"split": "train", "seed": 0, "start": 24, "n": 4,
                                    "rule": "ID", "decoding": "greedy, 1 attempt"}
    best = max(r["val_success"] for r in stored["results"])
    assert next(r for r in stored["results"] if r["learning_rate"] == sweep["picked"])[
        "val_success"] == best


@pytest.mark.slow
def test_image_task_sft_and_grpo(tmp_path: Path) -> None:
    """The tiny VLM trains with both trainers (images through TRL's `image` column)."""
    from gengap.models.tiny import build_tiny

    model, processor = build_tiny(
        "image", seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, vision_hidden_size=32,
        vision_intermediate_size=64, vision_num_hidden_layers=1, vision_num_attention_heads=2,
        vision_image_size=48, vision_patch_size=12)
    model.save_pretrained(tmp_path / "tiny")
    processor.save_pretrained(tmp_path / "tiny")
    task = get_task("generalpoints", modality="image", prompt_style="compact")
    (tmp_path / "images").mkdir()
    with (tmp_path / "data.jsonl").open("w") as f:
        for i in range(12):
            sample = task.sample("train", i, 0)
            task.images(sample)[0].save(tmp_path / "images" / f"{i}.png")
            f.write(json.dumps({
                "id": sample.id, "index": i, "prompt": task.messages(sample),
                "completion": [{"role": "assistant", "content": task.target(sample)}],
                "bucket": BUCKETS[i % 3], "image": f"images/{i}.png"}) + "\n")
    options = ["task=generalpoints", "task_options.modality=image",
               "task_options.prompt_style=compact", "eval_every=0", "save_every=2"]
    sft = train_sft(load_recipe(
        SFTRecipe, None, [*options, "grad_norm_every=2", "grad_norm_probe=2"],
        model=str(tmp_path / "tiny"), data=str(tmp_path / "data.jsonl"),
        out=str(tmp_path / "sft"), steps=2, batch_size=4))
    norms = (tmp_path / "sft" / "grad_norms.jsonl").read_text().splitlines()
    assert len(norms) == 6 and all(json.loads(r)["grad_norm"] > 0 for r in norms)
    grpo = train_grpo(load_recipe(
        GRPORecipe, None, [*options, "n_prompts=8", "num_generations=4"],
        model=str(sft.final_model), out=str(tmp_path / "grpo"), steps=2, batch_size=2))
    assert grpo.budget["steps_done"] == 2 and "frac_reward_zero_std" in grpo.budget
