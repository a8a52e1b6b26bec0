# One-command set-up for CPU machines: `make demo` and `make test` create .venv when missing.
# CPU machines get the small CPU build of torch; on a GPU machine run
# `make setup TORCH_SPEC=torch` (or install your CUDA build first) before anything else.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
VERL_VENV ?= .venv-verl
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
PRESET ?= tiny-gp-text
DEMO_OUT ?= out/demo$(if $(QUICK),-quick)

.PHONY: setup test test-fast test-verl demo lint bench clean

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
$(VLLM_VENV)/.gengap-vllm-ok: scripts/vllm_env.sh scripts/lib/side_env.sh
	PYTHON=$(PYTHON) bash scripts/vllm_env.sh $(VLLM_VENV) || echo "vLLM env not built: its test will skip"

test: setup $(VLLM_VENV)/.gengap-vllm-ok
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# verl's own venv (verl 0.9.1 pins transformers < 5.11 and pulls Ray; torch held at the CPU
# build): ~1.9 GB and 19 min to build on a loaded 2-core machine, so it is not part of
# `make test` (whose round-trip test skips without it). `make test-verl` builds it and runs it.
$(VERL_VENV)/.gengap-verl-ok: scripts/verl_env.sh scripts/lib/side_env.sh
	PYTHON=$(PYTHON) bash scripts/verl_env.sh $(VERL_VENV)

test-verl: setup $(VERL_VENV)/.gengap-verl-ok
	GENGAP_VERL_VENV=$(VERL_VENV) $(BIN)/python -m pytest -q tests/test_rl_verl.py

# The main job: the whole study in miniature (QUICK=1: the preset's short form; REPLICATE=1:
# then the same preset from other starts, and whether each claim's verdict held).
demo: setup
	$(BIN)/gengap reproduce --preset $(PRESET) --out $(DEMO_OUT) $(if $(QUICK),--quick) \
		$(if $(REPLICATE),--replicate)
	@echo "report: $(DEMO_OUT)/report.md"

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup $(VLLM_VENV)/.gengap-vllm-ok
	$(BIN)/python benchmarks/generalpoints.py
	$(BIN)/gengap coldstart --task generalpoints >/dev/null
	$(BIN)/python benchmarks/rollout.py
	$(BIN)/python benchmarks/revision_batching.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
