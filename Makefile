# Set-up and the two README commands. `make demo` runs the main job on the embedded
# default (MiniLM + TREC-6); `make test` runs the whole test suite. Both create .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: setup test demo lint bench bench-venvs clean

setup: $(VENV)/.installed

# torch first and pinned: an unpinned torch would pull several GB of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/adapterkit demo --output runs/demo

# The speed benchmark (docs/benchmarks.md). peft and AdapterHub `adapters` are peers we
# compare against, never runtime dependencies: each gets its own venv (adapters pins
# transformers 4.57). torch goes in first so pip keeps the CPU build.
# `make bench BENCH_ARGS=--quick` runs the tiny smoke version in about a minute.
bench: setup bench-venvs
	$(PY) -m benchmarks.speed $(BENCH_ARGS)

bench-venvs: .venv-peft/.installed .venv-adapters/.installed

.venv-peft/.installed:
	$(PYTHON) -m venv .venv-peft
	.venv-peft/bin/pip install --quiet torch==2.13.0
	.venv-peft/bin/pip install --quiet "transformers>=5,<6" "peft==0.21.*"
	touch $@

.venv-adapters/.installed:
	$(PYTHON) -m venv .venv-adapters
	.venv-adapters/bin/pip install --quiet torch==2.13.0
	.venv-adapters/bin/pip install --quiet "transformers==4.57.*" "adapters==1.3.*" "accelerate>=0.26,<2"  # accelerate: Trainer (benchmarks.time_to_quality)
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests benchmarks examples  # Python only: the README keeps its aligned comments

clean:
	rm -rf $(VENV) .pytest_cache
