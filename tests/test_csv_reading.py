"""CSV as the contract reads it (issue 20, finding 4): RFC 4180 quoting and a declared encoding.

Each input file is written here byte by byte (a quoted field with a line break, doubled quotes,
a row with one field too many, a latin-1 byte in a UTF-8 file), so the expected rows and rules
are the ones a careful reader of those bytes would see, written out inline.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from zicht.features.settings import ConfigError
from zicht.features.validate import RuleContext, validate_table
from zicht.jobs.config import load_settings
from zicht.jobs.io import INVALID_ENCODING, InputError, read_input

HEADER = b"buurt_code,buurt_name,wijk_code,wijk_name,gemeente_code,gemeente_name,x,y,land_area_ha"
TAIL = b",WK000101,Wijk 01,GM0001,Testdam,120000,487000,10\r\n"


def _write(folder: Path, body: bytes, *, header: bytes = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "areas.csv").write_bytes(header + b"\r\n" + body)
    return folder


def _rows(spark: SparkSession, folder: Path, **kw: object) -> dict[str, dict]:
    raw = read_input(spark, str(folder), "areas", forbidden=(), **kw)  # type: ignore[arg-type]
    assert raw is not None
    return {r["buurt_code"]: r.asDict() for r in raw.frame.collect()}


@pytest.mark.spark
def test_quoted_line_breaks_quotes_and_commas_are_one_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    body = (
        b"BU00010101,Centrum" + TAIL
        + b'BU00010102,"Oud\r\nWest"' + TAIL
        + b'BU00010103,"De ""Kaai"", haven"' + TAIL
        + b"BU00010104,Noord,extra" + TAIL
        + b"BU00010105,Zuid\r\n"
    )  # fmt: skip
    # a byte-order mark and a quoted name in the header, as spreadsheet exports write them
    folder = _write(tmp_path / "in", body, header=b'\xef\xbb\xbf"buurt_code"' + HEADER[10:])
    rows = _rows(spark, folder)
    assert sorted(rows) == ["BU00010101", "BU00010102", "BU00010103", "BU00010104", "BU00010105"]
    # one row; the reader normalises the line break inside the quotes to \n
    assert rows["BU00010102"]["buurt_name"] == "Oud\nWest"
    assert rows["BU00010102"]["land_area_ha"] == "10"
    assert rows["BU00010103"]["buurt_name"] == 'De "Kaai", haven'
    corrupt = sorted(k for k, r in rows.items() if r["_corrupt_record"] is not None)
    assert corrupt == ["BU00010104", "BU00010105"]  # a field too many, and too few

    ctx = RuleContext(run_date=dt.date(2025, 1, 1))
    raw = read_input(spark, str(folder), "areas", forbidden=())
    assert raw is not None
    rules = {
        r["buurt_code"]: r["reject_rule"]
        for r in validate_table("areas", raw.frame, ctx)
        .select("buurt_code", "reject_rule")
        .collect()
    }
    assert rules["BU00010101"] is None and rules["BU00010102"] is None
    assert rules["BU00010103"] is None
    assert "row.malformed" in (rules["BU00010104"] or "")
    assert "row.malformed" in (rules["BU00010105"] or "")


@pytest.mark.spark
def test_bytes_invalid_in_the_encoding_are_flagged_never_replaced_silently(
    spark: SparkSession, tmp_path: Path
) -> None:
    # "Café" with a latin-1 e-acute (0xE9: not valid UTF-8) and one with its UTF-8 bytes
    body = b"BU00010101,Caf\xe9" + TAIL + b"BU00010102,Caf\xc3\xa9" + TAIL
    folder = _write(tmp_path / "in", body)
    rows = _rows(spark, folder)
    assert rows["BU00010101"][INVALID_ENCODING] == ["buurt_name"]
    assert rows["BU00010102"][INVALID_ENCODING] == []
    assert rows["BU00010102"]["buurt_name"] == "Café"

    # declared as latin-1, the first row is fine and the second one is mojibake, not invalid
    latin = _rows(spark, folder, encoding="ISO-8859-1")
    assert latin["BU00010101"]["buurt_name"] == "Café"
    assert latin["BU00010101"][INVALID_ENCODING] == []
    assert latin["BU00010102"]["buurt_name"] == "CafÃ©"


@pytest.mark.spark
def test_invalid_bytes_make_an_encoding_reject(spark: SparkSession, tmp_path: Path) -> None:
    # the rule itself lives in zicht.features.validate (ENCODING_FLAGS), fed by the reader
    body = b"BU00010101,Caf\xe9" + TAIL + b"BU00010102,Centrum" + TAIL
    raw = read_input(spark, str(_write(tmp_path / "in", body)), "areas", forbidden=())
    assert raw is not None
    ctx = RuleContext(run_date=dt.date(2025, 1, 1))
    rules = dict(
        validate_table("areas", raw.frame, ctx).select("buurt_code", "reject_rule").collect()
    )
    assert rules == {"BU00010101": "buurt_name.encoding", "BU00010102": None}


@pytest.mark.spark
def test_parquet_has_no_encoding_flags(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pd.DataFrame(
        {
            "buurt_code": ["BU00010101"],
            "buurt_name": ["Café"],
            "wijk_code": ["WK000101"],
            "wijk_name": ["Wijk 01"],
            "gemeente_code": ["GM0001"],
            "gemeente_name": ["Testdam"],
            "x": [120000.0],
            "y": [487000.0],
            "land_area_ha": [10.0],
        }
    ).to_parquet(folder / "areas.parquet")
    rows = _rows(spark, folder)
    assert rows["BU00010101"][INVALID_ENCODING] == []


@pytest.mark.spark
@pytest.mark.parametrize("column", ["BSNnr", "burgerservicenummer", "nationalities"])
def test_identifier_columns_stop_the_read(spark: SparkSession, tmp_path: Path, column: str) -> None:
    header = HEADER + b"," + column.encode()
    folder = _write(tmp_path / "in", b"BU00010101,Centrum" + TAIL[:-2] + b",x\r\n", header=header)
    with pytest.raises(InputError, match=f"column '{column}' looks like"):
        read_input(spark, str(folder), "areas", forbidden=())


@pytest.mark.spark
def test_ordinary_extra_columns_are_listed_not_refused(spark: SparkSession, tmp_path: Path) -> None:
    header = HEADER + b",notes_count,category"
    folder = _write(tmp_path / "in", b"BU00010101,Centrum" + TAIL[:-2] + b",3,a\r\n", header=header)
    raw = read_input(spark, str(folder), "areas", forbidden=())
    assert raw is not None and raw.extra_columns == ("category", "notes_count")


def test_encoding_is_configured_and_checked() -> None:
    assert load_settings().input.encoding == "UTF-8"
    assert load_settings(input={"encoding": "windows-1252"}).input.encoding == "windows-1252"
    with pytest.raises(ConfigError, match="input.encoding"):
        load_settings(input={"encoding": "utf-9"})
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(input={"encodng": "UTF-8"})
