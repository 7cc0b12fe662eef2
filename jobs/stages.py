"""What every stage job shares: timing a stage, writing a restricted table, hashing an output.

``zicht run`` chains the stages in one application; a stage job (``zicht export --from``) runs
one of them on an existing output folder. Both record outputs the same way, so the manifest
reads the same whichever ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from zicht.jobs.io import file_sha256

log = logging.getLogger("zicht")


class PipelineError(Exception):
    """A stage found a condition that must stop the run (e.g. a failing disclosure audit)."""


@contextmanager
def stage(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    log.info("stage %s ...", name)
    yield
    timings[name] = round(time.perf_counter() - t0, 3)
    log.info("stage %s done in %.1f s", name, timings[name])


def write_parquet(df: DataFrame, path: Path) -> None:
    df.write.mode("overwrite").parquet(str(path))


def hash_output(root: Path, rel: str, rows: int) -> dict[str, Any]:
    return {"rows": rows, "sha256": file_sha256(str(root / rel))}


def use_mlflow(experiment: str, output_dir: Path) -> None:
    """Point MLflow at the run's store and experiment, creating the experiment with its
    artifacts beside the store (inside the secure environment, like ``restricted/``)."""
    import mlflow

    from zicht.jobs.runtime import mlflow_tracking_uri

    mlflow.set_tracking_uri(mlflow_tracking_uri(output_dir))
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = (output_dir.resolve().parent / "mlruns").as_uri()
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment)
