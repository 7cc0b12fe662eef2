"""Regions in the configuration and reference rows in partner packages (no Spark).

The configuration is checked when the settings load (overlapping regions, a region of one
gemeente); a package's reference rows are read back from its files with the csv module and
openpyxl and compared with the rows of the one protected table, chosen here by level and
code (the code under test picks them with :func:`reference_rows`).
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from test_partner_packages import COLUMNS, INDICATORS, REPORT, areas, codebook, national

from zicht.features.regions import STUDY_AREA_NAME, regions_of
from zicht.features.settings import ConfigError, settings_from_mapping
from zicht.jobs.config import load_mapping
from zicht.jobs.export.geo import area_geometries
from zicht.jobs.export.package import (
    REFERENCE_AUDIT,
    cut,
    package_report,
    plan_packages,
    reference_rows,
    render_files,
    split_reference,
)


def _settings(export: dict) -> object:
    return settings_from_mapping({**load_mapping(), "export": export})


# --------------------------------------------------------------------------- configuration


def test_overlapping_regions_are_refused_naming_both_and_the_gemeente() -> None:
    export = {
        "partners": {
            "riec-noord": {"gemeenten": ["GM0014", "GM0080"], "region": True},
            "riec-oost": {"gemeenten": ["GM0080", "GM0479"], "region": True},
        }
    }
    with pytest.raises(ConfigError) as err:
        _settings(export)
    text = str(err.value)
    assert "riec-noord" in text and "riec-oost" in text and "GM0080" in text


def test_overlap_with_a_partner_that_is_no_region_is_fine() -> None:
    s = _settings(
        {
            "partners": {
                "riec-noord": {"gemeenten": ["GM0014", "GM0080"], "region": True},
                "gemeente-x": {"gemeenten": ["GM0080", "GM0479"]},
            }
        }
    )
    regions = regions_of(s.export.partners)
    assert regions is not None and dict(regions.of_gemeente) == {
        "GM0014": "riec-noord",
        "GM0080": "riec-noord",
    }


@pytest.mark.parametrize(
    ("partner", "message"),
    [
        ({"riec": {"gemeenten": ["GM0014"], "region": True}}, "two or more gemeenten"),
        ({"riec": {"gemeenten": ["GM0014", "GM0014"], "region": True}}, "two or more"),
        ({"studiegebied": {"gemeenten": ["GM0014", "GM0080"], "region": True}}, "studiegebied"),
        ({"riec": {"gemeenten": ["GM0014", "GM0080"], "region": "ja"}}, "true or false"),
    ],
)
def test_bad_regions_are_refused(partner: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings({"partners": partner})


def test_without_a_region_there_are_no_regions() -> None:
    s = _settings({"partners": {"riec-noord": {"gemeenten": ["GM0014", "GM0080"]}}})
    assert regions_of(s.export.partners) is None
    assert regions_of(_settings({}).export.partners) is None


# --------------------------------------------------------------------------- packages


def _with_reference(pub: pd.DataFrame) -> pd.DataFrame:
    """The protected table with reference rows, as partner_table returns it (names empty)."""
    extra = []
    for k, (lv, code) in enumerate([("regio", "riec-noord"), ("studiegebied", "studiegebied")]):
        for year in (2023, 2024):
            sup = k == 0 and year == 2024
            extra.append((lv, code, None, year, INDICATORS[0], "" if sup else str(40 + k),
                          "suppressed" if sup else "ok"))  # fmt: skip
            extra.append((lv, code, None, year, INDICATORS[1], "" if sup else "7.5",
                          "suppressed" if sup else "ok"))  # fmt: skip
    return pd.concat([pub, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _package(partners: dict):  # type: ignore[no-untyped-def]
    s = _settings({"partners": partners})
    table = _with_reference(national())
    regions = regions_of(s.export.partners)
    pub, reference = split_reference(table, regions)
    packages, _ = plan_packages(s.export.partners, {"GM0014", "GM0080", "GM0479"})
    a = areas()
    geoms = area_geometries(a)
    out = {}
    for p in packages:
        rows, part_areas, part_geoms = cut(pub, a, geoms, p.gemeenten, reference_rows(reference, p))
        files = render_files(
            rows,
            codebook=codebook(),
            report=package_report(REPORT, rows, p),
            areas=part_areas,
            geometries=part_geoms,
            phenomena={"drugs": "Drugs"},
            dialect="standard",
            partner=p.name,
        )
        out[p.name] = {(f.dataset, tuple(sorted(f.params.items()))): f for f in files}
    national_files = render_files(
        pub,
        codebook=codebook(),
        report=REPORT,
        areas=a,
        geometries=geoms,
        phenomena={"drugs": "Drugs"},
        dialect="standard",
    )
    return table, out, {(f.dataset, tuple(sorted(f.params.items()))): f for f in national_files}


PARTNERS = {
    "riec-noord": {"gemeenten": ["GM0014", "GM0080"], "region": True, "label": "RIEC Noord"},
    "gemeente-zaanstad": {"gemeenten": ["GM0479"]},
}


def test_region_package_carries_its_reference_rows_equal_to_the_protected_table() -> None:
    from openpyxl import load_workbook

    table, packages, _ = _package(PARTNERS)
    files = packages["riec-noord"]
    rows = _csv(
        files[("partner_indicators", (("level", "gemeente"), ("partner", "riec-noord")))].data
    )
    levels = [r["level"] for r in rows]
    # the gemeenten first, then the region, then the study area
    assert levels == sorted(levels, key=["gemeente", "regio", "studiegebied"].index)
    ref = [r for r in rows if r["level"] in ("regio", "studiegebied")]
    # independently: the protected table's rows of level regio with this code, and the whole
    expected = table[
        ((table["level"] == "regio") & (table["area_code"] == "riec-noord"))
        | (table["level"] == "studiegebied")
    ]
    key = ["level", "area_code", "year", "indicator", "value", "status"]
    got = {tuple(str(r[k]) for k in key) for r in ref}
    assert got == {tuple(str(v) for v in t) for t in expected[key].itertuples(index=False)}
    names = {r["area_code"]: r["area_name"] for r in ref}
    assert names == {"riec-noord": "RIEC Noord", "studiegebied": STUDY_AREA_NAME}
    # the workbook's Gemeenten sheet ends with them, same values
    wb = load_workbook(io.BytesIO(files[("partner_workbook", (("partner", "riec-noord"),))].data))
    sheet = list(wb["Gemeenten"].iter_rows(values_only=True))
    header, body = sheet[0], sheet[1:]
    codes = [r[0] for r in body]
    assert codes[-4:] == ["riec-noord", "riec-noord", "studiegebied", "studiegebied"]
    col = header.index(INDICATORS[0])
    by_code_year = {(r[0], r[2]): r[col] for r in body}
    assert by_code_year[("studiegebied", 2023)] == 41
    assert by_code_year[("riec-noord", 2024)] == "x"  # suppressed: the CBS symbol
    report = json.loads(files[("partner_disclosure_report", (("partner", "riec-noord"),))].data)
    assert report["package"]["why_no_own_audit"] == REFERENCE_AUDIT
    assert report["levels"]["regio"]["suppressed"] == 2  # 2024: the count and its rate
    assert report["levels"]["studiegebied"]["published"] == 4


def test_other_packages_and_the_national_files_carry_no_reference_rows() -> None:
    _, packages, national_files = _package(PARTNERS)
    files = packages["gemeente-zaanstad"]
    for level in ("buurt", "wijk", "gemeente"):
        rows = _csv(
            files[("partner_indicators", (("level", level), ("partner", "gemeente-zaanstad")))].data
        )
        assert rows and {r["level"] for r in rows} == {level}
        assert all(r["area_code"] != "riec-noord" for r in rows)
        nat = _csv(national_files[(f"indicators_{level}", ())].data)
        assert {r["level"] for r in nat} == {level}
    report = json.loads(
        files[("partner_disclosure_report", (("partner", "gemeente-zaanstad"),))].data
    )
    assert "riec-noord" not in json.dumps(report) and "regio" not in report["levels"]
