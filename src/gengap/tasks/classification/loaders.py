"""Real classification data in the layouts people have, as (image source, class name) items.

- **Image folder per class** (ImageNet, ImageNet-R and ImageNet-A ship so): ``root/<wnid>/*.JPEG``;
  folder names are WordNet ids (``n01443537``) and file names are taken as they are
  (ImageNet-A's contain spaces).
- **A mapping file** from folder ids to answer names: ``LOC_synset_mapping.txt`` lines
  (``n01440764 tench, Tinca tinca``), a two-column TSV / CSV, a JSON object
  ``{"n01440764": "tench"}``, or ImageNet's ``imagenet_class_index.json``
  (``{"0": ["n01440764", "tench"]}``).
- **The study's class rule** (`single_word_name`): a class qualifies when its synset entry is
  exactly one name with no space (hyphens and apostrophes allowed); case is kept.
- **HF datasets** with an image column and a label column (`ClassLabel` names are the answers;
  string labels are taken as they are): a directory written by ``save_to_disk``, or Parquet /
  Arrow files. Read with `datasets` offline; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.images import image_folder


@dataclass(frozen=True)
class Item:
    """One labelled picture: where its image is (path, or a row of an HF dataset)."""

    image: str  # a file path, or the HF dataset spec (``path`` or ``path#split``)
    folder: str  # the class id as the source names it (WordNet id, ClassLabel name, ...)
    label: str  # the answer name
    row: int = -1  # the row of an HF dataset (-1 for files)


def synset_names(entry: str) -> list[str]:
    """The names of one synset entry: ``"tench, Tinca tinca"`` -> ``["tench", "Tinca tinca"]``."""
    return [n.strip() for n in entry.split(",") if n.strip()]


def single_word_name(entry: str) -> str | None:
    """The study's class rule: the entry's one name if it is a single word (case kept), else None.

    ``"Chihuahua"`` -> ``"Chihuahua"``; ``"Shih-Tzu"`` and ``"jack-o'-lantern"`` qualify;
    ``"tench, Tinca tinca"`` (two names) and ``"sea lion"`` (a space) do not.
    """
    names = synset_names(entry)
    if len(names) != 1 or any(ch.isspace() for ch in names[0]):
        return None
    return names[0]


def read_mapping(path: str | Path) -> dict[str, str]:
    """Folder id -> synset entry (the full entry; apply `single_word_name` or take its first name).

    Formats: ``LOC_synset_mapping.txt`` (``<id> <entry>`` per line), TSV / CSV with two columns
    (a header row ``id,name`` or similar is skipped when its first cell is not an id found
    elsewhere), a JSON object id -> name, or ``imagenet_class_index.json``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such mapping file: {path}", where="task option mapping",
                         hint="a file of lines '<folder id> <class name>'")
    text = path.read_text(encoding="utf-8")
    out: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"bad JSON: {exc}", where=str(path)) from None
        if not isinstance(data, Mapping):
            raise InputError("a JSON mapping must be an object", where=str(path),
                             hint='{"n01440764": "tench", ...}')
        for key, value in data.items():
            if isinstance(value, list) and len(value) == 2:  # imagenet_class_index.json
                out[str(value[0])] = str(value[1]).replace("_", " ")
            elif isinstance(value, str):
                out[str(key)] = value
            else:
                raise InputError(f"entry {key!r} is neither a name nor [id, name]",
                                 where=str(path))
    elif path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r]
        for i, row in enumerate(rows):
            if len(row) < 2:
                raise InputError(f"line {i + 1} has {len(row)} column(s), expected 2",
                                 where=str(path))
            out[row[0].strip()] = (delimiter.join(row[1:]) if delimiter == "\t"
                                   else ",".join(row[1:])).strip()
        first = rows[0][0].strip().lower() if rows else ""
        if first in ("id", "wnid", "folder", "synset", "class", "label"):
            out.pop(rows[0][0].strip(), None)
    else:
        for i, raw in enumerate(text.splitlines()):
            raw = raw.strip()
            if not raw or raw.startswith("#"):
                continue
            wnid, _, entry = raw.partition(" ")
            if not entry.strip():
                raise InputError(f"line {i + 1} has no class name: {raw!r}", where=str(path),
                                 hint="lines are '<folder id> <class name>'")
            out[wnid] = entry.strip()
    if not out:
        raise InputError("the mapping file holds no classes", where=str(path))
    return out


def answer_names(mapping: Mapping[str, str], rule: str) -> dict[str, str]:
    """Folder id -> answer name under a class rule.

    ``single-word``: the study's rule (classes whose entry is not one single word are dropped);
    ``first``: the entry's first name, as it is; ``entry``: the whole entry text.
    """
    if rule == "single-word":
        return {k: n for k, v in mapping.items() if (n := single_word_name(v)) is not None}
    if rule == "first":
        return {k: synset_names(v)[0] for k, v in mapping.items() if synset_names(v)}
    if rule == "entry":
        return dict(mapping)
    raise InputError(f"unknown class rule {rule!r}", where="task option class_rule",
                     hint="single-word, first or entry")


def folder_items(root: str | Path, names: Mapping[str, str] | None) -> list[Item]:
    """Every image of an image-folder tree whose class folder has an answer name.

    With `names` None the folder names are the answers; otherwise folders missing from
    `names` (classes the rule dropped) are skipped.
    """
    items = []
    for path, folder in image_folder(root):
        if names is None:
            items.append(Item(str(path), folder, folder))
        elif folder in names:
            items.append(Item(str(path), folder, names[folder]))
    if not items:
        raise InputError(f"no image under {root} belongs to a class the mapping and rule keep",
                         hint="check the mapping file's ids against the folder names, or use "
                              "class_rule=first")
    return items


def _load_hf(path: str | Path, split: str | None) -> Any:
    import datasets

    path = Path(path)
    if path.is_dir() and ((path / "dataset_info.json").is_file()
                          or (path / "dataset_dict.json").is_file()):
        data = datasets.load_from_disk(str(path))
    elif path.is_file() and path.suffix in (".parquet", ".arrow"):
        kind = "parquet" if path.suffix == ".parquet" else "arrow"
        data = datasets.load_dataset(kind, data_files=str(path), split="train")
    else:
        raise InputError(f"{path} is neither a saved HF dataset nor a Parquet / Arrow file",
                         hint="save it with Dataset.save_to_disk, or give a .parquet file")
    if isinstance(data, datasets.DatasetDict):
        if split is None or split not in data:
            raise InputError(f"{path} holds splits {', '.join(data)}",
                             hint="name one with path#split")
        data = data[split]
    return data


def hf_items(spec: str, image_column: str = "image", label_column: str = "label",
             names: Mapping[str, str] | None = None) -> tuple[list[Item], Any]:
    """Items of an HF dataset ``path`` or ``path#split``, and the dataset (for the images).

    The label column's `ClassLabel` names are the answers (or, with `names`, the ids they map
    to); a string column is taken as it is.
    """
    import datasets

    path, _, split = spec.partition("#")
    data = _load_hf(path, split or None)
    for column in (image_column, label_column):
        if column not in data.column_names:
            raise InputError(f"{spec} has no column {column!r}",
                             hint=f"columns: {', '.join(data.column_names)}; set "
                                  "image_column / label_column")
    feature = data.features[label_column]
    labels = data[label_column]
    items = []
    for row, value in enumerate(labels):
        folder = feature.int2str(value) if isinstance(feature, datasets.ClassLabel) else str(value)
        if names is None:
            label = folder
        elif folder in names:
            label = names[folder]
        else:
            continue
        items.append(Item(spec, folder, label, row))
    if not items:
        raise InputError(f"no row of {spec} belongs to a class the mapping and rule keep")
    return items, data.cast_column(image_column, datasets.Image(decode=False))
