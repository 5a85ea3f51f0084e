# The two commands: `make run` and `make test`. Both build .venv from nothing when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# the Performance table's rows, each beside its anchor; the other bench/ scripts run by hand
BENCH_ROWS := bench/dispatch.py bench/timers.py bench/idle.py bench/http_ingest.py bench/audit_batch.py
CONFIG ?= config.yaml

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,openai,ollama,anthropic,litellm]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/intentd run --config $(CONFIG)

test: $(STAMP)
	tests/ensure_postgres.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,openai,ollama,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	for script in $(BENCH_ROWS); do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info
