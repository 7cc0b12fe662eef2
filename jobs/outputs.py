"""Ownership of output folders: zicht replaces only what it wrote.

Reads and writes the marker ``OUTPUT/.zicht-output`` (JSON: the run id, zicht's version, when it
was written), which only zicht creates. A run writes into an empty or missing folder, or
replaces a folder that carries the marker; any other non-empty folder is refused with
:class:`OutputRefused` (exit code 3) and left untouched. Input and output may not contain each
other in either direction, so a run can never replace its own input. Follows
``../shared/CONTRACT.md`` section 3 (output marker) and section 4 (exit codes).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

MARKER = ".zicht-output"


class OutputRefused(Exception):
    """The output location cannot be used: zicht did not write it, or it overlaps the input."""


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def is_zicht_output(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def check_output(output_dir: Path, *, input_dir: Path | None = None) -> None:
    """Refuse an output zicht may not replace; returns quietly when the run may write it."""
    out = output_dir.resolve()
    if input_dir is not None:
        inp = input_dir.resolve()
        if _contains(out, inp):
            raise OutputRefused(
                f"--output {output_dir} holds the input folder {input_dir}: a run replaces its "
                "output, so the input would be deleted; choose an output outside the input"
            )
        if _contains(inp, out):
            raise OutputRefused(
                f"--output {output_dir} is inside the input folder {input_dir}; choose an "
                "output outside the input"
            )
    if out.exists() and not out.is_dir():
        raise OutputRefused(f"--output {output_dir} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_zicht_output(out):
        raise OutputRefused(
            f"--output {output_dir} is not empty and was not written by zicht (no {MARKER} "
            "marker); zicht replaces only folders it wrote: choose an empty or new folder"
        )


def require_zicht_output(folder: Path, *, flag: str = "--from") -> None:
    """A stage or export on an existing output: it must be one zicht wrote."""
    if not is_zicht_output(folder):
        raise OutputRefused(
            f"{flag} {folder}: not a zicht output folder (no {MARKER} marker); run `zicht run` "
            "or `zicht ingest` into it first"
        )


def write_marker(folder: Path, *, run_id: str, version: str) -> None:
    body = {"run_id": run_id, "zicht_version": version, "written": dt.datetime.now(dt.UTC)}
    (folder / MARKER).write_text(json.dumps(body, default=str) + "\n")
