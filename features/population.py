"""Whose population the denominators count: the register, or ``areas.inhabitants``.

Reads and writes nothing. CONTRACT.md, *Population*: ``persons`` is either the register of all
residents or an extract (the suspects only, say). Taking the denominators from an extract
publishes nonsense: The Hague's 548 cleared burglaries over its 290 burglars make 1,889.7
burglaries per 1,000 "inhabitants" of a city of about half a million. The run decides once
(:func:`decide_population`) from the figures :func:`population_figures` computes, and records
the decision in the manifest and the codebook:

- ``population.source: register`` or ``extract``: as configured;
- ``auto`` (the default): an extract when the residents in ``persons`` are fewer than
  ``population.min_coverage`` (default 0.5) of ``areas.inhabitants`` over the study area.

Whatever was configured, a ``persons`` in which every resident is a suspect is an extract: a
rate whose denominator is the numerator's own population is never published. With an extract,
the inhabitants come from ``areas.inhabitants`` (and ``inhabitants_12plus``) and the indicators
that need the register (households, age groups, youth, exposure, mobility) are skipped with that
reason (:mod:`zicht.features.indicators`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.features.settings import PopulationSettings


@dataclass(frozen=True)
class PopulationDecision:
    source: str  # register or extract
    configured: str  # register, extract or auto
    reason: str
    residents: int | None = None  # persons living in the study area (largest year)
    suspect_residents: int | None = None  # of them, suspects of an incident
    inhabitants: int | None = None  # sum of areas.inhabitants
    coverage: float | None = None  # residents / inhabitants

    def as_fact(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def population_figures(
    residence: DataFrame, *, suspects: DataFrame | None, areas: DataFrame
) -> DataFrame:
    """One row: ``residents`` (persons living in the study area, in the year with the most),
    ``suspect_persons`` (distinct suspects, anywhere) and ``inhabitants`` (sum of
    ``areas.inhabitants``; null without the column). Cheap: one column of each table."""
    residents = residence.groupBy("year").agg(F.count(F.lit(1)).alias("residents"))
    best = residents.agg(F.max("residents").alias("residents"))
    if suspects is not None:
        n_suspects = suspects.agg(F.count_distinct("person_id").alias("suspect_persons"))
    else:
        n_suspects = areas.sparkSession.range(1).select(
            F.lit(0).cast("long").alias("suspect_persons")
        )
    inhabitants = (
        F.sum("inhabitants").cast("long") if "inhabitants" in areas.columns else F.lit(None)
    )
    total = areas.agg(inhabitants.cast("long").alias("inhabitants"))
    return best.crossJoin(n_suspects).crossJoin(total)


def suspect_residents(residence: DataFrame, *, suspects: DataFrame) -> DataFrame:
    """One row: ``suspect_residents``, the residents who are suspects, in the year with the
    most residents (needed only when there are no more residents than suspects)."""
    ids = suspects.select("person_id").distinct().withColumn("_suspect", F.lit(1))
    per_year = (
        residence.select("person_id", "year")
        .join(F.broadcast(ids), "person_id", "left")
        .groupBy("year")
        .agg(F.count(F.lit(1)).alias("n"), F.count("_suspect").alias("suspect_residents"))
    )
    return per_year.orderBy(F.col("n").desc(), "year").limit(1).select("suspect_residents")


def decide_population(
    settings: PopulationSettings,
    *,
    residents: int | None,
    suspect_residents: int | None,
    inhabitants: int | None,
) -> PopulationDecision:
    """register or extract, with the reason (the figures from :func:`population_figures`)."""
    configured = settings.source
    coverage = residents / inhabitants if residents is not None and inhabitants else None
    figures: dict[str, Any] = {
        "residents": residents,
        "suspect_residents": suspect_residents,
        "inhabitants": inhabitants,
        "coverage": None if coverage is None else round(coverage, 6),
    }
    if residents and suspect_residents == residents:
        reason = (
            f"every one of the {residents} residents in persons is a suspect: the numerators' own "
            "population, never a denominator"
        )
        return PopulationDecision("extract", configured, reason, **figures)
    if configured in ("register", "extract"):
        return PopulationDecision(configured, configured, "configured", **figures)
    if coverage is None:
        reason = "areas.inhabitants is absent: persons is taken as the register"
        return PopulationDecision("register", configured, reason, **figures)
    share = f"{coverage:.1%} of areas.inhabitants"
    if coverage < settings.min_coverage:
        reason = f"persons covers {share}, below population.min_coverage {settings.min_coverage}"
        return PopulationDecision("extract", configured, reason, **figures)
    reason = f"persons covers {share}, at least population.min_coverage {settings.min_coverage}"
    return PopulationDecision("register", configured, reason, **figures)
