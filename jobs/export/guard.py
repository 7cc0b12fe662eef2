"""The leak guard: nothing leaves ``export/`` that is not in the published schema or that is an
input pseudonym.

Two checks, both before anything is written. The structural one
(:func:`zicht.features.export.check_export`) holds the partner table to the published schema:
columns, CBS codes, catalogue indicators, numbers, no count between 1 and the minimum. The
content scan reads every rendered file back as text the way its format's writer declares
(:mod:`zicht.jobs.export.writers`), streaming each file once, collects its distinct tokens
(:func:`zicht.features.export.tokens_of`) and joins them in Spark against every pseudonym of the
input held by the store, so the pseudonyms never come to the driver and free text (area names,
caveats, the report's script data) is covered too. The keyed store holds a pseudonym as its
64-bit key (:mod:`zicht.features.keys`): there the tokens are hashed the same way and meet the
keys, and the raw text of rejected rows meets the tokens themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from zicht.features.export import (
    find_keys,
    find_pseudonyms,
    pseudonym_keys,
    pseudonym_values,
    tokens_of,
)
from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.jobs import catalog
from zicht.jobs.context import RunContext
from zicht.jobs.export.writers import ExportFile, writer_for

Columns = Mapping[str, Sequence[str]]


def store_pseudonyms(
    ctx: RunContext,
) -> tuple[dict[str, DataFrame], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Where the store holds every pseudonym of the input: the tables, the columns holding a
    pseudonym's text and the columns holding its 64-bit key.

    In the keyed store (``keys`` exists) the typed pseudonym columns of every validated table
    are keys and the raw text of rejected rows is text; in a store from before the keys, both
    the typed columns and the raw text are text. Where ingest wrote ``pseudonym_keys`` (every
    distinct key of the input, rejected rows too: a superset of the key columns, tested), that
    one column stands for the key columns of every table (56.6M distinct keys in the `nl`
    benchmark; the join took 15.6-17.6 s there against 29.5-39.4 s over every key column), and
    the raw text of the rejected rows too: the key set was made from every row as delivered."""
    if "keys" in catalog.CATALOGUE and ctx.exists("pseudonym_keys"):
        # the key set holds the keys of the rejected rows' text as well (key_set reads every
        # row as delivered), so the validated tables need no probe of their own: their text
        # columns took 12-22 s of the guard at `nl`
        return {"pseudonym_keys": ctx.read("pseudonym_keys")}, {}, {"pseudonym_keys": ("key",)}
    tables: dict[str, DataFrame] = {}
    text: dict[str, tuple[str, ...]] = {}
    keyed: dict[str, tuple[str, ...]] = {}
    is_keyed = "keys" in catalog.CATALOGUE and ctx.exists("keys")
    for name, cols in PSEUDONYM_COLUMNS.items():
        if name not in ctx.store_facts.get("accounting", {}):
            continue
        validated = ctx.read("validated", table=name)
        raw = tuple(c for c in (f"_raw_{c}" for c in cols) if c in validated.columns)
        typed = tuple(c for c in cols if c in validated.columns)
        tables[name] = validated
        if is_keyed:
            text[name], keyed[name] = raw, typed
        else:
            text[name] = typed + raw
    return tables, text, keyed


def file_label(f: ExportFile) -> str:
    """The file's path under ``export/`` (for messages and the scan's rows)."""
    loc = catalog.get(f.dataset).path("", **dict(f.params)).lstrip("/")
    return loc.removeprefix("export/")


def format_of(name: str) -> str:
    """A file's format from its name (``geo/x.geojson`` -> ``geojson``), for files that come
    without their catalogue dataset."""
    return name.rsplit(".", 1)[-1].lower()


def file_text(name: str, data: bytes) -> str:
    """The whole text of one export file as the leak guard reads it (for checks by hand)."""
    return "".join(writer_for(format_of(name)).text(data))


def scan_files(
    spark: SparkSession,
    files: Sequence[ExportFile],
    tables: Mapping[str, DataFrame],
    columns: Columns = PSEUDONYM_COLUMNS,
    keyed: Columns | None = None,
) -> list[str]:
    """Problems (empty: clean): rendered files holding a value of a pseudonym column of
    ``tables``: ``columns`` hold the pseudonyms' text, ``keyed`` their 64-bit keys. Each file is
    read back once, as its catalogue format's writer declares."""
    return _scan(
        spark,
        {file_label(f): (catalog.get(f.dataset).format, f.data) for f in files},
        tables,
        columns,
        keyed or {},
    )


def scan_export(
    spark: SparkSession,
    files: Mapping[str, bytes],
    tables: Mapping[str, DataFrame],
    columns: Columns = PSEUDONYM_COLUMNS,
    keyed: Columns | None = None,
) -> list[str]:
    """:func:`scan_files` on files by name under ``export/`` (the format from the name)."""
    return _scan(
        spark, {n: (format_of(n), d) for n, d in files.items()}, tables, columns, keyed or {}
    )


def _scan(
    spark: SparkSession,
    files: Mapping[str, tuple[str, bytes]],
    tables: Mapping[str, DataFrame],
    columns: Columns,
    keyed: Columns,
) -> list[str]:
    """The tokens of every file (small: see ``export_tokens``) go to Spark and meet the
    pseudonym columns (text) and the key columns (hashed tokens), so the pseudonyms never come
    to the driver."""
    # one row per distinct token: the package files repeat the national tokens, and which
    # file holds a hit is looked up here (a hit is a token of the files, already on the driver)
    per_file = [
        (rel, tokens_of(writer_for(fmt).text(data))) for rel, (fmt, data) in sorted(files.items())
    ]
    distinct: set[str] = set().union(*(toks for _, toks in per_file))
    if not distinct or not tables:
        return []
    # through Arrow (a pandas column), not as Python rows: millions of tokens nationally
    tokens = spark.createDataFrame(
        pd.DataFrame({"token": pd.Series(sorted(distinct), dtype=object)}), "token string"
    )
    by_text = any(columns.get(n) for n in tables)
    by_key = any(keyed.get(n) for n in tables)
    if not (by_text or by_key):
        raise ValueError("no pseudonym column in the inputs: nothing to scan against")
    hits: set[str] = set()
    if by_text:
        found = find_pseudonyms(tokens, pseudonym_values(tables, columns=columns))
        hits |= {r["token"] for r in found.limit(1000).collect()}
    if by_key:
        hits |= set(find_keys(tokens, pseudonym_keys(tables, columns=keyed)))
    by_file: dict[str, int] = {}
    for rel, toks in per_file:
        n = sum(tok in toks for tok in hits)
        if n:
            by_file[rel] = n
    # The message names the files, never the pseudonyms (the log is no safer than export/).
    return [
        f"export/{f} holds {n} value(s) of an input pseudonym column"
        for f, n in sorted(by_file.items())
    ]
