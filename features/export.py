"""Partner tables: value formatting by unit, the codebook, the cut to a partner's gemeenten, and
the leak guard's checks that run before anything ships.

Reads and writes nothing; works on the partner table as a pandas frame, which is small by
construction (areas x years x indicators). The leak guard has two parts. ``check_export``
checks the structure of the partner table, so no value can be a person, address, company or
record pseudonym: every column is from the published schema, every area code is a CBS code,
every indicator is in the catalogue, every value is a number, and no published count lies
between 1 and the minimum. ``tokens_of`` and ``find_pseudonyms`` check the content of every
file under ``export/`` (CSV, JSON, XLSX, HTML, GeoJSON, read back as their writers declare in
``zicht.jobs.export.writers``): the distinct tokens of the files, collected piece by piece as a
file streams past, are joined in Spark against every pseudonym of the inputs, so free text
(area names, caveats, the report's data) is covered too, and the large side stays in Spark.
``neutralise_text``, ``neutralise_frame`` and ``partner_csv`` keep text cells from being read as
formulas by a spreadsheet (OWASP's rule against CSV injection). ``rows_of_gemeenten`` cuts a
partner package from the national rows without changing a cell.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.features.keys import surrogate
from zicht.features.regions import REGION, STUDY_AREA, STUDY_AREA_CODE
from zicht.features.settings import IndicatorSpec
from zicht.features.units import UNITS

EXPORT_COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
STATUSES = {"ok", "suppressed", "not_covered", "not_applicable"}
AREA_CODE = {
    "buurt": re.compile(r"^BU\d{4}[0-9A-Z]{4}$"),
    "wijk": re.compile(r"^WK\d{4}[0-9A-Z]{2}$"),
    "gemeente": re.compile(r"^GM\d{4}$"),
    # configured regions (their partner's name) and the study area (zicht.features.regions)
    REGION: re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$"),
    STUDY_AREA: re.compile("^" + re.escape(STUDY_AREA_CODE) + "$"),
}
# the contract's rounding per unit, from the one table of units
DECIMALS = {name: u.decimals for name, u in UNITS.items()}


def text_by_decimals(
    value: np.ndarray, decimals: np.ndarray, shown: np.ndarray, fmt: Callable[[float, int], str]
) -> np.ndarray:
    """Numbers as text, empty where not ``shown``: ``fmt(v, d)`` of each shown value with its
    row's ``decimals``, the rows of one count of decimals at once (no lookup per cell, over
    millions of partner cells), and each distinct number formatted once (by its bits, so that
    -0.0 and 0.0 keep their own text): the years, counts and rounded values repeat."""
    text = np.full(len(value), "", dtype=object)
    bits = np.ascontiguousarray(value, dtype=np.float64).view(np.int64)
    for d in np.unique(decimals[shown]).tolist():
        rows = np.flatnonzero(shown & (decimals == d))
        distinct, inverse = np.unique(bits[rows], return_inverse=True)
        formatted = np.empty(len(distinct), dtype=object)
        formatted[:] = [fmt(v, d) for v in distinct.view(np.float64).tolist()]
        text[rows] = formatted[inverse.ravel()]
    return text


def sort_rows(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` sorted by ``columns`` (ascending, missing first, as Spark's ``orderBy``; text
    in code-point order, which is UTF-8's byte order), through each column's sorted integer
    codes and one ``np.lexsort``: no comparison of strings beyond ``pd.factorize``'s."""
    keys = [pd.factorize(frame[c], sort=True)[0] for c in reversed(columns)]
    return frame.iloc[np.lexsort(keys)].reset_index(drop=True)


def format_values(pub: pd.DataFrame, *, unit_of: Mapping[str, str]) -> pd.DataFrame:
    """Render ``value`` as text with the contract's rounding; empty unless status is ok."""
    out = pub.copy()
    codes, names = pd.factorize(out["indicator"])
    by_name = [DECIMALS.get(unit_of.get(i, "share"), 3) for i in names]
    decimals = np.array([*by_name, DECIMALS.get("share", 3)])[codes]  # -1: no indicator
    value = pd.to_numeric(out["value"], errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    shown = (out["status"] == "ok").to_numpy() & ~np.isnan(value)
    # a whole number for 0 decimals, else the value rounded to them and shown with them
    text = text_by_decimals(
        value,
        decimals,
        shown,
        lambda v, d: str(int(round(v))) if d == 0 else f"{round(v, d):.{d}f}",
    )
    out["value"] = text
    out["year"] = out["year"].astype(int)
    return out[EXPORT_COLUMNS]


def check_export(pub: pd.DataFrame, *, units: Mapping[str, str], min_count: int) -> list[str]:
    """Problems that must stop the export (empty list: the table may ship)."""
    problems: list[str] = []
    if list(pub.columns) != EXPORT_COLUMNS:
        problems.append(
            f"columns {list(pub.columns)} are not the published schema {EXPORT_COLUMNS}"
        )
        return problems
    for level, pattern in AREA_CODE.items():
        codes = pub.loc[pub["level"] == level, "area_code"].astype(str)
        bad = codes[~codes.str.fullmatch(pattern.pattern)]
        if len(bad):
            problems.append(f"{len(bad)} {level} rows whose area_code is not a CBS code")
    if not set(pub["level"]).issubset(AREA_CODE):
        problems.append(f"unknown levels {sorted(set(pub['level']) - set(AREA_CODE))}")
    unknown = sorted(set(pub["indicator"]) - set(units))
    if unknown:
        problems.append(f"indicators outside the catalogue: {unknown[:5]}")
    bad_status = sorted(set(pub["status"]) - STATUSES)
    if bad_status:
        problems.append(f"unknown status values {bad_status}")
    ok = pub["status"] == "ok"
    if (pub.loc[~ok, "value"] != "").any():
        problems.append("a cell that is not ok carries a value")
    numeric = pd.to_numeric(pub.loc[ok, "value"], errors="coerce")
    if numeric.isna().any():
        problems.append(f"{int(numeric.isna().sum())} published values are not numbers")
    is_count = pub.loc[ok, "indicator"].map(lambda i: units.get(i) == "count")
    small = numeric[is_count & (numeric > 0) & (numeric < min_count)]
    if len(small):
        problems.append(f"{len(small)} published counts between 1 and {min_count - 1}")
    return problems


def phenomena_registered(pub: pd.DataFrame, phenomena: Sequence[str]) -> set[str]:
    """The phenomena with a registration somewhere in the partner table: a published
    ``P.incidents`` or ``P.signals`` above 0, or a suppressed one (suppression hides 1 to the
    minimum, or protects such a cell). A phenomenon outside this set has none anywhere: the
    extract holds none of it (it may be partial), which is not the same as a map of zeros."""
    found: set[str] = set()
    for p in phenomena:
        cells = pub[pub["indicator"].isin([f"{p}.incidents", f"{p}.signals"])]
        ok = cells["status"] == "ok"
        positive = pd.to_numeric(cells.loc[ok, "value"], errors="coerce").fillna(0) > 0
        if positive.any() or (cells["status"] == "suppressed").any():
            found.add(p)
    return found


# --------------------------------------------------------------------------- codebook

# codebook.csv holds the contract's columns (CONTRACT.md section 3) with the Dutch definition,
# ``definition_nl``, after the English one: the report and the workbook are Dutch, and so are
# the partners who open the CSV
CODEBOOK_COLUMNS = ["indicator", "phenomenon", "definition", "definition_nl", "unit",
                    "numerator", "denominator", "sources", "caveats"]  # fmt: skip


def codebook_frame(specs: Sequence[IndicatorSpec]) -> pd.DataFrame:
    """One row per published indicator, from the catalogue: the columns of ``codebook.csv``
    (``definition_nl`` empty where the catalogue has no Dutch definition), read by the CSV,
    the workbook and the report alike."""
    rows = [
        {
            "indicator": s.key,
            "phenomenon": s.phenomenon,
            "definition": " ".join(s.definition.split()),
            "unit": s.unit,
            "numerator": s.numerator or "",
            "denominator": s.denominator or "",
            "sources": ";".join(s.sources),
            "caveats": " ".join(s.caveats.split()),
            "definition_nl": " ".join(s.definition_nl.split()),
        }
        for s in specs
    ]
    return pd.DataFrame(rows, columns=CODEBOOK_COLUMNS)


# --------------------------------------------------------------------------- formula guard

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection):
# an area name "=HYPERLINK(...)" would otherwise become a live link in the partner's Excel.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_text(value: str) -> str:
    """``value`` with a leading apostrophe when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def neutralise_frame(frame: pd.DataFrame, *, numeric: Sequence[str] = ("value",)) -> pd.DataFrame:
    """A copy with every text cell neutralised, for writing as CSV.

    Only text columns are touched, and never ``numeric`` ones: the partner table's ``value`` is
    a number rendered as text (``-0.25`` must stay a number); non-text cells stay as they are.
    """
    out = frame.copy()
    for col in out.columns:
        if col in numeric or not (
            pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col])
        ):
            continue
        out[col] = neutralise_values(out[col].to_numpy())
    return out


def map_distinct(values: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` of every present value of ``values`` (missing ones stay as they are), computed
    once per distinct value: a partner column repeats its names, codes and numbers over
    millions of rows."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(v) for v in uniques]
    out: np.ndarray = mapped[codes]  # code -1 (missing) takes the last slot: set back
    missing = codes < 0
    if missing.any():
        out[missing] = values[missing]
    return out


def neutralise_values(values: np.ndarray) -> np.ndarray:
    """:func:`neutralise_text` of every text in ``values``, others as they are."""
    return map_distinct(values, lambda v: neutralise_text(v) if isinstance(v, str) else v)


# The partner CSV dialects (``export.csv_dialect``): the field separator and the decimal mark.
CSV_DIALECTS = {"standard": (",", "."), "nl": (";", ",")}


def csv_text(frame: pd.DataFrame, *, sep: str = ",", line: str = "\r\n") -> str:
    """``frame.to_csv(index=False, sep=sep, lineterminator=line)``, byte for byte, for a
    frame of text and integer columns (the partner tables, as rendered), several times faster:
    each distinct cell is quoted once (where it holds the separator, a quote, CR or LF, as the
    csv module's minimal quoting does) and the rows are joined in one pass. Missing text is
    empty. Any other frame goes through pandas."""
    columns = [_csv_cells(frame[c], sep) for c in frame.columns]
    if len(frame.columns) < 2 or any(c is None for c in columns):
        return frame.to_csv(index=False, sep=sep, lineterminator=line)
    header = sep.join(_csv_quoted(str(c), sep) for c in frame.columns)
    cells = [c.tolist() for c in columns if c is not None]
    rows = line.join(map(sep.join, zip(*cells, strict=True)))
    return header + line + (rows + line if len(frame) else "")


def _csv_quoted(text: str, sep: str) -> str:
    if sep in text or '"' in text or "\r" in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_cells(column: pd.Series, sep: str) -> np.ndarray | None:
    """The CSV text of each cell of ``column``, or None when it is neither text nor integer:
    each distinct value rendered once, missing ones empty."""
    values = column.to_numpy()
    if values.dtype.kind not in "iuO":
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if values.dtype.kind in "iu":
        distinct = [str(u) for u in uniques.tolist()]
    elif all(isinstance(u, str) for u in uniques):
        distinct = [_csv_quoted(u, sep) for u in uniques]
    else:  # a cell that is no text: pandas renders it
        return None
    texts = np.empty(len(distinct) + 1, dtype=object)
    texts[:-1] = distinct
    texts[-1] = ""  # code -1: missing
    out: np.ndarray = texts[codes]
    return out


def partner_csv(frame: pd.DataFrame, *, dialect: str = "standard") -> str:
    """The text of a partner CSV file: header, neutralised text cells, RFC 4180 CRLF rows.

    With CRLF as the row end the writer quotes any text holding a carriage return or a line
    feed; with a bare LF a lone carriage return would go out unquoted and split the row.
    ``dialect`` ``nl`` separates fields with ``;`` and writes ``value`` with a decimal comma,
    as Dutch Excel reads a double-clicked file (a text holding ``;`` is quoted).
    """
    sep, decimal = CSV_DIALECTS[dialect]
    out = neutralise_frame(frame)
    if decimal != "." and "value" in out.columns:
        out["value"] = map_distinct(
            out["value"].to_numpy(),
            lambda v: v.replace(".", decimal) if isinstance(v, str) else v,
        )
    return csv_text(out, sep=sep)


def rows_of_gemeenten(pub: pd.DataFrame, gemeenten: Sequence[str]) -> pd.DataFrame:
    """The partner rows of areas inside ``gemeenten`` (``GM`` codes), at every level.

    A CBS code carries its gemeente: ``BU``/``WK``/``GM`` + the gemeente's four digits (the
    contract checks ``wijk_code`` and ``gemeente_code`` against ``buurt_code``), so the cut needs
    no join and every row it keeps is a row of ``pub`` unchanged."""
    digits = {g[2:6] for g in gemeenten}
    keep = pub["area_code"].astype(str).str.slice(2, 6).isin(digits)
    return pub[keep.to_numpy()]


# --------------------------------------------------------------------------- pseudonym scan

# Runs of characters a pseudonym can be made of (hex, base32/64, UUIDs, prefixed ids); text is
# also split at the separators inside a run, so "x:abc123" yields "x", "abc123" and the whole.
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.:@#]+")
_SUBTOKEN = re.compile(r"[A-Za-z0-9_\-+=]+")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")
# the characters of a run that _SUBTOKEN splits at
_SEPARATORS = re.compile(r"[/.:@#]")


def export_tokens(text: str, *, min_length: int = 6, seen: set[str] | None = None) -> set[str]:
    """The distinct tokens of an export file's text that could be a pseudonym.

    Left out: tokens shorter than ``min_length`` (no pseudonym scheme is that short, and
    short words and numbers would collide) and decimal numbers (published values and map
    coordinates; a pseudonym is never one). Whole numbers stay: a numeric pseudonym must not
    slip through. ``seen``: runs whose tokens an earlier piece of the same file already gave
    (updated here), so a national file's repeated values are split once.
    """
    out: set[str] = set()
    # only the runs of at least min_length characters: a shorter run's tokens are pieces of
    # it, all too short. The regex finds exactly those maximal runs (it cannot start inside a
    # run, whose start it tried first), without building a string for every short number.
    runs = set(_long_runs(min_length).findall(text))  # a national CSV repeats its runs
    if seen is not None:
        runs -= seen
        seen |= runs
    for run in runs:
        tok = run.strip(".:-")
        if len(tok) >= min_length and not _DECIMAL.match(tok):
            out.add(tok)
        if not _SEPARATORS.search(run):
            continue  # the run is its own only sub-token: added above
        for sub in _SUBTOKEN.findall(run):
            sub = sub.strip("-")  # a sub-token holds no "." or ":", so it is no decimal
            if len(sub) >= min_length:
                out.add(sub)
    return out


@functools.cache
def _long_runs(min_length: int) -> re.Pattern[str]:
    return re.compile(_TOKEN.pattern.removesuffix("+") + f"{{{max(min_length, 1)},}}")


def tokens_of(pieces: Iterable[str], *, min_length: int = 6) -> set[str]:
    """:func:`export_tokens` of a text that arrives in pieces (a file read in chunks), without
    holding the whole text: a run of token characters cut by a piece boundary is carried over
    to the next piece, so the result equals ``export_tokens("".join(pieces))``."""
    out: set[str] = set()
    seen: set[str] = set()
    carry = ""
    for piece in pieces:
        text = carry + piece
        # the trailing run may continue in the next piece: keep it back. Found from the end
        # (a regex search for "run at the end" would try every start position of the piece)
        cut = len(text)
        while cut and text[cut - 1] in _TOKEN_CHARS:
            cut -= 1
        carry = text[cut:]
        out |= export_tokens(text[:cut], min_length=min_length, seen=seen)
    if carry:
        out |= export_tokens(carry, min_length=min_length, seen=seen)
    return out


# the characters of a _TOKEN run
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.:@#")


def pseudonym_values(
    tables: Mapping[str, DataFrame], *, columns: Mapping[str, Sequence[str]]
) -> DataFrame:
    """``value``: every non-null value of the pseudonym columns of the input tables (not
    distinct: the join below needs no dedup of the large side). Columns are matched
    case-insensitively; tables or columns that are absent are skipped."""
    return _column_values(tables, columns, "string", "pseudonym column in the inputs")


def _column_values(
    tables: Mapping[str, DataFrame], columns: Mapping[str, Sequence[str]], kind: str, what: str
) -> DataFrame:
    """``value`` (cast to ``kind``): the non-null values of ``columns`` of ``tables``, one
    union; columns are matched case-insensitively, absent ones skipped."""
    parts: list[DataFrame] = []
    for name, df in sorted(tables.items()):
        by_lower = {c.lower().strip(): c for c in df.columns}
        for col in columns.get(name, ()):
            if col in by_lower:
                parts.append(
                    df.select(F.col(by_lower[col]).cast(kind).alias("value")).filter(
                        F.col("value").isNotNull()
                    )
                )
    if not parts:
        raise ValueError(f"no {what}: nothing to scan against")
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def pseudonym_keys(
    tables: Mapping[str, DataFrame], *, columns: Mapping[str, Sequence[str]]
) -> DataFrame:
    """``value`` (long): every non-null value of the key columns of the store's tables (the
    64-bit keys of :mod:`zicht.features.keys`; not distinct). Absent columns are skipped."""
    return _column_values(tables, columns, "long", "key column in the store")


def find_keys(tokens: DataFrame, keys: DataFrame, *, limit: int = 1000) -> list[str]:
    """The distinct export tokens (``tokens``: ``token``) whose 64-bit key (the store's
    :func:`zicht.features.keys.surrogate` of the text) is a key of the store (``keys``:
    ``value``), at most about ``limit`` of them; the keyed counterpart of
    :func:`find_pseudonyms`. Two different texts that share a key (about 1 in 10^12 for an
    export's tokens against a national store) count as a hit: the guard errs on the safe side.

    Only the tokens' keys are broadcast (8 bytes each, where the token text is 4.6M strings
    in the `nl` benchmark), the store's keys stream past them in a semi-join, and the few hit
    keys come back to the driver; only when there are any are the tokens read again to name
    them. Both sides stay in Spark, and no pseudonym comes to the driver: a hit key is a key of
    a token of the files, which the driver already holds."""
    probe = tokens.select(surrogate(F.col("token")).alias("_key"))
    hits = [
        r["value"]
        for r in keys.join(F.broadcast(probe), keys["value"] == probe["_key"], "left_semi")
        .select("value")
        .distinct()
        .limit(limit)
        .collect()
    ]
    if not hits:
        return []
    named = tokens.where(surrogate(F.col("token")).isin(hits)).select("token").distinct()
    return [r["token"] for r in named.limit(limit).collect()]


def find_pseudonyms(tokens: DataFrame, values: DataFrame) -> DataFrame:
    """``token``: the distinct export tokens that equal an input pseudonym (other columns of
    ``tokens``, such as ``file``, are kept).

    ``tokens`` is small by construction (distinct tokens of aggregate files: numbers, codes,
    names, words) and is broadcast; ``values`` (``value``, every pseudonym of the inputs: tens
    of millions of rows nationally) streams past it, so the pseudonyms never go to the driver.
    """
    return (
        values.join(F.broadcast(tokens), values["value"] == tokens["token"], "inner")
        .select(*tokens.columns)
        .distinct()
    )


# --------------------------------------------------------------------------- release register

# Rule parameters where a lower value publishes more (a weaker rule); rounding is handled apart.
_STRICTER_WHEN_HIGHER = (
    "min_count",
    "min_numerator",
    "min_denominator",
    "min_units",
    "protection_width",
)


def release_conflicts(
    register: Sequence[Mapping[str, object]], candidate: Mapping[str, object]
) -> list[str]:
    """Why ``candidate`` must not be released beside the earlier releases of the same data.

    A release is ``{"inputs": {table: sha256}, "rules": {...}, "phenomena": {key: definition}}``.
    Against every earlier release with the same input hashes: weaker rules (a lower minimum or
    protection width, or no rounding where there was) would let a partner subtract the two
    patterns; a phenomenon set that differs (added, dropped or redefined phenomena) gives new
    differences against the published tables. Identical releases are fine (the pattern is
    deterministic). Empty list: no conflict.
    """
    problems: list[str] = []
    for old in register:
        if old.get("inputs") != candidate.get("inputs"):
            continue
        rid = old.get("run_id", "?")
        old_rules = old.get("rules") or {}
        new_rules = candidate.get("rules") or {}
        assert isinstance(old_rules, Mapping) and isinstance(new_rules, Mapping)
        for key in _STRICTER_WHEN_HIGHER:
            a, b = old_rules.get(key), new_rules.get(key)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b < a:
                problems.append(f"{key} {b} is weaker than {a} in release {rid} of the same data")
        if old_rules.get("rounding_base") and not new_rules.get("rounding_base"):
            problems.append(f"rounding is off but was on in release {rid} of the same data")
        if old.get("phenomena") != candidate.get("phenomena"):
            problems.append(
                f"the phenomenon set differs from release {rid} of the same data, so the two "
                "can be differenced"
            )
    return problems
