"""The store's surrogate keys (``zicht.features.keys``) against an independent XXH64."""

from __future__ import annotations

import pytest
from conftest import key
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from zicht.features.keys import (
    collision_message,
    collisions_of,
    key_collisions,
    key_dictionary,
    key_set,
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


def test_dictionary_holds_the_named_columns_once_blank_is_missing(spark: SparkSession) -> None:
    suspects = spark.createDataFrame(
        [("i1", "p1"), ("i1", "p2"), ("i2", "p1"), ("i3", "  ")],
        "incident_id string, person_id string",
    )
    links = spark.createDataFrame(
        [("p2", "p9", "familie")], "person_id_a string, person_id_b string, layer string"
    )
    raw = {"suspects": suspects, "person_links": links}
    got = sorted((r["pseudonym"], r["key"]) for r in key_dictionary(raw).collect())
    # the suspects' persons only: the incidents and the other persons need no way back
    assert got == [("p1", key("p1")), ("p2", key("p2"))]
    # every column is checked for collisions, and these six pseudonyms share no key
    assert key_collisions(raw).count() == 0
    wide = key_dictionary(
        raw, {"suspects": ("incident_id", "person_id"), "person_links": ("person_id_b",)}
    )
    assert sorted(r["pseudonym"] for r in wide.collect()) == ["i1", "i2", "i3", "p1", "p2", "p9"]
    # the key set: every distinct pseudonym of every column once (the blank person missing)
    got_set = sorted(tuple(r) for r in key_set(raw).collect())
    assert got_set == sorted((key(p), False) for p in ("i1", "i2", "i3", "p1", "p2", "p9"))


def test_a_key_shared_by_two_pseudonyms_is_a_collision(spark: SparkSession) -> None:
    # planted: a real XXH64 collision cannot be made to order, so the keys are given; the
    # check hashes differ for different texts, repeat for the same text
    values = spark.createDataFrame(
        [(7, 11), (7, 12), (7, 12), (8, 13), (8, 13)], "key long, check long"
    )
    assert [r["key"] for r in collisions_of(values).collect()] == [7]
    assert "2 surrogate key(s)" in collision_message(2)


def test_the_check_hash_is_independent_of_the_key(spark: SparkSession) -> None:
    from zicht.features.keys import check_hash

    df = spark.createDataFrame([(f"p{i}",) for i in range(1000)], "p string")
    rows = df.select(F.xxhash64("p").alias("k"), check_hash(F.col("p")).alias("c")).collect()
    assert len({r["c"] for r in rows}) == 1000
    assert not {r["k"] for r in rows} & {r["c"] for r in rows}
