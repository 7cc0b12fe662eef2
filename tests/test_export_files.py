"""The partner file formats and how the leak guard reads them back (issue 17, items 1 and 3).

Expectations come from outside the writers: the csv module for the CSV dialects, pyproj's
published reference point (the RD New origin at Amersfoort) and a shoelace sum for the
GeoJSON, Python's zipfile for the workbook, and a plain ``export_tokens`` over the whole text
for the streaming tokeniser.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from zicht.features.export import export_tokens, tokens_of
from zicht.jobs import catalog
from zicht.jobs.export import writers
from zicht.jobs.export.csvfile import render_csv
from zicht.jobs.export.geo import area_geometries, render_geojson
from zicht.jobs.export.guard import scan_files
from zicht.jobs.export.workbook import write_xlsx
from zicht.jobs.export.writers import ExportFile, writer_for

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
PSEUDONYM = "5e0c9b1f7a3d2e48"


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("buurt", "BU00010101", "Súdwest-Fryslân", 2024, "drugs.incidents", "12", "ok"),
            ("buurt", "BU00010101", "Súdwest-Fryslân", 2024, "drugs.rate", "4.5", "ok"),
            ("buurt", "BU00010102", "Oost; Noord", 2024, "drugs.incidents", "", "suppressed"),
            ("buurt", "BU00010102", "Oost; Noord", 2024, "drugs.rate", "-0.25", "ok"),
        ],
        columns=COLUMNS,
    )


# --------------------------------------------------------------------------- tokens


def test_streamed_tokens_equal_the_tokens_of_the_whole_text() -> None:
    seed = 20261201
    rng = random.Random(seed)
    print("seed", seed)
    alphabet = "abcdef0123456789-_:./=+ ,;\n<>\"'é"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert tokens_of(pieces) == export_tokens(text), (text, cuts)


def test_a_pseudonym_cut_by_a_chunk_boundary_is_found_whole() -> None:
    pad = "x," * (writers.CHUNK // 2 - 4)  # the pseudonym straddles the first chunk boundary
    data = (pad + PSEUDONYM + ",1\r\n").encode()
    assert len(pad) < writers.CHUNK < len(pad) + len(PSEUDONYM)
    assert PSEUDONYM in tokens_of(writer_for("csv").text(data))


def test_every_partner_format_of_the_catalogue_has_a_writer() -> None:
    formats = {d.format for d in catalog.partner_datasets()} - {"folder"}
    assert formats == {"csv", "json", "xlsx", "html", "geojson"}
    for f in formats:
        assert writer_for(f).format == f
    with pytest.raises(KeyError, match="leak guard"):
        writer_for("parquet")


# --------------------------------------------------------------------------- CSV


def _read(data: bytes, delimiter: str) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the UTF-8 byte-order mark Excel looks for
    text = data.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def test_csv_standard_dialect_with_bom() -> None:
    back = _read(render_csv(rows()), ",")
    assert [r["area_name"] for r in back] == ["Súdwest-Fryslân"] * 2 + ["Oost; Noord"] * 2
    assert [r["value"] for r in back] == ["12", "4.5", "", "-0.25"]
    assert list(back[0]) == COLUMNS  # the mark is not part of the first column's name


def test_csv_nl_dialect_semicolon_and_decimal_comma() -> None:
    data = render_csv(rows(), dialect="nl")
    back = _read(data, ";")
    assert [r["value"] for r in back] == ["12", "4,5", "", "-0,25"]
    assert [r["area_name"] for r in back][2] == "Oost; Noord"  # quoted, so still one field
    assert [r["year"] for r in back] == ["2024"] * 4
    assert b'"Oost; Noord"' in data


# --------------------------------------------------------------------------- GeoJSON

# pyproj's and RDNAPTRANS' reference: the RD New origin (155000, 463000) is the Onze Lieve
# Vrouwetoren in Amersfoort, 52.15517440 N 5.38720621 E
ORIGIN = (155000.0, 463000.0)
ORIGIN_WGS84 = (5.38720621, 52.15517440)


def _square(x: float, y: float, half: float) -> str:
    return (
        f"POLYGON (({x - half} {y - half}, {x - half} {y + half}, {x + half} {y + half}, "
        f"{x + half} {y - half}, {x - half} {y - half}))"  # clockwise on purpose
    )


def geo_areas() -> pd.DataFrame:
    x, y = ORIGIN
    return pd.DataFrame(
        {
            "buurt_code": ["BU00010101", "BU00010102", "BU00010201"],
            "wijk_code": ["WK000101", "WK000101", "WK000102"],
            "gemeente_code": ["GM0001"] * 3,
            "geometry_wkt": [_square(x, y, 100), _square(x + 200, y, 100), None],
        }
    )


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False)) / 2


def test_geojson_is_wgs84_counter_clockwise_and_only_where_geometry_is_complete() -> None:
    geoms = area_geometries(geo_areas())
    assert set(geoms["buurt"]) == {"BU00010101", "BU00010102"}  # the third has no outline
    assert set(geoms["wijk"]) == {"WK000101"}  # WK000102's only buurt has none
    assert "gemeente" not in geoms  # GM0001 has a buurt without an outline
    data, n = render_geojson(rows(), geoms["buurt"], indicators=["drugs.incidents", "drugs.rate"])
    doc = json.loads(data)
    assert doc["type"] == "FeatureCollection" and n == len(doc["features"]) == 2
    first = next(f for f in doc["features"] if f["properties"]["gebiedscode"] == "BU00010101")
    ring = first["geometry"]["coordinates"][0]
    lon = sum(p[0] for p in ring[:-1]) / 4
    lat = sum(p[1] for p in ring[:-1]) / 4
    assert lon == pytest.approx(ORIGIN_WGS84[0], abs=2e-5)
    assert lat == pytest.approx(ORIGIN_WGS84[1], abs=2e-5)
    assert _signed_area(ring) > 0  # RFC 7946: exterior rings counter-clockwise
    assert all(len(str(c).split(".")[-1]) <= 6 for p in ring for c in p)
    props = {f["properties"]["gebiedscode"]: f["properties"] for f in doc["features"]}
    assert props["BU00010101"] == {
        "gebiedscode": "BU00010101",
        "naam": "Súdwest-Fryslân",
        "jaar": 2024,
        "drugs.incidents": 12.0,
        "drugs.rate": 4.5,
    }
    assert props["BU00010102"]["drugs.incidents"] is None  # suppressed: no number
    assert props["BU00010102"]["drugs.rate"] == -0.25
    wijk = json.loads(geoms["wijk"]["WK000101"])  # the union of the two adjacent squares
    assert wijk["type"] == "Polygon" and len(wijk["coordinates"]) == 1


def test_no_geometry_no_geojson() -> None:
    assert area_geometries(geo_areas().assign(geometry_wkt=None)) == {}
    assert area_geometries(geo_areas().drop(columns="geometry_wkt")) == {}


# --------------------------------------------------------------------------- leak guard


@pytest.mark.spark
def test_guard_reads_every_format_back(spark: SparkSession, tmp_path: Path) -> None:
    pd.DataFrame({"person_id": [PSEUDONYM, "0123456789abcdef"]}).to_parquet(tmp_path / "p.parquet")
    tables = {"persons": spark.read.parquet(str(tmp_path / "p.parquet"))}
    codebook = pd.DataFrame(
        {
            "indicator": ["drugs.incidents", "drugs.rate"],
            "phenomenon": ["drugs"] * 2,
            "definition": ["d", "d"],
            "unit": ["count", "rate"],
            "numerator": ["", ""],
            "denominator": ["", ""],
            "sources": ["incidents"] * 2,
            "caveats": ["", ""],
        }
    )
    report = {"parameters": {"min_count": 10}}
    leaky = rows().assign(area_name=PSEUDONYM)
    geoms = area_geometries(geo_areas())["buurt"]

    def files(pub: pd.DataFrame) -> list[ExportFile]:
        geo, n = render_geojson(pub, geoms, indicators=list(codebook["indicator"]))
        return [
            ExportFile("indicators_buurt", render_csv(pub, dialect="nl"), len(pub)),
            ExportFile("workbook", write_xlsx(pub, codebook, report=report), len(pub)),
            ExportFile("geo", geo, n, {"level": "buurt"}),
            ExportFile("partner_geo", geo, n, {"partner": "riec-x", "level": "buurt"}),
        ]

    assert scan_files(spark, files(rows()), tables) == []
    problems = scan_files(spark, files(leaky), tables)
    assert [p.split()[0] for p in problems] == [
        "export/geo/buurt.geojson",
        "export/indicators.xlsx",
        "export/indicators_buurt.csv",
        "export/partners/riec-x/geo/buurt.geojson",
    ]
    assert not any(PSEUDONYM in p for p in problems)
