"""Classification (DC-SFT's ImageNet task): scorer, class rule, loaders on fixtures written in
the real layouts, the rendered set, rows, and the study's family through every command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gengap.cli import app
from gengap.errors import InputError
from gengap.tasks import build_task, get_task
from gengap.tasks.classification import loaders
from gengap.tasks.classification.render import STYLES, render
from gengap.tasks.classification.shapes import SEEN_CLASSES, UNSEEN_CLASSES
from gengap.tasks.classification.task import PAPER_PROMPT, study_match


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


# -- the study's scorer and class rule ---------------------------------------------------------

@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("tench", "tench", True),
    ("Chihuahua", "Chihuahua", True),
    ("chihuahua", "Chihuahua", True),            # lowercased on both sides
    ("  CHIHUAHUA.\n", "Chihuahua", True),        # spaces, then the trailing dot
    ("...tench..", "tench", True),                # strip('.') takes dots at both ends
    ("tench .", "tench", False),                  # a space before the dot survives strip('.')
    (". tench", "tench", False),
    ("jack-o'-lantern", "jack-o'-lantern", True),
    ("jack o lantern", "jack-o'-lantern", False),
    ("tench fish", "tench", False),
    ("tench!", "tench", False),
    ("", "tench", False),
    ("Shih-Tzu", "shih-tzu.", True),              # the gold is normalised the same way
])
def test_study_scorer_case_by_case(prediction: str, gold: str, expected: bool) -> None:
    assert study_match(prediction, gold) is expected
    task = get_task("classification")
    sample = task.sample("test", 0, 0)
    sample = type(sample)(sample.id, sample.task, sample.split, 0, sample.fields, gold)
    verdict = task.verify(sample, prediction)
    assert verdict.correct is expected and verdict.reward == float(expected)


@pytest.mark.parametrize(("entry", "name"), [
    ("Chihuahua", "Chihuahua"), ("Shih-Tzu", "Shih-Tzu"), ("jack-o'-lantern", "jack-o'-lantern"),
    ("tench, Tinca tinca", None), ("sea lion", None), ("goldfish, Carassius auratus", None),
    ("  broccoli ", "broccoli"), ("", None),
])
def test_the_studys_class_rule(entry: str, name: str | None) -> None:
    assert loaders.single_word_name(entry) == name


# -- real-data fixtures in the real layouts ------------------------------------------------------

WNIDS = {"n02085620": "Chihuahua", "n02086240": "Shih-Tzu", "n01440764": "tench, Tinca tinca",
         "n03590841": "jack-o'-lantern", "n02123045": "tabby, tabby cat"}


def _picture(colour: tuple[int, int, int], size: tuple[int, int] = (90, 60)) -> Image.Image:
    return Image.new("RGB", size, colour)


def _folders(root: Path, classes: dict[str, int], *, spaces: bool = False) -> Path:
    for c, (wnid, count) in enumerate(classes.items()):
        (root / wnid).mkdir(parents=True)
        for i in range(count):
            name = f"{wnid}_{i}.JPEG" if not spaces else f"{i:04d} a photo of {wnid}.jpg"
            _picture((40 * c, 20 * i, 100)).save(root / wnid / name, format="JPEG")
    (root / ".DS_Store").write_text("junk")  # hidden files are skipped
    return root


def _mapping(path: Path) -> Path:
    path.write_text("".join(f"{k} {v}\n" for k, v in WNIDS.items()))
    return path


def test_mapping_formats(tmp_path: Path) -> None:
    txt = _mapping(tmp_path / "LOC_synset_mapping.txt")
    assert loaders.read_mapping(txt)["n01440764"] == "tench, Tinca tinca"
    index = tmp_path / "imagenet_class_index.json"
    index.write_text(json.dumps({"0": ["n01440764", "tench"], "1": ["n02085620", "Chihuahua"]}))
    assert loaders.read_mapping(index) == {"n01440764": "tench", "n02085620": "Chihuahua"}
    tsv = tmp_path / "names.tsv"
    tsv.write_text("wnid\tname\nn02085620\tChihuahua\n")
    assert loaders.read_mapping(tsv) == {"n02085620": "Chihuahua"}
    names = loaders.answer_names(loaders.read_mapping(txt), "single-word")
    assert names == {"n02085620": "Chihuahua", "n02086240": "Shih-Tzu",
                     "n03590841": "jack-o'-lantern"}
    assert loaders.answer_names(loaders.read_mapping(txt), "first")["n01440764"] == "tench"
    bad = tmp_path / "bad.txt"
    bad.write_text("n01440764\n")
    with pytest.raises(InputError, match="no class name"):
        loaders.read_mapping(bad)


def test_image_folders_with_a_mapping_and_the_class_rule(tmp_path: Path) -> None:
    train = _folders(tmp_path / "train", {"n02085620": 7, "n02086240": 7, "n01440764": 7})
    val = _folders(tmp_path / "val", {"n02085620": 2, "n02086240": 2, "n01440764": 2})
    # ImageNet-A style: spaces in file names; a class training never saw (jack-o'-lantern).
    ood = _folders(tmp_path / "imagenet-a", {"n02085620": 2, "n03590841": 3, "n02123045": 2},
                   spaces=True)
    mapping = _mapping(tmp_path / "LOC_synset_mapping.txt")
    task = build_task("classification", {
        "source": "folder", "train": str(train), "test": str(val), "mapping": str(mapping),
        "ood": {"imagenet-a": str(ood)}, "warmup_per_class": 2, "val_per_class": 1,
        "image_size": 48})
    # tench has two names and tabby two: the study's rule drops both.
    assert task.seen_classes == ("Chihuahua", "Shih-Tzu")
    assert task.unseen_classes == ("jack-o'-lantern",)
    sizes = {name: s.size for name, s in task.splits.items()}
    assert sizes == {"warmup": 4, "train": 8, "validation": 2, "test": 4, "imagenet-a": 5}
    assert task.splits["imagenet-a"].role == "ood"
    train_labels = [task.sample("train", i, 0).answer for i in range(4)]
    assert train_labels == ["Chihuahua", "Shih-Tzu"] * 2  # class-balanced prefixes
    ood_samples = [task.sample("imagenet-a", i, 0) for i in range(5)]
    assert {s.fields["seen"] for s in ood_samples} == {True, False}
    assert any(" " in Path(s.fields["image"]).name for s in ood_samples)
    unseen = next(s for s in ood_samples if not s.fields["seen"])
    assert task.categories(unseen)["classes"] == "unseen"
    assert task.verify(unseen, "Jack-o'-lantern.").metrics == {"accuracy_unseen": 1.0}
    assert task.verify(ood_samples[0], "dog").metrics == {"accuracy_seen": 0.0}
    image = task.images(ood_samples[0])[0]
    assert image.size == (48, 32)  # 90x60 -> longer side 48, aspect kept
    assert task.sample_from_row(task.row(unseen)) == unseen
    assert task.data_fingerprint() is not None
    # Without a mapping the folder names are the answers.
    plain = build_task("classification", {"source": "folder", "train": str(train),
                                          "test": str(val), "warmup_per_class": 1})
    assert "n01440764" in plain.seen_classes
    with pytest.raises(InputError, match="needs train"):
        build_task("classification", {"source": "folder", "test": str(val)})


def _hf_dataset(path: Path, names: list[str], per_class: int, *, parquet: bool = False) -> str:
    import datasets

    images, labels = [], []
    for c in range(len(names)):
        for i in range(per_class):
            images.append(_picture((60 * c, 30 * i, 10), (40, 80)))
            labels.append(c)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    if parquet:
        data.to_parquet(str(path))
    else:
        data.save_to_disk(str(path))
    return str(path)


def test_hf_datasets_with_classlabel_names(tmp_path: Path) -> None:
    train = _hf_dataset(tmp_path / "train", ["goldfish", "Chihuahua", "sea lion"], 4)
    test = _hf_dataset(tmp_path / "test.parquet", ["goldfish", "Chihuahua", "sea lion"], 2,
                       parquet=True)
    ood = _hf_dataset(tmp_path / "r", ["Chihuahua", "volcano"], 2)
    task = build_task("classification", {"source": "hf", "train": train, "test": test,
                                         "ood": {"imagenet-r": ood}, "warmup_per_class": 1,
                                         "val_per_class": 1, "image_size": 40})
    assert task.seen_classes == ("Chihuahua", "goldfish", "sea lion")  # ClassLabel names
    assert task.unseen_classes == ("volcano",)
    sample = task.sample("train", 0, 0)
    assert task.images(sample)[0].size == (20, 40)
    again = task.sample_from_row(json.loads(json.dumps(task.row(sample))))
    assert np.array_equal(np.asarray(task.images(again)[0]), np.asarray(task.images(sample)[0]))
    with pytest.raises(InputError, match="no column 'lbl'"):
        _ = build_task("classification", {"source": "hf", "train": train, "test": test,
                                          "label_column": "lbl"}).splits


# -- the rendered set --------------------------------------------------------------------------

def test_rendering_is_deterministic_and_seeds_differ() -> None:
    for style in STYLES:
        a, b = render("house", style, 7, 64), render("house", style, 7, 64)
        assert a.tobytes() == b.tobytes(), style
        assert a.tobytes() != render("house", style, 8, 64).tobytes(), style


def _gray(label: str, style: str, seed: int) -> np.ndarray:
    return np.asarray(render(label, style, seed, 32).convert("L"), dtype=np.float32) / 255


def test_classes_are_distinct_and_recognisable() -> None:
    """A nearest-centroid classifier on 32 px outlines (no colour, no learning) beats chance
    several times over: the classes differ in shape, not only in palette."""
    classes = SEEN_CLASSES + UNSEEN_CLASSES
    centroids = np.stack([np.mean([_gray(c, "outline", s) for s in range(12)], axis=0)
                          for c in classes])
    hits = 0
    trials = 0
    for k, c in enumerate(classes):
        for s in range(100, 104):
            d = ((centroids - _gray(c, "outline", s)) ** 2).sum(axis=(1, 2))
            hits += int(np.argmin(d) == k)
            trials += 1
    assert hits / trials > 5 / len(classes), hits / trials


def test_styles_differ_from_the_id_style() -> None:
    photo = [np.asarray(render("fish", "photo", s, 48), dtype=np.float32) for s in range(6)]
    for style in STYLES[1:]:
        other = [np.asarray(render("fish", style, s, 48), dtype=np.float32) for s in range(6)]
        gap = np.mean([np.abs(a - b).mean() for a in photo for b in other])
        within = np.mean([np.abs(a - b).mean() for i, a in enumerate(photo)
                          for b in photo[i + 1:]])
        assert gap > within * 0.9 or style in ("occlusion", "clutter", "viewpoint", "scale"), style
    # Drawings carry no fill: most pixels are the paper's.
    sketch = np.asarray(render("fish", "sketch", 0, 64).convert("L"))
    assert (sketch > 200).mean() > 0.8


def test_rendered_splits_hold_what_they_promise() -> None:
    task = get_task("classification", prompt_style="compact")
    splits = task.splits
    assert [s.role for s in splits.values()] == ["warmup", "train", "validation", "test", "ood",
                                                 "ood"]
    n = len(task.seen_classes)
    train = [task.sample("train", i, 0) for i in range(2 * n)]
    assert {s.answer for s in train} == set(SEEN_CLASSES) and {s.fields["style"]
                                                               for s in train} == {"photo"}
    for name, styles in (("ood-r", {"sketch", "outline", "cartoon", "texture"}),
                         ("ood-a", {"clutter", "occlusion", "viewpoint", "scale"})):
        ood = [task.sample(name, i, 0) for i in range(splits[name].size)]
        assert {s.fields["style"] for s in ood} == styles
        unseen = {s.answer for s in ood if not s.fields["seen"]}
        assert unseen == set(UNSEEN_CLASSES)
        assert task.categories(ood[-1])["classes"] == "unseen"
    warm = [task.sample("warmup", i, 0) for i in range(400)]
    assert {s.answer for s in warm} == set(SEEN_CLASSES + UNSEEN_CLASSES)
    assert 0.35 < sum(s.fields["style"] != "photo" for s in warm) / 400 < 0.65
    image = task.images(train[0])[0]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert task.messages(train[0])[0]["content"][0] == {"type": "image"}
    paper = get_task("classification")
    assert paper.messages(train[0])[0]["content"][1]["text"] == PAPER_PROMPT
    assert paper.target(train[0]) == train[0].answer and paper.max_new_tokens == 128
    assert task.sample("ood-a", 5, 0) == task.sample("ood-a", 5, 0)
    assert task.sample("train", 5, 0).fields != task.sample("train", 5, 1).fields


def test_data_writes_the_row_contract_and_score_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "ood.jsonl"
    result = run("data", "--task", "classification", "-O", "prompt_style=compact",
                 "--split", "ood-r", "--n", 6, "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["sft_target"] == rows[0]["answer"] == rows[0]["label"]
    assert {"id", "task", "split", "index", "prompt", "images", "style", "seen"} <= set(rows[0])
    assert Image.open(tmp_path / rows[0]["images"][0]).size == (64, 64)
    scored = tmp_path / "in.jsonl"
    scored.write_text("".join(json.dumps({**r, "completion": r["answer"].upper() + "."}) + "\n"
                              for r in rows))
    result = run("score", "--task", "classification", "--input", scored, "--output",
                 tmp_path / "s.jsonl")
    assert result.exit_code == 0, result.output
    assert all(json.loads(x)["correct"] for x in (tmp_path / "s.jsonl").read_text().splitlines())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "style": "watercolour", "completion": "x"}) + "\n")
    result = run("score", "--task", "classification", "--input", bad, "--output",
                 tmp_path / "b.jsonl")
    assert result.exit_code == 2 and "style" in result.output


# -- the study's family through every command ------------------------------------------------

OPTS = ["-O", "prompt_style=compact", "-O", "image_size=56"]


@pytest.mark.slow
def test_qwen2_5_vl_runs_eval_difficulty_sft_and_grpo(tmp_path: Path) -> None:
    from gengap.models.families import save_family

    ckpt = save_family("qwen2_5_vl", tmp_path / "qwen25vl")

    result = run("eval", "--model", ckpt, "--task", "classification", *OPTS, "--splits",
                 "test,ood-a", "--n", 4, "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    assert "accuracy_seen" in results["test"] and "accuracy_unseen" not in results["test"]
    assert set(results["ood-a"]["by_category"]["classes"]) <= {"seen", "unseen"}

    diff = tmp_path / "difficulty"
    result = run("difficulty", "--model", ckpt, "--task", "classification", *OPTS, "--n", 6,
                 "--k", 2, "--max-new-tokens", 6, "--out", diff, "--no-progress")
    assert result.exit_code == 0, result.output
    report = (diff / "report" / "report.md").read_text() if (diff / "report").is_dir() else ""
    if not report:
        assert run("difficulty-report", diff).exit_code == 0
        report = (diff / "report" / "report.md").read_text()
    assert "## By class" in report

    data = tmp_path / "all.jsonl"
    assert run("curate", "--difficulty", diff, "--variant", "all", "--out", data).exit_code == 0
    result = run("train", "sft", "--model", ckpt, "--data", data, "--out", tmp_path / "sft",
                 "--steps", 1, "--batch-size", 2, "--eval-every", 0, "grad_norm_every=0",
                 "max_length=null")
    assert result.exit_code == 0, result.output
    result = run("train", "grpo", "--model", ckpt, "--task", "classification", *OPTS,
                 "--out", tmp_path / "grpo", "--steps", 1, "--batch-size", 2, "--eval-every", 0,
                 "num_generations=2", "max_completion_length=6", "n_prompts=4")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "grpo" / "budget.json").read_text())["steps_done"] == 1


def test_the_report_shows_the_tasks_metrics_per_split(tmp_path: Path) -> None:
    """Seen / unseen OOD accuracy reach report.md through the generic task-metrics table."""
    from gengap.report.collect import Run, Study, TestEval
    from gengap.report.markdown import metric_tables
    from gengap.tasks.classification import ClassificationTask

    def arm(name: str, seen: float, unseen: float | None) -> Run:
        result = {"success": 0.5, "accuracy_seen": seen}
        if unseen is not None:
            result["accuracy_unseen"] = unseen
        return Run(name, 0, 0, [], None, [], [], selection={"best_step": 10},
                   tests={10: TestEval(10, {"ood-r": result}, {})})

    plan = {"eval_splits": ["test", "ood-r"],
            "task": {"metric_docs": ClassificationTask.metric_docs}}
    study = Study(tmp_path, {}, plan, runs={"grpo": [arm("grpo", 0.8, 0.1)],
                                             "sft-all": [arm("sft-all", 0.6, None)]})
    text = "\n".join(metric_tables(study))
    assert "### ood-r" in text and "### test" not in text
    assert "| grpo | 80.0 | 10.0 |" in text and "| sft-all | 60.0 | — |" in text
