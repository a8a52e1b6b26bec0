"""Fair arms: pick each arm's learning rate on an ID validation split, never on OOD data.

The validation prompts are held-out samples of the *training* split (indices past everything
the arm trains on, generated deterministically by the task), judged under the ID rule: neither
test-id nor any OOD split is looked at. Every candidate is trained with the arm's recipe (or a
shortened copy), evaluated greedily, and recorded in DIR/lr_sweep.json as it finishes, so an
interrupted sweep resumes where it stopped.

A grid whose best rate sits at its edge says nothing about the rates beyond it, so the sweep
extends the grid there (one grid step further, up to `extend` times) until the best rate has a
worse neighbour on both sides -- or a tied one (a plateau: nothing beyond it to find).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gengap.difficulty.curate import meta_path
from gengap.errors import InputError
from gengap.io import write_json
from gengap.models import load_model
from gengap.runinfo import run_metadata
from gengap.train.common import TrainRecipe, recipe_task
from gengap.train.grpo import GRPORecipe
from gengap.train.sft import SFTRecipe, load_sft_data


def id_validation_success(
    model: Any, processor: Any, task: Any, split: str, indices: Sequence[int], seed: int
) -> float:
    """Share of `split` samples at `indices` solved by one greedy attempt."""
    from gengap.rollout import SamplingParams, make_sampler, run_episodes

    samples = [task.sample(split, i, seed) for i in indices]
    params = SamplingParams(k=1, temperature=0.0, max_new_tokens=task.max_new_tokens, seed=seed)
    episodes = run_episodes(make_sampler(model, processor), task, samples, params,
                            verify_iters=1)
    return sum(e.success for e in episodes) / len(episodes)


def validation_indices(recipe: TrainRecipe, n: int, start: int | None,
                       task: Any) -> tuple[str, int, range]:
    """(split, seed, indices) of the ID validation prompts for `recipe`'s arm.

    A task with a split of role ``validation`` validates on it (its first `n` samples).
    Otherwise validation is held-out samples of the training split: GRPO trains on samples
    0..n_prompts-1 of its split, so validation starts at n_prompts; SFT trains on a curated
    file, so validation starts past the difficulty run it was curated from (its
    FILE.meta.json), else past the file's largest `index` (train split, seed 0). A given
    `start` that overlaps the training rows is refused.
    """
    if found := task.with_role("validation"):
        split = found[0].name
        return split, 0, range(task.count(split, n, where="sweep_val_n"))
    if hasattr(recipe, "n_prompts"):  # RL arms (GRPO, PPO) train on a split's first prompts
        split, seed = recipe.split or task.split_for("train"), recipe.data_seed
        first_free = task.count(split, recipe.n_prompts, default=2000)
    elif meta_path(recipe.data).is_file():
        # All arms curated from one difficulty run share its split, seed and sample range, so
        # they share one validation set too.
        run = json.loads(meta_path(recipe.data).read_text())["difficulty"]
        split, seed, first_free = run["split"], run["data_seed"], run["n"]
    else:
        data = load_sft_data(recipe.data)
        if "index" not in data.column_names and start is None:
            raise InputError("the SFT data has no `index` column", where=recipe.data,
                             hint="pass val_start past the training rows' sample indices")
        split, seed = task.split_for("train"), 0
        first_free = max(data["index"]) + 1 if "index" in data.column_names else 0
    start = first_free if start is None else start
    if start < first_free:
        raise InputError(f"validation start {start} overlaps the training prompts "
                         f"(first free index {first_free})", where="val_start")
    size = task.split(split).size
    if size is not None and start + n > size:
        raise InputError(
            f"no room for {n} held-out validation samples in split {split!r} "
            f"({size} samples, training uses the first {first_free})",
            hint="give the task a validation split, or train on fewer samples",
        )
    return split, seed, range(start, start + n)


def pick_lr(
    recipe: SFTRecipe | GRPORecipe,
    lrs: Sequence[float],
    out_dir: str | Path,
    *,
    val_n: int = 200,
    val_start: int | None = None,
    steps: int | None = None,
    device: str = "auto",
    dtype: str | None = "auto",
    extend: int = 0,
) -> dict[str, Any]:
    """Train the arm once per learning rate, keep the best ID-validation success.

    `steps` shortens each candidate run (default: the recipe's own). Ties go to the smaller
    learning rate. A pick at the grid's edge that beats its neighbour extends the grid by one
    grid step beyond it, up to `extend` times (`bracket`). Returns (and writes to
    DIR/lr_sweep.json) the picked value, every result, and whether the pick is bracketed.
    """
    if not lrs or any(lr <= 0 for lr in lrs):
        raise InputError(f"learning rates must be a non-empty list of positive numbers: {lrs}")
    if extend < 0:
        raise InputError(f"'extend' must be >= 0, got {extend}")
    out = Path(out_dir)
    from gengap.train import RECIPES, TRAINERS

    kind = next(k for k, cls in RECIPES.items() if isinstance(recipe, cls))
    train = TRAINERS[kind]
    task = recipe_task(recipe)
    split, seed, indices = validation_indices(recipe, val_n, val_start, task)
    sweep_path = out / "lr_sweep.json"
    done = {}
    if sweep_path.is_file():
        done = {r["learning_rate"]: r for r in json.loads(sweep_path.read_text())["results"]}

    grid = sorted(set(float(lr) for lr in lrs))

    def payload(results: list[dict[str, Any]]) -> dict[str, Any]:
        results = sorted(results, key=lambda r: r["learning_rate"])
        best = max(results, key=lambda r: (r["val_success"], -r["learning_rate"]))
        _, bracketed = bracket([r["learning_rate"] for r in results],
                               [r["val_success"] for r in results])
        return {
            "kind": kind, "picked": best["learning_rate"], "results": results,
            "grid": grid, "extended": [r["learning_rate"] for r in results
                                       if r["learning_rate"] not in grid],
            "bracketed": bracketed,
            "validation": {"split": split, "seed": seed, "start": indices.start, "n": val_n,
                           "rule": "ID", "decoding": "greedy, 1 attempt"},
            **run_metadata(dataclasses.asdict(recipe), recipe.seed),
        }

    results: list[dict[str, Any]] = []

    def run_lr(lr: float) -> None:
        if lr in done:
            results.append(done[lr])
            return
        steps_here = steps or recipe.steps
        run = dataclasses.replace(recipe, learning_rate=lr, out=str(out / f"lr-{lr:g}"),
                                  steps=steps_here, save_every=steps_here, eval_every=0)
        result = train(run)
        loaded = load_model(str(result.final_model), task=task, device=device, dtype=dtype)
        success = id_validation_success(loaded.model, loaded.processor, task, split, indices,
                                        seed)
        results.append({"learning_rate": lr, "val_success": success, "steps": steps_here,
                        "run": run.out})
        write_json(sweep_path, payload(results))

    for lr in grid:
        run_lr(lr)
    for _ in range(extend):
        tried = sorted(r["learning_rate"] for r in results)
        beyond, _ = bracket(tried, [next(r["val_success"] for r in results
                                         if r["learning_rate"] == lr) for lr in tried])
        if beyond is None:
            break
        run_lr(beyond)
    final = payload(results)
    write_json(sweep_path, final)
    return final


def bracket(lrs: Sequence[float], values: Sequence[float]) -> tuple[float | None, bool]:
    """(the next rate to try, whether the best rate is bracketed) for a sorted grid.

    The best (ties: the smaller rate) is bracketed when it has a neighbour on both sides, or
    when its neighbour on the open side ties with it (a plateau). Otherwise the next rate is
    one grid step beyond the edge (the ratio of the edge's two rates; x3 for a one-rate grid).
    """
    if not lrs:
        return None, False
    best = max(range(len(lrs)), key=lambda i: (values[i], -lrs[i]))
    if 0 < best < len(lrs) - 1:
        return None, True
    if len(lrs) == 1:
        return lrs[0] / 3.0, False
    if best == 0:
        if values[0] == values[1]:
            return None, True
        return _round_lr(lrs[0] * lrs[0] / lrs[1]), False
    if values[-1] == values[-2]:
        return None, True
    return _round_lr(lrs[-1] * lrs[-1] / lrs[-2]), False


def _round_lr(lr: float) -> float:
    """Three significant digits (3e-5 / 3 -> 1e-05, not 9.999999e-06)."""
    return float(f"{lr:.3g}")
