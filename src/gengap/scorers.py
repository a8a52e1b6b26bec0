"""Scorers by name: judge a completion against a ground-truth answer string.

Each scorer is a plain callable ``scorer(completion, answer) -> Verdict`` (the task contract's
`gengap.tasks.base.Verdict`: reward, binary `correct`, feedback, numeric metrics, info), built
by `get_scorer(name, **options)`:

- ``exact``: DC-SFT's normalised exact match (strip, drop one trailing '.', lowercase);
- ``choice``: a multiple-choice letter, extracted robustly (``<answer>B</answer>``,
  "the answer is (B)", ``\\boxed{B}``, "B) ...", a lone "B");
- ``math``: math-verify (`pip install gengap[math]`), gold parsed first as its docs require,
  ``<think>`` blocks dropped and an ``<answer>`` tag's content used; bounded in time on any
  thread (math-verify's own timeout uses ``signal.alarm``, which works only on the main
  thread, so gengap runs it in a worker process it can kill);
- ``iou``: the first ``[x1, y1, x2, y2]`` of the completion against the answer box
  (`gengap.boxes`), correct at IoU >= `iou_threshold` (0.5, the study's rule);
- ``regex``: `pattern` searched in the completion; its first group (or the whole match),
  normalised as ``exact``, must equal the normalised answer;
- ``module:function`` or ``file.py:function``: the user's own, imported with importlib (never
  evaluated). It is called ``fn(completion, answer)`` and returns a bool (correct), a number
  (the reward; correct when it is >= 1), a mapping with ``reward`` / ``correct`` / ``feedback``
  / ``metrics`` keys, or a `Verdict`.

Every built-in scorer looks at the first `MAX_CHARS` characters only, so any string is judged
in bounded time. Rewards are binary (1 correct, 0 wrong), as DC-SFT's.
"""

from __future__ import annotations

import difflib
import math
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gengap.errors import InputError
from gengap.tasks.base import Verdict

Scorer = Callable[[str, str], Verdict]
MAX_CHARS = 8192
BUILTIN = ("exact", "choice", "math", "iou", "regex")
STARTUP_SECONDS = 120.0  # a math-verify worker's import on a busy machine


def _verdict(correct: bool, what: str, metrics: Mapping[str, float] | None = None,
             **info: Any) -> Verdict:
    return Verdict(1.0 if correct else 0.0, correct,
                   "correct" if correct else f"the answer is wrong ({what})",
                   dict(metrics or {}), info)


# -- exact -----------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """DC-SFT's normalisation: strip, drop one trailing '.', strip again, lowercase."""
    text = text.strip()
    if text.endswith("."):
        text = text[:-1]
    return text.strip().lower()


def exact(completion: str, answer: str) -> Verdict:
    """Normalised exact match (`normalise` both sides)."""
    got = normalise(completion[:MAX_CHARS])
    return _verdict(got == normalise(answer), "no exact match", predicted=got[:200])


# -- choice ----------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)


def strip_tags(text: str) -> str:
    """Drop ``<think>...</think>`` blocks; keep only an ``<answer>`` tag's content if any."""
    text = _THINK.sub(" ", text[:MAX_CHARS])
    tagged = _ANSWER_TAG.findall(text)
    return tagged[-1].strip() if tagged else text.strip()


def choice_letter(text: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The multiple-choice letter a completion gives, or None.

    In order: an explicit statement ("answer is (B)", "Answer: B", "option B", the last one
    wins), ``\\boxed{B}``, a reply that starts with the letter ("B", "(B)", "B) ...", "B.";
    lower case only as "b)" or "b."), else the only standalone letter of `letters` in the
    text (in parentheses, or alone).
    """
    text = strip_tags(text)
    cls = f"[{re.escape(letters)}{re.escape(letters.lower())}]"
    stated = re.findall(
        rf"(?:answer|option|choice)\s*(?:is|:|=)?\s*(?:option\s*)?[\(\[]?\s*({cls})\s*[\)\]]?"
        rf"(?![A-Za-z])", text, flags=re.I)
    if stated:
        return stated[-1].upper()
    boxed = re.findall(rf"\\boxed\{{\s*(?:\\text\{{)?\s*({cls})\s*\}}", text)
    if boxed:
        return boxed[-1].upper()
    start = re.match(rf"\s*[\(\[]?\s*([{re.escape(letters)}])\s*(?:[\)\]\.:,]|$|\s)", text)
    # lower case only with punctuation after it: "b)" is a choice, "a cat" is not
    start = start or re.match(rf"\s*[\(\[]?([{re.escape(letters.lower())}])(?:[\)\]\.:]|$)",
                              text)
    if start:
        return start.group(1).upper()
    alone = set(re.findall(rf"(?:\(([{re.escape(letters)}])\)|(?<![\w'])([{re.escape(letters)}])"
                           rf"(?![\w']))", text))
    found = {a or b for a, b in alone}
    return found.pop() if len(found) == 1 else None


def gold_letter(answer: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """A ground-truth letter ("B", "(B)", "b.", "B) 42") or None if the answer is no letter."""
    match = re.match(rf"\s*[\(\[]?\s*([{re.escape(letters)}])\s*(?:[\)\]\.:]|$|\s)",
                     answer.upper())
    return match.group(1) if match else None


def make_choice(letters: str = "ABCDEFGHIJ") -> Scorer:
    """The ``choice`` scorer over `letters`."""
    if not letters or not all(c.isalpha() and c.isupper() for c in letters):
        raise InputError(f"choice letters must be upper-case letters, got {letters!r}")

    def choice(completion: str, answer: str) -> Verdict:
        gold = gold_letter(answer, letters)
        got = choice_letter(completion, letters)
        return _verdict(got is not None and got == gold,
                        "no choice letter found" if got is None else f"chose {got}",
                        {"parsed": float(got is not None)}, predicted=got)

    return choice


# -- iou -------------------------------------------------------------------------------------


def make_iou(threshold: float = 0.5) -> Scorer:
    """The ``iou`` scorer: the first box of the completion vs the answer box."""
    from gengap import boxes

    if not 0 < threshold <= 1:
        raise InputError(f"iou_threshold must be in (0, 1], got {threshold}")

    def iou(completion: str, answer: str) -> Verdict:
        gold = boxes.parse_box(answer)
        got = boxes.parse_box(strip_tags(completion))
        value = boxes.iou(got, gold) if got is not None and gold is not None else 0.0
        return _verdict(boxes.hit(value, threshold),
                        "no [x1, y1, x2, y2] box found" if got is None else f"IoU {value:.2f}",
                        {"iou": value, "parsed": float(got is not None)},
                        predicted=list(got) if got else None)

    return iou


# -- regex -----------------------------------------------------------------------------------


def make_regex(pattern: str | None) -> Scorer:
    """The ``regex`` scorer: `pattern`'s first group (or match), normalised, equals the answer."""
    if not pattern:
        raise InputError("the regex scorer needs a pattern",
                         hint=r"pass -O pattern='Answer: (\w+)' (its first group is the answer)")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"bad regex pattern {pattern!r}: {exc}",
                         hint="a Python regular expression") from None

    def regex(completion: str, answer: str) -> Verdict:
        match = compiled.search(completion[:MAX_CHARS])
        got = None if match is None else (match.group(1) if compiled.groups else match.group(0))
        got = normalise(got) if got is not None else None
        return _verdict(got is not None and got == normalise(answer),
                        "the pattern did not match" if got is None else "no match",
                        {"parsed": float(got is not None)}, predicted=got)

    return regex


# -- math ------------------------------------------------------------------------------------


def _math_worker() -> None:  # pragma: no cover - runs in the worker process
    """The worker loop: JSON lines [gold, prediction] in, [correct, parsed, error] out."""
    import json
    import logging
    import sys

    logging.disable(logging.WARNING)  # math-verify warns that its own timeout is off
    from math_verify import parse, verify

    print('"ready"', flush=True)
    for line in sys.stdin:
        gold, prediction = json.loads(line)
        try:
            g = parse(gold, parsing_timeout=None)
            p = parse(prediction, parsing_timeout=None)
            ok = bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=None))
            reply = [ok, bool(p), ""]
        except Exception as exc:  # a parse math-verify cannot handle is a wrong answer
            reply = [False, False, type(exc).__name__]
        print(json.dumps(reply), flush=True)


class MathVerifier:
    """math-verify in a worker process, each call bounded by `timeout` seconds on any thread.

    Why a process: math-verify bounds its own time with ``signal.alarm``, which works only on
    the main thread, and a Python thread cannot be stopped. The worker is a plain
    ``python -m gengap.scorers`` subprocess (not `multiprocessing`, whose spawn re-imports the
    caller's main script); it talks JSON lines. A call that runs over kills the worker (the
    next call starts a new one) and counts as wrong. Calls from several threads take turns.
    """

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def _readline(self, seconds: float) -> str | None:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], seconds)
        return self._process.stdout.readline() if ready else None

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gengap.scorers"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        # Wait for the import of math-verify (~1 s) so that it does not count against a call.
        if (self._readline(STARTUP_SECONDS) or "").strip() != '"ready"':
            self.stop()
            raise InputError("the math-verify worker did not start",
                             hint="check that `python -c 'import math_verify'` works")

    def stop(self) -> None:
        """Kill the worker (the next call starts a new one)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
        self._process = None

    def __call__(self, gold: str, prediction: str) -> tuple[bool | None, bool, str]:
        """(correct, or None on a timeout; whether the prediction parsed; an error name)."""
        import json

        with self._lock:
            for _attempt in range(2):  # a worker that died between calls is restarted once
                if self._process is None or self._process.poll() is not None:
                    self.stop()
                    self._start()
                assert self._process is not None and self._process.stdin is not None
                try:
                    self._process.stdin.write(json.dumps([gold, prediction]) + "\n")
                    self._process.stdin.flush()
                except (BrokenPipeError, OSError):
                    self.stop()
                    continue
                line = self._readline(self.timeout)
                if line is None:
                    self.stop()
                    return None, False, "timeout"
                if not line:  # the worker died mid-call (e.g. out of memory)
                    self.stop()
                    return False, False, "worker died"
                correct, parsed, error = json.loads(line)
                return bool(correct), bool(parsed), str(error)
            return False, False, "worker failed"


_VERIFIERS: dict[float, MathVerifier] = {}


def make_math(timeout: float = 5.0) -> Scorer:
    """The ``math`` scorer (needs math-verify: ``pip install gengap[math]``)."""
    import importlib.util

    if importlib.util.find_spec("math_verify") is None:
        raise InputError("the math scorer needs math-verify",
                         hint="pip install 'gengap[math]' (or pip install math-verify)")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InputError(f"math_timeout must be > 0 seconds, got {timeout}")
    verifier = _VERIFIERS.setdefault(timeout, MathVerifier(timeout))

    def math_scorer(completion: str, answer: str) -> Verdict:
        prediction = strip_tags(completion)
        if "\\boxed" not in prediction and "$" not in prediction:
            prediction = f"${prediction}$"  # a bare answer ("1/2") reads as LaTeX
        gold = answer if ("\\boxed" in answer or "$" in answer) else f"${answer}$"
        correct, parsed, error = verifier(gold, prediction)
        if correct is None:
            return Verdict(0.0, False, "the answer could not be checked in time",
                           {"parsed": 0.0, "timeout": 1.0}, {"error": "timeout"})
        return _verdict(correct, "not equivalent" if parsed else "no answer found",
                        {"parsed": float(parsed), "timeout": 0.0},
                        **({"error": error} if error else {}))

    return math_scorer


# -- the user's own --------------------------------------------------------------------------


def _as_verdict(value: Any, spec: str) -> Verdict:
    if isinstance(value, Verdict):
        return value
    if isinstance(value, bool):
        return _verdict(value, "wrong")
    if isinstance(value, int | float):
        reward = float(value)
        if not math.isfinite(reward):
            raise InputError(f"scorer {spec!r} returned {value!r}",
                             hint="return a finite number, a bool, a mapping or a Verdict")
        return Verdict(reward, reward >= 1.0, "correct" if reward >= 1.0 else "wrong")
    if isinstance(value, Mapping):
        correct = bool(value.get("correct", float(value.get("reward", 0.0)) >= 1.0))
        reward = float(value.get("reward", 1.0 if correct else 0.0))
        metrics = {str(k): float(v) for k, v in dict(value.get("metrics") or {}).items()}
        return Verdict(reward, correct, str(value.get("feedback", "")), metrics,
                       dict(value.get("info") or {}))
    raise InputError(f"scorer {spec!r} returned a {type(value).__name__}",
                     hint="return a bool, a number, a mapping (reward, correct, ...) or a "
                          "Verdict")


def make_user(spec: str) -> Scorer:
    """The user's scorer ``module:function`` (or ``file.py:function``), imported, not eval'd."""
    from gengap.tasks.registry import _import_target

    fn = _import_target(spec)
    if not callable(fn):
        raise InputError(f"{spec!r} is not callable", hint="name a function fn(completion, "
                                                           "answer)")

    def user(completion: str, answer: str) -> Verdict:
        try:
            value = fn(completion, answer)
        except Exception as exc:  # the user's code: say whose bug it is
            raise InputError(f"scorer {spec!r} raised {type(exc).__name__}: {exc}",
                             hint="fix the scorer function (it must judge any string)") from None
        return _as_verdict(value, spec)

    return user


# -- lookup ----------------------------------------------------------------------------------


def get_scorer(name: str, *, pattern: str | None = None, iou_threshold: float = 0.5,
               letters: str = "ABCDEFGHIJ", math_timeout: float = 5.0) -> Scorer:
    """The scorer called `name` (built-in or ``module:function``) with its options."""
    if name == "exact":
        return exact
    if name == "choice":
        return make_choice(letters)
    if name == "math":
        return make_math(math_timeout)
    if name == "iou":
        return make_iou(iou_threshold)
    if name == "regex":
        return make_regex(pattern)
    if ":" in name:
        return make_user(name)
    close = difflib.get_close_matches(name, BUILTIN, n=1)
    raise InputError(f"unknown scorer {name!r}", where="task option scorer",
                     hint=(f"did you mean {close[0]!r}? " if close else "")
                     + f"scorers: {', '.join(BUILTIN)}, or module:function of your own")


if __name__ == "__main__":  # `python -m gengap.scorers`: the math-verify worker
    _math_worker()
