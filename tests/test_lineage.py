"""Stable community ids across runs (``zicht.models.lineage``, ``zicht.jobs.lineage``).

Memberships are built by hand with a known expected lineage; the expected Jaccard values are
worked out from Python sets beside each case, independently of the Spark overlap table. The
matching pieces are pure Python (no marker); the overlap table, the job and the pipeline run
need Spark.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.models import lineage as lin

MEMBERS = "person_id string, community_id long"


def _membership(groups: dict[int, list[str]]) -> list[tuple[str, int]]:
    return [(p, c) for c, persons in groups.items() for p in persons]


def _overlap(cur: dict[int, list[str]], prev: dict[int, list[str]]) -> pd.DataFrame:
    """The overlap table from sets, on the driver (the reference for the Spark table)."""
    rows = []
    for c, a in cur.items():
        for p, b in prev.items():
            n = len(set(a) & set(b))
            if n:
                rows.append((c, p, n, len(a), len(b)))
    return pd.DataFrame(rows, columns=list(lin.OVERLAP_COLUMNS))


def _lineage(
    cur: dict[int, list[str]], prev: dict[int, list[str]], threshold: float = 0.5
) -> lin.Lineage:
    return lin.match_lineage(_overlap(cur, prev), sorted(cur), sorted(prev), threshold=threshold)


def _rows(lineage: lin.Lineage) -> set[tuple[object, object, object, str]]:
    return {
        (
            None if pd.isna(c) else int(c),
            None if pd.isna(p) else int(p),
            None if pd.isna(j) else round(float(j), 6),
            ch,
        )
        for c, p, j, ch in lineage.rows.itertuples(index=False, name=None)
    }


def _persons(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(n)]


# previous run: ids 1, 2 and 7 (an id may have ended before), sizes 30, 20, 10
PREVIOUS = {1: _persons("a", 30), 2: _persons("b", 20), 7: _persons("c", 10)}


def test_ids_stay_when_ten_percent_of_members_change() -> None:
    # a tenth of each group leaves and as many newcomers join; this run numbers them its own way
    cur = {
        1: _persons("a", 27) + _persons("na", 3),  # 27 / (30 + 30 - 27)
        2: _persons("c", 9) + _persons("nc", 1),  # 9 / 11
        3: _persons("b", 18) + _persons("nb", 2),  # 18 / 22
    }
    lineage = _lineage(cur, PREVIOUS)
    assert dict(lineage.ids) == {1: 1, 2: 7, 3: 2}
    assert _rows(lineage) == {
        (1, 1, round(27 / 33, 6), "kept"),
        (2, 2, round(18 / 22, 6), "kept"),
        (7, 7, round(9 / 11, 6), "kept"),
    }


def test_a_group_that_grew_around_its_members_is_new() -> None:
    # c: 9 of its 10 stay, 15 join: 9 / 26 < 0.5, so a new id, naming c as its predecessor
    cur = {
        1: _persons("a", 27) + _persons("na", 3),
        2: _persons("c", 9) + _persons("nc", 16),
        3: _persons("b", 18) + _persons("nb", 2),
    }
    lineage = _lineage(cur, PREVIOUS)
    assert dict(lineage.ids) == {1: 1, 2: 8, 3: 2}
    assert _rows(lineage) == {
        (1, 1, round(27 / 33, 6), "kept"),
        (2, 2, round(18 / 22, 6), "kept"),
        (8, 7, round(9 / 26, 6), "new"),
        (None, 7, None, "ended"),
    }


def test_ids_are_new_when_eighty_percent_change() -> None:
    # each group keeps a fifth of its members; the rest are newcomers
    cur = {
        1: _persons("a", 6) + _persons("na", 24),  # 6 / (30 + 30 - 6)
        2: _persons("b", 4) + _persons("nb", 16),  # 4 / 36
        3: _persons("c", 2) + _persons("nc", 8),  # 2 / 18
    }
    lineage = _lineage(cur, PREVIOUS)
    # above the previous maximum (7), never an ended id (1, 2, 7), in this run's order
    assert dict(lineage.ids) == {1: 8, 2: 9, 3: 10}
    assert _rows(lineage) == {
        (8, None, None, "new"),
        (9, None, None, "new"),
        (10, None, None, "new"),
        (None, 1, None, "ended"),
        (None, 2, None, "ended"),
        (None, 7, None, "ended"),
    }


def test_a_split_keeps_the_id_on_the_larger_part_above_the_threshold() -> None:
    prev = {5: _persons("p", 20)}
    cur = {1: _persons("p", 20)[:12], 2: _persons("p", 20)[12:]}  # 12 / 20 and 8 / 20
    lineage = _lineage(cur, prev)
    assert dict(lineage.ids) == {1: 5, 2: 6}
    assert _rows(lineage) == {(5, 5, 0.6, "kept"), (6, 5, 0.4, "split")}


def test_a_split_below_the_threshold_ends_the_id() -> None:
    prev = {5: _persons("p", 30)}
    third = [_persons("p", 30)[i : i + 10] for i in (0, 10, 20)]
    cur = {1: third[0], 2: third[1], 3: third[2]}  # 10 / 30 each
    lineage = _lineage(cur, prev)
    assert dict(lineage.ids) == {1: 6, 2: 7, 3: 8}
    j = round(1 / 3, 6)
    assert _rows(lineage) == {
        (6, 5, j, "split"),
        (7, 5, j, "split"),
        (8, 5, j, "split"),
        (None, 5, None, "ended"),
    }
    # two thirds against one third: 20 / 30 keeps the id at 0.6, not at 0.7 (the rule decides)
    two_one = {1: third[0] + third[1], 2: third[2]}
    assert dict(_lineage(two_one, prev, 0.6).ids) == {1: 5, 2: 6}
    assert dict(_lineage(two_one, prev, 0.7).ids) == {1: 6, 2: 7}


def test_a_merge_keeps_the_larger_predecessor_and_ends_the_other() -> None:
    prev = {3: _persons("p", 12), 4: _persons("q", 8)}
    cur = {1: _persons("p", 12) + _persons("q", 8)}  # 12 / 20 and 8 / 20
    lineage = _lineage(cur, prev)
    assert dict(lineage.ids) == {1: 3}
    assert _rows(lineage) == {(3, 3, 0.6, "kept"), (3, 4, 0.4, "merged"), (None, 4, None, "ended")}


def test_the_matching_maximises_total_jaccard() -> None:
    # A takes 6 of P's 10 and all 4 of Q; B the other 4 of P. A-P 6 / 14 = .43 is the best
    # single pair (greedy would stop there), but A-Q 4 / 10 + B-P 4 / 10 = .8 is the matching
    p, q = _persons("p", 10), _persons("q", 4)
    prev = {1: p, 2: q}
    cur = {1: p[:6] + q, 2: p[6:]}
    assert dict(_lineage(cur, prev, threshold=0.35).ids) == {1: 2, 2: 1}
    # at 0.5 no pair qualifies: both new, both previous ids ended
    assert dict(_lineage(cur, prev, threshold=0.5).ids) == {1: 3, 2: 4}


def test_threshold_outside_range_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        _lineage({1: ["a"]}, {1: ["a"]}, threshold=0.0)


def test_member_overlap_share() -> None:
    assert lin.member_overlap_share(0, 100, 50) == 0.0
    assert lin.member_overlap_share(25, 100, 50) == 0.5
    assert lin.member_overlap_share(0, 0, 50) is None


# --------------------------------------------------------------------------- Spark


@pytest.mark.spark
def test_overlap_table_matches_the_sets(spark: SparkSession) -> None:
    cur = {
        1: _persons("a", 27) + _persons("na", 3),
        2: _persons("b", 4) + _persons("c", 6) + _persons("nb", 16),
        3: _persons("c", 4),
    }
    got = lin.community_overlap(
        spark.createDataFrame(_membership(cur), MEMBERS),
        spark.createDataFrame(_membership(PREVIOUS), MEMBERS),
    ).toPandas()
    key = list(lin.OVERLAP_COLUMNS)
    expected = _overlap(cur, PREVIOUS).sort_values(key).reset_index(drop=True)
    assert (
        got.sort_values(key).reset_index(drop=True).astype("int64").equals(expected.astype("int64"))
    )


def _ctx(spark: SparkSession, tmp_path: Path, previous: Path) -> object:
    from zicht.jobs import fs as fsmod
    from zicht.jobs.config import load_settings
    from zicht.jobs.context import RunContext

    work = tmp_path / "work"
    work.mkdir()
    return RunContext(
        spark=spark,
        settings=load_settings(),
        fs=fsmod.FileSystem(spark),
        run_id="test",
        output=str(tmp_path / "out"),
        work=str(work),
        store=None,
        previous_output=str(previous),
    )


def _write_previous(spark: SparkSession, folder: Path, groups: dict[int, list[str]]) -> None:
    (folder / "restricted").mkdir(parents=True)
    spark.createDataFrame(_membership(groups), MEMBERS).write.parquet(
        str(folder / "restricted" / "network_members.parquet")
    )


def _keyed(spark: SparkSession, groups: dict[int, list[str]]) -> DataFrame:
    from zicht.features.keys import surrogate

    return spark.createDataFrame(_membership(groups), MEMBERS).select(
        surrogate(F.col("person_id")).alias("person_id"), "community_id"
    )


@pytest.mark.spark
def test_job_relabels_members_and_communities(spark: SparkSession, tmp_path: Path) -> None:
    from zicht.jobs.lineage import link_communities

    _write_previous(spark, tmp_path / "prev", PREVIOUS)
    cur = {1: _persons("a", 27) + _persons("na", 3), 2: _persons("c", 9) + ["nc00"]}
    members = _keyed(spark, cur)
    communities = spark.createDataFrame([(1, 30), (2, 10)], "community_id long, size long")
    ctx = _ctx(spark, tmp_path, tmp_path / "prev")
    members2, communities2, facts, out = link_communities(ctx, members, communities)  # type: ignore[arg-type]
    assert sorted(map(tuple, communities2.collect())) == [(1, 30), (7, 10)]
    by_id = members2.groupBy("community_id").count().collect()
    assert sorted(map(tuple, by_id)) == [(1, 30), (7, 10)]
    assert facts["community_lineage"]["changes"] == {"ended": 1, "kept": 2}
    assert facts["community_lineage"]["members_in_common"] == 36
    lineage = spark.read.parquet(str(tmp_path / "work/restricted/community_lineage.parquet"))
    assert sorted(
        (r.community_id, r.previous_community_id, r.change)
        for r in lineage.collect()
        if r.community_id
    ) == [(1, 1, "kept"), (7, 7, "kept")]
    assert list(out) == ["restricted/community_lineage.parquet"]


@pytest.mark.spark
def test_disjoint_memberships_warn_of_a_new_key(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from zicht.jobs.lineage import link_communities

    _write_previous(spark, tmp_path / "prev", PREVIOUS)
    # the same groups under other pseudonyms: what a new key does
    cur = {c: [f"k{p}" for p in persons] for c, persons in PREVIOUS.items()}
    communities = spark.createDataFrame([(1, 30), (2, 20), (7, 10)], "community_id long, size long")
    ctx = _ctx(spark, tmp_path, tmp_path / "prev")
    with caplog.at_level(logging.WARNING, logger="zicht"):
        _, communities2, facts, _ = link_communities(ctx, _keyed(spark, cur), communities)  # type: ignore[arg-type]
    assert "pseudonyms seem to have changed" in caplog.text
    assert "pseudonyms seem to have changed" in facts["community_lineage"]["warning"]
    assert facts["community_lineage"]["member_overlap_share"] == 0.0
    # nothing recorded as ended, and no id of the previous run reused
    lineage = spark.read.parquet(str(tmp_path / "work/restricted/community_lineage.parquet"))
    assert lineage.count() == 0
    assert sorted(r.community_id for r in communities2.collect()) == [8, 9, 10]


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_second_run_with_previous_keeps_every_id(
    spark: SparkSession, tiny_run: dict[str, Path], tmp_path: Path
) -> None:
    from zicht.jobs import run as run_job

    out = tmp_path / "second"
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = run_job.main(
            [
                "--input",
                str(tiny_run["input"]),
                "--output",
                str(out),
                "--store",
                str(tiny_run["root"] / "zicht_store"),
                "--previous",
                str(tiny_run["output"]),
            ]
        )
    finally:
        mp.undo()
    assert code == 0
    first = spark.read.parquet(str(tiny_run["output"] / "restricted/network_members.parquet"))
    second = spark.read.parquet(str(out / "restricted/network_members.parquet"))
    pairs = first.select("person_id", F.col("community_id").alias("a")).join(
        second.select("person_id", F.col("community_id").alias("b")), "person_id", "full"
    )
    assert pairs.count() == first.count() > 0
    assert pairs.where("a IS NULL OR b IS NULL OR a != b").count() == 0
    lineage = spark.read.parquet(str(out / "restricted/community_lineage.parquet"))
    n = first.select("community_id").distinct().count()
    assert lineage.count() == n
    assert (
        lineage.where(
            "change = 'kept' AND community_id = previous_community_id AND jaccard = 1.0"
        ).count()
        == n
    )
    manifest = json.loads((out / "manifest.json").read_text())
    facts = manifest["stages"]["network"]["facts"]["community_lineage"]
    assert facts["changes"] == {"kept": n}
    assert "restricted/community_lineage.parquet" in manifest["outputs"]


@pytest.mark.e2e
def test_network_stage_job_warns_when_every_pseudonym_differs(
    spark: SparkSession, tiny_run: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from zicht.jobs import network as network_job

    output = tmp_path / "output"
    shutil.copytree(tiny_run["output"], output)
    members = spark.read.parquet(str(output / "restricted/network_members.parquet"))
    max_id = members.agg(F.max("community_id")).first()[0]
    n = members.select("community_id").distinct().count()
    # the previous delivery's members under another key: no pseudonym in common
    prev = tmp_path / "previous"
    members.select(
        F.concat(F.lit("k"), "person_id").alias("person_id"), "community_id"
    ).write.parquet(str(prev / "restricted/network_members.parquet"))
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = network_job.main(["build", "--from", str(output), "--previous", str(prev)])
    finally:
        mp.undo()
    assert code == 0
    manifest = json.loads((output / "manifest.json").read_text())
    facts = manifest["stages"]["network"]["facts"]["community_lineage"]
    assert "pseudonyms seem to have changed" in facts["warning"]
    assert facts["members_in_common"] == 0
    assert "pseudonyms seem to have changed" in (output / "zicht.log").read_text()
    assert spark.read.parquet(str(output / "restricted/community_lineage.parquet")).count() == 0
    ids = spark.read.parquet(str(output / "restricted/communities.parquet"))
    assert sorted(r[0] for r in ids.select("community_id").collect()) == list(
        range(max_id + 1, max_id + n + 1)
    )
