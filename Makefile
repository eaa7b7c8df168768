# Two commands on a fresh clone: `make run` (set up + run the demo pipeline), `make test` (set up + lint + tests).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
PYTHON ?= python3.11

.PHONY: setup browser run test test-slow bench clean

setup: $(STAMP)

# Reinstalls only when the lock file or the project metadata change, so a second call is fast.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Headless Chromium renders the dataset page in tests/quality (Debian package; installed once).
browser:
	@bash scripts/ensure-chromium.sh

run: setup
	@test -d .git || (git init -q && echo "initialised a git repository (DVC needs one)")
	$(BIN)/sluice pipeline --check   # dvc.yaml is generated from params.yaml (sluice/pipeline.py)
	$(BIN)/dvc repro
	$(BIN)/sluice tables

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: setup browser
	$(BIN)/python -m pytest -q -m slow

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf lake data reports runs .dvc/tmp

# The decoder fuzz test at length (CI runs a bounded, derandomized 600 examples).
.PHONY: fuzz
fuzz: setup
	SLUICE_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest -q -p no:warnings tests/sluice/test_imaging.py -k fuzz
