"""Area vintages during validation: the target vintage, and the placement of old codes.

Reads nothing itself: ``zicht.jobs.validate_inputs`` hands it each validated table at three
points (after the contract rules, after the point step, after the write) and it applies the
rules of ``zicht.features.vintages``. Without a ``vintage`` column in ``areas`` and without an
``area_changes`` table every hook returns its frame unchanged, so version 1 inputs validate
exactly as before. The target vintage and the change graph are resolved on the driver: areas
(~14k buurten a vintage) and area_changes are small by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features import vintages as V
from zicht.features.settings import Settings
from zicht.jobs.io import InputError

if TYPE_CHECKING:
    from zicht.jobs.context import RunContext


class VintageStep:
    """State of one validation: the target, the accepted areas of every vintage, the changes."""

    def __init__(
        self, spark: SparkSession, settings: Settings, *, has_vintage: bool, has_addresses: bool
    ) -> None:
        self.spark = spark
        self.configured = settings.areas.target_vintage
        self.has_vintage = has_vintage
        self.has_addresses = has_addresses
        self.target: int | None = None
        self.areas: DataFrame | None = None  # accepted rows of every vintage
        self.changes: DataFrame | None = None
        self._placements: DataFrame | None = None
        self.placed: dict[str, dict[str, int]] = {}

    @property
    def active(self) -> bool:
        return self.has_vintage

    def after_rules(self, name: str, validated: DataFrame) -> DataFrame:
        """After ``validate_table``: the vintage rules of areas and area_changes, and for
        incidents and signals the first half of the placement (signals: all of it)."""
        if name == "areas":
            if self.has_vintage:
                self.target = self._target(validated)
                # a vintage column without a single value (a tool writing every contract
                # column) is no vintage at all: version 1 behaviour
                self.has_vintage = self.target is not None
            return V.add_area_vintage_rules(
                validated, has_vintage=self.has_vintage, target=self.target
            )
        if name == "area_changes":
            return V.add_area_change_rules(validated, areas=self.areas)
        if name in ("incidents", "signals") and self.active:
            v = V.prepare_placement(
                validated,
                placements=self.placements(),
                by_address=self.has_addresses,
                by_point=name == "incidents",
            )
            return V.finish_placement(v) if name == "signals" else v
        return validated

    def after_points(self, name: str, validated: DataFrame) -> DataFrame:
        """Incidents after the point step: old codes neither address nor point placed."""
        if name == "incidents" and self.active:
            return V.finish_placement(validated)
        return validated

    def after_write(self, name: str, validated: DataFrame) -> None:
        """Keep what the later tables need (the written frame: its plan is cut)."""
        if name == "areas" and self.has_vintage:
            self.areas = validated.where(F.col("reject_rule").isNull())
        if name == "area_changes":
            self.changes = validated.where(F.col("reject_rule").isNull())
        if name in ("incidents", "signals") and self.active:
            # national totals only: no area is named in the manifest
            totals = V.placement_totals([V.accepted_rows(validated)]).collect()
            self.placed[name] = {r["placement_level"]: int(r["count"]) for r in totals}

    def _target(self, validated: DataFrame) -> int | None:
        # distinct vintages of the accepted rows: a handful of values
        present = sorted(
            int(r[0])
            for r in validated.where(F.col("reject_rule").isNull() & F.col("vintage").isNotNull())
            .select("vintage")
            .distinct()
            .collect()
        )
        if not present:
            return None
        if self.configured is None:
            return present[-1]
        if self.configured not in present:
            raise InputError(
                f"table areas: areas.target_vintage {self.configured} is not among the "
                f"vintages present ({', '.join(map(str, present))})"
            )
        return self.configured

    def placements(self) -> DataFrame:
        """One row per old buurt code: its (pseudo) code in the target, or its reject."""
        if self._placements is None:
            assert self.areas is not None and self.target is not None
            resolved = resolve_on_driver(self.areas, self.changes, target=self.target)
            resolved = resolved.drop(columns=["parts"])
            rows = [tuple(None if pd.isna(x) else x for x in r) for r in resolved.itertuples(False)]
            self._placements = self.spark.createDataFrame(rows, V.PLACEMENT_SCHEMA)
        return self._placements

    def facts(self) -> dict[str, Any]:
        """For the manifest: the vintages and the target (national figures only)."""
        if not self.has_vintage:
            return {}
        return {
            "target_vintage": self.target,
            # rows counted from the containing wijk or gemeente up, never at a buurt
            "placed_above_buurt": self.placed,
        }


def inexact_target_buurten(ctx: RunContext) -> set[str]:
    """The target buurten whose old years are undercounted (:func:`V.inexact_buurten`), from
    the store's areas of every vintage and its area_changes; empty without vintages. The
    export publishes no buurt trend for them."""
    target = (ctx.store_facts.get("vintages") or {}).get("target_vintage")
    accounting = ctx.store_facts.get("accounting", {})
    if target is None or "area_changes" not in accounting:
        return set()
    areas = ctx.read("validated", table="areas").where(
        F.col("reject_rule").isNull() & F.col("vintage").isNotNull()
    )
    changes = ctx.read("validated", table="area_changes").where(F.col("reject_rule").isNull())
    return V.inexact_buurten(resolve_on_driver(areas, changes, target=int(target)))


def resolve_on_driver(areas: DataFrame, changes: DataFrame | None, *, target: int) -> pd.DataFrame:
    """:func:`V.resolve_placements` of the accepted areas of every vintage and the accepted
    area_changes, collected to the driver: small by construction (one row per buurt and
    vintage, one per change)."""
    a = areas.select("vintage", "buurt_code", "wijk_code", "gemeente_code")
    cols = ["vintage_from", "code_from", "vintage_to", "code_to"]
    changes_pd = (
        pd.DataFrame(changes.select(*cols).collect(), columns=cols)
        if changes is not None
        else pd.DataFrame(columns=cols)
    )
    return V.resolve_placements(
        pd.DataFrame(a.collect(), columns=a.columns), changes_pd, target=target
    )
