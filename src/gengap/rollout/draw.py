"""Drawing tokens: transformers' sampling distribution, inverse-CDF draws from per-key streams.

Both HF strategies (the shared-prefix engine and `model.generate`) draw every token the same
way: the distribution of transformers' warpers (temperature, then top-k, then top-p) and one
uniform number per (prompt key, sample, step) from `gengap.rollout.sampling.sample_uniforms`,
inverted through the cumulative distribution. Same logits + same key = same token, whatever
the batch, the strategy or the device. `KeyedSampling` brings the draw into `model.generate`
as a logits processor (generate then decodes "greedily" the token it was handed).
"""

from __future__ import annotations

import torch

from gengap.rollout.sampling import SamplingParams


def sampling_probs(
    logits: torch.Tensor, params: SamplingParams
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The sampling distribution over (a subset of) the vocabulary, in float32.

    Returns ``(probs, candidates)``: `probs` ``[rows, n]`` sums to 1 per row; `candidates` maps
    column -> token id (None: column = token id). Same order and semantics as transformers'
    `TemperatureLogitsWarper`, `TopKLogitsWarper` and `TopPLogitsWarper`: keep the most likely
    tokens while the mass before them is below top_p, at least one.
    """
    logits = logits.float() / params.temperature
    candidates = None
    if 0 < params.top_k < logits.shape[-1]:
        logits, candidates = logits.topk(params.top_k, dim=-1)  # sorted, descending
    if params.top_p < 1.0 and candidates is None:
        logits, candidates = logits.sort(dim=-1, descending=True)
    probs = logits.softmax(dim=-1)
    if params.top_p < 1.0:
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before >= params.top_p, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs, candidates


def sample_tokens(
    logits: torch.Tensor, params: SamplingParams, uniforms: torch.Tensor
) -> torch.Tensor:
    """Draw one token per row by inverse CDF with the given uniforms (``[rows]`` in [0, 1))."""
    if params.greedy:
        return logits.argmax(dim=-1)
    probs, candidates = sampling_probs(logits, params)
    cdf = probs.cumsum(dim=-1)
    threshold = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    choice = torch.searchsorted(cdf, threshold, right=True).squeeze(-1)
    # Rounding can put the threshold at the total mass: fall back to the last allowed token.
    last_allowed = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    choice = torch.minimum(choice, last_allowed)
    if candidates is not None:
        choice = candidates.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return choice


class KeyedSampling:
    """A `generate` logits processor that draws each row's token from its own stream.

    uniforms:     ``[rows, max_new_tokens]``, the rows in generate's batch order.
    prompt_width: the (padded) prompt length; step t of generation sees t + width tokens.
    Returns scores that are 0 at the drawn token and -inf elsewhere, so greedy decoding in
    `generate` picks exactly the drawn token.
    """

    def __init__(self, uniforms: torch.Tensor, params: SamplingParams, prompt_width: int):
        self.uniforms, self.params, self.width = uniforms, params, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        tokens = sample_tokens(scores, self.params, self.uniforms[:, step].to(scores.device))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)
