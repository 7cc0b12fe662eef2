"""Tests of zicht.models.network and the ``zicht network disrupt`` job.

References are independent of the code under test: hand computations in inline frames, networkx
(degree, betweenness, the Potts model's optimality conditions by hand, a plain networkx
disruption loop) on seeded random graphs, and the published disruption tables of Cavallaro et al. (2020) for the Montagna
meetings network.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from zicht.features.settings import NetworkSettings
from zicht.jobs.network import main as network_main
from zicht.models.network import (
    build_cooffending_edges,
    build_network,
    communities_schema,
    disruption_by_community,
    score_suspect_graph,
    simulate_disruption,
    vertex_order,
)

SUSPECTS = T.StructType(
    [T.StructField("incident_id", T.StringType()), T.StructField("person_id", T.StringType())]
)
INCIDENTS = T.StructType(
    [
        T.StructField("incident_id", T.StringType()),
        T.StructField("incident_date", T.DateType()),
        T.StructField("year", T.IntegerType()),
        T.StructField("crime_code", T.StringType()),
        T.StructField("crime_class", T.StringType()),
        T.StructField("buurt_code", T.StringType()),
        T.StructField("wijk_code", T.StringType()),
        T.StructField("gemeente_code", T.StringType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("y", T.DoubleType()),
        T.StructField("phenomena", T.ArrayType(T.StringType())),
    ]
)
RESIDENCE = T.StructType(
    [
        T.StructField("person_id", T.StringType()),
        T.StructField("year", T.IntegerType()),
        T.StructField("buurt_code", T.StringType()),
        T.StructField("wijk_code", T.StringType()),
        T.StructField("gemeente_code", T.StringType()),
        T.StructField("birth_year", T.IntegerType()),
    ]
)
MONTAGNA = "criminal_networks/montagna"


def _frame(spark: SparkSession, rows: list[tuple], schema: T.StructType) -> DataFrame:
    """Inline rows as a Spark frame through pandas and Arrow: a local relation, so the tests'
    actions need no Python worker (a plain list would become a Python RDD)."""
    return spark.createDataFrame(pd.DataFrame(rows, columns=schema.fieldNames()), schema=schema)


def _incidents(spark: SparkSession, rows: list[tuple[str, dt.date, str, list[str]]]) -> DataFrame:
    """incidents_located rows from (incident_id, date, buurt_code, phenomena)."""
    return _frame(
        spark,
        [
            (i, d, d.year, "F42", "3.1.1", bu, "WK" + bu[2:8], "GM" + bu[2:6], 1.0, 1.0, ph)
            for i, d, bu, ph in rows
        ],
        INCIDENTS,
    )


def _residence(spark: SparkSession, rows: list[tuple[str, int, str]]) -> DataFrame:
    return _frame(
        spark, [(p, y, bu, "WK" + bu[2:8], "GM" + bu[2:6], 1990) for p, y, bu in rows], RESIDENCE
    )


# ------------------------------------------------------------------------------ co-offending


@pytest.mark.spark
def test_cooffending_edges_hand_built(spark: SparkSession) -> None:
    old, mid, last = dt.date(2022, 12, 31), dt.date(2024, 6, 30), dt.date(2024, 12, 31)
    incidents = _incidents(
        spark,
        [
            ("i1", old, "BU03630001", []),
            ("i2", last, "BU03630001", []),
            ("i3", mid, "BU03630001", []),
            ("i9", last, "BU03630001", []),
        ],
    )
    suspects = _frame(
        spark,
        [
            ("i1", "p1"), ("i1", "p2"), ("i1", "p3"),
            ("i2", "p2"), ("i2", "p1"), ("i2", "p2"),  # p2 registered twice: one suspect
            ("i3", "p3"),  # alone: no tie
            ("i9", "p4"),
            ("gone", "p1"), ("gone", "p5"),  # incident not among the incidents: no tie
        ],
        SUSPECTS,
    )  # fmt: skip
    # 2022-12-31 is 731 days before 2024-12-31 (the latest incident), the half-life two years
    w_old = 0.5 ** (731 / 365.25 / 2)
    expected = _frame(
        spark,
        [
            ("p1", "p2", 2, last, 1.0 + w_old, "co_offending"),
            ("p1", "p3", 1, old, w_old, "co_offending"),
            ("p2", "p3", 1, old, w_old, "co_offending"),
        ],
        T.StructType(
            [
                T.StructField("person_id_a", T.StringType()),
                T.StructField("person_id_b", T.StringType()),
                T.StructField("n_incidents", T.LongType()),
                T.StructField("last_date", T.DateType()),
                T.StructField("weight", T.DoubleType()),
                T.StructField("layer", T.StringType()),
            ]
        ),
    )
    actual = build_cooffending_edges(suspects, incidents)
    assert w_old == pytest.approx(0.49976, abs=1e-5)
    assertDataFrameEqual(actual, expected, rtol=1e-9)


# ---------------------------------------------------------------------- planted communities


@pytest.mark.spark
def test_planted_communities_broker_and_rootedness(spark: SparkSession) -> None:
    """Two cliques (a1..a5, b1..b5), x tied to a1..a3 and b1..b2, z alone.

    Hand computation (constant Potts model, resolution 0.1): the two groups stay apart, since the
    2 ties between them are fewer than 0.1 * 6 * 5 = 3, and x joins the a-group (3 ties against
    2). x carries both ties between the groups, so it is the broker; b1 and b2 hold one tie
    each. Participation of x is
    1 - (3/5)^2 - (2/5)^2 = 0.48; of b1 and b2 1 - (4/5)^2 - (1/5)^2 = 0.32; the others 0.
    Inside community 1, x reaches a4 and a5 through a1, a2 or a3, so a1..a3 each carry 2/3 of a
    path; normalised by (6-1)(6-2)/2 = 10 that is 1/15.
    """
    day = dt.date(2024, 6, 1)
    bu1, bu2, bu3 = "BU03630001", "BU03630002", "BU03631001"
    incidents = _incidents(
        spark,
        [
            ("i1", day, bu1, ["drugs"]),
            ("i2", day, bu3, ["geweld"]),
            ("i3", day, bu1, ["drugs"]),
            ("i4", day, bu2, ["drugs", "witwassen"]),
            ("i5", day, bu2, []),
            ("i6", day, bu3, ["geweld"]),
            ("i7", day, bu3, []),
            ("i8", day, bu1, ["drugs"]),
            ("i9", day, bu1, []),
        ],
    )
    rows = [("i1", f"a{k}") for k in range(1, 6)] + [("i2", f"b{k}") for k in range(1, 6)]
    rows += [("i3", "x"), ("i3", "a1"), ("i4", "x"), ("i4", "a2"), ("i5", "x"), ("i5", "a3")]
    rows += [("i6", "x"), ("i6", "b1"), ("i7", "x"), ("i7", "b2"), ("i8", "z"), ("i9", "a1")]
    suspects = _frame(spark, rows, SUSPECTS)
    residence = _residence(
        spark,
        [
            ("a1", 2023, bu3),  # moved: the latest year counts
            ("a1", 2024, bu1),
            ("a2", 2024, bu1),
            ("a3", 2024, bu2),
            ("a4", 2024, bu1),
            ("x", 2024, bu3),
            ("b1", 2024, bu3),
            ("b2", 2024, bu3),
            ("b3", 2024, bu2),
            ("nobody", 2024, bu1),  # not a suspect: never a member
        ],  # a5, b4, b5 and z have no residence: non-resident
    )
    phenomena = ["drugs", "geweld", "witwassen"]
    members, communities = build_network(
        suspects,
        incidents,
        residence,
        phenomena=phenomena,
        settings=NetworkSettings(resolution=0.1),
    )

    b = 1 / 15
    expected_members = _frame(
        spark,
        [
            ("a1", 1, 5, 5.0, b, 0.0, False),
            ("a2", 1, 5, 5.0, b, 0.0, False),
            ("a3", 1, 5, 5.0, b, 0.0, False),
            ("a4", 1, 4, 4.0, 0.0, 0.0, False),
            ("a5", 1, 4, 4.0, 0.0, 0.0, False),
            ("b1", 2, 5, 5.0, 0.0, 0.32, False),
            ("b2", 2, 5, 5.0, 0.0, 0.32, False),
            ("b3", 2, 4, 4.0, 0.0, 0.0, False),
            ("b4", 2, 4, 4.0, 0.0, 0.0, False),
            ("b5", 2, 4, 4.0, 0.0, 0.0, False),
            ("x", 1, 5, 5.0, 0.0, 0.48, True),
            ("z", 3, 0, 0.0, 0.0, 0.0, False),
        ],
        members.schema,
    )
    assertDataFrameEqual(members, expected_members, rtol=1e-9)

    expected_communities = _frame(
        spark,
        [
            # C1 = a1..a5 + x: incidents i1 i3 i4 i5 i6 i7 i9; lives: 3 in bu1, 4 in WK036300
            # (every test incident lies at (1, 1): a spread of 0 km)
            (1, 6, 7, 3 / 7, 1 / 7, 1 / 7, bu1, "WK036300", 3 / 6, 4 / 6, 3, 0.0, 1 / 6),
            # C2 = b1..b5: incidents i2 i6 i7; b1, b2 in bu3 (WK036310), b3 in bu2
            (2, 5, 3, 0.0, 2 / 3, 0.0, bu3, "WK036310", 2 / 5, 2 / 5, 1, 0.0, 2 / 5),
            # C3 = z: one incident, not resident anywhere
            (3, 1, 1, 1.0, 0.0, 0.0, None, None, 0.0, 0.0, 1, 0.0, 1.0),
        ],
        communities_schema(phenomena),
    )
    assertDataFrameEqual(communities, expected_communities, rtol=1e-9)
    declared = communities_schema(phenomena)
    assert [(f.name, f.dataType) for f in communities.schema.fields] == [
        (f.name, f.dataType) for f in declared.fields
    ]


# --------------------------------------------------------------- networkx on random graphs


def _random_cooffending(seed: int, n: int, m: int, n_isolated: int) -> tuple[nx.Graph, list]:
    """A seeded random graph; each edge becomes one incident with two suspects."""
    graph = nx.gnm_random_graph(n, m, seed=seed)
    graph.add_nodes_from(range(n, n + n_isolated))  # suspects of lone incidents
    rng = np.random.default_rng(seed)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 1500, m)]
    return graph, dates


@pytest.mark.spark
def test_members_match_networkx_and_partitioning(spark: SparkSession) -> None:
    seed = 20261128
    print(f"seed={seed}")
    graph, dates = _random_cooffending(seed, n=70, m=140, n_isolated=5)
    pid = {v: f"p{v:03d}" for v in graph.nodes}
    inc_rows, sus_rows = [], []
    for k, ((u, v), d) in enumerate(zip(graph.edges, dates, strict=True)):
        inc_rows.append((f"e{k}", d, "BU03630001", ["drugs"]))
        sus_rows += [(f"e{k}", pid[u]), (f"e{k}", pid[v])]
    lone = [v for v in graph.nodes if graph.degree(v) == 0]  # the 5 added and any left alone
    for v in lone:
        inc_rows.append((f"s{v}", dates[0], "BU03630002", []))
        sus_rows.append((f"s{v}", pid[v]))
    incidents = _incidents(spark, inc_rows)
    suspects = _frame(spark, sus_rows, SUSPECTS)
    residence = _residence(spark, [(pid[v], 2023, "BU03630001") for v in range(0, 75, 2)])
    settings = NetworkSettings(seed=seed)

    members, _ = build_network(
        suspects, incidents, residence, phenomena=["drugs"], settings=settings
    )
    got = members.toPandas().set_index("person_id")
    assert sorted(got.index) == sorted(pid.values())

    # degree and weighted degree (recency weights recomputed from the dates by hand)
    reference_date = max(dates)
    for (u, v), d in zip(graph.edges, dates, strict=True):
        graph.edges[u, v]["w"] = 0.5 ** ((reference_date - d).days / 365.25 / 2)
    for v in graph.nodes:
        assert got.loc[pid[v], "degree"] == graph.degree(v)
        assert got.loc[pid[v], "weighted_degree"] == pytest.approx(graph.degree(v, weight="w"))

    # betweenness: networkx on each community's induced subgraph
    labelled = nx.relabel_nodes(graph, pid)
    for _, group in got.groupby("community_id"):
        ref = nx.betweenness_centrality(labelled.subgraph(group.index))
        for p in group.index:
            assert got.loc[p, "betweenness"] == pytest.approx(ref[p], abs=1e-12)

    # communities: the constant Potts model's optimality conditions, checked by hand on the
    # recency-weighted graph (gamma = resolution; w(v, C) = tie weight from v into C)
    gamma = settings.resolution
    comm = got["community_id"].to_dict()
    size = got["community_id"].value_counts().to_dict()
    tie: dict[tuple[str, int], float] = {}
    between: dict[tuple[int, int], float] = {}
    for u, v, w in labelled.edges(data="w"):
        tie[(u, comm[v])] = tie.get((u, comm[v]), 0.0) + w
        tie[(v, comm[u])] = tie.get((v, comm[u]), 0.0) + w
        if comm[u] != comm[v]:
            key = (min(comm[u], comm[v]), max(comm[u], comm[v]))
            between[key] = between.get(key, 0.0) + w
    # gamma-separated (Traag et al. 2019): merging two communities would not raise the quality
    for (c, d), w in between.items():
        assert w <= gamma * size[c] * size[d] + 1e-9
    # every suspect sits where it gains most: neither alone nor in a neighbouring community
    for v in labelled.nodes:
        own = tie.get((v, comm[v]), 0.0) - gamma * (size[comm[v]] - 1)
        assert own >= -1e-9
        for w in labelled.neighbors(v):
            d = comm[w]
            if d != comm[v]:
                assert tie[(v, d)] - gamma * size[d] <= own + 1e-9

    # and no worse than networkx's Louvain partition on the Potts quality
    def potts(parts: list[set[str]]) -> float:
        inner = sum(labelled.subgraph(p).size(weight="w") for p in parts)
        return inner - gamma * sum(len(p) * (len(p) - 1) / 2 for p in parts)

    parts = [set(g.index) for _, g in got.groupby("community_id")]
    louvain = nx.community.louvain_communities(labelled, weight="w", seed=seed)
    print(f"Potts quality ours={potts(parts):.4f} networkx louvain={potts(louvain):.4f}")
    assert potts(parts) >= potts(louvain) - 1e-9
    assert len(parts) > nx.number_connected_components(labelled)  # it did split components
    for v in lone:
        assert (got["community_id"] == got.loc[pid[v], "community_id"]).sum() == 1

    # participation coefficient by hand from the neighbours' communities
    for v in list(labelled.nodes)[:20]:
        k = labelled.degree(v)
        counts = pd.Series([comm[w] for w in labelled.neighbors(v)]).value_counts()
        p_ref = 0.0 if k == 0 else 1 - float(((counts / k) ** 2).sum())
        assert got.loc[v, "participation"] == pytest.approx(p_ref, abs=1e-9)

    # the same result whatever the partitioning and row order of the inputs
    members2, _ = build_network(
        suspects.repartition(7).orderBy("person_id", ascending=False),
        incidents.repartition(3),
        residence.repartition(5),
        phenomena=["drugs"],
        settings=settings,
    )
    assertDataFrameEqual(members2, members, rtol=0.0, atol=0.0)


def test_keyed_suspects_get_the_partition_of_their_pseudonyms(spark: SparkSession) -> None:
    """On the store's 64-bit keys, with the vertices placed in the order of the pseudonyms'
    text, the network is the one built on the pseudonyms themselves: the same communities
    (ids too), brokers and scores per person (issue 16: ARI 1 against the text ids)."""
    from pyspark.sql import functions as F

    seed = 20261202
    graph, dates = _random_cooffending(seed, n=120, m=260, n_isolated=4)
    pid = {v: f"{(v * 7919) % 1000:03d}q" for v in graph.nodes}  # text order != key order
    inc_rows, sus_rows = [], []
    for k, ((u, v), d) in enumerate(zip(graph.edges, dates, strict=True)):
        inc_rows.append((f"e{k}", d, "BU03630001", ["drugs"]))
        sus_rows += [(f"e{k}", pid[u]), (f"e{k}", pid[v])]
    for v in (v for v in graph.nodes if graph.degree(v) == 0):
        inc_rows.append((f"s{v}", dates[0], "BU03630002", []))
        sus_rows.append((f"s{v}", pid[v]))
    incidents = _incidents(spark, inc_rows)
    suspects = _frame(spark, sus_rows, SUSPECTS)
    residence = _residence(spark, [(pid[v], 2023, "BU03630001") for v in range(0, 124, 3)])
    settings = NetworkSettings(seed=seed)
    text, _ = build_network(suspects, incidents, residence, phenomena=["drugs"], settings=settings)

    def keyed(df: DataFrame) -> DataFrame:
        return df.withColumn("person_id", F.xxhash64("person_id"))

    dictionary = suspects.select(
        F.xxhash64("person_id").alias("key"), F.col("person_id").alias("pseudonym")
    ).distinct()
    keyed_members, _ = build_network(
        keyed(suspects),
        incidents,
        keyed(residence),
        phenomena=["drugs"],
        settings=settings,
        vertex_order=vertex_order(dictionary),
    )
    back = (
        keyed_members.withColumnRenamed("person_id", "key")
        .join(dictionary, "key")
        .withColumnRenamed("pseudonym", "person_id")
        .select(*text.columns)
    )
    assert text.select("community_id").distinct().count() > 5  # a partition worth comparing
    assertDataFrameEqual(back, text, rtol=0.0, atol=0.0)
    # the disruption curves too: removals tied on betweenness go in the pseudonyms' order
    curves = disruption_by_community(text, build_cooffending_edges(suspects, incidents), min_size=3)
    keyed_curves = disruption_by_community(
        keyed_members,
        build_cooffending_edges(keyed(suspects), incidents),
        min_size=3,
        vertex_order=vertex_order(dictionary),
    )
    assert len(curves) > 20
    pd.testing.assert_frame_equal(keyed_curves, curves)


def test_sampled_betweenness_close_to_exact() -> None:
    seed = 7
    print(f"seed={seed}")
    graph = nx.connected_watts_strogatz_graph(200, 6, 0.05, seed=seed)
    edges = pd.DataFrame(
        [(f"p{u:03d}", f"p{v:03d}", 1.0) for u, v in graph.edges],
        columns=["person_id_a", "person_id_b", "weight"],
    )
    ids = [f"p{v:03d}" for v in graph.nodes]
    exact = score_suspect_graph(ids, edges, settings=NetworkSettings(seed=seed))
    biggest = int(exact["community_id"].value_counts().max())
    limit = max(biggest // 2, 3)
    sampled = score_suspect_graph(
        ids, edges, settings=NetworkSettings(seed=seed, exact_betweenness_max_nodes=limit)
    )
    assert (sampled["community_id"] == exact["community_id"]).all()
    big = exact["community_id"].map(exact["community_id"].value_counts()) > limit
    assert big.any()
    err = (sampled.loc[big, "betweenness"] - exact.loc[big, "betweenness"]).abs()
    corr = np.corrcoef(sampled.loc[big, "betweenness"], exact.loc[big, "betweenness"])[0, 1]
    print(f"sampled {limit} of {biggest}: mean abs error {err.mean():.4f}, correlation {corr:.3f}")
    assert corr > 0.9
    assert err.mean() < 0.25 * exact.loc[big, "betweenness"].mean()
    # shuffled, swapped input rows give the same frame
    shuffled = edges.sample(frac=1.0, random_state=1).rename(
        columns={"person_id_a": "person_id_b", "person_id_b": "person_id_a"}
    )
    again = score_suspect_graph(ids[::-1], shuffled, settings=NetworkSettings(seed=seed))
    pd.testing.assert_frame_equal(again, exact)


# ------------------------------------------------------------------------------- disruption

# two triangles 1-2-3 and 5-6-7 joined through 4 (3-4-5)
TWO_TRIANGLES = pd.DataFrame(
    {
        "source": ["1", "2", "1", "3", "4", "5", "6", "5"],
        "target": ["2", "3", "3", "4", "5", "6", "7", "7"],
    }
)


@pytest.mark.parametrize(
    ("metric", "mode", "block_size", "lcc_nodes"),
    [
        # betweenness 4:9, 3:8, 5:8 pairs: 4 goes first and splits 7 into 3+3; then all zero,
        # the smallest label goes: 1, 2, 3, then 5 (6-7 left), 6, 7
        ("betweenness", "sequential", 5, [7, 3, 3, 3, 3, 2, 1, 0]),
        # block of 2: 4 and 3 (tie 3/5 to the smaller label), then 1 and 2, then 5 and 6
        ("betweenness", "block", 2, [7, 3, 3, 3, 3, 2, 1, 0]),
        # degree 3 for 3 and 5: 3 goes (1-2 | 4-5-6-7), then 5 (degree 3), then 1, 6, 2, 4, 7
        ("degree", "sequential", 5, [7, 4, 2, 2, 1, 1, 1, 0]),
        # one block of 7 by the initial degree: 3, 5, then 1, 2, 4, 6, 7
        ("degree", "block", 7, [7, 4, 2, 2, 2, 2, 1, 0]),
    ],
)
def test_disruption_hand_computed(
    metric: str, mode: str, block_size: int, lcc_nodes: list[int]
) -> None:
    curve = simulate_disruption(
        TWO_TRIANGLES,
        metric=metric,  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
        block_size=block_size,
    )
    expected = pd.DataFrame(
        {"removed": np.arange(8, dtype=np.int64), "lcc_share": np.array(lcc_nodes) / 7}
    )
    pd.testing.assert_frame_equal(curve, expected)


def _networkx_disruption(graph: nx.Graph, metric: str, mode: str, block_size: int) -> list[float]:
    """A plain networkx loop: the reference for simulate_disruption."""
    g = graph.copy()
    lcc0 = max(len(c) for c in nx.connected_components(g))
    shares = [1.0]
    step = 1 if mode == "sequential" else block_size
    while g.number_of_nodes():
        if metric == "betweenness":
            score = nx.betweenness_centrality(g, normalized=False)
        else:
            score = dict(g.degree())
        ranked = sorted(g.nodes, key=lambda v: (-round(score[v], 9), v))
        for v in ranked[:step]:
            g.remove_node(v)
            lcc = max((len(c) for c in nx.connected_components(g)), default=0)
            shares.append(lcc / lcc0)
    return shares


@pytest.mark.parametrize("metric", ["betweenness", "degree"])
@pytest.mark.parametrize("mode", ["sequential", "block"])
def test_disruption_matches_networkx(metric: str, mode: str) -> None:
    seed = 11
    print(f"seed={seed}")
    graph = nx.gnm_random_graph(40, 70, seed=seed)
    graph = nx.relabel_nodes(graph, {v: f"n{v:02d}" for v in graph.nodes})
    graph.remove_nodes_from([v for v in list(graph.nodes) if graph.degree(v) == 0])
    edges = pd.DataFrame(list(graph.edges), columns=["source", "target"])
    curve = simulate_disruption(edges, metric=metric, mode=mode, block_size=3)  # type: ignore[arg-type]
    expected = _networkx_disruption(graph, metric, mode, block_size=3)
    assert curve["removed"].tolist() == list(range(graph.number_of_nodes() + 1))
    np.testing.assert_allclose(curve["lcc_share"], expected, atol=1e-12)


def _montagna_meetings(real_data: Path) -> pd.DataFrame:
    return pd.read_csv(
        real_data / MONTAGNA / "Montagna_meetings_edgelist.tsv",
        sep="\t",
        header=None,
        names=["source", "target", "weight"],
        dtype={"source": "int64", "target": "int64", "weight": "float64"},
    )


@pytest.mark.parametrize(("mode", "table"), [("sequential", "sequential"), ("block", "block")])
def test_disruption_montagna_matches_published(real_data: Path, mode: str, table: str) -> None:
    """Cavallaro et al. (2020), meetings network, unweighted betweenness.

    Their tables stop when five nodes are left and break ties by file order (the last node
    with the top score); ours by the smallest label, so small differences are expected.
    """
    published = pd.read_csv(
        real_data
        / MONTAGNA
        / "disruption_results_published"
        / f"{table}_meeting_Unweighted_5nrem.csv"
    )
    curve = simulate_disruption(
        _montagna_meetings(real_data),
        metric="betweenness",
        mode=mode,  # type: ignore[arg-type]
    )
    ours = curve.set_index("removed")["lcc_share"].reindex(published["No"]).to_numpy()
    theirs = published["Betweenness"].to_numpy()
    diff = np.abs(ours - theirs)
    print(f"Montagna meetings, betweenness {mode}: {len(theirs)} points, mean abs difference "
          f"{diff.mean():.4f}, max {diff.max():.4f}")  # fmt: skip
    head = 10 if mode == "sequential" else 4
    np.testing.assert_allclose(ours[:head], theirs[:head], atol=1e-12)
    assert diff.mean() < 0.02
    assert diff.max() < 0.05
    # the criterion: mean absolute difference over the first 30 removals
    assert diff[:30].mean() <= 0.03


def test_caviar_central_actor_on_top(real_data: Path) -> None:
    """Morselli's Caviar network, the 11 wiretap phases together (undirected, binary): actor 1
    (Daniel Serero, the known organiser) has the highest degree and betweenness."""
    ties: set[tuple[str, str]] = set()
    actors: set[str] = set()
    for path in sorted((real_data / "criminal_networks/caviar_phases").glob("phase*.csv")):
        m = pd.read_csv(path, index_col=0)
        m.index = m.index.astype(str)
        actors |= set(m.index) | {str(c) for c in m.columns}
        rows, cols = np.nonzero(m.to_numpy() > 0)
        for i, j in zip(rows, cols, strict=True):
            a, b = str(m.index[i]), str(m.columns[j])
            if a != b:
                ties.add((min(a, b), max(a, b)))
    edges = pd.DataFrame(sorted(ties), columns=["person_id_a", "person_id_b"]).assign(weight=1.0)
    ids = sorted(actors)
    assert len(ids) >= 100  # SOURCES.md counts 110 actors over the phases
    members = score_suspect_graph(ids, edges, settings=NetworkSettings())
    # independent reference: networkx on the same ties
    g = nx.Graph(list(ties))
    assert max(g.degree, key=lambda kv: kv[1])[0] == "1"
    top = members.sort_values(["degree", "person_id"], ascending=[False, True]).iloc[0]
    assert top.person_id == "1"
    # betweenness within its community: actor 1 tops its community
    own = members[members.community_id == top.community_id]
    assert own.sort_values("betweenness", ascending=False).iloc[0].person_id == "1"


# --------------------------------------------------------------------------------------- CLI


@pytest.mark.e2e
def test_cli_disrupt(tmp_path: Path) -> None:
    edges = tmp_path / "edges.csv"
    TWO_TRIANGLES.assign(weight=1.0).to_csv(edges, index=False)
    out = tmp_path / "out" / "curve.csv"
    argv = ["disrupt", "--edges", str(edges), "--metric", "degree", "--mode", "sequential"]
    assert network_main([*argv, "--out", str(out)]) == 0
    curve = pd.read_csv(out, dtype={"removed": "int64", "lcc_share": "float64"})
    expected = pd.DataFrame(
        {
            "removed": np.arange(8, dtype=np.int64),
            "lcc_share": np.array([7, 4, 2, 2, 1, 1, 1, 0]) / 7,
        }
    )
    pd.testing.assert_frame_equal(curve, expected)


@pytest.mark.e2e
def test_cli_disrupt_rejects_file_without_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edges = tmp_path / "edges.csv"
    edges.write_text("1,2\n2,3\n")
    out = tmp_path / "curve.csv"
    argv = ["disrupt", "--edges", str(edges), "--metric", "betweenness", "--mode", "block"]
    assert network_main([*argv, "--out", str(out)]) == 2
    assert "source,target[,weight]" in caplog.text and "missing source, target" in caplog.text
    assert not out.exists()
    with pytest.raises(SystemExit):
        network_main(["disrupt", "--edges", str(edges), "--metric", "katz", "--mode", "block",
                      "--out", str(out)])  # fmt: skip


def test_disruption_by_community_keeps_ties_inside_the_largest(spark: SparkSession) -> None:
    """Curves only for communities of at least min_size, on the ties inside each: a star
    falls apart with its centre, a path of five halves with its middle node."""
    from zicht.models.network import disruption_by_community

    star = [("s0", f"s{i}") for i in range(1, 5)]
    path = [("p1", "p2"), ("p2", "p3"), ("p3", "p4"), ("p4", "p5")]
    across = [("s1", "p1"), ("s0", "q1")]  # ties between communities are ignored
    small = [("q1", "q2")]
    members = spark.createDataFrame(
        pd.DataFrame(
            {
                "person_id": [f"s{i}" for i in range(5)] + [f"p{i}" for i in range(1, 6)]
                + ["q1", "q2"],
                "community_id": [1] * 5 + [2] * 5 + [3] * 2,
            }
        )
    )  # fmt: skip
    edges = spark.createDataFrame(
        pd.DataFrame(star + path + across + small, columns=["person_id_a", "person_id_b"])
    )
    got = disruption_by_community(members, edges, min_size=5)
    assert sorted(got.community_id.unique()) == [1, 2]
    c1 = got[got.community_id == 1].set_index("removed").lcc_share
    c2 = got[got.community_id == 2].set_index("removed").lcc_share
    assert c1[0] == 1.0 and c1[1] == pytest.approx(1 / 5)
    assert c2[0] == 1.0 and c2[1] == pytest.approx(2 / 5)
