# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck layers bench faults screenshots ui clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hypertool demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck layers

bench: $(STAMP)
	$(BIN)/python benchmarks/cpu.py
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/streaming.py
	$(BIN)/python benchmarks/store.py
	$(BIN)/python benchmarks/budgets.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/ui.py

# The README's screenshots of the web UI, taken by the browser test from the demo's store.
screenshots: $(STAMP)
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/ui/test_screenshots.py

ui: $(STAMP)
	$(BIN)/hypertool ui

faults: $(STAMP)
	$(BIN)/python benchmarks/faults.py

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
