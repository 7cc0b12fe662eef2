"""The pipeline: its stages, and the one orchestrator that runs them.

A stage (:class:`~zicht.jobs.context.Stage`) names the catalogue datasets it needs and produces
and makes them in ``run(ctx)``, returning a :class:`~zicht.jobs.context.StageResult`. Every
command runs through :func:`execute`: ``zicht run`` runs all of them in one application, a
stage job (``zicht ingest``, ``zicht network build``, ``zicht indicators``, ``zicht models``,
``zicht export --from``) one of them on an output folder. :func:`execute` owns what they share:
the MLflow run (:func:`zicht.jobs.tracking.tracked_run`), the timings, the manifest and the
commit of the output (:mod:`zicht.jobs.outputs`).

The stages and their hand-overs (names as in :mod:`zicht.jobs.catalog`)::

    input folder ──ingest──▶ store: validated/<table>, incidents_located, residence,
                    │               signals_located, store.json   (reused on an unchanged input)
                    └──────▶ restricted/rejects/<table>
    store ──network──▶ restricted/network_members, communities, community_*.csv
                  └──▶ stage: cooffending_edges, network_counts, youth_ties
    store + stage ──indicators──▶ restricted/indicators, area_features, areas,
                                  magnitude_contributors, indicator_intervals, indicator_trends
    restricted ──models──▶ restricted/area_typology, area_anomaly_drivers (+ the MLflow model)
    restricted ──export──▶ restricted/disclosure_audit, export/*, the release register
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.settings import IndicatorSpec
from zicht.jobs import faults, outputs, store
from zicht.jobs import fs as fsmod
from zicht.jobs.config import applied_files
from zicht.jobs.context import RunContext, Stage, StageResult, flat_outputs
from zicht.jobs.io import InputError
from zicht.jobs.progress import Progress, capture_log
from zicht.jobs.tracking import Tracker, tracked_run

log = logging.getLogger("zicht")

MIN_COMMUNITY = 5  # communities this size or larger get a summary row and a disruption curve
PROGRESS_INTERVAL_S = 30.0  # a progress line at most this often while a stage works


# --------------------------------------------------------------------------- linked tables


@dataclass
class Linked:
    """The store's tables as the later stages use them."""

    accepted: dict[str, DataFrame]
    incidents: DataFrame
    residence: DataFrame | None
    signals: DataFrame | None
    years: tuple[int, ...]
    areas_have_inhabitants: bool
    areas_have_inhabitants_12plus: bool = False


def load_linked(ctx: RunContext) -> Linked:
    from zicht.features.validate import accepted

    state = ctx.store_facts
    tables = {
        name: accepted(ctx.read("validated", table=name), name) for name in state["accounting"]
    }
    return Linked(
        accepted=tables,
        incidents=ctx.read("incidents_located"),
        residence=ctx.read_optional("residence"),
        signals=ctx.read_optional("signals_located"),
        years=tuple(state["years"]),
        areas_have_inhabitants=bool(state["areas_have_inhabitants"]),
        areas_have_inhabitants_12plus=bool(state.get("areas_have_inhabitants_12plus")),
    )


def _empty_residence(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [],
        "person_id long, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long",
    )


def live_specs(ctx: RunContext) -> list[IndicatorSpec]:
    """The catalogue's indicators that were computed; the population's denominators say where
    their inhabitants come from (the codebook shows it)."""
    skipped = ctx.fact("skipped_indicators", {})
    population = ctx.fact("population", {}) or {}
    base = {"context.inhabitants", "context.inhabitants_12plus"}
    note = ""
    if population.get("source") in ("extract", "areas"):
        note = f"Inhabitants from areas.inhabitants ({population.get('reason', '')})."
    elif population.get("source") == "register":
        note = f"Inhabitants from persons, the register ({population.get('reason', '')})."
    out = []
    for s in ctx.settings.indicators:
        if s.key in skipped:
            continue
        if note and (s.key in base or s.denominator in base or s.numerator in base):
            s = dataclasses.replace(s, caveats=" ".join(x for x in (s.caveats, note) if x))
        out.append(s)
    return out


# --------------------------------------------------------------------------- ingest


class Ingest:
    """Validate and link the input folder into the analysis-ready store, once per input."""

    name = "ingest"
    needs: tuple[str, ...] = ()
    produces = (
        "validated",
        "keys",
        "pseudonym_keys",
        "incidents_located",
        "residence",
        "signals_located",
        "rejects",
    )

    def precheck(self, ctx: RunContext) -> None:
        """Before any work (and before an MLflow run exists): a missing required table or a
        column whose name says identifier or sensitive attribute stops the run here."""
        from zicht.jobs.io import read_input
        from zicht.jobs.validate_inputs import ORDER

        assert ctx.input is not None
        for name in ORDER:
            read_input(
                ctx.spark,
                ctx.input,
                name,
                forbidden=ctx.settings.validation.forbidden_columns,
                encoding=ctx.settings.input.encoding,
            )

    def run(self, ctx: RunContext) -> StageResult:
        from zicht.features.validate import rejects
        from zicht.jobs.io import find_tables

        assert ctx.input is not None
        settings = ctx.settings
        tables = find_tables(ctx.fs, ctx.input)
        with ctx.timer.step("fingerprint"):
            digests = {name: fsmod.digest(ctx.spark, loc) for name, (loc, _) in tables.items()}
        fp = store.fingerprint(digests, store.ingest_settings(settings.to_jsonable(), ctx.run_date))
        assert ctx.store is not None
        ctx.store = fsmod.join(ctx.store, fp)
        state = store.read_state(ctx.fs, ctx.store)
        reused = settings.store.reuse and store.reusable(state, ctx.run_date)
        if reused:
            assert state is not None
            log.info("store %s: unchanged input, validate and link reused", ctx.store)
            store.touch(ctx.fs, ctx.store, state)
            _check_reject_limits(ctx, state)
        else:
            try:
                state = self._build(ctx, digests, fp)
            except Exception as exc:
                unreadable = _unreadable(exc, tables)
                if unreadable is None:
                    raise
                raise unreadable from None
        ctx.store_facts = state
        outputs_: dict[str, dict[str, Any]] = {}
        for name, acc in state["accounting"].items():
            rej = rejects(ctx.read("validated", table=name), name)
            _, rec = ctx.write("rejects", rej, table=name, count=False)
            outputs_[ctx.relative("rejects", table=name)] = {**rec, "rows": acc["rows_rejected"]}
        return StageResult(
            outputs=outputs_,
            facts={
                "store": {"location": ctx.store, "fingerprint": fp, "reused": reused},
                **_input_facts(state),
            },
            metrics={"store_reused": float(reused)},
        )

    def _build(self, ctx: RunContext, digests: dict[str, str], fp: str) -> dict[str, Any]:
        from zicht.features.indicators import locate_signals
        from zicht.features.link import build_residence, locate_incidents
        from zicht.jobs.validate_inputs import validate_inputs

        settings = ctx.settings
        assert ctx.store is not None and ctx.input is not None
        ctx.fs.delete(ctx.store)  # an ingest killed half-way left no store.json: start afresh
        with ctx.timer.step("validate"):
            v = validate_inputs(
                ctx.spark,
                ctx.input,
                settings,
                run_date=ctx.run_date,
                stage_dir=ctx.store,
            )
        acc = v.accepted
        with ctx.timer.step("keys"):
            from zicht.features.keys import collision_message, key_dictionary, key_set

            # written once: the leak guard probes these distinct keys, not every key column
            keys, _ = ctx.write("pseudonym_keys", key_set(v.raw), count=False)
            n_collisions = keys.where(F.col("collides")).count()
            if n_collisions:
                raise InputError(collision_message(n_collisions))
            ctx.write("keys", key_dictionary(v.raw), count=False)
        with ctx.timer.step("link"):
            addresses = acc.get("addresses")
            link_areas = acc["areas"]
            if v.vintages:  # rows placed at wijk or gemeente only sit in pseudo buurten (v2)
                from zicht.features.vintages import with_unassigned_areas

                link_areas = with_unassigned_areas(
                    link_areas, placed=[acc["incidents"], acc.get("signals")]
                )
            incidents = locate_incidents(
                acc["incidents"],
                areas=link_areas,
                addresses=addresses,
                phenomena=settings.phenomena,
            )
            ctx.write("incidents_located", incidents)
            if "persons" in acc and addresses is not None:
                residence = build_residence(
                    acc["persons"], addresses=addresses, areas=acc["areas"], years=v.years
                )
                ctx.write("residence", residence)
            if "signals" in acc:
                signals = locate_signals(
                    acc["signals"], addresses=addresses, phenomena=settings.phenomena
                )
                ctx.write("signals_located", signals)
        accounting = {
            name: {**a, "sha256": digests.get(name), "digest_scheme": fsmod.DIGEST_SCHEME}
            for name, a in v.accounting.items()
        }
        now = dt.datetime.now(dt.UTC).isoformat()
        state = {
            "fingerprint": fp,
            "created": now,
            "last_used": now,
            "run_date": ctx.run_date.isoformat(),
            "run_date_rejects": v.run_date_rejects,
            "input": ctx.input,
            "accounting": accounting,
            "extra_columns": v.extra_columns,
            "years": list(v.years),
            "reference_date": v.reference_date.isoformat() if v.reference_date else None,
            "persons_have_snapshots": v.persons_have_snapshots,
            "areas_have_inhabitants": v.areas_have_inhabitants,
            "areas_have_inhabitants_12plus": v.areas_have_inhabitants_12plus,
            "has_persons": "persons" in acc,
            "vintages": v.vintages,
        }
        store.write_state(ctx.fs, ctx.store, state)  # last: the store is complete
        return state


def _unreadable(exc: BaseException, tables: dict[str, tuple[str, str]]) -> InputError | None:
    """A Spark failure reading an input file (a corrupt Parquet page, a truncated file) as one
    message naming the table and the file, instead of Spark's Java stack trace; None when the
    failure is not about an input file."""
    text = str(exc)
    if "FAILED_READ_FILE" not in text and "Encountered error while reading file" not in text:
        return None
    causes = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Caused by:")]
    why = causes[-1].removeprefix("Caused by:").strip() if causes else text.splitlines()[0]
    match = re.search(r"reading file (\S+?)\.?\s", text)
    file = match.group(1) if match else "?"
    for name, (loc, _) in tables.items():
        if fsmod.normalize(loc).split("://")[-1].lstrip("/") in file:
            return InputError(f"table {name}: cannot read {file}, the file is corrupt ({why})")
    return InputError(f"cannot read input file {file}, it is corrupt ({why})")


def _check_reject_limits(ctx: RunContext, state: dict[str, Any]) -> None:
    """A reused store is held to today's reject limits, as a fresh validation would be."""
    from zicht.jobs.validate_inputs import _stop_message

    limit = ctx.settings.validation.max_reject_share
    for name, a in state["accounting"].items():
        n, n_rej = a["rows_read"], a["rows_rejected"]
        why = None
        if ctx.settings.validation.strict and n_rej:
            why = "--strict stops at the first rejected row"
        elif n and n_rej / n > limit:
            why = f"{n_rej} of {n} rows rejected ({n_rej / n:.1%}), above the limit of {limit:.1%}"
        if why:
            raise InputError(_stop_message(name, ctx.read("validated", table=name), why))


def _input_facts(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "period": {"years": state["years"], "reference_date": state["reference_date"]},
        "persons_snapshots": (
            (
                "per year (snapshot_year)"
                if state["persons_have_snapshots"]
                else "one snapshot serves every year"
            )
            if state.get("has_persons")
            else "persons absent"
        ),
        "input_dir": state["input"],
        "inputs": state["accounting"],
        "extra_columns_dropped": {k: c for k, c in state["extra_columns"].items() if c},
        **({"vintages": state["vintages"]} if state.get("vintages") else {}),
    }


# --------------------------------------------------------------------------- network


class Network:
    """Suspects' networks: communities, brokers, rootedness; area counts for the indicators."""

    name = "network"
    needs = ("validated", "incidents_located", "residence")
    produces = (
        "network_members",
        "communities",
        "community_lineage",
        "community_summary",
        "community_disruption",
        "cooffending_edges",
        "network_counts",
        "youth_ties",
    )

    def run(self, ctx: RunContext) -> StageResult:
        linked = load_linked(ctx)
        acc, incidents, residence = linked.accepted, linked.incidents, linked.residence
        settings = ctx.settings
        result = StageResult()
        # a rerun of this stage on an output folder must not keep another run's hand-overs
        for name in ("network_counts", "youth_ties"):
            ctx.fs.delete(ctx.location(name))
        with ctx.timer.step("network"):
            if "suspects" not in acc:
                result.skipped = "table suspects is absent"
                return result
            from zicht.models.network import (
                build_cooffending_edges,
                build_layer_edges,
                build_network,
                community_reach_counts,
                vertex_order,
            )

            # one self-join of the suspects per run: the graph, the disruption curves and the
            # area counts all read these ties
            cooffending, _ = ctx.write(
                "cooffending_edges", build_cooffending_edges(acc["suspects"], incidents)
            )
            level_counts, youth = _rootedness_counts(acc, incidents, residence, cooffending)
            layer_edges = build_layer_edges(
                acc["suspects"].select("person_id"),
                layers=settings.network.layers,
                person_links=acc.get("person_links"),
                persons=acc.get("persons"),
                company_roles=acc.get("company_roles"),
            )
            order = vertex_order(ctx.read("keys")) if ctx.exists("keys") else None
            members, communities = build_network(
                acc["suspects"],
                incidents,
                residence if residence is not None else _empty_residence(ctx.spark),
                phenomena=list(settings.phenomena),
                settings=settings.network,
                layer_edges=layer_edges,
                cooffending_edges=cooffending,
                # keyed store: Leiden sees the suspects in the order of their pseudonyms, as
                # before the keys (issue 16: the same partition, whatever the keys)
                vertex_order=order,
            )
            # with --previous: the communities take their lasting ids (zicht.jobs.lineage)
            from zicht.jobs.lineage import link_communities

            members, communities, facts, lineage = link_communities(ctx, members, communities)
            result.facts.update(facts)
            result.outputs.update(lineage)
            # members on keys, materialised once: the communities, the curves and the reach
            # counts join on keys; analysts' network_members carry the pseudonym again
            members, _ = ctx.write("network_members_keyed", members)
            _, rec = ctx.write("network_members", with_pseudonyms(ctx, members))
            result.outputs[ctx.relative("network_members")] = rec
            communities, rec = ctx.write("communities", communities)
            result.outputs[ctx.relative("communities")] = rec
            result.outputs.update(
                _community_artifacts(
                    ctx, members, communities, cooffending, layer_edges, vertex_order=order
                )
            )
            if residence is not None:
                reach = community_reach_counts(members, acc["suspects"], incidents, residence)
                level_counts = reach if level_counts is None else level_counts.unionByName(reach)
            # the hand-over to the indicator stage, cut here
            if level_counts is not None:
                ctx.write("network_counts", level_counts)
            if youth is not None:
                ctx.write("youth_ties", youth)
        return result

    def log(self, ctx: RunContext, result: StageResult, tracker: Tracker) -> None:
        for name in ("community_summary", "community_disruption"):
            if ctx.exists(name):  # the MLflow store is restricted too
                tracker.text(ctx.fs.read_text(ctx.location(name)), f"network/{name}.csv")


def with_pseudonyms(ctx: RunContext, members: DataFrame) -> DataFrame:
    """``members`` with ``person_id`` the pseudonym instead of the store's key (one join with
    the key dictionary, on suspects only), in the same column order."""
    keys = ctx.read("keys").select(F.col("key").alias("person_id"), "pseudonym")
    # the members (a few hundred thousand nationally) go to the dictionary's rows, not back
    return keys.join(F.broadcast(members), "person_id", "inner").select(
        *[F.col("pseudonym").alias(c) if c == "person_id" else F.col(c) for c in members.columns]
    )


def _rootedness_counts(
    acc: dict[str, DataFrame],
    incidents: DataFrame,
    residence: DataFrame | None,
    cooffending_edges: DataFrame,
) -> tuple[DataFrame | None, DataFrame | None]:
    """Co-offending ties per level (local or not) and young residents' ties per layer (to
    suspects of ondermijning or not). Aggregates only; no person-level table is kept."""
    if residence is None:
        return None, None
    from zicht.models.network import cooffending_locality_counts, youth_exposure_counts

    suspects = acc["suspects"]
    cooffending = cooffending_locality_counts(cooffending_edges, residence)
    youth = None
    if "person_links" in acc:
        ondermijning = incidents.where(F.size("phenomena") > 0).select("incident_id")
        suspect_ids = suspects.join(ondermijning, "incident_id", "left_semi").select("person_id")
        youth = youth_exposure_counts(residence, acc["person_links"], suspect_ids)
    return cooffending, youth


def _community_artifacts(
    ctx: RunContext,
    members: DataFrame,
    communities: DataFrame,
    cooffending_edges: DataFrame,
    layer_edges: DataFrame | None,
    *,
    vertex_order: DataFrame | None = None,
) -> dict[str, Any]:
    """Restricted community summaries and disruption curves (also MLflow artifacts).

    ``community_summary``: the communities of at least ``MIN_COMMUNITY`` members (no person in
    it); ``community_disruption``: sequential betweenness removal inside the 20 largest of
    them. Both are small by construction, so they are rendered on the driver.
    """
    from zicht.models.network import LAYER_CO_OFFENDING, disruption_by_community

    settings = ctx.settings
    out: dict[str, Any] = {}
    summary = communities.where(F.col("size") >= MIN_COMMUNITY).orderBy("community_id").toPandas()
    out[ctx.relative("community_summary")] = ctx.write_text(
        "community_summary", summary.to_csv(index=False), rows=len(summary)
    )
    ties = cooffending_edges.select("person_id_a", "person_id_b")
    if LAYER_CO_OFFENDING not in settings.network.layers:
        ties = ties.limit(0)
    if layer_edges is not None:
        ties = ties.unionByName(
            layer_edges.where(F.col("layer").isin(list(settings.network.layers))).select(
                "person_id_a", "person_id_b"
            )
        )
    curves = disruption_by_community(
        members, ties, min_size=MIN_COMMUNITY, vertex_order=vertex_order
    )
    out[ctx.relative("community_disruption")] = ctx.write_text(
        "community_disruption", curves.to_csv(index=False), rows=len(curves)
    )
    return out


# --------------------------------------------------------------------------- indicators


class Indicators:
    """The indicator catalogue per buurt, wijk and gemeente, and the area features."""

    name = "indicators"
    needs = ("validated", "incidents_located", "residence", "network_counts", "youth_ties")
    produces = ("indicators", "area_features", "areas", "magnitude_contributors",
                "indicator_intervals", "indicator_trends")  # fmt: skip

    def run(self, ctx: RunContext) -> StageResult:
        from zicht.features.indicators import IndicatorResult, Sources, build_indicators
        from zicht.features.regions import regions_of

        linked = load_linked(ctx)
        acc, settings = linked.accepted, ctx.settings
        if ctx.store_facts.get("vintages"):
            # v2: the unassigned part of a wijk or gemeente is a pseudo buurt of the hierarchy,
            # so the sums include it and disclosure control sees it as a cell of its own
            from zicht.features.vintages import with_unassigned_areas

            placed = [linked.incidents, linked.signals]
            acc = {**acc, "areas": with_unassigned_areas(acc["areas"], placed=placed)}
        result = StageResult()
        with ctx.timer.step("indicators"):
            population = _population(ctx, linked)
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
                unusual_transactions=acc.get("unusual_transactions"),
                ownership=acc.get("ownership"),
                areas_have_inhabitants=linked.areas_have_inhabitants,
                areas_have_inhabitants_12plus=linked.areas_have_inhabitants_12plus,
                population=population.get("source", "register"),
                network_level_counts=ctx.read_optional("network_counts"),
                youth_tie_counts=ctx.read_optional("youth_ties"),
            )
            built: IndicatorResult = build_indicators(
                src,
                years=linked.years,
                phenomena=settings.phenomena,
                specs=settings.indicators,
                coverage=settings.coverage,
                patterns=settings.patterns,
                sectors=settings.sectors,
                regions=regions_of(settings.export.partners),  # reference levels (v2)
                checkpoint=lambda df, name: ctx.write("indicator_checkpoint", df, checkpoint=name)[
                    0
                ],
            )
            # status (ok, not_applicable, not_covered) beside the contract's columns, so that
            # `zicht export --from` can apply other disclosure rules without recomputing
            written, rec = ctx.write(
                "indicators",
                built.cells.select("level", "area_code", "year", "indicator", "value", "status"),
            )
            n_cells = rec["rows"]
            result.outputs[ctx.relative("indicators")] = rec
            if built.magnitude_contributors is not None:
                _, rec = ctx.write("magnitude_contributors", built.magnitude_contributors)
                result.outputs[ctx.relative("magnitude_contributors")] = rec
            # the accepted areas (hierarchy, names, outlines) for the model and export stages
            _, rec = ctx.write("areas", acc["areas"])
            result.outputs[ctx.relative("areas")] = rec
            from zicht.features.vintages import is_unassigned

            # the area models describe buurten: no pseudo buurt of the unassigned parts (v2)
            features = built.area_features.where(~is_unassigned(F.col("buurt_code")))
            _, rec = ctx.write("area_features", features)
            result.outputs[ctx.relative("area_features")] = rec
            # intervals, changes and trends of the unrounded cells, for the analysts
            from zicht.models.trends import build_indicator_intervals, build_indicator_trends

            for name, frame in (
                ("indicator_intervals", build_indicator_intervals(written, specs=settings.indicators)),
                ("indicator_trends", build_indicator_trends(written, specs=settings.indicators,
                    fdr_alpha=settings.model.fdr_alpha, years=linked.years)),
            ):  # fmt: skip
                _, rec = ctx.write(name, frame)
                result.outputs[ctx.relative(name)] = rec
        result.facts["skipped_indicators"] = dict(built.skipped)
        result.facts["population"] = population
        if settings.plausibility.reference:
            result.facts["plausibility"] = _plausibility(ctx, linked.incidents)
        result.metrics["indicator_cells"] = float(n_cells)
        return result


def _plausibility(ctx: RunContext, incidents: DataFrame) -> dict[str, Any]:
    """zicht's incident counts beside the published ones (``plausibility.reference``): small by
    construction (gemeenten x years x classes), collected for the manifest."""
    from zicht.features.plausibility import REFERENCE_SCHEMA, compare_with_published

    cfg = ctx.settings.plausibility
    loc = fsmod.normalize(cfg.reference)
    if not ctx.fs.exists(loc):
        raise InputError(f"plausibility.reference {loc}: no such file")
    reader = ctx.spark.read
    ref = (
        reader.parquet(loc)
        if loc.rstrip("/").endswith(".parquet")
        else reader.csv(loc, header=True, schema=REFERENCE_SCHEMA)
    )
    rows = [
        r.asDict()
        for r in compare_with_published(
            incidents, ref, max_share=cfg.max_difference_share
        ).collect()
    ]
    flagged = [r for r in rows if r["is_flagged"]]
    if flagged:
        log.warning(
            "plausibility: %d of %d counts differ from the published ones by more than %.0f %%",
            len(flagged), len(rows), 100 * cfg.max_difference_share,
        )  # fmt: skip
    return {
        "reference": loc,
        "max_difference_share": cfg.max_difference_share,
        "compared": len(rows),
        "flagged": len(flagged),
        "rows": rows,
    }


def _population(ctx: RunContext, linked: Linked) -> dict[str, Any]:
    """Register or extract (CONTRACT.md, *Population*), decided once per run: one small job
    (two when persons holds no more residents than there are suspects)."""
    from zicht.features.population import decide_population, population_figures, suspect_residents

    if linked.residence is None:
        return {"source": "areas", "reason": "persons is absent: areas.inhabitants"}
    suspects = linked.accepted.get("suspects")
    row = population_figures(linked.residence, suspects=suspects, areas=linked.accepted["areas"])
    figures = row.first().asDict()  # type: ignore[union-attr]
    among: int | None = None
    if suspects is not None and figures["residents"] <= figures["suspect_persons"]:
        among = suspect_residents(linked.residence, suspects=suspects).first()[0]  # type: ignore[index]
    decision = decide_population(
        ctx.settings.population,
        residents=figures["residents"],
        suspect_residents=among,
        inhabitants=figures["inhabitants"],
    )
    log.info("population: %s (%s)", decision.source, decision.reason)
    return decision.as_fact()


# --------------------------------------------------------------------------- area models


def geometry_by_buurt(areas: DataFrame) -> dict[str, str] | None:
    """buurt_code -> geometry_wkt on the driver (one polygon per buurt: ~14k nationally), or
    None when the areas table carries no polygons (hot spots then use nearest centroids)."""
    if "geometry_wkt" not in areas.columns:
        return None
    rows = areas.where(F.col("geometry_wkt").isNotNull()).select("buurt_code", "geometry_wkt")
    geometry = {r["buurt_code"]: r["geometry_wkt"] for r in rows.toLocalIterator()}
    return geometry or None


class AreaModels:
    """Typology, anomalies and hot spots (scikit-learn on the driver: areas are few, ~14k
    buurten nationally)."""

    name = "models"
    needs = ("area_features", "areas")
    produces = ("area_typology", "area_anomaly_drivers")

    def run(self, ctx: RunContext) -> StageResult:
        from zicht.models.anomaly import feature_groups_from_catalogue
        from zicht.models.typology import (
            fit_area_models,
            profile_columns_from_catalogue,
            rate_parts_from_catalogue,
        )

        settings = ctx.settings
        result = StageResult()
        ctx.fs.delete(ctx.location("area_typology"))
        ctx.fs.delete(ctx.location("area_anomaly_drivers"))
        with ctx.timer.step("area_models"):
            # one row per buurt and year: small by construction
            features = ctx.read("area_features").toPandas()
            live = live_specs(ctx)
            try:
                model = fit_area_models(
                    features,
                    phenomena=list(settings.phenomena),
                    settings=settings.model,
                    rate_parts=rate_parts_from_catalogue(live),
                    geometry_wkt=geometry_by_buurt(ctx.read("areas")),
                    anomaly_columns=profile_columns_from_catalogue(live),
                    feature_groups=feature_groups_from_catalogue(live),
                )
            except ValueError as exc:
                # nothing varies between the areas (one buurt, or no data): no typology to fit
                result.skipped = str(exc)
                return result
            typ = ctx.spark.createDataFrame(model.typology)
            _, rec = ctx.write("area_typology", typ)
            result.outputs[ctx.relative("area_typology")] = rec
            # area-level and person-free (one row per area-year and driver): small
            drivers = ctx.spark.createDataFrame(model.anomaly_drivers)
            _, rec = ctx.write("area_anomaly_drivers", drivers)
            result.outputs[ctx.relative("area_anomaly_drivers")] = rec
            result.value = model
        return result

    def log(self, ctx: RunContext, result: StageResult, tracker: Tracker) -> None:
        if result.value is None:
            return
        from zicht.jobs.track import log_area_models

        log_area_models(
            result.value,
            registered_model_name=ctx.settings.model.registered_model_name,
            inputs=ctx.fact("inputs"),
            input_dir=ctx.fact("input_dir"),
            features_source=fsmod.join(
                outputs.readable(ctx.fs, ctx.output), ctx.relative("area_features")
            ),
        )


# --------------------------------------------------------------------------- export


class Export:
    """Disclosure control and the partner deliverables (``zicht.jobs.export``)."""

    name = "export"
    needs = ("indicators", "areas", "magnitude_contributors")
    produces = (
        "disclosure_audit",
        "indicators_buurt",
        "indicators_wijk",
        "indicators_gemeente",
        "codebook",
        "disclosure_report",
        "workbook",
        "report",
        "geo",
        "partner_package",
    )

    def __init__(self, *, force_release: bool = False, release_id: str | None = None) -> None:
        self.force_release = force_release
        self.release_id = release_id

    def run(self, ctx: RunContext) -> StageResult:
        from zicht.jobs.export import publish

        specs = live_specs(ctx)
        cells = ctx.read("indicators")
        areas = ctx.read("areas")
        contributors = ctx.read_optional("magnitude_contributors")
        done = publish(
            ctx,
            cells=cells,
            areas=areas,
            specs=specs,
            contributors=contributors,
            release_id=self.release_id or ctx.run_id,
            force_release=self.force_release,
        )
        from zicht.jobs.export import disclosure_metrics

        return StageResult(
            outputs=done.outputs,
            facts=done.facts,
            metrics=disclosure_metrics(done.report),
            value=done.report,
        )

    def after_commit(self, ctx: RunContext, result: StageResult) -> None:
        from zicht.jobs.export import publish_release

        publish_release(ctx.fs, ctx.location("release_register"), self.release_id or ctx.run_id)

    def log(self, ctx: RunContext, result: StageResult, tracker: Tracker) -> None:
        tracker.text(ctx.fs.read_text(ctx.location("codebook")), "codebook.csv")
        tracker.json(result.value, "disclosure_report.json")
        from zicht.jobs.export.report import screenshot

        # what partners see, when headless Chromium is installed (the bytes are in memory)
        shot = screenshot(ctx.rendered.get(ctx.location("report"), b""))
        if shot is not None:
            import tempfile

            import mlflow

            with tempfile.TemporaryDirectory() as tmp:
                path = f"{tmp}/report.png"
                with open(path, "wb") as fh:
                    fh.write(shot)
                mlflow.log_artifact(path, "report")


def all_stages(*, force_release: bool = False) -> list[Stage]:
    return [Ingest(), Network(), Indicators(), AreaModels(), Export(force_release=force_release)]


STAGE_NAMES = ("ingest", "network", "indicators", "models", "export")


def stage_named(name: str, *, force_release: bool = False) -> Stage:
    for s in all_stages(force_release=force_release):
        if s.name == name:
            return s
    raise KeyError(name)


# --------------------------------------------------------------------------- the orchestrator


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        return pkg_version("zicht")
    except PackageNotFoundError:  # pragma: no cover - running from an unpacked wheel on --py-files
        return "unknown"


def _manifest(
    ctx: RunContext, *, started: dt.datetime, mlflow_run_id: str, previous: dict[str, Any]
) -> dict[str, Any]:
    """The manifest: what the run read and wrote, assembled from the stages' results (and,
    for a stage job, what the manifest of the earlier stages recorded)."""
    stages = dict(previous.get("stages", {}))
    skipped_stages = dict(previous.get("skipped_stages", {}))
    for name, r in ctx.results.items():
        stages[name] = {"finished": dt.datetime.now(dt.UTC).isoformat(), "facts": r.facts}
        if r.skipped:
            skipped_stages[name] = r.skipped
        else:
            skipped_stages.pop(name, None)
    facts: dict[str, Any] = {}
    for s in stages.values():
        facts.update(s.get("facts", {}))
    outputs_ = {**previous.get("outputs", {}), **flat_outputs(ctx.results)}
    return {
        "run_id": ctx.run_id,
        "mlflow_run_id": mlflow_run_id,
        "started": previous.get("started", started.isoformat()),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "zicht_version": version(),
        "contract_version": store.CONTRACT_VERSION,
        "digest_scheme": fsmod.DIGEST_SCHEME,
        "config": ctx.settings.to_jsonable(),
        "config_files": applied_files(ctx.settings),  # conf/base, local, ZICHT_CONF, --conf
        "period": facts.get("period"),
        "persons_snapshots": facts.get("persons_snapshots"),
        "input_dir": facts.get("input_dir"),
        "store": facts.get("store"),
        "inputs": facts.get("inputs", {}),
        "extra_columns_dropped": facts.get("extra_columns_dropped", {}),
        # area vintages (v2): the target, and national totals placed at wijk or gemeente only
        **({"vintages": facts["vintages"]} if facts.get("vintages") else {}),
        "skipped_indicators": facts.get("skipped_indicators", {}),
        "skipped_stages": skipped_stages,
        "stages": stages,
        "outputs": outputs_,
        "recovered": ctx.recovered,
        "exports": previous.get("exports", []),
        "timings_s": {**previous.get("timings_s", {}), **ctx.timer.timings},
    }


def _restore(ctx: RunContext, previous: dict[str, Any]) -> None:
    """A stage job picks up the facts of the stages before it from the manifest, and the
    store ingest made."""
    for name, s in previous.get("stages", {}).items():
        ctx.results[name] = StageResult(facts=s.get("facts", {}))
    store_info = previous.get("store") or {}
    location = store_info.get("location")
    if location:
        ctx.store = location
        state = store.read_state(ctx.fs, location)
        if state is None:
            raise InputError(
                f"the store {location} that ingest made is gone (purged?): run zicht ingest again"
            )
        ctx.store_facts = state


def execute(
    ctx: RunContext,
    stages: Sequence[Stage],
    *,
    command: str,
    previous: dict[str, Any] | None = None,
    commit_mode: str | None = None,
) -> dict[str, Any]:
    """Run ``stages`` on ``ctx`` as one MLflow run; write the manifest; commit the output.

    ``commit_mode``: ``rename``/``pointer`` (``zicht run``: ``ctx.work`` is a fresh folder that
    replaces the output at the end) or None (a stage job writes into the output in place).
    Returns the manifest.
    """
    previous = previous or {}
    started = dt.datetime.now(dt.UTC)
    stage_names = [s.name for s in stages]
    tags = {
        "zicht.run_id": ctx.run_id,
        "zicht.command": command,
        "zicht.stage": ",".join(stage_names),
    }
    if ctx.input:
        tags["zicht.input"] = ctx.input
    params = ctx.settings.to_flat_params()
    if command == "export":
        tags["zicht.export_of"] = ctx.run_id
        params = {k: v for k, v in params.items() if k.startswith("disclosure.")}
    if previous:
        _restore(ctx, previous)
    try:
        for stage in stages:  # refusals that need no MLflow run: nothing has started yet
            precheck = getattr(stage, "precheck", None)
            if precheck is not None:
                precheck(ctx)
        with (
            capture_log() as captured,
            Progress(ctx.spark, lambda: ctx.current_stage, interval_s=PROGRESS_INTERVAL_S),
            tracked_run(
                experiment=ctx.settings.mlflow.experiment,
                output=ctx.output,
                run_name=f"zicht-{command}-{started:%Y%m%dT%H%M%S}",
                tags=tags,
                params=params,
            ) as tracker,
        ):
            if ctx.lease is not None:  # the next run marks this one KILLED if it dies
                ctx.lease.mlflow_run_id = tracker.run_id
                ctx.lease.renew()
            for stage in stages:
                ctx.current_stage = stage.name
                result = stage.run(ctx)
                ctx.results[stage.name] = result
                faults.point(f"after:{stage.name}")
                tracker.metrics(result.metrics)
                log_hook = getattr(stage, "log", None)
                if log_hook is not None:
                    log_hook(ctx, result, tracker)
            store_info = ctx.fact("store") or {}
            tracker.tags({"zicht.store_reused": str(bool(store_info.get("reused"))).lower()})
            manifest = _manifest(
                ctx, started=started, mlflow_run_id=tracker.run_id, previous=previous
            )
            metrics = {f"time_{k}_s": v for k, v in ctx.timer.timings.items()}
            for table, a in manifest["inputs"].items():
                for k in ("rows_read", "rows_used", "rows_rejected", "rows_excluded"):
                    metrics[f"{table}_{k}"] = float(a[k])
            tracker.metrics(metrics)
            text = json.dumps(manifest, indent=2, default=str)
            ctx.fs.write_text(ctx.location("manifest"), text, overwrite=True)
            tracker.text(text, "manifest.json")
            log_text = captured.text()
            ctx.fs.write_text(ctx.location("log"), log_text, overwrite=True)
            tracker.text(log_text, "zicht.log")
            faults.point("before_commit")
            if commit_mode is not None:
                ctx.fs.delete(ctx.root("stage"))  # person-level hand-overs are not kept
                outputs.commit(ctx.fs, ctx.work, ctx.output, ctx.run_id, commit_mode)
                after_commit(ctx, stages)
    except BaseException:
        if commit_mode is not None:
            outputs.discard(ctx.fs, ctx.work, ctx.output)
        raise
    return manifest


def after_commit(ctx: RunContext, stages: Sequence[Stage]) -> None:
    for stage in stages:
        hook = getattr(stage, "after_commit", None)
        if hook is not None:
            hook(ctx, ctx.results[stage.name])


@contextmanager
def claimed(
    fs: fsmod.FileSystem, output: str, *, run_id: str, command: str
) -> Iterator[tuple[outputs.Lease, list[str]]]:
    """Hold the output's lease while a command works; first clean what dead commands left
    (their work folders, an output moved aside, pending releases, their MLflow run)."""
    from zicht.jobs.tracking import mark_killed

    with outputs.Lease(fs, output, run_id=run_id, command=command) as lease:
        recovered = outputs.recover(fs, output) + recover_releases(fs, output)
        dead_run = (lease.previous or {}).get("mlflow_run_id")
        if mark_killed(output, str(dead_run) if dead_run else None):
            recovered.append(f"marked MLflow run {dead_run} KILLED")
        yield lease, recovered


def recover_releases(ctx_fs: fsmod.FileSystem, output: str) -> list[str]:
    """The release register's pending entries of ``output`` that were never committed."""
    from zicht.jobs import catalog
    from zicht.jobs.export import recover_register

    register = catalog.get("release_register").path(fsmod.parent(output))
    committed: set[str] = set()
    manifest = catalog.get("manifest").path(outputs.readable(ctx_fs, output))
    if ctx_fs.exists(manifest):
        body = json.loads(ctx_fs.read_text(manifest))
        committed = {body.get("run_id")} | {e.get("release_id") for e in body.get("exports", [])}
    return recover_register(ctx_fs, register, output, committed)


def new_run_id() -> str:
    return uuid.uuid4().hex
