"""24-game items judged by gengap's exact GeneralPoints verifier instead of reasoning-gym's.

Why: reasoning-gym 0.1.25's `puzzle24.score_answer` is wrong. It counts the integers of the
answer and checks them against ``min_value..max_value`` but never checks that they are the
hand's numbers, so ``6*4*1*1`` scores 1.0 on any hand; it also truncates the value with
``int(...)``, so an expression worth 24.5 counts as 24; and it evaluates the model's text with
sympy's `parse_expr`, which runs `eval`. `tests/test_reasoning.py` shows both wrong answers
scoring 1.0 there and failing here.

The GeneralPoints verifier (`gengap.tasks.generalpoints.verify.judge`) parses with a bounded
grammar of its own, evaluates exactly (Fractions), and requires every number of the hand once.
Spaces are ignored here (reasoning-gym's answers are written ``4 + 3 + 9 + 8``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gengap.tasks.base import Verdict
from gengap.tasks.generalpoints.solver import lookup
from gengap.tasks.generalpoints.verify import judge

# reasoning-gym dataset -> the target of its 24 game (the hand is metadata["numbers"]).
GAME24_TARGETS: dict[str, int] = {"puzzle24": 24}


def is_game24(dataset: str) -> bool:
    """Whether items of `dataset` are judged by the GeneralPoints verifier."""
    return dataset in GAME24_TARGETS


def judge_game24(dataset: str, answer: str | None, metadata: Mapping[str, Any]) -> Verdict:
    """The exact verdict on `answer` (the text inside <answer> tags) for a 24-game item.

    reward = score = 1.0 if the formula uses each number of the hand once and equals the target
    exactly, else 0.0; the feedback is the GeneralPoints verifier's.
    """
    values = tuple(int(v) for v in metadata["numbers"])
    target = GAME24_TARGETS[dataset]
    if answer is None:
        return Verdict(0.0, False, "no <answer>...</answer> found.", {"score": 0.0},
                       {"answer": None, "judge": "generalpoints"})
    verdict = judge(answer, values=values, entry=lookup(values, target), target=target,
                    whitespace="ignore")
    score = 1.0 if verdict.correct else 0.0
    return Verdict(score, verdict.correct, verdict.feedback, {"score": score},
                   {"answer": answer[:200], "judge": "generalpoints"})


def canonical(dataset: str, metadata: Mapping[str, Any]) -> str | None:
    """The GeneralPoints solver's canonical solution of the item's hand (None if unsolvable)."""
    values = tuple(int(v) for v in metadata["numbers"])
    return lookup(values, GAME24_TARGETS[dataset]).canonical
