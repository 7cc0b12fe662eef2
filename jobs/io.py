"""Read the contract's input folder: find each table, refuse sensitive columns, hash the files.

Reads ``DIR/<table>.parquet`` (a file or a folder of parts) or ``DIR/<table>.csv`` (header,
``,``, ISO dates, RFC 4180 quoting: a quoted field may hold the separator, doubled quotes and
line breaks; UTF-8 unless ``input.encoding`` names another). CSV is read as text with a declared
all-text schema built from its header (never inferred) plus a corrupt-record column, so a row
with the wrong number of fields is a reject, not a silent shift. Spark's decoder replaces a byte
sequence that is invalid in the encoding with U+FFFD; the raw frame lists the contract columns
where that happened in ``_invalid_encoding``, so the row becomes a reject (``<column>.encoding``)
instead of carrying the replacement character into the outputs. Column names are checked with
``zicht.features.names`` against the maintained list in ``conf/base/forbidden_columns.yaml``
plus ``validation.forbidden_columns``. Returns the raw frame holding every contract column
(missing nullable ones as null) for ``zicht.features.validate``. Writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.names import NameList
from zicht.features.names import forbidden_match as name_match
from zicht.features.schemas import INPUT_TABLES
from zicht.jobs import fs as fsmod
from zicht.jobs.config import load_forbidden_columns

CORRUPT = "_corrupt_record"
# array<string>: the contract columns whose text holds U+FFFD, the decoder's replacement for a
# byte sequence invalid in the encoding (always empty for Parquet, which stores UTF-8 strings)
INVALID_ENCODING = "_invalid_encoding"
REPLACEMENT_CHARACTER = "\ufffd"
_NAMES = T.ArrayType(T.StringType())


class InputError(Exception):
    """The input cannot be used: the run stops with this message, nothing is written."""


class ForbiddenColumn(InputError):
    """An input column's name says direct identifier or sensitive attribute: a privacy guard
    refuses the run before anything is written (exit code 4)."""


@dataclass(frozen=True)
class RawInput:
    name: str
    path: str
    fmt: str  # parquet | csv
    # every contract column as the source typed it, _corrupt_record (CSV) and _invalid_encoding
    frame: DataFrame
    present_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    sha256: str | None


def find_table(files: Any, input_dir: str, name: str) -> tuple[str, str] | None:
    """``(location, format)`` of one input table, looked up through ``files`` (a
    :class:`zicht.jobs.fs.FileSystem`, so the input folder may be a URI)."""
    found = []
    for fmt in ("parquet", "csv"):
        loc = fsmod.join(input_dir, f"{name}.{fmt}")
        if files.exists(loc):
            found.append((loc, fmt))
    if len(found) > 1:
        raise InputError(
            f"table {name}: both {name}.parquet and {name}.csv exist in {input_dir}; keep one"
        )
    return found[0] if found else None


def find_tables(files: Any, input_dir: str) -> dict[str, tuple[str, str]]:
    """Every contract table present in the input folder."""
    return {
        name: found
        for name in INPUT_TABLES
        if (found := find_table(files, input_dir, name)) is not None
    }


def name_guard(forbidden: Sequence[str]) -> NameList:
    """The maintained list of identifier and sensitive column names plus a run's own words."""
    return load_forbidden_columns().with_words(forbidden)


def forbidden_match(column: str, forbidden: Sequence[str]) -> str | None:
    """The listed term a column name carries (maintained list plus ``forbidden``), if any.

    For callers that hold only the configured words (``zicht pseudonymize``'s map check).
    """
    found = name_match(column, name_guard(forbidden))
    return None if found is None else found.term


def _csv_reader(spark: SparkSession, encoding: str) -> DataFrameReader:
    """Spark's CSV reader as the contract reads CSV: RFC 4180 quotes, line breaks in fields."""
    return (
        spark.read.option("encoding", encoding)
        .option("multiLine", True)  # a quoted field may hold a line break (one row, not two)
        .option("quote", '"')
        .option("escape", '"')  # RFC 4180 doubles a quote inside a quoted field
    )


def _csv_header(spark: SparkSession, path: str, *, encoding: str = "UTF-8") -> list[str]:
    """The header's field names, parsed by the same reader (quotes, encoding) as the rows."""
    first = _csv_reader(spark, encoding).option("header", False).csv(path).limit(1).collect()
    if not first:
        raise InputError(f"{path}: the file is empty (no header)")
    names = ["" if v is None else str(v) for v in first[0]]
    names[0] = names[0].lstrip("\ufeff")
    return names


def file_sha256(path: str) -> str | None:
    """sha256 over the bytes of a file, or of a folder's data files in name order."""
    p = Path(path)
    if not p.exists():
        return None  # a remote path (HDFS, S3): the manifest says so with null
    files = (
        [p]
        if p.is_file()
        else sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "_")))
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(p).as_posix().encode() if f != p else b"")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_input(
    spark: SparkSession,
    input_dir: str,
    name: str,
    *,
    forbidden: Sequence[str],
    encoding: str = "UTF-8",
) -> RawInput | None:
    """Read one table, or None when it is absent (an error when it is required).

    ``forbidden``: ``validation.forbidden_columns`` (added to the maintained list);
    ``encoding``: ``input.encoding``, for CSV.
    """
    schema = INPUT_TABLES[name]
    found = find_table(fsmod.FileSystem(spark), input_dir, name)
    if found is None:
        if schema.required:
            raise InputError(
                f"table {name}: required, but neither {name}.parquet nor {name}.csv is in {input_dir}"
            )
        return None
    path, fmt = found
    try:
        if fmt == "csv":
            header = [h.strip() for h in _csv_header(spark, path, encoding=encoding)]
            text_schema = T.StructType(
                [T.StructField(h, T.StringType()) for h in header]
                + [T.StructField(CORRUPT, T.StringType())]
            )
            frame = (
                _csv_reader(spark, encoding)
                .option("header", True)
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT)
                .schema(text_schema)
                .csv(path)
            )
            columns = header
        else:
            frame = spark.read.parquet(path)
            columns = list(frame.columns)
    except InputError:
        raise
    except Exception as exc:  # unreadable file: one clear message, not a stack trace
        raise InputError(f"table {name}: cannot read {path}: {str(exc).splitlines()[0]}") from exc

    lowered = {c.lower().strip(): c for c in columns}
    contract = set(schema.names)
    guard = name_guard(forbidden)
    for col in columns:
        low = col.lower().strip()
        if low in contract or col == CORRUPT:
            continue
        hit = name_match(col.strip(), guard)
        if hit is not None:
            raise ForbiddenColumn(
                f"table {name}: column {col!r} looks like {hit.describe()}; remove it from "
                "the extract (inputs carry pseudonyms only, and no sensitive attributes)"
            )
    missing = [
        c.name for c in schema.columns if c.name not in lowered and not (c.nullable or c.optional)
    ]
    if missing:
        raise InputError(
            f"table {name}: required column(s) {', '.join(missing)} missing in {path} "
            f"(columns found: {', '.join(columns)})"
        )
    extra = tuple(sorted(c for c in columns if c.lower().strip() not in contract and c != CORRUPT))
    select = []
    for c in schema.columns:
        if c.name in lowered:
            select.append(F.col(f"`{lowered[c.name]}`").alias(c.name))
        else:
            select.append(F.lit(None).cast(c.spark_type).alias(c.name))
    if fmt == "csv":
        select.append(F.col(CORRUPT))
        # every field of a CSV read is text: a U+FFFD in it is the decoder's replacement
        flagged = [
            F.when(F.col(f"`{lowered[c.name]}`").contains(REPLACEMENT_CHARACTER), F.lit(c.name))
            for c in schema.columns
            if c.name in lowered
        ]
        select.append(F.array_compact(F.array(*flagged)).cast(_NAMES).alias(INVALID_ENCODING))
    else:
        select.append(F.lit(None).cast("string").alias(CORRUPT))
        select.append(F.array().cast(_NAMES).alias(INVALID_ENCODING))
    if name == "unusual_transactions":
        from zicht.features.themes import UNDECLARED_MESSAGE, undeclared_rows

        # Wwft: an unusual transaction FIU-NL has not declared suspicious may not be here at
        # all; one narrow scan of the status column, before anything is written
        if not undeclared_rows(
            frame.select(F.col(f"`{lowered['status']}`").alias("status"))
        ).isEmpty():
            raise ForbiddenColumn(f"table {name}: {UNDECLARED_MESSAGE}")
    return RawInput(
        name=name,
        path=path,
        fmt=fmt,
        frame=frame.select(*select),
        present_columns=tuple(c for c in schema.names if c in lowered),
        extra_columns=extra,
        sha256=None,  # the ingest stage digests every input file through Spark
    )
