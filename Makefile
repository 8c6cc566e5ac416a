# Flipper's commands. `make help` lists them; `make test` and `make dev-server` are the two that matter first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
SAM := $(BIN)/sam
CONFIG_ENV ?= default
export SAM_CLI_TELEMETRY ?= 0
# The Lambda's Python and platform: the artifact gets wheels built for them, whatever runs the build.
LAMBDA_PYTHON := 3.13
LAMBDA_PLATFORM := manylinux2014_aarch64
ROOT := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))
# bench and chaos start their own redis-server (and bench runs redis-benchmark): installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INSTALL_REDIS := command -v redis-benchmark >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null)

.PHONY: help install-develop test lint format dev-server clean events build build-FlipperFunction invoke validate deploy local-api bench chaos console screenshot

help: ## List every target
	@# Two passes: the column is as wide as the longest name (build-FlipperFunction's included).
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {name[++n] = $$1; text[n] = $$2; if (length($$1) > w) w = length($$1)} \
	  END {for (i = 1; i <= n; i++) printf "  %-" w "s  %s\n", name[i], text[i]}' $(MAKEFILE_LIST)

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
	$(BIN)/python -m flipper.serve.devserver --host $(HOST) --port $(PORT) $(if $(RELOAD),--reload)

console: install-develop ## The operator console on 127.0.0.1:8765: REDIS_URL, or FLIPPER_FUNCTION/FLIPPER_STACK; CONSOLE_ARGS=--port 9000
	$(BIN)/flipper console $(CONSOLE_ARGS)

screenshot: install-develop ## Retake docs/console.png from the console's browser test (needs chromium)
	FLIPPER_SCREENSHOT=1 $(BIN)/pytest -q -p no:randomly tests/test_console.py -k screenshot

events: install-develop ## Regenerate the API Gateway and Function URL events in tests/events/ with sam
	$(SAM) local generate-event apigateway aws-proxy --method GET --resource / --path "" --body "" > tests/events/rest-api.json
	$(SAM) local generate-event apigateway http-api-proxy --method GET --path "" --body "" > tests/events/http-api.json
	@# A Function URL sends API Gateway's payload format 2.0; sam has no generator of its own for it.
	$(SAM) local generate-event apigateway http-api-proxy --method GET --path "" --body "" \
	  | $(BIN)/python -c 'import json, sys; e = json.load(sys.stdin); e["requestContext"].update(domainName="abcdefghij.lambda-url.us-east-1.on.aws", domainPrefix="abcdefghij", apiId="abcdefghij", authorizer={"iam": {"accountId": "123456789012", "callerId": "AIDACKCEVSQ6C2EXAMPLE", "userArn": "arn:aws:iam::123456789012:user/operator"}}); print(json.dumps(e, indent=2))' \
	  > tests/events/function-url.json

validate: install-develop ## Check template.yaml: sam validate --lint (cfn-lint)
	$(SAM) validate --lint

build: install-develop ## sam build: the Lambda artifact in .aws-sam/build/ (no Docker; 3.13 bytecode when a Python 3.13 is found)
	$(SAM) build

# sam build runs this (template Metadata: BuildMethod makefile) with ARTIFACTS_DIR set. pip fetches
# wheels for Lambda's Python and arm64; only pure-Python wheels or optional extensions may land there,
# so the artifact also imports here (tests/test_build.py). pip compiles nothing: it would be this Python's.
# The Python that runs pip: the project's .venv when `make install-develop` made one, else the first
# python3 on PATH that is 3.11 or newer (tomllib) and has pip, so `sam build` works on a fresh clone.
# Recursive (=): the search runs only when this recipe does.
BUILD_PYTHON = $(or $(wildcard $(ROOT)$(BIN)/python),$(shell for p in python3 python3.13 python3.12 python3.11; do \
  command -v $$p >/dev/null && $$p -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  && command -v $$p && break; done))
# Lambda cannot write bytecode (its code is read-only), so with none in the artifact every cold start
# compiles each module it imports: about 3x the import (docs/deploy.md, Cold start). Bytecode must be
# Lambda's Python's own, and a Python $(LAMBDA_PYTHON) is often installed without being first on PATH (or with a
# pyenv shim there that fails), so each candidate is run, and the first that works and is $(LAMBDA_PYTHON) compiles:
# python$(LAMBDA_PYTHON) on PATH, pyenv's, uv's, the system's. BYTECODE_PYTHON=/path/to/python$(LAMBDA_PYTHON) names
# one instead (the build fails if it does not work). The .pyc files are unchecked-hash ones (PEP 552),
# used whatever file times the zip keeps.
BYTECODE_CANDIDATES = $(or $(BYTECODE_PYTHON),python$(LAMBDA_PYTHON) \
  $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(LAMBDA_PYTHON)*/bin/python$(LAMBDA_PYTHON) \
  $$(uv python find $(LAMBDA_PYTHON) 2>/dev/null) $$HOME/.local/share/uv/python/cpython-$(LAMBDA_PYTHON)*/bin/python$(LAMBDA_PYTHON) \
  /usr/local/bin/python$(LAMBDA_PYTHON) /usr/bin/python$(LAMBDA_PYTHON))
build-FlipperFunction: ## (run by sam build) Install arm64 wheels, the package and its Lua script into $ARTIFACTS_DIR
	@test -n "$(BUILD_PYTHON)" || { echo "build-FlipperFunction: needs python3 >= 3.11 with pip on PATH, or make install-develop" >&2; exit 1; }
	@# The dependencies and the `speed` extra: hiredis parses replies in C (about 4x the evaluation rate);
	@# its arm64 build does not load on the test machine, where redis-py falls back to its own parser.
	$(BUILD_PYTHON) -c 'import tomllib; p = tomllib.load(open("$(ROOT)pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["speed"], sep="\n")' > requirements-lambda.txt
	$(BUILD_PYTHON) -m pip install --quiet --no-compile --platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) \
	  --implementation cp --only-binary=:all: --target "$(ARTIFACTS_DIR)" -r requirements-lambda.txt
	@# The X-Ray SDK for the opt-in tracing, without its botocore: the Lambda runtime has one.
	$(BUILD_PYTHON) -m pip install --quiet --no-compile --platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) \
	  --implementation cp --only-binary=:all: --target "$(ARTIFACTS_DIR)" --no-deps aws-xray-sdk wrapt
	@# The function: flipper/core and flipper/serve, the entry (handler.py), and of flipper/operate only the
	@# operator event it answers (admin.py). Not the dev server and its store (uvicorn, fakeredis), nor the
	@# operator's command and console (click, PyYAML, boto3, Jinja2), nor `make invoke`'s driver.
	mkdir -p "$(ARTIFACTS_DIR)/flipper/lua" "$(ARTIFACTS_DIR)/flipper/core" "$(ARTIFACTS_DIR)/flipper/serve" "$(ARTIFACTS_DIR)/flipper/operate"
	cp $(ROOT)functions/flipper/__init__.py $(ROOT)functions/flipper/handler.py "$(ARTIFACTS_DIR)/flipper/"
	cp $(filter-out %/devstore.py,$(wildcard $(ROOT)functions/flipper/core/*.py)) "$(ARTIFACTS_DIR)/flipper/core/"
	cp $(filter-out %/devserver.py %/devinvoke.py,$(wildcard $(ROOT)functions/flipper/serve/*.py)) "$(ARTIFACTS_DIR)/flipper/serve/"
	cp $(addprefix $(ROOT)functions/flipper/operate/,__init__.py admin.py) "$(ARTIFACTS_DIR)/flipper/operate/"
	cp $(ROOT)lua/*.lua "$(ARTIFACTS_DIR)/flipper/lua/"
	@for python in $(BYTECODE_CANDIDATES); do \
	  version=$$("$$python" -c 'import platform; print(platform.python_version())' 2>/dev/null) || continue; \
	  [[ $$version == $(LAMBDA_PYTHON).* ]] || continue; \
	  echo "bytecode for Lambda's Python $(LAMBDA_PYTHON), compiled by $$(command -v "$$python") ($$version)"; \
	  exec "$$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)" >/dev/null; \
	done; \
	$(if $(BYTECODE_PYTHON),echo "build-FlipperFunction: BYTECODE_PYTHON=$(BYTECODE_PYTHON) is not a working Python $(LAMBDA_PYTHON)" >&2; exit 1;) \
	echo "NO BYTECODE: no working Python $(LAMBDA_PYTHON) (tried python$(LAMBDA_PYTHON) on PATH, pyenv's, uv's, /usr/local/bin, /usr/bin)," \
	  "so every cold start compiles each module it imports: about 3x the import (docs/deploy.md#cold-start)." \
	  "Install one (pyenv install $(LAMBDA_PYTHON), uv python install $(LAMBDA_PYTHON)) or give BYTECODE_PYTHON=/path/to/python$(LAMBDA_PYTHON)."

deploy: build ## sam deploy (needs AWS credentials); CONFIG_ENV=prod for production, DEPLOY_ARGS=--guided the first time
	$(SAM) deploy --config-env $(CONFIG_ENV) $(DEPLOY_ARGS)

# @: stdout is the response alone, for jq and the like.
EVENT ?= tests/events/http-api.json
invoke: install-develop ## Run the built artifact's handler on EVENT=tests/events/http-api.json and print the response (no Docker)
	@$(BIN)/python -m flipper.serve.devinvoke $(EVENT)

local-api: build ## sam local start-api on :5000 with local-env.json (needs Docker, and Redis on the host's 6379)
	$(SAM) local start-api

bench: install-develop ## Benchmark (~30 min): latency, throughput vs /health, script vs SUNION; rewrites docs/performance.md
	$(INSTALL_REDIS)
	$(BIN)/pip install --quiet matplotlib  # the chart only: not a dependency of Flipper
	$(BIN)/python -m bench.run $(BENCH_ARGS)

chaos: install-develop ## Kill and hang Redis under load and print the counts; fuzz at volume; the cache's freshness (~70 s)
	$(INSTALL_REDIS)
	$(BIN)/python -m bench.chaos
	$(BIN)/pytest -q -m chaos -k "no_5xx or no_ofrep" tests/test_chaos.py
	$(BIN)/pytest -q -s -k freshness tests/test_cache.py

clean: ## Remove .venv, caches and sam's build
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .aws-sam
