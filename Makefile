# zicht: two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install-stamp
DEMO   ?= demo
SCALE  ?= small
SEED   ?= 42
LINT   := $(wildcard jobs features models tests notebooks tools)

.PHONY: help install check lint format typecheck test test-fast demo dist clean

help:
	@echo "make demo       create .venv, install, synthesise a data set, run the pipeline"
	@echo "make test       lint, type-check and run the whole test suite (what CI runs)"
	@echo "make test-fast  the quick tier (no end-to-end, no heavy tests)"
	@echo "make check      ruff and mypy only"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change. Editable, so code edits need no reinstall.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# mypy cannot follow setuptools' editable finder for package-dir mappings: give it a view of
# the package as it installs (symlinks, so the errors point at the real files' contents).
.typecheck/zicht: 
	mkdir -p .typecheck/zicht
	ln -sfn ../../jobs .typecheck/zicht/jobs
	ln -sfn ../../features .typecheck/zicht/features
	ln -sfn ../../models .typecheck/zicht/models

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT)
	$(VENV)/bin/ruff format --check $(LINT)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINT)
	$(VENV)/bin/ruff check --fix $(LINT)

typecheck: $(STAMP) .typecheck/zicht
	$(VENV)/bin/mypy -p zicht.features -p zicht.models

check: lint typecheck

test: check
	$(VENV)/bin/pytest -q

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not e2e and not heavy"

demo: $(STAMP)
	@rm -rf $(DEMO)/input
	@start=$$(date +%s); \
	$(VENV)/bin/zicht synth --scale $(SCALE) --seed $(SEED) --out $(DEMO)/input && \
	$(VENV)/bin/zicht run --input $(DEMO)/input --output $(DEMO)/output && \
	$(PY) -m zicht.jobs.summary $(DEMO)/output && \
	echo "demo finished in $$(( $$(date +%s) - start )) s"

dist: $(STAMP)
	$(PY) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(DEMO) .typecheck .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
