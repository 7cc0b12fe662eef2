"""Partner packages (issue 17, item 2): configuration, the cut, and every cell the national one.

The partner's rows are found independently of the code under test: through the areas table's
own ``gemeente_code`` column (the code reads the gemeente from the CBS code's digits), and the
files are read back with the csv module and openpyxl.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from zicht.features.settings import ConfigError, PartnerSettings, settings_from_mapping
from zicht.jobs.config import load_mapping
from zicht.jobs.export.geo import area_geometries
from zicht.jobs.export.package import cut, package_report, plan_packages, render_files

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
INDICATORS = ["drugs.incidents", "drugs.incidents_per_1000"]


def areas() -> pd.DataFrame:
    sq = "POLYGON (({x} {y}, {x} {t}, {r} {t}, {r} {y}, {x} {y}))"
    rows = []
    for i, (b, w, g) in enumerate(
        [
            ("BU00140101", "WK001401", "GM0014"),
            ("BU00140102", "WK001401", "GM0014"),
            ("BU00800101", "WK008001", "GM0080"),
            ("BU04790101", "WK047901", "GM0479"),
        ]
    ):
        x, y = 150000 + 1000 * i, 460000
        rows.append(
            {
                "buurt_code": b,
                "buurt_name": f"Buurt {i}",
                "wijk_code": w,
                "gemeente_code": g,
                "x": x + 500.0,
                "y": y + 500.0,
                "land_area_ha": 100.0,
                "geometry_wkt": sq.format(x=x, y=y, r=x + 1000, t=y + 1000),
            }
        )
    return pd.DataFrame(rows)


def national() -> pd.DataFrame:
    a = areas()
    codes = [
        *[("buurt", r.buurt_code, r.buurt_name) for r in a.itertuples()],
        *[("wijk", w, f"Wijk {w}") for w in sorted(set(a["wijk_code"]))],
        *[("gemeente", g, f"Gemeente {g}") for g in sorted(set(a["gemeente_code"]))],
    ]
    out = []
    for k, (lv, code, name) in enumerate(codes):
        for year in (2023, 2024):
            sup = (k + year) % 3 == 0
            out.append((lv, code, name, year, INDICATORS[0], "" if sup else str(10 + k),
                        "suppressed" if sup else "ok"))  # fmt: skip
            out.append((lv, code, name, year, INDICATORS[1], "" if sup else f"{k}.5",
                        "suppressed" if sup else "ok"))  # fmt: skip
    return pd.DataFrame(out, columns=COLUMNS)


def codebook() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "indicator": INDICATORS,
            "phenomenon": ["drugs"] * 2,
            "definition": ["Incidents.", "Per 1000."],
            "unit": ["count", "rate"],
            "numerator": ["", "drugs.incidents"],
            "denominator": ["", "context.inhabitants"],
            "sources": ["incidents"] * 2,
            "caveats": ["", ""],
            "definition_nl": ["Incidenten.", "Per 1000."],
        }
    )


REPORT = {"rules": [{"name": "primary_count"}], "parameters": {"min_count": 10},
          "audit": {"passed": True, "audited_cells": 7}}  # fmt: skip


# --------------------------------------------------------------------------- configuration


def _settings(export: dict) -> object:
    return settings_from_mapping({**load_mapping(), "export": export})


def test_partners_are_configured_by_gemeente_codes() -> None:
    s = _settings({"partners": {"riec-noord": {"gemeenten": ["GM0014", "GM0080"]}}})
    assert s.export.partners == {"riec-noord": PartnerSettings(("GM0014", "GM0080"), "")}
    assert s.export.csv_dialect == "standard"
    assert _settings({}).export.partners == {}  # none by default


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ({"partners": {"Riec Noord": {"gemeenten": ["GM0014"]}}}, "lower-case"),
        ({"partners": {"riec": {"gemeenten": ["0014"]}}}, "not a GM code"),
        ({"partners": {"riec": {"gemeenten": []}}}, "gemeenten is empty"),
        ({"partners": {"riec": {"gemeenten": ["GM0014"], "regio": "x"}}}, "unknown key"),
        ({"csv_dialect": "excel"}, "csv_dialect"),
    ],
)
def test_bad_partner_configuration_is_refused(export: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(export)


def test_demo_partners_name_the_demo_gemeenten() -> None:
    import numpy as np
    import yaml

    from zicht.features.synthetic import SCALES, plan_areas

    conf = Path(__file__).resolve().parents[1] / "conf/examples/demo_partners.yaml"
    partners = yaml.safe_load(conf.read_text())["export"]["partners"]
    plan = plan_areas(SCALES["small"], np.random.default_rng(42))  # make demo: small, seed 42
    wanted = {g for p in partners.values() for g in p["gemeenten"]}
    assert wanted <= set(plan.gemeente_code.tolist())


def test_plan_names_missing_gemeenten_and_skips_a_partner_without_any() -> None:
    partners = {
        "riec-noord": PartnerSettings(("GM0014", "GM9999")),
        "elders": PartnerSettings(("GM9998",)),
    }
    packages, warnings = plan_packages(partners, {"GM0014", "GM0080"})
    assert [(p.name, p.gemeenten, p.missing) for p in packages] == [
        ("riec-noord", ("GM0014",), ("GM9999",))
    ]
    assert any("elders" in w and "no package" in w for w in warnings)
    assert any("GM9999" in w for w in warnings)


# --------------------------------------------------------------------------- the cut


def _csv_rows(data: bytes) -> set[tuple[str, ...]]:
    text = data.decode("utf-8-sig")
    return {tuple(r.values()) for r in csv.DictReader(io.StringIO(text, newline=""))}


def _files(pub: pd.DataFrame, a: pd.DataFrame, geoms, partner: str | None, report=REPORT):  # type: ignore[no-untyped-def]
    files = render_files(
        pub,
        codebook=codebook(),
        report=report,
        areas=a,
        geometries=geoms,
        phenomena={"drugs": "Drugs"},
        dialect="standard",
        partner=partner,
    )
    return {(f.dataset, tuple(sorted(f.params.items()))): f for f in files}


def test_every_package_cell_is_the_national_cell() -> None:
    from openpyxl import load_workbook

    pub, a = national(), areas()
    geoms = area_geometries(a)
    gemeenten = ("GM0014", "GM0080")
    rows, part_areas, part_geoms = cut(pub, a, geoms, gemeenten)
    nat = _files(pub, a, geoms, None)
    pkg = _files(rows, part_areas, part_geoms, "riec-noord")

    # independently: the partner's areas from the areas table's own hierarchy
    buurten = set(a.loc[a["gemeente_code"].isin(gemeenten), "buurt_code"])
    wijken = set(a.loc[a["gemeente_code"].isin(gemeenten), "wijk_code"])
    inside = buurten | wijken | set(gemeenten)
    for level in ("buurt", "wijk", "gemeente"):
        mine = _csv_rows(
            pkg[("partner_indicators", (("level", level), ("partner", "riec-noord")))].data
        )
        theirs = _csv_rows(nat[(f"indicators_{level}", ())].data)
        assert mine <= theirs  # every package cell is a national cell, unchanged
        assert mine == {r for r in theirs if r[1] in inside}  # and all of the partner's cells
        assert mine and {r[1] for r in mine} <= inside

    def cells(data: bytes) -> dict[tuple[str, str, object, object], object]:
        wb = load_workbook(io.BytesIO(data))
        out = {}
        for title in ("Buurten", "Wijken", "Gemeenten"):
            ws_rows = list(wb[title].iter_rows(values_only=True))
            for r in ws_rows[1:]:
                for name, v in zip(ws_rows[0][3:], r[3:], strict=True):
                    out[(title, r[0], r[2], name)] = v
        return out

    national_cells = cells(nat[("workbook", ())].data)
    package_cells = cells(pkg[("partner_workbook", (("partner", "riec-noord"),))].data)
    assert package_cells and all(national_cells[k] == v for k, v in package_cells.items())
    assert {k[1] for k in package_cells} == inside

    def features(data: bytes) -> set[str]:
        return {json.dumps(f, sort_keys=True) for f in json.loads(data)["features"]}

    for level in ("buurt", "wijk", "gemeente"):
        n = features(nat[("geo", (("level", level),))].data)
        p = features(pkg[("partner_geo", (("level", level), ("partner", "riec-noord")))].data)
        assert p and p <= n


def test_package_report_names_only_its_partner() -> None:
    pub = national()
    packages, _ = plan_packages(
        {
            "riec-noord": PartnerSettings(("GM0014",), "RIEC Noord"),
            "gemeente-zaanstad": PartnerSettings(("GM0479",)),
        },  # fmt: skip
        {"GM0014", "GM0080", "GM0479"},
    )
    rows, _, _ = cut(pub, areas(), {}, packages[1].gemeenten)
    body = package_report(REPORT, rows, packages[1])
    text = json.dumps(body)
    assert packages[1].name == "riec-noord" and "riec-noord" in text
    assert "zaanstad" not in text and "GM0479" not in text
    assert (
        body["package"]["own_audit"] is False and "no audit" in body["package"]["why_no_own_audit"]
    )
    # the package's cells per level, counted from its rows
    expected = rows.groupby(["level", "status"]).size()
    assert body["levels"]["buurt"]["suppressed"] == int(expected.get(("buurt", "suppressed"), 0))
    assert body["levels"]["buurt"]["published"] == int(expected.get(("buurt", "ok"), 0))


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.spark
def test_export_with_partners_writes_packages_and_keeps_the_national_files(
    tiny_run: dict[str, Path], tmp_path: Path
) -> None:
    """``zicht export --from`` on copies of the tiny run, without and with two partners (one
    whose gemeente is not in the data): the national files are byte for byte the same, the
    package's files hold the national cells, and the register records the package."""
    from zicht.jobs import export as export_job

    gemeente = sorted(
        pd.read_parquet(tiny_run["output"] / "restricted/areas.parquet")["gemeente_code"]
    )[0]
    conf = tmp_path / "partners.yaml"
    conf.write_text(
        "export:\n  partners:\n"
        f"    riec-test: {{gemeenten: [{gemeente}, GM9999], label: RIEC Test}}\n"
        "    elders: {gemeenten: [GM9998]}\n"
    )
    outs = {}
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        for name, args in (("plain", []), ("partners", ["--conf", str(conf)])):
            out = tmp_path / name / "output"
            shutil.copytree(tiny_run["output"], out)
            assert export_job.main(["--from", str(out), *args]) == 0
            outs[name] = out
    finally:
        mp.undo()
    plain, with_p = outs["plain"] / "export", outs["partners"] / "export"
    national = sorted(p.relative_to(plain).as_posix() for p in plain.rglob("*") if p.is_file())
    assert national and not any(n.startswith("partners/") for n in national)
    for rel in national:
        assert (with_p / rel).read_bytes() == (plain / rel).read_bytes(), rel
    pkg = with_p / "partners" / "riec-test"
    assert not (with_p / "partners" / "elders").exists()
    for name in ("indicators_buurt.csv", "indicators_wijk.csv", "indicators_gemeente.csv",
                 "codebook.csv", "indicators.xlsx", "report.html", "disclosure_report.json"):  # fmt: skip
        assert (pkg / name).is_file(), name
    for level in ("buurt", "wijk", "gemeente"):
        mine = _csv_rows((pkg / f"indicators_{level}.csv").read_bytes())
        assert mine and mine <= _csv_rows((plain / f"indicators_{level}.csv").read_bytes())
    manifest = json.loads((outs["partners"] / "manifest.json").read_text())
    facts = manifest["stages"]["export"]["facts"]
    assert [p["name"] for p in facts["packages"]] == ["riec-test"]
    assert any("GM9999" in w for w in facts["package_warnings"])
    assert "export/partners/riec-test/indicators.xlsx" in manifest["outputs"]
    register = json.loads((outs["partners"].parent / "zicht_releases.json").read_text())
    files = register[-1]["packages"]["riec-test"]["files"]
    assert (
        files["export/partners/riec-test/indicators.xlsx"]
        == (manifest["outputs"]["export/partners/riec-test/indicators.xlsx"]["sha256"])
    )
    report = json.loads((pkg / "disclosure_report.json").read_text())
    assert "elders" not in json.dumps(report)
