"""`gengap train sft`: supervised fine-tuning on a curated file with TRL's `SFTTrainer`.

The recipe (`SFTRecipe`, keys of `configs/train/sft*.yaml`) maps one-to-one onto the command;
`train_sft` is the whole script: load data and model, configure TRL, attach the curve, budget
and per-bucket gradient-norm callbacks, train, save.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gengap.cost import sft_flops
from gengap.difficulty.estimate import BUCKETS
from gengap.errors import InputError
from gengap.train.callbacks import BucketGradNormCallback, EvalFn, task_eval_fn
from gengap.train.common import (
    TrainRecipe,
    TrainResult,
    compute_callbacks,
    count_parameters,
    finish,
    finished_result,
    load_for_training,
    lora_config,
    prepare_run_dir,
    resolve_task,
    run_dir,
    trainer_arguments,
)


@dataclass(kw_only=True)
class SFTRecipe(TrainRecipe):
    """`gengap train sft` keys (plus the shared ones of `TrainRecipe`)."""

    data: str  # curated JSONL / Parquet (conversational prompt / completion, `gengap curate`)
    max_length: int | None = 1024  # prompt + completion tokens; longer rows are truncated
    # Gradient norm of a fixed probe batch per difficulty bucket (0 = off).
    grad_norm_every: int = 50
    grad_norm_probe: int = 8  # rows per bucket
    # Where probe rows come from (default: `data`). Point all arms at the same file (e.g. the
    # `all` variant) to compare their gradient norms on identical rows.
    grad_norm_data: str | None = None

    def validate(self) -> None:
        """Raise `InputError` for values no run can use."""
        super().validate()
        if self.grad_norm_every < 0 or self.grad_norm_probe < 1:
            raise InputError("'grad_norm_every' must be >= 0 and 'grad_norm_probe' >= 1")
        for key in ("data", "grad_norm_data"):
            value = getattr(self, key)
            if value is not None and not Path(value).is_file():
                raise InputError(f"no such file: {value}", where=key,
                                 hint="write one with `gengap curate`")


def load_sft_data(path: str | Path) -> Any:
    """A curated file as a `datasets.Dataset` (images decoded), checked for TRL's format."""
    from gengap.difficulty.curate import load_curated

    dataset = load_curated(path)
    missing = {"prompt", "completion"} - set(dataset.column_names)
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(sorted(missing))}", where=str(path),
            hint="SFT data is conversational prompt/completion rows (see `gengap curate`)",
        )
    if len(dataset) == 0:
        raise InputError("the dataset is empty", where=str(path))
    return dataset


def probe_sets(dataset: Any, rows: int, seed: int = 0) -> dict[str, Any]:
    """Up to `rows` rows of each difficulty bucket, drawn once with a fixed seed."""
    if "bucket" not in dataset.column_names:
        return {}
    buckets = dataset["bucket"]
    rng = random.Random(seed)
    out = {}
    for bucket in BUCKETS:
        indices = [i for i, b in enumerate(buckets) if b == bucket]
        if indices:
            out[bucket] = dataset.select(sorted(rng.sample(indices, min(rows, len(indices)))))
    return out


def train_sft(recipe: SFTRecipe, *, eval_fn: EvalFn | None = None) -> TrainResult:
    """Run (or resume, or return the finished) SFT arm described by `recipe`.

    `eval_fn` replaces `gengap eval` at checkpoints (tests pass a fake); by default the recipe's
    eval splits are evaluated whenever `eval_every` > 0.
    """
    out = Path(recipe.out)
    recipe, task = resolve_task(recipe)
    last = prepare_run_dir(recipe, "sft")
    if (done := finished_result(out)) is not None:
        return done
    with run_dir(recipe, "sft").lock():  # one trainer per run directory
        return _train(recipe, task, out, last, eval_fn)


def _train(recipe: Any, task: Any, out: Path, last: str | None,
           eval_fn: EvalFn | None) -> TrainResult:
    """Train from `last` (or the start) to the end and save the final model."""
    from trl import SFTConfig, SFTTrainer

    dataset = load_sft_data(recipe.data)
    probes = probe_sets(load_sft_data(recipe.grad_norm_data or recipe.data),
                        recipe.grad_norm_probe) if recipe.grad_norm_every else {}
    loaded = load_for_training(recipe.model, recipe, task)
    config = SFTConfig(
        **trainer_arguments(recipe, recipe.per_device_batch()),
        max_length=recipe.max_length,
        completion_only_loss=True,  # DC-SFT trains on the answer, not the prompt
        include_num_input_tokens_seen="non_padding",
        eval_strategy="no",
    )
    trainer = SFTTrainer(
        model=loaded.model, args=config, train_dataset=dataset,
        # The probe sets ride along as eval datasets so SFTTrainer tokenizes them exactly like
        # the training rows; no evaluation loop ever runs on them (eval_strategy="no").
        eval_dataset=probes or None,
        processing_class=loaded.processor, peft_config=lora_config(recipe),
    )
    from gengap.models.compat import adapt_sft_collator

    trainer.data_collator = adapt_sft_collator(trainer.data_collator, trainer.model,
                                               loaded.processor)
    n_params, trainable = count_parameters(trainer.model)
    side: list[Any] = []
    if probes:
        side.append(BucketGradNormCallback(trainer, list(probes), recipe.grad_norm_every,
                                           out / "grad_norms.jsonl"))
    static = {
        "kind": "sft", "steps": recipe.steps, "prompts_per_step": recipe.batch_size,
        "dataset_rows": len(dataset), "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler_type, "lora": recipe.lora,
        "parameters": n_params, "trainable_parameters": trainable, "data": recipe.data,
        "buckets": _bucket_counts(dataset),
    }
    callbacks = compute_callbacks(recipe, out, static, sft_flops(n_params, recipe.lora), side,
                                  eval_fn or task_eval_fn(recipe), last=last, start=loaded.path)
    for callback in callbacks:
        trainer.add_callback(callback)

    trainer.train(resume_from_checkpoint=last)
    return finish(trainer, loaded, recipe, out, callbacks[0])


def _bucket_counts(dataset: Any) -> dict[str, int] | None:
    if "bucket" not in dataset.column_names:
        return None
    buckets = dataset["bucket"]
    return {b: buckets.count(b) for b in BUCKETS}
