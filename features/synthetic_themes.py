"""Synthetic data for issue 19's themes: FIU-NL reports, ownership, holiday parks.

Reads nothing and writes nothing: :func:`with_themes` wraps the pieces of one chunk of
:func:`zicht.features.synthetic.generate`, passes them through unchanged (except the chunk's
``addresses``, held back to the chunk's end, where a holiday park's units become
``logiesfunctie``) and then yields ``unusual_transactions``, ``ownership``, the park's
companies and roles, and the planted truth under ``_truth/``. It reads only the pieces the
chunk yielded (no generator internals) and draws from its own random stream
(``default_rng([seed, chunk, 19])``), so every other table and planted pattern stays as it was.
Pandas on one chunk's pieces only (about ``chunk_persons`` persons): bounded by construction.

Planted, with truth:

- ``fiu_buurten``: a few buurten where ten to twenty residents are subjects of suspicious
  transactions (some transactions with two subjects), against a thin background elsewhere.
- ``ownership_planted``: the dwellings of the lowest-income households' heads who own four or
  more rented dwellings worth over 25 times their income (``role = planted``: must count), and
  of a DECOY, the highest-income household's head owning several dwellings worth under ten
  times its income (``role = decoy``: must not count).
- ``housing_corporation_dwellings``: corporations own most rented dwellings in the vulnerable
  buurten (lowest mean income) and some elsewhere: they must never count.
- ``unknown_owner_dwellings``: dwellings whose owner is unknown.
- ``holiday_parks``: one buurt where occupied dwellings become logiesfunctie units (permanent
  residents of a holiday park), with three SBI 5520/5530 companies there (one new in the last
  year, one ended in it, one whose owner is a drugs suspect in it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from zicht.features.synthetic import (
    TRUTH_PREFIX,
    ScaleParams,
    _days,
    _mix64,
    arrow_schema,
    hex_ids,
)

_KIND = {"fiu": 9, "ownership": 10, "owner": 11, "company": 12}  # beyond synthetic._KIND
DRUG_CODES = ("F42", "F43", "F44", "F45", "M0111")
_HELD = {
    "persons",
    "household_income",
    "companies",
    "suspects",
    "incidents",
    TRUTH_PREFIX + "overbewoning",
    TRUTH_PREFIX + "doorsluiswoningen",
    TRUTH_PREFIX + "big_ordinary_buurten",
}


class _Ids:
    """Pseudonyms in namespaces of their own (kinds the base generator does not use), with the
    base generator's mix, so they collide with no other id."""

    def __init__(self, seed: int, chunk_no: int) -> None:
        self._key = _mix64(np.array([seed & 0xFFFFFFFFFFFF], dtype=np.uint64))[0]
        self._chunk = np.uint64(chunk_no) << np.uint64(36)
        self._next: dict[str, int] = {}

    def new(self, kind: str, n: int) -> pa.Array:
        start = self._next.get(kind, 0)
        self._next[kind] = start + n
        counter = np.arange(start, start + n, dtype=np.uint64)
        raw = (np.uint64(_KIND[kind]) << np.uint64(56)) | self._chunk | counter
        return hex_ids(_mix64(_mix64(raw) ^ self._key))


def with_themes(
    pieces: Iterable[tuple[str, pa.Table]], *, params: ScaleParams, seed: int, chunk_no: int
) -> Iterator[tuple[str, pa.Table]]:
    """The chunk's pieces, then issue 19's tables and truth (module docstring)."""
    held: list[pa.Table] = []
    seen: dict[str, list[pa.Table]] = {}
    for name, table in pieces:
        if name == "addresses":
            held.append(table)
            continue
        if name in _HELD:
            seen.setdefault(name, []).append(table)
        yield name, table
    if not held:
        return
    yield from _themes(pa.concat_tables(held), seen, params=params, seed=seed, chunk_no=chunk_no)


def _frame(seen: dict[str, list[pa.Table]], name: str) -> pd.DataFrame:
    parts = seen.get(name) or seen.get(TRUTH_PREFIX + name) or []
    return pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame()


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    schema = arrow_schema(name)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _date_array(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), pa.int32()).cast(pa.date32())


def _themes(
    addresses: pa.Table,
    seen: dict[str, list[pa.Table]],
    *,
    params: ScaleParams,
    seed: int,
    chunk_no: int,
) -> Iterator[tuple[str, pa.Table]]:
    rng = np.random.default_rng([seed, chunk_no, 19])
    ids = _Ids(seed, chunk_no)
    years = params.years
    ref_year = years[-1]
    ad = addresses.to_pandas()
    persons = _frame(seen, "persons")
    if "snapshot_year" in persons.columns:  # the reference year's snapshot
        persons = persons[persons["snapshot_year"] == persons["snapshot_year"].max()]
    persons = persons.reset_index(drop=True)
    income = _frame(seen, "household_income")
    avoid = set(_frame(seen, "big_ordinary_buurten").get("buurt_code", pd.Series(dtype=str)))
    buurt_of = ad.set_index("address_id")["buurt_code"]
    persons["buurt_code"] = persons["address_id"].map(buurt_of)
    persons["age"] = ref_year - persons["birth_year"]
    adults = persons[(persons["age"] >= 18) & persons["buurt_code"].notna()]
    truth: dict[str, pd.DataFrame] = {}

    # ---------------------------------------------------------------- holiday park
    occupied = set(persons["address_id"].dropna())
    planted_elsewhere = set(_frame(seen, "overbewoning").get("address_id", [])) | set(
        _frame(seen, "doorsluiswoningen").get("address_id", [])
    )
    cand = ad[
        (ad["use_type"] == "woonfunctie")
        & ad["address_id"].isin(occupied)
        & ~ad["address_id"].isin(planted_elsewhere)
        & ~ad["buurt_code"].isin(avoid)
    ]
    per_buurt = cand.groupby("buurt_code").size()
    big = per_buurt[per_buurt >= 40]
    park_buurt = str(big.index[rng.integers(0, len(big))] if len(big) else per_buurt.idxmax())
    in_park = cand[cand["buurt_code"] == park_buurt]["address_id"].to_numpy()
    units = rng.choice(in_park, size=min(len(in_park), int(rng.integers(12, 21))), replace=False)
    ad.loc[ad["address_id"].isin(units), "use_type"] = "logiesfunctie"
    residents = persons[persons["address_id"].isin(units)]
    yield "addresses", pa.Table.from_pandas(ad, schema=addresses.schema, preserve_index=False)

    # ---------------------------------------------------------------- FIU-NL
    by_buurt = adults.groupby("buurt_code").size()
    eligible = by_buurt[(by_buurt >= 50) & ~by_buurt.index.isin(avoid | {park_buurt})]
    if not len(eligible):
        eligible = by_buurt.sort_values(ascending=False)
    n_fiu = max(1, round(len(by_buurt) * 0.04))
    fiu_buurten = rng.choice(eligible.index.to_numpy(), size=min(n_fiu, len(eligible)),
                             replace=False)  # fmt: skip
    first_day, last_day = _days(dt.date(years[0], 1, 1)), _days(dt.date(ref_year, 12, 31))
    tx_rows: list[tuple[int, str, str, str | None]] = []  # tx number, subject, kind, address
    fiu_truth = []
    n_tx = 0
    for b in fiu_buurten:
        pool = adults[adults["buurt_code"] == b]
        n_sub = min(len(pool), int(rng.integers(10, 21)))
        subjects = pool.iloc[rng.choice(len(pool), size=n_sub, replace=False)]
        planted_tx = 0
        for _, s in subjects.iterrows():
            for _k in range(int(rng.integers(1, 4))):
                addr = s["address_id"] if rng.random() < 0.25 else None
                tx_rows.append((n_tx, s["person_id"], "person", addr))
                if rng.random() < 0.15 and n_sub > 1:  # a second subject of the same buurt
                    other = subjects[subjects["person_id"] != s["person_id"]]
                    o = other.iloc[int(rng.integers(0, len(other)))]
                    tx_rows.append((n_tx, o["person_id"], "person", None))
                n_tx += 1
                planted_tx += 1
        fiu_truth.append((str(b), n_sub, planted_tx))
    n_bg = int(rng.poisson(len(persons) * 0.0004 * len(years)))
    for i in rng.choice(len(adults), size=min(n_bg, len(adults)), replace=False):
        tx_rows.append((n_tx, adults.iloc[int(i)]["person_id"], "person", None))
        n_tx += 1
    companies = _frame(seen, "companies")
    seated = companies[companies["address_id"].notna()] if len(companies) else companies
    n_bc = min(len(seated), int(rng.poisson(max(len(seated), 1) * 0.003 * len(years))))
    for i in rng.choice(len(seated), size=n_bc, replace=False) if n_bc else []:
        tx_rows.append((n_tx, seated.iloc[int(i)]["company_id"], "company", None))
        n_tx += 1
    tx = pd.DataFrame(tx_rows, columns=["tx", "subject_id", "subject_kind", "address_id"])
    tx = tx.drop_duplicates(["tx", "subject_id"])
    day = first_day + rng.integers(0, last_day - first_day + 1, n_tx)
    amount = np.round(rng.lognormal(np.log(12_000), 1.0, n_tx) + 500, -1).astype(np.int64)
    tx_id = ids.new("fiu", n_tx)
    yield (
        "unusual_transactions",
        _table(
            "unusual_transactions",
            {
                "transaction_id": pa.array(np.asarray(tx_id.to_pylist(), dtype=object)[tx["tx"]]),
                "report_date": _date_array(day[tx["tx"].to_numpy()]),
                "amount_eur": pa.array(amount[tx["tx"].to_numpy()], pa.int64()),
                "subject_id": pa.array(tx["subject_id"].tolist(), pa.string()),
                "subject_kind": pa.array(tx["subject_kind"].tolist(), pa.string()),
                "status": pa.array(["verdacht"] * len(tx), pa.string()),
                "address_id": pa.array(tx["address_id"].tolist(), pa.string()),
            },
        ),
    )
    truth["fiu_buurten"] = pd.DataFrame(
        fiu_truth, columns=["buurt_code", "n_planted_subjects", "n_planted_transactions"]
    )

    # ---------------------------------------------------------------- ownership
    yield from _ownership(ad, persons, income, seated, rng, ids, years, truth)

    # ---------------------------------------------------------------- holiday park firms
    suspects = _frame(seen, "suspects")
    incidents = _frame(seen, "incidents")
    drug_suspect = None
    if len(suspects) and len(incidents):
        inc = incidents[
            incidents["crime_code"].isin(DRUG_CODES)
            & (pd.to_datetime(incidents["incident_date"]).dt.year == ref_year)
        ]
        hits = suspects[suspects["incident_id"].isin(inc["incident_id"])]["person_id"]
        if len(hits):
            drug_suspect = str(sorted(hits)[int(rng.integers(0, len(hits)))])
    park_units = sorted(units)
    at = [park_units[i % len(park_units)] for i in range(3)]
    reg = [_days(dt.date(2012, 4, 1)), _days(dt.date(ref_year, 3, 1)), _days(dt.date(2016, 5, 1))]
    comp_id = ids.new("company", 3)
    yield (
        "companies",
        _table(
            "companies",
            {
                "company_id": comp_id,
                "sbi_code": pa.array(["5520", "5530", "55201"], pa.string()),
                "legal_form": pa.array(["bv", "vof", "bv"], pa.string()),
                "address_id": pa.array(at, pa.string()),
                "registered_date": _date_array(np.array(reg)),
                "deregistered_date": pa.array([None, None, dt.date(ref_year, 9, 30)], pa.date32()),
            },
        ),
    )
    owners = [drug_suspect or str(adults.iloc[0]["person_id"])]
    owners += [str(adults.iloc[int(i)]["person_id"]) for i in rng.integers(0, len(adults), 2)]
    yield (
        "company_roles",
        _table(
            "company_roles",
            {
                "company_id": comp_id,
                "person_id": pa.array(owners, pa.string()),
                "role": pa.array(["eigenaar"] * 3, pa.string()),
                "start_date": _date_array(np.array(reg)),
                "end_date": pa.array([None, None, dt.date(ref_year, 9, 30)], pa.date32()),
            },
        ),
    )
    truth["holiday_parks"] = pd.DataFrame(
        {
            "buurt_code": [park_buurt],
            "n_logies_units": [len(units)],
            "n_residents": [len(residents)],
            "n_companies": [3],
            "n_new_companies": [1],
            "n_ended_companies": [1],
            "n_companies_with_suspect": [int(drug_suspect is not None)],
        }
    )
    for name, df in truth.items():
        yield TRUTH_PREFIX + name, pa.Table.from_pandas(df, preserve_index=False)


def _ownership(
    ad: pd.DataFrame,
    persons: pd.DataFrame,
    income: pd.DataFrame,
    companies: pd.DataFrame,
    rng: np.random.Generator,
    ids: _Ids,
    years: tuple[int, ...],
    truth: dict[str, pd.DataFrame],
) -> Iterator[tuple[str, pa.Table]]:
    """One ownership period per dwelling (two for some couples), planted owners and a decoy."""
    dw = ad[ad["use_type"] == "woonfunctie"].reset_index(drop=True)
    ref_year = years[-1]
    inc_ref = income[income["year"] == ref_year].set_index("household_id")["disposable_income_eur"]
    pi = persons.assign(_inc=persons["household_id"].map(inc_ref))
    mean_inc = pi.groupby("buurt_code")["_inc"].mean()
    vulnerable = set(mean_inc[mean_inc <= mean_inc.quantile(0.25)].index)
    adults = persons[(persons["age"] >= 18) & persons["address_id"].notna()]
    heads = adults.drop_duplicates("address_id").set_index("address_id")
    partners = adults[adults.duplicated("address_id")].drop_duplicates("address_id")
    second = partners.set_index("address_id")["person_id"]
    n = len(dw)
    is_vuln = dw["buurt_code"].isin(vulnerable).to_numpy()
    occupied = dw["address_id"].isin(heads.index).to_numpy()
    u = rng.random(n)
    kind = np.where(u < 0.004, "unknown", "")
    hc = (kind == "") & (rng.random(n) < np.where(is_vuln, 0.6, 0.15))
    kind = np.where(hc, "housing_corporation", kind)
    own = (kind == "") & occupied & (rng.random(n) < 0.75)
    kind = np.where(own, "person", kind)
    kind = np.where(kind == "", "company", kind)
    corp = np.asarray(ids.new("owner", 2).to_pylist(), dtype=object)
    comp_ids = companies["company_id"].to_numpy() if len(companies) else corp
    owner = np.full(n, None, dtype=object)
    owner[hc] = corp[rng.integers(0, 2, int(hc.sum()))]
    landlord = kind == "company"
    owner[landlord] = comp_ids[rng.integers(0, len(comp_ids), int(landlord.sum()))]
    owner[own] = heads.loc[dw["address_id"][own], "person_id"].to_numpy()
    since = np.where(
        own,
        heads.reindex(dw["address_id"])["registered_since"].map(
            lambda d: _days(d) if isinstance(d, dt.date) else _days(dt.date(2010, 1, 1))
        ),
        _days(dt.date(1995, 1, 1)) + rng.integers(0, 25 * 365, n),
    ).astype(np.int64)
    rows = pd.DataFrame(
        {
            "address_id": dw["address_id"],
            "buurt_code": dw["buurt_code"],
            "woz": dw["woz_value_eur"],
            "owner_id": owner,
            "owner_kind": kind,
            "share": 1.0,
            "from_day": since,
        }
    )
    # couples: half of the owner-occupied dwellings with a second adult are owned half-half
    couple = own & dw["address_id"].isin(second.index).to_numpy() & (rng.random(n) < 0.5)
    extra = rows[couple].assign(owner_id=second.reindex(dw["address_id"][couple]).to_numpy())
    rows.loc[couple, "share"] = 0.5
    extra["share"] = 0.5

    # planted: heads of the lowest-income households buy up rented dwellings
    hh_max = income.groupby("household_id")["disposable_income_eur"].agg(["max", "min", "count"])
    hh_max = hh_max[hh_max["count"] == len(years)]
    cand = adults.drop_duplicates("household_id").join(hh_max, on="household_id", how="inner")
    low = cand.sort_values("max").head(max(2, round(len(persons) / 15_000)))
    pool = list(
        rng.permutation(rows.index[(rows["owner_kind"] == "company") & (rows["woz"] >= 200_000)])
    )
    planted: list[tuple[str, str, str]] = []
    for _, person in low.iterrows():
        taken = 0
        value = rows.loc[rows["owner_id"] == person["person_id"], "woz"].fillna(0).sum()
        while pool and (taken < 4 or value <= 25 * person["max"]) and taken < 8:
            i = pool.pop()
            rows.loc[i, ["owner_id", "owner_kind"]] = [person["person_id"], "person"]
            value += rows.loc[i, "woz"]
            taken += 1
        if taken >= 2 and value > 25 * person["max"]:
            for i in rows.index[rows["owner_id"] == person["person_id"]]:
                planted.append((rows.loc[i, "address_id"], rows.loc[i, "buurt_code"], "planted"))
    # DECOY: the highest-income household's head owns several dwellings its income explains
    rich = cand.sort_values("min").iloc[-1]
    budget = (
        10 * rich["min"] - rows.loc[rows["owner_id"] == rich["person_id"], "woz"].fillna(0).sum()
    )
    cheap = sorted(
        (i for i in pool if pd.notna(rows.loc[i, "woz"])), key=lambda i: rows.loc[i, "woz"]
    )
    taken = 0
    for i in cheap:
        if taken == 4 or rows.loc[i, "woz"] > budget:
            break
        rows.loc[i, ["owner_id", "owner_kind"]] = [rich["person_id"], "person"]
        budget -= rows.loc[i, "woz"]
        taken += 1
    if taken >= 2:
        for i in rows.index[rows["owner_id"] == rich["person_id"]]:
            planted.append((rows.loc[i, "address_id"], rows.loc[i, "buurt_code"], "decoy"))
    rows = pd.concat([rows, extra], ignore_index=True)
    m = len(rows)
    yield (
        "ownership",
        _table(
            "ownership",
            {
                "ownership_id": ids.new("ownership", m),
                "address_id": pa.array(rows["address_id"].tolist(), pa.string()),
                "owner_id": pa.array(
                    [
                        None if k == "unknown" else o
                        for o, k in zip(rows["owner_id"], rows["owner_kind"], strict=True)
                    ],
                    pa.string(),
                ),  # fmt: skip
                "owner_kind": pa.array(rows["owner_kind"].tolist(), pa.string()),
                "share": pa.array(rows["share"].astype(float).tolist(), pa.float64()),
                "from_date": _date_array(rows["from_day"].to_numpy()),
                "to_date": pa.array([None] * m, pa.date32()),
            },
        ),
    )
    truth["ownership_planted"] = pd.DataFrame(
        planted, columns=["address_id", "buurt_code", "role"]
    ).drop_duplicates()
    hc_rows = rows[rows["owner_kind"] == "housing_corporation"]
    truth["housing_corporation_dwellings"] = pd.DataFrame(
        {
            "address_id": hc_rows["address_id"],
            "buurt_code": hc_rows["buurt_code"],
            "is_vulnerable_buurt": hc_rows["buurt_code"].isin(vulnerable),
        }
    ).reset_index(drop=True)
    unk = rows[rows["owner_kind"] == "unknown"]
    truth["unknown_owner_dwellings"] = unk[["address_id", "buurt_code"]].reset_index(drop=True)
