"""Referring-expression data in the layouts people have, read into one record shape.

Every loader returns `Record`s: an image (a path, or a ``{"bytes", "path"}`` dict as parquet
files store images), one expression, the target box as **xyxy in pixels of the original image**,
the image size when the file gives it, the source's split name and an id. Formats (`FORMATS`):

- ``refcoco``: the original `refer` layout, a directory with ``refs(unc).p`` (a Python 2
  pickle: a list of dicts ref_id, ann_id, image_id, split, sentences[].sent) and
  ``instances.json`` (COCO; bbox **xywh**). The pickle is read by `safe_unpickle`, which
  refuses every global (the refs hold only dicts, lists, strings and numbers), never by
  `pickle.load`. One record per sentence, as RefCOCO is evaluated.
- ``refcoco-parquet``: the mirror with ``ref_id, image_id, split, sentences, bbox, image_path``
  (its box comes from ``raw_anns``, the COCO annotation as JSON, xywh, when present; else
  ``bbox``, which that mirror writes as xyxy). Its split named ``test`` is testA.
- ``lmms-parquet``: the mirror with ``question_id, image, question, answer (list of
  expressions), bbox (xywh), file_name`` (val / test / testA / testB only).
- ``refl4``: Ref-L4's parquet (``id, file_name, bbox (xywh), caption, width, height,
  ori_category_id``); images under ``image_root``.
- ``lisa``: LISA / ReasonSeg, one labelme-style JSON per image (``text``: instructions,
  ``shapes``: polygons labelled ``target`` or ``ignore``) beside its ``.jpg``; the box is the
  bounding box of all target polygons. One record per instruction.
- ``vlmr1``: VLM-R1 / DC-SFT JSON or JSONL records (``problem``, ``solution``, ``image``);
  ``solution`` is ``"[x1, y1, x2, y2]"`` (a string or a list) in original pixels.

`load(path, fmt="auto")` picks the format from what is at `path`.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.boxes import Box, parse_box, xywh_to_xyxy
from gengap.errors import InputError
from gengap.tasks.grounding.prompts import expression_of

FORMATS = ("auto", "refcoco", "refcoco-parquet", "lmms-parquet", "refl4", "lisa", "vlmr1")
_SPLIT_NAMES = ("train", "val", "validation", "test", "testA", "testB")
REFS_FILES = ("refs(unc).p", "refs(umd).p", "refs(google).p", "refs(berkeley).p")


@dataclass(frozen=True)
class Record:
    """One referring expression: image, expression, box (xyxy, original pixels), metadata."""

    id: str
    image: Any  # a path string, or {"bytes": ..., "path": ...}
    expression: str
    box: Box
    split: str = ""
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: no class, no function, nothing importable."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids refused")


def safe_unpickle(data: bytes, *, where: str | None = None) -> Any:
    """Plain data (dicts, lists, str, numbers) from a pickle; anything else is an `InputError`.

    Python 2 pickles (RefCOCO's) are read with ``encoding="latin1"``.
    """
    try:
        return _NoGlobals(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError) as exc:
        raise InputError(f"refused to read the pickle: {exc}", where=where,
                         hint="a refs file holds only plain data; this one asks to import "
                              "or run something, or is damaged") from None


def _as_box(value: Any, fmt: str, where: str) -> Box:
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"bad box {value!r}", where=where, hint="a box is 4 numbers") from None
    if len(box) != 4:
        raise InputError(f"a box needs 4 numbers, got {len(box)}", where=where)
    return xywh_to_xyxy(box) if fmt == "xywh" else box  # type: ignore[arg-type]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read JSON: {exc}", where=str(path)) from None


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"no .parquet files under {path}")
    rows = []
    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise InputError(f"cannot read parquet: {exc}", where=str(file)) from None
        # Hub parquet files are named <split>-00000-of-0000N.parquet.
        split = file.name.split("-")[0].split(".")[0]
        split = split if split in _SPLIT_NAMES else ""
        for row in table.to_pylist():
            row.setdefault("_file_split", split)
            rows.append(row)
    return rows


def _image_path(root: Path | None, name: str) -> str:
    return str((root / name) if root is not None else Path(name))


# ------------------------------------------------------------------------------------------


def load_refcoco(root: Path, image_root: Path | None = None) -> list[Record]:
    """The `refer` layout: refs(*).p + instances.json in `root` (images: `image_root`)."""
    refs_file = next((root / n for n in REFS_FILES if (root / n).is_file()), None)
    if refs_file is None:
        raise InputError(f"no refs pickle in {root}", hint=f"expected one of {REFS_FILES}")
    refs = safe_unpickle(refs_file.read_bytes(), where=str(refs_file))
    instances = _read_json(root / "instances.json")
    try:
        anns = {a["id"]: a for a in instances["annotations"]}
        images = {i["id"]: i for i in instances["images"]}
    except (KeyError, TypeError):
        raise InputError("instances.json lacks COCO annotations / images",
                         where=str(root / "instances.json")) from None
    out = []
    for ref in refs if isinstance(refs, list) else []:
        where = f"{refs_file} ref {ref.get('ref_id')}"
        ann = anns.get(ref.get("ann_id"))
        info = images.get(ref.get("image_id"))
        if ann is None or info is None:
            raise InputError("ref points at an annotation or image instances.json lacks",
                             where=where)
        box = _as_box(ann["bbox"], "xywh", where)
        for k, sent in enumerate(ref.get("sentences", [])):
            out.append(Record(f"refcoco/{ref['ref_id']}/{k}",
                              _image_path(image_root, info["file_name"]), str(sent["sent"]),
                              box, str(ref.get("split", "")), info.get("width"),
                              info.get("height"), {"category_id": ref.get("category_id")}))
    if not out:
        raise InputError(f"no referring expressions in {refs_file}")
    return out


def _sentences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [s["sent"] if isinstance(s, Mapping) else str(s) for s in value or []]


def load_refcoco_parquet(path: Path, image_root: Path | None = None) -> list[Record]:
    """The ref_id / sentences / bbox / image_path parquet mirror (split ``test`` = testA)."""
    out = []
    for row in _parquet_rows(path):
        where = f"{path} ref {row.get('ref_id')}"
        raw = row.get("raw_anns")
        if raw:
            ann = json.loads(raw) if isinstance(raw, str) else raw
            box = _as_box(ann["bbox"], "xywh", where)
        else:
            box = _as_box(row["bbox"], "xyxy", where)
        info = json.loads(row["raw_image_info"]) if row.get("raw_image_info") else {}
        split = str(row.get("split") or row["_file_split"])
        split = {"test": "testA", "validation": "val"}.get(split, split)
        for k, sent in enumerate(_sentences(row.get("sentences") or row.get("captions"))):
            out.append(Record(f"refcoco/{row['ref_id']}/{k}",
                              _image_path(image_root, row["image_path"]), sent, box, split,
                              info.get("width"), info.get("height")))
    return out


def load_lmms_parquet(path: Path, image_root: Path | None = None) -> list[Record]:
    """The question_id / image / answer / bbox (xywh) parquet mirror."""
    out = []
    for row in _parquet_rows(path):
        where = f"{path} question {row.get('question_id')}"
        image = row.get("image") or _image_path(image_root, row["file_name"])
        box = _as_box(row["bbox"], "xywh", where)
        answers = row.get("answer")
        for k, sent in enumerate(answers if isinstance(answers, list) else [answers]):
            out.append(Record(f"refcoco/{row['question_id']}/{k}", image, str(sent), box,
                              str(row["_file_split"])))
    return out


def load_refl4(path: Path, image_root: Path | None = None) -> list[Record]:
    """Ref-L4's parquet: id, file_name, bbox (xywh), caption, width, height."""
    root = image_root or (path.parent / "images" if path.is_file() else path / "images")
    out = []
    for row in _parquet_rows(path):
        box = _as_box(row["bbox"], "xywh", f"{path} id {row.get('id')}")
        out.append(Record(f"refl4/{row['id']}", _image_path(root, row["file_name"]),
                          str(row["caption"]), box, str(row["_file_split"]),
                          row.get("width"), row.get("height"),
                          {"category_id": row.get("ori_category_id")}))
    return out


def lisa_box(shapes: Iterable[Mapping[str, Any]], where: str) -> Box:
    """The bounding box (xyxy) of every polygon labelled ``target``."""
    points = [p for s in shapes if s.get("label") == "target" for p in s.get("points", [])]
    if not points:
        raise InputError("no 'target' polygon", where=where,
                         hint="LISA files label the target's polygons 'target'")
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def load_lisa(path: Path, image_root: Path | None = None) -> list[Record]:
    """LISA / ReasonSeg: one JSON per image (text, shapes) beside the image of the same stem."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    out = []
    for file in files:
        data = _read_json(file)
        if not isinstance(data, Mapping) or "shapes" not in data:
            raise InputError("not a LISA annotation (no 'shapes')", where=str(file))
        box = lisa_box(data["shapes"], str(file))
        folder = image_root or file.parent
        image = next((folder / (file.stem + s) for s in (".jpg", ".png", ".jpeg")
                      if (folder / (file.stem + s)).exists()), folder / (file.stem + ".jpg"))
        texts = data.get("text") or []
        for k, text in enumerate([texts] if isinstance(texts, str) else texts):
            out.append(Record(f"lisa/{file.stem}/{k}", str(image), str(text), box, "",
                              extra={"is_sentence": bool(data.get("is_sentence", False))}))
    if not out:
        raise InputError(f"no LISA annotations in {path}")
    return out


def load_vlmr1(path: Path, image_root: Path | None = None) -> list[Record]:
    """VLM-R1 / DC-SFT records: ``problem``, ``solution`` ("[x1, y1, x2, y2]"), ``image``."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise InputError(f"cannot read JSON: {exc}", where=str(path)) from None
    root = image_root or path.parent
    out = []
    for i, row in enumerate(data):
        where = f"{path} record {i}"
        missing = [k for k in ("problem", "solution", "image") if k not in row]
        if missing:
            raise InputError(f"missing {', '.join(missing)}", where=where,
                             hint="VLM-R1 records hold problem, solution and image")
        solution = row["solution"]
        box = parse_box(solution) if isinstance(solution, str) else _as_box(solution, "xyxy",
                                                                              where)
        if box is None:
            raise InputError(f"no [x1, y1, x2, y2] in solution {solution!r}", where=where)
        image = row["image"][0] if isinstance(row["image"], list) else row["image"]
        out.append(Record(str(row.get("id", f"vlmr1/{i}")), _image_path(root, image),
                          expression_of(str(row["problem"])), box,
                          str(row.get("split", ""))))
    return out


LOADERS = {"refcoco": load_refcoco, "refcoco-parquet": load_refcoco_parquet,
           "lmms-parquet": load_lmms_parquet, "refl4": load_refl4, "lisa": load_lisa,
           "vlmr1": load_vlmr1}


def detect(path: Path) -> str:
    """The format of what is at `path` (see the module docstring)."""
    if path.is_dir():
        if any((path / n).is_file() for n in REFS_FILES):
            return "refcoco"
        if any(path.rglob("*.parquet")):
            return detect(next(iter(sorted(path.rglob("*.parquet")))))
        if any(path.glob("*.json")):
            return "lisa"
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = set(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise InputError(f"cannot read parquet: {exc}", where=str(path)) from None
        if {"caption", "file_name", "bbox"} <= names:
            return "refl4"
        if "question_id" in names:
            return "lmms-parquet"
        if {"ref_id", "sentences"} <= names:
            return "refcoco-parquet"
    elif path.suffix in (".json", ".jsonl"):
        head = path.read_text(encoding="utf-8")[:4096]
        if '"shapes"' in head:
            return "lisa"
        if '"problem"' in head:
            return "vlmr1"
    raise InputError(f"cannot tell the format of {path}",
                     hint=f"pass a format: {', '.join(FORMATS[1:])}")


def load(path: str | Path, fmt: str = "auto", image_root: str | Path | None = None
         ) -> list[Record]:
    """Records from `path` in format `fmt` (``auto``: detected)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"no such data: {path}")
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    fmt = detect(path) if fmt == "auto" else fmt
    return LOADERS[fmt](path, Path(image_root).expanduser() if image_root else None)
