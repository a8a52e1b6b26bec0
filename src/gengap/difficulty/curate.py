"""Curate SFT sets from a difficulty run (DC-SFT): all, E, M, H, EM, balanced, EM + hard share.

The output is a conversational prompt/completion dataset that TRL's `SFTTrainer` takes as is:

    {"prompt": [user message], "completion": [{"role": "assistant", "content": target}],
     "id": ..., "index": ..., "pass_rate": ..., "bucket": ..., ["image": ...]}

Targets are the task's ground-truth answers (as in DC-SFT), never the model's own rollouts.
Image tasks get an `images` column (a list per row, in the order of the prompt's
`{"type": "image"}` parts, which TRL's collator fills). In Parquet the image bytes live in the
file (a sequence of `datasets.Image`, decoded by `load_dataset("parquet", ...)`); in JSONL the
column holds paths of PNGs written beside the file, relative to it: load such a file with
`load_curated`, which resolves the paths and casts the column to images.

Provenance (difficulty run, its fingerprint, variant, seed, counts) goes to ``FILE.meta.json``.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gengap.difficulty.estimate import (
    BUCKETS,
    config_from_dict,
    load_records,
    load_run_config,
    result_path,
)
from gengap.errors import InputError
from gengap.io import atomic_open, write_json, write_jsonl
from gengap.runinfo import run_metadata

_SINGLE = {"E": ("easy",), "M": ("medium",), "H": ("hard",), "EM": ("easy", "medium"),
           "all": BUCKETS}
_BALANCED = re.compile(r"^balanced:([EMH])$", re.IGNORECASE)
_HARD_SHARE = re.compile(r"^EM\+hard:([0-9]*\.?[0-9]+)$", re.IGNORECASE)
VARIANT_HELP = (
    "all | E | M | H | EM | balanced:E | balanced:M | balanced:H | EM+hard:R "
    "(R = share of hard samples in the result, e.g. EM+hard:0.05)"
)


@dataclass(frozen=True)
class Selection:
    """The rows a variant keeps, and the numbers behind it."""

    records: list[dict[str, Any]]
    available: dict[str, int]  # bucket sizes in the difficulty run (after the band filter)
    selected: dict[str, int]  # bucket sizes in the result


def _bucket_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["bucket"] for r in records)
    return {b: counts.get(b, 0) for b in BUCKETS}


def _in_band(rate: float, low: float | None, high: float | None) -> bool:
    # Strict bounds, as in the field's offline pass-rate filters (keep low < rate < high).
    return (low is None or rate > low) and (high is None or rate < high)


def select(
    records: Sequence[dict[str, Any]],
    variant: str,
    *,
    min_rate: float | None = None,
    max_rate: float | None = None,
    size: int | None = None,
    seed: int = 0,
) -> Selection:
    """Pick the rows of `variant` (see `VARIANT_HELP`), sorted by sample index.

    `min_rate`/`max_rate` first keep rows with min < pass_rate < max. Random cuts (balanced
    buckets, the hard share, `size`) draw from `random.Random(seed)`, so the same seed gives
    the same set.
    """
    for name, bound in (("--min", min_rate), ("--max", max_rate)):
        if bound is not None and not 0.0 <= bound <= 1.0:
            raise InputError(f"{name} must lie in [0, 1], got {bound}", where=name,
                             hint="pass rates are shares of k rollouts, e.g. --min 0 --max 1")
    pool = [r for r in records if _in_band(r["pass_rate"], min_rate, max_rate)]
    available = _bucket_counts(pool)
    by_bucket = {b: [r for r in pool if r["bucket"] == b] for b in BUCKETS}
    rng = random.Random(seed)
    key = variant.strip()
    canonical = {name.lower(): name for name in _SINGLE}
    if key.lower() in canonical:
        chosen = [r for b in _SINGLE[canonical[key.lower()]] for r in by_bucket[b]]
    elif match := _BALANCED.match(key):
        smallest = min(available.values())
        if smallest == 0:
            raise InputError(
                f"cannot balance: a bucket is empty ({available})", where="--variant",
                hint="balanced variants cut every bucket to the smallest one; pick E, M or H",
            )
        bucket = {"E": "easy", "M": "medium", "H": "hard"}[match.group(1).upper()]
        chosen = rng.sample(by_bucket[bucket], smallest)
    elif match := _HARD_SHARE.match(key):
        share = float(match.group(1))
        if not 0.0 <= share < 1.0:
            raise InputError(f"the hard share must lie in [0, 1), got {share}", where="--variant")
        base = by_bucket["easy"] + by_bucket["medium"]
        # R is the share of hard rows in the *result*: hard / (EM + hard) = R.
        wanted = round(share * len(base) / (1.0 - share))
        if wanted > available["hard"]:
            most = available["hard"] / (len(base) + available["hard"]) if base else 0.0
            raise InputError(
                f"EM+hard:{share} needs {wanted} hard samples, the run has {available['hard']}",
                where="--variant", hint=f"the largest share this run allows is {most:.3f}",
            )
        chosen = base + rng.sample(by_bucket["hard"], wanted)
    else:
        raise InputError(f"unknown variant {variant!r}", where="--variant", hint=VARIANT_HELP)
    if size is not None:
        if size < 1 or size > len(chosen):
            raise InputError(
                f"--size {size} is not between 1 and the {len(chosen)} rows of {variant!r}",
                where="--size", hint=f"pass --size {len(chosen)} or less, or leave it out",
            )
        chosen = rng.sample(chosen, size)
    if not chosen:
        raise InputError(
            f"variant {variant!r} selects no samples (buckets available: {available})",
            where="--variant", hint="a different variant or a wider --min/--max band",
        )
    chosen.sort(key=lambda r: r["index"])
    return Selection(chosen, available, _bucket_counts(chosen))


def _png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def images_dir(out: Path) -> Path:
    """Where a JSONL dataset's PNGs go: ``FILE_images/`` beside it."""
    return out.with_name(out.stem + "_images")


def build_rows(task: Any, records: Sequence[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """SFTTrainer rows for `records`: the task's prompt and its ground-truth target."""
    rows = []
    jsonl = out.suffix == ".jsonl"
    for r in records:
        sample = task.sample_from_row(json.loads(r["task_row"]))
        row: dict[str, Any] = {
            "prompt": task.messages(sample),
            "completion": [{"role": "assistant", "content": task.target(sample)}],
            "id": r["id"],
            "index": r["index"],
            "pass_rate": r["pass_rate"],
            "bucket": r["bucket"],
        }
        images = task.images(sample)
        if images:
            if jsonl:
                paths = []
                for j, image in enumerate(images):
                    path = images_dir(out) / f"{r['index']:08d}-{j}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_open(path, "wb") as f:
                        image.save(f, format="PNG")
                    paths.append(str(path.relative_to(out.parent)))
                row["images"] = paths
            else:
                row["images"] = [{"bytes": _png_bytes(image), "path": None} for image in images]
        rows.append(row)
    return rows


def _write_parquet(out: Path, rows: list[dict[str, Any]]) -> None:
    import datasets

    dataset = datasets.Dataset.from_list(rows)
    if "images" in dataset.column_names:
        # The Image feature is stored in the Parquet schema metadata, so load_dataset decodes
        # the column back to PIL images without any help from us.
        dataset = dataset.cast_column("images", datasets.Sequence(datasets.Image()))
    # datasets draws a progress bar for even a one-batch write; keep the CLI output clean.
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        with atomic_open(out, "wb") as f:
            dataset.to_parquet(f)
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def curate(
    difficulty_dir: str | Path,
    variant: str,
    out: str | Path,
    *,
    min_rate: float | None = None,
    max_rate: float | None = None,
    size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the SFT set of `variant` to `out` (.jsonl or .parquet); returns its metadata."""
    out = Path(out)
    if out.suffix not in (".jsonl", ".parquet"):
        raise InputError(f"unknown output format {out.suffix!r}", where=str(out),
                         hint="name the file .jsonl or .parquet")
    stored = load_run_config(difficulty_dir)
    config = config_from_dict(stored["config"])
    records = load_records(difficulty_dir)
    selection = select(records, variant, min_rate=min_rate, max_rate=max_rate, size=size,
                       seed=seed)
    from gengap.tasks.registry import build_task

    task = build_task(config.task, config.task_options)
    rows = build_rows(task, selection.records, out)
    if out.suffix == ".jsonl":
        write_jsonl(out, rows)
    else:
        _write_parquet(out, rows)
    meta = {
        "file": out.name,
        "rows": len(rows),
        "variant": variant,
        "band": {"min": min_rate, "max": max_rate, "bounds": "strict"},
        "size": size,
        "buckets_available": selection.available,
        "buckets_selected": selection.selected,
        "difficulty": {
            "dir": str(Path(difficulty_dir).resolve()),
            "result": result_path(difficulty_dir).name,
            "fingerprint": stored["fingerprint"],
            "model": config.model,
            "task": config.task,
            "task_options": config.task_options,
            "split": config.split,
            "n": config.n,
            "k": config.k,
            "seed": config.seed,
            "data_seed": config.data_seed,
        },
        "format": {"columns": list(rows[0]), "image": _image_note(rows, out)},
        "provenance": run_metadata(
            {"difficulty_dir": str(difficulty_dir), "variant": variant, "min": min_rate,
             "max": max_rate, "size": size, "out": str(out)}, seed),
    }
    write_json(meta_path(out), meta)
    return meta


def _image_note(rows: list[dict[str, Any]], out: Path) -> str | None:
    if "images" not in rows[0]:
        return None
    if out.suffix == ".jsonl":
        return "PNG paths relative to this file; load with gengap.difficulty.curate.load_curated"
    return "PNG bytes (a sequence of datasets.Image)"


def meta_path(out: str | Path) -> Path:
    """The provenance sidecar of a curated file."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def load_curated(path: str | Path) -> Any:
    """Load a curated file as a `datasets.Dataset` ready for `SFTTrainer` (images decoded)."""
    import datasets

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    fmt = {".jsonl": "json", ".parquet": "parquet"}.get(path.suffix)
    if fmt is None:
        raise InputError(f"unknown dataset format {path.suffix!r}", where=str(path))
    dataset = datasets.load_dataset(fmt, data_files=str(path), split="train")
    if fmt == "json":
        # Image paths are relative to the file: an `images` list, or one `image` per row.
        base = path.parent
        if "images" in dataset.column_names:
            dataset = dataset.map(lambda row: {"images": [str(base / p) for p in row["images"]]})
            dataset = dataset.cast_column("images", datasets.Sequence(datasets.Image()))
        elif "image" in dataset.column_names:
            dataset = dataset.map(lambda row: {"image": str(base / row["image"])})
            dataset = dataset.cast_column("image", datasets.Image())
    return dataset


def format_counts(meta: dict[str, Any]) -> str:
    """One line per bucket: available in the run vs kept in the file."""
    lines = [f"{meta['rows']} rows ({meta['variant']}) -> {meta['file']}",
             f"{'bucket':<8}{'run':>8}{'kept':>8}"]
    for bucket in BUCKETS:
        lines.append(f"{bucket:<8}{meta['buckets_available'][bucket]:>8}"
                     f"{meta['buckets_selected'][bucket]:>8}")
    return "\n".join(lines)
