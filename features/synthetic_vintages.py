"""Two CBS vintages for the synthetic country (``zicht synth --vintages``), with planted changes.

Reads nothing and writes nothing: wraps the pieces of :func:`zicht.features.synthetic.generate`.
The generated areas are the *target* vintage (the last year of the period); an older vintage
(the first year) is derived from it with three planted changes, and incidents and signals of the
years before the target carry the old codes, as a multi-year police extract does:

- a **recoding**: one buurt had another code (same polygon);
- a **merge**: one buurt was two (its square cut in halves, each its own old code);
- a **split**: two buurten of one wijk were one old buurt (their polygons' union).

Old codes are ``BU`` + the wijk's digits + ``9x`` (the generator numbers buurten from 01 up, far
below 90, so they cannot collide). Yields ``areas`` with both vintages (column ``vintage``),
``area_changes``, and the truth ``_truth/vintage_changes`` (each change row with its kind) and
``_truth/vintage_placements`` (per old code: where an incident carrying it must be placed:
the target buurt, or the wijk's unassigned part for the split).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zicht.features.synthetic import TRUTH_PREFIX, arrow_schema
from zicht.features.vintages import unassigned_buurt_of_wijk


def _halves(wkt: str) -> tuple[str, str]:
    """The left and right halves of an axis-aligned square polygon's WKT."""
    import shapely

    x0, y0, x1, y1 = shapely.from_wkt(wkt).bounds
    xm = (x0 + x1) / 2
    box = "POLYGON (({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b}))"
    return box.format(a=x0, b=y0, c=xm, d=y1), box.format(a=xm, b=y0, c=x1, d=y1)


def _union(a: str, b: str) -> str:
    import shapely

    return str(shapely.to_wkt(shapely.union(shapely.from_wkt(a), shapely.from_wkt(b))))


def plan_changes(areas: pa.Table, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Pick the buurten that change: kind -> [(target code, old code)], seeded.

    The split needs a wijk with two buurten beside the other picks; every pick is a distinct
    buurt, so one incident's old code has one meaning."""
    rng = np.random.default_rng([seed, 18])
    codes = areas.column("buurt_code").to_pylist()
    wijk = areas.column("wijk_code").to_pylist()
    by_wijk: dict[str, list[str]] = {}
    for c, w in zip(codes, wijk, strict=True):
        by_wijk.setdefault(w, []).append(c)
    wijken = sorted(w for w, cs in by_wijk.items() if len(cs) >= 2)
    if not wijken:
        raise ValueError("synth --vintages needs a wijk with at least two buurten")
    split_wijk = wijken[int(rng.integers(len(wijken)))]
    s1, s2 = sorted(by_wijk[split_wijk])[:2]
    rest = sorted(c for c in codes if c not in (s1, s2))
    if len(rest) < 2:
        raise ValueError("synth --vintages needs at least four buurten")
    rec, mrg = (rest[i] for i in rng.choice(len(rest), size=2, replace=False))

    taken = set(codes)

    def old(code: str, n: int) -> str:
        made = code[:8] + f"9{n}"
        if made in taken:
            raise ValueError(f"synth --vintages: old code {made} is a buurt of the target")
        return made

    return {
        "recoding": [(rec, old(rec, 0))],
        "merge": [(mrg, old(mrg, 1)), (mrg, old(mrg, 2))],
        "split": [(s1, old(s1, 3)), (s2, old(s1, 3))],
    }


def vintage_areas(
    areas: pa.Table, plan: dict[str, list[tuple[str, str]]], *, old: int, target: int
) -> pa.Table:
    """Both vintages of ``areas``, with ``vintage``: the target as generated, the old one with the
    planted codes and polygons in place of the changed buurten."""
    rows = areas.to_pylist()
    by_code = {r["buurt_code"]: r for r in rows}
    changed = {t for pairs in plan.values() for t, _ in pairs}
    old_rows = [dict(r) for r in rows if r["buurt_code"] not in changed]
    (rec, rec_old) = plan["recoding"][0]
    old_rows.append({**by_code[rec], "buurt_code": rec_old, "buurt_name": "oud " + rec_old})
    (mrg, m1), (_, m2) = plan["merge"]
    left, right = _halves(by_code[mrg]["geometry_wkt"])
    half = by_code[mrg]["land_area_ha"] / 2
    for code, wkt in ((m1, left), (m2, right)):
        inh = by_code[mrg]["inhabitants"]
        old_rows.append(
            {
                **by_code[mrg],
                "buurt_code": code,
                "buurt_name": "oud " + code,
                "geometry_wkt": wkt,
                "land_area_ha": half,
                "inhabitants": None if inh is None else inh // 2,
            }
        )
    (s1, so), (s2, _) = plan["split"]
    a, b = by_code[s1], by_code[s2]
    old_rows.append(
        {
            **a,
            "buurt_code": so,
            "buurt_name": "oud " + so,
            "x": (a["x"] + b["x"]) / 2,
            "y": (a["y"] + b["y"]) / 2,
            "geometry_wkt": _union(a["geometry_wkt"], b["geometry_wkt"]),
            "land_area_ha": a["land_area_ha"] + b["land_area_ha"],
            "inhabitants": None
            if a["inhabitants"] is None or b["inhabitants"] is None
            else a["inhabitants"] + b["inhabitants"],
        }
    )
    schema = arrow_schema("areas")
    rows_out = [{**r, "vintage": target} for r in rows] + [{**r, "vintage": old} for r in old_rows]
    return pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in schema} for r in rows_out], schema=schema
    )


def change_rows(
    plan: dict[str, list[tuple[str, str]]], *, old: int, target: int
) -> list[tuple[int, str, int, str, str]]:
    """(vintage_from, code_from, vintage_to, code_to, kind) of the planted changes."""
    return [
        (old, old_code, target, code, kind)
        for kind, pairs in plan.items()
        for code, old_code in pairs
    ]


def _recode(table: pa.Table, mapping: dict[str, str], date_col: str, target: int) -> pa.Table:
    """Rows dated before the target vintage's year carry their buurt's old code."""
    if table.num_rows == 0 or "buurt_code" not in table.column_names:
        return table
    codes = table.column("buurt_code").to_pylist()
    years = pc.year(table.column(date_col)).to_pylist()
    out = [
        mapping.get(c, c) if c is not None and y is not None and y < target else c
        for c, y in zip(codes, years, strict=True)
    ]
    i = table.column_names.index("buurt_code")
    return table.set_column(i, "buurt_code", pa.array(out, pa.string()))


def with_vintages(
    pieces: Iterator[tuple[str, pa.Table]], *, seed: int, years: tuple[int, ...]
) -> Iterator[tuple[str, pa.Table]]:
    """The generator's pieces with two vintages: see the module docstring."""
    old, target = years[0], years[-1]
    if old == target:
        raise ValueError("synth --vintages needs a period of at least two years")
    mapping: dict[str, str] = {}
    for name, table in pieces:
        if name == "areas":
            plan = plan_changes(table, seed)
            # the generator places incidents by buurt, not by a point within it: the old years'
            # incidents of the merged buurt all carry its first half's code
            for kind, pairs in plan.items():
                for code, old_code in pairs:
                    if kind != "merge":
                        mapping[code] = old_code
            (mrg, m1), _ = plan["merge"]
            mapping[mrg] = m1
            yield "areas", vintage_areas(table, plan, old=old, target=target)
            rows = change_rows(plan, old=old, target=target)
            yield (
                "area_changes",
                pa.Table.from_pylist(
                    [
                        {"vintage_from": a, "code_from": b, "vintage_to": c, "code_to": d}
                        for a, b, c, d, _ in rows
                    ],
                    schema=arrow_schema("area_changes"),
                ),
            )
            yield (
                TRUTH_PREFIX + "vintage_changes",
                pa.Table.from_pylist(
                    [
                        {
                            "vintage_from": a,
                            "code_from": b,
                            "vintage_to": c,
                            "code_to": d,
                            "kind": k,
                        }
                        for a, b, c, d, k in rows
                    ]  # fmt: skip
                ),
            )
            split_wijk = "WK" + plan["split"][0][0][2:8]
            placements = [
                {"old_code": o, "placement_level": "buurt", "placed_code": t}
                for kind in ("recoding", "merge")
                for t, o in plan[kind]
            ] + [
                {
                    "old_code": plan["split"][0][1],
                    "placement_level": "wijk",
                    "placed_code": unassigned_buurt_of_wijk(split_wijk),
                }
            ]
            yield TRUTH_PREFIX + "vintage_placements", pa.Table.from_pylist(placements)
        elif name == "incidents":
            yield name, _recode(table, mapping, "incident_date", target)
        elif name == "signals":
            yield name, _recode(table, mapping, "signal_date", target)
        else:
            yield name, table
