"""Stable community ids across runs: this run's communities matched to an earlier run's.

Reads and writes nothing. Two memberships (``person_id``, ``community_id``; one row per member,
each member in one community), this run's and the previous run's, on the same person ids (the
store's keys, or the pseudonyms: the key is a pure function of the pseudonym, so lineage
assumes the key holder kept one key across deliveries). :func:`community_overlap` builds, in
Spark, the table of community pairs that share members; :func:`match_lineage` (driver) finds
the maximum-weight matching on their Jaccard overlap (``scipy.optimize.linear_sum_assignment``
per connected component of the eligible pairs) and classifies every community:

- ``kept``: matched to a previous community with Jaccard >= ``threshold``; it keeps that id;
- ``merged``: besides (or instead of) a kept id, it took most of a previous community's members,
  or most of its own members came from it; one row per such predecessor;
- ``split``: not matched, and its one predecessor (in that sense) has two or more successors;
- ``new``: not matched, no predecessor, or a predecessor it is the only successor of (a
  community that grew around a few earlier members); the predecessor is named when there is one;
- ``ended``: a previous id no community of this run carries on (its members may be in ``split``
  or ``merged`` rows).

"Most" is :data:`LINK_SHARE` of one side's members. Matched communities take the previous id;
the others take ids above the previous maximum in the order of this run's ids (size order), so
a new community never takes an ended one's id.

:func:`member_overlap_share` tells a changed key apart from changed networks: below
:data:`KEY_CHANGE_SHARE` of members in common while both runs have members, the pseudonyms are
almost certainly not the same (a new key), and the jobs warn instead of ending every community.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CHANGES = ("kept", "split", "merged", "new", "ended")
# a predecessor link: at least this share of the current or of the previous community's members
LINK_SHARE = 0.5
# members in common (relative to the smaller run) below which the pseudonyms seem to have changed
KEY_CHANGE_SHARE = 0.01

OVERLAP_COLUMNS = ("community_id", "previous_community_id", "n_common", "n_current", "n_previous")
LINEAGE_SCHEMA = T.StructType(
    [
        T.StructField("community_id", T.LongType(), True),
        T.StructField("previous_community_id", T.LongType(), True),
        T.StructField("jaccard", T.DoubleType(), True),
        T.StructField("change", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class Lineage:
    """``ids``: this run's community id -> its lasting id; ``rows``: the lineage table
    (``community_id`` the lasting id, null for ``ended``; ``previous_community_id``, null for a
    ``new`` community without predecessor; ``jaccard``; ``change``)."""

    ids: Mapping[int, int]
    rows: pd.DataFrame


def community_sizes(members: DataFrame) -> DataFrame:
    """``community_id``, ``n_members``."""
    return members.groupBy("community_id").agg(F.count(F.lit(1)).alias("n_members"))


def community_overlap(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Pairs of (current, previous) communities with members in common: ``community_id``,
    ``previous_community_id``, ``n_common``, ``n_current``, ``n_previous``. No action.

    One join of the two memberships on the person: each person is in one community per run, so
    the table has at most as many rows as there are persons in both runs, and in practice about
    as many as there are communities."""
    cur = current.select("person_id", "community_id")
    prev = previous.select(
        "person_id", F.col("community_id").alias("previous_community_id")
    ).dropDuplicates(["person_id"])
    common = (
        cur.join(prev, "person_id", "inner")
        .groupBy("community_id", "previous_community_id")
        .agg(F.count(F.lit(1)).alias("n_common"))
    )
    n_cur = community_sizes(current).withColumnRenamed("n_members", "n_current")
    n_prev = (
        community_sizes(previous)
        .withColumnRenamed("community_id", "previous_community_id")
        .withColumnRenamed("n_members", "n_previous")
    )
    return (
        common.join(n_cur, "community_id", "inner")
        .join(n_prev, "previous_community_id", "inner")
        .select(*OVERLAP_COLUMNS)
    )


def member_overlap_share(n_common: int, n_current: int, n_previous: int) -> float | None:
    """Members in common relative to the smaller run; None when either run has no members."""
    if n_current <= 0 or n_previous <= 0:
        return None
    return n_common / min(n_current, n_previous)


def _kept_pairs(pairs: pd.DataFrame, threshold: float) -> list[tuple[int, int]]:
    """Maximum-weight matching on Jaccard among the pairs at or above ``threshold``, solved per
    connected component of those pairs (components are small: at threshold 0.5 a community has
    at most two eligible partners, so a national run never builds one large matrix)."""
    eligible = pairs[pairs["jaccard"] >= threshold]
    if eligible.empty:
        return []
    cur_ids = np.sort(eligible["community_id"].unique())
    prev_ids = np.sort(eligible["previous_community_id"].unique())
    ci = np.searchsorted(cur_ids, eligible["community_id"].to_numpy())
    pi = np.searchsorted(prev_ids, eligible["previous_community_id"].to_numpy())
    n = len(cur_ids) + len(prev_ids)
    graph = coo_matrix((np.ones(len(ci)), (ci, pi + len(cur_ids))), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    edge_label = label[ci]
    weights = eligible["jaccard"].to_numpy()
    kept: list[tuple[int, int]] = []
    for comp in np.unique(edge_label):
        sel = edge_label == comp
        rows, r_idx = np.unique(ci[sel], return_inverse=True)
        cols, c_idx = np.unique(pi[sel], return_inverse=True)
        # non-pairs weigh -1, below any eligible pair, and are dropped after the assignment
        matrix = np.full((len(rows), len(cols)), -1.0)
        matrix[r_idx, c_idx] = weights[sel]
        for r, c in zip(*linear_sum_assignment(matrix, maximize=True), strict=True):
            if matrix[r, c] >= threshold:
                kept.append((int(cur_ids[rows[r]]), int(prev_ids[cols[c]])))
    return kept


def match_lineage(
    overlap: pd.DataFrame,
    current_ids: list[int],
    previous_ids: list[int],
    *,
    threshold: float,
) -> Lineage:
    """The lasting ids and the lineage table (see the module docstring for the rule).

    ``overlap``: the rows of :func:`community_overlap`; ``current_ids``/``previous_ids``: every
    community id of each run (also those sharing no member)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"lineage threshold {threshold} is not within (0, 1]")
    pairs = overlap.loc[:, list(OVERLAP_COLUMNS)].copy()
    pairs["jaccard"] = pairs["n_common"] / (
        pairs["n_current"] + pairs["n_previous"] - pairs["n_common"]
    )
    jaccard = {
        (int(c), int(p)): float(j)
        for c, p, j in zip(
            pairs["community_id"], pairs["previous_community_id"], pairs["jaccard"], strict=True
        )
    }
    linked = pairs[
        (pairs["n_common"] >= LINK_SHARE * pairs["n_current"])
        | (pairs["n_common"] >= LINK_SHARE * pairs["n_previous"])
    ]
    predecessors: dict[int, list[int]] = {}
    successors: dict[int, list[int]] = {}
    for c, p in zip(linked["community_id"], linked["previous_community_id"], strict=True):
        predecessors.setdefault(int(c), []).append(int(p))
        successors.setdefault(int(p), []).append(int(c))

    kept = dict(_kept_pairs(pairs, threshold))
    next_id = max(previous_ids, default=0) + 1
    ids: dict[int, int] = {}
    for c in sorted(current_ids):
        if c in kept:
            ids[c] = kept[c]
        else:
            ids[c], next_id = next_id, next_id + 1

    rows: list[tuple[int | None, int | None, float | None, str]] = []
    for c in sorted(current_ids):
        lasting, preds = ids[c], sorted(predecessors.get(c, []))
        if c in kept:
            rows.append((lasting, kept[c], jaccard[(c, kept[c])], "kept"))
            rows += [(lasting, p, jaccard[(c, p)], "merged") for p in preds if p != kept[c]]
        elif len(preds) >= 2:
            rows += [(lasting, p, jaccard[(c, p)], "merged") for p in preds]
        elif len(preds) == 1 and len(successors[preds[0]]) >= 2:
            rows.append((lasting, preds[0], jaccard[(c, preds[0])], "split"))
        elif len(preds) == 1:
            rows.append((lasting, preds[0], jaccard[(c, preds[0])], "new"))
        else:
            rows.append((lasting, None, None, "new"))
    carried = set(kept.values())
    rows += [(None, p, None, "ended") for p in sorted(previous_ids) if p not in carried]
    frame = pd.DataFrame(rows, columns=list(LINEAGE_SCHEMA.names))
    frame = frame.astype(
        {"community_id": "Int64", "previous_community_id": "Int64", "jaccard": "Float64"}
    )
    return Lineage(ids=ids, rows=frame)


def empty_rows() -> pd.DataFrame:
    """A lineage table without rows."""
    return pd.DataFrame({c: [] for c in LINEAGE_SCHEMA.names})


def lineage_frame(spark_of: DataFrame, lineage: Lineage) -> DataFrame:
    """The lineage table as a Spark frame (small: one row per community of either run)."""

    def value(v: Any, kind: Callable[[Any], Any]) -> Any:
        return None if v is None or v is pd.NA or pd.isna(v) else kind(v)

    records = [
        (value(c, int), value(p, int), value(j, float), str(ch))
        for c, p, j, ch in lineage.rows.itertuples(index=False, name=None)
    ]
    return spark_of.sparkSession.createDataFrame(records, LINEAGE_SCHEMA)


def with_lasting_ids(df: DataFrame, ids: Mapping[int, int]) -> DataFrame:
    """``df`` with ``community_id`` replaced by its lasting id, columns in the same order; a
    row whose community is not in ``ids`` is dropped (there is none: ``ids`` covers the run)."""
    spark = df.sparkSession
    mapping = spark.createDataFrame(
        [(int(k), int(v)) for k, v in ids.items()],
        T.StructType(
            [
                T.StructField("community_id", T.LongType(), False),
                T.StructField("_lasting_id", T.LongType(), False),
            ]
        ),
    )
    # one row per community (~100k nationally): broadcast beside the members
    return df.join(F.broadcast(mapping), "community_id", "inner").select(
        *[F.col("_lasting_id").alias(c) if c == "community_id" else F.col(c) for c in df.columns]
    )
