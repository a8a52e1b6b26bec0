"""What every run records next to its results: config, seed, versions, git commit, date."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("gengap", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "vllm")


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@cache
def git_commit() -> str | None:
    """The commit of the gengap checkout in use (with '-dirty' if it has local changes)."""
    root = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The provenance block written beside every result."""
    return {
        "config": config,
        "seed": seed,
        "versions": versions(),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "platform": platform.platform(),
    }
