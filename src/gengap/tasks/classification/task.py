"""Image classification, DC-SFT's headline task: name the object in one word.

Two sources of data, one contract:

- ``source=rendered`` (default, offline): gengap's own drawn set (`shapes`, `render`) of 32
  object classes seen in training plus 6 classes only the OOD sets and the cold start's prior
  hold (as ImageNet-R / A mostly hold classes the study never trained on);
- ``source=folder`` / ``source=hf``: real data (ImageNet layouts, HF datasets; `loaders`).

Splits (role): rendered set | real data

- ``warmup`` (warmup): all classes, photo style + every OOD style (the stand-in for
  pretraining) | the first `warmup_per_class` train images of each class (the study: 4);
- ``train`` (train): seen classes, photo style | the rest of `train`;
- ``validation`` (validation): seen classes, photo style | the next `val_per_class` per class;
- ``test`` (test): seen classes, photo style | `test`, train classes only;
- ``ood-r`` (ood, renditions): seen + unseen classes as sketch / outline / cartoon / texture
  (ImageNet-R-like) | each `ood` entry, all its classes (named as given);
- ``ood-a`` (ood, hard-natural): seen + unseen classes under clutter / occlusion / viewpoint /
  scale (ImageNet-A-like).

Every split is finite; train, test and OOD splits cycle through their classes, so any prefix
is class-balanced. The verdict is the study's scorer (`study_match`); its metrics
``accuracy_seen`` / ``accuracy_unseen`` are present only on samples of seen / unseen classes,
so their means in results.json are the OOD accuracy on each, beside the pooled ``success``
(and ``by_category.classes`` repeats the split with standard errors).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image

from gengap.errors import InputError
from gengap.images import load_image
from gengap.tasks.base import Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.classification import loaders
from gengap.tasks.classification.images import prepare
from gengap.tasks.classification.render import HARD_STYLES, RENDITION_STYLES, STYLES, render
from gengap.tasks.classification.shapes import SEEN_CLASSES, UNSEEN_CLASSES

# The study's prompt, verbatim (the image comes first in the user turn).
PAPER_PROMPT = "Please provide the object name in the image. Output the answer using one word."
COMPACT_PROMPT = "name"  # for the embedded character-level model


def normalise(text: str) -> str:
    """The study's normalisation: strip spaces, then dots (both ends), then lowercase."""
    return text.strip().strip(".").lower()


def study_match(prediction: str, gold: str) -> bool:
    """The study's scorer, 1 when
    ``pred.strip().strip('.').lower() == gold.strip().strip('.').lower()``."""
    return normalise(prediction) == normalise(gold)


@dataclass
class ClassificationConfig:
    """Options of the classification task (`--task-option key=value`)."""

    source: Literal["rendered", "folder", "hf"] = field(
        default="rendered", metadata={"help": "rendered (gengap's drawn set), folder (one folder "
                                              "per class) or hf (a datasets image+label set)"})
    prompt_style: Literal["paper", "compact"] = field(
        default="paper", metadata={"help": "paper (the study's prompt) or compact (tiny models)"})
    image_size: int | None = field(
        default=None, metadata={"help": "longer image side every stage sees, px (default 448 "
                                        "paper, 64 compact)"})
    # -- rendered set
    render_size: int | None = field(
        default=None, metadata={"help": "px the rendered pictures are drawn at (default 128, "
                                        "or image_size if larger)"})
    n_classes: int = field(default=len(SEEN_CLASSES),
                           metadata={"help": f"seen rendered classes (<= {len(SEEN_CLASSES)})"})
    n_unseen: int = field(default=len(UNSEEN_CLASSES),
                          metadata={"help": f"unseen rendered classes in OOD (<= "
                                            f"{len(UNSEEN_CLASSES)})"})
    train_per_class: int = field(default=48, metadata={"help": "rendered train images per class"})
    test_per_class: int = field(default=16, metadata={"help": "rendered ID test images per class"})
    ood_per_class: int = field(default=8, metadata={"help": "rendered images per class and OOD "
                                                             "set"})
    warmup_ood_share: float = field(
        default=0.5, metadata={"help": "share of rendered warmup pictures in OOD styles"})
    # -- real data
    train: str | None = field(default=None, metadata={
        "help": "train data: an image folder (folder) or a saved dataset / parquet[#split] (hf)"})
    test: str | None = field(default=None, metadata={"help": "ID test data (same form)"})
    ood: dict[str, str] = field(default_factory=dict, metadata={
        "help": "OOD split name -> data (same form), e.g. {imagenet-r: DIR, imagenet-a: DIR}"})
    mapping: str | None = field(default=None, metadata={
        "help": "folder id -> class name file (LOC_synset_mapping.txt, TSV/CSV, JSON)"})
    class_rule: Literal["single-word", "first", "entry"] = field(
        default="single-word", metadata={"help": "with a mapping: single-word (the study's rule),"
                                                 " first (first synonym) or entry (whole entry)"})
    train_classes: list[str] = field(default_factory=list, metadata={
        "help": "restrict training to these class names (default: every class of train)"})
    image_column: str = field(default="image", metadata={"help": "hf: the image column"})
    label_column: str = field(default="label", metadata={"help": "hf: the label column"})
    warmup_per_class: int = field(default=4, metadata={
        "help": "real data: train images per class held out for the cold start (study: 4)"})
    val_per_class: int = field(default=4, metadata={
        "help": "images per class held out for validation"})

    def validate(self) -> None:
        def positive(name: str, low: int = 1) -> None:
            if getattr(self, name) < low:
                raise InputError(f"{name} must be >= {low}, got {getattr(self, name)}",
                                 where=f"task option {name}")

        for name in ("train_per_class", "test_per_class", "ood_per_class", "val_per_class"):
            positive(name)
        positive("warmup_per_class", 0)
        if self.image_size is not None and not 16 <= self.image_size <= 4096:
            raise InputError(f"image_size must be in 16..4096, got {self.image_size}",
                             where="task option image_size")
        if self.render_size is not None and not 16 <= self.render_size <= 2048:
            raise InputError(f"render_size must be in 16..2048, got {self.render_size}",
                             where="task option render_size")
        if not 2 <= self.n_classes <= len(SEEN_CLASSES):
            raise InputError(f"n_classes must be in 2..{len(SEEN_CLASSES)}, got "
                             f"{self.n_classes}", where="task option n_classes")
        if not 0 <= self.n_unseen <= len(UNSEEN_CLASSES):
            raise InputError(f"n_unseen must be in 0..{len(UNSEEN_CLASSES)}, got "
                             f"{self.n_unseen}", where="task option n_unseen")
        if not 0.0 <= self.warmup_ood_share <= 1.0:
            raise InputError("warmup_ood_share must be in [0, 1]",
                             where="task option warmup_ood_share")
        if self.source != "rendered":
            missing = [k for k in ("train", "test") if not getattr(self, k)]
            if missing:
                raise InputError(f"source={self.source} needs {' and '.join(missing)}",
                                 where="task options",
                                 hint="e.g. -O train=imagenet/train -O test=imagenet/val")
            reserved = {"warmup", "train", "validation", "test"}
            if reserved & set(self.ood):
                raise InputError(f"OOD split names may not be {sorted(reserved & set(self.ood))}",
                                 where="task option ood")


# The tiny VLM's cold start: a long pass at a high rate over the warmup stream (all 38 classes,
# half the pictures in OOD styles: the stand-in for pretraining), then a short pass at a low
# rate; the vision tower + projector get their own, lower rate (`gengap.coldstart._optimizer`).
# Its quality check samples k=8 as the difficulty pass does. Measured (2026-12-02, 2 shared
# cores, 15.6 min wall, 898 s training): ID test greedy 61.5%, 43.6% at T=0.9 (0/8 correct
# 13.5%, 8/8 5%); ood-r 7.5% greedy, ood-a 22.5%. 450 + 100 steps gave 56% greedy but only
# 1% of ID pictures 8/8 correct (a thin easy bucket).
COLDSTART = {
    "image": {"eval_k": 8, "phases": [
        {"name": "pretrain", "steps": 600, "batch_size": 32, "learning_rate": 1e-3,
         "vision_learning_rate": 3e-4},
        {"name": "sft", "steps": 200, "batch_size": 32, "learning_rate": 3e-4,
         "vision_learning_rate": 1e-4},
    ]},
}


def _seed_of(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(map(str, parts)).encode(),
                                          digest_size=6).digest(), "big")


def _round_robin(groups: Mapping[str, list[Any]]) -> list[Any]:
    """Interleave per-class lists (classes in sorted order) so any prefix is balanced."""
    out, depth = [], max((len(v) for v in groups.values()), default=0)
    keys = sorted(groups)
    for i in range(depth):
        out += [groups[k][i] for k in keys if i < len(groups[k])]
    return out


class ClassificationTask(TaskBase):
    """Name the object in the image (one word); rendered or real data."""

    name = "classification"
    description = ("Image classification as in DC-SFT: name the object in one word; OOD "
                   "renditions (ImageNet-R-like) and hard variants (ImageNet-A-like), seen and "
                   "unseen classes.")
    Config = ClassificationConfig
    tiny_options: ClassVar[dict[str, Any]] = {"prompt_style": "compact"}
    metric_docs: ClassVar[dict[str, str]] = {
        "accuracy_seen": "accuracy on samples of classes training saw (seen classes only)",
        "accuracy_unseen": "accuracy on samples of classes training never saw (unseen only)",
    }
    report_by = ("classes", "style")
    coldstart_recipe = COLDSTART
    references: ClassVar[dict[str, str]] = {
        "rl_beats_sft_ood": "ImageNet-R: GRPO 51.38 vs SFT 49.58; ImageNet-A: GRPO 43.65 vs SFT "
                            "39.14 (Lu et al., Qwen2.5-VL-7B)",
        "hard_sft_hurts_ood": "SFT on hard only: ImageNet-R 43.25 vs easy 59.37, medium 58.67 "
                              "(base 57.32); ImageNet-A 34.93 vs 42.16 / 42.49 (base 41.13) "
                              "(Lu et al., Qwen2.5-VL-7B)",
        "sft_em_matches_rl": "SFT-EM vs GRPO: ImageNet-R 55.90 vs 51.38, ImageNet-A 44.57 vs "
                             "43.65 (Lu et al., Qwen2.5-VL-7B)",
        "hard_share_costs_ood": "SFT-EM + 5% hard costs about 3.7 (ImageNet-R) and 2.5 "
                                "(ImageNet-A) points (Lu et al.)",
        "dcsft_cheaper": "ImageNet: GRPO 261 min vs DC-SFT 53 min incl. the difficulty pass "
                         "(4.9x) (Lu et al.)",
    }

    def __init__(self, config: ClassificationConfig | None = None, **options: Any):
        super().__init__(config, **options)
        c = self.config
        self.image_size = c.image_size or (64 if c.prompt_style == "compact" else 448)
        self.render_size = c.render_size or max(128, self.image_size if c.prompt_style == "paper"
                                                else 128)
        self._hf: dict[str, Any] = {}

    @property
    def modality(self) -> str:
        return "image"

    @property
    def max_new_tokens(self) -> int:
        # Characters for the tiny model: the longest name + end; the study's budget is 128.
        return 24 if self.config.prompt_style == "compact" else 128

    # -- classes and splits ----------------------------------------------------------------
    @cached_property
    def seen_classes(self) -> tuple[str, ...]:
        """The classes training sees (the rendered set's first `n_classes`, or the real data's)."""
        if self.config.source == "rendered":
            return SEEN_CLASSES[: self.config.n_classes]
        return tuple(sorted({i.label for i in self._real["train"]}))

    @cached_property
    def unseen_classes(self) -> tuple[str, ...]:
        """Classes only the OOD sets hold (rendered: `n_unseen`; real: what OOD data adds)."""
        if self.config.source == "rendered":
            return UNSEEN_CLASSES[: self.config.n_unseen]
        seen = set(self.seen_classes)
        return tuple(sorted({i.label for s in self.config.ood for i in self._real[s]} - seen))

    @property
    def all_classes(self) -> tuple[str, ...]:
        return self.seen_classes + self.unseen_classes

    @property
    def ood_names(self) -> list[str]:
        return ["ood-r", "ood-a"] if self.config.source == "rendered" else list(self.config.ood)

    @property
    def splits(self) -> dict[str, Split]:
        c = self.config
        if c.source == "rendered":
            n_seen, n_all = len(self.seen_classes), len(self.all_classes)
            splits = [
                Split("warmup", "warmup", description="all classes; photo + every OOD style"),
                Split("train", "train", n_seen * c.train_per_class, description="photo style"),
                Split("validation", "validation", n_seen * c.val_per_class,
                      description="photo style"),
                Split("test", "test", n_seen * c.test_per_class, description="photo style"),
                Split("ood-r", "ood", n_all * c.ood_per_class, axis="renditions",
                      description="sketch / outline / cartoon / texture (ImageNet-R-like); "
                                  f"{len(self.unseen_classes)} unseen classes"),
                Split("ood-a", "ood", n_all * c.ood_per_class, axis="hard-natural",
                      description="clutter / occlusion / viewpoint / scale (ImageNet-A-like); "
                                  f"{len(self.unseen_classes)} unseen classes"),
            ]
        else:
            splits = [Split("warmup", "warmup", len(self._real["warmup"]),
                            description=f"{c.warmup_per_class} train images per class")
                      ] if self._real["warmup"] else []
            splits += [Split("train", "train", len(self._real["train"])),
                      Split("validation", "validation", len(self._real["validation"]),
                            description=f"{c.val_per_class} train images per class"),
                      Split("test", "test", len(self._real["test"]),
                            description="train classes only")]
            for name in c.ood:
                unseen = len({i.label for i in self._real[name]} - set(self.seen_classes))
                splits.append(Split(name, "ood", len(self._real[name]), axis="dataset",
                                    description=f"{unseen} classes training never saw"))
        return {s.name: s for s in splits}

    # -- real data -------------------------------------------------------------------------
    @cached_property
    def _names(self) -> dict[str, str] | None:
        c = self.config
        return loaders.answer_names(loaders.read_mapping(c.mapping), c.class_rule) \
            if c.mapping else None

    def _items(self, spec: str) -> list[loaders.Item]:
        c = self.config
        if c.source == "folder":
            return loaders.folder_items(spec, self._names)
        items, data = loaders.hf_items(spec, c.image_column, c.label_column, self._names)
        self._hf[spec] = data
        return items

    @cached_property
    def _real(self) -> dict[str, list[loaders.Item]]:
        c = self.config
        by_class: dict[str, list[loaders.Item]] = defaultdict(list)
        for item in self._items(c.train):
            if not c.train_classes or item.label in c.train_classes:
                by_class[item.label].append(item)
        if c.train_classes and (missing := set(c.train_classes) - set(by_class)):
            raise InputError(f"train_classes not in the train data: {sorted(missing)[:8]}",
                             where="task option train_classes")
        w, v = c.warmup_per_class, c.val_per_class
        out = {
            "warmup": _round_robin({k: x[:w] for k, x in by_class.items()}),
            "validation": _round_robin({k: x[w:w + v] for k, x in by_class.items()}),
            "train": _round_robin({k: x[w + v:] for k, x in by_class.items()}),
        }
        if not out["train"]:
            raise InputError("no train images are left after the warmup and validation "
                             "hold-outs", hint="lower warmup_per_class / val_per_class")
        seen = set(by_class)
        test: dict[str, list[loaders.Item]] = defaultdict(list)
        for item in self._items(c.test):
            if item.label in seen:
                test[item.label].append(item)
        out["test"] = _round_robin(test)
        if not out["test"]:
            raise InputError("the test data holds none of the train classes", where="test")
        for name, spec in c.ood.items():
            groups: dict[str, list[loaders.Item]] = defaultdict(list)
            for item in self._items(spec):
                groups[item.label].append(item)
            out[name] = _round_robin(groups)
        return out

    def data_fingerprint(self) -> str | None:
        """A hash of the real data's item lists and the mapping file (None when rendered)."""
        c = self.config
        if c.source == "rendered":
            return None
        h = hashlib.sha256()
        for split, items in sorted(self._real.items()):
            h.update(split.encode())
            for item in items:
                h.update(f"{item.image}|{item.row}|{item.label}\n".encode())
        if c.mapping:
            h.update(Path(c.mapping).read_bytes())
        return h.hexdigest()[:16]

    # -- samples ---------------------------------------------------------------------------
    def sample(self, split: str, index: int, seed: int) -> Sample:
        self.check_index(split, index)
        if self.config.source != "rendered":
            item = self._real[split][index]
            fields = {"source": self.config.source, "image": item.image, "row": item.row,
                      "folder": item.folder, "label": item.label,
                      "seen": item.label in self.seen_classes}
            return Sample(f"classification/{split}/{index}", self.name, split, index, fields,
                          item.label)
        render_seed = _seed_of(seed, split, index)
        if split in ("train", "validation", "test"):
            label, style = self.seen_classes[index % len(self.seen_classes)], "photo"
        elif split == "warmup":
            rng = random.Random(render_seed)
            label = self.all_classes[index % len(self.all_classes)]
            style = ("photo" if rng.random() >= self.config.warmup_ood_share
                     else rng.choice(STYLES[1:]))
        else:
            n = len(self.all_classes)
            label = self.all_classes[index % n]
            styles = RENDITION_STYLES if split == "ood-r" else HARD_STYLES
            style = styles[(index // n) % len(styles)]
        fields = {"source": "rendered", "label": label, "style": style,
                  "render_seed": render_seed, "seen": label in self.seen_classes}
        return Sample(f"classification/{split}/{index}", self.name, split, index, fields, label)

    def messages(self, sample: Sample) -> list[Message]:
        text = PAPER_PROMPT if self.config.prompt_style == "paper" else COMPACT_PROMPT
        return [user_turn(text, n_images=1)]

    def raw_image(self, sample: Sample) -> Image.Image:
        """The sample's picture before `prepare` (rendered, read from disk or from a dataset)."""
        f = sample.fields
        source = f.get("source", "rendered")
        if source == "rendered":
            return render(f["label"], f["style"], int(f["render_seed"]), self.render_size)
        if source == "hf" and int(f.get("row", -1)) >= 0:
            spec = f["image"]
            if spec not in self._hf:
                self._items(spec)
            entry = self._hf[spec][int(f["row"])][self.config.image_column]
            return load_image(entry, where=f"{spec} row {f['row']}")
        return load_image(f["image"], where=sample.id)

    def images(self, sample: Sample) -> list[Image.Image]:
        """The one picture, resized by `prepare` (the same pixels in every stage)."""
        return [prepare(self.raw_image(sample), self.image_size)]

    # -- judging and targets ---------------------------------------------------------------
    def verify(self, sample: Sample, completion: str) -> Verdict:
        """The study's exact-match scorer; reward 1 / 0."""
        correct = study_match(completion, sample.answer)
        seen = bool(sample.fields.get("seen", True))
        metric = "accuracy_seen" if seen else "accuracy_unseen"
        feedback = "correct" if correct else f"{normalise(completion)[:40]!r} is not the object"
        return Verdict(1.0 if correct else 0.0, correct, feedback, {metric: float(correct)},
                       {"prediction": normalise(completion)[:64]})

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """The bare class word, case kept (no think / answer tags, as in the study)."""
        if variant != "answer":
            raise InputError(f"unknown target variant {variant!r}", hint="answer")
        return sample.answer

    def categories(self, sample: Sample) -> dict[str, Any]:
        f = sample.fields
        out = {"class": f["label"], "classes": "seen" if f.get("seen", True) else "unseen"}
        if "style" in f:
            out["style"] = f["style"]
        return out

    # -- rows ------------------------------------------------------------------------------
    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from `Task.row`: rendered rows need label, style, render_seed;
        real rows need label and image (a path, or a dataset spec with its row)."""
        label = row.get("label", row.get("answer"))
        if not isinstance(label, str) or not label:
            raise InputError("missing field 'label'", where=where,
                             hint="rows come from `gengap data --task classification`")
        source = row.get("source", "rendered")
        fields: dict[str, Any] = {"source": source, "label": label,
                                  "seen": bool(row.get("seen", True))}
        if source == "rendered":
            if label not in SEEN_CLASSES + UNSEEN_CLASSES:
                raise InputError(f"{label!r} is not a rendered class", where=where)
            if row.get("style") not in STYLES or not isinstance(row.get("render_seed"), int):
                raise InputError("rendered rows need 'style' and an integer 'render_seed'",
                                 where=where, hint=f"styles: {', '.join(STYLES)}")
            fields.update(style=row["style"], render_seed=row["render_seed"])
        else:
            if not isinstance(row.get("image"), str):
                raise InputError("real-data rows need 'image' (a path or dataset spec)",
                                 where=where)
            fields.update(image=row["image"], row=int(row.get("row", -1)),
                          folder=str(row.get("folder", label)))
        index = row.get("index")
        return Sample(str(row.get("id", f"row/{where}")), self.name, str(row.get("split", "")),
                      int(index) if isinstance(index, int) else -1, fields, label)
