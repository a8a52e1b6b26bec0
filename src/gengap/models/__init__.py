"""Models: the embedded tiny default (built from a config) and any HF checkpoint.

    load_model(spec, *, task=None, lora=None, device="auto") -> LoadedModel
    build_tiny(modality, **config_overrides) -> (model, processor)
"""

from gengap.models.loading import (
    LoadedModel,
    apply_lora,
    describe,
    load_model,
    resolve_device,
)
from gengap.models.tiny import build_tiny, count_parameters

__all__ = ["LoadedModel", "apply_lora", "build_tiny", "count_parameters", "describe",
           "load_model", "resolve_device"]
