"""Every catalogue indicator against values computed by hand on small inline frames.

The frames are the linked tables the indicator stage reads (DEVELOPERS.md), written out here:
four buurten in two gemeenten, one of them empty (BU00010201: no people, no addresses, no
incidents), one suspect who lives outside the study area (``x9``), and register rows placed on
the boundaries of every window and threshold. The expected numbers in the comments are worked
out from these rows by hand, not by the code under test. One ``build_indicators`` call serves
the full-input cases and one the partial-input cases (Spark start-up and jobs dominate).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from zicht.features.indicators import Sources, build_indicators, skipped_indicators
from zicht.features.settings import PatternSettings
from zicht.jobs.config import load_settings

pytestmark = pytest.mark.spark

D = dt.date
B1, B2, B3, B4 = "BU00010101", "BU00010102", "BU00010201", "BU00020101"
W1, W2, W3 = "WK000101", "WK000102", "WK000201"
G1, G2 = "GM0001", "GM0002"
WIJK = {B1: W1, B2: W1, B3: W2, B4: W3}
GEM = {B1: G1, B2: G1, B3: G1, B4: G2}
YEAR = 2024
PATTERNS = PatternSettings(
    cash_intensive_sbi=("5610", "4511"),
    min_companies_per_address=2,
    min_companies_per_director=2,
    director_roles=("bestuurder",),
    min_adults_per_dwelling=3,
    min_resales=5,
    resale_window_years=20,
    max_price_to_income=10.0,
    churn_window_years=2,
)

AREAS = pd.DataFrame(
    [
        (B1, "Een", W1, "W een", G1, "G een", 100000.0, 400000.0, 100.0, None, 70),
        (B2, "Twee", W1, "W een", G1, "G een", 103000.0, 400000.0, 50.0, None, 20),
        (B3, "Drie", W2, "W twee", G1, "G een", 100000.0, 404000.0, 200.0, None, 0),
        (B4, "Vier", W3, "W drie", G2, "G twee", 110000.0, 400000.0, 100.0, None, 10),
    ],
    columns=[
        "buurt_code",
        "buurt_name",
        "wijk_code",
        "wijk_name",
        "gemeente_code",
        "gemeente_name",
        "x",
        "y",
        "land_area_ha",
        "geometry_wkt",
        "inhabitants",
    ],
)
AREAS_SCHEMA = (
    "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
    "gemeente_code string, gemeente_name string, x double, y double, land_area_ha double, "
    "geometry_wkt string, inhabitants long"
)

# incident_id, buurt, x, y, phenomena
INCIDENTS = [
    ("i1", B1, 100000.0, 400000.0, ["drugs"]),
    ("i2", B1, 100000.0, 401000.0, ["drugs"]),
    ("i3", B2, 103000.0, 400000.0, ["drugs"]),
    ("i4", B4, 110000.0, 400000.0, ["drugs"]),
    ("i5", B2, 103000.0, 400000.0, ["geweld"]),
    ("i6", B1, 100000.0, 400000.0, []),  # a bicycle theft: in no phenomenon
]
SUSPECTS = [
    ("i1", "p1"),
    ("i2", "p1"),
    ("i1", "p2"),
    ("i3", "p2"),
    ("i3", "p3"),
    ("i5", "p3"),
    ("i1", "x9"),  # x9 lives outside the study area: in no persons table
    ("i4", "x9"),
    ("i6", "p4"),
]
# person, buurt, birth_year, address, household, registered_since
PERSONS = [
    ("p1", B1, 1980, "a1", "h1", D(2010, 1, 1)),
    ("p4", B1, 2008, "a1", "h1", D(2010, 1, 1)),  # 16: young, suspect (i6)
    ("p5", B1, 2010, "a1", "h1", D(2010, 1, 1)),  # 14: young, in a household with suspects
    ("p6", B1, 1990, "a2", "h2", D(2024, 6, 1)),  # a recent mover
    ("p7", B1, 2005, "a2", "h2", D(2010, 1, 1)),  # 19: young, household without suspect
    ("p9", B1, 1970, "a2", "h5", D(2023, 12, 31)),  # exactly one year: not recent
    ("p10", B1, 1975, "a2", "h6", D(2010, 1, 1)),
    ("p2", B2, 1985, "a4", "h3", D(2010, 1, 1)),
    ("p8", B2, 2012, "a4", "h3", D(2010, 1, 1)),  # 12: young, household with suspect p2
    ("p3", B4, 1970, "a6", "h4", D(2010, 1, 1)),
]
# address, buurt, use_type, woz
ADDRESSES = [
    ("a1", B1, "woonfunctie", 200000),
    ("a2", B1, "woonfunctie", 300000),
    ("a3", B1, "winkelfunctie", None),
    ("a4", B2, "woonfunctie", 100000),
    ("a5", B2, "kantoorfunctie", 900000),  # dominates B2's WOZ sum (90 %)
    ("a6", B4, "woonfunctie", 250000),
]
COMPANIES = [
    ("c1", "56101", "bv", "a3", D(2015, 1, 1), None),  # cash (prefix 5610), active
    ("c2", "6201", "bv", "a3", D(2023, 6, 1), None),  # registered in the churn window
    ("c3", "9602", "bv", "a3", D(2010, 1, 1), D(2023, 3, 1)),  # deregistered in the window
    ("c4", "4511", "bv", "a5", D(2000, 1, 1), None),  # cash, active
    ("c5", "7022", "bv", "a5", D(2000, 1, 1), D(2020, 1, 1)),  # gone before the window
    ("c6", "5610", "bv", None, D(2000, 1, 1), None),  # no address: in no area
]
ROLES = [
    ("c1", "d1", "bestuurder", D(2015, 1, 1), None),
    ("c4", "d1", "bestuurder", D(2000, 1, 1), None),
    ("c5", "d1", "bestuurder", D(2000, 1, 1), None),  # c5 is not active in 2024
    ("c2", "d2", "bestuurder", D(2023, 6, 1), None),
    ("c1", "d2", "aandeelhouder", D(2015, 1, 1), None),  # not a director role
    ("c2", "d3", "bestuurder", D(2023, 6, 1), D(2023, 12, 31)),  # ended before 2024
    ("c1", "d3", "bestuurder", D(2015, 1, 1), None),
]
TRANSACTIONS = [
    # a1: five sales within 2005..2024 -> a doorsluiswoning in 2024
    ("t1", "a1", D(2006, 1, 1), 150000, "q1", "person"),
    ("t2", "a1", D(2010, 1, 1), 160000, "q2", "person"),
    ("t3", "a1", D(2015, 1, 1), 170000, "q3", "person"),
    ("t4", "a1", D(2020, 1, 1), 180000, "q4", "person"),
    ("t5", "a1", D(2024, 3, 1), 400000, "p6", "person"),  # 400k > 10 x 30k: unexplained
    # a2: the first of five sales falls just outside the twenty-year window
    ("t6", "a2", D(2004, 12, 31), 100000, "q5", "person"),
    ("t7", "a2", D(2008, 1, 1), 110000, "q6", "person"),
    ("t8", "a2", D(2012, 1, 1), 120000, "q7", "person"),
    ("t9", "a2", D(2016, 1, 1), 130000, "q8", "person"),
    ("t10", "a2", D(2024, 5, 1), 300000, "c2", "company"),
    ("t11", "a4", D(2024, 7, 1), 200000, None, "unknown"),
    ("t12", "a4", D(2024, 8, 1), 200000, "p2", "person"),  # 200k <= 10 x 50k: explained
    ("t13", "a5", D(2024, 9, 1), 800000, "c1", "foundation"),
    ("t14", "a6", D(2024, 10, 1), 250000, "x9", "person"),  # buyer not registered: no income
]
INCOME = [("h2", 2024, 30000), ("h2", 2023, 99999), ("h3", 2024, 50000)]


def _sources(spark, *, full: bool) -> Sources:
    areas = spark.createDataFrame(AREAS, AREAS_SCHEMA)
    inc = spark.createDataFrame(
        [
            (i, D(YEAR, 5, 1), YEAR, "X", None, b, WIJK[b], GEM[b], x, y, ph)
            for i, b, x, y, ph in INCIDENTS
        ],
        "incident_id string, incident_date date, year int, crime_code string, "
        "crime_class string, buurt_code string, wijk_code string, gemeente_code string, "
        "x double, y double, phenomena array<string>",
    )
    if not full:
        return Sources(areas=areas, incidents=inc, areas_have_inhabitants=True)
    residence = spark.createDataFrame(
        [(p, YEAR, b, WIJK[b], GEM[b], by, a, h, r) for p, b, by, a, h, r in PERSONS],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long, address_id string, household_id string, "
        "registered_since date",
    )
    return Sources(
        areas=areas,
        incidents=inc,
        suspects=spark.createDataFrame(SUSPECTS, "incident_id string, person_id string"),
        residence=residence,
        addresses=spark.createDataFrame(
            [(a, b, u, 80, w) for a, b, u, w in ADDRESSES],
            "address_id string, buurt_code string, use_type string, floor_area_m2 long, "
            "woz_value_eur long",
        ),
        companies=spark.createDataFrame(
            COMPANIES,
            "company_id string, sbi_code string, legal_form string, address_id string, "
            "registered_date date, deregistered_date date",
        ),
        company_roles=spark.createDataFrame(
            ROLES,
            "company_id string, person_id string, role string, start_date date, end_date date",
        ),
        property_transactions=spark.createDataFrame(
            TRANSACTIONS,
            "transaction_id string, address_id string, transaction_date date, price_eur long, "
            "buyer_id string, buyer_kind string",
        ),
        household_income=spark.createDataFrame(
            INCOME, "household_id string, year long, disposable_income_eur long"
        ),
    )


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def _build(spark, settings, *, full: bool):
    return build_indicators(
        _sources(spark, full=full),
        years=[YEAR],
        phenomena=settings.phenomena,
        specs=settings.indicators,
        patterns=PATTERNS,
        sectors=settings.sectors,
        # cut the plan as the job does (Catalyst's planning time grows with the plan)
        checkpoint=lambda df, _name: df.localCheckpoint(),
    )


@pytest.fixture(scope="module")
def full(spark, settings):
    result = _build(spark, settings, full=True)
    cells = result.cells.toPandas()
    contributors = result.magnitude_contributors.toPandas()
    return result, cells, contributors


def cell(cells: pd.DataFrame, area: str, indicator: str) -> tuple[float, str]:
    row = cells[(cells["area_code"] == area) & (cells["indicator"] == indicator)]
    assert len(row) == 1, (area, indicator, len(row))
    return row["value"].iloc[0], row["status"].iloc[0]


def value(cells: pd.DataFrame, area: str, indicator: str) -> float:
    v, status = cell(cells, area, indicator)
    assert status == "ok", (area, indicator, status)
    return float(v)


def check(cells: pd.DataFrame, indicator: str, expected: dict[str, float]) -> None:
    got = {a: value(cells, a, indicator) for a in expected}
    assert got == pytest.approx(expected), indicator


def test_every_live_indicator_has_one_cell_per_area(full, settings) -> None:
    result, cells, _ = full
    live = [s.key for s in settings.indicators if s.key not in result.skipped]
    assert set(cells["indicator"]) == set(live)
    assert len(cells) == len(live) * 9  # 4 buurten, 3 wijken, 2 gemeenten
    assert not cells.duplicated(["level", "area_code", "year", "indicator"]).any()
    # signals are absent here, and the network's rootedness counts are not passed in
    network_made = {
        s.key
        for s in settings.indicators
        if {"network", "person_links"} & {x for src in s.sources for x in src.split("|")}
    }
    assert network_made >= {"network.cooffending_ties", "context.youth_ties_familie"}
    # issue 19's tables are absent here (tests/test_themes.py has them)
    themes = {
        s.key for s in settings.indicators if {"unusual_transactions", "ownership"} & set(s.sources)
    }
    assert (
        set(result.skipped)
        == {
            f"{p}.{k}"
            for p in settings.phenomena
            for k in ("signals", "signals_per_1000_addresses")
        }
        | network_made
        | themes
    )


def test_context_counts_and_hierarchy_sums(full) -> None:
    _, cells, _ = full
    check(cells, "context.inhabitants", {B1: 7, B2: 2, B3: 0, B4: 1, W1: 9, W2: 0, G1: 9, G2: 1})
    check(cells, "context.inhabitants_12plus", {B1: 7, B2: 2, B4: 1, G1: 9})
    check(cells, "context.households", {B1: 4, B2: 1, B3: 0, W1: 5, G1: 5})
    check(cells, "context.recent_movers", {B1: 1, B2: 0, G1: 1})
    check(cells, "context.residential_mobility", {B1: 1 / 7, B2: 0.0, G1: 1 / 9})
    check(cells, "context.addresses", {B1: 3, B2: 2, B3: 0, B4: 1, W1: 5, G1: 5, G2: 1})
    check(cells, "context.dwellings", {B1: 2, B2: 1, B3: 0, W1: 3})
    check(cells, "context.business_units", {B1: 1, B2: 1, B3: 0, W1: 2})
    check(cells, "context.nonresidential_share", {B1: 1 / 3, B2: 0.5, W1: 0.4, G2: 0.0})
    check(cells, "context.woz_units", {B1: 2, B2: 2, W1: 4})
    check(
        cells,
        "context.mean_woz_eur",
        {B1: 250000, B2: 500000, W1: 375000, G1: 375000, G2: 250000},
    )
    # inhabitants per km2: land_area_ha / 100
    check(cells, "context.density_per_km2", {B1: 7.0, B2: 4.0, B3: 0.0, W1: 6.0, G1: 9 / 3.5})


def test_empty_area_is_zero_and_undefined_ratios_not_applicable(full) -> None:
    _, cells, _ = full
    for ind in ("drugs.incidents", "context.addresses", "context.companies", "drugs.suspects"):
        assert cell(cells, B3, ind) == (0.0, "ok"), ind
    for ind in (
        "context.mean_woz_eur",
        "context.nonresidential_share",
        "drugs.incidents_per_1000",
        "drugs.journey_to_crime_km",
        "drugs.local_suspect_share",
    ):
        v, status = cell(cells, B3, ind)
        assert status == "not_applicable" and pd.isna(v), ind


def test_phenomenon_counts_with_a_suspect_living_outside(full) -> None:
    _, cells, _ = full
    check(cells, "drugs.incidents", {B1: 2, B2: 1, B4: 1, W1: 3, G1: 3, G2: 1})
    check(cells, "drugs.resident_suspects", {B1: 1, B2: 1, B4: 1, G1: 2, G2: 1})
    # suspects of incidents in the area, wherever they live: x9 counts, p2 once in the wijk
    check(cells, "drugs.suspects", {B1: 3, B2: 2, B4: 1, W1: 4, G1: 4, G2: 1})
    check(cells, "drugs.local_suspects", {B1: 1, B2: 1, B4: 0, W1: 2, G1: 2, G2: 0})
    check(cells, "drugs.local_suspect_share", {B1: 1 / 3, B2: 0.5, W1: 0.5, G2: 0.0})
    # two or more drug incidents in the year: p1, p2 and x9, not p3
    check(cells, "drugs.repeat_suspects", {B1: 3, B2: 1, B4: 1, W1: 3, G1: 3})
    check(cells, "drugs.repeat_suspect_share", {B1: 1.0, B2: 0.5, W1: 0.75, G2: 1.0})
    check(cells, "drugs.incidents_per_1000", {B1: 2 / 7 * 1000, W1: 3 / 9 * 1000})
    check(cells, "drugs.resident_suspects_per_1000", {B1: 1 / 7 * 1000, G2: 1000.0})
    check(cells, "geweld.suspects", {B2: 1, B1: 0})
    check(cells, "geweld.journey_to_crime_km", {B2: 7.0})


def test_journey_to_crime(full) -> None:
    _, cells, contributors = full
    # pairs with a residence: (i1,p1) 0 km, (i2,p1) 1 km, (i1,p2) 3 km in B1; (i3,p2) 0 km and
    # (i3,p3) 7 km in B2; x9 has no residence and is left out
    check(cells, "drugs.journey_pairs", {B1: 3, B2: 2, B4: 0, W1: 5, G1: 5, G2: 0})
    check(cells, "drugs.journey_to_crime_km", {B1: 1.0, B2: 3.5, W1: 1.0, G1: 1.0})
    assert cell(cells, B4, "drugs.journey_to_crime_km")[1] == "not_applicable"
    n = contributors.set_index(["area_code", "indicator"])["n_units"]
    assert n[(B1, "drugs.journey_to_crime_km")] == 3
    assert n[(W1, "drugs.journey_to_crime_km")] == 5
    share = contributors.set_index(["area_code", "indicator"])["top_n_share"]
    assert share[(B2, "context.mean_woz_eur")] == pytest.approx(0.9)
    assert n[(W1, "context.mean_woz_eur")] == 4


def test_youth(full) -> None:
    _, cells, _ = full
    check(cells, "context.young_residents", {B1: 3, B2: 1, B4: 0, W1: 4})
    check(cells, "context.young_suspects", {B1: 1, B2: 0, W1: 1})
    check(cells, "context.young_suspect_share", {B1: 1 / 3, B2: 0.0, W1: 0.25})
    # p4 lives with suspect p1, p5 with p1 and p4, p8 with p2; p7's household has none
    check(cells, "context.young_in_suspect_household", {B1: 2, B2: 1, W1: 3, G1: 3})
    check(cells, "context.young_in_suspect_household_share", {B1: 2 / 3, B2: 1.0})
    assert cell(cells, B4, "context.young_suspect_share")[1] == "not_applicable"


def test_register_patterns(full) -> None:
    _, cells, _ = full
    check(cells, "context.companies", {B1: 2, B2: 1, B4: 0, W1: 3})
    check(cells, "context.companies_churn_window", {B1: 3, B2: 1, W1: 4})
    check(cells, "witwassen.company_churn", {B1: 2, B2: 0, W1: 2})
    check(cells, "witwassen.company_churn_share", {B1: 2 / 3, B2: 0.0, W1: 0.5})
    check(cells, "witwassen.cash_intensive_companies", {B1: 1, B2: 1, W1: 2, G2: 0})
    check(
        cells,
        "witwassen.cash_intensive_companies_per_1000_addresses",
        {B1: 1000 / 3, B2: 500.0, W1: 400.0},
    )
    # d1 directs c1 (B1) and c4 (B2): one person, counted in each buurt and once in the wijk
    check(cells, "witwassen.many_company_directors", {B1: 1, B2: 1, W1: 1, G1: 1, G2: 0})
    check(cells, "witwassen.many_company_directors_per_1000_companies", {B1: 500.0, W1: 1000 / 3})
    check(cells, "vastgoedfraude.many_company_addresses", {B1: 1, B2: 0, G1: 1})
    # B1's two active companies share that address; B2's one company is alone at its address
    check(cells, "vastgoedfraude.companies_at_many_company_addresses", {B1: 2, B2: 0, G1: 2})
    check(
        cells,
        "vastgoedfraude.companies_at_many_company_addresses_share",
        {B1: 1.0, B2: 0.0, W1: 2 / 3},
    )
    check(cells, "vastgoedfraude.doorsluiswoningen", {B1: 1, B2: 0, G1: 1})
    check(cells, "vastgoedfraude.doorsluiswoningen_per_1000_dwellings", {B1: 500.0, W1: 1000 / 3})
    check(cells, "vastgoedfraude.purchases", {B1: 2, B2: 3, B4: 1, W1: 5, G1: 5})
    check(cells, "vastgoedfraude.non_person_purchases", {B1: 1, B2: 2, B4: 0, W1: 3})
    check(cells, "vastgoedfraude.non_person_purchase_share", {B1: 0.5, B2: 2 / 3, B4: 0.0})
    check(cells, "witwassen.person_purchases_with_income", {B1: 1, B2: 1, B4: 0, G1: 2})
    check(cells, "witwassen.unexplained_purchases", {B1: 1, B2: 0, G1: 1})
    check(cells, "witwassen.unexplained_purchase_share", {B1: 1.0, B2: 0.0, G1: 0.5})
    check(cells, "mensenhandel.overbewoning_dwellings", {B1: 1, B2: 0, G1: 1})


def test_relative_and_smoothed_rates(full) -> None:
    _, cells, _ = full
    # drugs: B1 2/7, gemeente G1 3/9, study area 4/10 incidents per inhabitant
    check(cells, "drugs.incidents_per_1000_vs_gemeente", {B1: (2 / 7) / (3 / 9), G1: 1.0})
    check(cells, "drugs.incidents_per_1000_vs_study_area", {B1: (2 / 7) / 0.4, G2: 1 / 0.4})
    # Marshall's global empirical Bayes over the buurten with inhabitants (B1, B2, B4: 2/7, 1/2,
    # 1/1), by hand: b = 4/10; s2 = (7 (2/7 - 0.4)^2 + 2 (0.1)^2 + 0.6^2) / 10 = 0.0471;
    # s2 - b / mean(n) < 0, so the floor b / median(n) = 0.4 / 2 = 0.2 is the prior variance;
    # w_i = 0.2 / (0.2 + 0.4 / n_i) = 7/9, 1/2, 1/3
    expected = {
        B1: (7 / 9 * 2 / 7 + 2 / 9 * 0.4) * 1000,  # 311.1
        B2: (0.5 * 0.5 + 0.5 * 0.4) * 1000,  # 450
        B4: (1 / 3 * 1.0 + 2 / 3 * 0.4) * 1000,  # 600
    }
    check(cells, "drugs.incidents_per_1000_smoothed", expected)
    assert cell(cells, B3, "drugs.incidents_per_1000_smoothed")[1] == "not_applicable"


def test_partial_inputs_are_skipped_with_reason(spark, settings) -> None:
    skipped = skipped_indicators(settings.indicators, {"areas", "incidents", "areas.inhabitants"})
    assert skipped["context.households"] == "table persons is absent"
    assert skipped["witwassen.cash_intensive_companies"] == "table companies is absent"
    assert skipped["witwassen.unexplained_purchases"] == "table property_transactions is absent"
    assert skipped["context.mean_woz_eur"] == "table addresses is absent"
    assert skipped["drugs.journey_to_crime_km"] == "table suspects is absent"
    assert skipped["vastgoedfraude.doorsluiswoningen_per_1000_dwellings"].startswith(
        "table property_transactions"
    )
    assert "drugs.incidents_per_1000" not in skipped
    assert "context.density_per_km2" not in skipped

    result = _build(spark, settings, full=False)
    assert dict(result.skipped) == skipped
    cells = result.cells.toPandas()
    assert set(cells["indicator"]).isdisjoint(skipped)
    # denominators fall back to areas.inhabitants
    check(cells, "context.inhabitants", {B1: 70, B2: 20, B3: 0, W1: 90, G1: 90})
    check(cells, "drugs.incidents_per_1000", {B1: 2 / 70 * 1000, W1: 3 / 90 * 1000})
    check(cells, "context.density_per_km2", {B1: 70.0, G1: 90 / 3.5})
    assert result.magnitude_contributors is None


def test_composite_index_and_classes(spark) -> None:
    """Weighted mean of percentile ranks per level and year (reference: pandas' rank), an area
    without a value ranking lowest, a missing component reweighting the rest, nine bands."""
    from zicht.features.indicators import _with_composites
    from zicht.features.settings import IndicatorSpec

    pdf = pd.DataFrame(
        {
            "level": ["buurt"] * 5 + ["wijk"] * 2,
            "area_code": ["B1", "B2", "B3", "B4", "B5", "W1", "W2"],
            "year": [2024] * 7,
            "a": [1.0, 5.0, 3.0, None, 3.0, 2.0, 1.0],
            "b": [10.0, 0.0, 20.0, 5.0, 30.0, 1.0, 2.0],
        }
    )
    specs = [
        IndicatorSpec(
            "x.idx", "x", "index", "d", components=("a", "b", "gone"), weights=(0.6, 0.2, 0.2),
            method="composite", min_areas=2,
        ),
        IndicatorSpec("x.cls", "x", "class", "d", components=("x.idx",), method="composite_class"),
    ]  # fmt: skip
    got = (
        _with_composites(spark.createDataFrame(pdf), specs, lambda k: k.replace(".", "__"))
        .toPandas()
        .set_index("area_code")
    )
    ref = pdf.set_index("area_code").copy()
    for col in ("a", "b"):
        r = ref.groupby("level")[col].rank(method="min", na_option="top")
        n = ref.groupby("level")[col].transform("size")
        ref[f"r_{col}"] = (r - 1) / (n - 1)
    # "gone" is absent: its weight drops out and a, b are reweighted to 0.75 / 0.25
    expected = (0.75 * ref["r_a"] + 0.25 * ref["r_b"]) * 100
    pd.testing.assert_series_equal(
        got["x__idx"].sort_index(), expected.sort_index(), check_names=False, atol=1e-6
    )
    classes = np.clip(np.ceil(expected * 9 / 100), 1, 9)
    pd.testing.assert_series_equal(
        got["x__cls"].sort_index(), classes.sort_index(), check_names=False
    )
    assert got.loc["B4", "x__idx"] < got.loc["B3", "x__idx"]  # no value ranks lowest

    # the default min_areas (5): the two wijken get no index and no class (not_applicable),
    # the five buurten keep theirs
    default = [dataclasses.replace(specs[0], min_areas=5), specs[1]]
    got5 = (
        _with_composites(spark.createDataFrame(pdf), default, lambda k: k.replace(".", "__"))
        .toPandas()
        .set_index("area_code")
    )
    assert got5.loc[["W1", "W2"], ["x__idx", "x__cls"]].isna().all().all()
    buurten = ["B1", "B2", "B3", "B4", "B5"]
    pd.testing.assert_frame_equal(
        got5.loc[buurten, ["x__idx", "x__cls"]], got.loc[buurten, ["x__idx", "x__cls"]]
    )
