"""The export step on its own (issues 16 and 17): seconds per part, national and with packages.

Not part of the installed package, and not a test: it prints figures. Reads a finished run
(``bench/<scale>/output``: its ``restricted/disclosure_audit.parquet``, ``restricted/areas.parquet``,
``export/disclosure_report.json`` and ``manifest.json``, made by ``make bench``; ``bench/`` is
git-ignored) and the store its manifest names, and runs what the Export stage does after
disclosure control, in one Spark session built like ``zicht run`` builds it: the partner table
collected and checked, every file rendered (national, and with ``--partners N`` N packages of
``--per`` consecutive gemeenten each), the leak guard's content scan, and the writes into a
scratch folder. It prints ``RESULT <part> <seconds>`` per part (wall) and the CPU seconds of
this process (the driver's Python work: rendering and the scan's tokens)::

    .venv/bin/python benchmarks/export_bench.py --scale medium [--partners 10 --per 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--partners", type=int, default=0, help="synthetic partners (0: none)")
    ap.add_argument("--per", type=int, default=3, help="gemeenten per synthetic partner")
    ap.add_argument(
        "--no-scan", action="store_true", help="skip the leak guard's scan (a store is gone)"
    )
    args = ap.parse_args(argv)

    from zicht.features.settings import ExportSettings, PartnerSettings
    from zicht.jobs import fs as fsmod
    from zicht.jobs.config import load_settings
    from zicht.jobs.context import RunContext, StageResult
    from zicht.jobs.export.guard import scan_files, store_pseudonyms
    from zicht.jobs.export.stage import render_all
    from zicht.jobs.runtime import build_spark
    from zicht.models.disclosure import published_from_audit

    out = REPO / "bench" / args.scale / "output"
    manifest = json.loads((out / "manifest.json").read_text())
    settings = load_settings()
    spark = build_spark(settings.spark, app_name="zicht-export-bench")
    areas = spark.read.parquet(str(out / "restricted/areas.parquet"))
    if args.partners:
        codes = sorted(r[0] for r in areas.select("gemeente_code").distinct().collect())
        partners = {
            f"partner-{k:02d}": PartnerSettings(tuple(codes[k * args.per : (k + 1) * args.per]))
            for k in range(args.partners)
            if codes[k * args.per : (k + 1) * args.per]
        }
        import dataclasses

        settings = dataclasses.replace(settings, export=ExportSettings(partners=partners))
    store = manifest["store"]["location"]
    work = tempfile.mkdtemp(prefix="zicht-export-bench-")
    ctx = RunContext(
        spark=spark,
        settings=settings,
        fs=fsmod.FileSystem(spark),
        run_id="bench",
        output=f"{work}/output",
        work=f"{work}/output",
        store=store,
    )
    if not args.no_scan:
        ctx.store_facts = json.loads(Path(store, "store.json").read_text())
    ctx.results["earlier"] = StageResult(
        facts={"skipped_indicators": manifest["skipped_indicators"], "inputs": manifest["inputs"]}
    )
    specs = [s for s in settings.indicators if s.key not in manifest["skipped_indicators"]]
    audit = spark.read.parquet(str(out / "restricted/disclosure_audit.parquet"))
    report = json.loads((out / "export/disclosure_report.json").read_text())
    audit.count(), areas.count()  # warm the session: the reads are not the export's
    published = published_from_audit(audit, settings=settings.disclosure)

    timings: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    files, facts = render_all(ctx, published=published, areas=areas, specs=specs, report=report)
    timings["collect+render"] = time.perf_counter() - t0
    t = time.perf_counter()
    leaks: list[str] | str = "not scanned"
    if not args.no_scan:
        tables, columns, keyed = store_pseudonyms(ctx)
        leaks = scan_files(spark, files, tables, columns, keyed)
        timings["leak_scan"] = time.perf_counter() - t
    t = time.perf_counter()
    for f in files:
        ctx.write_bytes(f.dataset, f.data, rows=f.rows, **dict(f.params))
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    size = sum(len(f.data) for f in files)
    print(f"scale {args.scale}: {len(files)} files, {size / 1e6:.1f} MB, "
          f"{len(facts['packages'])} packages, leaks {leaks}")  # fmt: skip
    from zicht.jobs.export.guard import file_label

    for f in sorted(files, key=lambda f: -len(f.data))[:8]:
        print(f"  {file_label(f):48s} {len(f.data) / 1e6:6.1f} MB")
    for k, v in timings.items():
        print(f"RESULT {k:16s} {v:7.2f} s")
    print(f"RESULT_CPU driver {time.process_time() - cpu0:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
