"""Community lineage for the network stage: ``--previous OUTPUT`` links this run's communities
to an earlier run's (:mod:`zicht.models.lineage`).

Reads the previous output's ``restricted/network_members.parquet`` (pseudonyms, hashed here to
the store's keys with :func:`zicht.features.keys.surrogate`: the key is a pure function of the
pseudonym). Writes ``restricted/community_lineage.parquet`` and gives the network stage the
lasting ids for ``network_members`` and ``communities``. Person ids are compared inside the
secure environment only; the lineage table holds community ids, never a person.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.features.keys import surrogate
from zicht.jobs import catalog, outputs
from zicht.jobs import fs as fsmod
from zicht.jobs.context import RunContext
from zicht.jobs.io import InputError
from zicht.models import lineage as lin

log = logging.getLogger("zicht")


def check_previous(fs: Any, previous: str) -> str:
    """The readable folder of ``--previous`` (a committed output); InputError when absent."""
    loc = fsmod.normalize(previous)
    if not fs.is_dir(loc):
        raise InputError(f"--previous {previous}: no such folder")
    return outputs.readable(fs, loc)


def link_communities(
    ctx: RunContext, members: DataFrame, communities: DataFrame
) -> tuple[DataFrame, DataFrame, dict[str, Any], dict[str, Any]]:
    """``members`` (on keys) and ``communities`` with their lasting ids, the stage's facts and
    the lineage's output record. Without ``ctx.previous_output`` they come back as they are."""
    if not ctx.previous_output:
        return members, communities, {}, {}
    source = check_previous(ctx.fs, ctx.previous_output)
    prev_loc = catalog.get("network_members").path(source)
    if ctx.fs.exists(prev_loc):
        previous = ctx.spark.read.parquet(prev_loc).select(
            surrogate(F.col("person_id")).alias("person_id"), "community_id"
        )
    else:
        log.warning("--previous %s has no network_members: every community is new", source)
        previous = members.select("person_id", "community_id").limit(0)
    threshold = ctx.settings.network.lineage_threshold
    # the overlap is built in Spark (members joined on the person); only the pairs of
    # communities sharing a member reach the driver, with every community id of both runs:
    # ~100k communities nationally, so both are bounded by the number of communities
    overlap = lin.community_overlap(members, previous).toPandas()
    current_ids = [int(r[0]) for r in members.select("community_id").distinct().collect()]
    prev_sizes = lin.community_sizes(previous).collect()
    previous_ids = [int(r["community_id"]) for r in prev_sizes]
    n_current = members.count()
    n_previous = sum(int(r["n_members"]) for r in prev_sizes)
    n_common = int(overlap["n_common"].sum()) if len(overlap) else 0
    share = lin.member_overlap_share(n_common, n_current, n_previous)
    facts: dict[str, Any] = {
        "previous": source,
        "threshold": threshold,
        "members_in_common": n_common,
        "member_overlap_share": share,
    }
    if share is not None and share < lin.KEY_CHANGE_SHARE:
        warning = (
            f"community lineage: only {n_common} of {min(n_current, n_previous)} members in "
            f"common with {source}: the pseudonyms seem to have changed (a new key?); no "
            "lineage recorded, communities numbered above the previous run's ids"
        )
        log.warning(warning)
        facts["warning"] = warning
        start = max(previous_ids, default=0)
        ids = {c: start + i for i, c in enumerate(sorted(current_ids), start=1)}
        rows = lin.lineage_frame(members, lin.Lineage(ids=ids, rows=lin.empty_rows()))
    else:
        lineage = lin.match_lineage(overlap, current_ids, previous_ids, threshold=threshold)
        ids = dict(lineage.ids)
        rows = lin.lineage_frame(members, lineage)
        facts["changes"] = {
            k: int(v) for k, v in lineage.rows["change"].value_counts().sort_index().items()
        }
        log.info("community lineage against %s: %s", source, facts["changes"])
    _, record = ctx.write("community_lineage", rows)
    return (
        lin.with_lasting_ids(members, ids),
        lin.with_lasting_ids(communities, ids),
        {"community_lineage": facts},
        {ctx.relative("community_lineage"): record},
    )
