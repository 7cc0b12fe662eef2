"""``areas.inhabitants_12plus`` (contract v2): read, checked, and the denominator of suspect
rates when ``persons`` is an extract."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from zicht.features.schemas import INPUT_TABLES
from zicht.features.validate import RuleContext, validate_table

pytestmark = pytest.mark.spark

GM, WK = "GM0014", "WK001401"
B1, B2 = "BU00140101", "BU00140102"
AREAS = (
    "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
    "gemeente_code string, gemeente_name string, x double, y double, land_area_ha double, "
    "geometry_wkt string, inhabitants long, inhabitants_12plus long"
)


def _area(code: str, inhabitants: int | None, twelve: int | None) -> tuple:
    return (
        code,
        "b",
        WK,
        "w",
        GM,
        "Groningen",
        233000.0,
        582000.0,
        10.0,
        None,
        inhabitants,
        twelve,
    )


def test_rules_one_bad_row_each(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [
            _area("BU00140101", 1000, 870),
            _area("BU00140102", 1000, -1),
            _area("BU00140103", 100, 101),
            _area("BU00140104", None, 50),  # no total to compare with: accepted
        ],
        AREAS,
    )
    # the reader gives every optional column of the contract, absent ones as null
    for c in INPUT_TABLES["areas"].names:
        if c not in raw.columns:
            raw = raw.withColumn(c, F.lit(None).cast(INPUT_TABLES["areas"].column(c).spark_type))
    got = dict(
        validate_table("areas", raw, RuleContext(run_date=dt.date(2025, 1, 1)))
        .select("buurt_code", "reject_rule")
        .collect()
    )
    assert got == {
        "BU00140101": None,
        "BU00140102": "inhabitants_12plus.negative",
        "BU00140103": "inhabitants_12plus.above_inhabitants",
        "BU00140104": None,
    }


def test_an_extract_takes_the_suspect_rate_denominator_from_areas(spark: SparkSession) -> None:
    from zicht.features.indicators import Sources, build_indicators
    from zicht.jobs.config import load_settings

    year = 2024
    areas = spark.createDataFrame([_area(B1, 1000, 800), _area(B2, 500, 400)], AREAS)
    # three burglaries in B1, by two suspects who live in B1 and one who lives in B2
    incidents = spark.createDataFrame(
        [
            (f"i{i}", dt.date(year, 3, 1), year, "1.1.1", "1.1.1", B1, WK, GM, 233000.0,
             582000.0, ["woninginbraak"])
            for i in range(3)
        ],
        "incident_id string, incident_date date, year int, crime_code string, "
        "crime_class string, buurt_code string, wijk_code string, gemeente_code string, "
        "x double, y double, phenomena array<string>",
    )  # fmt: skip
    suspects = spark.createDataFrame(
        [("i0", "p1"), ("i1", "p2"), ("i2", "p3")], "incident_id string, person_id string"
    )
    residence = spark.createDataFrame(
        [
            (p, year, b, WK, GM, 1980, f"a{p}", f"h{p}", dt.date(2000, 1, 1))
            for p, b in (("p1", B1), ("p2", B1), ("p3", B2))
        ],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long, address_id string, household_id string, "
        "registered_since date",
    )  # fmt: skip
    settings = load_settings(phenomena={"woninginbraak": {"classes": ["1.1.1"]}})
    src = Sources(
        areas=areas, incidents=incidents, suspects=suspects, residence=residence,
        areas_have_inhabitants=True, areas_have_inhabitants_12plus=True, population="extract",
    )  # fmt: skip
    result = build_indicators(
        src, years=[year], phenomena=settings.phenomena, specs=settings.indicators,
        checkpoint=lambda df, _name: df.localCheckpoint(),
    )  # fmt: skip
    cells = {
        (r["area_code"], r["indicator"]): r["value"]
        for r in result.cells.where(
            "indicator IN ('context.inhabitants_12plus', 'woninginbraak.resident_suspects', "
            "'woninginbraak.resident_suspects_per_1000')"
        ).collect()
    }
    assert "context.inhabitants_12plus" not in result.skipped
    assert cells[(B1, "context.inhabitants_12plus")] == 800
    assert cells[(GM, "context.inhabitants_12plus")] == 1200
    assert cells[(B1, "woninginbraak.resident_suspects")] == 2
    assert cells[(B1, "woninginbraak.resident_suspects_per_1000")] == pytest.approx(2 / 800 * 1000)
    assert cells[(GM, "woninginbraak.resident_suspects_per_1000")] == pytest.approx(3 / 1200 * 1000)
