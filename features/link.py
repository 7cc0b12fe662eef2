"""Link the validated sources on their pseudonyms and codes.

Reads nothing and writes nothing. Builds the linked tables of DEVELOPERS.md from accepted rows:
``incidents_located`` (each incident in one buurt, with its year, class and phenomena),
``residence`` (where each registered person lives in each year of the period) and the area
hierarchy. Locating follows the contract: the incident's buurt_code, else its address's buurt,
else the buurt polygon that contains its RD point. Point-in-polygon runs inside the executors
with a shapely STRtree over the buurt polygons (no JVM spatial package is available offline),
sent to them once as a broadcast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from pyspark import Broadcast
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.settings import Phenomenon

LEVELS = ("buurt", "wijk", "gemeente")


# Per Python worker process (Spark reuses them between tasks): content digest of the polygons
# -> (codes, STRtree), so each worker parses the broadcast polygons and builds the tree once.
_TREES: dict[str, tuple[Any, Any]] = {}
_TREES_KEPT = 4  # one run uses one polygon set; a test session a few


def _buurt_tree(key: str, polygons: Broadcast[tuple[list[str], list[bytes]]]) -> tuple[Any, Any]:
    """(codes, STRtree) of the broadcast polygons, built on first use in this worker."""
    found = _TREES.get(key)
    if found is None:
        import numpy as np
        import shapely
        from shapely.strtree import STRtree

        codes, wkb = polygons.value
        if len(_TREES) >= _TREES_KEPT:
            _TREES.clear()
        found = (np.array(codes, dtype=object), STRtree(shapely.from_wkb(wkb)))
        _TREES[key] = found
    return found


def with_point_buurt(df: DataFrame, *, polygons: Sequence[tuple[str, str]]) -> DataFrame:
    """Add ``point_buurt_code``: the buurt whose polygon holds (x, y), for rows that need it.

    Only rows without buurt_code and address_id are looked up. ``polygons`` are
    (buurt_code, WKT) pairs, ~14k buurten and ~35 MB nationally: they go to the executors once,
    as a broadcast of their WKB (parsed here, so a bad WKT fails before any task), and each
    Python worker builds its STRtree once (``_buurt_tree``). Only the looked-up points' x and y
    travel to Python, not the rows.
    """
    polys = [(code, wkt) for code, wkt in polygons if wkt]
    if not polys:
        return df.withColumn("point_buurt_code", F.lit(None).cast("string"))
    import shapely

    codes = [c for c, _ in polys]
    wkb = [bytes(b) for b in shapely.to_wkb(shapely.from_wkt([w for _, w in polys]))]
    digest = hashlib.sha256()
    for code, b in zip(codes, wkb, strict=True):
        digest.update(code.encode() + b"\0" + len(b).to_bytes(8, "little") + b)
    key = digest.hexdigest()
    shipped = df.sparkSession.sparkContext.broadcast((codes, wkb))

    def locate(x: pd.Series, y: pd.Series) -> pd.Series:
        import shapely

        buurt_codes, tree = _buurt_tree(key, shipped)
        result = pd.Series([None] * len(x), index=x.index, dtype=object)
        need = x.notna() & y.notna()
        if need.any():
            pts = shapely.points(x[need].to_numpy(), y[need].to_numpy())
            pt_idx, poly_idx = tree.query(pts, predicate="intersects")
            found = pd.Series(buurt_codes[poly_idx], index=x.index[need][pt_idx])
            # a point on a shared edge touches two buurten: the smallest code wins, so the
            # result does not depend on the order of the polygons
            found = found.groupby(level=0).min()
            result.loc[found.index] = found.values
        return result

    needs_point = (
        F.col("buurt_code").isNull()
        & F.col("address_id").isNull()
        & F.col("x").isNotNull()
        & F.col("y").isNotNull()
    )
    # pyspark's stubs have no overload for a two-Series scalar UDF given as a function
    point: Callable[[Column, Column], Column] = F.pandas_udf(locate, T.StringType())  # type: ignore[call-overload]
    return df.withColumn(
        "point_buurt_code", point(F.when(needs_point, F.col("x")), F.when(needs_point, F.col("y")))
    )


def add_point_rejects(validated: DataFrame, *, has_polygons: bool) -> DataFrame:
    """Reject incidents located only by a point that falls in no buurt polygon."""
    needs_point = (
        F.col("buurt_code").isNull()
        & F.col("address_id").isNull()
        & F.col("x").isNotNull()
        & F.col("y").isNotNull()
    )
    rule = "location.no_polygons" if not has_polygons else "location.outside_areas"
    broken = needs_point & F.col("point_buurt_code").isNull()
    new_rule = F.when(
        broken,
        F.when(F.col("reject_rule").isNull(), F.lit(rule)).otherwise(
            F.concat_ws(";", F.col("reject_rule"), F.lit(rule))
        ),
    ).otherwise(F.col("reject_rule"))
    return validated.withColumn("reject_rule", new_rule).withColumn(
        "is_excluded", F.col("is_excluded") & F.col("reject_rule").isNull()
    )


def phenomena_of_incident(
    phenomena: Mapping[str, Phenomenon], *, code: Column, crime_class: Column
) -> Column:
    """array<string> of the phenomena an incident belongs to (catalogue rules, conf/base)."""
    is_class = code.rlike(r"^\d\.\d{1,2}\.\d{1,2}$")
    parts = []
    for key, ph in phenomena.items():
        by_code = (
            code.isin(list(ph.incident_codes))
            if ph.incident_codes
            # a phenomenon defined by classes only takes coded incidents by their class
            else (~is_class & crime_class.isin(list(ph.classes)))
        )
        by_class = is_class & code.isin(list(ph.classes)) if ph.classes else F.lit(False)
        parts.append(F.when(by_code | by_class, F.lit(key)))
    if not parts:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*parts))


def locate_incidents(
    incidents: DataFrame,
    *,
    areas: DataFrame,
    addresses: DataFrame | None,
    phenomena: Mapping[str, Phenomenon],
) -> DataFrame:
    """``incidents_located``: accepted incidents with buurt, wijk, gemeente, x, y, year, phenomena."""
    inc = incidents
    if "point_buurt_code" not in inc.columns:
        inc = inc.withColumn("point_buurt_code", F.lit(None).cast("string"))
    if addresses is not None:
        addr = addresses.select(
            F.col("address_id").alias("_a_id"), F.col("buurt_code").alias("_addr_buurt")
        )
        inc = inc.join(addr, F.col("address_id") == F.col("_a_id"), "left").drop("_a_id")
    else:
        inc = inc.withColumn("_addr_buurt", F.lit(None).cast("string"))
    inc = inc.withColumn(
        "_buurt", F.coalesce(F.col("buurt_code"), F.col("_addr_buurt"), F.col("point_buurt_code"))
    )
    area = areas.select(
        F.col("buurt_code").alias("_buurt"),
        "wijk_code",
        "gemeente_code",
        F.col("x").alias("_bx"),
        F.col("y").alias("_by"),
    )
    inc = inc.join(F.broadcast(area), "_buurt", "inner")
    return inc.select(
        "incident_id",
        "incident_date",
        F.year("incident_date").alias("year"),
        "crime_code",
        "crime_class",
        F.col("_buurt").alias("buurt_code"),
        "wijk_code",
        "gemeente_code",
        # the point when the police gave one, else the buurt centroid (approximate)
        F.coalesce(F.col("x"), F.col("_bx")).alias("x"),
        F.coalesce(F.col("y"), F.col("_by")).alias("y"),
        phenomena_of_incident(
            phenomena, code=F.col("crime_code"), crime_class=F.col("crime_class")
        ).alias("phenomena"),
    )


def build_residence(
    persons: DataFrame,
    *,
    addresses: DataFrame,
    areas: DataFrame,
    years: Sequence[int],
) -> DataFrame:
    """Where each registered person lives in each year: person_id, year, buurt, wijk, gemeente,
    birth_year, and the snapshot's address_id, household_id and registered_since.

    With ``snapshot_year`` each year uses its own 1 January snapshot (a year without one uses
    the latest earlier snapshot, else the earliest); without it the single snapshot serves every
    year. Persons without an address are registered but not resident in any buurt.
    """
    years_df = persons.sparkSession.createDataFrame([(int(y),) for y in years], "year long")
    p = persons.where(F.col("address_id").isNotNull())
    # Pick, per analysis year, the snapshot to use. Without snapshot_year every row is a
    # candidate for every year.
    snaps = persons.select("snapshot_year").distinct()
    choice = (
        years_df.crossJoin(snaps)
        .withColumn(
            "_rank",
            F.when(F.col("snapshot_year").isNull(), F.lit(0))
            .when(F.col("snapshot_year") <= F.col("year"), F.col("year") - F.col("snapshot_year"))
            .otherwise(F.lit(10_000) + F.col("snapshot_year") - F.col("year")),
        )
        .groupBy("year")
        .agg(F.min_by("snapshot_year", "_rank").alias("snapshot_year"))
    )
    joined = p.join(
        F.broadcast(choice),
        p["snapshot_year"].eqNullSafe(choice["snapshot_year"]),
        "inner",
    ).drop(choice["snapshot_year"])
    addr = addresses.select(F.col("address_id").alias("_a_id"), F.col("buurt_code"))
    area = areas.select("buurt_code", "wijk_code", "gemeente_code")
    return (
        joined.join(addr, F.col("address_id") == F.col("_a_id"), "inner")
        .join(F.broadcast(area), "buurt_code", "inner")
        .select(
            "person_id",
            "year",
            "buurt_code",
            "wijk_code",
            "gemeente_code",
            "birth_year",
            # for the context and register-pattern indicators (households, residential
            # mobility, adults per dwelling, household income of buyers)
            "address_id",
            "household_id",
            "registered_since",
        )
    )


def area_hierarchy(areas: DataFrame) -> DataFrame:
    return areas.select("buurt_code", "wijk_code", "gemeente_code")


def area_names(areas: DataFrame) -> DataFrame:
    """level, area_code, area_name for every area at every level."""
    b = areas.select(
        F.lit("buurt").alias("level"),
        F.col("buurt_code").alias("area_code"),
        F.col("buurt_name").alias("area_name"),
    )
    w = areas.select(
        F.lit("wijk").alias("level"),
        F.col("wijk_code").alias("area_code"),
        F.col("wijk_name").alias("area_name"),
    )
    g = areas.select(
        F.lit("gemeente").alias("level"),
        F.col("gemeente_code").alias("area_code"),
        F.col("gemeente_name").alias("area_name"),
    )
    # a wijk or gemeente name repeats on each of its buurten: keep one (the smallest, stable)
    return (
        b.unionByName(w)
        .unionByName(g)
        .groupBy("level", "area_code")
        .agg(F.min("area_name").alias("area_name"))
    )
