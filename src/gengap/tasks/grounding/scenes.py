"""Scenes gengap renders itself: coloured shapes on a background, and who is where.

A scene is a canvas of `width` x `height` px holding a few objects, each a shape (circle,
square, triangle) of a colour and a size class (small, large), given by its exact bounding box
(xyxy, integer pixels of the rendered image: every shape touches all four sides of its box).
Objects never overlap, so every relation `gengap.tasks.grounding.referring` decides has a crisp
answer.

Layouts:

- ``free`` (the paper-style 672 x 504 scenes): objects anywhere, placed by rejection sampling;
- ``grid`` (the tiny model's 64 x 64 scenes): objects centred in the cells of a 4 x 4 grid, with
  +-1 px jitter. At 64 px a tiny vision tower sees 8-16 px patches; cells aligned with them make
  localisation learnable in a CPU cold start, as GeneralPoints' grid layout does for cards.

Rendering (`render`) draws at a multiple of the size with PIL and downsamples, so edges are
clean; backgrounds and styles are the visual axis: the ID scenes use plain light backgrounds and
filled shapes, the visual-OOD scenes unseen textured / dark backgrounds and outline or
hatched shapes (the colour stays what the expression names).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (30, 160, 60),
    "blue": (35, 75, 225),
    "yellow": (235, 190, 0),
    "purple": (140, 50, 185),
}
SIZES = ("small", "large")
ID_BACKGROUNDS = ("white", "light-grey", "cream")
OOD_BACKGROUNDS = ("checker", "stripes", "noise", "dark")
ID_STYLES = ("filled",)
OOD_STYLES = ("outline", "hatched")
LAYOUTS = ("free", "grid")
GRID = 4  # cells per side of the grid layout

_PLAIN = {"white": (250, 250, 250), "light-grey": (215, 215, 215), "cream": (245, 235, 205),
          "dark": (45, 45, 50)}


@dataclass(frozen=True)
class Obj:
    """One object of a scene: shape, colour, size class and its box (xyxy, pixels)."""

    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    def as_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size,
                "box": list(self.box)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Obj:
        return cls(str(d["shape"]), str(d["colour"]), str(d["size"]),
                   tuple(int(v) for v in d["box"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Scene:
    """A canvas, its background and style, and its objects."""

    width: int
    height: int
    background: str
    style: str
    objects: tuple[Obj, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "background": self.background,
                "style": self.style, "objects": [o.as_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scene:
        return cls(int(d["width"]), int(d["height"]), str(d["background"]), str(d["style"]),
                   tuple(Obj.from_dict(o) for o in d["objects"]))


def _free_boxes(rng: random.Random, n: int, width: int, height: int,
                sizes: Sequence[str]) -> list[tuple[int, int, int, int]] | None:
    """Non-overlapping boxes (with a gap) anywhere on the canvas, or None if they do not fit."""
    side = min(width, height)
    span = {"small": (0.10, 0.15), "large": (0.22, 0.30)}
    gap = round(0.03 * side)
    boxes: list[tuple[int, int, int, int]] = []
    for size in sizes[:n]:
        for _ in range(200):
            lo, hi = span[size]
            w = round(rng.uniform(lo, hi) * side)
            h = w  # circles are circles, squares squares
            x1, y1 = rng.randrange(gap, width - w - gap), rng.randrange(gap, height - h - gap)
            box = (x1, y1, x1 + w, y1 + h)
            if all(box[2] + gap <= b[0] or b[2] + gap <= box[0] or box[3] + gap <= b[1]
                   or b[3] + gap <= box[1] for b in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _grid_boxes(rng: random.Random, n: int, width: int, height: int,
                sizes: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Boxes centred in distinct cells of a GRID x GRID grid, +-1 px jitter."""
    cw, ch = width / GRID, height / GRID
    cells = rng.sample(range(GRID * GRID), n)
    boxes = []
    for cell, size in zip(cells, sizes):
        frac = 0.5 if size == "small" else 0.875
        w, h = max(2, round(frac * cw)), max(2, round(frac * ch))
        cx = (cell % GRID + 0.5) * cw + rng.choice((-1, 0, 1))
        cy = (cell // GRID + 0.5) * ch + rng.choice((-1, 0, 1))
        x1, y1 = round(cx - w / 2), round(cy - h / 2)
        x1, y1 = min(max(0, x1), width - w), min(max(0, y1), height - h)
        boxes.append((x1, y1, x1 + w, y1 + h))
    return boxes


def random_objects(rng: random.Random, n: int, *, width: int, height: int, layout: str,
                   attributes: Sequence[tuple[str, str, str]] | None = None
                   ) -> tuple[Obj, ...] | None:
    """`n` objects with random (or the given) (shape, colour, size), placed by `layout`."""
    attrs = list(attributes or [])
    while len(attrs) < n:
        attrs.append((rng.choice(SHAPES), rng.choice(tuple(COLOURS)), rng.choice(SIZES)))
    sizes = [a[2] for a in attrs]
    if layout == "grid":
        boxes: list | None = _grid_boxes(rng, n, width, height, sizes)
    else:
        boxes = _free_boxes(rng, n, width, height, sizes)
    if boxes is None:
        return None
    return tuple(Obj(s, c, z, b) for (s, c, z), b in zip(attrs, boxes))


# ------------------------------------------------------------------------------------------
# Rendering


def _background(name: str, size: tuple[int, int], seed: int) -> Image.Image:
    w, h = size
    if name in _PLAIN:
        return Image.new("RGB", size, _PLAIN[name])
    image = Image.new("RGB", size, (200, 200, 200))
    draw = ImageDraw.Draw(image)
    step = max(4, min(w, h) // 12)
    if name == "checker":
        for y in range(0, h, step):
            for x in range(0, w, step):
                if (x // step + y // step) % 2:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=(150, 150, 150))
    elif name == "stripes":
        image.paste((235, 225, 150), (0, 0, w, h))
        for k in range(-h, w, step):
            draw.line([(k, 0), (k + h, h)], fill=(120, 170, 170), width=max(1, step // 3))
    elif name == "noise":
        rng = random.Random(seed)
        block = max(2, min(w, h) // 32)
        for y in range(0, h, block):
            for x in range(0, w, block):
                v = rng.randrange(120, 236)
                draw.rectangle([x, y, x + block - 1, y + block - 1], fill=(v, v, v))
    else:
        raise ValueError(f"unknown background {name!r}")
    return image


def _shape(draw: ImageDraw.ImageDraw, obj: Obj, scale: int, style: str) -> None:
    x1, y1, x2, y2 = (v * scale for v in obj.box)
    # The shape fills its box exactly: the last pixel column/row is x2 - 1, y2 - 1.
    x2, y2 = x2 - 1, y2 - 1
    colour = COLOURS[obj.colour]
    width = max(scale, round(0.16 * min(x2 - x1, y2 - y1)))
    fill = colour if style == "filled" else None
    outline = colour if style != "filled" else None
    if obj.shape == "circle":
        draw.ellipse([x1, y1, x2, y2], fill=fill, outline=outline, width=width)
    elif obj.shape == "square":
        draw.rectangle([x1, y1, x2, y2], fill=fill, outline=outline, width=width)
    else:
        points = [(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)]
        if style == "filled":
            draw.polygon(points, fill=colour)
        else:
            draw.polygon(points, outline=colour, width=width)
    if style == "hatched":  # outline plus diagonal hatching inside the box's shape
        mask = Image.new("L", draw.im.size, 0)
        mdraw = ImageDraw.Draw(mask)
        if obj.shape == "circle":
            mdraw.ellipse([x1, y1, x2, y2], fill=255)
        elif obj.shape == "square":
            mdraw.rectangle([x1, y1, x2, y2], fill=255)
        else:
            mdraw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=255)
        lines = Image.new("L", draw.im.size, 0)
        ldraw = ImageDraw.Draw(lines)
        step = max(2 * width, 3 * scale)
        for k in range(int(x1) - int(y2 - y1), int(x2) + 1, step):
            ldraw.line([(k, y2), (k + (y2 - y1), y1)], fill=255, width=max(1, width // 2))
        hatch = Image.new("L", draw.im.size, 0)
        hatch.paste(lines, (0, 0), mask)
        draw.bitmap((0, 0), hatch, fill=colour)


def render(scene: Scene, seed: int = 0) -> Image.Image:
    """The scene as an RGB image of its size (drawn at >= 4x and downsampled)."""
    scale = max(1, -(-256 // min(scene.width, scene.height)))
    big = (scene.width * scale, scene.height * scale)
    image = _background(scene.background, big, seed)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _shape(draw, obj, scale, scene.style)
    if scale > 1:
        image = image.resize((scene.width, scene.height), Image.Resampling.LANCZOS)
    return image


def draw_box(image: Image.Image, box: Sequence[float], colour: str = "magenta",
             width: int = 1) -> Image.Image:
    """A copy of `image` with `box` (xyxy pixels) outlined (for looking at samples)."""
    out = image.copy()
    x1, y1, x2, y2 = box
    ImageDraw.Draw(out).rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
    return out
