"""The report's plausibility section (issue 15, item 6): published counts beside the reference.

A hand-built case: the manifest's plausibility rows (as the indicator stage writes them, with
zicht's raw counts) and a partner table. The expected table is written out by hand; the raw
counts are chosen so that none of them may appear in the section.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd

from zicht.features.settings import Phenomenon
from zicht.jobs.export.plausibility_report import report_section
from zicht.jobs.export.report import build_report_html

COLUMNS = ["level", "area_code", "area_name", "year", "indicator", "value", "status"]
PHENOMENA = {
    # exactly class 1.2.3: comparable
    "fiets": Phenomenon("fiets", "Fietsdiefstal", classes=("1.2.3",)),
    # incident codes as well as a class: not exactly the class, not comparable
    "drugs": Phenomenon("drugs", "Drugs", incident_codes=("F42",), classes=("3.1.1",)),
    # two classes: compared with the sum of both
    "woning": Phenomenon("woning", "Woninginbraak", classes=("1.1.2", "1.1.1")),
}
LABELS = {k: ph.label for k, ph in PHENOMENA.items()}


def partner_rows() -> pd.DataFrame:
    g = [
        ("GM0001", "Eendorp", 2023, "fiets.incidents", "95", "ok"),
        ("GM0001", "Eendorp", 2024, "fiets.incidents", "120", "ok"),
        ("GM0001", "Eendorp", 2024, "woning.incidents", "50", "ok"),
        ("GM0001", "Eendorp", 2024, "drugs.incidents", "41", "ok"),
        ("GM0002", "Tweestad", 2024, "fiets.incidents", "", "suppressed"),
        ("GM0002", "Tweestad", 2024, "woning.incidents", "0", "ok"),
        ("GM0003", "Driehuis", 2024, "fiets.incidents", "12", "ok"),
    ]
    return pd.DataFrame([("gemeente", *r) for r in g], columns=COLUMNS)


def ref(g: str, year: int, c: str, reference: int, raw: int) -> dict[str, object]:
    # the manifest's row: published_count is the reference's count, zicht_count zicht's raw one
    return {"gemeente_code": g, "year": year, "crime_class": c, "published_count": reference,
            "zicht_count": raw, "difference": raw - reference, "is_flagged": False}  # fmt: skip


FACT = {
    "max_difference_share": 0.1,
    "rows": [
        ref("GM0001", 2023, "1.2.3", 100, 9501),
        ref("GM0001", 2024, "1.2.3", 100, 12003),
        ref("GM0001", 2024, "1.1.1", 30, 3107),
        ref("GM0001", 2024, "1.1.2", 25, 2509),
        ref("GM0001", 2024, "0.0.0", 1000, 99911),  # the total: no published counterpart
        ref("GM0001", 2024, "3.1.1", 40, 4113),  # drugs is not exactly class 3.1.1
        ref("GM0002", 2024, "1.2.3", 7, 6),  # zicht's 6 is suppressed: never shown
        ref("GM0002", 2024, "1.1.1", 5, 5),  # woning needs 1.1.2 too: not comparable
        ref("GM0003", 2024, "1.2.3", 0, 1217),  # published 0, zicht publishes 12: flagged
    ],
}


class Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self._cls = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._cls = dict(attrs).get("class") or ""
            self.rows.append((self._cls, []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(section: str) -> list[tuple[str, list[str]]]:
    parser = Table()
    parser.feed(section)
    return parser.rows


def test_published_counts_beside_the_reference_in_dutch() -> None:
    section = report_section(partner_rows(), FACT, phenomena=PHENOMENA, labels=LABELS)
    rows = table(section)
    assert rows[0][1] == ["gemeente", "code", "jaar", "klasse", "verschijnsel",
                          "zicht (gepubliceerd)", "bron", "verschil", "verschil (%)", ""]  # fmt: skip
    assert rows[1:] == [
        # woning: 50 against 30 + 25 = 55, 9,1 % off: within 10 %
        (
            "",
            [
                "Eendorp",
                "GM0001",
                "2024",
                "1.1.1+1.1.2",
                "Woninginbraak",
                "50",
                "55",
                "-5",
                "9,1",
                "",
            ],
        ),  # fmt: skip
        # fiets 2023: 95 against 100, 5 % off
        (
            "",
            ["Eendorp", "GM0001", "2023", "1.2.3", "Fietsdiefstal", "95", "100", "-5", "5,0", ""],
        ),  # fmt: skip
        # fiets 2024: 120 against 100, 20 % off: flagged
        (
            "flagged",
            [
                "Eendorp",
                "GM0001",
                "2024",
                "1.2.3",
                "Fietsdiefstal",
                "120",
                "100",
                "20",
                "20,0",
                "afwijking",
            ],
        ),  # fmt: skip
        # suppressed: the symbol, no difference, no flag
        ("", ["Tweestad", "GM0002", "2024", "1.2.3", "Fietsdiefstal", "x", "7", "", "", ""]),
        # the reference publishes 0, zicht 12: flagged without a share
        (
            "flagged",
            [
                "Driehuis",
                "GM0003",
                "2024",
                "1.2.3",
                "Fietsdiefstal",
                "12",
                "0",
                "12",
                "",
                "afwijking",
            ],
        ),  # fmt: skip
    ]
    assert "meer dan 10% van het gepubliceerde aantal is gemarkeerd" in section
    # the total, drugs' class and GM0002's lone 1.1.1 have no published counterpart
    assert "<p>3 rij(en) van de bron" in section
    for raw in ("9501", "12003", "3107", "2509", "99911", "4113", "1217"):
        assert raw not in section
    assert (
        "Tweestad</td><td>GM0002</td><td>2024</td><td>1.2.3</td><td>Fietsdiefstal</td><td "
        'class="n">x</td><td class="n">7</td>' in section
    )  # zicht's raw 6 is not there


def test_a_package_gets_its_gemeenten_only() -> None:
    rows = partner_rows()
    mine = rows[rows["area_code"] == "GM0002"]
    section = report_section(mine, FACT, phenomena=PHENOMENA, labels=LABELS, gemeenten=("GM0002",))
    got = table(section)[1:]
    assert [r[1][:2] for r in got] == [["Tweestad", "GM0002"]]
    assert "<p>1 rij(en) van de bron" in section  # its lone 1.1.1


def test_no_reference_no_section_and_the_page_carries_it() -> None:
    assert report_section(partner_rows(), None, phenomena=PHENOMENA, labels=LABELS) == ""
    assert report_section(partner_rows(), {}, phenomena=PHENOMENA, labels=LABELS) == ""
    section = report_section(partner_rows(), FACT, phenomena=PHENOMENA, labels=LABELS)
    page = build_report_html(
        partner_rows(), pd.DataFrame(columns=["buurt_code", "buurt_name", "x", "y"]),
        phenomena=LABELS, report={"audit": {"passed": True}}, plausibility_html=section,
    )  # fmt: skip
    assert section in page and "Vergelijking met gepubliceerde cijfers" in page
