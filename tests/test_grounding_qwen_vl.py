"""The study's family on its own task: a tiny random Qwen2.5-VL through gengap eval, difficulty,
curate, train sft and train grpo on grounding (paper prompts, answers in the processor's frame).

The tiny checkpoint's processor resizes every image to 56 x 56 px, so the task's ``qwen`` frame
is given the same min / max pixels; the test checks that frame against the processor's own
``image_grid_thw`` (a real processor size, not a formula copied into the test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gengap.cli import app
from gengap.tasks import get_task

PIXELS = 56 * 56
OPTS = ["-O", "prompt_style=paper", "-O", "frame=qwen", "-O", f"qwen_min_pixels={PIXELS}",
        "-O", f"qwen_max_pixels={PIXELS}", "-O", "image_size=224"]


def ok(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args[:2], result.output[-2000:], result.exception)
    return result


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from gengap.models.qwen_vl import build_tiny_qwen2_5_vl

    model, processor = build_tiny_qwen2_5_vl(seed=0, image_pixels=PIXELS)
    path = tmp_path_factory.mktemp("qwen25vl")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_the_qwen_frame_is_the_processors(checkpoint: Path) -> None:
    from gengap.models.loading import load_model

    task = get_task("grounding", prompt_style="paper", frame="qwen", qwen_min_pixels=PIXELS,
                    qwen_max_pixels=PIXELS, image_size=224)
    sample = task.sample("test", 0, 0)
    image = task.images(sample)[0]
    loaded = load_model(str(checkpoint))
    processor = loaded.processor
    grid = processor.image_processor(images=[image], return_tensors="np")["image_grid_thw"][0]
    patch = processor.image_processor.patch_size
    frame = task.verify(sample, sample.answer).info["frame_size"]
    assert frame == [int(grid[2]) * patch, int(grid[1]) * patch]


def test_qwen2_5_vl_eval_and_difficulty(checkpoint: Path, tmp_path: Path) -> None:
    ok("eval", "--model", checkpoint, "--task", "grounding", *OPTS, "--splits",
       "test,test-ood-relation", "--n", 2, "--out", tmp_path / "eval")
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    for split in ("test", "test-ood-relation"):
        r = results["results"][split]
        assert r["n"] == 2 and {"iou", "acc@0.5", "acc@0.75", "acc@0.9"} <= set(r)
    assert results["model"]["architecture"] == "Qwen2_5_VLForConditionalGeneration"
    assert results["task_identity"]["frame"].startswith("qwen: ")
    rows = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().split("\n")
            if x]
    assert rows[0]["verdicts"][0]["info"]["frame"] == "qwen"
    ok("difficulty", "--model", checkpoint, "--task", "grounding", *OPTS, "--out",
       tmp_path / "difficulty", "--n", 3, "--k", 2, "--max-new-tokens", 8, "--no-progress",
       "--format", "jsonl")
    summary = json.loads((tmp_path / "difficulty" / "summary.json").read_text())
    assert summary["n"] == 3


@pytest.mark.slow
def test_qwen2_5_vl_trains_sft_and_grpo(checkpoint: Path, tmp_path: Path) -> None:
    ok("difficulty", "--model", checkpoint, "--task", "grounding", *OPTS, "--out",
       tmp_path / "difficulty", "--n", 4, "--k", 2, "--max-new-tokens", 8, "--no-progress",
       "--format", "jsonl")
    ok("curate", "--difficulty", tmp_path / "difficulty", "--variant", "all", "--out",
       tmp_path / "data.jsonl")
    train = ["--steps", 1, "--batch-size", 2, "--eval-every", 0, "--lr", 1e-2]
    ok("train", "sft", "--model", checkpoint, "--data", tmp_path / "data.jsonl", "--out",
       tmp_path / "sft", *train, "grad_norm_every=0", "max_length=null")
    assert (tmp_path / "sft" / "final" / "model.safetensors").exists()
    ok("train", "grpo", "--model", checkpoint, "--out", tmp_path / "grpo", "--task",
       "grounding", *OPTS, *train, "num_generations=2", "max_completion_length=8",
       "n_prompts=4")
    budget = json.loads((tmp_path / "grpo" / "budget.json").read_text())
    assert budget["steps_done"] == 1
