"""The database side of a bulk import.

PostgreSQL (:class:`DirectLoad`): validated buckets are written straight into ``households``,
``members`` and ``household_versions`` with ``COPY`` while later buckets are validated, in a
savepoint of the caller's transaction; the checks that span buckets (national IDs repeated
across buckets or already held by registry members) run at the end over a small table of keys.

SQLite: validated rows are first written to two temporary staging tables with batched
``executemany``; the checks that span the whole file are single SQL statements over them, and
the import itself is three ``INSERT … SELECT`` statements (households, members, version 1).

A first load into a registry with no household defers the tables' secondary indexes and
foreign keys to the end (:func:`begin_direct_load`).

Either way version 1 is written without a snapshot: until the household first changes, its
current tables are that state (``registry.households``). All or nothing: the caller's
transaction holds everything. Column lists and types come from ``models.codes`` so that staging
always matches the data dictionary.
"""

# SQL here is assembled from internal names only (generated staging table names, columns from
# models.codes); every value is a bound parameter or goes through COPY.
# ruff: noqa: S608

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import UTCDateTime
from models.codes import HOUSEHOLD_FIELDS, MEMBER_FIELDS, FieldSpec

#: Member columns stored in ``members`` (the household is referenced by ``household_pk``).
MEMBER_COLUMNS = tuple(f.name for f in MEMBER_FIELDS if f.name != "household_id")
HOUSEHOLD_COLUMNS = tuple(f.name for f in HOUSEHOLD_FIELDS)
#: Staging columns after the data-dictionary fields.
HOUSEHOLD_STAGE_EXTRA = ("src_row", "ok")
MEMBER_STAGE_EXTRA = ("src_row", "nid_dup")
HOUSEHOLD_STAGE_COLUMNS = HOUSEHOLD_COLUMNS + HOUSEHOLD_STAGE_EXTRA
MEMBER_STAGE_COLUMNS = tuple(f.name for f in MEMBER_FIELDS) + MEMBER_STAGE_EXTRA


#: Every import takes this PostgreSQL advisory lock before it looks at the registry, so that two
#: imports of the same file never both decide that a household is new ("socreg" in ASCII).
IMPORT_LOCK_KEY = 0x736F63726567


def _sql_type(spec: FieldSpec) -> str:
    return {"code": "INTEGER", "int": "INTEGER", "decimal": "REAL", "bool": "INTEGER", "date": "TEXT"}.get(
        spec.kind, "TEXT"
    )


@dataclass
class Staging:
    """The two staging tables of one import on one connection."""

    conn: Connection
    households: str
    members: str

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def execute(self, sql: str, params: dict | None = None):
        return self.conn.execute(sa.text(sql), params or {})


def create_staging(conn: Connection) -> Staging:
    """Create the staging tables (temporary: invisible to other connections; dropped by
    :func:`drop_staging`)."""
    suffix = uuid.uuid4().hex[:10]
    staging = Staging(conn, f"import_households_{suffix}", f"import_members_{suffix}")
    hh_cols = [f"{s.name} {_sql_type(s)}" for s in HOUSEHOLD_FIELDS]
    hh_cols += ["src_row BIGINT", "ok INTEGER NOT NULL", "registered INTEGER NOT NULL DEFAULT 0"]
    m_cols = [f"{s.name} {_sql_type(s)}" for s in MEMBER_FIELDS]
    m_cols += ["src_row BIGINT", "nid_dup INTEGER NOT NULL"]
    staging.execute(f"CREATE TEMPORARY TABLE {staging.households} ({', '.join(hh_cols)})")
    staging.execute(f"CREATE TEMPORARY TABLE {staging.members} ({', '.join(m_cols)})")
    return staging


def drop_staging(staging: Staging) -> None:
    staging.execute(f"DROP TABLE IF EXISTS {staging.households}")
    staging.execute(f"DROP TABLE IF EXISTS {staging.members}")


def insert_rows(staging: Staging, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert rows into a staging table with one ``executemany`` (the SQLite path)."""
    if not rows:
        return
    placeholders = ", ".join("?" for _ in columns)
    cursor = staging.conn.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
    finally:
        cursor.close()


def index_and_analyze(staging: Staging) -> None:
    """Index the loaded staging tables for the checks and inserts (SQLite joins by nested loops)."""
    staging.execute(f"CREATE INDEX ix_{staging.households} ON {staging.households} (household_id)")
    staging.execute(f"CREATE INDEX ix_{staging.members} ON {staging.members} (household_id)")
    staging.execute(f"CREATE INDEX ix_nid_{staging.members} ON {staging.members} (nid_number, src_row)")


def mark_registered(staging: Staging) -> int:
    """Flag staged households whose registry id is already registered; return how many."""
    staging.execute(
        f"UPDATE {staging.households} SET registered = 1 WHERE household_id IN (SELECT household_id FROM households)"
    )
    return staging.execute(f"SELECT count(*) FROM {staging.households} WHERE registered = 1").scalar_one()


def nid_conflicts(staging: Staging) -> Iterator[tuple[str, int, str, str]]:
    """National IDs that the per-chunk validation could not see: repeated in another chunk of the
    file, or already held by a current registry member. Yields ``(kind, row, household_id, nid)``
    with kind ``duplicate`` or ``registered``; households already registered are skipped by the
    import, so their members are not checked against the registry."""
    sql = f"""
        WITH ranked AS (
            SELECT src_row, household_id, nid_number, nid_dup,
                   row_number() OVER (PARTITION BY nid_number ORDER BY src_row) AS rn
            FROM {staging.members}
            WHERE nid_number IS NOT NULL
        )
        SELECT 'duplicate' AS kind, src_row, household_id, nid_number FROM ranked
        WHERE rn > 1 AND nid_dup = 0
        UNION ALL
        SELECT 'registered', r.src_row, r.household_id, r.nid_number FROM ranked r
        WHERE r.rn = 1
          AND EXISTS (SELECT 1 FROM members m WHERE m.nid_number = r.nid_number)
          AND EXISTS (SELECT 1 FROM {staging.households} s
                      WHERE s.household_id = r.household_id AND s.registered = 0)
        ORDER BY 2
    """
    # Per statement: Connection.execution_options() would change every later statement too.
    result = staging.conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=10_000))
    for kind, row, household_id, nid in result:
        yield kind, int(row), household_id, nid


def reject_households(staging: Staging, household_ids: Iterable[str]) -> None:
    """Mark staged households as not importable."""
    ids = sorted(set(household_ids))
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        marks = ", ".join(f":id{i}" for i in range(len(chunk)))
        staging.execute(
            f"UPDATE {staging.households} SET ok = 0 WHERE household_id IN ({marks})",
            {f"id{i}": v for i, v in enumerate(chunk)},
        )


def count_importable(staging: Staging) -> tuple[int, int]:
    """Households and member rows that :func:`insert_households` would write."""
    households, members = staging.execute(
        f"""
        SELECT (SELECT count(*) FROM {staging.households} WHERE {_importable("")}),
               (SELECT count(*) FROM {staging.members} m
                WHERE EXISTS (SELECT 1 FROM {staging.households} s
                              WHERE s.household_id = m.household_id AND {_importable("s.")}))
        """
    ).one()
    return int(households), int(members)


def _importable(prefix: str) -> str:
    # A true ``ok`` flag and not already registered (0/1 integers).
    return f"{prefix}ok = 1 AND {prefix}registered = 0"


def insert_households(
    staging: Staging, *, now, actor_id: int | None, source: str, source_ref: str | None
) -> tuple[int, int, tuple[int, int] | None]:
    """Insert the importable staged households, their members and their version 1 (whose snapshot
    is the current tables until the household first changes).

    Returns ``(households, members, id_range)``: counts inserted and the lowest and highest
    new household id (None when none was inserted).
    """
    now_param = sa.bindparam("now", now, type_=UTCDateTime())
    cols = ", ".join(HOUSEHOLD_COLUMNS)
    picked = ", ".join(f"s.{c}" for c in HOUSEHOLD_COLUMNS)
    households = staging.conn.execute(
        sa.text(
            f"""
            INSERT INTO households ({cols}, upazila_code, district_code, division_code, status,
                                    current_version, created_at, updated_at)
            SELECT {picked}, substr(s.union_code, 1, 6), substr(s.union_code, 1, 4), substr(s.union_code, 1, 2),
                   'active', 1, :now, :now
            FROM {staging.households} s
            WHERE {_importable("s.")}
            """
        ).bindparams(now_param)
    ).rowcount
    id_source = f"""(SELECT h.household_id, h.id FROM households h
                     JOIN {staging.households} s ON s.household_id = h.household_id AND {_importable("s.")}) x"""
    m_cols = ", ".join(MEMBER_COLUMNS)
    m_picked = ", ".join(f"m.{c}" for c in MEMBER_COLUMNS)
    members = staging.execute(
        f"""
        INSERT INTO members (household_pk, {m_cols})
        SELECT x.id, {m_picked}
        FROM {staging.members} m JOIN {id_source} ON x.household_id = m.household_id
        """
    ).rowcount
    staging.conn.execute(
        sa.text(
            f"""
            INSERT INTO household_versions (household_pk, version_no, created_at, created_by_id, source, source_ref)
            SELECT x.id, 1, :now, :actor, :source, :source_ref FROM {id_source}
            """
        ).bindparams(
            now_param,
            sa.bindparam("actor", actor_id, type_=sa.BigInteger()),
            sa.bindparam("source", source),
            sa.bindparam("source_ref", source_ref),
        )
    )
    low, high = staging.execute(f"SELECT min(x.id), max(x.id) FROM {id_source}").one()
    return households, members, (None if low is None else (int(low), int(high)))


# --- PostgreSQL: straight into the registry tables ----------------------------------------------

#: Household columns a validating process renders for COPY, before the ones the loader appends.
DIRECT_HOUSEHOLD_COLUMNS = HOUSEHOLD_COLUMNS + ("upazila_code", "district_code", "division_code")
#: The loader appends the new id and these constants to every household line.
_DIRECT_HOUSEHOLD_TAIL = ("id", "status", "current_version", "created_at", "updated_at")
#: A version 1 is its household's id and these (its snapshot is the current tables until it changes).
_VERSION_COLUMNS = ("household_pk", "version_no", "created_at", "created_by_id", "source", "source_ref")
#: National-ID keys of every member row of the file, for the checks that span buckets.
NID_KEY_COLUMNS = ("nid_number", "src_row", "household_id", "nid_dup")


@dataclass
class DirectLoad:
    """One PostgreSQL import writing validated buckets straight into ``households``, ``members``
    and ``household_versions`` (COPY, while the next buckets are validated), inside a savepoint of
    the caller's transaction so that a rejected import leaves nothing behind.

    What no bucket can see alone is settled from small side tables at the end: ``keys`` holds
    the national ID of every member row of the file (for repeats across buckets),
    ``registered_nids`` the IDs found held by earlier registry members, ``skipped`` the households
    already registered. The import lock is held from the first bucket to commit.
    """

    conn: Connection
    keys: str
    registered_nids: str
    skipped: str
    sequence: str
    #: Inclusive ranges of the household ids this import allocated (ascending).
    ranges: list[list[int]]
    #: Whether the registry held any household / any national ID when the import took its lock. When
    #: not (the first load of a registry), nothing can be registered already and the per-bucket probes
    #: are skipped: a household or ID registered by someone else meanwhile makes the COPY fail.
    had_households: bool = True
    had_nids: bool = True
    #: A first load's indexes and foreign keys, dropped for the load and rebuilt at the end
    #: (see :func:`begin_direct_load`); empty when they are maintained row by row.
    deferred: list[Deferred] = field(default_factory=list)

    def execute(self, sql: str, params: dict | None = None):
        return self.conn.execute(sa.text(sql), params or {})

    def copy(self, table: str, columns: Sequence[str], csv_text: str) -> int:
        """COPY CSV text into a table; return the rows copied."""
        if not csv_text:
            return 0
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", io.StringIO(csv_text)
            )
            return cursor.rowcount
        except psycopg2.errors.UniqueViolation as exc:
            raise ConcurrentRegistration(
                "a household or national ID of this file was registered by someone else during the import; "
                f"nothing was imported: run the import again ({exc.diag.message_detail})"
            ) from exc
        finally:
            cursor.close()

    def registered_households(self, household_ids: list[str]) -> set[str]:
        """Which of these registry ids are already registered (they are skipped, never overwritten)."""
        if not household_ids or not self.had_households:
            return set()
        # Probed one by one like national IDs (see nid_holders): ``= ANY`` scanned the growing table.
        found = {
            r[0]
            for r in self.execute(
                "SELECT k.id FROM unnest(CAST(:ids AS text[])) AS k(id) "
                "CROSS JOIN LATERAL (SELECT 1 FROM households WHERE household_id = k.id LIMIT 1) h",
                {"ids": sorted(household_ids)},
            )
        }
        if found:
            self.copy(self.skipped, ("household_id",), "".join(_csv_line(i) for i in found))
        return found

    def nid_holders(self, nids: list[str]) -> list[tuple[str, int]]:
        """``(nid, household_pk)`` of the members holding any of these national IDs (unique index):
        registry members, or this import's (see :meth:`is_ours`)."""
        if not nids:
            return []
        self.restore(lambda d: d.table == "members" and d.columns == ("nid_number",))
        # One probe of the unique index per key, in key order (the LIMIT keeps the planner from turning
        # it into a join): with ``= ANY`` it picked a parallel scan of the growing table, which has no
        # statistics yet. Measured 36 ms per 12k keys against 150 ms.
        rows = self.execute(
            "SELECT k.nid, m.household_pk FROM unnest(CAST(:nids AS text[])) AS k(nid) "
            "CROSS JOIN LATERAL (SELECT household_pk FROM members WHERE nid_number = k.nid LIMIT 1) m",
            {"nids": sorted(nids)},
        )
        return [(nid, int(pk)) for nid, pk in rows]

    def note_registered_nids(self, nids: Iterable[str]) -> None:
        self.copy(self.registered_nids, ("nid_number",), "".join(_csv_line(n) for n in set(nids)))

    def is_ours(self, household_pk: int) -> bool:
        """Whether a household id was allocated by this import."""
        return any(low <= household_pk <= high for low, high in self.ranges)

    def allocate(self, count: int) -> list[int]:
        """``count`` new household ids from the table's own sequence (so other writers never collide)."""
        if count <= 0:
            return []
        ids = [
            int(r[0])
            for r in self.execute(
                "SELECT nextval(CAST(:seq AS regclass)) FROM generate_series(1, :n)", {"seq": self.sequence, "n": count}
            )
        ]
        for pk in ids:
            if self.ranges and self.ranges[-1][1] == pk - 1:
                self.ranges[-1][1] = pk
            else:
                self.ranges.append([pk, pk])
        return ids

    def write(self, household_lines: list[str], member_lines: list[str], version_lines: list[str]) -> tuple[int, int]:
        """COPY complete lines (see :func:`line_tails`) into ``households``, ``members`` and
        ``household_versions``; returns the households and members written."""
        households = self.copy(
            "households", DIRECT_HOUSEHOLD_COLUMNS + _DIRECT_HOUSEHOLD_TAIL, "".join(household_lines)
        )
        members = self.copy(
            "members", ("household_pk", *MEMBER_COLUMNS), "\n".join(member_lines) + "\n" if member_lines else ""
        )
        self.copy("household_versions", _VERSION_COLUMNS, "".join(version_lines))
        return households, members

    def nid_conflicts(self) -> Iterator[tuple[str, int, str, str]]:
        """The national-ID problems that span buckets, exactly as :func:`nid_conflicts` words them:
        ``duplicate`` for every row after the first (in file order) of an ID repeated in different
        buckets, ``registered`` for the first row of an ID already held by an earlier registry member
        (unless its household is already registered, and so skipped)."""
        self.execute(f"ANALYZE {self.keys}")
        sql = f"""
            WITH candidates AS (
                SELECT nid_number FROM {self.keys} GROUP BY nid_number HAVING count(*) > 1
                UNION
                SELECT nid_number FROM {self.registered_nids}
            ), ranked AS (
                SELECT k.src_row, k.household_id, k.nid_number, k.nid_dup,
                       row_number() OVER (PARTITION BY k.nid_number ORDER BY k.src_row) AS rn
                FROM {self.keys} k JOIN candidates c ON c.nid_number = k.nid_number
            )
            SELECT 'duplicate' AS kind, src_row, household_id, nid_number FROM ranked
            WHERE rn > 1 AND NOT nid_dup
            UNION ALL
            SELECT 'registered', r.src_row, r.household_id, r.nid_number FROM ranked r
            WHERE r.rn = 1
              AND r.nid_number IN (SELECT nid_number FROM {self.registered_nids})
              AND r.household_id NOT IN (SELECT household_id FROM {self.skipped})
            ORDER BY 2
        """
        result = self.conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=10_000))
        for kind, row, household_id, nid in result:
            yield kind, int(row), household_id, nid

    def delete_ours(self, household_ids: Iterable[str]) -> tuple[int, int]:
        """Delete households written by this import (and their members and versions); returns the
        households and members deleted. Households registered before the import are untouched."""
        ids = sorted(set(household_ids))
        pks = []
        for start in range(0, len(ids), 10_000):
            found = self.execute(
                "SELECT id FROM households WHERE household_id = ANY(:ids)", {"ids": ids[start : start + 10_000]}
            )
            pks += [int(pk) for (pk,) in found if self.is_ours(int(pk))]
        if not pks:
            return 0, 0
        members = self.execute("DELETE FROM members WHERE household_pk = ANY(:pks)", {"pks": pks}).rowcount
        self.execute("DELETE FROM household_versions WHERE household_pk = ANY(:pks)", {"pks": pks})
        households = self.execute("DELETE FROM households WHERE id = ANY(:pks)", {"pks": pks}).rowcount
        return households, members

    def restore(
        self, which: Callable[[Deferred], bool] = lambda d: True, progress: Callable[[int], None] | None = None
    ) -> None:
        """Rebuild deferred indexes and foreign keys (those ``which`` picks; all by default): the
        unique ones and the foreign keys check, over the whole table at once, what a row-by-row
        load would have checked per row. ``progress`` is told how many are rebuilt so far."""
        chosen = [d for d in self.deferred if which(d)]
        if not chosen:
            return
        previous = self.execute("SELECT current_setting('maintenance_work_mem')").scalar_one()
        self.execute("SELECT set_config('maintenance_work_mem', :mem, true)", {"mem": RESTORE_MEMORY})
        # Indexes first: the foreign keys are then checked against complete tables.
        for done, item in enumerate(sorted(chosen, key=lambda d: d.kind == "f"), start=1):
            self.execute(item.create)
            self.deferred.remove(item)
            if progress is not None:
                progress(done)
        self.execute("SELECT set_config('maintenance_work_mem', :mem, true)", {"mem": previous})

    def rollback(self) -> None:
        """Undo everything this import wrote (its side tables go at commit)."""
        self.execute("ROLLBACK TO SAVEPOINT socreg_import")
        self.execute("RELEASE SAVEPOINT socreg_import")

    def release(self) -> None:
        self.restore()
        self.execute("RELEASE SAVEPOINT socreg_import")
        for table in (self.keys, self.registered_nids, self.skipped):
            self.execute(f"DROP TABLE IF EXISTS {table}")


def line_tails(*, now, actor_id: int | None, source: str, source_ref: str | None) -> tuple[str, str]:
    """The constant ends of the COPY lines: a household line is its data columns, its id and the
    first (the last field or fields of the line); a version line is the household id and the second."""
    stamp = now.isoformat()
    actor = "" if actor_id is None else str(actor_id)
    return (
        f"active,1,{stamp},{stamp}\n",
        f",1,{stamp},{actor},{csv_cell(source)},{csv_cell(source_ref)}\n",
    )


class ConcurrentRegistration(RuntimeError):
    """Another user registered a household or national ID of the file while it was being imported."""


#: The tables an import writes; a first load defers their secondary indexes and foreign keys.
_LOADED_TABLES = ("households", "members", "household_versions")
#: How long a first load waits for the exclusive locks it needs to defer indexes, before it
#: gives up and maintains them row by row instead (someone is using the tables).
DEFER_LOCK_TIMEOUT = "3s"
#: Memory for each index rebuilt at the end of a first load (a sort in memory is the fast path).
RESTORE_MEMORY = "512MB"


@dataclass(frozen=True)
class Deferred:
    """An index or constraint a first load drops and rebuilds (``create`` is its definition as
    the catalog prints it, so the rebuilt object is the one the migrations made)."""

    name: str
    table: str
    #: ``i`` a plain index, ``u`` a unique constraint, ``f`` a foreign key.
    kind: str
    columns: tuple[str, ...]
    create: str


def _deferrable(conn: Connection) -> list[Deferred]:
    """The secondary indexes, unique constraints and foreign keys of the loaded tables; never a
    primary key (other tables' foreign keys rest on them). Foreign keys of *other* tables that
    point into these are not touched either."""
    rows = conn.execute(
        sa.text(
            """
            SELECT c.conname, t.relname, c.contype,
                   ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                   format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, c.conname, pg_get_constraintdef(c.oid))
            FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
            WHERE t.oid = ANY(CAST(:tables AS regclass[])) AND c.contype IN ('u', 'f')
            UNION ALL
            SELECT x.relname, t.relname, 'i',
                   ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
                   pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid
            WHERE t.oid = ANY(CAST(:tables AS regclass[])) AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                              AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
            """
        ),
        {"tables": list(_LOADED_TABLES)},
    )
    return [Deferred(name, table, kind, tuple(columns), create) for name, table, kind, columns, create in rows]


def _defer_indexes(load: DirectLoad) -> None:
    """Drop the loaded tables' secondary indexes and foreign keys for a first load, if their locks
    come quickly: building an index once over the loaded rows, and checking a foreign key with one
    join, costs a fraction of maintaining them per row (1M households: 46 s of COPY and 15 s of
    rebuilding, against 115 s of COPY). The drops are inside the import's savepoint, so a rejected
    or failed import gets them back with everything else; :meth:`DirectLoad.restore` rebuilds them
    before the import completes.

    The price: until the import commits, other sessions wait for these tables (the locks are
    exclusive). Only a registry with no household at all is loaded this way."""
    load.execute("SAVEPOINT socreg_defer")
    previous = load.execute("SELECT current_setting('lock_timeout')").scalar_one()
    try:
        load.execute("SELECT set_config('lock_timeout', :t, true)", {"t": DEFER_LOCK_TIMEOUT})
        deferred = _deferrable(load.conn)
        # Foreign keys first: a unique constraint may not go while a foreign key rests on it.
        for item in sorted(deferred, key=lambda d: d.kind != "f"):
            if item.kind == "i":
                load.execute(f'DROP INDEX "{item.name}"')
            else:
                load.execute(f'ALTER TABLE "{item.table}" DROP CONSTRAINT "{item.name}"')
    except sa.exc.OperationalError as exc:
        # A deadlock: a session waiting for the import lock (a second import) already holds a lock
        # on one of the tables. Either way, load with the indexes rather than wait or fail.
        if not isinstance(exc.orig, (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected)):
            raise
        load.execute("ROLLBACK TO SAVEPOINT socreg_defer")
        deferred = []
    load.execute("RELEASE SAVEPOINT socreg_defer")
    load.execute("SELECT set_config('lock_timeout', :t, true)", {"t": previous})
    load.deferred = deferred


def begin_direct_load(conn: Connection, *, defer_indexes: bool = False) -> DirectLoad:
    """Take the import lock, open the import's savepoint and create its side tables.

    With ``defer_indexes`` and a registry without households, the indexes and foreign keys of the
    loaded tables are rebuilt once at the end instead of row by row (see :func:`_defer_indexes`)."""
    suffix = uuid.uuid4().hex[:10]
    load = DirectLoad(
        conn,
        keys=f"import_nids_{suffix}",
        registered_nids=f"import_registered_nids_{suffix}",
        skipped=f"import_skipped_{suffix}",
        sequence=conn.execute(sa.text("SELECT pg_get_serial_sequence('households', 'id')")).scalar_one(),
        ranges=[],
    )
    # Imports are serialised from here to commit: two imports of one file never both see a household as new.
    load.execute("SELECT pg_advisory_xact_lock(:key)", {"key": IMPORT_LOCK_KEY})
    load.execute("SET LOCAL work_mem = '256MB'")
    load.had_households = load.execute("SELECT EXISTS (SELECT 1 FROM households)").scalar_one()
    load.had_nids = load.execute("SELECT EXISTS (SELECT 1 FROM members WHERE nid_number IS NOT NULL)").scalar_one()
    load.execute(
        f"CREATE TEMPORARY TABLE {load.keys} (nid_number TEXT, src_row BIGINT, household_id TEXT, "
        f"nid_dup BOOLEAN NOT NULL) ON COMMIT DROP"
    )
    load.execute(f"CREATE TEMPORARY TABLE {load.registered_nids} (nid_number TEXT) ON COMMIT DROP")
    load.execute(f"CREATE TEMPORARY TABLE {load.skipped} (household_id TEXT) ON COMMIT DROP")
    load.execute("SAVEPOINT socreg_import")
    if defer_indexes and not load.had_households:
        _defer_indexes(load)
    return load


def csv_cell(value: str | None) -> str:
    """A text as a cell of COPY's CSV: empty (NULL) for None, quoted where CSV needs it (an empty
    text is quoted so that it stays a text)."""
    if value is None:
        return ""
    if not value or "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_line(value: str) -> str:
    return csv_cell(value) + "\n"
