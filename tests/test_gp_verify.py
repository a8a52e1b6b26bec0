"""The GeneralPoints verifier: every row of the study's reward table, and the parser."""

from __future__ import annotations

import pytest

from gengap.tasks.generalpoints.arithmetic import FormulaError, evaluate_formula
from gengap.tasks.generalpoints.solver import Entry, lookup
from gengap.tasks.generalpoints.verify import extract_cards, extract_formula, judge

HAND = (4, 3, 2, 10)  # cards 4, 3, 2, K under the ID rule


def score(formula: str, values=HAND, **kw):
    return judge(formula, values=values, entry=lookup(values), target=24, **kw)


@pytest.mark.parametrize(
    ("formula", "reward", "feedback"),
    [
        ("4*3+2+10", 5.0, "Correct solution."),
        ("(4*3", -2.0, "you didn't use numbers: [2, 10]."),  # unused numbers come first
        ("4+3+2+10", -1.0, "4 is partially correct but the full formula does not match"),
        ("4*3+2+1o", -3.0, "illegal characters."),
        ("4*3 + 2+10", -3.0, "illegal characters."),  # the study counts spaces as illegal
        ("4*3+2+10+", -1.0, "4*3+2+10 is partially correct"),  # not evaluable, no prefix
        ("4**3+2+10", -3.0, "invalid sequence after operator."),
        ("4*3)+2+10", -3.0, "unmatched closing parenthesis."),
        ("4(3+2)+10", -6.0, "invalid sequence before '(', unmatched closing parenthesis."),
        ("4*3+2+10()", -6.0, "invalid sequence before '(', invalid sequence after ')'."),
        ("4*3+2+9", -4.0, "you used invalid numbers: [9], you didn't use numbers: [10]."),
        ("4*3+3+10", -4.0, "you used numbers: [3] too many times, you didn't use numbers: [2]."),
        ("4*3+2", -2.0, "you didn't use numbers: [10]."),
        ("4*3**3+10", -7.0, "invalid sequence after operator, you used numbers: [3] too many"),
    ],
)
def test_reward_table(formula: str, reward: float, feedback: str) -> None:
    verdict = score(formula)
    assert verdict.reward == reward
    assert verdict.feedback.startswith(feedback)
    assert verdict.correct == (reward == 5.0)


def test_penalties_accumulate_per_violation() -> None:
    # Two sequence violations (-3 each) plus an unused number (-2).
    verdict = score("4**3//2")
    assert verdict.reward == -3 - 3 - 2
    assert verdict.feedback.count("invalid sequence after operator") == 2


def test_exact_arithmetic_accepts_what_floats_reject() -> None:
    # The study's float check computes 23.999999999999996 here: we are exact.
    assert score("8/(3-8/3)", values=(8, 3, 8, 3)).reward == 5.0
    assert evaluate_formula("8/(3-8/3)") == 24


def test_partial_credit_needs_every_number_and_a_solution_prefix() -> None:
    entry = lookup(HAND)
    solution = next(s for s in entry.solutions if s.endswith(")"))
    verdict = score(solution[:-1])  # all four numbers, unbalanced: not evaluable
    assert (verdict.reward, verdict.feedback) == (1.0, "partial solution.")


def test_no_matching_prefix_at_all() -> None:
    only = Entry(HAND, ("4*3+2+10",))
    verdict = judge("10+4+3+2", values=HAND, entry=only, target=24)
    assert (verdict.reward, verdict.feedback) == (-1.0, "your formula does not match any solution.")


def test_division_by_zero_is_not_evaluable() -> None:
    # Uses the right numbers, cannot be evaluated, not a prefix of a solution -> -1.
    verdict = score("4/(3-3)*2", values=(4, 3, 3, 2))
    assert verdict.reward == -1.0
    with pytest.raises(FormulaError):
        evaluate_formula("4/(3-3)")


def test_text_after_equals_is_ignored() -> None:
    assert score("4*3+2+10=24").reward == 5.0
    assert score("4*3+2+10=25").reward == 5.0  # the study cuts at '=' before checking


def test_whitespace_modes() -> None:
    assert score("  4*3+2+10  ").reward == 5.0  # around the formula: always stripped
    assert score("4 * 3 + 2 + 10").reward == -3.0
    assert score("4 * 3 + 2 + 10", whitespace="ignore").reward == 5.0


def test_long_and_deep_formulas_are_judged_in_bounded_time() -> None:
    assert score("(" * 10_000 + "4").reward == -3.0  # over-long
    deep = "(" * 130 + "4*3+2+10" + ")" * 130
    assert score(deep).reward == -3.0  # 256 chars max
    # Any nesting that fits in 256 characters is evaluated, as Python's eval would.
    nested = "(" * 80 + "4" + ")" * 80 + "*3+2+10"
    assert score(nested).reward == 5.0


@pytest.mark.parametrize("digits", ["٤*٣+٢+١٠", "４*３+２+１０", "4*3+2+1\u0660"])
def test_non_ascii_digits_are_illegal_characters(digits: str) -> None:
    """Arabic-Indic or full-width digits are not numbers (the study's check rejects them)."""
    verdict = score(digits)
    assert verdict.reward == -3.0 and "illegal" in verdict.feedback


def test_image_variant_checks_recognised_cards_first() -> None:
    cards = ["4", "3", "2", "K"]
    good = '{"cards": ["4", "3", "2", "K"], "number": [4, 3, 2, 10], "formula": "4*3+2+10=24"}'
    wrong = '{"cards": ["4", "3", "2", "Q"], "number": [4, 3, 2, 10], "formula": "4*3+2+10=24"}'
    v = score(good, true_cards=cards)
    assert (v.reward, v.metrics["recognition"]) == (5.0, 1.0)
    v = score(wrong, true_cards=cards)
    assert (v.reward, v.feedback, v.metrics["recognition"]) == (
        -1.5, "you recognized wrong cards.", 0.0)
    # Order does not matter: the study compares multisets.
    assert score("K,2,3,4|4*3+2+10", true_cards=cards).reward == 5.0


@pytest.mark.parametrize(
    "completion",
    [
        '{"cards": ["4", "3", "2", "K"], "number": [4, 3, 2, 10], "formula": "4*3+2+10=24"}',
        "{\n  'cards': ['4', '3', '2', 'K'],\n  'number': [4, 3, 2, 10],\n"
        "  'formula': '4*3+2+10=24',\n}",  # single quotes and a trailing comma
        '{\n  "cards": [4, 3, 2, K],\n  "number": [4, 3, 2, 10],\n  "formula": "4*3+2+10",\n}',
        "4*3+2+10",
        "4,3,2,K|4*3+2+10",
    ],
)
def test_parser_accepts_the_papers_object_and_bare_formulas(completion: str) -> None:
    assert extract_formula(completion) == "4*3+2+10"


def test_parser_reads_cards_in_both_styles() -> None:
    assert extract_cards("{'cards': ['4', '10', 'k', 'A'], 'formula': '1'}") == [
        "4", "10", "K", "A"]
    assert extract_cards("4,10,K,A|1+2") == ["4", "10", "K", "A"]
    assert extract_cards("4*3+2+10") is None


def test_object_without_formula_is_illegal() -> None:
    v = score('{"cards": ["4", "3", "2", "K"], "number": [4, 3, 2, 10]}')
    assert v.reward == -3.0 and v.feedback.startswith("illegal characters")


def test_leading_zero_numbers_are_not_evaluable_like_python() -> None:
    with pytest.raises(FormulaError):
        evaluate_formula("04*6")
    assert evaluate_formula("00+24") == 24
