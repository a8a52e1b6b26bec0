"""Backend-neutral sampling types and the per-prompt random streams every backend shares.

Determinism contract (all backends): the samples of a prompt are a function of
``(params, key of the prompt, sample index)`` only. A prompt's key is the caller's `keys[i]`
(e.g. the sample id) or, without keys, the rendered prompt text plus an image digest. So
``generate`` on a subset of prompts gives the same completions for those prompts as on the whole
list, whatever the batch composition, chunking or sharding: the resumable difficulty estimator
relies on it. The HF backend (both its strategies, the shared-prefix engine and `generate`)
draws one uniform number per generated token from a counter-based stream seeded by
``(seed, key, sample index)`` (`gengap.rollout.draw`); the vLLM backend seeds each request from
the same key. The only residue of batch composition is floating-point noise in the logits
(padding and matrix shapes), which can flip a draw only when it lands within ~1e-6 of a
probability boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from gengap.errors import InputError

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: gengap's own, translated by each backend.

    k:              samples per prompt.
    temperature:    0 means greedy decoding (all k samples are then identical).
    top_p:          nucleus sampling mass (1.0 = off).
    top_k:          keep the k most likely tokens (0 = off).
    max_new_tokens: generation budget per sample (the EOS token counts towards it).
    seed:           base seed; each prompt's stream is derived from it and the prompt's key.
    """

    k: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.k >= 1, "k must be >= 1"),
            (self.temperature >= 0, "temperature must be >= 0 (0 = greedy)"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be >= 0 (0 = off)"),
            (self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message, where="sampling parameters",
                                 hint="fix the option named in the message")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax."""
        return self.temperature == 0


@dataclass
class Completion:
    """One sample: its text (special tokens removed), tokens generated, and whether it hit EOS.

    `num_tokens` counts every generated token including the EOS token that ended it.
    """

    text: str
    num_tokens: int
    finished: bool


@dataclass
class BatchResult:
    """Completions per prompt (k each, in sample-index order) and the cost of producing them."""

    completions: list[list[Completion]]
    seconds: float
    prompt_tokens: int
    generated_tokens: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """Total completions in the batch."""
        return sum(len(c) for c in self.completions)


@runtime_checkable
class Sampler(Protocol):
    """Anything that samples k completions for each of many chat prompts."""

    def generate(
        self,
        prompts: list[Messages],
        images: Sequence[PromptImages] | None,
        params: SamplingParams,
        progress: bool = False,
        keys: Sequence[str] | None = None,
    ) -> BatchResult:
        """Sample `params.k` completions per prompt (see the module doc for determinism)."""
        ...


PromptImages = Sequence[Image.Image] | Image.Image | None
"""A prompt's images: a list (in the order of its image parts), one image, or None."""


def check_inputs(
    prompts: Sequence[Messages],
    images: Sequence[PromptImages] | None,
    keys: Sequence[str] | None,
) -> list[list[Image.Image]]:
    """Validate `generate` arguments; return each prompt's images as a list (maybe empty)."""
    if images is None:
        images = [None] * len(prompts)
    if len(images) != len(prompts):
        raise InputError(
            f"{len(images)} image lists for {len(prompts)} prompts",
            where="sampler",
            hint="pass one list of images (or None) per prompt",
        )
    if keys is not None and len(keys) != len(prompts):
        raise InputError(f"{len(keys)} keys for {len(prompts)} prompts", where="sampler")
    out = []
    for item in images:
        if item is None:
            out.append([])
        elif isinstance(item, Image.Image):
            out.append([item])
        else:
            out.append(list(item))
    return out


def _image_digest(images: Sequence[Image.Image]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for image in images:
        digest.update(image.tobytes())
        digest.update(f"{image.mode}{image.size}".encode())
    return digest.hexdigest()


def prompt_keys(
    rendered: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    keys: Sequence[str] | None,
) -> list[str]:
    """The key that seeds each prompt's random stream.

    Given `keys` win. Otherwise the rendered prompt text (plus a digest of its images); repeats
    of the same prompt within one call get an occurrence suffix so they still differ.
    """
    if keys is not None:
        return [str(k) for k in keys]
    seen: dict[str, int] = {}
    out = []
    for text, imgs in zip(rendered, images, strict=True):
        base = f"{text}\x00{_image_digest(imgs)}" if imgs else text
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(base if count == 0 else f"{base}\x00#{count}")
    return out


def key_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one prompt, from the base seed and the prompt's key (stable)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_uniforms(seed: int, key: str, k: int, steps: int) -> np.ndarray:
    """Uniform draws in [0, 1) for k samples x `steps` tokens of one prompt, shape (k, steps).

    Sample j's stream comes from NumPy's PCG64 seeded with (prompt seed, j), so it does not depend
    on k, on the other prompts or on the batch the prompt lands in. Token t of sample j always
    uses draw [j, t] (prefix-stable: a larger `steps` only appends draws).
    """
    base = key_seed(seed, key)
    words = [base & 0xFFFFFFFF, base >> 32]
    draws = np.stack([np.random.default_rng([*words, j]).random(steps) for j in range(k)])
    # Keep draws strictly below 1 after the cast to float32 (the inverse-CDF lookup needs u < 1).
    return np.minimum(draws, 1 - 2**-24).astype(np.float32)
