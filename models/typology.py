"""Area models: a typology of buurten, an anomaly score and Gi* hot spots per phenomenon.

Reads the area features (one row per buurt and year: ``buurt_code``, ``year``, ``x``, ``y`` and
numeric ``<phenomenon>_<indicator>`` / ``context_<indicator>`` columns, see DEVELOPERS.md) as a
pandas DataFrame and returns :class:`AreaModelResult`; writes nothing (``zicht.jobs.track`` logs
the result to MLflow). The rows of ``restricted/area_typology.parquet`` (contract section 3) are
``AreaModelResult.typology``.

Everything here runs on the driver with pandas and scikit-learn. That is safe because the data
is small by construction: one row per buurt and year, about 14k buurten nationally, a few years
and a few dozen features, so a few MB. The whole stage on 14k synthetic buurten x 40 features
takes about 9 s on one core (k-means, mixture, 5 bootstraps, isolation forest, Gi* with 199
permutations for 5 phenomena).

Steps (``fit_area_models``):

1. Feature columns: every numeric column except the keys and x, y (or ``settings.features``);
   a column whose name names ethnicity, nationality, country of birth or religion is refused.
2. Smoothing (:class:`AreaFeatureTransformer`, the first step of the pipeline, so new areas are
   scored the same way): a rate with a known numerator and denominator column is replaced by
   Marshall's (1991) global empirical-Bayes estimate, which shrinks the rate of a buurt with few
   inhabitants toward the national rate (one incident among 20 inhabitants is 50 per 1000, and
   would otherwise dominate both the typology and the hot spots); a buurt with no inhabitants
   gets the national rate. Then every column goes through a signed ``log1p``: counts and rates
   are heavily right-skewed and mostly zero, and k-means on raw values spends its clusters on a
   handful of extreme buurten. We standardise (mean 0, sd 1) rather than robust-scale after the
   log: for zero-inflated columns the interquartile range is 0, and a robust scaler would then
   leave the column unscaled.
3. Missing values (rates where the denominator is 0 and no smoothing applied, areas a source does
   not cover) are imputed with the column median; constant columns are dropped.
4. Typology: k-means (``settings.n_clusters``, reduced when there are fewer distinct areas,
   fixed ``n_init``, ``random_state=settings.seed``), clusters numbered by size (0 = largest).
   A Gaussian mixture with the same number of components is the second candidate, compared by
   silhouette on the same scaled space (BIC reported); stability is the mean adjusted Rand index
   between the full fit and fits on a few seeded bootstrap samples.
5. ``anomaly_score``: ``-IsolationForest.score_samples`` on the scaled space (higher is more
   unusual; Liu, Ting & Zhou 2008).
6. Hot spots: Getis-Ord Gi* (``zicht.models.hotspots``) of the smoothed
   ``<P>_incidents_per_1000`` per phenomenon and year, on binary weights to the ``settings.knn``
   nearest buurt centroids of that year, plus the number of buurten that stay hot after
   permutation p-values and Benjamini-Hochberg at ``settings.fdr_alpha``.
7. Profiles in plain words: per cluster, the features whose mean standardised value is furthest
   from 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from zicht.features.settings import SENSITIVE_FEATURE_WORDS, IndicatorSpec, ModelSettings
from zicht.models.hotspots import (
    benjamini_hochberg,
    getis_ord_gi_star,
    gi_star_permutation_p,
    knn_weights,
)

__all__ = [
    "AreaFeatureTransformer",
    "AreaModelResult",
    "fit_area_models",
    "rate_parts_by_convention",
    "rate_parts_from_catalogue",
]

KEY_COLUMNS = ("buurt_code", "year", "x", "y")
KMEANS_N_INIT = 10
BOOTSTRAPS = 5
BOOTSTRAP_N_INIT = 3  # a stability check, not the chosen model: fewer restarts suffice
SILHOUETTE_SAMPLE = 4000  # silhouette is O(n^2); a seeded sample of 4000 rows is plenty
PROFILE_TOP = 3
PROFILE_MIN_Z = 0.5  # a cluster mean within half a standard deviation of the mean is "typical"

# rate column -> (numerator column, denominator column, multiplier)
RateParts = Mapping[str, tuple[str, str, float]]


@dataclass(frozen=True)
class AreaModelResult:
    """What the area-model stage hands to the export and to MLflow.

    typology: one row per (buurt_code, year): ``cluster``, ``anomaly_score`` and one
        ``hotspot_z_<phenomenon>`` per phenomenon (contract section 3).
    profiles: one row per cluster: size, share and a description in plain words.
    metrics: silhouettes, BIC, stability, timings and hot-spot counts (all floats, for MLflow).
    model: the typology pipeline, feature columns (a DataFrame) -> cluster.
    feature_columns: the model's input columns, in order.
    input_example: a few input rows (float64), for the MLflow signature.
    locations: ``buurt_code``, ``year``, ``x``, ``y`` aligned row by row with ``typology`` (for
        maps; kept apart so the typology table stays as the contract declares it).
    """

    typology: pd.DataFrame
    profiles: pd.DataFrame
    metrics: dict[str, float]
    model: Pipeline
    feature_columns: list[str]
    input_example: pd.DataFrame
    locations: pd.DataFrame


# --------------------------------------------------------------------------- smoothing


def rate_parts_from_catalogue(
    indicators: Sequence[IndicatorSpec],
) -> dict[str, tuple[str, str, float]]:
    """Rate and share columns with their numerator and denominator columns, from the catalogue.

    Catalogue keys use dots (``drugs.incidents_per_1000``); feature columns use underscores.
    """
    out: dict[str, tuple[str, str, float]] = {}
    for spec in indicators:
        if spec.unit not in ("rate", "share") or not spec.numerator or not spec.denominator:
            continue
        per = 1000.0 if spec.unit == "rate" else 1.0
        out[_column(spec.key)] = (_column(spec.numerator), _column(spec.denominator), per)
    return out


def rate_parts_by_convention(columns: Sequence[str]) -> dict[str, tuple[str, str, float]]:
    """Numerator and denominator of rate columns from their names, when the catalogue is absent.

    ``<stem>_per_1000`` is ``<stem>`` per 1000 ``context_inhabitants`` (``_12plus`` for resident
    suspects when that column exists); ``<stem>_per_1000_addresses`` is per ``context_addresses``.
    """
    cols = set(columns)
    out: dict[str, tuple[str, str, float]] = {}
    for c in columns:
        m = re.fullmatch(r"(.+)_per_1000(_addresses)?", c)
        if not m:
            continue
        stem = m.group(1)
        if m.group(2):
            den = "context_addresses"
        elif stem.endswith("resident_suspects") and "context_inhabitants_12plus" in cols:
            den = "context_inhabitants_12plus"
        else:
            den = "context_inhabitants"
        out[c] = (stem, den, 1000.0)
    return out


def _column(key: str) -> str:
    return key.replace(".", "_")


def _signed_log1p(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(np.sign(a) * np.log1p(np.abs(a)), dtype=float)


class AreaFeatureTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Empirical-Bayes smoothing of rates, then a signed log1p of every column.

    ``parts`` lists ``(rate_column, numerator_column, denominator_column, multiplier)``; a rate
    is smoothed only when all three columns are among the input columns. ``fit`` learns the
    prior (global rate ``b`` and between-area variance ``a``, Marshall 1991) from the training
    areas, so a new area is shrunk toward the same prior. Input is a DataFrame (column names
    matter); output is a float array in the order of ``feature_names_in_``.
    """

    def __init__(self, parts: tuple[tuple[str, str, str, float], ...] = (), log: bool = True):
        self.parts = parts
        self.log = log

    def fit(self, X: pd.DataFrame, y: Any = None) -> AreaFeatureTransformer:  # noqa: N803
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AreaFeatureTransformer needs a DataFrame with named columns")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        self.priors_: dict[str, tuple[float, float]] = {}
        for rate, num, den, _per in self.parts:
            if {rate, num, den} <= set(X.columns):
                self.priors_[rate] = _marshall_prior(
                    X[num].to_numpy(dtype=float), X[den].to_numpy(dtype=float)
                )
        return self

    def transform(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AreaFeatureTransformer needs a DataFrame with named columns")
        cols = [str(c) for c in self.feature_names_in_]
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"missing feature columns: {missing}")
        frame = X[cols].astype(float)
        per_of = {rate: per for rate, _n, _d, per in self.parts}
        num_of = {rate: (num, den) for rate, num, den, _p in self.parts}
        for rate, (b, a) in self.priors_.items():
            num, den = num_of[rate]
            frame[rate] = per_of[rate] * _marshall_smooth(
                frame[num].to_numpy(), frame[den].to_numpy(), b, a
            )
        out = frame.to_numpy(dtype=float)
        return _signed_log1p(out) if self.log else out

    def smoothed(self, X: pd.DataFrame, column: str) -> npt.NDArray[np.float64]:  # noqa: N803
        """One column after smoothing, before the log (what Gi* is computed on)."""
        if column in self.priors_:
            num, den = {r: (n, d) for r, n, d, _p in self.parts}[column]
            per = {r: p for r, _n, _d, p in self.parts}[column]
            b, a = self.priors_[column]
            return per * _marshall_smooth(
                X[num].to_numpy(dtype=float), X[den].to_numpy(dtype=float), b, a
            )
        return X[column].to_numpy(dtype=float)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        return np.asarray(self.feature_names_in_, dtype=object)


def _marshall_prior(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Global mean rate b and between-area variance a (method of moments, Marshall 1991)."""
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    if not ok.any() or den[ok].sum() <= 0:
        return 0.0, 0.0
    n, y = den[ok], num[ok]
    b = float(y.sum() / n.sum())
    r = y / n
    s2 = float((n * (r - b) ** 2).sum() / n.sum())
    a = max(s2 - b / float(n.mean()), 0.0)
    return b, a


def _marshall_smooth(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], b: float, a: float
) -> npt.NDArray[np.float64]:
    """w r + (1 - w) b with w = a / (a + b / n); no denominator: the prior b."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
        w = a / (a + b / den) if a > 0 else np.zeros_like(den)
    w = np.where(np.isfinite(w), w, 0.0)
    out = np.where(den > 0, w * r + (1.0 - w) * b, b)
    out = np.where(np.isfinite(num) & np.isfinite(den), out, np.nan)
    # a buurt with no denominator but a known (zero) numerator still gets the prior
    out = np.where(np.isfinite(num) & (np.nan_to_num(den) <= 0), b, out)
    return np.asarray(out, dtype=float)


# --------------------------------------------------------------------------- the stage


def check_features(columns: Sequence[str]) -> None:
    """Refuse a feature that names ethnicity, nationality, country of birth or religion."""
    bad = [c for c in columns if any(w in c.lower() for w in SENSITIVE_FEATURE_WORDS)]
    if bad:
        raise ValueError(
            f"feature column(s) {bad} name ethnicity, nationality, country of birth or religion, "
            "which zicht refuses as model features"
        )


def fit_area_models(
    features: pd.DataFrame,
    *,
    phenomena: Sequence[str],
    settings: ModelSettings,
    rate_parts: RateParts | None = None,
) -> AreaModelResult:
    """Fit the typology, anomaly score and hot spots on one row per (buurt_code, year).

    ``rate_parts`` maps rate columns to (numerator, denominator, multiplier) columns (from
    :func:`rate_parts_from_catalogue`); by default they follow the column names.
    """
    # One native thread for scikit-learn's OpenMP/BLAS: the results then do not depend on the
    # machine's core count, and on a busy driver (Spark's JVM, other jobs) the OpenMP threads
    # of k-means and the mixture spin and stall: 14k x 40 took 35 s with two threads on a loaded
    # two-core machine, 9 s with one.
    with threadpool_limits(limits=1):
        return _fit_area_models(
            features, phenomena=phenomena, settings=settings, rate_parts=rate_parts
        )


def _fit_area_models(
    features: pd.DataFrame,
    *,
    phenomena: Sequence[str],
    settings: ModelSettings,
    rate_parts: RateParts | None,
) -> AreaModelResult:
    started = time.perf_counter()
    missing = [c for c in KEY_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"area features lack column(s) {missing}")
    if features.empty:
        raise ValueError("area features are empty: nothing to model")
    if features.duplicated(["buurt_code", "year"]).any():
        raise ValueError("area features must have one row per (buurt_code, year)")
    check_features([str(c) for c in features.columns if c not in KEY_COLUMNS])

    # sorted so that the result does not depend on the order rows arrived from Spark
    data = features.sort_values(["year", "buurt_code"], kind="stable").reset_index(drop=True)
    feature_columns = _select_features(data, settings)
    X = data[feature_columns].astype(float)  # noqa: N806
    parts = rate_parts if rate_parts is not None else rate_parts_by_convention(feature_columns)
    part_rows = tuple(
        (rate, num, den, float(per))
        for rate, (num, den, per) in sorted(parts.items())
        if {rate, num, den} <= set(feature_columns)
    )

    prep = Pipeline(
        [
            ("smooth", AreaFeatureTransformer(parts=part_rows)),
            ("impute", SimpleImputer(strategy="median")),
            ("drop_constant", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
        ]
    )
    try:
        Z = prep.fit_transform(X)  # noqa: N806
    except ValueError as exc:  # VarianceThreshold: no column varies (or a single area)
        raise ValueError(
            f"no feature varies between the {len(X)} area-year(s) after smoothing: nothing to "
            "build a typology on (the job should skip the area models and say so)"
        ) from exc
    Z = np.asarray(Z, dtype=float)  # noqa: N806
    n = len(Z)
    n_distinct = len(np.unique(np.round(Z, 12), axis=0))
    k = max(1, min(settings.n_clusters, n_distinct))

    t0 = time.perf_counter()
    kmeans = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=settings.seed)
    kmeans.fit(Z)
    _order_clusters_by_size(kmeans)
    labels = kmeans.predict(Z)
    model = Pipeline([*prep.steps, ("cluster", kmeans)])
    fit_kmeans_s = time.perf_counter() - t0

    metrics: dict[str, float] = {
        "n_area_years": float(n),
        "n_features": float(len(feature_columns)),
        "n_features_used": float(Z.shape[1]),
        "n_clusters": float(k),
        "kmeans_inertia": float(kmeans.inertia_),
        "fit_kmeans_seconds": fit_kmeans_s,
    }
    metrics.update(_compare_mixture(Z, labels, k, settings.seed))
    t0 = time.perf_counter()
    metrics["kmeans_bootstrap_ari"] = _bootstrap_stability(Z, labels, k, settings.seed)
    metrics["fit_bootstrap_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    forest = IsolationForest(
        n_estimators=200,
        contamination=settings.anomaly_contamination,
        random_state=settings.seed,
    ).fit(Z)
    anomaly = -forest.score_samples(Z)
    metrics["fit_anomaly_seconds"] = time.perf_counter() - t0

    typology = pd.DataFrame(
        {
            "buurt_code": data["buurt_code"].astype(str),
            "year": data["year"].astype("int64"),
            "cluster": labels.astype("int64"),
            "anomaly_score": anomaly.astype(float),
        }
    )
    smoother: AreaFeatureTransformer = prep.named_steps["smooth"]
    t0 = time.perf_counter()
    for p in phenomena:
        z, hot = _hotspots(data, X, smoother, p, settings)
        typology[f"hotspot_z_{p}"] = z
        metrics[f"hotspots_fdr_{p}"] = hot
    metrics["fit_hotspots_seconds"] = time.perf_counter() - t0

    kept = prep[:-1].get_feature_names_out() if Z.shape[1] else np.array([])
    profiles = _profiles(Z, labels, [str(c) for c in kept], k)
    metrics["fit_total_seconds"] = time.perf_counter() - started
    return AreaModelResult(
        typology=typology,
        profiles=profiles,
        metrics=metrics,
        model=model,
        feature_columns=feature_columns,
        input_example=X.head(5).reset_index(drop=True),
        locations=data[["buurt_code", "year", "x", "y"]].copy(),
    )


def _select_features(data: pd.DataFrame, settings: ModelSettings) -> list[str]:
    if settings.features:
        unknown = [c for c in settings.features if c not in data.columns]
        if unknown:
            raise ValueError(f"model.features names column(s) not in the area features: {unknown}")
        check_features(list(settings.features))
        candidates = list(settings.features)
    else:
        candidates = [str(c) for c in data.columns if c not in KEY_COLUMNS]
    numeric = [
        c
        for c in candidates
        if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
    ]
    if settings.features and len(numeric) < len(candidates):
        raise ValueError(
            f"model.features must be numeric: {sorted(set(candidates) - set(numeric))}"
        )
    # a column with no value at all carries nothing (a source absent for every area)
    usable = [c for c in numeric if data[c].notna().any()]
    if not usable:
        raise ValueError("area features have no numeric feature column with values")
    return usable


def _order_clusters_by_size(kmeans: KMeans) -> None:
    """Renumber clusters so that 0 is the largest (ties: lower old number first).

    k-means numbers clusters by the order its random start found them; numbering by size makes
    labels easier to read and to compare across runs. Permuting ``cluster_centers_`` is all
    ``predict`` depends on.
    """
    counts = np.bincount(kmeans.labels_, minlength=kmeans.n_clusters)
    order = np.lexsort((np.arange(len(counts)), -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    kmeans.cluster_centers_ = kmeans.cluster_centers_[order]
    kmeans.labels_ = rank[kmeans.labels_].astype(kmeans.labels_.dtype)


def _silhouette(Z: npt.NDArray[np.float64], labels: npt.ArrayLike, seed: int) -> float:  # noqa: N803
    lab = np.asarray(labels)
    n_labels = len(np.unique(lab))
    if n_labels < 2 or n_labels >= len(lab):
        return float("nan")
    size = min(len(lab), SILHOUETTE_SAMPLE)
    return float(
        silhouette_score(Z, lab, sample_size=size if size < len(lab) else None, random_state=seed)
    )


def _compare_mixture(
    Z: npt.NDArray[np.float64],
    labels: npt.NDArray[Any],
    k: int,
    seed: int,  # noqa: N803
) -> dict[str, float]:
    out = {"kmeans_silhouette": _silhouette(Z, labels, seed)}
    t0 = time.perf_counter()
    # diagonal covariances: 40 features x 6 components stay well-conditioned on small
    # gemeenten, and a full covariance adds little for clusters meant to be read as profiles
    gmm = GaussianMixture(
        n_components=k, covariance_type="diag", n_init=2, reg_covar=1e-4, random_state=seed
    )
    try:
        gmm_labels = gmm.fit(Z).predict(Z)
    except ValueError:  # too few rows for the components
        return {**out, "gmm_silhouette": float("nan"), "gmm_bic": float("nan")}
    out["fit_gmm_seconds"] = time.perf_counter() - t0
    out["gmm_silhouette"] = _silhouette(Z, gmm_labels, seed)
    out["gmm_bic"] = float(gmm.bic(Z))
    out["kmeans_gmm_ari"] = float(adjusted_rand_score(labels, gmm_labels))
    return out


def _bootstrap_stability(
    Z: npt.NDArray[np.float64],
    labels: npt.NDArray[Any],
    k: int,
    seed: int,  # noqa: N803
) -> float:
    """Mean ARI between the full fit and k-means fits on seeded bootstrap samples."""
    n = len(Z)
    if k < 2 or n < 3:
        return float("nan")
    rng = np.random.default_rng(seed)
    scores = []
    for b in range(BOOTSTRAPS):
        idx = rng.integers(0, n, size=n)
        sample = Z[idx]
        kb = min(k, len(np.unique(np.round(sample, 12), axis=0)))
        if kb < 2:
            continue
        km = KMeans(n_clusters=kb, n_init=BOOTSTRAP_N_INIT, random_state=seed + b + 1).fit(sample)
        scores.append(adjusted_rand_score(labels, km.predict(Z)))
    return float(np.mean(scores)) if scores else float("nan")


def _hotspots(
    data: pd.DataFrame,
    X: pd.DataFrame,  # noqa: N803
    smoother: AreaFeatureTransformer,
    phenomenon: str,
    settings: ModelSettings,
) -> tuple[npt.NDArray[np.float64], float]:
    """Gi* z per row (each year on its own), and the number of FDR-significant hot spots."""
    column = f"{phenomenon}_incidents_per_1000"
    z = np.full(len(data), np.nan)
    if column not in X.columns:
        return z, float("nan")
    values = smoother.smoothed(X, column)
    hot = 0
    for position, idx in enumerate(data.groupby("year", sort=True).indices.values()):
        v = values[idx]
        if np.isfinite(v).any():
            v = np.where(np.isfinite(v), v, np.nanmedian(v))
        else:
            continue
        # at most n - 2 neighbours: a neighbourhood covering every buurt has no defined Gi*
        k = max(0, min(settings.knn, len(idx) - 2))
        w = knn_weights(data["x"].to_numpy()[idx], data["y"].to_numpy()[idx], k)
        zy = getis_ord_gi_star(v, w)
        z[idx] = zy
        if settings.permutations > 0 and len(idx) > 2:
            p = gi_star_permutation_p(
                v, w, permutations=settings.permutations, seed=settings.seed + position
            )
            reject, _ = benjamini_hochberg(p, settings.fdr_alpha)
            hot += int((reject & (zy > 0)).sum())
    return z, float(hot)


def _describe(column: str) -> str:
    return column.removeprefix("context_").replace("_", " ").strip()


def _profiles(
    Z: npt.NDArray[np.float64],  # noqa: N803
    labels: npt.NDArray[Any],
    columns: list[str],
    k: int,
) -> pd.DataFrame:
    """Per cluster: size, share, and the features whose mean z-score stands out most."""
    rows = []
    n = len(labels)
    for c in range(k):
        members = labels == c
        means = Z[members].mean(axis=0) if members.any() and Z.shape[1] else np.zeros(0)
        order = np.argsort(-np.abs(means), kind="stable")
        top = [j for j in order[:PROFILE_TOP] if abs(means[j]) >= PROFILE_MIN_Z]
        phrases = [f"{'high' if means[j] > 0 else 'low'} {_describe(columns[j])}" for j in top]
        rows.append(
            {
                "cluster": c,
                "n_area_years": int(members.sum()),
                "share": float(members.sum() / n) if n else float("nan"),
                "description": f"type {c}: "
                + (", ".join(phrases) if phrases else "close to average on every feature"),
                "top_features": "; ".join(f"{columns[j]}:{means[j]:+.2f}" for j in top),
            }
        )
    return pd.DataFrame(
        rows, columns=["cluster", "n_area_years", "share", "description", "top_features"]
    )
