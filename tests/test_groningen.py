"""Real data: police bicycle thefts in Groningen, per buurt, against an independent count.

Converts one year of ``nl_groningen_bike_theft`` with ``tools/groningen_to_contract.py``, runs
the whole pipeline with ``conf/examples/groningen_fietsdiefstal.yaml`` and checks that the
restricted per-buurt ``fietsdiefstal.incidents`` equal a point-in-polygon count done here with
shapely on the raw police file and the CBS polygons (transformed to RD New here, not by the
tool), point by point, without the STRtree or Spark.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import Transformer

from zicht.jobs import run as run_job

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "conf" / "examples" / "groningen_fietsdiefstal.yaml"
YEAR = 2017


def _tool():
    spec = importlib.util.spec_from_file_location(
        "groningen_to_contract", REPO / "tools" / "groningen_to_contract.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def independent_counts(source: Path) -> pd.Series:
    """Thefts of YEAR per CBS buurt: raw police points in the RD buurt polygons."""
    raw = pd.read_csv(source / "fietsdata.csv", sep=";", encoding="latin-1", dtype=str)
    begin = pd.to_datetime(
        raw["Begin-pleegdatum/tijd"].str.split(" ").str[0], format="%d-%m-%Y", errors="coerce"
    )
    end = pd.to_datetime(
        raw["Eind-pleegdatum/tijd"].str.split(" ").str[0], format="%d-%m-%Y", errors="coerce"
    )
    raw = raw[begin.fillna(end).dt.year == YEAR]
    buurt = pd.read_csv(source / "cbs_buurt2017_groningen.csv", dtype={"BU_CODE": str})
    rd = Transformer.from_crs("EPSG:4326", "EPSG:28992", always_xy=True)
    polygons = []
    for code, wkt in zip(buurt["BU_CODE"], buurt["geometry"], strict=True):
        geom = shapely.ops.transform(rd.transform, shapely.from_wkt(wkt))
        polygons.append((code, geom))
    counts: dict[str, int] = {}
    for x, y in zip(raw["X"].astype(float), raw["Y"].astype(float), strict=True):
        point = shapely.Point(x, y)
        hits = sorted(code for code, g in polygons if g.covers(point))
        if hits:  # a point on a shared edge: the smallest code, as the contract's rule
            counts[hits[0]] = counts.get(hits[0], 0) + 1
    return pd.Series(counts, dtype=float).reindex(buurt["BU_CODE"], fill_value=0.0)


def test_groningen_fietsdiefstal_per_buurt(spark, real_data: Path, tmp_path: Path) -> None:
    import shapely.ops  # noqa: F401  (used in independent_counts)

    source = real_data / "nl_groningen_bike_theft"
    tool = _tool()
    assert (
        tool.main(["--source", str(source), "--out", str(tmp_path / "in"), "--years", "2017"]) == 0
    )
    incidents = pd.read_csv(tmp_path / "in" / "incidents.csv", dtype=str)
    raw_ids = pd.read_csv(source / "fietsdata.csv", sep=";", encoding="latin-1", dtype=str)[
        "Incident Identificatie"
    ]
    # pseudonymised: no raw police number is in the contract input
    assert incidents["incident_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert not set(incidents["incident_id"]) & set(raw_ids)

    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = run_job.main(
            ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
            + ["--conf", str(EXAMPLE)]
        )
    finally:
        mp.undo()
    assert code == 0

    expected = independent_counts(source)
    ind = pq.read_table(tmp_path / "out" / "restricted" / "indicators.parquet").to_pandas()
    got = (
        ind[
            (ind["level"] == "buurt")
            & (ind["indicator"] == "fietsdiefstal.incidents")
            & (ind["year"] == YEAR)
        ]
        .set_index("area_code")["value"]
        .reindex(expected.index)
    )
    print(f"Groningen {YEAR}: {int(expected.sum())} thefts in {int((expected > 0).sum())} buurten")
    pd.testing.assert_series_equal(got, expected, check_names=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rejected = manifest["inputs"]["incidents"]["rows_rejected"]
    assert manifest["inputs"]["incidents"]["rows_used"] == int(expected.sum())
    assert rejected == len(incidents) - int(expected.sum())
    print(f"indicator stage {manifest['timings_s']['indicators']} s; rejected {rejected}")
