"""Area vintages: several CBS classifications in ``areas``, ``area_changes`` between them, and
the placement of incidents and signals in one target vintage (CONTRACT.md section 1, *Vintages*).

Reads nothing and writes nothing. The rules here run after :func:`zicht.features.validate.
validate_table` (``zicht.jobs.validate_inputs`` calls them) and append to ``reject_rule`` like
:func:`zicht.features.link.add_point_rejects`:

- ``areas``: with a ``vintage`` column every row needs one (``vintage.required``), buurt_code is
  unique per vintage (the key rule), and the rows of vintages other than the target are *excluded*
  (kept in the store for placement, never reported: downstream every stage sees the target only).
- ``area_changes``: ``vintage_to.not_after_from``, ``vintage_from.not_in_areas`` /
  ``vintage_to.not_in_areas``, ``code_from.not_in_areas`` / ``code_to.not_in_areas`` (the code
  at its level in its vintage), ``code_to.level_differs``.
- placement (:func:`resolve_placements`, on the driver: areas and changes are small by
  construction, ~14k buurten a vintage and a few thousand changes) follows each old code through
  the change graph to the target once; :func:`prepare_placement` / :func:`finish_placement` apply
  the result to the rows by a broadcast join, in the contract's order (target code; address or
  point in the target's polygons; the old code through the changes).

A recoding or a merge moves a row exactly. A split or boundary correction places it at the lowest
level containing every part: its ``buurt_code`` becomes the *unassigned part* of that wijk or
gemeente, a pseudo buurt whose code keeps the CBS structure (``BU`` + the wijk's six digits +
``__``; for a gemeente ``BU`` + its four digits + ``____``, in the pseudo wijk ``WK`` + four
digits + ``__``), so substring rules that derive a wijk or gemeente from a buurt code still hold
and no real code (letters and digits only) can collide. :func:`unassigned_areas` makes their
hierarchy rows, so that the wijk and gemeente sums include them and disclosure control sees the
unassigned part as a cell of its own (a child of the wijk or gemeente), never only a difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

UNASSIGNED = "__"  # suffix of a pseudo code: never in a CBS code (letters and digits only)
RULE_UNKNOWN_VINTAGE = "buurt_code.unknown_vintage"
RULE_SPLIT_ACROSS_GEMEENTEN = "buurt_code.split_across_gemeenten"
LEVEL_PREFIX = {"BU": "buurt", "WK": "wijk", "GM": "gemeente"}
PLACEMENT_SCHEMA = "buurt_code string, placed_code string, placement_level string, rule string"


# --------------------------------------------------------------------------- pseudo areas


def unassigned_buurt_of_wijk(wijk_code: str) -> str:
    """The pseudo buurt holding a wijk's rows that no buurt can be given (``BU036301__``)."""
    return "BU" + wijk_code[2:] + UNASSIGNED


def unassigned_wijk_of_gemeente(gemeente_code: str) -> str:
    return "WK" + gemeente_code[2:] + UNASSIGNED


def unassigned_buurt_of_gemeente(gemeente_code: str) -> str:
    return "BU" + gemeente_code[2:] + UNASSIGNED * 2


def placement_level(buurt_code: Column) -> Column:
    """``buurt``, ``wijk`` or ``gemeente``: the lowest level a (pseudo) buurt code places at."""
    return (
        F.when(buurt_code.endswith(UNASSIGNED * 2), F.lit("gemeente"))
        .when(buurt_code.endswith(UNASSIGNED), F.lit("wijk"))
        .otherwise(F.lit("buurt"))
    )


def is_unassigned(buurt_code: Column) -> Column:
    """True for a pseudo buurt (the unassigned part of a wijk or gemeente)."""
    return buurt_code.endswith(UNASSIGNED)


def unassigned_areas(areas: DataFrame, *, placed: Sequence[DataFrame | None]) -> DataFrame:
    """Hierarchy rows of the pseudo buurten the ``placed`` frames use, in ``areas``' columns.

    ``areas``: the target vintage's rows. A pseudo buurt takes its wijk's (or gemeente's) names
    with ``(niet toegewezen)``, the mean centroid of its buurten, and null land area, polygon and
    inhabitants (so no rate or density is computed for it). No actions.
    """
    codes = None
    for df in placed:
        if df is None:
            continue
        c = df.select("buurt_code").where(is_unassigned(F.col("buurt_code"))).distinct()
        codes = c if codes is None else codes.unionByName(c)
    spark = areas.sparkSession
    if codes is None:
        codes = spark.createDataFrame([], "buurt_code string")
    codes = codes.distinct()
    suffix = F.lit(" (niet toegewezen)")
    wijken = areas.groupBy("wijk_code").agg(
        F.min("wijk_name").alias("wijk_name"),
        F.min("gemeente_code").alias("gemeente_code"),
        F.min("gemeente_name").alias("gemeente_name"),
        F.avg("x").alias("x"),
        F.avg("y").alias("y"),
    )
    gemeenten = areas.groupBy("gemeente_code").agg(
        F.min("gemeente_name").alias("gemeente_name"),
        F.avg("x").alias("x"),
        F.avg("y").alias("y"),
    )
    by_wijk = (
        codes.where(placement_level(F.col("buurt_code")) == "wijk")
        .withColumn("wijk_code", F.concat(F.lit("WK"), F.substring("buurt_code", 3, 6)))
        .join(F.broadcast(wijken), "wijk_code")
        .withColumn("buurt_name", F.concat(F.col("wijk_name"), suffix))
    )
    by_gemeente = (
        codes.where(placement_level(F.col("buurt_code")) == "gemeente")
        .withColumn("gemeente_code", F.concat(F.lit("GM"), F.substring("buurt_code", 3, 4)))
        .join(F.broadcast(gemeenten), "gemeente_code")
        .withColumn(
            "wijk_code", F.concat(F.lit("WK"), F.substring("buurt_code", 3, 4), F.lit(UNASSIGNED))
        )
        .withColumn("wijk_name", F.concat(F.col("gemeente_name"), suffix))
        .withColumn("buurt_name", F.col("wijk_name"))
    )
    known = {"buurt_code", "buurt_name", "wijk_code", "wijk_name", "gemeente_code"}
    known |= {"gemeente_name", "x", "y"}
    cols = [
        F.col(f.name) if f.name in known else F.lit(None).cast(f.dataType).alias(f.name)
        for f in areas.schema.fields
    ]
    return by_wijk.select(*cols).unionByName(by_gemeente.select(*cols))


def with_unassigned_areas(areas: DataFrame, *, placed: Sequence[DataFrame | None]) -> DataFrame:
    """``areas`` (the target vintage) and the pseudo buurten the ``placed`` frames use."""
    return areas.unionByName(unassigned_areas(areas, placed=placed))


# --------------------------------------------------------------------------- rules


def _append(rule: Column, name: str, broken: Column) -> Column:
    """``reject_rule`` with ``name`` added where ``broken``."""
    return F.when(
        broken,
        F.when(rule.isNull(), F.lit(name)).otherwise(F.concat_ws(";", rule, F.lit(name))),
    ).otherwise(rule)


def _with_rules(df: DataFrame, rules: Mapping[str, Column]) -> DataFrame:
    rule = F.col("reject_rule")
    for name, broken in rules.items():
        rule = _append(rule, name, F.coalesce(broken, F.lit(False)))
    return df.withColumn("reject_rule", rule).withColumn(
        "is_excluded", F.col("is_excluded") & F.col("reject_rule").isNull()
    )


def add_area_vintage_rules(
    validated: DataFrame, *, has_vintage: bool, target: int | None
) -> DataFrame:
    """Validated ``areas`` with the vintage rules: a row needs a vintage when the column is
    given, and rows of another vintage than ``target`` are excluded (used for placement only).
    Without the column (``has_vintage`` false) the frame is returned unchanged."""
    if not has_vintage:
        return validated
    df = _with_rules(validated, {"vintage.required": F.col("vintage").isNull()})
    if target is None:
        return df
    other = F.col("reject_rule").isNull() & (F.col("vintage") != F.lit(target))
    return df.withColumn("is_excluded", F.col("is_excluded") | other)


def area_codes(areas: DataFrame) -> DataFrame:
    """``vintage, code, level``: every buurt, wijk and gemeente code of each vintage (no
    actions). ``areas``: accepted rows of every vintage."""
    parts = [
        areas.select("vintage", F.col(f"{level}_code").alias("code"), F.lit(level).alias("level"))
        for level in ("buurt", "wijk", "gemeente")
    ]
    return parts[0].unionByName(parts[1]).unionByName(parts[2]).distinct()


def _level_of(code: Column) -> Column:
    return F.coalesce(
        *[F.when(code.startswith(p), F.lit(level)) for p, level in LEVEL_PREFIX.items()]
    )


def add_area_change_rules(validated: DataFrame, *, areas: DataFrame | None) -> DataFrame:
    """Validated ``area_changes`` with the contract's rules against ``areas`` (accepted rows of
    every vintage, with ``vintage``; None when areas has no vintage column: then every change
    refers to a vintage that is not there). No actions; the codes are few and broadcast."""
    if areas is None:
        return _with_rules(
            validated,
            {
                "vintage_from.not_in_areas": F.col("vintage_from").isNotNull(),
                "vintage_to.not_in_areas": F.col("vintage_to").isNotNull(),
            },
        )
    codes = area_codes(areas)
    vintages = codes.select("vintage").distinct()
    df = validated
    for side in ("from", "to"):
        v = vintages.select(F.col("vintage").alias(f"_v_{side}"), F.lit(True).alias(f"_hv_{side}"))
        df = df.join(F.broadcast(v), F.col(f"vintage_{side}") == F.col(f"_v_{side}"), "left")
        c = codes.select(
            F.col("vintage").alias(f"_cv_{side}"),
            F.col("code").alias(f"_cc_{side}"),
            F.lit(True).alias(f"_hc_{side}"),
        )
        df = df.join(
            F.broadcast(c),
            (F.col(f"vintage_{side}") == F.col(f"_cv_{side}"))
            & (F.col(f"code_{side}") == F.col(f"_cc_{side}")),
            "left",
        )
    lf, lt = _level_of(F.col("code_from")), _level_of(F.col("code_to"))
    set_ = F.col("code_from").isNotNull() & F.col("code_to").isNotNull()
    rules = {
        "vintage_to.not_after_from": F.col("vintage_to") <= F.col("vintage_from"),
        "vintage_from.not_in_areas": F.col("vintage_from").isNotNull() & F.col("_hv_from").isNull(),
        "vintage_to.not_in_areas": F.col("vintage_to").isNotNull() & F.col("_hv_to").isNull(),
        "code_from.not_in_areas": F.col("_hv_from").isNotNull()
        & F.col("code_from").isNotNull()
        & F.col("_hc_from").isNull(),
        "code_to.not_in_areas": F.col("_hv_to").isNotNull()
        & F.col("code_to").isNotNull()
        & F.col("_hc_to").isNull(),
        "code_to.level_differs": set_ & ~lf.eqNullSafe(lt),
    }
    helpers = [c for c in df.columns if c not in validated.columns]
    return _with_rules(df, rules).drop(*helpers)


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Placement:
    """Where an old code goes in the target vintage: a (pseudo) buurt code, or a reject."""

    placed_code: str | None
    level: str | None  # buurt, wijk, gemeente; None for a reject
    rule: str | None


def resolve_placements(areas: pd.DataFrame, changes: pd.DataFrame, *, target: int) -> pd.DataFrame:
    """Every buurt code of another vintage that the target lacks, followed to the target.

    Runs on the driver: ``areas`` (vintage, buurt_code, wijk_code, gemeente_code, accepted rows
    of every vintage) and ``changes`` (vintage_from, code_from, vintage_to, code_to, accepted)
    are small by construction. A code is followed from the newest vintage that has it. From a
    node (vintage, code at a level) the next nodes are its change rows; without any, the same
    code in the next vintage when it exists there (an unchanged code is in no change table);
    without that, a buurt falls back to a change of its wijk, and a wijk to one of its
    gemeente, in the same vintage. A node with none of these is a dead end:
    ``buurt_code.unknown_vintage``. The parts reached in the target give the placement: one
    buurt (recoding or merge, also a split whose parts merge again); else the lowest level
    containing them all (pseudo buurt of the wijk or gemeente); parts in several gemeenten:
    ``buurt_code.split_across_gemeenten``. Returns ``buurt_code, placed_code,
    placement_level, rule`` (pandas; :data:`PLACEMENT_SCHEMA`) and ``parts``: the target codes
    the old code leads to, sorted and joined by ``;`` (empty for a dead end).
    """
    recs: list[tuple[int, str, str, str]] = [
        (int(v), str(b), str(w), str(g))
        for v, b, w, g in areas[["vintage", "buurt_code", "wijk_code", "gemeente_code"]]
        .astype(object)
        .to_numpy()
        .tolist()
    ]
    edges: list[tuple[int, str, int, str]] = [
        (int(vf), str(cf), int(vt), str(ct))
        for vf, cf, vt, ct in changes[["vintage_from", "code_from", "vintage_to", "code_to"]]
        .astype(object)
        .to_numpy()
        .tolist()
    ]
    vintages = sorted({r[0] for r in recs})
    later = [v for v in vintages if v < target]
    nxt = {v: (vintages[i + 1] if i + 1 < len(vintages) else None) for i, v in enumerate(vintages)}
    exists: set[tuple[int, str]] = set()
    parent: dict[tuple[int, str], tuple[str, str]] = {}  # (vintage, code) -> (wijk, gemeente)
    for v, b, w, g in recs:
        exists |= {(v, b), (v, w), (v, g)}
        parent[(v, b)] = (w, g)
        parent[(v, w)] = (g, g)
    out_edges: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for vf, cf, vt, ct in edges:
        out_edges.setdefault((vf, cf), []).append((vt, ct))
    target_parent = {b: (w, g) for v, b, w, g in recs if v == target}
    target_buurten = set(target_parent)
    memo: dict[tuple[int, str], frozenset[str] | None] = {}

    def successors(v: int, code: str) -> list[tuple[int, str]] | None:
        if (v, code) in out_edges:
            return [e for e in out_edges[(v, code)] if e[0] <= target]
        n = nxt[v]
        if n is not None and n <= target and (n, code) in exists:
            return [(n, code)]
        up = parent.get((v, code))
        if up is not None and not code.startswith("GM"):
            # a buurt no change leads from may lie in a wijk (or gemeente) one leads from
            coarser = up[0] if code.startswith("BU") else up[1]
            if (v, coarser) in out_edges:
                return successors(v, coarser)
            if code.startswith("BU") and (v, up[1]) in out_edges:
                return successors(v, up[1])
        return None

    def reach(v: int, code: str) -> frozenset[str] | None:
        """Target codes the node leads to; None when a path ends before the target."""
        if v == target:
            return frozenset([code])
        key = (v, code)
        if key not in memo:
            memo[key] = None  # the graph goes forward in vintage: no cycle can reach this
            nodes = successors(v, code)
            parts: set[str] = set()
            for n in nodes or []:
                got = reach(*n)
                if got is None:
                    nodes = None
                    break
                parts |= got
            memo[key] = frozenset(parts) if nodes else None
        return memo[key]

    rows = []
    newest: dict[str, int] = {}
    for v, code in exists:
        if code.startswith("BU") and code not in target_buurten and v != target:
            newest[code] = max(v, newest.get(code, v))
    for code, v in sorted(newest.items()):
        parts = reach(v, code) if v in later else None
        p = _place(parts, target_parent)
        rows.append((code, p.placed_code, p.level, p.rule, ";".join(sorted(parts or ()))))
    return pd.DataFrame(
        rows, columns=["buurt_code", "placed_code", "placement_level", "rule", "parts"]
    )


def inexact_buurten(placements: pd.DataFrame) -> set[str]:
    """The target buurten that an old code placed above buurt level leads to, from
    :func:`resolve_placements`: their incidents of the old vintage's years sit in the pseudo
    buurt of their wijk or gemeente, so those years undercount them (a trend of such a buurt
    would show a false rise)."""
    above = placements[placements["placement_level"].isin(["wijk", "gemeente"])]
    return {c for parts in above["parts"] for c in str(parts).split(";") if c.startswith("BU")}


def _gemeente_of(code: str) -> str:
    return "GM" + code[2:6]


def _place(parts: frozenset[str] | None, target_parent: Mapping[str, tuple[str, str]]) -> Placement:
    if not parts:
        return Placement(None, None, RULE_UNKNOWN_VINTAGE)
    if len(parts) == 1:
        (only,) = parts
        if only.startswith("BU"):
            return Placement(only, "buurt", None)
    wijken = {
        target_parent[p][0] if p.startswith("BU") else (p if p.startswith("WK") else None)
        for p in parts
    }
    if len(wijken) == 1 and None not in wijken:
        (wijk,) = wijken
        assert wijk is not None
        return Placement(unassigned_buurt_of_wijk(wijk), "wijk", None)
    gemeenten = {_gemeente_of(p) for p in parts}
    if len(gemeenten) == 1:
        (gm,) = gemeenten
        return Placement(unassigned_buurt_of_gemeente(gm), "gemeente", None)
    return Placement(None, None, RULE_SPLIT_ACROSS_GEMEENTEN)


# --------------------------------------------------------------------------- placement


OLD = "_vintage_old_code"
PLACED = "_vintage_placed"
RULE = "_vintage_rule"


def prepare_placement(
    validated: DataFrame, *, placements: DataFrame, by_address: bool, by_point: bool
) -> DataFrame:
    """Incidents or signals whose buurt_code is an old code (one ``placements`` has) before
    the address and point steps: where the address (``by_address``: the addresses table is
    there) or the point (``by_point``: the row has x and y) can place the row in the target
    vintage, buurt_code is cleared so that they do; the old code's own placement waits in
    helper columns for :func:`finish_placement`. The delivered code stays the row's raw text, so a
    reject shows it. No actions; ``placements`` (one row per old code) is broadcast."""
    p = placements.select(
        F.col("buurt_code").alias(OLD),
        F.col("placed_code").alias(PLACED),
        F.col("rule").alias(RULE),
    )
    df = validated.join(F.broadcast(p), F.col("buurt_code") == F.col(OLD), "left")
    old = F.col(OLD).isNotNull() & F.col("reject_rule").isNull()
    elsewhere = F.lit(False)
    if by_address:
        elsewhere = elsewhere | F.col("address_id").isNotNull()
    if by_point:
        elsewhere = elsewhere | (F.col("x").isNotNull() & F.col("y").isNotNull())
    return df.withColumns(
        {
            "_raw_buurt_code": F.when(old, F.col(OLD)).otherwise(F.col("_raw_buurt_code")),
            "buurt_code": F.when(old & elsewhere, F.lit(None).cast("string")).otherwise(
                F.col("buurt_code")
            ),
        }
    )


def finish_placement(validated: DataFrame) -> DataFrame:
    """After the point step (``point_buurt_code`` when there is one): an old-code row that
    neither its address nor its point placed takes the old code's placement, or its reject.
    Drops the helper columns. No actions."""
    old = F.col(OLD).isNotNull() & F.col("reject_rule").isNull()
    placed = F.col("buurt_code").isNotNull() & (F.col("buurt_code") != F.col(OLD))
    if "point_buurt_code" in validated.columns:
        placed = placed | F.col("point_buurt_code").isNotNull()
    by_address = F.col("address_id").isNotNull() & F.col("buurt_code").isNull()
    # decided once, before the rules below change reject_rule
    df = validated.withColumn("_vintage_fall_back", old & ~placed & ~by_address)
    fall_back = F.col("_vintage_fall_back")
    df = _with_rules(
        df,
        {
            RULE_UNKNOWN_VINTAGE: fall_back & (F.col(RULE) == RULE_UNKNOWN_VINTAGE),
            RULE_SPLIT_ACROSS_GEMEENTEN: fall_back & (F.col(RULE) == RULE_SPLIT_ACROSS_GEMEENTEN),
        },
    )
    # a placed row takes its target code; a rejected one keeps the code as delivered
    df = df.withColumn(
        "buurt_code",
        F.when(fall_back & F.col(RULE).isNull(), F.col(PLACED))
        .when(fall_back, F.col(OLD))
        .otherwise(F.col("buurt_code")),
    )
    return df.drop(OLD, PLACED, RULE, "_vintage_fall_back")


def accepted_rows(validated: DataFrame) -> DataFrame:
    """The rows of a validated frame that are used (no reject, not excluded)."""
    return validated.where(F.col("reject_rule").isNull() & ~F.col("is_excluded"))


def placement_totals(located: Iterable[DataFrame]) -> DataFrame:
    """``placement_level, rows``: national totals of rows placed at wijk or gemeente only (the
    manifest's figure; no area is named). No actions."""
    parts = [
        df.select(placement_level(F.col("buurt_code")).alias("placement_level")) for df in located
    ]
    allp = parts[0]
    for p in parts[1:]:
        allp = allp.unionByName(p)
    return allp.where(F.col("placement_level") != "buurt").groupBy("placement_level").count()
