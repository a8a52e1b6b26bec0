"""The cold start of the embedded tiny model: pretraining stand-in + the study's cold-start SFT.

A real checkpoint arrives pretrained: it can already write answers and it knows the variants a
study shifts to, so post-training on the ID variant meets OOD variants that sit inside its
prior. The tiny model starts random, so `coldstart` gives it that prior with TRL's
`SFTTrainer` on the task's split of role ``warmup`` (GeneralPoints: its own random stream,
mixing both face rules and all suit colours; a dataset: a held-out slice of its train split,
as DC-SFT cold-starts on 400 held-out samples). The recipe is the task's
(`Task.coldstart_recipe[modality]`, phases of `Phase`), else `DEFAULT_PHASES`:

1. `pretrain`: many warmup samples at a high learning rate -- the stand-in for pretraining;
2. `sft`: a shorter pass at a low learning rate, as the study's cold-start SFT.

Phases train on `task.target(sample, phase.targets)`: the SFT answer by default, or another
target variant the task declares (GeneralPoints: "any" solution, or the recognised "cards"
alone). Image models may start from the task's text cold start's decoder
(`init_decoder_from_text`, tasks with a modality option); every image phase can give the
vision tower + projector its own learning rate (`Phase.vision_learning_rate`; why in
`_optimizer`). The character tokenizer gets every character the task's data uses.

The result is an HF checkpoint cached under
`$GENGAP_CACHE/coldstart/<task>-<modality>-<hash of the recipe>`; a second call with the same
recipe returns at once. Runs are deterministic per seed on a given machine and thread count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gengap.errors import InputError
from gengap.io import write_json
from gengap.runinfo import run_metadata
from gengap.runs import atomic_dir, clean_stale
from gengap.tasks.base import message_text

# Bump when the meaning of a recipe changes (data format, training code), so old caches miss.
COLDSTART_FORMAT = 3
RECIPE_FILE = "coldstart_recipe.json"
METADATA_FILE = "run_metadata.json"  # written last: its presence marks a finished checkpoint


@dataclass
class Phase:
    """One `SFTTrainer` pass over fresh warmup samples (one row per sample, one epoch)."""

    name: str
    steps: int
    batch_size: int
    learning_rate: float
    # The target variant each row trains on (`Task.target(sample, variant)`): "answer" is the
    # SFT target; tasks may declare others (GeneralPoints: "any", "cards").
    targets: str = "answer"
    warmup_fraction: float = 0.05
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    # Image models: learning rate of the vision tower + projector (None: `learning_rate`;
    # 0: frozen for the phase, so the decoder learns to read the features as they are).
    vision_learning_rate: float | None = None
    # The split of role "warmup" this phase draws from (None: the task's first warmup split),
    # e.g. an easier curriculum split a task declares beside its warmup mix.
    split: str | None = None


@dataclass
class ColdStartRecipe:
    """Everything that decides a cold-started checkpoint (its hash is the cache key)."""

    task: str
    modality: str = "text"
    seed: int = 0
    task_options: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # fingerprint of the task's data files (datasets), if any
    model: dict[str, Any] = field(default_factory=dict)  # `build_tiny` overrides
    phases: list[Phase] = field(default_factory=list)
    # Image only: start the decoder from the task's text cold start (these overrides).
    init_decoder_from_text: bool = False
    text_recipe: dict[str, Any] = field(default_factory=dict)
    # Quick quality check written into run_metadata.json (0 disables it).
    eval_n: int = 200
    eval_k: int = 4
    # The revision phase (`gengap.revision.RevisionPhase` keys): the cold start above, then
    # SFT on the model's own failed attempts + the verifier's feedback -> the oracle answer.
    revision: dict[str, Any] | None = None

    def key(self) -> str:
        """A short hash of the resolved recipe and the cold-start format version."""
        recipe = asdict(self)
        # Phase fields added later are left out at their default (None), so the hashes of
        # recipes that do not use them -- the cached text cold starts -- stay unchanged.
        for phase in recipe["phases"]:
            for name in ("vision_learning_rate", "split"):
                if phase.get(name) is None:
                    phase.pop(name, None)
        if recipe.get("revision") is None:  # added later: old keys stay valid
            recipe.pop("revision", None)
        else:  # every setting resolved, defaults too: a changed default is a new checkpoint
            from gengap.revision import revision_phase

            recipe["revision"] = asdict(revision_phase(recipe["revision"]))
        blob = json.dumps({"format": COLDSTART_FORMAT, "recipe": recipe}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# The recipe of a task that brings none: a long pass at a high rate, then a short one at a low
# rate, as GeneralPoints' measured recipe (its own lives in its package).
DEFAULT_PHASES: dict[str, list[dict[str, Any]]] = {
    "text": [
        {"name": "pretrain", "steps": 600, "batch_size": 64, "learning_rate": 2e-3},
        {"name": "sft", "steps": 100, "batch_size": 64, "learning_rate": 3e-4},
    ],
    "image": [
        {"name": "pretrain", "steps": 900, "batch_size": 32, "learning_rate": 1e-3,
         "vision_learning_rate": 3e-4},
        {"name": "sft", "steps": 300, "batch_size": 32, "learning_rate": 3e-4,
         "vision_learning_rate": 1e-4},
    ],
}


def _task_instance(task: Any) -> Any:
    from gengap.tasks.registry import build_task

    return build_task(task, tiny=True) if isinstance(task, str) else task


def resolve_recipe(task: Any, seed: int = 0, **overrides: Any) -> ColdStartRecipe:
    """The task's cold-start recipe for its modality with `overrides` applied.

    `task` is a task instance or a name (built with its tiny-model options). `model`
    overrides merge into the defaults; `phases` replaces them (a list of `Phase` fields);
    `steps_scale=f` multiplies every phase's steps (reduced recipes for tests).
    """
    task = _task_instance(task)
    modality = task.modality
    defaults = dict(getattr(task, "coldstart_recipe", {}).get(modality)
                    or {"phases": DEFAULT_PHASES[modality]})
    overrides = dict(overrides)
    scale = overrides.pop("steps_scale", 1.0)
    phases = overrides.pop("phases", defaults.pop("phases"))
    recipe = ColdStartRecipe(task=task.name, modality=modality, seed=seed,
                             task_options=dict(task.options), data=task.data_fingerprint())
    recipe.model = {**defaults.pop("model", {}), **overrides.pop("model", {})}
    try:
        recipe.phases = [p if isinstance(p, Phase) else Phase(**p) for p in phases]
    except TypeError as exc:
        raise InputError(f"bad cold-start phase: {exc}",
                         hint=f"phase keys: {', '.join(Phase.__dataclass_fields__)}") from None
    for key, value in {**defaults, **overrides}.items():
        if key not in ColdStartRecipe.__dataclass_fields__ or key in (
                "task", "modality", "task_options", "data"):
            raise InputError(f"unknown cold-start setting {key!r}",
                             hint=f"settings: {', '.join(ColdStartRecipe.__dataclass_fields__)}")
        setattr(recipe, key, value)
    variants = getattr(task, "target_variants", ("answer",))
    warmups = [s.name for s in task.with_role("warmup")]
    for phase in recipe.phases:
        phase.steps = max(1, round(phase.steps * scale))
        if phase.targets not in variants:
            raise InputError(f"phase {phase.name!r}: targets must be one of {variants}",
                             hint=f"the target variants task {task.name!r} declares")
        if phase.split is not None and phase.split not in warmups:
            raise InputError(f"phase {phase.name!r}: split {phase.split!r} is not a warmup split "
                             f"of task {task.name!r}", hint=f"warmup splits: {warmups}")
    if recipe.revision is not None:
        from gengap.revision import RevisionPhase, revision_phase

        revision = dict(recipe.revision)
        revision["steps"] = max(1, round(revision.get("steps", RevisionPhase.steps) * scale))
        revision_phase(revision)  # checked now, not after the base cold start
        recipe.revision = revision
    if modality == "image" and recipe.init_decoder_from_text:
        if not hasattr(task.config, "modality"):
            raise InputError("init_decoder_from_text needs a task with a modality option")
        # The text cold start must build the same decoder the image model has.
        decoder = {k: v for k, v in recipe.model.items() if not k.startswith("vision_")}
        text = dict(recipe.text_recipe)
        text["model"] = {**decoder, **text.get("model", {})}
        if scale != 1.0:
            text.setdefault("steps_scale", scale)
        recipe.text_recipe = text
    return recipe


def text_twin(task: Any) -> Any:
    """The text-modality version of an image task (same options otherwise)."""
    return type(task)(dataclasses.replace(task.config, modality="text"))


def cache_root() -> Path:
    """Where cold-started checkpoints live: $GENGAP_CACHE or ~/.cache/gengap."""
    return Path(os.environ.get("GENGAP_CACHE", "~/.cache/gengap")).expanduser()


def is_finished(path: Path, key: str) -> bool:
    """Whether `path` holds a completed cold start of the recipe with hash `key`."""
    try:
        meta = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("coldstart_key") == key


def checkpoint_dir(task: Any, seed: int = 0, **recipe_overrides: Any) -> tuple[Path, str]:
    """(cache directory, recipe key) of the task's cold start; nothing is trained."""
    task = _task_instance(task)
    key = resolve_recipe(task, seed, **recipe_overrides).key()
    return cache_root() / "coldstart" / f"{_safe(task.name)}-{task.modality}-{key}", key


def cached(task: Any, seed: int = 0, **recipe_overrides: Any) -> Path | None:
    """The finished cold start of `task` if the cache holds it (never trains)."""
    path, key = checkpoint_dir(task, seed, **recipe_overrides)
    return path if is_finished(path, key) else None


def coldstart(
    task: Any,
    out_dir: str | Path | None = None,
    seed: int = 0,
    *,
    force: bool = False,
    **recipe_overrides: Any,
) -> Path:
    """Cold-start the tiny model for `task` (an instance or a name); return its checkpoint.

    Cached: a finished checkpoint of the same recipe (same hash) is returned immediately.
    `out_dir` defaults to `cache_root()/coldstart/<task>-<modality>-<hash>`; `force` retrains.
    """
    task = _task_instance(task)
    recipe = resolve_recipe(task, seed, **recipe_overrides)
    out = Path(out_dir) if out_dir else checkpoint_dir(task, seed, **recipe_overrides)[0]
    return _cold_start(task, recipe, out, force=force)


def _cold_start(task: Any, recipe: ColdStartRecipe, out: Path, *, force: bool = False) -> Path:
    """Train (or find in the cache) the checkpoint of a resolved recipe at `out`."""
    from filelock import FileLock

    key = recipe.key()
    if not force and is_finished(out, key):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # One trainer per checkpoint: parallel test workers or commands wait for the first.
    with FileLock(str(out) + ".lock"):
        if not force and is_finished(out, key):
            return out
        clean_stale(out.parent, out.name)
        with atomic_dir(out) as tmp:
            _run(task, recipe, key, tmp)
    return out


def _safe(name: str) -> str:
    """A task name usable in a directory name (user tasks are `module:Class`)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ------------------------------------------------------------------------------------------
# Training


def warmup_split(task: Any) -> Any:
    """The split the cold start trains on (role ``warmup``), or a clear error."""
    found = task.with_role("warmup")
    if not found:
        raise InputError(
            f"task {task.name!r} has no split with role 'warmup': the tiny model cannot be "
            "cold-started for it",
            hint="pass --model CHECKPOINT, or give the task a warmup split",
        )
    return found[0]


def task_characters(task: Any, seed: int, per_split: int = 200) -> tuple[str, ...]:
    """Characters the task's prompts and targets use beyond the tokenizer's printable ASCII.

    Reads every sample of a finite split (a user's data: a character only its last rows use
    must tokenize too) and the first `per_split` of a generated one, so data in any script
    tokenizes.
    """
    from gengap.models.tokenizer import CHARACTERS

    seen: set[str] = set()
    for split in task.splits.values():
        n = per_split if split.size is None else split.size
        for i in range(n):
            sample = task.sample(split.name, i, seed)
            seen.update(message_text(task.messages(sample)))
            seen.update(task.target(sample))
    return tuple(sorted(seen - set(CHARACTERS) - {"\r", "\x0b", "\x0c"}))


def _run(task: Any, recipe: ColdStartRecipe, key: str, out: Path) -> None:
    """Train the recipe into `out` (recipe and metadata included)."""
    if recipe.revision is not None:
        _run_revision(task, recipe, key, out)
        return
    from gengap.models.tiny import build_tiny, count_parameters

    start = time.perf_counter()
    split = warmup_split(task)
    torch.manual_seed(recipe.seed)
    extra = task_characters(task, recipe.seed)
    model, processor = build_tiny(recipe.modality, seed=recipe.seed, extra_characters=extra,
                                  **recipe.model)
    text_init = None
    if recipe.modality == "image" and recipe.init_decoder_from_text:
        text_init = coldstart(text_twin(task), seed=recipe.seed, **recipe.text_recipe)
        _load_decoder(model, text_init)

    write_json(out / RECIPE_FILE, {"key": key, "format": COLDSTART_FORMAT, **asdict(recipe)})
    first_index = 0
    phase_log = []
    tokens_trained = 0  # D_init of every run that starts here (text phases: exact)
    for phase in recipe.phases:
        t0 = time.perf_counter()
        rows = phase.steps * phase.batch_size
        dataset = warmup_dataset(task, processor, range(first_index, first_index + rows),
                                 recipe.seed, phase.targets, seed_salt=phase.name,
                                 split=phase.split or split.name)
        # Every phase sees samples no earlier phase saw (a finite warmup split cycles).
        first_index += rows
        if "input_ids" in dataset.column_names:
            tokens_trained += sum(len(ids) for ids in dataset["input_ids"])
        loss = _train_phase(model, processor, dataset, phase, recipe.seed, out / "trainer")
        phase_log.append({"name": phase.name, "rows": rows, "seconds": time.perf_counter() - t0,
                          "final_loss": loss})
    shutil.rmtree(out / "trainer", ignore_errors=True)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    train_seconds = time.perf_counter() - start

    quality = {}
    if recipe.eval_n > 0:
        splits = [s.name for s in task.with_role("test", "ood")]
        quality = measure_success(model, processor, task, splits, n=recipe.eval_n,
                                  k=recipe.eval_k, seed=recipe.seed)
    meta = run_metadata(asdict(recipe), recipe.seed)
    meta.update({
        "coldstart_key": key,
        "parameters": count_parameters(model),
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
        "phases": phase_log,
        "text_init": str(text_init) if text_init else None,
        "extra_characters": "".join(extra),
        "quality": quality,
    })
    if recipe.modality == "text":  # image rows are tokenized by TRL's collator: not counted
        from gengap.cost import study_flops, write_compute

        write_compute(out, study_flops(count_parameters(model), trained_tokens=tokens_trained),
                      kind="coldstart")
    write_json(out / METADATA_FILE, meta)


def _load_decoder(model: Any, text_checkpoint: Path) -> None:
    """Copy a text cold start's Qwen2 weights into a LLaVA model's language model + head."""
    from transformers import AutoModelForCausalLM

    text = AutoModelForCausalLM.from_pretrained(text_checkpoint, dtype=torch.float32)
    missing, unexpected = model.model.language_model.load_state_dict(
        text.model.state_dict(), strict=True
    )
    del missing, unexpected  # strict=True already raised if the configs differ
    model.lm_head.load_state_dict(text.lm_head.state_dict())


def _run_revision(task: Any, recipe: ColdStartRecipe, key: str, out: Path) -> None:
    """The recipe's cold start without the revision phase (cached), then the phase."""
    from gengap.cost import read_compute, study_flops, write_compute
    from gengap.models import load_model
    from gengap.revision import measure_at, revision_phase, revision_rows

    start = time.perf_counter()
    phase = revision_phase(recipe.revision)
    base_recipe = dataclasses.replace(recipe, revision=None)
    base = _cold_start(task, base_recipe, cache_root() / "coldstart" / (
        f"{_safe(task.name)}-{task.modality}-{base_recipe.key()}"))
    loaded = load_model(str(base), task=task, device="cpu")
    model, processor = loaded.model, loaded.processor
    torch.manual_seed(recipe.seed)
    write_json(out / RECIPE_FILE, {"key": key, "format": COLDSTART_FORMAT, **asdict(recipe)})
    splits = [s.name for s in task.with_role("test", "ood")]
    before = measure_at(model, processor, task, splits, phase, seed=recipe.seed)
    split = warmup_split(task).name
    # Past every sample the base recipe's phases trained on.
    first = sum(p.steps * p.batch_size for p in recipe.phases)
    t0 = time.perf_counter()
    prompts, completions, images, stats = revision_rows(task, model, processor, phase,
                                                        split=split, first_index=first,
                                                        seed=recipe.seed)
    sample_seconds = time.perf_counter() - t0
    dataset = rows_dataset(processor, prompts, completions, images)
    trained = sum(len(ids) for ids in dataset["input_ids"]) if (
        "input_ids" in dataset.column_names) else 0
    sft = Phase(name="revision", steps=phase.steps, batch_size=phase.batch_size,
                learning_rate=phase.learning_rate, lr_scheduler_type=phase.lr_scheduler_type,
                warmup_fraction=phase.warmup_fraction)
    loss = _train_phase(model, processor, dataset, sft, recipe.seed, out / "trainer",
                        micro_batches=phase.micro_batches)
    shutil.rmtree(out / "trainer", ignore_errors=True)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    after = measure_at(model, processor, task, splits, phase, seed=recipe.seed)
    base_compute = read_compute(base) or {"tokens_trained": 0}
    from gengap.models.tiny import count_parameters

    if recipe.modality == "text":
        write_compute(out, study_flops(count_parameters(model), trained_tokens=trained,
                                       init_tokens=base_compute["tokens_trained"]),
                      kind="coldstart+revision")
    meta = run_metadata(asdict(recipe), recipe.seed)
    base_meta = load_metadata(base)
    meta.update({
        "coldstart_key": key, "base": str(base), "parameters": count_parameters(model),
        "train_seconds": round(time.perf_counter() - start, 1),
        "sample_seconds": round(sample_seconds, 1), "threads": torch.get_num_threads(),
        "phases": [*base_meta.get("phases", []),
                   {"name": "revision", "rows": stats["rows"], "final_loss": loss}],
        "revision": {**stats, "before": before, "after": after},
        "quality": base_meta.get("quality", {}),
    })
    write_json(out / METADATA_FILE, meta)


def rows_dataset(processor: Any, prompts: list[Any], completions: list[str],
                 images: list[list[Any]]) -> Any:
    """SFT rows for a cold-start phase: pre-tokenized text rows (prompt masked), or
    conversational rows with an `images` column for image prompts (see `warmup_dataset`)."""
    import datasets

    if any(images):
        return datasets.Dataset.from_dict({
            "prompt": prompts,
            "completion": [[{"role": "assistant", "content": c}] for c in completions],
            "images": images,
        })
    tokenizer = getattr(processor, "tokenizer", processor)
    prompt_texts = [processor.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                    for p in prompts]
    prompt_ids = tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer([c + tokenizer.eos_token for c in completions],
                               add_special_tokens=False)["input_ids"]
    return datasets.Dataset.from_dict({
        "input_ids": [p + c for p, c in zip(prompt_ids, completion_ids, strict=True)],
        "labels": [[-100] * len(p) + c for p, c in zip(prompt_ids, completion_ids, strict=True)],
    })


def warmup_dataset(task: Any, processor: Any, indices: range, seed: int, targets: str,
                   seed_salt: str = "", split: str = "warmup") -> Any:
    """Training rows for the warmup samples `indices` (a finite split cycles through its rows).

    Text tasks: pre-tokenized rows (`input_ids`, `labels` with the prompt masked), because
    TRL's per-row `Dataset.map` preparation costs milliseconds per row, which is minutes at
    the cold start's hundreds of thousands of rows; the text is the same chat template TRL
    would render. Image tasks: conversational prompt / completion rows with an `images`
    column, which TRL's vision collator processes batch by batch.

    `targets` is the target variant (`Task.target(sample, targets, rng)`); variants that draw
    (GeneralPoints' "any") take one shared `random.Random(f"{seed}/{seed_salt}")`.
    """
    rng = random.Random(f"{seed}/{seed_salt}")
    size = task.split(split).size
    prompts, completions, images = [], [], []
    for index in indices:
        sample = task.sample(split, index % size if size else index, seed)
        completions.append(task.target(sample, targets, rng))
        prompts.append(task.messages(sample))
        picture = task.images(sample)
        if picture:
            images.append(picture)
    if images and len(images) != len(prompts):
        raise InputError(f"task {task.name!r} gives images for some warmup samples only",
                         hint="an image task gives every sample its images")
    return rows_dataset(processor, prompts, completions, images)

def _train_phase(model: Any, processor: Any, dataset: Any, phase: Phase, seed: int,
                 scratch: Path, micro_batches: int = 1) -> float | None:
    """One TRL `SFTTrainer` pass (completion-only loss, one epoch, no checkpoints).

    `micro_batches` > 1: each step's `batch_size` rows are split into that many micro-batches
    of similar length (transformers' `BatchRebalanceSampler`) and their gradients accumulated:
    the same rows per step and the same per-token loss, far less padding where lengths vary
    widely (rows after failures carry whole failed attempts and their feedback)."""
    from trl import SFTConfig, SFTTrainer

    if micro_batches > 1 and phase.batch_size % micro_batches:
        raise InputError(f"{phase.name}: batch_size {phase.batch_size} is not a multiple of "
                         f"micro_batches {micro_batches}")
    split = {"per_device_train_batch_size": phase.batch_size // micro_batches,
             "gradient_accumulation_steps": micro_batches}
    if micro_batches > 1 and "input_ids" in dataset.column_names:
        # Lengths are known for pre-tokenized rows only (image rows are processed per batch:
        # they accumulate random micro-batches). The sampler's shuffle seed is fixed (42);
        # the rows arrive in a seeded order of their own.
        split["train_sampling_strategy"] = "batch_rebalance"
    config = SFTConfig(
        output_dir=str(scratch / phase.name),
        max_steps=phase.steps,
        **split,
        learning_rate=phase.learning_rate,
        lr_scheduler_type=phase.lr_scheduler_type,
        warmup_steps=math.ceil(phase.warmup_fraction * phase.steps),
        weight_decay=phase.weight_decay,
        completion_only_loss=True,
        max_length=None,
        use_cpu=True,
        bf16=False,
        # TRL turns activation checkpointing on by default; for a 1M-parameter model it only
        # recomputes the forward pass in backward (measured: image steps at batch 32 take
        # 208-252 ms with it, 164-193 ms without).
        activation_checkpointing=False,
        optim="adamw_torch",
        report_to=[],
        save_strategy="no",
        logging_steps=max(1, phase.steps // 10),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    model.train()
    # A vision learning rate of 0 freezes the tower + projector for the phase (no backward
    # through them); they train again in later phases.
    frozen = [p for name, p in model.named_parameters() if p.requires_grad and _is_vision(name)
              ] if phase.vision_learning_rate == 0 else []
    for param in frozen:
        param.requires_grad_(False)
    try:
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                             processing_class=processor,
                             optimizers=(_optimizer(model, phase), None))
        result = trainer.train()
    finally:
        for param in frozen:
            param.requires_grad_(True)
    return float(result.training_loss) if result.training_loss is not None else None


def _is_vision(name: str) -> bool:
    return "vision_tower" in name or "multi_modal_projector" in name


def _optimizer(model: Any, phase: Phase) -> torch.optim.Optimizer | None:
    """AdamW with its own learning rate for the vision tower + projector, or None (TRL's).

    Why: with one learning rate for the whole LLaVA model, the fresh vision side takes the
    shortcut of a constant "soft prompt": the projected image tokens grow to norm ~50-100
    within tens of steps while differing between images by <0.1%, so the decoder cannot read
    them and recognition stays at chance. A vision learning rate no higher than the
    decoder's keeps the image tokens at the text embeddings' scale (norm ~1) while the decoder
    learns to read them, and recognition then rises (measured in the cold-start notes).
    TRL's own scheduler is still built on top (`optimizers=(optimizer, None)`). A rate of 0
    means the phase froze the vision side (`_train_phase`): only the decoder is optimised.
    """
    vision_lr = phase.vision_learning_rate
    if vision_lr is None:
        return None
    vision, decoder = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (vision if _is_vision(name) else decoder).append(param)
    if not vision:  # a text model, or the vision side frozen: nothing to split
        return None
    return torch.optim.AdamW(
        [{"params": decoder, "lr": phase.learning_rate},
         {"params": vision, "lr": vision_lr}],
        lr=phase.learning_rate, weight_decay=phase.weight_decay,
    )


# ------------------------------------------------------------------------------------------
# Measuring (the same sampling and judging path as evaluation and difficulty)


@torch.no_grad()
def measure_success(
    model: Any,
    processor: Any,
    task: Any,
    splits: list[str],
    *,
    n: int = 200,
    k: int = 4,
    temperature: float = 0.9,
    top_k: int = 50,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Single-attempt success per split: greedy and at `temperature` (k samples per prompt).

    Also reports how pass rates spread over samples (share with 0/k and k/k correct), the
    quantity difficulty buckets are made of, and the mean of every verdict metric (greedy).
    """
    from gengap.rollout import SamplingParams, make_sampler, run_episodes
    from gengap.rollout.episodes import group_by_sample

    model.eval()
    sampler = make_sampler(model, processor)
    out: dict[str, dict[str, float]] = {}
    for split in splits:
        count = min(n, task.split(split).size or n)
        samples = [task.sample(split, i, seed) for i in range(count)]
        greedy = run_episodes(sampler, task, samples, SamplingParams(
            k=1, max_new_tokens=task.max_new_tokens, seed=seed), verify_iters=1)
        sampled = run_episodes(sampler, task, samples, SamplingParams(
            k=k, temperature=temperature, top_k=top_k, max_new_tokens=task.max_new_tokens,
            seed=seed), verify_iters=1)
        rates = [sum(e.success for e in group) / k for group in group_by_sample(sampled, k)]
        out[split] = {
            "greedy": sum(e.success for e in greedy) / count,
            f"t{temperature}": sum(rates) / count,
            "all_wrong": sum(r == 0 for r in rates) / count,
            "all_right": sum(r == 1 for r in rates) / count,
            "n": count,
            "k": k,
        }
        names = sorted({m for e in greedy for m in e.verdicts[0].metrics})
        for name in names:  # e.g. the study's recognition accuracy (greedy, one attempt)
            values = [e.verdicts[0].metrics[name] for e in greedy if name in e.verdicts[0].metrics]
            out[split][name] = sum(values) / len(values)
    return out


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The run metadata of a cold-started checkpoint (quality numbers, timings, recipe)."""
    try:
        return json.loads((Path(path) / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"no cold-start metadata in {path}: {exc}") from None

