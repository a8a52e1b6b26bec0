"""Models: the embedded tiny default (built from a config) and any HF checkpoint.

    load_model(spec, *, task=None, lora=None, device="auto", dtype="auto") -> LoadedModel
    build_tiny(modality, **config_overrides) -> (model, processor)
    build_family(name) -> (model, processor)   # tiny random models of every studied family
"""

from gengap.models.families import FAMILIES, build_family, save_family
from gengap.models.loading import (
    LoadedModel,
    apply_lora,
    describe,
    is_adapter_dir,
    load_model,
    resolve_device,
    resolve_dtype,
)
from gengap.models.tiny import build_tiny, count_parameters

__all__ = ["FAMILIES", "LoadedModel", "apply_lora", "build_family", "build_tiny",
           "count_parameters", "describe", "is_adapter_dir", "load_model", "resolve_device",
           "resolve_dtype", "save_family"]
