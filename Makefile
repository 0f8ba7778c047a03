# The two commands of the README:
#   make run    set up .venv and run the whole study on params/default.yaml
#   make test   set up .venv (with Playwright) and Chromium when missing, and run the tests
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

.PHONY: venv run test chromium

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev,browser,cluster]'
	touch $@

run: venv
	$(BIN)/medsyn run --params $(PARAMS)

test: venv chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests (marker `browser`) drive the system Chromium through Playwright (no browser
# download). Installed with apt-get when missing and we are root; otherwise those tests are skipped
# with one line saying why.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	    || [ -n "$$MEDSYN_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get (for the browser tests)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "no chromium and not root with apt-get: the browser tests will be skipped"; fi
