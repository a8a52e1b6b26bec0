"""Dealing, the solver table, splits, prompts and images of GeneralPoints."""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from gengap.errors import InputError
from gengap.tasks import get_task
from gengap.tasks.generalpoints.cards import SUIT_COLOURS, draw_hand
from gengap.tasks.generalpoints.prompts import paper_prompt
from gengap.tasks.generalpoints.render import render_cards
from gengap.tasks.generalpoints.solver import MULTISETS, lookup, solution_table


def brute_force_solvable(values: tuple[int, ...], target: int = 24) -> bool:
    """Independent check: combine any two numbers with any operator until one is left."""

    def search(nums: list[Fraction]) -> bool:
        if len(nums) == 1:
            return nums[0] == target
        for i, j in itertools.permutations(range(len(nums)), 2):
            rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
            a, b = nums[i], nums[j]
            results = [a + b, a - b, a * b] + ([a / b] if b else [])
            if any(search([*rest, r]) for r in results):
                return True
        return False

    return search([Fraction(v) for v in values])


def test_solver_matches_brute_force_on_every_multiset() -> None:
    table = solution_table(24)
    assert len(table) == len(MULTISETS) == 1820
    mismatches = [v for v in MULTISETS if table[v].solvable != brute_force_solvable(v)]
    assert mismatches == []
    assert sum(e.solvable for e in table.values()) == 1362  # the known count for 1..13


def test_every_solution_string_is_exact_and_uses_the_hand() -> None:
    from gengap.tasks.generalpoints.arithmetic import evaluate_formula, tokenize

    for values in [(1, 2, 3, 4), (8, 3, 8, 3), (10, 10, 4, 4), (13, 12, 11, 1)]:
        entry = lookup(values)
        assert entry.solutions, values
        for s in entry.solutions:
            assert evaluate_formula(s) == 24
            assert sorted(int(t) for t in tokenize(s) if t.isdigit()) == sorted(values)
        assert entry.canonical in entry.solutions


def test_other_targets_have_their_own_table() -> None:
    assert lookup((1, 1, 1, 1), target=4).solvable
    assert not lookup((1, 1, 1, 1), target=24).solvable


def test_samples_are_deterministic_and_streams_independent() -> None:
    task = get_task("generalpoints")
    a = [task.sample("train", i, 7) for i in range(50)]
    assert a == [task.sample("train", i, 7) for i in range(50)]
    assert task.sample("train", 49, 7) == a[49]  # no dependence on what was drawn before
    other_split = [task.sample("test-id", i, 7).fields["cards"] for i in range(50)]
    other_seed = [task.sample("train", i, 8).fields["cards"] for i in range(50)]
    cards = [s.fields["cards"] for s in a]
    assert cards != other_split and cards != other_seed


def test_dealer_distribution_matches_the_study() -> None:
    # Raw draws: ranks i.i.d. uniform on 1..13, so ~71% of hands solvable (ID rule: 10s).
    draws = [draw_hand(0, "stat", i, 0, force_face=False, colours="mixed") for i in range(20000)]
    ranks = Counter(r for h in draws for r in h.ranks)
    counts = np.array([ranks[r] for r in range(1, 14)])
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < 40  # 12 dof: p ~ 1e-4
    solvable = np.mean([lookup(h.values("as10")).solvable for h in draws])
    assert 0.68 < solvable < 0.76
    # The rule-OOD dealer forces at least one face card, at a uniform position.
    ood = [draw_hand(0, "stat-ood", i, 0, force_face=True, colours="mixed") for i in range(4000)]
    assert all(any(r >= 11 for r in h.ranks) for h in ood)
    first_face = Counter(next(i for i, r in enumerate(h.ranks) if r >= 11) for h in ood)
    assert first_face[0] > first_face[3]  # earlier positions also catch free face cards


@pytest.mark.parametrize(
    ("split", "modality", "rule", "colours"),
    [
        ("train", "text", "as10", "mixed"),
        ("test-id", "image", "as10", "black"),
        ("test-ood-rule", "text", "as11-13", "mixed"),
        ("test-ood-rule", "image", "as11-13", "black"),
        ("test-ood-visual", "image", "as10", "red"),
    ],
)
def test_split_variants(split: str, modality: str, rule: str, colours: str) -> None:
    task = get_task("generalpoints", modality=modality, prompt_style="compact")
    samples = [task.sample(split, i, 0) for i in range(200)]
    assert {s.fields["face_rule"] for s in samples} == {rule}
    assert {x for s in samples for x in s.fields["suits"]} <= set(SUIT_COLOURS[colours])
    for s in samples:
        assert task.verify(s, task.target(s)).correct  # every dealt hand is solvable
    if rule == "as11-13":
        assert all(set(s.fields["cards"]) & {"J", "Q", "K"} for s in samples)


def test_warmup_mixes_rules_and_colours() -> None:
    task = get_task("generalpoints", modality="image", prompt_style="compact")
    samples = [task.sample("warmup", i, 0) for i in range(300)]
    rules = Counter(s.fields["face_rule"] for s in samples)
    assert 100 < rules["as10"] < 200
    suits = Counter(x for s in samples for x in s.fields["suits"])
    assert all(suits[x] > 100 for x in "SCHD")


def test_hold_out_keeps_test_hands_out_of_train() -> None:
    task = get_task("generalpoints", hold_out_test_hands=True, holdout_n=200)
    test = {tuple(sorted(task.values(task.sample("test-id", i, 3)))) for i in range(200)}
    train = [tuple(sorted(task.values(task.sample("train", i, 3)))) for i in range(300)]
    assert not test & set(train)
    plain = get_task("generalpoints")
    overlap = [tuple(sorted(plain.values(plain.sample("train", i, 3)))) for i in range(300)]
    assert test & set(overlap)  # off by default: the study's splits share hands


def test_bad_split_and_options_are_clear_errors() -> None:
    with pytest.raises(InputError, match="has no split 'valid'"):
        get_task("generalpoints").sample("valid", 0, 0)
    with pytest.raises(InputError, match="only for the image modality"):
        get_task("generalpoints").sample("test-ood-visual", 0, 0)
    with pytest.raises(InputError, match="'modality' must be one of text, image"):
        get_task("generalpoints", modality="audio")
    with pytest.raises(InputError, match="unknown task"):
        get_task("go")


def test_paper_prompt_is_the_studys_wording() -> None:
    text = paper_prompt(["4", "3", "2", "K"], "as10", 24, image=False)
    assert ("You are an expert 24 points card game player. "
            "You will receive a set of 4 cards.") in text
    assert "Note that 'J', 'Q', and 'K' count as '10', and each card must be used once." in text
    assert "Cards: ['4', '3', '2', 'K']" in text
    ood = paper_prompt(["4"], "as11-13", 24, image=True)
    assert "'J', 'Q', and 'K' count as '11', '12', and '13' respectively" in ood
    assert "You are observing these four cards in the image." in ood and "Cards:" not in ood


def test_targets_round_trip_through_the_verifier_in_every_style() -> None:
    for modality, style in itertools.product(("text", "image"), ("paper", "compact")):
        task = get_task("generalpoints", modality=modality, prompt_style=style)
        for i in range(20):
            s = task.sample("train", i, 0)
            assert task.verify(s, task.target(s)).reward == 5.0
            assert task.sample_from_row(task.row(s)) == s


def test_image_messages_put_the_image_first() -> None:
    task = get_task("generalpoints", modality="image")
    content = task.messages(task.sample("test-id", 0, 0))[0]["content"]
    assert content[0] == {"type": "image"} and content[1]["type"] == "text"


def test_render_draws_suit_colours_and_layouts() -> None:
    def red_pixels(img) -> int:
        a = np.asarray(img).astype(int)
        return int(((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum())

    black = render_cards(["A", "10", "Q", "7"], ["S", "C", "S", "C"], size=128, layout="grid")
    red = render_cards(["A", "10", "Q", "7"], ["H", "D", "H", "D"], size=128, layout="grid")
    assert black.size == red.size == (128, 128)
    assert red_pixels(black) == 0 and red_pixels(red) > 200
    paper = render_cards(["A", "10", "Q", "7"], ["H", "D", "H", "D"], size=1200)
    a = np.asarray(paper)
    assert tuple(a[20, 600]) == (0x35, 0x65, 0x4D)  # the study's table green above the cards
    assert tuple(a[600, 100]) == (255, 255, 255)  # inside the first card (x 5..275)
    # Different hands give different pictures; the same hand the same picture.
    again = render_cards(["A", "10", "Q", "7"], ["H", "D", "H", "D"], size=128, layout="grid")
    other = render_cards(["A", "10", "Q", "8"], ["H", "D", "H", "D"], size=128, layout="grid")
    assert np.array_equal(np.asarray(red), np.asarray(again))
    assert not np.array_equal(np.asarray(red), np.asarray(other))
