"""Disclosure control with a region: the region total must not give a suppressed gemeente back.

Planted: the region ``regio-x`` holds GM0001 and GM0002, GM0003 is outside. Incidents:
GM0001 has one buurt with 3 (so buurt, wijk and gemeente are primary-suppressed: 3 < 10),
GM0002 two buurten with 15 and 25 (40), GM0003 one buurt with 30. The region is 43 and the
study area 73. With the region and GM0002 published, GM0001 = 43 - 40 = 3 exactly: primary
suppression alone leaves it recoverable, and the audit must say so. With secondary suppression
every suppressed count must keep a feasible interval of at least protection_width (2), which
the test checks with its own linear programme (scipy's HiGHS) over the relations of the tree
written out by hand below, not the code's relations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from zicht.features.regions import Regions
from zicht.features.settings import DisclosureSettings, IndicatorSpec
from zicht.models.disclosure import apply_disclosure, disclosure_report

pytestmark = pytest.mark.spark

YEAR = 2024
REGIONS = Regions({"GM0001": "regio-x", "GM0002": "regio-x"}, {"regio-x": "Regio X"})
SPECS = [
    IndicatorSpec("x.incidents", "x", "count", "d"),
    IndicatorSpec("context.inhabitants", "", "count", "d"),
    IndicatorSpec("x.incidents_per_1000", "x", "rate", "d", "x.incidents", "context.inhabitants"),
]
HIERARCHY = [
    ("BU00010101", "WK000101", "GM0001"),
    ("BU00020101", "WK000201", "GM0002"),
    ("BU00020102", "WK000201", "GM0002"),
    ("BU00030101", "WK000301", "GM0003"),
]
INCIDENTS = {
    ("buurt", "BU00010101"): 3,
    ("wijk", "WK000101"): 3,
    ("gemeente", "GM0001"): 3,
    ("buurt", "BU00020101"): 15,
    ("buurt", "BU00020102"): 25,
    ("wijk", "WK000201"): 40,
    ("gemeente", "GM0002"): 40,
    ("buurt", "BU00030101"): 30,
    ("wijk", "WK000301"): 30,
    ("gemeente", "GM0003"): 30,
    ("regio", "regio-x"): 43,
    ("studiegebied", "studiegebied"): 73,
}
# the additive relations of the tree, by hand: parent = sum(children)
RELATIONS = [
    (("wijk", "WK000101"), [("buurt", "BU00010101")]),
    (("gemeente", "GM0001"), [("wijk", "WK000101")]),
    (("wijk", "WK000201"), [("buurt", "BU00020101"), ("buurt", "BU00020102")]),
    (("gemeente", "GM0002"), [("wijk", "WK000201")]),
    (("wijk", "WK000301"), [("buurt", "BU00030101")]),
    (("gemeente", "GM0003"), [("wijk", "WK000301")]),
    (("regio", "regio-x"), [("gemeente", "GM0001"), ("gemeente", "GM0002")]),
    (("studiegebied", "studiegebied"), [("regio", "regio-x"), ("gemeente", "GM0003")]),
]


def _cells(spark, *, with_reference: bool = True):
    rows = []
    for (level, code), v in INCIDENTS.items():
        if not with_reference and level in ("regio", "studiegebied"):
            continue
        inhabitants = 1000.0 * v  # large everywhere: only the incidents are small
        rows.append((level, code, YEAR, "x.incidents", float(v), "ok"))
        rows.append((level, code, YEAR, "context.inhabitants", inhabitants, "ok"))
        rows.append((level, code, YEAR, "x.incidents_per_1000", 1.0, "ok"))
    return spark.createDataFrame(
        rows,
        "level string, area_code string, year int, indicator string, value double, status string",
    )


def _audit(spark, *, secondary: bool, regions: Regions | None = REGIONS, **kw) -> pd.DataFrame:
    hierarchy = spark.createDataFrame(
        HIERARCHY, "buurt_code string, wijk_code string, gemeente_code string"
    )
    _, audit = apply_disclosure(
        _cells(spark, **kw),
        hierarchy,
        specs=SPECS,
        settings=DisclosureSettings(),
        secondary=secondary,
        regions=regions,
    )
    return audit.toPandas()


def _lp_interval(published: dict, hidden: list, target) -> tuple[float, float]:
    """min and max of ``target`` over the hidden counts (>= 0) that satisfy every relation
    with the published counts fixed: the attacker's feasible interval."""
    index = {cell: i for i, cell in enumerate(hidden)}
    a_eq, b_eq = [], []
    for parent, children in RELATIONS:
        row = np.zeros(len(hidden))
        rhs = 0.0
        for cell, sign in [(parent, 1.0)] + [(c, -1.0) for c in children]:
            if cell in index:
                row[index[cell]] += sign
            else:
                rhs -= sign * published[cell]
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    c = np.zeros(len(hidden))
    c[index[target]] = 1.0
    lo = linprog(c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
    hi = linprog(-c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
    assert lo.status == 0
    return lo.fun, (np.inf if hi.status == 3 else -hi.fun)


def _counts(audit: pd.DataFrame) -> pd.DataFrame:
    return audit[audit["indicator"] == "x.incidents"].set_index(["level", "area_code"])


@pytest.fixture(scope="module")
def audits(spark):
    return _audit(spark, secondary=True), _audit(spark, secondary=False)


def test_primary_alone_leaves_the_gemeente_recoverable(audits) -> None:
    _, primary_only = audits
    counts = _counts(primary_only)
    assert counts.loc[("gemeente", "GM0001"), "reason"] == "primary"
    assert counts.loc[("regio", "regio-x"), "status"] == "ok"  # 43 is no small count
    hidden = [k for k, r in counts.iterrows() if r["status"] == "suppressed"]
    published = {k: r["value"] for k, r in counts.iterrows() if r["status"] == "ok"}
    lo, hi = _lp_interval(published, hidden, ("gemeente", "GM0001"))
    assert (lo, hi) == pytest.approx((3.0, 3.0))  # 43 - 40: given back
    assert not counts.loc[("gemeente", "GM0001"), "protected"]  # and the audit sees it


def test_secondary_protects_it_through_region_and_study_area(audits) -> None:
    protected, _ = audits
    counts = _counts(protected)
    hidden = [k for k, r in counts.iterrows() if r["status"] == "suppressed"]
    published = {k: r["value"] for k, r in counts.iterrows() if r["status"] == "ok"}
    assert ("gemeente", "GM0001") in hidden
    assert len(hidden) > 3  # more than the three primary cells
    for cell in hidden:
        lo, hi = _lp_interval(published, hidden, cell)
        assert hi - lo >= 2 - 1e-9, (cell, lo, hi)
        assert counts.loc[cell, "protected"], cell
        assert counts.loc[cell, "feasible_lower"] == pytest.approx(lo), cell
        assert counts.loc[cell, "feasible_upper"] == pytest.approx(hi), cell
    # rates inherit at the new levels too: suppressed exactly where their count is
    rates = protected[protected["indicator"] == "x.incidents_per_1000"].set_index(
        ["level", "area_code"]
    )
    for cell, r in counts.iterrows():
        assert (rates.loc[cell, "status"] == "suppressed") == (r["status"] == "suppressed"), cell


def test_report_counts_the_new_levels(spark, audits) -> None:
    protected, _ = audits
    report = disclosure_report(spark.createDataFrame(protected), settings=DisclosureSettings())
    assert report["audit"]["passed"]
    levels = report["levels"]
    assert set(levels) == {"buurt", "wijk", "gemeente", "regio", "studiegebied"}
    n_region = levels["regio"]["published"] + levels["regio"]["suppressed"]
    assert n_region == 3  # three indicators, one region
    assert any(r["name"] == "secondary_regions" for r in report["rules"])


def test_reference_cells_without_regions_fail_closed(spark) -> None:
    audit = _audit(spark, secondary=True, regions=None)
    top = audit[audit["level"].isin(["regio", "studiegebied"])]
    assert len(top) == 6
    assert (top["status"] == "suppressed").all()
    assert (top["reason"] == "primary").all()


def test_no_region_no_new_cells(spark) -> None:
    audit = _audit(spark, secondary=True, regions=None, with_reference=False)
    assert set(audit["level"]) == {"buurt", "wijk", "gemeente"}
    counts = _counts(audit)
    # without a region GM0001 is protected inside its own gemeente only (it has no sibling)
    assert counts.loc[("gemeente", "GM0001"), "reason"] == "primary"
    assert counts.loc[("gemeente", "GM0002"), "status"] == "ok"


def test_joint_audit_sees_the_region(spark, audits) -> None:
    """An earlier release that published the region and GM0002 (the primary-only pattern)
    together with this one gives GM0001 back: 43 - 40. The joint audit must see it through
    the region, as the LP over the hand-written relations does."""
    from zicht.models.disclosure import joint_audit

    protected, primary_only = audits
    hierarchy = spark.createDataFrame(
        HIERARCHY, "buurt_code string, wijk_code string, gemeente_code string"
    )
    earlier = spark.createDataFrame(
        primary_only[primary_only["reason"] != "linked_difference"][
            ["level", "area_code", "year", "indicator", "status"]
        ]
    )
    audit = spark.createDataFrame(protected)
    joint = joint_audit(
        audit, [earlier], hierarchy, settings=DisclosureSettings(), regions=REGIONS
    ).toPandas()
    joint = joint[joint["indicator"] == "x.incidents"].set_index(["level", "area_code"])
    # by hand: hidden only where both releases hid the count
    now, then = _counts(protected), _counts(primary_only)
    hidden = [k for k in now.index if now.loc[k, "status"] == then.loc[k, "status"] == "suppressed"]
    published = {k: now.loc[k, "value"] for k in now.index if k not in hidden}
    lo, hi = _lp_interval(published, hidden, ("gemeente", "GM0001"))
    assert hi - lo < 2  # given back jointly
    assert not joint.loc[("gemeente", "GM0001"), "protected"]
    # the release with itself stays protected
    same = joint_audit(
        audit,
        [audit.select("level", "area_code", "year", "indicator", "status")],
        hierarchy,
        settings=DisclosureSettings(),
        regions=REGIONS,
    ).toPandas()
    assert same["protected"].all()
