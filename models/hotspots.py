"""Local hot spots: spatial weights between buurten, Getis-Ord Gi* and local Moran's I.

Reads nothing and writes nothing: plain numpy/scipy arrays in, arrays out. The caller
(``zicht.models.typology``) holds one value per buurt on the driver; areas are few (about 14k
buurten nationally), so a sparse n x n weights matrix with k nonzeros per row is small.

Methods
- Neighbours: the ``k`` nearest buurt centroids (RD New metres, ``scipy.spatial.cKDTree``), or
  queen contiguity of the buurt polygons (two buurten are neighbours when their polygons share at
  least one boundary point; shapely ``STRtree``) when the areas table carries ``geometry_wkt``;
  a buurt without a contiguous neighbour (an island, a missing polygon) takes its k nearest
  centroids (:func:`spatial_weights`).
- Gi*: Getis & Ord (1992), with the moments of Ord & Getis (1995), eq. 4.3 ("star": the focal
  buurt counts as its own neighbour, weight 1 on the diagonal):

      z_i = (sum_j w_ij x_j - xbar W_i) / (s sqrt((n S1_i - W_i^2) / (n - 1)))

  with W_i = sum_j w_ij, S1_i = sum_j w_ij^2, xbar and s the mean and (population) standard
  deviation of x over all n units. For binary weights this equals esda's
  ``G_Local(star=True, transform="B")`` (the test checks that); unlike esda's row-standardised
  variant it does not change when a row of weights is scaled.
- Local Moran's I: Anselin (1995), on row-standardised weights, as esda's ``Moran_Local``
  (same I and quadrant HH/LH/LL/HL, checked in the tests): ``I_i = (n - 1) z_i lag_i / sum z^2``.
- Pseudo p-values: conditional permutation (Anselin 1995) as in esda: the focal value stays,
  the neighbours' values are drawn without replacement from the other n - 1 units; the p-value is
  folded (the smaller tail), ``(larger + 1) / (permutations + 1)``.
- Multiple testing: Benjamini & Hochberg (1995) step-up false discovery rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import scipy.stats
from scipy.spatial import cKDTree

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "QUADRANT_LABELS",
    "LocalMoran",
    "benjamini_hochberg",
    "contiguity_weights",
    "getis_ord_gi_star",
    "gi_star_permutation_p",
    "knn_neighbours",
    "knn_weights",
    "local_moran",
    "row_standardise",
    "spatial_weights",
]


def knn_neighbours(x: npt.ArrayLike, y: npt.ArrayLike, k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` nearest other centroids of each unit, shape (n, k), nearest first.

    Ties in distance are broken by index (cKDTree is deterministic), and a unit is never its own
    neighbour even when another buurt shares its centroid. ``k`` is capped at n - 1.
    """
    pts = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    n = len(pts)
    if n == 0:
        return np.empty((0, 0), dtype=np.intp)
    if not np.isfinite(pts).all():
        raise ValueError("knn weights need finite x and y for every unit")
    k = min(int(k), n - 1)
    if k < 1:
        return np.empty((n, 0), dtype=np.intp)
    # Ask for k + 1 so that dropping the unit itself still leaves k.
    _, idx = cKDTree(pts).query(pts, k=k + 1)
    idx = np.asarray(idx, dtype=np.intp).reshape(n, k + 1)
    # move the unit itself to the end of its row (stable: the others keep distance order)
    is_self = idx == np.arange(n)[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)[:, :k]


def knn_weights(
    x: npt.ArrayLike, y: npt.ArrayLike, k: int, *, transform: Literal["B", "R"] = "B"
) -> sp.csr_matrix:
    """Sparse n x n weights: ``w_ij`` > 0 when j is one of the k nearest centroids of i.

    The diagonal is zero (the focal unit is added by :func:`getis_ord_gi_star`). ``"B"`` gives
    binary weights (what Gi* is usually computed on), ``"R"`` row-standardised ones. The matrix
    is not symmetric: j may be among i's nearest without i being among j's.
    """
    nb = knn_neighbours(x, y, k)
    n, kk = nb.shape
    rows = np.repeat(np.arange(n), kk)
    data = np.ones(n * kk) if transform == "B" else np.full(n * kk, 1.0 / max(kk, 1))
    return sp.csr_matrix((data, (rows, nb.ravel())), shape=(n, n))


def contiguity_weights(wkt: Sequence[str | None]) -> sp.csr_matrix:
    """Binary queen contiguity from polygon WKT: neighbours share at least one boundary point.

    ``intersects`` rather than ``touches``: digitised buurt borders overlap or leave slivers by a
    few centimetres, and ``touches`` would then miss real neighbours. A missing or empty geometry
    has no neighbours (an island); Gi* then sees only the focal unit.
    """
    import shapely
    from shapely.strtree import STRtree

    geoms = np.array(
        [shapely.from_wkt(g if g else "POLYGON EMPTY") for g in wkt],
        dtype=object,
    )
    n = len(geoms)
    if n == 0:
        return sp.csr_matrix((0, 0))
    tree = STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left != right
    left, right = left[keep], right[keep]
    w = sp.csr_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    w = ((w + w.T) > 0).astype(float)  # intersects is symmetric; guard against float noise
    return sp.csr_matrix(w)


def spatial_weights(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    k: int,
    wkt: Sequence[str | None] | None = None,
) -> tuple[sp.csr_matrix, str]:
    """Binary neighbour weights between buurten: polygon contiguity when polygons are there.

    With ``wkt`` holding at least one polygon: queen contiguity (:func:`contiguity_weights`),
    and a buurt with no contiguous neighbour (an island such as a Wadden buurt, or a buurt whose
    polygon is missing) takes its ``k`` nearest centroids instead, so that no unit's statistic
    is computed on itself alone (libpysal's ``attach_islands`` does the same with one
    neighbour). Without polygons: the ``k`` nearest centroids for every unit. Returns the
    weights and ``"contiguity"`` or ``"knn"``.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if wkt is None or not any(g for g in wkt):
        return knn_weights(xs, ys, k), "knn"
    w = contiguity_weights(wkt).tolil()
    islands = np.flatnonzero(np.asarray(w.sum(axis=1)).ravel() == 0)
    if len(islands) and k > 0 and len(xs) > 1:
        nb = knn_neighbours(xs, ys, k)
        for i in islands:
            w[i, nb[i]] = 1.0
    return sp.csr_matrix(w), "contiguity"


def _with_self(weights: sp.spmatrix | sp.sparray, self_weight: float) -> sp.csr_matrix:
    w = sp.csr_matrix(weights, dtype=float, copy=True)
    if w.shape[0] != w.shape[1]:
        raise ValueError(f"weights must be square, got {w.shape}")
    w.setdiag(self_weight)
    w.eliminate_zeros()
    return w


def getis_ord_gi_star(
    values: npt.ArrayLike,
    weights: sp.spmatrix | sp.sparray,
    *,
    self_weight: float = 1.0,
) -> FloatArray:
    """Analytical Gi* z-scores, one per unit (positive: high values cluster around the unit).

    ``weights`` has the neighbours off the diagonal (as :func:`knn_weights` gives); the diagonal
    is set to ``self_weight`` so the focal unit is included. Values must be finite (impute or
    smooth first). Returns zeros when ``values`` is constant (no spot is hotter than another) and
    NaN for a unit whose weights cover every unit (its z is undefined).
    """
    x = np.asarray(values, dtype=float).ravel()
    n = len(x)
    if weights.shape != (n, n):
        raise ValueError(f"weights shape {weights.shape} does not match {n} values")
    if not np.isfinite(x).all():
        raise ValueError("Gi* needs finite values for every unit; impute or smooth first")
    if n < 2:
        return np.zeros(n)
    w = _with_self(weights, self_weight)
    xbar = x.mean()
    s = np.sqrt(max((x**2).mean() - xbar**2, 0.0))
    if s <= 1e-12 * max(1.0, abs(xbar)):
        return np.zeros(n)
    wi = np.asarray(w.sum(axis=1)).ravel()
    s1 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    lag = w @ x
    denom_sq = (n * s1 - wi**2) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (lag - xbar * wi) / (s * np.sqrt(denom_sq))
    z[denom_sq <= 0] = np.nan
    return np.asarray(z, dtype=float)


def gi_star_permutation_p(
    values: npt.ArrayLike,
    weights: sp.spmatrix | sp.sparray,
    *,
    permutations: int,
    seed: int,
) -> FloatArray:
    """Folded pseudo p-values of Gi* by conditional permutation (seeded, reproducible).

    For each unit the focal value stays and its neighbours' values are drawn without replacement
    from the other n - 1 units, the way esda does it: one set of random draws per permutation is
    shared by all units and shifted past the focal index. The statistic compared is the weighted
    sum without the focal term: the focal value is the same in every draw, and for fixed data the
    sum is a monotone function of the z-score.
    """
    x = np.asarray(values, dtype=float).ravel()
    if len(x) and np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        # constant values: every draw ties the observed sum, and folding the tie would give the
        # smallest p-value possible; there is nothing to test
        return np.ones(len(x))
    return _conditional_permutation_p(
        x, weights, np.ones(len(x)), permutations=permutations, seed=seed
    )


def _conditional_permutation_p(
    x: FloatArray,
    weights: sp.spmatrix | sp.sparray,
    direction: FloatArray,
    *,
    permutations: int,
    seed: int,
) -> FloatArray:
    """Folded pseudo p-values of a local statistic ``direction_i * sum_j w_ij x_j`` (up to a
    positive factor per unit), by conditional permutation of the neighbours' values.

    Gi* passes ``direction = 1``; local Moran passes the focal z-value, since ``I_i`` is
    ``z_i`` times the spatial lag. A unit with ``direction_i == 0`` has the same statistic in
    every draw and gets p = 1 (nothing to test).
    """
    return _conditional_permutation(x, weights, direction, permutations=permutations, seed=seed)[0]


def _conditional_permutation(
    x: FloatArray,
    weights: sp.spmatrix | sp.sparray,
    direction: FloatArray,
    *,
    permutations: int,
    seed: int,
) -> tuple[FloatArray, FloatArray]:
    """(folded pseudo p, z of the observed statistic against the draws' mean and sd).

    The z is esda's ``z_sim``: ``(observed - mean(draws)) / sd(draws)``, signed in
    ``direction``; 0 where the draws do not vary or the unit has no neighbours.
    """
    n = len(x)
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    w = sp.csr_matrix(weights, dtype=float, copy=True)
    w.setdiag(0.0)
    w.eliminate_zeros()
    w.sort_indices()
    card = np.diff(w.indptr)
    kmax = int(card.max()) if n else 0
    if n < 2 or kmax == 0:
        return np.ones(n), np.zeros(n)
    if kmax > n - 1:
        raise ValueError("a unit has more neighbours than there are other units")
    rng = np.random.default_rng(seed)
    # draws[p] holds kmax distinct ids from 0..n-2; id >= i maps to id + 1, so i is never drawn.
    draws = np.stack([rng.choice(n - 1, size=kmax, replace=False) for _ in range(permutations)])
    observed = w @ x
    larger = np.zeros(n)
    z_sim = np.zeros(n)
    for k in np.unique(card):
        if k == 0:
            continue
        # chunks of units keep the (units, permutations, k) index array near 10 MB
        all_units = np.flatnonzero(card == k)
        step = max(1, 1_000_000 // (permutations * int(k)))
        for start in range(0, len(all_units), step):
            units = all_units[start : start + step]
            # neighbour weights of each unit in row order, shape (u, k)
            wk = np.stack([w.data[w.indptr[i] : w.indptr[i + 1]] for i in units])
            ids = draws[:, :k][None, :, :]  # (1, P, k)
            ids = ids + (ids >= units[:, None, None])  # (u, P, k)
            sims = np.einsum("upk,uk->up", x[ids], wk)  # (u, P)
            d = direction[units, None]
            larger[units] = (d * sims >= d * observed[units, None]).sum(axis=1)
            sd = sims.std(axis=1, ddof=1) if permutations > 1 else np.zeros(len(units))
            gap = observed[units] - sims.mean(axis=1)
            safe = np.divide(gap, sd, out=np.zeros_like(gap), where=sd > 1e-12 * (1 + np.abs(gap)))
            z_sim[units] = np.sign(direction[units]) * safe
    below = (permutations - larger) < larger
    larger[below] = permutations - larger[below]
    p = (larger + 1.0) / (permutations + 1.0)
    p[(card == 0) | (direction == 0)] = 1.0
    z_sim[(card == 0) | (direction == 0)] = 0.0
    return np.asarray(p, dtype=float), np.asarray(z_sim, dtype=float)


# --------------------------------------------------------------------------- local Moran


QUADRANT_LABELS = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}


@dataclass(frozen=True)
class LocalMoran:
    """Local Moran's I per unit (Anselin 1995), esda's conventions.

    ``i``: ``(n - 1) z_i lag_i / sum(z^2)`` with z the standardised values and ``lag`` the
    row-standardised spatial lag of z. ``quadrant``: 1 HH (high among high), 2 LH (low among
    high), 3 LL, 4 HL, esda's ``q`` (a value exactly at the mean counts as low). ``p``: folded
    permutation pseudo p-value (NaN when not computed). ``z_sim``: I against the mean and
    standard deviation of its permutation draws (esda's ``z_sim``; NaN when not computed).
    """

    i: FloatArray
    quadrant: npt.NDArray[np.int64]
    p: FloatArray
    z_sim: FloatArray | None = None

    def normal_p(self) -> FloatArray:
        """Two-sided normal p of ``z_sim`` (esda's ``p_z_sim`` doubled): no 1/(P + 1) floor."""
        if self.z_sim is None:
            return np.full(len(self.i), np.nan)
        return np.asarray(2.0 * scipy.stats.norm.sf(np.abs(self.z_sim)), dtype=float)

    @property
    def labels(self) -> npt.NDArray[np.object_]:
        return np.array([QUADRANT_LABELS[int(q)] for q in self.quadrant], dtype=object)


def row_standardise(weights: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Each row divided by its sum; a row without neighbours stays zero (esda's islands)."""
    w = sp.csr_matrix(weights, dtype=float, copy=True)
    w.setdiag(0.0)
    w.eliminate_zeros()
    rs = np.asarray(w.sum(axis=1)).ravel()
    inv = np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)
    return sp.csr_matrix(sp.diags(inv) @ w)


def local_moran(
    values: npt.ArrayLike,
    weights: sp.spmatrix | sp.sparray,
    *,
    permutations: int = 0,
    seed: int = 0,
) -> LocalMoran:
    """Local Moran's I on row-standardised ``weights`` (esda ``Moran_Local(transformation="r")``).

    Values must be finite. Constant values give I = 0, quadrant LL and p = 1. With
    ``permutations`` > 0, p-values and ``z_sim`` come from the same conditional permutation as
    Gi* (seeded).
    """
    x = np.asarray(values, dtype=float).ravel()
    n = len(x)
    if weights.shape != (n, n):
        raise ValueError(f"weights shape {weights.shape} does not match {n} values")
    if not np.isfinite(x).all():
        raise ValueError("local Moran needs finite values for every unit; impute or smooth first")
    w = row_standardise(weights)
    sd = x.std()
    constant = n < 2 or sd <= 1e-12 * max(1.0, abs(x.mean()))
    z = np.zeros(n) if constant else (x - x.mean()) / sd
    lag = w @ z
    den = float((z * z).sum())
    i = (n - 1) * z * lag / den if den > 0 else np.zeros(n)
    high, high_lag = z > 0, lag > 0
    quadrant = np.where(high, np.where(high_lag, 1, 4), np.where(high_lag, 2, 3)).astype(np.int64)
    if permutations > 0 and n > 2:
        p, z_sim = _conditional_permutation(z, w, z, permutations=permutations, seed=seed)
    else:
        p, z_sim = np.full(n, np.nan), np.full(n, np.nan)
    return LocalMoran(i=np.asarray(i, dtype=float), quadrant=quadrant, p=p, z_sim=z_sim)


def benjamini_hochberg(p_values: npt.ArrayLike, alpha: float) -> tuple[BoolArray, FloatArray]:
    """Benjamini-Hochberg step-up: (rejected at false discovery rate ``alpha``, q-values).

    NaN p-values are never rejected and do not count as tests.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    q = np.full(len(p), np.nan)
    reject = np.zeros(len(p), dtype=bool)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return reject, q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    # q_(i) = min over j >= i of p_(j) m / j, capped at 1
    q_sorted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    q[order] = q_sorted
    reject[order] = q_sorted <= alpha
    return reject, q
