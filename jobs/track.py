"""MLflow logging of the area-model stage (jobs/ is the only place that calls MLflow).

Reads an :class:`~zicht.models.typology.AreaModelResult` (and, when given, the manifest's input
accounting); writes, into the already active MLflow run:

- dataset inputs (``mlflow.data``): the area features the models were fitted on
  (``area_features``, a ``PandasDataset`` whose digest MLflow computes from the rows, context
  ``training``) and each contract input table (``input_<table>``, a metadata-only dataset whose
  digest is the first 32 hex digits of the manifest's sha256, the full hash in the input tag
  ``sha256``, context ``source``);
- metrics: silhouettes, BIC, stability ARI, anomaly share, hot-spot counts, stage timings;
- artifacts under ``area_models/``: ``profiles.csv`` (types in plain words), ``candidates.csv``
  (the comparison), ``anomaly_importance.csv`` and ``.png``, ``feature_columns.txt``, PNG maps
  of the types (``clusters.png``) and of each phenomenon's Gi* z (``hotspot_z_<P>.png``);
- one nested run per typology candidate (params and metrics, tag ``zicht.chosen``);
- the chosen typology pipeline as the model ``area_typology`` (MLflow 3: ``name=``) with its
  signature (float64 columns in, the type number out) and an area-level input example,
  registered under ``registered_model_name`` unless that is null, the new version under the
  alias ``candidate`` (:mod:`zicht.jobs.tracking`);
  ``mlflow.pyfunc.load_model("models:/<name>@champion").predict(frame)`` scores new areas with
  the version a researcher promoted.

The maps, the input example and the dataset profile show buurt-level values: they belong in the
MLflow store inside the secure environment, like ``restricted/``, never in a store partners can
read.
"""

from __future__ import annotations

import importlib.metadata
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cloudpickle
import matplotlib
import mlflow
import mlflow.data
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

import zicht.models.typology as typology_module
from zicht.jobs import catalog, tracking
from zicht.jobs import fs as fsmod
from zicht.models.typology import AreaModelResult

MODEL_NAME = "area_typology"
ARTIFACT_DIR = "area_models"
DIGEST_CHARS = 32  # MLflow stores at most 36 characters of a dataset digest

# What the pickled pipeline needs at load time. Pinned to the versions that fitted it: a pickle is
# only guaranteed to load under the same scikit-learn. Passing the list also saves MLflow ~9 s of
# requirement inference.
_MODEL_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")
CANDIDATE_PARAMS = ("algorithm", "n_clusters", "min_cluster_size")
CANDIDATE_METRICS = ("silhouette", "bootstrap_ari", "bic", "noise_share", "n_types", "fit_seconds")


def model_pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in _MODEL_PACKAGES]


def _finite(metrics: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    finite, undefined = {}, []
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            finite[k] = f
        else:
            undefined.append(k)
    return finite, sorted(undefined)


def log_metrics_safely(metrics: Mapping[str, Any], *, tag: str) -> None:
    """Log the finite metrics; name the undefined ones (NaN) in a tag instead."""
    finite, undefined = _finite(metrics)
    mlflow.log_metrics(finite)
    if undefined:
        # MLflow stores NaN poorly across backends; say which metrics were undefined instead
        mlflow.set_tag(tag, ",".join(undefined))


def log_candidate_runs(candidates: pd.DataFrame, *, parent_tags: Mapping[str, str]) -> list[str]:
    """One nested run per candidate row (params and metrics); returns the nested run ids."""
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("candidate runs nest under an active MLflow run")
    ids = []
    for row in candidates.to_dict("records"):
        with mlflow.start_run(
            run_name=str(row["candidate"]),
            nested=True,
            # the parent's experiment, not the default one
            experiment_id=parent.info.experiment_id,
            parent_run_id=parent.info.run_id,
        ) as child:
            mlflow.log_params({k: row[k] for k in CANDIDATE_PARAMS if k in row})
            log_metrics_safely(
                {k: row[k] for k in CANDIDATE_METRICS if k in row},
                tag="zicht.undefined_metrics",
            )
            mlflow.set_tags({**parent_tags, "zicht.chosen": str(bool(row.get("is_chosen")))})
            ids.append(child.info.run_id)
    return ids


def log_input_tables(inputs: Mapping[str, Mapping[str, Any]], input_dir: str | None) -> None:
    """The contract input tables as metadata-only datasets, digest from the manifest's sha256."""
    datasets, contexts, tags = [], [], []
    for table, acc in sorted(inputs.items()):
        sha = acc.get("sha256")
        if not sha:
            continue
        where = str(Path(input_dir) / table) if input_dir else table
        source = resolve_dataset_source(str(Path(where).resolve()))
        datasets.append(
            MetaDataset(source=source, name=f"input_{table}", digest=sha[:DIGEST_CHARS])
        )
        contexts.append("source")
        tags.append({"sha256": str(sha), "rows_read": str(acc.get("rows_read", ""))})
    if datasets:
        mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=tags)


def log_features_dataset(features: pd.DataFrame, source: str | None) -> None:
    """The area features as a PandasDataset (MLflow computes the digest from the rows)."""
    # a location string (path or URI): Path() would collapse viewfs:// or s3a:// to one slash
    where = fsmod.normalize(source) if source else catalog.get("area_features").location
    dataset = mlflow.data.from_pandas(features, source=where, name="area_features")
    with warnings.catch_warnings():
        # MLflow infers the dataset's schema with the code it uses for model signatures and
        # warns that integer columns (year, counts) cannot hold missing values at inference.
        # This schema only describes the rows logged; the model reads them as float64 and its
        # own signature has no integer column.
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
        )
        mlflow.log_input(dataset, context="training")


def log_typology_model(result: AreaModelResult, *, registered_model_name: str | None) -> ModelInfo:
    """The chosen typology pipeline with signature and input example; registered (the new
    version under the alias ``candidate``) when ``registered_model_name`` is given."""
    predictions = result.model.predict(result.input_example)
    signature = infer_signature(result.input_example, predictions)
    # The pipeline holds zicht classes; pickling the module by value makes the model load where
    # zicht is not installed (a scoring service needs only the pip requirements).
    cloudpickle.register_pickle_by_value(typology_module)
    try:
        info = mlflow.sklearn.log_model(
            result.model,
            name=MODEL_NAME,
            signature=signature,
            input_example=result.input_example,
            pip_requirements=model_pip_requirements(),
            # skops (the default) refuses the tree models sklearn pipelines often hold, and cannot
            # store our own classes; cloudpickle can.
            serialization_format="cloudpickle",
            registered_model_name=registered_model_name or None,
        )
    finally:
        cloudpickle.unregister_pickle_by_value(typology_module)
    if registered_model_name and info.registered_model_version is not None:
        version = str(info.registered_model_version)
        tracking.mark_candidate(registered_model_name, version)
        mlflow.set_tag("zicht.model_version", f"{registered_model_name}/{version}")
    return info


def log_area_models(
    result: AreaModelResult,
    *,
    registered_model_name: str | None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    input_dir: str | None = None,
    features_source: str | None = None,
) -> ModelInfo:
    """Log the area models into the active MLflow run; register the model when a name is given.

    ``inputs`` is the manifest's ``inputs`` (per table ``sha256`` and ``rows_read``) and
    ``input_dir`` the folder they were read from; ``features_source`` is the path of
    ``restricted/area_features.parquet``.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_area_models needs an active MLflow run (mlflow.start_run())")

    if not result.features.empty:
        log_features_dataset(result.features, features_source)
    if inputs:
        log_input_tables(inputs, input_dir)

    log_metrics_safely(result.metrics, tag="area_models.undefined_metrics")
    mlflow.set_tags(
        {"area_models.chosen": result.chosen, "area_models.spatial_weights": result.weights}
    )

    mlflow.log_text(result.profiles.to_csv(index=False), f"{ARTIFACT_DIR}/profiles.csv")
    mlflow.log_text(result.candidates.to_csv(index=False), f"{ARTIFACT_DIR}/candidates.csv")
    mlflow.log_text(
        result.anomaly_importance.to_csv(index=False), f"{ARTIFACT_DIR}/anomaly_importance.csv"
    )
    mlflow.log_text("\n".join(result.feature_columns) + "\n", f"{ARTIFACT_DIR}/feature_columns.txt")

    for filename, fig in _figures(result):
        mlflow.log_figure(fig, f"{ARTIFACT_DIR}/{filename}")

    if not result.candidates.empty:
        log_candidate_runs(result.candidates, parent_tags={"zicht.stage": "area_models"})
    return log_typology_model(result, registered_model_name=registered_model_name)


# --------------------------------------------------------------------------- figures


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure outside pyplot: no backend switch, nothing to close, headless-safe, and a
    notebook that imports zicht keeps its own inline backend."""
    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def _figures(result: AreaModelResult) -> Iterable[tuple[str, Figure]]:
    """Maps of the last year (types, Gi* z per phenomenon) and the anomaly importance chart."""
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

    fig, ax = _figure(7, 8)
    clusters = sorted(last["cluster"].unique())
    cmap = matplotlib.colormaps["tab10" if len(clusters) <= 10 else "tab20"]
    for i, c in enumerate(clusters):
        part = last[last["cluster"] == c]
        label = f"type {c}" if c >= 0 else "no type"
        color = "lightgrey" if c < 0 else cmap(i % cmap.N)
        ax.scatter(part["x"], part["y"], s=size, color=color, label=label, lw=0)
    _axes(ax, f"Area typology ({result.chosen}), {year} (buurt centroids)")
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    yield "clusters.png", fig

    for column in [c for c in result.typology.columns if c.startswith("hotspot_z_")]:
        phenomenon = column.removeprefix("hotspot_z_")
        fig, ax = _figure(7, 8)
        points = ax.scatter(
            last["x"], last["y"], c=last[column], s=size, cmap="RdBu_r", vmin=-3, vmax=3, lw=0
        )
        fig.colorbar(points, ax=ax, label="Gi* z (clipped at ±3)")
        q = f"hotspot_q_{phenomenon}"
        if q in last:
            hot = last[(last[q] <= 0.05) & (last[column] > 0)]
            ax.scatter(hot["x"], hot["y"], s=size * 2, facecolors="none", edgecolors="k", lw=0.6)
        _axes(ax, f"Hot spots, {phenomenon}, {year} (ringed: FDR-significant)")
        fig.tight_layout()
        yield f"{column}.png", fig

    imp = result.anomaly_importance.head(20)
    if not imp.empty:
        fig, ax = _figure(7, 0.3 * len(imp) + 1.5)
        ax.barh(imp["feature"][::-1], imp["importance"][::-1], color="tab:purple")
        ax.set_xlabel("mean drop of the flagged areas' anomaly score when the feature is shuffled")
        ax.set_title("What makes an area unusual (isolation forest)")
        fig.tight_layout()
        yield "anomaly_importance.png", fig


def _axes(ax: Any, title: str) -> None:
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("x (RD New, m)")
    ax.set_ylabel("y (RD New, m)")
