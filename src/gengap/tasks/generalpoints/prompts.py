"""Prompts in two styles.

`paper`: the study's wording, character for character (its released checkpoints were trained on
it), including the response template used for its SFT data.
`compact`: a short prompt for tiny character-level models. The rule is a flag, the hand a list:
    text:  "24 as10 4,3,2,K"        -> "4*3+2+10"
    image: "<image> 24 as10"         -> "4,3,2,K|4*3+2+10"
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_STYLES = ("paper", "compact")

FACE_RULE_SENTENCES = {
    "as10": "'J', 'Q', and 'K' count as '10'",
    "as11-13": "'J', 'Q', and 'K' count as '11', '12', and '13' respectively",
}

_HEAD = """
[Task Description]
You are an expert {target} points card game player. {observe}
Note that {rule}, and each card must be used once.
Your goal is to output a formula that evaluates to {target} using numbers from the cards and operators such as '+', '-', '*', '/', '(', ')', and '='.
"""  # noqa: E501 (the study's wording, verbatim)

_OUTPUT_FIELDS = """{{
  "cards": [x, y, z, w], where {rule},
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals {target}',
}}
"""

PAPER_TEXT = (
    _HEAD.replace("{observe}", "You will receive a set of 4 cards.")
    + "\n[Input]\nCards: {cards}\n\n[Output]\n"
    + _OUTPUT_FIELDS
    + "\n"
)
PAPER_IMAGE = (
    _HEAD.replace("{observe}", "You are observing these four cards in the image.")
    + "\n[Output]\nYour response should be a valid json file in the following format:\n"
    + _OUTPUT_FIELDS
    + "\n"
)
PAPER_RESPONSE = """
{{
  "cards": {cards},
  "number": {numbers},
  "formula": "{formula}",
}}"""

FAILURE_TURN = "You failed this trial because {feedback}"


def paper_prompt(cards: Sequence[str], face_rule: str, target: int, *, image: bool) -> str:
    """The study's user prompt. The hand is printed as Python's repr of the name list."""
    rule = FACE_RULE_SENTENCES[face_rule]
    if image:
        return PAPER_IMAGE.format(target=target, rule=rule)
    return PAPER_TEXT.format(target=target, rule=rule, cards=repr(list(cards)))


def paper_response(cards: Sequence[str], values: Sequence[int], formula: str, target: int) -> str:
    """The study's SFT response: the JSON-like object with cards, numbers and formula."""
    return PAPER_RESPONSE.format(
        cards=repr(list(cards)), numbers=repr(list(values)), formula=f"{formula}={target}"
    )


def compact_prompt(cards: Sequence[str], face_rule: str, target: int, *, image: bool) -> str:
    """A short prompt: target, rule flag and (text only) the hand."""
    if image:
        return f"{target} {face_rule}"
    return f"{target} {face_rule} {','.join(cards)}"


def compact_response(cards: Sequence[str], formula: str, *, image: bool) -> str:
    """The compact target: the formula, preceded by the recognised cards for images."""
    return f"{','.join(cards)}|{formula}" if image else formula
