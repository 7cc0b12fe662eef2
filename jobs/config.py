"""Load the configuration: committed defaults, local overrides, then a ``--conf`` overlay.

Reads ``zicht.conf`` (the committed ``conf/base`` folder, shipped inside the wheel),
``conf/local/zicht.yaml`` when run from a checkout that has one (ignored by git), and the file
given with ``--conf``. Mappings merge key by key; lists and scalars are replaced, so an overlay
narrows a phenomenon by giving its ``classes`` anew. The maintained list of identifier and
sensitive column names (``conf/base/forbidden_columns.yaml``) is read apart from the settings,
so no overlay can shorten it (``validation.forbidden_columns`` adds words). Writes nothing.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zicht.features.names import NameList, name_list_from_mapping
from zicht.features.settings import ConfigError, Settings, settings_from_mapping

BASE_FILES = ("zicht.yaml", "phenomena.yaml")
FORBIDDEN_COLUMNS_FILE = "forbidden_columns.yaml"
LOCAL_OVERRIDE = Path(__file__).resolve().parents[1] / "conf" / "local" / "zicht.yaml"


def _read_base(name: str) -> str:
    return resources.files("zicht.conf").joinpath(name).read_text(encoding="utf-8")


def _yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    return data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_mapping(conf_file: str | Path | None = None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in BASE_FILES:
        merged = deep_merge(merged, _yaml(_read_base(name), f"conf/base/{name}"))
    merged["indicators"] = _yaml(_read_base("indicators.yaml"), "conf/base/indicators.yaml")
    if LOCAL_OVERRIDE.is_file():
        merged = deep_merge(
            merged, _yaml(LOCAL_OVERRIDE.read_text(encoding="utf-8"), str(LOCAL_OVERRIDE))
        )
    if conf_file is not None:
        path = Path(conf_file)
        if not path.is_file():
            raise ConfigError(f"--conf {path}: no such file")
        merged = deep_merge(merged, _yaml(path.read_text(encoding="utf-8"), str(path)))
    return merged


def load_settings(conf_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The resolved, validated configuration. ``overrides`` are merged last (CLI flags)."""
    return settings_from_mapping(deep_merge(load_mapping(conf_file), overrides))


def load_crime_codes() -> list[tuple[str, str]]:
    """(incident_code or '', crime_class) pairs from the CBS 47018NED table in conf/base."""
    text = _read_base("crime_codes.csv")
    return [(r["incident_code"], r["crime_class"]) for r in csv.DictReader(io.StringIO(text))]


@functools.cache
def load_forbidden_columns() -> NameList:
    """The maintained identifier and sensitive column names (``conf/base``, read once)."""
    where = f"conf/base/{FORBIDDEN_COLUMNS_FILE}"
    return name_list_from_mapping(_yaml(_read_base(FORBIDDEN_COLUMNS_FILE), where))
