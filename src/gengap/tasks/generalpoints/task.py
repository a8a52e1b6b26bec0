"""GeneralPoints (the 24 card game) as a gengap task.

Splits and what they hold (ID = J/Q/K count as 10; rule OOD = they count as 11, 12, 13):

| split            | face rule        | dealer           | suits (image)   | suits (text) |
|------------------|------------------|------------------|-----------------|--------------|
| warmup           | both, by sample  | both, by sample  | all colours     | mixed        |
| train            | as10             | free             | black           | mixed        |
| test-id          | as10             | free             | black           | mixed        |
| test-ood-rule    | as11-13          | forces a face    | black           | mixed        |
| test-ood-visual  | as10             | free             | red             | (image only) |

Each split reads its own random stream, so a sample is a pure function of (split, seed, index).
`warmup` is the cold start's split: it mixes both rules and all suit colours so that the OOD
variants sit inside the tiny model's prior, as they do for a real pretrained model.

As in the study, splits share the dealer's distribution: under the ID rule there are only 715
value multisets, so the same hand can occur in train and test. `hold_out_test_hands=True`
redraws every train hand whose value multiset occurs among the first `holdout_n` hands of
test-id (off by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image

from gengap.errors import InputError
from gengap.tasks.base import Message, Sample, Verdict
from gengap.tasks.generalpoints import prompts
from gengap.tasks.generalpoints.cards import (
    FACE_RULES,
    NAME_TO_RANK,
    SUIT_COLOURS,
    SUITS,
    Hand,
    card_values,
    draw_hand,
    random_words,
)
from gengap.tasks.generalpoints.render import LAYOUTS, render_cards
from gengap.tasks.generalpoints.solver import Entry, lookup
from gengap.tasks.generalpoints.verify import WHITESPACE_MODES, judge

SPLITS = ("warmup", "train", "test-id", "test-ood-rule", "test-ood-visual")
MODALITIES = ("text", "image")
_MAX_DRAWS = 10_000  # ~71% of hands are solvable: never reached unless the target is absurd


class GeneralPointsTask:
    """The 24 game: deal, prompt, verify; text or image, paper or compact prompts."""

    name = "generalpoints"
    description = "The 24 card game: reach the target from four cards with + - * / ( )."
    splits = SPLITS
    variants: Mapping[str, tuple[str, ...]] = {
        "modality": MODALITIES,
        "prompt_style": prompts.PROMPT_STYLES,
        "face_rule": FACE_RULES,
        "suit_colours": tuple(SUIT_COLOURS),
        "layout": LAYOUTS,
        "whitespace": WHITESPACE_MODES,
    }
    default_verify_iters = 5

    def __init__(
        self,
        *,
        modality: str = "text",
        prompt_style: str = "paper",
        target: int = 24,
        image_size: int | None = None,
        layout: str | None = None,
        whitespace: str = "strict",
        hold_out_test_hands: bool = False,
        holdout_n: int = 1000,
    ):
        _check_choice("modality", modality, MODALITIES)
        _check_choice("prompt_style", prompt_style, prompts.PROMPT_STYLES)
        _check_choice("whitespace", whitespace, WHITESPACE_MODES)
        if layout is not None:
            _check_choice("layout", layout, LAYOUTS)
        if not 1 <= target <= 10_000:
            raise InputError(f"target must be between 1 and 10000, got {target}")
        self.modality = modality
        self.prompt_style = prompt_style
        self.target_points = target
        # The study's 1200 px paper layout for paper prompts; a small grid for tiny models.
        self.layout = layout or ("paper" if prompt_style == "paper" else "grid")
        self.image_size = image_size or (1200 if self.layout == "paper" else 64)
        self.whitespace = whitespace
        self.hold_out_test_hands = hold_out_test_hands
        self.holdout_n = holdout_n

    # -- configuration ---------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        """The constructor arguments: enough to rebuild an identical task."""
        return {
            "modality": self.modality,
            "prompt_style": self.prompt_style,
            "target": self.target_points,
            "image_size": self.image_size,
            "layout": self.layout,
            "whitespace": self.whitespace,
            "hold_out_test_hands": self.hold_out_test_hands,
            "holdout_n": self.holdout_n,
        }

    @property
    def max_new_tokens(self) -> int:
        # Compact answers are <= 24 chars (cards prefix included); paper answers ~100 chars.
        # Tokens are characters for the tiny model; real tokenizers need far fewer.
        return 32 if self.prompt_style == "compact" else 128

    def split_variant(self, split: str) -> dict[str, Any]:
        """Face rule, dealer and suit colours of a split (warmup: decided per sample)."""
        _check_choice("split", split, self.splits)
        if split == "test-ood-visual" and self.modality != "image":
            raise InputError(
                "split 'test-ood-visual' exists only for the image modality",
                hint="pass --modality image, or pick test-ood-rule",
            )
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
        if index < 0:
            raise InputError(f"sample index must be >= 0, got {index}")
        variant = self.split_variant(split)
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
        for attempt in range(_MAX_DRAWS):
            hand = draw_hand(seed, split, index, attempt, force_face=variant["force_face"],
                             colours=variant["suit_colours"])
            values = hand.values(variant["face_rule"])
            entry = lookup(values, self.target_points)
            if entry.solvable and not self._held_out(split, seed, values):
                return self._make(split, index, hand, variant["face_rule"], entry)
        raise InputError(f"no solvable hand for target {self.target_points} in {_MAX_DRAWS} draws")

    def _held_out(self, split: str, seed: int, values: tuple[int, ...]) -> bool:
        return (self.hold_out_test_hands and split == "train"
                and tuple(sorted(values)) in self._test_multisets(seed))

    def _test_multisets(self, seed: int) -> frozenset[tuple[int, ...]]:
        cache = self.__dict__.setdefault("_holdout_cache", {})
        if seed not in cache:
            hands = (self.sample("test-id", i, seed) for i in range(self.holdout_n))
            cache[seed] = frozenset(tuple(sorted(self.values(s))) for s in hands)
        return cache[seed]

    def _make(self, split: str, index: int, hand: Hand, face_rule: str, entry: Entry) -> Sample:
        fields = {
            "cards": list(hand.names),
            "suits": list(hand.suits),
            "face_rule": face_rule,
            "target": self.target_points,
            "modality": self.modality,
        }
        return Sample(f"generalpoints/{split}/{index}", self.name, split, fields,
                      entry.canonical or "")

    def values(self, sample: Sample) -> tuple[int, ...]:
        """The numbers the sample's cards stand for under its face rule."""
        return card_values(sample.fields["cards"], sample.fields["face_rule"])

    def entry(self, sample: Sample) -> Entry:
        return lookup(self.values(sample), sample.fields["target"])

    # -- prompts and images ----------------------------------------------------------------
    def messages(self, sample: Sample) -> list[Message]:
        f = sample.fields
        image = f["modality"] == "image"
        build = prompts.paper_prompt if self.prompt_style == "paper" else prompts.compact_prompt
        text = build(f["cards"], f["face_rule"], f["target"], image=image)
        if not image:
            return [{"role": "user", "content": text}]
        # The image comes first in the user message, as in the study.
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def image(self, sample: Sample) -> Image.Image | None:
        if sample.fields["modality"] != "image":
            return None
        return render_cards(sample.fields["cards"], sample.fields["suits"],
                            size=self.image_size, layout=self.layout)

    def target_text(self, sample: Sample, formula: str) -> str:
        """A completion that states `formula` in this task's prompt style."""
        f = sample.fields
        if self.prompt_style == "paper":
            return prompts.paper_response(f["cards"], self.values(sample), formula, f["target"])
        return prompts.compact_response(f["cards"], formula, image=f["modality"] == "image")

    def target(self, sample: Sample) -> str:
        return self.target_text(sample, sample.answer)

    # -- judging ---------------------------------------------------------------------------
    def verify(self, sample: Sample, completion: str) -> Verdict:
        f = sample.fields
        return judge(
            completion,
            values=self.values(sample),
            entry=self.entry(sample),
            target=f["target"],
            true_cards=f["cards"] if f["modality"] == "image" else None,
            whitespace=self.whitespace,
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
    def row(self, sample: Sample) -> dict[str, Any]:
        return {"id": sample.id, "task": self.name, "split": sample.split, **sample.fields,
                "answer": sample.answer}

    def sample_from_row(self, row: Mapping[str, Any], *, line: int | None = None) -> Sample:
        """Rebuild a sample from a row; needs `cards`, `face_rule`, `target` (+`suits`)."""
        where = f"line {line}" if line is not None else None

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
        if isinstance(target, bool) or not isinstance(target, int):
            raise InputError(f"'target' must be an integer, got {target!r}", where=where)
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
        return Sample(str(row.get("id", f"row/{line}")), self.name, str(row.get("split", "")),
                      fields, str(row.get("answer") or entry.canonical or ""))


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}", hint=f"choose one of: {', '.join(allowed)}")
