"""The store's surrogate keys (``zicht.features.keys``) against an independent XXH64."""

from __future__ import annotations

import pytest
from conftest import key
from pyspark.sql import SparkSession

from zicht.features.keys import (
    collision_message,
    dictionary_of,
    key_dictionary,
    with_surrogate_keys,
)

pytestmark = pytest.mark.spark


def test_keys_are_xxh64_of_the_text_and_null_stays_null(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("p1", "i1"), ("Zoë-ß", "i1"), (None, "i2")], "person_id string, incident_id string"
    )
    got = [tuple(r) for r in with_surrogate_keys(df, "suspects").collect()]
    assert got == [(key("p1"), key("i1")), (key("Zoë-ß"), key("i1")), (None, key("i2"))]
    # a column that holds no pseudonym is left alone
    areas = spark.createDataFrame([("BU1",)], "buurt_code string")
    assert with_surrogate_keys(areas, "areas").collect()[0]["buurt_code"] == "BU1"


def test_dictionary_covers_every_column_once_blank_is_missing(spark: SparkSession) -> None:
    suspects = spark.createDataFrame(
        [("i1", "p1"), ("i1", "p2"), ("i2", "p1"), ("i3", "  ")],
        "incident_id string, person_id string",
    )
    links = spark.createDataFrame(
        [("p2", "p9", "familie")], "person_id_a string, person_id_b string, layer string"
    )
    got = {
        r["pseudonym"]: (r["key"], r["collision"])
        for r in key_dictionary({"suspects": suspects, "person_links": links}).collect()
    }
    assert got == {p: (key(p), False) for p in ("i1", "i2", "i3", "p1", "p2", "p9")}


def test_a_key_shared_by_two_pseudonyms_is_a_collision(spark: SparkSession) -> None:
    # planted: a real XXH64 collision cannot be made to order, so the keys are given
    values = spark.createDataFrame(
        [(7, "b"), (7, "a"), (7, "a"), (8, "c"), (8, "c")], "key long, pseudonym string"
    )
    got = {r["key"]: (r["pseudonym"], r["collision"]) for r in dictionary_of(values).collect()}
    assert got == {7: ("a", True), 8: ("c", False)}
    assert "2 surrogate key(s)" in collision_message(2)
