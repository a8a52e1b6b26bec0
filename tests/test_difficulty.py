"""Difficulty estimation: buckets, resumption (incl. SIGKILL), sharding, merge, CLI.

The engine is replaced by `FakeSampler`, which honours the real sampler's interface and its
key contract: a prompt's completions depend only on (seed, key, j), never on the batch. This
module doubles as a worker script (`python tests/test_difficulty.py OUT [--shard i/n] ...`) so
the kill/resume and two-process tests drive a real separate process.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gengap.difficulty.estimate import (
    DifficultyConfig,
    ShardSpec,
    bucket_of,
    estimate_difficulty,
    format_summary,
    load_records,
    merge_shards,
)
from gengap.errors import InputError
from gengap.tasks.registry import get_task

TASK_OPTIONS = {"modality": "text", "prompt_style": "compact"}


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts (stands in for keyed sampling)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeSampler:
    """Deterministic stand-in for `gengap.rollout` samplers.

    Each sample has a hidden success probability (a third always right, a third never, the
    rest in between); rollout j is right iff unit(seed, key, j) < p. Right answers are the
    task's target, wrong ones a formula that misses 24.
    """

    def __init__(self, task: Any, split: str, data_seed: int, delay: float = 0.0,
                 fail_after_calls: int | None = None):
        self.task, self.split, self.data_seed = task, split, data_seed
        self.delay = delay
        self.fail_after_calls = fail_after_calls
        self.calls = 0
        self.prompts_seen = 0

    def generate(self, prompts, images, params, keys=None, progress=False):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.prompts_seen += len(prompts)
        get = params.get if isinstance(params, dict) else lambda name: getattr(params, name)
        k, seed = get("k"), get("seed")
        assert keys is not None and len(keys) == len(prompts)
        completions = []
        for key in keys:
            index = int(key.rsplit("/", 1)[1])
            sample = self.task.sample(self.split, index, self.data_seed)
            kind = _unit("kind", key)
            p = 1.0 if kind < 1 / 3 else 0.0 if kind < 2 / 3 else _unit("p", key)
            group = []
            for j in range(k):
                text = self.task.target(sample) if _unit(seed, key, j) < p else "1+1+1+1"
                group.append(SimpleNamespace(text=text, num_tokens=len(text), finished=True))
            completions.append(group)
        time.sleep(self.delay)
        return SimpleNamespace(completions=completions, seconds=self.delay, prompt_tokens=0,
                               generated_tokens=sum(c.num_tokens for g in completions for c in g))


def fake_factory(delay: float = 0.0, fail_after_calls: int | None = None, log: list | None = None):
    def factory(config: DifficultyConfig, task: Any):
        sampler = FakeSampler(task, config.split, config.data_seed, delay, fail_after_calls)
        if log is not None:
            log.append(sampler)
        return sampler, {"spec": config.model, "path": None, "weights": "fake"}

    return factory


def make_config(**overrides: Any) -> DifficultyConfig:
    base = DifficultyConfig(model="fake", task="generalpoints", split="train", n=40, k=4,
                            seed=3, task_options=dict(TASK_OPTIONS))
    return replace(base, **overrides)


def run(out: Path, config: DifficultyConfig | None = None, **kwargs: Any):
    kwargs.setdefault("sampler_factory", fake_factory())
    kwargs.setdefault("chunk_size", 8)
    kwargs.setdefault("progress", False)
    return estimate_difficulty(config or make_config(), out, **kwargs)


# ---------------------------------------------------------------------------------------------


def test_bucket_edges():
    assert bucket_of(8, 8) == "easy"
    assert bucket_of(0, 8) == "hard"
    assert [bucket_of(j, 8) for j in range(1, 8)] == ["medium"] * 7


def test_shard_spec_parsing_and_env(monkeypatch):
    assert ShardSpec.parse("1/3") == ShardSpec(1, 3)
    assert ShardSpec(1, 3).indices(10) == [1, 4, 7]
    for bad in ("3/3", "x", "1-2", "-1/2"):
        with pytest.raises(InputError):
            ShardSpec.parse(bad)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert ShardSpec.parse(None) == ShardSpec(1, 2)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ShardSpec.parse(None) == ShardSpec(0, 1)


def test_records_and_summary(tmp_path):
    progress = run(tmp_path)
    records = load_records(tmp_path)
    assert [r["index"] for r in records] == list(range(40))
    task = get_task("generalpoints", **TASK_OPTIONS)
    for r in records:
        assert r["k"] == 4 and len(r["rewards"]) == 4 and len(r["correct"]) == 4
        assert r["n_correct"] == sum(r["correct"])
        assert r["pass_rate"] == r["n_correct"] / 4
        assert r["bucket"] == bucket_of(r["n_correct"], 4)
        # The stored task row regenerates the very sample that was scored.
        sample = task.sample_from_row(json.loads(r["task_row"]))
        assert sample == task.sample("train", r["index"], 0)
        assert set(json.loads(r["categories"])) >= {"face_cards", "solutions"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == progress.summary
    counts = {b: sum(r["bucket"] == b for r in records) for b in ("easy", "medium", "hard")}
    assert summary["buckets"] == counts and all(counts.values())  # fake spreads all three
    assert sum(summary["pass_rate_histogram"].values()) == 40
    assert summary["sampling"]["temperature"] == 0.9 and summary["sampling"]["top_k"] == 50
    assert summary["sampling"]["max_new_tokens"] == task.max_new_tokens
    assert summary["speed"]["samples_per_second"] > 0
    assert "versions" in summary["provenance"]
    assert "easy" in format_summary(summary)


def test_generations_stored_on_request(tmp_path):
    run(tmp_path, make_config(n=6, store_generations=True))
    records = load_records(tmp_path)
    assert all(len(r["generations"]) == 4 and len(r["finished"]) == 4 for r in records)


def test_resume_after_crash_equals_clean_run(tmp_path):
    clean = tmp_path / "clean"
    run(clean)
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(crashed, sampler_factory=fake_factory(fail_after_calls=2))
    assert len(list((crashed / "parts").glob("part-*.parquet"))) == 2
    assert not (crashed / "difficulty.parquet").exists()
    log: list = []
    progress = run(crashed, sampler_factory=fake_factory(log=log))
    assert progress.already_done == 16 and progress.processed == 24
    assert log[0].prompts_seen == 24  # nothing sampled twice
    assert load_records(crashed) == load_records(clean)


def test_resume_with_other_chunking_still_matches(tmp_path):
    run(tmp_path / "a")
    with pytest.raises(RuntimeError):
        run(tmp_path / "b", sampler_factory=fake_factory(fail_after_calls=1), chunk_size=5)
    run(tmp_path / "b", chunk_size=16)
    assert load_records(tmp_path / "b") == load_records(tmp_path / "a")


def test_finished_run_is_not_resampled(tmp_path):
    run(tmp_path)
    log: list = []
    progress = run(tmp_path, sampler_factory=fake_factory(log=log))
    assert progress.processed == 0 and log == []  # the model is not even loaded


def test_changed_arguments_are_refused(tmp_path):
    run(tmp_path, make_config(n=10))
    with pytest.raises(InputError, match=r"k: 4 -> 8"):
        run(tmp_path, make_config(n=10, k=8))
    with pytest.raises(InputError, match="shard"):
        run(tmp_path, make_config(n=10), shard=ShardSpec(0, 2))


def test_changed_weights_are_refused(tmp_path):
    with pytest.raises(RuntimeError):
        run(tmp_path, sampler_factory=fake_factory(fail_after_calls=1))
    base = fake_factory()

    def retrained(config, task):
        sampler, _ = base(config, task)
        return sampler, {"spec": "fake", "path": None, "weights": "retrained"}

    with pytest.raises(InputError, match="weights changed"):
        run(tmp_path, sampler_factory=retrained)


def test_bad_split_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no split"):
        run(tmp_path, make_config(split="nope"))


def test_shards_merge_to_the_unsharded_result(tmp_path):
    run(tmp_path / "single")
    first = run(tmp_path / "sharded", shard=ShardSpec(0, 2))
    assert not first.merged and not (tmp_path / "sharded" / "difficulty.parquet").exists()
    assert merge_shards(tmp_path / "sharded") is None
    second = run(tmp_path / "sharded", shard=ShardSpec(1, 2))
    assert second.merged
    assert load_records(tmp_path / "sharded") == load_records(tmp_path / "single")
    assert second.summary["buckets"] == json.loads(
        (tmp_path / "single" / "summary.json").read_text())["buckets"]


def test_jsonl_format(tmp_path):
    run(tmp_path / "p")
    run(tmp_path / "j", make_config(format="jsonl"))
    assert (tmp_path / "j" / "difficulty.jsonl").is_file()
    assert load_records(tmp_path / "j") == load_records(tmp_path / "p")


# --- real processes ---------------------------------------------------------------------------


def _worker_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, __file__, str(out), *extra]


def test_sigkill_mid_run_then_resume_equals_clean_run(tmp_path):
    clean = tmp_path / "clean"
    run(clean, make_config(n=60))  # in-process: the same code, without a second start-up
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_worker_cmd(killed, "--n", "60", "--delay", "0.3"))
    parts = killed / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(list(parts.glob("part-*.parquet")))
    assert 2 <= done_before < 60 // 8
    assert not (killed / "difficulty.parquet").exists()
    subprocess.run(_worker_cmd(killed, "--n", "60"), check=True, timeout=120)
    assert load_records(killed) == load_records(clean)


def test_two_processes_shard_and_merge(tmp_path):
    single = tmp_path / "single"
    run(single, make_config(n=30))
    sharded = tmp_path / "sharded"
    procs = [subprocess.Popen(_worker_cmd(sharded, "--n", "30", "--shard", f"{i}/2"))
             for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert (sharded / "shard-0-of-2" / "done.json").is_file()
    assert load_records(sharded) == load_records(single)


def _main(argv: list[str]) -> None:
    """Worker: one estimate with the fake engine (used by the process tests above)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--shard", default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    estimate_difficulty(
        make_config(n=args.n), args.out, shard=ShardSpec.parse(args.shard), chunk_size=8,
        sampler_factory=fake_factory(delay=args.delay), progress=False,
    )


if __name__ == "__main__":
    _main(sys.argv[1:])


# --- CLI and report ---------------------------------------------------------------------------


@pytest.fixture()
def fake_engine(monkeypatch):
    """Route the CLI's model loading to the fake engine (no model, no hub)."""
    import gengap.difficulty.estimate as estimate

    factory = fake_factory()
    monkeypatch.setattr(estimate, "load_sampler",
                        lambda config, task, *args, **kwargs: factory(config, task))


def _cli(*args: str):
    from typer.testing import CliRunner

    from gengap.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_difficulty_resume_refusal_and_report(tmp_path, fake_engine):
    common = ["difficulty", "--model", "fake", "--task", "generalpoints", "--n", "24",
              "--k", "4", "-O", "prompt_style=compact", "--out", str(tmp_path), "--chunk-size",
              "8", "--no-progress", "--store-generations"]
    result = _cli(*common)
    assert result.exit_code == 0, result.output
    assert "medium" in result.output and (tmp_path / "difficulty.parquet").is_file()
    refused = _cli(*common[:-1], "--temperature", "0.5")
    assert refused.exit_code == 2
    assert "temperature: 0.9 -> 0.5" in refused.output
    report = _cli("difficulty-report", str(tmp_path))
    assert report.exit_code == 0, report.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## By face_cards" in text and "## By solutions" in text and "### hard" in text
    from PIL import Image

    for png in ("pass_rate_histogram.png", "categories.png"):
        with Image.open(tmp_path / "report" / png) as image:
            assert image.size[0] > 300
    curated = _cli("curate", "--difficulty", str(tmp_path), "--variant", "EM",
                   "--out", str(tmp_path / "em.jsonl"))
    assert curated.exit_code == 0, curated.output
    assert _cli("curate", "--difficulty", str(tmp_path), "--variant", "X",
                "--out", str(tmp_path / "x.jsonl")).exit_code == 2


def test_cli_takes_the_shard_from_the_launcher_rank(tmp_path, fake_engine, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = _cli("difficulty", "--model", "fake", "--task", "generalpoints", "--n", "10",
                  "--k", "2", "--out", str(tmp_path), "--no-progress")
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    parts = sorted((tmp_path / "shard-1-of-2" / "parts").glob("part-*.parquet"))
    assert [r["index"] for p in parts for r in pq.read_table(p).to_pylist()] == [1, 3, 5, 7, 9]
    assert not (tmp_path / "difficulty.parquet").exists()  # shard 0 has not run yet


def test_cli_bad_task_option_and_unfinished_report(tmp_path, fake_engine):
    bad = _cli("difficulty", "--model", "fake", "--task", "generalpoints", "--out",
               str(tmp_path), "--task-option", "nonsense")
    assert bad.exit_code == 2 and "key=value" in bad.output
    unknown = _cli("difficulty", "--model", "fake", "--task", "generalpoints", "--out",
                   str(tmp_path), "--task-option", "colour=1")
    assert unknown.exit_code == 2
    assert _cli("difficulty-report", str(tmp_path / "nothing")).exit_code == 2


def test_category_breakdown_bins_and_sorts():
    from gengap.difficulty.report import MAX_CATEGORY_ROWS, category_breakdown

    records = []
    for i in range(200):
        cls = f"class{i % 40}"
        rate = 0.0 if i % 40 < 3 else 1.0  # three whole classes are hard
        records.append({"pass_rate": rate, "bucket": "hard" if rate == 0 else "easy",
                        "categories": json.dumps({"label": cls, "solutions": i})})
    table = category_breakdown(records)
    hardest = [row["value"] for row in table["label"][:3]]
    assert sorted(hardest) == ["class0", "class1", "class2"]
    assert len(table["label"]) == 40 > MAX_CATEGORY_ROWS
    bins = table["solutions"]
    assert 4 <= len(bins) <= 6 and sum(row["n"] for row in bins) == 200


# --- the real sampling engine -----------------------------------------------------------------


def tiny_engine_factory(modality: str = "text", fail_after_calls: int | None = None):
    """The real HF engine on a small random model (no checkpoint needed)."""

    def factory(config: DifficultyConfig, task: Any):
        from gengap.models.tiny import build_tiny
        from gengap.rollout import make_sampler

        model, processor = build_tiny(modality, seed=0, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2)
        sampler = make_sampler(model, processor, backend="hf")
        if fail_after_calls is not None:
            real, calls = sampler.generate, []

            def generate(*args, **kwargs):
                if len(calls) >= fail_after_calls:
                    raise RuntimeError("simulated crash")
                calls.append(1)
                return real(*args, **kwargs)

            sampler.generate = generate
        return sampler, {"spec": "random-tiny", "path": None, "weights": "seed0"}

    return factory


@pytest.mark.slow
def test_real_engine_resume_and_shards_match(tmp_path):
    config = make_config(n=24, k=4, store_generations=True, max_new_tokens=12)
    run(tmp_path / "clean", config, sampler_factory=tiny_engine_factory())
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed", config, sampler_factory=tiny_engine_factory(fail_after_calls=1))
    run(tmp_path / "resumed", config, sampler_factory=tiny_engine_factory())
    for i in range(2):
        run(tmp_path / "sharded", config, shard=ShardSpec(i, 2),
            sampler_factory=tiny_engine_factory())
    clean = load_records(tmp_path / "clean")
    assert len({g for r in clean for g in r["generations"]}) > 10  # really sampled
    assert load_records(tmp_path / "resumed") == clean
    assert load_records(tmp_path / "sharded") == clean


@pytest.mark.slow
def test_cli_sigkill_resume_with_a_real_checkpoint(tmp_path):
    """End to end: `gengap difficulty` on a saved checkpoint, SIGKILLed, resumed, compared."""
    from gengap.models.tiny import build_tiny

    model, tokenizer = build_tiny("text", seed=0, hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=2,
                                  num_key_value_heads=2)
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    def cli(out: Path) -> list[str]:
        return [sys.executable, "-m", "gengap.cli", "difficulty", "--model", str(checkpoint),
                "--task", "generalpoints", "-O", "prompt_style=compact", "--n", "32", "--k", "4",
                "--max-new-tokens", "16", "--chunk-size", "4", "--store-generations",
                "--no-progress", "--out", str(out)]

    subprocess.run(cli(tmp_path / "clean"), check=True, timeout=300, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "parts").glob("part-*"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (killed / "difficulty.parquet").exists()
    subprocess.run(cli(killed), check=True, timeout=300, capture_output=True)
    runs = [json.loads(line) for line in (killed / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 1 and 0 < runs[0]["already_done"] < 32  # killed runs log nothing
    assert load_records(killed) == load_records(tmp_path / "clean")
