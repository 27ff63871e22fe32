"""The database side of a bulk import: staging tables, set-based checks and the final insert.

Validated rows are first written to two temporary staging tables private to the import's
connection (PostgreSQL: ``COPY``; SQLite: batched ``executemany``). The checks that span the
whole file (national IDs repeated across chunks, national IDs already held by registry
members, households already registered) are then single SQL statements over the staging
tables, and the import itself is three ``INSERT … SELECT`` statements (households, members,
version-1 snapshots) in the caller's transaction: all or nothing. On PostgreSQL the snapshots
arrive as JSON text rendered by the validating processes (building them with
``jsonb_build_object``/``jsonb_agg`` cost more than everything else together); on SQLite they are
built in SQL.

Column lists and types come from ``models.codes`` so that staging always matches the data
dictionary.
"""

# SQL here is assembled from internal names only (generated staging table names, columns from
# models.codes); every value is a bound parameter or goes through COPY.
# ruff: noqa: S608

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

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


def household_stage_columns(dialect: str) -> tuple[str, ...]:
    """Household staging columns; on PostgreSQL also the version-1 snapshot rendered by the
    validating process (JSON text), which SQL would build far more slowly."""
    return HOUSEHOLD_STAGE_COLUMNS + (("snapshot",) if dialect == "postgresql" else ())


#: Every import takes this PostgreSQL advisory lock before it looks at the registry, so that two
#: imports of the same file never both decide that a household is new ("socreg" in ASCII).
IMPORT_LOCK_KEY = 0x736F63726567
#: SQLite's default limit on function arguments is 127: JSON objects are built in groups.
_JSON_GROUP = 30


def _sql_type(spec: FieldSpec, dialect: str) -> str:
    pg = dialect == "postgresql"
    return {
        "code": "SMALLINT" if pg else "INTEGER",
        "int": "INTEGER",
        "decimal": "NUMERIC(14, 2)" if pg else "REAL",
        "bool": "BOOLEAN" if pg else "INTEGER",
        "date": "DATE" if pg else "TEXT",
    }.get(spec.kind, "TEXT")


@dataclass
class Staging:
    """The two staging tables of one import on one connection."""

    conn: Connection
    households: str
    members: str

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def execute(self, sql: str, params: dict | None = None):
        return self.conn.execute(sa.text(sql), params or {})


def create_staging(conn: Connection) -> Staging:
    """Create the staging tables (temporary: invisible to other connections, gone at commit on
    PostgreSQL, dropped by :func:`drop_staging` otherwise)."""
    suffix = uuid.uuid4().hex[:10]
    staging = Staging(conn, f"import_households_{suffix}", f"import_members_{suffix}")
    dialect = staging.dialect
    on_commit = " ON COMMIT DROP" if staging.is_postgres else ""
    bool_type = "BOOLEAN" if staging.is_postgres else "INTEGER"
    hh_cols = [f"{s.name} {_sql_type(s, dialect)}" for s in HOUSEHOLD_FIELDS]
    hh_cols += ["src_row BIGINT", f"ok {bool_type} NOT NULL", f"registered {bool_type} NOT NULL DEFAULT FALSE"]
    if staging.is_postgres:
        # JSONB, so that the text is parsed by the staging COPY, before the import takes its
        # lock, not by the final insert (measured on 1M households: insert 258 s -> 171 s,
        # stage 104 s -> 204 s; the total is unchanged but the lock is held 85 s less).
        hh_cols.append("snapshot JSONB")
    m_cols = [f"{s.name} {_sql_type(s, dialect)}" for s in MEMBER_FIELDS]
    m_cols += ["src_row BIGINT", f"nid_dup {bool_type} NOT NULL"]
    if staging.is_postgres:
        # The set-based steps sort and hash millions of rows: give this transaction room in memory.
        staging.execute("SET LOCAL work_mem = '256MB'")
        # Snapshots are a few KiB of JSON each: lz4 compresses them several times faster than
        # the default pglz (reads are transparent; only the values written here use it).
        staging.execute("SET LOCAL default_toast_compression = 'lz4'")
    staging.execute(f"CREATE TEMPORARY TABLE {staging.households} ({', '.join(hh_cols)}){on_commit}")
    staging.execute(f"CREATE TEMPORARY TABLE {staging.members} ({', '.join(m_cols)}){on_commit}")
    if staging.is_postgres:
        # Staged snapshots are read once: not worth compressing (tried at 100k: lz4 here made both the
        # staging COPY and the final insert slower).
        staging.execute(f"ALTER TABLE {staging.households} ALTER COLUMN snapshot SET STORAGE EXTERNAL")
    return staging


def drop_staging(staging: Staging) -> None:
    staging.execute(f"DROP TABLE IF EXISTS {staging.households}")
    staging.execute(f"DROP TABLE IF EXISTS {staging.members}")


def copy_csv(staging: Staging, table: str, columns: Sequence[str], csv_text: str) -> None:
    """Load CSV text (no header, empty unquoted cells are NULL) into a staging table with COPY."""
    if not csv_text:
        return
    cursor = staging.conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", io.StringIO(csv_text))
    finally:
        cursor.close()


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
    """Prepare the loaded staging tables for the set-based checks and inserts.

    PostgreSQL hash-joins them and only needs statistics (temporary tables get none
    automatically); SQLite joins by nested loops and needs indexes, built after the load.
    """
    if staging.is_postgres:
        staging.execute(f"ANALYZE {staging.households}")
        staging.execute(f"ANALYZE {staging.members}")
        return
    staging.execute(f"CREATE INDEX ix_{staging.households} ON {staging.households} (household_id)")
    staging.execute(f"CREATE INDEX ix_{staging.members} ON {staging.members} (household_id)")
    staging.execute(f"CREATE INDEX ix_nid_{staging.members} ON {staging.members} (nid_number, src_row)")


def lock_registry_for_import(staging: Staging) -> None:
    """Serialise imports from here to commit (SQLite serialises writers already)."""
    if staging.is_postgres:
        staging.execute("SELECT pg_advisory_xact_lock(:key)", {"key": IMPORT_LOCK_KEY})


def mark_registered(staging: Staging) -> int:
    """Flag staged households whose registry id is already registered; return how many."""
    true = "TRUE" if staging.is_postgres else "1"
    staging.execute(
        f"UPDATE {staging.households} SET registered = {true} "
        f"WHERE household_id IN (SELECT household_id FROM households)"
    )
    return staging.execute(f"SELECT count(*) FROM {staging.households} WHERE registered = {true}").scalar_one()


def nid_conflicts(staging: Staging) -> Iterator[tuple[str, int, str, str]]:
    """National IDs that the per-chunk validation could not see: repeated in another chunk of the
    file, or already held by a current registry member. Yields ``(kind, row, household_id, nid)``
    with kind ``duplicate`` or ``registered``; households already registered are skipped by the
    import, so their members are not checked against the registry."""
    false = "FALSE" if staging.is_postgres else "0"
    sql = f"""
        WITH ranked AS (
            SELECT src_row, household_id, nid_number, nid_dup,
                   row_number() OVER (PARTITION BY nid_number ORDER BY src_row) AS rn
            FROM {staging.members}
            WHERE nid_number IS NOT NULL
        )
        SELECT 'duplicate' AS kind, src_row, household_id, nid_number FROM ranked
        WHERE rn > 1 AND nid_dup = {false}
        UNION ALL
        SELECT 'registered', r.src_row, r.household_id, r.nid_number FROM ranked r
        WHERE r.rn = 1
          AND EXISTS (SELECT 1 FROM members m WHERE m.nid_number = r.nid_number)
          AND EXISTS (SELECT 1 FROM {staging.households} s
                      WHERE s.household_id = r.household_id AND s.registered = {false})
        ORDER BY 2
    """
    # Per statement: Connection.execution_options() would change every later statement too.
    result = staging.conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=10_000))
    for kind, row, household_id, nid in result:
        yield kind, int(row), household_id, nid


def reject_households(staging: Staging, household_ids: Iterable[str]) -> None:
    """Mark staged households as not importable."""
    ids = sorted(set(household_ids))
    false = "FALSE" if staging.is_postgres else "0"
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        if staging.is_postgres:
            staging.execute(
                f"UPDATE {staging.households} SET ok = {false} WHERE household_id = ANY(:ids)", {"ids": chunk}
            )
        else:
            marks = ", ".join(f":id{i}" for i in range(len(chunk)))
            staging.execute(
                f"UPDATE {staging.households} SET ok = {false} WHERE household_id IN ({marks})",
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
    # A true ``ok`` flag and not already registered (booleans are 0/1 integers on SQLite).
    return f"{prefix}ok = TRUE AND {prefix}registered = FALSE"


def insert_households(
    staging: Staging, *, now, actor_id: int | None, source: str, source_ref: str | None
) -> tuple[int, int, tuple[int, int] | None]:
    """Insert the importable staged households, their members and their version-1 snapshots.

    Returns ``(households, members, id_range)``: counts inserted and the lowest and highest
    new household id (None when none was inserted). Snapshots (staged JSON text on PostgreSQL,
    built in SQL on SQLite) follow ``registry.households.snapshot_of``'s format (a test checks
    that version 1 equals the current state of every imported household).
    """
    now_param = sa.bindparam("now", now, type_=UTCDateTime())
    cols = ", ".join(HOUSEHOLD_COLUMNS)
    picked = ", ".join(f"s.{c}" for c in HOUSEHOLD_COLUMNS)
    insert = f"""
        INSERT INTO households ({cols}, upazila_code, district_code, division_code, status,
                                current_version, created_at, updated_at)
        SELECT {picked}, substr(s.union_code, 1, 6), substr(s.union_code, 1, 4), substr(s.union_code, 1, 2),
               'active', 1, :now, :now
        FROM {staging.households} s
        WHERE {_importable("s.")}
    """
    if staging.is_postgres:
        # Keep the new ids in an analysed map: right after a bulk insert the planner has no
        # statistics for ``households`` and would join it by nested loops.
        ids = f"{staging.households}_ids"
        staging.execute(f"CREATE TEMPORARY TABLE {ids} (household_id TEXT, id BIGINT) ON COMMIT DROP")
        households = staging.conn.execute(
            sa.text(
                f"WITH inserted AS ({insert} RETURNING household_id, id) "
                f"INSERT INTO {ids} SELECT household_id, id FROM inserted"
            ).bindparams(now_param)
        ).rowcount
        staging.execute(f"ANALYZE {ids}")
        id_source = f"{ids} x"
    else:
        households = staging.conn.execute(sa.text(insert).bindparams(now_param)).rowcount
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
    _insert_versions(staging, id_source, now_param, actor_id, source, source_ref)
    low, high = staging.execute(f"SELECT min(x.id), max(x.id) FROM {id_source}").one()
    if staging.is_postgres:
        staging.execute(f"DROP TABLE {staging.households}_ids")
    return households, members, (None if low is None else (int(low), int(high)))


def _json_object(pairs: list[tuple[str, str]], dialect: str) -> str:
    """A JSON object expression from (key, SQL expression) pairs, in argument-limited groups."""
    groups = [pairs[i : i + _JSON_GROUP] for i in range(0, len(pairs), _JSON_GROUP)]
    if dialect == "postgresql":
        parts = ["jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in g) + ")" for g in groups]
        return " || ".join(parts)
    # json_set, not json_patch, for the later groups: a merge patch would drop null values.
    expr = "json_object(" + ", ".join(f"'{k}', {v}" for k, v in groups[0]) + ")"
    for group in groups[1:]:
        expr = f"json_set({expr}, " + ", ".join(f"'$.{k}', {v}" for k, v in group) + ")"
    return expr


def _json_value(spec: FieldSpec, alias: str, dialect: str) -> str:
    column = f"{alias}.{spec.name}"
    if dialect == "postgresql":
        return column
    # SQLite stores booleans as 0/1 and decimals with NUMERIC affinity (5.0 becomes 5): give JSON
    # the same types that registry.households.snapshot_of produces.
    if spec.kind == "bool":
        return f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN json('true') ELSE json('false') END"
    if spec.kind == "decimal":
        return f"CAST({column} AS REAL)"
    return column


def _insert_versions(staging: Staging, id_source: str, now_param, actor_id, source, source_ref) -> None:
    dialect = staging.dialect
    household_json = _json_object([(s.name, _json_value(s, "s", dialect)) for s in HOUSEHOLD_FIELDS], dialect)
    member_specs = [s for s in MEMBER_FIELDS if s.name != "household_id"]
    member_json = _json_object([(s.name, _json_value(s, "m", dialect)) for s in member_specs], dialect)
    if dialect == "postgresql":
        sql = f"""
            INSERT INTO household_versions
                (household_pk, version_no, created_at, created_by_id, source, source_ref, snapshot)
            SELECT x.id, 1, :now, :actor, :source, :source_ref, s.snapshot
            FROM {staging.households} s
            JOIN {id_source} ON x.household_id = s.household_id
            WHERE {_importable("s.")}
        """
    else:
        sql = f"""
            INSERT INTO household_versions
                (household_pk, version_no, created_at, created_by_id, source, source_ref, snapshot)
            SELECT x.id, 1, :now, :actor, :source, :source_ref,
                   json_object('household', {household_json}, 'status', 'active',
                               'inactive_reason', NULL,
                               'members', (SELECT json_group_array(json(obj)) FROM
                                           (SELECT {member_json} AS obj FROM {staging.members} m
                                            WHERE m.household_id = s.household_id ORDER BY m.line_no)))
            FROM {staging.households} s
            JOIN {id_source} ON x.household_id = s.household_id
            WHERE {_importable("s.")}
        """
    staging.conn.execute(
        sa.text(sql).bindparams(
            now_param,
            sa.bindparam("actor", actor_id, type_=sa.BigInteger()),
            sa.bindparam("source", source),
            sa.bindparam("source_ref", source_ref),
        )
    )
