"""Scorers by name (`gengap.scorers`), case by case, plus property-based fuzzing."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gengap.errors import InputError
from gengap.scorers import BUILTIN, MathVerifier, choice_letter, get_scorer, normalise
from gengap.tasks.base import Verdict


@pytest.mark.parametrize(("completion", "answer", "correct"), [
    ("Golden Retriever.", "golden retriever", True),
    ("  tabby  ", "Tabby.", True),
    ("cat..", "cat", False),  # one trailing '.' only, as DC-SFT
    ("a cat", "cat", False),
    ("", "", True),
])
def test_exact(completion: str, answer: str, correct: bool) -> None:
    verdict = get_scorer("exact")(completion, answer)
    assert verdict.correct is correct and verdict.reward == float(correct)


@pytest.mark.parametrize(("completion", "letter"), [
    ("B", "B"), ("(C)", "C"), ("D) 42", "D"), ("a.", "A"), ("a cat", None),
    ("The answer is (B).", "B"),
    ("I think the answer: c", "C"), ("Option D is right", "D"), ("<answer>E</answer>", "E"),
    ("<think>maybe A or B</think><answer>B</answer>", "B"), ("$\\boxed{C}$", "C"),
    ("Between (A) and (B)... the answer is A", "A"), ("It is (C) clearly", "C"),
    ("I am not sure", None), ("A or B", "A"), ("either (A) or (B)", None), ("", None),
])
def test_choice_extraction(completion: str, letter: str | None) -> None:
    assert choice_letter(completion, "ABCDE") == letter


def test_choice_scorer_and_letters() -> None:
    score = get_scorer("choice", letters="ABCD")
    assert score("answer is (b)", "B").correct
    assert not score("E", "B").correct  # not an option here
    assert score("C", "(C) 12 apples").correct
    verdict = score("no idea", "A")
    assert not verdict.correct and verdict.metrics["parsed"] == 0.0
    with pytest.raises(InputError, match="upper-case"):
        get_scorer("choice", letters="ab")


def test_iou_scorer() -> None:
    score = get_scorer("iou")
    hit = score("<answer>[10, 10, 50, 50]</answer>", "[10, 10, 50, 52]")
    assert hit.correct and hit.metrics["iou"] == pytest.approx(40 * 40 / (40 * 42))
    miss = score("[0, 0, 10, 10]", "[10, 10, 50, 50]")
    assert not miss.correct and miss.metrics["iou"] == 0.0
    half = get_scorer("iou", iou_threshold=0.4)("[0, 0, 10, 10]", "[0, 0, 10, 20]")
    assert half.correct and half.metrics["iou"] == 0.5
    assert get_scorer("iou")("no box", "[0, 0, 1, 1]").metrics["parsed"] == 0.0


def test_regex_scorer() -> None:
    score = get_scorer("regex", pattern=r"Answer:\s*(\w+)")
    assert score("blah. Answer: Paris.", "paris").correct
    assert not score("Paris", "paris").correct
    assert get_scorer("regex", pattern=r"\d+")("it is 42 or 43", "42").correct
    with pytest.raises(InputError, match="bad regex"):
        get_scorer("regex", pattern="(")


@pytest.mark.parametrize(("completion", "answer", "correct"), [
    ("<think>2/4 simplifies</think><answer>\\frac{1}{2}</answer>", "0.5", True),
    ("The answer is $\\boxed{\\sqrt{4}}$", "2", True),
    ("x = 1/2", "\\frac12", True),
    ("$\\boxed{3}$", "2", False),
    ("I don't know", "7", False),
])
def test_math_scorer(completion: str, answer: str, correct: bool) -> None:
    pytest.importorskip("math_verify")
    assert get_scorer("math")(completion, answer).correct is correct


def test_math_is_bounded_off_the_main_thread() -> None:
    pytest.importorskip("math_verify")
    verifier = MathVerifier(timeout=1.0)
    out: dict[str, object] = {}

    def work() -> None:  # math-verify's own signal timeout would raise here
        start = time.perf_counter()
        out["hang"] = verifier("$\\sum_{k=1}^{100000} k^{k}$", "$5$")
        out["seconds"] = time.perf_counter() - start
        out["after"] = verifier("$2$", "$1+1$")  # a fresh worker takes over

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(120)
    assert out["hang"] == (None, False, "timeout") and out["seconds"] < 10
    assert out["after"] == (True, True, "")
    verifier.stop()


def test_math_timeout_is_a_wrong_verdict(monkeypatch) -> None:
    pytest.importorskip("math_verify")
    score = get_scorer("math", math_timeout=0.5)
    verdict = score("$\\sum_{k=1}^{100000} k^{k}$", "5")
    assert not verdict.correct and verdict.metrics["timeout"] == 1.0


def test_users_own_scorer(tmp_path: Path) -> None:
    path = tmp_path / "my_scorers.py"
    path.write_text(
        "from gengap.tasks.base import Verdict\n"
        "def contains(completion, answer):\n    return answer in completion\n"
        "def partial(completion, answer):\n    return len(set(completion) & set(answer)) / 4\n"
        "def rich(completion, answer):\n"
        "    return {'reward': 2.0, 'correct': True, 'metrics': {'len': len(completion)}}\n"
        "def verdict(completion, answer):\n    return Verdict(0.5, False, 'meh')\n"
        "def broken(completion, answer):\n    return 'yes'\n"
        "def raises(completion, answer):\n    return 1 / 0\n"
        "NOT_A_FUNCTION = 3\n")
    assert get_scorer(f"{path}:contains")("it is 42!", "42").correct
    assert get_scorer(f"{path}:partial")("abcd", "abcd").correct
    assert not get_scorer(f"{path}:partial")("ab", "abcd").correct
    rich = get_scorer(f"{path}:rich")("xyz", "a")
    assert rich.reward == 2.0 and rich.metrics == {"len": 3.0}
    assert get_scorer(f"{path}:verdict")("", "") == Verdict(0.5, False, "meh")
    with pytest.raises(InputError, match="returned a str"):
        get_scorer(f"{path}:broken")("", "")
    with pytest.raises(InputError, match="raised ZeroDivisionError"):
        get_scorer(f"{path}:raises")("", "")
    with pytest.raises(InputError, match="not callable"):
        get_scorer(f"{path}:NOT_A_FUNCTION")
    with pytest.raises(InputError, match="cannot import"):
        get_scorer("no_such_module_here:fn")
    sys.modules.pop("my_scorers", None)


def test_unknown_scorer_names_the_closest() -> None:
    with pytest.raises(InputError, match="did you mean 'choice'") as info:
        get_scorer("choise")
    assert "exact, choice, math, iou, regex" in str(info.value)


text = st.text(max_size=300) | st.sampled_from(
    ["<answer>", "</think>", "\\boxed{", "[1, 2, 3, 4]", "(A)", "answer is", "[nan, 0, 1, 1]",
     "[1e308, 1e308, 1e309, 1e309]", "." * 50, "<think>" * 30])


@settings(max_examples=150, deadline=None)
@given(completion=st.lists(text, max_size=4).map("".join), answer=text)
def test_builtin_scorers_judge_any_string(completion: str, answer: str) -> None:
    for name in ("exact", "choice", "iou"):
        verdict = get_scorer(name)(completion, answer)
        assert isinstance(verdict, Verdict) and verdict.reward in (0.0, 1.0)
        assert verdict.correct == (verdict.reward == 1.0)
    assert get_scorer("regex", pattern=r"(\w+)")(completion, answer).reward in (0.0, 1.0)
    assert normalise(answer) == normalise(answer.strip())
    assert get_scorer("exact")(answer, answer).correct
    assert sorted(BUILTIN) == ["choice", "exact", "iou", "math", "regex"]
