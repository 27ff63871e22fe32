"""Grievance redress: intake, assignment, deadlines, field verification, outcome, closure, statistics.

A grievance must end in a recorded decision and, where the data was wrong, in corrected data, a
new score and a re-evaluated eligibility. The path for a data dispute is:

1. ``open_grievance``: any channel; the household's version, PMT score and eligibility *before*
   are recorded, and the service deadline is fixed (``GRIEVANCE_DEADLINE_DAYS``, default 30, or a
   per-category value from ``GRIEVANCE_DEADLINE_DAYS_BY_CATEGORY``).
2. ``assign_grievance`` to a grievance officer of the area.
3. ``request_verification``: a task for the area's enumerators (their queue page lists it).
4. The enumerator submits a change request through the normal flow and it is linked to the case
   (``link_change_request``); or reports that the data was right (``complete_verification``).
5. A supervisor approves the change request: :func:`on_change_approved` (registered in
   ``registry.change_requests.AFTER_APPROVAL_HOOKS``) records it on the case's timeline inside the
   approval transaction; the scoring engine's own hook re-scores the household with the active model.
6. ``resolve_grievance``: reads the new score (refusing while the re-score of the current version is
   still pending), re-evaluates eligibility against the programme's current rule and records the
   outcome (now eligible / still not, ...) with the score before and after.
7. ``close_grievance`` with a resolution text for the complainant. A case whose verification changed
   the data cannot be closed before its outcome is recorded.

Who may do what (see also ``docs/grievances.md``):

* intake: grievance officers, enumerators (union office staff), supervisors and programme officers,
  within their areas;
* assignment: grievance officers of the area, to a grievance officer whose areas cover the case;
* verification request, resolution, closure: the assigned grievance officer;
* linking a change request: the assigned officer, or the field officer who submitted it;
* reading cases: grievance officers and supervisors of the area; programme officers only cases about
  a programme; enumerators see verification tasks, not cases;
* the complainant's name and phone number: only the assigned grievance officer. Everyone else (and
  every export, statistic and audit event) gets them masked;
* households: a grievance officer may open only households named in a case of their area
  (:func:`require_case_household_access`), not the whole registry; likewise change requests
  (:func:`require_case_change_request_access`, :func:`case_change_request_scope_clause`).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import and_, bindparam, exists, func, or_, select, true

from models import Household, User, db
from models.base import utcnow
from models.change_request import ChangeRequest
from models.codes import MOBILE_PATTERN
from models.grievance import (
    GRIEVANCE_CATEGORIES,
    GRIEVANCE_CHANNELS,
    GRIEVANCE_OUTCOMES,
    GRIEVANCE_STATUSES,
    Grievance,
    GrievanceEvent,
    VerificationTask,
)
from registry import access
from registry.audit import record_event
from registry.households import HouseholdNotFound, Page, get_household, head_of
from registry.privacy import MASK, mask_identifier
from registry.validation import Issue, RecordValidationError

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_DAYS = 30
#: Roles that may record a complaint (within their areas).
INTAKE_ROLES = frozenset({"grievance_officer", "enumerator", "supervisor", "programme_officer"})
#: Roles that may read cases (grievance officers and supervisors: their area; programme officers:
#: cases about a programme).
CASE_READER_ROLES = frozenset({"grievance_officer", "supervisor", "programme_officer"})
#: Roles that may read aggregate statistics (no personal data in them).
STATS_ROLES = frozenset({"grievance_officer", "supervisor", "programme_officer", "viewer", "statistician"})
#: Roles that carry out field verifications.
FIELD_ROLES = frozenset({"enumerator", "supervisor"})
#: Categories that dispute a household's data or outcome, hence need a registered household
#: (an exclusion complaint may name a family not registered yet: it is routed by union).
HOUSEHOLD_CATEGORIES = frozenset({"inclusion", "data_error"})
#: Change-request states that may still lead to corrected data.
LINKABLE_CR_STATUSES = frozenset({"pending", "approved"})
CLOSED = "closed"
AREA_LEVEL_LENGTHS = {"division": 2, "district": 4, "upazila": 6, "union": 8}


class GrievanceNotFound(LookupError):
    def __init__(self, grievance_id):
        super().__init__(f"no grievance {grievance_id}")


class VerificationTaskNotFound(LookupError):
    def __init__(self, task_id):
        super().__init__(f"no verification task {task_id}")


class GrievanceConflict(RuntimeError):
    """The case is not in a state that allows this step (the API answers 409); the message says why."""


def _invalid(field: str, value, rule: str, household_id: str | None = None) -> RecordValidationError:
    return RecordValidationError(
        [Issue("grievance", None, household_id, field, "" if value is None else str(value), rule)]
    )


def _setting(name: str, default):
    """An application setting, read when an app is active (services never read the request)."""
    from flask import current_app, has_app_context

    return current_app.config.get(name, default) if has_app_context() else default


def deadline_days(category: str) -> int:
    """The service deadline (days) of a new case of ``category``: per category if configured, else global."""
    per_category = _setting("GRIEVANCE_DEADLINE_DAYS_BY_CATEGORY", {}) or {}
    return int(per_category.get(category, _setting("GRIEVANCE_DEADLINE_DAYS", DEFAULT_DEADLINE_DAYS)))


def _step(grievance: Grievance, actor: User | None, kind: str, summary: str, data: Mapping | None = None) -> None:
    """Append a timeline step and the matching audit event (same transaction)."""
    grievance.updated_at = utcnow()
    grievance.events.append(
        GrievanceEvent(
            grievance_id=grievance.id,
            actor_id=actor.id if actor is not None else None,
            actor_name=actor.username if actor is not None else "system",
            kind=kind,
            summary=summary,
            data=dict(data) if data else None,
        )
    )
    record_event(actor, f"grievance.{kind}", "grievance", grievance.id, summary=summary, after=dict(data or {}) or None)
    db.session.flush()


# --- integration with scoring and eligibility ----------------------------------------------


def _current_score(household: Household):
    """The household's score in the current run of the active model (``targeting.scoring``)."""
    from targeting.scoring import score_of

    return score_of(household)


def _rescore_pending(household: Household) -> bool:
    """Whether a re-score of the household (``targeting.scoring``'s job, queued by an approval) is still
    queued or running while the active model has a complete run to score it into."""
    from models import Job
    from targeting import scoring

    if scoring.current_run() is None:
        return False  # nothing to score into: the model's pending full run will score it
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Job.kind == scoring.RESCORE_JOB,
                    Job.status.in_(("queued", "running")),
                    Job.payload["household_pk"].as_integer() == household.id,
                )
            )
        )
    )


def _programme(programme_id: int):
    from targeting.eligibility import ProgrammeNotFound, get_programme

    try:
        return get_programme(programme_id)
    except ProgrammeNotFound:
        raise _invalid("programme_id", programme_id, "no such programme") from None


def _eligibility_list(list_id: int):
    from targeting.eligibility import ListNotFound, get_list

    try:
        return get_list(list_id)
    except ListNotFound:
        raise _invalid("list_id", list_id, "no such eligibility list") from None


def _evaluate(programme_id: int | None, household: Household | None) -> tuple[bool | None, dict]:
    """Whether the household meets the programme's *current* rule, with what was evaluated.
    ``(None, {...})`` when there is nothing to evaluate (no programme, no household, no score run)."""
    if programme_id is None or household is None:
        return None, {"evaluated": False}
    from targeting import eligibility as el

    detail = el.evaluate_household(_programme(programme_id), household)
    return detail.pop("eligible"), detail


def _on_list(list_id: int | None, household: Household | None) -> bool | None:
    if list_id is None or household is None:
        return None
    from models.programme import EligibilityListEntry

    return bool(
        db.session.scalar(
            select(
                exists().where(
                    EligibilityListEntry.list_id == list_id, EligibilityListEntry.household_pk == household.id
                )
            )
        )
    )


def _outcome(before: bool | None, after: bool | None) -> str:
    if after is None:
        return "not_applicable"
    if after:
        return "still_eligible" if before else "now_eligible"
    return "no_longer_eligible" if before else "still_not_eligible"


# --- intake and assignment -----------------------------------------------------------------


def open_grievance(
    actor: User,
    *,
    channel: str,
    category: str,
    description: str,
    household_id: str | None = None,
    union_code: str | None = None,
    programme_id: int | None = None,
    list_id: int | None = None,
    complainant_name: str | None = None,
    complainant_phone: str | None = None,
) -> Grievance:
    """Record a complaint (flushes; the caller commits). The household's current version, score and
    eligibility are recorded as the state *before*, and the service deadline is fixed now."""
    access.require_role(actor, *sorted(INTAKE_ROLES))
    issues = []
    if channel not in GRIEVANCE_CHANNELS:
        issues.append(Issue("grievance", None, household_id, "channel", str(channel), f"one of {GRIEVANCE_CHANNELS}"))
    if category not in GRIEVANCE_CATEGORIES:
        issues.append(
            Issue("grievance", None, household_id, "category", str(category), f"one of {GRIEVANCE_CATEGORIES}")
        )
    if not (description or "").strip():
        issues.append(Issue("grievance", None, household_id, "description", "", "describe the complaint"))
    phone = (complainant_phone or "").strip() or None
    if phone is not None and not MOBILE_PATTERN.match(phone):
        issues.append(
            Issue("grievance", None, household_id, "complainant_phone", phone, "Bangladeshi mobile number 01XXXXXXXXX")
        )
    household = None
    if household_id:
        try:
            household = get_household(household_id)
        except HouseholdNotFound:
            issues.append(Issue("grievance", None, household_id, "household_id", household_id, "no such household"))
    elif category in HOUSEHOLD_CATEGORIES:
        issues.append(
            Issue("grievance", None, None, "household_id", "", f"a {category} complaint names a registered household")
        )
    if household is not None:
        if union_code and union_code != household.union_code:
            issues.append(
                Issue("grievance", None, household_id, "union_code", union_code, "differs from the household's union")
            )
        union_code = household.union_code
    elif not household_id:
        from models import Area

        area = db.session.get(Area, union_code) if union_code else None
        if area is None or area.level != "union":
            issues.append(
                Issue("grievance", None, None, "union_code", union_code or "", "a union/ward code is required")
            )
    eligibility_list = None
    if list_id is not None:
        try:
            eligibility_list = _eligibility_list(list_id)
        except RecordValidationError as exc:
            issues.extend(exc.issues)
        else:
            if programme_id is not None and programme_id != eligibility_list.programme_id:
                issues.append(
                    Issue("grievance", None, household_id, "list_id", str(list_id), "is a list of another programme")
                )
            programme_id = eligibility_list.programme_id
    if programme_id is not None and eligibility_list is None:
        try:
            _programme(programme_id)
        except RecordValidationError as exc:
            issues.extend(exc.issues)
    if issues:
        raise RecordValidationError(issues)
    access.require_area(actor, union_code)

    now = utcnow()
    grievance = Grievance(
        channel=channel,
        category=category,
        status="open",
        union_code=union_code,
        household_pk=household.id if household is not None else None,
        programme_id=programme_id,
        list_id=list_id,
        description=description.strip(),
        complainant_name=(complainant_name or "").strip() or None,
        complainant_phone=phone,
        opened_by_id=actor.id,
        opened_at=now,
        due_at=now + dt.timedelta(days=deadline_days(category)),
        updated_at=now,
    )
    before = {}
    if household is not None:
        grievance.household_version_before = household.current_version
        score = _current_score(household)
        if score is not None:
            grievance.score_before = score.score
            grievance.score_run_before_id = score.run_id
        grievance.eligible_before, detail = _evaluate(programme_id, household)
        before = {"eligibility": detail, "on_list": _on_list(list_id, household)}
    grievance.outcome_detail = {"before": before} if before else None
    db.session.add(grievance)
    db.session.flush()
    _step(
        grievance,
        actor,
        "opened",
        f"{category} complaint received via {channel}"
        + (f" about household {household.household_id}" if household is not None else f" in union {union_code}"),
        {
            "channel": channel,
            "category": category,
            "household_id": household.household_id if household is not None else None,
            "union_code": union_code,
            "programme_id": programme_id,
            "list_id": list_id,
            "due_at": grievance.due_at.isoformat(),
            "household_version_before": grievance.household_version_before,
            "score_before": grievance.score_before,
            "eligible_before": grievance.eligible_before,
        },
    )
    return grievance


def _require_officer_in_area(user: User, grievance: Grievance) -> None:
    access.require_role(user, "grievance_officer")
    access.require_area(user, grievance.union_code)


def _require_assigned(user: User, grievance: Grievance) -> None:
    _require_officer_in_area(user, grievance)
    if grievance.assigned_to_id != user.id:
        raise access.AccessDenied(
            f"only the officer assigned to grievance {grievance.reference} may do this"
            + (" (it is not assigned yet)" if grievance.assigned_to_id is None else "")
        )


def _require_not_closed(grievance: Grievance) -> None:
    if grievance.status == CLOSED:
        raise GrievanceConflict(f"grievance {grievance.reference} is closed")


def _lock(grievance: Grievance) -> None:
    """Re-read the case under its row lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises
    writers), so that two officers' steps on one case apply one after the other, each seeing the
    other's result."""
    db.session.flush()
    db.session.execute(select(Grievance.id).where(Grievance.id == grievance.id).with_for_update())
    # Expire after the lock is held: the next read then sees what the previous holder committed.
    db.session.expire(grievance)


def assign_grievance(grievance: Grievance, assignee: User, *, actor: User) -> Grievance:
    """Assign (or re-assign) the case to a grievance officer whose areas cover it."""
    _lock(grievance)
    _require_officer_in_area(actor, grievance)
    _require_not_closed(grievance)
    if assignee.role != "grievance_officer" or not assignee.is_active:
        raise _invalid("assignee", assignee.username, "must be an active grievance officer")
    if not access.in_scope(assignee, grievance.union_code):
        raise _invalid("assignee", assignee.username, f"is not assigned to area {grievance.union_code}")
    previous = db.session.get(User, grievance.assigned_to_id) if grievance.assigned_to_id else None
    grievance.assigned_to_id = assignee.id
    grievance.assigned_at = utcnow()
    if grievance.status == "open":
        grievance.status = "assigned"
    _step(
        grievance,
        actor,
        "assigned",
        f"assigned to {assignee.username}" + (f" (was {previous.username})" if previous else ""),
        {"assignee": assignee.username, "previous": previous.username if previous else None},
    )
    return grievance


# --- field verification --------------------------------------------------------------------


def _open_task(grievance: Grievance) -> VerificationTask | None:
    return next((t for t in grievance.verifications if t.status == "open"), None)


def request_verification(grievance: Grievance, *, actor: User, instructions: str) -> VerificationTask:
    """Ask the area's enumerators to verify the household in the field."""
    _lock(grievance)
    _require_assigned(actor, grievance)
    _require_not_closed(grievance)
    if not (instructions or "").strip():
        raise _invalid("instructions", instructions, "say what the field officer should check")
    if grievance.status == "resolved":
        raise GrievanceConflict(f"grievance {grievance.reference} is already resolved")
    task = _open_task(grievance)
    if task is not None:
        raise GrievanceConflict(f"verification task {task.id} of grievance {grievance.reference} is still open")
    task = VerificationTask(
        grievance_id=grievance.id,
        household_pk=grievance.household_pk,
        union_code=grievance.union_code,
        status="open",
        instructions=instructions.strip(),
        requested_by_id=actor.id,
        requested_at=utcnow(),
    )
    grievance.verifications.append(task)
    grievance.status = "in_verification"
    db.session.flush()
    _step(
        grievance,
        actor,
        "verification_requested",
        f"field verification requested from the enumerators of union {grievance.union_code} (task {task.id})",
        {"task_id": task.id, "instructions": task.instructions},
    )
    return task


def _task_for_linking(grievance: Grievance) -> VerificationTask:
    task = _open_task(grievance)
    if task is not None:
        return task
    # A task whose linked request was rejected, withdrawn or went stale may take another one.
    for task in reversed(grievance.verifications):
        if task.status == "done" and task.change_request_id:
            cr = db.session.get(ChangeRequest, task.change_request_id)
            if cr is not None and cr.status not in LINKABLE_CR_STATUSES:
                return task
    raise GrievanceConflict(f"grievance {grievance.reference} has no verification awaiting a change request")


def link_change_request(grievance: Grievance, change_request_id: int, *, actor: User) -> VerificationTask:
    """Attach the field officer's change request to the case's verification.

    The request must concern the case's household (or, for an unregistered family, register a new
    household in the case's union), be pending or approved, and have been submitted after the case
    was opened. An already approved request completes the verification at once."""
    _lock(grievance)
    _require_not_closed(grievance)
    cr = db.session.get(ChangeRequest, change_request_id)
    if cr is None:
        raise _invalid("change_request_id", change_request_id, "no such change request")
    is_officer = actor.role == "grievance_officer" and grievance.assigned_to_id == actor.id
    is_submitter = actor.role in FIELD_ROLES and cr.submitted_by_id == actor.id
    if not (is_officer or is_submitter):
        raise access.AccessDenied(
            "only the assigned grievance officer or the field officer who submitted the change request may link it"
        )
    access.require_area(actor, grievance.union_code)
    task = _task_for_linking(grievance)
    if grievance.household_pk is not None:
        if cr.household_pk != grievance.household_pk:
            raise _invalid("change_request_id", change_request_id, "concerns another household")
    elif cr.kind != "new_household" or cr.union_code != grievance.union_code:
        raise _invalid(
            "change_request_id", change_request_id, f"must register a new household in union {grievance.union_code}"
        )
    if cr.status not in LINKABLE_CR_STATUSES:
        raise _invalid("change_request_id", change_request_id, f"is {cr.status}; link a pending or approved one")
    if cr.submitted_at < grievance.opened_at:
        raise _invalid("change_request_id", change_request_id, "was submitted before the grievance was opened")
    if db.session.scalar(
        select(VerificationTask.id).where(
            VerificationTask.change_request_id == cr.id, VerificationTask.grievance_id != grievance.id
        )
    ):
        raise _invalid("change_request_id", change_request_id, "is already linked to another grievance")
    previous = task.change_request_id
    task.change_request_id = cr.id
    task.linked_by_id = actor.id
    if task.status != "open":
        task.status = "open"
        task.finding = None
        task.completed_at = None
        task.completed_by_id = None
    grievance.status = "in_verification"
    db.session.flush()
    _step(
        grievance,
        actor,
        "change_request_linked",
        f"change request {cr.id} ({cr.kind}, {cr.status}) linked to verification task {task.id}",
        {"task_id": task.id, "change_request_id": cr.id, "previous_change_request_id": previous},
    )
    if cr.status == "approved":
        _complete_with_approval(grievance, task, cr, actor)
    return task


def _complete_with_approval(grievance: Grievance, task: VerificationTask, cr: ChangeRequest, actor) -> None:
    task.status = "done"
    task.finding = "changed"
    task.completed_at = utcnow()
    task.completed_by_id = cr.decided_by_id
    if grievance.household_pk is None and cr.kind == "new_household":
        # The unregistered family now has a registry record: the case follows it.
        grievance.household_pk = cr.household_pk or cr.new_household_pk
        task.household_pk = grievance.household_pk
    db.session.flush()
    _step(
        grievance,
        actor,
        "change_request_approved",
        f"change request {cr.id} approved: household version {cr.applied_version_no} created",
        {"task_id": task.id, "change_request_id": cr.id, "applied_version_no": cr.applied_version_no},
    )


def complete_verification(task: VerificationTask, *, actor: User, finding: str, note: str) -> VerificationTask:
    """The field officer reports a verification that needs no change request (the data was right, or
    the household could not be found). A change of data is reported by linking a change request."""
    access.require_role(actor, *sorted(FIELD_ROLES))
    access.require_area(actor, task.union_code)
    grievance = task.grievance
    _lock(grievance)
    db.session.refresh(task)
    _require_not_closed(grievance)
    if task.status != "open":
        raise GrievanceConflict(f"verification task {task.id} is {task.status}")
    if finding not in ("no_change", "not_found"):
        raise _invalid("finding", finding, "no_change or not_found (report changes through a change request)")
    if not (note or "").strip():
        raise _invalid("note", note, "say what was found")
    if task.change_request_id is not None:
        raise GrievanceConflict(
            f"verification task {task.id} has change request {task.change_request_id} linked: it completes on approval"
        )
    task.status = "done"
    task.finding = finding
    task.finding_note = note.strip()
    task.completed_at = utcnow()
    task.completed_by_id = actor.id
    db.session.flush()
    _step(
        grievance,
        actor,
        "verification_completed",
        f"verification task {task.id}: {finding.replace('_', ' ')}",
        {"task_id": task.id, "finding": finding, "note": task.finding_note},
    )
    return task


#: Open verification tasks of a household, or of a change request (an approval asks for both; a
#: NULL request id matches none). Built once: every approval runs it.
_OPEN_TASKS_OF_APPROVAL = (
    select(VerificationTask.id)
    .where(
        VerificationTask.status == "open",
        or_(
            VerificationTask.household_pk == bindparam("household_pk"),
            VerificationTask.change_request_id == bindparam("cr_id"),
        ),
    )
    .order_by(VerificationTask.id)
)


def on_change_approved(household: Household, version, actor: User | None) -> None:
    """``AFTER_APPROVAL_HOOKS`` entry: runs inside the approval transaction.

    A case awaiting verification of this household (or whose verification is this change request)
    gets the approval on its timeline and its verification completed. It never makes the approval
    fail: its work runs in a savepoint and a failure is logged, not raised."""
    cr_id = _change_request_id_of(version)
    # Almost every approval concerns no case: one indexed read of ids, and the tasks themselves and a
    # savepoint only when there is work. The approval's pending writes (its request, its audit
    # events) cannot change which tasks are open: they are flushed with the approval's next write
    # rather than on their own before this read.
    with db.session.no_autoflush:
        task_ids = db.session.scalars(_OPEN_TASKS_OF_APPROVAL, {"household_pk": household.id, "cr_id": cr_id}).all()
    if not task_ids:
        return
    tasks = db.session.scalars(
        select(VerificationTask).where(VerificationTask.id.in_(task_ids)).order_by(VerificationTask.id)
    ).all()
    try:
        with db.session.begin_nested():
            cr = db.session.get(ChangeRequest, cr_id) if cr_id is not None else None
            for task in tasks:
                grievance = task.grievance
                if task.change_request_id is None and cr is not None and cr.household_pk == household.id:
                    # The field officer did not link it by hand: the approved change to the very household
                    # under verification is the verification's outcome.
                    task.change_request_id = cr.id
                if cr is not None and task.change_request_id == cr.id:
                    if cr.applied_version_no is None:
                        cr.applied_version_no = version.version_no
                    _complete_with_approval(grievance, task, cr, actor)
                else:
                    _step(
                        grievance,
                        actor,
                        "household_changed",
                        f"household version {version.version_no} approved"
                        + (f" (change request {cr_id})" if cr_id else ""),
                        {"version_no": version.version_no, "change_request_id": cr_id},
                    )
    except Exception:  # noqa: BLE001 - a timeline note must never undo an approval
        log.exception("grievance hook failed for household %s version %s", household.id, version.version_no)


def _change_request_id_of(version) -> int | None:
    ref = getattr(version, "source_ref", None)
    if getattr(version, "source", None) == "change_request" and ref:
        try:
            return int(str(ref).removeprefix("CR-").removeprefix("cr-"))
        except ValueError:
            return None
    return None


# --- outcome and closure -------------------------------------------------------------------


def resolve_grievance(grievance: Grievance, *, actor: User, note: str | None = None) -> Grievance:
    """Record the outcome: the household's new score (with the active model) and its eligibility
    re-evaluated against the programme's current rule, beside the values when the case was opened."""
    _lock(grievance)
    _require_assigned(actor, grievance)
    _require_not_closed(grievance)
    if grievance.status == "resolved":
        raise GrievanceConflict(f"grievance {grievance.reference} is already resolved")
    task = _open_task(grievance)
    if task is not None:
        detail = f" (change request {task.change_request_id} awaits approval)" if task.change_request_id else ""
        raise GrievanceConflict(f"verification task {task.id} is still open{detail}")
    if grievance.household_pk is None:
        raise GrievanceConflict(
            f"grievance {grievance.reference} names no registered household: close it with a resolution text"
        )
    household = db.session.get(Household, grievance.household_pk)
    score = _current_score(household)
    if score is not None and score.household_version != household.current_version:
        raise GrievanceConflict(
            f"the re-score of household {household.household_id} version {household.current_version} is still "
            f"pending (the current score is of version {score.household_version}); try again shortly"
        )
    if score is None and _rescore_pending(household):
        # E.g. a family just registered through the case: its first score is on its way.
        raise GrievanceConflict(
            f"the scoring of household {household.household_id} version {household.current_version} is still "
            "pending; try again shortly"
        )
    eligible, detail = _evaluate(grievance.programme_id, household)
    grievance.household_version_after = household.current_version
    grievance.score_after = score.score if score is not None else None
    grievance.score_run_after_id = score.run_id if score is not None else None
    grievance.eligible_after = eligible
    grievance.outcome = _outcome(grievance.eligible_before, eligible)
    changed = [t.change_request_id for t in grievance.verifications if t.finding == "changed"]
    grievance.outcome_detail = {
        **(grievance.outcome_detail or {}),
        "after": {"eligibility": detail, "on_list": _on_list(grievance.list_id, household)},
        "change_requests": changed,
        "data_changed": household.current_version != grievance.household_version_before,
        "note": (note or "").strip() or None,
    }
    grievance.resolved_at = utcnow()
    grievance.resolved_by_id = actor.id
    grievance.status = "resolved"
    db.session.flush()
    _step(
        grievance,
        actor,
        "resolved",
        f"outcome {grievance.outcome.replace('_', ' ')}: score {_fmt(grievance.score_before)} → "
        f"{_fmt(grievance.score_after)}, household version {grievance.household_version_before} → "
        f"{grievance.household_version_after}",
        {
            "outcome": grievance.outcome,
            "score_before": grievance.score_before,
            "score_after": grievance.score_after,
            "eligible_before": grievance.eligible_before,
            "eligible_after": grievance.eligible_after,
            "household_version_before": grievance.household_version_before,
            "household_version_after": grievance.household_version_after,
            "change_requests": changed,
        },
    )
    return grievance


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1f}"


def close_grievance(grievance: Grievance, *, actor: User, resolution_text: str) -> Grievance:
    """Close the case with the text the complainant receives."""
    _lock(grievance)
    _require_assigned(actor, grievance)
    _require_not_closed(grievance)
    text = (resolution_text or "").strip()
    if len(text) < 10:
        raise _invalid("resolution_text", resolution_text, "explain the resolution to the complainant (10+ characters)")
    task = _open_task(grievance)
    if task is not None:
        raise GrievanceConflict(f"verification task {task.id} is still open: complete it or resolve first")
    if grievance.status != "resolved" and any(t.finding == "changed" for t in grievance.verifications):
        # The data changed: the new score and eligibility must be on record before the case can end.
        raise GrievanceConflict(
            f"grievance {grievance.reference} changed the household's data: resolve it (record the outcome) first"
        )
    now = utcnow()
    grievance.resolution_text = text
    grievance.closed_at = now
    grievance.closed_by_id = actor.id
    grievance.status = CLOSED
    db.session.flush()
    _step(
        grievance,
        actor,
        "closed",
        "closed " + ("within the deadline" if now <= grievance.due_at else "after the deadline"),
        {"resolution_text": text, "within_deadline": now <= grievance.due_at, "outcome": grievance.outcome},
    )
    return grievance


# --- reads and access ----------------------------------------------------------------------


def get_grievance(grievance_id: int) -> Grievance:
    grievance = db.session.get(Grievance, grievance_id)
    if grievance is None:
        raise GrievanceNotFound(grievance_id)
    return grievance


def get_verification_task(task_id: int) -> VerificationTask:
    task = db.session.get(VerificationTask, task_id)
    if task is None:
        raise VerificationTaskNotFound(task_id)
    return task


def require_case_reader(user: User, grievance: Grievance) -> None:
    """Refuse unless the user may read this case."""
    if user.role not in CASE_READER_ROLES:
        raise access.AccessDenied(f"role {user.role!r} may not read grievance cases")
    access.require_area(user, grievance.union_code)
    if user.role == "programme_officer" and grievance.programme_id is None:
        raise access.AccessDenied("programme officers read only grievances about a programme")


def case_scope_clause(user: User):
    """SQL condition: the cases the user may read (``None`` = no restriction)."""
    if user.role not in CASE_READER_ROLES:
        return Grievance.id.is_(None)
    clauses = []
    if not access.has_national_scope(user):
        clauses.append(
            or_(*(Grievance.union_code.startswith(code, autoescape=True) for code in user.area_codes))
            if user.area_codes
            else Grievance.id.is_(None)
        )
    if user.role == "programme_officer":
        clauses.append(Grievance.programme_id.is_not(None))
    return and_(*clauses) if clauses else None


def require_case_household_access(user: User, household: Household) -> None:
    """A grievance officer may open only households named in a case of their areas (not the whole
    registry). Other roles are not affected. ``registry.access.require_household_reader`` is meant
    to call this for grievance officers."""
    if user.role != "grievance_officer":
        return
    access.require_area(user, household.union_code)
    named = db.session.scalar(
        select(exists().where(Grievance.household_pk == household.id, _in_user_areas(user, Grievance.union_code)))
    )
    if not named:
        raise access.AccessDenied(
            f"household {household.household_id} is named in no grievance of your areas: grievance officers "
            "open only the households of their cases"
        )


def case_household_scope_clause(user: User):
    """SQL condition on ``Household``: the households a grievance officer may list (those named in a
    case of their areas); ``None`` for other roles. For the registry browser's scope."""
    if user.role != "grievance_officer":
        return None
    named = select(Grievance.household_pk).where(
        Grievance.household_pk.is_not(None), _in_user_areas(user, Grievance.union_code)
    )
    return Household.id.in_(named)


def case_change_request_scope_clause(user: User):
    """SQL condition on ``ChangeRequest``: the change requests a grievance officer may read (those about a
    household named in a case of their areas, or linked to the verification of such a case, e.g. the
    registration of an unregistered family); ``None`` for other roles. For the change-request queue."""
    if user.role != "grievance_officer":
        return None
    named = select(Grievance.household_pk).where(
        Grievance.household_pk.is_not(None), _in_user_areas(user, Grievance.union_code)
    )
    linked = (
        select(VerificationTask.change_request_id)
        .join(Grievance, Grievance.id == VerificationTask.grievance_id)
        .where(VerificationTask.change_request_id.is_not(None), _in_user_areas(user, Grievance.union_code))
    )
    return or_(ChangeRequest.household_pk.in_(named), ChangeRequest.id.in_(linked))


def require_case_change_request_access(user: User, cr: ChangeRequest) -> None:
    """A grievance officer may open only the change requests of their cases (see
    :func:`case_change_request_scope_clause`): a change request carries a household's personal data.
    Other roles are not affected."""
    if user.role != "grievance_officer":
        return
    access.require_area(user, cr.union_code)
    allowed = db.session.scalar(
        select(exists().where(ChangeRequest.id == cr.id, case_change_request_scope_clause(user)))
    )
    if not allowed:
        raise access.AccessDenied(
            f"change request {cr.id} concerns no grievance of your areas: grievance officers open only the "
            "change requests of their cases"
        )


def _in_user_areas(user: User, column):
    if access.has_national_scope(user):
        return true()
    if not user.area_codes:
        return Grievance.id.is_(None)
    return or_(*(column.startswith(code, autoescape=True) for code in user.area_codes))


def list_grievances(
    user: User,
    *,
    status: str | None = None,
    category: str | None = None,
    area: str | None = None,
    overdue: bool | None = None,
    assigned: str | None = None,
    household_id: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """The cases the user may read, most urgent deadline first. ``assigned``: "me", "none" or a username."""
    if user.role not in CASE_READER_ROLES:
        raise access.AccessDenied(f"role {user.role!r} may not read grievance cases")
    stmt = select(Grievance)
    scope = case_scope_clause(user)
    if scope is not None:
        stmt = stmt.where(scope)
    if area:
        access.require_area(user, area)
        stmt = stmt.where(Grievance.union_code.startswith(area, autoescape=True))
    if status == "active":
        stmt = stmt.where(Grievance.status != CLOSED)
    elif status:
        stmt = stmt.where(Grievance.status == status)
    if category:
        stmt = stmt.where(Grievance.category == category)
    now = utcnow()
    if overdue is True:
        stmt = stmt.where(Grievance.status != CLOSED, Grievance.due_at < now)
    elif overdue is False:
        stmt = stmt.where(or_(Grievance.status == CLOSED, Grievance.due_at >= now))
    if assigned == "me":
        stmt = stmt.where(Grievance.assigned_to_id == user.id)
    elif assigned == "none":
        stmt = stmt.where(Grievance.assigned_to_id.is_(None))
    elif assigned:
        stmt = stmt.where(
            Grievance.assigned_to_id == select(User.id).where(User.username == assigned).scalar_subquery()
        )
    if household_id:
        stmt = stmt.where(
            Grievance.household_pk
            == select(Household.id).where(Household.household_id == household_id).scalar_subquery()
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = max(1, page)
    items = list(
        db.session.scalars(
            stmt.order_by((Grievance.status == CLOSED), Grievance.due_at, Grievance.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    return Page(items, total, page, per_page)


def list_assignable_officers(grievance: Grievance) -> list[User]:
    """Active grievance officers whose areas cover the case (candidates for assignment)."""
    officers = db.session.scalars(
        select(User).where(User.role == "grievance_officer", User.is_active_user.is_(True)).order_by(User.username)
    )
    return [u for u in officers if access.in_scope(u, grievance.union_code)]


def list_verification_tasks(user: User, *, status: str | None = "open") -> list[VerificationTask]:
    """Verification tasks in the field officer's areas (their queue)."""
    access.require_role(user, *sorted(FIELD_ROLES))
    stmt = select(VerificationTask).where(_in_user_areas(user, VerificationTask.union_code))
    if status:
        stmt = stmt.where(VerificationTask.status == status)
    return list(db.session.scalars(stmt.order_by(VerificationTask.requested_at, VerificationTask.id).limit(500)))


def require_task_reader(user: User, task: VerificationTask) -> None:
    access.require_role(user, *sorted(FIELD_ROLES))
    access.require_area(user, task.union_code)


# --- views (what pages and the API show) ---------------------------------------------------


def is_overdue(grievance: Grievance, now: dt.datetime | None = None) -> bool:
    """Open past its deadline, or closed after it."""
    now = now or utcnow()
    if grievance.status == CLOSED:
        return grievance.closed_at is not None and grievance.closed_at > grievance.due_at
    return now > grievance.due_at


def can_see_contact(user: User, grievance: Grievance) -> bool:
    """Only the grievance officer handling the case sees who complained and how to reach them."""
    return user.role == "grievance_officer" and grievance.assigned_to_id == user.id


def contact_view(grievance: Grievance, user: User) -> dict:
    if can_see_contact(user, grievance):
        return {"name": grievance.complainant_name, "phone": grievance.complainant_phone, "masked": False}
    return {
        "name": MASK if grievance.complainant_name else None,
        "phone": mask_identifier(grievance.complainant_phone),
        "masked": True,
    }


def _username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    return user.username if user else None


def household_brief(household: Household | None, user: User) -> dict | None:
    if household is None:
        return None
    head = head_of(household)
    pii = access.can_see_pii(user)
    return {
        "household_id": household.household_id,
        "union_code": household.union_code,
        "village": household.village,
        "current_version": household.current_version,
        "head_name": ((head.name_en or head.name_bn) if head is not None else None) if pii else None,
        "status": household.status,
    }


def change_request_brief(cr_id: int | None) -> dict | None:
    if cr_id is None:
        return None
    cr = db.session.get(ChangeRequest, cr_id)
    if cr is None:
        return None
    return {
        "id": cr.id,
        "kind": cr.kind,
        "status": cr.status,
        "submitted_by": _username(cr.submitted_by_id),
        "submitted_at": cr.submitted_at,
        "decided_by": _username(cr.decided_by_id),
        "decided_at": cr.decided_at,
        "applied_version_no": cr.applied_version_no,
        "reason": cr.reason,
    }


def task_view(task: VerificationTask, *, with_case: bool = False) -> dict:
    grievance = task.grievance
    household = db.session.get(Household, task.household_pk) if task.household_pk else None
    out = {
        "id": task.id,
        "grievance_id": task.grievance_id,
        "grievance_reference": grievance.reference,
        "category": grievance.category,
        "household_id": household.household_id if household else None,
        "village": household.village if household else None,
        "union_code": task.union_code,
        "status": task.status,
        "instructions": task.instructions,
        "requested_by": _username(task.requested_by_id),
        "requested_at": task.requested_at,
        "due_at": grievance.due_at,
        "change_request": change_request_brief(task.change_request_id),
        "finding": task.finding,
        "finding_note": task.finding_note,
        "completed_at": task.completed_at,
        "completed_by": _username(task.completed_by_id),
    }
    return out


def timeline(grievance: Grievance) -> list[dict]:
    return [
        {
            "at": e.occurred_at,
            "actor": e.actor_name,
            "kind": e.kind,
            "summary": e.summary,
        }
        for e in grievance.events
    ]


def grievance_view(grievance: Grievance, user: User, *, detail: bool = True) -> dict:
    """A case as pages and the API show it; the complainant's contact masked unless the viewer handles it."""
    household = db.session.get(Household, grievance.household_pk) if grievance.household_pk else None
    out = {
        "id": grievance.id,
        "reference": grievance.reference,
        "channel": grievance.channel,
        "category": grievance.category,
        "status": grievance.status,
        "union_code": grievance.union_code,
        "household": household_brief(household, user),
        "programme_id": grievance.programme_id,
        "list_id": grievance.list_id,
        "opened_at": grievance.opened_at,
        "opened_by": _username(grievance.opened_by_id),
        "due_at": grievance.due_at,
        "overdue": is_overdue(grievance),
        "days_left": (grievance.due_at - utcnow()).days if grievance.status != CLOSED else None,
        "assigned_to": _username(grievance.assigned_to_id),
        "outcome": grievance.outcome,
        "closed_at": grievance.closed_at,
    }
    if not detail:
        return out
    task = grievance.verifications[-1] if grievance.verifications else None
    out.update(
        {
            "description": grievance.description,
            "complainant": contact_view(grievance, user),
            "assigned_at": grievance.assigned_at,
            "before": {
                "household_version": grievance.household_version_before,
                "score": grievance.score_before,
                "score_run_id": grievance.score_run_before_id,
                "eligible": grievance.eligible_before,
            },
            "after": {
                "household_version": grievance.household_version_after,
                "score": grievance.score_after,
                "score_run_id": grievance.score_run_after_id,
                "eligible": grievance.eligible_after,
            },
            "outcome_detail": grievance.outcome_detail,
            "resolved_at": grievance.resolved_at,
            "resolved_by": _username(grievance.resolved_by_id),
            "resolution_text": grievance.resolution_text,
            "closed_by": _username(grievance.closed_by_id),
            "verifications": [task_view(t) for t in grievance.verifications],
            "change_request": change_request_brief(task.change_request_id) if task else None,
            "timeline": timeline(grievance),
        }
    )
    return out


# --- statistics ----------------------------------------------------------------------------


def grievance_stats(user: User, *, area: str | None = None, level: str = "district") -> dict:
    """Aggregates over the cases in the user's scope: by category, status and area; time to
    resolution; share closed within the deadline; outcomes. No personal data."""
    if user.role not in STATS_ROLES:
        raise access.AccessDenied(f"role {user.role!r} may not read grievance statistics")
    if level not in AREA_LEVEL_LENGTHS:
        raise _invalid("level", level, f"one of {tuple(AREA_LEVEL_LENGTHS)}")
    scope = _in_user_areas(user, Grievance.union_code)
    if user.role == "programme_officer":
        scope = and_(scope, Grievance.programme_id.is_not(None))
    if area:
        access.require_area(user, area)
        scope = and_(scope, Grievance.union_code.startswith(area, autoescape=True))
    now = utcnow()
    area_col = func.substr(Grievance.union_code, 1, AREA_LEVEL_LENGTHS[level])

    def counts(column) -> dict:
        rows = db.session.execute(select(column, func.count()).where(scope).group_by(column)).all()
        return {str(k): n for k, n in rows if k is not None}

    total = db.session.scalar(select(func.count()).select_from(Grievance).where(scope)) or 0
    open_overdue = (
        db.session.scalar(
            select(func.count()).select_from(Grievance).where(scope, Grievance.status != CLOSED, Grievance.due_at < now)
        )
        or 0
    )
    closed = db.session.execute(
        select(Grievance.opened_at, Grievance.closed_at, Grievance.due_at).where(scope, Grievance.status == CLOSED)
    ).all()
    days = [(c - o).total_seconds() / 86400 for o, c, _d in closed]
    within = sum(1 for _o, c, d in closed if c <= d)
    outcomes = Counter({k: 0 for k in GRIEVANCE_OUTCOMES})
    outcomes.update(counts(Grievance.outcome))
    by_status = {s: 0 for s in GRIEVANCE_STATUSES}
    by_status.update(counts(Grievance.status))
    by_category = {c: 0 for c in GRIEVANCE_CATEGORIES}
    by_category.update(counts(Grievance.category))
    return {
        "total": total,
        "by_category": by_category,
        "by_status": by_status,
        "by_area": counts(area_col),
        "area_level": level,
        "open_overdue": open_overdue,
        "closed": len(closed),
        "days_to_close": {
            "mean": round(statistics.fmean(days), 2) if days else None,
            "median": round(statistics.median(days), 2) if days else None,
            "p90": round(_quantile(days, 0.9), 2) if days else None,
        },
        "closed_within_deadline": within,
        "share_within_deadline": round(within / len(closed), 4) if closed else None,
        "outcomes": dict(outcomes),
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _register_hooks() -> None:
    """Follow approvals of change requests (idempotent: the module may be imported more than once)."""
    from registry import change_requests

    if on_change_approved not in change_requests.AFTER_APPROVAL_HOOKS:
        change_requests.AFTER_APPROVAL_HOOKS.append(on_change_approved)


_register_hooks()
