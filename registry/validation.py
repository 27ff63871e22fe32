"""Validation of household and member records against the data dictionary.

One code path for every way data enters the registry: a bulk import validates a chunk of
thousands of rows at once (:func:`validate_records`), a change request or a hand-made household
validates one household from its dicts (:func:`validate_record`), through the same rules.
Checks are vectorised (numpy, pandas where it pays), driven by the field specs in
``models.codes``, and every problem becomes an :class:`Issue` naming the row, the field, the
value and the rule, never an exception half-way through.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

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
# Each input column is therefore reduced to its distinct stripped texts once: every check and
# conversion runs on the distinct values, and row-level masks and typed columns are gathered
# back with one numpy ``take``. Rules that span columns or rows work on whole numpy arrays.
#
# The same code validates one household (a change request) and a bucket of thousands. What
# differs with size is only how a column is reduced to distinct texts (pandas' factorize for
# many rows, a dict for a few, where pandas' fixed cost per call would dominate) and how
# repeated keys are found; numbers and dates are parsed in one pandas call per validation,
# for every column at once, and remembered by text (a few new ISO dates are read by numpy).

#: Frames of at most this many rows are reduced with Python dicts instead of pandas calls.
SMALL_FRAME_ROWS = 64
#: Parsed numbers and dates are remembered by text, up to this many of each.
_PARSE_CACHE_SIZE = 200_000
_NUMBER_CACHE: dict[str, float] = {}
_DATE_CACHE: dict[str, np.datetime64] = {}
_NAT = np.datetime64("NaT", "D")
_ISO_DAY = re.compile(r"[12][0-9]{3}-[0-9]{2}-[0-9]{2}")
_STRING_DTYPE = pd.StringDtype()
_OBJECT = np.dtype(object)


class _Column:
    """One input column as its distinct stripped texts: row ``i`` holds ``texts[codes[i]]``.

    ``texts`` is an object array whose last entry is None (missing or blank), so that every
    per-distinct-value result gathers back with ``result[codes]``.
    """

    __slots__ = ("codes", "texts", "_unique", "_missing")

    def __init__(self, codes: np.ndarray, texts: np.ndarray, unique: bool):
        self.codes = codes
        self.texts = texts
        self._unique = unique  # no two entries of ``texts`` are equal
        self._missing = None

    @classmethod
    def from_series(cls, raw: pd.Series) -> _Column:
        """A column of any length and dtype (factorised by pandas)."""
        values = _text_values(raw)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = np.empty(len(uniques) + 1, dtype=object)
        texts[:-1] = [_strip(v) for v in uniques]
        codes[codes < 0] = len(uniques)
        return cls(codes, texts, unique=False)

    @classmethod
    def from_cells(cls, cells: Iterable) -> _Column:
        """A few Python cells (an object column's values), read as :func:`_text_values` does."""
        index: dict[str, int] = {}
        codes = []
        for value in cells:
            if type(value) is not str:
                value = None if _is_missing(value) else _scalar_text(value)
            text = None if value is None else (value.strip() or None)
            codes.append(-1 if text is None else index.setdefault(text, len(index)))
        texts = np.empty(len(index) + 1, dtype=object)
        texts[:-1] = list(index)
        codes = np.array(codes, dtype=np.intp)
        codes[codes < 0] = len(index)
        return cls(codes, texts, unique=True)

    @classmethod
    def empty(cls, n: int) -> _Column:
        return cls(np.zeros(n, dtype=np.intp), np.array([None], dtype=object), unique=True)

    def keys(self) -> np.ndarray:
        """Per row: an integer standing for the stripped text (-1 when missing), for hashing."""
        if self._unique:
            return np.where(self.codes == len(self.texts) - 1, -1, self.codes)
        return self.rows(pd.factorize(self.texts, use_na_sentinel=True)[0])

    def present(self) -> np.ndarray:
        """Per row: a value was given."""
        return self.rows(~self.missing)

    @property
    def missing(self) -> np.ndarray:
        """Per distinct value: missing or blank."""
        if self._missing is None:
            self._missing = np.array([t is None for t in self.texts], dtype=bool)
        return self._missing

    def rows(self, per_value: np.ndarray) -> np.ndarray:
        """A per-distinct-value array gathered to rows."""
        return per_value[self.codes]

    def row_texts(self) -> np.ndarray:
        return self.texts[self.codes]


def _columns(frame: pd.DataFrame, names: Iterable[str]) -> dict[str, _Column]:
    """Each named column of ``frame`` as a :class:`_Column` (absent columns are all missing)."""
    n = len(frame)
    position = {name: i for i, name in enumerate(frame.columns)}
    if n > SMALL_FRAME_ROWS or len(position) != len(frame.columns):
        return {name: _Column.from_series(frame[name]) if name in position else _Column.empty(n) for name in names}
    # A few rows: read object (and string, categorical) columns as Python cells, in one
    # conversion for the whole frame; other dtypes take the general path.
    dtypes = frame.dtypes.tolist()
    cells = frame.to_numpy(dtype=object).T.tolist() if n else [[] for _ in dtypes]
    out = {}
    for name in names:
        i = position.get(name)
        if i is None:
            out[name] = _Column.empty(n)
        elif dtypes[i] == _OBJECT or isinstance(dtypes[i], (pd.StringDtype, pd.CategoricalDtype)):
            out[name] = _Column.from_cells(cells[i])
        else:
            out[name] = _Column.from_series(frame[name])
    return out


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


def _value_texts(values) -> list[str]:
    """Issue values: the cell as text, empty for missing."""
    return ["" if _is_missing(v) else str(v) for v in values]


def _duplicated(keys: np.ndarray) -> np.ndarray:
    """Rows whose key (any hashable values) appeared in an earlier row."""
    if len(keys) > SMALL_FRAME_ROWS:
        return pd.Series(keys, copy=False).duplicated(keep="first").to_numpy()
    return _duplicated_few(keys.tolist())


def _duplicated_few(keys: list) -> np.ndarray:
    seen: set = set()
    out = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key in seen:
            out[i] = True
        else:
            seen.add(key)
    return out


def _duplicated_pairs(first: np.ndarray, second: pd.api.extensions.ExtensionArray) -> np.ndarray:
    """Rows whose (``first``, ``second``) pair appeared in an earlier row; NA equals NA."""
    if len(first) > SMALL_FRAME_ROWS:
        return pd.DataFrame({"a": first, "b": second}, copy=False).duplicated(keep="first").to_numpy()
    return _duplicated_few(
        list(zip(first.tolist(), second.to_numpy(dtype=object, na_value=None).tolist(), strict=True))
    )


class _Collector:
    def __init__(self, file: str, rows: np.ndarray, hh_ids: np.ndarray):
        self.file = file
        self.rows = rows
        self.hh_ids = hh_ids
        self.issues: list[Issue] = []

    def add(self, mask: np.ndarray, field: str, values, rule: str) -> None:
        """Record an issue for each row in ``mask``; ``values`` is a per-row array (or a
        :class:`_Column`, giving its stripped text)."""
        idx = np.asarray(mask).nonzero()[0]
        if not len(idx):
            return
        if isinstance(values, _Column):
            picked = values.texts[values.codes[idx]]
        else:
            picked = np.asarray(values, dtype=object)[idx]
        for row, hh, value in zip(self.rows[idx].tolist(), self.hh_ids[idx], _value_texts(picked), strict=True):
            self.issues.append(Issue(self.file, row, hh, field, value, rule))

    def add_per_value(self, col: _Column, per_value: list[bool], field: str, rule: str) -> None:
        """Record an issue for each row whose distinct value is flagged in ``per_value``."""
        if any(per_value):
            self.add(col.rows(np.array(per_value, dtype=bool)), field, col, rule)


# --- parsing numbers and dates: one pandas call per validation, remembered by text --------


def _parse_texts(columns: list[_Column], cache: dict, parse: Callable[[list[str]], list]) -> dict:
    """The parsed value of every distinct text of ``columns``: from ``cache``, else from one
    call of ``parse`` for all the texts not seen before."""
    found: dict = {}
    misses: dict[str, None] = {}
    for col in columns:
        for text in col.texts.tolist():
            if text is not None and text not in found:
                value = cache.get(text)
                if value is None:
                    misses[text] = None
                else:
                    found[text] = value
    if misses:
        keys = list(misses)
        parsed = dict(zip(keys, parse(keys), strict=True))
        found.update(parsed)
        if len(cache) + len(parsed) > _PARSE_CACHE_SIZE:
            cache.clear()
        if len(parsed) <= _PARSE_CACHE_SIZE:
            cache.update(parsed)
    return found


def _parse_numbers(texts: list[str]) -> list[float]:
    """Texts as numbers (NaN when not a number), as pandas reads them."""
    series = pd.Series(texts, dtype="string")
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan).tolist()


def _parse_dates(texts: list[str]) -> list[np.datetime64]:
    """Texts as dates (NaT when not a YYYY-MM-DD date)."""
    if len(texts) <= SMALL_FRAME_ROWS:
        # One household's few new dates: pandas' fixed cost per call is most of a change request's
        # date parsing. Zero-padded dates of years 1000-2999 are read by numpy, which takes and
        # refuses exactly the texts pandas does there (the test compares them); others go to pandas.
        days = [_iso_day(t) for t in texts]
        others = [t for t, d in zip(texts, days, strict=True) if d is None]
        if not others:
            return days
        read = iter(_pandas_dates(others))
        return [next(read) if d is None else d for d in days]
    return _pandas_dates(texts)


def _iso_day(text: str) -> np.datetime64 | None:
    """``text`` as a day if it is a zero-padded ``YYYY-MM-DD`` of years 1000-2999 (NaT when no
    such day exists); None for any other text."""
    if len(text) != 10 or not _ISO_DAY.fullmatch(text):
        return None
    try:
        return np.datetime64(text, "D")
    except ValueError:  # month 13, 30 February, ...
        return _NAT


def _pandas_dates(texts: list[str]) -> list[np.datetime64]:
    parsed = pd.to_datetime(pd.Series(texts, dtype="string"), format="%Y-%m-%d", errors="coerce")
    return list(parsed.to_numpy(dtype="datetime64[D]", na_value=_NAT))


class _Parsed:
    """Numbers and dates of every numeric and date column of one validation, parsed together."""

    def __init__(self, columns: list[tuple[FieldSpec, _Column]]):
        numeric = [col for spec, col in columns if spec.kind in ("code", "int", "decimal")]
        dates = [col for spec, col in columns if spec.kind == "date"]
        self.numbers = _parse_texts(numeric, _NUMBER_CACHE, _parse_numbers)
        self.dates = _parse_texts(dates, _DATE_CACHE, _parse_dates)

    def number_list(self, texts: list) -> list[float]:
        numbers = self.numbers
        return [math.nan if t is None else numbers[t] for t in texts]

    def date_list(self, texts: list) -> list[np.datetime64]:
        dates = self.dates
        return [_NAT if t is None else dates[t] for t in texts]


# --- one field ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldRule:
    """A field spec with what its checks need prepared once (rule text, code sets)."""

    spec: FieldSpec
    rule: str
    allowed: frozenset = frozenset()  # codes as floats (code) or upper-case strings (codeset)


def _field_rules(specs: Iterable[FieldSpec]) -> tuple[_FieldRule, ...]:
    out = []
    for spec in specs:
        if spec.kind == "code":
            allowed = frozenset(float(c) for c in spec.codes)
        elif spec.kind == "codeset":
            allowed = frozenset(spec.codes)
        else:
            allowed = frozenset()
        out.append(_FieldRule(spec, spec.describe_rule(), allowed))
    return tuple(out)


_HOUSEHOLD_RULES = _field_rules(HOUSEHOLD_FIELDS)
_MEMBER_RULES = _field_rules(MEMBER_FIELDS)


class _Typed:
    """A parsed column: the pandas column for the result, and per distinct value what the
    cross-field rules use (numbers: float, NaN when missing or invalid; dates: datetime64[D];
    bools: True where true), gathered to rows on demand.

    Numbers and bools are kept as per-row data and mask; their pandas masked array is built
    only when ``column`` is read (for a frame, or by a rule that needs it): one household
    validated from dicts reads its typed values straight from the data."""

    __slots__ = ("_column", "_masked", "col", "values_v")

    def __init__(self, column, col: _Column, values_v: np.ndarray | None = None, masked: tuple | None = None):
        self._column = column
        self._masked = masked  # (pandas masked array type, data, mask) while ``column`` is not built
        self.col = col
        self.values_v = values_v

    @classmethod
    def masked(cls, array_type, data: np.ndarray, mask: np.ndarray, col: _Column, values_v: np.ndarray) -> _Typed:
        return cls(None, col, values_v, (array_type, data, mask))

    @property
    def column(self):
        if self._column is None:
            array_type, data, mask = self._masked
            self._column = array_type(data, mask)
        return self._column

    @column.setter
    def column(self, value) -> None:
        self._column = value
        self._masked = None

    def python_values(self) -> list:
        """Per row: plain Python values, None when missing."""
        if self._masked is not None:
            _array_type, data, mask = self._masked
            return [None if missing else value for value, missing in zip(data.tolist(), mask.tolist(), strict=True)]
        values = self._column.tolist()
        if not isinstance(self._column, np.ndarray):  # a pandas array: NA for missing
            values = [None if v is pd.NA else v for v in values]
        return values

    @property
    def present(self) -> np.ndarray:
        """Per row: a value was given."""
        return self.col.present()

    @property
    def values(self) -> np.ndarray:
        return self.col.rows(self.values_v)


def _parse_field(field: _FieldRule, col: _Column, parsed: _Parsed, out: _Collector, strings: list) -> _Typed:
    """Parse one column according to its spec, recording issues; returns the typed column.

    Each check runs once per distinct value of the column. String-typed columns are returned
    as object arrays of str/None and their name is added to ``strings``, to become pandas
    ``string`` arrays together."""
    spec = field.spec
    name = spec.name
    rule = field.rule
    texts = col.texts.tolist()
    if spec.required:
        out.add_per_value(col, [t is None for t in texts], name, "required")
    kind = spec.kind
    if kind in ("code", "int", "decimal"):
        nums = parsed.number_list(texts)
        allowed, lo, hi = field.allowed, spec.min, spec.max
        finite, bad, outside = [], [], []
        for text, x in zip(texts, nums, strict=True):
            # Infinite or integer-overflowing numbers are not numbers the registry can hold.
            fin = math.isfinite(x) and abs(x) < 2**53
            finite.append(fin)
            if text is None or (fin and (kind == "decimal" or x == math.floor(x))):
                bad.append(False)
                if text is None:
                    outside.append(False)
                elif kind == "code":
                    outside.append(x not in allowed)
                else:
                    outside.append((lo is not None and x < lo) or (hi is not None and x > hi))
            else:
                bad.append(True)
                outside.append(False)
        out.add_per_value(col, bad, name, rule)
        out.add_per_value(col, outside, name, rule)
        finite_v = np.array(finite, dtype=bool)
        safe = np.where(finite_v, np.array(nums, dtype=float), 0.0)
        mask = col.rows(~finite_v)
        if kind == "decimal":
            typed_v = np.round(safe, 2)
            array_type = pd.arrays.FloatingArray
        else:
            typed_v = np.round(safe).astype(np.int64)
            array_type = pd.arrays.IntegerArray
        return _Typed.masked(array_type, col.rows(typed_v), mask, col, np.where(finite_v, typed_v, np.nan))
    if kind == "bool":
        lowered = [t.lower() if t is not None else None for t in texts]
        is_true = [t in TRUE_WORDS for t in lowered]
        unknown = [t not in FALSE_WORDS and not true for t, true in zip(lowered, is_true, strict=True)]
        out.add_per_value(col, [t is not None and u for t, u in zip(texts, unknown, strict=True)], name, rule)
        true_v = np.array(is_true, dtype=bool)
        return _Typed.masked(
            pd.arrays.BooleanArray, col.rows(true_v), col.rows(np.array(unknown, dtype=bool)), col, true_v
        )
    if kind == "date":
        days = parsed.date_list(texts)
        dates = [d.item() for d in days]  # NaT gives None
        out.add_per_value(col, [t is not None and d is None for t, d in zip(texts, dates, strict=True)], name, rule)
        dates_v = np.empty(len(dates), dtype=object)
        dates_v[:] = dates
        return _Typed(col.rows(dates_v), col, np.array(days, dtype="datetime64[D]"))
    if kind == "text":
        normalised = [t if t is None or t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
        if spec.max_length:
            limit = spec.max_length
            out.add_per_value(col, [t is not None and len(t) > limit for t in normalised], name, rule)
        strings.append(name)
        normalised_v = np.empty(len(normalised), dtype=object)
        normalised_v[:] = normalised
        return _Typed(col.rows(normalised_v), col)
    if kind == "pattern":
        match = spec.pattern.fullmatch
        out.add_per_value(col, [t is not None and match(t) is None for t in texts], name, rule)
        strings.append(name)
        return _Typed(col.row_texts(), col)
    if kind == "codeset":
        allowed = field.allowed
        valid = [t is None or all(p.strip().upper() in allowed for p in t.split(";") if p.strip()) for t in texts]
        out.add_per_value(col, [not v for v in valid], name, rule)
        normalised_v = np.empty(len(texts), dtype=object)
        normalised_v[:] = [None if t is None else _normalise_set(t) for t in texts]
        strings.append(name)
        return _Typed(col.rows(normalised_v), col)
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


def _parse_frame(
    fields: tuple[_FieldRule, ...],
    columns: dict[str, _Column],
    parsed: _Parsed,
    out: _Collector,
    as_pandas: bool = True,
) -> dict[str, _Typed]:
    """Every field of one frame, typed; string columns become pandas ``string`` arrays in one call
    (they stay object arrays when ``as_pandas`` is false)."""
    strings: list[str] = []
    typed = {f.spec.name: _parse_field(f, columns[f.spec.name], parsed, out, strings) for f in fields}
    if strings and as_pandas:
        joined = pd.array(np.concatenate([typed[name].column for name in strings]), dtype=_STRING_DTYPE)
        start = 0
        for name in strings:
            stop = start + len(typed[name].column)
            typed[name].column = joined[start:stop]
            start = stop
    return typed


def _typed_frame(typed: dict[str, _Typed], rows: np.ndarray) -> pd.DataFrame:
    """The typed columns and ``_row`` as a DataFrame, one block per column taken as it is.

    The columns already have their final dtypes; pandas' general constructor would infer and
    check each again, which costs more than validating a one-row frame."""
    arrays = [t.column for t in typed.values()] + [rows]
    blocks = [
        (a.reshape(1, -1) if isinstance(a, np.ndarray) else a, np.array([i], dtype=np.intp))
        for i, a in enumerate(arrays)
    ]
    columns = pd.Index([*typed, "_row"])
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(len(rows)), columns=columns)


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
    hh_rows = _row_numbers(households, row_offset)
    m_rows = _row_numbers(members, row_offset)
    ph, pm, issues = _validate_columns(
        _columns(households, HOUSEHOLD_FIELD_NAMES),
        _columns(members, MEMBER_FIELD_NAMES),
        hh_rows,
        m_rows,
        union_area_types=union_area_types,
        registered_nids=registered_nids,
        households_file=households_file,
        members_file=members_file,
        known_household_ids=known_household_ids,
    )
    return ValidationResult(_typed_frame(ph, hh_rows), _typed_frame(pm, m_rows), issues)


def validate_record(
    household: Mapping,
    members: list[Mapping],
    *,
    union_area_types: Mapping[str, int] | Callable[[Iterable[str]], Mapping[str, int]],
    registered_nids: Callable[[Iterable[str]], set[str]] | None = None,
    households_file: str = "household",
    members_file: str = "members",
) -> tuple[dict, list[dict], list[Issue]]:
    """Validate one household and its members given as dicts (a change request, a form).

    The same rules as :func:`validate_records` (one code path: both reduce their input to the
    same columns, see ``_validate_columns``) without building a DataFrame in or out, whose fixed
    cost outweighs checking one household. Returns the typed household, the typed members (plain
    Python values, None when missing) and the issues; members are rows 1.. in the given order and
    take the household's ``household_id``."""
    household_id = household.get("household_id")
    hh_cols = {name: _Column.from_cells([household.get(name)]) for name in HOUSEHOLD_FIELD_NAMES}
    m_cols = {
        name: _Column.from_cells([household_id if name == "household_id" else m.get(name) for m in members])
        for name in MEMBER_FIELD_NAMES
    }
    ph, pm, issues = _validate_columns(
        hh_cols,
        m_cols,
        np.arange(1, 2, dtype=np.int64),
        np.arange(1, len(members) + 1, dtype=np.int64),
        union_area_types=union_area_types,
        registered_nids=registered_nids,
        households_file=households_file,
        members_file=members_file,
        as_pandas=False,
    )
    return _typed_records(ph, 1)[0], _typed_records(pm, len(members)), issues


def _typed_records(typed: dict[str, _Typed], n: int) -> list[dict]:
    """The typed columns as ``n`` dicts of plain Python values (None for missing): the values a
    frame of :func:`validate_records` holds, as the ORM and JSON take them."""
    columns = {name: t.python_values() for name, t in typed.items()}
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def _validate_columns(
    hh_cols: dict[str, _Column],
    m_cols: dict[str, _Column],
    hh_rows: np.ndarray,
    m_rows: np.ndarray,
    *,
    union_area_types: Mapping[str, int] | Callable[[Iterable[str]], Mapping[str, int]],
    registered_nids: Callable[[Iterable[str]], set[str]] | None,
    households_file: str,
    members_file: str,
    known_household_ids: set[str] | None = None,
    as_pandas: bool = True,
) -> tuple[dict[str, _Typed], dict[str, _Typed], list[Issue]]:
    """Every rule, on the input reduced to columns: the typed columns of both files and the
    issues. ``as_pandas=False`` leaves text columns as object arrays (no frame will hold them)."""
    parsed = _Parsed(
        [(f.spec, hh_cols[f.spec.name]) for f in _HOUSEHOLD_RULES]
        + [(f.spec, m_cols[f.spec.name]) for f in _MEMBER_RULES]
    )

    hh_id_col = hh_cols["household_id"]
    ids = hh_id_col.row_texts()
    hh_col = _Collector(households_file, hh_rows, ids)
    ph = _parse_frame(_HOUSEHOLD_RULES, hh_cols, parsed, hh_col, as_pandas)
    has_id = hh_id_col.present()

    # Household ids: short enough for the registry, unique within the file.
    id_length = np.array([t is not None and len(t) > HOUSEHOLD_ID_MAX_LENGTH for t in hh_id_col.texts], dtype=bool)
    hh_col.add(hh_id_col.rows(id_length), "household_id", ids, HOUSEHOLD_ID_LENGTH_RULE)
    hh_col.add(has_id & _duplicated(hh_id_col.keys()), "household_id", ids, "duplicate household_id in file")

    # Union code known; area type agrees with the union; id starts with the union code.
    union_col = hh_cols["union_code"]
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
        ph["area_type"].column,
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
    hh_col.add(
        interview_days > np.datetime64(dt.date.today(), "D"),
        "interview_date",
        ph["interview_date"].column,
        "must not be in the future",
    )
    no_consent_date = ph["consent_given"].values & np.isnat(ph["consent_date"].values)
    hh_col.add(no_consent_date, "consent_date", ph["consent_date"].column, "required when consent_given")

    m_id_col = m_cols["household_id"]
    m_ids = m_id_col.row_texts()
    m_col = _Collector(members_file, m_rows, m_ids)
    pm = _parse_frame(_MEMBER_RULES, m_cols, parsed, m_col, as_pandas)

    names_missing = ~pm["name_bn"].present & ~pm["name_en"].present
    m_col.add(names_missing, "name_bn", np.full(len(m_ids), None), "at least one of name_bn, name_en is required")

    # Members must belong to a household in this file (or an existing one when allowed). The
    # household ids of both files are numbered together: ``slot`` is a member's household's
    # position among the distinct ids (-1 when none).
    slot_of: dict[str, int] = {}
    for t in hh_id_col.texts.tolist():
        if t is not None:
            slot_of.setdefault(t, len(slot_of))
    hh_slot = hh_id_col.rows(np.array([slot_of.get(t, -1) for t in hh_id_col.texts.tolist()], dtype=np.intp))
    m_slot_v = np.array([slot_of.get(t, -1) for t in m_id_col.texts.tolist()], dtype=np.intp)
    known_v = m_slot_v >= 0
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
    interview_by_slot = np.full(len(slot_of), _NAT, dtype="datetime64[D]")
    interview_by_slot[hh_slot[hh_slot >= 0]] = interview_days[hh_slot >= 0]
    interview = np.full(len(m_slot), _NAT, dtype="datetime64[D]")
    interview[with_household] = interview_by_slot[m_slot[with_household]]
    dob_days = pm["date_of_birth"].values
    derived, derived_known = _ages(dob_days, interview)
    age_array = pm["age_years"].column
    age_mask = np.isnan(pm["age_years"].values)
    no_age = age_mask & np.isnat(dob_days)
    m_col.add(no_age, "age_years", np.full(len(m_ids), None), "age_years or date_of_birth is required")
    bad_dob = ~np.isnat(dob_days) & ~np.isnat(interview) & (~derived_known | (derived > MAX_AGE))
    m_col.add(
        bad_dob,
        "date_of_birth",
        pm["date_of_birth"].column,
        "must be on or before the interview date and give an age of at most 120",
    )
    fill = age_mask & derived_known
    ages = np.where(fill, derived, age_array.to_numpy(dtype=np.int64, na_value=0))
    pm["age_years"] = _Typed.masked(
        pd.arrays.IntegerArray, ages, age_mask & ~fill, pm["age_years"].col, pm["age_years"].values_v
    )

    female = pm["sex"].values == 2
    age = np.where(age_mask & ~fill, np.nan, ages.astype(float))
    pregnant = pm["pregnant_or_lactating"].values
    m_col.add(
        pregnant & ~(female & (age >= 12) & (age <= 55)),
        "pregnant_or_lactating",
        np.where(pregnant, "True", None),
        "only for women aged 12-55",
    )

    # Per household: unique line numbers, exactly one head.
    line = pm["line_no"].column
    has_line = ~np.isnan(pm["line_no"].values)
    dup_line = m_has_id & has_line & _duplicated_pairs(m_id_col.keys(), line)
    m_col.add(dup_line, "line_no", line, "line_no must be unique within the household")
    # Heads are counted per distinct member household id, then looked up by the households' ids.
    is_head = pm["relation_to_head"].values == HEAD
    head_by_slot = np.bincount(m_slot[is_head & with_household], minlength=len(slot_of))
    head_count = np.where(hh_slot >= 0, head_by_slot[np.maximum(hh_slot, 0)], 0)
    hh_col.add(
        has_id & (head_count != 1),
        "relation_to_head",
        head_count.astype(str),
        "a household needs exactly one member with relation_to_head=1 (head); found this many",
    )

    # National IDs: unique within the file and not already held by a current registry member.
    nid_col = m_cols["nid_number"]
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

    return ph, pm, hh_col.issues + m_col.issues
