"""No live formulas in the partner files (issue 20, finding 2; OWASP's CSV-injection rule).

Area names that a spreadsheet would run as formulas go through the partner CSV writer and the
workbook writer that ``publish`` uses; the CSV is read back with the csv module and the workbook
with openpyxl and as raw sheet XML, so the check does not rest on the writer's own view.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from zicht.features.export import neutralise_text, partner_csv
from zicht.jobs.export.workbook import write_xlsx

# (written name, what the partner CSV must hold)
NAMES = [
    ('=HYPERLINK("http://x","click")', '\'=HYPERLINK("http://x","click")'),
    ("+31 Centrum", "'+31 Centrum"),
    ("-Haven", "'-Haven"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\tNoord", "'\tNoord"),
    ("\rZuid", "'\rZuid"),
    ("Oud-West", "Oud-West"),
    ("'s-Hertogenbosch", "'s-Hertogenbosch"),
]
CODES = [f"BU000101{i:02d}" for i in range(1, len(NAMES) + 1)]


def partner_rows() -> pd.DataFrame:
    rows = []
    for code, (name, _) in zip(CODES, NAMES, strict=True):
        rows.append(("buurt", code, name, 2024, "drugs.incidents", "12", "ok"))
        rows.append(("buurt", code, name, 2024, "drugs.relative", "-0.25", "ok"))
    rows.append(("gemeente", "GM0001", "=1+1", 2024, "drugs.incidents", "96", "ok"))
    rows.append(("gemeente", "GM0001", "=1+1", 2024, "drugs.relative", "", "suppressed"))
    return pd.DataFrame(
        rows, columns=["level", "area_code", "area_name", "year", "indicator", "value", "status"]
    )


def codebook() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "indicator": ["drugs.incidents", "drugs.relative"],
            "phenomenon": ["drugs", "drugs"],
            "definition": ["=2*3", "-relative to the gemeente"],
            "unit": ["count", "index"],
            "numerator": ["", ""],
            "denominator": ["", ""],
            "sources": ["incidents", "@incidents"],
            "caveats": ["#N/A", ""],
        }
    )


@pytest.mark.parametrize(("name", "expected"), NAMES)
def test_neutralise_text(name: str, expected: str) -> None:
    assert neutralise_text(name) == expected


def test_partner_csv_has_no_formula_cells_and_keeps_numbers() -> None:
    rows = partner_rows()
    before = rows.copy()
    text = partner_csv(rows[rows["level"] == "buurt"])
    assert rows.equals(before)  # the partner table itself is untouched

    back = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(back) == 2 * len(NAMES)  # the carriage return did not split a row
    names = {r["area_code"]: r["area_name"] for r in back}
    assert names == {c: expected for c, (_, expected) in zip(CODES, NAMES, strict=True)}
    assert {r["value"] for r in back} == {"12", "-0.25"}  # numbers stay numbers
    assert {r["year"] for r in back} == {"2024"}
    assert {r["indicator"] for r in back} == {"drugs.incidents", "drugs.relative"}


def test_codebook_csv_is_neutralised() -> None:
    back = list(csv.DictReader(io.StringIO(partner_csv(codebook()), newline="")))
    assert [r["definition"] for r in back] == ["'=2*3", "'-relative to the gemeente"]
    assert [r["sources"] for r in back] == ["incidents", "'@incidents"]
    assert [r["caveats"] for r in back] == ["#N/A", ""]  # not a formula start in CSV


def test_xlsx_text_cells_are_never_formulas(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "indicators.xlsx"
    report = {"parameters": {"min_count": 10}, "audit": {"passed": True}}
    path.write_bytes(write_xlsx(partner_rows(), codebook(), report=report))

    wb = load_workbook(path)
    kinds = {c.data_type for ws in wb for row in ws.iter_rows() for c in row}
    assert "f" not in kinds and "e" not in kinds
    ws = wb["Buurten"]
    names = {r[0].value: r[1].value for r in ws.iter_rows(min_row=2)}
    # the text is kept (no apostrophe in the workbook: the cell type says text); XML reads a
    # carriage return as a line feed
    expected = {c: name.replace("\r", "\n") for c, (name, _) in zip(CODES, NAMES, strict=True)}
    assert names == expected
    assert ws["B2"].quotePrefix  # Excel keeps it text when the partner edits the cell
    assert [c.value for c in ws[2]][3:] == [12.0, -0.25]  # numbers stay numbers
    assert ws["D2"].data_type == "n"
    assert wb["Gemeenten"]["B2"].value == "=1+1" and wb["Gemeenten"]["B2"].data_type == "s"
    assert wb["Codeboek"]["C2"].value == "=2*3" and wb["Codeboek"]["H2"].value == "#N/A"

    with zipfile.ZipFile(path) as z:  # no formula element in any sheet's XML
        sheets = [n for n in z.namelist() if re.match(r"xl/worksheets/sheet\d+\.xml", n)]
        assert sheets
        for name in sheets:
            assert "<f>" not in z.read(name).decode("utf-8"), name


@pytest.mark.e2e
def test_export_writes_formula_names_as_text(tiny_run: dict[str, Path], tmp_path: Path) -> None:
    """``zicht export --from`` on a copy of the tiny run whose first buurt is named like a
    formula: the partner CSV holds the name with an apostrophe, the workbook as a text cell."""
    import shutil

    from openpyxl import load_workbook

    from zicht.jobs import export as export_job

    out = tmp_path / "runs" / "output"
    shutil.copytree(tiny_run["output"], out)
    areas_path = out / "restricted/areas.parquet"
    areas = pd.read_parquet(areas_path)
    first = sorted(areas["buurt_code"])[0]
    areas.loc[areas["buurt_code"] == first, "buurt_name"] = NAMES[0][0]
    if areas_path.is_dir():  # a folder of Parquet parts, as Spark writes it
        shutil.rmtree(areas_path)
    else:
        areas_path.unlink()
    areas.to_parquet(areas_path)

    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        assert export_job.main(["--from", str(out)]) == 0
    finally:
        mp.undo()
    with (out / "export/indicators_buurt.csv").open(newline="", encoding="utf-8") as fh:
        names = {r["area_name"] for r in csv.DictReader(fh) if r["area_code"] == first}
    assert names == {NAMES[0][1]}
    wb = load_workbook(out / "export/indicators.xlsx")
    assert "f" not in {c.data_type for ws in wb for row in ws.iter_rows() for c in row}
    cells = [r[1] for r in wb["Buurten"].iter_rows(min_row=2) if r[0].value == first]
    assert cells and all(c.value == NAMES[0][0] and c.data_type == "s" for c in cells)
