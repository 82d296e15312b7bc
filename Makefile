# The README's two commands:
#   make demo   set up on a fresh machine and run the bundled example suite at two commits
#   make test   install what the tests need and run every test (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint harness clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

harness:
	$(MAKE) -C harness

demo: $(VENV)/.installed harness
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo.sh

test: $(VENV)/.installed
	scripts/install-test-deps.sh
	$(MAKE) -C harness test
	$(MAKE) lint
	$(PY) -m pytest -q

# The quick loop while editing (under a minute): lint, the layer contracts and the unit tests
# (tests/unit, no real C builds, profilers, browsers or daemons). CI runs `make test`.
test-fast: $(VENV)/.installed
	@echo "test-fast: ruff, mypy, import contracts, unit tests (tests/unit); make test runs everything"
	$(MAKE) lint
	$(PY) -m pytest -q -m "not slow" tests/unit

lint: $(VENV)/.installed
	$(PY) -m ruff check perfd tests benchmarks
	$(PY) -m mypy perfd
	$(VENV)/bin/lint-imports --no-cache

clean:
	$(MAKE) -C harness clean
	rm -rf .perfd perfd-out
