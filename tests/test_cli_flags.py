"""CLI conventions without Spark: ``zicht network -h`` lists its subcommands, and
``pseudonymize``, ``network disrupt`` and ``experiment`` take ``-v/--verbose`` and
``-q/--quiet`` and set the ``zicht`` logger's level from them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from zicht.jobs import cli
from zicht.jobs import experiment as experiment_job
from zicht.jobs import network as network_job
from zicht.jobs import pseudonymize as pseudonymize_job


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    zicht, root = logging.getLogger("zicht"), logging.getLogger()
    level, handlers = zicht.level, list(root.handlers)
    yield
    zicht.setLevel(level)
    root.handlers[:] = handlers


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        network_job.main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_network_help_lists_build_and_disrupt(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["-h"], capsys)
    assert "{build,disrupt}" in out
    lines = [line.split() for line in out.splitlines()]
    build = next(words for words in lines if words[:1] == ["build"])
    disrupt = next(words for words in lines if words[:1] == ["disrupt"])
    assert "network stage" in " ".join(build)  # a help line each
    assert "largest connected" in out and len(disrupt) > 1


def test_network_build_help_is_the_stage_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["build", "-h"], capsys)
    assert "zicht network build" in out and "--from" in out
    assert "--verbose" in out and "--quiet" in out


def test_network_disrupt_help_has_verbosity(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["disrupt", "-h"], capsys)
    assert "-v, --verbose" in out and "-q, --quiet" in out


def _edges(tmp_path: Path) -> Path:
    path = tmp_path / "edges.csv"
    path.write_text("source,target\na,b\nb,c\nc,d\nd,a\na,c\n")
    return path


@pytest.mark.parametrize(("flag", "level"), [("-q", logging.WARNING), ("-v", logging.DEBUG)])
def test_network_disrupt_runs_with_verbosity_flags(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, flag: str, level: int
) -> None:
    out = tmp_path / "curve.csv"
    argv = ["disrupt", "--edges", str(_edges(tmp_path)), "--metric", "degree"]
    argv += ["--mode", "sequential", "--out", str(out), flag]
    assert network_job.main(argv) == 0
    assert out.read_text().splitlines()[0] == "removed,lcc_share"
    assert logging.getLogger("zicht").level == level
    written = [r for r in caplog.records if "written to" in r.getMessage()]
    assert (written != []) == (level <= logging.INFO)  # -q keeps the INFO line out


def test_network_disrupt_through_the_cli_with_quiet(tmp_path: Path) -> None:
    out = tmp_path / "curve.csv"
    argv = ["network", "disrupt", "-q", "--edges", str(_edges(tmp_path))]
    argv += ["--metric", "betweenness", "--mode", "block", "--out", str(out)]
    assert cli.main(argv) == 0 and out.is_file()


PSEUDONYMIZE = ["--table", "persons", "--in", "x.csv", "--out", "out", "--map", "m.yaml"]


@pytest.mark.parametrize(
    ("flags", "verbosity"),
    [([], 0), (["-q"], -1), (["--quiet"], -1), (["-v"], 1), (["--verbose"], 1)],
)
def test_pseudonymize_and_experiment_parse_verbosity(flags: list[str], verbosity: int) -> None:
    assert pseudonymize_job.parse_args([*PSEUDONYMIZE, *flags]).verbosity == verbosity
    assert experiment_job.parse_args(["--features", "f.parquet", *flags]).verbosity == verbosity


def test_verbose_and_quiet_together_are_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        pseudonymize_job.parse_args([*PSEUDONYMIZE, "-q", "-v"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        experiment_job.parse_args(["--features", "f.parquet", "-v", "-q"])
    assert exc.value.code == 2


def test_pseudonymize_main_sets_the_level_before_refusing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ZICHT_PSEUDONYM_KEY", raising=False)
    assert pseudonymize_job.main([*PSEUDONYMIZE, "-q"]) == 2  # no key: refused before Spark
    assert logging.getLogger("zicht").level == logging.WARNING
    assert "key is not set" in capsys.readouterr().err


def test_experiment_main_sets_the_level_before_refusing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "area_features.parquet"
    assert experiment_job.main(["--features", str(missing), "-v"]) == 2
    assert logging.getLogger("zicht").level == logging.DEBUG
    assert "no such file" in capsys.readouterr().err
