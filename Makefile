PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/regjax sweep

test: $(STAMP)
	$(BIN)/ruff check regjax tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist load

lint: $(STAMP)
	$(BIN)/ruff check regjax tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) regjax-out .pytest_cache .hypothesis
