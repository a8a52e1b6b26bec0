"""Referring expressions over a `Scene`, unambiguous by construction.

An expression is a head description (shape, with optional size and colour) and zero or more
relation clauses, each a relation word and an anchor description:
"the small red circle left of the blue square and above the green triangle".

`resolve(expression, scene)` returns the objects the expression picks out, or None when the
expression is not crisp on that scene (an anchor that is not unique, an object for which a
relation is borderline, a superlative whose runner-up is too close). A generated expression is
kept only when `resolve` returns exactly its target, so every sample has one right answer.

Relations:

- ID words: ``left of``, ``right of``, ``above``, ``below`` -- the object lies wholly on that
  side of the anchor's box; it clearly does not when its centre is on the other side of the
  anchor's centre; anything in between is borderline (rejected);
- unseen words (the relation-OOD split): synonyms ``to the left of``, ``to the right of``,
  ``over``, ``beneath``, and superlatives ``closest to``, ``farthest from`` (centre distance; the
  runner-up must be >= 1.3x as far / near).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gengap.tasks.grounding.scenes import Obj, Scene

ID_RELATIONS = ("left of", "right of", "above", "below")
SYNONYMS = {"to the left of": "left of", "to the right of": "right of", "over": "above",
            "beneath": "below"}
SUPERLATIVES = ("closest to", "farthest from")
OOD_RELATIONS = (*SYNONYMS, *SUPERLATIVES)
RELATIONS = (*ID_RELATIONS, *OOD_RELATIONS)
SUPERLATIVE_GAP = 1.3


@dataclass(frozen=True)
class Desc:
    """A description of one object: its shape and optionally its size and colour."""

    shape: str
    colour: str | None = None
    size: str | None = None

    def matches(self, obj: Obj) -> bool:
        return (obj.shape == self.shape and self.colour in (None, obj.colour)
                and self.size in (None, obj.size))

    def text(self) -> str:
        return " ".join(w for w in ("the", self.size, self.colour, self.shape) if w)

    def as_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size}


@dataclass(frozen=True)
class Expression:
    """A head description and its relation clauses (relation word, anchor description)."""

    head: Desc
    clauses: tuple[tuple[str, Desc], ...] = field(default_factory=tuple)

    def text(self) -> str:
        return " and ".join([self.head.text() + (f" {self.clauses[0][0]} "
                                                 f"{self.clauses[0][1].text()}"
                                                 if self.clauses else ""),
                             *(f"{rel} {anchor.text()}" for rel, anchor in self.clauses[1:])])

    def as_dict(self) -> dict[str, Any]:
        return {"head": self.head.as_dict(),
                "clauses": [[rel, anchor.as_dict()] for rel, anchor in self.clauses]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Expression:
        return cls(Desc(**d["head"]), tuple((str(r), Desc(**a)) for r, a in d["clauses"]))

    @property
    def words(self) -> int:
        return len(self.text().split())


def _side(rel: str, obj: Obj, anchor: Obj) -> bool | None:
    """True: `obj` is wholly on `rel`'s side of `anchor`; False: clearly not; None: borderline."""
    rel = SYNONYMS.get(rel, rel)
    if rel == "left of":
        inside, centre = obj.box[2] <= anchor.box[0], obj.cx >= anchor.cx
    elif rel == "right of":
        inside, centre = obj.box[0] >= anchor.box[2], obj.cx <= anchor.cx
    elif rel == "above":
        inside, centre = obj.box[3] <= anchor.box[1], obj.cy >= anchor.cy
    elif rel == "below":
        inside, centre = obj.box[1] >= anchor.box[3], obj.cy <= anchor.cy
    else:
        raise ValueError(f"unknown relation {rel!r}")
    return True if inside else False if centre else None


def _distance(a: Obj, b: Obj) -> float:
    return math.hypot(a.cx - b.cx, a.cy - b.cy)


def resolve(expr: Expression, scene: Scene) -> list[int] | None:
    """Indices of the objects `expr` picks out, or None if it is not crisp on `scene`."""
    objects = scene.objects
    candidates = [i for i, o in enumerate(objects) if expr.head.matches(o)]
    for rel, desc in expr.clauses:
        anchors = [i for i, o in enumerate(objects) if desc.matches(o)]
        if len(anchors) != 1:
            return None
        a = anchors[0]
        candidates = [i for i in candidates if i != a]
        if rel in SUPERLATIVES:
            if not candidates:
                return []
            ranked = sorted(candidates, key=lambda i: _distance(objects[i], objects[a]),
                            reverse=rel == "farthest from")
            if len(ranked) > 1:
                d0, d1 = (_distance(objects[i], objects[a]) for i in ranked[:2])
                near, far = min(d0, d1), max(d0, d1)
                if far < SUPERLATIVE_GAP * max(near, 1e-9):
                    return None
            candidates = ranked[:1]
            continue
        sides = {i: _side(rel, objects[i], objects[a]) for i in candidates}
        if any(v is None for v in sides.values()):
            return None
        candidates = [i for i, v in sides.items() if v]
    return candidates


def unique_descs(scene: Scene, index: int) -> list[Desc]:
    """The shortest descriptions (fewest attributes) that pick out object `index` alone."""
    obj = scene.objects[index]
    options = [[Desc(obj.shape)],
               [Desc(obj.shape, colour=obj.colour), Desc(obj.shape, size=obj.size)],
               [Desc(obj.shape, colour=obj.colour, size=obj.size)]]
    for level in options:
        found = [d for d in level if [i for i, o in enumerate(scene.objects)
                                      if d.matches(o)] == [index]]
        if found:
            return found
    return []


def head_descs(obj: Obj) -> list[Desc]:
    """Descriptions of `obj` a relation expression may start from (colour always named)."""
    return [Desc(obj.shape, colour=obj.colour), Desc(obj.shape, obj.colour, obj.size)]


def relation_expressions(scene: Scene, target: int, words: Sequence[str], clauses: int,
                         rng: random.Random) -> list[Expression]:
    """Expressions with `clauses` relation clauses that pick out `target` alone and need them:
    the head alone matches more than one object."""
    obj = scene.objects[target]
    anchors = [(i, d) for i in range(len(scene.objects)) if i != target
               for d in unique_descs(scene, i)[:1]]
    found = []
    for head in head_descs(obj):
        if sum(head.matches(o) for o in scene.objects) < 2:
            continue  # the head alone would do: no relation needed
        singles = [(w, d) for w in words for _, d in anchors]
        if clauses == 1:
            combos = [(c,) for c in singles]
        else:
            combos = [(c1, c2) for c1 in singles for c2 in singles if c1[1] != c2[1]]
            rng.shuffle(combos)
            combos = combos[:200]
        for combo in combos:
            expr = Expression(head, tuple(combo))
            if resolve(expr, scene) == [target]:
                if clauses > 1 and any(resolve(Expression(head, (c,)), scene) == [target]
                                       for c in combo):
                    continue  # every clause must be needed
                found.append(expr)
    return found
