"""V-IRL-style navigation as a gengap task: follow written route instructions on a rail.

Splits, their roles and what they hold (ID rule = `action_space`, absolute by default; ID
style = `train_style`, "metro" by default):

| split            | role       | sample         | action space | city style (image)        |
|------------------|------------|----------------|--------------|---------------------------|
| warmup           | warmup     | decision point | both         | all styles                |
| train            | train      | decision point | ID           | ID style (`cities` cities) |
| validation       | validation | route          | ID           | ID style                  |
| test-id          | test       | route          | ID           | ID style                  |
| test-ood-rule    | ood (rule) | route          | the other    | ID style (test-id routes) |
| test-ood-visual  | ood (visual, image only) | route | ID     | the other styles, new cities |

**What a sample is.** A *route* sample runs as a `RouteEpisode` (the rail, one decision point
after another; per-step accuracy and route success). A *decision point* sample is one point of a
route with the oracle's history up to it: its prompt is exactly what the route episode shows
there, its target the correct action there, and it runs as a retry episode. `train_unit=route`
makes train (and warmup) routes instead, e.g. for multi-turn RL.

**Which difficulty DC-SFT buckets: the decision point** (the default `train_unit=point`). Both
pass rates are measurable (`gengap difficulty` on a route split rates routes). Points, because
(1) an SFT row *is* a decision point -- prompt with history, one target action -- so buckets of
points say which rows to train on, while a route's bucket would keep or drop all its points at
once, easy forward() steps and hard turns alike; (2) GRPO's zero-advantage argument applies to a
group of completions of one prompt, and the study's RL samples one prompt per decision point;
(3) a route's pass rate is roughly the product of its points', so nearly every route of a weak
model is "hard" and the easy/medium/hard split of routes is degenerate.

Rule-OOD uses the same routes as test-id with the other action space (a paired comparison);
the written instructions are identical, only the action space differs. Route files of the study
(`route_file`, text; with `pano_map` also images) replace the generated routes of the ID splits.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from PIL import Image

from gengap.errors import InputError
from gengap.tasks.base import Episode, Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.navigation import prompts
from gengap.tasks.navigation.actions import ACTION_SPACES, STOP, compact_action
from gengap.tasks.navigation.city import generate_city
from gengap.tasks.navigation.episode import ON_FAIL, RouteEpisode
from gengap.tasks.navigation.render import STYLES, TRAIN_STYLE, render_grid
from gengap.tasks.navigation.route import annotate, build_rail, generate_route
from gengap.tasks.navigation.verify import judge

MODALITIES = ("text", "image")
UNITS = ("point", "route")
_POINT_KEYS = ("geocode", "heading", "absolute", "relative", "landmark", "intersection",
               "instruction")

# The tiny model's cold start. Text, measured 2026-12-02 on the shared 2-core machine (load ~9,
# 1745 s): greedy, one attempt per point, 48 routes: per-step accuracy (pooled) ID 36.0%,
# rule OOD 73.6%; route success 0% / 10.4%. Decision points of train at T=0.9, k=4 (n=160):
# easy 100 (forward, stop), medium 22, hard 38 (start turns and intersection turns). The start
# turn is where ID routes fail: the absolute word must be copied from after '>' in the plan.
# Warmup points are drawn uniformly over the rail (about 1 in 12 is the start); weighting the
# warmup toward turns is the obvious next recipe change.
COLDSTART: dict[str, dict[str, Any]] = {
    "text": {"phases": [
        {"name": "pretrain", "steps": 300, "batch_size": 32, "learning_rate": 2e-3},
        {"name": "sft", "steps": 60, "batch_size": 32, "learning_rate": 3e-4},
    ], "eval_n": 48, "eval_k": 2},
    "image": {"init_decoder_from_text": True,
              "model": {"vision_image_size": 128, "vision_patch_size": 16},
              "phases": [
                  {"name": "sft", "steps": 150, "batch_size": 16, "learning_rate": 5e-4,
                   "vision_learning_rate": 2e-4},
              ], "eval_n": 24, "eval_k": 2},
}


@dataclass
class NavigationConfig:
    """Options of the navigation task (`--task-option key=value`)."""

    modality: Literal["text", "image"] = field(
        default="text", metadata={"help": "text, or image (2x2 view grid; adds visual OOD)"})
    prompt_style: Literal["paper", "compact"] = field(
        default="paper", metadata={"help": "paper (the study's prompt) or compact (tiny)"})
    action_space: Literal["absolute", "relative"] = field(
        default="absolute", metadata={"help": "the ID action space (rule OOD: the other)"})
    train_unit: Literal["point", "route"] = field(
        default="point", metadata={"help": "train/warmup samples: decision points or routes"})
    train_style: str = field(default=TRAIN_STYLE, metadata={"help": "ID city style"})
    ood_styles: str = field(default="riviera,harbor,tropic",
                            metadata={"help": "visual-OOD city styles (comma list)"})
    cities: int = field(default=4, metadata={"help": "ID cities (routes are drawn in them)"})
    min_turns: int = field(default=2, metadata={"help": "fewest turns of a route"})
    max_turns: int = field(default=3, metadata={"help": "most turns of a route"})
    straight_line_length: int = field(
        default=2, metadata={"help": "interpolated forward() points per leg (the study's 2)"})
    test_routes: int = field(default=48, metadata={"help": "routes in test-id / test-ood-rule"})
    validation_routes: int = field(default=48, metadata={"help": "routes in validation"})
    visual_routes: int = field(default=18, metadata={"help": "routes in test-ood-visual"})
    on_fail: Literal["end", "continue"] = field(
        default="end", metadata={"help": "after the last failed attempt at a point: end the "
                                         "episode (the study) or move on"})
    intersection_hint: bool = field(
        default=True, metadata={"help": "image: say 'You observe an intersection' in text "
                                        "(the study) or make the model see it"})
    view_size: int | None = field(
        default=None, metadata={"help": "px per view (default 512 paper, 64 compact)"})
    study_verifier: bool = field(
        default=False, metadata={"help": "reproduce the study's intersection-check bug"})
    route_file: str | None = field(
        default=None, metadata={"help": "the study's route file [routes, count] (ID splits)"})
    pano_map: str | None = field(
        default=None, metadata={"help": "pano mapping pickle (image variant of route_file)"})

    def validate(self) -> None:
        for name in [self.train_style, *self.ood_list()]:
            if name not in STYLES:
                raise InputError(f"unknown city style {name!r}", where="task option style",
                                 hint=f"styles: {', '.join(STYLES)}")
        if self.train_style in self.ood_list():
            raise InputError("the ID style is also a visual-OOD style",
                             where="task option ood_styles", hint="drop it from ood_styles")
        if not 1 <= self.min_turns <= self.max_turns <= 6:
            raise InputError("need 1 <= min_turns <= max_turns <= 6",
                             where="task option min_turns")
        if not 1 <= self.straight_line_length <= 8:
            raise InputError("straight_line_length must lie in 1..8",
                             where="task option straight_line_length")
        for name in ("cities", "test_routes", "validation_routes", "visual_routes"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1", where=f"task option {name}")
        if self.view_size is not None and not 16 <= self.view_size <= 2048:
            raise InputError("view_size must lie in 16..2048", where="task option view_size")
        if self.pano_map and not self.route_file:
            raise InputError("pano_map needs route_file", where="task option pano_map")
        if self.on_fail not in ON_FAIL:
            raise InputError(f"on_fail must be one of {ON_FAIL}", where="task option on_fail")

    def ood_list(self) -> list[str]:
        return [s.strip() for s in self.ood_styles.split(",") if s.strip()]


class NavigationTask(TaskBase):
    """Route following on a rail of decision points; text or view grids; two action spaces."""

    name = "navigation"
    description = ("V-IRL-style navigation: follow route instructions one decision point at a "
                   "time (forward, turn, stop); rule OOD = the other action space.")
    Config = NavigationConfig
    tiny_options: ClassVar[dict[str, Any]] = {"prompt_style": "compact"}
    metric_docs: ClassVar[dict[str, str]] = {
        "intersection_claim": "the completion claims an intersection exactly when there is one",
        "observation_match": "the stated observation equals the oracle's (image: recognition)",
        "route_step_accuracy": "per episode: correct actions / attempts (retries counted)",
        "route_progress": "per episode: share of the rail's decision points passed",
    }
    report_by = ("turns",)
    coldstart_recipe = COLDSTART
    references: ClassVar[dict[str, str]] = {
        "rl_beats_sft_ood": "V-IRL-L rule OOD per-step accuracy: init 80.8, RL 91.8, SFT 1.3; "
                            "V-IRL-VL visual OOD: init 16.7, RL 77.8, SFT 11.1 "
                            "(Chu et al., Llama-3.2-Vision-11B)",
    }

    def __init__(self, config: NavigationConfig | None = None, **options: Any):
        super().__init__(config, **options)
        c = self.config
        self.view_size = c.view_size or (512 if c.prompt_style == "paper" else 64)
        self._routes_cache: dict[tuple[str, int, int], tuple[list[str], list, dict]] = {}
        self._file_routes: list[dict[str, Any]] | None = None
        self._panos: Any = None
        if c.route_file:
            from gengap.tasks.navigation.loader import load_routes

            self._file_routes = load_routes(c.route_file)
            if c.pano_map:
                from gengap.tasks.navigation.loader import PanoIndex

                self._panos = PanoIndex(c.pano_map)
            elif c.modality == "image":
                raise InputError("image routes from a route file need pano_map",
                                 where="task option route_file",
                                 hint="pass pano_map=PATH, or use modality=text")

    # -- configuration ---------------------------------------------------------------------
    @property
    def verify_iters(self) -> int:
        return 2  # the study's verify_iter for V-IRL

    @property
    def max_new_tokens(self) -> int:
        return 48 if self.config.prompt_style == "compact" else 192

    @property
    def other_space(self) -> str:
        return next(s for s in ACTION_SPACES if s != self.config.action_space)

    @property
    def splits(self) -> dict[str, Split]:
        c = self.config
        unit = c.train_unit
        splits = [
            Split("warmup", "warmup", description=f"{unit}s, both action spaces, all styles"),
            Split("train", "train", description=f"{unit}s, {c.action_space} actions"),
            Split("validation", "validation", size=c.validation_routes,
                  description=f"routes, {c.action_space} actions"),
            Split("test-id", "test", size=c.test_routes,
                  description=f"routes, {c.action_space} actions"),
            Split("test-ood-rule", "ood", size=c.test_routes, axis="rule",
                  description=f"the test-id routes, {self.other_space} actions"),
        ]
        if c.modality == "image":
            splits.append(Split("test-ood-visual", "ood", size=c.visual_routes, axis="visual",
                                description=f"routes in {c.ood_styles} cities"))
        return {s.name: s for s in splits}

    def split(self, name: str) -> Split:
        if name == "test-ood-visual" and self.modality != "image":
            raise InputError("split 'test-ood-visual' exists only for the image modality",
                             hint="pass --task-option modality=image, or pick test-ood-rule")
        return super().split(name)

    # -- routes ----------------------------------------------------------------------------
    def _route(self, stream: str, index: int, seed: int, style: str | None = None
               ) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
        """(sentences, rail, meta) of route `index` of a split's stream (cached)."""
        key = (f"{stream}/{style}", index, seed)
        if key in self._routes_cache:
            return self._routes_cache[key]
        c = self.config
        rng = random.Random(f"navigation/{seed}/{stream}/{index}")
        if self._file_routes is not None and stream != "visual":
            offsets = {"test": 0, "validation": c.test_routes}
            position = offsets.get(stream, c.test_routes + c.validation_routes) + index
            if stream in ("train", "warmup"):
                free = len(self._file_routes) - c.test_routes - c.validation_routes
                if free < 1:
                    raise InputError("the route file holds no routes beyond test and "
                                     "validation", where=c.route_file,
                                     hint="lower test_routes / validation_routes")
                position = c.test_routes + c.validation_routes + index % free
            if position >= len(self._file_routes):
                raise InputError(f"the route file has {len(self._file_routes)} routes, "
                                 f"route {position} was asked for", where=c.route_file)
            record = self._file_routes[position]
            from gengap.tasks.navigation.loader import route_rail

            sentences, rail = route_rail(record, straight_line_length=c.straight_line_length,
                                         where=f"{c.route_file}: route {position}")
            meta = {"style": "file", "city": record.get("city", "file"), "route": position,
                    "destination": record["dest_place"].get("name", "")}
        else:
            if stream == "visual":
                styles = c.ood_list()
                style = styles[index % len(styles)]
                city_id = 100 + rng.randrange(2 * len(styles) * 3)
            elif stream == "warmup":
                style = style or c.train_style
                city_id = 200 + rng.randrange(16)
            else:
                style = c.train_style
                city_id = rng.randrange(c.cities)
            city = generate_city(style, city_id)
            record, geometry = generate_route(city, rng, turns=(c.min_turns, c.max_turns))
            sentences, rail = build_rail(record, straight_line_length=c.straight_line_length)
            annotate(rail, geometry)
            meta = {"style": style, "city": city.name,
                    "destination": record["dest_place"]["name"]}
        if len(self._routes_cache) > 4096:
            self._routes_cache.clear()
        self._routes_cache[key] = (sentences, rail, meta)
        return sentences, rail, meta

    def sample(self, split: str, index: int, seed: int) -> Sample:
        """Sample `index` of `split`: a route, or (train/warmup) a decision point of one."""
        self.check_index(split, index)
        c = self.config
        stream = {"train": "train", "warmup": "warmup", "validation": "validation",
                  "test-id": "test", "test-ood-rule": "test",
                  "test-ood-visual": "visual"}[split]
        space = self.other_space if split == "test-ood-rule" else c.action_space
        point: int | None = None
        style = None
        if split in ("train", "warmup"):
            pick = random.Random(f"navigation/{seed}/{split}/{index}/point")
            if split == "warmup":
                space = ACTION_SPACES[pick.randrange(2)]
                if c.modality == "image":
                    style = pick.choice(list(STYLES))
            sentences, rail, meta = self._route(stream, index, seed, style)
            if c.train_unit == "point":
                point = pick.randrange(len(rail))
        else:
            sentences, rail, meta = self._route(stream, index, seed)
        return self._make(split, index, sentences, rail, meta, space, point)

    def _make(self, split: str, index: int, sentences: list[str], rail: list[dict[str, Any]],
              meta: Mapping[str, Any], space: str, point: int | None) -> Sample:
        fields = {"instructions": list(sentences), "rail": [dict(p) for p in rail],
                  "point": point, "action_space": space, "modality": self.modality, **meta}
        answer = (rail[point][space] if point is not None
                  else "; ".join(p[space] for p in rail))
        return Sample(f"navigation/{split}/{index}", self.name, split, index, fields, answer)

    def point_sample(self, sample: Sample, position: int) -> Sample:
        """Decision point `position` of a route sample (its prompt has the oracle history)."""
        rail = sample.fields["rail"]
        if not 0 <= position < len(rail):
            raise InputError(f"point {position} is off the rail (0..{len(rail) - 1})")
        fields = {**sample.fields, "point": position}
        return Sample(f"{sample.id}#p{position}", self.name, sample.split, sample.index,
                      fields, rail[position][sample.fields["action_space"]])

    def points(self, sample: Sample) -> list[Sample]:
        """Every decision point of a route sample (SFT rows per point with the history)."""
        return [self.point_sample(sample, i) for i in range(len(sample.fields["rail"]))]

    def _position(self, sample: Sample) -> int:
        point = sample.fields.get("point")
        return 0 if point is None else int(point)

    # -- prompts and images ----------------------------------------------------------------
    def messages(self, sample: Sample) -> list[Message]:
        f = sample.fields
        image = f["modality"] == "image"
        build = prompts.paper_prompt if self.config.prompt_style == "paper" \
            else prompts.compact_prompt
        text = build(f["instructions"], f["rail"], self._position(sample), f["action_space"],
                     image=image, hint=self.config.intersection_hint)
        return [user_turn(text, n_images=int(image))]

    def images(self, sample: Sample) -> list[Image.Image]:
        f = sample.fields
        if f["modality"] != "image":
            return []
        point = f["rail"][self._position(sample)]
        if self._panos is not None and f.get("style") == "file":
            pano = self._panos.nearest(point["geocode"])
            return [self._panos.views(pano, point["heading"], self.view_size)]
        return [render_grid(point, f["style"], self.view_size)]

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """The correct completion at the sample's decision point (a route: its first)."""
        if variant != "answer":
            raise InputError(f"unknown target variant {variant!r}", hint="answer")
        f = sample.fields
        if self.config.prompt_style == "paper":
            return prompts.paper_response(f["instructions"], f["rail"], self._position(sample),
                                          f["action_space"])
        return prompts.compact_response(f["rail"], self._position(sample), f["action_space"])

    # -- judging ---------------------------------------------------------------------------
    def verify(self, sample: Sample, completion: str) -> Verdict:
        f = sample.fields
        return judge(completion, f["rail"][self._position(sample)], f["action_space"],
                     compact=self.config.prompt_style == "compact",
                     study_bug=self.config.study_verifier)

    def failure_turn(self, verdict: Verdict) -> str:
        if self.config.prompt_style == "compact":
            return verdict.feedback
        return prompts.FAILURE_TURN.format(feedback=verdict.feedback)

    def episode(self, sample: Sample, verify_iters: int | None = None) -> Episode:
        """Routes: a `RouteEpisode`; decision points: a retry episode at that point."""
        if sample.fields.get("point") is None:
            return RouteEpisode(self, sample, verify_iters or self.verify_iters,
                                self.config.on_fail)
        return super().episode(sample, verify_iters)

    def categories(self, sample: Sample) -> dict[str, Any]:
        f = sample.fields
        rail = f["rail"]
        out: dict[str, Any] = {"turns": sum(p["intersection"] for p in rail) + 1,
                               "style": f.get("style")}
        if f.get("point") is not None:
            p = rail[f["point"]]
            action = p[f["action_space"]]
            out["kind"] = ("stop" if action == STOP else "start" if f["point"] == 0
                           else "turn" if p["intersection"] else "forward")
            out["action"] = compact_action(action)
        return out

    # -- rows ------------------------------------------------------------------------------
    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from a row; needs `instructions`, `rail`, `action_space`."""
        for key in ("instructions", "rail", "action_space"):
            if key not in row:
                raise InputError(f"missing field {key!r}", where=where,
                                 hint="rows come from `gengap data --task navigation`")
        rail, sentences, space = row["rail"], row["instructions"], row["action_space"]
        if space not in ACTION_SPACES:
            raise InputError(f"'action_space' must be one of {ACTION_SPACES}, got {space!r}",
                             where=where)
        if (not isinstance(sentences, list) or not sentences
                or not all(isinstance(s, str) for s in sentences)):
            raise InputError("'instructions' must be a non-empty list of strings", where=where)
        if not isinstance(rail, list) or not rail:
            raise InputError("'rail' must be a non-empty list of points", where=where)
        for i, p in enumerate(rail):
            if not isinstance(p, Mapping) or any(k not in p for k in _POINT_KEYS):
                raise InputError(f"rail point {i} lacks one of {', '.join(_POINT_KEYS)}",
                                 where=where)
            if not isinstance(p["instruction"], int) or not 0 <= p["instruction"] < len(
                    sentences):
                raise InputError(f"rail point {i}: instruction index out of range",
                                 where=where)
        point = row.get("point")
        if point is not None and (isinstance(point, bool) or not isinstance(point, int)
                                  or not 0 <= point < len(rail)):
            raise InputError(f"'point' must be a rail index or null, got {point!r}",
                             where=where)
        modality = row.get("modality", self.modality)
        if modality not in MODALITIES:
            raise InputError(f"'modality' must be one of {MODALITIES}", where=where)
        style = row.get("style", self.config.train_style)
        if modality == "image" and style not in STYLES and style != "file":
            raise InputError(f"unknown city style {style!r}", where=where)
        meta = {k: row[k] for k in ("style", "city", "destination", "route") if k in row}
        meta.setdefault("style", style)
        index = row.get("index")
        sample = self._make(str(row.get("split", "")), int(index) if isinstance(index, int)
                            else -1, list(sentences), [dict(p) for p in rail],
                            {**meta}, space, point)
        sample = dataclasses.replace(sample, id=str(row.get("id", sample.id)),
                                     fields={**sample.fields, "modality": modality})
        return sample
