"""Contract rules for every input table: typed casting, row rules, keys and references.

Reads nothing and writes nothing. ``zicht.jobs.io`` hands each raw table (every contract column
as the source typed it, extra columns already removed) to :func:`validate_table`, which returns
one frame with the typed contract columns, ``_raw_<column>`` (the source text where the typed
value does not give it back, see :func:`typed_columns`), ``reject_rule`` (every rule the row
broke, ``;``-separated, null when none) and ``is_excluded`` (outside a configured period or
area: not a reject, but not used either). :func:`with_reject_text` turns it into the stored
form (raw text on rejected rows only); :func:`accepted`, :func:`rejects` and
:func:`parent_keys` read either form. Rules follow ``../shared/CONTRACT.md`` section 1; rule
names are ``<column>.<rule>`` so an analyst can find the rule in the contract.

Casting uses ``try_cast`` so a value that does not parse or does not fit is a reject
(``<column>.parse``), never a silent null, and Spark's ANSI mode never kills a job over one bad
value.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
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
    OWNER_KINDS,
    ROLES,
    SEXES,
    SIGNAL_SOURCES,
    SUBJECT_KINDS,
    SUSPICIOUS_STATUS,
    USE_TYPES,
    TableSchema,
)

RAW_PREFIX = "_raw_"
# array<string> of the contract columns whose decoded CSV text holds U+FFFD, when the reader
# supplies it (zicht.jobs.io names it _invalid_encoding; _encoding_errors is the same flag)
ENCODING_FLAGS = ("_encoding_errors", "_invalid_encoding")
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
    # the keys are 64-bit surrogates (the store's tables, ``zicht.features.keys``): a child's
    # pseudonym text is hashed the same way before it is compared
    hashed: bool = False

    def ref(self, column: Column) -> Column:
        """A child's reference column in the form of this parent's keys."""
        if not self.hashed:
            return column
        from zicht.features.keys import surrogate

        return surrogate(column)


# table -> (column, parent table): the references the contract names, checked in this order
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "addresses": (("buurt_code", "areas"),),
    "incidents": (("buurt_code", "areas"), ("address_id", "addresses")),
    "persons": (("address_id", "addresses"),),
    "suspects": (("incident_id", "incidents"),),
    "companies": (("address_id", "addresses"),),
    "company_roles": (("company_id", "companies"),),
    "signals": (("buurt_code", "areas"), ("address_id", "addresses")),
    "property_transactions": (("address_id", "addresses"),),
    "unusual_transactions": (("address_id", "addresses"),),
    "ownership": (("address_id", "addresses"),),
}
KEY_HASH = "_key_hash"


@dataclass(frozen=True)
class Prechecked:
    """The few rows that break a key or reference rule, found before the main pass.

    A narrow pass over the key or reference column alone finds them
    (:func:`key_hash_candidates`, :func:`duplicate_keys`, :func:`dangling_references`);
    ``zicht.jobs.validate_inputs`` collects them when they are few. With them
    :func:`validate_table` flags those rows by broadcast joins, and the main pass shuffles no
    row at all; a rule without them (None, or a column missing from ``dangling``) takes the
    shuffle: a window over the key, or a join with all the parent's keys.
    """

    duplicate_keys: DataFrame | None = None  # key columns: each key occurring more than once
    dangling: Mapping[str, DataFrame] = field(default_factory=dict)  # column -> value, is_accepted


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


def _source_text(src: Column, dtype: T.DataType, kind: str) -> Column:
    """A source value as text, the form a reject file shows (a timestamp date as its day)."""
    if isinstance(dtype, T.StringType):
        return src
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)) and kind == "date":
        return F.date_format(src, "yyyy-MM-dd")
    return src.cast("string")


def _finite(value: Column) -> Column:
    return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)


_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_FRACTIONAL = (T.FloatType, T.DoubleType)


def _typed_direct(src: Column, dtype: T.DataType, kind: str) -> Column | None:
    """The typed value cast straight from a source that already has a logical type, or None
    when the value must be parsed from its text (strings, decimals, anything else)."""
    if kind == "integer":
        if isinstance(dtype, _INTEGRAL):
            return src.cast("long")
        if isinstance(dtype, _FRACTIONAL):
            # 12.0 from a tool that widened to floats is 12; a fraction, NaN or a value out of
            # the 64-bit range does not fit (try_cast truncates 1.5 to 1, hence the round trip)
            whole = _finite(src).try_cast("long")
            return F.when(whole.cast("double") == src.cast("double"), whole)
    elif kind == "double":
        if isinstance(dtype, _INTEGRAL + _FRACTIONAL):
            return _finite(src.cast("double"))
    elif kind == "date":
        if isinstance(dtype, T.DateType):
            return src
        if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
            return src.cast("date")
    return None


def _typed_from_text(text: Column, kind: str) -> Column:
    """The typed value parsed from text (CSV, or a Parquet string column)."""
    if kind == "integer":
        # integers may come as 12.0 from tools that widen to floats; a fraction or a value out
        # of the 64-bit range is a reject
        as_dec = text.try_cast("decimal(38, 6)")
        return F.when(as_dec == F.floor(as_dec), as_dec.try_cast("long"))
    if kind == "double":
        return _finite(text.try_cast("double"))
    if kind == "date":
        # accept an ISO timestamp text as well (a date column written as timestamp)
        return F.coalesce(
            F.try_to_date(text, "yyyy-MM-dd"), text.try_cast("timestamp").cast("date")
        )
    raise ValueError(kind)  # pragma: no cover - schema kinds are fixed


def typed_columns(raw: DataFrame, schema: TableSchema) -> DataFrame:
    """The typed contract columns, and ``_raw_<name>`` where the source text is not their text.

    ``raw`` holds every contract column (missing optional ones as null) in whatever type the
    source gave. A source that already has the column's logical type (any integer width for an
    integer, an integer or float for a double, a date or timestamp for a date) is cast
    directly; only text (CSV, Parquet strings, decimals) is parsed. Either way a value that does
    not parse or does not fit becomes null here and a ``<name>.parse`` reject in the rules.

    The raw text of a row is what its reject file shows, but only rejected rows need it, and
    the rules shuffle every row (key windows, reference joins). So ``_raw_<name>`` is kept only
    where the typed value cast back to a string is not the source text: a value that did not
    parse, ``12.0`` read as 12, ``1e3`` read as 1000.0, ``120500`` read as 120500.0 (CSV
    doubles written without a decimal point). Elsewhere it is null and :func:`raw_text`
    rebuilds the text from the typed value; string columns never need it, since their typed
    value is their text. Typed Parquet input thus carries (almost) no raw text at all.
    """
    # an optional column left out means all null (zicht.jobs.io adds it; a caller handing a frame
    # of its own may not, e.g. a v1 areas frame without the v2 columns)
    absent = [c.name for c in schema.columns if c.optional and c.name not in raw.columns]
    if absent:
        raw = raw.withColumns({n: F.lit(None).cast("string") for n in absent})
    contract = {c.name for c in schema.columns}
    others = [F.col(f"`{c}`") for c in raw.columns if c not in contract]
    texts, typed = [], []
    for c in schema.columns:
        src = F.col(c.name)
        dtype = raw.schema[c.name].dataType
        text = _source_text(src, dtype, c.kind)
        if c.name == "crime_code":
            text = F.trim(text)  # open-data exports carry a trailing space
        # An empty or blank text is a missing value (CSV cannot tell them apart).
        texts.append(F.when(F.trim(text) != "", text).alias(RAW_PREFIX + c.name))
        value = None if c.kind == "string" else _typed_direct(src, dtype, c.kind)
        typed.append(value)
    # the text first, under its own name, so a parse reads it once
    out = raw.select(*others, *[F.col(c.name) for c in schema.columns], *texts)
    cols: list[Column] = []
    for c, value in zip(schema.columns, typed, strict=True):
        text = F.col(RAW_PREFIX + c.name)
        if c.kind == "string":
            cols.append(text.alias(c.name))
        elif value is not None:
            cols += [value.alias(c.name), text]
        else:
            cols += [_typed_from_text(text, c.kind).alias(c.name), text]
    out = out.select(*others, *cols)
    # keep the text only where the typed value does not give it back
    return out.select(
        *others,
        *[F.col(c.name) for c in schema.columns],
        *[
            _carried_text(c.name, raw.schema[c.name].dataType, c.kind).alias(RAW_PREFIX + c.name)
            for c in schema.columns
        ],
    )


def _carried_text(name: str, dtype: T.DataType, kind: str) -> Column:
    """``_raw_<name>`` where the typed value cast to a string is not the text, else null."""
    text, typed = F.col(RAW_PREFIX + name), F.col(name)
    exact = (
        kind == "string"
        or (kind == "integer" and isinstance(dtype, _INTEGRAL))
        or (kind == "date" and isinstance(dtype, T.DateType))
    )
    if exact:  # the cast gives the text back whenever there is one
        return F.lit(None).cast("string")
    if kind == "double" and isinstance(dtype, T.DoubleType):
        return F.when(typed.isNull(), text)  # NaN or infinity, else the same double
    return F.when(~text.eqNullSafe(typed.cast("string")), text)


def raw_text(column: str) -> Column:
    """The raw text of a contract column of a validated frame, as its reject file shows it."""
    return F.coalesce(F.col(RAW_PREFIX + column), F.col(column).cast("string"))


def _rule(name: str, broken: Column) -> Column:
    return F.when(broken, F.lit(name))


def _vocab(col: str, values: Sequence[str]) -> Column:
    return F.col(col).isNotNull() & ~F.col(col).isin(list(values))


def _base_rules(schema: TableSchema) -> list[Column]:
    """Presence and parse rules every table has."""
    rules: list[Column] = []
    for c in schema.columns:
        # without a typed value, _raw_<name> holds the text that did not parse, if any
        typed, text = F.col(c.name), F.col(RAW_PREFIX + c.name)
        if not c.nullable:
            rules.append(_rule(f"{c.name}.required", typed.isNull() & text.isNull()))
        if c.kind != "string":
            rules.append(_rule(f"{c.name}.parse", typed.isNull() & text.isNotNull()))
    return rules


def _date_rules(col: str, ctx: RuleContext, *, event: bool) -> list[Column]:
    rules = [_rule(f"{col}.after_run_date", F.col(col) > F.lit(ctx.run_date))]
    if event:
        rules.append(_rule(f"{col}.before_1990", F.col(col) < F.lit(MIN_EVENT_DATE)))
    return rules


def _key_rule(
    schema: TableSchema, df: DataFrame, duplicates: DataFrame | None
) -> tuple[DataFrame, Column]:
    """Flag every row whose key occurs more than once (all copies: none can be trusted).

    With ``duplicates`` (the keys that occur more than once, found beforehand and few) a
    broadcast join flags them; without, a window over the key shuffles every row.
    """
    key = list(schema.key)
    rule = f"{'+'.join(key)}.unique"
    if schema.name == "areas":
        rule = "buurt_code.unique"  # unique per vintage (v2): the contract's rule of buurt_code
    if duplicates is None:
        w = Window.partitionBy(*[F.col(k) for k in key])
        df = df.withColumn("_key_n", F.count(F.lit(1)).over(w))
        return df, _rule(rule, F.col("_key_n") > 1)
    dups = duplicates.select(
        *[F.col(k).alias(f"_dk_{k}") for k in key], F.lit(True).alias("_key_dup")
    )
    # null-safe: a window groups null keys together, so the join must match them too
    same = functools.reduce(operator.and_, [F.col(k).eqNullSafe(F.col(f"_dk_{k}")) for k in key])
    df = df.join(F.broadcast(dups), same, "left").drop(*[f"_dk_{k}" for k in key])
    return df, _rule(rule, F.col("_key_dup").isNotNull())


def _ref_rules(
    df: DataFrame, col: str, parent: Parent | None, *, dangling: DataFrame | None
) -> tuple[DataFrame, list[Column]]:
    """``col`` must exist among the parent's keys and point at an accepted row.

    With ``dangling`` (the values of ``col`` that are missing or rejected in the parent, found
    beforehand and few: :func:`dangling_references`) a broadcast join flags them; without, the
    rows are joined to all the parent's keys (a shuffle, unless the parent is areas).
    """
    if parent is None:
        return df, []
    flag, found, key = f"_ref_{parent.table}", f"_hit_{parent.table}", f"_rk_{parent.table}"
    if dangling is not None:
        bad = dangling.select(
            F.col("value").alias(key), F.col("is_accepted").alias(flag), F.lit(True).alias(found)
        )
        df = df.join(F.broadcast(bad), parent.ref(F.col(col)) == F.col(key), "left").drop(key)
        missing = F.col(found).isNotNull() & F.col(flag).isNull()
    else:
        keys = parent.keys.select(F.col(col).alias(key), F.col("is_accepted").alias(flag))
        df = df.join(
            F.broadcast(keys) if parent.table == "areas" else keys,
            parent.ref(F.col(col)) == F.col(key),
            "left",
        ).drop(key)
        missing = F.col(col).isNotNull() & F.col(flag).isNull()
    return df, [
        _rule(f"{col}.not_in_{parent.table}", missing),
        _rule(f"{col}.refers_to_rejected_{parent.table}", F.col(col).isNotNull() & ~F.col(flag)),
    ]


def _rd_rules(prefix: str = "") -> list[Column]:
    x, y = F.col(prefix + "x"), F.col(prefix + "y")
    return [
        _rule("x.range", x.isNotNull() & ((x <= RD_X[0]) | (x >= RD_X[1]))),
        _rule("y.range", y.isNotNull() & ((y <= RD_Y[0]) | (y >= RD_Y[1]))),
    ]


def _table_rules(
    name: str, df: DataFrame, ctx: RuleContext, prechecked: Prechecked
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
            _rule("inhabitants_12plus.negative", F.col("inhabitants_12plus") < 0),
            _rule(
                "inhabitants_12plus.above_inhabitants",
                F.col("inhabitants_12plus") > F.col("inhabitants"),
            ),
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
    elif name == "suspects":
        if p.get("incidents") is not None:
            # a suspect of an incident that is excluded (outside the period) is excluded too
            df = df.join(
                p["incidents"].keys.select(
                    F.col("incident_id").alias("_ex_inc"),
                    F.col("is_excluded").alias("_inc_excluded"),
                ),
                p["incidents"].ref(F.col("incident_id")) == F.col("_ex_inc"),
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
    elif name == "company_roles":
        rules += [
            _rule("role.vocabulary", _vocab("role", ROLES)),
            *_date_rules("start_date", ctx, event=False),
            *_date_rules("end_date", ctx, event=False),
            _rule("end_date.before_start", F.col("end_date") < F.col("start_date")),
        ]
        if p.get("companies") is None:
            rules.append(_rule("company_id.not_in_companies", F.col("company_id").isNotNull()))
    elif name == "signals":
        rules += [
            *_date_rules("signal_date", ctx, event=True),
            _rule("category.unknown", _vocab("category", ctx.signal_categories)),
            _rule("source.vocabulary", _vocab("source", SIGNAL_SOURCES)),
            _rule("location.missing", F.col("address_id").isNull() & F.col("buurt_code").isNull()),
        ]
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
        if p.get("addresses") is None:
            rules.append(_rule("address_id.no_addresses_table", F.col("address_id").isNotNull()))
    elif name == "household_income":
        rules.append(
            _rule("year.range", (F.col("year") < 1900) | (F.col("year") > ctx.run_date.year))
        )
    elif name == "unusual_transactions":
        rules += [
            *_date_rules("report_date", ctx, event=True),
            _rule("amount_eur.negative", F.col("amount_eur") < 0),
            _rule("subject_kind.vocabulary", _vocab("subject_kind", SUBJECT_KINDS)),
            # zicht.jobs.io refuses the run before this (exit 4); kept for direct callers
            _rule("status.vocabulary", _vocab("status", (SUSPICIOUS_STATUS,))),
        ]
        if p.get("addresses") is None:
            rules.append(_rule("address_id.no_addresses_table", F.col("address_id").isNotNull()))
        if p.get("companies") is not None:
            # a company subject must be in companies (as company_roles.company_id); a person
            # subject need not be in persons (as suspects.person_id: living elsewhere is real)
            df, r = _company_subject_rules(df, p["companies"])
            rules += r
        if ctx.period_years:
            excluded = ~F.year("report_date").isin(list(ctx.period_years))
    elif name == "ownership":
        rules += [
            _rule("owner_kind.vocabulary", _vocab("owner_kind", OWNER_KINDS)),
            _rule("share.range", (F.col("share") <= 0) | (F.col("share") > 1)),
            *_date_rules("from_date", ctx, event=False),
            *_date_rules("to_date", ctx, event=False),
            _rule("to_date.before_from", F.col("to_date") < F.col("from_date")),
        ]
        if p.get("addresses") is None:
            rules.append(_rule("address_id.no_addresses_table", F.col("address_id").isNotNull()))
    for col, parent_table in REFERENCES.get(name, ()):
        df, r = _ref_rules(df, col, p.get(parent_table), dangling=prechecked.dangling.get(col))
        rules += r
    return df, rules, excluded


def _company_subject_rules(df: DataFrame, companies: Parent) -> tuple[DataFrame, list[Column]]:
    """``subject_id`` of a company subject exists among the accepted companies."""
    keys = companies.keys.select(
        F.col("company_id").alias("_rk_subject"), F.col("is_accepted").alias("_ref_subject")
    )
    company = F.when(F.col("subject_kind") == "company", F.col("subject_id"))
    df = df.join(keys, companies.ref(company) == F.col("_rk_subject"), "left").drop("_rk_subject")
    is_company = company.isNotNull()
    return df, [
        _rule("subject_id.not_in_companies", is_company & F.col("_ref_subject").isNull()),
        _rule("subject_id.refers_to_rejected_companies", is_company & ~F.col("_ref_subject")),
    ]


def key_hash_candidates(raw: DataFrame, name: str) -> DataFrame:
    """``_key_hash`` values (xxhash64 of the typed key) held by more than one row (no actions).

    Every duplicated key is among them, and so, rarely, are keys whose hashes collide: the
    narrow first step of the unique rule (eight bytes a row are shuffled, not the row).
    """
    schema = INPUT_TABLES[name]
    typed = typed_columns(raw, schema)
    return (
        typed.groupBy(F.xxhash64(*schema.key).alias(KEY_HASH))
        .count()
        .where(F.col("count") > 1)
        .select(KEY_HASH)
    )


def duplicate_keys(raw: DataFrame, name: str, *, candidates: DataFrame) -> DataFrame:
    """The typed keys that occur more than once, among the rows whose key hash is a candidate
    (:func:`key_hash_candidates`, few: broadcast). No actions."""
    schema = INPUT_TABLES[name]
    key = list(schema.key)
    typed = typed_columns(raw, schema).select(*key, F.xxhash64(*key).alias(KEY_HASH))
    return (
        typed.join(F.broadcast(candidates), KEY_HASH, "left_semi")
        .groupBy(*key)
        .count()
        .where(F.col("count") > 1)
        .select(*key)
    )


def dangling_references(
    raw: DataFrame, name: str, parents: Mapping[str, Parent]
) -> dict[str, DataFrame]:
    """Per reference column (parents other than areas, whose keys are broadcast anyway): its
    distinct values that are missing (``is_accepted`` null) or rejected (false) in the parent.
    No actions; the child's column alone is read and shuffled."""
    typed = typed_columns(raw, INPUT_TABLES[name])
    out: dict[str, DataFrame] = {}
    for col, parent_table in REFERENCES.get(name, ()):
        parent = parents.get(parent_table)
        if parent is None or parent_table == "areas":
            continue
        values = typed.select(parent.ref(F.col(col)).alias("value")).where(
            F.col("value").isNotNull()
        )
        keys = parent.keys.select(F.col(col).alias("value"), "is_accepted")
        out[col] = (
            values.distinct()
            .join(keys, "value", "left")
            .where(~F.coalesce(F.col("is_accepted"), F.lit(False)))
        )
    return out


def validate_table(
    name: str, raw: DataFrame, ctx: RuleContext, *, prechecked: Prechecked | None = None
) -> DataFrame:
    """Typed columns + ``reject_rule`` + ``is_excluded`` for one input table (no actions).

    ``raw`` must hold every contract column of the table (see ``zicht.jobs.io``);
    ``prechecked``: see :class:`Prechecked` (the result is the same with or without).
    """
    schema = INPUT_TABLES[name]
    pre = prechecked or Prechecked()
    df = typed_columns(raw, schema)
    rules = _base_rules(schema)
    if "_corrupt_record" in raw.columns:
        # CSV rows with the wrong number of fields (the reader keeps the raw line here)
        rules.append(_rule("row.malformed", F.col("_corrupt_record").isNotNull()))
    flags = [F.col(f) for f in ENCODING_FLAGS if f in raw.columns]
    if flags:
        # the decoder replaced a byte sequence invalid in the encoding with U+FFFD in these
        # columns: a reject, never a silent replacement character in the outputs
        for c in schema.columns:
            listed = [F.array_contains(f, F.lit(c.name)) for f in flags]
            rules.append(_rule(f"{c.name}.encoding", functools.reduce(operator.or_, listed)))
    df, key_rule = _key_rule(schema, df, pre.duplicate_keys)
    rules.append(key_rule)
    df, extra, excluded = _table_rules(name, df, ctx, pre)
    rules += extra
    reasons = F.array_compact(F.array(*rules))
    df = df.withColumn(
        "reject_rule", F.when(F.size(reasons) > 0, F.concat_ws(";", reasons))
    ).withColumn("is_excluded", F.col("reject_rule").isNull() & F.coalesce(excluded, F.lit(False)))
    keep = [c.name for c in schema.columns] + [RAW_PREFIX + c.name for c in schema.columns]
    if name == "incidents":
        keep.append("crime_class")
    return df.select(*keep, "reject_rule", "is_excluded")


def with_reject_text(validated: DataFrame, name: str) -> DataFrame:
    """The validated frame as it is stored: ``_raw_<column>`` holds the whole raw text on
    rejected rows and is null on every other row (Parquet stores those nulls almost free).

    Call it after the last rule that can reject a row (``add_point_rejects`` for incidents):
    a row rejected later would lose the text the typed value does not give back.
    """
    rejected = F.col("reject_rule").isNotNull()
    raw = {
        RAW_PREFIX + c.name: F.when(rejected, raw_text(c.name)) for c in INPUT_TABLES[name].columns
    }
    return validated.withColumns(raw)


def accepted(validated: DataFrame, name: str) -> DataFrame:
    """The rows that broke no rule and are not excluded, typed contract columns only."""
    cols = [
        c
        for c in validated.columns
        if not c.startswith(RAW_PREFIX) and c not in ("reject_rule", "is_excluded")
    ]
    return validated.where(F.col("reject_rule").isNull() & ~F.col("is_excluded")).select(*cols)


def rejects(validated: DataFrame, name: str) -> DataFrame:
    """Rejected rows as they came in (contract columns as text) with ``reject_rule``.

    Works on the frame :func:`validate_table` returns and on the stored one
    (:func:`with_reject_text`) alike: the text is ``_raw_<column>`` where set, else the typed
    value's own text.
    """
    schema = INPUT_TABLES[name]
    return validated.where(F.col("reject_rule").isNotNull()).select(
        *[raw_text(c.name).alias(c.name) for c in schema.columns], "reject_rule"
    )


def parent_keys(validated: DataFrame, name: str, *, hashed: bool = False) -> Parent:
    """Distinct keys of a table with whether the key's row was accepted (for references).

    ``hashed``: the table's key column holds surrogate keys (the stored validated table)."""
    key = INPUT_TABLES[name].key[0]
    keys = (
        validated.where(F.col(key).isNotNull())
        .groupBy(key)
        .agg(
            F.max(F.col("reject_rule").isNull()).alias("is_accepted"),
            F.max(F.col("is_excluded")).alias("is_excluded"),
        )
    )
    return Parent(name, keys, hashed=hashed)
