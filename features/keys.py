"""64-bit integer surrogate keys for the pseudonyms, and the key dictionary that checks them.

Reads nothing and writes nothing. The store keeps every pseudonym column (persons, addresses,
households, companies, incidents, signals, transactions; :data:`PSEUDONYM_COLUMNS`) as
``xxhash64`` of the pseudonym's text: Spark's own ``xxhash64`` (seed 42, over the UTF-8 bytes), so
the key of a pseudonym needs no join, is the same on every executor and in every delivery, and a
join on it compares 8-byte integers instead of 64-character strings. One hash serves every kind,
so a ``buyer_id`` (a person or a company) meets ``person_id`` and ``company_id`` unchanged.

A 64-bit hash can collide: among the ~20 million pseudonyms of a national year the chance is
about 1 in 100,000. :func:`key_dictionary` therefore groups every pseudonym of the input by its
key, once per ingest; a key that two different pseudonyms share is a collision, and ingest
stops (:func:`collision_message`) rather than let two persons become one. The dictionary
(``key``, ``pseudonym``) stays in the store: the leak guard looks for its pseudonyms in
``export/``, and analysts' person-level outputs in ``restricted/`` carry the pseudonym again.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from zicht.features.schemas import PSEUDONYM_COLUMNS

__all__ = [
    "PSEUDONYM_COLUMNS",
    "collision_message",
    "dictionary_of",
    "key_dictionary",
    "pseudonym_text",
    "surrogate",
    "with_surrogate_keys",
]


def surrogate(pseudonym: Column) -> Column:
    """The 64-bit key of a pseudonym column; null stays null (``xxhash64`` of null is 42)."""
    return F.when(pseudonym.isNotNull(), F.xxhash64(pseudonym))


def pseudonym_text(source: Column) -> Column:
    """A source column's pseudonym as validation types it: its text, blank as missing."""
    text = source.cast("string")
    return F.when(F.trim(text) != "", text)


def with_surrogate_keys(validated: DataFrame, name: str) -> DataFrame:
    """``validated`` with each pseudonym column of table ``name`` replaced by its key (long),
    under the same name. Call it after :func:`zicht.features.validate.with_reject_text`, which
    keeps the pseudonym's text on rejected rows."""
    cols = [c for c in PSEUDONYM_COLUMNS.get(name, ()) if c in validated.columns]
    return validated.withColumns({c: surrogate(F.col(c)) for c in cols})


def key_dictionary(raw: Mapping[str, DataFrame]) -> DataFrame:
    """``key`` (long), ``pseudonym`` (string), ``collision`` (bool): one row per key.

    ``raw``: the input tables as read (any column types), by table name. Every pseudonym
    column's values are hashed and grouped by key; ``collision`` is true where the key's
    pseudonyms differ (then ``pseudonym`` is the smallest of them). Only the pseudonym columns
    are read, so a Parquet input is read column by column. No actions.
    """
    parts: list[DataFrame] = []
    for name, frame in sorted(raw.items()):
        for col in PSEUDONYM_COLUMNS.get(name, ()):
            if col in frame.columns:
                parts.append(
                    frame.select(pseudonym_text(F.col(f"`{col}`")).alias("pseudonym")).where(
                        F.col("pseudonym").isNotNull()
                    )
                )
    if not parts:
        spark = next(iter(raw.values())).sparkSession
        return spark.createDataFrame([], "key long, pseudonym string, collision boolean")
    values = parts[0]
    for p in parts[1:]:
        values = values.unionByName(p)
    return dictionary_of(values.select(F.xxhash64("pseudonym").alias("key"), "pseudonym"))


def dictionary_of(values: DataFrame) -> DataFrame:
    """``key``, ``pseudonym`` (the smallest), ``collision`` from rows of ``key``, ``pseudonym``
    (repeats allowed: one aggregation, combined within each partition before the shuffle)."""
    return (
        values.groupBy("key")
        .agg(F.min("pseudonym").alias("pseudonym"), F.max("pseudonym").alias("_other"))
        .select("key", "pseudonym", (F.col("pseudonym") != F.col("_other")).alias("collision"))
    )


def collision_message(n_keys: int) -> str:
    """The error when ``n_keys`` keys are shared by different pseudonyms (never names them)."""
    return (
        f"{n_keys} surrogate key(s) are shared by two different pseudonyms (a 64-bit hash "
        "collision): zicht cannot keep those persons or records apart. Ask the key holder to "
        "pseudonymise this delivery with a new key; nothing was written to the output."
    )
