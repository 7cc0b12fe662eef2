"""The one MLflow run of a command: params, tags, failure status, timings, artifacts.

:func:`tracked_run` owns the run from start to end; stages never call ``mlflow.start_run``.
Artifacts are logged from memory (``log_text``/``log_dict``), so an output on HDFS or an object
store needs no local copy. The store is ``MLFLOW_TRACKING_URI`` when set, else SQLite beside a
local output folder; a remote output without ``MLFLOW_TRACKING_URI`` is refused before any work
(a SQLite file cannot live on HDFS or S3). Like ``restricted/``, the store stays inside the
secure environment.

Conventions for the MLflow 3 UI and the model registry: the experiment carries the tag
``mlflow.experimentKind = custom_model_development``, so the UI opens it on its runs rather than
on the GenAI overview; each run's registered version of the typology model gets the alias
``candidate``, and :func:`promote` (``zicht experiment --promote VERSION``) moves ``champion``,
which ``models:/<name>@champion`` then loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zicht.jobs import fs as fsmod

PARAM_CHARS = 500  # MLflow caps a param at 6000 characters; the manifest has the whole config
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CANDIDATE = "candidate"  # alias of the version the latest run registered
CHAMPION = "champion"  # alias a researcher moves to the version in use


class TrackingError(Exception):
    """MLflow cannot be set up for this output (a usage error: exit code 2)."""


def tracking_uri(output: str) -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store beside a local output folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if not fsmod.is_local(output):
        raise TrackingError(
            f"--output {output} is not on a local disk, so the default MLflow store (SQLite "
            "beside the output) cannot be used: set MLFLOW_TRACKING_URI to the secure "
            "environment's tracking server"
        )
    parent = Path(
        fsmod.parent(fsmod.normalize(output)).removeprefix("file://").removeprefix("file:")
    )
    return f"sqlite:///{parent / 'mlflow.db'}"


def use_experiment(experiment: str, output: str) -> None:
    """Point MLflow at the store and experiment, creating the experiment with its artifacts
    beside a local store (inside the secure environment, like ``restricted/``)."""
    import mlflow

    uri = tracking_uri(output)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        artifacts = None
        if uri.startswith("sqlite:///"):
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
        mlflow.create_experiment(
            experiment,
            artifact_location=artifacts,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    elif EXPERIMENT_KIND_TAG not in found.tags:
        # made by an earlier zicht or by `mlflow experiments create`; a kind someone chose stays
        mlflow.MlflowClient().set_experiment_tag(
            found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
        )
    mlflow.set_experiment(experiment)


def mark_candidate(name: str, version: str) -> None:
    """Point the alias ``candidate`` of the registered model at the version a run registered."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, CANDIDATE, version)


def promote(name: str, version: str) -> str | None:
    """Point ``champion`` at ``version`` of the registered model (in the current tracking
    store); returns the version it pointed at before, None when there was none. Raises
    ``mlflow.exceptions.MlflowException`` for a model or version the store does not have."""
    import mlflow

    client = mlflow.MlflowClient()
    before = client.get_registered_model(name).aliases.get(CHAMPION)
    client.get_model_version(name, version)
    client.set_registered_model_alias(name, CHAMPION, version)
    return None if before is None else str(before)


class Tracker:
    """What a command logs into its active run (thin over ``mlflow``, from memory only)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def metrics(self, values: Mapping[str, float]) -> None:
        import mlflow

        if values:
            mlflow.log_metrics({k: float(v) for k, v in values.items()})

    def tags(self, values: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(values))

    def text(self, text: str, artifact: str) -> None:
        import mlflow

        mlflow.log_text(text, artifact)

    def json(self, body: Any, artifact: str) -> None:
        self.text(json.dumps(body, indent=2, default=str), artifact)


@contextmanager
def tracked_run(
    *,
    experiment: str,
    output: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> Iterator[Tracker]:
    """One MLflow run around a command's work; FAILED (tag ``zicht.failed``) on any error."""
    import mlflow

    use_experiment(experiment, output)
    with mlflow.start_run(run_name=run_name) as mrun:
        try:
            if params:
                mlflow.log_params({k: v[:PARAM_CHARS] for k, v in params.items()})
            mlflow.set_tags(dict(tags))
            yield Tracker(mrun.info.run_id)
        except BaseException:
            mlflow.set_tag("zicht.failed", "true")
            mlflow.end_run(status="FAILED")
            raise


def mark_killed(output: str, run_id: str | None) -> bool:
    """Mark the MLflow run of a process that died holding the output's lease as KILLED (it
    stays RUNNING otherwise); returns whether a run was marked."""
    if not run_id:
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(output))
    try:
        status = client.get_run(run_id).info.status
    except Exception:  # a run in another store, or already gone: nothing to mark
        return False
    if status != "RUNNING":
        return False
    client.set_terminated(run_id, status="KILLED")
    client.set_tag(run_id, "zicht.killed", "the process died; found by the next run")
    return True
