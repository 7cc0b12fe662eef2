"""The City Deal's other themes: suspicious transactions, property ownership and sectors.

Reads nothing and writes nothing: the pass functions here give the rows that the registered
counts of :mod:`zicht.features.registry` aggregate (``zicht.features.indicators`` runs them
with every other pass), plus the Wwft guard on ``unusual_transactions`` that
``zicht.jobs.io`` applies before anything is written. Follows ``../shared/CONTRACT.md``
version 2, tables ``unusual_transactions`` and ``ownership``, and issue 19.

- **Suspicious transactions** (FIU-NL, only status ``verdacht``): each (transaction, subject)
  row is placed at its ``address_id`` when given, else at the subject's residence in the
  report's year (a person) or the company's seat (a company); a subject living outside the
  study area counts in no area, as a suspect living elsewhere does. Counted per level
  (``distinct``: a transaction with subjects in two buurten counts in both, once in their
  wijk). The euro sum counts each transaction once per area (its amount split over its
  subjects there); the contributors of the dominance rule are the subjects.
- **Ownership**: per dwelling (woonfunctie) and year with an ownership period in the year,
  whether an owner is unknown (``owner_id`` null or ``owner_kind`` unknown) and, only when
  ``patterns.unexplained_ownership`` is enabled with its legal basis, whether a person owner
  is one whose ownership their household's income cannot explain: an owner of at least
  ``min_dwellings`` dwellings in the year whose owned WOZ value (WOZ times share, summed over
  the dwellings) exceeds ``max_value_to_income`` times the household's standardised
  disposable income of the year. Only ``owner_kind = person`` owners are classified: housing
  corporations, companies and foundations never count. The per-owner frame exists only inside
  the aggregation's plan; it is never cut or written (CONTRACT.md: no per-owner flag).
- **Sectors** (``sectors:`` in conf, name -> SBI prefixes): per company seat, sector and year
  whether it is active, new (registered in the year), ended (deregistered in the year), and
  whether a person registered as suspect of an ondermijning incident (one of the configured
  phenomena) in the year holds one of ``patterns.sector_suspect_roles`` in it in the year.
  Persons registered at a ``logiesfunctie`` address (holiday parks' permanent residents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from zicht.features.schemas import SUSPICIOUS_STATUS

if TYPE_CHECKING:
    from zicht.features.indicators import PassContext
    from zicht.features.settings import IndicatorSpec, PatternSettings

UNDECLARED_MESSAGE = (
    f"a row has a status other than '{SUSPICIOUS_STATUS}': only transactions FIU-NL declared "
    "suspicious may leave FIU-NL (an unusual transaction that is not is confidential under the "
    "Wwft). Ask FIU-NL for an extract of declared-suspicious transactions only; nothing was "
    "written"
)
UNEXPLAINED_OWNERSHIP = "vastgoedfraude.unexplained_ownership_dwellings"
GATE_REASON = (
    "patterns.unexplained_ownership is not enabled (it classifies owners who are not suspects "
    "by their income: enable it with the legal_basis that allows this)"
)


def undeclared_rows(raw: DataFrame) -> DataFrame:
    """Rows of a raw ``unusual_transactions`` whose ``status`` is not ``verdacht`` (a missing
    status too: it cannot show the transaction was declared suspicious). No actions."""
    status = F.trim(F.col("status").cast("string"))
    return raw.where(~F.coalesce(status == F.lit(SUSPICIOUS_STATUS), F.lit(False)))


def gated_indicators(
    specs: Sequence[IndicatorSpec],
    patterns: PatternSettings,
    sectors: Mapping[str, Sequence[str]],
) -> dict[str, str]:
    """Indicators skipped because the pattern they need is not enabled, or their sector is not
    in ``sectors`` (the catalogue the stage was given), with the reason; and every indicator
    computed from one of them."""
    out: dict[str, str] = {}
    for s in specs:
        if s.key == UNEXPLAINED_OWNERSHIP and not patterns.unexplained_ownership.enabled:
            out[s.key] = GATE_REASON
        elif s.key.startswith("sector.") and s.key.split(".")[1] not in sectors:
            out[s.key] = f"sector {s.key.split('.')[1]} is not in the sectors catalogue"
    changed = bool(out)
    while changed:
        changed = False
        for s in specs:
            dep = next((d for d in (s.numerator, s.denominator) if d and d in out), None)
            if s.key not in out and dep is not None:
                out[s.key] = f"needs {dep}, which is skipped ({out[dep]})"
                changed = True
    return out


def _year_bounds() -> tuple[Column, Column]:
    year = F.col("year").cast("int")
    return F.make_date(year, F.lit(1), F.lit(1)), F.make_date(year, F.lit(12), F.lit(31))


def _active(start: str, end: str) -> Column:
    """The spell [start, end] (end null: still running) overlaps the year ``year``."""
    first, last = _year_bounds()
    return (F.col(start) <= last) & (F.col(end).isNull() | (F.col(end) >= first))


# --------------------------------------------------------------------------- FIU-NL


def _pass_fiu(ctx: PassContext) -> DataFrame | None:
    """Per level, area and year: one row per (transaction, subject) placed there, with
    ``amount_share_eur`` (the transaction's amount over its subjects in the area, so that a sum
    counts each transaction once) and ``subject_amount_eur`` (the subject's transactions there:
    the dominance rule's contributor)."""
    from zicht.features.indicators import _levels

    src = ctx.src
    ut, addresses = src.unusual_transactions, src.addresses
    if ut is None or addresses is None:
        return None
    rows = ut.select(
        "transaction_id",
        "subject_id",
        "subject_kind",
        "address_id",
        "amount_eur",
        F.year("report_date").cast("long").alias("year"),
    ).join(F.broadcast(ctx.years_df), "year", "left_semi")
    at_address = addresses.select("address_id", F.col("buurt_code").alias("_at_address"))
    rows = rows.join(at_address, "address_id", "left")
    if src.residence is not None:
        # the subjects' residence rows only: FIU-NL declares some tens of thousands of
        # transactions suspicious a year nationally, so their subjects are few
        ids = rows.where(F.col("subject_kind") == "person").select(
            F.col("subject_id").alias("person_id")
        )
        home = src.residence.join(F.broadcast(ids.distinct()), "person_id", "left_semi").select(
            F.col("person_id").alias("subject_id"),
            F.col("year").cast("long").alias("year"),
            F.col("buurt_code").alias("_home"),
            F.lit("person").alias("subject_kind"),
        )
        rows = rows.join(home, ["subject_id", "year", "subject_kind"], "left")
    else:
        rows = rows.withColumn("_home", F.lit(None).cast("string"))
    seats = ctx.company_seats()
    if seats is not None:
        seat = seats.select(
            F.col("company_id").alias("subject_id"),
            F.col("buurt_code").alias("_seat"),
            F.lit("company").alias("subject_kind"),
        )
        rows = rows.join(seat, ["subject_id", "subject_kind"], "left")
    else:
        rows = rows.withColumn("_seat", F.lit(None).cast("string"))
    placed = rows.select(
        "transaction_id",
        "subject_id",
        "year",
        "amount_eur",
        F.coalesce("_at_address", "_home", "_seat").alias("buurt_code"),
    ).join(F.broadcast(ctx.hierarchy), "buurt_code")
    per = _levels(placed, "year", "transaction_id", "subject_id", "amount_eur")
    tx = Window.partitionBy("level", "area_code", "year", "transaction_id")
    subject = Window.partitionBy("level", "area_code", "year", "subject_id")
    return per.select(
        "level",
        "area_code",
        "year",
        "transaction_id",
        "subject_id",
        (F.max("amount_eur").over(tx) / F.count(F.lit(1)).over(tx)).alias("amount_share_eur"),
        F.sum("amount_eur").over(subject).alias("subject_amount_eur"),
    )


# --------------------------------------------------------------------------- ownership


def _pass_ownership(ctx: PassContext) -> DataFrame | None:
    """Per dwelling and year with an ownership period in the year: ``is_unknown_owner`` and
    ``is_unexplained_ownership`` (false unless the pattern is enabled and computable)."""
    src, p = ctx.src, ctx.patterns
    if src.ownership is None or src.addresses is None:
        return None
    dwellings = src.addresses.where(F.col("use_type") == "woonfunctie").select(
        "address_id", "buurt_code", "woz_value_eur"
    )
    periods = (
        src.ownership.join(dwellings, "address_id")
        .crossJoin(F.broadcast(ctx.years_df))
        .where(_active("from_date", "to_date"))
    )
    unknown = F.col("owner_id").isNull() | (F.col("owner_kind") == "unknown")
    rows = periods.select(
        "buurt_code", "year", "address_id", "owner_id", "owner_kind", "share", "woz_value_eur",
        unknown.alias("_unknown"),
    )  # fmt: skip
    rule = p.unexplained_ownership
    if rule.enabled and src.residence is not None and src.household_income is not None:
        flagged = _unexplained_owners(rows, ctx)
        rows = rows.join(flagged, ["owner_id", "year"], "left")
        flag = F.coalesce(F.col("_flagged"), F.lit(False)) & (F.col("owner_kind") == "person")
    else:
        flag = F.lit(False)
    return rows.groupBy("buurt_code", "year", "address_id").agg(
        F.max("_unknown").alias("is_unknown_owner"),
        F.max(flag).alias("is_unexplained_ownership"),
    )


def _unexplained_owners(rows: DataFrame, ctx: PassContext) -> DataFrame:
    """``owner_id``, ``year``, ``_flagged`` (true) of the person owners whose dwellings in the
    year their household's income cannot explain (module docstring). Never cut or written."""
    src, rule = ctx.src, ctx.patterns.unexplained_ownership
    assert src.residence is not None and src.household_income is not None
    persons = rows.where((F.col("owner_kind") == "person") & F.col("owner_id").isNotNull())
    owned = (
        persons.groupBy("owner_id", "year")
        .agg(
            F.count_distinct("address_id").alias("_dwellings"),
            # a dwelling without a WOZ value adds nothing: the rule errs towards not counting
            F.sum(F.coalesce(F.col("woz_value_eur"), F.lit(0)) * F.col("share")).alias("_value"),
        )
        .where(F.col("_dwellings") >= rule.min_dwellings)
    )
    households = src.residence.join(
        owned.select(F.col("owner_id").alias("person_id")).distinct(), "person_id", "left_semi"
    ).select(
        F.col("person_id").alias("owner_id"),
        F.col("year").cast("long").alias("year"),
        "household_id",
    )
    income = src.household_income.select(
        "household_id", F.col("year").cast("long").alias("year"), "disposable_income_eur"
    )
    return (
        owned.join(households, ["owner_id", "year"])
        .join(income, ["household_id", "year"])
        .where(F.col("_value") > F.lit(rule.max_value_to_income) * F.col("disposable_income_eur"))
        .select("owner_id", "year", F.lit(True).alias("_flagged"))
        .distinct()
    )


# --------------------------------------------------------------------------- sectors


def sector_of(sbi_code: Column, sectors: Mapping[str, Sequence[str]]) -> Column:
    """array<string> of the sectors whose SBI prefixes the code starts with (may be empty)."""
    parts = [
        F.when(
            F.lit(False) if not prefixes else _starts(sbi_code, prefixes),
            F.lit(name),
        )
        for name, prefixes in sectors.items()
    ]
    return F.array_compact(F.array(*parts)) if parts else F.array().cast("array<string>")


def _starts(code: Column, prefixes: Sequence[str]) -> Column:
    hit: Column = F.lit(False)
    for prefix in prefixes:
        hit = hit | code.startswith(prefix)
    return hit


def _pass_sector_companies(ctx: PassContext) -> DataFrame | None:
    """Per company seat, sector and year: ``active``, ``is_new``, ``is_ended``,
    ``has_suspect``."""
    src, p = ctx.src, ctx.patterns
    seats = ctx.company_seats()
    if seats is None or not ctx.sectors:
        return None
    first, last = _year_bounds()
    comp = (
        seats.select(
            "company_id",
            "buurt_code",
            "registered_date",
            "deregistered_date",
            F.explode(sector_of(F.col("sbi_code"), ctx.sectors)).alias("sector"),
        )  # fmt: skip
        .crossJoin(F.broadcast(ctx.years_df))
        .where(_active("registered_date", "deregistered_date"))
    )
    homes = ctx.suspect_homes()
    if homes is not None and src.company_roles is not None:
        suspects = homes.where(F.size("phenomena") > 0).select("person_id", "year").distinct()
        roles = (
            src.company_roles.where(F.col("role").isin(*p.sector_suspect_roles))
            .crossJoin(F.broadcast(ctx.years_df))
            .where(_active("start_date", "end_date"))
            .select("company_id", "person_id", "year")
            .join(suspects, ["person_id", "year"])
            .select("company_id", "year", F.lit(True).alias("has_suspect"))
            .distinct()
        )
        comp = comp.join(roles, ["company_id", "year"], "left")
    else:
        comp = comp.withColumn("has_suspect", F.lit(None).cast("boolean"))
    return comp.select(
        "buurt_code",
        "year",
        "sector",
        F.lit(True).alias("active"),
        F.col("registered_date").between(first, last).alias("is_new"),
        F.coalesce(F.col("deregistered_date").between(first, last), F.lit(False)).alias("is_ended"),
        F.coalesce(F.col("has_suspect"), F.lit(False)).alias("has_suspect"),
    )


def _pass_logies_residence(ctx: PassContext) -> DataFrame | None:
    """Residents registered at an address whose use is logiesfunctie, per buurt and year."""
    res, addresses = ctx.src.residence, ctx.src.addresses
    if res is None or addresses is None:
        return None
    # the logiesfunctie addresses are few (holiday parks, hotels), so they are broadcast
    logies = addresses.where(F.col("use_type") == "logiesfunctie").select("address_id")
    return res.join(F.broadcast(logies), "address_id", "left_semi").select("buurt_code", "year")


THEME_PASS_FUNCTIONS: Mapping[str, Callable[[PassContext], DataFrame | None]] = {
    "fiu": _pass_fiu,
    "ownership_dwellings": _pass_ownership,
    "sector_companies": _pass_sector_companies,
    "logies_residence": _pass_logies_residence,
}
