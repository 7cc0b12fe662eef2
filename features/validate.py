"""Contract rules for every input table: typed casting, row rules, keys and references.

Reads nothing and writes nothing. ``zicht.jobs.io`` hands each raw table (every contract column
as text, extra columns already removed) to :func:`validate_table`, which returns one frame with
the typed contract columns, the raw text (for the reject file), ``reject_rule`` (every rule the
row broke, ``;``-separated, null when none) and ``is_excluded`` (outside a configured period or
area: not a reject, but not used either). Rules follow ``../shared/CONTRACT.md`` section 1; rule
names are ``<column>.<rule>`` so an analyst can find the rule in the contract.

Casting uses ``try_cast`` so a value that does not parse is a reject (``<column>.parse``), never
a silent null, and Spark's ANSI mode never kills a job over one bad value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.schemas import (
    BUYER_KINDS,
    INPUT_TABLES,
    LAYERS,
    LEGAL_FORMS,
    ROLES,
    SEXES,
    SIGNAL_SOURCES,
    USE_TYPES,
    TableSchema,
)

RAW_PREFIX = "_raw_"
MIN_EVENT_DATE = dt.date(1990, 1, 1)
BUURT_RE = r"^BU\d{4}[0-9A-Z]{4}$"
WIJK_RE = r"^WK\d{4}[0-9A-Z]{2}$"
GEMEENTE_RE = r"^GM\d{4}$"
CLASS_RE = r"^\d\.\d{1,2}\.\d{1,2}$"
CODE_RE = r"^[A-Z]\d{2,4}$"
RD_X = (0.0, 300000.0)
RD_Y = (289000.0, 629000.0)


@dataclass(frozen=True)
class Parent:
    """Accepted and rejected keys of a table other rows refer to.

    ``keys`` has the key column(s) and ``is_accepted``; one row per distinct key.
    """

    table: str
    keys: DataFrame


@dataclass(frozen=True)
class RuleContext:
    """What the rules need besides the row itself."""

    run_date: dt.date
    period_years: tuple[int, ...] = ()  # empty: not yet known / not configured
    period_configured: bool = False
    reference_date: dt.date | None = None
    signal_categories: tuple[str, ...] = ()
    crime_codes: DataFrame | None = None  # incident_code ('' for a class row), crime_class
    parents: Mapping[str, Parent] = field(default_factory=dict)
    area_gemeenten: tuple[str, ...] = ()  # configured study area (empty: all)


def typed_columns(raw: DataFrame, schema: TableSchema) -> DataFrame:
    """Add typed contract columns next to the raw text ones (``_raw_<name>``).

    ``raw`` holds every contract column (missing optional ones as null) in whatever type the
    source gave; a Parquet timestamp becomes a date, everything else goes through its text form.
    """
    out = raw
    for c in schema.columns:
        src = F.col(c.name)
        dtype = raw.schema[c.name].dataType
        if isinstance(dtype, T.StringType):
            text = src
        elif isinstance(dtype, (T.TimestampType, T.TimestampNTZType)) and c.kind == "date":
            text = F.date_format(src, "yyyy-MM-dd")
        else:
            text = src.cast("string")
        if c.name == "crime_code":
            text = F.trim(text)  # open-data exports carry a trailing space
        # An empty or blank text is a missing value (CSV cannot tell them apart).
        text = F.when(F.trim(text) == "", F.lit(None)).otherwise(text)
        out = out.withColumn(RAW_PREFIX + c.name, text)
    for c in schema.columns:
        text = F.col(RAW_PREFIX + c.name)
        if c.kind == "string":
            typed = text
        elif c.kind == "integer":
            # integers may come as 12.0 from tools that widen to floats; a fraction or a value
            # out of the 64-bit range is a reject
            as_dec = F.expr(f"try_cast(`{RAW_PREFIX + c.name}` as decimal(38, 6))")
            whole = F.expr(
                f"try_cast(try_cast(`{RAW_PREFIX + c.name}` as decimal(38, 6)) as bigint)"
            )
            typed = F.when(as_dec == F.floor(as_dec), whole)
        elif c.kind == "double":
            typed = F.expr(f"try_cast(`{RAW_PREFIX + c.name}` as double)")
            typed = F.when(~F.isnan(typed) & (F.abs(typed) != F.lit(float("inf"))), typed)
        elif c.kind == "date":
            typed = F.expr(f"try_to_date(`{RAW_PREFIX + c.name}`, 'yyyy-MM-dd')")
            # accept an ISO timestamp text as well (a date column written as timestamp)
            typed = F.coalesce(
                typed, F.expr(f"try_cast(try_cast(`{RAW_PREFIX + c.name}` as timestamp) as date)")
            )
        else:  # pragma: no cover - schema kinds are fixed
            raise ValueError(c.kind)
        out = out.withColumn(c.name, typed)
    return out


def _rule(name: str, broken: Column) -> Column:
    return F.when(broken, F.lit(name))


def _vocab(col: str, values: Sequence[str]) -> Column:
    return F.col(col).isNotNull() & ~F.col(col).isin(list(values))


def _base_rules(schema: TableSchema) -> list[Column]:
    """Presence and parse rules every table has."""
    rules: list[Column] = []
    for c in schema.columns:
        raw = F.col(RAW_PREFIX + c.name)
        if not c.nullable:
            rules.append(_rule(f"{c.name}.required", raw.isNull()))
        if c.kind != "string":
            rules.append(_rule(f"{c.name}.parse", raw.isNotNull() & F.col(c.name).isNull()))
    return rules


def _date_rules(col: str, ctx: RuleContext, *, event: bool) -> list[Column]:
    rules = [_rule(f"{col}.after_run_date", F.col(col) > F.lit(ctx.run_date))]
    if event:
        rules.append(_rule(f"{col}.before_1990", F.col(col) < F.lit(MIN_EVENT_DATE)))
    return rules


def _key_rule(schema: TableSchema, df: DataFrame) -> tuple[DataFrame, Column]:
    """Flag every row whose key occurs more than once (all copies: none can be trusted)."""
    key = [k for k in schema.key if k in df.columns]
    w = Window.partitionBy(*[F.col(k) for k in key])
    df = df.withColumn("_key_n", F.count(F.lit(1)).over(w))
    return df, _rule(f"{'+'.join(key)}.unique", F.col("_key_n") > 1)


def _ref_rules(
    df: DataFrame, col: str, parent: Parent | None, parent_key: str, *, tag: str
) -> tuple[DataFrame, list[Column]]:
    """``col`` must exist among the parent's keys and point at an accepted row."""
    if parent is None:
        return df, []
    flag = f"_ref_{tag}"
    keys = parent.keys.select(
        F.col(parent_key).alias(f"_rk_{tag}"), F.col("is_accepted").alias(flag)
    )
    df = df.join(
        F.broadcast(keys) if parent.table == "areas" else keys,
        F.col(col) == F.col(f"_rk_{tag}"),
        "left",
    ).drop(f"_rk_{tag}")
    return df, [
        _rule(f"{col}.not_in_{parent.table}", F.col(col).isNotNull() & F.col(flag).isNull()),
        _rule(f"{col}.refers_to_rejected_{parent.table}", F.col(col).isNotNull() & ~F.col(flag)),
    ]


def _rd_rules(prefix: str = "") -> list[Column]:
    x, y = F.col(prefix + "x"), F.col(prefix + "y")
    return [
        _rule("x.range", x.isNotNull() & ((x <= RD_X[0]) | (x >= RD_X[1]))),
        _rule("y.range", y.isNotNull() & ((y <= RD_Y[0]) | (y >= RD_Y[1]))),
    ]


def _table_rules(
    name: str, df: DataFrame, ctx: RuleContext
) -> tuple[DataFrame, list[Column], Column]:
    """Rules specific to one table; returns (frame with helper columns, rules, is_excluded)."""
    p = ctx.parents
    excluded: Column = F.lit(False)
    rules: list[Column] = []
    if name == "areas":
        rules += [
            _rule(
                "buurt_code.pattern",
                F.col("buurt_code").isNotNull() & ~F.col("buurt_code").rlike(BUURT_RE),
            ),
            _rule(
                "wijk_code.pattern",
                F.col("wijk_code").isNotNull() & ~F.col("wijk_code").rlike(WIJK_RE),
            ),
            _rule(
                "wijk_code.matches_buurt",
                F.col("wijk_code").isNotNull()
                & F.col("buurt_code").isNotNull()
                & (F.col("wijk_code") != F.concat(F.lit("WK"), F.substring("buurt_code", 3, 6))),
            ),
            _rule(
                "gemeente_code.pattern",
                F.col("gemeente_code").isNotNull() & ~F.col("gemeente_code").rlike(GEMEENTE_RE),
            ),
            _rule(
                "gemeente_code.matches_buurt",
                F.col("gemeente_code").isNotNull()
                & F.col("buurt_code").isNotNull()
                & (
                    F.col("gemeente_code") != F.concat(F.lit("GM"), F.substring("buurt_code", 3, 4))
                ),
            ),
            _rule("land_area_ha.positive", F.col("land_area_ha") <= 0),
            _rule("inhabitants.negative", F.col("inhabitants") < 0),
            _rule(
                "geometry_wkt.not_polygon",
                F.col("geometry_wkt").isNotNull()
                & ~F.upper(F.col("geometry_wkt")).rlike(r"^\s*(MULTI)?POLYGON\s*(Z\s*)?(\(|EMPTY)"),
            ),
            *_rd_rules(),
        ]
        # names must not be blank (the required rule already catches empty text)
        if ctx.area_gemeenten:
            excluded = ~F.col("gemeente_code").isin(list(ctx.area_gemeenten))
    elif name == "incidents":
        code = F.col("crime_code")
        is_class, is_code = code.rlike(CLASS_RE), code.rlike(CODE_RE)
        rules += [
            _rule("crime_code.pattern", code.isNotNull() & ~is_class & ~is_code),
            *_date_rules("incident_date", ctx, event=True),
            _rule("xy.incomplete", F.col("x").isNull() != F.col("y").isNull()),
            *_rd_rules(),
            _rule(
                "location.missing",
                F.col("buurt_code").isNull()
                & F.col("address_id").isNull()
                & (F.col("x").isNull() | F.col("y").isNull()),
            ),
        ]
        if ctx.crime_codes is not None:
            known = ctx.crime_codes.select(
                F.when(F.col("incident_code") == "", F.col("crime_class"))
                .otherwise(F.col("incident_code"))
                .alias("_known_code"),
                F.col("crime_class").alias("crime_class"),
            )
            df = df.join(F.broadcast(known), code == F.col("_known_code"), "left")
            rules.append(
                _rule(
                    "crime_code.unknown",
                    code.isNotNull() & (is_class | is_code) & F.col("_known_code").isNull(),
                )
            )
        else:
            df = df.withColumn("crime_class", F.when(is_class, code))
        df, r = _ref_rules(df, "buurt_code", p.get("areas"), "buurt_code", tag="area")
        rules += r
        df, r = _ref_rules(df, "address_id", p.get("addresses"), "address_id", tag="addr")
        rules += r
        if p.get("addresses") is None:
            # without the addresses table an address-only incident cannot be placed in a buurt
            rules.append(
                _rule(
                    "address_id.no_addresses_table",
                    F.col("address_id").isNotNull()
                    & F.col("buurt_code").isNull()
                    & (F.col("x").isNull() | F.col("y").isNull()),
                )
            )
        if ctx.period_configured and ctx.period_years:
            excluded = ~F.year("incident_date").isin(list(ctx.period_years))
    elif name == "addresses":
        rules += [
            _rule("use_type.vocabulary", _vocab("use_type", USE_TYPES)),
            _rule("floor_area_m2.positive", F.col("floor_area_m2") <= 0),
            _rule("woz_value_eur.negative", F.col("woz_value_eur") < 0),
        ]
        df, r = _ref_rules(df, "buurt_code", p.get("areas"), "buurt_code", tag="area")
        rules += r
    elif name == "persons":
        ref_year = (ctx.reference_date or ctx.run_date).year
        rules += [
            _rule(
                "birth_year.range", (F.col("birth_year") < 1900) | (F.col("birth_year") > ref_year)
            ),
            _rule("sex.vocabulary", _vocab("sex", SEXES)),
            _rule(
                "registered_since.after_run_date", F.col("registered_since") > F.lit(ctx.run_date)
            ),
        ]
        if ctx.reference_date is not None:
            rules.append(
                _rule(
                    "registered_since.after_reference_date",
                    F.col("registered_since") > F.lit(ctx.reference_date),
                )
            )
        rules.append(
            _rule(
                "snapshot_year.range",
                (F.col("snapshot_year") < 1900) | (F.col("snapshot_year") > ctx.run_date.year),
            )
        )
        df, r = _ref_rules(df, "address_id", p.get("addresses"), "address_id", tag="addr")
        rules += r
    elif name == "suspects":
        df, r = _ref_rules(df, "incident_id", p.get("incidents"), "incident_id", tag="inc")
        rules += r
        if p.get("incidents") is not None:
            # a suspect of an incident that is excluded (outside the period) is excluded too
            df = df.join(
                p["incidents"].keys.select(
                    F.col("incident_id").alias("_ex_inc"),
                    F.col("is_excluded").alias("_inc_excluded"),
                ),
                F.col("incident_id") == F.col("_ex_inc"),
                "left",
            ).drop("_ex_inc")
            excluded = F.coalesce(F.col("_inc_excluded"), F.lit(False))
    elif name == "companies":
        rules += [
            _rule(
                "sbi_code.pattern",
                F.col("sbi_code").isNotNull() & ~F.col("sbi_code").rlike(r"^\d{2,5}$"),
            ),
            _rule("legal_form.vocabulary", _vocab("legal_form", LEGAL_FORMS)),
            *_date_rules("registered_date", ctx, event=False),
            *_date_rules("deregistered_date", ctx, event=False),
            _rule(
                "deregistered_date.before_registered",
                F.col("deregistered_date") < F.col("registered_date"),
            ),
        ]
        df, r = _ref_rules(df, "address_id", p.get("addresses"), "address_id", tag="addr")
        rules += r
    elif name == "company_roles":
        rules += [
            _rule("role.vocabulary", _vocab("role", ROLES)),
            *_date_rules("start_date", ctx, event=False),
            *_date_rules("end_date", ctx, event=False),
            _rule("end_date.before_start", F.col("end_date") < F.col("start_date")),
        ]
        df, r = _ref_rules(df, "company_id", p.get("companies"), "company_id", tag="comp")
        rules += r
        if p.get("companies") is None:
            rules.append(_rule("company_id.not_in_companies", F.col("company_id").isNotNull()))
    elif name == "signals":
        rules += [
            *_date_rules("signal_date", ctx, event=True),
            _rule("category.unknown", _vocab("category", ctx.signal_categories)),
            _rule("source.vocabulary", _vocab("source", SIGNAL_SOURCES)),
            _rule("location.missing", F.col("address_id").isNull() & F.col("buurt_code").isNull()),
        ]
        df, r = _ref_rules(df, "buurt_code", p.get("areas"), "buurt_code", tag="area")
        rules += r
        df, r = _ref_rules(df, "address_id", p.get("addresses"), "address_id", tag="addr")
        rules += r
        if p.get("addresses") is None:
            # without the addresses table an address-only signal cannot be placed in a buurt
            rules.append(
                _rule(
                    "address_id.no_addresses_table",
                    F.col("buurt_code").isNull() & F.col("address_id").isNotNull(),
                )
            )
        if ctx.period_years:
            excluded = ~F.year("signal_date").isin(list(ctx.period_years))
    elif name == "person_links":
        rules += [
            _rule("person_id_b.same_as_a", F.col("person_id_a") == F.col("person_id_b")),
            _rule("layer.vocabulary", _vocab("layer", LAYERS)),
        ]
    elif name == "property_transactions":
        rules += [
            *_date_rules("transaction_date", ctx, event=True),
            _rule("price_eur.positive", F.col("price_eur") <= 0),
            _rule("buyer_kind.vocabulary", _vocab("buyer_kind", BUYER_KINDS)),
        ]
        df, r = _ref_rules(df, "address_id", p.get("addresses"), "address_id", tag="addr")
        rules += r
        if p.get("addresses") is None:
            rules.append(_rule("address_id.no_addresses_table", F.col("address_id").isNotNull()))
    elif name == "household_income":
        rules.append(
            _rule("year.range", (F.col("year") < 1900) | (F.col("year") > ctx.run_date.year))
        )
    return df, rules, excluded


def validate_table(name: str, raw: DataFrame, ctx: RuleContext) -> DataFrame:
    """Typed columns + ``reject_rule`` + ``is_excluded`` for one input table (no actions).

    ``raw`` must hold every contract column of the table (see ``zicht.jobs.io``).
    """
    schema = INPUT_TABLES[name]
    df = typed_columns(raw, schema)
    rules = _base_rules(schema)
    if "_corrupt_record" in raw.columns:
        # CSV rows with the wrong number of fields (the reader keeps the raw line here)
        rules.append(_rule("row.malformed", F.col("_corrupt_record").isNotNull()))
    df, key_rule = _key_rule(schema, df)
    rules.append(key_rule)
    df, extra, excluded = _table_rules(name, df, ctx)
    rules += extra
    reasons = F.array_compact(F.array(*rules))
    df = df.withColumn(
        "reject_rule", F.when(F.size(reasons) > 0, F.concat_ws(";", reasons))
    ).withColumn("is_excluded", F.col("reject_rule").isNull() & F.coalesce(excluded, F.lit(False)))
    keep = [c.name for c in schema.columns] + [RAW_PREFIX + c.name for c in schema.columns]
    if name == "incidents":
        keep.append("crime_class")
    return df.select(*keep, "reject_rule", "is_excluded")


def accepted(validated: DataFrame, name: str) -> DataFrame:
    """The rows that broke no rule and are not excluded, typed contract columns only."""
    cols = [
        c
        for c in validated.columns
        if not c.startswith(RAW_PREFIX) and c not in ("reject_rule", "is_excluded")
    ]
    return validated.where(F.col("reject_rule").isNull() & ~F.col("is_excluded")).select(*cols)


def rejects(validated: DataFrame, name: str) -> DataFrame:
    """Rejected rows as they came in (contract columns as text) with ``reject_rule``."""
    schema = INPUT_TABLES[name]
    return validated.where(F.col("reject_rule").isNotNull()).select(
        *[F.col(RAW_PREFIX + c.name).alias(c.name) for c in schema.columns], "reject_rule"
    )


def parent_keys(validated: DataFrame, name: str) -> Parent:
    """Distinct keys of a table with whether the key's row was accepted (for references)."""
    key = INPUT_TABLES[name].key[0]
    keys = (
        validated.where(F.col(key).isNotNull())
        .groupBy(key)
        .agg(
            F.max(F.col("reject_rule").isNull()).alias("is_accepted"),
            F.max(F.col("is_excluded")).alias("is_excluded"),
        )
    )
    return Parent(name, keys)
