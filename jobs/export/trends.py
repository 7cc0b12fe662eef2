"""The partner trend table (``export/trends.csv``, and each package's) and its place in the report.

The table is :func:`zicht.models.trends.published_trends` of the formatted partner table: it is
computed from the published, rounded values alone, and only where every year of a series is
published, so it gives away nothing the indicator tables do not. Significance flags pass the
hot spots' Benjamini-Hochberg step at ``model.fdr_alpha``. A package's trend rows are the
national rows of its gemeenten, unchanged (the q-values are the national ones). The report shows
the fitted trend per gemeente (:func:`gemeente_trend_html`). Reads and writes nothing: the
export stage writes what :func:`render_trends` returns. The partner table is small by
construction (areas x years x indicators) and already on the driver.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from zicht.features.export import (
    CSV_DIALECTS,
    DECIMALS,
    csv_text,
    map_distinct,
    neutralise_frame,
    text_by_decimals,
)
from zicht.features.settings import IndicatorSpec
from zicht.jobs.export.csvfile import BOM
from zicht.models.trends import PUBLISHED_COLUMNS, published_trends

# columns rendered as numbers (never neutralised against formulas: "-0.25" stays a number)
NUMERIC = ("first_year", "last_year", "value_last", "change_last", "change_last_relative",
           "lower_last", "upper_last", "trend_per_year", "trend_lower", "trend_upper", "q_value")  # fmt: skip


def trend_table(
    pub: pd.DataFrame,
    *,
    specs: Sequence[IndicatorSpec],
    fdr_alpha: float,
    inexact: Collection[str] = (),
) -> pd.DataFrame:
    """The national trend rows of the formatted partner table ``pub`` (every level).

    ``inexact``: the target buurten an old vintage's split or boundary correction feeds
    (:func:`zicht.jobs.vintages.inexact_target_buurten`); their old years undercount them, so
    their trend is ``not_exact``. Wijken and gemeenten hold the unassigned parts: exact."""
    if not inexact:
        return published_trends(pub, specs=specs, fdr_alpha=fdr_alpha, placed_exactly=None)
    skip = frozenset(inexact)
    return published_trends(
        pub,
        specs=specs,
        fdr_alpha=fdr_alpha,
        placed_exactly=lambda level, code: not (level == "buurt" and code in skip),
    )


def _decimals(column: str, unit: str) -> int:
    if column in ("first_year", "last_year"):
        return 0
    if column in ("change_last_relative", "trend_per_year", "trend_lower", "trend_upper"):
        return 3
    if column == "q_value":
        return 4
    d = DECIMALS.get(unit, 3)
    return d + 1 if column in ("lower_last", "upper_last") else d


def _fixed(values: pd.Series, unit: np.ndarray, column: str, decimal: str) -> np.ndarray:
    """The column's numbers as text with the column's decimals for each row's unit (empty where
    absent): one format per unit, applied to that unit's rows."""
    v = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    codes, names = pd.factorize(unit)
    decimals = np.array([_decimals(column, u) for u in names] + [0])[codes]
    text = text_by_decimals(v, decimals, ~np.isnan(v), lambda x, d: f"{x:.{d}f}")
    if decimal != ".":
        text = map_distinct(text, lambda t: t.replace(".", decimal))
    return text


def render_trends(
    trends: pd.DataFrame, *, units: Mapping[str, str], dialect: str = "standard"
) -> bytes:
    """The CSV bytes (UTF-8 with BOM, RFC 4180, the dialect's separator and decimal mark):
    numbers rounded per column and unit, empty where absent."""
    sep, decimal = CSV_DIALECTS[dialect]
    out = trends[PUBLISHED_COLUMNS].copy()
    unit = out["indicator"].map(lambda i: units.get(i, "share")).to_numpy()
    for col in NUMERIC:
        out[col] = _fixed(out[col], unit, col, decimal)
    flag = pd.array(out["is_significant"], dtype="boolean")
    out["is_significant"] = np.where(
        flag.isna(), "", np.where(flag.fillna(False), "true", "false")
    ).astype(object)
    out = neutralise_frame(out, numeric=NUMERIC)
    return (BOM + csv_text(out, sep=sep)).encode("utf-8")


REPORT_INDICATOR = "incidents_per_1000"  # the fitted trend the report shows per gemeente


def gemeente_trend_html(trends: pd.DataFrame, *, phenomena: Mapping[str, str]) -> str:
    """A small table: per gemeente and phenomenon, the published trend of incidents per 1000
    inhabitants over the period (relative change per year and its 95 % interval; * where
    significant after the FDR step). Empty when there is no gemeente trend."""
    wanted = {f"{p}.{REPORT_INDICATOR}": p for p in phenomena}
    rows = trends[(trends["level"] == "gemeente") & trends["indicator"].isin(list(wanted))]
    if rows.empty:
        return ""

    def pct(v: object) -> str:
        return f"{100 * float(v):+.0f}%".replace(".", ",")  # type: ignore[arg-type]

    def cell(r: pd.Series) -> str:
        if r["status"] != "ok":
            return '<td class="n">x</td>'
        if r["trend_status"] != "ok":
            return '<td class="n">-</td>'
        star = "*" if bool(r["is_significant"]) else ""
        return (
            f'<td class="n">{pct(r["trend_per_year"])}{star} '
            f"({pct(r['trend_lower'])} tot {pct(r['trend_upper'])})</td>"
        )

    shown = [p for p in phenomena if f"{p}.{REPORT_INDICATOR}" in set(rows["indicator"])]
    by = {
        (str(r["area_code"]), str(r["indicator"])): r for _, r in rows.iterrows()
    }  # a few hundred gemeenten x phenomena
    names = rows.drop_duplicates("area_code").set_index("area_code")["area_name"]
    years = trends.loc[trends["status"] == "ok", ["first_year", "last_year"]].dropna()
    span = (
        f" {int(years['first_year'].min())}-{int(years['last_year'].max())}" if len(years) else ""
    )
    head = "".join(f'<th class="n">{html.escape(phenomena[p])}</th>' for p in shown)
    body = []
    for code in sorted(names.index):
        tds = "".join(
            cell(by[(code, f"{p}.{REPORT_INDICATOR}")])
            if (code, f"{p}.{REPORT_INDICATOR}") in by
            else '<td class="n"></td>'
            for p in shown
        )
        body.append(f"<tr><td>{html.escape(str(names[code]))}</td>{tds}</tr>")
    return (
        f"<h2>Trend per gemeente{span}</h2>"
        "<p>Verandering per jaar van het aantal incidenten per 1000 inwoners (Poisson-trend "
        "over alle jaren, met 95%-interval), alleen berekend uit de gepubliceerde, afgeronde "
        "cijfers en alleen waar elk jaar gepubliceerd is (anders <b>x</b>). * betekent "
        "significant na correctie voor het aantal gebieden (false discovery rate); - betekent "
        "te weinig jaren of overal nul. Per gebied staat de trend in trends.csv.</p>"
        f'<details open><summary>Tabel</summary><table id="trends"><tr><th>gemeente</th>{head}'
        f"</tr>{''.join(body)}</table></details>"
    )
