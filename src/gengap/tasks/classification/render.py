"""Painting the rendered classes: an ID photo style, ImageNet-R-like renditions and
ImageNet-A-like hard variants, each a pure function of (class, style, render seed).

| style       | family      | what changes                                                  |
|-------------|-------------|---------------------------------------------------------------|
| photo       | ID          | class colours (jittered), shaded pastel background, soft noise |
| sketch      | renditions  | doubled wobbly pencil strokes on paper, no fill                |
| outline     | renditions  | clean black contour only                                       |
| cartoon     | renditions  | hue-shifted saturated palette, thick black lines, flat ground  |
| texture     | renditions  | parts filled with stripes / checks / dots                      |
| clutter     | hard        | photo style among many distractor shapes                       |
| occlusion   | hard        | photo style, large blocks hide part of the object              |
| viewpoint   | hard        | photo style, strong rotation, squash and shear                 |
| scale       | hard        | photo style, tiny in the frame or cropped by it                |

Pictures are drawn at `size` px (square); the task resizes them once afterwards
(`gengap.tasks.classification.images.prepare`).
"""

from __future__ import annotations

import colorsys
import math
import random

from PIL import Image, ImageDraw, ImageFilter

from gengap.tasks.classification.shapes import DRAWINGS, PALETTES, Part

ID_STYLES = ("photo",)
RENDITION_STYLES = ("sketch", "outline", "cartoon", "texture")
HARD_STYLES = ("clutter", "occlusion", "viewpoint", "scale")
STYLES = ID_STYLES + RENDITION_STYLES + HARD_STYLES

RGB = tuple[int, int, int]


def _jitter(colour: RGB, rng: random.Random, amount: int) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def _hue_shift(colour: RGB, shift: float) -> RGB:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    r, g, b = colorsys.hsv_to_rgb((h + shift) % 1.0, max(s, 0.75), max(v, 0.85))
    return (round(r * 255), round(g * 255), round(b * 255))


def _pastel(rng: random.Random) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.8, 0.97))
    return (round(r * 255), round(g * 255), round(b * 255))


class Placement:
    """Unit-box points -> pixels: scale, rotation, squash / shear, then a shift."""

    def __init__(self, size: int, scale: float, angle: float, centre: tuple[float, float],
                 squash: tuple[float, float] = (1.0, 1.0), shear: float = 0.0):
        self.size, self.scale = size, scale
        self.cos, self.sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        self.centre, self.squash, self.shear = centre, squash, shear

    def __call__(self, p: tuple[float, float]) -> tuple[float, float]:
        x, y = (p[0] - 0.5) * self.squash[0], (p[1] - 0.5) * self.squash[1]
        x += self.shear * y
        x, y = x * self.cos - y * self.sin, x * self.sin + y * self.cos
        s = self.size * self.scale
        return (self.centre[0] * self.size + x * s, self.centre[1] * self.size + y * s)

    def width(self, w: float) -> int:
        return max(1, round(w * self.size * self.scale))


def _background(size: int, rng: random.Random, style: str) -> Image.Image:
    """The ground: paper for drawings, a flat colour for cartoons, else shaded pastel blobs.

    Shading is drawn on a 16 px canvas and scaled up (smooth and ~20x cheaper than blurring at
    full size); grain is uniform noise from the picture's own random stream (PIL's
    `effect_noise` draws from C's global generator and would break determinism).
    """
    if style in ("sketch", "outline"):
        tone = rng.randint(238, 255)
        image = Image.new("RGB", (size, size), (tone, tone, max(220, tone - rng.randint(0, 18))))
    elif style == "cartoon":
        image = Image.new("RGB", (size, size), _hue_shift(_pastel(rng), rng.random()))
    else:
        small = Image.new("RGB", (16, 16), _pastel(rng))
        draw = ImageDraw.Draw(small)
        for _ in range(3):  # soft blobs of shading
            r = rng.uniform(5, 11)
            cx, cy = rng.uniform(0, 16), rng.uniform(0, 16)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_pastel(rng))
        image = small.filter(ImageFilter.BoxBlur(2)).resize((size, size),
                                                            Image.Resampling.BICUBIC)
    grain = Image.frombytes("L", (size, size), rng.randbytes(size * size)).convert("RGB")
    return Image.blend(image, grain, 0.03 if style == "outline" else 0.06)


def _pattern(size: int, colour: RGB, rng: random.Random) -> Image.Image:
    """A fill texture: stripes, checks or dots in the part's colour and a contrasting one."""
    other = _hue_shift(colour, rng.uniform(0.3, 0.7))
    image = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(image)
    step = max(3, size // rng.randint(10, 18))
    kind = rng.choice(("stripes", "checks", "dots"))
    for i in range(-size, 2 * size, step * 2):
        if kind == "stripes":
            draw.polygon([(i, 0), (i + step, 0), (i + step + size, size), (i + size, size)],
                         fill=other)
        else:
            for j in range(0, size, step * 2):
                if kind == "checks":
                    draw.rectangle((i, j, i + step, j + step), fill=other)
                else:
                    draw.ellipse((i, j, i + step, j + step), fill=other)
    return image


def _distractor(draw: ImageDraw.ImageDraw, size: int, rng: random.Random,
                scale: float = 1.0) -> None:
    colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
    cx, cy = rng.uniform(0, size), rng.uniform(0, size)
    r = rng.uniform(0.05, 0.2) * size * scale
    kind = rng.randrange(3)
    if kind == 0:
        draw.ellipse((cx - r, cy - r * rng.uniform(0.4, 1), cx + r, cy + r), fill=colour)
    elif kind == 1:
        n = rng.randint(3, 6)
        draw.polygon([(cx + r * math.cos(a), cy + r * math.sin(a))
                      for a in sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))],
                     fill=colour)
    else:
        draw.line([(cx, cy), (cx + rng.uniform(-2, 2) * r, cy + rng.uniform(-2, 2) * r)],
                  fill=colour, width=max(1, round(r / 4)))


def _placement(style: str, size: int, rng: random.Random) -> Placement:
    angle = rng.uniform(-15, 15)
    scale = rng.uniform(0.62, 0.86)
    centre = (0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1))
    squash = (rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1))
    shear = 0.0
    if style == "viewpoint":
        angle = rng.choice((-1, 1)) * rng.uniform(60, 180)
        squash = (rng.uniform(0.45, 0.7), 1.0) if rng.random() < 0.5 else (1.0,
                                                                           rng.uniform(0.45, 0.7))
        shear = rng.uniform(-0.6, 0.6)
    elif style == "scale":
        if rng.random() < 0.5:
            scale = rng.uniform(0.2, 0.32)
            centre = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
        else:
            scale = rng.uniform(1.35, 1.7)
            centre = (0.5 + rng.uniform(-0.25, 0.25), 0.5 + rng.uniform(-0.25, 0.25))
    return Placement(size, scale, angle, centre, squash, shear)


def _colours(label: str, style: str, rng: random.Random) -> dict[str, RGB]:
    palette = PALETTES[label]
    if style == "cartoon":
        shift = rng.uniform(0.2, 0.8)
        return {role: _hue_shift(c, shift) for role, c in palette.items()}
    return {role: _jitter(c, rng, 22) for role, c in palette.items()}


def _paint(image: Image.Image, parts: list[Part], place: Placement, style: str,
           colours: dict[str, RGB], rng: random.Random) -> None:
    draw = ImageDraw.Draw(image)
    size = image.size[0]
    for part in parts:
        pts = [place(p) for p in part.points]
        colour = colours[part.role]
        if style in ("sketch", "outline"):
            ink = (rng.randint(20, 70),) * 3 if style == "sketch" else (0, 0, 0)
            width = 1 if style == "sketch" else max(2, size // 48)
            if not part.filled:
                width = max(width, place.width(part.width) // (3 if style == "sketch" else 2))
            passes = 2 if style == "sketch" else 1
            for _ in range(passes):
                wobble = size / 90 if style == "sketch" else 0.0
                path = [(x + rng.uniform(-wobble, wobble), y + rng.uniform(-wobble, wobble))
                        for x, y in pts]
                if part.closed:
                    path.append(path[0])
                draw.line(path, fill=ink, width=width, joint="curve")
            continue
        if not part.filled:
            path = pts + [pts[0]] if part.closed else pts
            if style == "cartoon":
                draw.line(path, fill=(0, 0, 0), width=place.width(part.width) + 4, joint="curve")
            draw.line(path, fill=colour, width=place.width(part.width), joint="curve")
            continue
        outline_width = max(3, size // 40) if style == "cartoon" else max(1, size // 96)
        outline = (0, 0, 0) if style == "cartoon" else tuple(int(c * 0.55) for c in colour)
        if style == "texture":
            mask = Image.new("L", image.size, 0)
            ImageDraw.Draw(mask).polygon(pts, fill=255)
            image.paste(_pattern(size, colour, rng), (0, 0), mask)
            draw.polygon(pts, outline=outline, width=outline_width)
        else:
            draw.polygon(pts, fill=colour, outline=outline, width=outline_width)


def render(label: str, style: str, seed: int, size: int = 128) -> Image.Image:
    """The picture of class `label` in `style`, fully determined by `seed` (RGB, size x size)."""
    if label not in DRAWINGS:
        raise KeyError(f"no drawing for class {label!r}")
    if style not in STYLES:
        raise KeyError(f"unknown style {style!r}")
    rng = random.Random(f"{label}/{style}/{seed}")
    image = _background(size, rng, style)
    if style == "clutter":
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(8, 14)):
            _distractor(draw, size, rng)
    place = _placement(style, size, rng)
    _paint(image, DRAWINGS[label](), place, style, _colours(label, style, rng), rng)
    draw = ImageDraw.Draw(image)
    if style == "clutter":
        for _ in range(rng.randint(1, 3)):  # a few in front as well
            _distractor(draw, size, rng, scale=0.6)
    elif style == "occlusion":
        for _ in range(rng.randint(1, 2)):
            w, h = rng.uniform(0.25, 0.45) * size, rng.uniform(0.2, 0.4) * size
            x = place.centre[0] * size + rng.uniform(-0.3, 0.1) * size
            y = place.centre[1] * size + rng.uniform(-0.3, 0.1) * size
            colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
            if rng.random() < 0.5:
                draw.rectangle((x, y, x + w, y + h), fill=colour)
            else:
                draw.ellipse((x, y, x + w, y + h), fill=colour)
    return image


def contact_sheet(labels: list[str], styles: list[str], seed: int = 0, size: int = 96,
                  font_px: int = 11) -> Image.Image:
    """A grid: one row per class, one column per style, labelled (for looking at the set)."""
    pad = 14
    sheet = Image.new("RGB", (110 + len(styles) * (size + 4), pad + len(labels) * (size + 4)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for j, style in enumerate(styles):
        draw.text((110 + j * (size + 4), 1), style, fill=(0, 0, 0))
    for i, label in enumerate(labels):
        y = pad + i * (size + 4)
        draw.text((4, y + size // 2 - font_px // 2), label, fill=(0, 0, 0))
        for j, style in enumerate(styles):
            sheet.paste(render(label, style, seed + i * 31 + j, size), (110 + j * (size + 4), y))
    return sheet
