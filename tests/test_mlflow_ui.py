"""``make mlflow-ui``: the MLflow server on loopback finds a run through its REST API.

A small MLflow run (params, metrics, one artifact) goes into a SQLite store laid out as
``zicht run`` lays it out (``mlflow.db`` beside the output folder, artifacts in ``mlruns/``
beside it), without the Spark pipeline. The test then starts the Makefile's own target on a free
port of 127.0.0.1, waits for ``/health``, finds the run by experiment name through the REST
API, reads its artifact and the UI's root page, and stops the server by its process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.heavy]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
EXPERIMENT = "zicht-ui-test"
START_TIMEOUT_S = 180  # /health after ~30 s on an idle two-core machine; others share it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.loads(r.read()))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A SQLite store with one run, as zicht run leaves it; returns (mlflow.db, run id)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-ui")
    db = root / "mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "mlruns").as_uri())
    run = client.create_run(exp_id, run_name="zicht-run-ui-test")
    rid = run.info.run_id
    client.log_param(rid, "disclosure.min_count", "10")
    client.log_param(rid, "model.n_clusters", "6")
    client.log_metric(rid, "indicator_cells", 1234.0)
    client.log_metric(rid, "time_indicators_s", 2.5)
    note = root / "note.txt"
    note.write_text("manifest stand-in\n")
    client.log_artifact(rid, str(note))
    client.set_terminated(rid)
    return db, rid


@pytest.fixture(scope="module")
def server(store: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``make mlflow-ui`` on a free loopback port; yields the base URL, stops it afterwards."""
    db, _ = store
    port = _free_port()
    log_path = tmp_path_factory.mktemp("mlflow-ui-log") / "server.log"
    cmd = [
        "make",
        "--no-print-directory",
        "-o",
        f"{VENV}/.install-stamp",  # never (re)install from a test
        "mlflow-ui",
        f"VENV={VENV}",
        f"MLFLOW_DB={db}",
        f"MLFLOW_PORT={port}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with log_path.open("wb") as log:
        # its own process group: make, mlflow server and its uvicorn worker stop together
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow-ui exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if _get(f"{base}/health", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                pytest.fail(f"no /health after {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(1)
        print(f"mlflow-ui on {base}: /health after {time.perf_counter() - t0:.0f} s")
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_the_ui_serves_the_run_on_loopback(server: str, store: tuple[Path, str]) -> None:
    _, run_id = store
    status, _, body = _get(
        f"{server}/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}"
    )
    assert status == 200
    experiment = json.loads(body)["experiment"]
    runs = _post(
        f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]}
    )["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    data = runs[0]["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {
        "disclosure.min_count": "10",
        "model.n_clusters": "6",
    }
    assert {m["key"]: m["value"] for m in data["metrics"]} == {
        "indicator_cells": 1234.0,
        "time_indicators_s": 2.5,
    }
    assert runs[0]["info"]["status"] == "FINISHED"

    # the artifact under the experiment's own location (mlruns/ beside the store)
    status, _, text = _get(f"{server}/get-artifact?path=note.txt&run_uuid={run_id}")
    assert (status, text) == (200, "manifest stand-in\n")

    status, content_type, page = _get(f"{server}/")
    assert status == 200
    assert content_type.startswith("text/html")
    assert "<html" in page.lower()


def _listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (Linux /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(server: str) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read the listening sockets from")
    port = int(server.rsplit(":", 1)[1])
    # 127.0.0.1 in /proc/net/tcp's little-endian hex; never 00000000 (all interfaces)
    assert _listening(port) == {"0100007F"}
