"""Reading a user's data: JSONL, Parquet, a saved HF `datasets` directory, an image folder.

Every format becomes one `Table`: its column names, its rows as plain dicts (image cells kept
as references -- a path, or a ``{"bytes", "path"}`` dict as `datasets` stores images -- and
decoded only when a sample's images are asked for), where each row came from, which "part" it
belongs to (a file name or a `DatasetDict` key, for data split by files), and the files read
(for the data fingerprint).

Layouts of `path`:

- ``data.jsonl`` / ``data.parquet``: one file (splits from a split column);
- a directory of ``*.jsonl`` / ``*.parquet`` files: each file's stem is a part (``train.jsonl``
  -> part ``train``);
- a directory written by `datasets.Dataset.save_to_disk` or `DatasetDict.save_to_disk`
  (`datasets.load_from_disk`; a `DatasetDict`'s keys are parts);
- an image folder: ``root/<class>/<image>`` (answer = the class folder's name), or
  ``root/<part>/<class>/<image>`` when ``root/<train value>/`` holds class folders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.images import IMAGE_SUFFIXES, image_folder
from gengap.io import read_jsonl

FORMATS = ("auto", "jsonl", "parquet", "hf", "imagefolder")
DATA_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
PART = "__part__"  # the row key holding the file / DatasetDict part a row came from


@dataclass
class Table:
    """A user's data, loaded: columns, rows, where each row is from, and the files read."""

    format: str
    root: Path  # image paths in the data are relative to this directory
    columns: list[str]
    rows: list[dict[str, Any]]
    where: list[str]  # "file:line" or "file#row" per row, for messages
    files: list[Path] = field(default_factory=list)
    parts: bool = False  # rows carry a PART (files, DatasetDict keys or split folders)

    def fingerprint(self) -> str:
        """A sha256 of every data file's name (relative to the root) and bytes."""
        digest = hashlib.sha256()
        base = self.root if self.root.is_dir() else self.root.parent
        for path in sorted(self.files):
            try:
                name = str(path.relative_to(base))
            except ValueError:
                name = path.name
            digest.update(name.encode() + b"\0")
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()[:16]


def detect_format(path: Path) -> str:
    """The format of `path` (`FORMATS` without auto), or an `InputError` saying what it found."""
    if not path.exists():
        raise InputError(f"no such file or directory: {path}", where="task option path",
                         hint="give the path of a .jsonl / .parquet file, a saved `datasets` "
                              "directory, or an image folder")
    if path.is_file():
        kind = DATA_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise InputError(f"cannot tell the format of {path.name}", where="task option path",
                             hint="use .jsonl or .parquet, or pass -O format=jsonl|parquet")
        return kind
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return "hf"
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES]
    if files:
        kinds = {DATA_SUFFIXES[p.suffix.lower()] for p in files}
        if len(kinds) > 1:
            raise InputError(f"{path} mixes JSONL and Parquet files", where="task option path",
                             hint="keep one format per directory")
        return kinds.pop()
    if any(p.is_dir() for p in path.iterdir()):
        return "imagefolder"
    raise InputError(f"{path} holds no data files, saved dataset or class folders",
                     where="task option path",
                     hint="a directory needs *.jsonl / *.parquet files, a `save_to_disk` "
                          "dataset, or one subfolder per class of images")


def load_table(path: str | Path, fmt: str = "auto", *, train_part: str = "train") -> Table:
    """Load `path` in format `fmt` ("auto": `detect_format`)."""
    path = Path(path)
    if fmt == "auto" or not path.exists():
        detected = detect_format(path)  # also the message for a missing path
    kind = detected if fmt == "auto" else fmt
    loader = {"jsonl": _jsonl, "parquet": _parquet, "hf": _hf, "imagefolder": _imagefolder}
    if kind not in loader:
        raise InputError(f"unknown format {kind!r}", hint=f"one of {', '.join(FORMATS)}")
    table = loader[kind](path, train_part) if kind == "imagefolder" else loader[kind](path)
    if not table.rows:
        raise InputError(f"no rows in {path}", where="task option path",
                         hint="the data is empty")
    return table


def _data_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"no {'/'.join(suffixes)} files in {path}", where="task option path")
    return files


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(k for k in row if k != PART))
    return list(seen)


def _jsonl(path: Path) -> Table:
    files = _data_files(path, (".jsonl", ".json"))
    rows, where = [], []
    for file in files:
        for number, obj in read_jsonl(file):  # bad JSON / non-UTF-8: an InputError with line
            if len(files) > 1:
                obj[PART] = file.stem
            rows.append(obj)
            where.append(f"{file}:{number}")
    root = path if path.is_dir() else path.parent
    return Table("jsonl", root, _columns(rows), rows, where, files, parts=len(files) > 1)


def _parquet(path: Path) -> Table:
    # pyarrow reads the file directly: `datasets.Dataset.from_parquet` would also write an
    # Arrow copy into the HF cache, a side effect nobody asked for.
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _data_files(path, (".parquet",))
    rows, where = [], []
    for file in files:
        try:
            table = pq.read_table(file)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read Parquet: {exc}", where=str(file),
                             hint="the file is damaged or not Parquet") from None
        for i, row in enumerate(table.to_pylist()):
            if len(files) > 1:
                row[PART] = file.stem
            rows.append(row)
            where.append(f"{file}#row {i}")
    root = path if path.is_dir() else path.parent
    return Table("parquet", root, _columns(rows), rows, where, files, parts=len(files) > 1)


def _hf(path: Path) -> Table:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise InputError(f"cannot load the saved dataset: {exc}", where=str(path),
                         hint="give a directory written by Dataset.save_to_disk") from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"": loaded}
    rows, where = [], []
    for name, ds in parts.items():
        # The Arrow table as stored: images stay encoded ({"bytes", "path"}) until a sample's
        # images are asked for, and nothing is written (a `cast_column` would put a cache file
        # into the user's dataset directory).
        table = ds.with_format("arrow")[:]
        labels = {column: feature for column, feature in ds.features.items()
                  if isinstance(feature, datasets.ClassLabel)}
        for i, row in enumerate(table.to_pylist()):
            for column, feature in labels.items():  # class labels as their names
                if isinstance(row.get(column), int) and row[column] >= 0:
                    row[column] = feature.int2str(row[column])
            if name:
                row[PART] = name
            rows.append(row)
            where.append(f"{path}{'/' + name if name else ''}#row {i}")
    # `cache-*.arrow` files are what `datasets` operations left beside the data, not data.
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not (p.name.startswith("cache-") and p.suffix == ".arrow"))
    return Table("hf", path, _columns(rows), rows, where, files, parts=bool(next(iter(parts))))


def _image_rows(root: Path, part: str | None) -> Iterator[tuple[dict[str, Any], str, Path]]:
    for image, label in image_folder(root):
        row: dict[str, Any] = {"image": str(image), "answer": label,
                               "id": str(image.relative_to(root.parent if part else root))}
        if part:
            row[PART] = part
        yield row, str(image), image


def _imagefolder(path: Path, train_part: str) -> Table:
    split_layout = (path / train_part).is_dir() and any(
        p.is_dir() for p in (path / train_part).iterdir())
    if split_layout:
        # root/<part>/<class>/<image>: every top-level folder is a part.
        if any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in
               (path / train_part).iterdir()):
            raise InputError(f"{path / train_part} holds images directly",
                             hint="with split folders, images go in <split>/<class>/")
        roots = [(p, p.name) for p in sorted(path.iterdir())
                 if p.is_dir() and not p.name.startswith(".")]
    else:
        roots = [(path, None)]
    rows, where, files = [], [], []
    for root, part in roots:
        for row, location, image in _image_rows(root, part):
            rows.append(row)
            where.append(location)
            files.append(image)
    return Table("imagefolder", path, ["id", "image", "answer"], rows, where, files,
                 parts=split_layout)
