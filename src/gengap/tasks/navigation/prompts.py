"""Prompts in two styles.

`paper`: the study's prompt templates (Q_VIRL_L for text, Q_VIRL_VL for the view grid) with
their sections -- [Task Description], [Instruction], ([Observation format],) [Action space],
[Observations and actions sequence], [Output] -- and JSON keys "current observation",
"current instruction", "action", worded as the study's code words them (its typo "stree
tviews" included: its checkpoints were trained on it). The SFT response is the study's
ResponseVIRL object.

`compact`: the same content in a few hundred characters for tiny character-level models:

    abs                                     <- action space: abs | rel
    left>north;CVS/rf;right>east;@Luna Pizza/l   <- turns (relative>absolute) and landmarks
    -:north -:fwd -:fwd CVS/rf+:              <- history "observation:action", current last

Observations: ``-`` nothing nearby, ``NAME/SIDE`` a landmark (sides f, rf, r, rb, b, lb, l,
lf), a trailing ``+`` an intersection, ``?`` the view grid (image variant). The compact
response is ``OBSERVATION|ACTION``, e.g. ``CVS/rf+|east`` or ``-|fwd``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gengap.tasks.navigation.actions import ACTION_SPACE_TEXT, compact_action
from gengap.tasks.navigation.route import AT_INTERSECTION, NO_LANDMARK, NOTHING_NEARBY, SIDES

PROMPT_STYLES = ("paper", "compact")

_TEXT = """
[Task Description]
You are an expert in navigation. You will receive a sequence of instructions to follow. You
are also provided with your observation and action history in text. Your goal is to first analyze the instruction and identify the next sentence to be executed. 
Then, you need to provide the action to be taken based on the current observation and instruction.

[Instruction]
{instruction}

[Action space]
{action_space}

[Observations and actions sequence]
{obs_act_seq}

[Output]
{{
  "current observation": latest observation from the observation sequence,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}}
"""  # noqa: E501, W291 (the study's template, trailing space included)

_IMAGE = """
[Task Description]
You are an expert in navigation. You will receive a sequence of instructions to follow while observing your surrounding stree tviews. You
are also provided with your observation and action history in text. Your goal is to first analyze the instruction and identify the next sentence to be executed. 
Then, you need to provide the action to be taken based on the current observation and instruction.

[Instruction]
{instruction}

[Observation format]
You observe a 2x2 grid of streetview images with the following headings:
[front, right
 back, left]
You need to identify if any of the landmarks in the instruction are visible in the street view grid.

[Action space]
{action_space}

[Observations and actions sequence]
{obs_act_seq}

[Output]
{{
  "current observation": latest observation from the street view grid,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}}
"""  # noqa: E501, W291 (the study's template, verbatim)

RESPONSE = """{{
  "current observation": "{observation}",
  "current instruction": "{instruction}",
  "action": "{action}",
}}"""

FAILURE_TURN = "You failed this trial because {feedback}"
IMAGE_OBSERVATION = "You observe an image of 4 views"
SIDE_CODES = dict(zip(SIDES, ("f", "rf", "r", "rb", "b", "lb", "l", "lf"), strict=True))
_LANDMARK_RE = re.compile(r"^(?:The destination )?(.{1,80}?) is on your (" +
                          "|".join(sorted(SIDES, key=len, reverse=True)) + r")$")
_TURN_RE = re.compile(r"^(?:First, turn|Turn) (.{1,20}?) to face (\w{1,12})\.$")


def observation(point: Mapping[str, Any]) -> str:
    """The study's oracle observation: ``landmark; You observe an intersection`` (or
    ``landmark; `` away from intersections)."""
    return f"{point['landmark']}; {AT_INTERSECTION if point['intersection'] else ''}"


def compact_landmark(text: str) -> str:
    """``CVS is on your right front`` -> ``CVS/rf``; nothing nearby -> ``-``."""
    if text in (NOTHING_NEARBY, NO_LANDMARK, "", "None"):
        return "-"
    match = _LANDMARK_RE.match(text)
    return f"{match.group(1)}/{SIDE_CODES[match.group(2)]}" if match else text


def compact_observation(point: Mapping[str, Any]) -> str:
    """A rail point's compact observation code."""
    return compact_landmark(point["landmark"]) + ("+" if point["intersection"] else "")


def compact_instruction(sentence: str) -> str:
    """One instruction sentence in compact form (turn: ``left>north``; move: a landmark code,
    ``@`` marking the destination)."""
    match = _TURN_RE.match(sentence)
    if match:
        return f"{match.group(1)}>{match.group(2)}"
    for lead, mark in (("Move forward until you reach destination where ", "@"),
                       ("Move forward until you reach next intersection where ", "")):
        if sentence.startswith(lead):
            return mark + compact_landmark(sentence[len(lead):].rstrip("."))
    if sentence.startswith("Move forward until you reach"):
        return "-"
    return sentence


def history_lines(rail: Sequence[Mapping[str, Any]], point: int, action_space: str,
                  *, image: bool, hint: bool) -> str:
    """The study's [Observations and actions sequence]: O_i / A_i lines up to `point`."""
    lines = []
    for i in range(point):
        lines.append(f"O_{i + 1}: {observation(rail[i])}")
        lines.append(f"A_{i + 1}: {rail[i][action_space]}")
    current = rail[point]
    if image:
        inter = AT_INTERSECTION if hint and current["intersection"] else ""
        lines.append(f"O_{point + 1}: {IMAGE_OBSERVATION}; {inter}")
    else:
        lines.append(f"O_{point + 1}: {observation(current)}")
    lines.append(f"A_{point + 1}: ")
    return "\n".join(lines) + "\n"


def paper_prompt(sentences: Sequence[str], rail: Sequence[Mapping[str, Any]], point: int,
                 action_space: str, *, image: bool, hint: bool = True) -> str:
    """The study's user prompt at rail point `point`."""
    instruction = "".join(f"{i + 1}. {s}\n" for i, s in enumerate(sentences))
    template = _IMAGE if image else _TEXT
    return template.format(instruction=instruction, action_space=ACTION_SPACE_TEXT[action_space],
                           obs_act_seq=history_lines(rail, point, action_space, image=image,
                                                     hint=hint))


def paper_response(sentences: Sequence[str], rail: Sequence[Mapping[str, Any]], point: int,
                   action_space: str) -> str:
    """The study's SFT response at `point`: observation, instruction sentence, action."""
    p = rail[point]
    return RESPONSE.format(observation=observation(p), instruction=sentences[p["instruction"]],
                           action=p[action_space])


def compact_prompt(sentences: Sequence[str], rail: Sequence[Mapping[str, Any]], point: int,
                   action_space: str, *, image: bool, hint: bool = True) -> str:
    """The compact prompt at `point` (see the module docstring)."""
    head = "abs" if action_space == "absolute" else "rel"
    plan = ";".join(compact_instruction(s) for s in sentences)
    past = [f"{compact_observation(rail[i])}:{compact_action(rail[i][action_space])}"
            for i in range(point)]
    current = rail[point]
    if image:
        now = "?" + ("+" if hint and current["intersection"] else "")
    else:
        now = compact_observation(current)
    return f"{head}\n{plan}\n" + " ".join([*past, f"{now}:"])


def compact_response(rail: Sequence[Mapping[str, Any]], point: int, action_space: str) -> str:
    """The compact target at `point`: ``OBSERVATION|ACTION``."""
    p = rail[point]
    return f"{compact_observation(p)}|{compact_action(p[action_space])}"
