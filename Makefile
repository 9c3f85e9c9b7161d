# The two commands of the README: `make run` and `make test`. Everything else builds on `install`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RESULTS ?= results

.PHONY: install run test test-all bench leaderboard clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU build of torch first, and only where no torch is importable (a user's own CUDA
# build stays): a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/reasonbench run --model transformer --task sudoku --preset smoke --out $(RESULTS)

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: install
	$(BIN)/python -m reasonbench_benchmarks.speed
	$(BIN)/python -m reasonbench_benchmarks.maze_generation
	$(BIN)/python -m reasonbench_benchmarks.arc_build --augmentations 100
	$(BIN)/python -m reasonbench_benchmarks.attractor_memory

# Builds the tables from the records under $(RESULTS) (smoke runs are not listed).
leaderboard: install
	$(BIN)/reasonbench leaderboard --results $(RESULTS) --out site

clean:
	rm -rf $(VENV) *.egg-info build dist .pytest_cache
