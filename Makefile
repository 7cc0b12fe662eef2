# zicht: two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install-stamp
DEMO   ?= demo
SCALE  ?= small
SEED   ?= 42
LINT   := $(wildcard jobs features models tests notebooks tools benchmarks)

.PHONY: help install check lint format typecheck test test-fast test-heavy test-cluster demo dist dist-wheel clean

help:
	@echo "make demo       create .venv, install, synthesise a data set, run the pipeline"
	@echo "make test       lint, type-check and run the whole test suite (what CI runs)"
	@echo "make test-fast  the quick tier (no end-to-end, no heavy tests)"
	@echo "make test-heavy spark-submit on a loopback cluster, MLflow UI and notebook tests only"
	@echo "make test-cluster the whole pipeline on a loopback standalone cluster (~3 min)"
	@echo "make dist       wheel for --py-files and packed executor environment for --archives"
	@echo "make bench     benchmark zicht run against a DuckDB reference (SCALES=small,medium,nl)"
	@echo "make check      ruff and mypy only"
	@echo "make mlflow-ui  the MLflow UI on 127.0.0.1 for the demo's store (MLFLOW_DB=..., MLFLOW_PORT=...)"

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

# everything but the whole pipeline on the loopback cluster (about 3 min more: make test-cluster)
test: check
	$(VENV)/bin/pytest -q -m "not cluster_run"

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not e2e and not heavy"

# spark-submit on a loopback standalone cluster, the MLflow UI and the notebooks
test-heavy: $(STAMP)
	$(VENV)/bin/pytest -q -m "heavy and not cluster_run"

# the whole pipeline under spark-submit on a loopback standalone cluster, against the local run
test-cluster: $(STAMP)
	$(VENV)/bin/pytest -q -m cluster_run

demo: $(STAMP)
	@rm -rf $(DEMO)/input
	@start=$$(date +%s); \
	$(VENV)/bin/zicht synth --scale $(SCALE) --seed $(SEED) --out $(DEMO)/input && \
	$(VENV)/bin/zicht run --input $(DEMO)/input --output $(DEMO)/output && \
	$(PY) -m zicht.jobs.summary $(DEMO)/output && \
	echo "demo finished in $$(( $$(date +%s) - start )) s"

# The MLflow UI and REST API on this machine only (127.0.0.1), on the SQLite store that `zicht
# run` writes beside its output folder (demo/mlflow.db after `make demo`; for another run
# MLFLOW_DB=path/to/mlflow.db). zicht's experiments carry their own artifact location (mlruns/
# beside the store), which the server reads directly; the artifact root below applies only to
# experiments created in the UI. One worker is plenty for one person and keeps the server's
# memory low (the default is four).
MLFLOW_DB   ?= $(DEMO)/mlflow.db
MLFLOW_PORT ?= 5000
.PHONY: mlflow-ui
mlflow-ui: $(STAMP)
	@test -f "$(MLFLOW_DB)" || { echo "no MLflow store at $(MLFLOW_DB): run make demo first, or set MLFLOW_DB=path/to/mlflow.db" >&2; exit 2; }
	@echo "MLflow UI: http://127.0.0.1:$(MLFLOW_PORT)  (store $(MLFLOW_DB); Ctrl-C stops it)"
	exec $(VENV)/bin/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
		--backend-store-uri "sqlite:///$(abspath $(MLFLOW_DB))" \
		--default-artifact-root "file://$(abspath $(dir $(MLFLOW_DB)))/mlruns" --no-serve-artifacts

# dist/zicht-<version>-py3-none-any.whl (pip install), the same bytes as .zip for --py-files
# (PySpark puts only .zip, .egg and .jar py-files on the executors' Python path: a .whl there
# reaches the driver but not the executors), and dist/zicht-env.tar.gz (venv-pack) for
# --archives: --py-files carries zicht's own code only, not shapely, igraph or scikit-learn. The
# executors' environment holds zicht's dependencies except pyspark (Spark puts its own on the
# executors' path) and mlflow (the driver alone talks to MLflow); zicht itself comes with
# --py-files, so a code change needs a new wheel only, not a new environment. venv-pack links python
# to the interpreter it was built with: executors need Python 3.11 at the same path.
# Python 3.11's zipimport finds a namespace package (zicht has no __init__.py) in a zip only
# through a directory entry, and wheels carry none: without the entries, `--py-files
# zicht-*.zip` fails with "No module named 'zicht'".
EXEC_ENV  := build/executor-env
WHEEL_DIR ?= dist
dist-wheel: $(STAMP)
	mkdir -p $(WHEEL_DIR)
	rm -f $(WHEEL_DIR)/zicht-*.whl $(WHEEL_DIR)/zicht-*.zip
	$(PY) -m pip wheel --quiet --no-deps -w $(WHEEL_DIR) .
	$(PY) -c "import sys, zipfile; p = sys.argv[1]; n = zipfile.ZipFile(p).namelist(); d = sorted({x.rsplit('/', i)[0] + '/' for x in n for i in range(1, x.count('/') + 1)} - set(n)); z = zipfile.ZipFile(p, 'a'); [z.writestr(zipfile.ZipInfo(e), b'') for e in d]; z.close()" $(WHEEL_DIR)/zicht-*.whl
	for w in $(WHEEL_DIR)/zicht-*.whl; do cp "$$w" "$${w%.whl}.zip"; done

dist: $(STAMP)
	rm -rf dist $(EXEC_ENV)
	mkdir -p build
	$(MAKE) --no-print-directory dist-wheel WHEEL_DIR=dist
	$(PY) -c "from importlib.metadata import requires; print('\n'.join(r for r in requires('zicht') if 'extra ==' not in r and not r.startswith(('pyspark', 'mlflow'))))" > build/executor-requirements.txt
	$(PYTHON) -m venv $(EXEC_ENV)
	$(EXEC_ENV)/bin/pip install --quiet venv-pack -r build/executor-requirements.txt
	$(EXEC_ENV)/bin/venv-pack --quiet -p $(EXEC_ENV) -o dist/zicht-env.tar.gz
	@ls -lh dist

# Benchmarks (benchmarks/, not part of the package): `zicht run` per scale on a synthetic input
# (bench/<scale>/input, made once with seed 42, reused), per-stage time, rows/s and peak memory
# of the process tree, and the DuckDB reference of the core indicators (must match zicht's
# cells; prints the ratio of zicht's indicator stage to DuckDB). Appends to bench/results.csv
# and redraws bench/time_vs_rows.png. One Spark job at a time: scales run one after another.
SCALES      ?= small
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	@touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_bench.py --scales $(SCALES)

clean:
	rm -rf $(DEMO) .typecheck .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
