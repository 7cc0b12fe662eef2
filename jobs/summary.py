"""Print a short summary of a finished run: where the results are and what they hold.

Reads ``OUTPUT/manifest.json`` and ``OUTPUT/export/disclosure_report.json``; writes nothing.
Used by ``make demo``: ``python -m zicht.jobs.summary OUTPUT``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from zicht.jobs.runtime import mlflow_tracking_uri


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m zicht.jobs.summary OUTPUT", file=sys.stderr)
        return 2
    out = Path(args[0]).resolve()
    manifest = json.loads((out / "manifest.json").read_text())
    print()
    print(f"zicht run {manifest['run_id']}  ({manifest['started']} -> {manifest['finished']})")
    print(
        f"period: {manifest['period']['years']}, reference date {manifest['period']['reference_date']}"
    )
    print("inputs (read = used + rejected + excluded):")
    for table, a in manifest["inputs"].items():
        print(
            f"  {table:<22} {a['rows_read']:>9} = {a['rows_used']:>9} + {a['rows_rejected']:>6} + {a['rows_excluded']:>6}"
        )
    if manifest.get("skipped_indicators"):
        print(f"skipped indicators: {len(manifest['skipped_indicators'])} (see manifest.json)")
    report = json.loads((out / "export" / "disclosure_report.json").read_text())
    print(f"disclosure audit passed: {report['audit']['passed']}")
    print("stage timings (s): " + ", ".join(f"{k} {v}" for k, v in manifest["timings_s"].items()))
    print()
    print(f"partner tables (safe to share) : {out / 'export'}")
    export_facts = (manifest.get("stages", {}).get("export") or {}).get("facts", {})
    for p in export_facts.get("packages", []):
        where = out / "export" / "partners" / p["name"]
        print(f"  package {p['name']:<22} {', '.join(p['gemeenten'])}: {where}")
    for w in export_facts.get("package_warnings", []):
        print(f"  warning: {w}")
    print(f"restricted (secure env only)   : {out / 'restricted'}")
    print(f"manifest                       : {out / 'manifest.json'}")
    store = manifest.get("store") or {}
    if store:
        reused = " (reused: input unchanged)" if store.get("reused") else ""
        print(f"analysis-ready store (secure)  : {store['location']}{reused}")
    print(
        f"MLflow store (secure env only) : {mlflow_tracking_uri(out)}  run {manifest['mlflow_run_id']}"
    )
    print(f"  browse it: .venv/bin/mlflow ui --backend-store-uri {mlflow_tracking_uri(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
