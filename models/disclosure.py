"""Statistical disclosure control of the indicator cells before they go to partners.

Reads the long indicator cells (``level, area_code, year, indicator, value, status``, status in
ok / not_applicable / not_covered) and the area hierarchy (one row per buurt with its wijk and
gemeente); writes nothing. Returns the partner table (status ok / suppressed / not_covered /
not_applicable, values rounded per unit) and the restricted audit (one row per cell: why it is
published or suppressed, and for suppressed counts the feasible interval an attacker can derive).

Rules follow ``../shared/CONTRACT.md`` section 3, "Disclosure rules":

- primary: a count in 1..min_count-1 is suppressed (0 is published); a rate, share or index
  whose numerator or denominator count is in 1..min-1 is suppressed; a magnitude (euro, km) is
  suppressed when the optional contributor data say it is dominated ((n, k) rule) or rests on
  fewer than ``min_units`` units; no minimum or maximum is ever published (such a spec is
  refused).
- inheritance: a rate, share or index is suppressed whenever a count it is computed from (its
  numerator or denominator, same area and year) is suppressed, primary or secondary.
- secondary: along buurt within wijk within gemeente, per count indicator and year, no
  suppressed count may be recoverable by subtraction (a published parent with exactly one
  hidden child) or by addition (a hidden parent whose children are all published). Complements
  are chosen greedily and deterministically (smallest published nonzero value, then area code),
  then an audit checks the whole pattern and more complements are added until it passes.
- linked tables: a phenomenon whose incident codes and classes (or signal categories) are a
  subset of another's (:func:`linked_indicators`) gives counts whose difference is a count too;
  such indicators are suppressed as one family per gemeente and year, with the difference as an
  always-hidden cell that must be protected when it is 1..min_count-1.
- audit: the classic attacker linear programme (Willenborg and de Waal, *Elements of
  Statistical Disclosure Control*, 2001, ch. 5; Hundepool et al., *Statistical Disclosure
  Control*, 2012, sec. 4.2): variables are the suppressed counts, constraints are the additive
  relations between published and hidden cells, and min/max of each variable (integers relaxed
  to reals, HiGHS) give its feasible interval; a cell is protected when the interval is at
  least ``protection_width`` wide. Where the hidden cells form an acyclic system the interval
  follows without the LP, exactly, from interval propagation (the certificate of
  :class:`_GroupAudit`, tested against the LP in ``tests/test_disclosure_certificate.py``);
  the LP is solved only for the rest.

Not every count is additive: distinct suspects of incidents *in* an area are sub-additive (one
person active in two buurten counts once in the wijk) and local suspects super-additive. The
relation between a parent and its children is therefore read from the data: ``=`` where the
parent equals the sum of its children, else the inequality that holds. Using the relation that
holds is conservative: an attacker may know it, and it only narrows the feasible intervals.
Rates and shares are not additive at all; they are protected by inheritance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.regions import REFERENCE_LEVELS, REGION, STUDY_AREA, STUDY_AREA_CODE, Regions
from zicht.features.settings import UNITS, DisclosureSettings, IndicatorSpec, Phenomenon

LEVELS = ("buurt", "wijk", "gemeente")
SUPPRESSED_REASONS = ("primary", "inherited", "secondary")
LINKED = "linked_difference"  # audit-only rows: broad minus narrow of two linked indicators
REASONS = ("published", *SUPPRESSED_REASONS, "not_applicable", "not_covered", LINKED)
PUBLISHED_STATUSES = ("ok", "suppressed", "not_covered", "not_applicable")

# Decimals of the published value per unit (contract section 3: counts and euros whole, rates
# per 1000 and km one decimal, shares three, index two).
DECIMALS: Mapping[str, int] = {
    "count": 0,
    "rate": 1,
    "share": 3,
    "euro": 0,
    "km": 1,
    "index": 2,
    "class": 0,
}
DERIVED_UNITS = (
    "rate",
    "share",
    "index",
    "class",
)  # computed from counts: primary on inputs, inheritance
MAGNITUDE_UNITS = ("euro", "km")  # (n, k) dominance and min_units need contributor data

# The restricted audit table, declared once (one line per column).
AUDIT_COLUMNS: Mapping[str, str] = {
    "level": "buurt, wijk or gemeente",
    "area_code": "CBS code of the area",
    "year": "calendar year",
    "indicator": "indicator key of the catalogue; BROAD-NARROW for a linked difference row",
    "unit": "unit of the indicator (count, rate, share, euro, km, index)",
    "status": "published status: ok, suppressed, not_covered or not_applicable",
    "reason": "published, primary, inherited, secondary, not_applicable, not_covered, or "
    "linked_difference (audit only: the never-published count broad minus narrow)",
    "value": "value before rounding and suppression (restricted)",
    "feasible_lower": "suppressed counts: lowest value consistent with the published cells",
    "feasible_upper": "suppressed counts: highest value consistent with the published cells",
    "protected": "suppressed counts: feasible interval at least protection_width wide",
}

_MINMAX = re.compile(r"(^|[._])(min|max|minimum|maximum|minimal|maximal)([._]|$)")
_EPS = 1e-9  # counts are whole numbers held as doubles; relations hold exactly up to this
_TOL = 1e-7  # an LP vertex counts as reaching a bound within this (HiGHS' feasibility tolerance)


class DisclosureError(ValueError):
    """The catalogue asks for something disclosure control cannot publish safely."""


# --------------------------------------------------------------------------- catalogue checks


def check_specs(specs: Sequence[IndicatorSpec]) -> dict[str, IndicatorSpec]:
    """Specs by key, after refusing what the contract forbids or what cannot be protected.

    Refused: a minimum or maximum (never published), an unknown unit, a rate or share without
    both its numerator and denominator, and a numerator or denominator that is not a count of
    the catalogue (inheritance follows counts only, one step).
    """
    by_key: dict[str, IndicatorSpec] = {}
    for spec in specs:
        if spec.key in by_key:
            raise DisclosureError(f"indicator {spec.key}: listed twice")
        by_key[spec.key] = spec
    for spec in specs:
        if _MINMAX.search(spec.key.lower()):
            raise DisclosureError(
                f"indicator {spec.key}: a minimum or maximum is never published (contract 3)"
            )
        if spec.unit not in UNITS:
            raise DisclosureError(f"indicator {spec.key}: unit {spec.unit!r} not one of {UNITS}")
        if spec.unit in ("rate", "share") and not (spec.numerator and spec.denominator):
            raise DisclosureError(
                f"indicator {spec.key}: a {spec.unit} needs numerator and denominator counts"
            )
        for ref in (spec.numerator, spec.denominator):
            if ref is None:
                continue
            if ref not in by_key or by_key[ref].unit != "count":
                raise DisclosureError(
                    f"indicator {spec.key}: {ref!r} must be a count indicator of the catalogue"
                )
    return by_key


def _incident_set_within(a: Phenomenon, b: Phenomenon) -> bool:
    """Every incident of ``a`` is an incident of ``b`` (``zicht.features.link`` rules: a coded
    incident by its code, or by its class for a phenomenon without codes; a class-only
    incident by its class)."""
    if not (a.incident_codes or a.classes):
        return False
    if not set(a.classes) <= set(b.classes):
        return False
    if a.incident_codes:
        return set(a.incident_codes) <= set(b.incident_codes)
    return not b.incident_codes  # both take coded incidents by class


def linked_indicators(
    phenomena: Mapping[str, Phenomenon], specs: Sequence[IndicatorSpec]
) -> list[tuple[str, str]]:
    """``(narrow, broad)`` count indicator pairs whose difference is itself a count.

    Phenomenon A is narrower than B when its incident codes and classes are subsets of B's
    (for the counts built on incidents: incidents and every kind of suspect count, since the
    suspects of A's incidents are suspects of B's), or its signal categories a subset of B's
    (counts built on signals). Which source a count rests on is read from its ``sources``.
    Identical definitions link too (the difference is 0, and an attacker knows it). A count the
    catalogue declares ``within`` another links to it as well. Sorted.
    """
    counts = {s.key: s for s in specs if s.unit == "count" and s.phenomenon}
    pairs: list[tuple[str, str]] = []
    for a_key, a in sorted(phenomena.items()):
        for b_key, b in sorted(phenomena.items()):
            if a_key == b_key:
                continue
            same = (a.incident_codes, a.classes, a.signal_categories) == (
                b.incident_codes,
                b.classes,
                b.signal_categories,
            )
            if same and a_key > b_key:
                continue  # one direction suffices for identical definitions
            by_incidents = _incident_set_within(a, b)
            by_signals = bool(a.signal_categories) and set(a.signal_categories) <= set(
                b.signal_categories
            )
            for key, spec in sorted(counts.items()):
                if spec.phenomenon != a_key:
                    continue
                other = f"{b_key}.{key[len(a_key) + 1 :]}"
                if other not in counts:
                    continue
                sources = {x for src in spec.sources for x in src.split("|")}
                if ("signals" in sources and by_signals) or (
                    "signals" not in sources and "incidents" in sources and by_incidents
                ):
                    pairs.append((key, other))
    # declared subsets within the catalogue (``within``), e.g. inhabitants 12+ < inhabitants
    all_counts = {s.key for s in specs if s.unit == "count"}
    for spec in specs:
        if spec.within and spec.key in all_counts and spec.within in all_counts:
            pairs.append((spec.key, spec.within))
    return sorted(set(pairs))


def _families(links: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Indicator -> family key (its connected component of links, as sorted keys joined by
    "+"); unlinked indicators are absent and form their own family."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    return {x: "+".join(sorted(ms)) for ms in members.values() for x in ms}


# --------------------------------------------------------------------------- pandas: one group


@dataclass(frozen=True)
class Relation:
    """``parent (sense) sum(children)`` between rows of one group, as the data show it.

    ``sense`` is ``eq`` (parent equals the sum), ``le`` (parent below it: sub-additive counts)
    or ``ge`` (parent above it: super-additive counts, or children missing from the table).
    """

    parent: int
    children: tuple[int, ...]
    sense: str


# regio and studiegebied exist only with configured regions (zicht.features.regions)
_LEVEL_RANK = {"buurt": 0, "wijk": 1, "gemeente": 2, REGION: 3, STUDY_AREA: 4}
_SENSES = ("eq", "le", "ge")
_SENSE_CODE = {s: i for i, s in enumerate(_SENSES)}


def _known(pdf: pd.DataFrame) -> np.ndarray:
    """Rows that hold a value a relation can use (status ok and a value)."""
    return ((pdf["status"] == "ok") & pdf["value"].notna()).to_numpy()


def _among(x: np.ndarray, options: Iterable[str]) -> np.ndarray:
    """``np.isin`` for a few strings (numpy sorts object arrays for ``isin``; this compares)."""
    out = np.zeros(len(x), dtype=bool)
    for o in options:
        out |= x == o
    return out


def _map(x: Any, mapping: Mapping[Any, Any], default: Any = None) -> np.ndarray:
    """``mapping[x]`` per element, ``default`` where absent (or missing); one dict lookup per
    distinct value (a gemeente's frame holds a few hundred distinct keys in thousands of
    rows)."""
    codes, uniq = pd.factorize(np.asarray(x, dtype=object))
    table = np.empty(len(uniq) + 1, dtype=object)  # element-wise: values may be tuples
    for i, u in enumerate(uniq):
        table[i] = mapping.get(u, default)
    table[-1] = default
    return table[codes]


def _last_match(keys: np.ndarray, rows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each of ``wanted``, the row of the last ``keys`` entry equal to it (-1 if none):
    what a dict built from ``zip(keys, rows)`` would give."""
    order = np.lexsort((np.arange(len(keys)), keys))
    k, r = keys[order], rows[order]
    last = np.ones(len(k), dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    k, r = k[last], r[last]
    at = np.minimum(np.searchsorted(k, wanted), max(len(k) - 1, 0))
    hit = (k[at] == wanted) if len(k) else np.zeros(len(wanted), dtype=bool)
    return np.where(hit, r[at] if len(k) else -1, -1)


def _ranks(x: Any) -> np.ndarray:
    """Dense rank of each element in sorted order (-1 for a missing one): integer sort keys
    that order like the values themselves."""
    return pd.factorize(np.asarray(x, dtype=object), sort=True)[0].astype(np.int64)


def _level_ranks(levels: np.ndarray) -> np.ndarray:
    return pd.Series(levels, dtype=object).map(_LEVEL_RANK).fillna(-1).to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class _Relations:
    """Relations as arrays: relation ``r`` is ``parent[r] (sense[r]) sum(children[ptr[r]:
    ptr[r + 1]])``, sense an index into ``_SENSES``."""

    parent: np.ndarray
    ptr: np.ndarray
    children: np.ndarray
    sense: np.ndarray

    @staticmethod
    def of(relations: Sequence[Relation]) -> _Relations:
        sizes = [len(r.children) for r in relations]
        return _Relations(
            np.array([r.parent for r in relations], dtype=np.int64),
            np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
            np.array([c for r in relations for c in r.children], dtype=np.int64),
            np.array([_SENSE_CODE[r.sense] for r in relations], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.parent)

    def take(self, lo: int, hi: int, offset: int = 0) -> _Relations:
        """Relations ``lo..hi-1`` with positions shifted by ``-offset``."""
        a, b = int(self.ptr[lo]), int(self.ptr[hi])
        return _Relations(
            self.parent[lo:hi] - offset,
            self.ptr[lo : hi + 1] - a,
            self.children[a:b] - offset,
            self.sense[lo:hi],
        )

    def concat(self, other: _Relations) -> _Relations:
        return _Relations(
            np.concatenate([self.parent, other.parent]),
            np.concatenate([self.ptr, other.ptr[1:] + self.ptr[-1]]),
            np.concatenate([self.children, other.children]),
            np.concatenate([self.sense, other.sense]),
        )

    def as_list(self) -> list[Relation]:
        parent, ptr = self.parent.tolist(), self.ptr.tolist()
        kids, sense = self.children.tolist(), self.sense.tolist()
        return [
            Relation(parent[r], tuple(kids[ptr[r] : ptr[r + 1]]), _SENSES[sense[r]])
            for r in range(len(parent))
        ]


_NO_RELATIONS = _Relations(
    np.empty(0, np.int64), np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
)


def build_relations(pdf: pd.DataFrame) -> list[Relation]:
    """Parent-children relations of one group (one gemeente, indicator and year).

    Positions refer to ``pdf``'s rows (0..n-1). Each wijk is related to its buurten, the
    gemeente to its wijken and, directly, to all its buurten: the last one is implied when every
    wijk is present but catches recoveries across a hidden wijk (and stands in for a missing
    wijk). Cells without a value (not_covered, not_applicable) take part in no relation. Order:
    bottom up (wijk relations first), then area code, so complements are found locally first.
    """
    n = len(pdf)
    return _hierarchy(
        indicator=np.zeros(n, dtype=np.int64),
        family=np.zeros(n, dtype=np.int64),
        levels=pdf["level"].to_numpy(dtype=object),
        codes=pdf["area_code"].to_numpy(dtype=object),
        parents=pdf["parent_code"].to_numpy(dtype=object),
        values=pdf["value"].to_numpy(dtype=float, na_value=np.nan),
        known=_known(pdf),
        gemeenten=pdf["gemeente_code"].to_numpy(dtype=object) if "gemeente_code" in pdf else None,
    ).as_list()


def _hierarchy(
    *,
    indicator: np.ndarray,
    family: np.ndarray,
    levels: np.ndarray,
    codes: np.ndarray,
    parents: np.ndarray,
    values: np.ndarray,
    known: np.ndarray,
    gemeenten: np.ndarray | None = None,
) -> _Relations:
    """:func:`build_relations` for the cells of many indicators at once (``indicator`` and
    ``family`` are integer sort keys; relations never cross an indicator). Ordered by family,
    indicator, then as :func:`build_relations`; children by area code.

    ``gemeenten``: each row's gemeente code, for a group of several gemeenten (configured
    regions): a gemeente is then related to its own buurten, a region to its gemeenten (by
    their parent code), and the study area directly to every gemeente of the group (the
    gemeenten outside a region have it as their parent; those inside are implied through
    their region, and relating all of them at once keeps the study area one relation)."""
    n = len(values)
    kn = np.flatnonzero(known)
    if not len(kn):
        return _NO_RELATIONS
    ids, uniq = pd.factorize(np.concatenate([codes, parents]).astype(object), sort=True)
    cid, pid = ids[:n].astype(np.int64), ids[n:].astype(np.int64)
    m = len(uniq) + 1
    lrank = _level_ranks(levels)
    # known cells by (indicator, area code); the last one wins, as in a dict
    own = pd.Series(kn, index=indicator[kn] * m + cid[kn])
    own = own[~own.index.duplicated(keep="last")]
    kp = kn[pid[kn] >= 0]
    loc = own.index.get_indexer(pd.Index(indicator[kp] * m + pid[kp]))
    child = kp[loc >= 0]
    par = own.to_numpy()[loc[loc >= 0]]
    # the gemeente is related to every buurt of its indicator (and gemeente) directly (this
    # replaces a buurt whose parent code is the gemeente itself); the study area to every
    # gemeente of its indicator
    is_gem = known & (lrank == 2)
    is_top = known & (lrank == 4)
    keep = ~(is_gem[par] & (lrank[child] == 0)) & ~is_top[par]
    child, par = child[keep], par[keep]
    gem_key = indicator
    if gemeenten is not None:
        gid = pd.factorize(np.asarray(gemeenten, dtype=object))[0].astype(np.int64) + 1
        gem_key = indicator * (int(gid.max(initial=0)) + 1) + gid
    for parents_of, children_of, key in (
        (is_gem, known & (lrank == 0), gem_key),
        (is_top, is_gem, indicator),
    ):
        up = np.flatnonzero(parents_of)
        down = np.flatnonzero(children_of)
        if not (len(up) and len(down)):
            continue
        down = down[np.argsort(key[down], kind="stable")]
        first = np.searchsorted(key[down], key[up], "left")
        count = np.searchsorted(key[down], key[up], "right") - first
        within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        child = np.concatenate([child, down[np.repeat(first, count) + within]])
        par = np.concatenate([par, np.repeat(up, count)])
    if not len(child):
        return _NO_RELATIONS
    crank = lrank[child]
    order = np.lexsort((cid[child], -crank, par, cid[par], lrank[par], indicator[par], family[par]))
    par, crank, child = par[order], crank[order], child[order]
    new = np.ones(len(par), dtype=bool)
    new[1:] = (par[1:] != par[:-1]) | (crank[1:] != crank[:-1])
    starts = np.flatnonzero(new)
    parent = par[starts]
    diff = values[parent] - np.add.reduceat(values[child], starts)
    sense = np.where(np.abs(diff) <= _EPS, 0, np.where(diff < 0, 1, 2)).astype(np.int64)
    return _Relations(parent, np.append(starts, len(child)).astype(np.int64), child, sense)


class _GroupAudit:
    """The attacker's constraints of one group, built once; :meth:`intervals` per pattern.

    Cells are positions ``0..n-1``; every relation and every ``child <= parent`` pair that
    holds in the data is a row ``row_lo <= sum(coef * cell) <= row_hi`` over all its cells,
    published or not (a pattern fixes the published ones at their values). The attacker's LP
    (Willenborg and de Waal 2001, ch. 5): the hidden cells are variables ``>= 0``, integers
    relaxed to reals; a hidden cell's feasible interval is its min and max over the rows.

    **Certificate** (:meth:`propagate`). Interval propagation (each row narrows each of its
    hidden cells to ``row bounds - the range of the row's other cells``, repeated until
    nothing changes) gives bounds every feasible point respects. They are the exact min and
    max of the LP for every hidden cell of a connected component of the *reduced* system (the
    rows minus those implied by other rows, each row restricted to its hidden cells) whose
    cell-row incidence graph is a tree (the system is Berge-acyclic), once the propagation
    has reached its fixpoint. Why: a single linear row with every cell once has, over a box,
    exactly the projection interval arithmetic gives; at the fixpoint every row is therefore
    hull consistent, which for convex rows and interval domains is generalised arc
    consistency; on a Berge-acyclic network that implies global consistency (Freuder 1982;
    Beeri, Fagin, Maier and Yannakakis 1983): every value of every domain extends to a
    solution of all rows, so both ends of each interval are attained. Implied rows change
    neither the feasible set nor the fixpoint on such a component (propagating more rows only
    narrows, and never past the exact projection). Implied here: a pair ``child <= parent``
    whose relation is ``parent = sum`` or ``parent >= sum`` (all cell values ``>= 0``), and a
    relation ``g (sense) sum(buurten)`` that is the sum of ``g (sense) sum(wijken)`` and each of
    those wijken's ``wijk (sense) sum(its buurten)`` (same buurten, senses all ``eq`` or
    ``eq``/``ge``, or ``eq``/``le``, the row itself the weaker one). Components with a cycle
    (e.g. two hidden buurten sharing their wijk row and a linked-table row, or a sub-additive
    wijk and a buurt both hidden, whose pair row shares two cells with the relation) go to
    the LP, which then has the propagated bounds to reach. For a family of linked tables the
    certificate is tried on the system without the differences too (:class:`_Elimination`).

    **LP** (:meth:`intervals`). One HiGHS model per audit over the components that need it
    (the reduced rows; published cells in the row bounds), its objective changed between
    solves: first the sum of the cells whose lower bound is open, then of those whose finite
    upper bound is open (a vertex often reaches many bounds at once), then one cell at a time.
    """

    def __init__(
        self, values: np.ndarray, rels: _Relations, links: np.ndarray | None = None
    ) -> None:
        self.values = np.asarray(values, dtype=float)
        n = len(self.values)
        w = max(n, 1)
        nrel = len(rels)
        sizes = np.diff(rels.ptr)
        kid_parent = np.repeat(rels.parent, sizes)
        kid_sense = np.repeat(rels.sense, sizes)
        # pairs child <= parent where the data say so, once each
        key = np.unique(rels.children * w + kid_parent)
        pc, pp = key // w, key % w
        holds = self.values[pc] <= self.values[pp] + _EPS
        pc, pp, key = pc[holds], pp[holds], key[holds]
        npair = len(pc)
        inf = np.inf
        self.row = np.concatenate(
            [np.repeat(np.arange(nrel), sizes + 1), np.repeat(nrel + np.arange(npair), 2)]
        )
        is_parent = np.zeros(len(rels.children) + nrel, dtype=bool)
        is_parent[rels.ptr[:-1] + np.arange(nrel)] = True  # each relation's parent first
        rel_cols = np.empty(len(is_parent), dtype=np.int64)
        rel_cols[is_parent] = rels.parent
        rel_cols[~is_parent] = rels.children
        self.col = np.concatenate([rel_cols, np.column_stack([pc, pp]).ravel()])
        self.coef = np.concatenate([np.where(is_parent, 1.0, -1.0), np.tile([1.0, -1.0], npair)])
        self.row_lo = np.concatenate([np.where(rels.sense == 1, -inf, 0.0), np.full(npair, -inf)])
        self.row_hi = np.concatenate([np.where(rels.sense == 2, inf, 0.0), np.zeros(npair)])
        self.nrows = nrel + npair
        self.n = n

        # rows implied by others: left out of the acyclicity check and of the LP
        implied = np.zeros(self.nrows, dtype=bool)
        if len(self.col) and (self.values[self.col] >= 0).all():
            # a pair whose relation is eq or ge: parent - child = the other children (>= 0)
            eqge = kid_sense != 1
            by_key = np.unique(rels.children[eqge] * w + kid_parent[eqge])
            at = np.minimum(np.searchsorted(by_key, key), max(len(by_key) - 1, 0))
            implied[nrel:] = (by_key[at] == key) if len(by_key) else False
        # the link rows (the last ones) take no part: a broad cell is their parent too
        k = 0 if links is None else len(links)
        implied[: nrel - k] = _implied_relations(rels.take(0, nrel - k))
        self.implied = implied
        self.nrel = nrel
        self.pair_c, self.pair_p = pc, pp
        self.elim = None if links is None or not len(links) else _Elimination.of(self, rels, links)

    @staticmethod
    def of(values: np.ndarray, relations: Sequence[Relation]) -> _GroupAudit:
        return _GroupAudit(values, _Relations.of(relations))

    def propagate(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lo, hi, exact)`` over all cells: propagated bounds (the values for published
        cells) and where they are the LP's exact interval (the certificate, class docstring).
        """
        lo, hi, exact, _ = self._propagate(np.asarray(hidden, dtype=bool))
        return lo, hi, exact

    def _propagate(
        self,
        hidden: np.ndarray,
        rows: np.ndarray | None = None,
        implied: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`propagate` and the component of each hidden cell in the reduced system (-1
        for a cell in none of its rows); ``rows`` and ``implied`` (masks over the rows) replace
        the group's rows and its implied ones (the linked-table elimination)."""
        lo = np.where(hidden, 0.0, self.values)
        hi = np.where(hidden, np.inf, self.values)
        exact = hidden.copy()  # a hidden cell in no row: anything from 0 up
        label = np.full(self.n, -1, dtype=np.int64)
        on_hidden = hidden[self.col]
        active = np.zeros(self.nrows, dtype=bool)
        active[self.row[on_hidden]] = True
        if rows is not None:
            active &= rows
        e = active[self.row]
        if not e.any():
            return lo, hi, exact, label
        row, col, pos = self.row[e], self.col[e], self.coef[e] > 0
        hid = hidden[col]
        r_lo, r_hi = self.row_lo[row], self.row_hi[row]
        # the hidden entries grouped by cell, for the per-cell max / min of the row bounds
        order = np.argsort(col[hid], kind="stable")
        hcol = col[hid][order]
        first = np.flatnonzero(np.r_[True, hcol[1:] != hcol[:-1]])
        cells = hcol[first]
        nr = self.nrows
        converged = False
        for _ in range(2 * (len(cells) + int(active.sum())) + 4):
            lc, hc = lo[col], hi[col]
            cmin = np.where(pos, lc, -hc)  # least and greatest value of each term
            cmax = np.where(pos, hc, -lc)
            inf_min, inf_max = np.isinf(cmin), np.isinf(cmax)
            fmin, fmax = np.where(inf_min, 0.0, cmin), np.where(inf_max, 0.0, cmax)
            smin, nmin = np.bincount(row, fmin, nr), np.bincount(row, inf_min, nr)
            smax, nmax = np.bincount(row, fmax, nr), np.bincount(row, inf_max, nr)
            # the range of the row's other terms
            omin = np.where(nmin[row] - inf_min > 0, -np.inf, smin[row] - fmin)
            omax = np.where(nmax[row] - inf_max > 0, np.inf, smax[row] - fmax)
            t_lo, t_hi = r_lo - omax, r_hi - omin  # the bounds of this term
            new_lo = np.where(pos, t_lo, -t_hi)[hid][order]
            new_hi = np.where(pos, t_hi, -t_lo)[hid][order]
            nl = np.maximum(lo[cells], np.maximum.reduceat(new_lo, first))
            nh = np.minimum(hi[cells], np.minimum.reduceat(new_hi, first))
            changed = bool((nl > lo[cells]).any() or (nh < hi[cells]).any())
            lo[cells], hi[cells] = nl, nh
            if not changed:
                converged = True
                break
        label, cyclic = self._components(
            hidden, active, self.implied if implied is None else implied
        )
        exact[cells] = converged & ~cyclic[cells]
        return lo, hi, exact, label

    def _components(
        self, hidden: np.ndarray, active: np.ndarray, implied: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(label, cyclic)`` per cell: the connected component of each hidden cell in the
        reduced system (-1 for none) and whether that component's incidence graph (cells and
        rows as nodes, a cell's place in a row as an edge) has a cycle."""
        label = np.full(self.n, -1, dtype=np.int64)
        cyclic = np.zeros(self.n, dtype=bool)
        kept = active & ~implied
        e = kept[self.row] & hidden[self.col]
        if not e.any():
            return label, cyclic
        u, v = self.col[e], self.n + self.row[e]  # cells, then rows, as nodes
        lab = np.arange(self.n + self.nrows)
        while True:  # label propagation with pointer jumping: a few rounds on shallow trees
            m = np.minimum(lab[u], lab[v])
            new = lab.copy()
            np.minimum.at(new, u, m)
            np.minimum.at(new, v, m)
            new = new[new]
            if np.array_equal(new, lab):
                break
            lab = new
        used = np.zeros(len(lab), dtype=bool)
        used[u] = True
        used[v] = True
        nodes = np.bincount(lab[used], minlength=len(lab))
        edges = np.bincount(lab[u], minlength=len(lab))
        cells = np.flatnonzero(used[: self.n])
        label[cells] = lab[cells]
        cyclic[cells] = edges[lab[cells]] > nodes[lab[cells]] - 1
        return label, cyclic

    def intervals(
        self, hidden: np.ndarray, targets: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(lower, upper, lps)``: the feasible interval of each target (NaN elsewhere) and
        the number of LPs solved for it. Certified cells need none. The others go to one LP
        model of the components they are in (the reduced rows; its objective changes between
        solves); a feasible point that reaches a propagated bound proves that bound is the
        optimum (the true values are one such point and every LP solution another), so many
        optima come for free."""
        hidden = np.asarray(hidden, dtype=bool)
        want = hidden if targets is None else hidden & np.asarray(targets, dtype=bool)
        lower = np.full(self.n, np.nan)
        upper = np.full(self.n, np.nan)
        if not want.any():
            return lower, upper, 0
        if self.elim is not None:
            lo, hi, exact = self.elim.propagate(hidden)
            done = want & exact
            lower[done], upper[done] = lo[done], hi[done]
            if not (want & ~exact).any():
                return lower, upper, 0
        lo, hi, exact, label = self._propagate(hidden)
        certified = ~np.isnan(lower)
        done = want & exact & ~certified
        lower[done], upper[done] = lo[done], hi[done]
        need = np.flatnonzero(want & ~exact & ~certified)
        if not len(need):
            return lower, upper, 0
        lo_val = np.full(self.n, np.nan)
        hi_val = np.full(self.n, np.nan)
        finite = np.isfinite(hi)

        def learn(x: np.ndarray) -> None:
            xn = x[need]
            hit_lo = np.isnan(lo_val[need]) & (xn <= lo[need] + _TOL)
            lo_val[need[hit_lo]] = lo[need[hit_lo]]
            hit_hi = np.isnan(hi_val[need]) & finite[need] & (xn >= hi[need] - _TOL)
            hi_val[need[hit_hi]] = hi[need[hit_hi]]

        learn(self.values)
        lp = self._model(hidden, np.isin(label, label[need]) & hidden)
        solves = 0
        # The sum of the cells with an open lower bound (then of those with an open finite
        # upper one) first, again while a solve settles some: a vertex of the sum often
        # reaches many bounds at once. Then one cell at a time.
        for sign, store, cells in ((1.0, lo_val, need), (-1.0, hi_val, need[finite[need]])):
            open_cells = cells[np.isnan(store[cells])]
            while len(open_cells) > 1:
                solves += 1
                status, _, x = lp.minimize_sum(open_cells, sign)
                if status != "optimal":
                    break
                learn(x)
                still = open_cells[np.isnan(store[open_cells])]
                if len(still) == len(open_cells):
                    break
                open_cells = still
        for cell in need.tolist():
            for sign, store in ((1.0, lo_val), (-1.0, hi_val)):
                if not np.isnan(store[cell]):
                    continue
                solves += 1
                status, fun, x = lp.minimize(cell, sign)
                if status == "unbounded" and sign < 0:
                    store[cell] = np.inf
                elif status == "optimal":
                    store[cell] = sign * fun
                    learn(x)
                else:
                    # The true values satisfy every row, so this is numerical trouble: fail
                    # closed (an empty interval is unprotected and draws more complements).
                    lo_val[cell] = hi_val[cell] = self.values[cell]
                    break
        lower[need], upper[need] = lo_val[need], hi_val[need]
        return lower, upper, solves

    def _model(self, hidden: np.ndarray, cells: np.ndarray) -> _AttackerLp:
        """The LP of the hidden ``cells`` (whole components): the kept rows they are in, the
        published cells of those rows moved to the row bounds."""
        rows = np.zeros(self.nrows, dtype=bool)
        rows[self.row[cells[self.col]]] = True
        rows &= ~self.implied
        e = rows[self.row]
        row, col, coef = self.row[e], self.col[e], self.coef[e]
        var = hidden[col]
        const = np.bincount(row[~var], coef[~var] * self.values[col[~var]], self.nrows)
        used = np.flatnonzero(rows)
        index = np.full(self.nrows, -1, dtype=np.int64)
        index[used] = np.arange(len(used))
        return _AttackerLp(
            self.n,
            index[row[var]],
            col[var],
            coef[var],
            self.row_lo[used] - const[used],
            self.row_hi[used] - const[used],
        )


# sense of (B row) - (A row) for row senses eq 0, le 1, ge 2; None: any sign
_SENSE_DIFF: Mapping[tuple[int, int], int | None] = {
    (0, 0): 0,
    (2, 0): 2,
    (0, 1): 2,
    (2, 1): 2,
    (1, 0): 1,
    (0, 2): 1,
    (1, 2): 1,
    (1, 1): None,
    (2, 2): None,
}


class _Elimination:
    """The linked-table differences substituted away: the certificate's form for families.

    A difference ``d = broad - narrow`` of one area is defined by its link row ``b = a + d``
    (:func:`group_relations`). Substituting it everywhere leaves a system over the narrow and
    broad cells alone: the link rows vanish, ``d >= 0`` becomes the row ``a <= b``, and each of
    the differences' own hierarchy rows ``d_p (s_D) sum(d_c)`` becomes ``(b_p - sum b_c) -
    (a_p - sum a_c)``, which the broad and narrow rows over the same areas imply when their
    senses do (``s_B - s_A`` within ``s_D``); the differences' pair rows follow from an ``eq``
    or ``ge`` difference row and ``d >= 0``. Where all that holds (:meth:`of`, else None),
    the substituted system has exactly the projection of the attacker's feasible set onto the
    narrow and broad cells, so the certificate of :class:`_GroupAudit` applies to it, and a
    difference whose narrow or broad cell is published is that cell's exact interval shifted
    (``b - a`` with one side fixed). A difference with both hidden goes to the LP.
    """

    def __init__(
        self,
        group: _GroupAudit,
        rows: np.ndarray,
        implied: np.ndarray,
        diff: np.ndarray,
        narrow: np.ndarray,
        broad: np.ndarray,
    ) -> None:
        self.group, self.rows, self.implied = group, rows, implied
        self.diff, self.narrow, self.broad = diff, narrow, broad
        self.is_diff = np.zeros(group.n, dtype=bool)
        self.is_diff[diff] = True

    @staticmethod
    def of(group: _GroupAudit, rels: _Relations, links: np.ndarray) -> _Elimination | None:
        """``links``: ``(broad, narrow, difference)`` cells, one row per link relation, which
        are the last relations of ``rels`` in that order."""
        n, nrel, k = group.n, group.nrel, len(links)
        b, a, d = (np.asarray(links[:, i], dtype=np.int64) for i in range(3))
        first = nrel - k
        sizes = np.diff(rels.ptr)
        if first < 0 or not np.array_equal(rels.parent[first:], b) or (sizes[first:] != 2).any():
            return None
        kids = rels.children[rels.ptr[first] :].reshape(-1, 2)
        if not (np.array_equal(kids[:, 0], a) and np.array_equal(kids[:, 1], d)):
            return None
        is_d = np.zeros(n, dtype=bool)
        is_d[d] = True
        if int(is_d.sum()) != k or is_d[a].any() or is_d[b].any():
            return None
        of_d = np.full(n, -1, dtype=np.int64)
        of_d[d] = np.arange(k)
        # every other relation holds no difference (a narrow or broad one) or only differences
        n_d = (
            is_d[rels.parent][:first]
            + np.add.reduceat(is_d[rels.children].astype(np.int64), rels.ptr[:-1])[:first]
        )
        is_d_rel = n_d == sizes[:first] + 1
        if ((n_d > 0) & ~is_d_rel).any():
            return None
        parent, ptr, children, sense = (
            rels.parent.tolist(),
            rels.ptr.tolist(),
            rels.children.tolist(),
            rels.sense.tolist(),
        )
        plain: dict[tuple[int, frozenset[int]], int] = {}
        for r in np.flatnonzero(~is_d_rel).tolist():
            plain[(parent[r], frozenset(children[ptr[r] : ptr[r + 1]]))] = r
        bl, al = b.tolist(), a.tolist()
        for r in np.flatnonzero(is_d_rel).tolist():
            p = of_d[parent[r]]
            cs = [int(of_d[c]) for c in children[ptr[r] : ptr[r + 1]]]
            rb = plain.get((bl[p], frozenset(bl[c] for c in cs)))
            ra = plain.get((al[p], frozenset(al[c] for c in cs)))
            if rb is None or ra is None:
                return None
            implied_sense = _SENSE_DIFF[(sense[rb], sense[ra])]
            if implied_sense is None or implied_sense not in (0, sense[r]):
                return None
        rows = np.ones(group.nrows, dtype=bool)
        rows[:nrel][first:] = False
        rows[:first][is_d_rel] = False
        pc, pp = group.pair_c, group.pair_p
        with_d = is_d[pc] | is_d[pp]
        # a pair of two differences must follow from its eq / ge difference row
        both_d = is_d[pc] & is_d[pp]
        if (both_d & ~group.implied[nrel:]).any():
            return None
        rows[nrel:][with_d] = False
        # a <= b is d >= 0: kept, and no longer implied (its link row is gone)
        implied = group.implied.copy()
        key = pc * max(n, 1) + pp
        at = np.searchsorted(key, a * max(n, 1) + b)  # pair keys are sorted
        if (at >= len(key)).any() or not np.array_equal(
            key[np.minimum(at, len(key) - 1)], a * max(n, 1) + b
        ):
            return None
        implied[nrel + at] = False
        return _Elimination(group, rows, implied, d, a, b)

    def propagate(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lo, hi, exact)`` as :meth:`_GroupAudit.propagate`, from the substituted system."""
        values = self.group.values
        if not hidden[self.diff].all():  # a published difference would be one more row
            lo = np.where(hidden, 0.0, values)
            return lo, np.where(hidden, np.inf, values), np.zeros(len(hidden), dtype=bool)
        lo, hi, exact, _ = self.group._propagate(hidden & ~self.is_diff, self.rows, self.implied)
        a, b = self.narrow, self.broad
        ha, hb = hidden[a], hidden[b]
        lo[self.diff] = np.where(hb, lo[b], values[b]) - np.where(ha, hi[a], values[a])
        hi[self.diff] = np.where(hb, hi[b], values[b]) - np.where(ha, lo[a], values[a])
        exact[self.diff] = ~(ha & hb) & (~ha | exact[a]) & (~hb | exact[b])
        return lo, hi, exact


def _implied_relations(rels: _Relations) -> np.ndarray:
    """Relations ``g (sense) sum(B)`` that equal ``g (sense) sum(W)`` plus, for each ``w`` in
    ``W``, ``w (sense) sum(its buurten)`` with those buurten together exactly ``B``, and whose
    sense follows from theirs (all ``eq``; or ``eq``/``ge`` with this one ``ge``; or
    ``eq``/``le`` with this one ``le``). Each implying relation is itself kept."""
    nrel = len(rels)
    out = np.zeros(nrel, dtype=bool)
    if nrel < 3:
        return out
    parent = rels.parent.tolist()
    by_parent: dict[int, list[int]] = {}
    for r, p in enumerate(parent):
        by_parent.setdefault(p, []).append(r)
    sense = rels.sense.tolist()
    ptr = rels.ptr.tolist()
    kids = rels.children.tolist()
    for rs in by_parent.values():
        if len(rs) < 2:
            continue
        for r0 in rs:
            target = sorted(kids[ptr[r0] : ptr[r0 + 1]])
            for rw in rs:
                if rw == r0 or out[rw]:
                    continue
                parts = [rw]
                union: list[int] = []
                for w in kids[ptr[rw] : ptr[rw + 1]]:
                    own = by_parent.get(w, [])
                    if len(own) != 1 or out[own[0]] or own[0] == r0:
                        break
                    parts.append(own[0])
                    union += kids[ptr[own[0]] : ptr[own[0] + 1]]
                else:
                    if sorted(union) != target:
                        continue
                    senses = {sense[x] for x in parts}
                    s0 = sense[r0]
                    if (
                        senses == {0}
                        or (senses <= {0, 2} and s0 == 2)
                        or (senses <= {0, 1} and s0 == 1)
                    ):
                        out[r0] = True
                        break
    return out


def feasible_intervals(
    values: np.ndarray,
    hidden: np.ndarray,
    relations: Sequence[Relation],
    targets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of every hidden cell given the published ones (the attacker's LP).

    Variables: the hidden cells, ``>= 0``, integers relaxed to reals. Constraints: every
    relation with at least one hidden cell (published cells move to the right-hand side), and
    ``child <= parent`` where that holds in the data. Returns ``(lower, upper)`` over all rows,
    NaN for published rows, ``inf`` where nothing bounds a cell from above. ``targets`` (a
    subset of ``hidden``) limits the result to the cells whose interval is wanted; the other
    hidden cells are still variables (e.g. the never-published differences of linked tables).
    Cells the certificate of :class:`_GroupAudit` covers need no LP.
    """
    lower, upper, _ = _GroupAudit.of(values, relations).intervals(hidden, targets)
    return lower, upper


def interval_certificate(
    values: np.ndarray,
    hidden: np.ndarray,
    relations: Sequence[Relation],
    *,
    linked: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper, exact)``: bounds of every hidden cell without an LP (valid for every
    feasible point of the attacker's LP), and where they are provably its exact interval
    (:class:`_GroupAudit`; with ``linked``, the last ``linked`` relations are the linked-table
    rows ``broad = narrow + difference`` of :func:`group_relations` and the certificate
    substitutes the differences away first, :class:`_Elimination`). NaN for published cells.
    """
    hidden = np.asarray(hidden, dtype=bool)
    links = None
    if linked:
        links = np.array(
            [(r.parent, r.children[0], r.children[1]) for r in relations[-linked:]],
            dtype=np.int64,
        )
    group = _GroupAudit(values, _Relations.of(relations), links)
    lo, hi, exact = group.propagate(hidden)
    if group.elim is not None:
        e_lo, e_hi, e_exact = group.elim.propagate(hidden)
        lo = np.where(e_exact, e_lo, np.maximum(lo, e_lo))
        hi = np.where(e_exact, e_hi, np.minimum(hi, e_hi))
        exact = exact | e_exact
    return np.where(hidden, lo, np.nan), np.where(hidden, hi, np.nan), exact & hidden


class _AttackerLp:
    """The attacker's LP of one audit, built once and re-solved per objective.

    Variables: the given hidden cells, ``x >= 0``; rows ``row_lo[r] <= sum(coef * x) <=
    row_hi[r]`` (the published cells already moved into the bounds). Each solve minimises
    ``sign * x[cell]``. HiGHS keeps the optimal basis between solves, so after the first one a
    change of objective costs a few simplex pivots instead of a new model: scipy's ``linprog``
    spends three quarters of each call on input checks and model set-up. It is the same HiGHS
    solver that ``linprog`` (method "highs") calls.
    """

    def __init__(
        self,
        n: int,
        row: np.ndarray,
        cell: np.ndarray,
        coef: np.ndarray,
        row_lo: np.ndarray,
        row_hi: np.ndarray,
    ) -> None:
        # highspy's ``Highs`` wrapper adds Python logging callbacks whose set-up prints a
        # banner on standard output (inside a Spark worker, into the job's console); its base
        # class is the same solver without them.
        from highspy import _core

        self._h = _core._Highs()
        self._h.setOptionValue("output_flag", False)
        self._h.setOptionValue("threads", 1)  # one LP per Spark task: no nested threads
        self._h.setOptionValue("presolve", "off")  # tiny LPs; keeps the basis between solves
        # A new objective leaves the last basis primal feasible: primal simplex goes on from
        # there (the dual simplex took twice as long per solve here).
        self._h.setOptionValue("simplex_strategy", 4)
        self.cells = np.unique(cell)
        self.column = np.full(n, -1, dtype=np.int64)
        self.column[self.cells] = np.arange(len(self.cells))
        nc = len(self.cells)
        j = self.column[cell]
        order = np.lexsort((row, j))
        lp = _core.HighsLp()
        lp.num_col_ = nc
        lp.num_row_ = len(row_lo)
        lp.col_cost_ = np.zeros(nc)
        lp.col_lower_ = np.zeros(nc)
        lp.col_upper_ = np.full(nc, _core.kHighsInf)
        lp.row_lower_ = np.asarray(row_lo, dtype=float)  # float inf is HiGHS' infinity
        lp.row_upper_ = np.asarray(row_hi, dtype=float)
        lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(j[order], np.arange(nc + 1)).astype(np.int32)
        lp.a_matrix_.index_ = np.asarray(row, dtype=np.int32)[order]
        lp.a_matrix_.value_ = np.asarray(coef, dtype=float)[order]
        self._h.passModel(lp)
        self._status = _core.HighsModelStatus
        self._costed: np.ndarray | None = None
        self._n = n

    def minimize(self, cell: int, sign: float) -> tuple[str, float, np.ndarray]:
        """``(status, optimum, solution)`` of min ``sign * x[cell]``, the solution over all
        cells of the group (NaN outside the LP); status optimal, unbounded or failed."""
        return self.minimize_sum(np.array([cell]), sign)

    def minimize_sum(self, cells: np.ndarray, sign: float) -> tuple[str, float, np.ndarray]:
        """:meth:`minimize` of ``sign * sum(x[cells])``."""
        j = self.column[cells].astype(np.int32)
        if self._costed is not None:
            self._h.changeColsCost(len(self._costed), self._costed, np.zeros(len(self._costed)))
        self._h.changeColsCost(len(j), j, np.full(len(j), sign))
        self._costed = j
        self._h.run()
        status = self._h.getModelStatus()
        if status == self._status.kOptimal:
            x = np.full(self._n, np.nan)
            x[self.cells] = np.asarray(self._h.getSolution().col_value, dtype=float)
            return "optimal", float(self._h.getObjectiveValue()), x
        if status in (self._status.kUnbounded, self._status.kUnboundedOrInfeasible):
            return "unbounded", float("nan"), np.empty(0)
        return "failed", float("nan"), np.empty(0)


HIDDEN_REASONS = ("primary", "secondary", LINKED)


def audit_group(
    pdf: pd.DataFrame,
    *,
    settings: DisclosureSettings,
    relations: Sequence[Relation] | None = None,
) -> pd.DataFrame:
    """The audit of one group: feasible interval and protection of every suppressed count.

    ``pdf`` holds one gemeente's count cells of one indicator (or one family of linked
    indicators, with their difference rows) and year: ``level, area_code, parent_code, value,
    status`` and ``reason``; cells whose reason is primary, secondary or linked_difference are
    the hidden ones. Returns a copy with ``feasible_lower``, ``feasible_upper`` and
    ``protected``, set for the suppressed cells and the linked differences a primary rule
    would hide (null elsewhere).
    """
    out = pdf.reset_index(drop=True).copy()
    rels = build_relations(out) if relations is None else list(relations)
    values = out["value"].to_numpy(dtype=float, na_value=np.nan)
    reason = out["reason"].to_numpy(dtype=object)
    lower, upper, targets, wide = _audit(
        _GroupAudit.of(values, rels), values, reason, _known(out), settings
    )
    out["feasible_lower"] = lower
    out["feasible_upper"] = upper
    out["protected"] = pd.array(_protected(targets, wide), dtype="boolean")
    return out


def _audit(
    group: _GroupAudit,
    values: np.ndarray,
    reason: np.ndarray,
    known: np.ndarray,
    settings: DisclosureSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`audit_group` on column arrays: ``(feasible_lower, feasible_upper, targets,
    wide)``, NaN outside the cells that must be protected (the targets)."""
    suppressed = (reason == "primary") | (reason == "secondary")
    is_diff = reason == LINKED
    hidden = (suppressed | is_diff) & known
    small = (values > 0) & (values < settings.min_count)
    targets = known & (suppressed | (is_diff & small))
    lower, upper, _ = group.intervals(hidden, targets)
    wide = targets & ((upper - lower) >= settings.protection_width - _EPS)
    return lower, upper, targets, wide


def _protected(targets: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """True / False for the targets, None elsewhere (what Arrow and pandas' boolean take)."""
    out = np.full(len(targets), None, dtype=object)
    idx = np.flatnonzero(targets)
    out[idx] = wide[idx].tolist()
    return out


def difference_key(narrow: str, broad: str) -> str:
    """Name of the never-published difference ``broad - narrow`` of two linked indicators."""
    return f"{broad}-{narrow}"


def _with_differences(
    df: pd.DataFrame, links: Sequence[tuple[str, str]]
) -> tuple[pd.DataFrame, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """``df`` plus one difference row per linked pair and area (both cells known), and per
    link kept ``(key, broad rows, narrow rows, difference rows)``: the count an attacker gets by
    subtracting the narrower table. A pair whose difference is negative somewhere is no
    subset relation here (a count that is not monotone in the incident set) and is dropped:
    ``broad - narrow`` is then no count, and a free difference tells the attacker nothing.
    The difference rows copy the broad rows' other columns and have ``is_difference``."""
    df = df.assign(is_difference=False)
    if not links:
        return df, []
    kn = np.flatnonzero(_known(df))
    ind_id, ind_names = pd.factorize(df["indicator"].to_numpy(dtype=object)[kn])
    id_of = {name: i for i, name in enumerate(ind_names)}
    level_id = _ranks(df["level"].to_numpy(dtype=object)[kn])
    code_id = _ranks(df["area_code"].to_numpy(dtype=object)[kn])
    place = level_id * (int(code_id.max(initial=0)) + 2) + code_id  # (level, area code)
    values = df["value"].to_numpy(dtype=float, na_value=np.nan)
    kept: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    n_rows = len(df)
    for narrow, broad in links:
        if narrow not in id_of or broad not in id_of:
            continue
        b_sel, a_sel = ind_id == id_of[broad], ind_id == id_of[narrow]
        match = _last_match(place[a_sel], kn[a_sel], place[b_sel])
        b_rows = kn[b_sel][match >= 0]
        if not len(b_rows):
            continue
        a_rows = match[match >= 0]
        if (values[b_rows] - values[a_rows] < -_EPS).any():
            continue
        d_rows = n_rows + np.arange(len(b_rows))
        n_rows += len(b_rows)
        kept.append((difference_key(narrow, broad), b_rows, a_rows, d_rows))
    if not kept:
        return df, kept
    b_all = np.concatenate([k[1] for k in kept])
    d = df.take(b_all)
    d["value"] = values[b_all] - values[np.concatenate([k[2] for k in kept])]
    d["indicator"] = np.repeat(
        np.array([k[0] for k in kept], dtype=object), [len(k[1]) for k in kept]
    )
    d["is_difference"] = True
    return pd.concat([df, d], ignore_index=True), kept


def group_relations(df: pd.DataFrame, links: Sequence[tuple[str, str]]) -> list[Relation]:
    """Hierarchy relations per indicator of the group (and per difference), then one
    ``broad = narrow + difference`` relation per linked pair and area; positions refer to
    ``df``'s rows."""
    indicator = df["indicator"].astype(str).to_numpy(dtype=object)
    n = len(df)
    rels = _hierarchy(
        indicator=_ranks(indicator),
        family=np.zeros(n, dtype=np.int64),
        levels=df["level"].to_numpy(dtype=object),
        codes=df["area_code"].to_numpy(dtype=object),
        parents=df["parent_code"].to_numpy(dtype=object),
        values=df["value"].to_numpy(dtype=float, na_value=np.nan),
        known=_known(df),
    ).as_list()
    levels = df["level"].astype(str).to_numpy(dtype=object)
    codes = df["area_code"].astype(str).to_numpy(dtype=object)
    row_of = {
        (str(ind), str(lv), str(code)): i
        for i, (ind, lv, code) in enumerate(zip(indicator, levels, codes, strict=True))
    }
    for narrow, broad in links:
        diff = difference_key(narrow, broad)
        for (ind, lv, code), d in sorted(row_of.items()):
            if ind != diff:
                continue
            b, a = row_of[(broad, lv, code)], row_of[(narrow, lv, code)]
            rels.append(Relation(b, (a, d), "eq"))
    return rels


def suppress_group(
    pdf: pd.DataFrame,
    *,
    settings: DisclosureSettings,
    links: Sequence[tuple[str, str]] = (),
    secondary: bool = True,
) -> pd.DataFrame:
    """Primary and secondary suppression of one group, audited; pure pandas and numpy.

    One group is one gemeente's count cells (the gemeente, its wijken and its buurten) for one
    year and one indicator, or one family of linked indicators (``links``: ``(narrow, broad)``
    pairs whose cells satisfy ``narrow <= broad`` because one set holds the other):
    ``level, area_code, parent_code, value, status`` plus ``indicator`` when there are links,
    and any passthrough columns (e.g. ``year, gemeente_code``). Returns them sorted
    (indicator, level, area_code) with ``reason`` (published, primary, secondary,
    not_applicable, not_covered, and linked_difference for the added difference rows),
    ``status`` (ok, suppressed, not_applicable, not_covered; a cell that is ok without a value
    becomes not_applicable), ``feasible_lower``, ``feasible_upper`` and ``protected``.

    Linked tables: ``broad - narrow`` is a count too (e.g. the drug incidents that are not
    production), never published, so it enters as an always-hidden cell with the relation
    ``broad = narrow + difference`` per area and its own hierarchy relations; a difference in
    1..min_count - 1 must be protected like a suppressed cell.

    Complements: for a relation with exactly one hidden cell (that needs protection), the
    hidden child is covered by the cheapest published nonzero sibling, else by its parent,
    else by a zero sibling (a cell hidden among zeros stays recoverable in practice, so zeros
    come last); a hidden parent by its cheapest nonzero child, else a zero child. Then the
    audit runs; each unprotected cell draws the cheapest published nonzero cell of its
    relations (else of the group), and both steps repeat until the audit passes. Each round
    hides at least one more cell, so this ends; with every cell hidden nothing is fixed and
    every interval is open above. ``secondary=False`` (tests only: it shows the audit catches a
    pattern with primary suppression alone) skips the complements and only audits.
    """
    df = pdf.copy()
    has_indicator = "indicator" in df.columns
    if not has_indicator:
        df["indicator"] = ""
    df["reason"] = None
    out, res = _count_pattern(
        df, np.zeros(len(df), dtype=np.int64), links=links, settings=settings, secondary=secondary
    )
    out = out.drop(columns="is_difference")
    out["reason"] = res.reason
    out["status"] = res.status
    out["feasible_lower"] = res.lower
    out["feasible_upper"] = res.upper
    out["protected"] = pd.array(res.protected, dtype="boolean")
    if not has_indicator:
        out = out.drop(columns="indicator")
    return out


@dataclass
class _Pattern:
    """The arrays :func:`_count_pattern` returns, one entry per row of its frame."""

    reason: np.ndarray
    status: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    protected: np.ndarray


def _count_pattern(
    df: pd.DataFrame,
    family: np.ndarray,
    *,
    links: Sequence[tuple[str, str]],
    settings: DisclosureSettings,
    secondary: bool,
) -> tuple[pd.DataFrame, _Pattern]:
    """:func:`suppress_group` of every family in ``df`` (count cells with ``indicator``;
    ``family``: an integer key per row, a group per value) in one pass of column arrays.

    Returns the rows with the difference rows added (``is_difference``), sorted by (family,
    indicator, level from the top, area code), and their pattern. Groups without a cell to
    protect get no relations and no audit: at national scale most of the tens of thousands of
    groups are such, and the per-group pandas calls used to cost more than the LPs.
    """
    df = df.reset_index(drop=True)
    df["_family"] = family
    df, kept = _with_differences(df, links)
    indicator = df["indicator"].astype(str).to_numpy(dtype=object)
    level_rank = _level_ranks(df["level"].to_numpy(dtype=object))
    order = np.lexsort(
        (
            _ranks(df["area_code"].astype(str).to_numpy(dtype=object)),
            -np.where(level_rank < 0, -1, level_rank),
            _ranks(indicator),
            df["_family"].to_numpy(dtype=np.int64),
        )
    )  # (family, indicator, level from the top, area code), stable
    df = df.take(order).reset_index(drop=True)
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))
    fam = df.pop("_family").to_numpy(dtype=np.int64)
    n = len(df)
    indicator = indicator[order]
    values = df["value"].to_numpy(dtype=float, na_value=np.nan)
    known = _known(df)
    status_in = df["status"].to_numpy(dtype=object)
    is_diff = df["is_difference"].to_numpy(dtype=bool)

    reason = np.full(n, "published", dtype=object)
    reason[status_in == "not_applicable"] = "not_applicable"
    reason[(status_in == "ok") & ~known] = "not_applicable"
    reason[status_in == "not_covered"] = "not_covered"
    small = known & (values > 0) & (values < settings.min_count)
    primary = small & ~is_diff
    reason[primary] = "primary"
    reason[is_diff] = LINKED
    diff_small = is_diff & small

    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    targets = np.zeros(n, dtype=bool)
    wide = np.zeros(n, dtype=bool)
    res = _Pattern(reason, status_in, lower, upper, np.empty(0))

    starts = np.flatnonzero(np.r_[True, fam[1:] != fam[:-1]]) if n else np.empty(0, np.int64)
    ends = np.append(starts[1:], n).astype(np.int64)
    needs: np.ndarray = (
        np.add.reduceat((primary | diff_small).astype(np.int64), starts) > 0
        if n
        else np.zeros(0, dtype=bool)
    )
    if np.any(needs):
        rels = _hierarchy(
            indicator=_ranks(indicator),
            family=fam,
            levels=df["level"].to_numpy(dtype=object),
            codes=df["area_code"].to_numpy(dtype=object),
            parents=df["parent_code"].to_numpy(dtype=object),
            values=values,
            known=known,
            gemeenten=(
                df["gemeente_code"].to_numpy(dtype=object) if "gemeente_code" in df else None
            ),
        )
        rel_fam = fam[rels.parent]
        links_of: dict[int, list[np.ndarray]] = {}
        for _, b_rows, a_rows, d_rows in kept:
            # per area, sorted by (level, area code) of the difference row as group_relations
            b, a, d = where[b_rows], where[a_rows], where[d_rows]
            lv = df["level"].to_numpy(dtype=object)[d].astype(str)
            code = df["area_code"].to_numpy(dtype=object)[d].astype(str)
            o = np.lexsort((_ranks(code), _ranks(lv)))
            links_of.setdefault(int(fam[b[0]]), []).append(np.column_stack([b, a, d])[o])
        tie = (indicator + "|" + df["area_code"].astype(str).to_numpy(dtype=object)).astype(object)
        for s, e in zip(starts[needs].tolist(), ends[needs].tolist(), strict=True):
            f = int(fam[s])
            r0, r1 = np.searchsorted(rel_fam, [f, f + 1])  # relations sorted by family
            group_rels = rels.take(int(r0), int(r1), offset=s)
            fam_links = [t - s for t in links_of.get(f, [])]
            for t in fam_links:
                group_rels = group_rels.concat(
                    _Relations(
                        t[:, 0],
                        np.arange(0, 2 * len(t) + 1, 2, dtype=np.int64),
                        t[:, 1:].ravel(),
                        np.zeros(len(t), dtype=np.int64),
                    )
                )
            lo, hi, tg, wd = _suppress(
                values[s:e],
                tie[s:e],
                known[s:e],
                reason[s:e],  # a view: the rounds write the pattern in place
                diff_small[s:e],
                group_rels,
                settings,
                secondary,
                np.concatenate(fam_links) if fam_links else None,
            )
            lower[s:e], upper[s:e], targets[s:e], wide[s:e] = lo, hi, tg, wd

    status = status_in.copy()
    status[_among(reason, ("primary", "secondary"))] = "suppressed"
    status[reason == "not_applicable"] = "not_applicable"
    status[reason == LINKED] = "suppressed"  # never published; the partner table drops them
    res.status = status
    res.protected = _protected(targets, wide)
    return df, res


def _suppress(
    values: np.ndarray,
    codes: np.ndarray,
    known: np.ndarray,
    reason: np.ndarray,
    diff_small: np.ndarray,
    rels: _Relations,
    settings: DisclosureSettings,
    secondary: bool,
    links: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The complement and audit rounds of one group; updates ``reason`` in place and returns
    the last audit's ``(feasible_lower, feasible_upper, targets, wide)``. One
    :class:`_GroupAudit` serves every round (``links``: its ``(broad, narrow, difference)``
    cells, one per link relation at the end of ``rels``)."""
    n = len(values)
    nrel = len(rels)
    group = _GroupAudit(values, rels, links)
    # the members of each relation (parent first) and the relations of each cell, as flat
    # lists with offsets: the rounds below look cells up one at a time
    sizes = np.diff(rels.ptr) + 1
    mptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = np.empty(int(mptr[-1]), dtype=np.int64)
    heads = np.zeros(len(flat), dtype=bool)
    heads[mptr[:-1]] = True
    flat[heads] = rels.parent
    flat[~heads] = rels.children
    hidden0 = _among(reason, HIDDEN_REASONS)
    by_cell = np.argsort(flat, kind="stable")
    cptr = np.searchsorted(flat[by_cell], np.arange(n + 1)).tolist()
    rel_of = np.repeat(np.arange(nrel), sizes)[by_cell].tolist()
    hidden_count = (
        np.add.reduceat(hidden0[flat].astype(np.int64), mptr[:-1]).tolist() if nrel else []
    )
    member = flat.tolist()
    mp = mptr.tolist()
    value = values.tolist()
    code = [str(c) for c in codes]
    is_known = known.tolist()
    is_hidden = hidden0.tolist()
    small_diff = diff_small.tolist()
    eq = np.flatnonzero(rels.sense == 0).tolist()

    def cheapest(candidates: Iterable[int]) -> int | None:
        """Smallest value, then code (deterministic); None when there is no candidate."""
        return min(candidates, key=lambda i: (value[i], code[i]), default=None)

    def hide(i: int) -> None:
        reason[i] = "secondary"
        is_hidden[i] = True
        for r in rel_of[cptr[i] : cptr[i + 1]]:
            hidden_count[r] += 1

    def needs_protection(i: int) -> bool:
        return reason[i] in ("primary", "secondary") or small_diff[i]

    def open_(i: int) -> bool:
        return is_known[i] and not is_hidden[i]

    def complement_for_singleton(r: int, h: int) -> int | None:
        parent, children = member[mp[r]], member[mp[r] + 1 : mp[r + 1]]
        if h == parent:
            kids = [c for c in children if open_(c)]
            nonzero_kid = cheapest(c for c in kids if value[c] > 0)
            return nonzero_kid if nonzero_kid is not None else cheapest(kids)
        sibs = [c for c in children if open_(c)]
        nonzero = cheapest(c for c in sibs if value[c] > 0)
        if nonzero is not None:
            return nonzero
        if open_(parent):
            return parent
        return cheapest(sibs)

    def close_singletons() -> None:
        changed = True
        while changed:
            changed = False
            for r in eq:  # an inequality pins nothing by itself; the audit checks it
                if hidden_count[r] != 1:
                    continue
                h = next(i for i in member[mp[r] : mp[r + 1]] if is_hidden[i])
                if not needs_protection(h):
                    continue
                pick = complement_for_singleton(r, h)
                if pick is not None:
                    hide(pick)
                    changed = True

    for _ in range(n + 1):
        if secondary:
            close_singletons()
        lower, upper, targets, wide = _audit(group, values, reason, known, settings)
        unprotected = np.flatnonzero(targets & ~wide).tolist()
        if not unprotected or not secondary:
            break
        added = False
        for u in sorted(unprotected, key=lambda i: code[i]):
            near = {i for r in rel_of[cptr[u] : cptr[u + 1]] for i in member[mp[r] : mp[r + 1]]}
            candidates = [i for i in near if open_(i)] or [i for i in range(n) if open_(i)]
            pick = cheapest(i for i in candidates if value[i] > 0)
            if pick is None:
                pick = cheapest(candidates)
            if pick is not None:
                hide(pick)
                added = True
        if not added:
            break  # nothing left to hide: the audit verdict reports the failure
    return lower, upper, targets, wide


# --------------------------------------------------------------------------- Spark


def _literal_map(pairs: Mapping[str, str | None]) -> Column:
    """A literal map column (the catalogue is a few dozen entries: no join, no session)."""
    items = [x for k, v in sorted(pairs.items()) if v is not None for x in (F.lit(k), F.lit(v))]
    if not items:
        return F.create_map().cast(T.MapType(T.StringType(), T.StringType()))
    return F.create_map(*items)


def composite_inputs(by_key: Mapping[str, IndicatorSpec]) -> dict[str, list[str]]:
    """Composite index or class -> the counts behind its components (their numerators and
    denominators, through nested composites), sorted: what it inherits suppression from."""

    def counts(key: str, seen: frozenset[str]) -> set[str]:
        spec = by_key.get(key)
        if spec is None or key in seen:
            return set()
        if spec.unit == "count":
            return {key}
        out = {c for c in (spec.numerator, spec.denominator) if c and c in by_key}
        out = {c for c in out if by_key[c].unit == "count"}
        for comp in spec.components:
            out |= counts(comp, seen | {key})
        return out

    return {k: sorted(counts(k, frozenset())) for k, s in by_key.items() if s.components}


def _area_map(hierarchy: DataFrame, regions: Regions | None = None) -> DataFrame:
    """``level, area_code, parent_code, gemeente_code`` for every area of the hierarchy; with
    ``regions`` the gemeente's parent is its region or (outside every region) the study area,
    and the regions and the study area are areas too (gemeente_code null)."""
    h = hierarchy.select("buurt_code", "wijk_code", "gemeente_code")
    if regions is not None:
        return _with_region_parents(_area_map(hierarchy), regions).unionByName(
            _reference_areas(hierarchy, regions)
        )
    return (
        h.select(
            F.lit("buurt").alias("level"),
            F.col("buurt_code").alias("area_code"),
            F.col("wijk_code").alias("parent_code"),
            "gemeente_code",
        )
        .unionByName(
            h.select(
                F.lit("wijk").alias("level"),
                F.col("wijk_code").alias("area_code"),
                F.col("gemeente_code").alias("parent_code"),
                "gemeente_code",
            ).distinct()
        )
        .unionByName(
            h.select(
                F.lit("gemeente").alias("level"),
                F.col("gemeente_code").alias("area_code"),
                F.lit(None).cast("string").alias("parent_code"),
                "gemeente_code",
            ).distinct()
        )
    )


def _reference_areas(hierarchy: DataFrame, regions: Regions) -> DataFrame:
    """The regio areas (parent the study area) and the study area itself."""
    spark = hierarchy.sparkSession
    # a handful of configured regions: built on the driver, small by construction
    rows: list[tuple[str, str, str | None]] = [
        (REGION, code, STUDY_AREA_CODE) for code in regions.codes
    ]
    rows.append((STUDY_AREA, STUDY_AREA_CODE, None))
    return spark.createDataFrame(
        rows, "level string, area_code string, parent_code string"
    ).withColumn("gemeente_code", F.lit(None).cast("string"))


def _with_region_parents(area_map: DataFrame, regions: Regions) -> DataFrame:
    """The gemeente's parent: its region, else the study area."""
    return area_map.withColumn(
        "parent_code",
        F.when(
            F.col("level") == "gemeente",
            F.coalesce(regions.region_of(F.col("area_code")), F.lit(STUDY_AREA_CODE)),
        ).otherwise(F.col("parent_code")),
    )


def _rounded(value: Column, unit: Column, rounding_base: int | None) -> Column:
    expr: Column = F.lit(None).cast("double")
    for u, decimals in DECIMALS.items():
        rounded = F.round(value, decimals)
        if u == "count" and rounding_base:
            rounded = F.round(value / F.lit(rounding_base)) * F.lit(float(rounding_base))
        expr = F.when(unit == u, rounded).otherwise(expr)
    return expr.cast("double")


# --------------------------------------------------------------------------- one gemeente


@dataclass(frozen=True)
class _Catalogue:
    """What the per-gemeente step needs of the catalogue: units, the numerator and
    denominator of each rate or share, the counts behind each composite, the family of each
    linked count. Small and frozen: Spark pickles it to the workers with the step (cheaper
    than two more string columns through Arrow)."""

    unit_of: Mapping[str, str]
    num_of: Mapping[str, str]
    den_of: Mapping[str, str]
    inputs_of: Mapping[str, tuple[str, ...]]
    family_of: Mapping[str, str]

    @staticmethod
    def of(by_key: Mapping[str, IndicatorSpec], links: Sequence[tuple[str, str]]) -> _Catalogue:
        return _Catalogue(
            family_of=_families(links),
            unit_of={k: s.unit for k, s in by_key.items()},
            num_of={k: s.numerator for k, s in by_key.items() if s.numerator},
            den_of={k: s.denominator for k, s in by_key.items() if s.denominator},
            inputs_of={k: tuple(v) for k, v in composite_inputs(by_key).items()},
        )


def disclose_gemeente(
    pdf: pd.DataFrame,
    *,
    catalogue: _Catalogue,
    settings: DisclosureSettings,
    links: Sequence[tuple[str, str]] = (),
    secondary: bool = True,
) -> pd.DataFrame:
    """The audit rows of one gemeente and year (the cells of :func:`disclosure_cells`).

    Counts first: each family of indicators is a group of :func:`suppress_group`, all in one
    pass of column arrays. Then every other cell from the counts of its own area and year
    (which the same gemeente and year hold): a rate, share or index is primary when a count it
    is computed from is unusable or in 1..min - 1, inherited when one is suppressed (for a
    composite: any count behind its components), and a cell without a value whose
    denominator is suppressed is inherited too; a magnitude is primary under the dominance or
    min_units rule; an indicator outside the catalogue fails closed (primary). Returns the
    audit columns (:data:`AUDIT_COLUMNS`).
    """
    indicator = pdf["indicator"].to_numpy(dtype=object)
    unit = _map(indicator, catalogue.unit_of)
    is_count = unit == "count"
    count_columns = ["level", "area_code", "parent_code", "year", "indicator", "value", "status"]
    # the row's own gemeente (a group may hold several: regions) and whether it is unplaced
    count_columns += [c for c in ("gemeente_code", "is_unplaced") if c in pdf]
    counts = pdf.loc[is_count, count_columns]
    family = _map(indicator[is_count], catalogue.family_of)
    cdf, res = _count_pattern(
        counts,
        _ranks(np.where(pd.isna(family), indicator[is_count], family)),
        links=links,
        settings=settings,
        secondary=secondary,
    )
    c_value = cdf["value"].to_numpy(dtype=float, na_value=np.nan)
    # the counts of each area, as the derived cells look them up
    c_hidden = res.status == "suppressed"
    c_known = _among(res.status, ("ok", "suppressed")) & ~np.isnan(c_value)
    other = pdf.loc[~is_count]
    ind = other["indicator"].to_numpy(dtype=object)
    o_unit = unit[~is_count]
    # integer keys (level, area, indicator) of the counts, and the places of the other cells
    nc = len(cdf)
    level_id, levels = pd.factorize(
        np.concatenate([cdf["level"].to_numpy(dtype=object), other["level"].to_numpy(dtype=object)])
    )
    area_id, areas = pd.factorize(
        np.concatenate(
            [cdf["area_code"].to_numpy(dtype=object), other["area_code"].to_numpy(dtype=object)]
        )
    )
    count_ind, count_names = pd.factorize(cdf["indicator"].to_numpy(dtype=object))
    id_of = {k: i for i, k in enumerate(count_names)}
    n_ind = len(count_names) + 1
    place = level_id.astype(np.int64) * (len(areas) + 1) + area_id
    c_index = pd.Index(place[:nc] * n_ind + count_ind)
    if not c_index.is_unique:
        raise DisclosureError("count cells repeat a (level, area_code, year, indicator)")
    o_place = place[nc:]

    def lookup(refs: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(found, value, known, hidden)`` of the count ``refs`` of the rows ``at``."""
        ref_id = _map(refs, id_of, -1).astype(np.int64)
        pos = c_index.get_indexer(o_place[at] * n_ind + ref_id)
        pos[ref_id < 0] = -1
        ok = pos >= 0
        p = np.where(ok, pos, 0)
        if not len(c_value):
            return ok, np.full(len(at), np.nan), ok, ok
        return ok, np.where(ok, c_value[p], np.nan), ok & c_known[p], ok & c_hidden[p]

    rows = np.arange(len(other))
    num_ref = _map(ind, catalogue.num_of)
    den_ref = _map(ind, catalogue.den_of)
    has_num = pd.notna(num_ref)
    has_den = pd.notna(den_ref)
    n_found, n_val, n_known, n_hidden = lookup(np.where(has_num, num_ref, ""), rows)
    d_found, d_val, d_known, d_hidden = lookup(np.where(has_den, den_ref, ""), rows)

    def unusable(found: np.ndarray, known: np.ndarray, val: np.ndarray) -> np.ndarray:
        return ~found | ~known | np.isnan(val)  # absent, or without a value

    def small(val: np.ndarray, minimum: int) -> np.ndarray:
        return (val > 0) & (val < minimum)

    derived = _among(o_unit, DERIVED_UNITS)
    derived_primary = (
        has_num & (unusable(n_found, n_known, n_val) | small(n_val, settings.min_numerator))
    ) | (has_den & (unusable(d_found, d_known, d_val) | small(d_val, settings.min_denominator)))
    # a composite index or class: suppressed with any count behind its components
    composite = np.zeros(len(other), dtype=bool)
    comp_rows = np.flatnonzero(_map(ind, catalogue.inputs_of, ()).astype(bool))
    if len(comp_rows):
        inputs = [catalogue.inputs_of[k] for k in ind[comp_rows]]
        sizes = np.array([len(x) for x in inputs], dtype=np.int64)
        at = np.repeat(comp_rows, sizes)
        refs = np.array([k for x in inputs for k in x], dtype=object)
        if len(refs):
            hit = lookup(refs, at)[3]
            composite[np.unique(at[hit])] = True
    inherits = (has_num & n_hidden) | (has_den & d_hidden) | composite
    den_hidden = has_den & d_hidden
    n_units = other["n_units"].to_numpy(dtype=float, na_value=np.nan)
    top_share = other["top_n_share"].to_numpy(dtype=float, na_value=np.nan)
    magnitude_primary = _among(o_unit, MAGNITUDE_UNITS) & (
        (n_units < settings.min_units) | (top_share > settings.dominance_k)
    )
    status_in = other["status"].to_numpy(dtype=object)
    value = other["value"].to_numpy(dtype=float, na_value=np.nan)
    is_ok = (status_in == "ok") & ~np.isnan(value)
    other_reason = np.select(
        [
            status_in == "not_covered",
            ~is_ok & derived & den_hidden,  # not_applicable needs its 0 denominator published
            ~is_ok,
            pd.isna(o_unit),  # not in the catalogue: fail closed
            derived & derived_primary,
            derived & inherits,
            magnitude_primary,
        ],
        [
            "not_covered",
            "inherited",
            "not_applicable",
            "primary",
            "primary",
            "inherited",
            "primary",
        ],
        default="published",
    ).astype(object)
    # one frame from the column arrays (pd.concat would test every None of the others)
    reason = np.concatenate([res.reason, other_reason])
    if "is_unplaced" in pdf:
        # a regio or studiegebied cell without the regions that place it in the hierarchy (an
        # export with another configuration than the indicators'): no relation protects it,
        # so it fails closed. Hiding a cell in no relation narrows nobody's interval.
        unplaced = np.concatenate(
            [cdf["is_unplaced"].to_numpy(dtype=bool), other["is_unplaced"].to_numpy(dtype=bool)]
        )
        reason = np.where(unplaced & (reason == "published"), "primary", reason).astype(object)
    no = len(other)
    out = pd.DataFrame(
        {
            "level": np.asarray(levels, dtype=object)[level_id],
            "area_code": np.asarray(areas, dtype=object)[area_id],
            "year": np.concatenate([cdf["year"].to_numpy(), other["year"].to_numpy()]),
            "indicator": np.concatenate([cdf["indicator"].to_numpy(dtype=object), ind]),
            "unit": np.concatenate([np.full(nc, "count", dtype=object), o_unit]),
            "status": np.where(
                _among(reason, SUPPRESSED_REASONS),
                "suppressed",
                np.where(reason == "published", "ok", reason),
            ).astype(object),
            "reason": reason,
            "value": np.concatenate([c_value, value]),
            "feasible_lower": np.concatenate([res.lower, np.full(no, np.nan)]),
            "feasible_upper": np.concatenate([res.upper, np.full(no, np.nan)]),
            "protected": np.concatenate([res.protected, np.full(no, None, dtype=object)]),
        }
    )
    return out


def disclosure_step(
    specs: Sequence[IndicatorSpec],
    *,
    settings: DisclosureSettings,
    links: Sequence[tuple[str, str]] = (),
    secondary: bool = True,
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The per-gemeente function for ``applyInPandas`` (:func:`disclose_gemeente` with the
    catalogue, a plain typed function: Spark reads its hints and pickles ``settings``, a small
    frozen dataclass, the catalogue and the links to the workers).

    One Arrow round trip per gemeente and year instead of one per group: at national scale
    that is ~700 calls instead of ~40,000, and the round trip cost more than most groups'
    suppression. The derived cells go with their counts, so no window or join has to bring
    every area's counts to each of its rates (a map of ~70 counts built per row took longer
    than all the LPs)."""
    catalogue = _Catalogue.of(check_specs(specs), links)

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return disclose_gemeente(
            pdf, catalogue=catalogue, settings=settings, links=links, secondary=secondary
        )

    return run


def disclosure_cells(
    cells: DataFrame,
    hierarchy: DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    magnitude_contributors: DataFrame | None = None,
    regions: Regions | None = None,
) -> DataFrame:
    """The cells as :func:`apply_disclosure` hands them to :func:`disclose_gemeente`, grouped
    by ``year, gemeente_code``: ``level, area_code, parent_code, gemeente_code, year,
    indicator, value, status``, ``n_units, top_n_share`` (magnitudes with contributor data;
    else null), ``is_unplaced``. Cells outside the hierarchy get their own gemeente key (or
    none) and so take part in no relation: primary rules only; a regio or studiegebied cell
    outside it (``is_unplaced``: no ``regions`` given, or another region) is suppressed.

    With ``regions`` the grouping key ``disclosure_group`` is the study area for every cell
    (the study area relates every gemeente, so the year is one group) and ``gemeente_code``
    the row's own gemeente (null for regio and studiegebied)."""
    unit_of = _literal_map({s.key: s.unit for s in specs})
    base = cells.select("level", "area_code", "year", "indicator", "value", "status")
    no_contributors = [
        F.lit(None).cast("long").alias("n_units"),
        F.lit(None).cast("double").alias("top_n_share"),
    ]
    if magnitude_contributors is not None:
        keys = ["level", "area_code", "year", "indicator"]
        is_magnitude = F.coalesce(unit_of[F.col("indicator")].isin(*MAGNITUDE_UNITS), F.lit(False))
        base = (
            base.filter(is_magnitude)
            .join(
                magnitude_contributors.select(
                    *keys,
                    F.col("n_units").cast("long").alias("n_units"),
                    F.col("top_n_share").cast("double").alias("top_n_share"),
                ),
                on=keys,
                how="left",
            )
            .unionByName(base.filter(~is_magnitude).select("*", *no_contributors))
        )
    else:
        base = base.select("*", *no_contributors)
    # The area map is one row per area (~17k nationally): broadcast, no shuffle of the cells.
    placed = _area_map(hierarchy, regions).withColumn("_placed", F.lit(True))
    out = (
        base.join(F.broadcast(placed), on=["level", "area_code"], how="left")
        .withColumn(
            "is_unplaced",
            F.col("level").isin(*REFERENCE_LEVELS) & F.col("_placed").isNull(),
        )
        .withColumn(
            "gemeente_code",
            F.coalesce(
                F.col("gemeente_code"),
                F.when(F.col("level") == "gemeente", F.col("area_code")),
            ),
        )
        .select(
            "level",
            "area_code",
            "parent_code",
            "gemeente_code",
            "year",
            "indicator",
            "value",
            "status",
            "n_units",
            "top_n_share",
            "is_unplaced",
        )
    )
    if regions is not None:
        return out.withColumn("disclosure_group", F.lit(STUDY_AREA_CODE))
    return out


def apply_disclosure(
    cells: DataFrame,
    hierarchy: DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    settings: DisclosureSettings,
    magnitude_contributors: DataFrame | None = None,
    links: Sequence[tuple[str, str]] = (),
    secondary: bool = True,
    regions: Regions | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Primary, secondary and inherited suppression, rounding and the audit.

    ``regions`` (``zicht.features.regions``): the cells hold the levels regio and
    studiegebied, protected in the same tree (gemeente within regio for the gemeenten of a
    region, every gemeente and so every region within the study area). The study area ties
    every gemeente together, so each year is then one pandas call, on one core: the price of
    reference rows (measured in the README).

    ``cells``: ``level, area_code, year, indicator, value, status`` (ok, not_applicable,
    not_covered). ``hierarchy``: ``buurt_code, wijk_code, gemeente_code``, one row per buurt.
    ``magnitude_contributors`` is the hook for the dominance and min_units rules on magnitudes
    (euro, km), which need data about the contributors behind a cell: ``level, area_code, year,
    indicator, n_units`` (contributors behind the cell) and ``top_n_share`` (share of the cell
    total held by its ``dominance_n`` largest contributors), either nullable. Without it,
    magnitudes are published as computed (the catalogue has none yet).

    ``links``: ``(narrow, broad)`` pairs of count indicators whose difference is a count too
    (:func:`linked_indicators`); each connected family of linked indicators is suppressed and
    audited as one group per gemeente and year, and the audit gets one ``linked_difference``
    row per pair and area. ``secondary=False`` turns complementary suppression off: only for
    the test that shows the audit then fails.

    One pandas call per (year, gemeente) (:func:`disclose_gemeente`): one gemeente's wijken and
    buurten with all their cells -- small by construction (the largest gemeente has a few
    hundred buurten), so each call fits a Python worker and its LPs stay tiny.

    Returns ``(published, audit)``. ``published`` is :func:`published_from_audit` of
    ``audit``: a job writing both should persist ``audit`` first and project the persisted
    copy, or the pandas step runs once per output. Cells of an indicator outside ``specs``
    fail closed (suppressed, reason primary).
    """
    by_key = check_specs(specs)
    for narrow, broad in links:
        for ref in (narrow, broad):
            if ref not in by_key or by_key[ref].unit != "count":
                raise DisclosureError(f"link {narrow} < {broad}: {ref!r} is not a count")
    schema = T.StructType(
        [
            T.StructField("level", T.StringType()),
            T.StructField("area_code", T.StringType()),
            T.StructField("year", cells.schema["year"].dataType),
            T.StructField("indicator", T.StringType()),
            T.StructField("unit", T.StringType()),
            T.StructField("status", T.StringType()),
            T.StructField("reason", T.StringType()),
            T.StructField("value", T.DoubleType()),
            T.StructField("feasible_lower", T.DoubleType()),
            T.StructField("feasible_upper", T.DoubleType()),
            T.StructField("protected", T.BooleanType()),
        ]
    )
    # The step is Python work, not bytes: adaptive execution would merge the few hundred MB
    # of national cells into two or three tasks by size and leave a core idle for much of the
    # stage (77, 69 and 26 s on two cores); even eight tasks of ~90 gemeenten differ 3x. A
    # repartition by number is never merged, and the groupBy reuses it.
    partitions = max(int(cells.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1), 32)
    group = "gemeente_code" if regions is None else "disclosure_group"
    audit = (
        disclosure_cells(
            cells,
            hierarchy,
            specs=specs,
            magnitude_contributors=magnitude_contributors,
            regions=regions,
        )
        .repartition(partitions, "year", group)
        .groupBy("year", group)
        .applyInPandas(
            disclosure_step(specs, settings=settings, links=links, secondary=secondary), schema
        )
    )
    return published_from_audit(audit, settings=settings), audit


def published_from_audit(audit: DataFrame, *, settings: DisclosureSettings) -> DataFrame:
    """The partner cells: the audit without its difference rows, values rounded per unit and
    emptied unless the status is ok."""
    return audit.filter(F.col("reason") != F.lit(LINKED)).select(
        "level",
        "area_code",
        "year",
        "indicator",
        F.when(
            F.col("status") == "ok",
            _rounded(F.col("value"), F.col("unit"), settings.rounding_base),
        ).alias("value"),
        "status",
    )


# --------------------------------------------------------------------------- report

RULES: tuple[tuple[str, str], ...] = (
    ("primary_count", "a count from 1 to min_count - 1 is suppressed; 0 is published"),
    (
        "primary_rate_share",
        "a rate, share or index whose numerator count is 1..min_numerator - 1 or whose "
        "denominator count is 1..min_denominator - 1 is suppressed",
    ),
    ("no_min_max", "no minimum or maximum is published (refused in the catalogue)"),
    (
        "inheritance",
        "a rate, share or index is suppressed whenever a count it is computed from is suppressed",
    ),
    (
        "secondary_hierarchy",
        "complementary suppression along buurt within wijk within gemeente, per count "
        "indicator and year, so that no suppressed count follows by subtraction or addition",
    ),
    (
        "secondary_linked_tables",
        "a phenomenon and a narrower one (incident codes, classes or signal categories a "
        "subset) are suppressed together: their difference is a count, never published, and "
        "one from 1 to min_count - 1 must stay as protected as a suppressed cell",
    ),
    (
        "audit_feasible_interval",
        "linear programme (HiGHS) per gemeente, indicator and year: the feasible interval of "
        "every suppressed count must be at least protection_width wide",
    ),
    ("rounding", "counts and euros whole, rates and km one decimal, shares three, index two"),
)


REGION_RULE = (
    "with configured regions the hierarchy goes on above the gemeente: gemeente within regio "
    "(the gemeenten of a region) and every gemeente, so every region, within the study area "
    "(studiegebied); primary, inherited and secondary suppression and the audit cover those "
    "cells like the others, so a region or study-area total minus the published gemeenten "
    "gives no suppressed cell back"
)


def disclosure_report(
    audit: DataFrame,
    *,
    settings: DisclosureSettings,
    dominance_applied: bool = False,
    links: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``disclosure_report.json``: rules applied, per level cell counts, the audit verdict and
    the information loss.

    Per level it gives how many cells are published, suppressed, not_applicable and
    not_covered, never which rule suppressed a cell (that split would tell partners something
    about the values). Information loss: of the count cells at or above ``min_count`` (cells
    no primary rule hides), the share secondary suppression hides, per level and overall; it
    is an aggregate over every indicator and area, so it bounds no single cell. Collects one
    small aggregate to the driver: a few rows per level.
    """
    rules: list[dict[str, Any]] = [{"name": n, "description": d} for n, d in RULES]
    rules.append(
        {
            "name": "dominance_min_units",
            "description": f"({settings.dominance_n}, {settings.dominance_k:g}) dominance and "
            f"min_units {settings.min_units} on magnitudes (euro, km)",
            "applied": dominance_applied,
        }
    )
    parameters = {
        "min_count": settings.min_count,
        "min_numerator": settings.min_numerator,
        "min_denominator": settings.min_denominator,
        "min_units": settings.min_units,
        "dominance_n": settings.dominance_n,
        "dominance_k": settings.dominance_k,
        "protection_width": settings.protection_width,
        "rounding_base": settings.rounding_base,
    }
    is_diff = F.col("reason") == F.lit(LINKED)
    large = (
        (F.col("unit") == "count")
        & ~is_diff
        & F.col("value").isNotNull()
        & (F.col("value") >= settings.min_count)
        & F.col("status").isin("ok", "suppressed")
    )
    # Small by construction: at most 3 levels x 4 statuses x 2 (differences or not).
    rows = (
        audit.groupBy("level", "status", is_diff.alias("is_diff"))
        .agg(
            F.count(F.lit(1)).alias("cells"),
            F.sum(F.when(F.col("protected") == F.lit(False), 1).otherwise(0)).alias("unprotected"),
            F.sum(F.when(F.col("protected").isNotNull(), 1).otherwise(0)).alias("audited"),
            F.sum(F.when(large, 1).otherwise(0)).alias("large"),
            F.sum(F.when(large & (F.col("reason") == "secondary"), 1).otherwise(0)).alias(
                "large_secondary"
            ),
        )
        .collect()
    )
    levels: dict[str, dict[str, int]] = {
        lv: {"published": 0, "suppressed": 0, "not_applicable": 0, "not_covered": 0}
        for lv in LEVELS
    }
    loss_counts: dict[str, list[int]] = {lv: [0, 0] for lv in LEVELS}
    unprotected = audited = diff_audited = diff_unprotected = 0
    for r in rows:
        unprotected += int(r["unprotected"])
        audited += int(r["audited"])
        if r["is_diff"]:
            diff_audited += int(r["audited"])
            diff_unprotected += int(r["unprotected"])
            continue
        key = "published" if r["status"] == "ok" else str(r["status"])
        zero = {"published": 0, "suppressed": 0, "not_applicable": 0, "not_covered": 0}
        levels.setdefault(str(r["level"]), zero)[key] = int(r["cells"])
        lc = loss_counts.setdefault(str(r["level"]), [0, 0])
        lc[0] += int(r["large"])
        lc[1] += int(r["large_secondary"])

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    if any(lv in levels for lv in REFERENCE_LEVELS):
        rules.append({"name": "secondary_regions", "description": REGION_RULE})
    total_large = sum(v[0] for v in loss_counts.values())
    total_secondary = sum(v[1] for v in loss_counts.values())
    return {
        "rules": rules,
        "parameters": parameters,
        "linked_tables": [{"narrow": a, "broad": b} for a, b in links],
        "levels": levels,
        "information_loss": {
            "definition": "share of the count cells at or above min_count (which no primary "
            "rule hides) that secondary suppression hides",
            "overall": share(total_secondary, total_large),
            "count_cells_at_or_above_min": total_large,
            "hidden_by_secondary": total_secondary,
            "per_level": {lv: share(v[1], v[0]) for lv, v in loss_counts.items()},
        },
        "audit": {
            "passed": unprotected == 0,
            "audited_cells": audited,
            "unprotected_cells": unprotected,
            "linked_differences_audited": diff_audited,
            "linked_differences_unprotected": diff_unprotected,
            "protection_width": settings.protection_width,
        },
    }


def joint_audit(
    audit: DataFrame,
    earlier: Sequence[DataFrame],
    hierarchy: DataFrame,
    *,
    settings: DisclosureSettings,
    regions: Regions | None = None,
) -> DataFrame:
    """The audit of a release together with earlier releases of the same data.

    ``regions``: the release's regions (:func:`apply_disclosure`); their cells are then
    audited in the same tree, one group per indicator and year.

    ``audit``: this release's audit (:func:`apply_disclosure`); ``earlier``: the published
    patterns of earlier releases (``level, area_code, year, indicator, status``). A partner who
    holds every release knows each count published in any of them, so a count stays hidden
    only where every release suppressed it (a release without the cell says nothing about it).
    Each such count must keep a feasible interval of ``protection_width`` given all published
    counts and the hierarchy. Linked-table differences are not re-audited here (each release's
    own audit covers them). Returns the jointly hidden counts: ``level, area_code, year,
    indicator, value, feasible_lower, feasible_upper, protected``.
    """
    keys = ["level", "area_code", "year", "indicator"]
    counts = audit.where((F.col("unit") == "count") & (F.col("reason") != F.lit(LINKED))).select(
        *keys, "value", "status"
    )
    hidden_all: Column = F.col("status") == "suppressed"
    for i, e in enumerate(earlier):
        col = f"_s{i}"
        counts = counts.join(e.select(*keys, F.col("status").alias(col)), keys, "left")
        hidden_all = hidden_all & F.coalesce(F.col(col) == "suppressed", F.lit(True))
    counts = (
        counts.withColumn("_hidden", hidden_all)
        .withColumn(
            "reason",
            F.when(F.col("_hidden"), F.lit("primary"))
            .when(F.col("status").isin("ok", "suppressed"), F.lit("published"))
            .otherwise(F.col("status")),
        )
        # as in suppress_group: every count with a value is "ok" and the reason says hidden
        .withColumn(
            "status",
            F.when(F.col("status").isin("ok", "suppressed"), F.lit("ok")).otherwise(
                F.col("status")
            ),
        )
        .join(_area_map(hierarchy, regions), ["level", "area_code"], "left")
        .withColumn(
            "gemeente_code",
            F.coalesce(
                F.col("gemeente_code"), F.when(F.col("level") == "gemeente", F.col("area_code"))
            ),
        )
        .select(*keys, "parent_code", "gemeente_code", "value", "status", "reason")
    )
    group = "gemeente_code"
    if regions is not None:  # the study area ties every gemeente: one group per year
        group = "disclosure_group"
        counts = counts.withColumn(group, F.lit(STUDY_AREA_CODE))
    schema = T.StructType(
        [
            T.StructField("level", T.StringType()),
            T.StructField("area_code", T.StringType()),
            T.StructField("year", audit.schema["year"].dataType),
            T.StructField("indicator", T.StringType()),
            T.StructField("value", T.DoubleType()),
            T.StructField("feasible_lower", T.DoubleType()),
            T.StructField("feasible_upper", T.DoubleType()),
            T.StructField("protected", T.BooleanType()),
        ]
    )

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        # one gemeente's cells of one indicator and year: small, like apply_disclosure's groups
        out = audit_group(pdf.reset_index(drop=True), settings=settings)
        out = out[out["reason"] == "primary"]
        out["protected"] = [None if pd.isna(v) else bool(v) for v in out["protected"]]
        return out[[f.name for f in schema.fields]]

    return counts.groupBy("indicator", "year", group).applyInPandas(run, schema)
