"""Column-name guard: does a column's name say direct identifier or sensitive attribute?

Reads and writes nothing. ``zicht.jobs.config.load_forbidden_columns`` reads the maintained list
``conf/base/forbidden_columns.yaml`` and builds a :class:`NameList` with
:func:`name_list_from_mapping`; a run's ``validation.forbidden_columns`` is added with
:meth:`NameList.with_words`; ``zicht.jobs.io`` asks :func:`forbidden_match` about every column
of an input table before any row is used (CONTRACT section 1: such a column stops the run).

A name is normalised before matching: accents dropped, case folded, split at separators, digits
and lower-to-upper case changes (``BSNnr``, ``bsn_nr2`` and ``bsnNr`` are alike), and each word
also stands for the stems of its Dutch and English plural or inflected forms (``namen`` ->
``naam``, ``straten`` -> ``straat``, ``nationalities`` -> ``nationality``, ``etnische`` ->
``etnisch``). How each style of term then matches is described in the YAML file's header.
Deliberately a small rule set rather than a stemmer library: a reader can predict from the list
what is refused, and a false refusal costs a rename, a false pass a leak.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zicht.features.settings import ConfigError

GROUPS = ("identifiers", "sensitive")
CONFIGURED = "configured"  # the run's validation.forbidden_columns
STYLES = ("terms", "heads", "words", "whole")
# A short term followed by one of these inside a word is still the term: kvknr, bsnnummer.
ID_SUFFIXES = frozenset({"nummer", "number", "nr", "no", "num", "id"})
# A term this long also matches inside a longer word; shorter ones would hit ordinary words.
MIN_INNER = 6
VOWELS = frozenset("aeiouy")

_WORD = re.compile(r"[a-z]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")


@dataclass(frozen=True)
class Term:
    text: str  # as written in the list
    words: tuple[str, ...]  # normalised words
    style: str  # terms | heads | words | whole
    prefix: bool = False  # written with a trailing *: the last word is a prefix

    @property
    def joined(self) -> str:
        return "".join(self.words)


@dataclass(frozen=True)
class Kind:
    key: str  # bsn, name, nationality, ...
    group: str  # identifiers | sensitive | configured
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class NameList:
    kinds: tuple[Kind, ...]
    # a head after one of the qualifiers names a public thing (buurt_name, gemeentenaam)
    public_heads: tuple[str, ...] = ()
    public_qualifiers: tuple[str, ...] = ()

    def with_words(self, words: Iterable[str]) -> NameList:
        """This list plus a run's own words (``validation.forbidden_columns``), as terms."""
        terms = tuple(_term(str(w), "terms", "validation.forbidden_columns") for w in words)
        if not terms:
            return self
        return dataclasses.replace(self, kinds=(*self.kinds, Kind(CONFIGURED, CONFIGURED, terms)))


@dataclass(frozen=True)
class NameMatch:
    column: str
    group: str
    kind: str
    term: str

    def describe(self) -> str:
        what = {
            "identifiers": "a direct identifier",
            "sensitive": "a sensitive attribute",
        }.get(self.group, "a direct identifier or sensitive attribute")
        where = "validation.forbidden_columns" if self.group == CONFIGURED else self.kind
        return f"{what}: {where}, {self.term!r}"


# --------------------------------------------------------------------------- building


def _words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return _WORD.findall(plain.lower())


def _term(text: str, style: str, where: str) -> Term:
    prefix = text.endswith("*")
    words = tuple(_words(text.rstrip("*")))
    if not words:
        raise ConfigError(f"{where}: {text!r} has no letters to match")
    return Term(text, words, style, prefix)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of words")
    return list(value)


def name_list_from_mapping(data: Mapping[str, Any]) -> NameList:
    """Build the list from the YAML mapping of ``conf/base/forbidden_columns.yaml``."""
    unknown = sorted(set(data) - {"public", *GROUPS})
    if unknown:
        raise ConfigError(f"forbidden_columns: unknown key(s) {', '.join(unknown)}")
    public = data.get("public") or {}
    if not isinstance(public, Mapping) or set(public) - {"heads", "qualifiers"}:
        raise ConfigError("forbidden_columns.public: takes heads and qualifiers")
    kinds: list[Kind] = []
    for group in GROUPS:
        body = data.get(group) or {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"forbidden_columns.{group}: expected a mapping of kinds")
        for key, styles in body.items():
            where = f"forbidden_columns.{group}.{key}"
            if not isinstance(styles, Mapping) or not styles or set(styles) - set(STYLES):
                raise ConfigError(f"{where}: give one or more of {', '.join(STYLES)}")
            terms = tuple(
                _term(text, style, where)
                for style in STYLES
                for text in _strings(styles.get(style, []), f"{where}.{style}")
            )
            kinds.append(Kind(str(key), group, terms))
    return NameList(
        tuple(kinds),
        public_heads=tuple(
            w for t in _strings(public.get("heads", []), "public.heads") for w in _words(t)
        ),
        public_qualifiers=tuple(
            w
            for t in _strings(public.get("qualifiers", []), "public.qualifiers")
            for w in _words(t)
        ),
    )


# --------------------------------------------------------------------------- matching


def word_forms(word: str) -> frozenset[str]:
    """The word and the stems its plural or inflected forms may come from.

    Over-generating is harmless: a form only matters when it equals a listed term.
    """
    forms = {word}
    if len(word) > 3:
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")  # nationalities
        if word.endswith("es"):
            forms.add(word[:-2])  # addresses
        if word.endswith("s") and not word.endswith("ss"):
            forms.add(word[:-1])  # surnames, kentekens
        if word.endswith("e"):
            forms.add(word[:-1])  # etnische -> etnisch
        if word.endswith("en"):
            stem = word[:-2]
            forms.add(stem)  # nationaliteiten
            if len(stem) >= 2 and stem[-1] == stem[-2] and stem[-1] not in VOWELS:
                forms.add(stem[:-1])  # adressen -> adres
            if (
                len(stem) >= 3
                and stem[-1] not in VOWELS
                and stem[-2] in VOWELS
                and stem[-3] not in VOWELS
            ):
                forms.add(stem[:-1] + stem[-2] + stem[-1])  # namen -> naam, straten -> straat
    return frozenset(forms)


def _is_word(token: str, word: str, *, prefix: bool) -> bool:
    forms = word_forms(token)
    return any(f.startswith(word) for f in forms) if prefix else word in forms


def _has_run(tokens: Sequence[str], term: Term) -> bool:
    n = len(term.words)
    last = n - 1
    return any(
        all(
            _is_word(tokens[i + k], w, prefix=term.prefix and k == last)
            for k, w in enumerate(term.words)
        )
        for i in range(len(tokens) - n + 1)
    )


def _is_public_name(tokens: Sequence[str], i: int, names: NameList) -> bool:
    """``tokens[i]`` is a head naming a public thing: ``buurt name``, ``gemeentenaam``."""
    quals = set(names.public_qualifiers)
    for form in word_forms(tokens[i]):
        for head in names.public_heads:
            if form == head and i > 0 and word_forms(tokens[i - 1]) & quals:
                return True
            if form.endswith(head) and len(form) > len(head):
                modifier = form[: -len(head)]
                # Dutch compounds may link with an s: bestandsnaam, verschijnselsnaam
                if modifier in quals or (modifier.endswith("s") and modifier[:-1] in quals):
                    return True
    return False


def name_tokens(column: str, names: NameList) -> list[tuple[str, ...]]:
    """The column's normalised words, split with and without case changes, public names
    left out (``BSNnr`` -> ``bsnnr``; ``lastName`` -> ``lastname`` and ``last, name``)."""
    plain = unicodedata.normalize("NFKD", column)
    splits = [_words(plain), _words(_CAMEL.sub(r"\1 \2", plain))]
    out: list[tuple[str, ...]] = []
    for tokens in splits:
        kept = tuple(t for i, t in enumerate(tokens) if not _is_public_name(tokens, i, names))
        if kept not in out:
            out.append(kept)
    return out


def _term_matches(term: Term, tokens: Sequence[str]) -> bool:
    if term.style == "whole":
        return len(tokens) == len(term.words) and _has_run(tokens, term)
    if _has_run(tokens, term):
        return True
    if term.style == "words":
        return False
    joined = term.joined
    if len(joined) >= MIN_INNER:
        return joined in "".join(tokens)
    for token in tokens:
        for form in word_forms(token):
            if form.startswith(joined) and form[len(joined) :] in ID_SUFFIXES:
                return True  # kvknr, bsnnummer, telno
            if term.style == "heads" and form.endswith(joined) and len(form) > len(joined):
                return True  # geslachtsnaam, woonadres, telephone
    return False


def forbidden_match(column: str, names: NameList) -> NameMatch | None:
    """The first listed term the column's name carries, or None when the name may pass."""
    splits = name_tokens(column, names)
    for kind in names.kinds:
        for term in kind.terms:
            if any(_term_matches(term, tokens) for tokens in splits):
                return NameMatch(column, kind.group, kind.key, term.text)
    return None
