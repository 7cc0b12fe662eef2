"""Hot spots of the published values only, for the partner report (issue 17, item 4).

Getis-Ord Gi* z and the local-Moran quadrant of each phenomenon's buurt rate
(``<P>.incidents_per_1000``), per year, computed from the cells a partner already has: the
published (status ``ok``) buurt values of the partner table, as rounded in the CSV, with
weights from the buurten's published outlines (the GeoJSON's). A suppressed, not applicable or
not covered buurt, and one without an outline, is left out of the computation entirely (not
filled with 0): the statistic is then a function of public numbers only, so it cannot give a
suppressed count back (Gi* of the unsuppressed values with public weights could). The analysts'
hot spots of every value stay in ``restricted/area_typology`` (:mod:`zicht.models.typology`).

The statistics are :mod:`zicht.models.hotspots`' (the same code as the analysts'): weights
:func:`spatial_weights` (queen contiguity of the outlines; a buurt with no published neighbour
takes its ``knn`` nearest outline centroids), :func:`getis_ord_gi_star` (analytical z, binary
weights) and :func:`local_moran` with the settings' permutations, the quadrant kept where its
Benjamini-Hochberg q is at most ``fdr_alpha`` (else ``ns``), as ``restricted/area_typology``
does. Reads and writes nothing; the partner table and the areas are small by construction
(~14k buurten nationally), on the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from zicht.features.settings import ModelSettings
from zicht.models.hotspots import (
    benjamini_hochberg,
    getis_ord_gi_star,
    local_moran,
    spatial_weights,
)

HOTSPOT_TAIL = "incidents_per_1000"
NOT_SIGNIFICANT = "ns"
# why a buurt takes no part: its status in the partner table, or no outline
NO_GEOMETRY = "no_geometry"
MISSING = "not_covered"  # a buurt without a row for the indicator and year
HOTSPOT_COLUMNS = ["area_code", "year", "indicator", "gi_z", "moran", "left_out"]
# fewer published buurten than this: no statistic (a z over two values says nothing)
MIN_UNITS = 3


def hotspot_indicators(pub: pd.DataFrame, phenomena: Sequence[str]) -> list[str]:
    """The buurt rate indicator of each phenomenon the partner table holds, in order."""
    have = set(pub.loc[pub["level"] == "buurt", "indicator"])
    return [f"{p}.{HOTSPOT_TAIL}" for p in phenomena if f"{p}.{HOTSPOT_TAIL}" in have]


def _outlines(areas: pd.DataFrame) -> pd.DataFrame:
    """``buurt_code, wkt, cx, cy`` of the buurten with an outline (centroids of the outline,
    so the k-nearest fallback uses the published geometry only)."""
    import shapely

    if "geometry_wkt" not in areas.columns or areas.empty:
        return pd.DataFrame(columns=["buurt_code", "wkt", "cx", "cy"])
    wkt = areas["geometry_wkt"]
    has = wkt.map(lambda w: isinstance(w, str) and bool(w.strip())).to_numpy(dtype=bool)
    part = areas.loc[has, ["buurt_code", "geometry_wkt"]].astype(str)
    centroids = shapely.centroid(shapely.from_wkt(part["geometry_wkt"].to_numpy()))
    return pd.DataFrame(
        {
            "buurt_code": part["buurt_code"].to_numpy(),
            "wkt": part["geometry_wkt"].to_numpy(),
            "cx": shapely.get_x(centroids),
            "cy": shapely.get_y(centroids),
        }
    ).sort_values("buurt_code", kind="mergesort", ignore_index=True)


def published_hotspots(
    pub: pd.DataFrame,
    areas: pd.DataFrame,
    *,
    phenomena: Sequence[str],
    settings: ModelSettings,
) -> pd.DataFrame:
    """One row per buurt, year and hot-spot indicator (:data:`HOTSPOT_COLUMNS`): ``gi_z`` (NaN
    unless computed), ``moran`` (HH, LL, HL, LH or ``ns``; empty unless computed) and
    ``left_out`` (empty when the buurt took part, else ``suppressed``, ``not_applicable``,
    ``not_covered`` or ``no_geometry``).

    ``pub``: the formatted partner rows (``value`` text, empty unless ``ok``); ``areas``: one
    row per buurt with ``buurt_code`` and ``geometry_wkt``. Empty when no buurt has an outline
    (then the report offers no hot-spot map)."""
    outlines = _outlines(areas)
    if outlines.empty:
        return pd.DataFrame(columns=HOTSPOT_COLUMNS)
    codes = outlines["buurt_code"].to_numpy()
    buurt = pub[pub["level"] == "buurt"]
    every = sorted(set(buurt["area_code"].astype(str)) | set(areas["buurt_code"].astype(str)))
    cache: dict[tuple[str, ...], sp.csr_matrix] = {}
    # each buurt's position among the outlined ones (-1: no outline), the same every year
    at = {c: i for i, c in enumerate(codes)}
    pos = np.array([at.get(c, -1) for c in every])
    inside = pos >= 0
    parts: list[pd.DataFrame] = []
    for indicator in hotspot_indicators(pub, phenomena):
        rows = buurt[buurt["indicator"] == indicator]
        for position, (year, g) in enumerate(rows.groupby("year", sort=True)):
            status = dict(zip(g["area_code"].astype(str), g["status"], strict=True))
            value = dict(zip(g["area_code"].astype(str), g["value"], strict=True))
            # published means status ok with a value (a formatted ok cell is never empty)
            take = np.array([status.get(c) == "ok" and value[c] != "" for c in codes], dtype=bool)
            idx = np.flatnonzero(take)
            z = np.full(len(codes), np.nan)
            moran = np.full(len(codes), "", dtype=object)
            if len(idx) >= MIN_UNITS:
                v = np.array([float(value[c]) for c in codes[idx]])
                key = tuple(codes[idx])
                if key not in cache:
                    # at most n - 2 neighbours: a neighbourhood of every unit has no Gi*
                    k = max(0, min(settings.knn, len(idx) - 2))
                    cache[key], _ = spatial_weights(
                        outlines["cx"].to_numpy()[idx],
                        outlines["cy"].to_numpy()[idx],
                        k,
                        list(outlines["wkt"].to_numpy()[idx]),
                    )
                w = cache[key]
                z[idx] = getis_ord_gi_star(v, w)
                moran[idx] = _moran_labels(v, w, settings, seed=settings.seed + position)
            left = {
                c: ("" if t else (status.get(c) or MISSING))
                for c, t in zip(codes, take, strict=True)
            }
            frame = pd.DataFrame(
                {
                    "area_code": every,
                    "year": int(str(year)),
                    "indicator": indicator,
                    "gi_z": np.nan,
                    "moran": "",
                    "left_out": [left.get(c, NO_GEOMETRY) for c in every],
                }
            )
            frame.loc[inside, "gi_z"] = z[pos[inside]]
            frame.loc[inside, "moran"] = moran[pos[inside]]
            if len(idx) < MIN_UNITS:  # nothing computed: every buurt says why
                frame.loc[frame["left_out"] == "", "left_out"] = "too_few"
            parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=HOTSPOT_COLUMNS)
    return pd.concat(parts, ignore_index=True)[HOTSPOT_COLUMNS]


def _moran_labels(
    v: np.ndarray, w: sp.csr_matrix, settings: ModelSettings, *, seed: int
) -> np.ndarray:
    """The local-Moran quadrant where significant at the false discovery rate, else ``ns``."""
    m = local_moran(v, w, permutations=settings.permutations, seed=seed)
    if settings.permutations <= 0 or len(v) <= 2:
        return np.full(len(v), NOT_SIGNIFICANT, dtype=object)
    p = m.normal_p() if settings.hotspot_inference == "normal" else m.p
    reject, _ = benjamini_hochberg(p, settings.fdr_alpha)
    return np.where(reject, m.labels, NOT_SIGNIFICANT).astype(object)


def cut_hotspots(hotspots: pd.DataFrame, gemeenten: Sequence[str]) -> pd.DataFrame:
    """The rows of the buurten inside ``gemeenten`` (a CBS buurt code carries its gemeente's
    four digits), unchanged: a package shows the national statistic of its buurten."""
    digits = {g[2:6] for g in gemeenten}
    return hotspots[hotspots["area_code"].astype(str).str.slice(2, 6).isin(digits).to_numpy()]
