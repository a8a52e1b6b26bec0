"""What SFT and GRPO runs share: recipe keys, model loading, run directory, trainer arguments.

A run directory holds, next to TRL's ``checkpoint-N/`` folders:

    recipe.yaml     the resolved recipe (``gengap train sft --config DIR/recipe.yaml`` reruns it)
    run.json        provenance: recipe, seed, package versions, git commit, date, command
    curve.jsonl     ID / OOD evaluation at every `eval_every` steps (step 0 = the start point)
    budget.json     steps, prompts per step, epochs, wall time, tokens, estimated FLOPs, lr
    log_history.jsonl  TRL's logs (loss, grad_norm, frac_reward_zero_std, ...)
    final/          the final model + tokenizer / processor: LoRA adapters merged into the
                    weights (merge_adapters: true, the default), or a PEFT adapter directory
                    over the start model (false; `gengap.models.load_model` loads either)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gengap.config import recipe_dict, save_recipe
from gengap.errors import InputError
from gengap.io import read_jsonl, write_json, write_jsonl
from gengap.runinfo import run_metadata
from gengap.runs import RunDir

FINAL_DIR = "final"
R = TypeVar("R")


@dataclass(kw_only=True)
class TrainRecipe:
    """Keys every training recipe has (see `SFTRecipe` and `GRPORecipe` for the rest)."""

    model: str  # "tiny", a checkpoint directory, or a hub-style name already in the HF cache
    out: str  # run directory
    steps: int = 600  # optimizer steps (DC-SFT: 600)
    batch_size: int = 16  # prompts per optimizer step, summed over processes (DC-SFT: 16)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    # Constant by default: intermediate checkpoints of arms with the same lr stay comparable.
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    # The task whose verifier scores rewards (GRPO) and the checkpoint evaluations; SFT takes
    # the curated data's own task when unset. Resolved (all options) before the run starts.
    task: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    # LoRA through PEFT (DC-SFT's GRPO baseline: r=32, alpha=64).
    lora: bool = False
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"
    merge_adapters: bool = True  # final/: adapters merged (true) or kept as an adapter dir
    # Checkpoints and the curve: evaluate at every checkpoint unless eval_every says otherwise.
    save_every: int = 100
    save_only_model: bool = False
    eval_every: int | None = None  # None: = save_every; 0: no evaluation during training
    eval_at_start: bool = True
    eval_splits: list[str] | None = None  # None: every test and OOD split of the task
    eval_n: int = 200  # per split (a smaller finite split is evaluated whole)
    eval_verify_iters: int = 1
    eval_temperature: float = 0.0
    eval_seed: int = 0
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=list)  # tensorboard, trackio, wandb
    use_cpu: bool | None = None  # None: CPU when no GPU is visible
    bf16: bool | None = None  # None: bf16 on GPUs that support it
    gradient_checkpointing: bool = False  # saves GPU memory on real checkpoints, slows CPU runs
    resume: bool = True  # continue from the last checkpoint in `out`
    # Compute matching: stop when the study's FLOPs (6N(D_init + D) + 2N*D_buffer, in GFLOPs)
    # reach this; `steps` is then only a cap. None: train `steps` steps.
    max_gflops: float | None = None

    def validate(self) -> None:
        """Raise `InputError` for values no run can use."""
        positive = ("steps", "batch_size", "gradient_accumulation_steps", "save_every",
                    "eval_n", "eval_verify_iters", "logging_steps", "lora_r", "lora_alpha")
        for key in positive:
            if getattr(self, key) < 1:
                raise InputError(f"{key!r} must be >= 1, got {getattr(self, key)}")
        if self.learning_rate <= 0:
            raise InputError(f"'learning_rate' must be > 0, got {self.learning_rate}")
        if self.max_gflops is not None and self.max_gflops <= 0:
            raise InputError(f"'max_gflops' must be > 0, got {self.max_gflops}")
        if self.eval_every is not None and self.eval_every < 0:
            raise InputError(f"'eval_every' must be >= 0, got {self.eval_every}")
        if self.steps_between_evals and self.eval_splits == []:
            raise InputError("'eval_splits' is empty",
                             hint="give splits, leave it unset (all test splits), "
                                  "or set eval_every=0")

    @property
    def steps_between_evals(self) -> int:
        """0 when evaluation during training is off."""
        return self.save_every if self.eval_every is None else self.eval_every

    def per_device_batch(self, rows_per_prompt: int = 1) -> int:
        """Rows per device per micro-batch so that one optimizer step sees `batch_size` prompts."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rows = self.batch_size * rows_per_prompt
        share = world * self.gradient_accumulation_steps
        if rows % share:
            raise InputError(
                f"batch_size x rows per prompt ({rows}) is not divisible by processes x "
                f"gradient_accumulation_steps ({share})",
                hint="pick a batch_size / gradient_accumulation_steps that divide evenly",
            )
        return rows // share


@dataclass
class TrainResult:
    """What a finished run leaves behind (all of it also on disk in `out_dir`)."""

    out_dir: Path
    final_model: Path
    budget: dict[str, Any]
    curve: list[dict[str, Any]]


# ------------------------------------------------------------------------------------------
# Models


def recipe_task(recipe: TrainRecipe) -> Any:
    """The recipe's configured task (SFT without one: the task its curated data came from)."""
    from gengap.tasks.registry import build_task

    name, options = recipe.task, dict(recipe.task_options)
    if name is None:
        from gengap.difficulty.curate import meta_path

        data = getattr(recipe, "data", None)
        meta = meta_path(data) if data else None
        if meta is None or not meta.is_file():
            raise InputError("the recipe names no task", where="task",
                             hint="pass --task NAME (and -O key=value for its options)")
        source = json.loads(meta.read_text())["difficulty"]
        name, options = source["task"], {**source["task_options"], **options}
    return build_task(name, options, tiny=recipe.model == "tiny")


def resolve_task(recipe: R) -> tuple[R, Any]:
    """The recipe with its task and every task option filled in, and the task itself."""
    import dataclasses

    task = recipe_task(recipe)
    return dataclasses.replace(recipe, task=task.spec, task_options=task.options), task


def load_for_training(spec: str, recipe: TrainRecipe, task: Any = None) -> Any:
    """A `gengap.models.LoadedModel` for `spec` (model, processor, tokenizer, is_vlm, path).

    Loaded on the CPU: the trainer moves it to its own device.
    """
    from gengap.models import load_model

    return load_model(spec, task=task if task is not None else recipe_task(recipe),
                      device="cpu")


def lora_config(recipe: TrainRecipe) -> Any:
    """PEFT's `LoraConfig` from the recipe, or None when LoRA is off."""
    if not recipe.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
        target_modules=recipe.lora_target_modules, task_type="CAUSAL_LM",
    )


def count_parameters(model: Any) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def precision(recipe: TrainRecipe) -> dict[str, Any]:
    """Where and in which precision the trainer runs: device, mixed precision (bf16 / fp16 /
    no) and the master weights' dtype (float32: the model is loaded in full precision).

    `bf16: null` means bf16 on GPUs that support it and fp16 mixed precision on older GPUs;
    CPU runs stay float32 unless the recipe says bf16: true.
    """
    import torch

    use_cpu = not torch.cuda.is_available() if recipe.use_cpu is None else recipe.use_cpu
    if not use_cpu and not torch.cuda.is_available():
        raise InputError("the recipe asks for a GPU (use_cpu: false) but none is visible",
                         hint="use --device cpu (or auto)")
    bf16 = recipe.bf16
    if bf16 is None:
        bf16 = not use_cpu and torch.cuda.is_bf16_supported()
    fp16 = recipe.bf16 is None and not use_cpu and not bf16
    return {"device": "cpu" if use_cpu else "cuda", "use_cpu": use_cpu, "bf16": bool(bf16),
            "fp16": fp16, "mixed_precision": "bf16" if bf16 else "fp16" if fp16 else "no",
            "weights_dtype": "float32"}


def trainer_arguments(recipe: TrainRecipe, per_device_batch: int) -> dict[str, Any]:
    """The `TrainingArguments` fields SFTConfig and GRPOConfig take from the recipe alike."""
    runtime = precision(recipe)
    use_cpu, bf16 = runtime["use_cpu"], runtime["bf16"]
    return {
        "output_dir": recipe.out,
        "max_steps": recipe.steps,
        "per_device_train_batch_size": per_device_batch,
        "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler_type,
        "warmup_steps": recipe.warmup_steps,
        "weight_decay": recipe.weight_decay,
        "max_grad_norm": recipe.max_grad_norm,
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "save_strategy": "steps",
        "save_steps": recipe.save_every,
        "save_only_model": recipe.save_only_model,
        "report_to": list(recipe.report_to) or "none",
        "use_cpu": use_cpu,
        "bf16": bf16,
        "fp16": runtime["fp16"],
        # Always explicit: TRL's configs default to True, which only pays off on big models.
        "activation_checkpointing": recipe.gradient_checkpointing,
        "disable_tqdm": False,
    }


# ------------------------------------------------------------------------------------------
# Run directory


def _comparable(config: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    # Keys that do not change the result may differ between a run and its resumption; keys at
    # their default are left out, so a key added to the recipes later keeps old claims valid.
    ignore = {"resume", "report_to", "logging_steps", "out"}
    defaults = defaults or {}
    return {k: v for k, v in config.items()
            if k not in ignore and not (k in defaults and defaults[k] == v)}


def _defaults(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe class's default values (for keys an older recipe.yaml does not have)."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(recipe):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def run_dir(recipe: TrainRecipe, kind: str) -> RunDir:
    """The arm's run directory, claimed by the recipe keys that decide the result."""
    return RunDir(recipe.out, kind, _comparable(recipe_dict(recipe), _defaults(recipe)))


def prepare_run_dir(recipe: TrainRecipe, kind: str) -> str | None:
    """Claim the run directory, record the recipe and provenance; return a checkpoint to resume.

    A directory that holds another recipe's checkpoints is refused rather than mixed (the
    claim is `gengap.runs.RunDir`'s, as for every run directory).
    """
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(recipe.out)
    last = get_last_checkpoint(str(out)) if any(out.glob("checkpoint-*")) else None
    run_dir(recipe, kind).claim(has_results=last is not None or (out / FINAL_DIR).is_dir())
    recipe_path = out / "recipe.yaml"
    if (out / FINAL_DIR).is_dir():
        return last  # finished: keep its provenance as it was
    if last and not recipe.resume:
        raise InputError(f"{out} already has checkpoints",
                         hint="pass resume=true to continue, or use a new --out directory")
    save_recipe(recipe, recipe_path)
    meta = run_metadata(recipe_dict(recipe), recipe.seed)
    meta["kind"] = kind
    meta["resumed_from"] = last
    meta["runtime"] = precision(recipe)
    write_json(out / "run.json", meta)
    return last


def finished_result(out: Path) -> TrainResult | None:
    """The result of an already finished run in `out` (None if it is not finished)."""
    final, budget = out / FINAL_DIR, out / "budget.json"
    if not (final.is_dir() and budget.is_file()):
        return None
    return TrainResult(out, final, json.loads(budget.read_text()), read_curve(out))


def read_curve(out: Path) -> list[dict[str, Any]]:
    """The rows of DIR/curve.jsonl (empty if there is none)."""
    path = out / "curve.jsonl"
    return [row for _, row in read_jsonl(path)] if path.is_file() else []


def save_final(trainer: Any, processing_class: Any, out: Path, *, merge: bool = True,
               base: str | Path | None = None) -> Path:
    """Save the final model to DIR/final.

    LoRA adapters are merged into the weights (`merge`, so any tool can load them), or saved
    as a PEFT adapter directory whose `base_model_name_or_path` is `base` (the start
    checkpoint, absolute; itself possibly an adapter directory). Written aside and renamed
    into place: a kill during the save leaves no `final/`, and the rerun resumes from the last
    checkpoint and saves again.
    """
    from gengap.runs import atomic_dir

    final = out / FINAL_DIR
    model = trainer.model
    keep = not merge and hasattr(model, "peft_config")
    if keep and base is not None:
        for config in model.peft_config.values():
            config.base_model_name_or_path = str(Path(base).resolve())
    elif hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    write_jsonl(out / "log_history.jsonl", trainer.state.log_history)
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp)
        processing_class.save_pretrained(tmp)
    return final


def compute_callbacks(recipe: TrainRecipe, out: Path, static: dict[str, Any], flops: Any,
                      side: list[Any], eval_fn: Any, *, last: str | None, start: str | Path,
                      generated: Any = None) -> list[Any]:
    """The budget (with the study's FLOPs from the start's D_init), the curve (each row with
    its GFLOPs), the FLOPs limit when `max_gflops` is set, and the divergence guard, in the
    order the trainer must see them (budget first: its clock starts before step-0 evals)."""
    from gengap.cost import start_tokens
    from gengap.train.callbacks import BudgetCallback, CurveCallback, DivergenceGuard, FlopsLimit

    every = recipe.steps_between_evals
    curve = (CurveCallback(eval_fn, every, out / "curve.jsonl", at_start=recipe.eval_at_start)
             if every else None)
    excluded = [c for c in (curve, *side) if c is not None]
    budget = BudgetCallback(out / "budget.json", {**static, "max_gflops": recipe.max_gflops},
                            flops, excluded, resumed=last is not None,
                            start=start_tokens(start), generated=generated)
    if curve is not None:
        curve.budget = budget
    callbacks = [budget, *excluded, DivergenceGuard()]
    if recipe.max_gflops is not None:
        callbacks.append(FlopsLimit(budget, recipe.max_gflops))
    return callbacks


def finish(trainer: Any, loaded: Any, recipe: TrainRecipe, out: Path,
           budget: Any) -> TrainResult:
    """Save final/ with its compute record and return the run's result."""
    from gengap.cost import write_compute

    final = save_final(trainer, loaded.processor, out, merge=recipe.merge_adapters,
                       base=loaded.path)
    write_compute(final, budget.last["study_flops"], step=trainer.state.global_step,
                  kind=budget.static.get("kind"))
    return TrainResult(out, final, budget.last, read_curve(out))

