"""Boxes: IoU edge cases, parsing, and frame conversions both ways on real processor sizes."""

from __future__ import annotations

import math

import pytest

from gengap.boxes import (
    Frame,
    convert,
    format_box,
    hit,
    iou,
    parse_box,
    qwen_vl_size,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_iou_standard_cases() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    # A 1-px overlap counts (the study's code zeroed it).
    assert iou((0, 0, 10, 10), (9, 9, 19, 19)) == pytest.approx(1 / 199)


@pytest.mark.parametrize("bad", [(5, 5, 5, 10), (5, 5, 4, 10), (0, 0, math.nan, 1),
                                 (0, 0, math.inf, 1)])
def test_degenerate_or_non_finite_boxes_are_misses(bad) -> None:
    assert iou(bad, (0, 0, 10, 10)) == 0.0 and iou((0, 0, 10, 10), bad) == 0.0


def test_hit_threshold_and_strict_option() -> None:
    assert hit(0.5) and not hit(0.5, strict=True) and hit(0.51, strict=True)


def test_parse_takes_the_first_box() -> None:
    assert parse_box("the box is [10, 20.5, 30, 40] or [1,2,3,4]") == (10, 20.5, 30, 40)
    assert parse_box("[ -1 , 2e1, .5, 3 ]") == (-1, 20, 0.5, 3)
    assert parse_box("[1, 2, 3]") is None and parse_box("no box") is None
    assert parse_box("[" * 10000 + "1,2,3,4]") is None  # beyond the search window
    assert format_box((1.4, 2.6, 3, 4)) == "[1, 3, 3, 4]"


def test_xywh_round_trip() -> None:
    box = (3.0, 4.0, 10.0, 20.0)
    assert xywh_to_xyxy(box) == (3, 4, 13, 24)
    assert xyxy_to_xywh(xywh_to_xyxy(box)) == box


@pytest.mark.parametrize("size", [(640, 480), (1024, 683), (333, 1000), (50, 50)])
def test_frames_convert_both_ways_on_qwen_processor_sizes(size) -> None:
    width, height = size
    resized = qwen_vl_size(width, height)
    assert resized[0] % 28 == 0 and resized[1] % 28 == 0
    original = Frame("pixel", width, height)
    model = Frame("pixel", *resized)
    box = (0.1 * width, 0.2 * height, 0.6 * width, 0.9 * height)
    there = convert(box, original, model)
    assert there[2] == pytest.approx(0.6 * resized[0])
    back = convert(there, model, original)
    assert back == pytest.approx(box)
    for kind, unit in (("norm1", 1.0), ("norm1000", 1000.0)):
        norm = convert(box, original, Frame(kind, width, height))
        assert norm == pytest.approx((0.1 * unit, 0.2 * unit, 0.6 * unit, 0.9 * unit))
        assert convert(norm, Frame(kind, width, height), original) == pytest.approx(box)
    # Normalised coordinates do not change when the image is resized.
    assert convert(box, original, Frame("norm1", *resized)) == pytest.approx(
        (0.1, 0.2, 0.6, 0.9))


def test_qwen_size_matches_the_processor() -> None:
    """The frame comes from the same resize rule the Qwen2-VL image processor applies."""
    import numpy as np
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from gengap.boxes import processor_size

    for max_pixels in (28 * 28 * 1280, 200_000):
        processor = Qwen2VLImageProcessorPil(max_pixels=max_pixels)
        for width, height in ((1024, 683), (300, 900)):
            image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
            _, h, w = processor(images=[image], return_tensors="np")["image_grid_thw"][0]
            patch = processor.patch_size
            assert processor_size(processor, width, height) == (w * patch, h * patch)


@pytest.mark.parametrize("size", [(640, 480), (500, 375), (1920, 1080)])
def test_norm1000_to_the_processor_frame_and_back(size) -> None:
    """A [0, 1000] answer (Qwen2-VL style) read in Qwen2.5-VL's resized pixels, and back."""
    width, height = size
    resized = qwen_vl_size(width, height)
    norm = Frame("norm1000", width, height)
    model = Frame("pixel", *resized)
    box = (100.0, 250.0, 600.0, 999.0)
    there = convert(box, norm, model)
    assert there == pytest.approx((0.1 * resized[0], 0.25 * resized[1], 0.6 * resized[0],
                                   0.999 * resized[1]))
    assert convert(there, model, norm) == pytest.approx(box)


def test_iou_is_scale_free_but_one_pixel_overlaps_still_count() -> None:
    """IoU does not depend on the frame a box pair is scored in (up to rounding), and an
    overlap of exactly one pixel column is a small positive IoU, not 0."""
    a, b = (10.0, 10.0, 50.0, 30.0), (30.0, 12.0, 70.0, 40.0)
    src, dst = Frame("pixel", 640, 480), Frame("pixel", 644, 476)
    assert iou(convert(a, src, dst), convert(b, src, dst)) == pytest.approx(iou(a, b))
    assert iou((0, 0, 10, 10), (9, 0, 19, 10)) == pytest.approx(10 / 190)
    assert hit(iou((0, 0, 10, 10), (0, 0, 10, 20)))  # exactly 0.5: a hit unless strict
