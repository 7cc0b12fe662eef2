"""Load the configuration: committed defaults, then overlays, then CLI flags.

Layers, each merged over the one before (mappings key by key; lists and scalars are replaced,
so an overlay narrows a phenomenon by giving its ``classes`` anew):

1. ``zicht.conf``, the committed ``conf/base`` folder, shipped inside the wheel;
2. ``conf/local/zicht.yaml`` of a checkout (ignored by git; it sits next to the source, so a
   wheel install has none);
3. ``ZICHT_CONF``: an environment variable naming a YAML file, or a folder whose ``*.yaml`` and
   ``*.yml`` files apply in name order; a team's own defaults, for wheel installs too;
4. the file given with ``--conf``.

:func:`applied_files` says which files built a loaded :class:`Settings` (layer, path, sha256),
for the manifest. The maintained list of identifier and sensitive column names
(``conf/base/forbidden_columns.yaml``) is read apart from the settings, so no overlay can shorten
it (``validation.forbidden_columns`` adds words). Reads local files only; writes nothing.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zicht.features.names import NameList, name_list_from_mapping
from zicht.features.settings import ConfigError, Settings, settings_from_mapping

BASE_FILES = ("zicht.yaml", "phenomena.yaml")
CATALOGUE_FILE = "indicators.yaml"
FORBIDDEN_COLUMNS_FILE = "forbidden_columns.yaml"
LOCAL_OVERRIDE = Path(__file__).resolve().parents[1] / "conf" / "local" / "zicht.yaml"
ENV_VAR = "ZICHT_CONF"
OVERLAY_SUFFIXES = (".yaml", ".yml")

# The files behind each Settings object load_settings returned, by id(); an entry goes when its
# object does (Settings holds mappings, so it cannot key a WeakKeyDictionary).
_APPLIED: dict[int, tuple[dict[str, str], ...]] = {}


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


def env_overlays() -> list[Path]:
    """The overlay files ``ZICHT_CONF`` names: the file, or the folder's YAML files by name."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return []
    path = Path(value).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in OVERLAY_SUFFIXES and p.is_file())
        if not files:
            raise ConfigError(f"{ENV_VAR}={value}: the folder holds no .yaml or .yml file")
        return files
    raise ConfigError(f"{ENV_VAR}={value}: no such file or folder")


@dataclass(frozen=True)
class _Layer:
    layer: str  # base, local, ZICHT_CONF or --conf
    where: str
    text: str
    under: str | None = None  # the key the file's mapping goes under (the indicator catalogue)


def _layers(conf_file: str | Path | None) -> list[_Layer]:
    """Every file that applies, in the order they merge."""
    layers = [_Layer("base", f"conf/base/{name}", _read_base(name)) for name in BASE_FILES]
    layers.append(
        _Layer("base", f"conf/base/{CATALOGUE_FILE}", _read_base(CATALOGUE_FILE), "indicators")
    )
    if LOCAL_OVERRIDE.is_file():
        layers.append(
            _Layer("local", str(LOCAL_OVERRIDE), LOCAL_OVERRIDE.read_text(encoding="utf-8"))
        )
    for path in env_overlays():
        layers.append(_Layer(ENV_VAR, str(path.resolve()), path.read_text(encoding="utf-8")))
    if conf_file is not None:
        path = Path(conf_file)
        if not path.is_file():
            raise ConfigError(f"--conf {path}: no such file")
        layers.append(_Layer("--conf", str(path.resolve()), path.read_text(encoding="utf-8")))
    return layers


def _merge(layers: list[_Layer]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for f in layers:
        data = _yaml(f.text, f.where)
        if f.under is None:
            merged = deep_merge(merged, data)
        else:
            merged[f.under] = data
    return merged


def load_mapping(conf_file: str | Path | None = None) -> dict[str, Any]:
    return _merge(_layers(conf_file))


def _located(exc: ConfigError, layers: list[_Layer], overrides: Mapping[str, Any]) -> ConfigError:
    """The error with the file that holds its key in front: the last layer that sets it."""
    if not exc.path:
        return exc

    def holds(data: Any, path: tuple[str, ...]) -> bool:
        for k in path:
            if not isinstance(data, Mapping) or k not in data:
                return False
            data = data[k]
        return True

    if holds(overrides, exc.path):
        return ConfigError(f"command line: {exc}", exc.path)
    for f in reversed(layers):
        data = _yaml(f.text, f.where)
        if holds({f.under: data} if f.under else data, exc.path):
            return ConfigError(f"{f.where}: {exc}", exc.path)
    return exc


def load_settings(conf_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The resolved, validated configuration. ``overrides`` are merged last (CLI flags)."""
    layers = _layers(conf_file)
    try:
        settings = settings_from_mapping(deep_merge(_merge(layers), overrides))
    except ConfigError as exc:
        raise _located(exc, layers, overrides) from None
    key = id(settings)
    _APPLIED[key] = tuple(
        {"layer": f.layer, "path": f.where, "sha256": hashlib.sha256(f.text.encode()).hexdigest()}
        for f in layers
    )
    weakref.finalize(settings, _APPLIED.pop, key, None)
    return settings


def applied_files(settings: Settings) -> list[dict[str, str]]:
    """The files that built ``settings`` (``layer``: base, local, ZICHT_CONF or --conf;
    ``path``; ``sha256`` of the text), in the order they applied; empty for settings that
    :func:`load_settings` did not make."""
    return [dict(f) for f in _APPLIED.get(id(settings), ())]


def load_crime_codes() -> list[tuple[str, str]]:
    """(incident_code or '', crime_class) pairs from the CBS 47018NED table in conf/base."""
    text = _read_base("crime_codes.csv")
    return [(r["incident_code"], r["crime_class"]) for r in csv.DictReader(io.StringIO(text))]


@functools.cache
def load_forbidden_columns() -> NameList:
    """The maintained identifier and sensitive column names (``conf/base``, read once)."""
    where = f"conf/base/{FORBIDDEN_COLUMNS_FILE}"
    return name_list_from_mapping(_yaml(_read_base(FORBIDDEN_COLUMNS_FILE), where))
