"""PMT scoring: apply a model version to every current household, rank, and explain each score.

A *score run* (``models.score``) scores the active households of the registry (or of one area)
with one model version. The full run streams households and members from the database in chunks
ordered by ``households.id``, builds the household profile and features with exactly the functions
calibration uses (:func:`targeting.features.household_profile`, :func:`~targeting.features.compute_features`,
:func:`targeting.calibration.assign_strata`) and applies the scorecard with the arithmetic of
:func:`targeting.calibration.predict` on numpy matrices (:meth:`Scorecard.predict`), ranks every
household nationally and within its division, district, upazila and union, and writes all rows in
bulk (PostgreSQL: binary ``COPY``). Rows become visible to readers only when the run is marked
complete, in the same transaction, so readers never see a half-scored registry.

Read API (stable; programmes and eligibility lists build on it, see ``docs/pmt.md``, "Scoring")::

    current_run(model_id=None) -> ScoreRun | None      # latest complete full run of the (active) model
    score_of(household, run=None) -> HouseholdScore | None
    contributions(household, model=None) -> dict | None  # "why this score"

Writes: :func:`start_score_run` (API: run + background job), :func:`create_score_run` and
:func:`execute_score_run` (CLI, job handler), :func:`rescore_household` (incremental, after an
approval). Activating a model enqueues a full re-score (:data:`targeting.pmt_models.ACTIVATION_HOOKS`);
approving a change request enqueues a re-score of that household
(``registry.change_requests.AFTER_APPROVAL_HOOKS``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import io
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, literal_column, select, text, update
from sqlalchemy.engine import Engine

from models import Household, HouseholdScore, Job, Member, PmtModel, ScoreRun, User, db
from models.base import utcnow
from models.codes import HOUSEHOLD_FIELDS, MEMBER_FIELDS, FieldSpec
from registry.access import require_area, require_role
from registry.audit import record_event
from registry.geo import get_area
from registry.jobs import JobContext, JobError, enqueue, job_handler, job_view, queue_job
from targeting import ranking
from targeting.calibration import assign_strata
from targeting.features import (
    DERIVED_HOUSEHOLD_COLUMNS,
    FEATURE_DEFINITION_VERSION,
    FEATURES,
    MEMBER_PROFILE_COLUMNS,
    ExtraFeature,
    compute_features,
    describe_feature,
    household_profile,
)
from targeting.pmt_models import ACTIVATION_HOOKS, get_active_model, get_model

log = logging.getLogger(__name__)

#: Job kinds.
SCORE_JOB = "pmt.score"
RESCORE_JOB = "pmt.rescore_household"
#: An incremental re-score is retried this many times (with the job system's back-off) before it
#: is recorded as failed; it is never dropped silently.
RESCORE_ATTEMPTS = 10
#: Households read, featurised and predicted per chunk: bounds memory (about 1 KB per household
#: with its members while a chunk is processed) and sets the progress granularity.
CHUNK_HOUSEHOLDS = 50_000
#: Connections reading chunks ahead of the feature computation in a full run (each a helper thread).
PREFETCH_CONNECTIONS = 2
#: Score rows sent per ``COPY`` when writing (bounds the size of the binary buffer).
WRITE_BATCH = 200_000

#: The 0-100 display score maps predicted per-capita consumption linearly on a log scale between
#: these anchors (Tk per person per month): 500 Tk -> 0, 20,000 Tk -> 100, clipped. Fixed, not
#: rank-based and not model-specific, so a household's display score does not move when other
#: households change, and a score of 50 means the same consumption (about 3,160 Tk) under every model.
SCORE_ANCHORS_TK = (500.0, 20_000.0)
_LOG_LOW, _LOG_HIGH = math.log(SCORE_ANCHORS_TK[0]), math.log(SCORE_ANCHORS_TK[1])

#: Roles that may start score runs (statisticians only: administrators never touch data).
RUN_ROLES = ("statistician",)
#: Roles that may read score-run status (no personal data in it).
RUN_READER_ROLES = ("statistician", "programme_officer", "grievance_officer", "viewer")


class ScoringError(ValueError):
    """A model cannot be applied to the registry, or a run cannot start (the message says why)."""


class ScoreRunConflict(ScoringError):
    """An equivalent score run is already in progress."""


class ScoreRunNotFound(LookupError):
    def __init__(self, run_id: int):
        super().__init__(f"no score run {run_id}")


def display_score(predicted_log_pc):
    """The 0-100 display score of predicted log per-capita consumption (see :data:`SCORE_ANCHORS_TK`)."""
    values = np.asarray(predicted_log_pc, dtype="float64")
    return np.clip(100.0 * (values - _LOG_LOW) / (_LOG_HIGH - _LOG_LOW), 0.0, 100.0)


# --------------------------------------------------------------------------------------
# The scorecard of a model version
# --------------------------------------------------------------------------------------

#: Registry fields read for scoring: every numeric household field (codes, counts, amounts,
#: flags) plus the interview date (ages come from dates of birth at the interview, as in
#: calibration), and every member field that member aggregates may read. Derived from
#: ``models.codes`` so that a new field is read without touching this module.
_NUMERIC_KINDS = ("code", "int", "decimal", "bool")
HOUSEHOLD_READ_FIELDS: tuple[FieldSpec, ...] = tuple(
    f for f in HOUSEHOLD_FIELDS if f.kind in _NUMERIC_KINDS or f.name == "interview_date"
)
MEMBER_READ_FIELDS: tuple[FieldSpec, ...] = tuple(
    f for f in MEMBER_FIELDS if f.kind in _NUMERIC_KINDS + ("date",) and f.name != "household_id"
)
#: Profile columns a registry household has, i.e. what a model may use.
REGISTRY_PROFILE_COLUMNS = frozenset(
    {f.name for f in HOUSEHOLD_READ_FIELDS}
    | set(MEMBER_PROFILE_COLUMNS)
    | set(DERIVED_HOUSEHOLD_COLUMNS)
    | {"union_code"}
)


@dataclass(frozen=True)
class Scorecard:
    """The published linear scorecard of one model version, ready to apply to registry profiles."""

    model_id: int
    method: str
    strata_variables: tuple[str, ...]
    #: ``{stratum: {"intercept": a, "coefficients": {feature: b}}}``
    entries: dict
    poverty_lines: dict
    #: Registry features the scorecard uses (in :data:`FEATURES` order) and survey-style extras.
    features: tuple[str, ...]
    extra: tuple[ExtraFeature, ...]
    needs_members: bool

    @property
    def strata(self) -> tuple[str, ...]:
        return tuple(sorted(self.entries))

    @classmethod
    def from_model(cls, model: PmtModel) -> Scorecard:
        """Check that ``model`` can score registry households and return its scorecard.

        Raises :class:`ScoringError` naming the problem: features defined differently from this
        code's version, a missing scorecard or poverty line, or a feature built on a survey
        column that the registry does not hold.
        """
        if model.feature_definition_version != FEATURE_DEFINITION_VERSION:
            raise ScoringError(
                f"model {model.id} was fitted with feature definitions v{model.feature_definition_version}; this "
                f"registry computes v{FEATURE_DEFINITION_VERSION}, so its scorecard cannot be applied"
            )
        entries = (model.coefficients or {}).get(model.method)
        if not entries:
            raise ScoringError(f"model {model.id} has no {model.method!r} scorecard")
        lines = model.poverty_lines or {}
        lacking_line = [s for s in entries if not lines.get(s)]
        if lacking_line:
            raise ScoringError(f"model {model.id} has no poverty line for stratum {lacking_line[0]!r}")
        used = {name for entry in entries.values() for name in entry["coefficients"]}
        extra = []
        for item in (model.spec or {}).get("extra_features") or []:
            levels = tuple((model.extra_levels or {}).get(item["column"], ()))
            candidate = ExtraFeature(item["column"], item.get("transform", "identity"), levels)
            if used & set(candidate.names()):
                extra.append(candidate)
        extra_names = {name for item in extra for name in item.names()}
        unknown = sorted(used - extra_names - set(FEATURES))
        if unknown:
            raise ScoringError(f"model {model.id}: unknown feature {unknown[0]!r}")
        features = tuple(name for name in FEATURES if name in used)
        columns = {c for name in features for c in FEATURES[name].inputs}
        columns |= {item.column for item in extra} | set(model.strata_variables or ())
        lacking = sorted(columns - REGISTRY_PROFILE_COLUMNS)
        if lacking:
            raise ScoringError(
                f"model {model.id} uses survey column {lacking[0]!r}, which registry households do not have"
            )
        return cls(
            model_id=model.id,
            method=model.method,
            strata_variables=tuple(model.strata_variables or ()),
            entries={
                s: {"intercept": float(e["intercept"]), "coefficients": dict(e["coefficients"])}
                for s, e in entries.items()
            },
            poverty_lines={s: float(lines[s]) for s in entries},
            features=features,
            extra=tuple(extra),
            needs_members=bool(columns & set(MEMBER_PROFILE_COLUMNS)),
        )

    def assign(self, profile: pd.DataFrame) -> np.ndarray:
        """Stratum label per household (None when a stratum variable is missing).

        Calls calibration's :func:`assign_strata` (the same function, so registry and survey
        households of the same kind land in the same stratum) once per distinct combination of
        the stratum variables, which keeps its per-row Python loop off the hot path.
        """
        variables = list(self.strata_variables)
        if not variables:
            return np.full(len(profile), "national", dtype=object)
        keys = profile[variables].reset_index(drop=True)
        distinct = keys.drop_duplicates()
        lookup = distinct.assign(_stratum=assign_strata(distinct, variables).to_numpy())
        # A left merge keeps the order of ``keys`` and matches missing values with each other.
        return keys.merge(lookup, on=variables, how="left")["_stratum"].to_numpy(dtype=object)

    def score(self, profile: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Features, stratum labels and predicted log per-capita consumption (NaN = cannot score)."""
        features = compute_features(profile, self.features, self.extra)
        strata = self.assign(profile)
        return features, strata, self.predict(features, strata)

    def predict(self, features: pd.DataFrame, strata: np.ndarray) -> np.ndarray:
        """Predicted log per-capita consumption (NaN for a household without a known stratum).

        The arithmetic of calibration's :func:`~targeting.calibration.predict` (per stratum,
        ``intercept + values @ coefficients`` over the scorecard's features in its order), done on
        one numpy matrix: selecting rows and columns of a wide DataFrame with ``.loc`` per stratum
        cost more than the rest of the prediction at a million households.
        """
        matrix = features.to_numpy(dtype="float64")
        position = {name: i for i, name in enumerate(features.columns)}
        labels = np.asarray(strata, dtype=object)
        predicted = np.full(len(features), np.nan)
        for stratum, entry in self.entries.items():
            rows = np.flatnonzero(labels == stratum)
            if not len(rows):
                continue
            names = list(entry["coefficients"])
            values = matrix[np.ix_(rows, [position[name] for name in names])]
            predicted[rows] = entry["intercept"] + values @ np.array([entry["coefficients"][n] for n in names])
        return predicted

    def problem(self, features: pd.DataFrame, stratum, row: int) -> str:
        """Why household ``row`` could not be scored (for a NaN prediction)."""
        if stratum is None:
            return f"missing stratum variable ({', '.join(self.strata_variables)})"
        entry = self.entries.get(stratum)
        if entry is None:
            return f"no scorecard for stratum {stratum}"
        for name in entry["coefficients"]:
            if np.isnan(features[name].iat[row]):
                return f"feature {name} cannot be computed (missing input)"
        return "prediction is not a number"

    def below_line(self, predicted: np.ndarray, strata_index: np.ndarray) -> np.ndarray:
        lines = np.log(np.array([self.poverty_lines[s] for s in self.strata]))
        return predicted < lines[strata_index]


# --------------------------------------------------------------------------------------
# Reading current households and members from the database
# --------------------------------------------------------------------------------------

_INT_NULL = -(2**31)
_BYTES_PER_WORD = 7  # small codes are packed 7 per BIGINT (8 bits each, +1 so that 0 = NULL)
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_COPY_TRAILER = b"\xff\xff"


def _read_kind(spec: FieldSpec) -> str:
    """How a field travels: ``byte`` (small non-negative code), ``int``, ``float`` or ``date``."""
    if spec.kind in ("code", "bool"):
        return "byte"
    if spec.kind == "int":
        return "byte" if spec.min is not None and spec.min >= 0 and spec.max is not None and spec.max <= 254 else "int"
    if spec.kind == "decimal":
        return "float"
    if spec.kind == "date":
        return "date"
    raise ValueError(spec.name)


@dataclass
class _Chunk:
    """Households (current state) and their members, ready for :func:`household_profile`."""

    households: pd.DataFrame
    members: pd.DataFrame | None
    pk: np.ndarray
    version: np.ndarray
    union: np.ndarray


class _PgPacked:
    """A ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` whose rows have a fixed layout.

    PostgreSQL spends most of a COPY on per-field output, so small codes (every code list, flag
    and count below 255) are packed 7 per BIGINT with shifts, and NULLs become sentinels
    (0 for packed codes, ``-2^31`` for integers and dates, NaN for floats). Every row then has the
    same size and numpy parses the stream without a Python loop. Measured on 4.2M members, this
    halves the database's time compared with one field per column (binary or CSV).
    """

    def __init__(self, table, keys: list[tuple[str, str]], fields: Iterable[FieldSpec]):
        self.table = table
        self.keys = keys  # (name, SQL expression) of BIGINT NOT NULL columns
        fields = list(fields)
        self.bytes_ = [f.name for f in fields if _read_kind(f) == "byte"]
        self.ints = [f.name for f in fields if _read_kind(f) in ("int", "date")]
        self.dates = {f.name for f in fields if _read_kind(f) == "date"}
        self.floats = [f.name for f in fields if _read_kind(f) == "float"]
        self.bools = {f.name for f in fields if f.kind == "bool"}
        self.words = [self.bytes_[i : i + _BYTES_PER_WORD] for i in range(0, len(self.bytes_), _BYTES_PER_WORD)]
        # Column names come from models.codes, never from input.
        expressions = [expr for _, expr in keys]
        for word in self.words:
            parts = []
            for i, name in enumerate(word):
                value = f"{name}::int4" if name in self.bools else name
                parts.append(f"(COALESCE({value}::int8 + 1, 0) << {8 * i})")
            expressions.append(" + ".join(parts))
        for name in self.ints:
            value = f"({name} - DATE '1970-01-01')" if name in self.dates else f"{name}::int4"
            expressions.append(f"COALESCE({value}, {_INT_NULL})")
        expressions += [f"COALESCE({name}::float8, 'NaN'::float8)" for name in self.floats]
        self.columns = [literal_column(e) for e in expressions]
        types = [">i8"] * (len(keys) + len(self.words)) + [">i4"] * len(self.ints) + [">f8"] * len(self.floats)
        self.dtype = _copy_layout(types)

    def sql(self, *conditions, order_by=None) -> str:
        statement = select(*self.columns).select_from(self.table).where(*conditions)
        if order_by is not None:
            statement = statement.order_by(order_by)
        return _copy_sql(statement)

    def parse(self, raw: bytes) -> dict[str, np.ndarray]:
        rows = _parse_copy(raw, self.dtype)
        out: dict[str, np.ndarray] = {}
        i = 0
        for name, _ in self.keys:
            out[name] = rows[f"v{i}"].astype(np.int64)
            i += 1
        for word in self.words:
            packed = rows[f"v{i}"].astype("<i8").view(np.uint8).reshape(-1, 8)
            for j, name in enumerate(word):
                column = packed[:, j].astype(np.float64) - 1.0
                column[packed[:, j] == 0] = np.nan
                out[name] = column
            i += 1
        for name in self.ints:
            values = rows[f"v{i}"].astype(np.int64)
            missing = values == _INT_NULL
            if name in self.dates:
                days = values.astype("datetime64[D]").astype("datetime64[s]")
                days[missing] = np.datetime64("NaT")
                out[name] = days
            else:
                column = values.astype(np.float64)
                column[missing] = np.nan
                out[name] = column
            i += 1
        for name in self.floats:
            out[name] = rows[f"v{i}"].astype(np.float64)
            i += 1
        return out


def _copy_layout(types: list[str]) -> np.dtype:
    """numpy layout of a binary COPY row of non-NULL fixed-size fields (each preceded by its length)."""
    layout = [("n", ">i2")]
    for i, kind in enumerate(types):
        layout += [(f"l{i}", ">i4"), (f"v{i}", kind)]
    return np.dtype(layout)


def _copy_sql(statement) -> str:
    """A binary ``COPY … TO STDOUT`` of a SELECT (values inlined: COPY takes no parameters; they
    are integers and codes checked to be digits)."""
    sql = statement.compile(dialect=db.session.get_bind().dialect, compile_kwargs={"literal_binds": True})
    return f"COPY ({sql}) TO STDOUT (FORMAT binary)"


def _fetch_copy(cursor, sql: str) -> bytes:
    buffer = io.BytesIO()
    cursor.copy_expert(sql, buffer)
    return buffer.getvalue()


def _parse_copy(raw: bytes, layout: np.dtype) -> np.ndarray:
    """Rows of a binary COPY output whose fields are all non-NULL and of fixed size."""
    body = len(raw) - len(_PG_COPY_HEADER) - len(_PG_COPY_TRAILER)
    if body % layout.itemsize:
        raise RuntimeError("unexpected binary COPY row layout")
    return np.frombuffer(raw, dtype=layout, count=body // layout.itemsize, offset=len(_PG_COPY_HEADER))


_AREA_COLUMN_BY_LENGTH = {2: "division", 4: "district", 6: "upazila", 8: "union"}


class _RegistryReader:
    """Current active households (of one area, or all) with their members, chunk by chunk.

    On PostgreSQL each chunk is two binary COPYs (:class:`_PgPacked`). When the session may use
    other pooled connections (``prefetch``), the next chunks are fetched on other connections by
    helper threads (:func:`_prefetched`) while the caller computes features, so that the database
    and Python work at the same time; otherwise (e.g. a session bound to one connection, as in the tests) the
    session's own connection reads them in turn.
    """

    def __init__(self, area_code: str | None = None, needs_members: bool = True, prefetch: bool = False):
        self.needs_members = needs_members
        self.scope = [Household.status == "active"]
        if area_code is not None:
            level = _AREA_COLUMN_BY_LENGTH.get(len(area_code))
            if level is None or not area_code.isdigit():
                raise ScoringError(f"area code {area_code!r} is not a BBS geo-code of 2, 4, 6 or 8 digits")
            self.scope.append(ranking.AREA_COLUMNS[level] == area_code)
        bind = db.session.get_bind()
        self.postgres = bind.dialect.name == "postgresql"
        self.prefetch = prefetch and self.postgres and isinstance(bind, Engine)
        if self.postgres:
            self._households = _PgPacked(
                Household.__table__,
                [("pk", "id::int8"), ("version", "current_version::int8"), ("union", "union_code::int8")],
                HOUSEHOLD_READ_FIELDS,
            )
            self._members = _PgPacked(Member.__table__, [("pk", "household_pk::int8")], MEMBER_READ_FIELDS)

    def _cursor(self):
        # The session's own connection: the reads belong to the run's transaction (and, in the
        # tests, see the data of the test's outer transaction).
        return db.session.connection().connection.dbapi_connection.cursor()

    def active_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and current version numbers of the active households in scope, ordered by key."""
        stmt = select(Household.id, Household.current_version).where(*self.scope).order_by(Household.id)
        if self.postgres:
            with self._cursor() as cursor:
                rows = _parse_copy(_fetch_copy(cursor, _copy_sql(stmt)), _copy_layout([">i8", ">i4"]))
            return rows["v0"].astype(np.int64), rows["v1"].astype(np.int64)
        values = np.array(db.session.execute(stmt).all(), dtype=np.int64).reshape(-1, 2)
        return values[:, 0].copy(), values[:, 1].copy()

    def chunks(self, pks: np.ndarray, size: int) -> Iterator[_Chunk]:
        """Chunks of the households in ``pks`` (sorted), read by key range."""
        parts = [pks[start : start + size] for start in range(0, len(pks), size)]
        conditions = []
        for part in parts:
            lo, hi = int(part[0]), int(part[-1])
            in_range = Household.id.between(lo, hi)
            if len(self.scope) > 1:
                # An area's households are scattered over the key range: fetch only their members.
                members = Member.household_pk.in_(select(Household.id).where(*self.scope, in_range))
            else:
                members = Member.household_pk.between(lo, hi)
            conditions.append((in_range, members))
        for part, chunk in zip(parts, self._read_all(conditions), strict=True):
            if len(chunk.pk) != len(part):
                # Households deactivated or added since the ids were listed: keep those listed
                # (the reconciliation at the end catches any change).
                chunk = _subset(chunk, part)
            yield chunk

    def households(self, pks: Iterable[int]) -> Iterator[_Chunk]:
        """Chunks of the given households (any order), read by key list."""
        pks = np.unique(np.asarray(list(pks), dtype=np.int64))
        conditions = []
        for start in range(0, len(pks), 10_000):
            listed = [int(p) for p in pks[start : start + 10_000]]
            conditions.append((Household.id.in_(listed), Member.household_pk.in_(listed)))
        yield from self._read_all(conditions)

    def _read_all(self, conditions: list) -> Iterator[_Chunk]:
        if not self.postgres:
            for household_condition, member_condition in conditions:
                yield self._read_rows(household_condition, member_condition)
            return
        statements = [
            (
                self._households.sql(*self.scope, household_condition, order_by=Household.id),
                self._members.sql(member_condition) if self.needs_members else None,
            )
            for household_condition, member_condition in conditions
        ]
        raw_chunks = _prefetched(statements) if self.prefetch and len(statements) > 1 else self._fetched(statements)
        for hh_raw, member_raw in raw_chunks:
            yield self._chunk(self._households.parse(hh_raw), self._members.parse(member_raw) if member_raw else None)

    def _fetched(self, statements) -> Iterator[tuple[bytes, bytes | None]]:
        for hh_sql, member_sql in statements:
            with self._cursor() as cursor:
                yield _fetch_copy(cursor, hh_sql), _fetch_copy(cursor, member_sql) if member_sql else None

    @staticmethod
    def _chunk(hh: dict[str, np.ndarray], members: dict[str, np.ndarray] | None) -> _Chunk:
        pk, version, union = hh.pop("pk"), hh.pop("version"), hh.pop("union")
        hh["union_code"] = (np.char.zfill(union.astype("U8"), 8) if len(union) else union.astype("U8")).astype(object)
        # Household ids as text once per household; members share the same string objects, which
        # keeps the profile's id handling (text, as for survey files) cheap.
        ids = pk.astype("U20").astype(object)
        mem_frame = None
        if members is not None:
            member_pk = members.pop("pk")
            position = np.minimum(np.searchsorted(pk, member_pk), max(len(pk) - 1, 0))
            keep = pk[position] == member_pk if len(pk) else np.zeros(len(member_pk), dtype=bool)
            mem_frame = pd.DataFrame({"household_id": ids[position[keep]], **{k: v[keep] for k, v in members.items()}})
        return _Chunk(pd.DataFrame({"household_id": ids, **hh}), mem_frame, pk, version, union)

    def _read_rows(self, household_condition, member_condition) -> _Chunk:
        """The portable path (SQLite): plain SELECTs; :func:`household_profile` converts the values."""
        names = [f.name for f in HOUSEHOLD_READ_FIELDS]
        table = Household.__table__
        rows = db.session.execute(
            select(table.c.id, table.c.current_version, table.c.union_code, *[table.c[n] for n in names])
            .where(*self.scope, household_condition)
            .order_by(table.c.id)
        ).all()
        hh_frame = pd.DataFrame.from_records(rows, columns=["household_id", "_version", "union_code", *names])
        pk = hh_frame["household_id"].to_numpy(dtype=np.int64)
        version = hh_frame.pop("_version").to_numpy(dtype=np.int64)
        hh_frame["interview_date"] = pd.to_datetime(hh_frame["interview_date"], errors="coerce")
        mem_frame = None
        if self.needs_members:
            m_names = [f.name for f in MEMBER_READ_FIELDS]
            m_table = Member.__table__
            m_rows = db.session.execute(
                select(m_table.c.household_pk, *[m_table.c[n] for n in m_names]).where(member_condition)
            ).all()
            mem_frame = pd.DataFrame.from_records(m_rows, columns=["household_id", *m_names])
            mem_frame = mem_frame[np.isin(mem_frame["household_id"].to_numpy(dtype=np.int64), pk)]
            mem_frame["date_of_birth"] = pd.to_datetime(mem_frame["date_of_birth"], errors="coerce")
        union = np.array([int(code) for code in hh_frame["union_code"]], dtype=np.int64)
        return _Chunk(hh_frame, mem_frame, pk, version, union)


def _prefetched(
    statements: list[tuple[str, str | None]], depth: int = 2, connections: int | None = None
) -> Iterator[tuple[bytes, bytes | None]]:
    """Fetch the COPY outputs of ``statements`` on other pooled connections, in order.

    ``connections`` helper threads (default :data:`PREFETCH_CONNECTIONS`), each with its own
    connection, take every n-th statement and keep up to ``depth`` results ready, so that the
    database reads several chunks while the caller computes features.
    """
    workers = max(1, min(connections or PREFETCH_CONNECTIONS, len(statements)))
    results = [queue.Queue(maxsize=depth) for _ in range(workers)]
    stop = threading.Event()
    links = [db.engine.raw_connection() for _ in range(workers)]

    def offer(box: queue.Queue, item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work(worker: int) -> None:
        try:
            cursor = links[worker].cursor()
            for hh_sql, member_sql in statements[worker::workers]:
                item = (_fetch_copy(cursor, hh_sql), _fetch_copy(cursor, member_sql) if member_sql else None)
                if not offer(results[worker], item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which re-raises
            offer(results[worker], exc)

    threads = [
        threading.Thread(target=work, args=(w,), name=f"score-prefetch-{w}", daemon=True) for w in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for i in range(len(statements)):
            item = results[i % workers].get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for link in links:
            link.close()


def _subset(chunk: _Chunk, pks: np.ndarray) -> _Chunk:
    keep = np.isin(chunk.pk, pks)
    households = chunk.households[keep]
    members = chunk.members
    if members is not None:
        members = members[members["household_id"].isin(households["household_id"])]
    return _Chunk(households, members, chunk.pk[keep], chunk.version[keep], chunk.union[keep])


def _profile(chunk: _Chunk) -> pd.DataFrame:
    return household_profile(chunk.households.reset_index(drop=True), chunk.members)


# --------------------------------------------------------------------------------------
# Scoring a set of households
# --------------------------------------------------------------------------------------


@dataclass
class _Scored:
    """Per-household results of a run, as parallel arrays (about 30 bytes per household)."""

    pk: list = field(default_factory=list)
    version: list = field(default_factory=list)
    union: list = field(default_factory=list)
    stratum: list = field(default_factory=list)
    predicted: list = field(default_factory=list)
    #: household key -> why it could not be scored
    problems: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=lambda: {"features": 0.0})

    def add(self, card: Scorecard, chunk: _Chunk) -> None:
        started = time.perf_counter()
        profile = _profile(chunk)
        features, strata, predicted = card.score(profile)
        index = {s: i for i, s in enumerate(card.strata)}
        self.pk.append(chunk.pk)
        self.version.append(chunk.version)
        self.union.append(chunk.union)
        self.stratum.append(pd.Series(strata, dtype=object).map(index).fillna(-1).to_numpy(dtype=np.int16))
        self.predicted.append(predicted)
        for row in np.flatnonzero(np.isnan(predicted)):
            self.problems[int(chunk.pk[row])] = card.problem(features, strata[row], int(row))
        self.seconds["features"] += time.perf_counter() - started

    def arrays(self) -> dict[str, np.ndarray]:
        """Results as one array per column, ordered by household key; the last result for a
        household wins (a re-read after reconciliation replaces the first)."""
        out = {}
        for name, dtype in (
            ("pk", np.int64),
            ("version", np.int64),
            ("union", np.int64),
            ("stratum", np.int16),
            ("predicted", np.float64),
        ):
            parts = getattr(self, name)
            out[name] = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype=dtype)
        pk = out["pk"]
        if len(pk) > 1 and not bool(np.all(pk[1:] > pk[:-1])):
            order = np.argsort(pk, kind="stable")
            last = np.r_[pk[order][1:] != pk[order][:-1], True]
            out = {n: v[order[last]] for n, v in out.items()}
        for name, values in out.items():
            setattr(self, name, [values])
        return out

    def retain(self, pks: np.ndarray) -> None:
        """Forget results of households not in ``pks`` (sorted; no longer active or in scope)."""
        arrays = self.arrays()
        keep = _members_of(arrays["pk"], pks)
        for name, values in arrays.items():
            setattr(self, name, [values[keep]])
        kept = set(arrays["pk"][keep].tolist()) if self.problems else set()
        self.problems = {pk: why for pk, why in self.problems.items() if pk in kept}


def _members_of(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_pool`` (both integer keys)."""
    if len(sorted_pool) == 0:
        return np.zeros(len(values), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_pool, values), len(sorted_pool) - 1)
    return sorted_pool[position] == values


def _stale(arrays: dict[str, np.ndarray], pks: np.ndarray, versions: np.ndarray) -> np.ndarray:
    """Households whose current version was not the one scored (or that were not scored at all)."""
    scored_pk = arrays["pk"]
    if len(scored_pk) == 0:
        return pks
    position = np.minimum(np.searchsorted(scored_pk, pks), len(scored_pk) - 1)
    same = (scored_pk[position] == pks) & (arrays["version"][position] == versions)
    return pks[~same]


# --------------------------------------------------------------------------------------
# Writing score rows
# --------------------------------------------------------------------------------------

_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _score_columns(levels: tuple[str, ...]) -> list[tuple[str, str]]:
    columns = [
        ("run_id", ">i4"),
        ("household_pk", ">i8"),
        ("household_version", ">i4"),
        ("model_id", ">i4"),
        ("stratum", "text"),
        ("predicted_log_pc", ">f8"),
        ("score", ">f8"),
        ("below_poverty_line", "u1"),
    ]
    for level in levels:
        columns += [(f"{level}_rank", ">i4"), (f"{level}_percentile", ">f8")]
    return columns + [("incremental", ">i2"), ("computed_at", ">i8")]


def _write_scores(
    run: ScoreRun, card: Scorecard, rows: dict[str, np.ndarray], levels: tuple[str, ...], computed_at: dt.datetime
) -> None:
    """Insert the run's rows in bulk: binary COPY on PostgreSQL, executemany on SQLite."""
    db.session.execute(delete(HouseholdScore).where(HouseholdScore.run_id == run.id))
    n = len(rows["pk"])
    values = {
        "run_id": np.full(n, run.id),
        "household_pk": rows["pk"],
        "household_version": rows["version"],
        "model_id": np.full(n, run.model_id),
        "predicted_log_pc": rows["predicted"],
        "score": rows["score"],
        "below_poverty_line": rows["below"],
        "incremental": np.zeros(n, dtype=np.int16),
    }
    for level in levels:
        values[f"{level}_rank"] = rows[f"{level}_rank"]
        values[f"{level}_percentile"] = rows[f"{level}_percentile"]
    columns = _score_columns(levels)
    if db.session.get_bind().dialect.name == "postgresql":
        micros = (computed_at - _PG_EPOCH) // dt.timedelta(microseconds=1)
        values["computed_at"] = np.full(n, micros)
        cursor = db.session.connection().connection.dbapi_connection.cursor()
        names = ", ".join(c for c, _ in columns)
        for start in range(0, n, WRITE_BATCH):
            part = slice(start, start + WRITE_BATCH)
            buffer = io.BytesIO()
            buffer.write(_PG_COPY_HEADER)
            for s, label in enumerate(card.strata):
                rows_of = np.flatnonzero(rows["stratum"][part] == s) + start
                if len(rows_of):
                    buffer.write(_binary_rows(columns, values, rows_of, label.encode()))
            buffer.write(_PG_COPY_TRAILER)
            buffer.seek(0)
            cursor.copy_expert(f"COPY household_scores ({names}) FROM STDIN (FORMAT binary)", buffer)
        cursor.close()
        return
    values["stratum"] = np.array(card.strata, dtype=object)[rows["stratum"]]
    values["below_poverty_line"] = values["below_poverty_line"].astype(bool)
    values["computed_at"] = np.full(n, computed_at, dtype=object)
    names = [c for c, _ in columns]
    lists = [np.asarray(values[c]).tolist() for c in names]
    payload = [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
    if payload:
        db.session.execute(HouseholdScore.__table__.insert(), payload)


def _binary_rows(columns, values, rows: np.ndarray, label: bytes) -> bytes:
    """Rows of one stratum in PostgreSQL's binary COPY format (same text label, so a fixed layout)."""
    layout = [("n", ">i2")]
    for name, kind in columns:
        layout += [(f"l_{name}", ">i4"), (f"v_{name}", f"S{len(label)}" if kind == "text" else kind)]
    out = np.zeros(len(rows), dtype=np.dtype(layout))
    out["n"] = len(columns)
    for name, kind in columns:
        out[f"l_{name}"] = len(label) if kind == "text" else np.dtype(kind).itemsize
        out[f"v_{name}"] = label if kind == "text" else values[name][rows]
    return out.tobytes()


# --------------------------------------------------------------------------------------
# Score runs
# --------------------------------------------------------------------------------------

Progress = Callable[..., None]


def _resolve_model(model_id: int | None) -> PmtModel:
    if model_id is None:
        model = get_active_model()
        if model is None:
            raise ScoringError("no PMT model is active: activate one, or name the model to score with")
        return model
    return get_model(model_id)


def create_score_run(
    model: PmtModel,
    *,
    area_code: str | None = None,
    actor: User | None = None,
    with_job: bool = True,
    check: bool = True,
) -> ScoreRun:
    """Create a score run (status running) and, with ``with_job``, the background job that
    executes it (flushed; the caller commits). With ``check``, first make sure that the model can
    score the registry and the area exists (:class:`ScoringError`, ``UnknownAreaError``)."""
    if check:
        Scorecard.from_model(model)
        if area_code is not None:
            get_area(area_code)
    run = ScoreRun(
        model_id=model.id,
        status="running",
        area_code=area_code,
        created_by_id=actor.id if actor is not None else None,
        started_at=utcnow(),
    )
    db.session.add(run)
    db.session.flush()
    if with_job:
        run.job_id = enqueue(SCORE_JOB, {"run_id": run.id}, actor=actor).id
    record_event(
        actor,
        "score_run.start",
        "score_run",
        run.id,
        summary=f"score run {run.id} with model {model.id}" + (f" in area {area_code}" if area_code else " (full)"),
        after={"model_id": model.id, "area_code": area_code, "job_id": run.job_id},
    )
    db.session.flush()
    return run


def start_score_run(actor: User, *, model_id: int | None = None, area_code: str | None = None) -> ScoreRun:
    """A statistician asks for a (full or area) re-score: create the run and queue its job.

    Refuses (:class:`ScoreRunConflict`) while an equivalent run is still in progress.
    """
    require_role(actor, *RUN_ROLES)
    if area_code is not None:
        require_area(actor, area_code)
    model = _resolve_model(model_id)
    scope = ScoreRun.area_code.is_(None) if area_code is None else ScoreRun.area_code == area_code
    running = db.session.scalar(
        select(ScoreRun)
        .outerjoin(Job, Job.id == ScoreRun.job_id)
        .where(ScoreRun.model_id == model.id, ScoreRun.status == "running", scope)
        .where(Job.status.in_(("queued", "running")))
        .limit(1)
    )
    if running is not None:
        raise ScoreRunConflict(f"score run {running.id} with model {model.id} is already in progress")
    return create_score_run(model, area_code=area_code, actor=actor)


def execute_score_run(
    run: ScoreRun, *, actor: User | None = None, progress: Progress | None = None, chunk_size: int = CHUNK_HOUSEHOLDS
) -> dict:
    """Score, rank and store every active household in the run's scope; mark the run complete.

    Flushes; the caller (job handler or CLI) commits, which publishes the whole run at once.
    Just before ranking, the model's row is locked and any household changed since it was read
    is scored again, so a run completes consistent with the registry, and incremental re-scores
    (which take the same lock) either come before and are re-read here, or come after and
    update this run. Returns a summary with the time spent in each phase.
    """
    report = progress or (lambda *args, **kwargs: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    model = db.session.get(PmtModel, run.model_id)
    card = Scorecard.from_model(model)
    reader = _RegistryReader(run.area_code, card.needs_members, prefetch=True)
    pks, _ = reader.active_ids()
    total = len(pks)
    report(0, total, f"scoring {total:,} households with model {model.id}", force=True)
    scored = _Scored()
    done = 0
    read_started = time.perf_counter()
    for chunk in reader.chunks(pks, chunk_size):
        scored.add(card, chunk)
        done += len(chunk.pk)
        report(done, total, f"scored {done:,} of {total:,} households")
    timings["read_and_features"] = time.perf_counter() - read_started
    timings["features"] = scored.seconds["features"]
    timings["read"] = timings["read_and_features"] - timings["features"]

    started = time.perf_counter()
    _lock_model(run.model_id)
    pks_now, versions_now = reader.active_ids()
    scored.retain(pks_now)
    stale = _stale(scored.arrays(), pks_now, versions_now)
    for chunk in reader.households(stale):
        scored.add(card, chunk)
    timings["reconcile"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = scored.arrays()
    ok = ~np.isnan(rows["predicted"])
    rows = {name: values[ok] for name, values in rows.items()}
    rows["score"] = display_score(rows["predicted"])
    rows["below"] = card.below_line(rows["predicted"], rows["stratum"]).astype(np.uint8)
    levels = ranking.levels_within(run.area_code)
    report(total, total, "ranking", force=True)
    for level, (rank, percentile) in ranking.rank_levels(rows["union"], rows["predicted"], rows["pk"], levels).items():
        rows[f"{level}_rank"], rows[f"{level}_percentile"] = rank, percentile
    timings["rank"] = time.perf_counter() - started

    started = time.perf_counter()
    report(total, total, "writing scores", force=True)
    _write_scores(run, card, rows, levels, utcnow())
    timings["write"] = time.perf_counter() - started
    if db.session.get_bind().dialect.name == "postgresql":
        # Fresh statistics with the rows, committed with them: the first eligibility lists built from
        # the new run are otherwise planned for an empty run (measured: a 1M-household count went from
        # 1.4 s to 4.3 s through nested loops until autovacuum analysed the table).
        started = time.perf_counter()
        db.session.execute(text("ANALYZE household_scores"))
        timings["analyze"] = time.perf_counter() - started

    problems = _describe_problems(scored.problems)
    _complete(run, int(ok.sum()), problems, actor)
    timings["total"] = time.perf_counter() - clock
    report(total, total, "complete", force=True)
    log.info("score run %s: %s households scored in %.1f s (%s)", run.id, int(ok.sum()), timings["total"], timings)
    return {
        "run_id": run.id,
        "model_id": run.model_id,
        "households_scored": int(ok.sum()),
        "households_not_scored": len(scored.problems),
        "reconciled": len(stale),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def _lock_model(model_id: int) -> None:
    """Serialise run completion and incremental re-scores of one model (no-op on SQLite, whose
    transactions already hold the database's single write lock)."""
    db.session.execute(select(PmtModel.id).where(PmtModel.id == model_id).with_for_update())


def _describe_problems(problems: dict[int, str], examples: int = 3) -> str | None:
    if not problems:
        return None
    by_reason: dict[str, list[int]] = {}
    for pk, why in sorted(problems.items()):
        by_reason.setdefault(why, []).append(pk)
    ids = dict(
        db.session.execute(
            select(Household.id, Household.household_id).where(
                Household.id.in_([pk for pks in by_reason.values() for pk in pks[:examples]])
            )
        ).all()
    )
    parts = [
        f"{len(pks)} not scored: {why} (e.g. {', '.join(ids.get(pk, str(pk)) for pk in pks[:examples])})"
        for why, pks in sorted(by_reason.items(), key=lambda item: -len(item[1]))
    ]
    return "; ".join(parts)[:2000]


def _complete(run: ScoreRun, scored: int, problems: str | None, actor: User | None) -> None:
    """Mark the run complete and supersede the model's previous complete run of the same scope."""
    scope = ScoreRun.area_code.is_(None) if run.area_code is None else ScoreRun.area_code == run.area_code
    superseded = db.session.scalars(
        select(ScoreRun.id).where(
            ScoreRun.model_id == run.model_id, ScoreRun.status == "complete", ScoreRun.id != run.id, scope
        )
    ).all()
    if superseded:
        db.session.execute(
            update(ScoreRun).where(ScoreRun.id.in_(superseded)).values(status="superseded"),
            execution_options={"synchronize_session": False},
        )
    run.status = "complete"
    run.finished_at = utcnow()
    run.households_scored = scored
    run.error = problems
    db.session.flush()
    record_event(
        actor,
        "score_run.complete",
        "score_run",
        run.id,
        summary=f"score run {run.id} complete: {scored:,} households scored with model {run.model_id}",
        after={"households_scored": scored, "superseded_runs": list(superseded), "problems": problems},
    )


def fail_score_run(run_id: int, message: str, actor: User | None = None) -> None:
    """Record that a run failed for good (flushed). Its partial work was rolled back."""
    run = db.session.get(ScoreRun, run_id)
    if run is None or run.status != "running":
        return
    run.status = "failed"
    run.finished_at = utcnow()
    run.error = message[:2000]
    db.session.flush()
    record_event(actor, "score_run.fail", "score_run", run_id, summary=f"score run {run_id} failed: {message}"[:500])


@job_handler(SCORE_JOB)
def _score_job(context: JobContext) -> dict:
    run_id = context.payload["run_id"]
    run = db.session.get(ScoreRun, run_id)
    if run is None:
        raise JobError(f"score run {run_id} does not exist")
    if run.status != "running":
        # A re-delivered job whose run already finished: nothing to redo.
        return {"run_id": run_id, "status": run.status}
    try:
        return execute_score_run(run, actor=context.actor, progress=context.progress)
    except ScoringError as exc:
        db.session.rollback()
        fail_score_run(run_id, str(exc), context.actor)
        # The job system rolls back after a failure, so the run's status is committed here.
        db.session.commit()
        raise JobError(str(exc)) from exc
    except Exception as exc:
        db.session.rollback()
        job = db.session.get(Job, context.job.id)
        if job.attempts >= job.max_attempts:
            fail_score_run(run_id, f"{type(exc).__name__}: {exc}", context.actor)
            db.session.commit()
        raise


# --------------------------------------------------------------------------------------
# Incremental re-score of one household
# --------------------------------------------------------------------------------------


def rescore_household(household_pk: int, *, actor: User | None = None) -> dict:
    """Score one household's current version with the active model into the current run.

    Upserts the household's row (``incremental`` = 1), recomputes the union and upazila ranks of
    its area(s) exactly and its own district, division and national rank by counting (the other
    households of those large partitions keep their ranks until the next full run). Holds the
    active model's row lock, like a full run's completion (see :func:`execute_score_run`).
    Flushes; the job system commits. Returns what was done.
    """
    model = db.session.scalar(select(PmtModel).where(PmtModel.status == "active").with_for_update())
    if model is None:
        return {"household_pk": household_pk, "status": "skipped", "reason": "no active model"}
    run = current_run(model.id)
    if run is None:
        return {
            "household_pk": household_pk,
            "status": "skipped",
            "reason": f"model {model.id} has no complete run yet; its pending full run scores the household",
        }
    household = db.session.get(Household, household_pk)
    if household is None:
        raise JobError(f"household {household_pk} does not exist")
    row = db.session.get(HouseholdScore, (run.id, household_pk))
    before = _row_summary(row)
    old_unions = {_scored_union(household, row)} if row is not None else set()
    result = {"household_id": household.household_id, "run_id": run.id, "model_id": model.id}

    card = Scorecard.from_model(model)
    chunks = list(_RegistryReader(None, card.needs_members).households([household_pk]))
    predicted = np.nan
    reason = "the household is inactive"
    if chunks and len(chunks[0].pk):
        features, strata, values = card.score(_profile(chunks[0]))
        predicted = float(values[0])
        reason = None if not np.isnan(predicted) else card.problem(features, strata[0], 0)
    if reason is not None:
        if row is not None:
            db.session.delete(row)
            db.session.flush()
        for union in old_unions:
            _rerank_small(run.id, union)
        record_event(
            actor,
            "household_score.remove",
            "household",
            household.household_id,
            summary=f"score of {household.household_id} removed from run {run.id}: {reason}",
            before=before,
        )
        return {**result, "status": "removed", "reason": reason}

    stratum = strata[0]
    values = {
        "household_version": int(chunks[0].version[0]),
        "model_id": model.id,
        "stratum": stratum,
        "predicted_log_pc": predicted,
        "score": float(display_score(predicted)),
        "below_poverty_line": bool(predicted < math.log(card.poverty_lines[stratum])),
        "incremental": 1,
        "computed_at": utcnow(),
    }
    for level in ("national", "division", "district"):
        code = None if level == "national" else getattr(household, f"{level}_code")
        rank, size = ranking.rank_by_counting(run.id, level, code, household_pk, predicted)
        values[f"{level}_rank"], values[f"{level}_percentile"] = rank, rank / size
    if row is None:
        row = HouseholdScore(run_id=run.id, household_pk=household_pk, **values)
        db.session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    db.session.flush()
    for union in old_unions | {household.union_code}:
        _rerank_small(run.id, union)
    db.session.refresh(row)
    after = _row_summary(row)
    record_event(
        actor,
        "household_score.rescore",
        "household",
        household.household_id,
        summary=f"re-scored {household.household_id} v{row.household_version} with model {model.id}: "
        f"score {row.score:.1f}",
        before=before,
        after=after,
    )
    return {**result, "status": "scored", **after}


def _rerank_small(run_id: int, union_code: str) -> None:
    ranking.rerank_partition(run_id, "union", union_code)
    ranking.rerank_partition(run_id, "upazila", union_code[:6])


def _scored_union(household: Household, row: HouseholdScore) -> str:
    """The union the household belonged to when its stored score was computed."""
    if row.household_version == household.current_version:
        return household.union_code
    from registry.households import get_version

    snapshot = get_version(household, row.household_version).snapshot
    return snapshot["household"]["union_code"]


def _row_summary(row: HouseholdScore | None) -> dict | None:
    if row is None:
        return None
    return {
        "household_version": row.household_version,
        "predicted_log_pc": round(row.predicted_log_pc, 6),
        "score": round(row.score, 3),
        "national_rank": row.national_rank,
        "union_rank": row.union_rank,
    }


@job_handler(RESCORE_JOB)
def _rescore_job(context: JobContext) -> dict:
    return rescore_household(int(context.payload["household_pk"]), actor=context.actor)


# --------------------------------------------------------------------------------------
# Hooks: activation -> full re-score; approval -> incremental re-score
# --------------------------------------------------------------------------------------


def enqueue_full_rescore(model: PmtModel, actor: User | None) -> None:
    """Activation hook: a full re-score of the registry with the newly active model (a job).

    Runs inside the activation's transaction, so the run and its job exist iff activation commits.
    It never refuses the activation: a model that cannot score the registry fails its run, visibly.
    """
    create_score_run(model, actor=actor, check=False)


def enqueue_household_rescore(household: Household, version, actor: User | None) -> None:
    """After-approval hook: queue a re-score of the household in the approval's transaction, so
    the job exists iff the approval commits; failures are retried by the job system."""
    version_no = getattr(version, "version_no", version)
    queue_job(
        RESCORE_JOB,
        {"household_pk": household.id, "version": version_no},
        actor=actor,
        max_attempts=RESCORE_ATTEMPTS,
    )


def register_hooks() -> None:
    """Attach the hooks above (idempotent; called when this module is imported)."""
    if enqueue_full_rescore not in ACTIVATION_HOOKS:
        ACTIVATION_HOOKS.append(enqueue_full_rescore)
    # Change requests may be absent in a partial installation; a broken module must still fail loudly.
    if importlib.util.find_spec("registry.change_requests") is None:
        log.warning("registry.change_requests is not installed: approvals will not trigger re-scores")
        return
    hooks = getattr(importlib.import_module("registry.change_requests"), "AFTER_APPROVAL_HOOKS", None)
    if hooks is None:
        log.warning("registry.change_requests has no AFTER_APPROVAL_HOOKS: approvals will not trigger re-scores")
    elif enqueue_household_rescore not in hooks:
        hooks.append(enqueue_household_rescore)


# --------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------


def current_run(model_id: int | None = None) -> ScoreRun | None:
    """The latest complete full (national) run of the active model, or of ``model_id``.

    None when the model has no complete run yet (e.g. just activated, re-score in progress) or
    no model is active. Area runs never count: they are previews (see ``docs/pmt.md``).
    """
    if model_id is None:
        model = get_active_model()
        if model is None:
            return None
        model_id = model.id
    return db.session.scalar(
        select(ScoreRun)
        .where(ScoreRun.model_id == model_id, ScoreRun.status == "complete", ScoreRun.area_code.is_(None))
        .order_by(ScoreRun.finished_at.desc(), ScoreRun.id.desc())
        .limit(1)
    )


def score_of(household: Household, run: ScoreRun | None = None) -> HouseholdScore | None:
    """The household's score row in ``run`` (default: :func:`current_run`), or None."""
    run = run or current_run()
    if run is None:
        return None
    return db.session.get(HouseholdScore, (run.id, household.id))


def contributions(household: Household, model: PmtModel | None = None) -> dict | None:
    """Why this score: each feature's contribution (weight × value) for the household's current
    version under ``model`` (default: the active model); None when no model is active.

    Returns ``{"model_id", "method", "household_version", "stratum", "intercept", "contributions":
    [{"feature", "description", "value", "weight", "contribution"}, ...] (largest effect first),
    "predicted", "score", "poverty_line", "below_poverty_line", "problem"}``; ``intercept`` plus
    the contributions equals ``predicted`` (log per-capita consumption). ``problem`` says why a
    household cannot be scored (then ``predicted`` is None).
    """
    model = model or get_active_model()
    if model is None:
        return None
    card = Scorecard.from_model(model)
    out = {
        "model_id": model.id,
        "method": model.method,
        "household_version": household.current_version,
        "stratum": None,
        "intercept": None,
        "contributions": [],
        "predicted": None,
        "score": None,
        "poverty_line": None,
        "below_poverty_line": None,
        "problem": None,
    }
    chunks = list(_RegistryReader(None, card.needs_members).households([household.id]))
    if household.status != "active" or not chunks or not len(chunks[0].pk):
        out["problem"] = "the household is inactive"
        return out
    features, strata, predicted = card.score(_profile(chunks[0]))
    stratum = strata[0]
    out["stratum"] = stratum
    entry = card.entries.get(stratum)
    if entry is None:
        out["problem"] = card.problem(features, stratum, 0)
        return out
    items = []
    for name, weight in entry["coefficients"].items():
        value = float(features[name].iat[0])
        items.append(
            {
                "feature": name,
                "description": describe_feature(name, card.extra),
                "value": None if math.isnan(value) else value,
                "weight": float(weight),
                "contribution": None if math.isnan(value) else float(weight) * value,
            }
        )
    items.sort(key=lambda item: (-abs(item["contribution"] or 0.0), item["feature"]))
    line = card.poverty_lines[stratum]
    out.update(intercept=entry["intercept"], contributions=items, poverty_line=line)
    if np.isnan(predicted[0]):
        out["problem"] = card.problem(features, stratum, 0)
        return out
    out.update(
        predicted=float(predicted[0]),
        score=float(display_score(predicted[0])),
        below_poverty_line=bool(predicted[0] < math.log(line)),
    )
    return out


#: Superseded runs completed less than this long ago keep their rows (they may still be compared).
PRUNE_AFTER_DAYS = 90


@dataclass
class PruneOutcome:
    """What :func:`prune_score_runs` removed (or, in a dry run, would remove)."""

    runs: list[int]
    rows: int
    kept_for_lists: list[int]
    dry_run: bool


def prune_score_runs(
    actor: User | None, *, older_than_days: int = PRUNE_AFTER_DAYS, dry_run: bool = False
) -> PruneOutcome:
    """Delete the per-household rows of superseded score runs (flushed; the caller commits).

    A full re-score adds one row per household (a million rows, about 300 MB, at national scale),
    and a superseded run's rows are read by nothing but the lists built from it. So rows are
    deleted for superseded runs that completed more than ``older_than_days`` ago and that no
    eligibility list was built from (a list must stay reproducible: its run's rows are what a
    rebuild, a verification and a diff read). The current run of every model is never touched.
    The run itself stays, marked ``pruned``, with its counts and audit trail. ``actor`` None is
    the command line (an operator on the server); through the application, admins only.
    """
    from models.programme import EligibilityList

    if actor is not None:
        require_role(actor, "admin")
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    cutoff = utcnow() - dt.timedelta(days=older_than_days)
    old = list(
        db.session.scalars(
            select(ScoreRun.id)
            .where(ScoreRun.status == "superseded", func.coalesce(ScoreRun.finished_at, ScoreRun.started_at) < cutoff)
            .order_by(ScoreRun.id)
        )
    )
    listed = set(db.session.scalars(select(EligibilityList.score_run_id).where(EligibilityList.score_run_id.in_(old))))
    runs = [run_id for run_id in old if run_id not in listed]
    counts = dict(
        db.session.execute(
            select(HouseholdScore.run_id, func.count())
            .where(HouseholdScore.run_id.in_(runs))
            .group_by(HouseholdScore.run_id)
        ).all()
    )
    outcome = PruneOutcome(runs, sum(counts.values()), sorted(listed), dry_run)
    if dry_run or not runs:
        return outcome
    for run_id in runs:
        db.session.execute(delete(HouseholdScore).where(HouseholdScore.run_id == run_id))
        db.session.execute(
            update(ScoreRun).where(ScoreRun.id == run_id).values(status="pruned"),
            execution_options={"synchronize_session": False},
        )
        record_event(
            actor,
            "score_run.prune",
            "score_run",
            run_id,
            summary=f"score run {run_id} pruned: {counts.get(run_id, 0):,} household scores deleted",
            before={"status": "superseded", "rows": counts.get(run_id, 0)},
            after={"status": "pruned", "rows": 0},
        )
    db.session.flush()
    return outcome


def get_score_run(run_id: int) -> ScoreRun:
    run = db.session.get(ScoreRun, run_id)
    if run is None:
        raise ScoreRunNotFound(run_id)
    return run


def list_score_runs(limit: int = 30) -> list[ScoreRun]:
    """The most recent score runs, newest first."""
    return list(db.session.scalars(select(ScoreRun).order_by(ScoreRun.id.desc()).limit(limit)))


def require_run_reader(user: User, run: ScoreRun | None = None) -> None:
    """Refuse unless the user may see score-run status (and the run's area, for an area run)."""
    require_role(user, *RUN_READER_ROLES)
    if run is not None and run.area_code is not None:
        require_area(user, run.area_code)


def run_views(runs: list[ScoreRun]) -> list[dict]:
    """Runs' status for the API and pages, with their jobs' progress (a few queries for any number)."""
    if not runs:
        return []
    active = get_active_model()
    model_ids = {r.model_id for r in runs}
    names = dict(db.session.execute(select(PmtModel.id, PmtModel.name).where(PmtModel.id.in_(model_ids))).all())
    current = {model_id: run.id for model_id in model_ids if (run := current_run(model_id)) is not None}
    job_ids = [r.job_id for r in runs if r.job_id]
    job_rows = {j.id: j for j in db.session.scalars(select(Job).where(Job.id.in_(job_ids)))} if job_ids else {}
    user_ids = {r.created_by_id for r in runs if r.created_by_id}
    users = (
        dict(db.session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()) if user_ids else {}
    )
    return [
        {
            "id": run.id,
            "model_id": run.model_id,
            "model_name": names.get(run.model_id),
            "model_active": active is not None and active.id == run.model_id,
            "status": run.status,
            "is_current": current.get(run.model_id) == run.id,
            "area_code": run.area_code,
            "households_scored": run.households_scored,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "created_by": users.get(run.created_by_id),
            "notes": run.error,
            "job": job_view(job_rows[run.job_id]) if run.job_id in job_rows else None,
        }
        for run in runs
    ]


def run_view(run: ScoreRun) -> dict:
    """One run's status (see :func:`run_views`)."""
    return run_views([run])[0]


def household_score_view(household: Household) -> dict:
    """Everything the "why this score" page and API show for one household."""
    run = current_run()
    row = score_of(household, run) if run is not None else None
    explanation = contributions(household)
    ranks = {}
    if row is not None:
        for level in ranking.LEVELS:
            ranks[level] = {
                "rank": getattr(row, f"{level}_rank"),
                "percentile": getattr(row, f"{level}_percentile"),
            }
    if explanation is None:
        status = "no_active_model"
    elif row is None:
        status = "not_scored"
    elif row.household_version != household.current_version:
        status = "outdated"
    else:
        status = "scored"
    return {
        "household_id": household.household_id,
        "current_version": household.current_version,
        "status": status,
        "run_id": run.id if run is not None else None,
        "model_id": explanation["model_id"] if explanation else None,
        "scored_version": row.household_version if row else None,
        "stratum": row.stratum if row else None,
        "predicted_log_pc": row.predicted_log_pc if row else None,
        "predicted_consumption_pc": math.exp(row.predicted_log_pc) if row else None,
        "score": row.score if row else None,
        "below_poverty_line": row.below_poverty_line if row else None,
        "incremental": bool(row.incremental) if row else None,
        "computed_at": row.computed_at if row else None,
        "ranks": ranks,
        "explanation": explanation,
    }


def pending_rescores() -> dict[str, int]:
    """Incremental re-score jobs by status, so failures are visible (never silently skipped)."""
    rows = db.session.execute(
        select(Job.status, func.count()).where(Job.kind == RESCORE_JOB).group_by(Job.status)
    ).all()
    return {status: int(count) for status, count in rows}


register_hooks()
