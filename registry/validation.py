"""Validation of household and member records against the data dictionary.

One code path for every way data enters the registry: a bulk import validates a chunk of
thousands of rows at once, a change request or a hand-made household validates a frame of
one row. Checks are vectorised (pandas), driven by the field specs in ``models.codes``,
and every problem becomes an :class:`Issue` naming the row, the field, the value and the
rule, never an exception half-way through.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.codes import (
    HEAD,
    HOUSEHOLD_FIELD_NAMES,
    HOUSEHOLD_FIELDS,
    MEMBER_FIELD_NAMES,
    MEMBER_FIELDS,
    FieldSpec,
)

TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n"})
#: Plausibility bounds for a member's age against their date of birth (years).
MAX_AGE = 120


@dataclass(frozen=True)
class Issue:
    """One validation problem. ``row`` is the 1-based data row (the header is row 0)."""

    file: str
    row: int | None
    household_id: str | None
    field: str
    value: str
    rule: str

    def as_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        where = f"{self.file} row {self.row}" if self.row is not None else self.file
        hh = f" (household {self.household_id})" if self.household_id else ""
        return f"{where}{hh}: {self.field}={self.value!r}: {self.rule}"


class RecordValidationError(ValueError):
    """Raised by services when a record is refused; carries every issue found."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        first = "; ".join(i.message() for i in issues[:3])
        more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
        super().__init__(f"{len(issues)} validation error(s): {first}{more}")

    def fields(self) -> dict[str, list[str]]:
        """Issues grouped by field name, as the API's ``fields`` error member expects."""
        out: dict[str, list[str]] = {}
        for issue in self.issues:
            out.setdefault(issue.field, []).append(f"{issue.rule} (got {issue.value!r})")
        return out


@dataclass
class ValidationResult:
    """Typed records (pandas nullable dtypes) and the issues found."""

    households: pd.DataFrame
    members: pd.DataFrame
    issues: list[Issue]

    @property
    def bad_household_ids(self) -> set[str]:
        return {i.household_id for i in self.issues if i.household_id}


def _as_text(series: pd.Series) -> pd.Series:
    """Normalise any input column to stripped strings with <NA> for blanks."""
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        text = series.map(_scalar_text, na_action="ignore").astype("string")
    else:
        text = series.astype("string")
    text = text.str.strip()
    return text.mask(text == "")


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class _Collector:
    def __init__(self, file: str, frame: pd.DataFrame, row_numbers: pd.Series, hh_ids: pd.Series):
        self.file = file
        self.frame = frame
        self.rows = row_numbers
        self.hh_ids = hh_ids
        self.issues: list[Issue] = []

    def add(self, mask: pd.Series, field: str, values: pd.Series, rule: str) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        for idx in mask[mask].index:
            value = values.get(idx)
            hh = self.hh_ids.get(idx)
            self.issues.append(
                Issue(
                    self.file,
                    int(self.rows[idx]),
                    None if pd.isna(hh) else str(hh),
                    field,
                    ""
                    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
                    else str(value),
                    rule,
                )
            )


def _parse_field(spec: FieldSpec, raw: pd.Series, col: _Collector) -> pd.Series:
    """Parse one column according to its spec, recording issues; returns the typed column."""
    text = _as_text(raw)
    missing = text.isna()
    if spec.required:
        col.add(missing, spec.name, text, "required")
    present = ~missing
    kind = spec.kind
    if kind in ("code", "int", "decimal"):
        num = pd.to_numeric(text, errors="coerce")
        bad_number = present & num.isna()
        if kind in ("code", "int"):
            not_integer = present & num.notna() & (num != np.floor(num.fillna(0)))
            col.add(bad_number | not_integer, spec.name, text, spec.describe_rule())
            ok = present & ~bad_number & ~not_integer
        else:
            col.add(bad_number, spec.name, text, spec.describe_rule())
            ok = present & ~bad_number
        if kind == "code":
            col.add(ok & ~num.isin(list(spec.codes)), spec.name, text, spec.describe_rule())
        else:
            out_of_range = pd.Series(False, index=text.index)
            if spec.min is not None:
                out_of_range |= ok & (num < spec.min)
            if spec.max is not None:
                out_of_range |= ok & (num > spec.max)
            col.add(out_of_range, spec.name, text, spec.describe_rule())
        if kind == "decimal":
            return num.round(2).astype("Float64")
        return num.round().astype("Int64")
    if kind == "bool":
        lowered = text.str.lower()
        is_true = lowered.isin(TRUE_WORDS)
        is_false = lowered.isin(FALSE_WORDS)
        col.add(present & ~is_true & ~is_false, spec.name, text, spec.describe_rule())
        out = pd.Series(pd.NA, index=text.index, dtype="boolean")
        out[is_true.fillna(False)] = True
        out[is_false.fillna(False)] = False
        return out
    if kind == "date":
        parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        col.add(present & parsed.isna(), spec.name, text, spec.describe_rule())
        return parsed.dt.date.astype(object).where(parsed.notna(), None)
    if kind == "text":
        normalised = text.map(lambda s: unicodedata.normalize("NFC", s), na_action="ignore").astype("string")
        if spec.max_length:
            col.add(present & (normalised.str.len() > spec.max_length), spec.name, text, spec.describe_rule())
        return normalised
    if kind == "pattern":
        col.add(
            present & ~text.str.fullmatch(spec.pattern.pattern).fillna(False), spec.name, text, spec.describe_rule()
        )
        return text
    if kind == "codeset":
        allowed = set(spec.codes)

        def normalise_set(value: str) -> str | None:
            parts = sorted({p.strip().upper() for p in value.split(";") if p.strip()})
            return ";".join(parts) if parts else None

        def is_valid(value: str) -> bool:
            return all(p.strip().upper() in allowed for p in value.split(";") if p.strip())

        valid = text.map(is_valid, na_action="ignore")
        col.add(present & ~valid.fillna(True).astype(bool), spec.name, text, spec.describe_rule())
        return text.map(normalise_set, na_action="ignore").astype("string")
    raise ValueError(f"unknown field kind {kind!r}")


def _row_numbers(frame: pd.DataFrame, row_offset: int) -> pd.Series:
    if "_row" in frame.columns:
        return frame["_row"].astype(int)
    return pd.Series(np.arange(1, len(frame) + 1) + row_offset, index=frame.index)


def missing_columns(columns: Iterable[str], kind: str) -> list[str]:
    """Required import columns absent from a file header (``kind`` is households or members)."""
    expected = HOUSEHOLD_FIELD_NAMES if kind == "households" else MEMBER_FIELD_NAMES
    have = set(columns)
    return [c for c in expected if c not in have]


def validate_records(
    households: pd.DataFrame,
    members: pd.DataFrame,
    *,
    union_area_types: Mapping[str, int] | Callable[[Iterable[str]], Mapping[str, int]],
    registered_nids: Callable[[Iterable[str]], set[str]] | None = None,
    households_file: str = "households",
    members_file: str = "members",
    row_offset: int = 0,
    known_household_ids: set[str] | None = None,
) -> ValidationResult:
    """Validate household and member rows together and return typed frames plus issues.

    ``households``/``members`` may hold raw strings (a CSV chunk) or Python values (a form or
    JSON body). A ``_row`` column, when present, gives each row's number in its file; otherwise
    rows are numbered from ``row_offset + 1``. ``union_area_types`` maps known union codes to
    their area type (or is a callable answering for the codes asked). ``registered_nids``
    answers which of the given national IDs current registry members already hold.
    ``known_household_ids`` lets member rows refer to households outside this frame.
    """
    households = households.reset_index(drop=True)
    members = members.reset_index(drop=True)
    for frame, names in ((households, HOUSEHOLD_FIELD_NAMES), (members, MEMBER_FIELD_NAMES)):
        for name in names:
            if name not in frame.columns:
                frame[name] = pd.NA

    hh_rows = _row_numbers(households, row_offset)
    hh_ids_text = _as_text(households["household_id"])
    hh_col = _Collector(households_file, households, hh_rows, hh_ids_text)
    typed_h = pd.DataFrame(
        {spec.name: _parse_field(spec, households[spec.name], hh_col) for spec in HOUSEHOLD_FIELDS},
        index=households.index,
    )
    typed_h["_row"] = hh_rows

    # Household ids: unique within the file; union code known; area type agrees with the union.
    dup_ids = typed_h["household_id"].notna() & typed_h["household_id"].duplicated(keep="first")
    hh_col.add(dup_ids, "household_id", typed_h["household_id"], "duplicate household_id in file")
    unions = typed_h["union_code"]
    if callable(union_area_types):
        area_types = union_area_types(unions.dropna().unique().tolist())
    else:
        area_types = union_area_types
    union_type = unions.map(lambda c: area_types.get(c), na_action="ignore")
    hh_col.add(unions.notna() & union_type.isna(), "union_code", unions, "unknown union code")
    mismatch = (
        union_type.notna()
        & typed_h["area_type"].notna()
        & (pd.to_numeric(union_type, errors="coerce") != typed_h["area_type"])
    )
    hh_col.add(
        mismatch,
        "area_type",
        typed_h["area_type"].astype("string"),
        "must match the union's area type (1 rural union, 2 paurashava, 3 city corporation ward)",
    )
    id_prefix_ok = typed_h["household_id"].str.slice(0, 8) == unions
    hh_col.add(
        typed_h["household_id"].notna() & unions.notna() & ~id_prefix_ok.fillna(False),
        "household_id",
        typed_h["household_id"],
        "must start with the household's union code",
    )
    today = dt.date.today()
    future = typed_h["interview_date"].map(lambda d: d is not None and d > today)
    hh_col.add(future, "interview_date", typed_h["interview_date"].astype("string"), "must not be in the future")
    no_consent_date = typed_h["consent_given"].eq(True) & typed_h["consent_date"].isna()
    hh_col.add(no_consent_date, "consent_date", typed_h["consent_date"].astype("string"), "required when consent_given")

    m_rows = _row_numbers(members, row_offset)
    m_ids_text = _as_text(members["household_id"])
    m_col = _Collector(members_file, members, m_rows, m_ids_text)
    typed_m = pd.DataFrame(
        {spec.name: _parse_field(spec, members[spec.name], m_col) for spec in MEMBER_FIELDS},
        index=members.index,
    )
    typed_m["_row"] = m_rows

    names_missing = typed_m["name_bn"].isna() & typed_m["name_en"].isna()
    m_col.add(names_missing, "name_bn", typed_m["name_bn"], "at least one of name_bn, name_en is required")

    # Members must belong to a household in this file (or an existing one when allowed).
    known = set(typed_h["household_id"].dropna())
    if known_household_ids:
        known |= known_household_ids
    orphan = typed_m["household_id"].notna() & ~typed_m["household_id"].isin(known)
    m_col.add(orphan, "household_id", typed_m["household_id"], "no household with this household_id in the file")

    # Age: entered, or derived from the date of birth at the interview date.
    interview = typed_m["household_id"].map(
        dict(zip(typed_h["household_id"], typed_h["interview_date"], strict=False)), na_action="ignore"
    )
    derived_age = pd.Series(
        [_age_at(dob, when) for dob, when in zip(typed_m["date_of_birth"], interview, strict=False)],
        index=typed_m.index,
        dtype="Int64",
    )
    no_age = typed_m["age_years"].isna() & typed_m["date_of_birth"].isna()
    m_col.add(no_age, "age_years", typed_m["age_years"].astype("string"), "age_years or date_of_birth is required")
    bad_dob = typed_m["date_of_birth"].notna() & interview.notna() & (derived_age.isna() | (derived_age > MAX_AGE))
    m_col.add(
        bad_dob,
        "date_of_birth",
        typed_m["date_of_birth"].astype("string"),
        "must be on or before the interview date and give an age of at most 120",
    )
    typed_m["age_years"] = typed_m["age_years"].fillna(derived_age)

    female = typed_m["sex"] == 2
    age = typed_m["age_years"]
    bad_pregnant = typed_m["pregnant_or_lactating"].eq(True) & ~(female & (age >= 12) & (age <= 55)).fillna(False)
    m_col.add(
        bad_pregnant,
        "pregnant_or_lactating",
        typed_m["pregnant_or_lactating"].astype("string"),
        "only for women aged 12-55",
    )

    # Per household: unique line numbers, exactly one head.
    dup_line = (
        typed_m["household_id"].notna()
        & typed_m["line_no"].notna()
        & typed_m.duplicated(subset=["household_id", "line_no"], keep="first")
    )
    m_col.add(dup_line, "line_no", typed_m["line_no"].astype("string"), "line_no must be unique within the household")
    heads = typed_m.loc[typed_m["relation_to_head"] == HEAD].groupby("household_id").size()
    head_count = typed_h["household_id"].map(heads, na_action="ignore").fillna(0)
    hh_col.add(
        typed_h["household_id"].notna() & (head_count != 1),
        "relation_to_head",
        head_count.astype("Int64").astype("string"),
        "a household needs exactly one member with relation_to_head=1 (head); found this many",
    )

    # National IDs: unique within the file and not already held by a current registry member.
    nids = typed_m["nid_number"]
    dup_nid = nids.notna() & nids.duplicated(keep="first")
    m_col.add(dup_nid, "nid_number", nids, "national ID appears more than once in the file")
    if registered_nids is not None:
        taken = registered_nids(nids.dropna().unique().tolist())
        if taken:
            m_col.add(
                nids.isin(taken) & ~dup_nid,
                "nid_number",
                nids,
                "national ID already held by a current member of another household",
            )

    issues = hh_col.issues + m_col.issues
    # Members of a household with household-level issues are reported through the household.
    return ValidationResult(typed_h, typed_m, issues)


def _age_at(dob, when) -> int | None:
    if dob is None or when is None or pd.isna(dob) or pd.isna(when):
        return None
    if dob > when:
        return None
    years = when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day))
    return years


def records_from_dicts(household: Mapping, members: list[Mapping]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frames of one household (and its members) from plain dicts, for single-record validation."""
    hh = pd.DataFrame([{k: household.get(k) for k in HOUSEHOLD_FIELD_NAMES}], dtype=object)
    mem = pd.DataFrame(
        [{**{k: m.get(k) for k in MEMBER_FIELD_NAMES}, "household_id": household.get("household_id")} for m in members],
        columns=list(MEMBER_FIELD_NAMES),
        dtype=object,
    )
    return hh, mem


def typed_row(frame: pd.DataFrame, index) -> dict:
    """A typed record as plain Python values (None for missing), ready for the ORM or JSON."""
    out = {}
    for key, value in frame.loc[index].items():
        if key == "_row":
            continue
        if value is pd.NA or value is None or (isinstance(value, float) and np.isnan(value)):
            out[key] = None
        elif isinstance(value, np.bool_):
            out[key] = bool(value)
        elif isinstance(value, np.integer):
            out[key] = int(value)
        elif isinstance(value, np.floating):
            out[key] = float(value)
        else:
            out[key] = value
    return out
