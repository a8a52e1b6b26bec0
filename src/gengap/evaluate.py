"""ID / OOD evaluation: `gengap eval`.

For each split, the first `n` samples (fixed seed) run as multi-turn episodes of up to
`verify_iters` attempts (greedy by default). Writes, in the output directory:

- `samples.jsonl`: one row per episode (prompt, attempts, verdicts, success), appended chunk by
  chunk; a restarted run skips the episodes already there (sampling is keyed per sample id, so
  a resumed evaluation equals an uninterrupted one).
- `results.json`: lm-eval's shape — `results` per split (success with its standard error,
  success within t attempts, per-attempt accuracy, recognition accuracy for image rows on the
  first attempt (the study's measure, taken with V = 1) and over all attempts, mean reward),
  plus `config`, seed, package versions, git commit and date.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.io import read_jsonl, write_json
from gengap.runinfo import run_metadata
from gengap.tasks.registry import get_task

CHUNK = 64  # episodes per appended chunk: the most a crash can cost


@dataclass
class EvalConfig:
    """Everything that decides an evaluation's numbers (checked again on resume)."""

    model: str
    task: str
    splits: list[str]
    n: int = 234
    verify_iters: int | None = None  # None: the task's default (5 for GeneralPoints)
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int | None = None  # None: the task's budget
    seed: int = 0
    backend: str = "hf"
    task_options: dict[str, Any] = field(default_factory=dict)


def evaluate(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    loaded: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the evaluation described by `config`; returns the results dict (also written).

    `loaded` (a `gengap.models.LoadedModel`) skips loading `config.model` again, e.g. when a
    training callback evaluates the model it is training.
    """
    from gengap.rollout import SamplingParams, make_sampler, run_episodes

    out = Path(out_dir)
    task = get_task(config.task, **config.task_options)
    for split in config.splits:
        task.sample(split, 0, config.seed)  # the task rejects unknown or unfit splits
    if config.n < 1:
        raise InputError(f"--n must be >= 1, got {config.n}")
    verify_iters = config.verify_iters or task.default_verify_iters
    params = SamplingParams(
        k=1, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
        max_new_tokens=config.max_new_tokens or task.max_new_tokens, seed=config.seed,
    )
    done = _resume_state(out, config)

    if loaded is None:
        from gengap.models import load_model

        loaded = load_model(config.model, task_name=config.task,
                            modality=config.task_options.get("modality", "text"))
    sampler = make_sampler(loaded.model, loaded.processor, backend=config.backend)

    samples_path = out / "samples.jsonl"
    with samples_path.open("a", encoding="utf-8") as log:
        for split in config.splits:
            todo = [i for i in range(config.n) if f"{config.task}/{split}/{i}" not in done]
            todo_samples = [task.sample(split, i, config.seed) for i in todo]
            for start in range(0, len(todo_samples), CHUNK):
                chunk = todo_samples[start : start + CHUNK]
                episodes = run_episodes(sampler, task, chunk, params, verify_iters,
                                        progress=False)
                for sample, episode in zip(chunk, episodes):
                    row = _episode_row(task, split, sample, episode)
                    log.write(json.dumps(row, ensure_ascii=False) + "\n")
                    done[row["key"]] = row
                log.flush()
                if progress:
                    finished = sum(1 for r in done.values() if r["split"] == split)
                    print(f"  {split}: {finished}/{config.n} episodes", flush=True)

    results = summarise(
        [r for r in done.values() if r["split"] in config.splits], config.splits, verify_iters
    )
    payload = {
        "results": results,
        **run_metadata(asdict(config), config.seed),
        "verify_iters": verify_iters,
        "sampling": asdict(params),
        "model_path": str(getattr(loaded, "path", config.model)),
    }
    write_json(out / "results.json", payload)
    return payload


def _resume_state(out: Path, config: EvalConfig) -> dict[str, dict[str, Any]]:
    """Episodes already written by an identical earlier run (keyed by 'task/split/index')."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "eval_config.json"
    current = asdict(config)
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != current:
            changed = sorted(k for k in current if previous.get(k) != current[k])
            raise InputError(
                f"{out} holds an evaluation with different settings ({', '.join(changed)})",
                hint="use a new --out directory, or delete the old one",
            )
    else:
        write_json(config_path, current)
    done: dict[str, dict[str, Any]] = {}
    samples_path = out / "samples.jsonl"
    if samples_path.exists():
        try:
            for _, row in read_jsonl(samples_path):
                done[row["key"]] = row
        except InputError:
            # A crash mid-line leaves a torn last line: keep the complete rows, drop the rest.
            lines = samples_path.read_text(encoding="utf-8").splitlines(keepends=True)
            good = []
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                good.append(line)
                done[row["key"]] = row
            samples_path.write_text("".join(good), encoding="utf-8")
    return done


def _episode_row(task: Any, split: str, sample: Any, episode: Any) -> dict[str, Any]:
    index = int(sample.id.rsplit("/", 1)[-1])
    return {
        "key": f"{task.name}/{split}/{index}",
        "id": sample.id,
        "split": split,
        "fields": dict(sample.fields),
        "prompt": task.messages(sample),
        "attempts": episode.attempts,
        "verdicts": [
            {"reward": v.reward, "correct": v.correct, "feedback": v.feedback, **v.info}
            for v in episode.verdicts
        ],
        "success": episode.success,
        "generated_tokens": episode.generated_tokens,
    }


def summarise(rows: Sequence[dict[str, Any]], splits: Sequence[str],
              verify_iters: int) -> dict[str, dict[str, Any]]:
    """Per-split metrics from episode rows."""
    results = {}
    for split in splits:
        mine = [r for r in rows if r["split"] == split]
        n = len(mine)
        if not n:
            continue
        success = sum(r["success"] for r in mine) / n
        attempts = [v for r in mine for v in r["verdicts"]]
        within = [
            sum(any(v["correct"] for v in r["verdicts"][:t]) for r in mine) / n
            for t in range(1, verify_iters + 1)
        ]
        at_attempt = []
        for t in range(verify_iters):
            reached = [r["verdicts"][t] for r in mine if len(r["verdicts"]) > t]
            at_attempt.append(sum(v["correct"] for v in reached) / len(reached)
                              if reached else None)
        entry = {
            "success": success,
            "success_stderr": math.sqrt(success * (1 - success) / (n - 1)) if n > 1 else 0.0,
            "success_within": within,
            "accuracy_at_attempt": at_attempt,
            "step_accuracy": sum(v["correct"] for v in attempts) / len(attempts),
            "first_attempt_success": within[0],
            "mean_reward": sum(v["reward"] for v in attempts) / len(attempts),
            "mean_attempts": len(attempts) / n,
            "n": n,
        }
        recognised = [v["recognised"] for v in attempts if "recognised" in v]
        if recognised:
            entry["recognition"] = sum(recognised) / len(recognised)
            first = [r["verdicts"][0]["recognised"] for r in mine]
            entry["recognition_first_attempt"] = sum(first) / n
        results[split] = entry
    return results


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A short plain-text table of the headline numbers.

    Recognition is the first attempt's, as the study measures it (V = 1): later attempts see
    the image only in the conversation's first turn, so their card reading is a different
    quantity (`recognition` over all attempts stays in results.json).
    """
    lines = [f"{'split':<18}{'success':>16}{'1st attempt':>13}{'recognition':>13}{'n':>6}"]
    for split, r in results.items():
        rec = (f"{r['recognition_first_attempt']:.1%}" if "recognition_first_attempt" in r
               else "-")
        lines.append(
            f"{split:<18}{r['success']:>9.1%} ±{r['success_stderr']:.1%}"
            f"{r['first_attempt_success']:>13.1%}{rec:>13}{r['n']:>6}"
        )
    return "\n".join(lines)
