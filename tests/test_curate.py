"""Curation: variant selection, output rows SFTTrainer accepts, images, provenance, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_difficulty import fake_factory, make_config

from gengap.difficulty.curate import curate, load_curated, meta_path, select
from gengap.difficulty.estimate import estimate_difficulty, load_records
from gengap.errors import InputError
from gengap.tasks.registry import get_task


def _difficulty_run(out: Path, n: int = 60, **options: str) -> Path:
    config = make_config(n=n)
    if options:
        config = replace(config, task_options={**config.task_options, **options})
    estimate_difficulty(config, out, chunk_size=16, sampler_factory=fake_factory(),
                        progress=False)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _difficulty_run(tmp_path_factory.mktemp("difficulty"))


@pytest.fixture(scope="module")
def records(run_dir) -> list[dict]:
    return load_records(run_dir)


def _count(rows, bucket):
    return sum(r["bucket"] == bucket for r in rows)


def test_bucket_variants(records):
    sizes = {b: _count(records, b) for b in ("easy", "medium", "hard")}
    assert all(sizes.values())
    assert len(select(records, "all").records) == len(records)
    assert select(records, "E").selected == {"easy": sizes["easy"], "medium": 0, "hard": 0}
    assert select(records, "m").selected["medium"] == sizes["medium"]  # case-insensitive
    assert select(records, "H").selected["hard"] == sizes["hard"]
    em = select(records, "EM").records
    assert len(em) == sizes["easy"] + sizes["medium"] and _count(em, "hard") == 0
    assert [r["index"] for r in em] == sorted(r["index"] for r in em)


def test_balanced_variants_cut_to_smallest_bucket(records):
    smallest = min(_count(records, b) for b in ("easy", "medium", "hard"))
    for letter, bucket in (("E", "easy"), ("M", "medium"), ("H", "hard")):
        chosen = select(records, f"balanced:{letter}", seed=1)
        assert len(chosen.records) == smallest == chosen.selected[bucket]
    same = select(records, "balanced:E", seed=1).records
    assert same == select(records, "balanced:E", seed=1).records
    others = [select(records, "balanced:E", seed=s).records for s in range(2, 8)]
    assert any(o != same for o in others)  # the seed decides the cut


def test_hard_share_is_the_share_of_the_result(records):
    em = _count(records, "easy") + _count(records, "medium")
    chosen = select(records, "EM+hard:0.2", seed=0)
    hard = chosen.selected["hard"]
    assert hard == round(0.2 * em / 0.8)
    assert chosen.selected["easy"] + chosen.selected["medium"] == em
    assert select(records, "EM+hard:0").selected["hard"] == 0
    with pytest.raises(InputError, match="largest share"):
        select(records, "EM+hard:0.9")


def test_pass_rate_band_is_strict(records):
    band = select(records, "all", min_rate=0.0, max_rate=1.0).records
    assert band == select(records, "M").records
    assert all(0.25 < r["pass_rate"] < 0.75 for r in
               select(records, "all", min_rate=0.25, max_rate=0.75).records)
    with pytest.raises(InputError):
        select(records, "all", min_rate=1.5)


def test_size_and_bad_variants(records):
    assert len(select(records, "all", size=7, seed=3).records) == 7
    with pytest.raises(InputError, match="--size"):
        select(records, "E", size=10_000)
    with pytest.raises(InputError, match="unknown variant"):
        select(records, "EMH")
    with pytest.raises(InputError, match="selects no samples"):
        select(records, "all", min_rate=0.99, max_rate=1.0)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_text_output_rows_and_provenance(run_dir, tmp_path, suffix):
    out = tmp_path / f"em{suffix}"
    meta = curate(run_dir, "EM", out, seed=0)
    data = load_curated(out)
    task = get_task("generalpoints", modality="text", prompt_style="compact")
    assert len(data) == meta["rows"] == meta["buckets_selected"]["easy"] + \
        meta["buckets_selected"]["medium"]
    for row in data:
        sample = task.sample("train", row["index"], 0)
        assert row["prompt"] == task.messages(sample)
        assert row["completion"] == [{"role": "assistant", "content": task.target(sample)}]
        assert task.verify(sample, row["completion"][0]["content"]).correct
        assert row["bucket"] in ("easy", "medium")
    stored = json.loads(meta_path(out).read_text())
    assert stored["variant"] == "EM" and stored["difficulty"]["k"] == 4
    assert stored["difficulty"]["fingerprint"] == json.loads(
        (run_dir / "config.json").read_text())["fingerprint"]


def test_unfinished_run_and_bad_extension(tmp_path, run_dir):
    with pytest.raises(InputError, match="not a difficulty run"):
        curate(tmp_path, "all", tmp_path / "x.jsonl")
    with pytest.raises(InputError, match=r"\.jsonl or \.parquet"):
        curate(run_dir, "all", tmp_path / "x.csv")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    return _difficulty_run(tmp_path_factory.mktemp("img"), n=12, modality="image")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_image_output_decodes_to_pil(image_run, tmp_path, suffix):
    out = tmp_path / "sub" / f"all{suffix}"
    curate(image_run, "all", out)
    data = load_curated(out)
    task = get_task("generalpoints", modality="image", prompt_style="compact")
    row = data[0]
    expected = task.images(task.sample("train", row["index"], 0))
    assert [im.size for im in row["images"]] == [im.size for im in expected]
    assert list(row["images"][0].getdata()) == list(expected[0].getdata())
    assert row["prompt"][0]["content"][0]["type"] == "image"
    if suffix == ".parquet":
        import datasets

        # Parquet needs no helper: the Image feature travels in the file.
        plain = datasets.load_dataset("parquet", data_files=str(out), split="train")
        assert plain[0]["images"][0].size == row["images"][0].size


def _train_two_steps(dataset, model, processor, tmp_path):
    import torch
    from trl import SFTConfig, SFTTrainer

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
                     use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                     logging_steps=1, learning_rate=1e-2, dataset_num_proc=None,
                     activation_checkpointing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                         processing_class=processor)
    trainer.train()
    changed = {name for name, p in model.named_parameters() if not torch.equal(before[name], p)}
    assert changed
    return changed


def test_sfttrainer_takes_text_file_as_is(run_dir, tmp_path):
    import datasets

    from gengap.models.tiny import build_tiny

    out = tmp_path / "em.parquet"
    curate(run_dir, "EM", out)
    dataset = datasets.load_dataset("parquet", data_files=str(out), split="train")
    model, tokenizer = build_tiny("text", seed=0, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=2)
    _train_two_steps(dataset, model, tokenizer, tmp_path)


def test_sfttrainer_takes_image_file(image_run, tmp_path):
    from gengap.models.tiny import build_tiny

    out = tmp_path / "all.jsonl"
    curate(image_run, "all", out)
    model, processor = build_tiny(
        "image", seed=0, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, vision_hidden_size=32,
        vision_intermediate_size=64, vision_num_hidden_layers=1, vision_num_attention_heads=2)
    changed = _train_two_steps(load_curated(out), model, processor, tmp_path)
    # The vision tower learns only if the images reached the model through the image column.
    assert any("vision_tower" in name for name in changed)
