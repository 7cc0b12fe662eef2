"""The anomaly score: robust z against scipy, feature groups, planted register patterns against
decoys (a big ordinary buurt, a nightlife district), and the planted truth of a whole run.

Expected values come from scipy/pandas (independent implementations) or from what was planted,
never from the code under test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from zicht.features.settings import IndicatorSpec, ModelSettings
from zicht.models.anomaly import (
    DRIVER_COLUMNS,
    feature_groups_from_catalogue,
    percentile_rank,
    robust_z,
)
from zicht.models.typology import (
    fit_area_models,
    profile_columns_from_catalogue,
    rate_parts_from_catalogue,
)

SEED = 20261128


def test_robust_z_matches_scipy_on_an_inline_frame() -> None:
    """Columns: ordinary values, a missing value, a constant, and a zero-inflated one whose MAD
    is 0 (the floor at a quarter of the mean absolute deviation then sets the scale)."""
    frame = pd.DataFrame(
        {
            "ordinary": [1.0, 2.0, 3.0, 4.0, 100.0, 2.5, 3.5],
            "with_gap": [10.0, np.nan, 12.0, 11.0, 13.0, 50.0, 9.0],
            "constant": [5.0] * 7,
            "zero_inflated": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0],
        }
    )
    z, med, scale = robust_z(frame.to_numpy())
    for j, column in enumerate(frame.columns):
        x = frame[column].dropna().to_numpy()
        m = float(np.median(x))
        mad = scipy.stats.median_abs_deviation(x, scale="normal")  # MAD / Phi^-1(3/4)
        mean_ad = float(np.mean(np.abs(x - m))) * np.sqrt(np.pi / 2)
        s = max(mad, 0.25 * mean_ad)
        expected = (frame[column] - m) / s if s > 0 else frame[column] * 0.0
        assert med[j] == pytest.approx(m)
        assert scale[j] == pytest.approx(s, rel=1e-4)
        np.testing.assert_allclose(z[:, j], expected.fillna(0.0), rtol=1e-4, err_msg=column)
    # by hand: the zero-inflated column's one 7 lies 7 / (0.25 * 1.2533 * 1) = 22.3 above
    assert z[6, 3] == pytest.approx(7 / (0.25 * 1.2533), rel=1e-4)
    assert (z[:, 2] == 0).all()


def test_percentile_rank_matches_pandas() -> None:
    rng = np.random.default_rng(SEED)
    print(f"seed={SEED}")
    score = rng.integers(0, 5, 40).astype(float)  # many ties
    expected = pd.Series(score).rank(method="average", pct=True).to_numpy()
    np.testing.assert_allclose(percentile_rank(score), expected)


def test_feature_groups_from_catalogue() -> None:
    specs = [
        IndicatorSpec("context.density_per_km2", "", "index", "", sources=("persons",)),
        IndicatorSpec("network.active_elsewhere_share", "", "share", "", sources=("network",)),
        IndicatorSpec("drugs.incidents_per_1000", "drugs", "rate", "", sources=("incidents",)),
        IndicatorSpec(
            "drugs.signals_per_1000_addresses", "drugs", "rate", "", sources=("signals",)
        ),
        IndicatorSpec(
            "vastgoedfraude.many_company_addresses_per_1000_addresses",
            "vastgoedfraude",
            "rate",
            "",
            sources=("companies", "addresses"),
        ),
        IndicatorSpec(
            "mensenhandel.overbewoning_dwellings_per_1000_dwellings",
            "mensenhandel",
            "rate",
            "",
            sources=("persons|areas.inhabitants", "addresses"),
        ),
    ]
    assert feature_groups_from_catalogue(specs) == {
        "context_density_per_km2": "context",
        "network_active_elsewhere_share": "network",
        "drugs_incidents_per_1000": "police",
        "drugs_signals_per_1000_addresses": "signals",
        "vastgoedfraude_many_company_addresses_per_1000_addresses": "register",
        "mensenhandel_overbewoning_dwellings_per_1000_dwellings": "register",
    }


def _decoy_areas(seed: int) -> tuple[pd.DataFrame, list[IndicatorSpec], dict[str, int]]:
    """400 buurten on a grid with Poisson incidents, companies and dwellings. Planted: one
    buurt with one address holding 26 companies, one with three overcrowded dwellings; decoys:
    a buurt twenty times as large as the others with ordinary rates, and a nightlife district
    of nine adjacent buurten with ten times the drug incidents."""
    print(f"decoy areas seed={seed}")
    rng = np.random.default_rng(seed)
    side = 20
    n = side * side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    inh = rng.integers(800, 3000, n).astype(float)
    where = {"company_cluster": 57, "overcrowding": 233, "big": 301}
    inh[where["big"]] *= 20
    dwellings = np.round(inh / 2.1)
    addresses = dwellings + rng.poisson(30, n)
    companies = rng.poisson(inh * 0.11).astype(float)
    at_cluster = np.zeros(n)
    many_addr = np.zeros(n)
    at_cluster[where["company_cluster"]], many_addr[where["company_cluster"]] = 26, 1
    companies[where["company_cluster"]] += 26
    over = np.zeros(n)
    over[where["overcrowding"]] = 3
    nightlife = (np.abs(gx.ravel() - 14) <= 1) & (np.abs(gy.ravel() - 4) <= 1)
    drug_rate = np.where(nightlife, 40.0, 4.0)
    cash = rng.poisson(addresses * 0.045).astype(float)
    data: dict[str, object] = {
        "buurt_code": [f"BU{i:08d}" for i in range(n)],
        "year": 2024,
        "x": 100000.0 + gx.ravel() * 400.0,
        "y": 450000.0 + gy.ravel() * 400.0,
        "context_inhabitants": inh,
        "context_dwellings": dwellings,
        "context_addresses": addresses,
        "context_companies": companies,
    }
    specs = [
        IndicatorSpec(f"context.{c}", "", "count", "")
        for c in ("inhabitants", "dwellings", "addresses", "companies")
    ]
    rates = {
        "drugs.incidents": (
            rng.poisson(drug_rate * inh / 1000),
            "context.inhabitants",
            "incidents",
        ),
        "geweld.incidents": (rng.poisson(6.0 * inh / 1000), "context.inhabitants", "incidents"),
        "witwassen.cash_intensive_companies": (cash, "context.addresses", "companies"),
        "vastgoedfraude.many_company_addresses": (many_addr, "context.addresses", "companies"),
        "vastgoedfraude.companies_at_many_company_addresses": (
            at_cluster,
            "context.companies",
            "companies",
        ),
        "mensenhandel.overbewoning_dwellings": (over, "context.dwellings", "persons"),
    }
    for count, (values, den, source) in rates.items():
        p = count.split(".")[0]
        share = count.endswith("companies_at_many_company_addresses")
        rate = f"{count}_share" if share else f"{count}_per_1000"
        per = 1.0 if share else 1000.0
        data[count.replace(".", "_")] = values
        data[rate.replace(".", "_")] = values / np.asarray(data[den.replace(".", "_")]) * per
        specs += [
            IndicatorSpec(count, p, "count", "", sources=(source,)),
            IndicatorSpec(
                rate,
                p,
                "share" if share else "rate",
                "",
                numerator=count,
                denominator=den,
                sources=(source, "addresses"),
            ),
        ]
    where["nightlife"] = int(np.flatnonzero(nightlife)[4])
    return pd.DataFrame(data), specs, where


def test_planted_register_patterns_beat_the_decoys() -> None:
    features, specs, where = _decoy_areas(SEED)
    settings = dataclasses.replace(ModelSettings(seed=SEED, permutations=49), n_clusters=4)
    kwargs = {
        "phenomena": ("drugs", "geweld"),
        "settings": settings,
        "rate_parts": rate_parts_from_catalogue(specs),
        "anomaly_columns": profile_columns_from_catalogue(specs),
    }
    result = fit_area_models(
        features, feature_groups=feature_groups_from_catalogue(specs), **kwargs
    )
    forest_only = fit_area_models(features, **kwargs)  # no groups: the forest alone

    n = len(features)
    rank = result.typology["anomaly_score"].rank(ascending=False, method="min")
    forest_rank = forest_only.typology["anomaly_score"].rank(ascending=False, method="min")
    print({k: (int(rank[i]), int(forest_rank[i])) for k, i in where.items()})
    assert rank[where["company_cluster"]] <= 2
    assert rank[where["overcrowding"]] <= 2
    assert rank[where["big"]] > n / 10
    # the decoy bites: the forest alone puts the big buurt among its top tenth (its smoothed
    # rates are its raw ones, shrunk least)
    assert forest_rank[where["big"]] <= n / 10
    nightlife = features.index[
        (np.abs((features["x"] - 100000.0) / 400.0 - 14) <= 1)
        & (np.abs((features["y"] - 450000.0) / 400.0 - 4) <= 1)
    ]
    assert rank[nightlife].min() > 2
    # the nightlife district is the drug hot spot: known, and reported there
    assert result.typology.loc[nightlife, "hotspot_z_drugs"].mean() > 3

    drivers = result.anomaly_drivers
    assert list(drivers.columns) == list(DRIVER_COLUMNS)
    top = drivers[(drivers["part"] == "robust") & (drivers["driver_rank"] == 1)].set_index(
        "buurt_code"
    )
    code = features["buurt_code"]
    assert top.loc[code[where["company_cluster"]], "feature"].startswith(
        "vastgoedfraude_companies_at_many_company_addresses"
    ) or top.loc[code[where["company_cluster"]], "feature"].startswith(
        "vastgoedfraude_many_company_addresses"
    )
    assert top.loc[code[where["overcrowding"]], "feature"] == (
        "mensenhandel_overbewoning_dwellings_per_1000"
    )
    # counts never drive the robust part (rates and shares only); the big buurt has no
    # register driver of note
    robust_features = set(drivers.loc[drivers["part"] == "robust", "feature"])
    assert all(f.endswith(("_per_1000", "_share")) for f in robust_features), robust_features
    assert set(drivers.loc[drivers["part"] == "robust", "feature_group"]) == {"register"}
    assert (drivers.loc[drivers["part"] == "robust", "feature_z"] >= 1).all()
    assert code[where["big"]] not in set(top.index[top["part_score"] > 3])


@pytest.mark.e2e
@pytest.mark.spark
def test_planted_register_patterns_top_the_anomaly_score_of_a_run(
    tiny_run: dict[str, Path],
) -> None:
    """The session's tiny run (seed 7): the planted company cluster and overcrowded dwellings
    rank above the big ordinary buurt and above every buurt of the nightlife district that has
    no planted register pattern, and the drivers written to restricted/ name them."""

    def truth(name: str) -> set[str]:
        return set(pd.read_parquet(tiny_run["input"] / "_truth" / f"{name}.parquet").buurt_code)

    restricted = tiny_run["output"] / "restricted"
    typ = pd.read_parquet(restricted / "area_typology.parquet")
    score = typ.groupby("buurt_code").anomaly_score.max()
    rank = score.rank(ascending=False, method="min")
    register = truth("many_company_addresses") | truth("overbewoning") | truth("doorsluiswoningen")
    decoys = (truth("hotspot_buurten") | truth("big_ordinary_buurten")) - register
    print(f"ranks of {len(score)}:", {b: int(rank[b]) for b in sorted(register | decoys)})
    assert decoys, "premise: the tiny run has decoys without a register pattern"
    for pattern in ("many_company_addresses", "overbewoning"):
        assert rank[sorted(truth(pattern))].min() < rank[sorted(decoys)].min(), pattern

    drivers = pd.read_parquet(restricted / "area_anomaly_drivers.parquet")
    assert set(drivers["part"]) == {"robust", "forest"}
    named = drivers[
        (drivers["part"] == "robust") & drivers["buurt_code"].isin(truth("many_company_addresses"))
    ]
    assert named["feature"].str.contains("many_company").any()
