"""`gengap eval`: metrics, output files, resumption, errors (with a scripted sampler)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import gengap.evaluate as ev
import gengap.rollout as rollout
from gengap.errors import InputError
from gengap.rollout import BatchResult, Completion
from gengap.tasks import get_task

TASK_OPTIONS = {"modality": "text", "prompt_style": "compact"}


class ScriptedSampler:
    """Right at once on hands whose first card is even, wrong then right otherwise."""

    def __init__(self, crash_after: int | None = None):
        self.task = get_task("generalpoints", **TASK_OPTIONS)
        self.calls = 0
        self.crash_after = crash_after

    def generate(self, prompts, images, params, progress=False, keys=None):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise RuntimeError("simulated crash")
        out = []
        for messages in prompts:
            first = messages[0]["content"]
            _, rule, hand = first.split(" ")
            sample = self.task.sample_from_row(
                {"cards": hand.split(","), "face_rule": rule, "target": 24})
            right = sample.answer
            even = hand.split(",")[0] in {"2", "4", "6", "8", "10"}
            text = right if (even or len(messages) > 1) else "1+1"
            out.append([Completion(text, len(text), True)] * params.k)
        return BatchResult(out, 0.0, 0, 0)


@pytest.fixture
def scripted(monkeypatch):
    def install(sampler):
        monkeypatch.setattr(rollout, "make_sampler", lambda *a, **k: sampler)
        return sampler
    return install


def config(**kw):
    base = dict(model="scripted", task="generalpoints", splits=["test-id", "test-ood-rule"],
                n=40, task_options=TASK_OPTIONS)
    return ev.EvalConfig(**{**base, **kw})


def loaded():
    return SimpleNamespace(model=None, processor=None, path="scripted")


def expected_first_attempt(split: str, n: int) -> float:
    task = get_task("generalpoints", **TASK_OPTIONS)
    even = [task.sample(split, i, 0).fields["cards"][0] in {"2", "4", "6", "8", "10"}
            for i in range(n)]
    return sum(even) / n


def test_metrics_and_files(tmp_path: Path, scripted) -> None:
    scripted(ScriptedSampler())
    payload = ev.evaluate(config(verify_iters=2), tmp_path, loaded=loaded(), progress=False)
    r = payload["results"]["test-id"]
    first = expected_first_attempt("test-id", 40)
    assert r["success"] == 1.0 and r["n"] == 40
    assert r["first_attempt_success"] == pytest.approx(first)
    assert r["success_within"] == [pytest.approx(first), 1.0]
    assert r["accuracy_at_attempt"] == [pytest.approx(first), 1.0]
    assert r["mean_attempts"] == pytest.approx(2 - first)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["results"] == payload["results"]
    for key in ("config", "seed", "versions", "git_commit", "date"):
        assert key in on_disk
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 80
    retried = next(r for r in rows if len(r["attempts"]) == 2)
    assert retried["verdicts"][0]["correct"] is False and retried["success"] is True


def test_single_attempt_counts_only_first_answers(tmp_path: Path, scripted) -> None:
    scripted(ScriptedSampler())
    payload = ev.evaluate(config(verify_iters=1), tmp_path, loaded=loaded(), progress=False)
    r = payload["results"]["test-ood-rule"]
    assert r["success"] == pytest.approx(expected_first_attempt("test-ood-rule", 40))
    assert 0 < r["success_stderr"] < 0.1


def test_resume_after_a_crash_gives_the_same_results(tmp_path: Path, scripted, monkeypatch):
    monkeypatch.setattr(ev, "CHUNK", 16)
    clean = tmp_path / "clean"
    clean_sampler = scripted(ScriptedSampler())
    full = ev.evaluate(config(verify_iters=2), clean, loaded=loaded(), progress=False)

    crashed = tmp_path / "crashed"
    scripted(ScriptedSampler(crash_after=3))
    with pytest.raises(RuntimeError):
        ev.evaluate(config(verify_iters=2), crashed, loaded=loaded(), progress=False)
    parts = sorted((crashed / "parts").glob("part-*.jsonl"))
    partial = [line for p in parts for line in p.read_text().splitlines()]
    assert 0 < len(partial) < 80 and not (crashed / "samples.jsonl").exists()
    # A kill mid-write leaves only a temporary beside the parts, never a torn part.
    (crashed / "parts" / ".part-00009.jsonl.x.tmp").write_text('{"id": "torn li')
    sampler = scripted(ScriptedSampler())
    resumed = ev.evaluate(config(verify_iters=2), crashed, loaded=loaded(), progress=False)
    assert resumed["results"] == full["results"]
    rows = [json.loads(x) for x in (crashed / "samples.jsonl").read_text().splitlines()]
    keys = [(r["split"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 80  # none lost, none counted twice
    assert (crashed / "samples.jsonl").read_text() == (clean / "samples.jsonl").read_text()
    assert not list((crashed / "parts").glob(".*.tmp"))
    assert sampler.calls < clean_sampler.calls  # finished chunks were not sampled again


def test_changed_settings_in_the_same_directory_are_refused(tmp_path: Path, scripted) -> None:
    scripted(ScriptedSampler())
    ev.evaluate(config(n=4), tmp_path, loaded=loaded(), progress=False)
    with pytest.raises(InputError, match="different settings"):
        ev.evaluate(config(n=5), tmp_path, loaded=loaded(), progress=False)


def test_bad_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="only for the image modality"):
        ev.evaluate(config(splits=["test-ood-visual"]), tmp_path, loaded=loaded())
    with pytest.raises(InputError, match="has no split 'dev'"):
        ev.evaluate(config(splits=["dev"]), tmp_path, loaded=loaded())
    with pytest.raises(InputError, match="no splits to evaluate"):
        ev.evaluate(config(splits=[]), tmp_path, loaded=loaded())
    assert not (tmp_path / "eval.json").exists()  # nothing claimed for a refused run


def test_a_failed_start_does_not_block_the_corrected_rerun(tmp_path: Path, scripted) -> None:
    """A run that failed before its first result (e.g. a bad model) leaves no lock-in."""
    with pytest.raises(InputError):
        ev.evaluate(config(n=4, model="no/such/model/dir"), tmp_path, progress=False)
    scripted(ScriptedSampler())
    payload = ev.evaluate(config(n=4), tmp_path, loaded=loaded(), progress=False)
    assert payload["results"]["test-id"]["n"] == 4


def test_table_shows_first_attempt_recognition() -> None:
    """The printed recognition is the first attempt's (the study's V = 1 measure)."""
    from gengap.evaluate import format_table

    row = {"success": 0.5, "success_stderr": 0.03, "first_attempt_success": 0.5, "n": 234,
           "recognition_all_attempts": 0.38, "recognition": 1.0}
    table = format_table({"test-id": row})
    assert "100.0%" in table and "38.0%" not in table
    text_only = {k: v for k, v in row.items() if not k.startswith("recognition")}
    assert "recognition" not in format_table({"test-id": text_only})  # no metric, no column
