"""``zicht synth``: write a synthetic input folder in the contract, with planted ground truth.

Reads nothing. Writes ``OUT/<table>.parquet/part-NNNNN.parquet`` for every input table of the
contract (one Parquet part per generated chunk, so national scale never sits in memory at once),
and the planted ground truth in ``OUT/_truth/``: one ``<name>.parquet`` per planted pattern and
``truth.json`` (scale, seed, period, reference date, planted buurt codes, row counts). The
generator is ``zicht.features.synthetic``; contract: ``../shared/CONTRACT.md`` sections 1 and 4.

Refuses to write into a non-empty folder that is not a previous synth output (one without
``_truth/``); a previous synth output is replaced table by table. No Spark is started.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from zicht.features.schemas import INPUT_TABLES
from zicht.features.synthetic import SCALES, TRUTH_PREFIX, arrow_schema, generate, truth_summary

log = logging.getLogger("zicht.synth")

TRUTH_DIR = "_truth"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="zicht synth",
        description="Write a synthetic Netherlands in the zicht input contract, with planted truth.",
    )
    ap.add_argument("--scale", required=True, choices=sorted(SCALES), help="size of the country")
    ap.add_argument("--seed", required=True, type=int, help="random seed (same seed, same bytes)")
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument(
        "--snapshot-years",
        action="store_true",
        help="write persons once per year of the period with snapshot_year",
    )
    ap.add_argument(
        "--vintages",
        action="store_true",
        help="write areas in two CBS vintages with a recoding, a merge and a split, "
        "area_changes, and old codes on the earlier years' incidents (truth in _truth/)",
    )
    return ap.parse_args(argv)


def _check_out(out: Path) -> str | None:
    """An error message when OUT may not be written, else None."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    if out.is_dir() and any(out.iterdir()) and not (out / TRUTH_DIR).is_dir():
        return (
            f"--out {out}: folder is not empty and is not a previous synth output (no {TRUTH_DIR}/)"
        )
    return None


def _clear_previous(out: Path) -> None:
    # only what this job writes; anything else a user put there stays
    for name in INPUT_TABLES:
        for suffix in (".parquet", ".csv"):
            p = out / f"{name}{suffix}"
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    if (out / TRUTH_DIR).is_dir():
        shutil.rmtree(out / TRUTH_DIR)


def write_synth(
    out: Path, scale: str, seed: int, *, snapshot_years: bool = False, vintages: bool = False
) -> dict[str, int]:
    """Generate and write; returns rows per contract table."""
    params = SCALES[scale]
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    (out / TRUTH_DIR).mkdir()
    rows: dict[str, int] = {name: 0 for name in INPUT_TABLES}
    parts: dict[str, int] = {}
    truth: dict[str, list[pa.Table]] = {}
    pieces = generate(params, seed, snapshot_years=snapshot_years)
    if vintages:
        from zicht.features.synthetic_vintages import with_vintages

        pieces = with_vintages(pieces, seed=seed, years=params.years)
    for name, table in pieces:
        if name.startswith(TRUTH_PREFIX):
            # truth is small by construction (planted patterns only): gathered, written at the end
            truth.setdefault(name, []).append(table)
            continue
        folder = out / f"{name}.parquet"
        folder.mkdir(exist_ok=True)
        k = parts.get(name, 0)
        pq.write_table(table, folder / f"part-{k:05d}.parquet", compression="zstd")
        parts[name] = k + 1
        rows[name] += table.num_rows
    for name in INPUT_TABLES:  # a table no chunk produced rows for still exists, empty
        if name not in parts:
            folder = out / f"{name}.parquet"
            folder.mkdir(exist_ok=True)
            schema = arrow_schema(name, with_snapshot_year=snapshot_years)
            # the scale and seed in its metadata: an empty table (area_changes without
            # --vintages) is still this synth's file, and differs with another seed
            schema = schema.with_metadata({"zicht.synth": f"scale={scale} seed={seed}"})
            pq.write_table(schema.empty_table(), folder / "part-00000.parquet")
    merged = {name: pa.concat_tables(ts) for name, ts in truth.items()}
    for name, table in merged.items():
        pq.write_table(table, out / TRUTH_DIR / f"{name.removeprefix(TRUTH_PREFIX)}.parquet")
    summary = truth_summary(params, seed, merged, rows)
    summary["snapshot_years"] = snapshot_years
    if vintages:  # absent otherwise: the default truth.json stays as it was
        summary["vintages"] = {"old": params.years[0], "target": params.years[-1]}
    (out / TRUTH_DIR / "truth.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = _check_out(args.out)
    if problem:
        print(f"zicht synth: {problem}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = write_synth(
        args.out,
        args.scale,
        args.seed,
        snapshot_years=args.snapshot_years,
        vintages=args.vintages,
    )
    for name, n in rows.items():
        print(f"{name:<22} {n:>12,d} rows")
    print(
        f"zicht synth: scale={args.scale} seed={args.seed} -> {args.out} "
        f"in {time.perf_counter() - started:.1f} s (truth in {args.out / TRUTH_DIR})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
