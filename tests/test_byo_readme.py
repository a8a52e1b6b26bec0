"""The README's "DC-SFT on your own data" commands run as written, on a JSONL file and on an
image folder the test writes, ending in a trained SFT arm and its eval.

The commands are read from README.md (the first ``bash`` block of the section) and run in a
directory holding the data under the names the README uses; the only words added are sizes:
``-O coldstart_scale=...`` on the commands that build the task and ``steps=4 ...`` on
``train sft`` (the README says so).
"""

from __future__ import annotations

import json
import random
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from gengap.cli import app

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## DC-SFT on your own data"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start:end if end > 0 else None]


def readme_commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", readme_section(), re.S)
    assert block, "the section has no bash block"
    commands = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert all(c[0] == "gengap" for c in commands)
    return [c[1:] for c in commands]


def test_the_readme_section_is_docs_byo() -> None:
    assert readme_section().strip() == (ROOT / "docs" / "byo.md").read_text().strip()
    words = [c[:2] for c in readme_commands()]
    assert [w[0] for w in words] == ["difficulty", "curate", "train", "eval"]


def write_jsonl(path: Path) -> None:
    """One-digit sums (train, test) and two-digit ones (an OOD split 'big')."""
    rng = random.Random(0)
    rows = []
    for i in range(96):
        split = "train" if i < 64 else "test" if i < 80 else "big"
        a, b = rng.randrange(10 if split == "big" else 0, 100 if split == "big" else 10), \
            rng.randrange(10)
        rows.append({"question": f"{a}+{b}=", "answer": str(a + b), "split": split})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_image_folder(root: Path) -> None:
    """Three classes of coloured squares on random backgrounds."""
    rng = random.Random(0)
    for name, colour in {"red": (220, 30, 30), "green": (30, 200, 30),
                         "blue": (30, 30, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(16):
            image = Image.new("RGB", (32, 32), tuple(rng.randrange(256) for _ in range(3)))
            x, y = rng.randrange(2, 12), rng.randrange(2, 12)
            ImageDraw.Draw(image).rectangle([x, y, x + 16, y + 16], fill=colour)
            image.save(root / name / f"{i:02d}.png")


def run_walkthrough(tmp_path: Path, monkeypatch, data: str, scale: float) -> dict:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    outputs = []
    for words in readme_commands():
        words = [w.replace("path=my.jsonl", f"path={data}") for w in words]
        if "--task" in words:
            words += ["-O", f"coldstart_scale={scale}"]
        if words[:2] == ["train", "sft"]:
            words += ["steps=4", "save_every=4", "batch_size=8", "eval_n=8",
                      "grad_norm_every=0"]
        result = CliRunner().invoke(app, words)
        assert result.exit_code == 0, (words, result.output)
        outputs.append(result.output)
    assert (tmp_path / "my-arm" / "final" / "config.json").is_file()
    summary = json.loads((tmp_path / "my-difficulty" / "summary.json").read_text())
    assert summary["split"] == "train"
    rows = [json.loads(line) for line in (tmp_path / "my-sft.jsonl").read_text().splitlines()]
    assert rows and {r["bucket"] for r in rows} <= {"easy", "medium"}
    results = json.loads((tmp_path / "my-eval" / "results.json").read_text())
    return {"summary": summary, "results": results, "outputs": outputs}


@pytest.mark.slow
def test_readme_commands_on_a_jsonl_file(tmp_path: Path, monkeypatch) -> None:
    write_jsonl(tmp_path / "numbers.jsonl")
    out = run_walkthrough(tmp_path, monkeypatch, "numbers.jsonl", 0.2)
    # warmup holds out a quarter of the 64 train rows; difficulty rates the other 48
    assert out["summary"]["n"] == 48
    assert set(out["results"]["results"]) == {"test", "big"}
    assert out["results"]["results"]["test"]["n"] == 16
    assert out["results"]["splits"]["big"]["axis"] == "big"


@pytest.mark.slow
def test_readme_commands_on_an_image_folder(tmp_path: Path, monkeypatch) -> None:
    write_image_folder(tmp_path / "squares")
    out = run_walkthrough(tmp_path, monkeypatch, "squares", 0.15)
    assert set(out["results"]["results"]) == {"test"}
    test = out["results"]["results"]["test"]
    assert 0 < test["n"] < 48 and 0 <= test["success"] <= 1
