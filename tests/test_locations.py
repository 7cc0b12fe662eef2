"""Every location a URI, and both ways to commit an output (issue 14, CONTRACT.md section 1).

``viewfs://`` mounted on local folders is the offline stand-in for a cluster file system: code
that still goes through ``pathlib`` or the driver's disk fails loudly there, which a
``file://`` test would not show. The pointer commit is what object stores get (pyspark ships
no s3a classes, so Spark on a real object store cannot be tested offline); here it is forced
on a local output, and a child process is killed between the run folder and the pointer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from zicht.jobs import run as run_job
from zicht.jobs.outputs import MARKER, POINTER, RUNS

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

LEVELS = ("buurt", "wijk", "gemeente")
PARTNER_FILES = [f"export/indicators_{lvl}.csv" for lvl in LEVELS] + ["export/codebook.csv"]


def test_viewfs_run_writes_the_local_runs_partner_files(
    tiny_run: dict[str, Path], viewfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(tiny_run["input"], viewfs / "input")
    # a remote output needs a tracking server; a SQLite file stands in for it here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code = run_job.main(
        ["--input", "viewfs://zt/data/input", "--output", "viewfs://zt/data/output", "-q"]
    )
    assert code == 0
    out = viewfs / "output"
    for rel in PARTNER_FILES:
        assert (out / rel).read_bytes() == (tiny_run["output"] / rel).read_bytes(), rel
    assert (out / MARKER).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["store"]["location"].startswith("viewfs://zt/data/zicht_store/")
    assert not manifest["store"]["reused"]  # a store of its own, beside this output
    # the same digests through viewfs as through the local path: the store's fingerprint too
    local = json.loads((tiny_run["output"] / "manifest.json").read_text())
    assert manifest["store"]["fingerprint"] == local["store"]["fingerprint"]
    # nothing was left beside the output (no temp folder, no old output, no lease, no .crc):
    # the release register and its patterns, and the store
    assert sorted(p.name for p in viewfs.iterdir()) == [
        "input",
        "output",
        "zicht_releases",
        "zicht_releases.json",
        "zicht_store",
    ]


def test_remote_output_without_a_tracking_server_is_refused_before_any_work(
    tiny_run: dict[str, Path], viewfs: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    shutil.copytree(tiny_run["input"], viewfs / "input")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = run_job.main(["--input", "viewfs://zt/data/input", "--output", "viewfs://zt/data/o"])
    assert code == 2
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err
    assert sorted(p.name for p in viewfs.iterdir()) == ["input"]


def test_output_that_is_a_mount_point_is_refused(
    tiny_run: dict[str, Path], viewfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp = tmp_path / "elsewhere"
    shutil.copytree(tiny_run["input"], inp)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run_job.main(["--input", str(inp), "--output", "viewfs://zt/data"]) == 3


def test_recovery_removes_a_run_that_never_got_its_pointer(
    spark: SparkSession, tmp_path: Path
) -> None:
    from zicht.jobs.fs import FileSystem
    from zicht.jobs.outputs import recover

    out = tmp_path / "output"
    for run in ("kept", "orphan"):
        (out / RUNS / run / "export").mkdir(parents=True)
        (out / RUNS / run / "export" / "x.csv").write_text(run)
    (out / MARKER).write_text("{}")
    (out / POINTER).write_text("kept\n")
    done = recover(FileSystem(spark), str(out))
    assert len(done) == 1 and "before its pointer" in done[0]
    assert sorted(p.name for p in (out / RUNS).iterdir()) == ["kept"]
