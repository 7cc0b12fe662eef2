"""Issue 19's indicators against values worked out by hand on small inline frames.

Four buurten in two gemeenten (B1, B2 in wijk W1 and B3 in W2 of G1; B4 in W3 of G2), the year
2024. Suspicious transactions placed by address, residence or seat (a subject living outside
and a report of another year count nowhere); ownership with a low-income owner of three
dwellings, a DECOY high-income owner of three, a housing corporation whose pseudonym happens to
be in the register with a low income (it must never count), unknown owners and a period that
ended; sectors with churn and a suspect in a holiday park company. The expected cells in the
comments come from these rows, not from the code under test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from zicht.features.indicators import Sources, build_indicators
from zicht.features.settings import ConfigError, PatternSettings, UnexplainedOwnershipSettings
from zicht.features.themes import GATE_REASON, gated_indicators
from zicht.jobs.config import load_settings

pytestmark = pytest.mark.spark

D = dt.date
YEAR = 2024
B1, B2, B3, B4 = "BU00010101", "BU00010102", "BU00010201", "BU00020101"
W1, W2, W3 = "WK000101", "WK000102", "WK000201"
G1, G2 = "GM0001", "GM0002"
WIJK = {B1: W1, B2: W1, B3: W2, B4: W3}
GEM = {B1: G1, B2: G1, B3: G1, B4: G2}
LEVEL = {**{b: "buurt" for b in WIJK}, W1: "wijk", W2: "wijk", W3: "wijk", G1: "gemeente",
         G2: "gemeente"}  # fmt: skip

# address, buurt, use, woz
ADDRESSES = [
    ("a1", B1, "woonfunctie", 300000),
    ("a2", B1, "woonfunctie", 300000),
    ("a3", B2, "woonfunctie", 200000),
    ("a4", B2, "woonfunctie", 200000),
    ("a5", B2, "winkelfunctie", 500000),
    ("a6", B4, "woonfunctie", 250000),
    ("a7", B4, "logiesfunctie", None),
    ("a8", B3, "logiesfunctie", None),
    ("a9", B2, "woonfunctie", 200000),
    ("a10", B3, "woonfunctie", 100000),
    ("a11", B2, "woonfunctie", 150000),
]
# person, buurt, address, household (residence in 2024)
RESIDENCE = [
    ("p1", B1, "a1", "h1"),  # low income, owns three dwellings
    ("p2", B2, "a3", "h2"),  # DECOY: high income, owns three dwellings
    ("p3", B4, "a7", "h3"),  # lives at a logiesfunctie address
    ("p4", B4, "a7", "h3"),
    ("p5", B1, "a2", "h5"),
    ("hc1", B3, "a10", "h4"),  # a housing corporation's pseudonym met in the register
]
INCOME = [("h1", 20000), ("h2", 200000), ("h4", 10000)]
# transaction, report date, amount, subject, kind, address
FIU = [
    ("u1", D(2024, 3, 1), 1000, "p1", "person", None),  # at p1's home, B1
    ("u1", D(2024, 3, 1), 1000, "c1", "company", None),  # at c1's seat a5, B2
    ("u2", D(2024, 4, 1), 5000, "p1", "person", "a6"),  # at its address, B4
    ("u3", D(2024, 5, 1), 300, "p5", "person", None),  # B1
    ("u4", D(2024, 6, 1), 700, "x9", "person", None),  # x9 lives outside: nowhere
    ("u5", D(2023, 6, 1), 900, "p1", "person", None),  # another year
]
# ownership, address, owner, kind, share, from, to
OWNERSHIP = [
    ("o1", "a1", "p1", "person", 1.0, D(2020, 1, 1), None),
    ("o2", "a3", "p1", "person", 0.5, D(2021, 1, 1), None),
    ("o3", "a6", "p1", "person", 1.0, D(2019, 1, 1), None),
    # p1: 300k + 0.5 x 200k + 250k = 650k > 20 x 20k = 400k: unexplained (a1, a3, a6)
    ("o4", "a3", "p2", "person", 0.5, D(2021, 1, 1), None),
    ("o5", "a4", "p2", "person", 1.0, D(2015, 1, 1), None),
    ("o6", "a2", "p2", "person", 1.0, D(2015, 1, 1), None),
    # p2 (decoy): 100k + 200k + 300k = 600k <= 20 x 200k: explained (a2 and a4 do not count)
    ("o7", "a9", "hc1", "housing_corporation", 1.0, D(2000, 1, 1), None),
    ("o8", "a11", "hc1", "housing_corporation", 1.0, D(2000, 1, 1), None),
    # hc1 as a person would be 350k > 20 x 10k: only its kind keeps a9 and a11 out
    ("o9", "a10", None, "unknown", 1.0, D(2022, 1, 1), None),  # unknown owner, B3
    ("o10", "a1", None, "person", 0.5, D(2024, 6, 1), None),  # owner_id missing: unknown, B1
    ("o11", "a5", None, "unknown", 1.0, D(2022, 1, 1), None),  # a shop: not a dwelling
    ("o12", "a4", "q1", "unknown", 1.0, D(2010, 1, 1), D(2023, 12, 31)),  # ended before 2024
]
# company, sbi, address, registered, deregistered
COMPANIES = [
    ("c1", "8610", "a5", D(2010, 1, 1), None),  # zorg, B2
    ("c2", "8710", "a5", D(2024, 2, 1), None),  # zorg, new in 2024, B2
    ("c3", "88101", "a1", D(2015, 1, 1), D(2024, 5, 1)),  # zorg, ended in 2024, B1
    ("c4", "86", "a1", D(2010, 1, 1), D(2023, 1, 1)),  # zorg, gone before 2024
    ("c5", "5520", "a7", D(2020, 1, 1), None),  # vakantieparken, B4, suspect owner
    ("c6", "55301", "a7", D(2024, 3, 1), None),  # vakantieparken, new, B4
    ("c7", "5610", "a5", D(2020, 1, 1), None),  # cash_intensive, B2
    ("c8", "8610", None, D(2010, 1, 1), None),  # no address: in no area
    ("c9", "4711", "a1", D(2010, 1, 1), None),  # in no sector
]
ROLES = [
    ("c5", "s1", "eigenaar", D(2019, 1, 1), None),  # s1: drugs suspect in 2024
    ("c1", "s2", "bestuurder", D(2010, 1, 1), None),  # s2: suspect of a bicycle theft only
    ("c2", "s1", "aandeelhouder", D(2024, 2, 1), None),  # not an owner or director role
    ("c3", "s1", "bestuurder", D(2015, 1, 1), D(2023, 12, 31)),  # ended before 2024
    ("c7", "s3", "vennoot", D(2020, 1, 1), None),  # s3: suspect in 2023 only
]
# incident, year, buurt, phenomena; suspects
INCIDENTS = [("i1", 2024, B1, ["drugs"]), ("i2", 2024, B2, []), ("i3", 2023, B2, ["drugs"])]
SUSPECTS = [("i1", "s1"), ("i2", "s2"), ("i3", "s3")]

MINE = (
    "witwassen.fiu_suspicious_transactions",
    "witwassen.fiu_subjects",
    "witwassen.fiu_amount_eur",
    "vastgoedfraude.unknown_owner_dwellings",
    "vastgoedfraude.unexplained_ownership_dwellings",
    "sector.",
)
ENABLED = dataclasses.replace(
    PatternSettings(),
    unexplained_ownership=UnexplainedOwnershipSettings(enabled=True, legal_basis="test"),
)


def _sources(spark) -> Sources:
    areas = spark.createDataFrame(
        [
            (b, b, WIJK[b], WIJK[b], GEM[b], GEM[b], 100000.0 + i, 400000.0, 100.0)
            for i, b in enumerate(WIJK)
        ],
        "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
        "gemeente_code string, gemeente_name string, x double, y double, land_area_ha double",
    )
    incidents = spark.createDataFrame(
        [
            (i, D(y, 5, 1), y, "X", None, b, WIJK[b], GEM[b], 100000.0, 400000.0, ph)
            for i, y, b, ph in INCIDENTS
        ],
        "incident_id string, incident_date date, year int, crime_code string, "
        "crime_class string, buurt_code string, wijk_code string, gemeente_code string, "
        "x double, y double, phenomena array<string>",
    )
    return Sources(
        areas=areas,
        incidents=incidents,
        suspects=spark.createDataFrame(SUSPECTS, "incident_id string, person_id string"),
        residence=spark.createDataFrame(
            [(p, YEAR, b, WIJK[b], GEM[b], 1980, a, h, D(2010, 1, 1)) for p, b, a, h in RESIDENCE],
            "person_id string, year long, buurt_code string, wijk_code string, "
            "gemeente_code string, birth_year long, address_id string, household_id string, "
            "registered_since date",
        ),
        addresses=spark.createDataFrame(
            [(a, b, u, 80, w) for a, b, u, w in ADDRESSES],
            "address_id string, buurt_code string, use_type string, floor_area_m2 long, "
            "woz_value_eur long",
        ),
        companies=spark.createDataFrame(
            [(c, s, "bv", a, r, d) for c, s, a, r, d in COMPANIES],
            "company_id string, sbi_code string, legal_form string, address_id string, "
            "registered_date date, deregistered_date date",
        ),
        company_roles=spark.createDataFrame(
            ROLES,
            "company_id string, person_id string, role string, start_date date, end_date date",
        ),
        household_income=spark.createDataFrame(
            [(h, YEAR, v) for h, v in INCOME],
            "household_id string, year long, disposable_income_eur long",
        ),
        unusual_transactions=spark.createDataFrame(
            [(t, d, a, s, k, "verdacht", ad) for t, d, a, s, k, ad in FIU],
            "transaction_id string, report_date date, amount_eur long, subject_id string, "
            "subject_kind string, status string, address_id string",
        ),
        ownership=spark.createDataFrame(
            OWNERSHIP,
            "ownership_id string, address_id string, owner_id string, owner_kind string, "
            "share double, from_date date, to_date date",
        ),
    )


@pytest.fixture(scope="module")
def settings():
    return load_settings()


@pytest.fixture(scope="module")
def built(spark, settings):
    specs = [s for s in settings.indicators if s.key.startswith(MINE)]
    result = build_indicators(
        _sources(spark),
        years=[YEAR],
        phenomena=settings.phenomena,
        specs=specs,
        patterns=ENABLED,
        sectors=settings.sectors,
        checkpoint=lambda df, _name: df.localCheckpoint(),
    )
    return result, result.cells.toPandas(), result.magnitude_contributors.toPandas()


def frame(cells: pd.DataFrame, indicator: str) -> pd.DataFrame:
    got = cells[cells["indicator"] == indicator][["level", "area_code", "value", "status"]]
    return got.sort_values(["level", "area_code"]).reset_index(drop=True)


def expected(values: dict[str, float]) -> pd.DataFrame:
    """The inline expected frame: every area of every level, ``ok``."""
    rows = [(LEVEL[a], a, float(v), "ok") for a, v in values.items()]
    out = pd.DataFrame(rows, columns=["level", "area_code", "value", "status"])
    return out.sort_values(["level", "area_code"]).reset_index(drop=True)


def same(cells: pd.DataFrame, indicator: str, values: dict[str, float]) -> None:
    assert set(values) == set(LEVEL), "every area is expected"
    pd.testing.assert_frame_equal(frame(cells, indicator), expected(values), check_exact=False)


def test_fiu_transactions_and_subjects_per_level(built) -> None:
    _, cells, _ = built
    # u1 is in B1 (p1's home) and B2 (c1's seat): once in W1 and G1; u2 at a6 in B4 (p1 again)
    same(cells, "witwassen.fiu_suspicious_transactions",
         {B1: 2, B2: 1, B3: 0, B4: 1, W1: 2, W2: 0, W3: 1, G1: 2, G2: 1})  # fmt: skip
    # subjects: B1 p1, p5; B2 c1; W1 p1, p5, c1; B4 p1 (p1 counts in G1 and G2)
    same(cells, "witwassen.fiu_subjects",
         {B1: 2, B2: 1, B3: 0, B4: 1, W1: 3, W2: 0, W3: 1, G1: 3, G2: 1})  # fmt: skip


def test_fiu_amount_counts_each_transaction_once_with_its_contributors(built) -> None:
    _, cells, contributors = built
    # B1: u1 1000 + u3 300; W1: u1 once (split over p1 and c1) + u3 = 1300; B4: u2 5000
    same(cells, "witwassen.fiu_amount_eur",
         {B1: 1300, B2: 1000, B3: 0, B4: 5000, W1: 1300, W2: 0, W3: 5000, G1: 1300, G2: 5000})  # fmt: skip
    c = contributors[contributors["indicator"] == "witwassen.fiu_amount_eur"]
    got = c.set_index("area_code")[["n_units", "top_n_share"]].sort_index()
    # contributors are subjects: in W1 p1 1000, c1 1000, p5 300 of 1300; empty areas have none
    want = pd.DataFrame(
        {"n_units": [2, 1, 1, 3, 1, 3, 1], "top_n_share": [1000 / 1300, 1.0, 1.0, 1000 / 1300,
                                                           1.0, 1000 / 1300, 1.0]},
        index=pd.Index([B1, B2, B4, G1, G2, W1, W3], name="area_code"),
    ).sort_index()  # fmt: skip
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_unknown_owner_dwellings(built) -> None:
    _, cells, _ = built
    # a1 (owner_id missing, B1) and a10 (unknown, B3); the shop a5 and the ended o12 do not
    same(cells, "vastgoedfraude.unknown_owner_dwellings",
         {B1: 1, B2: 0, B3: 1, B4: 0, W1: 1, W2: 1, W3: 0, G1: 2, G2: 0})  # fmt: skip


def test_unexplained_ownership_excludes_decoy_and_housing_corporation(built) -> None:
    _, cells, _ = built
    # only p1's dwellings a1 (B1), a3 (B2, co-owned with the decoy) and a6 (B4); the decoy's
    # a2 and a4 and the corporation's a9 and a11 do not count
    same(cells, "vastgoedfraude.unexplained_ownership_dwellings",
         {B1: 1, B2: 1, B3: 0, B4: 1, W1: 2, W2: 0, W3: 1, G1: 2, G2: 1})  # fmt: skip


def test_sector_counts(built) -> None:
    _, cells, _ = built
    zero = dict.fromkeys(LEVEL, 0)
    same(cells, "sector.zorg.companies", {**zero, B1: 1, B2: 2, W1: 3, G1: 3})
    same(cells, "sector.zorg.new_companies", {**zero, B2: 1, W1: 1, G1: 1})
    same(cells, "sector.zorg.ended_companies", {**zero, B1: 1, W1: 1, G1: 1})
    # s2 is a suspect of a bicycle theft only, in no phenomenon
    same(cells, "sector.zorg.companies_with_suspect", zero)
    same(cells, "sector.vakantieparken.companies", {**zero, B4: 2, W3: 2, G2: 2})
    same(cells, "sector.vakantieparken.new_companies", {**zero, B4: 1, W3: 1, G2: 1})
    same(cells, "sector.vakantieparken.companies_with_suspect", {**zero, B4: 1, W3: 1, G2: 1})
    same(cells, "sector.cash_intensive.companies", {**zero, B2: 1, W1: 1, G1: 1})
    # s3's drug incident is of 2023
    same(cells, "sector.cash_intensive.companies_with_suspect", zero)
    # p3 and p4 live at the logiesfunctie address a7
    same(cells, "sector.vakantieparken.residents_logies", {**zero, B4: 2, W3: 2, G2: 2})


def test_unexplained_ownership_is_skipped_unless_enabled(settings) -> None:
    gated = gated_indicators(settings.indicators, PatternSettings(), settings.sectors)
    assert gated == {"vastgoedfraude.unexplained_ownership_dwellings": GATE_REASON}
    assert gated_indicators(settings.indicators, ENABLED, settings.sectors) == {}


def test_enabled_without_legal_basis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="legal_basis"):
        load_settings(patterns={"unexplained_ownership": {"enabled": True}})
    ok = load_settings(patterns={"unexplained_ownership": {"enabled": True, "legal_basis": "x"}})
    assert ok.patterns.unexplained_ownership.legal_basis == "x"


def test_a_sector_is_one_yaml_entry() -> None:
    s = load_settings(sectors={"horeca": ["56"]})
    tails = ("companies", "new_companies", "ended_companies", "companies_with_suspect")
    assert {x.key for x in s.indicators if x.key.startswith("sector.horeca.")} == {
        f"sector.horeca.{t}" for t in tails
    }
    # cash_intensive takes the one list of patterns, also when an overlay changes it
    changed = load_settings(patterns={"cash_intensive_sbi": ["9200"]})
    assert changed.sectors["cash_intensive"] == ("9200",)
    with pytest.raises(ConfigError, match="SBI code prefix"):
        load_settings(sectors={"horeca": ["56.10"]})


def test_the_cash_intensive_sector_is_linked_to_the_cash_intensive_count() -> None:
    # the same companies under two names (the same SBI prefixes, the same activity rule):
    # disclosure control must treat them as one family, or a cell hidden under one name would
    # be published under the other
    from zicht.models.disclosure import linked_indicators

    s = load_settings()
    pairs = linked_indicators(s.phenomena, s.indicators)
    assert ("sector.cash_intensive.companies", "witwassen.cash_intensive_companies") in pairs
    # a sector of other codes stays within all companies
    other = {x.key: x.within for x in load_settings(sectors={"horeca": ["56"]}).indicators}
    assert other["sector.horeca.companies"] == "context.companies"
