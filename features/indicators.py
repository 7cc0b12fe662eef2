"""Per-area indicators (aard en omvang) and the area feature table, from the linked tables.

Reads nothing and writes nothing. Counts are computed per buurt and summed up the hierarchy
(buurt within wijk within gemeente) where they are additive; distinct-person counts whose
people can appear in several areas (suspects of incidents *in* an area) are computed at each
level directly. Rates and shares are computed at each level from that level's counts, never by
averaging lower-level rates. Every (area, year, indicator) of the catalogue gets a cell: an area
with nothing to count has 0, a rate whose denominator is 0 is ``not_applicable``, an area outside
a source's configured coverage is ``not_covered``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from zicht.features.link import LEVELS
from zicht.features.settings import CoverageSettings, IndicatorSpec, Phenomenon

RATE_SCALE = {"rate": 1000.0, "share": 1.0}


@dataclass(frozen=True)
class Sources:
    """The linked tables available to the indicator stage (None: the source is absent)."""

    areas: DataFrame
    incidents: DataFrame  # incidents_located
    suspects: DataFrame | None = None
    residence: DataFrame | None = None
    addresses: DataFrame | None = None
    signals: DataFrame | None = None  # signals with buurt_code resolved and year
    areas_have_inhabitants: bool = False

    def available(self) -> set[str]:
        have = {"areas", "incidents"}
        for name in ("suspects", "addresses", "signals"):
            if getattr(self, name) is not None:
                have.add(name)
        if self.residence is not None:
            have.add("persons")
        if self.areas_have_inhabitants:
            have.add("areas.inhabitants")
        return have


@dataclass(frozen=True)
class IndicatorResult:
    cells: DataFrame  # level, area_code, year, indicator, value, status
    area_features: DataFrame  # buurt_code, year, x, y, <feature columns>
    skipped: Mapping[str, str]


def skipped_indicators(specs: Sequence[IndicatorSpec], available: set[str]) -> dict[str, str]:
    """Indicators whose source tables are absent, with the reason (for the manifest)."""
    out: dict[str, str] = {}
    for spec in specs:
        for source in spec.sources:
            options = source.split("|")
            if not any(o in available for o in options):
                names = " or ".join(
                    f"table {o}" if "." not in o else f"column {o}" for o in options
                )
                out[spec.key] = f"{names} is absent"
                break
    # an indicator computed from a skipped one is skipped too
    changed = True
    while changed:
        changed = False
        for spec in specs:
            if spec.key in out:
                continue
            for dep in (spec.numerator, spec.denominator):
                if dep and dep in out:
                    out[spec.key] = f"needs {dep}, which is skipped ({out[dep]})"
                    changed = True
                    break
    return out


def feature_name(indicator: str) -> str:
    return indicator.replace(".", "_")


def _explode_phenomena(incidents: DataFrame) -> DataFrame:
    return incidents.select("*", F.explode("phenomena").alias("phenomenon"))


def _level_code(level: str) -> str:
    return f"{level}_code"


def _buurt_counts(
    src: Sources, skipped: Mapping[str, str], specs: Sequence[IndicatorSpec]
) -> DataFrame:
    """Additive counts per buurt and year, long: buurt_code, year, indicator, value."""
    keys = {s.key for s in specs}
    parts: list[DataFrame] = []
    inc = _explode_phenomena(src.incidents)
    parts.append(
        inc.groupBy("buurt_code", "year", "phenomenon")
        .count()
        .select(
            "buurt_code",
            "year",
            F.concat("phenomenon", F.lit(".incidents")).alias("indicator"),
            F.col("count").cast("double").alias("value"),
        )
    )
    if src.residence is not None:
        res = src.residence
        parts.append(
            res.groupBy("buurt_code", "year")
            .count()
            .select(
                "buurt_code",
                "year",
                F.lit("context.inhabitants").alias("indicator"),
                F.col("count").cast("double").alias("value"),
            )
        )
        parts.append(
            res.where(F.col("year") - F.col("birth_year") >= 12)
            .groupBy("buurt_code", "year")
            .count()
            .select(
                "buurt_code",
                "year",
                F.lit("context.inhabitants_12plus").alias("indicator"),
                F.col("count").cast("double").alias("value"),
            )
        )
        if src.suspects is not None:
            susp = (
                src.suspects.join(inc.select("incident_id", "year", "phenomenon"), "incident_id")
                .select("person_id", "year", "phenomenon")
                .distinct()
            )
            parts.append(
                susp.join(res.select("person_id", "year", "buurt_code"), ["person_id", "year"])
                .groupBy("buurt_code", "year", "phenomenon")
                .count()
                .select(
                    "buurt_code",
                    "year",
                    F.concat("phenomenon", F.lit(".resident_suspects")).alias("indicator"),
                    F.col("count").cast("double").alias("value"),
                )
            )
    if src.signals is not None:
        parts.append(
            src.signals.select("buurt_code", "year", F.explode("phenomena").alias("phenomenon"))
            .groupBy("buurt_code", "year", "phenomenon")
            .count()
            .select(
                "buurt_code",
                "year",
                F.concat("phenomenon", F.lit(".signals")).alias("indicator"),
                F.col("count").cast("double").alias("value"),
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.where(F.col("indicator").isin(sorted(keys - set(skipped))))


def _static_buurt_counts(src: Sources, years: Sequence[int]) -> DataFrame | None:
    """Counts that do not vary by year in the inputs (addresses, areas.inhabitants)."""
    spark = src.areas.sparkSession
    years_df = spark.createDataFrame([(int(y),) for y in years], "year long")
    parts: list[DataFrame] = []
    if src.addresses is not None:
        parts.append(
            src.addresses.groupBy("buurt_code")
            .count()
            .crossJoin(F.broadcast(years_df))
            .select(
                "buurt_code",
                "year",
                F.lit("context.addresses").alias("indicator"),
                F.col("count").cast("double").alias("value"),
            )
        )
    if src.residence is None and src.areas_have_inhabitants:
        parts.append(
            src.areas.where(F.col("inhabitants").isNotNull())
            .crossJoin(F.broadcast(years_df))
            .select(
                "buurt_code",
                "year",
                F.lit("context.inhabitants").alias("indicator"),
                F.col("inhabitants").cast("double").alias("value"),
            )
        )
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _suspect_counts_per_level(src: Sources) -> DataFrame | None:
    """Non-additive: distinct suspects of P incidents in an area, and those living there."""
    if src.suspects is None:
        return None
    inc = _explode_phenomena(src.incidents)
    base = src.suspects.join(
        inc.select("incident_id", "year", "phenomenon", "buurt_code", "wijk_code", "gemeente_code"),
        "incident_id",
    )
    parts: list[DataFrame] = []
    for level in LEVELS:
        code = _level_code(level)
        d = base.select(
            "person_id", "year", "phenomenon", F.col(code).alias("area_code")
        ).distinct()
        if src.residence is not None:
            r = src.residence.select("person_id", "year", F.col(code).alias("_res_code"))
            d = d.join(r, ["person_id", "year"], "left")
            is_local = (F.col("_res_code") == F.col("area_code")).cast("int")
        else:
            is_local = F.lit(None).cast("int")
        agg = d.groupBy("area_code", "year", "phenomenon").agg(
            F.count(F.lit(1)).cast("double").alias("suspects"),
            F.sum(F.coalesce(is_local, F.lit(0))).cast("double").alias("local_suspects"),
        )
        for name in ("suspects", "local_suspects"):
            if name == "local_suspects" and src.residence is None:
                continue
            parts.append(
                agg.select(
                    F.lit(level).alias("level"),
                    "area_code",
                    "year",
                    F.concat("phenomenon", F.lit(f".{name}")).alias("indicator"),
                    F.col(name).alias("value"),
                )
            )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _roll_up(buurt_counts: DataFrame, hierarchy: DataFrame) -> DataFrame:
    joined = buurt_counts.join(F.broadcast(hierarchy), "buurt_code")
    parts = []
    for level in LEVELS:
        code = _level_code(level)
        parts.append(
            joined.groupBy(F.col(code).alias("area_code"), "year", "indicator")
            .agg(F.sum("value").alias("value"))
            .select(F.lit(level).alias("level"), "area_code", "year", "indicator", "value")
        )
    return parts[0].unionByName(parts[1]).unionByName(parts[2])


def _gemeente_of(area_code: Column) -> Column:
    """GM code of any CBS area code (BU/WK/GM + 4 gemeente digits)."""
    return F.concat(F.lit("GM"), F.substring(area_code, 3, 4))


def build_indicators(
    src: Sources,
    *,
    years: Sequence[int],
    phenomena: Mapping[str, Phenomenon],
    specs: Sequence[IndicatorSpec],
    coverage: Mapping[str, CoverageSettings] | None = None,
) -> IndicatorResult:
    """All catalogue indicators at every level and year, plus the buurt feature table."""
    skipped = skipped_indicators(specs, src.available())
    live = [
        s for s in specs if s.key not in skipped and (not s.phenomenon or s.phenomenon in phenomena)
    ]
    counts_specs = [s for s in live if s.numerator is None]
    ratio_specs = [s for s in live if s.numerator is not None]
    count_keys = [s.key for s in counts_specs]

    hierarchy = src.areas.select("buurt_code", "wijk_code", "gemeente_code")
    buurt = _buurt_counts(src, skipped, specs)
    static = _static_buurt_counts(src, years)
    if static is not None:
        buurt = buurt.unionByName(static)
    long_counts = _roll_up(buurt, hierarchy)
    per_level = _suspect_counts_per_level(src)
    if per_level is not None:
        long_counts = long_counts.unionByName(per_level.where(F.col("indicator").isin(count_keys)))

    # The full grid: every area at every level, every year of the period.
    spark = src.areas.sparkSession
    years_df = spark.createDataFrame([(int(y),) for y in years], "year long")
    grid = (
        hierarchy.select(F.lit("buurt").alias("level"), F.col("buurt_code").alias("area_code"))
        .unionByName(
            hierarchy.select(F.lit("wijk").alias("level"), F.col("wijk_code").alias("area_code"))
        )
        .unionByName(
            hierarchy.select(
                F.lit("gemeente").alias("level"), F.col("gemeente_code").alias("area_code")
            )
        )
        .distinct()
        .crossJoin(years_df)
    )

    # Wide columns cannot carry dots (Spark reads them as struct fields): "drugs__incidents".
    def w(key: str) -> str:
        return key.replace(".", "__")

    wide_counts = (
        long_counts.withColumn("indicator", F.regexp_replace("indicator", r"\.", "__"))
        .groupBy("level", "area_code", "year")
        .pivot("indicator", list[Any](w(k) for k in count_keys))
        .agg(F.first("value"))
    )
    wide = grid.join(wide_counts, ["level", "area_code", "year"], "left").fillna(
        0.0, subset=[w(k) for k in count_keys]
    )

    ratio_cols = []
    for s in ratio_specs:
        assert s.numerator is not None and s.denominator is not None
        num, den = F.col(w(s.numerator)), F.col(w(s.denominator))
        value = F.when(den > 0, num / den * F.lit(RATE_SCALE.get(s.unit, 1.0)))
        ratio_cols.append(value.alias(w(s.key)))
    wide = wide.select("*", *ratio_cols)
    all_keys = count_keys + [s.key for s in ratio_specs]

    long = wide.unpivot(
        ["level", "area_code", "year"],
        [F.col(w(k)) for k in all_keys],
        "indicator",
        "value",
    ).withColumn("indicator", F.regexp_replace("indicator", "__", "."))

    # Status before disclosure: coverage first, then not_applicable for empty denominators.
    spec_by_key = {s.key: s for s in live}
    not_covered: Column = F.lit(False)
    for table, cov in (coverage or {}).items():
        using = [
            k for k in all_keys if any(table in src_.split("|") for src_ in spec_by_key[k].sources)
        ]
        # a rate inherits the coverage of its numerator and denominator
        using += [s.key for s in ratio_specs if s.numerator in using or s.denominator in using]
        if not using:
            continue
        outside = F.lit(False)
        if cov.gemeenten:
            outside = outside | ~_gemeente_of(F.col("area_code")).isin(list(cov.gemeenten))
        if cov.years:
            outside = outside | ~F.col("year").isin(list(cov.years))
        not_covered = not_covered | (F.col("indicator").isin(sorted(set(using))) & outside)
    status = (
        F.when(not_covered, F.lit("not_covered"))
        .when(F.col("value").isNull(), F.lit("not_applicable"))
        .otherwise(F.lit("ok"))
    )
    cells = long.select(
        "level",
        "area_code",
        F.col("year").cast("int").alias("year"),
        "indicator",
        F.when(~not_covered, F.col("value")).alias("value"),
        status.alias("status"),
    )

    # Area features: the buurt rows of the wide table, names without dots.
    features = (
        wide.where(F.col("level") == "buurt")
        .join(
            F.broadcast(src.areas.select(F.col("buurt_code").alias("area_code"), "x", "y")),
            "area_code",
        )
        .select(
            F.col("area_code").alias("buurt_code"),
            F.col("year").cast("int").alias("year"),
            "x",
            "y",
            *[F.col(w(k)).alias(feature_name(k)) for k in all_keys],
        )
    )
    return IndicatorResult(cells=cells, area_features=features, skipped=skipped)


def locate_signals(
    signals: DataFrame,
    *,
    addresses: DataFrame | None,
    phenomena: Mapping[str, Phenomenon],
) -> DataFrame:
    """Signals with their buurt (buurt_code, else the address's buurt), year and phenomena."""
    s = signals
    if addresses is not None:
        s = s.join(
            addresses.select(F.col("address_id").alias("_a"), F.col("buurt_code").alias("_ab")),
            F.col("address_id") == F.col("_a"),
            "left",
        )
    else:
        s = s.withColumn("_ab", F.lit(None).cast("string"))
    parts = [
        F.when(F.col("category").isin(list(ph.signal_categories)), F.lit(key))
        for key, ph in phenomena.items()
        if ph.signal_categories
    ]
    ph_col = F.array_compact(F.array(*parts)) if parts else F.array().cast("array<string>")
    return s.select(
        "signal_id",
        F.coalesce(F.col("buurt_code"), F.col("_ab")).alias("buurt_code"),
        F.year("signal_date").alias("year"),
        "category",
        ph_col.alias("phenomena"),
    ).where(F.col("buurt_code").isNotNull())
