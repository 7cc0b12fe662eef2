"""``area_changes`` derived from two vintages' buurt polygons by overlap (``zicht areas diff``).

Reads nothing and writes nothing: takes (buurt_code, WKT) pairs of an old and a new vintage and
returns the change rows of CONTRACT.md section 1 (``area_changes``), since CBS publishes no
buurt-to-buurt change table. Polygons are few (~14k buurten a vintage) and this runs on the
driver with shapely (an STRtree over the new polygons, one intersection per overlapping pair).

For each old buurt, the share of its area that lies in each new buurt:

- shares below ``sliver_share`` (default 0.01) are ignored: digitising noise along shared edges;
- when one new buurt takes at least ``exact_share`` (default 0.98) of it, the old buurt *is* that
  buurt: no row when the code is the same (unchanged codes are in no change table), else one row
  (a recoding, or part of a merge when other old buurten go there too);
- otherwise one row to every new buurt with a share above the sliver: a split, or with other old
  buurten in the same new ones a boundary correction (many to many).

An old buurt that overlaps no new polygon beyond the sliver gives no row and is listed in
``unmatched`` (its incidents become ``buurt_code.unknown_vintage`` rejects unless a change is
added by hand).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

EXACT_SHARE = 0.98
SLIVER_SHARE = 0.01
KINDS = ("recoding", "merge", "split", "correction")


@dataclass(frozen=True)
class AreaDiff:
    # (vintage_from, code_from, vintage_to, code_to, share of code_from's area)
    rows: list[tuple[int, str, int, str, float]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def changes(self) -> list[tuple[int, str, int, str]]:
        """The contract's four columns."""
        return [r[:4] for r in self.rows]


def derive_area_changes(
    old: Mapping[str, str],
    new: Mapping[str, str],
    *,
    vintage_from: int,
    vintage_to: int,
    exact_share: float = EXACT_SHARE,
    sliver_share: float = SLIVER_SHARE,
) -> AreaDiff:
    """The change rows from ``old`` to ``new`` (buurt_code -> WKT in RD New); see the module."""
    if vintage_to <= vintage_from:
        raise ValueError(f"vintage_to {vintage_to} is not after vintage_from {vintage_from}")
    if not 0.5 < exact_share <= 1.0 or not 0.0 <= sliver_share < 0.5:
        raise ValueError("need 0.5 < exact_share <= 1 and 0 <= sliver_share < 0.5")
    import shapely
    from shapely.strtree import STRtree

    new_codes = sorted(new)
    new_geoms = shapely.make_valid(shapely.from_wkt([new[c] for c in new_codes]))
    tree = STRtree(new_geoms)
    rows: list[tuple[int, str, int, str, float]] = []
    unmatched: list[str] = []
    for code in sorted(old):
        geom = shapely.make_valid(shapely.from_wkt(old[code]))
        area = shapely.area(geom)
        if area <= 0:
            unmatched.append(code)
            continue
        hits = tree.query(geom, predicate="intersects")
        shares = {
            new_codes[i]: float(shapely.area(shapely.intersection(geom, new_geoms[i])) / area)
            for i in hits
        }
        kept = {c: s for c, s in shares.items() if s >= sliver_share}
        if not kept:
            unmatched.append(code)
            continue
        best = max(kept, key=lambda c: (kept[c], c))
        if kept[best] >= exact_share:
            if best != code:
                rows.append((vintage_from, code, vintage_to, best, kept[best]))
            continue
        rows += [(vintage_from, code, vintage_to, c, s) for c, s in sorted(kept.items())]
    return AreaDiff(rows=rows, unmatched=unmatched)


def classify_changes(changes: Iterable[Sequence[object]]) -> dict[tuple[str, str], str]:
    """``(code_from, code_to) -> kind`` by the contract's definitions, per connected group of
    rows: one to one (the target receiving from no other) a recoding, many to one a merge, one
    to many a split, many to many a boundary correction."""
    edges = [(str(r[1]), str(r[3])) for r in changes]
    outs: dict[str, set[str]] = {}
    ins: dict[str, set[str]] = {}
    for a, b in edges:
        outs.setdefault(a, set()).add(b)
        ins.setdefault(b, set()).add(a)
    # connected groups over the bipartite graph (from codes and to codes kept apart)
    group: dict[tuple[str, str], int] = {}

    def visit(start: tuple[str, str], gid: int) -> None:
        stack = [start]
        while stack:
            node = stack.pop()
            if node in group:
                continue
            group[node] = gid
            side, code = node
            nxt = outs.get(code, set()) if side == "from" else ins.get(code, set())
            stack += [("to" if side == "from" else "from", c) for c in nxt]

    for i, (a, _) in enumerate(edges):
        visit(("from", a), i)
    members: dict[int, tuple[set[str], set[str]]] = {}
    for (side, code), gid in group.items():
        f, t = members.setdefault(gid, (set(), set()))
        (f if side == "from" else t).add(code)
    out: dict[tuple[str, str], str] = {}
    for a, b in edges:
        froms, tos = members[group[("from", a)]]
        if len(froms) == 1 and len(tos) == 1:
            kind = "recoding"
        elif len(tos) == 1:
            kind = "merge"
        elif len(froms) == 1:
            kind = "split"
        else:
            kind = "correction"
        out[(a, b)] = kind
    return out
