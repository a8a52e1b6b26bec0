"""The transformers backend: k samples per prompt with one shared prefill per prompt.

Two strategies, one sampling semantics (every token drawn by `gengap.rollout.draw` from the
per-(prompt key, sample) stream of `gengap.rollout.sampling`, so a prompt's samples depend on
its key and the parameters only, never on the batch it lands in):

- ``engine`` (default for the families listed in `gengap.rollout.support`): a small decode
  loop over the model's own forward. Prompts are sorted by length, left-padded and prefilled
  **once** each (pixel values through the processor); the prompt KV cache stays one copy per
  prompt while its k samples decode against it (`gengap.rollout.prefix_attention`). Prompts
  whose k samples all ended are dropped from the batch as decoding goes on. Why not
  `model.generate`: it repeats the prompt k times (prefill and KV reads k times).
- ``generate``: `model.generate` on the prompts repeated k times, with the same draws brought
  in by a logits processor (`draw.KeyedSampling`): any architecture, the same samples up to
  floating-point noise, without the shared prefix. "auto" picks it, with a one-line notice,
  for families the engine is not verified on, and switches to it if the engine meets
  something it cannot reproduce exactly (`prefix_attention.EngineUnsupported`).

Both use gengap's `SamplingParams` only: the checkpoint's generation_config contributes its EOS
tokens, never its sampling defaults (temperature, top_p, repetition_penalty, ...), so a
checkpoint's greedy decoding here is plain greedy decoding.

Batches are sized to memory: rows (prompts x k) per batch are capped by `max_batch_rows` and by
`memory_fraction` of the free device memory, from the KV cache and activation sizes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from gengap.errors import InputError
from gengap.rollout.draw import KeyedSampling, sample_tokens
from gengap.rollout.prefix_attention import (
    SHARED_PREFIX_ATTENTION,
    EngineUnsupported,
    SharedPrefixState,
)
from gengap.rollout.sampling import (
    BatchResult,
    Completion,
    Messages,
    PromptImages,
    SamplingParams,
    check_inputs,
    prompt_keys,
    sample_uniforms,
)
from gengap.rollout.support import (
    ENGINE_DECODERS,
    base_model,
    decode_positions,
    engine_support,
    prefill_positions,
    text_config,
)

__all__ = ["ENGINE_DECODERS", "HFSampler", "engine_supported", "flops_per_token",
           "sample_tokens"]

log = logging.getLogger("gengap")

# Processor outputs aligned with the token sequence (``[1, L, ...]``): left-padded with zeros
# like the ids. Everything else the processor makes is batched along dim 0 as it is.
SEQUENCE_KEYS = frozenset({"mm_token_type_ids", "token_type_ids", "cross_attention_mask"})


@dataclass
class _Prompt:
    """A tokenized prompt: its ids, its other processor outputs, its random stream's key."""

    index: int
    ids: list[int]
    extra: dict[str, torch.Tensor]
    key: str

    def signature(self) -> tuple:
        """Prompts of one signature can share a batch (their extra tensors concatenate)."""
        return tuple(sorted(
            (k, tuple(v.shape[2:] if k in SEQUENCE_KEYS else v.shape[1:]))
            for k, v in self.extra.items()
        ))


def _tokenizer_of(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def _is_multimodal(processor: Any) -> bool:
    return hasattr(processor, "image_processor") and hasattr(processor, "tokenizer")


def _eos_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise InputError("the model has no EOS token", hint="set generation_config.eos_token_id")
    return ids


def engine_supported(model: torch.nn.Module) -> bool:
    """Whether the shared-prefix engine serves this model (see `gengap.rollout.support`)."""
    return engine_support(model).engine


def _available_memory(device: torch.device) -> int:
    """Free bytes on the device (CUDA: the allocator's view; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


@contextlib.contextmanager
def _plain_generation_config(model: torch.nn.Module, eos: list[int], pad: int) -> Iterator[None]:
    """`generate` with gengap's sampling only: hide the checkpoint's sampling defaults."""
    from transformers import GenerationConfig

    target = base_model(model)
    previous = target.generation_config
    target.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=pad, bos_token_id=previous.bos_token_id)
    try:
        yield
    finally:
        target.generation_config = previous


class HFSampler:
    """Sampling with a transformers model (see the module doc for the two strategies).

    model:           a causal LM or a VLM (`*ForConditionalGeneration`), any device/dtype,
                     optionally wrapped by PEFT.
    processor:       its tokenizer (text models) or processor (VLMs), with a chat template.
    strategy:        "auto" (engine where verified), "engine" (refused where it is not) or
                     "generate".
    max_batch_rows:  cap on prompts x k decoded together (default 1024 on CPU, 16384 on GPU).
    memory_fraction: share of the free device memory a batch may use.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        strategy: str = "auto",
        max_batch_rows: int | None = None,
        memory_fraction: float = 0.5,
        prefill_batch_tokens: int = 16384,
    ) -> None:
        if strategy not in ("auto", "engine", "generate"):
            raise InputError(f"unknown strategy {strategy!r}", hint="auto, engine or generate")
        support = engine_support(model)
        if strategy == "engine" and not support.engine:
            raise InputError(
                f"the shared-prefix engine does not serve this model ({support.reason})",
                hint="use strategy='generate' (or 'auto')",
            )
        self.model = model
        self.processor = processor
        self.tokenizer = _tokenizer_of(processor)
        self.support = support
        self.strategy = strategy if strategy != "auto" else (
            "engine" if support.engine else "generate")
        if strategy == "auto" and not support.engine:
            log.warning("gengap: sampling with model.generate, not the shared-prefix engine: %s",
                        support.reason)
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.max_batch_rows = max_batch_rows or (16384 if self.device.type == "cuda" else 1024)
        self.memory_fraction = memory_fraction
        self.prefill_batch_tokens = prefill_batch_tokens
        self.eos_ids = _eos_ids(model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = self.eos_ids[0] if pad is None else pad

    # ----------------------------------------------------------------- public API
    def generate(
        self,
        prompts: list[Messages],
        images: Sequence[PromptImages] | None,
        params: SamplingParams,
        progress: bool = False,
        keys: Sequence[str] | None = None,
    ) -> BatchResult:
        """Sample `params.k` completions for each chat prompt (see `gengap.rollout.sampling`)."""
        images = check_inputs(prompts, images, keys)
        start = time.perf_counter()
        rendered = [self._render(messages) for messages in prompts]
        encoded = self._encode(rendered, images, prompt_keys(rendered, images, keys))
        completions: list[list[Completion] | None] = [None] * len(prompts)
        generated = 0
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                bar = tqdm(total=len(prompts), desc="sampling", disable=not progress)
                for batch in self._batches(encoded, params):
                    for prompt, samples in zip(batch, self._run(batch, params), strict=True):
                        completions[prompt.index] = samples
                        generated += sum(c.num_tokens for c in samples)
                    bar.update(len(batch))
                bar.close()
        finally:
            self.model.train(was_training)
        return BatchResult(
            completions=[c or [] for c in completions],
            seconds=time.perf_counter() - start,
            prompt_tokens=sum(len(p.ids) for p in encoded),
            generated_tokens=generated,
            info={"backend": "hf", "strategy": self.strategy},
        )

    def _run(self, batch: list[_Prompt], params: SamplingParams) -> list[list[Completion]]:
        if self.strategy == "engine":
            try:
                return self._engine_batch(batch, params)
            except EngineUnsupported as exc:
                # Nothing of this batch was returned yet: redo it (and the rest) with generate.
                log.warning("gengap: the shared-prefix engine cannot serve %s exactly (%s); "
                            "sampling with model.generate", type(self.model).__name__, exc)
                self.strategy = "generate"
        return self._generate_batch(batch, params)

    # ----------------------------------------------------------------- inputs
    def _render(self, messages: Messages) -> str:
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _encode(
        self, rendered: list[str], images: list[list[Image.Image]], keys: list[str]
    ) -> list[_Prompt]:
        out = []
        for index, (text, imgs, key) in enumerate(zip(rendered, images, keys, strict=True)):
            if imgs:
                if not _is_multimodal(self.processor):
                    raise InputError(
                        "an image was given but the model has no image processor",
                        where=f"prompt {index}",
                        hint="use an image model (e.g. build_tiny('image')) or drop images",
                    )
                enc = self.processor(
                    text=[text], images=[imgs], return_tensors="pt", add_special_tokens=False
                )
                extra = {k: v for k, v in enc.items()
                         if k not in ("input_ids", "attention_mask")
                         and isinstance(v, torch.Tensor)}
            else:
                enc = self.tokenizer([text], return_tensors="pt", add_special_tokens=False)
                extra = {}
            out.append(_Prompt(index, enc["input_ids"][0].tolist(), extra, key))
        return out

    def _rows_for(self, prompt_len: int, params: SamplingParams) -> int:
        """Rows (prompts x k) whose KV cache and activations fit the memory budget."""
        text = text_config(self.model)
        hidden = getattr(text, "hidden_size", None) or 1024
        layers = getattr(text, "num_hidden_layers", None) or 32
        heads = getattr(text, "num_attention_heads", None) or 16
        head_dim = getattr(text, "head_dim", None) or hidden // heads
        kv_heads = getattr(text, "num_key_value_heads", None) or heads
        # Not every family names its MLP width alike (GPT-2: n_inner, None = 4 x hidden).
        mlp = getattr(text, "intermediate_size", None) or 4 * hidden
        vocab = getattr(text, "vocab_size", None) or 32000
        itemsize = torch.finfo(self.dtype).bits // 8
        context = prompt_len + params.max_new_tokens
        # The engine keeps one prompt KV per prompt; generate keeps one per row.
        share = params.k if self.strategy == "engine" else 1
        per_row = 2 * layers * kv_heads * head_dim * params.max_new_tokens * itemsize
        per_row += 2 * layers * kv_heads * head_dim * prompt_len * itemsize / share
        # Activations of one step: MLP, logits and attention scores (float32), a few copies.
        per_row += 4 * (4 * mlp + vocab + 3 * heads * context)
        budget = _available_memory(self.device) * self.memory_fraction
        return max(params.k, min(self.max_batch_rows, int(budget // per_row)))

    def _batches(self, prompts: list[_Prompt], params: SamplingParams) -> Iterator[list[_Prompt]]:
        """Length-sorted batches of one signature (less padding, tensors that concatenate);
        the grouping cannot change results (per-key random streams)."""
        order = sorted(prompts, key=lambda p: (p.signature(), len(p.ids), p.index))
        start = 0
        while start < len(order):
            group = order[start].signature()
            end = start
            while end < len(order) and order[end].signature() == group:
                end += 1
            rows = self._rows_for(len(order[start].ids), params)
            # The longest prompt in the batch sets the padding: size from the batch's last one.
            count = max(1, rows // params.k)
            rows = self._rows_for(len(order[min(end, start + count) - 1].ids), params)
            count = min(max(1, rows // params.k), end - start)
            yield order[start : start + count]
            start += count

    def _pad_left(self, batch: list[_Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p.ids) for p in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids)
            mask[row, width - len(prompt.ids) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _extra_inputs(self, batch: list[_Prompt]) -> dict[str, torch.Tensor]:
        """The batch's other processor outputs: sequence-aligned ones left-padded like the ids,
        the rest concatenated; floats cast to the model's dtype."""
        width = max(len(p.ids) for p in batch)
        out = {}
        for key in sorted({k for p in batch for k in p.extra}):
            if key in SEQUENCE_KEYS:
                like = next(p.extra[key] for p in batch if key in p.extra)
                value = like.new_zeros((len(batch), width, *like.shape[2:]))
                for row, prompt in enumerate(batch):
                    if key in prompt.extra:
                        value[row, width - len(prompt.ids):] = prompt.extra[key][0]
            else:
                value = torch.cat([p.extra[key] for p in batch if key in p.extra])
            out[key] = value.to(self.device, self.dtype if value.is_floating_point() else None)
        return out

    def _uniforms(self, batch: list[_Prompt], params: SamplingParams) -> torch.Tensor:
        if params.greedy:
            return torch.zeros((len(batch) * params.k, params.max_new_tokens))
        draws = [
            sample_uniforms(params.seed, p.key, params.k, params.max_new_tokens) for p in batch
        ]
        return torch.from_numpy(np.concatenate(draws)).to(self.device)

    # ----------------------------------------------------------------- engine strategy
    def _prefill(
        self, batch: list[_Prompt]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the prompts once: per-layer prefix keys/values, the mask, the last logits and
        the position of each prompt's first new token."""
        ids, mask = self._pad_left(batch)
        width = ids.shape[1]
        step = max(1, self.prefill_batch_tokens // width)
        keys: list[list[torch.Tensor]] = []
        values: list[list[torch.Tensor]] = []
        logits, next_positions = [], []
        for start in range(0, len(batch), step):
            part = slice(start, start + step)
            extra = self._extra_inputs(batch[part])
            positions, following = prefill_positions(self.model, ids[part], mask[part], extra)
            out = self.model(
                input_ids=ids[part],
                attention_mask=mask[part],
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
            # `cache` from transformers 5.2x on; `past_key_values` before (the vLLM env's).
            cache = next(out[name] for name in ("cache", "past_key_values") if name in out)
            keys.append([layer.keys for layer in cache.layers])
            values.append([layer.values for layer in cache.layers])
            logits.append(out.logits[:, -1].float())
            next_positions.append(following)
        layers = len(keys[0])
        prefix_keys = [torch.cat([k[i] for k in keys]) for i in range(layers)]
        prefix_values = [torch.cat([v[i] for v in values]) for i in range(layers)]
        return prefix_keys, prefix_values, mask, torch.cat(logits), torch.cat(next_positions)

    @contextlib.contextmanager
    def _shared_prefix_attention(self) -> Iterator[None]:
        """Route the decoder's attention to the shared-prefix function for the decode loop."""
        config = text_config(self.model)
        previous = config._attn_implementation
        config._attn_implementation = SHARED_PREFIX_ATTENTION
        try:
            yield
        finally:
            config._attn_implementation = previous

    def _decode_step(self, input_ids: torch.Tensor, positions: torch.Tensor,
                     state: SharedPrefixState) -> torch.Tensor:
        """One decode step through the model's own forward: next-token logits ``[rows, V]``.

        The whole forward (not decoder + head) so that what a family does after the head
        (Gemma 2's final soft-capping, logit scaling) applies as in `generate`.
        """
        out = self.model(input_ids=input_ids, position_ids=positions, use_cache=False,
                         logits_to_keep=1)
        state.check_complete()
        return out.logits[:, -1].float()

    def _engine_batch(self, batch: list[_Prompt], params: SamplingParams) -> list[list[Completion]]:
        k, steps = params.k, params.max_new_tokens
        prefix_keys, prefix_values, mask, first_logits, following = self._prefill(batch)
        state = SharedPrefixState.allocate(prefix_keys, prefix_values, mask, k, steps)
        next_position = following.repeat_interleave(k)  # position of new token 0, per row
        uniforms = self._uniforms(batch, params)
        eos = torch.tensor(self.eos_ids, device=self.device)

        total_rows = len(batch) * k
        tokens = torch.full((total_rows, steps), self.pad_id, dtype=torch.long, device=self.device)
        lengths = torch.full((total_rows,), steps, dtype=torch.long, device=self.device)
        finished = torch.zeros(total_rows, dtype=torch.bool, device=self.device)
        live_rows = torch.arange(total_rows, device=self.device)  # batch row -> output row
        row_done = torch.zeros(total_rows, dtype=torch.bool, device=self.device)

        current = sample_tokens(first_logits.repeat_interleave(k, 0), params, uniforms[:, 0])
        with self._shared_prefix_attention():
            for step in range(steps):
                tokens[live_rows, step] = current
                hit = torch.isin(current, eos) & ~row_done
                lengths[live_rows[hit]] = step + 1
                finished[live_rows[hit]] = True
                row_done |= hit
                if step == steps - 1 or bool(row_done.all()):
                    break
                # Drop prompts whose k samples all ended once they are a quarter of the batch:
                # the copy costs about one decode step, so do it rarely.
                prompt_done = row_done.view(-1, k).all(-1)
                if int(prompt_done.sum()) * 4 >= prompt_done.numel():
                    keep = (~prompt_done).nonzero().squeeze(-1)
                    state = state.select(keep)
                    row_keep = (keep[:, None] * k + torch.arange(k, device=self.device)).view(-1)
                    live_rows = live_rows[row_keep]
                    current, row_done = current[row_keep], row_done[row_keep]
                state.set_step(step)
                positions = decode_positions(self.model, next_position[live_rows] + step)
                with state.active():
                    logits = self._decode_step(current.unsqueeze(-1), positions, state)
                current = sample_tokens(logits, params, uniforms[live_rows, step + 1])
                current = current.masked_fill(row_done, self.pad_id)
        return self._completions(tokens, lengths, finished, len(batch), k)

    def _completions(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        finished: torch.Tensor,
        prompts: int,
        k: int,
    ) -> list[list[Completion]]:
        tokens, lengths, finished = tokens.cpu(), lengths.tolist(), finished.tolist()
        texts = self.tokenizer.batch_decode(
            [
                row[: n - int(done)].tolist()
                for row, n, done in zip(tokens, lengths, finished, strict=True)
            ],
            skip_special_tokens=True,
        )
        flat = [
            Completion(text=t, num_tokens=n, finished=d)
            for t, n, d in zip(texts, lengths, finished, strict=True)
        ]
        return [flat[i * k : (i + 1) * k] for i in range(prompts)]

    # ----------------------------------------------------------------- generate strategy
    def _generate_batch(
        self, batch: list[_Prompt], params: SamplingParams
    ) -> list[list[Completion]]:
        """`model.generate` on each prompt repeated k times, drawing from the same streams."""
        from transformers import LogitsProcessorList

        # Greedy samples are identical: generate one row per prompt and repeat it.
        repeats = 1 if params.greedy else params.k
        rows = [p for p in batch for _ in range(repeats)]
        ids, mask = self._pad_left(rows)
        processors = None
        if not params.greedy:
            draw = KeyedSampling(self._uniforms(batch, params), params, ids.shape[1])
            processors = LogitsProcessorList([draw])
        with _plain_generation_config(self.model, self.eos_ids, self.pad_id):
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=params.max_new_tokens,
                do_sample=False,
                logits_processor=processors,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
                **self._extra_inputs(rows),
            )
        new = out[:, ids.shape[1] :].repeat_interleave(params.k // repeats, dim=0)
        is_eos = torch.isin(new, torch.tensor(self.eos_ids, device=new.device))
        has_eos = is_eos.any(-1)
        first_eos = is_eos.int().argmax(-1)
        lengths = torch.where(has_eos, first_eos + 1, torch.full_like(first_eos, new.shape[1]))
        # generate stops when every row ended: rows are padded after their EOS; count real tokens.
        return self._completions(new, lengths, has_eos, len(batch), params.k)


def flops_per_token(model: torch.nn.Module, context: float) -> float:
    """Forward FLOPs of one token of the text decoder at a given attention context length.

    2 x (decoder matmul parameters + LM head) + attention scores and weighted values
    (2 x 2 x layers x heads x head_dim x context). Embedding lookups are free.
    """
    text = text_config(model)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    decoder = model.get_decoder()
    matmul_params = sum(
        m.weight.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear)
    )
    head = model.get_output_embeddings().weight.numel()
    attention = 4 * text.num_hidden_layers * heads * head_dim * context
    return 2 * (matmul_params + head) + attention
