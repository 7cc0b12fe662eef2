"""Area models: Gi* and local Moran against esda, planted hot spots, types and outliers, the
typology candidates, MLflow round trip.

Expected values come from esda/libpysal (reference implementations) or from planted truth,
never from the code under test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from sklearn.metrics import adjusted_rand_score

from zicht.features.settings import IndicatorSpec, ModelSettings
from zicht.models.hotspots import (
    benjamini_hochberg,
    contiguity_weights,
    getis_ord_gi_star,
    gi_star_permutation_p,
    knn_neighbours,
    knn_weights,
    local_moran,
    spatial_weights,
)
from zicht.models.typology import (
    AreaModelResult,
    TypologySpec,
    evaluate_candidates,
    fit_area_models,
    prepare_area_features,
    profile_columns_from_catalogue,
)

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


def test_local_moran_permutation_z_close_to_esda() -> None:
    from esda.moran import Moran_Local
    from libpysal.weights import W

    rng = np.random.default_rng(SEED)
    n = 300
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    values = rng.normal(10, 2, n)
    nb = knn_neighbours(x, y, 6)
    values[nb[0]] += 6  # a high cluster around unit 0
    values[0] += 6
    ref = Moran_Local(
        values,
        W({i: [int(j) for j in nb[i]] for i in range(n)}, silence_warnings=True),
        transformation="r",
        permutations=999,
        seed=SEED,
    )

    got = local_moran(values, knn_weights(x, y, 6), permutations=999, seed=SEED)

    # different draws of the same null: the z of each unit carries Monte Carlo error
    diff = got.z_sim - ref.z_sim
    print(f"max |z - z_esda| = {np.abs(diff).max():.3f}, mean signed = {diff.mean():+.4f}")
    assert np.abs(diff).max() < 0.35
    assert abs(diff.mean()) < 0.03
    assert got.normal_p()[0] < 1e-4  # far below the permutation floor of 1/1000
    # the normal p of a z is esda's p_z_sim (one-sided) doubled
    same_z = dataclasses.replace(got, z_sim=np.asarray(ref.z_sim, dtype=float))
    np.testing.assert_allclose(same_z.normal_p(), 2 * ref.p_z_sim, rtol=1e-9)


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


def test_a_buurt_without_polygon_has_no_contiguous_neighbour() -> None:
    # when only some buurten carry a polygon: the missing one is an island, the others
    # keep their neighbours (two unit squares sharing the edge x = 1)
    wkt = ["POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", None, "POLYGON((1 0, 2 0, 2 1, 1 1, 1 0))", ""]
    expected = np.zeros((4, 4))
    expected[0, 2] = expected[2, 0] = 1
    np.testing.assert_array_equal(contiguity_weights(wkt).toarray(), expected)


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


# --------------------------------------------------------------------------- local Moran


def grid_wkt(rows: int, cols: int, size: float = 1.0) -> list[str]:
    return [
        f"POLYGON(({c * size} {r * size}, {(c + 1) * size} {r * size}, "
        f"{(c + 1) * size} {(r + 1) * size}, {c * size} {(r + 1) * size}, {c * size} {r * size}))"
        for r in range(rows)
        for c in range(cols)
    ]


def libpysal_w(weights) -> object:
    from libpysal.weights import W

    w = weights.tocsr()
    return W(
        {i: [int(j) for j in w.indices[w.indptr[i] : w.indptr[i + 1]]] for i in range(w.shape[0])},
        silence_warnings=True,
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_local_moran_matches_esda_on_knn_weights(seed: int) -> None:
    from esda.moran import Moran_Local

    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n = 300
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    values = rng.lognormal(1.0, 1.0, n)
    w = knn_weights(x, y, 6)
    ref = Moran_Local(values, libpysal_w(w), transformation="r", permutations=999, seed=seed)

    m = local_moran(values, w, permutations=999, seed=seed)

    np.testing.assert_allclose(m.i, ref.Is, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(m.quadrant, ref.q)
    # different random draws of the same null: agreement in distribution (see the Gi* test)
    diff = m.p - ref.p_sim
    print(f"max |p - p_esda| = {np.abs(diff).max():.3f}, mean signed = {diff.mean():+.4f}")
    assert np.abs(diff).max() < 0.08
    assert abs(diff.mean()) < 0.01


def test_statistics_match_esda_on_contiguity_weights_with_an_island() -> None:
    """Polygon contiguity (a 12 x 10 grid plus one island): Gi* and local Moran as esda."""
    from esda.getisord import G_Local
    from esda.moran import Moran_Local

    rng = np.random.default_rng(SEED)
    wkt = [*grid_wkt(12, 10, 100.0), "POLYGON((5000 5000, 5100 5000, 5100 5100, 5000 5000))"]
    n = len(wkt)
    centroids = shapely.centroid(shapely.from_wkt(wkt))
    cx, cy = shapely.get_x(centroids), shapely.get_y(centroids)
    values = rng.gamma(2.0, 3.0, n)

    w, kind = spatial_weights(cx, cy, 4, wkt)

    assert kind == "contiguity"
    # the island takes its 4 nearest centroids; every grid cell keeps its queen neighbours
    assert w[n - 1].nnz == 4
    from libpysal.weights import lat2W

    np.testing.assert_array_equal(
        w[: n - 1, : n - 1].toarray(), lat2W(12, 10, rook=False).full()[0]
    )
    ref_w = libpysal_w(w)
    gi = G_Local(values, ref_w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(getis_ord_gi_star(values, w), gi.Zs, rtol=1e-10, atol=1e-10)
    lm = Moran_Local(values, ref_w, transformation="r", permutations=0)
    m = local_moran(values, w)
    np.testing.assert_allclose(m.i, lm.Is, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(m.quadrant, lm.q)


def test_spatial_weights_fall_back_to_knn_without_polygons() -> None:
    rng = np.random.default_rng(SEED)
    x, y = rng.uniform(0, 1000, 50), rng.uniform(0, 1000, 50)
    w, kind = spatial_weights(x, y, 5, [None] * 50)
    assert kind == "knn"
    assert (w != knn_weights(x, y, 5)).nnz == 0


# --------------------------------------------------------------------------- typology


def test_kmeans_recovers_planted_types() -> None:
    features, truth = planted_areas(24, SEED)

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))

    ari = adjusted_rand_score(truth, result.typology["cluster"])
    print(f"ARI={ari:.3f} metrics={result.metrics}")
    assert ari > 0.9
    assert result.metrics["kmeans_silhouette"] > 0.3
    assert result.metrics["kmeans_bootstrap_ari"] > 0.9
    columns = list(result.typology.columns)
    # the contract's columns first, in order; then the extra hot-spot statistics
    assert columns[: 4 + len(PHENOMENA)] == [
        "buurt_code",
        "year",
        "cluster",
        "anomaly_score",
        *[f"hotspot_z_{p}" for p in PHENOMENA],
    ]
    assert set(columns[4 + len(PHENOMENA) :]) == {
        f"{stat}_{p}"
        for p in PHENOMENA
        for stat in ("hotspot_q", "moran_i", "moran_q", "moran_type")
    }
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
    """Log into a real SQLite store, read everything back, load the registered model, score."""
    import mlflow

    from zicht.jobs.track import log_area_models

    features, _ = planted_areas(10, SEED)
    result: AreaModelResult = fit_area_models(
        features, phenomena=PHENOMENA, settings=settings(n_clusters=4)
    )
    inputs = {"incidents": {"rows_read": 12, "sha256": "ab" * 32}}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("area-models", artifact_location=tmp_path.as_uri())
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            log_area_models(
                result,
                registered_model_name="zicht-area-typology-test",
                inputs=inputs,
                input_dir=str(tmp_path / "in"),
                features_source=str(tmp_path / "out/restricted/area_features.parquet"),
            )
        client = mlflow.MlflowClient()
        logged = client.get_run(run.info.run_id)
        metrics = logged.data.metrics
        assert metrics["n_clusters"] == 4
        for key in (
            "kmeans_silhouette",
            "gmm_silhouette",
            "hdbscan_silhouette",
            "gmm_bic",
            "kmeans_bootstrap_ari",
            "anomaly_share",
            "hotspots_fdr_drugs",
            "moran_hh_fdr_drugs",
            "fit_total_seconds",
        ):
            assert key in metrics, key
        assert logged.data.tags["area_models.chosen"] == result.chosen
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "area_models")}
        assert {
            "area_models/profiles.csv",
            "area_models/candidates.csv",
            "area_models/anomaly_importance.csv",
            "area_models/anomaly_importance.png",
            "area_models/clusters.png",
            *[f"area_models/hotspot_z_{p}.png" for p in PHENOMENA],
        } <= artifacts

        # dataset inputs: the features (digest from the rows) and the input table's sha256
        datasets = {d.dataset.name: d for d in logged.inputs.dataset_inputs}
        assert set(datasets) == {"area_features", "input_incidents"}
        assert datasets["input_incidents"].dataset.digest == ("ab" * 32)[:32]
        tags = {t.key: t.value for t in datasets["input_incidents"].tags}
        assert tags["sha256"] == "ab" * 32
        assert tags["mlflow.data.context"] == "source"
        assert len(datasets["area_features"].dataset.digest) > 0

        # one nested run per candidate, exactly one of them chosen
        children = client.search_runs(
            [experiment], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
        )
        assert sorted(c.info.run_name for c in children) == sorted(result.candidates["candidate"])
        assert sum(c.data.tags["zicht.chosen"] == "True" for c in children) == 1
        assert all("silhouette" in c.data.metrics for c in children)

        # the registered model scores areas it has never seen like the fitted pipeline does
        model = mlflow.pyfunc.load_model("models:/zicht-area-typology-test/1")
        new_areas, _ = planted_areas(6, SEED + 1)
        # doubles, as in restricted/area_features.parquet (the signature says float64)
        new_x = new_areas[result.feature_columns].astype(float)
        scored = np.asarray(model.predict(new_x))
        np.testing.assert_array_equal(scored, result.model.predict(new_x))
        assert set(scored) <= set(result.typology["cluster"])
    finally:
        mlflow.set_tracking_uri("")


# --------------------------------------------------------------------------- candidates


def test_every_candidate_recovers_planted_types_and_the_best_silhouette_wins() -> None:
    features, truth = planted_areas(20, SEED)
    prepared = prepare_area_features(features, settings=settings(n_clusters=4))
    specs = [TypologySpec("kmeans", 4), TypologySpec("gmm", 4), TypologySpec("hdbscan")]

    candidates = evaluate_candidates(prepared.Z, specs, seed=SEED)
    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))

    for c in candidates:
        ari = adjusted_rand_score(truth, c.labels)
        print(f"{c.spec.name}: ARI={ari:.3f} {c.metrics}")
        assert ari > 0.9, c.spec.name
        assert c.metrics["bootstrap_ari"] > 0.8, c.spec.name
    table = result.candidates.set_index("candidate")
    assert list(table.index) == ["kmeans_k4", "gmm_k4", "hdbscan_mauto"]
    assert table["is_chosen"].sum() == 1
    assert table.loc[result.chosen, "silhouette"] == table["silhouette"].max()
    assert np.isfinite(table.loc["gmm_k4", "bic"]) and np.isnan(table.loc["kmeans_k4", "bic"])


def test_hdbscan_leaves_an_odd_area_untyped_and_scores_new_areas() -> None:
    features, _ = planted_areas(20, SEED)
    prepared = prepare_area_features(features, settings=settings())
    odd = prepared.Z.copy()
    odd[7] = 25.0  # far from every type
    (c,) = evaluate_candidates(odd, [TypologySpec("hdbscan")], seed=SEED, stability=False)

    assert c.labels[7] == -1
    assert c.metrics["noise_share"] > 0
    np.testing.assert_array_equal(c.clusterer.predict(odd), c.labels)


def test_contiguity_hot_spot_through_the_stage() -> None:
    """Polygons given: contiguity weights; a planted block is the top Gi* and an HH cluster."""
    side = 15
    features, _ = planted_areas(side, SEED)
    features["context_inhabitants"] = 2000
    gx = ((features["x"] - 100000.0) / 400.0).astype(int)
    gy = ((features["y"] - 450000.0) / 400.0).astype(int)
    block = (np.abs(gx - 5) <= 1) & (np.abs(gy - 9) <= 1)
    features["drugs_incidents"] = np.where(block, 40, 2)
    features["drugs_incidents_per_1000"] = features["drugs_incidents"] / 2000 * 1000
    x0, y0 = features["x"] - 200.0, features["y"] - 200.0
    geometry = {
        code: f"POLYGON(({a} {b}, {a + 400} {b}, {a + 400} {b + 400}, {a} {b + 400}, {a} {b}))"
        for code, a, b in zip(features["buurt_code"], x0, y0, strict=True)
    }
    centre = features.index[(gx == 5) & (gy == 9)][0]

    result = fit_area_models(
        features, phenomena=PHENOMENA, settings=settings(permutations=199), geometry_wkt=geometry
    )

    assert result.weights == "contiguity"
    typ = result.typology
    assert int(typ["hotspot_z_drugs"].idxmax()) == centre
    assert typ.loc[centre, "moran_type_drugs"] == "HH"
    assert typ.loc[centre, "hotspot_q_drugs"] <= 0.05
    assert set(typ["moran_type_drugs"]) <= {"HH", "LL", "HL", "LH", "ns"}
    assert result.metrics["moran_hh_fdr_drugs"] >= 1


def test_anomaly_importance_names_the_odd_feature() -> None:
    features, _ = planted_areas(20, SEED)
    rng = np.random.default_rng(SEED)
    odd = rng.choice(len(features), 8, replace=False)
    features["context_odd"] = 1.0 + rng.normal(0, 0.01, len(features))
    features.loc[odd, "context_odd"] = 500.0

    result = fit_area_models(features, phenomena=PHENOMENA, settings=settings(n_clusters=4))

    print(result.anomaly_importance)
    assert result.anomaly_importance["feature"].iloc[0] == "context_odd"
    assert result.anomaly_importance["importance"].iloc[0] > 0


def test_constant_values_are_never_significant() -> None:
    rng = np.random.default_rng(SEED)
    x, y = rng.uniform(0, 1000, 40), rng.uniform(0, 1000, 40)
    w = knn_weights(x, y, 5)
    values = np.zeros(40)
    assert (gi_star_permutation_p(values, w, permutations=99, seed=1) == 1).all()
    assert (local_moran(values, w, permutations=99, seed=1).p == 1).all()


def test_normal_inference_has_no_permutation_floor() -> None:
    """A 3x3 block of high rates among 15x15 buurten. A permutation p is at least
    1/(permutations + 1) (here 1/50), so no q-value can go below it, however extreme the block;
    Benjamini-Hochberg over the ~14k buurten of the country would then need hundreds of areas
    at that floor before declaring any. The normal p of the block's z-scores has no floor."""
    features, _ = planted_areas(15, SEED)
    gx = (features["x"] - 100000.0) / 400.0
    gy = (features["y"] - 450000.0) / 400.0
    block = (np.abs(gx - 7) <= 1) & (np.abs(gy - 7) <= 1)
    features["context_inhabitants"] = 2000
    features["drugs_incidents"] = np.where(block, 40, 2)
    features["drugs_incidents_per_1000"] = features["drugs_incidents"] / 2000 * 1000
    normal = fit_area_models(features, phenomena=PHENOMENA, settings=settings(knn=8))
    perm = fit_area_models(
        features,
        phenomena=PHENOMENA,
        settings=settings(knn=8, hotspot_inference="permutation"),
    )
    assert perm.typology["hotspot_q_drugs"].min() >= 1 / 50 - 1e-12
    assert perm.typology["moran_q_drugs"].min() >= 1 / 50 - 1e-12
    centre = features.index[(gx == 7) & (gy == 7)][0]
    assert normal.typology.loc[centre, "hotspot_q_drugs"] < 1e-4
    assert normal.typology.loc[centre, "moran_type_drugs"] == "HH"
    assert perm.typology.loc[centre, "moran_type_drugs"] == "ns"
    hot = (normal.typology["hotspot_q_drugs"] <= 0.05) & (normal.typology["hotspot_z_drugs"] > 0)
    assert hot[block.to_numpy()].all()


def test_anomaly_sees_each_quantity_once() -> None:
    """A register pattern in one buurt beats a large ordinary buurt and repeated crime rates.

    Each incident rate comes with four derived copies (smoothed, relative to the gemeente and
    to the study area, an index), as in the catalogue; one buurt has a third of its companies
    at one address (others about 1 %); one buurt is twenty times as large as the others with
    ordinary rates. On the profile columns the register buurt is the most unusual and the large
    one is not among the top tenth.
    """
    features, _ = planted_areas(20, SEED)
    rng = np.random.default_rng(SEED)
    n = len(features)
    specs = [IndicatorSpec("context.inhabitants", "", "count", "")]
    for p in PHENOMENA:
        rate = features[f"{p}_incidents_per_1000"]
        specs += [
            IndicatorSpec(f"{p}.incidents", p, "count", ""),
            IndicatorSpec(f"{p}.incidents_per_1000", p, "rate", "", f"{p}.incidents", "x"),
        ]
        for suffix, method, unit in (
            ("smoothed", "eb_smoothed", "rate"),
            ("vs_gemeente", "relative_gemeente", "index"),
            ("vs_study_area", "relative_study_area", "index"),
            ("composite_index", "composite", "index"),
        ):
            features[f"{p}_{suffix}"] = rate * rng.normal(1.0, 0.05, n)
            specs.append(IndicatorSpec(f"{p}.{suffix}", p, unit, "", method=method))
    features["context_companies"] = rng.integers(20, 60, n).astype(float)
    features["context_cluster_share"] = rng.uniform(0.0, 0.02, n)
    specs += [
        IndicatorSpec("context.companies", "", "count", ""),
        IndicatorSpec("context.cluster_share", "", "share", ""),
    ]
    odd, big = 57, 301
    features.loc[odd, "context_cluster_share"] = 0.33
    for c in ["context_inhabitants", "context_companies", *(f"{p}_incidents" for p in PHENOMENA)]:
        features.loc[big, c] = features.loc[big, c] * 20

    columns = profile_columns_from_catalogue(specs)
    assert sorted(columns) == sorted(
        ["context_cluster_share", *(f"{p}_incidents_per_1000" for p in PHENOMENA)]
    )
    result = fit_area_models(
        features, phenomena=PHENOMENA, settings=settings(n_clusters=4), anomaly_columns=columns
    )
    rank = result.typology["anomaly_score"].rank(ascending=False)
    print(f"rank of the register buurt {rank[odd]}, of the large buurt {rank[big]}")
    assert rank[odd] == 1
    assert rank[big] > n / 10
    assert result.metrics["n_anomaly_features"] == len(columns)
