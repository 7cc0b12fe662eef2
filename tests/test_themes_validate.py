"""Contract rules of issue 19's tables: one bad row per rule, the accounting, and the Wwft refusal.

The contract folder of ``tests/test_validate.py`` (CSV text as a partner delivers it) plus the
two optional version 2 tables written here by hand; the expected rejects and counts come from
CONTRACT.md, not from the code under test.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from test_validate import RUN_DATE, TABLES, lenient, validate_inputs, write_folder

from zicht.jobs.config import load_settings
from zicht.jobs.io import ForbiddenColumn
from zicht.jobs.runtime import exit_code
from zicht.jobs.validate_inputs import Validated

pytestmark = pytest.mark.spark

# the period is 2023..2024 (the valid incidents of test_validate); p_elsewhere is in no
# persons table, which is fine for a person subject (as for a suspect)
UNUSUAL = """\
transaction_id,report_date,amount_eur,subject_id,subject_kind,status,address_id
u1,2024-02-01,1500,p1,person,verdacht,
u1,2024-02-01,1500,c1,company,verdacht,a3
u_elsewhere,2023-02-01,10,p_elsewhere,person,verdacht,
u_neg,2024-02-01,-5,p1,person,verdacht,
u_kind,2024-02-01,5,p1,trust,verdacht,
u_addr,2024-02-01,5,p1,person,verdacht,a_none
u_comp,2024-02-01,5,c_none,company,verdacht,
u_rejcomp,2024-02-01,5,c_sbi,company,verdacht,
u_dup,2024-02-01,5,p1,person,verdacht,
u_dup,2024-03-01,6,p1,person,verdacht,
u_future,2099-02-01,5,p1,person,verdacht,
u_old,1985-02-01,5,p1,person,verdacht,
u_outside,2021-02-01,5,p1,person,verdacht,
"""

OWNERSHIP = """\
ownership_id,address_id,owner_id,owner_kind,share,from_date,to_date
o1,a1,p1,person,0.5,2015-01-01,
o_unknown,a2,,unknown,1,2015-01-01,2024-06-30
o_kind,a1,p2,bank,0.5,2015-01-01,
o_zero,a1,p2,person,0,2015-01-01,
o_over,a1,p2,person,1.5,2015-01-01,
o_parse,a1,p2,person,half,2015-01-01,
o_dates,a1,p2,person,0.5,2015-01-01,2014-01-01
o_addr,a_none,p2,person,0.5,2015-01-01,
o_future,a1,p2,person,0.5,2099-01-01,
o_dup,a1,p2,person,0.5,2015-01-01,
o_dup,a2,p2,person,0.5,2015-01-01,
"""

CASES = [
    ("unusual_transactions", "u_neg", "amount_eur.negative"),
    ("unusual_transactions", "u_kind", "subject_kind.vocabulary"),
    ("unusual_transactions", "u_addr", "address_id.not_in_addresses"),
    ("unusual_transactions", "u_comp", "subject_id.not_in_companies"),
    ("unusual_transactions", "u_rejcomp", "subject_id.refers_to_rejected_companies"),
    ("unusual_transactions", "u_dup", "transaction_id+subject_id.unique"),
    ("unusual_transactions", "u_future", "report_date.after_run_date"),
    ("unusual_transactions", "u_old", "report_date.before_1990"),
    ("ownership", "o_kind", "owner_kind.vocabulary"),
    ("ownership", "o_zero", "share.range"),
    ("ownership", "o_over", "share.range"),
    ("ownership", "o_parse", "share.parse"),
    ("ownership", "o_dates", "to_date.before_from"),
    ("ownership", "o_addr", "address_id.not_in_addresses"),
    ("ownership", "o_future", "from_date.after_run_date"),
    ("ownership", "o_dup", "ownership_id.unique"),
]
# rows read, used, rejected, excluded: worked out from the rows above
ACCOUNTING = {
    "unusual_transactions": (13, 3, 9, 1),  # u_outside reports in 2021: excluded, not rejected
    "ownership": (11, 2, 9, 0),
}
THEMES = {"unusual_transactions": UNUSUAL, "ownership": OWNERSHIP}


@pytest.fixture(scope="module")
def validated(spark, tmp_path_factory: pytest.TempPathFactory) -> Validated:
    folder = write_folder(tmp_path_factory.mktemp("themes") / "input", {**TABLES, **THEMES})
    return validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)


@pytest.fixture(scope="module")
def rejected(validated: Validated) -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for table in THEMES:
        rows: dict[str, set[str]] = {}
        for r in validated.rejects[table].collect():
            rows.setdefault(str(r[0]), set()).update(r["reject_rule"].split(";"))
        out[table] = rows
    return out


@pytest.mark.parametrize(("table", "key", "rule"), CASES, ids=[f"{c[2]}@{c[1]}" for c in CASES])
def test_bad_row_is_rejected_with_its_rule(rejected, table: str, key: str, rule: str) -> None:
    assert rule in rejected[table].get(key, set()), f"{table} row {key}: {rejected[table]}"


def test_good_rows_are_not_rejected(rejected) -> None:
    assert not {"u1", "u_elsewhere", "u_outside"} & set(rejected["unusual_transactions"])
    assert not {"o1", "o_unknown"} & set(rejected["ownership"])


@pytest.mark.parametrize("table", sorted(THEMES))
def test_accounting(validated: Validated, table: str) -> None:
    a = validated.accounting[table]
    n_lines = len(dedent(THEMES[table]).strip().splitlines()) - 1
    read, used, rejected_, excluded = ACCOUNTING[table]
    assert n_lines == read
    assert (a["rows_read"], a["rows_used"], a["rows_rejected"], a["rows_excluded"]) == (
        read,
        used,
        rejected_,
        excluded,
    )
    assert validated.accepted[table].count() == used


@pytest.mark.parametrize("status", ["ongebruikelijk", ""])
def test_a_status_other_than_verdacht_is_a_privacy_refusal(
    spark, tmp_path: Path, status: str
) -> None:
    unusual = UNUSUAL.replace("u_elsewhere,2023-02-01,10,p_elsewhere,person,verdacht,",
                              f"u_secret,2023-02-01,10,p_secret,person,{status},")  # fmt: skip
    folder = write_folder(tmp_path / "in", {**TABLES, "unusual_transactions": unusual})
    with pytest.raises(ForbiddenColumn) as err:
        validate_inputs(spark, str(folder), lenient(load_settings()), run_date=RUN_DATE)
    assert exit_code(err.value) == 4
    message = str(err.value)
    assert "unusual_transactions" in message and "verdacht" in message
    # naming no value of the row: neither its status nor its pseudonyms
    for value in ("u_secret", "p_secret", *([status] if status else [])):
        assert value not in message
    assert not any((tmp_path / "in").parent.glob("stage-*/validated/*")), "nothing written"
