"""The `gengap` command line: each command is a thin call into a module.

One syntax everywhere:

- a task is ``--task NAME`` (a built-in, a plugin, or ``module:Class`` / ``file.py:Class``)
  with ``-O/--task-option key=value`` (repeatable), typed by the task's config dataclass;
- recipes and presets take trailing ``key=value`` words (dotted keys set one entry of a
  mapping: ``task_options.modality=image``);
- ``--device auto`` (CUDA when visible, else CPU) on every command that runs a model, and
  ``--dtype auto`` (float32 on CPU, bfloat16 -- else float16 -- on a GPU) where it samples.

Bad input (an `InputError`) prints what is wrong, where and how to fix it, and exits with code 2.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gengap.errors import InputError

app = typer.Typer(
    name="gengap",
    help="Study and close the generalization gap between SFT and RL post-training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train one arm with TRL (SFT or GRPO) from a YAML recipe.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")
export_app = typer.Typer(help="Write a task in another tool's format (verl).",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")

# No markup: messages carry data such as "[0, 1]" that rich would read as tags.
console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


STATE = {"debug": os.environ.get("GENGAP_DEBUG", "") not in ("", "0")}


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of unexpected errors (or GENGAP_DEBUG=1).")] = False,
) -> None:
    """Study and close the generalization gap between SFT and RL post-training."""
    STATE["debug"] = STATE["debug"] or debug


_OS_HINTS = {
    errno.ENOSPC: "free some disk space, then rerun the same command: finished parts are kept",
    errno.EDQUOT: "free some disk space, then rerun the same command: finished parts are kept",
    errno.EACCES: "choose a path you can write to (or fix its permissions)",
    errno.EPERM: "choose a path you can write to (or fix its permissions)",
    errno.EROFS: "the file system is read-only: choose another --out path",
    errno.EISDIR: "a directory is in the way: give a file path",
    errno.ENOTDIR: "a file is in the way: part of the path is not a directory",
    errno.ENOENT: "check the path",
}


def _error(message: str, hint: str | None = None) -> None:
    text = Text("error: ", style="bold red") + Text(message)
    if hint:
        text += Text(f"\n  hint: {hint}")
    console.print(text)


def friendly_errors(fn: F) -> F:
    """The CLI's error boundary: every expected failure is a message and exit code 2.

    Bad input (`InputError`) names what, where and the fix; I/O failures (disk full, no
    permission, a file in the way) name the file and what to do; Ctrl-C exits 130 with the
    note that a rerun continues. Anything else is a bug: one line saying so and where to report
    it, exit code 1, the traceback only with --debug.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except InputError as exc:
            _error(str(exc))
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            _error("interrupted", "rerun the same command to continue where it stopped")
            raise typer.Exit(code=130) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            _error(f"{exc.strerror or exc}{where}", _OS_HINTS.get(exc.errno or -1))
            raise typer.Exit(code=2) from None
        except MemoryError:
            _error("out of memory", "use a smaller batch or model, or free memory")
            raise typer.Exit(code=2) from None
        except Exception as exc:
            if STATE["debug"]:
                raise
            _error(f"internal error: {type(exc).__name__}: {exc}",
                   "this is a bug in gengap, not in your input: rerun with --debug for the "
                   "traceback and report it (command, traceback, `pip list`) to the gengap "
                   "issue tracker")
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


# -- shared options ------------------------------------------------------------------------

TaskName = Annotated[str, typer.Option(
    "--task", help="Task: a name from `gengap tasks`, or module:Class / file.py:Class.")]
TaskOptions = Annotated[list[str] | None, typer.Option(
    "--task-option", "-O", help="Task option key=value (repeatable); see `gengap tasks --task "
    "NAME`.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when visible, else CPU), cpu, cuda[:N].")]
Dtype = Annotated[str, typer.Option(
    help="auto (float32 on CPU; bfloat16, else float16, on a GPU), float32, bfloat16, float16.")]
TensorParallel = Annotated[int | None, typer.Option(
    help="vLLM: GPUs to shard the model over (default 1).", min=1)]
GpuMemory = Annotated[float | None, typer.Option(
    help="vLLM: share of each GPU's memory for weights and KV cache (default 0.9).")]
ModelSpec = Annotated[str, typer.Option(
    help="'tiny' (the embedded default, cold-started per task) or a checkpoint directory.")]
Overrides = Annotated[list[str] | None, typer.Argument(
    help="key=value overrides, e.g. learning_rate=3e-5 task_options.modality=image",
    show_default=False)]


def _task(name: str, words: list[str] | None, *, model: str | None = None) -> Any:
    """Build the task the command names; the tiny model gets the task's tiny options."""
    from gengap.tasks.registry import build_task

    return build_task(name, words=words or [], tiny=model == "tiny")


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


# -- tasks and data ------------------------------------------------------------------------


@app.command("tasks")
@friendly_errors
def tasks_command(
    task: Annotated[str | None, typer.Option(help="Show one task's options and splits.")] = None,
    task_option: TaskOptions = None,
) -> None:
    """List the tasks, their splits (by role) and their options."""
    from gengap.tasks.registry import known_tasks, option_docs, task_class

    out = Console()
    names = [task] if task else known_tasks()
    for name in names:
        try:
            cls = task_class(name)
        except InputError as exc:
            if task:
                raise
            out.print(Text(f"{name}", style="bold") + Text(f"  (unavailable: {exc.message})"))
            continue
        out.print(Text(f"{name}", style="bold") + Text(f"  {cls.description}"))
        try:
            built = _task(name, task_option if task else None)
        except InputError as exc:  # e.g. a dataset task needs its path
            if task_option:
                raise
            built = None
            reason = exc.message
        table = Table(show_header=True, box=None, pad_edge=False)
        for column in ("split", "role", "size", "axis", "about"):
            table.add_column(column)
        if built is not None:
            for s in built.splits.values():
                table.add_row(s.name, s.role, str(s.size) if s.size else "generated",
                              s.axis or "", s.description)
            out.print(table)
        else:
            out.print(f"  splits depend on its options ({reason})")
        options = Table(show_header=True, box=None, pad_edge=False)
        for column in ("option", "default", "what"):
            options.add_column(column)
        for option, help_, default in option_docs(cls):
            options.add_row(f"-O {option}=", repr(default), help_)
        out.print(options)
        out.print("")


@app.command("data")
@friendly_errors
def data_command(
    task: TaskName,
    split: Annotated[str, typer.Option(help="Split name (see `gengap tasks`).")],
    out: Annotated[Path, typer.Option(help="Output JSONL file (images go beside it).")],
    n: Annotated[int | None, typer.Option(help="Samples (default: a finite split whole).")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed of the split's samples.")] = 0,
    task_option: TaskOptions = None,
) -> None:
    """Write a task's split as JSONL: one row per sample (PNG images beside it)."""
    from gengap.export import export_split

    built = _task(task, task_option)
    written = export_split(built, split, n, seed, out)
    console.print(f"wrote {written} samples to {out}")


@export_app.command("verl")
@friendly_errors
def export_verl_command(
    task: TaskName,
    out: Annotated[Path, typer.Option(help="Output directory.")],
    n: Annotated[int | None, typer.Option(help="Train samples (default 2000).")] = None,
    test_n: Annotated[int | None, typer.Option(help="Samples per test / OOD split.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the splits' samples.")] = 0,
    task_option: TaskOptions = None,
) -> None:
    """A verl job: Parquet datasets, a compute_score reward module, PPO and GRPO launchers."""
    from gengap.export.verl import export_verl

    info = export_verl(_task(task, task_option), out, n=n, test_n=test_n, seed=seed)
    for split, entry in info["splits"].items():
        console.print(f"{split}: {entry['rows']} rows -> {out / entry['file']}")
    console.print(f"reward: {out / info['reward_module']}; launchers: run_ppo.sh, run_grpo.sh")


@app.command("score")
@friendly_errors
def score_command(
    task: TaskName,
    input: Annotated[Path, typer.Option("--input", help="JSONL rows with a `completion`.")],
    output: Annotated[Path, typer.Option(help="JSONL: input rows + reward, correct, feedback.")],
    task_option: TaskOptions = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Count and skip bad rows instead of stopping.")
    ] = False,
) -> None:
    """Score completions with the task's verifier."""
    from gengap.scoring import score_file

    stats = score_file(_task(task, task_option), input, output, skip_bad=skip_bad)
    console.print(
        f"scored {stats.scored} rows -> {output}: {stats.correct} correct "
        f"({stats.accuracy:.1%}), mean reward {stats.mean_reward:+.3f}"
        + (f"; skipped {stats.skipped} bad rows" if stats.skipped else "")
    )
    for line, reason in stats.bad_rows[:5]:
        console.print(f"  skipped line {line}: {reason}", highlight=False)


# -- models: cold start, evaluation, difficulty ----------------------------------------------


@app.command("coldstart")
@friendly_errors
def coldstart_command(
    task: TaskName,
    overrides: Overrides = None,
    task_option: TaskOptions = None,
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint directory (default: the gengap cache).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the warmup stream and the weights.")] = 0,
    force: Annotated[bool, typer.Option(help="Retrain even if cached.")] = False,
) -> None:
    """Cold-start the embedded tiny model for a task (cached by a hash of its recipe).

    Recipe overrides: steps_scale=0.5, model={hidden_size: 96}, phases=[...], eval_n=0.
    """
    import json

    import yaml

    from gengap.coldstart import coldstart, load_metadata
    from gengap.config import parse_overrides

    recipe: dict[str, Any] = {}
    for key, value in parse_overrides(overrides or []).items():
        try:
            recipe[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError(f"value of {key!r} is not valid YAML: {exc}",
                             where=f"override {key}={value}") from None
    path = coldstart(_task(task, task_option, model="tiny"), out, seed, force=force, **recipe)
    meta = load_metadata(path)
    console.print(f"cold-started checkpoint: {path}")
    summary = {k: meta.get(k) for k in ("parameters", "train_seconds", "quality")}
    console.print(json.dumps(summary, indent=1), highlight=False)


@app.command("eval")
@friendly_errors
def eval_command(
    model: ModelSpec,
    task: TaskName,
    out: Annotated[Path, typer.Option(help="Directory for results.json and samples.jsonl.")],
    task_option: TaskOptions = None,
    splits: Annotated[
        str | None, typer.Option(help="Comma-separated splits (default: every test and OOD "
                                      "split).")
    ] = None,
    n: Annotated[int | None, typer.Option(
        help="Episodes per split (default: a finite split whole, else 234).")] = None,
    verify_iters: Annotated[
        int | None, typer.Option(help="Attempts per episode (default: the task's).", min=1)
    ] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy.", min=0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the splits and of sampling.")] = 0,
    backend: Annotated[str, typer.Option(help="hf or vllm")] = "hf",
    device: Device = "auto",
    dtype: Dtype = "auto",
    tensor_parallel_size: TensorParallel = None,
    gpu_memory_utilization: GpuMemory = None,
) -> None:
    """Evaluate a model on ID / OOD splits: results.json + samples.jsonl."""
    from gengap.evaluate import EvalConfig, evaluate, format_table
    from gengap.rollout.factory import backend_options

    built = _task(task, task_option, model=model)
    config = EvalConfig(
        model=model, task=task, splits=_split_list(splits), n=n, verify_iters=verify_iters,
        temperature=temperature, seed=seed, backend=backend, task_options=built.options,
    )
    options = backend_options(backend, tensor_parallel_size=tensor_parallel_size,
                              gpu_memory_utilization=gpu_memory_utilization)
    payload = evaluate(config, out, device=device, dtype=dtype, backend_options=options)
    Console().print(format_table(payload["results"]), highlight=False)
    console.print(f"results in {out / 'results.json'}")


@app.command("difficulty")
@friendly_errors
def difficulty_command(
    model: ModelSpec,
    task: TaskName,
    out: Annotated[Path, typer.Option(help="Run directory (resumes if it holds this run).")],
    task_option: TaskOptions = None,
    split: Annotated[str | None, typer.Option(help="Split to rate (default: the train split).")]
    = None,
    n: Annotated[int | None, typer.Option(
        help="Samples: indices 0..n-1 (default: a finite split whole, else 2000).")] = None,
    k: Annotated[int, typer.Option(help="Rollouts per sample.", min=1)] = 8,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    data_seed: Annotated[
        int, typer.Option(help="Seed of the split's samples (match the training set's).")
    ] = 0,
    verify_iters: Annotated[int, typer.Option(
        help="Attempts per episode (1 = single-shot pass rate, as DC-SFT).", min=1)] = 1,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.", min=0)] = 0.9,
    top_p: Annotated[float, typer.Option(help="Nucleus mass.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Top-k (0 = off).", min=0)] = 50,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Budget per rollout (default: the task's).", min=1)
    ] = None,
    backend: Annotated[str, typer.Option(help="hf or vllm")] = "hf",
    shard: Annotated[
        str | None, typer.Option(help="i/n: this process's share (default: accelerate rank).")
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Samples per part file.", min=1)] = 128,
    store_generations: Annotated[bool, typer.Option(help="Keep the rollouts' text.")] = False,
    format: Annotated[str, typer.Option(help="parquet or jsonl")] = "parquet",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    device: Device = "auto",
    dtype: Dtype = "auto",
    tensor_parallel_size: TensorParallel = None,
    gpu_memory_utilization: GpuMemory = None,
) -> None:
    """Estimate per-sample difficulty (k rollouts -> pass rate -> easy/medium/hard); resumable."""
    from gengap.difficulty.estimate import (
        DifficultyConfig,
        ShardSpec,
        estimate_difficulty,
        format_summary,
    )
    from gengap.rollout.factory import backend_options

    built = _task(task, task_option, model=model)
    split = split or built.split_for("train")
    config = DifficultyConfig(
        model=model, task=task, split=split, n=built.count(split, n, default=2000), k=k,
        seed=seed, data_seed=data_seed, task_options=built.options, temperature=temperature,
        top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, backend=backend,
        store_generations=store_generations, format=format, verify_iters=verify_iters,
    )
    result = estimate_difficulty(
        config, out, shard=ShardSpec.parse(shard), chunk_size=chunk_size, progress=progress,
        task=built, device=device, dtype=dtype,
        backend_options=backend_options(backend, tensor_parallel_size=tensor_parallel_size,
                                        gpu_memory_utilization=gpu_memory_utilization),
    )
    if result.summary is not None:
        Console().print(format_summary(result.summary), highlight=False)
        console.print(f"records in {out}; summary in {out / 'summary.json'}")
    else:
        console.print(
            f"shard {result.shard.index}/{result.shard.count} done ({result.total} samples); "
            "the merge runs when the last shard finishes"
        )


@app.command("curate")
@friendly_errors
def curate_command(
    difficulty: Annotated[Path, typer.Option(help="A finished `gengap difficulty` directory.")],
    variant: Annotated[
        str,
        typer.Option(help="all, E, M, H, EM, balanced:E|M|H, EM+hard:R (R = hard share)."),
    ],
    out: Annotated[Path, typer.Option(help="Output dataset, .jsonl or .parquet.")],
    min_rate: Annotated[
        float | None, typer.Option("--min", help="Keep pass rate > MIN (strict).")
    ] = None,
    max_rate: Annotated[
        float | None, typer.Option("--max", help="Keep pass rate < MAX (strict).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Random subset of this size.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random cuts.")] = 0,
) -> None:
    """Write an SFT set (prompt/completion, ground-truth targets) from a difficulty run."""
    from gengap.difficulty.curate import curate, format_counts

    meta = curate(difficulty, variant, out, min_rate=min_rate, max_rate=max_rate, size=size,
                  seed=seed)
    Console().print(format_counts(meta), highlight=False)


@app.command("difficulty-report")
@friendly_errors
def difficulty_report_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished `gengap difficulty` directory.")],
    out: Annotated[Path | None, typer.Option(help="Report directory (default DIR/report).")] = None,
    examples: Annotated[int, typer.Option(help="Examples per bucket.", min=0)] = 3,
) -> None:
    """Pass-rate histogram, per-category breakdown and examples per bucket (report.md + PNGs)."""
    from gengap.difficulty.report import write_report

    path = write_report(run_dir, out, examples_per_bucket=examples)
    console.print(f"report in {path}")


# -- training ---------------------------------------------------------------------------------

RecipeFile = Annotated[Path | None, typer.Option(
    "--config", help="YAML recipe file, or a shipped recipe's name (sft-tiny, grpo-tiny, ...).")]
ReportTo = Annotated[
    str | None, typer.Option(help="Trackers for TRL, comma-separated: tensorboard, trackio, wandb.")
]
OptionalTask = Annotated[str | None, typer.Option(
    "--task", help="Task (SFT default: the one the curated data came from).")]


TrainDevice = Annotated[str | None, typer.Option(
    help="auto (the GPUs accelerate sees, else CPU), cpu or cuda (recipe key use_cpu); mixed "
         "precision follows the recipe's bf16 (default: bf16 where supported, else fp16).")]


def _use_cpu(device: str | None) -> bool | None:
    """--device of a training command as the recipe's use_cpu (None: keep the recipe's)."""
    if device in (None, "auto"):
        return None  # the recipe's (default: CPU only when no GPU is visible)
    if device == "cpu":
        return True
    if device.startswith("cuda"):
        from gengap.models import resolve_device

        resolve_device(device)  # refuses cuda without a GPU
        return False
    raise InputError(f"unknown device {device!r}", hint="auto, cpu or cuda")


def _task_words(task_option: list[str] | None) -> list[str]:
    """-O key=value as recipe overrides task_options.key=value."""
    from gengap.config import parse_overrides

    return [f"task_options.{k}={v}" for k, v in parse_overrides(task_option or []).items()]


def _print_train_result(result: Any) -> None:
    budget = result.budget
    console.print(
        f"{budget['kind']}: {budget['steps_done']} steps, {budget['epochs']} epochs, "
        f"{budget['wall_seconds']:.1f} s, {budget['tokens']} tokens, "
        f"{budget['flops']['total']:.3g} FLOPs -> {result.final_model}"
    )
    for row in result.curve[-3:]:
        console.print(f"  step {row['step']} {row['split']}: success {row.get('success')}")


@train_app.command("sft")
@friendly_errors
def train_sft_command(
    overrides: Overrides = None,
    config: RecipeFile = None,
    model: Annotated[str | None, typer.Option(help="Start checkpoint, or 'tiny'.")] = None,
    data: Annotated[str | None, typer.Option(help="Curated JSONL/Parquet.")] = None,
    task: OptionalTask = None,
    task_option: TaskOptions = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per optimizer step.")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--no-lora", help="LoRA via PEFT.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    report_to: ReportTo = None,
    device: TrainDevice = None,
) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer (recipe keys: configs/train/sft.yaml)."""
    from gengap.config import load_recipe
    from gengap.train.sft import SFTRecipe, train_sft

    recipe = load_recipe(
        SFTRecipe, config, [*_task_words(task_option), *(overrides or [])], model=model,
        data=data, task=task, steps=steps, out=out, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, lora=lora, eval_every=eval_every,
        report_to=report_to.split(",") if report_to else None, use_cpu=_use_cpu(device),
    )
    _print_train_result(train_sft(recipe))


@train_app.command("grpo")
@friendly_errors
def train_grpo_command(
    overrides: Overrides = None,
    config: RecipeFile = None,
    model: Annotated[str | None, typer.Option(help="Start checkpoint, or 'tiny'.")] = None,
    task: Annotated[str | None, typer.Option(help="Task whose verifier is the reward.")] = None,
    task_option: TaskOptions = None,
    split: Annotated[str | None, typer.Option(help="Split the prompts come from.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per optimizer step.")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    reward: Annotated[str | None, typer.Option(help="shaped (the study's) or binary.")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--no-lora", help="LoRA via PEFT.")] = None,
    filter_by_difficulty: Annotated[
        str | None, typer.Option(help="Difficulty run: drop pass rate 0 or 1.")
    ] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    report_to: ReportTo = None,
    device: TrainDevice = None,
) -> None:
    """GRPO with TRL's GRPOTrainer, rewarded by the task's verifier (configs/train/grpo.yaml)."""
    from gengap.config import load_recipe
    from gengap.train.grpo import GRPORecipe, train_grpo

    recipe = load_recipe(
        GRPORecipe, config, [*_task_words(task_option), *(overrides or [])], model=model,
        task=task, split=split, steps=steps, out=out, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, reward=reward, lora=lora,
        filter_by_difficulty=filter_by_difficulty, eval_every=eval_every,
        report_to=report_to.split(",") if report_to else None, use_cpu=_use_cpu(device),
    )
    _print_train_result(train_grpo(recipe))


@train_app.command("ppo")
@friendly_errors
def train_ppo_command(
    overrides: Overrides = None,
    config: RecipeFile = None,
    model: Annotated[str | None, typer.Option(help="Start checkpoint, or 'tiny'.")] = None,
    task: Annotated[str | None, typer.Option(help="Task whose verifier is the reward.")] = None,
    task_option: TaskOptions = None,
    split: Annotated[str | None, typer.Option(help="Split the episodes start from.")] = None,
    steps: Annotated[int | None, typer.Option(help="PPO updates.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    rollout_steps: Annotated[int | None, typer.Option(
        help="Environment steps per update (the study: 256).")] = None,
    verify_iters: Annotated[int | None, typer.Option(
        help="Attempts per episode (default: the task's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    reward: Annotated[str | None, typer.Option(help="shaped (the study's) or binary.")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--no-lora", help="LoRA via PEFT.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate every N updates.")] = None,
    device: TrainDevice = None,
) -> None:
    """PPO with a value head and GAE, as "SFT Memorizes, RL Generalizes" runs it
    (configs/train/ppo.yaml; TRL has no PPO since 1.13)."""
    from gengap.config import load_recipe
    from gengap.train.ppo import PPORecipe, train_ppo

    recipe = load_recipe(
        PPORecipe, config, [*_task_words(task_option), *(overrides or [])], model=model,
        task=task, split=split, steps=steps, out=out, learning_rate=learning_rate,
        rollout_steps=rollout_steps, verify_iters=verify_iters, seed=seed, reward=reward,
        lora=lora, eval_every=eval_every, use_cpu=_use_cpu(device),
    )
    _print_train_result(train_ppo(recipe))


# -- studies ----------------------------------------------------------------------------------


@app.command(
    "reproduce",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)
@friendly_errors
def reproduce_command(
    ctx: typer.Context,
    preset: Annotated[
        str, typer.Option(help="A shipped preset (tiny-gp-text, tiny-gp-image, tiny-reasoning, "
                               "...) or your own preset .yaml")
    ] = "tiny-gp-text",
    out: Annotated[
        Path, typer.Option(help="Study directory (a stopped study continues).")
    ] = Path("out/study"),
    quick: Annotated[
        bool, typer.Option(help="The preset's short form (CI, a first look).")
    ] = False,
    replicate: Annotated[
        bool, typer.Option(help="Then run the preset again from other starts (OUT/replicate) "
                                "and print, per claim, whether the verdict is the same.")
    ] = False,
    start: Annotated[
        list[int] | None, typer.Option(help="Run only this start (repeatable). Starts are "
                                            "independent: one process per start on the same "
                                            "--out runs them side by side (with --replicate: "
                                            "starts of the replicate).")
    ] = None,
    device: Device = "auto",
    dtype: Dtype = "auto",
) -> None:
    """Run both studies in miniature: cold starts -> difficulty -> arms -> report.

    Extra words key=value override preset keys, e.g. `seeds=[0]`, `steps=40`,
    `model=path/to/checkpoint`, `task_options.modality=image`.
    """
    from gengap.study import reproduce

    report = reproduce(preset, out, quick=quick, overrides=list(ctx.args), device=device,
                       dtype=dtype, replicate=replicate, starts=start or None,
                       log=console.print)
    console.print(f"report: {report}")


@app.command("report")
@friendly_errors
def report_command(
    study_dir: Annotated[Path, typer.Argument(help="A finished or partial study directory.")],
) -> None:
    """Rebuild report.md and its figures from a study directory."""
    from gengap.report import write_report

    if not (study_dir / "study.json").is_file():
        raise InputError(f"{study_dir} is not a study directory (no study.json)",
                         hint="point at the --out directory of `gengap reproduce`")
    console.print(f"report: {write_report(study_dir)}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
