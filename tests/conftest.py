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
# The suite is CPU-bound on two cores and its JVMs live minutes on small frames: C1 only and the
# serial collector cut the CPU of a tiny pipeline run by 28 % (213 -> 153 core-s, the same wall
# time alone). Every JVM the tests start inherits it: the workers', child zicht runs', the
# loopback cluster's. Production runs keep the JVM's defaults (C2 pays off on long jobs).
# C1 alone reserves a 48 MiB code cache (tiered: 240 MiB); a worker's JVM compiles Catalyst's
# generated classes for the whole suite and filled it ("Out of space in CodeCache for
# adapters", a VirtualMachineError that kills the JVM mid-test), so the cache is set back.
os.environ.setdefault(
    "JAVA_TOOL_OPTIONS",
    "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m",
)


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
# files whose tests need the tiny run, the slowest first (they run after every other file, so
# under xdist the one shared tiny run is made while the workers run the rest)
TINY_RUN_HEAVY_FIRST = (
    "test_locations_pointer.py",
    "test_locations.py",
    "test_e2e.py",
    "test_lineage.py",
    "test_faults.py",
)
TINY_RUN_WAIT_S = 1800


def _needs_tiny_run(item: pytest.Item) -> bool:
    return "tiny_run" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: only what will run counts
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    """Tests that need the tiny run go last (files stay whole, their order otherwise kept); the
    first xdist worker then starts the shared tiny run in a process of its own."""
    files_needing = {item.path for item in items if _needs_tiny_run(item)}

    def rank(item: pytest.Item) -> tuple[int, int]:
        if item.path not in files_needing:
            return (0, 0)
        name = item.path.name
        heavy = TINY_RUN_HEAVY_FIRST
        return (1, heavy.index(name) if name in heavy else len(heavy))

    items[:] = sorted(items, key=rank)  # stable: the collection order within a rank
    worker = getattr(config, "workerinput", None)
    if files_needing and worker is not None and worker["workerid"] == "gw0":
        _start_shared_tiny_run(config)


def _shared_tiny_run_folder(config: pytest.Config) -> Path:
    """A folder all xdist workers of this session see: the parent of their base temp folders
    (pytest-xdist gives each worker ``<session base>/popen-gwN``)."""
    return config._tmp_path_factory.getbasetemp().parent / "tiny-run"  # type: ignore[attr-defined]


def _start_shared_tiny_run(config: pytest.Config) -> None:
    import subprocess

    folder = _shared_tiny_run_folder(config)
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with open(folder / "log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("_tiny_run.py")),
                str(folder),
                str(TINY_SEED),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    config.stash[_TINY_PROC] = proc
    (folder / "pid.tmp").write_text(str(proc.pid))
    (folder / "pid.tmp").rename(folder / "pid")  # whole: the waiting workers watch it (_alive)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


_TINY_PROC = pytest.StashKey["subprocess.Popen[bytes]"]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """An interrupted session does not leave the tiny run's process (and its JVM) behind."""
    proc = config.stash.get(_TINY_PROC, None)
    if proc is not None and proc.poll() is None:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def tiny_run(
    request: pytest.FixtureRequest, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """``zicht synth --scale tiny --seed 7`` then ``zicht run``, once per test session.

    The end-to-end checks, the cluster test's local-mode reference and the notebooks read this
    one run (a whole pipeline run costs about two minutes here). Under xdist the workers share
    one run, made by a process the first worker starts after collection (``_tiny_run.py``);
    run serially, it is made here. Tests that change an output work on a copy; a test that
    reruns into ``output`` must leave it as it was (a failed run does).
    """
    if hasattr(request.config, "workerinput"):
        return _wait_for_shared_tiny_run(_shared_tiny_run_folder(request.config))
    import _tiny_run

    root = tmp_path_factory.mktemp("tiny-run")
    assert _tiny_run.main(root, TINY_SEED) == 0
    return {"root": root, "input": root / "input", "output": root / "output"}


def _wait_for_shared_tiny_run(folder: Path) -> dict[str, Path]:
    import time

    deadline = time.monotonic() + TINY_RUN_WAIT_S
    while not (folder / "rc").is_file():
        if time.monotonic() > deadline:
            pytest.fail(f"the shared tiny run in {folder} did not finish in {TINY_RUN_WAIT_S} s")
        pid = folder / "pid"
        if pid.is_file() and not _alive(int(pid.read_text())) and not (folder / "rc").is_file():
            # killed before it could write rc (a signal, the OOM killer): say so now
            log = (folder / "log").read_text(errors="replace")[-4000:]
            pytest.fail(f"the shared tiny run's process died without an exit code:\n{log}")
        time.sleep(1)
    rc = (folder / "rc").read_text().strip()
    if rc != "0":
        log = (folder / "log").read_text(errors="replace")[-4000:]
        pytest.fail(f"the shared tiny run failed (exit code {rc}):\n{log}")
    return {"root": folder, "input": folder / "input", "output": folder / "output"}


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
