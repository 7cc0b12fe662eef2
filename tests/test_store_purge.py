"""``zicht store purge`` and the record of a store's uses (CONTRACT.md version 2, store retention).

The stores here are folders laid out as ingest leaves them (``store.json`` written last); their
ages are set by hand, and what purge keeps is derived from those ages alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from zicht.jobs import store

pytestmark = pytest.mark.spark

NOW = dt.datetime.now(dt.UTC)


def _store(root: Path, name: str, *, created_days_ago: int | None, **extra: str) -> Path:
    folder = root / name
    (folder / "validated").mkdir(parents=True)
    if created_days_ago is not None:
        created = (NOW - dt.timedelta(days=created_days_ago)).isoformat()
        state = {"fingerprint": name, "created": created, "last_used": created, **extra}
        (folder / store.STATE).write_text(json.dumps(state))
    return folder


def _age(path: Path, days: int) -> None:
    t = (NOW - dt.timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


def test_purge_keeps_what_was_used_within_the_retention(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zicht.jobs.fs import FileSystem

    files = FileSystem(spark)
    root = tmp_path / "zicht_store"
    unused = _store(root, "unused", created_days_ago=100)
    reused = _store(root, "reused", created_days_ago=100)
    store.touch(files, str(reused), {}, now=NOW - dt.timedelta(days=40))
    store.touch(files, str(reused), {}, now=NOW - dt.timedelta(days=2))  # the newest counts
    used_long_ago = _store(root, "used_long_ago", created_days_ago=100)
    store.touch(files, str(used_long_ago), {}, now=NOW - dt.timedelta(days=31))
    # a store made before the use markers: its last_used in store.json counts
    legacy = _store(
        root,
        "legacy",
        created_days_ago=100,
        last_used=(NOW - dt.timedelta(days=1)).isoformat(),
    )
    fresh = _store(root, "fresh", created_days_ago=0)
    killed_old = _store(root, "killed_old", created_days_ago=None)  # no store.json
    _age(killed_old, 45)
    killed_new = _store(root, "killed_new", created_days_ago=None)

    code = store.main(["purge", "--store", str(root), "--older-than", "30"])

    assert code == 0
    kept = sorted(p.name for p in root.iterdir())
    assert kept == sorted(p.name for p in (reused, legacy, fresh, killed_new))
    assert not unused.exists() and not used_long_ago.exists() and not killed_old.exists()
    assert "3 store(s) unused for 30 days removed" in capsys.readouterr().out


def test_a_reuse_never_rewrites_store_json(spark: SparkSession, tmp_path: Path) -> None:
    """Two runs reusing one store at once, or one killed while recording its use, must not
    leave a half-written store.json: each use is a file of its own."""
    from zicht.jobs.fs import FileSystem

    files = FileSystem(spark)
    folder = _store(tmp_path, "s", created_days_ago=10)
    before = (folder / store.STATE).read_bytes()
    state = store.read_state(files, str(folder))
    assert state is not None
    first, second = NOW - dt.timedelta(hours=3), NOW - dt.timedelta(hours=1)
    store.touch(files, str(folder), state, now=second)
    store.touch(files, str(folder), state, now=first)  # out of order: the newest still wins
    assert (folder / store.STATE).read_bytes() == before
    assert len(list((folder / store.USES).iterdir())) == 2
    assert store.last_used(files, str(folder), state) == second
    assert state["last_used"] == first.isoformat()  # this run's own use, for its manifest
