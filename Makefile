# `make run`: set up and run the quickstart.  `make test`: set up and run the tests.
# CI (.ci/run) also runs `make test-py310` (the suite on the oldest declared Python) and `make test-lowest`
# (the suite with every dependency at its lowest declared version); each builds its own venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLGYM := $(VENV)/bin/clgym
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
# Real MNIST for the tests that need it (they skip when it is absent).
export CLGYM_DATA ?= $(abspath ../shared/data)

PYPROJECTS := pyproject.toml $(wildcard plugins/*/pyproject.toml) $(wildcard examples/plugins/*/pyproject.toml)
# Python 3.10: found by scripts/find_python.sh (PYTHON310, python3.10 on PATH, or pyenv); it fails naming them.
VENV310 ?= .venv-py310
# The lowest declared versions, pinned with == by scripts/lowest_requirements.py, on $(PYTHON).
VENV_LOWEST ?= .venv-lowest

.PHONY: setup run test test-slow test-ray test-ddp test-py310 test-lowest bench bench-default-path clean \
	leaderboard leaderboard-studies leaderboard-site

$(STAMP): requirements-dev.txt requirements-loggers.txt $(PYPROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements-dev.txt -r requirements-loggers.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(CLGYM) run

test: setup
	$(PY) -m pytest -q -m "not slow and not ray"

# Ray executor tests: install the [ray] extra, start a local Ray instance (about a minute on 2 cores).
test-ray: setup
	$(PY) -m pip install -q -r requirements-ray.txt
	$(PY) -m pytest -q -m ray

test-slow: setup
	$(PY) -m pytest -q -m slow

# Data-parallel training on CPU (gloo, 2 processes), the killed-and-resumed ddp run included (~1.5 min).
test-ddp: setup
	$(PY) -m pytest -q tests/test_distributed.py

# The same torch as .venv; pip takes it from PyPI for this Python (a CUDA build that runs on the CPU).
$(VENV310)/.installed: requirements-dev.txt requirements-loggers.txt $(PYPROJECTS)
	test -x $(VENV310)/bin/python || { py=$$(scripts/find_python.sh 3.10) && "$$py" -m venv $(VENV310); }
	$(VENV310)/bin/python -m pip install -q --upgrade pip
	$(VENV310)/bin/python -m pip install -q $(TORCH)
	$(VENV310)/bin/python -m pip install -q -r requirements-dev.txt -r requirements-loggers.txt
	touch $@

test-py310: $(VENV310)/.installed
	$(VENV310)/bin/python -m pytest -q -m "not slow"

$(VENV_LOWEST)/.installed: requirements-dev.txt scripts/lowest_requirements.py $(PYPROJECTS)
	test -x $(VENV_LOWEST)/bin/python || $(PYTHON) -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install -q --upgrade pip
	$(PYTHON) scripts/lowest_requirements.py requirements-dev.txt $(PYPROJECTS) > $(VENV_LOWEST)/lowest.txt
	$(VENV_LOWEST)/bin/python -m pip install -q -r $(VENV_LOWEST)/lowest.txt -r requirements-dev.txt
	touch $@

test-lowest: $(VENV_LOWEST)/.installed
	cat $(VENV_LOWEST)/lowest.txt
	$(VENV_LOWEST)/bin/python -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/rotated_mnist_speed.py

# The single-device default path against main's trainer (5-task Rotated MNIST; run on a quiet machine).
# fe4c2c2: the last revision before the Fabric path and --profile entered the trainer.
BENCH_BASELINE ?= fe4c2c2
bench-default-path: setup
	$(PY) benchmarks/default_path_speed.py --baseline $(BENCH_BASELINE)

# The leaderboard (leaderboard/board.yaml): a tune file per entry, `clgym tune` per entry (two at once, one
# thread each), then the small results and the chosen specs (presets) copied onto the board, and the site.
# Studies stay in $(BOARD_WORK); running again continues unfinished ones and redoes those whose tune file changed.
# A study in which no trial finishes is reported (collect names it) and the others go on.
BOARD ?= leaderboard
BOARD_WORK ?= build/leaderboard
BOARD_JOBS ?= 2
# The final seeds of every study: board.yaml's seeds.
BOARD_SEEDS ?= 3
BOARD_TUNES = $(wildcard $(BOARD)/tune/*/*.yaml)
BOARD_DONE = $(patsubst $(BOARD)/tune/%.yaml,$(BOARD_WORK)/%/done,$(BOARD_TUNES))

leaderboard: setup
	@start=$$(date +%s); \
	$(CLGYM) leaderboard plan $(BOARD) && \
	$(MAKE) --no-print-directory -j$(BOARD_JOBS) leaderboard-studies && \
	$(CLGYM) leaderboard collect $(BOARD) --studies $(BOARD_WORK) \
		--wall-seconds $$(( $$(date +%s) - start )) --jobs $(BOARD_JOBS) && \
	$(CLGYM) leaderboard build $(BOARD) --out $(BOARD_WORK)/site

leaderboard-studies: $(BOARD_DONE)

$(BOARD_WORK)/%/done: $(BOARD)/tune/%.yaml
	@cmp -s $< $(BOARD_WORK)/$*/tune.yaml || rm -rf $(BOARD_WORK)/$*
	@mkdir -p $(BOARD_WORK)/$*
	@start=$$(date +%s); \
	if $(CLGYM) tune $< --out $(BOARD_WORK)/$* --final-seeds $(BOARD_SEEDS) --executor inline --no-progress \
		> $(BOARD_WORK)/$*/log.txt 2>&1; then result=done; else result="failed (see $(BOARD_WORK)/$*/log.txt)"; fi; \
	echo $$(( $$(date +%s) - start )) > $(BOARD_WORK)/$*/seconds.txt; \
	echo "$* $$result in $$(cat $(BOARD_WORK)/$*/seconds.txt) s"
	@touch $@

leaderboard-site: setup
	$(CLGYM) leaderboard build $(BOARD) --out $(BOARD_WORK)/site
	@echo "open $(BOARD_WORK)/site/index.html"

clean:
	rm -rf $(VENV) $(VENV310) $(VENV_LOWEST) runs
