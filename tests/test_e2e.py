"""End to end: ``zicht synth --scale tiny`` -> ``zicht run`` -> every contract output.

The run is the session fixture ``tiny_run`` (conftest), shared with the cluster test.

Expected numbers are recomputed here with pandas straight from the synthetic input files (not
from zicht's intermediate tables), and the MLflow run is read back from its SQLite store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import key

from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.jobs import run as run_job

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

CONTRACT_OUTPUTS = [
    "restricted/indicators.parquet",
    "restricted/area_features.parquet",
    "restricted/area_typology.parquet",
    "restricted/network_members.parquet",
    "restricted/communities.parquet",
    "restricted/disclosure_audit.parquet",
    "restricted/rejects/incidents",
    "export/indicators_buurt.csv",
    "export/indicators_wijk.csv",
    "export/indicators_gemeente.csv",
    "export/codebook.csv",
    "export/disclosure_report.json",
    "export/indicators.xlsx",
    "export/report.html",
    "manifest.json",
]


@pytest.fixture(scope="module")
def done(tiny_run: dict[str, Path]) -> dict[str, Path]:
    """The session's tiny run (``conftest.tiny_run``: synth tiny seed 7, then zicht run)."""
    return tiny_run


def read_input(folder: Path, table: str) -> pd.DataFrame:
    return pq.read_table(folder / f"{table}.parquet").to_pandas()


def test_every_contract_output_present(done) -> None:
    for rel in CONTRACT_OUTPUTS:
        assert (done["output"] / rel).exists(), rel
    # no temporary or staging folder is left behind
    leftovers = [p.name for p in done["root"].iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert not (done["output"] / "_stage").exists()


def test_accounting_identity(done) -> None:
    manifest = json.loads((done["output"] / "manifest.json").read_text())
    for table, a in manifest["inputs"].items():
        n = pq.read_table(done["input"] / f"{table}.parquet").num_rows
        assert a["rows_read"] == n, table
        assert a["rows_read"] == a["rows_used"] + a["rows_rejected"] + a["rows_excluded"], table
    for rel, meta in manifest["outputs"].items():
        assert meta["sha256"] and len(meta["sha256"]) == 64, rel
    assert manifest["mlflow_run_id"]
    assert manifest["period"]["years"] == [2023, 2024]


def test_export_holds_no_pseudonym(done) -> None:
    pseudonyms: set[str] = set()
    for table, cols in PSEUDONYM_COLUMNS.items():
        df = read_input(done["input"], table)
        for c in cols:
            if c in df:
                pseudonyms |= set(df[c].dropna().astype(str))
    assert len(pseudonyms) > 1000
    # nor the store's surrogate keys (computed here without Spark), as decimal text
    pseudonyms |= {str(key(p)) for p in pseudonyms}
    from zicht.jobs.export import file_text  # the XLSX is a zip of XML parts

    for f in sorted(p for p in (done["output"] / "export").rglob("*") if p.is_file()):
        text = file_text(f.name, f.read_bytes())
        tokens = set(text.replace(",", " ").replace('"', " ").split())
        assert not (tokens & pseudonyms), f.name


def test_export_tables_follow_the_contract(done) -> None:
    codebook = pd.read_csv(done["output"] / "export/codebook.csv")
    units = dict(zip(codebook["indicator"], codebook["unit"], strict=True))
    for level in ("buurt", "wijk", "gemeente"):
        df = pd.read_csv(done["output"] / f"export/indicators_{level}.csv", dtype={"value": str})
        assert list(df.columns) == [
            "level",
            "area_code",
            "area_name",
            "year",
            "indicator",
            "value",
            "status",
        ]
        assert set(df["level"]) == {level}
        assert set(df["status"]) <= {"ok", "suppressed", "not_covered", "not_applicable"}
        assert df.loc[df["status"] != "ok", "value"].isna().all()
        counts = df[(df["status"] == "ok") & df["indicator"].map(units).eq("count")]
        values = counts["value"].astype(float)
        assert (values == values.round()).all()
        assert not ((values > 0) & (values < 10)).any(), "a published count below 10"
        # every (area, year, indicator) of the catalogue has one row
        assert not df.duplicated(["area_code", "year", "indicator"]).any()
        n_areas = df["area_code"].nunique()
        assert len(df) == n_areas * 2 * len(units)
    for p in ("drugs", "mensenhandel", "witwassen", "geweld", "vastgoedfraude"):
        for ind in ("incidents", "incidents_per_1000", "resident_suspects", "local_suspect_share"):
            assert f"{p}.{ind}" in units


def test_inhabitants_and_incidents_match_an_independent_count(done) -> None:
    """context.inhabitants and drugs.incidents per gemeente, recomputed from the raw files."""
    areas = read_input(done["input"], "areas")
    addresses = read_input(done["input"], "addresses")
    persons = read_input(done["input"], "persons")
    res = persons.merge(addresses[["address_id", "buurt_code"]], on="address_id").merge(
        areas[["buurt_code", "gemeente_code"]], on="buurt_code"
    )
    expected_inh = res.groupby("gemeente_code").size()

    import shapely

    inc = read_input(done["input"], "incidents")
    inc["code"] = inc["crime_code"].str.strip()
    drug_codes = {"F42", "F43", "F44", "F45", "M0111"}
    is_drugs = inc["code"].isin(drug_codes) | (inc["code"] == "3.1.1")
    addr_buurt = inc["address_id"].map(addresses.set_index("address_id")["buurt_code"])
    polys = shapely.from_wkt(areas["geometry_wkt"].to_numpy())
    point_buurt = [
        None
        if pd.isna(x)
        else next(
            (
                c
                for c, g in zip(areas["buurt_code"], polys, strict=True)
                if g.covers(shapely.Point(x, y))
            ),
            None,
        )
        for x, y in zip(inc["x"], inc["y"], strict=True)
    ]
    inc["buurt"] = (
        inc["buurt_code"].fillna(addr_buurt).fillna(pd.Series(point_buurt, index=inc.index))
    )
    inc["gemeente_code"] = "GM" + inc["buurt"].str[2:6]
    inc["year"] = pd.to_datetime(inc["incident_date"]).dt.year
    expected_drugs = inc[is_drugs].groupby(["gemeente_code", "year"]).size()

    ind = pq.read_table(done["output"] / "restricted/indicators.parquet").to_pandas()
    gm = ind[ind["level"] == "gemeente"].set_index(["area_code", "year", "indicator"])["value"]
    for code, n in expected_inh.items():
        for year in (2023, 2024):
            assert gm[(code, year, "context.inhabitants")] == n
    for (code, year), n in expected_drugs.items():
        assert gm[(code, year, "drugs.incidents")] == n
    assert expected_drugs.sum() > 0


def test_store_is_keyed_by_the_pseudonyms_64_bit_hash(done) -> None:
    """Every pseudonym column of the store is the XXH64 key of the input's pseudonym (computed
    here without Spark); the key dictionary holds every pseudonym once, without collisions."""
    manifest = json.loads((done["output"] / "manifest.json").read_text())
    store = Path(manifest["store"]["location"].removeprefix("file://"))
    suspects = read_input(done["input"], "suspects")
    stored = pq.read_table(store / "validated" / "suspects").to_pandas()
    assert str(stored["person_id"].dtype) == "int64"
    assert set(stored["person_id"]) == {key(p) for p in suspects["person_id"]}
    assert set(stored["incident_id"]) == {key(p) for p in suspects["incident_id"]}
    residence = pq.read_table(store / "residence").to_pandas()
    persons = read_input(done["input"], "persons")
    assert set(residence["person_id"]) <= {key(p) for p in persons["person_id"]}
    # the dictionary: the suspects' pseudonyms, once each, the way back for network_members
    dictionary = pq.read_table(store / "keys").to_pandas()
    named = set(suspects["person_id"].dropna().astype(str))
    assert dictionary["key"].is_unique
    assert dict(zip(dictionary["pseudonym"], dictionary["key"], strict=True)) == {
        p: key(p) for p in named
    }
    # every other pseudonym column is keyed too, so no pseudonym text stays in the store
    for table, cols in PSEUDONYM_COLUMNS.items():
        if (store / "validated" / table).exists():
            schema = pq.ParquetDataset(store / "validated" / table).schema
            assert {str(schema.field(c).type) for c in cols if c in schema.names} <= {"int64"}


def test_the_key_set_is_every_pseudonym_of_the_input_once(done) -> None:
    """``pseudonym_keys`` (what the leak guard probes instead of the key columns) holds the
    XXH64 key of every distinct pseudonym of the input, computed here without Spark, rejected
    rows included; so it covers every key column of the store."""
    manifest = json.loads((done["output"] / "manifest.json").read_text())
    store = Path(manifest["store"]["location"].removeprefix("file://"))
    keys = pq.read_table(store / "pseudonym_keys").to_pandas()
    assert keys["key"].is_unique and not keys["collides"].any()
    expected: set[int] = set()
    for table, cols in PSEUDONYM_COLUMNS.items():
        df = read_input(done["input"], table)
        for c in cols:
            if c in df:
                text = df[c].dropna().astype(str)
                expected |= {key(p) for p in text[text.str.strip() != ""]}
    assert len(expected) > 1000
    assert set(keys["key"]) == expected
    for table, cols in PSEUDONYM_COLUMNS.items():
        if (store / "validated" / table).exists():
            stored = pq.read_table(store / "validated" / table)  # int64 with nulls: no pandas
            for c in cols:
                if c in stored.column_names:
                    assert set(stored.column(c).drop_null().to_pylist()) <= expected, (table, c)


def test_network_holds_suspects_only(done) -> None:
    members = pq.read_table(done["output"] / "restricted/network_members.parquet").to_pandas()
    suspects = read_input(done["input"], "suspects")
    assert set(members["person_id"]) <= set(suspects["person_id"])
    assert len(members) > 0
    communities = pq.read_table(done["output"] / "restricted/communities.parquet").to_pandas()
    assert communities["size"].sum() == len(members)


def test_mlflow_run_in_the_store(done) -> None:
    from mlflow.tracking import MlflowClient

    manifest = json.loads((done["output"] / "manifest.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{done['root'] / 'mlflow.db'}")
    run = client.get_run(manifest["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["disclosure.min_count"] == "10"
    assert run.data.metrics["incidents_rows_read"] == manifest["inputs"]["incidents"]["rows_read"]
    assert run.data.metrics["time_validate_s"] > 0
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"manifest.json", "codebook.csv", "disclosure_report.json"} <= names
    # no secret-looking or person-level param
    assert not any("person" in k for k in run.data.params)


def test_failed_run_leaves_previous_output(done, tmp_path: Path) -> None:
    before = (done["output"] / "manifest.json").read_text()
    bad = tmp_path / "bad"
    shutil.copytree(done["input"], bad)
    persons = pq.read_table(bad / "persons.parquet").to_pandas()
    persons["bsn"] = "123456782"
    shutil.rmtree(bad / "persons.parquet")
    persons.to_parquet(bad / "persons.parquet")
    code = run_job.main(["--input", str(bad), "--output", str(done["output"])])
    assert code == 4  # refused by a privacy guard (a forbidden column)
    assert (done["output"] / "manifest.json").read_text() == before
    assert not [p for p in done["root"].iterdir() if p.name.startswith(".output.tmp")]


def test_unknown_config_key_is_an_error(done, tmp_path: Path, capsys) -> None:
    conf = tmp_path / "conf.yaml"
    conf.write_text("disclosure:\n  min_cont: 5\n")
    code = run_job.main(
        ["--input", str(done["input"]), "--output", str(tmp_path / "o"), "--conf", str(conf)]
    )
    assert code == 2
    assert "min_cont" in capsys.readouterr().err


def _count_values(folder: Path) -> pd.Series:
    """Every published count of the partner CSVs (codebook units, independent of zicht)."""
    units = pd.read_csv(folder / "export/codebook.csv").set_index("indicator")["unit"]
    frames = [pd.read_csv(folder / f"export/indicators_{lvl}.csv") for lvl in LEVELS]
    pub = pd.concat(frames)
    counts = pub[(pub["indicator"].map(units) == "count") & (pub["status"] == "ok")]
    return counts["value"].astype(float)


LEVELS = ("buurt", "wijk", "gemeente")


def test_export_from_reapplies_other_rules_without_recomputing(done, tmp_path: Path) -> None:
    """``zicht export --from``: stricter rules give a new export; weaker rules after it are
    refused by the release register unless forced; the indicators are never recomputed."""
    from mlflow.tracking import MlflowClient

    from zicht.jobs import export as export_job

    out = tmp_path / "runs" / "output"
    shutil.copytree(done["output"], out)
    before = json.loads((out / "manifest.json").read_text())
    strict = tmp_path / "strict.yaml"
    strict.write_text("disclosure:\n  min_count: 15\n  min_numerator: 15\n  min_denominator: 15\n")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        assert export_job.main(["--from", str(out), "--conf", str(strict)]) == 0
        after = json.loads((out / "manifest.json").read_text())
        counts = _count_values(out)
        assert not ((counts > 0) & (counts < 15)).any()
        # the baseline export did publish counts of 10..14, so the new rules changed something
        base_counts = _count_values(done["output"])
        assert ((base_counts >= 10) & (base_counts < 15)).any()
        report = json.loads((out / "export/disclosure_report.json").read_text())
        assert report["parameters"]["min_count"] == 15 and report["audit"]["passed"]
        for rel in ("restricted/indicators.parquet", "restricted/area_features.parquet"):
            assert after["outputs"][rel] == before["outputs"][rel], rel
        assert (
            after["outputs"]["export/indicators_buurt.csv"]
            != before["outputs"]["export/indicators_buurt.csv"]
        )
        assert len(after["exports"]) == 1 and after["config"]["disclosure"]["min_count"] == 15
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
        assert leftovers == [".zicht-output"]

        # weaker rules than the release before: a partner could difference the two
        weak = tmp_path / "weak.yaml"
        weak.write_text("disclosure:\n  min_count: 5\n  min_numerator: 5\n  min_denominator: 5\n")
        buurt_csv = (out / "export/indicators_buurt.csv").read_bytes()
        # refused by a privacy guard: exit code 4
        assert export_job.main(["--from", str(out), "--conf", str(weak)]) == 4
        assert (out / "export/indicators_buurt.csv").read_bytes() == buurt_csv
        assert json.loads((out / "manifest.json").read_text())["exports"] == after["exports"]
        assert export_job.main(["--from", str(out), "--conf", str(weak), "--force-release"]) == 0
        releases = json.loads((out.parent / export_job.REGISTER_NAME).read_text())
        assert [r["forced"] for r in releases] == [False, True]
        # the forced release was audited together with the earlier one (its pattern is kept)
        joint = json.loads((out / "export/disclosure_report.json").read_text())["joint_audit"]
        assert joint["releases"] == [releases[0]["run_id"]] and joint["passed"]
        assert (out.parent / export_job.RELEASES_DIR / releases[0]["run_id"]).is_dir()
    finally:
        mp.undo()

    client = MlflowClient(tracking_uri=f"sqlite:///{out.parent / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`zicht.export_of` = '{before['run_id']}'",
    )
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]
    ok = [r for r in runs if r.info.status == "FINISHED"]
    assert all(r.data.metrics["disclosure_audit_passed"] == 1.0 for r in ok)
    assert all("disclosure_information_loss" in r.data.metrics for r in ok)


def test_stage_jobs_one_after_another_equal_zicht_run(done, tmp_path: Path) -> None:
    """ingest -> network build -> indicators -> models -> export --from, each a job of its own
    on one output folder, give the same indicators and partner tables as ``zicht run``."""
    from zicht.jobs import export as export_job
    from zicht.jobs import indicators as indicators_job
    from zicht.jobs import ingest as ingest_job
    from zicht.jobs import models as models_job
    from zicht.jobs import network as network_job

    out = tmp_path / "staged" / "output"
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        # the session run's store: the ingest job is the Ingest stage every zicht run uses to
        # build one (the session's run, the viewfs run); here it reuses it, as a researcher
        # iterating on the later stages does
        store = str(done["root"] / "zicht_store")
        argv = ["--input", str(done["input"]), "--output", str(out), "--store", store]
        assert ingest_job.main(argv) == 0
        # a later stage before its input exists is a clear error, not a crash
        assert models_job.main(["--from", str(tmp_path / "nothing")]) == 3
        assert network_job.main(["build", "--from", str(out)]) == 0
        assert indicators_job.main(["--from", str(out)]) == 0
        assert models_job.main(["--from", str(out)]) == 0
        assert export_job.main(["--from", str(out)]) == 0
    finally:
        mp.undo()
    keys = ["level", "area_code", "year", "indicator"]
    ours = pd.read_parquet(out / "restricted/indicators.parquet").sort_values(keys)
    theirs = pd.read_parquet(done["output"] / "restricted/indicators.parquet").sort_values(keys)
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True))
    for level in LEVELS:
        rel = f"export/indicators_{level}.csv"
        assert (out / rel).read_bytes() == (done["output"] / rel).read_bytes(), rel
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"ingest", "network", "indicators", "models", "export"}
    assert manifest["store"]["reused"]
    assert len(manifest["exports"]) == 1
    for table, a in manifest["inputs"].items():
        assert a["rows_read"] == a["rows_used"] + a["rows_rejected"] + a["rows_excluded"], table
