"""ID / OOD evaluation: `gengap eval`.

For each split, the first `n` samples (fixed seed; the whole split when it is finite and `n` is
unset) run as episodes of up to `verify_iters` attempts (greedy by default), through the same
sampling and judging path as every other stage (`gengap.rollout.run_episodes`). The output
directory holds:

- `parts/part-*.jsonl`: the episodes, one part per finished chunk; a restarted run skips the
  episodes already there (sampling is keyed per sample id, so a resumed evaluation equals an
  uninterrupted one);
- `samples.jsonl`: every episode (prompt, attempts, verdicts, success, metrics), merged;
- `results.json`: lm-eval's shape -- `results` per split (success with its standard error,
  success within t attempts, accuracy at each attempt, step accuracy, mean reward, the mean of
  every numeric metric the task's verdicts carry (first attempt, and all attempts), episode
  metrics, success per category the task reports by), plus the split roles, `config`, seed,
  package versions, git commit and date.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.io import write_json, write_jsonl
from gengap.runinfo import run_metadata
from gengap.runs import PartStore, RunDir
from gengap.tasks.registry import build_task

CHUNK = 64  # episodes per part file: the most a crash can cost


@dataclass
class EvalConfig:
    """Everything that decides an evaluation's numbers (checked again on resume)."""

    model: str
    task: str
    splits: list[str] | None = None  # None: every test and OOD split of the task
    n: int | None = None  # None: the whole split if finite, else 234 (the study's)
    verify_iters: int | None = None  # None: the task's default (5 for GeneralPoints)
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int | None = None  # None: the task's budget
    seed: int = 0
    backend: str = "hf"
    task_options: dict[str, Any] = field(default_factory=dict)
    clip_n: bool = False  # n is an upper bound: a smaller finite split is taken whole


DEFAULT_N = 234  # the study's GeneralPoints evaluation size


def eval_splits(task: Any, splits: Sequence[str] | None) -> list[str]:
    """The named splits (checked), or every test and OOD split of the task."""
    if splits is None:
        return [s.name for s in task.with_role("test", "ood")]
    if not splits:
        raise InputError("no splits to evaluate", where="--splits",
                         hint=f"name one or more of: {', '.join(task.splits)}")
    for split in splits:
        task.split(split)
    return list(splits)


def evaluate(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    loaded: Any = None,
    progress: bool = True,
    device: str = "auto",
    dtype: str | None = "auto",
    backend_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the evaluation described by `config`; returns the results dict (also written).

    `loaded` (a `gengap.models.LoadedModel`, or anything with .model / .processor / .path)
    skips loading `config.model`, e.g. when a training callback evaluates the model it trains.
    `device` / `dtype` place a model loaded here; `backend_options` go to the backend (vLLM:
    tensor_parallel_size, gpu_memory_utilization). What was used lands in results.json
    ("model": device, dtype, backend, strategy, ...).
    """
    from gengap.rollout import SamplingParams, make_sampler, run_episodes
    from gengap.rollout.factory import load_sampler

    out = Path(out_dir)
    task = build_task(config.task, config.task_options)
    splits = eval_splits(task, config.splits)
    counts = {s: task.count(s, _clip(task, s, config), default=DEFAULT_N) for s in splits}
    verify_iters = config.verify_iters or task.verify_iters
    params = SamplingParams(
        k=1, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
        max_new_tokens=config.max_new_tokens or task.max_new_tokens, seed=config.seed,
    )
    run = RunDir(out, "eval", asdict(config))
    store = PartStore(out / "parts", "jsonl")
    run.claim(has_results=lambda: bool(store.files()))
    with run.lock():
        done = {(r["split"], r["id"]): r for r in store.records()}
        wanted = {s: [task.sample(s, i, config.seed) for i in range(counts[s])] for s in splits}
        todo = {s: [x for x in samples if (s, x.id) not in done] for s, samples in wanted.items()}
        if any(todo.values()):
            if loaded is None:
                sampler, model_info = load_sampler(config.model, task, backend=config.backend,
                                                   device=device, dtype=dtype,
                                                   **(backend_options or {}))
            else:
                sampler = make_sampler(loaded.model, loaded.processor, backend=config.backend)
                model_info = _loaded_info(loaded, sampler)
            write_json(out / "model.json", model_info)
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(counts.values()), initial=len(done), unit="episode",
                       desc="eval", disable=not progress, dynamic_ncols=True)
            for samples in todo.values():
                for start in range(0, len(samples), CHUNK):
                    chunk = samples[start:start + CHUNK]
                    episodes = run_episodes(sampler, task, chunk, params, verify_iters)
                    rows = [episode_row(task, e) for e in episodes]
                    store.write_part(rows)
                    done.update({(r["split"], r["id"]): r for r in rows})
                    bar.update(len(rows))
            bar.close()

    rows = [done[(s, x.id)] for s in splits for x in wanted[s]]
    write_jsonl(out / "samples.jsonl", rows)
    results = summarise(rows, splits, verify_iters, report_by=task.report_by)
    payload = {
        "results": results,
        "splits": {s: task.split(s).as_dict() for s in splits},
        # What decided the samples and how they were scored (e.g. a grounding task's box frame).
        "task_identity": task.identity(),
        **run_metadata(asdict(config), config.seed),
        "verify_iters": verify_iters,
        "sampling": asdict(params),
        "model_path": str(getattr(loaded, "path", None) or _model_info(out).get("path")
                          or config.model),
        "model": _model_info(out),
    }
    write_json(out / "results.json", payload)
    return payload


def _model_info(out: Path) -> dict[str, Any]:
    """What the run's sampling model was (device, dtype, backend, ...), from DIR/model.json."""
    import json

    path = out / "model.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _loaded_info(loaded: Any, sampler: Any) -> dict[str, Any]:
    """model.json for an in-memory model (e.g. the one a trainer is training)."""
    info: dict[str, Any] = {"path": str(getattr(loaded, "path", "")), "in_memory": True,
                            "backend": "hf", "strategy": getattr(sampler, "strategy", None)}
    parameters = getattr(loaded.model, "parameters", None)
    parameter = next(iter(parameters()), None) if callable(parameters) else None
    if parameter is not None:
        info["device"] = str(parameter.device)
        info["dtype"] = str(parameter.dtype).removeprefix("torch.")
    return info


def _clip(task: Any, split: str, config: EvalConfig) -> int | None:
    size = task.split(split).size
    if config.clip_n and config.n is not None and size is not None:
        return min(config.n, size)
    return config.n


def episode_row(task: Any, episode: Any) -> dict[str, Any]:
    """One episode as a samples.jsonl row."""
    sample = episode.sample
    return {
        "id": sample.id,
        "split": sample.split,
        "index": sample.index,
        "fields": dict(sample.fields),
        "categories": task.categories(sample),
        "prompt": episode.first_prompt,
        "attempts": episode.attempts,
        "verdicts": [v.as_dict() for v in episode.verdicts],
        "success": episode.success,
        "metrics": episode.metrics,
        "generated_tokens": episode.generated_tokens,
    }


def _rate(hits: int, n: int) -> tuple[float, float]:
    """A share and its binomial standard error."""
    p = hits / n
    return p, (math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else 0.0)


def summarise(rows: Sequence[dict[str, Any]], splits: Sequence[str], verify_iters: int,
              report_by: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Per-split metrics from episode rows (any task: metrics are aggregated by name)."""
    results = {}
    for split in splits:
        mine = [r for r in rows if r["split"] == split]
        n = len(mine)
        if not n:
            continue
        success, stderr = _rate(sum(bool(r["success"]) for r in mine), n)
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
        entry: dict[str, Any] = {
            "success": success,
            "success_stderr": stderr,
            "success_within": within,
            "accuracy_at_attempt": at_attempt,
            "step_accuracy": sum(v["correct"] for v in attempts) / len(attempts),
            "first_attempt_success": sum(bool(r["verdicts"][0]["correct"]) for r in mine) / n,
            "mean_reward": sum(v["reward"] for v in attempts) / len(attempts),
            "mean_return": sum(sum(v["reward"] for v in r["verdicts"]) for r in mine) / n,
            "mean_attempts": len(attempts) / n,
            "n": n,
        }
        # Verdict metrics: the first attempt's (the studies' measures are single-attempt),
        # and over every attempt.
        names = sorted({m for v in attempts for m in v.get("metrics", {})})
        for name in names:
            first = [r["verdicts"][0]["metrics"][name] for r in mine
                     if name in r["verdicts"][0].get("metrics", {})]
            every = [v["metrics"][name] for v in attempts if name in v.get("metrics", {})]
            if first:
                entry[name] = sum(first) / len(first)
            entry[f"{name}_all_attempts"] = sum(every) / len(every)
        # Episode metrics (e.g. route progress), means over episodes.
        for name in sorted({m for r in mine for m in r.get("metrics", {})}):
            values = [r["metrics"][name] for r in mine if name in r.get("metrics", {})]
            entry[name if name not in entry else f"episode_{name}"] = sum(values) / len(values)
        breakdown: dict[str, dict[str, Any]] = {}
        for key in report_by:
            groups: dict[str, list[bool]] = defaultdict(list)
            for r in mine:
                if key in r.get("categories", {}):
                    groups[str(r["categories"][key])].append(bool(r["success"]))
            breakdown[key] = {}
            for value, hits in sorted(groups.items()):
                p, se = _rate(sum(hits), len(hits))
                breakdown[key][value] = {"success": p, "success_stderr": se, "n": len(hits)}
        if breakdown:
            entry["by_category"] = breakdown
        results[split] = entry
    return results


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A short plain-text table of the headline numbers (and any verdict metrics).

    Metrics are the first attempt's, as the studies measure them (e.g. GeneralPoints'
    recognition with V = 1); their all-attempt means stay in results.json.
    """
    generic = {"success", "success_stderr", "success_within", "accuracy_at_attempt",
               "step_accuracy", "first_attempt_success", "mean_reward", "mean_return",
               "mean_attempts", "n", "by_category"}
    extra = sorted({k for r in results.values() for k in r
                    if k not in generic and not k.endswith("_all_attempts")})
    header = f"{'split':<18}{'success':>16}{'1st attempt':>13}" + "".join(
        f"{name[:12]:>13}" for name in extra) + f"{'n':>7}"
    lines = [header]
    for split, r in results.items():
        cells = "".join(f"{r[name]:>13.1%}" if isinstance(r.get(name), float) else f"{'-':>13}"
                        for name in extra)
        lines.append(f"{split:<18}{r['success']:>9.1%} ±{r['success_stderr']:.1%}"
                     f"{r['first_attempt_success']:>13.1%}{cells}{r['n']:>7}")
        for key, groups in r.get("by_category", {}).items():
            for value, g in groups.items():
                lines.append(f"  {key}={value:<12}{g['success']:>7.1%} ±{g['success_stderr']:.1%}"
                             f"{'':>13}{'':>13}" + f"{g['n']:>7}")
    return "\n".join(lines)
