"""Self-check of the vLLM backend on a tiny model; run inside the vLLM environment.

    .venv-vllm/bin/python -m gengap.rollout.vllm_check

Builds a random tiny Qwen2 (seed 0), samples GeneralPoints prompts through `VLLMSampler` and
prints one JSON line of facts that tests/test_rollout.py asserts on: completion shapes,
determinism per seed, subset invariance with keys, more prompts than one step's token budget
holds, and greedy agreement with the HF engine -- for that model and for a tiny random Llama
(`gengap.models.families`: Llama 3's chat format and llama3 rotary scaling), built with
`tensor_parallel_size` and `gpu_memory_utilization` passed through as commands pass them.
Each further family costs a vLLM start-up (about a minute on 2 cores), so the check stays at
one non-Qwen family. vLLM's CPU attention has kernels for some head sizes only (16 fails with
"Unsupported CPU attention configuration"): the family model uses head_dim 32.
It prints facts rather than asserting so the test in the main environment shows what differed.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile

FAMILIES_CHECKED = ("llama",)


def family_greedy(name: str, prompts: list, params, texts) -> dict:
    """Greedy completions of one family's tiny model: vLLM vs the HF engine (or the error)."""
    from gengap.models.families import build_family
    from gengap.rollout.hf import HFSampler
    from gengap.rollout.vllm_backend import VLLMSampler

    try:
        model, tokenizer = build_family(name, seed=0, head_dim=32)
        hf = texts(HFSampler(model, tokenizer).generate(prompts, None, params))
        with tempfile.TemporaryDirectory(prefix=f"gengap-vllm-{name}-") as path:
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            sampler = VLLMSampler(path, tokenizer, max_model_len=512, tensor_parallel_size=1,
                                  gpu_memory_utilization=0.5)
            vllm = texts(sampler.generate(prompts, None, params))
            del sampler
    except Exception as exc:  # reported, not raised: the test shows which family failed
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"equal": vllm == hf, "vllm": vllm[:2], "hf": hf[:2]}


def main() -> int:
    """Run the checks; print a JSON object on the last line of stdout."""
    from gengap.models.tiny import build_tiny
    from gengap.rollout.hf import HFSampler
    from gengap.rollout.sampling import SamplingParams
    from gengap.rollout.vllm_backend import VLLMSampler
    from gengap.tasks.registry import get_task

    task = get_task("generalpoints", modality="text", prompt_style="compact")
    samples = [task.sample("train", i, 0) for i in range(6)]
    prompts = [task.messages(s) for s in samples]
    keys = [s.id for s in samples]
    model, tokenizer = build_tiny("text", seed=0, initializer_range=0.3)
    with tempfile.TemporaryDirectory(prefix="gengap-vllm-check-") as path:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        # A step budget far below the requests' prompt tokens: the scheduler must spread
        # prompts over steps (with chunked prefill, seeded requests crashed vLLM's CPU worker).
        sampler = VLLMSampler(path, tokenizer, max_model_len=256, max_num_batched_tokens=256)
        sampled = SamplingParams(k=4, temperature=1.0, top_k=20, max_new_tokens=12, seed=3)
        first = sampler.generate(prompts, None, sampled, keys=keys)
        again = sampler.generate(prompts, None, sampled, keys=keys)
        subset = sampler.generate([prompts[4], prompts[1]], None, sampled, keys=[keys[4], keys[1]])
        other_seed = sampler.generate(
            prompts, None, SamplingParams(**{**sampled.__dict__, "seed": 4}), keys=keys
        )
        many = [task.messages(task.sample("train", i, 0)) for i in range(48)]
        crowded = sampler.generate(many, None, SamplingParams(**{**sampled.__dict__, "k": 8}))
        greedy = SamplingParams(k=2, max_new_tokens=12)
        vllm_greedy = sampler.generate(prompts, None, greedy)
        del sampler  # one vLLM engine at a time (the family check below starts its own)
        gc.collect()
    hf_greedy = HFSampler(model, tokenizer).generate(prompts, None, greedy)

    def texts(result):
        return [[c.text for c in samples] for samples in result.completions]

    families = {}
    for name in FAMILIES_CHECKED:
        families[name] = family_greedy(name, prompts, greedy, texts)

    facts = {
        "shape": [len(c) for c in first.completions],
        "num_tokens_ok": all(
            1 <= c.num_tokens <= sampled.max_new_tokens for s in first.completions for c in s
        ),
        "generated_tokens": first.generated_tokens,
        "deterministic": texts(first) == texts(again),
        "subset_invariant": texts(subset) == [texts(first)[4], texts(first)[1]],
        "seed_changes_samples": texts(first) != texts(other_seed),
        "crowded_shape_ok": [len(c) for c in crowded.completions] == [8] * len(many),
        "greedy_matches_hf_engine": texts(vllm_greedy) == texts(hf_greedy),
        "greedy_vllm": texts(vllm_greedy)[:2],
        "greedy_hf": texts(hf_greedy)[:2],
        "seconds": first.seconds,
        "families": families,
    }
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
