"""Bounding boxes: parsing, IoU, and the coordinate frames boxes live in, made explicit.

A box is ``(x1, y1, x2, y2)`` (xyxy) unless a function says otherwise. Frames:

- ``pixel``: absolute pixels of an image of a given width and height. The *original* image and
  the image *as a processor resized it* are two different pixel frames: Qwen2.5-VL answers in
  the resized one, so a ground truth in original pixels must be rescaled before it is compared
  (`qwen_vl_size` gives the resized size, from transformers' own `smart_resize`).
- ``norm1``: fractions of width and height, in [0, 1].
- ``norm1000``: the same on a 0..1000 grid (Qwen2-VL, many VLMs).

`convert(box, src, dst)` goes between any two frames; every result that scores a box should say
which frame it scored in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Box = tuple[float, float, float, float]
FrameKind = Literal["pixel", "norm1", "norm1000"]
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_BOX_RE = re.compile(r"\[\s*" + r"\s*,\s*".join([f"({_NUMBER})"] * 4) + r"\s*\]")
MAX_PARSE_CHARS = 8192  # completions are searched on their first 8 KiB (bounded time)


@dataclass(frozen=True)
class Frame:
    """A coordinate frame: its kind and, for conversions, the image size it refers to."""

    kind: FrameKind
    width: float
    height: float

    def scale(self) -> tuple[float, float]:
        """Units per pixel-frame unit: (sx, sy) such that frame = pixel * s."""
        if self.kind == "pixel":
            return 1.0, 1.0
        unit = 1.0 if self.kind == "norm1" else 1000.0
        return unit / self.width, unit / self.height


def xywh_to_xyxy(box: Box) -> Box:
    """COCO's (x, y, width, height) -> (x1, y1, x2, y2)."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def xyxy_to_xywh(box: Box) -> Box:
    """(x1, y1, x2, y2) -> COCO's (x, y, width, height)."""
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1)


def convert(box: Box, src: Frame, dst: Frame) -> Box:
    """`box` (xyxy) from frame `src` to frame `dst` (through src's and dst's pixel sizes)."""
    sx, sy = src.scale()
    x1, y1, x2, y2 = box
    # To src pixels, then to dst pixels (a resize), then into dst's units.
    px = (x1 / sx, y1 / sy, x2 / sx, y2 / sy)
    rx, ry = dst.width / src.width, dst.height / src.height
    dx, dy = dst.scale()
    return (px[0] * rx * dx, px[1] * ry * dy, px[2] * rx * dx, px[3] * ry * dy)


def qwen_vl_size(width: int, height: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(width, height) of an image as Qwen2-VL / Qwen2.5-VL's processor resizes it.

    Uses transformers' own `smart_resize` (multiples of `factor`, pixel count kept within
    [min_pixels, max_pixels], aspect ratio nearly kept), so the frame matches the model's.
    (The PIL backend's copy: the torchvision one does not import on these machines.)
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels,
                        max_pixels=max_pixels)
    return w, h


def processor_size(image_processor: object, width: int, height: int) -> tuple[int, int]:
    """(width, height) an image takes inside a Qwen2-VL-family image processor."""
    size = getattr(image_processor, "size", None) or {}
    factor = getattr(image_processor, "patch_size", 14) * getattr(image_processor, "merge_size", 2)
    return qwen_vl_size(width, height, factor=factor,
                        min_pixels=size.get("shortest_edge", 56 * 56),
                        max_pixels=size.get("longest_edge", 28 * 28 * 1280))


def area(box: Box) -> float:
    """The area of an xyxy box; 0 for a degenerate one (x2 <= x1 or y2 <= y1)."""
    x1, y1, x2, y2 = box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def is_valid(box: Box) -> bool:
    """Finite coordinates and positive width and height."""
    return all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1]


def iou(a: Box, b: Box) -> float:
    """The standard intersection over union of two xyxy boxes.

    A degenerate or non-finite box scores 0 (a miss): the DC-SFT study's code divided by zero
    on such boxes and zeroed overlaps of 1 px or less; here every positive overlap counts.
    """
    if not (is_valid(a) and is_valid(b)):
        return 0.0
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = area((ix1, iy1, ix2, iy2))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def hit(value: float, threshold: float = 0.5, *, strict: bool = False) -> bool:
    """IoU at or above `threshold` (the study's rule); `strict`: above it (Ref-L4, VLM-R1)."""
    return value > threshold if strict else value >= threshold


def parse_box(text: str) -> Box | None:
    """The first ``[a, b, c, d]`` of four numbers in `text` (the study's answer rule), or None."""
    match = _BOX_RE.search(text[:MAX_PARSE_CHARS])
    if match is None:
        return None
    values = tuple(float(v) for v in match.groups())
    if not all(math.isfinite(v) for v in values):
        return None
    return values  # type: ignore[return-value]


def format_box(box: Box, decimals: int = 0) -> str:
    """A box as the study writes it: ``[x1, y1, x2, y2]`` (integers by default)."""
    if decimals == 0:
        return "[" + ", ".join(str(round(v)) for v in box) + "]"
    return "[" + ", ".join(f"{v:.{decimals}f}" for v in box) + "]"
