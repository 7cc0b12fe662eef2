"""Anomaly score of areas: what is unusual for a buurt, and which features make it so.

Reads numpy arrays the area-model stage prepared (``zicht.models.typology``: one row per buurt
and year) and writes nothing; :func:`score_anomalies` returns :class:`AnomalyResult`, whose
``drivers`` are the rows of ``restricted/area_anomaly_drivers.parquet`` (area-level and
person-free, restricted because it is unpublished analysis). numpy and scikit-learn on the
driver: areas are few by construction (about 14k buurten nationally, a few years).

Two parts, each good at what the other misses, then one score:

1. **Isolation forest** (Liu, Ting & Zhou 2008) on the profile columns of the typology's scaled
   space (rates, shares, distances, each quantity once; ``profile_columns_from_catalogue``):
   an area unusual in its *combination* of features. ``forest_score`` is
   ``-IsolationForest.score_samples`` (higher is more unusual). A forest seldom splits on one
   feature among ~50, so one extreme register value (an address with 26 companies) is easily
   outvoted: on ``small`` (seed 42) the planted company-cluster buurten ranked 5th and 10th
   of 77 on the forest alone, at ``medium`` the best of them 25th.
2. **Robust per-feature scores on register features**: per feature, on the smoothed value
   (Marshall's empirical-Bayes rate of :mod:`zicht.features.smoothing` for a rate or share
   with a numerator and denominator, the raw value otherwise; not the log), the robust z
   ``(x - median) / s`` over all area-years, with ``s = max(1.4826 MAD, MAD_FLOOR_SHARE x
   1.2533 MeanAD)``. 1.4826 MAD and 1.2533 MeanAD (mean absolute deviation from the median)
   both estimate the standard deviation of a normal sample (Iglewicz & Hoaglin 1993; the
   MeanAD fallback for a zero MAD is IBM SPSS's modified z). The floor keeps a near-constant,
   zero-inflated feature (most buurten 0, a few not) from exploding to z in the thousands;
   at a quarter of the MeanAD it still leaves such a feature's rare values large. (When the
   method was chosen, on the synthetic ``medium`` data: with the floor at a full MeanAD the
   register part alone put the planted overcrowding at median rank 414 of 1421 buurten, at a
   quarter 307, smaller shares about the same.) A feature with ``s = 0`` (constant) and a
   missing value (no denominator) give z = 0. ``robust_score`` is the largest positive z of an
   area over the register features (one extreme value is enough; low values are not
   ondermijning signals).
3. ``anomaly_score`` is the mean of the two parts' percentile ranks (average ranks for ties,
   divided by the number of area-years: in (0, 1], higher is more unusual); with no register
   feature among the features it is the forest's percentile rank. Rank averaging puts the two
   parts on one scale without assuming anything about their distributions.

**Which features are "register"** (:func:`feature_groups_from_catalogue`): indicators of a
phenomenon whose sources are registers (companies, roles, addresses, property transactions,
incomes, ownership, FIU reports, the population register), not police incidents, suspects,
signals or the network. The decoys decide this:

- *a big but ordinary buurt*: its counts are the highest, its rates ordinary. Both parts see
  rates, shares and distances only (no counts), so size alone does not make it unusual.
- *a nightlife district whose incidents are high for a known reason* (the drug hot spots): the
  known reason is the hot spot, which Gi* and local Moran already report. Incident, suspect and
  signal rates are left out of the robust part: their max over ~40 noisy rates of rare
  phenomena is dominated by small numbers (one mensenhandel suspect with a record in a small
  buurt) and by the hot spots themselves, and crowds out the register patterns (scored with
  them, even with the hot spots' own incident rates left out, the overcrowding's median rank
  at ``medium`` fell from 307 to 706 of 1421, the company clusters' from 35 to 118). They
  still reach the anomaly score through the forest. Context indicators (density, WOZ,
  mobility, the share of business addresses) say what kind of area it is, which is the
  typology's subject, and are also left to the forest: an industrial estate is not suspect
  for having few inhabitants.

**Drivers** (``drivers``): per area-year, the top ``DRIVERS`` register features by robust z,
those with z of at least ``ROBUST_DRIVER_MIN_Z`` (part ``robust``; an area with none has no
robust rows: nothing in its registers stands out), and the top ``DRIVERS`` forest features by
absolute standardised value (part ``forest``: where the area is furthest from the mean in the
space the forest isolates it in; a forest has no exact per-area attribution, this is the usual
reading). Each
row carries the part's score and rank for the area, so "why is this buurt on the list" reads
from one table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats
from sklearn.ensemble import IsolationForest

from zicht.features.settings import IndicatorSpec

__all__ = [
    "DRIVER_COLUMNS",
    "FEATURE_GROUPS",
    "AnomalyResult",
    "feature_groups_from_catalogue",
    "percentile_rank",
    "robust_z",
    "score_anomalies",
]

FloatArray = npt.NDArray[np.float64]

FEATURE_GROUPS = ("register", "police", "signals", "network", "context")
ROBUST_GROUPS = ("register",)  # the groups the robust part scores (see the module docstring)
# sources that make an indicator a police, signal or network one rather than a register one
_POLICE_SOURCES = frozenset({"incidents", "suspects", "person_links"})
MAD_SCALE = 1.4826  # 1 / Phi^-1(3/4): MAD -> standard deviation of a normal sample
MEANAD_SCALE = 1.2533  # sqrt(pi / 2): mean absolute deviation -> standard deviation
MAD_FLOOR_SHARE = 0.25
DRIVERS = 3
ROBUST_DRIVER_MIN_Z = 1.0  # a register driver lies at least one robust sd above the median
N_ESTIMATORS = 200
IMPORTANCE_SAMPLE = 1000

DRIVER_COLUMNS = (
    "buurt_code",
    "year",
    "part",
    "part_score",
    "part_rank",
    "driver_rank",
    "feature",
    "feature_group",
    "feature_z",
    "feature_value",
    "feature_median",
)


def _column(key: str) -> str:
    return key.replace(".", "_")


def feature_groups_from_catalogue(indicators: Sequence[IndicatorSpec]) -> dict[str, str]:
    """Feature column -> ``register``, ``police``, ``signals``, ``network`` or ``context``.

    ``context``: indicators of no phenomenon (``context.*``); ``network``: ``network.*`` or a
    source ``network``; ``police``: incidents, suspects or person links among the sources;
    ``signals``: signals among them; ``register``: the rest of a phenomenon's indicators
    (companies, addresses, transactions, incomes, ownership, FIU reports, persons).
    """
    out: dict[str, str] = {}
    for spec in indicators:
        sources = {s.split("|")[0].split(".")[0] for s in spec.sources}
        if spec.key.startswith("network.") or "network" in sources:
            group = "network"
        elif not spec.phenomenon:
            group = "context"
        elif sources & _POLICE_SOURCES:
            group = "police"
        elif "signals" in sources:
            group = "signals"
        else:
            group = "register"
        out[_column(spec.key)] = group
    return out


def robust_z(
    values: FloatArray, *, floor_share: float = MAD_FLOOR_SHARE
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Column-wise robust z of a 2-D array: ``(x - median) / s``; returns (z, median, s).

    ``s = max(1.4826 MAD, floor_share * 1.2533 MeanAD)``, medians and deviations over the
    non-missing values of each column. z is 0 where the value is missing or ``s`` is 0.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ValueError("robust_z needs a 2-D array (rows = areas, columns = features)")
    finite = np.isfinite(x)
    masked = np.where(finite, x, np.nan)
    has = finite.any(axis=0)
    med = np.zeros(x.shape[1])
    mad = np.zeros(x.shape[1])
    mean_ad = np.zeros(x.shape[1])
    if has.any():
        med[has] = np.nanmedian(masked[:, has], axis=0)
        dev = np.abs(masked[:, has] - med[has])
        mad[has] = np.nanmedian(dev, axis=0)
        mean_ad[has] = np.nanmean(dev, axis=0)
    scale = np.maximum(MAD_SCALE * mad, floor_share * MEANAD_SCALE * mean_ad)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (masked - med) / scale
    z = np.where(finite & (scale > 0), z, 0.0)
    return z, med, scale


def percentile_rank(score: FloatArray) -> FloatArray:
    """Average rank divided by the number of rows: in (0, 1], higher for a higher score."""
    s = np.asarray(score, dtype=float)
    if len(s) == 0:
        return s.copy()
    return np.asarray(scipy.stats.rankdata(s, method="average") / len(s), dtype=float)


def _rank_desc(score: FloatArray) -> npt.NDArray[np.int64]:
    """1 = the highest score; ties share the best (lowest) rank."""
    return np.asarray(scipy.stats.rankdata(-np.asarray(score), method="min"), dtype=np.int64)


@dataclass(frozen=True)
class AnomalyResult:
    """score: the combined anomaly score per row; forest_score, robust_score: its parts;
    drivers: the long driver table (``DRIVER_COLUMNS``); importance: ``feature``,
    ``importance`` of the forest (permutation importance on the flagged areas);
    metrics: floats for MLflow; forest: the fitted isolation forest."""

    score: FloatArray
    forest_score: FloatArray
    robust_score: FloatArray
    drivers: pd.DataFrame
    importance: pd.DataFrame
    metrics: dict[str, float]
    forest: IsolationForest | None = field(default=None)


def score_anomalies(
    forest_space: FloatArray,
    forest_columns: Sequence[str],
    smoothed: FloatArray,
    smoothed_columns: Sequence[str],
    *,
    groups: Mapping[str, str],
    buurt_code: npt.ArrayLike,
    year: npt.ArrayLike,
    contamination: float,
    seed: int,
) -> AnomalyResult:
    """Fit the forest, compute the robust register scores, combine them, name the drivers.

    ``forest_space``: the scaled profile columns the forest sees (rows = area-years, columns =
    ``forest_columns``). ``smoothed``: every feature after smoothing, before the log (columns
    = ``smoothed_columns``); the robust part takes the forest's columns whose group
    (``groups``, from :func:`feature_groups_from_catalogue`) is in ``ROBUST_GROUPS``, read
    from ``smoothed``. ``buurt_code`` and
    ``year`` label the rows of the driver table.
    """
    Zf = np.asarray(forest_space, dtype=float)  # noqa: N806
    n = len(Zf)
    codes = np.asarray(buurt_code).astype(str)
    years = np.asarray(year).astype(np.int64)
    forest = IsolationForest(
        n_estimators=N_ESTIMATORS, contamination=contamination, random_state=seed
    ).fit(Zf)
    forest_score = np.asarray(-forest.score_samples(Zf), dtype=float)
    metrics: dict[str, float] = {
        "anomaly_share": float((forest.predict(Zf) < 0).mean()),
        "n_anomaly_features": float(len(forest_columns)),
    }
    importance = _forest_importance(forest, Zf, list(forest_columns), seed)

    # the register columns among the forest's: rates, shares and distances, never counts
    col_index = {str(c): j for j, c in enumerate(smoothed_columns)}
    robust_columns = [
        str(c) for c in forest_columns if groups.get(str(c)) in ROBUST_GROUPS and c in col_index
    ]
    on = [col_index[c] for c in robust_columns]
    metrics["n_robust_features"] = float(len(on))
    if on:
        z, med, _scale = robust_z(np.asarray(smoothed, dtype=float)[:, on])
        positive = np.clip(z, 0.0, None)
        robust_score = positive.max(axis=1)
        score = (percentile_rank(forest_score) + percentile_rank(robust_score)) / 2.0
    else:
        z = np.zeros((n, 0))
        med = np.zeros(0)
        positive = z
        robust_score = np.zeros(n)
        score = percentile_rank(forest_score)
    metrics["robust_score_max"] = float(robust_score.max()) if n else float("nan")

    raw = np.asarray(smoothed, dtype=float)
    frames = [
        _drivers(
            "robust",
            robust_score,
            positive,
            robust_columns,
            raw[:, on] if on else np.zeros((n, 0)),
            med,
            groups,
            codes,
            years,
            keep_positive=True,
        )
    ]
    forest_raw = (
        np.column_stack(
            [
                raw[:, col_index[c]] if c in col_index else np.full(n, np.nan)
                for c in map(str, forest_columns)
            ]
        )
        if len(forest_columns)
        else np.zeros((n, 0))
    )
    forest_med = (
        np.nanmedian(np.where(np.isfinite(forest_raw), forest_raw, np.nan), axis=0)
        if forest_raw.shape[1] and np.isfinite(forest_raw).any()
        else np.full(forest_raw.shape[1], np.nan)
    )
    frames.append(
        _drivers(
            "forest",
            forest_score,
            np.abs(Zf),
            [str(c) for c in forest_columns],
            forest_raw,
            forest_med,
            groups,
            codes,
            years,
            keep_positive=False,
            signed=Zf,
        )
    )
    drivers = pd.concat(frames, ignore_index=True)
    drivers = drivers.sort_values(
        ["year", "buurt_code", "part", "driver_rank"], kind="stable"
    ).reset_index(drop=True)
    return AnomalyResult(
        score=np.asarray(score, dtype=float),
        forest_score=forest_score,
        robust_score=np.asarray(robust_score, dtype=float),
        drivers=drivers,
        importance=importance,
        metrics=metrics,
        forest=forest,
    )


def _drivers(
    part: str,
    part_score: FloatArray,
    strength: FloatArray,
    columns: list[str],
    values: FloatArray,
    medians: FloatArray,
    groups: Mapping[str, str],
    codes: npt.NDArray[np.str_],
    years: npt.NDArray[np.int64],
    *,
    keep_positive: bool,
    signed: FloatArray | None = None,
) -> pd.DataFrame:
    """The top ``DRIVERS`` columns per row by ``strength`` (ties: the earlier column), long."""
    n, d = strength.shape
    k = min(DRIVERS, d)
    if k == 0 or n == 0:
        return pd.DataFrame({c: [] for c in DRIVER_COLUMNS}).astype(
            {
                "buurt_code": str,
                "year": "int64",
                "part": str,
                "part_score": float,
                "part_rank": "int64",
                "driver_rank": "int32",
                "feature": str,
                "feature_group": str,
                "feature_z": float,
                "feature_value": float,
                "feature_median": float,
            }
        )
    order = np.argsort(-strength, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = order.ravel()
    rank_in = np.tile(np.arange(1, k + 1), n)
    z = (signed if signed is not None else strength)[rows, cols]
    keep = (
        strength[rows, cols] >= ROBUST_DRIVER_MIN_Z
        if keep_positive
        else np.ones(len(rows), dtype=bool)
    )
    rows, cols, rank_in, z = rows[keep], cols[keep], rank_in[keep], z[keep]
    names = np.asarray(columns, dtype=object)[cols]
    part_rank = _rank_desc(part_score)
    return pd.DataFrame(
        {
            "buurt_code": codes[rows],
            "year": years[rows],
            "part": part,
            "part_score": part_score[rows],
            "part_rank": part_rank[rows],
            "driver_rank": rank_in.astype(np.int32),
            "feature": names.astype(str),
            "feature_group": [groups.get(str(c), "context") for c in names],
            "feature_z": z.astype(float),
            "feature_value": values[rows, cols].astype(float),
            "feature_median": medians[cols].astype(float),
        }
    )


def _forest_importance(
    forest: IsolationForest,
    Z: FloatArray,  # noqa: N803
    columns: list[str],
    seed: int,
) -> pd.DataFrame:
    """Permutation importance of the forest's score, on the areas it flags as anomalous.

    An isolation forest has no target, so the usual permutation importance (loss of a score
    against labels) does not apply. What an analyst asks is *why are these areas unusual*: for
    each feature, the flagged areas' values are replaced by values drawn at random from all
    areas (seeded), and the importance is the mean drop of their score. A feature the
    unusual areas are unusual on makes them ordinary when shuffled away. At most
    ``IMPORTANCE_SAMPLE`` flagged areas are used.
    """
    rng = np.random.default_rng(seed)
    flagged = np.flatnonzero(forest.predict(Z) < 0)
    if len(flagged) == 0:
        flagged = np.arange(len(Z))
    if len(flagged) > IMPORTANCE_SAMPLE:
        flagged = np.sort(rng.choice(flagged, size=IMPORTANCE_SAMPLE, replace=False))
    sample = Z[flagged]
    m, d = sample.shape
    base = -forest.score_samples(sample)
    values: list[float] = []
    # one score_samples call per chunk of features (each call costs a pass over 200 trees, so
    # a call per feature took 25 s for 120 features): at most ~100k stacked rows per call
    per_call = max(1, 100_000 // max(m, 1))
    for start in range(0, d, per_call):
        cols = range(start, min(d, start + per_call))
        stacked = np.repeat(sample[None, :, :], len(cols), axis=0)
        for slot, j in enumerate(cols):
            stacked[slot, :, j] = Z[rng.integers(0, len(Z), size=m), j]
        scores = -forest.score_samples(stacked.reshape(-1, d)).reshape(len(cols), m)
        values += [float(v) for v in (base[None, :] - scores).mean(axis=1)]
    out = pd.DataFrame({"feature": columns, "importance": values})
    return out.sort_values(["importance", "feature"], ascending=[False, True]).reset_index(
        drop=True
    )
