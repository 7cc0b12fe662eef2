"""Area models: a typology of buurten, an anomaly score and hot spots per phenomenon.

Reads the area features (one row per buurt and year: ``buurt_code``, ``year``, ``x``, ``y`` and
numeric ``<phenomenon>_<indicator>`` / ``context_<indicator>`` columns, see DEVELOPERS.md) as a
pandas DataFrame, and optionally the buurt polygons (``buurt_code -> geometry_wkt``); returns
:class:`AreaModelResult`; writes nothing (``zicht.jobs.track`` logs the result to MLflow). The
rows of ``restricted/area_typology.parquet`` (contract section 3) are
``AreaModelResult.typology``.

Scale: everything here runs on the driver with pandas and scikit-learn, on purpose. Areas are
few by construction (one row per buurt and year, about 14k buurten nationally, a few years and a
few dozen features: a few MB), so a distributed fit would only add overhead. Measured with one
native thread on a loaded two-core machine, 14k synthetic buurten x 40 features, one year: about
20 s for the whole stage (three candidates with five half-sample refits each ~14 s, of which
HDBSCAN ~6 s; isolation forest and its importance ~4 s; Gi* and local Moran with 199
permutations for 3 phenomena ~2 s). Years multiply the row count; HDBSCAN's spanning tree is
O(n^2) in rows, the rest about linear.

Steps (``fit_area_models``):

1. Feature columns: every numeric column except the keys and x, y (or ``settings.features``);
   a column whose name names ethnicity, nationality, country of birth or religion is refused.
2. Smoothing (:class:`AreaFeatureTransformer`, the first step of the pipeline, so new areas are
   scored the same way): a rate with a known numerator and denominator column is replaced by
   Marshall's (1991) global empirical-Bayes estimate, which shrinks the rate of a buurt with few
   inhabitants toward the national rate (one incident among 20 inhabitants is 50 per 1000, and
   would otherwise dominate both the typology and the hot spots); a buurt with no inhabitants
   gets the national rate. The between-area variance of the prior is floored at
   ``b / median(n)`` (an area of median size keeps half its own rate), so a rate whose excess
   variance sits in a few areas is not flattened to one value everywhere. Then every column goes through a signed ``log1p``: counts and rates
   are heavily right-skewed and mostly zero, and k-means on raw values spends its clusters on a
   handful of extreme buurten. We standardise (mean 0, sd 1) rather than robust-scale after the
   log: for zero-inflated columns the interquartile range is 0, and a robust scaler would then
   leave the column unscaled.
3. Missing values (rates where the denominator is 0 and no smoothing applied, areas a source does
   not cover) are imputed with the column median; constant columns are dropped.
4. Typology candidates (:class:`TypologyClusterer`), all on the same scaled space Z:
   k-means (``settings.n_clusters``), a Gaussian mixture with diagonal covariances and the same
   number of components (BIC reported, for the mixture only), and HDBSCAN (``min_cluster_size``
   1 % of the area-years, at least 10; it finds its own number of types and leaves areas that
   fit none as noise, ``cluster = -1``). HDBSCAN clusters the first few principal components of
   Z: density estimates degrade in 40 dimensions (distances concentrate) and so does its tree
   search (26 s at 14k x 40, 2 s on 5 components).
   **One criterion decides**: the silhouette on Z (the same seeded sample of at most 4000 rows
   for every candidate; HDBSCAN's noise counts as a group of its own, since those areas are
   published with ``cluster = -1`` and the criterion should judge the labelling we publish).
   The candidate with the highest silhouette is chosen (ties: k-means, mixture, HDBSCAN, the
   order of simplicity); a candidate that finds fewer than two groups is not eligible.
   Silhouette favours compact, convex groups, so it leans toward k-means; a researcher who
   wants density-based types can compare them with ``zicht experiment``. Stability, reported
   for every candidate and not used to choose: the mean adjusted Rand index between the full
   fit and fits on five seeded half-samples of the rows drawn without replacement
   (subsampling rather than the classical bootstrap: duplicated rows would fake density for
   HDBSCAN; half rather than 80 %: HDBSCAN's spanning tree costs O(n^2)), each resample's
   model labelling all rows (HDBSCAN's minimum cluster size halved with the sample). Types are numbered by size (0 = largest).
5. ``anomaly_score`` (:mod:`zicht.models.anomaly`, which documents the method and the
   decoys it guards against): the mean of two percentile ranks, the isolation forest's
   (Liu, Ting & Zhou 2008) on the columns of Z that say what an area is like, each quantity
   once (:func:`profile_columns_from_catalogue`: rates, shares, distances; no counts, no
   smoothed, relative or composite copies), and a robust per-feature score on the smoothed
   register rates (the largest robust z, median/MAD, over the register features, so that one
   extreme register value counts). The forest alone ranked the planted company-cluster buurten
   5th and 10th of 77 at ``small``; one address with 26 companies is one extreme value among
   ~50 columns, which a forest seldom splits on. The features behind each area's score are
   ``AreaModelResult.anomaly_drivers``.
6. Hot spots (``zicht.models.hotspots``) of the smoothed ``<P>_incidents_per_1000`` per
   phenomenon and year, on polygon contiguity when ``geometry_wkt`` is given (islands take
   their ``settings.knn`` nearest centroids), else on the ``settings.knn`` nearest centroids:
   Getis-Ord Gi* z (``hotspot_z_<P>``) and local Moran's I (``moran_i_<P>``), with p-values
   from the normal distribution by default (Gi*: its z; Moran: its z against
   ``settings.permutations`` seeded conditional permutations, esda's ``z_sim``), or the folded
   permutation p-values with ``hotspot_inference: permutation`` (floored at 1/(P + 1)), and
   Benjamini-Hochberg q-values per year (``hotspot_q_<P>``, ``moran_q_<P>``); ``moran_type_<P>`` is the Moran quadrant (HH, LL, HL,
   LH) where ``moran_q_<P> <= settings.fdr_alpha``, else ``ns``.
7. Profiles in plain words: per type, the features whose mean standardised value is furthest
   from 0 ("type 2: high drugs incidents per 1000, low context inhabitants").
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import scipy.stats
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from zicht.features.settings import SENSITIVE_FEATURE_WORDS, IndicatorSpec, ModelSettings
from zicht.features.smoothing import marshall_prior, marshall_smooth
from zicht.models.anomaly import score_anomalies
from zicht.models.hotspots import (
    QUADRANT_LABELS,
    benjamini_hochberg,
    getis_ord_gi_star,
    gi_star_permutation_p,
    local_moran,
    spatial_weights,
)

__all__ = [
    "ALGORITHMS",
    "AreaFeatureTransformer",
    "AreaModelResult",
    "CandidateResult",
    "PreparedAreas",
    "TypologyClusterer",
    "TypologySpec",
    "candidate_table",
    "choose_candidate",
    "default_specs",
    "evaluate_candidates",
    "fit_area_models",
    "prepare_area_features",
    "rate_parts_by_convention",
    "rate_parts_from_catalogue",
]

KEY_COLUMNS = ("buurt_code", "year", "x", "y")
ALGORITHMS = ("kmeans", "gmm", "hdbscan")  # also the tie-break order: simplest first
KMEANS_N_INIT = 10
RESAMPLES = 5
RESAMPLE_SHARE = 0.5  # half-samples (Lange et al. 2004); HDBSCAN's MST is O(n^2)
RESAMPLE_N_INIT = 3  # a stability check, not the chosen model: fewer restarts suffice
SILHOUETTE_SAMPLE = 4000  # silhouette is O(n^2); a seeded sample of 4000 rows is plenty
HDBSCAN_COMPONENTS = 5
HDBSCAN_MIN_SAMPLES = 10  # core distance from 10 neighbours: min_cluster_size (the default)
# would cost a 140-neighbour search at national scale for little change in the result
PROFILE_TOP = 3
PROFILE_MIN_Z = 0.5  # a cluster mean within half a standard deviation of the mean is "typical"
NOT_SIGNIFICANT = "ns"

# rate column -> (numerator column, denominator column, multiplier)
RateParts = Mapping[str, tuple[str, str, float]]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AreaModelResult:
    """What the area-model stage hands to the export and to MLflow.

    typology: one row per (buurt_code, year): ``cluster``, ``anomaly_score`` and one
        ``hotspot_z_<phenomenon>`` per phenomenon (contract section 3), then per phenomenon
        ``hotspot_q_``, ``moran_i_``, ``moran_q_`` and ``moran_type_`` (declared in ``zicht.jobs.catalog``).
    profiles: one row per type: size, share and a description in plain words.
    metrics: silhouettes, BIC, stability, anomaly share, timings and hot-spot counts (floats).
    model: the chosen typology pipeline, feature columns (a DataFrame) -> cluster.
    feature_columns: the model's input columns, in order.
    input_example: a few input rows (float64), for the MLflow signature.
    locations: ``buurt_code``, ``year``, ``x``, ``y`` aligned row by row with ``typology`` (for
        maps; kept apart so the typology table stays as the contract declares it).
    candidates: one row per typology candidate: ``candidate``, ``algorithm``, ``n_clusters``
        (asked), ``min_cluster_size``, ``n_types`` (found), ``silhouette``, ``bootstrap_ari``,
        ``bic``, ``noise_share``, ``fit_seconds``, ``is_chosen``.
    chosen: the name of the chosen candidate (e.g. ``kmeans_k6``).
    anomaly_importance: ``feature``, ``importance`` (mean drop of the flagged areas'
        isolation-forest score when the feature is shuffled), most important first.
    anomaly_drivers: the features behind each area-year's anomaly score, long
        (``zicht.models.anomaly.DRIVER_COLUMNS``; ``restricted/area_anomaly_drivers``).
    features: the input rows the models were fitted on (keys and feature columns, sorted), so
        the tracking job can log the dataset and its digest.
    weights: ``contiguity`` or ``knn``: the spatial weights the hot spots used.
    """

    typology: pd.DataFrame
    profiles: pd.DataFrame
    metrics: dict[str, float]
    model: Pipeline
    feature_columns: list[str]
    input_example: pd.DataFrame
    locations: pd.DataFrame
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen: str = ""
    anomaly_importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    anomaly_drivers: pd.DataFrame = field(default_factory=pd.DataFrame)
    features: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: str = ""


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


# indicators computed from other indicators: the anomaly score sees each quantity once
_DERIVED_METHODS = frozenset(
    {"eb_smoothed", "relative_gemeente", "relative_study_area", "composite", "composite_class"}
)


def profile_columns_from_catalogue(indicators: Sequence[IndicatorSpec]) -> list[str]:
    """The columns that say what an area is like, each quantity once, from the catalogue.

    Rates, shares, distances, euro means and the population density; not counts (they say how
    big an area is, and a large buurt is not unusual for being large) and not indicators
    derived from other indicators (smoothed, relative and composite versions of a rate would
    weigh that rate several times). The anomaly score is fitted on these.
    """
    return [
        _column(spec.key)
        for spec in indicators
        if spec.method not in _DERIVED_METHODS
        and (spec.unit in ("rate", "share", "km", "euro") or spec.method == "density_per_km2")
    ]


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
        out = self.smoothed_matrix(X)
        return _signed_log1p(out) if self.log else out

    def smoothed_matrix(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        """Every column after smoothing, before the log, as one float array (the columns of
        ``feature_names_in_``). The frame is converted to numpy once and the rates are
        replaced column by column in the array: no wide float copy of the frame."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AreaFeatureTransformer needs a DataFrame with named columns")
        cols = [str(c) for c in self.feature_names_in_]
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"missing feature columns: {missing}")
        out = X[cols].to_numpy(dtype=float, copy=True)  # never a view of the caller's frame
        position = {c: j for j, c in enumerate(cols)}
        per_of = {rate: per for rate, _n, _d, per in self.parts}
        num_of = {rate: (num, den) for rate, num, den, _p in self.parts}
        for rate, (b, a) in self.priors_.items():
            num, den = num_of[rate]
            out[:, position[rate]] = per_of[rate] * _marshall_smooth(
                out[:, position[num]], out[:, position[den]], b, a
            )
        return out

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
    """Global mean rate b and floored between-area variance a: the estimator of the published
    ``*_smoothed`` indicators (:mod:`zicht.features.smoothing`, Marshall 1991; the floor
    ``b / median(n)`` keeps a rate whose excess variance sits in a handful of areas, such as
    doorsluiswoningen or an address of letterbox firms, from vanishing from the typology)."""
    return marshall_prior(num, den)


def _marshall_smooth(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], b: float, a: float
) -> npt.NDArray[np.float64]:
    """The shared estimate ``w r + (1 - w) b``; an area with no denominator but a known (zero)
    numerator is imputed with the prior b (the published indicator is not_applicable there)."""
    out = marshall_smooth(num, den, b, a)
    return np.where(np.isfinite(num) & (np.nan_to_num(den) <= 0), b, out)


# --------------------------------------------------------------------------- typology candidates


@dataclass(frozen=True)
class TypologySpec:
    """One typology candidate: k-means or mixture with ``n_clusters``, or HDBSCAN with
    ``min_cluster_size`` (0: 1 % of the rows, at least 10)."""

    algorithm: str
    n_clusters: int = 6
    min_cluster_size: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown typology algorithm {self.algorithm!r}; use {ALGORITHMS}")

    @property
    def name(self) -> str:
        if self.algorithm == "hdbscan":
            return f"hdbscan_m{self.min_cluster_size or 'auto'}"
        return f"{self.algorithm}_k{self.n_clusters}"


def default_specs(settings: ModelSettings) -> list[TypologySpec]:
    """The candidates of a pipeline run: k-means and mixture with ``settings.n_clusters``, and
    HDBSCAN with the automatic minimum cluster size."""
    return [
        TypologySpec("kmeans", n_clusters=settings.n_clusters),
        TypologySpec("gmm", n_clusters=settings.n_clusters),
        TypologySpec("hdbscan"),
    ]


class TypologyClusterer(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """k-means, Gaussian mixture or HDBSCAN behind one ``fit`` / ``predict``, types by size.

    ``fit`` numbers the types by size (0 = largest; HDBSCAN's noise stays -1), so labels read
    the same across runs and candidates. ``predict`` scores new rows: k-means and the mixture
    natively; HDBSCAN has no ``predict``, so a new area takes the type of the nearest fitted area
    (1-nearest neighbour in the principal components HDBSCAN clustered; on the fitted rows
    this gives back HDBSCAN's own labels).
    ``n_clusters`` is capped at the number of distinct rows.
    """

    def __init__(
        self,
        algorithm: str = "kmeans",
        n_clusters: int = 6,
        min_cluster_size: int = 0,
        random_state: int = 0,
        n_init: int = KMEANS_N_INIT,
    ):
        self.algorithm = algorithm
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.random_state = random_state
        self.n_init = n_init

    def fit(self, X: npt.ArrayLike, y: Any = None) -> TypologyClusterer:  # noqa: N803
        Z = np.asarray(X, dtype=float)  # noqa: N806
        n = len(Z)
        n_distinct = len(np.unique(np.round(Z, 12), axis=0))
        k = max(1, min(int(self.n_clusters), n_distinct))
        self.n_clusters_ = k
        self.estimator_: Any
        if self.algorithm == "kmeans":
            self.estimator_ = KMeans(
                n_clusters=k, n_init=self.n_init, random_state=self.random_state
            ).fit(Z)
            raw = self.estimator_.labels_
        elif self.algorithm == "gmm":
            # diagonal covariances: 40 features x 6 components stay well-conditioned on small
            # gemeenten, and a full covariance adds little for types meant to be read as profiles
            self.estimator_ = GaussianMixture(
                n_components=k,
                covariance_type="diag",
                n_init=2 if self.n_init >= KMEANS_N_INIT else 1,
                reg_covar=1e-4,
                random_state=self.random_state,
            ).fit(Z)
            raw = self.estimator_.predict(Z)
        elif self.algorithm == "hdbscan":
            size = self.min_cluster_size or max(10, round(0.01 * n))
            self.min_cluster_size_ = int(min(max(2, size), max(2, n)))
            d = min(HDBSCAN_COMPONENTS, Z.shape[1], n)
            self.pca_ = PCA(n_components=d, random_state=self.random_state).fit(Z)
            reduced = self.pca_.transform(Z)
            self.estimator_ = HDBSCAN(
                min_cluster_size=self.min_cluster_size_,
                min_samples=min(HDBSCAN_MIN_SAMPLES, self.min_cluster_size_),
                copy=True,
            ).fit(reduced)
            raw = self.estimator_.labels_
        else:
            raise ValueError(f"unknown typology algorithm {self.algorithm!r}; use {ALGORITHMS}")
        raw = np.asarray(raw, dtype=np.int64)
        found = raw[raw >= 0]
        counts = np.bincount(found, minlength=int(found.max()) + 1 if len(found) else 0)
        order = np.lexsort((np.arange(len(counts)), -counts))  # ties: lower raw label first
        self.relabel_ = np.empty(len(counts), dtype=np.int64)
        self.relabel_[order] = np.arange(len(counts))
        self.labels_ = self._relabel(raw)
        self.n_types_ = int((counts > 0).sum())
        if self.algorithm == "hdbscan":
            # in the space HDBSCAN clustered in (a kd-tree query there is fast)
            self.nearest_ = KNeighborsClassifier(n_neighbors=1).fit(reduced, self.labels_)
        return self

    def _relabel(self, raw: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out = np.full(len(raw), -1, dtype=np.int64)
        ok = raw >= 0
        out[ok] = self.relabel_[raw[ok]]
        return out

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:  # noqa: N803
        Z = np.asarray(X, dtype=float)  # noqa: N806
        if self.algorithm == "hdbscan":
            return np.asarray(self.nearest_.predict(self.pca_.transform(Z)), dtype=np.int64)
        return self._relabel(np.asarray(self.estimator_.predict(Z), dtype=np.int64))


@dataclass(frozen=True)
class CandidateResult:
    spec: TypologySpec
    clusterer: TypologyClusterer
    labels: npt.NDArray[np.int64]
    metrics: dict[str, float]


def _silhouette(Z: FloatArray, labels: npt.ArrayLike, seed: int) -> float:  # noqa: N803
    """Silhouette on Z over a seeded sample (the same rows for every candidate); noise (-1)
    is a group of its own. NaN when there are fewer than two groups."""
    lab = np.asarray(labels)
    n_labels = len(np.unique(lab))
    if n_labels < 2 or n_labels >= len(lab):
        return float("nan")
    size = min(len(lab), SILHOUETTE_SAMPLE)
    return float(
        silhouette_score(Z, lab, sample_size=size if size < len(lab) else None, random_state=seed)
    )


def _resample_stability(
    Z: FloatArray,  # noqa: N803
    spec: TypologySpec,
    labels: npt.NDArray[np.int64],
    seed: int,
) -> float:
    """Mean ARI between the full fit and fits on seeded half-samples (each labelling all rows)."""
    n = len(Z)
    m = int(RESAMPLE_SHARE * n)
    if n < 5 or len(np.unique(labels)) < 2:
        return float("nan")
    min_size = spec.min_cluster_size or max(10, round(0.01 * n))
    rng = np.random.default_rng(seed)
    scores = []
    for b in range(RESAMPLES):
        idx = np.sort(rng.choice(n, size=m, replace=False))
        fit = TypologyClusterer(
            spec.algorithm,
            n_clusters=spec.n_clusters,
            # the full fit's minimum size, scaled to the subsample
            min_cluster_size=max(2, round(RESAMPLE_SHARE * min_size)),
            random_state=seed + b + 1,
            n_init=RESAMPLE_N_INIT,
        ).fit(Z[idx])
        scores.append(adjusted_rand_score(labels, fit.predict(Z)))
    return float(np.mean(scores))


def evaluate_candidates(
    Z: FloatArray,  # noqa: N803
    specs: Sequence[TypologySpec],
    *,
    seed: int,
    stability: bool = True,
) -> list[CandidateResult]:
    """Fit every candidate on Z and score it: silhouette, resample ARI, BIC (mixture only),
    noise share (HDBSCAN only), number of types found, fit time."""
    out = []
    for spec in specs:
        t0 = time.perf_counter()
        clusterer = TypologyClusterer(
            spec.algorithm,
            n_clusters=spec.n_clusters,
            min_cluster_size=spec.min_cluster_size,
            random_state=seed,
        ).fit(Z)
        labels = clusterer.labels_
        fit_s = time.perf_counter() - t0
        metrics = {
            "silhouette": _silhouette(Z, labels, seed),
            "n_types": float(clusterer.n_types_),
            "noise_share": float((labels < 0).mean()) if spec.algorithm == "hdbscan" else 0.0,
            "bic": float(clusterer.estimator_.bic(Z)) if spec.algorithm == "gmm" else float("nan"),
            "fit_seconds": fit_s,
        }
        t0 = time.perf_counter()
        metrics["bootstrap_ari"] = (
            _resample_stability(Z, spec, labels, seed) if stability else float("nan")
        )
        metrics["stability_seconds"] = time.perf_counter() - t0
        out.append(CandidateResult(spec=spec, clusterer=clusterer, labels=labels, metrics=metrics))
    return out


def choose_candidate(candidates: Sequence[CandidateResult]) -> CandidateResult:
    """The highest silhouette among candidates with two or more groups; ties go to the earlier
    algorithm in ``ALGORITHMS`` (simplest first), then the earlier candidate."""
    eligible = [
        (i, c)
        for i, c in enumerate(candidates)
        if np.isfinite(c.metrics["silhouette"]) and c.metrics["n_types"] >= 2
    ]
    if not eligible:
        # nothing separates the areas into two groups: keep the first candidate (one type)
        return candidates[0]
    _, best = max(
        eligible,
        key=lambda ic: (
            round(ic[1].metrics["silhouette"], 12),
            -ALGORITHMS.index(ic[1].spec.algorithm),
            -ic[0],
        ),
    )
    return best


def candidate_table(candidates: Sequence[CandidateResult], chosen: str | None) -> pd.DataFrame:
    """One row per candidate (the comparison MLflow and ``zicht experiment`` show)."""
    rows = [
        {
            "candidate": c.spec.name,
            "algorithm": c.spec.algorithm,
            "n_clusters": c.spec.n_clusters if c.spec.algorithm != "hdbscan" else 0,
            "min_cluster_size": int(getattr(c.clusterer, "min_cluster_size_", 0)),
            "n_types": int(c.metrics["n_types"]),
            "silhouette": c.metrics["silhouette"],
            "bootstrap_ari": c.metrics["bootstrap_ari"],
            "bic": c.metrics["bic"],
            "noise_share": c.metrics["noise_share"],
            "fit_seconds": c.metrics["fit_seconds"],
            "is_chosen": c.spec.name == chosen,
        }
        for c in candidates
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the stage


def check_features(columns: Sequence[str]) -> None:
    """Refuse a feature that names ethnicity, nationality, country of birth or religion."""
    bad = [c for c in columns if any(w in c.lower() for w in SENSITIVE_FEATURE_WORDS)]
    if bad:
        raise ValueError(
            f"feature column(s) {bad} name ethnicity, nationality, country of birth or religion, "
            "which zicht refuses as model features"
        )


@dataclass(frozen=True)
class PreparedAreas:
    """The area features sorted, selected, and transformed to the scaled space Z."""

    data: pd.DataFrame  # sorted by (year, buurt_code), all columns
    X: pd.DataFrame  # feature columns, float  # noqa: N815
    feature_columns: list[str]
    prep: Pipeline  # smoothing, imputation, constant-column drop, scaling (fitted)
    Z: FloatArray  # noqa: N815
    kept_columns: list[str]  # the columns of Z
    smoothed: FloatArray  # every feature column smoothed, before the log (feature_columns)


def prepare_area_features(
    features: pd.DataFrame,
    *,
    settings: ModelSettings,
    rate_parts: RateParts | None = None,
) -> PreparedAreas:
    """Check, sort and select the features and fit the preprocessing (steps 1-3)."""
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
    # The smoothed features (before the log) are computed once, here, on one float array: the
    # rest of the preprocessing, the robust anomaly part and Gi* all read that array.
    smoother = AreaFeatureTransformer(parts=part_rows).fit(X)
    smoothed = smoother.smoothed_matrix(X)
    rest = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("drop_constant", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
        ]
    )
    try:
        Z = rest.fit_transform(_signed_log1p(smoothed))  # noqa: N806
    except ValueError as exc:  # VarianceThreshold: no column varies (or a single area)
        raise ValueError(
            f"no feature varies between the {len(X)} area-year(s) after smoothing: nothing to "
            "build a typology on (the job should skip the area models and say so)"
        ) from exc
    # the fitted steps as one pipeline: the MLflow model scores a DataFrame of new areas
    prep = Pipeline([("smooth", smoother), *rest.steps])
    Z = np.asarray(Z, dtype=float)  # noqa: N806
    kept = [str(c) for c in prep[:-1].get_feature_names_out()] if Z.shape[1] else []
    return PreparedAreas(
        data=data,
        X=X,
        feature_columns=feature_columns,
        prep=prep,
        Z=Z,
        kept_columns=kept,
        smoothed=smoothed,
    )


def fit_area_models(
    features: pd.DataFrame,
    *,
    phenomena: Sequence[str],
    settings: ModelSettings,
    rate_parts: RateParts | None = None,
    geometry_wkt: Mapping[str, str] | None = None,
    anomaly_columns: Sequence[str] | None = None,
    feature_groups: Mapping[str, str] | None = None,
) -> AreaModelResult:
    """Fit the typology, anomaly score and hot spots on one row per (buurt_code, year).

    ``rate_parts`` maps rate columns to (numerator, denominator, multiplier) columns (from
    :func:`rate_parts_from_catalogue`); by default they follow the column names.
    ``anomaly_columns``: the features the isolation forest sees (from
    :func:`profile_columns_from_catalogue`); by default all, and all when fewer than two of them
    are among the features used.
    ``feature_groups`` maps feature columns to their group (from
    :func:`zicht.models.anomaly.feature_groups_from_catalogue`); the robust part of the anomaly
    score reads the ``register`` ones, and without any the score is the forest's alone.
    ``geometry_wkt`` maps buurt_code to its polygon (WKT, RD New): hot spots then use polygon
    contiguity; without it (or for buurten it lacks), the nearest centroids.
    """
    # One native thread for scikit-learn's OpenMP/BLAS: the results then do not depend on the
    # machine's core count, and on a busy driver (Spark's JVM, other jobs) the OpenMP threads
    # of k-means and the mixture spin and stall: 14k x 40 took 35 s with two threads on a loaded
    # two-core machine, 9 s with one.
    with threadpool_limits(limits=1):
        return _fit_area_models(
            features,
            phenomena=phenomena,
            settings=settings,
            rate_parts=rate_parts,
            geometry_wkt=geometry_wkt,
            anomaly_columns=anomaly_columns,
            feature_groups=feature_groups,
        )


def _fit_area_models(
    features: pd.DataFrame,
    *,
    phenomena: Sequence[str],
    settings: ModelSettings,
    rate_parts: RateParts | None,
    geometry_wkt: Mapping[str, str] | None,
    anomaly_columns: Sequence[str] | None,
    feature_groups: Mapping[str, str] | None,
) -> AreaModelResult:
    started = time.perf_counter()
    prepared = prepare_area_features(features, settings=settings, rate_parts=rate_parts)
    data, X, Z = prepared.data, prepared.X, prepared.Z  # noqa: N806
    n = len(Z)

    t0 = time.perf_counter()
    candidates = evaluate_candidates(Z, default_specs(settings), seed=settings.seed)
    best = choose_candidate(candidates)
    labels = best.labels
    model = Pipeline([*prepared.prep.steps, ("cluster", best.clusterer)])
    table = candidate_table(candidates, best.spec.name)

    metrics: dict[str, float] = {
        "n_area_years": float(n),
        "n_features": float(len(prepared.feature_columns)),
        "n_features_used": float(Z.shape[1]),
        "n_clusters": float(best.clusterer.n_types_),
        "fit_typology_seconds": time.perf_counter() - t0,
    }
    for c in candidates:
        algo = c.spec.algorithm
        metrics[f"{algo}_silhouette"] = c.metrics["silhouette"]
        metrics[f"{algo}_bootstrap_ari"] = c.metrics["bootstrap_ari"]
        metrics[f"{algo}_n_types"] = c.metrics["n_types"]
        metrics[f"fit_{algo}_seconds"] = c.metrics["fit_seconds"]
    metrics["gmm_bic"] = next(
        (c.metrics["bic"] for c in candidates if c.spec.algorithm == "gmm"), float("nan")
    )
    metrics["hdbscan_noise_share"] = next(
        (c.metrics["noise_share"] for c in candidates if c.spec.algorithm == "hdbscan"),
        float("nan"),
    )
    metrics["chosen_silhouette"] = best.metrics["silhouette"]
    metrics["chosen_bootstrap_ari"] = best.metrics["bootstrap_ari"]
    if best.spec.algorithm == "kmeans":
        metrics["kmeans_inertia"] = float(best.clusterer.estimator_.inertia_)

    t0 = time.perf_counter()
    kept = prepared.kept_columns
    wanted = set(anomaly_columns) if anomaly_columns is not None else set(kept)
    on = [j for j, c in enumerate(kept) if c in wanted]
    if len(on) < 2:
        on = list(range(len(kept)))
    smoothed = prepared.smoothed
    anomaly = score_anomalies(
        Z[:, on],
        [kept[j] for j in on],
        smoothed,
        prepared.feature_columns,
        groups=feature_groups or {},
        buurt_code=data["buurt_code"].to_numpy(),
        year=data["year"].to_numpy(),
        contamination=settings.anomaly_contamination,
        seed=settings.seed,
    )
    metrics.update(anomaly.metrics)
    metrics["fit_anomaly_seconds"] = time.perf_counter() - t0

    typology = pd.DataFrame(
        {
            "buurt_code": data["buurt_code"].astype(str),
            "year": data["year"].astype("int64"),
            "cluster": labels.astype("int64"),
            "anomaly_score": anomaly.score,
        }
    )
    t0 = time.perf_counter()
    spots, hot_metrics, weights_kind = _hotspots(
        data, smoothed, prepared.feature_columns, phenomena, settings, geometry_wkt
    )
    # contract columns first (hotspot_z_<P>), then the extra statistics per phenomenon
    z_cols = [f"hotspot_z_{p}" for p in phenomena]
    extra = [c for c in spots.columns if c not in z_cols]
    typology = pd.concat([typology, spots[z_cols], spots[extra]], axis=1)
    metrics.update(hot_metrics)
    metrics["fit_hotspots_seconds"] = time.perf_counter() - t0

    profiles = _profiles(Z, labels, prepared.kept_columns)
    metrics["fit_total_seconds"] = time.perf_counter() - started
    return AreaModelResult(
        typology=typology,
        profiles=profiles,
        metrics=metrics,
        model=model,
        feature_columns=prepared.feature_columns,
        input_example=X.head(5).reset_index(drop=True),
        locations=data[["buurt_code", "year", "x", "y"]].copy(),
        candidates=table,
        chosen=best.spec.name,
        anomaly_importance=anomaly.importance,
        anomaly_drivers=anomaly.drivers,
        features=data[["buurt_code", "year", *prepared.feature_columns]].copy(),
        weights=weights_kind,
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
    dtypes = data.dtypes
    numeric = [
        c
        for c in candidates
        if pd.api.types.is_numeric_dtype(dtypes[c]) and not pd.api.types.is_bool_dtype(dtypes[c])
    ]
    if settings.features and len(numeric) < len(candidates):
        raise ValueError(
            f"model.features must be numeric: {sorted(set(candidates) - set(numeric))}"
        )
    # a column with no value at all carries nothing (a source absent for every area)
    has_value = np.asarray(data[numeric].notna().to_numpy().any(axis=0), dtype=bool).tolist()
    usable = [c for c, ok in zip(numeric, has_value, strict=True) if ok]
    if not usable:
        raise ValueError("area features have no numeric feature column with values")
    return usable


def _year_weights(
    data: pd.DataFrame,
    idx: npt.NDArray[np.intp],
    k: int,
    geometry_wkt: Mapping[str, str] | None,
) -> tuple[sp.csr_matrix, str]:
    codes = data["buurt_code"].to_numpy()[idx]
    wkt = [geometry_wkt.get(str(c)) for c in codes] if geometry_wkt else None
    return spatial_weights(data["x"].to_numpy()[idx], data["y"].to_numpy()[idx], k, wkt)


def _hotspots(
    data: pd.DataFrame,
    smoothed: FloatArray,
    columns: Sequence[str],
    phenomena: Sequence[str],
    settings: ModelSettings,
    geometry_wkt: Mapping[str, str] | None,
) -> tuple[pd.DataFrame, dict[str, float], str]:
    """Gi* and local Moran per phenomenon, each year on its own; columns, counts, weights kind.

    The weights are built once per set of buurten (years with the same buurten share them).
    """
    n = len(data)
    years = [np.asarray(i, dtype=np.intp) for i in data.groupby("year", sort=True).indices.values()]
    cache: dict[tuple[str, ...], tuple[sp.csr_matrix, str]] = {}
    weights: list[tuple[sp.csr_matrix, str]] = []
    for idx in years:
        key = tuple(data["buurt_code"].to_numpy()[idx])
        # at most n - 2 neighbours: a neighbourhood covering every buurt has no defined Gi*
        k = max(0, min(settings.knn, len(idx) - 2))
        if key not in cache:
            cache[key] = _year_weights(data, idx, k, geometry_wkt)
        weights.append(cache[key])
    kinds = sorted({kind for _, kind in weights})

    cols: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    for p in phenomena:
        column = f"{p}_incidents_per_1000"
        gz, gq = np.full(n, np.nan), np.full(n, np.nan)
        mi, mq = np.full(n, np.nan), np.full(n, np.nan)
        mtype = np.full(n, NOT_SIGNIFICANT, dtype=object)
        counts = dict.fromkeys(("hot", "cold", *QUADRANT_LABELS.values()), 0)
        if column in columns:
            values = smoothed[:, list(columns).index(column)]
            for position, (idx, (w, _kind)) in enumerate(zip(years, weights, strict=True)):
                v = values[idx]
                if not np.isfinite(v).any():
                    continue
                v = np.where(np.isfinite(v), v, np.nanmedian(v))
                seed = settings.seed + position
                z = getis_ord_gi_star(v, w)
                gz[idx] = z
                moran = local_moran(v, w, permutations=settings.permutations, seed=seed)
                mi[idx] = moran.i
                if settings.permutations > 0 and len(idx) > 2:
                    if settings.hotspot_inference == "normal":
                        # Gi* z is standardised under randomisation (Ord & Getis 1995): its
                        # normal two-sided p has no floor, unlike a permutation p (>= 1/(n+1)),
                        # which under Benjamini-Hochberg over many areas can never be small
                        # enough for a compact cluster to be declared.
                        p_gi = 2.0 * scipy.stats.norm.sf(np.abs(z))
                    else:
                        p_gi = gi_star_permutation_p(
                            v, w, permutations=settings.permutations, seed=seed
                        )
                    reject, q = benjamini_hochberg(p_gi, settings.fdr_alpha)
                    gq[idx] = q
                    counts["hot"] += int((reject & (z > 0)).sum())
                    counts["cold"] += int((reject & (z < 0)).sum())
                    # local Moran's I has no closed-form null as simple as Gi*'s: "normal"
                    # takes its permutation z (esda's z_sim), which has no floor either
                    p_moran = (
                        moran.normal_p() if settings.hotspot_inference == "normal" else moran.p
                    )
                    m_reject, m_q = benjamini_hochberg(p_moran, settings.fdr_alpha)
                    mq[idx] = m_q
                    labels = np.where(m_reject, moran.labels, NOT_SIGNIFICANT)
                    mtype[idx] = labels
                    for lab in QUADRANT_LABELS.values():
                        counts[lab] += int((labels == lab).sum())
        else:
            counts = {c: float("nan") for c in counts}  # type: ignore[misc]
        cols[f"hotspot_z_{p}"] = gz
        cols[f"hotspot_q_{p}"] = gq
        cols[f"moran_i_{p}"] = mi
        cols[f"moran_q_{p}"] = mq
        cols[f"moran_type_{p}"] = mtype
        metrics[f"hotspots_fdr_{p}"] = float(counts["hot"])
        metrics[f"coldspots_fdr_{p}"] = float(counts["cold"])
        for lab in QUADRANT_LABELS.values():
            metrics[f"moran_{lab.lower()}_fdr_{p}"] = float(counts[lab])
    frame = pd.DataFrame(cols, index=data.index)
    for p in phenomena:
        frame[f"moran_type_{p}"] = frame[f"moran_type_{p}"].astype(str)
    return frame, metrics, "+".join(kinds) if kinds else "knn"


def _describe(column: str) -> str:
    return column.removeprefix("context_").replace("_", " ").strip()


def _profiles(
    Z: FloatArray,  # noqa: N803
    labels: npt.NDArray[Any],
    columns: list[str],
) -> pd.DataFrame:
    """Per type: size, share, and the features whose mean z-score stands out most."""
    rows = []
    n = len(labels)
    for c in sorted(np.unique(labels)):
        members = labels == c
        means = Z[members].mean(axis=0) if members.any() and Z.shape[1] else np.zeros(0)
        order = np.argsort(-np.abs(means), kind="stable")
        top = [j for j in order[:PROFILE_TOP] if abs(means[j]) >= PROFILE_MIN_Z]
        phrases = [f"{'high' if means[j] > 0 else 'low'} {_describe(columns[j])}" for j in top]
        name = f"type {c}" if c >= 0 else "no type (fits none of the types)"
        rows.append(
            {
                "cluster": int(c),
                "n_area_years": int(members.sum()),
                "share": float(members.sum() / n) if n else float("nan"),
                "description": f"{name}: "
                + (", ".join(phrases) if phrases else "close to average on every feature"),
                "top_features": "; ".join(f"{columns[j]}:{means[j]:+.2f}" for j in top),
            }
        )
    return pd.DataFrame(
        rows, columns=["cluster", "n_area_years", "share", "description", "top_features"]
    )
