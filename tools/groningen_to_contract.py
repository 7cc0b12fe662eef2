"""Turn the real Groningen bicycle-theft data into a zicht contract input folder.

Reads ``../shared/data/real/nl_groningen_bike_theft/`` (see ``../shared/data/real/SOURCES.md``
section 1): ``fietsdata.csv`` (police BVH bicycle thefts 2013-2017, ';'-separated, latin-1, RD
coordinates, incident code A72), ``cbs_buurt2017_groningen.csv`` and
``cbs_wijk2017_groningen.csv`` (CBS wijk- en buurtkaart 2017 with WGS84 WKT polygons).

Writes ``OUT/areas.csv`` and ``OUT/incidents.csv`` in contract form:

- areas: one row per CBS buurt of gemeente Groningen (2017 indeling), polygons converted from
  WGS84 (EPSG:4326) to RD New (EPSG:28992) with pyproj, centroid of the RD polygon, land area
  from OPP_LAND (hectares; OPP_TOT, else the polygon area, when it is not positive), inhabitants
  from AANT_INW (CBS marks secret values with negative numbers: those become empty).
- incidents: ``incident_id`` is the sha256 of the police registration number (the raw number
  never leaves this script), ``incident_date`` the begin date of the theft (else the end date),
  ``crime_code`` the incident code as delivered (A72), ``x``/``y`` the RD point; no buurt_code
  and no address, so zicht places every theft by point-in-polygon. Street, house number and
  postcode columns are not copied.

Usage::

    python tools/groningen_to_contract.py --out DIR [--source DIR] [--years 2016 2017]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import shapely
from pyproj import Transformer

DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nl_groningen_bike_theft"
)


def to_rd(wkt_wgs84: Sequence[str]) -> list[shapely.Geometry]:
    """WGS84 lon/lat WKT polygons as RD New (EPSG:28992) geometries."""
    to_rd_new = Transformer.from_crs("EPSG:4326", "EPSG:28992", always_xy=True)
    geoms = shapely.from_wkt(list(wkt_wgs84))
    return list(
        shapely.transform(
            geoms, lambda xy: pd.DataFrame(to_rd_new.transform(xy[:, 0], xy[:, 1])).T.to_numpy()
        )
    )


def convert_areas(source: Path) -> pd.DataFrame:
    buurt = pd.read_csv(source / "cbs_buurt2017_groningen.csv", dtype={"BU_CODE": str})
    wijk = pd.read_csv(source / "cbs_wijk2017_groningen.csv", dtype={"WK_CODE": str})
    geoms = to_rd(buurt["geometry"].tolist())
    centroids = shapely.centroid(geoms)
    land = pd.to_numeric(buurt["OPP_LAND"], errors="coerce")
    total = pd.to_numeric(buurt["OPP_TOT"], errors="coerce")
    poly_ha = pd.Series(shapely.area(geoms) / 10_000.0, index=buurt.index)
    land_ha = land.where(land > 0, total.where(total > 0, poly_ha))
    inhabitants = pd.to_numeric(buurt["AANT_INW"], errors="coerce")
    out = pd.DataFrame(
        {
            "buurt_code": buurt["BU_CODE"],
            "buurt_name": buurt["BU_NAAM"],
            "wijk_code": buurt["WK_CODE"],
            "wijk_name": buurt["WK_CODE"].map(wijk.set_index("WK_CODE")["WK_NAAM"]),
            "gemeente_code": buurt["GM_CODE"],
            "gemeente_name": buurt["GM_NAAM"],
            "x": shapely.get_x(centroids),
            "y": shapely.get_y(centroids),
            "land_area_ha": land_ha.astype(float),
            "geometry_wkt": shapely.to_wkt(geoms, rounding_precision=3),
            "inhabitants": inhabitants.where(inhabitants >= 0).astype("Int64"),
        }
    )
    out["wijk_name"] = out["wijk_name"].fillna(out["wijk_code"])
    return out.sort_values("buurt_code").reset_index(drop=True)


def pseudonym(raw_id: str) -> str:
    return hashlib.sha256(raw_id.encode("utf-8")).hexdigest()


def convert_incidents(source: Path, years: Sequence[int] | None = None) -> pd.DataFrame:
    raw = pd.read_csv(
        source / "fietsdata.csv", sep=";", encoding="latin-1", dtype=str, keep_default_na=False
    )

    def day(col: str) -> pd.Series:
        return pd.to_datetime(
            raw[col].str.split(" ").str[0], format="%d-%m-%Y", errors="coerce"
        ).dt.date

    date = day("Begin-pleegdatum/tijd").fillna(day("Eind-pleegdatum/tijd"))
    out = pd.DataFrame(
        {
            "incident_id": raw["Incident Identificatie"].map(pseudonym),
            "incident_date": date,
            "crime_code": raw["Incidentsoort code"].str.strip(),
            "buurt_code": None,
            "address_id": None,
            "x": pd.to_numeric(raw["X"], errors="coerce"),
            "y": pd.to_numeric(raw["Y"], errors="coerce"),
        }
    )
    out = out[out["incident_date"].notna()]
    if years:
        out = out[pd.to_datetime(out["incident_date"]).dt.year.isin(list(years))]
    return out.reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="contract input folder to write")
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="nl_groningen_bike_theft folder")
    p.add_argument("--years", type=int, nargs="*", default=None, help="keep only these years")
    args = p.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    if not (source / "fietsdata.csv").is_file():
        print(f"groningen_to_contract: {source}/fietsdata.csv not found", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    areas = convert_areas(source)
    incidents = convert_incidents(source, args.years)
    areas.to_csv(out / "areas.csv", index=False)
    incidents.to_csv(out / "incidents.csv", index=False)
    print(f"{len(areas)} buurten and {len(incidents)} incidents written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
