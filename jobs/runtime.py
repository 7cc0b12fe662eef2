"""The one place that builds a SparkSession and points MLflow at its store.

Reads the ``spark`` section of the settings and the environment (``MLFLOW_TRACKING_URI``,
``SPARK_HOME`` under spark-submit); writes nothing. ``local[*]`` is the default master; under
``spark-submit`` the session already exists with the submit flags, and the master, driver memory
and other JVM settings from ``conf/`` do not apply (the driver JVM is already running). SQL
settings (shuffle partitions, ANSI mode) still apply in both cases.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from zicht.features.settings import SparkSettings

log = logging.getLogger("zicht")


def build_spark(settings: SparkSettings, app_name: str = "zicht") -> SparkSession:
    # Spark's Python workers must run this interpreter (the venv's), else they start the system
    # python3, which lacks pandas and the zicht package.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        # A notebook's or a test's session: use it as it is configured.
        return active
    # Under spark-submit the JVM starts first and hands Python its gateway: the submit flags
    # rule for master and memory, since the driver JVM already runs.
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName(app_name)
    if not under_submit:
        builder = (
            builder.master(settings.master)
            .config("spark.driver.memory", settings.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
    spark = builder.getOrCreate()
    conf = {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        # ANSI stays on (Spark 4 default): readers use try_cast, so one bad value becomes a
        # reject row instead of killing the job, and arithmetic errors still surface.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **{str(k): str(v) for k, v in settings.extra.items()},
    }
    for k, v in conf.items():
        spark.conf.set(k, v)
    spark.sparkContext.setLogLevel("WARN")
    return spark


def mlflow_tracking_uri(output_dir: str | Path) -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store beside the output folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    parent = Path(output_dir).resolve().parent
    return f"sqlite:///{parent / 'mlflow.db'}"
