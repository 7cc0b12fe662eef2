"""Hot-spot maps of the published values in the partner report (issue 17, item 4).

References independent of the code under test: esda's ``G_Local(star=True)`` and
``Moran_Local`` on libpysal's own queen contiguity of the published buurten' outlines (built
from the polygons by libpysal, not by zicht), over the published values only; the buurten left
out are listed by hand. The outcome test runs disclosure control on restricted cells twice,
with two suppressed buurten's hidden counts swapped, and compares the report's hot-spot data;
the same swap changes esda's Gi* of the unsuppressed values, so the test can fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from zicht.features.settings import DisclosureSettings, IndicatorSpec, ModelSettings
from zicht.jobs.export.hotspots_published import cut_hotspots, published_hotspots
from zicht.jobs.export.report import build_report_html, report_data

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
SIDE = 6  # a SIDE x SIDE grid of square buurten, 1 km each
SQ = "POLYGON (({x} {y}, {r} {y}, {r} {t}, {x} {t}, {x} {y}))"
SETTINGS = ModelSettings()
IND = "drugs.incidents_per_1000"


def code(i: int) -> str:
    # gemeente 0001 for the left half of the grid, 0002 for the right half; one wijk each
    col = i % SIDE
    g = 1 if col < SIDE // 2 else 2
    return f"BU{g:04d}01{i:02d}"


def grid_areas(*, without_outline: tuple[int, ...] = ()) -> pd.DataFrame:
    rows = []
    for i in range(SIDE * SIDE):
        x, y = 150000 + 1000 * (i % SIDE), 460000 + 1000 * (i // SIDE)
        rows.append(
            {
                "buurt_code": code(i),
                "buurt_name": f"Buurt {i}",
                "wijk_code": "WK" + code(i)[2:8],
                "gemeente_code": "GM" + code(i)[2:6],
                "x": x + 500.0,
                "y": y + 500.0,
                "land_area_ha": 100.0,
                "geometry_wkt": None
                if i in without_outline
                else SQ.format(x=x, y=y, r=x + 1000, t=y + 1000),
            }
        )
    return pd.DataFrame(rows)


# by hand: which buurten are left out of the computation, and why
SUPPRESSED = (7, 22)
NOT_APPLICABLE = (14,)
NOT_COVERED = (29,)  # no row at all for the indicator and year
NO_OUTLINE = (33,)  # a published value, but no outline: no public neighbours


def grid_pub(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Published buurt rates of two years (a planted hot block in the lower left) and the
    values as published, by buurt index (NaN where not published)."""
    rng = np.random.default_rng(seed)
    rows = []
    values = np.full((2, SIDE * SIDE), np.nan)
    for y_pos, year in enumerate((2023, 2024)):
        for i in range(SIDE * SIDE):
            if i in NOT_COVERED:
                continue
            hot = (i % SIDE) < 3 and (i // SIDE) < 3
            v = round(float(rng.gamma(2.0, 3.0) + (25.0 if hot else 0.0)), 1)
            if i in SUPPRESSED:
                rows.append(("buurt", code(i), f"Buurt {i}", year, IND, "", "suppressed"))
            elif i in NOT_APPLICABLE:
                rows.append(("buurt", code(i), f"Buurt {i}", year, IND, "", "not_applicable"))
            else:
                rows.append(("buurt", code(i), f"Buurt {i}", year, IND, f"{v:.1f}", "ok"))
                values[y_pos, i] = v
        rows.append(("gemeente", "GM0001", "Een", year, IND, "7.5", "ok"))
    return pd.DataFrame(rows, columns=COLUMNS), values


def test_gi_star_of_the_published_values_equals_esda() -> None:
    import shapely
    from esda.getisord import G_Local
    from esda.moran import Moran_Local
    from libpysal.weights import Queen

    seed = 20261201
    print("seed", seed)
    pub, values = grid_pub(seed)
    areas = grid_areas(without_outline=NO_OUTLINE)
    hot = published_hotspots(pub, areas, phenomena=["drugs", "geweld"], settings=SETTINGS)

    left_out = {code(i): "suppressed" for i in SUPPRESSED}
    left_out |= {code(i): "not_applicable" for i in NOT_APPLICABLE}
    left_out |= {code(i): "not_covered" for i in NOT_COVERED}
    left_out |= {code(i): "no_geometry" for i in NO_OUTLINE}
    taking = [i for i in range(SIDE * SIDE) if code(i) not in left_out]
    assert set(hot["indicator"]) == {IND}  # geweld has no rate in the table: no map
    for y_pos, year in enumerate((2023, 2024)):
        got = hot[hot["year"] == year].set_index("area_code")
        assert len(got) == SIDE * SIDE
        assert {c: r for c, r in got["left_out"].items() if r} == left_out
        assert got.loc[list(left_out), "gi_z"].isna().all()
        # libpysal's queen contiguity of the published buurten' polygons only
        polys = [shapely.from_wkt(areas.loc[i, "geometry_wkt"]) for i in taking]
        w = Queen.from_iterable(polys)
        assert not w.islands  # the grid leaves no published buurt without a neighbour
        v = values[y_pos, taking]
        ref = G_Local(v, w, transform="B", star=True, permutations=0)
        z = got.loc[[code(i) for i in taking], "gi_z"].to_numpy(dtype=float)
        np.testing.assert_allclose(z, ref.Zs, rtol=1e-10, atol=1e-10)
        assert z[0] > 2.58  # the planted block is a hot spot
        # a quadrant is shown only where significant; where shown it is esda's
        moran = Moran_Local(v, w, transformation="r", permutations=0)
        quad = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}
        shown = got.loc[[code(i) for i in taking], "moran"].to_numpy()
        assert set(shown) <= {"HH", "LH", "LL", "HL", "ns"} and "HH" in set(shown)
        for label, q in zip(shown, moran.q, strict=True):
            assert label in ("ns", quad[int(q)])


def test_no_outlines_no_hotspot_maps() -> None:
    pub, _ = grid_pub(3)
    areas = grid_areas(without_outline=tuple(range(SIDE * SIDE)))
    hot = published_hotspots(pub, areas, phenomena=["drugs"], settings=SETTINGS)
    assert hot.empty
    page = build_report_html(
        pub, areas, phenomena={"drugs": "Drugs"}, report={"audit": {"passed": True}},
        hotspots=hot,
    )  # fmt: skip
    assert 'id="sel-map"' not in page
    assert "staan niet in dit rapport" in page


def test_a_package_shows_the_national_statistic_of_its_buurten() -> None:
    pub, _ = grid_pub(5)
    hot = published_hotspots(pub, grid_areas(), phenomena=["drugs"], settings=SETTINGS)
    mine = cut_hotspots(hot, ["GM0001"])
    # independently: the left half of the grid is gemeente 0001
    left_half = {code(i) for i in range(SIDE * SIDE) if i % SIDE < SIDE // 2}
    assert set(mine["area_code"]) == left_half
    assert mine.equals(hot[hot["area_code"].isin(left_half)])


# --------------------------------------------------------------------------- outcome


SPECS = [
    IndicatorSpec("x.incidents", "x", "count", "d"),
    IndicatorSpec("context.inhabitants", "", "count", "d"),
    IndicatorSpec("x.incidents_per_1000", "x", "rate", "d", "x.incidents", "context.inhabitants"),
]


def restricted_cells(hidden: tuple[int, int]) -> list[tuple[str, str, int, str, float | None, str]]:
    """Buurt, wijk and gemeente cells of ``x`` before disclosure control, the grid's two
    gemeenten (one wijk each). Buurten 7 and 8 (both in gemeente 0001, 800 inhabitants each)
    hold ``hidden`` incidents, below the minimum of 10: they are suppressed, and swapping them
    changes no total. Buurt 14 has no inhabitants (its rate is not applicable)."""
    rng = np.random.default_rng(11)
    n = SIDE * SIDE
    incidents = rng.integers(12, 80, n).astype(float)
    inhabitants = rng.integers(800, 3000, n).astype(float)
    incidents[7], incidents[8] = hidden
    inhabitants[7] = inhabitants[8] = 800.0
    incidents[14], inhabitants[14] = 0.0, 0.0
    rows: list[tuple[str, str, int, str, float | None, str]] = []

    def add(level: str, area: str, inc: float, inh: float) -> None:
        inc, inh = float(inc), float(inh)  # plain floats for Spark's DoubleType
        rows.append((level, area, 2024, "x.incidents", inc, "ok"))
        rows.append((level, area, 2024, "context.inhabitants", inh, "ok"))
        rate = (1000.0 * inc / inh, "ok") if inh else (None, "not_applicable")
        rows.append((level, area, 2024, "x.incidents_per_1000", *rate))

    for i in range(n):
        add("buurt", code(i), incidents[i], inhabitants[i])
    for g in ("0001", "0002"):
        members = [i for i in range(n) if code(i)[2:6] == g]
        inc, inh = incidents[members].sum(), inhabitants[members].sum()
        add("wijk", f"WK{g}01", inc, inh)
        add("gemeente", f"GM{g}", inc, inh)
    return rows


@pytest.mark.spark
def test_a_suppressed_cells_hidden_value_leaves_the_hotspot_data_unchanged(
    spark: SparkSession,
) -> None:
    import shapely
    from esda.getisord import G_Local
    from libpysal.weights import Queen

    from zicht.features.link import area_hierarchy
    from zicht.jobs.export.stage import partner_table
    from zicht.models.disclosure import apply_disclosure, published_from_audit

    areas = grid_areas()
    areas["wijk_name"] = areas["wijk_code"]
    areas["gemeente_name"] = areas["gemeente_code"]
    areas_df = spark.createDataFrame(areas.drop(columns=["geometry_wkt"]))
    schema = (
        "level string, area_code string, year int, indicator string, value double, status string"
    )
    disclosure = DisclosureSettings()

    def report_hotspots(hidden: tuple[int, int]) -> tuple[pd.DataFrame, object]:
        cells = spark.createDataFrame(restricted_cells(hidden), schema)
        _, audit = apply_disclosure(
            cells, area_hierarchy(areas_df), specs=SPECS, settings=disclosure
        )
        pub = partner_table(published_from_audit(audit, settings=disclosure), areas_df, SPECS)
        hot = published_hotspots(pub, areas, phenomena=["x"], settings=SETTINGS)
        data = report_data(pub, areas, phenomena={"x": "X"}, report={}, hotspots=hot)
        return pub, data["hotspots"]

    pub_a, hot_a = report_hotspots((1, 9))
    pub_b, hot_b = report_hotspots((9, 1))
    buurt = pub_a[(pub_a["level"] == "buurt") & (pub_a["indicator"] == "x.incidents_per_1000")]
    status = dict(zip(buurt["area_code"], buurt["status"], strict=True))
    assert status[code(7)] == status[code(8)] == "suppressed"
    assert status[code(14)] == "not_applicable"
    assert pub_a.equals(pub_b)  # the same partner table: the swap is invisible to a partner
    assert hot_a and json.dumps(hot_a, sort_keys=True) == json.dumps(hot_b, sort_keys=True)
    z = hot_a["x.incidents_per_1000"]["2024"]["z"]  # type: ignore[index]
    k7 = sorted(areas["buurt_code"]).index(code(7))
    assert z[k7] == "x"  # left out, shown hatched

    # the same swap moves Gi* of the unsuppressed values (what the analysts see): with those,
    # the report would carry information about the hidden counts
    def raw_gi(hidden: tuple[int, int]) -> np.ndarray:
        raw = pd.DataFrame(restricted_cells(hidden), columns=COLUMNS[:2] + COLUMNS[3:])
        raw = raw[(raw["level"] == "buurt") & (raw["indicator"] == "x.incidents_per_1000")]
        raw = raw[raw["status"] == "ok"].sort_values("area_code")
        polys = [
            shapely.from_wkt(areas.set_index("buurt_code").loc[c, "geometry_wkt"])
            for c in raw["area_code"]
        ]
        w = Queen.from_iterable(polys)
        return np.asarray(G_Local(raw["value"].to_numpy(float), w, transform="B", star=True,
                                  permutations=0).Zs)  # fmt: skip

    assert np.abs(raw_gi((1, 9)) - raw_gi((9, 1))).max() > 0.01


# --------------------------------------------------------------------------- the page


def hot_page() -> str:
    pub, _ = grid_pub(20261201)
    areas = grid_areas(without_outline=NO_OUTLINE)
    hot = published_hotspots(pub, areas, phenomena=["drugs"], settings=SETTINGS)
    return build_report_html(
        pub, areas, phenomena={"drugs": "Drugs"}, report={"audit": {"passed": True}},
        hotspots=hot,
    )  # fmt: skip


def test_the_page_offers_the_hotspot_maps_with_the_dutch_note() -> None:
    text = hot_page()
    assert 'id="sel-map"' in text and "hotspots (Gi*)" in text and "lokale Moran" in text
    assert "alleen berekend op de gepubliceerde waarden" in text
    data = json.loads(
        re.search(r'id="zicht-data">(.*?)</script>', text, re.S).group(1)  # type: ignore[union-attr]
    )
    z = data["hotspots"][IND]["2024"]["z"]
    codes = [a["code"] for a in data["areas"]["buurt"]]
    assert z[codes.index(code(SUPPRESSED[0]))] == "x"
    assert z[codes.index(code(NO_OUTLINE[0]))] == "g"
    assert isinstance(z[codes.index(code(0))], float) and z[codes.index(code(0))] > 2.58


@pytest.mark.heavy
def test_hotspot_maps_in_chromium_have_legends(tmp_path: Path) -> None:
    from test_report import CHROMIUM, ON_CI, _legend_entries, _map, dom

    if CHROMIUM is None:
        if ON_CI:
            pytest.fail("CI=true and chromium is not installed: the report's browser test must run")
        pytest.skip("chromium is not installed")
    path = tmp_path / "report.html"
    path.write_text(hot_page(), encoding="utf-8")

    doc, console = dom(CHROMIUM, path, "map=gi")
    assert console == [], console
    attrs, fills = _map(doc)
    assert attrs["data-map"] == "gi" and attrs["data-level"] == "buurt"
    assert fills[code(0)] == "#b2182b"  # the planted block: z >= 2.58
    assert fills[code(SUPPRESSED[0])] == "url(#hatch)"  # left out, hatched
    assert fills[code(NOT_APPLICABLE[0])] == "#e8e8e8"  # left out, grey
    assert _legend_entries(doc) == 5  # the five z bands
    legend = re.search(r'<div class="legend" id="legend">(.*?)</div>\s*<div>', doc, re.S)
    assert legend and "geheim (onderdrukt): niet meegerekend" in legend.group(1)
    # a buurt without an outline is drawn as a tile around its centroid: grey, and why
    assert fills[code(NO_OUTLINE[0])] == "#e8e8e8"
    assert "geen kaartvorm: niet meegerekend" in legend.group(1)
    assert re.search(r'<p id="hotnote" class="note">', doc)  # the Dutch note is shown

    doc, console = dom(CHROMIUM, path, "map=moran")
    assert console == [], console
    attrs, fills = _map(doc)
    assert attrs["data-map"] == "moran"
    # the page colours what the data says: every HH buurt of 2024 red, every ns one neutral
    hot = published_hotspots(
        grid_pub(20261201)[0], grid_areas(without_outline=NO_OUTLINE), phenomena=["drugs"],
        settings=SETTINGS,
    )  # fmt: skip
    moran = hot[hot["year"] == 2024].set_index("area_code")["moran"]
    assert (moran == "HH").any()
    for c, label in moran.items():
        if label in ("HH", "ns"):
            assert fills[c] == {"HH": "#b2182b", "ns": "#f7f7f7"}[label], c
    assert _legend_entries(doc) == 5  # HH, LL, HL, LH, not significant

    doc, console = dom(CHROMIUM, path)  # the values map by default, the note hidden
    attrs, _ = _map(doc)
    assert attrs["data-map"] == "values"
    assert re.search(r'<p id="hotnote" class="note" hidden', doc)
