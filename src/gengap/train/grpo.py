"""`gengap train grpo`: GRPO on a task's prompts with TRL's `GRPOTrainer`, rewarded by its verifier.

The recipe (`GRPORecipe`, keys of `configs/train/grpo*.yaml`) maps one-to-one onto the command;
`train_grpo` is the whole script: build the prompt set (optionally without the prompts an
offline difficulty run found always or never solved), configure TRL, attach the curve and
budget callbacks, train, save. TRL logs `frac_reward_zero_std` every logging step; the budget
records its mean over the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gengap import cost
from gengap.errors import InputError
from gengap.io import write_json
from gengap.train.callbacks import EvalFn, task_eval_fn
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
class GRPORecipe(TrainRecipe):
    """`gengap train grpo` keys (plus the shared ones of `TrainRecipe`). Defaults: DC-SFT's GRPO."""

    split: str | None = None  # None: the task's train split
    # prompts = samples 0 .. n_prompts-1 of `split` (None: a finite split whole, else 2000)
    n_prompts: int | None = None
    data_seed: int = 0  # seed of the split's samples (as in `gengap data` / `gengap difficulty`)
    reward: Literal["shaped", "binary"] = "shaped"  # the study's reward table, or 1/0 correct
    num_generations: int = 8
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    beta: float = 0.04  # KL to the start model
    max_completion_length: int | None = None  # None: the task's budget
    loss_type: str = "grpo"  # the studies' GRPO (TRL's own default is "dapo")
    scale_rewards: str = "group"
    num_iterations: int = 1
    epsilon: float = 0.2
    mask_truncated_completions: bool = False
    filter_by_difficulty: str | None = None  # a `gengap difficulty` run: drop pass rate 0 or 1
    # Online difficulty filter (TRL lacks one, issue #3708): drop groups whose rewards do not
    # vary and score fresh prompts until the batch is full (at most `online_max_refills`).
    online_filter: bool = False
    online_max_refills: int = 4
    # Multi-turn: episodes of `verify_iters` attempts (None: the task's) through TRL's
    # rollout_func, feedback tokens masked out of the loss; `reward` is then the episode's
    # (shaped: the sum of its steps' rewards; binary: success within the episode).
    # turn_mode "episode" trains whole episodes, "decision" one row per decision point
    # (needed when later turns bring new images, which TRL cannot carry); "auto" picks.
    multi_turn: bool = False
    verify_iters: int | None = None
    turn_mode: Literal["auto", "episode", "decision"] = "auto"
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    log_completions: bool = False

    def validate(self) -> None:
        """Raise `InputError` for values no run can use."""
        super().validate()
        if self.n_prompts is not None and self.n_prompts < 1:
            raise InputError(f"'n_prompts' must be >= 1, got {self.n_prompts}")
        if self.num_generations < 2:
            raise InputError("'num_generations' must be >= 2 (GRPO compares a group)")
        if self.filter_by_difficulty and not Path(self.filter_by_difficulty).is_dir():
            raise InputError(f"no difficulty run at {self.filter_by_difficulty}",
                             where="filter_by_difficulty", hint="run `gengap difficulty` first")
        if self.verify_iters is not None and self.verify_iters < 1:
            raise InputError(f"'verify_iters' must be >= 1, got {self.verify_iters}")
        if self.online_max_refills < 0:
            raise InputError("'online_max_refills' must be >= 0")
        if self.multi_turn and self.use_vllm:
            raise InputError("multi_turn episodes sample with gengap's HF sampler",
                             hint="use_vllm=false with multi_turn=true")
        self.per_device_batch(self.num_generations)


# ------------------------------------------------------------------------------------------
# Prompts and rewards


INDEX_COLUMN = "gengap_sample"  # the only task-side column TRL sees: a key into the samples


def prompt_rows(task: Any, samples: Sequence[Any]) -> list[dict[str, Any]]:
    """One trainer row per prompt: the conversational `prompt`, the `images` of image tasks,
    and the position of its sample (the reward looks the sample up; task fields never mix
    with TRL's own columns)."""
    rows = []
    for position, sample in enumerate(samples):
        row: dict[str, Any] = {"prompt": task.messages(sample), INDEX_COLUMN: position}
        images = task.images(sample)
        if images:
            row["images"] = images
        rows.append(row)
    return rows


class TokenCount:
    """Tokens the policy generated into the rollout buffer (the study's D_buffer)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        return self.n


def make_reward(task: Any, samples: Sequence[Any], mode: str = "shaped",
                generated: TokenCount | None = None) -> Callable[..., list]:
    """A TRL reward function: the task's verdict for each completion.

    TRL passes the dataset columns as keyword lists (one entry per completion); the sample is
    found by its `INDEX_COLUMN` position in `samples`. `mode`: "shaped" = the verdict's reward
    (the study's table), "binary" = 1.0 if correct else 0.0. Logs `accuracy` (share correct).
    `generated` counts the completion tokens it judges (D_buffer of single-turn rollouts).
    """
    if mode not in ("shaped", "binary"):
        raise InputError(f"unknown reward {mode!r}", hint="shaped or binary")

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        if generated is not None:
            generated.n += sum(len(ids) for ids in columns.get("completion_ids") or [])
        rewards, correct = [], []
        for i, completion in enumerate(completions):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            verdict = task.verify(samples[int(columns[INDEX_COLUMN][i])], text)
            correct.append(verdict.correct)
            rewards.append(float(verdict.correct) if mode == "binary" else verdict.reward)
        if callable(columns.get("log_metric")) and correct:
            columns["log_metric"]("accuracy", sum(correct) / len(correct))
        return rewards

    reward.__name__ = f"{''.join(c if c.isalnum() else '_' for c in task.name)}_{mode}"
    return reward


def difficulty_filter(
    run_dir: str | Path, ids: Sequence[str], *, task: str, split: str, data_seed: int
) -> tuple[set[str], dict[str, Any]]:
    """The ids to drop (pass rate 0 or 1 in an offline difficulty run) and what that means.

    The run must have sampled the same task, split and data seed, or its ids name other hands.
    Prompts the run did not cover are kept (and counted).
    """
    from gengap.difficulty.estimate import load_records, load_run_config

    config = load_run_config(run_dir)["config"]
    expected = {"task": task, "split": split, "data_seed": data_seed}
    mismatched = {k: config.get(k) for k, v in expected.items() if config.get(k) != v}
    if mismatched:
        raise InputError(
            f"the difficulty run does not match the prompts: it has {mismatched}, "
            f"training uses {({k: expected[k] for k in mismatched})}",
            where=str(run_dir), hint="estimate difficulty on the same task, split and data seed",
        )
    rates = {r["id"]: r["pass_rate"] for r in load_records(run_dir)}
    covered = [i for i in ids if i in rates]
    easy = {i for i in covered if rates[i] >= 1.0}
    hard = {i for i in covered if rates[i] <= 0.0}
    info = {
        "difficulty_dir": str(run_dir),
        "k": config.get("k"),
        "prompts_before": len(ids),
        "prompts_after": len(ids) - len(easy) - len(hard),
        "dropped_easy": len(easy),
        "dropped_hard": len(hard),
        "not_estimated": len(ids) - len(covered),
        # Share of groups the offline estimate predicts to have zero reward variance (binary
        # reward): the rollouts GRPO would spend without any gradient. ~0 after the filter.
        "zero_variance_share_before": round((len(easy) + len(hard)) / len(covered), 4)
        if covered else None,
    }
    return easy | hard, info


def grpo_flops(n_params: int, recipe: GRPORecipe) -> Callable[[int], dict[str, float]]:
    """Tokens (prompt + completion, per completion) -> estimated FLOPs per component
    (`gengap.cost.grpo_flops`: generation, reference, old log-probs, training)."""
    return cost.grpo_flops(n_params, beta=recipe.beta, num_iterations=recipe.num_iterations,
                           lora=recipe.lora)


# ------------------------------------------------------------------------------------------
# The run


def train_grpo(recipe: GRPORecipe, *, eval_fn: EvalFn | None = None) -> TrainResult:
    """Run (or resume, or return the finished) GRPO arm described by `recipe`.

    `eval_fn` replaces `gengap eval` at checkpoints (tests pass a fake).
    """
    out = Path(recipe.out)
    recipe, task = resolve_task(recipe)
    if recipe.split is None:
        recipe = dataclasses.replace(recipe, split=task.split_for("train"))
    last = prepare_run_dir(recipe, "grpo")
    if (done := finished_result(out)) is not None:
        return done
    with run_dir(recipe, "grpo").lock():  # one trainer per run directory
        return _train(recipe, task, out, last, eval_fn)



def prompt_indices(recipe: Any, task: Any, out: Path) -> tuple[list[int], dict[str, Any] | None]:
    """The train-split indices an RL run draws its prompts from (GRPO and PPO alike): the first
    `n_prompts` (the whole split when finite), minus those the offline difficulty filter drops
    (its report written to `out/difficulty_filter.json`)."""
    indices = list(range(task.count(recipe.split, recipe.n_prompts, default=2000,
                                    where="n_prompts")))
    if not recipe.filter_by_difficulty:
        return indices, None
    ids = [task.sample(recipe.split, i, recipe.data_seed).id for i in indices]
    drop, info = difficulty_filter(recipe.filter_by_difficulty, ids, task=task.spec,
                                   split=recipe.split, data_seed=recipe.data_seed)
    indices = [i for i, sid in zip(indices, ids) if sid not in drop]
    write_json(out / "difficulty_filter.json", info)
    if not indices:
        raise InputError("the difficulty filter dropped every prompt",
                         where=recipe.filter_by_difficulty,
                         hint="every prompt has pass rate 0 or 1: train without the filter")
    return indices, info

def _train(recipe: Any, task: Any, out: Path, last: str | None,
           eval_fn: EvalFn | None) -> TrainResult:
    """Train from `last` (or the start) to the end and save the final model."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    indices, filter_info = prompt_indices(recipe, task, out)
    samples = [task.sample(recipe.split, i, recipe.data_seed) for i in indices]
    loaded = load_for_training(recipe.model, recipe, task)
    generated = TokenCount()
    max_new = recipe.max_completion_length or task.max_new_tokens
    rows, reward_fn, rollout_func, mode = _setup(recipe, task, samples, loaded, generated,
                                                 max_new)
    dataset = Dataset.from_list(rows)
    from gengap.models.compat import check_trainable

    check_trainable(loaded.model, "grpo")
    config = GRPOConfig(
        **trainer_arguments(recipe, recipe.per_device_batch(recipe.num_generations)),
        num_generations=recipe.num_generations,
        max_completion_length=max_new,
        temperature=recipe.temperature, top_p=recipe.top_p, top_k=recipe.top_k,
        beta=recipe.beta, loss_type=recipe.loss_type, scale_rewards=recipe.scale_rewards,
        num_iterations=recipe.num_iterations, epsilon=recipe.epsilon,
        mask_truncated_completions=recipe.mask_truncated_completions,
        use_vllm=recipe.use_vllm, vllm_mode=recipe.vllm_mode,
        log_completions=recipe.log_completions,
    )
    trainer_class = GRPOTrainer
    if rollout_func is not None:
        from gengap.train.multiturn import inputs_aware

        trainer_class = inputs_aware(trainer_class)
    if recipe.online_filter:
        from gengap.train.online_filter import online_filter_trainer

        trainer_class = online_filter_trainer(trainer_class, max_refills=recipe.online_max_refills,
                                              seed=recipe.seed)
    trainer = trainer_class(
        model=loaded.model, reward_funcs=[reward_fn], args=config, train_dataset=dataset,
        processing_class=loaded.processor, peft_config=lora_config(recipe),
        rollout_func=rollout_func,
    )
    n_params, trainable = count_parameters(trainer.model)
    static = {
        "kind": "grpo", "steps": recipe.steps, "prompts_per_step": recipe.batch_size,
        "completions_per_step": recipe.batch_size * recipe.num_generations,
        "dataset_rows": len(dataset), "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler_type, "lora": recipe.lora,
        "parameters": n_params, "trainable_parameters": trainable, "reward": recipe.reward,
        "difficulty_filter": filter_info, "online_filter": recipe.online_filter,
        "multi_turn": mode, "verify_iters": recipe.verify_iters or task.verify_iters
        if recipe.multi_turn else 1,
    }
    callbacks = compute_callbacks(recipe, out, static, grpo_flops(n_params, recipe), [],
                                  eval_fn or task_eval_fn(recipe), last=last,
                                  start=loaded.path, generated=generated)
    for callback in callbacks:
        trainer.add_callback(callback)

    trainer.train(resume_from_checkpoint=last)
    return finish(trainer, loaded, recipe, out, callbacks[0])


def _setup(recipe: GRPORecipe, task: Any, samples: list[Any], loaded: Any,
           generated: TokenCount, max_new: int) -> tuple[list[dict[str, Any]], Any, Any, str]:
    """(dataset rows, reward function, rollout_func or None, turn mode) of the recipe."""
    name = f"{''.join(c if c.isalnum() else '_' for c in task.name)}_{recipe.reward}"
    if not recipe.multi_turn:
        return (prompt_rows(task, samples), make_reward(task, samples, recipe.reward, generated),
                None, "single")
    from gengap.train import multiturn

    v = recipe.verify_iters
    mode = recipe.turn_mode
    if mode == "auto":
        mode = "decision" if task.modality == "image" and multiturn.new_images_later(
            task, samples[0], v) else "episode"
    if mode == "decision":
        rows = multiturn.decision_rows(task, samples, loaded.model, loaded.processor,
                                       verify_iters=v, temperature=recipe.temperature,
                                       max_new_tokens=max_new, index_column=INDEX_COLUMN,
                                       seed=recipe.seed)
        reward = multiturn.decision_reward_fn(task, samples, verify_iters=v, mode=recipe.reward,
                                              index_column=INDEX_COLUMN, name=name,
                                              generated=generated)
        return rows, reward, None, "decision"
    rollout = multiturn.EpisodeRollout(task, samples, index_column=INDEX_COLUMN,
                                       verify_iters=v, reward=recipe.reward,
                                       processor=loaded.processor, max_new_tokens=max_new,
                                       top_k=recipe.top_k, top_p=recipe.top_p,
                                       seed=recipe.seed, generated=generated)
    return prompt_rows(task, samples), multiturn.episode_reward_fn(name), rollout, "episode"

