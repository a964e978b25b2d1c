# Conveyor's tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install lint typecheck test test-fast bench demo ci clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv and install Conveyor with its test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: install  ## ruff and mypy (strict on the core)
	$(BIN)/ruff check src tests
	$(BIN)/mypy

test: install  ## the whole suite (needs PostgreSQL and Redis on 127.0.0.1)
	$(BIN)/pytest

test-fast: install  ## the suite without slow fault tests
	$(BIN)/pytest -m "not slow"

bench: install  ## side-by-side benchmarks with the peers (see docs/benchmarks.md)
	$(BIN)/python benchmarks/run.py

demo: install  ## the embedded showcase, no servers
	$(BIN)/conveyor demo

ci: lint test  ## what CI runs

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache conveyor-demo
