# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (zicht venv)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compare area typologies in MLflow, and load the registered model
#
# `zicht experiment` sweeps typology candidates (k-means and Gaussian mixture per number of
# types, HDBSCAN per minimum cluster size) over the area features of a run, one nested MLflow
# run each. This notebook runs a sweep, reads the candidates back from MLflow, compares them
# (silhouette, resample stability ARI, BIC) and loads the registered typology model to score
# areas.
#
# By default it needs no Spark: the area features are synthesised here, buurten of four planted
# types on a grid, so the comparison can also be checked against the truth, and everything goes
# to a fresh MLflow store in a temporary folder. To compare typologies of a real run, set
# `FEATURES` to its `restricted/area_features.parquet` (inside the secure environment: the
# features and MLflow's copies of them are buurt-level and restricted). The sweep then goes to
# that run's MLflow store (`mlflow.db` beside the output folder, or `MLFLOW_TRACKING_URI`) and
# the model loaded is the one `zicht run` registered.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from zicht.jobs import experiment as experiment_job
from zicht.jobs.config import load_settings
from zicht.jobs.runtime import mlflow_tracking_uri
from zicht.models.typology import (
    TypologySpec,
    evaluate_candidates,
    fit_area_models,
    prepare_area_features,
    rate_parts_from_catalogue,
)

FEATURES: Path | None = None  # a real run's restricted/area_features.parquet, or None
WORK = Path(tempfile.mkdtemp(prefix="zicht-nb03-"))
SEED = 7
GRID = {"algorithms": ["kmeans", "gmm", "hdbscan"], "n_clusters": [2, 3, 4, 5, 6, 8]}

# %% [markdown]
# ## Area features
#
# One row per buurt and year, as `zicht run` writes them: keys, centroid, inhabitants, and per
# phenomenon the incident count and the rate per 1000 inhabitants. The synthetic buurten have
# one of four types: drugs-heavy, violence-heavy, money-laundering-heavy, or quiet.

# %%
if FEATURES is None:
    rng = np.random.default_rng(SEED)
    print(f"synthetic area features, seed={SEED}")
    side, phenomena = 16, ["drugs", "geweld", "witwassen"]
    planted = np.array([[12.0, 2.0, 1.0], [2.0, 12.0, 1.0], [2.0, 2.0, 8.0], [2.0, 2.0, 1.0]])
    truth = rng.integers(0, len(planted), side * side)
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    frames = []
    for year in (2023, 2024):
        inhabitants = rng.integers(1200, 4000, side * side).astype(float)
        frame = pd.DataFrame(
            {
                "buurt_code": [f"BU{9000 + i // 100:04d}{i % 100:04d}" for i in range(side**2)],
                "year": year,
                "x": 150000.0 + gx.ravel() * 400.0,
                "y": 450000.0 + gy.ravel() * 400.0,
                "context_inhabitants": inhabitants,
                "planted_type": truth,
            }
        )
        for j, p in enumerate(phenomena):
            counts = rng.poisson(planted[truth, j] * inhabitants / 1000.0).astype(float)
            frame[f"{p}_incidents"] = counts
            frame[f"{p}_incidents_per_1000"] = counts / inhabitants * 1000.0
        frames.append(frame)
    areas = pd.concat(frames, ignore_index=True)
    features = areas.drop(columns="planted_type")
    features_path = WORK / "output/restricted/area_features.parquet"
    features_path.parent.mkdir(parents=True)
    features.to_parquet(features_path)
    # a store of its own, whatever MLFLOW_TRACKING_URI says: synthetic runs stay out of real ones
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{WORK / 'mlflow.db'}"
else:
    features_path = Path(FEATURES)
    features, areas = pd.read_parquet(features_path), None
    phenomena = sorted(load_settings().phenomena)
print(len(features), "area-years,", features["buurt_code"].nunique(), "buurten")
features.head()

# %% [markdown]
# ## The sweep: `zicht experiment`, one nested MLflow run per candidate

# %%
conf = WORK / "grid.yaml"
conf.write_text(
    "experiment:\n"
    + "".join(f"  {k}: [{', '.join(map(str, v))}]\n" for k, v in GRID.items())
    + f"model:\n  seed: {SEED}\n"
)
assert experiment_job.main(["--conf", str(conf), "--features", str(features_path)]) == 0
settings = load_settings(conf)

# %% [markdown]
# ## The candidates, read back from MLflow

# %%
output_dir = features_path.parent.parent if features_path.parent.name == "restricted" else None
uri = mlflow_tracking_uri(output_dir or features_path.parent)
client = mlflow.MlflowClient(tracking_uri=uri)
experiment = client.get_experiment_by_name(settings.mlflow.experiment)
sweep = client.search_runs(
    [experiment.experiment_id],
    filter_string="tags.`zicht.kind` = 'experiment'",
    order_by=["attributes.start_time DESC"],
)
parent = next(r for r in sweep if "mlflow.parentRunId" not in r.data.tags)
children = client.search_runs(
    [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
)
candidates = pd.DataFrame(
    [
        {
            "candidate": c.info.run_name,
            "algorithm": c.data.params["algorithm"],
            "n_clusters": int(c.data.params["n_clusters"]),
            **c.data.metrics,
            "chosen": c.data.tags.get("zicht.chosen") == "True",
        }
        for c in children
    ]
).sort_values("silhouette", ascending=False)
print(f"sweep {parent.info.run_id} in {uri}: best {parent.data.tags['zicht.best_candidate']}")
candidates[["candidate", "n_types", "silhouette", "bootstrap_ari", "bic", "noise_share", "chosen"]]

# %% [markdown]
# Silhouette (how well the types separate) against resample stability (how far the types
# survive refitting on half the areas), and the mixture's BIC against the number of types
# (lower is better; it penalises extra components).

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
for algorithm, part in candidates.groupby("algorithm"):
    left.scatter(part["bootstrap_ari"], part["silhouette"], label=algorithm, s=40)
    for _, row in part.iterrows():
        left.annotate(row["candidate"], (row["bootstrap_ari"], row["silhouette"]), fontsize=7)
left.set_xlabel("resample stability (mean ARI)")
left.set_ylabel("silhouette")
left.set_title("typology candidates")
left.legend()
for algorithm in ("kmeans", "gmm"):
    part = candidates[candidates["algorithm"] == algorithm].sort_values("n_clusters")
    right.plot(part["n_clusters"], part["silhouette"], marker="o", label=f"{algorithm} silhouette")
bic = candidates[candidates["algorithm"] == "gmm"].sort_values("n_clusters")
twin = right.twinx()
twin.plot(bic["n_clusters"], bic["bic"], color="grey", linestyle="--", marker="s", label="gmm BIC")
twin.set_ylabel("BIC (gmm)")
right.set_xlabel("number of types")
right.set_ylabel("silhouette")
right.legend(loc="upper right")
twin.legend(loc="center right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Against the planted types (synthetic features only)
#
# The same candidates refitted on the same scaled space (no resampling), and the agreement of
# each with the planted types (adjusted Rand index; 1 = the planted types exactly).

# %%
if areas is not None:
    prepared = prepare_area_features(
        features, settings=settings.model, rate_parts=rate_parts_from_catalogue(settings.indicators)
    )
    order = areas.sort_values(["year", "buurt_code"], kind="stable")["planted_type"].to_numpy()
    specs = [TypologySpec(a, n_clusters=k) for a in ("kmeans", "gmm") for k in GRID["n_clusters"]]
    fits = evaluate_candidates(prepared.Z, [*specs, TypologySpec("hdbscan")], seed=SEED)
    agreement = pd.DataFrame(
        {
            "candidate": [f.spec.name for f in fits],
            "ari_with_planted": [adjusted_rand_score(order, f.labels) for f in fits],
            "silhouette": [f.metrics["silhouette"] for f in fits],
        }
    ).sort_values("ari_with_planted", ascending=False)
    print(agreement.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# ## The registered model
#
# `zicht run` registers the chosen typology pipeline (preprocessing and clusterer) as
# `zicht-area-typology` in its MLflow store. For the synthetic features this notebook does the
# same with zicht's own functions, with the sweep's best number of types as
# `model.n_clusters` (what a researcher carries into `conf/` after a sweep); then it loads the
# latest version and scores the areas.

# %%
name = settings.model.registered_model_name
if areas is not None:
    from zicht.jobs.track import log_area_models

    best = candidates[candidates["algorithm"] != "hdbscan"].iloc[0]
    tuned = load_settings(conf, model={"n_clusters": int(best["n_clusters"])})
    result = fit_area_models(
        features,
        phenomena=phenomena,
        settings=tuned.model,
        rate_parts=rate_parts_from_catalogue(settings.indicators),
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="nb03-area-models"):
        log_area_models(result, registered_model_name=name, features_source=str(features_path))
    print("chosen:", result.chosen)

latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
model = mlflow.pyfunc.load_model(f"models:/{name}/{latest.version}")
columns = [c.name for c in model.metadata.get_input_schema().inputs]
scored = features[["buurt_code", "year"]].assign(
    type=model.predict(features[columns].astype(float))
)
print(f"{name} version {latest.version} (run {latest.run_id}), {len(columns)} input columns")
scored.groupby(["year", "type"]).size().unstack(fill_value=0)

# %%
if areas is not None:
    crosstab = pd.crosstab(
        areas["planted_type"].rename("planted type"), scored["type"].rename("model type")
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(crosstab.to_numpy(), cmap="Blues")
    ax.set_xticks(range(crosstab.shape[1]), crosstab.columns)
    ax.set_yticks(range(crosstab.shape[0]), crosstab.index)
    for (i, j), n in np.ndenumerate(crosstab.to_numpy()):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8)
    ax.set_xlabel(crosstab.columns.name)
    ax.set_ylabel(crosstab.index.name)
    ax.set_title("registered model vs planted types")
    plt.show()
