"""Trainer callbacks: the ID/OOD curve, the compute budget, and per-bucket gradient norms.

All three are `transformers.TrainerCallback`s, so they work with any TRL trainer. They write
JSON files in the run directory (see `gengap.train.common`); time spent inside them (wall and
CPU, a `gengap.cost.Clock` each) is kept out of the training budget, so arms with and without
curves have comparable budgets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from transformers import TrainerCallback

from gengap import cost
from gengap.cost import Clock, now
from gengap.io import read_jsonl, write_json, write_jsonl
from gengap.train.common import TrainRecipe

EvalFn = Callable[[Any, Any, int], Mapping[str, Mapping[str, Any]]]
"""(model, tokenizer or processor, step) -> {split: {metric: value}}."""


def task_eval_fn(recipe: TrainRecipe) -> EvalFn:
    """`gengap eval` on the model being trained: greedy episodes on the recipe's eval splits.

    Each evaluation writes its own `gengap eval` directory (DIR/eval/step-N/) and resumes there.
    """
    out = Path(recipe.out)

    def evaluate_checkpoint(model: Any, processing_class: Any, step: int) -> dict[str, Any]:
        from gengap.evaluate import EvalConfig, evaluate

        config = EvalConfig(
            model=str(out / f"checkpoint-{step}"), task=recipe.task,
            splits=recipe.eval_splits, n=recipe.eval_n,
            verify_iters=recipe.eval_verify_iters, temperature=recipe.eval_temperature,
            seed=recipe.eval_seed, task_options=dict(recipe.task_options), clip_n=True,
        )
        # `evaluate` needs only .model, .processor and .path of a LoadedModel: the in-memory
        # model (LoRA adapters included) is evaluated without a save/reload round trip.
        loaded = SimpleNamespace(model=model, processor=processing_class, path=config.model)
        result = evaluate(config, out / "eval" / f"step-{step}", loaded=loaded, progress=False)
        return result["results"]

    return evaluate_checkpoint


class CurveCallback(TrainerCallback):
    """Every `every` steps (and at step 0), evaluate and append rows to DIR/curve.jsonl.

    Rows: ``{"step", "epoch", "split", <scalar metrics of the split>}``. Steps already in the
    file (a resumed run) are not evaluated again.
    """

    def __init__(self, eval_fn: EvalFn, every: int, path: str | Path, *, at_start: bool = True,
                 budget: BudgetCallback | None = None):
        self.eval_fn, self.every, self.path, self.at_start = eval_fn, every, Path(path), at_start
        # With a budget, each row also carries the study's FLOPs at that step (`gflops`): the
        # report plots success against training compute.
        self.budget = budget
        self.rows = [row for _, row in read_jsonl(self.path)] if self.path.is_file() else []
        self.clock = Clock()

    @property
    def seconds(self) -> float:
        return self.clock.wall

    def _evaluate(self, state: Any, model: Any, processing_class: Any) -> None:
        step = state.global_step
        if not state.is_world_process_zero or any(r["step"] == step for r in self.rows):
            return
        with self.clock:
            results = self.eval_fn(model, processing_class, step)
        epoch = round(state.epoch or 0.0, 4)
        compute = {}
        if self.budget is not None:
            study = self.budget.budget(state)["study_flops"]
            compute = {"gflops": study["gflops"], "tokens_trained": study["D"],
                       "tokens_buffer": study["D_buffer"]}
        for split, metrics in results.items():
            scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            self.rows.append({"step": step, "epoch": epoch, "split": split, **scalars,
                              **compute})
        write_jsonl(self.path, self.rows)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.at_start and state.global_step == 0:
            self._evaluate(state, kwargs["model"], kwargs["processing_class"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if self.every and (step % self.every == 0 or step == state.max_steps):
            self._evaluate(state, kwargs["model"], kwargs["processing_class"])

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # A run stopped before max_steps (a FLOPs match) still ends its curve at its last step.
        if self.every:
            self._evaluate(state, kwargs["model"], kwargs["processing_class"])


class BucketGradNormCallback(TrainerCallback):
    """DC-SFT's mechanism probe: the gradient norm of a fixed batch from each difficulty bucket.

    Every `every` steps, after the optimizer step (gradients already zeroed), it runs forward and
    backward on each bucket's probe batch, records the norm of the trainable parameters'
    gradient and zeroes it again: the optimizer never sees it. Written to DIR/grad_norms.jsonl
    as ``{"step", "bucket", "grad_norm", "loss", "rows"}``. The probe batches are rows of the
    trainer's own (tokenized) dataset and go through its collator, so the loss is exactly the
    training loss. The probe sets are the trainer's `eval_dataset` dict ({bucket: rows}), which
    SFTTrainer tokenizes like the training rows. Single-process only (under DDP each rank
    would probe its own copy).
    """

    def __init__(self, trainer: Any, buckets: Sequence[str], every: int, path: str | Path):
        self.trainer, self.buckets, self.every = trainer, list(buckets), every
        self.path = Path(path)
        self.rows = [row for _, row in read_jsonl(self.path)] if self.path.is_file() else []
        self.clock = Clock()

    @property
    def seconds(self) -> float:
        return self.clock.wall

    def probe(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """Gradient norm and loss of each bucket's probe batch at the current weights."""
        trainer = self.trainer
        params = [p for p in model.parameters() if p.requires_grad]
        was_training = model.training
        model.eval()  # no dropout: the norm measures the data, not the dropout mask
        out = []
        try:
            for bucket in self.buckets:
                rows = list(trainer.eval_dataset[bucket])
                batch = trainer.data_collator(rows)
                batch = trainer._prepare_inputs(batch)  # device placement, as in training
                model.zero_grad(set_to_none=True)
                with trainer.accelerator.autocast():
                    loss = model(**batch).loss
                loss.backward()
                grads = [p.grad for p in params if p.grad is not None]
                norm = torch.nn.utils.get_total_norm(grads).item() if grads else 0.0
                out.append({"bucket": bucket, "grad_norm": norm, "loss": loss.item(),
                            "rows": len(rows)})
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return out

    def _record(self, state: Any, model: Any) -> None:
        step = state.global_step
        if any(r["step"] == step for r in self.rows):
            return
        with self.clock:
            self.rows += [{"step": step, **row} for row in self.probe(model)]
        write_jsonl(self.path, self.rows)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 0:
            self._record(state, kwargs["model"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if step % self.every == 0 or step == state.max_steps:
            self._record(state, kwargs["model"])


class BudgetCallback(TrainerCallback):
    """Writes DIR/budget.json at every checkpoint and at the end of training.

    static:   fixed facts of the arm (kind, prompts per step, dataset rows, parameters, lr ...).
    flops:    tokens processed -> {component: estimated FLOPs} (`gengap.cost`).
    excluded: callbacks whose `.clock` (evaluation, probes) is not training time.

    Costs: ``wall_seconds`` and ``cpu_seconds`` (process CPU time, all threads) of training
    alone, and ``flops``; a resumed run adds what the earlier runs recorded.
    """

    def __init__(self, path: str | Path, static: dict[str, Any],
                 flops: Callable[[int], dict[str, float]], excluded: Sequence[Any] = (),
                 *, resumed: bool = False, start: Mapping[str, Any] | None = None,
                 generated: Callable[[], int] | None = None):
        self.path, self.static, self.flops, self.excluded = Path(path), static, flops, excluded
        # The study's FLOPs: D_init from the start checkpoint (`cost.start_tokens`), D_buffer
        # from `generated` (tokens sampled into the rollout buffer so far; None: SFT, none).
        self.start_record = dict(start or {"tokens_trained": 0, "tokens_buffer": 0,
                                           "known": False})
        self.generated = generated
        self.prior_seconds = self.prior_cpu = 0.0
        self.prior_generated = 0
        if resumed and self.path.is_file():
            old = json.loads(self.path.read_text())
            self.prior_seconds = old.get("wall_seconds", 0.0)
            self.prior_cpu = old.get("cpu_seconds") or 0.0
            self.prior_generated = (old.get("study_flops") or {}).get("D_buffer_run", 0)
        self.start, self.start_cpu = now()
        self.last: dict[str, Any] = {}  # the budget as last written

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start, self.start_cpu = now()

    def budget(self, state: Any) -> dict[str, Any]:
        """The budget so far."""
        clocks = [c.clock for c in self.excluded if hasattr(c, "clock")]
        side = sum(c.wall for c in clocks)
        side_cpu = sum(c.cpu for c in clocks)
        wall_now, cpu_now = now()
        wall = self.prior_seconds + wall_now - self.start - side
        cpu = self.prior_cpu + cpu_now - self.start_cpu - side_cpu
        tokens = int(state.num_input_tokens_seen or 0)
        rows, prompts = self.static["dataset_rows"], self.static["prompts_per_step"]
        flops = self.flops(tokens)
        out = {
            **self.static,
            "steps_done": state.global_step,
            "epochs": round(state.global_step * prompts / rows, 4) if rows else None,
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),  # process CPU time: robust to other processes' load
            "seconds_per_step": round(wall / state.global_step, 4) if state.global_step else None,
            "side_seconds": round(side, 3),  # evaluation and probes, not in wall_seconds
            "side_cpu_seconds": round(side_cpu, 3),
            "tokens": tokens,
            "flops": {**flops, "total": sum(flops.values())},
        }
        generated = self.prior_generated + (self.generated() if self.generated else 0)
        study = cost.study_flops(
            int(self.static["parameters"]), trained_tokens=tokens, buffer_tokens=generated,
            init_tokens=int(self.start_record["tokens_trained"]),
            init_buffer_tokens=int(self.start_record["tokens_buffer"]))
        out["study_flops"] = {**study, "D_buffer_run": generated,
                              "D_init_known": bool(self.start_record.get("known"))}
        out["gflops"] = study["gflops"]
        zero_std = [log["frac_reward_zero_std"] for log in state.log_history
                    if log.get("frac_reward_zero_std") is not None]
        if zero_std:
            out["frac_reward_zero_std"] = round(sum(zero_std) / len(zero_std), 4)
        return out

    def _write(self, state: Any) -> None:
        self.last = self.budget(state)
        if state.is_world_process_zero:
            write_json(self.path, self.last)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(state)
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            cost.write_compute(checkpoint, self.last["study_flops"], step=state.global_step,
                               kind=self.static.get("kind"))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(state)


class DivergenceGuard(TrainerCallback):
    """Stop a run whose loss turned NaN or infinite, instead of saving a broken model."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
               **kwargs: Any) -> None:
        import math

        from gengap.errors import InputError

        loss = (logs or {}).get("loss")
        if isinstance(loss, int | float) and not math.isfinite(loss):
            raise InputError(
                f"training diverged: the loss is {loss} at step {state.global_step}",
                where=args.output_dir,
                hint="lower the learning rate; the run directory keeps the last good checkpoint",
            )


class FlopsLimit(TrainerCallback):
    """Stop training once the study's FLOPs (`BudgetCallback`'s, D_init included) reach
    `max_gflops`: arms matched in compute rather than in steps (`steps` is then a cap)."""

    def __init__(self, budget: BudgetCallback, max_gflops: float):
        self.budget, self.max_gflops = budget, max_gflops
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.budget.budget(state)["study_flops"]["gflops"] >= self.max_gflops:
            self.stopped_at = state.global_step
            control.should_training_stop = True

