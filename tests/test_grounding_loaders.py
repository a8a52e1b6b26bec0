"""Every real-data loader on a fixture written in the real format, and the task on top of them.

Fixtures: RefCOCO's `refer` layout (a protocol-2 pickle of plain dicts + COCO instances.json,
bbox xywh), its two parquet mirrors, Ref-L4's parquet, LISA's labelme JSON beside its image,
VLM-R1 records. A pickle that tries to import os.system is refused (and runs nothing).
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gengap.boxes import Frame, convert, qwen_vl_size
from gengap.errors import InputError
from gengap.tasks import get_task
from gengap.tasks.grounding.loaders import detect, lisa_box, load, safe_unpickle

W, H = 640, 480


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (90, 120, 150)).save(path)
    return path


def refcoco_dir(root: Path) -> Path:
    """refs(unc).p + instances.json + images/ as the `refer` repository lays them out."""
    root.mkdir(parents=True, exist_ok=True)
    refs = [
        {"ref_id": 10, "ann_id": 100, "image_id": 1, "split": "train", "category_id": 1,
         "file_name": "COCO_train2014_000000000001_100.jpg",
         "sentences": [{"sent": "man on the left", "raw": "Man on the left", "sent_id": 0,
                        "tokens": ["man", "on", "the", "left"]},
                       {"sent": "guy in red", "raw": "guy in red", "sent_id": 1,
                        "tokens": ["guy", "in", "red"]}]},
        {"ref_id": 11, "ann_id": 101, "image_id": 1, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "right woman", "sent_id": 2}]},
        {"ref_id": 12, "ann_id": 101, "image_id": 1, "split": "testB", "category_id": 1,
         "sentences": [{"sent": "the other one", "sent_id": 3}]},
        {"ref_id": 13, "ann_id": 100, "image_id": 1, "split": "val", "category_id": 1,
         "sentences": [{"sent": "left man", "sent_id": 4}]},
    ]
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg",
                             "width": W, "height": H}],
                 "annotations": [{"id": 100, "image_id": 1, "bbox": [10, 20, 100, 200],
                                  "category_id": 1},
                                 {"id": 101, "image_id": 1, "bbox": [300.5, 40, 50, 60],
                                  "category_id": 1}],
                 "categories": [{"id": 1, "name": "person"}]}
    (root / "instances.json").write_text(json.dumps(instances))
    _image(root / "images" / "COCO_train2014_000000000001.jpg")
    return root


def test_refcoco_layout(tmp_path: Path) -> None:
    root = refcoco_dir(tmp_path / "refcoco")
    assert detect(root) == "refcoco"
    records = load(root, image_root=root / "images")
    assert [r.expression for r in records] == ["man on the left", "guy in red", "right woman",
                                               "the other one", "left man"]
    assert records[0].box == (10, 20, 110, 220)  # xywh -> xyxy
    assert records[2].box == (300.5, 40, 350.5, 100) and records[2].split == "testA"
    assert (records[0].width, records[0].height) == (W, H)
    assert Path(records[0].image).is_file()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_imports_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps([{"ref_id": 1, "x": _Evil()}], protocol=2)
    assert b"system" in evil
    with pytest.raises(InputError, match="refused"):
        safe_unpickle(evil)
    assert not (tmp_path / "pwned").exists()
    root = refcoco_dir(tmp_path / "refcoco")
    (root / "refs(unc).p").write_bytes(evil)
    with pytest.raises(InputError, match=r"global (posix|os|nt)\.system refused"):
        load(root)
    # Plain data (as Python 2 wrote it) is read, bytes as latin-1 text.
    assert safe_unpickle(pickle.dumps({"a": [1, 2.5, "x"]}, protocol=0)) == {"a": [1, 2.5, "x"]}
    with pytest.raises(InputError):
        safe_unpickle(b"not a pickle")


def test_refcoco_parquet_mirror(tmp_path: Path) -> None:
    _image(tmp_path / "coco" / "train2014" / "a.jpg")
    rows = {
        "ref_id": [1, 2], "image_id": [5, 5], "split": ["test", "train"],
        "sentences": [[{"raw": "Left dog", "sent": "left dog", "sent_id": 0,
                        "tokens": ["left", "dog"]}],
                      [{"raw": "cat", "sent": "cat", "sent_id": 1, "tokens": ["cat"]},
                       {"raw": "a cat", "sent": "a cat", "sent_id": 2, "tokens": ["a", "cat"]}]],
        "bbox": [[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 50.0, 50.0]],  # xyxy in this mirror
        "raw_anns": [json.dumps({"bbox": [10, 20, 100, 200]}), None],
        "raw_image_info": [json.dumps({"width": W, "height": H}), None],
        "image_path": ["coco/train2014/a.jpg", "coco/train2014/a.jpg"],
    }
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.table(rows), path)
    assert detect(path) == "refcoco-parquet"
    records = load(path, image_root=tmp_path)
    assert [(r.expression, r.split) for r in records] == [
        ("left dog", "testA"), ("cat", "train"), ("a cat", "train")]
    assert records[0].box == (10, 20, 110, 220) and records[1].box == (0, 0, 50, 50)


def test_lmms_parquet_mirror(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (W, H), "red").save(buf, format="PNG")
    rows = {"question_id": ["q1"], "question": ["Please carefully observe the area..."],
            "answer": [["the red thing", "red"]], "bbox": [[5.0, 6.0, 20.0, 30.0]],
            "file_name": ["x.jpg"],
            "image": [{"bytes": buf.getvalue(), "path": "x.jpg"}]}
    path = tmp_path / "testB-00000-of-00001.parquet"
    pq.write_table(pa.table(rows), path)
    assert detect(path) == "lmms-parquet"
    records = load(path)
    assert [r.expression for r in records] == ["the red thing", "red"]
    assert records[0].box == (5, 6, 25, 36) and records[0].split == "testB"
    assert isinstance(records[0].image, dict) and records[0].image["bytes"]


def refl4_file(tmp_path: Path) -> Path:
    _image(tmp_path / "images" / "o365_1.jpg")
    rows = {"id": [7, 8], "file_name": ["o365_1.jpg", "o365_1.jpg"],
            "bbox": [[100.0, 50.0, 200.0, 100.0], [0.0, 0.0, 30.0, 30.0]],
            "caption": ["The large wooden table in the middle of the room, with a lamp.",
                        "a cup"],
            "width": [W, W], "height": [H, H], "ori_category_id": ["o365_1", "o365_2"]}
    path = tmp_path / "ref-l4-val.parquet"
    pq.write_table(pa.table(rows), path)
    return path


def test_ref_l4_parquet(tmp_path: Path) -> None:
    path = refl4_file(tmp_path)
    assert detect(path) == "refl4"
    records = load(path)
    assert records[0].box == (100, 50, 300, 150) and records[0].id == "refl4/7"
    assert Path(records[0].image) == tmp_path / "images" / "o365_1.jpg"
    assert records[0].width == W


def lisa_dir(tmp_path: Path) -> Path:
    root = tmp_path / "reason_seg" / "val"
    _image(root / "img1.jpg")
    ann = {"text": ["the thing you sit on", "where would a cat sleep"], "is_sentence": True,
           "shapes": [{"label": "target", "points": [[10, 20], [50, 25], [30, 80]],
                       "shape_type": "polygon"},
                      {"label": "target", "points": [[60, 60], [70, 90]],
                       "shape_type": "polygon"},
                      {"label": "ignore", "points": [[0, 0], [639, 479]],
                       "shape_type": "polygon"}]}
    (root / "img1.json").write_text(json.dumps(ann))
    return root


def test_lisa_json(tmp_path: Path) -> None:
    root = lisa_dir(tmp_path)
    assert detect(root) == "lisa"
    records = load(root)
    assert [r.expression for r in records] == ["the thing you sit on", "where would a cat sleep"]
    assert records[0].box == (10, 20, 70, 90)  # all target polygons, not the ignore one
    assert Path(records[0].image).name == "img1.jpg"
    with pytest.raises(InputError, match="target"):
        lisa_box([{"label": "ignore", "points": [[0, 0], [1, 1]]}], "x.json")


def test_vlmr1_records(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "a.jpg")
    records = [
        {"problem": "<image>Please provide the bounding box coordinate of the region this "
                    "sentence describes: the left dog.",
         "solution": "[10, 20, 110, 220]", "image": "imgs/a.jpg"},
        {"problem": "cat on the mat", "solution": [1, 2, 3, 4], "image": ["imgs/a.jpg"]},
    ]
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(records))
    assert detect(path) == "vlmr1"
    out = load(path)
    assert [r.expression for r in out] == ["the left dog", "cat on the mat"]
    assert out[0].box == (10, 20, 110, 220) and out[1].box == (1, 2, 3, 4)
    assert Path(out[0].image) == tmp_path / "imgs" / "a.jpg"
    path.write_text(json.dumps([{"problem": "x", "image": "a.jpg"}]))
    with pytest.raises(InputError, match="missing solution"):
        load(path)
    path.write_text(json.dumps([{"problem": "x", "image": "a.jpg", "solution": "none"}]))
    with pytest.raises(InputError, match=r"no \[x1"):
        load(path)


def test_the_task_on_real_data(tmp_path: Path) -> None:
    root = refcoco_dir(tmp_path / "refcoco")
    ood = {"ref-l4": str(refl4_file(tmp_path / "refl4")), "lisa": str(lisa_dir(tmp_path))}
    task = get_task("grounding", data=str(root), image_root=str(root / "images"),
                    ood_data=ood, warmup_size=1)
    splits = {n: (s.role, s.size, s.axis) for n, s in task.splits.items()}
    assert splits == {"warmup": ("warmup", 1, None), "train": ("train", 1, None),
                      "validation": ("validation", 1, None), "test": ("test", 1, None),
                      "test-B": ("test", 1, None), "ood-ref-l4": ("ood", 2, "dataset"),
                      "ood-lisa": ("ood", 2, "dataset")}
    assert task.data_fingerprint() is not None
    from gengap.coldstart import resolve_recipe

    # No warmup-locate split on real data: its cold start trains on the warmup records only.
    assert [p.split for p in resolve_recipe(task).phases] == [None, None]
    s = task.sample("train", 0, 0)
    assert s.fields["expression"] == "guy in red" and s.fields["box"] == [10, 20, 110, 220]
    assert task.images(s)[0].size == (W, H)
    # The paper default answers in Qwen2.5-VL's resized frame: 640x480 -> 644x476.
    size = qwen_vl_size(W, H, max_pixels=task.config.qwen_max_pixels)
    assert size == (644, 476)
    expected = convert((10, 20, 110, 220), Frame("pixel", W, H), Frame("pixel", *size))
    assert s.answer == "[" + ", ".join(str(round(v)) for v in expected) + "]"
    assert task.verify(s, s.answer).correct
    verdict = task.verify(s, "[10, 20, 110, 220]")  # the original-pixel box, unscaled
    assert verdict.info["frame"] == "qwen" and verdict.metrics["iou"] < 1.0
    lisa = task.sample("ood-lisa", 1, 0)
    assert lisa.fields["expression"] == "where would a cat sleep"
    assert task.sample_from_row(json.loads(json.dumps(task.row(lisa)))) == lisa
    assert task.categories(lisa)["size"] == "medium"  # 60 x 70 px
    # A resize: the image and its box shrink together.
    small = get_task("grounding", data=str(root), image_root=str(root / "images"),
                     warmup_size=1, image_size=320, frame="pixel")
    t = small.sample("train", 0, 0)
    assert small.images(t)[0].size == (320, 240) and t.fields["box"] == [5, 10, 55, 110]


def test_unreadable_data_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such data"):
        load(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="cannot tell the format"):
        load(tmp_path / "x.txt")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError):
        load(bad, "refl4")
