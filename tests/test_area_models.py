"""Area models: Gi* against esda, planted hot spots, types and outliers, MLflow round trip.

Expected values come from esda/libpysal (reference implementations) or from planted truth,
never from the code under test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from zicht.features.settings import ModelSettings
from zicht.models.hotspots import (
    benjamini_hochberg,
    contiguity_weights,
    getis_ord_gi_star,
    gi_star_permutation_p,
    knn_neighbours,
    knn_weights,
)
from zicht.models.typology import AreaModelResult, fit_area_models

SEED = 20261128
PHENOMENA = ("drugs", "witwassen", "geweld")
# Large values on one feature for a few types, small on the others: well separated after log1p.
PLANTED_RATES = np.array(
    [
        [40.0, 0.5, 1.0],
        [0.5, 40.0, 1.0],
        [1.0, 0.5, 40.0],
        [1.0, 1.0, 1.0],
    ]
)


def settings(**changes: object) -> ModelSettings:
    return dataclasses.replace(ModelSettings(seed=SEED, permutations=49), **changes)  # type: ignore[arg-type]


def planted_areas(
    n_side: int, seed: int, *, years: tuple[int, ...] = (2023,)
) -> tuple[pd.DataFrame, np.ndarray]:
    """A grid of buurten, each of one of four planted types; returns (features, type per row)."""
    print(f"planted_areas seed={seed}")
    rng = np.random.default_rng(seed)
    n = n_side * n_side
    gx, gy = np.meshgrid(np.arange(n_side), np.arange(n_side))
    truth = rng.integers(0, len(PLANTED_RATES), n)
    frames, truths = [], []
    for year in years:
        inhabitants = rng.integers(1500, 4000, n)
        data: dict[str, object] = {
            "buurt_code": [f"BU{i // 100:04d}{i % 100:04d}" for i in range(n)],
            "year": year,
            "x": 100000.0 + gx.ravel() * 400.0,
            "y": 450000.0 + gy.ravel() * 400.0,
            "context_inhabitants": inhabitants,
        }
        for j, p in enumerate(PHENOMENA):
            counts = rng.poisson(PLANTED_RATES[truth, j] * inhabitants / 1000.0)
            data[f"{p}_incidents"] = counts
            data[f"{p}_incidents_per_1000"] = counts / inhabitants * 1000.0
        frames.append(pd.DataFrame(data))
        truths.append(truth)
    return pd.concat(frames, ignore_index=True), np.concatenate(truths)


# --------------------------------------------------------------------------- Gi*


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gi_star_matches_esda_on_knn_weights(seed: int) -> None:
    from esda.getisord import G_Local
    from libpysal.weights import W

    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n, k = 250, 6
    x, y = rng.uniform(0, 20000, n), rng.uniform(300000, 320000, n)
    values = rng.lognormal(1.0, 1.0, n)
    nb = knn_neighbours(x, y, k)
    w_ref = W({i: [int(j) for j in nb[i]] for i in range(n)}, silence_warnings=True)
    ref = G_Local(values, w_ref, transform="B", star=True, permutations=0)

    z = getis_ord_gi_star(values, knn_weights(x, y, k))

    np.testing.assert_allclose(z, ref.Zs, rtol=1e-10, atol=1e-10)


def test_knn_neighbours_match_brute_force() -> None:
    rng = np.random.default_rng(SEED)
    x, y = rng.uniform(0, 1000, 80), rng.uniform(0, 1000, 80)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    expected = np.argsort(d, axis=1)[:, :5]
    np.testing.assert_array_equal(
        np.sort(knn_neighbours(x, y, 5), axis=1), np.sort(expected, axis=1)
    )


def test_permutation_p_values_close_to_esda() -> None:
    from esda.getisord import G_Local
    from libpysal.weights import W

    rng = np.random.default_rng(SEED)
    n = 300
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    values = rng.normal(10, 2, n)
    values[:10] += 8  # a few units far above the rest, so some p-values are small
    nb = knn_neighbours(x, y, 6)
    ref = G_Local(
        values,
        W({i: [int(j) for j in nb[i]] for i in range(n)}, silence_warnings=True),
        transform="B",
        star=True,
        permutations=999,
        seed=SEED,
    )

    p = gi_star_permutation_p(values, knn_weights(x, y, 6), permutations=999, seed=SEED)

    # Different random draws of the same null: each p carries Monte Carlo error (sd up to
    # sqrt(0.25 / 999) = 0.016), so the two agree in distribution, not value by value.
    diff = p - ref.p_sim
    print(f"max |p - p_esda| = {np.abs(diff).max():.3f}, mean signed = {diff.mean():+.4f}")
    assert np.abs(diff).max() < 0.08
    assert abs(diff.mean()) < 0.01
    assert set(np.flatnonzero(ref.p_sim < 0.005)) <= set(np.flatnonzero(p < 0.02))


def test_benjamini_hochberg_matches_scipy() -> None:
    from scipy.stats import false_discovery_control

    rng = np.random.default_rng(SEED)
    p = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)])
    reject, q = benjamini_hochberg(p, 0.05)
    np.testing.assert_allclose(q, false_discovery_control(p, method="bh"))
    np.testing.assert_array_equal(reject, q <= 0.05)


def test_queen_contiguity_matches_libpysal_lattice() -> None:
    from libpysal.weights import lat2W

    rows, cols = 5, 4
    wkt = [
        f"POLYGON(({c} {r}, {c + 1} {r}, {c + 1} {r + 1}, {c} {r + 1}, {c} {r}))"
        for r in range(rows)
        for c in range(cols)
    ]
    ref = lat2W(rows, cols, rook=False)
    np.testing.assert_array_equal(contiguity_weights(wkt).toarray(), ref.full()[0])


def test_planted_hot_spot_has_the_highest_z() -> None:
    rng = np.random.default_rng(SEED)
    side = 20
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    x, y = gx.ravel() * 500.0, gy.ravel() * 500.0
    values = rng.normal(5.0, 1.0, side * side).clip(0)
    block = (np.abs(gx - 12) <= 1) & (np.abs(gy - 6) <= 1)
    values[block.ravel()] += 6.0
    centre = int(np.flatnonzero(((gx == 12) & (gy == 6)).ravel())[0])

    z = getis_ord_gi_star(values, knn_weights(x, y, 8))

    assert int(np.argmax(z)) == centre
    assert z[centre] > 3


# --------------------------------------------------------------------------- typology


def test_kmeans_recovers_planted_types() -> None:
    features, truth = planted_areas(24, SEED)

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))

    ari = adjusted_rand_score(truth, result.typology["cluster"])
    print(f"ARI={ari:.3f} metrics={result.metrics}")
    assert ari > 0.9
    assert result.metrics["kmeans_silhouette"] > 0.3
    assert result.metrics["kmeans_bootstrap_ari"] > 0.9
    assert list(result.typology.columns) == [
        "buurt_code",
        "year",
        "cluster",
        "anomaly_score",
        *[f"hotspot_z_{p}" for p in PHENOMENA],
    ]
    assert len(result.profiles) == 4
    # the planted drugs type is described by its high drugs rate
    drugs_type = pd.Series(result.typology["cluster"][truth == 0]).mode()[0]
    text = str(result.profiles.set_index("cluster").loc[drugs_type, "description"])
    assert "high drugs incidents" in text


def test_hot_spot_through_the_stage() -> None:
    features, _ = planted_areas(15, SEED)
    features["drugs_incidents"] = 2
    gx = (features["x"] - 100000.0) / 400.0
    gy = (features["y"] - 450000.0) / 400.0
    block = (np.abs(gx - 5) <= 1) & (np.abs(gy - 9) <= 1)
    features.loc[block, "drugs_incidents"] = 40
    features["context_inhabitants"] = 2000
    features["drugs_incidents_per_1000"] = features["drugs_incidents"] / 2000 * 1000
    centre = features.index[(gx == 5) & (gy == 9)][0]

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(knn=8))

    z = result.typology["hotspot_z_drugs"]
    assert int(z.idxmax()) == centre
    assert result.metrics["hotspots_fdr_drugs"] >= 1


def test_planted_outlier_gets_the_top_anomaly_score() -> None:
    features, _ = planted_areas(20, SEED)
    outlier = 137
    inhabitants = float(features["context_inhabitants"].to_numpy()[outlier])
    for p in PHENOMENA:
        features.loc[outlier, f"{p}_incidents"] = 400
        features.loc[outlier, f"{p}_incidents_per_1000"] = 400 / inhabitants * 1000

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))

    assert int(result.typology["anomaly_score"].idxmax()) == outlier


@pytest.mark.parametrize(
    "column", ["share_nationality_pl", "herkomst_niet_westers", "religion_share", "Etniciteit_x"]
)
def test_sensitive_feature_is_refused(column: str) -> None:
    features, _ = planted_areas(6, SEED)
    features[column] = 0.1
    with pytest.raises(ValueError, match="refuses"):
        fit_area_models(features, phenomena=PHENOMENA, settings=settings())


def test_deterministic_for_a_fixed_seed() -> None:
    features, _ = planted_areas(15, SEED, years=(2022, 2023))
    a = fit_area_models(features, phenomena=PHENOMENA, settings=settings())
    shuffled = features.sample(frac=1.0, random_state=1)
    b = fit_area_models(shuffled, phenomena=PHENOMENA, settings=settings())

    pd.testing.assert_frame_equal(a.typology, b.typology)
    pd.testing.assert_frame_equal(a.profiles, b.profiles)
    timing = {k for k in a.metrics if k.endswith("_seconds")}
    assert {k: v for k, v in a.metrics.items() if k not in timing} == pytest.approx(
        {k: v for k, v in b.metrics.items() if k not in timing}, nan_ok=True
    )


def test_degenerate_inputs() -> None:
    features, _ = planted_areas(2, SEED)  # four buurten, six clusters asked for
    features["context_constant"] = 7.0
    features["witwassen_incidents_per_1000"] = np.nan  # no denominator anywhere: all NaN

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=6))

    assert result.metrics["n_clusters"] <= 4
    assert "witwassen_incidents_per_1000" not in result.feature_columns
    assert result.typology["cluster"].between(0, 3).all()
    assert np.isfinite(result.typology["anomaly_score"]).all()
    assert np.isfinite(result.typology["hotspot_z_drugs"]).all()

    # one area, or areas that do not differ at all: nothing to model, said plainly
    with pytest.raises(ValueError, match="no feature varies"):
        fit_area_models(features.head(1), phenomena=PHENOMENA, settings=settings())

    constant = features.assign(
        **{c: 1.0 for c in features.columns if c not in ("buurt_code", "year", "x", "y")}
    )
    with pytest.raises(ValueError, match="no feature varies"):
        fit_area_models(constant, phenomena=PHENOMENA, settings=settings())


def test_model_scores_new_areas_like_the_fit() -> None:
    features, _ = planted_areas(12, SEED)
    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))
    predicted = result.model.predict(features[result.feature_columns])
    np.testing.assert_array_equal(predicted, result.typology["cluster"].to_numpy())


# --------------------------------------------------------------------------- MLflow


@pytest.mark.e2e
def test_log_area_models_round_trip(tmp_path: Path) -> None:
    import mlflow

    from zicht.jobs.track import log_area_models

    features, _ = planted_areas(10, SEED)
    result: AreaModelResult = fit_area_models(
        features, phenomena=PHENOMENA, settings=settings(n_clusters=4)
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("area-models", artifact_location=tmp_path.as_uri())
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            log_area_models(result, registered_model_name="zicht-area-typology-test")
        client = mlflow.MlflowClient()
        logged = client.get_run(run.info.run_id)
        assert logged.data.metrics["n_clusters"] == 4
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "area_models")}
        assert {
            "area_models/profiles.csv",
            "area_models/clusters.png",
            "area_models/hotspot_z_drugs.png",
        } <= artifacts

        model = mlflow.pyfunc.load_model("models:/zicht-area-typology-test/1")
        predictions = np.asarray(model.predict(result.input_example))
        fitted = result.typology["cluster"].to_numpy()[: len(result.input_example)]
        np.testing.assert_array_equal(predictions, fitted)
    finally:
        mlflow.set_tracking_uri("")
