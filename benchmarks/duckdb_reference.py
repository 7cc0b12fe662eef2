"""DuckDB reference for zicht's core indicators (issue 8). Not part of the installed package.

Computes, with DuckDB on the same input folder a ``zicht run`` read, the core indicators per
buurt and year, rolled up to wijk and gemeente by summing the buurt counts:

- ``<P>.incidents``: accepted incidents of phenomenon P located in the area;
- ``<P>.resident_suspects``: distinct persons registered as suspect of a P incident (anywhere)
  in the year who live in the area that year;
- ``context.inhabitants`` and ``context.inhabitants_12plus``: registered persons with an
  address in the area, from the snapshot each year uses;

then compares them cell by cell with zicht's ``OUTPUT/restricted/indicators.parquet`` (every
area of every level and every year of the period, 0 where there is nothing to count), prints
the mismatches and exits 1 when there is any. It also prints DuckDB's time for the
computation and the ratio of zicht's indicator stage (``timings_s.indicators`` of the
manifest) to it.

Definitions replicated from zicht (``zicht.features.link``, ``zicht.features.indicators``,
``conf/``), written independently in SQL:

- Accepted rows: the input rows minus the rows zicht rejected. The reject files
  (``OUTPUT/restricted/rejects/<table>``) keep the raw text of the contract columns, so the
  reference anti-joins them on the table's key. A key that occurs twice is rejected in every
  copy, so no accepted row shares its key with a rejected one: the anti-join is exact. Rows
  with a null key are always rejected (the key is required).
- Period: the configured years (manifest ``config.period.years``), else the years present
  among the accepted incidents. Incidents outside a configured period are excluded, and so
  are their suspects (they do not reach the located incidents).
- Location: the incident's buurt_code, else its address's buurt, else the buurt polygon that
  contains its RD point (boundary included; on a shared edge the smallest buurt code wins).
  DuckDB's spatial extension cannot be installed offline, so this one step runs in shapely
  (STRtree) on the point-only incidents and is counted in the reference's time.
- Phenomena (``config.phenomena`` of the manifest, i.e. conf/base/phenomena.yaml plus any
  overlay): an incident code in ``incident_codes``; for a phenomenon without incident codes, a
  coded incident whose class (conf/base/crime_codes.csv) is in ``classes``; a class-only
  incident whose class is in ``classes``.
- Residence: each year of the period uses the persons snapshot with the largest
  ``snapshot_year`` not after the year, else the earliest later one; without
  ``snapshot_year`` the one snapshot serves every year. Only persons with an accepted address
  in an accepted buurt live somewhere. Age 12+: ``year - birth_year >= 12``.

    .venv/bin/python benchmarks/duckdb_reference.py --input bench/small/input \\
        --output bench/small/output [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
CRIME_CODES = REPO / "conf" / "base" / "crime_codes.csv"
CLASS_RE = r"^\d\.\d{1,2}\.\d{1,2}$"

# Columns each table needs here: name -> (kind, is_key). Kinds: s string, i integer, d double,
# t date. Keys are compared with the reject files as text.
COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "areas": {
        "buurt_code": ("s", True),
        "wijk_code": ("s", False),
        "gemeente_code": ("s", False),
        "geometry_wkt": ("s", False),
    },
    "addresses": {"address_id": ("s", True), "buurt_code": ("s", False)},
    "incidents": {
        "incident_id": ("s", True),
        "incident_date": ("t", False),
        "crime_code": ("s", False),
        "buurt_code": ("s", False),
        "address_id": ("s", False),
        "x": ("d", False),
        "y": ("d", False),
    },
    "persons": {
        "person_id": ("s", True),
        "snapshot_year": ("i", True),
        "birth_year": ("i", False),
        "address_id": ("s", False),
    },
    "suspects": {"incident_id": ("s", True), "person_id": ("s", True)},
}
OPTIONAL = {("areas", "geometry_wkt"), ("persons", "snapshot_year")}


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _source(input_dir: Path, table: str) -> tuple[str, str] | None:
    """(DuckDB table function, format) for DIR/<table>.parquet (file or folder) or .csv."""
    pq, cs = input_dir / f"{table}.parquet", input_dir / f"{table}.csv"
    if pq.is_dir():
        return f"read_parquet({_q(str(pq / '**' / '*.parquet'))})", "parquet"
    if pq.is_file():
        return f"read_parquet({_q(str(pq))})", "parquet"
    if cs.is_file():
        return f"read_csv({_q(str(cs))}, header=true, all_varchar=true)", "csv"
    return None


def _text(col: str, *, trim: bool = False) -> str:
    """The raw text zicht keeps for a column: trimmed for crime_code, blank means null."""
    t = f"CAST({col} AS VARCHAR)"
    if trim:
        t = f"trim({t})"
    return f"CASE WHEN trim({t}) = '' THEN NULL ELSE {t} END"


def _typed(col: str, kind: str, *, trim: bool = False) -> str:
    t = _text(col, trim=trim)
    if kind == "s":
        return t
    if kind == "i":
        return f"TRY_CAST(TRY_CAST({t} AS DECIMAL(38, 6)) AS BIGINT)"
    if kind == "d":
        v = f"TRY_CAST({t} AS DOUBLE)"
        return f"CASE WHEN isnan({v}) OR isinf({v}) THEN NULL ELSE {v} END"
    if kind == "t":
        return f"TRY_CAST(TRY_CAST({col} AS TIMESTAMP) AS DATE)"
    raise ValueError(kind)


def _accepted(con: duckdb.DuckDBPyConnection, input_dir: Path, output_dir: Path, table: str) -> str:
    """Create ``<table>_ok``: the input rows zicht accepted, typed; returns the format read."""
    src = _source(input_dir, table)
    if src is None:
        raise SystemExit(f"table {table}: neither {table}.parquet nor {table}.csv in {input_dir}")
    fn, fmt = src
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {fn}").fetchall()}
    cols = COLUMNS[table]
    exprs, keys = [], []
    for name, (kind, is_key) in cols.items():
        if name not in present:
            if (table, name) not in OPTIONAL:
                raise SystemExit(f"table {table}: column {name} is missing")
            exprs.append(f"NULL AS {name}")
            if is_key:
                keys.append((name, "NULL"))
            continue
        trim = name == "crime_code"
        exprs.append(f"{_typed(name, kind, trim=trim)} AS {name}")
        if is_key:
            keys.append((name, _text(name, trim=trim)))
    key_text = ", ".join(f"{t} AS _k_{n}" for n, t in keys)
    con.execute(f"CREATE TEMP TABLE {table}_in AS SELECT {', '.join(exprs)}, {key_text} FROM {fn}")

    rej_dir = output_dir / "restricted" / "rejects" / table
    rej_files = sorted(rej_dir.glob("*.parquet")) if rej_dir.is_dir() else []
    required_keys = [n for n, _ in keys if (table, n) not in OPTIONAL]
    not_null = " AND ".join(f"i._k_{n} IS NOT NULL" for n in required_keys) or "TRUE"
    if rej_files:
        rej_fn = f"read_parquet({_q(str(rej_dir / '*.parquet'))})"
        on = " AND ".join(f"i._k_{n} IS NOT DISTINCT FROM CAST(r.{n} AS VARCHAR)" for n, _ in keys)
        con.execute(
            f"CREATE TEMP TABLE {table}_ok AS SELECT i.* FROM {table}_in i "
            f"ANTI JOIN {rej_fn} r ON {on} WHERE {not_null}"
        )
    else:
        con.execute(f"CREATE TEMP TABLE {table}_ok AS SELECT * FROM {table}_in i WHERE {not_null}")
    con.execute(f"DROP TABLE {table}_in")
    return fmt


def _point_buurten(con: duckdb.DuckDBPyConnection) -> int:
    """``pt(incident_id, point_buurt_code)`` for incidents placed only by their RD point."""
    import shapely
    from shapely.strtree import STRtree

    need = con.execute(
        "SELECT incident_id, x, y FROM incidents_ok WHERE buurt_code IS NULL "
        "AND address_id IS NULL AND x IS NOT NULL AND y IS NOT NULL"
    ).fetchall()
    polys = con.execute(
        "SELECT buurt_code, geometry_wkt FROM areas_ok WHERE geometry_wkt IS NOT NULL"
    ).fetchall()
    found: dict[str, str] = {}
    if need and polys:
        codes = [c for c, _ in polys]
        tree = STRtree(shapely.from_wkt([w for _, w in polys]))
        pts = shapely.points([r[1] for r in need], [r[2] for r in need])
        pt_idx, poly_idx = tree.query(pts, predicate="intersects")
        for i, j in zip(pt_idx.tolist(), poly_idx.tolist(), strict=True):
            iid = need[i][0]
            if iid not in found or codes[j] < found[iid]:
                found[iid] = codes[j]
    # handed over as Arrow (executemany inserts row by row: seconds at medium scale)
    pt_arrow = pa.table(
        {
            "incident_id": pa.array(list(found), pa.string()),
            "point_buurt_code": pa.array(list(found.values()), pa.string()),
        }
    )
    con.register("pt_arrow", pt_arrow)
    con.execute("CREATE TEMP TABLE pt AS SELECT * FROM pt_arrow")
    con.unregister("pt_arrow")
    return len(need)


def _phenomenon_sql(key: str, ph: dict[str, Any]) -> str:
    codes = [str(c) for c in ph.get("incident_codes") or []]
    classes = [str(c) for c in ph.get("classes") or []]

    def in_list(col: str, values: list[str]) -> str:
        return f"{col} IN ({', '.join(_q(v) for v in values)})" if values else "FALSE"

    is_class = f"regexp_full_match(crime_code, {_q(CLASS_RE)})"
    if codes:
        by_code = in_list("crime_code", codes)
    else:
        by_code = f"(NOT {is_class} AND {in_list('crime_class', classes)})"
    by_class = f"({is_class} AND {in_list('crime_code', classes)})" if classes else "FALSE"
    return (
        f"SELECT incident_id, year, buurt_code, {_q(key)} AS phenomenon FROM located "
        f"WHERE coalesce({by_code}, FALSE) OR coalesce({by_class}, FALSE)"
    )


def compute(
    con: duckdb.DuckDBPyConnection,
    input_dir: Path,
    output_dir: Path,
    *,
    phenomena: dict[str, dict[str, Any]],
    configured_years: Sequence[int],
) -> dict[str, Any]:
    """Build ``ref(level, area_code, year, indicator, value)``; returns facts about the run."""
    formats = {t: _accepted(con, input_dir, output_dir, t) for t in COLUMNS}
    con.execute(
        f"CREATE TEMP TABLE crime_codes AS SELECT "
        f"CASE WHEN coalesce(incident_code, '') = '' THEN crime_class ELSE incident_code END "
        f"AS known_code, crime_class FROM read_csv({_q(str(CRIME_CODES))}, header=true, "
        f"all_varchar=true)"
    )
    n_points = _point_buurten(con)
    con.execute(
        """
        CREATE TEMP TABLE located AS
        SELECT i.incident_id, year(i.incident_date) AS year, i.crime_code, c.crime_class,
               ar.buurt_code
        FROM incidents_ok i
        LEFT JOIN crime_codes c ON i.crime_code = c.known_code
        LEFT JOIN addresses_ok ad ON i.address_id = ad.address_id
        LEFT JOIN pt ON i.incident_id = pt.incident_id
        JOIN areas_ok ar ON ar.buurt_code = coalesce(i.buurt_code, ad.buurt_code, pt.point_buurt_code)
        """
    )
    if configured_years:
        years_list = sorted(int(y) for y in configured_years)
        con.execute(f"DELETE FROM located WHERE year NOT IN ({', '.join(map(str, years_list))})")
    else:
        years_list = [
            r[0] for r in con.execute("SELECT DISTINCT year FROM located ORDER BY 1").fetchall()
        ]
    con.execute("CREATE TEMP TABLE years (year BIGINT)")
    con.executemany("INSERT INTO years VALUES (?)", [(y,) for y in years_list])

    union = "\nUNION ALL\n".join(_phenomenon_sql(k, ph) for k, ph in phenomena.items())
    con.execute(f"CREATE TEMP TABLE inc_ph AS {union}")
    con.execute(
        """
        CREATE TEMP TABLE residence AS
        WITH snaps AS (SELECT DISTINCT snapshot_year FROM persons_ok),
        ranked AS (
            SELECT y.year, s.snapshot_year,
                   row_number() OVER (
                       PARTITION BY y.year
                       ORDER BY CASE WHEN s.snapshot_year IS NULL THEN 0
                                     WHEN s.snapshot_year <= y.year THEN y.year - s.snapshot_year
                                     ELSE 10000 + s.snapshot_year - y.year END,
                                s.snapshot_year NULLS FIRST) AS rn
            FROM years y CROSS JOIN snaps s
        ),
        choice AS (SELECT year, snapshot_year FROM ranked WHERE rn = 1)
        SELECT p.person_id, c.year, ar.buurt_code, p.birth_year
        FROM persons_ok p
        JOIN choice c ON p.snapshot_year IS NOT DISTINCT FROM c.snapshot_year
        JOIN addresses_ok ad ON p.address_id = ad.address_id
        JOIN areas_ok ar ON ar.buurt_code = ad.buurt_code
        WHERE p.address_id IS NOT NULL
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE buurt_counts AS
        SELECT buurt_code, year, phenomenon || '.incidents' AS indicator, count(*) AS value
        FROM inc_ph GROUP BY ALL
        UNION ALL
        SELECT r.buurt_code, s.year, s.phenomenon || '.resident_suspects', count(*)
        FROM (SELECT DISTINCT su.person_id, ip.year, ip.phenomenon
              FROM suspects_ok su JOIN inc_ph ip ON su.incident_id = ip.incident_id) s
        JOIN residence r ON r.person_id = s.person_id AND r.year = s.year
        GROUP BY ALL
        UNION ALL
        SELECT buurt_code, year, 'context.inhabitants', count(*) FROM residence GROUP BY ALL
        UNION ALL
        SELECT buurt_code, year, 'context.inhabitants_12plus', count(*) FROM residence
        WHERE year - birth_year >= 12 GROUP BY ALL
        """
    )
    keys = ["context.inhabitants", "context.inhabitants_12plus"] + [
        f"{p}.{k}" for p in phenomena for k in ("incidents", "resident_suspects")
    ]
    con.execute("CREATE TEMP TABLE keys (indicator VARCHAR)")
    con.executemany("INSERT INTO keys VALUES (?)", [(k,) for k in keys])
    con.execute(
        """
        CREATE TEMP TABLE ref AS
        WITH h AS (SELECT buurt_code, wijk_code, gemeente_code FROM areas_ok),
        rolled AS (
            SELECT 'buurt' AS level, h.buurt_code AS area_code, year, indicator, sum(value) AS v
            FROM buurt_counts JOIN h USING (buurt_code) GROUP BY ALL
            UNION ALL
            SELECT 'wijk', h.wijk_code, year, indicator, sum(value)
            FROM buurt_counts JOIN h USING (buurt_code) GROUP BY ALL
            UNION ALL
            SELECT 'gemeente', h.gemeente_code, year, indicator, sum(value)
            FROM buurt_counts JOIN h USING (buurt_code) GROUP BY ALL
        ),
        grid AS (
            SELECT DISTINCT 'buurt' AS level, buurt_code AS area_code FROM h
            UNION SELECT DISTINCT 'wijk', wijk_code FROM h
            UNION SELECT DISTINCT 'gemeente', gemeente_code FROM h
        )
        SELECT g.level, g.area_code, y.year, k.indicator,
               CAST(coalesce(r.v, 0) AS DOUBLE) AS value
        FROM grid g CROSS JOIN years y CROSS JOIN keys k
        LEFT JOIN rolled r ON r.level = g.level AND r.area_code = g.area_code
            AND r.year = y.year AND r.indicator = k.indicator
        """
    )
    return {"formats": formats, "years": years_list, "point_only_incidents": n_points}


def compare(con: duckdb.DuckDBPyConnection, output_dir: Path, limit: int = 20) -> tuple[int, Any]:
    ind = output_dir / "restricted" / "indicators.parquet"
    con.execute(
        f"CREATE TEMP TABLE zicht AS SELECT level, area_code, CAST(year AS BIGINT) AS year, "
        f"indicator, value FROM read_parquet({_q(str(ind / '*.parquet'))}) "
        f"WHERE indicator IN (SELECT indicator FROM keys)"
    )
    diff_sql = """
        SELECT coalesce(r.level, z.level) AS level, coalesce(r.area_code, z.area_code) AS area_code,
               coalesce(r.year, z.year) AS year, coalesce(r.indicator, z.indicator) AS indicator,
               r.value AS duckdb, z.value AS zicht
        FROM ref r FULL OUTER JOIN zicht z
          ON r.level = z.level AND r.area_code = z.area_code AND r.year = z.year
         AND r.indicator = z.indicator
        WHERE r.value IS DISTINCT FROM z.value
    """
    n = con.execute(f"SELECT count(*) FROM ({diff_sql})").fetchone()[0]  # type: ignore[index]
    rows = con.execute(f"{diff_sql} ORDER BY indicator, level, area_code, year LIMIT {limit}")
    return int(n), rows.fetchall()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--input", required=True, type=Path, help="the input folder zicht read")
    p.add_argument("--output", required=True, type=Path, help="zicht's output folder")
    p.add_argument("--json", type=Path, default=None, help="write a JSON summary here")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    manifest = json.loads((args.output / "manifest.json").read_text())
    config = manifest.get("config", {})
    phenomena: dict[str, dict[str, Any]] = config.get("phenomena", {})
    configured_years = (config.get("period") or {}).get("years") or []
    if not CRIME_CODES.exists():
        raise SystemExit(f"{CRIME_CODES}: not found (run from a zicht checkout)")

    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
    t0 = time.perf_counter()
    facts = compute(
        con,
        args.input,
        args.output,
        phenomena=phenomena,
        configured_years=configured_years,
    )
    n_cells = con.execute("SELECT count(*) FROM ref").fetchone()[0]  # type: ignore[index]
    duck_s = time.perf_counter() - t0

    mismatches, examples = compare(con, args.output)
    timings = manifest.get("timings_s", {})
    ind_s = timings.get("indicators")
    link_s = timings.get("link")
    ratio = ind_s / duck_s if ind_s else None
    ratio_li = (ind_s + link_s) / duck_s if ind_s and link_s else None
    if list(facts["years"]) != list(manifest.get("period", {}).get("years", facts["years"])):
        print(f"note: period differs: duckdb {facts['years']}, zicht {manifest['period']}")

    print(
        f"duckdb reference: {n_cells} cells ({len(phenomena)} phenomena x incidents, "
        f"resident_suspects + inhabitants, inhabitants_12plus; 3 levels; years {facts['years']}); "
        f"input {', '.join(sorted(set(facts['formats'].values())))}; "
        f"{facts['point_only_incidents']} incidents placed by point (shapely)"
    )
    if mismatches:
        print(f"MISMATCHES: {mismatches} cells differ from zicht's restricted/indicators.parquet")
        print("level      area_code    year  indicator                          duckdb      zicht")
        for lvl, code, year, ind, d, z in examples:
            print(f"{lvl:<10} {code:<12} {year}  {ind:<32} {d!s:>8} {z!s:>10}")
    else:
        print("match: every cell equals zicht's restricted/indicators.parquet")
    print(f"duckdb time: {duck_s:.3f} s ({threads} threads)")
    if ratio is not None:
        print(f"zicht indicators stage: {ind_s:.2f} s -> ratio indicators/duckdb = {ratio:.1f}x")
    if ratio_li is not None:
        print(f"zicht link + indicators: {ind_s + link_s:.2f} s -> ratio = {ratio_li:.1f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "duckdb_s": round(duck_s, 3),
                    "threads": threads,
                    "cells": n_cells,
                    "mismatches": mismatches,
                    "indicators_s": ind_s,
                    "ratio": round(ratio, 2) if ratio is not None else None,
                    "ratio_link_indicators": round(ratio_li, 2) if ratio_li is not None else None,
                    **facts,
                },
                indent=2,
            )
        )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
