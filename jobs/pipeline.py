"""The stages of the pipeline as functions, and the tables they hand to each other.

``zicht run`` calls them in one application, passing DataFrames along (``jobs/run.py``); each
also runs alone as a Spark job on an output folder (``jobs/ingest.py``, ``jobs/network.py
build``, ``jobs/indicators.py``, ``jobs/models.py``, ``jobs/export.py``), reading what the
previous stage left in ``restricted/stage/`` and ``restricted/``:

- ingest (validate + link) writes the accepted tables, the located incidents and signals and
  each person's residence per year to ``<stage>/`` and the validation's state to
  ``<stage>/state.json`` (accounting, period, flags), and the rejects to ``restricted/``;
- network writes members, communities and their artifacts to ``restricted/`` and its area
  counts (co-offending ties, community reach, youth ties) to ``<stage>/``;
- indicators writes ``restricted/indicators.parquet``, ``area_features``, ``areas`` and the
  magnitude contributors;
- models writes ``restricted/area_typology.parquet``;
- export: :func:`zicht.jobs.export.publish`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.indicators import IndicatorResult, Sources, build_indicators, locate_signals
from zicht.features.link import build_residence, locate_incidents
from zicht.features.settings import IndicatorSpec, Settings
from zicht.features.validate import accepted, rejects
from zicht.jobs.stages import hash_output, stage, write_parquet
from zicht.jobs.validate_inputs import Validated, materialize, validate_inputs

STATE = "state.json"
MIN_COMMUNITY = 5  # communities this size or larger get a summary row and a disruption curve


@dataclass
class Linked:
    """What ingest hands on: the validation's result and the linked tables."""

    v: Validated
    incidents: DataFrame
    residence: DataFrame | None
    signals: DataFrame | None
    input_dir: Path


@dataclass
class NetworkCounts:
    """Area counts made from the networks, for the indicator catalogue."""

    level_counts: DataFrame | None = None  # level, area_code, year, indicator, value
    youth_ties: DataFrame | None = None  # buurt_code, year, indicator, value


@dataclass
class Indicators:
    cells: DataFrame
    n_cells: int
    features: pd.DataFrame  # one row per buurt and year: small by construction
    areas: DataFrame
    contributors: DataFrame | None
    skipped: dict[str, str] = field(default_factory=dict)
    live_specs: list[IndicatorSpec] = field(default_factory=list)


def _empty_residence(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long",
    )


# --------------------------------------------------------------------------- ingest


def ingest(
    spark: SparkSession,
    settings: Settings,
    input_dir: Path,
    work: Path,
    stage_dir: Path,
    *,
    run_date: dt.date,
    timings: dict[str, float],
    outputs: dict[str, Any],
) -> Linked:
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
        addresses = acc.get("addresses")
        incidents = locate_incidents(
            acc["incidents"], areas=acc["areas"], addresses=addresses, phenomena=settings.phenomena
        )
        incidents = materialize(incidents, stage_dir / "incidents_located")
        residence = None
        if "persons" in acc and addresses is not None:
            residence = build_residence(
                acc["persons"], addresses=addresses, areas=acc["areas"], years=v.years
            )
            residence = materialize(residence, stage_dir / "residence")
        signals = None
        if "signals" in acc:
            signals = materialize(
                locate_signals(acc["signals"], addresses=addresses, phenomena=settings.phenomena),
                stage_dir / "signals_located",
            )
    state = {
        "input_dir": str(input_dir.resolve()),
        "accounting": v.accounting,
        "extra_columns": v.extra_columns,
        "years": list(v.years),
        "reference_date": v.reference_date.isoformat() if v.reference_date else None,
        "persons_have_snapshots": v.persons_have_snapshots,
        "areas_have_inhabitants": v.areas_have_inhabitants,
    }
    (stage_dir / STATE).write_text(json.dumps(state, indent=2, default=str))
    return Linked(v, incidents, residence, signals, input_dir)


def load_linked(spark: SparkSession, stage_dir: Path) -> Linked:
    """The ingest stage's hand-over, read back from ``stage_dir`` (a stage job's start)."""
    path = stage_dir / STATE
    if not path.exists():
        raise FileNotFoundError(f"{path}: run the ingest stage first (zicht ingest)")
    state = json.loads(path.read_text())
    v = Validated(
        accounting=state["accounting"],
        extra_columns=state["extra_columns"],
        years=tuple(state["years"]),
        reference_date=(
            dt.date.fromisoformat(state["reference_date"]) if state["reference_date"] else None
        ),
        persons_have_snapshots=state["persons_have_snapshots"],
        areas_have_inhabitants=state["areas_have_inhabitants"],
    )
    for name in state["accounting"]:
        validated = spark.read.parquet(str(stage_dir / "validated" / name))
        v.accepted[name] = accepted(validated, name)
        v.rejects[name] = rejects(validated, name)

    incidents = spark.read.parquet(str(stage_dir / "incidents_located"))
    return Linked(
        v,
        incidents,
        _read_optional(spark, stage_dir / "residence"),
        _read_optional(spark, stage_dir / "signals_located"),
        Path(state["input_dir"]),
    )


def _read_optional(spark: SparkSession, path: Path) -> DataFrame | None:
    """A hand-over table a stage wrote only when its sources exist."""
    return spark.read.parquet(str(path)) if path.exists() else None


# --------------------------------------------------------------------------- network


def _rootedness_counts(
    acc: dict[str, DataFrame],
    incidents: DataFrame,
    residence: DataFrame | None,
    cooffending_edges: DataFrame,
) -> NetworkCounts:
    """Co-offending ties per level (local or not) and young residents' ties per layer (to
    suspects of ondermijning or not). Aggregates only; no person-level table is kept."""
    if residence is None:
        return NetworkCounts()
    from zicht.models.network import cooffending_locality_counts, youth_exposure_counts

    suspects = acc["suspects"]
    cooffending = cooffending_locality_counts(cooffending_edges, residence)
    youth = None
    if "person_links" in acc:
        ondermijning = incidents.where(F.size("phenomena") > 0).select("incident_id")
        suspect_ids = suspects.join(ondermijning, "incident_id", "left_semi").select("person_id")
        youth = youth_exposure_counts(residence, acc["person_links"], suspect_ids)
    return NetworkCounts(cooffending, youth)


def _community_artifacts(
    work: Path,
    members: DataFrame,
    communities: DataFrame,
    cooffending_edges: DataFrame,
    layer_edges: DataFrame | None,
    settings: Settings,
) -> dict[str, Any]:
    """Restricted community summaries and disruption curves (also MLflow artifacts).

    ``restricted/community_summary.csv``: the communities of at least ``MIN_COMMUNITY``
    members (no person in it); ``restricted/community_disruption.csv``: sequential betweenness
    removal inside the 20 largest of them. Both are small by construction.
    """
    from zicht.models.network import LAYER_CO_OFFENDING, disruption_by_community

    out: dict[str, Any] = {}
    summary = communities.where(F.col("size") >= MIN_COMMUNITY).orderBy("community_id").toPandas()
    rel = "restricted/community_summary.csv"
    summary.to_csv(work / rel, index=False)
    out[rel] = hash_output(work, rel, len(summary))
    ties = cooffending_edges.select("person_id_a", "person_id_b")
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


def network(
    spark: SparkSession,
    settings: Settings,
    linked: Linked,
    work: Path,
    stage_dir: Path,
    *,
    timings: dict[str, float],
    outputs: dict[str, Any],
    skipped_stages: dict[str, str],
) -> NetworkCounts:
    acc, incidents, residence = linked.v.accepted, linked.incidents, linked.residence
    with stage(timings, "network"):
        counts = NetworkCounts()
        if "suspects" not in acc:
            skipped_stages["network"] = "table suspects is absent"
        else:
            from zicht.models.network import (
                build_cooffending_edges,
                build_layer_edges,
                build_network,
                community_reach_counts,
            )

            # one self-join of the suspects per run: the graph, the disruption curves and the
            # area counts all read these ties
            cooffending_edges = materialize(
                build_cooffending_edges(acc["suspects"], incidents),
                stage_dir / "cooffending_edges",
            )
            counts = _rootedness_counts(acc, incidents, residence, cooffending_edges)

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
                cooffending_edges=cooffending_edges,
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
                    work, members, communities, cooffending_edges, layer_edges, settings
                )
            )
            if residence is not None:
                reach = community_reach_counts(members, acc["suspects"], incidents, residence)
                counts.level_counts = (
                    reach if counts.level_counts is None else counts.level_counts.unionByName(reach)
                )
        # the hand-over to the indicator stage, cut here (also what a stage job reads back)
        if counts.level_counts is not None:
            counts.level_counts = materialize(counts.level_counts, stage_dir / "network_counts")
        if counts.youth_ties is not None:
            counts.youth_ties = materialize(counts.youth_ties, stage_dir / "youth_ties")
    return counts


def load_network_counts(spark: SparkSession, stage_dir: Path) -> NetworkCounts:
    return NetworkCounts(
        _read_optional(spark, stage_dir / "network_counts"),
        _read_optional(spark, stage_dir / "youth_ties"),
    )


# --------------------------------------------------------------------------- indicators


def indicators(
    spark: SparkSession,
    settings: Settings,
    linked: Linked,
    counts: NetworkCounts,
    work: Path,
    stage_dir: Path,
    *,
    timings: dict[str, float],
    outputs: dict[str, Any],
) -> Indicators:
    acc, v = linked.v.accepted, linked.v
    with stage(timings, "indicators"):
        src = Sources(
            areas=acc["areas"],
            incidents=linked.incidents,
            suspects=acc.get("suspects"),
            residence=linked.residence,
            addresses=acc.get("addresses"),
            signals=linked.signals,
            companies=acc.get("companies"),
            company_roles=acc.get("company_roles"),
            property_transactions=acc.get("property_transactions"),
            household_income=acc.get("household_income"),
            areas_have_inhabitants=v.areas_have_inhabitants,
            network_level_counts=counts.level_counts,
            youth_tie_counts=counts.youth_ties,
        )
        result: IndicatorResult = build_indicators(
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
        # the accepted areas (hierarchy, names, outlines) for the model and export stages
        areas = materialize(acc["areas"], work / "restricted/areas.parquet")
        outputs["restricted/areas.parquet"] = hash_output(
            work, "restricted/areas.parquet", areas.count()
        )
        # One row per buurt and year: small by construction (~14k buurten nationally).
        features_pd = result.area_features.toPandas()
        write_parquet(result.area_features, work / "restricted/area_features.parquet")
        outputs["restricted/area_features.parquet"] = hash_output(
            work, "restricted/area_features.parquet", len(features_pd)
        )
    skipped = dict(result.skipped)
    live = [s for s in settings.indicators if s.key not in skipped]
    return Indicators(cells, n_cells, features_pd, areas, contributors, skipped, live)


# --------------------------------------------------------------------------- area models


def geometry_by_buurt(areas: DataFrame) -> dict[str, str] | None:
    """buurt_code -> geometry_wkt on the driver (one polygon per buurt: ~14k nationally), or
    None when the areas table carries no polygons (hot spots then use nearest centroids)."""
    if "geometry_wkt" not in areas.columns:
        return None
    rows = areas.where(F.col("geometry_wkt").isNotNull()).select("buurt_code", "geometry_wkt")
    geometry = {r["buurt_code"]: r["geometry_wkt"] for r in rows.toLocalIterator()}
    return geometry or None


def area_models(
    spark: SparkSession,
    settings: Settings,
    features: pd.DataFrame,
    areas: DataFrame,
    live_specs: list[IndicatorSpec],
    work: Path,
    *,
    timings: dict[str, float],
    outputs: dict[str, Any],
    skipped_stages: dict[str, str],
) -> Any:
    """Typology, anomalies and hot spots (scikit-learn on the driver: areas are few, ~14k
    buurten nationally); returns the model result for MLflow, or None when skipped."""
    from zicht.models.typology import (
        fit_area_models,
        profile_columns_from_catalogue,
        rate_parts_from_catalogue,
    )

    model_result = None
    with stage(timings, "area_models"):
        try:
            model_result = fit_area_models(
                features,
                phenomena=list(settings.phenomena),
                settings=settings.model,
                rate_parts=rate_parts_from_catalogue(live_specs),
                geometry_wkt=geometry_by_buurt(areas),
                anomaly_columns=profile_columns_from_catalogue(live_specs),
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
    return model_result
