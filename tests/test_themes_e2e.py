"""Issue 19 end to end: the session's tiny run (``tiny_run``) against its planted truth.

The default configuration, so ``vastgoedfraude.unexplained_ownership_dwellings`` must be skipped
with the gate's reason (its rule is checked on the same synthetic tables in
tests/test_themes_synth.py and on inline frames in tests/test_themes.py); the other new
indicators must reproduce the truth the generator wrote, and reach the codebook and the export.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from zicht.features.themes import GATE_REASON

pytestmark = pytest.mark.e2e


def test_the_themes_recover_the_planted_truth(tiny_run: dict[str, Path]) -> None:
    out, truth = tiny_run["output"], tiny_run["input"] / "_truth"
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = manifest["skipped_indicators"]
    assert skipped["vastgoedfraude.unexplained_ownership_dwellings"] == GATE_REASON
    assert not [k for k in skipped if k.startswith(("sector.", "witwassen.fiu"))]
    for table in ("unusual_transactions", "ownership"):
        a = manifest["inputs"][table]
        assert a["rows_read"] == a["rows_used"] > 0

    ind = pd.read_parquet(out / "restricted" / "indicators.parquet")
    year = int(ind["year"].max())
    buurt = ind[(ind["level"] == "buurt") & (ind["year"] == year)]

    def values(key: str) -> pd.Series:
        return buurt[buurt["indicator"] == key].set_index("area_code")["value"]

    unknown = pd.read_parquet(truth / "unknown_owner_dwellings.parquet")
    got = values("vastgoedfraude.unknown_owner_dwellings")
    assert got[got > 0].astype(int).to_dict() == unknown.groupby("buurt_code").size().to_dict()

    park = pd.read_parquet(truth / "holiday_parks.parquet").iloc[0]
    for key, want in (
        ("sector.vakantieparken.residents_logies", park.n_residents),
        ("sector.vakantieparken.companies", park.n_companies),
        ("sector.vakantieparken.new_companies", park.n_new_companies),
        ("sector.vakantieparken.ended_companies", park.n_ended_companies),
        ("sector.vakantieparken.companies_with_suspect", park.n_companies_with_suspect),
    ):
        v = values(key)
        assert v[park.buurt_code] == want > 0 or v[park.buurt_code] == want == 0, key
        assert v.sum() == want, key  # nowhere else

    # every planted subject has a report in some year of the period: summed over the years
    fiu = pd.read_parquet(truth / "fiu_buurten.parquet").set_index("buurt_code")
    per_year = ind[(ind["level"] == "buurt") & (ind["indicator"] == "witwassen.fiu_subjects")]
    subjects = per_year.groupby("area_code")["value"].sum()
    assert (subjects.reindex(fiu.index) >= fiu["n_planted_subjects"]).all()
    top = set(subjects.sort_values(ascending=False).index[: len(fiu)])
    assert top == set(fiu.index), "the planted buurten have the most FIU subjects"

    codebook = pd.read_csv(out / "export" / "codebook.csv")
    new = {
        "witwassen.fiu_amount_eur",
        "sector.zorg.companies",
        "vastgoedfraude.unknown_owner_dwellings",
    }
    assert new <= set(codebook["indicator"])
    published = pd.read_csv(out / "export" / "indicators_buurt.csv")
    assert new <= set(published["indicator"])
