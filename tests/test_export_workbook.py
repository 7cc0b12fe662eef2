"""The partner workbook as a partner's spreadsheet sees it (issue 16, item 3).

Written from a hand-made partner table and opened with openpyxl (not the writer's library), so
the check holds whichever library writes the file: the same sheets, CBS symbols, number formats,
bold header, frozen panes and autofilter, with every cell compared to the hand-written
expectation below.
"""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from zicht.jobs.export.workbook import write_xlsx

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
INDICATORS = ["drugs.incidents", "drugs.incidents_per_1000", "drugs.local_suspect_share", "idx"]
UNITS = ["count", "rate", "share", "index"]
B1, B2 = "BU00010101", "BU00010102"
RISKY = '=HYPERLINK("http://x","klik")'


def partner_rows() -> pd.DataFrame:
    # (area, year) -> the four indicators' (value, status); written out cell by cell so the
    # expectation below is not derived from the same table by the same pivot
    cells = {
        ("buurt", B1, "Centrum", 2023): [
            ("12", "ok"),
            ("4.0", "ok"),
            ("0.250", "ok"),
            ("-0.25", "ok"),
        ],
        ("buurt", B1, "Centrum", 2024): [
            ("", "suppressed"),
            ("", "suppressed"),
            ("", "not_covered"),
            ("1.50", "ok"),
        ],
        ("buurt", B2, RISKY, 2023): [
            ("0", "ok"),
            ("", "not_applicable"),
            ("", "not_applicable"),
            ("0.00", "ok"),
        ],
        ("buurt", B2, RISKY, 2024): [
            ("30", "ok"),
            ("15.2", "ok"),
            ("1.000", "ok"),
            ("", "suppressed"),
        ],
        ("wijk", "WK000101", "#N/A", 2024): [
            ("42", "ok"),
            ("9.9", "ok"),
            ("0.500", "ok"),
            ("2.00", "ok"),
        ],
        ("gemeente", "GM0001", "Testdam", 2024): [
            ("42", "ok"),
            ("9.9", "ok"),
            ("0.500", "ok"),
            ("2.00", "ok"),
        ],
    }
    rows = [
        (lv, code, name, year, ind, v, st)
        for (lv, code, name, year), values in cells.items()
        for ind, (v, st) in zip(INDICATORS, values, strict=True)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def codebook() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "indicator": INDICATORS,
            "phenomenon": ["drugs", "drugs", "drugs", ""],
            "definition": ["Incidents.", "Per 1000.", "Share.", "=2*3"],
            "definition_nl": ["Incidenten.", "Per 1000.", "Aandeel.", "Index."],
            "unit": UNITS,
            "numerator": ["", "drugs.incidents", "", ""],
            "denominator": ["", "context.inhabitants", "", ""],
            "sources": ["incidents", "incidents", "incidents;suspects", "incidents"],
            "caveats": ["", "", "", "#N/A"],
        }
    )


REPORT = {"parameters": {"min_count": 10}, "audit": {"passed": True}}

HEADER = ["gebiedscode", "naam", "jaar", *INDICATORS]
# what a partner sees per level sheet, row by row: numbers as numbers, CBS symbols as text,
# a blank (None) for "not applicable"
EXPECTED = {
    "Buurten": [
        [B1, "Centrum", 2023, 12.0, 4.0, 0.25, -0.25],
        [B1, "Centrum", 2024, "x", "x", ".", 1.5],
        [B2, RISKY, 2023, 0.0, None, None, 0.0],
        [B2, RISKY, 2024, 30.0, 15.2, 1.0, "x"],
    ],
    "Wijken": [["WK000101", "#N/A", 2024, 42.0, 9.9, 0.5, 2.0]],
    "Gemeenten": [["GM0001", "Testdam", 2024, 42.0, 9.9, 0.5, 2.0]],
}
# an index has two decimals (zicht.features.units)
FORMATS = {"drugs.incidents": "0", "drugs.incidents_per_1000": "0.0",
           "drugs.local_suspect_share": "0.000", "idx": "0.00"}  # fmt: skip


@pytest.fixture(scope="module")
def workbook():  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    data = write_xlsx(partner_rows(), codebook(), report=REPORT)
    return load_workbook(io.BytesIO(data)), data


def test_sheets_in_order(workbook) -> None:  # type: ignore[no-untyped-def]
    wb, _ = workbook
    assert wb.sheetnames[:3] == ["Buurten", "Wijken", "Gemeenten"]
    assert {"Codeboek", "Tekens", "Toelichting"} <= set(wb.sheetnames)


@pytest.mark.parametrize("sheet", ["Buurten", "Wijken", "Gemeenten"])
def test_level_sheet_cells_symbols_and_formats(workbook, sheet: str) -> None:  # type: ignore[no-untyped-def]
    wb, _ = workbook
    ws = wb[sheet]
    rows = list(ws.iter_rows())
    assert [c.value for c in rows[0]] == HEADER
    assert all(c.font.b for c in rows[0])  # the header is bold
    assert ws.freeze_panes == "D2"  # codes, names and years stay in view
    body = [[c.value for c in r] for r in rows[1:]]
    assert body == EXPECTED[sheet]
    for r in rows[1:]:
        for c, ind in zip(r[3:], INDICATORS, strict=True):
            if isinstance(c.value, (int, float)):
                assert c.data_type == "n" and c.number_format == FORMATS[ind], (c.coordinate, ind)
            elif c.value is not None:  # a CBS symbol is text
                assert c.data_type == "s" and c.value in {"x", "."}, c.coordinate
        assert r[2].data_type == "n"  # the year is a number


def test_formula_like_text_stays_text(workbook) -> None:  # type: ignore[no-untyped-def]
    wb, data = workbook
    assert wb["Buurten"]["B4"].value == RISKY and wb["Buurten"]["B4"].data_type == "s"
    assert wb["Buurten"]["B4"].quotePrefix  # Excel keeps it text when the partner edits it
    assert wb["Wijken"]["B2"].value == "#N/A" and wb["Wijken"]["B2"].data_type == "s"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert "<f>" not in z.read(name).decode(), name
                # no hyperlink relation either: http... in a text cell is not a link
                assert "<hyperlink" not in z.read(name).decode(), name


def test_symbols_and_codebook_sheets(workbook) -> None:  # type: ignore[no-untyped-def]
    wb, _ = workbook
    tekens = {r[0].value: r[1].value for r in wb["Tekens"].iter_rows(min_row=2) if r[0].value}
    assert tekens["x"] == "geheim" and tekens["."] == "gegevens ontbreken"
    assert tekens["(leeg)"] == "niet van toepassing" and tekens["0"] == "nul"
    assert all(c.font.b for c in wb["Tekens"][1] if c.value)
    cb = wb["Codeboek"]
    header = [c.value for c in cb[1]]
    assert header[0] == "indicator" and all(c.font.b for c in cb[1] if c.value)
    by_ind = {r[0].value: [c.value for c in r] for r in cb.iter_rows(min_row=2)}
    assert list(by_ind) == INDICATORS
    unit_col = header.index("eenheid")
    assert [by_ind[i][unit_col] for i in INDICATORS] == [
        "aantal",
        "per 1000",
        "aandeel (0-1)",
        "index",
    ]
    assert "=2*3" in by_ind["idx"]


def test_the_same_table_gives_the_same_bytes() -> None:
    import time

    first = write_xlsx(partner_rows(), codebook(), report=REPORT)
    time.sleep(1.1)  # the writer's clock moved on; the file must not
    assert write_xlsx(partner_rows(), codebook(), report=REPORT) == first
