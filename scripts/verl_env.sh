#!/usr/bin/env bash
# Build (once) a separate virtual environment with verl, for gengap's verl round-trip test:
# the exported Parquet read by verl's RLHFDataset, the exported reward module loaded by its
# get_custom_reward_fn, and its compute_gae_advantage_return against gengap's GAE.
#
# Why a separate environment: verl 0.9 pins an older transformers (< 5.11) than the main
# environment's, and pulls Ray. torch is held at the local CPU build (torch==2.13.0, a
# constraint): without it pip fetches a multi-GB CUDA torch. Nothing here needs a GPU or a
# rollout engine: only verl's dataset, reward loading and advantage code are used.
#
# Usage: scripts/verl_env.sh [VENV_DIR]   (default .venv-verl; PYTHON=... picks the interpreter)
# Idempotent: a stamp file (holding the build's seconds) marks a finished build; a failed
# build leaves no stamp and is retried.
set -euo pipefail

VENV="${1:-.venv-verl}"
STAMP="$VENV/.gengap-verl-ok"
VERL_SPEC="${GENGAP_VERL_SPEC:-verl==0.9.1}"
source "$(dirname "$0")/lib/side_env.sh"

side_env_begin "$VENV" "$STAMP"
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==2.13.0" > "$CONSTRAINTS"
pipq install --quiet -c "$CONSTRAINTS" "torch==2.13.0" "$VERL_SPEC" pyarrow pandas pillow \
    pytest
# gengap itself without its dependencies: the exported reward module imports its task
# packages on verl's workers; its training stack would fight verl's pins.
pipq install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import gengap.tasks.registry  # noqa: F401
from verl.trainer.ppo import core_algos  # noqa: F401
from verl.trainer.ppo.reward import get_custom_reward_fn  # noqa: F401
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: F401
PY
side_env_end "$STAMP"
