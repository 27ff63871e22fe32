"""Households and their versions: create, new version, history, as-of, integrity."""

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from models import AuditEvent, Household, HouseholdVersion, Member
from registry import households as hh
from registry.validation import RecordValidationError
from tests.factories import default_members, household_record


def test_create_registers_version_one_with_snapshot(households, db_session):
    household = households.create()
    assert household.current_version == 1
    assert household.upazila_code == "100409" and household.division_code == "10"
    (version,) = hh.list_versions(household)
    assert version.snapshot == hh.snapshot_of(household)
    assert [m["line_no"] for m in version.snapshot["members"]] == [1, 2, 3]
    assert version.snapshot["members"][0]["name_bn"] == "রহিম উদ্দিন"
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.object_id == household.household_id))


def test_invalid_household_is_refused_and_nothing_written(households, db_session):
    record = household_record(dwelling_structure=9)
    members = default_members()
    members[0]["nid_number"] = "123"
    with pytest.raises(RecordValidationError) as err:
        hh.create_household(record, members, actor=None, source="test")
    fields = err.value.fields()
    assert "dwelling_structure" in fields and "nid_number" in fields
    assert db_session.scalar(select(Household).where(Household.household_id == record["household_id"])) is None


def test_duplicate_registry_id_refused(households):
    household = households.create()
    record = household_record(household_id=household.household_id)
    with pytest.raises(RecordValidationError, match="already registered"):
        hh.create_household(record, default_members(), actor=None, source="test")


def test_nid_held_by_another_household_is_refused(households):
    first = households.create()
    members = default_members()
    members[0]["nid_number"] = first.members[0].nid_number
    with pytest.raises(RecordValidationError, match="already held by a current member"):
        households.create(members=members)


def test_new_version_keeps_history_and_current_equals_latest(households, make_user, db_session):
    household = households.create()
    actor = make_user("supervisor", areas=["10"])
    state = hh.snapshot_of(household)
    values = dict(state["household"], rooms=3, electricity=2)
    members = [dict(m) for m in state["members"] if m["line_no"] != 3]
    members.append(
        dict(
            state["members"][2],
            line_no=4,
            name_en="Baby",
            age_years=0,
            occupation=0,
            currently_enrolled=False,
            education_level=0,
        )
    )
    version = hh.write_version(household, values, members, actor=actor, source="test", reason="field visit")
    db_session.flush()
    assert version.version_no == 2 and household.current_version == 2
    assert [m.line_no for m in household.members] == [1, 2, 4]
    v1, v2 = hh.list_versions(household)
    assert v1.snapshot["household"]["rooms"] == 2 and v2.snapshot["household"]["rooms"] == 3
    assert v2.snapshot == hh.snapshot_of(household)
    assert hh.version_meta(v2)["created_by"] == actor.username


def test_state_as_of_a_timestamp(households, db_session):
    household = households.create()
    v1 = hh.get_version(household, 1)
    v1.created_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    state = hh.snapshot_of(household)
    v2 = hh.write_version(household, dict(state["household"], rooms=4), state["members"], actor=None, source="test")
    v2.created_at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    db_session.flush()
    assert hh.version_as_of(household, dt.datetime(2026, 2, 1, tzinfo=dt.UTC)).version_no == 1
    assert hh.version_as_of(household, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)).version_no == 2
    with pytest.raises(hh.VersionNotFound, match="not registered yet"):
        hh.version_as_of(household, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


def test_optimistic_lock_detects_concurrent_version_bump(households, db_session):
    household = households.create()
    db_session.execute(
        sa.update(Household).where(Household.id == household.id).values(current_version=5),
        execution_options={"synchronize_session": False},
    )
    household.rooms = 7
    with pytest.raises(sa.orm.exc.StaleDataError):
        db_session.flush()


def test_database_refuses_bad_codes_by_any_path(households, db_session):
    household = households.create()
    with pytest.raises(sa.exc.IntegrityError):
        with db_session.begin_nested():
            db_session.execute(sa.update(Household).where(Household.id == household.id).values(dwelling_structure=8))
    with pytest.raises(sa.exc.IntegrityError):
        with db_session.begin_nested():
            db_session.execute(sa.update(Member).where(Member.household_pk == household.id).values(sex=5))
    with pytest.raises(sa.exc.IntegrityError):
        with db_session.begin_nested():
            db_session.execute(sa.update(Household).where(Household.id == household.id).values(union_code="99999999"))


def test_versions_are_unique_per_household(households, db_session):
    household = households.create()
    with pytest.raises(sa.exc.IntegrityError):
        with db_session.begin_nested():
            db_session.add(HouseholdVersion(household_pk=household.id, version_no=1, source="x", snapshot={}))
            db_session.flush()


def test_audit_trail_is_append_only(households, db_session):
    households.create()
    event_id = db_session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with db_session.begin_nested():
            db_session.execute(sa.update(AuditEvent).where(AuditEvent.id == event_id).values(action="tampered"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with db_session.begin_nested():
            db_session.execute(sa.delete(AuditEvent).where(AuditEvent.id == event_id))


def test_list_households_filters_and_paginates(households, db_session):
    for _ in range(3):
        households.create()
    dhaka = households.dhaka_union()
    households.create(union_code=dhaka)
    page = hh.list_households(area_code="10", per_page=2)
    assert page.total >= 3 and len(page.items) == 2 and page.pages >= 2
    assert all(h.union_code.startswith("10") for h in page.items)
    assert hh.list_households(area_code=dhaka[:2]).total >= 1
    assert hh.list_households(search="Rahim").total >= 4
