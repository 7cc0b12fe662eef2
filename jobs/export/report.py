"""``report.html``: one self-contained page a partner can explore offline.

No CDN, no server, no file beside it: inline CSS, the areas' outlines once as inline SVG
(``<defs>``, re-used by ``<use>``), the published values of the report's indicators as inline
JSON, and a small inline script. The partner chooses phenomenon, indicator, year and level; the
map hatches suppressed cells, and its legend's classes are sensible on the published values
(:func:`legend_classes`: the composite index's nine bands; for other indicators classes of
distinct published values, never narrower than the rounding, fewer when there are few distinct
values). Clicking an area shows its trend over the years; the page also lists the areas with
the highest values, each indicator's Dutch definition and caveat from the codebook, and the
disclosure rules in plain Dutch. A phenomenon with no registration anywhere in the delivery is
shown as "niet in deze levering", not as a map of zeros. Hot-spot maps (Gi* z in bands at
+-1.96 and +-2.58, local-Moran quadrants) are offered as map choices where the buurten carry
outlines, computed from the published buurt rates only
(:mod:`zicht.jobs.export.hotspots_published`): the analysts' hot spots of the unsuppressed values
could give suppressed counts back, so they stay in the restricted output; buurten left out of
the computation are hatched (suppressed) or grey, with the reason in the legend.

The first view (the default choice) is rendered here as well, so the page shows a map before
its script runs. Everything comes from the formatted partner rows (through the leak guard) and
the area table (~14k buurten nationally, drawn on the driver).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterator, Mapping, Sequence

import pandas as pd

from zicht.features.export import DECIMALS
from zicht.jobs.export.workbook import UNIT_NL
from zicht.jobs.export.writers import utf8_text

# ColorBrewer Reds (9 classes), light to dark: k classes take the k darkest, so the top class
# is always the darkest whatever the number of classes
COLORS = ["#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d",
          "#a50f15", "#67000d"]  # fmt: skip
ZERO = "#ffffff"
NO_DATA = "#e8e8e8"
MAX_CLASSES = 5
LEVELS = ("buurt", "wijk", "gemeente")
LEVEL_NL = {"buurt": "buurten", "wijk": "wijken", "gemeente": "gemeenten"}
# the indicators of a phenomenon the page offers, in this order (when published)
REPORT_INDICATORS = (
    "incidents_per_1000",
    "incidents",
    "resident_suspects_per_1000",
    "resident_suspects",
    "local_suspect_share",
    "signals_per_1000_addresses",
    "composite_index",
    "composite_class",
    # the City Deal's themes (issue 19): FIU-NL, ownership, register patterns
    "fiu_suspicious_transactions",
    "fiu_subjects",
    "fiu_amount_eur",
    "unexplained_ownership_dwellings",
    "unknown_owner_dwellings",
    "many_company_addresses",
    "overbewoning_dwellings",
    # a sector (sector.<name>.*) is offered like a phenomenon
    "companies",
    "new_companies",
    "ended_companies",
    "companies_with_suspect",
    "residents_logies",
)
LABEL_NL = {
    "incidents_per_1000": "incidenten per 1000 inwoners",
    "incidents": "incidenten",
    "resident_suspects_per_1000": "verdachte bewoners per 1000 inwoners (12+)",
    "resident_suspects": "verdachte bewoners",
    "local_suspect_share": "aandeel lokale verdachten",
    "signals_per_1000_addresses": "meldingen per 1000 adressen",
    "composite_index": "index (0-100)",
    "composite_class": "klasse (1-9)",
    "fiu_suspicious_transactions": "verdacht verklaarde transacties (FIU-NL)",
    "fiu_subjects": "personen en bedrijven met een verdachte transactie",
    "fiu_amount_eur": "bedrag verdachte transacties (euro)",
    "unexplained_ownership_dwellings": "woningen in onverklaard bezit",
    "unknown_owner_dwellings": "woningen met onbekende eigenaar",
    "many_company_addresses": "adressen met veel bedrijven",
    "overbewoning_dwellings": "overbewoonde woningen",
    "companies": "bedrijven",
    "new_companies": "nieuwe bedrijven",
    "ended_companies": "opgeheven bedrijven",
    "companies_with_suspect": "bedrijven met een verdachte eigenaar of bestuurder",
    "residents_logies": "bewoners van logiesadressen",
}
# the report's label of a sector of the sectors catalogue (else its name)
SECTOR_NL = {"zorg": "zorg", "vakantieparken": "vakantieparken",
             "cash_intensive": "contantintensieve branches"}  # fmt: skip
SYMBOL_TEXT = {"x": "x (geheim)", ".": ". (gegevens ontbreken)", "": "niet van toepassing"}

# the hot-spot maps: Gi* z bands (upper bounds; the last is open) and local-Moran quadrants,
# ColorBrewer RdBu (blue cold, red hot) with a neutral middle
GI_BANDS = [
    (-2.58, "koude plek, z \u2264 -2,58 (99%)", "#2166ac"),
    (-1.96, "koude plek, -2,58 < z \u2264 -1,96 (95%)", "#92c5de"),
    (1.96, "niet significant, -1,96 < z < 1,96", "#f7f7f7"),
    (2.58, "hotspot, 1,96 \u2264 z < 2,58 (95%)", "#f4a582"),
    (None, "hotspot, z \u2265 2,58 (99%)", "#b2182b"),
]
MORAN_CLASSES = [
    ("HH", "hoog tussen hoog (HH)", "#b2182b"),
    ("LL", "laag tussen laag (LL)", "#2166ac"),
    ("HL", "hoog tussen laag (HL)", "#f4a582"),
    ("LH", "laag tussen hoog (LH)", "#92c5de"),
    ("ns", "niet significant", "#f7f7f7"),
]
# why a buurt is left out of the hot-spot computation: its symbol on the page and the legend
HOT_LEFT_OUT = {
    "suppressed": ("x", "geheim (onderdrukt): niet meegerekend"),
    "not_applicable": ("", "niet van toepassing: niet meegerekend"),
    "not_covered": (".", "gegevens ontbreken: niet meegerekend"),
    "no_geometry": ("g", "geen kaartvorm: niet meegerekend"),
    "too_few": ("t", "te weinig gepubliceerde buurten: niet berekend"),
    "undefined": ("u", "niet te berekenen"),
}
HOT_NOTE = (
    "Deze kaart is alleen berekend op de gepubliceerde waarden: buurten met een geheim, niet "
    "van toepassing zijnd of ontbrekend cijfer tellen niet mee (ook niet als 0), en de buren "
    "volgen uit de gepubliceerde buurtgrenzen. Zo verraadt de kaart geen geheim cijfer."
)


# --------------------------------------------------------------------------- legend


def _fmt_nl(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}".replace(".", ",")


def legend_classes(
    values: Sequence[float], *, decimals: int, kind: str = "", max_classes: int = MAX_CLASSES
) -> list[tuple[float, float, str]]:
    """The map's classes for published ``values`` (any years): ``(lower, upper, label)``, a
    value ``v`` in the first class with ``v <= upper`` (``lower`` is the previous upper).

    ``kind`` ``index`` (the composite index, 0-100): nine equal bands; ``class`` (its classes
    1-9): one class per class. Otherwise 0 gets a class of its own when it occurs, and the other
    values form up to ``max_classes`` classes of about equal numbers of *distinct* values (so a
    value that repeats cannot collapse classes), bounded by published values: two bounds differ
    by at least the rounding (10^-decimals), and with few distinct values each is a class.
    """
    if kind == "index":
        bounds = [100 * k / 9 for k in range(10)]
        return [
            (lo, hi, f"{_fmt_nl(lo, 1)} tot en met {_fmt_nl(hi, 1)}")
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
    if kind == "class":
        return [(k - 1.0, float(k), str(k)) for k in range(1, 10)]
    distinct = sorted({round(float(v), decimals) for v in values})
    out: list[tuple[float, float, str]] = []
    if distinct and distinct[0] == 0:
        out.append((-math.inf, 0.0, "0"))
        distinct = distinct[1:]
    elif distinct and distinct[0] < 0:
        out.append((-math.inf, distinct[0], f"{_fmt_nl(distinct[0], decimals)} of minder"))
        distinct = distinct[1:]
    if not distinct:
        return out
    n = min(max_classes, len(distinct))
    uppers = [distinct[math.ceil(len(distinct) * k / n) - 1] for k in range(1, n + 1)]
    lo = out[-1][1] if out else None
    for hi in uppers:
        if lo is None:
            label = f"tot en met {_fmt_nl(hi, decimals)}"
        elif hi - lo <= 10**-decimals * 1.0000001 and hi in distinct:
            label = _fmt_nl(hi, decimals)  # a class of one published value
        else:
            label = f"meer dan {_fmt_nl(lo, decimals)} tot en met {_fmt_nl(hi, decimals)}"
        out.append((lo if lo is not None else -math.inf, hi, label))
        lo = hi
    return out


def class_colors(classes: Sequence[tuple[float, float, str]]) -> list[str]:
    """One colour per class: white for the 0 class, the darkest colours for the others."""
    positive = [c for c in classes if c[2] != "0"]
    tail = COLORS[len(COLORS) - len(positive) :] if positive else []
    it = iter(tail)
    return [ZERO if c[2] == "0" else next(it) for c in classes]


# --------------------------------------------------------------------------- geometry


def _level_codes(areas: pd.DataFrame) -> dict[str, pd.Series]:
    """Each buurt's wijk and gemeente code (given, else from the buurt code, as the contract
    defines them)."""
    b = areas["buurt_code"].astype(str)
    wijk = areas["wijk_code"] if "wijk_code" in areas else "WK" + b.str.slice(2, 8)
    gem = areas["gemeente_code"] if "gemeente_code" in areas else "GM" + b.str.slice(2, 6)
    return {"buurt": b, "wijk": pd.Series(wijk).astype(str), "gemeente": pd.Series(gem).astype(str)}


def svg_paths(areas: pd.DataFrame) -> tuple[dict[str, dict[str, str]], tuple[float, float]]:
    """Per level, area code -> its SVG path in a local frame of 10 m units, y down, and the
    frame's width and height.

    Polygons are simplified to about a thousandth of the map's extent (invisible at page size,
    and it keeps the national page small); a buurt without geometry gets a square tile around
    its centroid, sized from its land area (else 300 m). A wijk or gemeente is the union of its
    buurten."""
    import shapely

    wkt = areas["geometry_wkt"] if "geometry_wkt" in areas else pd.Series([None] * len(areas))
    ha = areas["land_area_ha"] if "land_area_ha" in areas else pd.Series([None] * len(areas))
    tiles: list[object] = []
    for w, x, y, a in zip(wkt, areas["x"], areas["y"], ha, strict=True):
        g = shapely.from_wkt(w) if isinstance(w, str) and w.strip() else None
        if g is None and x is not None and not pd.isna(x):
            half = (math.sqrt(float(a) * 1e4) if a and not pd.isna(a) else 300.0) / 2
            g = shapely.box(float(x) - half, float(y) - half, float(x) + half, float(y) + half)
        tiles.append(g)
    present = [g for g in tiles if g is not None]
    if not present:
        return {lvl: {} for lvl in LEVELS}, (1.0, 1.0)
    minx, miny, maxx, maxy = shapely.total_bounds(present)
    tol = max(maxx - minx, maxy - miny) / 1000

    def path(g: object) -> str:
        g = shapely.simplify(g, tol, preserve_topology=True)
        d: list[str] = []
        for poly in getattr(g, "geoms", [g]):
            if not hasattr(poly, "exterior"):
                continue
            for ring in (poly.exterior, *poly.interiors):
                pts = [
                    f"{(px - minx) / 10:.0f} {(maxy - py) / 10:.0f}" for px, py in ring.coords[:-1]
                ]
                if pts:
                    d.append("M" + "L".join(pts) + "Z")
        return "".join(d)

    codes = _level_codes(areas)
    out: dict[str, dict[str, str]] = {"buurt": {}}
    for code, g in zip(codes["buurt"], tiles, strict=True):
        if g is not None:
            out["buurt"][code] = path(g)
    for level in ("wijk", "gemeente"):
        groups: dict[str, list[object]] = {}
        for code, g in zip(codes[level], tiles, strict=True):
            if g is not None:
                groups.setdefault(code, []).append(g)
        out[level] = {c: path(shapely.union_all(gs)) for c, gs in sorted(groups.items())}
    return out, ((maxx - minx) / 10, (maxy - miny) / 10)


# --------------------------------------------------------------------------- the data


def _unit_of(indicator: str, units: Mapping[str, str]) -> str:
    if indicator in units:
        return units[indicator]
    tail = indicator.split(".", 1)[-1]
    if "per_1000" in tail:
        return "rate"
    return "share" if tail.endswith("share") else "count"


def _kind(indicator: str, unit: str) -> str:
    tail = indicator.split(".", 1)[-1]
    if tail == "composite_index":
        return "index"
    return "class" if unit == "class" else ""


def order_phenomena(
    phenomena: Mapping[str, str], *, present: set[str] | None, first: Sequence[str] = ()
) -> list[tuple[str, str, bool]]:
    """``(key, label, present)``: the phenomena of ``first`` (an overlay's) first, then the
    others in catalogue order; phenomena not in this delivery last."""
    keys = [k for k in first if k in phenomena] + [k for k in phenomena if k not in first]
    here = [k for k in keys if present is None or k in present]
    gone = [k for k in keys if present is not None and k not in present]
    return [(k, phenomena[k] or k, k in here) for k in [*here, *gone]]


def report_data(
    pub: pd.DataFrame,
    areas: pd.DataFrame,
    *,
    phenomena: Mapping[str, str],
    codebook: pd.DataFrame | None = None,
    present: set[str] | None = None,
    first: Sequence[str] = (),
    report: Mapping[str, object] | None = None,
    hotspots: pd.DataFrame | None = None,
) -> dict[str, object]:
    """What the page's script reads: areas per level (code, name, outline id), the offered
    indicators with unit, definition and caveat, the values per level, indicator and year (a
    number when published, else its CBS symbol), the legend per level and indicator, and the
    hot-spot maps of the published values (``hotspots``:
    :func:`zicht.jobs.export.hotspots_published.published_hotspots`; None or empty: none)."""
    areas = areas.sort_values("buurt_code", kind="mergesort").reset_index(drop=True)
    paths, size = svg_paths(areas)
    units = (
        dict(zip(codebook["indicator"], codebook["unit"], strict=True))
        if codebook is not None
        else {}
    )
    cb = codebook.set_index("indicator") if codebook is not None else None
    order = order_phenomena(phenomena, present=present, first=first)
    available = set(pub["indicator"])
    indicators: list[dict[str, object]] = []
    for key, _, _ in order:
        for tail in REPORT_INDICATORS:
            ind = f"{key}.{tail}"
            if ind not in available:
                continue
            unit = _unit_of(ind, units)
            row = cb.loc[ind] if cb is not None and ind in cb.index else None
            definition = ""
            caveat = ""
            if row is not None:
                definition = str(row.get("definition_nl", "") or "") or str(row["definition"])
                caveat = str(row.get("caveats", "") or "")
            indicators.append(
                {
                    "key": ind,
                    "phenomenon": key,
                    "label": LABEL_NL.get(tail, tail),
                    "unit": unit,
                    "unit_nl": UNIT_NL.get(unit, unit),
                    "decimals": DECIMALS.get(unit, 3),
                    "kind": _kind(ind, unit),
                    "definition": definition,
                    "caveat": caveat,
                }  # fmt: skip
            )
    wanted = {str(i["key"]) for i in indicators}
    years = sorted(int(y) for y in pub["year"].unique())
    part = pub[pub["indicator"].isin(wanted)]
    keys = zip(part["level"], part["area_code"], strict=True)
    names_pub = dict(zip(keys, part["area_name"], strict=True))
    buurt_names = dict(zip(areas["buurt_code"].astype(str), areas["buurt_name"], strict=True))
    level_areas: dict[str, list[dict[str, str]]] = {}
    index: dict[str, dict[str, int]] = {}
    for level in LEVELS:
        codes = sorted({str(c) for c in part.loc[part["level"] == level, "area_code"]})
        if level == "buurt":
            codes = sorted(set(codes) | set(buurt_names))
        prefix = level[0]
        level_areas[level] = [
            {
                "code": c,
                "name": str(
                    buurt_names.get(c)
                    if level == "buurt" and c in buurt_names
                    else names_pub.get((level, c), c)
                ),
                "id": f"{prefix}{k}" if c in paths[level] else "",
            }  # fmt: skip
            for k, c in enumerate(codes)
        ]
        index[level] = {c: k for k, c in enumerate(codes)}
    symbols = {"suppressed": "x", "not_covered": ".", "not_applicable": ""}
    values: dict[str, dict[str, dict[str, list[object]]]] = {lvl: {} for lvl in LEVELS}
    legends: dict[str, dict[str, list[dict[str, object]]]] = {lvl: {} for lvl in LEVELS}
    spec = {str(i["key"]): i for i in indicators}
    for group, g in part.groupby(["level", "indicator"], sort=True):
        level, ind = str(group[0]), str(group[1])
        if level not in index:
            continue
        n = len(index[level])
        ok = g["status"] == "ok"
        nums = [float(v) for v in g.loc[ok, "value"]]
        info = spec[ind]
        classes = legend_classes(nums, decimals=int(info["decimals"]), kind=str(info["kind"]))  # type: ignore[call-overload]
        colors = class_colors(classes)
        legends[level][ind] = [
            {"upper": None if math.isinf(hi) else hi, "label": label, "color": col}
            for (_, hi, label), col in zip(classes, colors, strict=True)
        ]
        for year, gy in g.groupby("year", sort=True):
            cells: list[object] = ["."] * n
            for code, v, st in zip(gy["area_code"], gy["value"], gy["status"], strict=True):
                k = index[level].get(str(code))
                if k is not None:
                    cells[k] = float(v) if st == "ok" else symbols.get(str(st), "x")
            values[level].setdefault(ind, {})[str(year)] = cells
    params = (report or {}).get("parameters", {})
    hot = hotspot_data(hotspots, index["buurt"], {str(i["key"]) for i in indicators})
    return {
        "years": years,
        "levels": list(LEVELS),
        "phenomena": [{"key": k, "label": lab, "present": p} for k, lab, p in order],
        "indicators": indicators,
        "areas": level_areas,
        "values": values,
        "legends": legends,
        "min_count": params.get("min_count") if isinstance(params, Mapping) else None,
        "hotspots": hot,
        "hot_legends": {
            # a negative bound belongs to its band (z <= -1.96), a positive one to the next
            "gi": [{"upper": u, "label": lab, "color": c} for u, lab, c in GI_BANDS],
            "moran": [{"code": q, "label": lab, "color": c} for q, lab, c in MORAN_CLASSES],
            "left_out": {sym: lab for sym, lab in HOT_LEFT_OUT.values()},
        },
        "hot_note": HOT_NOTE,
        "_paths": paths,  # for the page's <defs>; not part of the script's JSON
        "_size": size,
    }


def hotspot_data(
    hotspots: pd.DataFrame | None, buurt_index: Mapping[str, int], offered: set[str]
) -> dict[str, dict[str, dict[str, list[object]]]]:
    """indicator -> year -> ``{"z": [...], "m": [...]}`` in the page's buurt order: the Gi* z
    (two decimals) and the Moran quadrant of a buurt that took part, else the symbol of why it
    was left out (:data:`HOT_LEFT_OUT`)."""
    out: dict[str, dict[str, dict[str, list[object]]]] = {}
    if hotspots is None or hotspots.empty:
        return out
    n = len(buurt_index)
    no_row = HOT_LEFT_OUT["not_covered"][0]
    for (ind, year), g in hotspots.groupby(["indicator", "year"], sort=True):
        if str(ind) not in offered:
            continue
        z: list[object] = [no_row] * n
        m: list[object] = [no_row] * n
        for code, gz, mq, left in zip(g["area_code"], g["gi_z"], g["moran"], g["left_out"],
                                      strict=True):  # fmt: skip
            k = buurt_index.get(str(code))
            if k is None:
                continue
            if left:
                z[k] = m[k] = HOT_LEFT_OUT.get(str(left), ("u", ""))[0]
                continue
            z[k] = round(float(gz), 2) if math.isfinite(float(gz)) else "u"
            m[k] = str(mq) if mq else "u"
        out.setdefault(str(ind), {})[str(year)] = {"z": z, "m": m}
    return out


# --------------------------------------------------------------------------- the page

PAGE_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;color:#222;padding:0 1rem}
h1{font-size:1.6rem} h2{font-size:1.2rem;border-top:1px solid #ccc;padding-top:1rem}
.controls{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.controls label{display:flex;flex-direction:column;font-size:.85rem}
.row{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
svg.map{width:36rem;max-width:100%;height:auto;border:1px solid #ddd;background:#fff}
svg.map use{stroke:#fff;stroke-width:2;cursor:pointer} svg.map use:hover{stroke:#222}
table{border-collapse:collapse;font-size:.85rem} td,th{padding:.15rem .5rem;text-align:left}
td.n,th.n{text-align:right} .legend span.sw{display:inline-block;width:1rem;height:1rem;
vertical-align:middle;margin-right:.3rem;border:1px solid #999}
.legend div{margin:.15rem 0;font-size:.85rem} .note{background:#fff8e1;padding:.5rem 1rem}
.hatch{background:repeating-linear-gradient(45deg,#777 0 3px,#f4f4f4 3px 8px)}
#detail{min-height:6rem}
tr.flagged td{background:#fde0dd}
"""

SCRIPT = r"""
(function(){
"use strict";
var D=JSON.parse(document.getElementById("zicht-data").textContent);
var NS=document.getElementById("map").namespaceURI;
function $(id){return document.getElementById(id);}
var S={phenomenon:$("sel-phenomenon"),indicator:$("sel-indicator"),year:$("sel-year"),level:$("sel-level"),map:$("sel-map")};
var SYM={"x":"x (geheim)",".":". (gegevens ontbreken)","":"niet van toepassing"};
function info(key){for(var i=0;i<D.indicators.length;i++){if(D.indicators[i].key===key)return D.indicators[i];}return null;}
function fmt(v,d){return v.toFixed(d).replace(".",",");}
function text(v,ind){return typeof v==="number"?fmt(v,ind.decimals):(SYM[v]||v);}
function color(v,legend){
  if(typeof v!=="number"){return v==="x"?"url(#hatch)":"#e8e8e8";}
  for(var i=0;i<legend.length;i++){var u=legend[i].upper;if(u===null||v<=u+1e-9)return legend[i].color;}
  return legend.length?legend[legend.length-1].color:"#e8e8e8";
}
function phen(){for(var i=0;i<D.phenomena.length;i++){if(D.phenomena[i].key===S.phenomenon.value)return D.phenomena[i];}return D.phenomena[0];}
function fillIndicators(){
  var p=S.phenomenon.value,prev=S.indicator.value,tail=prev.slice(prev.indexOf(".")+1);
  while(S.indicator.firstChild)S.indicator.removeChild(S.indicator.firstChild);
  D.indicators.forEach(function(i){if(i.phenomenon!==p)return;var o=document.createElement("option");o.value=i.key;o.textContent=i.label;S.indicator.appendChild(o);});
  if(info(p+"."+tail))S.indicator.value=p+"."+tail;
}
function series(level,key,k){return D.years.map(function(y){var v=((D.values[level][key]||{})[String(y)]||[])[k];return v===undefined?".":v;});}
function spark(vals){
  var pts=[],top=0;vals.forEach(function(v){if(typeof v==="number"&&v>top)top=v;});top=top||1;
  var n=Math.max(vals.length-1,1);
  vals.forEach(function(v,i){if(typeof v==="number")pts.push((4+112*i/n).toFixed(0)+","+(26-22*v/top).toFixed(0));});
  if(pts.length<2)return null;
  var s=document.createElementNS(NS,"svg");s.setAttribute("width","120");s.setAttribute("height","30");s.setAttribute("class","spark");
  var l=document.createElementNS(NS,"polyline");l.setAttribute("points",pts.join(" "));l.setAttribute("fill","none");l.setAttribute("stroke","#a50f15");l.setAttribute("stroke-width","2");s.appendChild(l);return s;
}
function cell(tr,t,cls){var td=document.createElement("td");td.textContent=t;if(cls)td.className=cls;tr.appendChild(td);return td;}
function showDetail(level,k){
  var ind=info(S.indicator.value),a=D.areas[level][k],box=$("detail");box.textContent="";
  var h=document.createElement("h3");h.textContent=a.name+" ("+a.code+"): "+ind.label;box.appendChild(h);
  var t=document.createElement("table"),head=document.createElement("tr"),row=document.createElement("tr");
  var vals=series(level,ind.key,k);
  D.years.forEach(function(y,i){var th=document.createElement("th");th.className="n";th.textContent=y;head.appendChild(th);cell(row,text(vals[i],ind),"n");});
  var sp=spark(vals);var td=document.createElement("td");if(sp)td.appendChild(sp);row.appendChild(td);
  t.appendChild(head);t.appendChild(row);box.appendChild(t);
}
function draw(){
  var p=phen(),level=S.level.value,key=S.indicator.value,year=S.year.value,ind=info(key);
  var map=$("map"),g=$("map-areas");
  map.setAttribute("data-phenomenon",p.key);map.setAttribute("data-indicator",key||"");
  map.setAttribute("data-level",level);map.setAttribute("data-year",year);
  while(g.firstChild)g.removeChild(g.firstChild);
  $("absent").hidden=p.present;$("present").hidden=!p.present;
  if(!p.present||!ind){map.setAttribute("data-absent","1");$("legend").textContent="";$("top").textContent="";$("about").textContent="";return;}
  map.removeAttribute("data-absent");
  var mode=S.map?S.map.value:"values";map.setAttribute("data-map",mode);$("hotnote").hidden=(mode==="values");
  if(mode!=="values"){drawHot(p,mode,year);return;}
  var legend=(D.legends[level]||{})[key]||[],vals=((D.values[level][key]||{})[year])||[];
  D.areas[level].forEach(function(a,k){
    if(!a.id)return;var v=vals[k]===undefined?".":vals[k];
    var u=document.createElementNS(NS,"use");u.setAttribute("href","#"+a.id);u.setAttribute("fill",color(v,legend));
    u.setAttribute("data-code",a.code);var t=document.createElementNS(NS,"title");t.textContent=a.name+": "+text(v,ind);u.appendChild(t);
    u.addEventListener("click",function(){showDetail(level,k);});g.appendChild(u);
  });
  var L=$("legend");L.textContent="";
  var hd=document.createElement("strong");hd.textContent="Legenda ("+ind.unit_nl+")";L.appendChild(hd);
  legend.forEach(function(c){var d=document.createElement("div");d.className="class";var s=document.createElement("span");s.className="sw";s.style.background=c.color;d.appendChild(s);d.appendChild(document.createTextNode(c.label));L.appendChild(d);});
  [["sw hatch","x geheim (onderdrukt)"],["sw","niet van toepassing of geen gegevens"]].forEach(function(e,i){var d=document.createElement("div");var s=document.createElement("span");s.className=e[0];if(i)s.style.background="#e8e8e8";d.appendChild(s);d.appendChild(document.createTextNode(e[1]));L.appendChild(d);});
  var top=$("top");top.textContent="";
  var order=[],any=vals.some(function(v){return typeof v==="number"&&v>0;});
  vals.forEach(function(v,k){if(typeof v==="number"&&(v>0||!any))order.push(k);});
  order.sort(function(a,b){return vals[b]-vals[a]||(D.areas[level][a].name<D.areas[level][b].name?-1:1);});
  var cap=document.createElement("h3");cap.textContent="Hoogste waarden, "+year+" (klik voor het verloop)";top.appendChild(cap);
  var t=document.createElement("table"),h=document.createElement("tr");
  ["gebied","code"].concat(D.years.map(String)).concat([""]).forEach(function(x){var th=document.createElement("th");th.textContent=x;h.appendChild(th);});t.appendChild(h);
  order.slice(0,10).forEach(function(k){var a=D.areas[level][k],tr=document.createElement("tr");cell(tr,a.name);cell(tr,a.code);
    var sv=series(level,key,k);sv.forEach(function(v){cell(tr,text(v,ind),"n");});var td=document.createElement("td");var sp=spark(sv);if(sp)td.appendChild(sp);tr.appendChild(td);
    tr.addEventListener("click",function(){showDetail(level,k);});t.appendChild(tr);});
  top.appendChild(t);
  var ab=$("about");ab.textContent="";var b=document.createElement("p");b.textContent=ind.definition;ab.appendChild(b);
  if(ind.caveat){var c=document.createElement("p");c.textContent="Let op: "+ind.caveat;ab.appendChild(c);}
}
function hotColor(v,mode){
  if(typeof v==="number"){var G=D.hot_legends.gi;for(var i=0;i<G.length;i++){var u=G[i].upper;if(u===null||(u<0?v<=u:v<u))return G[i].color;}return G[G.length-1].color;}
  if(mode==="moran"){var M=D.hot_legends.moran;for(var j=0;j<M.length;j++){if(M[j].code===v)return M[j].color;}}
  return v==="x"?"url(#hatch)":"#e8e8e8";
}
function hotText(v,mode){
  if(typeof v==="number")return "Gi* z = "+fmt(v,2);
  if(mode==="moran"){var M=D.hot_legends.moran;for(var j=0;j<M.length;j++){if(M[j].code===v)return M[j].label;}}
  return D.hot_legends.left_out[v]||v;
}
function drawHot(p,mode,year){
  var map=$("map"),g=$("map-areas"),key=p.key+".incidents_per_1000",level="buurt";
  if(S.level.value!==level)S.level.value=level;
  map.setAttribute("data-level",level);map.setAttribute("data-indicator",key);
  var cells=((D.hotspots[key]||{})[year])||null,vals=cells?cells[mode==="gi"?"z":"m"]:[];
  var seen={};
  D.areas[level].forEach(function(a,k){
    if(!a.id)return;var v=vals[k]===undefined?(cells?".":"t"):vals[k];if(typeof v!=="number")seen[v]=1;
    var u=document.createElementNS(NS,"use");u.setAttribute("href","#"+a.id);u.setAttribute("fill",hotColor(v,mode));
    u.setAttribute("data-code",a.code);var t=document.createElementNS(NS,"title");t.textContent=a.name+": "+hotText(v,mode);u.appendChild(t);
    u.addEventListener("click",function(){showDetail(level,k);});g.appendChild(u);
  });
  var L=$("legend");L.textContent="";
  var hd=document.createElement("strong");hd.textContent=(mode==="gi"?"Legenda (hotspots, Gi* z-score":"Legenda (lokale Moran")+", incidenten per 1000 inwoners)";L.appendChild(hd);
  (mode==="gi"?D.hot_legends.gi:D.hot_legends.moran).forEach(function(c){var d=document.createElement("div");d.className="class";var s=document.createElement("span");s.className="sw";s.style.background=c.color;d.appendChild(s);d.appendChild(document.createTextNode(c.label));L.appendChild(d);});
  Object.keys(D.hot_legends.left_out).forEach(function(sym){if(!seen[sym]||(mode==="moran"&&D.hot_legends.moran.some(function(c){return c.code===sym;})))return;
    var d=document.createElement("div");d.className="left-out";var s=document.createElement("span");s.className=sym==="x"?"sw hatch":"sw";if(sym!=="x")s.style.background="#e8e8e8";d.appendChild(s);d.appendChild(document.createTextNode(D.hot_legends.left_out[sym]));L.appendChild(d);});
  $("top").textContent="";
  var ab=$("about");ab.textContent="";var b=document.createElement("p");b.textContent=D.hot_note;ab.appendChild(b);
}
S.phenomenon.addEventListener("change",function(){fillIndicators();draw();});
["indicator","year","level","map"].forEach(function(n){if(S[n])S[n].addEventListener("change",draw);});
fillIndicators();
var h=(location.hash||"").slice(1);
h.split("&").forEach(function(kv){var p=kv.split("=");var s=S[p[0]];if(s&&p[1]!==undefined){s.value=decodeURIComponent(p[1]);s.dispatchEvent(new Event("change"));}});
draw();
document.body.setAttribute("data-ready","1");
})();
"""


def _options(items: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>'
        f"{html.escape(t)}</option>"
        for v, t in items
    )


def _script_json(data: Mapping[str, object]) -> str:
    # inside <script>: "</" must not close the element, and U+2028/9 are fine in JSON
    body = json.dumps({k: v for k, v in data.items() if not k.startswith("_")},
                      ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # fmt: skip
    return body.replace("</", "<\\/")


def build_report_html(
    pub: pd.DataFrame,
    areas: pd.DataFrame,
    *,
    phenomena: Mapping[str, str],
    report: Mapping[str, object],
    codebook: pd.DataFrame | None = None,
    present: set[str] | None = None,
    first: Sequence[str] = (),
    title: str = "",
    trend_html: str = "",
    hotspots: pd.DataFrame | None = None,
    plausibility_html: str = "",
) -> str:
    """The page as one string. ``pub``: the formatted partner rows (all levels); ``areas``: one
    row per buurt with ``buurt_code, buurt_name, x, y`` and, when known, ``wijk_code``,
    ``gemeente_code``, ``geometry_wkt`` and ``land_area_ha``; ``phenomena``: key -> Dutch label;
    ``present``: the phenomena registered somewhere in the delivery (None: all); ``first``:
    the phenomena to list first (an overlay's); ``trend_html``: the published trend per
    gemeente, already rendered (:func:`zicht.jobs.export.trends.gemeente_trend_html`);
    ``hotspots``: the hot spots of the published values
    (:func:`zicht.jobs.export.hotspots_published.published_hotspots`), offered as map choices
    when not empty; ``plausibility_html``: the published counts beside the reference totals,
    already rendered (:func:`zicht.jobs.export.plausibility_report.plausibility_html`)."""
    data = report_data(
        pub, areas, phenomena=phenomena, codebook=codebook, present=present, first=first,
        report=report, hotspots=hotspots,
    )  # fmt: skip
    has_hot = bool(data["hotspots"])
    paths: dict[str, dict[str, str]] = data["_paths"]  # type: ignore[assignment]
    size: tuple[float, float] = data["_size"]  # type: ignore[assignment]
    w, h = size
    level_areas: dict[str, list[dict[str, str]]] = data["areas"]  # type: ignore[assignment]
    defs = "".join(
        f'<path id="{a["id"]}" d="{paths[lvl][a["code"]]}"/>'
        for lvl in LEVELS
        for a in level_areas[lvl]
        if a["id"]
    )
    order: list[dict[str, object]] = data["phenomena"]  # type: ignore[assignment]
    indicators: list[dict[str, object]] = data["indicators"]  # type: ignore[assignment]
    years: list[int] = data["years"]  # type: ignore[assignment]
    first_p = next((p for p in order if p["present"]), order[0] if order else None)
    p_key = str(first_p["key"]) if first_p else ""
    offered = [i for i in indicators if i["phenomenon"] == p_key]
    i_key = next((str(i["key"]) for i in offered if str(i["key"]).endswith(".incidents_per_1000")),
                 str(offered[0]["key"]) if offered else "")  # fmt: skip
    year = str(years[-1]) if years else ""
    # the first view, as the script draws it
    uses: list[str] = []
    legend_html = ""
    ind = next((i for i in indicators if i["key"] == i_key), None)
    if ind is not None and first_p is not None and first_p["present"]:
        values: dict[str, dict[str, dict[str, list[object]]]] = data["values"]  # type: ignore[assignment]
        legends: dict[str, dict[str, list[dict[str, object]]]] = data["legends"]  # type: ignore[assignment]
        legend = legends["buurt"].get(i_key, [])
        vals = values["buurt"].get(i_key, {}).get(year, [])
        for k, a in enumerate(level_areas["buurt"]):
            if not a["id"]:
                continue
            v = vals[k] if k < len(vals) else "."
            fill = _fill(v, legend)
            txt = (
                _fmt_nl(float(v), int(str(ind["decimals"])))
                if isinstance(v, float)
                else SYMBOL_TEXT.get(str(v), str(v))
            )  # type: ignore[call-overload]
            uses.append(
                f'<use href="#{a["id"]}" fill="{fill}" data-code="{html.escape(a["code"])}">'
                f"<title>{html.escape(a['name'])}: {html.escape(txt)}</title></use>"
            )
        legend_html = f"<strong>Legenda ({html.escape(str(ind['unit_nl']))})</strong>" + "".join(
            f'<div class="class"><span class="sw" style="background:{c["color"]}"></span>'
            f"{html.escape(str(c['label']))}</div>"
            for c in legend
        ) + ('<div><span class="sw hatch"></span>x geheim (onderdrukt)</div>'
             f'<div><span class="sw" style="background:{NO_DATA}"></span>niet van toepassing '
             "of geen gegevens</div>")  # fmt: skip
    absent = [str(p["label"]) for p in order if not p["present"]]
    audit = report.get("audit", {})
    passed = isinstance(audit, Mapping) and audit.get("passed")
    min_count = data.get("min_count") or 10
    phen_opts = _options(
        [(str(p["key"]), str(p["label"]) + ("" if p["present"] else " (niet in deze levering)"))
         for p in order],
        p_key,
    )  # fmt: skip
    ind_opts = _options([(str(i["key"]), str(i["label"])) for i in offered], i_key)
    year_opts = _options([(str(y), str(y)) for y in years], year)
    level_opts = _options([(lvl, LEVEL_NL[lvl]) for lvl in LEVELS], "buurt")
    map_opts = _options(
        [("values", "waarden"), ("gi", "hotspots (Gi*)"), ("moran", "lokale Moran")], "values"
    )
    heading = title or "Ondermijning per buurt, wijk en gemeente"
    out = [
        '<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(heading)} - zicht</title>",
        f"<style>{PAGE_CSS}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
        "<p>Geregistreerde criminaliteit en signalen per gebied. Kies verschijnsel, indicator, "
        "jaar en niveau; klik op een gebied voor het verloop over de jaren. Cijfers met te "
        "kleine aantallen, of waaruit die terug te rekenen zijn, zijn onderdrukt (geheim, "
        "gearceerd op de kaart).</p>",
        '<div class="controls">',
        f'<label>Verschijnsel<select id="sel-phenomenon">{phen_opts}</select></label>',
        f'<label>Indicator<select id="sel-indicator">{ind_opts}</select></label>',
        f'<label>Jaar<select id="sel-year">{year_opts}</select></label>',
        f'<label>Niveau<select id="sel-level">{level_opts}</select></label>',
        f'<label>Kaart<select id="sel-map">{map_opts}</select></label>' if has_hot else "",
        "</div>",
        '<p id="absent" class="note" hidden>Dit verschijnsel komt niet voor in deze levering: '
        "nergens in de aangeleverde gegevens is een registratie gevonden. Dat betekent niet "
        "dat het er niet is; de levering kan onvolledig zijn.</p>",
        # One hidden SVG holds each area's outline once; the map re-uses it (<use>).
        f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{defs}'
        '<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f4f4f4"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#777" stroke-width="3"/></pattern>'
        "</defs></svg>",
        '<div class="row" id="present">',
        f'<svg class="map" id="map" viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="Kaart" '
        f'data-phenomenon="{html.escape(p_key)}" data-indicator="{html.escape(i_key)}" '
        f'data-level="buurt" data-year="{year}"><g id="map-areas">{"".join(uses)}</g></svg>',
        f'<div class="legend" id="legend">{legend_html}</div>',
        '<div><div id="detail"></div></div>',
        "</div>",
        f'<p id="hotnote" class="note" hidden>{html.escape(HOT_NOTE)}</p>',
        '<div id="top"></div>',
        '<h2>Over deze indicator</h2><div id="about"></div>',
        trend_html,  # the published trend per gemeente (zicht.jobs.export.trends)
        plausibility_html,  # published counts beside published totals (plausibility_report)
    ]
    if absent:
        out.append(
            "<p>Niet in deze levering (geen enkele registratie in de aangeleverde gegevens): "
            + html.escape(", ".join(absent))
            + ".</p>"
        )
    out += [
        "<h2>Onthullingscontrole in gewone taal</h2>",
        f"<ul><li>Een aantal van 1 tot {min_count} wordt niet gepubliceerd (geheim, "
        "<b>x</b>). Nul wordt altijd gepubliceerd.</li>"
        "<li>Een aantal per 1000 inwoners, een aandeel of een index is geheim als het aantal "
        "waaruit het is berekend geheim is, of als dat aantal of de noemer te klein is.</li>"
        "<li>Ook andere cijfers zijn soms geheim: anders zou een geheim cijfer terug te rekenen "
        "zijn uit de wijk- of gemeentetotalen of uit een smaller verschijnsel. Welke regel een "
        "cijfer geheim maakte, staat nergens: ook dat zou iets verraden.</li>"
        "<li><b>.</b> betekent dat de bron dit gebied of jaar niet dekt; een leeg vak dat een "
        "cijfer niet kan bestaan (bijvoorbeeld per 1000 inwoners waar niemand woont).</li>"
        + (
            "<li>De hotspotkaarten (Gi*, lokale Moran; kies ze bij Kaart) zijn alleen berekend "
            "op de gepubliceerde buurtcijfers, met de buren uit de gepubliceerde buurtgrenzen: "
            "geheime, niet van toepassing zijnde en ontbrekende buurten tellen niet mee, ook "
            "niet als 0. Hotspots van de niet-onderdrukte gegevens zouden geheime cijfers kunnen "
            "verraden; die blijven bij de analisten.</li>"
            if has_hot
            else "<li>Hotspotkaarten (Gi*, lokale Moran) staan niet in dit rapport: de buurten "
            "hebben geen kaartvorm om de buren uit te bepalen, en hotspots van de "
            "niet-onderdrukte gegevens zouden geheime cijfers kunnen verraden.</li>"
        )
        + f"<li>De controle op terugrekenen is {'geslaagd' if passed else 'NIET geslaagd'}.</li>"
        "</ul>",
        f'<script type="application/json" id="zicht-data">{_script_json(data)}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(out)


def _fill(v: object, legend: Sequence[Mapping[str, object]]) -> str:
    if not isinstance(v, float):
        return "url(#hatch)" if v == "x" else NO_DATA
    for c in legend:
        u = c["upper"]
        if u is None or v <= float(u) + 1e-9:  # type: ignore[arg-type]
            return str(c["color"])
    return str(legend[-1]["color"]) if legend else NO_DATA


class HtmlWriter:
    format = "html"

    def text(self, data: bytes) -> Iterator[str]:
        return utf8_text(data)


WRITER = HtmlWriter()


def screenshot(page: bytes, *, width: int = 1300, height: int = 1500) -> bytes | None:
    """A PNG of the page as headless Chromium draws it, for the MLflow run; None when
    Chromium is not installed or fails (the export never depends on it). The page goes to a
    local temporary file only: Chromium reads local files, not the run's locations."""
    import logging
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None or not page:
        return None
    with tempfile.TemporaryDirectory(prefix="zicht-shot-") as tmp:
        src, png = f"{tmp}/report.html", f"{tmp}/report.png"
        with open(src, "wb") as fh:
            fh.write(page)
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},{height}", f"--screenshot={png}", f"file://{src}"]  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            with open(png, "rb") as fh:
                return fh.read()
        except (OSError, subprocess.SubprocessError) as exc:
            logging.getLogger("zicht").warning("no screenshot of the report: %s", exc)
            return None
