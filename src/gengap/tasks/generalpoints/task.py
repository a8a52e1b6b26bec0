"""GeneralPoints (the 24 card game) as a gengap task.

Splits, their roles and what they hold (ID = J/Q/K count as 10; rule OOD = 11, 12, 13):

| split            | role   | face rule        | dealer           | suits (image)   | text  |
|------------------|--------|------------------|------------------|-----------------|-------|
| warmup           | warmup | both, by sample  | both, by sample  | all colours     | mixed |
| train            | train  | as10             | free             | black           | mixed |
| test-id          | test   | as10             | free             | black           | mixed |
| test-ood-rule    | ood    | as11-13          | forces a face    | black           | mixed |
| test-ood-visual  | ood    | as10             | free             | red             | (image only) |

Each split reads its own random stream, so a sample is a pure function of (split, seed, index);
every split is generated (unbounded). `warmup` is the cold start's split: it mixes both rules and
all suit colours so that the OOD variants sit inside the tiny model's prior, as they do for a
real pretrained model.

As in the study, splits share the dealer's distribution: under the ID rule there are only 715
value multisets, so the same hand can occur in train and test. `hold_out_test_hands=True`
redraws every train hand whose value multiset occurs among the first `holdout_n` hands of
test-id (off by default).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from PIL import Image

from gengap.errors import InputError
from gengap.tasks.base import Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.generalpoints import prompts
from gengap.tasks.generalpoints.cards import (
    FACE_RULES,
    NAME_TO_RANK,
    SUITS,
    Hand,
    card_values,
    draw_hand,
    random_words,
)
from gengap.tasks.generalpoints.render import render_cards
from gengap.tasks.generalpoints.solver import Entry, lookup
from gengap.tasks.generalpoints.verify import judge

MODALITIES = ("text", "image")
_MAX_DRAWS = 10_000  # ~71% of hands are solvable: never reached unless the target is absurd
MAX_TARGET = 10_000


@dataclass
class GeneralPointsConfig:
    """Options of the GeneralPoints task (`--task-option key=value`)."""

    modality: Literal["text", "image"] = field(
        default="text", metadata={"help": "text, or image (card pictures; adds visual OOD)"})
    prompt_style: Literal["paper", "compact"] = field(
        default="paper", metadata={"help": "paper (the study's wording) or compact (tiny models)"})
    target: int = field(default=24, metadata={"help": "the number to reach (1..10000)"})
    image_size: int | None = field(
        default=None, metadata={"help": "image side in px (default 1200 paper, 64 grid)"})
    layout: Literal["paper", "grid"] | None = field(
        default=None, metadata={"help": "paper (cards in a row) or grid (2x2); default by style"})
    whitespace: Literal["strict", "ignore"] = field(
        default="strict", metadata={"help": "strict (spaces are illegal, as in the study) or "
                                            "ignore"})
    hold_out_test_hands: bool = field(
        default=False, metadata={"help": "keep test-id hands out of train (off in the study)"})
    holdout_n: int = field(default=1000, metadata={"help": "test-id hands held out"})

    def validate(self) -> None:
        if not 1 <= self.target <= MAX_TARGET:
            raise InputError(f"target must be between 1 and {MAX_TARGET}, got {self.target}",
                             where="task option target")
        if self.image_size is not None and not 16 <= self.image_size <= 4096:
            raise InputError(f"image_size must be between 16 and 4096 px, got {self.image_size}",
                             where="task option image_size")
        if self.holdout_n < 1:
            raise InputError(f"holdout_n must be >= 1, got {self.holdout_n}",
                             where="task option holdout_n")


# The tiny model's cold start for this task, measured to land ID success at temperature 0.9
# inside 30-70% on 2 CPU cores (numbers in the README).
COLDSTART = {
    "text": {"phases": [
        {"name": "pretrain", "steps": 625, "batch_size": 64, "learning_rate": 2e-3},
        {"name": "sft", "steps": 100, "batch_size": 64, "learning_rate": 3e-4},
    ]},
    # Image: a pure recognition phase first (targets `4,3,2,K|`), then the full canonical
    # targets; the decoder starts from the text cold start. Every phase gives the vision tower +
    # projector its own learning rate: with one shared rate the image tokens collapse into a
    # constant soft prompt and recognition stays at chance (see `gengap.coldstart._optimizer`).
    # Measured (n=200, k=4, 2026-11-22): recognition 100%, ID success at T=0.9 43.8%, rule OOD
    # 16.8%, visual OOD 38.6%; 467 s with the text start.
    "image": {"init_decoder_from_text": True, "phases": [
        {"name": "recognise", "steps": 900, "batch_size": 32, "learning_rate": 3e-4,
         "vision_learning_rate": 3e-4, "targets": "cards"},
        {"name": "sft", "steps": 1000, "batch_size": 32, "learning_rate": 5e-4,
         "vision_learning_rate": 1e-4},
    ]},
}


class GeneralPointsTask(TaskBase):
    """The 24 game: deal, prompt, verify; text or image, paper or compact prompts."""

    name = "generalpoints"
    description = "The 24 card game: reach the target from four cards with + - * / ( )."
    Config = GeneralPointsConfig
    tiny_options: ClassVar[dict[str, Any]] = {"prompt_style": "compact"}
    metric_docs: ClassVar[dict[str, str]] = {
        "recognition": "the recognised cards equal the true cards (image only)"}
    report_by = ()
    target_variants = ("answer", "any", "cards")
    coldstart_recipe = COLDSTART
    references: ClassVar[dict[str, str]] = {
        "rl_beats_sft_ood": "GP-L rule OOD: init 11.5, RL 15.0, SFT 3.4; GP-VL visual OOD: "
                            "RL 41.2, SFT 13.7 (Chu et al., Llama-3.2-Vision-11B)",
        "rl_recognition": "GP-VL: RL raises recognition and success, SFT lowers both "
                          "(Chu et al., Figure 8)",
    }

    def __init__(self, config: GeneralPointsConfig | None = None, **options: Any):
        super().__init__(config, **options)
        c = self.config
        # The study's 1200 px paper layout for paper prompts; a small grid for tiny models.
        self.layout = c.layout or ("paper" if c.prompt_style == "paper" else "grid")
        self.image_size = c.image_size or (1200 if self.layout == "paper" else 64)

    # -- configuration ---------------------------------------------------------------------
    @property
    def verify_iters(self) -> int:
        return 5  # the study's V for GeneralPoints

    @property
    def max_new_tokens(self) -> int:
        # Compact answers are <= 24 chars (cards prefix included); paper answers ~100 chars.
        # Tokens are characters for the tiny model; real tokenizers need far fewer.
        return 32 if self.config.prompt_style == "compact" else 128

    @property
    def splits(self) -> dict[str, Split]:
        splits = [
            Split("warmup", "warmup", description="both face rules, all suit colours"),
            Split("train", "train", description="J/Q/K = 10"),
            Split("test-id", "test", description="J/Q/K = 10"),
            Split("test-ood-rule", "ood", axis="rule",
                  description="J/Q/K = 11/12/13, at least one face card"),
        ]
        if self.modality == "image":
            splits.append(Split("test-ood-visual", "ood", axis="visual",
                                description="red suits (training sees black)"))
        return {s.name: s for s in splits}

    def split(self, name: str) -> Split:
        if name == "test-ood-visual" and self.modality != "image":
            raise InputError(
                "split 'test-ood-visual' exists only for the image modality",
                hint="pass --task-option modality=image, or pick test-ood-rule",
            )
        return super().split(name)

    def split_variant(self, split: str) -> dict[str, Any]:
        """Face rule, dealer and suit colours of a split (warmup: decided per sample)."""
        self.split(split)
        ood_rule = split == "test-ood-rule"
        colours = "mixed" if self.modality == "text" else "black"
        if split == "test-ood-visual":
            colours = "red"
        return {
            "face_rule": "as11-13" if ood_rule else "as10",
            "force_face": ood_rule,
            "suit_colours": colours,
        }

    # -- samples ---------------------------------------------------------------------------
    def sample(self, split: str, index: int, seed: int) -> Sample:
        """Sample `index` of `split`: the study's dealer, redrawn until solvable."""
        variant = self.split_variant(split)
        self.check_index(split, index)
        if split == "warmup":
            # Per-sample variant from the sample's own stream: both rules, all colours.
            w = random_words(seed, "warmup-variant", index, 0)
            ood_rule = w[0] % 2 == 1
            variant = {
                "face_rule": FACE_RULES[ood_rule],
                # Half of the rule-OOD warmup hands come from the face-forcing dealer.
                "force_face": ood_rule and w[1] % 2 == 1,
                "suit_colours": ("black", "red", "mixed")[w[2] % 3]
                if self.modality == "image" else "mixed",
            }
        target = self.config.target
        for attempt in range(_MAX_DRAWS):
            hand = draw_hand(seed, split, index, attempt, force_face=variant["force_face"],
                             colours=variant["suit_colours"])
            values = hand.values(variant["face_rule"])
            entry = lookup(values, target)
            if entry.solvable and not self._held_out(split, seed, values):
                return self._make(split, index, hand, variant["face_rule"], entry)
        raise InputError(f"no solvable hand for target {target} in {_MAX_DRAWS} draws")

    def _held_out(self, split: str, seed: int, values: tuple[int, ...]) -> bool:
        return (self.config.hold_out_test_hands and split == "train"
                and tuple(sorted(values)) in self._test_multisets(seed))

    def _test_multisets(self, seed: int) -> frozenset[tuple[int, ...]]:
        cache = self.__dict__.setdefault("_holdout_cache", {})
        if seed not in cache:
            hands = (self.sample("test-id", i, seed) for i in range(self.config.holdout_n))
            cache[seed] = frozenset(tuple(sorted(self.values(s))) for s in hands)
        return cache[seed]

    def _make(self, split: str, index: int, hand: Hand, face_rule: str, entry: Entry) -> Sample:
        fields = {
            "cards": list(hand.names),
            "suits": list(hand.suits),
            "face_rule": face_rule,
            "target": self.config.target,
            "modality": self.modality,
        }
        return Sample(f"generalpoints/{split}/{index}", self.name, split, index, fields,
                      entry.canonical or "")

    def values(self, sample: Sample) -> tuple[int, ...]:
        """The numbers the sample's cards stand for under its face rule."""
        return card_values(sample.fields["cards"], sample.fields["face_rule"])

    def entry(self, sample: Sample) -> Entry:
        """The solver's table entry for the sample's hand (all its solutions)."""
        return lookup(self.values(sample), sample.fields["target"])

    # -- prompts and images ----------------------------------------------------------------
    def messages(self, sample: Sample) -> list[Message]:
        f = sample.fields
        image = f["modality"] == "image"
        style = self.config.prompt_style
        build = prompts.paper_prompt if style == "paper" else prompts.compact_prompt
        # The image comes first in the user message, as in the study.
        return [user_turn(build(f["cards"], f["face_rule"], f["target"], image=image),
                          n_images=int(image))]

    def images(self, sample: Sample) -> list[Image.Image]:
        if sample.fields["modality"] != "image":
            return []
        return [render_cards(sample.fields["cards"], sample.fields["suits"],
                             size=self.image_size, layout=self.layout)]

    def target_text(self, sample: Sample, formula: str) -> str:
        """A completion that states `formula` in this task's prompt style."""
        f = sample.fields
        if self.config.prompt_style == "paper":
            return prompts.paper_response(f["cards"], self.values(sample), formula, f["target"])
        return prompts.compact_response(f["cards"], formula, image=f["modality"] == "image")

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """answer: the canonical solution; any: a random one of the hand's solutions (`rng`);
        cards: the recognised cards alone (`4,3,2,K|`, a pure recognition target)."""
        if variant == "answer":
            return self.target_text(sample, sample.answer)
        if variant == "any":
            return self.target_text(sample, (rng or random).choice(self.entry(sample).solutions))
        if variant == "cards":
            return self.target_text(sample, "")
        raise InputError(f"unknown target variant {variant!r}",
                         hint=f"one of {', '.join(self.target_variants)}")

    # -- judging ---------------------------------------------------------------------------
    def verify(self, sample: Sample, completion: str) -> Verdict:
        f = sample.fields
        return judge(
            completion,
            values=self.values(sample),
            entry=self.entry(sample),
            target=f["target"],
            true_cards=f["cards"] if f["modality"] == "image" else None,
            whitespace=self.config.whitespace,
        )

    def failure_turn(self, verdict: Verdict) -> str:
        return prompts.FAILURE_TURN.format(feedback=verdict.feedback)

    def categories(self, sample: Sample) -> dict[str, Any]:
        cards = sample.fields["cards"]
        return {
            "face_cards": sum(c in ("J", "Q", "K") for c in cards),
            "solutions": len(self.entry(sample).solutions),
            "face_rule": sample.fields["face_rule"],
        }

    # -- rows ------------------------------------------------------------------------------
    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from a row; needs `cards`, `face_rule`, `target` (+`suits`)."""

        def need(key: str) -> Any:
            if key not in row:
                raise InputError(f"missing field {key!r}", where=where,
                                 hint="rows need cards, face_rule and target")
            return row[key]

        cards, face_rule, target = need("cards"), need("face_rule"), need("target")
        if (not isinstance(cards, list) or len(cards) != 4
                or not all(isinstance(c, str) and c in NAME_TO_RANK for c in cards)):
            raise InputError(f"'cards' must be a list of 4 card names, got {cards!r}",
                             where=where, hint='card names are "A", "2".."10", "J", "Q", "K"')
        if face_rule not in FACE_RULES:
            raise InputError(f"'face_rule' must be one of {FACE_RULES}, got {face_rule!r}",
                             where=where)
        if (isinstance(target, bool) or not isinstance(target, int)
                or not 1 <= target <= MAX_TARGET):
            raise InputError(f"'target' must be an integer in 1..{MAX_TARGET}, got {target!r}",
                             where=where)
        modality = row.get("modality", self.modality)
        if modality not in MODALITIES:
            raise InputError(f"'modality' must be one of {MODALITIES}, got {modality!r}",
                             where=where)
        suits = row.get("suits")
        if modality == "image" and suits is None:
            raise InputError("image rows need 'suits'", where=where)
        if suits is not None and (not isinstance(suits, list) or len(suits) != 4
                                  or not all(s in SUITS for s in suits)):
            raise InputError(f"'suits' must be a list of 4 of {SUITS}, got {suits!r}",
                             where=where)
        fields = {"cards": list(cards), "suits": list(suits or ["S"] * 4),
                  "face_rule": face_rule, "target": target, "modality": modality}
        entry = lookup(card_values(cards, face_rule), target)
        index = row.get("index")
        return Sample(str(row.get("id", f"row/{where}")), self.name, str(row.get("split", "")),
                      int(index) if isinstance(index, int) else -1, fields,
                      str(row.get("answer") or entry.canonical or ""))
