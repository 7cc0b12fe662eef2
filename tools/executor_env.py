"""Build the Spark executors' Python environment as one PEX file (``make dist``).

Executors run only zicht's Python UDFs: the point-in-polygon lookup (``zicht.features.link``:
pandas, numpy, shapely), the pseudonym HMAC (``zicht.features.pseudonymize``: pandas) and the
disclosure audit per gemeente (``zicht.models.disclosure``: pandas, numpy, highspy); pyarrow
carries the batches between the JVM and the Python workers. :data:`EXECUTOR_PACKAGES` lists
exactly those, and the PEX holds them with their own dependencies and nothing else:
scikit-learn, igraph, networkx, scipy, matplotlib and mlflow run on the driver only.

- pyspark is left out: Spark puts its own ``pyspark.zip`` on the workers' ``PYTHONPATH``, which
  the PEX keeps (``--inherit-path=fallback``: its own packages first), so the executors always
  run the cluster's Spark.
- zicht is left out: it travels with ``--py-files`` (the wheel as ``.zip``), so a code change
  needs a new wheel only, not a new environment.
- By default the requirements resolve from the venv that runs this script (``pex
  --venv-repository``): no network, and the executors get the versions the driver runs (pandas
  UDFs exchange Arrow batches between the two). ``--python PY`` (repeatable) builds for other
  interpreters instead, resolving from the package registry under this venv's versions as
  constraints; one PEX then serves executors on any of them.

A PEX is a zip with a ``#!/usr/bin/env python3.X`` line: the executors need a Python of that
version on their ``PATH`` and nothing else. Spark ships it with ``--files`` and starts it as the
workers' Python (``spark.pyspark.python=./zicht-executor.pex``); the first start on each
executor unpacks it under ``PEX_ROOT``.

    python tools/executor_env.py --out dist/zicht-executor.pex [--python python3.12 ...]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# What the executors import, read from the UDFs named in the docstring. Add a package here when
# a UDF starts importing it; tests/test_dist.py imports the UDF modules with this environment.
EXECUTOR_PACKAGES = ("pandas", "pyarrow", "numpy", "shapely", "highspy")
MIB = 1024 * 1024


def pinned(names: Sequence[str]) -> list[str]:
    """``name==version`` of each package as this venv has it."""
    return [f"{n}=={importlib.metadata.version(n)}" for n in names]


def closure(names: Sequence[str]) -> list[str]:
    """``name==version`` of the packages and everything they need, as this venv has them."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        dist = importlib.metadata.distribution(name)
        found[name] = f"{dist.metadata['Name']}=={dist.version}"
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(found.values())


def pex_command(out: Path, pythons: Sequence[str], constraints: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "pex", *pinned(EXECUTOR_PACKAGES), "-o", str(out)]
    # keep the PYTHONPATH Spark gives its workers (pyspark.zip, py4j): without it the PEX
    # scrubs sys.path and the worker cannot import pyspark
    cmd += ["--inherit-path=fallback", "--no-emit-warnings"]
    if pythons:
        for py in pythons:
            cmd += ["--python", py]
        # the legacy resolver pex would pick for some interpreters fails on pinned downloads
        cmd += ["--resolver-version", "pip-2020-resolver"]
        if constraints is not None:
            cmd += ["--constraints", str(constraints)]
    else:
        cmd += ["--venv-repository", sys.prefix]
    return cmd


def describe(pex: Path) -> dict[str, Any]:
    """What the PEX holds and how large it is: the file and its packages unpacked."""
    with zipfile.ZipFile(pex) as z:
        info = json.loads(z.read("PEX-INFO"))
        unpacked = sum(i.file_size for i in z.infolist() if i.filename.startswith(".deps/"))
    return {
        "file": str(pex),
        "file_mib": round(pex.stat().st_size / MIB, 1),
        "unpacked_mib": round(unpacked / MIB, 1),
        "requirements": info["requirements"],
        "distributions": sorted(info["distributions"]),
    }


def build(out: Path, pythons: Sequence[str] = ()) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        constraints = None
        if pythons:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("\n".join(closure(EXECUTOR_PACKAGES)) + "\n")
        subprocess.run(pex_command(out, pythons, constraints), check=True)
    return describe(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("dist/zicht-executor.pex"))
    p.add_argument(
        "--python",
        action="append",
        default=[],
        help="an interpreter the executors run (repeatable); default: this venv's, offline",
    )
    args = p.parse_args(argv)
    summary = build(args.out, args.python)
    print(
        f"{summary['file']}: {summary['file_mib']} MiB "
        f"({summary['unpacked_mib']} MiB unpacked), {', '.join(summary['requirements'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
