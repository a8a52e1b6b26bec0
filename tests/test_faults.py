"""Fault injection: kill -9 at random points, crashes inside a save; nothing is lost, doubled,
or reported finished when it is not.

The commands run as separate processes (a kill cannot be simulated in-process) on the user
task of tests/fixtures, whose tiny cold start takes seconds. Kill times are drawn from a seeded
generator, so a failure reproduces.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TASK = str(Path(__file__).parent / "fixtures" / "addition_task.py") + ":AdditionTask"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    out = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC),
               GENGAP_CACHE=str(tmp_path_factory.mktemp("cache")))
    # Warm the cold start once, so kills land in the command under test, not in it.
    subprocess.run([sys.executable, "-m", "gengap.cli", "coldstart", "--task", TASK], env=out,
                   check=True, capture_output=True, timeout=600)
    return out


def cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "gengap.cli", *map(str, args)]


def kill_then_finish(args: list[str], env: dict[str, str], delays: list[float]) -> int:
    """Kill the command after each delay (if still running), then run it to the end."""
    kills = 0
    for delay in delays:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    return kills


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_killed_difficulty_eval_and_training_finish_with_nothing_lost_or_doubled(
        env, tmp_path: Path) -> None:
    rng = random.Random(7)
    difficulty = cmd("difficulty", "--model", "tiny", "--task", TASK, "--n", "96", "--k", "4",
                     "--chunk-size", "8", "--out", tmp_path / "d", "--no-progress")
    kills = kill_then_finish(difficulty, env, [rng.uniform(2, 6) for _ in range(3)])
    records = __import__("pyarrow.parquet", fromlist=["x"]).read_table(
        tmp_path / "d" / "difficulty.parquet").to_pylist()
    assert [r["index"] for r in records] == list(range(96))  # none lost, none twice

    evaluation = cmd("eval", "--model", "tiny", "--task", TASK, "--out", tmp_path / "e")
    kills += kill_then_finish(evaluation, env, [rng.uniform(2, 5) for _ in range(2)])
    rows = jsonl(tmp_path / "e" / "samples.jsonl")
    keys = [(r["split"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 80
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["results"]["test"]["n"] == 40

    subprocess.run(cmd("curate", "--difficulty", tmp_path / "d", "--variant", "all", "--out",
                       tmp_path / "sft.jsonl"), env=env, check=True, capture_output=True)
    train = cmd("train", "sft", "--config", "sft-tiny", "--model", "tiny", "--data",
                tmp_path / "sft.jsonl", "--out", tmp_path / "arm", "steps=30", "batch_size=8",
                "save_every=5", "eval_every=10", "eval_n=8", "grad_norm_every=0")
    kills += kill_then_finish(train, env, [rng.uniform(3, 8) for _ in range(3)])
    budget = json.loads((tmp_path / "arm" / "budget.json").read_text())
    assert budget["steps_done"] == 30 and (tmp_path / "arm" / "final" / "config.json").is_file()
    curve = jsonl(tmp_path / "arm" / "curve.jsonl")
    steps = [(r["step"], r["split"]) for r in curve]
    assert len(steps) == len(set(steps))  # no evaluation recorded twice
    assert {s for s, _ in steps} == {0, 10, 20, 30}
    assert kills >= 3  # the kills really interrupted something


@pytest.mark.slow
def test_killed_study_finishes_and_reports_every_arm_once(env, tmp_path: Path) -> None:
    import yaml

    preset = tmp_path / "mini.yaml"
    preset.write_text(yaml.safe_dump({
        "task": TASK, "seeds": [0, 1], "difficulty_n": 48, "k": 4, "arms": ["sft-all", "grpo"],
        "hard_ratios": [], "steps": 4, "batch_size": 8, "eval_every": 2, "eval_n": 8,
        "sft_lrs": [1e-3], "grpo_lrs": [1e-4], "sweep_val_n": 8,
        "grpo": {"num_generations": 4}}))
    study = cmd("reproduce", "--preset", preset, "--out", tmp_path / "study")
    rng = random.Random(11)
    kill_then_finish(study, env, [rng.uniform(3, 15) for _ in range(4)])
    root = tmp_path / "study"
    assert (root / "report.md").is_file()
    for arm in ("sft-all", "grpo"):
        for seed in (0, 1):  # seed s: start s, trained with seed s
            run = root / f"start-{seed}" / "runs" / arm / f"seed-{seed}"
            assert json.loads((run / "budget.json").read_text())["steps_done"] == 4
            curve = [(r["step"], r["split"]) for r in jsonl(run / "curve.jsonl")]
            assert len(curve) == len(set(curve)) and {s for s, _ in curve} == {0, 2, 4}
    leftovers = [p for p in root.rglob(".*") if ".tmp" in p.name]
    assert leftovers == []


def test_a_crash_inside_the_final_save_leaves_no_final_model(tmp_path: Path) -> None:
    """The final model appears only when complete; a rerun finishes the run."""
    from types import SimpleNamespace

    from gengap.train.common import FINAL_DIR, finished_result, save_final

    class Model:
        def save_pretrained(self, path):
            (Path(path) / "config.json").write_text("{}")
            raise OSError(28, "No space left on device")  # disk full mid-save

    trainer = SimpleNamespace(model=Model(), state=SimpleNamespace(log_history=[]))
    (tmp_path / "budget.json").write_text(json.dumps({"steps_done": 4}))
    with pytest.raises(OSError):
        save_final(trainer, SimpleNamespace(save_pretrained=lambda p: None), tmp_path)
    assert not (tmp_path / FINAL_DIR).exists() and finished_result(tmp_path) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{FINAL_DIR}")]
