"""Fixtures several test modules share."""

from __future__ import annotations

from pathlib import Path

import pytest


def save_tiny_text(path: Path, **sizes: int) -> Path:
    """A random char-level tiny Qwen2 of `sizes`, saved like any HF checkpoint at `path`."""
    from gengap.models.tiny import build_tiny

    model, tokenizer = build_tiny("text", seed=0, **sizes)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smallest tiny text model (one layer, width 32): for tests of training mechanics."""
    return save_tiny_text(tmp_path_factory.mktemp("tiny"), hidden_size=32,
                          intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=2)
