"""``zicht areas diff OLD NEW --output FILE``: derive ``area_changes`` from two vintages' polygons.

Reads two areas tables (CSV or Parquet files of the contract's ``areas``, one vintage each, or one
table with a ``vintage`` column given twice with ``--vintage-from`` and ``--vintage-to``) and
writes ``area_changes`` as CSV (the contract's four columns) for the analyst to check and put in
the input folder. The overlap rule is ``zicht.features.area_diff`` (a recoding or merge when at
least ``--exact-share``, default 0.98, of an old buurt's area lies in one new buurt). The tables
are small by construction (~14k buurten a vintage): pandas on the driver, no Spark. Local paths.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from zicht.features.area_diff import (
    EXACT_SHARE,
    SLIVER_SHARE,
    classify_changes,
    derive_area_changes,
)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="zicht areas", description="area vintages")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("diff", help="derive area_changes from two vintages' buurt polygons")
    d.add_argument("old", help="areas table (CSV or Parquet) of the older vintage")
    d.add_argument("new", help="areas table (CSV or Parquet) of the newer vintage")
    d.add_argument("--output", required=True, help="area_changes CSV to write")
    d.add_argument("--vintage-from", type=int, help="old vintage (default: OLD's vintage column)")
    d.add_argument("--vintage-to", type=int, help="new vintage (default: NEW's vintage column)")
    d.add_argument("--exact-share", type=float, default=EXACT_SHARE)
    d.add_argument("--sliver-share", type=float, default=SLIVER_SHARE)
    return ap.parse_args(list(argv))


def _read(path: str) -> pd.DataFrame:
    p = Path(path)
    if p.suffix == ".csv":
        return pd.read_csv(p, dtype={"buurt_code": str, "geometry_wkt": str})
    return pd.read_parquet(p)


def _polygons(df: pd.DataFrame, vintage: int | None, where: str) -> tuple[dict[str, str], int]:
    if "geometry_wkt" not in df.columns:
        raise ValueError(f"{where}: no geometry_wkt column, so no polygons to compare")
    if vintage is not None and "vintage" in df.columns:
        df = df[df["vintage"] == vintage]
    if vintage is None:
        if "vintage" not in df.columns or df["vintage"].nunique() != 1:
            raise ValueError(f"{where}: say the vintage (--vintage-from / --vintage-to)")
        vintage = int(df["vintage"].iloc[0])
    rows = df[df["geometry_wkt"].notna()]
    return dict(zip(rows["buurt_code"], rows["geometry_wkt"], strict=True)), vintage


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        old, v_from = _polygons(_read(args.old), args.vintage_from, args.old)
        new, v_to = _polygons(_read(args.new), args.vintage_to, args.new)
        diff = derive_area_changes(
            old,
            new,
            vintage_from=v_from,
            vintage_to=v_to,
            exact_share=args.exact_share,
            sliver_share=args.sliver_share,
        )
    except (ValueError, OSError) as exc:
        print(f"zicht areas diff: {exc}", file=sys.stderr)
        return 2
    with open(args.output, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["vintage_from", "code_from", "vintage_to", "code_to"])
        w.writerows(diff.changes())
    kinds = classify_changes(diff.changes())
    counts = {k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))}
    print(
        f"{len(diff.rows)} change rows {v_from} -> {v_to} ({counts or 'none'}); "
        f"{len(diff.unmatched)} old buurten overlap no new one: {diff.unmatched[:5]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
