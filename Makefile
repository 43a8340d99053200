PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-lowest lint typecheck bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/regjax sweep

test: $(STAMP)
	$(BIN)/ruff check regjax tests benchmarks notebooks examples
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist load

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite against exactly the declared floors (constraints-lowest.txt), in its own venv.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml constraints-lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -c constraints-lowest.txt -e ".[dev]"
	touch $(LOWEST)/.installed

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -c "import jax, optax, flax, numpy; print('jax', jax.__version__, \
	  'optax', optax.__version__, 'flax', flax.__version__, 'numpy', numpy.__version__)"
	$(LOWEST)/bin/python -m pytest -n 2 --dist load $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check regjax tests benchmarks notebooks examples

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) $(LOWEST) regjax-out .pytest_cache .hypothesis .mypy_cache
