"""MLflow logging of the area-model stage (jobs/ is the only place that calls MLflow).

Reads an :class:`~zicht.models.typology.AreaModelResult`; writes, into the already active MLflow
run: the metrics, ``area_models/profiles.csv``, ``area_models/feature_columns.txt``, two PNG maps
(``area_models/clusters.png``, ``area_models/hotspot_z_<first phenomenon>.png``) and the typology
pipeline as the model ``area_typology`` (MLflow 3: ``name=``, not the deprecated
``artifact_path=``), optionally registered.

The maps and the input example show buurt-level values: they belong in the MLflow store inside
the secure environment, like ``restricted/``, never in a store partners can read.
"""

from __future__ import annotations

import importlib.metadata
import math

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on servers without a display

import cloudpickle
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.models import infer_signature

import zicht.models.typology as typology_module
from zicht.models.typology import AreaModelResult

MODEL_NAME = "area_typology"
ARTIFACT_DIR = "area_models"

# What the pickled pipeline needs at load time. Pinned to the versions that fitted it: a pickle is
# only guaranteed to load under the same scikit-learn. Passing the list also saves MLflow ~9 s of
# requirement inference.
_MODEL_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")


def model_pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in _MODEL_PACKAGES]


def log_area_models(result: AreaModelResult, *, registered_model_name: str | None) -> None:
    """Log the area models into the active MLflow run; register the model when a name is given."""
    if mlflow.active_run() is None:
        raise RuntimeError("log_area_models needs an active MLflow run (mlflow.start_run())")

    finite = {k: float(v) for k, v in result.metrics.items() if math.isfinite(v)}
    undefined = sorted(set(result.metrics) - set(finite))
    mlflow.log_metrics(finite)
    if undefined:
        # MLflow stores NaN poorly across backends; say which metrics were undefined instead
        mlflow.set_tag("area_models.undefined_metrics", ",".join(undefined))

    mlflow.log_text(result.profiles.to_csv(index=False), f"{ARTIFACT_DIR}/profiles.csv")
    mlflow.log_text("\n".join(result.feature_columns) + "\n", f"{ARTIFACT_DIR}/feature_columns.txt")

    for filename, fig in _maps(result).items():
        mlflow.log_figure(fig, f"{ARTIFACT_DIR}/{filename}")
        plt.close(fig)

    predictions = result.model.predict(result.input_example)
    signature = infer_signature(result.input_example, predictions)
    # The pipeline's first step is a zicht class; pickling the module by value makes the model
    # load where zicht is not installed (a scoring service needs only the pip requirements).
    cloudpickle.register_pickle_by_value(typology_module)
    try:
        mlflow.sklearn.log_model(
            result.model,
            name=MODEL_NAME,
            signature=signature,
            input_example=result.input_example,
            pip_requirements=model_pip_requirements(),
            # skops (the default) refuses the tree models sklearn pipelines often hold, and cannot
            # store our own transformer class; cloudpickle can.
            serialization_format="cloudpickle",
            registered_model_name=registered_model_name,
        )
    finally:
        cloudpickle.unregister_pickle_by_value(typology_module)


def _maps(result: AreaModelResult) -> dict[str, Figure]:
    """Scatter maps of the last year: clusters, and the Gi* z of the first phenomenon."""
    frame = pd.concat(
        [
            result.locations[["x", "y"]].reset_index(drop=True),
            result.typology.reset_index(drop=True),
        ],
        axis=1,
    )
    year = int(frame["year"].max())
    last = frame[frame["year"] == year]
    size = float(np.clip(20000 / max(len(last), 1), 1, 30))
    out: dict[str, Figure] = {}

    fig, ax = plt.subplots(figsize=(7, 8), dpi=100)
    clusters = sorted(last["cluster"].unique())
    cmap = plt.get_cmap("tab10" if len(clusters) <= 10 else "tab20")
    for i, c in enumerate(clusters):
        part = last[last["cluster"] == c]
        ax.scatter(part["x"], part["y"], s=size, color=cmap(i % cmap.N), label=f"type {c}", lw=0)
    ax.set_aspect("equal")
    ax.set_title(f"Area typology, {year} (buurt centroids)")
    ax.set_xlabel("x (RD New, m)")
    ax.set_ylabel("y (RD New, m)")
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    out["clusters.png"] = fig

    hot = [c for c in result.typology.columns if c.startswith("hotspot_z_")]
    if hot:
        column = hot[0]
        fig, ax = plt.subplots(figsize=(7, 8), dpi=100)
        points = ax.scatter(
            last["x"], last["y"], c=last[column], s=size, cmap="RdBu_r", vmin=-3, vmax=3, lw=0
        )
        fig.colorbar(points, ax=ax, label="Gi* z (clipped at ±3)")
        ax.set_aspect("equal")
        ax.set_title(f"Hot spots, {column.removeprefix('hotspot_z_')}, {year}")
        ax.set_xlabel("x (RD New, m)")
        ax.set_ylabel("y (RD New, m)")
        fig.tight_layout()
        out[f"{column}.png"] = fig
    return out
