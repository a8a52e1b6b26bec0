"""Routes in the study's record shape, their instructions, and the rail of decision points.

A route record (the study's route file holds a list of them) has ``start_place``
(``relocated_geocode``), ``init_heading``, ``route_results`` (``landmark_list``,
``geocode_list``: the turning intersections, the last entry the destination), ``dest_place``
and ``milestone_info``: a string of ``{ ... }`` blocks of ``key: value`` lines, one block per
entry of ``geocode_list`` (``landmarks``: what is seen there, ``to_next_intersection_heading``:
the heading of the street leading to it, e.g. ``177 (south)``).

`generate_route` walks one of gengap's cities and writes such a record; `build_rail` turns any
record (generated or the study's) into the rail the agent replays:

- the start: ground truth = the first turn, observation "No landmarks nearby";
- along every leg longer than 5 m, `straight_line_length` interpolated points (ground truth
  forward(), "No landmarks nearby");
- each turning intersection: ground truth = the next turn, observation = its landmarks plus
  "You observe an intersection";
- the destination: ground truth stop(), observation = the destination's landmark.

Deliberate difference from the study's code: interpolated points sit strictly inside a leg,
at i/(n+1) of it. The study places them at i/n for i = 1..n, so its last "forward" point
coincides with the next intersection (two rail points at one place, one asking forward(),
one asking for the turn).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from gengap.errors import InputError
from gengap.tasks.navigation.actions import (
    COMPASS,
    FORWARD,
    STOP,
    heading_change,
    heading_text,
    normalize_heading,
    relative_turn,
    turn,
)
from gengap.tasks.navigation.city import City, distance_xy, geo_distance, heading_xy

NO_LANDMARK = "No landmark nearby"  # the study's default for a milestone without landmarks
NOTHING_NEARBY = "No landmarks nearby"  # the study's observation at start / interpolated points
AT_INTERSECTION = "You observe an intersection"
SIDES = ("front", "right front", "right", "right behind", "behind", "left behind", "left",
         "left front")


def side_word(heading: float, bearing: float) -> str:
    """Where something at `bearing` is for someone facing `heading` (8 sectors)."""
    r = heading_change(heading, bearing)  # (-180, 180]
    return SIDES[round(normalize_heading(r) / 45.0) % 8]


# -- milestone strings --------------------------------------------------------------------------


def format_milestones(blocks: Sequence[Mapping[str, str]]) -> str:
    """The study's ``milestone_info`` string for a list of key -> value blocks."""
    out = []
    for block in blocks:
        lines = "".join(f'"{k}": "{v}",\n' for k, v in block.items())
        out.append("{\n" + lines + "}\n")
    return "".join(out)


def parse_milestones(text: str, *, where: str | None = None) -> list[dict[str, str]]:
    """``milestone_info`` -> one dict per ``{ ... }`` block (quotes and trailing commas
    stripped; lines without ':' ignored), as the study's parser reads it."""
    if not isinstance(text, str):
        raise InputError(f"milestone_info must be a string, got {type(text).__name__}",
                         where=where, hint="the study's files hold it as one string of "
                                           "{ key: value } blocks")
    blocks = []
    for raw in text.split("}"):
        body = raw.strip().lstrip("{").strip()
        if not body:
            continue
        block = {}
        for line in body.splitlines():
            line = line.strip().rstrip(",")
            if ":" not in line:
                continue
            key, value = (part.strip().strip("\"'") for part in line.split(":", 1))
            block[key] = value
        if block:
            blocks.append(block)
    return blocks


def parse_heading(text: str, *, where: str | None = None) -> tuple[int, str]:
    """``'177 (south)'`` -> (177, 'south')."""
    try:
        degrees, rest = text.split("(", 1)
        word = rest.split(")", 1)[0].strip()
        value = round(float(degrees.strip()))
    except (ValueError, AttributeError):
        raise InputError(f"bad heading {text!r}", where=where,
                         hint="headings look like '177 (south)'") from None
    if word not in COMPASS:
        raise InputError(f"bad compass word {word!r} in heading {text!r}", where=where,
                         hint=f"one of {', '.join(COMPASS)}")
    return value % 360, word


# -- instructions and rail ----------------------------------------------------------------------


def instructions(headings: Sequence[int], words: Sequence[str], landmarks: Sequence[str],
                 init_heading: float, *, wrap: bool = True) -> list[str]:
    """The study's instruction sentences: per milestone a turn, then a move."""
    out = []
    prev = init_heading
    for i, (deg, word, mark) in enumerate(zip(headings, words, landmarks, strict=True)):
        rel = relative_turn(prev, deg, wrap=wrap)
        prev = deg
        lead = "First, turn" if i == 0 else "Turn"
        out.append(f"{lead} {rel} to face {word}.")
        if i == len(headings) - 1:
            out.append(f"Move forward until you reach destination where {mark}.")
        elif mark == NO_LANDMARK:
            out.append("Move forward until you reach next intersection.")
        else:
            out.append(f"Move forward until you reach next intersection where {mark}.")
    return out


def build_rail(record: Mapping[str, Any], *, straight_line_length: int = 2,
               rng: random.Random | None = None, wrap: bool = True,
               where: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """(instruction sentences, rail points) of a route record.

    Each point: ``geocode``, ``heading`` (facing on arrival), ``absolute`` / ``relative`` (the
    ground-truth action in each action space), ``landmark`` (the landmark observation),
    ``intersection`` (bool), ``instruction`` (0-based index of the sentence being executed),
    ``milestone`` (index into ``geocode_list``, -1 for the start and interpolated points).
    A missing or 0 ``init_heading`` is drawn from `rng` (1..359), as the study draws it.
    """
    try:
        start = list(record["start_place"]["relocated_geocode"])
        geocodes = [list(g) for g in record["route_results"]["geocode_list"]]
        blocks = parse_milestones(record["milestone_info"], where=where)
    except (KeyError, TypeError) as exc:
        raise InputError(f"route record lacks {exc}", where=where,
                         hint="records need start_place.relocated_geocode, "
                              "route_results.geocode_list and milestone_info") from None
    if not geocodes or len(blocks) != len(geocodes):
        raise InputError(f"{len(blocks)} milestone blocks for {len(geocodes)} geocodes",
                         where=where, hint="milestone_info holds one block per geocode_list "
                                           "entry (the last is the destination)")
    init = record.get("init_heading") or 0
    if not init:
        init = (rng or random.Random(0)).randint(1, 359)
    headings, words, marks = [], [], []
    for i, block in enumerate(blocks):
        if "to_next_intersection_heading" not in block:
            raise InputError(f"milestone {i} has no to_next_intersection_heading",
                             where=where, hint="e.g. to_next_intersection_heading: 177 (south)")
        deg, word = parse_heading(block["to_next_intersection_heading"], where=where)
        headings.append(deg)
        words.append(word)
        marks.append(block.get("landmarks") or NO_LANDMARK)
    sentences = instructions(headings, words, marks, init, wrap=wrap)
    absolute = [turn(w) for w in words] + [STOP]
    relative, prev = [], init
    for deg in headings:
        relative.append(turn(relative_turn(prev, deg, wrap=wrap)))
        prev = deg
    relative.append(STOP)
    rail: list[dict[str, Any]] = []
    prev_geo, sentence = start, 0
    heading_at = [init, *headings]
    for idx, geo in enumerate([start, *geocodes]):
        if geo_distance(prev_geo, geo) > 5:
            for i in range(1, straight_line_length + 1):
                t = i / (straight_line_length + 1)
                rail.append({
                    "geocode": [round(prev_geo[0] + (geo[0] - prev_geo[0]) * t, 7),
                                round(prev_geo[1] + (geo[1] - prev_geo[1]) * t, 7)],
                    "heading": heading_at[idx], "absolute": FORWARD, "relative": FORWARD,
                    "landmark": NOTHING_NEARBY, "intersection": False,
                    "instruction": sentence, "milestone": -1})
            sentence += 1
        stop = absolute[idx] == STOP
        if stop:
            # stop() shares the last "Move forward" sentence (the study steps back one, which
            # lands on the last turn's sentence when the final leg is shorter than 5 m).
            sentence = len(sentences) - 1
        rail.append({
            "geocode": list(geo), "heading": heading_at[idx], "absolute": absolute[idx],
            "relative": relative[idx],
            "landmark": NOTHING_NEARBY if idx == 0 else marks[idx - 1],
            "intersection": idx > 0 and not stop, "instruction": sentence,
            "milestone": idx - 1})
        sentence += 1
        prev_geo = geo
    return sentences, rail


def observation_text(point: Mapping[str, Any]) -> str:
    """The study's oracle observation of a rail point: ``landmark; intersection sentence``."""
    return f"{point['landmark']}; {AT_INTERSECTION if point['intersection'] else ''}"


# -- generated routes ---------------------------------------------------------------------------


def _straight(city: City, node: int, heading: float, visited: set[int]) -> int | None:
    """The next node straight ahead of `node` (within 25 degrees of `heading`), if any."""
    best, best_d = None, 25.0
    for n in city.adjacency[node]:
        d = abs(heading_change(heading, city.heading(node, n)))
        if d < best_d and n not in visited:
            best, best_d = n, d
    return best


def generate_route(city: City, rng: random.Random, *, turns: tuple[int, int] = (2, 4)
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A route with `turns` (min, max) turns through `city`, as (record, geometry).

    `record` is in the study's shape; `geometry` holds what rendering needs per entry of
    ``geocode_list`` (``arms``: street headings there; ``signs``: [name, bearing] of the
    landmark seen) plus the start's street heading.
    """
    from gengap.tasks.navigation.city import PLACES, Landmark

    edges = [(a, b) for a, adj in city.adjacency.items() for b in adj
             if distance_xy(city.nodes[a], city.nodes[b]) > 50]
    for _ in range(500):
        a, b = rng.choice(edges)
        t = rng.uniform(0.35, 0.65)
        (ax, ay), (bx, by) = city.nodes[a], city.nodes[b]
        start = (ax + (bx - ax) * t, ay + (by - ay) * t)
        heading = city.heading(a, b)
        node, visited = b, {a, b}
        n_turns = rng.randint(*turns)
        milestones: list[int] = []
        ok = True
        for leg in range(n_turns + 1):
            for _ in range(rng.randint(0, 2 if leg else 1)):  # extra blocks straight on
                nxt = _straight(city, node, heading, visited)
                if nxt is None:
                    break
                heading = city.heading(node, nxt)
                node = nxt
                visited.add(node)
            if leg == n_turns:
                break
            options = [n for n in city.adjacency[node] if n not in visited
                       and 30 <= abs(heading_change(heading, city.heading(node, n))) <= 150]
            if not options:
                ok = False
                break
            milestones.append(node)
            nxt = rng.choice(options)
            heading = city.heading(node, nxt)
            node = nxt
            visited.add(node)
        if not ok or len(milestones) != n_turns:
            continue
        # The destination: mid-block past the last node, on the street straight ahead.
        nxt = _straight(city, node, heading, visited)
        if nxt is None:
            continue
        (nx_, ny_), (tx, ty) = city.nodes[node], city.nodes[nxt]
        t = rng.uniform(0.3, 0.7)
        dest = (nx_ + (tx - nx_) * t, ny_ + (ty - ny_) * t)
        # Landmarks: a corner place at each turn (names unique within the route).
        used: set[str] = set()
        names: list[Landmark | None] = []
        for m in milestones:
            corner = [lm for lm in city.corner_landmarks.get(m, []) if lm.name not in used]
            mark = corner[0] if corner and rng.random() < 0.85 else None
            if mark:
                used.add(mark.name)
            names.append(mark)
        dest_name = rng.choice([p for p in PLACES if p not in used])
        side = rng.choice((-90, 90))
        final_heading = heading_xy(city.nodes[node], dest)
        ang = math.radians(final_heading + side)
        dest_mark = Landmark(dest_name, dest[0] + 12 * math.sin(ang), dest[1] + 12 * math.cos(ang))
        return _record(city, rng, start, heading_xy(start, city.nodes[milestones[0]]),
                       milestones, names, dest, dest_mark)
    raise InputError(f"no route with {turns} turns found in city {city.name}",
                     hint="ask for fewer turns (task option min_turns / max_turns)")


def _record(city: City, rng: random.Random, start: tuple[float, float], first_heading: float,
            milestones: list[int], names: list[Any], dest: tuple[float, float],
            dest_mark: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    points = [start, *(city.nodes[m] for m in milestones), dest]
    blocks, landmark_list, arms, signs = [], [], [], []
    for i in range(1, len(points)):
        h = heading_xy(points[i - 1], points[i])
        last = i == len(points) - 1
        mark = dest_mark if last else names[i - 1]
        if mark is None:
            text = NO_LANDMARK
        else:
            where = side_word(h, heading_xy(points[i], (mark.x, mark.y)))
            text = (f"The destination {mark.name} is on your {where}" if last
                    else f"{mark.name} is on your {where}")
        blocks.append({"intersection_idx": str(i - 1), "landmarks": text,
                       "distance": f"{round(distance_xy(points[i - 1], points[i]))} meters",
                       "to_next_intersection_heading": heading_text(h)})
        landmark_list.append(None if mark is None else
                             {"name": mark.name, "geocode": city.geocode((mark.x, mark.y))})
        arms.append([round(a, 1) for a in (city.arms(milestones[i - 1]) if not last
                                           else [h, normalize_heading(h + 180)])])
        signs.append([] if mark is None else
                     [[mark.name, round(heading_xy(points[i], (mark.x, mark.y)), 1)]])
    init = rng.randint(1, 359)
    record = {
        "start_place": {"name": f"a street in {city.name}",
                        "relocated_geocode": city.geocode(start)},
        "init_heading": init,
        "route_results": {"landmark_list": landmark_list[:-1],
                          "geocode_list": [city.geocode(p) for p in points[1:]]},
        "dest_place": {"name": dest_mark.name,
                       "geocode": city.geocode((dest_mark.x, dest_mark.y))},
        "milestone_info": format_milestones(blocks),
        "city": city.name,
    }
    geometry = {"arms": arms, "signs": signs, "start_heading": round(first_heading, 1)}
    return record, geometry


def annotate(rail: list[dict[str, Any]], geometry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Add what the renderer draws to each rail point: ``arms`` (street headings) and
    ``signs`` ([name, bearing] of the landmarks in view)."""
    for point in rail:
        m = point["milestone"]
        h = point["heading"] if m != -1 or point["absolute"] == FORWARD else \
            geometry.get("start_heading", point["heading"])
        if m >= 0:
            point["arms"] = list(geometry["arms"][m])
            point["signs"] = [list(s) for s in geometry["signs"][m]]
        else:
            point["arms"] = [round(h, 1), round(normalize_heading(h + 180), 1)]
            point["signs"] = []
    return rail
