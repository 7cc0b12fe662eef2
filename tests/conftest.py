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


def key(pseudonym: str) -> int:
    """The store's surrogate key of a pseudonym, computed without Spark: XXH64 of its UTF-8
    bytes with seed 42 (what Spark's ``xxhash64`` does), as a signed 64-bit integer."""
    import xxhash

    h = xxhash.xxh64_intdigest(pseudonym.encode("utf-8"), seed=42)
    return h - (1 << 64) if h >= (1 << 63) else h


if not SHARED.is_dir():  # CI lays shared/ beside the clone; a checkout may sit deeper
    SHARED = Path(os.environ.get("ZICHT_SHARED", "../shared")).resolve()
REAL_DATA = SHARED / "data" / "real"
# a team's overlay (zicht.jobs.config) must not change what the tests expect; tests of it set it
os.environ.pop("ZICHT_CONF", None)


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


TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``zicht synth --scale tiny --seed 7`` then ``zicht run``, once per test session.

    The end-to-end checks, the cluster test's local-mode reference and the notebooks read this
    one run (a whole pipeline run costs about a minute here). Tests that change an output work
    on a copy; a test that reruns into ``output`` must leave it as it was (a failed run does).
    """
    from zicht.jobs import run as run_job
    from zicht.jobs import synth as synth_job

    root = tmp_path_factory.mktemp("tiny-run")
    code = synth_job.main(
        ["--scale", "tiny", "--seed", str(TINY_SEED), "--out", str(root / "input")]
    )
    assert code == 0
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = run_job.main(["--input", str(root / "input"), "--output", str(root / "output")])
    finally:
        mp.undo()
    assert code == 0
    return {"root": root, "input": root / "input", "output": root / "output"}


@pytest.fixture
def viewfs(spark: SparkSession, tmp_path: Path) -> Iterator[Path]:
    """``viewfs://zt/data`` mounted on ``tmp_path/mnt`` for this test only; yields that folder.

    viewfs on local folders is the offline stand-in for a cluster file system: code that goes
    through ``pathlib`` instead of Hadoop fails there. Hadoop caches one FileSystem per scheme
    and authority and a ViewFileSystem reads its mount table once, when created: without
    ``disable.cache`` a later test would see an earlier test's link.
    """
    mount = tmp_path / "mnt"
    mount.mkdir()
    conf = spark._jsc.hadoopConfiguration()
    link, no_cache = "fs.viewfs.mounttable.zt.link./data", "fs.viewfs.impl.disable.cache"
    before = {k: conf.get(k) for k in (link, no_cache)}
    conf.set(link, mount.as_uri())
    conf.set(no_cache, "true")
    yield mount
    for k, v in before.items():
        if v is None:
            conf.unset(k)
        else:
            conf.set(k, v)
