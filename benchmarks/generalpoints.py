"""GeneralPoints throughput: hands dealt per second and completions scored per second.

Each is printed beside a baseline measured in the same run, done the original study's way:
- dealing: draw four ranks, search every permutation x operator triple x bracket pattern by
  building the expression string and evaluating it, redraw until a solution is found;
- scoring: regex tokens, Counters, Python evaluation of the formula, and a linear scan of the
  hand's solution strings for the prefix checks.
The baseline evaluates strings this script builds itself from integers and operator characters
(never model output or file content): that evaluation *is* the cost being measured.

Run: `.venv/bin/python benchmarks/generalpoints.py` (about 30 s; single process, one core).
Targets (issue 2): dealing >= 500x the baseline and >= 50,000 hands/s; scoring >= 50,000/s.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import time
from collections import Counter
from fractions import Fraction

from gengap.tasks import get_task

BRACKETS = [()] + [(x, y) for x in range(0, 7, 2) for y in range(x + 4, 9, 2) if (x, y) != (0, 8)]
BRACKETS += [(0, 4, 6, 10)]
_EVAL = eval  # the study's evaluation; only ever applied to strings built below


def study_solutions(values: list[int], target: int = 24) -> list[str]:
    """The study's solver: enumerate expression strings and evaluate each one."""
    found = []
    for perm in sorted(set(itertools.permutations(values))):
        for ops in itertools.product("+-*/", repeat=3):
            terms = [f"Fraction({v})" if "/" in ops else str(v) for v in perm]
            flat = [t for pair in itertools.zip_longest(terms, ops, fillvalue="") for t in pair]
            flat = flat[:7]
            for b in BRACKETS:
                expr = flat[:]
                for point, bracket in zip(b, "()" * (len(b) // 2)):
                    expr.insert(point, bracket)
                try:
                    value = _EVAL("".join(expr), {"Fraction": Fraction})
                except ZeroDivisionError:
                    continue
                if value == target:
                    found.append("".join(expr).replace("Fraction(", "").replace("))", ")"))
    return found


def study_deal(rng: random.Random) -> tuple[list[int], list[str]]:
    while True:
        ranks = [rng.randint(1, 13) for _ in range(4)]
        values = [min(r, 10) for r in ranks]
        solutions = study_solutions(values)
        if solutions:
            return values, solutions


def study_score(formula: str, values: list[int], solutions: list[str], target: int = 24) -> float:
    """The study's reward, re-written for timing (same checks, same costs)."""
    tokens = re.findall(r"\d+|[+\-*/()]", formula)
    if "".join(tokens) != formula:
        return -3.0
    reward, prev, depth = 0.0, None, 0
    for tok in tokens:
        kind = ("op" if tok in "+-*/" else "open" if tok == "(" else "close" if tok == ")"
                else "num")
        if (kind == "num" and prev not in (None, "op", "open")) or (
            kind == "op" and prev not in ("num", "close")
        ):
            reward -= 3
        elif kind == "open":
            if prev in (None, "op", "open"):
                depth += 1
            else:
                reward -= 3
        elif kind == "close":
            if prev in ("num", "close") and depth:
                depth -= 1
            else:
                reward -= 3
        prev = kind
    used, have = Counter(int(n) for n in re.findall(r"\d+", formula)), Counter(values)
    if [n for n in used if n not in have] or [n for n in used if used[n] > have[n]]:
        reward -= 2
    if [n for n in have if have[n] > used[n]]:
        reward -= 2
    if reward:
        return reward
    try:
        if _EVAL(formula) == target:
            return 5.0
    except (SyntaxError, ZeroDivisionError):
        if any(s.startswith(formula) for s in solutions):
            return 1.0
    register = ""
    for tok in tokens:
        register += tok
        if not any(s.startswith(register) for s in solutions):
            break
    return -1.0


def completions_for(answer: str, rng: random.Random) -> str:
    """A realistic mix: right answers, truncations, wrong operators, wrong numbers."""
    r = rng.random()
    if r < 0.4:
        return answer
    if r < 0.55:
        return answer[:-1]
    if r < 0.75:
        return answer.replace("+", "-", 1).replace("*", "+", 1)
    if r < 0.9:
        return answer[::-1]
    return "1+2+3+4"


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hands", type=int, default=100_000)
    parser.add_argument("--baseline-hands", type=int, default=40)
    parser.add_argument("--completions", type=int, default=200_000)
    args = parser.parse_args()

    task = get_task("generalpoints", prompt_style="compact")
    task.sample("train", 0, 0)  # build the solver table before timing (about 1 s, once)

    def ours_deal(n: int) -> None:
        for i in range(n):
            task.sample("train", i, 1)

    rng = random.Random(0)

    def study_deal_n(n: int) -> None:
        for _ in range(n):
            study_deal(rng)

    deal_ours, deal_base = rate(ours_deal, args.hands), rate(study_deal_n, args.baseline_hands)

    samples = [task.sample("train", i, 2) for i in range(2000)]
    rng = random.Random(1)
    formulas = [completions_for(s.answer, rng) for s in samples]
    base_inputs = [(f, list(task.values(s)), list(task.entry(s).solutions))
                   for s, f in zip(samples, formulas)]
    agree = sum(task.verify(s, f).reward == study_score(*b)
                for s, f, b in zip(samples, formulas, base_inputs))

    def ours_score(n: int) -> None:
        for i in range(n):
            task.verify(samples[i % 2000], formulas[i % 2000])

    def study_score_n(n: int) -> None:
        for i in range(n):
            study_score(*base_inputs[i % 2000])

    score_ours = rate(ours_score, args.completions)
    score_base = rate(study_score_n, args.completions // 4)

    print(f"{'measure':<28}{'gengap':>14}{'study way':>14}{'ratio':>10}  target")
    print(f"{'hands dealt / s':<28}{deal_ours:>14,.0f}{deal_base:>14,.1f}"
          f"{deal_ours / deal_base:>9,.0f}x  >= 500x and >= 50,000/s")
    print(f"{'completions scored / s':<28}{score_ours:>14,.0f}{score_base:>14,.0f}"
          f"{score_ours / score_base:>9,.1f}x  >= 50,000/s")
    print(f"verdicts that agree with the study's reward on the scored mix: {agree}/2000 "
          "(differences: exact arithmetic only)")


if __name__ == "__main__":
    main()
