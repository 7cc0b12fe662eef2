"""Partner deliverables beside the CSV tables, and the content scan of ``export/``.

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
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from zicht.features.export import export_tokens, find_pseudonyms, pseudonym_values
from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.jobs.io import find_table

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
}
NUMBER_FORMAT = {"count": "0", "euro": "0", "rate": "0.0", "km": "0.0", "share": "0.000"}


# --------------------------------------------------------------------------- leak guard


def file_text(path: Path) -> str:
    """The text of one export file; an XLSX (a zip of XML parts) as all its parts together."""
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in sorted(z.namelist()))
    return path.read_text(encoding="utf-8", errors="replace")


def scan_export(spark: SparkSession, export_dir: Path, input_dir: Path) -> list[str]:
    """Problems (empty: clean): export files holding a value of an input pseudonym column.

    The tokens of every file (small: see ``export_tokens``) go to Spark and meet the pseudonym
    columns read straight from the input files, so every pseudonym is covered, including those
    of rows the validation rejected.
    """
    rows = [
        (p.relative_to(export_dir).as_posix(), tok)
        for p in sorted(export_dir.rglob("*"))
        if p.is_file()
        for tok in sorted(export_tokens(file_text(p)))
    ]
    tables: dict[str, DataFrame] = {}
    for name in PSEUDONYM_COLUMNS:
        found = find_table(str(input_dir), name)
        if found is None:
            continue
        path, fmt = found
        reader = spark.read
        tables[name] = (
            reader.parquet(path) if fmt == "parquet" else reader.option("header", True).csv(path)
        )
    if not rows or not tables:
        return []
    tokens = spark.createDataFrame(rows, "file string, token string")
    values = pseudonym_values(tables, columns=PSEUDONYM_COLUMNS)
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


def write_xlsx(
    pub: pd.DataFrame, codebook: pd.DataFrame, path: Path, *, report: Mapping[str, object]
) -> None:
    """``indicators.xlsx``: Buurten, Wijken, Gemeenten (wide), Codeboek, Tekens, Toelichting."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
    indicators = list(codebook["indicator"])
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    for level, title in LEVEL_SHEETS.items():
        ws = wb.create_sheet(title)
        wide = wide_table(pub[pub["level"] == level], indicators=indicators)
        ws.append(list(wide.columns))
        for c in ws[1]:
            c.font = bold
        for row in wide.itertuples(index=False):
            ws.append([None if x == "" else x for x in row])
        for j, name in enumerate(wide.columns, start=1):
            fmt = NUMBER_FORMAT.get(units.get(str(name), ""))
            if fmt:
                for (c,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                    if isinstance(c.value, float):
                        c.number_format = fmt
        ws.freeze_panes = "D2"

    ws = wb.create_sheet("Codeboek")
    header = ["indicator", "verschijnsel", "definitie (Engels, uit de catalogus)", "eenheid",
              "teller", "noemer", "bronnen", "kanttekeningen"]  # fmt: skip
    ws.append(header)
    for c in ws[1]:
        c.font = bold
    for r in codebook.itertuples(index=False):
        ws.append([r.indicator, r.phenomenon, r.definition, UNIT_NL.get(r.unit, r.unit),
                   r.numerator, r.denominator, r.sources, r.caveats])  # fmt: skip

    ws = wb.create_sheet("Tekens")
    ws.append(["teken", "betekenis", "toelichting"])
    for c in ws[1]:
        c.font = bold
    for row in SYMBOL_ROWS:
        ws.append(list(row))

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
        ws.append([line])
    wb.save(path)


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
        "inputs": {t: a.get("sha256") for t, a in sorted(inputs.items())},
        "rules": dict(rules),
        "phenomena": {k: phenomena[k] for k in sorted(phenomena)},
    }


def register_release(
    register: Path, entry: Mapping[str, object], *, force: bool = False
) -> list[str]:
    """Check ``entry`` against the register beside the MLflow store and add it.

    Returns the conflicts (``release_conflicts``); with conflicts and not ``force`` nothing is
    added and the caller must stop the export. A forced release is recorded with
    ``"forced": true``. The register holds hashes and rules only, nothing person-level.
    """
    from zicht.features.export import release_conflicts

    releases = json.loads(register.read_text()) if register.exists() else []
    problems = release_conflicts(releases, entry)
    if problems and not force:
        return problems
    releases.append({**entry, "forced": bool(problems)})
    tmp = register.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(releases, indent=2, default=str))
    tmp.replace(register)
    return []
