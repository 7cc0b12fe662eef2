"""The analysis-ready store: ingest's typed tables, found again by the input's fingerprint.

Layout (``--store``, default ``zicht_store/`` beside the output folder; person-level, so it stays
inside the secure environment like ``restricted/``)::

    STORE_ROOT/<fingerprint>/store.json          written last: the store is complete
    STORE_ROOT/<fingerprint>/uses/<time>-<nonce> one empty file per reuse (retention)
    STORE_ROOT/<fingerprint>/validated/<table>   every input row, typed, with reject_rule
    STORE_ROOT/<fingerprint>/incidents_located   ... the linked tables (see zicht.jobs.catalog)

The fingerprint is sha256 over the digests of the input files (:func:`zicht.jobs.fs.digest`),
the settings that shape what ingest keeps (period, input encoding, forbidden columns,
phenomena), the contract version and the store format. A second run on an unchanged input with
the same rules finds the store complete and skips validate and link; the manifest and the
MLflow run say so (``store.reused``). The rules that compare a date with the day of the run are
the only ones that can change their verdict from one day to the next: a store made on another
day is reused only when none of its rows was rejected by such a rule.

``zicht store purge`` removes stores not used for ``store.retention_days`` days: the last use is
the newest of ``store.json``'s ``created`` and the use markers ``uses/<UTC time>-<nonce>`` a reuse
leaves (an empty file each, so ``store.json`` is written once and never rewritten: runs that
reuse one store at the same time, or one killed while recording its use, can never leave a
half-written ``store.json`` for the next reader); a folder without a complete ``store.json``
older than that is a killed ingest and goes too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from zicht.jobs import fs as fsmod

log = logging.getLogger("zicht")

CONTRACT_VERSION = 2
# bump when the store's tables change shape: old stores are then not reused
# (2: 64-bit surrogate keys and the key dictionary)
STORE_FORMAT = 2
STATE = "store.json"
DEFAULT_NAME = "zicht_store"


def default_root(output: str) -> str:
    return fsmod.join(fsmod.parent(fsmod.normalize(output)), DEFAULT_NAME)


def fingerprint(input_digests: Mapping[str, str], ingest_settings: Mapping[str, Any]) -> str:
    body = {
        "contract_version": CONTRACT_VERSION,
        "store_format": STORE_FORMAT,
        "inputs": dict(sorted(input_digests.items())),
        "digest_scheme": fsmod.DIGEST_SCHEME,
        "settings": ingest_settings,
    }
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def ingest_settings(jsonable: Mapping[str, Any], run_date: dt.date) -> dict[str, Any]:
    """The parts of the resolved configuration that change what ingest keeps."""
    validation = jsonable.get("validation", {})
    return {
        "period": jsonable.get("period"),
        "input": jsonable.get("input"),
        "forbidden_columns": validation.get("forbidden_columns"),
        "phenomena": jsonable.get("phenomena"),
        "coverage": jsonable.get("coverage"),
        "areas": jsonable.get("areas"),  # the target vintage decides where incidents go
        # year-range rules compare with the year of the run
        "run_year": run_date.year,
    }


def read_state(fs: fsmod.FileSystem, store: str) -> dict[str, Any] | None:
    loc = fsmod.join(store, STATE)
    if not fs.exists(loc):
        return None
    state: dict[str, Any] = json.loads(fs.read_text(loc))
    return state


def reusable(state: Mapping[str, Any] | None, run_date: dt.date) -> bool:
    if state is None:
        return False
    return state.get("run_date") == run_date.isoformat() or not state.get("run_date_rejects")


def write_state(fs: fsmod.FileSystem, store: str, state: Mapping[str, Any]) -> None:
    fs.write_text(
        fsmod.join(store, STATE), json.dumps(state, indent=2, default=str), overwrite=True
    )


USES = "uses"
_USE_TIME = "%Y%m%dT%H%M%S%fZ"


def touch(
    fs: fsmod.FileSystem, store: str, state: dict[str, Any], *, now: dt.datetime | None = None
) -> None:
    """Record a reuse, so retention counts from the last use: a new empty marker file named
    by the time (``store.json`` is not rewritten; see the module docstring)."""
    import uuid

    now = now or dt.datetime.now(dt.UTC)
    state["last_used"] = now.isoformat()
    marker = f"{now.astimezone(dt.UTC).strftime(_USE_TIME)}-{uuid.uuid4().hex[:8]}"
    fs.write_text(fsmod.join(store, USES, marker), "")


def last_used(fs: fsmod.FileSystem, store: str, state: Mapping[str, Any]) -> dt.datetime:
    """The newest of the store's creation, ``last_used`` in ``store.json`` (stores made before
    the use markers) and its use markers."""
    times = [dt.datetime.fromisoformat(state.get("last_used") or state["created"])]
    uses = fsmod.join(store, USES)
    if fs.is_dir(uses):
        for loc in fs.list(uses):
            stamp = fsmod.name(loc).split("-", 1)[0]
            try:
                times.append(dt.datetime.strptime(stamp, _USE_TIME).replace(tzinfo=dt.UTC))
            except ValueError:  # not a marker zicht wrote: its file time stands in
                times.append(dt.datetime.fromtimestamp(fs.modification_time(loc), dt.UTC))
    return max(times)


def purge(
    fs: fsmod.FileSystem, root: str, *, retention_days: int, now: dt.datetime | None = None
) -> list[str]:
    """Remove the stores under ``root`` unused for ``retention_days``; returns what went."""
    now = now or dt.datetime.now(dt.UTC)
    limit = now - dt.timedelta(days=retention_days)
    removed = []
    if not fs.is_dir(root):
        return removed
    for store in fs.list(root):
        if not fs.is_dir(store):
            continue
        state = read_state(fs, store)
        if state is not None:
            last = last_used(fs, store, state)
        else:  # an ingest that never finished
            last = dt.datetime.fromtimestamp(fs.modification_time(store), dt.UTC)
        if last < limit:
            fs.delete(store)
            removed.append(store)
    return removed


# --------------------------------------------------------------------------- zicht store purge


def main(argv: Sequence[str] | None = None) -> int:
    from zicht.features.settings import ConfigError
    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import add_verbosity_flags, build_spark, configure_logging

    p = argparse.ArgumentParser(prog="zicht store", description="The analysis-ready store.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("purge", help="remove stores past their retention")
    pp.add_argument("--store", required=True, help="the store root (a --store of zicht run)")
    pp.add_argument("--conf", default=None, help="YAML overlay (store.retention_days)")
    pp.add_argument(
        "--older-than", type=int, default=None, help="days (default: store.retention_days)"
    )
    add_verbosity_flags(pp)
    args = p.parse_args(argv)
    configure_logging(args.verbosity)
    try:
        settings = load_settings(args.conf)
    except ConfigError as exc:
        print(f"zicht store: {exc}", file=sys.stderr)
        return 2
    days = args.older_than if args.older_than is not None else settings.store.retention_days
    spark = build_spark(settings.spark, app_name="zicht-store-purge")
    removed = purge(fsmod.FileSystem(spark), args.store, retention_days=days)
    for r in removed:
        print(f"removed {r}")
    print(f"zicht store purge: {len(removed)} store(s) unused for {days} days removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
