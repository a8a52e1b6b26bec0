"""The options of `--task dataset` (`-O key=value`), documented and validated."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gengap.errors import InputError

SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ROLE_SPLITS = ("warmup", "train", "validation", "test")


def _opt(default: Any, help: str) -> Any:
    """A field with a default and its help text (`gengap tasks --task dataset` shows it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class DatasetConfig:
    """Your own data as a gengap task: where it is, which columns mean what, how to score."""

    path: str = field(metadata={"help": "a .jsonl / .parquet file, a directory of them "
                                        "(file stem = split), a `save_to_disk` dataset, or "
                                        "an image folder (one subfolder per class)"})
    format: Literal["auto", "jsonl", "parquet", "hf", "imagefolder"] = _opt(
        "auto", "format of path (auto: from the suffix / directory contents)")
    # -- column mapping (None: the first of the usual names the data has) --
    id_column: str | None = _opt(None, "ids (auto: 'id'; without one, a stable hash of the "
                                       "row)")
    prompt_column: str | None = _opt(None, "the prompt (auto: 'prompt', then 'question')")
    answer_column: str | None = _opt(None, "the ground truth (auto: 'answer', then 'label')")
    image_column: str | None = _opt(None, "an image or a list of images: paths relative to "
                                          "the data, or datasets' image cells (auto: "
                                          "'images', then 'image'); makes the task an image "
                                          "task")
    split_column: str | None = _opt(None, "which split a row is in (auto: 'split'); split "
                                          "files / folders / DatasetDict keys take its place")
    target_column: str | None = _opt(None, "the SFT target (default: the answer), e.g. a "
                                           "worked solution")
    category_column: str | None = _opt(None, "a column eval breaks success down by")
    # -- splits: values of the split column (or file stems / folder names / dict keys) --
    train: str = _opt("train", "split value of the training rows")
    validation: str | None = _opt(None, "split value of validation rows (auto: 'validation' "
                                        "when present)")
    test: str = _opt("test", "split value of the in-distribution test rows")
    ood: list[str] = field(default_factory=list, metadata={
        "help": "OOD splits as value or value:axis, comma-separated (e.g. sketch:style,"
                "adversarial:natural); default: every other split value, its axis its name"})
    holdout: float = _opt(0.2, "data with no splits at all: share of rows held out as test "
                               "(chosen by a stable hash of the id)")
    warmup_size: int | None = _opt(None, "rows of train held out for the tiny model's cold "
                                         "start (auto: min(400, train/4); 0: none)")
    warmup_ood: int = _opt(0, "rows of each OOD split moved into the warmup slice, so the "
                              "tiny model's prior covers the OOD shape as a pretrained "
                              "model's does (they are never tested)")
    shuffle: bool = _opt(True, "order each split by a stable hash of its ids, so the first n "
                               "samples are a fair subset (false: data order)")
    # -- prompts and images --
    instruction: str = _opt("", "text added on a new line after every prompt")
    default_prompt: str = _opt("What is the object in the image? Answer in one word.",
                               "the prompt of image rows without a prompt column (DC-SFT's "
                               "classification question)")
    image_size: int | None = _opt(None, "resize images so the longer side is this many px "
                                        "(every stage sees the same pixels)")
    max_new_tokens: int | None = _opt(None, "completion budget (auto: twice the longest target "
                                            "in characters, 32..1024)")
    # -- scoring --
    scorer: str = _opt("exact", "exact, choice, math, iou, regex, or module:function")
    pattern: str | None = _opt(None, "regex scorer: the pattern (its first group is the "
                                     "answer)")
    iou_threshold: float = _opt(0.5, "iou scorer: IoU that counts as correct")
    letters: str | None = _opt(None, "choice scorer: the option letters (auto: A up to the "
                                     "highest letter among the answers)")
    math_timeout: float = _opt(5.0, "math scorer: seconds per answer")
    # -- the embedded tiny model --
    coldstart_scale: float = _opt(1.0, "multiplies the tiny model's cold-start steps (a "
                                       "quick try: 0.05)")

    def validate(self) -> None:
        """Check every option; the path is made absolute (recorded runs survive a cd)."""
        if not self.path:
            raise InputError("the dataset task needs a path", where="task option path",
                             hint="pass -O path=my.jsonl (or a parquet file, a saved dataset, "
                                  "an image folder)")
        self.path = str(Path(self.path).expanduser().resolve())
        names = {"train": self.train, "test": self.test}
        if self.validation:
            names["validation"] = self.validation
        for role, value in names.items():
            if not value:
                raise InputError(f"the {role} split value is empty", where=f"task option {role}")
        if len(set(names.values())) < len(names):
            raise InputError(f"two roles share a split value: {names}",
                             where="task option train/validation/test",
                             hint="give each role its own split value")
        seen = set(names.values())
        for entry in self.ood:
            value, _, axis = entry.partition(":")
            if not value or not SPLIT_NAME.match(value) or (axis and not SPLIT_NAME.match(axis)):
                raise InputError(f"bad OOD split {entry!r}", where="task option ood",
                                 hint="value or value:axis, letters, digits, - _ .")
            if value in seen or value in ROLE_SPLITS:
                raise InputError(f"OOD split {value!r} is used twice (or is a role's name)",
                                 where="task option ood")
            seen.add(value)
        if not 0 < self.holdout < 1:
            raise InputError(f"holdout must be between 0 and 1, got {self.holdout}",
                             where="task option holdout")
        if self.warmup_size is not None and self.warmup_size < 0:
            raise InputError(f"warmup_size must be >= 0, got {self.warmup_size}",
                             where="task option warmup_size")
        if self.warmup_ood < 0:
            raise InputError(f"warmup_ood must be >= 0, got {self.warmup_ood}",
                             where="task option warmup_ood")
        if self.image_size is not None and not 8 <= self.image_size <= 4096:
            raise InputError(f"image_size must be between 8 and 4096 px, got {self.image_size}",
                             where="task option image_size")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 32768:
            raise InputError(f"max_new_tokens must be in 1..32768, got {self.max_new_tokens}",
                             where="task option max_new_tokens")
        if not (math.isfinite(self.coldstart_scale) and 0 < self.coldstart_scale <= 100):
            raise InputError(f"coldstart_scale must be in (0, 100], got {self.coldstart_scale}",
                             where="task option coldstart_scale")
