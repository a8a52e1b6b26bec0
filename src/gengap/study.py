"""`gengap reproduce`: both studies in miniature, from cold start to report.

    start model (the tiny cold start, or a checkpoint) -> Init evaluation -> difficulty on the
    train split -> curated SFT sets -> learning-rate sweep per arm (ID validation only)
    -> arms x seeds, each with an ID/OOD curve -> hard-ratio ablation -> report

Any task: every stage picks splits by role (difficulty and GRPO on the train split, the sweep
on the validation split or held-out train samples, curves and the report on the test and OOD
splits). Every stage leaves files in the study directory and is skipped when its files are
complete, so a stopped study continues where it stopped: the cold start is cached by recipe
hash, the difficulty pass and evaluations resume chunk by chunk, training resumes from its last
checkpoint, and finished arms are not run again. Presets live in `configs/presets/`.

Study directory: ``study.json`` (the resolved config, claimed like every run directory),
``plan.json`` (what the study runs, as data: arms, the task's splits by role, its references),
then the stages' own directories.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.arms import CATALOG, arm_specs
from gengap.config import CONFIGS_DIR, load_recipe, read_yaml, recipe_dict
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
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
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
    eval_every: int = 20
    eval_n: int = 200  # per split (a smaller finite split is evaluated whole)
    eval_splits: list[str] | None = None  # None: every test and OOD split of the task
    # Learning rates: each arm's is picked on ID validation from its kind's candidates.
    sft_lrs: list[float] = field(default_factory=lambda: [3e-5, 1e-4, 3e-4])
    grpo_lrs: list[float] = field(default_factory=lambda: [1e-5, 3e-5, 1e-4])
    sweep_steps: int | None = None  # None: the arm's own steps
    sweep_val_n: int = 200
    sweep_ood_n: int = 100  # OOD success per candidate lr: reported, never used to pick
    sft: dict[str, Any] = field(default_factory=dict)  # SFTRecipe overrides
    grpo: dict[str, Any] = field(default_factory=dict)  # GRPORecipe overrides

    def validate(self) -> None:
        if not self.seeds:
            raise InputError("'seeds' is empty", hint="e.g. seeds=[0,1,2]")
        unknown = [a for a in self.arms if a not in CATALOG]
        if unknown:
            raise InputError(f"unknown arm(s) {unknown}",
                             hint=f"arms are {', '.join(CATALOG)}")
        if any(not 0 < r < 1 for r in self.hard_ratios):
            raise InputError(f"hard_ratios must lie in (0, 1): {self.hard_ratios}")
        for key in ("steps", "batch_size", "k", "eval_n", "sweep_val_n", "sweep_ood_n"):
            if getattr(self, key) < 1:
                raise InputError(f"{key!r} must be >= 1, got {getattr(self, key)}")

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
        self.timings: dict[str, float] = {}
        self.task = build_task(config.task, config.task_options, tiny=config.model == "tiny")
        self.train_split = self.task.split_for("train")
        from gengap.evaluate import eval_splits

        self.eval_splits = eval_splits(self.task, config.eval_splits)
        self.arms = arm_specs(config.arms, config.hard_ratios)

    @property
    def task_options(self) -> dict[str, Any]:
        return dict(self.task.options)

    # -- bookkeeping -----------------------------------------------------------------------
    def _claim(self) -> None:
        """Claim the directory with the resolved config; write the plan (arms, split roles)."""
        current = recipe_dict(self.config)
        run = RunDir(self.root, "study", current)
        run.claim(has_results=lambda: (self.root / "runs").is_dir())
        task = self.task
        write_json(self.root / PLAN_FILE, {
            "preset": self.config.preset,
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
            "provenance": run_metadata(current, self.config.seeds[0]),
        })

    def _stage(self, name: str, fn, *args, **kwargs):
        self.log(f"== {name}")
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.timings[name] = time.perf_counter() - start
        self.log(f"   {name}: {self.timings[name]:.1f} s")
        timings_path = self.root / "timings.json"
        old = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        write_json(timings_path, {**old, **self.timings})
        return result

    # -- stages ----------------------------------------------------------------------------
    def start_model(self) -> Path:
        """The checkpoint every arm starts from: the tiny cold start, or the given model."""
        if self.config.model == "tiny":
            from gengap.coldstart import coldstart

            path = Path(coldstart(self.task, **self.config.coldstart))
        else:
            from gengap.models.loading import resolve_spec

            path = Path(resolve_spec(self.config.model, task=self.task))
        write_json(self.root / "coldstart.json", {"path": str(path), "model": self.config.model})
        return path

    def init_eval(self, model: Path) -> None:
        """The start point of every arm, evaluated once (greedy: seed-independent)."""
        from gengap.evaluate import evaluate

        out = self.root / "runs" / "init" / "seed-0"
        result = evaluate(self._eval_config(str(model)), out / "eval", progress=False,
                          device=self.device, dtype=self.dtype)
        rows = [{"step": 0, "split": split, **metrics}
                for split, metrics in result["results"].items()]
        write_jsonl(out / "curve.jsonl", [{k: v for k, v in r.items()
                                           if isinstance(v, int | float | str)} for r in rows])

    def difficulty(self, model: Path) -> Path:
        from gengap.difficulty.estimate import DifficultyConfig, estimate_difficulty

        out = self.root / "difficulty"
        config = DifficultyConfig(model=str(model), task=self.config.task,
                                  task_options=self.task_options, split=self.train_split,
                                  n=self.task.count(self.train_split, self.config.difficulty_n,
                                                    where="difficulty_n"),
                                  k=self.config.k, seed=self.config.seeds[0])
        estimate_difficulty(config, out, task=self.task, device=self.device, dtype=self.dtype)
        return out

    def curate(self, difficulty: Path) -> dict[str, Path]:
        """One SFT set per SFT arm (arms whose buckets are empty are skipped, with a note)."""
        from gengap.difficulty.curate import curate, meta_path

        files, skipped = {}, {}
        for arm, spec in self.arms.items():
            if spec["kind"] != "sft":
                continue
            out = self.root / "data" / f"{arm}.jsonl"
            if not meta_path(out).exists():
                try:
                    meta = curate(difficulty, spec["data"], out, seed=self.config.seeds[0])
                except InputError as exc:
                    self.log(f"   skipping {arm}: {exc.message}")
                    skipped[arm] = exc.message
                    continue
                self.log(f"   {arm}: {meta['rows']} rows {meta['buckets_selected']}")
            files[arm] = out
        # The report says which arms were left out and why.
        write_json(self.root / "data" / SKIPPED_FILE, skipped)
        return files

    def _eval_config(self, model: str):
        from gengap.evaluate import EvalConfig

        return EvalConfig(model=model, task=self.config.task, splits=self.eval_splits,
                          n=self.config.eval_n, verify_iters=1, temperature=0.0, seed=0,
                          task_options=self.task_options, clip_n=True)

    def _recipe(self, arm: str, model: Path, data: Path | None, seed: int, out: Path):
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
            "eval_verify_iters": 1, "save_only_model": True,
        }
        spec = self.arms[arm]
        if spec["kind"] == "grpo":
            values = {**common, "split": self.train_split,
                      "n_prompts": self.task.count(self.train_split, self.config.difficulty_n,
                                                   where="difficulty_n"),
                      **self.config.grpo}
            if spec.get("filter") == "difficulty":
                values["filter_by_difficulty"] = str(self.root / "difficulty")
            return GRPORecipe(**values)
        values = {**common, "data": str(data), **self.config.sft}
        return SFTRecipe(**values)

    def sweep(self, arm: str, model: Path, data: Path | None) -> float:
        """Pick the arm's learning rate on ID validation; OOD per candidate is only reported."""
        from gengap.evaluate import evaluate
        from gengap.train.sweep import pick_lr

        out = self.root / "lr_sweep"
        summary_path = out / f"{arm}.json"
        if summary_path.exists():
            return json.loads(summary_path.read_text())["picked"]
        lrs = self.config.grpo_lrs if self.arms[arm]["kind"] == "grpo" else self.config.sft_lrs
        if len(lrs) == 1:
            return lrs[0]
        recipe = self._recipe(arm, model, data, self.config.seeds[0], out / arm)
        result = pick_lr(recipe, lrs, out / arm, val_n=self.config.sweep_val_n,
                         steps=self.config.sweep_steps, device=self.device, dtype=self.dtype)
        ood_splits = [s.name for s in self.task.with_role("ood") if s.name in self.eval_splits]
        ood = []
        for row in result["results"]:
            config = dataclasses.replace(self._eval_config(str(Path(row["run"]) / "final")),
                                         splits=ood_splits[:1], n=self.config.sweep_ood_n)
            res = (evaluate(config, Path(row["run"]) / "ood-eval", progress=False,
                            device=self.device, dtype=self.dtype)["results"]
                   if ood_splits else {})
            ood.append(next(iter(res.values()))["success"] if res else None)
        write_json(summary_path, {
            "lrs": [r["learning_rate"] for r in result["results"]],
            "id_val": [r["val_success"] for r in result["results"]],
            "ood": ood, "ood_split": ood_splits[:1], "picked": result["picked"],
            "validation": result["validation"],
        })
        return result["picked"]

    def train(self, arm: str, model: Path, data: Path | None, seed: int, lr: float) -> None:
        from gengap.train.grpo import train_grpo
        from gengap.train.sft import train_sft

        out = self.root / "runs" / arm / f"seed-{seed}"
        recipe = dataclasses.replace(self._recipe(arm, model, data, seed, out),
                                     learning_rate=lr)
        (train_grpo if self.arms[arm]["kind"] == "grpo" else train_sft)(recipe)

    # -- the whole study -------------------------------------------------------------------
    def run(self) -> Path:
        """Run (or continue) every stage; returns the report's path."""
        from gengap.report import write_report

        self._claim()
        model = self._stage("start model", self.start_model)
        self._stage("init evaluation", self.init_eval, model)
        difficulty = self._stage("difficulty", self.difficulty, model)
        files = self._stage("curate", self.curate, difficulty)
        arms = [a for a, spec in self.arms.items() if spec["kind"] == "grpo" or a in files]
        # Ablation arms share their reference arm's learning rate: an ablation varies the
        # data only (without its reference arm, an ablation arm is swept itself).
        lrs = {}
        for arm in arms:
            if self.arms[arm].get("lr_from") in arms:
                continue
            lrs[arm] = self._stage(f"lr sweep {arm}", self.sweep, arm, model, files.get(arm))
            self.log(f"   {arm}: lr {lrs[arm]:g}")
        for arm in arms:
            lr = lrs.get(arm) or lrs[self.arms[arm]["lr_from"]]
            for seed in self.config.seeds:
                self._stage(f"train {arm} seed {seed}", self.train, arm, model, files.get(arm),
                            seed, lr)
            write_report(self.root)  # a partial report after every arm
        return self._stage("report", write_report, self.root)


def reproduce(preset: str, out: str | Path, *, quick: bool = False,
              overrides: list[str] = (), device: str = "auto", dtype: str = "auto") -> Path:
    """Run the preset's study in `out` (continuing a stopped one); returns report.md.

    `device` / `dtype` place the models the study samples with (evaluations, difficulty, the
    sweep's validation); training follows the recipes (GPU when visible, bf16 where supported).
    """
    config = load_preset(preset, quick=quick, overrides=list(overrides))
    return Study(config, out, device=device, dtype=dtype).run()
