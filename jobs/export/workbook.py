"""``indicators.xlsx``: the Dutch workbook, after CBS StatLine's conventions.

One wide sheet per level (Buurten, Wijken, Gemeenten: one row per area and year, one column per
indicator, a number where published, else its CBS symbol), with a bold header, frozen panes and
an autofilter; Codeboek (every indicator, its Dutch and English definition, unit and caveats),
Tekens (the symbols) and Toelichting (the rules in plain Dutch). Written by XlsxWriter in
constant-memory mode (each row goes to a local temporary file as soon as it is complete); the
finished file comes back as bytes, which the caller writes through :mod:`zicht.jobs.fs`. The
partner table is aggregate and small by construction (areas x years x indicators).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from zicht.features.export import FORMULA_STARTS
from zicht.features.regions import REFERENCE_LEVELS
from zicht.features.units import UNITS
from zicht.jobs.export.writers import CHUNK, decoded

LEVEL_SHEETS = {"buurt": "Buurten", "wijk": "Wijken", "gemeente": "Gemeenten"}
# CBS StatLine's symbols: "x" geheim (confidential), "." gegevens ontbreken (not available), a
# blank cell "een cijfer kan op logische gronden niet voorkomen" (a rate over zero inhabitants).
SYMBOLS = {"suppressed": "x", "not_covered": ".", "not_applicable": ""}
SYMBOL_ROWS = [
    ("x", "geheim", "Onderdrukt om onthulling te voorkomen (te kleine aantallen, of nodig om een "
     "ander onderdrukt cijfer te beschermen; welke regel gold, wordt niet vermeld)."),
    (".", "gegevens ontbreken", "De bron dekt dit gebied of jaar niet."),
    ("(leeg)", "niet van toepassing", "Een cijfer kan op logische gronden niet voorkomen, "
     "bijvoorbeeld een aantal per 1000 inwoners in een gebied zonder inwoners."),
    ("0", "nul", "Er is niets geteld; nul wordt altijd gepubliceerd."),
]  # fmt: skip
# the Dutch unit names and number formats, from the one table of units (zicht.features.units)
UNIT_NL = {name: u.label_nl for name, u in UNITS.items()}
NUMBER_FORMAT = {name: u.excel_format for name, u in UNITS.items()}
CODEBOOK_HEADER = ["indicator", "verschijnsel", "definitie (Engels, uit de catalogus)", "eenheid",
                   "teller", "noemer", "bronnen", "kanttekeningen", "definitie (Nederlands)"]  # fmt: skip
# Text a spreadsheet could run as a formula (or read as an error code: "#N/A") is written as a
# text cell with its text unchanged (and Excel's quote prefix), never as a formula cell.
RISKY = (*FORMULA_STARTS, "#")
OPTIONS = {
    "constant_memory": True,
    # write_string never turns text into a formula, a link or a number; the options say so for
    # any other write() too
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


CREATED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def wide_table(pub: pd.DataFrame, *, indicators: Sequence[str]) -> pd.DataFrame:
    """One level's partner rows wide: one row per (area, year), one column per indicator;
    a published value as a number, any other cell as its CBS symbol."""
    cell: list[object] = []
    for v, st in zip(pub["value"], pub["status"], strict=True):
        cell.append(float(v) if st == "ok" and v != "" else SYMBOLS.get(str(st), "x"))
    frame = pub.assign(cell=pd.Series(cell, index=pub.index, dtype=object))
    wide = frame.set_index(["area_code", "area_name", "year", "indicator"])["cell"].unstack(
        "indicator"
    )
    wide = wide.reindex(columns=[i for i in indicators if i in wide.columns])
    wide = wide.reset_index().sort_values(["area_code", "year"], kind="mergesort")
    return wide.rename(columns={"area_code": "gebiedscode", "area_name": "naam", "year": "jaar"})


def toelichting(report: Mapping[str, object]) -> list[str]:
    params = report.get("parameters", {})
    assert isinstance(params, Mapping)
    return [
        "Cijfers over ondermijning per buurt, wijk en gemeente (zicht).",
        f"Aantallen van 1 tot {params.get('min_count')} worden niet gepubliceerd; ook cijfers "
        "waaruit zo'n aantal terug te rekenen is (via wijk- of gemeentetotalen, of via een "
        "smaller verschijnsel) zijn onderdrukt. Zie het blad Tekens.",
        "Aantallen zijn gehele getallen, aantallen per 1000 hebben één decimaal, aandelen drie.",
        "De definities staan in het blad Codeboek.",
    ]


def write_xlsx(pub: pd.DataFrame, codebook: pd.DataFrame, *, report: Mapping[str, object]) -> bytes:
    """The workbook's bytes. ``pub``: formatted partner rows (all levels); ``codebook``: one row
    per indicator (:func:`zicht.features.export.codebook_frame`)."""
    import xlsxwriter

    units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
    indicators = list(codebook["indicator"])
    with tempfile.TemporaryDirectory(prefix="zicht-xlsx-") as tmp:
        target = os.path.join(tmp, "indicators.xlsx")  # local scratch, not a location of the run
        wb = xlsxwriter.Workbook(target, {**OPTIONS, "tmpdir": tmp})
        # a fixed creation time: the same table gives the same bytes (and digest) in every
        # release, as the CSVs do (XlsxWriter already dates the zip's members 1980-01-31)
        wb.set_properties({"title": "zicht", "created": CREATED})
        bold = wb.add_format({"bold": True})
        quoted = wb.add_format({"quote_prefix": True})
        formats = {unit: wb.add_format({"num_format": f}) for unit, f in NUMBER_FORMAT.items()}

        def put(ws: Any, r: int, c: int, v: str, fmt: Any = None) -> None:
            risk = v.startswith(RISKY)
            if "\r" in v:  # a line break inside a cell is a line feed (as XML reads a CR)
                v = v.replace("\r\n", "\n").replace("\r", "\n")
            ws.write_string(r, c, v, quoted if risk else fmt)

        def text_row(ws: Any, r: int, values: Sequence[object], fmt: Any = None) -> None:
            for c, v in enumerate(values):
                if isinstance(v, str):
                    if v:
                        put(ws, r, c, v, fmt)
                elif v is not None:
                    ws.write(r, c, v, fmt)

        for level, title in LEVEL_SHEETS.items():
            ws = wb.add_worksheet(title)
            ws.freeze_panes(1, 3)  # D2: codes, names and years stay in view
            # a package's reference rows (regio, studiegebied) go below its gemeenten
            levels = (level, *REFERENCE_LEVELS) if level == "gemeente" else (level,)
            wide = wide_table(pub[pub["level"].isin(levels)], indicators=indicators)
            text_row(ws, 0, list(wide.columns), bold)
            fmts = [formats.get(units.get(str(name), "")) for name in wide.columns]
            write_number = ws.write_number
            for r, row in enumerate(wide.itertuples(index=False, name=None), start=1):
                for c, x in enumerate(row):
                    if isinstance(x, str):
                        if x:
                            put(ws, r, c, x)
                    elif x is not None and x == x:  # NaN: no cell for that (area, year)
                        write_number(r, c, x, fmts[c])
            ws.autofilter(0, 0, len(wide), len(wide.columns) - 1)

        ws = wb.add_worksheet("Codeboek")
        ws.freeze_panes(1, 1)
        text_row(ws, 0, CODEBOOK_HEADER, bold)
        for r, cb in enumerate(codebook.itertuples(index=False), start=1):
            values = [cb.indicator, cb.phenomenon, cb.definition, UNIT_NL.get(str(cb.unit), str(cb.unit)),
                      cb.numerator, cb.denominator, cb.sources, cb.caveats,
                      getattr(cb, "definition_nl", "")]  # fmt: skip
            text_row(ws, r, values)
        ws.autofilter(0, 0, len(codebook), len(CODEBOOK_HEADER) - 1)

        ws = wb.add_worksheet("Tekens")
        text_row(ws, 0, ["teken", "betekenis", "toelichting"], bold)
        for r, row in enumerate(SYMBOL_ROWS, start=1):
            text_row(ws, r, row)

        ws = wb.add_worksheet("Toelichting")
        for r, line in enumerate(toelichting(report)):
            text_row(ws, r, [line])
        wb.close()
        with open(target, "rb") as fh:
            return fh.read()


class XlsxWriter:
    """An Office Open XML workbook is a zip of XML parts: the leak guard reads each part as its
    own text (cell text sits in the sheets as inline strings, or in the shared strings)."""

    format = "xlsx"

    def text(self, data: bytes) -> Iterator[str]:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in sorted(z.namelist()):
                with z.open(name) as part:
                    yield from decoded(iter(lambda p=part: p.read(CHUNK), b""))  # type: ignore[misc]
                yield "\n"  # a part's last token never runs into the next part's first


WRITER = XlsxWriter()
