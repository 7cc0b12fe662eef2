"""The leak guard: nothing leaves ``export/`` that is not in the published schema or that is an
input pseudonym.

Two checks, both before anything is written. The structural one
(:func:`zicht.features.export.check_export`) holds the partner table to the published schema:
columns, CBS codes, catalogue indicators, numbers, no count between 1 and the minimum. The
content scan reads every rendered file back as text the way its format's writer declares
(:mod:`zicht.jobs.export.writers`), streaming each file once, collects its distinct tokens
(:func:`zicht.features.export.tokens_of`) and joins them in Spark against every pseudonym of the
input held by the store, so the pseudonyms never come to the driver and free text (area names,
caveats, the report's script data) is covered too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession

from zicht.features.export import find_pseudonyms, pseudonym_values, tokens_of
from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.jobs import catalog
from zicht.jobs.context import RunContext
from zicht.jobs.export.writers import ExportFile, writer_for


def store_pseudonyms(ctx: RunContext) -> tuple[dict[str, DataFrame], dict[str, tuple[str, ...]]]:
    """Where the store holds every pseudonym of the input, and in which columns.

    With the store's key dictionary (``keys``: one row per distinct pseudonym of the input as
    delivered, rejected rows included) that is its ``pseudonym`` column, with the raw text of
    rejected rows; without one, the validated tables' pseudonym columns (typed values of every
    row and the raw text of rejected rows)."""
    tables: dict[str, DataFrame] = {}
    columns: dict[str, tuple[str, ...]] = {}
    keyed = "keys" in catalog.CATALOGUE and ctx.exists("keys")
    for name, cols in PSEUDONYM_COLUMNS.items():
        if name not in ctx.store_facts.get("accounting", {}):
            continue
        validated = ctx.read("validated", table=name)
        # with the dictionary the typed columns are the store's integer keys, not pseudonyms
        wanted = (
            [f"_raw_{c}" for c in cols] if keyed else [x for c in cols for x in (c, f"_raw_{c}")]
        )
        present = tuple(c for c in wanted if c in validated.columns)
        if present:
            tables[name] = validated
            columns[name] = present
    if keyed:
        tables["keys"] = ctx.read("keys")
        columns["keys"] = ("pseudonym",)
    return tables, columns


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
    columns: Mapping[str, Sequence[str]] = PSEUDONYM_COLUMNS,
) -> list[str]:
    """Problems (empty: clean): rendered files holding a value of a pseudonym column of
    ``tables``. Each file is read back once, as its catalogue format's writer declares."""
    return _scan(
        spark,
        {file_label(f): (catalog.get(f.dataset).format, f.data) for f in files},
        tables,
        columns,
    )


def scan_export(
    spark: SparkSession,
    files: Mapping[str, bytes],
    tables: Mapping[str, DataFrame],
    columns: Mapping[str, Sequence[str]] = PSEUDONYM_COLUMNS,
) -> list[str]:
    """:func:`scan_files` on files by name under ``export/`` (the format from the name)."""
    return _scan(spark, {n: (format_of(n), d) for n, d in files.items()}, tables, columns)


def _scan(
    spark: SparkSession,
    files: Mapping[str, tuple[str, bytes]],
    tables: Mapping[str, DataFrame],
    columns: Mapping[str, Sequence[str]],
) -> list[str]:
    """The tokens of every file (small: see ``export_tokens``) go to Spark and meet the
    pseudonym columns, so the pseudonyms never come to the driver."""
    # one row per distinct token: the package files repeat the national tokens, and which
    # file holds a hit is looked up here (a hit is a token of the files, already on the driver)
    where: dict[str, list[str]] = {}
    for rel, (fmt, data) in sorted(files.items()):
        for tok in tokens_of(writer_for(fmt).text(data)):
            where.setdefault(tok, []).append(rel)
    if not where or not tables:
        return []
    tokens = spark.createDataFrame([(t,) for t in sorted(where)], "token string")
    values = pseudonym_values(tables, columns=columns)
    hits = [r["token"] for r in find_pseudonyms(tokens, values).limit(1000).collect()]
    by_file: dict[str, int] = {}
    for tok in hits:
        for rel in where[tok]:
            by_file[rel] = by_file.get(rel, 0) + 1
    # The message names the files, never the pseudonyms (the log is no safer than export/).
    return [
        f"export/{f} holds {n} value(s) of an input pseudonym column"
        for f, n in sorted(by_file.items())
    ]
