"""Lean ingest (issue 14): typed Parquet cast without a text round trip, raw text on rejected
rows only, the ``<column>.encoding`` rule, and point-in-polygon over broadcast polygons.

Inputs are written inline (pyarrow for the typed Parquet, so the source types are the ones a
partner's tool would write); the expected typed values, rules and raw texts are written out by
hand from those inputs. The stored validated frame is read back with pyarrow, not with the
helpers under test.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import key
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.link import with_point_buurt
from zicht.features.validate import (
    Parent,
    Prechecked,
    RuleContext,
    dangling_references,
    duplicate_keys,
    key_hash_candidates,
    validate_table,
)
from zicht.jobs.config import load_settings
from zicht.jobs.validate_inputs import Validated, validate_inputs

pytestmark = pytest.mark.spark

RUN_DATE = dt.date(2026, 1, 15)


def square(x0: float, y0: float, size: float = 1000.0) -> str:
    x1, y1 = x0 + size, y0 + size
    return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def _write_typed_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "buurt_code": ["BU03630001", "BU03630002"],
                "buurt_name": ["Oost", "West"],
                "wijk_code": ["WK036300", "WK036300"],
                "wijk_name": ["Centrum", "Centrum"],
                "gemeente_code": ["GM0363", "GM0363"],
                "gemeente_name": ["Amsterdam", "Amsterdam"],
                "x": pa.array([120500.0, 121500.0], pa.float64()),
                "y": pa.array([486500.0, 486500.0], pa.float64()),
                # an integer source for a double column: cast, no text
                "land_area_ha": pa.array([100, 80], pa.int32()),
                "geometry_wkt": [square(120000, 486000), square(121000, 486000)],
                # a narrow integer width for an integer column
                "inhabitants": pa.array([1200, 800], pa.int16()),
            }
        ),
        root / "areas.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "address_id": ["a_ok", "a_whole", "a_frac", "a_huge", "a_nan", "a_u64"],
                "buurt_code": ["BU03630001"] * 6,
                "use_type": ["woonfunctie"] * 6,
                # doubles in an integer column: 95.0 fits, 1.5, 1e19 and NaN do not
                "floor_area_m2": pa.array([80.0, 95.0, 1.5, 1e19, math.nan, 70.0], pa.float64()),
                # unsigned 64-bit (Spark reads it as decimal(20,0)): the largest value does not fit
                "woz_value_eur": pa.array([250_000, None, 1, 1, 1, 2**64 - 1], pa.uint64()),
            }
        ),
        root / "addresses.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "incident_id": ["i_code", "i_point", "i_addr"],
                "incident_date": pa.array(
                    [dt.date(2024, 3, 1), dt.date(2024, 5, 2), dt.date(2023, 7, 1)], pa.date32()
                ),
                "crime_code": ["F43", "3.1.1", "A72"],
                "buurt_code": ["BU03630001", None, None],
                "address_id": [None, None, "a_ok"],
                "x": pa.array([None, 121400.0, None], pa.float64()),
                "y": pa.array([None, 486400.0, None], pa.float64()),
            }
        ),
        root / "incidents.parquet",
    )
    return root


@pytest.fixture(scope="module")
def typed_run(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Validated, Path]:
    root = tmp_path_factory.mktemp("typed")
    folder = _write_typed_folder(root / "input")
    settings = load_settings(validation={"max_reject_share": 1.0})
    # the stage folder as a URI string, as the lead's locations will be
    v = validate_inputs(
        spark, str(folder), settings, run_date=RUN_DATE, stage_dir=f"file://{root}/stage/"
    )
    return v, root / "stage" / "validated"


def test_typed_parquet_values_are_cast_directly(typed_run: tuple[Validated, Path]) -> None:
    v, _ = typed_run
    areas = {r["buurt_code"]: r.asDict() for r in v.accepted["areas"].collect()}
    assert areas["BU03630001"]["land_area_ha"] == 100.0
    assert areas["BU03630002"]["inhabitants"] == 800
    assert v.accepted["areas"].schema["land_area_ha"].dataType == T.DoubleType()
    assert v.accepted["areas"].schema["inhabitants"].dataType == T.LongType()
    addresses = {
        r["address_id"]: (r["floor_area_m2"], r["woz_value_eur"])
        for r in v.accepted["addresses"].collect()
    }
    assert addresses == {key("a_ok"): (80, 250_000), key("a_whole"): (95, None)}
    assert v.accepted["addresses"].schema["floor_area_m2"].dataType == T.LongType()
    incidents = {
        r["incident_id"]: (r["incident_date"], r["point_buurt_code"])
        for r in v.accepted["incidents"].collect()
    }
    assert incidents == {
        key("i_code"): (dt.date(2024, 3, 1), None),
        key("i_point"): (dt.date(2024, 5, 2), "BU03630002"),
        key("i_addr"): (dt.date(2023, 7, 1), None),
    }


def test_values_that_do_not_fit_are_parse_rejects_with_their_text(
    typed_run: tuple[Validated, Path],
) -> None:
    v, _ = typed_run
    got = {
        r["address_id"]: (r["reject_rule"], r["floor_area_m2"], r["woz_value_eur"])
        for r in v.rejects["addresses"].collect()
    }
    assert got == {
        "a_frac": ("floor_area_m2.parse", "1.5", "1"),
        "a_huge": ("floor_area_m2.parse", "1.0E19", "1"),
        "a_nan": ("floor_area_m2.parse", "NaN", "1"),
        "a_u64": ("woz_value_eur.parse", "70.0", "18446744073709551615"),
    }
    a = v.accounting["addresses"]
    assert (a["rows_read"], a["rows_used"], a["rows_rejected"]) == (6, 2, 4)


def test_stored_frame_has_raw_text_on_rejected_rows_only(
    typed_run: tuple[Validated, Path],
) -> None:
    _, validated_dir = typed_run
    stored = ds.dataset(str(validated_dir / "addresses"), format="parquet").to_table().to_pylist()
    raw_columns = [c for c in stored[0] if c.startswith("_raw_")]
    assert sorted(raw_columns) == [
        "_raw_address_id",
        "_raw_buurt_code",
        "_raw_floor_area_m2",
        "_raw_use_type",
        "_raw_woz_value_eur",
    ]
    for row in stored:
        texts = [row[c] for c in raw_columns]
        if row["reject_rule"] is None:
            assert texts == [None] * len(raw_columns), row
        else:
            assert row["address_id"] == key(row["_raw_address_id"])
            assert None not in (row["_raw_floor_area_m2"], row["_raw_use_type"])
    rejected = {r["_raw_address_id"]: r["_raw_woz_value_eur"] for r in stored if r["reject_rule"]}
    assert rejected["a_u64"] == "18446744073709551615"


AREA = {
    "wijk_code": "WK036300",
    "wijk_name": "Centrum",
    "gemeente_code": "GM0363",
    "gemeente_name": "Amsterdam",
    "x": "120500",
    "y": "486500",
    "land_area_ha": "100",
}


@pytest.mark.parametrize("flag", ["_encoding_errors", "_invalid_encoding"])
def test_encoding_flags_are_encoding_rejects(spark: SparkSession, flag: str) -> None:
    """Rows as a CSV read hands them over: every field text, the flagged columns listed."""
    rows = [
        {**AREA, "buurt_code": "BU03630001", "buurt_name": "Caf\ufffd", flag: ["buurt_name"]},
        {**AREA, "buurt_code": "BU03630002", "buurt_name": "West", flag: []},
        {**AREA, "buurt_code": "BU03630003", "buurt_name": "Noord", flag: None},
        {
            **AREA,
            "buurt_code": "BU03630004",
            "buurt_name": "Zuid\ufffd",
            "wijk_code": "WK03630\ufffd",
            flag: ["buurt_name", "wijk_code"],
        },
    ]
    names = [
        "buurt_code", "buurt_name", "wijk_code", "wijk_name", "gemeente_code", "gemeente_name",
        "x", "y", "land_area_ha", "geometry_wkt", "inhabitants", "_corrupt_record",
    ]  # fmt: skip
    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in names]
        + [T.StructField(flag, T.ArrayType(T.StringType()))]
    )
    raw = spark.createDataFrame([{n: r.get(n) for n in [*names, flag]} for r in rows], schema)
    got = dict(
        validate_table("areas", raw, RuleContext(run_date=RUN_DATE))
        .select("buurt_code", "reject_rule")
        .collect()
    )
    assert got["BU03630001"] == "buurt_name.encoding"
    assert got["BU03630002"] is None and got["BU03630003"] is None
    assert set(got["BU03630004"].split(";")) == {
        "buurt_name.encoding",
        "wijk_code.encoding",
        "wijk_code.pattern",
        "wijk_code.matches_buurt",
    }


def test_no_encoding_flag_column_is_fine(spark: SparkSession) -> None:
    """Today's reader hands over no flag column: no encoding rule, nothing fails."""
    names = [
        "buurt_code", "buurt_name", "wijk_code", "wijk_name", "gemeente_code", "gemeente_name",
        "x", "y", "land_area_ha", "geometry_wkt", "inhabitants",
    ]  # fmt: skip
    row = {**AREA, "buurt_code": "BU03630001", "buurt_name": "Caf\ufffd"}
    raw = spark.createDataFrame(
        [tuple(row.get(n) for n in names)], ", ".join(f"{n} string" for n in names)
    )
    got = validate_table("areas", raw, RuleContext(run_date=RUN_DATE)).first()
    assert got is not None and got["reject_rule"] is None


def test_point_in_polygon_over_broadcast_polygons(spark: SparkSession) -> None:
    polygons = [
        ("BU00010002", square(1000, 0)),
        ("BU00010001", square(0, 0)),
        ("BU00010003", None),  # a buurt without geometry is skipped
    ]
    rows = [
        ("in_a", None, None, 500.0, 500.0),
        ("in_b", None, None, 1500.0, 10.0),
        ("edge", None, None, 1000.0, 500.0),  # on the shared edge: the smallest code
        ("outside", None, None, 5000.0, 5000.0),
        ("has_code", "BU00010002", None, 500.0, 500.0),  # not looked up
        ("has_addr", None, "a1", 500.0, 500.0),  # not looked up
        ("half", None, None, 500.0, None),
    ]
    df = spark.createDataFrame(
        rows, "incident_id string, buurt_code string, address_id string, x double, y double"
    ).repartition(3)
    out = with_point_buurt(df, polygons=polygons)
    assert out.columns == [*df.columns, "point_buurt_code"]
    got = dict(out.select("incident_id", "point_buurt_code").collect())
    assert got == {
        "in_a": "BU00010001",
        "in_b": "BU00010002",
        "edge": "BU00010001",
        "outside": None,
        "has_code": None,
        "has_addr": None,
        "half": None,
    }
    # a second frame over the same polygons (the workers' cached tree) gives the same answer
    again = with_point_buurt(df.where("incident_id = 'in_b'"), polygons=polygons)
    assert again.select("point_buurt_code").first()[0] == "BU00010002"


def test_point_in_polygon_without_polygons(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("p", None, None, 1.0, 2.0)],
        "incident_id string, buurt_code string, address_id string, x double, y double",
    )
    assert with_point_buurt(df, polygons=[]).first()["point_buurt_code"] is None


def _local(spark: SparkSession, df: DataFrame) -> DataFrame:
    """A frame collected and handed back as a local relation (as the ingest job does)."""
    return spark.createDataFrame(df.collect(), df.schema)


@pytest.mark.parametrize("path", ["shuffle", "prechecked"])
def test_key_and_reference_rules_by_either_path(spark: SparkSession, path: str) -> None:
    """The unique and reference rules come out the same whether the duplicated keys and the
    dangling references are found beforehand (broadcast) or by the window and the join."""
    parent_addresses = Parent(
        "addresses",
        spark.createDataFrame(
            [("a1", True, False), ("a_rej", False, False)],
            "address_id string, is_accepted boolean, is_excluded boolean",
        ),
    )
    # company_roles: a four-column key with a null in one part (the window groups nulls)
    roles = spark.createDataFrame(
        [
            ("c1", "p1", "eigenaar", dt.date(2020, 1, 1)),
            ("c1", "p1", "eigenaar", dt.date(2020, 1, 1)),  # the same key twice
            ("c1", "p1", "eigenaar", dt.date(2021, 1, 1)),
            ("c1", "p2", "eigenaar", None),
            ("c1", "p2", "eigenaar", None),  # same key, null start_date
        ],
        "company_id string, person_id string, role string, start_date date",
    ).withColumn("end_date", F.lit(None).cast("date"))
    companies = spark.createDataFrame(
        [
            ("k1", "5610", "bv", "a1", dt.date(2010, 1, 1)),
            ("k2", "5610", "bv", "a_rej", dt.date(2010, 1, 1)),
            ("k3", "5610", "bv", "a_gone", dt.date(2010, 1, 1)),
            ("k4", "5610", "bv", None, dt.date(2010, 1, 1)),
            ("k4", "5610", "bv", "a1", dt.date(2011, 1, 1)),
        ],
        "company_id string, sbi_code string, legal_form string, address_id string, "
        "registered_date date",
    ).withColumn("deregistered_date", F.lit(None).cast("date"))
    parent_companies = Parent(
        "companies",
        spark.createDataFrame(
            [("c1", True, False)], "company_id string, is_accepted boolean, is_excluded boolean"
        ),
    )
    ctx = RuleContext(
        run_date=RUN_DATE, parents={"addresses": parent_addresses, "companies": parent_companies}
    )

    def run(name: str, raw: DataFrame, label: list[str]) -> dict[tuple, set[str]]:
        pre = None
        if path == "prechecked":
            candidates = _local(spark, key_hash_candidates(raw, name))
            pre = Prechecked(
                duplicate_keys=_local(spark, duplicate_keys(raw, name, candidates=candidates)),
                dangling={
                    c: _local(spark, d)
                    for c, d in dangling_references(raw, name, ctx.parents).items()
                },
            )
        out = validate_table(name, raw, ctx, prechecked=pre).collect()
        got: dict[tuple, set[str]] = {}
        for r in out:
            rules = set((r["reject_rule"] or "").split(";")) - {""}
            got.setdefault(tuple(r[c] for c in label), set()).update(rules)
        return got

    unique = "company_id+person_id+role+start_date.unique"
    assert run("company_roles", roles, ["company_id", "person_id", "start_date"]) == {
        ("c1", "p1", dt.date(2020, 1, 1)): {unique},
        ("c1", "p1", dt.date(2021, 1, 1)): set(),
        ("c1", "p2", None): {unique, "start_date.required"},
    }
    assert run("companies", companies, ["company_id", "sbi_code", "address_id"]) == {
        ("k1", "5610", "a1"): set(),
        ("k2", "5610", "a_rej"): {"address_id.refers_to_rejected_addresses"},
        ("k3", "5610", "a_gone"): {"address_id.not_in_addresses"},
        ("k4", "5610", None): {"company_id.unique"},
        ("k4", "5610", "a1"): {"company_id.unique"},
    }
