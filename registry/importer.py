"""Bulk import of households and members from the two CSV files of the import format.

One function, :func:`import_files`, serves the ``socreg import`` command, the API's
background job (``@job_handler("import")``) and the demo. It is all or nothing by default:
every row is validated first and, if any row is invalid, nothing is written and every problem
is reported (file, row, household id, field, value, rule). With ``skip_invalid`` the valid
households are imported and a household with any invalid member is rejected whole.
Households already registered are recognised by their registry id and skipped, never
overwritten (changes go through change requests), so importing a file twice is harmless.

How it stays fast and bounded in memory for millions of rows:

1. *Read*: both files are streamed in chunks and split into buckets by a hash of the
   household id (pickled to a private temporary folder), so that each household lands in
   the same bucket as all its members wherever they are in the files.
2. *Validate*: each bucket is validated whole by ``registry.validation.validate_records``
   (the one rule engine: codes, ranges, formats, one head, unique line numbers, orphan
   members, ages, national IDs within the bucket), in worker processes for large files.
3. *Load*: on PostgreSQL each validated bucket is copied straight into the registry tables
   while the next ones are validated (:class:`_DirectImport`, in a savepoint); on SQLite it is
   staged into temporary tables.
4. *Check*: what no bucket can see alone (national IDs repeated in other buckets or already
   held by registry members, households already registered) is settled set-based at the end;
   on SQLite the households are then inserted from the staging tables. One audit event records
   the whole import, and a queued ``dedup.index`` job gives the new households their
   duplicate-matching keys.

Version 1 of an imported household is written without a snapshot: its current tables are that
state until it first changes (``registry.households``).

Row numbers in reports count the header as row 1, so a data row's number is its line in the
file (unless a quoted value spans lines or blank lines are skipped).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import itertools
import logging
import multiprocessing
import multiprocessing.pool
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from sqlalchemy import select

from models import Job, User, db
from models.base import utcnow
from models.codes import HOUSEHOLD_FIELD_NAMES, MEMBER_FIELD_NAMES
from registry import import_sql
from registry.access import AccessDenied, has_national_scope, require_role
from registry.audit import record_event
from registry.geo import read_union_area_types
from registry.jobs import JobContext, JobError, enqueue, housekeeping, job_handler, job_view, run_job
from registry.privacy import MASK, PII_HOUSEHOLD_FIELDS, PII_MEMBER_FIELDS, mask_member
from registry.validation import Issue, validate_records

log = logging.getLogger(__name__)

#: Roles that may import (the issue: supervisors and admins only).
IMPORT_ROLES = ("supervisor", "admin")
#: Households validated together (with all their members); bounds memory per worker. Measured on
#: 1M households (PostgreSQL, 2 workers): 20,000 took 346 s with 1,428 + 2 x 1,076 MiB peak RSS;
#: 5,000 took 241 s with 676 + 2 x 436 MiB (smaller results to pickle, hold and stage at once).
BUCKET_HOUSEHOLDS = 5_000
#: Rows read from a file at a time while splitting it into buckets.
READ_CHUNK_ROWS = 100_000
#: Below this many households worker processes cost more than they save.
PARALLEL_MIN_HOUSEHOLDS = 60_000
#: National IDs an import keeps in memory to find repeats across buckets (about 90 bytes each)
#: before it asks the unique index instead (about 5 us per ID on 1M households).
WRITTEN_NIDS_IN_MEMORY = 4_000_000
#: A file of this many households loaded into a registry with none (a first census load) is
#: written without the tables' secondary indexes and foreign keys, rebuilt once at the end
#: (``import_sql.begin_direct_load``). Smaller loads keep them: the gain is seconds, and the
#: deferral locks the tables against every other session until the import commits.
DEFER_INDEXES_FROM = 100_000
#: Buckets per worker process being validated or waiting to be staged (bounds memory).
RESULTS_IN_FLIGHT_PER_WORKER = 2
#: How many issues a summary shows (the report has all of them).
FIRST_ISSUES = 10
REPORT_COLUMNS = ("file", "row", "household_id", "field", "value", "rule")
# The validator's wording for the national-ID rules, reused for the checks that span buckets
# (a test asserts that they still match what validate_records says).
NID_DUPLICATE_RULE = "national ID appears more than once in the file"
NID_REGISTERED_RULE = "national ID already held by a current member of another household"

Progress = Callable[[str, int, int | None], None]


class ImportFileError(ValueError):
    """A file cannot be imported at all (encoding, header, empty, wrong file): one clear message.
    ``field`` names the upload it concerns (``households`` or ``members``) when known."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        # Raised in worker processes too: keep the field across pickling.
        return type(self), (str(self), self.field)


@dataclass
class CsvInfo:
    """What :func:`inspect_csv` learned about a file."""

    path: Path
    name: str
    kind: str
    size: int
    columns: list[str]
    extra_columns: list[str]


@dataclass
class ImportResult:
    """The outcome of an import, as reported by the CLI, the job and the API."""

    outcome: str  # "imported" or "rejected"
    skip_invalid: bool
    source_ref: str | None
    households_in_file: int = 0
    members_in_file: int = 0
    households_imported: int = 0
    members_imported: int = 0
    households_already_registered: int = 0
    households_rejected: int = 0
    issue_count: int = 0
    issues_by_rule: dict[str, int] = field(default_factory=dict)
    first_issues: list[dict] = field(default_factory=list)
    report_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.outcome == "rejected"

    def as_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        """One line for logs, job errors and the CLI."""
        if self.rejected:
            return (
                f"import rejected: {self.issue_count} problem(s) in {self.households_rejected} household(s) "
                f"or orphan rows; nothing was written"
            )
        return (
            f"imported {self.households_imported} household(s) with {self.members_imported} member(s); "
            f"{self.households_already_registered} already registered, {self.households_rejected} rejected"
        )


# --- files ------------------------------------------------------------------------------


#: Bytes :func:`inspect_csv` checks for UTF-8 when the reading checks the rest (see ``import_files``).
ENCODING_PROBE_BYTES = 1024 * 1024


def inspect_csv(path: str | Path, kind: str, name: str | None = None, *, whole_file: bool = True) -> CsvInfo:
    """Check that a file is a non-empty UTF-8 CSV (BOM allowed) with the columns of ``kind``
    (``households`` or ``members``); raise :class:`ImportFileError` saying what is wrong.

    With ``whole_file=False`` only the first MiB is checked for UTF-8: the import's reading
    checks the rest as it decodes, in parallel, instead of a serial pass over the file first."""
    path = Path(path)
    name = name or path.name
    expected = HOUSEHOLD_FIELD_NAMES if kind == "households" else MEMBER_FIELD_NAMES
    other_kind, other = (
        ("members", MEMBER_FIELD_NAMES) if kind == "households" else ("households", HOUSEHOLD_FIELD_NAMES)
    )
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(f"{name} is empty: expected a CSV file of {kind} with a header row", kind)
    with open(path, "rb") as fh:
        start = fh.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ImportFileError(f"{name} is UTF-16/UTF-32 encoded: save it as UTF-8 (with or without BOM)", kind)
    _check_utf8(path, name, kind, end=None if whole_file else ENCODING_PROBE_BYTES)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            first_row = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except UnicodeDecodeError:
        # Only the first MiB was checked, and the first data row lies beyond it (blank lines).
        _check_utf8(path, name, kind)
        raise
    columns = [c.strip() for c in header or []]
    if not any(columns):
        raise ImportFileError(f"{name} has no header row: the first line must name the {kind} columns", kind)
    missing = [c for c in expected if c not in columns]
    if missing:
        hint = ""
        if not [c for c in other if c not in columns]:
            hint = f" (this looks like the {other_kind} file: were the two files swapped?)"
        elif len(columns) == 1 and any(sep in columns[0] for sep in (";", "\t", "|")):
            hint = " (the header is one column: the file must be comma-separated)"
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ImportFileError(f"{name} lacks required {kind} column(s): {shown}{hint}", kind)
    if first_row is None:
        raise ImportFileError(f"{name} has a header but no data rows", kind)
    extra = [c for c in columns if c and c not in expected]
    return CsvInfo(path, name, kind, size, columns, extra)


def _check_utf8(path: Path, name: str, kind: str, *, start: int = 0, end: int | None = None, line: int = 1) -> None:
    """Find the first byte that is not UTF-8 in ``[start, end)`` (the whole file by default; ``line``
    is the line number at ``start``) and report its line (the CSV reader would only say that
    decoding failed somewhere)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = start
    lines = line
    size = path.stat().st_size
    end = size if end is None else min(end, size)
    with open(path, "rb") as fh:
        fh.seek(start)
        while offset < end and (block := fh.read(min(8 * 1024 * 1024, end - offset))):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                bad = max(0, exc.start - len(decoder.getstate()[0]))
                line = lines + block.count(b"\n", 0, bad)
                raise ImportFileError(
                    f"{name} is not UTF-8 text: byte 0x{block[bad]:02X} on line {line} "
                    f"(position {offset + bad}); save the file as UTF-8 (with or without BOM)",
                    kind,
                ) from None
            offset += len(block)
            lines += block.count(b"\n")
        if end < size:
            return  # a character may go on past ``end``
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportFileError(f"{name} is not UTF-8 text: it ends in the middle of a character", kind) from None


def _estimate_rows(info: CsvInfo) -> int:
    with open(info.path, "rb") as fh:
        sample = fh.read(1024 * 1024)
    lines = max(1, sample.count(b"\n"))
    return max(1, int(info.size / (len(sample) / lines)) - 1)


def _record_starts(path: Path, parts: int) -> tuple[list[int], list[int]]:
    """Byte offsets that split a CSV file's data rows into up to ``parts`` ranges, and the line
    number each range starts on. Every range starts at a record: after a line break with an even
    number of quote characters before it (not inside a quoted value); the first one after the header."""
    size = path.stat().st_size
    targets = [0] + [size * k // parts for k in range(1, parts)]
    starts: list[int] = []
    lines: list[int] = []
    quotes = newlines = offset = 0
    block_size = 16 * 1024 * 1024
    with open(path, "rb") as fh:
        while targets and (block := fh.read(block_size)):
            at = 0
            while targets:
                begin = max(at, targets[0] - offset)
                if begin >= len(block):
                    break
                found = block.find(b"\n", begin)
                if found < 0:
                    break
                if (quotes + block.count(b'"', 0, found)) % 2 == 0:
                    starts.append(offset + found + 1)
                    lines.append(1 + newlines + block.count(b"\n", 0, found + 1))
                    targets.pop(0)
                at = found + 1
            quotes += block.count(b'"')
            newlines += block.count(b"\n")
            offset += len(block)
    if not starts:
        # No line feed at all (old Mac files end lines with CR alone): one range, header included.
        return [(0, size)], [1]
    ends = [*starts[1:], size]
    pairs = [(s, e, n) for s, e, n in zip(starts, ends, lines, strict=True) if e > s]
    return [(s, e) for s, e, _ in pairs], [n for _s, _e, n in pairs]


class _ByteRange(io.RawIOBase):
    """``length`` bytes of an open binary file from its current position."""

    def __init__(self, fh: BinaryIO, length: int):
        self.fh, self.left = fh, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            return 0
        count = self.fh.readinto(memoryview(buffer)[: min(len(buffer), self.left)])
        self.left -= count
        return count


@dataclass
class _ReadTask:
    """One byte range of a file to split into bucket pickles (in a worker process for large files)."""

    path: str
    name: str
    kind: str
    columns: list[str]
    expected: tuple[str, ...]
    workdir: str
    buckets: int
    part: int
    start: int
    end: int
    first_line: int


def _read_part(task: _ReadTask) -> tuple[int, np.ndarray]:
    """Split one range of a file into ``{kind}_{bucket}_{part}.pkl`` pickles of raw string frames
    (``_row`` counts the range's data rows from 0); return its row count and rows per bucket.
    Short rows are padded with empty cells (validation names what is missing); a row with more
    fields than the header makes the file malformed."""
    rows = 0
    per_bucket = np.zeros(task.buckets, dtype=np.int64)
    positions = [task.columns.index(c) for c in task.expected]
    workdir = Path(task.workdir)
    with open(task.path, "rb") as raw, warnings.catch_warnings():
        # pandas only warns (and drops the cells) when the first row of a range is the long one:
        # that row is checked here, and pandas' warning about short rows (padded) is not needed.
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        _check_first_row(raw, task)
        raw.seek(task.start)
        stream = io.BufferedReader(_ByteRange(raw, task.end - task.start), buffer_size=1024 * 1024)
        try:
            reader = pd.read_csv(
                stream,
                header=None,
                names=list(range(len(task.columns))),
                index_col=False,
                skiprows=1 if task.start == 0 else None,  # the header, when the range starts with it
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                chunksize=READ_CHUNK_ROWS,
                skip_blank_lines=True,
            )
            for chunk in reader:
                chunk = chunk.iloc[:, positions]
                chunk.columns = list(task.expected)
                chunk["_row"] = np.arange(rows, rows + len(chunk))
                rows += len(chunk)
                ids = chunk["household_id"].astype(str).str.strip()
                bucket = pd.util.hash_pandas_object(ids, index=False).to_numpy() % task.buckets
                for b, part in chunk.groupby(bucket, sort=False):
                    _append(workdir / f"{task.kind}_{int(b)}_{task.part}.pkl", part)
                    per_bucket[int(b)] += len(part)
        except pd.errors.EmptyDataError:
            pass
        except UnicodeDecodeError:
            _check_utf8(Path(task.path), task.name, task.kind, start=task.start, end=task.end, line=task.first_line)
            raise ImportFileError(f"{task.name} is not UTF-8 text; save it as UTF-8", task.kind) from None
        except pd.errors.ParserError as exc:
            # pandas counts lines from the start of the range.
            message = re.sub(r"line (\d+)", lambda m: f"line {task.first_line - 1 + int(m.group(1))}", str(exc))
            raise ImportFileError(f"{task.name} is not a well-formed CSV file: {message}", task.kind) from None
    return rows, per_bucket


def _check_first_row(raw: BinaryIO, task: _ReadTask) -> None:
    """Refuse a range whose first data row has more cells than the header (pandas would drop them)."""
    raw.seek(task.start)
    head = raw.read(min(task.end - task.start, 1024 * 1024)).decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(head, newline=""))
    if task.start == 0:
        next(rows, None)  # the header
    first = next(rows, None)
    if first is not None and len(first) > len(task.columns):
        line = task.first_line + (1 if task.start == 0 else 0)
        raise ImportFileError(
            f"{task.name} is not a well-formed CSV file: line {line} has {len(first)} fields, the header "
            f"names {len(task.columns)}",
            task.kind,
        )


@dataclass
class _SplitFile:
    """A file split into bucket pickles: its data rows, rows per bucket and the row number of each
    range's first data row (row numbers count the header as row 1)."""

    rows: int
    per_bucket: np.ndarray
    row_offsets: list[int]


def _split(
    info: CsvInfo, expected: tuple[str, ...], workdir: Path, buckets: int, progress: Progress, pool=None, parts=1
) -> _SplitFile:
    """Stream a file into per-bucket pickles of raw string frames, in ``parts`` byte ranges read by
    the ``pool``'s processes when there is one."""
    ranges, first_lines = _record_starts(info.path, parts if pool is not None else 1)
    tasks = [
        _ReadTask(str(info.path), info.name, info.kind, info.columns, expected, str(workdir), buckets, i, s, e, n)
        for i, ((s, e), n) in enumerate(zip(ranges, first_lines, strict=True))
    ]
    progress("read " + info.kind, 0, info.size // 1024)
    try:
        results = pool.map(_read_part, tasks) if pool is not None else [_read_part(t) for t in tasks]
    except ImportFileError:
        if len(tasks) == 1:
            raise
        # A quote inside an unquoted value (pandas reads it as a character) misleads the quote
        # counting of _record_starts. A range can then start inside a quoted value, which leaves the
        # range before it ending inside quotes: pandas refuses that one. Read the file again as one
        # range; an error then is the file's own, with its true line number.
        for stale in workdir.glob(f"{info.kind}_*.pkl"):
            stale.unlink()
        (start, end), first_line = (r[0] for r in _record_starts(info.path, 1))
        tasks = [replace(tasks[0], part=0, start=start, end=end, first_line=first_line)]
        results = [_read_part(tasks[0])]
    progress("read " + info.kind, info.size // 1024, info.size // 1024)
    offsets, rows = [], 0
    for part_rows, _ in results:
        offsets.append(rows + 2)
        rows += part_rows
    per_bucket = np.sum([b for _, b in results], axis=0) if results else np.zeros(buckets, dtype=np.int64)
    return _SplitFile(rows, per_bucket, offsets)


def _append(path: Path, frame: pd.DataFrame) -> None:
    with open(path, "ab") as fh:
        pickle.dump(frame, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _load(workdir: Path, kind: str, bucket: int, row_offsets: list[int], columns: tuple[str, ...]) -> pd.DataFrame:
    """A bucket's rows of one file, from every range, with their row numbers in the file."""
    frames = []
    for part, offset in enumerate(row_offsets):
        path = workdir / f"{kind}_{bucket}_{part}.pkl"
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            while True:
                try:
                    frame = pickle.load(fh)  # noqa: S301 - our own files in a private folder
                except EOFError:
                    break
                frame["_row"] += offset
                frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*columns, "_row")})
    return pd.concat(frames, ignore_index=True)


# --- validating one bucket (runs in worker processes) ------------------------------------


@dataclass
class _BucketTask:
    workdir: str
    bucket: int
    union_area_types: dict[str, int]
    scope: tuple[str, ...] | None
    dialect: str
    households_file: str
    members_file: str
    household_row_offsets: list[int] = field(default_factory=list)
    member_row_offsets: list[int] = field(default_factory=list)
    #: PostgreSQL: the new registry ids of the bucket's household rows (one per row, in order) and
    #: the constant ends of its COPY lines, so that the workers render the final rows.
    ids: np.ndarray | None = None
    household_tail: str = ""
    version_tail: str = ""


@dataclass
class _BucketResult:
    bucket: int
    households: int
    members: int
    matched_members: int
    issues: list[tuple]
    household_payload: object
    member_payload: object


def _process_bucket(task: _BucketTask) -> _BucketResult:
    """Validate one bucket (households with all their members) and render its staging rows."""
    workdir = Path(task.workdir)
    households = _load(workdir, "households", task.bucket, task.household_row_offsets, HOUSEHOLD_FIELD_NAMES)
    members = _load(workdir, "members", task.bucket, task.member_row_offsets, MEMBER_FIELD_NAMES)
    result = validate_records(
        households,
        members,
        union_area_types=task.union_area_types,
        households_file=task.households_file,
        members_file=task.members_file,
    )
    typed_h, typed_m = result.households, result.members
    if task.ids is not None:
        if len(task.ids) != len(typed_h):
            raise RuntimeError(f"bucket {task.bucket}: {len(typed_h)} household rows, {len(task.ids)} ids")
        typed_h["pk"] = task.ids
    issues = list(result.issues)
    ids = typed_h["household_id"]
    if task.scope is not None:
        unions = typed_h["union_code"]
        outside = unions.notna() & ~unions.fillna("").str.startswith(task.scope)
        rule = f"outside the importing user's assigned areas ({', '.join(task.scope) or 'none'})"
        issues += _issues(task.households_file, typed_h, outside, "union_code", rule)

    bad_ids = {i.household_id for i in issues if i.household_id}
    typed_h["ok"] = ids.notna() & ~ids.isin(bad_ids).fillna(False).astype(bool)
    nids = typed_m["nid_number"]
    typed_m["nid_dup"] = (nids.notna() & nids.duplicated(keep="first")).astype(bool)
    typed_h = typed_h.rename(columns={"_row": "src_row"})
    typed_m = typed_m.rename(columns={"_row": "src_row"})
    typed_h = typed_h[typed_h["household_id"].notna()]
    typed_m = typed_m[typed_m["household_id"].notna()]
    matched = int(typed_m["household_id"].isin(set(ids.dropna())).sum())
    if task.dialect == "postgresql":
        hh_payload, m_payload = _direct_rows(typed_h, typed_m, task), None
    else:
        hh_payload = _payload(typed_h, import_sql.HOUSEHOLD_STAGE_COLUMNS, task.dialect)
        m_payload = _payload(typed_m, import_sql.MEMBER_STAGE_COLUMNS, task.dialect)
    return _BucketResult(
        task.bucket,
        len(households),
        len(members),
        matched,
        [(i.file, i.row, i.household_id, i.field, i.value, i.rule) for i in issues],
        hh_payload,
        m_payload,
    )


@dataclass
class _DirectRows:
    """One bucket rendered for :class:`registry.import_sql.DirectLoad` (PostgreSQL): complete COPY
    lines, new registry ids included."""

    #: Registry ids of every household row of the bucket (to find those already registered).
    all_household_ids: list[str]
    #: The importable (valid) households: registry ids and COPY lines for ``households`` and
    #: ``household_versions``.
    household_ids: list[str]
    household_lines: list[str]
    version_lines: list[str]
    #: Their members' COPY lines (without line breaks), and each one's household as an index into
    #: ``household_ids``.
    member_lines: list[str]
    member_slots: np.ndarray
    #: ``(nid, household_id)`` of every member row with a national ID, and the same as COPY text
    #: for the import's key table (nid, row, household id, repeated within the bucket).
    nid_pairs: list[tuple[str, str]]
    nid_keys: str

    def subset(self, household_ids: set[str]) -> _DirectRows:
        """Only these importable households (the rest are skipped, or held back until the end)."""
        keep = np.array([h in household_ids for h in self.household_ids], dtype=bool)
        new_slot = np.cumsum(keep) - 1
        member_keep = keep[self.member_slots] if len(self.member_slots) else np.zeros(0, dtype=bool)
        return _DirectRows(
            [],
            [h for h, k in zip(self.household_ids, keep, strict=True) if k],
            [line for line, k in zip(self.household_lines, keep, strict=True) if k],
            [line for line, k in zip(self.version_lines, keep, strict=True) if k],
            [line for line, k in zip(self.member_lines, member_keep, strict=True) if k],
            new_slot[self.member_slots[member_keep]],
            [],
            "",
        )


def _direct_rows(typed_h: pd.DataFrame, typed_m: pd.DataFrame, task: _BucketTask) -> _DirectRows:
    """Render a validated bucket as the final COPY lines (in the worker processes)."""
    ok = typed_h["ok"].to_numpy(dtype=bool)
    households = typed_h.loc[ok].copy()
    unions = households["union_code"].astype(str)
    households["upazila_code"] = unions.str[:6]
    households["district_code"] = unions.str[:4]
    households["division_code"] = unions.str[:2]
    ids = households["household_id"].to_numpy(dtype=object)
    pks = [str(pk) for pk in households["pk"].tolist()]
    slot = pd.Index(ids).get_indexer(typed_m["household_id"].to_numpy(dtype=object))
    members = typed_m.loc[slot >= 0]
    slot = slot[slot >= 0]
    # Members in household and line order: the unique (household_pk, line_no) index is filled in order.
    order = np.lexsort((members["line_no"].to_numpy(dtype=float, na_value=np.nan), slot))
    members, slot = members.iloc[order], slot[order].astype(np.int64)
    keys = typed_m.loc[typed_m["nid_number"].notna(), list(import_sql.NID_KEY_COLUMNS)]
    household_tail, version_tail = task.household_tail, task.version_tail
    pk_texts = np.array(pks, dtype=object)
    # Each line is one join over the columns, the ids and the constant ends included.
    household_cells = [_texts(households[c]) for c in import_sql.DIRECT_HOUSEHOLD_COLUMNS]
    member_cells = [_texts(members[c]) for c in import_sql.MEMBER_COLUMNS]
    return _DirectRows(
        all_household_ids=typed_h["household_id"].tolist(),
        household_ids=ids.tolist(),
        household_lines=list(
            map(",".join, zip(*household_cells, pk_texts, itertools.repeat(household_tail), strict=False))
        ),
        version_lines=[pk + version_tail for pk in pks],
        member_lines=list(map(",".join, zip(pk_texts[slot], *member_cells, strict=True))),
        member_slots=slot,
        nid_pairs=list(zip(keys["nid_number"].tolist(), keys["household_id"].tolist(), strict=True)),
        nid_keys=_payload(keys, import_sql.NID_KEY_COLUMNS, "postgresql"),
    )


def _texts(series: pd.Series) -> np.ndarray:
    """A typed column as COPY text per row (empty when missing): booleans as t/f, dates as ISO
    text. Whole-column numpy conversions; each distinct string is quoted once."""
    dtype = series.dtype
    missing = series.isna().to_numpy()
    if isinstance(dtype, pd.BooleanDtype):
        values = series.to_numpy(dtype=bool, na_value=False)
        out = np.where(values, "t", "f").astype(object)
    elif isinstance(dtype, (pd.Int64Dtype, pd.Float64Dtype)) or pd.api.types.is_numeric_dtype(dtype):
        numbers = series.to_numpy(dtype=float if isinstance(dtype, pd.Float64Dtype) else np.int64, na_value=0)
        codes, uniques = pd.factorize(numbers)
        out = np.array([str(v) for v in uniques.tolist()], dtype=object)[codes]
    elif series.name in _DATE_COLUMNS:
        codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
        out = np.array([d.isoformat() for d in uniques] + [""], dtype=object)[codes]
    else:
        codes, uniques = pd.factorize(series.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
        out = np.array([import_sql.csv_cell(v) for v in uniques] + [""], dtype=object)[codes]
    out[missing] = ""
    return out


def _issues(file: str, frame: pd.DataFrame, mask: pd.Series, column: str, rule: str) -> list[Issue]:
    mask = mask.fillna(False).astype(bool)
    return [
        Issue(file, int(row), hh, column, "" if value is pd.NA else str(value), rule)
        for row, hh, value in zip(
            frame.loc[mask, "_row"], frame.loc[mask, "household_id"], frame.loc[mask, column], strict=True
        )
    ]


def _payload(frame: pd.DataFrame, columns: tuple[str, ...], dialect: str):
    """Staging rows: CSV text for PostgreSQL's COPY, tuples for SQLite's executemany."""
    if dialect == "postgresql":
        lines = _csv_lines(frame, columns)
        return "\n".join(lines) + "\n" if lines else ""
    frame = frame.loc[:, list(columns)]
    out = []
    for column in columns:
        values = frame[column].astype(object).where(frame[column].notna(), None).tolist()
        if values and column in _DATE_COLUMNS:
            values = [v.isoformat() if v is not None else None for v in values]
        out.append(values)
    return list(zip(*out, strict=True))


def _csv_lines(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    """One CSV line (no newline) per row for PostgreSQL's COPY: an empty unquoted cell is NULL;
    texts are quoted where CSV needs it."""
    if not len(frame):
        return []
    return list(map(",".join, zip(*(_texts(frame[c]) for c in columns), strict=True)))


_DATE_COLUMNS = {"interview_date", "consent_date", "date_of_birth"}


# --- the import --------------------------------------------------------------------------


def worker_pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker processes for reading and validating, started fresh (``spawn``: no copy of the
    parent's database connections or threads) and without the program's main module.

    By default ``spawn`` runs the parent's main module again in every worker. Ours run only this
    module's functions, which they import themselves; for ``socreg`` the main module is the whole
    command line (measured 3.3 s of imports per worker against 1.3 s for this module), and in a
    script without an ``if __name__ == "__main__"`` guard it would start the import again."""
    main = sys.modules["__main__"]
    hidden = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        # The workers start here, and read what to prepare from the main module as they do.
        return multiprocessing.get_context("spawn").Pool(workers)
    finally:
        main.__dict__.update(hidden)


def _no_progress(phase: str, done: int, total: int | None) -> None:
    return None


def import_files(
    households_path: str | Path,
    members_path: str | Path,
    *,
    actor: User | None,
    skip_invalid: bool = False,
    source: str = "import",
    source_ref: str | None = None,
    report_path: str | Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    bucket_households: int = BUCKET_HOUSEHOLDS,
    households_name: str | None = None,
    members_name: str | None = None,
) -> ImportResult:
    """Validate and import the two files in the caller's transaction (flushed, not committed).

    ``actor`` (a supervisor or an admin; None for the system) is recorded on every version and
    on the audit event; a supervisor may only import households of their own areas.
    ``source_ref`` names the run (``job:<id>``). Issues are written to ``report_path`` (CSV:
    file, row, household_id, field, value, rule) when there are any. When the result is
    rejected, nothing was written; the caller rolls back (and may call
    :func:`audit_rejected_import`). File-level problems raise :class:`ImportFileError`.
    """
    started = time.perf_counter()
    progress = progress or _no_progress
    scope = None
    if actor is not None:
        require_role(actor, *IMPORT_ROLES)
        if not has_national_scope(actor):
            scope = tuple(actor.area_codes)
    # The reading checks the encoding as it decodes (in the worker processes for large files).
    hh_info = inspect_csv(households_path, "households", households_name, whole_file=False)
    m_info = inspect_csv(members_path, "members", members_name, whole_file=False)
    result = ImportResult(outcome="imported", skip_invalid=skip_invalid, source_ref=source_ref)
    for info in (hh_info, m_info):
        if info.extra_columns:
            result.warnings.append(f"{info.name}: ignored unknown column(s) {', '.join(info.extra_columns)}")
    phases: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="socreg-import-"))
    counter: Counter[str] = Counter()
    issues_file = workdir / "issues.csv"
    pool = None
    try:
        estimate = _estimate_rows(hh_info)
        buckets = max(1, -(-estimate // max(1, bucket_households)))
        if workers is None:
            workers = min(os.cpu_count() or 1, 4) if estimate >= PARALLEL_MIN_HOUSEHOLDS else 1
        workers = max(1, min(workers, buckets))
        if workers > 1:
            # The same processes read the files (in byte ranges) and then validate the buckets.
            pool = worker_pool(workers)
        t = time.perf_counter()
        hh_split = _split(hh_info, HOUSEHOLD_FIELD_NAMES, workdir, buckets, progress, pool, workers)
        m_split = _split(m_info, MEMBER_FIELD_NAMES, workdir, buckets, progress, pool, workers)
        result.households_in_file, result.members_in_file = hh_split.rows, m_split.rows
        phases["read"] = time.perf_counter() - t

        conn = db.session.connection()
        plan = _Plan(conn.dialect.name, workdir, buckets, scope, hh_info, m_info, hh_split, m_split, pool, workers)
        now = utcnow()
        actor_id = actor.id if actor is not None else None
        with open(issues_file, "w", encoding="utf-8", newline="") as report:
            writer = csv.writer(report)

            def stream(load) -> None:
                t = time.perf_counter()
                stats = _validate_and_stage(load, plan, writer, counter, progress)
                phases["validate"] = time.perf_counter() - t - stats["stage"]
                phases["load" if conn.dialect.name == "postgresql" else "stage"] = stats["stage"]
                if result.members_in_file and not stats["matched_members"]:
                    raise ImportFileError(
                        f"{m_info.name}: none of its {result.members_in_file} rows belongs to a household in "
                        f"{hh_info.name}; are these the right files?",
                        "members",
                    )

            def nid_issue(kind: str, row: int, household_id: str, nid: str) -> None:
                rule = NID_DUPLICATE_RULE if kind == "duplicate" else NID_REGISTERED_RULE
                _write_issue(writer, counter, (m_info.name, row, household_id, "nid_number", nid, rule))

            write = {"now": now, "actor_id": actor_id, "source": source, "source_ref": source_ref}
            if conn.dialect.name == "postgresql":
                loaded = _import_direct(
                    conn,
                    stream,
                    nid_issue,
                    counter,
                    skip_invalid,
                    workdir,
                    phases,
                    progress,
                    write,
                    result.households_in_file,
                )
            else:
                loaded = _import_staged(conn, stream, nid_issue, counter, skip_invalid, phases, progress, write)

        result.issue_count = sum(counter.values())
        result.issues_by_rule = dict(counter.most_common())
        result.households_already_registered = loaded.already_registered
        result.households_rejected = max(0, result.households_in_file - loaded.importable - loaded.already_registered)
        if loaded.rejected:
            result.outcome = "rejected"
        else:
            result.households_imported, result.members_imported = loaded.households, loaded.members
            if loaded.id_range is not None:
                # Duplicate-matching keys are Python work per person: a background job builds them.
                enqueue("dedup.index", {"households": list(loaded.id_range)}, actor=actor)
            record_event(
                actor,
                "import.completed",
                "import",
                source_ref,
                summary=f"{source}: {result.message()}"[:500],
                after=_counts(result),
            )
        if result.issue_count:
            result.first_issues, written = _finish_report(issues_file, report_path, result.issue_count)
            result.report_path = written
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        shutil.rmtree(workdir, ignore_errors=True)
    result.phases = {k: round(v, 2) for k, v in phases.items()}
    result.duration_s = round(time.perf_counter() - started, 2)
    log.info("import %s: %s in %.1f s %s", source_ref, result.message(), result.duration_s, result.phases)
    return result


@dataclass
class _Loaded:
    """What an import wrote (or, when ``rejected``, would have written)."""

    rejected: bool
    already_registered: int
    importable: int = 0
    households: int = 0
    members: int = 0
    id_range: tuple[int, int] | None = None


def _import_staged(conn, stream, nid_issue, counter, skip_invalid, phases, progress, write) -> _Loaded:
    """SQLite: stage every bucket, check, then insert from the staging tables."""
    staging = import_sql.create_staging(conn)
    stream(_stage_rows(staging))
    t = time.perf_counter()
    progress("check", 0, None)
    import_sql.index_and_analyze(staging)
    already = import_sql.mark_registered(staging)
    conflicted: set[str] = set()
    for kind, row, household_id, nid in import_sql.nid_conflicts(staging):
        nid_issue(kind, row, household_id, nid)
        conflicted.add(household_id)
    import_sql.reject_households(staging, conflicted)
    importable, importable_members = import_sql.count_importable(staging)
    phases["check"] = time.perf_counter() - t
    if sum(counter.values()) and not skip_invalid:
        import_sql.drop_staging(staging)
        return _Loaded(rejected=True, already_registered=already, importable=importable)
    t = time.perf_counter()
    progress("insert", 0, importable)
    households, members, id_range = import_sql.insert_households(staging, **write)
    if (households, members) != (importable, importable_members):
        raise RuntimeError(f"import inserted {households}/{members} rows, expected {importable}/{importable_members}")
    import_sql.drop_staging(staging)
    progress("insert", importable, importable)
    phases["insert"] = time.perf_counter() - t
    return _Loaded(False, already, importable, households, members, id_range)


class _DirectImport:
    """PostgreSQL: each validated bucket goes straight into the registry tables (COPY) while the
    next ones are validated, in a savepoint of the caller's transaction; see
    :class:`registry.import_sql.DirectLoad`.

    A household none of whose national IDs is held yet is written at once. One whose ID is held
    by a registry member is never written (the end check reports it). One whose ID is held by a
    household written earlier in this import waits on disk until the end: the rows are then ranked
    in file order, the later occurrences are rejected (deleted if already written) and the
    waiting households that came first are written. All or nothing: once any problem is seen
    without ``skip_invalid``, nothing more is written and the savepoint is rolled back at the end.
    """

    def __init__(self, conn, *, skip_invalid: bool, workdir: Path, write: dict, households_in_file: int = 0):
        self.load = import_sql.begin_direct_load(conn, defer_indexes=households_in_file >= DEFER_INDEXES_FROM)
        self.skip_invalid = skip_invalid
        self.household_tail, self.version_tail = import_sql.line_tails(**write)
        self.doomed = False
        self.households = self.members = self.already_registered = self.importable = 0
        self.held_path = workdir / "held.pkl"
        #: National IDs written so far, when no registry member held one at the start: they answer
        #: "is this ID taken?" without an index probe per key (None: probe the index).
        self.written_nids: set[str] | None = None if self.load.had_nids else set()

    def __call__(self, res: _BucketResult) -> None:
        rows: _DirectRows = res.household_payload
        load = self.load
        load.copy(load.keys, import_sql.NID_KEY_COLUMNS, rows.nid_keys)
        registered = load.registered_households([h for h in rows.all_household_ids if h is not None])
        self.already_registered += len(registered)
        pairs = [p for p in rows.nid_pairs if p[1] not in registered] if registered else rows.nid_pairs
        blocked: set[str] = set()
        held: set[str] = set()
        if self.written_nids is None:
            # Probe the unique index: an ID held by a registry member blocks its household; one held by
            # this import (an earlier bucket) holds it back until the ranking at the end.
            if hits := dict(load.nid_holders([nid for nid, _ in pairs])):
                theirs = {nid for nid, pk in hits.items() if not load.is_ours(pk)}
                blocked = {household_id for nid, household_id in pairs if nid in theirs}
                held = {household_id for nid, household_id in pairs if nid in hits and nid not in theirs}
                if theirs:
                    load.note_registered_nids(theirs)
        else:
            # No registry member held an ID when the import began: only this import's IDs can clash.
            written = self.written_nids
            held = {household_id for nid, household_id in pairs if nid in written}
        held -= blocked
        valid = set(rows.household_ids)
        importable = valid - registered - blocked - held
        self.importable += len(importable) + len(held & valid)
        if (res.issues or blocked or held) and not self.skip_invalid:
            self.doomed = True
        if self.doomed:
            return
        if held:
            with open(self.held_path, "ab") as fh:
                pickle.dump(rows.subset(held), fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._write(rows if len(importable) == len(rows.household_ids) else rows.subset(importable))
        if self.written_nids is not None:
            self.written_nids.update(nid for nid, household_id in pairs if household_id in importable)
            if len(self.written_nids) > WRITTEN_NIDS_IN_MEMORY:
                self.written_nids = None  # bounded memory: the index answers from here on

    def prepare(self, task: _BucketTask, household_rows: int) -> None:
        """Give a bucket's household rows their registry ids before it is validated."""
        task.ids = np.array(self.load.allocate(household_rows), dtype=np.int64)
        task.household_tail, task.version_tail = self.household_tail, self.version_tail

    def _write(self, rows: _DirectRows) -> None:
        households, members = self.load.write(rows.household_lines, rows.member_lines, rows.version_lines)
        expected = (len(rows.household_lines), len(rows.member_lines))
        if (households, members) != expected:
            raise RuntimeError(f"import wrote {households}/{members} rows, expected {expected[0]}/{expected[1]}")
        self.households += households
        self.members += members

    def finish(self, nid_issue, counter, progress, phases) -> _Loaded:
        """Settle what spans buckets, then undo everything (rejected) or complete the import."""
        conflicted: set[str] = set()
        for kind, row, household_id, nid in self.load.nid_conflicts():
            nid_issue(kind, row, household_id, nid)
            conflicted.add(household_id)
        if sum(counter.values()) and not self.skip_invalid:
            self.load.rollback()
            return _Loaded(True, self.already_registered, max(0, self.importable - len(conflicted)))
        if self.load.deferred:
            t = time.perf_counter()
            total = len(self.load.deferred)
            progress("index", 0, total)
            self.load.restore(progress=lambda done: progress("index", done, total))
            phases["index"] = time.perf_counter() - t
        deleted, deleted_members = self.load.delete_ours(conflicted)
        self.households -= deleted
        self.members -= deleted_members
        if self.held_path.exists():
            with open(self.held_path, "rb") as fh:
                while True:
                    try:
                        rows: _DirectRows = pickle.load(fh)  # noqa: S301 - our own file in a private folder
                    except EOFError:
                        break
                    self._write(rows.subset(set(rows.household_ids) - conflicted))
        self.load.release()
        ranges = self.load.ranges
        id_range = (ranges[0][0], ranges[-1][1]) if ranges and self.households else None
        return _Loaded(False, self.already_registered, self.households, self.households, self.members, id_range)


def _import_direct(
    conn, stream, nid_issue, counter, skip_invalid, workdir, phases, progress, write, households_in_file
) -> _Loaded:
    direct = _DirectImport(
        conn, skip_invalid=skip_invalid, workdir=workdir, write=write, households_in_file=households_in_file
    )
    try:
        stream(direct)
        t = time.perf_counter()
        progress("check", 0, None)
        loaded = direct.finish(nid_issue, counter, progress, phases)
        phases["check"] = time.perf_counter() - t - phases.get("index", 0)
        return loaded
    except BaseException:
        # Leave nothing behind even when the caller would commit what is left of its transaction.
        with contextlib.suppress(Exception):
            direct.load.rollback()
        raise


def _stage_rows(staging):
    """The SQLite path's loader: a bucket's rows into the staging tables."""

    def load(res: _BucketResult) -> None:
        columns = import_sql.HOUSEHOLD_STAGE_COLUMNS
        import_sql.insert_rows(staging, staging.households, columns, res.household_payload)
        import_sql.insert_rows(staging, staging.members, import_sql.MEMBER_STAGE_COLUMNS, res.member_payload)

    return load


@dataclass
class _Plan:
    """How an import's buckets are validated, settled once both files are read."""

    dialect: str
    workdir: Path
    buckets: int
    #: The importing user's area codes (None: national scope).
    scope: tuple[str, ...] | None
    hh_info: CsvInfo
    m_info: CsvInfo
    hh_split: _SplitFile
    m_split: _SplitFile
    pool: multiprocessing.pool.Pool | None
    workers: int


def _validate_and_stage(load, plan: _Plan, writer, counter, progress) -> dict:
    """Validate every bucket (in worker processes for large files) and hand each result to
    ``load`` as it comes, in this process; ``load.prepare(task, household_rows)``, if it exists,
    completes each task before it is dispatched. Returns the time spent loading and the member
    rows that matched a household."""
    union_types = read_union_area_types()
    hh_split, pool = plan.hh_split, plan.pool
    households = hh_split.rows
    tasks = [
        _BucketTask(
            str(plan.workdir),
            b,
            union_types,
            plan.scope,
            plan.dialect,
            plan.hh_info.name,
            plan.m_info.name,
            hh_split.row_offsets,
            plan.m_split.row_offsets,
        )
        for b in range(plan.buckets)
    ]
    stats = {"stage": 0.0, "matched_members": 0}
    done = 0

    prepare = getattr(load, "prepare", None) or (lambda task, rows: None)

    def dispatch(task: _BucketTask) -> _BucketTask:
        prepare(task, int(hh_split.per_bucket[task.bucket]))
        return task

    def consume(res: _BucketResult) -> None:
        nonlocal done
        for issue in res.issues:
            _write_issue(writer, counter, issue)
        t = time.perf_counter()
        load(res)
        stats["stage"] += time.perf_counter() - t
        stats["matched_members"] += res.matched_members
        done += res.households
        progress("validate", done, households)

    if pool is None:
        for task in tasks:
            consume(_process_bucket(dispatch(task)))
    else:
        # Worker processes validate while this process streams finished buckets into the database.
        # At most RESULTS_IN_FLIGHT_PER_WORKER buckets per worker are queued or finished but not
        # yet loaded: ``imap`` would let finished buckets pile up in memory whenever loading is
        # slower than validating.
        window = plan.workers * RESULTS_IN_FLIGHT_PER_WORKER
        queue: deque = deque()
        remaining = iter(tasks)
        for task in itertools.islice(remaining, window):
            queue.append(pool.apply_async(_process_bucket, (dispatch(task),)))
        while queue:
            res = queue.popleft().get()
            task = next(remaining, None)
            if task is not None:
                queue.append(pool.apply_async(_process_bucket, (dispatch(task),)))
            consume(res)
    return stats


def _write_issue(writer, counter: Counter, issue: tuple) -> None:
    writer.writerow(issue)
    counter[f"{issue[3]}: {issue[5]}"] += 1


#: Reports longer than this are left in bucket order instead of being sorted in memory.
SORT_REPORT_MAX = 2_000_000


def _finish_report(issues_file: Path, report_path, issue_count: int) -> tuple[list[dict], str | None]:
    """Sort the issues by file and row, write the report, and return the first few issues."""
    if issue_count > SORT_REPORT_MAX:
        first = []
        with open(issues_file, encoding="utf-8", newline="") as fh:
            for row, _ in zip(csv.reader(fh), range(FIRST_ISSUES), strict=False):
                record = dict(zip(REPORT_COLUMNS, row, strict=True))
                record["row"] = int(record["row"]) if record["row"] else None
                record["household_id"] = record["household_id"] or None
                first.append(record)
        if report_path is None:
            return first, None
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        with open(report_path, "w", encoding="utf-8", newline="") as out, open(issues_file, "rb") as src:
            out.write(",".join(REPORT_COLUMNS) + "\n")
            out.flush()
            shutil.copyfileobj(src, out.buffer)
        return first, str(report_path)
    frame = pd.read_csv(
        issues_file, header=None, names=list(REPORT_COLUMNS), dtype=object, keep_default_na=False, na_filter=False
    )
    frame["row"] = pd.to_numeric(frame["row"], errors="coerce").astype("Int64")
    # Households file first, then members, each in file order.
    frame["_kind"] = (frame["file"] != frame["file"].iloc[0]).astype(int)
    frame = frame.sort_values(["_kind", "file", "row"], kind="stable").drop(columns="_kind")
    first = []
    for record in frame.head(FIRST_ISSUES).to_dict("records"):
        record["row"] = None if record["row"] is pd.NA else int(record["row"])
        record["household_id"] = record["household_id"] or None
        first.append(record)
    if report_path is None:
        return first, None
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(report_path, index=False, encoding="utf-8")
    return first, str(report_path)


def _counts(result: ImportResult) -> dict:
    return {
        "households_in_file": result.households_in_file,
        "members_in_file": result.members_in_file,
        "households_imported": result.households_imported,
        "members_imported": result.members_imported,
        "households_already_registered": result.households_already_registered,
        "households_rejected": result.households_rejected,
        "issues": result.issue_count,
        "skip_invalid": result.skip_invalid,
    }


def audit_rejected_import(result: ImportResult, actor: User | None) -> None:
    """Record a rejected import (after the caller rolled its transaction back): who tried what."""
    record_event(
        actor,
        "import.rejected",
        "import",
        result.source_ref,
        summary=result.message()[:500],
        after=_counts(result),
    )


def default_report_name(now: dt.datetime | None = None) -> str:
    """``import-report-<UTC timestamp>.csv``, the CLI's default report file name."""
    return f"import-report-{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}.csv"


# --- submitting, listing and showing import jobs ------------------------------------------


def submit_import(
    upload_root: str | Path,
    households: BinaryIO,
    members: BinaryIO,
    *,
    actor: User,
    skip_invalid: bool = False,
    households_name: str = "households.csv",
    members_name: str = "members.csv",
) -> Job:
    """Store two uploaded files under ``upload_root/imports/<job id>/`` and queue their import
    (flushed; the caller commits, or rolls back on :class:`ImportFileError`).

    The files' encoding and header are checked now, so that a wrong file is refused at once
    rather than by a failed job.
    """
    require_role(actor, *IMPORT_ROLES)
    for kind, name in (("households", households_name), ("members", members_name)):
        if not name.lower().endswith(".csv"):
            raise ImportFileError(f"{name}: the {kind} upload must be a .csv file", kind)
    job = enqueue("import", {}, actor=actor)
    folder = Path(upload_root) / "imports" / str(job.id)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"households": folder / "households.csv", "members": folder / "members.csv"}
    try:
        for kind, stream in (("households", households), ("members", members)):
            with open(paths[kind], "wb") as fh:
                shutil.copyfileobj(stream, fh, 1024 * 1024)
        inspect_csv(paths["households"], "households", households_name)
        inspect_csv(paths["members"], "members", members_name)
    except ImportFileError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job.payload = {
        "households_path": str(paths["households"]),
        "members_path": str(paths["members"]),
        "households_name": households_name,
        "members_name": members_name,
        "report_path": str(folder / "report.csv"),
        "skip_invalid": bool(skip_invalid),
        # The registry's own copies of personal data: deleted once the job is over (the report stays).
        "delete_uploads": True,
    }
    db.session.flush()
    return job


def run_import_now(job_id: int) -> Job:
    """Run a just-queued import job in this process (``JOBS_INLINE``: tests and single-process
    set-ups) through the worker's code path; claims exactly this job and commits."""
    job = db.session.get(Job, job_id)
    if job is None or job.status != "queued":
        return job
    now = utcnow()
    job.status, job.started_at, job.heartbeat_at, job.worker = "running", now, now, "inline"
    job.attempts += 1
    db.session.commit()
    return run_job(job)


class ImportNotFound(LookupError):
    def __init__(self, job_id: int):
        super().__init__(f"no import {job_id}")


def get_import_job(job_id: int, actor: User) -> Job:
    """An import job the actor may see: admins see every import, supervisors their own."""
    require_role(actor, *IMPORT_ROLES)
    job = db.session.get(Job, job_id)
    if job is None or job.kind != "import":
        raise ImportNotFound(job_id)
    if actor.role != "admin" and job.created_by_id != actor.id:
        raise AccessDenied("you may only see the imports you started")
    return job


def list_import_jobs(actor: User, limit: int = 20) -> list[Job]:
    """The most recent import jobs the actor may see."""
    require_role(actor, *IMPORT_ROLES)
    stmt = select(Job).where(Job.kind == "import").order_by(Job.id.desc()).limit(limit)
    if actor.role != "admin":
        stmt = stmt.where(Job.created_by_id == actor.id)
    return list(db.session.scalars(stmt))


def mask_issue(issue: dict, can_see_pii: bool) -> dict:
    """An issue with a personal value (name, ID number, ...) masked for roles without PII access."""
    field_name = issue.get("field")
    if can_see_pii or not issue.get("value"):
        return dict(issue)
    if field_name in PII_MEMBER_FIELDS:
        return {**issue, "value": mask_member({field_name: issue["value"]}, False)[field_name]}
    if field_name in PII_HOUSEHOLD_FIELDS:
        return {**issue, "value": MASK}
    return dict(issue)


def import_view(job: Job, *, can_see_pii: bool) -> dict:
    """An import job for the API and pages: status, progress and the outcome (masked issues)."""
    view = job_view(job)
    result = dict(view.get("result") or {})
    if result:
        result["first_issues"] = [mask_issue(i, can_see_pii) for i in result.get("first_issues", [])]
        result.pop("report_path", None)
    view["result"] = result or None
    report = (job.payload or {}).get("report_path")
    view["has_report"] = bool(report) and Path(report).exists()
    view["files"] = {
        "households": (job.payload or {}).get("households_name"),
        "members": (job.payload or {}).get("members_name"),
    }
    view["skip_invalid"] = bool((job.payload or {}).get("skip_invalid"))
    return view


#: Error reports of uploaded imports are deleted this long after their job finished.
REPORT_RETENTION = dt.timedelta(days=30)


@housekeeping
def expire_import_reports(retention: dt.timedelta = REPORT_RETENTION) -> int:
    """Delete the error reports (and folders) of uploaded imports finished longer ago than
    ``retention``; returns how many (flushed; the worker commits).

    A report lists rejected values, national IDs among them, so it is kept only as long as the
    user needs it to fix the files. Each deletion is an audit event; the import's summary stays.
    """
    cutoff = utcnow() - retention
    expired = 0
    for job in db.session.scalars(
        select(Job).where(Job.kind == "import", Job.status.in_(("succeeded", "failed")), Job.finished_at < cutoff)
    ):
        payload = job.payload or {}
        report = payload.get("report_path")
        if not payload.get("delete_uploads") or not report or not Path(report).exists():
            continue
        try:
            Path(report).unlink()
            folder = Path(report).parent
            if not any(folder.iterdir()):
                folder.rmdir()
        except OSError as exc:  # one unreadable folder must not keep the other reports
            log.warning("could not delete the error report of import %s: %s", job.id, exc)
            continue
        record_event(None, "import.report_expired", "job", job.id, summary=f"error report of import {job.id} deleted")
        expired += 1
    db.session.flush()
    return expired


class ReportNotFound(LookupError):
    def __init__(self, job_id: int):
        super().__init__(
            f"import {job_id} has no error report (it found no problem, has not run yet, "
            f"or its report was deleted {REPORT_RETENTION.days} days after the import)"
        )


def iter_report(job: Job, *, can_see_pii: bool) -> Iterator[str]:
    """The job's error report as CSV text (personal values masked unless allowed); raises
    :class:`ReportNotFound` at once when there is none."""
    report = (job.payload or {}).get("report_path")
    if not report or not Path(report).exists():
        raise ReportNotFound(job.id)
    return _report_lines(Path(report), can_see_pii)


def _report_lines(report: Path, can_see_pii: bool) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with open(report, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        writer.writerow(REPORT_COLUMNS)
        for row in reader:
            masked = mask_issue(row, can_see_pii)
            writer.writerow([masked.get(c, "") for c in REPORT_COLUMNS])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


# --- the background job --------------------------------------------------------------------


@job_handler("import")
def run_import_job(context: JobContext) -> dict:
    """Import the uploaded files of an ``import`` job; the outcome goes into ``job.result``.

    A rejected import fails the job (the user must fix the files) but keeps its summary in
    ``job.result`` and its report. Uploaded files (``delete_uploads``) are deleted once the job is
    over: imported, rejected, or failed for the last time; a failure that will be retried keeps them.
    """
    # Read before the import: after a database error the job's row cannot be loaded any more.
    payload = context.payload
    keys = ("households_path", "members_path") if payload.get("delete_uploads") else ()
    uploads = [Path(payload[key]) for key in keys if payload.get(key)]
    last_attempt = context.job.attempts >= context.job.max_attempts
    over = True
    try:
        return _import_for_job(context)
    except JobError:
        raise
    except Exception:
        over = last_attempt
        raise
    finally:
        if over:
            for path in uploads:
                path.unlink(missing_ok=True)


def _import_for_job(context: JobContext) -> dict:
    payload = context.payload
    job_id = context.job.id

    def progress(phase: str, done: int, total: int | None) -> None:
        context.progress(done, total, phase)

    try:
        result = import_files(
            payload["households_path"],
            payload["members_path"],
            actor=context.actor,
            skip_invalid=bool(payload.get("skip_invalid")),
            source_ref=f"job:{job_id}",
            report_path=payload.get("report_path"),
            progress=progress,
            households_name=payload.get("households_name"),
            members_name=payload.get("members_name"),
        )
    except ImportFileError as exc:
        raise JobError(str(exc)) from None
    except AccessDenied as exc:
        raise JobError(exc.reason) from None
    summary = result.as_dict()
    if result.rejected:
        # Nothing of the import may stay; the summary must, so it is committed on its own.
        db.session.rollback()
        job = db.session.get(Job, job_id)
        job.result = summary
        audit_rejected_import(result, context.actor)
        db.session.commit()
        raise JobError(result.message())
    return summary
