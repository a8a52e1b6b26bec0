"""What a verdict-sized test set costs: greedy evaluation of the tiny model vs the difficulty
pass's sampled rollouts, in one run on one model.

The study evaluates every arm's best and last checkpoint on `test_n` episodes per split (greedy,
one attempt), and sizes `test_n` so that a paired difference over all starts has a 95% interval
of about +-2 points. This script measures, on the cached cold-started model (or --model):

- greedy episodes per second and per CPU second (`gengap.rollout.run_episodes`, the path
  `gengap eval` takes), per split;
- the baseline in the same run: the difficulty pass's k=8 sampled rollouts per prompt, per
  second and per CPU second;
- the test-set size the +-2-point target needs for a given share of discordant episode pairs
  (arms that disagree on a share q of episodes: n = (1.96 / 0.02)^2 q per start count), and
  what it costs per checkpoint at the measured rate.

CPU seconds are this process's own (robust to other processes on a shared machine); wall
seconds are printed beside them. Run with OMP_NUM_THREADS=1 as the studies do.

Usage: python benchmarks/greedy_eval.py [--episodes 512] [--starts 3] [--model DIR]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=512, help="episodes per split")
    parser.add_argument("--starts", type=int, default=3, help="starts a difference pools")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()

    from _cached import cached_text_model

    from gengap.cost import Clock
    from gengap.rollout import SamplingParams, make_sampler, run_episodes

    task, model_dir, loaded = cached_text_model(args.model)
    sampler = make_sampler(loaded.model, loaded.processor)
    print(f"model: {model_dir}")

    def rate(split: str, k: int, temperature: float) -> tuple[float, float, float]:
        samples = [task.sample(split, i, 0) for i in range(args.episodes)]
        params = SamplingParams(k=k, temperature=temperature, top_k=50 if k > 1 else 0,
                                max_new_tokens=task.max_new_tokens, seed=0)
        clock = Clock()
        with clock:
            episodes = []
            for lo in range(0, len(samples), 64):  # gengap eval's chunk size
                episodes += run_episodes(sampler, task, samples[lo:lo + 64], params, 1)
        n = len(episodes)
        return n / clock.wall, n / clock.cpu, sum(e.success for e in episodes) / n

    run_episodes(sampler, task, [task.sample("test-id", 10**6, 0)],
                 SamplingParams(k=1, max_new_tokens=task.max_new_tokens), 1)  # warm-up
    greedy = {}
    for split in ("test-id", "test-ood-rule"):
        wall, cpu, success = rate(split, 1, 0.0)
        greedy[split] = cpu
        print(f"greedy {split:<14} {wall:8.1f} episodes/s  {cpu:8.1f} per CPU s  "
              f"(success {success:.1%})")
    wall, cpu, _ = rate("train", 8, 0.9)
    print(f"baseline: difficulty rollouts (k=8, T=0.9) {wall:8.1f} /s  {cpu:8.1f} per CPU s")
    per_cpu = min(greedy.values())
    print(f"greedy episode vs sampled rollout, per CPU s: {per_cpu / cpu:.2f}x")
    print()
    print(f"test_n per start for a 95% interval of +-2 points on a paired difference over "
          f"{args.starts} starts (episodes only), and its cost per checkpoint (2 splits):")
    for q in (0.1, 0.2, 0.3, 0.5):
        n = math.ceil((1.96 / 0.02) ** 2 * q / args.starts)
        print(f"  discordant share {q:.1f}: test_n {n:5d}   {2 * n / per_cpu:6.1f} CPU s")


if __name__ == "__main__":
    main()
