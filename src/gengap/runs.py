"""Resumable runs: one module for claiming a directory, locking it, writing parts, merging.

Every long job (difficulty, eval, train, the study, the cold start) is built to be killed at
any moment and rerun with the same arguments:

- `RunDir.claim` writes ``DIR/<kind>.json`` (the settings that decide the result and their
  fingerprint) or checks that the one there matches. A directory holding *results* of other
  settings is refused with the list of differences; one that holds settings but no results yet
  (a run that failed before its first result, e.g. on a bad model path) is simply re-claimed.
- `RunDir.lock` holds an flock, so two processes never fill the same directory (the kernel
  drops it when the holder dies: no stale lock after kill -9).
- `PartStore` writes results as numbered part files, each atomically (temporary file + rename),
  and reads back which keys are done, so a rerun skips them.
- `atomic_dir` builds a directory aside and renames it into place, so a directory that later
  commands trust (a final model, a cold-started checkpoint) appears only when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.io import atomic_open, dumps, read_jsonl, write_json


def fingerprint(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able mapping."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every top-level key that differs."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


class RunDir:
    """A directory owned by one resumable run of `kind`, decided by `config`."""

    def __init__(self, path: str | Path, kind: str, config: Mapping[str, Any], *,
                 filename: str | None = None):
        self.path = Path(path)
        self.kind = kind
        self.config = dict(config)
        self.fingerprint = fingerprint(self.config)
        self.filename = filename or f"{kind}.json"

    @property
    def config_file(self) -> Path:
        return self.path / self.filename

    def stored(self) -> dict[str, Any] | None:
        """The claim already in the directory (None if there is none)."""
        if not self.config_file.is_file():
            return None
        try:
            return json.loads(self.config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.config_file.name} is unreadable ({exc})",
                             where=str(self.config_file),
                             hint="delete the directory to start the run again") from None

    def claim(self, *, has_results: Callable[[], bool] | bool = True,
              extra: Mapping[str, Any] | None = None) -> None:
        """Create the claim, or check that the directory holds a run of the same settings.

        `has_results` says whether the directory already holds results; without results a
        claim of other settings replaces the old one instead of being refused.
        """
        self._check_writable()
        content = {"fingerprint": self.fingerprint, **(extra or {}), "config": self.config}
        if not self.config_file.exists():
            # Hard-link a temporary file into place: link fails if another process got there
            # first, so two processes never both believe they created the run.
            tmp = self.path / f".{self.config_file.name}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(content, indent=2, default=str) + "\n")
            try:
                os.link(tmp, self.config_file)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        existing = self.stored() or {}
        same = existing.get("fingerprint") == self.fingerprint and all(
            existing.get(k) == v for k, v in (extra or {}).items())
        if same:
            return
        results = has_results() if callable(has_results) else has_results
        if not results:
            write_json(self.config_file, content)
            return
        diffs = differences(existing.get("config", {}), self.config)
        diffs += [f"{k}: {existing.get(k)!r} -> {v!r}" for k, v in (extra or {}).items()
                  if existing.get(k) != v]
        raise InputError(
            f"{self.path} holds a {self.kind} run with different settings ("
            + "; ".join(diffs) + ")",
            hint="rerun with the original settings to resume, or choose a new --out directory",
        )

    def _check_writable(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} exists and is not a directory",
                             hint="choose another --out path")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the run directory: {exc.strerror}",
                             where=str(self.path), hint="choose a writable --out path") from None
        if not os.access(self.path, os.W_OK):
            raise InputError("the run directory is not writable", where=str(self.path),
                             hint="choose a writable --out path")

    @contextlib.contextmanager
    def lock(self, subdir: str | Path | None = None) -> Iterator[None]:
        """Hold an exclusive flock on DIR (or DIR/subdir) while the block runs."""
        directory = self.path / subdir if subdir else self.path
        with exclusive(directory, what=f"this {self.kind} run"):
            yield


@contextlib.contextmanager
def exclusive(directory: str | Path, *, what: str = "this run") -> Iterator[None]:
    """An advisory flock on `directory` (an `InputError` if another process holds it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another process is writing {what} right now",
                             where=str(directory),
                             hint="wait for it to finish, or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PartStore:
    """Numbered part files (``part-00012.jsonl`` / ``.parquet``), each written atomically.

    `write_part` takes the records of one finished chunk; `records` reads every part back in
    order; `done` collects one key per record. Stale temporaries of a killed writer are removed
    on open.
    """

    def __init__(self, directory: str | Path, fmt: str = "jsonl", schema: Any = None):
        if fmt not in ("jsonl", "parquet"):
            raise InputError(f"unknown part format {fmt!r}", hint="parquet or jsonl")
        self.dir, self.fmt, self.schema = Path(directory), fmt, schema
        if self.dir.is_dir():
            for tmp in self.dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    @property
    def suffix(self) -> str:
        return f".{self.fmt}"

    def files(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(self.dir.glob(f"part-*{self.suffix}"))

    def write_part(self, records: list[dict[str, Any]]) -> Path:
        """Write one chunk's records as the next part file (atomically)."""
        number = 1 + max((int(p.stem.split("-")[1]) for p in self.files()), default=-1)
        path = self.dir / f"part-{number:05d}{self.suffix}"
        write_records(path, records, self.schema)
        return path

    def records(self) -> Iterator[dict[str, Any]]:
        for part in self.files():
            yield from read_records(part)

    def done(self, key: Callable[[dict[str, Any]], Any]) -> set[Any]:
        return {key(r) for r in self.records()}


def write_records(path: Path, records: Iterable[dict[str, Any]], schema: Any = None) -> None:
    """Atomically write records as Parquet (with `schema`) or JSONL, by the file's suffix."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(list(records), schema=schema)
        with atomic_open(path, "wb") as f:
            pq.write_table(table, f)
    else:
        with atomic_open(path) as f:
            for record in records:
                f.write(dumps(record) + "\n")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a file written by `write_records`; a corrupt part is an `InputError` naming it."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        return [row for _, row in read_jsonl(path)]
    except InputError as exc:
        raise InputError(exc.message, where=exc.where or str(path),
                         hint="the file is damaged: delete it and rerun to redo that part"
                         ) from None
    except Exception as exc:  # pyarrow raises its own error types on a damaged file
        raise InputError(f"cannot read {path.name}: {exc}", where=str(path),
                         hint="the file is damaged: delete it and rerun to redo that part"
                         ) from None


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory aside and rename it to `path` only when the block succeeds.

    A crash leaves `path` as it was (absent, or the previous complete version) and no
    half-written directory where later commands would trust it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(parent: str | Path, name: str) -> None:
    """Remove temporaries that a killed `atomic_dir` for `parent/name` left behind."""
    for tmp in Path(parent).glob(f".{name}.*"):
        if tmp.is_dir() and (".tmp-" in tmp.name or ".old-" in tmp.name):
            shutil.rmtree(tmp, ignore_errors=True)
