"""What every export writer declares, and the registry the leak guard reads files through.

A writer renders one format (CSV, XLSX, HTML, GeoJSON, JSON) to bytes and says how its file is
read back as text for the leak guard's content scan (:meth:`Writer.text`): the pieces of text a
partner's program could show, in the order they come, so the guard streams each file once and
never holds a whole workbook's text. The format is the catalogue's (``Dataset.format``), so a
file is always read back the way its dataset is declared; adding a format is one writer here.
Reads and writes nothing itself.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

CHUNK = 1 << 20  # characters or bytes per piece of text handed to the leak guard


class Writer(Protocol):
    """One file format of ``export/``."""

    format: str  # the catalogue's format name

    def text(self, data: bytes) -> Iterator[str]:
        """The file's text in pieces, as the leak guard reads it."""
        ...


@dataclass(frozen=True)
class ExportFile:
    """One rendered partner file: its catalogue dataset (and placeholders), bytes and rows."""

    dataset: str
    data: bytes
    rows: int
    params: Mapping[str, str] = field(default_factory=dict)


def decoded(chunks: Iterator[bytes], encoding: str = "utf-8") -> Iterator[str]:
    # an incremental decoder: a multi-byte character cut by a chunk boundary stays whole;
    # invalid bytes become U+FFFD, which is no token character, so nothing hides behind them
    dec = codecs.getincrementaldecoder(encoding)(errors="replace")
    for chunk in chunks:
        text = dec.decode(chunk)
        if text:
            yield text
    tail = dec.decode(b"", final=True)
    if tail:
        yield tail


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def utf8_text(data: bytes) -> Iterator[str]:
    """A UTF-8 file's text in pieces (a leading byte-order mark dropped): how the text formats
    (CSV, HTML, JSON, GeoJSON) are read back."""
    return decoded(chunks(data), "utf-8-sig")


def registry() -> dict[str, Writer]:
    """Every format's writer, by catalogue format."""
    from zicht.jobs.export import csvfile, geo, jsonfile, report, workbook

    writers: list[Writer] = [csvfile.WRITER, workbook.WRITER, report.WRITER, geo.WRITER,
                             jsonfile.WRITER]  # fmt: skip
    return {w.format: w for w in writers}


def writer_for(format: str) -> Writer:
    """The writer of a catalogue format; a format without one cannot pass the leak guard."""
    try:
        return registry()[format]
    except KeyError:
        raise KeyError(
            f"no export writer reads format {format!r} back for the leak guard"
        ) from None
