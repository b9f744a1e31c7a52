# `make run`: set up and run the quickstart.  `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLGYM := $(VENV)/bin/clgym
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
# Real MNIST for the tests that need it (they skip when it is absent).
export CLGYM_DATA ?= $(abspath ../shared/data)

.PHONY: setup run test test-slow test-ray bench clean

$(STAMP): pyproject.toml requirements-dev.txt $(wildcard plugins/*/pyproject.toml) $(wildcard examples/plugins/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements-dev.txt
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

bench: setup
	$(PY) benchmarks/rotated_mnist_speed.py

clean:
	rm -rf $(VENV) runs
