"""The registry of count indicators and methods: what the catalogue may name, and how it is made.

Reads and writes nothing, and imports no Spark: :mod:`zicht.features.settings` checks every
entry of ``conf/base/indicators.yaml`` (and of a ``--conf`` overlay) against it when the
settings load, before a SparkSession exists, and :mod:`zicht.features.indicators` computes the
registered counts from it.

A **count** is registered with its key pattern (``{P}``: every configured phenomenon, ``{L}``:
every person_links layer), the *pass* that computes it, the tables it needs, how it behaves
along the area hierarchy and where its units are placed:

- ``pass_``: the pass that computes it (:data:`PASSES`): the rows of one source table at one
  grain, made by a function registered in ``zicht.features.indicators.PASS_FUNCTIONS``; every
  count of a pass is computed in the same aggregation over its rows.
- ``expr``: a declarative conditional aggregate, Spark SQL over the pass's rows
  (``count_if(array_contains(phenomena, '{P}'))``; other names in braces are filled in from
  ``patterns``).
- ``rollup``: ``additive`` (a parent is the sum of its children: computed at the placement
  level and summed up the hierarchy), ``distinct`` (distinct persons who can count in several
  areas, sub-additive: computed exactly at each level) or ``local`` (units that are local to an
  area, super-additive: a suspect who lives in one buurt and offends in the next is local to
  the wijk, not to either buurt; computed at each level).
- ``placement``: the level an additive count's units are placed at (``buurt``; the vintages
  issue places some at wijk or gemeente).
- ``register``: the count needs the population register; with an extract in ``persons``
  (CONTRACT.md, *Population*) it is skipped with that reason.

A **method** computes a value that is neither a count nor numerator / denominator (median
distance, smoothed rate, index relative to the gemeente, composite, ...), with the catalogue
fields it needs. A rate or share without a method is ``numerator / denominator`` times its
unit's scale (:mod:`zicht.features.units`).

Adding an indicator (DEVELOPERS.md shows it step by step): one :class:`Count` line here (an
``expr`` over an existing pass's rows, or a new pass and its row function) and its entry in
``indicators.yaml``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zicht.features.vocabulary import LINK_LAYERS  # the contract's person_links layers

# The tables of the data contract (CONTRACT.md section 1), the column alternatives a source may
# name, and the network stage's counts.
CONTRACT_TABLES = (
    "areas",
    "incidents",
    "addresses",
    "persons",
    "suspects",
    "companies",
    "company_roles",
    "signals",
    "person_links",
    "property_transactions",
    "household_income",
    "area_changes",
    "unusual_transactions",
    "ownership",
)
SOURCE_NAMES = (*CONTRACT_TABLES, "areas.inhabitants", "areas.inhabitants_12plus", "network")
ROLLUPS = ("additive", "distinct", "local")


@dataclass(frozen=True)
class Pass:
    """One aggregation over one source at one grain: ``buurt`` (rolled up with grouping sets)
    or ``level`` (computed at each level)."""

    name: str
    grain: str
    doc: str


PASSES: Mapping[str, Pass] = {
    p.name: p
    for p in (
        Pass("incidents", "buurt", "incidents_located, one row per incident"),
        Pass("residence", "buurt", "residence, one row per registered person and year"),
        Pass("dwellings", "buurt", "residence per dwelling and year: adults registered there"),
        Pass("suspect_residence", "buurt", "suspects per year at their residence"),
        Pass("suspect_households", "buurt", "young residents sharing a household with a suspect"),
        Pass("signals", "buurt", "signals_located, one row per signal"),
        Pass("company_addresses", "buurt", "companies active per address and year"),
        Pass("sales", "buurt", "sales per address and year, with the resale window"),
        Pass("purchase_income", "buurt", "person purchases with the buyer household's income"),
        Pass("addresses", "buurt", "addresses (no year: the same every year)"),
        Pass("areas", "buurt", "areas (land area; inhabitants when persons is not the register)"),
        Pass("youth_ties", "buurt", "the network stage's youth ties per layer"),
        Pass("incident_suspects", "level", "suspects of the incidents in an area, per level"),
        Pass("directors", "level", "directors of many active companies, per level"),
        Pass("journeys", "level", "suspect-incident pairs with a residence, per level"),
        Pass("network", "level", "the network stage's rootedness counts, per level"),
        # issue 19 (zicht.features.themes)
        Pass("fiu", "level", "suspicious transactions' subjects placed in an area, per level"),
        Pass("ownership_dwellings", "buurt", "dwellings with an ownership period in the year"),
        Pass("sector_companies", "buurt", "company seats per sector (sectors:) and year"),
        Pass("logies_residence", "buurt", "residents registered at a logiesfunctie address"),
    )
}


@dataclass(frozen=True)
class Count:
    """A registered count: ``expr`` is a Spark SQL aggregate over the rows of ``pass_``.

    ``fallback``: ``(pass, expr)`` used instead when ``persons`` is absent or an extract (the
    denominators from ``areas``). In ``expr``, ``{P}`` is the phenomenon, ``{L}`` the layer,
    ``{key}`` the count's own key, other names in braces fields of ``patterns``.
    """

    pattern: str
    pass_: str
    tables: tuple[str, ...]
    expr: str
    rollup: str = "additive"
    placement: str = "buurt"
    register: bool = False
    fallback: tuple[str, str] | None = None

    @property
    def additive(self) -> bool:
        return self.rollup == "additive"


def _c(pattern: str, pass_: str, tables: str, expr: str, **kw: Any) -> Count:
    return Count(pattern, pass_, tuple(tables.split()), expr, **kw)


_HAS_P = "array_contains(phenomena, '{P}')"
_YOUNG = "age BETWEEN {youth_min_age} AND {youth_max_age}"
_NETWORK = "sum(if(indicator = '{key}', value, NULL))"  # a count the network stage made
_NET_TABLES = "incidents suspects persons network"
_LINK_TABLES = "person_links persons suspects"

COUNTS: tuple[Count, ...] = (
    # placed in a buurt, summed up the hierarchy
    _c("{P}.incidents", "incidents", "incidents", f"count_if({_HAS_P})"),
    _c("context.inhabitants", "residence", "persons|areas.inhabitants", "count(1)",
       fallback=("areas", "sum(inhabitants)")),
    _c("context.inhabitants_12plus", "residence", "persons|areas.inhabitants_12plus",
       "count_if(age >= 12)", fallback=("areas", "sum(inhabitants_12plus)")),
    _c("context.households", "residence", "persons", "count(DISTINCT household_id)",
       register=True),
    # registered at the current address less than a year before the year's end
    _c("context.recent_movers", "residence", "persons",
       "count_if(registered_since > make_date(year - 1, 12, 31) "
       "AND registered_since <= make_date(year, 12, 31))", register=True),
    _c("context.young_residents", "residence", "persons", f"count_if({_YOUNG})", register=True),
    _c("mensenhandel.overbewoning_dwellings", "dwellings", "persons addresses",
       "count_if(is_dwelling AND adults >= {min_adults_per_dwelling})", register=True),
    _c("{P}.resident_suspects", "suspect_residence", "incidents suspects persons",
       f"count_if({_HAS_P})"),
    # suspects of any located incident, in a phenomenon or not
    _c("context.young_suspects", "suspect_residence", "persons suspects", f"count_if({_YOUNG})",
       register=True),
    _c("context.young_in_suspect_household", "suspect_households", "persons suspects",
       "count(DISTINCT person_id)", register=True),
    _c("{P}.signals", "signals", "signals", f"count_if({_HAS_P})"),
    _c("context.companies", "company_addresses", "companies addresses", "sum(active)"),
    _c("context.companies_churn_window", "company_addresses", "companies addresses",
       "sum(active_window)"),
    _c("witwassen.company_churn", "company_addresses", "companies addresses", "sum(churned)"),
    _c("witwassen.cash_intensive_companies", "company_addresses", "companies addresses",
       "sum(cash_active)"),
    _c("vastgoedfraude.many_company_addresses", "company_addresses", "companies addresses",
       "count_if(active >= {min_companies_per_address})"),
    _c("vastgoedfraude.companies_at_many_company_addresses", "company_addresses",
       "companies addresses", "sum(if(active >= {min_companies_per_address}, active, 0))"),
    _c("vastgoedfraude.purchases", "sales", "property_transactions addresses", "sum(sales)"),
    _c("vastgoedfraude.non_person_purchases", "sales", "property_transactions addresses",
       "sum(non_person_sales)"),
    _c("vastgoedfraude.doorsluiswoningen", "sales", "property_transactions addresses",
       "count_if(is_dwelling AND window_sales >= {min_resales})"),
    _c("witwassen.person_purchases_with_income", "purchase_income",
       "property_transactions persons household_income addresses", "count(1)", register=True),
    _c("witwassen.unexplained_purchases", "purchase_income",
       "property_transactions persons household_income addresses",
       "count_if(price_eur > {max_price_to_income} * disposable_income_eur)", register=True),
    _c("context.addresses", "addresses", "addresses", "count(1)"),
    _c("context.dwellings", "addresses", "addresses", "count_if(use_type = 'woonfunctie')"),
    _c("context.business_units", "addresses", "addresses",
       "count_if(use_type <> 'woonfunctie')"),
    _c("context.woz_units", "addresses", "addresses", "count(woz_value_eur)"),
    _c("context.youth_ties_{L}", "youth_ties", _LINK_TABLES, _NETWORK, register=True),
    _c("context.youth_ties_to_suspects_{L}", "youth_ties", _LINK_TABLES, _NETWORK,
       register=True),
    # at each level
    _c("{P}.suspects", "incident_suspects", "incidents suspects", f"count_if({_HAS_P})",
       rollup="distinct"),
    _c("{P}.local_suspects", "incident_suspects", "incidents suspects persons",
       f"count_if({_HAS_P} AND is_local)", rollup="local"),
    _c("{P}.repeat_suspects", "incident_suspects", "incidents suspects",
       f"count_if({_HAS_P} AND array_contains(repeat_phenomena, '{{P}}'))", rollup="distinct"),
    _c("witwassen.many_company_directors", "directors", "companies company_roles addresses",
       "count(DISTINCT person_id)", rollup="distinct"),
    # pairs are placed at the incident's buurt (additive); the pass makes them at each level
    # together with the median distance over them
    _c("{P}.journey_pairs", "journeys", "incidents suspects persons",
       "count_if(phenomenon = '{P}')"),
    _c("network.cooffending_ties", "network", _NET_TABLES, _NETWORK, rollup="distinct"),
    _c("network.local_cooffending_ties", "network", _NET_TABLES, _NETWORK, rollup="local"),
    _c("network.resident_community_members", "network", _NET_TABLES, _NETWORK,
       rollup="distinct"),
    _c("network.resident_members_active_elsewhere", "network", _NET_TABLES, _NETWORK,
       rollup="distinct"),
    # issue 19: FIU-NL, ownership, sectors ({S}: every sector of the sectors: catalogue)
    _c("witwassen.fiu_suspicious_transactions", "fiu", "unusual_transactions addresses",
       "count(DISTINCT transaction_id)", rollup="distinct"),
    _c("witwassen.fiu_subjects", "fiu", "unusual_transactions addresses",
       "count(DISTINCT subject_id)", rollup="distinct"),
    _c("vastgoedfraude.unknown_owner_dwellings", "ownership_dwellings", "ownership addresses",
       "count_if(is_unknown_owner)"),
    _c("vastgoedfraude.unexplained_ownership_dwellings", "ownership_dwellings",
       "ownership addresses persons household_income", "count_if(is_unexplained_ownership)",
       register=True),
    _c("sector.{S}.companies", "sector_companies", "companies addresses",
       "count_if(sector = '{S}' AND active)"),
    _c("sector.{S}.new_companies", "sector_companies", "companies addresses",
       "count_if(sector = '{S}' AND is_new)"),
    _c("sector.{S}.ended_companies", "sector_companies", "companies addresses",
       "count_if(sector = '{S}' AND is_ended)"),
    _c("sector.{S}.companies_with_suspect", "sector_companies",
       "companies addresses company_roles incidents suspects",
       "count_if(sector = '{S}' AND has_suspect)"),
    _c("sector.vakantieparken.residents_logies", "logies_residence", "persons addresses",
       "count(1)", register=True),
)  # fmt: skip


@dataclass(frozen=True)
class Magnitude:
    """A registered euro sum (method ``magnitude_sum``): ``total`` and ``top_share`` (the
    largest contributor's share, for the (1, k) dominance rule) are Spark SQL aggregates over
    the rows of ``pass_``; the catalogue entry's denominator counts the contributors (the
    minimum-units rule)."""

    key: str
    pass_: str
    total: str
    top_share: str


MAGNITUDES: Mapping[str, Magnitude] = {
    m.key: m
    for m in (
        Magnitude(
            "witwassen.fiu_amount_eur",
            "fiu",
            "sum(amount_share_eur)",
            "max(subject_amount_eur) / nullif(sum(amount_share_eur), 0)",
        ),
    )
}


@dataclass(frozen=True)
class Method:
    """A value computed from other indicators; ``needs``: the catalogue fields it reads."""

    name: str
    needs: tuple[str, ...]
    doc: str


METHODS: Mapping[str, Method] = {
    m.name: m
    for m in (
        Method("median_distance_km", ("denominator",), "median journey to crime per level"),
        Method("mean_woz", ("denominator",), "sum of WOZ values / addresses with one"),
        Method("density_per_km2", ("numerator",), "numerator / land area in km2"),
        Method("eb_smoothed", ("numerator", "denominator"), "Marshall's empirical Bayes"),
        Method("relative_gemeente", ("numerator", "denominator"), "rate / the gemeente's"),
        Method("relative_study_area", ("numerator", "denominator"), "rate / the study area's"),
        Method("composite", ("components", "weights"), "weighted mean of percentile ranks"),
        Method("composite_class", ("components",), "the composite in nine bands"),
        Method("magnitude_sum", ("denominator",), "a registered euro sum (MAGNITUDES)"),
    )
}
COMPOSITE_METHODS = ("composite", "composite_class")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = re.escape(pattern).replace(r"\{P\}", r"(?P<P>[a-z][a-z0-9_]*)")
    body = body.replace(r"\{L\}", "(?P<L>" + "|".join(LINK_LAYERS) + ")")
    body = body.replace(r"\{S\}", r"(?P<S>[a-z][a-z0-9_]*)")
    return re.compile(f"^{body}$")


_REGEX = [(c, _pattern_regex(c.pattern)) for c in COUNTS]


def find_count(key: str, phenomena: Iterable[str] = ()) -> Count | None:
    """The registered count a catalogue key is, or None (``{P}`` only for configured phenomena)."""
    known = set(phenomena)
    for count, regex in _REGEX:
        m = regex.match(key)
        if m and ("P" not in m.groupdict() or m.group("P") in known):
            return count
    return None


def expand(count: Count, phenomena: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(key, phenomenon, layer)`` for every instance of a registered count."""
    phs = list(phenomena) if "{P}" in count.pattern else [""]
    layers = list(LINK_LAYERS) if "{L}" in count.pattern else [""]
    return [
        (count.pattern.replace("{P}", p).replace("{L}", layer), p, layer)
        for p in phs
        for layer in layers
    ]


def closest(name: str, valid: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest valid name, or an empty string."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def count_names(phenomena: Iterable[str]) -> list[str]:
    """Every key the registry can make for these phenomena (for ``did you mean``)."""
    out: list[str] = []
    phs = list(phenomena)
    for c in COUNTS:
        out += [k for k, _, _ in expand(c, phs)]
    return out
