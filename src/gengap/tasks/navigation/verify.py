"""The navigation verifier: the study's output fields, rewards and messages.

A completion states "current observation", "current instruction" and "action" (paper style:
the JSON-like object, parsed as JSON first, then field by field with a regex, as the study
does; a field that is not found reads "None"), or ``OBSERVATION|ACTION`` (compact style).

Rewards (the study's table): the action equals the ground truth: +1; otherwise -1.5 when the
completion wrongly claims or wrongly denies being at an intersection, else -1. The verdict is
correct exactly when the action matches.

**The study's intersection-check bug, fixed here.** The study's verifier looks for the word
"intersection" in the ground-truth *landmark* text ("CVS is on your right front"), which never
contains it: the intersection sentence lives in a separate field of the rail. So its "you are
at an intersection" branch (a wrongly denied intersection) never fires, and any wrong action
whose predicted observation mentions an intersection gets -1.5 with "you are not at any
intersection" -- even at an intersection. gengap compares the claim with the rail point's own
intersection flag. `judge(..., study_bug=True)` reproduces the study's check (tests pin both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from gengap.tasks.base import Verdict
from gengap.tasks.navigation.actions import canonical_action
from gengap.tasks.navigation.prompts import compact_observation, observation

REWARDS = {"correct": 1.0, "wrong_intersection": -1.5, "wrong_action": -1.0}
MAX_COMPLETION_CHARS = 8192
_FIELD = r'"{key}"\s*:\s*"([^"\n]{{0,400}})"'
_ACTION_RE = re.compile(_FIELD.format(key="action"))
_OBS_RE = re.compile(_FIELD.format(key="current observation"))
_INSTR_RE = re.compile(_FIELD.format(key="current instruction"))
FORMAT_TOKEN = """
[Output]
{
  "current observation": latest observation from the streetview grid,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}"""
MESSAGES = {
    "correct": "Correct action",
    "not_at": "you are not at any intersection. Please avoid this observation and try again "
              "in the same format:" + FORMAT_TOKEN,
    "at": "you are at an intersection. Please avoid this observation and try again in the "
          "same format:" + FORMAT_TOKEN,
    "wrong": "you make incorrect action. Please avoid this action and try again in the same "
             "format:" + FORMAT_TOKEN,
}
COMPACT_MESSAGES = {"correct": "correct", "not_at": "not at an intersection",
                    "at": "at an intersection", "wrong": "wrong action"}


def parse(completion: str) -> dict[str, str]:
    """The completion's fields ("None" when missing), in either prompt style."""
    text = completion[:MAX_COMPLETION_CHARS]
    fields = {"current observation": "None", "current instruction": "None", "action": "None"}
    if "{" in text or '"action"' in text:
        try:
            loaded = json.loads(text)
        except (ValueError, RecursionError):
            loaded = None
        if isinstance(loaded, dict):
            for key in fields:
                if isinstance(loaded.get(key), str):
                    fields[key] = loaded[key]
            return fields
        for key, regex in (("action", _ACTION_RE), ("current observation", _OBS_RE),
                           ("current instruction", _INSTR_RE)):
            match = regex.search(text)
            if match:
                fields[key] = match.group(1)
        return fields
    obs, sep, action = text.strip().rpartition("|")
    if sep:
        fields["current observation"], fields["action"] = obs.strip(), action.strip()
    else:
        fields["action"] = text.strip()
    return fields


def claims_intersection(observation_text: str, *, compact: bool) -> bool:
    """Whether a predicted observation claims an intersection."""
    return observation_text.endswith("+") if compact else "intersection" in observation_text


def judge(completion: str, point: Mapping[str, Any], action_space: str, *,
          compact: bool = False, study_bug: bool = False) -> Verdict:
    """Judge one completion at rail point `point` under `action_space`."""
    fields = parse(completion)
    action = canonical_action(fields["action"])
    truth = point[action_space]
    predicted_obs = fields["current observation"]
    claim = claims_intersection(predicted_obs, compact=compact)
    expected_obs = compact_observation(point) if compact else observation(point)
    metrics = {
        "intersection_claim": float(claim == bool(point["intersection"])),
        "observation_match": float(" ".join(predicted_obs.split()).rstrip("; ")
                                   == " ".join(expected_obs.split()).rstrip("; ")),
    }
    info = {"action": action, "truth": truth}
    messages = COMPACT_MESSAGES if compact else MESSAGES
    if action == truth:
        return Verdict(REWARDS["correct"], True, messages["correct"], metrics, info)
    at = ("intersection" in point["landmark"]) if study_bug else bool(point["intersection"])
    if claim and not at:
        return Verdict(REWARDS["wrong_intersection"], False, messages["not_at"], metrics, info)
    if not claim and at:
        return Verdict(REWARDS["wrong_intersection"], False, messages["at"], metrics, info)
    return Verdict(REWARDS["wrong_action"], False, messages["wrong"], metrics, info)
