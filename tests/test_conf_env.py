"""``ZICHT_CONF``: a team's overlay file or folder, applied after ``conf/base`` and before
``--conf``, and the record of which files applied (``zicht.jobs.config.applied_files``, the
manifest's ``config_files``). No Spark: the loader is tested on its own; the last test reads the
manifest of the session's tiny pipeline run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from zicht.features.settings import ConfigError
from zicht.jobs.config import applied_files, load_settings

REPO = Path(__file__).resolve().parents[1]
BASE = ["conf/base/zicht.yaml", "conf/base/phenomena.yaml", "conf/base/indicators.yaml"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_env_file_applies_after_base_and_before_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = load_settings()
    team = _write(
        tmp_path / "team.yaml",
        "disclosure: {min_count: 7}\nmlflow: {experiment: team-zicht}\n",
    )
    conf = _write(tmp_path / "mine.yaml", "disclosure: {min_count: 12}\n")
    monkeypatch.setenv("ZICHT_CONF", str(team))

    env_only = load_settings()
    assert env_only.disclosure.min_count == 7
    assert env_only.mlflow.experiment == "team-zicht"
    both = load_settings(conf)
    assert both.disclosure.min_count == 12  # --conf wins over ZICHT_CONF
    assert both.mlflow.experiment == "team-zicht"  # what --conf leaves alone stays the team's
    assert base.disclosure.min_count not in (7, 12)  # so the overlays made the difference

    files = applied_files(both)
    assert [f["layer"] for f in files] == ["base", "base", "base", "ZICHT_CONF", "--conf"]
    assert [f["path"] for f in files] == [*BASE, str(team.resolve()), str(conf.resolve())]
    expected = [_sha(REPO / p) for p in BASE] + [_sha(team), _sha(conf)]
    assert [f["sha256"] for f in files] == expected


def test_a_folder_applies_its_yaml_files_in_name_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "zicht.d"
    folder.mkdir()
    _write(folder / "20-later.yml", "disclosure: {min_count: 9}\n")
    _write(folder / "10-first.yaml", "disclosure: {min_count: 7}\nmlflow: {experiment: first}\n")
    _write(folder / "README.txt", "not yaml: ignored")
    monkeypatch.setenv("ZICHT_CONF", str(folder))
    settings = load_settings()
    assert settings.disclosure.min_count == 9
    assert settings.mlflow.experiment == "first"
    env_files = [
        Path(f["path"]).name for f in applied_files(settings) if f["layer"] == "ZICHT_CONF"
    ]
    assert env_files == ["10-first.yaml", "20-later.yml"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.yaml", "no such file or folder"),
        (lambda tmp: tmp, "holds no .yaml or .yml file"),
        (lambda tmp: _write(tmp / "bad.yaml", "disclosure: {min_cnt: 7}\n"), "min_cnt"),
        (lambda tmp: _write(tmp / "list.yaml", "- a\n- b\n"), "must be a mapping"),
    ],
    ids=["missing", "empty-folder", "unknown-key", "not-a-mapping"],
)
def test_a_bad_env_overlay_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, message: str
) -> None:
    monkeypatch.setenv("ZICHT_CONF", str(make(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_an_empty_env_var_is_no_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZICHT_CONF", "")
    assert [f["layer"] for f in applied_files(load_settings())] == ["base", "base", "base"]


def test_settings_made_otherwise_have_no_record() -> None:
    from zicht.features.settings import Settings

    assert applied_files(Settings()) == []


@pytest.mark.e2e
def test_the_manifest_records_the_files_that_applied(tiny_run: dict[str, Path]) -> None:
    manifest = json.loads((tiny_run["output"] / "manifest.json").read_text())
    recorded = [(f["layer"], f["path"], f["sha256"]) for f in manifest["config_files"]]
    base = [("base", p, _sha(REPO / p)) for p in BASE]
    assert recorded[:3] == base
    # the session's run has no --conf or ZICHT_CONF (conftest unsets it); a checkout's own
    # conf/local/zicht.yaml would show as "local"
    assert {layer for layer, _, _ in recorded[3:]} <= {"local"}
