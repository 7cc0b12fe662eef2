"""``zicht pseudonymize``: a partner's raw CSV extract -> one contract input table.

Run by the party that holds the key (a trusted third party, never the analysts: whoever holds
the key re-identifies a known BSN by hashing it)::

    export ZICHT_PSEUDONYM_KEY=...   # at least 32 bytes, e.g. `python -c "import secrets; print(secrets.token_hex(32))"`
    zicht pseudonymize --table persons --in brp.csv --out DIR --map conf/pseudonymize/persons.yaml

    # on a cluster: zicht as the wheel's .zip (a .whl on --py-files never reaches the
    # executors), the executors' Python environment as the PEX (README, "Running on a cluster")
    spark-submit --master ... --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        --files dist/zicht-executor.pex --conf spark.pyspark.python=./zicht-executor.pex \\
        --conf spark.pyspark.driver.python=.venv/bin/python \\
        jobs/pseudonymize.py --table persons --in brp.csv --out DIR --map persons.yaml

Reads the raw extract (CSV with a header; separator and encoding from the map's ``csv:``), the
map (YAML, see ``conf/pseudonymize/`` and ``zicht.features.pseudonymize``) and the key from the
environment variable ``ZICHT_PSEUDONYM_KEY`` (``--key-env`` names another); it refuses to run
without a key. Writes ``DIR/<table>.parquet`` (a folder of Parquet parts the contract reader
reads as it is) and ``DIR/<table>.pseudonymize.json`` (rows, nulls per column, the key's
fingerprint, the map's sha256). The key is never written, logged, passed on the command line or
put in the Spark configuration; this job does not talk to MLflow.

Why Spark and not pandas: a national BRP extract has ~18M rows per snapshot, and the trusted
third party may hold it on HDFS or object storage; Spark reads and writes those paths, spreads
the hashing over the cores (the HMAC runs in a pandas UDF, since Spark has no keyed hash:
``sha2`` and ``hash`` are unkeyed, and an unkeyed hash of a BSN is reversed by hashing all
10^9 candidates) and writes the Parquet parts the contract reader takes directly.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.pseudonymize import (
    MIN_KEY_BYTES,
    MapError,
    PseudonymMap,
    check_header,
    key_fingerprint,
    parse_map,
    with_pseudonyms,
)
from zicht.features.schemas import INPUT_TABLES
from zicht.features.settings import ConfigError
from zicht.jobs import fs as fsmod
from zicht.jobs.config import load_settings
from zicht.jobs.io import forbidden_match
from zicht.jobs.runtime import add_verbosity_flags, build_spark, configure_logging

log = logging.getLogger("zicht")

DEFAULT_KEY_ENV = "ZICHT_PSEUDONYM_KEY"
CORRUPT = "_corrupt_record"


class PseudonymizeError(Exception):
    """The job cannot run safely; the message never holds the key or a raw value."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="zicht pseudonymize",
        description="Turn a partner's raw extract into a contract input table (key holder only).",
    )
    p.add_argument("--table", required=True, choices=sorted(INPUT_TABLES), help="contract table")
    p.add_argument("--in", dest="raw", required=True, help="raw extract (CSV with a header)")
    p.add_argument("--out", required=True, help="contract input folder to write the table into")
    p.add_argument("--map", required=True, help="map file (YAML), e.g. conf/pseudonymize/X.yaml")
    p.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        help=f"environment variable holding the key (default {DEFAULT_KEY_ENV})",
    )
    add_verbosity_flags(p)
    return p.parse_args(argv)


def read_key(env: str) -> bytes:
    value = os.environ.get(env, "")
    if not value:
        raise PseudonymizeError(
            f"refusing to run: the key is not set (environment variable {env}); the key holder "
            "sets it, never a file or the command line"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymizeError(
            f"refusing to run: the key in {env} is shorter than {MIN_KEY_BYTES} bytes"
        )
    return key


def load_map(path: str, table: str) -> PseudonymMap:
    p = Path(path)
    if not p.is_file():
        raise PseudonymizeError(f"--map {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PseudonymizeError(f"--map {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PseudonymizeError(f"--map {path}: the top level must be a mapping")
    forbidden = load_settings().validation.forbidden_columns
    pmap = parse_map(data, identifier_word=lambda c: forbidden_match(c, forbidden))
    if pmap.table != table:
        raise PseudonymizeError(f"--map {path} is for table {pmap.table}, not {table}")
    return pmap


def _is_remote(path: str) -> bool:
    return "://" in path


def read_header(spark: SparkSession | None, path: str, pmap: PseudonymMap) -> list[str]:
    """The extract's column names (local files are read before Spark starts)."""
    if spark is None:
        with open(path, encoding=pmap.encoding, newline="") as fh:
            line = fh.readline()
    else:
        first = spark.read.option("encoding", pmap.encoding).text(path).limit(1).collect()
        line = first[0][0] if first else ""
    if not line.strip():
        raise PseudonymizeError(f"--in {path}: empty file (no header)")
    header = next(csv.reader(io.StringIO(line.lstrip("\ufeff")), delimiter=pmap.sep))
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise PseudonymizeError(f"--in {path}: duplicate column names in the header")
    return header


def pseudonymize(
    spark: SparkSession, *, raw_path: str, out_dir: str, pmap: PseudonymMap, key: bytes
) -> dict[str, object]:
    """Read, pseudonymise and write one table; returns the report written beside it."""
    t0 = time.perf_counter()
    header = read_header(None if not _is_remote(raw_path) else spark, raw_path, pmap)
    check_header(pmap, header)
    schema = T.StructType(
        [T.StructField(h, T.StringType()) for h in header]
        + [T.StructField(CORRUPT, T.StringType())]
    )
    raw = (
        spark.read.option("header", True)
        .option("sep", pmap.sep)
        .option("encoding", pmap.encoding)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("multiLine", False)
        .schema(schema)
        .csv(raw_path)
    )
    first = F.col(f"`{header[0]}`")
    counts = raw.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(CORRUPT).isNotNull().cast("long")).alias("bad"),
        F.count(first).alias("_"),  # Spark refuses a query on the corrupt column alone
    ).first()
    assert counts is not None
    rows_read, bad = int(counts["rows"]), int(counts["bad"] or 0)
    log.info(
        "pseudonymize %s: %d rows read in %.1f s", pmap.table, rows_read, time.perf_counter() - t0
    )
    if bad:
        # The rows themselves hold raw identifiers: count them, never show them.
        raise PseudonymizeError(
            f"--in {raw_path}: {bad} of {rows_read} rows do not have the header's "
            f"{len(header)} fields (separator {pmap.sep!r}); fix the extract"
        )
    out = with_pseudonyms(raw.drop(CORRUPT), pmap=pmap, key=key)
    target = f"{out_dir.rstrip('/')}/{pmap.table}.parquet"
    out.write.mode("errorifexists").parquet(target)
    log.info("pseudonymize %s: written after %.1f s", pmap.table, time.perf_counter() - t0)

    written = spark.read.parquet(target)
    agg = written.agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in written.columns],
    ).first()
    assert agg is not None
    report: dict[str, object] = {
        "table": pmap.table,
        "rows_read": rows_read,
        "rows_written": int(agg["rows"]),
        "nulls": {c: int(agg[c] or 0) for c in written.columns},
        "columns": {t.column: {"how": t.how, "kind": t.kind} for t in pmap.targets},
        "dropped": sorted(set(header) - set(pmap.sources)),
        "key_fingerprint": key_fingerprint(key),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # before build_spark: the session's own log level follows (Spark INFO only with -v)
    configure_logging(args.verbosity)
    try:
        key = read_key(args.key_env)
        pmap = load_map(args.map, args.table)
        if not _is_remote(args.raw) and not Path(args.raw).is_file():
            raise PseudonymizeError(f"--in {args.raw}: no such file")
        if not _is_remote(args.raw):
            check_header(pmap, read_header(None, args.raw, pmap))
        target = Path(args.out) / f"{pmap.table}.parquet"
        if not _is_remote(args.out) and target.exists():
            raise PseudonymizeError(f"{target} exists; the job never overwrites a table")
        settings = load_settings()
    except (PseudonymizeError, MapError, ConfigError, OSError, UnicodeDecodeError) as exc:
        print(f"zicht pseudonymize: {exc}", file=sys.stderr)
        return 2
    spark = build_spark(settings.spark, app_name="zicht-pseudonymize")
    try:
        report = pseudonymize(spark, raw_path=args.raw, out_dir=args.out, pmap=pmap, key=key)
    except (PseudonymizeError, MapError) as exc:
        print(f"zicht pseudonymize: {exc}", file=sys.stderr)
        return 2
    report["map_sha256"] = hashlib.sha256(Path(args.map).read_bytes()).hexdigest()
    # through Hadoop's FileSystem, so the report lands beside the table on HDFS or S3 too
    files = fsmod.FileSystem(spark)
    files.write_text(
        fsmod.join(args.out, f"{pmap.table}.pseudonymize.json"),
        json.dumps(report, indent=2),
        overwrite=True,
    )
    log.info(
        "pseudonymize %s: %s rows read, %s written in %.1f s; nulls %s; key fingerprint %s",
        pmap.table,
        report["rows_read"],
        report["rows_written"],
        report["seconds"],
        report["nulls"],
        report["key_fingerprint"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
