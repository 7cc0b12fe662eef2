"""The executors' environment of ``make dist`` (``tools/executor_env.py``): one PEX file.

Built once per module from this venv (offline). Checked against pex's own record of what it
packed (``PEX-INFO``) and by running it the way an executor does: on a Python that has nothing
installed, with Spark's ``pyspark.zip`` and py4j on ``PYTHONPATH`` and zicht's code beside them,
importing the modules whose functions run in Spark's Python workers and every package those
modules import anywhere in their code (read with ``ast``, so an import added inside a UDF is
caught too). The whole jobs run on executors with this PEX in ``tests/test_cluster.py``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyspark
import pytest

pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("executor_env", REPO / "tools" / "executor_env.py")
assert _spec is not None and _spec.loader is not None
executor_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(executor_env)

# the modules whose functions Spark ships to the Python workers (pandas UDFs, applyInPandas)
UDF_MODULES = {
    "zicht.features.link": REPO / "features" / "link.py",
    "zicht.features.pseudonymize": REPO / "features" / "pseudonymize.py",
    "zicht.models.disclosure": REPO / "models" / "disclosure.py",
}
DRIVER_ONLY = ("scikit-learn", "scipy", "igraph", "networkx", "matplotlib", "mlflow", "pyspark")
PROVIDED = {"zicht", "pyspark", "py4j"}  # --py-files and Spark bring these


@pytest.fixture(scope="module")
def pex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "zicht-executor.pex"
    executor_env.build(out)
    return out


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("clean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    py = env / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import pandas"], capture_output=True)
    assert probe.returncode != 0, "the clean python must have nothing installed"
    return py


def _pex_info(pex: Path) -> dict:
    with zipfile.ZipFile(pex) as z:
        return json.loads(z.read("PEX-INFO"))


def _name_version(wheel: str) -> tuple[str, str]:
    name, version = wheel.split("-")[:2]
    return name.lower().replace("_", "-"), version


def test_the_pex_holds_the_executor_packages_at_the_drivers_versions(pex: Path) -> None:
    packed = dict(_name_version(w) for w in _pex_info(pex)["distributions"])
    print(f"{pex.name}: {pex.stat().st_size / 2**20:.1f} MiB, {sorted(packed.items())}")
    for name in executor_env.EXECUTOR_PACKAGES:
        assert packed[name] == importlib.metadata.version(name), name
    # nothing beyond the listed packages and what they need (python-dateutil, tzdata, ...)
    expected = {
        r.split("==")[0].lower() for r in executor_env.closure(executor_env.EXECUTOR_PACKAGES)
    }
    assert set(packed) == expected
    for name in DRIVER_ONLY:
        assert name not in packed


def _third_party_imports(path: Path) -> set[str]:
    """Top-level packages a module imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names and n not in PROVIDED}


def _zicht_source(root: Path) -> Path:
    """zicht's code as the wheel lays it out (a namespace package), without installing it."""
    pkg = root / "zicht"
    pkg.mkdir(parents=True)
    for name, folder in (("jobs", "jobs"), ("features", "features"), ("models", "models")):
        (pkg / name).symlink_to(REPO / folder)
    (pkg / "conf").symlink_to(REPO / "conf" / "base")
    return root


def test_the_udf_modules_import_in_the_pex_on_a_bare_python(
    pex: Path, clean_python: Path, tmp_path: Path
) -> None:
    packages = set().union(*(_third_party_imports(p) for p in UDF_MODULES.values()))
    print(f"packages the UDF modules import: {sorted(packages)}")
    assert {"pandas", "numpy", "shapely", "highspy"} <= packages  # the scan sees lazy imports
    spark_lib = Path(pyspark.__file__).parent / "python" / "lib"
    pythonpath = [str(_zicht_source(tmp_path / "src")), *map(str, sorted(spark_lib.glob("*.zip")))]
    code = "; ".join(
        [f"import {m}" for m in sorted(UDF_MODULES)]
        + [f"import {p}" for p in sorted(packages | {"pyarrow"})]
        + ["import pandas, pyspark; print(pandas.__file__, pyspark.__file__)"]
    )
    env = {"PYTHONPATH": ":".join(pythonpath), "PEX_ROOT": str(tmp_path / "pex-root")}
    proc = subprocess.run(
        [str(clean_python), str(pex), "-c", code], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pandas_at, pyspark_at = proc.stdout.split()
    assert pandas_at.startswith(str(tmp_path / "pex-root"))  # from the PEX, not a venv
    assert pyspark_at.startswith(str(spark_lib))  # Spark's own, through PYTHONPATH

    # and nothing of the driver's: the PEX on a bare Python has no scikit-learn
    proc = subprocess.run(
        [str(clean_python), str(pex), "-c", "import sklearn"], env=env, capture_output=True
    )
    assert proc.returncode != 0
