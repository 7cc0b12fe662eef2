"""The dataset catalogue: every table and file zicht persists, declared once.

Reads and writes nothing. Each :class:`Dataset` names one persisted table or file: where it
lives (a location relative to its root), who may see it, its format, and for tabular data its
Spark schema with a one-line description per column (``StructField.metadata["comment"]``).
The jobs look their paths and schemas up here instead of spelling them out, and check a frame
against the declaration before they write it (:func:`check_schema`), after Kedro's
``catalog.yml`` (locations out of code) and the house style's "every stored table has its
schema declared once".

Roots:

- ``output``: the run's output folder (``--output`` / ``--from``), CONTRACT.md section 3;
- ``stage``: the hand-overs between later stages (``restricted/stage/`` of the run's work
  folder), person-level and restricted; ``zicht run`` removes it before the commit;
- ``beside``: the folder that holds the output folder (the release register and the released
  patterns, inside the secure environment like the MLflow store there);
- ``store``: this input's analysis-ready store (``--store``; ``zicht.jobs.store``): what ingest
  validated and linked, person-level, reused by the next run on the same input.

Types are the ones the jobs write, also where they differ between tables (``year`` is int in
most tables, long in ``area_typology`` and some hand-overs). Datasets the contract declares but no job writes yet are marked
``planned``. Wide tables whose columns follow the phenomenon and indicator catalogues
(``area_features``, ``area_typology``, ``communities``) declare their fixed columns and the
patterns the others follow (:class:`ColumnPattern`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from pyspark.sql import types as T

from zicht.features.schemas import INPUT_TABLES, PSEUDONYM_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ROOTS = ("output", "stage", "beside", "store")
AUDIENCES = ("restricted", "partner", "everyone", "store")
FORMATS = ("parquet", "csv", "json", "xlsx", "html", "geojson", "log", "folder")
TABULAR = ("parquet", "csv")

# the words of the contract's "for" column, per audience (a dataset may name its own readers)
READERS = {
    "restricted": "analysts",
    "partner": "partners",
    "everyone": "everyone",
    "store": "analysts",
}

_PLACEHOLDER = re.compile(r"<([a-z_]+)>")
# what a placeholder stands for inside a column name: a phenomenon key (settings allow
# [a-z][a-z0-9_]*) or an indicator key with its dots turned into underscores
_NAME_PART = "[a-z0-9_]+"

STRING, INTEGER, LONG, DOUBLE = T.StringType(), T.IntegerType(), T.LongType(), T.DoubleType()
BOOLEAN, DATE = T.BooleanType(), T.DateType()


class SchemaMismatch(ValueError):
    """A frame's columns or types differ from its dataset's declaration."""

    def __init__(self, location: str, problems: Iterable[str]) -> None:
        self.location = location
        self.problems = tuple(problems)
        super().__init__(f"{location}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class ColumnPattern:
    """Columns of a wide table whose names follow a catalogue, e.g. ``hotspot_z_<phenomenon>``.

    ``<...>`` stands for a phenomenon key or an indicator key with dots as underscores."""

    template: str
    data_type: T.DataType = field(hash=False)
    description: str

    def matches(self, column: str) -> bool:
        parts = _PLACEHOLDER.split(self.template)
        # split() alternates literal text and placeholder names
        regex = "".join(_NAME_PART if i % 2 else re.escape(p) for i, p in enumerate(parts))
        return re.fullmatch(regex, column) is not None


@dataclass(frozen=True)
class Dataset:
    """One persisted table or file.

    ``location`` is relative to ``root``; a location with ``<table>`` (or another
    ``<placeholder>``) is a template: :meth:`for_table` / :meth:`path` fill it in.
    ``strict_columns``: the frame holds exactly the declared columns; otherwise the declared
    columns are required and every other column must match one of ``column_patterns`` with
    its type. ``optional``: written only when its sources exist (or when configured).
    ``planned``: declared by the contract, not written by any job yet.
    """

    name: str
    location: str
    root: str
    audience: str
    format: str
    schema: T.StructType | None = field(hash=False)
    description: str
    partition_by: tuple[str, ...] = ()
    optional: bool = False
    strict_columns: bool = True
    column_patterns: tuple[ColumnPattern, ...] = ()
    planned: bool = False
    readers: str = ""  # the contract's "for" words, when not the audience's default
    # templates over the input tables: the schema of one table's instance
    table_schema: Callable[[str], T.StructType] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        where = f"dataset {self.name} ({self.location})"
        if self.root not in ROOTS:
            raise ValueError(f"{where}: root {self.root!r} is not one of {ROOTS}")
        if self.audience not in AUDIENCES:
            raise ValueError(f"{where}: audience {self.audience!r} is not one of {AUDIENCES}")
        if self.format not in FORMATS:
            raise ValueError(f"{where}: format {self.format!r} is not one of {FORMATS}")
        if self.strict_columns == bool(self.column_patterns):
            raise ValueError(f"{where}: column patterns go with strict_columns=False, only")
        if self.schema is not None:
            names = [f.name for f in self.schema.fields]
            if len(set(names)) != len(names):
                raise ValueError(f"{where}: a column is declared twice")
            undescribed = [f.name for f in self.schema.fields if not f.metadata.get("comment")]
            if undescribed:
                raise ValueError(f"{where}: columns without a description: {undescribed}")
            unknown = [c for c in self.partition_by if c not in names]
            if unknown:
                raise ValueError(f"{where}: partition columns {unknown} are not declared")

    @property
    def is_template(self) -> bool:
        return _PLACEHOLDER.search(self.location) is not None

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.location))

    @property
    def columns(self) -> tuple[str, ...]:
        """The declared column names (empty for a file without a schema)."""
        return tuple(f.name for f in self.schema.fields) if self.schema is not None else ()

    def description_of(self, column: str) -> str:
        """The one-line description of a declared or patterned column."""
        if self.schema is not None and column in self.schema.names:
            return str(self.schema[column].metadata["comment"])
        for p in self.column_patterns:
            if p.matches(column):
                return p.description
        raise KeyError(f"{self.location}: no column {column}")

    def for_table(self, table: str) -> Dataset:
        """The instance of a per-input-table template (``restricted/rejects/<table>``)."""
        if self.placeholders != ("table",) or self.table_schema is None:
            raise ValueError(f"{self.location}: not a per-table template")
        if table not in INPUT_TABLES:
            raise KeyError(f"{table!r} is not an input table; known: {', '.join(INPUT_TABLES)}")
        return replace(
            self,
            name=f"{self.name}/{table}",
            location=self.location.replace("<table>", table),
            schema=self.table_schema(table),
            table_schema=None,
        )

    def path(self, root: str | os.PathLike[str], **params: str) -> str:
        """``root`` joined with the location, placeholders filled from ``params``; ``root`` is
        a local path or a URI (``hdfs://...``), so the result is a string."""
        missing = [p for p in self.placeholders if p not in params]
        if missing:
            raise ValueError(f"{self.location}: give {', '.join(missing)}")
        location = _PLACEHOLDER.sub(lambda m: params[m.group(1)], self.location)
        return f"{str(root).rstrip('/')}/{location}"


def _field(name: str, data_type: T.DataType, comment: str) -> T.StructField:
    return T.StructField(name, data_type, True, {"comment": comment})


def _schema(*fields: tuple[str, T.DataType, str]) -> T.StructType:
    return T.StructType([_field(*f) for f in fields])


# --------------------------------------------------------------------------- column groups

_CELL_KEY = (
    ("level", STRING, "buurt, wijk or gemeente"),
    ("area_code", STRING, "CBS code of the area"),
    ("year", INTEGER, "calendar year"),
    ("indicator", STRING, "indicator key of the catalogue (conf/base/indicators.yaml)"),
)
_STATUS_BEFORE = (
    "status",
    STRING,
    "ok, not_applicable (a rate or share whose denominator is 0) or not_covered (outside a "
    "source's coverage), before disclosure control",
)
_LONG_COUNTS = (
    ("level", STRING, "buurt, wijk or gemeente"),
    ("area_code", STRING, "CBS code of the area"),
    ("year", LONG, "calendar year"),
    ("indicator", STRING, "indicator key of the catalogue"),
    ("value", DOUBLE, "the count"),
)
_AREA_COLUMNS = (
    ("buurt_code", STRING, "CBS buurt code"),
    ("buurt_name", STRING, "buurt name"),
    ("wijk_code", STRING, "CBS wijk code"),
    ("wijk_name", STRING, "wijk name"),
    ("gemeente_code", STRING, "CBS gemeente code"),
    ("gemeente_name", STRING, "gemeente name"),
    ("x", DOUBLE, "centroid x in RD New (EPSG:28992), metres"),
    ("y", DOUBLE, "centroid y in RD New (EPSG:28992), metres"),
    ("land_area_ha", DOUBLE, "land area in hectares"),
    ("geometry_wkt", STRING, "polygon or multipolygon in RD New (null when not given)"),
    ("inhabitants", LONG, "registered inhabitants from the areas table (null when not given)"),
    (
        "inhabitants_12plus",
        LONG,
        "registered inhabitants aged 12 or older from the areas table (null when not given)",
    ),
    ("vintage", LONG, "CBS vintage: the target vintage (null when areas has no vintage column)"),
)
_COMMUNITY_COLUMNS = (
    (
        "community_id",
        LONG,
        "community of the suspect network (Leiden, constant Potts model, seeded); 1 is the "
        "largest, or with --previous the lasting id (community_lineage.parquet)",
    ),
    ("size", LONG, "number of member suspects"),
    ("n_incidents", LONG, "distinct incidents with a member as suspect"),
    (
        "home_buurt_code",
        STRING,
        "buurt where most resident members live, latest year (null: none resident)",
    ),
    ("home_wijk_code", STRING, "wijk where most resident members live (null: none resident)"),
    ("rootedness_buurt", DOUBLE, "share of all members resident in the home buurt"),
    ("rootedness_wijk", DOUBLE, "share of all members resident in the home wijk"),
    ("n_buurten_active", LONG, "distinct buurten of the community's incidents"),
    (
        "spread_km",
        DOUBLE,
        "standard distance of the community's incident locations, km (null without incidents)",
    ),
    ("share_non_resident", DOUBLE, "share of members without a residence in the study area"),
)
_SHARE_PATTERN = ColumnPattern(
    "share_<phenomenon>", DOUBLE, "share of the community's incidents of that phenomenon"
)
_EXPORT_COLUMNS = (
    ("level", STRING, "buurt, wijk or gemeente"),
    ("area_code", STRING, "CBS code of the area"),
    ("area_name", STRING, "CBS name of the area"),
    ("year", INTEGER, "calendar year"),
    ("indicator", STRING, "indicator key (see codebook.csv)"),
    ("value", DOUBLE, "the value, rounded by unit; empty unless status is ok"),
    ("status", STRING, "ok, suppressed, not_covered or not_applicable"),
)

_TREND_EXPORT_COLUMNS = (
    ("level", STRING, "buurt, wijk or gemeente"),
    ("area_code", STRING, "CBS code of the area"),
    ("area_name", STRING, "CBS name of the area"),
    ("indicator", STRING, "indicator key (see codebook.csv)"),
    ("first_year", INTEGER, "first year of the period; empty unless status is ok"),
    ("last_year", INTEGER, "last year of the period; empty unless status is ok"),
    ("value_last", DOUBLE, "the published value of the last year"),
    ("change_last", DOUBLE, "the last year's published value minus the year before's"),
    ("change_last_relative", DOUBLE, "that change over the year before's value (empty: 0)"),
    (
        "lower_last",
        DOUBLE,
        "95 % lower bound of the last year's value, from the published numbers (exact "
        "Poisson for counts and rates, Wilson for shares)",
    ),
    ("upper_last", DOUBLE, "95 % upper bound, likewise"),
    (
        "trend_per_year",
        DOUBLE,
        "relative change per year of the Poisson trend over the period (0.1: +10 % a year)",
    ),
    ("trend_lower", DOUBLE, "95 % lower bound of trend_per_year"),
    ("trend_upper", DOUBLE, "95 % upper bound of trend_per_year"),
    ("q_value", DOUBLE, "Benjamini-Hochberg q-value over the level's areas of the indicator"),
    ("is_significant", BOOLEAN, "q_value <= the false discovery rate (model.fdr_alpha)"),
    (
        "status",
        STRING,
        "ok; suppressed (a year, or its numerator or denominator, is not published); "
        "not_exact (a buurt not placed exactly in every year)",
    ),
    (
        "trend_status",
        STRING,
        "ok, too_few_years, all_zero, not_estimable (all counts in the first or last year) "
        "or not_a_count (a share); empty unless status is ok",
    ),
)

_CODEBOOK_COLUMNS = (
    ("indicator", STRING, "indicator key"),
    ("phenomenon", STRING, "phenomenon key; empty for context and network indicators"),
    ("definition", STRING, "what the indicator counts or measures"),
    ("definition_nl", STRING, "the same in Dutch (empty where the catalogue has none)"),
    ("unit", STRING, "count, rate, share, euro, km, index or class"),
    ("numerator", STRING, "indicator key of the numerator (rates and shares)"),
    ("denominator", STRING, "indicator key of the denominator (rates and shares)"),
    ("sources", STRING, "tables the indicator needs, ';'-separated"),
    ("caveats", STRING, "what to keep in mind when reading it"),
)


_MEMBER_MEASURES: tuple[tuple[str, T.DataType, str], ...] = (
    (
        "community_id",
        LONG,
        "community the suspect belongs to (1 is the largest; with --previous the lasting id)",
    ),
    (
        "degree",
        LONG,
        "distinct suspects tied to it (co-offending and configured layers)",
    ),
    (
        "weighted_degree",
        DOUBLE,
        "sum of its tie weights (co-offending: recency-weighted)",
    ),
    ("betweenness", DOUBLE, "betweenness within its community, normalised as networkx"),
    (
        "participation",
        DOUBLE,
        "participation coefficient: how evenly the ties spread over communities (0 if isolated)",
    ),
    (
        "is_broker",
        BOOLEAN,
        "carries at least network.broker_min_share of the tie "
        "weight between its community and another one",
    ),
)


def _rejects_schema(table: str) -> T.StructType:
    """The contract columns of an input table as they came in (text) and ``reject_rule``."""
    columns = INPUT_TABLES[table].columns
    return _schema(
        *[(c.name, STRING, f"as delivered, as text: {c.description}") for c in columns],
        ("reject_rule", STRING, "every rule the row broke, ';'-separated (<column>.<rule>)"),
    )


def _validated_schema(table: str) -> T.StructType:
    """Typed contract columns, their raw text, the rule columns (``zicht.features.validate``)."""
    columns = INPUT_TABLES[table].columns
    keyed = set(PSEUDONYM_COLUMNS.get(table, ()))
    typed: list[tuple[str, T.DataType, str]] = [
        (
            (c.name, LONG, f"64-bit key (xxhash64) of the {c.description}")
            if c.name in keyed
            else (c.name, c.spark_type, f"typed (null when it does not parse): {c.description}")
        )
        for c in columns
    ]
    raw: list[tuple[str, T.DataType, str]] = [
        (
            f"_raw_{c.name}",
            STRING,
            f"{c.name} as delivered, as text, on rejected rows only (null elsewhere)",
        )
        for c in columns
    ]
    extra: list[tuple[str, T.DataType, str]] = []
    if table == "incidents":
        extra = [
            ("crime_class", STRING, "CBS class of the crime_code (47018NED)"),
            (
                "point_buurt_code",
                STRING,
                "buurt whose polygon holds (x, y), for incidents without buurt_code and address_id",
            ),
        ]
    return _schema(
        *typed,
        *raw,
        *extra,
        ("reject_rule", STRING, "every rule the row broke, ';'-separated; null when none"),
        ("is_excluded", BOOLEAN, "outside the configured period or area: not a reject, not used"),
    )


# --------------------------------------------------------------------------- the catalogue


def _datasets() -> tuple[Dataset, ...]:
    out, stage, beside = "output", "stage", "beside"
    restricted, partner, everyone = "restricted", "partner", "everyone"
    return (
        # ------------------------------------------------------------- restricted/
        Dataset(
            "indicators",
            "restricted/indicators.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                *_CELL_KEY,
                ("value", DOUBLE, "value before disclosure control (null when not applicable)"),
                _STATUS_BEFORE,
            ),
            "every indicator before disclosure control, long, with each cell's status",
        ),
        Dataset(
            "area_features",
            "restricted/area_features.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                ("buurt_code", STRING, "CBS buurt code"),
                ("year", INTEGER, "calendar year"),
                ("x", DOUBLE, "buurt centroid x in RD New, metres"),
                ("y", DOUBLE, "buurt centroid y in RD New, metres"),
            ),
            "one row per (buurt_code, year): the model features",
            strict_columns=False,
            column_patterns=(
                ColumnPattern("context_<indicator>", DOUBLE, "the context indicator of that key"),
                ColumnPattern("network_<indicator>", DOUBLE, "the network (rootedness) indicator"),
                ColumnPattern(
                    "<phenomenon>_<indicator>",
                    DOUBLE,
                    "the indicator <phenomenon>.<indicator>, dots as underscores, or a "
                    "helper count behind it",
                ),
            ),
        ),
        Dataset(
            "area_typology",
            "restricted/area_typology.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                ("buurt_code", STRING, "CBS buurt code"),
                ("year", LONG, "calendar year"),
                (
                    "cluster",
                    LONG,
                    "area type of the chosen typology model (0 = largest; -1 = "
                    "fits no type, HDBSCAN noise)",
                ),
                (
                    "anomaly_score",
                    DOUBLE,
                    "mean percentile rank (0-1] of the isolation-forest score and the robust "
                    "register score (zicht.models.anomaly); higher is more unusual",
                ),
            ),
            "one row per (buurt_code, year): area type, anomaly score and hot spots per phenomenon",
            optional=True,  # skipped when nothing varies between the areas
            strict_columns=False,
            column_patterns=(
                ColumnPattern(
                    "hotspot_z_<phenomenon>",
                    DOUBLE,
                    "Getis-Ord Gi* z-score of the "
                    "smoothed incidents per 1000 (positive: high values cluster)",
                ),
                ColumnPattern(
                    "hotspot_q_<phenomenon>",
                    DOUBLE,
                    "Benjamini-Hochberg q-value of the Gi* p-value within the year",
                ),
                ColumnPattern(
                    "moran_i_<phenomenon>",
                    DOUBLE,
                    "local Moran's I of the smoothed incidents per 1000",
                ),
                ColumnPattern(
                    "moran_q_<phenomenon>",
                    DOUBLE,
                    "Benjamini-Hochberg q-value of the local Moran p-value within the year",
                ),
                ColumnPattern(
                    "moran_type_<phenomenon>",
                    STRING,
                    "local Moran cluster type "
                    "HH, LL, HL or LH where moran_q <= model.fdr_alpha, else ns",
                ),
            ),
        ),
        Dataset(
            "area_anomaly_drivers",
            "restricted/area_anomaly_drivers.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                ("buurt_code", STRING, "CBS buurt code"),
                ("year", LONG, "calendar year"),
                ("part", STRING, "robust (register features) or forest (isolation forest)"),
                ("part_score", DOUBLE, "the area-year's score on that part; higher: more unusual"),
                ("part_rank", LONG, "rank of the area-year on that part (1 = most unusual)"),
                ("driver_rank", INTEGER, "1 = the feature that drives the part's score most"),
                ("feature", STRING, "area feature column"),
                ("feature_group", STRING, "register, police, signals, network or context"),
                (
                    "feature_z",
                    DOUBLE,
                    "robust z of the smoothed value (robust) or standardised log value (forest)",
                ),
                ("feature_value", DOUBLE, "the feature's smoothed value in the area-year"),
                ("feature_median", DOUBLE, "the feature's median over all area-years"),
            ),
            "area-level, person-free: the features behind each area-year's anomaly score",
            optional=True,  # skipped with the area models
        ),
        Dataset(
            "network_members",
            "restricted/network_members.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                ("person_id", STRING, "suspect pseudonym (only suspects, never other persons)"),
                *_MEMBER_MEASURES,
            ),
            "one row per suspect in the network (never a person who is not a suspect)",
            optional=True,  # needs the suspects table
        ),
        Dataset(
            "communities",
            "restricted/communities.parquet",
            out,
            restricted,
            "parquet",
            _schema(*_COMMUNITY_COLUMNS),
            "one row per community: size, incidents, phenomenon shares, home buurt and wijk, "
            "rootedness, spread",
            optional=True,
            strict_columns=False,
            column_patterns=(_SHARE_PATTERN,),
        ),
        Dataset(
            "indicator_intervals",
            "restricted/indicator_intervals.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                *_CELL_KEY,
                ("unit", STRING, "count, rate or share"),
                ("value", DOUBLE, "value before disclosure control"),
                ("lower", DOUBLE, "95 % lower bound: exact Poisson (Garwood) or Wilson"),
                ("upper", DOUBLE, "95 % upper bound: exact Poisson (Garwood) or Wilson"),
                ("interval_method", STRING, "garwood (counts, rates) or wilson (shares)"),
                ("previous_value", DOUBLE, "the value of the year before (null: none)"),
                ("change", DOUBLE, "value minus the previous year's"),
                ("change_relative", DOUBLE, "change over the previous year's value (null: 0)"),
            ),
            "per cell of a count, rate or share: its 95 % interval and its change against the "
            "previous year, before disclosure control (zicht.models.trends)",
        ),
        Dataset(
            "indicator_trends",
            "restricted/indicator_trends.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                ("level", STRING, "buurt, wijk or gemeente"),
                ("area_code", STRING, "CBS code of the area"),
                ("indicator", STRING, "indicator key of the catalogue (a count or a rate)"),
                ("unit", STRING, "count or rate"),
                ("first_year", INTEGER, "first usable year (null: none)"),
                ("last_year", INTEGER, "last usable year (null: none)"),
                ("n_years", INTEGER, "usable years of the period"),
                ("total_count", DOUBLE, "the counts (a rate's numerator) summed over them"),
                ("slope_per_year", DOUBLE, "Poisson regression slope b: log rate ratio per year"),
                ("slope_se", DOUBLE, "Wald standard error of b (Fisher information)"),
                ("rate_ratio_per_year", DOUBLE, "exp(b): the factor per year"),
                ("rate_ratio_lower", DOUBLE, "95 % Wald lower bound of exp(b)"),
                ("rate_ratio_upper", DOUBLE, "95 % Wald upper bound of exp(b)"),
                ("p_value", DOUBLE, "Wald p-value of b = 0, two-sided"),
                (
                    "q_value",
                    DOUBLE,
                    "Benjamini-Hochberg q-value over the level's areas of the indicator",
                ),
                ("is_significant", BOOLEAN, "q_value <= model.fdr_alpha"),
                ("trend_status", STRING, "ok, too_few_years, all_zero or not_estimable"),
            ),
            "per area and count or rate: the Poisson trend over the period with its interval "
            "and FDR flag, before disclosure control (zicht.models.trends)",
        ),
        Dataset(
            "disclosure_audit",
            "restricted/disclosure_audit.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                *_CELL_KEY[:3],
                (
                    "indicator",
                    STRING,
                    "indicator key of the catalogue; BROAD-NARROW for a linked difference row",
                ),
                ("unit", STRING, "unit of the indicator (count, rate, share, euro, km, index)"),
                (
                    "status",
                    STRING,
                    "published status: ok, suppressed, not_covered or not_applicable",
                ),
                (
                    "reason",
                    STRING,
                    "published, primary, inherited, secondary, not_applicable, "
                    "not_covered or linked_difference (audit only)",
                ),
                ("value", DOUBLE, "value before rounding and suppression"),
                (
                    "feasible_lower",
                    DOUBLE,
                    "suppressed counts: lowest value consistent with the published cells",
                ),
                (
                    "feasible_upper",
                    DOUBLE,
                    "suppressed counts: highest value consistent with the published cells",
                ),
                (
                    "protected",
                    BOOLEAN,
                    "suppressed counts: feasible interval at least protection_width wide",
                ),
            ),
            "per cell: why it is published or suppressed, and the audit's feasible interval "
            "for each suppressed count",
            readers="analysts, auditors",
        ),
        Dataset(
            "areas",
            "restricted/areas.parquet",
            out,
            restricted,
            "parquet",
            _schema(*_AREA_COLUMNS),
            "the accepted areas (hierarchy, names, outlines), for the model and export stages",
        ),
        Dataset(
            "magnitude_contributors",
            "restricted/magnitude_contributors.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                *_CELL_KEY,
                ("n_units", LONG, "contributors behind the cell (minimum-units rule)"),
                (
                    "top_n_share",
                    DOUBLE,
                    "share of the largest contributor in the total ((1, k) "
                    "dominance rule; null where not computed)",
                ),
            ),
            "the contributors behind euro and km cells, for the dominance and minimum-units rules",
            optional=True,  # only when a magnitude indicator has its sources
        ),
        Dataset(
            "community_summary",
            "restricted/community_summary.csv",
            out,
            restricted,
            "csv",
            _schema(*_COMMUNITY_COLUMNS),
            "the communities of five or more members, no person in it (also an MLflow artifact)",
            optional=True,
            strict_columns=False,
            column_patterns=(_SHARE_PATTERN,),
        ),
        Dataset(
            "community_disruption",
            "restricted/community_disruption.csv",
            out,
            restricted,
            "csv",
            _schema(
                ("community_id", LONG, "community, as in communities.parquet"),
                ("removed", LONG, "suspects removed so far, from 0"),
                ("lcc_share", DOUBLE, "largest connected component relative to the start"),
            ),
            "sequential betweenness removal inside the 20 largest communities of five or more "
            "(also an MLflow artifact)",
            optional=True,
        ),
        Dataset(
            "rejects",
            "restricted/rejects/<table>",
            out,
            restricted,
            "parquet",
            None,
            "rejected input rows as delivered (contract columns as text) with reject_rule",
            optional=True,  # one per input table present
            table_schema=_rejects_schema,
        ),
        Dataset(
            "community_lineage",
            "restricted/community_lineage.parquet",
            out,
            restricted,
            "parquet",
            _schema(
                (
                    "community_id",
                    LONG,
                    "community of this run, as in communities.parquet (null: ended)",
                ),
                (
                    "previous_community_id",
                    LONG,
                    "community of the --previous run (null: new, without predecessor)",
                ),
                (
                    "jaccard",
                    DOUBLE,
                    "members in both over members in either (null: new without predecessor, ended)",
                ),
                (
                    "change",
                    STRING,
                    "kept (the previous id, Jaccard >= network.lineage_threshold), split, "
                    "merged, new or ended (zicht.models.lineage)",
                ),
            ),
            "with --previous: each community's predecessor(s) and how it changed (kept, "
            "split, merged, new, ended)",
            optional=True,  # with --previous only
        ),
        # ------------------------------------------------------------- export/
        *[
            Dataset(
                f"indicators_{level}",
                f"export/indicators_{level}.csv",
                out,
                partner,
                "csv",
                _schema(*_EXPORT_COLUMNS),
                f"the {level} table: one row per (area, year, indicator) of the catalogue, "
                "suppressed ones included",
            )
            for level in ("buurt", "wijk", "gemeente")
        ],
        Dataset(
            "codebook",
            "export/codebook.csv",
            out,
            partner,
            "csv",
            _schema(*_CODEBOOK_COLUMNS),
            "one row per published indicator, generated from the catalogue, with its "
            "definition in English and Dutch (definition_nl)",
        ),
        Dataset(
            "trends",
            "export/trends.csv",
            out,
            partner,
            "csv",
            _schema(*_TREND_EXPORT_COLUMNS),
            "per area and count, rate or share: last year's change and interval and the trend "
            "over the period, computed from the published values only, where every year is "
            "published",
        ),
        Dataset(
            "disclosure_report",
            "export/disclosure_report.json",
            out,
            partner,
            "json",
            None,
            "the rules applied, per level how many cells were published and suppressed, and "
            "the audit's verdict",
            readers="partners, auditors",
        ),
        Dataset(
            "workbook",
            "export/indicators.xlsx",
            out,
            partner,
            "xlsx",
            None,
            "Dutch workbook: one wide sheet per level, the codebook and the CBS symbols",
        ),
        Dataset(
            "report",
            "export/report.html",
            out,
            partner,
            "html",
            None,
            "the self-contained report (offline, inline script): map per phenomenon, "
            "indicator, year and level, trends, definitions",
        ),
        Dataset(
            "geo",
            "export/geo/<level>.geojson",
            out,
            partner,
            "geojson",
            None,
            "the published values with the areas' outlines in WGS84 (RFC 7946), one feature "
            "per area and year, for QGIS; only where the areas carry geometry",
            optional=True,
        ),
        Dataset(
            "partner_package",
            "export/partners/<partner>/",
            out,
            partner,
            "folder",
            None,
            "one partner's package (export.partners): the files below, cut to its gemeenten; "
            "every cell is the national export's cell",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_indicators",
            "export/partners/<partner>/indicators_<level>.csv",
            out,
            partner,
            "csv",
            _schema(*_EXPORT_COLUMNS),
            "the partner's buurt, wijk and gemeente tables: the national rows of its gemeenten",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_codebook",
            "export/partners/<partner>/codebook.csv",
            out,
            partner,
            "csv",
            _schema(*_CODEBOOK_COLUMNS),
            "the national codebook",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_trends",
            "export/partners/<partner>/trends.csv",
            out,
            partner,
            "csv",
            _schema(*_TREND_EXPORT_COLUMNS),
            "the national trend rows of the partner's gemeenten",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_disclosure_report",
            "export/partners/<partner>/disclosure_report.json",
            out,
            partner,
            "json",
            None,
            "the rules, the package's cells per level, the national audit's verdict and why "
            "the package needs no audit of its own",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_workbook",
            "export/partners/<partner>/indicators.xlsx",
            out,
            partner,
            "xlsx",
            None,
            "the partner's workbook",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_report",
            "export/partners/<partner>/report.html",
            out,
            partner,
            "html",
            None,
            "the partner's report",
            optional=True,
            readers="one partner",
        ),
        Dataset(
            "partner_geo",
            "export/partners/<partner>/geo/<level>.geojson",
            out,
            partner,
            "geojson",
            None,
            "the partner's map files (where the areas carry geometry)",
            optional=True,
            readers="one partner",
        ),
        # ------------------------------------------------------------- top level
        Dataset(
            "manifest",
            "manifest.json",
            out,
            everyone,
            "json",
            None,
            "what the run read (rows read = used + rejected + excluded, sha256), wrote and "
            "skipped, and why",
        ),
        Dataset(
            "log",
            "zicht.log",
            out,
            restricted,
            "log",
            None,
            "the run's log (also in the MLflow run), secrets redacted",
        ),
        Dataset(
            "output_marker",
            ".zicht-output",
            out,
            everyone,
            "json",
            None,
            "marker (run id, zicht version, when written): zicht replaces a non-empty output "
            "folder only when it carries it",
            readers="zicht",
        ),
        # ------------------------------------------------------------- stage hand-overs
        Dataset(
            "validated",
            "validated/<table>",
            "store",
            "store",
            "parquet",
            None,
            "every input row: typed contract columns, their raw text, reject_rule and is_excluded",
            optional=True,
            table_schema=_validated_schema,
        ),
        Dataset(
            "keys",
            "keys",
            "store",
            "store",
            "parquet",
            _schema(
                ("key", LONG, "xxhash64 of the pseudonym: the store's integer key for it"),
                ("pseudonym", STRING, "the pseudonym as delivered"),
            ),
            "the suspects' pseudonyms and their surrogate keys (zicht.features.keys "
            "NAMED_COLUMNS): the way back to the pseudonym for restricted/network_members",
        ),
        Dataset(
            "pseudonym_keys",
            "pseudonym_keys",
            "store",
            "store",
            "parquet",
            _schema(
                ("key", LONG, "xxhash64 of a pseudonym of the input (any kind, any table)"),
                ("collides", BOOLEAN, "two different pseudonyms share this key (ingest stops)"),
            ),
            "every distinct key of every pseudonym column of the input, rejected rows too "
            "(zicht.features.keys key_set): the collision check's result, and what the leak "
            "guard probes for the store's keys",
        ),
        Dataset(
            "incidents_located",
            "incidents_located",
            "store",
            "store",
            "parquet",
            _schema(
                ("incident_id", LONG, "incident key (xxhash64 of the pseudonym)"),
                ("incident_date", DATE, "date of the offence"),
                ("year", INTEGER, "year of incident_date"),
                ("crime_code", STRING, "police incident code or CBS class, as delivered"),
                ("crime_class", STRING, "CBS crime class"),
                ("buurt_code", STRING, "buurt: given, else the address's, else the point's"),
                ("wijk_code", STRING, "wijk of the buurt"),
                ("gemeente_code", STRING, "gemeente of the buurt"),
                (
                    "x",
                    DOUBLE,
                    "RD metres: the point when given, else the address's buurt "
                    "centroid, else the buurt centroid",
                ),
                ("y", DOUBLE, "RD metres, as x"),
                (
                    "phenomena",
                    T.ArrayType(STRING),
                    "phenomenon keys the incident belongs to (may be empty)",
                ),
            ),
            "accepted incidents placed in their buurt, wijk and gemeente, with their phenomena",
        ),
        Dataset(
            "residence",
            "residence",
            "store",
            "store",
            "parquet",
            _schema(
                ("person_id", LONG, "person key (xxhash64 of the pseudonym)"),
                ("year", LONG, "year of the period"),
                ("buurt_code", STRING, "buurt of residence that year"),
                ("wijk_code", STRING, "wijk of residence"),
                ("gemeente_code", STRING, "gemeente of residence"),
                ("birth_year", LONG, "year of birth"),
                ("address_id", LONG, "address key of the snapshot the year uses"),
                ("household_id", LONG, "household key of that snapshot"),
                ("registered_since", DATE, "registration at that address"),
            ),
            "where each registered person lives in each year of the period",
            optional=True,  # needs persons and addresses
        ),
        Dataset(
            "signals_located",
            "signals_located",
            "store",
            "store",
            "parquet",
            _schema(
                ("signal_id", LONG, "signal key (xxhash64 of the pseudonym)"),
                ("buurt_code", STRING, "buurt: given, else the address's"),
                ("year", INTEGER, "year of signal_date"),
                ("category", STRING, "signal category"),
                (
                    "phenomena",
                    T.ArrayType(STRING),
                    "phenomenon keys whose signal categories hold the category",
                ),
            ),
            "accepted signals with their buurt, year and phenomena",
            optional=True,  # needs signals
        ),
        Dataset(
            "cooffending_edges",
            "cooffending_edges",
            stage,
            restricted,
            "parquet",
            _schema(
                ("person_id_a", LONG, "suspect key, the smaller of the two"),
                ("person_id_b", LONG, "suspect key, the larger of the two"),
                ("n_incidents", LONG, "incidents both are registered for"),
                ("last_date", DATE, "latest shared incident"),
                ("weight", DOUBLE, "recency-weighted count of shared incidents"),
                ("layer", STRING, "co_offending"),
            ),
            "undirected co-offending ties: two suspects registered for the same incident",
            optional=True,  # needs suspects
        ),
        Dataset(
            "network_members_keyed",
            "network_members_keyed",
            stage,
            restricted,
            "parquet",
            _schema(
                ("person_id", LONG, "suspect key (the store's xxhash64 of the pseudonym)"),
                *_MEMBER_MEASURES,
            ),
            "network_members on the store's keys (the stage joins on them), cut once",
            optional=True,  # needs suspects
        ),
        Dataset(
            "network_counts",
            "network_counts",
            stage,
            restricted,
            "parquet",
            _schema(*_LONG_COUNTS),
            "area counts from the networks: co-offending ties (local or not) and community "
            "reach, per level",
            optional=True,  # needs suspects and residence
        ),
        Dataset(
            "youth_ties",
            "youth_ties",
            stage,
            restricted,
            "parquet",
            _schema(
                ("buurt_code", STRING, "buurt of the young residents"),
                ("year", LONG, "calendar year"),
                (
                    "indicator",
                    STRING,
                    "context.youth_ties_<layer> or context.youth_ties_to_suspects_<layer>",
                ),
                ("value", DOUBLE, "the count of ties"),
            ),
            "young residents' ties per person_links layer, and those to suspects, per buurt",
            optional=True,  # needs person_links, persons, addresses and suspects
        ),
        Dataset(
            "indicator_checkpoint",
            "indicators/<checkpoint>",
            stage,
            restricted,
            "parquet",
            None,  # plan cuts of one function, read back only by it
            "plan cuts inside the indicator stage (suspect_homes, company_seats, sales_located, "
            "counts, wide)",
            optional=True,
        ),
        Dataset(
            "store_state",
            "store.json",
            "store",
            "store",
            "json",
            None,
            "the store's state, written last: fingerprint, input, accounting, period, "
            "reference date, flags, when made and last used",
        ),
        # ------------------------------------------------------------- beside the output
        Dataset(
            "release_register",
            "zicht_releases.json",
            beside,
            restricted,
            "json",
            None,
            "one entry per release: input hashes, disclosure rules, phenomenon definitions, forced",
        ),
        Dataset(
            "release_pattern",
            "zicht_releases/<release_id>",
            beside,
            restricted,
            "parquet",
            _schema(
                *_CELL_KEY,
                (
                    "status",
                    STRING,
                    "published status: ok, suppressed, not_covered or not_applicable",
                ),
            ),
            "each release's published pattern, for joint audits of later releases",
        ),
    )


CATALOGUE: Mapping[str, Dataset] = MappingProxyType({d.name: d for d in _datasets()})


def get(name: str) -> Dataset:
    """The dataset called ``name`` (``rejects/<table>`` and ``validated/<table>`` too)."""
    base, _, table = name.partition("/")
    if base in CATALOGUE:
        d = CATALOGUE[base]
        if table:
            return d.for_table(table)
        return d
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOGUE))}")


def rejects(table: str) -> Dataset:
    """``restricted/rejects/<table>``: one input table's rejected rows."""
    return CATALOGUE["rejects"].for_table(table)


def validated(table: str) -> Dataset:
    """``<stage>/validated/<table>``: one input table after validation."""
    return CATALOGUE["validated"].for_table(table)


def partner_datasets() -> tuple[Dataset, ...]:
    return tuple(d for d in CATALOGUE.values() if d.audience == "partner")


def restricted_datasets() -> tuple[Dataset, ...]:
    return tuple(d for d in CATALOGUE.values() if d.audience == "restricted")


# --------------------------------------------------------------------------- schema checks


def _bare(data_type: T.DataType) -> T.DataType:
    """The type without nullability and metadata, for comparison."""
    if isinstance(data_type, T.ArrayType):
        return T.ArrayType(_bare(data_type.elementType), True)
    if isinstance(data_type, T.MapType):
        return T.MapType(_bare(data_type.keyType), _bare(data_type.valueType), True)
    if isinstance(data_type, T.StructType):
        return T.StructType([T.StructField(f.name, _bare(f.dataType)) for f in data_type])
    return data_type


def _type_name(data_type: T.DataType) -> str:
    if isinstance(data_type, (T.ArrayType, T.MapType, T.StructType)):
        return data_type.simpleString()
    return data_type.typeName()


def schema_problems(dataset: Dataset, df_schema: T.StructType) -> list[str]:
    """What differs between a frame's schema and the declaration (empty: it fits).

    Names and types are compared; order, nullability and metadata are not."""
    if dataset.table_schema is not None:
        raise ValueError(f"{dataset.location}: a per-table template; check for_table(table)")
    if dataset.schema is None:
        raise ValueError(f"{dataset.location}: {dataset.format} file, no schema declared")
    declared = {f.name: f.dataType for f in dataset.schema.fields}
    problems: list[str] = []
    seen: set[str] = set()
    for f in df_schema.fields:
        if f.name in seen:
            problems.append(f"column {f.name} appears twice")
            continue
        seen.add(f.name)
        want = declared.get(f.name)
        label = ""
        if want is None and not dataset.strict_columns:
            pattern = next((p for p in dataset.column_patterns if p.matches(f.name)), None)
            if pattern is not None:
                want, label = pattern.data_type, f" (pattern {pattern.template})"
        if want is None:
            problems.append(f"unexpected column {f.name} ({_type_name(f.dataType)})")
        elif _bare(f.dataType) != _bare(want):
            problems.append(
                f"column {f.name} is {_type_name(f.dataType)}, declared {_type_name(want)}{label}"
            )
    problems += [
        f"column {name} is missing (declared {_type_name(t)})"
        for name, t in declared.items()
        if name not in seen
    ]
    return problems


def check_schema(dataset: Dataset, df_schema: T.StructType) -> None:
    """Raise :class:`SchemaMismatch` naming the dataset and every column that differs."""
    problems = schema_problems(dataset, df_schema)
    if problems:
        raise SchemaMismatch(dataset.location, problems)


def with_descriptions(df: DataFrame, dataset: Dataset) -> DataFrame:
    """``df`` checked against ``dataset`` and with each column's description in its metadata
    (``comment``), so the Parquet file carries them; no action, the columns keep their order."""
    from pyspark.sql import functions as F

    check_schema(dataset, df.schema)
    return df.select(
        *[
            F.col(f"`{f.name}`").alias(
                f.name, metadata={**f.metadata, "comment": dataset.description_of(f.name)}
            )
            for f in df.schema.fields
        ]
    )


# --------------------------------------------------------------------------- documentation


def markdown_table(audience: str | None = None, *, planned: bool = False) -> str:
    """The output folder's files as CONTRACT.md section 3 and the README list them:
    ``| path | for | content |``, one row per dataset of the ``output`` root (of one
    audience, when given; planned ones only with ``planned=True``, marked so)."""
    if audience is not None and audience not in AUDIENCES:
        raise ValueError(f"audience {audience!r} is not one of {AUDIENCES}")
    rows = ["| path | for | content |", "| --- | --- | --- |"]
    for d in CATALOGUE.values():
        if d.root != "output" or (audience is not None and d.audience != audience):
            continue
        if d.planned and not planned:
            continue
        content = d.description + (" (planned)" if d.planned else "")
        rows.append(f"| `{d.location}` | {d.readers or READERS[d.audience]} | {content} |")
    return "\n".join(rows) + "\n"
