"""Regions: configured groups of gemeenten, a level between gemeente and the study area.

A partner whose configuration says ``region: true`` (``export.partners.<name>``) makes its
gemeenten a region. With at least one region the area hierarchy gains two levels above the
gemeente: ``regio`` (one area per region, ``area_code`` the partner's name) and
``studiegebied`` (the whole study area, one area, ``area_code`` :data:`STUDY_AREA_CODE`). The
indicator stage computes every indicator there exactly (additive counts summed, distinct
persons counted per level, rates from the level's own counts), and disclosure control
protects them as levels of the same tree: gemeente within regio (for the gemeenten of a
region), and every gemeente within the study area. A region total is thus never a new
aggregate a partner could subtract its published gemeenten from.

Regions must not overlap (checked when the settings load, ``zicht.features.settings``): a
gemeente in two regions would make the hierarchy a lattice, which the secondary suppression's
walk along the tree does not protect. Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.settings import PartnerSettings

REGION = "regio"
STUDY_AREA = "studiegebied"
REFERENCE_LEVELS = (REGION, STUDY_AREA)  # above the gemeente, present only with a region
STUDY_AREA_CODE = "studiegebied"  # the one area of the study-area level
STUDY_AREA_NAME = "Studiegebied (alle gemeenten)"


@dataclass(frozen=True)
class Regions:
    """The configured regions: ``of_gemeente`` maps each gemeente of a region to the region's
    code (the partner's name), ``labels`` each region code to its label."""

    of_gemeente: Mapping[str, str]
    labels: Mapping[str, str]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted(self.labels))

    def gemeenten(self, region: str) -> tuple[str, ...]:
        return tuple(sorted(g for g, r in self.of_gemeente.items() if r == region))

    def region_of(self, gemeente_code: Column) -> Column:
        """The region code of a gemeente code column (null outside every region)."""
        pairs = [x for g, r in sorted(self.of_gemeente.items()) for x in (F.lit(g), F.lit(r))]
        return F.create_map(*pairs)[gemeente_code].cast(T.StringType())


def regions_of(partners: Mapping[str, PartnerSettings]) -> Regions | None:
    """The regions of the partners' configuration; None when no partner defines one (then
    nothing in the indicator, disclosure or export stages changes)."""
    of_gemeente: dict[str, str] = {}
    labels: dict[str, str] = {}
    for name, p in sorted(partners.items()):
        if not p.region:
            continue
        labels[name] = p.label or name
        for g in p.gemeenten:
            # disjoint by the settings check; first wins if a caller bypassed it
            of_gemeente.setdefault(g, name)
    return Regions(of_gemeente, labels) if labels else None


def reference_codes(regions: Regions, gemeente_code: Column) -> list[tuple[str, Column]]:
    """``(level, area_code)`` of the reference levels for a row placed in ``gemeente_code``
    (area_code null where the row is in no region, or has no gemeente)."""
    return [
        (REGION, regions.region_of(gemeente_code)),
        (STUDY_AREA, F.when(gemeente_code.isNotNull(), F.lit(STUDY_AREA_CODE))),
    ]


def level_codes(regions: Regions, gemeente_code: Column) -> list[Column]:
    """:func:`reference_codes` as ``level, area_code`` structs (``explode`` them)."""
    return [
        F.struct(F.lit(level).alias("level"), code.alias("area_code"))
        for level, code in reference_codes(regions, gemeente_code)
    ]
