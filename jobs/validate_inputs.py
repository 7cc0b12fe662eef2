"""Validation stage: read every input table, apply the contract rules, account for every row.

Reads the input folder through ``zicht.jobs.io``; returns accepted frames (cached), reject
frames and the per-table accounting (rows read = used + rejected + excluded). Writes nothing
itself: ``zicht.jobs.run`` writes the rejects under ``restricted/rejects/<table>``. Stops with
one clear :class:`~zicht.jobs.io.InputError` when a table's reject share exceeds the configured
limit, or at the first reject with ``--strict``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.link import add_point_rejects, with_point_buurt
from zicht.features.schemas import INPUT_TABLES
from zicht.features.settings import Settings
from zicht.features.validate import (
    Parent,
    RuleContext,
    accepted,
    parent_keys,
    rejects,
    validate_table,
)
from zicht.jobs.config import load_crime_codes
from zicht.jobs.io import InputError, RawInput, read_input

ORDER = (
    "areas",
    "addresses",
    "incidents",
    "suspects",
    "persons",
    "companies",
    "company_roles",
    "signals",
    "person_links",
    "property_transactions",
    "household_income",
)


@dataclass
class Validated:
    accepted: dict[str, DataFrame] = field(default_factory=dict)
    rejects: dict[str, DataFrame] = field(default_factory=dict)
    accounting: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    years: tuple[int, ...] = ()
    reference_date: dt.date | None = None
    persons_have_snapshots: bool = False
    areas_have_inhabitants: bool = False
    polygons: list[tuple[str, str]] = field(default_factory=list)


def _count(validated: DataFrame) -> tuple[int, int, int]:
    row = validated.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("reject_rule").isNotNull().cast("long")).alias("rej"),
        F.sum(F.col("is_excluded").cast("long")).alias("exc"),
    ).first()
    assert row is not None
    return int(row["n"]), int(row["rej"] or 0), int(row["exc"] or 0)


def _stop_message(name: str, validated: DataFrame, why: str) -> str:
    """Name the table, the most frequent rule (and so its column) and a few example keys."""
    key = INPUT_TABLES[name].key
    bad = validated.where(F.col("reject_rule").isNotNull())
    top = (
        bad.select(F.explode(F.split("reject_rule", ";")).alias("rule"))
        .groupBy("rule")
        .count()
        .orderBy(F.desc("count"), "rule")
        .first()
    )
    rule = top["rule"] if top else "?"
    column = rule.split(".")[0]
    examples = [
        "+".join(str(r[k]) for k in key if k in r.asDict())
        for r in bad.where(F.array_contains(F.split("reject_rule", ";"), rule))
        .select(*[F.col("_raw_" + k).alias(k) for k in key])
        .limit(3)
        .collect()
    ]
    return (
        f"table {name}: {why}; most frequent rule {rule} (column {column}); "
        f"example keys: {', '.join(examples) or '(none)'}. Rejected rows would be under "
        f"restricted/rejects/{name}; fix the extract or raise validation.max_reject_share."
    )


def materialize(df: DataFrame, path: Path) -> DataFrame:
    """Write a frame to Parquet and read it back.

    Each validated table is read several times and feeds the references of the next tables;
    reading it back from Parquet cuts the query plan there, so plans stay small (Catalyst's
    analysis time grows with the plan) and a cluster run depends on no executor's cache.
    """
    df.write.mode("overwrite").parquet(str(path))
    return df.sparkSession.read.parquet(str(path))


def validate_inputs(
    spark: SparkSession,
    input_dir: str,
    settings: Settings,
    *,
    run_date: dt.date,
    stage_dir: Path,
) -> Validated:
    forbidden = settings.validation.forbidden_columns
    # Read every table first: a sensitive column anywhere stops the run before any work.
    raws: dict[str, RawInput] = {}
    for name in ORDER:
        raw = read_input(spark, input_dir, name, forbidden=forbidden)
        if raw is not None:
            raws[name] = raw

    out = Validated()
    crime_codes = spark.createDataFrame(
        load_crime_codes(), "incident_code string, crime_class string"
    )
    signal_categories = tuple(
        sorted({c for ph in settings.phenomena.values() for c in ph.signal_categories})
    )
    parents: dict[str, Parent] = {}
    configured_years = tuple(settings.period.years)
    ctx = RuleContext(
        run_date=run_date,
        period_years=configured_years,
        period_configured=bool(configured_years),
        reference_date=settings.period.reference_date,
        signal_categories=signal_categories,
        crime_codes=crime_codes,
    )
    out.areas_have_inhabitants = "areas" in raws and "inhabitants" in raws["areas"].present_columns
    out.persons_have_snapshots = (
        "persons" in raws and "snapshot_year" in raws["persons"].present_columns
    )

    for name in ORDER:
        if name not in raws:
            continue
        raw = raws[name]
        ctx = dataclasses.replace(ctx, parents=dict(parents))
        v = validate_table(name, raw.frame, ctx)
        if name == "incidents":
            v = with_point_buurt(v, polygons=out.polygons)
            v = add_point_rejects(v, has_polygons=bool(out.polygons))
        v = materialize(v, stage_dir / "validated" / name)
        n, n_rej, n_exc = _count(v)
        out.accounting[name] = {
            "rows_read": n,
            "rows_used": n - n_rej - n_exc,
            "rows_rejected": n_rej,
            "rows_excluded": n_exc,
            "sha256": raw.sha256,
            "format": raw.fmt,
            "columns_absent": [c for c in INPUT_TABLES[name].names if c not in raw.present_columns],
        }
        out.extra_columns[name] = list(raw.extra_columns)
        if settings.validation.strict and n_rej:
            raise InputError(_stop_message(name, v, "--strict stops at the first rejected row"))
        if n and n_rej / n > settings.validation.max_reject_share:
            raise InputError(
                _stop_message(
                    name,
                    v,
                    f"{n_rej} of {n} rows rejected ({n_rej / n:.1%}), above the limit of "
                    f"{settings.validation.max_reject_share:.1%}",
                )
            )
        out.rejects[name] = rejects(v, name)
        out.accepted[name] = accepted(v, name)
        if name in ("areas", "addresses", "incidents", "companies"):
            parents[name] = parent_keys(v, name)
        if name == "areas" and "geometry_wkt" in raw.present_columns:
            # Buurt polygons for point-in-polygon: one row per buurt (~14k nationally), small
            # by construction, so they go to the driver and travel with the locating tasks.
            out.polygons = [
                (r["buurt_code"], r["geometry_wkt"])
                for r in out.accepted["areas"]
                .where(F.col("geometry_wkt").isNotNull())
                .select("buurt_code", "geometry_wkt")
                .collect()
            ]
        if name == "incidents":
            years = configured_years or tuple(
                sorted(
                    int(r[0])
                    for r in out.accepted["incidents"]
                    .select(F.year("incident_date"))
                    .distinct()
                    .collect()
                )
            )
            if not years:
                raise InputError(
                    "table incidents: no valid incident, so there is no period to analyse"
                )
            out.years = years
            out.reference_date = settings.period.reference_date or dt.date(max(years), 12, 31)
            ctx = dataclasses.replace(ctx, period_years=years, reference_date=out.reference_date)
    return out
