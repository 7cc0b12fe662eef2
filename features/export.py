"""Partner tables: value formatting by unit and the leak guard that runs before anything ships.

Reads and writes nothing; works on the partner table as a pandas frame, which is small by
construction (areas x years x indicators). The leak guard checks the structure of the export, so
no value can be a person, address, company or record pseudonym: every column is from the
published schema, every area code is a CBS code, every indicator is in the catalogue, every value
is a number, and no published count lies between 1 and the minimum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import pandas as pd

EXPORT_COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
STATUSES = {"ok", "suppressed", "not_covered", "not_applicable"}
AREA_CODE = {
    "buurt": re.compile(r"^BU\d{4}[0-9A-Z]{4}$"),
    "wijk": re.compile(r"^WK\d{4}[0-9A-Z]{2}$"),
    "gemeente": re.compile(r"^GM\d{4}$"),
}
DECIMALS = {"count": 0, "euro": 0, "rate": 1, "km": 1, "share": 3, "index": 2}


def _fmt(value: object, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    d = DECIMALS.get(unit, 3)
    v = float(value)  # type: ignore[arg-type]
    return str(int(round(v))) if d == 0 else f"{round(v, d):.{d}f}"


def format_values(pub: pd.DataFrame, *, unit_of: Mapping[str, str]) -> pd.DataFrame:
    """Render ``value`` as text with the contract's rounding; empty unless status is ok."""
    out = pub.copy()
    out["value"] = [
        _fmt(v, unit_of.get(ind, "share")) if st == "ok" else ""
        for v, ind, st in zip(out["value"], out["indicator"], out["status"], strict=True)
    ]
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
