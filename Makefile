# The two commands of the README:
#   make run    set up .venv and run the whole study on params/default.yaml
#   make test   set up .venv and run the tests
# Both reuse .venv when it is up to date. torch is installed first, pinned (a CPU build here).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PARAMS ?= params/default.yaml
PYTEST_ARGS ?=

# Offline data mirror: use ../shared/data when it is there and nothing else was set.
ifeq ($(MEDSYN_DATA_DIR),)
ifneq ($(wildcard ../shared/data/MANIFEST.tsv),)
export MEDSYN_DATA_DIR := $(abspath ../shared/data)
endif
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv run test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: venv
	$(BIN)/medsyn run --params $(PARAMS)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)
