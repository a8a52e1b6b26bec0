"""The thin layer over reasoning-gym: import it lazily, check names and options, make items.

reasoning-gym (`pip install gengap[reasoning]`) is an optional extra: nothing here imports it
until a task is built, and a missing install is an `InputError` naming the extra.

What its source says (0.1.25) and what this module relies on:

- `reasoning_gym.factory.DATASETS[name] = (dataset class, config dataclass)`;
  `create_dataset(name, size=, seed=, **config)` builds the config, runs its `validate()`
  (plain ``assert`` statements) and returns a `ProceduralDataset`;
- item ``i`` is ``{"question", "answer", "metadata"}`` drawn from ``random.Random(seed + i)``:
  deterministic, but seed s item i+1 equals seed s+1 item i, so every split gets its own
  hashed 32-bit seed (`split_seed`) rather than consecutive ones;
- `dataset.score_answer(answer, entry) -> float` in [0, 1], with partial credit for wrong
  answers (the base scorer: gold a substring of the prediction scores len(gold)/len(pred)).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from typing import Any

from gengap.errors import InputError

INSTALL_HINT = "pip install 'gengap[reasoning]' (or: pip install reasoning-gym)"
RESERVED_KEYS = ("seed", "size")  # gengap sets these per split


def rg() -> Any:
    """The `reasoning_gym` module, or an `InputError` telling the user how to install it."""
    try:
        import reasoning_gym
    except ImportError as exc:
        raise InputError(f"cannot import reasoning_gym ({exc}): the reasoning-gym task needs "
                         "the optional extra", hint=INSTALL_HINT) from None
    return reasoning_gym


def dataset_names() -> list[str]:
    """Every dataset name reasoning-gym registers (106 in 0.1.25)."""
    rg()
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def check_name(name: str) -> None:
    """An `InputError` with a did-you-mean unless `name` is a reasoning-gym dataset."""
    names = dataset_names()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3)
    raise InputError(
        f"unknown reasoning-gym dataset {name!r}", where="task option dataset",
        hint=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
        + f"{len(names)} datasets, e.g. {', '.join(names[:6])}, ... "
        "(python -c 'import reasoning_gym.factory as f; print(sorted(f.DATASETS))')")


def config_fields(name: str) -> list[str]:
    """The option names of dataset `name`'s config dataclass (seed and size left out)."""
    from reasoning_gym.factory import DATASETS

    return [f.name for f in dataclasses.fields(DATASETS[name][1])
            if f.name not in RESERVED_KEYS]


def config_defaults(name: str) -> dict[str, Any]:
    """reasoning-gym's default value of every option of dataset `name`."""
    from reasoning_gym.factory import DATASETS

    out = {}
    for f in dataclasses.fields(DATASETS[name][1]):
        if f.name in RESERVED_KEYS:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def check_options(name: str, options: dict[str, Any], where: str) -> None:
    """Unknown keys (did-you-mean) and reasoning-gym's own `validate()` as `InputError`s."""
    keys = config_fields(name)
    for key in options:
        if key in RESERVED_KEYS:
            raise InputError(f"{key!r} cannot be set in {where}: gengap sets it per split",
                             where=f"task option {where}",
                             hint="use the task options seed and <split>_size instead")
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            raise InputError(f"dataset {name!r} has no option {key!r}",
                             where=f"task option {where}",
                             hint=(f"did you mean {close[0]!r}? " if close else "")
                             + f"its options: {', '.join(keys)}")
    make(name, options, seed=0, size=1, where=where)


def make(name: str, options: dict[str, Any], *, seed: int, size: int, where: str) -> Any:
    """`reasoning_gym.create_dataset` with its assertion and type errors as `InputError`s."""
    rg()
    from reasoning_gym.factory import create_dataset

    try:
        return create_dataset(name, seed=seed, size=size, **options)
    except (AssertionError, TypeError, ValueError) as exc:
        raise InputError(f"reasoning-gym refused {where} {options!r} for {name!r}: "
                         f"{exc or type(exc).__name__}", where=f"task option {where}",
                         hint=f"its options and defaults: {config_defaults(name)}") from None


def split_seed(seed: int, split: str, generator: str) -> int:
    """A 32-bit seed for one split and generator (hashed: reasoning-gym adds the index)."""
    digest = hashlib.blake2b(f"{seed}/{split}/{generator}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def json_safe(value: Any) -> Any:
    """`value` through a JSON round trip (tuples become lists, odd objects strings)."""
    return json.loads(json.dumps(value, default=str))


def version() -> str:
    """The installed reasoning-gym version (its `__version__` attribute is stale)."""
    from importlib import metadata

    try:
        return metadata.version("reasoning-gym")
    except metadata.PackageNotFoundError:
        return "unknown"
