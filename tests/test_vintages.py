"""Area vintages (CONTRACT.md section 1, *Vintages*): validation, placement, ``zicht areas diff``.

A hand-built case of three vintages (2019, 2020, target 2021) in two gemeenten, with a chain, a
recoding, a merge, a split within a wijk, a split across wijken and one across gemeenten; the
expected placements and counts per level are worked out by hand below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from textwrap import dedent

import pandas as pd
import pytest
from pyspark.sql import functions as F

from zicht.features.area_diff import classify_changes, derive_area_changes
from zicht.features.link import locate_incidents
from zicht.features.vintages import inexact_buurten, resolve_placements, with_unassigned_areas
from zicht.jobs.config import load_settings
from zicht.jobs.validate_inputs import Validated, validate_inputs

RUN_DATE = dt.date(2026, 1, 1)
HEAD = "buurt_code,buurt_name,wijk_code,wijk_name,gemeente_code,gemeente_name,x,y,land_area_ha,geometry_wkt,vintage"  # noqa: E501


def square(x0: float, y0: float, size: float = 1000.0) -> str:
    x1, y1 = x0 + size, y0 + size
    return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def area(code: str, vintage: int | None, wkt: str = "") -> str:
    wijk, gm = "WK" + code[2:8], "GM" + code[2:6]
    quoted = f'"{wkt}"' if wkt else ""
    v = "" if vintage is None else str(vintage)
    return f"{code},b{code[-4:]},{wijk},w{wijk[-2:]},{gm},g{gm[-4:]},150000,450000,10,{quoted},{v}"


# target 2021: WK000101 {0111, 0104, 0105}, WK000102 {0211, 0212}, WK000103 {0311}, GM0002
TARGET = ["BU00010111", "BU00010104", "BU00010105", "BU00010212", "BU00010311", "BU00020111"]
OLD_2020 = [
    "BU00010101",  # recoded to 0111
    "BU00010102",  # merged with 0103 into 0104
    "BU00010103",
    "BU00010105",  # unchanged (no change row)
    "BU00010106",  # split over WK000101 and WK000102: placed at gemeente GM0001
    "BU00010201",  # split into 0211 and 0212 (both WK000102): placed at wijk
    "BU00010301",  # split into GM0001 and GM0002: rejected
    "BU00010401",  # gone, no change: rejected
]
AREAS = "\n".join(
    [
        HEAD,
        *[area(c, 2021) for c in TARGET],
        area("BU00010211", 2021, square(150000, 450000)),
        *[area(c, 2020) for c in OLD_2020],
        area("BU00010107", 2020),  # twice in one vintage: both rejected
        area("BU00010107", 2020),
        area("BU00010100", 2019),  # 2019 -> 0101 (2020) -> 0111 (2021): a chain
        area("BU00010999", None),  # a vintage column but none on this row
    ]
)
CHANGES = """\
vintage_from,code_from,vintage_to,code_to
2019,BU00010100,2020,BU00010101
2020,BU00010101,2021,BU00010111
2020,BU00010102,2021,BU00010104
2020,BU00010103,2021,BU00010104
2020,BU00010201,2021,BU00010211
2020,BU00010201,2021,BU00010212
2020,BU00010106,2021,BU00010104
2020,BU00010106,2021,BU00010211
2020,BU00010301,2021,BU00010311
2020,BU00010301,2021,BU00020111
2021,BU00010111,2020,BU00010101
2020,BU00010101,2021,WK000101
2020,BU00019999,2021,BU00010111
2018,BU00010100,2021,BU00010111
"""
CHANGE_REJECTS = {
    ("2021", "BU00010111", "2020", "BU00010101"): {"vintage_to.not_after_from"},
    ("2020", "BU00010101", "2021", "WK000101"): {"code_to.level_differs"},
    ("2020", "BU00019999", "2021", "BU00010111"): {"code_from.not_in_areas"},
    ("2018", "BU00010100", "2021", "BU00010111"): {"vintage_from.not_in_areas"},
}
ADDRESSES = """\
address_id,buurt_code,use_type,floor_area_m2,woz_value_eur
a1,BU00010212,woonfunctie,80,
"""
# (incident id prefix, buurt_code, address_id, x, y, how many)
INCIDENT_SPEC = [
    ("cur", "BU00010105", "", "", "", 2),  # in the target: as is
    ("new", "BU00010104", "", "", "", 1),
    ("chain", "BU00010100", "", "", "", 1),  # -> 0111
    ("rec", "BU00010101", "", "", "", 2),  # -> 0111
    ("mrg", "BU00010102", "", "", "", 1),  # -> 0104
    ("mrg3", "BU00010103", "", "", "", 2),  # -> 0104
    ("split", "BU00010201", "", "", "", 3),  # -> wijk WK000102 only
    ("addr", "BU00010201", "a1", "", "", 1),  # the address places it: 0212
    ("pt", "BU00010201", "", "150500", "450500", 1),  # the point places it: 0211
    ("xwijk", "BU00010106", "", "", "", 2),  # -> gemeente GM0001 only
    ("xgm", "BU00010301", "", "", "", 1),  # reject: split across gemeenten
    ("unk", "BU00010401", "", "", "", 1),  # reject: no change leads from it
    ("none", "BU00019999", "", "", "", 1),  # reject: in no vintage at all
]
INCIDENTS = "incident_id,incident_date,crime_code,buurt_code,address_id,x,y\n" + "".join(
    f"{p}{i},2021-03-01,F43,{b},{a},{x},{y}\n"
    for p, b, a, x, y, n in INCIDENT_SPEC
    for i in range(n)
)
SIGNALS = """\
signal_id,signal_date,category,source,address_id,buurt_code
s1,2021-04-01,hennepkwekerij,gemeente,,BU00010101
s2,2021-04-01,hennepkwekerij,gemeente,,BU00010201
s3,2021-04-01,hennepkwekerij,gemeente,,BU00010401
"""


def write(root: Path, tables: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (root / f"{name}.csv").write_text(dedent(text), encoding="utf-8")
    return root


def lenient(**over: object) -> object:
    s = load_settings(**over)  # type: ignore[arg-type]
    return dataclasses.replace(
        s, validation=dataclasses.replace(s.validation, max_reject_share=1.0)
    )


TABLES = {
    "areas": AREAS,
    "area_changes": CHANGES,
    "addresses": ADDRESSES,
    "incidents": INCIDENTS,
    "signals": SIGNALS,
}


@pytest.fixture(scope="module")
def validated(spark, tmp_path_factory: pytest.TempPathFactory) -> Validated:
    root = tmp_path_factory.mktemp("vintages")
    folder = write(root / "input", TABLES)
    return validate_inputs(
        spark, str(folder), lenient(), run_date=RUN_DATE, stage_dir=root / "stage"
    )  # type: ignore[arg-type]


def rules_of(v: Validated, table: str, key: str) -> dict[str, set[str]]:
    return {r[key]: set(r["reject_rule"].split(";")) for r in v.rejects[table].collect()}


def test_areas_key_is_per_vintage_and_other_vintages_are_kept_for_placement(
    validated: Validated,
) -> None:
    rej = rules_of(validated, "areas", "buurt_code")
    assert rej == {"BU00010107": {"buurt_code.unique"}, "BU00010999": {"vintage.required"}}
    # the same code in two vintages (BU00010105) is no duplicate; only the target is reported
    acc = validated.accepted["areas"]
    assert sorted(r[0] for r in acc.select("buurt_code").collect()) == sorted(
        [*TARGET, "BU00010211"]
    )
    a = validated.accounting["areas"]
    # 7 target rows used; 8 (2020) + 1 (2019) excluded; 3 rejected
    assert (a["rows_read"], a["rows_used"], a["rows_excluded"], a["rows_rejected"]) == (
        19,
        7,
        9,
        3,
    )
    assert validated.vintages["target_vintage"] == 2021


def test_area_changes_rules(validated: Validated) -> None:
    rej = {
        (r["vintage_from"], r["code_from"], r["vintage_to"], r["code_to"]): set(
            r["reject_rule"].split(";")
        )
        for r in validated.rejects["area_changes"].collect()
    }
    assert rej == CHANGE_REJECTS
    a = validated.accounting["area_changes"]
    assert (a["rows_used"], a["rows_rejected"]) == (10, 4)


def test_incident_rejects(validated: Validated) -> None:
    rej = rules_of(validated, "incidents", "incident_id")
    assert rej == {
        "xgm0": {"buurt_code.split_across_gemeenten"},
        "unk0": {"buurt_code.unknown_vintage"},
        "none0": {"buurt_code.not_in_areas"},
    }
    # the reject file shows the code as delivered
    shown = {r["incident_id"]: r["buurt_code"] for r in validated.rejects["incidents"].collect()}
    assert shown == {"xgm0": "BU00010301", "unk0": "BU00010401", "none0": "BU00019999"}
    sig = rules_of(validated, "signals", "signal_id")
    assert sig == {"s3": {"buurt_code.unknown_vintage"}}


def test_placement_and_counts_per_level(validated: Validated) -> None:
    acc = validated.accepted
    areas = with_unassigned_areas(acc["areas"], placed=[acc["incidents"], acc["signals"]])
    located = locate_incidents(
        acc["incidents"], areas=areas, addresses=acc["addresses"], phenomena={}
    )
    rows = located.select("buurt_code", "wijk_code", "gemeente_code").collect()
    # every accepted incident is located (none lost in a join): 19 delivered, 3 rejected
    assert len(rows) == 16
    by_buurt = pd.Series([r[0] for r in rows]).value_counts().to_dict()
    assert by_buurt == {
        "BU00010105": 2,
        "BU00010104": 4,  # 1 new + 1 + 2 merged
        "BU00010111": 3,  # 1 chain + 2 recoded
        "BU00010212": 1,  # by address
        "BU00010211": 1,  # by point
        "BU000102__": 3,  # the split: wijk WK000102 only
        "BU0001____": 2,  # the split across wijken: gemeente GM0001 only
    }
    by_wijk = pd.Series([r[1] for r in rows]).value_counts().to_dict()
    assert by_wijk == {"WK000101": 9, "WK000102": 5, "WK0001__": 2}
    assert pd.Series([r[2] for r in rows]).value_counts().to_dict() == {"GM0001": 16}
    # the split's incidents are at wijk only: none of them in a real buurt
    split = located.where(F.col("incident_id").isin(*_keys("split", 3))).select("buurt_code")
    assert {r[0] for r in split.collect()} == {"BU000102__"}
    pseudo = {r["buurt_code"]: r["wijk_code"] for r in areas.collect() if "__" in r["buurt_code"]}
    assert pseudo == {"BU000102__": "WK000102", "BU0001____": "WK0001__"}
    signals = {r["signal_id"]: r["buurt_code"] for r in acc["signals"].collect()}
    assert sorted(signals.values()) == ["BU00010111", "BU000102__"]  # s1 recoded, s2 split


def _keys(prefix: str, n: int) -> list[int]:
    from conftest import key

    return [key(f"{prefix}{i}") for i in range(n)]


def test_without_vintages_an_old_code_is_unknown_as_before(spark, tmp_path: Path) -> None:
    areas = "\n".join([HEAD.rsplit(",", 1)[0], *[area(c, 2021).rsplit(",", 1)[0] for c in TARGET]])
    inc = "incident_id,incident_date,crime_code,buurt_code,address_id,x,y\n"
    inc += "i1,2021-03-01,F43,BU00010105,,,\ni2,2021-03-01,F43,BU00010101,,,\n"
    folder = write(tmp_path / "in", {"areas": areas, "incidents": inc})
    v = validate_inputs(spark, str(folder), lenient(), run_date=RUN_DATE, stage_dir=tmp_path / "s")  # type: ignore[arg-type]
    assert rules_of(v, "incidents", "incident_id") == {"i2": {"buurt_code.not_in_areas"}}
    assert v.vintages == {}


def test_configured_target_vintage_must_be_present(spark, tmp_path: Path) -> None:
    from zicht.jobs.io import InputError

    folder = write(tmp_path / "in", TABLES)
    with pytest.raises(InputError, match="target_vintage 2030"):
        validate_inputs(
            spark,
            str(folder),
            lenient(areas={"target_vintage": 2030}),
            run_date=RUN_DATE,
            stage_dir=tmp_path / "s",
        )  # type: ignore[arg-type]


def test_resolve_placements_without_spark() -> None:
    areas = pd.DataFrame(
        [
            (2020, "BU00010101", "WK000101", "GM0001"),
            (2020, "BU00010102", "WK000101", "GM0001"),
            (2021, "BU00010111", "WK000101", "GM0001"),
            (2021, "BU00010112", "WK000101", "GM0001"),
            (2020, "BU00020101", "WK000201", "GM0002"),
            (2021, "BU00020101", "WK000201", "GM0002"),
        ],
        columns=["vintage", "buurt_code", "wijk_code", "gemeente_code"],
    )
    changes = pd.DataFrame(
        [
            # 0101 splits in 0111 and 0112, which 0102 also feeds: a boundary correction
            (2020, "BU00010101", 2021, "BU00010111"),
            (2020, "BU00010101", 2021, "BU00010112"),
            (2020, "BU00010102", 2021, "BU00010112"),
        ],
        columns=["vintage_from", "code_from", "vintage_to", "code_to"],
    )
    got = resolve_placements(areas, changes, target=2021).set_index("buurt_code")
    assert got.loc["BU00010101", "placed_code"] == "BU000101__"
    assert got.loc["BU00010101", "placement_level"] == "wijk"
    # one code_to: all of 0102 lies in 0112, however many other buurten feed it
    assert got.loc["BU00010102", "placed_code"] == "BU00010112"
    assert "BU00020101" not in got.index  # in the target: not an old code
    # 0111 and 0112 miss the split buurt's old incidents (they sit in the wijk's pseudo
    # buurt): no buurt trend for them; 0102's exact move makes nothing inexact by itself
    assert inexact_buurten(got.reset_index()) == {"BU00010111", "BU00010112"}
    only_recoding = resolve_placements(areas, changes.iloc[[2]], target=2021)
    assert inexact_buurten(only_recoding) == set()


# --------------------------------------------------------------------------- areas diff


def test_areas_diff_on_hand_built_polygons() -> None:
    old = {
        "BU00010001": square(0, 0),  # same polygon, new code: recoding
        "BU00010002": square(1000, 0),  # 0002 and 0003 become one buurt: merge
        "BU00010003": square(2000, 0),
        "BU00010004": square(3000, 0),  # split in halves
        "BU00010005": square(4000, 0),  # unchanged (a 0.5 % sliver moved: ignored)
        "BU00010006": square(9000, 9000),  # overlaps nothing new
    }
    new = {
        "BU00010011": square(0, 0),
        "BU00010012": "POLYGON ((1000 0, 3000 0, 3000 1000, 1000 1000, 1000 0))",
        "BU00010013": "POLYGON ((3000 0, 3500 0, 3500 1000, 3000 1000, 3000 0))",
        "BU00010014": "POLYGON ((3500 0, 4005 0, 4005 1000, 3500 1000, 3500 0))",
        "BU00010005": "POLYGON ((4005 0, 5000 0, 5000 1000, 4005 1000, 4005 0))",
    }
    diff = derive_area_changes(old, new, vintage_from=2020, vintage_to=2021)
    assert diff.changes() == [
        (2020, "BU00010001", 2021, "BU00010011"),
        (2020, "BU00010002", 2021, "BU00010012"),
        (2020, "BU00010003", 2021, "BU00010012"),
        (2020, "BU00010004", 2021, "BU00010013"),
        (2020, "BU00010004", 2021, "BU00010014"),
    ]
    assert diff.unmatched == ["BU00010006"]
    assert classify_changes(diff.changes()) == {
        ("BU00010001", "BU00010011"): "recoding",
        ("BU00010002", "BU00010012"): "merge",
        ("BU00010003", "BU00010012"): "merge",
        ("BU00010004", "BU00010013"): "split",
        ("BU00010004", "BU00010014"): "split",
    }
    # a stricter threshold turns the 0.5 % sliver of 0005 into a boundary correction
    strict = derive_area_changes(
        old, new, vintage_from=2020, vintage_to=2021, exact_share=0.999, sliver_share=0.001
    )
    assert (2020, "BU00010005", 2021, "BU00010014") in strict.changes()
    assert (2020, "BU00010005", 2021, "BU00010005") in strict.changes()
    assert classify_changes(strict.changes())[("BU00010005", "BU00010005")] == "correction"


def test_areas_diff_cli(tmp_path: Path) -> None:
    from zicht.jobs.cli import main

    cols = "buurt_code,buurt_name,wijk_code,wijk_name,gemeente_code,gemeente_name,x,y,land_area_ha,geometry_wkt,vintage\n"  # noqa: E501
    old = cols + f'BU00010001,a,WK000100,w,GM0001,g,500,500,100,"{square(0, 0)}",2020\n'
    new = cols + f'BU00010011,a,WK000100,w,GM0001,g,500,500,100,"{square(0, 0)}",2021\n'
    (tmp_path / "old.csv").write_text(old)
    (tmp_path / "new.csv").write_text(new)
    out = tmp_path / "area_changes.csv"
    assert main(["areas", "diff", str(tmp_path / "old.csv"), str(tmp_path / "new.csv"),
                 "--output", str(out)]) == 0  # fmt: skip
    assert out.read_text().splitlines() == [
        "vintage_from,code_from,vintage_to,code_to",
        "2020,BU00010001,2021,BU00010011",
    ]


# --------------------------------------------------------------------------- synth --vintages


def _synthetic_pieces() -> list[tuple[str, object]]:
    """A small generated-like country: GM0001, two wijken of three 1 km buurten, and incidents
    in every buurt in 2023 (old vintage) and 2024 (target)."""
    import pyarrow as pa

    from zicht.features.synthetic import arrow_schema

    rows = []
    for w in (1, 2):
        for b in (1, 2, 3):
            code = f"BU00010{w}0{b}"
            x0, y0 = 150000 + 1000 * b, 450000 + 1000 * w
            rows.append(
                {
                    "buurt_code": code, "buurt_name": code, "wijk_code": code[:8].replace("BU", "WK"),
                    "wijk_name": "w", "gemeente_code": "GM0001", "gemeente_name": "g",
                    "x": x0 + 500.0, "y": y0 + 500.0, "land_area_ha": 100.0,
                    "geometry_wkt": square(x0, y0), "inhabitants": 100,
                }
            )  # fmt: skip
    schema = arrow_schema("areas")
    areas = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema)
    inc = [
        {"incident_id": f"i{r['buurt_code']}{y}", "incident_date": dt.date(y, 6, 1),
         "crime_code": "F43", "buurt_code": r["buurt_code"]}
        for r in rows
        for y in (2023, 2024)
    ]  # fmt: skip
    ischema = arrow_schema("incidents")
    incidents = pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in ischema} for r in inc], ischema
    )
    return [("areas", areas), ("incidents", incidents)]


def test_synth_vintages_truth_matches_areas_diff_and_placement(spark, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from zicht.features.synthetic_vintages import with_vintages

    seed = 7
    print(f"seed {seed}")
    out = dict(with_vintages(iter(_synthetic_pieces()), seed=seed, years=(2023, 2024)))  # type: ignore[arg-type]
    areas = out["areas"].to_pandas()  # type: ignore[attr-defined]
    truth = out["_truth/vintage_changes"].to_pandas()  # type: ignore[attr-defined]
    assert sorted(truth["kind"].value_counts().items()) == [
        ("merge", 2),
        ("recoding", 1),
        ("split", 2),
    ]
    # the areas diff, on the written polygons alone, finds exactly the planted changes
    old = areas[areas["vintage"] == 2023].set_index("buurt_code")["geometry_wkt"].to_dict()
    new = areas[areas["vintage"] == 2024].set_index("buurt_code")["geometry_wkt"].to_dict()
    diff = derive_area_changes(old, new, vintage_from=2023, vintage_to=2024)
    planted = sorted(
        truth[["vintage_from", "code_from", "vintage_to", "code_to"]].itertuples(
            index=False, name=None
        )
    )
    assert sorted(diff.changes()) == planted
    kinds = classify_changes(diff.changes())
    assert {(a, b): k for _, a, _, b, k in truth.itertuples(index=False, name=None)} == kinds
    # validated, every 2023 incident is placed where the truth says; none is rejected
    folder = tmp_path / "in"
    for name in ("areas", "area_changes", "incidents"):
        (folder / f"{name}.parquet").mkdir(parents=True)
        pq.write_table(out[name], folder / f"{name}.parquet" / "part-00000.parquet")  # type: ignore[arg-type]
    v = validate_inputs(spark, str(folder), lenient(), run_date=RUN_DATE, stage_dir=tmp_path / "s")  # type: ignore[arg-type]
    assert v.accounting["incidents"]["rows_rejected"] == 0
    placed = out["_truth/vintage_placements"].to_pandas()  # type: ignore[attr-defined]
    raw = out["incidents"].to_pandas()  # type: ignore[attr-defined]
    delivered = dict(zip(raw["incident_id"].map(_key1), raw["buurt_code"], strict=True))
    got = {r["incident_id"]: r["buurt_code"] for r in v.accepted["incidents"].collect()}
    expected = dict(zip(placed["old_code"], placed["placed_code"], strict=True))
    old_coded = {i: c for i, c in delivered.items() if c in expected}
    assert len(old_coded) == 4  # recoded 1, merged 1, split 2 (one per target buurt)
    assert {i: got[i] for i in old_coded} == {i: expected[c] for i, c in old_coded.items()}
    assert all(got[i] == c for i, c in delivered.items() if i not in old_coded)


def _key1(pseudonym: str) -> int:
    from conftest import key

    return key(pseudonym)


# --------------------------------------------------------------------------- the whole run


def _areas_with_polygons() -> str:
    """AREAS with a polygon on every row (the hot spots want every buurt's or none)."""
    lines = AREAS.splitlines()
    out = [lines[0]]
    for i, ln in enumerate(lines[1:]):
        if ln.startswith("BU00010211,"):
            out.append(ln)
            continue
        head, vintage = ln.rsplit(",", 1)
        out.append(f'{head.removesuffix(",")},"{square(100000 + 1000 * i, 400000)}",{vintage}')
    return "\n".join(out)


@pytest.mark.e2e
def test_run_counts_the_unassigned_part_at_wijk_and_never_exports_it(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from zicht.jobs import run as run_job

    folder = write(tmp_path / "input", {**TABLES, "areas": _areas_with_polygons()})
    (tmp_path / "conf.yaml").write_text("validation:\n  max_reject_share: 1.0\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "output"
    args = ["--input", str(folder), "--output", str(out), "--conf", str(tmp_path / "conf.yaml")]
    assert run_job.main(args) == 0
    ind = pd.read_parquet(out / "restricted" / "indicators.parquet")
    # F43 is a drugs code: every accepted incident counts (see test_placement_... for the sums)
    got = ind[(ind.indicator == "drugs.incidents") & (ind.year == 2021) & (ind.value > 0)]
    assert dict(zip(got.area_code, got.value, strict=True)) == {
        "BU00010105": 2,
        "BU00010104": 4,
        "BU00010111": 3,
        "BU00010211": 1,
        "BU00010212": 1,
        "BU000102__": 3,
        "BU0001____": 2,
        "WK000101": 9,
        "WK000102": 5,  # 1 + 1 in its buurten, 3 in its unassigned part
        "WK0001__": 2,
        "GM0001": 16,
    }
    audit = pd.read_parquet(out / "restricted" / "disclosure_audit.parquet")
    assert {"BU000102__", "BU0001____"} <= set(audit.area_code)  # cells of their own
    for level in ("buurt", "wijk", "gemeente"):
        pub = pd.read_csv(out / "export" / f"indicators_{level}.csv", dtype=str)
        assert not pub.area_code.str.endswith("__").any(), level
    # the split's successors miss its old years' incidents: no published buurt trend for them
    trends = pd.read_csv(out / "export" / "trends.csv", dtype=str)
    succ = trends[trends.area_code.isin(["BU00010211", "BU00010212"])]
    assert len(succ) and not (succ.status == "ok").any()
    assert (trends[trends.level == "buurt"].status == "ok").any()  # other buurten have one
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vintages"] == {
        "target_vintage": 2021,
        "placed_above_buurt": {"incidents": {"wijk": 3, "gemeente": 2}, "signals": {"wijk": 1}},
    }
