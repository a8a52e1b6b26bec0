"""`--task dataset`: every loader format, the column mapping, splits, ids and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gengap.cli import app
from gengap.errors import InputError
from gengap.tasks import build_task


def task(path: Path | str, **options):
    return build_task("dataset", {"path": str(path), **options})


def rows(n: int = 40, ood: int = 8) -> list[dict]:
    out = [{"question": f"q{i}?", "answer": f"a{i % 4}",
            "split": "train" if i < n * 3 // 4 else "test"} for i in range(n)]
    return out + [{"question": f"far{i}?", "answer": "b", "split": "far"} for i in range(ood)]


def write_jsonl(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return path


def image(colour: tuple[int, int, int], size: int = 20) -> Image.Image:
    return Image.new("RGB", (size, size + 4), colour)


# -- formats ---------------------------------------------------------------------------------


def test_jsonl_splits_sizes_and_samples(tmp_path: Path) -> None:
    t = task(write_jsonl(tmp_path / "d.jsonl", rows()))
    sizes = {s.name: (s.role, s.size, s.axis) for s in t.splits.values()}
    # 30 train rows: a quarter (7) is the warmup slice; every other split value is OOD
    assert sizes == {"warmup": ("warmup", 7, None), "train": ("train", 23, None),
                     "test": ("test", 10, None), "far": ("ood", 8, "far")}
    s = t.sample("test", 0)
    assert s.fields["question"].startswith("q") and s.answer.startswith("a")
    assert t.messages(s) == [{"role": "user", "content": s.fields["question"]}]
    assert t.modality == "text" and t.images(s) == [] and t.target(s) == s.answer
    assert t.verify(s, f"  {s.answer.upper()}. ").correct
    with pytest.raises(InputError, match="10 samples"):
        t.sample("test", 10)
    # splits are disjoint and cover the mapped rows
    ids = [t.sample(n, i).id for n, sp in t.splits.items() for i in range(sp.size)]
    assert len(ids) == len(set(ids)) == 48


def test_warmup_ood_rows_leave_the_ood_split(tmp_path: Path) -> None:
    plain = task(write_jsonl(tmp_path / "d.jsonl", rows()))
    t = task(tmp_path / "d.jsonl", warmup_ood=3)
    assert t.splits["far"].size == 5 and t.splits["warmup"].size == 7 + 3
    warm = {t.sample("warmup", i).id for i in range(10)}
    far = {t.sample("far", i).id for i in range(5)}
    assert not warm & far
    assert far | (warm - {plain.sample("warmup", i).id for i in range(7)}) == {
        plain.sample("far", i).id for i in range(8)}
    with pytest.raises(InputError, match="leaves OOD split 'far' empty"):
        task(tmp_path / "d.jsonl", warmup_ood=8)


def test_parquet_file_and_a_directory_of_split_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = rows()
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "d.parquet")
    assert task(tmp_path / "d.parquet").splits["test"].size == 10
    folder = tmp_path / "files"
    folder.mkdir()
    for split in ("train", "test", "sketch"):
        write_jsonl(folder / f"{split}.jsonl",
                    [{"prompt": f"{split} {i}", "answer": "x"} for i in range(8)])
    t = task(folder, ood=["sketch:style"], warmup_size=0)
    assert {n: (s.role, s.size, s.axis) for n, s in t.splits.items()} == {
        "train": ("train", 8, None), "test": ("test", 8, None), "sketch": ("ood", 8, "style")}
    assert t.sample("sketch", 3).fields["question"].startswith("sketch ")


def test_saved_hf_dataset_dict_with_images(tmp_path: Path) -> None:
    import datasets

    def part(n: int, colour: tuple[int, int, int]) -> datasets.Dataset:
        return datasets.Dataset.from_dict({
            "question": ["What colour?"] * n, "label": ["red"] * n,
            "image": [image(colour) for _ in range(n)]},
            features=datasets.Features({"question": datasets.Value("string"),
                                        "label": datasets.Value("string"),
                                        "image": datasets.Image()}))

    datasets.DatasetDict({"train": part(12, (200, 0, 0)), "test": part(4, (0, 0, 200))}
                         ).save_to_disk(str(tmp_path / "hf"))
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "hf").rglob("*"))
    t = task(tmp_path / "hf", image_size=12)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "hf").rglob("*")) == files
    assert t.modality == "image" and t.splits["test"].size == 4
    s = t.sample("test", 1)
    assert t.messages(s)[0]["content"][0] == {"type": "image"}
    (picture,) = t.images(s)
    assert max(picture.size) == 12 and picture.getpixel((5, 5))[2] > 150  # the blue test image


def test_saved_hf_dataset_class_labels_are_names(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict(
        {"question": ["q"] * 6, "label": [0, 1, 0, 1, 0, 1], "split": ["train"] * 4 + ["test"] * 2},
        features=datasets.Features({"question": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["cat", "dog"]),
                                    "split": datasets.Value("string")}),
    ).save_to_disk(str(tmp_path / "hf"))
    t = task(tmp_path / "hf", warmup_size=0)
    assert {t.sample("train", i).answer for i in range(4)} == {"cat", "dog"}


def test_image_folder_flat_and_with_split_folders(tmp_path: Path) -> None:
    for name, colour in (("cat", (255, 0, 0)), ("dog", (0, 255, 0)), ("fox", (0, 0, 255))):
        (tmp_path / "flat" / name).mkdir(parents=True)
        for i in range(10):
            image(colour).save(tmp_path / "flat" / name / f"{i}.png")
        for split in ("train", "test"):
            (tmp_path / "split" / split / name).mkdir(parents=True)
            for i in range(4 if split == "train" else 2):
                image(colour).save(tmp_path / "split" / split / name / f"{i}.png")
    flat = task(tmp_path / "flat")
    assert flat.modality == "image"
    assert sum(s.size for s in flat.splits.values()) == 30
    assert flat.splits["test"].description.endswith("held out by hash")
    s = flat.sample("test", 0)
    assert s.id.startswith(s.answer + "/") and s.answer in ("cat", "dog", "fox")
    assert "one word" in s.fields["question"]
    # the warmup slice goes class by class: 24 train rows -> 6 warmup rows, 2 of each class
    warm = [flat.sample("warmup", i).answer for i in range(flat.splits["warmup"].size)]
    assert sorted(warm) == ["cat", "cat", "dog", "dog", "fox", "fox"]
    split = task(tmp_path / "split", warmup_size=0)
    assert {n: s.size for n, s in split.splits.items()} == {"train": 12, "test": 6}
    assert split.sample("test", 0).id.startswith("test/")


def test_image_paths_in_jsonl_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    image((0, 0, 0)).save(tmp_path / "img" / "a.png")
    image((255, 255, 255)).save(tmp_path / "img" / "b.png")
    data = [{"prompt": "Which is brighter?", "images": ["img/a.png", "img/b.png"],
             "answer": "B", "split": s} for s in ["train"] * 4 + ["test"] * 2]
    t = task(write_jsonl(tmp_path / "pairs.jsonl", data), scorer="choice", warmup_size=0)
    s = t.sample("test", 0)
    assert [p.get("type") for p in t.messages(s)[0]["content"]] == ["image", "image", "text"]
    assert [im.getpixel((0, 0)) for im in t.images(s)] == [(0, 0, 0), (255, 255, 255)]
    assert t.verify(s, "The answer is (B).").correct and not t.verify(s, "A").correct
    before = t.data_fingerprint()
    image((9, 9, 9)).save(tmp_path / "img" / "b.png")  # an image the file points at changed
    assert task(tmp_path / "pairs.jsonl", scorer="choice", warmup_size=0).data_fingerprint() \
        != before


# -- mapping, ids, rows ----------------------------------------------------------------------


def test_column_mapping_target_category_and_instruction(tmp_path: Path) -> None:
    data = [{"uid": f"u{i}", "q": f"{i}+1", "gold": str(i + 1), "why": f"{i}+1={i + 1}",
             "part": "tr" if i < 8 else "te", "kind": "odd" if i % 2 else "even"}
            for i in range(12)]
    t = task(write_jsonl(tmp_path / "m.jsonl", data), id_column="uid", prompt_column="q",
             answer_column="gold", split_column="part", train="tr", test="te",
             target_column="why", category_column="kind", instruction="Answer briefly.",
             warmup_size=2)
    s = t.sample("test", 0)
    assert s.id in {"u8", "u9", "u10", "u11"}
    assert s.fields["question"].endswith("\nAnswer briefly.")
    assert t.target(s) == data[int(s.id[1:])]["why"]
    assert t.categories(s) == {"category": data[int(s.id[1:])]["kind"]}
    assert t.report_by == ("category",)
    assert t.splits["train"].size == 6


def test_ids_hash_stably_and_duplicates_are_told_apart(tmp_path: Path) -> None:
    data = rows() + [rows()[0]]  # one exact duplicate row
    a, b = task(write_jsonl(tmp_path / "a.jsonl", data)), task(write_jsonl(tmp_path / "b.jsonl",
                                                                           data))
    ids_a = sorted(a.sample(n, i).id for n, sp in a.splits.items() for i in range(sp.size))
    ids_b = sorted(b.sample(n, i).id for n, sp in b.splits.items() for i in range(sp.size))
    assert ids_a == ids_b and len(set(ids_a)) == 49
    assert all(i.startswith("h") for i in ids_a) and any(i.endswith("~2") for i in ids_a)
    dup = [{"id": "x", "prompt": "p", "answer": "a", "split": "train"}] * 2
    with pytest.raises(InputError, match="'x' occurs twice"):
        task(write_jsonl(tmp_path / "dup.jsonl", dup))


def test_rows_round_trip_and_a_changed_file_is_caught(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", rows())
    t = task(path)
    s = t.sample("far", 2)
    assert t.sample_from_row(json.loads(json.dumps(t.row(s)))) == s
    before = t.data_fingerprint()
    write_jsonl(path, [{**r, "question": r["question"] + "!"} for r in rows()])
    changed = task(path)
    assert changed.data_fingerprint() != before
    with pytest.raises(InputError, match="not sample 2 of split 'far'"):
        changed.sample_from_row(t.row(s))


def test_coldstart_recipe_scales_and_characters_are_covered(tmp_path: Path) -> None:
    from gengap.coldstart import resolve_recipe, task_characters

    data = [{"prompt": f"Übersetze {i}", "answer": "ça va ✓", "split": s}
            for i, s in enumerate(["train"] * 8 + ["test"] * 2)]
    t = task(write_jsonl(tmp_path / "u.jsonl", data), coldstart_scale=0.1)
    recipe = resolve_recipe(t)
    assert [p.steps for p in recipe.phases] == [20, 5] and recipe.data == t.data_fingerprint()
    assert {"Ü", "ç", "✓"} <= set(task_characters(t, 0))
    # a character only the last of 300 train rows uses is covered too
    many = [{"prompt": f"p{i}" + ("Ж" if i == 299 else ""), "answer": "x", "split": "train"}
            for i in range(300)] + [{"prompt": "t", "answer": "x", "split": "test"}]
    big = task(write_jsonl(tmp_path / "many.jsonl", many), warmup_size=0, shuffle=False)
    assert "Ж" in task_characters(big, 0)


# -- errors ------------------------------------------------------------------------------------


def test_clear_errors(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "d.jsonl", rows())
    with pytest.raises(InputError, match="no such file or directory"):
        task(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="columns there are: question, answer, split"):
        task(good, answer_column="label")
    with pytest.raises(InputError, match="did you mean 'math'"):
        task(good, scorer="maths")
    with pytest.raises(InputError, match="split values there are: far, test, train"):
        task(good, test="dev")
    with pytest.raises(InputError, match=r"no rows with split 'near'"):
        task(good, ood=["near"])
    (tmp_path / "bad.jsonl").write_bytes(b'{"prompt": "a", "answer": "b"}\n{"prompt": "\xff"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2") as info:
        task(tmp_path / "bad.jsonl")
    assert "UTF-8" in str(info.value)
    (tmp_path / "torn.jsonl").write_text('{"prompt": "a", "answer": "b"}\n{"prompt": \n')
    with pytest.raises(InputError, match=r"torn\.jsonl:2"):
        task(tmp_path / "torn.jsonl")
    with pytest.raises(InputError, match="row has no 'answer'"):
        task(write_jsonl(tmp_path / "na.jsonl", [{"prompt": "p", "answer": "a"}, {"prompt": "q"}]))
    with pytest.raises(InputError, match="is not a choice letter"):
        task(good, scorer="choice")
    with pytest.raises(InputError, match="is not a box"):
        task(good, scorer="iou")
    boxes = [{"prompt": "where?", "answer": [1, 2, 30, 40], "split": s}
             for s in ["train"] * 4 + ["test"] * 2]
    located = task(write_jsonl(tmp_path / "boxes.jsonl", boxes), scorer="iou")
    assert located.verify(located.sample("test", 0), "[1, 2, 30, 41]").metrics["iou"] > 0.9
    with pytest.raises(InputError, match="needs a pattern"):
        task(good, scorer="regex")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no rows"):
        task(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="leaves no training rows"):
        task(good, warmup_size=30)


def test_cli_errors_exit_2_and_data_export(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "d.jsonl", rows())
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--model", "tiny", "--task", "dataset", "-O",
                                 f"path={good}", "--splits", "test", "--n", "11",
                                 "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "holds 10 samples" in result.output
    result = runner.invoke(app, ["tasks", "--task", "dataset", "-O", f"path={good}",
                                 "-O", "scorer=exacct"])
    assert result.exit_code == 2 and "did you mean 'exact'" in result.output
    result = runner.invoke(app, ["data", "--task", "dataset", "-O", f"path={good}", "--split",
                                 "far", "--out", str(tmp_path / "far.jsonl")])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in (tmp_path / "far.jsonl").read_text().splitlines()]
    assert len(exported) == 8 and exported[0]["sft_target"] == "b"
    scored = tmp_path / "c.jsonl"
    write_jsonl(scored, [{**exported[0], "completion": "B."}, {**exported[1], "completion": "c"}])
    result = runner.invoke(app, ["score", "--task", "dataset", "-O", f"path={good}", "--input",
                                 str(scored), "--output", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in out] == [True, False]


def test_math_and_regex_scorers_through_the_task(tmp_path: Path) -> None:
    pytest.importorskip("math_verify")
    data = [{"problem": f"Half of {2 * i}?", "solution": str(i), "split": s}
            for i, s in enumerate(["train"] * 4 + ["test"] * 2)]
    path = write_jsonl(tmp_path / "m.jsonl", data)
    t = task(path, scorer="math", prompt_column="problem", answer_column="solution")
    s = t.sample("test", 0)
    assert t.verify(s, f"<think>easy</think><answer>{s.answer}.0</answer>").correct
    assert not t.verify(s, "<answer>-1</answer>").correct
    r = task(path, scorer="regex", pattern=r"= *(\d+)", prompt_column="problem",
             answer_column="solution")
    assert r.verify(s, f"x = {s.answer}").correct and not r.verify(s, s.answer).correct
