"""Read the contract's input folder: find each table, refuse sensitive columns, hash the files.

Reads ``DIR/<table>.parquet`` (a file or a folder of parts) or ``DIR/<table>.csv`` (UTF-8,
header, ``,``, ISO dates). CSV is read as text with a declared all-text schema built from its
header (never inferred) plus a corrupt-record column, so a row with the wrong number of fields
is a reject, not a silent shift. Returns the raw frame holding every contract column (missing
nullable ones as null) for ``zicht.features.validate``. Writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.schemas import INPUT_TABLES

CORRUPT = "_corrupt_record"


class InputError(Exception):
    """The input cannot be used: the run stops with this message, nothing is written."""


@dataclass(frozen=True)
class RawInput:
    name: str
    path: str
    fmt: str  # parquet | csv
    frame: DataFrame  # every contract column + _corrupt_record (CSV) as the source typed it
    present_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    sha256: str | None


def find_table(input_dir: str, name: str) -> tuple[str, str] | None:
    base = Path(input_dir)
    found = []
    for fmt in ("parquet", "csv"):
        p = base / f"{name}.{fmt}"
        if p.exists():
            found.append((str(p), fmt))
    if len(found) > 1:
        raise InputError(
            f"table {name}: both {name}.parquet and {name}.csv exist in {input_dir}; keep one"
        )
    return found[0] if found else None


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def forbidden_match(column: str, forbidden: Sequence[str]) -> str | None:
    """The forbidden word a column name carries, if any (whole words, or long words inside)."""
    toks = _tokens(column)
    joined = "_".join(toks)
    for word in forbidden:
        wt = _tokens(word)
        n = len(wt)
        if any(toks[i : i + n] == wt for i in range(len(toks) - n + 1)):
            return word
        if len(word) >= 6 and word.replace("_", "") in joined.replace("_", ""):
            return word
    return None


def _csv_header(spark: SparkSession, path: str) -> list[str]:
    first = spark.read.text(path).limit(1).collect()
    if not first:
        raise InputError(f"{path}: the file is empty (no header)")
    line = first[0][0].lstrip("\ufeff")
    return next(csv.reader(io.StringIO(line)))


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
    spark: SparkSession, input_dir: str, name: str, *, forbidden: Sequence[str]
) -> RawInput | None:
    """Read one table, or None when it is absent (an error when it is required)."""
    schema = INPUT_TABLES[name]
    found = find_table(input_dir, name)
    if found is None:
        if schema.required:
            raise InputError(
                f"table {name}: required, but neither {name}.parquet nor {name}.csv is in {input_dir}"
            )
        return None
    path, fmt = found
    try:
        if fmt == "csv":
            header = [h.strip() for h in _csv_header(spark, path)]
            text_schema = T.StructType(
                [T.StructField(h, T.StringType()) for h in header]
                + [T.StructField(CORRUPT, T.StringType())]
            )
            frame = (
                spark.read.option("header", True)
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT)
                .option("encoding", "UTF-8")
                .option("multiLine", False)
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
    for col in columns:
        low = col.lower().strip()
        if low in contract or col == CORRUPT:
            continue
        word = forbidden_match(low, forbidden)
        if word is not None:
            raise InputError(
                f"table {name}: column {col!r} looks like a direct identifier or sensitive "
                f"attribute ({word}); remove it from the extract (inputs carry pseudonyms only)"
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
    else:
        select.append(F.lit(None).cast("string").alias(CORRUPT))
    return RawInput(
        name=name,
        path=path,
        fmt=fmt,
        frame=frame.select(*select),
        present_columns=tuple(c for c in schema.names if c in lowered),
        extra_columns=extra,
        sha256=file_sha256(path),
    )
