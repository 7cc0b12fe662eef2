"""The one place that builds a SparkSession and points MLflow at its store.

Reads the ``spark`` section of the settings and the environment (``MLFLOW_TRACKING_URI``,
``SPARK_HOME`` under spark-submit); writes nothing. ``local[*]`` is the default master; under
``spark-submit`` the session already exists with the submit flags, and the master, driver memory
and other JVM settings from ``conf/`` do not apply (the driver JVM is already running). SQL
settings (shuffle partitions, ANSI mode) still apply in both cases.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyspark.sql import SparkSession

from zicht.features.settings import SparkSettings

log = logging.getLogger("zicht")
T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
HANDLER_NAME = "zicht-stderr"  # the handler configure_logging installs once


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` and ``-q/--quiet`` as ``args.verbosity`` (1, -1; 0 without either)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=0,
        help="debug messages from zicht, and Spark's own INFO log",
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        help="warnings and errors only (no stage progress)",
    )


def configure_logging(verbosity: int = 0) -> int:
    """Log zicht's messages to stderr: stage progress (INFO) by default, DEBUG when
    ``verbosity > 0``, warnings only when ``verbosity < 0``; returns the level set.

    Only the ``zicht`` logger changes level: other libraries (py4j, MLflow, urllib3) stay at
    the root logger's level (WARNING unless the caller set another). The Spark session that
    :func:`build_spark` starts afterwards follows: Spark's INFO log when zicht logs DEBUG, else
    WARN. Calling it again changes the level and adds no second handler.
    """
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    root = logging.getLogger()
    if not any(h.get_name() == HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(HANDLER_NAME)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    log.setLevel(level)
    return level


def spark_log_level() -> str:
    """Spark's console log level for a session zicht starts: INFO when zicht logs DEBUG
    (``--verbose``), else WARN (Spark's own noise stays off)."""
    return "INFO" if log.isEnabledFor(logging.DEBUG) else "WARN"


def add_ui_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ui",
        action="store_true",
        help="serve Spark's UI while the job runs, on 127.0.0.1 only (port 4040 or the next free)",
    )


def build_spark(
    settings: SparkSettings, app_name: str = "zicht", *, ui: bool = False
) -> SparkSession:
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
        if ui:
            # Spark's web UI binds to SPARK_LOCAL_IP (else every interface): loopback only,
            # since its pages show query plans and sample values of person-level tables
            os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        builder = (
            builder.master(settings.master)
            .config("spark.driver.memory", settings.driver_memory)
            .config("spark.ui.enabled", "true" if ui else "false")
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
    spark.sparkContext.setLogLevel(spark_log_level())
    return spark


def mlflow_tracking_uri(output_dir: str | Path) -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store beside the output folder."""
    from zicht.jobs.tracking import tracking_uri

    return tracking_uri(str(output_dir))


def exit_code(exc: BaseException) -> int | None:
    """The exit code of a handled failure (CONTRACT.md section 4), None for an internal error.

    2 usage or configuration; 3 input or output refused; 4 refused by a privacy guard.
    """
    from zicht.features.settings import ConfigError
    from zicht.jobs.context import PrivacyRefusal
    from zicht.jobs.io import ForbiddenColumn, InputError
    from zicht.jobs.outputs import OutputRefused
    from zicht.jobs.tracking import TrackingError

    if isinstance(exc, (PrivacyRefusal, ForbiddenColumn)):
        return 4
    if isinstance(exc, (InputError, OutputRefused)):
        return 3
    if isinstance(exc, (ConfigError, TrackingError)):
        return 2
    return None


def handled(prog: str, work: Callable[[], T]) -> T | int:
    """``work()``, or the exit code of a handled failure with its one-line message on stderr
    (an internal error propagates: Python exits 1 with its traceback)."""
    try:
        return work()
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        print(f"{prog}: {exc}", file=sys.stderr)
        return code
