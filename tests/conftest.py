"""Shared fixtures: one local SparkSession for the whole test run (never one per test).

Settings follow Splink's test session: local[2] (this machine has two cores), one shuffle
partition (tiny frames: more partitions only add scheduling overhead), no UI, no adaptive query
execution (deterministic plans), scratch folders under pytest's temp dir.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.is_dir():  # CI lays shared/ beside the clone; a checkout may sit deeper
    SHARED = Path(os.environ.get("ZICHT_SHARED", "../shared")).resolve()
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    # Spark's Python workers must use this interpreter (the venv), not the system python3.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    scratch = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("zicht-tests")
        .config("spark.sql.shuffle.partitions", "1")  # tiny frames: one partition is fastest
        .config("spark.default.parallelism", "2")
        .config("spark.sql.adaptive.enabled", "false")  # deterministic plans in tests
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={scratch}")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _clear_spark_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop cached tables after each Spark test so one test's cache cannot feed another."""
    yield
    if "spark" in request.fixturenames:
        request.getfixturevalue("spark").catalog.clearCache()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder {REAL_DATA} not found")
    return REAL_DATA
