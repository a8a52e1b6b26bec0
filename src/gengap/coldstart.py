"""The cold start of the embedded tiny model: pretraining stand-in + the study's cold-start SFT.

A real checkpoint arrives pretrained: it can already write formulas and it knows both face
rules, so post-training on the ID variant meets OOD variants that sit inside its prior. The
tiny model starts random, so `coldstart` gives it that prior with TRL's `SFTTrainer` on the
task's `warmup` split (its own random stream, mixing both face rules and all suit colours):

1. `pretrain`: many fresh warmup samples at a high learning rate -- the stand-in for
   pretraining;
2. `sft`: a shorter pass at a low learning rate, as the study's cold-start SFT.

Both train on the oracle answer (`task.target`, one canonical solution per hand). Targets
drawn from all of a hand's solutions (`targets="any"`, ~50 per solvable hand) learn far more
slowly: with the text recipe's budget, 11% greedy ID success instead of 62.5% (measured
2026-11-22, n=200).

Image models start from the text cold start's decoder (same tokenizer, same Qwen2 config), so
their budget goes into learning to read the cards: a first `recognise` phase trains on the
recognised cards alone (`4,3,2,K|`), then `sft` on the full answers (`4,3,2,K|4*3+2+10`)
restores the arithmetic, now conditioned on the cards the model read (the recognition phase
teaches it to stop after `|`). Every image phase gives the vision tower + projector its own
learning rate (`Phase.vision_learning_rate`; why in `_optimizer`).
The result is an HF checkpoint cached under
`$GENGAP_CACHE/coldstart/<task>-<modality>-<hash of the recipe>`; a second call with the same
recipe returns at once. Runs are deterministic per seed on a given machine and thread count.
"""

from __future__ import annotations

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

# Bump when the meaning of a recipe changes (data format, training code), so old caches miss.
COLDSTART_FORMAT = 2
RECIPE_FILE = "coldstart_recipe.json"
METADATA_FILE = "run_metadata.json"  # written last: its presence marks a finished checkpoint
TARGET_MODES = ("any", "canonical", "cards")


@dataclass
class Phase:
    """One `SFTTrainer` pass over fresh warmup samples (one row per sample, one epoch)."""

    name: str
    steps: int
    batch_size: int
    learning_rate: float
    # "any": a random solution per row; "canonical": task.target; "cards": only the recognised
    # cards (`task.target_text(sample, "")`, e.g. `4,3,2,K|`), a pure recognition phase.
    targets: str = "canonical"
    warmup_fraction: float = 0.05
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    # Image models: learning rate of the vision tower + projector (None: `learning_rate`).
    vision_learning_rate: float | None = None


@dataclass
class ColdStartRecipe:
    """Everything that decides a cold-started checkpoint (its hash is the cache key)."""

    task: str
    modality: str = "text"
    seed: int = 0
    task_options: dict[str, Any] = field(default_factory=lambda: {"prompt_style": "compact"})
    model: dict[str, Any] = field(default_factory=dict)  # `build_tiny` overrides
    phases: list[Phase] = field(default_factory=list)
    # Image only: start the decoder from the text cold start made with these overrides.
    init_decoder_from_text: bool = True
    text_recipe: dict[str, Any] = field(default_factory=dict)
    # Quick quality check written into run_metadata.json (0 disables it).
    eval_n: int = 200
    eval_k: int = 4

    def key(self) -> str:
        """A short hash of the resolved recipe and the cold-start format version."""
        recipe = asdict(self)
        # Phase fields added later are left out at their default (None), so the hashes of
        # recipes that do not use them -- the cached text cold starts -- stay unchanged.
        for phase in recipe["phases"]:
            if phase.get("vision_learning_rate") is None:
                phase.pop("vision_learning_rate", None)
        blob = json.dumps({"format": COLDSTART_FORMAT, "recipe": recipe}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Defaults measured to land ID success at temperature 0.9 inside 30-70% within the time budget
# on 2 CPU cores (numbers in the README and the cold-start notes).
DEFAULT_MODEL: dict[str, dict[str, Any]] = {"text": {}, "image": {}}
DEFAULT_PHASES: dict[str, list[dict[str, Any]]] = {
    "text": [
        {"name": "pretrain", "steps": 625, "batch_size": 64, "learning_rate": 2e-3},
        {"name": "sft", "steps": 100, "batch_size": 64, "learning_rate": 3e-4},
    ],
    # Image: a pure recognition phase first (targets `4,3,2,K|`), then the full canonical
    # targets. Every phase gives the vision tower + projector its own learning rate: with one
    # shared rate the image tokens collapse into a constant soft prompt and recognition stays at
    # chance (see `_optimizer`). Measured (n=200, k=4, 2026-11-22): recognition 100%, ID
    # success at T=0.9 43.8%, rule OOD 16.8%, visual OOD 38.6%; 467 s with the text start.
    "image": [
        {"name": "recognise", "steps": 900, "batch_size": 32, "learning_rate": 3e-4,
         "vision_learning_rate": 3e-4, "targets": "cards"},
        {"name": "sft", "steps": 1000, "batch_size": 32, "learning_rate": 5e-4,
         "vision_learning_rate": 1e-4},
    ],
}


def resolve_recipe(task_name: str, modality: str, seed: int = 0,
                   **overrides: Any) -> ColdStartRecipe:
    """The default recipe for (task, modality) with `overrides` applied.

    `model` and `task_options` overrides merge into the defaults; `phases` replaces them (a
    list of `Phase` fields); `steps_scale=f` multiplies every phase's steps (reduced recipes
    for tests).
    """
    if modality not in DEFAULT_PHASES:
        raise InputError(f"unknown modality {modality!r}", hint="text or image")
    overrides = dict(overrides)
    scale = overrides.pop("steps_scale", 1.0)
    phases = overrides.pop("phases", DEFAULT_PHASES[modality])
    recipe = ColdStartRecipe(task=task_name, modality=modality, seed=seed)
    recipe.model = {**DEFAULT_MODEL[modality], **overrides.pop("model", {})}
    recipe.task_options = {**recipe.task_options, **overrides.pop("task_options", {})}
    try:
        recipe.phases = [p if isinstance(p, Phase) else Phase(**p) for p in phases]
    except TypeError as exc:
        raise InputError(f"bad cold-start phase: {exc}",
                         hint=f"phase keys: {', '.join(Phase.__dataclass_fields__)}") from None
    for key, value in overrides.items():
        if key not in ColdStartRecipe.__dataclass_fields__ or key in ("task", "modality"):
            raise InputError(f"unknown cold-start setting {key!r}",
                             hint=f"settings: {', '.join(ColdStartRecipe.__dataclass_fields__)}")
        setattr(recipe, key, value)
    for phase in recipe.phases:
        phase.steps = max(1, round(phase.steps * scale))
        if phase.targets not in TARGET_MODES:
            raise InputError(f"phase {phase.name!r}: targets must be one of {TARGET_MODES}")
    if modality == "image" and recipe.init_decoder_from_text:
        # The text cold start must build the same decoder the image model has.
        decoder = {k: v for k, v in recipe.model.items() if not k.startswith("vision_")}
        text = dict(recipe.text_recipe)
        text["model"] = {**decoder, **text.get("model", {})}
        if scale != 1.0:
            text.setdefault("steps_scale", scale)
        recipe.text_recipe = text
    return recipe


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


def coldstart(
    task_name: str,
    modality: str = "text",
    out_dir: str | Path | None = None,
    seed: int = 0,
    *,
    force: bool = False,
    **recipe_overrides: Any,
) -> Path:
    """Cold-start the tiny model for (task, modality); return its checkpoint directory.

    Cached: a finished checkpoint of the same recipe (same hash) is returned immediately.
    `out_dir` defaults to `cache_root()/coldstart/<task>-<modality>-<hash>`; `force` retrains.
    """
    from filelock import FileLock

    recipe = resolve_recipe(task_name, modality, seed, **recipe_overrides)
    key = recipe.key()
    out = Path(out_dir) if out_dir else cache_root() / "coldstart" / f"{task_name}-{modality}-{key}"
    if not force and is_finished(out, key):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # One trainer per checkpoint: parallel test workers or commands wait for the first.
    with FileLock(str(out) + ".lock"):
        if not force and is_finished(out, key):
            return out
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _run(recipe, key, tmp)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------
# Training


def _run(recipe: ColdStartRecipe, key: str, out: Path) -> None:
    """Train the recipe into `out` (recipe and metadata included)."""
    from gengap.models.tiny import build_tiny, count_parameters
    from gengap.tasks.registry import get_task

    start = time.perf_counter()
    task = get_task(recipe.task, modality=recipe.modality, **recipe.task_options)
    if not hasattr(task, "sample") or "warmup" not in task.splits:
        raise InputError(f"task {recipe.task!r} has no 'warmup' split to cold-start on")
    torch.manual_seed(recipe.seed)
    model, processor = build_tiny(recipe.modality, seed=recipe.seed, **recipe.model)
    text_init = None
    if recipe.modality == "image" and recipe.init_decoder_from_text:
        text_init = coldstart(recipe.task, "text", seed=recipe.seed, **recipe.text_recipe)
        _load_decoder(model, text_init)

    out.mkdir(parents=True)
    write_json(out / RECIPE_FILE, {"key": key, "format": COLDSTART_FORMAT, **asdict(recipe)})
    first_index = 0
    phase_log = []
    for phase in recipe.phases:
        t0 = time.perf_counter()
        rows = phase.steps * phase.batch_size
        dataset = warmup_dataset(task, processor, range(first_index, first_index + rows),
                                 recipe.seed, phase.targets, seed_salt=phase.name)
        first_index += rows  # every phase sees samples no earlier phase saw
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
        splits = [s for s in ("test-id", "test-ood-rule", "test-ood-visual") if s in task.splits]
        if recipe.modality != "image":
            splits = [s for s in splits if s != "test-ood-visual"]
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
        "quality": quality,
    })
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


def warmup_dataset(task: Any, processor: Any, indices: range, seed: int, targets: str,
                   seed_salt: str = "") -> Any:
    """Training rows for the warmup samples `indices`.

    Text tasks: pre-tokenized rows (`input_ids`, `labels` with the prompt masked), because
    TRL's per-row `Dataset.map` preparation costs milliseconds per row, which is minutes at
    the cold start's hundreds of thousands of rows; the text is the same chat template TRL
    would render. Image tasks: conversational prompt / completion rows with an `images`
    column, which TRL's vision collator processes batch by batch.

    targets="any" draws one of the sample's solutions per row when the task exposes them
    (`task.entry(sample).solutions` and `task.target_text`); other tasks fall back to
    `task.target`.
    """
    import datasets

    rng = random.Random(f"{seed}/{seed_salt}")
    can_vary = hasattr(task, "entry") and hasattr(task, "target_text")
    if targets == "cards" and not hasattr(task, "target_text"):
        raise InputError("targets='cards' needs a task with target_text (GeneralPoints)")
    prompts, completions, images = [], [], []
    for index in indices:
        sample = task.sample("warmup", index, seed)
        if targets == "any" and can_vary:
            target = task.target_text(sample, rng.choice(task.entry(sample).solutions))
        elif targets == "cards":
            target = task.target_text(sample, "")  # the recognition prefix alone
        else:
            target = task.target(sample)
        prompts.append(task.messages(sample))
        completions.append(target)
        image = task.image(sample)
        if image is not None:
            images.append([image])
    if images:
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


def _train_phase(model: Any, processor: Any, dataset: Any, phase: Phase, seed: int,
                 scratch: Path) -> float | None:
    """One TRL `SFTTrainer` pass (completion-only loss, one epoch, no checkpoints)."""
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        output_dir=str(scratch / phase.name),
        max_steps=phase.steps,
        per_device_train_batch_size=phase.batch_size,
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
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                         processing_class=processor,
                         optimizers=(_optimizer(model, phase), None))
    result = trainer.train()
    return float(result.training_loss) if result.training_loss is not None else None


def _optimizer(model: Any, phase: Phase) -> torch.optim.Optimizer | None:
    """AdamW with its own learning rate for the vision tower + projector, or None (TRL's).

    Why: with one learning rate for the whole LLaVA model, the fresh vision side takes the
    shortcut of a constant "soft prompt": the projected image tokens grow to norm ~50-100
    within tens of steps while differing between images by <0.1%, so the decoder cannot read
    them and recognition stays at chance. A vision learning rate no higher than the
    decoder's keeps the image tokens at the text embeddings' scale (norm ~1) while the decoder
    learns to read them, and recognition then rises (measured in the cold-start notes).
    TRL's own scheduler is still built on top (`optimizers=(optimizer, None)`).
    """
    vision_lr = phase.vision_learning_rate
    if vision_lr is None:
        return None
    vision, decoder = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_vision = "vision_tower" in name or "multi_modal_projector" in name
            (vision if is_vision else decoder).append(param)
    if not vision:  # a text model: nothing to split
        return None
    return torch.optim.AdamW(
        [{"params": decoder, "lr": phase.learning_rate},
         {"params": vision, "lr": vision_lr}],
        lr=phase.learning_rate, weight_decay=phase.weight_decay,
    )


# ------------------------------------------------------------------------------------------
# Measuring (a plain batched `generate` loop; the rollout engine lives in gengap.rollout)


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
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """Single-attempt success per split: greedy and at `temperature` (k samples per prompt).

    Also reports how pass rates spread over samples (share with 0/k and k/k correct), the
    quantity difficulty buckets are made of.
    """
    model.eval()
    out: dict[str, dict[str, float]] = {}
    for split in splits:
        samples = [task.sample(split, i, seed) for i in range(n)]
        greedy = _generate(model, processor, task, samples, 1, None, top_k, seed, batch_size)
        sampled = _generate(model, processor, task, samples, k, temperature, top_k, seed,
                            batch_size)
        greedy_verdicts = [task.verify(s, c[0]) for s, c in zip(samples, greedy, strict=True)]
        rates = [sum(task.verify(s, x).correct for x in c) / k
                 for s, c in zip(samples, sampled, strict=True)]
        out[split] = {
            "greedy": sum(v.correct for v in greedy_verdicts) / n,
            f"t{temperature}": sum(rates) / n,
            "all_wrong": sum(r == 0 for r in rates) / n,
            "all_right": sum(r == 1 for r in rates) / n,
            "n": n,
            "k": k,
        }
        recognised = [v.info["recognised"] for v in greedy_verdicts if "recognised" in v.info]
        if recognised:  # image tasks: the study's recognition accuracy (greedy, one attempt)
            out[split]["recognition"] = sum(recognised) / len(recognised)
    return out


def _generate(model: Any, processor: Any, task: Any, samples: list[Any], k: int,
              temperature: float | None, top_k: int, seed: int, batch_size: int
              ) -> list[list[str]]:
    """k completions per sample with batched HF `generate` (greedy if temperature is None)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    results: list[list[str]] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        texts = [processor.apply_chat_template(task.messages(s), add_generation_prompt=True,
                                               tokenize=False) for s in chunk]
        images = [task.image(s) for s in chunk]
        if images[0] is not None:
            inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        else:
            inputs = tokenizer(texts, return_tensors="pt", padding=True)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k,
                    "top_p": 1.0} if temperature else {"do_sample": False}
        generated = model.generate(
            **inputs, max_new_tokens=task.max_new_tokens, num_return_sequences=k,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
        new = generated[:, inputs["input_ids"].shape[1]:]
        decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
        results.extend(decoded[i * k : (i + 1) * k] for i in range(len(chunk)))
    return results


def load_metadata(path: str | Path) -> dict[str, Any]:
    """The run metadata of a cold-started checkpoint (quality numbers, timings, recipe)."""
    try:
        return json.loads((Path(path) / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"no cold-start metadata in {path}: {exc}") from None

