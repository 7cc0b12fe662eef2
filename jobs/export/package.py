"""One set of partner files: the national ``export/`` or a partner's ``export/partners/<name>/``.

The same writers render both. A partner package (``export.partners`` in the configuration) is
the national partner table cut to the partner's gemeenten (:func:`rows_of_gemeenten`): its
buurt, wijk and gemeente tables, codebook, workbook, map files and report, and a disclosure
report saying why it needs no audit of its own. Every cell of a package is a cell of the one
protected table, unchanged. A partner whose gemeenten form a region (``region: true``,
``zicht.features.regions``) also gets reference rows: its region's and the study area's, in
its gemeente table (``indicators_gemeente.csv``, level ``regio`` / ``studiegebied``, after
the gemeenten) and on the workbook's Gemeenten sheet, as a partner comparing its gemeenten
with the region and the whole expects them. Those levels are levels of the disclosure
hierarchy, so these rows are cells of the protected table too; a package adds no aggregate of
its own (a region total that disclosure did not protect could be subtracted from the
published gemeenten to give a suppressed one back). The national files carry no reference rows
(they would name every partner's region). The national manifest, which names every partner,
and the other partners' files stay out. Reads and writes nothing: the export stage writes the
files it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from zicht.features.export import CODEBOOK_COLUMNS, rows_of_gemeenten
from zicht.features.regions import (
    REFERENCE_LEVELS,
    REGION,
    STUDY_AREA,
    STUDY_AREA_NAME,
    Regions,
)
from zicht.features.settings import PartnerSettings
from zicht.jobs.export.csvfile import render_csv
from zicht.jobs.export.geo import map_indicators, render_geojson
from zicht.jobs.export.jsonfile import render_json
from zicht.jobs.export.report import build_report_html
from zicht.jobs.export.trends import gemeente_trend_html, render_trends
from zicht.jobs.export.workbook import write_xlsx
from zicht.jobs.export.writers import ExportFile

LEVELS = ("buurt", "wijk", "gemeente")
# the rows of each level's table: the gemeente table carries the reference rows, if any
TABLE_LEVELS = {"buurt": ("buurt",), "wijk": ("wijk",), "gemeente": ("gemeente", *REFERENCE_LEVELS)}

NO_OWN_AUDIT = (
    "Every cell of this package is a cell of the national partner table, unchanged: the table "
    "that passed disclosure control and its audit in the same release. The package adds no "
    "aggregate of its own (no region or study-area total), so nothing in it can be subtracted "
    "to give a suppressed cell back that the national table does not already protect; it "
    "needs no audit of its own."
)
REFERENCE_AUDIT = (
    "Every cell of this package, its reference rows included, is a cell of the national "
    "partner table, unchanged: the table that passed disclosure control and its audit in the "
    "same release. The reference rows (level regio: this partner's region; level "
    "studiegebied: the whole study area) are no aggregate of the package's own: the region "
    "and the study area are levels of the hierarchy that disclosure control protects "
    "(gemeente within regio, every gemeente within the study area), suppressed and audited "
    "like the buurten, wijken and gemeenten, so subtracting the published gemeenten from a "
    "reference row gives no suppressed cell back; the package needs no audit of its own."
)


@dataclass(frozen=True)
class Package:
    """A configured partner and the gemeenten of its configuration present in the areas."""

    name: str
    label: str
    gemeenten: tuple[str, ...]
    missing: tuple[str, ...]  # configured but not among the areas
    region: str | None = None  # its region's code (its name) when its gemeenten form one


def plan_packages(
    partners: Mapping[str, PartnerSettings], present: set[str]
) -> tuple[list[Package], list[str]]:
    """The packages to write and the warnings for the manifest: a gemeente of a partner that
    is not among the areas is named; a partner with none present gets no package."""
    packages: list[Package] = []
    warnings: list[str] = []
    for name, p in sorted(partners.items()):
        have = tuple(g for g in p.gemeenten if g in present)
        missing = tuple(g for g in p.gemeenten if g not in present)
        if missing:
            warnings.append(
                f"export.partners.{name}: gemeente(n) {', '.join(missing)} not in the areas"
            )
        if not have:
            warnings.append(f"export.partners.{name}: no gemeente in the areas, no package")
            continue
        packages.append(Package(name, p.label or name, have, missing, name if p.region else None))
    return packages, warnings


def level_counts(pub: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Cells per level and status, named as the disclosure report names them."""
    names = {"ok": "published", "suppressed": "suppressed", "not_applicable": "not_applicable",
             "not_covered": "not_covered"}  # fmt: skip
    out: dict[str, dict[str, int]] = {}
    for level in (*LEVELS, *[lv for lv in REFERENCE_LEVELS if (pub["level"] == lv).any()]):
        st = pub.loc[pub["level"] == level, "status"].value_counts()
        out[level] = {n: int(st.get(s, 0)) for s, n in names.items()}
    return out


def package_report(
    report: Mapping[str, Any], pub: pd.DataFrame, package: Package
) -> dict[str, Any]:
    """The package's ``disclosure_report.json``: the national rules and verdict, this
    package's cells per level, and why it has no audit of its own (no other partner named)."""
    audit = report.get("audit", {})
    return {
        "package": {
            "partner": package.name,
            "label": package.label,
            "gemeenten": list(package.gemeenten),
            "own_audit": False,
            "why_no_own_audit": NO_OWN_AUDIT if package.region is None else REFERENCE_AUDIT,
            **({} if package.region is None else {"region": package.region}),
        },
        "rules": report.get("rules", []),
        "parameters": report.get("parameters", {}),
        "levels": level_counts(pub),
        "audit": {
            "passed": bool(isinstance(audit, Mapping) and audit.get("passed")),
            "of": "the national partner table this package is cut from",
        },
    }


def render_files(
    pub: pd.DataFrame,
    *,
    codebook: pd.DataFrame,
    report: Mapping[str, Any],
    areas: pd.DataFrame,
    geometries: Mapping[str, Mapping[str, str]],
    phenomena: Mapping[str, str],
    dialect: str,
    partner: str | None = None,
    present: set[str] | None = None,
    first: Sequence[str] = (),
    title: str = "",
    trends: pd.DataFrame | None = None,
    hotspots: pd.DataFrame | None = None,
    plausibility_html: str = "",
) -> list[ExportFile]:
    """Every file of one set: ``partner`` None for the national ``export/``, else the
    partner's package (datasets ``partner_*`` with ``partner`` as placeholder). ``present``:
    the phenomena registered anywhere in the delivery (the national table's, so a package
    shows a real 0 as 0); ``first``: the phenomena the report lists first."""
    params: dict[str, str] = {} if partner is None else {"partner": partner}

    def ds(kind: str) -> str:
        return kind if partner is None else f"partner_{kind}"

    files: list[ExportFile] = []
    for level in LEVELS:
        part = pub[pub["level"].isin(TABLE_LEVELS[level])]
        data = render_csv(part, dialect=dialect)
        if partner is None:
            files.append(ExportFile(f"indicators_{level}", data, len(part)))
        else:
            files.append(
                ExportFile("partner_indicators", data, len(part), {**params, "level": level})
            )
    files.append(
        ExportFile(
            ds("codebook"),
            render_csv(codebook[CODEBOOK_COLUMNS], dialect=dialect),
            len(codebook),
            params,
        )  # fmt: skip
    )
    files.append(ExportFile(ds("disclosure_report"), render_json(report), 1, params))
    if trends is not None:  # the published trends (zicht.jobs.export.trends)
        units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
        data = render_trends(trends, units=units, dialect=dialect)
        files.append(ExportFile(ds("trends"), data, len(trends), params))
    files.append(
        ExportFile(ds("workbook"), write_xlsx(pub, codebook, report=report), len(pub), params)
    )
    page = build_report_html(
        pub[pub["level"].isin(LEVELS)],  # the maps and trends are of areas; no reference rows
        areas,
        phenomena=phenomena,
        report=report,
        codebook=codebook,
        present=present,
        first=first,
        title=title,
        trend_html="" if trends is None else gemeente_trend_html(trends, phenomena=phenomena),
        hotspots=hotspots,  # of the published values (zicht.jobs.export.hotspots_published)
        plausibility_html=plausibility_html,  # zicht.jobs.export.plausibility_report
    )
    files.append(ExportFile(ds("report"), page.encode("utf-8"), 1, params))
    indicators = map_indicators(list(codebook["indicator"]), list(phenomena))
    for level, geoms in geometries.items():
        part = pub[pub["level"] == level]
        if part.empty or not geoms:
            continue
        data, n = render_geojson(part, geoms, indicators=indicators)
        if n:
            files.append(ExportFile(ds("geo"), data, n, {**params, "level": level}))
    return files


def split_reference(
    pub: pd.DataFrame, regions: Regions | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The partner table's area rows (buurt, wijk, gemeente: the national files) and its
    reference rows (regio, studiegebied), these named: a region by its label, the study
    area as such. Rows are the table's own, unchanged otherwise."""
    is_ref = pub["level"].isin(REFERENCE_LEVELS).to_numpy()
    ref = pub[is_ref].copy()
    labels = {} if regions is None else dict(regions.labels)
    ref["area_name"] = [
        STUDY_AREA_NAME if lv == STUDY_AREA else labels.get(code, code)
        for lv, code in zip(ref["level"], ref["area_code"], strict=True)
    ]
    return pub[~is_ref], ref


def reference_rows(reference: pd.DataFrame, package: Package) -> pd.DataFrame:
    """The package's reference rows: its region's and the study area's (none for a partner
    whose gemeenten form no region)."""
    if package.region is None:
        return reference.iloc[0:0]
    lv, code = reference["level"], reference["area_code"]
    return reference[((lv == REGION) & (code == package.region)) | (lv == STUDY_AREA)]


def cut(
    pub: pd.DataFrame,
    areas: pd.DataFrame,
    geometries: Mapping[str, Mapping[str, str]],
    gemeenten: Sequence[str],
    reference: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, str]]]:
    """The partner rows, buurten and outlines inside ``gemeenten``; ``reference``: its
    reference rows (:func:`reference_rows`), after its gemeenten's."""
    rows = rows_of_gemeenten(pub, gemeenten)
    if reference is not None and len(reference):
        rows = pd.concat([rows, reference], ignore_index=True)
    inside = (
        areas["gemeente_code"].isin(list(gemeenten)) if len(areas) else areas.index == areas.index
    )
    digits = {g[2:6] for g in gemeenten}
    geoms = {
        level: {c: g for c, g in by_code.items() if c[2:6] in digits}
        for level, by_code in geometries.items()
    }
    return rows, areas[inside], geoms
