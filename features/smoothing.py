"""Marshall's (1991) global empirical-Bayes rate: the one estimator zicht smooths rates with.

Reads and writes nothing. The published ``*_smoothed`` indicators (Spark, per level and year:
:func:`with_smoothed`) and the area models' smoothing step (pandas on the driver:
``zicht.models.typology.AreaFeatureTransformer``) both use the functions here, so the two cannot
drift apart. The formulas are written once, over plain arithmetic, and run on numpy arrays and
on Spark columns alike (:func:`prior_from_moments`, :func:`shrink`).

For areas ``i`` with a denominator ``n_i > 0`` (inhabitants) and a count ``y_i``, rate
``r_i = y_i / n_i`` (Marshall 1991, "Mapping disease and mortality rates using empirical Bayes
estimators", Applied Statistics 40: 283-294, global method of moments)::

    b  = sum(y) / sum(n)                      the prior mean (the overall rate)
    s2 = sum(n (r - b)^2) / sum(n)            the weighted variance of the rates
    a  = max(s2 - b / mean(n), b / median(n), 0)    the prior variance, floored
    w_i = a / (a + b / n_i)                   (0 when a + b / n_i is 0)
    estimate_i = w_i r_i + (1 - w_i) b

The floor ``b / median(n)`` is zicht's, not Marshall's: an area of median size keeps at least
half of its own rate. Without it a rate whose excess variance sits in a handful of areas (the few
buurten with doorsluiswoningen, an address of letterbox firms) has a moment estimate of 0, every
area gets the overall rate, and the pattern vanishes from the typology, the anomaly score and the
smoothed indicator. An area without a denominator (``n_i <= 0`` or missing) has no estimate here:
the indicator is ``not_applicable`` there, and the area models impute it (with the prior mean).

``s2`` is computed from the moments ``sum(n)``, ``sum(y)`` and ``sum(y^2 / n)`` as
``sum(y^2 / n) / sum(n) - b^2`` (the same quantity), so that Spark needs one aggregation per
level and year.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

T = TypeVar("T", float, Column)


def _greatest(*xs: Any) -> Any:
    """max of floats, or Spark's greatest when any argument is a column."""
    if any(isinstance(x, Column) for x in xs):
        return F.greatest(*[x if isinstance(x, Column) else F.lit(x) for x in xs])
    return max(xs)


def prior_from_moments(
    sum_n: Any, sum_y: Any, sum_y2_over_n: Any, n_areas: Any, median_n: Any
) -> tuple[Any, Any]:
    """Prior mean ``b`` and floored prior variance ``a`` from the areas' moments.

    Arguments are floats, or Spark columns (then so is the result). The caller guarantees
    ``sum_n > 0`` and ``median_n > 0``: at least one area with a denominator.
    """
    b = sum_y / sum_n
    s2 = sum_y2_over_n / sum_n - b * b
    mean_n = sum_n / n_areas
    a = _greatest(s2 - b / mean_n, b / median_n, 0.0)
    return b, a


def shrink(num: Any, den: Any, b: Any, a: Any) -> Any:
    """``w r + (1 - w) b`` with ``w = a / (a + b / n)``, for ``den > 0`` (numpy or columns).

    Where ``den <= 0`` the numpy version gives NaN and the column version null.
    """
    if isinstance(num, Column) or isinstance(den, Column):
        n = F.when(den > 0, den)
        denom = a + b / n
        w = F.when(denom > 0, a / denom).otherwise(F.lit(0.0))
        return F.when(n.isNotNull(), w * (num / n) + (1 - w) * b)
    num_a = np.asarray(num, dtype=float)
    den_a = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_a = np.where(den_a > 0, den_a, np.nan)
        denom_a = a + b / n_a
        w_a = np.where(denom_a > 0, a / denom_a, 0.0)
        out = w_a * (num_a / n_a) + (1.0 - w_a) * b
    return np.where(den_a > 0, out, np.nan)


def marshall_prior(num: npt.ArrayLike, den: npt.ArrayLike) -> tuple[float, float]:
    """``(b, a)`` over the areas with a denominator (numpy); ``(0, 0)`` when there is none."""
    y = np.asarray(num, dtype=float)
    n = np.asarray(den, dtype=float)
    ok = np.isfinite(y) & np.isfinite(n) & (n > 0)
    if not ok.any():
        return 0.0, 0.0
    y, n = y[ok], n[ok]
    b, a = prior_from_moments(
        float(n.sum()), float(y.sum()), float((y * y / n).sum()), int(ok.sum()),
        float(np.median(n)),
    )  # fmt: skip
    return float(b), float(a)


def marshall_smooth(
    num: npt.ArrayLike, den: npt.ArrayLike, b: float, a: float
) -> npt.NDArray[np.float64]:
    """The estimates for areas with a denominator; NaN elsewhere (numpy)."""
    return np.asarray(shrink(num, den, b, a), dtype=float)


def with_smoothed(
    wide: DataFrame,
    outputs: dict[str, tuple[str, str, float]],
    *,
    by: tuple[str, ...] = ("level", "year"),
) -> DataFrame:
    """Add one smoothed rate column per ``outputs`` entry: name -> (numerator, denominator,
    scale), with the prior fitted over the rows of each ``by`` group (one aggregation for
    all of them, joined back: the groups are few)."""
    if not outputs:
        return wide
    aggs: list[Column] = []
    pairs = sorted({(num, den) for num, den, _ in outputs.values()})
    for i, (num, den) in enumerate(pairs):
        n = F.when(F.col(den) > 0, F.col(den).cast("double"))
        y = F.when(n.isNotNull(), F.col(num).cast("double"))
        aggs += [
            F.sum(n).alias(f"_sn{i}"),
            F.sum(y).alias(f"_sy{i}"),
            F.sum(y * y / n).alias(f"_sq{i}"),
            F.count(n).alias(f"_k{i}"),
            F.median(n).alias(f"_md{i}"),
        ]
    moments = wide.groupBy(*by).agg(*aggs)
    priors: list[Column] = []
    for i, _pair in enumerate(pairs):
        b, a = prior_from_moments(
            F.col(f"_sn{i}"), F.col(f"_sy{i}"), F.col(f"_sq{i}"), F.col(f"_k{i}"),
            F.col(f"_md{i}"),
        )  # fmt: skip
        priors += [b.alias(f"_b{i}"), a.alias(f"_a{i}")]
    prior = moments.select(*by, *priors)
    out = wide.join(F.broadcast(prior), list(by), "left")
    index = {pair: i for i, pair in enumerate(pairs)}
    cols = []
    for name, (num, den, scale) in outputs.items():
        i = index[(num, den)]
        est = shrink(
            F.col(num).cast("double"), F.col(den).cast("double"), F.col(f"_b{i}"),
            F.col(f"_a{i}"),
        )  # fmt: skip
        cols.append((est * F.lit(scale)).alias(name))
    keep = [c for c in wide.columns if c not in outputs]
    return out.select(*keep, *cols)
