"""Per-area indicators (aard en omvang) and the area feature table, from the linked tables.

Reads nothing and writes nothing. What the catalogue may contain is registered in
:mod:`zicht.features.registry`: every count is a declarative conditional aggregate (Spark SQL)
over the rows of one *pass*, and this module holds the pass functions (:data:`PASS_FUNCTIONS`:
the rows of one source table at one grain) and the methods (:data:`METHOD_FUNCTIONS`).

One pass per source: all the counts of a pass are computed in one aggregation over its rows,
with a conditional aggregate per phenomenon (``count_if(array_contains(phenomena, 'drugs'))``).
Additive counts are aggregated per buurt (their placement level); the pass aggregates are
joined onto the grid of buurten and years and summed up the hierarchy (buurt within wijk within
gemeente) in one aggregation. Distinct-person counts whose persons can count in several areas
(suspects of incidents *in* an area, directors active in an area) and local counts are computed
at each level exactly, one aggregation per pass, and joined on. Rates, shares and methods are
columns of that wide table, computed at each level from that level's counts, never by averaging
lower-level rates. Every (area, year, indicator) of the catalogue gets a cell: an area with
nothing to count has 0, a rate whose denominator is 0 is ``not_applicable``, an area outside a
source's configured coverage is ``not_covered``.

Values that are neither counts nor ratios follow the spec's ``method``:

- ``median_distance_km``: journey to crime, the median over suspect-incident pairs of the
  distance between the suspect's residence buurt centroid and the incident (Rossmo 2000; the
  Dutch studies of Bernasco and Van Koppen use the same pair unit). Computed at each level.
- ``mean_woz``: sum of WOZ values / addresses with a value (helper sums roll up additively).
- ``density_per_km2``: inhabitants / land area in km2.
- ``eb_smoothed``: Marshall's (1991) global empirical-Bayes rate over the areas of one level and
  year, :mod:`zicht.features.smoothing` (the same estimator the area models use).
- ``relative_gemeente`` / ``relative_study_area``: the area's rate over its gemeente's rate or
  the whole study area's rate of the same year.
- ``composite`` / ``composite_class``: weighted percentile ranks and their nine bands, only where
  a level has at least the spec's ``min_areas`` areas in the year (else ``not_applicable``).

Population (CONTRACT.md, *Population*): with ``Sources.population == "extract"`` (``persons``
holds an extract, e.g. the suspects) or without ``persons``, the inhabitants come from
``areas.inhabitants`` / ``inhabitants_12plus``, and the counts that need the register are
skipped with that reason.

For magnitudes (euro, km) the stage also returns the contributor data disclosure control needs
(``n_units``, ``top_n_share``: the minimum-units and (1, k) dominance rules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from zicht.features import registry
from zicht.features.link import LEVELS
from zicht.features.regions import REFERENCE_LEVELS, Regions, level_codes, reference_codes
from zicht.features.settings import CoverageSettings, IndicatorSpec, PatternSettings, Phenomenon
from zicht.features.smoothing import with_smoothed
from zicht.features.themes import THEME_PASS_FUNCTIONS, gated_indicators
from zicht.features.units import UNITS

NON_PERSON_BUYERS = ("company", "foundation", "unknown")
EXTRACT_REASON = "persons is an extract, not the population register (population: extract)"
COMPOSITE_METHODS = registry.COMPOSITE_METHODS
N_CLASSES = 9
# Helper columns of the wide table that roll up with the counts but are not indicators (never
# published), and the per-level helpers of the magnitudes.
WOZ_SUM = "_woz_sum_eur"
LAND_KM2 = "_land_km2"
WOZ_TOP_SHARE = "_woz_top_share"
KEYS = ["level", "area_code", "year"]

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
    unusual_transactions: DataFrame | None = None  # FIU-NL, declared suspicious (themes)
    ownership: DataFrame | None = None
    areas_have_inhabitants: bool = False
    areas_have_inhabitants_12plus: bool = False
    # register: persons is the population register; extract: persons holds an extract (the
    # suspects, say), so denominators come from areas and register-only counts are skipped
    population: str = "register"
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
            "unusual_transactions",
            "ownership",
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
        if self.areas_have_inhabitants_12plus:
            have.add("areas.inhabitants_12plus")
        return have

    @property
    def population_from_areas(self) -> bool:
        """Inhabitants from ``areas``: no persons, or persons only an extract."""
        return self.residence is None or self.population == "extract"


@dataclass(frozen=True)
class IndicatorResult:
    cells: DataFrame  # level, area_code, year, indicator, value, status
    area_features: DataFrame  # buurt_code, year, x, y, <feature columns>
    skipped: Mapping[str, str]
    # level, area_code, year, indicator, n_units, top_n_share for magnitudes (disclosure)
    magnitude_contributors: DataFrame | None = None


def _registered(spec: IndicatorSpec) -> registry.Count | None:
    if spec.unit != "count" or spec.method:
        return None
    return registry.find_count(spec.key, [spec.phenomenon] if spec.phenomenon else [])


def skipped_indicators(
    specs: Sequence[IndicatorSpec], available: set[str], *, population: str = "register"
) -> dict[str, str]:
    """Indicators whose source tables are absent, with the reason (for the manifest).

    With ``population="extract"`` the counts that need the register are skipped too, and the
    inhabitants may come only from ``areas``.
    """
    out: dict[str, str] = {}
    for spec in specs:
        count = _registered(spec)
        if population == "extract" and count is not None and count.register:
            out[spec.key] = EXTRACT_REASON
            continue
        # with an extract, the inhabitants come from areas only
        extract = population == "extract" and count is not None and count.fallback is not None
        for source in spec.sources:
            options = [o for o in source.split("|") if not (extract and o == "persons")]
            if not any(o in available for o in options):
                names = " or ".join(
                    f"table {o}" if "." not in o else f"column {o}" for o in options
                )
                out[spec.key] = (
                    "persons is an extract and " if extract else ""
                ) + f"{names} is absent"
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


def w(key: str) -> str:
    """The wide table's column of an indicator: Spark reads dots as struct fields."""
    return key.replace(".", "__")


def _year_end(year: Column) -> Column:
    return F.make_date(year.cast("int"), F.lit(12), F.lit(31))


def _year_start(year: Column) -> Column:
    return F.make_date(year.cast("int"), F.lit(1), F.lit(1))


def _active_in(start: Column, end: Column, first: Column, last: Column) -> Column:
    """A spell [start, end] (end null: still running) overlaps the days [first, last]."""
    return (start <= last) & (end.isNull() | (end >= first))


def _levels(df: DataFrame, *cols: str, regions: Regions | None = None) -> DataFrame:
    """One row per level for each row with buurt_code, wijk_code, gemeente_code: ``level``,
    ``area_code`` and ``cols``. With ``regions`` also the region of the row's gemeente (rows
    outside every region get none) and the study area (``zicht.features.regions``)."""
    levels = [
        F.struct(F.lit(level).alias("level"), F.col(f"{level}_code").alias("area_code"))
        for level in LEVELS
    ]
    areas = F.array(*levels)
    if regions is not None:
        areas = F.filter(
            F.array(*levels, *level_codes(regions, F.col("gemeente_code"))),
            lambda x: x["area_code"].isNotNull() | ~x["level"].isin(*REFERENCE_LEVELS),
        )
    return df.select(*cols, F.explode(areas).alias("_l")).select("_l.level", "_l.area_code", *cols)


# --------------------------------------------------------------------------- passes


@dataclass
class PassContext:
    """What the pass functions read: the sources, the period, the thresholds, and the frames
    several passes share, each built once and cut (``cut``: the job's checkpoint, so that the
    passes read it instead of joining again; Spark cannot reuse a join whose columns each pass
    prunes differently)."""

    src: Sources
    years_df: DataFrame
    patterns: PatternSettings
    cut: Checkpoint = field(default=lambda df, _name: df)
    shared: dict[str, DataFrame | None] = field(default_factory=dict)
    sectors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> SBI prefixes
    regions: Regions | None = None  # configured regions: the levels regio and studiegebied

    @property
    def hierarchy(self) -> DataFrame:
        return self.src.areas.select("buurt_code", "wijk_code", "gemeente_code")

    def once(self, name: str, make: Callable[[], DataFrame | None]) -> DataFrame | None:
        if name not in self.shared:
            made = make()
            self.shared[name] = None if made is None else self.cut(made, name)
        return self.shared[name]

    def suspect_homes(self) -> DataFrame | None:
        """One row per suspect of a located incident and year: person_id, year, phenomena (of
        their incidents in the year), repeat_phenomena (those with two or more of them), and
        where they live that year when they live in the study area (buurt_code, wijk_code,
        gemeente_code, age, household_id; null otherwise).

        The residence rows of the suspects come from a broadcast semi-join: the suspects are a
        few hundred thousand nationally, the residence every inhabitant in every year (36M rows
        at national scale), so only the suspects' rows are shuffled.
        """
        src = self.src

        def make() -> DataFrame | None:
            if src.suspects is None:
                return None
            inc = src.incidents.select("incident_id", "year", "phenomena")
            per = (
                src.suspects.select("incident_id", "person_id")
                .join(inc, "incident_id")
                .groupBy("person_id", F.col("year").cast("long").alias("year"))
                .agg(F.collect_set(F.struct("incident_id", "phenomena")).alias("_inc"))
            )
            phs = F.array_distinct(F.flatten(F.col("_inc.phenomena")))
            repeat = F.filter(
                phs,
                lambda p: (
                    F.size(F.filter(F.col("_inc"), lambda i: F.array_contains(i.phenomena, p))) >= 2
                ),
            )
            years = per.select(
                "person_id", "year", phs.alias("phenomena"), repeat.alias("repeat_phenomena")
            )
            if src.residence is None:
                return years.select(
                    "*",
                    *[F.lit(None).cast("string").alias(f"{lv}_code") for lv in LEVELS],
                    F.lit(None).cast("long").alias("age"),
                    F.lit(None).cast("string").alias("household_id"),
                )
            ids = src.suspects.select("person_id").where(F.col("person_id").isNotNull())
            home = src.residence.join(F.broadcast(ids.distinct()), "person_id", "left_semi")
            home = home.select(
                "person_id",
                F.col("year").cast("long").alias("year"),
                *[f"{lv}_code" for lv in LEVELS],
                (F.col("year") - F.col("birth_year")).alias("age"),
                "household_id",
            )
            return years.join(home, ["person_id", "year"], "left")

        return self.once("suspect_homes", make)

    def company_seats(self) -> DataFrame | None:
        """Companies with an address, and the buurt of that address."""
        src = self.src

        def make() -> DataFrame | None:
            if src.companies is None or src.addresses is None:
                return None
            return (
                src.companies.where(F.col("address_id").isNotNull())
                .join(src.addresses.select("address_id", "buurt_code"), "address_id")
                .select(
                    "company_id",
                    "sbi_code",
                    "registered_date",
                    "deregistered_date",
                    "address_id",
                    "buurt_code",
                )  # fmt: skip
            )

        return self.once("company_seats", make)

    def sales_located(self) -> DataFrame | None:
        """Sales with the buurt and use of the address sold, and the year of the sale."""
        src = self.src

        def make() -> DataFrame | None:
            if src.property_transactions is None or src.addresses is None:
                return None
            return src.property_transactions.join(
                src.addresses.select("address_id", "buurt_code", "use_type"), "address_id"
            ).select(
                "transaction_id", "address_id", "buurt_code", "use_type", "price_eur",
                "buyer_id", "buyer_kind",
                F.year("transaction_date").cast("long").alias("_tx_year"),
            )  # fmt: skip

        return self.once("sales_located", make)


def _pass_incidents(ctx: PassContext) -> DataFrame | None:
    return ctx.src.incidents.select(
        "buurt_code", "year", "phenomena", "incident_date", "crime_code", "crime_class"
    )


def _pass_residence(ctx: PassContext) -> DataFrame | None:
    res = ctx.src.residence
    if res is None:
        return None
    return res.select(
        "buurt_code",
        "year",
        (F.col("year") - F.col("birth_year")).alias("age"),
        "household_id",
        "registered_since",
    )


def _pass_dwellings(ctx: PassContext) -> DataFrame | None:
    res, addresses = ctx.src.residence, ctx.src.addresses
    if res is None or addresses is None:
        return None
    # only the addresses with many adults go on (a handful per buurt at most), so the
    # addresses are scanned, not shuffled
    adults = (
        res.where(F.col("year") - F.col("birth_year") >= 18)
        .groupBy("buurt_code", "year", "address_id")
        .agg(F.count(F.lit(1)).alias("adults"))
        .where(F.col("adults") >= ctx.patterns.min_adults_per_dwelling)
    )
    dwelling = addresses.select(
        "address_id", (F.col("use_type") == "woonfunctie").alias("is_dwelling")
    )
    return dwelling.join(F.broadcast(adults), "address_id")


def _pass_suspect_residence(ctx: PassContext) -> DataFrame | None:
    homes = ctx.suspect_homes()
    if homes is None or ctx.src.residence is None:
        return None
    return homes.where(F.col("buurt_code").isNotNull()).select(
        "buurt_code", "year", "phenomena", "age"
    )


def _pass_suspect_households(ctx: PassContext) -> DataFrame | None:
    """Young residents and a suspect (another member) of their household in the year."""
    src, p = ctx.src, ctx.patterns
    homes = ctx.suspect_homes()
    if homes is None or src.residence is None:
        return None
    age = F.col("year") - F.col("birth_year")
    young = src.residence.where(age.between(p.youth_min_age, p.youth_max_age))
    suspect_households = homes.where(F.col("household_id").isNotNull()).select(
        "household_id", "year", F.col("person_id").alias("_suspect_id")
    )
    return (
        young.where(F.col("household_id").isNotNull())
        .join(F.broadcast(suspect_households), ["household_id", "year"])
        .where(F.col("_suspect_id") != F.col("person_id"))
        .select("buurt_code", "year", "person_id")
    )


def _pass_signals(ctx: PassContext) -> DataFrame | None:
    signals = ctx.src.signals
    return None if signals is None else signals.select("buurt_code", "year", "phenomena")


def _pass_company_addresses(ctx: PassContext) -> DataFrame | None:
    """Per address and year: companies active, active in the churn window, (de)registered in
    it, cash-intensive and active."""
    p = ctx.patterns
    seats = ctx.company_seats()
    if seats is None:
        return None
    comp = seats.crossJoin(F.broadcast(ctx.years_df))
    reg, dereg = F.col("registered_date"), F.col("deregistered_date")
    first, last = _year_start(F.col("year")), _year_end(F.col("year"))
    window_first = _year_start(F.col("year") - (p.churn_window_years - 1))
    active = _active_in(reg, dereg, first, last)
    churned = reg.between(window_first, last) | (
        dereg.isNotNull() & dereg.between(window_first, last)
    )
    cash: Column = F.lit(False)
    for code in p.cash_intensive_sbi:
        cash = cash | F.col("sbi_code").startswith(code)
    return comp.groupBy("buurt_code", "year", "address_id").agg(
        F.count_if(active).alias("active"),
        F.count_if(_active_in(reg, dereg, window_first, last)).alias("active_window"),
        F.count_if(churned).alias("churned"),
        F.count_if(active & cash).alias("cash_active"),
    )


def _pass_sales(ctx: PassContext) -> DataFrame | None:
    """Per address and year: sales in the year (by a non-person too) and in the resale window
    that ends with the year."""
    tx = ctx.sales_located()
    if tx is None:
        return None
    back = max(ctx.patterns.resale_window_years - 1, 0)
    window = tx.join(
        F.broadcast(ctx.years_df), F.col("_tx_year").between(F.col("year") - back, F.col("year"))
    )
    in_year = F.col("_tx_year") == F.col("year")
    return window.groupBy("buurt_code", "year", "address_id").agg(
        F.count_if(in_year).alias("sales"),
        F.count_if(in_year & F.col("buyer_kind").isin(*NON_PERSON_BUYERS)).alias(
            "non_person_sales"
        ),
        F.count(F.lit(1)).alias("window_sales"),
        F.max(F.col("use_type") == "woonfunctie").alias("is_dwelling"),
    )


def _pass_purchase_income(ctx: PassContext) -> DataFrame | None:
    """Person purchases of the period's years whose buyer's household has an income that year."""
    src = ctx.src
    tx = ctx.sales_located()
    if tx is None or src.residence is None or src.household_income is None:
        return None
    sales = (
        tx.where(F.col("buyer_kind") == "person")
        .select(
            "transaction_id", "buurt_code", "price_eur", "buyer_id", F.col("_tx_year").alias("year")
        )
        .join(F.broadcast(ctx.years_df), "year", "left_semi")
    )
    # the register's rows of the buyers only (a broadcast semi-join: a few hundred thousand
    # person purchases a year nationally), so the inhabitants are not shuffled, and the
    # incomes are scanned against the buyers' households, not shuffled
    buyer_ids = (
        sales.select(F.col("buyer_id").alias("person_id"))
        .where(F.col("person_id").isNotNull())
        .distinct()
    )
    buyers = (
        src.residence.join(F.broadcast(buyer_ids), "person_id", "left_semi")
        .select(F.col("person_id").alias("buyer_id"), F.col("year").cast("long"), "household_id")
        .where(F.col("household_id").isNotNull())
    )
    income = src.household_income.select(
        "household_id", F.col("year").cast("long").alias("year"), "disposable_income_eur"
    )
    return (
        income.join(F.broadcast(sales.join(buyers, ["buyer_id", "year"])), ["household_id", "year"])
        .select("transaction_id", "buurt_code", "year", "price_eur", "disposable_income_eur")
        .distinct()
    )


def _pass_addresses(ctx: PassContext) -> DataFrame | None:
    a = ctx.src.addresses
    return None if a is None else a.select("buurt_code", "use_type", "woz_value_eur")


def _pass_areas(ctx: PassContext) -> DataFrame | None:
    areas = ctx.src.areas
    cols = [c for c in ("inhabitants", "inhabitants_12plus") if c in areas.columns]
    return areas.select("buurt_code", "land_area_ha", *cols)


def _pass_youth_ties(ctx: PassContext) -> DataFrame | None:
    ties = ctx.src.youth_tie_counts
    return None if ties is None else ties.select("buurt_code", "year", "indicator", "value")


def _pass_incident_suspects(ctx: PassContext) -> DataFrame | None:
    """Per level, area, year and suspect of an incident in the area: the phenomena of their
    incidents there, whether they live in the area, and their repeat phenomena of the year."""
    src = ctx.src
    homes = ctx.suspect_homes()
    if src.suspects is None or homes is None:
        return None
    inc = src.incidents.where(F.size("phenomena") > 0).select(
        "incident_id", F.col("year").cast("long").alias("year"), "phenomena",
        "buurt_code", "wijk_code", "gemeente_code",
    )  # fmt: skip
    base = src.suspects.select("incident_id", "person_id").join(inc, "incident_id")
    per_area = (
        _levels(base, "person_id", "year", "phenomena", regions=ctx.regions)
        .groupBy("level", "area_code", "year", "person_id")
        .agg(F.array_distinct(F.flatten(F.collect_list("phenomena"))).alias("phenomena"))
    )
    person = homes.select(
        "person_id", "year", "repeat_phenomena",
        *[F.col(f"{level}_code").alias(f"_home_{level}") for level in LEVELS],
    )  # fmt: skip
    homes_at = [F.when(F.col("level") == level, F.col(f"_home_{level}")) for level in LEVELS]
    if ctx.regions is not None:  # lives in the same region, or anywhere in the study area
        home_gm = F.col("_home_gemeente")
        homes_at += [
            F.when(F.col("level") == lv, code) for lv, code in reference_codes(ctx.regions, home_gm)
        ]
    home_code = F.coalesce(*homes_at)
    is_local = F.coalesce(home_code == F.col("area_code"), F.lit(False))
    return per_area.join(person, ["person_id", "year"]).select(
        "level", "area_code", "year", "phenomena", "repeat_phenomena", is_local.alias("is_local")
    )


def _pass_directors(ctx: PassContext) -> DataFrame | None:
    """Per level: directors in the year of at least ``min_companies_per_director`` active
    companies with an address in the study area, in each area where they direct one."""
    src, p = ctx.src, ctx.patterns
    seats = ctx.company_seats()
    if seats is None or src.company_roles is None:
        return None
    first, last = _year_start(F.col("year")), _year_end(F.col("year"))
    active = (
        seats.crossJoin(F.broadcast(ctx.years_df))
        .where(_active_in(F.col("registered_date"), F.col("deregistered_date"), first, last))
        .select("company_id", "year", "buurt_code")
    )
    roles = (
        src.company_roles.where(F.col("role").isin(*p.director_roles))
        .crossJoin(F.broadcast(ctx.years_df))
        .where(_active_in(F.col("start_date"), F.col("end_date"), first, last))
        .select("company_id", "person_id", "year")
        .distinct()
    )
    # the min_companies_per_director count runs over active companies anywhere in the study
    # area with an address; a director of companies without one counts them not
    directed = roles.join(active, ["company_id", "year"])
    many = (
        directed.groupBy("person_id", "year")
        .agg(F.count_distinct("company_id").alias("_n"))
        .where(F.col("_n") >= p.min_companies_per_director)
        .select("person_id", "year")
    )
    located = directed.join(many, ["person_id", "year"]).join(
        F.broadcast(ctx.hierarchy), "buurt_code"
    )
    return _levels(located, "year", "person_id", regions=ctx.regions)


def _journey_pairs(ctx: PassContext) -> DataFrame | None:
    """Suspect-incident pairs whose suspect lives in the study area, with ``distance_km``.

    One row per (incident, suspect, phenomenon of the incident): the incident's area codes,
    year and phenomenon, and the straight-line distance in km between the incident point and
    the centroid of the buurt where the suspect lives that year.
    """
    src = ctx.src
    homes = ctx.suspect_homes()
    if src.suspects is None or homes is None or src.residence is None:
        return None
    inc = src.incidents.select(
        "incident_id", F.col("year").cast("long").alias("year"),
        F.explode("phenomena").alias("phenomenon"), "buurt_code", "wijk_code", "gemeente_code",
        "x", "y",
    )  # fmt: skip
    home = homes.where(F.col("buurt_code").isNotNull()).select(
        "person_id", "year", F.col("buurt_code").alias("_home")
    )
    centroid = src.areas.select(
        F.col("buurt_code").alias("_home"), F.col("x").alias("_hx"), F.col("y").alias("_hy")
    )
    distance = F.sqrt((F.col("x") - F.col("_hx")) ** 2 + (F.col("y") - F.col("_hy")) ** 2)
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
            (distance / 1000.0).alias("distance_km"),
        )  # fmt: skip
    )


def _pass_journeys(ctx: PassContext) -> DataFrame | None:
    pairs = _journey_pairs(ctx)
    if pairs is None:
        return None
    return _levels(pairs, "year", "phenomenon", "distance_km", regions=ctx.regions)


def _pass_network(ctx: PassContext) -> DataFrame | None:
    net = ctx.src.network_level_counts
    if net is None:
        return None
    return net.select(
        "level", "area_code", F.col("year").cast("long").alias("year"), "indicator", "value"
    )


def _pass_woz(ctx: PassContext) -> DataFrame | None:
    """Addresses with a WOZ value per level (no year): the dominance rule's largest share."""
    a = ctx.src.addresses
    if a is None:
        return None
    woz = a.where(F.col("woz_value_eur").isNotNull()).join(F.broadcast(ctx.hierarchy), "buurt_code")
    return _levels(woz, "woz_value_eur", regions=ctx.regions)


PassFunction = Callable[[PassContext], "DataFrame | None"]

# The registry's passes (zicht.features.registry.PASSES) and the helper passes, each a function
# from the sources to the rows its aggregates run over.
PASS_FUNCTIONS: Mapping[str, PassFunction] = {
    "incidents": _pass_incidents,
    "residence": _pass_residence,
    "dwellings": _pass_dwellings,
    "suspect_residence": _pass_suspect_residence,
    "suspect_households": _pass_suspect_households,
    "signals": _pass_signals,
    "company_addresses": _pass_company_addresses,
    "sales": _pass_sales,
    "purchase_income": _pass_purchase_income,
    "addresses": _pass_addresses,
    "areas": _pass_areas,
    "youth_ties": _pass_youth_ties,
    "incident_suspects": _pass_incident_suspects,
    "directors": _pass_directors,
    "journeys": _pass_journeys,
    "network": _pass_network,
    "woz": _pass_woz,
    **THEME_PASS_FUNCTIONS,
}
HELPER_PASSES = {"woz": "level"}
# The per-level passes whose rows carry the regio and studiegebied levels (they call _levels
# with the context's regions); any other per-level pass (the network stage's counts, the
# themes') has no row there, so its columns are null at those levels (not_applicable), never 0.
REGION_PASSES = frozenset({"incident_suspects", "directors", "journeys", "woz"})


def _grain(pass_: str) -> str:
    return registry.PASSES[pass_].grain if pass_ in registry.PASSES else HELPER_PASSES[pass_]


@dataclass(frozen=True)
class _Column:
    """One column of a pass's aggregate: the wide table's name and its aggregate."""

    name: str
    expr: str
    summed: bool = True  # counts and additive helpers; medians and shares are taken as they are


def _wanted_columns(
    live: Sequence[IndicatorSpec],
    derived: Sequence[IndicatorSpec],
    src: Sources,
    patterns: PatternSettings,
) -> dict[str, list[_Column]]:
    """The aggregates each pass computes, from the registry: pass -> columns."""
    fill = {f.name: getattr(patterns, f.name) for f in patterns.__dataclass_fields__.values()}
    out: dict[str, list[_Column]] = {}

    def add(pass_: str, col: _Column) -> None:
        cols = out.setdefault(pass_, [])
        if col.name not in {c.name for c in cols}:
            cols.append(col)

    for spec in live:
        count = _registered(spec)
        if count is None:
            continue
        layer = ""
        if "{L}" in count.pattern:
            prefix = count.pattern.split("{L}")[0]
            layer = spec.key[len(prefix) :]
        pass_, expr = count.pass_, count.expr
        if count.fallback is not None and src.population_from_areas:
            pass_, expr = count.fallback
        sector = spec.key.split(".")[1] if "{S}" in count.pattern else ""
        sql = expr.format(**fill, P=spec.phenomenon, L=layer, S=sector, key=spec.key)
        add(pass_, _Column(w(spec.key), sql))
    add("areas", _Column(w(LAND_KM2), "sum(land_area_ha) / 100.0"))
    for spec in derived:
        if spec.method == "mean_woz":
            add("addresses", _Column(w(WOZ_SUM), "coalesce(sum(woz_value_eur), 0)"))
            add(
                "woz",
                _Column(
                    WOZ_TOP_SHARE,
                    "max(woz_value_eur) / nullif(sum(woz_value_eur), 0)",
                    summed=False,
                ),
            )
        if spec.method == "magnitude_sum":
            m = registry.MAGNITUDES[spec.key]
            add(m.pass_, _Column(_sum_of(spec.key), m.total))
            add(m.pass_, _Column(_top_share_of(spec.key), m.top_share, summed=False))
        if spec.method == "median_distance_km" and spec.denominator:
            ph = spec.denominator.split(".", 1)[0]
            add(
                "journeys",
                _Column(
                    _median_of(spec.denominator),
                    f"percentile(if(phenomenon = '{ph}', distance_km, NULL), 0.5)",
                    summed=False,
                ),
            )
    return out


def _median_of(pairs_key: str) -> str:
    return f"_median_of__{w(pairs_key)}"


def _sum_of(key: str) -> str:
    return f"_sum_of__{w(key)}"


def _top_share_of(key: str) -> str:
    return f"_top_share_of__{w(key)}"


def _aggregate(rows: DataFrame, keys: Sequence[str], cols: Sequence[_Column]) -> DataFrame:
    return rows.groupBy(*keys).agg(*[F.expr(c.expr).cast("double").alias(c.name) for c in cols])


def _counts_wide(
    ctx: PassContext, columns: Mapping[str, list[_Column]]
) -> tuple[DataFrame, list[_Column]]:
    """The wide table of counts and helpers: level, area_code, year, one column each.

    Every buurt pass is aggregated per buurt and year (one aggregation per pass); the pass
    aggregates, each a few columns over at most buurten x years rows, are joined onto the buurt
    grid (every buurt in every year of the period) as broadcasts, and that one buurt table is
    summed up the hierarchy in one aggregation (each buurt placed in its wijk and gemeente).
    The per-level passes (one aggregation each) are joined onto the result as broadcasts. Every
    area of every level has a row; 0 where there is nothing to count.
    """
    made: list[_Column] = []
    summed: list[str] = []
    buurt = ctx.hierarchy.crossJoin(F.broadcast(ctx.years_df))
    levels: list[DataFrame] = []
    no_region: list[str] = []  # per-level columns without rows at the reference levels
    for pass_, cols in columns.items():
        rows = PASS_FUNCTIONS[pass_](ctx)
        if rows is None:
            continue
        made += cols
        static = "year" not in rows.columns
        names = [c.name for c in cols]
        by_buurt = _grain(pass_) == "buurt"
        if by_buurt:
            keys = ["buurt_code"] if static else ["buurt_code", "year"]
            summed += names
        else:
            keys = ["level", "area_code"] if static else KEYS
        agg = _aggregate(rows, keys, cols)
        if not static:
            agg = agg.select(*keys[:-1], F.col("year").cast("long"), *names)
        if by_buurt:
            buurt = buurt.join(F.broadcast(agg), keys, "left")
        else:
            levels.append(agg)
            if pass_ not in REGION_PASSES:
                no_region += names
    wide = _levels(buurt, "year", *summed, regions=ctx.regions)
    wide = wide.groupBy(*KEYS).agg(*[F.sum(c).alias(c) for c in summed])
    for agg in levels:
        keys = KEYS if "year" in agg.columns else ["level", "area_code"]
        wide = wide.join(F.broadcast(agg), keys, "left")
    wide = wide.fillna(0.0, subset=[c.name for c in made if c.summed])
    if ctx.regions is not None and no_region:
        above = F.col("level").isin(*REFERENCE_LEVELS)
        wide = wide.select(
            *[
                F.when(~above, F.col(c)).alias(c) if c in no_region else F.col(c)
                for c in wide.columns
            ]
        )
    return wide, made


# --------------------------------------------------------------------------- methods


def _gemeente_of(area_code: Column) -> Column:
    """GM code of any CBS area code (BU/WK/GM + 4 gemeente digits)."""
    return F.concat(F.lit("GM"), F.substring(area_code, 3, 4))


def _ratio(s: IndicatorSpec) -> Column:
    assert s.numerator is not None and s.denominator is not None
    num, den = F.col(w(s.numerator)), F.col(w(s.denominator))
    return F.when(den > 0, num / den * F.lit(UNITS[s.unit].scale))


def _median_distance(s: IndicatorSpec) -> Column:
    assert s.denominator is not None
    return F.col(_median_of(s.denominator))


def _mean_woz(s: IndicatorSpec) -> Column:
    assert s.denominator is not None
    den = F.col(w(s.denominator))
    return F.when(den > 0, F.col(w(WOZ_SUM)) / den)


def _density(s: IndicatorSpec) -> Column:
    assert s.numerator is not None
    land = F.col(w(LAND_KM2))
    return F.when(land > 0, F.col(w(s.numerator)) / land)


def _relative(s: IndicatorSpec) -> Column:
    assert s.numerator is not None and s.denominator is not None
    num, den = F.col(w(s.numerator)), F.col(w(s.denominator))
    p = "_g_" if s.method == "relative_gemeente" else "_t_"
    ref_num, ref_den = F.col(p + w(s.numerator)), F.col(p + w(s.denominator))
    ref = F.when(ref_den > 0, ref_num / ref_den)
    return F.when((den > 0) & (ref > 0), (num / den) / ref)


# Methods that are a column of the wide table (eb_smoothed and the composites need the whole
# level: with_smoothed, _with_composites). Checked against the registry by the tests.
METHOD_FUNCTIONS: Mapping[str, Callable[[IndicatorSpec], Column] | None] = {
    "median_distance_km": _median_distance,
    "mean_woz": _mean_woz,
    "density_per_km2": _density,
    "eb_smoothed": None,
    "relative_gemeente": _relative,
    "relative_study_area": _relative,
    "composite": None,
    "composite_class": None,
    "magnitude_sum": lambda s: F.col(_sum_of(s.key)),
}


def _with_methods(wide: DataFrame, specs: Sequence[IndicatorSpec]) -> DataFrame:
    """Add one column per non-count, non-composite spec to the wide table."""
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
    smoothed = {
        w(s.key): (w(s.numerator), w(s.denominator), UNITS[s.unit].scale)
        for s in specs
        if s.method == "eb_smoothed" and s.numerator and s.denominator
    }
    cols: list[Column] = []
    for s in specs:
        if s.method == "eb_smoothed":
            continue
        fn = METHOD_FUNCTIONS[s.method] if s.method else _ratio
        assert fn is not None, s.method
        cols.append(fn(s).cast("double").alias(w(s.key)))
    keep = [c for c in wide.columns if not c.startswith(("_gm", "_g_", "_t_"))]
    out = wide.select(*keep, *cols)
    return with_smoothed(out, smoothed) if smoothed else out


def _with_composites(wide: DataFrame, specs: Sequence[IndicatorSpec], w: Any) -> DataFrame:
    """Composite indices (0-100) and their classes (1..9), after every other column exists.

    ``composite``: the weighted mean of the components' percentile ranks among the areas of
    the same level and year (``percent_rank``: 0 for the lowest, 1 for the highest; an area
    without a value ranks lowest), times 100. Ranks, not raw values, so that no single rate
    with a long tail dominates and the weights mean what the catalogue says. ``composite_class``:
    the composite cut into nine equal bands, 1 = lowest ... 9 = highest concentration (labels
    deliberately neutral). A composite whose components are absent from the table is null, and
    so is one at a level with fewer than ``min_areas`` areas in the year (a rank among three
    gemeenten says nothing: not_applicable, not index 0 / class 1).
    """
    if not specs:
        return wide
    composites = [x for x in specs if x.method == "composite"]
    ranked = sorted(
        {w(c) for s in composites for c in s.components if w(c) in wide.columns} - {"_n_areas"}
    )
    if ranked:
        # the ranks on a narrow frame (keys and the ranked columns): each ordering sorts the
        # areas of a level and year, and sorting the wide rows would move every column
        per = Window.partitionBy("level", "year")
        ranks = wide.select(
            *KEYS,
            F.count(F.lit(1)).over(per).alias("_n_areas"),
            *[
                F.percent_rank().over(per.orderBy(F.col(c).asc_nulls_first())).alias(f"_rank_{c}")
                for c in ranked
            ],
        )
        wide = wide.join(F.broadcast(ranks), KEYS)
    for s in composites:
        present = [(c, wt) for c, wt in zip(s.components, s.weights, strict=True) if w(c) in ranked]
        total = sum(wt for _, wt in present)
        if not present or total <= 0:
            wide = wide.withColumn(w(s.key), F.lit(None).cast("double"))
            continue
        score: Column = F.lit(0.0)
        for c, wt in present:
            score = score + F.lit(wt / total) * F.col(f"_rank_{w(c)}")
        enough = F.col("_n_areas") >= s.min_areas
        wide = wide.withColumn(w(s.key), F.when(enough, F.round(score * 100.0, 6)))
    if ranked:
        wide = wide.drop("_n_areas", *[f"_rank_{c}" for c in ranked])
    for s in [x for x in specs if x.method == "composite_class"]:
        (c,) = s.components
        if w(c) not in wide.columns:
            wide = wide.withColumn(w(s.key), F.lit(None).cast("double"))
            continue
        band = F.ceil(F.col(w(c)) * N_CLASSES / 100.0)
        value = F.least(F.lit(N_CLASSES), F.greatest(F.lit(1), band)).cast("double")
        wide = wide.withColumn(w(s.key), F.when(F.col(w(c)).isNotNull(), value))
    return wide


# --------------------------------------------------------------------------- the stage


def build_indicators(
    src: Sources,
    *,
    years: Sequence[int],
    phenomena: Mapping[str, Phenomenon],
    specs: Sequence[IndicatorSpec],
    coverage: Mapping[str, CoverageSettings] | None = None,
    patterns: PatternSettings | None = None,
    checkpoint: Checkpoint | None = None,
    sectors: Mapping[str, tuple[str, ...]] | None = None,
    regions: Regions | None = None,
) -> IndicatorResult:
    """All catalogue indicators at every level and year, plus the buurt feature table.

    ``regions`` (``zicht.features.regions``): the levels regio and studiegebied as well, each
    computed from its own rows like the gemeente (none without it).

    ``checkpoint(df, name)`` cuts the query plan where a frame feeds several others: the
    frames several passes share (the suspects' homes, the companies' seats, the located sales),
    the counts (read by the rates and by the smoothing's and the relative rates' references)
    and the wide table (read by the cells, the area features and the magnitude contributors).
    The job passes one that writes to its staging folder and reads back; tests may pass
    ``DataFrame.localCheckpoint``. Without one, the plan is built whole and Spark recomputes
    what several branches read.
    """
    cut: Checkpoint = checkpoint or (lambda df, _name: df)
    patterns = patterns or PatternSettings()
    skipped = {
        **gated_indicators(specs, patterns, sectors or {}),
        **skipped_indicators(specs, src.available(), population=src.population),
    }
    live = [
        s for s in specs if s.key not in skipped and (not s.phenomenon or s.phenomenon in phenomena)
    ]
    counts_specs = [s for s in live if s.unit == "count"]
    derived_specs = [s for s in live if s.unit != "count"]
    count_keys = [s.key for s in counts_specs]

    spark = src.areas.sparkSession
    years_df = spark.createDataFrame([(int(y),) for y in years], "year long")
    ctx = PassContext(src, years_df, patterns, cut, sectors=dict(sectors or {}), regions=regions)
    columns = _wanted_columns(counts_specs, derived_specs, src, patterns)
    wide, made = _counts_wide(ctx, columns)
    missing = sorted({c.name for cols in columns.values() for c in cols} - {c.name for c in made})
    if missing:  # a live indicator whose pass had no rows: the registry and sources disagree
        raise ValueError(f"no pass made the columns {missing}")
    wide = cut(wide, "counts")
    composites = [s for s in derived_specs if s.method in COMPOSITE_METHODS]
    plain = [s for s in derived_specs if s.method not in COMPOSITE_METHODS]
    wide = _with_composites(_with_methods(wide, plain), composites, w)
    wide = cut(wide, "wide")
    all_keys = count_keys + [s.key for s in derived_specs]

    long = wide.unpivot(
        [F.col(k) for k in KEYS], [F.col(w(k)) for k in all_keys], "indicator", "value"
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
            inside = _gemeente_of(F.col("area_code")).isin(list(cov.gemeenten))
            if regions is not None:  # a region is covered when all its gemeenten are
                whole = [
                    r for r in regions.codes if set(regions.gemeenten(r)) <= set(cov.gemeenten)
                ]
                above = F.col("level").isin(*REFERENCE_LEVELS)
                inside = F.when(above, F.col("area_code").isin(whole)).otherwise(inside)
            outside = outside | ~inside
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
    return IndicatorResult(
        cells=cells,
        area_features=features,
        skipped=skipped,
        magnitude_contributors=_contributors(wide, derived_specs),
    )


def _contributors(wide: DataFrame, derived: Sequence[IndicatorSpec]) -> DataFrame | None:
    """level, area_code, year, indicator, n_units, top_n_share of every magnitude cell with a
    unit: the pairs behind a median distance, the addresses behind a mean WOZ value."""
    parts = []
    for s in derived:
        if s.method not in ("median_distance_km", "mean_woz", "magnitude_sum") or not s.denominator:
            continue
        share = F.col(WOZ_TOP_SHARE) if s.method == "mean_woz" else F.lit(None)
        if s.method == "magnitude_sum":
            share = F.col(_top_share_of(s.key))
        parts.append(
            wide.where(F.col(w(s.denominator)) > 0).select(
                "level",
                "area_code",
                F.col("year").cast("int").alias("year"),
                F.lit(s.key).alias("indicator"),
                F.col(w(s.denominator)).cast("long").alias("n_units"),
                share.cast("double").alias("top_n_share"),
            )  # fmt: skip
        )
    if not parts:
        return None
    return reduce(lambda a, b: a.unionByName(b), parts)


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
