"""Prompts and answers of the grounding task.

`paper`: the DC-SFT study's (and VLM-R1's) user turn verbatim, the image first; the answer is
the bare box ``[x1, y1, x2, y2]`` (no think / answer tags), which the study's scorer finds with
a regex. `compact`: the expression alone, for the embedded tiny model (a character-level
decoder whose context should go to the image tokens), and the box without spaces.
"""

from __future__ import annotations

from gengap.boxes import Box

PAPER_PREFIX = "Please provide the bounding box coordinate of the region this sentence describes: "
STYLES = ("paper", "compact")


def paper_prompt(expression: str) -> str:
    """The study's prompt: ``Please provide ... describes: <expression>.``"""
    return f"{PAPER_PREFIX}{expression.rstrip('.')}."


def compact_prompt(expression: str) -> str:
    """The tiny model's prompt: the expression itself."""
    return expression.rstrip(".")


def expression_of(problem: str) -> str:
    """The referring expression inside a VLM-R1 / DC-SFT ``problem`` (else the text as it is)."""
    text = problem.replace("<image>", "").strip()
    if text.startswith(PAPER_PREFIX):
        text = text[len(PAPER_PREFIX):]
    return text.strip().rstrip(".").strip()


def answer_text(box: Box, style: str, decimals: int = 0) -> str:
    """The SFT target: ``[x1, y1, x2, y2]`` (paper) or ``[x1,y1,x2,y2]`` (compact)."""
    parts = [f"{v:.{decimals}f}" if decimals else str(round(v)) for v in box]
    return "[" + (", " if style == "paper" else ",").join(parts) + "]"
