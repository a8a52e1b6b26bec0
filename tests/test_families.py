"""The sampling engine on every model family: exact, or it steps aside to `generate`.

For each family (tiny random models built from configs, `gengap.models.families`):
greedy completions equal transformers' own `model.generate`, one prompt at a time, token for
token; sampled completions equal `generate` driven by the same per-key draws (so the engine's
logits at every step are generate's, and the distribution is transformers' warpers'); the
engine's choice per family is the documented one. Runs on the CPU, and on CUDA when a GPU is
visible.
"""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from gengap.errors import InputError
from gengap.models.families import FAMILIES, build_family
from gengap.rollout import HFSampler, SamplingParams
from gengap.rollout.draw import KeyedSampling, sample_tokens, sampling_probs
from gengap.rollout.support import engine_support

# The engine serves every family but Mllama (cross-attention to the image at every step).
EXPECTED = {name: "engine" for name in FAMILIES} | {"mllama": "generate"}
NO_GPU = "no CUDA GPU on this machine: the GPU path runs where one is visible"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason=NO_GPU))]
# Prompts of very different lengths (left padding matters; the long ones exceed the sliding
# windows of the windowed families, so the window matters too).
TEXTS = ["24 as10 K,2", "hi", "24 as10 K,2,5,10 and a much longer tail past the window", "7"]


def prompts_for(name: str) -> tuple[list, list | None]:
    if FAMILIES[name].modality == "text":
        return [[{"role": "user", "content": t}] for t in TEXTS], None
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}]
                for t in TEXTS]
    colors = ("red", "blue", "white", "green")
    return messages, [[Image.new("RGB", (40 + 8 * i, 40), c)] for i, c in enumerate(colors)]


def texts(result) -> list[list[str]]:
    return [[c.text for c in samples] for samples in result.completions]


def reference_greedy(model, processor, messages, images, max_new_tokens: int) -> str:
    """transformers' own greedy `generate`, one prompt at a time (no padding)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if images:
        enc = processor(text=[text], images=[images], return_tensors="pt",
                        add_special_tokens=False)
    else:
        enc = tokenizer([text], return_tensors="pt", add_special_tokens=False)
    enc = enc.to(model.device)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def built() -> dict:
    return {}


def family(built: dict, name: str, device: str = "cpu"):
    if (name, device) not in built:
        model, processor = build_family(name, seed=0)
        built[(name, device)] = (model.to(device), processor)
    return built[(name, device)]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_engine_choice_per_family(name: str, built: dict) -> None:
    model, processor = family(built, name)
    support = engine_support(model)
    assert ("engine" if support.engine else "generate") == EXPECTED[name], support.reason
    assert HFSampler(model, processor).strategy == EXPECTED[name]
    if not support.engine:
        with pytest.raises(InputError, match="does not serve"):
            HFSampler(model, processor, strategy="engine")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_greedy_equals_generate_token_for_token(name: str, device: str, built: dict) -> None:
    model, processor = family(built, name, device)
    messages, images = prompts_for(name)
    result = HFSampler(model, processor).generate(
        messages, images, SamplingParams(k=2, max_new_tokens=12))
    for i, samples in enumerate(result.completions):
        expected = reference_greedy(model, processor, messages[i], images and images[i], 12)
        assert [c.text for c in samples] == [expected, expected], (name, i)
    assert len({s[0].text for s in result.completions}) > 1  # not a degenerate model


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_sampled_draws_equal_generate_with_the_same_streams(
    name: str, device: str, built: dict
) -> None:
    """Same per-key uniforms through the engine and through `model.generate`: the same
    tokens, so the engine's per-step logits are generate's; subsets keep their samples."""
    model, processor = family(built, name, device)
    messages, images = prompts_for(name)
    keys = [f"p{i}" for i in range(len(messages))]
    params = SamplingParams(k=3, temperature=1.0, top_k=20, top_p=0.95, max_new_tokens=10,
                            seed=1)
    auto = HFSampler(model, processor).generate(messages, images, params, keys=keys)
    by_generate = HFSampler(model, processor, strategy="generate").generate(
        messages, images, params, keys=keys)
    assert texts(auto) == texts(by_generate)
    assert len({c for s in texts(auto) for c in s}) > len(messages)  # samples vary
    subset = HFSampler(model, processor, max_batch_rows=3).generate(
        [messages[2], messages[0]], images and [images[2], images[0]], params,
        keys=[keys[2], keys[0]])
    assert texts(subset) == [texts(auto)[2], texts(auto)[0]]


def test_sampling_distribution_is_transformers_warpers() -> None:
    """The distribution every draw inverts: temperature, then top-k, then top-p, exactly as
    transformers' warpers define it; inverse-CDF draws follow it."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    for t, k, p in [(1.0, 0, 1.0), (0.7, 10, 1.0), (1.3, 0, 0.8), (0.9, 20, 0.9)]:
        params = SamplingParams(temperature=t, top_k=k, top_p=p)
        scores = TemperatureLogitsWarper(t)(None, logits.clone())
        if k:
            scores = TopKLogitsWarper(k)(None, scores)
        if p < 1:
            scores = TopPLogitsWarper(p)(None, scores)
        expected = scores.softmax(-1)
        probs, candidates = sampling_probs(logits, params)
        ours = torch.zeros_like(expected)
        ours.scatter_(1, candidates, probs) if candidates is not None else ours.copy_(probs)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    # Draws: 20k uniforms on one row land on each token about as often as its probability.
    params = SamplingParams(temperature=0.8, top_k=8)
    row = logits[:1].repeat(20000, 1)
    drawn = sample_tokens(row, params, torch.rand(20000))
    frequency = torch.bincount(drawn, minlength=50).float() / 20000
    probs, candidates = sampling_probs(logits[:1], params)
    expected = torch.zeros(50).scatter_(0, candidates[0], probs[0])
    assert (frequency - expected).abs().max() < 0.02
    assert set(drawn.tolist()) <= set(candidates[0].tolist())


def test_keyed_sampling_hands_generate_the_drawn_token() -> None:
    scores = torch.randn(3, 7)
    uniforms = torch.rand(3, 4)
    params = SamplingParams(temperature=1.0)
    out = KeyedSampling(uniforms, params, prompt_width=5)(torch.zeros(3, 7, dtype=torch.long),
                                                         scores)
    assert out.argmax(-1).tolist() == sample_tokens(scores, params, uniforms[:, 2]).tolist()
    assert torch.isinf(out).sum() == 3 * 6


def test_engine_steps_aside_when_a_layer_bypasses_it(built: dict, caplog) -> None:
    """A decoder layer that does not come through the shared-prefix attention (here: one
    layer pinned to sdpa) would make the engine's tokens wrong: it notices on the first step,
    says so in one line and samples with generate instead (still exact)."""
    import copy

    model, processor = build_family("llama", seed=0)
    attention = model.model.layers[1].self_attn
    attention.config = copy.copy(attention.config)
    attention.config._attn_implementation = "sdpa"
    messages, _ = prompts_for("llama")
    sampler = HFSampler(model, processor)
    assert sampler.strategy == "engine"
    with caplog.at_level(logging.WARNING, logger="gengap"):
        result = sampler.generate(messages, None, SamplingParams(k=2, max_new_tokens=8))
    assert sampler.strategy == "generate"
    assert any("cannot serve" in r.getMessage() for r in caplog.records)
    for i, samples in enumerate(result.completions):
        assert samples[0].text == reference_greedy(model, processor, messages[i], None, 8)


def test_unverified_family_samples_with_generate_after_a_notice(caplog) -> None:
    """A family the engine is not verified on (GPT-2 here) is sampled with generate, with a
    one-line notice, not a traceback; strategy='engine' is refused with the reason."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from gengap.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        initializer_range=0.3)).eval()
    with caplog.at_level(logging.WARNING, logger="gengap"):
        sampler = HFSampler(model, tokenizer)
    assert sampler.strategy == "generate"
    notices = [r.getMessage() for r in caplog.records if "model.generate" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0] and "GPT2LMHeadModel" in notices[0]
    messages = [[{"role": "user", "content": t}] for t in TEXTS]
    result = sampler.generate(messages, None, SamplingParams(max_new_tokens=8))
    for i, samples in enumerate(result.completions):
        assert samples[0].text == reference_greedy(model, tokenizer, messages[i], None, 8)
    with pytest.raises(InputError, match="not a decoder the engine is verified on"):
        HFSampler(model, tokenizer, strategy="engine")


def test_lora_wrapped_model_through_the_engine(built: dict) -> None:
    """Training evaluates the in-memory PEFT model: the engine serves it exactly too."""
    from gengap.models.loading import apply_lora

    model, processor = build_family("qwen3", seed=0)
    wrapped = apply_lora(model, {"r": 4, "init_lora_weights": False})
    messages, _ = prompts_for("qwen3")
    sampler = HFSampler(wrapped, processor)
    assert sampler.strategy == "engine"
    result = sampler.generate(messages, None, SamplingParams(max_new_tokens=10))
    for i, samples in enumerate(result.completions):
        assert samples[0].text == reference_greedy(wrapped, processor, messages[i], None, 10)


def test_checkpoint_sampling_defaults_do_not_leak_into_generate(built: dict) -> None:
    """A checkpoint's generation_config (repetition penalty, sampling defaults) is not gengap's
    sampling: both strategies decode plain greedy whatever it says."""
    model, processor = build_family("phi3", seed=0)
    messages, _ = prompts_for("phi3")
    params = SamplingParams(max_new_tokens=10)
    plain = texts(HFSampler(model, processor, strategy="generate").generate(messages, None,
                                                                            params))
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.do_sample = True
    model.generation_config.temperature = 2.0
    assert texts(HFSampler(model, processor, strategy="generate").generate(
        messages, None, params)) == plain
    assert texts(HFSampler(model, processor).generate(messages, None, params)) == plain
    assert model.generation_config.repetition_penalty == 5.0  # restored after sampling
