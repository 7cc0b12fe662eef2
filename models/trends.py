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

from collections.abc import Callable, Collection, Mapping, Sequence
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
    for _, idx in out.groupby(["level", "indicator"]).groups.items():
        reject, q = benjamini_hochberg(out.loc[idx, "p_value"].to_numpy(), fdr_alpha)
        out.loc[idx, "q_value"] = q
        out.loc[idx, "is_significant"] = reject
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


def _put(
    columns: dict[str, Any], index: pd.Index, rows: pd.Index, values: Mapping[str, object]
) -> None:
    """``columns[name][rows] = value`` for each name, ``index`` saying the columns' rows: the
    rows are found once by position, and no value Series is aligned on a (multi-)index again
    (``.loc`` with a MultiIndex materialises its tuples on every assignment, and each cell
    update of a frame copies its blocks)."""
    pos = index.get_indexer(rows)
    if (pos < 0).any():
        raise KeyError("rows to set are not among the series")
    for name, value in values.items():
        columns[name][pos] = value.to_numpy() if isinstance(value, pd.Series) else value


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
    and indicator of the plan at ``levels``.

    A row has values (``status`` ok) only where the indicator, its numerator and its
    denominator are published (ok) in every year of the period; otherwise ``suppressed`` with
    every value empty. ``placed_exactly(level, area_code)``: whether every year of the area was
    placed exactly in the target vintage (a buurt fed partly by split incidents undercounts
    its old years and would show a false rise); an area for which it says False is
    ``not_exact``. None: every area counts as exact (no placement marker exists yet).
    The last year's value, its change against the year before and its interval (exact Poisson
    for counts and rates, Wilson for shares) come from the published numbers; the trend
    (counts and rates) is the relative change per year ``exp(b) - 1`` with its Wald interval,
    and ``is_significant`` is BH at ``fdr_alpha`` per level and indicator."""
    plan = {p[0]: p for p in trend_plan(specs)}
    rows = pub[pub["level"].isin(list(levels))]
    if rows.empty or not plan:
        return pd.DataFrame(columns=PUBLISHED_COLUMNS)
    years = sorted(int(y) for y in pub["year"].unique())
    num_value = pd.to_numeric(rows["value"], errors="coerce")
    is_ok = (rows["status"] == "ok") & num_value.notna()
    cell = pd.DataFrame(
        {
            "level": rows["level"].to_numpy(),
            "area_code": rows["area_code"].to_numpy(),
            "year": rows["year"].astype(int).to_numpy(),
            "indicator": rows["indicator"].to_numpy(),
            "v": num_value.where(is_ok).to_numpy(),
        }
    )
    names = rows.drop_duplicates(["level", "area_code"]).set_index(["level", "area_code"])[
        "area_name"
    ]
    lookup = cell.set_index(["level", "area_code", "year", "indicator"])["v"]
    wanted = cell[cell["indicator"].isin(list(plan))].copy()
    meta = pd.DataFrame(
        list(plan.values()),
        columns=["indicator", "unit", "kind", "scale", "numerator", "denominator"],
    )
    wanted = wanted.merge(meta, on="indicator", how="left")

    def look(column: str) -> npt.NDArray[np.float64]:
        idx = pd.MultiIndex.from_arrays(
            [wanted["level"], wanted["area_code"], wanted["year"], wanted[column]]
        )
        return lookup.reindex(idx).to_numpy(dtype=float)

    wanted["count"] = look("numerator")
    den = look("denominator")
    wanted["exposure"] = np.where(wanted["kind"] == "count", 1.0, den)
    wanted["value"] = wanted["v"]
    # a series is published only where every input of every year of the period is
    usable = wanted["v"].notna() & wanted["count"].notna() & wanted["exposure"].notna()
    complete = (
        wanted.assign(_u=usable)
        .groupby(SERIES_KEYS)
        .agg(_n=("_u", "sum"), _years=("year", "nunique"))
    )
    complete = complete[(complete["_n"] == len(years)) & (complete["_years"] == len(years))]
    keys = wanted.set_index(SERIES_KEYS).index
    full = wanted[keys.isin(complete.index)]

    all_series = wanted.drop_duplicates(SERIES_KEYS)[SERIES_KEYS].reset_index(drop=True)
    out = all_series.copy()
    out["area_name"] = names.reindex(
        pd.MultiIndex.from_arrays([out["level"], out["area_code"]])
    ).to_numpy()
    out["status"] = np.where(
        out.set_index(SERIES_KEYS).index.isin(complete.index), "ok", "suppressed"
    )
    if placed_exactly is not None:
        exact = np.array(
            [
                bool(placed_exactly(lv, a))
                for lv, a in zip(out["level"], out["area_code"], strict=True)
            ]
        )
        out.loc[(out["status"] == "ok") & ~exact, "status"] = "not_exact"
    keep = out.loc[out["status"] == "ok", SERIES_KEYS]
    full = full.merge(keep, on=SERIES_KEYS)

    index = out.set_index(SERIES_KEYS).index
    n = len(out)
    # the published columns as arrays, filled by position, set on the frame once
    cols: dict[str, Any] = {
        c: np.full(n, np.nan) for c in PUBLISHED_COLUMNS if c not in out.columns
    }
    cols["trend_status"] = np.full(n, "", dtype=object)
    cols["is_significant"] = pd.array([pd.NA] * n, dtype="boolean")
    cols["first_year"] = pd.array([pd.NA] * n, dtype="Int64")
    cols["last_year"] = pd.array([pd.NA] * n, dtype="Int64")
    if not full.empty:
        iv = intervals_of_series(full, confidence=confidence)
        last = iv[iv["year"] == years[-1]].set_index(SERIES_KEYS)
        _put(cols, index, last.index, {
            "value_last": last["value"],
            "change_last": last["change"],
            "change_last_relative": last["change_relative"],
            "lower_last": last["lower"],
            "upper_last": last["upper"],
            "first_year": years[0],
            "last_year": years[-1],
        })  # fmt: skip
        countable = full[full["kind"] != "share"]
        if not countable.empty:
            tr = trends_of_series(
                countable, fdr_alpha=fdr_alpha, years=years, min_years=min_years
            ).set_index(SERIES_KEYS)
            _put(cols, index, tr.index, {
                "trend_per_year": tr["rate_ratio_per_year"] - 1,
                "trend_lower": tr["rate_ratio_lower"] - 1,
                "trend_upper": tr["rate_ratio_upper"] - 1,
                "q_value": tr["q_value"],
                "trend_status": tr["trend_status"],
                "is_significant": tr["is_significant"],
            })  # fmt: skip
        shares = full.loc[full["kind"] == "share", SERIES_KEYS].drop_duplicates()
        if not shares.empty:
            _put(cols, index, pd.MultiIndex.from_frame(shares), {"trend_status": "not_a_count"})
    out = out.assign(**cols)
    return (
        out[PUBLISHED_COLUMNS]
        .sort_values(["level", "area_code", "indicator"])
        .reset_index(drop=True)
    )
