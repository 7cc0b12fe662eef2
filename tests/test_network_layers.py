"""Multiplex layers and rootedness counts of the suspect network, against hand-built frames."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from zicht.features.settings import NetworkSettings
from zicht.models.network import (
    build_layer_edges,
    build_network,
    community_reach_counts,
    cooffending_locality_counts,
    youth_exposure_counts,
)

pytestmark = pytest.mark.spark

RES_SCHEMA = (
    "person_id string, year long, buurt_code string, wijk_code string, gemeente_code string, "
    "birth_year long"
)


def test_layer_edges_keep_suspects_only(spark) -> None:
    suspects = spark.createDataFrame([("s1",), ("s2",), ("s3",)], "person_id string")
    links = spark.createDataFrame(
        [
            ("s2", "s1", "familie"),  # reversed order: normalised to s1 < s2
            ("s1", "n1", "familie"),  # n1 is no suspect: no tie
            ("s1", "s3", "klasgenoot"),  # layer not asked for
            ("s1", "s2", "familie"),  # the same tie again: one row
        ],
        "person_id_a string, person_id_b string, layer string",
    )
    persons = spark.createDataFrame(
        [
            ("s1", "h1", "a1"),
            ("n1", "h1", "a1"),  # shares household and address with s1, but is no suspect
            ("s3", "h2", "a1"),  # shares the address with s1
        ],
        "person_id string, household_id string, address_id string",
    )
    roles = spark.createDataFrame(
        [("c1", "s2"), ("c1", "s3"), ("c1", "n1")], "company_id string, person_id string"
    )
    got = build_layer_edges(
        suspects,
        layers=["familie", "household", "address", "company"],
        person_links=links,
        persons=persons,
        company_roles=roles,
    )
    expected = spark.createDataFrame(
        [
            ("s1", "s2", "familie", 1.0),
            ("s1", "s3", "address", 1.0),
            ("s2", "s3", "company", 1.0),
        ],
        "person_id_a string, person_id_b string, layer string, weight double",
    )
    assertDataFrameEqual(got.select(*expected.columns), expected)


def test_family_tie_joins_two_isolated_suspects(spark) -> None:
    suspects = spark.createDataFrame(
        [("i1", "s1"), ("i2", "s2"), ("i3", "s3")], "incident_id string, person_id string"
    )
    incidents = spark.createDataFrame(
        [
            (
                f"i{k}",
                dt.date(2024, 1, k),
                2024,
                "F43",
                "3.1.1",
                "BU00010001",
                "WK000100",
                "GM0001",
                1.0,
                1.0,
                ["drugs"],
            )
            for k in (1, 2, 3)
        ],
        "incident_id string, incident_date date, year int, crime_code string, crime_class string, "
        "buurt_code string, wijk_code string, gemeente_code string, x double, y double, "
        "phenomena array<string>",
    )
    residence = spark.createDataFrame([], RES_SCHEMA)
    layer_edges = spark.createDataFrame(
        [("s1", "s2", "familie", 1.0)],
        "person_id_a string, person_id_b string, layer string, weight double",
    )
    settings = NetworkSettings(layers=("co_offending", "familie"))
    members, _ = build_network(
        suspects,
        incidents,
        residence,
        phenomena=["drugs"],
        settings=settings,
        layer_edges=layer_edges,
    )
    rows = {r["person_id"]: r for r in members.collect()}
    assert rows["s1"]["community_id"] == rows["s2"]["community_id"]
    assert rows["s3"]["community_id"] != rows["s1"]["community_id"]
    assert rows["s1"]["degree"] == 1 and rows["s3"]["degree"] == 0
    # without the familie layer the family tie does not count
    members0, _ = build_network(
        suspects,
        incidents,
        residence,
        phenomena=["drugs"],
        settings=NetworkSettings(),
        layer_edges=layer_edges,
    )
    assert {r["degree"] for r in members0.collect()} == {0}


def test_cooffending_locality_counts(spark) -> None:
    edges = spark.createDataFrame(
        [
            ("a", "b", dt.date(2024, 3, 1)),  # both in buurt 1
            ("a", "c", dt.date(2024, 3, 1)),  # buurt 1 and buurt 2, same wijk
            ("c", "d", dt.date(2024, 3, 1)),  # d lives nowhere in the area
        ],
        "person_id_a string, person_id_b string, last_date date",
    )
    residence = spark.createDataFrame(
        [
            ("a", 2024, "BU00010001", "WK000100", "GM0001", 1990),
            ("b", 2024, "BU00010001", "WK000100", "GM0001", 1990),
            ("c", 2024, "BU00010002", "WK000100", "GM0001", 1990),
        ],
        RES_SCHEMA,
    )
    got = cooffending_locality_counts(edges, residence)
    expected = spark.createDataFrame(
        [
            ("buurt", "BU00010001", 2024, "network.cooffending_ties", 2.0),
            ("buurt", "BU00010001", 2024, "network.local_cooffending_ties", 1.0),
            ("buurt", "BU00010002", 2024, "network.cooffending_ties", 2.0),
            ("buurt", "BU00010002", 2024, "network.local_cooffending_ties", 0.0),
            ("wijk", "WK000100", 2024, "network.cooffending_ties", 3.0),
            ("wijk", "WK000100", 2024, "network.local_cooffending_ties", 2.0),
            ("gemeente", "GM0001", 2024, "network.cooffending_ties", 3.0),
            ("gemeente", "GM0001", 2024, "network.local_cooffending_ties", 2.0),
        ],
        "level string, area_code string, year long, indicator string, value double",
    )
    assertDataFrameEqual(got, expected)


def test_youth_exposure_counts(spark) -> None:
    residence = spark.createDataFrame(
        [
            ("y1", 2024, "BU00010001", "WK000100", "GM0001", 2005),  # 19: young
            ("y2", 2024, "BU00010001", "WK000100", "GM0001", 2010),  # 14: young
            ("old", 2024, "BU00010001", "WK000100", "GM0001", 1960),  # not young
        ],
        RES_SCHEMA,
    )
    links = spark.createDataFrame(
        [
            ("y1", "s1", "familie"),
            ("y1", "x", "familie"),
            ("s2", "y2", "klasgenoot"),  # y2 is the second end: counts for y2
            ("old", "s1", "familie"),
        ],
        "person_id_a string, person_id_b string, layer string",
    )
    suspect_ids = spark.createDataFrame([("s1",), ("s2",)], "person_id string")
    got = youth_exposure_counts(residence, links, suspect_ids)
    expected = spark.createDataFrame(
        [
            ("BU00010001", 2024, "context.youth_ties_familie", 2.0),
            ("BU00010001", 2024, "context.youth_ties_to_suspects_familie", 1.0),
            ("BU00010001", 2024, "context.youth_ties_klasgenoot", 1.0),
            ("BU00010001", 2024, "context.youth_ties_to_suspects_klasgenoot", 1.0),
        ],
        "buurt_code string, year long, indicator string, value double",
    )
    assertDataFrameEqual(got, expected)


def test_community_reach_counts(spark) -> None:
    """Residents in a community, and those whose community acts mostly elsewhere, by hand."""
    members = spark.createDataFrame(
        [("p1", 1), ("p2", 1), ("p3", 1), ("p4", 2)],  # community 2 has 1 member: left out
        "person_id string, community_id long",
    )
    suspects = spark.createDataFrame(
        [("i1", "p1"), ("i1", "p2"), ("i2", "p3"), ("i3", "p4")],
        "incident_id string, person_id string",
    )
    incidents = spark.createDataFrame(
        [
            ("i1", "BU00010001", "WK000100", "GM0001"),
            ("i2", "BU00010002", "WK000100", "GM0001"),
            ("i3", "BU00010001", "WK000100", "GM0001"),
        ],
        "incident_id string, buurt_code string, wijk_code string, gemeente_code string",
    )
    residence = spark.createDataFrame(
        [
            ("p1", 2024, "BU00010001", "WK000100", "GM0001", 1990),
            ("p2", 2024, "BU00010003", "WK000101", "GM0001", 1990),
            ("p3", 2024, "BU00010002", "WK000100", "GM0001", 1990),
            ("p4", 2024, "BU00010001", "WK000100", "GM0001", 1990),
            ("x", 2024, "BU00010001", "WK000100", "GM0001", 1990),  # no suspect
        ],
        RES_SCHEMA,
    )
    got = community_reach_counts(members, suspects, incidents, residence)
    # community 1 has 2 incidents: one in buurt ...0001, one in ...0002, both in wijk WK000100
    members_key, away_key = (
        "network.resident_community_members",
        "network.resident_members_active_elsewhere",
    )
    expected = spark.createDataFrame(
        [
            ("buurt", "BU00010001", 2024, members_key, 1.0),  # p1: half its incidents here
            ("buurt", "BU00010001", 2024, away_key, 0.0),
            ("buurt", "BU00010002", 2024, members_key, 1.0),  # p3: likewise
            ("buurt", "BU00010002", 2024, away_key, 0.0),
            ("buurt", "BU00010003", 2024, members_key, 1.0),  # p2: none here
            ("buurt", "BU00010003", 2024, away_key, 1.0),
            ("wijk", "WK000100", 2024, members_key, 2.0),
            ("wijk", "WK000100", 2024, away_key, 0.0),
            ("wijk", "WK000101", 2024, members_key, 1.0),
            ("wijk", "WK000101", 2024, away_key, 1.0),
            ("gemeente", "GM0001", 2024, members_key, 3.0),
            ("gemeente", "GM0001", 2024, away_key, 0.0),
        ],
        "level string, area_code string, year long, indicator string, value double",
    )
    assertDataFrameEqual(got, expected)
