"""The dataset catalogue (``zicht.jobs.catalog``): its invariants, the schema check, and that it
covers what the contract and the README say zicht writes.

Pure Python except the ``spark`` tests at the end, which check frames made by the transforms
themselves (validation, co-offending ties) against the declarations. The README and the contract
are read as text and parsed here, so the catalogue is compared with what people read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SHARED
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from zicht.features.schemas import INPUT_TABLES, PSEUDONYM_COLUMNS
from zicht.jobs import catalog
from zicht.jobs.catalog import CATALOGUE, SchemaMismatch, check_schema, get

README = Path(__file__).resolve().parents[1] / "README.md"
CONTRACT = SHARED / "CONTRACT.md"

# The contract puts the run's log beside the manifest, at the top of the output folder, though
# it is for analysts only; every other restricted output file sits under restricted/.
TOP_LEVEL_RESTRICTED = {"zicht.log"}


def _struct(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(n, t) for n, t in fields])


# --------------------------------------------------------------------------- markdown parsing


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a markdown heading line) up to the next heading of any level."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start + 1 : end])


def _first_table(text: str) -> list[list[str]]:
    """Body rows (cells stripped) of the first markdown table in ``text``."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, "no markdown table found"
    return rows[2:]  # header and --- line


def _expand_braces(token: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", token)
    if m is None:
        return [token]
    return [
        x
        for option in m.group(1).split(",")
        for x in _expand_braces(token[: m.start()] + option + token[m.end() :])
    ]


def _paths(cell: str) -> list[str]:
    return [p for token in re.findall(r"`([^`]+)`", cell) for p in _expand_braces(token)]


def _normalise(location: str) -> str:
    """A template's placeholders (``<table>``, ``*``) as one wildcard, for comparing templates."""
    return re.sub(r"<[a-z_]+>|\*", "*", location)


def _readme_paths(readme_text: str) -> set[str]:
    rows = _first_table(_section(readme_text, "### Outputs"))
    # The MLflow store lives beside the output folder and is MLflow's, not a catalogued file.
    return {p for row in rows if not row[0].startswith("MLflow") for p in _paths(row[0])}


def _output_locations() -> set[str]:
    """What the README's output table should list: the output folder's written datasets."""
    return {d.location for d in CATALOGUE.values() if d.root == "output" and not d.planned}


def _contract_rows() -> list[list[str]]:
    if not CONTRACT.is_file():
        pytest.skip(f"{CONTRACT} not found")
    return _first_table(_section(CONTRACT.read_text(), "## 3. Output: one folder"))


# --------------------------------------------------------------------------- invariants


def test_locations_are_unique_within_their_root() -> None:
    seen = [(d.root, d.location) for d in CATALOGUE.values()]
    assert len(seen) == len(set(seen))
    # and unique across roots too: no two datasets a reader could confuse
    locations = [d.location for d in CATALOGUE.values()]
    assert len(locations) == len(set(locations))


def test_names_are_the_keys() -> None:
    assert all(name == d.name for name, d in CATALOGUE.items())


def test_partner_datasets_are_under_export_and_only_they() -> None:
    partner = catalog.partner_datasets()
    assert partner
    for d in partner:
        assert d.root == "output" and d.location.startswith("export/"), d.location
    for d in CATALOGUE.values():
        if d.location.startswith("export/"):
            assert d.audience == "partner", d.location


def test_restricted_datasets_are_under_restricted() -> None:
    for d in catalog.restricted_datasets():
        if d.root == "output" and d.location not in TOP_LEVEL_RESTRICTED:
            assert d.location.startswith("restricted/"), d.location
    for d in CATALOGUE.values():
        if d.root == "output" and d.location.startswith("restricted/"):
            assert d.audience == "restricted", d.location
        if d.root in ("stage", "beside"):  # person-level hand-overs; the release register
            assert d.audience == "restricted", d.location
        if d.audience == "everyone":
            assert "/" not in d.location, d.location


def test_no_partner_dataset_has_a_pseudonym_column() -> None:
    pseudonyms = {c for cols in PSEUDONYM_COLUMNS.values() for c in cols}
    assert {"person_id", "address_id", "household_id", "incident_id", "buyer_id"} <= pseudonyms
    for d in catalog.partner_datasets():
        # strict: no column pattern could let an identifier column through
        assert d.strict_columns, d.location
        for column in d.columns:
            assert column not in pseudonyms, (d.location, column)
            assert not column.endswith("_id"), (d.location, column)


def test_tabular_datasets_declare_a_schema_with_descriptions() -> None:
    for d in CATALOGUE.values():
        if d.planned or d.format not in catalog.TABULAR:
            continue
        if d.table_schema is not None:
            instances = [d.for_table(t) for t in INPUT_TABLES]
        elif d.name == "indicator_checkpoint":  # plan cuts read back by the same function only
            continue
        else:
            instances = [d]
        for inst in instances:
            assert inst.schema is not None, inst.location
            for f in inst.schema.fields:
                assert f.metadata["comment"].strip(), (inst.location, f.name)


def test_datasets_refuse_unknown_vocabulary() -> None:
    with pytest.raises(ValueError, match="audience"):
        catalog.Dataset("x", "x.csv", "output", "public", "csv", None, "x")
    with pytest.raises(ValueError, match="root"):
        catalog.Dataset("x", "x.csv", "tmp", "restricted", "csv", None, "x")
    undescribed = T.StructType([T.StructField("a", T.StringType())])
    with pytest.raises(ValueError, match="description"):
        catalog.Dataset("x", "x.csv", "output", "restricted", "csv", undescribed, "x")


# --------------------------------------------------------------------------- lookups


def test_get_names_the_known_datasets_when_the_name_is_unknown() -> None:
    assert get("area_features").location == "restricted/area_features.parquet"
    with pytest.raises(KeyError, match="area_features") as info:
        get("area_feature")
    assert "network_members" in str(info.value)


def test_rejects_hold_the_input_columns_as_text_and_the_rule() -> None:
    for table, schema in INPUT_TABLES.items():
        d = catalog.rejects(table)
        assert d.location == f"restricted/rejects/{table}"
        assert d == get(f"rejects/{table}")
        assert d.schema is not None
        assert d.columns == (*schema.names, "reject_rule")
        assert {f.dataType for f in d.schema.fields} == {T.StringType()}
    with pytest.raises(KeyError, match="not an input table"):
        catalog.rejects("suspect")
    with pytest.raises(ValueError, match="per-table template"):
        check_schema(get("rejects"), T.StructType([]))


def test_path_fills_placeholders_and_keeps_uris() -> None:
    assert (
        get("rejects").path("hdfs://nn/out/", table="incidents")
        == "hdfs://nn/out/restricted/rejects/incidents"
    )
    assert get("manifest").path(Path("/tmp/out")) == "/tmp/out/manifest.json"
    with pytest.raises(ValueError, match="release_id"):
        get("release_pattern").path("/secure")


# --------------------------------------------------------------------------- check_schema

MEMBERS = _struct(
    ("person_id", T.StringType()),
    ("community_id", T.LongType()),
    ("degree", T.LongType()),
    ("weighted_degree", T.DoubleType()),
    ("betweenness", T.DoubleType()),
    ("participation", T.DoubleType()),
    ("is_broker", T.BooleanType()),
)


def test_check_schema_passes_a_matching_frame_in_any_order_and_nullability() -> None:
    reordered = T.StructType(
        [T.StructField(f.name, f.dataType, False, {"x": 1}) for f in reversed(MEMBERS.fields)]
    )
    check_schema(get("network_members"), reordered)


def test_check_schema_names_the_dataset_and_column_of_a_wrong_type() -> None:
    wrong = _struct(*[(f.name, f.dataType) for f in MEMBERS.fields if f.name != "degree"])
    wrong.add("degree", T.StringType())
    with pytest.raises(SchemaMismatch) as info:
        check_schema(get("network_members"), wrong)
    assert str(info.value) == (
        "restricted/network_members.parquet: column degree is string, declared long"
    )


def test_check_schema_names_a_missing_and_an_unexpected_column() -> None:
    fields = [(f.name, f.dataType) for f in MEMBERS.fields if f.name != "is_broker"]
    with pytest.raises(SchemaMismatch, match=r"network_members\.parquet: column is_broker is "):
        check_schema(get("network_members"), _struct(*fields))
    extra = _struct(*[(f.name, f.dataType) for f in MEMBERS.fields], ("address_id", T.StringType()))
    with pytest.raises(SchemaMismatch) as info:
        check_schema(get("network_members"), extra)
    assert info.value.location == "restricted/network_members.parquet"
    assert info.value.problems == ("unexpected column address_id (string)",)


def test_check_schema_of_a_wide_table_applies_its_column_patterns() -> None:
    typology = get("area_typology")
    base = [
        ("buurt_code", T.StringType()),
        ("year", T.LongType()),
        ("cluster", T.LongType()),
        ("anomaly_score", T.DoubleType()),
    ]
    check_schema(
        typology,
        _struct(
            *base,
            ("hotspot_z_drugs", T.DoubleType()),
            ("hotspot_z_fiets_diefstal", T.DoubleType()),
            ("moran_type_drugs", T.StringType()),
        ),
    )
    with pytest.raises(SchemaMismatch, match="column hotspot_z_drugs is string, declared double"):
        check_schema(typology, _struct(*base, ("hotspot_z_drugs", T.StringType())))
    with pytest.raises(SchemaMismatch, match="unexpected column person_id"):
        check_schema(typology, _struct(*base, ("person_id", T.StringType())))
    with pytest.raises(SchemaMismatch, match="column cluster is missing"):
        check_schema(typology, _struct(*base[:2], base[3]))


def test_check_schema_ignores_nullability_inside_nested_types() -> None:
    located = get("incidents_located")
    assert located.schema is not None
    fields = [
        T.StructField(f.name, T.ArrayType(T.StringType(), containsNull=False))
        if f.name == "phenomena"
        else f
        for f in located.schema.fields
    ]
    check_schema(located, T.StructType(fields))
    fields[-1] = T.StructField("phenomena", T.ArrayType(T.LongType()))
    with pytest.raises(SchemaMismatch, match="column phenomena is array<bigint>"):
        check_schema(located, T.StructType(fields))


# --------------------------------------------------------------------------- the producers


def test_network_tables_match_what_the_network_model_declares() -> None:
    from pyspark.sql import types as T

    from zicht.models.network import MEMBERS_SCHEMA, communities_schema, members_schema

    # the stage works on the store's keys; analysts' members carry the pseudonym again
    check_schema(get("network_members_keyed"), MEMBERS_SCHEMA)
    check_schema(get("network_members"), members_schema(T.StringType()))
    check_schema(get("communities"), communities_schema(["drugs", "fiets_diefstal"]))
    check_schema(get("community_summary"), communities_schema(["drugs"]))


def test_audit_and_partner_columns_match_their_producers() -> None:
    from zicht.features.export import EXPORT_COLUMNS
    from zicht.jobs.config import load_settings
    from zicht.jobs.export import LEVEL_FILES, codebook_frame
    from zicht.models.disclosure import AUDIT_COLUMNS

    assert get("disclosure_audit").columns == tuple(AUDIT_COLUMNS)
    for rel in LEVEL_FILES.values():
        [d] = [d for d in CATALOGUE.values() if d.location == rel]
        assert d.columns == tuple(EXPORT_COLUMNS)
    codebook = codebook_frame(load_settings().indicators)
    assert get("codebook").columns == tuple(codebook.columns)


# --------------------------------------------------------------------------- README, contract


def test_markdown_table_lists_the_output_folder() -> None:
    table = catalog.markdown_table()
    assert table.startswith("| path | for | content |\n| --- | --- | --- |\n")
    assert _readme_paths("### Outputs\n\n" + table) == _output_locations()
    partners = _readme_paths("### Outputs\n\n" + catalog.markdown_table("partner"))
    assert partners == {d.location for d in catalog.partner_datasets() if not d.planned}
    # every dataset the contract plans is listed with planned=True, marked so (none may be left)
    planned = [d for d in CATALOGUE.values() if d.root == "output" and d.planned]
    with_planned = catalog.markdown_table(planned=True)
    assert with_planned.count("(planned)") == len(planned)
    assert all(f"`{d.location}`" in with_planned for d in planned)
    with pytest.raises(ValueError, match="audience"):
        catalog.markdown_table("partners")


def test_readme_output_table_names_the_catalogue() -> None:
    listed = _readme_paths(README.read_text())
    expected = _output_locations()
    assert listed == expected, (
        f"README only: {sorted(listed - expected)}; catalogue only: {sorted(expected - listed)}"
    )


def test_contract_outputs_are_in_the_catalogue() -> None:
    catalogued = {_normalise(d.location) for d in CATALOGUE.values() if d.root == "output"}
    contract = {p for row in _contract_rows() for p in _paths(row[0])}
    assert "restricted/rejects/<table>" in contract  # the parse found the table
    assert {p for p in contract if _normalise(p) not in catalogued} == set()


# Columns zicht writes before the contract names them (a contract change reported to the lead):
# the test fails once the contract lists the column, so the entry is removed then.
AHEAD_OF_CONTRACT = {"codebook": {"definition_nl"}}  # by catalogue name


def test_contract_columns_are_declared() -> None:
    by_location = {_normalise(d.location): d for d in CATALOGUE.values() if d.root == "output"}
    column = re.compile(r"^[a-z][a-z0-9_]*(<[a-z_]+>)?$")
    checked = 0
    for row in _contract_rows():
        named = [t for t in re.findall(r"`([^`]+)`", row[2]) if column.match(t)]
        for path in _paths(row[0]):
            d = by_location[_normalise(path)]
            if d.table_schema is not None:
                d = d.for_table("incidents")
            if not named or d.schema is None:
                continue
            patterns = {p.template for p in d.column_patterns}
            for name in named:
                assert name in d.columns or name in patterns, (d.location, name)
                checked += 1
            if d.audience == "partner":  # partners get exactly the contract's columns
                ahead = AHEAD_OF_CONTRACT.get(d.name, set())
                assert not ahead & set(named), f"{d.location}: drop it from AHEAD_OF_CONTRACT"
                assert set(d.columns) == set(named) | ahead, d.location
    assert checked > 30


# --------------------------------------------------------------------------- real frames


@pytest.mark.spark
def test_validation_frames_match_their_declarations(spark: SparkSession) -> None:
    import datetime as dt

    from zicht.features.keys import with_surrogate_keys
    from zicht.features.validate import RuleContext, rejects, validate_table, with_reject_text

    raw = spark.createDataFrame(
        [("h1", "2023", "30000", None), ("h2", "twenty", "31000", None)],
        "household_id string, year string, disposable_income_eur string, _corrupt_record string",
    )
    validated = validate_table("household_income", raw, RuleContext(run_date=dt.date(2026, 1, 1)))
    # as the store holds it: the raw text on rejected rows, the pseudonyms as keys
    validated = with_surrogate_keys(
        with_reject_text(validated, "household_income"), "household_income"
    )
    check_schema(catalog.validated("household_income"), validated.schema)
    rejected = rejects(validated, "household_income")
    check_schema(catalog.rejects("household_income"), rejected.schema)
    assert [(r["household_id"], r["year"]) for r in rejected.collect()] == [("h2", "twenty")]


@pytest.mark.spark
def test_cooffending_edges_and_descriptions(spark: SparkSession) -> None:
    import datetime as dt

    from zicht.models.network import build_cooffending_edges

    suspects = spark.createDataFrame(
        [(1, 11), (1, 12), (2, 12), (2, 13)],
        "incident_id long, person_id long",  # the store's keys
    )
    incidents = spark.createDataFrame(
        [(1, dt.date(2024, 3, 1)), (2, dt.date(2024, 6, 1))],
        "incident_id long, incident_date date",
    )
    edges = build_cooffending_edges(suspects, incidents)
    dataset = get("cooffending_edges")
    described = catalog.with_descriptions(edges, dataset)
    assert described.columns == edges.columns
    for f in described.schema.fields:
        assert f.metadata["comment"] == dataset.description_of(f.name)
    assert described.count() == 2
