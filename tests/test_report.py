"""The interactive report (issue 17, items 4 and 5): legend classes, and the page in a browser.

The legend is checked by counting values into classes here, not by the code's own lookup.
The page is opened in Debian's headless Chromium (``--dump-dom``: the DOM after the page's
script ran); a choice is made through the page's own ``#phenomenon=...`` address, which sets
the select and fires its ``change`` event, as a click does. Without Chromium the browser tests
skip, except on CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from zicht.features.export import phenomena_registered
from zicht.jobs.export.report import COLORS, ZERO, build_report_html, legend_classes, report_data

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]


# --------------------------------------------------------------------------- legend


def _members(values: list[float], classes: list[tuple[float, float, str]]) -> list[int]:
    counts = [0] * len(classes)
    for v in values:
        hits = [k for k, (lo, hi, _) in enumerate(classes) if lo < v <= hi]
        assert len(hits) == 1, (v, classes)  # every value in exactly one class
        counts[hits[0]] += 1
    return counts


def test_legend_of_the_issue_keeps_zero_apart_and_one_class_per_value() -> None:
    # "meer dan 0,0 tot en met 16,1; 16,1-18,1; 18,1-18,2; 18,2-18,3" on make demo: mostly 0
    values = [0.0] * 200 + [16.1, 18.1, 18.2, 18.3, 18.3]
    classes = legend_classes(values, decimals=1)
    assert [c[2] for c in classes] == [
        "0",
        "meer dan 0,0 tot en met 16,1",
        "meer dan 16,1 tot en met 18,1",
        "18,2",
        "18,3",
    ]
    assert _members(values, classes) == [200, 1, 1, 1, 2]


def test_legend_classes_on_random_published_values() -> None:
    seed = 17
    rng = random.Random(seed)
    print("seed", seed)
    for decimals in (0, 1, 3):
        step = 10**-decimals
        for _ in range(300):
            n_distinct = rng.randint(1, 40)
            pool = sorted({round(rng.uniform(0, 50), decimals) for _ in range(n_distinct)})
            values = [rng.choice(pool) for _ in range(rng.randint(1, 300))]
            classes = legend_classes(values, decimals=decimals)
            distinct = sorted(set(values))
            positive = [c for c in classes if c[2] != "0"]
            assert len(positive) <= 5
            assert len(classes) <= len(distinct)  # never more classes than distinct values
            assert all(n > 0 for n in _members(values, classes))  # no empty class
            for lo, hi, _ in classes[1:]:
                assert hi - lo >= step * 0.999999  # never narrower than the rounding
            if len([v for v in distinct if v != 0]) <= 5:  # few values: one class each
                assert len(positive) == len([v for v in distinct if v != 0])


def test_legend_of_the_index_has_nine_bands_and_the_class_nine_classes() -> None:
    index = legend_classes([3.0, 97.5], decimals=2, kind="index")
    assert len(index) == 9 and index[0][0] == 0 and index[-1][1] == pytest.approx(100)
    assert [c[2] for c in legend_classes([1, 9], decimals=0, kind="class")] == [
        str(k) for k in range(1, 10)
    ]


def test_a_phenomenon_without_any_registration_is_not_in_the_delivery() -> None:
    pub = pd.DataFrame(
        [
            ("gemeente", "GM0001", "A", 2024, "drugs.incidents", "0", "ok"),
            ("gemeente", "GM0001", "A", 2024, "geweld.incidents", "", "suppressed"),
            ("gemeente", "GM0001", "A", 2024, "witwassen.incidents", "0", "ok"),
            ("gemeente", "GM0001", "A", 2024, "witwassen.signals", "", "not_covered"),
            ("gemeente", "GM0001", "A", 2024, "fiets.incidents", "40", "ok"),
        ],
        columns=COLUMNS,
    )
    assert phenomena_registered(pub, ["drugs", "geweld", "witwassen", "fiets"]) == {
        "geweld",
        "fiets",
    }


# --------------------------------------------------------------------------- the page

BU = ["BU00010101", "BU00010102", "BU00010201"]


def partner_rows() -> pd.DataFrame:
    """Two present phenomena with different patterns, one absent; buurt 2 suppressed for
    drugs, buurt 3 suppressed for geweld."""
    cells = {
        # (incidents, per 1000) per buurt, both years
        "drugs": [("12", "4.0", "ok"), ("", "", "suppressed"), ("30", "15.2", "ok")],
        "geweld": [("0", "0.0", "ok"), ("40", "20.5", "ok"), ("", "", "suppressed")],
        "witwassen": [("0", "0.0", "ok"), ("0", "0.0", "ok"), ("0", "0.0", "ok")],
    }
    rows = []
    for year in (2023, 2024):
        for p, per_buurt in cells.items():
            for code, (inc, rate, st) in zip(BU, per_buurt, strict=True):
                name = {BU[0]: "Centrum", BU[1]: "Haven", BU[2]: "Noord"}[code]
                rows.append(("buurt", code, name, year, f"{p}.incidents", inc, st))
                rows.append(("buurt", code, name, year, f"{p}.incidents_per_1000", rate, st))
            for lv, code, name in (("wijk", "WK000101", "Wijk 01"), ("wijk", "WK000102", "Wijk 02"),
                                   ("gemeente", "GM0001", "Testdam")):  # fmt: skip
                rows.append(
                    (
                        lv,
                        code,
                        name,
                        year,
                        f"{p}.incidents",
                        "42" if p != "witwassen" else "0",
                        "ok",
                    )
                )
                rows.append((lv, code, name, year, f"{p}.incidents_per_1000",
                             "7.5" if p != "witwassen" else "0.0", "ok"))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def areas() -> pd.DataFrame:
    sq = "POLYGON (({a} 0, {b} 0, {b} 1000, {a} 1000, {a} 0))"
    return pd.DataFrame(
        {
            "buurt_code": BU,
            "buurt_name": ["Centrum", "Haven", "Noord"],
            "x": [500.0, 1500.0, 2500.0],
            "y": [500.0, 500.0, 500.0],
            "land_area_ha": [100.0] * 3,
            "geometry_wkt": [sq.format(a=0, b=1000), sq.format(a=1000, b=2000), None],
        }
    )


PHENOMENA = {"drugs": "Drugshandel", "geweld": "Geweld", "witwassen": "Witwassen"}
REPORT = {"parameters": {"min_count": 10}, "audit": {"passed": True}}


def page() -> str:
    pub = partner_rows()
    return build_report_html(
        pub,
        areas(),
        phenomena=PHENOMENA,
        report=REPORT,
        present=phenomena_registered(pub, list(PHENOMENA)),
        first=["geweld"],
    )


def test_the_page_is_self_contained_and_draws_its_first_map() -> None:
    text = page()
    for external in ("<script src", "http://", "https://", "<link", "@import", "url(http"):
        assert external not in text
    first = re.search(r'<svg class="map"[^>]*data-phenomenon="([a-z]+)"', text)
    assert first and first.group(1) == "geweld"  # the overlay's phenomenon comes first
    assert text.count("<use ") == 3  # the first view is drawn before the script runs
    assert "Noord: x (geheim)" in text and 'fill="url(#hatch)"' in text
    assert "Witwassen (niet in deze levering)" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ON_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def browser() -> str:
    if CHROMIUM is None:
        if ON_CI:
            pytest.fail("CI=true and chromium is not installed: the report's browser test must run")
        pytest.skip("chromium is not installed")
    return CHROMIUM


def dom(browser: str, path: Path, fragment: str = "") -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and the page's console messages."""
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            path.as_uri() + (f"#{fragment}" if fragment else ""),
        ],  # fmt: skip
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def _map(doc: str) -> tuple[dict[str, str], dict[str, str]]:
    svg = re.search(r'<svg class="map"[^>]*>.*?</svg>', doc, re.S)
    assert svg, "no map"
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', svg.group(0).split(">", 1)[0]))
    fills = dict(
        (code, fill)
        for fill, code in re.findall(
            r'<use href="#[a-z0-9]+" fill="([^"]+)" data-code="([^"]+)"', svg.group(0)
        )
    )
    return attrs, fills


def _legend_entries(doc: str) -> int:
    legend = re.search(r'<div class="legend" id="legend">(.*?)</div>\s*<div>', doc, re.S)
    return legend.group(1).count('class="class"') if legend else 0


@pytest.mark.heavy
def test_report_in_chromium_redraws_on_choice_hatches_and_has_legends(
    browser: str, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    path.write_text(page(), encoding="utf-8")

    doc, console = dom(browser, path)
    assert console == [], console  # no console error (nor any other message)
    assert 'data-ready="1"' in doc  # the script ran to its end
    attrs, fills = _map(doc)
    assert attrs["data-phenomenon"] == "geweld"
    # geweld 2024: Centrum 0 (white), Haven 20.5 (the highest: darkest), Noord suppressed but
    # without an outline it is a centroid tile
    assert fills == {BU[0]: ZERO, BU[1]: COLORS[-1], BU[2]: "url(#hatch)"}
    assert _legend_entries(doc) >= 2

    # choosing another phenomenon redraws the map with that phenomenon's cells
    doc, console = dom(browser, path, "phenomenon=drugs")
    assert console == [], console
    attrs, fills = _map(doc)
    assert attrs["data-phenomenon"] == "drugs"
    assert attrs["data-indicator"] == "drugs.incidents_per_1000"
    assert fills[BU[1]] == "url(#hatch)"  # the suppressed buurt is hatched
    assert fills[BU[2]] == COLORS[-1]  # 15.2, the highest
    assert fills[BU[0]] not in (ZERO, COLORS[-1], "url(#hatch)")
    assert _legend_entries(doc) >= 2

    # every map of every level has a legend
    for p in ("geweld", "drugs"):
        for level in ("buurt", "wijk", "gemeente"):
            doc, console = dom(
                browser, path, f"phenomenon={p}&level={level}&indicator={p}.incidents"
            )
            assert console == [], console
            attrs, fills = _map(doc)
            assert (attrs["data-phenomenon"], attrs["data-level"]) == (p, level)
            assert fills and _legend_entries(doc) >= 1, (p, level)

    # a phenomenon not in this delivery is said so, not drawn as a map of zeros
    doc, console = dom(browser, path, "phenomenon=witwassen")
    assert console == []
    attrs, fills = _map(doc)
    assert attrs.get("data-absent") == "1" and fills == {}
    assert re.search(r'<p id="absent" class="note">', doc)  # no longer hidden


def test_an_overlays_phenomena_come_first() -> None:
    from zicht.features.settings import settings_from_mapping
    from zicht.jobs.config import load_mapping
    from zicht.jobs.export.stage import overlay_phenomena

    assert overlay_phenomena(settings_from_mapping(load_mapping()).phenomena) == []
    groningen = Path(__file__).resolve().parents[1] / "conf/examples/groningen_fietsdiefstal.yaml"
    overlaid = settings_from_mapping(load_mapping(groningen))
    assert overlay_phenomena(overlaid.phenomena) == ["fietsdiefstal"]
    narrowed = load_mapping()
    narrowed["phenomena"]["drugs"]["classes"] = []  # redefined by an overlay
    assert overlay_phenomena(settings_from_mapping(narrowed).phenomena) == ["drugs"]


def test_themes_and_sectors_are_offered_on_the_page() -> None:
    # issue 19: the FIU-NL and ownership indicators of a phenomenon, and a sector offered like
    # a phenomenon (the export stage adds sector.<name> to the phenomena it hands the page)
    themes = [
        ("buurt", code, "b", 2024, ind, "3", "ok")
        for code in BU
        for ind in ("witwassen.fiu_subjects", "sector.zorg.companies", "sector.zorg.new_companies")
    ]
    pub = pd.concat([partner_rows(), pd.DataFrame(themes, columns=COLUMNS)], ignore_index=True)
    data = report_data(
        pub, areas(), phenomena={**PHENOMENA, "sector.zorg": "sector zorg"}, report=REPORT
    )
    offered = {str(i["key"]): i for i in data["indicators"]}  # type: ignore[union-attr]
    assert {"witwassen.fiu_subjects", "sector.zorg.companies", "sector.zorg.new_companies"} <= set(
        offered
    )
    assert offered["sector.zorg.companies"]["phenomenon"] == "sector.zorg"
    assert offered["sector.zorg.companies"]["label"] == "bedrijven"
