"""``zicht run``: the whole pipeline in one Spark application, tracked as one MLflow run.

Reads the contract's input folder (``--input``) and the configuration (``conf/`` + ``--conf``).
Writes the contract's output folder (``--output``): ``restricted/`` (indicators, area
features, typology, network members, communities, disclosure audit, rejects), ``export/``
(partner tables per level, codebook, disclosure report) and ``manifest.json``. Everything is
written into a temporary sibling folder first and swapped in only when every stage succeeded,
so a failed or killed run leaves the previous output as it was.

Also runs under spark-submit with the same code::

    spark-submit --master spark://host:7077 --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        jobs/run.py --input DIR --output DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from zicht.features.settings import ConfigError, Settings
from zicht.jobs.config import load_settings
from zicht.jobs.export import disclosure_metrics
from zicht.jobs.io import InputError
from zicht.jobs.outputs import OutputRefused, check_output, write_marker
from zicht.jobs.runtime import (
    add_verbosity_flags,
    build_spark,
    configure_logging,
    mlflow_tracking_uri,
)
from zicht.jobs.stages import PipelineError, use_mlflow

log = logging.getLogger("zicht")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="zicht run", description="Run the whole zicht pipeline.")
    p.add_argument("--input", required=True, help="input folder in contract form")
    p.add_argument("--output", required=True, help="output folder (replaced when the run succeeds)")
    p.add_argument("--conf", default=None, help="YAML overlay on the committed defaults")
    p.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    add_verbosity_flags(p)
    return p.parse_args(argv)


def _check_paths(input_dir: Path, output_dir: Path) -> None:
    if not input_dir.is_dir():
        raise InputError(f"--input {input_dir}: no such folder")
    check_output(output_dir, input_dir=input_dir)


def run_pipeline(
    spark: SparkSession,
    settings: Settings,
    input_dir: Path,
    work: Path,
    *,
    run_date: dt.date,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Run every stage (``zicht.jobs.pipeline``), writing into ``work``; returns the manifest's
    body (without ids)."""
    from zicht.jobs import pipeline as pl
    from zicht.jobs.export import REGISTER_NAME, publish

    outputs: dict[str, Any] = {}
    (work / "restricted").mkdir(parents=True)
    (work / "export").mkdir(parents=True)
    # Intermediate tables of this run (removed before the output is committed).
    stage_dir = work / "_stage"
    skipped_stages: dict[str, str] = {}

    linked = pl.ingest(
        spark,
        settings,
        input_dir,
        work,
        stage_dir,
        run_date=run_date,
        timings=timings,
        outputs=outputs,
    )
    counts = pl.network(
        spark,
        settings,
        linked,
        work,
        stage_dir,
        timings=timings,
        outputs=outputs,
        skipped_stages=skipped_stages,
    )
    ind = pl.indicators(
        spark, settings, linked, counts, work, stage_dir, timings=timings, outputs=outputs
    )
    model_result = pl.area_models(
        spark,
        settings,
        ind.features,
        ind.areas,
        ind.live_specs,
        work,
        timings=timings,
        outputs=outputs,
        skipped_stages=skipped_stages,
    )
    # The register sits beside the MLflow store (inside the secure environment).
    published_outputs, report = publish(
        spark,
        settings,
        cells=ind.cells,
        areas=ind.areas,
        specs=ind.live_specs,
        contributors=ind.contributors,
        input_dir=input_dir,
        accounting=linked.v.accounting,
        work=work,
        register=work.parent / REGISTER_NAME,
        release_id=work.name.rsplit("-", 1)[-1],
        timings=timings,
    )
    outputs.update(published_outputs)
    return {**manifest_body(linked, ind.skipped, skipped_stages, outputs),
            "_model_result": model_result, "_report": report, "_n_cells": ind.n_cells}  # fmt: skip


def manifest_body(
    linked: Any,
    skipped_indicators: dict[str, str],
    skipped_stages: dict[str, str],
    outputs: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's account of a run (everything but ids, times and config)."""
    v = linked.v
    return {
        "period": {
            "years": list(v.years),
            "reference_date": v.reference_date.isoformat() if v.reference_date else None,
        },
        "persons_snapshots": (
            "per year (snapshot_year)"
            if v.persons_have_snapshots
            else "one snapshot serves every year"
        )
        if "persons" in v.accepted
        else "persons absent",
        "input_dir": str(Path(linked.input_dir).resolve()),
        "inputs": v.accounting,
        "extra_columns_dropped": {k: c for k, c in v.extra_columns.items() if c},
        "skipped_indicators": dict(skipped_indicators),
        "skipped_stages": skipped_stages,
        "outputs": outputs,
    }


def _commit(work: Path, output: Path, run_id: str) -> None:
    """Swap the finished work folder in; the previous output survives until then.

    The previous output is moved aside and deleted only when it carries zicht's marker
    (checked again here: the folder may have changed while the run worked); an empty folder
    is replaced by the work folder, anything else is refused and left as it was.
    """
    shutil.rmtree(work / "_stage", ignore_errors=True)
    write_marker(work, run_id=run_id, version=_version())
    check_output(output)
    old = output.parent / f".{output.name}.old-{run_id}"
    if output.exists():
        output.rename(old)
    work.rename(output)
    if old.exists():
        shutil.rmtree(old)


def run(
    spark: SparkSession, settings: Settings, input_dir: Path, output_dir: Path
) -> dict[str, Any]:
    """The pipeline as one MLflow run; returns the manifest written to OUTPUT/manifest.json."""
    import mlflow

    run_id = uuid.uuid4().hex
    started = dt.datetime.now(dt.UTC)
    output_dir = output_dir.resolve()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = output_dir.parent / f".{output_dir.name}.tmp-{run_id}"
    timings: dict[str, float] = {}

    use_mlflow(settings.mlflow.experiment, output_dir)

    with mlflow.start_run(run_name=f"zicht-run-{started:%Y%m%dT%H%M%S}") as mrun:
        try:
            params = settings.to_flat_params()
            # MLflow caps a param value at 6000 characters; long lists are truncated, the full
            # resolved configuration is in the manifest artifact
            mlflow.log_params({k: v[:500] for k, v in params.items()})
            mlflow.set_tags({"zicht.run_id": run_id, "zicht.input": str(input_dir)})
            body = run_pipeline(
                spark, settings, input_dir, work, run_date=started.date(), timings=timings
            )
            model_result = body.pop("_model_result")
            report = body.pop("_report")
            n_cells = body.pop("_n_cells")
            metrics: dict[str, float] = {f"time_{k}_s": v for k, v in timings.items()}
            for table, a in body["inputs"].items():
                for k in ("rows_read", "rows_used", "rows_rejected", "rows_excluded"):
                    metrics[f"{table}_{k}"] = float(a[k])
            metrics["indicator_cells"] = float(n_cells)
            metrics.update(disclosure_metrics(report))
            mlflow.log_metrics(metrics)
            if model_result is not None:
                from zicht.jobs.track import log_area_models

                log_area_models(
                    model_result,
                    registered_model_name=settings.model.registered_model_name,
                    inputs=body["inputs"],
                    input_dir=str(input_dir),
                    features_source=str(output_dir / "restricted/area_features.parquet"),
                )
            manifest = {
                "run_id": run_id,
                "mlflow_run_id": mrun.info.run_id,
                "started": started.isoformat(),
                "finished": dt.datetime.now(dt.UTC).isoformat(),
                "zicht_version": _version(),
                "config": settings.to_jsonable(),
                **body,
                "timings_s": timings,
            }
            (work / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
            mlflow.log_artifact(str(work / "manifest.json"))
            for name in ("community_summary.csv", "community_disruption.csv"):
                if (work / "restricted" / name).exists():  # the MLflow store is restricted too
                    mlflow.log_artifact(str(work / "restricted" / name), "network")
            mlflow.log_artifact(str(work / "export/codebook.csv"))
            mlflow.log_artifact(str(work / "export/disclosure_report.json"))
            _commit(work, output_dir, run_id)
            return manifest
        except BaseException:
            mlflow.set_tag("zicht.failed", "true")
            mlflow.end_run(status="FAILED")
            shutil.rmtree(work, ignore_errors=True)
            raise


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zicht")
    except PackageNotFoundError:  # pragma: no cover - running from an unpacked wheel on --py-files
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbosity)
    try:
        input_dir, output_dir = Path(args.input), Path(args.output)
        _check_paths(input_dir, output_dir)
        overrides: dict[str, Any] = {"validation": {"strict": True}} if args.strict else {}
        settings = load_settings(args.conf, **overrides)
    except OutputRefused as exc:
        print(f"zicht run: {exc}", file=sys.stderr)
        return 3
    except (InputError, ConfigError) as exc:
        print(f"zicht run: {exc}", file=sys.stderr)
        return 2
    spark = build_spark(settings.spark, app_name="zicht-run")
    try:
        manifest = run(spark, settings, input_dir, output_dir)
    except OutputRefused as exc:
        print(f"zicht run: {exc}", file=sys.stderr)
        return 3
    except (InputError, PipelineError) as exc:
        print(f"zicht run: {exc}", file=sys.stderr)
        return 2
    out = output_dir.resolve()
    print(f"zicht run {manifest['run_id']} finished")
    print(f"  partner tables : {out / 'export'}")
    print(f"  restricted     : {out / 'restricted'}")
    print(f"  manifest       : {out / 'manifest.json'}")
    print(f"  MLflow run     : {manifest['mlflow_run_id']} in {mlflow_tracking_uri(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
