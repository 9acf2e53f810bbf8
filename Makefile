# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint bench install clean

run: $(STAMP)          ## the whole backend: caroud up (API, WebSocket, worker) on 127.0.0.1:8000
	$(BIN)/caroud up

demo: $(STAMP)         ## the same with simulated players and game servers on its API
	$(BIN)/caroud up --demo

test: $(STAMP)         ## the whole suite, against a real (embedded) Valkey
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)         ## ruff and mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: $(STAMP)        ## matchmaking benchmark (see docs/benchmarks.md)
	$(BIN)/caroud bench matchmaking

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .caroud .pytest_cache .mypy_cache .ruff_cache
