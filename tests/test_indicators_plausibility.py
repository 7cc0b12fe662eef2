"""zicht's incident counts beside published totals (StatLine 47018NED-like), inline and by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from zicht.features.plausibility import compare_with_published

pytestmark = pytest.mark.spark

# gemeente, year, class (police exports carry a trailing space)
INCIDENTS = (
    [("GM0001", 2024, "1.1.1")] * 9
    + [("GM0001", 2024, "1.2.3 ")] * 20
    + [("GM0001", 2023, "1.1.1")] * 4
    + [("GM0002", 2024, "3.1.1")] * 3
)
REFERENCE = [
    ("GM0001", 2024, "1.1.1", 10),  # 9 against 10: 10 % off, not above 10 %
    ("GM0001", 2024, "1.2.3", 25),  # 20 against 25: 20 % off, flagged
    ("GM0001", 2024, "0.0.0", 35),  # all classes: 29 against 35, 17 % off, flagged
    ("GM0001", 2023, "1.1.1", 4),  # equal
    ("GM0002", 2024, "1.1.1", 5),  # zicht has none: 0 against 5, flagged
    ("GM0002", 2024, "3.1.1", 0),  # published 0 but zicht counts 3: flagged, no share
]


def test_counts_beside_the_published_ones(spark) -> None:
    incidents = spark.createDataFrame(
        INCIDENTS, "gemeente_code string, year int, crime_class string"
    )
    reference = spark.createDataFrame(
        REFERENCE, "gemeente_code string, year int, crime_class string, count long"
    )
    got = compare_with_published(incidents, reference, max_share=0.1).toPandas()
    expected = pd.DataFrame(
        [
            ("GM0001", 2023, "1.1.1", 4, 4, 0, 0.0, False),
            ("GM0001", 2024, "0.0.0", 29, 35, -6, 6 / 35, True),
            ("GM0001", 2024, "1.1.1", 9, 10, -1, 0.1, False),
            ("GM0001", 2024, "1.2.3", 20, 25, -5, 0.2, True),
            ("GM0002", 2024, "1.1.1", 0, 5, -5, 1.0, True),
            ("GM0002", 2024, "3.1.1", 3, 0, 3, None, True),
        ],
        columns=[
            "gemeente_code", "year", "crime_class", "zicht_count", "published_count",
            "difference", "difference_share", "is_flagged",
        ],
    )  # fmt: skip
    pd.testing.assert_frame_equal(
        got, expected.astype(got.dtypes.to_dict()), check_exact=False, atol=1e-12
    )
