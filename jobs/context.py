"""What every stage of a run shares: the session, settings, locations, catalogue, timer, tracker.

A :class:`RunContext` is made once per command (``zicht run``, a stage job, ``zicht export
--from``) by :mod:`zicht.jobs.pipeline`. Stages read and write their tables only through it:
:meth:`RunContext.write` checks a frame against its declaration in :mod:`zicht.jobs.catalog`,
writes it under the dataset's root and returns what the manifest records (rows and a digest);
:meth:`RunContext.read` reads a dataset back with Spark. Every location is a local path or a
URI, handled by :mod:`zicht.jobs.fs` over Hadoop's FileSystem, so the same code runs on a
laptop and on a cluster.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession

from zicht.features.settings import Settings
from zicht.jobs import catalog
from zicht.jobs import fs as fsmod

log = logging.getLogger("zicht")


class PipelineError(Exception):
    """A stage found a condition that must stop the run."""


class PrivacyRefusal(PipelineError):
    """A privacy guard refused: the disclosure audit, the leak guard, the release register
    (exit code 4)."""


@dataclass
class StageResult:
    """What a stage made, returned to the orchestrator (never smuggled through a dict).

    ``outputs``: catalogue location -> ``{"rows", "sha256"}`` of every dataset it wrote under the
    output root; ``facts``: JSON-able findings the manifest records (``skipped_indicators``,
    ``inputs``, ...); ``skipped``: why the whole stage did nothing, or None; ``metrics``: numbers
    for the MLflow run; ``value``: an in-memory result a later step of the same stage's
    tracking needs (the area models, for MLflow), never persisted.
    """

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    value: Any = None


class Stage(Protocol):
    """One step of the pipeline: the datasets it needs and produces, and how to make them."""

    name: str
    needs: tuple[str, ...]
    produces: tuple[str, ...]

    def run(self, ctx: RunContext) -> StageResult: ...


@dataclass
class Timer:
    """Wall time per named step; a stage's time covers writing its outputs."""

    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        log.info("stage %s ...", name)
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        log.info("stage %s done in %.1f s", name, self.timings[name])


@dataclass
class RunContext:
    spark: SparkSession
    settings: Settings
    fs: fsmod.FileSystem
    run_id: str
    output: str  # the output location the user named (committed to at the end)
    work: str  # where this command writes the output root's datasets
    store: str | None  # this input's analysis-ready store (None before ingest picked it)
    input: str | None = None
    # where datasets of the output root are read from, when not ``work`` (``zicht export
    # --from`` reads the run's tables from the output and writes its own aside)
    source: str | None = None
    run_date: dt.date = field(default_factory=dt.date.today)
    timer: Timer = field(default_factory=Timer)
    results: dict[str, StageResult] = field(default_factory=dict)
    store_facts: dict[str, Any] = field(default_factory=dict)
    current_stage: str | None = None  # for the progress lines
    # files this command rendered and wrote, location -> bytes (small by construction: the
    # partner files and restricted summaries), so a check of them need not read them back
    rendered: dict[str, bytes] = field(default_factory=dict)
    lease: Any = None  # zicht.jobs.outputs.Lease held on the output, when one is
    recovered: list[str] = field(default_factory=list)  # what this command cleaned up first
    previous_output: str | None = None  # --previous: an earlier output to link communities to

    # ----------------------------------------------------------------- locations

    def root(self, root: str) -> str:
        if root == "output":
            return self.work
        if root == "stage":
            return fsmod.join(self.work, "restricted", "stage")
        if root == "beside":
            return fsmod.parent(self.output)
        if root == "store":
            if self.store is None:
                raise PipelineError("no analysis-ready store: run the ingest stage first")
            return self.store
        raise KeyError(root)

    def location(self, name: str, **params: str) -> str:
        ds = catalog.get(name)
        return ds.path(self.root(ds.root), **params)

    def source_location(self, name: str, **params: str) -> str:
        """Where to read ``name`` from (``source`` for the output root, when set)."""
        ds = catalog.get(name)
        root = self.source if (ds.root == "output" and self.source) else self.root(ds.root)
        return ds.path(root, **params)

    def relative(self, name: str, **params: str) -> str:
        """The dataset's location relative to the output root (the manifest's key)."""
        ds = catalog.get(name)
        return ds.path("", **params).lstrip("/")

    def exists(self, name: str, **params: str) -> bool:
        return self.fs.exists(self.source_location(name, **params))

    # ----------------------------------------------------------------- tables

    def read(self, name: str, **params: str) -> DataFrame:
        return self.spark.read.parquet(self.source_location(name, **params))

    def read_optional(self, name: str, **params: str) -> DataFrame | None:
        """A dataset a stage wrote only when its sources exist."""
        return self.read(name, **params) if self.exists(name, **params) else None

    def write(
        self, name: str, df: DataFrame, *, count: bool = True, **params: str
    ) -> tuple[DataFrame, dict[str, Any]]:
        """Check ``df`` against the catalogue, write it as Parquet and read it back.

        Reading back cuts the query plan (Catalyst's planning time grows with the plan) and
        means no later step depends on an executor's cache. Returns the frame read back and,
        for datasets under the output root, the manifest record (rows, digest).
        """
        ds = catalog.get(name)
        if params:
            ds = ds.for_table(params["table"]) if "table" in params else ds
        if ds.schema is not None:  # plan cuts inside one stage declare none
            catalog.check_schema(ds, df.schema)
        loc = self.location(name, **params)
        writer = df.write.mode("overwrite")
        if ds.partition_by:
            writer = writer.partitionBy(*ds.partition_by)
        started = time.perf_counter()
        writer.parquet(loc)
        # with -v, which dataset a stage's time went to (the plan runs in this one call)
        log.debug("wrote %s in %.1f s", name, time.perf_counter() - started)
        back = self.spark.read.parquet(loc)
        record: dict[str, Any] = {}
        if ds.root == "output":
            record = {
                "rows": back.count() if count else None,
                "sha256": fsmod.digest(self.spark, loc),
            }
        return back, record

    def write_bytes(self, name: str, data: bytes, *, rows: int, **params: str) -> dict[str, Any]:
        """A file rendered in memory (CSV, XLSX, HTML, JSON), written in one call."""
        loc = self.location(name, **params)
        self.fs.write_bytes(loc, data, overwrite=True)
        self.rendered[loc] = data
        # the bytes are in hand: the same digest as fs.digest, without a Spark job reading them
        return {"rows": rows, "sha256": fsmod.digest_of_bytes(fsmod.name(loc), data)}

    def write_text(self, name: str, text: str, *, rows: int, **params: str) -> dict[str, Any]:
        return self.write_bytes(name, text.encode("utf-8"), rows=rows, **params)

    # ----------------------------------------------------------------- results

    def fact(self, key: str, default: Any = None) -> Any:
        """A finding of an earlier stage of this run (or of the stage jobs before it)."""
        for result in reversed(list(self.results.values())):
            if key in result.facts:
                return result.facts[key]
        return default


def flat_outputs(results: Mapping[str, StageResult]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in results.values():
        out.update(r.outputs)
    return out
