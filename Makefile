# The README's two commands: `make demo` and `make test`. Both create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint typecheck demo bench clean data

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a CPU build already on disk; a bare
	# `torch` would pull a multi-GB CUDA build. pyproject itself declares torch>=2.3.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# the distributed extra (Ray) too: the tests check that both backends give the same results;
	# the tensorboard extra: the tests read back the event files a run writes;
	# the alpaca extra: the Alpaca broker's tests run the real alpaca-py client against a fake server;
	# the fast extra: numba, so the fused env step's compiled kernel is tested too
	$(BIN)/python -m pip install --quiet -e '.[dev,distributed,tensorboard,alpaca,fast]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check market_metarl tests benchmarks scripts
	$(BIN)/ruff format --check market_metarl tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# Notebook cells need well under a minute each on 2 busy cores (the SMALL budgets in
# scripts/make_notebooks.py); the timeout is nbmake's default, written out, a 5x margin.
test: lint typecheck
	MARKET_METARL_SMALL=1 $(BIN)/python -m pytest -n 2 --dist loadgroup --nbmake \
		--nbmake-timeout=300 tests notebooks

# The edit-test loop: every test but the notebooks and the local-Ray ones, no lint or typecheck.
test-fast: $(STAMP)
	MARKET_METARL_SMALL=1 $(BIN)/python -m pytest -n 2 -m "not ray" tests

demo: $(STAMP)
	$(BIN)/python -m market_metarl.demo

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/scaling.py

# Rebuild data/ from ../shared/data/raw (see data/MANIFEST.csv for provenance).
data: $(STAMP)
	$(BIN)/python scripts/build_bundled_data.py --raw ../shared/data/raw --out data

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
