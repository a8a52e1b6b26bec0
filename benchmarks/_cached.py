"""The cold-started GeneralPoints text model the benchmarks time (cached, or --model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cached_text_model(model: Path | None) -> tuple[Any, Path, Any]:
    """(task, model directory, `load_model` result): `model`, else the cached cold start."""
    from gengap.coldstart import cached
    from gengap.models import load_model
    from gengap.tasks.registry import build_task

    task = build_task("generalpoints", {"modality": "text", "prompt_style": "compact"},
                      tiny=True)
    model_dir = model or cached(task)
    if model_dir is None:
        raise SystemExit("no cached cold start: run `gengap coldstart --task generalpoints`")
    return task, model_dir, load_model(str(model_dir), task=task, device="cpu")
