"""The disclosure stage on its own (issue 16): seconds, groups, LPs, suppressed cells, loss.

Not part of the installed package, and not a test: it prints figures. Reads the indicators and
areas of an earlier run (``bench/<scale>/output/restricted/{indicators,areas}.parquet``, made by
``make bench``; ``bench/`` is git-ignored) and, in one Spark session built like ``zicht run``
builds it (``zicht.jobs.runtime.build_spark`` with ``zicht.jobs.config.load_settings()``), runs
disclosure control the way the Export stage does (``zicht.jobs.export.publish``: the live
catalogue, :func:`linked_indicators`, :func:`apply_disclosure`, the audit written to Parquet and
read back, :func:`disclosure_report` on the persisted copy). It prints:

- ``RESULT_SECONDS``: wall time of that step (an untimed run on three gemeenten warms the
  session first, as the earlier stages do in the pipeline),
  and ``RESULT_CPU`` (CPU seconds of the process tree: driver, JVM and Python workers; other
  users of a shared machine barely move it);
- the groups (gemeente x year x family of linked indicators), the suppressed count cells, the
  information loss and the audit's verdict (``disclosure_report``);
- with ``--driver``: the same per-gemeente suppression run in pandas on this process, one
  gemeente after another, counting the attacker LPs solved (HiGHS runs, ``_AttackerLp.minimize_sum``)
  and the LP models built; with ``--profile`` that pass under cProfile, the top functions by
  own time and by cumulative time.

``--spark-profile`` prints the Spark side from its status store (jobs by description, the
costliest stages; as ``ingest_bench.py --profile``). ``--save DIR`` keeps the audit's pattern
(``DIR/<scale>.parquet``); ``--compare DIR`` prints how this run's pattern differs from a
saved one (cells whose status or reason changed, and cells whose feasible interval or
protection verdict changed)::

    .venv/bin/python benchmarks/disclosure_bench.py --scale medium --driver [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# sibling scripts, not a package
from ingest_bench import _next_job, _profile, _tree_cpu_s  # noqa: E402

PATTERN = [
    "level",
    "area_code",
    "year",
    "indicator",
    "unit",
    "status",
    "reason",
    "feasible_lower",
    "feasible_upper",
    "protected",
]


def _specs(settings: Any, output: Path) -> list[Any]:
    """The live catalogue as the Export stage sees it (``pipeline.live_specs``): the run's
    manifest says which indicators were skipped."""
    manifest = output / "manifest.json"
    skipped = (
        json.loads(manifest.read_text()).get("skipped_indicators", {}) if manifest.exists() else {}
    )
    return [s for s in settings.indicators if s.key not in skipped]


def _driver_pass(
    cells_pdf: Any, specs: Any, settings: Any, links: Any, profile: bool
) -> dict[str, Any]:
    """The per-gemeente step (``disclosure_step``) per (year, gemeente) in this process, the
    LPs counted."""
    from zicht.models import disclosure as d

    calls = {"solves": 0, "models": 0}
    minimize, init = d._AttackerLp.minimize_sum, d._AttackerLp.__init__

    def counting_minimize(self: Any, *a: Any, **k: Any) -> Any:
        calls["solves"] += 1
        return minimize(self, *a, **k)

    def counting_init(self: Any, *a: Any, **k: Any) -> None:
        calls["models"] += 1
        init(self, *a, **k)

    d._AttackerLp.minimize_sum = counting_minimize  # type: ignore[method-assign]
    d._AttackerLp.__init__ = counting_init  # type: ignore[method-assign]
    step = d.disclosure_step(specs, settings=settings.disclosure, links=links)
    groups = [
        g.reset_index(drop=True)
        for _, g in cells_pdf.groupby(["year", "gemeente_code"], dropna=False)
    ]
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU: the machine is shared
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if prof:
            prof.enable()
        for g in groups:
            step(g)
        if prof:
            prof.disable()
    finally:
        d._AttackerLp.minimize_sum = minimize  # type: ignore[method-assign]
        d._AttackerLp.__init__ = init  # type: ignore[method-assign]
    out: dict[str, Any] = {
        "seconds": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "gemeente_years": len(groups),
        **calls,
    }
    if prof:
        for key in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(25)
            out[f"profile_{key}"] = buf.getvalue()
    return out


def _warm_up(
    spark: Any,
    cells: Any,
    areas: Any,
    specs: Any,
    settings: Any,
    links: Any,
    contributors: Any,
    scratch: Path,
) -> None:
    """The same step on three gemeenten, untimed: in the pipeline the Export stage runs in a
    session the earlier stages warmed up (the JIT compiler alone takes seconds on a cold
    JVM), so a cold first query would overstate the stage."""
    from pyspark.sql import functions as F

    from zicht.models.disclosure import apply_disclosure

    gemeenten = [
        r["gemeente_code"]
        for r in areas.select("gemeente_code")
        .distinct()
        .orderBy("gemeente_code")
        .limit(3)
        .collect()
    ]
    few = areas.filter(F.col("gemeente_code").isin(gemeenten))
    codes = [
        r[0]
        for c in ("buurt_code", "wijk_code", "gemeente_code")
        for r in few.select(c).distinct().collect()
    ]
    _, audit = apply_disclosure(
        cells.filter(F.col("area_code").isin(codes)),
        few.select("buurt_code", "wijk_code", "gemeente_code"),
        specs=specs,
        settings=settings.disclosure,
        magnitude_contributors=contributors,
        links=links,
    )
    audit.write.parquet(str(scratch / "warm_up.parquet"))


def _compare(now: Any, before: Any) -> None:
    keys = ["level", "area_code", "year", "indicator"]
    m = now.merge(before, on=keys, how="outer", suffixes=("", "_before"), indicator=True)
    print(f"compare: {len(now)} cells now, {len(before)} before, "
          f"{int((m['_merge'] != 'both').sum())} in one only")  # fmt: skip
    both = m[m["_merge"] == "both"]
    status = both[both["status"] != both["status_before"]]
    reason = both[both["reason"] != both["reason_before"]]
    print(f"compare: status changed {len(status)}, reason changed {len(reason)}")
    for (a, b), n in status.groupby(["status_before", "status"]).size().items():
        print(f"  status {a} -> {b}: {n}")
    sup = both[both["feasible_lower"].notna() | both["feasible_lower_before"].notna()]
    lo = (sup["feasible_lower"] - sup["feasible_lower_before"]).abs().fillna(1.0) > 1e-6
    hi_now, hi_before = sup["feasible_upper"], sup["feasible_upper_before"]
    hi = ~((hi_now == hi_before) | ((hi_now - hi_before).abs() <= 1e-6))
    print(f"compare: cells with an interval (suppressed counts, linked differences): {len(sup)}, "
          f"interval changed: {int((lo | hi).sum())}")  # fmt: skip
    prot = sup[sup["protected"].astype("boolean") != sup["protected_before"].astype("boolean")]
    print(f"compare: protected verdict changed: {len(prot)}")


def run_scale(scale: str, args: argparse.Namespace, spark: Any, settings: Any) -> None:
    from pyspark.sql import functions as F

    from zicht.features.link import area_hierarchy
    from zicht.models.disclosure import (
        _families,
        apply_disclosure,
        disclosure_cells,
        disclosure_report,
        linked_indicators,
    )

    restricted = REPO / "bench" / scale / "output" / "restricted"
    cells = spark.read.parquet(str(restricted / "indicators.parquet"))
    areas = spark.read.parquet(str(restricted / "areas.parquet"))
    # the Export stage passes the magnitude contributors when the run has them
    contrib_path = restricted / "magnitude_contributors.parquet"
    contributors = spark.read.parquet(str(contrib_path)) if contrib_path.exists() else None
    specs = _specs(settings, restricted.parent)
    links = linked_indicators(settings.phenomena, specs)
    rows = cells.count()
    areas.count()
    print(f"\n== {scale}: {rows} indicator cells, {len(specs)} live indicators, "
          f"{len(links)} links", flush=True)  # fmt: skip

    scratch = Path(tempfile.mkdtemp(prefix="zicht-disclosure-bench-"))
    sc = spark.sparkContext
    try:
        _warm_up(spark, cells, areas, specs, settings, links, contributors, scratch)
        first_job = _next_job(spark)
        c0, t0 = _tree_cpu_s(), time.perf_counter()
        hierarchy = area_hierarchy(areas)
        _, audit = apply_disclosure(
            cells,
            hierarchy,
            specs=specs,
            settings=settings.disclosure,
            magnitude_contributors=contributors,
            links=links,
        )
        sc.setJobDescription("write the audit")
        audit.write.parquet(str(scratch / "audit.parquet"))  # as RunContext.write does
        audit = spark.read.parquet(str(scratch / "audit.parquet"))
        sc.setJobDescription("disclosure_report")
        report = disclosure_report(
            audit,
            settings=settings.disclosure,
            dominance_applied=contributors is not None,
            links=links,
        )
        seconds, cpu = time.perf_counter() - t0, _tree_cpu_s() - c0
        sc.setJobDescription(None)  # type: ignore[arg-type]
        pattern = audit.select(*PATTERN).toPandas()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    inputs = disclosure_cells(cells, hierarchy, specs=specs, magnitude_contributors=contributors)
    family = _families(links)
    kinds = spark.createDataFrame(
        [(s.key, family.get(s.key, s.key)) for s in specs if s.unit == "count"],
        "indicator string, family string",
    )
    groups = inputs.join(kinds, "indicator").select("year", "gemeente_code", "family").distinct()
    groups = groups.count()
    published_cell = pattern["reason"] != "linked_difference"
    hidden = published_cell & (pattern["status"] == "suppressed")
    suppressed = int(hidden.sum())
    suppressed_counts = int((hidden & (pattern["unit"] == "count")).sum())
    secondary = int((pattern["reason"] == "secondary").sum())
    loss = report["information_loss"]
    audit_r = report["audit"]
    print(f"RESULT_SECONDS {scale} {seconds:.1f}")
    print(f"RESULT_CPU {scale} {cpu:.1f}")
    if args.spark_profile:
        _profile(spark, first_job)
    print(f"groups {groups}; suppressed cells {suppressed} (all units), counts "
          f"{suppressed_counts} (secondary {secondary})")  # fmt: skip
    print(f"information loss {loss['overall']} ({loss['hidden_by_secondary']} of "
          f"{loss['count_cells_at_or_above_min']}); per level {loss['per_level']}")  # fmt: skip
    print(f"audit passed {audit_r['passed']}: audited {audit_r['audited_cells']}, unprotected "
          f"{audit_r['unprotected_cells']}, linked differences audited "
          f"{audit_r['linked_differences_audited']}")  # fmt: skip

    if args.driver or args.profile:
        cells_pdf = inputs.orderBy(F.rand(0)).toPandas()  # row order must not matter
        res = _driver_pass(cells_pdf, specs, settings, links, args.profile)
        print(f"driver pass: {res['seconds']:.1f} s wall, {res['cpu']:.1f} s CPU, "
              f"{res['gemeente_years']} gemeente-years, {res['models']} LP models, "
              f"{res['solves']} LP solves; "
              f"{1000 * res['cpu'] / max(groups, 1):.2f} ms CPU per group")  # fmt: skip
        for key in ("tottime", "cumulative"):
            if f"profile_{key}" in res:
                print(f"-- profile by {key}\n{res[f'profile_{key}']}")

    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        pattern.to_parquet(Path(args.save) / f"{scale}.parquet")
        print(f"saved pattern to {Path(args.save) / f'{scale}.parquet'}")
    if args.compare:
        import pandas as pd

        _compare(pattern, pd.read_parquet(Path(args.compare) / f"{scale}.parquet"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="append", help="medium (default), nl; repeatable")
    parser.add_argument("--driver", action="store_true", help="also run in pandas, count LPs")
    parser.add_argument("--profile", action="store_true", help="cProfile the driver pass")
    parser.add_argument("--spark-profile", action="store_true", help="Spark jobs and stages")
    parser.add_argument("--save", help="folder to keep the audit pattern in")
    parser.add_argument("--compare", help="folder of a saved pattern to compare with")
    args = parser.parse_args(argv)

    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    settings = load_settings()
    spark = build_spark(settings.spark, app_name="zicht-disclosure-bench")
    print(f"spark: {settings.spark.master}, driver memory {settings.spark.driver_memory}, "
          f"{settings.spark.shuffle_partitions} shuffle partitions")  # fmt: skip
    try:
        for scale in args.scale or ["medium"]:
            run_scale(scale, args, spark, settings)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
