# The two commands a new user needs: `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv serve test test-fast lint cluster-up cluster-down bench

venv:
	@bash hack/bootstrap.sh

## Start the inference server on the embedded default model (SmolLM2-135M-Instruct).
serve: venv
	$(VENV)/bin/sentiric-llm serve

## Everything CI runs: lint, types, unit, integration and cluster tests.
test: venv
	bash hack/test.sh

## Unit tests only: seconds, no model, no cluster.
test-fast: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache .importlinter

cluster-up: venv
	bash hack/cluster-up.sh

cluster-down:
	bash hack/cluster-down.sh

## The end-to-end server benchmark (docs/performance.md lists the others).
bench: venv
	$(PY) bench/bench_server.py
