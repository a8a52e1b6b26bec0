"""No network at run time: commands run with every socket connection refused and logged.

gengap sets the hub libraries' offline switches itself (`gengap/__init__.py`), so the test
clears them from the environment first: what is checked is gengap's own behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = '''
import os, socket
_LOG = os.environ["GENGAP_TEST_NET_LOG"]
def _refuse(*args, **kwargs):
    with open(_LOG, "a") as f:
        f.write(repr(args[1:] if args else kwargs) + "\\n")
    raise OSError(101, "Network is unreachable (blocked by the test)")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_")) and k != "PYTHONPATH"}
    src = Path(__file__).resolve().parents[1] / "src"
    env.update(PYTHONPATH=f"{site}{os.pathsep}{src}", OMP_NUM_THREADS="1",
               GENGAP_TEST_NET_LOG=str(site / "net.log"),
               GENGAP_CACHE=str(tmp_path_factory.mktemp("cache")))
    return env


def gengap(env: dict[str, str], *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gengap.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_commands_never_touch_the_network(offline_env, tmp_path: Path) -> None:
    task = str(Path(__file__).parent / "fixtures" / "addition_task.py") + ":AdditionTask"
    log = Path(offline_env["GENGAP_TEST_NET_LOG"])
    steps = [
        ("eval", "--model", "tiny", "--task", task, "--out", tmp_path / "eval", "--n", "8",
         "--splits", "test"),
        ("difficulty", "--model", "tiny", "--task", task, "--n", "16", "--k", "2",
         "--out", tmp_path / "d", "--no-progress"),
        ("curate", "--difficulty", tmp_path / "d", "--variant", "all", "--out",
         tmp_path / "sft.jsonl"),
        ("train", "sft", "--config", "sft-tiny", "--model", "tiny", "--data",
         tmp_path / "sft.jsonl", "--out", tmp_path / "sft", "steps=2", "batch_size=4",
         "save_every=2", "eval_n=4", "grad_norm_every=0"),
        ("train", "grpo", "--config", "grpo-tiny", "--model", "tiny", "--task", task,
         "--out", tmp_path / "grpo", "steps=1", "batch_size=2", "num_generations=2",
         "save_every=1", "eval_n=4"),
    ]
    for args in steps:
        result = gengap(offline_env, *args)
        assert result.returncode == 0, (args[0], result.stderr[-2000:])
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"network connections attempted:\n{attempts}"
    assert json.loads((tmp_path / "grpo" / "budget.json").read_text())["steps_done"] == 1
