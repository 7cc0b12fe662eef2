"""Linking: residence per year from register snapshots, and locating incidents."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from zicht.features.link import build_residence, locate_incidents, phenomena_of_incident
from zicht.features.settings import Phenomenon

pytestmark = pytest.mark.spark

AREAS = (
    "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
    "gemeente_code string, gemeente_name string, x double, y double"
)
PERSONS = (
    "person_id string, snapshot_year long, birth_year long, sex string, address_id string, "
    "household_id string, registered_since date"
)


@pytest.fixture()
def areas(spark):
    return spark.createDataFrame(
        [
            ("BU00010001", "A", "WK000100", "W", "GM0001", "G", 100.0, 300000.0),
            ("BU00010002", "B", "WK000100", "W", "GM0001", "G", 200.0, 300000.0),
        ],
        AREAS,
    )


@pytest.fixture()
def addresses(spark):
    return spark.createDataFrame(
        [("a1", "BU00010001"), ("a2", "BU00010002")], "address_id string, buurt_code string"
    )


def test_residence_uses_each_years_snapshot(spark, areas, addresses) -> None:
    since = dt.date(2020, 1, 1)
    persons = spark.createDataFrame(
        [
            ("p1", 2023, 1990, "M", "a1", None, since),
            ("p1", 2024, 1990, "M", "a2", None, since),  # moved in 2024
            ("p2", 2023, 2000, "V", "a1", None, since),  # no 2024 snapshot row: gone
            ("p3", 2024, 2001, "V", None, None, since),  # registered without an address
        ],
        PERSONS,
    )
    got = build_residence(persons, addresses=addresses, areas=areas, years=[2023, 2024])
    expected = spark.createDataFrame(
        [
            ("p1", 2023, "BU00010001", "WK000100", "GM0001", 1990),
            ("p2", 2023, "BU00010001", "WK000100", "GM0001", 2000),
            ("p1", 2024, "BU00010002", "WK000100", "GM0001", 1990),
        ],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long",
    )
    assertDataFrameEqual(got.select(*expected.columns), expected)


def test_one_snapshot_serves_every_year(spark, areas, addresses) -> None:
    persons = spark.createDataFrame(
        [("p1", None, 1990, "M", "a2", None, dt.date(2020, 1, 1))], PERSONS
    )
    got = build_residence(persons, addresses=addresses, areas=areas, years=[2023, 2024])
    assert sorted((r["year"], r["buurt_code"]) for r in got.collect()) == [
        (2023, "BU00010002"),
        (2024, "BU00010002"),
    ]


def test_locate_incidents_buurt_then_address_then_point(spark, areas, addresses) -> None:
    incidents = spark.createDataFrame(
        [
            ("i1", dt.date(2024, 1, 1), "F43", "3.1.1", "BU00010001", "a2", None, None, None),
            ("i2", dt.date(2023, 5, 1), "3.1.1", "3.1.1", None, "a2", None, None, None),
            ("i3", dt.date(2024, 2, 1), "A72", "1.2.3", None, None, 150.0, 300010.0, "BU00010002"),
        ],
        "incident_id string, incident_date date, crime_code string, crime_class string, "
        "buurt_code string, address_id string, x double, y double, point_buurt_code string",
    )
    phenomena = {
        "drugs": Phenomenon("drugs", incident_codes=("F43",), classes=("3.1.1",)),
        "fiets": Phenomenon("fiets", classes=("1.2.3",)),
    }
    got = locate_incidents(incidents, areas=areas, addresses=addresses, phenomena=phenomena)
    rows = {r["incident_id"]: r for r in got.collect()}
    assert rows["i1"]["buurt_code"] == "BU00010001"  # buurt_code wins over the address
    assert rows["i2"]["buurt_code"] == "BU00010002"  # the address's buurt
    assert rows["i3"]["buurt_code"] == "BU00010002"  # the polygon holding the point
    assert (rows["i1"]["x"], rows["i2"]["x"], rows["i3"]["x"]) == (100.0, 200.0, 150.0)
    assert rows["i1"]["year"] == 2024 and rows["i2"]["year"] == 2023
    assert rows["i1"]["phenomena"] == ["drugs"]
    assert rows["i2"]["phenomena"] == ["drugs"]  # class-only data falls back to the class
    assert rows["i3"]["phenomena"] == ["fiets"]  # a class-defined phenomenon takes coded rows


def test_incident_codes_are_precise(spark) -> None:
    """A coded incident of class 3.1.1 that is not trade or production is not drugs."""
    ph = {"drugs": Phenomenon("drugs", incident_codes=("F43",), classes=("3.1.1",))}
    df = spark.createDataFrame(
        [("F40", "3.1.1"), ("F43", "3.1.1"), ("3.1.1", "3.1.1")], "code string, klass string"
    )
    got = df.select(
        "code",
        phenomena_of_incident(ph, code=df["code"], crime_class=df["klass"]).alias("p"),
    )
    assert {r["code"]: r["p"] for r in got.collect()} == {
        "F40": [],
        "F43": ["drugs"],
        "3.1.1": ["drugs"],
    }
