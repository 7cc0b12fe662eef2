"""Disclosure control: suppression patterns and audit intervals against hand computation.

Every expected pattern and interval below was worked out by hand from the inline tables (the
derivation is in the comments); none comes from running the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from zicht.features.settings import DisclosureSettings, IndicatorSpec
from zicht.models.disclosure import (
    DisclosureError,
    audit_group,
    build_relations,
    check_specs,
    suppress_group,
)

SETTINGS = DisclosureSettings()  # min_count 10, protection_width 2
G, W1, W2, W3 = "GM0001", "WK000101", "WK000102", "WK000103"


def group(wijken: dict[str, dict[str, float]], *, gemeente: str = G) -> pd.DataFrame:
    """One gemeente's count cells; wijk and gemeente values are the sums of their buurten."""
    rows: list[dict[str, object]] = []
    for wijk, buurten in wijken.items():
        for buurt, value in buurten.items():
            rows.append({"level": "buurt", "area_code": buurt, "parent_code": wijk, "value": value})
        rows.append(
            {
                "level": "wijk",
                "area_code": wijk,
                "parent_code": gemeente,
                "value": float(sum(buurten.values())),
            }
        )
    total = float(sum(sum(b.values()) for b in wijken.values()))
    rows.append({"level": "gemeente", "area_code": gemeente, "parent_code": None, "value": total})
    pdf = pd.DataFrame(rows)
    pdf["status"] = "ok"
    return pdf


def by_code(pdf: pd.DataFrame, column: str) -> dict[str, object]:
    return dict(zip(pdf["area_code"], pdf[column], strict=True))


def hidden_codes(pdf: pd.DataFrame) -> dict[str, str]:
    sup = pdf[pdf["status"] == "suppressed"]
    return dict(zip(sup["area_code"], sup["reason"], strict=True))


# --------------------------------------------------------------------------- suppress_group


def test_primary_and_cheapest_complement_in_wijk() -> None:
    # W1 = 4 + 12 + 20 = 36, W2 = 15 + 25 = 40, G = 76. BU..0101 = 4 is primary; W1 is
    # published, so the cheapest published nonzero sibling (12) must go too.
    pdf = group(
        {
            W1: {"BU00010101": 4, "BU00010102": 12, "BU00010103": 20},
            W2: {"BU00010201": 15, "BU00010202": 25},
        }
    )
    out = suppress_group(pdf, settings=SETTINGS)
    assert hidden_codes(out) == {"BU00010101": "primary", "BU00010102": "secondary"}
    # Hand LP: x1 + x2 = 36 - 20 = 16 (W1, and the same from G = sum of buurten), x >= 0.
    lo, hi = by_code(out, "feasible_lower"), by_code(out, "feasible_upper")
    for code in ("BU00010101", "BU00010102"):
        assert (lo[code], hi[code]) == pytest.approx((0.0, 16.0))
    assert out.loc[out["status"] == "suppressed", "protected"].tolist() == [True, True]
    assert out["protected"].isna().sum() == len(out) - 2
    assert set(out.loc[out["status"] != "suppressed", "reason"]) == {"published"}


def test_audit_fails_without_secondary_suppression() -> None:
    # Only the primary cell hidden: x = 36 - 12 - 20 = 4 exactly, so the audit must flag it.
    pdf = group(
        {
            W1: {"BU00010101": 4, "BU00010102": 12, "BU00010103": 20},
            W2: {"BU00010201": 15, "BU00010202": 25},
        }
    )
    pdf["reason"] = np.where(pdf["area_code"] == "BU00010101", "primary", "published")
    out = audit_group(pdf, settings=SETTINGS)
    row = out.set_index("area_code").loc["BU00010101"]
    assert (row["feasible_lower"], row["feasible_upper"]) == pytest.approx((4.0, 4.0))
    assert bool(row["protected"]) is False  # bool(pd.NA) raises, so NA fails too
    assert out["protected"].eq(False).sum() == 1


def test_tie_break_by_area_code() -> None:
    # Siblings 12 and 12: the lower area code is the complement.
    pdf = group(
        {
            W1: {"BU00010101": 4, "BU00010102": 12, "BU00010103": 12},
            W2: {"BU00010201": 15, "BU00010202": 25},
        }
    )
    out = suppress_group(pdf, settings=SETTINGS)
    assert hidden_codes(out) == {"BU00010101": "primary", "BU00010102": "secondary"}


def test_zero_sibling_is_not_a_complement() -> None:
    # W1 = 5 + 0 + 10 = 15: the zero sibling is cheaper but useless; 10 is taken.
    # Hand LP: x1 + x3 = 15 - 0, both in [0, 15].
    pdf = group(
        {
            W1: {"BU00010101": 5, "BU00010102": 0, "BU00010103": 10},
            W2: {"BU00010201": 15, "BU00010202": 25},
        }
    )
    out = suppress_group(pdf, settings=SETTINGS)
    assert hidden_codes(out) == {"BU00010101": "primary", "BU00010103": "secondary"}
    hi = by_code(out, "feasible_upper")
    assert hi["BU00010101"] == pytest.approx(15.0)
    assert hi["BU00010103"] == pytest.approx(15.0)


def test_subtraction_and_addition_across_levels() -> None:
    # W1 = 6 (one buurt of 6), W2 = 11 + 11 = 22, W3 = 10 + 10 + 10 = 30, G = 58.
    # Primary: W1 and its buurt (6). Bottom up:
    #   W1 = B11: both hidden, fine.  G = W1 + W2 + W3: only W1 hidden -> cheapest wijk W2 (22).
    #   G = sum of buurten: only B11 hidden -> cheapest nonzero buurt B31 (10, ties by code).
    # Second pass: W2 now hidden with both buurten published (addition) -> B21 (11, tie);
    #   W3 has only B31 hidden (subtraction) -> B32 (10, tie with B33).
    pdf = group(
        {
            W1: {"BU00010101": 6},
            W2: {"BU00010201": 11, "BU00010202": 11},
            W3: {"BU00010301": 10, "BU00010302": 10, "BU00010303": 10},
        }
    )
    out = suppress_group(pdf, settings=SETTINGS)
    assert hidden_codes(out) == {
        W1: "primary",
        "BU00010101": "primary",
        W2: "secondary",
        "BU00010201": "secondary",
        "BU00010301": "secondary",
        "BU00010302": "secondary",
    }
    # Hand LP: W1 = B11; W2 = B21 + 11; B31 + B32 = 20; W1 + W2 = 28; B11 + B21 = 17.
    # So B11 = W1 in [0, 17], B21 in [0, 17], W2 = B21 + 11 in [11, 28], B31, B32 in [0, 20].
    lo, hi = by_code(out, "feasible_lower"), by_code(out, "feasible_upper")
    expected = {
        W1: (0, 17),
        "BU00010101": (0, 17),
        W2: (11, 28),
        "BU00010201": (0, 17),
        "BU00010301": (0, 20),
        "BU00010302": (0, 20),
    }
    for code, (a, b) in expected.items():
        assert (lo[code], hi[code]) == pytest.approx((a, b)), code
    assert out["protected"].eq(True).sum() == 6


def test_super_additive_counts_need_no_complement() -> None:
    # Local suspects: W1 = 15 >= 0 + 9 + 3, so only "sum <= 15" is known. Hand LP:
    # x2 + x3 <= 15 (W1), x2 + x3 <= 38 - 20 (G >= buurten), x <= 15: both in [0, 15].
    pdf = pd.DataFrame(
        {
            "level": ["buurt", "buurt", "buurt", "wijk", "buurt", "buurt", "wijk", "gemeente"],
            "area_code": [
                "BU00010101",
                "BU00010102",
                "BU00010103",
                W1,
                "BU00010201",
                "BU00010202",
                W2,
                G,
            ],
            "parent_code": [W1, W1, W1, G, W2, W2, G, None],
            "value": [0.0, 9.0, 3.0, 15.0, 10.0, 10.0, 20.0, 38.0],
            "status": "ok",
        }
    )
    senses = {pdf["area_code"][r.parent]: r.sense for r in build_relations(pdf)}
    assert senses[W1] == "ge" and senses[W2] == "eq"
    out = suppress_group(pdf, settings=SETTINGS)
    assert hidden_codes(out) == {"BU00010102": "primary", "BU00010103": "primary"}
    hi = by_code(out, "feasible_upper")
    assert hi["BU00010102"] == pytest.approx(15.0)
    assert hi["BU00010103"] == pytest.approx(15.0)


def test_not_covered_and_null_cells_pass_through() -> None:
    pdf = group({W1: {"BU00010101": 20, "BU00010102": 12}})
    pdf.loc[pdf["area_code"] == "BU00010102", ["value", "status"]] = [np.nan, "not_covered"]
    pdf.loc[pdf["area_code"] == "BU00010101", "value"] = np.nan  # ok without value
    out = suppress_group(pdf, settings=SETTINGS)
    assert by_code(out, "status") == {
        "BU00010101": "not_applicable",
        "BU00010102": "not_covered",
        W1: "ok",
        G: "ok",
    }
    assert by_code(out, "reason")["BU00010102"] == "not_covered"


def test_deterministic_under_row_order() -> None:
    pdf = group(
        {
            W1: {"BU00010101": 6},
            W2: {"BU00010201": 11, "BU00010202": 11},
            W3: {"BU00010301": 10, "BU00010302": 10, "BU00010303": 10},
        }
    )
    a = suppress_group(pdf, settings=SETTINGS)
    b = suppress_group(pdf.sample(frac=1.0, random_state=7), settings=SETTINGS)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("seed", range(1, 13))
def test_random_groups_satisfy_the_rules(seed: int) -> None:
    """Seeded random gemeenten: the invariants of the rules hold whatever the pattern."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    wijken: dict[str, dict[str, float]] = {}
    for w in range(int(rng.integers(1, 5))):
        code = f"WK0001{w:02d}"
        n_b = int(rng.integers(1, 6))
        vals = rng.choice([0, 0, 1, 3, 7, 9, 12, 25, 40], size=n_b)
        wijken[code] = {f"BU0001{w:02d}{b:02d}": float(v) for b, v in enumerate(vals)}
    pdf = group(wijken)
    out = suppress_group(pdf, settings=SETTINGS)
    values = out["value"].to_numpy()
    # primary: every value in 1..9 is hidden, every 0 that is hidden is secondary
    assert (out.loc[(values > 0) & (values < 10), "status"] == "suppressed").all()
    assert (out.loc[(values == 0) & (out["status"] == "suppressed"), "reason"] != "primary").all()
    # no equality relation leaves exactly one hidden cell
    hidden = (out["status"] == "suppressed").to_numpy()
    for rel in build_relations(out):
        if rel.sense == "eq":
            assert sum(hidden[i] for i in (rel.parent, *rel.children)) != 1
    # every hidden cell is protected, and its interval matches a plain reference LP
    sup = out[hidden]
    assert sup["protected"].eq(True).all()
    ref = reference_intervals(wijken, set(sup["area_code"]))
    for code, lo, hi in zip(
        sup["area_code"], sup["feasible_lower"], sup["feasible_upper"], strict=True
    ):
        assert (lo, hi) == pytest.approx(ref[code], abs=1e-6), code


def reference_intervals(
    wijken: dict[str, dict[str, float]], hidden: set[str]
) -> dict[str, tuple[float, float]]:
    """Textbook attacker LP written out independently: two solves per hidden cell, no shortcuts.

    Equations: each wijk = its buurten, G = its wijken, G = all buurten; cells >= 0.
    """
    from scipy.optimize import linprog

    value = {G: float(sum(sum(b.values()) for b in wijken.values()))}
    equations: list[tuple[str, list[str]]] = [(G, list(wijken))]
    equations.append((G, [b for bs in wijken.values() for b in bs]))
    for w, bs in wijken.items():
        value[w] = float(sum(bs.values()))
        value.update({b: float(v) for b, v in bs.items()})
        equations.append((w, list(bs)))
    names = sorted(hidden)
    a_eq, b_eq = [], []
    for parent, kids in equations:
        row = np.zeros(len(names))
        rhs = 0.0
        for cell, sign in [(parent, 1.0)] + [(k, -1.0) for k in kids]:
            if cell in hidden:
                row[names.index(cell)] += sign
            else:
                rhs -= sign * value[cell]
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    out: dict[str, tuple[float, float]] = {}
    for j, name in enumerate(names):
        c = np.zeros(len(names))
        c[j] = 1.0
        lo = linprog(c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
        out[name] = (lo.fun, math.inf if hi.status == 3 else -hi.fun)
    return out


def test_specs_refuse_min_max_and_loose_rates() -> None:
    ok = [
        IndicatorSpec("x.incidents", "x", "count", "d"),
        IndicatorSpec("context.inhabitants", "", "count", "d"),
        IndicatorSpec("x.rate", "x", "rate", "d", "x.incidents", "context.inhabitants"),
    ]
    assert set(check_specs(ok)) == {"x.incidents", "context.inhabitants", "x.rate"}
    with pytest.raises(DisclosureError, match="minimum or maximum"):
        check_specs([*ok, IndicatorSpec("x.max_age", "x", "count", "d")])
    with pytest.raises(DisclosureError, match="numerator and denominator"):
        check_specs([*ok, IndicatorSpec("x.share", "x", "share", "d", "x.incidents")])
    with pytest.raises(DisclosureError, match="count indicator"):
        check_specs([*ok, IndicatorSpec("x.idx", "x", "index", "d", "x.rate")])


# --------------------------------------------------------------------------- Spark end to end

BU = ["BU00010101", "BU00010102", "BU00010103", "BU00010201", "BU00010202"]
SPECS = [
    IndicatorSpec("x.incidents", "x", "count", "d"),
    IndicatorSpec("context.inhabitants", "", "count", "d"),
    IndicatorSpec("x.incidents_per_1000", "x", "rate", "d", "x.incidents", "context.inhabitants"),
    IndicatorSpec("x.suspects", "x", "count", "d"),
    IndicatorSpec("x.local_suspects", "x", "count", "d"),
    IndicatorSpec("x.local_suspect_share", "x", "share", "d", "x.local_suspects", "x.suspects"),
    IndicatorSpec("x.signals", "x", "count", "d"),
    IndicatorSpec("context.property_value_euro", "", "euro", "d"),
]
AREAS = [*BU, W1, W2, G]
LEVEL = {**dict.fromkeys(BU, "buurt"), W1: "wijk", W2: "wijk", G: "gemeente"}
# Per indicator the values of AREAS in order: B11 B12 B13 B21 B22 W1 W2 G.
COUNTS = {
    "x.incidents": [4, 12, 20, 15, 25, 36, 40, 76],
    "context.inhabitants": [1000, 2000, 0, 1500, 2400, 3000, 3900, 6900],
    "x.suspects": [0, 30, 12, 11, 10, 40, 21, 60],  # distinct: W1 40 < 42, G 60 < 61
    "x.local_suspects": [0, 9, 3, 10, 10, 15, 20, 38],  # local: W1 15 > 12, G 38 > 35
}


def _cells_rows() -> list[tuple[str, str, int, str, float | None, str]]:
    rows: list[tuple[str, str, int, str, float | None, str]] = []
    for ind, vals in COUNTS.items():
        for area, v in zip(AREAS, vals, strict=True):
            rows.append((LEVEL[area], area, 2024, ind, float(v), "ok"))
    inc, inh = COUNTS["x.incidents"], COUNTS["context.inhabitants"]
    sus, loc = COUNTS["x.suspects"], COUNTS["x.local_suspects"]
    for i, area in enumerate(AREAS):
        rate = 1000.0 * inc[i] / inh[i] if inh[i] else None
        share = loc[i] / sus[i] if sus[i] else None
        for ind, v in (("x.incidents_per_1000", rate), ("x.local_suspect_share", share)):
            rows.append(
                (LEVEL[area], area, 2024, ind, v, "ok" if v is not None else "not_applicable")
            )
        rows.append((LEVEL[area], area, 2024, "x.signals", None, "not_covered"))
    rows.append(("buurt", BU[0], 2024, "context.property_value_euro", 250123.5, "ok"))
    return rows


SUPP = ("suppressed", None)
NA = ("not_applicable", None)
# Hand computation, published (status, value) per (indicator, area):
EXPECTED = {
    # B11 = 4 primary; W1 published so the cheapest sibling (12) is secondary.
    "x.incidents": [SUPP, SUPP, ("ok", 20.0), ("ok", 15.0), ("ok", 25.0), ("ok", 36.0),
                    ("ok", 40.0), ("ok", 76.0)],
    "context.inhabitants": [("ok", float(v)) for v in COUNTS["context.inhabitants"]],
    # B11 primary (numerator 4), B12 inherited (numerator secondary), B13 denominator 0;
    # 25/2400 = 10.4167 -> 10.4, 40/3900 = 10.256 -> 10.3, 76/6900 = 11.014 -> 11.0
    "x.incidents_per_1000": [SUPP, SUPP, NA, ("ok", 10.0), ("ok", 10.4), ("ok", 12.0),
                             ("ok", 10.3), ("ok", 11.0)],
    "x.suspects": [("ok", float(v)) for v in COUNTS["x.suspects"]],
    # 9 and 3 primary; super-additive so no complement needed (intervals [0, 15]).
    "x.local_suspects": [("ok", 0.0), SUPP, SUPP, ("ok", 10.0), ("ok", 10.0), ("ok", 15.0),
                         ("ok", 20.0), ("ok", 38.0)],
    # 0/0 n/a; 9/30 and 3/12 primary; 10/11 = 0.90909 -> 0.909; 20/21 = 0.95238 -> 0.952;
    # 38/60 = 0.6333 -> 0.633
    "x.local_suspect_share": [NA, SUPP, SUPP, ("ok", 0.909), ("ok", 1.0), ("ok", 0.375),
                              ("ok", 0.952), ("ok", 0.633)],
    "x.signals": [("not_covered", None)] * 8,
}  # fmt: skip


CELLS_SCHEMA = (
    "level string, area_code string, year int, indicator string, value double, status string"
)
HIERARCHY_SCHEMA = "buurt_code string, wijk_code string, gemeente_code string"


def _cells(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(_cells_rows(), CELLS_SCHEMA)


def _hierarchy(spark: SparkSession) -> DataFrame:
    rows = [(b, W1 if b.startswith("BU000101") else W2, G) for b in BU]
    return spark.createDataFrame(rows, HIERARCHY_SCHEMA)


def _as_dict(df: DataFrame) -> dict[tuple[str, str], tuple[str, float | None]]:
    return {(r["indicator"], r["area_code"]): (r["status"], r["value"]) for r in df.collect()}


@pytest.mark.spark
def test_apply_disclosure_end_to_end(spark: SparkSession) -> None:
    from zicht.models.disclosure import apply_disclosure

    published, audit = apply_disclosure(
        _cells(spark), _hierarchy(spark), specs=SPECS, settings=SETTINGS
    )
    got = _as_dict(published)
    expected = {
        (ind, area): sv
        for ind, svs in EXPECTED.items()
        for area, sv in zip(AREAS, svs, strict=True)
    }
    expected[("context.property_value_euro", BU[0])] = ("ok", 250124.0)  # half up
    assert set(got) == set(expected)
    for key, (status, value) in expected.items():
        g_status, g_value = got[key]
        assert g_status == status, key
        if value is None:
            assert g_value is None, key
        else:
            assert g_value == pytest.approx(value, abs=1e-9), key
    assert published.columns == ["level", "area_code", "year", "indicator", "value", "status"]

    a = {(r["indicator"], r["area_code"]): r for r in audit.collect()}
    assert len(a) == len(expected)
    assert a[("x.incidents", BU[0])]["reason"] == "primary"
    assert a[("x.incidents", BU[1])]["reason"] == "secondary"
    assert a[("x.incidents_per_1000", BU[0])]["reason"] == "primary"
    assert a[("x.incidents_per_1000", BU[1])]["reason"] == "inherited"
    assert a[("x.incidents_per_1000", BU[2])]["reason"] == "not_applicable"
    assert a[("x.signals", G)]["reason"] == "not_covered"
    assert a[("x.local_suspect_share", BU[1])]["reason"] == "primary"
    for code in BU[:2]:  # hand LP: x11 + x12 = 16
        row = a[("x.incidents", code)]
        assert (row["feasible_lower"], row["feasible_upper"]) == pytest.approx((0.0, 16.0))
        assert row["protected"] is True
        assert row["unit"] == "count"
    for code in BU[1:3]:  # hand LP: x12 + x13 <= 15, each <= 15
        row = a[("x.local_suspects", code)]
        assert (row["feasible_lower"], row["feasible_upper"]) == pytest.approx((0.0, 15.0))
    assert a[("x.incidents_per_1000", BU[1])]["value"] == pytest.approx(6.0)  # unrounded, kept
    assert a[("x.incidents_per_1000", BU[1])]["protected"] is None
    published_count = a[("x.incidents", G)]
    assert (published_count["feasible_lower"], published_count["protected"]) == (None, None)
    assert {r["reason"] for r in a.values() if r["status"] == "ok"} == {"published"}


@pytest.mark.spark
def test_denominator_suppression_reaches_rates(spark: SparkSession) -> None:
    # Inhabitants: W1 = B11 5 + B12 0 (W1 and B11 primary); W2 = B21 30; G = 35.
    # G = W1 + W2 has only W1 hidden -> W2 secondary; G = sum of buurten has only B11 hidden
    # -> the cheapest nonzero buurt B21 (30) secondary; the zero buurt B12 is no complement.
    # Rates: B11 and W1 primary (denominator 5), W2 and B21 inherited (denominator secondary),
    # B12 keeps not_applicable (its denominator 0 is published), G published.
    from zicht.models.disclosure import apply_disclosure

    den = {"BU00010101": 5.0, "BU00010102": 0.0, "BU00010201": 30.0, W1: 5.0, W2: 30.0, G: 35.0}
    rows = []
    for area, v in den.items():
        lv = "buurt" if area.startswith("BU") else ("wijk" if area.startswith("WK") else "gemeente")
        rows.append((lv, area, 2024, "context.inhabitants", v, "ok"))
        rows.append((lv, area, 2024, "x.incidents", 0.0, "ok"))
        rate, status = (0.0, "ok") if v else (None, "not_applicable")
        rows.append((lv, area, 2024, "x.incidents_per_1000", rate, status))
    cells = spark.createDataFrame(rows, CELLS_SCHEMA)
    hier = spark.createDataFrame(
        [("BU00010101", W1, G), ("BU00010102", W1, G), ("BU00010201", W2, G)], HIERARCHY_SCHEMA
    )
    specs = SPECS[:3]
    published, audit = apply_disclosure(cells, hier, specs=specs, settings=SETTINGS)
    got = _as_dict(published)
    assert {
        k[1] for k, v in got.items() if k[0] == "context.inhabitants" and v[0] == "suppressed"
    } == {
        "BU00010101",
        W1,
        W2,
        "BU00010201",
    }
    rate = {k[1]: v[0] for k, v in got.items() if k[0] == "x.incidents_per_1000"}
    assert rate == {
        "BU00010101": "suppressed",
        "BU00010102": "not_applicable",
        "BU00010201": "suppressed",
        W1: "suppressed",
        W2: "suppressed",
        G: "ok",
    }
    reasons = {
        r["area_code"]: r["reason"]
        for r in audit.filter(F.col("indicator") == "x.incidents_per_1000").collect()
    }
    assert reasons == {
        "BU00010101": "primary",
        "BU00010102": "not_applicable",
        "BU00010201": "inherited",
        W1: "primary",
        W2: "inherited",
        G: "published",
    }
    assert audit.filter("protected = false").count() == 0


@pytest.mark.spark
def test_partitioning_does_not_change_the_pattern(spark: SparkSession) -> None:
    from zicht.models.disclosure import apply_disclosure

    cells = _cells(spark)
    hier = _hierarchy(spark)
    one, _ = apply_disclosure(cells.coalesce(1), hier, specs=SPECS, settings=SETTINGS)
    many, _ = apply_disclosure(
        cells.repartition(7, "value"), hier.repartition(3), specs=SPECS, settings=SETTINGS
    )
    order = ["indicator", "level", "area_code", "year"]
    a = one.orderBy(*order).toPandas()
    b = many.orderBy(*order).toPandas()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.spark
def test_rounding_base_and_report(spark: SparkSession) -> None:
    from zicht.models.disclosure import apply_disclosure, disclosure_report

    settings = dataclasses.replace(SETTINGS, rounding_base=5)
    published, audit = apply_disclosure(
        _cells(spark), _hierarchy(spark), specs=SPECS, settings=settings
    )
    got = _as_dict(published)
    # 20, 15, 25, 40 stay; 36 -> 35, 76 -> 75; rates keep their own rounding
    assert got[("x.incidents", W1)] == ("ok", 35.0)
    assert got[("x.incidents", G)] == ("ok", 75.0)
    assert got[("x.incidents", BU[2])] == ("ok", 20.0)
    assert got[("context.inhabitants", BU[3])] == ("ok", 1500.0)
    assert got[("x.incidents_per_1000", BU[4])] == ("ok", 10.4)

    report = disclosure_report(audit, settings=settings)
    # Buurt: 5 buurten x 7 indicators + 1 euro cell = 36. Suppressed: incidents 2, rate 2,
    # local_suspects 2, share 2 = 8; not_applicable: rate B13, share B11 = 2; not_covered:
    # signals 5; published 36 - 15 = 21. Wijk: 2 x 6 published, 2 signals not_covered.
    assert report["levels"]["buurt"] == {
        "published": 21,
        "suppressed": 8,
        "not_applicable": 2,
        "not_covered": 5,
    }
    assert report["levels"]["wijk"] == {
        "published": 12,
        "suppressed": 0,
        "not_applicable": 0,
        "not_covered": 2,
    }
    assert report["levels"]["gemeente"] == {
        "published": 6,
        "suppressed": 0,
        "not_applicable": 0,
        "not_covered": 1,
    }
    # audited: 2 incidents + 2 local_suspects, all protected
    assert report["audit"] == {
        "passed": True,
        "audited_cells": 4,
        "unprotected_cells": 0,
        "linked_differences_audited": 0,
        "linked_differences_unprotected": 0,
        "protection_width": 2,
    }
    # Information loss by hand: counts >= 10 (signals not covered): incidents 12 20 15 25 36
    # 40 76 (7), inhabitants 7, suspects 30 12 11 10 40 21 60 (7), local 10 10 15 20 38 (5):
    # 26 cells, of which secondary hides one (incidents 12). Buurt: 4 + 4 + 4 + 2 = 14, one
    # hidden; wijk 8 and gemeente 4, none hidden.
    loss = report["information_loss"]
    assert loss["count_cells_at_or_above_min"] == 26
    assert loss["hidden_by_secondary"] == 1
    assert loss["overall"] == pytest.approx(round(1 / 26, 4))
    assert loss["per_level"] == {"buurt": round(1 / 14, 4), "wijk": 0.0, "gemeente": 0.0}
    names = [r["name"] for r in report["rules"]]
    assert {"primary_count", "inheritance", "secondary_hierarchy", "no_min_max"} <= set(names)
    assert report["parameters"]["rounding_base"] == 5
    assert not math.isnan(float(report["parameters"]["dominance_k"]))


@pytest.mark.spark
def test_magnitude_hook_applies_dominance_and_min_units(spark: SparkSession) -> None:
    from zicht.models.disclosure import apply_disclosure

    euro = "context.property_value_euro"
    cells = spark.createDataFrame(
        [("buurt", b, 2024, euro, 1000.4, "ok") for b in BU[:3]], CELLS_SCHEMA
    )
    contributors = spark.createDataFrame(
        [
            ("buurt", BU[0], 2024, euro, 3, 0.2),  # 3 < min_units 10
            ("buurt", BU[1], 2024, euro, 40, 0.6),  # one contributor holds 60 % > 50 %
            ("buurt", BU[2], 2024, euro, 40, 0.5),  # exactly 50 %: not dominated
        ],
        "level string, area_code string, year int, indicator string, n_units long, "
        "top_n_share double",
    )
    published, audit = apply_disclosure(
        cells,
        _hierarchy(spark),
        specs=SPECS,
        settings=SETTINGS,
        magnitude_contributors=contributors,
    )
    assert _as_dict(published) == {
        (euro, BU[0]): ("suppressed", None),
        (euro, BU[1]): ("suppressed", None),
        (euro, BU[2]): ("ok", 1000.0),
    }
    assert {r["reason"] for r in audit.collect()} == {"primary", "published"}


# --------------------------------------------------------------------------- linked tables

A_IND, B_IND = "drugs_productie.incidents", "drugs.incidents"
DIFF = f"{B_IND}-{A_IND}"
B1, B2, B3 = "BU00010101", "BU00010102", "BU00010103"


def linked_group() -> pd.DataFrame:
    """Narrow A (productie) within broad B (drugs), one wijk of three buurten.

    A: 20, 30, 40 (W1 = G = 90). B: 25, 30, 52 (W1 = G = 107). B - A: 5, 0, 12 (17): the
    difference in buurt 1 is a count of 5, below the minimum, while A and B are all >= 10.
    """
    a = group({W1: {B1: 20, B2: 30, B3: 40}}).assign(indicator=A_IND)
    b = group({W1: {B1: 25, B2: 30, B3: 52}}).assign(indicator=B_IND)
    return pd.concat([a, b], ignore_index=True)


def test_linked_tables_protect_the_difference() -> None:
    # Hand derivation. Only the differences are hidden at first; B1: 25 = A1 + D1 with D1 = 5
    # the only hidden cell -> the cheapest open child, A1 (20), is secondary. Then A's wijk
    # relation has A1 alone hidden -> the cheapest nonzero sibling A2 (30). Attacker LP:
    # A1 + A2 = 50, A1 + D1 = 25, A2 + D2 = 30, D3 = 12, D1 + D2 + D3 = 17 -> D1 + D2 = 5:
    # D1 in [0, 5], A1 in [20, 25], A2 in [25, 30].
    out = suppress_group(linked_group(), settings=SETTINGS, links=[(A_IND, B_IND)])
    real = out[out["indicator"] != DIFF]
    hidden = real[real["status"] == "suppressed"]
    assert set(zip(hidden["indicator"], hidden["area_code"], hidden["reason"], strict=True)) == {
        (A_IND, B1, "secondary"),
        (A_IND, B2, "secondary"),
    }
    rows = out.set_index(["indicator", "area_code"])
    assert (rows.loc[(DIFF, B1), "feasible_lower"], rows.loc[(DIFF, B1), "feasible_upper"]) == (
        pytest.approx((0.0, 5.0))
    )
    assert bool(rows.loc[(DIFF, B1), "protected"]) is True
    assert (rows.loc[(A_IND, B1), "feasible_lower"], rows.loc[(A_IND, B1), "feasible_upper"]) == (
        pytest.approx((20.0, 25.0))
    )
    assert (rows.loc[(A_IND, B2), "feasible_lower"], rows.loc[(A_IND, B2), "feasible_upper"]) == (
        pytest.approx((25.0, 30.0))
    )
    # differences of 0 and 12 need no protection: not audited
    assert pd.isna(rows.loc[(DIFF, B3), "protected"])
    assert set(out.loc[out["indicator"] == DIFF, "reason"]) == {"linked_difference"}


def test_linked_tables_without_secondary_fail_the_audit() -> None:
    # Secondary off: A and B all published, so D1 = 25 - 20 = 5 exactly.
    out = suppress_group(linked_group(), settings=SETTINGS, links=[(A_IND, B_IND)], secondary=False)
    rows = out.set_index(["indicator", "area_code"])
    assert (rows.loc[(DIFF, B1), "feasible_lower"], rows.loc[(DIFF, B1), "feasible_upper"]) == (
        pytest.approx((5.0, 5.0))
    )
    assert out["protected"].eq(False).sum() == 1
    assert (out.loc[out["indicator"] != DIFF, "status"] == "ok").all()


def test_linked_indicators_from_the_catalogue() -> None:
    from zicht.features.settings import Phenomenon
    from zicht.models.disclosure import linked_indicators

    phenomena = {
        "drugs": Phenomenon(
            "drugs",
            incident_codes=("F42", "F43", "F44"),
            classes=("3.1.1",),
            signal_categories=("drugslab", "hennepkwekerij"),
        ),
        "productie": Phenomenon(
            "productie", incident_codes=("F43", "F44"), signal_categories=("drugslab",)
        ),
        # class-only definition: takes coded incidents by class, so it is not within drugs
        "klasse": Phenomenon("klasse", classes=("3.1.1",)),
        "geweld": Phenomenon("geweld", incident_codes=("F540",)),
    }
    specs = [
        IndicatorSpec("context.inhabitants", "", "count", "d", sources=("persons",)),
    ]
    for p in phenomena:
        specs += [
            IndicatorSpec(f"{p}.incidents", p, "count", "d", sources=("incidents",)),
            IndicatorSpec(
                f"{p}.suspects", p, "count", "d", sources=("incidents", "suspects"), additive=False
            ),
            IndicatorSpec(f"{p}.signals", p, "count", "d", sources=("signals",)),
            IndicatorSpec(
                f"{p}.incidents_per_1000",
                p,
                "rate",
                "d",
                f"{p}.incidents",
                "context.inhabitants",
                sources=("incidents",),
            ),
        ]
    assert linked_indicators(phenomena, specs) == [
        ("productie.incidents", "drugs.incidents"),
        ("productie.signals", "drugs.signals"),
        ("productie.suspects", "drugs.suspects"),
    ]
    # a count declared within another links to it (inhabitants under 12 are a count too);
    # a within that names a rate or an absent indicator links nothing
    within = [
        IndicatorSpec(
            "context.inhabitants_12plus",
            "",
            "count",
            "d",
            sources=("persons",),
            within="context.inhabitants",
        ),
        IndicatorSpec("context.x", "", "count", "d", within="drugs.incidents_per_1000"),
        IndicatorSpec("context.y", "", "count", "d", within="context.absent"),
    ]
    assert linked_indicators(phenomena, specs + within) == [
        ("context.inhabitants_12plus", "context.inhabitants"),
        ("productie.incidents", "drugs.incidents"),
        ("productie.signals", "drugs.signals"),
        ("productie.suspects", "drugs.suspects"),
    ]


@pytest.mark.spark
def test_linked_tables_through_spark_and_the_report(spark: SparkSession) -> None:
    """Linked tables end to end, secondary off failing the audit, and partition invariance."""
    from zicht.models.disclosure import apply_disclosure, disclosure_report

    pdf = linked_group()
    rows = [
        (r.level, r.area_code, 2024, r.indicator, float(r.value), "ok")
        for r in pdf.itertuples(index=False)
    ]
    inh = {B1: 1000.0, B2: 1000.0, B3: 1000.0, W1: 3000.0, G: 3000.0}
    a_vals = dict(zip(pdf.loc[pdf["indicator"] == A_IND, "area_code"], pdf["value"], strict=False))
    for area, v in inh.items():
        lv = LEVEL.get(area, "buurt")
        rows.append((lv, area, 2024, "context.inhabitants", v, "ok"))
        rows.append((lv, area, 2024, "drugs_productie.rate", a_vals[area], "ok"))
    cells = spark.createDataFrame(rows, CELLS_SCHEMA)
    hier = spark.createDataFrame([(b, W1, G) for b in (B1, B2, B3)], HIERARCHY_SCHEMA)
    specs = [
        IndicatorSpec(A_IND, "drugs_productie", "count", "d"),
        IndicatorSpec(B_IND, "drugs", "count", "d"),
        IndicatorSpec("context.inhabitants", "", "count", "d"),
        IndicatorSpec("drugs_productie.rate", "drugs_productie", "rate", "d", A_IND,
                      "context.inhabitants"),
    ]  # fmt: skip
    links = [(A_IND, B_IND)]
    published, audit = apply_disclosure(
        cells.repartition(3), hier, specs=specs, settings=SETTINGS, links=links
    )
    got = _as_dict(published)
    assert {k for k, v in got.items() if v[0] == "suppressed"} == {
        (A_IND, B1),
        (A_IND, B2),
        ("drugs_productie.rate", B1),  # inherited from the secondary counts
        ("drugs_productie.rate", B2),
    }
    assert not any(DIFF in k[0] for k in got)
    one, _ = apply_disclosure(cells.coalesce(1), hier, specs=specs, settings=SETTINGS, links=links)
    assert _as_dict(one) == got
    report = disclosure_report(audit, settings=SETTINGS, links=links)
    assert report["audit"]["passed"] is True
    assert report["audit"]["linked_differences_audited"] == 1  # only D1 = 5 needs protection
    assert report["linked_tables"] == [{"narrow": A_IND, "broad": B_IND}]
    # 5 areas x 2 counts of A and B + inhabitants 5 = 15 cells >= 10; A1, A2 secondary
    assert report["information_loss"]["count_cells_at_or_above_min"] == 15
    assert report["information_loss"]["hidden_by_secondary"] == 2

    # Secondary suppression off (the weakened pattern): the audit must fail (D1 = 5
    # follows from the published A1 and B1; the hierarchy case is test_audit_fails_without_...).
    _, weak = apply_disclosure(
        cells, hier, specs=specs, settings=SETTINGS, links=links, secondary=False
    )
    verdict = disclosure_report(weak, settings=SETTINGS, links=links)["audit"]
    assert verdict["passed"] is False
    assert verdict["linked_differences_unprotected"] == 1


def test_a_link_the_data_contradict_is_dropped() -> None:
    # B1 = 15 < A1 = 20: "narrow within broad" does not hold here, so B - A is no count and
    # the pair takes part in no relation (no difference rows); A and B are then audited alone.
    pdf = linked_group()
    pdf.loc[(pdf["indicator"] == B_IND) & (pdf["area_code"] == B1), "value"] = 15.0
    pdf.loc[(pdf["indicator"] == B_IND) & (pdf["level"] != "buurt"), "value"] = 97.0
    out = suppress_group(pdf, settings=SETTINGS, links=[(A_IND, B_IND)])
    assert DIFF not in set(out["indicator"])
    assert (out["status"] == "ok").all()


@pytest.mark.spark
def test_composite_inherits_from_the_counts_behind_its_components(spark: SparkSession) -> None:
    """A composite index and its class are suppressed wherever a count behind a component is
    (here x.incidents in B11, primary, and B12, secondary): else ranks could bound it."""
    from zicht.models.disclosure import apply_disclosure

    specs = [
        *SPECS,
        IndicatorSpec(
            "x.idx", "x", "index", "d", components=("x.incidents_per_1000",), weights=(1.0,),
            method="composite",
        ),
        IndicatorSpec("x.cls", "x", "class", "d", components=("x.idx",), method="composite_class"),
    ]  # fmt: skip
    rows = _cells_rows()
    for area in AREAS:
        rows.append((LEVEL[area], area, 2024, "x.idx", 50.0, "ok"))
        rows.append((LEVEL[area], area, 2024, "x.cls", 5.0, "ok"))
    published, audit = apply_disclosure(
        spark.createDataFrame(rows, CELLS_SCHEMA), _hierarchy(spark), specs=specs, settings=SETTINGS
    )
    hidden = {
        a for a, sv in zip(AREAS, EXPECTED["x.incidents"], strict=True) if sv[0] == "suppressed"
    }
    assert hidden == {BU[0], BU[1]}
    got = _as_dict(published)
    for ind in ("x.idx", "x.cls"):
        for area in AREAS:
            assert got[(ind, area)][0] == ("suppressed" if area in hidden else "ok"), (ind, area)
    reasons = {
        r["reason"] for r in audit.where(F.col("indicator").isin("x.idx", "x.cls")).collect()
    }
    assert reasons == {"inherited", "published"}


@pytest.mark.spark
def test_joint_audit_of_two_releases(spark: SparkSession) -> None:
    """G = W1 + W2 = 4 + 16. Release A hides W1 and W2 and publishes G; release B hides W1
    and G and publishes W2. Each alone protects W1, but together W1 = G - W2 = 4: the joint
    audit must say so. Against a release that also hid W1 and W2, W1 stays protected."""
    from zicht.models.disclosure import joint_audit

    hier = spark.createDataFrame([("BU00010101", W1, G), ("BU00010201", W2, G)], HIERARCHY_SCHEMA)
    values = {W1: 4.0, W2: 16.0, G: 20.0, "BU00010101": 4.0, "BU00010201": 16.0}
    level = {W1: "wijk", W2: "wijk", G: "gemeente", "BU00010101": "buurt", "BU00010201": "buurt"}

    def release(hidden: set[str]) -> list[tuple]:
        return [
            (level[a], a, 2024, "x.incidents", "suppressed" if a in hidden else "ok")
            for a in values
        ]

    schema = "level string, area_code string, year int, indicator string, status string"
    b_hidden = {W1, G, "BU00010101"}
    audit = spark.createDataFrame(
        [
            (level[a], a, 2024, "x.incidents", "count",
             "primary" if a in b_hidden else "published", values[a],
             "suppressed" if a in b_hidden else "ok")
            for a in values
        ],
        "level string, area_code string, year int, indicator string, unit string, "
        "reason string, value double, status string",
    )  # fmt: skip
    a_pattern = spark.createDataFrame(release({W1, W2, "BU00010101", "BU00010201"}), schema)
    got = {
        r["area_code"]: r["protected"]
        for r in joint_audit(audit, [a_pattern], hier, settings=SETTINGS).collect()
    }
    assert got == {W1: False, "BU00010101": False}  # G is known from A, the buurt from B's W2
    same = spark.createDataFrame(release(b_hidden), schema)
    got = {
        r["area_code"]: r["protected"]
        for r in joint_audit(audit, [same], hier, settings=SETTINGS).collect()
    }
    assert got == {W1: True, G: True, "BU00010101": True}
