# zicht: two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install-stamp
DEMO   ?= demo
SCALE  ?= small
SEED   ?= 42
# the demo's partner packages (gemeenten of SCALE=small SEED=42); DEMO_CONF= for none
DEMO_CONF ?= --conf conf/examples/demo_partners.yaml
# two pytest workers, each with its own SparkSession; a test file stays on one worker (its
# module fixtures and temp folders), the workers share one tiny run (tests/conftest.py). XDIST= runs serially.
XDIST  ?= -n 2 --dist loadfile
LINT   := $(wildcard jobs features models tests notebooks tools benchmarks)

.PHONY: help install check lint format typecheck test test-fast test-heavy test-cluster demo dist dist-wheel clean

help:
	@echo "make demo       create .venv, install, synthesise a data set, run the pipeline"
	@echo "make test       lint, type-check and run the whole test suite (what CI runs)"
	@echo "make test-fast  the quick tier (no end-to-end, no heavy tests)"
	@echo "make test-heavy spark-submit on a loopback cluster, MLflow UI and notebook tests only"
	@echo "make test-cluster the whole pipeline on a loopback standalone cluster (~3 min)"
	@echo "make dist       wheel for --py-files and the executors' environment (one PEX file)"
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
# --durations: the slowest tests, printed in CI's log, keep the 15-minute budget in view
test: check
	$(VENV)/bin/pytest -q $(XDIST) -m "not cluster_run" --durations=20

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q $(XDIST) -m "not e2e and not heavy"

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
	$(VENV)/bin/zicht run --input $(DEMO)/input --output $(DEMO)/output $(DEMO_CONF) && \
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
# reaches the driver but not the executors), and dist/zicht-executor.pex for --files and
# spark.pyspark.python: --py-files carries zicht's own code only. The PEX holds what the
# executors' Python UDFs import and nothing else (tools/executor_env.py: pandas, pyarrow, numpy,
# shapely, highspy at this venv's versions, resolved from this venv without network); the driver
# alone runs scikit-learn, igraph, scipy and mlflow, and Spark brings its own pyspark. zicht
# itself comes with --py-files, so a code change needs a new wheel only, not a new environment.
# The executors need this venv's Python version on their PATH, nothing else; EXECUTOR_PYTHONS=
# "python3.12 python3.13" builds one PEX for those interpreters instead, from the package registry.
# Python 3.11's zipimport finds a namespace package (zicht has no __init__.py) in a zip only
# through a directory entry, and wheels carry none: without the entries, `--py-files
# zicht-*.zip` fails with "No module named 'zicht'".
WHEEL_DIR ?= dist
DIST_DIR  ?= dist
EXECUTOR_PYTHONS ?=
dist-wheel: $(STAMP)
	mkdir -p $(WHEEL_DIR)
	rm -f $(WHEEL_DIR)/zicht-*.whl $(WHEEL_DIR)/zicht-*.zip
	$(PY) -m pip wheel --quiet --no-deps -w $(WHEEL_DIR) .
	$(PY) -c "import sys, zipfile; p = sys.argv[1]; n = zipfile.ZipFile(p).namelist(); d = sorted({x.rsplit('/', i)[0] + '/' for x in n for i in range(1, x.count('/') + 1)} - set(n)); z = zipfile.ZipFile(p, 'a'); [z.writestr(zipfile.ZipInfo(e), b'') for e in d]; z.close()" $(WHEEL_DIR)/zicht-*.whl
	for w in $(WHEEL_DIR)/zicht-*.whl; do cp "$$w" "$${w%.whl}.zip"; done

dist: $(STAMP)
	rm -f $(DIST_DIR)/zicht-env.tar.gz $(DIST_DIR)/zicht-executor.pex
	$(MAKE) --no-print-directory dist-wheel WHEEL_DIR=$(DIST_DIR)
	$(PY) tools/executor_env.py --out $(DIST_DIR)/zicht-executor.pex $(addprefix --python ,$(EXECUTOR_PYTHONS))
	@ls -lh $(DIST_DIR)

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
