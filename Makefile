# Two entry points, both working on a fresh Debian machine:
#   make demo   the main job on this machine, embedded defaults, loopback only
#   make test   ruff, mypy (strict) and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench clean deps

$(BIN)/toolkit: pyproject.toml plugins/tickets/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e plugins/tickets
	touch $@

deps:
	sh scripts/debian-deps.sh --test

demo:
	sh scripts/debian-deps.sh
	$(MAKE) --no-print-directory $(BIN)/toolkit
	sh scripts/demo.sh

lint: $(BIN)/toolkit
	$(BIN)/ruff check toolkit tests bench plugins
	$(BIN)/ruff format --check toolkit tests bench plugins

typecheck: $(BIN)/toolkit
	$(BIN)/mypy

pytest: $(BIN)/toolkit
	$(BIN)/pytest -q

test: deps $(BIN)/toolkit lint typecheck pytest

bench: $(BIN)/toolkit
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
