"""zicht under the real ``spark-submit`` on a standalone cluster on loopback.

Both tests use what ``make dist`` builds: the wheel on ``--py-files`` (as ``.zip``) and the
executors' environment, ``zicht-executor.pex``, on ``--files`` as ``spark.pyspark.python``. The
driver's Python does *not* have zicht installed (a bare venv that sees the dev venv's third-party
packages through a ``.pth`` line, which skips zicht's editable-install hook); the executors' Python
has nothing installed at all (a venv without pip, first on the executors' ``PATH``, where the
PEX's ``#!/usr/bin/env python3.X`` finds it). So they prove that the wheel alone carries zicht to
the driver and to the executors, and that the PEX alone carries what the executors import. The
cluster is a master and two workers
started from the installed pyspark's ``spark-class``, bound to 127.0.0.1, one core and 1 GB each,
stopped by PID. The local-mode reference is the session's pipeline run (local master, one
shuffle partition).

- ``make test`` runs one stage job on the cluster: ``jobs/export/__main__.py --from`` on a copy of the
  local run must write the same partner tables again from the restricted ones.
- ``make test-cluster`` (marker ``cluster_run``) also runs the whole pipeline, ``jobs/run.py``,
  on the cluster; its export must equal the local one byte for byte. It takes about three
  minutes on two cores, which the 10-minute budget of ``make test`` cannot carry.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest

pytestmark = [pytest.mark.heavy, pytest.mark.e2e, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPARK_HOME = Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def wheel(root: Path) -> Path:
    out = root / "dist"
    # -o: never reinstall the dev venv from here, only build
    t0 = time.perf_counter()
    subprocess.run(
        ["make", "-s", "-o", ".venv/.install-stamp", "dist", f"DIST_DIR={out}"],
        cwd=REPO,
        check=True,
        timeout=600,
    )
    print(f"make dist: {time.perf_counter() - t0:.0f} s")
    (whl,) = out.glob("zicht-*.whl")
    # PySpark puts only .zip, .egg and .jar py-files on the executors' path, so the job gets the
    # wheel's bytes under a .zip name
    (zipped,) = out.glob("zicht-*.zip")
    assert zipped.read_bytes() == whl.read_bytes()
    return zipped


@pytest.fixture(scope="module")
def executor_env(root: Path, wheel: Path) -> tuple[Path, Path]:
    """The PEX of ``make dist`` and a Python with nothing installed for it to run on."""
    pex = wheel.parent / "zicht-executor.pex"
    env = root / "clean"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    probe = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import pandas"], capture_output=True
    )
    assert probe.returncode != 0, "the executors' python must have nothing installed"
    return pex, env / "bin"


@pytest.fixture(scope="module")
def bare_python(root: Path) -> Path:
    """A Python with pyspark, pandas, igraph ... but without zicht."""
    env = root / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = (env / "lib").glob("python3*/site-packages")
    (site / "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = env / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import zicht.jobs"], capture_output=True)
    assert probe.returncode != 0, "the bare python must not import zicht by itself"
    return py


@pytest.fixture(scope="module")
def tiny_input(tiny_run: dict[str, Path]) -> Path:
    return tiny_run["input"]


def _env(python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env |= {
        "SPARK_HOME": str(SPARK_HOME),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    return env


def submit(
    master: str,
    *,
    wheel: Path,
    python: Path,
    job: str,
    args: list[str],
    cwd: Path,
    executor_env: tuple[Path, Path] | None = None,
) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [
        str(BIN / "spark-submit"),
        "--master",
        master,
        "--driver-memory",
        "1g",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        f"spark.local.dir={cwd / 'spark-local'}",
        "--py-files",
        str(wheel),
        str(REPO / "jobs" / job),
        *args,
    ]
    if master.startswith("spark://"):
        cmd[3:3] = ["--executor-memory", "768m", "--total-executor-cores", "2"]
    if executor_env is not None:
        # as the README shows: the PEX next to each executor, started as its Python (the driver
        # keeps its own: spark.pyspark.python alone would apply to the driver too)
        pex, clean_bin = executor_env
        cmd[3:3] = [
            "--files",
            str(pex),
            "--conf",
            f"spark.pyspark.driver.python={python}",
            "--conf",
            f"spark.pyspark.python=./{pex.name}",
            "--conf",
            "spark.executorEnv.PEX_ROOT=./.pex",
            "--conf",
            f"spark.executorEnv.PATH={clean_bin}:/usr/bin:/bin",
        ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=_env(python), capture_output=True, text=True, timeout=900, cwd=cwd
    )
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def local_run(tiny_run: dict[str, Path]) -> Path:
    """The local-mode reference: the session's ``zicht run`` on the shared local session."""
    return tiny_run["output"]


def _csv_differences(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    return [n for n in names if n.endswith(".csv") and (a / n).read_bytes() != (b / n).read_bytes()]


@pytest.fixture(scope="module")
def standalone(root: Path) -> Iterator[dict[str, str]]:
    """A master and two workers on 127.0.0.1, from the installed pyspark's spark-class."""
    port, ui = _free_port(), _free_port()
    env = _env(Path(sys.executable)) | {
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_WORKER_DIR": str(root / "work"),
        "SPARK_LOCAL_DIRS": str(root / "spark-local"),
    }
    logs = root / "logs"
    logs.mkdir()
    klass = "org.apache.spark.deploy"
    cmds = [
        [f"{klass}.master.Master", "--host", "127.0.0.1", "--port", str(port)]
        + ["--webui-port", str(ui)],
    ]
    for i in range(2):
        cmds.append(
            [f"{klass}.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1"]
            + ["--cores", "1", "--memory", "1g", "--webui-port", str(_free_port())]
            + ["--work-dir", str(root / f"work{i}")]
        )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, args in enumerate(cmds):
            with (logs / f"daemon{i}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [str(BIN / "spark-class"), *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            if i == 0:
                _wait_for(lambda: _master_state(ui) is not None, "the master's status page")
        _wait_for(lambda: (_master_state(ui) or {}).get("aliveworkers") == 2, "two workers")
        yield {"master": f"spark://127.0.0.1:{port}", "ui": str(ui)}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _master_state(ui: int | str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def _wait_for(cond, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_stage_job_on_the_standalone_cluster(
    root: Path, standalone, wheel: Path, executor_env, bare_python: Path, local_run: Path
) -> None:
    """``spark-submit jobs/export/__main__.py --from OUTPUT`` on the cluster: the export stage alone, on a
    copy of the local run, writes the same partner tables again from the restricted ones; its
    disclosure audit runs in pandas UDFs on the executors, in the PEX."""
    out = root / "stage" / "output"
    shutil.copytree(local_run, out)
    shutil.rmtree(out / "export")
    (out / "export").mkdir()
    started = time.time()
    proc, secs = submit(
        standalone["master"],
        wheel=wheel,
        python=bare_python,
        job="export/__main__.py",
        args=["--from", str(out)],
        cwd=out.parent,
        executor_env=executor_env,
    )
    print(f"spark-submit on the standalone cluster, jobs/export/__main__.py --from: {secs:.0f} s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    _assert_ran_on_the_cluster(standalone)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["exports"]) == 1
    assert manifest["zicht_version"] == "0.1.0"  # read from the wheel's metadata
    assert not _csv_differences(local_run / "export", out / "export")
    _assert_executors_ran_the_pex(root, since=started)


def _assert_ran_on_the_cluster(standalone: dict[str, str]) -> None:
    state = _master_state(standalone["ui"]) or {}
    apps = state.get("completedapps", []) + state.get("activeapps", [])
    assert apps and all(a["cores"] >= 1 for a in apps), "the job did not run on the cluster"


def _assert_executors_ran_the_pex(root: Path, *, since: float) -> None:
    """The PEX unpacks into PEX_ROOT (./.pex) in an executor's folder on its first start."""
    booted = [p for p in root.glob("work*/app-*/*/.pex") if p.stat().st_mtime >= since]
    assert booted, "no executor of this application started the PEX"


@pytest.mark.cluster_run
def test_standalone_cluster_export_equals_local(
    root: Path,
    standalone,
    wheel: Path,
    executor_env,
    bare_python: Path,
    tiny_input: Path,
    local_run: Path,
) -> None:
    out = root / "on-cluster" / "output"
    out.parent.mkdir()
    started = time.time()
    proc, secs = submit(
        standalone["master"],
        wheel=wheel,
        python=bare_python,
        job="run.py",
        args=["--input", str(tiny_input), "--output", str(out)],
        cwd=out.parent,
        executor_env=executor_env,
    )
    print(f"spark-submit on the standalone cluster: {secs:.0f} s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    _assert_ran_on_the_cluster(standalone)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["zicht_version"] == "0.1.0"  # read from the wheel's metadata
    differing = _csv_differences(local_run / "export", out / "export")
    assert not differing, differing
    _assert_executors_ran_the_pex(root, since=started)
    shutil.rmtree(root / "work0", ignore_errors=True)
