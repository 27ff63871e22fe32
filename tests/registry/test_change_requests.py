"""Change requests through the service layer: permissions, four eyes, area scoping, staleness,
high-risk approvals, every kind of change, warnings, evidence, history and diffs, and (on
PostgreSQL) concurrent approvals."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import delete, func, select

from models import AuditEvent, ChangeRequest, Household, HouseholdVersion, Job, Member
from models.base import utcnow
from registry import change_requests as crs
from registry import households as hh
from registry.access import AccessDenied
from registry.diff import diff_states
from registry.validation import RecordValidationError
from tests.factories import member

BARISAL = "10"  # the factory's default union 10040915 lies in Barisal division


@pytest.fixture
def people(make_user):
    """An enumerator and two supervisors of Barisal, a supervisor of Dhaka, and the other roles."""
    return {
        "enumerator": make_user("enumerator", areas=[BARISAL]),
        "supervisor": make_user("supervisor", areas=[BARISAL]),
        "supervisor2": make_user("supervisor", areas=["1004"]),
        "dhaka_supervisor": make_user("supervisor", areas=["30"]),
        "dhaka_enumerator": make_user("enumerator", areas=["30"]),
        "admin": make_user("admin"),
        "viewer": make_user("viewer"),
        "statistician": make_user("statistician"),
        "programme_officer": make_user("programme_officer"),
        "grievance_officer": make_user("grievance_officer", areas=[BARISAL]),
    }


def edit(household, actor, reason="field visit", single_pending=True, **changes):
    return crs.submit_change(
        actor,
        "edit_household",
        household_id=household.household_id,
        base_version=household.current_version,
        payload={"household": changes or {"rooms": household.rooms + 1}},
        reason=reason,
        single_pending=single_pending,
    )


def assert_current_equals_latest_snapshot(household):
    latest = hh.current_version_of(household)
    assert hh.snapshot_of(household) == latest.snapshot


# --- the happy path ----------------------------------------------------------------------


def test_submit_and_approve_creates_the_next_version(db_session, people, households):
    household = households.create()
    cr = edit(household, people["enumerator"], rooms=4, cattle=3)
    assert cr.status == "pending" and cr.base_version == 1 and cr.approvals_required == 1
    # The stored operation keeps only what changes, so a re-base re-applies just that.
    assert cr.payload["household"] == {"rooms": 4, "cattle": 3}
    assert household.rooms == 2  # nothing applied yet

    calls = []
    crs.AFTER_APPROVAL_HOOKS.append(lambda h, v, actor: calls.append((h.household_id, v.version_no, actor.username)))
    try:
        cr = crs.approve_change(cr.id, people["supervisor"])
    finally:
        crs.AFTER_APPROVAL_HOOKS.pop()
    db_session.commit()
    assert cr.status == "approved" and cr.applied_version_no == 2
    assert calls == [(household.household_id, 2, people["supervisor"].username)]
    household = hh.get_household(household.household_id)
    assert (household.rooms, household.cattle, household.current_version) == (4, 3, 2)
    version = hh.get_version(household, 2)
    assert version.source == "change_request" and version.source_ref == f"CR-{cr.id}"
    assert version.reason == "field visit" and version.created_by_id == people["supervisor"].id
    assert_current_equals_latest_snapshot(household)
    actions = set(db_session.scalars(select(AuditEvent.action).where(AuditEvent.object_id.in_([str(cr.id)]))))
    assert {"change_request.submit", "change_request.approve"} <= actions
    assert db_session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "household.update", AuditEvent.object_id == household.household_id
        )
    )


def test_a_request_that_changes_nothing_is_refused(db_session, people, households):
    household = households.create()
    with pytest.raises(RecordValidationError) as info:
        edit(household, people["enumerator"], rooms=household.rooms)
    assert "payload" in info.value.fields()


def test_validation_names_every_bad_field(db_session, people, households):
    household = households.create()
    with pytest.raises(RecordValidationError) as info:
        edit(household, people["enumerator"], rooms=99, wall_material=7, toilet_shared="perhaps")
    assert set(info.value.fields()) == {"household.rooms", "household.wall_material", "household.toilet_shared"}
    with pytest.raises(RecordValidationError) as info:
        crs.submit_change(
            people["enumerator"],
            "edit_member",
            household_id=household.household_id,
            base_version=1,
            payload={"line_no": 2, "member": {"age_years": 200, "nid_number": "12"}},
            reason="typo",
        )
    assert set(info.value.fields()) == {"members.2.age_years", "members.2.nid_number"}


def test_envelope_errors_are_named_together(db_session, people):
    with pytest.raises(RecordValidationError) as info:
        crs.submit_change(people["enumerator"], "edit_household", payload={}, reason=" ")
    assert set(info.value.fields()) == {"reason", "household_id", "base_version"}


def test_household_id_and_union_never_change(db_session, people, households):
    household = households.create()
    with pytest.raises(RecordValidationError) as info:
        edit(household, people["enumerator"], union_code="10040917")
    assert "household.union_code" in info.value.fields()


# --- permissions -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "statistician", "programme_officer", "admin", "grievance_officer"])
def test_only_enumerators_and_supervisors_submit(db_session, people, households, role):
    household = households.create()
    with pytest.raises(AccessDenied) as info:
        edit(household, people[role])
    assert "may not do this" in info.value.reason


@pytest.mark.parametrize("role", ["enumerator", "viewer", "statistician", "programme_officer", "admin"])
def test_only_supervisors_approve_or_reject(db_session, people, households, role):
    household = households.create()
    cr = edit(household, people["supervisor"])
    with pytest.raises(AccessDenied) as info:
        crs.approve_change(cr.id, people[role])
    assert "supervisor" in info.value.reason
    with pytest.raises(AccessDenied):
        crs.reject_change(cr.id, people[role], "no good")
    if role == "admin":
        assert "never approve" in info.value.reason


def test_grievance_officer_reads_only_with_a_case_and_never_decides(db_session, people, households):
    from registry import grievances as gr

    household = households.create()
    cr = edit(household, people["enumerator"])
    with pytest.raises(AccessDenied, match="no grievance"):
        crs.require_reader(people["grievance_officer"], cr)
    gr.open_grievance(
        people["grievance_officer"],
        channel="hotline",
        category="data_error",
        description="wrong land size",
        household_id=household.household_id,
    )
    crs.require_reader(people["grievance_officer"], cr)
    with pytest.raises(AccessDenied):
        crs.approve_change(cr.id, people["grievance_officer"])


@pytest.mark.parametrize("role", ["viewer", "statistician", "programme_officer", "admin"])
def test_other_roles_cannot_read_change_requests(db_session, people, households, role):
    household = households.create()
    cr = edit(household, people["enumerator"])
    with pytest.raises(AccessDenied):
        crs.require_reader(people[role], cr)
    with pytest.raises(AccessDenied):
        crs.list_change_requests(people[role])


def test_four_eyes_the_submitter_never_approves(db_session, people, households):
    household = households.create()
    cr = edit(household, people["supervisor"])
    with pytest.raises(AccessDenied) as info:
        crs.approve_change(cr.id, people["supervisor"])
    assert "four eyes" in info.value.reason
    with pytest.raises(AccessDenied):
        crs.reject_change(cr.id, people["supervisor"], "changed my mind")
    assert crs.approve_change(cr.id, people["supervisor2"]).status == "approved"


def test_area_scoping(db_session, people, households):
    household = households.create()
    dhaka_household = households.create(union_code=households.dhaka_union())
    # Submitting outside one's area is refused.
    with pytest.raises(AccessDenied) as info:
        edit(household, people["dhaka_enumerator"])
    assert "outside your assigned areas" in info.value.reason
    cr = edit(household, people["enumerator"])
    dhaka_cr = edit(dhaka_household, people["dhaka_enumerator"])
    # A Dhaka supervisor neither sees nor decides Barisal's requests.
    with pytest.raises(AccessDenied):
        crs.require_reader(people["dhaka_supervisor"], cr)
    with pytest.raises(AccessDenied):
        crs.approve_change(cr.id, people["dhaka_supervisor"])
    with pytest.raises(AccessDenied):
        crs.reject_change(cr.id, people["dhaka_supervisor"], "not mine")
    listed = {c.id for c in crs.list_change_requests(people["dhaka_supervisor"], per_page=500).items}
    assert dhaka_cr.id in listed and cr.id not in listed
    with pytest.raises(AccessDenied):
        crs.list_change_requests(people["dhaka_supervisor"], area=BARISAL)
    # A supervisor assigned to a district sees the requests of its unions.
    assert cr.id in {c.id for c in crs.list_change_requests(people["supervisor2"], per_page=500).items}


def test_new_household_outside_area_is_refused(db_session, people, households):
    record = households.record(union_code=households.dhaka_union())
    record.pop("household_id")
    with pytest.raises(AccessDenied):
        crs.submit_change(
            people["enumerator"],
            "new_household",
            payload={"household": record, "members": households.members()},
            reason="new family",
        )


# --- one pending request, staleness and re-basing --------------------------------------------


def test_second_submission_is_told_which_request_is_pending(db_session, people, households):
    household = households.create()
    first = edit(household, people["enumerator"])
    with pytest.raises(crs.ChangeRequestConflict) as info:
        edit(household, people["supervisor"], cattle=5)
    assert info.value.code == "pending_exists"
    assert info.value.details["pending_change_request"] == first.id and str(first.id) in info.value.message
    crs.withdraw_change(first.id, people["enumerator"])
    assert edit(household, people["supervisor"], cattle=5).status == "pending"


def test_submission_against_an_old_version_is_refused(db_session, people, households):
    household = households.create()
    crs.approve_change(edit(household, people["enumerator"]).id, people["supervisor"])
    with pytest.raises(crs.ChangeRequestConflict) as info:
        crs.submit_change(
            people["enumerator"],
            "edit_household",
            household_id=household.household_id,
            base_version=1,
            payload={"household": {"cattle": 9}},
            reason="old view",
        )
    assert info.value.code == "base_outdated" and info.value.details["current_version"] == 2


def test_stale_request_is_marked_and_can_be_rebased(db_session, people, households):
    household = households.create()
    first = edit(household, people["enumerator"], rooms=5)
    second = edit(household, people["enumerator"], single_pending=False, cattle=7)
    crs.approve_change(first.id, people["supervisor"])
    db_session.commit()
    with pytest.raises(crs.ChangeRequestStale) as info:
        crs.approve_change(second.id, people["supervisor"])
    db_session.commit()  # the view commits the stale state before answering 409
    assert info.value.details == {
        "base_version": 1,
        "current_version": 2,
        "changed_since_base": {
            "household_fields": 1,
            "status_fields": 0,
            "members_added": 0,
            "members_removed": 0,
            "members_changed": 0,
        },
    }
    second = db_session.get(ChangeRequest, second.id)
    assert second.status == "stale" and "version 2" in second.decision_reason
    # Only the submitter re-bases; the answer shows what changed in between.
    with pytest.raises(AccessDenied):
        crs.rebase_change(second.id, people["supervisor"])
    second, changed = crs.rebase_change(second.id, people["enumerator"])
    assert second.status == "pending" and second.base_version == 2 and second.rebase_count == 1
    assert changed["household"] == [{"field": "rooms", "old": 2, "new": 5}]
    # The re-based request keeps the other change and applies only its own.
    crs.approve_change(second.id, people["supervisor"])
    household = hh.get_household(household.household_id)
    assert (household.rooms, household.cattle, household.current_version) == (5, 7, 3)
    assert_current_equals_latest_snapshot(household)


def test_a_stale_request_is_not_rebased_while_another_is_pending(db_session, people, households):
    household = households.create()
    first = edit(household, people["enumerator"], rooms=5)
    stale = edit(household, people["enumerator"], single_pending=False, cattle=7)
    crs.approve_change(first.id, people["supervisor"])
    with pytest.raises(crs.ChangeRequestStale):
        crs.approve_change(stale.id, people["supervisor"])
    # Its own pending state never blocks a re-base; another request on the household does.
    other = edit(hh.get_household(household.household_id), people["enumerator"], poultry=1)
    with pytest.raises(crs.ChangeRequestConflict) as info:
        crs.rebase_change(stale.id, people["enumerator"])
    assert info.value.code == "pending_exists" and info.value.details["pending_change_request"] == other.id
    assert info.value.details["kind"] == "edit_household" and f"({other.id}, edit_household" in str(info.value)
    crs.withdraw_change(other.id, people["enumerator"])
    rebased, _changed = crs.rebase_change(stale.id, people["enumerator"])
    assert rebased.status == "pending" and rebased.base_version == 2


def test_decided_requests_cannot_be_decided_again(db_session, people, households):
    household = households.create()
    cr = edit(household, people["enumerator"])
    crs.reject_change(cr.id, people["supervisor"], "no evidence")
    for action in (
        lambda: crs.approve_change(cr.id, people["supervisor"]),
        lambda: crs.reject_change(cr.id, people["supervisor"], "again"),
        lambda: crs.withdraw_change(cr.id, people["enumerator"]),
    ):
        with pytest.raises(crs.ChangeRequestConflict) as info:
            action()
        assert info.value.code == "not_pending"


def test_reject_requires_a_reason_and_withdraw_only_by_submitter(db_session, people, households):
    household = households.create()
    cr = edit(household, people["enumerator"])
    with pytest.raises(RecordValidationError) as info:
        crs.reject_change(cr.id, people["supervisor"], "  ")
    assert "reason" in info.value.fields()
    with pytest.raises(AccessDenied):
        crs.withdraw_change(cr.id, people["supervisor"])
    assert crs.withdraw_change(cr.id, people["enumerator"]).status == "withdrawn"


def test_unknown_request_is_not_found(db_session, people):
    with pytest.raises(crs.ChangeRequestNotFound):
        crs.approve_change(999_999, people["supervisor"])


# --- high-risk requests need two different approvers --------------------------------------


def test_national_id_change_needs_a_second_different_approver(db_session, people, households, make_user):
    household = households.create()
    cr = crs.submit_change(
        people["enumerator"],
        "edit_member",
        household_id=household.household_id,
        base_version=1,
        payload={"line_no": 1, "member": {"nid_number": "1987654321"}},
        reason="NID card shows another number",
    )
    assert cr.approvals_required == 2 and cr.risk_reasons == ["national ID change (line 1)"]
    assert [w["code"] for w in cr.warnings] == ["nid_changed"]
    cr = crs.approve_change(cr.id, people["supervisor"])
    assert cr.status == "pending" and crs.stage_of(cr) == "awaiting_second_approval"
    assert hh.get_household(household.household_id).current_version == 1  # nothing applied yet
    with pytest.raises(AccessDenied) as info:
        crs.approve_change(cr.id, people["supervisor"])
    assert "second must come from another supervisor" in info.value.reason
    with pytest.raises(AccessDenied):
        crs.approve_change(cr.id, people["enumerator"])
    cr = crs.approve_change(cr.id, people["supervisor2"])
    assert cr.status == "approved" and cr.first_approved_by_id == people["supervisor"].id
    assert hh.get_household(household.household_id).members[0].nid_number == "1987654321"


def test_setting_a_first_national_id_is_not_high_risk(db_session, people, households):
    household = households.create()
    cr = crs.submit_change(
        people["enumerator"],
        "edit_member",
        household_id=household.household_id,
        base_version=1,
        payload={"line_no": 3, "member": {"birth_reg_number": "20171234567890123"}},
        reason="birth registered",
    )
    assert cr.approvals_required == 1


def test_deactivation_is_high_risk_and_makes_the_household_inactive(db_session, people, households):
    household = households.create()
    cr = crs.submit_change(
        people["enumerator"],
        "deactivate",
        household_id=household.household_id,
        base_version=1,
        payload={"inactive_reason": "migrated"},
        reason="the family moved to Dhaka",
    )
    assert cr.risk_reasons == ["deactivation"]
    crs.approve_change(cr.id, people["supervisor"])
    crs.approve_change(cr.id, people["supervisor2"])
    household = hh.get_household(household.household_id)
    assert (household.status, household.inactive_reason, household.current_version) == ("inactive", "migrated", 2)
    assert hh.current_version_of(household).snapshot["status"] == "inactive"
    with pytest.raises(crs.ChangeRequestConflict) as info:
        edit(household, people["enumerator"])
    assert info.value.code == "inactive"


# --- national ID conflicts block approval ---------------------------------------------------


def test_nid_held_by_another_household_blocks_approval_until_resolved(db_session, people, households):
    holder = households.create()
    taken = holder.members[1].nid_number
    household = households.create()
    newcomer = member(
        4,
        name_en="Jamal Hossain",
        name_bn="জামাল হোসেন",
        father_name="Abul Kashem",
        mother_name="Rokeya",
        age_years=30,
        relation_to_head=7,
        nid_number=taken,
    )
    cr = crs.submit_change(
        people["enumerator"],
        "add_member",
        household_id=household.household_id,
        base_version=1,
        payload={"member": newcomer},
        reason="brother moved in",
    )
    assert cr.nid_conflicts == [
        {"line_no": 4, "nid_number": taken, "household_id": holder.household_id, "other_line_no": 2}
    ]
    with pytest.raises(crs.ChangeRequestConflict) as info:
        crs.approve_change(cr.id, people["supervisor"])
    assert info.value.code == "nid_conflict" and holder.household_id in info.value.message
    assert hh.get_household(household.household_id).current_version == 1
    # Resolved on the other household (its member's ID was wrong): now the approval goes through.
    fix = crs.submit_change(
        people["enumerator"],
        "edit_member",
        household_id=holder.household_id,
        base_version=1,
        payload={"line_no": 2, "member": {"nid_number": None}},
        reason="NID belonged to someone else",
    )
    crs.approve_change(fix.id, people["supervisor"])
    crs.approve_change(fix.id, people["supervisor2"])  # clearing an NID is high-risk
    assert crs.approve_change(cr.id, people["supervisor"]).status == "approved"
    assert len(hh.get_household(household.household_id).members) == 4


# --- every kind of change --------------------------------------------------------------------


def test_new_household_gets_the_next_registry_id_on_approval(db_session, people, households):
    existing = households.create()
    record = households.record()
    record.pop("household_id")
    cr = crs.submit_change(
        people["enumerator"],
        "new_household",
        payload={"household": record, "members": households.members()},
        reason="family not listed in the census",
    )
    assert cr.household_id is None and cr.union_code == record["union_code"] and cr.base_version is None
    cr = crs.approve_change(cr.id, people["supervisor"])
    serial = int(existing.household_id.split("-")[1])
    expected = f"{record['union_code']}-{serial + 1:06d}"
    assert cr.household_id == expected and cr.applied_version_no == 1
    created = hh.get_household(expected)
    assert len(created.members) == 3 and created.current_version == 1
    assert_current_equals_latest_snapshot(created)


def test_new_household_validation_names_member_fields(db_session, people, households):
    record = households.record()
    record.pop("household_id")
    bad = households.members()
    bad[1]["relation_to_head"] = 1  # two heads
    bad[2]["sex"] = 5
    with pytest.raises(RecordValidationError) as info:
        crs.submit_change(
            people["enumerator"], "new_household", payload={"household": record, "members": bad}, reason="x"
        )
    assert {"household.relation_to_head", "members.3.sex"} <= set(info.value.fields())


def test_add_edit_remove_member_and_change_head(db_session, people, households):
    household = households.create()
    hid = household.household_id

    def run(kind, payload, reason="visit"):
        h = hh.get_household(hid)
        cr = crs.submit_change(
            people["enumerator"],
            kind,
            household_id=hid,
            base_version=h.current_version,
            payload=payload,
            reason=reason,
        )
        cr = crs.approve_change(cr.id, people["supervisor"])
        if cr.status == "pending":
            cr = crs.approve_change(cr.id, people["supervisor2"])
        assert cr.status == "approved"
        return hh.get_household(hid)

    baby = member(
        4,
        name_en="Nayan",
        name_bn="নয়ন",
        age_years=0,
        relation_to_head=3,
        marital_status=1,
        occupation=0,
        education_level=0,
        father_name="Rahim Uddin",
        mother_name="Rahima Khatun",
    )
    h = run("add_member", {"member": {k: v for k, v in baby.items() if k != "line_no"}})
    assert [m.line_no for m in h.members] == [1, 2, 3, 4] and h.members[3].name_en == "Nayan"
    h = run("edit_member", {"line_no": 3, "member": {"education_level": 3}})
    assert h.members[2].education_level == 3 and h.current_version == 3
    # The head dies: a new head is required in the same request.
    with pytest.raises(RecordValidationError) as info:
        crs.submit_change(
            people["enumerator"],
            "remove_member",
            household_id=hid,
            base_version=3,
            payload={"line_no": 1, "removal_reason": "death"},
            reason="died",
        )
    assert "new_head_line_no" in info.value.fields()
    h = run("remove_member", {"line_no": 1, "removal_reason": "death", "new_head_line_no": 2})
    assert [m.line_no for m in h.members] == [2, 3, 4] and h.members[0].relation_to_head == 1
    assert h.members[0].nid_number  # the widow keeps her national ID
    h = run("change_head", {"new_head_line_no": 3, "former_head_relation": 6})
    assert {m.line_no: m.relation_to_head for m in h.members} == {2: 6, 3: 1, 4: 3}
    versions = hh.list_versions(h)
    assert [v.version_no for v in versions] == [1, 2, 3, 4, 5]
    assert_current_equals_latest_snapshot(h)


def test_remove_member_requires_a_known_reason_and_a_remaining_member(db_session, people, households):
    household = households.create(members=[member(1)])
    for payload, field in (
        ({"line_no": 1, "removal_reason": "bored"}, "removal_reason"),
        ({"line_no": 1, "removal_reason": "death"}, "line_no"),
        ({"line_no": 7, "removal_reason": "death"}, "line_no"),
    ):
        with pytest.raises(RecordValidationError) as info:
            crs.submit_change(
                people["enumerator"],
                "remove_member",
                household_id=household.household_id,
                base_version=1,
                payload=payload,
                reason="x",
            )
        assert field in info.value.fields()


def test_split_moves_members_to_a_new_household_in_one_transaction(db_session, people, households):
    members = households.members() + [
        member(
            4,
            name_en="Karim",
            name_bn="করিম",
            age_years=22,
            relation_to_head=3,
            marital_status=2,
            father_name="Rahim Uddin",
            mother_name="Rahima Khatun",
            nid_number="5550001111",
        ),
        member(
            5,
            name_en="Salma",
            name_bn="সালমা",
            sex=2,
            age_years=20,
            relation_to_head=4,
            marital_status=2,
            occupation=6,
            spouse_name="Karim",
            nid_number="5550002222",
        ),
    ]
    household = households.create(members=members)
    cr = crs.submit_change(
        people["enumerator"],
        "split",
        household_id=household.household_id,
        base_version=1,
        payload={
            "line_nos": [4, 5],
            "new_head_line_no": 4,
            "relations": {"5": 2},
            "household": {"village": "Notun Para", "rooms": 1},
        },
        reason="son married and set up his own household",
    )
    assert cr.proposed["line_map"] == {"4": 1, "5": 2}
    assert [m["line_no"] for m in cr.proposed["new_household"]["members"]] == [1, 2]
    cr = crs.approve_change(cr.id, people["supervisor"])
    old = hh.get_household(household.household_id)
    new = db_session.get(Household, cr.new_household_pk)
    assert [m.line_no for m in old.members] == [1, 2, 3] and old.current_version == 2
    assert [(m.line_no, m.name_en, m.relation_to_head) for m in new.members] == [(1, "Karim", 1), (2, "Salma", 2)]
    assert new.village == "Notun Para" and new.rooms == 1 and new.union_code == old.union_code
    assert new.household_id != old.household_id and new.members[0].nid_number == "5550001111"
    assert_current_equals_latest_snapshot(old)
    assert_current_equals_latest_snapshot(new)


def test_split_refuses_moving_everyone_or_a_head_outside_the_movers(db_session, people, households):
    household = households.create()
    for payload, field in (
        ({"line_nos": [1, 2, 3], "new_head_line_no": 1}, "line_nos"),
        ({"line_nos": [3], "new_head_line_no": 2}, "new_head_line_no"),
        ({"line_nos": [1, 3], "new_head_line_no": 3}, "remaining_head_line_no"),
    ):
        with pytest.raises(RecordValidationError) as info:
            crs.submit_change(
                people["enumerator"],
                "split",
                household_id=household.household_id,
                base_version=1,
                payload=payload,
                reason="x",
            )
        assert field in info.value.fields(), payload


# --- plausibility warnings ------------------------------------------------------------------


def test_plausibility_warnings_for_the_reviewer(db_session, people, households):
    household = households.create()
    cr = edit(household, people["enumerator"], land_cultivable_decimal=250)
    assert [w["code"] for w in cr.warnings] == ["land_jump"]
    crs.withdraw_change(cr.id, people["enumerator"])
    cr = crs.submit_change(
        people["enumerator"],
        "edit_member",
        household_id=household.household_id,
        base_version=1,
        payload={"line_no": 1, "member": {"age_years": 14}},
        reason="age was wrong",
    )
    codes = {w["code"] for w in cr.warnings}
    assert {"head_under_15", "age_decreases"} <= codes and cr.status == "pending"


def test_household_size_jump_warns():
    base = {"household": {}, "members": [member(1)]}
    proposed = {
        "household": {},
        "members": [member(i, relation_to_head=1 if i == 1 else 3, age_years=40 if i == 1 else 5) for i in range(1, 6)],
    }
    codes = [w["code"] for w in crs.plausibility_warnings("edit_household", base, proposed, None)]
    assert codes == ["size_jump"]


# --- bulk decisions -------------------------------------------------------------------------------


def test_bulk_approve_reports_each_item(db_session, people, households):
    good = edit(households.create(), people["enumerator"])
    own = edit(households.create(), people["supervisor"])  # the supervisor's own: four eyes refuses
    target = households.create()
    first = edit(target, people["enumerator"], rooms=6)
    stale = edit(target, people["enumerator"], single_pending=False, cattle=9)
    outcome = crs.bulk_decide([good.id, own.id, first.id, stale.id, 987654], "approve", people["supervisor"])
    db_session.commit()
    assert {s["id"] for s in outcome.succeeded} == {good.id, first.id}
    failed = {f["id"]: f["code"] for f in outcome.failed}
    assert failed == {own.id: "forbidden", stale.id: "stale", 987654: "not_found"}
    assert db_session.get(ChangeRequest, stale.id).status == "stale"  # kept despite the failure
    assert db_session.get(ChangeRequest, own.id).status == "pending"


def test_bulk_reject_needs_a_reason(db_session, people, households):
    cr = edit(households.create(), people["enumerator"])
    with pytest.raises(RecordValidationError):
        crs.bulk_decide([cr.id], "reject", people["supervisor"])
    outcome = crs.bulk_decide([cr.id], "reject", people["supervisor"], reason="duplicate of a paper form")
    assert outcome.succeeded == [
        {"id": cr.id, "status": "rejected", "applied_version": None, "awaiting_second_approval": False}
    ]


# --- evidence ------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 64


def test_evidence_is_checked_by_content_and_stored_outside_the_row(db_session, people, households, tmp_path):
    cr = edit(households.create(), people["enumerator"])
    evidence = crs.add_evidence(cr.id, people["enumerator"], "../../etc/photo.png", PNG, tmp_path)
    assert evidence.content_type == "image/png" and evidence.filename == "photo.png"
    assert (tmp_path / evidence.storage_path).read_bytes() == PNG
    assert evidence.storage_path == f"{cr.id}/{evidence.id}.png"
    pdf = crs.add_evidence(cr.id, people["enumerator"], "survey.png", PDF, tmp_path)
    assert pdf.content_type == "application/pdf"  # the content decides, not the name
    for data, name in (
        (b"MZ\x90\x00 not an image", "photo.jpg"),
        (b"", "empty.png"),
        (b"\xff\xd8\xff" + b"0" * crs.EVIDENCE_MAX_BYTES, "huge.jpg"),
    ):
        with pytest.raises(RecordValidationError) as info:
            crs.add_evidence(cr.id, people["enumerator"], name, data, tmp_path)
        assert "file" in info.value.fields()
    with pytest.raises(AccessDenied):
        crs.add_evidence(cr.id, people["supervisor"], "x.png", PNG, tmp_path)
    found, path = crs.get_evidence_file(cr.id, evidence.id, people["supervisor"], tmp_path)
    assert found.id == evidence.id and path.read_bytes() == PNG
    with pytest.raises(AccessDenied):
        crs.get_evidence_file(cr.id, evidence.id, people["dhaka_supervisor"], tmp_path)
    with pytest.raises(crs.EvidenceNotFound):
        crs.get_evidence_file(cr.id, 424242, people["supervisor"], tmp_path)


# --- history: versions, as-of reads and diffs -------------------------------------------------


def test_as_of_reads_and_version_diffs(db_session, people, households):
    household = households.create()
    before_first = utcnow()
    # Versions are immutable; pin their timestamps to test "as of" deterministically.
    db_session.execute(
        HouseholdVersion.__table__.update()
        .where(HouseholdVersion.household_pk == household.id)
        .values(created_at=before_first - dt.timedelta(days=10))
    )
    crs.approve_change(edit(household, people["enumerator"], rooms=3).id, people["supervisor"])
    household = hh.get_household(household.household_id)
    cr = crs.submit_change(
        people["enumerator"],
        "edit_member",
        household_id=household.household_id,
        base_version=2,
        payload={"line_no": 2, "member": {"name_en": "Rahima Begum", "education_level": 8}},
        reason="spelling",
    )
    crs.approve_change(cr.id, people["supervisor"])
    assert hh.version_as_of(household, before_first - dt.timedelta(days=1)).version_no == 1
    assert hh.version_as_of(household, utcnow()).version_no == 3
    with pytest.raises(hh.VersionNotFound):
        hh.version_as_of(household, before_first - dt.timedelta(days=30))
    view = crs.household_diff(household, 1, None, can_see_pii=True)
    assert (view["from_version"], view["to_version"]) == (1, 3)
    diff = view["diff"]
    assert diff["household"] == [{"field": "rooms", "old": 2, "new": 3}]
    assert diff["members"]["changed"] == [
        {
            "line_no": 2,
            "changes": [
                {"field": "name_en", "old": "Rahima Khatun", "new": "Rahima Begum"},
                {"field": "education_level", "old": 5, "new": 8},
            ],
        }
    ]
    masked = crs.household_diff(household, 2, 3, can_see_pii=False)["diff"]["members"]["changed"][0]["changes"]
    assert masked[0] == {"field": "name_en", "old": "•••", "new": "•••"} and masked[1]["new"] == 8


def test_diff_matches_members_by_line_number():
    old = {
        "household": {"rooms": 2, "land_homestead_decimal": 5.0},
        "status": "active",
        "inactive_reason": None,
        "members": [member(1), member(2, name_en="A"), member(3, name_en="B")],
    }
    new = {
        "household": {"rooms": 2, "land_homestead_decimal": 5},
        "status": "inactive",
        "inactive_reason": "duplicate",
        "members": [member(1), member(3, name_en="C"), member(4, name_en="D")],
    }
    diff = diff_states(old, new)
    assert diff["household"] == []  # 5.0 equals 5
    assert diff["status"] == [
        {"field": "status", "old": "active", "new": "inactive"},
        {"field": "inactive_reason", "old": None, "new": "duplicate"},
    ]
    assert [a["line_no"] for a in diff["members"]["added"]] == [4]
    assert [r["line_no"] for r in diff["members"]["removed"]] == [2]
    assert diff["members"]["changed"] == [{"line_no": 3, "changes": [{"field": "name_en", "old": "B", "new": "C"}]}]
    assert diff["summary"] == {
        "household_fields": 0,
        "status_fields": 2,
        "members_added": 1,
        "members_removed": 1,
        "members_changed": 1,
    }
    assert diff_states(old, old)["is_empty"] and not diff["is_empty"]
    assert diff_states(None, old)["summary"]["members_added"] == 3


def test_detail_view_shows_diff_against_current_and_what_changed_since_base(db_session, people, households):
    household = households.create()
    first = edit(household, people["enumerator"], rooms=5)
    second = edit(household, people["enumerator"], single_pending=False, poultry=20)
    crs.approve_change(first.id, people["supervisor"])
    view = crs.detail_view(second, people["supervisor"])
    assert view["requested_changes"]["household"] == [{"field": "poultry", "old": 6, "new": 20}]
    # Against the current version, approving the old proposal would also undo the rooms change.
    assert {c["field"] for c in view["diff"]["household"]} == {"rooms", "poultry"}
    assert view["changed_since_base"]["household"] == [{"field": "rooms", "old": 2, "new": 5}]
    assert view["current_version"] == 2 and view["stage"] == "awaiting_review"


def test_an_approval_answers_without_reading_the_version_it_replaced(db_session, people, households):
    """The approval's answer diffs the replaced version against the new one from memory (no read of
    a version row), and says exactly what a later read of the request says."""
    from sqlalchemy import event

    household = households.create()
    cr = edit(household, people["enumerator"], rooms=5)
    crs.approve_change(cr.id, people["supervisor"])
    db_session.commit()
    cr = edit(household, people["enumerator"], poultry=20, rooms=6)  # against version 2, stored as a row
    statements = []

    def remember(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db_session.get_bind().engine
    crs.approve_change(cr.id, people["supervisor"])
    event.listen(engine, "before_cursor_execute", remember)
    try:
        answer = crs.detail_view(cr, people["supervisor"])
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert not [s for s in statements if "household_versions" in s], statements
    db_session.commit()
    db_session.expire_all()
    later = crs.detail_view(crs.get_change_request(cr.id), people["supervisor"])
    assert answer["requested_changes"] == later["requested_changes"]
    changes = {c["field"]: (c["old"], c["new"]) for c in later["requested_changes"]["household"]}
    assert changes.keys() == {"rooms", "poultry"} and changes["rooms"] == (5, 6)  # from version 2, not 1


def test_a_rolled_back_approval_leaves_no_remembered_version(db_session, people, households):
    """A version remembered by a transaction that rolled back may never have existed (the same
    session could later be asked for that version number, written differently): it is forgotten."""
    household = households.create()
    cr = edit(household, people["enumerator"], rooms=5)
    db_session.commit()
    crs.approve_change(cr.id, people["supervisor"])
    assert db_session.info.get("registry.replaced_snapshots")
    db_session.rollback()
    assert "registry.replaced_snapshots" not in db_session.info
    assert hh.get_household(household.household_id).current_version == 1


# --- concurrency (PostgreSQL: real row locks, real commits) ----------------------------------------


def _committed_fixture(app, n_requests: int):
    """A household with ``n_requests`` pending edits against version 1, committed for real."""
    from models import db
    from registry.users import create_user
    from tests.factories import default_members, household_record

    with app.app_context():
        # Approval hooks (re-scoring) queue jobs in the approval's transaction: remember where they start.
        last_job = db.session.scalar(select(func.max(Job.id))) or 0
        tag = f"{time.monotonic_ns() % 10**8}"
        enumerator = create_user(f"enum{tag}", "enumerator", "correct horse battery", area_codes=[BARISAL])
        supervisors = [
            create_user(f"sup{tag}_{i}", "supervisor", "correct horse battery", area_codes=[BARISAL])
            for i in range(n_requests)
        ]
        household = hh.create_household(household_record(), default_members(), actor=None, source="test")
        db.session.flush()
        ids = [
            crs.submit_change(
                enumerator,
                "edit_household",
                household_id=household.household_id,
                base_version=1,
                payload={"household": {"poultry": 100 + i}},
                reason=f"attempt {i}",
                single_pending=False,
            ).id
            for i in range(n_requests)
        ]
        db.session.commit()
        out = (household.id, household.household_id, ids, [s.id for s in supervisors], enumerator.id, last_job)
        db.session.remove()
    return out


def _cleanup(app, household_pk, user_ids, last_job):
    from models import User, db

    with app.app_context():
        db.session.execute(delete(Job).where(Job.id > last_job))
        db.session.execute(delete(ChangeRequest).where(ChangeRequest.household_pk == household_pk))
        db.session.execute(delete(HouseholdVersion).where(HouseholdVersion.household_pk == household_pk))
        db.session.execute(delete(Member).where(Member.household_pk == household_pk))
        db.session.execute(delete(Household).where(Household.id == household_pk))
        # Audit events are append-only (triggers refuse deletes), so the test users stay; deactivate them.
        for user in db.session.scalars(select(User).where(User.id.in_(user_ids))):
            user.is_active_user = False
        db.session.commit()
        db.session.remove()


def _approve_in_threads(app, pairs):
    """Approve (request id, supervisor id) pairs at once, one thread and app context each."""
    from models import User, db

    results: dict[int, str] = {}
    barrier = threading.Barrier(len(pairs))

    def work(index, cr_id, user_id):
        # Wait for everyone before touching the database: the pool has fewer connections than threads.
        barrier.wait(timeout=60)
        with app.app_context():
            try:
                crs.approve_change(cr_id, db.session.get(User, user_id))
                db.session.commit()
                results[index] = "approved"
            except crs.ChangeRequestStale:
                db.session.commit()
                results[index] = "stale"
            except crs.ChangeRequestConflict as exc:
                db.session.rollback()
                results[index] = exc.code
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                results[index] = f"error: {type(exc).__name__}: {exc}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(i, cr, u)) for i, (cr, u) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results.get(i, "no result") for i in range(len(pairs))]


def test_twenty_concurrent_approvals_of_the_same_base_apply_exactly_one(app, postgres_only):
    from models import db

    household_pk, household_id, ids, supervisor_ids, enumerator_id, last_job = _committed_fixture(app, 20)
    try:
        results = _approve_in_threads(app, list(zip(ids, supervisor_ids, strict=True)))
        assert sorted(results) == ["approved"] + ["stale"] * 19, results
        with app.app_context():
            household = hh.get_household(household_id)
            versions = hh.list_versions(household)
            assert [v.version_no for v in versions] == [1, 2] and household.current_version == 2
            winner = ids[results.index("approved")]
            assert household.poultry == 100 + ids.index(winner)
            assert versions[1].source_ref == f"CR-{winner}"
            statuses = {
                cr.id: cr.status for cr in db.session.scalars(select(ChangeRequest).where(ChangeRequest.id.in_(ids)))
            }
            assert sorted(statuses.values()) == ["approved"] + ["stale"] * 19
            assert hh.snapshot_of(household) == versions[-1].snapshot
            db.session.remove()
    finally:
        _cleanup(app, household_pk, supervisor_ids + [enumerator_id], last_job)


def test_two_threads_approving_the_same_request_apply_it_once(app, postgres_only):
    from models import db

    household_pk, household_id, ids, supervisor_ids, enumerator_id, last_job = _committed_fixture(app, 2)
    try:
        results = _approve_in_threads(app, [(ids[0], supervisor_ids[0]), (ids[0], supervisor_ids[1])])
        assert sorted(results) == ["approved", "not_pending"], results
        with app.app_context():
            household = hh.get_household(household_id)
            assert [v.version_no for v in hh.list_versions(household)] == [1, 2]
            db.session.remove()
    finally:
        _cleanup(app, household_pk, supervisor_ids + [enumerator_id], last_job)


def _race(app, actions):
    """Run ``actions`` (callables taking nothing) at once, one thread and app context each; each
    commits what it did and reports ``"ok"`` or the code of the conflict that stopped it."""
    from models import db

    results: dict[int, str] = {}
    barrier = threading.Barrier(len(actions))

    def work(index, action):
        barrier.wait(timeout=60)
        with app.app_context():
            try:
                action()
                db.session.commit()
                results[index] = "ok"
            except crs.ChangeRequestConflict as exc:
                db.session.rollback()
                results[index] = exc.code
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                results[index] = f"error: {type(exc).__name__}: {exc}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results.get(i, "no result") for i in range(len(actions))]


@pytest.mark.parametrize("attempt", range(3))
def test_approval_and_rejection_of_the_same_request_at_once_one_wins(app, postgres_only, attempt):
    """Approve and reject serialise on the household's row lock: never both (an applied change whose
    request says rejected), never neither."""
    from models import User, db

    household_pk, household_id, ids, supervisor_ids, enumerator_id, last_job = _committed_fixture(app, 2)
    try:
        results = _race(
            app,
            [
                lambda: crs.approve_change(ids[0], db.session.get(User, supervisor_ids[0])),
                lambda: crs.reject_change(ids[0], db.session.get(User, supervisor_ids[1]), "not plausible"),
            ],
        )
        assert sorted(results) == ["not_pending", "ok"], results
        with app.app_context():
            household = hh.get_household(household_id)
            status = db.session.get(ChangeRequest, ids[0]).status
            versions = [v.version_no for v in hh.list_versions(household)]
            if results[0] == "ok":
                assert status == "approved" and versions == [1, 2] and household.current_version == 2
            else:
                assert status == "rejected" and versions == [1] and household.current_version == 1
            db.session.remove()
    finally:
        _cleanup(app, household_pk, supervisor_ids + [enumerator_id], last_job)


def test_simultaneous_submissions_for_one_household_leave_one_pending(app, postgres_only):
    """The one-pending rule holds under concurrency: the check runs under the household's row lock."""
    from models import User, db

    household_pk, household_id, ids, supervisor_ids, enumerator_id, last_job = _committed_fixture(app, 0)
    try:

        def submit(i):
            return lambda: crs.submit_change(
                db.session.get(User, enumerator_id),
                "edit_household",
                household_id=household_id,
                base_version=1,
                payload={"household": {"poultry": 200 + i}},
                reason=f"visit {i}",
            )

        results = _race(app, [submit(i) for i in range(6)])
        assert sorted(results) == ["ok"] + ["pending_exists"] * 5, results
        with app.app_context():
            pending = db.session.scalars(select(ChangeRequest).where(ChangeRequest.household_pk == household_pk)).all()
            assert [cr.status for cr in pending] == ["pending"]
            db.session.remove()
    finally:
        _cleanup(app, household_pk, supervisor_ids + [enumerator_id], last_job)


@pytest.mark.parametrize(
    "member, field, rule",
    [
        ({}, "members.2.line_no", "required"),
        ({"line_no": "two"}, "members.2.line_no", "a whole number"),
        ("not an object", "members.2", "an object with the member's fields"),
    ],
)
def test_new_household_member_without_a_usable_line_number_is_named(
    db_session, people, households, member, field, rule
):
    record = households.record()
    record.pop("household_id")
    members = households.members()[:1]
    if isinstance(member, dict):
        member = {**{k: v for k, v in households.members()[1].items() if k != "line_no"}, **member}
    with pytest.raises(RecordValidationError) as info:
        crs.submit_change(
            people["enumerator"],
            "new_household",
            payload={"household": record, "members": [*members, member]},
            reason="x",
        )
    assert [(i.field, i.rule) for i in info.value.issues] == [(field, rule)]
    assert db_session.scalar(select(func.count()).select_from(ChangeRequest)) == 0
