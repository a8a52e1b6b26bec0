"""The view grid: four street views around the current heading, drawn by gengap.

As in the study, the observation is a 2x2 grid ``[front, right / back, left]`` of 90-degree
views, split by 5 px black lines. Each view is drawn from the rail point's geometry: a view
whose direction is within 30 degrees of a street leaving the point looks down that street
(road, lane marks, buildings receding on both sides, street furniture); any other view faces
the buildings at the kerb. Landmark signs hang on the buildings of every view within 60
degrees of their bearing, so a corner place shows in the two views that face it.

A **city style** is the visual domain (the study trains in New York and tests in other
cities): palette (sky, road, kerb, buildings), building shapes (flat, gabled, stepped, domed
roofs; tall or low), sign lettering (font) and street furniture (lamps and hydrants, trees,
post boxes, palms). A place's sign keeps its brand colour and logo shape in every style, as a
chain's sign does; everything around it changes. Fonts come from matplotlib's bundled DejaVu
family (a gengap dependency), so rendering needs no system fonts.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from gengap.tasks.navigation.actions import heading_change
from gengap.tasks.navigation.city import PLACES

RGB = tuple[int, int, int]
VIEW_OFFSETS = (0, 90, 180, 270)  # front, right, back, left
GRID_ORDER = (0, 1, 2, 3)  # row-major: [front, right / back, left]
LINE = 5


@dataclass(frozen=True)
class Style:
    """What one city looks like."""

    name: str
    sky: RGB
    ground: RGB
    road: RGB
    lane: RGB
    kerb: RGB
    buildings: tuple[RGB, ...]
    window: RGB
    roof: str  # flat | gabled | stepped | domed
    height: tuple[float, float]  # building heights as shares of the view above the horizon
    font: str  # a matplotlib DejaVu font file
    furniture: str  # lamps | trees | postboxes | palms


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("metro", (150, 190, 230), (120, 120, 120), (70, 70, 75), (235, 200, 40),
          (170, 165, 160), ((150, 60, 45), (120, 70, 50), (165, 95, 70), (95, 55, 45)),
          (40, 50, 70), "flat", (0.75, 1.0), "DejaVuSans-Bold.ttf", "lamps"),
    Style("riviera", (240, 200, 150), (200, 180, 140), (150, 130, 110), (250, 250, 240),
          (220, 205, 175), ((220, 170, 90), (235, 215, 170), (200, 120, 80), (240, 190, 120)),
          (90, 60, 40), "gabled", (0.45, 0.7), "DejaVuSerif.ttf", "trees"),
    Style("harbor", (165, 170, 180), (105, 110, 110), (55, 58, 62), (245, 245, 245),
          (140, 140, 145), ((185, 180, 170), (150, 150, 150), (200, 195, 180), (120, 125, 130)),
          (30, 35, 45), "stepped", (0.55, 0.85), "DejaVuSerif-BoldItalic.ttf", "postboxes"),
    Style("tropic", (190, 230, 225), (180, 200, 150), (95, 100, 95), (250, 250, 120),
          (200, 210, 190), ((120, 200, 190), (240, 160, 170), (250, 230, 140), (170, 150, 220)),
          (60, 90, 110), "domed", (0.6, 1.0), "DejaVuSansMono.ttf", "palms"),
)}
TRAIN_STYLE = "metro"
BRAND_COLOURS: tuple[RGB, ...] = ((220, 30, 30), (20, 120, 220), (30, 170, 60), (250, 200, 0),
                                  (150, 40, 200), (250, 120, 0), (0, 190, 200), (20, 20, 20))
LOGOS = ("circle", "triangle", "square")


def brand(name: str) -> tuple[RGB, str]:
    """A place's sign colour and logo shape (fixed per name, the same in every style)."""
    i = PLACES.index(name) if name in PLACES else int(
        hashlib.blake2b(name.encode(), digest_size=4).hexdigest(), 16)
    return BRAND_COLOURS[i % len(BRAND_COLOURS)], LOGOS[(i // len(BRAND_COLOURS)) % len(LOGOS)]


@functools.lru_cache(maxsize=64)
def _font(file: str, size: int) -> Any:
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / file
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def _shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, int(v * f))) for v in c)  # type: ignore[return-value]


def _rng(point: Mapping[str, Any], view: int) -> random.Random:
    key = f"{point.get('geocode')}/{view}"
    return random.Random(int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16))


def _sign(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], name: str,
          style: Style) -> None:
    """A shop sign: brand-coloured board, its logo at the left, the name in the style's font."""
    x0, y0, x1, y1 = box
    colour, logo = brand(name)
    draw.rectangle(box, fill=colour, outline=(255, 255, 255), width=max(1, int((y1 - y0) / 10)))
    h = y1 - y0
    lx0, ly0, lx1, ly1 = x0 + h * 0.15, y0 + h * 0.15, x0 + h * 0.85, y1 - h * 0.15
    white = (255, 255, 255)
    if logo == "circle":
        draw.ellipse((lx0, ly0, lx1, ly1), fill=white)
    elif logo == "triangle":
        draw.polygon([((lx0 + lx1) / 2, ly0), (lx1, ly1), (lx0, ly1)], fill=white)
    else:
        draw.rectangle((lx0, ly0, lx1, ly1), fill=white)
    size = int(min(h * 0.5, (x1 - x0 - h * 1.1) / (0.62 * max(1, len(name)))))
    if size >= 6:
        draw.text((x0 + h, (y0 + y1) / 2), name, fill=white, font=_font(style.font, size),
                  anchor="lm")


def _roof(draw: ImageDraw.ImageDraw, x0: float, x1: float, top: float, style: Style,
          colour: RGB, r: int) -> None:
    w = x1 - x0
    if style.roof == "gabled":
        draw.polygon([(x0 - 1, top), (x1 + 1, top), ((x0 + x1) / 2, top - w * 0.3)],
                     fill=_shade(colour, 0.6))
    elif style.roof == "stepped":
        draw.rectangle((x0 + w * 0.2, top - r * 0.05, x1 - w * 0.2, top), fill=colour)
        draw.rectangle((x0 + w * 0.65, top - r * 0.1, x0 + w * 0.75, top), fill=(90, 80, 80))
    elif style.roof == "domed":
        draw.pieslice((x0 + w * 0.15, top - w * 0.35, x1 - w * 0.15, top + w * 0.35), 180, 360,
                      fill=_shade(colour, 0.8))
    else:
        draw.rectangle((x0, top - r * 0.02, x1, top), fill=_shade(colour, 0.7))


def _windows(draw: ImageDraw.ImageDraw, x0: float, x1: float, top: float, bottom: float,
             style: Style, r: int) -> None:
    step = max(3.0, r / 10)
    y = top + step * 0.5
    while y + step * 0.5 < bottom - step:
        x = x0 + step * 0.4
        while x + step * 0.5 < x1:
            draw.rectangle((x, y, x + step * 0.45, y + step * 0.55), fill=style.window)
            x += step
        y += step


def _furniture(draw: ImageDraw.ImageDraw, x: float, base: float, style: Style, r: int) -> None:
    s = r / 64
    if style.furniture == "lamps":
        draw.rectangle((x, base - 22 * s, x + 1.5 * s, base), fill=(40, 40, 40))
        draw.ellipse((x - 2 * s, base - 25 * s, x + 3.5 * s, base - 21 * s), fill=(250, 240, 180))
        draw.rectangle((x + 5 * s, base - 5 * s, x + 8 * s, base), fill=(200, 30, 30))
    elif style.furniture == "trees":
        draw.rectangle((x, base - 12 * s, x + 2 * s, base), fill=(90, 60, 30))
        draw.ellipse((x - 5 * s, base - 26 * s, x + 7 * s, base - 10 * s), fill=(50, 120, 50))
    elif style.furniture == "postboxes":
        draw.rectangle((x, base - 10 * s, x + 5 * s, base), fill=(200, 20, 20))
        draw.rectangle((x + 9 * s, base - 4 * s, x + 17 * s, base - 2 * s), fill=(90, 60, 40))
    else:
        draw.line((x, base, x + 3 * s, base - 24 * s), fill=(120, 90, 50), width=max(1, int(2 * s)))
        for dx in (-7, -3, 3, 7):
            draw.line((x + 3 * s, base - 24 * s, x + (3 + dx) * s, base - 19 * s),
                      fill=(40, 150, 60), width=max(1, int(2 * s)))


def _facade(draw: ImageDraw.ImageDraw, r: int, horizon: float, style: Style,
            rng: random.Random, signs: Sequence[tuple[str, float]]) -> None:
    """Buildings at the kerb, seen square on; `signs` = (name, x position in [0, 1])."""
    kerb_top = r * 0.86
    draw.rectangle((0, kerb_top, r, r), fill=style.kerb)
    x = -rng.uniform(0, r * 0.2)
    while x < r:
        w = rng.uniform(0.3, 0.5) * r
        colour = rng.choice(style.buildings)
        top = horizon - rng.uniform(*style.height) * horizon
        draw.rectangle((x, top, x + w, kerb_top), fill=colour)
        _roof(draw, x, x + w, top, style, colour, r)
        _windows(draw, x, x + w, top, kerb_top - r * 0.12, style, r)
        draw.rectangle((x + w * 0.4, kerb_top - r * 0.1, x + w * 0.6, kerb_top),
                       fill=_shade(colour, 0.45))  # door
        x += w
    for name, pos in signs:
        cx = pos * r
        _sign(draw, (cx - r * 0.3, kerb_top - r * 0.3, cx + r * 0.3, kerb_top - r * 0.15),
              name, style)
    _furniture(draw, rng.uniform(0.05, 0.9) * r, r * 0.95, style, r)


def _street(draw: ImageDraw.ImageDraw, r: int, horizon: float, style: Style,
            rng: random.Random, offset: float, signs: Sequence[tuple[str, float]]) -> None:
    """Looking down a street whose direction is `offset` degrees off the view's centre."""
    vx = r / 2 + offset / 45.0 * r / 2
    draw.polygon([(r * 0.05, r), (r * 0.95, r), (vx + r * 0.03, horizon), (vx - r * 0.03, horizon)],
                 fill=style.road)
    for i in range(5):  # dashed centre line, shrinking toward the horizon
        t0, t1 = 1 - (i + 0.2) / 5, 1 - (i + 0.6) / 5
        y0, y1 = horizon + (r - horizon) * t0 ** 1.5, horizon + (r - horizon) * t1 ** 1.5
        x0 = vx + (r / 2 - vx) * t0 ** 1.5
        x1 = vx + (r / 2 - vx) * t1 ** 1.5
        draw.line((x0, y0, x1, y1), fill=style.lane, width=max(1, int(r / 40 * t0 + 1)))
    for side in (-1, 1):  # receding buildings on both sides
        near = 0.0 if side < 0 else float(r)
        edge = r * 0.05 if side < 0 else r * 0.95
        d = 0.0
        while d < 0.92:
            depth = rng.uniform(0.15, 0.3)
            a, b = d, min(0.95, d + depth)
            xa = near + (vx - near) * a
            xb = near + (vx - near) * b
            ea = edge + (vx - edge) * a
            eb = edge + (vx - edge) * b
            ha = rng.uniform(*style.height) * horizon * (1 - a)
            hb = ha * (1 - b) / (1 - a)
            colour = rng.choice(style.buildings)
            base_a = horizon + (r - horizon) * (1 - a) * 0.75
            base_b = horizon + (r - horizon) * (1 - b) * 0.75
            draw.polygon([(xa, horizon - ha), (xb, horizon - hb), (xb, base_b), (xa, base_a)],
                         fill=colour)
            draw.polygon([(xa, base_a), (xb, base_b), (eb, horizon + (r - horizon) * (1 - b)),
                          (ea, horizon + (r - horizon) * (1 - a))], fill=style.kerb)
            d = b
        _furniture(draw, (r * 0.12 if side < 0 else r * 0.8), r * 0.97, style, r)
    for name, pos in signs:
        cx = pos * r
        _sign(draw, (cx - r * 0.2, horizon - r * 0.12, cx + r * 0.2, horizon + r * 0.0),
              name, style)


def render_view(point: Mapping[str, Any], view: int, style: Style, size: int) -> Image.Image:
    """View `view` (0 front, 1 right, 2 back, 3 left) of a rail point."""
    direction = point["heading"] + VIEW_OFFSETS[view]
    image = Image.new("RGB", (size, size), style.sky)
    draw = ImageDraw.Draw(image)
    horizon = size * 0.5
    draw.rectangle((0, horizon, size, size), fill=style.ground)
    rng = _rng(point, view)
    signs = []
    for name, bearing in point.get("signs", []):
        off = heading_change(direction, bearing)
        if abs(off) <= 60:
            signs.append((name, min(0.75, max(0.25, 0.5 + off / 120))))
    offsets = [heading_change(direction, arm) for arm in point.get("arms", [])]
    ahead = [o for o in offsets if abs(o) <= 30]
    if ahead:
        _street(draw, size, horizon, style, rng, min(ahead, key=abs), signs)
    else:
        _facade(draw, size, horizon, style, rng, signs)
    return image


def render_grid(point: Mapping[str, Any], style: str, view_size: int) -> Image.Image:
    """The 2x2 grid [front, right / back, left], views of `view_size` px, 5 px black lines."""
    chosen = STYLES[style]
    canvas = Image.new("RGB", (2 * view_size + LINE, 2 * view_size + LINE), (0, 0, 0))
    for i in GRID_ORDER:
        x, y = i % 2, i // 2
        canvas.paste(render_view(point, i, chosen, view_size),
                     (x * (view_size + LINE), y * (view_size + LINE)))
    return canvas
