"""One pipeline stage as a Spark job on an output folder: ``zicht ingest``, ``zicht network
build``, ``zicht indicators``, ``zicht models`` (and ``zicht export --from``).

The stages are the functions ``zicht run`` chains (``zicht.jobs.pipeline``); a stage job reads
the previous stage's hand-over from ``OUTPUT/restricted/stage/`` and ``OUTPUT/restricted/``,
writes its own outputs in place and updates ``OUTPUT/manifest.json`` (outputs, timings,
skipped). Unlike ``zicht run`` there is no swap-in of a finished folder: an analyst runs the
stages one after another, or reruns a later one with other settings. ``restricted/stage/``
holds person-level intermediate tables and stays inside the secure environment like all of
``restricted/``; ``zicht run`` never keeps it. Each stage job is its own MLflow run, tagged with
the run id of its ingest (``zicht.run_id``) and the stage (``zicht.stage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zicht.features.settings import ConfigError, Settings
from zicht.jobs.io import InputError
from zicht.jobs.outputs import OutputRefused, require_zicht_output, write_marker
from zicht.jobs.runtime import add_verbosity_flags, configure_logging
from zicht.jobs.stages import PipelineError, use_mlflow

STAGES = ("ingest", "network", "indicators", "models")


def parse_args(name: str, argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=f"zicht {'network build' if name == 'network' else name}",
        description=f"The {name} stage of the pipeline alone, on an output folder.",
    )
    if name == "ingest":
        p.add_argument("--input", required=True, help="input folder in contract form")
        p.add_argument("--output", required=True, help="output folder to start")
        p.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    else:
        p.add_argument("--from", dest="output", required=True, help="output folder of ingest")
    p.add_argument("--conf", default=None, help="YAML overlay on the committed defaults")
    add_verbosity_flags(p)
    return p.parse_args(argv)


def _stage_dir(output: Path) -> Path:
    return output / "restricted" / "stage"


def run_stage(name: str, spark: Any, settings: Settings, args: argparse.Namespace) -> Path:
    """Run stage ``name`` on ``args.output``; returns the manifest's path."""
    import mlflow

    from zicht.jobs import pipeline as pl
    from zicht.jobs.run import _check_paths, _version, manifest_body

    output = Path(args.output).resolve()
    stage_dir = _stage_dir(output)
    manifest_path = output / "manifest.json"
    timings: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    if name == "ingest":
        input_dir = Path(args.input)
        _check_paths(input_dir, output)
        run_id = uuid.uuid4().hex
        (output / "restricted").mkdir(parents=True, exist_ok=True)
        (output / "export").mkdir(parents=True, exist_ok=True)
        write_marker(output, run_id=run_id, version=_version())
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "started": dt.datetime.now(dt.UTC).isoformat(),
            "zicht_version": _version(),
            "config": settings.to_jsonable(),
            "stages": {},
        }
    else:
        require_zicht_output(output)
        if not (stage_dir / pl.STATE).exists():
            raise InputError(f"--from {output}: no {stage_dir / pl.STATE}; run zicht ingest first")
        manifest = json.loads(manifest_path.read_text())
    use_mlflow(settings.mlflow.experiment, output)
    with mlflow.start_run(run_name=f"zicht-{name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"):
        mlflow.set_tags({"zicht.run_id": manifest["run_id"], "zicht.stage": name})
        skipped = dict(manifest.get("skipped_stages", {}))
        if name == "ingest":
            linked = pl.ingest(
                spark,
                settings,
                Path(args.input),
                output,
                stage_dir,
                run_date=dt.date.today(),
                timings=timings,
                outputs=outputs,
            )
            manifest |= manifest_body(linked, {}, skipped, manifest.get("outputs", {}))
        elif name == "network":
            linked = pl.load_linked(spark, stage_dir)
            pl.network(
                spark,
                settings,
                linked,
                output,
                stage_dir,
                timings=timings,
                outputs=outputs,
                skipped_stages=skipped,
            )
        elif name == "indicators":
            linked = pl.load_linked(spark, stage_dir)
            counts = pl.load_network_counts(spark, stage_dir)
            ind = pl.indicators(
                spark, settings, linked, counts, output, stage_dir, timings=timings, outputs=outputs
            )
            manifest["skipped_indicators"] = ind.skipped
        elif name == "models":
            import pandas as pd

            features = pd.read_parquet(output / "restricted/area_features.parquet")
            areas = spark.read.parquet(str(output / "restricted/areas.parquet"))
            skipped_ind = manifest.get("skipped_indicators", {})
            live = [s for s in settings.indicators if s.key not in skipped_ind]
            result = pl.area_models(
                spark,
                settings,
                features,
                areas,
                live,
                output,
                timings=timings,
                outputs=outputs,
                skipped_stages=skipped,
            )
            if result is not None:
                from zicht.jobs.track import log_area_models

                log_area_models(
                    result,
                    registered_model_name=settings.model.registered_model_name,
                    inputs=manifest.get("inputs"),
                    input_dir=manifest.get("input_dir"),
                    features_source=str(output / "restricted/area_features.parquet"),
                )
        mlflow.log_metrics({f"time_{k}_s": v for k, v in timings.items()})
        manifest["skipped_stages"] = skipped
        manifest["outputs"] = {**manifest.get("outputs", {}), **outputs}
        manifest["timings_s"] = {**manifest.get("timings_s", {}), **timings}
        manifest.setdefault("stages", {})[name] = dt.datetime.now(dt.UTC).isoformat()
        manifest["finished"] = dt.datetime.now(dt.UTC).isoformat()
        tmp = output / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        tmp.replace(manifest_path)
        mlflow.log_artifact(str(manifest_path))
    return manifest_path


def main(name: str, argv: Sequence[str] | None = None) -> int:
    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    args = parse_args(name, sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbosity)
    try:
        overrides: dict[str, Any] = (
            {"validation": {"strict": True}} if getattr(args, "strict", False) else {}
        )
        settings = load_settings(args.conf, **overrides)
    except ConfigError as exc:
        print(f"zicht {name}: {exc}", file=sys.stderr)
        return 2
    spark = build_spark(settings.spark, app_name=f"zicht-{name}")
    try:
        path = run_stage(name, spark, settings, args)
    except OutputRefused as exc:
        print(f"zicht {name}: {exc}", file=sys.stderr)
        return 3
    except (InputError, PipelineError, FileNotFoundError) as exc:
        print(f"zicht {name}: {exc}", file=sys.stderr)
        return 2
    print(f"zicht {name} finished; manifest {path}")
    return 0
