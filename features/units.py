"""The units of the indicator catalogue: one table for the indicators, the export, the codebook
and the report.

Reads and writes nothing, imports no Spark. ``scale``: what numerator / denominator is multiplied
by (rates per 1000); ``decimals``: the contract's rounding in ``export/`` (CONTRACT.md section
3: counts whole, rates and km one decimal, shares three, euros whole); ``label_nl``: the Dutch
name in the workbook's codebook; ``excel_format``: the workbook's number format; ``legend``:
the map legend's title in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str
    scale: float
    decimals: int
    label_nl: str
    excel_format: str
    legend: str


UNITS: Mapping[str, Unit] = {
    u.name: u
    for u in (
        Unit("count", 1.0, 0, "aantal", "0", "aantal"),
        Unit("rate", 1000.0, 1, "per 1000", "0.0", "per 1000"),
        Unit("share", 1.0, 3, "aandeel (0-1)", "0.000", "aandeel"),
        Unit("euro", 1.0, 0, "euro", "0", "euro"),
        Unit("km", 1.0, 1, "kilometer", "0.0", "km"),
        Unit("index", 1.0, 2, "index", "0.00", "index"),
        Unit("class", 1.0, 0, "klasse (1 laagste - 9 hoogste)", "0", "klasse"),
    )
}
UNIT_NAMES = tuple(UNITS)
