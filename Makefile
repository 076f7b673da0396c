# Two commands matter: `make demo` (the main job) and `make test` (everything CI checks).
# Both create .venv and install the package on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-fast lint lab notebooks bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/uel demo

# Lint, check notebooks against their sources, unit tests, notebooks at the smoke profile,
# and the effect tests on real data at the quick profile.
test: $(STAMP)
	$(BIN)/ruff check uel_helpers tests notebooks benchmarks
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -m "not slow"

# Tests that do not fit CI's 20-minute budget: the quick protocol on all of Fashion-MNIST (~3.5 min) and the
# effect tests of TAP, class-wise EM and AR L-inf (surrogate training: minutes), D-VAE on AR and on EM
# (~4 min each) and DFR (~1.5 min).
test-slow: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -m slow

# Unit tests only (no notebook execution, no effect training).
test-fast: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -m "not effect and not notebook"

lint: $(STAMP)
	$(BIN)/ruff check uel_helpers tests notebooks benchmarks

lab: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,lab]"
	$(BIN)/jupyter lab notebooks/

# Regenerate every notebooks/*.ipynb from its py:percent source (the source of truth).
notebooks: $(STAMP)
	$(BIN)/python -m uel_helpers.cli notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_poisons.py
	$(BIN)/python benchmarks/bench_dvae.py
	$(BIN)/python benchmarks/bench_sharpen.py

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
