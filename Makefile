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
	$(PY) -m ruff check perfd tests benchmarks
	$(PY) -m mypy perfd
	$(PY) -m pytest -q

# unit tests only (seconds): the end-to-end tests are marked slow
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed
	$(PY) -m ruff check perfd tests benchmarks
	$(PY) -m mypy perfd

clean:
	$(MAKE) -C harness clean
	rm -rf .perfd perfd-out
