"""`gengap data`: any task's split as JSONL rows, images as PNG files beside them.

Every task writes the same row contract: the task's own row (`Task.row`: ``id``, ``task``,
``split``, ``index``, the task's fields, ``answer``), plus ``prompt`` (the chat messages of
the first turn) and ``sft_target`` (the SFT completion). Image tasks add ``images``: PNG paths
relative to the JSONL, in the order of the prompt's image parts. `gengap score` and
`Task.sample_from_row` read these rows back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gengap.errors import InputError
from gengap.io import atomic_open, dumps
from gengap.runs import atomic_dir, clean_stale


def sample_row(task: Any, sample: Any) -> dict[str, Any]:
    """The row of one sample without its images."""
    return {**task.row(sample), "prompt": task.messages(sample),
            "sft_target": task.target(sample)}


def export_split(task: Any, split: str, n: int | None, seed: int, out: str | Path,
                 *, progress: bool = True) -> int:
    """Write samples 0..n-1 of `split` to `out` (JSONL); returns the number of rows.

    The JSONL and its image folder (``<stem>_images/``) appear only when every row and image
    is written: an interrupted export leaves the previous files (or none), never a partial set.
    """
    out = Path(out)
    if out.suffix != ".jsonl":
        raise InputError(f"output must be a .jsonl file, got {out}", where="--out",
                         hint="e.g. --out train.jsonl")
    if out.is_dir():
        raise InputError(f"{out} is a directory", where="--out", hint="name a .jsonl file")
    count = task.count(split, n)
    image_dir = out.parent / f"{out.stem}_images"
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent, image_dir.name)
    written = 0
    # Images first (inner block), then the JSONL that points at them.
    with atomic_open(out) as f, atomic_dir(image_dir) as tmp_images:
        for index in tqdm(range(count), desc=f"{task.name} {split}", unit="sample",
                          disable=not progress or count < 2000, leave=False):
            sample = task.sample(split, index, seed)
            row = sample_row(task, sample)
            images = task.images(sample)
            if images:
                names = []
                for j, image in enumerate(images):
                    name = f"{split}-{seed}-{index:06d}" + (f"-{j}" if len(images) > 1 else "")
                    image.save(tmp_images / f"{name}.png")
                    names.append(f"{image_dir.name}/{name}.png")
                row["images"] = names
            f.write(dumps(row) + "\n")
            written += 1
    if not any(image_dir.iterdir()):
        image_dir.rmdir()  # text tasks: no empty folder beside the JSONL
    return written
