"""The population trap on real data: The Hague's burglars as ``persons`` (CONTRACT.md, *Population*).

Bernasco & Nieuwbeerta's (2005) 548 cleared residential burglaries by 290 burglars in 89
neighbourhoods of The Hague (``../shared/data/real/nl_the_hague_burglary``) are the incidents,
the suspects and the only persons there are: an extract of suspects, not the register. The
areas carry the real inhabitants, the CBS kerncijfers 2024 of the same buurt codes
(``nl_kwb/85984NED_buurt_population_2024.csv``: 88 of the 89 codes still exist). The file
carries no dates: every burglary is put in 2001 and every burglar's home (``NHOODRES``) too.

Taking the denominators from ``persons`` publishes 548 burglaries per 290 "inhabitants"
(1,889.7 per 1,000) for the city; the rule takes them from ``areas.inhabitants`` and skips the
indicators that need the register. Expected numbers come from the CSV files with the csv
module, not from the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from zicht.features.population import decide_population
from zicht.features.settings import PopulationSettings

YEAR = 2001
GM = "GM0518"


def test_decision_without_spark() -> None:
    auto = PopulationSettings()
    d = decide_population(auto, residents=290, suspect_residents=290, inhabitants=490_420)
    assert d.source == "extract" and "every one of the 290 residents" in d.reason
    d = decide_population(auto, residents=290, suspect_residents=12, inhabitants=490_420)
    assert d.source == "extract" and "below population.min_coverage 0.5" in d.reason
    assert d.coverage == pytest.approx(290 / 490_420, abs=1e-6)
    d = decide_population(auto, residents=400_000, suspect_residents=900, inhabitants=490_420)
    assert d.source == "register"
    d = decide_population(auto, residents=400, suspect_residents=9, inhabitants=None)
    assert d.source == "register" and "areas.inhabitants is absent" in d.reason
    forced = PopulationSettings(source="extract")
    d = decide_population(forced, residents=400_000, suspect_residents=900, inhabitants=490_420)
    assert d.source == "extract" and d.reason == "configured"
    # the numerators' own population is never a denominator, whatever was configured
    register = PopulationSettings(source="register")
    d = decide_population(register, residents=290, suspect_residents=290, inhabitants=None)
    assert d.source == "extract"


def _hague(real_data: Path) -> dict[str, list[dict[str, str]]]:
    folder = real_data / "nl_the_hague_burglary"
    with (folder / "TheHagueBurglars.csv").open(newline="") as f:
        burglaries = list(csv.DictReader(f))
    with (folder / "TheHagueNeighborhoods.csv").open(newline="") as f:
        hoods = list(csv.DictReader(f))
    with (real_data / "nl_kwb" / "85984NED_buurt_population_2024.csv").open(newline="") as f:
        kwb = {r["nhood_id"]: r["population"] for r in csv.DictReader(f)}
    for h in hoods:
        h["buurt_code"] = "BU0" + h["NHOODID"]
        h["inhabitants"] = kwb.get(h["buurt_code"], "")
    return {"burglaries": burglaries, "hoods": hoods}


@pytest.mark.spark
def test_suspects_only_persons_take_the_denominators_from_areas(spark, real_data) -> None:
    from zicht.features.indicators import EXTRACT_REASON, Sources, build_indicators
    from zicht.features.population import population_figures, suspect_residents
    from zicht.jobs.config import load_settings

    data = _hague(real_data)
    hoods, burglaries = data["hoods"], data["burglaries"]
    inhabitants = sum(int(h["inhabitants"]) for h in hoods if h["inhabitants"])
    assert inhabitants == 490_420  # 88 buurten of 2024 with these codes
    code = {h["NHOODID"]: h["buurt_code"] for h in hoods}
    wijk = {c: "WK" + c[2:8] for c in code.values()}
    areas = spark.createDataFrame(
        [
            (c, f"buurt {h['NHOODID']}", wijk[c], f"wijk {wijk[c]}", GM, "'s-Gravenhage",
             float(h["X"]), float(h["Y"]), float(h["SURFACE"]),
             int(h["inhabitants"]) if h["inhabitants"] else None)
            for h in hoods
            for c in [h["buurt_code"]]
        ],
        "buurt_code string, buurt_name string, wijk_code string, wijk_name string, "
        "gemeente_code string, gemeente_name string, x double, y double, land_area_ha double, "
        "inhabitants long",
    )  # fmt: skip
    located = [code[b["NHOODBUR"]] for b in burglaries]
    incidents = spark.createDataFrame(
        [
            (b["CASE"], dt.date(YEAR, 6, 1), YEAR, "1.1.1", "1.1.1", c, wijk[c], GM,
             float(b["XRESID"]), float(b["YRESID"]), ["woninginbraak"])
            for b, c in zip(burglaries, located, strict=True)
        ],
        "incident_id string, incident_date date, year int, crime_code string, "
        "crime_class string, buurt_code string, wijk_code string, gemeente_code string, "
        "x double, y double, phenomena array<string>",
    )  # fmt: skip
    suspects = spark.createDataFrame(
        [(b["CASE"], b["PERSONID"]) for b in burglaries], "incident_id string, person_id string"
    )
    homes = {b["PERSONID"]: (code[b["NHOODRES"]], b["B_MINOR"]) for b in burglaries}
    residence = spark.createDataFrame(
        [
            (p, YEAR, c, wijk[c], GM, 1986 if minor == "1" else 1970, f"a{p}", f"h{p}",
             dt.date(1995, 1, 1))
            for p, (c, minor) in homes.items()
        ],
        "person_id string, year long, buurt_code string, wijk_code string, "
        "gemeente_code string, birth_year long, address_id string, household_id string, "
        "registered_since date",
    )  # fmt: skip

    figures = population_figures(residence, suspects=suspects, areas=areas).first().asDict()
    assert figures == {"residents": 290, "suspect_persons": 290, "inhabitants": 490_420}
    among = suspect_residents(residence, suspects=suspects).first()[0]
    assert among == 290
    decision = decide_population(
        PopulationSettings(), residents=290, suspect_residents=among, inhabitants=490_420
    )
    assert decision.source == "extract"

    settings = load_settings(phenomena={"woninginbraak": {"classes": ["1.1.1"]}})

    def build(population: str):
        src = Sources(
            areas=areas, incidents=incidents, suspects=suspects, residence=residence,
            areas_have_inhabitants=True, population=population,
        )  # fmt: skip
        result = build_indicators(
            src, years=[YEAR], phenomena=settings.phenomena, specs=settings.indicators,
            checkpoint=lambda df, _name: df.localCheckpoint(),
        )  # fmt: skip
        cells = result.cells.where(f"area_code = '{GM}'").toPandas().set_index("indicator")
        return result, cells

    # the trap: the 290 burglars as the city's population
    _, trap = build("register")
    assert trap.loc["context.inhabitants", "value"] == 290
    assert trap.loc["woninginbraak.incidents_per_1000", "value"] == pytest.approx(548 / 290 * 1000)
    assert round(trap.loc["woninginbraak.incidents_per_1000", "value"], 1) == 1889.7

    result, cells = build(decision.source)
    assert cells.loc["context.inhabitants", "value"] == 490_420
    assert cells.loc["woninginbraak.incidents", "value"] == 548
    assert cells.loc["woninginbraak.incidents_per_1000", "value"] == pytest.approx(
        548 / 490_420 * 1000
    )  # 1.1 per 1000
    # the suspects' own residence is still what the extract holds
    assert cells.loc["woninginbraak.resident_suspects", "value"] == 290
    assert cells.loc["woninginbraak.local_suspects", "value"] == 290
    skipped = result.skipped
    for key in ("context.households", "context.recent_movers", "context.young_residents",
                "context.young_suspects", "context.young_in_suspect_household"):  # fmt: skip
        assert skipped[key] == EXTRACT_REASON, key
    assert skipped["context.residential_mobility"].startswith("needs context.recent_movers")
    assert skipped["context.inhabitants_12plus"] == (
        "persons is an extract and column areas.inhabitants_12plus is absent"
    )
    assert skipped["woninginbraak.resident_suspects_per_1000"].startswith(
        "needs context.inhabitants_12plus"
    )
    assert "context.inhabitants" not in skipped
    assert not set(cells.index) & set(skipped)
    # the buurt without a 2024 figure has no inhabitants: its rate is not applicable
    missing = [h["buurt_code"] for h in hoods if not h["inhabitants"]]
    buurt = result.cells.where(
        f"area_code = '{missing[0]}' AND indicator = 'woninginbraak.incidents_per_1000'"
    ).first()
    assert buurt["status"] == "not_applicable"
