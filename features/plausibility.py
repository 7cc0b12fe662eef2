"""Plausibility against published totals: zicht's incident counts beside CBS's and the police's.

Reads and writes nothing. The first thing an analyst checks is whether the registered crime
zicht counts matches what CBS publishes (StatLine 47018NED, "Geregistreerde misdrijven; soort
misdrijf, wijk, buurt"; ``../shared/data/real/nl_cbs_crime/`` has its metadata and gemeente
totals). :func:`compare_with_published` takes a reference table with one row per ``gemeente_code``,
``year`` and ``crime_class`` (the classes of 47018NED; ``0.0.0`` is the total of all classes)
and its ``count``, and returns zicht's count of located incidents beside it, the difference and
whether the difference exceeds ``max_share`` of the published count. A reference row that zicht
has no incident for is compared with 0. The reference is small (gemeenten x years x classes), so
the job collects the comparison for the manifest.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

TOTAL_CLASS = "0.0.0"
REFERENCE_SCHEMA = "gemeente_code string, year int, crime_class string, count long"
COLUMNS = (
    "gemeente_code",
    "year",
    "crime_class",
    "zicht_count",
    "published_count",
    "difference",
    "difference_share",
    "is_flagged",
)


def compare_with_published(
    incidents: DataFrame, reference: DataFrame, *, max_share: float
) -> DataFrame:
    """One row per reference row: gemeente_code, year, crime_class, zicht_count,
    published_count, difference (zicht - published), difference_share (of the published count;
    null when that is 0), is_flagged (the share above ``max_share``, or zicht counts incidents
    the publication has none of)."""
    inc = incidents.select(
        "gemeente_code", F.col("year").cast("int").alias("year"), F.trim("crime_class").alias("c")
    )
    by_class = inc.groupBy("gemeente_code", "year", F.col("c").alias("crime_class")).agg(
        F.count(F.lit(1)).alias("zicht_count")
    )
    total = inc.groupBy("gemeente_code", "year").agg(
        F.lit(TOTAL_CLASS).alias("crime_class"), F.count(F.lit(1)).alias("zicht_count")
    )
    ref = reference.select(
        F.trim("gemeente_code").alias("gemeente_code"),
        F.col("year").cast("int").alias("year"),
        F.trim("crime_class").alias("crime_class"),
        F.col("count").cast("long").alias("published_count"),
    )
    keys = ["gemeente_code", "year", "crime_class"]
    zicht = F.coalesce(F.col("zicht_count"), F.lit(0)).cast("long")
    published = F.col("published_count")
    diff = zicht - published
    share = F.when(published > 0, F.abs(diff) / published)
    flagged = F.when(published > 0, share > F.lit(max_share)).otherwise(zicht > 0)
    return (
        ref.join(by_class.unionByName(total), keys, "left")
        .select(
            *keys,
            zicht.alias("zicht_count"),
            published.alias("published_count"),
            diff.alias("difference"),
            share.cast("double").alias("difference_share"),
            flagged.alias("is_flagged"),
        )
        .orderBy(*keys)
    )
