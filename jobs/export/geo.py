"""``geo/<level>.geojson``: the published values with the areas' outlines, for QGIS.

RFC 7946 GeoJSON: WGS84 longitude/latitude (reprojected from RD New, EPSG:28992, with pyproj),
six decimals (about 0.1 m), exterior rings counter-clockwise. One feature per area and year (as
the workbook's rows), properties ``gebiedscode``, ``naam``, ``jaar`` and one number per map
indicator (:func:`map_indicators`: the report's indicators and the population context); a cell that is not published is null (why is in the CSV and the workbook: the CBS
symbol would turn a numeric field into text in QGIS). Written only where the areas carry
geometry: a buurt with ``geometry_wkt``, a wijk or gemeente whose buurten all have one (their
union). The properties are the formatted partner rows, already through the leak guard's
structural check, and the file's text goes through its content scan like every other file.
Areas are ~14k buurten nationally, drawn on the driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from zicht.jobs.export.workbook import wide_table
from zicht.jobs.export.writers import utf8_text

RD_NEW, WGS84 = "EPSG:28992", "EPSG:4326"
DECIMALS = 6


def area_geometries(areas: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per level, area code -> its GeoJSON geometry text in WGS84; empty when no buurt has an
    outline. ``areas``: one row per buurt with ``buurt_code``, ``wijk_code``,
    ``gemeente_code`` and ``geometry_wkt``."""
    import shapely
    from pyproj import Transformer

    if "geometry_wkt" not in areas.columns:
        return {}
    wkt = areas["geometry_wkt"]
    has = wkt.map(lambda w: isinstance(w, str) and bool(w.strip())).to_numpy(dtype=bool)
    if not has.any():
        return {}
    geoms = np.full(len(areas), None, dtype=object)
    geoms[has] = shapely.from_wkt(wkt[has].to_numpy())
    to_wgs84 = Transformer.from_crs(RD_NEW, WGS84, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), DECIMALS)

    def as_geojson(parts: np.ndarray) -> np.ndarray:
        # the right-hand rule of RFC 7946: exterior rings counter-clockwise, holes clockwise
        oriented = shapely.orient_polygons(shapely.make_valid(parts), exterior_cw=False)
        return shapely.to_geojson(shapely.transform(oriented, project))

    out: dict[str, dict[str, str]] = {}
    codes = areas["buurt_code"].to_numpy()
    out["buurt"] = dict(zip(codes[has], as_geojson(geoms[has]), strict=True))
    for level in ("wijk", "gemeente"):
        key = areas[f"{level}_code"].to_numpy()
        whole = pd.Series(has).groupby(key).all()  # every buurt of the area has an outline
        complete = [c for c in whole.index if whole[c]]
        if not complete:
            continue
        unions = [shapely.union_all(geoms[key == c]) for c in complete]
        out[level] = dict(zip(complete, as_geojson(np.array(unions, dtype=object)), strict=True))
    return out


# the context indicators a map file carries beside the report's indicators of each phenomenon
MAP_CONTEXT = ("context.inhabitants", "context.addresses")


def map_indicators(indicators: Sequence[str], phenomena: Sequence[str]) -> list[str]:
    """The indicators of the map files: those the report offers per phenomenon (rates,
    counts, shares, the index) and the population context, in catalogue order. The full set
    is in the CSV tables and the workbook; every indicator in a map file would make the
    national buurt file a few hundred megabytes, too large for QGIS to open comfortably."""
    from zicht.jobs.export.report import REPORT_INDICATORS

    wanted = {f"{p}.{t}" for p in phenomena for t in REPORT_INDICATORS} | set(MAP_CONTEXT)
    return [i for i in indicators if i in wanted]


def render_geojson(
    pub: pd.DataFrame, geometries: Mapping[str, str], *, indicators: list[str]
) -> tuple[bytes, int]:
    """One level's file and its number of features; ``pub``: that level's formatted partner
    rows; ``indicators``: the properties, in order; areas without a geometry are left out."""
    keep = pub["area_code"].isin(list(geometries)) & pub["indicator"].isin(indicators)
    wide = wide_table(pub[keep], indicators=indicators)
    names = list(wide.columns)
    parts: list[str] = []
    for row in wide.itertuples(index=False, name=None):
        props = {
            n: (x if isinstance(x, float) and x == x else None) if i > 2 else x
            for i, (n, x) in enumerate(zip(names, row, strict=True))
        }
        props["jaar"] = int(row[2])
        parts.append(
            '{"type":"Feature","geometry":'
            + geometries[row[0]]
            + ',"properties":'
            + json.dumps(props, ensure_ascii=False, allow_nan=False)
            + "}"
        )
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(parts) + "\n]}\n"
    return text.encode("utf-8"), len(parts)


class GeoJsonWriter:
    format = "geojson"

    def text(self, data: bytes) -> Iterator[str]:
        return utf8_text(data)


WRITER = GeoJsonWriter()
