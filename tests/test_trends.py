"""Trends and intervals (``zicht.models.trends``) against independent references.

References: the Poisson likelihood maximised by ``scipy.optimize`` with its standard error
from a finite-difference Hessian (statsmodels is not installed); scipy's ``poisson`` CDF for
the exact interval (the bound where the tail probability is exactly a/2); the Wilson formula
written out from Wilson (1927); a Benjamini-Hochberg written here from the definition (the
largest k with p_(k) <= k alpha / m). Seeds are fixed and printed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from scipy import optimize, stats

from zicht.features.settings import IndicatorSpec
from zicht.models.trends import (
    build_indicator_intervals,
    build_indicator_trends,
    fit_poisson_trends,
    garwood_interval,
    published_trends,
    wilson_interval,
)

SEED = 20261201
YEARS = np.arange(2019, 2024)
SPECS = [
    IndicatorSpec("drugs.incidents", "drugs", "count", "", sources=("incidents",)),
    IndicatorSpec("context.inhabitants", "", "count", "", sources=("persons",)),
    IndicatorSpec(
        "drugs.incidents_per_1000",
        "drugs",
        "rate",
        "",
        numerator="drugs.incidents",
        denominator="context.inhabitants",
        sources=("incidents",),
    ),
    IndicatorSpec("drugs.local_suspects", "drugs", "count", "", sources=("suspects",)),
    IndicatorSpec("drugs.suspects", "drugs", "count", "", sources=("suspects",)),
    IndicatorSpec(
        "drugs.local_suspect_share",
        "drugs",
        "share",
        "",
        numerator="drugs.local_suspects",
        denominator="drugs.suspects",
        sources=("suspects",),
    ),
    # smoothed: a rate, but no plain ratio, so no interval and no trend
    IndicatorSpec(
        "drugs.incidents_per_1000_smoothed",
        "drugs",
        "rate",
        "",
        numerator="drugs.incidents",
        denominator="context.inhabitants",
        method="eb_smoothed",
        sources=("incidents",),
    ),
]


def _reference_fit(c: np.ndarray, d: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Slope and Wald se of log mu = a + b t + log d: scipy's optimum of the full
    two-parameter likelihood and the inverse of its finite-difference Hessian."""
    tc = t - t.mean()

    def nll(p: np.ndarray) -> float:
        eta = p[0] + p[1] * tc + np.log(d)
        return float(np.sum(np.exp(eta) - c * eta))

    start = np.array([np.log(c.sum() / d.sum()), 0.0])
    res = optimize.minimize(nll, start, method="Nelder-Mead",
                            options={"xatol": 1e-11, "fatol": 1e-13, "maxiter": 20000})  # fmt: skip
    h = 1e-4
    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (
                nll(res.x + e_i + e_j) - nll(res.x + e_i - e_j)
                - nll(res.x - e_i + e_j) + nll(res.x - e_i - e_j)
            ) / (4 * h * h)  # fmt: skip
    return float(res.x[1]), float(np.sqrt(np.linalg.inv(hess)[1, 1]))


def test_poisson_trend_matches_the_likelihood_maximised_by_scipy() -> None:
    print(f"seed {SEED}")
    rng = np.random.default_rng(SEED)
    n = 12
    exposure = rng.integers(200, 5000, (n, len(YEARS))).astype(float)
    true_b = rng.normal(0, 0.3, n)
    mu = exposure / 1000 * 8 * np.exp(true_b[:, None] * (YEARS - 2021))
    counts = rng.poisson(mu).astype(float)
    fit = fit_poisson_trends(counts, exposure, YEARS)
    assert list(fit.status) == ["ok"] * n
    for i in range(n):
        b, se = _reference_fit(counts[i], exposure[i], YEARS.astype(float))
        assert fit.slope[i] == pytest.approx(b, abs=1e-5)
        assert fit.se[i] == pytest.approx(se, rel=1e-3)
        assert fit.lower[i] == pytest.approx(b - 1.959964 * se, abs=1e-3)
        z = b / se
        assert fit.p_value[i] == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-4)


def test_count_trend_without_exposure_and_a_missing_year() -> None:
    counts = np.array([[3.0, 7.0, np.nan, 12.0, 20.0]])
    fit = fit_poisson_trends(counts, None, YEARS)
    keep = np.isfinite(counts[0])
    b, se = _reference_fit(counts[0][keep], np.ones(keep.sum()), YEARS[keep].astype(float))
    assert fit.n_years[0] == 4
    assert fit.slope[0] == pytest.approx(b, abs=1e-5)
    assert fit.se[0] == pytest.approx(se, rel=1e-3)


def test_two_years_give_the_rate_ratio_and_its_textbook_interval() -> None:
    # (c2 / d2) / (c1 / d1) = (30 / 1200) / (12 / 1000), log-scale se sqrt(1/12 + 1/30)
    fit = fit_poisson_trends([[12.0, 30.0]], [[1000.0, 1200.0]], [2023, 2024])
    assert fit.status[0] == "ok"
    assert np.exp(fit.slope[0]) == pytest.approx((30 / 1200) / (12 / 1000), rel=1e-9)
    assert fit.se[0] == pytest.approx(np.sqrt(1 / 12 + 1 / 30), rel=1e-9)


def test_series_without_a_trend_say_why() -> None:
    counts = np.array(
        [
            [0, 0, 0, 0, 0],  # all zero: flat likelihood
            [0, 0, 0, 0, 9],  # everything in the last year: b runs to +inf
            [4, 0, 0, 0, 0],  # everything in the first year: b runs to -inf
            [np.nan, np.nan, np.nan, np.nan, 4],  # one usable year
            [0, 0, 5, 0, 0],  # one year inside: estimable (b = 0 by symmetry)
        ],
        dtype=float,
    )
    fit = fit_poisson_trends(counts, None, YEARS)
    assert list(fit.status) == ["all_zero", "not_estimable", "not_estimable", "too_few_years", "ok"]
    assert np.isnan(fit.slope[:4]).all()
    assert fit.slope[4] == pytest.approx(0.0, abs=1e-9)


def test_garwood_interval_is_where_the_poisson_tails_are_a_half_alpha() -> None:
    counts = np.array([0, 1, 2, 5, 9, 10, 37, 250])
    lower, upper = garwood_interval(counts)
    assert lower[0] == 0.0
    for c, lo, hi in zip(counts, lower, upper, strict=True):
        # upper: P(X <= c | mu = hi) = 0.025; lower: P(X >= c | mu = lo) = 0.025
        assert stats.poisson.cdf(c, hi) == pytest.approx(0.025, abs=1e-9)
        if c > 0:
            assert stats.poisson.sf(c - 1, lo) == pytest.approx(0.025, abs=1e-9)
    # the chi-square form of the textbooks
    assert upper[3] == pytest.approx(stats.chi2.ppf(0.975, 12) / 2)
    assert lower[3] == pytest.approx(stats.chi2.ppf(0.025, 10) / 2)


def test_wilson_interval_against_the_formula() -> None:
    x = np.array([0, 1, 7, 30, 50])
    n = np.array([10, 12, 20, 31, 50])
    lower, upper = wilson_interval(x, n)
    z = 1.959963984540054
    for xi, ni, lo, hi in zip(x, n, lower, upper, strict=True):
        p = xi / ni
        centre = (xi + z * z / 2) / (ni + z * z)
        half = z * np.sqrt(ni) / (ni + z * z) * np.sqrt(p * (1 - p) + z * z / (4 * ni))
        assert lo == pytest.approx(max(centre - half, 0), abs=1e-12)
        assert hi == pytest.approx(min(centre + half, 1), abs=1e-12)
    lo, hi = wilson_interval([3], [0])
    assert np.isnan(lo[0]) and np.isnan(hi[0])


def _bh_reference(p: list[float], alpha: float) -> list[bool]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    k = max((r + 1 for r, i in enumerate(order) if p[i] <= (r + 1) * alpha / m), default=0)
    return [i in set(order[:k]) for i in range(m)]


# --------------------------------------------------------------------------- published trends


def _pub(rows: list[tuple[str, str, int, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["level", "area_code", "year", "indicator", "value", "status"]
    ).assign(area_name=lambda f: "naam " + f["area_code"])[
        ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
    ]


def test_published_trend_only_where_every_year_is_published() -> None:
    rows = []
    for k, y in enumerate(YEARS):
        rows += [
            ("gemeente", "GM0001", y, "drugs.incidents", str(20 + 5 * k), "ok"),
            ("gemeente", "GM0001", y, "context.inhabitants", "1000", "ok"),
            ("gemeente", "GM0001", y, "drugs.incidents_per_1000", f"{20 + 5 * k:.1f}", "ok"),
            # GM0002: its 2021 count suppressed, so its rate is too, and no trend of either
            ("gemeente", "GM0002", y, "drugs.incidents",
             "" if y == 2021 else "40", "suppressed" if y == 2021 else "ok"),
            ("gemeente", "GM0002", y, "context.inhabitants", "2000", "ok"),
            ("gemeente", "GM0002", y, "drugs.incidents_per_1000",
             "" if y == 2021 else "20.0", "suppressed" if y == 2021 else "ok"),
        ]  # fmt: skip
    out = published_trends(_pub(rows), specs=SPECS, fdr_alpha=0.05).set_index(
        ["area_code", "indicator"]
    )
    for ind in ("drugs.incidents", "drugs.incidents_per_1000"):
        gone = out.loc[("GM0002", ind)]
        assert gone["status"] == "suppressed"
        assert (
            gone[["value_last", "change_last", "lower_last", "trend_per_year", "q_value"]]
            .isna()
            .all()
        )
    # inhabitants are published every year in both
    assert out.loc[("GM0002", "context.inhabitants"), "status"] == "ok"
    # GM0001: the trend of the published counts, fitted independently
    counts = np.array([20 + 5 * k for k in range(5)], dtype=float)
    b, se = _reference_fit(counts, np.ones(5), YEARS.astype(float))
    row = out.loc[("GM0001", "drugs.incidents")]
    assert row["status"] == "ok" and row["trend_status"] == "ok"
    assert row["trend_per_year"] == pytest.approx(np.exp(b) - 1, abs=1e-5)
    assert row["trend_lower"] == pytest.approx(np.exp(b - 1.959964 * se) - 1, abs=1e-3)
    assert row["value_last"] == 40 and row["change_last"] == 5
    assert row["change_last_relative"] == pytest.approx(5 / 35)
    assert stats.poisson.cdf(40, row["upper_last"]) == pytest.approx(0.025, abs=1e-9)
    # the rate: the same counts over 1000 inhabitants, per 1000: the same trend, interval / 1
    rate = out.loc[("GM0001", "drugs.incidents_per_1000")]
    assert rate["trend_per_year"] == pytest.approx(row["trend_per_year"], abs=1e-6)
    assert rate["upper_last"] == pytest.approx(row["upper_last"], rel=1e-9)
    assert set(out.index.get_level_values("indicator")) == {
        "drugs.incidents", "context.inhabitants", "drugs.incidents_per_1000"
    }  # fmt: skip


def test_published_share_gets_wilson_from_published_counts_and_no_trend() -> None:
    rows = []
    for y in YEARS:
        rows += [
            ("wijk", "WK000101", y, "drugs.local_suspects", "12", "ok"),
            ("wijk", "WK000101", y, "drugs.suspects", "40", "ok"),
            ("wijk", "WK000101", y, "drugs.local_suspect_share", "0.300", "ok"),
        ]
    out = published_trends(_pub(rows), specs=SPECS, fdr_alpha=0.05).set_index("indicator")
    share = out.loc["drugs.local_suspect_share"]
    lo, hi = wilson_interval([12], [40])
    assert share["lower_last"] == pytest.approx(lo[0]) and share["upper_last"] == pytest.approx(
        hi[0]
    )
    assert share["trend_status"] == "not_a_count" and np.isnan(share["trend_per_year"])
    assert share["change_last"] == 0


def test_published_buurt_trend_needs_exact_placement() -> None:
    rows = [("buurt", code, y, "drugs.incidents", "15", "ok")
            for code in ("BU00010101", "BU00010102") for y in YEARS]  # fmt: skip
    out = published_trends(
        _pub(rows), specs=SPECS, fdr_alpha=0.05,
        placed_exactly=lambda level, code: code != "BU00010102",
    ).set_index("area_code")  # fmt: skip
    assert out.loc["BU00010101", "status"] == "ok"
    assert out.loc["BU00010102", "status"] == "not_exact"
    assert np.isnan(out.loc["BU00010102", "trend_per_year"])


def test_published_rows_sorted_change_only_between_consecutive_years_and_no_cell_twice() -> None:
    """The rows come out sorted by level, area and indicator whatever the input order; the
    last year's change needs the year before it; a cell given twice is an error."""
    rows = [("gemeente", code, y, "drugs.incidents", v, "ok")
            for code, v in (("GM0002", "30"), ("GM0001", "10"))
            for y in (2019, 2021)]  # fmt: skip
    rows += [("buurt", "BU00010101", y, "drugs.incidents", "15", "ok") for y in (2021, 2019)]
    out = published_trends(_pub(rows[::-1]), specs=SPECS, fdr_alpha=0.05)
    assert list(zip(out["level"], out["area_code"], strict=True)) == [
        ("buurt", "BU00010101"), ("gemeente", "GM0001"), ("gemeente", "GM0002")
    ]  # fmt: skip
    assert list(out["value_last"]) == [15, 10, 30]
    assert out["change_last"].isna().all()  # 2020 is not in the period: no year before 2021
    assert list(out["first_year"]) == [2019] * 3 and list(out["last_year"]) == [2021] * 3
    with pytest.raises(ValueError, match="twice"):
        published_trends(_pub(rows + rows[:1]), specs=SPECS, fdr_alpha=0.05)


def test_significant_trend_flags_pass_benjamini_hochberg() -> None:
    print(f"seed {SEED}")
    rng = np.random.default_rng(SEED)
    rows = []
    n = 60
    slopes = np.where(np.arange(n) < 15, 0.35, 0.0)  # 15 rising gemeenten among 60
    for i in range(n):
        code = f"GM{i + 1:04d}"
        counts = rng.poisson(30 * np.exp(slopes[i] * (YEARS - 2021)))
        rows += [("gemeente", code, int(y), "drugs.incidents", str(int(c)), "ok")
                 for y, c in zip(YEARS, counts, strict=True)]  # fmt: skip
    out = published_trends(_pub(rows), specs=SPECS, fdr_alpha=0.05)
    # the p-values, refitted here per gemeente, through a BH written from its definition
    p = []
    for code in out["area_code"]:
        c = np.array([int(r[4]) for r in rows if r[1] == code], dtype=float)
        b, se = _reference_fit(c, np.ones(5), YEARS.astype(float))
        p.append(2 * stats.norm.sf(abs(b / se)))
    expected = _bh_reference(p, 0.05)
    assert list(out["is_significant"].astype(bool)) == expected
    assert sum(expected) >= 10  # the planted rises are found
    # raw p < 0.05 flags more than BH does: the step is applied, not skipped
    assert sum(pi < 0.05 for pi in p) >= sum(expected)


# --------------------------------------------------------------------------- restricted (Spark)


@pytest.mark.spark
def test_restricted_tables_from_unrounded_cells(spark: SparkSession) -> None:
    inc = [3, 5, 4, 8, 11]
    inh = [950, 1010, 1020, 980, 1000]
    rows = []
    for k, y in enumerate(YEARS):
        y = int(y)
        rows += [
            ("buurt", "BU00010101", y, "drugs.incidents", float(inc[k]), "ok"),
            ("buurt", "BU00010101", y, "context.inhabitants", float(inh[k]), "ok"),
            ("buurt", "BU00010101", y, "drugs.incidents_per_1000", 1000 * inc[k] / inh[k], "ok"),
            ("buurt", "BU00010101", y, "drugs.incidents_per_1000_smoothed", 4.0, "ok"),
            ("buurt", "BU00010101", y, "drugs.local_suspects", 2.0, "ok"),
            ("buurt", "BU00010101", y, "drugs.suspects", 0.0 if y == 2020 else 6.0, "ok"),
            ("buurt", "BU00010101", y, "drugs.local_suspect_share",
             None if y == 2020 else 2 / 6, "not_applicable" if y == 2020 else "ok"),
        ]  # fmt: skip
    cells = spark.createDataFrame(
        rows, "level string, area_code string, year int, indicator string, value double, "
        "status string",
    )  # fmt: skip
    iv = build_indicator_intervals(cells, specs=SPECS).toPandas().set_index(["indicator", "year"])
    assert "drugs.incidents_per_1000_smoothed" not in iv.index.get_level_values(0)
    # the share of 2020 (denominator 0, not_applicable) has no interval
    assert ("drugs.local_suspect_share", 2020) not in iv.index
    r = iv.loc[("drugs.incidents_per_1000", 2023)]
    assert r["interval_method"] == "garwood"
    assert r["upper"] == pytest.approx(stats.chi2.ppf(0.975, 24) / 2 * 1000 / 1000)
    assert r["lower"] == pytest.approx(stats.chi2.ppf(0.025, 22) / 2)
    assert r["change"] == pytest.approx(11 - 8000 / 980)
    c = iv.loc[("drugs.incidents", 2019)]
    assert np.isnan(c["previous_value"]) and c["lower"] == pytest.approx(
        stats.chi2.ppf(0.025, 6) / 2
    )
    s = iv.loc[("drugs.local_suspect_share", 2021)]
    lo, hi = wilson_interval([2], [6])
    assert s["interval_method"] == "wilson" and s["lower"] == pytest.approx(lo[0])
    # 2020 is absent, so 2021 has no previous year
    assert np.isnan(s["change"])

    tr = build_indicator_trends(cells, specs=SPECS, fdr_alpha=0.05, years=list(YEARS))
    tr_pd = tr.toPandas().set_index("indicator")
    assert "drugs.local_suspect_share" not in tr_pd.index  # shares have no trend
    b, se = _reference_fit(np.array(inc, float), np.array(inh, float), YEARS.astype(float))
    rate = tr_pd.loc["drugs.incidents_per_1000"]
    assert rate["trend_status"] == "ok" and rate["n_years"] == 5
    assert rate["slope_per_year"] == pytest.approx(b, abs=1e-5)
    assert rate["slope_se"] == pytest.approx(se, rel=1e-3)
    assert rate["q_value"] == pytest.approx(rate["p_value"])  # one area: q = p
    assert tr_pd.loc["drugs.local_suspects", "trend_status"] == "ok"
    assert tr_pd.loc["drugs.local_suspects", "slope_per_year"] == pytest.approx(0, abs=1e-9)


def test_trend_file_and_report_table_render_the_published_trends() -> None:
    import io

    from zicht.jobs.export.trends import gemeente_trend_html, render_trends

    rows = []
    for k, y in enumerate(YEARS):
        for code, inc in (("GM0001", 20 + 5 * k), ("GM0002", None)):
            hidden = inc is None and y == 2021
            rows += [
                ("gemeente", code, y, "drugs.incidents",
                 "" if hidden else str(inc or 40), "suppressed" if hidden else "ok"),
                ("gemeente", code, y, "context.inhabitants", "1000", "ok"),
                ("gemeente", code, y, "drugs.incidents_per_1000",
                 "" if hidden else f"{inc or 40:.1f}", "suppressed" if hidden else "ok"),
            ]  # fmt: skip
    trends = published_trends(_pub(rows), specs=SPECS, fdr_alpha=0.05)
    units = {s.key: s.unit for s in SPECS}
    data = render_trends(trends, units=units, dialect="nl")
    back = pd.read_csv(io.StringIO(data.decode("utf-8-sig")), sep=";", dtype=str,
                       keep_default_na=False).set_index(["area_code", "indicator"])  # fmt: skip
    row = back.loc[("GM0001", "drugs.incidents")]
    assert row["value_last"] == "40" and row["change_last"] == "5"
    # decimal comma; the trend equals the fitted one to the three decimals it is shown with
    expected = float(trends.set_index(["area_code", "indicator"]).loc[
        ("GM0001", "drugs.incidents"), "trend_per_year"])  # fmt: skip
    assert row["trend_per_year"] == f"{expected:.3f}".replace(".", ",")
    assert back.loc[("GM0002", "drugs.incidents"), "status"] == "suppressed"
    assert back.loc[("GM0002", "drugs.incidents"), "trend_per_year"] == ""
    page = gemeente_trend_html(trends, phenomena={"drugs": "Drugs"})
    assert "Trend per gemeente 2019-2023" in page and "naam GM0001" in page
    assert page.count('<td class="n">x</td>') == 1  # GM0002's suppressed year
