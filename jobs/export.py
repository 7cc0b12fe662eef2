"""The export stage: disclosure control and the partner deliverables; ``zicht export``.

``zicht run`` calls :func:`publish` as its last stage. ``zicht export --from OUTPUT [--conf
FILE]`` runs the same stage alone on a finished output folder: it re-applies disclosure control
with the rules of ``--conf`` to ``restricted/indicators.parquet`` without recomputing any
feature, and replaces ``export/`` and ``restricted/disclosure_audit.parquet`` only when the
audit, the leak guard and the release register all pass. Also a Spark job on its own::

    spark-submit --master spark://host:7077 --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        jobs/export.py --from OUTPUT [--conf FILE] [--force-release]

The deliverables beside the CSV tables:

Writes ``export/indicators.xlsx`` (Dutch workbook: one wide sheet per level, the codebook and a
sheet explaining the symbols, after CBS StatLine's conventions) and ``export/report.html`` (one
self-contained static page: per phenomenon an inline SVG choropleth of the buurten from
``geometry_wkt`` in RD coordinates, or centroid tiles when a buurt has none, the top areas, the
trend per year and the suppression legend; no script, stylesheet or font from the network).
Reads every file under ``export/`` again for the leak guard's content scan, which joins their
tokens in Spark against the pseudonym columns of the input tables (``zicht.features.export``).

Everything here works on the partner table, which is aggregate and small by construction
(areas x years x indicators), and on the area table (~14k buurten nationally): both are pandas
frames on the driver.
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import sys
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.export import (
    check_export,
    export_tokens,
    find_pseudonyms,
    format_values,
    pseudonym_values,
)
from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.features.settings import IndicatorSpec
from zicht.jobs import catalog
from zicht.jobs import fs as fsmod
from zicht.jobs.context import PrivacyRefusal, RunContext

log = logging.getLogger("zicht")

LEVEL_FILES = {
    lvl: catalog.get(f"indicators_{lvl}").location for lvl in ("buurt", "wijk", "gemeente")
}
RELEASES_DIR = "zicht_releases"  # beside the register: each release's published pattern

LEVEL_SHEETS = {"buurt": "Buurten", "wijk": "Wijken", "gemeente": "Gemeenten"}
# CBS StatLine's symbols: "x" geheim (confidential), "." gegevens ontbreken (not available), a
# blank cell "een cijfer kan op logische gronden niet voorkomen" (a rate over zero inhabitants).
SYMBOLS = {"suppressed": "x", "not_covered": ".", "not_applicable": ""}
SYMBOL_ROWS = [
    ("x", "geheim", "Onderdrukt om onthulling te voorkomen (te kleine aantallen, of nodig om een "
     "ander onderdrukt cijfer te beschermen; welke regel gold, wordt niet vermeld)."),
    (".", "gegevens ontbreken", "De bron dekt dit gebied of jaar niet."),
    ("(leeg)", "niet van toepassing", "Een cijfer kan op logische gronden niet voorkomen, "
     "bijvoorbeeld een aantal per 1000 inwoners in een gebied zonder inwoners."),
    ("0", "nul", "Er is niets geteld; nul wordt altijd gepubliceerd."),
]  # fmt: skip
UNIT_NL = {
    "count": "aantal",
    "rate": "per 1000",
    "share": "aandeel (0-1)",
    "euro": "euro",
    "km": "kilometer",
    "index": "index",
    "class": "klasse (1 laagste - 9 hoogste)",
}
NUMBER_FORMAT = {
    "count": "0",
    "euro": "0",
    "rate": "0.0",
    "km": "0.0",
    "share": "0.000",
    "class": "0",
}


# --------------------------------------------------------------------------- leak guard


def file_text(name: str, data: bytes) -> str:
    """The text of one export file; an XLSX (a zip of XML parts) as all its parts together."""
    if name.endswith(".xlsx"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in sorted(z.namelist()))
    return data.decode("utf-8", errors="replace")


def store_pseudonyms(ctx: RunContext) -> tuple[dict[str, DataFrame], dict[str, tuple[str, ...]]]:
    """The store's validated tables and their pseudonym columns: the typed value of every row
    and the raw text of rejected rows, so every pseudonym of the input is covered without
    reading the input again."""
    tables: dict[str, DataFrame] = {}
    columns: dict[str, tuple[str, ...]] = {}
    for name, cols in PSEUDONYM_COLUMNS.items():
        if name not in ctx.store_facts.get("accounting", {}):
            continue
        validated = ctx.read("validated", table=name)
        tables[name] = validated
        columns[name] = tuple(
            c for col in cols for c in (col, f"_raw_{col}") if c in validated.columns
        )
    # the validated tables hold keys (their text is scanned too) and the raw text of rejected
    # rows; every pseudonym of the input is in the store's key dictionary
    if ctx.exists("keys"):
        tables["keys"] = ctx.read("keys")
        columns["keys"] = ("pseudonym",)
    return tables, columns


def scan_export(
    spark: SparkSession,
    files: Mapping[str, bytes],
    tables: Mapping[str, DataFrame],
    columns: Mapping[str, Sequence[str]] = PSEUDONYM_COLUMNS,
) -> list[str]:
    """Problems (empty: clean): export files (name under ``export/`` -> their bytes) holding a
    value of a pseudonym column of ``tables`` (``columns`` per table).

    The tokens of every file (small: see ``export_tokens``) go to Spark and meet the pseudonym
    columns, so the pseudonyms never come to the driver.
    """
    rows = [
        (rel, tok)
        for rel, data in sorted(files.items())
        for tok in sorted(export_tokens(file_text(rel, data)))
    ]
    if not rows or not tables:
        return []
    tokens = spark.createDataFrame(rows, "file string, token string")
    values = pseudonym_values(tables, columns=columns)
    hits = find_pseudonyms(tokens, values).orderBy("file", "token").limit(50).collect()
    by_file: dict[str, int] = {}
    for r in hits:
        by_file[r["file"]] = by_file.get(r["file"], 0) + 1
    # The message names the files, never the pseudonyms (the log is no safer than export/).
    return [
        f"export/{f} holds {n} value(s) of an input pseudonym column" for f, n in by_file.items()
    ]


# --------------------------------------------------------------------------- workbook


def wide_table(pub: pd.DataFrame, *, indicators: Sequence[str]) -> pd.DataFrame:
    """One level's partner rows wide: one row per (area, year), one column per indicator;
    a published value as a number, any other cell as its CBS symbol."""
    cell: list[object] = []
    for v, st in zip(pub["value"], pub["status"], strict=True):
        cell.append(float(v) if st == "ok" and v != "" else SYMBOLS.get(str(st), "x"))
    frame = pub.assign(cell=cell)
    wide = frame.set_index(["area_code", "area_name", "year", "indicator"])["cell"].unstack(
        "indicator"
    )
    wide = wide.reindex(columns=[i for i in indicators if i in wide.columns])
    wide = wide.reset_index().sort_values(["area_code", "year"], kind="mergesort")
    return wide.rename(columns={"area_code": "gebiedscode", "area_name": "naam", "year": "jaar"})


def write_xlsx(pub: pd.DataFrame, codebook: pd.DataFrame, *, report: Mapping[str, object]) -> bytes:
    """``indicators.xlsx``: Buurten, Wijken, Gemeenten (wide), Codeboek, Tekens, Toelichting.

    Streamed (openpyxl's write-only mode): the national Buurten sheet holds ~28k rows x ~165
    indicators, which a workbook held in memory writes several times slower."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from zicht.features.export import FORMULA_STARTS

    units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
    indicators = list(codebook["indicator"])
    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    # Text a spreadsheet could run as a formula (or read as an error code: "#N/A") is written
    # as a text cell with its text unchanged, never as a formula cell.
    risky = (*FORMULA_STARTS, "#")

    def cell(ws: Any, value: object) -> Any:
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str) and value.startswith(risky):
            c.data_type = "s"  # openpyxl made "=..." a formula cell
            c.quotePrefix = True  # and Excel keeps it text when the partner edits the cell
        return c

    def text(ws: Any, value: object) -> Any:
        # other values stay plain: a cell object for each would slow the streamed sheets
        return cell(ws, value) if isinstance(value, str) and value.startswith(risky) else value

    def text_row(ws: Any, values: Sequence[object]) -> list[Any]:
        return [text(ws, v) for v in values]

    def header_row(ws: Any, names: Sequence[object]) -> list[Any]:
        cells = [cell(ws, name) for name in names]
        for c in cells:
            c.font = bold
        return cells

    for level, title in LEVEL_SHEETS.items():
        ws = wb.create_sheet(title)
        ws.freeze_panes = "D2"
        wide = wide_table(pub[pub["level"] == level], indicators=indicators)
        ws.append(header_row(ws, list(wide.columns)))
        formats = [NUMBER_FORMAT.get(units.get(str(name), "")) for name in wide.columns]
        for row in wide.itertuples(index=False):
            cells: list[Any] = []
            for x, fmt in zip(row, formats, strict=True):
                if fmt and isinstance(x, float):
                    cells.append(WriteOnlyCell(ws, value=x))
                    cells[-1].number_format = fmt
                else:
                    cells.append(None if x == "" else text(ws, x))
            ws.append(cells)

    ws = wb.create_sheet("Codeboek")
    header = ["indicator", "verschijnsel", "definitie (Engels, uit de catalogus)", "eenheid",
              "teller", "noemer", "bronnen", "kanttekeningen"]  # fmt: skip
    ws.append(header_row(ws, header))
    for r in codebook.itertuples(index=False):
        values = [r.indicator, r.phenomenon, r.definition, UNIT_NL.get(r.unit, r.unit),
                  r.numerator, r.denominator, r.sources, r.caveats]  # fmt: skip
        ws.append(text_row(ws, values))

    ws = wb.create_sheet("Tekens")
    ws.append(header_row(ws, ["teken", "betekenis", "toelichting"]))
    for row in SYMBOL_ROWS:
        ws.append(text_row(ws, row))

    ws = wb.create_sheet("Toelichting")
    params = report.get("parameters", {})
    assert isinstance(params, Mapping)
    lines = [
        "Cijfers over ondermijning per buurt, wijk en gemeente (zicht).",
        f"Aantallen van 1 tot {params.get('min_count')} worden niet gepubliceerd; ook cijfers "
        "waaruit zo'n aantal terug te rekenen is (via wijk- of gemeentetotalen, of via een "
        "smaller verschijnsel) zijn onderdrukt. Zie het blad Tekens.",
        "Aantallen zijn gehele getallen, aantallen per 1000 hebben één decimaal, aandelen drie.",
        "De definities staan in het blad Codeboek.",
    ]
    for line in lines:
        ws.append(text_row(ws, [line]))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- report page

COLORS = ["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"]  # 5 classes, light to dark
NO_DATA = "#e8e8e8"


def _svg_paths(areas: pd.DataFrame) -> tuple[list[str], tuple[float, float, float, float]]:
    """One SVG path per buurt (``areas`` order) in a local frame of 10 m units, y down.

    Polygons are simplified to about a thousandth of the map's extent (invisible at page size,
    and it keeps the national page small); a buurt without geometry gets a square tile around
    its centroid, sized from its land area (else 300 m).
    """
    import shapely

    geoms = [
        shapely.from_wkt(w) if isinstance(w, str) and w.strip() else None
        for w in areas.get("geometry_wkt", pd.Series([None] * len(areas)))
    ]
    tiles = []
    for g, x, y, ha in zip(
        geoms, areas["x"], areas["y"], areas.get("land_area_ha", [None] * len(areas)), strict=True
    ):
        if g is None and x is not None and not pd.isna(x):
            half = (math.sqrt(float(ha) * 1e4) if ha and not pd.isna(ha) else 300.0) / 2
            g = shapely.box(float(x) - half, float(y) - half, float(x) + half, float(y) + half)
        tiles.append(g)
    present = [g for g in tiles if g is not None]
    if not present:
        return ["" for _ in tiles], (0.0, 0.0, 1.0, 1.0)
    minx, miny, maxx, maxy = shapely.total_bounds(present)
    tol = max(maxx - minx, maxy - miny) / 1000
    paths: list[str] = []
    for g in tiles:
        if g is None:
            paths.append("")
            continue
        g = g.simplify(tol, preserve_topology=True)
        polys = list(getattr(g, "geoms", [g]))
        d: list[str] = []
        for poly in polys:
            for ring in (poly.exterior, *poly.interiors):
                pts = [
                    f"{(px - minx) / 10:.0f} {(maxy - py) / 10:.0f}" for px, py in ring.coords[:-1]
                ]
                if pts:
                    d.append("M" + "L".join(pts) + "Z")
        paths.append("".join(d))
    return paths, (0.0, 0.0, (maxx - minx) / 10, (maxy - miny) / 10)


def _breaks(values: Sequence[float]) -> list[float]:
    """Upper bounds of up to 4 quantile classes of the values above 0 (0 has its own class,
    the lightest; fewer classes when values repeat)."""
    s = pd.Series(sorted(v for v in values if v > 0), dtype=float)
    if s.empty:
        return []
    return sorted({float(s.quantile(q)) for q in (0.25, 0.5, 0.75, 1.0)})


def _color(v: float, breaks: Sequence[float]) -> str:
    """COLORS[0] for 0; the positive classes take the darkest colours, so the top class is
    always the darkest whatever the number of classes."""
    if v <= 0 or not breaks:
        return COLORS[0]
    offset = len(COLORS) - len(breaks)
    for k, b in enumerate(breaks):
        if v <= b:
            return COLORS[offset + k]
    return COLORS[-1]


def _fmt_nl(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}".replace(".", ",")


def _sparkline(values: Sequence[float | None]) -> str:
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return ""
    top = max(v for _, v in pts) or 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(f"{4 + 112 * i / n:.0f},{26 - 22 * v / top:.0f}" for i, v in pts)
    return (
        '<svg class="spark" width="120" height="30" viewBox="0 0 120 30" role="img">'
        f'<polyline points="{coords}" fill="none" stroke="#a50f15" stroke-width="2"/></svg>'
    )


PAGE_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;color:#222}
h1{font-size:1.6rem} h2{font-size:1.25rem;border-top:1px solid #ccc;padding-top:1rem}
.row{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
svg.map{width:34rem;height:auto;border:1px solid #ddd;background:#fff}
svg.map use{stroke:#fff;stroke-width:2}
table{border-collapse:collapse;font-size:.85rem} td,th{padding:.15rem .5rem;text-align:left}
td.n{text-align:right} .legend span{display:inline-block;width:1rem;height:1rem;
vertical-align:middle;margin-right:.3rem;border:1px solid #999}
.legend div{margin:.15rem 0;font-size:.85rem}
"""


def build_report_html(
    pub: pd.DataFrame,
    areas: pd.DataFrame,
    *,
    phenomena: Mapping[str, str],
    report: Mapping[str, object],
) -> str:
    """The report page as one string. ``pub``: the formatted partner rows (all levels);
    ``areas``: one row per buurt with ``buurt_code, buurt_name, x, y`` and, when known,
    ``geometry_wkt`` and ``land_area_ha``; ``phenomena``: key -> Dutch label."""
    areas = areas.sort_values("buurt_code", kind="mergesort").reset_index(drop=True)
    paths, (x0, y0, w, h) = _svg_paths(areas)
    ids = {code: f"b{i}" for i, code in enumerate(areas["buurt_code"])}
    defs = "".join(
        f'<path id="{ids[c]}" d="{d}"/>'
        for c, d in zip(areas["buurt_code"], paths, strict=True)
        if d
    )
    years = sorted(int(y) for y in pub["year"].unique())
    latest = years[-1] if years else None
    out: list[str] = [
        '<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8">',
        "<title>Ondermijning per buurt - zicht</title>",
        f"<style>{PAGE_CSS}</style></head><body>",
        "<h1>Ondermijning per buurt, wijk en gemeente</h1>",
        f"<p>Geregistreerde incidenten per 1000 inwoners, {latest}. Cijfers met te kleine "
        "aantallen, of waaruit die terug te rekenen zijn, zijn onderdrukt (geheim).</p>",
        # One hidden SVG holds each buurt's outline once; every map re-uses it (<use>), so
        # the national page carries the geometry once, not once per phenomenon.
        f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{defs}'
        '<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f4f4f4"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#777" stroke-width="3"/></pattern>'
        "</defs></svg>",
    ]
    buurt = pub[(pub["level"] == "buurt") & (pub["year"] == latest)]
    gem = pub[pub["level"] == "gemeente"]
    for key, label in phenomena.items():
        ind = f"{key}.incidents_per_1000"
        cells = buurt[buurt["indicator"] == ind].set_index("area_code")
        if cells.empty:
            continue
        ok = cells[cells["status"] == "ok"]
        vals = ok["value"].astype(float)
        breaks = _breaks(list(vals))
        uses: list[str] = []
        for code, name in zip(areas["buurt_code"], areas["buurt_name"], strict=True):
            if code not in ids or not paths[int(ids[code][1:])]:
                continue
            st = cells["status"].get(code, "not_covered")
            if st == "ok":
                v = float(cells.at[code, "value"])
                fill, text = _color(v, breaks), _fmt_nl(v, 1)
            elif st == "suppressed":
                fill, text = "url(#hatch)", "x (geheim)"
            else:
                fill, text = NO_DATA, "niet van toepassing" if st == "not_applicable" else "."
            uses.append(
                f'<use href="#{ids[code]}" fill="{fill}"><title>{html.escape(str(name))}: '
                f"{text}</title></use>"
            )
        legend = ['<div class="legend"><strong>Legenda (per 1000 inwoners)</strong>',
                  f'<div><span style="background:{COLORS[0]}"></span>0</div>']  # fmt: skip
        lo = 0.0
        for b in breaks:
            col = _color(b, breaks)
            legend.append(f'<div><span style="background:{col}"></span>'
                          f"meer dan {_fmt_nl(lo, 1)} tot en met {_fmt_nl(b, 1)}</div>")  # fmt: skip
            lo = b
        legend.append('<div><span style="background:url(#hatch) #bbb;background:'
                      'repeating-linear-gradient(45deg,#777 0 3px,#f4f4f4 3px 8px)"></span>'
                      "x geheim (onderdrukt)</div>")  # fmt: skip
        legend.append(f'<div><span style="background:{NO_DATA}"></span>'
                      "niet van toepassing of geen gegevens</div></div>")  # fmt: skip
        top = (
            ok.assign(v=vals)[vals > 0]
            .sort_values(["v", "area_name"], ascending=[False, True])
            .head(10)
        )
        top_rows = "".join(
            f"<tr><td>{html.escape(str(r.area_name))}</td><td>{html.escape(str(code))}</td>"
            f'<td class="n">{_fmt_nl(float(r.v), 1)}</td></tr>'
            for code, r in top.iterrows()
        )
        trend_rows: list[str] = []
        g = gem[gem["indicator"] == f"{key}.incidents"]
        for _code, part in g.groupby("area_code", sort=True):
            by_year = dict(
                zip(
                    part["year"].astype(int),
                    zip(part["value"], part["status"], strict=True),
                    strict=True,
                )
            )
            cells_txt, series = [], []
            for y in years:
                v, st = by_year.get(y, ("", "not_covered"))
                if st == "ok" and v != "":
                    cells_txt.append(f'<td class="n">{int(float(v))}</td>')
                    series.append(float(v))
                else:
                    cells_txt.append(f'<td class="n">{SYMBOLS.get(str(st), "x") or "&nbsp;"}</td>')
                    series.append(None)
            name = html.escape(str(part["area_name"].iloc[0]))
            trend_rows.append(
                f"<tr><td>{name}</td>{''.join(cells_txt)}<td>{_sparkline(series)}</td></tr>"
            )
        head = "".join(f'<th class="n">{y}</th>' for y in years)
        out += [
            f'<section id="{html.escape(key)}"><h2>{html.escape(label or key)}</h2>',
            '<div class="row">',
            f'<svg class="map" viewBox="{x0:.0f} {y0:.0f} {w:.0f} {h:.0f}" role="img" '
            f'aria-label="Kaart {html.escape(label or key)}">{"".join(uses)}</svg>',
            "".join(legend),
            "</div>",
            "<h3>Buurten met de hoogste waarde</h3>",
            f"<table><tr><th>buurt</th><th>code</th><th>per 1000</th></tr>{top_rows}</table>",
            "<h3>Incidenten per jaar, per gemeente</h3>",
            f"<table><tr><th>gemeente</th>{head}<th></th></tr>{''.join(trend_rows)}</table>",
            "</section>",
        ]
    audit = report.get("audit", {})
    passed = isinstance(audit, Mapping) and audit.get("passed")
    out.append(
        "<h2>Onthullingscontrole</h2><p>Tekens: <b>x</b> geheim, <b>.</b> gegevens ontbreken, "
        "leeg: niet van toepassing. De controle op terugrekenen (lineaire programmering) is "
        f"{'geslaagd' if passed else 'NIET geslaagd'}.</p></body></html>"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- release register

REGISTER_NAME = "zicht_releases.json"


def release_entry(
    run_id: str,
    *,
    inputs: Mapping[str, Mapping[str, object]],
    rules: Mapping[str, object],
    phenomena: Mapping[str, object],
) -> dict[str, object]:
    """One register entry: the input hashes, the disclosure parameters and the phenomenon
    definitions (what a later release could be differenced against)."""
    return {
        "run_id": run_id,
        "digest_scheme": fsmod.DIGEST_SCHEME,
        "inputs": {t: a.get("sha256") for t, a in sorted(inputs.items())},
        "rules": dict(rules),
        "phenomena": {k: phenomena[k] for k in sorted(phenomena)},
    }


def read_register(fs: fsmod.FileSystem, register: str) -> list[dict[str, Any]]:
    if not fs.exists(register):
        return []
    releases: list[dict[str, Any]] = json.loads(fs.read_text(register))
    return releases


def migrate_register(
    releases: list[dict[str, Any]], entry: Mapping[str, Any], legacy: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """Entries written before digests had a scheme hold per-file sha256 of local inputs (and
    null for remote ones). An old entry whose hashes equal this input's legacy hashes is the
    same data: it gets this run's digests, so the register compares one scheme only. An old
    entry with a null hash could be any data, so it is compared as if it were the same."""
    out = []
    for old in releases:
        if old.get("digest_scheme") == fsmod.DIGEST_SCHEME:
            out.append(old)
            continue
        inputs = old.get("inputs") or {}
        same = set(inputs) == set(entry["inputs"]) and all(
            v is None or v == legacy.get(t) for t, v in inputs.items()
        )
        migrated = {**old, "digest_scheme": fsmod.DIGEST_SCHEME, "migrated_from": "file-sha256"}
        migrated["inputs"] = (
            dict(entry["inputs"])
            if same
            else {t: f"unmatched-legacy:{v}" for t, v in inputs.items()}
        )
        out.append(migrated)
    return out


def register_release(
    fs: fsmod.FileSystem, register: str, entry: Mapping[str, Any], *, force: bool = False
) -> list[str]:
    """Check ``entry`` against the register and add it (what ``publish`` does in two steps,
    around the export). Returns the conflicts; with conflicts and not ``force`` nothing is
    added. A forced release is recorded with ``"forced": true``. The register holds digests and
    rules only, nothing person-level."""
    from zicht.features.export import release_conflicts

    releases = read_register(fs, register)
    problems = release_conflicts(releases, entry)
    if problems and not force:
        return problems
    write_register(fs, register, [*releases, {**entry, "forced": bool(problems)}])
    return []


def publish_release(fs: fsmod.FileSystem, register: str, release_id: str) -> None:
    """The export of ``release_id`` is committed: its register entry is published."""
    releases = read_register(fs, register)
    for r in releases:
        if r.get("run_id") == release_id:
            r["state"] = "published"
    write_register(fs, register, releases)


def recover_register(
    fs: fsmod.FileSystem, register: str, output: str, committed: set[str]
) -> list[str]:
    """Drop the pending entries of ``output`` whose export never got committed (a command
    killed between writing its release and committing it); ``committed``: the release ids the
    output's manifest records. Call holding the output's lease."""
    releases = read_register(fs, register)
    keep, done = [], []
    for r in releases:
        if r.get("state") == "pending" and r.get("output") == output:
            if r.get("run_id") in committed:
                r["state"] = "published"
                done.append(f"release {r.get('run_id')} was committed: marked published")
            else:
                done.append(f"removed release {r.get('run_id')} from {register}: never exported")
                continue
        keep.append(r)
    if done:
        write_register(fs, register, keep)
    return done


def write_register(
    fs: fsmod.FileSystem, register: str, releases: Sequence[Mapping[str, Any]]
) -> None:
    fs.write_text(register, json.dumps(list(releases), indent=2, default=str), overwrite=True)


# --------------------------------------------------------------------------- the export stage


def codebook_frame(specs: Sequence[IndicatorSpec]) -> pd.DataFrame:
    """``export/codebook.csv``: one row per published indicator, from the catalogue."""
    return pd.DataFrame(
        [
            {
                "indicator": s.key,
                "phenomenon": s.phenomenon,
                "definition": " ".join(s.definition.split()),
                "unit": s.unit,
                "numerator": s.numerator or "",
                "denominator": s.denominator or "",
                "sources": ";".join(s.sources),
                "caveats": " ".join(s.caveats.split()),
            }
            for s in specs
        ]
    )


def disclosure_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of one disclosure report: cells per level and status, the audit's
    verdict (1 passed, 0 failed), unprotected cells and the information loss."""
    metrics: dict[str, float] = {}
    for level, counts in report.get("levels", {}).items():
        for k, val in counts.items():
            if isinstance(val, (int, float)):
                metrics[f"disclosure_{level}_{k}"] = float(val)
    audit = report.get("audit", {})
    metrics["disclosure_audit_passed"] = 1.0 if audit.get("passed") else 0.0
    metrics["disclosure_unprotected_cells"] = float(audit.get("unprotected_cells", 0))
    metrics["disclosure_audited_cells"] = float(audit.get("audited_cells", 0))
    loss = report.get("information_loss", {})
    if loss.get("overall") is not None:
        metrics["disclosure_information_loss"] = float(loss["overall"])
    for level, share in (loss.get("per_level") or {}).items():
        if share is not None:
            metrics[f"disclosure_{level}_information_loss"] = float(share)
    return metrics


def publish(
    ctx: RunContext,
    *,
    cells: DataFrame,
    areas: DataFrame,
    specs: Sequence[IndicatorSpec],
    contributors: DataFrame | None,
    release_id: str,
    force_release: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Disclosure control and the partner deliverables, written under the context's work root.

    ``cells``: ``level, area_code, year, indicator, value, status`` (``restricted/indicators``);
    ``specs``: the live catalogue (indicators whose sources are absent are left out). Writes
    ``restricted/disclosure_audit.parquet`` and ``export/``; stops with :class:`PipelineError`
    when the audit fails, the leak guard finds a problem or the release register refuses the
    release (unless ``force_release``). Returns ``(outputs, report)``.
    """
    from zicht.features.export import partner_csv
    from zicht.features.link import area_names
    from zicht.models.disclosure import (
        apply_disclosure,
        disclosure_report,
        linked_indicators,
        published_from_audit,
    )

    settings = ctx.settings
    outputs: dict[str, Any] = {}
    register = ctx.location("release_register")
    with ctx.timer.step("disclosure"):
        hierarchy = areas.select("buurt_code", "wijk_code", "gemeente_code")
        links = linked_indicators(settings.phenomena, specs)
        _, audit = apply_disclosure(
            cells,
            hierarchy,
            specs=specs,
            settings=settings.disclosure,
            magnitude_contributors=contributors,
            links=links,
        )
        audit, rec = ctx.write("disclosure_audit", audit)
        outputs[ctx.relative("disclosure_audit")] = rec
        # projected from the persisted audit, so the pandas suppression runs once
        published = published_from_audit(audit, settings=settings.disclosure)
        report = disclosure_report(
            audit,
            settings=settings.disclosure,
            dominance_applied=contributors is not None,
            links=links,
        )
        if not report["audit"]["passed"]:
            raise PrivacyRefusal(
                "disclosure audit failed: some suppressed counts can be recovered from the "
                f"published cells ({report['audit']['unprotected_cells']} cells); nothing was "
                "exported"
            )
        entry = release_entry(
            release_id,
            inputs=ctx.fact("inputs", {}),
            rules=report["parameters"],
            phenomena={
                k: {
                    "incident_codes": sorted(ph.incident_codes),
                    "classes": sorted(ph.classes),
                    "signal_categories": sorted(ph.signal_categories),
                }
                for k, ph in settings.phenomena.items()
            },
        )
        releases = read_register(ctx.fs, register)
        if any(r.get("digest_scheme") != fsmod.DIGEST_SCHEME for r in releases):
            releases = migrate_register(releases, entry, _legacy_hashes(ctx))
        joint = _check_against_earlier_releases(
            ctx, audit, hierarchy, releases, entry, force_release=force_release
        )
        if joint is not None:
            report["joint_audit"] = joint

    with ctx.timer.step("export"):
        names = area_names(areas)
        # The partner tables are aggregates: areas x years x indicators, small by construction
        # (about 14k buurten x a few years x ~130 indicators nationally), so they are rendered
        # on the driver and written in one call each.
        pub = (
            published.join(F.broadcast(names), ["level", "area_code"], "left")
            .select("level", "area_code", "area_name", "year", "indicator", "value", "status")
            .orderBy("level", "area_code", "year", "indicator")
            .toPandas()
        )
        unit_of = {s.key: s.unit for s in specs}
        pub = format_values(pub, unit_of=unit_of)
        problems = check_export(pub, units=unit_of, min_count=settings.disclosure.min_count)
        if problems:
            raise PrivacyRefusal("leak guard stopped the export: " + "; ".join(problems[:5]))
        for level in LEVELS:
            part = pub[pub["level"] == level]
            name = f"indicators_{level}"
            # text a spreadsheet would run as a formula gets a leading apostrophe
            outputs[ctx.relative(name)] = ctx.write_text(name, partner_csv(part), rows=len(part))
        codebook = codebook_frame(specs)
        outputs[ctx.relative("codebook")] = ctx.write_text(
            "codebook", partner_csv(codebook), rows=len(codebook)
        )
        outputs[ctx.relative("disclosure_report")] = ctx.write_text(
            "disclosure_report", json.dumps(report, indent=2, default=str), rows=1
        )
        outputs[ctx.relative("workbook")] = ctx.write_bytes(
            "workbook", write_xlsx(pub, codebook, report=report), rows=len(pub)
        )
        # One row per buurt (~14k nationally) with its outline: bounded, drawn on the driver.
        area_cols = ["buurt_code", "buurt_name", "x", "y", "land_area_ha", "geometry_wkt"]
        areas_pd = areas.select(*[c for c in area_cols if c in areas.columns]).toPandas()
        page = build_report_html(
            pub,
            areas_pd,
            phenomena={k: ph.label for k, ph in settings.phenomena.items()},
            report=report,
        )
        outputs[ctx.relative("report")] = ctx.write_text("report", page, rows=1)
        tables, columns = store_pseudonyms(ctx)
        # every file this stage wrote under export/, as the bytes it wrote (in memory already)
        export_dir = fsmod.join(ctx.work, "export")
        exported = {
            loc[len(export_dir) + 1 :]: data
            for loc, data in ctx.rendered.items()
            if fsmod.contains(export_dir, loc)
        }
        leaks = scan_export(ctx.spark, exported, tables, columns)
        if leaks:
            raise PrivacyRefusal("leak guard stopped the export: " + "; ".join(leaks[:5]))
        # pending until the export is committed (Export.after_commit marks it published); a
        # pending entry counts in every later check, and the next command on this output
        # removes it if its export never arrived (recover_register)
        releases.append(
            {**entry, "forced": bool(joint is not None), "state": "pending", "output": ctx.output}
        )
        write_register(ctx.fs, register, releases)
        # this release's pattern, for joint audits of later releases (statuses only)
        pattern = audit.where(F.col("reason") != F.lit("linked_difference")).select(
            "level", "area_code", "year", "indicator", "status"
        )
        pattern.write.mode("overwrite").parquet(
            ctx.location("release_pattern", release_id=release_id)
        )
    return outputs, report


LEVELS = ("buurt", "wijk", "gemeente")


def _legacy_hashes(ctx: RunContext) -> dict[str, str | None]:
    """This input's hashes as registers before the digest scheme recorded them (per-file
    sha256 of local inputs; remote inputs had none)."""
    from zicht.jobs.io import file_sha256, find_tables

    inp = ctx.fact("input_dir")
    if not inp or not fsmod.is_local(inp) or not ctx.fs.exists(inp):
        return {}
    return {name: file_sha256(loc) for name, (loc, _) in find_tables(ctx.fs, inp).items()}


def _check_against_earlier_releases(
    ctx: RunContext,
    audit: DataFrame,
    hierarchy: DataFrame,
    earlier: Sequence[Mapping[str, Any]],
    entry: Mapping[str, Any],
    *,
    force_release: bool,
) -> dict[str, Any] | None:
    """Refuse a release the register finds differencable against earlier ones of the same data;
    when forced, audit it together with them (``joint_audit``) and stop if that fails.
    Returns the joint audit's summary for the report, or None when nothing conflicted."""
    from zicht.features.export import release_conflicts
    from zicht.models.disclosure import joint_audit

    conflicts = release_conflicts(earlier, entry)
    if not conflicts:
        return None
    register = ctx.location("release_register")
    if not force_release:
        raise PrivacyRefusal(
            f"release register {register} refuses this export: "
            + "; ".join(conflicts[:3])
            + " (a partner could subtract the releases; pass --force-release to publish it "
            "anyway, after an audit of the releases together)"
        )
    same = [e for e in earlier if e.get("inputs") == entry.get("inputs")]
    paths = {
        str(e["run_id"]): ctx.location("release_pattern", release_id=str(e["run_id"])) for e in same
    }
    with_pattern = sorted(r for r, path in paths.items() if ctx.fs.exists(path))
    patterns = [ctx.spark.read.parquet(paths[r]) for r in with_pattern]
    # one row per jointly hidden count: bounded by the partner tables' size
    row = (
        joint_audit(audit, patterns, hierarchy, settings=ctx.settings.disclosure)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.when(F.col("protected") == F.lit(False), 1).otherwise(0)).alias("bad"),
        )
        .collect()[0]
    )
    summary = {
        "releases": with_pattern,
        "releases_without_pattern": sorted(set(paths) - set(with_pattern)),
        "audited_cells": int(row["n"]),
        "unprotected_cells": int(row["bad"] or 0),
        "passed": not row["bad"],
    }
    if row["bad"]:
        raise PrivacyRefusal(
            f"joint audit with {len(with_pattern)} earlier release(s) of the same data failed: "
            f"{summary['unprotected_cells']} counts hidden in every release can be recovered "
            "from the releases together; nothing was exported"
        )
    return summary


# --------------------------------------------------------------------------- zicht export


def main(argv: Sequence[str] | None = None) -> int:
    """``zicht export --from OUTPUT [--conf FILE] [--force-release]``: the export stage alone."""
    from zicht.jobs.stagejob import main as stage_main

    return stage_main("export", argv)


if __name__ == "__main__":
    sys.exit(main())
