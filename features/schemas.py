"""Declared schemas: every input table of the contract, declared once (outputs: zicht.jobs.catalog).

Reads and writes nothing. Input tables are declared with their *logical* types (string, integer,
double, date) and whether a column is required, optional (may be left out) or nullable (may hold
nulls; left out means all null). The readers in ``zicht.jobs.io`` read CSV as text and Parquet as
it comes, then cast each column with ``try_cast`` to the logical type here, so a value that does
not parse becomes a reject, never a silent null. Follows ``../shared/CONTRACT.md`` section 1 and 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from zicht.features.vocabulary import LINK_LAYERS

STRING, INTEGER, DOUBLE, DATE = "string", "integer", "double", "date"

_SPARK = {
    STRING: T.StringType(),
    INTEGER: T.LongType(),  # any integer width is accepted and widened to 64 bits
    DOUBLE: T.DoubleType(),
    DATE: T.DateType(),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string | integer | double | date
    description: str
    nullable: bool = False  # may hold nulls; left out means all null
    optional: bool = False  # may be left out entirely (and then means all null)

    @property
    def spark_type(self) -> T.DataType:
        return _SPARK[self.kind]


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def spark_schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.spark_type, True) for c in self.columns])


C = Column

INPUT_TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema(
            "areas",
            "One row per buurt in the reference year's CBS classification.",
            (
                C("buurt_code", STRING, "CBS buurt code, BU + 8 characters"),
                C("buurt_name", STRING, "buurt name"),
                C("wijk_code", STRING, "CBS wijk code, WK + buurt_code[2:8]"),
                C("wijk_name", STRING, "wijk name"),
                C("gemeente_code", STRING, "CBS gemeente code, GM + buurt_code[2:6]"),
                C("gemeente_name", STRING, "gemeente name"),
                C("x", DOUBLE, "centroid x in RD New (EPSG:28992), metres"),
                C("y", DOUBLE, "centroid y in RD New (EPSG:28992), metres"),
                C("land_area_ha", DOUBLE, "land area in hectares"),
                C(
                    "geometry_wkt",
                    STRING,
                    "polygon or multipolygon in RD New",
                    nullable=True,
                    optional=True,
                ),
                C(
                    "inhabitants",
                    INTEGER,
                    "registered inhabitants (CBS kerncijfers)",
                    nullable=True,
                    optional=True,
                ),
                # v2: the denominator of suspect rates when persons is not the register
                C(
                    "inhabitants_12plus",
                    INTEGER,
                    "registered inhabitants aged 12 or older (CBS kerncijfers)",
                    nullable=True,
                    optional=True,
                ),
                # v2 (issue 18): several CBS classifications, buurt_code unique per vintage
                C(
                    "vintage",
                    INTEGER,
                    "year of the CBS classification the row belongs to",
                    nullable=True,
                    optional=True,
                ),
            ),
            key=("buurt_code", "vintage"),
            required=True,
        ),
        # v2 (issue 18): recodings, merges, splits and corrections between two vintages
        TableSchema(
            "area_changes",
            "One row per (part of a) change of an area code between two CBS vintages.",
            (
                C("vintage_from", INTEGER, "vintage of code_from"),
                C("code_from", STRING, "buurt, wijk or gemeente code in vintage_from"),
                C("vintage_to", INTEGER, "vintage of code_to, after vintage_from"),
                C("code_to", STRING, "code of the same level in vintage_to"),
            ),
            key=("vintage_from", "code_from", "vintage_to", "code_to"),
        ),
        TableSchema(
            "incidents",
            "One row per police registration of an offence (BVH-like).",
            (
                C("incident_id", STRING, "pseudonymised registration number"),
                C("incident_date", DATE, "date of the offence"),
                C("crime_code", STRING, "police incident code (A72) or CBS class (3.1.1)"),
                C("buurt_code", STRING, "buurt of the offence", nullable=True),
                C("address_id", STRING, "address pseudonym of the offence", nullable=True),
                C("x", DOUBLE, "location x in RD New", nullable=True),
                C("y", DOUBLE, "location y in RD New", nullable=True),
            ),
            key=("incident_id",),
            required=True,
        ),
        TableSchema(
            "addresses",
            "One row per BAG residential or business unit (verblijfsobject).",
            (
                C("address_id", STRING, "address pseudonym"),
                C("buurt_code", STRING, "buurt of the address"),
                C("use_type", STRING, "BAG gebruiksdoel"),
                C("floor_area_m2", INTEGER, "floor area in square metres"),
                C("woz_value_eur", INTEGER, "WOZ value in euros", nullable=True),
            ),
            key=("address_id",),
        ),
        TableSchema(
            "persons",
            "One row per person in the municipal register (BRP), per snapshot year when given.",
            (
                C("person_id", STRING, "person pseudonym"),
                C(
                    "snapshot_year",
                    INTEGER,
                    "1 January snapshot the row belongs to",
                    nullable=True,
                    optional=True,
                ),
                C("birth_year", INTEGER, "year of birth"),
                C("sex", STRING, "BRP code M, V or O"),
                C("address_id", STRING, "address pseudonym of residence", nullable=True),
                C("household_id", STRING, "household pseudonym", nullable=True),
                C("registered_since", DATE, "registration at the current address"),
            ),
            key=("person_id", "snapshot_year"),
        ),
        TableSchema(
            "suspects",
            "One row per person registered as suspect of an incident (HKS-like).",
            (
                C("incident_id", STRING, "incident the person is suspect of"),
                C("person_id", STRING, "person pseudonym; need not exist in persons"),
            ),
            key=("incident_id", "person_id"),
        ),
        TableSchema(
            "companies",
            "One row per establishment in the trade register (KvK-like).",
            (
                C("company_id", STRING, "company pseudonym"),
                C("sbi_code", STRING, "SBI 2008 code, 2 to 5 digits"),
                C("legal_form", STRING, "legal form"),
                C("address_id", STRING, "establishment address pseudonym", nullable=True),
                C("registered_date", DATE, "registration date"),
                C("deregistered_date", DATE, "deregistration date", nullable=True),
            ),
            key=("company_id",),
        ),
        TableSchema(
            "company_roles",
            "One row per role of a person in a company.",
            (
                C("company_id", STRING, "company pseudonym"),
                C("person_id", STRING, "person pseudonym; need not exist in persons"),
                C("role", STRING, "eigenaar, bestuurder, vennoot, gevolmachtigde, aandeelhouder"),
                C("start_date", DATE, "start of the role"),
                C("end_date", DATE, "end of the role", nullable=True),
            ),
            key=("company_id", "person_id", "role", "start_date"),
        ),
        TableSchema(
            "signals",
            "One row per municipal or partner signal (melding, closure, Bibob advice, ...).",
            (
                C("signal_id", STRING, "signal pseudonym"),
                C("signal_date", DATE, "date of the signal"),
                C("category", STRING, "signal category of the phenomenon catalogue"),
                C(
                    "source",
                    STRING,
                    "gemeente, politie, woningcorporatie, belastingdienst, riec, overig",
                ),
                C("address_id", STRING, "address pseudonym", nullable=True),
                C("buurt_code", STRING, "buurt", nullable=True),
            ),
            key=("signal_id",),
        ),
        TableSchema(
            "person_links",
            "One row per undirected tie between two persons in one layer of a person network.",
            (
                C("person_id_a", STRING, "person pseudonym"),
                C("person_id_b", STRING, "person pseudonym"),
                C("layer", STRING, "familie, huishouden, buren, collega, klasgenoot"),
            ),
            key=("person_id_a", "person_id_b", "layer"),
        ),
        TableSchema(
            "property_transactions",
            "One row per sale of a dwelling or business unit (Kadaster-like).",
            (
                C("transaction_id", STRING, "transaction pseudonym"),
                C("address_id", STRING, "address pseudonym"),
                C("transaction_date", DATE, "date of the sale"),
                C("price_eur", INTEGER, "price in euros"),
                C("buyer_id", STRING, "person or company pseudonym of the buyer", nullable=True),
                C("buyer_kind", STRING, "person, company, foundation, unknown"),
            ),
            key=("transaction_id",),
        ),
        TableSchema(
            "household_income",
            "One row per household and year: standardised disposable income.",
            (
                C("household_id", STRING, "household pseudonym"),
                C("year", INTEGER, "year"),
                C("disposable_income_eur", INTEGER, "standardised disposable household income"),
            ),
            key=("household_id", "year"),
        ),
        # v2 (issue 19): FIU-NL reports declared suspicious, and Kadaster-like ownership periods
        TableSchema(
            "unusual_transactions",
            "One row per subject of a transaction FIU-NL declared suspicious (verdacht).",
            (
                C("transaction_id", STRING, "transaction pseudonym"),
                C("report_date", DATE, "date of the report"),
                C("amount_eur", INTEGER, "amount of the transaction in euros"),
                C("subject_id", STRING, "person or company pseudonym of the subject"),
                C("subject_kind", STRING, "person or company"),
                C("status", STRING, "verdacht (anything else is refused: Wwft)"),
                C("address_id", STRING, "address pseudonym of the transaction", nullable=True),
            ),
            key=("transaction_id", "subject_id"),
        ),
        TableSchema(
            "ownership",
            "One row per period in which an owner holds (a share of) an address (Kadaster-like).",
            (
                C("ownership_id", STRING, "ownership pseudonym"),
                C("address_id", STRING, "address pseudonym"),
                C("owner_id", STRING, "person or company pseudonym; null: unknown", nullable=True),
                C(
                    "owner_kind",
                    STRING,
                    "person, company, housing_corporation, foundation, unknown",
                ),
                C("share", DOUBLE, "the owner's part of the right, 0 < share <= 1"),
                C("from_date", DATE, "start of the period"),
                C("to_date", DATE, "end of the period", nullable=True),
            ),
            key=("ownership_id",),
        ),
    )
}

USE_TYPES = (
    "woonfunctie",
    "winkelfunctie",
    "kantoorfunctie",
    "bijeenkomstfunctie",
    "industriefunctie",
    "logiesfunctie",
    "gezondheidszorgfunctie",
    "onderwijsfunctie",
    "sportfunctie",
    "celfunctie",
    "overige gebruiksfunctie",
)
SEXES = ("M", "V", "O")
LEGAL_FORMS = (
    "eenmanszaak",
    "vof",
    "cv",
    "bv",
    "nv",
    "stichting",
    "vereniging",
    "cooperatie",
    "overig",
)
ROLES = ("eigenaar", "bestuurder", "vennoot", "gevolmachtigde", "aandeelhouder")
SIGNAL_SOURCES = ("gemeente", "politie", "woningcorporatie", "belastingdienst", "riec", "overig")
LAYERS = LINK_LAYERS
BUYER_KINDS = ("person", "company", "foundation", "unknown")
SUBJECT_KINDS = ("person", "company")
SUSPICIOUS_STATUS = "verdacht"  # the only status that may leave FIU-NL
OWNER_KINDS = ("person", "company", "housing_corporation", "foundation", "unknown")

# Columns that hold pseudonyms of persons, addresses, companies or records: the leak guard looks
# for their values in export/.
PSEUDONYM_COLUMNS: dict[str, tuple[str, ...]] = {
    "incidents": ("incident_id", "address_id"),
    "addresses": ("address_id",),
    "persons": ("person_id", "address_id", "household_id"),
    "suspects": ("incident_id", "person_id"),
    "companies": ("company_id", "address_id"),
    "company_roles": ("company_id", "person_id"),
    "signals": ("signal_id", "address_id"),
    "person_links": ("person_id_a", "person_id_b"),
    "property_transactions": ("transaction_id", "address_id", "buyer_id"),
    "household_income": ("household_id",),
    "unusual_transactions": ("transaction_id", "subject_id", "address_id"),
    "ownership": ("ownership_id", "address_id", "owner_id"),
}
