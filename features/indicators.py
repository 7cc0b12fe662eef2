"""Per-area indicators (aard en omvang) and the area feature table, from the linked tables.

Reads nothing and writes nothing. Counts are computed per buurt and summed up the hierarchy
(buurt within wijk within gemeente) where they are additive; distinct-person counts whose
people can appear in several areas (suspects of incidents *in* an area, directors active in an
area) are computed at each level directly. Rates and shares are computed at each level from that
level's counts, never by averaging lower-level rates. Every (area, year, indicator) of the
catalogue gets a cell: an area with nothing to count has 0, a rate whose denominator is 0 is
``not_applicable``, an area outside a source's configured coverage is ``not_covered``.

Values that are neither counts nor ratios follow the spec's ``method``:

- ``median_distance_km``: journey to crime, the median over suspect-incident pairs of the
  distance between the suspect's residence buurt centroid and the incident (Rossmo 2000; the
  Dutch studies of Bernasco and Van Koppen use the same pair unit). Computed at each level.
- ``mean_woz``: sum of WOZ values / addresses with a value (helper sums roll up additively).
- ``density_per_km2``: inhabitants / land area in km2.
- ``eb_smoothed``: Marshall's (1991) global empirical-Bayes rate, method of moments over the
  areas of one level and year: ``w r_i + (1 - w) m`` with ``w = A / (A + m / n_i)``,
  ``A = max(s2 - m / n_mean, 0)``.
- ``relative_gemeente`` / ``relative_study_area``: the area's rate over its gemeente's rate or
  the whole study area's rate of the same year.

For magnitudes (euro, km) the stage also returns the contributor data disclosure control needs
(``n_units``, ``top_n_share``: the minimum-units and (1, k) dominance rules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from zicht.features.link import LEVELS
from zicht.features.settings import CoverageSettings, IndicatorSpec, PatternSettings, Phenomenon

RATE_SCALE = {"rate": 1000.0, "share": 1.0, "index": 1.0, "class": 1.0}
METHODS = (
    "median_distance_km",
    "mean_woz",
    "density_per_km2",
    "eb_smoothed",
    "relative_gemeente",
    "relative_study_area",
)
# Helper sums that roll up with the counts but are not indicators (never published).
WOZ_SUM = "_woz_sum_eur"
LAND_KM2 = "_land_km2"
NON_PERSON_BUYERS = ("company", "foundation", "unknown")


Checkpoint = Callable[[DataFrame, str], DataFrame]


@dataclass(frozen=True)
class Sources:
    """The linked tables available to the indicator stage (None: the source is absent)."""

    areas: DataFrame
    incidents: DataFrame  # incidents_located
    suspects: DataFrame | None = None
    residence: DataFrame | None = None  # with address_id, household_id, registered_since
    addresses: DataFrame | None = None
    signals: DataFrame | None = None  # signals with buurt_code resolved and year
    companies: DataFrame | None = None
    company_roles: DataFrame | None = None
    property_transactions: DataFrame | None = None
    household_income: DataFrame | None = None
    areas_have_inhabitants: bool = False
    # Rootedness counts made from the networks (zicht.models.network computes them; the job
    # passes them in): co-offending ties and community reach per level (level, area_code,
    # year, indicator, value; not additive) and the youth ties per layer per buurt
    # (buurt_code, year, indicator, value; additive, rolled up like every buurt count).
    network_level_counts: DataFrame | None = None
    youth_tie_counts: DataFrame | None = None

    def available(self) -> set[str]:
        have = {"areas", "incidents"}
        for name in (
            "suspects",
            "addresses",
            "signals",
            "companies",
            "company_roles",
            "property_transactions",
            "household_income",
        ):
            if getattr(self, name) is not None:
                have.add(name)
        if self.residence is not None:
            have.add("persons")
        if self.youth_tie_counts is not None:
            have.add("person_links")
        if self.network_level_counts is not None:
            have.add("network")
        if self.areas_have_inhabitants:
            have.add("areas.inhabitants")
        return have


@dataclass(frozen=True)
class IndicatorResult:
    cells: DataFrame  # level, area_code, year, indicator, value, status
    area_features: DataFrame  # buurt_code, year, x, y, <feature columns>
    skipped: Mapping[str, str]
    # level, area_code, year, indicator, n_units, top_n_share for magnitudes (disclosure)
    magnitude_contributors: DataFrame | None = None


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


def _union(parts: Sequence[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b), parts)


def _count_by(df: DataFrame, indicator: str | Column, *, area: str = "buurt_code") -> DataFrame:
    """Rows per (area, year) as long counts: buurt_code, year, indicator, value."""
    ind = F.lit(indicator) if isinstance(indicator, str) else indicator
    return (
        df.groupBy(F.col(area).alias("buurt_code"), F.col("year"), ind.alias("indicator"))
        .count()
        .select(
            "buurt_code",
            F.col("year").cast("long").alias("year"),
            "indicator",
            F.col("count").cast("double").alias("value"),
        )
    )


def _year_end(year: Column) -> Column:
    return F.make_date(year.cast("int"), F.lit(12), F.lit(31))


def _year_start(year: Column) -> Column:
    return F.make_date(year.cast("int"), F.lit(1), F.lit(1))


def _active_in(start: Column, end: Column, first: Column, last: Column) -> Column:
    """A spell [start, end] (end null: still running) overlaps the days [first, last]."""
    return (start <= last) & (end.isNull() | (end >= first))


def _suspect_years(src: Sources) -> DataFrame | None:
    """person_id, year: persons registered as suspect of any located incident in the year."""
    if src.suspects is None:
        return None
    return (
        src.suspects.join(src.incidents.select("incident_id", "year"), "incident_id")
        .select("person_id", F.col("year").cast("long").alias("year"))
        .distinct()
    )


def _suspects_residence(src: Sources, residence: DataFrame) -> DataFrame:
    """``residence`` rows of persons who are a suspect at all (any incident, any year).

    A broadcast semi-join: the suspects are a few hundred thousand nationally, the residence
    every inhabitant in every year (36M rows at national scale), so the suspects' joins with it
    shuffle the suspects' rows only instead of the whole register.
    """
    assert src.suspects is not None
    ids = src.suspects.select("person_id").where(F.col("person_id").isNotNull()).distinct()
    return residence.join(F.broadcast(ids), "person_id", "left_semi")


def journey_pairs(src: Sources) -> DataFrame | None:
    """Suspect-incident pairs whose suspect lives in the study area, with ``distance_km``.

    One row per (incident, suspect, phenomenon of the incident): the incident's area codes,
    year and phenomenon, and the straight-line distance in km between the incident point and
    the centroid of the buurt where the suspect lives that year.
    """
    if src.suspects is None or src.residence is None:
        return None
    inc = _explode_phenomena(src.incidents).select(
        "incident_id", "year", "phenomenon", "buurt_code", "wijk_code", "gemeente_code", "x", "y"
    )
    home = _suspects_residence(src, src.residence).select(
        "person_id", "year", F.col("buurt_code").alias("_home")
    )
    centroid = src.areas.select(
        F.col("buurt_code").alias("_home"), F.col("x").alias("_hx"), F.col("y").alias("_hy")
    )
    return (
        src.suspects.select("incident_id", "person_id")
        .distinct()
        .join(inc, "incident_id")
        .join(home, ["person_id", "year"])
        .join(F.broadcast(centroid), "_home")
        .select(
            "incident_id",
            "person_id",
            "year",
            "phenomenon",
            "buurt_code",
            "wijk_code",
            "gemeente_code",
            (
                F.sqrt((F.col("x") - F.col("_hx")) ** 2 + (F.col("y") - F.col("_hy")) ** 2) / 1000.0
            ).alias("distance_km"),
        )
    )


def _companies_by_year(src: Sources, years_df: DataFrame) -> DataFrame | None:
    """Companies with an address in an area, once per year of the period (``year``)."""
    if src.companies is None or src.addresses is None:
        return None
    addr = src.addresses.select("address_id", "buurt_code")
    return (
        src.companies.where(F.col("address_id").isNotNull())
        .join(addr, "address_id")
        .crossJoin(F.broadcast(years_df))
    )


def _buurt_counts(
    src: Sources, *, want: set[str], patterns: PatternSettings, years_df: DataFrame
) -> DataFrame:
    """Additive counts per buurt and year, long: buurt_code, year, indicator, value."""

    def wants(*keys: str) -> bool:
        return any(k in want for k in keys)

    parts: list[DataFrame] = []
    inc = _explode_phenomena(src.incidents)
    parts.append(_count_by(inc, F.concat("phenomenon", F.lit(".incidents"))))
    res = src.residence
    suspect_years = _suspect_years(src)
    if res is not None:
        age = F.col("year") - F.col("birth_year")
        parts.append(_count_by(res, "context.inhabitants"))
        parts.append(_count_by(res.where(age >= 12), "context.inhabitants_12plus"))
        if wants("context.households"):
            parts.append(
                _count_by(
                    res.where(F.col("household_id").isNotNull())
                    .select("buurt_code", "year", "household_id")
                    .distinct(),
                    "context.households",
                )
            )
        if wants("context.recent_movers"):
            # registered at the current address less than a year before the year's end
            recent = (F.col("registered_since") > _year_end(F.col("year") - 1)) & (
                F.col("registered_since") <= _year_end(F.col("year"))
            )
            parts.append(_count_by(res.where(recent), "context.recent_movers"))
        young = res.where(age.between(patterns.youth_min_age, patterns.youth_max_age))
        if wants("context.young_residents"):
            parts.append(_count_by(young, "context.young_residents"))
        if wants("mensenhandel.overbewoning_dwellings") and src.addresses is not None:
            dwellings = src.addresses.where(F.col("use_type") == "woonfunctie").select("address_id")
            crowded = (
                res.where(age >= 18)
                .groupBy("buurt_code", "year", "address_id")
                .count()
                .where(F.col("count") >= patterns.min_adults_per_dwelling)
                .join(dwellings, "address_id")
            )
            parts.append(_count_by(crowded, "mensenhandel.overbewoning_dwellings"))
        if src.suspects is not None and suspect_years is not None:
            res_s = _suspects_residence(src, res)  # the suspects' rows only
            young_s = _suspects_residence(src, young)
            susp = (
                src.suspects.join(inc.select("incident_id", "year", "phenomenon"), "incident_id")
                .select("person_id", "year", "phenomenon")
                .distinct()
            )
            parts.append(
                _count_by(
                    susp.join(
                        res_s.select("person_id", "year", "buurt_code"), ["person_id", "year"]
                    ),
                    F.concat("phenomenon", F.lit(".resident_suspects")),
                )
            )
            if wants("context.young_suspects"):
                parts.append(
                    _count_by(
                        young_s.join(suspect_years, ["person_id", "year"]),
                        "context.young_suspects",
                    )
                )
            if wants("context.young_in_suspect_household"):
                # another member of the young person's household is a suspect in the year
                suspect_households = (
                    res_s.where(F.col("household_id").isNotNull())
                    .join(suspect_years, ["person_id", "year"])
                    .select("household_id", "year", F.col("person_id").alias("_suspect_id"))
                )
                exposed = (
                    young.where(F.col("household_id").isNotNull())
                    .join(F.broadcast(suspect_households), ["household_id", "year"])
                    .where(F.col("_suspect_id") != F.col("person_id"))
                    .select("person_id", "year", "buurt_code")
                    .distinct()
                )
                parts.append(_count_by(exposed, "context.young_in_suspect_household"))
    pairs = journey_pairs(src)
    if pairs is not None:
        parts.append(_count_by(pairs, F.concat("phenomenon", F.lit(".journey_pairs"))))
    if src.signals is not None:
        parts.append(
            _count_by(
                src.signals.select("buurt_code", "year", F.explode("phenomena").alias("ph")),
                F.concat("ph", F.lit(".signals")),
            )
        )
    parts += _company_counts(src, want=want, patterns=patterns, years_df=years_df)
    parts += _transaction_counts(src, want=want, patterns=patterns, years_df=years_df)
    out = _union(parts)
    return out.where(F.col("indicator").isin(sorted(want)))


def _company_counts(
    src: Sources, *, want: set[str], patterns: PatternSettings, years_df: DataFrame
) -> list[DataFrame]:
    comp = _companies_by_year(src, years_df)
    if comp is None:
        return []
    reg, dereg = F.col("registered_date"), F.col("deregistered_date")
    first, last = _year_start(F.col("year")), _year_end(F.col("year"))
    window_first = _year_start(F.col("year") - (patterns.churn_window_years - 1))
    active = _active_in(reg, dereg, first, last)
    parts: list[DataFrame] = [
        _count_by(comp.where(active), "context.companies"),
        _count_by(
            comp.where(_active_in(reg, dereg, window_first, last)),
            "context.companies_churn_window",
        ),
        _count_by(
            comp.where(
                reg.between(window_first, last)
                | (dereg.isNotNull() & dereg.between(window_first, last))
            ),
            "witwassen.company_churn",
        ),
    ]
    if patterns.cash_intensive_sbi:
        cash = reduce(
            lambda a, b: a | b,
            [F.col("sbi_code").startswith(c) for c in patterns.cash_intensive_sbi],
        )
        parts.append(_count_by(comp.where(active & cash), "witwassen.cash_intensive_companies"))
    # addresses where many companies are active in the year: counted, and their companies too
    many = (
        comp.where(active)
        .groupBy("buurt_code", "year", "address_id")
        .agg(F.countDistinct("company_id").alias("n"))
        .where(F.col("n") >= patterns.min_companies_per_address)
    )
    if "vastgoedfraude.many_company_addresses" in want:
        parts.append(_count_by(many, "vastgoedfraude.many_company_addresses"))
    if "vastgoedfraude.companies_at_many_company_addresses" in want:
        # the same rows context.companies counts, at those addresses only
        at_many = comp.where(active).join(
            many.select("buurt_code", "year", "address_id"),
            ["buurt_code", "year", "address_id"],
            "left_semi",
        )
        parts.append(_count_by(at_many, "vastgoedfraude.companies_at_many_company_addresses"))
    return parts


def _transaction_counts(
    src: Sources, *, want: set[str], patterns: PatternSettings, years_df: DataFrame
) -> list[DataFrame]:
    if src.property_transactions is None or src.addresses is None:
        return []
    tx = src.property_transactions.join(
        src.addresses.select("address_id", "buurt_code", "use_type"), "address_id"
    ).withColumn("_tx_year", F.year("transaction_date").cast("long"))
    in_period = tx.join(
        F.broadcast(years_df), F.col("_tx_year") == F.col("year")
    )  # sales of the period's years, with their year
    parts = [
        _count_by(in_period, "vastgoedfraude.purchases"),
        _count_by(
            in_period.where(F.col("buyer_kind").isin(*NON_PERSON_BUYERS)),
            "vastgoedfraude.non_person_purchases",
        ),
    ]
    if "vastgoedfraude.doorsluiswoningen" in want:
        window = tx.where(F.col("use_type") == "woonfunctie").join(
            F.broadcast(years_df),
            F.col("_tx_year").between(
                F.col("year") - (patterns.resale_window_years - 1), F.col("year")
            ),
        )
        resold = (
            window.groupBy("buurt_code", "year", "address_id")
            .agg(F.countDistinct("transaction_id").alias("n"))
            .where(F.col("n") >= patterns.min_resales)
        )
        parts.append(_count_by(resold, "vastgoedfraude.doorsluiswoningen"))
    if (
        "witwassen.person_purchases_with_income" in want
        and src.residence is not None
        and src.household_income is not None
    ):
        # the register's rows of the buyers only (a broadcast semi-join: a few hundred thousand
        # person purchases a year nationally), so the inhabitants are not shuffled
        buyer_ids = (
            in_period.where(F.col("buyer_kind") == "person")
            .select(F.col("buyer_id").alias("person_id"))
            .where(F.col("person_id").isNotNull())
            .distinct()
        )
        buyers = (
            src.residence.join(F.broadcast(buyer_ids), "person_id", "left_semi")
            .select(F.col("person_id").alias("buyer_id"), "year", "household_id")
            .where(F.col("household_id").isNotNull())
        )
        income = src.household_income.select(
            "household_id",
            F.col("year").cast("long").alias("year"),
            "disposable_income_eur",
        )
        known = (
            in_period.where(F.col("buyer_kind") == "person")
            .join(buyers, ["buyer_id", "year"])
            .join(income, ["household_id", "year"])
            .select("transaction_id", "buurt_code", "year", "price_eur", "disposable_income_eur")
            .distinct()
        )
        parts.append(_count_by(known, "witwassen.person_purchases_with_income"))
        unexplained = F.col("price_eur") > F.lit(patterns.max_price_to_income) * F.col(
            "disposable_income_eur"
        )
        parts.append(_count_by(known.where(unexplained), "witwassen.unexplained_purchases"))
    return parts


def _static_buurt_counts(src: Sources, years_df: DataFrame) -> DataFrame:
    """Counts and helper sums that do not vary by year in the inputs (addresses, areas)."""
    parts: list[DataFrame] = []
    if src.addresses is not None:
        is_dwelling = F.col("use_type") == "woonfunctie"
        has_woz = F.col("woz_value_eur").isNotNull()
        measures = {
            "context.addresses": F.count(F.lit(1)),
            "context.dwellings": F.sum(is_dwelling.cast("int")),
            "context.business_units": F.sum((~is_dwelling).cast("int")),
            "context.woz_units": F.sum(has_woz.cast("int")),
            WOZ_SUM: F.coalesce(F.sum("woz_value_eur"), F.lit(0)),
        }
        agg = src.addresses.groupBy("buurt_code").agg(
            *[m.cast("double").alias(f"_m{i}") for i, m in enumerate(measures.values())]
        )
        for i, name in enumerate(measures):
            parts.append(
                agg.select(
                    "buurt_code", F.lit(name).alias("indicator"), F.col(f"_m{i}").alias("value")
                )
            )
    parts.append(
        src.areas.select(
            "buurt_code",
            F.lit(LAND_KM2).alias("indicator"),
            (F.col("land_area_ha") / 100.0).alias("value"),
        )
    )
    if src.residence is None and src.areas_have_inhabitants:
        parts.append(
            src.areas.where(F.col("inhabitants").isNotNull()).select(
                "buurt_code",
                F.lit("context.inhabitants").alias("indicator"),
                F.col("inhabitants").cast("double").alias("value"),
            )
        )
    return (
        _union(parts)
        .crossJoin(F.broadcast(years_df))
        .select("buurt_code", "year", "indicator", "value")
    )


def _per_level_counts(
    src: Sources, *, want: set[str], patterns: PatternSettings, years_df: DataFrame
) -> DataFrame | None:
    """Non-additive counts, computed at each level: level, area_code, year, indicator, value."""
    parts: list[DataFrame] = []
    hierarchy = src.areas.select("buurt_code", "wijk_code", "gemeente_code")
    if src.suspects is not None:
        inc = _explode_phenomena(src.incidents)
        base = src.suspects.join(
            inc.select(
                "incident_id", "year", "phenomenon", "buurt_code", "wijk_code", "gemeente_code"
            ),
            "incident_id",
        )
        # suspects of two or more incidents of the phenomenon anywhere in the year
        repeat = (
            base.groupBy("person_id", "year", "phenomenon")
            .agg(F.countDistinct("incident_id").alias("_n_inc"))
            .select("person_id", "year", "phenomenon", (F.col("_n_inc") >= 2).alias("_repeat"))
        )
        res_s = _suspects_residence(src, src.residence) if src.residence is not None else None
        for level in LEVELS:
            code = _level_code(level)
            d = (
                base.select("person_id", "year", "phenomenon", F.col(code).alias("area_code"))
                .distinct()
                .join(repeat, ["person_id", "year", "phenomenon"])
            )
            if res_s is not None:
                r = res_s.select("person_id", "year", F.col(code).alias("_res_code"))
                d = d.join(r, ["person_id", "year"], "left")
                is_local = (F.col("_res_code") == F.col("area_code")).cast("int")
            else:
                is_local = F.lit(0)
            agg = d.groupBy("area_code", "year", "phenomenon").agg(
                F.count(F.lit(1)).cast("double").alias("suspects"),
                F.sum(F.coalesce(is_local, F.lit(0))).cast("double").alias("local_suspects"),
                F.sum(F.col("_repeat").cast("int")).cast("double").alias("repeat_suspects"),
            )
            for name in ("suspects", "local_suspects", "repeat_suspects"):
                parts.append(
                    agg.select(
                        F.lit(level).alias("level"),
                        "area_code",
                        F.col("year").cast("long").alias("year"),
                        F.concat("phenomenon", F.lit(f".{name}")).alias("indicator"),
                        F.col(name).alias("value"),
                    )
                )
    comp = _companies_by_year(src, years_df)
    if (
        "witwassen.many_company_directors" in want
        and comp is not None
        and src.company_roles is not None
    ):
        first, last = _year_start(F.col("year")), _year_end(F.col("year"))
        active = comp.where(
            _active_in(F.col("registered_date"), F.col("deregistered_date"), first, last)
        ).select("company_id", "year", "buurt_code")
        roles = (
            src.company_roles.where(F.col("role").isin(*patterns.director_roles))
            .crossJoin(F.broadcast(years_df))
            .where(_active_in(F.col("start_date"), F.col("end_date"), first, last))
            .select("company_id", "person_id", "year")
            .distinct()
        )
        # the ``min_companies_per_director`` count runs over active companies anywhere in the
        # study area with an address; a director of companies without one counts them not
        directed = roles.join(active, ["company_id", "year"])
        many = (
            directed.groupBy("person_id", "year")
            .agg(F.countDistinct("company_id").alias("_n"))
            .where(F.col("_n") >= patterns.min_companies_per_director)
            .select("person_id", "year")
        )
        located = directed.join(many, ["person_id", "year"]).join(
            F.broadcast(hierarchy), "buurt_code"
        )
        for level in LEVELS:
            parts.append(
                located.groupBy(F.col(_level_code(level)).alias("area_code"), "year")
                .agg(F.countDistinct("person_id").cast("double").alias("value"))
                .select(
                    F.lit(level).alias("level"),
                    "area_code",
                    F.col("year").cast("long").alias("year"),
                    F.lit("witwassen.many_company_directors").alias("indicator"),
                    "value",
                )
            )
    if not parts:
        return None
    return _union(parts).where(F.col("indicator").isin(sorted(want)))


def _magnitudes(src: Sources, *, want: set[str], years_df: DataFrame) -> DataFrame | None:
    """Per-level magnitudes with their contributors: level, area_code, year, indicator,
    value (null unless computed here), n_units, top_n_share."""
    parts: list[DataFrame] = []
    pairs = journey_pairs(src)
    if pairs is not None:
        for level in LEVELS:
            parts.append(
                pairs.groupBy(F.col(_level_code(level)).alias("area_code"), "year", "phenomenon")
                .agg(
                    F.percentile("distance_km", F.lit(0.5)).alias("value"),
                    F.count(F.lit(1)).alias("n_units"),
                )
                .select(
                    F.lit(level).alias("level"),
                    "area_code",
                    F.col("year").cast("long").alias("year"),
                    F.concat("phenomenon", F.lit(".journey_to_crime_km")).alias("indicator"),
                    F.col("value").cast("double").alias("value"),
                    F.col("n_units").cast("long").alias("n_units"),
                    F.lit(None).cast("double").alias("top_n_share"),
                )
            )
    if src.addresses is not None and "context.mean_woz_eur" in want:
        woz = src.addresses.where(F.col("woz_value_eur").isNotNull()).join(
            F.broadcast(src.areas.select("buurt_code", "wijk_code", "gemeente_code")),
            "buurt_code",
        )
        for level in LEVELS:
            # the (1, k) dominance rule: the share of the largest contributor in the total
            parts.append(
                woz.groupBy(F.col(_level_code(level)).alias("area_code"))
                .agg(
                    F.count(F.lit(1)).alias("n_units"),
                    (F.max("woz_value_eur") / F.nullif(F.sum("woz_value_eur"), F.lit(0))).alias(
                        "top_n_share"
                    ),
                )
                .crossJoin(F.broadcast(years_df))
                .select(
                    F.lit(level).alias("level"),
                    "area_code",
                    F.col("year").cast("long").alias("year"),
                    F.lit("context.mean_woz_eur").alias("indicator"),
                    F.lit(None).cast("double").alias("value"),
                    F.col("n_units").cast("long").alias("n_units"),
                    F.col("top_n_share").cast("double").alias("top_n_share"),
                )
            )
    if not parts:
        return None
    return _union(parts).where(F.col("indicator").isin(sorted(want)))


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
    return _union(parts)


def _gemeente_of(area_code: Column) -> Column:
    """GM code of any CBS area code (BU/WK/GM + 4 gemeente digits)."""
    return F.concat(F.lit("GM"), F.substring(area_code, 3, 4))


COMPOSITE_METHODS = ("composite", "composite_class")
N_CLASSES = 9


def _with_composites(wide: DataFrame, specs: Sequence[IndicatorSpec], w: Any) -> DataFrame:
    """Composite indices (0-100) and their classes (1..9), after every other column exists.

    ``composite``: the weighted mean of the components' percentile ranks among the areas of
    the same level and year (``percent_rank``: 0 for the lowest, 1 for the highest; an area
    without a value ranks lowest), times 100. Ranks, not raw values, so that no single rate
    with a long tail dominates and the weights mean what the catalogue says. ``composite_class``:
    the composite cut into nine equal bands, 1 = lowest ... 9 = highest concentration (labels
    deliberately neutral). A composite whose components are absent from the table is null.
    """
    if not specs:
        return wide
    per = Window.partitionBy("level", "year")
    for s in [x for x in specs if x.method == "composite"]:
        present = [
            (c, wt) for c, wt in zip(s.components, s.weights, strict=True) if w(c) in wide.columns
        ]
        total = sum(wt for _, wt in present)
        if not present or total <= 0:
            wide = wide.withColumn(w(s.key), F.lit(None).cast("double"))
            continue
        score: Column = F.lit(0.0)
        for c, wt in present:
            rank = F.percent_rank().over(per.orderBy(F.col(w(c)).asc_nulls_first()))
            score = score + F.lit(wt / total) * rank
        wide = wide.withColumn(w(s.key), F.round(score * 100.0, 6))
    for s in [x for x in specs if x.method == "composite_class"]:
        (c,) = s.components
        if w(c) not in wide.columns:
            wide = wide.withColumn(w(s.key), F.lit(None).cast("double"))
            continue
        band = F.ceil(F.col(w(c)) * N_CLASSES / 100.0)
        value = F.least(F.lit(N_CLASSES), F.greatest(F.lit(1), band)).cast("double")
        wide = wide.withColumn(w(s.key), F.when(F.col(w(c)).isNotNull(), value))
    return wide


def _with_methods(
    wide: DataFrame, specs: Sequence[IndicatorSpec], w: Any, magnitudes: DataFrame | None
) -> DataFrame:
    """Add one column per non-count spec to the wide table (level, area_code, year, counts)."""
    medians = [w(s.key) for s in specs if s.method == "median_distance_km"]
    if magnitudes is not None and medians:
        med = (
            magnitudes.where(F.col("value").isNotNull())
            .withColumn("indicator", F.regexp_replace("indicator", r"\.", "__"))
            .groupBy("level", "area_code", "year")
            .pivot("indicator", list[Any](medians))
            .agg(F.first("value"))
        )
        wide = wide.join(med, ["level", "area_code", "year"], "left")
    relative = [s for s in specs if s.method in ("relative_gemeente", "relative_study_area")]
    if relative:
        parts = sorted({c for s in relative for c in (s.numerator, s.denominator) if c})
        gem = wide.where(F.col("level") == "gemeente").select(
            F.col("area_code").alias("_gm"),
            "year",
            *[F.col(w(c)).alias(f"_g_{w(c)}") for c in parts],
        )
        total = gem.groupBy("year").agg(*[F.sum(f"_g_{w(c)}").alias(f"_t_{w(c)}") for c in parts])
        wide = (
            wide.withColumn("_gm", _gemeente_of(F.col("area_code")))
            .join(F.broadcast(gem), ["_gm", "year"], "left")
            .join(F.broadcast(total), "year", "left")
        )
    per_level_year = Window.partitionBy("level", "year")
    cols: list[Column] = []
    for s in specs:
        num = F.col(w(s.numerator)) if s.numerator else None
        den = F.col(w(s.denominator)) if s.denominator else None
        scale = F.lit(RATE_SCALE.get(s.unit, 1.0))
        value: Column
        if not s.method:
            assert num is not None and den is not None
            value = F.when(den > 0, num / den * scale)
        elif s.method == "median_distance_km":
            value = F.col(w(s.key)) if magnitudes is not None and medians else F.lit(None)
        elif s.method == "mean_woz":
            assert den is not None
            value = F.when(den > 0, F.col(w(WOZ_SUM)) / den)
        elif s.method == "density_per_km2":
            assert num is not None
            value = F.when(F.col(w(LAND_KM2)) > 0, num / F.col(w(LAND_KM2)))
        elif s.method == "eb_smoothed":
            # Marshall (1991), global: the prior is the rate of all areas of the level and year
            assert num is not None and den is not None
            n = F.when(den > 0, den)
            r = num / n
            m = F.sum(F.when(n.isNotNull(), num)).over(per_level_year) / F.sum(n).over(
                per_level_year
            )
            s2 = F.sum(n * (r - m) ** 2).over(per_level_year) / F.sum(n).over(per_level_year)
            n_mean = F.avg(n).over(per_level_year)
            a = F.greatest(s2 - m / n_mean, F.lit(0.0))
            weight = F.when(a + m / n > 0, a / (a + m / n)).otherwise(F.lit(0.0))
            value = F.when(n.isNotNull(), (weight * r + (1 - weight) * m) * scale)
        elif s.method in ("relative_gemeente", "relative_study_area"):
            assert s.numerator is not None and s.denominator is not None
            assert num is not None and den is not None
            p = "_g_" if s.method == "relative_gemeente" else "_t_"
            ref_num, ref_den = F.col(p + w(s.numerator)), F.col(p + w(s.denominator))
            ref = F.when(ref_den > 0, ref_num / ref_den)
            value = F.when((den > 0) & (ref > 0), (num / den) / ref)
        else:
            raise ValueError(f"indicator {s.key}: unknown method {s.method!r} (one of {METHODS})")
        cols.append(value.cast("double").alias(w(s.key)))
    keep = [c for c in wide.columns if not c.startswith(("_gm", "_g_", "_t_"))]
    keep = [c for c in keep if c not in {w(s.key) for s in specs}]
    return wide.select(*keep, *cols)


def build_indicators(
    src: Sources,
    *,
    years: Sequence[int],
    phenomena: Mapping[str, Phenomenon],
    specs: Sequence[IndicatorSpec],
    coverage: Mapping[str, CoverageSettings] | None = None,
    patterns: PatternSettings | None = None,
    checkpoint: Checkpoint | None = None,
) -> IndicatorResult:
    """All catalogue indicators at every level and year, plus the buurt feature table.

    ``checkpoint(df, name)`` cuts the query plan after the counts and after the wide table.
    The stage unions a few dozen aggregations, and Catalyst's planning time grows with the
    plan; the job passes a checkpoint that writes to its staging folder and reads back
    (tests may pass ``DataFrame.localCheckpoint``). Without one, the plan is built whole.
    """
    cut: Checkpoint = checkpoint or (lambda df, _name: df)
    patterns = patterns or PatternSettings()
    skipped = skipped_indicators(specs, src.available())
    live = [
        s for s in specs if s.key not in skipped and (not s.phenomenon or s.phenomenon in phenomena)
    ]
    counts_specs = [s for s in live if s.unit == "count"]
    derived_specs = [s for s in live if s.unit != "count"]
    count_keys = [s.key for s in counts_specs]
    helpers = [LAND_KM2] + ([WOZ_SUM] if src.addresses is not None else [])
    want = set(count_keys) | set(helpers)
    additive = {s.key for s in counts_specs if s.additive} | set(helpers)

    spark = src.areas.sparkSession
    years_df = spark.createDataFrame([(int(y),) for y in years], "year long")
    hierarchy = src.areas.select("buurt_code", "wijk_code", "gemeente_code")
    buurt = _buurt_counts(src, want=additive, patterns=patterns, years_df=years_df)
    buurt = buurt.unionByName(
        _static_buurt_counts(src, years_df).where(F.col("indicator").isin(sorted(additive)))
    )
    if src.youth_tie_counts is not None:
        buurt = buurt.unionByName(
            src.youth_tie_counts.select(
                "buurt_code", F.col("year").cast("long").alias("year"), "indicator", "value"
            ).where(F.col("indicator").isin(sorted(additive)))
        )
    long_counts = _roll_up(cut(buurt, "buurt_counts"), hierarchy)
    per_level = _per_level_counts(src, want=want - additive, patterns=patterns, years_df=years_df)
    if src.network_level_counts is not None:
        ties = src.network_level_counts.select(
            "level", "area_code", F.col("year").cast("long").alias("year"), "indicator", "value"
        ).where(F.col("indicator").isin(sorted(want - additive)))
        per_level = ties if per_level is None else per_level.unionByName(ties)
    if per_level is not None:
        long_counts = long_counts.unionByName(cut(per_level, "per_level_counts"))
    magnitudes = _magnitudes(src, want={s.key for s in derived_specs}, years_df=years_df)
    if magnitudes is not None:
        magnitudes = cut(magnitudes, "magnitudes")

    # The full grid: every area at every level, every year of the period.
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

    pivot_keys = count_keys + helpers
    wide_counts = (
        long_counts.withColumn("indicator", F.regexp_replace("indicator", r"\.", "__"))
        .groupBy("level", "area_code", "year")
        .pivot("indicator", list[Any](w(k) for k in pivot_keys))
        .agg(F.first("value"))
    )
    wide = grid.join(wide_counts, ["level", "area_code", "year"], "left").fillna(
        0.0, subset=[w(k) for k in pivot_keys]
    )
    # The wide table feeds both the cells and the area features: cut the plan there too.
    composites = [s for s in derived_specs if s.method in COMPOSITE_METHODS]
    plain = [s for s in derived_specs if s.method not in COMPOSITE_METHODS]
    wide = _with_composites(_with_methods(wide, plain, w, magnitudes), composites, w)
    wide = cut(wide, "wide")
    all_keys = count_keys + [s.key for s in derived_specs]

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
        using += [s.key for s in derived_specs if s.numerator in using or s.denominator in using]
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
    contributors = None
    if magnitudes is not None:
        contributors = magnitudes.select(
            "level",
            "area_code",
            F.col("year").cast("int").alias("year"),
            "indicator",
            "n_units",
            "top_n_share",
        )
    return IndicatorResult(
        cells=cells,
        area_features=features,
        skipped=skipped,
        magnitude_contributors=contributors,
    )


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
