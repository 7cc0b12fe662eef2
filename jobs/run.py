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

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.indicators import Sources, build_indicators, locate_signals
from zicht.features.link import build_residence, locate_incidents
from zicht.features.settings import ConfigError, Settings
from zicht.jobs.config import load_settings
from zicht.jobs.export import disclosure_metrics
from zicht.jobs.io import InputError
from zicht.jobs.runtime import (
    add_verbosity_flags,
    build_spark,
    configure_logging,
    mlflow_tracking_uri,
)
from zicht.jobs.stages import PipelineError, hash_output, stage, use_mlflow, write_parquet
from zicht.jobs.validate_inputs import Validated, materialize, validate_inputs

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
    if (
        output_dir.exists()
        and any(output_dir.iterdir())
        and not (output_dir / "manifest.json").exists()
    ):
        raise InputError(
            f"--output {output_dir}: exists, is not empty and is not a zicht output "
            "(no manifest.json); choose an empty or new folder"
        )
    if (
        output_dir.resolve() == input_dir.resolve()
        or input_dir.resolve() in output_dir.resolve().parents
    ):
        raise InputError("--output must not be the input folder or inside it")


def _geometry_by_buurt(areas: DataFrame) -> dict[str, str] | None:
    """buurt_code -> geometry_wkt on the driver (one polygon per buurt: ~14k nationally), or
    None when the areas table carries no polygons (hot spots then use nearest centroids)."""
    if "geometry_wkt" not in areas.columns:
        return None
    rows = areas.where(F.col("geometry_wkt").isNotNull()).select("buurt_code", "geometry_wkt")
    geometry = {r["buurt_code"]: r["geometry_wkt"] for r in rows.toLocalIterator()}
    return geometry or None


def _empty_residence(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long",
    )


def _rootedness_counts(
    acc: dict[str, DataFrame], incidents: DataFrame, residence: DataFrame | None
) -> tuple[DataFrame | None, DataFrame | None]:
    """Area counts of lokale worteling made from the networks, for the indicator catalogue:
    co-offending ties per level (local or not) and young residents' ties per layer (to
    suspects of ondermijning or not). Aggregates only; no person-level table is kept."""
    if "suspects" not in acc or residence is None:
        return None, None
    from zicht.models.network import (
        build_cooffending_edges,
        cooffending_locality_counts,
        youth_exposure_counts,
    )

    suspects = acc["suspects"]
    edges = build_cooffending_edges(suspects, incidents)
    cooffending = cooffending_locality_counts(edges, residence)
    youth = None
    if "person_links" in acc:
        ondermijning = incidents.where(F.size("phenomena") > 0).select("incident_id")
        suspect_ids = suspects.join(ondermijning, "incident_id", "left_semi").select("person_id")
        youth = youth_exposure_counts(residence, acc["person_links"], suspect_ids)
    return cooffending, youth


MIN_COMMUNITY = 5  # communities this size or larger get a summary row and a disruption curve


def _community_artifacts(
    work: Path,
    members: DataFrame,
    communities: DataFrame,
    acc: dict[str, DataFrame],
    incidents: DataFrame,
    layer_edges: DataFrame | None,
    settings: Settings,
) -> dict[str, Any]:
    """Restricted community summaries and disruption curves (also MLflow artifacts).

    ``restricted/community_summary.csv``: the communities of at least ``MIN_COMMUNITY``
    members (no person in it); ``restricted/community_disruption.csv``: sequential betweenness
    removal inside the 20 largest of them. Both are small by construction.
    """
    from zicht.models.network import (
        LAYER_CO_OFFENDING,
        build_cooffending_edges,
        disruption_by_community,
    )

    out: dict[str, Any] = {}
    summary = communities.where(F.col("size") >= MIN_COMMUNITY).orderBy("community_id").toPandas()
    rel = "restricted/community_summary.csv"
    summary.to_csv(work / rel, index=False)
    out[rel] = hash_output(work, rel, len(summary))
    ties = build_cooffending_edges(acc["suspects"], incidents).select("person_id_a", "person_id_b")
    if LAYER_CO_OFFENDING not in settings.network.layers:
        ties = ties.limit(0)
    if layer_edges is not None:
        ties = ties.unionByName(
            layer_edges.where(F.col("layer").isin(list(settings.network.layers))).select(
                "person_id_a", "person_id_b"
            )
        )
    curves = disruption_by_community(members, ties, min_size=MIN_COMMUNITY)
    rel = "restricted/community_disruption.csv"
    curves.to_csv(work / rel, index=False)
    out[rel] = hash_output(work, rel, len(curves))
    return out


def run_pipeline(
    spark: SparkSession,
    settings: Settings,
    input_dir: Path,
    work: Path,
    *,
    run_date: dt.date,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Run every stage, writing into ``work``; returns the manifest's body (without ids)."""
    outputs: dict[str, Any] = {}
    restricted = work / "restricted"
    export = work / "export"
    restricted.mkdir(parents=True)
    export.mkdir(parents=True)
    # Intermediate tables of this run (removed before the output is committed).
    stage_dir = work / "_stage"

    with stage(timings, "validate"):
        v: Validated = validate_inputs(
            spark, str(input_dir), settings, run_date=run_date, stage_dir=stage_dir
        )
        for name, rej in v.rejects.items():
            rel = f"restricted/rejects/{name}"
            write_parquet(rej, work / rel)
            outputs[rel] = hash_output(work, rel, v.accounting[name]["rows_rejected"])

    acc = v.accepted
    with stage(timings, "link"):
        areas = acc["areas"]
        addresses = acc.get("addresses")
        incidents = locate_incidents(
            acc["incidents"], areas=areas, addresses=addresses, phenomena=settings.phenomena
        )
        incidents = materialize(incidents, stage_dir / "incidents_located")
        residence = None
        if "persons" in acc and addresses is not None:
            residence = build_residence(
                acc["persons"], addresses=addresses, areas=areas, years=v.years
            )
            residence = materialize(residence, stage_dir / "residence")
        signals = None
        if "signals" in acc:
            signals = locate_signals(
                acc["signals"], addresses=addresses, phenomena=settings.phenomena
            )
        network_level_counts, youth_tie_counts = _rootedness_counts(acc, incidents, residence)

    skipped_stages: dict[str, str] = {}
    with stage(timings, "network"):
        if "suspects" in acc:
            from zicht.models.network import build_layer_edges, build_network

            layer_edges = build_layer_edges(
                acc["suspects"].select("person_id"),
                layers=settings.network.layers,
                person_links=acc.get("person_links"),
                persons=acc.get("persons"),
                company_roles=acc.get("company_roles"),
            )
            members, communities = build_network(
                acc["suspects"],
                incidents,
                residence if residence is not None else _empty_residence(spark),
                phenomena=list(settings.phenomena),
                settings=settings.network,
                layer_edges=layer_edges,
            )
            members = members.cache()
            communities = communities.cache()
            for rel, df in (
                ("restricted/network_members.parquet", members),
                ("restricted/communities.parquet", communities),
            ):
                write_parquet(df, work / rel)
                outputs[rel] = hash_output(work, rel, df.count())
            outputs.update(
                _community_artifacts(
                    work, members, communities, acc, incidents, layer_edges, settings
                )
            )
            if residence is not None:
                from zicht.models.network import community_reach_counts

                reach = community_reach_counts(members, acc["suspects"], incidents, residence)
                network_level_counts = (
                    reach
                    if network_level_counts is None
                    else network_level_counts.unionByName(reach)
                )
        else:
            skipped_stages["network"] = "table suspects is absent"

    with stage(timings, "indicators"):
        src = Sources(
            areas=areas,
            incidents=incidents,
            suspects=acc.get("suspects"),
            residence=residence,
            addresses=addresses,
            signals=signals,
            companies=acc.get("companies"),
            company_roles=acc.get("company_roles"),
            property_transactions=acc.get("property_transactions"),
            household_income=acc.get("household_income"),
            areas_have_inhabitants=v.areas_have_inhabitants,
            network_level_counts=network_level_counts,
            youth_tie_counts=youth_tie_counts,
        )
        result = build_indicators(
            src,
            years=v.years,
            phenomena=settings.phenomena,
            specs=settings.indicators,
            coverage=settings.coverage,
            patterns=settings.patterns,
            checkpoint=lambda df, name: materialize(df, stage_dir / "indicators" / name),
        )
        cells = materialize(result.cells, stage_dir / "cells")
        n_cells = cells.count()
        # status (ok, not_applicable, not_covered) beside the contract's columns, so that
        # `zicht export --from` can apply other disclosure rules without recomputing
        write_parquet(
            cells.select("level", "area_code", "year", "indicator", "value", "status"),
            work / "restricted/indicators.parquet",
        )
        outputs["restricted/indicators.parquet"] = hash_output(
            work, "restricted/indicators.parquet", n_cells
        )
        contributors = result.magnitude_contributors
        if contributors is not None:
            rel = "restricted/magnitude_contributors.parquet"
            contributors = materialize(contributors, work / rel)
            outputs[rel] = hash_output(work, rel, contributors.count())
        # the accepted areas (hierarchy, names, outlines) for the export stage
        areas = materialize(areas, work / "restricted/areas.parquet")
        outputs["restricted/areas.parquet"] = hash_output(
            work, "restricted/areas.parquet", areas.count()
        )
        # One row per buurt and year: small by construction (~14k buurten nationally).
        features_pd = result.area_features.toPandas()
        write_parquet(result.area_features, work / "restricted/area_features.parquet")
        outputs["restricted/area_features.parquet"] = hash_output(
            work, "restricted/area_features.parquet", len(features_pd)
        )
    live_specs = [s for s in settings.indicators if s.key not in result.skipped]

    model_result = None
    with stage(timings, "area_models"):
        from zicht.models.typology import fit_area_models, rate_parts_from_catalogue

        try:
            model_result = fit_area_models(
                features_pd,
                phenomena=list(settings.phenomena),
                settings=settings.model,
                rate_parts=rate_parts_from_catalogue(live_specs),
                # polygons for contiguity weights: one WKT per buurt (~14k), bounded
                geometry_wkt=_geometry_by_buurt(areas),
            )
        except ValueError as exc:
            # nothing varies between the areas (one buurt, or no data): no typology to fit
            skipped_stages["area_models"] = str(exc)
        if model_result is not None:
            typ = spark.createDataFrame(model_result.typology)
            write_parquet(typ, work / "restricted/area_typology.parquet")
            outputs["restricted/area_typology.parquet"] = hash_output(
                work, "restricted/area_typology.parquet", len(model_result.typology)
            )

    from zicht.jobs.export import REGISTER_NAME, publish

    # The register sits beside the MLflow store (inside the secure environment).
    published_outputs, report = publish(
        spark,
        settings,
        cells=cells,
        areas=areas,
        specs=live_specs,
        contributors=contributors,
        input_dir=input_dir,
        accounting=v.accounting,
        work=work,
        register=work.parent / REGISTER_NAME,
        release_id=work.name.rsplit("-", 1)[-1],
        timings=timings,
    )
    outputs.update(published_outputs)

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
        if "persons" in acc
        else "persons absent",
        "input_dir": str(input_dir.resolve()),
        "inputs": v.accounting,
        "extra_columns_dropped": {k: c for k, c in v.extra_columns.items() if c},
        "skipped_indicators": dict(result.skipped),
        "skipped_stages": skipped_stages,
        "outputs": outputs,
        "_model_result": model_result,
        "_report": report,
        "_n_cells": n_cells,
    }


def _commit(work: Path, output: Path, run_id: str) -> None:
    """Swap the finished work folder in; the previous output survives until then."""
    shutil.rmtree(work / "_stage", ignore_errors=True)
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
    except (InputError, ConfigError) as exc:
        print(f"zicht run: {exc}", file=sys.stderr)
        return 2
    spark = build_spark(settings.spark, app_name="zicht-run")
    try:
        manifest = run(spark, settings, input_dir, output_dir)
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
