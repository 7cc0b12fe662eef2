"""The indicator stage alone on an existing store: seconds, the DuckDB ratio, shuffles, core cells.

Not part of the installed package. Reads a finished run's ``manifest.json`` (the store it names,
the period) and runs :class:`zicht.jobs.pipeline.Indicators` on that store in a fresh Spark
session, as ``zicht run`` does, writing into a scratch output folder (``--work``, default
``/tmp/zicht-indicators-bench``). Prints, per repetition, the stage's wall time (reading the
store, building the indicators, writing the four outputs and reading them back), and the ratio
to the DuckDB reference's time for the same input (``duckdb.json`` beside the output, written by
``benchmarks/run_bench.py``). The first repetition includes the JVM's warm-up; in ``zicht run``
the stage runs after ingest and network, on a warm JVM, so the best repetition is the figure to
compare.

Then it compares the core cells (``<P>.incidents``, ``<P>.resident_suspects``,
``context.inhabitants``, ``context.inhabitants_12plus``: the ones the DuckDB reference checks)
with the run's own ``restricted/indicators.parquet`` and prints the mismatches, and with
``--plan`` counts the shuffles (``Exchange`` nodes of the executed physical plans of the cells,
the area features and the magnitude contributors, the plan built whole without checkpoints).

``--indicators-module FILE`` runs another version of ``zicht.features.indicators`` (a copy
saved from git) for a before/after comparison on the same machine and session settings::

    .venv/bin/python benchmarks/indicators_bench.py --output bench/medium/output [--repeat 3]
    git show HEAD:features/indicators.py > /tmp/indicators_old.py
    .venv/bin/python benchmarks/indicators_bench.py --output bench/medium/output \\
        --indicators-module /tmp/indicators_old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORE = re.compile(r"^(\w+\.incidents|\w+\.resident_suspects|context\.inhabitants(_12plus)?)$")


def _use_module(path: str) -> None:
    """Make ``zicht.features.indicators`` the module in ``path`` (the stage imports it late)."""
    spec = importlib.util.spec_from_file_location("zicht.features.indicators", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["zicht.features.indicators"] = module
    spec.loader.exec_module(module)
    # an older Sources may lack fields the stage passes now (population, ...): drop those
    fields = set(module.Sources.__dataclass_fields__)
    original = module.Sources

    def sources(**kwargs: Any) -> Any:
        return original(**{k: v for k, v in kwargs.items() if k in fields})

    module.Sources = sources


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def exchanges(plan: str) -> int:
    """Shuffles in an executed plan's text: Exchange nodes, not the reuse of one."""
    return len(re.findall(r"^\s*[:+\- ]*(?:\(\d+\) )?Exchange\b", plan, flags=re.M))


def plan_text(df: Any) -> str:
    return str(df._jdf.queryExecution().executedPlan().toString())


def compare_core(work: Path, output: Path) -> None:
    """The core cells of this run against the run's own (DuckDB checked those)."""
    import pandas as pd

    got = pd.read_parquet(work / "restricted" / "indicators.parquet")
    ref_path = output / "restricted" / "indicators.parquet"
    if not ref_path.exists():
        return
    ref = pd.read_parquet(ref_path)
    keys = ["level", "area_code", "year", "indicator"]
    a = got[got["indicator"].str.match(CORE)].set_index(keys)["value"]
    b = ref[ref["indicator"].str.match(CORE)].set_index(keys)["value"]
    joined = pd.concat([a.rename("new"), b.rename("run")], axis=1)
    bad = joined[~((joined["new"] == joined["run"]) | (joined.isna().all(axis=1)))]
    print(f"core cells: {len(joined)} compared with {ref_path}, {len(bad)} differ", flush=True)
    if len(bad):
        print(bad.head(10).to_string(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--output", default=str(REPO / "bench" / "medium" / "output"))
    p.add_argument("--work", default="/tmp/zicht-indicators-bench")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--conf", default=None, help="YAML overlay, as for zicht run")
    p.add_argument("--indicators-module", default=None)
    p.add_argument("--plan", action="store_true", help="count the shuffles of the whole plan")
    args = p.parse_args(argv)
    if args.indicators_module:
        _use_module(args.indicators_module)

    from zicht.jobs import fs as fsmod
    from zicht.jobs import store
    from zicht.jobs.config import load_settings
    from zicht.jobs.context import RunContext
    from zicht.jobs.pipeline import Indicators, load_linked
    from zicht.jobs.runtime import build_spark

    output = Path(args.output).resolve()
    manifest = json.loads((output / "manifest.json").read_text())
    settings = load_settings(args.conf)
    spark = build_spark(settings.spark, app_name="zicht-indicators-bench")
    fs = fsmod.FileSystem(spark)
    location = manifest["store"]["location"]
    state = store.read_state(fs, location)
    if state is None:
        print(f"no store at {location}", file=sys.stderr, flush=True)
        return 2
    reference = output.parent / "duckdb.json"
    duckdb_s = json.loads(reference.read_text())["duckdb_s"] if reference.is_file() else None

    def context(work: str) -> RunContext:
        ctx = RunContext(
            spark=spark, settings=settings, fs=fs, run_id="bench", output=work, work=work,
            store=location,
        )  # fmt: skip
        ctx.store_facts = state
        return ctx

    times = []
    work = str(Path(args.work).resolve())
    # CPU seconds of the JVM (user + system): less at the mercy of other processes on a shared
    # machine than the wall time
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    for i in range(args.repeat):
        shutil.rmtree(work, ignore_errors=True)
        ctx = context(work)
        t0, c0 = time.perf_counter(), cpu_seconds(jvm_pid)
        result = Indicators().run(ctx)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds(jvm_pid) - c0
        times.append(seconds)
        ratio = f"  {seconds / duckdb_s:5.1f}x DuckDB ({duckdb_s:.2f} s)" if duckdb_s else ""
        cells = result.metrics.get("indicator_cells")
        print(
            f"run {i + 1}: indicator stage {seconds:7.2f} s{ratio}  JVM CPU {cpu:6.1f} s  "
            f"cells {cells:.0f}",
            flush=True,
        )
    if times:
        best = min(times)
        if duckdb_s:
            print(
                f"best {best:.2f} s = {best / duckdb_s:.1f}x DuckDB ({duckdb_s:.2f} s)", flush=True
            )
        else:
            print(f"best {best:.2f} s", flush=True)
        compare_core(Path(work), output)

    if args.plan:
        from zicht.features.indicators import Sources, build_indicators

        ctx = context(work)
        linked = load_linked(ctx)
        acc = linked.accepted
        src = Sources(
            areas=acc["areas"], incidents=linked.incidents, suspects=acc.get("suspects"),
            residence=linked.residence, addresses=acc.get("addresses"), signals=linked.signals,
            companies=acc.get("companies"), company_roles=acc.get("company_roles"),
            property_transactions=acc.get("property_transactions"),
            household_income=acc.get("household_income"),
            areas_have_inhabitants=linked.areas_have_inhabitants,
        )  # fmt: skip
        built = build_indicators(
            src, years=linked.years, phenomena=settings.phenomena, specs=settings.indicators,
            coverage=settings.coverage, patterns=settings.patterns,
        )  # fmt: skip
        total = 0
        for name in ("cells", "area_features", "magnitude_contributors"):
            df = getattr(built, name)
            if df is None:
                continue
            n = exchanges(plan_text(df))
            total += n
            print(f"shuffles (Exchange nodes) in the plan of {name}: {n}", flush=True)
        print(f"shuffles in all three plans: {total}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
