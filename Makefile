# The two commands of the README: `make run` and `make test`. Everything else builds on `install`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RESULTS ?= results

.PHONY: install run test test-all bench leaderboard publish depth site clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU build of torch first, and only where no torch is importable (a user's own CUDA
# build stays): a plain `torch` requirement would pull a multi-GB CUDA build. Then the example
# out-of-tree plugin, installed as a user would install theirs (tests/test_contrib.py checks it).
$(STAMP): pyproject.toml examples/reasonbench-loopnet/pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps -e examples/reasonbench-loopnet
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/reasonbench run --model transformer --task sudoku --preset smoke --out $(RESULTS)

# The suite, then the leaderboard site built from the fixture records (a build tested on every change).
test: install
	$(BIN)/python -m pytest -q
	$(MAKE) site RESULTS=tests/data/leaderboard

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Throughput, memory, FLOPs and MFU of every model on the mini preset, then
# the data and speed figures of the scripts under benchmarks/.
bench: install
	$(BIN)/reasonbench bench --quick --out $(RESULTS)/bench.json
	$(BIN)/python -m reasonbench_benchmarks.speed
	$(BIN)/python -m reasonbench_benchmarks.maze_generation
	$(BIN)/python -m reasonbench_benchmarks.sudoku_extreme_scale
	$(BIN)/python -m reasonbench_benchmarks.arc_build --augmentations 100
	$(BIN)/python -m reasonbench_benchmarks.attractor_memory
	$(BIN)/python -m reasonbench_benchmarks.leaderboard_build

# The leaderboard's mini track (CPU) swept from this checkout: every built-in model with a mini
# preset for the task, over the seeds of $(MINI_SEEDS) (task:seeds), $(PARALLEL) runs at once
# sharing the cores, into $(LEADERBOARD) (a run whose record is there is kept, so a rerun
# resumes), then the site from those records. `make publish` puts the rows into
# leaderboard/results, each replacing its row whole (one clean commit, one CPU per row), and
# rebuilds docs/results.md (the leaderboard, the depth table) and the README's summary from them.
LEADERBOARD ?= results/mini
MINI_SEEDS ?= maze:0-4 sudoku:0-2 arc:0-2
PARALLEL ?= 2
leaderboard: install
	@set -e; \
	models=$$($(BIN)/reasonbench list | awk '$$1 == "model" && $$3 == "ok" && /\(built-in\)/ {print $$2}'); \
	for spec in $(MINI_SEEDS); do task=$${spec%%:*}; seeds=$${spec#*:}; \
	  with=$$(for m in $$models; do \
	    if $(BIN)/python -c "import sys; from reasonbench import config, registry; \
	        sys.exit(config.model_preset_file(sys.argv[1], sys.argv[2], 'mini', registry.get_model(sys.argv[1])) is None)" \
	        $$m $$task 2>/dev/null; then echo $$m; \
	    else echo "$$m on $$task: no mini preset, skipped" >&2; fi; done | paste -sd, -); \
	  $(BIN)/reasonbench sweep --models $$with --tasks $$task --seeds $$seeds --preset mini \
	    --out $(LEADERBOARD) --parallel $(PARALLEL); \
	done
	$(MAKE) site RESULTS=$(LEADERBOARD)

publish: install
	$(BIN)/python -m reasonbench_benchmarks.publish $(LEADERBOARD) --into leaderboard/results
	$(BIN)/reasonbench leaderboard --results leaderboard/results --out site --docs docs --readme docs/results.md $(PROJECT_BOARD)
	$(BIN)/python -m reasonbench_benchmarks.depth_table leaderboard/results --readme docs/results.md
	$(BIN)/python -m reasonbench_benchmarks.readme_summary leaderboard/results --readme README.md

# The test-time depth track: every trained mini checkpoint under $(LEADERBOARD) of a model with
# reasoning steps, evaluated for $(DEPTH) steps on the test and the out-of-distribution split
# (seed<N>.eval.json beside the record; one already there is kept), then the site.
DEPTH ?= 8
depth: install
	@set -e; \
	for record in $(LEADERBOARD)/*/*/mini/seed*.json; do \
	  case "$$record" in *.eval.json) continue;; esac; \
	  eval_record="$${record%.json}.eval.json"; \
	  model=$$(echo "$$record" | awk -F/ '{print $$(NF-3)}'); task=$$(echo "$$record" | awk -F/ '{print $$(NF-2)}'); \
	  seed=$$(basename "$$record" .json | sed 's/seed//'); \
	  checkpoint=$$($(BIN)/python -c "import json,sys; print(json.load(open(sys.argv[1])).get('checkpoint') or '')" "$$record"); \
	  if [ -f "$$eval_record" ]; then echo "$$model on $$task: depth record exists, kept"; \
	  elif [ -z "$$checkpoint" ] || [ ! -f "$$checkpoint" ]; then echo "$$model on $$task: no checkpoint, skipped"; \
	  elif ! $(BIN)/python -c "import sys; from reasonbench.config.registry import get_model; \
	      sys.exit(not hasattr(get_model(sys.argv[1]), 'eval_max_steps'))" $$model; then \
	    echo "$$model on $$task: no reasoning steps, skipped"; \
	  else echo "$$model on $$task: evaluated for $(DEPTH) steps"; \
	    $(BIN)/reasonbench eval --model $$model --task $$task --preset mini --seed $$seed --checkpoint "$$checkpoint" \
	      --eval-depth $(DEPTH) --out $(LEADERBOARD) --trainer.enable_progress_bar false; \
	  fi; done
	$(MAKE) site RESULTS=$(LEADERBOARD)

# The site alone (site/index.html, leaderboard.md, leaderboard.json) from the records under
# $(RESULTS); smoke runs are not listed, invalid records are skipped with a line each. The
# project's own board (leaderboard/results) says which of its records .ci/run re-runs; no other
# board does, since there it would not be true.
PROJECT_BOARD = --ci-rerun trm/sudoku/mini/seed0.json
site: install
	$(BIN)/reasonbench leaderboard --results $(RESULTS) --out site --docs docs \
	  $(if $(filter leaderboard/results leaderboard/results/,$(RESULTS)),$(PROJECT_BOARD))

clean:
	rm -rf $(VENV) *.egg-info build dist .pytest_cache
