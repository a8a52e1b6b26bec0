"""Headings, compass words, relative turns and the two action spaces (the rule axis).

Headings are degrees clockwise from north in [0, 360). The absolute action space names the
8 compass directions; the relative one names the turn from the current heading:
d < -45 left, d > 45 right, -45 <= d <= 0 slightly left, otherwise slightly right, where d is
the heading change.

**The study's wrap bug, fixed here.** The study computes d = new - old without wrapping, so a
turn from 350 to 10 degrees (a 20 degree turn to the right) has d = -340 and comes out as
"left", and 10 -> 350 (20 degrees to the left) as "right". `heading_change` wraps d into
(-180, 180] first; `relative_turn(..., wrap=False)` reproduces the study for comparison.
"""

from __future__ import annotations

import math
import re

COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
RELATIVE = ("left", "right", "slightly left", "slightly right")
ACTION_SPACES = ("absolute", "relative")
FORWARD, STOP = "forward()", "stop()"

# The study's action-space text, verbatim (its prompts' [Action space] section).
ACTION_SPACE_TEXT = {
    "absolute": '"forward()": indicates moving forward one step\n'
                '"turn_direction(x)": indicates adjust the ego agent direction towards x '
                "direction. x could be any following 8 directions ['north', 'northeast', "
                "'east', 'southeast', 'south', 'southwest', 'west', 'northwest']\n"
                '"stop()": indicates the navigation is finished.',
    "relative": '"forward()": indicates moving forward one step\n'
                '"turn_direction(x)": indicates adjust the ego agent direction towards x '
                "direction. x could be any following ['left', 'right', 'slightly left', "
                "'slightly right']\n"
                '"stop()": indicates the navigation is finished.',
}


def normalize_heading(degrees: float) -> float:
    """`degrees` in [0, 360)."""
    value = math.fmod(float(degrees), 360.0)
    return value + 360.0 if value < 0 else value


def compass_word(degrees: float) -> str:
    """The nearest of the 8 compass directions (sectors of 45 degrees centred on each)."""
    return COMPASS[int((normalize_heading(degrees) + 22.5) // 45) % 8]


def heading_text(degrees: float) -> str:
    """The study's milestone heading: integer degrees and the compass word, ``177 (south)``."""
    value = round(normalize_heading(degrees)) % 360
    return f"{value} ({compass_word(value)})"


def heading_change(old: float, new: float, *, wrap: bool = True) -> float:
    """The turn from `old` to `new` in degrees; wrapped into (-180, 180] unless `wrap=False`
    (the study: plain `new - old`, which can be anywhere in (-360, 360))."""
    d = float(new) - float(old)
    if not wrap:
        return d
    d = math.fmod(d, 360.0)
    if d > 180.0:
        d -= 360.0
    elif d <= -180.0:
        d += 360.0
    return d


def relative_turn(old: float, new: float, *, wrap: bool = True) -> str:
    """The relative turn word for turning from heading `old` to heading `new`."""
    d = heading_change(old, new, wrap=wrap)
    if d < -45:
        return "left"
    if d > 45:
        return "right"
    if d <= 0:
        return "slightly left"
    return "slightly right"


def turn(direction: str) -> str:
    """The action string of a turn: ``turn_direction(east)``."""
    return f"turn_direction({direction})"


def turn_actions(action_space: str) -> tuple[str, ...]:
    """Every action of `action_space`, turns first, then forward() and stop()."""
    words = COMPASS if action_space == "absolute" else RELATIVE
    return (*(turn(w) for w in words), FORWARD, STOP)


_COMPACT = {"fwd": FORWARD, "stop": STOP}
_CANONICAL_RE = re.compile(r"^turn_direction\(\s*([a-z ]{1,20}?)\s*\)$")


def canonical_action(text: str) -> str:
    """An action as the verifier compares it: the study's strings (``forward()``,
    ``stop()``, ``turn_direction(x)``), from either style (compact: ``fwd``, ``stop``, or the
    bare direction word). Whitespace and case are normalised; anything else is returned
    stripped (and cannot match a ground truth)."""
    value = " ".join(text.strip().lower().split())
    if value in _COMPACT:
        return _COMPACT[value]
    if value in COMPASS or value in RELATIVE:
        return turn(value)
    match = _CANONICAL_RE.match(value)
    if match:
        return turn(" ".join(match.group(1).split()))
    return value


def compact_action(action: str) -> str:
    """The compact prompt style's word for a canonical action (``fwd``, ``stop``, ``east``)."""
    if action == FORWARD:
        return "fwd"
    if action == STOP:
        return "stop"
    match = _CANONICAL_RE.match(action)
    return match.group(1) if match else action
