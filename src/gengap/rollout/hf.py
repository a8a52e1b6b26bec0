"""The transformers backend: k samples per prompt with one shared prefill per prompt.

Two strategies:

- ``engine`` (default where supported: decoder-only Qwen2/Qwen3/Llama/Mistral-family models and
  LLaVA around them). A small decode loop over the model's own modules:
  prompts are sorted by length, left-padded and prefilled **once** each (pixel values through the
  processor); the prompt KV cache stays one copy per prompt while its k samples decode against it
  (`gengap.rollout.prefix_attention`); each token is drawn from a per-(prompt key, sample) random
  stream, so results do not depend on batching (`gengap.rollout.sampling`). Prompts whose k
  samples all ended are dropped from the batch as decoding goes on.
  Why not `model.generate`: it repeats the prompt k times (prefill and KV reads k times) and
  draws all rows from one global RNG, so a prompt's samples would change with the batch it lands
  in — which breaks resumable, chunked difficulty estimation.
- ``generate``: plain `model.generate(num_return_sequences=k)` for any other architecture
  (e.g. Qwen2.5-VL's 3-D rotary positions); deterministic for a seed and a fixed batch split only.

Batches are sized to memory: rows (prompts x k) per batch are capped by `max_batch_rows` and by
`memory_fraction` of the free device memory, from the KV cache and activation sizes.
"""

from __future__ import annotations

import contextlib
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
from gengap.rollout.prefix_attention import SHARED_PREFIX_ATTENTION, SharedPrefixState
from gengap.rollout.sampling import (
    BatchResult,
    Completion,
    Messages,
    PromptImages,
    SamplingParams,
    check_inputs,
    key_seed,
    prompt_keys,
    sample_uniforms,
)

# Decoder families whose attention modules go through transformers' attention interface with
# 1-D rotary positions: the shared-prefix engine supports them.
ENGINE_DECODERS = ("qwen2", "qwen3", "llama", "mistral")


@dataclass
class _Prompt:
    """A tokenized prompt: its ids, its image inputs, and the key of its random stream.

    `image_inputs` holds every tensor the processor made besides the text (LLaVA:
    pixel_values; Qwen2-VL family: pixel_values and image_grid_thw), batched along dim 0.
    """

    index: int
    ids: list[int]
    image_inputs: dict[str, torch.Tensor]
    key: str


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


def _text_config(model: torch.nn.Module) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def engine_supported(model: torch.nn.Module) -> bool:
    """Whether the shared-prefix engine can drive this model (else use ``generate``)."""
    text = _text_config(model)
    layer_types = set(getattr(text, "layer_types", None) or ["full_attention"])
    return (
        getattr(text, "model_type", None) in ENGINE_DECODERS
        and layer_types == {"full_attention"}
        and getattr(text, "final_logit_softcapping", None) is None
    )


def sample_tokens(
    logits: torch.Tensor, params: SamplingParams, uniforms: torch.Tensor
) -> torch.Tensor:
    """Draw one token per row by inverse CDF with the given uniforms (``[rows]`` in [0, 1)).

    Same order as transformers' and vLLM's warpers: temperature, then top-k, then top-p (keep the
    most likely tokens while the mass before them is below top_p).
    """
    if params.greedy:
        return logits.argmax(dim=-1)
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
    cdf = probs.cumsum(dim=-1)
    threshold = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    choice = torch.searchsorted(cdf, threshold, right=True).squeeze(-1)
    # Rounding can put the threshold at the total mass: fall back to the last allowed token.
    last_allowed = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    choice = torch.minimum(choice, last_allowed)
    if candidates is not None:
        choice = candidates.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return choice


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


class HFSampler:
    """Sampling with a transformers model (see the module doc for the two strategies).

    model:           a `*ForCausalLM` or `LlavaForConditionalGeneration` (any device/dtype).
    processor:       its tokenizer (text models) or processor (VLMs), with a chat template.
    strategy:        "auto" (engine where supported), "engine" or "generate".
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
        if strategy == "engine" and not engine_supported(model):
            raise InputError(
                f"the shared-prefix engine does not support {type(model).__name__}",
                hint="use strategy='generate' (or 'auto')",
            )
        self.model = model
        self.processor = processor
        self.tokenizer = _tokenizer_of(processor)
        self.strategy = (
            ("engine" if engine_supported(model) else "generate")
            if strategy == "auto"
            else strategy
        )
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
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
                    run = self._engine_batch if self.strategy == "engine" else self._generate_batch
                    for prompt, samples in zip(batch, run(batch, params), strict=True):
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
                    text=[text], images=imgs, return_tensors="pt", add_special_tokens=False
                )
                image_inputs = {k: v for k, v in enc.items()
                                if k not in ("input_ids", "attention_mask", "mm_token_type_ids")
                                and isinstance(v, torch.Tensor)}
            else:
                enc = self.tokenizer([text], return_tensors="pt", add_special_tokens=False)
                image_inputs = {}
            out.append(_Prompt(index, enc["input_ids"][0].tolist(), image_inputs, key))
        return out

    def _rows_for(self, prompt_len: int, params: SamplingParams) -> int:
        """Rows (prompts x k) whose KV cache and activations fit the memory budget."""
        text = _text_config(self.model)
        layers = text.num_hidden_layers
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        kv_heads = getattr(text, "num_key_value_heads", None) or heads
        itemsize = torch.finfo(self.dtype).bits // 8
        context = prompt_len + params.max_new_tokens
        per_row = 2 * layers * kv_heads * head_dim * params.max_new_tokens * itemsize
        per_row += 2 * layers * kv_heads * head_dim * prompt_len * itemsize / params.k
        # Activations of one step: MLP, logits and attention scores (float32), a few copies.
        per_row += 4 * (4 * text.intermediate_size + text.vocab_size + 3 * heads * context)
        budget = _available_memory(self.device) * self.memory_fraction
        return max(params.k, min(self.max_batch_rows, int(budget // per_row)))

    def _batches(self, prompts: list[_Prompt], params: SamplingParams) -> Iterator[list[_Prompt]]:
        """Length-sorted batches (less padding); sorting cannot change results (per-key RNG)."""
        order = sorted(prompts, key=lambda p: (len(p.ids), p.index))
        start = 0
        while start < len(order):
            rows = self._rows_for(len(order[min(len(order) - 1, start)].ids), params)
            # The longest prompt in the batch sets the padding: size from the batch's last one.
            count = max(1, rows // params.k)
            rows = self._rows_for(len(order[min(len(order), start + count) - 1].ids), params)
            count = max(1, rows // params.k)
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

    def _image_inputs(self, batch: list[_Prompt]) -> dict[str, torch.Tensor]:
        """The batch's image tensors, concatenated per key (floats cast to the model dtype)."""
        keys = {k for p in batch for k in p.image_inputs}
        out = {}
        for key in sorted(keys):
            value = torch.cat([p.image_inputs[key] for p in batch if key in p.image_inputs])
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
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Run the prompts once; return per-layer prefix keys/values, the mask, last logits."""
        ids, mask = self._pad_left(batch)
        width = ids.shape[1]
        step = max(1, self.prefill_batch_tokens // width)
        keys: list[list[torch.Tensor]] = []
        values: list[list[torch.Tensor]] = []
        logits = []
        for start in range(0, len(batch), step):
            part = slice(start, start + step)
            part_mask = mask[part]
            # Left padding: positions count real tokens only (what generate does too).
            positions = (part_mask.cumsum(-1) - 1).clamp(min=0)
            extra = self._image_inputs(batch[part])
            out = self.model(
                input_ids=ids[part],
                attention_mask=part_mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
            cache = out.past_key_values
            keys.append([layer.keys for layer in cache.layers])
            values.append([layer.values for layer in cache.layers])
            logits.append(out.logits[:, -1].float())
        layers = len(keys[0])
        prefix_keys = [torch.cat([k[i] for k in keys]) for i in range(layers)]
        prefix_values = [torch.cat([v[i] for v in values]) for i in range(layers)]
        return prefix_keys, prefix_values, mask, torch.cat(logits)

    @contextlib.contextmanager
    def _shared_prefix_attention(self) -> Iterator[None]:
        """Route the decoder's attention to the shared-prefix function for the decode loop."""
        config = _text_config(self.model)
        previous = config._attn_implementation
        config._attn_implementation = SHARED_PREFIX_ATTENTION
        try:
            yield
        finally:
            config._attn_implementation = previous

    def _engine_batch(self, batch: list[_Prompt], params: SamplingParams) -> list[list[Completion]]:
        k, steps = params.k, params.max_new_tokens
        prefix_keys, prefix_values, mask, first_logits = self._prefill(batch)
        state = SharedPrefixState.allocate(prefix_keys, prefix_values, mask, k, steps)
        prompt_len = mask.sum(-1).repeat_interleave(k)  # real prompt tokens per row
        uniforms = self._uniforms(batch, params)
        eos = torch.tensor(self.eos_ids, device=self.device)
        decoder = self.model.get_decoder()
        head = self.model.get_output_embeddings()

        total_rows = len(batch) * k
        tokens = torch.full((total_rows, steps), self.pad_id, dtype=torch.long, device=self.device)
        lengths = torch.full((total_rows,), steps, dtype=torch.long, device=self.device)
        finished = torch.zeros(total_rows, dtype=torch.bool, device=self.device)
        live_prompts = torch.arange(len(batch), device=self.device)
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
                    live_prompts, live_rows = live_prompts[keep], live_rows[row_keep]
                    current, row_done = current[row_keep], row_done[row_keep]
                state.set_step(step)
                positions = (prompt_len[live_rows] + step).unsqueeze(-1)
                logits = _decode_step(decoder, head, current.unsqueeze(-1), positions, state)
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
        """`model.generate` with num_return_sequences=k: any architecture, batch-seeded RNG."""
        ids, mask = self._pad_left(batch)
        extra = self._image_inputs(batch)
        sampling: dict[str, Any] = {"do_sample": False}
        if not params.greedy:
            sampling = {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k or None,
            }
        # One seed per batch, from its keys: reproducible for the same batches only.
        torch.manual_seed(key_seed(params.seed, "\x00".join(p.key for p in batch)) % 2**63)
        # Greedy samples are identical: generate one and repeat it (generate refuses k > 1).
        returns = 1 if params.greedy else params.k
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=returns,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            **sampling,
            **extra,
        )
        new = out[:, ids.shape[1] :].repeat_interleave(params.k // returns, dim=0)
        is_eos = torch.isin(new, torch.tensor(self.eos_ids, device=new.device))
        has_eos = is_eos.any(-1)
        first_eos = is_eos.int().argmax(-1)
        lengths = torch.where(has_eos, first_eos + 1, torch.full_like(first_eos, new.shape[1]))
        # generate stops when every row ended: rows are padded after their EOS; count real tokens.
        return self._completions(new, lengths, has_eos, len(batch), params.k)


def _decode_step(
    decoder: torch.nn.Module,
    head: torch.nn.Module,
    input_ids: torch.Tensor,
    positions: torch.Tensor,
    state: SharedPrefixState,
) -> torch.Tensor:
    """One decode step through the model's own modules: next-token logits ``[rows, vocab]``."""
    hidden = decoder(
        input_ids=input_ids,
        position_ids=positions,
        attention_mask={"full_attention": state, "sliding_attention": state},
        use_cache=False,
    ).last_hidden_state
    return head(hidden[:, -1]).float()


def flops_per_token(model: torch.nn.Module, context: float) -> float:
    """Forward FLOPs of one token of the text decoder at a given attention context length.

    2 x (decoder matmul parameters + LM head) + attention scores and weighted values
    (2 x 2 x layers x heads x head_dim x context). Embedding lookups are free.
    """
    text = _text_config(model)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    decoder = model.get_decoder()
    matmul_params = sum(
        m.weight.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear)
    )
    head = model.get_output_embeddings().weight.numel()
    attention = 4 * text.num_hidden_layers * heads * head_dim * context
    return 2 * (matmul_params + head) + attention
