"""PPO vs GRPO at equal study FLOPs from the GeneralPoints text cold start (V = 1).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/rl_ppo_vs_grpo.py [SEEDS...] [--out DIR]

GRPO trains 20 steps (8 prompts x 8 generations, lr 1e-4); PPO (the study's algorithm, a
64-attempt buffer, lr 1e-4, value head lr 1e-3, temperature 0.9) trains until it has spent
GRPO's FLOPs (6N(D_init + D) + 2N*D_buffer; it stops at the first update past them). Both are
tested greedily on 200 ID and 200 rule-OOD hands; Init is the cold start itself.
"""
import json
import sys
import time
from pathlib import Path

from gengap.coldstart import coldstart
from gengap.config import load_recipe
from gengap.evaluate import EvalConfig, evaluate
from gengap.tasks.registry import build_task
from gengap.train import GRPORecipe, PPORecipe, train_grpo, train_ppo

START = str(coldstart(build_task("generalpoints", {"modality": "text",
                                                    "prompt_style": "compact"}, tiny=True)))
TASK = ["task=generalpoints", "task_options.modality=text", "task_options.prompt_style=compact"]
args = sys.argv[1:]
root = Path(args[args.index("--out") + 1] if "--out" in args else "out/bench-ppo-vs-grpo")
seeds = [int(a) for a in args if a.isdigit()] or [0, 1, 2]
rows = []
for seed in seeds:
    t = time.time()
    g = train_grpo(load_recipe(GRPORecipe, None, [
        "batch_size=8", "num_generations=8", "n_prompts=500", "learning_rate=1e-4",
        "eval_every=0", "save_every=100", "logging_steps=5", f"seed={seed}", *TASK],
        model=START, out=str(root / f"grpo-{seed}"), steps=20))
    target = g.budget["gflops"]
    p = train_ppo(load_recipe(PPORecipe, None, [
        "rollout_steps=64", "mini_batch_size=32", "learning_rate=1e-4",
        "value_learning_rate=1e-3", "temperature=0.9", "verify_iters=1", "n_prompts=500",
        "eval_every=0", "save_every=1000", f"max_gflops={target}", f"seed={seed}", *TASK],
        model=START, out=str(root / f"ppo-{seed}"), steps=200))
    for arm, res in (("init", None), ("grpo", g), ("ppo", p)):
        if arm == "init" and seed != 0:
            continue
        model = START if res is None else str(res.final_model)
        r = evaluate(EvalConfig(model=model, task="generalpoints",
                                task_options={"modality": "text", "prompt_style": "compact"},
                                splits=None, n=200, verify_iters=1, temperature=0.0, seed=0,
                                clip_n=True), root / f"eval-{arm}-{seed}", progress=False)
        row = {"arm": arm, "seed": seed, "gflops": res.budget["gflops"] if res else None,
               "steps": res.budget["steps_done"] if res else 0,
               **{s: round(v["success"], 4) for s, v in r["results"].items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("seed", seed, "seconds", round(time.time() - t), flush=True)
(root / "summary.json").write_text(json.dumps(rows, indent=1))
