"""Validation stage: read every input table, apply the contract rules, account for every row.

Reads the input folder through ``zicht.jobs.io``; writes each validated table once to
``<stage_dir>/validated/<table>`` (typed contract columns, ``reject_rule``, ``is_excluded``, and
the raw text on rejected rows only: :func:`zicht.features.validate.with_reject_text`) and
returns the accepted frames and reject frames read from it, with the per-table accounting (rows
read = used + rejected + excluded). ``stage_dir`` is a local path or a URI. The caller writes
the rejects under ``restricted/rejects/<table>``. Stops with one clear
:class:`~zicht.jobs.io.InputError` when a table's reject share exceeds the configured limit, or
at the first reject with ``--strict``. Spark jobs carry the description ``zicht validate
<table>`` (the UI's and the status store's job list).

A Parquet table is validated in two steps: narrow passes over its key and reference columns
find the few duplicated keys and dangling references (collected when at most
``PRECHECK_ROWS``), then one pass over the rows flags them by broadcast joins and applies the
other rules, shuffling no whole row (:class:`zicht.features.validate.Prechecked`). A CSV table
takes one pass with the window and the joins, as re-reading its text would cost more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.keys import PSEUDONYM_COLUMNS, with_surrogate_keys
from zicht.features.link import add_point_rejects, with_point_buurt
from zicht.features.schemas import INPUT_TABLES
from zicht.features.settings import Settings
from zicht.features.validate import (
    Parent,
    Prechecked,
    RuleContext,
    accepted,
    dangling_references,
    duplicate_keys,
    key_hash_candidates,
    parent_keys,
    rejects,
    validate_table,
    with_reject_text,
)
from zicht.jobs import catalog
from zicht.jobs.config import load_crime_codes
from zicht.jobs.io import InputError, RawInput, read_input
from zicht.jobs.vintages import VintageStep

ORDER = (
    "areas",
    "area_changes",
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
    "unusual_transactions",
    "ownership",
)

# The tables grouped into waves: a table refers only to tables of earlier waves (REFERENCES in
# zicht.features.validate, and unusual_transactions' company subjects to companies), and every
# table after incidents but companies uses the period that incidents settle
# (RuleContext.period_years, reference_date). The tables of a wave are validated concurrently
# (CONCURRENT_TABLES at a time) and recorded in wave order; the accounting keeps ORDER.
WAVES = (
    ("areas",),
    ("area_changes", "addresses"),
    ("incidents", "companies"),
    (
        "suspects",
        "persons",
        "company_roles",
        "signals",
        "person_links",
        "property_transactions",
        "household_income",
        "unusual_transactions",
        "ownership",
    ),
)
# two: the planning of one table overlaps the tasks of another; more would only add memory
CONCURRENT_TABLES = 2

# The most rows of duplicated keys or dangling references collected to the driver and
# broadcast; beyond it (a badly broken table) that rule shuffles the table instead.
PRECHECK_ROWS = 100_000


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
    areas_have_inhabitants_12plus: bool = False
    polygons: list[tuple[str, str]] = field(default_factory=list)
    raw: dict[str, DataFrame] = field(default_factory=dict)  # the input tables as read
    run_date_rejects: int = 0  # rows rejected by a rule that compares with the day of the run
    vintages: dict[str, Any] = field(default_factory=dict)  # target and placements (v2)


def _count(validated: DataFrame) -> tuple[int, int, int, int]:
    """Rows read, rejected, excluded, and rejected by a rule that compares a date with the day
    of the run (the store records the last: only those can change verdict on another day)."""
    row = validated.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("reject_rule").isNotNull().cast("long")).alias("rej"),
        F.sum(F.col("is_excluded").cast("long")).alias("exc"),
        F.sum(F.col("reject_rule").contains("after_run_date").cast("long")).alias("run_date"),
    ).first()
    assert row is not None
    return int(row["n"]), int(row["rej"] or 0), int(row["exc"] or 0), int(row["run_date"] or 0)


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
        for r in rejects(validated, name)
        .where(F.array_contains(F.split("reject_rule", ";"), rule))
        .select(*key)
        .limit(3)
        .collect()
    ]
    return (
        f"table {name}: {why}; most frequent rule {rule} (column {column}); "
        f"example keys: {', '.join(examples) or '(none)'}. Rejected rows would be under "
        f"{catalog.rejects(name).location}; fix the extract or raise validation.max_reject_share."
    )


def _few(df: DataFrame) -> DataFrame | None:
    """``df`` collected and handed back as a local frame when it has at most
    ``PRECHECK_ROWS`` rows (broadcast from there), else None."""
    rows = df.limit(PRECHECK_ROWS + 1).collect()
    if len(rows) > PRECHECK_ROWS:
        return None
    return df.sparkSession.createDataFrame(rows, df.schema)


def _precheck(name: str, raw: RawInput, parents: dict[str, Parent]) -> Prechecked | None:
    """The duplicated keys and dangling references of a Parquet table, when they are few.

    Each comes from a pass over its own column(s), cheap in Parquet, so the main pass needs no
    shuffle of whole rows. A CSV table is validated in one pass instead: every extra pass over a
    CSV file parses all of its text again, on one core when fields may hold line breaks.
    """
    if raw.fmt == "csv":
        return None
    candidates = _few(key_hash_candidates(raw.frame, name))
    duplicates = (
        None if candidates is None else _few(duplicate_keys(raw.frame, name, candidates=candidates))
    )
    dangling = {
        col: found
        for col, refs in dangling_references(raw.frame, name, parents).items()
        if (found := _few(refs)) is not None
    }
    return Prechecked(duplicate_keys=duplicates, dangling=dangling)


@contextmanager
def _job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs started inside (the UI's job list), then restore the caller's."""
    sc = spark.sparkContext
    before = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setJobDescription(before)  # type: ignore[arg-type]


def materialize(df: DataFrame, path: str | Path) -> DataFrame:
    """Write a frame to Parquet and read it back.

    Each validated table is read several times and feeds the references of the next tables;
    reading it back from Parquet cuts the query plan there, so plans stay small (Catalyst's
    analysis time grows with the plan) and a cluster run depends on no executor's cache.
    ``path`` is a local path or a URI.
    """
    df.write.mode("overwrite").parquet(str(path))
    return df.sparkSession.read.parquet(str(path))


def validate_inputs(
    spark: SparkSession,
    input_dir: str,
    settings: Settings,
    *,
    run_date: dt.date,
    stage_dir: str | Path,
) -> Validated:
    """Validate every input table in contract order; see the module docstring."""
    forbidden = settings.validation.forbidden_columns
    # locations are URIs or paths: children by string joining (Path("s3a://b") loses a slash)
    validated_dir = f"{str(stage_dir).rstrip('/')}/validated"
    # Read every table first: a sensitive column anywhere stops the run before any work.
    raws: dict[str, RawInput] = {}
    for name in ORDER:
        raw = read_input(
            spark, input_dir, name, forbidden=forbidden, encoding=settings.input.encoding
        )
        if raw is not None:
            raws[name] = raw

    out = Validated(raw={name: raw.frame for name, raw in raws.items()})
    vintage_step = VintageStep(
        spark,
        settings,
        has_vintage="areas" in raws and "vintage" in raws["areas"].present_columns,
        has_addresses="addresses" in raws,
    )
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
    out.areas_have_inhabitants_12plus = (
        "areas" in raws and "inhabitants_12plus" in raws["areas"].present_columns
    )
    out.persons_have_snapshots = (
        "persons" in raws and "snapshot_year" in raws["persons"].present_columns
    )

    def validate_one(name: str, ctx: RuleContext) -> tuple[DataFrame, tuple[int, int, int, int]]:
        """The rules of one table, written once and read back, and its counts: the Spark work
        of a table, run in a worker thread beside the other tables of its wave."""
        raw = raws[name]
        with _job_description(spark, f"zicht validate {name}"):
            pre = _precheck(name, raw, ctx.parents)
            v = validate_table(name, raw.frame, ctx, prechecked=pre)
            v = vintage_step.after_rules(name, v)  # areas.vintage, area_changes (v2)
            if name == "incidents":
                v = with_point_buurt(v, polygons=out.polygons)
                v = vintage_step.after_points(name, v)
                v = add_point_rejects(v, has_polygons=bool(out.polygons))
            # after the last rule: raw text stays on rejected rows only, and the
            # pseudonyms become 64-bit keys (zicht.features.keys)
            v = materialize(
                with_surrogate_keys(with_reject_text(v, name), name),
                f"{validated_dir}/{name}",
            )
            vintage_step.after_write(name, v)
            return v, _count(v)

    def record(name: str, v: DataFrame, counts: tuple[int, int, int, int]) -> None:
        """One validated table into ``out`` (main thread, contract order): the accounting,
        the stops, and what the later tables need from it."""
        nonlocal ctx
        raw = raws[name]
        n, n_rej, n_exc, n_run_date = counts
        out.run_date_rejects += n_run_date
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
            # aggregated once, kept for the tables that refer to it (addresses: five)
            keys = parent_keys(v, name, hashed=name in PSEUDONYM_COLUMNS)
            parents[name] = dataclasses.replace(
                keys, keys=keys.keys.persist(StorageLevel.MEMORY_AND_DISK)
            )
        if name == "areas" and "geometry_wkt" in raw.present_columns:
            # Buurt polygons for point-in-polygon: one row per buurt (~14k nationally),
            # small by construction, so they go to the driver and from there to the
            # executors once, as a broadcast (with_point_buurt).
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

    try:
        # The tables of a wave depend only on earlier waves (WAVES): they are validated
        # concurrently, so one table's planning and driver work overlaps another's tasks.
        # Results are recorded in contract order, so the accounting and the first stop do not
        # depend on which thread finished first.
        with ThreadPoolExecutor(max_workers=CONCURRENT_TABLES, thread_name_prefix="zv") as pool:
            for wave in WAVES:
                names = [name for name in wave if name in raws]
                wave_ctx = dataclasses.replace(ctx, parents=dict(parents))
                futures = {name: pool.submit(validate_one, name, wave_ctx) for name in names}
                done = {}
                failure: BaseException | None = None
                for name in names:  # every table of the wave finishes before any stop
                    try:
                        done[name] = futures[name].result()
                    except BaseException as exc:  # re-raised below, the first in order
                        failure = failure or exc
                if failure is not None:
                    raise failure
                for name in names:
                    record(name, *done[name])
        out.accounting = {n: out.accounting[n] for n in ORDER if n in out.accounting}
    finally:
        # the cached parent keys serve this validation only
        for parent in parents.values():
            parent.keys.unpersist()
    out.vintages = vintage_step.facts()
    return out
