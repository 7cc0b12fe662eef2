"""Done-when checks on held-out synthetic data: does the whole pipeline find what was planted?

The run is the session's tiny run (``conftest.tiny_run``: seed 7, which tuned neither the
generator nor the models); the truth is what the generator wrote to ``input/_truth/``. Every
expectation here comes from the truth files, never from zicht's own intermediate tables:

- aard en omvang: the buurt where a drug network lives tops ``drugs.resident_suspects_per_1000``
  although its incidents happen elsewhere, and the nightlife hot spot, full of unrelated drug
  incidents, tops ``drugs.incidents_per_1000``;
- lokale worteling: each planted group is one community (Jaccard >= 0.7) with the right home
  buurt and a high ``rootedness_wijk``, and the brokers are flagged;
- verschijningsvormen: the buurten with a planted company cluster and with planted overcrowded
  dwellings are among the most anomalous few, the nightlife district is the top drug hot spot,
  and the run registered its typology model in MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def _truth(run: dict[str, Path], name: str) -> pd.DataFrame:
    return pd.read_parquet(run["input"] / "_truth" / f"{name}.parquet")


def _restricted(run: dict[str, Path], name: str) -> pd.DataFrame:
    return pd.read_parquet(run["output"] / "restricted" / f"{name}.parquet")


def _top(ind: pd.DataFrame, key: str, year: int) -> str:
    rows = ind[(ind["level"] == "buurt") & (ind["indicator"] == key) & (ind["year"] == year)]
    return str(rows.sort_values(["value", "area_code"], ascending=[False, True]).iloc[0].area_code)


def test_network_home_and_nightlife_top_their_indicators(tiny_run) -> None:
    groups = _truth(tiny_run, "criminal_groups")
    drug_home = set(groups.home_buurt_code[groups.phenomenon == "drugs"])
    hot = set(_truth(tiny_run, "hotspot_buurten").buurt_code)
    assert drug_home and hot and not drug_home & hot, "premise: they live away from the scene"
    ind = _restricted(tiny_run, "indicators")
    for year in sorted(ind.year.unique()):
        assert _top(ind, "drugs.resident_suspects_per_1000", int(year)) in drug_home, year
        assert _top(ind, "drugs.incidents_per_1000", int(year)) in hot, year


def _core_members(groups: pd.DataFrame) -> dict[int, set[str]]:
    # a broker's rows in the other group carry only the few incidents it joined there
    core = groups[groups.n_group_incidents > 3]
    return {int(g): set(rows.person_id) for g, rows in core.groupby("group_id")}


def test_planted_groups_are_communities_with_home_and_brokers(tiny_run) -> None:
    groups = _truth(tiny_run, "criminal_groups")
    members = _restricted(tiny_run, "network_members")
    communities = _restricted(tiny_run, "communities").set_index("community_id")
    areas = pd.read_parquet(tiny_run["input"] / "areas.parquet").set_index("buurt_code")
    of_community = {c: set(rows.person_id) for c, rows in members.groupby("community_id")}
    recovered: list[int] = []
    for gid, core in _core_members(groups).items():
        home = groups.home_buurt_code[groups.group_id == gid].iloc[0]
        jaccard = {c: len(core & m) / len(core | m) for c, m in of_community.items()}
        best = max(jaccard, key=lambda c: (jaccard[c], -c))
        print(f"group {gid}: Jaccard {jaccard[best]:.2f} with community {best}")
        assert jaccard[best] >= 0.7, gid
        row = communities.loc[best]
        assert row.home_buurt_code == home, gid
        assert row.home_wijk_code == areas.loc[home, "wijk_code"], gid
        assert row.rootedness_wijk >= 0.5, gid
        recovered.append(best)
    brokers = set(groups.person_id[groups.is_broker])
    flagged = set(members.person_id[members.is_broker])
    assert brokers and brokers <= flagged
    # each recovered group has its disruption curve among the restricted artifacts
    curves = pd.read_csv(tiny_run["output"] / "restricted/community_disruption.csv")
    assert set(recovered) <= set(curves.community_id)
    assert (curves.groupby("community_id").lcc_share.min() < 1).all()


def test_planted_patterns_are_among_the_most_anomalous_few(tiny_run) -> None:
    typ = _restricted(tiny_run, "area_typology")
    score = typ.groupby("buurt_code").anomaly_score.max().sort_values(ascending=False)
    few = max(3, round(0.05 * len(score)))
    top = set(score.index[:few])
    print(f"most anomalous {few} of {len(score)}: {sorted(top)}")
    for pattern in ("many_company_addresses", "overbewoning"):
        planted = set(_truth(tiny_run, pattern).buurt_code)
        assert planted & top, pattern


def test_nightlife_district_is_the_top_drug_hot_spot(tiny_run) -> None:
    """Gi* scores neighbourhoods, not single buurten: the top z lies in the planted district
    or on its border (a buurt most of whose neighbours are the district), and the district
    scores above the rest. Adjacency is read from the polygons with shapely, not from zicht."""
    import shapely

    hot = set(_truth(tiny_run, "hotspot_buurten").buurt_code)
    areas = pd.read_parquet(tiny_run["input"] / "areas.parquet")
    shape = dict(zip(areas.buurt_code, shapely.from_wkt(areas.geometry_wkt), strict=True))
    near = hot | {b for b, g in shape.items() for h in hot if g.intersects(shape[h])}
    typ = _restricted(tiny_run, "area_typology")
    for year, rows in typ.groupby("year"):
        z = rows.set_index("buurt_code").hotspot_z_drugs
        assert z.idxmax() in near, year
        assert z[sorted(hot)].mean() > z.drop(sorted(hot)).mean(), year


def test_the_run_registered_its_typology_model(tiny_run) -> None:
    from mlflow.tracking import MlflowClient

    from zicht.jobs.config import load_settings

    manifest = json.loads((tiny_run["output"] / "manifest.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{tiny_run['root'] / 'mlflow.db'}")
    name = load_settings(None).model.registered_model_name
    versions = client.search_model_versions(f"name = '{name}'")
    assert manifest["mlflow_run_id"] in {v.run_id for v in versions}


def test_rootedness_counts_reach_the_catalogue(tiny_run) -> None:
    """Co-offending ties and youth exposure are in the indicators, consistent over the
    hierarchy, and the drug network's home buurt has co-offending that stays local."""
    ind = _restricted(tiny_run, "indicators")
    areas = pd.read_parquet(tiny_run["input"] / "areas.parquet")
    wijk_of = areas.set_index("buurt_code").wijk_code

    def values(level: str, key: str) -> pd.Series:
        rows = ind[(ind.level == level) & (ind.indicator == key)]
        return rows.set_index(["area_code", "year"]).value

    b_local = values("buurt", "network.local_cooffending_ties")
    w_local = values("wijk", "network.local_cooffending_ties")
    b_ties = values("buurt", "network.cooffending_ties")
    w_ties = values("wijk", "network.cooffending_ties")
    assert b_ties.sum() > 0 and (b_local <= b_ties).all()
    # a tie local to a buurt is local to its wijk; a tie touching two buurten of a wijk is one tie
    key = [b_local.index.get_level_values(0).map(wijk_of), b_local.index.get_level_values(1)]
    assert (w_local.reindex(b_local.groupby(key).sum().index) >= b_local.groupby(key).sum()).all()
    assert (w_ties.reindex(b_ties.groupby(key).sum().index) <= b_ties.groupby(key).sum()).all()
    youth = [k for k in ind.indicator.unique() if k.startswith("context.youth_ties_")]
    assert youth, "person_links is in the synthetic input, so youth exposure must be computed"
    for k in youth:  # counts of ties of young residents per buurt add up
        b, w = values("buurt", k), values("wijk", k)
        bsum = b.groupby([b.index.get_level_values(0).map(wijk_of), b.index.get_level_values(1)])
        pd.testing.assert_series_equal(
            w.sort_index(), bsum.sum().reindex(w.index).sort_index(), check_names=False
        )
    groups = _truth(tiny_run, "criminal_groups")
    drug_home = groups.home_buurt_code[groups.phenomenon == "drugs"].iloc[0]
    assert b_local.xs(drug_home, level=0).max() >= 1
    # the drug network lives in its home buurt and deals in the nightlife district: its
    # resident members belong to a community active elsewhere
    members = values("buurt", "network.resident_community_members")
    away = values("buurt", "network.resident_members_active_elsewhere")
    assert (away <= members.reindex(away.index)).all()
    lives_home = groups[
        (groups.phenomenon == "drugs") & groups.lives_in_home_buurt & ~groups.is_broker
    ].person_id.nunique()
    assert lives_home >= 3
    assert away.xs(drug_home, level=0).max() >= lives_home - 1  # one may have moved in a year


def test_community_spread_matches_an_independent_computation(tiny_run) -> None:
    """spread_km: the standard distance of a community's incident locations (point, else the
    centroid of its buurt or of its address's buurt), recomputed from the input with pandas."""
    import numpy as np

    members = _restricted(tiny_run, "network_members")
    communities = _restricted(tiny_run, "communities").set_index("community_id")
    inc = pd.read_parquet(tiny_run["input"] / "incidents.parquet")
    sus = pd.read_parquet(tiny_run["input"] / "suspects.parquet")
    areas = pd.read_parquet(tiny_run["input"] / "areas.parquet").set_index("buurt_code")
    biggest = int(communities["size"].idxmax())
    ids = set(members.person_id[members.community_id == biggest])
    addresses = pd.read_parquet(tiny_run["input"] / "addresses.parquet")
    mine = inc[inc.incident_id.isin(sus.incident_id[sus.person_id.isin(ids)])]
    buurt = mine.buurt_code.fillna(
        mine.address_id.map(addresses.set_index("address_id").buurt_code)
    )
    x = mine.x.fillna(buurt.map(areas.x))
    y = mine.y.fillna(buurt.map(areas.y))
    assert x.notna().all() and y.notna().all()
    expected = np.sqrt(x.var(ddof=0) + y.var(ddof=0)) / 1000
    assert communities.loc[biggest, "spread_km"] == pytest.approx(expected, rel=1e-9)
