"""The grounding task: generated scenes (determinism, unambiguous expressions, rendering),
frames, scoring and rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gengap.boxes import Frame, convert, qwen_vl_size
from gengap.cli import app
from gengap.errors import InputError
from gengap.tasks import build_task, get_task
from gengap.tasks.grounding import referring as ref
from gengap.tasks.grounding.generate import VARIANTS, draw_example
from gengap.tasks.grounding.scenes import (
    ID_BACKGROUNDS,
    ID_STYLES,
    Obj,
    Scene,
    draw_box,
    render,
)

SPLITS = ("train", "test", "test-ood-visual", "test-ood-long", "test-ood-relation")


def test_splits_roles_and_axes() -> None:
    task = get_task("grounding")
    roles = {n: (s.role, s.axis) for n, s in task.splits.items()}
    assert roles["warmup"] == ("warmup", None) and roles["validation"][0] == "validation"
    assert {roles[n][1] for n in SPLITS[2:]} == {"visual", "expression-length",
                                                 "relation-words"}
    assert task.modality == "image"
    # The warmup split mixes every variant, single-object scenes (localisation) included.
    variants = {task.sample("warmup", i, 0).fields["variant"] for i in range(60)}
    assert variants == {"single", "id", "visual", "long", "relation"}
    # The cold start's localisation phase draws single objects only, from its own split.
    assert roles["warmup-locate"] == ("warmup", None)
    locate = [task.sample("warmup-locate", i, 0) for i in range(20)]
    assert {s.fields["variant"] for s in locate} == {"single"}
    assert all(len(s.fields["scene"]["objects"]) == 1 for s in locate)
    from gengap.coldstart import resolve_recipe

    phases = resolve_recipe(task).phases
    assert phases[0].split == "warmup-locate" and phases[0].vision_learning_rate == 0
    assert all(p.split is None for p in phases[1:])


@pytest.mark.parametrize("style", ["paper", "compact"])
def test_samples_are_deterministic_and_distinct(style: str) -> None:
    task = get_task("grounding", prompt_style=style)
    a, b = task.sample("train", 5, 0), task.sample("train", 5, 0)
    assert a == b
    assert np.array_equal(np.asarray(task.images(a)[0]), np.asarray(task.images(b)[0]))
    others = {json.dumps(task.sample("train", i, 0).fields["scene"]) for i in range(20)}
    assert len(others) == 20
    assert task.sample("train", 5, 1).fields["scene"] != a.fields["scene"]
    assert task.sample("test", 5, 0).fields["scene"] != a.fields["scene"]


@pytest.mark.parametrize("layout,size", [("grid", (64, 64)), ("free", (672, 504))])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_expression_picks_out_its_target_alone(layout, size, variant) -> None:
    for i in range(25):
        ex = draw_example(random.Random(f"{variant}/{i}"), variant, width=size[0],
                          height=size[1], layout=layout)
        assert ref.resolve(ex.expression, ex.scene) == [ex.target]
        heads = [o for o in ex.scene.objects if ex.expression.head.matches(o)]
        if ex.kind == "relation":
            assert len(heads) >= 2, "the relation must be needed"
        else:
            assert ex.expression.clauses == () and len(heads) == 1
            # The shape alone does not do: an attribute is needed.
            assert sum(o.shape == ex.expression.head.shape for o in ex.scene.objects) >= 2
        words = [w for w, _ in ex.expression.clauses]
        if variant == "relation":
            assert words and all(w in ref.OOD_RELATIONS for w in words)
        elif ex.kind == "relation":
            assert all(w in ref.ID_RELATIONS for w in words)
        if variant == "long":
            assert len(words) == 2
            for clause in ex.expression.clauses:  # each clause alone is not enough
                alone = ref.resolve(ref.Expression(ex.expression.head, (clause,)), ex.scene)
                assert alone != [ex.target]
        look = (ex.scene.background in ID_BACKGROUNDS, ex.scene.style in ID_STYLES)
        assert (look != (True, True)) == (variant == "visual")
        boxes = [o.box for o in ex.scene.objects]
        for j, p in enumerate(boxes):  # no two objects overlap
            for q in boxes[j + 1:]:
                assert p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1]


def test_resolve_rejects_ambiguous_relations_and_anchors() -> None:
    red = Obj("circle", "red", "small", (0, 0, 10, 10))
    red2 = Obj("circle", "red", "small", (30, 0, 40, 10))
    blue = Obj("square", "blue", "small", (15, 0, 25, 10))
    scene = Scene(64, 64, "white", "filled", (red, red2, blue))
    left = ref.Expression(ref.Desc("circle", "red"), (("left of", ref.Desc("square")),))
    assert ref.resolve(left, scene) == [0]
    assert ref.resolve(ref.Expression(ref.Desc("circle", "red")), scene) == [0, 1]
    # An anchor that is not unique makes the expression invalid.
    by_circle = ref.Expression(ref.Desc("square"), (("right of", ref.Desc("circle")),))
    assert ref.resolve(by_circle, scene) is None
    # Borderline: an object straddling the anchor's edge but with its centre on the left side.
    straddle = Obj("circle", "red", "small", (12, 0, 18, 10))
    scene2 = Scene(64, 64, "white", "filled", (red, straddle, blue))
    assert ref.resolve(left, scene2) is None
    # Superlatives need a clear winner.
    near = ref.Expression(ref.Desc("circle", "red"), (("closest to", ref.Desc("square")),))
    assert ref.resolve(near, scene) is None  # both 15 px away
    far = Obj("circle", "red", "small", (50, 40, 60, 50))
    scene3 = Scene(64, 64, "white", "filled", (red, far, blue))
    assert ref.resolve(near, scene3) == [0]


def test_rendered_shapes_fill_their_boxes() -> None:
    for shape in ("circle", "square", "triangle"):
        for size, box in (((64, 64), (10, 20, 24, 34)), ((672, 504), (100, 50, 220, 170))):
            scene = Scene(*size, "white", "filled", (Obj(shape, "blue", "large", box),))
            pixels = np.asarray(render(scene)).astype(int)
            ink = np.abs(pixels - 250).sum(axis=2) > 150
            ys, xs = np.nonzero(ink)
            found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert all(abs(a - b) <= 1 for a, b in zip(found, box)), (shape, found, box)
            cx, cy = (box[0] + box[2]) // 2, box[1] + (box[3] - box[1]) * 2 // 3
            assert tuple(pixels[cy, cx]) == pytest.approx((35, 75, 225), abs=40)


def test_sample_pictures(tmp_path: Path) -> None:
    """Every split renders; the sheet is written for a person to look at."""
    from PIL import Image

    for style in ("compact", "paper"):
        task = get_task("grounding", prompt_style=style)
        tiles = []
        for split in SPLITS:
            for i in range(3):
                s = task.sample(split, i, 0)
                image = task.images(s)[0]
                assert image.size == (s.fields["width"], s.fields["height"])
                tiles.append(draw_box(image, s.fields["box"]).resize((192, 192 * image.height
                                                                       // image.width)))
        sheet = Image.new("RGB", (192 * 3, tiles[0].height * len(SPLITS)))
        for k, tile in enumerate(tiles):
            sheet.paste(tile, ((k % 3) * 192, (k // 3) * tile.height))
        sheet.save(tmp_path / f"grounding-{style}.png")


def test_verify_scores_iou_in_the_answer_frame() -> None:
    task = get_task("grounding", prompt_style="compact")
    s = task.sample("test", 0, 0)
    x1, y1, x2, y2 = s.fields["box"]
    right = task.verify(s, f"the box is [{x1},{y1},{x2},{y2}] ok")
    assert right.correct and right.reward == 1.0 and right.metrics["iou"] == 1.0
    assert right.info["frame"] == "pixel" and right.metrics["acc@0.9"] == 1.0
    w = x2 - x1
    half = task.verify(s, f"[{x1 + w / 2},{y1},{x2 + w / 2},{y2}]")  # IoU exactly 1/3
    assert not half.correct and half.metrics["iou"] == pytest.approx(1 / 3)
    none = task.verify(s, "somewhere on the left")
    assert not none.correct and none.metrics["parsed"] == 0.0 and "no box" in none.feedback
    degenerate = task.verify(s, f"[{x1},{y1},{x1},{y2}]")
    assert degenerate.metrics["iou"] == 0.0 and not degenerate.correct
    iou_reward = get_task("grounding", prompt_style="compact", reward="iou")
    assert iou_reward.verify(s, f"[{x1 + w / 2},{y1},{x2 + w / 2},{y2}]").reward == \
        pytest.approx(1 / 3)


def test_threshold_and_strict_option() -> None:
    task = get_task("grounding", prompt_style="compact", iou_threshold=0.5)
    strict = get_task("grounding", prompt_style="compact", iou_threshold=0.5, strict=True)
    s = task.sample("test", 1, 0)
    # Build a prediction with IoU exactly 0.5: the box doubled in width.
    x1, y1, x2, y2 = s.fields["box"]
    pred = f"[{x1},{y1},{x2 + (x2 - x1)},{y2}]"
    assert task.verify(s, pred).metrics["iou"] == pytest.approx(0.5)
    assert task.verify(s, pred).correct and not strict.verify(s, pred).correct
    assert strict.verify(s, pred).metrics["acc@0.5"] == 0.0


@pytest.mark.parametrize("frame", ["qwen", "norm1", "norm1000", "pixel"])
def test_targets_in_every_frame_score_full_marks(frame: str) -> None:
    task = get_task("grounding", frame=frame, image_size=640)  # 640 x 480: qwen resizes
    s = task.sample("test-ood-long", 2, 0)
    verdict = task.verify(s, task.target(s))
    assert verdict.correct and verdict.metrics["iou"] > 0.97  # integer rounding only
    assert verdict.info["frame"] == frame
    back = verdict.info["pred_box_image_pixels"]
    assert back == pytest.approx(s.fields["box"], abs=1.5)
    assert task.identity()["frame"].startswith(frame)
    if frame == "qwen":
        size = qwen_vl_size(640, 480, max_pixels=task.config.qwen_max_pixels)
        assert verdict.info["frame_size"] == list(size) and size != (640, 480)
        there = convert(tuple(s.fields["box"]), Frame("pixel", 640, 480), Frame("pixel", *size))
        assert verdict.info["gt_box"] == pytest.approx(there, abs=1e-3)


def test_rows_round_trip_and_bad_rows() -> None:
    task = get_task("grounding", prompt_style="compact")
    s = task.sample("test-ood-visual", 4, 0)
    assert task.sample_from_row(json.loads(json.dumps(task.row(s)))) == s
    row = task.row(s)
    with pytest.raises(InputError, match="box"):
        task.sample_from_row({**row, "box": [1, 2, 3]})
    with pytest.raises(InputError, match="scene"):
        task.sample_from_row({**row, "scene": {"width": 64}})
    with pytest.raises(InputError, match="expression"):
        task.sample_from_row({k: v for k, v in row.items() if k != "expression"})


def test_bad_options_are_input_errors() -> None:
    with pytest.raises(InputError, match="iou_threshold"):
        build_task("grounding", words=["iou_threshold=1.5"])
    with pytest.raises(InputError, match="ood_data needs data"):
        build_task("grounding", {"ood_data": {"lisa": "/nope"}})
    with pytest.raises(InputError):
        build_task("grounding", words=["frame=pixels"])


def test_data_command_writes_rows_and_images(tmp_path: Path) -> None:
    out = tmp_path / "test.jsonl"
    result = CliRunner().invoke(app, ["data", "--task", "grounding", "-O",
                                      "prompt_style=compact", "--split", "test-ood-relation",
                                      "--n", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["sft_target"] == rows[0]["answer"]
    assert rows[0]["frame"] == "pixel" and len(rows[0]["box"]) == 4
    assert (tmp_path / rows[0]["images"][0]).is_file()
    task = get_task("grounding", prompt_style="compact")
    assert task.sample_from_row(rows[1]) == task.sample("test-ood-relation", 1, 0)
