"""`gengap score`: judge completions in a JSONL file with a task's verifier (any task)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.io import atomic_open, dumps, read_jsonl


@dataclass
class ScoreStats:
    scored: int = 0
    correct: int = 0
    reward_sum: float = 0.0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.bad_rows)

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.scored if self.scored else 0.0


def score_file(task: Any, input: str | Path, output: str | Path, *,
               skip_bad: bool = False) -> ScoreStats:
    """Write every input row plus `reward`, `correct` and `feedback` to `output`.

    A bad row raises an `InputError` naming its line, unless `skip_bad` (then it is counted
    and left out). The output appears atomically: never half-written, and an existing file
    is untouched on error.
    """
    input, output = Path(input), Path(output)
    if input.resolve() == output.resolve():
        raise InputError("--output must differ from --input", hint="write to a new file")
    stats = ScoreStats()
    with atomic_open(output) as f:
        for line, row in read_jsonl(input):
            try:
                completion = row.get("completion")
                if not isinstance(completion, str):
                    raise InputError("missing or non-string field 'completion'",
                                     where=f"{input}:{line}")
                sample = task.sample_from_row(row, where=f"{input}:{line}")
            except InputError as exc:
                if not skip_bad:
                    if exc.where and not exc.where.startswith(str(input)):
                        exc.where = f"{input}:{line}"
                    raise InputError(exc.message, where=exc.where or f"{input}:{line}",
                                     hint=exc.hint or "fix the row, or pass --skip-bad") from None
                stats.bad_rows.append((line, exc.message))
                continue
            verdict = task.verify(sample, completion)
            out = {**row, "reward": verdict.reward, "correct": verdict.correct,
                   "feedback": verdict.feedback}
            if verdict.metrics:
                out["metrics"] = dict(verdict.metrics)
            f.write(dumps(out) + "\n")
            stats.scored += 1
            stats.correct += verdict.correct
            stats.reward_sum += verdict.reward
    return stats
