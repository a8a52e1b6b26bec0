"""`gengap reproduce --preset tiny-ground --quick` end to end on a miniature cold start: the
report quotes the grounding references (Ref-L4 / LISA), never GeneralPoints', and results carry
mean IoU and accuracy at 0.5 / 0.75 / 0.9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gengap.cli import app


@pytest.mark.slow
def test_reproduce_quick_on_grounding(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    words = ["coldstart={steps_scale: 0.01, eval_n: 0}", "difficulty_n=8", "k=2",
             "arms=[sft-all,grpo]", "steps=1", "batch_size=4", "eval_every=1", "eval_n=4",
             "test_n=4", "sweep_val_n=4", "eval_splits=[test,test-ood-relation]",
             "grpo={num_generations: 2}"]
    result = CliRunner().invoke(app, ["reproduce", "--preset", "tiny-ground", "--quick",
                                      "--out", str(out), *words])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    report = (out / "report.md").read_text()
    assert "Ref-L4" in report and "LISA" in report
    assert "GP-L" not in report and "Chu et al." not in report
    assert "| grpo |" in report and "`test-ood-relation` (ood, relation-words)" in report
    results = next((out / "start-0" / "runs" / "init").rglob("results.json"))
    split = json.loads(results.read_text())["results"]["test"]
    assert {"iou", "acc@0.5", "acc@0.75", "acc@0.9"} <= set(split)
