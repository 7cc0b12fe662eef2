"""Suspect networks: co-offending ties, communities, centrality, brokers, and disruption.

Reads and writes nothing (the jobs in ``zicht.jobs`` do). Builds the two restricted outputs of
CONTRACT.md section 3 from the linked tables of DEVELOPERS.md:

- ``network_members``: one row per suspect (never a person who is not a suspect) with its
  community, degree, weighted degree, betweenness within its community, participation
  coefficient and broker flag;
- ``communities``: one row per community with its size, incidents, phenomenon shares, home
  buurt and wijk, lokale worteling (rootedness) and activity spread.

Methods followed:

- ties: co-offending, two suspects registered for the same incident (Reiss 1988, the usual tie
  of network analysis on police records); each tie is weighted by recency, see
  :func:`build_cooffending_edges`;
- communities: Leiden (Traag, Waltman & van Eck 2019, Sci. Rep. 9:5233) optimising the constant
  Potts model (Traag, Van Dooren & Nesterov 2011), igraph's built-in ``community_leiden``.
  Not modularity: its resolution limit (Fortunato & Barthelemy 2007) merges two groups joined by
  one broker whenever the graph as a whole is large, which a police register always is;
- brokers: the representative/gatekeeper roles of Gould & Fernandez (1989) between communities,
  with the participation coefficient of Guimera & Amaral (2005, Nature 433:895) reported beside
  them, see :func:`score_suspect_graph`;
- disruption: node removal by betweenness or degree, sequential or in blocks, as in Cavallaro et
  al. (2020) "Disrupting resilient criminal networks through data analysis: the case of Sicilian
  Mafia", PLoS ONE 15(8):e0236476, see :func:`simulate_disruption`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import igraph as ig
import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.settings import NetworkSettings
from zicht.features.vocabulary import LINK_LAYERS  # the contract's person_links layers

LAYER_CO_OFFENDING = "co_offending"
# Layers derived from the registers: same BRP household, roles in the same company, registered
# at the same address.
REGISTER_LAYERS = ("household", "company", "address")
LAYERS = (LAYER_CO_OFFENDING, *LINK_LAYERS, *REGISTER_LAYERS)

# Half-life of a co-offending tie's weight. Two years: an incident two years before the latest
# incident of the data counts half, four years a quarter. Police practice treats ties older than
# a few years as stale; the exact value matters little for Leiden (only relative weights do).
RECENCY_HALF_LIFE_YEARS = 2.0

# Scores are compared after rounding, so that two suspects in the same position (equal counts)
# never differ by floating-point noise from summation order.
_SCORE_DECIMALS = 9
# Leiden iterations before giving up on a partition that keeps changing (3 were needed at small,
# 13 at medium: 74k suspects, 47k ties, 3 s)
_LEIDEN_MAX_ITERATIONS = 50

_PHENOMENON_KEY = re.compile(r"^[a-z][a-z0-9_]*$")

MEMBERS_SCHEMA = T.StructType(
    [
        # suspect key (only suspects, never other persons): the store's 64-bit key, or the
        # pseudonym where the suspects carry it (members_schema)
        T.StructField("person_id", T.LongType(), False),
        # community: 1 is the largest; ties in size go to the one with the smallest person_id
        T.StructField("community_id", T.LongType(), False),
        # number of distinct co-suspects
        T.StructField("degree", T.LongType(), False),
        # sum of recency-weighted tie weights
        T.StructField("weighted_degree", T.DoubleType(), False),
        # betweenness within the community, normalised as networkx (normalized=True)
        T.StructField("betweenness", T.DoubleType(), False),
        # participation coefficient 1 - sum_c (k_ic / k_i)^2 over communities c (0 if isolated)
        T.StructField("participation", T.DoubleType(), False),
        # bridges communities: see score_suspect_graph
        T.StructField("is_broker", T.BooleanType(), False),
    ]
)


def members_schema(id_type: T.DataType) -> T.StructType:
    """:data:`MEMBERS_SCHEMA` with ``person_id`` of the suspects' id type (key or pseudonym)."""
    return T.StructType(
        [
            T.StructField("person_id", id_type, False) if f.name == "person_id" else f
            for f in MEMBERS_SCHEMA.fields
        ]
    )


def communities_schema(phenomena: Sequence[str]) -> T.StructType:
    """Schema of ``communities`` for the given phenomenon keys."""
    return T.StructType(
        [
            T.StructField("community_id", T.LongType(), False),  # as in network_members
            T.StructField("size", T.LongType(), False),  # number of member suspects
            # distinct incidents with at least one member as suspect
            T.StructField("n_incidents", T.LongType(), False),
            *[
                # share of the community's incidents that belong to the phenomenon
                T.StructField(f"share_{p}", T.DoubleType(), True)
                for p in phenomena
            ],
            # buurt / wijk where most resident members live (latest year); null if none resident
            T.StructField("home_buurt_code", T.StringType(), True),
            T.StructField("home_wijk_code", T.StringType(), True),
            # share of ALL members resident in the home buurt / home wijk
            T.StructField("rootedness_buurt", T.DoubleType(), False),
            T.StructField("rootedness_wijk", T.DoubleType(), False),
            # distinct buurten of the community's incidents
            T.StructField("n_buurten_active", T.LongType(), False),
            # spread of the incident locations: standard distance (root mean square distance
            # from their mean point, RD New) in km; 0 for one place, null without incidents
            T.StructField("spread_km", T.DoubleType(), True),
            # share of members without a residence (unregistered, living elsewhere or abroad)
            T.StructField("share_non_resident", T.DoubleType(), False),
        ]
    )


# ----------------------------------------------------------------------------- Spark part


def build_cooffending_edges(
    suspects: DataFrame,
    incidents: DataFrame,
    *,
    half_life_years: float = RECENCY_HALF_LIFE_YEARS,
) -> DataFrame:
    """Undirected co-offending ties: two suspects registered for the same incident.

    Returns ``person_id_a < person_id_b``, ``n_incidents`` (shared incidents), ``last_date``
    (latest shared incident), ``weight`` and ``layer`` = ``co_offending``; no actions.

    ``weight`` is the recency-weighted count: every shared incident adds
    ``0.5 ** (age_years / half_life_years)``, its age taken from the latest incident date among
    ``incidents`` (the end of the data, not the day of the run, so a rerun gives the same
    weights). A tie of n incidents all on that date weighs n; older ties weigh less, never 0.
    Suspect rows of incidents absent from ``incidents`` make no tie.
    """
    if half_life_years <= 0:
        raise ValueError("half_life_years must be positive")
    pairs = (
        suspects.select("incident_id", "person_id")
        .where(F.col("person_id").isNotNull())
        .distinct()  # one person registered twice for an incident is one suspect
    )
    dated = pairs.join(incidents.select("incident_id", "incident_date"), "incident_id")
    reference = incidents.agg(F.max("incident_date").alias("_reference_date"))
    left = dated.select("incident_id", "incident_date", F.col("person_id").alias("person_id_a"))
    right = dated.select("incident_id", F.col("person_id").alias("person_id_b"))
    age_years = F.datediff(F.col("_reference_date"), F.col("incident_date")) / F.lit(365.25)
    return (
        left.join(right, "incident_id")
        .where(F.col("person_id_a") < F.col("person_id_b"))
        .crossJoin(F.broadcast(reference))
        .groupBy("person_id_a", "person_id_b")
        .agg(
            F.count(F.lit(1)).alias("n_incidents"),
            F.max("incident_date").alias("last_date"),
            F.sum(F.pow(F.lit(0.5), age_years / F.lit(float(half_life_years)))).alias("weight"),
        )
        .select(
            "person_id_a",
            "person_id_b",
            F.col("n_incidents").cast("long").alias("n_incidents"),
            "last_date",
            F.col("weight").cast("double").alias("weight"),
            F.lit(LAYER_CO_OFFENDING).alias("layer"),
        )
    )


def _pairs_sharing(df: DataFrame, key: str, layer: str) -> DataFrame:
    """Ties between every two persons that share ``key`` (a household, company, address)."""
    d = df.select(key, "person_id").where(F.col(key).isNotNull()).distinct()
    a = d.select(key, F.col("person_id").alias("person_id_a"))
    b = d.select(key, F.col("person_id").alias("person_id_b"))
    return (
        a.join(b, key)
        .where(F.col("person_id_a") < F.col("person_id_b"))
        .select("person_id_a", "person_id_b")
        .distinct()
        .withColumn("layer", F.lit(layer))
    )


def build_layer_edges(
    suspect_ids: DataFrame,
    *,
    layers: Sequence[str],
    person_links: DataFrame | None = None,
    persons: DataFrame | None = None,
    company_roles: DataFrame | None = None,
) -> DataFrame:
    """Ties between two suspects in the non-co-offending layers (no actions).

    ``suspect_ids`` has ``person_id``. Only persons among them are kept *before* the pairs are
    formed (a semi-join), so a household, company or address shared with non-suspects never
    brings those persons into the network, and the self-join stays small. Returns
    ``person_id_a < person_id_b``, ``weight`` (1.0) and ``layer``; a pair tied in two layers has
    two rows. Absent tables contribute nothing.
    """
    # the suspects (a few hundred thousand keys nationally) go to every task as a broadcast, so
    # the tens of millions of person_links and register rows are cut before any shuffle
    ids = F.broadcast(suspect_ids.select("person_id").distinct())
    parts: list[DataFrame] = []
    wanted_links = [layer for layer in layers if layer in LINK_LAYERS]
    if person_links is not None and wanted_links:
        links = person_links.where(F.col("layer").isin(wanted_links))
        first = F.least("person_id_a", "person_id_b")
        second = F.greatest("person_id_a", "person_id_b")
        links = links.select(
            first.alias("person_id_a"), second.alias("person_id_b"), "layer"
        ).where(F.col("person_id_a") != F.col("person_id_b"))
        links = links.join(
            ids.withColumnRenamed("person_id", "person_id_a"), "person_id_a", "left_semi"
        ).join(ids.withColumnRenamed("person_id", "person_id_b"), "person_id_b", "left_semi")
        parts.append(links.select("person_id_a", "person_id_b", "layer").distinct())
    if persons is not None:
        p = persons.join(ids, "person_id", "left_semi")
        if "household" in layers:
            parts.append(_pairs_sharing(p, "household_id", "household"))
        if "address" in layers:
            parts.append(_pairs_sharing(p, "address_id", "address"))
    if company_roles is not None and "company" in layers:
        parts.append(
            _pairs_sharing(
                company_roles.join(ids, "person_id", "left_semi"), "company_id", "company"
            )
        )
    spark = suspect_ids.sparkSession
    id_type = suspect_ids.schema["person_id"].dataType.simpleString()
    out = spark.createDataFrame([], f"person_id_a {id_type}, person_id_b {id_type}, layer string")
    for part in parts:
        out = out.unionByName(part)
    return out.withColumn("weight", F.lit(1.0))


def build_network(
    suspects: DataFrame,
    incidents_located: DataFrame,
    residence: DataFrame,
    *,
    phenomena: Sequence[str],
    settings: NetworkSettings,
    layer_edges: DataFrame | None = None,
    cooffending_edges: DataFrame | None = None,
    vertex_order: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """(network_members, communities) of the suspects' network.

    ``vertex_order`` (``person_id``, ``vertex``; :func:`vertex_order`): where the ids are the
    store's 64-bit keys, each suspect's place in the order of its pseudonym's text. igraph then
    numbers the vertices, and Leiden visits them, as it did on the pseudonyms themselves, so the
    partition does not depend on which key a pseudonym hashes to. Without it: the ids' order.

    ``cooffending_edges``: :func:`build_cooffending_edges` of the same suspects and incidents,
    when the caller has it already (it uses the ties for other measures too); else built here.

    Co-offending ties always count when ``co_offending`` is among ``settings.layers``;
    ``layer_edges`` (from :func:`build_layer_edges`) adds ties between two suspects in other
    layers, each weighing 1, so the network is multiplex but its persons remain suspects only.

    The network's persons are the suspects of the located incidents, all of them: a suspect
    without any tie is a member with a singleton community. The edge table is built in Spark;
    the graph is collected to the driver for igraph (one action), and the scores go back into
    Spark. ``communities`` is then computed in Spark from the members, the suspects, the
    incidents and ``residence`` (each person's latest year says where the person lives).
    """
    unsupported = sorted(set(settings.layers) - set(LAYERS))
    if unsupported:
        raise ValueError(
            f"network.layers: {', '.join(unsupported)} unknown (choose from {', '.join(LAYERS)})"
        )
    bad = [p for p in phenomena if not _PHENOMENON_KEY.match(p)]
    if bad:
        raise ValueError(f"phenomena: {bad} are not lower snake_case keys")
    spark = incidents_located.sparkSession

    located = (
        suspects.select("incident_id", "person_id")
        .where(F.col("person_id").isNotNull())
        .distinct()
        .join(incidents_located.select("incident_id"), "incident_id", "left_semi")
    )
    if cooffending_edges is None:
        cooffending_edges = build_cooffending_edges(located, incidents_located)
    edges = cooffending_edges.select("person_id_a", "person_id_b", "weight")
    if LAYER_CO_OFFENDING not in settings.layers:
        edges = edges.limit(0)
    if layer_edges is not None:
        suspect_ids = located.select("person_id").distinct()
        extra = (
            layer_edges.where(F.col("layer").isin(list(settings.layers)))
            .join(
                suspect_ids.withColumnRenamed("person_id", "person_id_a"),
                "person_id_a",
                "left_semi",
            )
            .join(
                suspect_ids.withColumnRenamed("person_id", "person_id_b"),
                "person_id_b",
                "left_semi",
            )
            .select("person_id_a", "person_id_b", "weight")
        )
        edges = edges.unionByName(extra)

    # To the driver: the suspects' graph only (person ids and ties, no attributes). Bounded by
    # construction: about 200k suspects a year nationally and about 1M co-offending ties, a few
    # tens of MB; igraph's Leiden runs on 200k nodes / 1M edges in seconds (STACK.md).
    # One pass: the ties, and every suspect as a row without a second person (the isolated
    # ones are known only from these rows).
    id_type = located.schema["person_id"].dataType
    # A suspect row repeats its id as the second end (no nulls: a null in a 64-bit key column
    # would make pandas turn it to float and lose the key's low bits).
    graph_rows = edges.select(
        "person_id_a", "person_id_b", "weight", F.lit(True).alias("is_tie")
    ).unionByName(
        located.select(
            F.col("person_id").alias("person_id_a"),
            F.col("person_id").alias("person_id_b"),
            F.lit(0.0).alias("weight"),
            F.lit(False).alias("is_tie"),
        ).distinct()
    )
    if vertex_order is not None:  # the graph on the driver in pseudonym order (see above)
        graph_rows = _placed(graph_rows, vertex_order)
    graph_pdf = graph_rows.toPandas()
    if vertex_order is not None:
        _check_placed(graph_pdf)
    is_tie = graph_pdf["is_tie"].to_numpy(dtype=bool)
    members_pdf = score_suspect_graph(
        graph_pdf.loc[~is_tie, "person_id_a"],
        graph_pdf.loc[is_tie, ["person_id_a", "person_id_b", "weight"]],
        settings=settings,
    )
    if vertex_order is None:
        members = spark.createDataFrame(members_pdf, schema=members_schema(id_type))
    else:  # back from the places to the ids, in Spark (a broadcast of the suspects' order)
        placed = spark.createDataFrame(members_pdf, schema=members_schema(T.LongType()))
        members = (
            placed.withColumnRenamed("person_id", "vertex")
            .join(F.broadcast(vertex_order), "vertex")
            .select(*[f.name for f in MEMBERS_SCHEMA.fields])
        )

    communities = _build_communities(
        members, located, incidents_located, residence, phenomena=phenomena
    )
    return members, communities


def _placed(ties: DataFrame, vertex_order: DataFrame) -> DataFrame:
    """``ties`` with ``person_id_a`` and ``person_id_b`` replaced by their places in
    ``vertex_order`` (a broadcast of the suspects; a person without a place: null, see
    :func:`_check_placed`), the other columns kept in their order."""
    for end in ("a", "b"):
        order = vertex_order.select(
            F.col("person_id").alias(f"person_id_{end}"), F.col("vertex").alias(f"_v{end}")
        )
        ties = ties.join(F.broadcast(order), f"person_id_{end}", "left")
    return ties.select(
        *[F.col(f"_v{c[-1]}").alias(c) if c in ("person_id_a", "person_id_b") else F.col(c)
          for c in ties.columns if c not in ("_va", "_vb")]
    )  # fmt: skip


def _check_placed(pdf: pd.DataFrame) -> None:
    if pdf[["person_id_a", "person_id_b"]].isna().any(axis=None):
        raise ValueError("vertex_order lacks suspects of the network: no place for them")


def vertex_order(dictionary: DataFrame) -> DataFrame:
    """``person_id`` (the key), ``vertex`` (long, 0..n-1): each pseudonym of the key
    dictionary (``key``, ``pseudonym``: the suspects, a few hundred thousand nationally) at its
    place in the order of the pseudonyms' text, for :func:`build_network`. One sorted window
    over that small table (a single partition by construction)."""
    return dictionary.select(
        F.col("key").alias("person_id"),
        (F.row_number().over(Window.orderBy("pseudonym", "key")) - 1).alias("vertex"),
    )


def _latest_residence(residence: DataFrame) -> DataFrame:
    """Each person's residence in the latest year present (ties in a year: smallest buurt)."""
    w = Window.partitionBy("person_id").orderBy(
        F.col("year").desc(), F.col("buurt_code").asc_nulls_last()
    )
    return (
        residence.select("person_id", "year", "buurt_code", "wijk_code")
        .withColumn("_rn", F.row_number().over(w))
        .where(F.col("_rn") == 1)
        .select("person_id", "buurt_code", "wijk_code")
    )


def _mode(homes: DataFrame, column: str, alias: str) -> DataFrame:
    """Per community the most frequent non-null ``column``; ties go to the smallest code."""
    counts = (
        homes.where(F.col(column).isNotNull())
        .groupBy("community_id", column)
        .agg(F.count(F.lit(1)).alias("_n"))
    )
    w = Window.partitionBy("community_id").orderBy(F.col("_n").desc(), F.col(column).asc())
    return (
        counts.withColumn("_rn", F.row_number().over(w))
        .where(F.col("_rn") == 1)
        .select("community_id", F.col(column).alias(alias))
    )


def _build_communities(
    members: DataFrame,
    located: DataFrame,
    incidents_located: DataFrame,
    residence: DataFrame,
    *,
    phenomena: Sequence[str],
) -> DataFrame:
    membership = members.select("person_id", "community_id")
    cols = incidents_located.columns

    incident_stats = (
        located.join(membership, "person_id")
        .select("community_id", "incident_id")
        .distinct()
        .join(
            incidents_located.select(
                "incident_id", "buurt_code", "phenomena", *[c for c in ("x", "y") if c in cols]
            ),
            "incident_id",
        )
        .groupBy("community_id")
        .agg(
            F.count(F.lit(1)).alias("n_incidents"),
            F.countDistinct("buurt_code").alias("n_buurten_active"),
            (
                F.sqrt(F.var_pop("x") + F.var_pop("y")) / 1000.0
                if {"x", "y"} <= set(cols)
                else F.lit(None).cast("double")
            ).alias("spread_km"),
            *[
                F.avg(
                    F.coalesce(F.array_contains("phenomena", p), F.lit(False)).cast("double")
                ).alias(f"share_{p}")
                for p in phenomena
            ],
        )
    )

    # a member without a residence row (or without a buurt in it) is not resident in the area.
    # The register's residence (every inhabitant, every year) is cut to the members with a
    # broadcast semi-join before its window: the suspects, a few hundred thousand nationally
    # (the bound of the graph collected above), instead of sorting every inhabitant's years.
    own = residence.join(F.broadcast(membership.select("person_id")), "person_id", "left_semi")
    homes = membership.join(_latest_residence(own), "person_id", "left")
    home_buurt = _mode(homes, "buurt_code", "home_buurt_code")
    home_wijk = _mode(homes, "wijk_code", "home_wijk_code")

    def share(condition: Column) -> Column:
        return F.avg(F.when(condition, 1.0).otherwise(0.0))

    resident_stats = (
        homes.join(home_buurt, "community_id", "left")
        .join(home_wijk, "community_id", "left")
        .groupBy("community_id")
        .agg(
            F.count(F.lit(1)).alias("size"),
            F.first("home_buurt_code", ignorenulls=True).alias("home_buurt_code"),
            F.first("home_wijk_code", ignorenulls=True).alias("home_wijk_code"),
            share(F.col("buurt_code") == F.col("home_buurt_code")).alias("rootedness_buurt"),
            share(F.col("wijk_code") == F.col("home_wijk_code")).alias("rootedness_wijk"),
            share(F.col("buurt_code").isNull()).alias("share_non_resident"),
        )
    )
    schema = communities_schema(phenomena)
    joined = resident_stats.join(incident_stats, "community_id", "left")
    filled = {"n_incidents": F.lit(0), "n_buurten_active": F.lit(0)}
    return joined.select(
        *[
            (F.coalesce(F.col(f.name), filled[f.name]) if f.name in filled else F.col(f.name))
            .cast(f.dataType)
            .alias(f.name)
            for f in schema.fields
        ]
    )


# ------------------------------------------------------------------------------ driver part


def _id_array(values: Iterable[object]) -> np.ndarray:
    """Person ids as a numpy array: int64 for the store's keys, object (text) for pseudonyms."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else list(values))
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr.astype(str).astype(object)


def score_suspect_graph(
    person_ids: Iterable[object],
    edges: pd.DataFrame,
    *,
    settings: NetworkSettings,
) -> pd.DataFrame:
    """Communities, centralities and brokers of one suspects' graph, on the driver.

    ``person_ids``: every suspect (isolated ones included); ``edges``: ``person_id_a``,
    ``person_id_b``, ``weight`` (several rows for one pair, e.g. from several layers, add up).
    Returns one row per person in the columns of :data:`MEMBERS_SCHEMA`, ordered by person_id.

    - Vertices are sorted by person_id and edges by their endpoints, so the result does not
      depend on the order of the input rows (or Spark's partitioning); Leiden is seeded with
      ``settings.seed`` through Python's ``random`` (igraph's default generator), whose state is
      restored afterwards.
    - Communities: Leiden, constant Potts model with ``settings.resolution`` (a density: two
      sets of suspects A and B end up in one community only if the tie weight between them
      exceeds resolution * |A| * |B|), edge weights, iterated until stable. Unlike modularity,
      whose null model spans the whole graph, this does not depend on how many unrelated
      suspects the register holds. A suspect without ties is a community of its own.
    - Betweenness: unweighted shortest paths inside the suspect's community (the induced
      subgraph), normalised like networkx ``betweenness_centrality(normalized=True)``: exact up to
      ``settings.exact_betweenness_max_nodes`` members, above that estimated from that many
      sampled source suspects (Brandes & Pich 2007, the estimator networkx uses for ``k``).
    - Participation coefficient (Guimera & Amaral 2005): how evenly a suspect's co-suspects
      spread over communities.
    - Broker: see :func:`_brokers`; it does not rank suspects against each other, so adding
      unrelated suspects to the register never changes who is a broker.
    """
    # ids are the store's 64-bit keys (int64 arrays, no Python objects) or pseudonyms (text)
    ids = np.unique(_id_array(person_ids))
    first = _id_array(edges["person_id_a"])
    second = _id_array(edges["person_id_b"])
    ends = np.concatenate([first, second])
    known = np.isin(ends, ids)
    if not known.all():
        unknown = len(np.unique(ends[~known]))
        raise ValueError(f"{unknown} persons in edges are not among the suspects")
    # undirected and simple: (a, b) with a < b, parallel rows summed, no self-ties
    swap = first > second
    pairs = pd.DataFrame(
        {
            "a": np.where(swap, second, first),
            "b": np.where(swap, first, second),
            "weight": edges["weight"].to_numpy(dtype="float64"),
        }
    )
    pairs = pairs.loc[pairs["a"] != pairs["b"]]
    e: pd.DataFrame = pairs.groupby(["a", "b"], sort=True)["weight"].sum().reset_index()
    n = len(ids)
    # dense vertex ids 0..n-1 in the order of the sorted ids, for igraph only
    src = np.searchsorted(ids, e["a"].to_numpy()).astype(np.int64)
    dst = np.searchsorted(ids, e["b"].to_numpy()).astype(np.int64)
    weights = e["weight"].to_numpy(dtype="float64")
    g = ig.Graph(n=n, directed=False)
    g.add_edges(np.column_stack([src, dst]))

    community = _leiden_communities(g, weights, settings=settings)
    degree = np.asarray(g.degree(), dtype=np.int64)
    weighted_degree = (
        np.asarray(g.strength(weights=weights.tolist()), dtype="float64") if len(e) else np.zeros(n)
    )
    betweenness = _community_betweenness(g, community, settings=settings)
    participation = _participation(src, dst, community, degree)
    is_broker = _brokers(src, dst, weights, community, settings=settings)
    return pd.DataFrame(
        {
            "person_id": pd.Series(ids),
            "community_id": community.astype(np.int64),
            "degree": degree,
            "weighted_degree": weighted_degree,
            "betweenness": betweenness,
            "participation": participation,
            "is_broker": is_broker,
        }
    )


def _leiden_communities(
    g: ig.Graph, weights: np.ndarray, *, settings: NetworkSettings
) -> np.ndarray:
    """Community ids 1..K: ordered by size (largest first), then by smallest vertex (person_id)."""
    n = g.vcount()
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if g.ecount():
        state = random.getstate()
        try:
            random.seed(settings.seed)
            raw = _leiden_until_stable(g, weights, settings.resolution)
        finally:
            random.setstate(state)
    else:
        raw = np.arange(n, dtype=np.int64)
    # an isolated suspect is its own community whatever Leiden did with it (moving a vertex
    # without ties changes modularity by nothing, so the algorithm may leave it anywhere)
    isolated = np.asarray(g.degree()) == 0
    raw = raw.copy()
    raw[isolated] = raw.max() + 1 + np.arange(int(isolated.sum()))
    _, raw = np.unique(raw, return_inverse=True)
    k = int(raw.max()) + 1
    sizes = np.bincount(raw, minlength=k)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, raw, np.arange(n))
    order = np.lexsort((first, -sizes))  # last key is primary: size desc, then first vertex
    new_id = np.empty(k, dtype=np.int64)
    new_id[order] = np.arange(1, k + 1)
    out: np.ndarray = new_id[raw]
    return out


def _leiden_until_stable(g: ig.Graph, weights: np.ndarray, resolution: float) -> np.ndarray:
    """Leiden (CPM) iterations from the last partition until one changes nothing (at most 50).

    igraph's ``n_iterations=-1`` does the same without a bound; with node weights it cycled for
    ever on the small synthetic graph, so the bound is ours.
    """
    membership: list[int] | None = None
    for _ in range(_LEIDEN_MAX_ITERATIONS):
        clustering = g.community_leiden(
            objective_function="CPM",
            weights=weights.tolist(),
            resolution=resolution,
            initial_membership=membership,
            n_iterations=1,
        )
        if clustering.membership == membership:
            break
        membership = clustering.membership
    return np.asarray(membership, dtype=np.int64)


def _community_betweenness(
    g: ig.Graph, community: np.ndarray, *, settings: NetworkSettings
) -> np.ndarray:
    """Betweenness inside each community, networkx-normalised by the community's size."""
    n = g.vcount()
    result = np.zeros(n, dtype="float64")
    if n == 0 or g.ecount() == 0:
        return result
    edge_pairs = np.asarray(g.get_edgelist(), dtype=np.int64)
    intra = np.flatnonzero(community[edge_pairs[:, 0]] == community[edge_pairs[:, 1]])
    # Without the ties between communities every shortest path stays inside one community, so
    # one igraph call gives the betweenness of every community's induced subgraph at once.
    h = g.subgraph_edges(intra.tolist(), delete_vertices=False)
    sizes = np.bincount(community)
    size_of = sizes[community]
    limit = max(int(settings.exact_betweenness_max_nodes), 1)
    exact = np.flatnonzero((size_of >= 3) & (size_of <= limit))
    raw = np.zeros(n, dtype="float64")
    if len(exact):
        # igraph counts each unordered pair once (as networkx with normalized=False)
        values = h.betweenness(
            vertices=exact.tolist(), directed=False, sources=exact.tolist(), targets=exact.tolist()
        )
        raw[exact] = values
    rng = np.random.default_rng(settings.seed)
    for c in np.flatnonzero(sizes > limit):
        verts = np.flatnonzero(community == c)
        sample = np.sort(rng.choice(verts, size=limit, replace=False))
        # sources = the sample, targets = everyone: sums half the ordered pairs from the sample;
        # scaled by n/k it estimates the exact sum without bias
        values = h.betweenness(vertices=verts.tolist(), directed=False, sources=sample.tolist())
        raw[verts] = np.asarray(values) * (len(verts) / limit)
    big = size_of >= 3
    scale = np.ones(n)
    scale[big] = 2.0 / ((size_of[big] - 1.0) * (size_of[big] - 2.0))
    result = raw * scale
    return result


def _participation(
    src: np.ndarray, dst: np.ndarray, community: np.ndarray, degree: np.ndarray
) -> np.ndarray:
    """1 - sum over communities c of (ties to c / all ties)^2; 0 for a suspect without ties."""
    n = len(community)
    out = np.zeros(n, dtype="float64")
    if len(src) == 0:
        return out
    ends = pd.DataFrame(
        {
            "v": np.concatenate([src, dst]),
            "c": np.concatenate([community[dst], community[src]]),
        }
    )
    k_vc = ends.groupby(["v", "c"]).size().reset_index(name="k")
    k_vc["sq"] = (k_vc["k"] / degree[k_vc["v"].to_numpy()]) ** 2
    sum_sq = k_vc.groupby("v")["sq"].sum()
    out[sum_sq.index.to_numpy()] = 1.0 - sum_sq.to_numpy()
    out[degree == 0] = 0.0
    # 1 - 1 can leave -0.0 or 1e-17: clean values that are zero up to rounding
    out = np.round(out, 12) + 0.0
    return out


def _brokers(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray,
    community: np.ndarray,
    *,
    settings: NetworkSettings,
) -> np.ndarray:
    """Suspects through whom their community is tied to another one.

    For every suspect v in community C and every other community D: the ties of v into D
    (count and weight) and the weight of all ties between C and D. v is a broker when it has at
    least ``broker_min_ties`` ties into D carrying at least ``broker_min_share`` of the C-D tie
    weight, and C and D both have at least ``broker_min_community`` members. This is the
    representative/gatekeeper role of Gould & Fernandez (1989) between communities: the other
    end of the broker's ties, each holding one tie of many, is not flagged, nor is a suspect with
    a single stray tie, nor anyone joining two pairs of co-offenders.
    """
    n = len(community)
    flags = np.zeros(n, dtype=bool)
    if len(src) == 0:
        return flags
    ends = pd.DataFrame(
        {
            "v": np.concatenate([src, dst]),
            "c": community[np.concatenate([src, dst])],
            "d": community[np.concatenate([dst, src])],
            "w": np.concatenate([weights, weights]),
        }
    )
    across = ends.loc[ends["c"] != ends["d"]]
    if across.empty:
        return flags
    per = across.groupby(["v", "c", "d"]).agg(w=("w", "sum"), k=("w", "size")).reset_index()
    between = per.groupby(["c", "d"])["w"].transform("sum")
    sizes = np.bincount(community)
    # rounded, so a share of exactly one half is not lost to the order of floating-point sums
    share = np.round(per["w"] / between, _SCORE_DECIMALS)
    ok = (
        (per["k"] >= settings.broker_min_ties)
        & (share >= settings.broker_min_share)
        & (sizes[per["c"].to_numpy()] >= settings.broker_min_community)
        & (sizes[per["d"].to_numpy()] >= settings.broker_min_community)
    )
    flags[per.loc[ok, "v"].to_numpy()] = True
    return flags


# ----------------------------------------------------------------------------- disruption


def simulate_disruption(
    edges: pd.DataFrame,
    *,
    metric: Literal["betweenness", "degree"],
    mode: Literal["sequential", "block"],
    block_size: int = 5,
) -> pd.DataFrame:
    """Remove nodes by centrality and follow the largest connected component (LCC).

    Follows Cavallaro et al. (2020): ``sequential`` recomputes the metric after every removal
    and removes the top node; ``block`` computes it once per block and removes the top
    ``block_size`` nodes (one row per removal all the same). Betweenness and degree are
    unweighted (a ``weight`` column is accepted and ignored). Among nodes with equal scores the
    smallest node label goes first (Cavallaro et al. took the last one in file order), which
    makes the result independent of the row order.

    ``edges``: ``source``, ``target`` (labels of one type). Returns ``removed`` (0..n) and
    ``lcc_share`` (size of the LCC of the remaining graph relative to the LCC at the start).
    """
    if metric not in ("betweenness", "degree"):
        raise ValueError(f"metric must be betweenness or degree, got {metric!r}")
    if mode not in ("sequential", "block"):
        raise ValueError(f"mode must be sequential or block, got {mode!r}")
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    missing = [c for c in ("source", "target") if c not in edges.columns]
    if missing:
        raise ValueError(f"edges need columns source and target; missing {missing}")
    pairs = edges[["source", "target"]]
    if pairs.isna().any().any():
        raise ValueError("edges: source and target may not be empty")
    labels = np.array(
        sorted(pd.unique(pd.concat([pairs["source"], pairs["target"]]))), dtype=object
    )
    if len(labels) == 0:
        raise ValueError("edges: no edges")
    index = pd.Series(np.arange(len(labels)), index=labels)
    u = index.loc[pairs["source"]].to_numpy()
    v = index.loc[pairs["target"]].to_numpy()
    keep = u != v  # a self-loop is no tie; its node stays
    simple = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], axis=1)[keep], axis=0)
    g = ig.Graph(n=len(labels), edges=[tuple(p) for p in simple.tolist()], directed=False)
    g.vs["rank"] = list(range(len(labels)))  # position in label order: the tie-break

    lcc0 = max(g.connected_components().sizes())
    removed = [0]
    shares = [1.0]
    step = 1 if mode == "sequential" else block_size
    while g.vcount() > 0:
        if metric == "betweenness":
            scores = np.asarray(g.betweenness(directed=False), dtype="float64")
        else:
            scores = np.asarray(g.degree(), dtype="float64")
        ranks = np.asarray(g.vs["rank"])
        order = np.lexsort((ranks, -np.round(scores, _SCORE_DECIMALS)))
        for r in ranks[order[:step]].tolist():
            g.delete_vertices(g.vs.find(rank=r).index)
            lcc = max(g.connected_components().sizes()) if g.vcount() else 0
            removed.append(removed[-1] + 1)
            shares.append(lcc / lcc0)
    return pd.DataFrame(
        {"removed": np.asarray(removed, dtype=np.int64), "lcc_share": np.asarray(shares)}
    )


# ------------------------------------------------------------------ rootedness per area (counts)


def cooffending_locality_counts(edges: DataFrame, residence: DataFrame) -> DataFrame:
    """Co-offending ties touching an area, and those local to it, per level, area and year.

    ``edges``: from :func:`build_cooffending_edges` (the tie's year is that of its latest shared
    incident); ``residence``: person_id, year, buurt_code, wijk_code, gemeente_code. For an area
    A at a level, ``network.cooffending_ties`` counts the ties with at least one endpoint living
    in A that year and ``network.local_cooffending_ties`` those with both endpoints in A (a
    measure of lokale worteling: how far co-offending stays within the neighbourhood). Neither
    is additive over the hierarchy (a tie across two buurten of one wijk is local to the wijk
    only), so every level is computed directly. Returns level, area_code, year, indicator, value.

    The register's residence (every inhabitant, every year) is cut to the tied suspects with a
    broadcast semi-join before anything is shuffled; the suspects are a few hundred thousand
    nationally (the same bound as the graph :func:`build_network` collects). Each endpoint is
    then joined once, for all three levels.
    """
    e = edges.select("person_id_a", "person_id_b", F.year("last_date").alias("year"))
    ids = (
        e.select(F.col("person_id_a").alias("person_id"))
        .unionByName(e.select(F.col("person_id_b").alias("person_id")))
        .distinct()
    )
    levels = ("buurt", "wijk", "gemeente")
    res = residence.select("person_id", "year", *[f"{lv}_code" for lv in levels]).join(
        F.broadcast(ids), "person_id", "left_semi"
    )

    def side(end: str) -> DataFrame:
        return res.select(
            F.col("person_id").alias(f"person_id_{end}"),
            "year",
            *[F.col(f"{lv}_code").alias(f"_{end}_{lv}") for lv in levels],
        )

    t = e.join(side("a"), ["person_id_a", "year"], "left").join(
        side("b"), ["person_id_b", "year"], "left"
    )
    per_level = t.select(
        "year",
        F.explode(
            F.array(
                *[
                    F.struct(
                        F.lit(lv).alias("level"),
                        F.col(f"_a_{lv}").alias("a"),
                        F.col(f"_b_{lv}").alias("b"),
                    )
                    for lv in levels
                ]
            )
        ).alias("_x"),
    )
    t = per_level.select(
        F.col("_x.level").alias("level"),
        "year",
        F.explode(F.array_distinct(F.array_compact(F.array("_x.a", "_x.b")))).alias("area_code"),
        (F.col("_x.a") == F.col("_x.b")).alias("_local"),
    )
    agg = t.groupBy("level", "area_code", "year").agg(
        F.count(F.lit(1)).cast("double").alias("ties"),
        F.sum(F.coalesce(F.col("_local"), F.lit(False)).cast("double")).alias("local"),
    )
    return _long_cells(
        agg,
        {"network.cooffending_ties": "ties", "network.local_cooffending_ties": "local"},
    )


def _long_cells(agg: DataFrame, columns: dict[str, str]) -> DataFrame:
    """``level, area_code, year, indicator, value`` rows from a wide per-area aggregate (with
    ``level, area_code, year``): one row per ``indicator -> column`` of ``columns``."""
    return agg.select(
        "level",
        "area_code",
        F.col("year").cast("long").alias("year"),
        F.explode(
            F.array(
                *[
                    F.struct(F.lit(name).alias("indicator"), F.col(column).alias("value"))
                    for name, column in columns.items()
                ]
            )
        ).alias("_cell"),
    ).select("level", "area_code", "year", "_cell.indicator", "_cell.value")


def youth_exposure_counts(
    residence: DataFrame,
    person_links: DataFrame,
    suspect_ids: DataFrame,
    *,
    min_age: int = 12,
    max_age: int = 26,
) -> DataFrame:
    """Ties of young residents (per layer) and how many of them lead to a suspect, per buurt.

    Following CBS's study of youth networks in Den Haag Zuidwest: for residents aged
    ``min_age``..``max_age`` in the year, their person_links ties per layer, and those whose
    other end is a suspect of an ondermijning incident (``suspect_ids``). The share is a pooled
    ratio of counts (ties to suspects / ties), so that disclosure control can protect it like any
    rate; the person-level intermediates are never returned. Additive over buurten. Returns
    buurt_code, year, indicator (``context.youth_ties_<layer>`` and
    ``context.youth_ties_to_suspects_<layer>``), value.
    """
    young = residence.where((F.col("year") - F.col("birth_year")).between(min_age, max_age)).select(
        F.col("person_id").alias("_ego"), "year", "buurt_code"
    )
    links = person_links.where(F.col("layer").isin(list(LINK_LAYERS)))
    # Only ties of a person who is young in some year of the period can count: their keys (a
    # few million nationally, 8 bytes each) are broadcast, so the person_links (tens of millions
    # of rows, both directions) are cut in each task before the shuffle join with residence.
    egos = F.broadcast(young.select("_ego").distinct())
    both = links.select(
        F.col("person_id_a").alias("_ego"), F.col("person_id_b").alias("_alter"), "layer"
    ).unionByName(
        links.select(
            F.col("person_id_b").alias("_ego"), F.col("person_id_a").alias("_alter"), "layer"
        )
    )
    sus = (
        suspect_ids.select(F.col("person_id").alias("_alter"))
        .distinct()
        .withColumn("_is_suspect", F.lit(1.0))
    )
    # the suspects of ondermijning: a few hundred thousand nationally, broadcast so the tens of
    # millions of ties are not shuffled a second time
    both = both.join(egos, "_ego", "left_semi")
    ties = young.join(both, "_ego").join(F.broadcast(sus), "_alter", "left")
    agg = ties.groupBy("buurt_code", "year", "layer").agg(
        F.count(F.lit(1)).cast("double").alias("ties"),
        F.sum(F.coalesce(F.col("_is_suspect"), F.lit(0.0))).alias("to_suspects"),
    )
    return agg.select(
        "buurt_code",
        F.col("year").cast("long").alias("year"),
        F.concat(F.lit("context.youth_ties_"), F.col("layer")).alias("indicator"),
        F.col("ties").alias("value"),
    ).unionByName(
        agg.select(
            "buurt_code",
            F.col("year").cast("long").alias("year"),
            F.concat(F.lit("context.youth_ties_to_suspects_"), F.col("layer")).alias("indicator"),
            F.col("to_suspects").alias("value"),
        )
    )


def disruption_by_community(
    members: DataFrame,
    edges: DataFrame,
    *,
    min_size: int = 5,
    max_communities: int = 20,
    metric: Literal["betweenness", "degree"] = "betweenness",
    mode: Literal["sequential", "block"] = "sequential",
    vertex_order: DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`simulate_disruption` inside each of the largest communities.

    ``vertex_order``: as for :func:`build_network`; the removals' tie-break (smallest label
    first) then follows the pseudonyms' order, not their keys'.

    ``members``: ``person_id``, ``community_id`` (from :func:`build_network`; 1 is the
    largest); ``edges``: ``person_id_a``, ``person_id_b`` (ties of any layer; repeated pairs
    count once). Only ties within one community are kept, for the ``max_communities`` largest
    communities of at least ``min_size`` members. Returns ``community_id``, ``removed``,
    ``lcc_share``: the curve of each community, for the analysts' question of which few
    removals would break a group apart.

    To the driver: the ties inside at most ``max_communities`` communities, each the size of
    one criminal group (tens to a few hundred suspects), so bounded by construction.
    """
    sizes = members.groupBy("community_id").agg(F.count(F.lit(1)).alias("_size"))
    chosen = (
        sizes.where(F.col("_size") >= min_size)
        .orderBy(F.col("_size").desc(), F.col("community_id"))
        .limit(max_communities)
        .select("community_id")
    )
    m = members.select("person_id", "community_id").join(chosen, "community_id", "left_semi")
    ma = m.select(F.col("person_id").alias("person_id_a"), F.col("community_id").alias("_ca"))
    mb = m.select(F.col("person_id").alias("person_id_b"), F.col("community_id").alias("_cb"))
    ties_inside = (
        edges.select("person_id_a", "person_id_b")
        .join(ma, "person_id_a")
        .join(mb, "person_id_b")
        .where(F.col("_ca") == F.col("_cb"))
        .select(F.col("_ca").alias("community_id"), "person_id_a", "person_id_b")
        .distinct()
    )
    if vertex_order is not None:
        ties_inside = _placed(ties_inside, vertex_order)
    inside = ties_inside.toPandas()
    if vertex_order is not None:
        _check_placed(inside)
    curves: list[pd.DataFrame] = []
    for cid in sorted(inside["community_id"].unique().tolist()):
        ties = inside[inside["community_id"] == cid]
        curve = simulate_disruption(
            ties.rename(columns={"person_id_a": "source", "person_id_b": "target"}),
            metric=metric,
            mode=mode,
        )
        curves.append(curve.assign(community_id=int(cid)))
    if not curves:
        return pd.DataFrame(
            {"community_id": pd.Series(dtype="int64"), "removed": pd.Series(dtype="int64"),
             "lcc_share": pd.Series(dtype="float64")}
        )  # fmt: skip
    return pd.concat(curves, ignore_index=True)[["community_id", "removed", "lcc_share"]]


def community_reach_counts(
    members: DataFrame,
    suspects: DataFrame,
    incidents_located: DataFrame,
    residence: DataFrame,
    *,
    min_size: int = 2,
) -> DataFrame:
    """Residents who belong to a community and whether it is active elsewhere, per area.

    For every area A (at each level) and year: ``network.resident_community_members``, the
    residents of A that year who are members of a community of at least ``min_size``
    suspects; and ``network.resident_members_active_elsewhere``, those whose community has
    most of its incidents (over the whole period) outside A: lokale worteling the other way
    round, networks rooted here that operate elsewhere. Area counts only; the person-level
    join is never persisted. Returns level, area_code, year, indicator, value.
    """
    sizes = members.groupBy("community_id").agg(F.count(F.lit(1)).alias("_size"))
    membership = members.select("person_id", "community_id").join(
        sizes.where(F.col("_size") >= min_size), "community_id", "left_semi"
    )
    levels = ("buurt", "wijk", "gemeente")
    codes = [f"{lv}_code" for lv in levels]

    def by_level(df: DataFrame, *keep: str) -> DataFrame:
        """One row per level: ``level``, ``area_code`` (non-null) and the ``keep`` columns."""
        return (
            df.select(
                *keep,
                F.explode(
                    F.array(
                        *[
                            F.struct(F.lit(lv).alias("level"), F.col(c).alias("area_code"))
                            for lv, c in zip(levels, codes, strict=True)
                        ]
                    )
                ).alias("_x"),
            )
            .select(*keep, "_x.level", "_x.area_code")
            .where(F.col("area_code").isNotNull())
        )

    inc = (
        suspects.select("incident_id", "person_id")
        .join(membership, "person_id")
        .select("community_id", "incident_id")
        .distinct()
        .join(incidents_located.select("incident_id", *codes), "incident_id")
    )
    total = inc.groupBy("community_id").agg(F.count(F.lit(1)).alias("_total"))
    here = (
        by_level(inc, "community_id")
        .groupBy("community_id", "level", "area_code")
        .agg(F.count(F.lit(1)).alias("_here"))
    )
    # The register's residence cut to the community members first: a broadcast of at most the
    # suspects (a few hundred thousand nationally), so the inhabitants are never shuffled.
    res = residence.select("person_id", "year", *codes).join(F.broadcast(membership), "person_id")
    r = (
        by_level(res, "person_id", "year", "community_id")
        .join(here, ["community_id", "level", "area_code"], "left")
        .join(total, "community_id", "left")
    )
    elsewhere = F.coalesce(F.col("_here"), F.lit(0)) * 2 < F.coalesce(F.col("_total"), F.lit(0))
    agg = r.groupBy("level", "area_code", "year").agg(
        F.countDistinct("person_id").cast("double").alias("members"),
        F.countDistinct(F.when(elsewhere, F.col("person_id"))).cast("double").alias("away"),
    )
    return _long_cells(
        agg,
        {
            "network.resident_community_members": "members",
            "network.resident_members_active_elsewhere": "away",
        },
    )
