"""Arithmetic on formulas without `eval`: a tokenizer and a bounded recursive-descent evaluator.

The original study calls Python's `eval` on model output. We never do: formulas are tokenised
with one regular expression and evaluated by the small grammar below, exactly (Fractions by
default), with bounds on length and nesting so any string is judged in bounded time.

    expr   := term   (("+" | "-") term)*
    term   := factor (("*" | "/") factor)*
    factor := NUMBER | "(" expr ")"

The grammar accepts what Python's `eval` accepts on the token sequences that reach evaluation
in the verifier (unary signs are rejected earlier by the sequence check), including its one
quirk on integers: a number with a leading zero other than all-zeros ("08") is a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

# ASCII digits only: `\d` would also take Arabic-Indic or full-width digits, which `int()`
# then reads as numbers (the study's regex + eval would reject them as illegal characters).
TOKEN_RE = re.compile(r"[0-9]+|[+\-*/()]")
OPERATORS = frozenset("+-*/")
MAX_FORMULA_CHARS = 256
# Deeper than any formula of MAX_FORMULA_CHARS can nest (each level costs 2 characters), so the
# depth bound never judges a legal formula: it only guards direct callers.
MAX_DEPTH = MAX_FORMULA_CHARS // 2 + 1


class FormulaError(ValueError):
    """The token sequence cannot be evaluated (syntax, nesting, division by zero)."""


def tokenize(formula: str) -> list[str]:
    """Numbers and the characters + - * / ( ); anything else is silently skipped.

    Callers detect illegal characters by comparing ``"".join(tokens)`` with the formula.
    """
    return TOKEN_RE.findall(formula)


def evaluate(
    tokens: Sequence[str],
    leaf: Callable[[int], Any] = int,
    *,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Evaluate a token sequence with the usual precedence; leaves are built by `leaf`.

    With the default `leaf=int` the result is exact: an int, or a Fraction once a division
    leaves a remainder. Passing numpy arrays as leaves (see
    `solver.py`) evaluates one expression shape over many hands at once.
    Raises `FormulaError` if the sequence is not a complete expression.
    """
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def expr(depth: int) -> Any:
        nonlocal pos
        value = term(depth)
        while (op := peek()) in ("+", "-"):
            pos += 1
            rhs = term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(depth: int) -> Any:
        nonlocal pos
        value = factor(depth)
        while (op := peek()) in ("*", "/"):
            pos += 1
            rhs = factor(depth)
            if op == "*":
                value = value * rhs
            elif type(value) is int and type(rhs) is int:
                # Exact integer division stays an int: Fractions cost ~1 us per operation.
                if rhs == 0:
                    raise FormulaError("division by zero")
                value = value // rhs if value % rhs == 0 else Fraction(value, rhs)
            else:
                try:
                    value = value / rhs
                except ZeroDivisionError as exc:
                    raise FormulaError("division by zero") from exc
        return value

    def factor(depth: int) -> Any:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise FormulaError("unexpected end of formula")
        if tok == "(":
            if depth >= max_depth:
                raise FormulaError(f"parentheses nested deeper than {max_depth}")
            pos += 1
            value = expr(depth + 1)
            if peek() != ")":
                raise FormulaError("missing ')'")
            pos += 1
            return value
        if tok.isdigit():
            if len(tok) > 1 and tok[0] == "0" and tok.strip("0"):
                raise FormulaError(f"leading zero in {tok!r}")
            pos += 1
            return leaf(int(tok))
        raise FormulaError(f"unexpected {tok!r}")

    value = expr(0)
    if pos != len(tokens):
        raise FormulaError(f"unexpected {tokens[pos]!r}")
    return value


def evaluate_formula(formula: str) -> int | Fraction:
    """Exact value of a plain formula string such as ``"8/(3-8/3)"``.

    Raises `FormulaError` on illegal characters, over-long input or invalid syntax.
    """
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    tokens = tokenize(formula)
    if "".join(tokens) != formula:
        raise FormulaError("illegal characters")
    return evaluate(tokens)
