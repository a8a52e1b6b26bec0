"""The bad-input table: every command, every kind of bad input -> a message and exit code 2.

Each row is (what is wrong, the command, words the message must contain). A row passes only if
the command exits with code 2, prints no traceback, names the problem (the words) and says how
to fix it (a `hint:` line, or a usage message from the option parser for malformed options).
Nothing here trains or samples a model: errors are caught before any work is done.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gengap.cli import app

ADD = str(Path(__file__).parent / "fixtures" / "addition_task.py") + ":AdditionTask"
GP = ("--task", "generalpoints")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad and good input files, and a finished difficulty run (from a scripted sampler)."""
    from types import SimpleNamespace

    from gengap.difficulty.estimate import DifficultyConfig, estimate_difficulty
    from gengap.tasks import build_task

    root = tmp_path_factory.mktemp("inputs")
    f = {"root": root}
    (root / "notjson.jsonl").write_text("{nope\n")
    (root / "latin1.jsonl").write_bytes('{"a": "caf\xe9"}\n'.encode("latin-1"))
    (root / "nocompletion.jsonl").write_text(json.dumps(
        {"cards": ["4", "3", "2", "K"], "face_rule": "as10", "target": 24}) + "\n")
    (root / "badcards.jsonl").write_text(json.dumps(
        {"cards": ["4", "3", "2", "Z"], "face_rule": "as10", "target": 24,
         "completion": "1"}) + "\n")
    (root / "negative.jsonl").write_text(json.dumps(
        {"cards": ["4", "3", "2", "K"], "face_rule": "as10", "target": -24,
         "completion": "1"}) + "\n")
    (root / "bad.yaml").write_text("steps: [1, 2\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "adir").mkdir()
    (root / "dir.jsonl").mkdir()
    (root / "afile").write_text("x")
    (root / "noconfig").mkdir()
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1,
                vocab_size=64).save_pretrained(root / "corrupt")
    (root / "corrupt" / "model.safetensors").write_bytes(b"\x10\x00" + b"garbage" * 8)
    (root / "plain.jsonl").write_text(json.dumps(
        {"prompt": [{"role": "user", "content": "1+1="}],
         "completion": [{"role": "assistant", "content": "2"}]}) + "\n")

    task = build_task("generalpoints", {"prompt_style": "compact"})

    def factory(config, task_):
        def generate(prompts, images, params, keys=None, progress=False):
            out = []
            for key in keys:
                sample = task_.sample("train", int(key.rsplit("/", 1)[1]), 0)
                right = int(key.rsplit("/", 1)[1]) % 3  # 0, 1 or 2 of 2 rollouts right
                out.append([SimpleNamespace(text=task_.target(sample) if j < right else "1",
                                            num_tokens=1, finished=True)
                            for j in range(params.k)])
            return SimpleNamespace(completions=out, prompt_tokens=0, generated_tokens=0)
        return SimpleNamespace(generate=generate), {"spec": "scripted", "weights": "x"}

    config = DifficultyConfig(model="scripted", task="generalpoints", n=12, k=2,
                              task_options=task.options)
    estimate_difficulty(config, root / "difficulty", sampler_factory=factory, progress=False)
    f["difficulty"] = root / "difficulty"
    return f


def rows() -> list[tuple[str, tuple, tuple[str, ...]]]:
    """(id, command words with {placeholders}, words the message must contain)."""
    return [
        # tasks and task options
        ("unknown-task", ("tasks", "--task", "go"), ("unknown task",)),
        ("unknown-option", ("tasks", *GP, "-O", "colour=red"), ("unknown key 'colour'",)),
        ("option-not-int", ("tasks", *GP, "-O", "target=abc"), ("'target' must be",)),
        ("option-range", ("tasks", *GP, "-O", "target=0"), ("between 1 and",)),
        ("option-huge", ("tasks", *GP, "-O", "target=1" + "0" * 400), ("too large",)),
        ("image-size-zero", ("tasks", *GP, "-O", "image_size=0"), ("image_size",)),
        ("option-choice", ("tasks", *GP, "-O", "modality=audio"), ("text, image",)),
        ("option-not-kv", ("tasks", *GP, "-O", "modality"), ("key=value",)),
        ("user-task-import", ("tasks", "--task", "no_such_module:Task"), ("cannot import",)),
        ("user-task-file", ("tasks", "--task", "{root}/missing.py:Task"), ("no such file",)),
        ("user-task-attr", ("tasks", "--task", ADD.replace("AdditionTask", "Nope")),
         ("has no attribute",)),
        ("user-task-options", ("tasks", "--task", ADD, "-O", "digits=3"),
         ("digits < ood_digits",)),
        # data
        ("data-split", ("data", *GP, "--split", "dev", "--out", "{root}/x.jsonl"),
         ("has no split 'dev'",)),
        ("data-visual-text", ("data", *GP, "--split", "test-ood-visual", "--out",
                              "{root}/x.jsonl"), ("image modality",)),
        ("data-suffix", ("data", *GP, "--split", "train", "--out", "{root}/x.csv"),
         (".jsonl",)),
        ("data-out-dir", ("data", *GP, "--split", "train", "--n", "2", "--out",
                          "{root}/dir.jsonl"), ("is a directory",)),
        ("data-unwritable", ("data", *GP, "--split", "train", "--n", "2", "--out",
                             "/proc/gengap/x.jsonl"), ("/proc/gengap",)),
        ("data-n-zero", ("data", *GP, "--split", "train", "--n", "0", "--out",
                         "{root}/x.jsonl"), (">= 1",)),
        ("data-too-many", ("data", "--task", ADD, "--split", "test", "--n", "41", "--out",
                           "{root}/x.jsonl"), ("holds 40 samples",)),
        # score
        ("score-missing", ("score", *GP, "--input", "{root}/none.jsonl", "--output",
                           "{root}/o.jsonl"), ("no such file",)),
        ("score-not-json", ("score", *GP, "--input", "{root}/notjson.jsonl", "--output",
                            "{root}/o.jsonl"), ("not valid JSON", "notjson.jsonl:1")),
        ("score-not-utf8", ("score", *GP, "--input", "{root}/latin1.jsonl", "--output",
                            "{root}/o.jsonl"), ("not UTF-8",)),
        ("score-no-completion", ("score", *GP, "--input", "{root}/nocompletion.jsonl",
                                 "--output", "{root}/o.jsonl"), ("completion",)),
        ("score-bad-cards", ("score", *GP, "--input", "{root}/badcards.jsonl", "--output",
                             "{root}/o.jsonl"), ("cards", "badcards.jsonl:1")),
        ("score-negative-target", ("score", *GP, "--input", "{root}/negative.jsonl",
                                   "--output", "{root}/o.jsonl"), ("target",)),
        ("score-same-file", ("score", *GP, "--input", "{root}/badcards.jsonl", "--output",
                             "{root}/badcards.jsonl"), ("must differ",)),
        # eval
        ("eval-model-typo", ("eval", "--model", "tinyy", *GP, "--out", "{root}/e1"),
         ("did you mean 'tiny'",)),
        ("eval-model-dir", ("eval", "--model", "{root}/noconfig", *GP, "--out", "{root}/e2"),
         ("config.json",)),
        ("eval-model-corrupt", ("eval", "--model", "{root}/corrupt", *GP, "--out",
                                "{root}/e2c"), ("could not load model", "re-saved")),
        ("eval-no-splits", ("eval", "--model", "tiny", *GP, "--splits", ",", "--out",
                            "{root}/e3"), ("no splits",)),
        ("eval-bad-split", ("eval", "--model", "tiny", *GP, "--splits", "dev", "--out",
                            "{root}/e4"), ("has no split 'dev'",)),
        ("eval-n-zero", ("eval", "--model", "tiny", *GP, "--n", "0", "--out", "{root}/e5"),
         (">= 1",)),
        ("eval-out-file", ("eval", "--model", "tiny", *GP, "--n", "2", "--out",
                           "{root}/afile"), ("not a directory",)),
        ("eval-backend", ("eval", "--model", "tiny", *GP, "--backend", "onnx", "--out",
                          "{root}/e6"), ("backend",)),
        ("eval-device", ("eval", "--model", "tiny", *GP, "--device", "tpu", "--out",
                         "{root}/e7"), ("device",)),
        ("eval-negative-temperature", ("eval", "--model", "tiny", *GP, "--temperature", "-1",
                                       "--out", "{root}/e8"), ()),
        # difficulty, curate, report
        ("difficulty-shard", ("difficulty", "--model", "tiny", *GP, "--shard", "3/2", "--out",
                              "{root}/d1"), ("out of range",)),
        ("difficulty-format", ("difficulty", "--model", "tiny", *GP, "--format", "csv",
                               "--out", "{root}/d2"), ("format",)),
        ("difficulty-split", ("difficulty", "--model", "tiny", *GP, "--split", "dev",
                              "--out", "{root}/d3"), ("has no split 'dev'",)),
        ("difficulty-top-p", ("difficulty", "--model", "tiny", *GP, "--top-p", "0", "--out",
                              "{root}/d4"), ("top_p",)),
        ("difficulty-changed", ("difficulty", "--model", "scripted", *GP, "-O",
                                "prompt_style=compact", "--n", "12", "--k", "3", "--out",
                                "{difficulty}"), ("different settings", "k: 2 -> 3")),
        ("curate-not-a-run", ("curate", "--difficulty", "{root}/adir", "--variant", "EM",
                              "--out", "{root}/c.jsonl"), ("not a difficulty run",)),
        ("curate-variant", ("curate", "--difficulty", "{difficulty}", "--variant", "XL",
                            "--out", "{root}/c.jsonl"), ("unknown variant",)),
        ("curate-suffix", ("curate", "--difficulty", "{difficulty}", "--variant", "EM",
                           "--out", "{root}/c.txt"), (".jsonl or .parquet",)),
        ("curate-band", ("curate", "--difficulty", "{difficulty}", "--variant", "EM",
                         "--min", "2", "--out", "{root}/c.jsonl"), ("[0, 1]",)),
        ("curate-hard-share", ("curate", "--difficulty", "{difficulty}", "--variant",
                               "EM+hard:0.9", "--out", "{root}/c.jsonl"), ("hard samples",)),
        ("curate-size", ("curate", "--difficulty", "{difficulty}", "--variant", "EM",
                         "--size", "999", "--out", "{root}/c.jsonl"), ("--size 999",)),
        ("report-not-run", ("difficulty-report", "{root}/adir"), ("not a difficulty run",)),
        ("report-not-study", ("report", "{root}/adir"), ("not a study directory",)),
        # training
        ("sft-no-data-file", ("train", "sft", "--model", "tiny", "--data", "{root}/no.jsonl",
                              "--out", "{root}/t1", *GP), ("no such file",)),
        ("sft-lr-inf", ("train", "sft", "--model", "tiny", "--data", "{root}/plain.jsonl",
                        "--out", "{root}/t2", *GP, "learning_rate=inf"), ("finite",)),
        ("sft-lr-nan", ("train", "sft", "--model", "tiny", "--data", "{root}/plain.jsonl",
                        "--out", "{root}/t3", *GP, "--lr", "nan"), ("finite",)),
        ("sft-steps-zero", ("train", "sft", "--model", "tiny", "--data", "{root}/plain.jsonl",
                            "--out", "{root}/t4", *GP, "steps=0"), (">= 1",)),
        ("sft-unknown-key", ("train", "sft", "--model", "tiny", "--data",
                             "{root}/plain.jsonl", "--out", "{root}/t5", *GP, "stepz=3"),
         ("unknown key 'stepz'",)),
        ("sft-recipe-missing", ("train", "sft", "--config", "{root}/none.yaml"),
         ("no such recipe file",)),
        ("sft-recipe-yaml", ("train", "sft", "--config", "{root}/bad.yaml"),
         ("not valid YAML",)),
        ("sft-recipe-list", ("train", "sft", "--config", "{root}/list.yaml"), ("mapping",)),
        ("sft-required", ("train", "sft", "--model", "tiny"), ("missing required",)),
        ("sft-no-task", ("train", "sft", "--model", "tiny", "--data", "{root}/plain.jsonl",
                         "--out", "{root}/t6"), ("names no task",)),
        ("sft-batch-split", ("train", "sft", "--model", "tiny", "--data",
                             "{root}/plain.jsonl", "--out", "{root}/t7", *GP,
                             "batch_size=3", "gradient_accumulation_steps=2"),
         ("divisible",)),
        ("grpo-generations", ("train", "grpo", "--model", "tiny", *GP, "--out", "{root}/g1",
                              "num_generations=1"), (">= 2",)),
        ("grpo-reward", ("train", "grpo", "--model", "tiny", *GP, "--out", "{root}/g2",
                         "--reward", "dense"), ("shaped, binary",)),
        ("grpo-filter", ("train", "grpo", "--model", "tiny", *GP, "--out", "{root}/g3",
                         "--filter-by-difficulty", "{root}/nodir"), ("no difficulty run",)),
        # studies and the cold start
        ("preset-unknown", ("reproduce", "--preset", "huge", "--out", "{root}/s1"),
         ("unknown preset",)),
        ("preset-key", ("reproduce", "--out", "{root}/s2", "stepz=3"),
         ("unknown key 'stepz'",)),
        ("preset-arm", ("reproduce", "--out", "{root}/s3", "arms=[ppo9]"), ("unknown arm",)),
        ("preset-ratio", ("reproduce", "--out", "{root}/s4", "hard_ratios=[1.5]"),
         ("(0, 1)",)),
        ("preset-seeds", ("reproduce", "--out", "{root}/s5", "seeds=[]"), ("empty",)),
        ("coldstart-setting", ("coldstart", *GP, "learning_rate=1"),
         ("unknown cold-start setting",)),
        ("coldstart-phase", ("coldstart", *GP, "phases=[{{name: x}}]"), ("phase",)),
    ]


ROWS = rows()


@pytest.mark.parametrize(("what", "words", "expect"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_a_clear_error(files, what, words, expect) -> None:
    args = [w.format(**{k: str(v) for k, v in files.items()}) for w in words]
    result = CliRunner().invoke(app, args)
    output = result.output
    assert result.exit_code == 2, f"{what}: exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    for word in expect:
        assert word in output, f"{what}: {word!r} not in\n{output}"
    assert "hint:" in output or "Usage:" in output, f"{what}: no fix offered\n{output}"


def test_the_table_is_broad() -> None:
    """At least 40 kinds of bad input, across every command."""
    assert len(ROWS) >= 40
    commands = {r[1][0] if r[1][0] != "train" else " ".join(r[1][:2]) for r in ROWS}
    assert commands >= {"tasks", "data", "score", "eval", "difficulty", "curate",
                        "difficulty-report", "report", "train sft", "train grpo",
                        "reproduce", "coldstart"}


def test_a_damaged_part_file_names_itself_and_the_fix(files, tmp_path: Path) -> None:
    """A corrupt part of a resumed run: a message naming the part and how to redo it."""
    import shutil

    run = tmp_path / "difficulty"
    shutil.copytree(files["difficulty"], run)
    part = sorted((run / "parts").glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:40])
    (run / "difficulty.parquet").unlink()
    (run / "summary.json").unlink()
    (run / "done.json").unlink()
    result = CliRunner().invoke(app, [
        "difficulty", "--model", "scripted", *GP, "-O", "prompt_style=compact", "--n", "12",
        "--k", "2", "--out", str(run)])
    assert result.exit_code == 2 and part.name in result.output, result.output
    assert "delete it and rerun" in result.output
