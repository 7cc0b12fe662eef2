"""Typed, frozen, validated configuration.

Reads nothing and writes nothing: ``zicht.jobs.config`` loads the YAML files in ``conf/`` (and a
``--conf`` overlay), merges them and hands the plain mapping to :func:`settings_from_mapping`,
which builds these objects. Unknown keys are errors, so a typo in a config file stops the run
instead of silently using a default. Secrets never live here: they come from the environment.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zicht.features import registry
from zicht.features.units import UNIT_NAMES

# Features a model may never use (brief: no ethnicity, nationality, country of birth or religion).
SENSITIVE_FEATURE_WORDS = (
    "etnic",
    "etnisch",
    "ethnic",
    "nationalit",
    "herkomst",
    "origin",
    "migratie",
    "migrant",
    "allochto",
    "autochto",
    "geboorteland",
    "country_of_birth",
    "birth_country",
    "religi",
    "westers",
    "western",
)

UNITS = UNIT_NAMES  # zicht.features.units: scale, decimals and labels of each


class ConfigError(ValueError):
    """A configuration value or key is not acceptable.

    ``path``: where in the merged configuration, as keys (``("indicators", "standard",
    "incidents")``), when known: the loader names the file that holds it.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[*]"
    driver_memory: str = "6g"
    shuffle_partitions: int = 8
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PeriodSettings:
    years: tuple[int, ...] = ()
    reference_date: dt.date | None = None


@dataclass(frozen=True)
class InputSettings:
    # Character encoding of the CSV inputs (a Java charset name, e.g. UTF-8, windows-1252);
    # a byte sequence invalid in it makes its row a reject, rule <column>.encoding
    encoding: str = "UTF-8"


@dataclass(frozen=True)
class StoreSettings:
    # `zicht store purge` removes stores not used for this many days
    retention_days: int = 30
    # false: always validate and link again, even when an unchanged input's store exists
    reuse: bool = True


@dataclass(frozen=True)
class OutputSettings:
    # how a finished run replaces the output: rename (atomic on local, HDFS, ABFS with a
    # hierarchical namespace), pointer (run folder + CURRENT pointer written last: object
    # stores), or auto (rename where the file system renames atomically, else pointer)
    commit: str = "auto"


@dataclass(frozen=True)
class ValidationSettings:
    max_reject_share: float = 0.05
    strict: bool = False
    # words added to the maintained list conf/base/forbidden_columns.yaml
    forbidden_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class AreaSettings:
    """``areas``: the CBS vintage the run reports in when ``areas`` holds several (CONTRACT.md,
    *Vintages*); None: the newest vintage present."""

    target_vintage: int | None = None


@dataclass(frozen=True)
class CoverageSettings:
    """Where a source covers only part of the study area (contract: partial inputs)."""

    gemeenten: tuple[str, ...] = ()
    years: tuple[int, ...] = ()


@dataclass(frozen=True)
class DisclosureSettings:
    min_count: int = 10
    min_numerator: int = 10
    min_denominator: int = 10
    min_units: int = 10
    dominance_n: int = 1
    dominance_k: float = 0.5
    protection_width: int = 2
    rounding_base: int | None = None


@dataclass(frozen=True)
class PartnerSettings:
    """One partner's package (``export.partners.<name>``): the gemeenten it receives."""

    gemeenten: tuple[str, ...] = ()
    label: str = ""  # the partner's name as the report shows it; default the key
    # its gemeenten form a region (zicht.features.regions): a level between gemeente and the
    # study area, protected by disclosure like the others, so the package may carry the
    # region's and the study area's rows as reference rows; at least two gemeenten, and no
    # gemeente in two regions
    region: bool = False


CSV_DIALECTS = ("standard", "nl")


@dataclass(frozen=True)
class ExportSettings:
    # standard: ',' and a decimal point (RFC 4180); nl: ';' and a decimal comma, as Dutch Excel
    # reads a double-clicked file. Both are UTF-8 with a byte-order mark.
    csv_dialect: str = "standard"
    # export/partners/<name>/: the partner's own tables, workbook, map files and report
    partners: Mapping[str, PartnerSettings] = field(default_factory=dict)


POPULATION_SOURCES = ("register", "extract", "auto")


@dataclass(frozen=True)
class PopulationSettings:
    """Whether ``persons`` is the register of all residents or an extract (CONTRACT.md,
    *Population*): with an extract the denominators come from ``areas.inhabitants`` and the
    register-only indicators are skipped. ``auto``: an extract when the residents in ``persons``
    are fewer than ``min_coverage`` of ``areas.inhabitants`` over the study area."""

    source: str = "auto"
    min_coverage: float = 0.5


@dataclass(frozen=True)
class PlausibilitySettings:
    """Published totals to compare zicht's incident counts with (``zicht.features.plausibility``):
    a CSV or Parquet location with gemeente_code, year, crime_class, count (e.g. StatLine
    47018NED); empty: no comparison. Differences above ``max_difference_share`` of the
    published count are flagged."""

    reference: str = ""
    max_difference_share: float = 0.1


@dataclass(frozen=True)
class NetworkSettings:
    seed: int = 20261128
    layers: tuple[str, ...] = ("co_offending",)
    # Leiden with the constant Potts model: a community's tie weight per pair of members must
    # exceed this density (merging two groups needs more than resolution * |A| * |B| ties)
    resolution: float = 0.06
    # a broker carries at least broker_min_share of the tie weight between its community and
    # another one, with at least broker_min_ties ties there; both communities have at least
    # broker_min_community members
    broker_min_ties: int = 2
    broker_min_share: float = 0.5
    broker_min_community: int = 3
    exact_betweenness_max_nodes: int = 5000
    # with --previous: a community keeps the previous run's id when the Jaccard overlap of
    # their members is at least this (zicht.models.lineage)
    lineage_threshold: float = 0.5


@dataclass(frozen=True)
class ModelSettings:
    seed: int = 20261128
    n_clusters: int = 6
    anomaly_contamination: float = 0.05
    knn: int = 6
    permutations: int = 199
    fdr_alpha: float = 0.05
    # p-values of Gi* before the FDR step: normal (from the z-score) or permutation
    hotspot_inference: str = "normal"
    # the MLflow registry name of the typology model; None (null in YAML): log, do not register
    registered_model_name: str | None = "zicht-area-typology"
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnexplainedOwnershipSettings:
    """``patterns.unexplained_ownership``: dwellings owned by persons whose household's income
    cannot explain them (zicht.features.themes). It classifies owners who are not suspects, so
    it is computed only when enabled with the legal basis that allows it (CONTRACT.md,
    ownership); the manifest's configuration records both."""

    enabled: bool = False
    legal_basis: str = ""
    # a person owning at least this many dwellings in the year ...
    min_dwellings: int = 2
    # ... whose owned WOZ value (times their shares) exceeds this many times the household's
    # standardised disposable income of the year
    max_value_to_income: float = 20.0


@dataclass(frozen=True)
class PatternSettings:
    """Thresholds and code lists of the register-pattern indicators (conf: ``patterns``)."""

    # SBI 2008 codes (prefixes: "5610" also takes "56101") of cash-intensive sectors
    cash_intensive_sbi: tuple[str, ...] = ("5610", "5630", "9602", "4511", "4520", "4719", "9609")
    # an address with at least this many companies active in the year
    min_companies_per_address: int = 10
    # a person holding a director role in at least this many companies active in the year
    min_companies_per_director: int = 5
    director_roles: tuple[str, ...] = ("bestuurder",)
    # a dwelling where at least this many adults (18+) are registered
    min_adults_per_dwelling: int = 7
    # a dwelling sold at least this many times within resale_window_years up to the year's end
    min_resales: int = 5
    resale_window_years: int = 20
    # a person's purchase whose price exceeds this many times the household's standardised
    # disposable income of that year
    max_price_to_income: float = 15.0
    # company churn: registered or deregistered within this many years up to the year's end
    churn_window_years: int = 2
    # jonge aanwas: residents aged youth_min_age .. youth_max_age at the end of the year
    youth_min_age: int = 12
    youth_max_age: int = 23
    unexplained_ownership: UnexplainedOwnershipSettings = field(
        default_factory=UnexplainedOwnershipSettings
    )
    # sector.<name>.companies_with_suspect: a suspect holds one of these roles in the company
    sector_suspect_roles: tuple[str, ...] = ("eigenaar", "bestuurder", "vennoot")


@dataclass(frozen=True)
class MlflowSettings:
    experiment: str = "zicht"


EXPERIMENT_ALGORITHMS = ("kmeans", "gmm", "hdbscan")


@dataclass(frozen=True)
class ExperimentSettings:
    """The grid ``zicht experiment`` sweeps over the area features (conf: ``experiment``).

    k-means and the mixture run once per ``n_clusters``; HDBSCAN once per
    ``min_cluster_sizes`` (0: 1 % of the area-years, at least 10). All are compared on the
    silhouette in the same scaled space, with resample stability (``stability: false`` skips it).
    """

    algorithms: tuple[str, ...] = EXPERIMENT_ALGORITHMS
    n_clusters: tuple[int, ...] = (4, 6, 8)
    min_cluster_sizes: tuple[int, ...] = (0,)
    stability: bool = True


@dataclass(frozen=True)
class Phenomenon:
    key: str
    label: str = ""
    incident_codes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    signal_categories: tuple[str, ...] = ()
    caveats: str = ""


@dataclass(frozen=True)
class IndicatorSpec:
    """One entry of the indicator catalogue, with ``{P}`` already filled in."""

    key: str
    phenomenon: str  # "" for context indicators
    unit: str
    definition: str
    numerator: str | None = None
    denominator: str | None = None
    sources: tuple[str, ...] = ()
    caveats: str = ""
    # False for distinct-person counts whose persons can count in several areas (suspects of
    # incidents in an area): a parent is then not the sum of its children.
    additive: bool = True
    # How a value that is neither a count nor a plain ratio is computed (zicht.features.registry
    # METHODS): median_distance_km, mean_woz, density_per_km2, eb_smoothed, relative_gemeente,
    # relative_study_area, composite, composite_class. Empty: a registered count, or numerator /
    # denominator for a rate or share.
    method: str = ""
    # A count whose units are a subset of another count's in the same area and year (e.g.
    # inhabitants aged 12+ within inhabitants): the difference is a count too, so disclosure
    # control protects the two as linked tables. ``{P}`` is filled in like the other fields.
    within: str | None = None
    # method composite: the indicators combined, and their weights (documented in the
    # catalogue); method composite_class: the composite it classes (one component).
    components: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    # the Dutch definition, for the partners' workbook and report ({P} filled in like the rest)
    definition_nl: str = ""
    # composite methods: a level and year with fewer areas than this gets not_applicable (a
    # percentile rank among three areas says nothing)
    min_areas: int = 5


@dataclass(frozen=True)
class Settings:
    spark: SparkSettings = field(default_factory=SparkSettings)
    period: PeriodSettings = field(default_factory=PeriodSettings)
    input: InputSettings = field(default_factory=InputSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    coverage: Mapping[str, CoverageSettings] = field(default_factory=dict)
    areas: AreaSettings = field(default_factory=AreaSettings)
    disclosure: DisclosureSettings = field(default_factory=DisclosureSettings)
    population: PopulationSettings = field(default_factory=PopulationSettings)
    plausibility: PlausibilitySettings = field(default_factory=PlausibilitySettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    experiment: ExperimentSettings = field(default_factory=ExperimentSettings)
    patterns: PatternSettings = field(default_factory=PatternSettings)
    # sector name -> SBI 2008 code prefixes (sector.<name>.* indicators; cash_intensive null:
    # patterns.cash_intensive_sbi)
    sectors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    phenomena: Mapping[str, Phenomenon] = field(default_factory=dict)
    indicators: tuple[IndicatorSpec, ...] = ()

    def indicator(self, key: str) -> IndicatorSpec:
        for spec in self.indicators:
            if spec.key == key:
                return spec
        raise KeyError(key)

    def to_flat_params(self) -> dict[str, str]:
        """The resolved configuration as flat ``a.b.c -> str`` pairs (for MLflow params)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                for f in dataclasses.fields(value):
                    walk(f"{prefix}.{f.name}" if prefix else f.name, getattr(value, f.name))
            elif isinstance(value, Mapping):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
                return  # the indicator catalogue is logged as an artifact, not as params
            else:
                out[prefix] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

        walk("", dataclasses.replace(self, indicators=()))
        return out

    def to_jsonable(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {f.name: conv(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, Mapping):
                return {str(k): conv(v) for k, v in value.items()}
            if isinstance(value, (tuple, list)):
                return [conv(v) for v in value]
            if isinstance(value, (dt.date, dt.datetime)):
                return value.isoformat()
            return value

        out = conv(self)
        assert isinstance(out, dict)
        return out


# --------------------------------------------------------------------------- building


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if args else Any
        return types.MappingProxyType(
            {str(k): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
        )
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    if tp is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: expected an ISO date, got {value!r}") from exc
    return value


def _build(
    cls: Any, data: Mapping[str, Any], where: str, path: tuple[str, ...] | None = None
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        base = path if path is not None else tuple(where.split(".")) if where else ()
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {', '.join(unknown)}"
            f"{registry.closest(unknown[0], names)}; allowed: {', '.join(sorted(names))}",
            (*base, unknown[0]),
        )
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


_PHENOMENON_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_PARTNER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CLASS = re.compile(r"^\d\.\d{1,2}\.\d{1,2}$")
_CODE = re.compile(r"^[A-Z]\d{2,4}$")


def _phenomena(raw: Mapping[str, Any]) -> dict[str, Phenomenon]:
    out: dict[str, Phenomenon] = {}
    for key, body in raw.items():
        if not _PHENOMENON_KEY.match(str(key)):
            raise ConfigError(f"phenomena.{key}: key must be lower snake_case")
        ph = _build(Phenomenon, {"key": key, **(body or {})}, f"phenomena.{key}")
        for c in ph.classes:
            if not _CLASS.match(c):
                raise ConfigError(f"phenomena.{key}.classes: {c!r} is not a class like 3.1.1")
        for c in ph.incident_codes:
            if not _CODE.match(c):
                raise ConfigError(f"phenomena.{key}.incident_codes: {c!r} is not a code like F94")
        if not (ph.classes or ph.incident_codes or ph.signal_categories):
            raise ConfigError(
                f"phenomena.{key}: needs incident_codes, classes or signal_categories"
            )
        out[key] = ph
    return out


def _indicators(
    raw: Mapping[str, Any],
    phenomena: Mapping[str, Phenomenon],
    sectors: Mapping[str, tuple[str, ...]] | None = None,
    cash_codes: tuple[str, ...] = (),
) -> tuple[IndicatorSpec, ...]:
    sectors = sectors or {}
    allowed = {"standard", "context", "register", "sector"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"indicators: unknown key(s) {', '.join(unknown)}{registry.closest(unknown[0], allowed)}",
            ("indicators", unknown[0]),
        )
    specs: list[IndicatorSpec] = []
    origin: dict[str, tuple[str, ...]] = {}  # key -> where in the configuration it comes from

    def add(body: Any, fields: dict[str, Any], section: str, key: str) -> None:
        path = ("indicators", section, str(key))
        if not isinstance(body, Mapping):
            raise ConfigError(f"indicators.{section}.{key}: expected a mapping", path)
        spec = _build(IndicatorSpec, {**body, **fields}, f"indicators.{section}.{key}", path)
        specs.append(spec)
        origin[spec.key] = path

    for key, body in (raw.get("context") or {}).items():
        add(body, {"key": key, "phenomenon": ""}, "context", key)
    for pkey, ph in phenomena.items():
        for key, body in (raw.get("standard") or {}).items():
            filled = {k: _fill(v, pkey) for k, v in (body or {}).items()}
            caveats = filled.pop("caveats", "") or ph.caveats
            add(filled, {"key": f"{pkey}.{key}", "phenomenon": pkey, "caveats": caveats},
                "standard", key)  # fmt: skip
    # sector: exists for every sector S of the sectors catalogue, keyed sector.S.<key>, with
    # no phenomenon (like context: a sector is not a phenomenon, it cuts across them)
    for skey in sectors:
        for key, body in (raw.get("sector") or {}).items():
            filled = {k: _fill(v, skey, "{S}") for k, v in (body or {}).items()}
            add(filled, {"key": f"sector.{skey}.{key}", "phenomenon": ""}, "sector", key)
    # register patterns belong to the phenomenon the contract names (the key's first part);
    # a phenomenon that is not configured takes its patterns with it (a sector likewise)
    for key, body in (raw.get("register") or {}).items():
        pkey = str(key).split(".", 1)[0]
        if pkey == "sector" and str(key).split(".")[1] in sectors:
            add(body, {"key": key, "phenomenon": ""}, "register", key)
        elif pkey == "context" or pkey in phenomena:
            add(body, {"key": key, "phenomenon": "" if pkey == "context" else pkey},
                "register", key)  # fmt: skip
    # A sector of the cash-intensive codes counts the very companies that
    # witwassen.cash_intensive_companies counts: declared within it, disclosure control links
    # the two (as it links identical phenomena), so no cell hidden under one name is published
    # under the other.
    cash_count = "witwassen.cash_intensive_companies"
    if cash_codes and any(s.key == cash_count for s in specs):
        for i, s in enumerate(specs):
            name = s.key.split(".")[1] if s.key.startswith("sector.") else ""
            if s.key == f"sector.{name}.companies" and set(sectors[name]) == set(cash_codes):
                specs[i] = dataclasses.replace(s, within=cash_count)
    for s in specs:
        _check_indicator(s, specs, phenomena, origin[s.key])
    return tuple(specs)


def _check_indicator(
    s: IndicatorSpec,
    specs: list[IndicatorSpec],
    phenomena: Mapping[str, Phenomenon],
    path: tuple[str, ...],
) -> None:
    """One catalogue entry against the registry (``zicht.features.registry``) and the rest of
    the catalogue: a count is a registered count, anything else a known method or a ratio; the
    indicators it names exist; its sources are contract tables or known alternatives."""
    where = ".".join(path) + (f" ({s.key})" if s.phenomenon and path[1] == "standard" else "")
    keys = [x.key for x in specs]

    def fail(message: str, *sub: str) -> ConfigError:
        return ConfigError(f"{where}: {message}", (*path, *sub))

    if s.unit not in UNITS:
        raise fail(f"unit {s.unit!r} not one of {UNITS}{registry.closest(s.unit, UNITS)}", "unit")
    for source in s.sources:
        for option in source.split("|"):
            if option not in registry.SOURCE_NAMES:
                raise fail(
                    f"source {option!r} is not a contract table or a known alternative"
                    f"{registry.closest(option, registry.SOURCE_NAMES)}",
                    "sources",
                )
    for name in ("numerator", "denominator", "within"):
        ref = getattr(s, name)
        if ref is not None and ref not in keys:
            raise fail(f"{name} {ref!r} is not in the catalogue{registry.closest(ref, keys)}", name)
    for c in s.components:
        if c not in keys:
            raise fail(f"component {c!r} is not in the catalogue{registry.closest(c, keys)}",
                       "components")  # fmt: skip
    if s.method:
        method = registry.METHODS.get(s.method)
        if method is None:
            raise fail(
                f"unknown method {s.method!r}{registry.closest(s.method, registry.METHODS)}; "
                f"known: {', '.join(registry.METHODS)}",
                "method",
            )
        if s.unit == "count":
            raise fail("a count is a registered count, not a method", "method")
        missing = [n for n in method.needs if not getattr(s, n)]
        if missing:
            raise fail(f"method {s.method} needs {' and '.join(missing)}", missing[0])
        if s.method == "composite" and (len(s.weights) != len(s.components) or min(s.weights) < 0):
            raise fail("a composite needs as many weights (>= 0) as components", "weights")
        if s.method == "composite_class" and len(s.components) != 1:
            raise fail("composite_class classes one composite", "components")
        if s.method in registry.COMPOSITE_METHODS and s.min_areas < 1:
            raise fail("min_areas must be at least 1", "min_areas")
        if s.method == "magnitude_sum" and s.key not in registry.MAGNITUDES:
            raise fail(
                f"no registered magnitude makes {s.key!r}"
                f"{registry.closest(s.key, registry.MAGNITUDES)} (zicht.features.registry)",
                "method",
            )
        return
    if s.unit != "count":
        if not (s.numerator and s.denominator) or s.unit not in ("rate", "share"):
            raise fail(
                f"a {s.unit} without a method needs unit rate or share with a numerator and a "
                f"denominator; methods: {', '.join(registry.METHODS)}",
            )
        return
    count = registry.find_count(s.key, phenomena)
    if count is None:
        pattern = path[2] if path[1] != "standard" else "{P}." + path[2]
        names = [c.pattern for c in registry.COUNTS] + registry.count_names(phenomena)
        raise fail(
            f"no registered count makes {s.key!r}{registry.closest(pattern, names)} (a count "
            "is registered in zicht.features.registry; see DEVELOPERS.md, adding an indicator)"
        )
    if s.additive != count.additive:
        raise fail(
            f"additive: {str(s.additive).lower()} disagrees with the registry (a {count.rollup} "
            "count)",
            "additive",
        )
    missing_src = [t for t in count.tables if t not in s.sources]
    if missing_src:
        raise fail(
            f"sources must name {', '.join(missing_src)}: the registered count reads it",
            "sources",
        )


def _fill(value: Any, pkey: str, token: str = "{P}") -> Any:
    """``{P}`` (or ``token``) replaced by the phenomenon (sector) key in a string or a list."""
    if isinstance(value, str):
        return value.replace(token, pkey)
    if isinstance(value, list):
        return [_fill(v, pkey, token) for v in value]
    return value


_SBI_PREFIX = re.compile(r"^\d{2,5}$")


def _sectors(raw: Any, cash_intensive: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The sectors catalogue: name -> SBI prefixes; ``cash_intensive`` without a list takes
    ``patterns.cash_intensive_sbi`` (one list, so the two never disagree)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("sectors: expected a mapping of name -> SBI code prefixes", ("sectors",))
    out: dict[str, tuple[str, ...]] = {}
    for name, codes in raw.items():
        path = ("sectors", str(name))
        if not _PHENOMENON_KEY.match(str(name)):
            raise ConfigError(f"sectors.{name}: a name is lower snake_case", path)
        if codes is None and name == "cash_intensive":
            codes = list(cash_intensive)
        if not isinstance(codes, list) or not codes:
            raise ConfigError(f"sectors.{name}: expected a non-empty list of SBI prefixes", path)
        prefixes = tuple(str(c) for c in codes)
        bad = [c for c in prefixes if not _SBI_PREFIX.match(c)]
        if bad:
            raise ConfigError(
                f"sectors.{name}: {bad[0]!r} is not an SBI code prefix (2 to 5 digits, no dots)",
                path,
            )
        out[str(name)] = prefixes
    return out


def settings_from_mapping(data: Mapping[str, Any]) -> Settings:
    """Build validated :class:`Settings` from a merged plain mapping (YAML content)."""
    data = dict(data)
    phenomena = _phenomena(data.pop("phenomena", {}) or {})
    cash = (data.get("patterns") or {}).get("cash_intensive_sbi")
    cash_codes = PatternSettings().cash_intensive_sbi if cash is None else tuple(map(str, cash))
    sectors = _sectors(data.pop("sectors", None), cash_codes)
    indicators = _indicators(data.pop("indicators", {}) or {}, phenomena, sectors, cash_codes)
    settings: Settings = _build(Settings, data, "")
    settings = dataclasses.replace(
        settings,
        phenomena=types.MappingProxyType(phenomena),
        indicators=indicators,
        sectors=types.MappingProxyType(sectors),
    )
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    try:
        codecs.lookup(s.input.encoding)
    except LookupError:
        raise ConfigError(
            f"input.encoding: {s.input.encoding!r} is not a known encoding (e.g. UTF-8)"
        ) from None
    if not 0 <= s.validation.max_reject_share <= 1:
        raise ConfigError("validation.max_reject_share must be within 0..1")
    if s.output.commit not in ("auto", "rename", "pointer"):
        raise ConfigError("output.commit must be auto, rename or pointer")
    if s.store.retention_days < 0:
        raise ConfigError("store.retention_days must be 0 or more")
    if s.disclosure.min_count < 1:
        raise ConfigError("disclosure.min_count must be at least 1")
    if not 0 < s.disclosure.dominance_k <= 1:
        raise ConfigError("disclosure.dominance_k must be within (0, 1]")
    if s.model.hotspot_inference not in ("normal", "permutation"):
        raise ConfigError("model.hotspot_inference must be normal or permutation")
    net = s.network
    if net.resolution <= 0:
        raise ConfigError("network.resolution must be positive")
    if not 0 < net.broker_min_share <= 1:
        raise ConfigError("network.broker_min_share must be within (0, 1]")
    if not 0 < net.lineage_threshold <= 1:
        raise ConfigError("network.lineage_threshold must be within (0, 1]")
    if net.broker_min_ties < 1 or net.broker_min_community < 2:
        raise ConfigError("network.broker_min_ties >= 1 and network.broker_min_community >= 2")
    for name in s.model.features:
        low = name.lower()
        if any(word in low for word in SENSITIVE_FEATURE_WORDS):
            raise ConfigError(
                f"model.features: {name!r} is (or names) ethnicity, nationality, country of birth "
                "or religion, which zicht refuses as a feature"
            )
    unknown_algorithms = sorted(set(s.experiment.algorithms) - set(EXPERIMENT_ALGORITHMS))
    if unknown_algorithms:
        raise ConfigError(
            f"experiment.algorithms: unknown {unknown_algorithms}; use {EXPERIMENT_ALGORITHMS}"
        )
    if any(k < 2 for k in s.experiment.n_clusters):
        raise ConfigError("experiment.n_clusters: every value must be at least 2")
    if any(m < 0 or m == 1 for m in s.experiment.min_cluster_sizes):
        raise ConfigError("experiment.min_cluster_sizes: 0 (automatic) or at least 2")
    for table, cov in s.coverage.items():
        for g in cov.gemeenten:
            if not re.match(r"^GM\d{4}$", g):
                raise ConfigError(f"coverage.{table}.gemeenten: {g!r} is not a GM code")
    if s.export.csv_dialect not in CSV_DIALECTS:
        raise ConfigError(f"export.csv_dialect must be one of {', '.join(CSV_DIALECTS)}")
    for name, partner in s.export.partners.items():
        if not _PARTNER_NAME.match(name):
            raise ConfigError(
                f"export.partners.{name}: a name is lower-case letters, digits and '-' (it names "
                "the folder export/partners/<name>/)"
            )
        if not partner.gemeenten:
            raise ConfigError(f"export.partners.{name}: gemeenten is empty")
        for g in partner.gemeenten:
            if not re.match(r"^GM\d{4}$", g):
                raise ConfigError(f"export.partners.{name}.gemeenten: {g!r} is not a GM code")
        if partner.region and len(set(partner.gemeenten)) < 2:
            raise ConfigError(
                f"export.partners.{name}.region: a region needs two or more gemeenten"
            )
        if partner.region and name == "studiegebied":  # the study area's own code
            raise ConfigError("export.partners.studiegebied: a region cannot be named studiegebied")
    in_region: dict[str, str] = {}  # regions must be disjoint: the hierarchy is a tree
    for name, partner in sorted(s.export.partners.items()):
        for g in partner.gemeenten if partner.region else ():
            if in_region.setdefault(g, name) != name:
                raise ConfigError(
                    f"export.partners: gemeente {g} is in the regions {in_region[g]} and {name}; "
                    "regions must not overlap (set region: false on one of them)"
                )
    if s.population.source not in POPULATION_SOURCES:
        raise ConfigError(
            f"population.source: {s.population.source!r} is not one of "
            f"{', '.join(POPULATION_SOURCES)}{registry.closest(s.population.source, POPULATION_SOURCES)}",
            ("population", "source"),
        )
    if not 0 <= s.population.min_coverage <= 1:
        raise ConfigError(
            "population.min_coverage must be within 0..1", ("population", "min_coverage")
        )
    if s.plausibility.max_difference_share < 0:
        raise ConfigError(
            "plausibility.max_difference_share must be 0 or more",
            ("plausibility", "max_difference_share"),
        )
    if not s.phenomena:
        raise ConfigError("phenomena: the catalogue is empty")
    owning = s.patterns.unexplained_ownership
    if owning.enabled and not owning.legal_basis.strip():
        raise ConfigError(
            "patterns.unexplained_ownership: enabled needs a legal_basis (it classifies owners "
            "who are not suspects by their income; name the legal basis that allows it)",
            ("patterns", "unexplained_ownership", "legal_basis"),
        )
    if owning.min_dwellings < 2 or owning.max_value_to_income <= 0:
        raise ConfigError(
            "patterns.unexplained_ownership: min_dwellings >= 2 and max_value_to_income > 0",
            ("patterns", "unexplained_ownership"),
        )
