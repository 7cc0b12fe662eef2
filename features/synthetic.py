"""Synthetic Netherlands: every input table of the contract, with planted ondermijning patterns.

Reads nothing and writes nothing: :func:`generate` yields ``(table_name, pyarrow.Table)`` pieces
and ``zicht.jobs.synth`` writes them (one Parquet part per piece). Contract tables are named as
in ``zicht.features.schemas.INPUT_TABLES``; planted ground truth comes as ``_truth/<name>`` pieces.
Follows ``../shared/CONTRACT.md`` sections 1 and 2.

Design, so that the national scale (17.9M persons) needs no rewrite:

- The area plan (gemeenten -> wijken -> buurten, square grid cells in RD New) is built up front:
  it is small (14k buurten at national scale) and fixes every buurt's inhabitants, so the areas
  table is final before any person exists.
- Everything else is generated per chunk of whole gemeenten (about ``chunk_persons`` inhabitants)
  with its own random stream (``SeedSequence(seed).spawn``), and all identifiers are a bijective
  64-bit mix of (kind, chunk, counter): unique by construction, opaque, and independent of the
  other chunks. Chunks could therefore run in parallel and the writer never holds more than one.
- Everything a chunk links to (residents, addresses, companies, co-offenders) lives in the chunk;
  suspects and company officers from outside the study area get pseudonyms that exist in no
  persons table, as the contract allows.

The planted patterns (drug hot-spot buurten, criminal groups with brokers, addresses with many
companies, directors of many companies, overbewoning dwellings, doorsluiswoningen) are written as
ground truth so tests and notebooks can check that the toolkit recovers them; so is a decoy for
the anomaly score, each chunk's most populous buurt with nothing planted (big but ordinary).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zicht.features.schemas import (
    BUYER_KINDS,
    INPUT_TABLES,
    LAYERS,
    LEGAL_FORMS,
    ROLES,
    SEXES,
    SIGNAL_SOURCES,
    USE_TYPES,
)

Rng = np.random.Generator

# RD New box of the Netherlands used for the layout (inside the contract's 0<x<300000,
# 289000<y<629000 with a margin).
RD_X_MIN, RD_X_MAX = 15_000.0, 275_000.0
RD_Y_MIN, RD_Y_MAX = 310_000.0, 615_000.0

TRUTH_PREFIX = "_truth/"

# ------------------------------------------------------------------------------------ scales


@dataclass(frozen=True)
class ScaleParams:
    """How big the synthetic country is and how often things happen in it."""

    name: str
    n_gemeenten: int
    wijken_per_gemeente: float  # mean; the largest gemeenten get more
    buurten_per_wijk: float  # mean
    persons: int  # registered inhabitants in total
    years: tuple[int, ...] = (2023, 2024)
    chunk_persons: int = 400_000  # gemeenten are grouped into chunks of about this many persons
    gemeente_slot_m: float = 14_000.0  # side of the square each gemeente is drawn in
    incidents_per_1000: float = 45.0  # per inhabitant-year; 0.8M / 17.9M nationally
    suspect_incident_share: float = 0.30
    outsider_suspect_share: float = 0.15
    hotspot_share: float = 0.06  # share of buurten planted as drug hot spots
    hotspot_drug_per_1000: float = 12.0  # extra drug incidents per inhabitant-year there
    groups_per_100k: float = 8.0
    min_groups_per_chunk: int = 2
    group_size: tuple[int, int] = (5, 25)
    companies_per_1000: float = 110.0
    many_company_addresses_per_100k: float = 4.0
    many_directors_per_100k: float = 4.0
    overbewoning_per_10k_dwellings: float = 5.0
    doorsluis_per_10k_dwellings: float = 6.0
    signals_per_1000_addresses: float = 6.0  # per year
    nonresidential_share: float = 0.10  # of addresses


SCALES: dict[str, ScaleParams] = {
    "tiny": ScaleParams(
        "tiny",
        n_gemeenten=1,
        wijken_per_gemeente=3,
        buurten_per_wijk=4,
        persons=3_000,
        gemeente_slot_m=4_000.0,
        groups_per_100k=60.0,
        group_size=(5, 10),
        many_company_addresses_per_100k=30.0,
        many_directors_per_100k=30.0,
        overbewoning_per_10k_dwellings=20.0,
        doorsluis_per_10k_dwellings=20.0,
        hotspot_share=0.3,  # one nightlife district of three buurten
    ),
    "small": ScaleParams(
        "small",
        n_gemeenten=3,
        wijken_per_gemeente=5,
        buurten_per_wijk=5.3,
        persons=60_000,
        gemeente_slot_m=8_000.0,
        groups_per_100k=12.0,
    ),
    # About a tenth of the country: 34 gemeenten, ~1.4k buurten, 1.79M persons.
    "medium": ScaleParams(
        "medium",
        n_gemeenten=34,
        wijken_per_gemeente=9.2,
        buurten_per_wijk=4.5,
        persons=1_790_000,
        gemeente_slot_m=14_000.0,
    ),
    # The whole country: ~340 gemeenten, ~14k buurten, 17.9M persons, ~8M addresses,
    # ~0.8M incidents a year.
    "nl": ScaleParams(
        "nl",
        n_gemeenten=340,
        wijken_per_gemeente=9.2,
        buurten_per_wijk=4.5,
        persons=17_900_000,
        gemeente_slot_m=14_000.0,
    ),
}

# --------------------------------------------------------------------------- vocabularies

# Police incident codes (CBS/politie 47018NED) with their class and a weight in the ordinary mix.
ORDINARY_CODES: tuple[tuple[str, str, float], ...] = (
    ("A72", "1.2.3", 16.0),  # diefstal fiets
    ("A73", "1.2.3", 2.0),
    ("A20", "1.1.1", 3.5),  # woninginbraak
    ("A30", "1.1.1", 2.5),
    ("A21", "1.1.2", 1.5),
    ("A10", "1.2.1", 7.0),  # uit/vanaf auto
    ("A70", "1.2.2", 1.0),
    ("A40", "1.2.4", 2.5),  # zakkenrollerij
    ("A50", "2.5.2", 7.0),  # winkeldiefstal
    ("A22", "2.5.1", 1.5),
    ("A32", "2.5.1", 1.5),
    ("A90", "1.6.2", 6.0),
    ("A80", "1.6.2", 1.0),
    ("A81", "1.6.2", 0.5),
    ("C40", "2.2.1", 8.0),  # vernieling
    ("C20", "2.2.1", 1.0),
    ("F550", "1.4.5", 7.0),  # mishandeling
    ("F551", "1.4.5", 0.5),
    ("F530", "1.4.4", 5.0),  # bedreiging
    ("F533", "1.4.4", 1.0),
    ("F12", "1.4.3", 0.7),
    ("B70", "1.4.6", 0.6),  # straatroof
    ("B72", "1.4.7", 0.1),
    ("F13", "1.6.1", 0.6),
    ("F15", "2.4.2", 0.8),
    ("F51", "3.7.3", 1.5),
    ("F600", "3.9.3", 6.0),  # oplichting
    ("F614", "3.9.1", 1.5),
    ("F617", "3.9.1", 0.8),
    ("F620", "3.9.1", 0.8),
    ("F90", "3.7.4", 1.5),
    ("D11", "1.3.1", 2.0),
    ("D13", "1.3.1", 1.0),
    ("F522", "1.4.1", 0.5),
    ("F40", "3.1.1", 1.0),  # bezit drugs: class 3.1.1 but not trade (caveat of the fallback)
    ("F41", "3.1.1", 0.8),
    # the phenomena, at their everyday background level
    ("F42", "3.1.1", 0.5),
    ("F43", "3.1.1", 0.5),
    ("F45", "3.1.1", 0.15),
    ("F72", "3.1.3", 0.6),
    ("F70", "3.1.3", 0.2),
    ("A82", "1.6.2", 0.15),
    ("F94", "2.7.2", 0.15),
    ("F561", "1.6.3", 0.03),
    ("F562", "1.6.3", 0.03),
    ("F633", "3.9.1", 0.03),
    ("F631", "3.9.1", 0.03),
)

PHENOMENON_CODES: dict[str, tuple[tuple[str, str, float], ...]] = {
    "drugs": (
        ("F42", "3.1.1", 4.0),
        ("F43", "3.1.1", 3.0),
        ("F44", "3.1.1", 0.5),
        ("F45", "3.1.1", 2.0),
        ("M0111", "2.6.2", 0.5),
    ),
    "geweld": (
        ("F70", "3.1.3", 3.0),
        ("F71", "3.1.3", 1.0),
        ("F72", "3.1.3", 1.0),
        ("F73", "3.1.3", 0.5),
        ("A82", "1.6.2", 2.0),
        ("F14", "1.6.1", 1.0),
        ("F540", "1.4.2", 0.3),
    ),
    "witwassen": (("F94", "2.7.2", 1.0),),
    "mensenhandel": (
        ("F5293", "1.6.3", 2.0),
        ("F561", "1.6.3", 2.0),
        ("F562", "1.6.3", 1.0),
        ("F5294", "3.1.2", 1.0),
    ),
    "vastgoedfraude": (("F633", "3.9.1", 2.0), ("F631", "3.9.1", 1.0)),
}
GROUP_PHENOMENA = (
    "drugs",
    "geweld",
    "drugs",
    "witwassen",
    "mensenhandel",
    "drugs",
    "vastgoedfraude",
)

SIGNAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "drugs": ("hennepkwekerij", "drugslab", "drugsoverlast", "woningsluiting_13b"),
    "mensenhandel": ("mensenhandel_signaal", "overbewoning"),
    "witwassen": ("witwas_signaal", "bibob_negatief"),
    "geweld": ("explosie", "wapenvondst"),
    "vastgoedfraude": ("adresfraude", "woonfraude"),
}
ALL_SIGNAL_CATEGORIES = tuple(c for cats in SIGNAL_CATEGORIES.values() for c in cats)
_SIGNAL_WEIGHTS = {
    "hennepkwekerij": 3.0,
    "drugslab": 0.3,
    "drugsoverlast": 4.0,
    "woningsluiting_13b": 0.5,
    "mensenhandel_signaal": 0.6,
    "overbewoning": 2.0,
    "witwas_signaal": 0.8,
    "bibob_negatief": 0.4,
    "explosie": 0.3,
    "wapenvondst": 0.6,
    "adresfraude": 2.5,
    "woonfraude": 2.0,
}
_SIGNAL_SOURCE_WEIGHTS = {
    "gemeente": 4.0,
    "politie": 3.0,
    "woningcorporatie": 2.0,
    "belastingdienst": 0.7,
    "riec": 0.8,
    "overig": 1.0,
}

# SBI 2008 codes with a weight: cash-intensive sectors (horeca, kappers, autohandel, nagelstudio's,
# belwinkels) among the ordinary mix.
SBI_CODES: tuple[tuple[str, float], ...] = (
    ("5610", 4.0),  # restaurants
    ("5630", 2.0),  # cafés
    ("9602", 3.0),  # kappers en schoonheidsverzorging
    ("96022", 1.0),
    ("4511", 2.0),  # handel in personenauto's
    ("4520", 1.5),  # autoreparatie
    ("4711", 1.0),
    ("4719", 1.0),
    ("4778", 0.8),
    ("4791", 2.5),  # webwinkels
    ("6820", 2.0),  # verhuur van onroerend goed
    ("68204", 1.0),
    ("6810", 0.7),  # handel in onroerend goed
    ("6420", 2.5),  # holdings
    ("7022", 6.0),  # advies
    ("6201", 4.0),
    ("4321", 3.0),
    ("4120", 3.0),
    ("4941", 1.5),
    ("8690", 2.0),
    ("8559", 2.0),
    ("9004", 1.0),
    ("9311", 0.8),
    ("5510", 0.8),
    ("4617", 0.5),
    ("47", 0.3),
    ("01", 1.5),
    ("85", 0.3),
    ("74", 2.0),
    ("9609", 0.8),
)
CASH_INTENSIVE_SBI = ("5610", "5630", "9602", "96022", "4511", "4520", "4719", "9609")
_LEGAL_FORM_WEIGHTS = {
    "eenmanszaak": 55.0,
    "vof": 7.0,
    "cv": 1.0,
    "bv": 25.0,
    "nv": 0.5,
    "stichting": 5.0,
    "vereniging": 3.0,
    "cooperatie": 0.5,
    "overig": 3.0,
}
_NONRES_USE_WEIGHTS = {
    "winkelfunctie": 25.0,
    "kantoorfunctie": 25.0,
    "industriefunctie": 22.0,
    "bijeenkomstfunctie": 8.0,
    "logiesfunctie": 4.0,
    "gezondheidszorgfunctie": 5.0,
    "onderwijsfunctie": 3.0,
    "sportfunctie": 3.0,
    "celfunctie": 0.1,
    "overige gebruiksfunctie": 5.0,
}

_NAME_STEMS = ("Zicht", "Vlier", "Bram", "Eik", "Wil", "Ros", "Hol", "Beek", "Lind", "Mol",
               "Hazel", "Wouw", "Kamp", "Ter", "Olde", "Dussel", "Gaast", "Ijs", "Venn", "Zand")  # fmt: skip
_NAME_TAILS = ("ervoort", "endam", "ingen", "hoven", "dijk", "recht", "wolde", "horst", "stede",
               "loo", "broek", "meer", "veen", "wijk", "zijl", "rade")  # fmt: skip
_NAME_PREFIX = ("", "", "Nieuw-", "Oud-", "Sint-")
_WIJK_NAMES = ("Centrum", "Oost", "West", "Noord", "Zuid", "Oude Stad", "Havenkwartier",
               "Buitenveld", "Bedrijventerrein", "Parkwijk", "Molenwijk", "Buitengebied")  # fmt: skip
_BUURT_FIRST = ("Oude", "Nieuwe", "Hoge", "Lage", "Groene", "Kleine", "Grote", "Wester", "Ooster",
                "Noorder", "Zuider", "Binnen", "Buiten", "Molen", "Kerk", "Bloemen", "Vogel", "Bomen",
                "Schilders", "Dichters")  # fmt: skip
_BUURT_LAST = ("buurt", "hof", "veld", "kamp", "hoek", "park", "weide", "es", "brink", "haven",
               "laan", "dorp", "polder", "akker", "kwartier")  # fmt: skip

# Identifier namespaces: the kind sits in the top byte of the counter before mixing.
_KIND = {
    "address": 1,
    "person": 2,
    "household": 3,
    "incident": 4,
    "outsider": 5,
    "company": 6,
    "signal": 7,
    "transaction": 8,
}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ------------------------------------------------------------------------------ utilities


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64, so distinct counters give distinct ids."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


class _Ids:
    """Opaque 64-bit pseudonyms for one chunk: mix(key ^ (kind << 56 | chunk << 36 | counter))."""

    def __init__(self, seed: int, chunk_no: int) -> None:
        self._key = _mix64(np.array([seed & 0xFFFFFFFFFFFF], dtype=np.uint64))[0]
        self._chunk = np.uint64(chunk_no) << np.uint64(36)
        self._next: dict[str, int] = {}

    def new(self, kind: str, n: int) -> np.ndarray:
        start = self._next.get(kind, 0)
        self._next[kind] = start + n
        return self.of(kind, np.arange(start, start + n, dtype=np.uint64))

    def of(self, kind: str, counter: np.ndarray) -> np.ndarray:
        """The pseudonyms of given counters (outsiders are addressed by index, not drawn)."""
        raw = (np.uint64(_KIND[kind]) << np.uint64(56)) | self._chunk | counter.astype(np.uint64)
        # the key is mixed *after* the namespace so ids differ between seeds as a whole
        return _mix64(_mix64(raw) ^ self._key)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(ids: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """uint64 ids as 16-character lowercase hex strings, built straight into an Arrow buffer."""
    n = len(ids)
    b = ids.astype(">u8").view(np.uint8).reshape(n, 8)
    chars = np.empty((n, 16), dtype=np.uint8)
    chars[:, 0::2] = _HEX[b >> 4]
    chars[:, 1::2] = _HEX[b & 15]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    arr = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))
    if valid is not None and not bool(np.all(valid)):
        arr = pc.if_else(pa.array(valid), arr, pa.scalar(None, pa.string()))
    return arr


def _take(vocab: Sequence[str], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(list(vocab), pa.string()), pa.array(idx.astype(np.int64)))


def _choice(rng: Rng, weights: dict[str, float] | Sequence[float], n: int) -> np.ndarray:
    w = np.array(list(weights.values()) if isinstance(weights, dict) else weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())
    if valid is not None and not bool(np.all(valid)):
        arr = pc.if_else(pa.array(valid), arr, pa.scalar(None, pa.date32()))
    return arr


def _ints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(values.astype(np.int64), pa.int64(), mask=mask)


def _floats(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(values.astype(np.float64), pa.float64(), mask=mask)


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """Position of each row within its run of equal, sorted group values."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def _pick_in_group(
    rng: Rng, starts: np.ndarray, counts: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """A uniformly random member index for each entry of ``group`` (each group non-empty)."""
    return starts[group] + np.floor(rng.random(len(group)) * counts[group]).astype(np.int64)


_ARROW_KIND = {
    "string": pa.string(),
    "integer": pa.int64(),
    "double": pa.float64(),
    "date": pa.date32(),
}


def arrow_schema(table: str, *, with_snapshot_year: bool = False) -> pa.Schema:
    """The Arrow schema the generator writes for a contract table (all declared columns)."""
    cols = [
        pa.field(c.name, _ARROW_KIND[c.kind], nullable=True)
        for c in INPUT_TABLES[table].columns
        if not (table == "persons" and c.name == "snapshot_year" and not with_snapshot_year)
    ]
    return pa.schema(cols)


def _table(
    name: str, columns: dict[str, pa.Array], *, with_snapshot_year: bool = False
) -> pa.Table:
    schema = arrow_schema(name, with_snapshot_year=with_snapshot_year)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


# ------------------------------------------------------------------------------ area plan


@dataclass(frozen=True)
class AreaPlan:
    """Every buurt of the synthetic country, in gemeente and wijk order (arrays of one length)."""

    buurt_code: np.ndarray  # str
    buurt_name: np.ndarray
    wijk_code: np.ndarray
    wijk_name: np.ndarray
    gemeente_code: np.ndarray
    gemeente_name: np.ndarray
    gemeente_idx: np.ndarray  # int
    x0: np.ndarray  # lower-left corner of the square cell, RD metres
    y0: np.ndarray
    side_m: np.ndarray
    land_area_ha: np.ndarray
    inhabitants: np.ndarray  # int, exact: persons generate to these counts
    n_nonresidential: np.ndarray  # int, business addresses in the buurt
    wealth: np.ndarray  # multiplier on WOZ and income
    crime_factor: np.ndarray  # multiplier on the ordinary incident rate
    is_hotspot: np.ndarray  # planted drug hot spot
    chunks: tuple[tuple[int, int], ...] = field(default=())  # buurt index ranges [start, end)

    def __len__(self) -> int:
        return len(self.buurt_code)


def plan_areas(params: ScaleParams, rng: Rng) -> AreaPlan:
    """Gemeenten on a coarse grid over the RD box, each a block of square buurt cells."""
    ng = params.n_gemeenten
    codes = np.sort(rng.choice(np.arange(3, 2000), size=ng, replace=False))
    names_pool = [
        p + s + t for p in _NAME_PREFIX[1:] + ("",) for s in _NAME_STEMS for t in _NAME_TAILS
    ]
    gem_names = [names_pool[i] for i in rng.choice(len(names_pool), size=ng, replace=False)]
    # gemeente sizes: lognormal, the biggest city about 5 % of the country (as Amsterdam)
    pop_w = rng.lognormal(0.0, 0.9, size=ng)
    pop_w = np.minimum(pop_w / pop_w.sum(), max(0.05, 1.0 / ng))
    pop_w /= pop_w.sum()
    n_wijken = np.clip(
        np.round(params.wijken_per_gemeente * ng * pop_w**0.6 / (pop_w**0.6).sum()), 1, 99
    )
    if ng == 1:
        n_wijken[:] = round(params.wijken_per_gemeente)
    n_wijken = n_wijken.astype(np.int64)

    cols = math.ceil(math.sqrt(ng))
    rows = math.ceil(ng / cols)
    slot = min(params.gemeente_slot_m, (RD_X_MAX - RD_X_MIN) / cols, (RD_Y_MAX - RD_Y_MIN) / rows)
    # centre the grid of slots in the box
    ox = (RD_X_MIN + RD_X_MAX) / 2 - cols * slot / 2
    oy = (RD_Y_MIN + RD_Y_MAX) / 2 - rows * slot / 2

    out: dict[str, list[object]] = {
        k: [] for k in ("bc", "bn", "wc", "wn", "gc", "gn", "gi", "x0", "y0", "side")
    }
    for g in range(ng):
        gc = f"{codes[g]:04d}"
        nb_per_wijk = np.clip(rng.poisson(params.buurten_per_wijk - 1, size=n_wijken[g]) + 1, 1, 99)
        nb = int(nb_per_wijk.sum())
        gcols = math.ceil(math.sqrt(nb))
        cell = slot * 0.92 / gcols  # a gap between gemeenten keeps their blocks apart
        sx = ox + (g % cols) * slot + slot * 0.04
        sy = oy + (g // cols) * slot + slot * 0.04
        k = 0
        wijk_labels = rng.permutation(len(_WIJK_NAMES))
        for w in range(n_wijken[g]):
            wc = f"{w:02d}"
            wname = f"Wijk {wc} {_WIJK_NAMES[wijk_labels[w % len(_WIJK_NAMES)]]}"
            for b in range(nb_per_wijk[w]):
                first = _BUURT_FIRST[int(rng.integers(len(_BUURT_FIRST)))]
                last = _BUURT_LAST[int(rng.integers(len(_BUURT_LAST)))]
                out["bc"].append(f"BU{gc}{wc}{b:02d}")
                out["bn"].append(f"{first}{last}")
                out["wc"].append(f"WK{gc}{wc}")
                out["wn"].append(wname)
                out["gc"].append(f"GM{gc}")
                out["gn"].append(gem_names[g])
                out["gi"].append(g)
                out["x0"].append(sx + (k % gcols) * cell)
                out["y0"].append(sy + (k // gcols) * cell)
                out["side"].append(cell)
                k += 1
    n = len(out["bc"])
    gi = np.array(out["gi"], dtype=np.int64)
    side = np.array(out["side"], dtype=float)
    # buurt sizes within a gemeente: lognormal; a few nearly empty (industrial estates, parks)
    bw = rng.lognormal(0.0, 0.6, size=n)
    empty = rng.random(n) < 0.04
    bw[empty] *= 0.01
    gem_total = pop_w * params.persons
    bsum = np.bincount(gi, weights=bw, minlength=ng)
    inh = np.floor(gem_total[gi] * bw / bsum[gi]).astype(np.int64)
    # hand the rounding remainder to the largest buurt so the total is exact
    rem = params.persons - int(inh.sum())
    inh[int(np.argmax(inh))] += rem
    n_nonres = np.maximum(
        1, rng.poisson(inh * params.nonresidential_share / (1 - params.nonresidential_share) / 2.2)
    )
    n_nonres[empty] += rng.integers(20, 80, size=int(empty.sum()))
    wealth = rng.lognormal(0.0, 0.3, size=n)
    crime_factor = rng.lognormal(0.0, 0.45, size=n) * (1 + 0.3 * (n_nonres > np.median(n_nonres)))
    n_hot = max(1, round(params.hotspot_share * n))
    populated = np.flatnonzero(inh >= max(50, np.quantile(inh, 0.25)))
    # hot spots: populated, poorer buurten; at least one per gemeente
    hot = np.zeros(n, dtype=bool)
    for g in range(ng):
        cand = populated[gi[populated] == g]
        if len(cand):
            hot[rng.choice(cand)] = True
    # the rest lie next to those seeds, in the same gemeente: a nightlife district is a cluster
    # of adjacent buurten, which is what hot-spot statistics (Gi*) are meant to find
    extra = n_hot - int(hot.sum())
    cand = populated[~hot[populated]]
    if extra > 0 and len(cand):
        cx = np.array(out["x0"], dtype=float) + side / 2
        cy = np.array(out["y0"], dtype=float) + side / 2
        seeds = np.flatnonzero(hot)
        dist = np.full(len(cand), np.inf)
        for s0 in seeds:
            same = gi[cand] == gi[s0]
            d = np.hypot(cx[cand] - cx[s0], cy[cand] - cy[s0])
            dist = np.where(same, np.minimum(dist, d), dist)
        order = np.lexsort((cand, dist))  # nearest first, ties by position: deterministic
        hot[cand[order[:extra]]] = True
    wealth[hot] *= 0.75

    # chunks: consecutive whole gemeenten of about chunk_persons inhabitants
    gem_pop = np.bincount(gi, weights=inh, minlength=ng)
    gem_first = np.searchsorted(gi, np.arange(ng))
    chunks: list[tuple[int, int]] = []
    acc, start_g = 0.0, 0
    for g in range(ng):
        acc += gem_pop[g]
        if acc >= params.chunk_persons or g == ng - 1:
            end = int(gem_first[g + 1]) if g + 1 < ng else n
            chunks.append((int(gem_first[start_g]), end))
            acc, start_g = 0.0, g + 1
    return AreaPlan(
        buurt_code=np.array(out["bc"]),
        buurt_name=np.array(out["bn"]),
        wijk_code=np.array(out["wc"]),
        wijk_name=np.array(out["wn"]),
        gemeente_code=np.array(out["gc"]),
        gemeente_name=np.array(out["gn"]),
        gemeente_idx=gi,
        x0=np.array(out["x0"], dtype=float),
        y0=np.array(out["y0"], dtype=float),
        side_m=side,
        land_area_ha=np.round(side**2 / 10_000 * rng.uniform(0.8, 1.0, size=n), 2),
        inhabitants=inh,
        n_nonresidential=n_nonres.astype(np.int64),
        wealth=wealth,
        crime_factor=crime_factor,
        is_hotspot=hot,
        chunks=tuple(chunks),
    )


def areas_table(plan: AreaPlan) -> pa.Table:
    x0, y0, s = plan.x0, plan.y0, plan.side_m
    x1, y1 = x0 + s, y0 + s
    wkt = [
        f"POLYGON (({a:.1f} {b:.1f}, {c:.1f} {b:.1f}, {c:.1f} {d:.1f}, {a:.1f} {d:.1f}, {a:.1f} {b:.1f}))"
        for a, b, c, d in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True)
    ]
    cols = {
        "buurt_code": pa.array(plan.buurt_code.tolist(), pa.string()),
        "buurt_name": pa.array(plan.buurt_name.tolist(), pa.string()),
        "wijk_code": pa.array(plan.wijk_code.tolist(), pa.string()),
        "wijk_name": pa.array(plan.wijk_name.tolist(), pa.string()),
        "gemeente_code": pa.array(plan.gemeente_code.tolist(), pa.string()),
        "gemeente_name": pa.array(plan.gemeente_name.tolist(), pa.string()),
        "x": _floats(np.round(x0 + s / 2, 1)),
        "y": _floats(np.round(y0 + s / 2, 1)),
        "land_area_ha": _floats(plan.land_area_ha),
        "geometry_wkt": pa.array(wkt, pa.string()),
        "inhabitants": _ints(plan.inhabitants),
        # the 12+ count is known only once the persons are made; persons is the register here
        "inhabitants_12plus": pa.nulls(len(plan.buurt_code), pa.int64()),
        # v2: one vintage, so none is named (`zicht synth --vintages` writes two)
        "vintage": pa.nulls(len(plan.buurt_code), pa.int64()),
    }
    return _table("areas", cols)


# ------------------------------------------------------------------------------ chunks


@dataclass
class _Chunk:
    """Working state of one chunk (arrays index the chunk's own buurten, 0..nb-1)."""

    rng: Rng
    ids: _Ids
    params: ScaleParams
    plan: AreaPlan
    b0: int  # first buurt index of the chunk in the plan
    nb: int
    ref_day: int
    period_start: int
    period_end: int  # inclusive
    # addresses (sorted by buurt)
    addr_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    addr_buurt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    addr_is_dwelling: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    addr_woz: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # persons
    pers_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    pers_addr: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # -1: none
    pers_buurt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # -1: none
    pers_birth: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pers_male: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    pers_hh: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pers_reg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # days
    pers_sex: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # index of SEXES
    hh_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    hh_buurt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    over_addr: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # overbewoning
    comp_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    comp_form: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # LEGAL_FORMS


def _household_sizes(rng: Rng, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Household sizes per buurt that add up exactly to each buurt's target inhabitants."""
    # CBS: 39 % one person, 33 % two, then families; mean about 2.1
    size_p = np.array([0.39, 0.33, 0.12, 0.11, 0.04, 0.01])
    n_draw = np.ceil(targets / 1.5).astype(np.int64) + 4
    buurt = np.repeat(np.arange(len(targets)), n_draw)
    sizes = rng.choice(np.arange(1, 7), size=len(buurt), p=size_p)
    cum = np.cumsum(sizes)
    start = _group_starts(n_draw)
    before = np.repeat(np.r_[0, cum][start], n_draw)
    cum_in = cum - before
    prev = cum_in - sizes
    t = targets[buurt]
    keep = prev < t
    sizes = np.where(cum_in > t, t - prev, sizes)
    return sizes[keep], buurt[keep]


def _jan1(years: np.ndarray) -> np.ndarray:
    """Day number (days since 1970-01-01) of 1 January of each year."""
    return (
        (np.asarray(years, dtype=np.int64) - 1970)
        .astype("datetime64[Y]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )


def _gen_households_addresses_persons(
    c: _Chunk, truth: dict[str, list[pa.Table]]
) -> Iterator[tuple[str, pa.Table]]:
    rng, p, plan = c.rng, c.params, c.plan
    sl = slice(c.b0, c.b0 + c.nb)
    inh = plan.inhabitants[sl].copy()
    wealth = plan.wealth[sl]
    ref_year = p.years[-1]

    # planted overbewoning: dwellings where many adults register, each as a household of one
    # (labour migrants, rooms let separately); they count towards the buurt's inhabitants
    n_dw_est = max(1, int(inh.sum() / 2.1))
    n_over = max(1, round(n_dw_est * p.overbewoning_per_10k_dwellings / 10_000))
    big = np.flatnonzero(inh >= 60)
    over_buurt = rng.choice(big if len(big) else np.arange(c.nb), size=n_over)
    over_size = rng.integers(8, 16, size=n_over)
    for i, b in enumerate(over_buurt):
        over_size[i] = min(int(over_size[i]), int(inh[b]))
        inh[b] -= over_size[i]
    sizes, hh_b = _household_sizes(rng, inh)
    n_reg = len(sizes)
    ob_sizes = np.ones(int(over_size.sum()), dtype=np.int64)
    ob_dw = np.repeat(np.arange(n_over), over_size)

    # dwellings: one per regular household, some vacant, plus the overbewoning dwellings
    vacant = rng.poisson(np.bincount(hh_b, minlength=c.nb) * 0.05)
    n_dw_b = np.bincount(hh_b, minlength=c.nb) + vacant
    n_dw_b += np.bincount(over_buurt, minlength=c.nb)
    n_nr_b = plan.n_nonresidential[sl]
    n_addr_b = n_dw_b + n_nr_b
    n_addr = int(n_addr_b.sum())
    addr_buurt = np.repeat(np.arange(c.nb), n_addr_b)
    rank = _rank_in_group(addr_buurt)
    is_dw = rank < n_dw_b[addr_buurt]
    addr_start = _group_starts(n_addr_b)
    use = np.zeros(n_addr, dtype=np.int64)
    nr_uses = [USE_TYPES.index(u) for u in _NONRES_USE_WEIGHTS]
    use[~is_dw] = np.array(nr_uses)[_choice(rng, _NONRES_USE_WEIGHTS, int((~is_dw).sum()))]
    area = np.where(
        is_dw,
        rng.lognormal(np.log(95), 0.35, n_addr),
        rng.lognormal(np.log(250), 1.0, n_addr),
    )
    area = np.maximum(12, np.round(area)).astype(np.int64)
    woz = np.round(
        np.where(is_dw, 3_300.0, 1_400.0)
        * area
        * wealth[addr_buurt]
        * rng.lognormal(0, 0.15, n_addr),
        -3,
    ).astype(np.int64)
    woz_valid = rng.random(n_addr) > 0.03
    addr_id = c.ids.new("address", n_addr)
    yield (
        "addresses",
        _table(
            "addresses",
            {
                "address_id": hex_ids(addr_id),
                "buurt_code": _take(plan.buurt_code[sl].tolist(), addr_buurt),
                "use_type": _take(USE_TYPES, use),
                "floor_area_m2": _ints(area),
                "woz_value_eur": _ints(woz, woz_valid),
            },
        ),
    )
    c.addr_id, c.addr_buurt, c.addr_is_dwelling, c.addr_woz = addr_id, addr_buurt, is_dw, woz

    # assign households to dwellings: regular ones fill dwelling slots 0..k-1 of their buurt,
    # overbewoning dwellings take the last slot(s) before the vacant ones
    order = np.argsort(hh_b, kind="stable")
    hh_b = hh_b[order]
    sizes = sizes[order]
    hh_rank = _rank_in_group(hh_b)
    hh_addr = addr_start[hh_b] + hh_rank
    n_reg_b = np.bincount(hh_b, minlength=c.nb)
    over_slot = np.zeros(n_over, dtype=np.int64)
    used = n_reg_b.copy()
    for i, b in enumerate(over_buurt):
        over_slot[i] = addr_start[b] + used[b]
        used[b] += 1
    all_sizes = np.concatenate([sizes, ob_sizes]).astype(np.int64)
    all_addr = np.concatenate([hh_addr, over_slot[ob_dw]])
    all_buurt = addr_buurt[all_addr]
    is_over_hh = np.r_[np.zeros(n_reg, bool), np.ones(len(ob_sizes), bool)]
    n_hh = len(all_sizes)
    hh_id = c.ids.new("household", n_hh)

    # persons
    pers_hh = np.repeat(np.arange(n_hh), all_sizes)
    pos = _rank_in_group(pers_hh)
    hsize = all_sizes[pers_hh]
    n_p = len(pers_hh)
    single_parent = rng.random(n_hh) < 0.18
    head_age = np.where(
        all_sizes[np.arange(n_hh)] >= 3,
        rng.integers(28, 56, n_hh),
        np.where(all_sizes == 2, rng.integers(21, 90, n_hh), rng.integers(18, 96, n_hh)),
    )
    head_age = np.where(is_over_hh, rng.integers(19, 50, n_hh), head_age)
    hage = head_age[pers_hh]
    is_child = (pos >= 2) | (
        (pos == 1) & single_parent[pers_hh] & (hsize >= 2) & ~is_over_hh[pers_hh]
    )
    child_age = np.minimum(np.floor(rng.random(n_p) * np.maximum(1, hage - 19)), 24)
    partner_age = np.clip(hage + rng.integers(-4, 5, n_p), 18, 100)
    age = np.where(pos == 0, hage, np.where(is_child, child_age, partner_age)).astype(np.int64)
    birth = ref_year - age
    male = np.where(pos == 1, rng.random(n_p) < 0.15, rng.random(n_p) < 0.5)
    male = np.where(is_child, rng.random(n_p) < 0.51, male)
    sex = np.where(male, 0, 1)
    sex[rng.random(n_p) < 0.001] = 2
    male = sex == 0
    # registration at the address: the household's move-in, not before the head turned 18,
    # a child not before its birth; about 10 % moved in during the last year
    recent = rng.random(n_hh) < 0.10
    years_back = np.where(recent, rng.random(n_hh), rng.exponential(9.0, n_hh))
    move_in = c.ref_day - np.round(years_back * 365.25).astype(np.int64)
    move_in = np.maximum(move_in, _jan1(ref_year - head_age + 18))
    birth_day = _jan1(birth) + rng.integers(0, 365, n_p)
    reg = np.minimum(np.maximum(move_in[pers_hh], birth_day), c.ref_day)
    pers_addr = all_addr[pers_hh]
    # a few persons registered at no address (briefadres / not traceable)
    no_addr = ((all_sizes == 1) & (rng.random(n_hh) < 0.01))[pers_hh]
    pers_id = c.ids.new("person", n_p)
    c.pers_id, c.pers_birth, c.pers_male, c.pers_hh = pers_id, birth, male, pers_hh
    c.pers_addr = np.where(no_addr, -1, pers_addr)
    c.pers_buurt = np.where(no_addr, -1, all_buurt[pers_hh])
    c.hh_id, c.hh_buurt = hh_id, all_buurt
    c.pers_reg, c.pers_sex, c.over_addr = reg, sex, over_slot

    # overbewoning truth
    ob_adults = np.bincount(ob_dw, weights=ob_sizes, minlength=n_over).astype(np.int64)
    truth.setdefault("overbewoning", []).append(
        pa.table(
            {
                "address_id": hex_ids(addr_id[over_slot]),
                "buurt_code": _take(plan.buurt_code[sl].tolist(), over_buurt),
                "n_registered": pa.array(ob_adults, pa.int64()),
                "n_households": pa.array(np.bincount(ob_dw, minlength=n_over), pa.int64()),
            }
        )
    )

    # household income per year: wealth of the buurt, lognormal spread, a small yearly drift
    base = 33_000 * wealth[all_buurt] * rng.lognormal(0, 0.45, n_hh)
    base[is_over_hh] = rng.uniform(9_000, 16_000, int(is_over_hh.sum()))
    ny = len(p.years)
    inc = np.concatenate([base * (1.03**k) * rng.lognormal(0, 0.05, n_hh) for k in range(ny)])
    yield (
        "household_income",
        _table(
            "household_income",
            {
                "household_id": hex_ids(np.tile(hh_id, ny)),
                "year": _ints(np.repeat(np.array(p.years), n_hh)),
                "disposable_income_eur": _ints(np.round(inc, -2)),
            },
        ),
    )


def _persons_tables(c: _Chunk, snapshot_years: bool) -> Iterator[tuple[str, pa.Table]]:
    n = len(c.pers_id)
    reg, sex = c.pers_reg, c.pers_sex
    has_addr = c.pers_addr >= 0
    cols = {
        "person_id": hex_ids(c.pers_id),
        "birth_year": _ints(c.pers_birth),
        "sex": _take(SEXES, sex),
        "address_id": hex_ids(c.addr_id[np.maximum(c.pers_addr, 0)], has_addr),
        "household_id": hex_ids(c.hh_id[c.pers_hh]),
        "registered_since": _dates(reg),
    }
    if not snapshot_years:
        yield ("persons", _table("persons", cols))
        return
    # one 1 January snapshot per year: who registered at the address later lived elsewhere then
    # (half in the chunk at another dwelling, half outside the study area)
    rng = c.rng
    dwellings = np.flatnonzero(c.addr_is_dwelling)
    for year in c.params.years:
        day = _days(dt.date(year, 1, 1))
        born = c.pers_birth < year
        later = reg > day
        elsewhere = later & (rng.random(n) < 0.5)
        present = born & (~later | elsewhere)
        addr = np.where(elsewhere, rng.choice(dwellings, n), np.maximum(c.pers_addr, 0))
        valid_addr = np.where(elsewhere, True, has_addr)
        reg_y = np.where(elsewhere, day - rng.integers(30, 3_000, n), reg)
        hh = hex_ids(c.hh_id[c.pers_hh], ~elsewhere)
        idx = np.flatnonzero(present)
        t = {
            "person_id": cols["person_id"],
            "snapshot_year": _ints(np.full(n, year)),
            "birth_year": cols["birth_year"],
            "sex": cols["sex"],
            "address_id": hex_ids(c.addr_id[addr], valid_addr),
            "household_id": hh,
            "registered_since": _dates(reg_y),
        }
        yield ("persons", _table("persons", t, with_snapshot_year=True).take(pa.array(idx)))


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row, in sorted row order.

    ``np.unique(axis=0)`` sorts a structured view and is several times slower at this size.
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(rows.T[::-1])
    srt = rows[order]
    new = np.r_[True, (srt[1:] != srt[:-1]).any(axis=1)]
    return order[new]


def _canonical_pairs(a: np.ndarray, b: np.ndarray, layer: np.ndarray, n: int) -> np.ndarray:
    """Undirected, de-duplicated (a, b, layer) rows of person indices < n with a != b, as an
    (m, 3) int64 array; one 1-D key sorts far faster than rows."""
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    nl = len(LAYERS)
    key = np.sort((lo.astype(np.int64) * n + hi) * nl + layer[keep])
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    return np.stack([key // nl // n, key // nl % n, key % nl], axis=1)


def _gen_person_links(c: _Chunk, group_members: list[np.ndarray]) -> pa.Table:
    rng = c.rng
    n = len(c.pers_id)
    age = c.params.years[-1] - c.pers_birth
    parts_a: list[np.ndarray] = []
    parts_b: list[np.ndarray] = []
    parts_l: list[np.ndarray] = []

    def add(a: np.ndarray, b: np.ndarray, layer: str) -> None:
        parts_a.append(a)
        parts_b.append(b)
        parts_l.append(np.full(len(a), LAYERS.index(layer)))

    # huishouden: every member to the household's first member (a star keeps it linear)
    first = _group_starts(np.bincount(c.pers_hh, minlength=len(c.hh_id)))
    add(np.arange(n), first[c.pers_hh], "huishouden")
    # familie: adults with a relative in another household of the chunk (parents, siblings)
    adults = np.flatnonzero(age >= 18)
    if len(adults) > 1:
        k = int(len(adults) * 0.8)
        a = rng.choice(adults, k)
        # relatives tend to live near: pick from a window of nearby person indices
        b = np.clip(a + rng.integers(-400, 400, k), 0, n - 1)
        add(a, b, "familie")
        # buren: one adult per household with an adult of the next dwelling in the buurt
        heads = first[np.unique(c.pers_hh)]
        nxt = np.r_[heads[1:], heads[:1]]
        same = c.pers_buurt[heads] == c.pers_buurt[nxt]
        add(heads[same], nxt[same], "buren")
        # collega: working-age adults, about two colleagues each, anywhere in the chunk
        work = adults[(age[adults] >= 18) & (age[adults] < 67)]
        if len(work) > 1:
            a = rng.choice(work, len(work))
            b = rng.choice(work, len(work))
            add(a, b, "collega")
    # klasgenoot: children 4-17 of the same birth year and buurt
    kids = np.flatnonzero((age >= 4) & (age <= 17) & (c.pers_buurt >= 0))
    if len(kids) > 1:
        key = c.pers_buurt[kids] * 200 + age[kids]
        order = kids[np.argsort(key, kind="stable")]
        ks = np.sort(key)
        same = ks[1:] == ks[:-1]
        add(order[:-1][same], order[1:][same], "klasgenoot")
    # criminal groups: co-offenders are often relatives or colleagues
    for members in group_members:
        res = members[members >= 0]
        if len(res) > 2:
            m = max(1, len(res) // 3)
            add(res[:m], rng.choice(res, m), "familie")
            add(res[m : 2 * m], rng.choice(res, m), "collega")
    a = np.concatenate(parts_a)
    b = np.concatenate(parts_b)
    lay = np.concatenate(parts_l)
    rows = _canonical_pairs(a, b, lay, n)
    return _table(
        "person_links",
        {
            "person_id_a": hex_ids(c.pers_id[rows[:, 0]]),
            "person_id_b": hex_ids(c.pers_id[rows[:, 1]]),
            "layer": _take(LAYERS, rows[:, 2]),
        },
    )


@dataclass
class _Incidents:
    """Incident rows of a chunk before they become a table (indices into the chunk)."""

    buurt: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    code: list[np.ndarray] = field(default_factory=list)  # index into the code vocabulary
    # suspects: (incident row index, person index >= 0 or -(outsider index) - 1)
    sus_inc: list[np.ndarray] = field(default_factory=list)
    sus_person: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(self, buurt: np.ndarray, day: np.ndarray, code: np.ndarray) -> np.ndarray:
        rows = np.arange(self.n, self.n + len(buurt))
        self.buurt.append(buurt)
        self.day.append(day)
        self.code.append(code)
        self.n += len(buurt)
        return rows

    def add_suspects(self, inc: np.ndarray, person: np.ndarray) -> None:
        self.sus_inc.append(inc)
        self.sus_person.append(person)


_CODE_VOCAB: tuple[str, ...] = tuple(
    dict.fromkeys(
        [c for c, _, _ in ORDINARY_CODES] + [c for v in PHENOMENON_CODES.values() for c, _, _ in v]
    )
)
_CODE_CLASS: dict[str, str] = {c: k for c, k, _ in ORDINARY_CODES} | {
    c: k for v in PHENOMENON_CODES.values() for c, k, _ in v
}


def _code_idx(codes: tuple[tuple[str, str, float], ...], rng: Rng, n: int) -> np.ndarray:
    idx = np.array([_CODE_VOCAB.index(c) for c, _, _ in codes])
    return idx[_choice(rng, [w for _, _, w in codes], n)]


def _suspect_weights(c: _Chunk, ref_year: int) -> np.ndarray:
    """Propensity to be registered as suspect: young, male, and a heavy tail of repeat suspects."""
    age = ref_year - c.pers_birth
    w = np.where((age >= 12) & (age <= 75), 1.0, 0.0)
    w *= np.where((age >= 15) & (age <= 30), 3.0, 1.0)
    w *= np.where(c.pers_male, 3.0, 1.0)
    w *= c.rng.pareto(1.5, len(w)) + 0.2
    return w / w.sum()


def _gen_groups(
    c: _Chunk, inc: _Incidents, outsider_next: list[int]
) -> tuple[list[np.ndarray], list[pa.Table]]:
    """Criminal groups: co-offending communities living mostly in one home buurt, with brokers."""
    rng, p, plan = c.rng, c.params, c.plan
    sl = slice(c.b0, c.b0 + c.nb)
    hot = np.flatnonzero(plan.is_hotspot[sl])
    n_pers = len(c.pers_id)
    n_groups = max(p.min_groups_per_chunk, round(n_pers * p.groups_per_100k / 100_000))
    age = p.years[-1] - c.pers_birth
    eligible = (age >= 16) & (age <= 55) & (c.pers_buurt >= 0)
    taken = np.zeros(n_pers, dtype=bool)
    inh = np.bincount(c.pers_buurt[c.pers_buurt >= 0], minlength=c.nb)
    populated = np.flatnonzero(inh >= 60)
    if len(populated) == 0:
        populated = np.arange(c.nb)
    members_all: list[np.ndarray] = []
    rows: list[pa.Table] = []
    group_incidents: list[np.ndarray] = []
    year_days = (c.period_end - c.period_start + 1) / len(p.years)
    for g in range(n_groups):
        phen = GROUP_PHENOMENA[g % len(GROUP_PHENOMENA)]
        # Drug groups live in an ordinary buurt and deal in a nightlife hot spot (where many
        # unrelated drug incidents happen too): the place of residence and the place of the
        # incidents differ, as the indicators must tell apart. Other groups offend near home.
        quiet = np.setdiff1d(populated, hot)
        home = int(rng.choice(quiet if len(quiet) else populated))
        scene = int(rng.choice(hot)) if phen == "drugs" and len(hot) else home
        size = int(rng.integers(p.group_size[0], p.group_size[1] + 1))
        n_home = int(round(size * 0.75))
        n_out = max(0, int(round(size * 0.1)))
        n_else = size - n_home - n_out
        w = eligible & ~taken
        cand_home = np.flatnonzero(w & (c.pers_buurt == home))
        wh = np.where(c.pers_male[cand_home], 4.0, 1.0)
        take_home = (
            rng.choice(cand_home, min(n_home, len(cand_home)), replace=False, p=wh / wh.sum())
            if len(cand_home)
            else np.zeros(0, np.int64)
        )
        taken[take_home] = True
        cand_else = np.flatnonzero(eligible & ~taken & (c.pers_buurt != home))
        n_else += n_home - len(take_home)
        take_else = (
            rng.choice(cand_else, min(n_else, len(cand_else)), replace=False)
            if len(cand_else)
            else np.zeros(0, np.int64)
        )
        taken[take_else] = True
        outs = -(np.arange(outsider_next[0], outsider_next[0] + n_out)) - 1
        outsider_next[0] += n_out
        members = np.concatenate([take_home, take_else, outs]).astype(np.int64)
        members = members[rng.permutation(len(members))]
        members_all.append(members)
        # incidents: a ring over the members guarantees every member co-offends, then more at random
        m = len(members)
        n_inc = max(m, int(round(m * 0.9 * len(p.years))))
        codes = _code_idx(PHENOMENON_CODES[phen], rng, n_inc)
        where = np.where(rng.random(n_inc) < 0.7, scene, rng.integers(0, c.nb, n_inc))
        days = c.period_start + np.floor(rng.random(n_inc) * year_days * len(p.years)).astype(
            np.int64
        )
        ir = inc.add(where, days, codes)
        group_incidents.append(ir)
        ring_a = members
        ring_b = np.roll(members, -1)
        inc.add_suspects(ir[:m], ring_a)
        inc.add_suspects(ir[:m], ring_b)
        extra = ir[m:]
        k = rng.integers(2, 5, len(extra))
        e_inc = np.repeat(extra, k)
        inc.add_suspects(e_inc, members[rng.integers(0, m, len(e_inc))])
        rows.append(
            pa.table(
                {
                    "group_id": pa.array(np.full(m, g), pa.int64()),
                    "phenomenon": pa.array([phen] * m, pa.string()),
                    "home_buurt_code": pa.array(
                        [str(plan.buurt_code[c.b0 + home])] * m, pa.string()
                    ),
                    "person_id": hex_ids(_member_ids(c, members)),
                    "is_registered": pa.array(members >= 0),
                    "lives_in_home_buurt": pa.array(np.isin(members, take_home)),
                    "is_broker": pa.array(np.zeros(m, bool)),
                    "n_group_incidents": pa.array(np.full(m, n_inc), pa.int64()),
                }
            )
        )
    # brokers: a member of group a who co-offends in a few incidents of group b
    n_brokers = max(1, n_groups // 3)
    for _ in range(n_brokers):
        ga, gb = rng.choice(n_groups, 2, replace=False)
        res = members_all[ga][members_all[ga] >= 0]
        pool = res if len(res) else members_all[ga]
        broker = int(rng.choice(pool))
        inc_b = rng.choice(group_incidents[gb], min(3, len(group_incidents[gb])), replace=False)
        inc.add_suspects(inc_b, np.full(len(inc_b), broker))
        bid = _member_ids(c, np.array([broker]))
        rows.append(
            pa.table(
                {
                    "group_id": pa.array([int(gb)], pa.int64()),
                    "phenomenon": rows[gb].column("phenomenon").slice(0, 1),
                    "home_buurt_code": rows[gb].column("home_buurt_code").slice(0, 1),
                    "person_id": hex_ids(bid),
                    "is_registered": pa.array([broker >= 0]),
                    "lives_in_home_buurt": pa.array([False]),
                    "is_broker": pa.array([True]),
                    "n_group_incidents": pa.array([len(inc_b)], pa.int64()),
                }
            )
        )
        # the broker's row in its own group is flagged too
        t = rows[ga]
        flag = pc.or_(t.column("is_broker"), pc.equal(t.column("person_id"), hex_ids(bid)[0]))
        rows[ga] = t.set_column(t.schema.get_field_index("is_broker"), "is_broker", flag)
    return members_all, rows


def _member_ids(c: _Chunk, members: np.ndarray) -> np.ndarray:
    """Person pseudonyms for indices: >= 0 are residents, negative are outsiders of the chunk."""
    out = np.empty(len(members), dtype=np.uint64)
    res = members >= 0
    out[res] = c.pers_id[members[res]]
    if (~res).any():
        out[~res] = c.ids.of("outsider", -members[~res] - 1)
    return out


def _gen_incidents(
    c: _Chunk,
) -> tuple[Iterator[tuple[str, pa.Table]], list[np.ndarray], list[pa.Table]]:
    rng, p, plan = c.rng, c.params, c.plan
    sl = slice(c.b0, c.b0 + c.nb)
    ny = len(p.years)
    span = c.period_end - c.period_start + 1
    inh = np.bincount(c.pers_buurt[c.pers_buurt >= 0], minlength=c.nb)
    n_addr_b = np.bincount(c.addr_buurt, minlength=c.nb)
    inc = _Incidents()
    # ordinary crime: residents and visitors (business addresses draw incidents too)
    lam = (
        (inh + 3.0 * (n_addr_b - np.bincount(c.addr_buurt[c.addr_is_dwelling], minlength=c.nb)))
        * (p.incidents_per_1000 / 1000 * ny)
        * plan.crime_factor[sl]
    )
    n_b = rng.poisson(lam)
    b = np.repeat(np.arange(c.nb), n_b)
    ordinary = inc.add(
        b, c.period_start + rng.integers(0, span, len(b)), _code_idx(ORDINARY_CODES, rng, len(b))
    )
    # planted drug hot spots: extra trade and production, found by looking (haalcriminaliteit)
    hot = plan.is_hotspot[sl]
    n_h = rng.poisson(
        np.where(hot, np.maximum(inh, 100) * p.hotspot_drug_per_1000 / 1000 * ny, 0.0)
    )
    hb = np.repeat(np.arange(c.nb), n_h)
    hot_rows = inc.add(
        hb,
        c.period_start + rng.integers(0, span, len(hb)),
        _code_idx(PHENOMENON_CODES["drugs"], rng, len(hb)),
    )

    # suspects of ordinary and hot-spot incidents
    outsider_next = [0]
    base_rows = np.r_[ordinary, hot_rows]
    has = base_rows[rng.random(len(base_rows)) < p.suspect_incident_share]
    k = rng.choice([1, 2, 3, 4], size=len(has), p=[0.72, 0.19, 0.06, 0.03])
    s_inc = np.repeat(has, k)
    w = _suspect_weights(c, p.years[-1])
    s_person = rng.choice(len(w), size=len(s_inc), p=w)
    # outsiders: suspects registered in no persons table; a pool with repeats
    outside = rng.random(len(s_inc)) < p.outsider_suspect_share
    pool = max(10, int(outside.sum() * 0.6))
    s_person = np.where(outside, -(rng.integers(0, pool, len(s_inc)) + 1), s_person)
    outsider_next[0] = pool
    inc.add_suspects(s_inc, s_person)

    members, group_truth = _gen_groups(c, inc, outsider_next)

    def tables() -> Iterator[tuple[str, pa.Table]]:
        buurt = np.concatenate(inc.buurt)
        day = np.concatenate(inc.day)
        code = np.concatenate(inc.code)
        n = len(buurt)
        perm = rng.permutation(n)  # group incidents must not sit together at the end
        inv = np.empty(n, dtype=np.int64)
        inv[perm] = np.arange(n)
        buurt, day, code = buurt[perm], day[perm], code[perm]
        inc_id = c.ids.new("incident", n)
        # how the location is given: buurt only, buurt and point, address only, point only
        mode = rng.choice(4, size=n, p=[0.55, 0.15, 0.15, 0.15])
        starts = _group_starts(n_addr_b)
        has_addr = n_addr_b[buurt] > 0
        mode = np.where((mode == 2) & ~has_addr, 0, mode)
        addr = _pick_in_group(rng, starts, np.maximum(n_addr_b, 1), buurt)
        side = plan.side_m[sl][buurt]
        x = plan.x0[sl][buurt] + side * rng.uniform(0.02, 0.98, n)
        y = plan.y0[sl][buurt] + side * rng.uniform(0.02, 0.98, n)
        codes = np.array(_CODE_VOCAB, dtype=object)[code]
        classes = np.array([_CODE_CLASS[s] for s in _CODE_VOCAB], dtype=object)[code]
        # open-data style: some rows carry only the class, some a trailing space
        only_class = rng.random(n) < 0.05
        codes = np.where(only_class, classes, codes)
        trailing = rng.random(n) < 0.03
        codes = np.where(trailing, codes + " ", codes)
        has_b = mode <= 1
        has_xy = (mode == 1) | (mode == 3)
        yield (
            "incidents",
            _table(
                "incidents",
                {
                    "incident_id": hex_ids(inc_id),
                    "incident_date": _dates(day),
                    "crime_code": pa.array(codes.tolist(), pa.string()),
                    "buurt_code": pc.if_else(
                        pa.array(has_b),
                        _take(plan.buurt_code[sl].tolist(), buurt),
                        pa.scalar(None, pa.string()),
                    ),
                    "address_id": hex_ids(c.addr_id[addr], mode == 2),
                    "x": _floats(np.round(x, 1), has_xy),
                    "y": _floats(np.round(y, 1), has_xy),
                },
            ),
        )
        si = inv[np.concatenate(inc.sus_inc)]
        sp = _member_ids(c, np.concatenate(inc.sus_person))
        rows = np.stack([si.astype(np.uint64), sp], axis=1)
        rows = rows[_unique_rows(rows)]
        yield (
            "suspects",
            _table(
                "suspects",
                {
                    "incident_id": hex_ids(inc_id[rows[:, 0].astype(np.int64)]),
                    "person_id": hex_ids(rows[:, 1]),
                },
            ),
        )

    return tables(), members, group_truth


def _gen_companies(c: _Chunk, truth: dict[str, list[pa.Table]]) -> Iterator[tuple[str, pa.Table]]:
    rng, p = c.rng, c.params
    n_p = len(c.pers_id)
    n = max(5, round(n_p * p.companies_per_1000 / 1000))
    form = _choice(rng, _LEGAL_FORM_WEIGHTS, n)
    sbi = _choice(rng, [w for _, w in SBI_CODES], n)
    # establishment: business address, else the owner's home (zzp), a few unknown
    nonres = np.flatnonzero(~c.addr_is_dwelling)
    dwell = np.flatnonzero(c.addr_is_dwelling)
    at_home = rng.random(n) < np.where(form == list(LEGAL_FORMS).index("eenmanszaak"), 0.6, 0.15)
    addr = np.where(
        at_home & (len(dwell) > 0),
        rng.choice(dwell if len(dwell) else nonres, n),
        rng.choice(nonres, n),
    )
    addr_valid = rng.random(n) > 0.02
    reg_day = c.ref_day - np.round(rng.exponential(9.0, n) * 365.25).astype(np.int64)
    reg_day = np.maximum(reg_day, _days(dt.date(1950, 1, 1)))
    dereg = rng.random(n) < 0.2
    dereg_day = np.minimum(
        reg_day + np.round(rng.exponential(4.0, n) * 365.25).astype(np.int64) + 30, c.ref_day
    )

    # planted: addresses with many short-lived companies (brievenbusfirma's, churn)
    n_many = max(1, round(n_p * p.many_company_addresses_per_100k / 100_000))
    many_addr = (
        rng.choice(nonres, n_many, replace=False)
        if len(nonres) >= n_many
        else rng.choice(c.addr_id.size, n_many)
    )
    n_at = rng.integers(15, 41, n_many)
    m = int(n_at.sum())
    m_addr = np.repeat(many_addr, n_at)
    m_form = np.full(m, list(LEGAL_FORMS).index("bv"))
    m_form[rng.random(m) < 0.2] = list(LEGAL_FORMS).index("eenmanszaak")
    cash = [
        i
        for i, (s, _) in enumerate(SBI_CODES)
        if s in CASH_INTENSIVE_SBI or s in ("6420", "6820", "7022")
    ]
    m_sbi = rng.choice(cash, m)
    m_reg = c.ref_day - rng.integers(30, 6 * 365, m)
    m_dereg = rng.random(m) < 0.5
    m_dereg_day = np.minimum(m_reg + rng.integers(60, 700, m), c.ref_day)

    form = np.r_[form, m_form]
    sbi = np.r_[sbi, m_sbi]
    addr = np.r_[addr, m_addr]
    addr_valid = np.r_[addr_valid, np.ones(m, bool)]
    reg_day = np.r_[reg_day, m_reg]
    dereg = np.r_[dereg, m_dereg]
    dereg_day = np.r_[dereg_day, m_dereg_day]
    planted = np.r_[np.zeros(n, bool), np.ones(m, bool)]
    nc = n + m
    comp_id = c.ids.new("company", nc)
    yield (
        "companies",
        _table(
            "companies",
            {
                "company_id": hex_ids(comp_id),
                "sbi_code": _take([s for s, _ in SBI_CODES], sbi),
                "legal_form": _take(LEGAL_FORMS, form),
                "address_id": hex_ids(c.addr_id[addr], addr_valid),
                "registered_date": _dates(reg_day),
                "deregistered_date": _dates(dereg_day, dereg),
            },
        ),
    )
    truth.setdefault("many_company_addresses", []).append(
        pa.table(
            {
                "address_id": hex_ids(c.addr_id[many_addr]),
                "buurt_code": _take(
                    c.plan.buurt_code[c.b0 : c.b0 + c.nb].tolist(), c.addr_buurt[many_addr]
                ),
                "n_companies_planted": pa.array(n_at, pa.int64()),
            }
        )
    )

    # roles by legal form: eenmanszaak one owner; vof/cv two partners; bv/nv director(s) and a
    # shareholder; associations and foundations one to three board members
    lf = np.array(LEGAL_FORMS)[form]
    n_roles = np.select(
        [
            lf == "eenmanszaak",
            np.isin(lf, ["vof", "cv"]),
            np.isin(lf, ["bv", "nv"]),
            lf == "overig",
        ],
        [1, 2, 2, 1],
        default=rng.integers(1, 4, nc),
    )
    r_comp = np.repeat(np.arange(nc), n_roles)
    r_rank = _rank_in_group(r_comp)
    r_lf = lf[r_comp]
    role = np.select(
        [
            r_lf == "eenmanszaak",
            np.isin(r_lf, ["vof", "cv"]),
            np.isin(r_lf, ["bv", "nv"]) & (r_rank == 0),
            np.isin(r_lf, ["bv", "nv"]),
            r_lf == "overig",
        ],
        ["eigenaar", "vennoot", "bestuurder", "aandeelhouder", "gevolmachtigde"],
        default="bestuurder",
    )
    age = p.years[-1] - c.pers_birth
    adults = np.flatnonzero((age >= 20) & (age <= 80))
    r_person = rng.choice(adults, len(r_comp)).astype(np.int64)
    # officers living outside the study area (or abroad): pseudonyms in no persons table
    outside = rng.random(len(r_comp)) < 0.05
    r_person = np.where(
        outside,
        -(rng.integers(10_000_000, 10_000_000 + max(10, len(r_comp) // 3), len(r_comp))) - 1,
        r_person,
    )
    # planted: a few persons direct many companies, most of those at the many-company addresses
    n_dir = max(1, round(n_p * p.many_directors_per_100k / 100_000))
    directors = rng.choice(adults, n_dir, replace=False)
    planted_rows = np.flatnonzero(planted[r_comp] & (role == "bestuurder"))
    other_bv = np.flatnonzero(~planted[r_comp] & (role == "bestuurder"))
    dir_of = rng.integers(0, n_dir, len(planted_rows))
    r_person[planted_rows] = directors[dir_of]
    extra = (
        rng.choice(other_bv, min(len(other_bv), 3 * n_dir), replace=False)
        if len(other_bv)
        else np.zeros(0, np.int64)
    )
    r_person[extra] = directors[rng.integers(0, n_dir, len(extra))]
    start = reg_day[r_comp] + np.where(r_rank > 0, rng.integers(0, 400, len(r_comp)), 0)
    start = np.minimum(start, c.ref_day)
    ended_early = rng.random(len(r_comp)) < 0.08
    end_valid = dereg[r_comp] | ended_early
    end = np.where(
        dereg[r_comp],
        np.maximum(dereg_day[r_comp], start),
        start + rng.integers(0, 3000, len(r_comp)),
    )
    end = np.minimum(end, c.ref_day)
    end = np.maximum(end, start)
    pid = _member_ids(c, r_person)
    role_idx = np.array([ROLES.index(r) for r in role])
    key = np.stack(
        [r_comp.astype(np.uint64), pid, role_idx.astype(np.uint64), start.astype(np.uint64)], axis=1
    )
    first = _unique_rows(key)
    first = np.sort(first)
    yield (
        "company_roles",
        _table(
            "company_roles",
            {
                "company_id": hex_ids(comp_id[r_comp[first]]),
                "person_id": hex_ids(pid[first]),
                "role": _take(ROLES, role_idx[first]),
                "start_date": _dates(start[first]),
                "end_date": _dates(end[first], end_valid[first]),
            },
        ),
    )
    sorted_dirs = np.sort(directors)
    pairs = np.stack([r_comp[first], r_person[first]], axis=1)
    pairs = pairs[_unique_rows(pairs)]
    pairs = pairs[np.isin(pairs[:, 1], sorted_dirs)]
    n_comp = np.bincount(np.searchsorted(sorted_dirs, pairs[:, 1]), minlength=n_dir)
    truth.setdefault("many_company_directors", []).append(
        pa.table(
            {
                "person_id": hex_ids(c.pers_id[sorted_dirs]),
                "n_companies": pa.array(n_comp, pa.int64()),
            }
        )
    )
    c.comp_id, c.comp_form = comp_id, form


def _gen_signals(c: _Chunk, overbewoning_addr: np.ndarray) -> pa.Table:
    rng, p, plan = c.rng, c.params, c.plan
    sl = slice(c.b0, c.b0 + c.nb)
    ny = len(p.years)
    span = c.period_end - c.period_start + 1
    n_a = len(c.addr_id)
    n = rng.poisson(n_a * p.signals_per_1000_addresses / 1000 * ny)
    addr = rng.integers(0, n_a, n)
    cat = _choice(rng, [_SIGNAL_WEIGHTS[k] for k in ALL_SIGNAL_CATEGORIES], n)
    # hot spots: hennepkwekerij and drugsoverlast at their dwellings
    hot = plan.is_hotspot[sl]
    hot_dw = np.flatnonzero(c.addr_is_dwelling & hot[c.addr_buurt])
    nh = rng.poisson(len(hot_dw) * 0.03 * ny) if len(hot_dw) else 0
    h_addr = rng.choice(hot_dw, nh) if nh else np.zeros(0, np.int64)
    h_cat = np.where(
        rng.random(nh) < 0.6,
        ALL_SIGNAL_CATEGORIES.index("hennepkwekerij"),
        ALL_SIGNAL_CATEGORIES.index("drugsoverlast"),
    )
    # overbewoning dwellings: most get an overbewoning signal
    ob = overbewoning_addr[rng.random(len(overbewoning_addr)) < 0.7]
    o_cat = np.full(len(ob), ALL_SIGNAL_CATEGORIES.index("overbewoning"))
    addr = np.r_[addr, h_addr, ob].astype(np.int64)
    cat = np.r_[cat, h_cat, o_cat].astype(np.int64)
    m = len(addr)
    day = c.period_start + rng.integers(0, span, m)
    src = _choice(rng, _SIGNAL_SOURCE_WEIGHTS, m)
    mode = rng.choice(3, size=m, p=[0.5, 0.35, 0.15])  # both, address only, buurt only
    return _table(
        "signals",
        {
            "signal_id": hex_ids(c.ids.new("signal", m)),
            "signal_date": _dates(day),
            "category": _take(ALL_SIGNAL_CATEGORIES, cat),
            "source": _take(SIGNAL_SOURCES, src),
            "address_id": hex_ids(c.addr_id[addr], mode <= 1),
            "buurt_code": pc.if_else(
                pa.array((mode == 0) | (mode == 2)),
                _take(plan.buurt_code[sl].tolist(), c.addr_buurt[addr]),
                pa.scalar(None, pa.string()),
            ),
        },
    )


def _gen_transactions(c: _Chunk, truth: dict[str, list[pa.Table]]) -> pa.Table:
    rng, p = c.rng, c.params
    first_day = _days(dt.date(p.years[-1] - 19, 1, 1))
    span = c.ref_day - first_day + 1
    dw = np.flatnonzero(c.addr_is_dwelling)
    # ordinary sales: about 2.5 % of dwellings a year (0.5 per dwelling in twenty years), business
    # units more rarely; at most four, so five or more sales is the planted pattern only
    n_a = len(c.addr_id)
    n_sales = np.minimum(
        np.where(c.addr_is_dwelling, rng.poisson(0.55, n_a), rng.poisson(0.3, n_a)), 4
    )
    addr = np.repeat(np.arange(len(c.addr_id)), n_sales)
    day = first_day + rng.integers(0, span, len(addr))
    # planted doorsluiswoningen: 5 to 9 sales in twenty years, the last ones in quick succession
    n_ds = max(2, round(len(dw) * p.doorsluis_per_10k_dwellings / 10_000))
    ds = rng.choice(dw, min(n_ds, len(dw)), replace=False)
    k = rng.integers(5, 10, len(ds))
    d_addr = np.repeat(ds, k)
    d_rank = _rank_in_group(d_addr)
    burst_start = c.ref_day - rng.integers(400, 3000, len(ds))
    gap = (c.ref_day - burst_start) // k
    d_day = (
        np.repeat(burst_start, k) + d_rank * np.repeat(gap, k) + rng.integers(0, 30, len(d_addr))
    )
    # the doorsluis dwellings' ordinary sales are dropped so their history is the planted one
    keep = ~np.isin(addr, ds)
    addr = np.r_[addr[keep], d_addr]
    day = np.r_[day[keep], d_day]
    planted = np.r_[np.zeros(int(keep.sum()), bool), np.ones(len(d_addr), bool)]
    rank = np.r_[np.zeros(int(keep.sum()), np.int64), d_rank]
    n = len(addr)
    year_frac = (day - first_day) / 365.25
    index = 0.55 * 1.03**year_frac  # house prices roughly doubled over twenty years
    woz = np.where(c.addr_woz[addr] > 0, c.addr_woz[addr], 250_000)
    price = (
        woz
        * index
        / index.max()
        * rng.lognormal(0, 0.1, n)
        * np.where(planted, 1.0 + 0.12 * rank, 1.0)
    )
    price = np.maximum(1_000, np.round(price, -3)).astype(np.int64)
    kind = np.where(
        planted,
        rng.choice(4, n, p=[0.35, 0.55, 0.05, 0.05]),
        rng.choice(4, n, p=[0.85, 0.08, 0.05, 0.02]),
    )
    age = p.years[-1] - c.pers_birth
    adults = np.flatnonzero(age >= 20)
    comp_id = c.comp_id
    stichting = np.flatnonzero(c.comp_form == LEGAL_FORMS.index("stichting"))
    buyer = np.where(
        kind == 0,
        c.pers_id[rng.choice(adults, n)],
        np.where(
            kind == 2,
            comp_id[rng.choice(stichting if len(stichting) else np.arange(len(comp_id)), n)],
            comp_id[rng.integers(0, len(comp_id), n)],
        ),
    )
    truth.setdefault("doorsluiswoningen", []).append(
        pa.table(
            {
                "address_id": hex_ids(c.addr_id[ds]),
                "buurt_code": _take(
                    c.plan.buurt_code[c.b0 : c.b0 + c.nb].tolist(), c.addr_buurt[ds]
                ),
                "n_sales_planted": pa.array(k, pa.int64()),
            }
        )
    )
    order = np.lexsort((day, addr))
    return _table(
        "property_transactions",
        {
            "transaction_id": hex_ids(c.ids.new("transaction", n)),
            "address_id": hex_ids(c.addr_id[addr[order]]),
            "transaction_date": _dates(day[order]),
            "price_eur": _ints(price[order]),
            "buyer_id": hex_ids(buyer[order], kind[order] != 3),
            "buyer_kind": _take(BUYER_KINDS, kind[order]),
        },
    )


def _gen_chunk(
    params: ScaleParams,
    plan: AreaPlan,
    chunk_no: int,
    seq: np.random.SeedSequence,
    seed: int,
    snapshot_years: bool,
) -> Iterator[tuple[str, pa.Table]]:
    b0, b1 = plan.chunks[chunk_no]
    c = _Chunk(
        rng=np.random.default_rng(seq),
        ids=_Ids(seed, chunk_no),
        params=params,
        plan=plan,
        b0=b0,
        nb=b1 - b0,
        ref_day=_days(dt.date(params.years[-1], 12, 31)),
        period_start=_days(dt.date(params.years[0], 1, 1)),
        period_end=_days(dt.date(params.years[-1], 12, 31)),
    )
    truth: dict[str, list[pa.Table]] = {}
    yield from _gen_households_addresses_persons(c, truth)
    yield from _persons_tables(c, snapshot_years)
    inc_tables, members, group_truth = _gen_incidents(c)
    yield from inc_tables
    yield "person_links", _gen_person_links(c, members)
    yield from _gen_companies(c, truth)
    yield "signals", _gen_signals(c, c.over_addr)
    yield "property_transactions", _gen_transactions(c, truth)
    gt = pa.concat_tables(group_truth)
    gt = gt.set_column(0, "group_id", pc.add(gt.column("group_id"), chunk_no * 10_000))
    yield TRUTH_PREFIX + "criminal_groups", gt
    for name, parts in truth.items():
        yield TRUTH_PREFIX + name, pa.concat_tables(parts)
    yield TRUTH_PREFIX + "big_ordinary_buurten", _big_ordinary_buurt(c, truth, gt)


def _big_ordinary_buurt(c: _Chunk, truth: dict[str, list[pa.Table]], groups: pa.Table) -> pa.Table:
    """Decoy for the anomaly score: the chunk's most populous buurt where nothing is planted
    (its counts are the chunk's highest, its rates ordinary). Read from the plan and the truth,
    with no random draw, so every other table and pattern stays as it was."""
    codes = c.plan.buurt_code[c.b0 : c.b0 + c.nb]
    planted = {
        str(b)
        for parts in truth.values()
        for t in parts
        if "buurt_code" in t.column_names
        for b in t.column("buurt_code")
    }
    planted |= {str(b) for b in groups.column("home_buurt_code")}
    planted |= set(codes[c.plan.is_hotspot[c.b0 : c.b0 + c.nb]].tolist())
    inh = np.where(np.isin(codes, sorted(planted)), -1, c.plan.inhabitants[c.b0 : c.b0 + c.nb])
    b = int(np.argmax(inh))
    return pa.table(
        {
            "buurt_code": pa.array([str(codes[b])], pa.string()),
            "inhabitants": pa.array([int(inh[b])], pa.int64()),
        }
    )


# ------------------------------------------------------------------------------ entry points


def reference_date(params: ScaleParams) -> dt.date:
    return dt.date(params.years[-1], 12, 31)


def generate(
    params: ScaleParams, seed: int, *, snapshot_years: bool = False
) -> Iterator[tuple[str, pa.Table]]:
    """Yield ``(table_name, table)`` pieces: ``areas`` and the planted hot spots first, then every
    table chunk by chunk. Same params and seed give the same pieces in the same order.

    ``snapshot_years`` writes ``persons`` once per year of the period with ``snapshot_year``
    (the 1 January register snapshot) instead of one snapshot.
    """
    rng = np.random.default_rng(seed)
    plan = plan_areas(params, rng)
    yield "areas", areas_table(plan)
    hot = np.flatnonzero(plan.is_hotspot)
    yield (
        TRUTH_PREFIX + "hotspot_buurten",
        pa.table(
            {
                "buurt_code": pa.array(plan.buurt_code[hot].tolist(), pa.string()),
                "gemeente_code": pa.array(plan.gemeente_code[hot].tolist(), pa.string()),
                "inhabitants": pa.array(plan.inhabitants[hot], pa.int64()),
            }
        ),
    )
    seqs = np.random.SeedSequence(seed).spawn(len(plan.chunks))
    for chunk_no, seq in enumerate(seqs):
        chunk = _gen_chunk(params, plan, chunk_no, seq, seed, snapshot_years)
        # issue 19's tables (FIU-NL, ownership, holiday parks) from the chunk's own pieces
        from zicht.features.synthetic_themes import with_themes

        yield from with_themes(chunk, params=params, seed=seed, chunk_no=chunk_no)


def truth_summary(
    params: ScaleParams, seed: int, truth: dict[str, pa.Table], rows: dict[str, int]
) -> dict[str, object]:
    """The ``truth.json`` summary: scale, seed, period and the planted patterns."""
    groups = truth.get(TRUTH_PREFIX + "criminal_groups")
    summary: dict[str, object] = {
        "generator": "zicht.features.synthetic",
        "scale": params.name,
        "seed": seed,
        "period_years": list(params.years),
        "reference_date": reference_date(params).isoformat(),
        "rows": rows,
        "hotspot_buurten": sorted(
            truth[TRUTH_PREFIX + "hotspot_buurten"].column("buurt_code").to_pylist()
        ),
    }
    if groups is not None:
        members = groups.filter(pc.invert(groups.column("is_broker")))
        brokers = groups.filter(groups.column("is_broker"))
        gids = sorted(set(groups.column("group_id").to_pylist()))
        summary["criminal_groups"] = {
            "n_groups": len(gids),
            "home_buurten": sorted(set(groups.column("home_buurt_code").to_pylist())),
            "n_members": members.num_rows,
            "brokers": sorted(set(brokers.column("person_id").to_pylist())),
        }
    for name in (
        "many_company_addresses",
        "many_company_directors",
        "overbewoning",
        "doorsluiswoningen",
    ):
        t = truth.get(TRUTH_PREFIX + name)
        summary[name] = 0 if t is None else t.num_rows
    return summary
