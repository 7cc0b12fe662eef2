"""64-bit integer surrogate keys for the pseudonyms, and the key dictionary that checks them.

Reads nothing and writes nothing. The store keeps every pseudonym column (persons, addresses,
households, companies, incidents, signals, transactions; :data:`PSEUDONYM_COLUMNS`) as
``xxhash64`` of the pseudonym's text: Spark's own ``xxhash64`` (seed 42, over the UTF-8 bytes), so
the key of a pseudonym needs no join, is the same on every executor and in every delivery, and a
join on it compares 8-byte integers instead of 64-character strings. One hash serves every kind,
so a ``buyer_id`` (a person or a company) meets ``person_id`` and ``company_id`` unchanged.

A 64-bit hash can collide: among the ~20 million pseudonyms of a national year the chance is
about 1 in 100,000. :func:`key_collisions` therefore checks every pseudonym of the input once per
ingest: each value's key comes with a second, independent 64-bit hash of the same text
(``xxhash64`` seeded through a salt), and a key whose values carry two different check hashes is
shared by two pseudonyms; ingest then stops (:func:`collision_message`) rather than let two
persons become one. Comparing 8-byte check hashes instead of the pseudonyms' text makes the
shuffle a fifth of the size (two pseudonyms that share both hashes: about 1 in 10^24 nationally).

The key dictionary (:func:`key_dictionary`: ``key``, ``pseudonym``) holds only the pseudonym
columns that a person-level output in ``restricted/`` names again (:data:`NAMED_COLUMNS`: the
suspects, one row per suspect in ``restricted/network_members``). The leak guard needs no
dictionary: it hashes the tokens of the export files and looks for those keys in the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from zicht.features.schemas import PSEUDONYM_COLUMNS

__all__ = [
    "NAMED_COLUMNS",
    "PSEUDONYM_COLUMNS",
    "check_hash",
    "collision_message",
    "collisions_of",
    "key_collisions",
    "key_dictionary",
    "key_set",
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


# the pseudonym columns whose text a person-level output in restricted/ carries again
NAMED_COLUMNS: dict[str, tuple[str, ...]] = {"suspects": ("person_id",)}

# a second hash of the same text for the collision check: xxhash64 over (salt, text) is a hash
# seeded by the salt's hash, independent of the key's
_CHECK_SALT = "zicht key check"


def check_hash(pseudonym: Column) -> Column:
    """The collision check's second 64-bit hash of a pseudonym's text."""
    return F.xxhash64(F.lit(_CHECK_SALT), pseudonym)


def _pseudonyms(
    raw: Mapping[str, DataFrame], columns: Mapping[str, tuple[str, ...]]
) -> DataFrame | None:
    """``pseudonym``: every non-missing value of ``columns`` in ``raw`` (repeats kept)."""
    parts: list[DataFrame] = []
    for name, frame in sorted(raw.items()):
        for col in columns.get(name, ()):
            if col in frame.columns:
                parts.append(
                    frame.select(pseudonym_text(F.col(f"`{col}`")).alias("pseudonym")).where(
                        F.col("pseudonym").isNotNull()
                    )
                )
    if not parts:
        return None
    values = parts[0]
    for p in parts[1:]:
        values = values.unionByName(p)
    return values


def key_set(raw: Mapping[str, DataFrame]) -> DataFrame:
    """``key`` (long), ``collides`` (boolean): one row per distinct key of every pseudonym
    column of the input, ``collides`` where two different pseudonyms share it.

    ``raw``: the input tables as read (any column types), by table name. Every pseudonym
    column's values are hashed twice and grouped by key (:func:`collisions_of`). Only the
    pseudonym columns are read, so a Parquet input is read column by column. The rows are the
    keys of every row read, rejected rows too: a superset of the store's key columns, which the
    leak guard probes instead of those columns (each key once, where a person appears in
    many rows). No actions."""
    values = _pseudonyms(raw, PSEUDONYM_COLUMNS)
    if values is None:
        spark = next(iter(raw.values())).sparkSession
        return spark.createDataFrame([], "key long, collides boolean")
    return _grouped(
        values.select(
            F.xxhash64("pseudonym").alias("key"), check_hash(F.col("pseudonym")).alias("check")
        )
    )


def key_collisions(raw: Mapping[str, DataFrame]) -> DataFrame:
    """``key`` (long): the keys shared by two different pseudonyms of the input (empty: none);
    :func:`key_set` narrowed to the colliding keys. No actions."""
    return key_set(raw).where(F.col("collides")).select("key")


def _grouped(values: DataFrame) -> DataFrame:
    """``key``, ``collides``: ``values`` (``key``, ``check``) grouped by key. One aggregation of
    8-byte values, combined within each partition before the shuffle."""
    return (
        values.groupBy("key")
        .agg(F.min("check").alias("_lo"), F.max("check").alias("_hi"))
        .select("key", (F.col("_lo") != F.col("_hi")).alias("collides"))
    )


def collisions_of(values: DataFrame) -> DataFrame:
    """``key``: the keys of ``values`` (``key``, ``check``; repeats allowed) whose check hashes
    differ."""
    return _grouped(values).where(F.col("collides")).select("key")


def key_dictionary(
    raw: Mapping[str, DataFrame], columns: Mapping[str, tuple[str, ...]] = NAMED_COLUMNS
) -> DataFrame:
    """``key`` (long), ``pseudonym`` (string): one row per distinct pseudonym of ``columns``
    (default :data:`NAMED_COLUMNS`) in the input tables ``raw``, the way back from a key to the
    pseudonym for person-level outputs in ``restricted/``. Call it after
    :func:`key_collisions` found none: a key then has one pseudonym. No actions."""
    values = _pseudonyms(raw, columns)
    if values is None:
        spark = next(iter(raw.values())).sparkSession
        return spark.createDataFrame([], "key long, pseudonym string")
    return values.distinct().select(F.xxhash64("pseudonym").alias("key"), "pseudonym")


def collision_message(n_keys: int) -> str:
    """The error when ``n_keys`` keys are shared by different pseudonyms (never names them)."""
    return (
        f"{n_keys} surrogate key(s) are shared by two different pseudonyms (a 64-bit hash "
        "collision): zicht cannot keep those persons or records apart. Ask the key holder to "
        "pseudonymise this delivery with a new key; nothing was written to the output."
    )
