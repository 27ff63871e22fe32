"""Code lists and field specifications of the household registry.

This module is the single source of truth for what a household and a member hold
(``DATA_DICTIONARY.md``): the ORM models derive their columns' CHECK constraints from
it, ``registry.validation`` validates import rows and change requests with it, the
synthetic generator writes it and the PMT features read it. Codes are part of the
API and of every PMT model: never reuse or reinterpret a released code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

AREA_TYPE = {1: "rural", 2: "urban (paurashava)", 3: "city corporation"}
DWELLING_STRUCTURE = {1: "pucca", 2: "semi-pucca", 3: "kutcha", 4: "jhupri"}
WALL_MATERIAL = {
    1: "straw/bamboo/polythene",
    2: "mud/unburnt brick",
    3: "CI sheet/tin",
    4: "wood",
    5: "brick/cement",
    9: "other",
}
ROOF_MATERIAL = {1: "straw/thatch/bamboo", 2: "CI sheet/tin", 3: "tile", 4: "cement/concrete", 9: "other"}
FLOOR_MATERIAL = {1: "earth/mud", 2: "wood/bamboo", 3: "brick/cement", 9: "other"}
TENURE = {1: "owned", 2: "rented", 3: "rent-free", 9: "other"}
TOILET_TYPE = {1: "sanitary water-seal", 2: "pit with slab", 3: "non-sanitary/hanging", 4: "none/open"}
WATER_SOURCE = {1: "piped", 2: "tubewell", 3: "pond/river/canal", 4: "rain", 9: "other"}
ELECTRICITY = {1: "grid", 2: "solar", 3: "none"}
COOKING_FUEL = {1: "wood/straw/dung", 2: "kerosene", 3: "LPG/natural gas", 4: "electricity", 9: "other"}
MAIN_INCOME_SOURCE = {
    1: "agriculture (own)",
    2: "agricultural wage",
    3: "non-agricultural wage",
    4: "business",
    5: "salaried",
    6: "remittance",
    7: "transfers",
    9: "other",
}

SEX = {1: "male", 2: "female", 3: "hijra/third gender"}
RELATION_TO_HEAD = {
    1: "head",
    2: "spouse",
    3: "child",
    4: "child-in-law",
    5: "grandchild",
    6: "parent",
    7: "sibling",
    8: "other relative",
    9: "non-relative",
}
HEAD = 1
MARITAL_STATUS = {1: "never married", 2: "married", 3: "widowed", 4: "divorced", 5: "separated"}
RELIGION = {1: "Islam", 2: "Hindu", 3: "Buddhist", 4: "Christian", 9: "other"}
# Proposal (P): the census ethnicity list is longer; these cover the largest groups.
ETHNICITY = {
    1: "Bengali",
    2: "Chakma",
    3: "Marma",
    4: "Tripura",
    5: "Garo",
    6: "Santal",
    7: "other indigenous group",
    9: "other",
}
EDUCATION_LEVEL = {0: "none", **{k: f"class {k}" for k in range(1, 11)}, 11: "SSC", 12: "HSC", 13: "degree+"}
OCCUPATION = {
    0: "none (child)",
    1: "farmer",
    2: "agricultural labourer",
    3: "non-agricultural labourer",
    4: "business",
    5: "service",
    6: "housewife/homemaker",
    7: "student",
    8: "unemployed",
    9: "unable to work",
    10: "other",
}
#: Occupations that count as "working" for the share-of-members-working feature.
WORKING_OCCUPATIONS = (1, 2, 3, 4, 5, 10)
# Washington Group short set: difficulty level in each domain.
DIFFICULTY = {1: "no difficulty", 2: "some difficulty", 3: "a lot of difficulty", 4: "cannot do at all"}
#: Washington Group cut-off: "a lot of difficulty" or worse counts as a disability.
DISABILITY_THRESHOLD = 3
DISABILITY_DOMAINS = ("seeing", "hearing", "walking", "cognition", "self_care", "communication")

ASSETS = (
    "tv",
    "refrigerator",
    "mobile_phone",
    "smartphone",
    "motorcycle",
    "bicycle",
    "rickshaw_van",
    "sewing_machine",
    "shallow_pump",
    "computer",
)
SHOCKS = ("flood", "cyclone", "river_erosion", "drought", "illness_death", "job_loss", "crop_loss", "other")
#: Safety-net programme codes (``safety_net_benefits`` holds a ``;``-separated set of them).
SAFETY_NET_PROGRAMMES = {
    "OAA": "Old Age Allowance",
    "WA": "Allowance for Widowed, Deserted and Destitute Women",
    "DA": "Disability Allowance",
    "VGD": "Vulnerable Group Development",
    "VGF": "Vulnerable Group Feeding",
    "EGPP": "Employment Generation Programme for the Poorest",
    "MCA": "Mother and Child Benefit",
    "PSS": "Primary School Stipend",
    "OTH": "other programme",
}

NID_PATTERN = re.compile(r"^(\d{10}|\d{13}|\d{17})$")
BRN_PATTERN = re.compile(r"^\d{17}$")
MOBILE_PATTERN = re.compile(r"^01[3-9]\d{8}$")
HOUSEHOLD_ID_PATTERN = re.compile(r"^\d{8}-\d{6,}$")
UNION_CODE_PATTERN = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class FieldSpec:
    """What one registry field accepts.

    ``kind`` is one of ``code`` (an int from ``codes``), ``int``, ``decimal``, ``bool``,
    ``text``, ``date``, ``pattern`` (a string matching ``pattern``) or ``codeset``
    (a ``;``-separated set of string codes from ``codes``).
    """

    name: str
    kind: str
    required: bool = False
    codes: Mapping | None = None
    min: float | None = None
    max: float | None = None
    pattern: re.Pattern | None = None
    max_length: int | None = None
    rule: str = ""
    label: str = ""
    extra: dict = field(default_factory=dict)

    def describe_rule(self) -> str:
        """A short rule text for error messages and reports."""
        if self.rule:
            return self.rule
        if self.kind == "code":
            return "one of " + ", ".join(str(c) for c in self.codes)
        if self.kind in ("int", "decimal"):
            lo = "" if self.min is None else f">= {self.min:g}"
            hi = "" if self.max is None else f"<= {self.max:g}"
            return f"{'integer' if self.kind == 'int' else 'number'} {lo}{' and ' if lo and hi else ''}{hi}".strip()
        if self.kind == "bool":
            return "0/1, true/false or yes/no"
        if self.kind == "date":
            return "date as YYYY-MM-DD"
        if self.kind == "codeset":
            return "';'-separated codes from " + ", ".join(self.codes)
        if self.kind == "text" and self.max_length:
            return f"text of at most {self.max_length} characters"
        return self.kind


def _code(name, codes, required=True, **kw):
    return FieldSpec(name, "code", required=required, codes=codes, **kw)


HOUSEHOLD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "household_id",
        "pattern",
        required=True,
        pattern=HOUSEHOLD_ID_PATTERN,
        rule="union code (8 digits), '-', serial (6+ digits)",
    ),
    FieldSpec("union_code", "pattern", required=True, pattern=UNION_CODE_PATTERN, rule="known 8-digit union code"),
    _code("area_type", AREA_TYPE),
    FieldSpec("village", "text", max_length=120),
    FieldSpec("address", "text", max_length=300),
    FieldSpec("interview_date", "date", required=True),
    FieldSpec("enumerator_id", "text", max_length=40),
    FieldSpec("questionnaire_version", "text", max_length=20),
    _code("dwelling_structure", DWELLING_STRUCTURE),
    _code("wall_material", WALL_MATERIAL),
    _code("roof_material", ROOF_MATERIAL),
    _code("floor_material", FLOOR_MATERIAL),
    FieldSpec("rooms", "int", required=True, min=0, max=20),
    _code("tenure", TENURE),
    _code("toilet_type", TOILET_TYPE),
    FieldSpec("toilet_shared", "bool", required=True),
    _code("water_source", WATER_SOURCE),
    _code("electricity", ELECTRICITY),
    _code("cooking_fuel", COOKING_FUEL),
    FieldSpec("land_homestead_decimal", "decimal", required=True, min=0, max=100000),
    FieldSpec("land_cultivable_decimal", "decimal", required=True, min=0, max=100000),
    FieldSpec("cattle", "int", required=True, min=0, max=1000),
    FieldSpec("goats_sheep", "int", required=True, min=0, max=1000),
    FieldSpec("poultry", "int", required=True, min=0, max=10000),
    *(FieldSpec(f"asset_{a}", "bool", required=True) for a in ASSETS),
    FieldSpec("remittance_received", "bool", required=True),
    FieldSpec("remittance_amount_12m", "decimal", required=True, min=0, max=100_000_000),
    _code("main_income_source", MAIN_INCOME_SOURCE),
    *(FieldSpec(f"shock_{s}", "bool", required=True) for s in SHOCKS),
    FieldSpec("safety_net_benefits", "codeset", codes=SAFETY_NET_PROGRAMMES),
    FieldSpec("bank_or_mfs_account", "bool", required=True),
    FieldSpec("consent_given", "bool", required=True),
    FieldSpec("consent_date", "date"),
)

MEMBER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("household_id", "pattern", required=True, pattern=HOUSEHOLD_ID_PATTERN, rule="an existing household id"),
    FieldSpec("line_no", "int", required=True, min=1, max=99),
    FieldSpec("name_bn", "text", max_length=120),
    FieldSpec("name_en", "text", max_length=120),
    FieldSpec("father_name", "text", max_length=120),
    FieldSpec("mother_name", "text", max_length=120),
    FieldSpec("spouse_name", "text", max_length=120),
    FieldSpec("date_of_birth", "date"),
    FieldSpec("age_years", "int", min=0, max=120),
    _code("sex", SEX),
    _code("relation_to_head", RELATION_TO_HEAD),
    _code("marital_status", MARITAL_STATUS),
    _code("religion", RELIGION),
    _code("ethnicity", ETHNICITY),
    _code("education_level", EDUCATION_LEVEL),
    FieldSpec("currently_enrolled", "bool", required=True),
    _code("occupation", OCCUPATION),
    *(_code(f"disability_{d}", DIFFICULTY, required=False) for d in DISABILITY_DOMAINS),
    FieldSpec("pregnant_or_lactating", "bool", required=True),
    FieldSpec("nid_number", "pattern", pattern=NID_PATTERN, rule="10, 13 or 17 digits"),
    FieldSpec("birth_reg_number", "pattern", pattern=BRN_PATTERN, rule="17 digits"),
    FieldSpec("mobile_number", "pattern", pattern=MOBILE_PATTERN, rule="Bangladeshi mobile number 01XXXXXXXXX"),
)

HOUSEHOLD_FIELD_NAMES = tuple(f.name for f in HOUSEHOLD_FIELDS)
MEMBER_FIELD_NAMES = tuple(f.name for f in MEMBER_FIELDS)
HOUSEHOLD_SPECS = {f.name: f for f in HOUSEHOLD_FIELDS}
MEMBER_SPECS = {f.name: f for f in MEMBER_FIELDS}

ROLES = (
    "enumerator",
    "supervisor",
    "statistician",
    "programme_officer",
    "grievance_officer",
    "viewer",
    "admin",
)
AREA_LEVELS = ("division", "district", "upazila", "union")
