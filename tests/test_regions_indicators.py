"""Indicators at the levels regio and studiegebied, against counts worked out by hand.

Three gemeenten with one buurt each: GM0001 and GM0002 form the region ``regio-x``, GM0003 is
in no region. Four drug incidents (i1, i4 in GM0001; i2 in GM0002; i3 in GM0003); suspects
p1 (lives in GM0001; suspect of i1 and i2: active in both gemeenten of the region), p2 (lives
in GM0002; i2), p3 (lives in GM0003; i3 and i1: active inside and outside the region) and x9
(not registered; i4). Inhabitants: 3, 2 and 4.

By hand (drugs):
- incidents (additive): GM0001 2, GM0002 1, GM0003 1; regio 3; studiegebied 4.
- suspects (distinct persons): GM0001 {p1, p3, x9} 3, GM0002 {p1, p2} 2, GM0003 {p3} 1;
  regio {p1, p2, p3, x9} 4 (not 3 + 2), studiegebied 4 (not 6).
- local suspects (suspect of an incident in the area who lives there): GM0001 {p1},
  GM0002 {p2}, GM0003 {p3}; regio {p1, p2} 2 (p3 lives outside it, x9 nowhere);
  studiegebied {p1, p2, p3} 3.
- local suspect share: regio 2 / 4 = 0.5, studiegebied 3 / 4 = 0.75 (its own counts, not
  a mean of the gemeenten's 1/3, 1/2, 1).
- resident suspects (live there): regio {p1, p2} 2, studiegebied 3.
- incidents per 1000 inhabitants: regio 3 / 5 * 1000 = 600, studiegebied 4 / 9 * 1000.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from zicht.features.indicators import Sources, build_indicators
from zicht.features.regions import Regions, regions_of
from zicht.features.settings import PartnerSettings
from zicht.jobs.config import load_settings

pytestmark = pytest.mark.spark

YEAR = 2024
G1, G2, G3 = "GM0001", "GM0002", "GM0003"
BUURT = {G1: "BU00010101", G2: "BU00020101", G3: "BU00030101"}
WIJK = {G1: "WK000101", G2: "WK000201", G3: "WK000301"}
REGIONS = Regions({G1: "regio-x", G2: "regio-x"}, {"regio-x": "Regio X"})
INCIDENTS = [("i1", G1), ("i4", G1), ("i2", G2), ("i3", G3)]
SUSPECTS = [("i1", "p1"), ("i2", "p1"), ("i2", "p2"), ("i3", "p3"), ("i1", "p3"), ("i4", "x9")]
PERSONS = [("p1", G1), ("q1", G1), ("q2", G1), ("p2", G2), ("q3", G2)]
PERSONS += [("p3", G3), ("q4", G3), ("q5", G3), ("q6", G3)]


def _sources(spark) -> Sources:
    areas = spark.createDataFrame(
        [
            (BUURT[g], f"B{g}", WIJK[g], f"W{g}", g, f"G{g}", 1e5, 4e5, 100.0, None)
            for g in (G1, G2, G3)
        ],
        "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
        "gemeente_code string, gemeente_name string, x double, y double, land_area_ha double, "
        "geometry_wkt string",
    )
    inc = spark.createDataFrame(
        [
            (i, dt.date(YEAR, 5, 1), YEAR, "X", None, BUURT[g], WIJK[g], g, 1e5, 4e5, ["drugs"])
            for i, g in INCIDENTS
        ],
        "incident_id string, incident_date date, year int, crime_code string, "
        "crime_class string, buurt_code string, wijk_code string, gemeente_code string, "
        "x double, y double, phenomena array<string>",
    )
    residence = spark.createDataFrame(
        [
            (p, YEAR, BUURT[g], WIJK[g], g, 1980, f"a{p}", f"h{p}", dt.date(2010, 1, 1))
            for p, g in PERSONS
        ],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long, address_id string, household_id string, "
        "registered_since date",
    )
    return Sources(
        areas=areas,
        incidents=inc,
        suspects=spark.createDataFrame(SUSPECTS, "incident_id string, person_id string"),
        residence=residence,
    )


@pytest.fixture(scope="module")
def built(spark):
    settings = load_settings()

    def run(regions: Regions | None) -> pd.DataFrame:
        return build_indicators(
            _sources(spark),
            years=[YEAR],
            phenomena=settings.phenomena,
            specs=settings.indicators,
            sectors=settings.sectors,
            regions=regions,
            checkpoint=lambda df, _name: df.localCheckpoint(),
        ).cells.toPandas()

    return run(REGIONS), run(None)


def _value(cells: pd.DataFrame, level: str, area: str, indicator: str) -> float:
    row = cells[
        (cells["level"] == level) & (cells["area_code"] == area) & (cells["indicator"] == indicator)
    ]
    assert len(row) == 1, (level, area, indicator, len(row))
    assert row["status"].iloc[0] == "ok", (level, area, indicator, row["status"].iloc[0])
    return float(row["value"].iloc[0])


EXPECTED = {  # (indicator) -> (GM0001, GM0002, GM0003, regio, studiegebied), by hand above
    "drugs.incidents": (2, 1, 1, 3, 4),
    "drugs.suspects": (3, 2, 1, 4, 4),
    "drugs.local_suspects": (1, 1, 1, 2, 3),
    "drugs.local_suspect_share": (1 / 3, 1 / 2, 1, 0.5, 0.75),
    "drugs.resident_suspects": (1, 1, 1, 2, 3),
    "drugs.incidents_per_1000": (2000 / 3, 500, 250, 600, 4000 / 9),
    "context.inhabitants": (3, 2, 4, 5, 9),
}


@pytest.mark.parametrize("indicator", sorted(EXPECTED))
def test_counts_and_rates_at_every_level(built, indicator) -> None:
    cells, _ = built
    g1, g2, g3, region, whole = EXPECTED[indicator]
    got = (
        _value(cells, "gemeente", G1, indicator),
        _value(cells, "gemeente", G2, indicator),
        _value(cells, "gemeente", G3, indicator),
        _value(cells, "regio", "regio-x", indicator),
        _value(cells, "studiegebied", "studiegebied", indicator),
    )
    assert got == pytest.approx((g1, g2, g3, region, whole))


def test_levels_and_areas(built) -> None:
    with_regions, without = built
    areas = with_regions.groupby("level")["area_code"].unique().map(sorted).to_dict()
    assert areas["regio"] == ["regio-x"]  # GM0003 is in no region: no area of its own
    assert areas["studiegebied"] == ["studiegebied"]
    assert set(without["level"]) == {"buurt", "wijk", "gemeente"}


def test_lower_levels_unchanged_by_regions(built) -> None:
    with_regions, without = built
    keys = ["level", "area_code", "year", "indicator"]
    lower = with_regions[with_regions["level"].isin(["buurt", "wijk", "gemeente"])]
    a = lower.sort_values(keys).reset_index(drop=True)
    b = without.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_regions_from_partners() -> None:
    partners = {
        "riec-a": PartnerSettings(gemeenten=(G1, G2), label="RIEC A", region=True),
        "gemeente-b": PartnerSettings(gemeenten=(G1,)),  # a gemeente's own package: no region
    }
    regions = regions_of(partners)
    assert regions is not None
    assert dict(regions.of_gemeente) == {G1: "riec-a", G2: "riec-a"}
    assert dict(regions.labels) == {"riec-a": "RIEC A"}
    assert regions_of({"gemeente-b": PartnerSettings(gemeenten=(G1, G2))}) is None
