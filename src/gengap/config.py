"""Recipes: YAML files that map one-to-one onto a command, plus `key=value` overrides.

A recipe class is a plain dataclass (e.g. `gengap.train.sft.SFTRecipe`): its fields are the
recipe's keys, their type hints say what a value may be, and its `validate()` checks values
that depend on each other. `load_recipe` resolves, in increasing precedence,

    dataclass defaults < the YAML file < explicit keyword values (CLI options) < key=value

and reports every problem as an `InputError` that names the key, where it came from, and the
valid keys or values. `save_recipe` writes the resolved recipe back as YAML, which
`load_recipe` reads again, so a run directory's `recipe.yaml` reruns the run.

Overrides: ``lr=1e-5``, ``lora=true``, ``report_to=tensorboard,wandb``, ``eval_splits=[a, b]``,
``max_length=null``; a dotted key sets one entry of a dict field (``task_options.prompt_style=
compact``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from gengap.errors import InputError

R = TypeVar("R")
_NONE_WORDS = ("null", "none", "~", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def recipe_keys(cls: type) -> list[str]:
    """The keys a recipe class accepts, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """Split ``key=value`` words into a dict of raw strings (typed later, per field)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--").replace("-", "_")
        if not sep or not key:
            raise InputError(
                f"override {item!r} is not of the form key=value",
                hint="e.g. learning_rate=1e-5 or task_options.prompt_style=compact",
            )
        out[key] = value.strip()
    return out


# Shipped inside the package (a checkout's top-level `configs/` links here).
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def resolve_recipe_path(path: str | Path) -> Path:
    """A recipe file, or the bare name of a shipped one (`sft-tiny` -> configs/train/...)."""
    given = Path(path)
    shipped = CONFIGS_DIR / "train" / f"{given.name.removesuffix('.yaml')}.yaml"
    if not given.exists() and given.parent == Path(".") and shipped.is_file():
        return shipped
    return given


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file (empty file = empty mapping)."""
    path = Path(path)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in (CONFIGS_DIR / "train").glob("*.yaml")))
        raise InputError(f"no such recipe file: {path}",
                         hint=f"check the --config path, or name a shipped recipe: {shipped}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", where=str(path),
                         hint="fix the YAML syntax at the line and column shown") from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", where=str(path), hint="save it as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"a recipe must be a mapping of key: value, got {type(data).__name__}",
                         where=str(path), hint="write one `key: value` per line")
    return data


def load_recipe(
    cls: type[R],
    path: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    base: Mapping[str, Any] | None = None,
    base_label: str = "preset",
    **explicit: Any,
) -> R:
    """Build a recipe of class `cls` from defaults, a YAML file, explicit values and overrides.

    `base` holds values already read from a file (e.g. a preset), reported as `base_label`.
    `explicit` values that are None are ignored (a CLI option the user did not give).
    `overrides` are ``key=value`` strings (or an already parsed mapping of raw values).
    Calls `validate()` on the result if the class defines it.
    """
    keys = recipe_keys(cls)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(key: str, value: Any, where: str, raw: bool) -> None:
        field, _, entry = key.partition(".")
        if field not in keys:
            import difflib

            close = difflib.get_close_matches(field, keys, n=1)
            raise InputError(
                f"unknown key {field!r}", where=where,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"valid keys: {', '.join(keys)}",
            )
        if entry:  # one entry of a dict field
            if get_origin(_strip_optional(hints[field])) is not dict:
                raise InputError(f"{field!r} is not a mapping; {key!r} cannot be set",
                                 where=where)
            current = dict(values.get(field) or _default(cls, field) or {})
            current[entry] = yaml.safe_load(value) if raw and isinstance(value, str) else value
            values[field], sources[field] = current, where
            return
        try:
            values[field] = _coerce(value, hints[field], field, where, raw)
        except InputError as exc:
            exc.hint = exc.hint or (f"give {field} {_describe(_strip_optional(hints[field]))}"
                                    f" ({where})")
            raise
        sources[field] = where

    for key, value in (base or {}).items():
        put(str(key), value, base_label, raw=False)
    if path is not None:
        path = resolve_recipe_path(path)
        for key, value in read_yaml(path).items():
            put(str(key), value, f"recipe {path}", raw=False)
    for key, value in explicit.items():
        if value is not None:
            put(key, value, f"option --{key.replace('_', '-')}", raw=False)
    parsed = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    for key, value in parsed.items():
        put(key, value, f"override {key}={value}", raw=True)

    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in values and _default(cls, f.name) is _REQUIRED]
    if missing:
        raise InputError(
            f"missing required key(s): {', '.join(missing)}",
            hint="give them as options (e.g. --" + missing[0].replace("_", "-")
            + ") or in the recipe file",
        )
    recipe = cls(**values)
    validate = getattr(recipe, "validate", None)
    if callable(validate):
        try:
            validate()
        except InputError as exc:
            named = [f"{k} comes from {v}" for k, v in sources.items()
                     if re.search(rf"\b{re.escape(k)}\b", exc.message)]
            exc.hint = exc.hint or ("fix that value" + (f" ({'; '.join(named)})" if named
                                                         else " (a recipe key or key=value)"))
            raise
    return recipe


def recipe_dict(recipe: Any) -> dict[str, Any]:
    """The recipe as a plain dict (what `save_recipe` writes and run metadata records)."""
    return dataclasses.asdict(recipe)


def save_recipe(recipe: Any, path: str | Path) -> None:
    """Write the resolved recipe as YAML (readable again by `load_recipe`)."""
    from gengap.io import atomic_open

    with atomic_open(path) as f:
        yaml.safe_dump(recipe_dict(recipe), f, sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------------------------------------
# Types

_REQUIRED = object()


def _default(cls: type, name: str) -> Any:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _REQUIRED


def _strip_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _describe(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, get_args(hint)))
    name = getattr(hint, "__name__", None)
    return {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string"}.get(name or "", str(hint).replace("typing.", ""))


def _coerce(value: Any, hint: Any, key: str, where: str, raw: bool) -> Any:
    """`value` as the type `hint` says, or an `InputError` naming the key and the type."""
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    inner = _strip_optional(hint)
    if value is None or (raw and optional and str(value).strip().lower() in _NONE_WORDS):
        if optional:
            return None
        raise InputError(f"{key!r} cannot be empty", where=where,
                         hint=f"{key} must be {_describe(inner)}")

    def bad() -> InputError:
        return InputError(f"{key!r} must be {_describe(inner)}, got {value!r}", where=where)

    origin = get_origin(inner)
    if origin is Literal:
        choices = get_args(inner)
        if value not in choices:
            raise InputError(f"{key!r} must be one of {', '.join(map(str, choices))}, "
                             f"got {value!r}", where=where)
        return value
    if origin is list:
        (item_hint,) = get_args(inner) or (Any,)
        if raw and isinstance(value, str):
            text = value.strip()
            value = yaml.safe_load(text) if text.startswith("[") else (
                [v.strip() for v in text.split(",") if v.strip()])
        if not isinstance(value, list):
            raise bad()
        return [_coerce(v, item_hint, key, where, raw) for v in value]
    if origin is dict:
        if raw and isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise bad()
        return dict(value)
    if inner is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if raw and word in _TRUE_WORDS + _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise bad()
    if inner is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if raw:
            text = str(value).replace("_", "")
            if len(text) > 30:  # Python would parse 10**400; no setting of gengap needs it
                raise InputError(f"{key!r} is too large: {text[:20]}...", where=where)
            try:
                return int(text)
            except ValueError:
                raise bad() from None
        raise bad()
    if inner is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            number = float(value)
        else:
            # YAML 1.1 reads 1e-5 (no dot) as a string: accept number-like strings everywhere.
            try:
                number = float(str(value))
            except (ValueError, OverflowError):
                raise bad() from None
        if not math.isfinite(number):  # inf / nan train NaN models and write invalid JSON
            raise InputError(f"{key!r} must be a finite number, got {value!r}", where=where)
        return number
    if inner is str:
        if isinstance(value, str):
            return value
        if raw or (isinstance(value, int | float) and not isinstance(value, bool)):
            return str(value)  # e.g. `model: 7` or `report_to: 0`: a name that looks numeric
        raise bad()
    return value  # Any
