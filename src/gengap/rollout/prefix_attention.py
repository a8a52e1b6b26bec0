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
is registered with `AttentionInterface`, and the decoder is called with a prepared
``attention_mask`` dict whose values are a `SharedPrefixState` (transformers passes prepared
mask dicts through untouched). Works for decoders whose attention modules call the attention
interface with ``(module, query, key, value, attention_mask, scaling=...)`` and carry
``layer_idx`` (Qwen2/Qwen3, Llama, Mistral families, and LLaVA around them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AttentionInterface

SHARED_PREFIX_ATTENTION = "gengap_shared_prefix"


@dataclass
class SharedPrefixState:
    """The KV cache of one decode batch: P prompts x k samples = R rows (prompt-major).

    prefix_keys/values[layer]: ``[P, kv_heads, Lp, head_dim]``, left-padded prompts.
    prefix_bias:               ``[P, 1, 1, Lp]``: 0 for real tokens, -inf for padding.
    suffix_keys/values[layer]: ``[R, kv_heads, T, head_dim]``; column t holds generated token t.
                               Left uninitialised: decode step t writes column t of every row
                               before any read of it, and reads stop at column t.
    step:                      the column this decode step writes and attends up to.
    """

    prefix_keys: list[torch.Tensor]
    prefix_values: list[torch.Tensor]
    prefix_bias: torch.Tensor
    suffix_keys: list[torch.Tensor]
    suffix_values: list[torch.Tensor]
    k: int
    step: int = 0

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
        prompts, kv_heads, _, head_dim = prefix_keys[0].shape
        like = prefix_keys[0]
        shape = (prompts * k, kv_heads, max_steps, head_dim)
        bias = torch.zeros(prefix_mask.shape, dtype=like.dtype, device=like.device)
        bias = bias.masked_fill(~prefix_mask.bool(), float("-inf"))[:, None, None, :]
        return cls(
            prefix_keys=prefix_keys,
            prefix_values=prefix_values,
            prefix_bias=bias,
            suffix_keys=[like.new_empty(shape) for _ in prefix_keys],
            suffix_values=[like.new_empty(shape) for _ in prefix_keys],
            k=k,
        )

    def set_step(self, step: int) -> None:
        """Point the next decode step at column `step`."""
        self.step = step

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
            prefix_bias=self.prefix_bias[prompt_index],
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
    attention_mask: SharedPrefixState,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """One decode step: query ``[R, H, 1, D]``, new key/value ``[R, KVH, 1, D]``.

    Returns ``[R, 1, H, D]`` like the other attention backends.
    """
    state = attention_mask
    if not isinstance(state, SharedPrefixState):
        raise RuntimeError("shared-prefix attention is only for gengap's decode loop")
    layer, k = module.layer_idx, state.k
    rows, heads, _, head_dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads  # query heads per KV head (grouped-query attention)
    prompts = rows // k
    scaling = head_dim**-0.5 if scaling is None else scaling

    step = state.step
    suffix_keys, suffix_values = state.suffix_keys[layer], state.suffix_values[layer]
    suffix_keys[:, :, step] = key[:, :, 0]
    suffix_values[:, :, step] = value[:, :, 0]
    own_keys, own_values = suffix_keys[:, :, : step + 1], suffix_values[:, :, : step + 1]
    prefix_keys, prefix_values = state.prefix_keys[layer], state.prefix_values[layer]
    prefix_len, used = prefix_keys.shape[2], step + 1

    # Prefix part, grouped per prompt: [P, KVH, k*group, D] @ [P, KVH, D, Lp].
    q_prompt = (
        query.view(prompts, k, kv_heads, group, head_dim)
        .transpose(1, 2)
        .reshape(prompts, kv_heads, k * group, head_dim)
    )
    prefix_scores = torch.matmul(q_prompt, prefix_keys.transpose(-1, -2)) * scaling
    prefix_scores = prefix_scores + state.prefix_bias
    # Suffix part, per row: [R, KVH, group, D] @ [R, KVH, D, step+1].
    q_row = query.view(rows, kv_heads, group, head_dim)
    suffix_scores = torch.matmul(q_row, own_keys.transpose(-1, -2)) * scaling
    # Joint softmax in the per-prompt layout (the suffix scores are the small side to move).
    suffix_scores = (
        suffix_scores.view(prompts, k, kv_heads, group, used)
        .transpose(1, 2)
        .reshape(prompts, kv_heads, k * group, used)
    )
    probs = torch.softmax(torch.cat([prefix_scores, suffix_scores], dim=-1), dim=-1)
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
