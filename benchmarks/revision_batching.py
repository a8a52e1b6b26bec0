"""What the revision phase's SFT steps cost with one padded batch per step (the baseline,
measured in the same run) and with the step split into length-balanced micro-batches
(`RevisionPhase.micro_batches`: transformers' `BatchRebalanceSampler` + gradient
accumulation; the same rows and the same per-token loss per step).

Rows are the phase's own (GeneralPoints text, the cached cold start or --model): the model's
failed attempts and the verifier's feedback -> the oracle answer, half of them first turns.
Their lengths vary widely (a failed attempt may be long garbage and its feedback lists every
violation), so a batch padded to its longest row trains mostly padding.

Prints per setting: seconds and CPU seconds per step, padded tokens per step, and the ratio
to the baseline. Run alone on the machine (two busy PyTorch processes stall each other).

Usage: python benchmarks/revision_batching.py [--steps 8] [--batch-size 64] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="SFT steps timed per setting")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--micro", type=int, nargs="+", default=[1, 4, 8],
                        help="micro-batches per step (1 = the baseline)")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()

    from _cached import cached_text_model

    from gengap.coldstart import Phase, _train_phase, rows_dataset, warmup_split
    from gengap.cost import Clock
    from gengap.models import load_model
    from gengap.revision import RevisionPhase, revision_rows

    task, model_dir, loaded = cached_text_model(args.model)
    phase = RevisionPhase(steps=args.steps, batch_size=args.batch_size, plain_share=0.5)
    prompts, completions, images, _ = revision_rows(
        task, loaded.model, loaded.processor, phase, split=warmup_split(task).name,
        first_index=10**6, seed=0)
    dataset = rows_dataset(loaded.processor, prompts, completions, images)
    lengths = [len(ids) for ids in dataset["input_ids"]]
    print(f"model: {model_dir}\nrows: {len(lengths)}, tokens mean {statistics.fmean(lengths):.0f}"
          f", median {statistics.median(lengths):.0f}, max {max(lengths)}")
    padded_baseline = sum(max(lengths[i:i + args.batch_size])
                          for i in range(0, len(lengths), args.batch_size)) * args.batch_size
    print(f"real tokens per step {sum(lengths) / args.steps:,.0f}; one padded batch per step "
          f"(in dataset order, ~ random) {padded_baseline / args.steps:,.0f}")

    baseline = None
    for micro in args.micro:
        model = load_model(str(model_dir), task=task, device="cpu").model
        train = Phase("bench", args.steps, args.batch_size, 1e-4)
        with tempfile.TemporaryDirectory() as scratch, Clock() as clock:
            _train_phase(model, loaded.processor, dataset, train, 0, Path(scratch),
                         micro_batches=micro)
        per_step = clock.wall / args.steps, clock.cpu / args.steps
        baseline = baseline or per_step
        label = "baseline (one batch)" if micro == 1 else f"{micro} micro-batches"
        print(f"{label:<22} {per_step[0]:7.2f} s/step  {per_step[1]:7.2f} CPU s/step  "
              f"speed-up {baseline[0] / per_step[0]:5.2f}x wall, "
              f"{baseline[1] / per_step[1]:5.2f}x CPU")


if __name__ == "__main__":
    main()
