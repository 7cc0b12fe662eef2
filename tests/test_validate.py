"""Contract rules: one bad row per rule, its reject with the rule named, and the accounting.

The input folder is written by hand here (CSV text, as a partner would deliver it), so the
expected rejects come from the contract, not from the code under test. One validation run
serves all the per-rule cases (Spark start-up dominates; each case is its own test).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from textwrap import dedent

import pytest
from conftest import key

from zicht.features.settings import Settings
from zicht.jobs.config import load_settings
from zicht.jobs.io import InputError
from zicht.jobs.validate_inputs import Validated
from zicht.jobs.validate_inputs import validate_inputs as _validate_inputs

pytestmark = pytest.mark.spark

RUN_DATE = dt.date(2026, 1, 15)


def square(x0: float, y0: float, size: float = 1000.0) -> str:
    x1, y1 = x0 + size, y0 + size
    return f'"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"'


AREAS = f"""\
buurt_code,buurt_name,wijk_code,wijk_name,gemeente_code,gemeente_name,x,y,land_area_ha,geometry_wkt,inhabitants
BU03630001,Oost,WK036300,Centrum,GM0363,Amsterdam,120500,486500,100,{square(120000, 486000)},1200
BU03630002,West,WK036300,Centrum,GM0363,Amsterdam,121500,486500,100,{square(121000, 486000)},800
BU0363AD03,Noord,WK0363AD,Zuid,GM0363,Amsterdam,122500,486500,100,{square(122000, 486000)},500
BU0363X9,Bad pattern,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,,
BU03630004,Bad wijk,WK036399,Centrum,GM0363,Amsterdam,120500,486500,10,,
BU03630005,Bad gemeente,WK036300,Centrum,GM0364,Amsterdam,120500,486500,10,,
BU03630006,Bad x,WK036300,Centrum,GM0363,Amsterdam,400000,486500,10,,
BU03630007,Bad area,WK036300,Centrum,GM0363,Amsterdam,120500,486500,0,,
BU03630008,,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,,
BU03630010,Bad geometry,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,POINT (1 2),
BU03630011,Dup,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,,
BU03630011,Dup,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,,
BU03630012,Bad number,WK036300,Centrum,GM0363,Amsterdam,abc,486500,10,,
BU03630013,Negative inhabitants,WK036300,Centrum,GM0363,Amsterdam,120500,486500,10,,-5
"""

ADDRESSES = """\
address_id,buurt_code,use_type,floor_area_m2,woz_value_eur
a1,BU03630001,woonfunctie,80,250000
a2,BU03630002,woonfunctie,95,
a3,BU0363AD03,winkelfunctie,300,900000
a_badbuurt,BU03630004,woonfunctie,80,1
a_nobuurt,BU03639999,woonfunctie,80,1
a_use,BU03630001,kasteel,80,1
a_floor,BU03630001,woonfunctie,0,1
a_frac,BU03630001,woonfunctie,12.5,1
a_woz,BU03630001,woonfunctie,80,-1
"""

INCIDENTS = """\
incident_id,incident_date,crime_code,buurt_code,address_id,x,y
i1,2024-03-01,F43,BU03630001,,,
i2,2024-05-01,A72 ,,a1,,
i3,2023-07-01,3.1.1,,,121400,486400
i4,2023-02-01,F94,BU0363AD03,,,
i_future,2099-01-01,F43,BU03630001,,,
i_old,1985-01-01,F43,BU03630001,,,
i_baddate,2024-13-45,F43,BU03630001,,,
i_pattern,2024-01-01,XYZ,BU03630001,,,
i_unknown,2024-01-01,Z999,BU03630001,,,
i_nobuurt,2024-01-01,F43,BU03639999,,,
i_noaddr,2024-01-01,F43,,a_missing,,
i_rejaddr,2024-01-01,F43,,a_use,,
i_halfxy,2024-01-01,F43,,,121400,
i_noloc,2024-01-01,F43,,,,
i_outside,2024-01-01,F43,,,150000,450000
i_dup,2024-01-01,F43,BU03630001,,,
i_dup,2024-01-02,F43,BU03630001,,,
"""

SUSPECTS = """\
incident_id,person_id
i1,p1
i1,p2
i2,p_elsewhere
i3,p3
i_future,p1
i_nothere,p1
i4,p4
i4,p4
"""

PERSONS = """\
person_id,birth_year,sex,address_id,household_id,registered_since
p1,1990,M,a1,h1,2015-01-01
p2,2000,V,a2,h2,2020-06-01
p3,2010,O,a3,,2024-11-01
p_old,1850,M,a1,h1,2015-01-01
p_sex,1980,X,a1,h1,2015-01-01
p_addr,1980,M,a_gone,h1,2015-01-01
p_future,1980,M,a1,h1,2099-01-01
p_afterref,1980,V,a1,h1,2025-06-01
"""

COMPANIES = """\
company_id,sbi_code,legal_form,address_id,registered_date,deregistered_date
c1,5610,bv,a3,2010-01-01,
c_sbi,A1,bv,a3,2010-01-01,
c_form,5610,ltd,a3,2010-01-01,
c_dereg,5610,bv,a3,2010-01-01,2009-01-01
"""

COMPANY_ROLES = """\
company_id,person_id,role,start_date,end_date
c1,p1,bestuurder,2010-01-01,
c1,p2,koning,2010-01-01,
c1,p3,eigenaar,2012-01-01,2011-01-01
c_none,p1,eigenaar,2010-01-01,
c_sbi,p1,eigenaar,2010-01-01,
"""

SIGNALS = """\
signal_id,signal_date,category,source,address_id,buurt_code
s1,2024-04-01,hennepkwekerij,gemeente,a1,
s2,2023-04-01,witwas_signaal,riec,,BU03630002
s_cat,2024-04-01,onbekend,gemeente,a1,
s_src,2024-04-01,drugslab,buurman,a1,
s_noloc,2024-04-01,drugslab,gemeente,,
s_old,1980-04-01,drugslab,gemeente,a1,
s_outside_period,2021-04-01,drugslab,gemeente,a1,
"""

PERSON_LINKS = """\
person_id_a,person_id_b,layer
p1,p2,familie
p1,p1,familie
p1,p3,vrienden
"""

TRANSACTIONS = """\
transaction_id,address_id,transaction_date,price_eur,buyer_id,buyer_kind
t1,a1,2023-05-01,300000,p1,person
t_price,a1,2023-05-01,0,p1,person
t_kind,a1,2023-05-01,300000,p1,alien
t_addr,a_none,2023-05-01,300000,,unknown
"""

INCOME = """\
household_id,year,disposable_income_eur
h1,2024,31000
h_year,abc,31000
h_dup,2024,1
h_dup,2024,2
h_malformed,2024,1,extra
"""

TABLES = {
    "areas": AREAS,
    "addresses": ADDRESSES,
    "incidents": INCIDENTS,
    "suspects": SUSPECTS,
    "persons": PERSONS,
    "companies": COMPANIES,
    "company_roles": COMPANY_ROLES,
    "signals": SIGNALS,
    "person_links": PERSON_LINKS,
    "property_transactions": TRANSACTIONS,
    "household_income": INCOME,
}


def validate_inputs(spark, folder: str, settings: Settings, *, run_date: dt.date) -> Validated:
    """Validation with its staging folder beside the input (each call gets its own)."""
    stage = Path(folder).parent / f"stage-{len(list(Path(folder).parent.iterdir()))}"
    return _validate_inputs(spark, folder, settings, run_date=run_date, stage_dir=stage)


def write_folder(root: Path, tables: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (root / f"{name}.csv").write_text(dedent(text), encoding="utf-8")
    return root


def lenient(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, validation=dataclasses.replace(settings.validation, max_reject_share=1.0)
    )


@pytest.fixture(scope="module")
def validated(spark, tmp_path_factory: pytest.TempPathFactory) -> Validated:
    folder = write_folder(tmp_path_factory.mktemp("contract") / "input", TABLES)
    return validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)


@pytest.fixture(scope="module")
def rejected(validated: Validated) -> dict[str, dict[str, set[str]]]:
    """table -> first key column value -> set of rules."""
    out: dict[str, dict[str, set[str]]] = {}
    for table, df in validated.rejects.items():
        first = df.columns[0]
        rows: dict[str, set[str]] = {}
        for r in df.collect():
            rows.setdefault(str(r[first]), set()).update(r["reject_rule"].split(";"))
        out[table] = rows
    return out


CASES = [
    ("areas", "BU0363X9", "buurt_code.pattern"),
    ("areas", "BU03630004", "wijk_code.matches_buurt"),
    ("areas", "BU03630005", "gemeente_code.matches_buurt"),
    ("areas", "BU03630006", "x.range"),
    ("areas", "BU03630007", "land_area_ha.positive"),
    ("areas", "BU03630008", "buurt_name.required"),
    ("areas", "BU03630010", "geometry_wkt.not_polygon"),
    ("areas", "BU03630011", "buurt_code.unique"),
    ("areas", "BU03630012", "x.parse"),
    ("areas", "BU03630013", "inhabitants.negative"),
    ("addresses", "a_badbuurt", "buurt_code.refers_to_rejected_areas"),
    ("addresses", "a_nobuurt", "buurt_code.not_in_areas"),
    ("addresses", "a_use", "use_type.vocabulary"),
    ("addresses", "a_floor", "floor_area_m2.positive"),
    ("addresses", "a_frac", "floor_area_m2.parse"),
    ("addresses", "a_woz", "woz_value_eur.negative"),
    ("incidents", "i_future", "incident_date.after_run_date"),
    ("incidents", "i_old", "incident_date.before_1990"),
    ("incidents", "i_baddate", "incident_date.parse"),
    ("incidents", "i_pattern", "crime_code.pattern"),
    ("incidents", "i_unknown", "crime_code.unknown"),
    ("incidents", "i_nobuurt", "buurt_code.not_in_areas"),
    ("incidents", "i_noaddr", "address_id.not_in_addresses"),
    ("incidents", "i_rejaddr", "address_id.refers_to_rejected_addresses"),
    ("incidents", "i_halfxy", "xy.incomplete"),
    ("incidents", "i_noloc", "location.missing"),
    ("incidents", "i_outside", "location.outside_areas"),
    ("incidents", "i_dup", "incident_id.unique"),
    ("suspects", "i_future", "incident_id.refers_to_rejected_incidents"),
    ("suspects", "i_nothere", "incident_id.not_in_incidents"),
    ("suspects", "i4", "incident_id+person_id.unique"),
    ("persons", "p_old", "birth_year.range"),
    ("persons", "p_sex", "sex.vocabulary"),
    ("persons", "p_addr", "address_id.not_in_addresses"),
    ("persons", "p_future", "registered_since.after_run_date"),
    ("persons", "p_afterref", "registered_since.after_reference_date"),
    ("companies", "c_sbi", "sbi_code.pattern"),
    ("companies", "c_form", "legal_form.vocabulary"),
    ("companies", "c_dereg", "deregistered_date.before_registered"),
    ("company_roles", "c_none", "company_id.not_in_companies"),
    ("company_roles", "c_sbi", "company_id.refers_to_rejected_companies"),
    ("signals", "s_cat", "category.unknown"),
    ("signals", "s_src", "source.vocabulary"),
    ("signals", "s_noloc", "location.missing"),
    ("signals", "s_old", "signal_date.before_1990"),
    ("person_links", "p1", "person_id_b.same_as_a"),
    ("property_transactions", "t_price", "price_eur.positive"),
    ("property_transactions", "t_kind", "buyer_kind.vocabulary"),
    ("property_transactions", "t_addr", "address_id.not_in_addresses"),
    ("household_income", "h_year", "year.parse"),
    ("household_income", "h_dup", "household_id+year.unique"),
    ("household_income", "h_malformed", "row.malformed"),
]


@pytest.mark.parametrize(("table", "key", "rule"), CASES, ids=[c[2] + "@" + c[0] for c in CASES])
def test_bad_row_is_rejected_with_its_rule(rejected, table: str, key: str, rule: str) -> None:
    assert key in rejected[table], f"{table} row {key} was not rejected"
    assert rule in rejected[table][key]


def test_role_rules(rejected) -> None:
    # company_roles rows are keyed by company c1 three times: the bad role and the bad dates
    rules = rejected["company_roles"]["c1"]
    assert {"role.vocabulary", "end_date.before_start"} <= rules


def test_layer_vocabulary(rejected) -> None:
    assert "layer.vocabulary" in rejected["person_links"]["p1"]


# Rows that break no rule, per table, written by hand from the inputs above.
EXPECTED_USED = {
    "areas": 3,
    "addresses": 3,
    "incidents": 4,
    "suspects": 4,
    "persons": 3,
    "companies": 1,
    "company_roles": 1,
    "signals": 2,
    "person_links": 1,
    "property_transactions": 1,
    "household_income": 1,
}


@pytest.mark.parametrize("table", sorted(EXPECTED_USED))
def test_accounting_identity(validated: Validated, table: str) -> None:
    a = validated.accounting[table]
    n_lines = len(dedent(TABLES[table]).strip().splitlines()) - 1
    assert a["rows_read"] == n_lines
    assert a["rows_read"] == a["rows_used"] + a["rows_rejected"] + a["rows_excluded"]
    assert a["rows_used"] == EXPECTED_USED[table]
    assert validated.accepted[table].count() == EXPECTED_USED[table]


def test_outside_period_signal_is_excluded_not_rejected(validated: Validated, rejected) -> None:
    assert "s_outside_period" not in rejected["signals"]
    assert validated.accounting["signals"]["rows_excluded"] == 1


def test_period_and_reference_date_from_valid_incidents(validated: Validated) -> None:
    assert validated.years == (2023, 2024)
    assert validated.reference_date == dt.date(2024, 12, 31)


def test_trailing_space_code_and_point_location(validated: Validated) -> None:
    rows = {
        r["incident_id"]: r
        for r in validated.accepted["incidents"]
        .select("incident_id", "crime_code", "crime_class", "point_buurt_code")
        .collect()
    }
    # the store keys every pseudonym (conftest.key: XXH64 computed without Spark)
    assert rows[key("i2")]["crime_code"] == "A72"
    assert rows[key("i2")]["crime_class"] == "1.2.3"  # CBS 47018NED: A72 Diefstal fiets
    assert rows[key("i3")]["point_buurt_code"] == "BU03630002"


def test_rejects_keep_raw_text(rejected, validated: Validated) -> None:
    row = validated.rejects["incidents"].where("incident_id = 'i_baddate'").first()
    assert row is not None and row["incident_date"] == "2024-13-45"
    assert set(validated.rejects["incidents"].columns) == {
        "incident_id",
        "incident_date",
        "crime_code",
        "buurt_code",
        "address_id",
        "x",
        "y",
        "reject_rule",
    }


# ----------------------------------------------------------------- stopping conditions


def test_sensitive_column_stops_before_anything(spark, tmp_path: Path) -> None:
    tables = dict(TABLES)
    tables["persons"] = PERSONS.replace("person_id,", "person_id,bsn,", 1).replace(
        "\np1,", "\np1,123456782,"
    )
    folder = write_folder(tmp_path / "in", tables)
    with pytest.raises(InputError, match=r"persons.*bsn"):
        validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)


def test_missing_required_column(spark, tmp_path: Path) -> None:
    areas = (
        "buurt_code,buurt_name,wijk_code,wijk_name,gemeente_code,gemeente_name,x,y\n"
        "BU03630001,Oost,WK036300,Centrum,GM0363,Amsterdam,120500,486500\n"
    )
    folder = write_folder(tmp_path / "in", {"areas": areas, "incidents": INCIDENTS})
    with pytest.raises(InputError, match=r"table areas: required column\(s\) land_area_ha"):
        validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)


def test_missing_required_table(spark, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", {"areas": AREAS})
    with pytest.raises(InputError, match="table incidents: required"):
        validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)


def test_reject_share_above_limit_names_table_rule_and_keys(spark, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", {"areas": AREAS, "incidents": INCIDENTS})
    with pytest.raises(InputError) as err:
        validate_inputs(spark, str(folder), load_settings(), run_date=RUN_DATE)
    msg = str(err.value)
    # areas come first: 11 of 14 rows rejected
    assert "table areas" in msg and "above the limit of 5.0%" in msg
    assert "example keys:" in msg and "BU0363" in msg


def test_strict_stops_at_first_reject(spark, tmp_path: Path) -> None:
    good_areas = "\n".join(dedent(AREAS).splitlines()[:4])
    folder = write_folder(tmp_path / "in", {"areas": good_areas, "incidents": INCIDENTS})
    settings = load_settings(validation={"strict": True})
    with pytest.raises(InputError, match=r"table incidents: --strict"):
        validate_inputs(spark, str(folder), settings, run_date=RUN_DATE)


def test_parquet_logical_types(spark, tmp_path: Path) -> None:
    """int32 counts and timestamp dates are accepted; the reader casts them safely."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_folder(tmp_path / "in", {"areas": "\n".join(dedent(AREAS).splitlines()[:4])})
    pq.write_table(
        pa.table(
            {
                "incident_id": pa.array(["x1", "x2"], pa.large_string()),
                "incident_date": pa.array(
                    [dt.datetime(2024, 1, 5, 13, 0), dt.datetime(2024, 2, 1)], pa.timestamp("us")
                ),
                "crime_code": ["F43", "A72"],
                "buurt_code": ["BU03630001", "BU03630002"],
                "extra_note": ["a", "b"],
            }
        ),
        folder / "incidents.parquet",
    )
    v = validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)
    assert v.accounting["incidents"]["rows_used"] == 2
    assert v.extra_columns["incidents"] == ["extra_note"]
    dates = sorted(r[0] for r in v.accepted["incidents"].select("incident_date").collect())
    assert dates == [dt.date(2024, 1, 5), dt.date(2024, 2, 1)]


def test_configured_period_excludes_and_cascades(spark, tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "in", {k: TABLES[k] for k in ("areas", "addresses", "incidents", "suspects")}
    )
    settings = lenient(load_settings(period={"years": [2024]}))
    v = validate_inputs(spark, str(folder), settings, run_date=RUN_DATE)
    # i3 and i4 are 2023: excluded, not rejected; their suspects (i3,p3) are excluded too
    assert v.accounting["incidents"]["rows_excluded"] == 2
    assert v.accounting["suspects"]["rows_excluded"] == 1
    assert v.accounting["incidents"]["rows_used"] == 2


def test_the_key_set_covers_the_rejected_rows_and_the_guard_finds_them(
    spark, validated: Validated
) -> None:
    """The leak guard probes ``pseudonym_keys`` alone for a keyed store (no text probe of the
    validated tables' ``_raw_`` columns): the key set must hold the key of every pseudonym of
    every rejected row, as delivered, and a file holding one must be stopped. Expected keys
    come from the reject rows' text through the independent xxhash package."""
    from zicht.features.keys import key_set
    from zicht.features.schemas import PSEUDONYM_COLUMNS
    from zicht.jobs.export.guard import scan_export

    keys = key_set(validated.raw)
    got = {r["key"] for r in keys.collect()}  # the planted rows: a few hundred keys
    rejected: set[str] = set()
    for table, df in validated.rejects.items():
        for c in PSEUDONYM_COLUMNS.get(table, ()):
            if c in df.columns:
                rejected |= {
                    str(v) for (v,) in df.select(c).collect() if v is not None and str(v).strip()
                }
    accepted: set[str] = set()
    for table, df in validated.accepted.items():
        for c in PSEUDONYM_COLUMNS.get(table, ()):
            if c in df.columns:
                accepted |= {str(v) for (v,) in df.select(c).collect() if v is not None}
    only_rejected = sorted(p for p in rejected - accepted if len(p) >= 6)
    assert "i_future" in only_rejected and len(only_rejected) > 10
    assert {key(p) for p in rejected} <= got
    keyed = {"pseudonym_keys": ("key",)}
    for p in (only_rejected[0], "i_future"):
        leaky = {
            "indicators_buurt.csv": f"level,area_code,note\r\nbuurt,BU03630001,{p}\r\n".encode()
        }
        assert scan_export(spark, leaky, {"pseudonym_keys": keys}, {}, keyed) == [
            "export/indicators_buurt.csv holds 1 value(s) of an input pseudonym column"
        ]
    clean = {"indicators_buurt.csv": b"level,area_code,note\r\nbuurt,BU03630001,i_futurex\r\n"}
    assert scan_export(spark, clean, {"pseudonym_keys": keys}, {}, keyed) == []
