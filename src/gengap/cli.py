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

console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn an `InputError` into a clear message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
