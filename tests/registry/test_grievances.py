"""Grievance services: intake, assignment, deadlines, verification, outcome, closure, privacy, scope."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from models import AuditEvent, HouseholdScore, PmtModel, ScoreRun
from models.base import utcnow
from models.grievance import GrievanceEvent
from registry import grievances as gr
from registry.access import AccessDenied
from registry.validation import RecordValidationError

OTHER_UNION = "10040987"  # another union of the same upazila as the factory's default (10040915)


# --- helpers shared with the API and page tests --------------------------------------------


def install_scores(session, scores: dict, *, model: PmtModel | None = None) -> ScoreRun:
    """A complete national score run of an active model with the given display scores
    (``{household: score}``); used where the real scoring engine is not the point of the test."""
    if model is None:
        model = session.scalar(select(PmtModel).where(PmtModel.status == "active"))
    if model is None:
        model = PmtModel(
            name="test model",
            status="active",
            method="wls",
            spec={},
            strata_variables=["urban"],
            coefficients={},
            poverty_lines={"rural": 3000.0, "urban": 3500.0},
            feature_definition_version=1,
            training_data_hash="0" * 64,
            library_versions={},
            report={},
            n_households=0,
        )
        session.add(model)
        session.flush()
    run = ScoreRun(model_id=model.id, status="complete", finished_at=utcnow(), households_scored=len(scores))
    session.add(run)
    session.flush()
    ordered = sorted(scores.items(), key=lambda item: (item[1], item[0].household_id))
    for rank, (household, score) in enumerate(ordered, start=1):
        session.add(
            HouseholdScore(
                run_id=run.id,
                household_pk=household.id,
                household_version=household.current_version,
                model_id=model.id,
                stratum="rural",
                predicted_log_pc=7.0 + score / 50,
                score=score,
                below_poverty_line=score < 30,
                national_rank=rank,
                national_percentile=rank / len(ordered),
                union_rank=rank,
                union_percentile=rank / len(ordered),
                upazila_rank=rank,
                upazila_percentile=rank / len(ordered),
            )
        )
    session.flush()
    return run


def open_case(actor, household=None, **overrides):
    fields = {
        "channel": "in_person",
        "category": "data_error",
        "description": "Our land is 5 decimals, not 50: we were excluded by mistake.",
        "household_id": household.household_id if household is not None else None,
        "complainant_name": "Amina Begum",
        "complainant_phone": "01712345678",
    }
    fields.update(overrides)
    return gr.open_grievance(actor, **fields)


@pytest.fixture
def officer(make_user):
    return make_user("grievance_officer", areas=["1004"])


@pytest.fixture
def household(households):
    return households.create()


# --- intake ---------------------------------------------------------------------------------


def test_intake_records_the_state_before_and_the_deadline(db_session, officer, household):
    install_scores(db_session, {household: 42.5})
    case = open_case(officer, household)
    assert case.status == "open" and case.union_code == household.union_code
    assert case.household_version_before == 1 and case.score_before == 42.5
    assert case.due_at - case.opened_at == dt.timedelta(days=30)
    assert [e.kind for e in case.events] == ["opened"]
    audit = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "grievance.opened")).all()
    assert len(audit) == 1 and "Amina" not in str(audit[0].after) and "01712345678" not in str(audit[0].after)


def test_intake_names_every_bad_field(db_session, officer):
    with pytest.raises(RecordValidationError) as caught:
        gr.open_grievance(
            officer, channel="fax", category="gossip", description=" ", complainant_phone="12345", union_code="99"
        )
    assert set(caught.value.fields()) == {"channel", "category", "description", "complainant_phone", "union_code"}


def test_data_dispute_needs_a_registered_household(db_session, officer):
    with pytest.raises(RecordValidationError) as caught:
        gr.open_grievance(officer, channel="hotline", category="data_error", description="wrong", union_code=None)
    assert "household_id" in caught.value.fields()
    with pytest.raises(RecordValidationError) as caught:
        open_case(officer, None, household_id="10040915-999999")
    assert caught.value.fields()["household_id"][0].startswith("no such household")


def test_exclusion_of_an_unregistered_family_is_routed_by_union(db_session, officer):
    case = gr.open_grievance(
        officer,
        channel="union_office",
        category="exclusion",
        description="We are poor and not on any list.",
        union_code="10040915",
    )
    assert case.household_pk is None and case.union_code == "10040915" and case.score_before is None


def test_intake_roles_and_areas(db_session, make_user, household):
    for role in ("viewer", "statistician", "admin"):
        with pytest.raises(AccessDenied):
            open_case(make_user(role), household)
    with pytest.raises(AccessDenied, match="outside your assigned areas"):
        open_case(make_user("grievance_officer", areas=["30"]), household)
    assert open_case(make_user("enumerator", areas=["10040915"]), household).channel == "in_person"


def test_deadline_is_configurable_globally_and_per_category(app, db_session, officer, household):
    app.config["GRIEVANCE_DEADLINE_DAYS"] = 21
    app.config["GRIEVANCE_DEADLINE_DAYS_BY_CATEGORY"] = {"payment": 7}
    try:
        data_case = open_case(officer, household)
        payment_case = open_case(officer, household, category="payment")
    finally:
        del app.config["GRIEVANCE_DEADLINE_DAYS"], app.config["GRIEVANCE_DEADLINE_DAYS_BY_CATEGORY"]
    assert (data_case.due_at - data_case.opened_at).days == 21
    assert (payment_case.due_at - payment_case.opened_at).days == 7


# --- assignment and steps -------------------------------------------------------------------


def test_assignment_to_an_officer_of_the_area_only(db_session, make_user, officer, household):
    case = open_case(officer, household)
    outsider = make_user("grievance_officer", areas=["30"])
    with pytest.raises(RecordValidationError, match="not assigned to area"):
        gr.assign_grievance(case, outsider, actor=officer)
    with pytest.raises(RecordValidationError, match="grievance officer"):
        gr.assign_grievance(case, make_user("supervisor", areas=["10"]), actor=officer)
    with pytest.raises(AccessDenied):
        gr.assign_grievance(case, officer, actor=outsider)
    colleague = make_user("grievance_officer", areas=["10040915"])
    gr.assign_grievance(case, colleague, actor=officer)
    assert case.status == "assigned" and case.assigned_to_id == colleague.id
    gr.assign_grievance(case, officer, actor=colleague)
    assert [e.summary for e in case.events][-1] == f"assigned to {officer.username} (was {colleague.username})"


def test_only_the_assigned_officer_acts_on_the_case(db_session, make_user, officer, household):
    case = open_case(officer, household)
    with pytest.raises(AccessDenied, match="not assigned yet"):
        gr.request_verification(case, actor=officer, instructions="check land")
    gr.assign_grievance(case, officer, actor=officer)
    colleague = make_user("grievance_officer", areas=["1004"])
    with pytest.raises(AccessDenied, match="only the officer assigned"):
        gr.close_grievance(case, actor=colleague, resolution_text="Nothing to change here, sorry.")


def test_verification_without_change_then_resolution_and_closure(db_session, make_user, officer, household):
    install_scores(db_session, {household: 55.0})
    case = open_case(officer, household)
    gr.assign_grievance(case, officer, actor=officer)
    task = gr.request_verification(case, actor=officer, instructions="Measure the cultivable land.")
    assert case.status == "in_verification"
    with pytest.raises(gr.GrievanceConflict, match="still open"):
        gr.request_verification(case, actor=officer, instructions="again")
    with pytest.raises(gr.GrievanceConflict, match="still open"):
        gr.resolve_grievance(case, actor=officer)
    enumerator = make_user("enumerator", areas=["10040915"])
    assert [t.id for t in gr.list_verification_tasks(enumerator)] == [task.id]
    assert gr.list_verification_tasks(make_user("enumerator", areas=["30"])) == []
    with pytest.raises(AccessDenied):
        gr.complete_verification(task, actor=make_user("enumerator", areas=["30"]), finding="no_change", note="x")
    with pytest.raises(RecordValidationError):
        gr.complete_verification(task, actor=enumerator, finding="changed", note="x")
    gr.complete_verification(task, actor=enumerator, finding="no_change", note="Land measured: 50 decimals.")
    gr.resolve_grievance(case, actor=officer)
    assert case.status == "resolved" and case.outcome == "not_applicable"
    assert case.score_before == case.score_after == 55.0
    assert case.outcome_detail["data_changed"] is False
    with pytest.raises(RecordValidationError, match="resolution_text"):
        gr.close_grievance(case, actor=officer, resolution_text="ok")
    gr.close_grievance(case, actor=officer, resolution_text="Your land was measured again: 50 decimals. No change.")
    assert case.status == "closed" and case.closed_at is not None
    assert [e.kind for e in case.events] == [
        "opened",
        "assigned",
        "verification_requested",
        "verification_completed",
        "resolved",
        "closed",
    ]
    with pytest.raises(gr.GrievanceConflict, match="closed"):
        gr.assign_grievance(case, officer, actor=officer)


def test_non_data_case_may_close_without_verification(db_session, officer, household):
    case = open_case(officer, household, category="payment")
    with pytest.raises(AccessDenied):
        gr.close_grievance(case, actor=officer, resolution_text="Payment was made on 3 March.")
    gr.assign_grievance(case, officer, actor=officer)
    gr.close_grievance(case, actor=officer, resolution_text="Payment was made on 3 March.")
    assert case.status == "closed" and case.outcome is None


def test_resolution_waits_for_the_rescore_of_the_current_version(db_session, officer, household):
    install_scores(db_session, {household: 20.0})
    case = open_case(officer, household)
    gr.assign_grievance(case, officer, actor=officer)
    household.current_version = 2  # as if a version were approved but not re-scored yet
    with pytest.raises(gr.GrievanceConflict, match="re-score .* is still pending"):
        gr.resolve_grievance(case, actor=officer)


# --- deadlines, timeline, statistics --------------------------------------------------------


def test_overdue_flags_and_queue_order(db_session, officer, household):
    late = open_case(officer, household)
    late.due_at = utcnow() - dt.timedelta(days=1)
    fresh = open_case(officer, household)
    db_session.flush()
    assert gr.is_overdue(late) and not gr.is_overdue(fresh)
    page = gr.list_grievances(officer)
    assert [g.id for g in page.items] == [late.id, fresh.id]
    assert [g.id for g in gr.list_grievances(officer, overdue=True).items] == [late.id]
    assert [g.id for g in gr.list_grievances(officer, overdue=False).items] == [fresh.id]


def test_statistics(db_session, make_user, officer, households):
    first, second = households.create(), households.create(union_code=OTHER_UNION)
    on_time = open_case(officer, first, category="payment")
    gr.assign_grievance(on_time, officer, actor=officer)
    gr.close_grievance(on_time, actor=officer, resolution_text="Paid in full on the next cycle.")
    late = open_case(officer, second, category="payment")
    gr.assign_grievance(late, officer, actor=officer)
    late.opened_at = utcnow() - dt.timedelta(days=40)
    late.due_at = late.opened_at + dt.timedelta(days=30)
    gr.close_grievance(late, actor=officer, resolution_text="Paid after the bank corrected the account.")
    open_case(officer, first, category="inclusion")
    stats = gr.grievance_stats(make_user("viewer"), level="union")
    assert stats["total"] == 3 and stats["closed"] == 2 and stats["closed_within_deadline"] == 1
    assert stats["share_within_deadline"] == 0.5
    assert stats["by_category"]["payment"] == 2 and stats["by_category"]["inclusion"] == 1
    assert stats["by_status"] == {"open": 1, "assigned": 0, "in_verification": 0, "resolved": 0, "closed": 2}
    assert stats["by_area"] == {first.union_code: 2, OTHER_UNION: 1}
    assert stats["days_to_close"]["mean"] == pytest.approx(20, abs=0.1)
    assert "Amina" not in str(stats)
    assert gr.grievance_stats(make_user("supervisor", areas=["30"]))["total"] == 0
    with pytest.raises(AccessDenied):
        gr.grievance_stats(make_user("enumerator", areas=["10"]))


# --- privacy and scope ----------------------------------------------------------------------


def test_complainant_contact_only_for_the_assigned_officer(db_session, make_user, officer, household):
    case = open_case(officer, household)
    supervisor = make_user("supervisor", areas=["10"])
    assert gr.grievance_view(case, officer)["complainant"] == {"name": "•••", "phone": "••••••••678", "masked": True}
    gr.assign_grievance(case, officer, actor=officer)
    assert gr.grievance_view(case, officer)["complainant"]["phone"] == "01712345678"
    assert gr.grievance_view(case, supervisor)["complainant"]["masked"] is True
    events = db_session.scalars(select(GrievanceEvent).where(GrievanceEvent.grievance_id == case.id)).all()
    assert all("01712345678" not in (e.summary + str(e.data)) for e in events)


def test_case_readers_and_scope(db_session, make_user, officer, household):
    case = open_case(officer, household)
    gr.require_case_reader(officer, case)
    gr.require_case_reader(make_user("supervisor", areas=["10"]), case)
    for user in (make_user("grievance_officer", areas=["30"]), make_user("viewer"), make_user("enumerator", ["10"])):
        with pytest.raises(AccessDenied):
            gr.require_case_reader(user, case)
    with pytest.raises(AccessDenied, match="about a programme"):
        gr.require_case_reader(make_user("programme_officer"), case)
    assert gr.list_grievances(make_user("grievance_officer", areas=["30"])).total == 0


def test_grievance_officer_opens_only_households_named_in_cases(db_session, make_user, officer, households):
    named, unnamed = households.create(), households.create()
    open_case(officer, named)
    gr.require_case_household_access(officer, named)
    with pytest.raises(AccessDenied, match="named in no grievance"):
        gr.require_case_household_access(officer, unnamed)
    with pytest.raises(AccessDenied, match="outside your assigned areas"):
        gr.require_case_household_access(make_user("grievance_officer", areas=["30"]), named)
    gr.require_case_household_access(make_user("supervisor", areas=["10"]), unnamed)  # other roles: unaffected
    from models import Household

    visible = db_session.scalars(select(Household.id).where(gr.case_household_scope_clause(officer))).all()
    assert visible == [named.id]


def test_grievance_officer_reads_only_the_change_requests_of_their_cases(db_session, make_user, officer, households):
    from models.change_request import ChangeRequest
    from registry import change_requests as crs
    from tests.factories import household_record, member

    named, unnamed = households.create(), households.create()
    open_case(officer, named)
    enumerator = make_user("enumerator", areas=["10040915"])

    def edit(household):
        return crs.submit_change(
            enumerator,
            "edit_household",
            payload={"household": {"rooms": 1}},
            reason="field update",
            household_id=household.household_id,
            base_version=1,
        )

    def registration(name):
        record = household_record("10040915")
        record.pop("household_id")
        return crs.submit_change(
            enumerator,
            "new_household",
            payload={"household": record, "members": [member(1, name_en=name, nid_number=None)]},
            reason="registration",
        )

    about_named, about_other = edit(named), edit(unnamed)
    family_case = gr.open_grievance(
        officer, channel="hotline", category="exclusion", description="Never registered.", union_code="10040915"
    )
    gr.assign_grievance(family_case, officer, actor=officer)
    gr.request_verification(family_case, actor=officer, instructions="Register the family.")
    linked, unlinked = registration("Jamal Mia"), registration("Rina Begum")
    gr.link_change_request(family_case, linked.id, actor=enumerator)

    visible = set(db_session.scalars(select(ChangeRequest.id).where(gr.case_change_request_scope_clause(officer))))
    assert visible == {about_named.id, linked.id}
    for cr in (about_named, linked):
        gr.require_case_change_request_access(officer, cr)
    for cr in (about_other, unlinked):
        with pytest.raises(AccessDenied, match="concerns no grievance of your areas"):
            gr.require_case_change_request_access(officer, cr)
    with pytest.raises(AccessDenied, match="outside your assigned areas"):
        gr.require_case_change_request_access(make_user("grievance_officer", areas=["30"]), about_named)
    supervisor = make_user("supervisor", areas=["10"])
    gr.require_case_change_request_access(supervisor, about_other)  # other roles: unaffected
    assert gr.case_change_request_scope_clause(supervisor) is None


# --- the complete path: verification change request → approval → re-score → eligibility ---------


@pytest.fixture
def programme_officer(make_user, db_session):
    user = make_user("programme_officer")
    user.ministry = "Ministry of Disaster Management and Relief"
    db_session.flush()
    return user


def test_data_dispute_changes_data_score_and_eligibility(db_session, make_user, officer, households, programme_officer):
    """grievance → field verification → change request → approval → re-score → eligibility → closure."""
    from registry import change_requests as crs
    from targeting import eligibility as el
    from tests.targeting.score_helpers import make_model, make_run, score_of_predicted

    household = households.create()
    others = [households.create() for _ in range(3)]
    model = make_model()
    before, after = score_of_predicted(8.6), score_of_predicted(7.6)
    assert after < 60 < before  # the programme's cut-off lies between the two
    make_run(model, {household: 8.6, **{h: 7.0 + 0.1 * i for i, h in enumerate(others)}})
    programme = el.create_programme(
        {"name": "Cash for work", "targeting": {"method": "score_below", "value": 60}}, programme_officer
    )
    lst = el.build_list(programme, programme_officer)
    case = open_case(officer, household, category="exclusion", list_id=lst.id)
    assert (
        case.programme_id == programme.id
        and case.eligible_before is False
        and case.score_before == pytest.approx(before)
    )
    assert case.outcome_detail["before"]["on_list"] is False

    gr.assign_grievance(case, officer, actor=officer)
    task = gr.request_verification(case, actor=officer, instructions="Check the cultivable land and the assets.")
    enumerator = make_user("enumerator", areas=["10040915"])
    supervisor = make_user("supervisor", areas=["1004"])
    cr = crs.submit_change(
        enumerator,
        "edit_household",
        payload={"household": {"land_cultivable_decimal": 2, "asset_mobile_phone": False}},
        reason=f"field verification for grievance {case.reference}",
        household_id=household.household_id,
        base_version=household.current_version,
    )
    with pytest.raises(AccessDenied):
        gr.link_change_request(case, cr.id, actor=make_user("enumerator", areas=["10040915"]))  # not its submitter
    gr.link_change_request(case, cr.id, actor=enumerator)
    assert task.change_request_id == cr.id and task.status == "open"
    with pytest.raises(gr.GrievanceConflict, match=f"change request {cr.id} awaits approval"):
        gr.resolve_grievance(case, actor=officer)

    crs.approve_change(cr.id, supervisor)  # the grievance hook runs inside the approval transaction
    assert task.status == "done" and task.finding == "changed" and household.current_version == 2
    assert case.events[-1].kind == "change_request_approved" and case.events[-1].actor_id == supervisor.id
    with pytest.raises(gr.GrievanceConflict, match="changed the household's data: resolve it"):
        gr.close_grievance(case, actor=officer, resolution_text="Closing without an outcome must fail.")
    with pytest.raises(gr.GrievanceConflict, match="re-score .* still pending"):
        gr.resolve_grievance(case, actor=officer)

    # The re-score of version 2 with the active model (here written by hand: the engine is not the point).
    make_run(model, {household: 7.6, **{h: 7.0 + 0.1 * i for i, h in enumerate(others)}})
    gr.resolve_grievance(case, actor=officer, note="Land was 20 decimals in the record, 2 in reality.")
    assert case.status == "resolved" and case.outcome == "now_eligible"
    assert (case.score_before, case.score_after) == (pytest.approx(before), pytest.approx(after))
    assert (case.household_version_before, case.household_version_after) == (1, 2)
    assert case.eligible_before is False and case.eligible_after is True
    assert case.outcome_detail["change_requests"] == [cr.id] and case.outcome_detail["data_changed"] is True
    assert case.outcome_detail["after"]["eligibility"]["programme_version"] == programme.version
    gr.close_grievance(case, actor=officer, resolution_text="Your record was corrected; you now qualify.")
    assert [e.kind for e in case.events] == [
        "opened",
        "assigned",
        "verification_requested",
        "change_request_linked",
        "change_request_approved",
        "resolved",
        "closed",
    ]
    view = gr.grievance_view(case, officer)
    assert view["change_request"]["status"] == "approved" and view["after"]["score"] == pytest.approx(after)


def test_outcome_is_judged_by_the_programmes_current_rule(
    db_session, make_user, officer, households, programme_officer
):
    """The programme's rule changes while the case is open: eligibility is re-evaluated against the rule
    as it is at resolution (here: still not eligible, although the old rule would now admit it), and
    every step of the path leaves an audit event."""
    from models import AuditEvent
    from registry import change_requests as crs
    from targeting import eligibility as el
    from tests.targeting.score_helpers import make_model, make_run, score_of_predicted

    household = households.create()
    others = [households.create() for _ in range(3)]
    model = make_model()
    before, after = score_of_predicted(8.6), score_of_predicted(7.6)
    make_run(model, {household: 8.6, **{h: 7.0 + 0.1 * i for i, h in enumerate(others)}})
    programme = el.create_programme(
        {"name": "Vulnerable women benefit", "targeting": {"method": "score_below", "value": 60}}, programme_officer
    )
    case = open_case(officer, household, category="exclusion", programme_id=programme.id)
    assert case.eligible_before is False and case.outcome_detail["before"]["eligibility"]["programme_version"] == 1
    gr.assign_grievance(case, officer, actor=officer)
    gr.request_verification(case, actor=officer, instructions="Check the land and the dwelling.")
    enumerator, supervisor = make_user("enumerator", areas=["10040915"]), make_user("supervisor", areas=["1004"])
    cr = crs.submit_change(
        enumerator,
        "edit_household",
        payload={"household": {"land_cultivable_decimal": 2}},
        reason=f"field verification for grievance {case.reference}",
        household_id=household.household_id,
        base_version=household.current_version,
    )
    gr.link_change_request(case, cr.id, actor=enumerator)
    crs.approve_change(cr.id, supervisor)
    make_run(model, {household: 7.6, **{h: 7.0 + 0.1 * i for i, h in enumerate(others)}})  # the re-score
    # The ministry tightens the cut-off below the household's new score before the outcome is recorded.
    el.update_programme(
        programme,
        {"name": programme.name, "targeting": {"method": "score_below", "value": round(after - 5, 1)}},
        programme_officer,
    )
    assert programme.version == 2 and after < 60
    gr.resolve_grievance(case, actor=officer)
    assert case.outcome == "still_not_eligible" and case.eligible_after is False
    assert (case.score_before, case.score_after) == (pytest.approx(before), pytest.approx(after))
    detail = case.outcome_detail
    assert detail["after"]["eligibility"]["programme_version"] == 2
    assert detail["after"]["eligibility"]["rule_hash"] != detail["before"]["eligibility"]["rule_hash"]
    gr.close_grievance(case, actor=officer, resolution_text="Your record was corrected; you still do not qualify.")
    steps = [e.kind for e in case.events]
    audited = db_session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.object_type == "grievance", AuditEvent.object_id == str(case.id))
        .order_by(AuditEvent.id)
    ).all()
    assert audited == [f"grievance.{kind}" for kind in steps]
    assert steps == [
        "opened",
        "assigned",
        "verification_requested",
        "change_request_linked",
        "change_request_approved",
        "resolved",
        "closed",
    ]


def test_approval_is_recorded_even_when_nobody_linked_the_request(db_session, make_user, officer, households):
    from registry import change_requests as crs

    household = households.create()
    case = open_case(officer, household)
    gr.assign_grievance(case, officer, actor=officer)
    task = gr.request_verification(case, actor=officer, instructions="Check the dwelling.")
    enumerator, supervisor = make_user("enumerator", areas=["10"]), make_user("supervisor", areas=["10"])
    cr = crs.submit_change(
        enumerator,
        "edit_household",
        payload={"household": {"rooms": 1}},
        reason="verified",
        household_id=household.household_id,
        base_version=1,
    )
    crs.approve_change(cr.id, supervisor)
    assert task.change_request_id == cr.id and task.finding == "changed"


def test_unregistered_family_is_registered_through_the_case(db_session, make_user, officer):
    from registry import change_requests as crs
    from tests.factories import household_record, member

    case = gr.open_grievance(
        officer,
        channel="hotline",
        category="exclusion",
        description="Landless family, never registered.",
        union_code="10040915",
    )
    gr.assign_grievance(case, officer, actor=officer)
    gr.request_verification(case, actor=officer, instructions="Visit and register the family.")
    enumerator, supervisor = make_user("enumerator", areas=["10040915"]), make_user("supervisor", areas=["10"])
    record = household_record("10040915")
    record.pop("household_id")
    cr = crs.submit_change(
        enumerator,
        "new_household",
        payload={"household": record, "members": [member(1)]},
        reason="registration asked by a grievance",
    )
    gr.link_change_request(case, cr.id, actor=enumerator)
    crs.approve_change(cr.id, supervisor)
    assert case.household_pk == cr.household_pk is not None
    gr.resolve_grievance(case, actor=officer)
    assert case.outcome == "not_applicable" and case.household_version_after == 1


def test_a_family_registered_through_the_case_is_resolved_once_scored(db_session, make_user, officer, households):
    from models import HouseholdScore, Job
    from registry import change_requests as crs
    from targeting import scoring
    from tests.factories import household_record, member

    run = install_scores(db_session, {households.create(): 50.0})
    case = gr.open_grievance(
        officer, channel="union_office", category="exclusion", description="Not registered.", union_code="10040915"
    )
    gr.assign_grievance(case, officer, actor=officer)
    gr.request_verification(case, actor=officer, instructions="Visit and register the family.")
    enumerator, supervisor = make_user("enumerator", areas=["10040915"]), make_user("supervisor", areas=["10"])
    record = household_record("10040915")
    record.pop("household_id")
    cr = crs.submit_change(
        enumerator, "new_household", payload={"household": record, "members": [member(1)]}, reason="registration"
    )
    gr.link_change_request(case, cr.id, actor=enumerator)
    crs.approve_change(cr.id, supervisor)
    job = db_session.scalar(select(Job).where(Job.kind == scoring.RESCORE_JOB).order_by(Job.id.desc()))
    assert job.status == "queued" and job.payload["household_pk"] == case.household_pk
    with pytest.raises(gr.GrievanceConflict, match="scoring of household .* is still pending"):
        gr.resolve_grievance(case, actor=officer)
    # What the re-score job writes (by hand: the engine is not the point here): the family's first score.
    db_session.add(
        HouseholdScore(
            run_id=run.id,
            household_pk=case.household_pk,
            household_version=1,
            model_id=run.model_id,
            stratum="rural",
            predicted_log_pc=7.2,
            score=12.0,
            below_poverty_line=True,
            national_rank=1,
            national_percentile=0.5,
        )
    )
    job.status = "succeeded"
    db_session.flush()
    gr.resolve_grievance(case, actor=officer)
    assert case.status == "resolved" and case.score_before is None and case.score_after == 12.0
    assert case.score_run_after_id == run.id and case.household_version_after == 1


# --- concurrency (PostgreSQL: real commits, one thread and app context each) ----------------------


def _committed_case(app) -> tuple[int, int, int]:
    import time

    from models import db
    from registry.households import create_household
    from registry.users import create_user
    from tests.factories import default_members, household_record

    with app.app_context():
        tag = f"{time.monotonic_ns() % 10**9}"
        user = create_user(f"gro{tag}", "grievance_officer", "correct horse battery", area_codes=["1004"])
        household = create_household(household_record(), default_members(), actor=None, source="test")
        case = open_case(user, household, category="payment")
        gr.assign_grievance(case, user, actor=user)
        db.session.commit()
        ids = (case.id, user.id, household.id)
        db.session.remove()
    return ids


def _cleanup_case(app, ids) -> None:
    from sqlalchemy import delete

    from models import Household, HouseholdVersion, Member, User, db
    from models.grievance import Grievance

    case_id, user_id, household_pk = ids
    with app.app_context():
        db.session.execute(delete(Grievance).where(Grievance.id == case_id))
        db.session.execute(delete(HouseholdVersion).where(HouseholdVersion.household_pk == household_pk))
        db.session.execute(delete(Member).where(Member.household_pk == household_pk))
        db.session.execute(delete(Household).where(Household.id == household_pk))
        # Audit events are append-only and name the user: deactivate it instead of deleting.
        db.session.get(User, user_id).is_active_user = False
        db.session.commit()
        db.session.remove()


def _race_close_and_verify(app, ids) -> dict[str, str]:
    import threading

    from models import User, db
    from models.grievance import Grievance

    case_id, user_id, _household_pk = ids
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def work(step):
        with app.app_context():
            officer = db.session.get(User, user_id)
            grievance = db.session.get(Grievance, case_id)
            barrier.wait()
            try:
                if step == "close":
                    gr.close_grievance(grievance, actor=officer, resolution_text="Paid on the next cycle.")
                else:
                    gr.request_verification(grievance, actor=officer, instructions="Check the bank account.")
                db.session.commit()
                results[step] = "ok"
            except gr.GrievanceConflict as exc:
                db.session.rollback()
                results[step] = f"conflict: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                results[step] = f"error: {type(exc).__name__}: {exc}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(step,)) for step in ("close", "verify")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_steps_on_one_case_apply_one_after_the_other(app, postgres_only):
    """Closing and requesting a verification at the same moment (two tabs): the row lock makes one
    wait for the other and see its result, so a case is never closed with a verification open."""
    from models import db
    from models.grievance import Grievance

    for _round in range(3):
        ids = _committed_case(app)
        try:
            results = _race_close_and_verify(app, ids)
            assert sorted(r.split(":")[0] for r in results.values()) == ["conflict", "ok"], results
            with app.app_context():
                grievance = db.session.get(Grievance, ids[0])
                open_tasks = [t for t in grievance.verifications if t.status == "open"]
                assert (grievance.status == "closed") != bool(open_tasks)
                kinds = [e.kind for e in grievance.events]
                assert kinds.count("closed") + kinds.count("verification_requested") == 1
                db.session.remove()
        finally:
            _cleanup_case(app, ids)
