"""Every indicator of the catalogue has a Dutch definition for the partners' workbook and report
(issue 17): the catalogue file as committed, read without Spark."""

from __future__ import annotations

from zicht.jobs.config import load_settings


def test_every_indicator_has_a_dutch_definition() -> None:
    specs = load_settings().indicators
    missing = [s.key for s in specs if not (s.definition_nl or "").strip()]
    assert not missing, missing
    # Dutch, not the English text copied: no definition equals its English one
    same = [s.key for s in specs if s.definition_nl.strip() == s.definition.strip()]
    assert not same, same
