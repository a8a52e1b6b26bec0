"""Prompts in two styles, and how an answer is read back.

`paper`: how reasoning-gym's own evaluations prompt a model: one of its system prompts
(`reasoning_gym.utils.SYSTEM_PROMPTS`, "default" asks for ``<answer>answer here</answer>``) and
the item's question as the user turn; the SFT target is ``<answer>{gold}</answer>``.

`compact`: for the embedded tiny character-level model: the question without the template text
that every question of the dataset shares (chain_sum: "State the final answer to the following
arithmetic problem: 4 + 3 =" -> "4 + 3"), and the bare answer as the target. The template is
found from the data (`template`), not written per dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_STYLES = ("paper", "compact")
MAX_COMPLETION_CHARS = 8192  # longer completions are judged on their first 8 KiB


def _boundary_prefix(texts: Sequence[str]) -> str:
    """The longest common prefix of `texts`, cut back to end just after a whitespace."""
    first, last = min(texts), max(texts)  # the common prefix of all is theirs
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    if all(len(t) == len(prefix) for t in texts):
        return ""
    cut = max(prefix.rfind(" "), prefix.rfind("\n"))
    return prefix[:cut + 1] if cut >= 0 else ""


def template(questions: Sequence[str]) -> tuple[str, str]:
    """(prefix, suffix) that every one of `questions` shares, on whitespace boundaries."""
    if len(questions) < 2:
        return "", ""
    prefix = _boundary_prefix(questions)
    rest = [q[len(prefix):] for q in questions]
    suffix = _boundary_prefix([r[::-1] for r in rest])[::-1]
    if any(len(r) <= len(suffix) for r in rest):
        suffix = ""
    return prefix, suffix


def compact_question(question: str, prefix: str, suffix: str) -> str:
    """`question` without the dataset's shared template text."""
    if prefix and question.startswith(prefix):
        question = question[len(prefix):]
    if suffix and question.endswith(suffix):
        question = question[:-len(suffix)]
    return question.strip() or question


def paper_target(answer: str) -> str:
    """The paper-style SFT target."""
    return f"<answer>{answer}</answer>"


def read_answer(completion: str, style: str) -> str | None:
    """The answer of a completion: the text between the last ``</answer>`` and the last
    ``<answer>`` before it, stripped (reasoning-gym's `extract_answer` takes the last match of
    a non-greedy regex, which rescans the text from every unclosed tag; this is linear and the
    same on well-formed text). Without tags: the whole stripped completion for compact prompts,
    None for paper prompts (which ask for the tags)."""
    completion = completion[:MAX_COMPLETION_CHARS]
    end = completion.rfind("</answer>")
    if end >= 0:
        start = completion.rfind("<answer>", 0, end)
        if start >= 0:
            return completion[start + len("<answer>"):end].strip()
    if style == "compact":
        return completion.strip()
    return None
