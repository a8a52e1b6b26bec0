"""The object classes of gengap's rendered classification set, as vector drawings.

Each class is a function returning its parts in a unit box (x right, y down, 0..1): filled
polygons and stroked polylines, each with a colour *role* (main, second, accent, dark, light).
`gengap.tasks.classification.render` places the parts in a picture (position, size, rotation,
squash) and paints them in a style (the ID photo style, sketch, outline, cartoon, texture, ...).

Hand-drawn with PIL primitives on purpose: the set must build offline, deterministically and in
milliseconds per image, and no pip package ships drawings of named everyday objects. Several
classes are near neighbours (tree / fir, cup / bottle / candle, sun / clock, moon / heart) and a
few carry ImageNet-like unusual names kept in their case (``jack-o'-lantern``, ``Chihuahua``,
``T-shirt``), so difficulty clusters by class as the DC-SFT study saw on ImageNet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Point = tuple[float, float]


@dataclass(frozen=True)
class Part:
    """One drawable part: a filled polygon (`width` 0) or a polyline `width` units wide."""

    points: tuple[Point, ...]
    role: str = "main"
    width: float = 0.0
    closed: bool = True

    @property
    def filled(self) -> bool:
        return self.width == 0.0


def rect(x0: float, y0: float, x1: float, y1: float, role: str = "main") -> Part:
    return Part(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), role)


def arc_points(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0,
               n: int = 28) -> tuple[Point, ...]:
    """Points on an ellipse from angle `a0` to `a1` degrees (0 = right, 90 = down)."""
    return tuple((cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
                  cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n)))
                 for i in range(n + 1))


def ellipse(cx: float, cy: float, rx: float, ry: float | None = None, role: str = "main"
            ) -> Part:
    return Part(arc_points(cx, cy, rx, rx if ry is None else ry)[:-1], role)


def poly(*points: Point, role: str = "main") -> Part:
    return Part(tuple(points), role)


def line(*points: Point, role: str = "dark", width: float = 0.05, closed: bool = False) -> Part:
    return Part(tuple(points), role, width, closed)


def ring(cx: float, cy: float, r: float, role: str = "dark", width: float = 0.05) -> Part:
    return Part(arc_points(cx, cy, r, r)[:-1], role, width, True)


def _star(cx: float, cy: float, outer: float, inner: float, n: int = 5) -> Part:
    pts = []
    for i in range(2 * n):
        r = outer if i % 2 == 0 else inner
        a = math.radians(-90 + 180 * i / n)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return Part(tuple(pts))


# -- the classes (one function each; palettes below) ------------------------------------------

def house() -> list[Part]:
    return [rect(0.2, 0.5, 0.8, 0.9), poly((0.1, 0.53), (0.5, 0.14), (0.9, 0.53), role="second"),
            rect(0.44, 0.66, 0.57, 0.9, "dark"), rect(0.27, 0.6, 0.38, 0.71, "light")]


def tree() -> list[Part]:
    return [rect(0.44, 0.55, 0.56, 0.93, "second"), ellipse(0.5, 0.38, 0.32, 0.29)]


def fir() -> list[Part]:
    return [rect(0.45, 0.78, 0.55, 0.94, "second"),
            poly((0.5, 0.08), (0.27, 0.42), (0.73, 0.42)),
            poly((0.5, 0.27), (0.21, 0.62), (0.79, 0.62)),
            poly((0.5, 0.45), (0.14, 0.8), (0.86, 0.8))]


def cup() -> list[Part]:
    return [line(*arc_points(0.72, 0.55, 0.14, 0.15, -90, 90, 12), role="main", width=0.06),
            poly((0.24, 0.3), (0.72, 0.3), (0.66, 0.85), (0.3, 0.85))]


def fish() -> list[Part]:
    return [poly((0.68, 0.5), (0.92, 0.28), (0.9, 0.72), role="second"),
            ellipse(0.45, 0.5, 0.3, 0.17), ellipse(0.27, 0.46, 0.035, role="dark")]


def star() -> list[Part]:
    return [_star(0.5, 0.53, 0.44, 0.18)]


def key() -> list[Part]:
    return [ring(0.27, 0.5, 0.14, "main", 0.08), rect(0.4, 0.46, 0.9, 0.54),
            rect(0.72, 0.54, 0.77, 0.67), rect(0.83, 0.54, 0.88, 0.72)]


def sun() -> list[Part]:
    rays = [line((0.5 + 0.28 * math.cos(a), 0.5 + 0.28 * math.sin(a)),
                 (0.5 + 0.44 * math.cos(a), 0.5 + 0.44 * math.sin(a)), role="main", width=0.05)
            for a in (math.radians(45 * i) for i in range(8))]
    return [*rays, ellipse(0.5, 0.5, 0.21)]


def moon() -> list[Part]:
    outer = arc_points(0.5, 0.5, 0.38, 0.38, -100, 100, 24)
    inner = arc_points(0.36, 0.5, 0.3, 0.3, 70, -70, 18)
    return [Part(outer + inner)]


def heart() -> list[Part]:
    pts = []
    for i in range(40):
        t = 2 * math.pi * i / 40
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((0.5 + x / 38, 0.48 - y / 38))
    return [Part(tuple(pts))]


def umbrella() -> list[Part]:
    return [line((0.5, 0.45), (0.5, 0.82), *arc_points(0.42, 0.82, 0.08, 0.07, 0, 180, 8),
                 role="dark", width=0.045),
            Part(arc_points(0.5, 0.47, 0.4, 0.32, 180, 360, 24))]


def car() -> list[Part]:
    return [poly((0.28, 0.56), (0.37, 0.34), (0.65, 0.34), (0.76, 0.56)),
            rect(0.08, 0.54, 0.92, 0.76), poly((0.4, 0.53), (0.44, 0.4), (0.62, 0.4),
                                               (0.68, 0.53), role="light"),
            ellipse(0.27, 0.77, 0.1, role="dark"), ellipse(0.73, 0.77, 0.1, role="dark")]


def boat() -> list[Part]:
    return [line((0.5, 0.12), (0.5, 0.66), width=0.035),
            poly((0.54, 0.16), (0.54, 0.6), (0.84, 0.6)),
            poly((0.46, 0.24), (0.46, 0.6), (0.24, 0.6), role="light"),
            poly((0.08, 0.64), (0.92, 0.64), (0.76, 0.86), (0.24, 0.86), role="second")]


def flower() -> list[Part]:
    petals = [ellipse(0.5 + 0.16 * math.cos(a), 0.36 + 0.16 * math.sin(a), 0.11)
              for a in (math.radians(60 * i) for i in range(6))]
    return [line((0.5, 0.45), (0.5, 0.94), role="second", width=0.05),
            ellipse(0.62, 0.72, 0.1, 0.045, role="second"), *petals,
            ellipse(0.5, 0.36, 0.1, role="accent")]


def mushroom() -> list[Part]:
    return [rect(0.41, 0.48, 0.59, 0.88, "light"), Part(arc_points(0.5, 0.52, 0.4, 0.34, 180, 360)),
            ellipse(0.36, 0.38, 0.05, role="light"), ellipse(0.6, 0.3, 0.06, role="light")]


def apple() -> list[Part]:
    return [line((0.5, 0.36), (0.54, 0.16), width=0.04),
            ellipse(0.62, 0.22, 0.09, 0.045, role="second"), ellipse(0.5, 0.6, 0.32, 0.29)]


def balloon() -> list[Part]:
    return [line((0.5, 0.68), (0.45, 0.76), (0.55, 0.84), (0.47, 0.96), width=0.025),
            poly((0.5, 0.64), (0.45, 0.71), (0.55, 0.71)), ellipse(0.5, 0.37, 0.23, 0.29)]


def bell() -> list[Part]:
    return [ellipse(0.5, 0.83, 0.07, 0.06, role="dark"),
            poly((0.3, 0.74), (0.33, 0.36), (0.42, 0.23), (0.5, 0.2), (0.58, 0.23), (0.67, 0.36),
                 (0.7, 0.74), (0.8, 0.81), (0.2, 0.81)),
            ring(0.5, 0.15, 0.05, "dark", 0.035)]


def ladder() -> list[Part]:
    rungs = [line((0.32, y), (0.68, y), role="second", width=0.045)
             for y in (0.2, 0.35, 0.5, 0.65, 0.8)]
    return [*rungs, line((0.32, 0.06), (0.32, 0.94), role="second", width=0.06),
            line((0.68, 0.06), (0.68, 0.94), role="second", width=0.06)]


def arrow() -> list[Part]:
    return [poly((0.08, 0.43), (0.58, 0.43), (0.58, 0.26), (0.92, 0.5), (0.58, 0.74),
                 (0.58, 0.57), (0.08, 0.57))]


def envelope() -> list[Part]:
    return [rect(0.12, 0.28, 0.88, 0.74),
            line((0.12, 0.28), (0.5, 0.56), (0.88, 0.28), width=0.035)]


def clock() -> list[Part]:
    ticks = [line((0.5 + 0.3 * math.cos(a), 0.5 + 0.3 * math.sin(a)),
                  (0.5 + 0.36 * math.cos(a), 0.5 + 0.36 * math.sin(a)), width=0.025)
             for a in (math.radians(30 * i) for i in range(12))]
    return [ellipse(0.5, 0.5, 0.4, role="light"), ring(0.5, 0.5, 0.4, "main", 0.06), *ticks,
            line((0.5, 0.5), (0.5, 0.25), width=0.04), line((0.5, 0.5), (0.68, 0.56), width=0.04)]


def glasses() -> list[Part]:
    return [ring(0.3, 0.52, 0.15, "dark", 0.05), ring(0.7, 0.52, 0.15, "dark", 0.05),
            line(*arc_points(0.5, 0.52, 0.07, 0.06, 200, 340, 6), width=0.04),
            line((0.15, 0.5), (0.06, 0.4), width=0.04), line((0.85, 0.5), (0.94, 0.4), width=0.04)]


def kite() -> list[Part]:
    return [line((0.5, 0.72), (0.42, 0.8), (0.55, 0.86), (0.45, 0.94), width=0.025),
            poly((0.5, 0.06), (0.77, 0.36), (0.5, 0.72), (0.23, 0.36)),
            line((0.5, 0.06), (0.5, 0.72), width=0.02),
            line((0.23, 0.36), (0.77, 0.36), width=0.02)]


def candle() -> list[Part]:
    return [rect(0.39, 0.42, 0.61, 0.92), line((0.5, 0.42), (0.5, 0.34), width=0.025),
            poly((0.5, 0.1), (0.57, 0.26), (0.55, 0.33), (0.5, 0.35), (0.45, 0.33), (0.43, 0.26),
                 role="accent")]


def snowman() -> list[Part]:
    return [ellipse(0.5, 0.74, 0.22), ellipse(0.5, 0.45, 0.16), ellipse(0.5, 0.22, 0.12),
            ellipse(0.46, 0.2, 0.02, role="dark"), ellipse(0.55, 0.2, 0.02, role="dark"),
            poly((0.5, 0.23), (0.64, 0.26), (0.5, 0.27), role="accent")]


def rocket() -> list[Part]:
    return [poly((0.42, 0.78), (0.5, 0.96), (0.58, 0.78), role="accent"),
            poly((0.38, 0.6), (0.24, 0.82), (0.38, 0.78), role="second"),
            poly((0.62, 0.6), (0.76, 0.82), (0.62, 0.78), role="second"),
            poly((0.5, 0.05), (0.62, 0.28), (0.62, 0.8), (0.38, 0.8), (0.38, 0.28)),
            ellipse(0.5, 0.38, 0.06, role="light")]


def bottle() -> list[Part]:
    return [rect(0.34, 0.42, 0.66, 0.92), poly((0.34, 0.44), (0.44, 0.3), (0.56, 0.3),
                                               (0.66, 0.44)),
            rect(0.44, 0.14, 0.56, 0.32), rect(0.43, 0.08, 0.57, 0.15, "second"),
            rect(0.38, 0.56, 0.62, 0.74, "light")]


def hammer() -> list[Part]:
    return [rect(0.45, 0.28, 0.55, 0.93, "second"),
            poly((0.2, 0.14), (0.72, 0.14), (0.82, 0.2), (0.72, 0.32), (0.2, 0.32), role="dark")]


def jack_o_lantern() -> list[Part]:
    return [rect(0.46, 0.16, 0.54, 0.3, "second"), ellipse(0.5, 0.57, 0.4, 0.32),
            poly((0.3, 0.5), (0.36, 0.4), (0.42, 0.5), role="dark"),
            poly((0.58, 0.5), (0.64, 0.4), (0.7, 0.5), role="dark"),
            poly((0.28, 0.62), (0.72, 0.62), (0.64, 0.74), (0.58, 0.68), (0.5, 0.76), (0.42, 0.68),
                 (0.36, 0.74), role="dark")]


def chihuahua() -> list[Part]:
    return [poly((0.32, 0.46), (0.1, 0.08), (0.46, 0.34)), poly((0.68, 0.46), (0.9, 0.08),
                                                                 (0.54, 0.34)),
            poly((0.29, 0.38), (0.18, 0.2), (0.39, 0.33), role="light"),
            poly((0.71, 0.38), (0.82, 0.2), (0.61, 0.33), role="light"),
            ellipse(0.5, 0.56, 0.26, 0.24), ellipse(0.5, 0.7, 0.12, 0.09, role="light"),
            ellipse(0.41, 0.52, 0.035, role="dark"), ellipse(0.59, 0.52, 0.035, role="dark"),
            ellipse(0.5, 0.66, 0.04, 0.03, role="dark")]


def t_shirt() -> list[Part]:
    return [poly((0.3, 0.14), (0.42, 0.14), (0.5, 0.22), (0.58, 0.14), (0.7, 0.14), (0.92, 0.36),
                 (0.79, 0.47), (0.72, 0.41), (0.72, 0.9), (0.28, 0.9), (0.28, 0.41), (0.21, 0.47),
                 (0.08, 0.36))]


# Unseen classes: in the cold start's prior (the stand-in for pretraining) and the OOD sets, never
# in train / ID test (the study's ImageNet-R / A sets are mostly classes it never trained on).

def anchor() -> list[Part]:
    return [ring(0.5, 0.14, 0.07, "dark", 0.04), line((0.5, 0.21), (0.5, 0.86), width=0.06),
            line((0.34, 0.32), (0.66, 0.32), width=0.05),
            line(*arc_points(0.5, 0.6, 0.3, 0.27, 10, 170, 14), width=0.06),
            poly((0.8, 0.56), (0.86, 0.7), (0.74, 0.68), role="dark"),
            poly((0.2, 0.56), (0.14, 0.7), (0.26, 0.68), role="dark")]


def crown() -> list[Part]:
    return [poly((0.12, 0.76), (0.12, 0.28), (0.31, 0.5), (0.5, 0.2), (0.69, 0.5), (0.88, 0.28),
                 (0.88, 0.76)), ellipse(0.5, 0.62, 0.06, role="accent"),
            ellipse(0.28, 0.64, 0.045, role="accent"), ellipse(0.72, 0.64, 0.045, role="accent")]


def tent() -> list[Part]:
    return [poly((0.06, 0.86), (0.5, 0.14), (0.94, 0.86)),
            poly((0.38, 0.86), (0.5, 0.52), (0.62, 0.86), role="dark"),
            line((0.5, 0.14), (0.5, 0.06), width=0.03)]


def cactus() -> list[Part]:
    return [line((0.42, 0.62), (0.24, 0.62), (0.24, 0.38), role="main", width=0.11),
            line((0.58, 0.5), (0.76, 0.5), (0.76, 0.26), role="main", width=0.11),
            poly((0.41, 0.92), (0.41, 0.2), (0.45, 0.12), (0.55, 0.12), (0.59, 0.2), (0.59, 0.92)),
            rect(0.3, 0.88, 0.7, 0.96, "second")]


def butterfly() -> list[Part]:
    return [ellipse(0.3, 0.36, 0.2, 0.17), ellipse(0.7, 0.36, 0.2, 0.17),
            ellipse(0.34, 0.66, 0.14, 0.13, role="second"),
            ellipse(0.66, 0.66, 0.14, 0.13, role="second"),
            ellipse(0.5, 0.5, 0.045, 0.3, role="dark"),
            line((0.48, 0.22), (0.4, 0.08), width=0.02),
            line((0.52, 0.22), (0.6, 0.08), width=0.02)]


def bicycle() -> list[Part]:
    return [ring(0.24, 0.66, 0.17, "dark", 0.04), ring(0.76, 0.66, 0.17, "dark", 0.04),
            line((0.24, 0.66), (0.42, 0.4), (0.66, 0.4), (0.76, 0.66), role="main", width=0.04),
            line((0.42, 0.4), (0.5, 0.66), (0.66, 0.4), role="main", width=0.04),
            line((0.24, 0.66), (0.5, 0.66), role="main", width=0.04),
            line((0.38, 0.3), (0.48, 0.3), width=0.04), line((0.66, 0.4), (0.62, 0.26),
                                                             (0.7, 0.24), width=0.04)]


Drawing = Callable[[], list[Part]]

# name -> (drawing, palette {role: RGB}); the ID style paints these colours (jittered).
_P = {
    "house": (house, {"main": (205, 170, 120), "second": (170, 40, 40)}),
    "tree": (tree, {"main": (50, 150, 60), "second": (110, 70, 35)}),
    "fir": (fir, {"main": (30, 110, 60), "second": (100, 65, 30)}),
    "cup": (cup, {"main": (235, 235, 240)}),
    "fish": (fish, {"main": (240, 140, 40), "second": (220, 90, 30)}),
    "star": (star, {"main": (250, 210, 40)}),
    "key": (key, {"main": (200, 170, 60)}),
    "sun": (sun, {"main": (250, 190, 30)}),
    "moon": (moon, {"main": (240, 230, 150)}),
    "heart": (heart, {"main": (215, 30, 60)}),
    "umbrella": (umbrella, {"main": (60, 80, 200)}),
    "car": (car, {"main": (200, 30, 30)}),
    "boat": (boat, {"main": (240, 240, 235), "second": (120, 80, 40)}),
    "flower": (flower, {"main": (230, 80, 170), "second": (60, 150, 50),
                        "accent": (250, 220, 40)}),
    "mushroom": (mushroom, {"main": (200, 30, 30)}),
    "apple": (apple, {"main": (200, 25, 25), "second": (60, 160, 50)}),
    "balloon": (balloon, {"main": (230, 50, 90)}),
    "bell": (bell, {"main": (215, 175, 50)}),
    "ladder": (ladder, {"second": (150, 100, 50)}),
    "arrow": (arrow, {"main": (40, 120, 210)}),
    "envelope": (envelope, {"main": (245, 240, 225)}),
    "clock": (clock, {"main": (60, 60, 70)}),
    "glasses": (glasses, {}),
    "kite": (kite, {"main": (240, 100, 30)}),
    "candle": (candle, {"main": (245, 240, 220), "accent": (250, 170, 30)}),
    "snowman": (snowman, {"main": (250, 250, 252), "accent": (240, 120, 30)}),
    "rocket": (rocket, {"main": (220, 220, 230), "second": (200, 40, 40),
                        "accent": (250, 160, 30)}),
    "bottle": (bottle, {"main": (40, 140, 80), "second": (200, 170, 60)}),
    "hammer": (hammer, {"second": (160, 110, 60)}),
    "jack-o'-lantern": (jack_o_lantern, {"main": (245, 130, 20), "second": (60, 130, 40)}),
    "Chihuahua": (chihuahua, {"main": (215, 175, 120), "light": (245, 220, 190)}),
    "T-shirt": (t_shirt, {"main": (40, 160, 200)}),
    "anchor": (anchor, {}),
    "crown": (crown, {"main": (240, 195, 40), "accent": (200, 30, 60)}),
    "tent": (tent, {"main": (60, 140, 90)}),
    "cactus": (cactus, {"main": (50, 150, 70), "second": (190, 100, 60)}),
    "butterfly": (butterfly, {"main": (140, 60, 200), "second": (230, 120, 200)}),
    "bicycle": (bicycle, {"main": (40, 90, 200)}),
}
DEFAULT_ROLES = {"main": (120, 120, 130), "second": (90, 90, 100), "accent": (240, 200, 40),
                 "dark": (40, 40, 45), "light": (235, 235, 225)}

DRAWINGS: dict[str, Drawing] = {name: fn for name, (fn, _) in _P.items()}
PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    name: {**DEFAULT_ROLES, **palette} for name, (_, palette) in _P.items()}
UNSEEN_CLASSES = ("anchor", "crown", "tent", "cactus", "butterfly", "bicycle")
SEEN_CLASSES = tuple(n for n in _P if n not in UNSEEN_CLASSES)
