"""The export stage: disclosure control, the partner files, the leak guard and the register.

:func:`publish` runs disclosure control on ``restricted/indicators`` (``zicht.models.disclosure``),
writes ``restricted/disclosure_audit.parquet``, checks the release against the register, renders
the national ``export/`` and one package per configured partner (:mod:`.package`), passes every
rendered file through the leak guard (:mod:`.guard`) before any is written, writes them through
:mod:`zicht.jobs.fs`, and records the release as pending in the register (:mod:`.register`).
The partner table is aggregate and small by construction (areas x years x indicators), and the
area table holds ~14k buurten nationally: both are pandas frames on the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.features.export import (
    check_export,
    codebook_frame,
    format_values,
    phenomena_registered,
    rows_of_gemeenten,
    sort_rows,
)
from zicht.features.link import area_hierarchy
from zicht.features.regions import regions_of
from zicht.features.settings import IndicatorSpec, Phenomenon
from zicht.jobs import fs as fsmod
from zicht.jobs.context import PrivacyRefusal, RunContext
from zicht.jobs.export import register as reg
from zicht.jobs.export.geo import area_geometries
from zicht.jobs.export.guard import scan_files, store_pseudonyms
from zicht.jobs.export.package import (
    cut,
    package_report,
    plan_packages,
    reference_rows,
    render_files,
    split_reference,
)
from zicht.jobs.export.report import SECTOR_NL
from zicht.jobs.export.republication import check_republication
from zicht.jobs.export.trends import trend_table
from zicht.jobs.export.writers import ExportFile
from zicht.jobs.releases import active

log = logging.getLogger("zicht")

AREA_COLUMNS = ["buurt_code", "buurt_name", "wijk_code", "gemeente_code", "x", "y",
                "land_area_ha", "geometry_wkt"]  # fmt: skip


class Published(NamedTuple):
    outputs: dict[str, Any]  # catalogue location -> the manifest's record
    report: dict[str, Any]  # the national disclosure report
    facts: dict[str, Any]  # for the manifest: the packages written and the warnings


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


def partner_table(
    published: DataFrame, areas: DataFrame, specs: Sequence[IndicatorSpec]
) -> pd.DataFrame:
    """The formatted partner rows of every level (the one protected table), on the driver."""
    from zicht.features.link import area_names

    names = area_names(areas)
    pub = (
        published.join(F.broadcast(names), ["level", "area_code"], "left")
        .select("level", "area_code", "area_name", "year", "indicator", "value", "status")
        .toPandas()
    )
    # sorted on the driver: a Spark orderBy would sample, range-partition and shuffle the
    # table for an order pandas gives from integer codes
    pub = sort_rows(pub, ["level", "area_code", "year", "indicator"])
    return format_values(pub, unit_of={s.key: s.unit for s in specs})


def publish(
    ctx: RunContext,
    *,
    cells: DataFrame,
    areas: DataFrame,
    specs: Sequence[IndicatorSpec],
    contributors: DataFrame | None,
    release_id: str,
    force_release: bool = False,
) -> Published:
    """Disclosure control and the partner deliverables, written under the context's work root.

    ``cells``: ``level, area_code, year, indicator, value, status`` (``restricted/indicators``);
    ``specs``: the live catalogue (indicators whose sources are absent are left out). Writes
    ``restricted/disclosure_audit.parquet``, ``export/`` and ``export/partners/<name>/``; stops
    with :class:`PrivacyRefusal` when the audit fails, the leak guard finds a problem or the
    release register refuses the release (unless ``force_release``).
    """
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
        hierarchy = area_hierarchy(areas)
        links = linked_indicators(settings.phenomena, specs)
        _, audit = apply_disclosure(
            cells,
            hierarchy,
            specs=specs,
            settings=settings.disclosure,
            magnitude_contributors=contributors,
            links=links,
            regions=regions_of(settings.export.partners),  # the reference levels, if any
        )
        audit, rec = ctx.write("disclosure_audit", audit)
        outputs[ctx.relative("disclosure_audit")] = rec
        # projected from the persisted audit, so the pandas suppression runs once
        published = published_from_audit(audit, settings=settings.disclosure)
        from zicht.features.vintages import is_unassigned

        # v2: the unassigned part of a wijk or gemeente was a cell of the audit; it is no CBS
        # area, so the partner table leaves it out (its wijk and gemeente include it)
        published = published.where(~is_unassigned(F.col("area_code")))
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
        entry = reg.release_entry(
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
        releases = reg.read_register(ctx.fs, register)
        if any(r.get("digest_scheme") != fsmod.DIGEST_SCHEME for r in releases):
            releases = reg.migrate_register(releases, entry, reg.legacy_hashes(ctx))
        # audited against: every release but those retired with `zicht releases forget`
        earlier = active(releases)
        joint = reg.check_against_earlier_releases(
            ctx, audit, hierarchy, earlier, entry, force_release=force_release
        )
        if joint is not None:
            report["joint_audit"] = joint
        # every earlier release of any delivery or vintage (zicht.jobs.export.republication)
        report["across_releases"] = check_republication(ctx, audit, hierarchy, earlier, release_id)

    with ctx.timer.step("export"):
        files, facts = render_all(ctx, published=published, areas=areas, specs=specs, report=report)
        tables, columns, keyed = store_pseudonyms(ctx)
        # every file, national and packages, before any is written
        leaks = scan_files(ctx.spark, files, tables, columns, keyed)
        if leaks:
            raise PrivacyRefusal("leak guard stopped the export: " + "; ".join(leaks[:5]))
        packages: dict[str, dict[str, Any]] = {
            p["name"]: {"gemeenten": p["gemeenten"], "files": {}} for p in facts["packages"]
        }
        for f in files:
            rel = ctx.relative(f.dataset, **dict(f.params))
            outputs[rel] = ctx.write_bytes(f.dataset, f.data, rows=f.rows, **dict(f.params))
            if "partner" in f.params:
                packages[f.params["partner"]]["files"][rel] = outputs[rel]["sha256"]
        # pending until the export is committed (Export.after_commit marks it published); a
        # pending entry counts in every later check, and the next command on this output
        # removes it if its export never arrived (recover_register)
        releases.append(
            {
                **entry,
                "packages": packages,
                "forced": bool(joint is not None),
                "state": "pending",
                "output": ctx.output,
            }
        )
        reg.write_register(ctx.fs, register, releases)
        # this release's pattern, for joint audits of later releases (statuses only)
        pattern = audit.where(F.col("reason") != F.lit("linked_difference")).select(
            "level", "area_code", "year", "indicator", "status"
        )
        pattern.write.mode("overwrite").parquet(
            ctx.location("release_pattern", release_id=release_id)
        )
    return Published(outputs, report, facts)


def render_all(
    ctx: RunContext,
    *,
    published: DataFrame,
    areas: DataFrame,
    specs: Sequence[IndicatorSpec],
    report: dict[str, Any],
) -> tuple[list[ExportFile], dict[str, Any]]:
    """The national files and every partner package, rendered in memory (nothing written);
    the partner table passes the structural leak guard first. The national files are the same
    with or without packages; each package's own disclosure report says why it needs no audit
    of its own."""
    settings = ctx.settings
    # the reference rows (regio, studiegebied; only with configured regions) go to the
    # packages of those regions, not into the national files
    regions = regions_of(settings.export.partners)
    pub, reference = split_reference(partner_table(published, areas, specs), regions)
    unit_of = {s.key: s.unit for s in specs}
    problems = check_export(pub, units=unit_of, min_count=settings.disclosure.min_count)
    if len(reference):
        problems += check_export(reference, units=unit_of, min_count=settings.disclosure.min_count)
    if problems:
        raise PrivacyRefusal("leak guard stopped the export: " + "; ".join(problems[:5]))
    codebook = codebook_frame(specs)
    # One row per buurt (~14k nationally) with its outline: bounded, drawn on the driver.
    areas_pd = areas.select(*[c for c in AREA_COLUMNS if c in areas.columns]).toPandas()
    geometries = area_geometries(areas_pd)
    phenomena = {k: ph.label for k, ph in settings.phenomena.items()}
    present = phenomena_registered(pub, list(phenomena))
    # a sector of the sectors catalogue is offered like a phenomenon (report and maps)
    for name in settings.sectors:
        key = f"sector.{name}"
        if pub["indicator"].str.startswith(f"{key}.").any():
            phenomena[key] = "sector " + SECTOR_NL.get(name, name.replace("_", " "))
            present.add(key)
    absent = [k for k in phenomena if k not in present]
    if absent:
        log.warning(
            "no registration of %s anywhere in the input: the extract may be partial",
            ", ".join(absent),
        )
    first = overlay_phenomena(settings.phenomena)
    gemeenten = set(areas_pd["gemeente_code"]) if "gemeente_code" in areas_pd else set()
    packages, warnings = plan_packages(settings.export.partners, gemeenten)
    for w in warnings:
        log.warning(w)
    dialect = settings.export.csv_dialect
    # the trends of the published values only (zicht.jobs.export.trends), national q-values
    from zicht.jobs.vintages import inexact_target_buurten

    trends = trend_table(
        pub,
        specs=specs,
        fdr_alpha=settings.model.fdr_alpha,
        inexact=inexact_target_buurten(ctx),
    )
    # hot spots of the published buurt rates only (zicht.jobs.export.hotspots_published)
    from zicht.jobs.export.hotspots_published import cut_hotspots, published_hotspots

    hotspots = published_hotspots(
        pub, areas_pd, phenomena=[k for k in phenomena if k in present], settings=settings.model
    )
    # the published counts beside the reference totals (zicht.jobs.export.plausibility_report)
    from zicht.jobs.export.plausibility_report import report_section

    plausibility = ctx.fact("plausibility")
    files = render_files(
        pub,
        trends=trends,
        hotspots=hotspots,
        plausibility_html=report_section(
            pub, plausibility, phenomena=settings.phenomena, labels=phenomena
        ),
        codebook=codebook,
        report=report,
        areas=areas_pd,
        geometries=geometries,
        phenomena=phenomena,
        dialect=dialect,
        present=present,
        first=first,
    )
    for p in packages:
        rows, part_areas, geoms = cut(
            pub, areas_pd, geometries, p.gemeenten, reference_rows(reference, p)
        )
        files += render_files(
            rows,
            trends=rows_of_gemeenten(trends, p.gemeenten),
            hotspots=cut_hotspots(hotspots, p.gemeenten),
            plausibility_html=report_section(
                rows,
                plausibility,
                phenomena=settings.phenomena,
                labels=phenomena,
                gemeenten=p.gemeenten,
            ),
            codebook=codebook,
            report=package_report(report, rows, p),
            areas=part_areas,
            geometries=geoms,
            phenomena=phenomena,
            dialect=dialect,
            partner=p.name,
            present=present,
            first=first,
            title=f"Ondermijning in het gebied van {p.label}",
        )
    facts = {
        "packages": [
            {"name": p.name, "label": p.label, "gemeenten": list(p.gemeenten)} for p in packages
        ],
        "package_warnings": warnings,
        "report_hotspots": {
            "indicators": sorted(set(hotspots["indicator"])),
            "years": sorted({int(y) for y in hotspots["year"]}),
            "computed_from": "published buurt values only (status ok), public outlines",
        },
    }
    if absent:
        facts["phenomena_not_in_delivery"] = {
            "phenomena": absent,
            "warning": "no registration of these phenomena anywhere in the input: the extract "
            "may be partial; the report shows them as not in this delivery",
        }
    return files, facts


def overlay_phenomena(phenomena: Mapping[str, Phenomenon]) -> list[str]:
    """The phenomena an overlay configured (new, or defined otherwise than in ``conf/base``):
    the report lists them first."""
    from importlib import resources

    import yaml

    text = resources.files("zicht.conf").joinpath("phenomena.yaml").read_text(encoding="utf-8")
    base = (yaml.safe_load(text) or {}).get("phenomena", {}) or {}

    def codes(body: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
        return (set(body.get("incident_codes") or ()), set(body.get("classes") or ()),
                set(body.get("signal_categories") or ()))  # fmt: skip

    return [
        k
        for k, ph in phenomena.items()
        if k not in base
        or codes(base[k] or {})
        != (set(ph.incident_codes), set(ph.classes), set(ph.signal_categories))
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``zicht export --from OUTPUT [--conf FILE] [--force-release]``: the export stage alone."""
    from zicht.jobs.stagejob import main as stage_main

    return stage_main("export", argv)
