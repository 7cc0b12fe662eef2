"""The report's plausibility section: zicht's published counts beside published totals.

Issue 15, item 6. The indicator stage compares zicht's raw incident counts with a reference
table (``plausibility.reference``, e.g. StatLine 47018NED: ``gemeente_code, year,
crime_class, count``; :func:`zicht.features.plausibility.compare_with_published`) and puts the
comparison in the manifest, for the analysts. The report is a partner file, so it never shows
a raw count: beside each reference count it shows the cell of the protected partner table that
counts the same incidents, as published (the suppression symbol ``x`` where suppressed), and
the difference and its flag are computed from that published value only (a flag computed from
a suppressed cell's raw count would say how near the reference it lies).

The published cell that counts the same incidents is ``<P>.incidents`` at gemeente level of a
phenomenon P that lists no incident codes and whose classes are the reference row's classes:
such a phenomenon holds exactly the incidents of those classes (``conf/base/phenomena.yaml``;
e.g. the Groningen example's ``fietsdiefstal``, class 1.2.3). A phenomenon of several classes
is compared with the sum of their reference counts. Reference rows with no such phenomenon
(the all-classes total ``0.0.0``, classes the phenomena only partly cover) have no published
counterpart and stay in the manifest only; the section says how many. Reads and writes
nothing; the reference and the comparison are small (gemeenten x years x classes).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from zicht.features.settings import Phenomenon

ROW_COLUMNS = ["gemeente_code", "gemeente_name", "year", "classes", "phenomenon",
               "published_value", "status", "reference_count", "difference",
               "difference_share", "is_flagged"]  # fmt: skip
SYMBOL = {"suppressed": "x", "not_covered": ".", "not_applicable": ""}


def class_phenomena(phenomena: Mapping[str, Phenomenon]) -> dict[tuple[str, ...], str]:
    """Sorted classes -> the phenomenon counting exactly the incidents of those classes (no
    incident codes; the first in catalogue order when two share them)."""
    out: dict[tuple[str, ...], str] = {}
    for key, ph in phenomena.items():
        if ph.incident_codes or not ph.classes:
            continue
        out.setdefault(tuple(sorted(c.strip() for c in ph.classes)), key)
    return out


def plausibility_rows(
    pub: pd.DataFrame,
    reference: Sequence[Mapping[str, Any]],
    *,
    phenomena: Mapping[str, Phenomenon],
    max_share: float,
) -> tuple[pd.DataFrame, int]:
    """The section's rows (:data:`ROW_COLUMNS`) and how many reference rows have no published
    counterpart.

    ``pub``: the formatted partner rows; ``reference``: ``gemeente_code, year, crime_class``
    and the reference count as ``published_count`` (the manifest's plausibility rows; their
    ``zicht_count`` is raw and never read here). ``difference`` is published minus reference
    and ``is_flagged`` its share of the reference above ``max_share`` (a reference of 0: any
    published count above 0); both empty (NaN, None) where the cell is not published."""
    ref: dict[tuple[str, int, str], int] = {}
    for r in reference:
        key = (str(r["gemeente_code"]).strip(), int(r["year"]), str(r["crime_class"]).strip())
        ref[key] = int(r["published_count"])
    gem = pub[pub["level"] == "gemeente"]
    cells = {
        (str(c), int(y), str(i)): (str(v), str(s), str(n) if isinstance(n, str) and n else str(c))
        for c, y, i, v, s, n in zip(gem["area_code"], gem["year"], gem["indicator"],
                                    gem["value"], gem["status"], gem["area_name"], strict=True)
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    used: set[tuple[str, int, str]] = set()
    for classes, p in sorted(class_phenomena(phenomena).items()):
        for g, year in sorted({(g, y) for g, y, _ in ref}):
            keys = [(g, year, c) for c in classes]
            cell = cells.get((g, year, f"{p}.incidents"))
            if cell is None or not all(k in ref for k in keys):
                continue
            used.update(keys)
            value, status, name = cell
            reference_count = sum(ref[k] for k in keys)
            diff: float = math.nan
            share: float = math.nan
            flagged: bool | None = None
            if status == "ok" and value != "":
                diff = float(value) - reference_count
                if reference_count > 0:
                    share = abs(diff) / reference_count
                    flagged = share > max_share
                else:
                    flagged = float(value) > 0
            rows.append(
                {
                    "gemeente_code": g,
                    "gemeente_name": name,
                    "year": year,
                    "classes": "+".join(classes),
                    "phenomenon": p,
                    "published_value": value if status == "ok" else "",
                    "status": status,
                    "reference_count": reference_count,
                    "difference": diff,
                    "difference_share": share,
                    "is_flagged": flagged,
                }
            )
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    return frame, len(set(ref) - used)


def _nl(v: float, decimals: int = 0) -> str:
    return f"{v:.{decimals}f}".replace(".", ",")


def plausibility_html(
    rows: pd.DataFrame,
    *,
    max_share: float,
    unmatched: int,
    phenomena: Mapping[str, str],
) -> str:
    """The report's section in Dutch: one table row per gemeente, year and class(es), the
    differences above ``max_share`` marked. Empty when there are no rows and nothing
    unmatched (no reference configured)."""
    if rows.empty and not unmatched:
        return ""
    pct = _nl(100 * max_share)
    out = [
        '<h2 id="plausibiliteit">Vergelijking met gepubliceerde cijfers</h2>',
        "<p>Het aantal incidenten dat zicht publiceert (na de onthullingscontrole; <b>x</b> is "
        "geheim) naast het gepubliceerde aantal geregistreerde misdrijven van dezelfde "
        f"klasse(n) uit de opgegeven bron (bijvoorbeeld CBS StatLine 47018NED). Een verschil "
        f"van meer dan {pct}% van het gepubliceerde aantal is gemarkeerd. Bij een geheim "
        "cijfer wordt geen verschil berekend.</p>",
    ]
    if not rows.empty:
        head = ("gemeente", "code", "jaar", "klasse", "verschijnsel", "zicht (gepubliceerd)",
                "bron", "verschil", "verschil (%)", "")  # fmt: skip
        out.append('<table class="plausibility"><tr>')
        out.append("".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for r in rows.itertuples(index=False):
            shown = str(r.published_value) if r.status == "ok" else SYMBOL.get(str(r.status), "x")
            d, q = float(r.difference), float(r.difference_share)  # type: ignore[arg-type]
            diff = "" if math.isnan(d) else _nl(d)
            share = "" if math.isnan(q) else _nl(100 * q, 1)
            mark = "afwijking" if r.is_flagged else ""
            cls = ' class="flagged"' if r.is_flagged else ""
            cells = (r.gemeente_name, r.gemeente_code, str(r.year), r.classes,
                     phenomena.get(str(r.phenomenon), str(r.phenomenon)))  # fmt: skip
            out.append(
                f"<tr{cls}>"
                + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                + "".join(
                    f'<td class="n">{html.escape(c)}</td>'
                    for c in (shown, str(r.reference_count), diff, share)
                )
                + f"<td>{mark}</td></tr>"
            )
        out.append("</table>")
    if unmatched:
        out.append(
            f"<p>{unmatched} rij(en) van de bron (bijvoorbeeld het totaal van alle klassen) "
            "hebben geen verschijnsel dat precies die klasse telt; zicht publiceert daarvoor "
            "geen aantal, dus staan ze hier niet.</p>"
        )
    return "\n".join(out)


def report_section(
    pub: pd.DataFrame,
    fact: Mapping[str, Any] | None,
    *,
    phenomena: Mapping[str, Phenomenon],
    labels: Mapping[str, str],
    gemeenten: Sequence[str] | None = None,
) -> str:
    """The section of one report: ``fact`` is the manifest's ``plausibility`` (None or empty:
    no reference configured, no section); ``gemeenten``: a package's, to cut the reference to
    (its published rows are already cut)."""
    if not fact or not fact.get("rows"):
        return ""
    reference = [
        r for r in fact["rows"] if gemeenten is None or str(r["gemeente_code"]).strip() in gemeenten
    ]
    max_share = float(fact.get("max_difference_share", 0.1))
    rows, unmatched = plausibility_rows(pub, reference, phenomena=phenomena, max_share=max_share)
    return plausibility_html(rows, max_share=max_share, unmatched=unmatched, phenomena=labels)
