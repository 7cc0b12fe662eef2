"""The export stage as a package: disclosure control and the partner deliverables; ``zicht export``.

``zicht run`` calls :func:`publish` as its last stage. ``zicht export --from OUTPUT [--conf
FILE]`` runs the same stage alone on a finished output folder: it re-applies disclosure control
with the rules of ``--conf`` to ``restricted/indicators.parquet`` without recomputing any
feature, and replaces ``export/`` and ``restricted/disclosure_audit.parquet`` only when the
audit, the leak guard and the release register all pass. Also a Spark job on its own::

    spark-submit --master spark://host:7077 --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        jobs/export/__main__.py --from OUTPUT [--conf FILE] [--force-release]

Modules: :mod:`.stage` (the stage and the job), one writer per format (:mod:`.csvfile`,
:mod:`.workbook`, :mod:`.report`, :mod:`.geo`, :mod:`.jsonfile`; :mod:`.writers` says what a
writer declares), :mod:`.package` (the national set of files and the partner packages),
:mod:`.guard` (the leak guard) and :mod:`.register` (the release register).
"""

from __future__ import annotations

from zicht.features.export import codebook_frame
from zicht.jobs import catalog
from zicht.jobs.export.guard import file_text, scan_export
from zicht.jobs.export.register import (
    REGISTER_NAME,
    RELEASES_DIR,
    publish_release,
    recover_register,
    register_release,
    release_entry,
)
from zicht.jobs.export.stage import Published, disclosure_metrics, main, publish

LEVEL_FILES = {
    lvl: catalog.get(f"indicators_{lvl}").location for lvl in ("buurt", "wijk", "gemeente")
}

__all__ = [
    "LEVEL_FILES",
    "REGISTER_NAME",
    "RELEASES_DIR",
    "Published",
    "codebook_frame",
    "disclosure_metrics",
    "file_text",
    "main",
    "publish",
    "publish_release",
    "recover_register",
    "register_release",
    "release_entry",
    "scan_export",
]
