"""Small file helpers shared by every command: JSONL in and out, atomic writes."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from gengap.errors import InputError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Files gengap writes get the mode any other program's would (mkstemp makes them 0600).
FILE_MODE = 0o666 & ~_umask()


def jsonable(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, so the JSON written is valid.

    (Python's json writes NaN / Infinity, which no JSON parser outside Python reads.)
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """One line of strict JSON (non-finite floats become null)."""
    return json.dumps(jsonable(obj), ensure_ascii=False, allow_nan=False, default=str)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; bad JSON is an `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}", hint="check the path")
    with path.open("rb") as f:
        for number, line in _lines(f, path):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not valid JSON ({exc.msg} at column {exc.colno})",
                    where=f"{path}:{number}",
                    hint="each line must be one JSON object",
                ) from None
            if not isinstance(obj, dict):
                raise InputError(
                    f"expected a JSON object, got {type(obj).__name__}", where=f"{path}:{number}"
                )
            yield number, obj


def _lines(f: IO[bytes], path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) per line, decoded line by line so a bad byte names its own line
    (a text-mode file decodes in blocks, and its error can point at an earlier line)."""
    for number, raw in enumerate(f, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start} of line {number})",
                             where=f"{path}:{number}",
                             hint="save the file as UTF-8 JSON lines") from None


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path` and rename it into place only on success.

    A crash or an error half-way leaves any previous file at `path` untouched and no partial
    file behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.fchmod(fd, FILE_MODE)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write `rows` as JSONL; returns the number of rows written."""
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(dumps(row) + "\n")
            n += 1
    return n


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    with atomic_open(path) as f:
        json.dump(jsonable(obj), f, indent=2, ensure_ascii=False, default=str, allow_nan=False)
        f.write("\n")
