"""Name -> task class, and the one way every command builds a task from its options.

A task is found by

- a built-in name (`BUILTIN`: one line per task package, imported only when used);
- an installed plugin's entry point in the group ``gengap.tasks``;
- ``package.module:Class`` or ``path/to/file.py:Class`` for a task of the user's own
  (imported with importlib; nothing is evaluated).

Options reach the task's config dataclass through `gengap.config.load_recipe`, so a YAML value,
a keyword and a CLI word ``key=value`` are typed, checked and reported the same way.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from gengap.errors import InputError
from gengap.tasks.base import Task

BUILTIN: dict[str, str] = {
    "generalpoints": "gengap.tasks.generalpoints:GeneralPointsTask",
    "dataset": "gengap.tasks.dataset:DatasetTask",
    "reasoning-gym": "gengap.tasks.reasoning:ReasoningGymTask",
    "classification": "gengap.tasks.classification:ClassificationTask",
    "grounding": "gengap.tasks.grounding:GroundingTask",
    "navigation": "gengap.tasks.navigation:NavigationTask",
}
ENTRY_POINT_GROUP = "gengap.tasks"


def _entry_points() -> dict[str, Any]:
    try:
        return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken plugin must not break the built-in tasks
        return {}


def known_tasks() -> list[str]:
    """Built-in and plugin task names."""
    return [*BUILTIN, *(n for n in _entry_points() if n not in BUILTIN)]


def _import_target(spec: str) -> Any:
    """`module:attr` or `file.py:attr` -> the attribute (an `InputError` if it is not there)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise InputError(f"{spec!r} is not of the form module:Class")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise InputError(f"no such file: {path}", where=spec,
                                 hint="give the path of your task's .py file, then :Class")
            name = f"gengap_user_task_{abs(hash(str(path)))}"
            module = sys.modules.get(name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                loader_spec.loader.exec_module(module)  # runs the user's own task file
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import {module_name!r}: {exc}", where=spec,
                         hint="install the package (or its extra), or check PYTHONPATH") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise InputError(f"{module_name!r} has no attribute {attr!r}", where=spec,
                         hint=f"names it defines: {', '.join(names[:12])}") from None


def task_class(name: str) -> type:
    """The class behind a task name (built-in, plugin, or module:Class)."""
    if name in BUILTIN:
        cls = _import_target(BUILTIN[name])
    elif (ep := _entry_points().get(name)) is not None:
        try:
            cls = ep.load()
        except Exception as exc:
            raise InputError(f"the plugin task {name!r} failed to load: {exc}") from None
    elif ":" in name:
        cls = _import_target(name)
    else:
        raise InputError(f"unknown task {name!r}",
                         hint=f"known tasks: {', '.join(known_tasks())}; or module:Class "
                              "for a task of your own")
    missing = [m for m in ("Config", "splits", "sample", "messages", "verify", "target")
               if not hasattr(cls, m)]
    if not isinstance(cls, type) or missing:
        raise InputError(f"{name!r} is not a gengap task class"
                         + (f" (missing {', '.join(missing)})" if missing else ""),
                         hint="subclass gengap.tasks.base.TaskBase")
    return cls


def option_docs(cls: type) -> list[tuple[str, str, Any]]:
    """(option, help, default) for every field of a task's config dataclass."""
    out = []
    for f in dataclasses.fields(cls.Config):
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else "(required)")
        out.append((f.name, f.metadata.get("help", ""), default))
    return out


def build_task(
    name: str,
    options: Mapping[str, Any] | None = None,
    words: Sequence[str] = (),
    *,
    tiny: bool = False,
) -> Task:
    """Build task `name` from typed `options` (YAML, keywords) and raw ``key=value`` `words`.

    `tiny=True` fills in the task's `tiny_options` (e.g. compact prompts) that the user left
    unset, for the embedded tiny model.
    """
    from gengap.config import load_recipe, parse_overrides

    cls = task_class(name)
    options = dict(options or {})
    raw = parse_overrides(words)
    if tiny:
        for key, value in getattr(cls, "tiny_options", {}).items():
            if key not in options and key not in raw:
                options[key] = value
    try:
        # As `base`, not as keywords: an option may be called like a parameter of
        # `load_recipe` (the dataset task's `path`). None means unset, as for keywords.
        config = load_recipe(cls.Config, None, raw, base_label="task options",
                             base={k: v for k, v in options.items() if v is not None})
    except InputError as exc:
        exc.where = f"task {name!r} option" + (f" ({exc.where})" if exc.where else "")
        if exc.hint is None or exc.hint.startswith("fix that value ("):
            exc.hint = f"`gengap tasks --task {name}` lists the task's options"
        raise
    try:
        task = cls(config)
    except TypeError as exc:  # a task class that does not take a config
        raise InputError(f"cannot build task {name!r}: {exc}") from None
    task.spec = name  # what rebuilds it (a user task's `file.py:Class`, not its class name)
    return task


def get_task(name: str, **options: Any) -> Task:
    """`build_task(name, options)`: the short form for code and tests."""
    return build_task(name, options)
