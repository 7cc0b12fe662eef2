"""``zicht experiment``: a grid over a small features parquet written here, one nested MLflow
run per candidate, read back from a SQLite store in tmp_path; the best candidate by silhouette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zicht.jobs import cli
from zicht.jobs import experiment as experiment_job

pytestmark = pytest.mark.e2e

SEED = 20261129


def planted_features(n_side: int, seed: int) -> pd.DataFrame:
    """Buurten of three planted types (drugs-heavy, violence-heavy, quiet), two years."""
    print(f"planted_features seed={seed}")
    rng = np.random.default_rng(seed)
    n = n_side * n_side
    gx, gy = np.meshgrid(np.arange(n_side), np.arange(n_side))
    rates = np.array([[40.0, 1.0], [1.0, 40.0], [1.0, 1.0]])
    truth = rng.integers(0, 3, n)
    frames = []
    for year in (2023, 2024):
        inhabitants = rng.integers(1500, 4000, n).astype(float)
        data: dict[str, object] = {
            "buurt_code": [f"BU{i // 100:04d}{i % 100:04d}" for i in range(n)],
            "year": year,
            "x": 100000.0 + gx.ravel() * 400.0,
            "y": 450000.0 + gy.ravel() * 400.0,
            "context_inhabitants": inhabitants,
        }
        for j, p in enumerate(("drugs", "geweld")):
            counts = rng.poisson(rates[truth, j] * inhabitants / 1000.0).astype(float)
            data[f"{p}_incidents"] = counts
            data[f"{p}_incidents_per_1000"] = counts / inhabitants * 1000.0
        frames.append(pd.DataFrame(data))
    return pd.concat(frames, ignore_index=True)


def test_experiment_sweeps_the_grid_into_nested_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    out = tmp_path / "output"
    (out / "restricted").mkdir(parents=True)
    features_path = out / "restricted/area_features.parquet"
    planted_features(12, SEED).to_parquet(features_path)
    conf = tmp_path / "grid.yaml"
    conf.write_text(
        "experiment:\n"
        "  n_clusters: [2, 3, 5]\n"
        "  algorithms: [kmeans, gmm, hdbscan]\n"
        "  min_cluster_sizes: [0, 30]\n"
        "mlflow:\n"
        "  experiment: zicht-experiment-test\n"
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        code = cli.main(["experiment", "--conf", str(conf), "--features", str(features_path)])
    finally:
        mlflow.set_tracking_uri("")
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    expected = {"kmeans_k2", "kmeans_k3", "kmeans_k5", "gmm_k2", "gmm_k3", "gmm_k5"}
    expected |= {"hdbscan_mauto", "hdbscan_m30"}
    for name in expected:
        assert name in printed

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("zicht-experiment-test")
    parents = client.search_runs(
        [exp.experiment_id], filter_string="tags.`zicht.kind` = 'experiment'"
    )
    parent = next(r for r in parents if "mlflow.parentRunId" not in r.data.tags)
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {c.info.run_name for c in children} == expected
    assert parent.data.params["experiment.n_clusters"] == "2,3,5"
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["area_features"]

    # the best candidate is the one with the highest silhouette, and it finds the three types
    silhouettes = {c.info.run_name: c.data.metrics["silhouette"] for c in children}
    best = parent.data.tags["zicht.best_candidate"]
    assert silhouettes[best] == max(silhouettes.values())
    assert best in {"kmeans_k3", "gmm_k3", "hdbscan_mauto", "hdbscan_m30"}
    chosen = [c.info.run_name for c in children if c.data.tags["zicht.chosen"] == "True"]
    assert chosen == [best]


def test_experiment_refuses_an_unknown_algorithm(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "grid.yaml"
    conf.write_text("experiment:\n  algorithms: [kmeans, spectral]\n")
    features = tmp_path / "f.parquet"
    planted_features(4, SEED).to_parquet(features)
    assert experiment_job.main(["--conf", str(conf), "--features", str(features)]) == 2
    assert "spectral" in capsys.readouterr().err
