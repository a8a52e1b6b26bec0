"""Visual grounding (referring expressions -> a box) as a gengap task: DC-SFT's RefCOCO task.

Two sources of samples, one contract:

- **generated** (default, offline): scenes of coloured shapes (`scenes`), expressions that need
  attributes and relations and are unambiguous by construction (`referring`, `generate`);
- **real data** (``data=PATH``): RefCOCO in the `refer` layout or its parquet mirrors, VLM-R1
  records, and any number of OOD sets (``ood_data={ref-l4: PATH, lisa: PATH}``) in Ref-L4's
  parquet or LISA's per-image JSON (`loaders`).

Generated splits (all unbounded; each reads its own random stream):

| split             | role       | axis              | holds                                     |
|-------------------|------------|-------------------|-------------------------------------------|
| warmup            | warmup     |                   | 30% single objects, 40% id, 10% each OOD  |
| warmup-locate     | warmup     |                   | single objects (the cold start's first    |
|                   |            |                   | phase: localisation before reference)     |
| train, validation | train, val |                   | id: attributes, or left of / above / ...  |
| test              | test       |                   | id                                        |
| test-ood-visual   | ood        | visual            | unseen backgrounds and shape styles       |
| test-ood-long     | ood        | expression-length | two relation clauses, both needed         |
| test-ood-relation | ood        | relation-words    | to the left of, beneath, closest to, ...  |

Real-data splits: ``warmup`` (the first `warmup_size` train records, held out, as DC-SFT's
cold start), ``train``, ``validation`` (val), ``test`` (testA, or test), ``test-B`` (testB),
and ``ood-<name>`` per OOD set (axis "dataset").

**Frames.** A sample's ``box`` is xyxy in pixels of the image as the task hands it to the model
(after the optional ``image_size`` resize). Answers and targets live in the ``frame`` option's
frame: ``qwen`` (pixels of the image as Qwen2-VL / Qwen2.5-VL's processor resizes it, from
transformers' `smart_resize` with ``qwen_min_pixels`` / ``qwen_max_pixels``), ``pixel`` (the
image's own pixels, what the DC-SFT code compared without rescaling), ``norm1`` or
``norm1000``. IoU is scored in that frame; every verdict's info and the task identity name it.

**Scoring.** The first ``[a, b, c, d]`` in the completion; standard xyxy IoU (degenerate or
non-finite boxes score 0, 1-px overlaps count -- the study's code zeroed those and divided by
zero on degenerate boxes); hit = IoU >= ``iou_threshold`` (``strict``: >, as Ref-L4 and VLM-R1).
Reward 1/0 (the study's), or the IoU itself (``reward=iou``). Metrics: iou, acc@0.5/0.75/0.9
(same strictness), parsed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from PIL import Image

from gengap.boxes import Box, Frame, convert, hit, iou, parse_box, qwen_vl_size
from gengap.errors import InputError
from gengap.images import load_image, resize_longest
from gengap.tasks.base import Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.grounding import prompts
from gengap.tasks.grounding.generate import draw_example
from gengap.tasks.grounding.loaders import FORMATS, Record, load
from gengap.tasks.grounding.referring import Expression
from gengap.tasks.grounding.scenes import Scene, render

FRAMES = ("pixel", "qwen", "norm1", "norm1000")
ACC_THRESHOLDS = (0.5, 0.75, 0.9)
GENERATED_SPLITS = {  # name -> (role, axis, variant)
    "warmup": ("warmup", None, None),
    "warmup-locate": ("warmup", None, "single"),
    "train": ("train", None, "id"),
    "validation": ("validation", None, "id"),
    "test": ("test", None, "id"),
    "test-ood-visual": ("ood", "visual", "visual"),
    "test-ood-long": ("ood", "expression-length", "long"),
    "test-ood-relation": ("ood", "relation-words", "relation"),
}
WARMUP_MIX = (("single", 0.3), ("id", 0.4), ("visual", 0.1), ("long", 0.1), ("relation", 0.1))
# Ref-L4 / COCO size classes: box area < 32^2 small, < 96^2 medium, else large, on a
# 640 x 480 image (generated scenes are scaled to that area first).
_COCO_AREA = 640 * 480


# The tiny VLM's cold start (16 px patches on the 64 px grid scenes: one image token per cell).
# Why it looks like this (measured 2026-12-02, probes of 60 single-object scenes):
# - with the vision side trained (vision lr 3e-4, decoder 1e-3) the image tokens collapse
#   into a constant soft prompt within 100 steps (norm 0.74 -> 4.4 while their spread across
#   images falls 0.20 -> 0.04): the decoder predicts boxes from the text alone, at chance even
#   on single objects (earlier recipes of 450-600 + 90-120 steps: ID acc@0.5 ~3-4%);
# - with the random tower + projector frozen the features keep their spread, and the decoder
#   learns to localise after a plateau whose end varies: trained on single scenes only, single
#   objects 8% / 23% at 900 / 1200 steps in one run, 35% / 77% at 900 / 1800 in another;
#   trained on the full warmup mix from the start, 3% after 1200 steps. Hence a localisation
#   phase on single scenes first, then the mix (reference by attributes and relations).
# This recipe (measured, seed 0, one thread on a shared machine, 1821 s): greedy acc@0.5 test
# 37%, OOD visual 29%, long 26%, relation 38% (mean IoU 0.24-0.33); k=4 at T=0.9: 46-56% of
# samples 0/4 right, 2-15% 4/4 -- all three difficulty buckets populated.
COLDSTART_PHASES: tuple[dict[str, Any], ...] = (
    {"name": "locate", "split": "warmup-locate", "steps": 1800, "batch_size": 32,
     "learning_rate": 1e-3, "lr_scheduler_type": "constant", "vision_learning_rate": 0.0},
    {"name": "pretrain", "steps": 1800, "batch_size": 32, "learning_rate": 1e-3,
     "lr_scheduler_type": "constant", "vision_learning_rate": 0.0},
    {"name": "sft", "steps": 300, "batch_size": 32, "learning_rate": 3e-4,
     "vision_learning_rate": 0.0},
)


@dataclass
class GroundingConfig:
    """Options of the grounding task (`--task-option key=value`)."""

    prompt_style: Literal["paper", "compact"] = field(
        default="paper", metadata={"help": "paper (the study's prompt) or compact (tiny models)"})
    frame: Literal["pixel", "qwen", "norm1", "norm1000"] | None = field(
        default=None, metadata={"help": "answer frame: qwen (processor-resized pixels), pixel, "
                                        "norm1, norm1000; default qwen (paper), pixel (compact)"})
    qwen_min_pixels: int = field(default=56 * 56, metadata={"help": "qwen frame: min_pixels"})
    qwen_max_pixels: int = field(default=12_845_056,
                                 metadata={"help": "qwen frame: max_pixels (Qwen2.5-VL's)"})
    iou_threshold: float = field(default=0.5, metadata={"help": "IoU of a hit"})
    strict: bool = field(default=False, metadata={"help": "hit = IoU > threshold (Ref-L4)"})
    reward: Literal["binary", "iou"] = field(
        default="binary", metadata={"help": "binary (1/0 hit, the study's) or iou"})
    layout: Literal["free", "grid"] | None = field(
        default=None, metadata={"help": "generated scenes: free or grid; default by style"})
    image_size: int | None = field(
        default=None, metadata={"help": "generated: canvas width (672 paper, 64 compact); "
                                        "real data: longest side after resize (None: as is)"})
    attribute_share: float = field(
        default=0.35, metadata={"help": "generated: share of attribute-only expressions"})
    data: str | None = field(default=None, metadata={"help": "real ID data (RefCOCO, VLM-R1)"})
    data_format: str = field(default="auto", metadata={"help": f"one of {', '.join(FORMATS)}"})
    image_root: str | None = field(default=None,
                                   metadata={"help": "folder of the ID data's images"})
    ood_data: dict[str, str] = field(
        default_factory=dict, metadata={"help": "OOD sets: name -> path (Ref-L4, LISA, ...)"})
    warmup_size: int = field(default=400, metadata={"help": "real data: cold-start records"})

    def validate(self) -> None:
        if not 0 < self.iou_threshold < 1:
            raise InputError(f"iou_threshold must be in (0, 1), got {self.iou_threshold}",
                             where="task option iou_threshold")
        if self.image_size is not None and not 16 <= self.image_size <= 4096:
            raise InputError(f"image_size must be 16..4096 px, got {self.image_size}",
                             where="task option image_size")
        if not 0 <= self.attribute_share <= 1:
            raise InputError("attribute_share must be in [0, 1]",
                             where="task option attribute_share")
        if self.data_format not in FORMATS:
            raise InputError(f"unknown data_format {self.data_format!r}",
                             where="task option data_format", hint=f"one of {FORMATS}")
        if self.ood_data and not self.data:
            raise InputError("ood_data needs data (the ID set) too", where="task option ood_data")
        if self.qwen_min_pixels < 1 or self.qwen_max_pixels < self.qwen_min_pixels:
            raise InputError("need 1 <= qwen_min_pixels <= qwen_max_pixels",
                             where="task option qwen_max_pixels")


def _stream(seed: int, split: str, index: int) -> random.Random:
    return random.Random(f"grounding/{seed}/{split}/{index}")


class GroundingTask(TaskBase):
    """Referring expressions: find the box the sentence describes."""

    name = "grounding"
    description = ("Visual grounding: the box of the object a referring expression describes "
                   "(generated scenes, or RefCOCO / Ref-L4 / LISA files).")
    Config = GroundingConfig
    tiny_options: ClassVar[dict[str, Any]] = {"prompt_style": "compact"}
    metric_docs: ClassVar[dict[str, str]] = {
        "iou": "IoU of the first box in the answer with the target (0 if none)",
        "acc@0.5": "IoU at or above 0.5 (above, with strict=true)",
        "acc@0.75": "IoU at or above 0.75 (above, with strict=true)",
        "acc@0.9": "IoU at or above 0.9 (above, with strict=true)",
        "parsed": "the answer holds a box [x1, y1, x2, y2]",
    }
    report_by = ("size", "kind")
    references: ClassVar[dict[str, str]] = {
        "rl_beats_sft_ood": "Ref-L4 / LISA (Qwen2.5-VL-7B, trained on RefCOCO): GRPO 71.60 / "
                            "71.29, SFT 72.15 / 69.60 -- GRPO ahead on LISA only (Lu et al.)",
        "hard_sft_hurts_ood": "no grounding figure: Lu et al. publish the bucket ablation for "
                              "classification only (ImageNet-R: hard 43.25 vs easy 59.37, "
                              "medium 58.67)",
        "sft_em_matches_rl": "Ref-L4 / LISA: SFT-EM 73.40 / 70.51, SFT-M 73.20 / 70.14, GRPO "
                             "71.60 / 71.29 (Lu et al., Qwen2.5-VL-7B)",
        "hard_share_costs_ood": "no grounding figure: the hard-share ablation is ImageNet's "
                                "(+5% hard costs 3.7 / 2.5 points on R / A, Lu et al.)",
        "dcsft_cheaper": "RefCOCO: GRPO 298 min vs DC-SFT 93 min incl. the difficulty pass "
                         "(3.2x, Lu et al.)",
    }
    target_variants = ("answer",)

    @property
    def coldstart_recipe(self) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """Generated scenes start with a localisation phase on `warmup-locate`; real data,
        which has no such split, trains on its warmup records alone."""
        phases = COLDSTART_PHASES if self.config.data is None else COLDSTART_PHASES[1:]
        return {"image": {"phases": [dict(p) for p in phases], "eval_n": 100, "eval_k": 4}}

    def __init__(self, config: GroundingConfig | None = None, **options: Any):
        super().__init__(config, **options)
        c = self.config
        self.layout = c.layout or ("free" if c.prompt_style == "paper" else "grid")
        self.frame_kind = c.frame or ("qwen" if c.prompt_style == "paper" else "pixel")
        if c.data is None:
            width = c.image_size or (672 if self.layout == "free" else 64)
            self.canvas = (width, width if self.layout == "grid" else round(width * 0.75))

    # -- configuration ---------------------------------------------------------------------
    @property
    def modality(self) -> str:
        return "image"

    @property
    def max_new_tokens(self) -> int:
        # Compact: "[12,34,56,63]" is 13 characters (tokens of the character model).
        return 24 if self.config.prompt_style == "compact" else 128

    def frame_description(self) -> str:
        """Which frame answers are given and scored in (results and identity carry it)."""
        c = self.config
        return {
            "pixel": "pixel: xyxy pixels of the image as the task gives it",
            "qwen": "qwen: xyxy pixels of the image as the Qwen2-VL processor resizes it "
                    f"(smart_resize, min_pixels={c.qwen_min_pixels}, "
                    f"max_pixels={c.qwen_max_pixels})",
            "norm1": "norm1: xyxy fractions of width and height in [0, 1]",
            "norm1000": "norm1000: xyxy on a 0..1000 grid of width and height",
        }[self.frame_kind]

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "frame": self.frame_description()}

    def data_fingerprint(self) -> str | None:
        if not self.config.data:
            return None
        from pathlib import Path

        h = hashlib.sha256()
        for name, path in [("id", self.config.data), *sorted(self.config.ood_data.items())]:
            p = Path(path).expanduser()
            files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
            for f in files:
                if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    continue  # images: their annotations decide the samples
                stat = f.stat()
                h.update(f"{name}:{f}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    # -- splits ----------------------------------------------------------------------------
    @cached_property
    def _real(self) -> dict[str, list[Record]]:
        """Real-data records by split name (empty for generated scenes)."""
        c = self.config
        if not c.data:
            return {}
        by_source: dict[str, list[Record]] = {}
        for r in load(c.data, c.data_format, c.image_root):
            by_source.setdefault(r.split or "train", []).append(r)
        train = by_source.pop("train", [])
        out = {"warmup": train[:c.warmup_size], "train": train[c.warmup_size:]}
        names = {"val": "validation", "validation": "validation", "testA": "test",
                 "test": "test", "testB": "test-B"}
        for source, records in by_source.items():
            out.setdefault(names.get(source, f"test-{source}"), []).extend(records)
        for name, path in c.ood_data.items():
            # Each OOD set finds its images by its own layout (LISA: beside each JSON;
            # Ref-L4: images/ beside the parquet).
            out[f"ood-{name}"] = load(path, "auto")
        return {k: v for k, v in out.items() if v}

    @property
    def splits(self) -> dict[str, Split]:
        if not self.config.data:
            return {name: Split(name, role, axis=axis, description=variant or "mixed")
                    for name, (role, axis, variant) in GENERATED_SPLITS.items()}
        roles = {"warmup": "warmup", "train": "train", "validation": "validation"}
        out = {}
        for name, records in self._real.items():
            role = roles.get(name, "ood" if name.startswith("ood-") else "test")
            out[name] = Split(name, role, size=len(records),
                              axis="dataset" if role == "ood" else None)
        return out

    # -- samples ---------------------------------------------------------------------------
    def sample(self, split: str, index: int, seed: int) -> Sample:
        """Sample `index` of `split` (generated: a pure function of seed, split, index)."""
        self.check_index(split, index)
        if self.config.data:
            return self._real_sample(split, index, self._real[split][index])
        rng = _stream(seed, split, index)
        variant = GENERATED_SPLITS[split][2]
        if variant is None:
            variant = rng.choices([v for v, _ in WARMUP_MIX], [w for _, w in WARMUP_MIX])[0]
        width, height = self.canvas
        ex = draw_example(rng, variant, width=width, height=height, layout=self.layout,
                          attribute_share=self.config.attribute_share)
        box = list(ex.scene.objects[ex.target].box)
        fields = {"source": "generated", "variant": variant, "kind": ex.kind,
                  "expression": ex.expression.text(), "box": box, "width": width,
                  "height": height, "scene": ex.scene.as_dict(), "target": ex.target,
                  "structure": ex.expression.as_dict(), "texture_seed": rng.randrange(2**31)}
        return self._finish(f"grounding/{split}/{index}", split, index, fields)

    def _real_sample(self, split: str, index: int, record: Record) -> Sample:
        width, height = record.width, record.height
        if width is None or height is None:
            width, height = self._image(record.image).size
        box = record.box
        size = self.config.image_size
        if size is not None:
            scale = size / max(width, height)
            new = (max(1, round(width * scale)), max(1, round(height * scale)))
            box = convert(box, Frame("pixel", width, height), Frame("pixel", *new))
            width, height = new
        image = record.image if isinstance(record.image, str) else None
        fields = {"source": "data", "expression": record.expression,
                  "box": [float(v) for v in box], "width": int(width), "height": int(height),
                  "image": image, "source_split": record.split, "kind": "real"}
        return self._finish(record.id, split, index, fields)

    def _finish(self, sid: str, split: str, index: int, fields: dict[str, Any]) -> Sample:
        fields["frame"] = self.frame_kind
        answer = prompts.answer_text(self.gt_box(fields), self.config.prompt_style,
                                     decimals=3 if self.frame_kind == "norm1" else 0)
        return Sample(sid, self.name, split, index, fields, answer)

    # -- frames ----------------------------------------------------------------------------
    def answer_frame(self, width: int, height: int) -> Frame:
        """The frame answers are given in, for an image of `width` x `height` px."""
        if self.frame_kind == "qwen":
            return Frame("pixel", *qwen_vl_size(width, height,
                                                min_pixels=self.config.qwen_min_pixels,
                                                max_pixels=self.config.qwen_max_pixels))
        return Frame(self.frame_kind, width, height)

    def gt_box(self, fields: Mapping[str, Any]) -> Box:
        """The target box in the answer frame."""
        w, h = fields["width"], fields["height"]
        return convert(tuple(fields["box"]), Frame("pixel", w, h),  # type: ignore[arg-type]
                       self.answer_frame(w, h))

    # -- prompts and images ----------------------------------------------------------------
    def messages(self, sample: Sample) -> list[Message]:
        build = (prompts.paper_prompt if self.config.prompt_style == "paper"
                 else prompts.compact_prompt)
        return [user_turn(build(sample.fields["expression"]), n_images=1)]

    def _image(self, source: Any) -> Image.Image:
        return load_image(source, where=source if isinstance(source, str) else None)

    def images(self, sample: Sample) -> list[Image.Image]:
        f = sample.fields
        if f["source"] == "generated":
            return [render(Scene.from_dict(f["scene"]), seed=int(f.get("texture_seed", 0)))]
        source = f.get("image")
        if source is None:  # image bytes inside the data file: from the record
            source = self._record(sample).image
        image = self._image(source)
        if image.size != (f["width"], f["height"]):
            image = resize_longest(image, max(f["width"], f["height"]))
        return [image]

    def _record(self, sample: Sample) -> Record:
        records = self._real.get(sample.split, [])
        if 0 <= sample.index < len(records) and records[sample.index].id == sample.id:
            return records[sample.index]
        found = next((r for r in records if r.id == sample.id), None)
        if found is None:
            raise InputError(f"no record {sample.id!r} in split {sample.split!r}",
                             hint="rows of a real-data split need the task's data option")
        return found

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """The box in the answer frame: ``[x1, y1, x2, y2]``."""
        if variant != "answer":
            raise InputError(f"unknown target variant {variant!r}", hint="one of answer")
        return sample.answer

    # -- judging ---------------------------------------------------------------------------
    def verify(self, sample: Sample, completion: str) -> Verdict:
        c = self.config
        gt = self.gt_box(sample.fields)
        pred = parse_box(completion)
        value = iou(pred, gt) if pred is not None else 0.0
        correct = pred is not None and hit(value, c.iou_threshold, strict=c.strict)
        metrics = {"iou": value, "parsed": float(pred is not None)}
        for t in ACC_THRESHOLDS:
            metrics[f"acc@{t}"] = float(pred is not None and hit(value, t, strict=c.strict))
        w, h = sample.fields["width"], sample.fields["height"]
        frame = self.answer_frame(w, h)
        info: dict[str, Any] = {"frame": self.frame_kind, "frame_size": [frame.width,
                                                                          frame.height],
                                "gt_box": [round(v, 3) for v in gt]}
        if pred is None:
            feedback = "the answer holds no box [x1, y1, x2, y2]"
        else:
            info["pred_box"] = list(pred)
            info["pred_box_image_pixels"] = [round(v, 2) for v in
                                             convert(pred, frame, Frame("pixel", w, h))]
            rel = ">" if c.strict else ">="
            feedback = (f"IoU {value:.2f} {rel} {c.iou_threshold}" if correct
                        else f"IoU {value:.2f} is below the {c.iou_threshold} needed")
        reward = value if c.reward == "iou" else float(correct)
        return Verdict(reward, correct, feedback, metrics, info)

    def categories(self, sample: Sample) -> dict[str, Any]:
        f = sample.fields
        x1, y1, x2, y2 = f["box"]
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1) * _COCO_AREA / (f["width"] * f["height"])
        size = "small" if area < 32 ** 2 else "medium" if area < 96 ** 2 else "large"
        out: dict[str, Any] = {"size": size, "kind": f.get("kind", "real")}
        if f["source"] == "generated":
            expr = Expression.from_dict(f["structure"])
            out["relation"] = expr.clauses[0][0] if expr.clauses else "none"
            out["objects"] = len(f["scene"]["objects"])
            out["variant"] = f["variant"]
        return out

    # -- rows ------------------------------------------------------------------------------
    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from a row (`row(sample)`): generated rows carry their scene, real
        rows their image path (or the task's data holds the image)."""
        sample = super().sample_from_row(row, where=where)
        f = dict(sample.fields)
        for key in ("expression", "box", "width", "height", "source"):
            if key not in f:
                raise InputError(f"missing field {key!r}", where=where,
                                 hint="rows come from `gengap data --task grounding`")
        box = f["box"]
        if not (isinstance(box, list) and len(box) == 4
                and all(isinstance(v, int | float) for v in box)):
            raise InputError(f"'box' must be 4 numbers, got {box!r}", where=where)
        if f["source"] == "generated":
            if "scene" not in f:
                raise InputError("generated rows need their 'scene'", where=where)
            try:
                Scene.from_dict(f["scene"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"malformed 'scene': {exc}", where=where) from None
        return self._finish(sample.id, sample.split, sample.index, f)
