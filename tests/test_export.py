"""Partner deliverables and the leak guard's content scan.

Inline partner rows and areas (hand-made, three buurten); the scan is checked against planted
pseudonyms, also inside the XLSX and the HTML page; the page is rendered in headless Chromium
when it is installed (``heavy``).
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import key
from pyspark.sql import SparkSession

from zicht.features.export import export_tokens
from zicht.jobs.export.guard import file_text, scan_export
from zicht.jobs.export.report import build_report_html
from zicht.jobs.export.workbook import wide_table, write_xlsx
from zicht.jobs.fs import FileSystem

BU = ["BU00010101", "BU00010102", "BU00010201"]
W = ["WK000101", "WK000102"]
G = "GM0001"
PSEUDONYM = "9f3c2a77d1e4b6c0"  # 16 hex characters, like the synthetic inputs' ids


def partner_rows() -> pd.DataFrame:
    """Formatted partner rows (value as text), two years; buurt 2 suppressed in 2024."""
    rows = []
    for year in (2023, 2024):
        for code, lv, name, inc, rate in (
            (BU[0], "buurt", "Centrum", "12", "4.0"),
            (BU[1], "buurt", "Haven", "", ""),
            (BU[2], "buurt", "Noord", "30", "15.2"),
            (W[0], "wijk", "Wijk 01", "25", "5.1"),
            (W[1], "wijk", "Wijk 02", "30", "15.2"),
            (G, "gemeente", "Testdam", "55" if year == 2024 else "41", "7.9"),
        ):
            st = "suppressed" if inc == "" else "ok"
            rows.append((lv, code, name, year, "drugs.incidents", inc, st))
            rows.append((lv, code, name, year, "drugs.incidents_per_1000", rate, st))
    return pd.DataFrame(
        rows, columns=["level", "area_code", "area_name", "year", "indicator", "value", "status"]
    )


def codebook() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "indicator": ["drugs.incidents", "drugs.incidents_per_1000"],
            "phenomenon": ["drugs", "drugs"],
            "definition": ["Incidents.", "Per 1000."],
            "unit": ["count", "rate"],
            "numerator": ["", "drugs.incidents"],
            "denominator": ["", "context.inhabitants"],
            "sources": ["incidents", "incidents"],
            "caveats": ["", ""],
        }
    )


def areas() -> pd.DataFrame:
    # two squares with polygons, one buurt without geometry (centroid tile)
    sq = "POLYGON (({a} 0, {b} 0, {b} 1000, {a} 1000, {a} 0))"
    return pd.DataFrame(
        {
            "buurt_code": BU,
            "buurt_name": ["Centrum", "Haven", "Noord"],
            "x": [500.0, 1500.0, 2500.0],
            "y": [500.0, 500.0, 500.0],
            "land_area_ha": [100.0, 100.0, 100.0],
            "geometry_wkt": [sq.format(a=0, b=1000), sq.format(a=1000, b=2000), None],
        }
    )


REPORT = {"parameters": {"min_count": 10}, "audit": {"passed": True}}


def test_tokens_keep_ids_and_drop_decimals() -> None:
    text = f'a,"{PSEUDONYM}",12.5,143160,x:{PSEUDONYM.upper()} <b>abc</b>'
    toks = export_tokens(text)
    assert PSEUDONYM in toks and PSEUDONYM.upper() in toks
    assert "143160" in toks  # whole numbers stay: a numeric pseudonym must not slip through
    assert "12.5" not in toks and "abc" not in toks


def test_wide_table_uses_cbs_symbols() -> None:
    wide = wide_table(
        partner_rows().query("level == 'buurt'"),
        indicators=["drugs.incidents", "drugs.incidents_per_1000"],
    )
    assert list(wide.columns) == [
        "gebiedscode",
        "naam",
        "jaar",
        "drugs.incidents",
        "drugs.incidents_per_1000",
    ]
    row = wide.set_index(["gebiedscode", "jaar"])
    assert row.loc[(BU[1], 2024), "drugs.incidents"] == "x"
    assert row.loc[(BU[2], 2024), "drugs.incidents_per_1000"] == pytest.approx(15.2)
    assert len(wide) == 3 * 2


def test_xlsx_sheets_and_values(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "indicators.xlsx"
    path.write_bytes(write_xlsx(partner_rows(), codebook(), report=REPORT))
    wb = load_workbook(path)
    assert wb.sheetnames == ["Buurten", "Wijken", "Gemeenten", "Codeboek", "Tekens", "Toelichting"]
    ws = wb["Gemeenten"]
    assert [c.value for c in ws[1]][:3] == ["gebiedscode", "naam", "jaar"]
    assert [c.value for c in ws[3]][:4] == [G, "Testdam", 2024, 55.0]
    assert ws["D3"].number_format == "0"  # a count: whole numbers
    assert ws["A1"].font.b and ws.freeze_panes == "D2"
    assert {r[0].value for r in wb["Tekens"].iter_rows(min_row=2)} >= {"x", "."}
    assert wb["Codeboek"]["D3"].value == "per 1000"


def test_report_page_is_self_contained() -> None:
    page = build_report_html(
        partner_rows(), areas(), phenomena={"drugs": "Drugshandel"}, report=REPORT
    )
    assert page.count("<use ") == 3  # two polygons and one centroid tile
    assert 'fill="url(#hatch)"' in page  # the suppressed buurt
    # the page's script is inline (issue 17: an interactive report); nothing from the network
    for external in ("<script src", "http://", "https://", "<link"):
        assert external not in page
    assert "Haven: x (geheim)" in page


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")}


@pytest.mark.spark
def test_scan_finds_planted_pseudonyms(spark: SparkSession, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    pd.DataFrame(
        {"person_id": [PSEUDONYM, "0123456789abcdef"], "birth_year": [1990, 1980]}
    ).to_parquet(inputs / "persons.parquet")
    export = tmp_path / "export"
    export.mkdir()
    rows = partner_rows()
    rows.to_csv(export / "indicators_buurt.csv", index=False)
    (export / "indicators.xlsx").write_bytes(write_xlsx(rows, codebook(), report=REPORT))
    (export / "report.html").write_text(
        build_report_html(rows, areas(), phenomena={"drugs": "D"}, report=REPORT)
    )
    tables = {"persons": spark.read.parquet(str(inputs / "persons.parquet"))}
    assert scan_export(spark, _files(export), tables) == []

    # the same pseudonym planted as an area name reaches the CSV, the XLSX and the HTML
    leaky = rows.assign(area_name=rows["area_name"].where(rows["area_code"] != BU[0], PSEUDONYM))
    leaky.to_csv(export / "indicators_buurt.csv", index=False)
    (export / "indicators.xlsx").write_bytes(write_xlsx(leaky, codebook(), report=REPORT))
    leaky_areas = areas().assign(buurt_name=["Centrum", "Haven", PSEUDONYM])
    (export / "report.html").write_text(
        build_report_html(rows, leaky_areas, phenomena={"drugs": "D"}, report=REPORT)
    )
    with zipfile.ZipFile(export / "indicators.xlsx") as z:  # stored as shared strings
        assert any(PSEUDONYM in z.read(n).decode() for n in z.namelist())
    xlsx = export / "indicators.xlsx"
    assert PSEUDONYM in file_text(xlsx.name, xlsx.read_bytes())
    problems = scan_export(spark, _files(export), tables)
    assert sorted(p.split()[0] for p in problems) == [
        "export/indicators.xlsx",
        "export/indicators_buurt.csv",
        "export/report.html",
    ]
    assert not any(PSEUDONYM in p for p in problems)  # the message never repeats the value

    # the keyed store holds the pseudonym as its 64-bit key only (computed here by the
    # independent xxhash package): the guard finds it by hashing the tokens
    keyed = {
        "persons": spark.createDataFrame([(key(PSEUDONYM),), (key("x" * 16),)], "person_id long")
    }
    problems = scan_export(spark, _files(export), keyed, {}, {"persons": ("person_id",)})
    assert sorted(p.split()[0] for p in problems) == [
        "export/indicators.xlsx",
        "export/indicators_buurt.csv",
        "export/report.html",
    ]
    clean = {"persons": spark.createDataFrame([(key("x" * 16),)], "person_id long")}
    assert scan_export(spark, _files(export), clean, {}, {"persons": ("person_id",)}) == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.heavy
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_maps_in_chromium(tmp_path: Path) -> None:
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    page.write_text(
        build_report_html(partner_rows(), areas(), phenomena={"drugs": "D"}, report=REPORT)
    )
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    img = imread(str(shot))[..., :3]
    # the map's class colours (light to dark red) must be on screen: count pixels close to
    # the two buurten's fills (12 -> lowest class, 15.2 -> highest)
    from zicht.jobs.export.report import COLORS

    def pixels(hex_color: str) -> int:
        rgb = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        return int((abs(img - rgb).max(axis=-1) < 0.02).sum())

    assert pixels(COLORS[-1]) > 500
    assert sum(pixels(c) for c in COLORS[:-1]) > 500


@pytest.mark.spark
def test_release_register_refuses_weaker_rules_and_new_phenomena(
    spark: SparkSession, tmp_path: Path
) -> None:
    from zicht.jobs.export import register_release as register
    from zicht.jobs.export import release_entry

    inputs = {"incidents": {"sha256": "a" * 64}, "persons": {"sha256": "b" * 64}}
    rules = {"min_count": 10, "protection_width": 2, "rounding_base": None}
    ph = {"drugs": {"incident_codes": ["F42"], "classes": [], "signal_categories": []}}
    reg = tmp_path / "zicht_releases.json"
    files = FileSystem(spark)

    def register_release(reg: Path, entry: dict, *, force: bool = False) -> list[str]:
        return register(files, str(reg), entry, force=force)

    first = release_entry("r1", inputs=inputs, rules=rules, phenomena=ph)
    assert register_release(reg, first) == []
    # the same release again: the pattern is deterministic, nothing new is learnt
    assert register_release(reg, {**first, "run_id": "r2"}) == []
    weaker = release_entry("r3", inputs=inputs, rules={**rules, "min_count": 5}, phenomena=ph)
    problems = register_release(reg, weaker)
    assert problems and "min_count 5 is weaker than 10" in problems[0]
    narrower = {**ph, "productie": {"incident_codes": ["F43"], "classes": [],
                                    "signal_categories": []}}  # fmt: skip
    assert register_release(
        reg, release_entry("r4", inputs=inputs, rules=rules, phenomena=narrower)
    )
    # other data: no conflict; forcing records the release as forced
    other = {**inputs, "incidents": {"sha256": "c" * 64}}
    assert register_release(reg, release_entry("r5", inputs=other, rules={}, phenomena={})) == []
    assert register_release(reg, weaker, force=True) == []
    import json

    entries = json.loads(reg.read_text())
    assert [(e["run_id"], e["forced"]) for e in entries] == [
        ("r1", False),
        ("r2", False),
        ("r5", False),
        ("r3", True),
    ]


@pytest.mark.spark
def test_partner_rows_sort_as_sparks_order_by(spark: SparkSession) -> None:
    """``sort_rows`` (driver, integer codes) gives Spark's ``orderBy`` order: text in UTF-8
    byte order (accents and capitals included), then years as numbers."""
    from zicht.features.export import sort_rows

    names = ["Súdwest-Fryslân", "Sudwest", "sudwest", "Ärnhem", "Zaandam", "Åmsterdam", "GM10"]
    rows = [
        (lv, code, year, ind)
        for lv in ("wijk", "buurt", "gemeente")
        for code in names
        for year in (2024, 2019, 2023)
        for ind in ("b.x", "a.y", "B.z")
    ]
    frame = pd.DataFrame(rows[::-1], columns=["level", "area_code", "year", "indicator"])
    got = sort_rows(frame, ["level", "area_code", "year", "indicator"])
    spark_order = (
        spark.createDataFrame(frame).orderBy("level", "area_code", "year", "indicator").toPandas()
    )
    pd.testing.assert_frame_equal(got, spark_order, check_dtype=False)
    assert list(got.itertuples(index=False, name=None)) == sorted(rows)


@pytest.mark.parametrize("sep", [",", ";"])
def test_csv_text_is_pandas_to_csv_byte_for_byte(sep: str) -> None:
    """The partner CSVs' fast writer against pandas' own on cells that need quoting, missing
    ones, integers, non-ASCII text and a column of another type (which pandas renders)."""
    from zicht.features.export import csv_text

    texts = ["plain", "a,b", "a;b", 'say "hi"', "two\nlines", "cr\ronly", "", None, float("nan"),
             "Súdwest-Fryslân", "'=1+1", " spaced ", "x"]  # fmt: skip
    frame = pd.DataFrame(
        {
            "text": texts,
            'odd "name"; or, not': texts[::-1],
            "year": range(2013, 2013 + len(texts)),
            "count": [-(10**12), 0, 7] * 4 + [1],
        }
    )
    want = frame.to_csv(index=False, sep=sep, lineterminator="\r\n")
    assert csv_text(frame, sep=sep) == want
    assert csv_text(frame.iloc[:0], sep=sep) == frame.iloc[:0].to_csv(
        index=False, sep=sep, lineterminator="\r\n"
    )
    floats = frame.assign(share=[0.1 * k for k in range(len(texts))])
    assert csv_text(floats, sep=sep) == floats.to_csv(index=False, sep=sep, lineterminator="\r\n")
