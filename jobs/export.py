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

import argparse
import datetime as dt
import html
import json
import logging
import math
import shutil
import sys
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
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
from zicht.features.settings import ConfigError, IndicatorSpec, Settings
from zicht.jobs.io import InputError, find_table
from zicht.jobs.outputs import OutputRefused, require_zicht_output
from zicht.jobs.runtime import add_verbosity_flags, configure_logging
from zicht.jobs.stages import PipelineError, hash_output, stage, use_mlflow

log = logging.getLogger("zicht")

LEVEL_FILES = {lvl: f"export/indicators_{lvl}.csv" for lvl in ("buurt", "wijk", "gemeente")}

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
    """``indicators.xlsx``: Buurten, Wijken, Gemeenten (wide), Codeboek, Tekens, Toelichting.

    Streamed (openpyxl's write-only mode): the national Buurten sheet holds ~28k rows x ~165
    indicators, which a workbook held in memory writes several times slower."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
    indicators = list(codebook["indicator"])
    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def header_row(ws: Any, names: Sequence[object]) -> list[Any]:
        cells = [WriteOnlyCell(ws, value=name) for name in names]
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
                    cells.append(None if x == "" else x)
            ws.append(cells)

    ws = wb.create_sheet("Codeboek")
    header = ["indicator", "verschijnsel", "definitie (Engels, uit de catalogus)", "eenheid",
              "teller", "noemer", "bronnen", "kanttekeningen"]  # fmt: skip
    ws.append(header_row(ws, header))
    for r in codebook.itertuples(index=False):
        ws.append([r.indicator, r.phenomenon, r.definition, UNIT_NL.get(r.unit, r.unit),
                   r.numerator, r.denominator, r.sources, r.caveats])  # fmt: skip

    ws = wb.create_sheet("Tekens")
    ws.append(header_row(ws, ["teken", "betekenis", "toelichting"]))
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
    spark: SparkSession,
    settings: Settings,
    *,
    cells: DataFrame,
    areas: DataFrame,
    specs: Sequence[IndicatorSpec],
    contributors: DataFrame | None,
    input_dir: Path,
    accounting: Mapping[str, Mapping[str, Any]],
    work: Path,
    register: Path,
    release_id: str,
    timings: dict[str, float],
    force_release: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Disclosure control and the partner deliverables, written under ``work``.

    ``cells``: ``level, area_code, year, indicator, value, status`` (the run's cells, or
    ``restricted/indicators.parquet`` read back); ``specs``: the live catalogue (indicators whose
    sources are absent are left out). Writes ``restricted/disclosure_audit.parquet`` and
    ``export/``; stops with :class:`PipelineError` when the audit fails, the leak guard finds a
    problem or the release register refuses the release (unless ``force_release``). Returns
    ``(outputs, report)``.
    """
    from zicht.features.link import area_names
    from zicht.jobs.validate_inputs import materialize
    from zicht.models.disclosure import (
        apply_disclosure,
        disclosure_report,
        linked_indicators,
        published_from_audit,
    )

    outputs: dict[str, Any] = {}
    (work / "restricted").mkdir(parents=True, exist_ok=True)
    (work / "export").mkdir(parents=True, exist_ok=True)
    with stage(timings, "disclosure"):
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
        audit = materialize(audit, work / "restricted/disclosure_audit.parquet")
        # projected from the persisted audit, so the pandas suppression runs once
        published = published_from_audit(audit, settings=settings.disclosure)
        outputs["restricted/disclosure_audit.parquet"] = hash_output(
            work, "restricted/disclosure_audit.parquet", audit.count()
        )
        report = disclosure_report(
            audit,
            settings=settings.disclosure,
            dominance_applied=contributors is not None,
            links=links,
        )
        if not report["audit"]["passed"]:
            raise PipelineError(
                "disclosure audit failed: some suppressed counts can be recovered from the "
                f"published cells ({report['audit']['unprotected_cells']} cells); nothing was "
                "exported"
            )
        entry = release_entry(
            release_id,
            inputs=accounting,
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
        joint = _check_against_earlier_releases(
            spark, audit, hierarchy, settings, register, entry, force_release=force_release
        )
        if joint is not None:
            report["joint_audit"] = joint

    with stage(timings, "export"):
        names = area_names(areas)
        # The partner tables are aggregates: areas x years x indicators, small by construction
        # (about 14k buurten x a few years x ~130 indicators nationally), so they are written
        # from the driver as plain CSV files.
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
            raise PipelineError("leak guard stopped the export: " + "; ".join(problems[:5]))
        for level, rel in LEVEL_FILES.items():
            part = pub[pub["level"] == level]
            part.to_csv(work / rel, index=False)
            outputs[rel] = hash_output(work, rel, len(part))
        codebook = codebook_frame(specs)
        codebook.to_csv(work / "export/codebook.csv", index=False)
        outputs["export/codebook.csv"] = hash_output(work, "export/codebook.csv", len(codebook))
        (work / "export/disclosure_report.json").write_text(
            json.dumps(report, indent=2, default=str)
        )
        outputs["export/disclosure_report.json"] = hash_output(
            work, "export/disclosure_report.json", 1
        )
        write_xlsx(pub, codebook, work / "export/indicators.xlsx", report=report)
        outputs["export/indicators.xlsx"] = hash_output(work, "export/indicators.xlsx", len(pub))
        # One row per buurt (~14k nationally) with its outline: bounded, drawn on the driver.
        area_cols = ["buurt_code", "buurt_name", "x", "y", "land_area_ha", "geometry_wkt"]
        areas_pd = areas.select(*[c for c in area_cols if c in areas.columns]).toPandas()
        page = build_report_html(
            pub,
            areas_pd,
            phenomena={k: ph.label for k, ph in settings.phenomena.items()},
            report=report,
        )
        (work / "export/report.html").write_text(page, encoding="utf-8")
        outputs["export/report.html"] = hash_output(work, "export/report.html", 1)
        leaks = scan_export(spark, work / "export", input_dir)
        if leaks:
            raise PipelineError("leak guard stopped the export: " + "; ".join(leaks[:5]))
        register_release(register, entry, force=True)  # checked above
        # this release's pattern, for joint audits of later releases (statuses only)
        pattern = audit.where(F.col("reason") != F.lit("linked_difference")).select(
            "level", "area_code", "year", "indicator", "status"
        )
        pattern.write.mode("overwrite").parquet(str(register.parent / RELEASES_DIR / release_id))
    return outputs, report


RELEASES_DIR = "zicht_releases"  # beside the register: each release's published pattern


def _check_against_earlier_releases(
    spark: SparkSession,
    audit: DataFrame,
    hierarchy: DataFrame,
    settings: Settings,
    register: Path,
    entry: Mapping[str, Any],
    *,
    force_release: bool,
) -> dict[str, Any] | None:
    """Refuse a release the register finds differencable against earlier ones of the same data;
    when forced, audit it together with them (``joint_audit``) and stop if that fails.
    Returns the joint audit's summary for the report, or None when nothing conflicted."""
    from zicht.features.export import release_conflicts
    from zicht.models.disclosure import joint_audit

    earlier = json.loads(register.read_text()) if register.exists() else []
    conflicts = release_conflicts(earlier, entry)
    if not conflicts:
        return None
    if not force_release:
        raise PipelineError(
            f"release register {register} refuses this export: "
            + "; ".join(conflicts[:3])
            + " (a partner could subtract the releases; pass --force-release to publish it "
            "anyway, after an audit of the releases together)"
        )
    same = [e for e in earlier if e.get("inputs") == entry.get("inputs")]
    paths = {str(e["run_id"]): register.parent / RELEASES_DIR / str(e["run_id"]) for e in same}
    with_pattern = sorted(r for r, path in paths.items() if path.exists())
    patterns = [spark.read.parquet(str(paths[r])) for r in with_pattern]
    # one row per jointly hidden count: bounded by the partner tables' size
    row = (
        joint_audit(audit, patterns, hierarchy, settings=settings.disclosure)
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
        raise PipelineError(
            f"joint audit with {len(with_pattern)} earlier release(s) of the same data failed: "
            f"{summary['unprotected_cells']} counts hidden in every release can be recovered "
            "from the releases together; nothing was exported"
        )
    return summary


# --------------------------------------------------------------------------- zicht export


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="zicht export",
        description="Re-apply disclosure control to a finished run's indicators and replace its "
        "partner export, without recomputing any feature.",
    )
    p.add_argument("--from", dest="source", required=True, help="output folder of `zicht run`")
    p.add_argument("--conf", default=None, help="YAML overlay (e.g. other disclosure rules)")
    p.add_argument(
        "--input",
        default=None,
        help="the run's input folder, for the leak guard's pseudonym scan (default: the one "
        "recorded in manifest.json)",
    )
    p.add_argument(
        "--force-release",
        action="store_true",
        help="record the release even if the release register finds it could be differenced "
        "against an earlier one (after checking both releases together)",
    )
    add_verbosity_flags(p)
    return p.parse_args(argv)


def _load_run(source: Path) -> dict[str, Any]:
    manifest_path = source / "manifest.json"
    if not manifest_path.exists():
        raise InputError(f"--from {source}: no manifest.json; not a finished zicht run")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    for rel in ("restricted/indicators.parquet", "restricted/areas.parquet"):
        if not (source / rel).exists():
            raise InputError(
                f"--from {source}: {rel} is missing (written by zicht run since version 0.2); "
                "run `zicht run` again"
            )
    return manifest


def export_from(
    spark: SparkSession,
    settings: Settings,
    source: Path,
    *,
    input_dir: Path | None = None,
    force_release: bool = False,
) -> dict[str, Any]:
    """``zicht export --from``: disclosure and export again on a finished output folder.

    The new ``export/`` and audit are built in a temporary folder inside ``source`` and swapped
    in only when every check passed; the manifest gets the new outputs' hashes and an entry in
    ``exports``. Logged as its own MLflow run (tag ``zicht.export_of``: the run's id). Returns
    the updated manifest.
    """
    import mlflow

    source = source.resolve()
    require_zicht_output(source)
    manifest = _load_run(source)
    if input_dir is None:
        recorded = manifest.get("input_dir")
        if not recorded:
            raise InputError("manifest.json records no input folder: pass --input")
        input_dir = Path(recorded)
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} (for the leak guard) does not exist")
    skipped = manifest.get("skipped_indicators", {})
    specs = [s for s in settings.indicators if s.key not in skipped]
    cells = spark.read.parquet(str(source / "restricted/indicators.parquet"))
    if "status" not in cells.columns:
        raise InputError("restricted/indicators.parquet has no status column: run zicht run again")
    known = {r["indicator"] for r in cells.select("indicator").distinct().collect()}  # catalogue
    missing = sorted(s.key for s in specs if s.key not in known)
    if missing:
        raise InputError(
            f"--conf asks for indicators the run did not compute ({', '.join(missing[:5])}); "
            "the export re-applies disclosure only: run `zicht run` for new indicators"
        )
    cells = cells.where(F.col("indicator").isin([s.key for s in specs]))
    areas = spark.read.parquet(str(source / "restricted/areas.parquet"))
    contrib_path = source / "restricted/magnitude_contributors.parquet"
    contributors = spark.read.parquet(str(contrib_path)) if contrib_path.exists() else None

    release_id = uuid.uuid4().hex
    work = source / f".export.tmp-{release_id}"
    timings: dict[str, float] = {}
    started = dt.datetime.now(dt.UTC)
    use_mlflow(settings.mlflow.experiment, source)
    with mlflow.start_run(run_name=f"zicht-export-{started:%Y%m%dT%H%M%S}"):
        mlflow.set_tags({"zicht.export_of": str(manifest.get("run_id")), "zicht.stage": "export"})
        params = settings.to_flat_params()
        mlflow.log_params({k: v[:500] for k, v in params.items() if k.startswith("disclosure.")})
        try:
            outputs, report = publish(
                spark,
                settings,
                cells=cells,
                areas=areas,
                specs=specs,
                contributors=contributors,
                input_dir=input_dir,
                accounting=manifest.get("inputs", {}),
                work=work,
                register=source.parent / REGISTER_NAME,
                release_id=release_id,
                timings=timings,
                force_release=force_release,
            )
        except BaseException:
            mlflow.set_tag("zicht.failed", "true")
            mlflow.end_run(status="FAILED")
            shutil.rmtree(work, ignore_errors=True)
            raise
        mlflow.log_metrics(
            {**disclosure_metrics(report), **{f"time_{k}_s": v for k, v in timings.items()}}
        )
        mlflow.log_artifact(str(work / "export/disclosure_report.json"))
        # swap in: export/ as a folder, the audit as a folder (Parquet), then the manifest
        audit_rel = "restricted/disclosure_audit.parquet"
        old = source / f".export.old-{release_id}"
        old.mkdir()
        # (a folder that went through the stage jobs has no export or audit yet)
        if (source / "export").exists():
            (source / "export").rename(old / "export")
        if (source / audit_rel).exists():
            (source / audit_rel).rename(old / "disclosure_audit.parquet")
        (work / "export").rename(source / "export")
        (work / audit_rel).rename(source / audit_rel)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        manifest["outputs"] = {
            k: v
            for k, v in manifest.get("outputs", {}).items()
            if not k.startswith("export/") and k != audit_rel
        } | outputs
        manifest["config"]["disclosure"] = settings.to_jsonable()["disclosure"]
        manifest.setdefault("exports", []).append(
            {
                "release_id": release_id,
                "finished": dt.datetime.now(dt.UTC).isoformat(),
                "rules": report["parameters"],
                "forced": force_release,
                "timings_s": timings,
            }
        )
        tmp = source / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        tmp.replace(source / "manifest.json")
        mlflow.log_artifact(str(source / "manifest.json"))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    args = parse_args(argv)
    configure_logging(args.verbosity)
    try:
        source = Path(args.source)
        require_zicht_output(source)
        if not (source / "manifest.json").exists():
            raise InputError(f"--from {source}: no manifest.json; not a finished zicht run")
        settings = load_settings(args.conf)
    except OutputRefused as exc:
        print(f"zicht export: {exc}", file=sys.stderr)
        return 3
    except (InputError, ConfigError) as exc:
        print(f"zicht export: {exc}", file=sys.stderr)
        return 2
    spark = build_spark(settings.spark, app_name="zicht-export")
    try:
        manifest = export_from(
            spark,
            settings,
            source,
            input_dir=Path(args.input) if args.input else None,
            force_release=args.force_release,
        )
    except OutputRefused as exc:
        print(f"zicht export: {exc}", file=sys.stderr)
        return 3
    except (InputError, PipelineError) as exc:
        print(f"zicht export: {exc}", file=sys.stderr)
        return 2
    last = manifest["exports"][-1]
    print(f"zicht export {last['release_id']} finished")
    print(f"  partner tables : {source.resolve() / 'export'}")
    print(f"  rules          : {json.dumps(last['rules'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
