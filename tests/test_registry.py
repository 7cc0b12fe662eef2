"""The catalogue checked against the registry when the settings load: no SparkSession here.

Each misconfiguration of ``indicators.yaml`` or a ``--conf`` overlay is one test: the error
names the file, the key and the closest valid name, and ``zicht run`` exits with 2 before it
builds a session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zicht.features import registry
from zicht.features.settings import ConfigError
from zicht.jobs.config import load_settings


def overlay(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(overlay(tmp_path, text))
    return str(info.value)


def test_every_catalogue_count_is_registered_and_every_pass_and_method_implemented() -> None:
    from zicht.features.indicators import METHOD_FUNCTIONS, PASS_FUNCTIONS

    settings = load_settings()
    counts = [s for s in settings.indicators if s.unit == "count"]
    assert counts
    for spec in counts:
        count = registry.find_count(spec.key, settings.phenomena)
        assert count is not None, spec.key
        assert count.additive == spec.additive, spec.key
    assert set(registry.PASSES) <= set(PASS_FUNCTIONS)
    assert set(METHOD_FUNCTIONS) == set(registry.METHODS)
    # a registered count the default catalogue leaves out is allowed (--conf narrows it)
    assert registry.find_count("drugs.incidents", ["drugs"]) is not None
    assert registry.find_count("drugs.incidents", []) is None


def test_unknown_method(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  standard:\n    incidents_per_1000_smoothed:\n      method: eb_smoothd\n",
    )
    assert msg.startswith(f"{tmp_path / 'overlay.yaml'}: indicators.standard.")
    assert "unknown method 'eb_smoothd'; did you mean 'eb_smoothed'?" in msg


def test_unregistered_count(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  standard:\n    incident:\n      unit: count\n      definition: x\n"
        "      sources: [incidents]\n",
    )
    assert "indicators.standard.incident" in msg
    assert "no registered count makes 'drugs.incident'; did you mean '{P}.incidents'?" in msg


def test_misspelt_source(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  context:\n    context.addresses:\n      sources: [adresses]\n",
    )
    assert "indicators.context.context.addresses" in msg
    assert "source 'adresses' is not a contract table or a known alternative" in msg
    assert "did you mean 'addresses'?" in msg


def test_source_alternative_misspelt(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  context:\n    context.inhabitants:\n"
        "      sources: [persons|areas.inhabitant]\n",
    )
    assert "did you mean 'areas.inhabitants'?" in msg


def test_missing_numerator_and_denominator(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  register:\n    witwassen.company_churn_share:\n"
        "      denominator: context.companies_churn_windw\n",
    )
    assert "denominator 'context.companies_churn_windw' is not in the catalogue" in msg
    assert "did you mean 'context.companies_churn_window'?" in msg
    msg = error(
        tmp_path,
        "indicators:\n  standard:\n    local_suspect_share:\n"
        '      numerator: "{P}.local_suspect"\n',
    )
    assert "numerator 'drugs.local_suspect' is not in the catalogue" in msg
    assert "did you mean 'drugs.local_suspects'?" in msg


def test_missing_within(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  context:\n    context.young_residents:\n"
        "      within: context.inhabitants_12plu\n",
    )
    assert "within 'context.inhabitants_12plu' is not in the catalogue" in msg
    assert "did you mean 'context.inhabitants_12plus'?" in msg


def test_missing_composite_part(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  standard:\n    composite_index:\n"
        '      components: ["{P}.incidents_per_1000_smoothd", "{P}.signals_per_1000_addresses"]\n'
        "      weights: [0.5, 0.5]\n",
    )
    assert "component 'drugs.incidents_per_1000_smoothd' is not in the catalogue" in msg
    assert "did you mean 'drugs.incidents_per_1000_smoothed'?" in msg


def test_unknown_key_in_an_indicator(tmp_path: Path) -> None:
    msg = error(
        tmp_path, "indicators:\n  standard:\n    incidents_per_1000:\n      denominatr: x\n"
    )
    assert msg.startswith(f"{tmp_path / 'overlay.yaml'}: indicators.standard.incidents_per_1000")
    assert "unknown key(s) denominatr; did you mean 'denominator'?" in msg


def test_unknown_catalogue_section(tmp_path: Path) -> None:
    msg = error(tmp_path, "indicators:\n  standrd: {}\n")
    assert "unknown key(s) standrd; did you mean 'standard'?" in msg


def test_additive_must_agree_with_the_registry(tmp_path: Path) -> None:
    msg = error(tmp_path, "indicators:\n  standard:\n    suspects:\n      additive: true\n")
    assert "additive: true disagrees with the registry (a distinct count)" in msg


def test_sources_must_name_what_the_count_reads(tmp_path: Path) -> None:
    msg = error(
        tmp_path, "indicators:\n  standard:\n    resident_suspects:\n      sources: [incidents]\n"
    )
    assert "sources must name suspects, persons" in msg


def test_ratio_without_numerator_needs_a_method(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        "indicators:\n  context:\n    context.odd_index:\n      unit: index\n"
        "      definition: x\n      sources: [areas]\n",
    )
    assert "a index without a method needs unit rate or share" in msg


def test_the_committed_file_is_named_when_the_error_is_there() -> None:
    """A setting overridden on the command line is named as such; the base files by name."""
    with pytest.raises(ConfigError, match=r"^command line: population.source: 'registr' is not"):
        load_settings(population={"source": "registr"})
    with pytest.raises(ConfigError, match="did you mean 'register'"):
        load_settings(population={"source": "registr"})
    with pytest.raises(ConfigError, match="population.min_coverage must be within 0..1"):
        load_settings(population={"min_coverage": 1.5})


def test_zicht_run_exits_2_before_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zicht.jobs import run as run_job

    path = overlay(
        tmp_path, "indicators:\n  standard:\n    incidents_per_1000:\n      method: ratio\n"
    )
    code = run_job.main(
        ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--conf", str(path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}: indicators.standard.incidents_per_1000" in err
    assert "unknown method 'ratio'" in err
    assert not (tmp_path / "out").exists()


def test_composite_min_areas_is_configurable(tmp_path: Path) -> None:
    settings = load_settings(
        overlay(tmp_path, "indicators:\n  standard:\n    composite_index:\n      min_areas: 3\n")
    )
    assert settings.indicator("drugs.composite_index").min_areas == 3
    assert load_settings().indicator("drugs.composite_index").min_areas == 5
    msg = error(tmp_path, "indicators:\n  standard:\n    composite_index:\n      min_areas: 0\n")
    assert "min_areas must be at least 1" in msg
