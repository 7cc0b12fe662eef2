"""The validation waves: a table is validated only after every table it refers to."""

from __future__ import annotations

from zicht.features.validate import REFERENCES
from zicht.jobs.validate_inputs import ORDER, WAVES


def test_waves_hold_every_table_once_in_contract_order() -> None:
    flat = [name for wave in WAVES for name in wave]
    assert sorted(flat) == sorted(ORDER) and len(flat) == len(set(flat))


def test_a_table_refers_only_to_tables_of_earlier_waves() -> None:
    position = {name: i for i, wave in enumerate(WAVES) for name in wave}
    for name, refs in REFERENCES.items():
        for column, parent in refs:
            assert position[parent] < position[name], (name, column, parent)
    # company subjects of unusual transactions are checked against companies
    assert position["companies"] < position["unusual_transactions"]
    assert position["area_changes"] > position["areas"]
    # the tables whose rules use the period (or reference date) that incidents settle
    for name in ("suspects", "persons", "signals", "unusual_transactions"):
        assert position[name] > position["incidents"], name
