"""`gengap export verl`: any task as a verl job (Parquet datasets, reward module, launchers).

verl (Ray + vLLM/SGLang + FSDP/Megatron) runs RL at cluster scale; gengap gives it the task:

    DIR/train.parquet, DIR/<split>.parquet   verl's RL dataset rows (one file per split)
    DIR/gengap_reward.py                      compute_score(data_source, solution_str,
                                              ground_truth, extra_info, **kwargs)
    DIR/run_ppo.sh, DIR/run_grpo.sh           verl.trainer.main_ppo launchers (the study's
                                              PPO settings; DC-SFT's GRPO settings)
    DIR/export.json                           what was exported (task, options, splits, seed)

A row: ``data_source`` ("gengap/<task>"), ``prompt`` (the chat messages, each image part as an
``<image>`` placeholder in its message's text, as verl's RLHFDataset expects), ``images``
(``{"bytes": PNG}`` per placeholder, image tasks only), ``ability`` (the task's name),
``reward_model`` ({"style": "rule", "ground_truth": the sample's answer}) and ``extra_info``
(split, index, id, and the sample's row as JSON). The reward module rebuilds the task from
``extra_info`` and judges the completion with the task's own verifier, so verl's rewards are
gengap's (the round-trip test checks it in verl's own environment): the shaped reward by
default, 1/0 correct with ``reward_kwargs.mode=binary``. It needs gengap importable on the
workers (``pip install --no-deps gengap``; the verifier needs only the task packages).

Single-turn only: verl's multi-turn agent loop would need the task's `Episode` as a verl
interaction; the launchers train first attempts (V=1).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.runs import atomic_dir

DATA_SOURCE_PREFIX = "gengap/"
REWARD_FILE = "gengap_reward.py"

REWARD_MODULE = '''"""verl reward for a gengap task (`gengap export verl`): its own verifier."""

import json
from functools import lru_cache


@lru_cache(maxsize=8)
def _task(spec, options):
    from gengap.tasks.registry import build_task

    return build_task(spec, json.loads(options))


def compute_score(data_source, solution_str, ground_truth, extra_info=None, mode="shaped",
                  **kwargs):
    """The gengap verdict of `solution_str`: {"score": shaped reward (or 1/0), "acc": 0/1}."""
    info = extra_info or {}
    task = _task(info["task"], info["task_options"])
    sample = task.sample_from_row(json.loads(info["row"]))
    verdict = task.verify(sample, solution_str)
    score = float(verdict.correct) if mode == "binary" else float(verdict.reward)
    return {"score": score, "acc": float(verdict.correct)}
'''

PPO_SCRIPT = '''#!/usr/bin/env bash
# PPO on {task} with verl, as "SFT Memorizes, RL Generalizes" runs it (GAE 0.9 / 0.95, clip
# 0.1, 4 epochs, entropy 0.01, grad clip 0.01, temperature 0.2; value loss coefficient 0.5
# maps to verl's critic loss being its own optimizer). MODEL=... N_GPUS=... bash run_ppo.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MODEL="${{MODEL:?set MODEL to an HF checkpoint}}"
python3 -m verl.trainer.main_ppo \\
    algorithm.adv_estimator=gae algorithm.gamma=0.9 algorithm.lam=0.95 \\
    data.train_files="$HERE/{train}" data.val_files="$HERE/{val}" \\
    data.train_batch_size="${{BATCH:-256}}" data.max_prompt_length="${{PROMPT_LEN:-1024}}" \\
    data.max_response_length="${{RESPONSE_LEN:-{max_new}}}" {image_key}\\
    reward.custom_reward_function.path="$HERE/{reward}" \\
    reward.custom_reward_function.name=compute_score \\
    actor_rollout_ref.model.path="$MODEL" actor_rollout_ref.actor.optim.lr="${{LR:-1e-6}}" \\
    actor_rollout_ref.actor.ppo_epochs=4 actor_rollout_ref.actor.clip_ratio=0.1 \\
    actor_rollout_ref.actor.entropy_coeff=0.01 actor_rollout_ref.actor.grad_clip=0.01 \\
    actor_rollout_ref.actor.ppo_mini_batch_size="${{MINI_BATCH:-64}}" \\
    actor_rollout_ref.rollout.name="${{ENGINE:-vllm}}" actor_rollout_ref.rollout.temperature=0.2 \\
    critic.model.path="$MODEL" critic.optim.lr="${{CRITIC_LR:-1e-5}}" critic.ppo_epochs=4 \\
    critic.cliprange_value=0.1 critic.grad_clip=0.01 \\
    trainer.n_gpus_per_node="${{N_GPUS:-8}}" trainer.nnodes="${{NNODES:-1}}" \\
    trainer.total_training_steps="${{STEPS:-15}}" trainer.project_name=gengap \\
    trainer.experiment_name="{name}-ppo" trainer.logger='["console"]' "$@"
'''

GRPO_SCRIPT = '''#!/usr/bin/env bash
# GRPO on {task} with verl (DC-SFT's settings: 8 generations, KL 0.04 to the start model,
# temperature 0.9). Add algorithm.filter_groups.enable=true for DAPO-style online filtering.
# MODEL=... N_GPUS=... bash run_grpo.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MODEL="${{MODEL:?set MODEL to an HF checkpoint}}"
python3 -m verl.trainer.main_ppo \\
    algorithm.adv_estimator=grpo \\
    data.train_files="$HERE/{train}" data.val_files="$HERE/{val}" \\
    data.train_batch_size="${{BATCH:-16}}" data.max_prompt_length="${{PROMPT_LEN:-1024}}" \\
    data.max_response_length="${{RESPONSE_LEN:-{max_new}}}" {image_key}\\
    reward.custom_reward_function.path="$HERE/{reward}" \\
    reward.custom_reward_function.name=compute_score \\
    actor_rollout_ref.model.path="$MODEL" actor_rollout_ref.actor.optim.lr="${{LR:-1e-6}}" \\
    actor_rollout_ref.actor.use_kl_loss=true actor_rollout_ref.actor.kl_loss_coef=0.04 \\
    actor_rollout_ref.actor.ppo_mini_batch_size="${{MINI_BATCH:-16}}" \\
    actor_rollout_ref.rollout.name="${{ENGINE:-vllm}}" actor_rollout_ref.rollout.n=8 \\
    actor_rollout_ref.rollout.temperature=0.9 \\
    trainer.n_gpus_per_node="${{N_GPUS:-8}}" trainer.nnodes="${{NNODES:-1}}" \\
    trainer.total_training_steps="${{STEPS:-600}}" trainer.project_name=gengap \\
    trainer.experiment_name="{name}-grpo" trainer.logger='["console"]' "$@"
'''


def verl_prompt(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Chat messages with each image part as an ``<image>`` placeholder in the text."""
    out = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = "".join("<image>" if part.get("type") == "image" else part.get("text", "")
                              for part in content)
        out.append({"role": message["role"], "content": content})
    return out


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def verl_row(task: Any, sample: Any, data_seed: int) -> dict[str, Any]:
    """One verl dataset row (see the module doc)."""
    row: dict[str, Any] = {
        "data_source": DATA_SOURCE_PREFIX + task.name,
        "prompt": verl_prompt(task.messages(sample)),
        "ability": task.name,
        "reward_model": {"style": "rule", "ground_truth": str(sample.answer)},
        "extra_info": {"split": sample.split, "index": sample.index, "id": sample.id,
                       "data_seed": data_seed, "task": task.spec,
                       "task_options": json.dumps(task.options, sort_keys=True),
                       "row": json.dumps(task.row(sample), default=str)},
    }
    images = task.images(sample)
    if images:
        row["images"] = [{"bytes": _png(image)} for image in images]
    return row


def export_verl(task: Any, out: str | Path, *, n: int | None = None, test_n: int | None = None,
                seed: int = 0, splits: list[str] | None = None) -> dict[str, Any]:
    """Write the task's train split (`n` samples) and its test / OOD splits (`test_n` each)
    as verl Parquet files, the reward module and the launchers into `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file", where="--out", hint="name a directory")
    train = task.split_for("train")
    evals = splits or [s.name for s in task.with_role("test", "ood")]
    if not evals:
        raise InputError(f"task {task.name!r} has no test split to validate on")
    counts = {train: task.count(train, n, default=2000, where="--n")}
    for split in evals:
        counts[split] = task.count(split, test_n, default=500, where="--test-n")
    files = {}
    with atomic_dir(out) as tmp:
        for split, count in counts.items():
            rows = [verl_row(task, task.sample(split, i, seed), seed) for i in range(count)]
            name = f"{split}.parquet"
            pq.write_table(pa.Table.from_pylist(rows), Path(tmp) / name)
            files[split] = {"file": name, "rows": count}
        (Path(tmp) / REWARD_FILE).write_text(REWARD_MODULE)
        image_key = "data.image_key=images " if task.modality == "image" else ""
        fields = {"task": task.name, "train": files[train]["file"],
                  "val": files[evals[0]]["file"], "reward": REWARD_FILE,
                  "max_new": task.max_new_tokens, "image_key": image_key,
                  "name": "".join(c if c.isalnum() else "-" for c in task.name)}
        for script, template in (("run_ppo.sh", PPO_SCRIPT), ("run_grpo.sh", GRPO_SCRIPT)):
            path = Path(tmp) / script
            path.write_text(template.format(**fields))
            path.chmod(0o755)
        info = {"task": task.spec, "task_options": task.options, "seed": seed,
                "train_split": train, "splits": files, "reward_module": REWARD_FILE,
                "data_source": DATA_SOURCE_PREFIX + task.name}
        (Path(tmp) / "export.json").write_text(json.dumps(info, indent=1, default=str))
    return info
