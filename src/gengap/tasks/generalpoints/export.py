"""Write a GeneralPoints split to disk: JSONL rows, PNG images beside them."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from gengap.errors import InputError
from gengap.io import write_jsonl
from gengap.tasks.generalpoints.task import GeneralPointsTask


def export_split(
    *,
    split: str,
    n: int,
    seed: int,
    out: str | Path,
    modality: str = "text",
    prompt_style: str = "paper",
    target: int = 24,
    image_size: int | None = None,
    hold_out_test_hands: bool = False,
) -> int:
    """Write samples 0..n-1 of `split` to `out` (JSONL); returns the number of rows.

    Rows: id, task, split, cards, suits, face_rule, target, modality, prompt (chat messages),
    answer (one oracle formula), and for images `image`, a PNG path relative to the JSONL.
    The JSONL appears atomically once every image is on disk.
    """
    out = Path(out)
    if out.suffix != ".jsonl":
        raise InputError(f"output must be a .jsonl file, got {out}", hint="e.g. --out train.jsonl")
    task = GeneralPointsTask(modality=modality, prompt_style=prompt_style, target=target,
                             image_size=image_size, hold_out_test_hands=hold_out_test_hands)
    task.split_variant(split)  # fail fast on a bad split/modality pair
    image_dir = out.parent / f"{out.stem}_images"
    if modality == "image":
        image_dir.mkdir(parents=True, exist_ok=True)

    def rows():
        for index in tqdm(range(n), desc=f"{split}", unit="hand", disable=n < 5000,
                          leave=False):
            sample = task.sample(split, index, seed)
            row = task.row(sample)
            row["prompt"] = task.messages(sample)
            if modality == "image":
                name = f"{split}-{seed}-{index:06d}.png"
                task.image(sample).save(image_dir / name)
                row["image"] = f"{image_dir.name}/{name}"
            yield row

    return write_jsonl(out, rows())
