"""Issue 19's planted synthetic truth, checked against the contract tables the generator wrote.

Pure Python (no Spark): ``zicht synth`` at tiny and small, read back with pyarrow; the rule of
``vastgoedfraude.unexplained_ownership_dwellings`` (conf/base/zicht.yaml, patterns) is written
out here in pandas, independently of ``zicht.features.themes``, and applied to the written
tables: the planted owners' dwellings must be exactly what it finds, the DECOY's and the
housing corporations' never. The end-to-end check (tests/test_themes_e2e.py) reads the same
truth from the pipeline's indicators.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from zicht.jobs import synth

SEED = 20261128
MIN_DWELLINGS, MAX_VALUE_TO_INCOME = 2, 20.0  # conf/base/zicht.yaml, patterns


def _read(out: Path, table: str) -> pd.DataFrame:
    return pq.read_table(out / f"{table}.parquet").to_pandas()


def _truth(out: Path, name: str) -> pd.DataFrame:
    return pq.read_table(out / "_truth" / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="module", params=["tiny", "small"])
def out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"themes_{request.param}") / "in"
    print(f"zicht synth --scale {request.param} --seed {SEED}")
    assert synth.main(["--scale", request.param, "--seed", str(SEED), "--out", str(folder)]) == 0
    return folder


def unexplained_dwellings(out: Path, year: int) -> set[str]:
    """The dwellings the rule counts in ``year``, computed from the contract tables."""
    own, ad = _read(out, "ownership"), _read(out, "addresses")
    persons, income = _read(out, "persons"), _read(out, "household_income")
    dw = ad[ad.use_type == "woonfunctie"][["address_id", "woz_value_eur"]]
    first, last = pd.Timestamp(year, 1, 1).date(), pd.Timestamp(year, 12, 31).date()
    active = own[(own.from_date <= last) & (own.to_date.isna() | (own.to_date >= first))]
    people = active[(active.owner_kind == "person") & active.owner_id.notna()].merge(dw)
    people = people.assign(value=people.woz_value_eur.fillna(0) * people.share)
    per = people.groupby("owner_id").agg(n=("address_id", "nunique"), value=("value", "sum"))
    hh = persons.drop_duplicates("person_id", keep="last").set_index("person_id").household_id
    inc = income[income.year == year].set_index("household_id").disposable_income_eur
    per["income"] = per.index.map(hh).map(inc)
    flagged = per[(per.n >= MIN_DWELLINGS) & (per.value > MAX_VALUE_TO_INCOME * per.income)]
    return set(people[people.owner_id.isin(flagged.index)].address_id)


def test_unexplained_ownership_is_the_planted_owners_only(out: Path) -> None:
    year = int(_read(out, "household_income").year.max())
    planted = _truth(out, "ownership_planted")
    found = unexplained_dwellings(out, year)
    assert found == set(planted[planted.role == "planted"].address_id)
    decoy = set(planted[planted.role == "decoy"].address_id)
    assert len(decoy) >= 2 and not decoy & found
    hc = _truth(out, "housing_corporation_dwellings")
    assert len(hc) > 0 and not set(hc.address_id) & found
    own = _read(out, "ownership")
    kinds = own[own.address_id.isin(hc.address_id)].owner_kind
    assert (kinds == "housing_corporation").all()
    # corporations own most rented dwellings of the vulnerable buurten
    assert hc.is_vulnerable_buurt.mean() > 0.4


def test_unknown_owners_and_holiday_park(out: Path) -> None:
    own, ad, persons = _read(out, "ownership"), _read(out, "addresses"), _read(out, "persons")
    unknown = _truth(out, "unknown_owner_dwellings")
    assert set(own[own.owner_id.isna()].address_id) == set(unknown.address_id)
    park = _truth(out, "holiday_parks").iloc[0]
    logies = ad[ad.use_type == "logiesfunctie"]
    living = persons.drop_duplicates("person_id", keep="last")
    residents = living[living.address_id.isin(logies.address_id)]
    assert len(residents) == park.n_residents > 0
    assert set(residents.address_id.map(ad.set_index("address_id").buurt_code)) == {park.buurt_code}
    comp = _read(out, "companies")
    assert comp.sbi_code.str.match(r"^55(20|30)").sum() == park.n_companies == 3


def test_fiu_subjects_concentrate_in_the_planted_buurten(out: Path) -> None:
    ut, ad, persons = (
        _read(out, "unusual_transactions"),
        _read(out, "addresses"),
        _read(out, "persons"),
    )
    assert (ut.status == "verdacht").all()
    assert not ut.duplicated(["transaction_id", "subject_id"]).any()
    home = persons.drop_duplicates("person_id", keep="last").set_index("person_id").address_id
    buurt = ut.subject_id.map(home).map(ad.set_index("address_id").buurt_code)
    per = ut.assign(buurt=buurt).groupby("buurt").subject_id.nunique()
    planted = _truth(out, "fiu_buurten")
    assert (per.reindex(planted.buurt_code).fillna(0) >= planted.n_planted_subjects.values).all()
    others = per.drop(planted.buurt_code, errors="ignore")
    assert per.reindex(planted.buurt_code).min() > (others.max() if len(others) else 0)
