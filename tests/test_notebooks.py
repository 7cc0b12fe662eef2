"""Every notebook in ``notebooks/`` runs top to bottom in a fresh kernel of this venv's Python.

Notebooks are jupytext percent files; each is converted in memory and executed with nbclient in
its own kernel process (so each has its own Spark session, never a shared one). The kernel is a
kernelspec written to a temporary JUPYTER_PATH that starts ``sys.executable``, so the notebooks
see the zicht under test and not whatever ``python3`` kernel a machine has registered; a first
cell injected by the test checks that.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.heavy, pytest.mark.spark]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "zicht-test-venv"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, tiny_run: dict[str, Path]) -> Iterator[str]:
    path = tmp_path_factory.mktemp("jupyter")
    spec = path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "zicht (test venv)",
                "language": "python",
            }
        )
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(path))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the notebooks explore the session's tiny run instead of running the pipeline again
    mp.setenv("ZICHT_EXAMPLE_RUN", str(tiny_run["root"]))
    yield KERNEL
    mp.undo()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_notebook_runs(path: Path, kernel: str, tmp_path: Path) -> None:
    nb = jupytext.read(path)
    nb.cells.insert(
        0, nbformat.v4.new_code_cell(f"import sys\nassert sys.executable == {sys.executable!r}")
    )
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=1800,  # per cell: a guard against a hang, not a time budget
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{path.name}: {time.perf_counter() - t0:.0f} s")
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "each notebook draws at least one plot"
