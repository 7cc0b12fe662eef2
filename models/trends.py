"""Trends and intervals over the years of the indicator catalogue, per area and indicator.

Reads and writes nothing. Two uses of the same statistics:

- **restricted** (:func:`build_indicator_intervals`, :func:`build_indicator_trends`): Spark
  frames from ``restricted/indicators`` (unrounded, unsuppressed) for the analysts: intervals
  and changes row-wise, trends grouped with ``applyInPandas`` per level and bucket of whole
  indicators (the areas of one level x the years x ~1/8 of the indicators: nationally ~15k
  buurten x 5 years x ~12 indicators), small by construction.
- **published** (:func:`published_trends`): a pandas frame computed from the partner table
  alone, i.e. from the published, rounded values, and only for a series whose every year is
  published: an exact interval on an unrounded count would give back the count that rounding
  hid, and a trend over a suppressed year would give back the suppressed cell.

Methods
- Exact (Garwood 1936) Poisson interval for a count ``c``: ``[G(a/2; c), G(1 - a/2; c + 1)]``
  with ``G(q; k)`` the gamma quantile of shape ``k`` (= chi2 quantile of ``2k`` degrees of
  freedom, halved); the lower bound of 0 is 0. A rate ``scale * c / d`` takes the count's
  bounds times ``scale / d`` (the denominator held fixed, as exposure).
- Wilson (1927) score interval for a share ``x / n``.
- Trend: Poisson regression of the count on the year, ``log mu_t = a + b t`` with offset
  ``log d_t`` for a rate (the denominator; none for a count), by maximum likelihood (Newton on
  the likelihood profiled over ``a``, vectorised over the series). ``exp(b)`` is the rate ratio
  per year; its 95 % interval is Wald on the log scale, ``b -+ z se`` with ``se`` from the Fisher
  information (``1 / se^2 = sum mu t^2 - (sum mu t)^2 / sum mu``), and the p-value is Wald's.
  With two usable years ``exp(b)`` is their rate ratio and the interval the usual Wald one on
  its log. No trend where fewer than ``min_years`` (2) years are usable (``too_few_years``), where every
  count is 0 (``all_zero``: the likelihood is flat), or where all counts fall in the first or
  the last usable year (``not_estimable``: the estimate runs off to infinity).
- Flags of significant trends over many areas: Benjamini & Hochberg (1995) at the hot spots'
  ``model.fdr_alpha``, per level and indicator over the areas with a trend
  (:func:`zicht.models.hotspots.benjamini_hochberg`, the hot spots' own step).
- Change against the previous year: ``value_t - value_{t-1}`` and that over ``value_{t-1}``
  (null when the previous year is absent or 0).

Rates and shares are the catalogue's plain ratios (``numerator`` / ``denominator`` counts, no
``method``); smoothed or composite values get neither intervals nor trends.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window
from scipy import stats

from zicht.features.settings import IndicatorSpec
from zicht.features.units import UNITS
from zicht.models.hotspots import benjamini_hochberg

FloatArray = npt.NDArray[np.float64]

CONFIDENCE = 0.95
# two usable years suffice: the slope is then the log of the two years' rate ratio and its
# Wald interval the textbook one, sqrt(1/c1 + 1/c2) (the synthetic demo spans two years)
MIN_YEARS = 2
TREND_STATUSES = ("ok", "too_few_years", "all_zero", "not_estimable")
KINDS = ("count", "rate", "share")
TREND_BUCKETS = 8  # indicator buckets per level for the grouped trend fit


# --------------------------------------------------------------------------- intervals


def garwood_interval(
    counts: npt.ArrayLike, *, confidence: float = CONFIDENCE
) -> tuple[FloatArray, FloatArray]:
    """Exact Poisson interval of each count (NaN in, NaN out)."""
    c = np.asarray(counts, dtype=float)
    a = 1.0 - confidence
    positive = c > 0
    lower = np.where(positive, stats.gamma.ppf(a / 2, np.where(positive, c, 1.0)), 0.0)
    upper = stats.gamma.ppf(1 - a / 2, c + 1.0)
    nan = ~np.isfinite(c)
    return np.where(nan, np.nan, lower), np.where(nan, np.nan, upper)


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, *, confidence: float = CONFIDENCE
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of each share ``successes / trials`` (NaN where trials <= 0)."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    ok = np.isfinite(x) & np.isfinite(n) & (n > 0)
    n_ = np.where(ok, n, 1.0)
    p = np.clip(np.where(ok, x, 0.0) / n_, 0.0, 1.0)
    denom = 1 + z**2 / n_
    centre = (p + z**2 / (2 * n_)) / denom
    half = z * np.sqrt(p * (1 - p) / n_ + z**2 / (4 * n_**2)) / denom
    return (
        np.where(ok, np.clip(centre - half, 0.0, 1.0), np.nan),
        np.where(ok, np.clip(centre + half, 0.0, 1.0), np.nan),
    )


# --------------------------------------------------------------------------- the trend fit


@dataclass(frozen=True)
class TrendFit:
    """One Poisson trend per row of the count matrix."""

    slope: FloatArray  # b, log rate ratio per year (NaN unless status ok)
    se: FloatArray  # Wald standard error of b
    lower: FloatArray  # b - z se
    upper: FloatArray  # b + z se
    p_value: FloatArray  # Wald, two-sided
    n_years: npt.NDArray[np.int64]  # usable years
    total: FloatArray  # sum of the counts over the usable years
    status: npt.NDArray[np.object_]  # TREND_STATUSES


def fit_poisson_trends(
    counts: npt.ArrayLike,
    exposure: npt.ArrayLike | None,
    years: npt.ArrayLike,
    *,
    min_years: int = MIN_YEARS,
    confidence: float = CONFIDENCE,
    max_iter: int = 100,
) -> TrendFit:
    """Poisson regression of ``counts`` (n series x T years) on ``years`` (T), with offset
    ``log(exposure)`` (n x T; None: none). A year is usable where its count is finite and its
    exposure finite and positive. Newton on the profile likelihood of the slope (concave), the
    step capped at 1 so that a flat start cannot overshoot."""
    c = np.atleast_2d(np.asarray(counts, dtype=float))
    d = np.ones_like(c) if exposure is None else np.atleast_2d(np.asarray(exposure, dtype=float))
    t_all = np.broadcast_to(np.asarray(years, dtype=float), c.shape)
    valid = np.isfinite(c) & np.isfinite(d) & (d > 0)
    cz, dz = np.where(valid, c, 0.0), np.where(valid, d, 0.0)
    n_years = valid.sum(axis=1)
    safe_n = np.maximum(n_years, 1)
    # centred on each series' usable years: the slope is the same, the numbers stay small
    tbar = np.where(valid, t_all, 0.0).sum(axis=1) / safe_n
    t = np.where(valid, t_all - tbar[:, None], 0.0)
    total = cz.sum(axis=1)
    safe_total = np.where(total > 0, total, 1.0)
    t_obs = (cz * t).sum(axis=1) / safe_total  # count-weighted mean year
    big = np.finfo(float).max
    t_min = np.where(valid, t, big).min(axis=1)
    t_max = np.where(valid, t, -big).max(axis=1)
    eps = 1e-9
    status = np.full(len(c), "ok", dtype=object)
    status[(t_obs <= t_min + eps) | (t_obs >= t_max - eps)] = "not_estimable"
    status[total <= 0] = "all_zero"
    status[n_years < min_years] = "too_few_years"
    ok = status == "ok"

    b = np.zeros(len(c))

    def moments(b: FloatArray) -> tuple[FloatArray, FloatArray]:
        eta = np.where(valid, b[:, None] * t, -np.inf)
        eta = eta - np.where(ok, eta.max(axis=1), 0.0)[:, None]  # log-sum-exp guard
        w = dz * np.exp(eta)
        s0 = np.where(ok, w.sum(axis=1), 1.0)
        m1 = (w * t).sum(axis=1) / s0
        var = (w * t**2).sum(axis=1) / s0 - m1**2
        return m1, var

    for _ in range(max_iter):
        m1, var = moments(b)
        info = total * var
        step = np.where(ok, (total * (t_obs - m1)) / np.where(info > 0, info, 1.0), 0.0)
        step = np.clip(step, -1.0, 1.0)
        b = b + step
        if np.max(np.abs(step), initial=0.0) < 1e-12:
            break
    _, var = moments(b)
    info = total * var
    se = np.where(ok & (info > 0), 1.0 / np.sqrt(np.where(info > 0, info, 1.0)), np.nan)
    slope = np.where(ok, b, np.nan)
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p_value = np.where(ok, 2 * stats.norm.sf(np.abs(slope / se)), np.nan)
    return TrendFit(
        slope=slope,
        se=se,
        lower=slope - z * se,
        upper=slope + z * se,
        p_value=p_value,
        n_years=n_years.astype(np.int64),
        total=total,
        status=status,
    )


# --------------------------------------------------------------------------- per group (pandas)

SERIES_KEYS = ["level", "area_code", "indicator"]


def _matrix(frame: pd.DataFrame, column: str, years: Sequence[int]) -> pd.DataFrame:
    wide = frame.pivot_table(index=SERIES_KEYS, columns="year", values=column, aggfunc="first")
    return wide.reindex(columns=list(years))


def trends_of_series(
    series: pd.DataFrame,
    *,
    fdr_alpha: float,
    years: Sequence[int] | None = None,
    min_years: int = MIN_YEARS,
) -> pd.DataFrame:
    """One Poisson trend per (level, area_code, indicator) of ``series`` (``year``, ``kind``,
    ``count``, ``exposure``: the denominator of a rate, 1 for a count), with the BH q-value per
    level and indicator. ``years``: the period (default: the years in ``series``)."""
    cols = [*SERIES_KEYS, "first_year", "last_year", "n_years", "total_count", "slope_per_year",
            "slope_se", "rate_ratio_per_year", "rate_ratio_lower", "rate_ratio_upper", "p_value",
            "q_value", "is_significant", "trend_status"]  # fmt: skip
    if series.empty:
        return pd.DataFrame(columns=cols)
    period = sorted(int(y) for y in (years if years is not None else series["year"].unique()))
    counts = _matrix(series, "count", period)
    exposure = _matrix(series, "exposure", period).reindex(counts.index)
    fit = fit_poisson_trends(
        counts.to_numpy(dtype=float),
        exposure.to_numpy(dtype=float),
        period,
        min_years=min_years,
    )
    usable = np.isfinite(counts.to_numpy(dtype=float)) & (exposure.to_numpy(dtype=float) > 0)
    yr = np.asarray(period, dtype=float)
    first = np.where(usable, yr, np.inf).min(axis=1)
    last = np.where(usable, yr, -np.inf).max(axis=1)
    out = counts.index.to_frame(index=False)
    out["first_year"] = pd.array(np.where(np.isfinite(first), first, np.nan)).astype("Int64")
    out["last_year"] = pd.array(np.where(np.isfinite(last), last, np.nan)).astype("Int64")
    out["n_years"] = fit.n_years
    out["total_count"] = fit.total
    out["slope_per_year"] = fit.slope
    out["slope_se"] = fit.se
    out["rate_ratio_per_year"] = np.exp(fit.slope)
    out["rate_ratio_lower"] = np.exp(fit.lower)
    out["rate_ratio_upper"] = np.exp(fit.upper)
    out["p_value"] = fit.p_value
    out["q_value"] = np.nan
    out["is_significant"] = pd.array([pd.NA] * len(out), dtype="boolean")
    out["trend_status"] = fit.status
    reject, q = bh_per_group(
        out["p_value"].to_numpy(), out.groupby(["level", "indicator"]).ngroup(), fdr_alpha
    )
    out["q_value"] = q
    out["is_significant"] = pd.array(reject, dtype="boolean")
    # no flag where there is no trend (BH neither tests nor rejects a NaN p-value)
    out.loc[out["trend_status"] != "ok", "is_significant"] = pd.NA
    return out[cols]


def intervals_of_series(series: pd.DataFrame, *, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per row of ``series`` (``value``, ``kind``, ``scale``, ``count``, ``exposure``): the exact
    Poisson interval of a count or rate, the Wilson interval of a share, and the change against
    the previous year (``previous_value``, ``change``, ``change_relative``)."""
    s = series.sort_values([*SERIES_KEYS, "year"]).reset_index(drop=True)
    c = s["count"].to_numpy(dtype=float)
    d = s["exposure"].to_numpy(dtype=float)
    scale = s["scale"].to_numpy(dtype=float)
    kind = s["kind"].to_numpy(dtype=object)
    g_lo, g_hi = garwood_interval(c, confidence=confidence)
    per = np.where(kind == "rate", scale / np.where(d > 0, d, np.nan), 1.0)
    w_lo, w_hi = wilson_interval(c, d, confidence=confidence)
    share = kind == "share"
    s["lower"] = np.where(share, w_lo, g_lo * per)
    s["upper"] = np.where(share, w_hi, g_hi * per)
    s["interval_method"] = np.where(share, "wilson", "garwood")
    same = (s[SERIES_KEYS] == s[SERIES_KEYS].shift(1)).all(axis=1)
    consecutive = same & (s["year"] == s["year"].shift(1) + 1)
    prev = s["value"].shift(1).where(consecutive)
    s["previous_value"] = prev
    s["change"] = s["value"] - prev
    s["change_relative"] = (s["value"] - prev) / prev.where(prev != 0)
    return s


# --------------------------------------------------------------------------- restricted (Spark)

INTERVAL_SCHEMA = T.StructType(
    [
        T.StructField("level", T.StringType()),
        T.StructField("area_code", T.StringType()),
        T.StructField("year", T.IntegerType()),
        T.StructField("indicator", T.StringType()),
        T.StructField("unit", T.StringType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("lower", T.DoubleType()),
        T.StructField("upper", T.DoubleType()),
        T.StructField("interval_method", T.StringType()),
        T.StructField("previous_value", T.DoubleType()),
        T.StructField("change", T.DoubleType()),
        T.StructField("change_relative", T.DoubleType()),
    ]
)

TREND_SCHEMA = T.StructType(
    [
        T.StructField("level", T.StringType()),
        T.StructField("area_code", T.StringType()),
        T.StructField("indicator", T.StringType()),
        T.StructField("unit", T.StringType()),
        T.StructField("first_year", T.IntegerType()),
        T.StructField("last_year", T.IntegerType()),
        T.StructField("n_years", T.IntegerType()),
        T.StructField("total_count", T.DoubleType()),
        T.StructField("slope_per_year", T.DoubleType()),
        T.StructField("slope_se", T.DoubleType()),
        T.StructField("rate_ratio_per_year", T.DoubleType()),
        T.StructField("rate_ratio_lower", T.DoubleType()),
        T.StructField("rate_ratio_upper", T.DoubleType()),
        T.StructField("p_value", T.DoubleType()),
        T.StructField("q_value", T.DoubleType()),
        T.StructField("is_significant", T.BooleanType()),
        T.StructField("trend_status", T.StringType()),
    ]
)


def trend_plan(specs: Sequence[IndicatorSpec]) -> list[tuple[str, str, str, float, str, str]]:
    """``(indicator, unit, kind, scale, numerator, denominator)`` of every catalogue entry that
    gets intervals: counts, and rates and shares that are plain ratios of two counts."""
    by_key = {s.key: s for s in specs}
    plan: list[tuple[str, str, str, float, str, str]] = []
    for s in specs:
        if s.unit == "count":
            plan.append((s.key, s.unit, "count", 1.0, s.key, ""))
        elif (
            s.unit in ("rate", "share")
            and not s.method
            and s.numerator in by_key
            and s.denominator in by_key
            and by_key[s.numerator].unit == "count"
            and by_key[s.denominator].unit == "count"
        ):
            plan.append((s.key, s.unit, s.unit, UNITS[s.unit].scale, s.numerator, s.denominator))
    return plan


def series_frame(cells: DataFrame, *, specs: Sequence[IndicatorSpec]) -> DataFrame:
    """``level, area_code, year, indicator, unit, kind, scale, value, count, exposure``: each
    usable cell of ``cells`` (status ok, a value) of the plan, with its numerator count and its
    denominator (1 for a count). A rate or share whose numerator or denominator cell is absent
    or not ok is left out (it has no interval); a cell outside the plan gets none."""
    spark = cells.sparkSession
    plan_schema = "indicator string, unit string, kind string, scale double, " + (
        "numerator string, denominator string"
    )
    # the catalogue's few hundred entries, back into Spark to join on
    plan = spark.createDataFrame(trend_plan(specs), plan_schema)
    ok = cells.where((F.col("status") == "ok") & F.col("value").isNotNull())
    key = ["level", "area_code", "year"]
    num = ok.select(*key, F.col("indicator").alias("numerator"), F.col("value").alias("_num"))
    den = ok.select(*key, F.col("indicator").alias("denominator"), F.col("value").alias("_den"))
    return (
        ok.select(*key, "indicator", "value")
        .join(F.broadcast(plan), "indicator")
        .join(num, [*key, "numerator"], "left")
        .join(den, [*key, "denominator"], "left")
        .select(
            *key,
            "indicator",
            "unit",
            "kind",
            "scale",
            "value",
            F.col("_num").alias("count"),
            F.when(F.col("kind") == "count", F.lit(1.0)).otherwise(F.col("_den")).alias("exposure"),
        )
        .where(F.col("count").isNotNull() & F.col("exposure").isNotNull())
    )


def _gamma_quantile(q: pd.Series, shape: pd.Series) -> pd.Series:
    """Gamma quantile per row (NaN where the shape is not positive), for a pandas UDF."""
    k = shape.to_numpy(dtype=float)
    ok = np.isfinite(k) & (k > 0)
    out = np.full(len(k), np.nan)
    out[ok] = stats.gamma.ppf(q.to_numpy(dtype=float)[ok], k[ok])
    return pd.Series(out)


def build_indicator_intervals(
    cells: DataFrame, *, specs: Sequence[IndicatorSpec], confidence: float = CONFIDENCE
) -> DataFrame:
    """``restricted/indicator_intervals``: per usable cell its interval and its change against
    the previous year, from the unrounded, unsuppressed values (analysts only). Row-wise in
    Spark: the gamma quantiles by a scalar pandas UDF (Arrow batches, no grouping), Wilson as
    a column expression, the previous year by a window per area and indicator."""
    gamma_q = F.pandas_udf(_gamma_quantile, T.DoubleType())  # type: ignore[call-overload]
    a = 1.0 - confidence
    z = float(stats.norm.ppf(1 - a / 2))
    c, d = F.col("count"), F.col("exposure")
    per = F.when(F.col("kind") == "rate", F.col("scale") / F.when(d > 0, d)).otherwise(F.lit(1.0))
    g_lo = F.when(c > 0, gamma_q(F.lit(a / 2), c)).otherwise(F.lit(0.0))
    g_hi = gamma_q(F.lit(1 - a / 2), c + F.lit(1.0))
    n = F.when(d > 0, d)
    p = F.least(F.greatest(c / n, F.lit(0.0)), F.lit(1.0))
    denom = F.lit(1.0) + F.lit(z * z) / n
    centre = (p + F.lit(z * z / 2) / n) / denom
    half = F.lit(z) * F.sqrt(p * (F.lit(1.0) - p) / n + F.lit(z * z / 4) / (n * n)) / denom
    share = F.col("kind") == "share"
    w = Window.partitionBy("level", "area_code", "indicator").orderBy("year")
    prev = F.when(F.lag("year").over(w) == F.col("year") - 1, F.lag("value").over(w))
    return (
        series_frame(cells, specs=specs)
        .withColumn("previous_value", prev)
        .select(
            "level",
            "area_code",
            F.col("year").cast("int").alias("year"),
            "indicator",
            "unit",
            "value",
            F.when(share, F.greatest(centre - half, F.lit(0.0)))
            .otherwise(g_lo * per)
            .alias("lower"),
            F.when(share, F.least(centre + half, F.lit(1.0))).otherwise(g_hi * per).alias("upper"),
            F.when(share, F.lit("wilson")).otherwise(F.lit("garwood")).alias("interval_method"),
            "previous_value",
            (F.col("value") - F.col("previous_value")).alias("change"),
            (
                (F.col("value") - F.col("previous_value"))
                / F.when(F.col("previous_value") != 0, F.col("previous_value"))
            ).alias("change_relative"),
        )
    )


def build_indicator_trends(
    cells: DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    fdr_alpha: float,
    years: Sequence[int],
    min_years: int = MIN_YEARS,
) -> DataFrame:
    """``restricted/indicator_trends``: per area and count or rate indicator, the Poisson trend
    over ``years`` (the period) with its interval, p-value and BH q-value (analysts only)."""
    names = TREND_SCHEMA.fieldNames()
    period = sorted(int(y) for y in years)

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        # one level and some indicators: their areas x years, small by construction
        out = trends_of_series(pdf, fdr_alpha=fdr_alpha, years=period, min_years=min_years)
        unit = pdf.drop_duplicates("indicator").set_index("indicator")["unit"]
        out["unit"] = out["indicator"].map(unit)
        for c in ("first_year", "last_year"):
            out[c] = out[c].astype("float64")  # nullable ints travel as floats to Arrow
        out["n_years"] = out["n_years"].astype("int32")
        out["is_significant"] = [None if pd.isna(v) else bool(v) for v in out["is_significant"]]
        return out[names]

    # a group: one level and a bucket of whole indicators (BH runs per indicator inside),
    # its areas x years x ~1/8 of the indicators; few groups, as pandas' per-call overhead
    # dominates small ones
    return (
        series_frame(cells, specs=specs)
        .where(F.col("kind") != "share")
        .withColumn("_bucket", F.pmod(F.xxhash64("indicator"), F.lit(TREND_BUCKETS)))
        .groupBy("level", "_bucket")
        .applyInPandas(run, TREND_SCHEMA)
    )


# --------------------------------------------------------------------------- published (pandas)

PUBLISHED_COLUMNS = ["level", "area_code", "area_name", "indicator", "first_year", "last_year",
                     "value_last", "change_last", "change_last_relative", "lower_last",
                     "upper_last", "trend_per_year", "trend_lower", "trend_upper", "q_value",
                     "is_significant", "status", "trend_status"]  # fmt: skip


def published_trends(
    pub: pd.DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    fdr_alpha: float,
    levels: Collection[str] = ("gemeente", "wijk", "buurt"),
    placed_exactly: Callable[[str, str], bool] | None = None,
    min_years: int = MIN_YEARS,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """The partner trend table from the partner table ``pub`` alone (``level, area_code,
    area_name, year, indicator, value, status``, values as published text): one row per area
    and indicator of the plan at ``levels``, sorted by level, area and indicator.

    A row has values (``status`` ok) only where the indicator, its numerator and its
    denominator are published (ok) in every year of the period; otherwise ``suppressed`` with
    every value empty. ``placed_exactly(level, area_code)``: whether every year of the area was
    placed exactly in the target vintage (a buurt fed partly by split incidents undercounts
    its old years and would show a false rise); an area for which it says False is
    ``not_exact``. None: every area counts as exact (no placement marker exists yet).
    The last year's value, its change against the year before and its interval (exact Poisson
    for counts and rates, Wilson for shares) come from the published numbers; the trend
    (counts and rates) is the relative change per year ``exp(b) - 1`` with its Wald interval,
    and ``is_significant`` is BH at ``fdr_alpha`` per level and indicator.

    The text keys become integer codes once (``pd.factorize`` with ``sort=True``, so codes
    order as the text does) and the published numbers one array ``areas x indicators x
    years``: every lookup below is by position, with no index of strings (nationally ~17k
    areas x the plan's ~100 indicators and their counts x the years, some tens of MB).
    """
    plan = {p[0]: p for p in trend_plan(specs)}
    rows = pub[pub["level"].isin(list(levels))]
    if rows.empty or not plan:
        return pd.DataFrame(columns=PUBLISHED_COLUMNS)
    years = sorted(int(y) for y in pub["year"].unique())
    n_years = len(years)
    needed = set(plan) | {p[4] for p in plan.values()} | {p[5] for p in plan.values()}
    rows = rows[rows["indicator"].isin(sorted(needed - {""}))]
    if not rows["indicator"].isin(list(plan)).any():
        return pd.DataFrame(columns=PUBLISHED_COLUMNS)
    level_code, level_names = pd.factorize(rows["level"], sort=True)
    code_code, code_names = pd.factorize(rows["area_code"], sort=True)
    area, area_keys = pd.factorize(
        level_code.astype(np.int64) * len(code_names) + code_code, sort=True
    )
    ind, ind_names = pd.factorize(rows["indicator"], sort=True)
    n_area, n_ind = len(area_keys), len(ind_names)
    year_pos = np.searchsorted(years, rows["year"].astype(int).to_numpy())
    number = pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype=float)
    ok_cell = (rows["status"].to_numpy() == "ok") & ~np.isnan(number)
    # one more indicator slot, never filled: where a numerator or denominator is absent
    cell = (area.astype(np.int64) * (n_ind + 1) + ind) * n_years + year_pos
    if np.bincount(cell).max(initial=0) > 1:
        raise ValueError("the partner table holds a cell (level, area, year, indicator) twice")
    flat = np.full(n_area * (n_ind + 1) * n_years, np.nan)
    flat[cell] = np.where(ok_cell, number, np.nan)
    published = flat.reshape(n_area, n_ind + 1, n_years)  # NaN: no ok cell
    seen = np.zeros(n_area * (n_ind + 1), dtype=bool)
    seen[cell // n_years] = True
    present = seen.reshape(n_area, n_ind + 1)  # a row in some year

    slot = {name: i for i, name in enumerate(ind_names)}
    in_plan = [k for k in ind_names if k in plan]  # sorted, as ind_names is
    p_slot = np.array([slot[k] for k in in_plan])
    num_slot = np.array([slot.get(plan[k][4], n_ind) for k in in_plan])
    den_slot = np.array([slot.get(plan[k][5], n_ind) for k in in_plan])
    kind = np.array([plan[k][2] for k in in_plan], dtype=object)
    scale = np.array([plan[k][3] for k in in_plan], dtype=float)

    # the series: (area, plan indicator) with a row in some year, in sorted order
    s_area, s_pos = np.nonzero(present[:, p_slot])
    value = published[s_area, p_slot[s_pos]]  # series x years
    count = published[s_area, num_slot[s_pos]]
    s_kind = kind[s_pos]
    exposure = np.where((s_kind == "count")[:, None], 1.0, published[s_area, den_slot[s_pos]])
    # a series is published only where every input of every year of the period is
    complete = (~np.isnan(value) & ~np.isnan(count) & ~np.isnan(exposure)).all(axis=1)

    key = area_keys[s_area]
    level = level_names.to_numpy(dtype=object)[key // len(code_names)]
    code = code_names.to_numpy(dtype=object)[key % len(code_names)]
    status = np.where(complete, "ok", "suppressed").astype(object)
    if placed_exactly is not None:
        # once per area, not per series
        a_key = np.asarray(area_keys)
        exact_area = np.array(
            [
                bool(placed_exactly(str(lv), str(a)))
                for lv, a in zip(
                    level_names.to_numpy(dtype=object)[a_key // len(code_names)],
                    code_names.to_numpy(dtype=object)[a_key % len(code_names)],
                    strict=True,
                )
            ],
            dtype=bool,
        )
        status[complete & ~exact_area[s_area]] = "not_exact"
    first_row = np.unique(area, return_index=True)[1]
    area_name = rows["area_name"].to_numpy(dtype=object)[first_row][s_area]

    n = len(s_area)
    cols: dict[str, Any] = {c: np.full(n, np.nan) for c in PUBLISHED_COLUMNS}
    cols.update(
        level=level,
        area_code=code,
        area_name=area_name,
        indicator=np.array(in_plan, dtype=object)[s_pos],
        status=status,
        trend_status=np.full(n, "", dtype=object),
    )
    is_significant = pd.array([pd.NA] * n, dtype="boolean")
    first_year = pd.array([pd.NA] * n, dtype="Int64")
    last_year = pd.array([pd.NA] * n, dtype="Int64")
    ok = status == "ok"
    if ok.any():
        # the last year: its value, interval and change against the year before
        v, c, d = value[ok, -1], count[ok, -1], exposure[ok, -1]
        k, sc = s_kind[ok], scale[s_pos[ok]]
        g_lo, g_hi = garwood_interval(c, confidence=confidence)
        per = np.where(k == "rate", sc / np.where(d > 0, d, np.nan), 1.0)
        w_lo, w_hi = wilson_interval(c, d, confidence=confidence)
        share = k == "share"
        consecutive = n_years >= 2 and years[-2] == years[-1] - 1
        prev = value[ok, -2] if consecutive else np.full(len(v), np.nan)
        cols["value_last"][ok] = v
        cols["change_last"][ok] = v - prev
        cols["change_last_relative"][ok] = (v - prev) / np.where(prev != 0, prev, np.nan)
        cols["lower_last"][ok] = np.where(share, w_lo, g_lo * per)
        cols["upper_last"][ok] = np.where(share, w_hi, g_hi * per)
        first_year[ok] = years[0]
        last_year[ok] = years[-1]
        trend = ok & (s_kind != "share")
        if trend.any():
            fit = fit_poisson_trends(count[trend], exposure[trend], years, min_years=min_years)
            # BH per level and indicator
            group = key[trend] // len(code_names) * len(in_plan) + s_pos[trend]
            reject, q = bh_per_group(fit.p_value, group, fdr_alpha)
            cols["trend_per_year"][trend] = np.exp(fit.slope) - 1
            cols["trend_lower"][trend] = np.exp(fit.lower) - 1
            cols["trend_upper"][trend] = np.exp(fit.upper) - 1
            cols["q_value"][trend] = q
            cols["trend_status"][trend] = fit.status
            # no flag where there is no trend (BH neither tests nor rejects a NaN p-value)
            flag = pd.array(reject, dtype="boolean")
            flag[fit.status != "ok"] = pd.NA
            is_significant[trend] = flag
        cols["trend_status"][ok & (s_kind == "share")] = "not_a_count"
    cols.update(first_year=first_year, last_year=last_year, is_significant=is_significant)
    return pd.DataFrame({c: cols[c] for c in PUBLISHED_COLUMNS})


def bh_per_group(
    p_values: npt.ArrayLike, group: npt.ArrayLike, alpha: float
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Benjamini-Hochberg (:func:`zicht.models.hotspots.benjamini_hochberg`) within each group
    of ``group`` (integer labels): (rejected, q-values), in the order of ``p_values``."""
    p = np.asarray(p_values, dtype=float)
    g = np.asarray(group)
    reject = np.zeros(len(p), dtype=bool)
    q = np.full(len(p), np.nan)
    order = np.argsort(g, kind="stable")
    sorted_g = g[order]
    starts = [int(i) for i in np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])]
    for lo, hi in zip(starts, [*starts[1:], len(p)], strict=True):
        idx = order[lo:hi]
        reject[idx], q[idx] = benjamini_hochberg(p[idx], alpha)
    return reject, q
