"""Drawing one referring-expression example (scene, target, expression) for a split variant.

Variants (what a split holds):

| variant   | objects | expression                                  | background / style         |
|-----------|---------|---------------------------------------------|----------------------------|
| id        | 2-4     | attributes only (35%) or one ID relation    | plain light / filled       |
| visual    | 2-4     | as id                                       | unseen bg / outline, hatch |
| long      | 4-6     | two ID relation clauses, both needed        | as id                      |
| relation  | 2-4     | one clause with an unseen relation word     | as id                      |

A relation example places "twins" of the target (same shape and colour) so that the head alone
is ambiguous and the relation is what picks the target out. Draws are rejection-sampled from
the example's own random stream until `referring.resolve` says the expression picks out exactly
the target, so an example is a pure function of its stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gengap.tasks.grounding import referring as ref
from gengap.tasks.grounding.scenes import (
    COLOURS,
    ID_BACKGROUNDS,
    ID_STYLES,
    OOD_BACKGROUNDS,
    OOD_STYLES,
    SHAPES,
    SIZES,
    Scene,
    random_objects,
)

VARIANTS = ("id", "visual", "long", "relation")
# Warmup only: one object, named by its shape -- plain localisation, the detection data a real
# VLM's pretraining holds (the tiny model's cold start cannot find objects without it).
SINGLE = "single"
MAX_DRAWS = 500


@dataclass(frozen=True)
class Example:
    """A scene, the index of its target object and the expression that picks it out."""

    scene: Scene
    target: int
    expression: ref.Expression
    variant: str
    kind: str  # "attributes" or "relation"


def _look(rng: random.Random, variant: str) -> tuple[str, str]:
    if variant != "visual":
        return rng.choice(ID_BACKGROUNDS), rng.choice(ID_STYLES)
    # At least one of the two is unseen; most often both.
    case = rng.randrange(3)
    background = rng.choice(OOD_BACKGROUNDS if case != 1 else ID_BACKGROUNDS)
    style = rng.choice(OOD_STYLES if case != 0 else ID_STYLES)
    return background, style


def draw_example(rng: random.Random, variant: str, *, width: int, height: int,
                 layout: str, attribute_share: float = 0.35) -> Example:
    """One example of `variant` (see the module table), from `rng`."""
    if variant not in (*VARIANTS, SINGLE):
        raise ValueError(f"unknown variant {variant!r}")
    for _ in range(MAX_DRAWS):
        background, style = _look(rng, variant)
        long = variant == "long"
        n = 1 if variant == SINGLE else rng.randint(4, 6) if long else rng.randint(2, 4)
        kind = "relation" if long or variant == "relation" or (
            variant != SINGLE and rng.random() >= attribute_share) else "attributes"
        target_attrs = (rng.choice(SHAPES), rng.choice(tuple(COLOURS)), rng.choice(SIZES))
        attrs = [target_attrs]
        if kind == "relation":
            for _ in range(2 if long else 1):
                attrs.append((target_attrs[0], target_attrs[1], rng.choice(SIZES)))
        elif variant != SINGLE:  # an object of the same shape: the shape alone does not do
            attrs.append((target_attrs[0], rng.choice(tuple(COLOURS)), rng.choice(SIZES)))
        objects = random_objects(rng, n, width=width, height=height, layout=layout,
                                 attributes=attrs)
        if objects is None:
            continue
        order = list(range(n))
        rng.shuffle(order)
        scene = Scene(width, height, background, style, tuple(objects[i] for i in order))
        target = order.index(0)
        if kind == "attributes":
            options = ref.unique_descs(scene, target)
            if variant == SINGLE:  # name its colour too, as the multi-object scenes do
                options = [ref.Desc(scene.objects[0].shape, colour=scene.objects[0].colour)]
            if not options:
                continue
            expr = ref.Expression(rng.choice(options))
        else:
            words = ref.OOD_RELATIONS if variant == "relation" else ref.ID_RELATIONS
            options = ref.relation_expressions(scene, target, words, 2 if long else 1, rng)
            if not options:
                continue
            # Each relation word equally likely (superlatives would otherwise dominate).
            word = rng.choice(sorted({e.clauses[0][0] for e in options}))
            expr = rng.choice([e for e in options if e.clauses[0][0] == word])
        if ref.resolve(expr, scene) != [target]:  # defensive: construction guarantees it
            continue
        return Example(scene, target, expr, variant, kind)
    raise RuntimeError(f"no {variant} example in {MAX_DRAWS} draws")
