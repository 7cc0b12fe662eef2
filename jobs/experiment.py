"""``zicht experiment``: sweep a grid of area-typology candidates, one nested MLflow run each.

For researchers who want to compare typologies beyond the pipeline's default three candidates.

Reads the configuration (``conf/`` + ``--conf``: the grid in ``experiment``, the preprocessing
and seed in ``model``, the indicator catalogue for the rate smoothing) and ``--features``, the
``restricted/area_features.parquet`` of a ``zicht run`` (a file or a folder of parts). Writes
nothing but MLflow runs (in ``MLFLOW_TRACKING_URI``, else the SQLite store beside the run's
output folder, as ``zicht run`` does): a parent run with the grid as params, the features as a
dataset input, the comparison as ``experiment/candidates.csv``, and one nested run per
candidate; the comparison table also goes to stdout.

No Spark: the features are one row per buurt and year (about 14k buurten nationally), small by
construction, so pandas reads them and scikit-learn fits on the driver (``zicht.models.typology``
explains the candidates and the criterion: silhouette on the same scaled space, with resample
stability).

    zicht experiment --conf grid.yaml --features OUT/restricted/area_features.parquet

with ``grid.yaml`` like::

    experiment: {n_clusters: [4, 6, 8], algorithms: [kmeans, gmm, hdbscan], min_cluster_sizes: [0, 50]}

``--promote VERSION`` instead moves the alias ``champion`` of the registered typology model
(``model.registered_model_name``) to that version, in the store beside ``--output`` (or
``MLFLOW_TRACKING_URI``), so ``models:/zicht-area-typology@champion`` loads it; each run's own
version carries the alias ``candidate``::

    zicht experiment --promote 3 --output OUT
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from zicht.features.settings import ConfigError, ExperimentSettings, Settings
from zicht.jobs import catalog
from zicht.jobs.config import load_settings
from zicht.jobs.runtime import add_verbosity_flags, configure_logging
from zicht.models.typology import (
    TypologySpec,
    candidate_table,
    choose_candidate,
    evaluate_candidates,
    prepare_area_features,
    rate_parts_from_catalogue,
)

TABLE_COLUMNS = [
    "candidate",
    "n_types",
    "silhouette",
    "bootstrap_ari",
    "bic",
    "noise_share",
    "fit_seconds",
    "is_chosen",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="zicht experiment",
        description="Sweep typology candidates over the area features; one MLflow run each.",
    )
    p.add_argument("--conf", default=None, help="YAML overlay with an `experiment:` grid")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--features",
        help=f"{catalog.get('area_features').location} of a zicht run",
    )
    what.add_argument(
        "--promote",
        metavar="VERSION",
        help="move the alias champion of the registered typology model to this version",
    )
    p.add_argument(
        "--output",
        default=None,
        help="with --promote: the output folder of a zicht run, whose MLflow store is beside it "
        "(default: MLFLOW_TRACKING_URI)",
    )
    add_verbosity_flags(p)
    args = p.parse_args(argv)
    if args.promote is not None and not args.promote.isdigit():
        p.error(f"--promote {args.promote}: a version is a whole number (1, 2, ...)")
    if args.output is not None and args.promote is None:
        p.error("--output goes with --promote (a sweep's store is beside its --features)")
    return args


def build_grid(grid: ExperimentSettings) -> list[TypologySpec]:
    """k-means and mixture per ``n_clusters``, HDBSCAN per ``min_cluster_sizes``."""
    specs: list[TypologySpec] = []
    for algorithm in grid.algorithms:
        if algorithm == "hdbscan":
            specs += [TypologySpec("hdbscan", min_cluster_size=m) for m in grid.min_cluster_sizes]
        else:
            specs += [TypologySpec(algorithm, n_clusters=k) for k in grid.n_clusters]
    return specs


def compare(features: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Fit and score every candidate of the grid on the same scaled space; the comparison."""
    prepared = prepare_area_features(
        features,
        settings=settings.model,
        rate_parts=rate_parts_from_catalogue(settings.indicators),
    )
    # one native thread: the same results on every machine (see fit_area_models)
    with threadpool_limits(limits=1):
        candidates = evaluate_candidates(
            prepared.Z,
            build_grid(settings.experiment),
            seed=settings.model.seed,
            stability=settings.experiment.stability,
        )
    best = choose_candidate(candidates)
    return candidate_table(candidates, best.spec.name)


def _store_dir(features: Path) -> Path:
    """The run's output folder (features live in OUT/restricted/), whose parent holds the store."""
    parent = features.resolve().parent
    return parent.parent if parent.name == "restricted" else parent


def promote(settings: Settings, version: str, output: str | None) -> int:
    """``--promote``: point ``champion`` at ``version``; 2 when the store does not have it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from zicht.jobs.tracking import CHAMPION, TrackingError, tracking_uri
    from zicht.jobs.tracking import promote as move_champion

    name = settings.model.registered_model_name
    if not name:
        print(
            "zicht experiment: model.registered_model_name is null: no model is registered",
            file=sys.stderr,
        )
        return 2
    if output is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        print(
            "zicht experiment: --promote needs --output OUT (the store beside it) or "
            "MLFLOW_TRACKING_URI",
            file=sys.stderr,
        )
        return 2
    try:
        mlflow.set_tracking_uri(tracking_uri(output or ""))
        before = move_champion(name, version)
    except (MlflowException, TrackingError) as exc:
        print(f"zicht experiment: --promote {version}: {exc}", file=sys.stderr)
        return 2
    was = f"was version {before}" if before else "no champion before"
    print(f"{name}: {CHAMPION} -> version {version} ({was}; {mlflow.get_tracking_uri()})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbosity)
    try:
        settings = load_settings(args.conf)
    except ConfigError as exc:
        print(f"zicht experiment: {exc}", file=sys.stderr)
        return 2
    if args.promote is not None:
        return promote(settings, args.promote, args.output)
    features_path = Path(args.features)
    if not features_path.exists():
        print(f"zicht experiment: --features {features_path}: no such file", file=sys.stderr)
        return 2
    if not build_grid(settings.experiment):
        print("zicht experiment: the grid is empty (experiment.algorithms)", file=sys.stderr)
        return 2
    features = pd.read_parquet(features_path)

    import mlflow

    from zicht.jobs.track import log_candidate_runs, log_features_dataset, log_metrics_safely
    from zicht.jobs.tracking import use_experiment

    # the store and experiment of the run the features come from (artifacts beside the store,
    # inside the secure environment like restricted/)
    use_experiment(settings.mlflow.experiment, str(_store_dir(features_path)))
    started = dt.datetime.now(dt.UTC)
    try:
        with mlflow.start_run(run_name=f"zicht-experiment-{started:%Y%m%dT%H%M%S}") as run:
            mlflow.set_tags({"zicht.kind": "experiment", "zicht.features": str(features_path)})
            params = {
                k: v
                for k, v in settings.to_flat_params().items()
                if k.startswith(("experiment.", "model."))
            }
            mlflow.log_params({k: v[:500] for k, v in params.items()})
            log_features_dataset(features, str(features_path))
            table = compare(features, settings)
            log_candidate_runs(table, parent_tags={"zicht.kind": "experiment"})
            mlflow.log_text(table.to_csv(index=False), "experiment/candidates.csv")
            chosen = table[table["is_chosen"]].iloc[0]
            mlflow.set_tag("zicht.best_candidate", str(chosen["candidate"]))
            log_metrics_safely(
                {
                    "best_silhouette": chosen["silhouette"],
                    "best_bootstrap_ari": chosen["bootstrap_ari"],
                    "n_candidates": len(table),
                },
                tag="zicht.undefined_metrics",
            )
    except ValueError as exc:  # nothing varies between the areas, bad feature columns
        print(f"zicht experiment: {exc}", file=sys.stderr)
        return 2
    shown = table.sort_values("silhouette", ascending=False, na_position="last")[TABLE_COLUMNS]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"best by silhouette: {chosen['candidate']}  (MLflow run {run.info.run_id} in "
        f"{mlflow.get_tracking_uri()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
