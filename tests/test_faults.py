"""Faults: a second command on a held output, and real processes killed at a stage boundary
and in the middle of a commit (trust issue, findings 5 and 6).

The killed processes are real ``zicht run`` children that SIGKILL themselves at a named point
(``zicht.jobs.faults``); they reuse the store of the session's tiny run, so they pay for the
later stages only. What they leave behind is then checked byte for byte, and cleaned by what the
next command does first (taking over the dead lease, ``recover``, marking the MLflow run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from zicht.jobs import run as run_job
from zicht.jobs.faults import VARIABLE
from zicht.jobs.fs import FileSystem
from zicht.jobs.outputs import Lease, OutputRefused, recover
from zicht.jobs.tracking import mark_killed

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _lease_body(*, host: str, pid: int, renewed: dt.datetime, mlflow_run_id=None) -> str:
    return json.dumps(
        {
            "host": host,
            "pid": pid,
            "run_id": "r-held",
            "command": "zicht run",
            "started": renewed.isoformat(),
            "renewed": renewed.isoformat(),
            "mlflow_run_id": mlflow_run_id,
        }
    )


@pytest.fixture
def previous(tiny_run: dict[str, Path], tmp_path: Path, monkeypatch) -> Path:
    """A committed output of the tiny input (a copy of the session's), its MLflow store here."""
    out = tmp_path / "output"
    shutil.copytree(tiny_run["output"], out)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return out


def _argv(tiny_run: dict[str, Path], out: Path) -> list[str]:
    store = str(tiny_run["root"] / "zicht_store")
    return ["--input", str(tiny_run["input"]), "--output", str(out), "--store", store, "-q"]


def _killed_run(argv: list[str], point: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zicht.jobs.cli", "run", *argv],
        env={**os.environ, VARIABLE: point},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_second_command_on_a_held_output_is_refused(
    spark: SparkSession, tiny_run: dict[str, Path], previous: Path, capsys
) -> None:
    before = _snapshot(previous)
    lock = previous.parent / ".output.lock"
    # held by a live process of this host (this test's own), renewed just now
    now = dt.datetime.now(dt.UTC)
    lock.write_text(_lease_body(host=socket.gethostname(), pid=os.getpid(), renewed=now))
    assert run_job.main(_argv(tiny_run, previous)) == 3
    err = capsys.readouterr().err
    assert "in use by zicht run run r-held" in err and str(os.getpid()) in err
    assert _snapshot(previous) == before
    lock.unlink()

    files = FileSystem(spark)
    first = Lease(files, str(previous), run_id="a", command="zicht run")
    first.acquire()
    with pytest.raises(OutputRefused, match="in use by zicht run run a"):
        Lease(files, str(previous), run_id="b", command="zicht export").acquire()
    first.release()
    assert not lock.exists()


def test_a_lease_nobody_renews_is_taken_over(spark: SparkSession, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    lock.write_text(_lease_body(host="another-node", pid=1, renewed=old))
    lease = Lease(FileSystem(spark), str(out), run_id="new", command="zicht run")
    lease.acquire()
    assert lease.previous is not None and lease.previous["host"] == "another-node"
    assert json.loads(lock.read_text())["run_id"] == "new"
    lease.release()


def test_kill_at_a_stage_boundary_keeps_the_output_and_is_cleaned_next_time(
    spark: SparkSession, tiny_run: dict[str, Path], previous: Path
) -> None:
    before = _snapshot(previous)
    killed = _killed_run(_argv(tiny_run, previous), "after:ingest")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _snapshot(previous) == before  # the previous output, byte for byte
    debris = sorted(p.name for p in previous.parent.iterdir() if p.name.startswith(".output."))
    assert [d for d in debris if d.startswith(".output.tmp-")]  # its person-level work folder
    held = json.loads((previous.parent / ".output.lock").read_text())
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert MlflowClient(uri).get_run(held["mlflow_run_id"]).info.status == "RUNNING"

    # what the next command does first: take over the dead lease, mark its run, clean up
    files = FileSystem(spark)
    lease = Lease(files, str(previous), run_id="next", command="zicht run")
    lease.acquire()
    assert lease.previous is not None and lease.previous["pid"] == held["pid"]
    assert mark_killed(str(previous), held["mlflow_run_id"])
    assert MlflowClient(uri).get_run(held["mlflow_run_id"]).info.status == "KILLED"
    done = recover(files, str(previous))
    assert any("did not finish" in line for line in done)
    assert not [p for p in previous.parent.iterdir() if p.name.startswith(".output.tmp-")]
    assert _snapshot(previous) == before
    lease.release()


COMMIT_CHILD = """
import sys
from pyspark.sql import SparkSession
from zicht.jobs.fs import FileSystem
from zicht.jobs.outputs import commit_rename
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
commit_rename(FileSystem(spark), sys.argv[1], sys.argv[2], "child")
"""


def test_kill_in_the_middle_of_the_swap_restores_the_previous_output(
    spark: SparkSession, previous: Path
) -> None:
    """A real process runs the rename commit of a finished work folder and is killed after
    moving the previous output aside, before moving the new one in."""
    before = _snapshot(previous)
    work = previous.parent / ".output.tmp-child"
    shutil.copytree(previous, work)
    (work / "export" / "codebook.csv").write_text("the new run's codebook\n")
    killed = subprocess.run(
        [sys.executable, "-c", COMMIT_CHILD, str(work), str(previous)],
        env={**os.environ, VARIABLE: "commit:aside"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not previous.exists()  # moved aside, the new one not yet in
    aside = [p for p in previous.parent.iterdir() if p.name.startswith(".output.old-")]
    assert len(aside) == 1 and _snapshot(aside[0]) == before

    done = recover(FileSystem(spark), str(previous))
    assert any("restored the previous output" in line for line in done)
    assert any("did not finish" in line for line in done)  # the work folder went too
    assert _snapshot(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir() if p.name.startswith(".")) == []


def test_a_corrupt_parquet_page_is_one_message(
    tiny_run: dict[str, Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    """Bytes overwritten inside a data page (the footer intact, so the schema reads): exit 3
    with one line naming the table and the file, not Spark's Java stack trace."""
    from zicht.jobs import ingest as ingest_job

    inp = tmp_path / "input"
    shutil.copytree(tiny_run["input"], inp)
    part = next((inp / "incidents.parquet").glob("part-*.parquet"))
    data = bytearray(part.read_bytes())
    data[200:2200] = b"\xab" * 2000
    part.write_bytes(bytes(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code = ingest_job.main(["--input", str(inp), "--output", str(tmp_path / "out"), "-q"])
    assert code == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "\tat org.apache" not in err
    ours = [line for line in err.splitlines() if line.startswith("zicht ingest:")]
    assert len(ours) == 1, err
    assert ours[0].startswith("zicht ingest: table incidents: cannot read ")
    assert part.name in ours[0] and "corrupt" in ours[0]
