"""The column-name guard (issue 20, finding 3): identifiers and sensitive attributes refused.

Pure Python against the committed list ``conf/base/forbidden_columns.yaml``. The refused names
are the ones the issue found accepted (and their usual spellings); the ones that must pass are
every contract column and ordinary extras. Expected groups are written out per name.
"""

from __future__ import annotations

import pytest

from zicht.features.names import forbidden_match, name_list_from_mapping, word_forms
from zicht.features.schemas import INPUT_TABLES
from zicht.features.settings import ConfigError
from zicht.jobs.config import load_forbidden_columns, load_settings
from zicht.jobs.io import forbidden_match as io_forbidden_match

ID, SENSITIVE = "identifiers", "sensitive"

REFUSED = [
    # found accepted end to end, or let through by the old matcher (issue 20)
    ("burgerservicenummer", ID),
    ("BSNnr", ID),
    ("nationalities", SENSITIVE),
    ("bsnnummer", ID),
    ("sofinummer", ID),
    ("ethnic", SENSITIVE),
    ("etnische_groep", SENSITIVE),
    ("surname", ID),
    ("lastname", ID),
    ("e_mail", ID),
    ("huisnr", ID),
    ("kvknr", ID),
    ("dob", ID),
    ("religious", SENSITIVE),
    # spellings of the same: case, separators, digits, camel case, plurals
    ("BSN_2", ID),
    ("bsn-nr", ID),
    ("KvKNummer", ID),
    ("lastName", ID),
    ("DateOfBirth", ID),
    ("geboorte_datum", ID),
    ("voornamen", ID),
    ("Achternaam", ID),
    ("person_name", ID),
    ("geslachtsnaam", ID),
    ("emailAddress", ID),
    ("telefoonnummer", ID),
    ("Straatnamen", ID),
    ("straten", ID),
    ("woonadres", ID),
    ("adressen", ID),
    ("address", ID),
    ("ZipCode", ID),
    ("postcode6", ID),
    ("kentekens", ID),
    ("iban", ID),
    ("politie_persoonsnummer", ID),
    ("Nationaliteiten", SENSITIVE),
    ("nationaliteit_2", SENSITIVE),
    ("geboorteland", SENSITIVE),
    ("country_of_birth", SENSITIVE),
    ("etniciteit", SENSITIVE),
    ("Ethnicities", SENSITIVE),
    ("herkomst", SENSITIVE),
    ("niet_westerse_migratieachtergrond", SENSITIVE),
    ("origin", SENSITIVE),
    ("religie", SENSITIVE),
    ("religieuze_overtuiging", SENSITIVE),
]

# The words zicht.yaml listed before the maintained list existed: none may pass now.
OLD_DEFAULTS = [
    "bsn", "naam", "name", "voornaam", "achternaam", "geboortedatum", "birth_date",
    "date_of_birth", "postcode", "huisnummer", "straat", "street", "adres", "kvk_nummer", "kvk",
    "kenteken", "license_plate", "nationaliteit", "nationality", "etniciteit", "ethnicity",
    "herkomst", "origin", "migratieachtergrond", "geboorteland", "country_of_birth", "religie",
    "religion", "telefoon", "phone", "email", "iban",
]  # fmt: skip

ORDINARY = [
    "category",
    "notes_count",
    "buurt_name",
    "buurtnaam",
    "wijk_naam",
    "gemeentenaam",
    "category_name",
    "birth_year",
    "geboortejaar",
    "geslacht",
    "original_value",
    "huishoudnummer",
    "datum_aanvang_adreshouding",  # raw BRP column a pseudonymize map keeps as a date
    "hotel_count",
    "inhabitants_12plus",
    "vintage",
    "code_from",
    "owner_kind",
    "subject_id",
    "amount_eur",
]


@pytest.mark.parametrize(("column", "group"), REFUSED)
def test_identifier_and_sensitive_names_are_refused(column: str, group: str) -> None:
    found = forbidden_match(column, load_forbidden_columns())
    assert found is not None, column
    assert found.group == group


@pytest.mark.parametrize("column", OLD_DEFAULTS)
def test_the_maintained_list_covers_the_old_defaults(column: str) -> None:
    assert forbidden_match(column, load_forbidden_columns()) is not None


def test_contract_columns_pass() -> None:
    names = load_forbidden_columns()
    columns = sorted({c.name for t in INPUT_TABLES.values() for c in t.columns})
    assert "buurt_name" in columns and "registered_since" in columns
    refused = {c: forbidden_match(c, names) for c in columns}
    assert {c: m for c, m in refused.items() if m is not None} == {}


@pytest.mark.parametrize("column", ORDINARY)
def test_ordinary_names_pass(column: str) -> None:
    assert forbidden_match(column, load_forbidden_columns()) is None


def test_configured_words_are_added() -> None:
    names = load_forbidden_columns().with_words(["dossier"])
    assert forbidden_match("dossier_nr", load_forbidden_columns()) is None
    found = forbidden_match("Dossiers", names)
    assert found is not None and found.group == "configured"
    assert "validation.forbidden_columns" in found.describe()
    # the pseudonymize job's check goes through the same guard
    assert io_forbidden_match("BSNnr", ()) == "bsn"
    assert io_forbidden_match("dossier_nr", ("dossier",)) == "dossier"
    assert io_forbidden_match("buurtcode", ()) is None


def test_default_config_adds_no_words() -> None:
    assert load_settings().validation.forbidden_columns == ()


def test_plural_and_inflected_forms() -> None:
    assert {"naam"} <= word_forms("namen")
    assert {"straat"} <= word_forms("straten")
    assert {"adres"} <= word_forms("adressen")
    assert {"nationality"} <= word_forms("nationalities")
    assert {"etnisch"} <= word_forms("etnische")
    assert {"kenteken"} <= word_forms("kentekens")


@pytest.mark.parametrize(
    "mapping",
    [
        {"identifiers": {"bsn": {"term": ["bsn"]}}},  # a misspelt style
        {"identifiers": {"bsn": {"terms": "bsn"}}},  # not a list
        {"identifiers": {"bsn": {"terms": ["--"]}}},  # no letters
        {"sensitve": {}},
    ],
)
def test_a_malformed_list_is_a_config_error(mapping: dict) -> None:
    with pytest.raises(ConfigError):
        name_list_from_mapping(mapping)


def test_sensitive_features_are_still_refused_by_the_config() -> None:
    for feature in ("nationality_share", "etnische_groep", "religion_index"):
        with pytest.raises(ConfigError, match="refuses as a feature"):
            load_settings(model={"features": [feature]})
