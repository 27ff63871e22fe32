"""Bulk import: validation rules, all-or-nothing, idempotence, --skip-invalid, encodings, concurrency."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from models import AuditEvent, Household, HouseholdVersion, Job, Member, db
from models.base import utcnow
from models.change_request import MemberMatchKey
from models.codes import HOUSEHOLD_FIELD_NAMES, MEMBER_FIELD_NAMES
from registry import importer, jobs
from registry.access import AccessDenied
from registry.households import list_versions, snapshot_of
from registry.importer import ImportFileError, import_files
from registry.synth import generate
from registry.validation import validate_records
from tests.factories import default_members, household_record, member


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def write_files(directory: Path, households: list[tuple[dict, list[dict]]], *, bom: bool = False) -> tuple[Path, Path]:
    """Write (record, members) pairs in the import format."""
    directory.mkdir(parents=True, exist_ok=True)
    hh_path, m_path = directory / "households.csv", directory / "members.csv"
    encoding = "utf-8-sig" if bom else "utf-8"
    with open(hh_path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HOUSEHOLD_FIELD_NAMES)
        for record, _members in households:
            writer.writerow([_cell(record.get(f)) for f in HOUSEHOLD_FIELD_NAMES])
    with open(m_path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MEMBER_FIELD_NAMES)
        for record, members in households:
            for m in members:
                row = {**m, "household_id": m.get("household_id", record["household_id"])}
                writer.writerow([_cell(row.get(f)) for f in MEMBER_FIELD_NAMES])
    return hh_path, m_path


def read_report(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def good(n: int) -> list[tuple[dict, list[dict]]]:
    return [(household_record(), default_members()) for _ in range(n)]


def count(model) -> int:
    from models import db

    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def synth_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synth")
    generate(directory, households=40, seed=4242)
    return directory / "households.csv", directory / "members.csv"


def _index_definitions() -> list[tuple[str, str]]:
    """PostgreSQL: the loaded tables' secondary indexes and constraints, as the catalog prints them
    (empty on SQLite)."""
    from models import db
    from registry import import_sql

    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return []
    return sorted((d.name, d.create) for d in import_sql._deferrable(connection))


def assert_snapshots_match(household_ids):
    """Every imported household is at version 1, which reads as its current state."""
    from models import db

    for household in db.session.scalars(select(Household).where(Household.household_id.in_(household_ids))):
        versions = list_versions(household)
        assert [v.version_no for v in versions] == [1] == [household.current_version]
        assert versions[0].snapshot == snapshot_of(household), household.household_id


# --- the happy path --------------------------------------------------------------------------


def test_import_synthetic_files_in_several_buckets(db_session, synth_files, make_user):
    admin = make_user("admin")
    before = count(AuditEvent)
    result = import_files(*synth_files, actor=admin, source_ref="job:1", bucket_households=7)
    db_session.commit()
    assert result.outcome == "imported" and result.issue_count == 0
    assert result.households_imported == result.households_in_file == 40
    assert result.members_imported == result.members_in_file
    ids = pd.read_csv(synth_files[0], dtype=str)["household_id"].tolist()
    households = db_session.scalars(select(Household).where(Household.household_id.in_(ids))).all()
    assert len(households) == 40
    h = households[0]
    assert (h.upazila_code, h.district_code, h.division_code) == (h.union_code[:6], h.union_code[:4], h.union_code[:2])
    assert h.status == "active" and h.current_version == 1 and h.created_at is not None
    assert all(m.age_years is not None for m in h.members)
    versions = db_session.scalars(select(HouseholdVersion).join(Household).where(Household.household_id.in_(ids))).all()
    assert {(v.source, v.source_ref, v.created_by_id, v.version_no) for v in versions} == {
        ("import", "job:1", admin.id, 1)
    }
    assert_snapshots_match(ids)
    # One audit event for the whole import, not one per household (plus queueing the dedup job).
    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count(AuditEvent) - before))
    assert sorted(e.action for e in events) == ["import.completed", "job.enqueue"]


def test_import_queues_duplicate_keys_for_the_imported_households(db_session, synth_files):
    from registry.dedup import rebuild_keys

    result = import_files(*synth_files, actor=None, bucket_households=15)
    db_session.commit()
    ids = sorted(db_session.scalars(select(Household.id)))
    job = db_session.scalar(select(Job).where(Job.kind == "dedup.index").order_by(Job.id.desc()))
    assert result.households_imported == 40
    assert job.status == "queued" and job.payload == {"households": [ids[0], ids[-1]]}
    assert count(MemberMatchKey) == 0
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "succeeded", job.error
    keys = {(k.member_id, k.name_key, k.birth_year) for k in db_session.scalars(select(MemberMatchKey))}
    assert keys and {k[0] for k in keys} <= set(db_session.scalars(select(Member.id)))
    # The same keys as a full rebuild.
    rebuild_keys()
    assert keys == {(k.member_id, k.name_key, k.birth_year) for k in db_session.scalars(select(MemberMatchKey))}
    # Re-importing creates nothing, so queues nothing.
    again = import_files(*synth_files, actor=None)
    assert again.households_imported == 0
    assert db_session.scalar(select(func.count()).select_from(Job).where(Job.kind == "dedup.index")) == 1


def test_reimport_creates_nothing_new(db_session, synth_files):
    first = import_files(*synth_files, actor=None, bucket_households=10)
    households, members, versions = count(Household), count(Member), count(HouseholdVersion)
    second = import_files(*synth_files, actor=None, bucket_households=10)
    assert first.households_imported == 40
    assert second.outcome == "imported" and second.issue_count == 0
    assert second.households_imported == 0 and second.households_already_registered == 40
    assert (count(Household), count(Member), count(HouseholdVersion)) == (households, members, versions)


def test_existing_household_is_never_overwritten(db_session, tmp_path, households):
    registered = households.create()
    changed = dict(household_record(), household_id=registered.household_id, rooms=9)
    data = [(changed, default_members()), *good(2)]
    result = import_files(*write_files(tmp_path, data), actor=None)
    assert result.households_imported == 2 and result.households_already_registered == 1
    db_session.refresh(registered)
    assert registered.rooms == 2 and registered.current_version == 1


def test_bangla_text_round_trips_exactly_with_bom(db_session, tmp_path):
    name = "মোছাম্মৎ রোকেয়া বেগম"
    father = "আব্দুল করিম (মৃত)"
    record = household_record(village='চর কুকরী, "দক্ষিণ" পাড়া', address="বাড়ি ১২,\nওয়ার্ড ৩")
    members = default_members()
    members[0] = member(1, name_bn=name, name_en=None, father_name=father, nid_number="1234567890")
    write_files(tmp_path, [(record, members)], bom=True)
    result = import_files(tmp_path / "households.csv", tmp_path / "members.csv", actor=None)
    assert result.households_imported == 1
    household = db_session.scalar(select(Household).where(Household.household_id == record["household_id"]))
    head = household.members[0]
    assert (head.name_bn, head.father_name) == (name, father)
    assert household.village == record["village"] and household.address == record["address"]
    assert_snapshots_match([record["household_id"]])


def test_members_of_a_household_may_be_anywhere_in_the_file(db_session, tmp_path):
    data = good(6)
    write_files(tmp_path, data)
    members = pd.read_csv(tmp_path / "members.csv", dtype=str, keep_default_na=False)
    members.sample(frac=1, random_state=3).to_csv(tmp_path / "members.csv", index=False)
    result = import_files(tmp_path / "households.csv", tmp_path / "members.csv", actor=None, bucket_households=2)
    assert result.issue_count == 0 and result.households_imported == 6 and result.members_imported == 18


def test_worker_processes_give_the_same_result(db_session, synth_files):
    result = import_files(*synth_files, actor=None, bucket_households=10, workers=2)
    assert result.outcome == "imported" and result.households_imported == 40


def test_worker_processes_do_not_run_the_main_module_again(tmp_path):
    """A script calling the import needs no ``__main__`` guard (with ``spawn``'s default it would
    start the pool again in every worker, which hangs), and ``socreg`` is not re-imported (its whole
    command line) in every worker."""
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import sys\n"
        "from registry import importer\n"
        "pool = importer.worker_pool(1)\n"
        "print(pool.apply(eval, (\"getattr(__import__('sys').modules.get('__mp_main__'), '__file__', None)\",)))\n"
        "pool.terminate()\n"
        "print(sys.modules['__main__'].__file__ == __file__)\n",  # the parent's main module is put back
        encoding="utf-8",
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "True"]


def test_a_quote_inside_an_unquoted_value_reads_the_same_in_parallel(db_session, tmp_path):
    """pandas reads ``5"A`` as three characters, but the quote flips the quote counting that splits
    the file for parallel reading: with a value holding a line break further on, a range would start
    inside it. The import notices (the range before ends inside quotes) and reads the file whole."""
    data = good(40)
    data[3][0]["address"] = "Holding 5A near the school"
    data[30][0]["address"] = "Holding 9\nsecond line"
    hh_path, m_path = write_files(tmp_path, data)
    text = hh_path.read_text(encoding="utf-8")
    hh_path.write_text(text.replace("Holding 5A near", 'Holding 5"A near'), encoding="utf-8")
    ranges, _lines = importer._record_starts(hh_path, 2)
    assert b"\nsecond line" in hh_path.read_bytes()[ranges[0][1] - 12 : ranges[0][1] + 12]  # a bad split point
    result = import_files(hh_path, m_path, actor=None, workers=2, bucket_households=5)
    assert result.outcome == "imported" and result.households_imported == 40
    stored = dict(db_session.execute(select(Household.household_id, Household.address)).all())
    assert stored[data[3][0]["household_id"]] == 'Holding 5"A near the school'
    assert stored[data[30][0]["household_id"]] == "Holding 9\nsecond line"
    # A file that is malformed whatever the split still gets its own error.
    hh_path.write_text(text + '1,"unterminated\n', encoding="utf-8")
    with pytest.raises(ImportFileError, match="not a well-formed CSV file"):
        import_files(hh_path, m_path, actor=None, workers=2, bucket_households=5)


def test_files_are_split_for_reading_only_between_records(tmp_path):
    """Large files are read in byte ranges by several processes: a range never starts inside a
    quoted value, even one holding line breaks, and knows the line it starts on."""
    path = tmp_path / "f.csv"
    rows = [
        "a,b",
        *[f"{i},plain" for i in range(5)],
        '5,"first line\nsecond, line\nthird"',
        *[f"{i},x" for i in range(6, 12)],
    ]
    path.write_bytes("\n".join(rows).encode() + b"\n")
    text = path.read_bytes()
    for parts in (1, 2, 3, 5, 8):
        ranges, lines = importer._record_starts(path, parts)
        assert ranges[0][0] == len(b"a,b\n") and ranges[-1][1] == len(text)
        for (start, _end), line in zip(ranges, lines, strict=True):
            assert text[:start].count(b'"') % 2 == 0 and text[start - 1 : start] == b"\n"
            assert line == text[:start].count(b"\n") + 1
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_reading_in_parallel_keeps_row_numbers_and_multiline_values(db_session, tmp_path):
    """Two processes read the files; a value with line breaks and commas stays whole and every
    report row number is still the line in the file."""
    data = good(30)
    for i, (record, members) in enumerate(data):
        record["address"] = f'বাড়ি {i},\nগ্রাম, "উত্তর" পাড়া'
        members[0]["name_bn"] = f"রহিম, {i}"
    data[20][1][1]["sex"] = 7
    hh_path, m_path = write_files(tmp_path, data)
    single = import_files(hh_path, m_path, actor=None, workers=1, report_path=tmp_path / "one.csv")
    parallel = import_files(
        hh_path, m_path, actor=None, workers=2, bucket_households=4, report_path=tmp_path / "two.csv"
    )
    assert single.outcome == parallel.outcome == "rejected"
    assert read_report(tmp_path / "one.csv") == read_report(tmp_path / "two.csv")
    [issue] = read_report(tmp_path / "two.csv")
    lines = m_path.read_text(encoding="utf-8").split("\n")
    assert lines[int(issue["row"]) - 1].startswith(data[20][0]["household_id"])

    data[20][1][1]["sex"] = 2
    hh_path, m_path = write_files(tmp_path, data)
    result = import_files(hh_path, m_path, actor=None, workers=2, bucket_households=4)
    assert result.households_imported == 30
    household = db_session.scalar(select(Household).where(Household.household_id == data[7][0]["household_id"]))
    assert household.address == data[7][0]["address"]
    assert household.members[0].name_bn == "রহিম, 7"


# --- all or nothing ---------------------------------------------------------------------------


def test_a_bad_row_at_the_end_leaves_the_registry_unchanged(db_session, synth_files, tmp_path):
    members = pd.read_csv(synth_files[1], dtype=str, keep_default_na=False)
    members.loc[len(members) - 1, "sex"] = "7"
    members.to_csv(tmp_path / "members.csv", index=False)
    before = (count(Household), count(Member), count(HouseholdVersion))
    report = tmp_path / "report.csv"
    result = import_files(synth_files[0], tmp_path / "members.csv", actor=None, report_path=report, bucket_households=9)
    db_session.rollback()
    assert result.outcome == "rejected" and result.households_imported == 0
    assert (count(Household), count(Member), count(HouseholdVersion)) == before
    rows = read_report(report)
    assert len(rows) == 1
    last_line = len(members) + 1  # the header is line 1
    assert rows[0] == {
        "file": "members.csv",
        "row": str(last_line),
        "household_id": members.loc[len(members) - 1, "household_id"],
        "field": "sex",
        "value": "7",
        "rule": "one of 1, 2, 3",
    }
    assert result.issues_by_rule == {"sex: one of 1, 2, 3": 1}
    assert result.first_issues[0]["row"] == last_line


def test_skip_invalid_imports_the_valid_households_and_reports_the_rest(db_session, tmp_path):
    data = good(5)
    data[1][0]["rooms"] = 30
    data[3][1][2]["sex"] = 9  # one bad member rejects the whole household
    report = tmp_path / "report.csv"
    result = import_files(*write_files(tmp_path, data), actor=None, skip_invalid=True, report_path=report)
    assert result.outcome == "imported"
    assert result.households_imported == 3 and result.members_imported == 9 and result.households_rejected == 2
    registered = set(db_session.scalars(select(Household.household_id)))
    assert {d[0]["household_id"] for d in data} & registered == {data[i][0]["household_id"] for i in (0, 2, 4)}
    rows = read_report(report)
    assert [(r["file"], r["row"], r["household_id"], r["field"]) for r in rows] == [
        ("households.csv", "3", data[1][0]["household_id"], "rooms"),
        ("members.csv", "13", data[3][0]["household_id"], "sex"),
    ]


@pytest.mark.parametrize("buckets", [1, 2, 3, 6])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("ids_in", ["memory", "index", "memory, then index"])
@pytest.mark.parametrize("first_load", ["indexes kept", "indexes deferred"])
def test_skip_invalid_keeps_the_first_row_of_a_repeated_national_id_in_file_order(
    db_session, tmp_path, buckets, reverse, ids_in, first_load, monkeypatch
):
    """Whatever order the buckets are loaded in (PostgreSQL writes each bucket as it comes, and the
    household that comes first in the file may come last), the first row of a national ID repeated
    across households wins and every later one is rejected."""
    # PostgreSQL finds the repeats with a set of the IDs written so far when no registry member held
    # an ID at the start, else (and once the set is full) with the unique index.
    from registry import import_sql

    real = import_sql.begin_direct_load

    def begin(conn, **kwargs):
        load = real(conn, **kwargs)
        load.had_nids = ids_in == "index"
        return load

    monkeypatch.setattr(import_sql, "begin_direct_load", begin)
    if ids_in == "memory, then index":
        monkeypatch.setattr(importer, "WRITTEN_NIDS_IN_MEMORY", 0)
    # Deferred, the unique index on national IDs is built as soon as the import needs to ask it.
    monkeypatch.setattr(importer, "DEFER_INDEXES_FROM", 1 if first_load == "indexes deferred" else 10**9)
    before = _index_definitions()
    data = good(6)
    nid = data[0][1][0]["nid_number"]
    data[2][1][0]["nid_number"] = nid
    data[5][1][0]["nid_number"] = nid
    if reverse:  # the same households and buckets, the other file order
        data.reverse()
    ids = [d[0]["household_id"] for d in data]
    holders = [i for i, (_record, members) in enumerate(data) if any(m["nid_number"] == nid for m in members)]
    report = tmp_path / "report.csv"
    result = import_files(
        *write_files(tmp_path, data), actor=None, skip_invalid=True, report_path=report, bucket_households=buckets
    )
    assert result.outcome == "imported"
    assert result.households_imported == 4 and result.households_rejected == 2
    registered = set(db_session.scalars(select(Household.household_id)))
    assert registered & set(ids) == set(ids) - {ids[i] for i in holders[1:]}
    assert db_session.scalar(select(Member.household_pk).where(Member.nid_number == nid)) == db_session.scalar(
        select(Household.id).where(Household.household_id == ids[holders[0]])
    )
    rows = read_report(report)
    assert sorted((r["household_id"], r["rule"]) for r in rows) == sorted(
        (ids[i], importer.NID_DUPLICATE_RULE) for i in holders[1:]
    )
    assert result.members_imported == db_session.scalar(
        select(func.count()).select_from(Member).join(Household).where(Household.household_id.in_(ids))
    )
    assert_snapshots_match(ids)
    assert _index_definitions() == before


def test_a_failure_mid_import_leaves_nothing_behind(db_session, synth_files, monkeypatch, deferrals, is_postgres):
    """Even a caller that commits after an unexpected error finds nothing of the import written;
    on PostgreSQL the failed first load gets back the indexes it dropped."""
    before = (count(Household), count(Member), count(HouseholdVersion))
    calls = []
    real = importer._validate_and_stage

    def failing(load, *args, **kwargs):
        def load_then_fail(res):
            load(res)
            calls.append(res.bucket)
            if len(calls) == 2:
                raise OSError("disk full")

        load_then_fail.prepare = getattr(load, "prepare", None)
        return real(load_then_fail, *args, **kwargs)

    monkeypatch.setattr(importer, "_validate_and_stage", failing)
    indexes = _index_definitions()
    with pytest.raises(OSError, match="disk full"):
        import_files(*synth_files, actor=None, bucket_households=10)
    assert (count(Household), count(Member), count(HouseholdVersion)) == before
    assert len(calls) == 2 and (deferrals[0] if is_postgres else deferrals == [])
    assert _index_definitions() == indexes


# --- a first load: indexes and foreign keys built once at the end (PostgreSQL) -------------------


@pytest.fixture
def deferrals(monkeypatch):
    """Every first-load deferral of the test: the indexes and foreign keys it dropped."""
    from registry import import_sql

    seen: list[list[str]] = []
    real = import_sql._defer_indexes

    def spy(load):
        real(load)
        seen.append(sorted(d.name for d in load.deferred))

    monkeypatch.setattr(import_sql, "_defer_indexes", spy)
    monkeypatch.setattr(importer, "DEFER_INDEXES_FROM", 1)
    return seen


def test_a_first_load_rebuilds_every_index_and_foreign_key_as_it_was(db_session, postgres_only, synth_files, deferrals):
    before = _index_definitions()
    assert {"fk_members_household_pk_households", "uq_members_nid_number", "uq_households_household_id"} <= {
        name for name, _create in before
    }
    reported = []
    result = import_files(
        *synth_files, actor=None, bucket_households=9, workers=2, progress=lambda *p: reported.append(p)
    )
    assert result.outcome == "imported" and result.households_imported == 40
    assert deferrals == [[name for name, _create in before]]  # all of them, and nothing else
    rebuilt = [p for p in reported if p[0] == "index"]
    assert rebuilt[0] == ("index", 0, len(before)) and rebuilt[-1] == ("index", len(before), len(before))
    assert result.phases["index"] > 0
    assert _index_definitions() == before
    ids = pd.read_csv(synth_files[0], dtype=str)["household_id"].tolist()
    assert_snapshots_match(ids)
    # The rebuilt constraints hold: a second row with an imported national ID is refused.
    holder = db_session.scalar(select(Member).where(Member.nid_number.is_not(None)).limit(1))
    with pytest.raises(IntegrityError, match="uq_members_nid_number"), db_session.begin_nested():
        db_session.execute(
            insert(Member).values(household_pk=holder.household_pk, **member(99, nid_number=holder.nid_number))
        )


def test_a_rejected_first_load_gets_its_indexes_back(db_session, postgres_only, synth_files, tmp_path, deferrals):
    members = pd.read_csv(synth_files[1], dtype=str, keep_default_na=False)
    members.loc[len(members) - 1, "sex"] = "7"
    members.to_csv(tmp_path / "members.csv", index=False)
    before = _index_definitions()
    result = import_files(synth_files[0], tmp_path / "members.csv", actor=None, bucket_households=9)
    assert result.outcome == "rejected" and deferrals and deferrals[0]
    assert _index_definitions() == before
    assert (count(Household), count(Member), count(HouseholdVersion)) == (0, 0, 0)


def test_a_first_load_in_a_deadlock_with_a_waiting_import_loads_with_its_indexes(
    app, db_session, postgres_only, synth_files, deferrals
):
    """A session that read the tables and then waits for the import lock (say, a second import
    in a transaction that looked at the registry first) closes a cycle with the first load's wait
    for its exclusive locks. PostgreSQL breaks the cycle by failing the session that waited first,
    here the first load's lock request: the import then loads with its indexes instead of failing."""
    from models import db
    from registry import import_sql

    before = _index_definitions()
    outcome = []
    engine = db.engine

    def waiting_import():
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '3s'"))
            other.execute(text("SELECT count(*) FROM members"))
            # Once the first load waits for a lock this session holds, wait for its import lock.
            while not other.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks w JOIN pg_locks a ON a.pid = w.pid "
                    "WHERE a.locktype = 'advisory' AND a.granted AND NOT w.granted AND w.pid <> pg_backend_pid())"
                )
            ).scalar():
                time.sleep(0.01)
            try:
                other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": import_sql.IMPORT_LOCK_KEY})
                outcome.append("locked")
            except OperationalError as exc:
                outcome.append(type(exc.orig).__name__)
            other.rollback()

    thread = threading.Thread(target=waiting_import)
    thread.start()
    result = import_files(*synth_files, actor=None, bucket_households=9)
    thread.join()
    assert result.outcome == "imported" and result.households_imported == 40
    assert deferrals == [[]]  # the first load gave way and kept its indexes
    assert _index_definitions() == before
    # It then held the import lock until this test's transaction ends: the other session timed out.
    assert outcome == ["LockNotAvailable"]


def test_a_registry_in_use_is_loaded_with_its_indexes(
    app, db_session, postgres_only, synth_files, deferrals, monkeypatch
):
    """When another session is reading the tables, the first load does not wait for it: after a short
    lock timeout it keeps the indexes and loads row by row, and the reader is never blocked for long."""
    from models import db
    from registry import import_sql

    monkeypatch.setattr(import_sql, "DEFER_LOCK_TIMEOUT", "200ms")
    before = _index_definitions()
    with db.engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM members"))  # holds a share lock until it ends
        result = import_files(*synth_files, actor=None, bucket_households=9)
        reader.rollback()
    assert result.outcome == "imported" and result.households_imported == 40
    assert deferrals == [[]]
    assert _index_definitions() == before
    assert db_session.scalar(text("SHOW lock_timeout")) == "0"  # the import's own setting did not leak


# --- every rule, with a bad row -----------------------------------------------------------------


def _rule_cases():
    """(name, how to spoil the data, file, field, rule) for each rule the import enforces."""

    def hh(field, value):
        def spoil(data):
            data[-1][0][field] = value

        return spoil

    def mem(field, value, index=0):
        def spoil(data):
            data[-1][1][index][field] = value

        return spoil

    def two_heads(data):
        data[-1][1][1]["relation_to_head"] = 1

    def no_head(data):
        data[-1][1][0]["relation_to_head"] = 8

    def dup_line(data):
        data[-1][1][2]["line_no"] = 2

    def dup_household(data):
        data[-1][0]["household_id"] = data[0][0]["household_id"]
        data[-1][0]["union_code"] = data[0][0]["union_code"]

    def orphan(data):
        data[-1][1].append(member(9, household_id="10040915-999999", relation_to_head=3))

    def nid_twice(data):
        data[-1][1][0]["nid_number"] = data[0][1][0]["nid_number"]

    def no_name(data):
        data[-1][1][0].update(name_bn=None, name_en=None)

    def no_age(data):
        data[-1][1][0].update(age_years=None, date_of_birth=None)

    def born_after_interview(data):
        data[-1][1][0].update(age_years=None, date_of_birth="2026-02-01")

    def pregnant_man(data):
        data[-1][1][0]["pregnant_or_lactating"] = True

    def outside_union_prefix(data):
        data[-1][0]["household_id"] = "10040916-000001"

    def no_consent_date(data):
        data[-1][0].update(consent_given=True, consent_date=None)

    return [
        ("unknown code", hh("dwelling_structure", 7), "households.csv", "dwelling_structure", "one of 1, 2, 3, 4"),
        ("range", hh("rooms", 21), "households.csv", "rooms", "integer >= 0 and <= 20"),
        ("not a number", hh("cattle", "two"), "households.csv", "cattle", "integer >= 0 and <= 1000"),
        ("negative", hh("land_cultivable_decimal", -1), "households.csv", "land_cultivable_decimal", "number >= 0"),
        ("required", hh("tenure", None), "households.csv", "tenure", "required"),
        ("bool", hh("toilet_shared", "maybe"), "households.csv", "toilet_shared", "0/1, true/false or yes/no"),
        ("date", hh("interview_date", "15/01/2026"), "households.csv", "interview_date", "date as YYYY-MM-DD"),
        ("future date", hh("interview_date", "2999-01-01"), "households.csv", "interview_date", "not be in the future"),
        ("codeset", hh("safety_net_benefits", "OAA;XYZ"), "households.csv", "safety_net_benefits", "';'-separated"),
        ("text length", hh("village", "x" * 121), "households.csv", "village", "at most 120 characters"),
        ("id format", hh("household_id", "ABC"), "households.csv", "household_id", "union code (8 digits)"),
        ("id length", hh("household_id", "10040915-" + "1" * 20), "households.csv", "household_id", "at most 24"),
        ("unknown union", hh("union_code", "99999999"), "households.csv", "union_code", "unknown union code"),
        ("area type", hh("area_type", 2), "households.csv", "area_type", "must match the union's area type"),
        ("id prefix", outside_union_prefix, "households.csv", "household_id", "must start with the household's union"),
        ("consent date", no_consent_date, "households.csv", "consent_date", "required when consent_given"),
        ("duplicate household", dup_household, "households.csv", "household_id", "duplicate household_id in file"),
        ("no head", no_head, "households.csv", "relation_to_head", "exactly one member with relation_to_head=1"),
        ("two heads", two_heads, "households.csv", "relation_to_head", "exactly one member with relation_to_head=1"),
        ("duplicate line", dup_line, "members.csv", "line_no", "line_no must be unique within the household"),
        ("orphan", orphan, "members.csv", "household_id", "no household with this household_id in the file"),
        ("member code", mem("sex", 4), "members.csv", "sex", "one of 1, 2, 3"),
        ("age range", mem("age_years", 130), "members.csv", "age_years", "integer >= 0 and <= 120"),
        ("no name", no_name, "members.csv", "name_bn", "at least one of name_bn, name_en"),
        ("no age", no_age, "members.csv", "age_years", "age_years or date_of_birth is required"),
        ("dob", born_after_interview, "members.csv", "date_of_birth", "on or before the interview date"),
        ("pregnant", pregnant_man, "members.csv", "pregnant_or_lactating", "only for women aged 12-55"),
        ("nid format", mem("nid_number", "12345"), "members.csv", "nid_number", "10, 13 or 17 digits"),
        ("brn format", mem("birth_reg_number", "123"), "members.csv", "birth_reg_number", "17 digits"),
        ("mobile", mem("mobile_number", "+8801711"), "members.csv", "mobile_number", "Bangladeshi mobile number"),
        ("nid twice in file", nid_twice, "members.csv", "nid_number", importer.NID_DUPLICATE_RULE),
    ]


@pytest.mark.parametrize(("case", "spoil", "file", "field", "rule"), _rule_cases(), ids=[c[0] for c in _rule_cases()])
def test_every_rule_rejects_the_file_and_names_the_problem(db_session, tmp_path, case, spoil, file, field, rule):
    data = good(4)
    spoil(data)
    before = count(Household)
    # Rules that span households must also hold when they are validated in different buckets.
    buckets = 2 if case in ("nid twice in file", "orphan", "duplicate household") else importer.BUCKET_HOUSEHOLDS
    result = import_files(*write_files(tmp_path, data), actor=None, bucket_households=buckets)
    assert result.outcome == "rejected", case
    assert count(Household) == before
    found = [(i["file"], i["field"], i["rule"]) for i in result.first_issues]
    assert any(f == file and fld == field and rule in r for f, fld, r in found), found


def test_nid_already_held_by_a_registry_member(db_session, tmp_path, households):
    existing = households.create()
    data = good(2)
    data[1][1][0]["nid_number"] = existing.members[0].nid_number
    result = import_files(*write_files(tmp_path, data), actor=None)
    assert result.outcome == "rejected"
    assert [(i["row"], i["field"], i["rule"]) for i in result.first_issues] == [
        (5, "nid_number", importer.NID_REGISTERED_RULE)
    ]


def test_nid_rule_texts_match_the_validator():
    def frames(nid_a, nid_b):
        hh = pd.DataFrame([household_record(), household_record()], dtype=object)
        members = [
            {**member(1, nid_number=nid), "household_id": h}
            for nid, h in ((nid_a, hh.loc[0, "household_id"]), (nid_b, hh.loc[1, "household_id"]))
        ]
        return hh, pd.DataFrame(members, dtype=object)

    result = validate_records(
        *frames("1234567890", "1234567890"),
        union_area_types={"10040915": 1},
        registered_nids=lambda nids: set(),
    )
    assert {i.rule for i in result.issues if i.field == "nid_number"} == {importer.NID_DUPLICATE_RULE}
    result = validate_records(
        *frames("1234567890", "1234567891"),
        union_area_types={"10040915": 1},
        registered_nids=lambda nids: {"1234567890"},
    )
    assert {i.rule for i in result.issues if i.field == "nid_number"} == {importer.NID_REGISTERED_RULE}


# --- file-level problems: one clear message ----------------------------------------------------


def test_file_problems_get_one_clear_message(db_session, tmp_path):
    hh_path, m_path = write_files(tmp_path, good(2))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFileError, match="empty.csv is empty"):
        import_files(empty, m_path, actor=None)

    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(HOUSEHOLD_FIELD_NAMES) + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="header but no data rows"):
        import_files(header_only, m_path, actor=None)

    with pytest.raises(ImportFileError, match="were the two files swapped"):
        import_files(m_path, hh_path, actor=None)

    missing = tmp_path / "missing.csv"
    pd.read_csv(hh_path, dtype=str).drop(columns=["rooms", "tenure"]).to_csv(missing, index=False)
    with pytest.raises(ImportFileError, match="lacks required households column\\(s\\): rooms, tenure"):
        import_files(missing, m_path, actor=None)

    latin = tmp_path / "latin1.csv"
    text = hh_path.read_text(encoding="utf-8").replace("Char Kukri", "Chär Kukri")
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(ImportFileError, match="latin1.csv is not UTF-8 text: byte 0xE4 on line 2"):
        import_files(latin, m_path, actor=None)

    # Past the first MiB the reading finds it (in parallel), with the same line and position.
    long_rows = good(300)
    for record, _members in long_rows:
        record["address"] = "Holding 1, " + "x" * 4000
    long_rows[280][0]["village"] = "Chor Bazar"
    deep_dir = tmp_path / "deep"
    deep, deep_members = write_files(deep_dir, long_rows)
    raw = deep.read_bytes().replace(b"Chor Bazar", "Chör Bazar".encode("latin-1"))
    deep.write_bytes(raw)
    bad_at = raw.index(b"\xf6")
    assert bad_at > importer.ENCODING_PROBE_BYTES
    bad_line = raw.count(b"\n", 0, bad_at) + 1
    expected = f"deep.csv is not UTF-8 text: byte 0xF6 on line {bad_line} .position {bad_at}."
    deep.rename(deep_dir / "deep.csv")
    for workers in (1, 2):
        with pytest.raises(ImportFileError, match=expected):
            import_files(deep_dir / "deep.csv", deep_members, actor=None, workers=workers, bucket_households=50)

    # Blank lines push the first data row past the first MiB: still the same message, no crash.
    blank_first = tmp_path / "blank_first.csv"
    header = hh_path.read_text(encoding="utf-8").split("\n", 1)[0]
    blank_lines = "\n" * (importer.ENCODING_PROBE_BYTES + 10)
    blank_first.write_bytes((header + blank_lines).encode() + "Chör\n".encode("latin-1"))
    blank_line = len(blank_lines) + 1  # the header is line 1
    with pytest.raises(ImportFileError, match=f"blank_first.csv is not UTF-8 text: byte 0xF6 on line {blank_line} "):
        import_files(blank_first, m_path, actor=None)

    ragged = tmp_path / "ragged.csv"
    extra_field = hh_path.read_text(encoding="utf-8").splitlines()[-1] + ",surplus"
    ragged.write_text(hh_path.read_text(encoding="utf-8") + extra_field + "\n", encoding="utf-8")
    for workers in (1, 2):
        with pytest.raises(ImportFileError, match="ragged.csv is not a well-formed CSV file.*line 4") as error:
            import_files(ragged, m_path, actor=None, workers=workers, bucket_households=1)
        assert error.value.field == "households"

    other_hh, other_members = write_files(tmp_path / "other", good(2))
    with pytest.raises(ImportFileError, match="none of its 6 rows belongs to a household in households.csv"):
        import_files(hh_path, other_members, actor=None)


# --- who may import ------------------------------------------------------------------------------


def test_only_supervisors_and_admins_import(db_session, tmp_path, make_user):
    files = write_files(tmp_path, good(1))
    with pytest.raises(AccessDenied):
        import_files(*files, actor=make_user("enumerator", areas=["10"]))


def test_supervisor_imports_only_inside_their_areas(db_session, tmp_path, make_user):
    supervisor = make_user("supervisor", areas=["30"])
    result = import_files(*write_files(tmp_path, good(1)), actor=supervisor)
    assert result.outcome == "rejected"
    assert result.first_issues[0]["field"] == "union_code"
    assert "outside the importing user's assigned areas (30)" in result.first_issues[0]["rule"]


# --- the background job -------------------------------------------------------------------------


def test_import_job_succeeds_and_records_the_outcome(db_session, tmp_path, make_user):
    admin = make_user("admin")
    hh_path, m_path = write_files(tmp_path, good(3))
    job = jobs.enqueue(
        "import",
        {"households_path": str(hh_path), "members_path": str(m_path), "report_path": str(tmp_path / "r.csv")},
        actor=admin,
    )
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "succeeded", job.error
    assert job.result["households_imported"] == 3 and job.result["source_ref"] == f"job:{job.id}"
    version = db_session.scalar(select(HouseholdVersion).where(HouseholdVersion.source_ref == f"job:{job.id}"))
    assert version.created_by_id == admin.id


def test_rejected_import_job_fails_but_keeps_its_summary(db_session, tmp_path, make_user):
    admin = make_user("admin")
    data = good(2)
    data[1][0]["rooms"] = 99
    hh_path, m_path = write_files(tmp_path, data)
    report = tmp_path / "r.csv"
    job = jobs.enqueue(
        "import",
        {"households_path": str(hh_path), "members_path": str(m_path), "report_path": str(report)},
        actor=admin,
    )
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "failed" and job.attempts == 1 and job.error.startswith("import rejected")
    assert job.result["outcome"] == "rejected" and job.result["issues_by_rule"] == {"rooms: integer >= 0 and <= 20": 1}
    assert report.exists()
    assert not db_session.scalar(select(Household).where(Household.household_id == data[0][0]["household_id"]))


def test_uploads_survive_a_failure_that_will_be_retried_and_go_after_the_last(
    db_session, tmp_path, make_user, monkeypatch
):
    admin = make_user("admin")
    hh_path, m_path = write_files(tmp_path, good(1))
    with hh_path.open("rb") as households, m_path.open("rb") as members:
        job = importer.submit_import(tmp_path / "uploads", households, members, actor=admin)
    job.max_attempts = 2
    db_session.commit()
    uploads = [Path(job.payload["households_path"]), Path(job.payload["members_path"])]

    def crash(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(importer, "import_files", crash)
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "queued" and job.attempts == 1  # will be retried: the files are still needed
    assert all(path.exists() for path in uploads)

    job.run_after = utcnow()  # skip the retry back-off
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "failed" and job.attempts == 2
    assert not any(path.exists() for path in uploads)


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.parametrize("first_load", ["indexes kept", "indexes deferred"])
def test_two_concurrent_imports_of_the_same_file_create_no_duplicates(
    app, postgres_only, tmp_path, first_load, monkeypatch, request
):
    from models import db

    # Deferred: the first import drops and rebuilds the indexes while the second waits for it.
    deferrals = request.getfixturevalue("deferrals") if first_load == "indexes deferred" else None
    if deferrals is None:
        monkeypatch.setattr(importer, "DEFER_INDEXES_FROM", 10**9)

    directory = tmp_path / "concurrent"
    generate(directory, households=30, seed=9090)
    files = (directory / "households.csv", directory / "members.csv")
    ids = pd.read_csv(files[0], dtype=str)["household_id"].tolist()
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run():
        with app.app_context():
            try:
                barrier.wait()
                result = import_files(*files, actor=None)
                db.session.commit()
                results.append(result)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        if deferrals is not None:
            assert len(deferrals) == 1 and deferrals[0]  # the second found households: no deferral
        assert sorted(r.households_imported for r in results) == [0, 30]
        assert sorted(r.households_already_registered for r in results) == [0, 30]
        with app.app_context():
            assert db.session.scalar(select(func.count()).where(Household.household_id.in_(ids))) == 30
            assert (
                db.session.scalar(
                    select(func.count())
                    .select_from(HouseholdVersion)
                    .join(Household)
                    .where(Household.household_id.in_(ids))
                )
                == 30
            )
    finally:
        with app.app_context():
            db.session.execute(delete(Household).where(Household.household_id.in_(ids)))
            db.session.commit()
            db.session.remove()


# --- the command line -----------------------------------------------------------------------------


def test_cli_imports_and_prints_counts(runner, db_session, tmp_path, make_user):
    supervisor = make_user("supervisor", areas=["10"])
    hh_path, m_path = write_files(tmp_path, good(2))
    result = runner.invoke(
        args=["import", "--households", str(hh_path), "--members", str(m_path), "--user", supervisor.username]
    )
    assert result.exit_code == 0, result.output
    assert f"importing as {supervisor.username} (supervisor)" in result.output
    assert "imported 2 household(s) with 6 member(s); 0 already registered, 0 rejected" in result.output
    again = runner.invoke(args=["import", "--households", str(hh_path), "--members", str(m_path)])
    assert again.exit_code == 0 and "importing as the system" in again.output
    assert "imported 0 household(s) with 0 member(s); 2 already registered" in again.output


def test_cli_rejects_with_exit_1_and_writes_the_report(runner, db_session, tmp_path):
    data = good(2)
    data[0][1][1]["sex"] = 5
    hh_path, m_path = write_files(tmp_path, data)
    report = tmp_path / "out" / "report.csv"
    result = runner.invoke(
        args=["import", "--households", str(hh_path), "--members", str(m_path), "--report", str(report)]
    )
    assert result.exit_code == 1
    assert "1 problem(s), by rule:" in result.output and "sex: one of 1, 2, 3" in result.output
    assert "members.csv row 3 (household " in result.output and "import rejected: nothing was written" in result.output
    assert read_report(report)[0]["field"] == "sex"
    events = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "import.rejected")).all()
    assert events and events[-1].actor_name == "system"


def test_cli_file_errors_and_unknown_user(runner, db_session, tmp_path, make_user):
    hh_path, m_path = write_files(tmp_path, good(1))
    swapped = runner.invoke(args=["import", "--households", str(m_path), "--members", str(hh_path)])
    assert swapped.exit_code == 1 and "were the two files swapped" in swapped.output
    nobody = runner.invoke(args=["import", "--households", str(hh_path), "--members", str(m_path), "--user", "nobody"])
    assert nobody.exit_code == 1 and "no user 'nobody'" in nobody.output
    viewer = make_user("viewer")
    denied = runner.invoke(
        args=["import", "--households", str(hh_path), "--members", str(m_path), "--user", viewer.username]
    )
    assert denied.exit_code == 1 and "may not do this" in denied.output


def test_demo_households_come_from_the_generator_through_the_import(db_session, tmp_path):
    from registry.demo import load_demo_households

    messages = []
    assert load_demo_households(12, echo=messages.append, data_dir=tmp_path) == 12
    assert load_demo_households(12, echo=messages.append, data_dir=tmp_path) == 0
    assert messages[-1] == "demo households: 12 already registered"
    versions = db_session.scalars(select(HouseholdVersion).where(HouseholdVersion.source == "demo")).all()
    assert len(versions) == 12 and {v.source_ref for v in versions} == {"demo:20261122"}


def test_very_long_reports_are_written_unsorted(db_session, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "SORT_REPORT_MAX", 0)
    data = good(2)
    data[0][0]["rooms"] = 40
    data[1][1][0]["sex"] = 8
    report = tmp_path / "report.csv"
    result = import_files(*write_files(tmp_path, data), actor=None, report_path=report)
    assert result.rejected and result.issue_count == 2
    assert sorted((r["field"], r["row"]) for r in read_report(report)) == [("rooms", "2"), ("sex", "5")]
    assert {i["field"] for i in result.first_issues} == {"rooms", "sex"}


# --- version 1 by reference ------------------------------------------------------------------


def test_imported_version_1_keeps_its_state_when_the_household_changes(db_session, tmp_path):
    """An import stores version 1 without a snapshot (the current tables hold it); the first change
    stores it before applying, so history, as-of reads and diffs are the same as for any household."""
    from registry.diff import diff_states
    from registry.households import get_household, get_version, version_as_of, write_version

    data = good(2)
    result = import_files(*write_files(tmp_path, data), actor=None)
    assert result.households_imported == 2
    household = get_household(data[0][0]["household_id"])
    stored = db_session.scalar(select(HouseholdVersion.snapshot).where(HouseholdVersion.household_pk == household.id))
    assert stored is None
    imported_state = snapshot_of(household)
    imported_at = utcnow()

    values = {**imported_state["household"], "rooms": imported_state["household"]["rooms"] + 1}
    write_version(household, values, imported_state["members"][:-1], actor=None, source="test", reason="moved out")
    db_session.flush()
    db_session.expire_all()

    household = get_household(data[0][0]["household_id"])
    stored = db_session.scalar(
        select(HouseholdVersion.snapshot).where(
            HouseholdVersion.household_pk == household.id, HouseholdVersion.version_no == 1
        )
    )
    assert stored == imported_state
    assert get_version(household, 1).snapshot == imported_state
    assert version_as_of(household, imported_at).snapshot == imported_state
    assert get_version(household, 2).snapshot == snapshot_of(household) != imported_state
    diff = diff_states(get_version(household, 1).snapshot, get_version(household, 2).snapshot)
    assert diff["summary"]["members_removed"] == 1
    # The other household still reads its version 1 from the current tables.
    other = get_household(data[1][0]["household_id"])
    assert get_version(other, 1).snapshot == snapshot_of(other)


def _first_change_of_an_imported_household(session, tmp_path):
    """Import a household, load its version-1 row (snapshot left to the current tables), then
    change it once; returns the household, that row and the state imported."""
    from registry.households import get_household, write_version

    data = good(1)
    import_files(*write_files(tmp_path, data), actor=None)
    household = get_household(data[0][0]["household_id"])
    imported_state = snapshot_of(household)
    version_1 = session.scalar(
        select(HouseholdVersion).where(HouseholdVersion.household_pk == household.id, HouseholdVersion.version_no == 1)
    )
    assert version_1.snapshot is None
    values = {**imported_state["household"], "rooms": imported_state["household"]["rooms"] + 1}
    write_version(household, values, imported_state["members"], actor=None, source="test", reason="a room added")
    return household, version_1, imported_state


def test_a_loaded_version_1_row_reads_its_stored_snapshot_after_the_first_change(db_session, tmp_path):
    """A version-1 row already in the session (a history page, a diff) must not keep reading "by
    reference" once the first change stored its snapshot: the current tables no longer hold it."""
    from registry.households import get_version

    household, version_1, imported_state = _first_change_of_an_imported_household(db_session, tmp_path)
    assert version_1.snapshot == imported_state  # the same object, not reloaded
    assert get_version(household, 1).snapshot == imported_state


def test_the_first_change_and_a_queued_job_need_no_returning(tmp_path, monkeypatch):
    """SQLite before 3.35 has no RETURNING: on such an embedded database the first change of an
    imported household must still store version 1 (for an object already loaded too), and a
    queued job must get its own id. A fresh app whose SQLite driver reports 3.31 (Ubuntu 20.04's)
    has SQLAlchemy avoid RETURNING everywhere; this checks that our own statements do too. (It
    uses its own SQLite file, whichever database the suite runs on.)"""
    import sqlite3.dbapi2

    from flask_migrate import upgrade

    from registry.geo import load_geography
    from web.app import create_app

    monkeypatch.setattr(sqlite3.dbapi2, "sqlite_version_info", (3, 31, 1))  # SQLAlchemy's SQLite driver module
    old = create_app(
        "testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'old.db'}", UPLOAD_FOLDER=str(tmp_path / "up")
    )
    sent = []

    def record(conn, cursor, statement, *args):
        sent.append(statement)

    with old.app_context():
        upgrade()
        load_geography()
        db.session.commit()
        assert not db.engine.dialect.update_returning and not db.engine.dialect.insert_returning
        event.listen(db.engine, "before_cursor_execute", record)
        _first_change_and_jobs(db.session, tmp_path)
        db.session.remove()
        db.engine.dispose()
    assert any(sql.startswith("UPDATE household_versions") for sql in sent)
    assert any(sql.startswith("INSERT INTO jobs") for sql in sent)
    assert not [sql for sql in sent if "RETURNING" in sql.upper()]


def _first_change_and_jobs(db_session, tmp_path):
    household, version_1, imported_state = _first_change_of_an_imported_household(db_session, tmp_path)
    assert version_1.snapshot == imported_state
    db_session.commit()
    stored = db_session.scalar(
        select(HouseholdVersion.snapshot).where(
            HouseholdVersion.household_pk == household.id, HouseholdVersion.version_no == 1
        )
    )
    assert stored == imported_state
    first, second = (jobs.queue_job("test.ok", {"n": n}, actor=None) for n in (1, 2))
    db_session.commit()
    assert [(j.id, j.payload["n"]) for j in db_session.scalars(select(Job).where(Job.id.in_([first, second])))] == [
        (first, 1),
        (second, 2),
    ]
    audited = db_session.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "job.enqueue")).all()
    assert {str(first), str(second)} <= set(audited)


def test_only_a_version_1_may_leave_its_snapshot_to_the_current_tables(db_session, households):
    from sqlalchemy.exc import IntegrityError

    household = households.create()
    db_session.add(HouseholdVersion(household_pk=household.id, version_no=2, source="test", snapshot=None))
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()


def test_imported_snapshots_can_be_stored_on_demand(db_session, tmp_path):
    from registry.households import get_household, store_imported_snapshots

    data = good(3)
    import_files(*write_files(tmp_path, data), actor=None)
    ids = [d[0]["household_id"] for d in data]
    assert store_imported_snapshots(ids[:2]) == 2
    assert store_imported_snapshots(ids) == 1  # only the one still by reference
    for household_id in ids:
        household = get_household(household_id)
        stored = db_session.scalar(
            select(HouseholdVersion.snapshot).where(HouseholdVersion.household_pk == household.id)
        )
        assert stored == snapshot_of(household)


def test_first_load_skips_registry_probes_and_a_concurrent_registration_fails_cleanly(
    db_session, postgres_only, tmp_path, households, monkeypatch
):
    """Into an empty registry nothing can be registered already, so the import does not probe the
    registry per bucket; if someone registers one of the file's national IDs meanwhile, the COPY
    refuses it and the import fails whole, saying to run it again (which then reports the ID)."""
    from registry import import_sql

    existing = households.create()
    data = good(3)
    data[2][1][0]["nid_number"] = existing.members[0].nid_number
    before = (count(Household), count(Member), count(HouseholdVersion))
    real = import_sql.begin_direct_load

    def as_if_empty(conn, **kwargs):
        load = real(conn, **kwargs)
        load.had_households = load.had_nids = False  # as if the registry was empty at the start
        return load

    monkeypatch.setattr(import_sql, "begin_direct_load", as_if_empty)
    with pytest.raises(import_sql.ConcurrentRegistration, match="run the import again"):
        import_files(*write_files(tmp_path, data), actor=None)
    assert (count(Household), count(Member), count(HouseholdVersion)) == before

    monkeypatch.setattr(import_sql, "begin_direct_load", real)
    result = import_files(*write_files(tmp_path, data), actor=None)
    assert result.outcome == "rejected" and result.issues_by_rule == {f"nid_number: {importer.NID_REGISTERED_RULE}": 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_old_mac_line_endings_and_short_rows(db_session, tmp_path, workers):
    """Files whose lines end in CR alone import like any other; a row with too few cells is padded
    and validation names what is missing, even when it is the first row a process reads."""
    data = good(4)
    hh_path, m_path = write_files(tmp_path, data)
    for path in (hh_path, m_path):
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    result = import_files(hh_path, m_path, actor=None, workers=workers, bucket_households=1)
    assert result.outcome == "imported" and result.households_imported == 4

    short = tmp_path / "short"
    hh_path, m_path = write_files(short, good(3))
    lines = hh_path.read_text(encoding="utf-8").splitlines()
    lines[1] = ",".join(lines[1].split(",")[:3])  # the first data row stops after three cells
    hh_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_files(hh_path, m_path, actor=None, workers=workers, bucket_households=1)
    assert result.outcome == "rejected"
    assert {(i["row"], i["rule"]) for i in result.first_issues if i["field"] == "tenure"} == {(2, "required")}
