"""The `gengap` command line: each command is a thin call into a module.

Bad input (an `InputError`) prints what is wrong, where and how to fix it, and exits with code 2.
"""

from __future__ import annotations

import functools
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
data_app = typer.Typer(help="Generate task datasets as JSONL.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train one arm with TRL (SFT or GRPO) from a YAML recipe.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

# No markup: messages carry data such as "[0, 1]" that rich would read as tags.
console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn an `InputError` into a clear message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            console.print(Text("error: ", style="bold red") + Text(str(exc)))
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.command("tasks")
@friendly_errors
def tasks_command() -> None:
    """List the tasks with their splits and variants."""
    from gengap.tasks.registry import TASKS

    table = Table(title="gengap tasks")
    for column in ("task", "splits", "variants", "verify iters"):
        table.add_column(column)
    for name, factory in TASKS.items():
        task = factory()
        variants = "\n".join(f"{k}: {', '.join(v)}" for k, v in task.variants.items())
        table.add_row(name, "\n".join(task.splits), variants, str(task.default_verify_iters))
    Console().print(table)


@data_app.command("generalpoints")
@friendly_errors
def data_generalpoints(
    split: Annotated[
        str, typer.Option(help="warmup, train, test-id, test-ood-rule or test-ood-visual")
    ],
    n: Annotated[int, typer.Option(help="Number of samples.", min=1)],
    out: Annotated[Path, typer.Option(help="Output JSONL file (images go beside it).")],
    seed: Annotated[int, typer.Option(help="Seed of the split's random stream.")] = 0,
    modality: Annotated[str, typer.Option(help="text or image")] = "text",
    prompt_style: Annotated[str, typer.Option(help="paper (the study's) or compact")] = "paper",
    target: Annotated[int, typer.Option(help="The number to reach.")] = 24,
    image_size: Annotated[int | None, typer.Option(help="Image side in px.")] = None,
    hold_out_test_hands: Annotated[
        bool, typer.Option(help="Keep test-id hands out of train (off in the study).")
    ] = False,
) -> None:
    """Generate a GeneralPoints split as JSONL (one row per sample; PNGs beside it)."""
    from gengap.tasks.generalpoints.export import export_split

    written = export_split(
        split=split, n=n, seed=seed, out=out, modality=modality, prompt_style=prompt_style,
        target=target, image_size=image_size, hold_out_test_hands=hold_out_test_hands,
    )
    console.print(f"wrote {written} samples to {out}")


@app.command("score")
@friendly_errors
def score_command(
    task: Annotated[str, typer.Option(help="Task name (see `gengap tasks`).")],
    input: Annotated[Path, typer.Option("--input", help="JSONL rows with a `completion`.")],
    output: Annotated[Path, typer.Option(help="JSONL: input rows + reward, correct, feedback.")],
    skip_bad: Annotated[
        bool, typer.Option(help="Count and skip bad rows instead of stopping.")
    ] = False,
) -> None:
    """Score completions with the task's verifier."""
    from gengap.scoring import score_file

    stats = score_file(task, input, output, skip_bad=skip_bad)
    console.print(
        f"scored {stats.scored} rows -> {output}: {stats.correct} correct "
        f"({stats.accuracy:.1%}), mean reward {stats.mean_reward:+.3f}"
        + (f"; skipped {stats.skipped} bad rows" if stats.skipped else "")
    )
    for line, reason in stats.bad_rows[:5]:
        console.print(f"  skipped line {line}: {reason}", highlight=False)


@app.command("eval")
@friendly_errors
def eval_command(
    model: Annotated[str, typer.Option(help="'tiny' (the embedded default) or a checkpoint.")],
    task: Annotated[str, typer.Option(help="Task name (see `gengap tasks`).")],
    splits: Annotated[str, typer.Option(help="Comma-separated, e.g. test-id,test-ood-rule")],
    out: Annotated[Path, typer.Option(help="Directory for results.json and samples.jsonl.")],
    n: Annotated[int, typer.Option(help="Episodes per split.", min=1)] = 234,
    verify_iters: Annotated[
        int | None, typer.Option(help="Attempts per episode (default: the task's).", min=1)
    ] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy.", min=0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the splits and of sampling.")] = 0,
    modality: Annotated[str, typer.Option(help="text or image")] = "text",
    prompt_style: Annotated[
        str | None, typer.Option(help="paper or compact (default: compact for tiny)")
    ] = None,
    backend: Annotated[str, typer.Option(help="hf or vllm")] = "hf",
) -> None:
    """Evaluate a model on ID / OOD splits: results.json + samples.jsonl."""
    from gengap.evaluate import EvalConfig, evaluate, format_table

    style = prompt_style or ("compact" if model == "tiny" else "paper")
    config = EvalConfig(
        model=model, task=task, splits=[s.strip() for s in splits.split(",") if s.strip()],
        n=n, verify_iters=verify_iters, temperature=temperature, seed=seed, backend=backend,
        task_options={"modality": modality, "prompt_style": style},
    )
    payload = evaluate(config, out)
    Console().print(format_table(payload["results"]), highlight=False)
    console.print(f"results in {out / 'results.json'}")


def _task_options(modality: str, prompt_style: str, extra: list[str] | None) -> dict[str, Any]:
    """--modality/--prompt-style plus repeated --task-option key=value (JSON values allowed)."""
    import json

    options: dict[str, Any] = {"modality": modality, "prompt_style": prompt_style}
    for item in extra or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {item!r}", where="--task-option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare string such as layout=grid
    return options


@app.command("coldstart")
@friendly_errors
def coldstart_command(
    task: Annotated[str, typer.Option(help="Task name (see `gengap tasks`).")],
    out: Annotated[
        Path | None, typer.Option(help="Checkpoint directory (default: the gengap cache).")
    ] = None,
    modality: Annotated[str, typer.Option(help="text or image")] = "text",
    seed: Annotated[int, typer.Option(help="Seed of the warmup stream and the weights.")] = 0,
    force: Annotated[bool, typer.Option(help="Retrain even if cached.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Recipe override key=JSON, e.g. steps_scale=0.5 or "
                     "model='{\"hidden_size\": 96}'. Repeatable."),
    ] = None,
) -> None:
    """Cold-start the embedded tiny model for a task (cached by a hash of its recipe)."""
    import json

    from gengap.coldstart import coldstart, load_metadata

    overrides: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {item!r}", where="--set")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"value of {key!r} is not JSON: {value!r}", where="--set",
                             hint="quote strings: key='\"text\"'") from None
    path = coldstart(task, modality, out, seed, force=force, **overrides)
    meta = load_metadata(path)
    console.print(f"cold-started checkpoint: {path}")
    summary = {k: meta.get(k) for k in ("parameters", "train_seconds", "quality")}
    console.print(json.dumps(summary, indent=1), highlight=False)


@app.command("difficulty")
@friendly_errors
def difficulty_command(
    model: Annotated[str, typer.Option(help="'tiny' (the embedded default) or a checkpoint.")],
    task: Annotated[str, typer.Option(help="Task name (see `gengap tasks`).")],
    out: Annotated[Path, typer.Option(help="Run directory (resumes if it holds this run).")],
    split: Annotated[str, typer.Option(help="Split to estimate.")] = "train",
    n: Annotated[int, typer.Option(help="Samples (indices 0..n-1 of the split).", min=1)] = 2000,
    k: Annotated[int, typer.Option(help="Rollouts per sample.", min=1)] = 8,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    data_seed: Annotated[
        int, typer.Option(help="Seed of the split's samples (match the training set's).")
    ] = 0,
    modality: Annotated[str, typer.Option(help="text or image")] = "text",
    prompt_style: Annotated[
        str | None, typer.Option(help="paper or compact (default: compact for tiny)")
    ] = None,
    task_option: Annotated[
        list[str] | None, typer.Option(help="Other task options, key=value (repeatable).")
    ] = None,
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
) -> None:
    """Estimate per-sample difficulty (k rollouts -> pass rate -> easy/medium/hard); resumable."""
    from gengap.difficulty.estimate import (
        DifficultyConfig,
        ShardSpec,
        estimate_difficulty,
        format_summary,
    )

    style = prompt_style or ("compact" if model == "tiny" else "paper")
    config = DifficultyConfig(
        model=model, task=task, split=split, n=n, k=k, seed=seed, data_seed=data_seed,
        task_options=_task_options(modality, style, task_option), temperature=temperature,
        top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, backend=backend,
        store_generations=store_generations, format=format,
    )
    result = estimate_difficulty(
        config, out, shard=ShardSpec.parse(shard), chunk_size=chunk_size, progress=progress
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


Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="key=value recipe overrides, e.g. learning_rate=3e-5 "
                   "task_options.prompt_style=compact", show_default=False),
]
RecipeFile = Annotated[Path | None, typer.Option(
    "--config", help="YAML recipe file, or a shipped recipe's name (sft-tiny, grpo-tiny, ...).")]
ReportTo = Annotated[
    str | None, typer.Option(help="Trackers for TRL, comma-separated: tensorboard, trackio, wandb.")
]


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
    model: Annotated[str | None, typer.Option(help="Start checkpoint.")] = None,
    data: Annotated[str | None, typer.Option(help="Curated JSONL/Parquet.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per optimizer step.")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--no-lora", help="LoRA via PEFT.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    report_to: ReportTo = None,
) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer (recipe keys: configs/train/sft.yaml)."""
    from gengap.config import load_recipe
    from gengap.train.sft import SFTRecipe, train_sft

    recipe = load_recipe(
        SFTRecipe, config, overrides or [], model=model, data=data, steps=steps, out=out,
        learning_rate=learning_rate, batch_size=batch_size, seed=seed, lora=lora,
        eval_every=eval_every, report_to=report_to.split(",") if report_to else None,
    )
    _print_train_result(train_sft(recipe))


@train_app.command("grpo")
@friendly_errors
def train_grpo_command(
    overrides: Overrides = None,
    config: RecipeFile = None,
    model: Annotated[str | None, typer.Option(help="Start checkpoint.")] = None,
    task: Annotated[str | None, typer.Option(help="Task whose verifier is the reward.")] = None,
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
) -> None:
    """GRPO with TRL's GRPOTrainer, rewarded by the task's verifier (configs/train/grpo.yaml)."""
    from gengap.config import load_recipe
    from gengap.train.grpo import GRPORecipe, train_grpo

    recipe = load_recipe(
        GRPORecipe, config, overrides or [], model=model, task=task, split=split, steps=steps,
        out=out, learning_rate=learning_rate, batch_size=batch_size, seed=seed, reward=reward,
        lora=lora, filter_by_difficulty=filter_by_difficulty, eval_every=eval_every,
        report_to=report_to.split(",") if report_to else None,
    )
    _print_train_result(train_grpo(recipe))


@app.command(
    "reproduce",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)
@friendly_errors
def reproduce_command(
    ctx: typer.Context,
    preset: Annotated[
        str, typer.Option(help="tiny-gp-text, tiny-gp-image, or your own preset .yaml")
    ] = "tiny-gp-text",
    out: Annotated[
        Path, typer.Option(help="Study directory (a stopped study continues).")
    ] = Path("out/study"),
    quick: Annotated[
        bool, typer.Option(help="The preset's short form (CI, a first look).")
    ] = False,
) -> None:
    """Run both studies in miniature: cold start -> difficulty -> arms -> report.

    Extra words key=value override preset keys, e.g. `seeds=[0]` or `steps=40`.
    """
    from gengap.study import reproduce

    report = reproduce(preset, out, quick=quick, overrides=list(ctx.args))
    console.print(f"report: {report}")


@app.command("report")
@friendly_errors
def report_command(
    study_dir: Annotated[Path, typer.Argument(help="A finished or partial study directory.")],
) -> None:
    """Rebuild report.md and its figures from a study directory."""
    from gengap.report import write_report

    if not study_dir.is_dir():
        raise InputError(f"no such study directory: {study_dir}")
    console.print(f"report: {write_report(study_dir)}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
