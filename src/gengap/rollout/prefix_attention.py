"""Decode-time attention that reads each prompt's KV cache once for all k samples of it.

Why hand-written: `model.generate(num_return_sequences=k)` copies the prompt k times, runs the
prefill k times and makes every decode step read k copies of the prompt's keys and values. With
k = 8 and short completions that copying dominates sampling on CPU and wastes memory on GPU.
Here the prompt's KV stays a single copy (``[prompts, kv_heads, prompt_len, head_dim]``); each
sample keeps only its own generated tokens' KV in a preallocated buffer (written in place, no
per-step `torch.cat`), and the k queries of a prompt meet the shared prefix in one batched
matmul. The softmax runs jointly over prefix and suffix scores, so the result is exact
attention, not an approximation.

It plugs into transformers through the public attention interface: `SHARED_PREFIX_ATTENTION`
is registered with `AttentionInterface`, and the decode loop activates a `SharedPrefixState`
(`SharedPrefixState.active()`) that the function reads. The state does not travel through the
model's `attention_mask` argument: decoders build their masks differently (Llama-style models
call `create_causal_mask`, which drops anything it does not know), but every decoder hands the
attention interface the same ``(module, query, key, value, mask, scaling=..., sliding_window=...,
softcap=...)``. What the function honours, as transformers' own eager attention does:
``scaling``, ``sliding_window`` (a key attends when its distance to the query is below the
window; Mistral, Qwen2/3, Gemma 2/3, Phi-3) and ``softcap`` (Gemma 2's tanh capping of the
scores). Anything else it does not know (e.g. attention sinks) raises `EngineUnsupported`, and
so does a decode step in which not every layer came through here exactly once: the sampler
then falls back to `generate` instead of returning wrong tokens.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface

SHARED_PREFIX_ATTENTION = "gengap_shared_prefix"

# Keyword arguments decoders pass to the attention interface that do not change the result of
# exact attention at decode time (varlen / flash bookkeeping, positions, flags).
_IGNORED = frozenset({
    "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k",
    "is_causal", "output_attentions", "use_cache", "cache_position", "layer_idx",
    "query_length", "target_dtype", "attention_mask",
})

_ACTIVE: contextvars.ContextVar[SharedPrefixState | None] = contextvars.ContextVar(
    "gengap_shared_prefix_state", default=None
)


class EngineUnsupported(RuntimeError):
    """The model did something the shared-prefix engine cannot reproduce exactly."""


@dataclass
class SharedPrefixState:
    """The KV cache of one decode batch: P prompts x k samples = R rows (prompt-major).

    prefix_keys/values[layer]: ``[P, kv_heads, N_layer, head_dim]``: the last N_layer columns
                               of the left-padded prompts (all of them, or fewer for a
                               sliding-window layer whose cache kept only its window).
    prefix_bias[layer]:        ``[P, 1, 1, N_layer]``: 0 for real tokens, -inf for padding.
    suffix_keys/values[layer]: ``[R, kv_heads, T, head_dim]``; column t holds generated token t.
                               Left uninitialised: decode step t writes column t of every row
                               before any read of it, and reads stop at column t.
    step:                      the column this decode step writes and attends up to.
    calls:                     layers seen in the current step (the completeness check).
    """

    prefix_keys: list[torch.Tensor]
    prefix_values: list[torch.Tensor]
    prefix_bias: list[torch.Tensor]
    suffix_keys: list[torch.Tensor]
    suffix_values: list[torch.Tensor]
    k: int
    step: int = 0
    calls: list[int] = field(default_factory=list)

    @classmethod
    def allocate(
        cls,
        prefix_keys: list[torch.Tensor],
        prefix_values: list[torch.Tensor],
        prefix_mask: torch.Tensor,
        k: int,
        max_steps: int,
    ) -> SharedPrefixState:
        """Wrap a prefilled prompt cache and allocate room for `max_steps` tokens per sample."""
        like = prefix_keys[0]
        bias = torch.zeros(prefix_mask.shape, dtype=like.dtype, device=like.device)
        bias = bias.masked_fill(~prefix_mask.bool(), float("-inf"))[:, None, None, :]

        def buffer(keys: torch.Tensor) -> torch.Tensor:
            prompts, kv_heads, _, head_dim = keys.shape
            return keys.new_empty((prompts * k, kv_heads, max_steps, head_dim))

        return cls(
            prefix_keys=prefix_keys,
            prefix_values=prefix_values,
            prefix_bias=[bias[..., bias.shape[-1] - t.shape[2]:] for t in prefix_keys],
            suffix_keys=[buffer(t) for t in prefix_keys],
            suffix_values=[buffer(t) for t in prefix_values],
            k=k,
        )

    @property
    def num_layers(self) -> int:
        return len(self.prefix_keys)

    def set_step(self, step: int) -> None:
        """Point the next decode step at column `step`."""
        self.step = step
        self.calls = []

    def check_complete(self) -> None:
        """Raise `EngineUnsupported` unless every layer attended through here exactly once."""
        if sorted(self.calls) != list(range(self.num_layers)):
            raise EngineUnsupported(
                f"a decode step reached the shared-prefix attention for layers {self.calls}, "
                f"expected each of the {self.num_layers} cached layers once"
            )

    @contextlib.contextmanager
    def active(self) -> Iterator[SharedPrefixState]:
        """Make this the state `shared_prefix_attention` reads (for one decode loop)."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def select(self, prompt_index: torch.Tensor) -> SharedPrefixState:
        """Keep only the given prompts (and their k rows each): drops finished prompts."""
        offsets = torch.arange(self.k, device=prompt_index.device)
        rows = (prompt_index[:, None] * self.k + offsets).reshape(-1)

        def keep_rows(buffer: torch.Tensor) -> torch.Tensor:
            # Only the columns written so far: the rest of a buffer is unused capacity.
            kept = buffer.new_empty((len(rows), *buffer.shape[1:]))
            kept[:, :, : self.step + 1] = buffer[rows, :, : self.step + 1]
            return kept

        return SharedPrefixState(
            prefix_keys=[t[prompt_index] for t in self.prefix_keys],
            prefix_values=[t[prompt_index] for t in self.prefix_values],
            prefix_bias=[t[prompt_index] for t in self.prefix_bias],
            suffix_keys=[keep_rows(t) for t in self.suffix_keys],
            suffix_values=[keep_rows(t) for t in self.suffix_values],
            k=self.k,
            step=self.step,
        )


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: object = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    softcap: float | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """One decode step: query ``[R, H, 1, D]``, new key/value ``[R, KVH, 1, D]``.

    Returns ``[R, 1, H, D]`` like the other attention backends. `attention_mask` is ignored:
    the active `SharedPrefixState` holds the padding and the positions.
    """
    state = _ACTIVE.get()
    if state is None:
        raise RuntimeError("shared-prefix attention is only for gengap's decode loop")
    unknown = sorted(k for k, v in kwargs.items() if v is not None and k not in _IGNORED)
    layer = getattr(module, "layer_idx", None)
    if unknown or dropout or layer is None or query.shape[2] != 1:
        raise EngineUnsupported(
            f"{type(module).__name__} calls attention with {unknown or 'no layer index'}"
            if unknown or layer is None else "dropout or more than one query per row"
        )
    state.calls.append(layer)
    k = state.k
    rows, heads, _, head_dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads  # query heads per KV head (grouped-query attention)
    prompts = rows // k
    scaling = head_dim**-0.5 if scaling is None else scaling

    step = state.step
    suffix_keys, suffix_values = state.suffix_keys[layer], state.suffix_values[layer]
    suffix_keys[:, :, step] = key[:, :, 0]
    suffix_values[:, :, step] = value[:, :, 0]
    prefix_keys, prefix_values = state.prefix_keys[layer], state.prefix_values[layer]
    prefix_bias = state.prefix_bias[layer]
    kept = prefix_keys.shape[2]
    first_suffix = 0
    if sliding_window is not None:
        # The query sits `step` columns after the prompt's end; a key attends while its
        # distance to it is below the window (transformers' sliding_window_overlay). Every row
        # is left-padded to the same width, so the cut is the same column for all rows.
        first_prefix = max(0, min(kept, step + kept - sliding_window + 1))
        prefix_keys = prefix_keys[:, :, first_prefix:]
        prefix_values = prefix_values[:, :, first_prefix:]
        prefix_bias = prefix_bias[..., first_prefix:]
        first_suffix = max(0, step - sliding_window + 1)
    own_keys = suffix_keys[:, :, first_suffix : step + 1]
    own_values = suffix_values[:, :, first_suffix : step + 1]
    prefix_len, used = prefix_keys.shape[2], own_keys.shape[2]

    # Prefix part, grouped per prompt: [P, KVH, k*group, D] @ [P, KVH, D, Lp].
    q_prompt = (
        query.view(prompts, k, kv_heads, group, head_dim)
        .transpose(1, 2)
        .reshape(prompts, kv_heads, k * group, head_dim)
    )
    prefix_scores = torch.matmul(q_prompt, prefix_keys.transpose(-1, -2)) * scaling
    # Suffix part, per row: [R, KVH, group, D] @ [R, KVH, D, used].
    q_row = query.view(rows, kv_heads, group, head_dim)
    suffix_scores = torch.matmul(q_row, own_keys.transpose(-1, -2)) * scaling
    if softcap is not None:
        prefix_scores = torch.tanh(prefix_scores / softcap) * softcap
        suffix_scores = torch.tanh(suffix_scores / softcap) * softcap
    prefix_scores = prefix_scores + prefix_bias
    # Joint softmax in the per-prompt layout (the suffix scores are the small side to move).
    suffix_scores = (
        suffix_scores.view(prompts, k, kv_heads, group, used)
        .transpose(1, 2)
        .reshape(prompts, kv_heads, k * group, used)
    )
    probs = torch.softmax(torch.cat([prefix_scores, suffix_scores], dim=-1).float(), dim=-1)
    probs = probs.to(query.dtype)
    prefix_probs, suffix_probs = probs.split([prefix_len, used], dim=-1)
    out = torch.matmul(prefix_probs, prefix_values)  # [P, KVH, k*group, D]
    suffix_probs = (
        suffix_probs.reshape(prompts, kv_heads, k, group, used)
        .transpose(1, 2)
        .reshape(rows, kv_heads, group, used)
    )
    own = torch.matmul(suffix_probs, own_values)  # [R, KVH, group, D]
    out = out.view(prompts, kv_heads, k, group, head_dim).transpose(1, 2)
    out = out.reshape(rows, kv_heads, group, head_dim) + own
    return out.reshape(rows, 1, heads, head_dim), None


AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
