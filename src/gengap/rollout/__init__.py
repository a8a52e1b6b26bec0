"""Sampling: k completions per prompt (HF engine or vLLM) and multi-turn episodes.

`make_sampler(model, processor, backend="hf" | "vllm")` returns a `Sampler`; `run_episodes`
drives multi-turn attempts with a task's verifier feedback.
"""

from gengap.rollout.episodes import EpisodeResult, group_by_sample, run_episodes
from gengap.rollout.factory import make_sampler
from gengap.rollout.hf import HFSampler
from gengap.rollout.sampling import BatchResult, Completion, Sampler, SamplingParams

__all__ = [
    "BatchResult",
    "Completion",
    "EpisodeResult",
    "HFSampler",
    "Sampler",
    "SamplingParams",
    "group_by_sample",
    "make_sampler",
    "run_episodes",
]
