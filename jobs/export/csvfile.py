"""The partner CSV files (``indicators_<level>.csv``, ``codebook.csv``).

UTF-8 with a byte-order mark, so Dutch Excel opens a double-clicked file with "Súdwest-Fryslân"
intact; RFC 4180 rows (CRLF, quoted where needed) with text cells neutralised against formula
injection (:func:`zicht.features.export.partner_csv`), in the dialect ``export.csv_dialect``
names: ``standard`` (``,`` and a decimal point) or ``nl`` (``;`` and a decimal comma).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from zicht.features.export import partner_csv
from zicht.jobs.export.writers import utf8_text

BOM = "\ufeff"


def render_csv(frame: pd.DataFrame, *, dialect: str = "standard") -> bytes:
    return (BOM + partner_csv(frame, dialect=dialect)).encode("utf-8")


class CsvWriter:
    format = "csv"

    def text(self, data: bytes) -> Iterator[str]:
        return utf8_text(data)


WRITER = CsvWriter()
