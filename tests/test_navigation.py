"""The navigation task: geometry, headings and turn words, the rail, the verifier, the loader,
episodes, and the contract downstream stages rely on."""

from __future__ import annotations

import itertools
import json
import pickle
import random
from collections import OrderedDict
from pathlib import Path

import pytest
from PIL import Image

from gengap.errors import InputError
from gengap.rollout import SamplingParams, run_episodes
from gengap.rollout.sampling import BatchResult, Completion
from gengap.tasks import get_task
from gengap.tasks.base import message_text
from gengap.tasks.navigation.actions import (
    FORWARD,
    STOP,
    canonical_action,
    compass_word,
    heading_change,
    heading_text,
    relative_turn,
)
from gengap.tasks.navigation.city import generate_city, geo_distance, geo_heading
from gengap.tasks.navigation.loader import (
    PanoIndex,
    load_routes,
    safe_load_pickle,
    street_views,
)
from gengap.tasks.navigation.render import STYLES, render_grid, render_view
from gengap.tasks.navigation.route import (
    build_rail,
    format_milestones,
    generate_route,
    parse_milestones,
)
from gengap.tasks.navigation.verify import judge, parse

COMPACT = {"prompt_style": "compact"}


# -- headings and turn words ----------------------------------------------------------------


def test_compass_words_and_heading_text() -> None:
    assert [compass_word(d) for d in (0, 22.4, 22.5, 90, 179, 225, 337.4, 337.5, 359.9, -10)] == [
        "north", "north", "northeast", "east", "south", "southwest", "northwest", "north",
        "north", "north"]
    assert heading_text(177.4) == "177 (south)" and heading_text(359.7) == "0 (north)"


def test_relative_turns_wrap_at_0_and_360() -> None:
    assert relative_turn(0, 90) == "right" and relative_turn(90, 0) == "left"
    assert relative_turn(0, 30) == "slightly right" and relative_turn(30, 0) == "slightly left"
    assert relative_turn(10, 10) == "slightly left"  # d = 0 is "slightly left", as in the study
    # Across north: 350 -> 10 is 20 degrees to the right, 10 -> 350 20 degrees to the left.
    assert heading_change(350, 10) == 20 and heading_change(10, 350) == -20
    assert relative_turn(350, 10) == "slightly right"
    assert relative_turn(10, 350) == "slightly left"
    assert relative_turn(300, 30) == "right" and relative_turn(30, 300) == "left"
    # The study's unwrapped difference gets these wrong (documented bug).
    assert relative_turn(350, 10, wrap=False) == "left"
    assert relative_turn(10, 350, wrap=False) == "right"
    assert heading_change(0, 180) == 180 and heading_change(180, 0) == 180


def test_canonical_actions_from_both_styles() -> None:
    assert canonical_action("fwd") == FORWARD and canonical_action(" stop ") == STOP
    assert canonical_action("east") == "turn_direction(east)"
    assert canonical_action("Slightly  Left") == "turn_direction(slightly left)"
    assert canonical_action("turn_direction( north )") == "turn_direction(north)"
    assert canonical_action("fly()") == "fly()"


# -- cities and routes ----------------------------------------------------------------------


def test_city_is_not_a_perfect_grid() -> None:
    city = generate_city("metro", 0)
    assert city.dead_ends(), "dead ends"
    lengths = {round(geo_distance(city.geocode(city.nodes[a]), city.geocode(city.nodes[b])))
               for a, adj in city.adjacency.items() for b in adj}
    assert max(lengths) - min(lengths) > 40, "varied block lengths"
    offsets = [(h - city.rotation) % 90 for n in city.adjacency for h in city.arms(n)]
    assert any(25 < o < 65 for o in offsets), "a diagonal street"
    assert len({lm.name for lm in city.landmarks}) > 5
    assert generate_city("metro", 0) is city and generate_city("metro", 1).nodes != city.nodes


def test_route_record_headings_match_its_geocodes() -> None:
    city = generate_city("metro", 2)
    for seed in range(10):
        record, _ = generate_route(city, random.Random(seed), turns=(2, 4))
        blocks = parse_milestones(record["milestone_info"])
        geocodes = record["route_results"]["geocode_list"]
        assert len(blocks) == len(geocodes) and 3 <= len(geocodes) <= 5
        prev = record["start_place"]["relocated_geocode"]
        for block, geo in zip(blocks, geocodes):
            degrees = int(block["to_next_intersection_heading"].split(" ")[0])
            assert abs(heading_change(degrees, geo_heading(prev, geo))) < 1.5
            assert block["to_next_intersection_heading"].endswith(f"({compass_word(degrees)})")
            prev = geo
        assert blocks[-1]["landmarks"].startswith("The destination ")
        # Turns are real turns: consecutive legs differ by 30..150 degrees.
        legs = [int(b["to_next_intersection_heading"].split(" ")[0]) for b in blocks]
        assert all(30 <= abs(heading_change(a, b)) <= 151 for a, b in itertools.pairwise(legs))


def test_milestone_strings_round_trip() -> None:
    blocks = [{"landmarks": "CVS is on your left", "to_next_intersection_heading": "177 (south)"},
              {"to_next_intersection_heading": "90 (east)"}]
    assert parse_milestones(format_milestones(blocks)) == blocks
    assert parse_milestones("{\n landmarks: A b,\n to_next_intersection_heading: 5 (north)\n}") \
        == [{"landmarks": "A b", "to_next_intersection_heading": "5 (north)"}]


def _record(init: int = 350) -> dict:
    """Start, two turns, destination: 10 -> 100 -> 10 -> 280 degrees (lat/lng near 0, 0)."""
    d = 0.001  # ~111 m of latitude
    return {
        "start_place": {"relocated_geocode": [0.0, 0.0]},
        "init_heading": init,
        "route_results": {"landmark_list": [], "geocode_list": [[d, 0.0], [d, d], [2 * d, d],
                                                                [2 * d, d]]},
        "dest_place": {"name": "Luna Pizza", "geocode": [2 * d, d]},
        "milestone_info": format_milestones([
            {"landmarks": "CVS is on your right front",
             "to_next_intersection_heading": "10 (north)"},
            {"to_next_intersection_heading": "100 (east)"},
            {"landmarks": "Tea House is on your left",
             "to_next_intersection_heading": "10 (north)"},
            {"landmarks": "The destination Luna Pizza is on your right",
             "to_next_intersection_heading": "280 (west)"}]),
    }


def test_rail_construction() -> None:
    sentences, rail = build_rail(_record(), straight_line_length=2)
    assert sentences[0] == "First, turn slightly right to face north."  # 350 -> 10 wraps
    assert sentences[1] == ("Move forward until you reach next intersection where CVS is on "
                            "your right front.")
    assert sentences[3] == "Move forward until you reach next intersection."
    assert sentences[-1] == ("Move forward until you reach destination where The destination "
                             "Luna Pizza is on your right.")
    actions = [p["absolute"] for p in rail]
    # start; 2 forward + turn; 2 forward + turn; 2 forward + turn; the last leg is 0 m long:
    # no interpolated points, then stop.
    assert actions == ["turn_direction(north)", FORWARD, FORWARD, "turn_direction(east)",
                       FORWARD, FORWARD, "turn_direction(north)", FORWARD, FORWARD,
                       "turn_direction(west)", STOP]
    assert [p["relative"] for p in rail if p["relative"] != FORWARD] == [
        "turn_direction(slightly right)", "turn_direction(right)", "turn_direction(left)",
        "turn_direction(left)", STOP]
    assert [p["intersection"] for p in rail].count(True) == 3
    assert rail[0]["landmark"] == "No landmarks nearby" and not rail[0]["intersection"]
    assert rail[3]["landmark"] == "CVS is on your right front" and rail[3]["intersection"]
    assert rail[6]["landmark"] == "No landmark nearby"
    assert rail[-1]["landmark"].startswith("The destination") and not rail[-1]["intersection"]
    # Interpolated points lie strictly inside their leg, at 1/3 and 2/3.
    assert rail[1]["geocode"][0] == pytest.approx(0.001 / 3, abs=1e-7)
    assert rail[2]["geocode"][0] == pytest.approx(0.002 / 3, abs=1e-7)
    # Headings: on arrival; instruction indices: turn, move, turn, ..., stop shares the last.
    assert [p["heading"] for p in rail[:4]] == [350, 10, 10, 10]
    assert [p["instruction"] for p in rail] == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]
    # The study's unwrapped turn words differ at the 350 -> 10 start.
    study, _ = build_rail(_record(), wrap=False)
    assert study[0] == "First, turn left to face north."


def test_rail_refuses_inconsistent_records() -> None:
    record = _record()
    record["route_results"]["geocode_list"].pop()
    with pytest.raises(InputError, match="milestone blocks"):
        build_rail(record)
    record = _record()
    record["milestone_info"] = record["milestone_info"].replace("100 (east)", "100 (upward)")
    with pytest.raises(InputError, match="compass word"):
        build_rail(record)


# -- verifier -------------------------------------------------------------------------------

AT = {"landmark": "CVS is on your right front", "intersection": True,
      "absolute": "turn_direction(east)", "relative": "turn_direction(right)"}
MID = {"landmark": "No landmarks nearby", "intersection": False, "absolute": FORWARD,
       "relative": FORWARD}


def _paper(obs: str, action: str) -> str:
    return (f'{{\n  "current observation": "{obs}",\n  "current instruction": "x",\n'
            f'  "action": "{action}",\n}}')


def test_verifier_rewards_and_the_fixed_intersection_check() -> None:
    right = judge(_paper("CVS is on your right front; You observe an intersection",
                         "turn_direction(east)"), AT, "absolute")
    assert (right.reward, right.correct) == (1.0, True)
    assert right.metrics["observation_match"] == 1.0
    assert judge(_paper("x", "turn_direction(right)"), AT, "relative").correct
    # Wrongly claiming an intersection mid-block: -1.5.
    v = judge(_paper("You observe an intersection", "turn_direction(east)"), MID, "absolute")
    assert v.reward == -1.5 and "not at any intersection" in v.feedback
    # Wrongly denying one: -1.5 (the study's check never fires here: -1).
    v = judge(_paper("No landmarks nearby", FORWARD), AT, "absolute")
    assert v.reward == -1.5 and "you are at an intersection" in v.feedback
    assert judge(_paper("No landmarks nearby", FORWARD), AT, "absolute",
                 study_bug=True).reward == -1.0
    # A right claim at an intersection with a wrong turn: -1 (the study: -1.5, "not at").
    v = judge(_paper("CVS; You observe an intersection", "turn_direction(west)"), AT, "absolute")
    assert v.reward == -1.0 and v.metrics["intersection_claim"] == 1.0
    bug = judge(_paper("CVS; You observe an intersection", "turn_direction(west)"), AT,
                "absolute", study_bug=True)
    assert bug.reward == -1.5 and "not at any" in bug.feedback
    # The absolute word in the relative space is wrong.
    assert not judge(_paper("x", "turn_direction(east)"), AT, "relative").correct


def test_verifier_parsing() -> None:
    assert parse('{"action": "stop()", "current observation": "a"}')["action"] == "stop()"
    assert parse('junk "action": "forward()", more')["action"] == "forward()"
    fields = parse("no json at all")
    assert fields["current observation"] == "None"
    assert parse("CVS/rf+|east") == {"current observation": "CVS/rf+", "action": "east",
                                     "current instruction": "None"}
    assert judge("CVS/rf+|east", AT, "absolute", compact=True).correct
    v = judge("-|fwd", AT, "absolute", compact=True)
    assert v.reward == -1.5 and v.feedback == "at an intersection"
    assert judge("-+|east", MID, "absolute", compact=True).reward == -1.5
    assert judge("", MID, "absolute", compact=True).reward == -1.0
    assert judge("x" * 100_000, MID, "absolute").reward == -1.0


# -- loader ---------------------------------------------------------------------------------


def _fixture(tmp: Path) -> tuple[Path, Path]:
    """A route file [routes, count] and a pano mapping pickle in the study's shape."""
    city = generate_city("metro", 0)
    routes = [generate_route(city, random.Random(i))[0] for i in range(5)]
    for r in routes:
        r.pop("city")
    routes[1]["init_heading"] = 0  # missing/0: drawn per route
    (tmp / "routes.json").write_text(json.dumps([routes, len(routes)]))
    panos = {}
    for i, geo in enumerate([routes[0]["start_place"]["relocated_geocode"],
                             *routes[0]["route_results"]["geocode_list"]]):
        panos[f"pano{i}"] = {"geocode": geo, "north_rotation": 30.0, "image": "pano.png"}
    # A panorama whose columns encode their heading (red = degrees from column 0).
    pano = Image.new("RGB", (360, 90))
    for x in range(360):
        for y in range(90):
            pano.putpixel((x, y), (x * 255 // 359, 0, 0))
    pano.save(tmp / "pano.png")
    with open(tmp / "panos.pkl", "wb") as f:
        pickle.dump(panos, f)
    return tmp / "routes.json", tmp / "panos.pkl"


def test_loader_reads_the_studys_shapes(tmp_path: Path) -> None:
    routes_path, panos_path = _fixture(tmp_path)
    routes = load_routes(routes_path)
    assert len(routes) == 5
    task = get_task("navigation", route_file=str(routes_path), test_routes=2,
                    validation_routes=1, **COMPACT)
    sample = task.sample("test-id", 1, 0)
    assert 0 < sample.fields["rail"][0]["heading"] < 360  # init_heading 0 was drawn
    assert sample.fields["style"] == "file" and task.sample("train", 0, 0).fields["route"] == 3
    with pytest.raises(InputError, match="2 samples"):
        task.sample("test-id", 2, 0)
    index = PanoIndex(panos_path)
    geo = routes[0]["route_results"]["geocode_list"][0]
    assert index.nearest(geo) == "pano1"
    grid = index.views("pano1", heading=120.0, size=16)
    # Front = 120 degrees = column 90 after the 30 degree north rotation; right = column 180.
    assert abs(grid.getpixel((8, 8))[0] - 90 * 255 // 359) <= 8
    assert abs(grid.getpixel((16 + 5 + 8, 8))[0] - 180 * 255 // 359) <= 8
    image_task = get_task("navigation", route_file=str(routes_path), pano_map=str(panos_path),
                          modality="image", test_routes=2, validation_routes=1, **COMPACT)
    assert image_task.images(image_task.sample("test-id", 0, 0))[0].size == (133, 133)


def test_loader_refuses_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"routes": []}))
    with pytest.raises(InputError, match=r"\[routes, count\]"):
        load_routes(tmp_path / "bad.json")
    (tmp_path / "count.json").write_text(json.dumps([[], 3]))
    with pytest.raises(InputError, match="says 3 routes"):
        load_routes(tmp_path / "count.json")
    (tmp_path / "rec.json").write_text(json.dumps([[{"start_place": {}}], 1]))
    with pytest.raises(InputError, match="lacks"):
        load_routes(tmp_path / "rec.json")
    # The restricted unpickler refuses every global, harmless or not.
    for payload in (OrderedDict(a=1), Path("x")):
        (tmp_path / "evil.pkl").write_bytes(pickle.dumps(payload))
        with pytest.raises(InputError, match="refused global"):
            safe_load_pickle(tmp_path / "evil.pkl")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": [1, 2.5, "x", (1, 2)]}))
    assert safe_load_pickle(tmp_path / "ok.pkl") == {"a": [1, 2.5, "x", (1, 2)]}


def test_street_views_wrap_the_seam() -> None:
    pano = Image.new("RGB", (360, 40))
    for x in range(360):
        for y in range(40):
            pano.putpixel((x, y), (x * 255 // 359, 0, 0))
    grid = street_views(pano, heading=0.0, north_rotation=0.0, size=20)
    # Front view centred on column 0: its left half comes from the panorama's right end.
    assert grid.getpixel((2, 10))[0] > 200 and grid.getpixel((17, 10))[0] < 40


# -- the task, its episodes, its rendering ----------------------------------------------------


def test_splits_roles_and_rule_ood_pairs() -> None:
    task = get_task("navigation", **COMPACT)
    assert {s.name: s.role for s in task.splits.values()} == {
        "warmup": "warmup", "train": "train", "validation": "validation", "test-id": "test",
        "test-ood-rule": "ood"}
    with pytest.raises(InputError, match="image modality"):
        task.split("test-ood-visual")
    a, b = task.sample("test-id", 5, 0), task.sample("test-ood-rule", 5, 0)
    assert a.fields["rail"] == b.fields["rail"] and a.fields["instructions"] == b.fields[
        "instructions"]
    assert (a.fields["action_space"], b.fields["action_space"]) == ("absolute", "relative")
    assert a.fields["point"] is None and task.sample("train", 0, 0).fields["point"] is not None
    image = get_task("navigation", modality="image", **COMPACT)
    styles = {image.sample("test-ood-visual", i, 0).fields["style"] for i in range(6)}
    assert styles == {"riviera", "harbor", "tropic"}
    assert image.sample("test-id", 0, 0).fields["style"] == "metro"
    spaces = {task.sample("warmup", i, 0).fields["action_space"] for i in range(30)}
    assert spaces == {"absolute", "relative"}
    s = task.sample("train", 7, 0)
    assert task.sample_from_row(task.row(s)) == s
    assert task.sample("train", 7, 0) == s  # deterministic
    with pytest.raises(InputError, match="instructions"):
        task.sample_from_row({"id": "x", "split": "train", "index": 0, "rail": [],
                              "action_space": "absolute"})


def test_point_samples_are_what_the_route_episode_shows() -> None:
    for options in (COMPACT, {}):
        task = get_task("navigation", **options)
        route = task.sample("test-id", 3, 0)
        episode = task.episode(route)
        obs = episode.reset()
        for position in range(len(route.fields["rail"])):
            point = task.point_sample(route, position)
            assert obs.messages == task.messages(point)
            assert task.verify(point, task.target(point)).correct
            step = episode.step(episode.oracle())
            assert step.verdict.correct and step.verdict.info["point"] == position
            obs = step.observation
            if step.done:
                break
        assert step.done and episode.success
        assert episode.metrics() == {"route_step_accuracy": 1.0, "route_progress": 1.0}


def test_route_episode_retries_fails_and_moves_on() -> None:
    task = get_task("navigation", **COMPACT)
    route = task.sample("test-id", 0, 0)
    episode = task.episode(route)  # 2 scored attempts per point (the study's)
    first = episode.reset()
    step = episode.step("-|fwd")  # the start asks for a turn
    assert not step.done and len(step.observation.messages) == 3
    assert step.observation.messages[0] == first.messages[0]
    assert step.observation.messages[2]["content"] == "wrong action"
    step = episode.step(episode.oracle())  # right on the retry: moves on
    assert not step.done and len(step.observation.messages) == 1
    assert episode.position == 1
    step = episode.step("-|stop")
    step = episode.step("-|stop")  # two misses: the study's environment ends the episode
    assert step.done and not episode.success
    assert episode.metrics()["route_step_accuracy"] == pytest.approx(1 / 4)
    assert episode.metrics()["route_progress"] == pytest.approx(1 / len(route.fields["rail"]))
    with pytest.raises(InputError, match="ended"):
        episode.step("x")
    cont = get_task("navigation", on_fail="continue", **COMPACT).episode(route, verify_iters=1)
    cont.reset()
    step = cont.step("-|stop")
    assert not step.done and cont.position == 1  # failed point counted, agent moved on
    while not step.done:
        step = cont.step(cont.oracle())
    assert not cont.success and cont.metrics()["route_progress"] < 1


def test_image_episodes_show_new_views_at_every_point() -> None:
    task = get_task("navigation", modality="image", **COMPACT)
    route = task.sample("test-id", 1, 0)
    episode = task.episode(route)
    obs = episode.reset()
    assert len(obs.images) == 1 and obs.images[0].size == (133, 133)
    assert "?" in message_text(obs.messages)
    seen = [obs.images[0].tobytes()]
    step = episode.step(episode.oracle())
    assert len(step.observation.images) == 1 and step.observation.images[0].tobytes() != seen[0]


def test_views_show_side_streets_at_intersections_only() -> None:
    task = get_task("navigation", modality="image", **COMPACT)
    rails = [task.sample("test-id", i, 0).fields["rail"] for i in range(6)]
    style = STYLES["metro"]

    def road_share(image: Image.Image) -> float:
        pixels = list(image.get_flattened_data())
        return sum(p == style.road for p in pixels) / len(pixels)

    side = [(p, v) for rail in rails for p in rail if p["intersection"] for v in (1, 3)
            if any(abs(heading_change(p["heading"] + 90 * v, a)) <= 30 for a in p["arms"])]
    facing = [(p, v) for rail in rails for p in rail if p["intersection"] for v in (1, 3)
              if all(abs(heading_change(p["heading"] + 90 * v, a)) > 30 for a in p["arms"])]
    assert side and facing  # side streets, and T-junctions with a wall on one side
    for p, v in side[:4]:
        assert road_share(render_view(p, v, style, 64)) > 0.1
    for p, v in facing[:4]:
        assert road_share(render_view(p, v, style, 64)) == 0.0
    mid = next(p for p in rails[0] if p["absolute"] == FORWARD)
    for view in (1, 3):  # right and left: the kerb
        assert road_share(render_view(mid, view, style, 64)) == 0.0
    assert road_share(render_view(mid, 0, style, 64)) > 0.1  # the street ahead
    assert render_grid(mid, "harbor", 64).size == (133, 133)


class OracleSampler:
    """Right on every decision point whose prompt it knows, except where told to fail."""

    def __init__(self, task, samples, wrong_points=()):
        self.answers = {}
        for sample in samples:
            points = task.points(sample) if sample.fields["point"] is None else [sample]
            for p in points:
                key = message_text(task.messages(p))
                self.answers[key] = ("-|stop" if p.fields["point"] in wrong_points
                                     else task.target(p))

    def generate(self, prompts, images, params, progress=False, keys=None):
        out = []
        for messages in prompts:
            text = self.answers.get(message_text(messages[:1]), "x")
            if len(messages) > 1:
                text = "x"
            out.append([Completion(text, len(text), True)] * params.k)
        return BatchResult(out, 0.0, 0, 0)


def test_route_episodes_run_through_the_shared_rollout() -> None:
    task = get_task("navigation", **COMPACT)
    samples = [task.sample("test-id", i, 0) for i in range(4)]
    results = run_episodes(OracleSampler(task, samples), task, samples,
                           SamplingParams(k=2, max_new_tokens=8))
    assert all(r.success for r in results)
    assert [r.num_attempts for r in results[::2]] == [len(s.fields["rail"]) for s in samples]
    assert all(r.metrics["route_step_accuracy"] == 1.0 for r in results)
    failing = run_episodes(OracleSampler(task, samples, wrong_points={4}), task, samples,
                           SamplingParams(k=1, max_new_tokens=8))
    assert not any(r.success for r in failing)
    assert all(r.num_attempts == 6 for r in failing)  # 4 right, then 2 scored misses
    assert all(r.metrics["route_progress"] == pytest.approx(4 / len(s.fields["rail"]))
               for r, s in zip(failing, samples))
    points = [task.sample("train", i, 0) for i in range(6)]
    results = run_episodes(OracleSampler(task, points), task, points,
                           SamplingParams(k=1, max_new_tokens=8), verify_iters=2)
    assert all(r.success and r.num_attempts == 1 for r in results)
