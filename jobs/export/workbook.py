"""``indicators.xlsx``: the Dutch workbook, after CBS StatLine's conventions.

One wide sheet per level (Buurten, Wijken, Gemeenten: one row per area and year, one column per
indicator, a number where published, else its CBS symbol), with a bold header, frozen panes and
an autofilter; Codeboek (every indicator, its Dutch and English definition, unit and caveats),
Tekens (the symbols) and Toelichting (the rules in plain Dutch). Written by XlsxWriter in
constant-memory mode, except the level sheets' data rows: nationally those are millions of
cells, which XlsxWriter writes at about 10 microseconds each. Their XML is written here
(:func:`sheet_rows`), the same bytes XlsxWriter writes for the same cells (a test compares the
two), and spliced into the finished file's sheets in place of the empty ``<sheetData>`` XlsxWriter
wrote after each header row (:func:`splice_rows`). The finished file comes back as bytes, which
the caller writes through :mod:`zicht.jobs.fs`. The partner table is aggregate and small by
construction (areas x years x indicators).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from zicht.features.export import FORMULA_STARTS, map_distinct
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
    """One level's partner rows wide: one row per (area, year), one column per indicator
    (those of ``indicators`` the rows hold, in that order); a published value as a number, any
    other cell as its CBS symbol, NaN where the rows hold no cell. Rows ordered by area code
    and year (then name). Built on integer codes: the keys are factorised once and every cell
    put in place by position, with no MultiIndex of text."""
    present = set(pub["indicator"].unique().tolist())
    columns = [i for i in indicators if i in present]
    status = pub["status"].to_numpy(dtype=object)
    value = pub["value"].to_numpy(dtype=object)
    shown = (status == "ok") & (value != "")
    numbers = pd.to_numeric(pd.Series(value[shown]), errors="raise").to_numpy(dtype=float)
    cell = np.array([SYMBOLS.get(str(st), "x") for st in pd.unique(status)], dtype=object)[
        pd.factorize(status)[0]
    ]
    cell[shown] = numbers.tolist()

    area, area_codes = pd.factorize(pub["area_code"], sort=True)
    name, names = pd.factorize(pub["area_name"], sort=True, use_na_sentinel=False)
    year, years = pd.factorize(pub["year"], sort=True)
    row, row_keys = pd.factorize(
        (area.astype(np.int64) * len(names) + name) * len(years) + year, sort=True
    )
    slot = {ind: k for k, ind in enumerate(columns)}
    col = pub["indicator"].map(slot).to_numpy(dtype=float)
    kept = ~np.isnan(col)
    at = row[kept].astype(np.int64) * max(len(columns), 1) + col[kept].astype(np.int64)
    if len(at) and np.bincount(at).max() > 1:
        raise ValueError("the partner rows hold a cell (area, name, year, indicator) twice")
    flat = np.full(len(row_keys) * len(columns), np.nan, dtype=object)
    flat[at] = cell[kept]
    grid = flat.reshape(len(row_keys), len(columns))
    keys = np.asarray(row_keys, dtype=np.int64)
    a_of, n_of, y_of = (
        keys // (len(names) * len(years)),
        keys // len(years) % len(names),
        keys % len(years),
    )
    order = np.lexsort((y_of, a_of))  # stable: by area and year, then as sorted (name)
    wide = pd.DataFrame(grid[order], columns=columns)
    wide.insert(0, "jaar", np.asarray(years)[y_of[order]])
    wide.insert(0, "naam", np.asarray(names, dtype=object)[n_of[order]])
    wide.insert(0, "gebiedscode", np.asarray(area_codes, dtype=object)[a_of[order]])
    return wide


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
            risk, v = cell_text(v)
            ws.write_string(r, c, v, quoted if risk else fmt)

        def text_row(ws: Any, r: int, values: Sequence[object], fmt: Any = None) -> None:
            for c, v in enumerate(values):
                if isinstance(v, str):
                    if v:
                        put(ws, r, c, v, fmt)
                elif v is not None:
                    ws.write(r, c, v, fmt)

        # every format gets its style index now, in this order, so a data row written here
        # can name it (XlsxWriter numbers a format when a cell first uses it, and leaves
        # formats no cell used out of the styles)
        bold._get_xf_index()
        quoted_xf = quoted._get_xf_index()
        xf = {unit: f._get_xf_index() for unit, f in formats.items()}
        bodies: dict[str, tuple[pd.DataFrame, list[int | None]]] = {}
        for level, title in LEVEL_SHEETS.items():
            ws = wb.add_worksheet(title)
            ws.freeze_panes(1, 3)  # D2: codes, names and years stay in view
            # a package's reference rows (regio, studiegebied) go below its gemeenten
            levels = (level, *REFERENCE_LEVELS) if level == "gemeente" else (level,)
            wide = wide_table(pub[pub["level"].isin(levels)], indicators=indicators)
            text_row(ws, 0, list(wide.columns), bold)
            # the data rows' XML is spliced in after close (module docstring)
            styles = [xf.get(units.get(str(name), "")) for name in wide.columns]
            bodies[f"xl/worksheets/sheet{len(bodies) + 1}.xml"] = (wide, styles)
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
        out = io.BytesIO()
        splice_rows(target, out, {
            part: (dimension(wide), sheet_rows(wide, styles, quoted=quoted_xf))
            for part, (wide, styles) in bodies.items()
        })  # fmt: skip
        return out.getvalue()


# Excel's last row; XlsxWriter drops a cell beyond it silently, this writer refuses the sheet
MAX_ROWS = 1_048_576
_ROWS_PER_PIECE = 4096
_XML_ESCAPES = re.compile('[&<>"\n]')
_ESCAPED_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")


def sheet_rows(wide: pd.DataFrame, styles: Sequence[int | None], *, quoted: int) -> Iterator[str]:
    """The ``<row>`` elements of a level sheet's data (row 2 on), in pieces: the bytes
    XlsxWriter's constant-memory mode writes for ``write_number(r, c, x, fmt)`` of every number
    and ``write_string`` of every non-empty text (quote-prefixed when a spreadsheet could run
    it), with ``styles[c]`` the style index of column ``c``'s number format. A missing value
    (None, NaN) or an empty text has no cell.

    Column by column over a block of rows: each distinct number is formatted and each distinct
    text escaped once, a column's cells are joined to their references by numpy's elementwise
    ``+`` and a row's cells by one ``str.join`` (no Python loop over the cells)."""
    if len(wide) + 1 > MAX_ROWS:
        raise ValueError(f"{len(wide)} rows do not fit a worksheet ({MAX_ROWS} rows)")
    from xlsxwriter.utility import xl_col_to_name

    letters = [xl_col_to_name(c) for c in range(len(wide.columns))]
    for start in range(0, len(wide), _ROWS_PER_PIECE):
        block = wide.iloc[start : start + _ROWS_PER_PIECE]
        numbers = np.arange(start + 2, start + 2 + len(block))
        rnum = numbers.astype(str).astype(object)
        cells = [
            _column_cells(block.iloc[:, c].to_numpy(), letters[c], styles[c], rnum, quoted,
                          wide.columns[c]).tolist()
            for c in range(len(letters))
        ]  # fmt: skip
        content = list(map("".join, zip(*cells, strict=True))) if cells else [""] * len(block)
        yield "".join(
            f'<row r="{r}">{x}</row>' for r, x in zip(numbers.tolist(), content, strict=True) if x
        )  # a row without a cell gets no row element, as XlsxWriter writes none


def _column_cells(
    values: np.ndarray, letter: str, style: int | None, rnum: np.ndarray, quoted: int, name: object
) -> np.ndarray:
    """The XML of each cell of one column over a block of rows (``rnum``: their row numbers as
    text), empty where the cell is absent."""
    out = np.full(len(values), "", dtype=object)
    if values.dtype.kind in "biuf":
        text = np.zeros(len(values), dtype=bool)
        number = values.astype(float)
    else:
        text = np.fromiter((isinstance(x, str) for x in values), dtype=bool, count=len(values))
        number = np.full(len(values), np.nan)
        number[~text] = values[~text].astype(float)  # None -> NaN
    held = ~np.isnan(number)
    if held.any():
        if np.isinf(number[held]).any():
            raise ValueError(f"an infinite value in column {name!r}")
        bits = number[held].view(np.int64)  # -0.0 keeps its own text
        distinct, inverse = np.unique(bits, return_inverse=True)
        shown = np.empty(len(distinct), dtype=object)
        shown[:] = [f"{x:.16G}" for x in distinct.view(np.float64).tolist()]
        head = '<c r="' + letter
        tail = ('"' if style is None else f'" s="{style}"') + "><v>"
        out[held] = head + rnum[held] + tail + shown[inverse.ravel()] + "</v></c>"
    if text.any():
        strings = values[text]
        nonempty = strings != ""
        rows = np.flatnonzero(text)[nonempty]
        if len(rows):
            body = map_distinct(strings[nonempty], lambda v: _string_body(v, quoted))
            out[rows] = '<c r="' + letter + rnum[rows] + '"' + body
    return out


def cell_text(v: str) -> tuple[bool, str]:
    """Whether a spreadsheet could run ``v`` (then it is written quote-prefixed), and its text
    as a cell holds it: a line break is a line feed (as XML reads a CR)."""
    risk = v.startswith(RISKY)
    if "\r" in v:
        v = v.replace("\r\n", "\n").replace("\r", "\n")
    return risk, v


def _string_cell(letter: str, r: int, v: str, quoted: int) -> str:
    """One text cell as XlsxWriter writes it (see :func:`_string_body`)."""
    return f'<c r="{letter}{r}"{_string_body(v, quoted)}'


@functools.lru_cache(maxsize=1 << 16)  # the symbols, codes and names repeat over the rows
def _string_body(v: str, quoted: int) -> str:
    """A text cell after its reference, as XlsxWriter writes it: an inline string, control
    characters as ``_xHHHH_`` (and a literal ``_xHHHH_`` escaped), XML's three characters
    escaped, ``xml:space`` kept for leading or trailing white space, cut at Excel's 32,767
    UTF-16 units."""
    risk, v = cell_text(v)
    style = f' s="{quoted}"' if risk else ""
    if len(v) > 16383:
        from xlsxwriter.utility import _utf16_len, _utf16_truncate

        if _utf16_len(v) > 32767:
            v = _utf16_truncate(v, 32767)
    v = _ESCAPED_ESCAPE.sub(r"_x005F\1", v)
    v = _CONTROL.sub(lambda m: f"_x{ord(m.group(1)):04X}_", v)
    v = v.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    preserve = ' xml:space="preserve"' if v[:1].isspace() or v[-1:].isspace() else ""
    if _XML_ESCAPES.search(v):
        v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'{style} t="inlineStr"><is><t{preserve}>{v}</t></is></c>'


def dimension(wide: pd.DataFrame) -> str | None:
    """The ``<dimension>`` reference of a level sheet with ``wide``'s data rows below its header
    (which fills every column), as XlsxWriter computes it: the header's first cell to the last
    column of the last row holding a cell. None: no data row holds one (the header's own)."""
    from xlsxwriter.utility import xl_rowcol_to_cell

    held = (wide.notna() & wide.ne("")).to_numpy().any(axis=1)
    if not held.any():
        return None
    last = int(np.flatnonzero(held)[-1]) + 1  # the sheet row index (0: the header)
    return "A1:" + xl_rowcol_to_cell(last, len(wide.columns) - 1)


def splice_rows(
    source: str, target: BinaryIO, rows: Mapping[str, tuple[str | None, Iterable[str]]]
) -> None:
    """Copy the workbook ``source`` to ``target`` with, for each ``part: (ref, pieces)`` of
    ``rows``, the pieces written into that sheet part after its header row and its
    ``<dimension>`` set to ``ref`` (None: kept). Every other part is copied unchanged, with its
    name, date and compression."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            with zin.open(info) as src, zout.open(_like(info), "w", force_zip64=True) as dst:
                if info.filename not in rows:
                    shutil.copyfileobj(src, dst)
                    continue
                ref, pieces = rows[info.filename]
                xml = src.read().decode("utf-8")
                head, sep, tail = xml.partition("</row></sheetData>")
                if not sep:
                    raise ValueError(f"{info.filename}: no header row to write the data after")
                if ref is not None:
                    head, n = re.subn(
                        r'<dimension ref="[^"]*"/>', f'<dimension ref="{ref}"/>', head, count=1
                    )
                    if n != 1:
                        raise ValueError(f"{info.filename}: no <dimension> to widen")
                dst.write(head.encode("utf-8") + b"</row>")
                for piece in pieces:
                    dst.write(piece.encode("utf-8"))
                dst.write(b"</sheetData>" + tail.encode("utf-8"))


def _like(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    out.compress_type = info.compress_type
    out.external_attr = info.external_attr
    out.create_system = info.create_system
    return out


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
