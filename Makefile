PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-lowest lint typecheck bench notebooks docs dist-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/regjax sweep

test: $(STAMP)
	$(BIN)/ruff check regjax tests benchmarks notebooks examples docs tools
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(MAKE) docs
	$(BIN)/python -m pytest -n 2 --dist load --durations=25

typecheck: $(STAMP)
	$(BIN)/mypy

# The reference site (docs/README.md): warnings are errors, then every public name must
# have its entry and docstring (docs/check_coverage.py). Notebooks are never executed.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -j auto -q -b html docs docs/_build/html
	$(BIN)/python docs/check_coverage.py --require-all

# Builds the wheel and sdist, installs the wheel in a fresh venv outside the checkout and
# runs `regjax sweep` there with few steps (tools/dist_check.py).
dist-check: $(STAMP)
	$(BIN)/python tools/dist_check.py

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
	$(BIN)/ruff check regjax tests benchmarks notebooks examples docs tools

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) $(LOWEST) regjax-out .pytest_cache .hypothesis .mypy_cache docs/_build docs/api \
	  docs/notebooks dist
