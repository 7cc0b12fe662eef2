"""``codebook.csv`` carries the Dutch definition (issue 17, item 3): the contract's columns
(CONTRACT.md section 3) with ``definition_nl`` after ``definition``, in the national export and
in every partner package. The header is written out by hand here, and the Dutch text is read
from ``conf/base/indicators.yaml`` with yaml, not through the settings loader."""

from __future__ import annotations

import csv
import io
from importlib import resources

import yaml
from test_partner_packages import _files, areas, national

from zicht.jobs.config import load_settings
from zicht.jobs.export.geo import area_geometries
from zicht.jobs.export.package import cut

HEADER = ["indicator", "phenomenon", "definition", "definition_nl", "unit", "numerator",
          "denominator", "sources", "caveats"]  # fmt: skip


def _rows(data: bytes, sep: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=sep))


def test_national_and_package_codebooks_carry_definition_nl() -> None:
    pub, a = national(), areas()
    geoms = area_geometries(a)
    rows, part_areas, part_geoms = cut(pub, a, geoms, ("GM0014",))
    nat = _files(pub, a, geoms, None)
    pkg = _files(rows, part_areas, part_geoms, "riec-noord")
    for data in (nat[("codebook", ())].data, pkg[("partner_codebook", (("partner", "riec-noord"),))].data):  # fmt: skip
        got = _rows(data)
        assert got[0] == HEADER
        # the fixture's codebook: drugs.incidents is "Incidenten." in Dutch
        assert dict((r[0], r[3]) for r in got[1:]) == {
            "drugs.incidents": "Incidenten.",
            "drugs.incidents_per_1000": "Per 1000.",
        }


def test_the_codebook_of_the_catalogue_holds_its_dutch_definitions() -> None:
    from zicht.features.export import codebook_frame

    text = resources.files("zicht.conf").joinpath("indicators.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    expected = " ".join(raw["standard"]["incidents"]["definition_nl"].split())
    codebook = codebook_frame(load_settings().indicators)
    assert list(codebook.columns) == HEADER
    row = codebook.set_index("indicator").loc["drugs.incidents"]
    assert row["definition_nl"] == expected.replace("{P}", "drugs")
