"""Difficulty estimation: k rollouts per training sample -> pass rate -> easy / medium / hard.

The run is built to be killed at any moment and resumed with the same arguments:

* samples are processed in chunks; every finished chunk is written atomically as its own part
  file (``parts/part-00012.parquet``), and each part lists the sample indices it holds, so a
  restart simply skips the indices it finds on disk;
* the sampling engine derives each prompt's randomness from (seed, sample id), not from the
  batch it lands in, so a resumed run (or a sharded one) ends with the records of an
  uninterrupted run. Resumed chunks are cut from the remaining indices in the original order,
  so with the same chunk size they hold exactly the prompts they would have held without the
  kill: even the engine's floating-point noise from batch composition is the same;
* ``DIR/config.json`` fingerprints the arguments that decide the result; a restart with other
  arguments is refused instead of silently mixing two runs.

Sharding (``--shard i/n`` or the rank under ``accelerate launch``) gives shard ``i`` the indices
with ``index % n == i``; each shard writes ``DIR/shard-i-of-n/`` and the last shard to finish
merges everything into ``DIR/difficulty.parquet`` (sorted by index) plus ``DIR/summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from gengap import cost
from gengap.cost import Clock
from gengap.errors import InputError
from gengap.io import dumps, read_jsonl, write_json
from gengap.runinfo import run_metadata
from gengap.runs import PartStore, RunDir, read_records, write_records

BUCKETS = ("easy", "medium", "hard")
FORMATS = ("parquet", "jsonl")
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
DONE_FILE = "done.json"
RESULT_STEM = "difficulty"

# Study defaults (DC-SFT samples difficulty exactly like its GRPO rollouts).
DEFAULT_K = 8
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOP_P = 1.0
DEFAULT_TOP_K = 50
DEFAULT_CHUNK = 128


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class DifficultyConfig:
    """Everything that decides a difficulty run's records (and so its fingerprint).

    `max_new_tokens=None` means the task's own budget (resolved when the run starts, so the
    stored config always holds a number).
    """

    model: str
    task: str
    split: str = "train"
    n: int = 2000
    k: int = DEFAULT_K
    seed: int = 0
    data_seed: int = 0
    task_options: dict[str, Any] = field(default_factory=dict)
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    max_new_tokens: int | None = None
    backend: str = "hf"
    store_generations: bool = False
    format: str = "parquet"
    # Attempts per episode: 1 = DC-SFT's single-shot pass rate; more rates whole episodes
    # (a sample is "correct" when its episode succeeds).
    verify_iters: int = 1

    def validate(self) -> None:
        """Raise `InputError` for values no run can use."""
        if self.n < 1:
            raise InputError(f"--n must be at least 1, got {self.n}")
        if self.k < 1:
            raise InputError(f"--k must be at least 1, got {self.k}")
        if self.verify_iters < 1:
            raise InputError(f"verify_iters must be at least 1, got {self.verify_iters}")
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}", hint=f"use one of {FORMATS}")
        # Sampling values are checked by `gengap.rollout.SamplingParams` itself.

    def stored(self) -> dict[str, Any]:
        """The fields that decide the records (what the run directory is claimed with)."""
        out = asdict(self)
        if out["verify_iters"] == 1:
            del out["verify_iters"]  # runs from before episodes keep their fingerprint
        return out

    def fingerprint(self) -> str:
        """A short hash of the fields that decide the records."""
        blob = json.dumps(self.stored(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardSpec:
    """Shard `index` of `count`: the samples with ``sample_index % count == index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> ShardSpec:
        """Parse ``"i/n"``; None means: the accelerate/torchrun rank if any, else 0/1."""
        if text is None:
            return cls.from_env()
        try:
            left, right = text.split("/")
            spec = cls(int(left), int(right))
        except ValueError:
            raise InputError(
                f"--shard must look like i/n (e.g. 0/2), got {text!r}", where="--shard"
            ) from None
        spec.validate()
        return spec

    @classmethod
    def from_env(cls) -> ShardSpec:
        """The process rank set by `accelerate launch` / torchrun (RANK, WORLD_SIZE)."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
        spec = cls(rank, world) if world > 1 else cls()
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise `InputError` unless 0 <= index < count."""
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(
                f"shard {self.index}/{self.count} is out of range", where="--shard",
                hint="i must satisfy 0 <= i < n",
            )

    def indices(self, n: int) -> list[int]:
        """This shard's sample indices, in order."""
        return list(range(self.index, n, self.count))

    def dirname(self, out_dir: Path) -> Path:
        """Where this shard writes (the run directory itself when unsharded)."""
        return out_dir if self.count == 1 else out_dir / f"shard-{self.index}-of-{self.count}"


def bucket_of(n_correct: int, k: int) -> str:
    """DC-SFT's buckets: easy = k/k correct, hard = 0/k, medium = anything in between."""
    if n_correct >= k:
        return "easy"
    if n_correct <= 0:
        return "hard"
    return "medium"


# --------------------------------------------------------------------------------------------
# The engine seam


class Sampler(Protocol):
    """What estimation needs from `gengap.rollout`'s samplers (HF or vLLM)."""

    def generate(
        self,
        prompts: list[list[dict[str, Any]]],
        images: list[Any] | None,
        params: Any,
        keys: list[str] | None = None,
        progress: bool = False,
    ) -> Any:
        """Return a BatchResult whose ``completions[i]`` holds the k completions of prompt i."""
        ...


SamplerFactory = Callable[[DifficultyConfig, Any], tuple[Sampler, dict[str, Any]]]
"""(config, task) -> (sampler, model info for the summary). Tests inject fakes through it."""


def load_sampler(config: DifficultyConfig, task: Any, device: str = "auto",
                 dtype: str | None = "auto",
                 backend_options: dict[str, Any] | None = None) -> tuple[Sampler, dict[str, Any]]:
    """Load `config.model` with gengap's loader and wrap it in the requested engine."""
    from gengap.models import resolve_device
    from gengap.rollout.factory import load_sampler as load_model_sampler

    # Under `accelerate launch` / torchrun each rank samples on its own GPU.
    device = resolve_device(device, local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    sampler, info = load_model_sampler(config.model, task, backend=config.backend, device=device,
                                       dtype=dtype, **(backend_options or {}))
    info["weights"] = model_fingerprint(info.get("path"))
    return sampler, info


def model_fingerprint(path: str | Path | None) -> str | None:
    """A cheap identity for checkpoint weights: size plus the first/last MiB of each file.

    Hashing every byte of a 15 GB checkpoint would cost a minute per start; the ends of the
    weight files change with any retraining, which is what a resume check needs to catch.
    """
    if path is None or not Path(path).is_dir():
        return None
    digest = hashlib.sha256()
    files = sorted(
        p for p in Path(path).iterdir()
        if p.suffix in {".safetensors", ".bin", ".pt"} or p.name == "config.json"
    )
    for p in files:
        size = p.stat().st_size
        digest.update(f"{p.name}:{size}".encode())
        with p.open("rb") as f:
            digest.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()[:16]


def make_task(config: DifficultyConfig) -> Any:
    """Build the configured task from the registry."""
    from gengap.tasks.registry import build_task

    return build_task(config.task, config.task_options)


def _sampling_params(config: DifficultyConfig) -> Any:
    from gengap.rollout import SamplingParams

    return SamplingParams(
        k=config.k,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
    )


# --------------------------------------------------------------------------------------------
# Part files


def _part_suffix(fmt: str) -> str:
    return ".parquet" if fmt == "parquet" else ".jsonl"


def _schema(store_generations: bool) -> pa.Schema:
    # An explicit schema keeps every part (and the merged file) identical in layout, even for
    # chunks where e.g. every generation happens to be empty.
    fields = [
        pa.field("index", pa.int64()),
        pa.field("id", pa.string()),
        pa.field("k", pa.int32()),
        pa.field("n_correct", pa.int32()),
        pa.field("pass_rate", pa.float64()),
        pa.field("bucket", pa.string()),
        pa.field("rewards", pa.list_(pa.float64())),
        pa.field("correct", pa.list_(pa.bool_())),
        pa.field("generated_tokens", pa.int64()),
        # Task rows and categories differ per task; JSON text keeps one stable schema.
        pa.field("task_row", pa.string()),
        pa.field("categories", pa.string()),
    ]
    if store_generations:
        fields += [
            pa.field("generations", pa.list_(pa.string())),
            pa.field("finished", pa.list_(pa.bool_())),
        ]
    return pa.schema(fields)


def _parts(shard_dir: Path, config: DifficultyConfig) -> PartStore:
    schema = _schema(config.store_generations) if config.format == "parquet" else None
    return PartStore(shard_dir / "parts", config.format, schema)


def _run_dir(out_dir: Path, config: DifficultyConfig) -> RunDir:
    return RunDir(out_dir, "difficulty", config.stored(), filename=CONFIG_FILE)


def load_run_config(out_dir: str | Path) -> dict[str, Any]:
    """Read DIR/config.json (fingerprint, shard count and the `DifficultyConfig` fields)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise InputError(
            "not a difficulty run directory (no config.json)", where=str(out_dir),
            hint="create one with `gengap difficulty --out DIR ...`",
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"config.json is not valid JSON ({exc.msg})", where=str(path)) from None


def config_from_dict(data: dict[str, Any]) -> DifficultyConfig:
    """Rebuild a `DifficultyConfig` from its stored form."""
    return DifficultyConfig(**data)


# --------------------------------------------------------------------------------------------
# Estimation


@dataclass
class ShardProgress:
    """What one call to `estimate_difficulty` did for its shard."""

    shard: ShardSpec
    total: int
    already_done: int
    processed: int
    seconds: float
    merged: bool
    summary: dict[str, Any] | None


def score_chunk(
    task: Any, sampler: Sampler, params: Any, config: DifficultyConfig, indices: Sequence[int]
) -> tuple[list[dict[str, Any]], int, int]:
    """Run k episodes for each index and judge them; returns (records, generated tokens,
    prompt tokens the engine encoded)."""
    from gengap.rollout.episodes import group_by_sample, run_episodes

    samples = [task.sample(config.split, i, config.data_seed) for i in indices]
    usage: dict[str, int] = {}
    episodes = run_episodes(sampler, task, samples, params, config.verify_iters, usage=usage)
    records = []
    for index, sample, group in zip(indices, samples, group_by_sample(episodes, config.k),
                                    strict=True):
        n_correct = sum(e.success for e in group)
        record: dict[str, Any] = {
            "index": int(index),
            "id": sample.id,
            "k": len(group),
            "n_correct": n_correct,
            "pass_rate": n_correct / len(group) if group else 0.0,
            "bucket": bucket_of(n_correct, len(group)),
            "rewards": [e.reward for e in group],
            "correct": [bool(e.success) for e in group],
            "generated_tokens": int(sum(e.generated_tokens for e in group)),
            "task_row": json.dumps(task.row(sample), ensure_ascii=False, sort_keys=True),
            "categories": json.dumps(task.categories(sample), ensure_ascii=False,
                                     sort_keys=True, default=str),
        }
        if config.store_generations:
            # The last completion of each episode (the only one when verify_iters is 1).
            record["generations"] = [e.attempts[-1] for e in group]
            record["finished"] = [True for _ in group]
        records.append(record)
    return (records, int(sum(e.generated_tokens for e in episodes)),
            int(usage.get("prompt_tokens", 0)))


def estimate_difficulty(
    config: DifficultyConfig,
    out_dir: str | Path,
    *,
    shard: ShardSpec | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    sampler_factory: SamplerFactory | None = None,
    task: Any = None,
    progress: bool = True,
    merge: bool = True,
    device: str = "auto",
    dtype: str | None = "auto",
    backend_options: dict[str, Any] | None = None,
) -> ShardProgress:
    """Run (or resume) difficulty estimation for one shard and merge when all shards are done.

    `sampler_factory` defaults to `load_sampler` (gengap's model loader + sampling engine);
    it is only called when the shard still has work, so re-running a finished shard is cheap.
    """
    from tqdm.auto import tqdm

    config.validate()
    shard = shard or ShardSpec()
    shard.validate()
    if chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {chunk_size}")
    out_dir = Path(out_dir)
    task = task if task is not None else make_task(config)
    task.count(config.split, config.n)  # the split exists and holds n samples
    if config.max_new_tokens is None:
        config = DifficultyConfig(**{**asdict(config), "max_new_tokens": task.max_new_tokens})
    params = _sampling_params(config)  # validates the sampling settings before any file exists
    run_dir = _run_dir(out_dir, config)
    run_dir.claim(has_results=lambda: _has_parts(out_dir), extra={"shards": shard.count})

    shard_dir = shard.dirname(out_dir)
    started = time.perf_counter()
    processed = 0
    with run_dir.lock(shard_dir.relative_to(out_dir) if shard.count > 1 else None):
        store = _parts(shard_dir, config)
        parts = store.files()
        wanted = shard.indices(config.n)
        done = store.done(lambda r: int(r["index"]))
        todo = [i for i in wanted if i not in done]
        if todo:
            if sampler_factory is None:
                sampler, model_info = load_sampler(config, task, device, dtype, backend_options)
            else:
                sampler, model_info = sampler_factory(config, task)
            _check_model(shard_dir, model_info)
            bar = tqdm(total=len(wanted), initial=len(wanted) - len(todo), unit="sample",
                       desc=f"difficulty {shard.index}/{shard.count}", disable=not progress,
                       dynamic_ncols=True)
            del parts
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start:start + chunk_size]
                clock = Clock()
                with clock:
                    records, tokens, prompt_tokens = score_chunk(task, sampler, params, config,
                                                                 chunk)
                seconds = clock.wall
                path = store.write_part(records)
                _append_timing(shard_dir, path.name, len(chunk), clock, tokens, prompt_tokens)
                processed += len(chunk)
                bar.update(len(chunk))
                bar.set_postfix(rollouts_s=f"{len(chunk) * config.k / max(seconds, 1e-9):.0f}")
            bar.close()
        seconds = time.perf_counter() - started
        _append_line(shard_dir / "runs.jsonl", {
            "started": time.time() - seconds, "seconds": round(seconds, 3),
            "already_done": len(wanted) - len(todo), "processed": processed,
        })
        write_json(shard_dir / DONE_FILE, {"shard": asdict(shard), "samples": len(wanted)})
    summary = merge_shards(out_dir) if merge else None
    return ShardProgress(shard, len(wanted), len(wanted) - len(todo), processed, seconds,
                         summary is not None, summary)


def _has_parts(out_dir: Path) -> bool:
    """Whether a difficulty directory already holds records (of any shard)."""
    return any(out_dir.glob("parts/part-*")) or any(out_dir.glob("shard-*/parts/part-*"))


def _check_model(shard_dir: Path, info: dict[str, Any]) -> None:
    """Refuse to resume on different weights than the parts already written were sampled from."""
    path = shard_dir / "model.json"
    if path.is_file():
        old = json.loads(path.read_text())
        # Precision changes the samples too (runs from before it was recorded have none).
        dtypes = {old.get("dtype"), info.get("dtype")} - {None}
        if old.get("weights") != info.get("weights") or len(dtypes) > 1:
            what = "weights" if old.get("weights") != info.get("weights") else "precision"
            raise InputError(
                f"the model's {what} changed since this run started "
                f"({old.get('path')} {old.get('dtype') or ''} -> {info.get('path')} "
                f"{info.get('dtype') or ''})",
                where=str(shard_dir),
                hint="difficulty is specific to one model: use a new --out directory",
            )
    else:
        write_json(path, info)


def _append_timing(shard_dir: Path, part: str, samples: int, clock: Clock, tokens: int,
                   prompt_tokens: int) -> None:
    # One line per finished part; a kill between the part and this line only loses a timing.
    _append_line(shard_dir / "timings.jsonl", {
        "part": part, "samples": samples, "seconds": round(clock.wall, 4),
        "cpu_seconds": round(clock.cpu, 4), "generated_tokens": tokens,
        "prompt_tokens": prompt_tokens, "time": time.time(),
    })


def _append_line(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps(row) + "\n")


# --------------------------------------------------------------------------------------------
# Merge and summary


def result_path(out_dir: str | Path) -> Path:
    """The merged records of a finished run (parquet or jsonl, whichever exists)."""
    out_dir = Path(out_dir)
    for fmt in FORMATS:
        path = out_dir / f"{RESULT_STEM}{_part_suffix(fmt)}"
        if path.is_file():
            return path
    raise InputError(
        "the difficulty run is not finished (no merged difficulty.parquet/.jsonl)",
        where=str(out_dir),
        hint="rerun the same `gengap difficulty` command (for every shard) to complete it",
    )


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """The merged per-sample records of a finished run, sorted by sample index."""
    return read_records(result_path(out_dir))


def merge_shards(out_dir: str | Path) -> dict[str, Any] | None:
    """Merge all shards into DIR/difficulty.* and write summary.json; None if shards are missing.

    Deterministic (sorted by sample index), so two shards that finish at the same moment and
    both merge write the same bytes; each write is atomic.
    """
    out_dir = Path(out_dir)
    stored = load_run_config(out_dir)
    config = config_from_dict(stored["config"])
    shard_count = int(stored.get("shards", 1))
    shards = [ShardSpec(i, shard_count) for i in range(shard_count)]
    if not all((s.dirname(out_dir) / DONE_FILE).is_file() for s in shards):
        return None
    records: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    model_info: dict[str, Any] = {}
    shard_wall: list[float] = []
    invocations = 0
    for s in shards:
        sdir = s.dirname(out_dir)
        records.extend(_parts(sdir, config).records())
        if (sdir / "timings.jsonl").is_file():
            timings.extend(row for _, row in read_jsonl(sdir / "timings.jsonl"))
        if (sdir / "runs.jsonl").is_file():
            runs = [row for _, row in read_jsonl(sdir / "runs.jsonl")]
            shard_wall.append(sum(float(row["seconds"]) for row in runs))
            invocations += len(runs)
        if not model_info and (sdir / "model.json").is_file():
            model_info = json.loads((sdir / "model.json").read_text())
    records.sort(key=lambda r: r["index"])
    indices = [r["index"] for r in records]
    if indices != list(range(config.n)):
        missing = sorted(set(range(config.n)) - set(indices))
        duplicates = len(indices) - len(set(indices))
        raise InputError(
            f"the shards do not hold every sample exactly once ({len(missing)} missing, "
            f"{duplicates} duplicated)",
            where=str(out_dir),
            hint="rerun the difficulty command for the incomplete shard(s)",
        )
    suffix = _part_suffix(config.format)
    schema = _schema(config.store_generations) if config.format == "parquet" else None
    write_records(out_dir / f"{RESULT_STEM}{suffix}", records, schema)
    summary = summarize(records, config, timings, model_info, shard_count)
    # Shards run side by side: the run took as long as its slowest shard (killed invocations
    # are not counted: they end without a chance to log).
    summary["speed"]["wall_seconds"] = round(max(shard_wall), 3) if shard_wall else None
    summary["speed"]["invocations"] = invocations
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def pass_rate_histogram(records: Sequence[dict[str, Any]], k: int) -> dict[str, int]:
    """Counts of samples by number of correct rollouts, as ``{"0/8": ..., "8/8": ...}``."""
    counts = {f"{j}/{k}": 0 for j in range(k + 1)}
    for r in records:
        counts[f"{r['n_correct']}/{k}"] += 1
    return counts


def summarize(
    records: Sequence[dict[str, Any]],
    config: DifficultyConfig,
    timings: Sequence[dict[str, Any]],
    model_info: dict[str, Any],
    shard_count: int,
) -> dict[str, Any]:
    """The summary.json content: buckets, histogram, settings, provenance and speed."""
    buckets = {b: 0 for b in BUCKETS}
    for r in records:
        buckets[r["bucket"]] += 1
    compute_seconds = sum(float(t["seconds"]) for t in timings)
    cpu_seconds = (sum(float(t["cpu_seconds"]) for t in timings)
                   if all("cpu_seconds" in t for t in timings) else None)
    tokens = sum(int(t.get("generated_tokens", 0)) for t in timings)
    prompt_tokens = sum(int(t.get("prompt_tokens", 0)) for t in timings)
    n_params = (model_info or {}).get("parameters")
    n = len(records)
    return {
        "task": config.task,
        "task_options": config.task_options,
        "split": config.split,
        "n": n,
        "k": config.k,
        "buckets": buckets,
        "bucket_shares": {b: round(c / n, 4) if n else 0.0 for b, c in buckets.items()},
        "pass_rate_histogram": pass_rate_histogram(records, config.k),
        "mean_pass_rate": round(sum(r["pass_rate"] for r in records) / n, 4) if n else 0.0,
        "model": model_info or {"spec": config.model},
        "sampling": {
            "k": config.k, "temperature": config.temperature, "top_p": config.top_p,
            "top_k": config.top_k, "max_new_tokens": config.max_new_tokens,
            "backend": config.backend, "seed": config.seed,
        },
        "data_seed": config.data_seed,
        "fingerprint": config.fingerprint(),
        "shards": shard_count,
        "speed": {
            # Seconds spent sampling and verifying, summed over parts (and shards): the cost
            # of the estimate itself, excluding model loading and time lost to kills.
            "compute_seconds": round(compute_seconds, 3),
            "samples_per_second": round(n / compute_seconds, 2) if compute_seconds else None,
            "rollouts_per_second": round(n * config.k / compute_seconds, 2)
            if compute_seconds else None,
            # Process CPU seconds of the same work (robust to other processes on the machine)
            # and its FLOPs (2N per token the engine processed, `gengap.cost`).
            "cpu_seconds": round(cpu_seconds, 3) if cpu_seconds is not None else None,
            "generated_tokens": tokens,
            "prompt_tokens": prompt_tokens,
            "flops": cost.generation_flops(n_params, tokens + prompt_tokens)
            if n_params else None,
        },
        "provenance": run_metadata(config.stored(), config.seed),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A one-screen plain-text view of summary.json."""
    n = summary["n"]
    lines = [
        f"difficulty: {summary['task']} / {summary['split']}  n={n}  k={summary['k']}  "
        f"model={summary['model'].get('spec')}",
        f"sampling: T={summary['sampling']['temperature']} top_p={summary['sampling']['top_p']} "
        f"top_k={summary['sampling']['top_k']} max_new_tokens="
        f"{summary['sampling']['max_new_tokens']} seed={summary['sampling']['seed']}",
        "",
        f"{'bucket':<8}{'count':>8}{'share':>8}",
    ]
    for bucket, count in summary["buckets"].items():
        lines.append(f"{bucket:<8}{count:>8}{count / n if n else 0:>8.1%}")
    lines.append(f"mean pass rate {summary['mean_pass_rate']:.3f}")
    hist = summary["pass_rate_histogram"]
    peak = max(hist.values()) or 1
    lines.append("")
    for label, count in hist.items():
        lines.append(f"{label:>6} {count:>7} " + "#" * round(40 * count / peak))
    speed = summary["speed"]
    if speed.get("samples_per_second"):
        lines.append("")
        lines.append(f"{speed['compute_seconds']:.1f} s compute, "
                     f"{speed['samples_per_second']:.1f} samples/s, "
                     f"{speed['rollouts_per_second']:.1f} rollouts/s")
    if speed.get("wall_seconds"):
        lines.append(f"{speed['wall_seconds']:.1f} s wall (model loading included) over "
                     f"{speed['invocations']} invocation(s)")
    return "\n".join(lines)
