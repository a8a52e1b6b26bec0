"""`--task dataset`: the user's own data behind the task contract (DC-SFT's workflow).

Splits (all finite; sizes in `gengap tasks --task dataset -O path=...`):

| split        | role       | rows                                                          |
|--------------|------------|---------------------------------------------------------------|
| warmup       | warmup     | a held-out slice of the train rows (the tiny model's cold     |
|              |            | start; DC-SFT cold-starts on 400 held-out samples)            |
| train        | train      | the other train rows                                          |
| validation   | validation | rows of the validation value (when the data has them)        |
| test         | test       | rows of the test value (data without splits: a hashed share)  |
| <value>      | ood        | rows of each OOD value, with its axis                         |

Split values come from the split column, else the data's own parts (file stems, `DatasetDict`
keys, split folders of an image folder), else a stable hash of each row's id holds out
`holdout` of the rows as test. The warmup slice takes rows class by class (round robin over the
answers, each class in hash order), so a classification cold start sees every class, as
DC-SFT's 4 per class. Sample ids are the id column's values, else ``h`` + a hash of the row;
modality is "image" when the data has an image column (or is an image folder).
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections import defaultdict
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from gengap.errors import InputError
from gengap.images import load_image, resize_longest
from gengap.tasks.base import Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.dataset.config import ROLE_SPLITS, SPLIT_NAME, DatasetConfig
from gengap.tasks.dataset.loaders import PART, Table, load_table

WARMUP_MAX = 400  # DC-SFT's cold start: 400 held-out samples


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# The tiny model's cold start on the warmup slice. A user's data has no known size or shape,
# so this is the default recipe's shape at a third of its length (a finite warmup slice
# cycles, and hundreds of epochs over 400 rows only memorise them); `coldstart_scale` scales
# it. Measured figures are in the package's report (docs/byo.md).
_COLDSTART = {
    "text": {"phases": [
        {"name": "pretrain", "steps": 200, "batch_size": 32, "learning_rate": 2e-3},
        {"name": "sft", "steps": 50, "batch_size": 32, "learning_rate": 3e-4},
    ], "eval_n": 100, "eval_k": 4},
    "image": {"phases": [
        {"name": "pretrain", "steps": 300, "batch_size": 32, "learning_rate": 1e-3,
         "vision_learning_rate": 3e-4},
        {"name": "sft", "steps": 100, "batch_size": 32, "learning_rate": 3e-4,
         "vision_learning_rate": 1e-4},
    ], "eval_n": 100, "eval_k": 4},
}


class DatasetTask(TaskBase):
    """Your own data: JSONL, Parquet, a saved HF dataset or an image folder, scored by name."""

    name = "dataset"
    description = ("Your own data (JSONL, Parquet, a saved HF dataset, an image folder) with "
                   "a scorer by name: exact, choice, math, iou, regex, module:function.")
    Config = DatasetConfig
    metric_docs: ClassVar[dict[str, str]] = {
        "parsed": "an answer could be read from the completion (choice, math, iou, regex)",
        "iou": "IoU of the predicted and the true box (iou scorer)",
        "timeout": "math-verify ran out of time on the answer (math scorer)",
    }

    def __init__(self, config: DatasetConfig | None = None, **options: Any):
        super().__init__(config, **options)
        c = self.config
        self.table: Table = load_table(c.path, c.format, train_part=c.train)
        self.columns = self._map_columns()
        self._check_rows()
        self._assign_splits()
        from gengap.scorers import get_scorer

        self.scorer = get_scorer(c.scorer, pattern=c.pattern, iou_threshold=c.iou_threshold,
                                 letters=c.letters or self._letters(),
                                 math_timeout=c.math_timeout)
        self.report_by = ("category",) if c.category_column else ()
        if c.scorer == "iou":
            self._check_boxes()

    def _check_boxes(self) -> None:
        """The iou scorer: every answer is a box ``[x1, y1, x2, y2]`` with x2 > x1, y2 > y1."""
        from gengap.boxes import is_valid, parse_box

        for i, where in enumerate(self.table.where):
            box = parse_box(self._answer(i))
            if box is None or not is_valid(box):
                raise InputError(f"answer {self._answer(i)[:60]!r} is not a box", where=where,
                                 hint="the iou scorer needs answers [x1, y1, x2, y2]")

    # -- columns ---------------------------------------------------------------------------
    def _map_columns(self) -> dict[str, str | None]:
        c, have = self.config, self.table.columns

        def pick(role: str, given: str | None, auto: tuple[str, ...], required: bool) -> str | None:
            if given is not None:
                if given not in have:
                    raise InputError(f"no column {given!r} in {c.path}",
                                     where=f"task option {role}_column",
                                     hint=f"columns there are: {', '.join(have)}")
                return given
            found = next((name for name in auto if name in have), None)
            if found is None and required:
                raise InputError(f"no {role} column in {c.path} (looked for "
                                 f"{', '.join(map(repr, auto))})",
                                 where=f"task option {role}_column",
                                 hint=f"columns there are: {', '.join(have)}; pass "
                                      f"-O {role}_column=NAME")
            return found

        image = pick("image", c.image_column, ("images", "image"), False)
        return {
            "id": pick("id", c.id_column, ("id",), False),
            "image": image,
            "prompt": pick("prompt", c.prompt_column, ("prompt", "question"), image is None),
            "answer": pick("answer", c.answer_column, ("answer", "label"), True),
            "split": None if self.table.parts else pick("split", c.split_column, ("split",),
                                                        False),
            "target": pick("target", c.target_column, (), False),
            "category": pick("category", c.category_column, (), False),
        }

    def _cell(self, i: int, role: str) -> Any:
        column = self.columns[role]
        return None if column is None else self.table.rows[i].get(column)

    def _check_rows(self) -> None:
        """Every row has an answer (and a prompt / images where the mapping needs them)."""
        for i, where in enumerate(self.table.where):
            for role in ("answer", "prompt", "target"):
                column = self.columns[role]
                if column is not None and self._cell(i, role) is None:
                    raise InputError(f"row has no {column!r}", where=where,
                                     hint=f"every row needs a {role}")
            prompt = self._cell(i, "prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise InputError(f"the prompt must be a string, got {type(prompt).__name__}",
                                 where=where, hint="put the question text in the column")
            if self.columns["image"] is not None and not self._image_cells(i):
                raise InputError(f"row has no image in {self.columns['image']!r}", where=where)

    def _image_cells(self, i: int) -> list[Any]:
        cell = self._cell(i, "image")
        if cell is None:
            return []
        return list(cell) if isinstance(cell, list | tuple) else [cell]

    # -- splits ----------------------------------------------------------------------------
    def _id(self, i: int) -> str:
        value = self._cell(i, "id")
        if value is not None:
            return str(value)
        row = {k: v for k, v in self.table.rows[i].items() if k != PART}
        return "h" + _hash(json.dumps(row, sort_keys=True, default=str))[:12]

    def _assign_splits(self) -> None:
        c, rows = self.config, self.table.rows
        ids, first = [], {}
        for i in range(len(rows)):
            uid = self._id(i)
            if uid in first:
                if self.columns["id"] is not None:
                    raise InputError(f"id {uid!r} occurs twice ({self.table.where[first[uid]]} "
                                     f"and here)", where=self.table.where[i],
                                     hint="ids must be unique")
                n = 2
                while f"{uid}~{n}" in first:  # an exact duplicate row keeps its own id
                    n += 1
                uid = f"{uid}~{n}"
            first[uid] = i
            ids.append(uid)
        self.ids = ids
        labels = self._labels()
        self._ood: list[str] = []
        groups: dict[str, list[int]] = defaultdict(list)
        if labels is None:
            if c.ood or c.validation:
                raise InputError("the data has no splits, so OOD / validation splits cannot "
                                 "be picked", where="task option ood/validation",
                                 hint="add a split column (or split files / folders)")
            for i, uid in enumerate(ids):
                held = int(_hash("holdout/" + uid), 16) / 16 ** 16 < c.holdout
                groups["test" if held else "train"].append(i)
        else:
            present = sorted({str(v) for v in labels})
            wanted = {"train": c.train, "test": c.test}
            validation = c.validation or ("validation" if "validation" in present else None)
            if validation:
                wanted["validation"] = validation
            for name, value in wanted.items():
                if value not in present:
                    raise InputError(f"no rows with split {value!r} in {c.path}",
                                     where=f"task option {name}",
                                     hint=f"split values there are: {', '.join(present)}")
            # Without `ood`, every other split value is an OOD test (its axis: its name).
            self._ood = list(c.ood) or [v for v in present if v not in wanted.values()]
            for value in self._ood:
                if not c.ood and (not SPLIT_NAME.match(value) or value in ROLE_SPLITS):
                    raise InputError(f"split value {value!r} cannot name an OOD split",
                                     where=f"{c.path}", hint="name the OOD splits with "
                                     "-O ood=VALUE:AXIS, or rename the value")
            for value in (e.partition(":")[0] for e in self._ood):
                if value not in present:
                    raise InputError(f"no rows with split {value!r} in {c.path}",
                                     where="task option ood",
                                     hint=f"split values there are: {', '.join(present)}")
                wanted[value] = value
            by_value = {v: k for k, v in wanted.items()}
            for i, label in enumerate(labels):
                if str(label) in by_value:
                    groups[by_value[str(label)]].append(i)
        order = (lambda idx: sorted(idx, key=lambda i: _hash("order/" + ids[i]))) \
            if c.shuffle else list
        train = groups["train"]
        warmup_n = (min(WARMUP_MAX, len(train) // 4) if c.warmup_size is None
                    else c.warmup_size)
        if warmup_n >= len(train):
            raise InputError(f"warmup_size {warmup_n} leaves no training rows "
                             f"(train has {len(train)})", where="task option warmup_size",
                             hint=f"pass warmup_size < {len(train)}, or 0 for no warmup split")
        warmup = self._warmup_rows(train, warmup_n)
        for entry in self._ood if c.warmup_ood else ():  # OOD rows the prior covers, untested
            value = entry.partition(":")[0]
            if c.warmup_ood >= len(groups[value]):
                raise InputError(f"warmup_ood {c.warmup_ood} leaves OOD split {value!r} empty "
                                 f"(it has {len(groups[value])} rows)",
                                 where="task option warmup_ood",
                                 hint=f"pass warmup_ood < {len(groups[value])}")
            moved = sorted(groups[value], key=lambda i: _hash("warmup/" + ids[i]))
            warmup += moved[: c.warmup_ood]
            groups[value] = moved[c.warmup_ood:] if c.shuffle else sorted(moved[c.warmup_ood:])
        held = set(warmup)
        splits: list[tuple[Split, list[int]]] = []
        if warmup:
            splits.append((Split("warmup", "warmup", len(warmup),
                                 description="held-out slice of train (tiny cold start)"),
                           order(warmup)))
        splits.append((Split("train", "train", description=f"split value {c.train!r}"
                             if labels is not None else "rows not held out"),
                       order([i for i in train if i not in held])))
        if "validation" in groups:
            splits.append((Split("validation", "validation"), order(groups["validation"])))
        splits.append((Split("test", "test", description=f"split value {c.test!r}"
                             if labels is not None else f"{c.holdout:.0%} held out by hash"),
                       order(groups["test"])))
        for entry in self._ood:
            value, _, axis = entry.partition(":")
            splits.append((Split(value, "ood", axis=axis or value,
                                 description=f"split value {value!r}"), order(groups[value])))
        self._rows: dict[str, list[int]] = {}
        self._splits: dict[str, Split] = {}
        for spec, indices in splits:
            if not indices:
                raise InputError(f"split {spec.name!r} is empty", where=f"{c.path}",
                                 hint="give it rows, or map another split value to it")
            self._rows[spec.name] = indices
            self._splits[spec.name] = Split(spec.name, spec.role, len(indices), spec.axis,
                                            spec.description)

    def _labels(self) -> list[Any] | None:
        if self.table.parts:
            return [row.get(PART) for row in self.table.rows]
        if self.columns["split"] is None:
            return None
        return [self._cell(i, "split") for i in range(len(self.table.rows))]

    def _warmup_rows(self, train: list[int], n: int) -> list[int]:
        """`n` train rows, round robin over the answers (each class in hash order)."""
        if n == 0:
            return []
        by_answer: dict[str, list[int]] = defaultdict(list)
        for i in train:
            by_answer[self._answer(i)].append(i)
        ranked = []
        for answer, members in by_answer.items():
            members.sort(key=lambda i: _hash("warmup/" + self.ids[i]))
            ranked += [(rank, _hash("class/" + answer), i) for rank, i in enumerate(members)]
        return [i for _, _, i in sorted(ranked)[:n]]

    @property
    def splits(self) -> dict[str, Split]:
        return dict(self._splits)

    @property
    def modality(self) -> str:
        return "image" if self.columns["image"] is not None else "text"

    @cached_property
    def max_new_tokens(self) -> int:  # type: ignore[override]
        """`max_new_tokens`, else twice the longest target in characters (32..1024)."""
        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        longest = max(len(self._target(i)) for i in range(len(self.table.rows)))
        return max(32, min(1024, 2 * longest))

    def data_fingerprint(self) -> str | None:
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        """The data files' hash, with the image files a JSONL / Parquet file points at."""
        referenced = {self._image_path(cell) for i in range(len(self.table.rows))
                      for cell in self._image_cells(i) if isinstance(cell, str)}
        extra = sorted(p for p in referenced if p.is_file() and p not in set(self.table.files))
        return Table(self.table.format, self.table.root, [], [], [],
                     [*self.table.files, *extra]).fingerprint()

    def _image_path(self, cell: str) -> Path:
        path = Path(cell)
        return path if path.is_absolute() else self.table.root / path  # relative to the data

    @property
    def coldstart_recipe(self) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """The cold-start recipe per modality, its steps times `coldstart_scale`."""
        scale = self.config.coldstart_scale
        out = {}
        for modality, recipe in _COLDSTART.items():
            phases = [{**p, "steps": max(1, round(p["steps"] * scale))}
                      for p in recipe["phases"]]
            out[modality] = {**recipe, "phases": phases}
        return out

    # -- samples ---------------------------------------------------------------------------
    def _answer(self, i: int) -> str:
        value = self._cell(i, "answer")
        return value if isinstance(value, str) else json.dumps(value)

    def _target(self, i: int) -> str:
        value = self._cell(i, "target")
        if value is None:
            return self._answer(i)
        return value if isinstance(value, str) else json.dumps(value)

    def _letters(self) -> str:
        """A up to the highest letter among the answers (choice scorer)."""
        from gengap.scorers import gold_letter

        if self.config.scorer != "choice":
            return "ABCDEFGHIJ"
        top = "A"
        for i, where in enumerate(self.table.where):
            letter = gold_letter(self._answer(i), string.ascii_uppercase)
            if letter is None:
                raise InputError(f"answer {self._answer(i)[:40]!r} is not a choice letter",
                                 where=where, hint="the choice scorer needs answers A, B, ...")
            top = max(top, letter)
        return string.ascii_uppercase[: string.ascii_uppercase.index(top) + 1]

    def _index(self, split: str, index: int) -> int:
        self.check_index(split, index)
        return self._rows[split][index]

    def sample(self, split: str, index: int, seed: int = 0) -> Sample:
        """Row `index` of `split` (the data is fixed: `seed` does not change it)."""
        i = self._index(split, index)
        prompt = self._cell(i, "prompt")
        text = prompt if prompt is not None else self.config.default_prompt
        if self.config.instruction:
            text = f"{text}\n{self.config.instruction}"
        fields: dict[str, Any] = {"question": text, "n_images": len(self._image_cells(i)),
                                  "source": self.table.where[i]}
        if self.columns["target"] is not None:
            fields["target"] = self._target(i)
        if self.columns["category"] is not None:
            fields["category"] = str(self._cell(i, "category"))
        return Sample(self.ids[i], self.name, split, index, fields, self._answer(i))

    def messages(self, sample: Sample) -> list[Message]:
        return [user_turn(sample.fields["question"], n_images=sample.fields["n_images"])]

    def images(self, sample: Sample) -> list[Image.Image]:
        i = self._index(sample.split, sample.index)
        out = []
        for cell in self._image_cells(i):
            source = self._image_path(cell) if isinstance(cell, str) else cell
            image = load_image(source, where=self.table.where[i])
            out.append(resize_longest(image, self.config.image_size))
        return out

    def verify(self, sample: Sample, completion: str) -> Verdict:
        return self.scorer(completion, sample.answer)

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """The SFT target: the target column if mapped, else the answer."""
        if variant != "answer":
            raise InputError(f"unknown target variant {variant!r}", hint="one of answer")
        return sample.fields.get("target", sample.answer)

    def categories(self, sample: Sample) -> dict[str, Any]:
        return {"category": sample.fields["category"]} if "category" in sample.fields else {}

    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """The sample a row of `gengap data` (or a difficulty record) names, from the data.

        The row's split and index pick the sample; its id must match, else the data changed.
        """
        missing = [k for k in ("id", "split", "index") if k not in row]
        if missing:
            raise InputError(f"missing field(s) {', '.join(missing)}", where=where,
                             hint="rows come from `gengap data --task dataset`")
        split, index = str(row["split"]), row["index"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise InputError(f"'index' must be an integer, got {index!r}", where=where)
        self.split(split)
        sample = self.sample(split, index)
        if sample.id != str(row["id"]):
            raise InputError(f"row id {row['id']!r} is not sample {index} of split {split!r} "
                             f"(that is {sample.id!r})", where=where,
                             hint="the data or the task options changed since the row was "
                                  "written: pass the same -O options as then")
        return sample
