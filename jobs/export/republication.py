"""The audit of a release against every earlier release in the register, whatever its input.

Every delivery republishes earlier years, perhaps in a new area vintage. The register's same-data
check (:func:`zicht.jobs.export.register.check_against_earlier_releases`) compares releases of
identical inputs only; this one covers the same (level, area, year, indicator) across all
releases of the register (any input, any vintage), from their published patterns:

- a count this release hides that an earlier release published is known to a partner who holds
  both: the joint audit (:func:`zicht.models.disclosure.joint_audit`) then treats it as
  published (at this release's value, the worst case when the value changed) and requires every
  count hidden in all releases to keep its feasible interval;
- an area an earlier release published that this release does not have at that level and year
  (an old buurt, split or merged away in the new vintage) can be differenced against its
  successors (old buurt minus its published parts). This audit has no relation between the two
  vintages yet (``area_changes`` is issue 18 item 1), so it cannot prove such a difference
  harmless: where this release hides a count of the same year and indicator it refuses the
  export, naming the areas (fail closed). With the area-change relations in the joint audit
  this refusal becomes an audit.

Reads the earlier patterns through the context (beside the output); the aggregates it collects
are a few counts and at most five example cells, no person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.jobs.context import PrivacyRefusal, RunContext

KEYS = ["level", "area_code", "year", "indicator"]

STATEMENT = (
    "Every release is audited together with every earlier release in the release register, of "
    "any delivery and any area vintage, over the same (level, area, year, indicator): a count "
    "hidden here but published before counts as known, and every count hidden in all releases "
    "must keep its feasible interval; an area published before (by a release sharing an area with "
    "this one) that this release no longer has (an old buurt split or merged away) stops the "
    "export wherever a count of the same year and "
    "indicator is hidden here, so an old buurt minus its split successors gives nothing away."
)


def hidden_counts(audit: DataFrame) -> DataFrame:
    """The counts this release suppresses (no linked-difference rows)."""
    return audit.where(
        (F.col("unit") == "count")
        & (F.col("status") == "suppressed")
        & (F.col("reason") != F.lit("linked_difference"))
    ).select(*KEYS)


def republication_findings(audit: DataFrame, earlier: Sequence[DataFrame]) -> dict[str, DataFrame]:
    """``hidden_published_before``: counts hidden here that an earlier pattern published;
    ``vanished``: cells an earlier pattern of an overlapping study area (one sharing an area
    code with this release) published (status ok) of a count indicator whose area this
    release lacks at that level and year, where this release hides a count of the same year
    and indicator. Both ``level, area_code, year, indicator``; lazy."""
    published = reduce(
        DataFrame.unionByName,
        [e.where(F.col("status") == "ok").select(*KEYS) for e in earlier],
    ).distinct()
    hidden = hidden_counts(audit)
    count_keys = (
        audit.where(F.col("unit") == "count").select("indicator").distinct()
    )  # the count indicators of this release
    present = audit.select("level", "area_code", "year").distinct()
    codes = audit.select("level", "area_code").distinct()
    # only releases of an overlapping study area: one that shares no area with this release
    # (another region) has nothing to difference against it
    overlapping = reduce(
        DataFrame.unionByName,
        [
            e.where(F.col("status") == "ok")
            .select(*KEYS)
            .withColumn("_overlaps", F.lit(1))
            .join(
                e.select("level", "area_code")
                .distinct()
                .join(codes, ["level", "area_code"])
                .limit(1)
                .select(F.lit(1).alias("_overlaps")),
                "_overlaps",
                "left_semi",
            )
            .drop("_overlaps")
            for e in earlier
        ],
    ).distinct()
    vanished = (
        overlapping.join(F.broadcast(count_keys), "indicator")
        .join(present, ["level", "area_code", "year"], "left_anti")
        .join(hidden.select("year", "indicator").distinct(), ["year", "indicator"], "left_semi")
    )
    return {
        "hidden_published_before": hidden.join(published, KEYS, "left_semi"),
        "vanished": vanished.select(*KEYS),
    }


def check_republication(
    ctx: RunContext,
    audit: DataFrame,
    hierarchy: DataFrame,
    earlier: Sequence[Mapping[str, Any]],
    release_id: str,
) -> dict[str, Any]:
    """Audit this release against every earlier release's pattern (:data:`STATEMENT`); raise
    :class:`PrivacyRefusal` when a count can be recovered from the releases together or when an
    area of an earlier release has vanished beside a hidden count. Returns the summary for the
    disclosure report."""
    from zicht.jobs.export.register import joint_verdict
    from zicht.jobs.releases import FORGET_HINT

    ids = sorted({str(e["run_id"]) for e in earlier if str(e.get("run_id")) != release_id})
    paths = {r: ctx.location("release_pattern", release_id=r) for r in ids}
    with_pattern = [r for r in ids if ctx.fs.exists(paths[r])]
    summary: dict[str, Any] = {
        "statement": STATEMENT,
        "releases": with_pattern,
        "releases_without_pattern": [r for r in ids if r not in with_pattern],
        "hidden_here_published_before": 0,
        "vanished_areas": 0,
        "audited_cells": 0,
        "unprotected_cells": 0,
        "passed": True,
    }
    if not with_pattern:
        return summary
    patterns = [ctx.spark.read.parquet(paths[r]) for r in with_pattern]
    found = republication_findings(audit, patterns)
    # small: a handful of example cells (area codes, years, indicator keys)
    vanished = found["vanished"].orderBy(*KEYS).limit(5).collect()
    n_vanished = found["vanished"].count() if vanished else 0
    summary["vanished_areas"] = n_vanished
    if n_vanished:
        summary["passed"] = False
        examples = ", ".join(f"{r['area_code']} {r['year']} {r['indicator']}" for r in vanished)
        raise PrivacyRefusal(
            f"{n_vanished} cells published by an earlier release (e.g. {examples}) are areas "
            "this release no longer has, beside counts it hides in the same year: an old area "
            "minus its successors could give a hidden count back, and the joint audit has no "
            "relation between the vintages; nothing was exported" + FORGET_HINT
        )
    n_before = found["hidden_published_before"].count()
    summary["hidden_here_published_before"] = n_before
    if n_before == 0:
        # the joint pattern is this release's own, which its audit already passed
        return summary
    summary.update(joint_verdict(ctx, audit, patterns, hierarchy))
    if not summary["passed"]:
        raise PrivacyRefusal(
            f"joint audit with {len(with_pattern)} earlier release(s) failed: "
            f"{summary['unprotected_cells']} counts hidden in every release can be recovered "
            "from the releases together; nothing was exported" + FORGET_HINT
        )
    return summary
