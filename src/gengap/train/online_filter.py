"""Online difficulty filtering for GRPO: drop zero-variance groups and refill the batch.

TRL 1.16 has none (issue #3708; it only logs `frac_reward_zero_std`). A group whose
completions all got the same reward has zero advantage: it costs its rollouts and gives no
gradient, and with token-averaged losses it dilutes the batch. The frameworks that filter
online (verl's `algorithm.filter_groups`, ms-swift's `--dynamic_sample`, DAPO) keep the groups
whose rewards vary and sample more prompts until the batch is full; this does the same on top
of `GRPOTrainer._generate_and_score_completions`: score the batch, keep the groups with
non-zero advantages, draw fresh prompts from the training set and score them, up to
`max_refills` times, then trim to the batch's size. If the refills do not fill it, the
batch is completed with dropped groups (zero advantage: no gradient, as before), so the
trainer always sees the shape it expects. The offline filter (`filter_by_difficulty`) is the
other option: it drops prompts a difficulty pass found always or never solved, before
training.

Text tasks only: an image batch's pixel tensors are not laid out per row, so its groups
cannot be regrouped (an `InputError` says so).
"""

from __future__ import annotations

import random
from typing import Any

import torch

LEFT_PADDED = ("prompt_ids", "prompt_mask")
ROW_KEYS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
            "old_per_token_logps", "sampling_per_token_logps", "ref_per_token_logps",
            "tool_mask", "importance_sampling_ratio")


def varied_groups(advantages: torch.Tensor, group: int, eps: float = 1e-8) -> list[int]:
    """Indices of the groups (of `group` consecutive rows) whose advantages are not all 0."""
    grouped = advantages.view(-1, group)
    return [g for g in range(grouped.shape[0]) if grouped[g].abs().max().item() > eps]


def merge_rows(parts: list[tuple[dict[str, Any], list[int]]], pad_id: int) -> dict[str, Any]:
    """The rows `rows` of each scored batch, concatenated (2-D tensors padded to one width:
    prompts on the left, completions on the right). `num_items_in_batch` is recomputed."""
    out: dict[str, Any] = {}
    for key in ROW_KEYS:
        pieces = [batch[key][rows] for batch, rows in parts if batch.get(key) is not None]
        if not pieces:
            continue
        if len(pieces) != len(parts):
            raise RuntimeError(f"scored batches disagree on {key!r}")
        if pieces[0].dim() == 2:
            width = max(p.shape[1] for p in pieces)
            value = pad_id if key == "prompt_ids" else (1 if key == "tool_mask" else 0)
            padded = []
            for p in pieces:
                extra = width - p.shape[1]
                if extra:
                    fill = torch.full((p.shape[0], extra), value, dtype=p.dtype, device=p.device)
                    p = torch.cat([fill, p] if key in LEFT_PADDED else [p, fill], dim=1)
                padded.append(p)
            pieces = padded
        out[key] = torch.cat(pieces, dim=0)
    mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out[
        "completion_mask"]
    out["num_items_in_batch"] = mask.sum()
    return out


def online_filter_trainer(base: type, *, max_refills: int = 4, seed: int = 0) -> type:
    """A subclass of TRL's `GRPOTrainer` (`base`) that filters groups online."""

    class OnlineFilterGRPOTrainer(base):
        """GRPOTrainer that drops zero-variance groups and refills the batch."""

        _refill_rng = random.Random(f"{seed}/online-filter")

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]
                                            ) -> dict[str, Any]:
            g = self.num_generations
            if self.model.training is False or len(inputs) % g:
                return super()._generate_and_score_completions(inputs)
            if any("images" in x or "image" in x for x in inputs):
                from gengap.errors import InputError

                raise InputError("online filtering works on text tasks only",
                                 hint="image batches' pixel tensors cannot be regrouped; use "
                                      "filter_by_difficulty (offline) for image tasks")
            want = len(inputs) // g
            first = super()._generate_and_score_completions(inputs)
            kept: list[tuple[dict[str, Any], list[int]]] = []
            dropped: list[tuple[dict[str, Any], list[int]]] = []
            scored, refills = want, 0

            def split(batch: dict[str, Any]) -> None:
                good = set(varied_groups(batch["advantages"], g))
                for group in range(batch["advantages"].shape[0] // g):
                    rows = list(range(group * g, (group + 1) * g))
                    (kept if group in good else dropped).append((batch, rows))

            split(first)
            while len(kept) < want and refills < max_refills:
                refills += 1
                picks = [self._refill_rng.randrange(len(self.train_dataset))
                         for _ in range(want - len(kept))]
                fresh = [dict(self.train_dataset[i]) for i in picks for _ in range(g)]
                split(super()._generate_and_score_completions(fresh))
                scored += len(picks)
            groups = (kept + dropped)[:want]
            self._metrics["train"]["online_filter/kept_groups"].append(min(len(kept), want))
            self._metrics["train"]["online_filter/scored_groups"].append(scored)
            self._metrics["train"]["online_filter/refills"].append(refills)
            self._metrics["train"]["online_filter/first_batch_zero_std"].append(
                1 - len(varied_groups(first["advantages"], g)) / want)
            parts: list[tuple[dict[str, Any], list[int]]] = []
            for batch, rows in groups:  # one index list per batch, in order
                if parts and parts[-1][0] is batch:
                    parts[-1][1].extend(rows)
                else:
                    parts.append((batch, list(rows)))
            merged = merge_rows(parts, self.pad_token_id if hasattr(self, "pad_token_id")
                                else self._tokenizer.pad_token_id)
            merged["num_items_in_batch"] = self.accelerator.gather(
                merged["num_items_in_batch"]).sum()
            return merged

    return OnlineFilterGRPOTrainer
