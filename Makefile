# Two entry points, both working on a fresh Debian machine:
#   make demo   the main job on this machine, embedded defaults, loopback only
#   make test   ruff, mypy (strict), semgrep (.semgrep.yml) and pytest, whose
#               fuzz targets (tests/fuzz) get a few seconds
# and make fuzz: the fuzz targets for long (python -m bench.fuzz --help).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# semgrep lives in a venv of its own: it pins many packages of its own.
SEMGREP_VENV := $(VENV)/semgrep
SEMGREP      := $(SEMGREP_VENV)/bin/semgrep

.PHONY: demo test lint typecheck semgrep pytest bench fuzz clean deps

$(BIN)/toolkit: pyproject.toml plugins/tickets/pyproject.toml plugins/linux/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e plugins/tickets -e plugins/linux
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

$(SEMGREP):
	$(PYTHON) -m venv $(SEMGREP_VENV)
	$(SEMGREP_VENV)/bin/pip install --quiet 'semgrep>=1.185,<2'

semgrep: $(BIN)/toolkit $(SEMGREP)
	$(BIN)/python -m tests.static.run_semgrep --semgrep $(SEMGREP)

pytest: $(BIN)/toolkit
	$(BIN)/pytest -q

test: deps $(BIN)/toolkit lint typecheck semgrep pytest

bench: $(BIN)/toolkit
	$(BIN)/python -m bench

fuzz: $(BIN)/toolkit
	$(BIN)/python -m bench.fuzz --minutes 10

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
