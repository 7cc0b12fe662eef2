"""The audit across releases (``zicht.jobs.export.republication``), attacked.

A delivery publishes year 2023 in vintage 2022: wijk W = buurt B (15) + C (8) + D (30), with C
and D hidden. The next delivery republishes 2023 in vintage 2023, where B is split into B1 (12)
and B2 (3): it hides B2 and C, so on its own B2 + C = 11 and both are protected. A partner who
holds both recovers B2 = B - B1 = 15 - 12 = 3, and then C. The expected verdicts are worked out by hand
here; the joint audit of :mod:`zicht.models.disclosure`, which relates cells of this release's
areas only, does not see the split, and the republication check must.
"""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from zicht.features.settings import DisclosureSettings
from zicht.jobs.export.republication import republication_findings
from zicht.models.disclosure import joint_audit

SETTINGS = DisclosureSettings()  # min_count 10, protection_width 2
G, W = "GM0001", "WK000101"
B, C, B1, B2, D = "BU00010101", "BU00010102", "BU00010103", "BU00010104", "BU00010105"
IND, YEAR = "x.incidents", 2023
PATTERN = "level string, area_code string, year int, indicator string, status string"
AUDIT = (
    "level string, area_code string, year int, indicator string, unit string, reason string, "
    "value double, status string"
)
LEVEL = {G: "gemeente", W: "wijk"}


def _pattern(spark: SparkSession, cells: dict[str, str]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(
        [(LEVEL.get(a, "buurt"), a, YEAR, IND, st) for a, st in cells.items()], PATTERN
    )


def _audit(spark: SparkSession, values: dict[str, float], hidden: dict[str, str]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(
        [
            (LEVEL.get(a, "buurt"), a, YEAR, IND, "count", hidden.get(a, "published"), v,
             "suppressed" if a in hidden else "ok")
            for a, v in values.items()
        ],
        AUDIT,
    )  # fmt: skip


@pytest.mark.spark
def test_an_old_buurt_minus_its_split_successors(spark: SparkSession) -> None:
    # release 1, vintage 2022: W = B 15 + C 8 + D 30; C primary, D secondary, B published
    first = _pattern(spark, {B: "ok", C: "suppressed", D: "suppressed", W: "ok", G: "ok"})
    first_values = {B: 15.0, C: 8.0, D: 30.0, W: 53.0, G: 53.0}
    # release 2, vintage 2023: B split into B1 12 and B2 3; B2 and C primary, and B2 + C =
    # W - B1 - D = 11 keeps both protected on their own
    values = {B1: 12.0, B2: 3.0, C: 8.0, D: 30.0, W: 53.0, G: 53.0}
    audit = _audit(spark, values, {B2: "primary", C: "primary"})
    hier = spark.createDataFrame(
        [(B1, W, G), (B2, W, G), (C, W, G), (D, W, G)],
        "buurt_code string, wijk_code string, gemeente_code string",
    )
    # the attack works on the published numbers: B2 = B - B1, and then C = W - B1 - B2 - D
    assert first_values[B] - values[B1] == values[B2]
    assert values[W] - values[B1] - (first_values[B] - values[B1]) - values[D] == values[C]
    # alone, and jointly over this release's areas, both look protected: the gap closed here
    alone = {r["area_code"]: r["protected"] for r in joint_audit(audit, [], hier, settings=SETTINGS).collect()}  # fmt: skip
    joint = {r["area_code"]: r["protected"] for r in joint_audit(audit, [first], hier, settings=SETTINGS).collect()}  # fmt: skip
    assert alone == {B2: True, C: True} and joint == {B2: True, C: True}
    found = republication_findings(audit, [first])
    vanished = {tuple(r) for r in found["vanished"].collect()}
    assert vanished == {("buurt", B, YEAR, IND)}
    assert found["hidden_published_before"].count() == 0


@pytest.mark.spark
def test_a_count_hidden_now_but_published_before_fails_the_joint_audit(
    spark: SparkSession,
) -> None:
    # same vintage, a new delivery: release 1 published C; release 2 hides B2 and C, so with C
    # known B2 = W - B1 - C = 40 - 12 - 25 = 3
    first = _pattern(spark, {B1: "ok", B2: "suppressed", C: "ok", W: "ok", G: "ok"})
    values = {B1: 12.0, B2: 3.0, C: 25.0, W: 40.0, G: 40.0}
    audit = _audit(spark, values, {B2: "primary", C: "secondary"})
    hier = spark.createDataFrame(
        [(B1, W, G), (B2, W, G), (C, W, G)],
        "buurt_code string, wijk_code string, gemeente_code string",
    )
    found = republication_findings(audit, [first])
    assert found["vanished"].count() == 0
    assert {r["area_code"] for r in found["hidden_published_before"].collect()} == {C}
    got = {r["area_code"]: r["protected"] for r in joint_audit(audit, [first], hier, settings=SETTINGS).collect()}  # fmt: skip
    assert got == {B2: False}


@pytest.mark.spark
def test_another_region_is_not_a_vanished_area(spark: SparkSession) -> None:
    # an earlier release of a disjoint study area shares no area: nothing to difference
    other = spark.createDataFrame(
        [("buurt", "BU00020101", YEAR, IND, "ok"), ("gemeente", "GM0002", YEAR, IND, "ok")],
        PATTERN,
    )
    audit = _audit(spark, {B1: 12.0, B2: 3.0, C: 25.0, W: 40.0, G: 40.0}, {B2: "primary", C: "secondary"})  # fmt: skip
    found = republication_findings(audit, [other])
    assert found["vanished"].count() == 0
    assert found["hidden_published_before"].count() == 0
