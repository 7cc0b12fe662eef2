"""The level sheets' data rows, written as XML by zicht (issue 16, item 3), against XlsxWriter.

XlsxWriter writes a national sheet at about 10 microseconds a cell, so zicht writes the rows'
XML itself and splices it into XlsxWriter's workbook. The reference here is XlsxWriter writing
the same cells one by one (``write_number`` / ``write_string``, constant-memory mode, as the
workbook did before): the sheet XML and the styles must be the same bytes.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from zicht.jobs.export.workbook import OPTIONS, RISKY, dimension, sheet_rows, splice_rows

NASTY = [
    "Súdwest-Fryslân",
    " leading space",
    "trailing space ",
    "a & b < c > d \"q\" 'x'",
    "=SUM(A1:A2)",
    "+31",
    "-dash",
    "@at",
    "#N/A",
    "line\r\nbreak\rcr\nlf",
    "ctrl\x01\x1f_x0041_",
    "\ufffe\uffff",
    "tab\tinside",
    "x" * 20_000,  # over half of Excel's 32,767 UTF-16 units: the length check runs
    "😀" * 17_000,  # 34,000 UTF-16 units: cut to 32,767
    "",
]


def _wide() -> pd.DataFrame:
    rows = []
    for i, name in enumerate(NASTY):
        rows.append(
            [f"BU{i:08d}", name, 2018 + i % 3, float(i) * 1.5, "x", 1e-20 * i, 123456789.123]
        )
    rows.append(["BU99999999", "geen cijfers", 2020, None, ".", math.nan, ""])
    rows.append([None, None, None, None, None, math.nan, ""])  # a row without any cell
    frame = pd.DataFrame(rows, columns=["gebiedscode", "naam", "jaar", "a", "b", "c", "d"])
    for col in ("a", "b", "c", "d"):
        frame[col] = frame[col].astype(object)
    return frame


def _workbook(wide: pd.DataFrame, *, by_cell: bool, tmp: Path) -> bytes:
    import xlsxwriter

    # constant-memory mode needs a file (in-memory mode turns it off, and writes shared strings)
    target = tmp / ("by_cell.xlsx" if by_cell else "header.xlsx")
    wb = xlsxwriter.Workbook(str(target), {**OPTIONS, "tmpdir": str(tmp)})
    bold = wb.add_format({"bold": True})
    quoted = wb.add_format({"quote_prefix": True})
    one = wb.add_format({"num_format": "0.0"})
    three = wb.add_format({"num_format": "0.000"})
    ids = [f._get_xf_index() for f in (bold, quoted, one, three)]
    fmts = [None, None, None, one, None, three, one]
    ws = wb.add_worksheet("Buurten")
    ws.freeze_panes(1, 3)
    for c, name in enumerate(wide.columns):
        ws.write_string(0, c, name, bold)
    if by_cell:
        for r, row in enumerate(wide.itertuples(index=False, name=None), start=1):
            for c, x in enumerate(row):
                if isinstance(x, str):
                    if x:
                        v = x.replace("\r\n", "\n").replace("\r", "\n")
                        ws.write_string(r, c, v, quoted if x.startswith(RISKY) else None)
                elif x is not None and x == x:
                    ws.write_number(r, c, x, fmts[c])
    ws.autofilter(0, 0, len(wide), len(wide.columns) - 1)
    wb.add_worksheet("Tekens").write_string(0, 0, "teken", bold)
    wb.close()
    if by_cell:
        return target.read_bytes()
    styles = [ids[2] if f is one else ids[3] if f is three else None for f in fmts]
    spliced = io.BytesIO()
    parts = {"xl/worksheets/sheet1.xml": (dimension(wide), sheet_rows(wide, styles, quoted=ids[1]))}
    splice_rows(str(target), spliced, parts)
    return spliced.getvalue()


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_spliced_rows_are_the_bytes_xlsxwriter_writes_cell_by_cell(tmp_path: Path) -> None:
    wide = _wide()
    reference = _parts(_workbook(wide, by_cell=True, tmp=tmp_path))
    spliced = _parts(_workbook(wide, by_cell=False, tmp=tmp_path))
    assert list(spliced) == list(reference)  # the same parts, in the same order
    for name, data in reference.items():
        assert spliced[name] == data, name
    sheet = reference["xl/worksheets/sheet1.xml"].decode()
    # the reference holds what the case is about: quoted formulas, escapes, a cut string
    assert '<dimension ref="A1:G18"/>' in sheet  # the last row with a cell, not the empty one
    assert "_x005F_x0041_" in sheet and "_x0001_" in sheet and "&amp;" in sheet
    assert 'xml:space="preserve"> leading space' in sheet


def test_a_sheet_of_headers_only_keeps_xlsxwriters_dimension(tmp_path: Path) -> None:
    wide = _wide().iloc[:0]
    assert dimension(wide) is None
    spliced = _parts(_workbook(wide, by_cell=False, tmp=tmp_path))
    assert spliced == _parts(_workbook(wide, by_cell=True, tmp=tmp_path))


def test_an_infinite_value_is_refused_not_written() -> None:
    wide = pd.DataFrame({"gebiedscode": ["BU00010001"], "a": [math.inf]})
    with pytest.raises(ValueError, match="infinite value in column 'a'"):
        list(sheet_rows(wide, [None, 2], quoted=1))
