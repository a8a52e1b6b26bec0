"""`gengap reproduce`: both studies in miniature, from cold start to report.

    for every start (a cold start of the tiny model with its own seed, or the given checkpoint):
        Init evaluation -> difficulty on the train split -> curated SFT sets -> learning-rate
        sweep per arm (ID validation only; the grid grows until the best rate is bracketed)
        -> arms x training seeds, each with an ID/OOD curve -> the best-on-validation and the
        last checkpoint of every arm evaluated on the large test sets
    -> report (paired comparisons over starts and test episodes)

Replicates include the start: with `starts` unset, training seed s also cold-starts start s
(its difficulty pass, curated sets and lr sweep are its own, as for another base model);
`starts` x `seeds` crosses them. Every arm of a start trains from the same checkpoint and is
tested on the same episodes, so the report compares arms pairwise. `--replicate` runs the
preset again from other starts (DIR/replicate) and the report says, per claim, whether the
verdict held.

Any task: every stage picks splits by role (difficulty and GRPO on the train split, the sweep
and the checkpoint pick on the validation split or held-out train samples, curves and the
report on the test and OOD splits). Every stage leaves files in the study directory and is
skipped when its files are complete, so a stopped study continues where it stopped.

Study directory: ``study.json`` (the resolved config, claimed like every run directory),
``plan.json`` (what the study runs, as data: the design, arms, the task's splits by role, its
references, the verdict rule's settings), then per start ``start-<c>/``: ``coldstart.json``,
``difficulty/``, ``data/``, ``lr_sweep/``, ``runs/<arm>/seed-<s>/`` (a `gengap train` run
directory plus ``selection.json`` and ``test/step-<N>/``, a `gengap eval` directory).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gengap.arms import CATALOG, RL_KINDS, arm_specs, known_arm
from gengap.config import CONFIGS_DIR, load_recipe, read_yaml, recipe_dict
from gengap.cost import Clock
from gengap.errors import InputError
from gengap.io import write_json, write_jsonl
from gengap.runinfo import run_metadata
from gengap.runs import RunDir

PRESETS_DIR = CONFIGS_DIR / "presets"
SKIPPED_FILE = "skipped.json"  # in DIR/data: arms whose data could not be curated, and why
PLAN_FILE = "plan.json"


@dataclass(kw_only=True)
class StudyConfig:
    """A preset: everything `gengap reproduce` runs (each key can be overridden: key=value)."""

    preset: str = "custom"
    task: str = "generalpoints"
    task_options: dict[str, Any] = field(default_factory=dict)
    # The start of every arm: "tiny" (the embedded model's cold start) or a checkpoint.
    model: str = "tiny"
    lora: bool = False  # train every arm with LoRA adapters (PEFT); sft/grpo keys override
    # With LoRA: merge each arm's adapters into its final weights (true), or keep final/ as a
    # PEFT adapter directory over the start model (false); every stage loads either.
    merge_adapters: bool = True
    # Replicates. Training seeds; with `starts` unset, seed s also cold-starts start s (the
    # tiny model's cold-start seed; with a checkpoint, the seed of the start's difficulty pass
    # and curation), so every replicate has a start of its own. `starts` crosses explicit
    # start seeds with `seeds`.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    starts: list[int] | None = None
    coldstart: dict[str, Any] = field(default_factory=dict)  # cold-start recipe overrides
    # Difficulty: DC-SFT's settings (k rollouts at temperature 0.9, top_k 50).
    difficulty_n: int | None = 1000  # None: a finite train split whole
    k: int = 8
    # Arms: same start, same steps, same prompts per step.
    arms: list[str] = field(default_factory=lambda: [
        "sft-all", "sft-e", "sft-m", "sft-h", "sft-em", "grpo"])
    hard_ratios: list[float] = field(default_factory=lambda: [0.05, 0.15, 0.30])
    steps: int = 60
    batch_size: int = 16
    # How arms are matched: in optimizer steps (each arm trains `steps`), or in the study's
    # FLOPs ("SFT Memorizes, RL Generalizes": 6N(D_init + D) [+ 2N*D_buffer for RL]): the
    # `match_arm` (default: the first arm) trains `steps` steps and every other arm of the
    # start trains until it has spent as many FLOPs (at most `match_max_factor` x `steps`);
    # arms with a start of their own (<rl>-nowarmup, <rl>-from-overfit) train `steps`, and
    # sft-overfit `overfit_factor` x `steps` (with match: flops, `overfit_factor` x the
    # training FLOPs every matched arm spends: SFT-all's own steps are matched, so a multiple
    # of `steps` could leave the "over-fitted" arm shorter than SFT-all).
    match: Literal["steps", "flops"] = "steps"
    match_arm: str | None = None
    match_max_factor: float = 10.0
    overfit_factor: float = 5.0  # sft-overfit trains this many times `steps`
    eval_every: int = 20  # curve points and checkpoints (each a candidate for the best one)
    eval_n: int = 200  # curve evaluation per split (a smaller finite split is evaluated whole)
    eval_splits: list[str] | None = None  # None: every test and OOD split of the task
    # The verdicts' test sets: episodes per generated split (a finite split is tested whole),
    # on the best-on-validation and the last checkpoint of every arm.
    test_n: int = 1000
    # Attempts per curve and test episode: 1 (first-attempt success, DC-SFT's measure and the
    # recognition one), or up to V (success within V attempts, "SFT Memorizes, RL
    # Generalizes"' success rate; 0 = the task's verify_iters). ID validation (the pick of the
    # best checkpoint and of the learning rate) stays at the first attempt.
    eval_verify_iters: int = 1
    # Which checkpoint the verdicts compare: the best on ID validation, or the last.
    verdict_checkpoint: Literal["best", "last"] = "best"
    alpha: float = 0.05  # family-wise error of all verdicts together (Bonferroni)
    margin: float = 0.02  # "matches or beats": non-inferiority margin (share of episodes)
    # Learning rates: each arm's is picked on ID validation from its kind's candidates.
    sft_lrs: list[float] = field(default_factory=lambda: [3e-5, 1e-4, 3e-4])
    grpo_lrs: list[float] = field(default_factory=lambda: [1e-5, 3e-5, 1e-4])
    sweep_steps: int | None = None  # None: the arm's own steps
    lr_extend: int = 2  # grid steps the sweep may add beyond an edge pick (0: fixed grid)
    # ID validation episodes: each sweep candidate, and each checkpoint (the best one's pick).
    sweep_val_n: int = 200
    sweep_ood_n: int = 100  # OOD success per candidate lr: reported, never used to pick
    sft: dict[str, Any] = field(default_factory=dict)  # SFTRecipe overrides
    grpo: dict[str, Any] = field(default_factory=dict)  # GRPORecipe overrides
    ppo: dict[str, Any] = field(default_factory=dict)  # PPORecipe overrides
    ppo_lrs: list[float] = field(default_factory=lambda: [1e-5, 3e-5, 1e-4])

    def validate(self) -> None:
        if not self.seeds:
            raise InputError("'seeds' is empty", hint="e.g. seeds=[0,1,2]")
        if self.starts is not None and not self.starts:
            raise InputError("'starts' is empty", hint="e.g. starts=[0,1], or leave it unset")
        for key in ("seeds", "starts"):
            values = getattr(self, key) or []
            if len(set(values)) != len(values):
                raise InputError(f"{key!r} repeats a value: {values}")
        if not 0 < self.alpha < 1 or not 0 <= self.margin < 1:
            raise InputError(f"alpha must lie in (0, 1) and margin in [0, 1): "
                             f"{self.alpha}, {self.margin}")
        unknown = [a for a in self.arms if not known_arm(a)]
        if unknown:
            raise InputError(f"unknown arm(s) {unknown}",
                             hint=f"arms are {', '.join(CATALOG)}, and the families "
                                  "ppo-v<V> / grpo-mt-v<V>, <rl>-nowarmup, "
                                  "<rl>-from-overfit, sft-overfit")
        if self.overfit_factor < 1:
            raise InputError(f"'overfit_factor' must be >= 1, got {self.overfit_factor}")
        if any(not 0 < r < 1 for r in self.hard_ratios):
            raise InputError(f"hard_ratios must lie in (0, 1): {self.hard_ratios}")
        for key in ("steps", "batch_size", "k", "eval_n", "test_n", "sweep_val_n",
                    "sweep_ood_n", "eval_every"):
            if getattr(self, key) < 1:
                raise InputError(f"{key!r} must be >= 1, got {getattr(self, key)}")
        if self.match_arm is not None and self.match_arm not in self.arms:
            raise InputError(f"'match_arm' {self.match_arm!r} is not one of the arms",
                             hint=f"arms: {', '.join(self.arms)}")
        if self.match_max_factor < 1:
            raise InputError(f"'match_max_factor' must be >= 1, got {self.match_max_factor}")
        if self.eval_verify_iters < 0:
            raise InputError(f"'eval_verify_iters' must be >= 0, got {self.eval_verify_iters}",
                             hint="1: first attempt; V: success within V; 0: the task's V")
        if self.lr_extend < 0:
            raise InputError(f"'lr_extend' must be >= 0, got {self.lr_extend}")

    def design(self) -> dict[int, list[int]]:
        """start seed -> the training seeds run on it."""
        if self.starts is None:
            return {s: [s] for s in self.seeds}
        return {c: list(self.seeds) for c in self.starts}

    def all_arms(self) -> list[str]:
        """Every trained arm, ablation arms included (in report order)."""
        return list(arm_specs(self.arms, self.hard_ratios))


def load_preset(name: str, *, quick: bool = False, overrides: list[str] = ()) -> StudyConfig:
    """A shipped preset by name (configs/presets/NAME.yaml) or a path to the user's own YAML;
    its `quick:` block is merged in with `quick`."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise InputError(f"unknown preset {name!r}", where=str(path),
                         hint=f"shipped presets: {', '.join(known)}; or a path to a .yaml file")
    data = read_yaml(path)
    quick_block = data.pop("quick", {}) or {}
    if quick:
        data.update(quick_block)
    data["preset"] = name + (" --quick" if quick else "")
    # load_recipe parses key=value words itself (a later word wins, bad words are errors).
    return load_recipe(StudyConfig, None, list(overrides), base=data,
                       base_label=f"preset {path}")


def replicate_config(config: StudyConfig) -> StudyConfig:
    """The same study from other starts: every start seed shifted past the current ones."""
    design = config.design()
    shift = max(design) + 1 - min(design)
    if config.starts is None:
        return dataclasses.replace(config, seeds=[s + shift for s in config.seeds])
    return dataclasses.replace(config, starts=[c + shift for c in config.starts])


class Study:
    """One study directory and the stages that fill it."""

    def __init__(self, config: StudyConfig, root: str | Path, *, log=print,
                 device: str = "auto", dtype: str = "auto"):
        from gengap.tasks.registry import build_task

        self.config = config
        self.root = Path(root)
        self.log = log
        self.device = device
        self.dtype = dtype
        self.timings: dict[str, dict[str, float]] = {}
        self.task = build_task(config.task, config.task_options, tiny=config.model == "tiny")
        self.train_split = self.task.split_for("train")
        from gengap.evaluate import eval_splits

        self.eval_splits = eval_splits(self.task, config.eval_splits)
        self.arms = arm_specs(config.arms, config.hard_ratios)
        self.design = config.design()

    @property
    def task_options(self) -> dict[str, Any]:
        return dict(self.task.options)

    def start_dir(self, start: int) -> Path:
        return self.root / f"start-{start}"

    def run_dir(self, start: int, arm: str, seed: int) -> Path:
        return self.start_dir(start) / "runs" / arm / f"seed-{seed}"

    # -- bookkeeping -----------------------------------------------------------------------
    def _claim(self) -> None:
        """Claim the directory with the resolved config; write the plan (arms, split roles)."""
        current = recipe_dict(self.config)
        run = RunDir(self.root, "study", current)
        run.claim(has_results=lambda: any(self.root.glob("start-*/runs")))
        task = self.task
        c = self.config
        write_json(self.root / PLAN_FILE, {
            "preset": c.preset,
            "task": {
                "name": task.name, "spec": task.spec, "description": task.description,
                "modality": task.modality, "options": self.task_options,
                "splits": {s.name: s.as_dict() for s in task.splits.values()},
                "references": dict(getattr(task, "references", {})),
                "metric_docs": dict(getattr(task, "metric_docs", {})),
            },
            "train_split": self.train_split,
            "eval_splits": self.eval_splits,
            "arms": self.arms,
            # start seed -> training seeds; what a start is for this model
            "design": {str(k): v for k, v in self.design.items()},
            "start_kind": "cold start of the tiny model (its seed)" if c.model == "tiny"
            else f"{c.model} (the start seed seeds its difficulty pass and curation)",
            "budget": {"steps": c.steps, "batch_size": c.batch_size,
                       "eval_every": c.eval_every, "match": c.match,
                       "match_arm": self.match_arm if c.match == "flops" else None},
            "evaluation": {"curve_n": c.eval_n, "test_n": c.test_n, "val_n": c.sweep_val_n,
                           "attempts": self.eval_verify_iters, "decoding": "greedy",
                           "validation_attempts": 1},
            "verdict": {"checkpoint": c.verdict_checkpoint, "alpha": c.alpha,
                        "margin": c.margin},
            "provenance": run_metadata(current, min(self.design)),
        })

    def _stage(self, name: str, fn, *args, **kwargs):
        self.log(f"== {name}")
        clock = Clock()
        with clock:
            result = fn(*args, **kwargs)
        self.timings[name] = {"wall_seconds": round(clock.wall, 3),
                              "cpu_seconds": round(clock.cpu, 3)}
        self.log(f"   {name}: {clock.wall:.1f} s (CPU {clock.cpu:.1f} s)")
        timings_path = self.root / "timings.json"
        old = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        write_json(timings_path, {**old, **self.timings})
        return result

    # -- stages ----------------------------------------------------------------------------
    def start_model(self, start: int) -> Path:
        """The checkpoint every arm of `start` trains from: the tiny model's cold start with
        seed `start`, or the given model."""
        if self.config.model == "tiny":
            from gengap.coldstart import coldstart

            overrides = {k: v for k, v in self.config.coldstart.items() if k != "seed"}
            path = Path(coldstart(self.task, seed=start, **overrides))
        else:
            from gengap.models.loading import resolve_spec

            path = Path(resolve_spec(self.config.model, task=self.task))
        write_json(self.start_dir(start) / "coldstart.json",
                   {"path": str(path), "model": self.config.model, "seed": start})
        return path

    def init_eval(self, start: int, model: Path) -> None:
        """The start point of every arm: its curve point, ID validation and test sets."""
        out = self.run_dir(start, "init", 0)
        result = self.test_eval(str(model), out, 0)
        rows = [{"step": 0, "split": split, **metrics}
                for split, metrics in result["results"].items()]
        write_jsonl(out / "curve.jsonl", [{k: v for k, v in r.items()
                                           if isinstance(v, int | float | str)} for r in rows])
        self._select(out, self._validation_recipe(model, out), {0: model}, force_best=0)

    def _validation_recipe(self, model: Path, out: Path) -> Any:
        """A recipe whose ID validation samples are every arm's: the task's validation split,
        else the train samples past the difficulty pass (which SFT data and GRPO prompts
        come from)."""
        from gengap.train.grpo import GRPORecipe

        return GRPORecipe(model=str(model), out=str(out), split=self.train_split,
                          n_prompts=self.task.count(self.train_split, self.config.difficulty_n,
                                                    where="difficulty_n"),
                          task=self.config.task, task_options=self.task_options)

    def difficulty(self, start: int, model: Path) -> Path:
        from gengap.difficulty.estimate import DifficultyConfig, estimate_difficulty

        out = self.start_dir(start) / "difficulty"
        config = DifficultyConfig(model=str(model), task=self.config.task,
                                  task_options=self.task_options, split=self.train_split,
                                  n=self.task.count(self.train_split, self.config.difficulty_n,
                                                    where="difficulty_n"),
                                  k=self.config.k, seed=start)
        estimate_difficulty(config, out, task=self.task, device=self.device, dtype=self.dtype,
                            progress=False)
        return out

    def _data(self, start: int, arm: str) -> Path | None:
        if self.arms[arm]["kind"] != "sft":
            return None
        return self.start_dir(start) / "data" / f"{arm}.jsonl"

    def curate(self, start: int, difficulty: Path) -> dict[str, Path]:
        """One SFT set per SFT arm (arms whose buckets are empty are skipped, with a note)."""
        from gengap.difficulty.curate import curate, meta_path

        files, skipped = {}, {}
        for arm, spec in self.arms.items():
            if spec["kind"] != "sft":
                continue
            out = self._data(start, arm)
            if not meta_path(out).exists():
                try:
                    meta = curate(difficulty, spec["data"], out, seed=start)
                except InputError as exc:
                    self.log(f"   skipping {arm}: {exc.message}")
                    skipped[arm] = exc.message
                    continue
                self.log(f"   {arm}: {meta['rows']} rows {meta['buckets_selected']}")
            files[arm] = out
        # The report says which arms were left out and why.
        write_json(self.start_dir(start) / "data" / SKIPPED_FILE, skipped)
        return files

    def _eval_config(self, model: str, n: int):
        from gengap.evaluate import EvalConfig

        return EvalConfig(model=model, task=self.config.task, splits=self.eval_splits,
                          n=n, verify_iters=self.eval_verify_iters, temperature=0.0, seed=0,
                          task_options=self.task_options, clip_n=True)

    def test_eval(self, model: str, run: Path, step: int) -> dict[str, Any]:
        """The verdicts' test sets on one checkpoint, the same episodes for every arm and
        start: a finite split whole, a generated one `test_n` episodes. RUN/test/step-N is a
        `gengap eval` directory (one per split size, RUN/test/step-N/<n>, when they differ)."""
        from gengap.evaluate import evaluate

        groups: dict[int | None, list[str]] = {}
        for split in self.eval_splits:
            size = self.task.split(split).size
            groups.setdefault(None if size is not None else self.config.test_n,
                              []).append(split)
        results: dict[str, Any] = {"results": {}}
        for n, splits in groups.items():
            out = run / "test" / f"step-{step}"
            if len(groups) > 1:
                out = out / ("whole" if n is None else f"n{n}")
            config = dataclasses.replace(self._eval_config(model, n or 0), splits=splits, n=n)
            results["results"].update(evaluate(config, out, progress=False, device=self.device,
                                               dtype=self.dtype)["results"])
        return results

    def _recipe(self, start: int, arm: str, model: Path, data: Path | None, seed: int,
                out: Path):
        """The arm's training recipe: same start, steps and prompts per step for every arm."""
        from gengap.train.grpo import GRPORecipe
        from gengap.train.sft import SFTRecipe

        common = {
            "model": str(model), "out": str(out), "steps": self.config.steps,
            "batch_size": self.config.batch_size, "seed": seed, "task": self.config.task,
            "task_options": self.task_options, "lora": self.config.lora,
            "merge_adapters": self.config.merge_adapters,
            "save_every": self.config.eval_every, "eval_every": self.config.eval_every,
            "eval_splits": list(self.eval_splits), "eval_n": self.config.eval_n,
            "eval_verify_iters": self.eval_verify_iters, "save_only_model": True,
        }
        from gengap.train.ppo import PPORecipe

        spec = self.arms[arm]
        if spec.get("steps_factor"):
            common["steps"] = round(self.config.steps * getattr(self.config,
                                                                spec["steps_factor"]))
        if spec["kind"] in RL_KINDS:
            values = {**common, "split": self.train_split,
                      "n_prompts": self.task.count(self.train_split, self.config.difficulty_n,
                                                   where="difficulty_n"),
                      **getattr(self.config, spec["kind"]), **spec.get("recipe", {})}
            if spec.get("filter") == "difficulty":
                values["filter_by_difficulty"] = str(self.start_dir(start) / "difficulty")
            if spec["kind"] == "ppo":
                values.pop("batch_size")  # PPO's buffer is rollout_steps environment steps
                return PPORecipe(**values)
            return GRPORecipe(**values)
        values = {**common, "data": str(data), **self.config.sft}
        return SFTRecipe(**values)

    def sweep(self, start: int, arm: str, model: Path, data: Path | None) -> float:
        """Pick the arm's learning rate on ID validation; OOD per candidate is only reported."""
        from gengap.evaluate import evaluate
        from gengap.train.sweep import pick_lr

        out = self.start_dir(start) / "lr_sweep"
        summary_path = out / f"{arm}.json"
        if summary_path.exists():
            return json.loads(summary_path.read_text())["picked"]
        lrs = getattr(self.config, f"{self.arms[arm]['kind']}_lrs")
        if len(lrs) == 1:
            return lrs[0]
        seed = self.design[start][0]
        recipe = self._recipe(start, arm, model, data, seed, out / arm)
        result = pick_lr(recipe, lrs, out / arm, val_n=self.config.sweep_val_n,
                         steps=self.config.sweep_steps, device=self.device,
                         dtype=self.dtype, extend=self.config.lr_extend)
        ood_splits = [s.name for s in self.task.with_role("ood") if s.name in self.eval_splits]
        ood = []
        for row in result["results"]:
            config = dataclasses.replace(
                self._eval_config(str(Path(row["run"]) / "final"), self.config.sweep_ood_n),
                splits=ood_splits[:1])
            res = (evaluate(config, Path(row["run"]) / "ood-eval", progress=False,
                            device=self.device, dtype=self.dtype)["results"]
                   if ood_splits else {})
            ood.append(next(iter(res.values()))["success"] if res else None)
        write_json(summary_path, {
            "lrs": [r["learning_rate"] for r in result["results"]],
            "id_val": [r["val_success"] for r in result["results"]],
            "ood": ood, "ood_split": ood_splits[:1], "picked": result["picked"],
            "grid": result["grid"], "extended": result["extended"],
            "bracketed": result["bracketed"], "validation": result["validation"],
        })
        return result["picked"]

    @property
    def eval_verify_iters(self) -> int:
        """Attempts per curve and test episode (`eval_verify_iters`; 0: the task's V)."""
        return self.config.eval_verify_iters or self.task.verify_iters

    @property
    def match_arm(self) -> str | None:
        """The arm whose FLOPs at `steps` every other arm is matched to (match: flops)."""
        if self.config.match != "flops":
            return None
        return self.config.match_arm or next(iter(self.arms))

    def flops_target(self, start: int, seed: int, factor: float = 1.0) -> float:
        """GFLOPs the arms of (start, seed) train to: the match arm's at its last step (with
        `factor`, the start's share plus `factor` x what the match arm spent itself)."""
        from gengap.cost import gflops_past_start, read_compute
        from gengap.train.common import FINAL_DIR

        record = read_compute(self.run_dir(start, self.match_arm, seed) / FINAL_DIR)
        if record is None:
            raise InputError(f"match: flops needs the finished {self.match_arm!r} run first",
                             where=str(self.run_dir(start, self.match_arm, seed)))
        study = record["study_flops"]
        return study["gflops"] + (factor - 1) * gflops_past_start(study)

    def arm_start(self, start: int, arm: str, model: Path, seed: int) -> Path:
        """The checkpoint `arm` trains from: the start model, the same architecture with
        fresh random weights (start: random), or another arm's final model."""
        from gengap.train.common import FINAL_DIR

        source = self.arms[arm].get("start")
        if source is None:
            return model
        if source != "random":
            return self.run_dir(start, source, seed) / FINAL_DIR
        out = self.start_dir(start) / "random-init"
        if not (out / "config.json").is_file():
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM

            from gengap.models import load_model
            from gengap.runs import atomic_dir

            processor = load_model(str(model), task=self.task, device="cpu").processor
            torch.manual_seed(start)
            fresh = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
            with atomic_dir(out) as tmp:
                fresh.save_pretrained(tmp)
                processor.save_pretrained(tmp)
        return out

    def train(self, start: int, arm: str, model: Path, data: Path | None, seed: int,
              lr: float) -> None:
        """Train one arm on one start with one seed, then pick and test its checkpoints."""
        from gengap.train import TRAINERS
        from gengap.train.common import FINAL_DIR

        out = self.run_dir(start, arm, seed)
        model = self.arm_start(start, arm, model, seed)
        recipe = dataclasses.replace(self._recipe(start, arm, model, data, seed, out),
                                     learning_rate=lr)
        # Arms from another start (fresh weights, another arm's checkpoint) train `steps`:
        # their D_init differs, so a shared total would starve or flood them.
        # sft-overfit trains its own multiple of the matched compute (over-fitting is its point).
        spec = self.arms[arm]
        if self.match_arm is not None and arm != self.match_arm and not spec.get("start"):
            factor = getattr(self.config, spec["steps_factor"]) if spec.get("steps_factor") else 1
            recipe = dataclasses.replace(
                recipe, max_gflops=self.flops_target(start, seed, factor),
                steps=max(recipe.steps, round(recipe.steps * self.config.match_max_factor)))
        result = TRAINERS[self.arms[arm]["kind"]](recipe)
        checkpoints = {int(p.name.split("-")[1]): p for p in out.glob("checkpoint-*")
                       if p.name.split("-")[1].isdigit()}
        checkpoints[int(result.budget.get("steps_done") or recipe.steps)] = out / FINAL_DIR
        self._select(out, recipe, checkpoints)

    def _select(self, out: Path, recipe: Any, checkpoints: dict[int, Path],
                force_best: int | None = None) -> dict[str, Any]:
        """ID validation of every checkpoint, the best one's pick, and the test sets of the
        best and the last checkpoint. Written to OUT/selection.json as it goes (resumes)."""
        from gengap.models import load_model
        from gengap.train.sweep import id_validation_success, validation_indices

        path = out / "selection.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        split, seed, indices = validation_indices(recipe, self.config.sweep_val_n, None,
                                                  self.task)
        val = {int(k): v for k, v in old.get("val", {}).items()}
        info = {"split": split, "seed": seed, "start": indices.start, "n": len(indices),
                "rule": "ID", "decoding": "greedy, 1 attempt"}
        for step in sorted(checkpoints):
            if step in val:
                continue
            loaded = load_model(str(checkpoints[step]), task=self.task, device=self.device)
            val[step] = id_validation_success(loaded.model, loaded.processor, self.task,
                                              split, indices, seed)
            write_json(path, {"validation": info, "val": val})
        last = max(checkpoints)
        # Ties go to the earlier checkpoint (less training for the same validation score).
        best = force_best if force_best is not None else max(val, key=lambda s: (val[s], -s))
        for step in sorted({best, last}):
            self.test_eval(str(checkpoints[step]), out, step)
        selection = {"validation": info, "val": val, "best_step": best, "last_step": last,
                     "rule": "the checkpoint with the highest ID-validation success "
                             "(ties: the earlier one); step 0 (the start) is not a candidate"}
        write_json(path, selection)
        return selection

    # -- the whole study -------------------------------------------------------------------
    def run_start(self, start: int) -> None:
        """Every stage of one start (skipping what is already complete)."""
        from gengap.report import write_report

        tag = f"start {start}"
        model = self._stage(f"{tag}: start model", self.start_model, start)
        self._stage(f"{tag}: init evaluation", self.init_eval, start, model)
        difficulty = self._stage(f"{tag}: difficulty", self.difficulty, start, model)
        files = self._stage(f"{tag}: curate", self.curate, start, difficulty)
        arms = [a for a, spec in self.arms.items() if spec["kind"] in RL_KINDS or a in files]
        # Ablation arms share their reference arm's learning rate: an ablation varies the
        # data only (without its reference arm, an ablation arm is swept itself).
        lrs = {}
        for arm in arms:
            if self.arms[arm].get("lr_from") in arms:
                continue
            lrs[arm] = self._stage(f"{tag}: lr sweep {arm}", self.sweep, start, arm, model,
                                   files.get(arm))
            self.log(f"   {arm}: lr {lrs[arm]:g}")
        # Arms that start from another arm's checkpoint after it (stable otherwise).
        arms = sorted(arms, key=lambda a: self.arms[a].get("start") not in (None, "random"))
        if self.match_arm in arms:  # the compute every other arm is matched to comes first
            arms = [self.match_arm, *(a for a in arms if a != self.match_arm)]
        for arm in arms:
            lr = lrs.get(arm) or lrs[self.arms[arm]["lr_from"]]
            for seed in self.design[start]:
                self._stage(f"{tag}: train {arm} seed {seed}", self.train, start, arm, model,
                            files.get(arm), seed, lr)
            write_report(self.root)  # a partial report after every arm

    def run(self, starts: list[int] | None = None) -> Path:
        """Run (or continue) every start, or only `starts` (starts are independent: one
        process per start, on one study directory, runs them side by side); returns the
        report's path."""
        from gengap.report import write_report

        unknown = sorted(set(starts or []) - set(self.design))
        if unknown:
            raise InputError(f"start(s) {unknown} are not in this study's design",
                             hint=f"its starts are {sorted(self.design)}")
        self._claim()
        for start in self.design:
            if starts is None or start in starts:
                self.run_start(start)
        return self._stage("report", write_report, self.root)


REPLICATE_DIR = "replicate"  # DIR/replicate: the same preset from other starts


def reproduce(preset: str, out: str | Path, *, quick: bool = False,
              overrides: list[str] = (), device: str = "auto", dtype: str = "auto",
              replicate: bool = False,
              starts: list[int] | None = None, log=print) -> Path:
    """Run the preset's study in `out` (continuing a stopped one); returns report.md.

    `replicate`: then run it again from other starts in OUT/replicate and print, per claim,
    whether the two runs' verdicts agree (the report carries the same table). `starts`: run
    only these starts (of the study, or with `replicate` of the replicate).
    """
    config = load_preset(preset, quick=quick, overrides=list(overrides))
    if not replicate:
        return Study(config, out, device=device, dtype=dtype, log=log).run(starts)
    if starts is None:  # with `starts`, only those starts of the replicate run
        Study(config, out, device=device, dtype=dtype, log=log).run()
    Study(replicate_config(config), Path(out) / REPLICATE_DIR, device=device, dtype=dtype,
          log=log).run(starts)
    from gengap.report import write_report
    from gengap.report.stability import format_stability, stability

    report = write_report(out)
    log(format_stability(stability(out, Path(out) / REPLICATE_DIR)))
    return report
