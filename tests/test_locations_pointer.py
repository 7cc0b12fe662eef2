"""The pointer commit, killed between the run folder and the pointer (issue 14, CONTRACT.md
section 1). Its own file, apart from ``test_locations.py``'s viewfs run, so the two child runs
can go to different xdist workers.

The pointer commit is what object stores get (pyspark ships no s3a classes, so Spark on a real
object store cannot be tested offline); here it is forced on a local output, and a child
process is killed between the run folder and the pointer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from zicht.jobs.faults import VARIABLE
from zicht.jobs.outputs import MARKER, POINTER, RUNS

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

LEVELS = ("buurt", "wijk", "gemeente")
PARTNER_FILES = [f"export/indicators_{lvl}.csv" for lvl in LEVELS] + ["export/codebook.csv"]


def _zicht(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zicht.jobs.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_pointer_commit_and_a_kill_before_the_pointer(
    spark: SparkSession, tiny_run: dict[str, Path], tmp_path: Path
) -> None:
    """An output in the pointer layout whose current run is a copy of the session's tiny run;
    a real ``zicht run`` process is killed between writing its run folder and the pointer."""
    from zicht.jobs.fs import FileSystem
    from zicht.jobs.outputs import commit_pointer, readable, recover

    out = tmp_path / "output"
    shutil.copytree(tiny_run["output"], out / RUNS / "previous")
    (out / MARKER).write_text("{}")
    (out / POINTER).write_text("previous\n")
    before = _snapshot(out)
    conf = tmp_path / "pointer.yaml"
    conf.write_text("output:\n  commit: pointer\n")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    # the store of the session's tiny run is reused: the child pays for the later stages only
    store = str(tiny_run["root"] / "zicht_store")
    argv = ["--input", str(tiny_run["input"]), "--output", str(out), "--store", store]
    killed = _zicht(
        "run", *argv, "--conf", str(conf), "-q", env={**env, VARIABLE: "commit:pointer"}
    )
    assert killed.returncode == -9, _first_error(killed.stderr)  # SIGKILL, before the pointer
    assert (out / POINTER).read_text().strip() == "previous"
    for rel, data in before.items():
        assert (out / rel).read_bytes() == data, rel  # the current run is untouched
    files = FileSystem(spark)
    assert readable(files, str(out)) == f"{out}/{RUNS}/previous"
    (orphan,) = [p.name for p in (out / RUNS).iterdir() if p.name != "previous"]
    # the run folder was complete: the same partner files as the local run's
    for rel in PARTNER_FILES:
        got = (out / RUNS / orphan / rel).read_bytes()
        assert got == (tiny_run["output"] / rel).read_bytes(), rel
    assert json.loads((out / RUNS / orphan / "manifest.json").read_text())["store"]["reused"]

    # had it lived: the pointer, written last, makes it current and drops the older run
    commit_pointer(files, str(out), orphan)
    assert readable(files, str(out)) == f"{out}/{RUNS}/{orphan}"
    assert sorted(p.name for p in (out / RUNS).iterdir()) == [orphan]
    assert recover(files, str(out)) == []


def _first_error(stderr: str) -> str:
    """The first traceback of a child's stderr and its end: a later one (a clean-up failing
    because the JVM has gone) hides the cause."""
    start = stderr.find("Traceback")
    head = stderr[start : start + 3000] if start >= 0 else ""
    return f"{head}\n...\n{stderr[-2000:]}"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
