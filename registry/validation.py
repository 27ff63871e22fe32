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
#: ``households.household_id`` is VARCHAR(24); the id pattern alone allows longer serials.
HOUSEHOLD_ID_MAX_LENGTH = 24
HOUSEHOLD_ID_LENGTH_RULE = f"at most {HOUSEHOLD_ID_MAX_LENGTH} characters"


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


# --- columns as distinct values ----------------------------------------------------------
#
# A bulk import validates millions of cells, but a column holds few distinct values (codes,
# flags, dates, village names, given names) or values whose checks are cheap C calls (ids).
# Each input column is therefore factorised once: every check and conversion runs on its
# distinct values, and row-level masks and typed columns are gathered back with one numpy
# ``take``. Rules that span columns or rows work on whole numpy arrays.


class _Column:
    """One input column as its distinct stripped texts: row ``i`` holds ``texts[codes[i]]``.

    ``texts`` is an object array whose last entry is None (missing or blank), so that every
    per-distinct-value result gathers back with ``result[codes]``.
    """

    __slots__ = ("codes", "texts")

    def __init__(self, raw: pd.Series):
        values = _text_values(raw)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = np.empty(len(uniques) + 1, dtype=object)
        texts[:-1] = [_strip(v) for v in uniques]
        codes[codes < 0] = len(uniques)
        self.codes = codes
        self.texts = texts

    def keys(self) -> np.ndarray:
        """Per row: an integer standing for the stripped text (-1 when missing), for hashing."""
        return self.rows(pd.factorize(self.texts, use_na_sentinel=True)[0])

    def present(self) -> np.ndarray:
        """Per row: a value was given."""
        return self.rows(~self.missing)

    @property
    def missing(self) -> np.ndarray:
        """Per distinct value: missing or blank."""
        return np.array([t is None for t in self.texts], dtype=bool)

    def rows(self, per_value: np.ndarray) -> np.ndarray:
        """A per-distinct-value array gathered to rows."""
        return per_value[self.codes]

    def row_texts(self) -> np.ndarray:
        return self.texts[self.codes]


def _text_values(raw: pd.Series) -> np.ndarray:
    """The column as an object array of str (None/NaN for missing), one text per input value."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(object)
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        values = raw.to_numpy(dtype=object)
        if len(values) and pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            # Python values (a form or a JSON body): text each one, as a CSV cell would read.
            values = np.array([None if _is_missing(v) else _scalar_text(v) for v in values], dtype=object)
        return values
    return raw.astype("string").to_numpy(dtype=object, na_value=None)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _strip(value) -> str | None:
    text = str(value).strip()
    return text or None


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _to_string_array(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """An object array of str/None as a pandas ``string`` array."""
    return pd.array(values, dtype="string")


def _value_texts(values) -> list[str]:
    """Issue values: the cell as text, empty for missing."""
    return ["" if _is_missing(v) else str(v) for v in values]


class _Collector:
    def __init__(self, file: str, rows: np.ndarray, hh_ids: np.ndarray):
        self.file = file
        self.rows = rows
        self.hh_ids = hh_ids
        self.issues: list[Issue] = []

    def add(self, mask: np.ndarray, field: str, values, rule: str) -> None:
        """Record an issue for each row in ``mask``; ``values`` is a per-row array (or a
        :class:`_Column`, giving its stripped text)."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        if isinstance(values, _Column):
            picked = values.texts[values.codes[idx]]
        else:
            picked = np.asarray(values, dtype=object)[idx]
        for row, hh, value in zip(self.rows[idx], self.hh_ids[idx], _value_texts(picked), strict=True):
            self.issues.append(Issue(self.file, int(row), hh, field, value, rule))


@dataclass
class _Typed:
    """A parsed column: the pandas column for the result plus numpy views the rules use."""

    column: object
    present: np.ndarray  # bool per row: a value was given
    values: np.ndarray | None = None  # typed numbers (float, NaN when missing/invalid), dates (datetime64[D])


def _parse_field(spec: FieldSpec, raw: pd.Series, out: _Collector) -> _Typed:
    """Parse one column according to its spec, recording issues; returns the typed column."""
    col = _Column(raw)
    texts = col.texts
    missing_v = col.missing
    present_v = ~missing_v
    if spec.required:
        out.add(col.rows(missing_v), spec.name, col, "required")
    kind = spec.kind
    rule = spec.describe_rule()
    if kind in ("code", "int", "decimal"):
        num = pd.to_numeric(pd.Series(texts, dtype="string"), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        # Infinite or integer-overflowing numbers are not numbers the registry can hold.
        finite = np.isfinite(num) & (np.abs(np.nan_to_num(num)) < 2**53)
        bad_number = present_v & ~finite
        if kind in ("code", "int"):
            not_integer = present_v & finite & (num != np.floor(np.where(finite, num, 0)))
            out.add(col.rows(bad_number | not_integer), spec.name, col, rule)
            ok = present_v & ~bad_number & ~not_integer
        else:
            out.add(col.rows(bad_number), spec.name, col, rule)
            ok = present_v & ~bad_number
        if kind == "code":
            allowed = np.isin(num, np.array(list(spec.codes), dtype=float))
            out.add(col.rows(ok & ~allowed), spec.name, col, rule)
        else:
            out_of_range = np.zeros(len(num), dtype=bool)
            if spec.min is not None:
                out_of_range |= ok & (num < spec.min)
            if spec.max is not None:
                out_of_range |= ok & (num > spec.max)
            out.add(col.rows(out_of_range), spec.name, col, rule)
        valid_num = np.where(finite, num, np.nan)
        mask_v = ~finite
        if kind == "decimal":
            typed_v = np.round(np.nan_to_num(valid_num), 2)
            column = pd.arrays.FloatingArray(col.rows(typed_v), col.rows(mask_v))
        else:
            typed_v = np.round(np.nan_to_num(valid_num)).astype(np.int64)
            column = pd.arrays.IntegerArray(col.rows(typed_v), col.rows(mask_v))
        return _Typed(column, col.rows(present_v), col.rows(np.where(finite, typed_v, np.nan)))
    if kind == "bool":
        lowered = [t.lower() if t is not None else None for t in texts]
        is_true = np.array([t in TRUE_WORDS for t in lowered], dtype=bool)
        is_false = np.array([t in FALSE_WORDS for t in lowered], dtype=bool)
        out.add(col.rows(present_v & ~is_true & ~is_false), spec.name, col, rule)
        column = pd.arrays.BooleanArray(col.rows(is_true), col.rows(~is_true & ~is_false))
        return _Typed(column, col.rows(present_v))
    if kind == "date":
        parsed = pd.to_datetime(pd.Series(texts, dtype="string"), format="%Y-%m-%d", errors="coerce")
        days = parsed.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT"))
        out.add(col.rows(present_v & np.isnat(days)), spec.name, col, rule)
        dates = np.empty(len(days), dtype=object)
        dates[:] = [None if np.isnat(d) else d.item() for d in days]
        return _Typed(col.rows(dates), col.rows(present_v), col.rows(days))
    if kind == "text":
        normalised = np.empty(len(texts), dtype=object)
        normalised[:] = [t if t is None or t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
        if spec.max_length:
            too_long = np.array([t is not None and len(t) > spec.max_length for t in normalised], dtype=bool)
            out.add(col.rows(too_long), spec.name, col, rule)
        return _Typed(_to_string_array(col.rows(normalised)), col.rows(present_v))
    if kind == "pattern":
        match = spec.pattern.fullmatch
        bad = np.array([t is not None and match(t) is None for t in texts], dtype=bool)
        out.add(col.rows(bad), spec.name, col, rule)
        return _Typed(_to_string_array(col.row_texts()), col.rows(present_v))
    if kind == "codeset":
        allowed = set(spec.codes)
        valid = np.array(
            [t is None or all(p.strip().upper() in allowed for p in t.split(";") if p.strip()) for t in texts],
            dtype=bool,
        )
        out.add(col.rows(~valid), spec.name, col, rule)
        normalised = np.empty(len(texts), dtype=object)
        normalised[:] = [None if t is None else _normalise_set(t) for t in texts]
        return _Typed(_to_string_array(col.rows(normalised)), col.rows(present_v))
    raise ValueError(f"unknown field kind {kind!r}")


def _normalise_set(value: str) -> str | None:
    parts = sorted({p.strip().upper() for p in value.split(";") if p.strip()})
    return ";".join(parts) if parts else None


def _row_numbers(frame: pd.DataFrame, row_offset: int) -> np.ndarray:
    if "_row" in frame.columns:
        return frame["_row"].to_numpy().astype(np.int64)
    return np.arange(1, len(frame) + 1, dtype=np.int64) + row_offset


def missing_columns(columns: Iterable[str], kind: str) -> list[str]:
    """Required import columns absent from a file header (``kind`` is households or members)."""
    expected = HOUSEHOLD_FIELD_NAMES if kind == "households" else MEMBER_FIELD_NAMES
    have = set(columns)
    return [c for c in expected if c not in have]


def _parse_frame(frame: pd.DataFrame, specs, out: _Collector) -> tuple[pd.DataFrame, dict[str, _Typed]]:
    parsed = {spec.name: _parse_field(spec, frame[spec.name], out) for spec in specs}
    typed = pd.DataFrame({name: p.column for name, p in parsed.items()}, index=frame.index, copy=False)
    return typed, parsed


def _duplicated(keys: np.ndarray) -> np.ndarray:
    """Rows whose key (any hashable values) appeared in an earlier row."""
    return pd.Series(keys, copy=False).duplicated(keep="first").to_numpy()


def _ages(dob: np.ndarray, when: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole years from ``dob`` to ``when`` (datetime64[D] arrays); known where both are given
    and the birth is not after ``when``."""
    known = ~np.isnat(dob) & ~np.isnat(when) & (dob <= when)
    by, bm, bd = _ymd(dob)
    wy, wm, wd = _ymd(when)
    before_birthday = (wm < bm) | ((wm == bm) & (wd < bd))
    years = np.where(known, wy - by - before_birthday.astype(np.int64), 0)
    return years, known


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    safe = np.where(np.isnat(days), np.datetime64("1970-01-01"), days).astype("datetime64[D]")
    months = safe.astype("datetime64[M]")
    year = safe.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (safe - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


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
    hh_id_col = _Column(households["household_id"])
    hh_col = _Collector(households_file, hh_rows, hh_id_col.row_texts())
    typed_h, ph = _parse_frame(households, HOUSEHOLD_FIELDS, hh_col)
    typed_h["_row"] = hh_rows
    ids = hh_id_col.row_texts()
    has_id = hh_id_col.present()

    # Household ids: short enough for the registry, unique within the file.
    id_length = np.array([t is not None and len(t) > HOUSEHOLD_ID_MAX_LENGTH for t in hh_id_col.texts], dtype=bool)
    hh_col.add(hh_id_col.rows(id_length), "household_id", ids, HOUSEHOLD_ID_LENGTH_RULE)
    hh_col.add(has_id & _duplicated(hh_id_col.keys()), "household_id", ids, "duplicate household_id in file")

    # Union code known; area type agrees with the union; id starts with the union code.
    union_col = _Column(households["union_code"])
    known_unions = [t for t in union_col.texts if t is not None]
    area_types = union_area_types(known_unions) if callable(union_area_types) else union_area_types
    union_type_v = np.array(
        [np.nan if t is None or area_types.get(t) is None else float(area_types[t]) for t in union_col.texts]
    )
    has_union = union_col.present()
    union_type = union_col.rows(union_type_v)
    hh_col.add(has_union & np.isnan(union_type), "union_code", union_col, "unknown union code")
    area_type = ph["area_type"].values
    mismatch = ~np.isnan(union_type) & ~np.isnan(area_type) & (union_type != area_type)
    hh_col.add(
        mismatch,
        "area_type",
        typed_h["area_type"].to_numpy(dtype=object, na_value=None),
        "must match the union's area type (1 rural union, 2 paurashava, 3 city corporation ward)",
    )
    prefix_v = np.array([None if t is None else t[:8] for t in hh_id_col.texts], dtype=object)
    unions = union_col.row_texts()
    hh_col.add(
        has_id & has_union & (hh_id_col.rows(prefix_v) != unions),
        "household_id",
        ids,
        "must start with the household's union code",
    )
    interview_days = ph["interview_date"].values
    interview_dates = typed_h["interview_date"].to_numpy()
    hh_col.add(
        interview_days > np.datetime64(dt.date.today(), "D"),
        "interview_date",
        interview_dates,
        "must not be in the future",
    )
    no_consent_date = typed_h["consent_given"].eq(True).to_numpy(dtype=bool, na_value=False) & np.isnat(
        ph["consent_date"].values
    )
    hh_col.add(no_consent_date, "consent_date", typed_h["consent_date"].to_numpy(), "required when consent_given")

    m_rows = _row_numbers(members, row_offset)
    m_id_col = _Column(members["household_id"])
    m_ids = m_id_col.row_texts()
    m_col = _Collector(members_file, m_rows, m_ids)
    typed_m, pm = _parse_frame(members, MEMBER_FIELDS, m_col)
    typed_m["_row"] = m_rows

    names_missing = ~pm["name_bn"].present & ~pm["name_en"].present
    m_col.add(names_missing, "name_bn", np.full(len(m_ids), None), "at least one of name_bn, name_en is required")

    # Members must belong to a household in this file (or an existing one when allowed). The
    # household ids of both files are numbered together: ``slot`` is a member's household's
    # position among the distinct ids (-1 when none).
    id_index = pd.Index([t for t in hh_id_col.texts if t is not None], dtype=object).unique()
    hh_slot = hh_id_col.rows(id_index.get_indexer(hh_id_col.texts))
    m_slot_v = id_index.get_indexer(m_id_col.texts)
    in_file_v = m_slot_v >= 0
    known_v = in_file_v.copy()
    if known_household_ids:
        known_v |= np.array([t in known_household_ids for t in m_id_col.texts], dtype=bool)
    m_has_id = m_id_col.present()
    m_col.add(
        m_has_id & ~m_id_col.rows(known_v),
        "household_id",
        m_ids,
        "no household with this household_id in the file",
    )
    m_slot = m_id_col.rows(m_slot_v)
    with_household = m_slot >= 0

    # Age: entered, or derived from the date of birth at the interview date (of the last
    # household row with the id, when an id is repeated).
    interview_by_slot = np.full(len(id_index), np.datetime64("NaT"), dtype="datetime64[D]")
    interview_by_slot[hh_slot[hh_slot >= 0]] = interview_days[hh_slot >= 0]
    interview = np.full(len(m_slot), np.datetime64("NaT"), dtype="datetime64[D]")
    interview[with_household] = interview_by_slot[m_slot[with_household]]
    dob_days = pm["date_of_birth"].values
    derived, derived_known = _ages(dob_days, interview)
    no_age = typed_m["age_years"].isna().to_numpy() & np.isnat(dob_days)
    m_col.add(no_age, "age_years", np.full(len(m_ids), None), "age_years or date_of_birth is required")
    dob_dates = typed_m["date_of_birth"].to_numpy()
    bad_dob = ~np.isnat(dob_days) & ~np.isnat(interview) & (~derived_known | (derived > MAX_AGE))
    m_col.add(
        bad_dob,
        "date_of_birth",
        dob_dates,
        "must be on or before the interview date and give an age of at most 120",
    )
    age_array = typed_m["age_years"].array
    age_mask = age_array.isna()
    fill = age_mask & derived_known
    ages = np.where(fill, derived, age_array.to_numpy(dtype=np.int64, na_value=0))
    typed_m["age_years"] = pd.arrays.IntegerArray(ages, age_mask & ~fill)

    female = typed_m["sex"].to_numpy(dtype=float, na_value=np.nan) == 2
    age = np.where(age_mask & ~fill, np.nan, ages.astype(float))
    pregnant = typed_m["pregnant_or_lactating"].eq(True).to_numpy(dtype=bool, na_value=False)
    m_col.add(
        pregnant & ~(female & (age >= 12) & (age <= 55)),
        "pregnant_or_lactating",
        np.where(pregnant, "True", None),
        "only for women aged 12-55",
    )

    # Per household: unique line numbers, exactly one head.
    line = typed_m["line_no"].array
    has_line = ~line.isna()
    line_key = pd.DataFrame({"household": m_id_col.keys(), "line": line}, copy=False)
    dup_line = m_has_id & has_line & line_key.duplicated(keep="first").to_numpy()
    m_col.add(
        dup_line,
        "line_no",
        typed_m["line_no"].to_numpy(dtype=object, na_value=None),
        "line_no must be unique within the household",
    )
    # Heads are counted per distinct member household id, then looked up by the households' ids.
    is_head = typed_m["relation_to_head"].to_numpy(dtype=float, na_value=np.nan) == HEAD
    head_by_slot = np.bincount(m_slot[is_head & with_household], minlength=len(id_index))
    head_count = np.where(hh_slot >= 0, head_by_slot[np.maximum(hh_slot, 0)], 0)
    hh_col.add(
        has_id & (head_count != 1),
        "relation_to_head",
        head_count.astype(str),
        "a household needs exactly one member with relation_to_head=1 (head); found this many",
    )

    # National IDs: unique within the file and not already held by a current registry member.
    nid_col = _Column(members["nid_number"])
    nids = nid_col.row_texts()
    dup_nid = nid_col.present() & _duplicated(nid_col.keys())
    m_col.add(dup_nid, "nid_number", nids, "national ID appears more than once in the file")
    if registered_nids is not None:
        taken = registered_nids(list(dict.fromkeys(t for t in nid_col.texts if t is not None)))
        if taken:
            taken_v = np.array([t in taken for t in nid_col.texts], dtype=bool)
            m_col.add(
                nid_col.rows(taken_v) & ~dup_nid,
                "nid_number",
                nids,
                "national ID already held by a current member of another household",
            )

    return ValidationResult(typed_h, typed_m, hh_col.issues + m_col.issues)


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
