# One-command set-up for CPU machines: `make demo` and `make test` create .venv when missing.
# CPU machines get the small CPU build of torch; on a GPU machine run
# `make setup TORCH_SPEC=torch` (or install your CUDA build first) before anything else.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
DEMO_OUT ?= out/demo

.PHONY: setup test test-fast demo lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-installs when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# vLLM's CPU build pins an older transformers, so its backend is tested from its own venv
# (about 75 s to build, once). A failed build leaves no stamp: its test then skips, saying why.
$(VLLM_VENV)/.gengap-vllm-ok: scripts/vllm_env.sh
	PYTHON=$(PYTHON) bash scripts/vllm_env.sh $(VLLM_VENV) || echo "vLLM env not built: its test will skip"

test: setup $(VLLM_VENV)/.gengap-vllm-ok
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(BIN)/gengap tasks
	$(BIN)/gengap data generalpoints --split test-ood-rule --n 8 --seed 0 --prompt-style compact --out $(DEMO_OUT)/test-ood-rule.jsonl
	$(BIN)/gengap data generalpoints --split test-ood-visual --n 4 --seed 0 --modality image --image-size 256 --out $(DEMO_OUT)/test-ood-visual.jsonl
	$(BIN)/gengap score --task generalpoints --input examples/completions.jsonl --output $(DEMO_OUT)/scored.jsonl
	@echo "demo outputs in $(DEMO_OUT)/ (card images in $(DEMO_OUT)/test-ood-visual_images/)"

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/generalpoints.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
