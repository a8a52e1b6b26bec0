"""verl round trip: the export read by verl's own code, rewards and GAE equal gengap's.

Runs in verl's own environment (it pins an older transformers): build it with
`scripts/verl_env.sh` (default `.venv-verl` in the checkout, or GENGAP_VERL_VENV). Without
it the round trip is skipped; the export itself is tested here either way.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from gengap.export.verl import export_verl, verl_prompt
from gengap.tasks.registry import get_task
from gengap.train.ppo import gae, masked_whiten

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("GENGAP_VERL_VENV", ROOT / ".venv-verl"))
VERL_PYTHON = VENV / "bin" / "python"
BUILT = VENV / ".gengap-verl-ok"  # scripts/verl_env.sh's stamp: a finished build


@pytest.fixture(scope="module")
def task():
    return get_task("generalpoints", modality="text", prompt_style="compact")


def test_export_rows_and_files(tmp_path: Path, task) -> None:
    info = export_verl(task, tmp_path / "verl", n=6, test_n=3)
    out = tmp_path / "verl"
    assert {p.name for p in out.iterdir()} >= {"train.parquet", "test-id.parquet",
                                               "gengap_reward.py", "run_ppo.sh",
                                               "run_grpo.sh", "export.json"}
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert len(rows) == 6 and info["splits"]["train"]["rows"] == 6
    row = rows[0]
    sample = task.sample("train", 0, 0)
    assert row["data_source"] == "gengap/generalpoints"
    assert row["reward_model"] == {"style": "rule", "ground_truth": sample.answer}
    assert row["prompt"] == verl_prompt(task.messages(sample))
    assert json.loads(row["extra_info"]["row"])["id"] == sample.id
    assert "algorithm.adv_estimator=gae" in (out / "run_ppo.sh").read_text()
    assert "algorithm.gamma=0.9" in (out / "run_ppo.sh").read_text()
    # the reward module, loaded as verl loads it (a file path), gives gengap's verdicts
    import importlib.util

    spec = importlib.util.spec_from_file_location("gengap_reward", out / "gengap_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for text in (sample.answer, "1+1", task.target(sample)):
        got = module.compute_score(row["data_source"], text, sample.answer, row["extra_info"])
        assert got["score"] == task.verify(sample, text).reward
    image = get_task("generalpoints", modality="image")
    assert verl_prompt(image.messages(image.sample("train", 0, 0)))[0]["content"].startswith(
        "<image>")


@pytest.mark.skipif(not BUILT.is_file(),
                    reason="verl's environment is not built (scripts/verl_env.sh)")
def test_verl_round_trip(tmp_path: Path, task) -> None:
    from gengap.models.tiny import build_tiny

    out = tmp_path / "verl"
    export_verl(task, out, n=4, test_n=2)
    _, tokenizer = build_tiny("text", seed=0, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    tokenizer.save_pretrained(tmp_path / "tok")
    samples = [task.sample("train", i, 0) for i in range(4)]
    completions = [(0, samples[0].answer), (1, "1+1"), (2, "((("), (3, task.target(samples[3]))]
    expected = [task.verify(samples[i], text).reward for i, text in completions]
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, -1.0, 2.0]])
    values = torch.tensor([[0.1, 0.3, 0.2, 0.9], [0.0, 0.4, 0.6, 0.1]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    cases = {"rewards": [{"row": i, "completion": text} for i, text in completions],
             "gae": {"rewards": rewards.tolist(), "values": values.tolist(),
                     "mask": mask.tolist(), "gamma": 0.9, "lam": 0.95}}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(VERL_PYTHON), str(ROOT / "tests" / "fixtures" / "verl_check.py"),
                          str(out), str(tmp_path / "tok"), str(tmp_path / "cases.json"),
                          str(tmp_path / "found.json")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads((tmp_path / "found.json").read_text())
    assert found["dataset_len"] == 4
    # the chat prompt verl hands its rollout is the task's (tokenized by verl when it is old)
    assert found["raw_prompt"] == verl_prompt(task.messages(samples[0]))
    assert found["input_ids_len"] is None or found["input_ids_len"] > 0
    assert found["scores"] == pytest.approx(expected)
    ours, returns = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    torch.testing.assert_close(torch.tensor(found["returns"]), returns, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(found["advantages"]), masked_whiten(ours, mask),
                               atol=1e-4, rtol=0)
