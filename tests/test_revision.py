"""The revision phase's rows and measurement, driven by a scripted sampler (no model)."""

from __future__ import annotations

import random

import pytest

from gengap.errors import InputError
from gengap.revision import RevisionPhase, measure_revision, revision_phase, revision_rows
from gengap.rollout.sampling import BatchResult, Completion
from gengap.tasks.registry import build_task

WRONG = "1+1"


@pytest.fixture(scope="module")
def task():
    return build_task("generalpoints", {"modality": "text", "prompt_style": "compact"})


def other_solution(task, sample) -> str | None:
    """A correct answer that is not the oracle's, if the hand has one."""
    rng = random.Random(0)
    for _ in range(50):
        answer = task.target(sample, "any", rng)
        if answer != sample.answer:
            return answer
    return None


class ScriptedSampler:
    """First attempts fail; a retry answers `revisions[question]` if listed, else fails again."""

    def __init__(self, revisions: dict[str, str], repeat: bool = False):
        self.revisions, self.repeat = revisions, repeat

    def generate(self, messages, images, params, keys=None):
        out = []
        for conversation in messages:
            question = conversation[0]["content"]
            retry = len(conversation) > 1
            if retry and question in self.revisions:
                text = self.revisions[question]
            else:
                text = WRONG if (not retry or self.repeat) else "2+2"
            out.append([Completion(text, len(text), True)] * params.k)
        return BatchResult(out, 0.0, 0, sum(len(c[0].text) for c in out))


def script(monkeypatch, task, n: int) -> dict[str, str]:
    """Scripted revisions for every other warmup sample with a second solution."""
    revisions = {}
    for i in range(0, n, 2):
        sample = task.sample("warmup", i, 0)
        alt = other_solution(task, sample)
        if alt is not None:
            revisions[task.messages(sample)[0]["content"]] = alt
    monkeypatch.setattr("gengap.rollout.make_sampler",
                        lambda *a, **k: ScriptedSampler(revisions))
    return revisions


@pytest.mark.parametrize("targets", ["oracle", "own"])
def test_rows_after_a_failure_train_on_the_chosen_target(monkeypatch, task, targets) -> None:
    revisions = script(monkeypatch, task, 16)
    assert revisions, "no warmup hand with two solutions in the first 16"
    phase = RevisionPhase(steps=2, batch_size=8, plain_share=0.25, chunk=16, attempts=2,
                          targets=targets)
    prompts, completions, images, stats = revision_rows(task, None, None, phase,
                                                        split="warmup", first_index=0, seed=0)
    assert len(prompts) == len(completions) == 16 and not any(images)
    assert stats["plain_rows"] == 4 and stats["revision_rows"] == 12
    oracle = {task.messages(task.sample("warmup", i, 0))[0]["content"]:
              task.sample("warmup", i, 0).answer for i in range(16)}
    own = 0
    for conversation, completion in zip(prompts, completions, strict=True):
        question = conversation[0]["content"]
        if len(conversation) == 1:  # a first-turn row: always the oracle answer
            assert completion == oracle[question]
            continue
        assert "You failed this trial" in conversation[-1]["content"]
        expected = revisions.get(question) if targets == "own" else None
        assert completion == (expected or oracle[question])
        own += expected is not None
    assert stats["own_target_rows"] == own
    assert (own > 0) == (targets == "own")


def test_measure_revision_counts_repeats_and_gain(monkeypatch, task) -> None:
    revisions = script(monkeypatch, task, 8)
    from gengap.rollout import make_sampler

    sampler = make_sampler(None, None)
    monkeypatch.setattr("gengap.rollout.make_sampler", lambda *a, **k: sampler)
    # A warmup-split measurement: every first attempt fails; listed hands revise on retry 1.
    out = measure_revision(None, None, task, ["warmup"], n=8, verify_iters=3)["warmup"]
    assert out["first_attempt"] == 0 and out["within_3"] == pytest.approx(len(revisions) / 8)
    assert out["gain"] == out["within_3"] and out["repeats"] == 0
    sampler.repeat, sampler.revisions = True, {}
    out = measure_revision(None, None, task, ["warmup"], n=8, verify_iters=3)["warmup"]
    assert out["within_3"] == 0 and out["repeats"] == 1 and out["mean_attempts"] == 3


def test_bad_revision_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="targets"):
        revision_phase({"targets": "best"})
    with pytest.raises(InputError, match="eval_temperatures"):
        revision_phase({"eval_temperatures": [-1]})
    with pytest.raises(InputError, match="bad revision setting"):
        revision_phase({"stepz": 3})


class RouteSampler:
    """Navigation: wrong at point 1 on the first try, right on its retry and everywhere else."""

    def __init__(self, task, routes):
        self.answers = {}
        for route in routes:
            for point in task.points(route):
                self.answers[point_key(task.messages(point))] = (
                    task.target(point), point.fields["point"])

    def generate(self, messages, images, params, keys=None):
        out = []
        for conversation in messages:
            answer, point = self.answers[point_key(conversation)]
            text = "-|stop" if point == 1 and len(conversation) == 1 else answer
            out.append([Completion(text, len(text), True)] * params.k)
        return BatchResult(out, 0.0, 0, 0)


def point_key(conversation) -> str:
    from gengap.tasks.base import message_text

    return message_text(conversation[:1])


@pytest.mark.parametrize("targets", ["oracle", "own"])
def test_route_episodes_give_rows_at_the_failed_point_only(monkeypatch, targets) -> None:
    """Navigation: the row after a wrong action retries that point with its own oracle; the
    points after a right action are not revision rows."""
    task = build_task("navigation", {"prompt_style": "compact"})
    routes = [task.sample("test-id", i, 0) for i in range(8)]
    monkeypatch.setattr("gengap.rollout.make_sampler",
                        lambda *a, **k: RouteSampler(task, routes))
    phase = RevisionPhase(steps=1, batch_size=8, plain_share=0.5, chunk=8, attempts=1,
                          targets=targets)
    prompts, completions, _, stats = revision_rows(task, None, None, phase, split="test-id",
                                                   first_index=0, seed=0)
    point_one = {point_key(task.messages(task.points(r)[1])): task.target(task.points(r)[1])
                 for r in routes}
    revision = [(p, c) for p, c in zip(prompts, completions, strict=True) if len(p) > 1]
    assert len(revision) == stats["revision_rows"] == 4
    for conversation, completion in revision:
        assert len(conversation) == 3  # the point's prompt, the wrong action, the feedback
        assert conversation[1]["content"] == "-|stop"
        assert completion == point_one[point_key(conversation)]
    assert stats["own_target_rows"] == (4 if targets == "own" else 0)
    starts = {point_key(task.messages(task.points(r)[0])): task.target(task.points(r)[0])
              for r in routes}
    plain = [(p, c) for p, c in zip(prompts, completions, strict=True) if len(p) == 1]
    assert len(plain) == 4 and all(c == starts[point_key(p)] for p, c in plain)


class ResampleSampler:
    """First attempts and retries fail; k > 1 fresh samples of a listed question hold its
    failed answer, a wrong one and (twice) a right alternative."""

    def __init__(self, alternatives: dict[str, str]):
        self.alternatives = alternatives
        self.resampled = 0

    def generate(self, messages, images, params, keys=None):
        out = []
        for conversation in messages:
            question = conversation[0]["content"]
            if params.k > 1:
                assert len(conversation) == 1  # fresh: without the failed history
                self.resampled += 1
                alt = self.alternatives.get(question, "3+3")
                texts = [WRONG, "3+3", alt, alt][:params.k]
            else:
                texts = [WRONG if len(conversation) == 1 else "2+2"]
            out.append([Completion(t, len(t), True) for t in texts])
        return BatchResult(out, 0.0, 0, 0)


def test_sampled_targets_are_the_models_own_right_alternative(monkeypatch, task) -> None:
    alternatives = {}
    for i in range(0, 16, 2):
        sample = task.sample("warmup", i, 0)
        if (alt := other_solution(task, sample)) is not None:
            alternatives[task.messages(sample)[0]["content"]] = alt
    sampler = ResampleSampler(alternatives)
    monkeypatch.setattr("gengap.rollout.make_sampler", lambda *a, **k: sampler)
    phase = RevisionPhase(steps=3, batch_size=8, plain_share=0.0, chunk=16, attempts=2,
                          targets="sampled", sample_k=4)
    prompts, completions, _, stats = revision_rows(task, None, None, phase, split="warmup",
                                                   first_index=0, seed=0)
    assert sampler.resampled > 0
    oracle = {task.messages(task.sample("warmup", i, 0))[0]["content"]:
              task.sample("warmup", i, 0).answer for i in range(16)}
    for conversation, completion in zip(prompts, completions, strict=True):
        question = conversation[0]["content"]
        assert completion == alternatives.get(question, oracle[question])
    assert stats["own_target_rows"] == sum(c[0]["content"] in alternatives for c in prompts) > 0
    with pytest.raises(InputError, match="sample_k"):
        revision_phase({"targets": "sampled", "sample_k": 0})


def test_measure_revision_counts_route_points_as_questions(monkeypatch) -> None:
    task = build_task("navigation", {"prompt_style": "compact"})
    routes = [task.sample("test-id", i, 0) for i in range(4)]
    monkeypatch.setattr("gengap.rollout.make_sampler",
                        lambda *a, **k: RouteSampler(task, routes))
    out = measure_revision(None, None, task, ["test-id"], n=4)["test-id"]
    points = sum(len(task.points(r)) for r in routes)
    assert out["questions"] == points and out["V"] == 2
    assert out["first_attempt"] == pytest.approx((points - 4) / points)  # point 1 misses once
    assert out["within_2"] == 1 and out["episode_success"] == 1
    assert out["gain"] == pytest.approx(4 / points) and out["repeats"] == 0
