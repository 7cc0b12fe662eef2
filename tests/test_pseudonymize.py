"""``zicht pseudonymize``: keyed pseudonyms that join across partners and leak nothing raw.

Two partners (a gemeente with BRP and BAG extracts, the police with incidents and suspects) run
the committed example maps in ``conf/pseudonymize/`` on raw extracts generated here, each in its
own formats (postcode "1234 ab" vs "1234AB", house number "012" vs "12", BSN with and without its
leading zero). Expected joins come from the raw frames (shared BSNs, shared addresses), expected
pseudonyms from Python's hmac directly, never from zicht's output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from zicht.features.pseudonymize import MapError, is_name_column, parse_map
from zicht.features.schemas import PSEUDONYM_COLUMNS
from zicht.jobs import cli
from zicht.jobs.io import forbidden_match

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "conf" / "pseudonymize"
SEED = 20260417
# Test keys, made at run time (no key-like literal in the repo): the key holder's key, which
# partners share, and another one; both above the 32-byte minimum.
KEY = "test-key-" + hashlib.sha256(b"zicht test key holder").hexdigest()[:32]
OTHER_KEY = "other-key-" + hashlib.sha256(b"zicht other key").hexdigest()[:32]
FORBIDDEN = ("bsn", "naam", "name", "postcode", "huisnummer", "geboortedatum", "straat", "kvk")

SURNAMES = ["Vermeulenhuis", "Doornbosch", "Kwakernaat", "Oudshoorntje", "Bijlsmakers"]
FIRST = ["Aaltjeline", "Berendina", "Coosje-Marie", "Diederikus", "Evertjan"]


def _word(c: str) -> str | None:
    return forbidden_match(c, FORBIDDEN)


# ---------------------------------------------------------------- raw extracts (generated)


def make_raw(rng: np.random.Generator, n_addresses: int = 60, n_persons: int = 200) -> dict:
    """Raw partner extracts with realistic column names and each partner's own formats."""
    letters = np.array(list("ABCDEGHJKLMNPRSTVWXZ"))
    pc_num = rng.choice(np.arange(1000, 9999), n_addresses, replace=False)
    pc = [
        f"{n}{a}{b}" for n, a, b in zip(pc_num, *rng.choice(letters, (2, n_addresses)), strict=True)
    ]
    hnr = rng.integers(1, 400, n_addresses)
    hletter = rng.choice(["", "", "A", "B"], n_addresses)
    htoev = rng.choice(["", "", "1", "bis"], n_addresses)
    buurten = [f"BU0999010{i}" for i in range(1, 4)]
    bag = pd.DataFrame(
        {
            "identificatie": [f"0999010000{i:06d}" for i in range(n_addresses)],
            "postcode": pc,
            "huisnummer": hnr.astype(str),
            "huisletter": hletter,
            "huisnummertoevoeging": htoev,
            "openbareruimtenaam": rng.choice(["Kerkstraat", "Dorpsweg"], n_addresses),
            "woonplaatsnaam": "Zichtdorp",
            "buurtcode": rng.choice(buurten, n_addresses),
            "gebruiksdoel": "woonfunctie",
            "oppervlakte": rng.integers(30, 200, n_addresses).astype(str),
            "woz_waarde": rng.integers(150_000, 600_000, n_addresses).astype(str),
        }
    )
    # BSNs, some with a leading zero that a spreadsheet drops in the police extract
    # drawn by index, not from an arange: choice() over a 990M-element array allocates 7.4 GiB
    # and took 26 s; the index form gives the same numbers and leaves the generator alike
    bsn = 10_000_000 + rng.choice(999_999_999 - 10_000_000, n_persons + 40, replace=False)
    bsn9 = [f"{b:09d}" for b in bsn]
    home = rng.integers(0, n_addresses, n_persons)
    born = [
        dt.date(1940, 1, 1) + dt.timedelta(days=int(d))
        for d in rng.integers(0, 21_900, n_persons)  # born before 2000
    ]
    brp = pd.DataFrame(
        {
            "bsn": bsn9[:n_persons],
            "voornamen": rng.choice(FIRST, n_persons),
            "voorvoegsel": rng.choice(["", "van", "de"], n_persons),
            "geslachtsnaam": rng.choice(SURNAMES, n_persons),
            "geboortedatum": [d.strftime("%Y%m%d") for d in born],
            "geslacht": rng.choice(["M", "V", "O"], n_persons),
            # the gemeente writes "1234 ab" and pads the house number: the same address as BAG's
            "postcode": [f"{p[:4]} {p[4:].lower()}" for p in bag["postcode"].iloc[home]],
            "huisnummer": [f"{int(h):03d}" for h in bag["huisnummer"].iloc[home]],
            "huisletter": bag["huisletter"].iloc[home].str.lower().to_numpy(),
            "huisnummertoevoeging": bag["huisnummertoevoeging"].iloc[home].to_numpy(),
            "huishoudnummer": [f"HH{h:05d}" for h in home],
            "datum_aanvang_adreshouding": [
                f"{d:%Y%m%d}"
                for d in pd.to_datetime(rng.integers(2000, 2022, n_persons), format="%Y")
            ],
            "straatnaam": bag["openbareruimtenaam"].iloc[home].to_numpy(),
            "woonplaats": "Zichtdorp",
            "nationaliteit": "NL",
            "geboorteland": "Nederland",
        }
    )
    n_inc = 150
    inc_addr = rng.integers(0, n_addresses, n_inc)
    dates = [dt.date(2023, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, n_inc)]
    incidents = pd.DataFrame(
        {
            "registratienummer": [f"PL0999-2023{i:06d}" for i in range(n_inc)],
            "pleegdatum": [d.strftime("%d-%m-%Y") for d in dates],
            "incidentcode": rng.choice(["F42", "F43", "A72", "3.1.1"], n_inc),
            "buurtcode": "",
            "postcode": bag["postcode"].iloc[inc_addr].to_numpy(),
            "huisnummer": bag["huisnummer"].iloc[inc_addr].to_numpy(),
            "huisletter": bag["huisletter"].iloc[inc_addr].to_numpy(),
            "toevoeging": bag["huisnummertoevoeging"].iloc[inc_addr].to_numpy(),
            "x_coordinaat": "",
            "y_coordinaat": "",
            "straatnaam": bag["openbareruimtenaam"].iloc[inc_addr].to_numpy(),
            "plaats": "Zichtdorp",
            "omschrijving": [f"aangifte tegen {s}" for s in rng.choice(SURNAMES, n_inc)],
        }
    )
    # suspects: residents of the gemeente and 40 who live elsewhere (not in the BRP)
    n_sus = 120
    who = rng.integers(0, n_persons + 40, n_sus)
    suspects = pd.DataFrame(
        {
            "registratienummer": rng.choice(incidents["registratienummer"], n_sus),
            "bsn": [str(int(bsn9[w])) for w in who],  # police extract: leading zero lost
            "voornamen": rng.choice(FIRST, n_sus),
            "achternaam": rng.choice(SURNAMES, n_sus),
            "geboortedatum": "1980-01-01",
            "politie_persoonsnummer": [f"PPN{w:07d}" for w in who],
        }
    ).drop_duplicates(["registratienummer", "bsn"])
    areas = pd.DataFrame(
        {
            "buurt_code": buurten,
            "buurt_name": ["Noord", "Midden", "Zuid"],
            "wijk_code": "WK099901",
            "wijk_name": "Centrum",
            "gemeente_code": "GM0999",
            "gemeente_name": "Zichtdorp",
            "x": [150_000.0, 151_000.0, 152_000.0],
            "y": [450_000.0, 451_000.0, 452_000.0],
            "land_area_ha": [50.0, 60.0, 70.0],
        }
    )
    return {
        "addresses": bag,
        "persons": brp,
        "incidents": incidents,
        "suspects": suspects,
        "areas": areas,
    }


SEPARATORS = {"persons": ";"}


def write_raw(raw: dict, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table in ("addresses", "persons", "incidents", "suspects"):
        p = folder / f"{table}_raw.csv"
        raw[table].to_csv(p, index=False, sep=SEPARATORS.get(table, ","))
        paths[table] = p
    return paths


def pseudonymize(
    table: str, raw_csv: Path, out: Path | str, key: str, mp: pytest.MonkeyPatch
) -> int:
    mp.setenv("ZICHT_PSEUDONYM_KEY", key)
    try:
        return cli.main(
            [
                "pseudonymize",
                "--table",
                table,
                "--in",
                str(raw_csv),
                "--out",
                str(out),
                "--map",
                str(MAPS / f"{table}.yaml"),
            ]
        )
    finally:
        mp.delenv("ZICHT_PSEUDONYM_KEY")


@pytest.fixture(scope="module")
def partners(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The gemeente and the police pseudonymise their extracts; the police once more, other key."""
    print(f"pseudonymize test seed {SEED}")
    root = tmp_path_factory.mktemp("pseudo")
    raw = make_raw(np.random.default_rng(SEED))
    paths = write_raw(raw, root / "raw")
    # Uncompressed Parquet, so a byte scan of the files sees every stored value.
    codec = spark.conf.get("spark.sql.parquet.compression.codec")
    spark.conf.set("spark.sql.parquet.compression.codec", "uncompressed")
    mp = pytest.MonkeyPatch()
    try:
        same, other = root / "same", root / "other"
        for table in ("addresses", "persons"):  # the gemeente
            assert pseudonymize(table, paths[table], same, KEY, mp) == 0
        for table in ("incidents", "suspects"):  # the police, same key
            assert pseudonymize(table, paths[table], same, KEY, mp) == 0
            assert pseudonymize(table, paths[table], other, OTHER_KEY, mp) == 0
    finally:
        spark.conf.set("spark.sql.parquet.compression.codec", codec or "snappy")
        mp.undo()
    raw["areas"].to_csv(same / "areas.csv", index=False)
    return {"raw": raw, "same": same, "other": other, "root": root}


def read(folder: Path, table: str) -> pd.DataFrame:
    return pq.read_table(folder / f"{table}.parquet").to_pandas()


# ---------------------------------------------------------------- pure: maps and pseudonyms


def test_committed_maps_parse() -> None:
    for path in sorted(MAPS.glob("*.yaml")):
        pmap = parse_map(yaml.safe_load(path.read_text()), identifier_word=_word)
        assert pmap.table == path.stem


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"person_id": {"hash": "geslachtsnaam", "kind": "text"}}, "names are refused"),
        ({"person_id": {"hash": ["voornamen"], "kind": "x1"}}, "names are refused"),
        ({"person_id": {"keep": "bsn"}}, "must be hashed"),
        ({"person_id": {"hash": "bsn"}}, "needs `kind:`"),
        ({"person_id": {"hash": "bsn", "kind": "bsn"}, "sex": {"keep": "postcode"}}, "never kept"),
        ({"person_id": {"hash": "bsn", "kind": "bsn"}}, "required contract column"),
        ({"person_id": {"hash": "bsn", "kind": "bsn"}, "naam": {"keep": "x"}}, "not a column"),
    ],
)
def test_unsafe_maps_are_refused(columns: dict, message: str) -> None:
    with pytest.raises(MapError, match=message):
        parse_map({"table": "persons", "columns": columns}, identifier_word=_word)


def test_unmapped_raw_column_is_refused() -> None:
    from zicht.features.pseudonymize import check_header

    pmap = parse_map(yaml.safe_load((MAPS / "suspects.yaml").read_text()), identifier_word=_word)
    check_header(pmap, ["registratienummer", "bsn", "voornamen", "achternaam"])
    with pytest.raises(MapError, match="neither mapped nor dropped"):
        check_header(pmap, ["registratienummer", "bsn", "telefoonnummer"])


def test_name_columns_are_recognised() -> None:
    for c in ("geslachtsnaam", "Voornamen", "naam_functionaris", "handelsnaam", "Last Name"):
        assert is_name_column(c), c
    for c in ("geslacht", "buurtnaam", "gemeentenaam", "bsn", "registratienummer"):
        assert not is_name_column(c), c


def test_refuses_without_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    raw = tmp_path / "s.csv"
    raw.write_text("registratienummer,bsn\nPL1,123456782\n")
    argv = ["pseudonymize", "--table", "suspects", "--in", str(raw), "--out", str(tmp_path / "o")]
    argv += ["--map", str(MAPS / "suspects.yaml")]
    monkeypatch.delenv("ZICHT_PSEUDONYM_KEY", raising=False)
    assert cli.main(argv) == 2
    assert "key is not set" in capsys.readouterr().err
    monkeypatch.setenv("ZICHT_PSEUDONYM_KEY", "short")
    assert cli.main(argv) == 2
    assert "shorter than" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- Spark: joins, leaks, contract


def _hmac(key: str, kind: str, value: str) -> str:
    msg = f"zicht/v1/{kind}\x1f{value}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:32]


@pytest.mark.spark
def test_pseudonyms_are_keyed_hmac_of_the_normalised_identifier(partners) -> None:
    raw, persons = partners["raw"]["persons"], read(partners["same"], "persons")
    expected = {_hmac(KEY, "bsn", b) for b in raw["bsn"]}
    assert set(persons["person_id"]) == expected
    for i in range(5):
        r = raw.iloc[i]
        pc = r["postcode"].replace(" ", "").upper()
        suffix = re.sub("[^0-9A-Z]", "", (r["huisletter"] + r["huisnummertoevoeging"]).upper())
        addr = _hmac(KEY, "address", f"{pc}|{int(r['huisnummer'])}|{suffix}")
        assert persons.loc[i, "address_id"] == addr
    # birth date coarsened to a year, registration dates parsed from yyyymmdd
    assert list(persons["birth_year"]) == [int(d[:4]) for d in raw["geboortedatum"]]
    assert (
        str(persons.loc[0, "registered_since"])
        == dt.datetime.strptime(raw.loc[0, "datum_aanvang_adreshouding"], "%Y%m%d")
        .date()
        .isoformat()
    )


@pytest.mark.spark
def test_same_key_joins_across_partners(partners) -> None:
    raw, same = partners["raw"], partners["same"]
    persons, suspects = read(same, "persons"), read(same, "suspects")
    addresses, incidents = read(same, "addresses"), read(same, "incidents")
    # independent expectation: BSNs shared by the BRP and the police extract (as numbers)
    shared_bsn = set(raw["persons"]["bsn"].astype(int)) & set(raw["suspects"]["bsn"].astype(int))
    joined = set(persons["person_id"]) & set(suspects["person_id"])
    assert len(shared_bsn) > 10
    assert len(joined) == len(shared_bsn)
    # every BRP address and every incident address is found in the BAG extract
    assert set(persons["address_id"]) <= set(addresses["address_id"])
    assert set(incidents["address_id"]) <= set(addresses["address_id"])
    assert addresses["address_id"].nunique() == len(raw["addresses"])
    assert set(suspects["incident_id"]) <= set(incidents["incident_id"])


@pytest.mark.spark
def test_different_keys_do_not_join(partners) -> None:
    persons, addresses = read(partners["same"], "persons"), read(partners["same"], "addresses")
    suspects, incidents = read(partners["other"], "suspects"), read(partners["other"], "incidents")
    assert not set(persons["person_id"]) & set(suspects["person_id"])
    assert not set(addresses["address_id"]) & set(incidents["address_id"])
    assert len(suspects) == len(read(partners["same"], "suspects"))


def _raw_identifiers(raw: dict) -> tuple[set[str], set[str]]:
    """(strings that must not occur in any output byte, values no output cell may equal)."""
    brp, bag, sus, inc = raw["persons"], raw["addresses"], raw["suspects"], raw["incidents"]
    in_bytes: set[str] = set()
    in_bytes |= set(brp["bsn"]) | set(sus["bsn"].astype(str).str.zfill(9))
    in_bytes |= {s for s in sus["bsn"].astype(str) if len(s) >= 8}
    in_bytes |= set(bag["postcode"]) | set(brp["postcode"]) | set(brp["postcode"].str.upper())
    in_bytes |= {f"{p[:4]} {p[4:]}" for p in bag["postcode"]}
    in_bytes |= set(SURNAMES) | set(FIRST)
    in_bytes |= set(brp["geboortedatum"]) | {
        f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in brp["geboortedatum"]
    }
    in_bytes |= set(inc["registratienummer"]) | set(sus["politie_persoonsnummer"])
    in_bytes |= set(bag["identificatie"]) | set(brp["huishoudnummer"])
    in_bytes |= {"Kerkstraat", "Dorpsweg", "Zichtdorp", "Nederland"}
    # house numbers are short digit strings that occur in any binary file by chance: no output
    # value may equal one, or equal "postcode + number" in any spelling
    in_values = set(bag["huisnummer"]) | set(brp["huisnummer"])
    in_values |= {f"{p}{h}" for p, h in zip(bag["postcode"], bag["huisnummer"], strict=True)}
    in_values |= {f"{p} {h}" for p, h in zip(bag["postcode"], bag["huisnummer"], strict=True)}
    return in_bytes, in_values


@pytest.mark.spark
def test_no_raw_identifier_survives_in_any_output_byte(partners) -> None:
    in_bytes, in_values = _raw_identifiers(partners["raw"])
    files = [f for d in ("same", "other") for f in partners[d].rglob("*") if f.is_file()]
    files = [f for f in files if f.name != "areas.csv"]  # public CBS areas, written by the test
    assert len(files) > 8
    # lower-case spellings too, except for strings a hex pseudonym could hold by chance
    needles = {s.encode() for s in in_bytes} | {
        s.lower().encode() for s in in_bytes if not re.fullmatch("[0-9a-f]+", s.lower())
    }
    for f in files:
        data = f.read_bytes()
        hits = [s for s in needles if s in data]
        assert not hits, (f, hits[:5])
    for d in ("same", "other"):
        for part in partners[d].glob("*.parquet"):
            df = pq.read_table(part).to_pandas()
            values = set(df.astype(str).to_numpy().ravel())
            assert not values & in_bytes, part
            ids = PSEUDONYM_COLUMNS[part.stem]
            assert not set(df[list(ids)].astype(str).to_numpy().ravel()) & in_values, part
            # no column of any raw extract reaches the output by name
            assert not set(df.columns) & {"bsn", "postcode", "huisnummer", "geslachtsnaam"}


@pytest.mark.spark
def test_output_passes_the_contract_reader(partners, spark, tmp_path: Path) -> None:
    from zicht.jobs.config import load_settings
    from zicht.jobs.validate_inputs import validate_inputs

    raw = partners["raw"]
    v = validate_inputs(
        spark,
        str(partners["same"]),
        load_settings(),
        run_date=dt.date.today(),
        stage_dir=tmp_path / "stage",
    )
    expected_rows = {t: len(raw[t]) for t in ("areas", "addresses", "persons", "incidents")}
    expected_rows["suspects"] = len(raw["suspects"])
    for table, n in expected_rows.items():
        a = v.accounting[table]
        assert (a["rows_read"], a["rows_rejected"]) == (n, 0), (table, a)
    assert v.years == (2023, 2024)


@pytest.mark.e2e
def test_key_never_in_output_or_logs(tmp_path: Path) -> None:
    """A separate process, so Spark's JVM and worker logs are captured too."""
    raw = make_raw(np.random.default_rng(SEED + 1), n_addresses=20, n_persons=30)
    paths = write_raw(raw, tmp_path / "raw")
    out = tmp_path / "out"
    env = {**os.environ, "ZICHT_PSEUDONYM_KEY": KEY, "PYSPARK_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "zicht.jobs.cli", "pseudonymize", "--table", "persons"]
        + ["--in", str(paths["persons"]), "--out", str(out)]
        + ["--map", str(MAPS / "persons.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-3000:]
    assert "pseudonymize persons: 30 rows read, 30 written" in logs
    assert KEY not in logs and KEY.encode().hex() not in logs
    written = [f for f in tmp_path.rglob("*") if f.is_file() and f.parent != tmp_path / "raw"]
    assert any(f.suffix == ".parquet" for f in written)
    for f in written:
        assert KEY.encode() not in f.read_bytes(), f
    # nothing went to an MLflow store or a Spark event log
    assert not list(tmp_path.rglob("mlflow.db")) and not list(tmp_path.rglob("mlruns"))


@pytest.mark.spark
def test_report_is_written_beside_the_table_on_any_file_system(
    spark, viewfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table report goes through Hadoop's FileSystem like the table: with ``--out`` a
    viewfs URI it lands there too (it used to be skipped for anything not local)."""
    paths = write_raw(make_raw(np.random.default_rng(SEED)), tmp_path / "raw")
    code = pseudonymize("addresses", paths["addresses"], "viewfs://zt/data/out", KEY, monkeypatch)
    assert code == 0
    report = json.loads((viewfs / "out" / "addresses.pseudonymize.json").read_text())
    assert report["rows_written"] == report["rows_read"] > 0
    assert KEY not in json.dumps(report)
    assert sorted(p.name for p in (viewfs / "out").iterdir()) == [
        "addresses.parquet",
        "addresses.pseudonymize.json",
    ]
