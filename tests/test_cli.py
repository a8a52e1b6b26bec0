"""The CLI's exact forms, its output rows, and its errors (exit code 2, nothing half-written)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from gengap.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_data_writes_the_documented_rows(tmp_path: Path) -> None:
    out = tmp_path / "gp.jsonl"
    result = run("data", "--task", "generalpoints", "--split", "test-ood-rule", "--n", "5",
                 "--seed", "3", "--out", out)
    assert result.exit_code == 0, result.output
    rows = read(out)
    assert len(rows) == 5
    assert set(rows[0]) == {"id", "task", "split", "index", "cards", "suits", "face_rule",
                            "target", "modality", "prompt", "answer", "sft_target"}
    assert [r["index"] for r in rows] == list(range(5))
    assert rows[0]["face_rule"] == "as11-13" and rows[0]["split"] == "test-ood-rule"
    assert rows[0]["prompt"][0]["role"] == "user"
    # Same arguments, same file.
    again = tmp_path / "again.jsonl"
    run("data", "--task", "generalpoints", "--split", "test-ood-rule", "--n", "5", "--seed", "3",
        "--out", again)
    assert again.read_text() == out.read_text()


def test_data_image_rows_point_to_pngs(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "vis.jsonl"
    result = run("data", "--task", "generalpoints", "--split", "test-ood-visual", "--n", "2",
                 "-O", "modality=image", "-O", "prompt_style=compact", "--out", out)
    assert result.exit_code == 0, result.output
    rows = read(out)
    assert len(rows[0]["images"]) == 1
    image = Image.open(out.parent / rows[0]["images"][0])
    assert image.size == (64, 64)
    assert set(rows[0]["suits"]) <= {"H", "D"}


def test_score_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "gp.jsonl"
    run("data", "--task", "generalpoints", "--split", "train", "--n", "4", "--out", data)
    rows = read(data)
    completions = [rows[0]["answer"], "1+2", rows[2]["answer"] + ")", "hello"]
    scored_in = tmp_path / "in.jsonl"
    scored_in.write_text("".join(json.dumps({**r, "completion": c}) + "\n"
                                 for r, c in zip(rows, completions)))
    out = tmp_path / "out.jsonl"
    result = run("score", "--task", "generalpoints", "--input", scored_in, "--output", out)
    assert result.exit_code == 0, result.output
    scored = read(out)
    assert [r["correct"] for r in scored] == [True, False, False, False]
    assert scored[0]["reward"] == 5.0 and scored[3]["reward"] == -3.0
    assert "you didn't use numbers" in scored[1]["feedback"]
    assert all(r["cards"] == s["cards"] for r, s in zip(rows, scored))  # input kept


def test_score_bad_row_names_its_line_and_writes_nothing(tmp_path: Path) -> None:
    good = {"cards": ["4", "3", "2", "K"], "face_rule": "as10", "target": 24,
            "completion": "4*3+2+10"}
    bad = {"cards": ["4", "3", "2", "Z"], "face_rule": "as10", "target": 24, "completion": "1"}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    result = run("score", "--task", "generalpoints", "--input", src, "--output", out)
    assert result.exit_code == 2
    assert f"{src}:2" in result.output and "cards" in result.output
    assert "Traceback" not in result.output
    assert out.read_text() == "previous results\n"  # nothing already written is lost
    assert list(tmp_path.glob(".out.jsonl.*")) == []  # no temporary file left behind

    result = run("score", "--task", "generalpoints", "--input", src, "--output", out,
                 "--skip-bad")
    assert result.exit_code == 0
    assert len(read(out)) == 2 and "skipped 1" in result.output


def test_score_errors(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"cards": ["4", "3", "2", "K"], "face_rule": "as10", "target": 24}\n')
    result = run("score", "--task", "generalpoints", "--input", src, "--output",
                 tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "completion" in result.output
    src.write_text("{not json\n")
    result = run("score", "--task", "generalpoints", "--input", src, "--output",
                 tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    result = run("score", "--task", "chess", "--input", src, "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "unknown task" in result.output
    result = run("score", "--task", "generalpoints", "--input", tmp_path / "missing.jsonl",
                 "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "no such file" in result.output


def test_image_rows_need_suits(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"cards": ["4", "3", "2", "K"], "face_rule": "as10", "target": 24,
                               "modality": "image", "completion": "4,3,2,K|4*3+2+10"}) + "\n")
    result = run("score", "--task", "generalpoints", "--input", src, "--output",
                 tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "suits" in result.output


def test_data_errors(tmp_path: Path) -> None:
    result = run("data", "--task", "generalpoints", "--split", "nope", "--n", "2", "--out",
                 tmp_path / "x.jsonl")
    assert result.exit_code == 2 and "has no split 'nope'" in result.output
    result = run("data", "--task", "generalpoints", "--split", "train", "--n", "2", "--out",
                 tmp_path / "x.csv")
    assert result.exit_code == 2 and ".jsonl" in result.output
    result = run("data", "--task", "generalpoints", "-O", "modality=audio", "--split", "train",
                 "--n", "2", "--out", tmp_path / "x.jsonl")
    assert result.exit_code == 2 and "modality" in result.output and "text, image" in result.output
    result = run("data", "--task", "generalpoints", "-O", "colour=red", "--split", "train",
                 "--n", "2", "--out", tmp_path / "x.jsonl")
    assert result.exit_code == 2 and "unknown key 'colour'" in result.output
    assert "prompt_style" in result.output  # the valid options are listed


def test_tasks_lists_generalpoints() -> None:
    result = run("tasks")
    assert result.exit_code == 0
    assert "generalpoints" in result.output and "test-ood-rule" in result.output
