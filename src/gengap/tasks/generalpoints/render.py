"""Card images drawn with PIL: rank glyphs and suit symbols in the suit's colour.

`layout="paper"` follows the study: four cards side by side on a square #35654d table, each
card 270x378 px at x = 5 + i*297 on a 1200 px canvas, vertically centred (scaled to `size`).
`layout="grid"` puts the cards in a 2x2 grid that fills the canvas: at the small sizes a tiny
vision tower sees (e.g. 64 px), the paper layout leaves each rank only a few pixels. Grid cells
are drawn once per (rank, suit, cell size) and pasted.

Suit symbols are drawn as shapes, not font glyphs, so images do not depend on installed fonts.
Small images are drawn at a larger scale and downsampled, for clean edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

from PIL import Image, ImageDraw, ImageFont

TABLE_GREEN = "#35654d"
INK = {"S": (20, 20, 20), "C": (20, 20, 20), "H": (200, 20, 30), "D": (200, 20, 30)}
LAYOUTS = ("paper", "grid")
_PAPER_CANVAS, _PAPER_CARD, _PAPER_STEP = 1200, (270, 378), 297


@cache
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _suit(draw: ImageDraw.ImageDraw, suit: str, cx: float, cy: float, r: float) -> None:
    """Draw suit `suit` centred at (cx, cy) with half-size r."""
    ink = INK[suit]
    if suit == "D":
        draw.polygon([(cx, cy - r), (cx + 0.75 * r, cy), (cx, cy + r), (cx - 0.75 * r, cy)], ink)
        return
    if suit == "H":
        lobe = 0.5 * r
        for dx in (-lobe, lobe):
            draw.ellipse([cx + dx - lobe, cy - r, cx + dx + lobe, cy - r + 2 * lobe], ink)
        draw.polygon([(cx - 2 * lobe, cy - r + lobe), (cx + 2 * lobe, cy - r + lobe),
                      (cx, cy + r)], ink)
        return
    if suit == "S":
        lobe = 0.45 * r
        for dx in (-lobe, lobe):
            draw.ellipse([cx + dx - lobe, cy - 0.1 * r, cx + dx + lobe, cy - 0.1 * r + 2 * lobe],
                         ink)
        draw.polygon([(cx - 2 * lobe, cy + 0.35 * r), (cx + 2 * lobe, cy + 0.35 * r),
                      (cx, cy - r)], ink)
    else:  # clubs: three leaves
        leaf = 0.38 * r
        for lx, ly in ((cx, cy - 0.55 * r), (cx - 0.5 * r, cy + 0.05 * r),
                       (cx + 0.5 * r, cy + 0.05 * r)):
            draw.ellipse([lx - leaf, ly - leaf, lx + leaf, ly + leaf], ink)
    # Stem shared by spades and clubs.
    draw.polygon([(cx, cy), (cx - 0.3 * r, cy + r), (cx + 0.3 * r, cy + r)], ink)


def _card(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], name: str,
          suit: str) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rounded_rectangle(box, radius=0.07 * w, fill="white", outline=(60, 60, 60),
                           width=max(1, round(0.015 * w)))
    # Big rank in the upper half, big suit in the lower half: legible at any scale.
    font = _font(max(6, round(0.42 * h if len(name) == 1 else 0.34 * h)))
    draw.text((x0 + w / 2, y0 + 0.3 * h), name, fill=INK[suit], font=font, anchor="mm")
    _suit(draw, suit, x0 + w / 2, y0 + 0.74 * h, 0.19 * h)


def render_cards(
    cards: Sequence[str], suits: Sequence[str], *, size: int = 1200, layout: str = "paper"
) -> Image.Image:
    """An RGB image of the hand (`cards` are rank names, `suits` S/C/H/D)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if len(cards) != len(suits):
        raise ValueError("cards and suits differ in length")
    if layout == "grid":
        # Each card owns a cell: pasting cached cells is ~65x cheaper than drawing the hand
        # (47 us vs 3.2 ms per 64 px image, measured), which the image cold start's tens of
        # thousands of rows need. An odd size leaves a 1 px strip of table on the right/bottom.
        image = Image.new("RGB", (size, size), TABLE_GREEN)
        cell = size // 2
        for i, (name, suit) in enumerate(zip(cards, suits)):
            image.paste(_grid_cell(name, suit, cell), ((i % 2) * cell, (i // 2) * cell))
        return image
    scale = max(1, -(-512 // size))  # draw at >= 512 px, then downsample
    canvas = size * scale
    image = Image.new("RGB", (canvas, canvas), TABLE_GREEN)
    draw = ImageDraw.Draw(image)
    f = canvas / _PAPER_CANVAS
    cw, ch = _PAPER_CARD[0] * f, _PAPER_CARD[1] * f
    y0 = (canvas - ch) / 2
    for i, (name, suit) in enumerate(zip(cards, suits)):
        x0 = f * (5 + i * _PAPER_STEP)
        _card(draw, (x0, y0, x0 + cw, y0 + ch), name, suit)
    if scale > 1:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image


@lru_cache(maxsize=1024)
def _grid_cell(name: str, suit: str, cell: int) -> Image.Image:
    """One card in its grid cell (`cell` px square), drawn large and downsampled."""
    scale = max(1, -(-256 // cell))
    big = cell * scale
    image = Image.new("RGB", (big, big), TABLE_GREEN)
    pad = big * 0.06  # the grid's 3% of the canvas = 6% of a cell
    _card(ImageDraw.Draw(image), (pad, pad, big - pad, big - pad), name, suit)
    if scale > 1:
        image = image.resize((cell, cell), Image.Resampling.LANCZOS)
    return image
