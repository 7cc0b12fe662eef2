"""The synthetic generator (``zicht synth``): contract conformance, determinism, planted truth.

Pure Python (no Spark): the output folders are read back with pyarrow and checked with pandas,
shapely and the committed crime-code table, independently of the generator's own bookkeeping.
Seeds are fixed and printed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
import yaml

from zicht.features import synthetic
from zicht.features.schemas import (
    BUYER_KINDS,
    INPUT_TABLES,
    LAYERS,
    LEGAL_FORMS,
    ROLES,
    SEXES,
    SIGNAL_SOURCES,
    USE_TYPES,
)
from zicht.jobs import synth

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
TODAY = dt.date.today()
MIN_EVENT_DATE = dt.date(1990, 1, 1)
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SEED = 20261128
DRUG_CODES = {"F42", "F43", "F44", "F45", "M0111"}


def _read(out: Path, table: str) -> pd.DataFrame:
    return pq.read_table(out / f"{table}.parquet").to_pandas()


def _truth(out: Path, name: str) -> pd.DataFrame:
    return pq.read_table(out / "_truth" / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="module", params=["tiny", "small"])
def synth_out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"synth_{request.param}") / "in"
    print(f"zicht synth --scale {request.param} --seed {SEED}")
    assert synth.main(["--scale", request.param, "--seed", str(SEED), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tables(synth_out: Path) -> dict[str, pd.DataFrame]:
    return {name: _read(synth_out, name) for name in INPUT_TABLES}


@pytest.fixture(scope="module")
def summary(synth_out: Path) -> dict[str, object]:
    return json.loads((synth_out / "_truth" / "truth.json").read_text())


@pytest.fixture(scope="module")
def crime_codes() -> tuple[set[str], set[str]]:
    with (CONF / "crime_codes.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["incident_code"] for r in rows if r["incident_code"]}, {
        r["crime_class"] for r in rows
    }


def _ref_date(summary: dict[str, object]) -> dt.date:
    return dt.date.fromisoformat(str(summary["reference_date"]))


# ------------------------------------------------------------------------ contract rules


def test_every_table_has_exactly_the_contract_columns(synth_out: Path) -> None:
    for name, schema in INPUT_TABLES.items():
        cols = pq.read_schema(next((synth_out / f"{name}.parquet").iterdir())).names
        expected = [c for c in schema.names if not (name == "persons" and c == "snapshot_year")]
        assert cols == expected, name


def test_areas(tables: dict[str, pd.DataFrame]) -> None:
    a = tables["areas"]
    assert a.buurt_code.is_unique
    assert a.buurt_code.str.fullmatch(r"BU\d{4}[0-9A-Z]{4}").all()
    assert a.wijk_code.str.fullmatch(r"WK\d{4}[0-9A-Z]{2}").all()
    assert a.gemeente_code.str.fullmatch(r"GM\d{4}").all()
    assert (a.wijk_code == "WK" + a.buurt_code.str[2:8]).all()
    assert (a.gemeente_code == "GM" + a.buurt_code.str[2:6]).all()
    for col in ("buurt_name", "wijk_name", "gemeente_name"):
        assert (a[col].str.len() > 0).all()
    assert ((a.x > 0) & (a.x < 300_000) & (a.y > 289_000) & (a.y < 629_000)).all()
    assert (a.land_area_ha > 0).all()
    assert (a.inhabitants >= 0).all()
    geoms = shapely.from_wkt(a.geometry_wkt.to_numpy())
    assert shapely.is_valid(geoms).all()
    # the centroid lies in its own polygon, and the polygons do not overlap
    assert shapely.contains_xy(geoms, a.x.to_numpy(), a.y.to_numpy()).all()
    union = shapely.union_all(geoms)
    assert union.area == pytest.approx(shapely.area(geoms).sum(), rel=1e-9)
    # land area is at most the polygon's area
    assert (a.land_area_ha <= shapely.area(geoms) / 10_000 + 1e-6).all()


def test_inhabitants_are_the_registered_persons(tables: dict[str, pd.DataFrame]) -> None:
    p, ad, a = tables["persons"], tables["addresses"], tables["areas"]
    per_buurt = (
        p.merge(ad[["address_id", "buurt_code"]], on="address_id").groupby("buurt_code").size()
    )
    got = a.set_index("buurt_code").inhabitants
    # CBS counts persons registered without an address (briefadres) in their buurt as well
    missing = got - per_buurt.reindex(got.index, fill_value=0)
    assert (missing >= 0).all() and (missing <= 0.02 * got + 3).all()
    assert got.sum() == len(p)


def test_incidents(
    tables: dict[str, pd.DataFrame],
    summary: dict[str, object],
    crime_codes: tuple[set[str], set[str]],
) -> None:
    i, a, ad = tables["incidents"], tables["areas"], tables["addresses"]
    codes, classes = crime_codes
    assert i.incident_id.is_unique
    assert i.incident_id.str.fullmatch(HEX16).all()  # opaque pseudonyms
    assert i.incident_date.between(MIN_EVENT_DATE, TODAY).all()
    assert set(pd.to_datetime(i.incident_date).dt.year) == set(summary["period_years"])  # type: ignore[arg-type]
    trimmed = i.crime_code.str.strip()
    is_code = trimmed.str.fullmatch(r"[A-Z]\d{2,4}")
    is_class = trimmed.str.fullmatch(r"\d\.\d{1,2}\.\d{1,2}")
    assert (is_code | is_class).all()
    assert trimmed[is_code].isin(codes).all()
    assert trimmed[is_class].isin(classes).all()
    assert (i.crime_code != trimmed).any(), "some codes carry a trailing space, as open data does"
    assert is_class.any(), "some rows carry only a class"
    # the phenomena are present
    for code in ("A72", "A20", "F42", *(("F94", "F633", "F70") if len(i) > 5_000 else ())):
        assert (trimmed == code).any(), code
    has_b, has_a, has_xy = i.buurt_code.notna(), i.address_id.notna(), i.x.notna() & i.y.notna()
    assert (has_b | has_a | has_xy).all()
    assert (i.x.notna() == i.y.notna()).all()
    assert (has_a & ~has_b & ~has_xy).any() and (has_xy & ~has_b & ~has_a).any()
    assert i.buurt_code[has_b].isin(a.buurt_code).all()
    assert i.address_id[has_a].isin(ad.address_id).all()
    # every point lies in exactly one buurt polygon, and in the given buurt when one is given
    geoms = shapely.from_wkt(a.geometry_wkt.to_numpy())
    pts = i[has_xy]
    inside = shapely.STRtree(geoms).query(shapely.points(pts.x, pts.y), predicate="within")
    assert np.bincount(inside[0], minlength=len(pts)).tolist() == [1] * len(pts)
    located = a.buurt_code.to_numpy()[inside[1][np.argsort(inside[0])]]
    given = pts.buurt_code.to_numpy()
    both = pd.notna(given)
    assert (located[both] == given[both]).all()


def test_addresses(tables: dict[str, pd.DataFrame]) -> None:
    ad = tables["addresses"]
    assert ad.address_id.is_unique and ad.address_id.str.fullmatch(HEX16).all()
    assert ad.buurt_code.isin(tables["areas"].buurt_code).all()
    assert ad.use_type.isin(USE_TYPES).all()
    assert (ad.use_type == "woonfunctie").mean() > 0.8
    assert ad.use_type.nunique() >= 5
    assert (ad.floor_area_m2 > 0).all()
    woz = ad.woz_value_eur.dropna()
    assert (woz >= 0).all()
    assert ad.woz_value_eur.isna().any()


def test_persons(tables: dict[str, pd.DataFrame], summary: dict[str, object]) -> None:
    p, ad = tables["persons"], tables["addresses"]
    ref = _ref_date(summary)
    assert p.person_id.is_unique and p.person_id.str.fullmatch(HEX16).all()
    assert p.birth_year.between(1900, ref.year).all()
    assert p.sex.isin(SEXES).all() and set(p.sex) >= {"M", "V"}
    assert p.address_id.dropna().isin(ad.address_id).all()
    assert p.address_id.isna().any(), "a few persons are registered at no address"
    assert (p.registered_since <= ref).all()
    recent = (p.registered_since > ref - dt.timedelta(days=365)).mean()
    assert 0.03 < recent < 0.3, "residential mobility in the last year"
    # households share a dwelling; dwellings are residential
    hh = p.dropna(subset=["household_id"]).groupby("household_id").address_id.nunique()
    assert (hh <= 1).all()
    assert (p.groupby("household_id").size() > 1).any()
    use = ad.set_index("address_id").use_type
    # (and the planted holiday park's logiesfunctie units: tests/test_themes_synth.py)
    assert use.reindex(p.address_id.dropna()).isin(["woonfunctie", "logiesfunctie"]).all()


def test_suspects(tables: dict[str, pd.DataFrame]) -> None:
    s, i, p = tables["suspects"], tables["incidents"], tables["persons"]
    assert not s.duplicated(["incident_id", "person_id"]).any()
    assert s.incident_id.isin(i.incident_id).all()
    share_with = s.incident_id.nunique() / len(i)
    assert 0.2 < share_with < 0.45
    assert s.groupby("incident_id").size().max() <= 6
    outside = ~s.person_id.drop_duplicates().isin(p.person_id)
    assert 0.05 < outside.mean() < 0.35, "suspects not in persons (living elsewhere, unregistered)"
    assert (s.person_id.value_counts() >= 3).any(), "repeat suspects"


def test_companies_and_roles(tables: dict[str, pd.DataFrame]) -> None:
    c, r, ad = tables["companies"], tables["company_roles"], tables["addresses"]
    assert c.company_id.is_unique and c.company_id.str.fullmatch(HEX16).all()
    assert c.sbi_code.str.fullmatch(r"\d{2,5}").all()
    assert {"5610", "9602", "4511"} <= set(c.sbi_code)
    assert c.legal_form.isin(LEGAL_FORMS).all()
    assert c.address_id.dropna().isin(ad.address_id).all()
    assert (c.registered_date <= TODAY).all()
    dereg = c.dropna(subset=["deregistered_date"])
    assert len(dereg) and (dereg.deregistered_date >= dereg.registered_date).all()
    assert (dereg.deregistered_date <= TODAY).all()
    assert not r.duplicated(["company_id", "person_id", "role", "start_date"]).any()
    assert r.company_id.isin(c.company_id).all()
    assert r.role.isin(ROLES).all()
    ended = r.dropna(subset=["end_date"])
    assert (ended.end_date >= ended.start_date).all()
    assert (r.start_date <= TODAY).all()


def test_signals(tables: dict[str, pd.DataFrame]) -> None:
    s = tables["signals"]
    phen = yaml.safe_load((CONF / "phenomena.yaml").read_text())["phenomena"]
    cats = {c for v in phen.values() for c in v["signal_categories"]}
    assert s.signal_id.is_unique
    assert s.signal_date.between(MIN_EVENT_DATE, TODAY).all()
    assert s.category.isin(cats).all()
    assert s.source.isin(SIGNAL_SOURCES).all()
    assert (s.address_id.notna() | s.buurt_code.notna()).all()
    assert s.address_id.dropna().isin(tables["addresses"].address_id).all()
    assert s.buurt_code.dropna().isin(tables["areas"].buurt_code).all()


def test_person_links(tables: dict[str, pd.DataFrame]) -> None:
    pl = tables["person_links"]
    assert (pl.person_id_a != pl.person_id_b).all()
    assert set(pl.layer) == set(LAYERS)
    assert not pl.duplicated(["person_id_a", "person_id_b", "layer"]).any()
    lo = pl[["person_id_a", "person_id_b"]].min(axis=1)
    hi = pl[["person_id_a", "person_id_b"]].max(axis=1)
    assert not pd.DataFrame({"a": lo, "b": hi, "l": pl.layer}).duplicated().any(), "undirected"


def test_property_transactions(tables: dict[str, pd.DataFrame]) -> None:
    t = tables["property_transactions"]
    assert t.transaction_id.is_unique
    assert t.address_id.isin(tables["addresses"].address_id).all()
    assert t.transaction_date.between(MIN_EVENT_DATE, TODAY).all()
    assert (t.price_eur > 0).all()
    assert t.buyer_kind.isin(BUYER_KINDS).all()
    assert (t.buyer_id.isna() == (t.buyer_kind == "unknown")).all()


def test_household_income(tables: dict[str, pd.DataFrame], summary: dict[str, object]) -> None:
    h, p = tables["household_income"], tables["persons"]
    assert not h.duplicated(["household_id", "year"]).any()
    assert set(h.year) == set(summary["period_years"])  # type: ignore[arg-type]
    assert h.household_id.isin(p.household_id).all()
    assert (h.disposable_income_eur > 0).all()


# ----------------------------------------------------------------------------- planted truth


def test_drug_hotspots_have_clearly_higher_drug_rates(
    synth_out: Path, tables: dict[str, pd.DataFrame], summary: dict[str, object]
) -> None:
    i, a, ad = tables["incidents"], tables["areas"], tables["addresses"]
    hot = set(summary["hotspot_buurten"])  # type: ignore[arg-type]
    assert hot and hot <= set(a.buurt_code)
    # locate independently: buurt_code, else the address's buurt, else point in polygon
    buurt = i.buurt_code.copy()
    via_addr = buurt.isna() & i.address_id.notna()
    buurt[via_addr] = i.address_id[via_addr].map(ad.set_index("address_id").buurt_code)
    via_xy = buurt.isna()
    geoms = shapely.from_wkt(a.geometry_wkt.to_numpy())
    q = shapely.STRtree(geoms).query(shapely.points(i.x[via_xy], i.y[via_xy]), predicate="within")
    buurt.loc[i.index[via_xy][q[0]]] = a.buurt_code.to_numpy()[q[1]]
    assert buurt.notna().all()
    code = i.crime_code.str.strip()
    drugs = code.isin(DRUG_CODES) | (code == "3.1.1")
    counts = drugs.groupby(buurt).sum().reindex(a.buurt_code, fill_value=0)
    inh = a.set_index("buurt_code").inhabitants
    is_hot = inh.index.isin(list(hot))
    rate_hot = counts[is_hot].sum() / inh[is_hot].sum() * 1000
    rate_rest = counts[~is_hot].sum() / inh[~is_hot].sum() * 1000
    print(f"drug incidents per 1000: hot spots {rate_hot:.1f}, rest {rate_rest:.1f}")
    assert rate_hot > 5 * rate_rest
    # hennepkwekerij signals concentrate there too
    s = tables["signals"]
    sb = s.buurt_code.fillna(s.address_id.map(ad.set_index("address_id").buurt_code))
    henn = (s.category == "hennepkwekerij").groupby(sb).sum().reindex(a.buurt_code, fill_value=0)
    assert henn[is_hot].sum() / inh[is_hot].sum() > 3 * henn[~is_hot].sum() / inh[~is_hot].sum()


def test_criminal_groups_co_offend(synth_out: Path, tables: dict[str, pd.DataFrame]) -> None:
    g = _truth(synth_out, "criminal_groups")
    s, p, ad = tables["suspects"], tables["persons"], tables["addresses"]
    members = g.drop_duplicates(["group_id", "person_id"])
    assert g.group_id.nunique() >= 2
    inc_of = s.groupby("person_id").incident_id.apply(set)
    home_of = p.set_index("person_id").address_id.map(ad.set_index("address_id").buurt_code)
    for gid, grp in members.groupby("group_id"):
        core = grp[
            grp.n_group_incidents > 3
        ]  # brokers appear in a few incidents of the other group
        ids = core.person_id.tolist()
        assert 5 <= len(ids) <= 25, gid
        # union-find over shared incidents: the members form one co-offending component
        parent = {x: x for x in ids}

        def find(x: str, parent: dict[str, str] = parent) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        by_inc: dict[str, list[str]] = defaultdict(list)
        for pid in ids:
            for inc in inc_of.get(pid, set()):
                by_inc[inc].append(pid)
        for group_members in by_inc.values():
            for other in group_members[1:]:
                parent[find(other)] = find(group_members[0])
        assert len({find(x) for x in ids}) == 1, f"group {gid} is not one co-offending component"
        # most resident members live in the home buurt
        homes = home_of.reindex(core.person_id[core.is_registered]).dropna()
        assert (homes == grp.home_buurt_code.iloc[0]).mean() >= 0.5, gid
    # a broker co-offends with members of two groups
    brokers = set(g.person_id[g.is_broker])
    assert brokers
    for b in brokers:
        groups_with = set()
        for inc in inc_of[b]:
            co = s.person_id[(s.incident_id == inc) & (s.person_id != b)]
            groups_with |= set(g.group_id[g.person_id.isin(co) & ~g.is_broker])
        assert len(groups_with) >= 2, b


def test_many_companies_directors_overbewoning_doorsluis(
    synth_out: Path, tables: dict[str, pd.DataFrame]
) -> None:
    c, r, p, t = (
        tables["companies"],
        tables["company_roles"],
        tables["persons"],
        tables["property_transactions"],
    )
    many = set(_truth(synth_out, "many_company_addresses").address_id)
    per_addr = c.address_id.value_counts()
    assert (per_addr.reindex(list(many)) >= 15).all()
    assert per_addr.drop(list(many)).max() < 15
    dirs = set(_truth(synth_out, "many_company_directors").person_id)
    per_person = r.drop_duplicates(["company_id", "person_id"]).person_id.value_counts()
    assert (per_person.reindex(list(dirs)) >= 10).all()
    assert per_person.drop(list(dirs)).max() < 10
    over = set(_truth(synth_out, "overbewoning").address_id)
    per_dwelling = p.address_id.value_counts()
    assert (per_dwelling.reindex(list(over)) >= 8).all()
    assert per_dwelling.drop(list(over)).max() <= 6
    ds = set(_truth(synth_out, "doorsluiswoningen").address_id)
    sales = t.address_id.value_counts()
    assert (sales.reindex(list(ds)) >= 5).all()
    assert sales.drop(list(ds)).max() < 5
    assert (t.transaction_date >= dt.date(2005, 1, 1)).all()


# ------------------------------------------------------------------------ determinism and CLI


def _digest(out: Path) -> dict[str, str]:
    return {
        str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(out.rglob("*"))
        if f.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    print(f"seeds {SEED}, {SEED + 1}")
    args = ["--scale", "tiny", "--seed", str(SEED)]
    assert synth.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert synth.main([*args, "--out", str(tmp_path / "b")]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert (
        synth.main(["--scale", "tiny", "--seed", str(SEED + 1), "--out", str(tmp_path / "c")]) == 0
    )
    a, c = _digest(tmp_path / "a"), _digest(tmp_path / "c")
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a), "every file differs with another seed"
    ia = _read(tmp_path / "a", "incidents")
    ic = _read(tmp_path / "c", "incidents")
    assert not set(ia.incident_id) & set(ic.incident_id)
    assert (
        _read(tmp_path / "a", "areas").buurt_code.tolist()
        != _read(tmp_path / "c", "areas").buurt_code.tolist()
    )


def test_generator_pieces_are_deterministic_in_memory() -> None:
    params = synthetic.SCALES["tiny"]
    first = list(synthetic.generate(params, 7))
    second = list(synthetic.generate(params, 7))
    assert [n for n, _ in first] == [n for n, _ in second]
    assert all(a.equals(b) for (_, a), (_, b) in zip(first, second, strict=True))


def test_refuses_foreign_folder_and_replaces_previous_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert synth.main(["--scale", "tiny", "--seed", "1", "--out", str(foreign)]) == 2
    assert "not a previous synth output" in capsys.readouterr().err
    assert [f.name for f in foreign.iterdir()] == ["notes.txt"]
    out = tmp_path / "out"
    assert synth.main(["--scale", "tiny", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "incidents" in printed and "rows" in printed
    assert synth.main(["--scale", "tiny", "--seed", "2", "--out", str(out)]) == 0
    assert json.loads((out / "_truth" / "truth.json").read_text())["seed"] == 2
    assert len(list((out / "incidents.parquet").iterdir())) == 1


def test_strict_arguments() -> None:
    with pytest.raises(SystemExit):
        synth.main(["--scale", "huge", "--seed", "1", "--out", "x"])
    with pytest.raises(SystemExit):
        synth.main(["--scale", "tiny", "--seed", "1", "--out", "x", "--unknown"])


def test_snapshot_years(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    assert (
        synth.main(["--scale", "tiny", "--seed", "3", "--out", str(out), "--snapshot-years"]) == 0
    )
    p = _read(out, "persons")
    assert list(p.columns) == list(INPUT_TABLES["persons"].names)
    assert not p.duplicated(["person_id", "snapshot_year"]).any()
    assert set(p.snapshot_year) == {2023, 2024}
    for year, snap in p.groupby("snapshot_year"):
        assert (snap.registered_since <= dt.date(int(year), 1, 1)).all()
        assert (snap.birth_year < year).all()
        assert snap.address_id.dropna().isin(_read(out, "addresses").address_id).all()


def test_scales_are_declared() -> None:
    assert set(synthetic.SCALES) == {"tiny", "small", "medium", "nl"}
    nl = synthetic.SCALES["nl"]
    assert nl.persons == 17_900_000 and nl.n_gemeenten == 340
    assert round(nl.n_gemeenten * nl.wijken_per_gemeente * nl.buurten_per_wijk, -3) == 14_000
    rng = np.random.default_rng(SEED)
    plan = synthetic.plan_areas(nl, rng)  # the national area plan is cheap and valid
    assert plan.inhabitants.sum() == nl.persons
    assert len(plan.chunks) > 10 and plan.chunks[-1][1] == len(plan)
    assert len(set(plan.buurt_code.tolist())) == len(plan)
    assert (plan.x0 > 0).all() and (plan.x0 + plan.side_m < 300_000).all()
    assert (plan.y0 > 289_000).all() and (plan.y0 + plan.side_m < 629_000).all()
