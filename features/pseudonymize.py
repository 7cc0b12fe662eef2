"""Pseudonymisation of a partner's raw extract into contract form: keyed HMAC-SHA256.

Reads and writes nothing: ``zicht.jobs.pseudonymize`` reads the raw CSV, the map file and the key
(from the environment) and hands them here. A *map* says, per contract column, where its value
comes from and how:

- ``hash``: a keyed pseudonym of one raw identifier column (``kind: bsn``) or of several
  (``kind: address`` = postcode + huisnummer [+ huisletter] [+ toevoeging]);
- ``keep``: the raw value as it is (never for an identifier: the contract's pseudonym columns
  must be hashed, and raw columns whose names say identifier or sensitive attribute are refused);
- ``year_of``: the year of a date (birth date -> ``birth_year``);
- ``date_of``: a date written in a usual Dutch or ISO form (``20190401``, ``01-04-2019``);
- ``drop``: raw columns that do not reach the output (names, streets, places).
Every raw column must be named in the map, so a new column in an extract stops the job instead
of slipping through. Names are refused as identifiers: they are neither unique nor secret, and a
hashed name is re-identified by hashing a phone book.

The pseudonym is ``HMAC-SHA256(key, "zicht/v1/<kind>" 0x1f <normalised value>)``, hex, first 32
characters (128 bits). The kind separates domains (a BSN and a KvK number with the same digits
get unrelated pseudonyms) and the normalisation makes the same identifier give the same
pseudonym in every partner's extract ("1234 ab", "012", "a" and "1234AB", "12", "A" are one
address), so tables made by different partners with the same key join. Whoever holds the key can
re-identify a known identifier by hashing it: only a trusted third party holds it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from zicht.features.schemas import DATE, INPUT_TABLES, INTEGER, PSEUDONYM_COLUMNS

HOWS = ("hash", "keep", "year_of", "date_of")
PSEUDONYM_HEX_CHARS = 32  # 128 bits: no collision among a country's identifiers
DOMAIN_PREFIX = "zicht/v1/"
SEP = "\x1f"  # unit separator: never part of a normalised value
MIN_KEY_BYTES = 32
# Raw column words that mean a person's or company's name: never an identifier, never kept.
NAME_WORDS = (
    "naam",
    "name",
    "voornaam",
    "voornamen",
    "achternaam",
    "geslachtsnaam",
    "voorvoegsel",
    "initialen",
    "roepnaam",
    "handelsnaam",
    "firstname",
    "lastname",
    "surname",
)
# Built-in kinds: digits zero-padded to a fixed width (a BSN read as a number loses its leading
# zero in spreadsheets). Any other kind is generic text: trimmed, spaces collapsed, upper case.
DIGIT_KINDS = {"bsn": 9, "kvk": 8, "vestiging": 12, "bag": 16}
ADDRESS_KIND = "address"
DATE_FORMATS = ("yyyy-MM-dd", "yyyyMMdd", "dd-MM-yyyy", "d-M-yyyy", "yyyy/MM/dd", "dd/MM/yyyy")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class MapError(ValueError):
    """The map file, or the extract's columns, do not allow a safe pseudonymisation."""


@dataclass(frozen=True)
class Target:
    """One contract column and where it comes from."""

    column: str
    how: str  # hash | keep | year_of | date_of
    sources: tuple[str, ...]
    kind: str | None = None  # hash only


@dataclass(frozen=True)
class PseudonymMap:
    table: str
    targets: tuple[Target, ...]
    drop: tuple[str, ...] = ()
    sep: str = ","
    encoding: str = "UTF-8"

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for t in self.targets for s in t.sources))


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def is_name_column(column: str) -> bool:
    """True when a raw column's name says it holds a name (whole words, or a name word inside)."""
    words = _words(column)
    if {"buurt", "wijk", "gemeente", "buurtnaam", "wijknaam", "gemeentenaam"} & set(words):
        return False  # public CBS area names, not a person's or company's name
    joined = "".join(words)
    return any(w in words or (len(w) >= 6 and w in joined) for w in NAME_WORDS)


def parse_map(
    mapping: Mapping[str, object],
    *,
    identifier_word: Callable[[str], str | None],
) -> PseudonymMap:
    """Build and check a map from its YAML mapping.

    ``identifier_word(column)`` returns the forbidden word a raw column name carries (the
    contract reader's list: bsn, postcode, geboortedatum, ...), or None; such a column may be
    hashed or coarsened, never kept.
    """
    unknown = set(mapping) - {"table", "columns", "drop", "csv"}
    if unknown:
        raise MapError(f"unknown key(s) {', '.join(sorted(unknown))} in the map")
    table = mapping.get("table")
    if not isinstance(table, str) or table not in INPUT_TABLES:
        raise MapError(f"table {table!r} is not a contract table ({', '.join(INPUT_TABLES)})")
    schema = INPUT_TABLES[table]
    columns = mapping.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise MapError("the map needs `columns:`, a mapping of contract column -> {how: source}")
    targets: list[Target] = []
    for col, spec in columns.items():
        targets.append(_parse_target(table, str(col), spec, identifier_word=identifier_word))
    missing = [
        c.name
        for c in schema.columns
        if not (c.nullable or c.optional) and c.name not in {t.column for t in targets}
    ]
    if missing:
        raise MapError(f"table {table}: required contract column(s) {', '.join(missing)} unmapped")
    drop = mapping.get("drop") or []
    if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop):
        raise MapError("`drop:` must be a list of raw column names")
    csv_opts = mapping.get("csv") or {}
    if not isinstance(csv_opts, Mapping) or set(csv_opts) - {"sep", "encoding"}:
        raise MapError("`csv:` takes only sep and encoding")
    return PseudonymMap(
        table=table,
        targets=tuple(targets),
        drop=tuple(drop),
        sep=str(csv_opts.get("sep", ",")),
        encoding=str(csv_opts.get("encoding", "UTF-8")),
    )


def _parse_target(
    table: str, col: str, spec: object, *, identifier_word: Callable[[str], str | None]
) -> Target:
    schema = INPUT_TABLES[table]
    if col not in schema.names:
        raise MapError(f"{col!r} is not a column of contract table {table}")
    if not isinstance(spec, Mapping):
        raise MapError(f"{col}: expected a mapping like {{hash: bsn, kind: bsn}}")
    hows = [h for h in HOWS if h in spec]
    unknown = set(spec) - set(HOWS) - {"kind"}
    if len(hows) != 1 or unknown:
        raise MapError(f"{col}: give exactly one of {', '.join(HOWS)} (and kind with hash)")
    how = hows[0]
    raw = spec[how]
    sources = tuple(raw) if isinstance(raw, list) else (raw,)
    if not sources or not all(isinstance(s, str) and s for s in sources):
        raise MapError(f"{col}: {how} needs a raw column name (or a list for hash)")
    is_pseudonym = col in PSEUDONYM_COLUMNS.get(table, ())
    for s in sources:
        if is_name_column(s):
            raise MapError(
                f"{col}: raw column {s!r} holds names; names are refused (neither unique nor "
                "secret, a hashed name is re-identified from a phone book): drop it"
            )
    if how == "hash":
        kind = spec.get("kind")
        if not isinstance(kind, str) or not KIND_RE.match(kind):
            raise MapError(
                f"{col}: hash needs `kind:` (bsn, kvk, vestiging, bag, address, or a lower-case "
                "word such as incident); the kind decides which pseudonyms join"
            )
        if kind == ADDRESS_KIND and not 2 <= len(sources) <= 4:
            raise MapError(
                f"{col}: kind address takes [postcode, huisnummer, (huisletter), (toevoeging)]"
            )
        if kind != ADDRESS_KIND and len(sources) != 1:
            raise MapError(f"{col}: kind {kind} takes one raw column")
        if not is_pseudonym:
            raise MapError(f"{col}: not an identifier column of {table}; keep or drop it")
        return Target(col, how, sources, kind)
    if "kind" in spec:
        raise MapError(f"{col}: kind goes with hash only")
    if is_pseudonym:
        raise MapError(f"{col}: an identifier column of {table} must be hashed, never kept")
    if len(sources) != 1:
        raise MapError(f"{col}: {how} takes one raw column")
    if how == "year_of":
        if schema.column(col).kind != INTEGER:
            raise MapError(f"{col}: year_of makes a year, but {col} is not an integer column")
        return Target(col, how, sources)
    if how == "date_of" and schema.column(col).kind != DATE:
        raise MapError(f"{col}: date_of makes a date, but {col} is not a date column")
    word = identifier_word(sources[0])
    if word is not None:
        raise MapError(
            f"{col}: raw column {sources[0]!r} looks like a direct identifier or sensitive "
            f"attribute ({word}); it may be hashed or coarsened, never kept"
        )
    return Target(col, how, sources)


def check_header(pmap: PseudonymMap, header: Sequence[str]) -> None:
    """Every raw column is mapped or dropped, and every source exists (else MapError)."""
    present = set(header)
    absent = [s for s in pmap.sources if s not in present]
    if absent:
        raise MapError(
            f"the map reads column(s) {', '.join(absent)}, which the extract lacks "
            f"(its columns: {', '.join(header)})"
        )
    used = set(pmap.sources) | set(pmap.drop)
    unmapped = [h for h in header if h not in used]
    if unmapped:
        raise MapError(
            f"column(s) {', '.join(unmapped)} of the extract are neither mapped nor dropped; "
            "name each under `columns:` or `drop:` in the map"
        )


def key_fingerprint(key: bytes) -> str:
    """A short tag that tells two runs used the same key, without revealing it."""
    return hmac.digest(key, b"zicht/v1/key-fingerprint", "sha256").hex()[:12]


def pseudonym(key: bytes, kind: str, normalised: str) -> str:
    """The pseudonym of an already normalised identifier (the UDF does the same per row)."""
    msg = f"{DOMAIN_PREFIX}{kind}{SEP}{normalised}".encode()
    return hmac.digest(key, msg, "sha256").hex()[:PSEUDONYM_HEX_CHARS]


def _text(c: Column) -> Column:
    return F.upper(F.regexp_replace(F.trim(c), r"\s+", " "))


def normalised_identifier(sources: Sequence[Column], *, kind: str) -> Column:
    """The domain-tagged message to hash, or null when the identifier is missing or malformed."""
    if kind == ADDRESS_KIND:
        postcode = F.upper(F.regexp_replace(sources[0], r"\s", ""))
        number_raw = F.trim(sources[1])
        # "12A" or "012-2" in the huisnummer column: the digits are the number, the rest a suffix
        number = F.regexp_extract(number_raw, r"^0*([1-9][0-9]{0,5})", 1)
        rest = F.regexp_replace(number_raw, r"^[0-9]+", "")
        suffix = F.upper(
            F.regexp_replace(
                F.concat_ws("", rest, *[F.coalesce(s, F.lit("")) for s in sources[2:]]),
                r"[^0-9A-Za-z]",
                "",
            )
        )
        value = F.concat_ws("|", postcode, number, suffix)
        ok = postcode.rlike(r"^[0-9]{4}[A-Z]{2}$") & (number != "")
    elif kind in DIGIT_KINDS:
        width = DIGIT_KINDS[kind]
        digits = F.regexp_replace(sources[0], r"[\s.\-]", "")
        value = F.lpad(digits, width, "0")
        ok = digits.rlike(rf"^[0-9]{{1,{width}}}$") & ~digits.rlike(r"^0+$")
    else:
        value = _text(sources[0])
        ok = value != ""
    return F.when(ok, F.concat(F.lit(f"{DOMAIN_PREFIX}{kind}{SEP}"), value))


def _hmac_udf(key: bytes) -> Callable[[Column], Column]:
    # The key travels to the executors inside the pickled function, i.e. in the serialised task
    # (which Spark keeps in memory and may spill to its scratch folders like any task binary;
    # spark.io.encryption.enabled encrypts those), never through the Spark configuration, the
    # event log or the executors' environment.
    width = PSEUDONYM_HEX_CHARS

    def _hash(messages: pd.Series) -> pd.Series:
        return pd.Series(
            [
                hmac.digest(key, m.encode(), "sha256").hex()[:width] if isinstance(m, str) else None
                for m in messages
            ],
            dtype=object,
        )

    udf: Callable[[Column], Column] = F.pandas_udf(_hash, T.StringType())  # type: ignore[call-overload]
    return udf


def date_of(c: Column) -> Column:
    """A date written in one of the usual Dutch or ISO forms, null otherwise."""
    text = F.trim(c)
    return F.coalesce(*[F.try_to_date(text, fmt) for fmt in DATE_FORMATS])


def year_of(c: Column) -> Column:
    """The year of a date written in one of the usual Dutch or ISO forms, null otherwise."""
    return F.year(date_of(c)).cast("long")


def with_pseudonyms(raw: DataFrame, *, pmap: PseudonymMap, key: bytes) -> DataFrame:
    """The contract columns of ``pmap.table`` made from the raw text columns; nothing raw left.

    Columns the map does not give come out as typed nulls only when the contract lets them be
    left out; the output holds exactly the mapped contract columns, in contract order.
    """
    if len(key) < MIN_KEY_BYTES:
        raise MapError(f"the key must be at least {MIN_KEY_BYTES} bytes")
    hmac_col = _hmac_udf(key)
    by_column = {t.column: t for t in pmap.targets}
    out: list[Column] = []
    for c in INPUT_TABLES[pmap.table].columns:
        t = by_column.get(c.name)
        if t is None:
            continue
        src = [F.col(f"`{s}`") for s in t.sources]
        if t.how == "hash":
            assert t.kind is not None
            expr = hmac_col(normalised_identifier(src, kind=t.kind))
        elif t.how == "year_of":
            expr = year_of(src[0])
        elif t.how == "date_of":
            expr = date_of(src[0])
        else:
            expr = F.when(F.trim(src[0]) != "", src[0])
        out.append(expr.alias(c.name))
    return raw.select(*out)
