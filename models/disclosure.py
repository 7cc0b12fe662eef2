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
  least ``protection_width`` wide.

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
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

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


_LEVEL_RANK = {"buurt": 0, "wijk": 1, "gemeente": 2}


def _known(pdf: pd.DataFrame) -> np.ndarray:
    """Rows that hold a value a relation can use (status ok and a value)."""
    return ((pdf["status"] == "ok") & pdf["value"].notna()).to_numpy()


def build_relations(pdf: pd.DataFrame) -> list[Relation]:
    """Parent-children relations of one group (one gemeente, indicator and year).

    Positions refer to ``pdf``'s rows (0..n-1). Each wijk is related to its buurten, the
    gemeente to its wijken and, directly, to all its buurten: the last one is implied when every
    wijk is present but catches recoveries across a hidden wijk (and stands in for a missing
    wijk). Cells without a value (not_covered, not_applicable) take part in no relation. Order:
    bottom up (wijk relations first), then area code, so complements are found locally first.
    """
    return _relations(
        np.arange(len(pdf)),
        known=_known(pdf),
        levels=pdf["level"].to_numpy(dtype=object),
        codes=pdf["area_code"].to_numpy(dtype=object),
        parents=pdf["parent_code"].to_numpy(dtype=object),
        values=pdf["value"].to_numpy(dtype=float, na_value=np.nan),
    )


def _relations(
    rows: np.ndarray,
    *,
    known: np.ndarray,
    levels: np.ndarray,
    codes: np.ndarray,
    parents: np.ndarray,
    values: np.ndarray,
) -> list[Relation]:
    """:func:`build_relations` of the cells at positions ``rows`` of the column arrays (one
    indicator of a group); the relations hold positions into the arrays."""
    pos_of = {str(codes[i]): i for i in rows if known[i]}
    children: dict[tuple[int, str], list[int]] = {}
    for i in rows:
        if not known[i]:
            continue
        parent = parents[i]
        if isinstance(parent, str) and parent in pos_of:
            children.setdefault((pos_of[parent], str(levels[i])), []).append(int(i))
    gemeenten = [int(i) for i in rows if known[i] and levels[i] == "gemeente"]
    buurten = [int(i) for i in rows if known[i] and levels[i] == "buurt"]
    for g in gemeenten:  # the group is one gemeente: every buurt in it is a buurt of g
        children[(g, "buurt")] = buurten

    keyed: list[tuple[tuple[int, str, int], Relation]] = []
    for (p, child_level), kids in children.items():
        if not kids:
            continue
        kids_sorted = tuple(sorted(kids, key=lambda i: str(codes[i])))
        diff = values[p] - float(sum(values[i] for i in kids_sorted))
        sense = "eq" if abs(diff) <= _EPS else ("le" if diff < 0 else "ge")
        order = (_LEVEL_RANK[str(levels[p])], str(codes[p]), -_LEVEL_RANK[child_level])
        keyed.append((order, Relation(p, kids_sorted, sense)))
    return [r for _, r in sorted(keyed, key=lambda kr: kr[0])]


def _pairs(relations: Iterable[Relation]) -> set[tuple[int, int]]:
    """(child, parent) pairs of the relations: a count of a subset never exceeds its parent."""
    return {(c, r.parent) for r in relations for c in r.children}


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
    subset of ``hidden``) limits the solves to the cells whose interval is wanted; the other
    hidden cells are still variables (e.g. the never-published differences of linked tables).
    """
    n = len(values)
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    var_rows = [i for i in range(n) if hidden[i]]
    if not var_rows:
        return lower, upper
    col = {row: j for j, row in enumerate(var_rows)}

    # The constraints as sparse rows ``row_lower <= sum(coef * x) <= row_upper``.
    coefs: list[dict[int, float]] = []
    row_lower: list[float] = []
    row_upper: list[float] = []

    def add(terms: Iterable[tuple[int, float]], lo: float, hi: float) -> None:
        """``lo <= sum(coef * cell) <= hi``, published cells moved to the bounds."""
        a: dict[int, float] = {}
        const = 0.0
        for row, coef in terms:
            j = col.get(row)
            if j is None:
                const += coef * float(values[row])
            else:
                a[j] = a.get(j, 0.0) + coef
        a = {j: v for j, v in a.items() if v != 0.0}
        if a:  # without a variable the relation says nothing about the hidden cells
            coefs.append(a)
            row_lower.append(lo - const)
            row_upper.append(hi - const)

    inf = float("inf")
    for rel in relations:
        terms = [(rel.parent, 1.0)] + [(c, -1.0) for c in rel.children]  # parent - sum
        if rel.sense == "eq":
            add(terms, 0.0, 0.0)
        elif rel.sense == "le":
            add(terms, -inf, 0.0)
        else:
            add(terms, 0.0, inf)
    for child, parent in sorted(_pairs(relations)):
        if values[child] <= values[parent] + _EPS:
            add([(child, 1.0), (parent, -1.0)], -inf, 0.0)

    constrained = np.zeros(len(var_rows), dtype=bool)
    for a in coefs:
        constrained[list(a)] = True

    # Fewer LPs (they dominate the run time): 0 is a valid lower bound, and ``cap`` (a
    # published parent minus its published children) a valid upper bound; a feasible point
    # that reaches such a bound proves it is the optimum. The true values are one feasible
    # point and every LP solution is another, so many optima come for free (typically the
    # min of one cell and the max of its complement come from the same vertex).
    nv = len(var_rows)
    cap = np.full(nv, np.inf)
    for rel in relations:
        if rel.sense == "le" or rel.parent in col:
            continue
        open_sum = float(sum(values[c] for c in rel.children if c not in col))
        for c in rel.children:
            if c in col:
                cap[col[c]] = min(cap[col[c]], float(values[rel.parent]) - open_sum)
    lo_val = np.full(nv, np.nan)
    hi_val = np.full(nv, np.nan)

    def learn(x: np.ndarray) -> None:
        hit_lo = np.isnan(lo_val) & (x <= _TOL)
        lo_val[hit_lo] = 0.0
        hit_hi = np.isnan(hi_val) & np.isfinite(cap) & (x >= cap - _TOL)
        hi_val[hit_hi] = cap[hit_hi]

    learn(np.array([float(values[row]) for row in var_rows]))
    lp = _AttackerLp(nv, coefs, row_lower, row_upper)
    for row, j in col.items():
        if targets is not None and not targets[row]:
            continue
        if not constrained[j]:  # in no relation: anything from 0 up is consistent
            lo_val[j], hi_val[j] = 0.0, np.inf
        for sign, store in ((1.0, lo_val), (-1.0, hi_val)):
            if not np.isnan(store[j]):
                continue
            status, fun, x = lp.minimize(j, sign)
            if status == "unbounded" and sign < 0:
                store[j] = np.inf
            elif status == "optimal":
                store[j] = sign * fun
                learn(x)
            else:
                # The true values satisfy every constraint, so this is numerical trouble:
                # fail closed (an empty interval is unprotected and draws more complements).
                lo_val[j] = hi_val[j] = float(values[row])
        lower[row], upper[row] = lo_val[j], hi_val[j]
    return lower, upper


class _AttackerLp:
    """The attacker's LP of one group, built once and re-solved per objective.

    ``x >= 0`` and ``row_lower[r] <= sum(coefs[r][j] * x[j]) <= row_upper[r]``. Each solve
    minimises ``sign * x[j]``. HiGHS keeps the optimal basis between solves, so after the first
    one a change of objective costs a few simplex pivots instead of a new model: at national
    scale the audit solves hundreds of thousands of such LPs, and scipy's ``linprog`` spends
    three quarters of each call on input checks and model set-up. It is the same HiGHS solver
    that ``linprog`` (method "highs") calls.
    """

    def __init__(
        self,
        nv: int,
        coefs: Sequence[Mapping[int, float]],
        row_lower: Sequence[float],
        row_upper: Sequence[float],
    ) -> None:
        # highspy's ``Highs`` wrapper adds Python logging callbacks whose set-up prints a
        # banner on standard output (inside a Spark worker, into the job's console); its base
        # class is the same solver without them.
        from highspy import _core

        self._h = _core._Highs()
        self._h.setOptionValue("output_flag", False)
        self._h.setOptionValue("threads", 1)  # one LP per Spark task: no nested threads
        self._h.setOptionValue("presolve", "off")  # tiny LPs; keeps the basis between solves
        inf = _core.kHighsInf
        entries = sorted((j, r, v) for r, a in enumerate(coefs) for j, v in a.items())
        cols = np.array([j for j, _, _ in entries], dtype=np.int64)
        lp = _core.HighsLp()
        lp.num_col_ = nv
        lp.num_row_ = len(coefs)
        lp.col_cost_ = np.zeros(nv)
        lp.col_lower_ = np.zeros(nv)
        lp.col_upper_ = np.full(nv, inf)
        lp.row_lower_ = np.asarray(row_lower, dtype=float)  # float inf is HiGHS' infinity
        lp.row_upper_ = np.asarray(row_upper, dtype=float)
        lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(cols, np.arange(nv + 1)).astype(np.int32)
        lp.a_matrix_.index_ = np.array([r for _, r, _ in entries], dtype=np.int32)
        lp.a_matrix_.value_ = np.array([v for _, _, v in entries], dtype=float)
        self._h.passModel(lp)
        self._status = _core.HighsModelStatus
        self._costed: int | None = None

    def minimize(self, j: int, sign: float) -> tuple[str, float, np.ndarray]:
        """``(status, optimum, solution)`` of min ``sign * x[j]``; status optimal, unbounded
        or failed."""
        if self._costed is not None and self._costed != j:
            self._h.changeColCost(self._costed, 0.0)
        self._h.changeColCost(j, sign)
        self._costed = j
        self._h.run()
        status = self._h.getModelStatus()
        if status == self._status.kOptimal:
            x = np.asarray(self._h.getSolution().col_value, dtype=float)
            return "optimal", float(self._h.getInfo().objective_function_value), x
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
    lower, upper, protected = _audit(values, reason, _known(out), rels, settings)
    out["feasible_lower"] = lower
    out["feasible_upper"] = upper
    out["protected"] = pd.array(protected, dtype="boolean")
    return out


def _audit(
    values: np.ndarray,
    reason: np.ndarray,
    known: np.ndarray,
    relations: Sequence[Relation],
    settings: DisclosureSettings,
) -> tuple[np.ndarray, np.ndarray, list[bool | None]]:
    """:func:`audit_group` on column arrays: ``(feasible_lower, feasible_upper, protected)``,
    NaN and None outside the cells that must be protected."""
    hidden = np.isin(reason, HIDDEN_REASONS) & known
    small = (values > 0) & (values < settings.min_count)
    targets = known & (np.isin(reason, ("primary", "secondary")) | ((reason == LINKED) & small))
    lower, upper = feasible_intervals(values, hidden, relations, targets)
    wide = (upper - lower) >= settings.protection_width - _EPS
    protected: list[bool | None] = [
        bool(w) if t else None for w, t in zip(wide, targets, strict=True)
    ]
    return np.where(targets, lower, np.nan), np.where(targets, upper, np.nan), protected


def _cheapest(candidates: Iterable[int], values: np.ndarray, codes: np.ndarray) -> int | None:
    """Smallest value, then area code (deterministic); None when there is no candidate."""
    best = sorted(candidates, key=lambda i: (float(values[i]), str(codes[i])))
    return best[0] if best else None


def difference_key(narrow: str, broad: str) -> str:
    """Name of the never-published difference ``broad - narrow`` of two linked indicators."""
    return f"{broad}-{narrow}"


def _with_differences(
    df: pd.DataFrame, links: Sequence[tuple[str, str]]
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """``df`` plus one difference row per linked pair and area (both cells known), reason
    linked_difference: the count an attacker gets by subtracting the narrower table; and the
    links kept. A pair whose difference is negative somewhere is no subset relation in this
    group (a count that is not monotone in the incident set) and is dropped: ``broad -
    narrow`` is then no count, and a free difference tells the attacker nothing."""
    known = _known(df)
    indicator = df["indicator"].to_numpy(dtype=object)
    levels = df["level"].to_numpy(dtype=object)
    codes = df["area_code"].to_numpy(dtype=object)
    values = df["value"].to_numpy(dtype=float, na_value=np.nan)
    row_of = {
        (indicator[i], levels[i], codes[i]): i for i in np.flatnonzero(known)
    }  # one cell per indicator, level and area
    extra: list[pd.DataFrame] = []
    kept: list[tuple[str, str]] = []
    for narrow, broad in links:
        pairs = [
            (i, row_of[(narrow, lv, code)])
            for (ind, lv, code), i in row_of.items()
            if ind == broad and (narrow, lv, code) in row_of
        ]
        if not pairs:
            continue
        b_rows = np.array([i for i, _ in pairs])
        a_rows = np.array([j for _, j in pairs])
        diff = values[b_rows] - values[a_rows]
        if (diff < -_EPS).any():
            continue
        kept.append((narrow, broad))
        d = df.iloc[b_rows].copy()
        d["value"] = diff
        d["indicator"] = difference_key(narrow, broad)
        d["reason"] = LINKED
        extra.append(d)
    if not extra:
        return df, kept
    return pd.concat([df, *extra], ignore_index=True), kept


def group_relations(df: pd.DataFrame, links: Sequence[tuple[str, str]]) -> list[Relation]:
    """Hierarchy relations per indicator of the group (and per difference), then one
    ``broad = narrow + difference`` relation per linked pair and area; positions refer to
    ``df``'s rows."""
    indicator = df["indicator"].astype(str).to_numpy(dtype=object)
    levels = df["level"].to_numpy(dtype=object)
    codes = df["area_code"].to_numpy(dtype=object)
    columns = {
        "known": _known(df),
        "levels": levels,
        "codes": codes,
        "parents": df["parent_code"].to_numpy(dtype=object),
        "values": df["value"].to_numpy(dtype=float, na_value=np.nan),
    }
    relations: list[Relation] = []
    for ind in sorted(set(indicator)):
        relations += _relations(np.flatnonzero(indicator == ind), **columns)
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
            relations.append(Relation(b, (a, d), "eq"))
    return relations


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
    come last); a hidden parent by its cheapest nonzero child, else a zero child. Then the LP
    audit runs; each unprotected cell draws the cheapest published nonzero cell of its
    relations (else of the group), and both steps repeat until the audit passes. Each round
    hides at least one more cell, so this ends; with every cell hidden nothing is fixed and
    every interval is open above. ``secondary=False`` (tests only: it shows the audit catches a
    pattern with primary suppression alone) skips the complements and only audits.

    The group is worked on as column arrays and turned into a frame once at the end: at
    national scale there are tens of thousands of groups, and per-group pandas calls cost more
    than the LPs.
    """
    df = pdf.copy()
    if "indicator" not in df.columns:
        df["indicator"] = ""
    df["reason"] = None
    if links:
        df, links = _with_differences(df, links)
    rank = -df["level"].map(_LEVEL_RANK).fillna(-1).to_numpy(dtype=float)
    order = np.lexsort(
        (
            df["area_code"].astype(str).to_numpy(),
            rank,
            df["indicator"].astype(str).to_numpy(),
        )
    )  # (indicator, level from the top, area code), stable
    df = df.take(order).reset_index(drop=True)
    n = len(df)
    values = df["value"].to_numpy(dtype=float, na_value=np.nan)
    codes = (df["indicator"].astype(str) + "|" + df["area_code"].astype(str)).to_numpy()
    known = _known(df)
    status_in = df["status"].to_numpy(dtype=object)
    is_diff = (df["reason"] == LINKED).to_numpy()

    reason = np.full(n, "published", dtype=object)
    reason[status_in == "not_applicable"] = "not_applicable"
    reason[(status_in == "ok") & ~known] = "not_applicable"
    reason[status_in == "not_covered"] = "not_covered"
    primary = known & (values > 0) & (values < settings.min_count) & ~is_diff
    reason[primary] = "primary"
    reason[is_diff] = LINKED
    diff_small = is_diff & known & (values > 0) & (values < settings.min_count)

    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    protected: list[bool | None] = [None] * n
    if primary.any() or diff_small.any():  # else nothing is hidden that needs protection
        lower, upper, protected = _suppress(
            df, links, values, codes, known, reason, diff_small, settings, secondary
        )

    out = df
    out["reason"] = reason
    status = status_in.copy()
    status[np.isin(reason, ("primary", "secondary"))] = "suppressed"
    status[reason == "not_applicable"] = "not_applicable"
    status[reason == LINKED] = "suppressed"  # never published; the partner table drops them
    out["status"] = status
    out["feasible_lower"] = lower
    out["feasible_upper"] = upper
    out["protected"] = pd.array(protected, dtype="boolean")
    if "indicator" not in pdf.columns:
        out = out.drop(columns="indicator")
    return out


def _suppress(
    df: pd.DataFrame,
    links: Sequence[tuple[str, str]],
    values: np.ndarray,
    codes: np.ndarray,
    known: np.ndarray,
    reason: np.ndarray,
    diff_small: np.ndarray,
    settings: DisclosureSettings,
    secondary: bool,
) -> tuple[np.ndarray, np.ndarray, list[bool | None]]:
    """The complement and audit rounds of :func:`suppress_group`; updates ``reason`` in place
    and returns the last audit's ``(feasible_lower, feasible_upper, protected)``."""
    n = len(values)
    relations = group_relations(df, links)
    member_of: dict[int, list[Relation]] = {}
    for rel in relations:
        for i in (rel.parent, *rel.children):
            member_of.setdefault(i, []).append(rel)

    def hidden(i: int) -> bool:
        return reason[i] in HIDDEN_REASONS

    def needs_protection(i: int) -> bool:
        return reason[i] in ("primary", "secondary") or bool(diff_small[i])

    def open_(i: int) -> bool:
        return bool(known[i]) and not hidden(i)

    def complement_for_singleton(rel: Relation, h: int) -> int | None:
        if h == rel.parent:
            kids = [c for c in rel.children if open_(c)]
            nonzero_kid = _cheapest([c for c in kids if values[c] > 0], values, codes)
            return nonzero_kid if nonzero_kid is not None else _cheapest(kids, values, codes)
        sibs = [c for c in rel.children if open_(c)]
        nonzero = _cheapest([c for c in sibs if values[c] > 0], values, codes)
        if nonzero is not None:
            return nonzero
        if open_(rel.parent):
            return rel.parent
        return _cheapest(sibs, values, codes)

    def close_singletons() -> None:
        changed = True
        while changed:
            changed = False
            for rel in relations:
                if rel.sense != "eq":
                    continue  # an inequality pins nothing by itself; the audit checks it
                members = (rel.parent, *rel.children)
                hid = [i for i in members if hidden(i)]
                if len(hid) != 1 or not needs_protection(hid[0]):
                    continue
                pick = complement_for_singleton(rel, hid[0])
                if pick is not None:
                    reason[pick] = "secondary"
                    changed = True

    for _ in range(n + 1):
        if secondary:
            close_singletons()
        lower, upper, protected = _audit(values, reason, known, relations, settings)
        unprotected = [i for i in range(n) if protected[i] is False]
        if not unprotected or not secondary:
            break
        added = False
        for u in sorted(unprotected, key=lambda i: codes[i]):
            near = {i for rel in member_of.get(u, []) for i in (rel.parent, *rel.children)}
            candidates = [i for i in near if open_(i)] or [i for i in range(n) if open_(i)]
            pick = _cheapest([i for i in candidates if values[i] > 0], values, codes)
            if pick is None:
                pick = _cheapest(candidates, values, codes)
            if pick is not None:
                reason[pick] = "secondary"
                added = True
        if not added:
            break  # nothing left to hide: the audit verdict reports the failure
    return lower, upper, protected


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


def _inputs_map(pairs: Mapping[str, Sequence[str]]) -> Column:
    if not pairs:
        return F.create_map().cast("map<string,array<string>>")
    args: list[Column] = []
    for k, v in sorted(pairs.items()):
        args += [F.lit(k), F.array(*[F.lit(x) for x in v]).cast("array<string>")]
    return F.create_map(*args)


def _area_map(hierarchy: DataFrame) -> DataFrame:
    """``level, area_code, parent_code, gemeente_code`` for every area of the hierarchy."""
    h = hierarchy.select("buurt_code", "wijk_code", "gemeente_code")
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


def _count_group_fn(
    settings: DisclosureSettings,
    links: Sequence[tuple[str, str]],
    secondary: bool,
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The per-gemeente function for ``applyInPandas`` (a plain typed function: Spark reads its
    hints; it pickles ``settings``, a small frozen dataclass, and the links to the workers).

    Spark hands it one gemeente and year; each family of indicators in it is a group of
    :func:`suppress_group`. One Arrow round trip per gemeente instead of one per group: at
    national scale that is ~700 calls instead of ~40,000, and the round trip cost more than
    most groups' suppression."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        outs: list[pd.DataFrame] = []
        for _, group in pdf.groupby("family", sort=True):
            present = set(group["indicator"])
            mine = [(a, b) for a, b in links if a in present and b in present]
            out = suppress_group(
                group.drop(columns="family"), settings=settings, links=mine, secondary=secondary
            )
            outs.append(out[_COUNT_OUT_COLUMNS])
        if not outs:
            return pd.DataFrame({c: [] for c in _COUNT_OUT_COLUMNS})
        out = pd.concat(outs, ignore_index=True)
        # Arrow wants plain True / False / None for a nullable boolean column.
        out["protected"] = [None if pd.isna(v) else bool(v) for v in out["protected"]]
        return out

    return run


_COUNT_OUT_COLUMNS = [
    "level",
    "area_code",
    "year",
    "indicator",
    "value",
    "status",
    "reason",
    "feasible_lower",
    "feasible_upper",
    "protected",
]


def _rounded(value: Column, unit: Column, rounding_base: int | None) -> Column:
    expr: Column = F.lit(None).cast("double")
    for u, decimals in DECIMALS.items():
        rounded = F.round(value, decimals)
        if u == "count" and rounding_base:
            rounded = F.round(value / F.lit(rounding_base)) * F.lit(float(rounding_base))
        expr = F.when(unit == u, rounded).otherwise(expr)
    return expr.cast("double")


def apply_disclosure(
    cells: DataFrame,
    hierarchy: DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    settings: DisclosureSettings,
    magnitude_contributors: DataFrame | None = None,
    links: Sequence[tuple[str, str]] = (),
    secondary: bool = True,
) -> tuple[DataFrame, DataFrame]:
    """Primary, secondary and inherited suppression, rounding and the audit.

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
    family_of = _literal_map(_families(links))
    unit_of = _literal_map({k: s.unit for k, s in by_key.items()})
    num_of = _literal_map({k: s.numerator for k, s in by_key.items()})
    den_of = _literal_map({k: s.denominator for k, s in by_key.items()})
    inputs_of = _inputs_map(composite_inputs(by_key))

    base = cells.select("level", "area_code", "year", "indicator", "value", "status").withColumn(
        "unit", unit_of[F.col("indicator")]
    )
    year_type = cells.schema["year"].dataType

    # Counts: one pandas call per (year, gemeente), suppressing each family of indicators in it
    # as one group: one gemeente's wijken and buurten -- small by construction (the largest
    # gemeente has a few hundred buurten), so each call fits a Python worker and its LPs stay
    # tiny. Cells outside the hierarchy get
    # their own gemeente key (or none) and so take part in no relation: primary rules only.
    areas = _area_map(hierarchy)
    counts = (
        base.filter(F.col("unit") == "count")
        .join(areas, on=["level", "area_code"], how="left")
        .withColumn(
            "gemeente_code",
            F.coalesce(
                F.col("gemeente_code"),
                F.when(F.col("level") == "gemeente", F.col("area_code")),
            ),
        )
    )
    count_schema = T.StructType(
        [
            T.StructField("level", T.StringType()),
            T.StructField("area_code", T.StringType()),
            T.StructField("year", year_type),
            T.StructField("indicator", T.StringType()),
            T.StructField("value", T.DoubleType()),
            T.StructField("status", T.StringType()),
            T.StructField("reason", T.StringType()),
            T.StructField("feasible_lower", T.DoubleType()),
            T.StructField("feasible_upper", T.DoubleType()),
            T.StructField("protected", T.BooleanType()),
        ]
    )
    counts_out = (
        counts.select(
            "level",
            "area_code",
            "parent_code",
            "gemeente_code",
            "year",
            "indicator",
            "value",
            "status",
        )
        .withColumn("family", F.coalesce(family_of[F.col("indicator")], F.col("indicator")))
        .groupBy("year", "gemeente_code")
        .applyInPandas(_count_group_fn(settings, links, secondary), count_schema)
        .withColumn("unit", F.lit("count"))
    )

    others = base.filter(F.col("unit").isNull() | (F.col("unit") != "count")).select(
        "level",
        "area_code",
        "year",
        "indicator",
        "value",
        "status",
        F.lit(None).cast("string").alias("reason"),
        F.lit(None).cast("double").alias("feasible_lower"),
        F.lit(None).cast("double").alias("feasible_upper"),
        F.lit(None).cast("boolean").alias("protected"),
        "unit",
    )
    if magnitude_contributors is not None:
        others = others.join(
            magnitude_contributors.select(
                "level", "area_code", "year", "indicator", "n_units", "top_n_share"
            ),
            on=["level", "area_code", "year", "indicator"],
            how="left",
        )
    else:
        others = others.withColumn("n_units", F.lit(None).cast("long")).withColumn(
            "top_n_share", F.lit(None).cast("double")
        )

    # Derived cells look up the counts of the same area and year through one window, so the
    # pandas output is consumed once (a join back onto it would run the pandas step twice).
    allc = counts_out.unionByName(others, allowMissingColumns=True)

    entry = F.struct(
        F.col("value").alias("v"),
        (F.col("status") == "suppressed").alias("s"),
        (F.col("status").isin("ok", "suppressed") & F.col("value").isNotNull()).alias("known"),
    )
    w = Window.partitionBy("level", "area_code", "year")
    # the counts of the same area and year, as a column (a lambda cannot hold a window)
    allc = allc.withColumn(
        "_refs",
        F.map_from_entries(
            F.collect_list(
                F.when(F.col("unit") == "count", F.struct(F.col("indicator"), entry))
            ).over(w)
        ),
    )
    refs = F.col("_refs")
    num = refs[num_of[F.col("indicator")]]
    den = refs[den_of[F.col("indicator")]]
    has_num = num_of[F.col("indicator")].isNotNull()
    has_den = den_of[F.col("indicator")].isNotNull()

    def small(ref: Column, minimum: int) -> Column:
        return (ref["v"] > 0) & (ref["v"] < minimum)

    def unusable(ref: Column) -> Column:  # absent, or without a value: threshold not checkable
        return ref.isNull() | ~F.coalesce(ref["known"], F.lit(False)) | ref["v"].isNull()

    derived = F.col("unit").isin(*DERIVED_UNITS)
    derived_primary = (has_num & (unusable(num) | small(num, settings.min_numerator))) | (
        has_den & (unusable(den) | small(den, settings.min_denominator))
    )
    inherits = (
        (has_num & F.coalesce(num["s"], F.lit(False)))
        | (has_den & F.coalesce(den["s"], F.lit(False)))
        # a composite index or class: suppressed with any count behind its components
        | F.coalesce(
            F.exists(
                F.coalesce(inputs_of[F.col("indicator")], F.array().cast("array<string>")),
                lambda k: F.coalesce(refs[k]["s"], F.lit(False)),
            ),
            F.lit(False),
        )
    )
    den_hidden = has_den & F.coalesce(den["s"], F.lit(False))
    magnitude_primary = F.col("unit").isin(*MAGNITUDE_UNITS) & (
        (F.col("n_units") < settings.min_units) | (F.col("top_n_share") > settings.dominance_k)
    )
    is_ok = (F.col("status") == "ok") & F.col("value").isNotNull()
    other_reason = (
        F.when(F.col("status") == "not_covered", F.lit("not_covered"))
        # not_applicable says the denominator is 0: keep it only if that count is published
        .when(~is_ok & derived & den_hidden, F.lit("inherited"))
        .when(~is_ok, F.lit("not_applicable"))
        .when(F.col("unit").isNull(), F.lit("primary"))  # not in the catalogue: fail closed
        .when(derived & derived_primary, F.lit("primary"))
        .when(derived & inherits, F.lit("inherited"))
        .when(F.coalesce(magnitude_primary, F.lit(False)), F.lit("primary"))
        .otherwise(F.lit("published"))
    )
    reason = F.coalesce(F.col("reason"), other_reason)
    status = (
        F.when(reason.isin(*SUPPRESSED_REASONS), F.lit("suppressed"))
        .when(reason == "published", F.lit("ok"))
        .otherwise(reason)
    )
    audit = allc.select(
        "level",
        "area_code",
        "year",
        "indicator",
        "unit",
        status.alias("status"),
        reason.alias("reason"),
        "value",
        "feasible_lower",
        "feasible_upper",
        "protected",
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
        levels.setdefault(str(r["level"]), {})[key] = int(r["cells"])
        lc = loss_counts.setdefault(str(r["level"]), [0, 0])
        lc[0] += int(r["large"])
        lc[1] += int(r["large_secondary"])

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

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
) -> DataFrame:
    """The audit of a release together with earlier releases of the same data.

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
        .join(_area_map(hierarchy), ["level", "area_code"], "left")
        .withColumn(
            "gemeente_code",
            F.coalesce(
                F.col("gemeente_code"), F.when(F.col("level") == "gemeente", F.col("area_code"))
            ),
        )
        .select(*keys, "parent_code", "gemeente_code", "value", "status", "reason")
    )
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

    return counts.groupBy("indicator", "year", "gemeente_code").applyInPandas(run, schema)
