"""The GeneralPoints verifier: the study's reward table, its order of checks, its messages.

Order (as in the study): recognised cards (image only) -> illegal characters -> sequence checks
(each violation adds -3) -> invalid / overused numbers (-2) and unused numbers (-2 more) ->
if nothing was penalised: exact value == target (+5), or not evaluable but a prefix of a known
solution (+1), else -1 ("does not match any solution", naming the longest matching prefix).

Deliberate differences from the study, each reachable only on odd input:
- Exact rational arithmetic instead of floats, so 8/(3-8/3) is correct (+5, not 0).
- No `eval`: `arithmetic.evaluate` with bounds; a formula over 256 characters is illegal (-3).
- A formula that uses exactly the card numbers, evaluates, misses the target and is still a
  prefix of a solution gets -1 (the study fell through with 0 and no message; with exact
  arithmetic this needs a float-rounding case that no longer exists).
- Whitespace: the study's own check counts any space inside the formula as an illegal
  character, and so do we by default (`whitespace="strict"`); `whitespace="ignore"` removes
  all whitespace first. Whitespace around the whole formula is always stripped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from gengap.tasks.base import Verdict
from gengap.tasks.generalpoints.arithmetic import (
    MAX_FORMULA_CHARS,
    FormulaError,
    evaluate,
    tokenize,
)
from gengap.tasks.generalpoints.solver import Entry

REWARDS = {
    "correct": 5.0,
    "partial": 1.0,
    "no_solution": -1.0,
    "wrong_cards": -1.5,
    "wrong_numbers": -2.0,
    "illegal": -3.0,
}
WHITESPACE_MODES = ("strict", "ignore")
MAX_COMPLETION_CHARS = 8192  # longer completions are judged on their first 8 KiB

_KEY = r"""["']{key}["']\s*:\s*"""
# The quoted formula is bounded too (past MAX_FORMULA_CHARS it is illegal anyway), so a run of
# unterminated "formula" keys cannot make the search quadratic.
_FORMULA_RE = re.compile(_KEY.format(key="formula") + r"""(["'])(.{0,"""
                         + str(MAX_FORMULA_CHARS + 64) + r"""}?)\1""", re.S)
# The list body is bounded (4 card names fit in far less): an unbounded `[^\]]*` rescans the
# rest of the text from every "cards" key, quadratic on adversarial completions.
_CARDS_RE = re.compile(_KEY.format(key="cards") + r"\[([^\]]{0,200})\]")


def extract_formula(completion: str) -> str | None:
    """The formula of a completion in either prompt style, cut at '='; None if absent.

    Paper style: the "formula" field of the JSON-like object (double or single quotes,
    trailing commas allowed). Compact style: the bare text, after the last '|' if present.
    """
    completion = completion[:MAX_COMPLETION_CHARS]
    match = _FORMULA_RE.search(completion)
    if match:
        formula = match.group(2)
    elif "{" in completion:
        return None  # an object without a formula field
    else:
        formula = completion.rsplit("|", 1)[-1]
    return formula.split("=", 1)[0].strip()


def extract_cards(completion: str) -> list[str] | None:
    """The recognised card names (paper: the "cards" list; compact: the part before '|')."""
    completion = completion[:MAX_COMPLETION_CHARS]
    match = _CARDS_RE.search(completion)
    if match:
        body = match.group(1)
    elif "|" in completion and "{" not in completion:
        body = completion.split("|", 1)[0]
    else:
        return None
    names = [part.strip().strip("\"'").strip().upper() for part in body.split(",")]
    return [n for n in names if n]


def judge(
    completion: str,
    *,
    values: Sequence[int],
    entry: Entry,
    target: int,
    true_cards: Sequence[str] | None = None,
    whitespace: str = "strict",
) -> Verdict:
    """Judge one completion for a hand with card `values` (after the face rule).

    `true_cards` (card names) switches on the image variant's recognition check.
    """
    if true_cards is not None:
        seen = extract_cards(completion)
        if seen is None or Counter(seen) != Counter(true_cards):
            return Verdict(REWARDS["wrong_cards"], False, "you recognized wrong cards.",
                           {"recognition": 0.0})
    # The study's recognition accuracy: 1 for every attempt that read the cards right.
    metrics = {"recognition": 1.0} if true_cards is not None else {}

    formula = extract_formula(completion)
    if formula is None:
        return Verdict(REWARDS["illegal"], False, "illegal characters (no formula found).",
                       metrics)
    if whitespace == "ignore":
        formula = "".join(formula.split())
    if len(formula) > MAX_FORMULA_CHARS:
        return Verdict(REWARDS["illegal"], False,
                       f"illegal characters (formula longer than {MAX_FORMULA_CHARS}).",
                       metrics)
    if formula in entry.solution_set():
        # A known solution passes every check below by construction: skip them.
        return Verdict(REWARDS["correct"], True, "Correct solution.", metrics)
    tokens = tokenize(formula)
    if "".join(tokens) != formula:
        return Verdict(REWARDS["illegal"], False, "illegal characters.", metrics)

    reward = 0.0
    messages: list[str] = []

    def penalise(kind: str, message: str) -> None:
        nonlocal reward
        reward += REWARDS[kind]
        messages.append(message)

    # Sequence checks: each violation costs -3 and they accumulate.
    previous: str | None = None
    depth = 0
    for token in tokens:
        kind = _kind(token)
        if kind == "number":
            if previous not in (None, "operator", "open"):
                penalise("illegal", "invalid sequence after number")
        elif kind == "operator":
            if previous not in ("number", "close"):
                penalise("illegal", "invalid sequence after operator")
        elif kind == "open":
            if previous in (None, "operator", "open"):
                depth += 1
            else:
                penalise("illegal", "invalid sequence before '('")
        elif previous in ("number", "close"):
            if depth:
                depth -= 1
            else:
                penalise("illegal", "unmatched closing parenthesis")
        else:
            penalise("illegal", "invalid sequence after ')'")
        previous = kind

    # Numbers: unknown or overused (-2), then unused (-2 more).
    numbers = [int(t) for t in tokens if t.isdigit()]
    if sorted(numbers) != sorted(values):  # the common case skips the Counters
        used, have = Counter(numbers), Counter(values)
        invalid = [n for n in used if n not in have]
        overused = [n for n in used if used[n] > have[n]]
        if invalid:
            penalise("wrong_numbers", f"you used invalid numbers: {invalid}")
        elif overused:
            penalise("wrong_numbers", f"you used numbers: {overused} too many times")
        unused = [n for n in have if have[n] > used[n]]
        if unused:
            penalise("wrong_numbers", f"you didn't use numbers: {unused}")
    if reward:
        return Verdict(reward, False, ", ".join(messages) + ".", metrics)

    prefixes = entry.prefixes()
    try:
        value = evaluate(tokens)
    except FormulaError:
        value = None
        if formula in prefixes:
            return Verdict(REWARDS["partial"], False, "partial solution.", metrics)
    if value is not None and value == target:
        return Verdict(REWARDS["correct"], True, "Correct solution.", metrics)

    # Valid numbers, no solution: name the longest token prefix that a solution shares.
    matched = ""
    for token in tokens:
        if matched + token not in prefixes:
            break
        matched += token
    if matched:
        feedback = (f"{matched} is partially correct but the full formula "
                    "does not match any solution.")
    else:
        feedback = "your formula does not match any solution."
    return Verdict(REWARDS["no_solution"], False, feedback, metrics)


def _kind(token: str) -> str:
    if token in "+-*/":
        return "operator"
    if token == "(":
        return "open"
    if token == ")":
        return "close"
    return "number"
