# Flipper's commands. `make help` lists them; `make test` and `make dev-server` are the two that matter first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: help install-develop test lint format dev-server bench chaos clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install-develop: $(VENV)/.installed ## Create or reuse .venv and install Flipper with its development tools

test: install-develop ## Run the tests: on a real redis-server (when on PATH) and on fakeredis
	$(BIN)/pytest

lint: install-develop ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-develop ## Rewrite files in ruff's style
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev-server: install-develop ## Serve on $HOST:$PORT (127.0.0.1:5000); REDIS_URL, or an embedded store; RELOAD=1 reloads
	$(BIN)/python -m flipper.devserver --host $(HOST) --port $(PORT) $(if $(RELOAD),--reload)

bench: install-develop ## Benchmark (~5 min): latency, throughput vs /health, script vs SUNION; rewrites README Performance
	command -v redis-benchmark >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)
	$(BIN)/pip install --quiet matplotlib  # the chart only: not a dependency of Flipper
	$(BIN)/python -m bench.run $(BENCH_ARGS)

chaos: install-develop ## Kill and hang Redis under load and print the counts; then fuzz at volume (~30 s)
	$(BIN)/python -m bench.chaos
	$(BIN)/pytest -q -m chaos -k no_5xx tests/test_chaos.py

clean: ## Remove .venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
