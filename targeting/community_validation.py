"""Community validation of eligibility lists: publish per union/ward, objections, committee
decisions, the validated list, and the centre's spot-check.

The flow (``docs/grievances.md`` has the whole story):

1. :func:`publish_list` publishes a built list in one or more unions/wards. Each publication fixes
   its objection window: the programme's own (``Programme.objection_days``, set with
   :func:`set_objection_window`), else the configured default (``COMMUNITY_OBJECTION_DAYS`` = 30);
   a publication may override it. It also fixes the text telling people how to object.
   :func:`notice_view` is the printable notice: the union's households in rank order with the
   head's name, the father's/husband's name and the village, never a national ID.
2. :func:`record_objection` while the window is open: *inclusion* ("should not be on the list": a
   household on the list in that union) or *exclusion* ("poor and missing": a registered household of
   the union not on the list, or a family not registered yet, which starts a new-household change
   request or is linked to one). Evidence files: :func:`add_objection_evidence`.
3. :func:`decide_objection`: the committee's decision (upheld / dismissed, meeting date, reference).
4. :func:`finalise_publication` after the window closed and every objection was decided. It derives a
   *validated list*: a new frozen :class:`EligibilityList` of the same programme, model and score run,
   whose entries are the published list's minus upheld inclusion objections plus upheld exclusion
   objections about households scored in the list's run (families not registered yet, and households
   registered since the run, join a later list once registered and scored: ``validation_view`` lists
   them as *deferred*, with their decisions). Decisions of every finalised publication of the list so far
   are applied, so the latest validated list is the programme's current list; every difference is a
   :class:`ValidatedListChange` pointing at its decision.
5. :func:`spot_check`: human decisions prevail but are checked. Flags upheld decisions that diverge
   strongly from the PMT, and unions whose override rate is unusually high (definitions below).

Who may do what:

* the programme's own officers (``targeting.eligibility.can_manage``) publish, record objections and
  decisions, and finalise, within their areas;
* enumerators of the union (the field staff) record objections and evidence on behalf of community
  members, and register unregistered families through a new-household change request;
* the publication, its objections and the notice are readable by the programme's officers and by
  enumerators and supervisors of the union; the objector's name only by the programme's officers;
* the spot-check report ("the centre") by programme officers, statisticians and viewers: it names
  households by registry id and rank, never by name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import statistics
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import Integer, and_, func, insert, literal, or_, select, union_all

from models import Area, Household, HouseholdScore, HouseholdVersion, Member, User, db
from models.base import utcnow
from models.change_request import ChangeRequest
from models.codes import HEAD
from models.programme import EligibilityList, EligibilityListEntry, Programme
from models.validation import (
    DECISION_OUTCOMES,
    OBJECTION_KINDS,
    ListPublication,
    Objection,
    ObjectionDecision,
    ObjectionEvidence,
    ValidatedList,
    ValidatedListChange,
)
from registry import access
from registry.audit import record_event
from registry.households import HouseholdNotFound, fill_snapshots, get_household
from registry.privacy import MASK
from registry.validation import Issue, RecordValidationError
from targeting import eligibility as el

log = logging.getLogger(__name__)

DEFAULT_OBJECTION_DAYS = 30
#: Spot-check: an upheld decision is flagged when the household's percentile (within the list's local
#: area) is more than this many points away from the area's cut-off, on the side the PMT disagrees.
DEFAULT_DIVERGENCE_POINTS = 20.0
#: Spot-check: a union is flagged when its override rate (upheld decisions / published entries)
#: exceeds this share, or exceeds the mean + 2 standard deviations of the published unions (5+ unions).
DEFAULT_OVERRIDE_RATE = 0.20
MIN_UNIONS_FOR_SD_RULE = 5
#: Roles that read publications, objections and notices (besides the programme's own officers).
FIELD_READER_ROLES = frozenset({"enumerator", "supervisor"})
#: Roles of "the centre" that read the spot-check report.
CENTRE_ROLES = frozenset({"programme_officer", "statistician", "viewer"})
RANK_COLUMNS = {
    "national": (HouseholdScore.national_rank, HouseholdScore.national_percentile),
    "division": (HouseholdScore.division_rank, HouseholdScore.division_percentile),
    "district": (HouseholdScore.district_rank, HouseholdScore.district_percentile),
    "upazila": (HouseholdScore.upazila_rank, HouseholdScore.upazila_percentile),
    "union": (HouseholdScore.union_rank, HouseholdScore.union_percentile),
}
AREA_LENGTHS = {"national": 0, "division": 2, "district": 4, "upazila": 6, "union": 8}
DEFAULT_HOW_TO_OBJECT = (
    "Anyone who thinks a household on this list should not be on it, or that a poor household is "
    "missing, may object until {deadline}: in person at the Union Parishad office, or through the "
    "union's field officer. Give the serial number (or the family's name and village) and the reason. "
    "Objections are decided by the union committee."
)


class PublicationNotFound(LookupError):
    def __init__(self, publication_id):
        super().__init__(f"no publication {publication_id}")


class ObjectionNotFound(LookupError):
    def __init__(self, objection_id):
        super().__init__(f"no objection {objection_id}")


class EvidenceNotFound(LookupError):
    def __init__(self, objection_id, evidence_id):
        super().__init__(f"no evidence {evidence_id} on objection {objection_id}")


class ValidationConflict(RuntimeError):
    """The step is not allowed in the publication's state (window closed, already decided, ...): 409."""


def _invalid(field: str, value, rule: str) -> RecordValidationError:
    return RecordValidationError([Issue("validation", None, None, field, "" if value is None else str(value), rule)])


def _setting(name: str, default):
    from flask import current_app, has_app_context

    return current_app.config.get(name, default) if has_app_context() else default


# --- access ---------------------------------------------------------------------------------


def require_organiser(user: User, publication_or_list) -> None:
    """The programme's own officers (and, for a publication, within the union's area)."""
    lst = publication_or_list if isinstance(publication_or_list, EligibilityList) else _list(publication_or_list)
    el.require_manager(user, lst.programme)
    if isinstance(publication_or_list, ListPublication):
        access.require_area(user, publication_or_list.union_code)


def is_organiser(user: User, publication: ListPublication) -> bool:
    return el.can_manage(user, _list(publication).programme) and access.in_scope(user, publication.union_code)


def require_recorder(user: User, publication: ListPublication) -> None:
    """Objections are recorded by the programme's officers or by the union's enumerators."""
    if user.role == "enumerator":
        access.require_area(user, publication.union_code)
        return
    require_organiser(user, publication)


def require_publication_reader(user: User, publication: ListPublication) -> None:
    if user.role in FIELD_READER_ROLES:
        access.require_area(user, publication.union_code)
        return
    require_organiser(user, publication)


def require_centre(user: User, lst: EligibilityList) -> None:
    if user.role not in CENTRE_ROLES:
        raise access.AccessDenied(f"role {user.role!r} may not read the spot-check report")
    if user.role == "programme_officer":
        el.require_manager(user, lst.programme)


# --- reads ----------------------------------------------------------------------------------


def _list(publication: ListPublication) -> EligibilityList:
    return db.session.get(EligibilityList, publication.list_id)


def get_publication(publication_id: int) -> ListPublication:
    publication = db.session.get(ListPublication, publication_id)
    if publication is None:
        raise PublicationNotFound(publication_id)
    return publication


def get_objection(objection_id: int) -> Objection:
    objection = db.session.get(Objection, objection_id)
    if objection is None:
        raise ObjectionNotFound(objection_id)
    return objection


def source_list_of(lst: EligibilityList) -> EligibilityList:
    """The published list a validated list derives from (the list itself otherwise)."""
    validated = db.session.get(ValidatedList, lst.id)
    return db.session.get(EligibilityList, validated.source_list_id) if validated else lst


def list_publications(lst: EligibilityList, user: User) -> list[ListPublication]:
    """The list's publications within the user's areas."""
    stmt = select(ListPublication).where(ListPublication.list_id == lst.id)
    if not access.has_national_scope(user):
        stmt = stmt.where(or_(*(ListPublication.union_code.startswith(c, autoescape=True) for c in user.area_codes)))
    return list(db.session.scalars(stmt.order_by(ListPublication.union_code)))


def list_open_publications(user: User, *, limit: int = 200) -> list[ListPublication]:
    """Publications still open in the user's areas (the programme's officers: of their programmes),
    nearest deadline first: the work queue of union staff and programme officers."""
    stmt = select(ListPublication).where(ListPublication.status == "open")
    if not access.has_national_scope(user):
        if not user.area_codes:
            return []
        stmt = stmt.where(or_(*(ListPublication.union_code.startswith(c, autoescape=True) for c in user.area_codes)))
    publications = list(db.session.scalars(stmt.order_by(ListPublication.objection_deadline).limit(limit)))
    if user.role in FIELD_READER_ROLES:
        return publications
    if user.role != "programme_officer":
        return []
    return [p for p in publications if el.can_manage(user, _list(p).programme)]


def window_open(publication: ListPublication, now: dt.datetime | None = None) -> bool:
    return publication.status == "open" and (now or utcnow()) <= publication.objection_deadline


def _lock(obj) -> None:
    """Re-read a row under its lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers):
    concurrent steps on one list, publication or objection apply one after the other."""
    db.session.flush()
    model = type(obj)
    db.session.execute(select(model.id).where(model.id == obj.id).with_for_update())
    # Expire after the lock is held: the next read then sees what the previous holder committed.
    db.session.expire(obj)


# --- publishing -----------------------------------------------------------------------------


def default_objection_days() -> int:
    """The configured objection window of programmes that set none (``COMMUNITY_OBJECTION_DAYS``)."""
    return int(_setting("COMMUNITY_OBJECTION_DAYS", DEFAULT_OBJECTION_DAYS))


def objection_days_of(programme: Programme) -> int:
    """The objection window a new publication of the programme gets: its own, else the default."""
    return programme.objection_days or default_objection_days()


def set_objection_window(programme: Programme, actor: User, objection_days: int | None) -> Programme:
    """Set the programme's own objection window in days (1-365), or ``None`` for the configured default.
    Publications already made keep theirs (flushed; the caller commits)."""
    el.require_manager(actor, programme)
    if objection_days is not None and not 1 <= objection_days <= 365:
        raise _invalid("objection_days", objection_days, "between 1 and 365 days")
    before = programme.objection_days
    if before == objection_days:
        return programme
    programme.objection_days = objection_days
    db.session.flush()
    record_event(
        actor,
        "programme.objection_window",
        "programme",
        programme.id,
        summary=f"objection window of programme {programme.id} set to "
        + (f"{objection_days} days" if objection_days else f"the default ({default_objection_days()} days)"),
        before={"objection_days": before},
        after={"objection_days": objection_days},
    )
    return programme


def publish_list(
    lst: EligibilityList,
    actor: User,
    *,
    union_codes: list[str] | None = None,
    area_code: str | None = None,
    objection_days: int | None = None,
    how_to_object: str | None = None,
) -> list[ListPublication]:
    """Publish the list for objections in the given unions/wards, or in every union of ``area_code``
    (any level; all unions of the list when omitted) that has households on the list. An explicitly
    named union already published is a conflict; a bulk publication skips those already done."""
    el.require_manager(actor, lst.programme)
    _lock(lst)  # publications of one list are serialised (one per union)
    if db.session.get(ValidatedList, lst.id) is not None:
        raise ValidationConflict(f"list {lst.id} is a validated list; publish the list it was derived from")
    days = int(objection_days if objection_days is not None else objection_days_of(lst.programme))
    if not 1 <= days <= 365:
        raise _invalid("objection_days", days, "between 1 and 365 days")
    if union_codes and area_code:
        raise _invalid("area_code", area_code, "give union codes or an area, not both")
    Entry = EligibilityListEntry
    counts_stmt = select(Entry.union_code, func.count()).where(Entry.list_id == lst.id).group_by(Entry.union_code)
    explicit = bool(union_codes)
    if explicit:
        codes = list(dict.fromkeys(union_codes))
        areas = dict(db.session.execute(select(Area.code, Area.level).where(Area.code.in_(codes))).all())
        bad = [c for c in codes if areas.get(c) != "union"]
        if bad:
            raise _invalid("union_codes", ", ".join(bad), "not union/ward codes")
        counts_stmt = counts_stmt.where(Entry.union_code.in_(codes))
    else:
        if area_code:
            access.require_area(actor, area_code)
            counts_stmt = counts_stmt.where(Entry.union_code.startswith(area_code, autoescape=True))
    counts = dict(db.session.execute(counts_stmt).all())
    if not explicit:
        codes = sorted(c for c in counts if access.in_scope(actor, c))
    for code in codes:
        access.require_area(actor, code)
    done = set(
        db.session.scalars(
            select(ListPublication.union_code).where(
                ListPublication.list_id == lst.id, ListPublication.union_code.in_(codes)
            )
        )
    )
    if explicit and done:
        raise ValidationConflict(f"list {lst.id} is already published in {', '.join(sorted(done))}")
    now = utcnow()
    deadline = now + dt.timedelta(days=days)
    text = (how_to_object or "").strip() or DEFAULT_HOW_TO_OBJECT.format(deadline=deadline.strftime("%d %B %Y"))
    created = []
    for code in codes:
        if code in done:
            continue
        publication = ListPublication(
            list_id=lst.id,
            programme_id=lst.programme_id,
            union_code=code,
            status="open",
            n_entries=counts.get(code, 0),
            objection_days=days,
            published_at=now,
            objection_deadline=deadline,
            how_to_object=text,
            published_by_id=actor.id,
        )
        db.session.add(publication)
        created.append(publication)
    if lst.status == "built" and created:
        lst.status = "in_validation"
    db.session.flush()
    if created:
        record_event(
            actor,
            "eligibility_list.publish",
            "eligibility_list",
            lst.id,
            summary=f"published list {lst.id} for objections in {len(created)} union(s) until "
            f"{deadline.date().isoformat()} ({days} days)",
            after={"publications": [p.id for p in created], "unions": [p.union_code for p in created]},
        )
    return created


# --- objections and decisions ---------------------------------------------------------------


def _on_list(list_id: int, household_pk: int) -> bool:
    return (
        db.session.scalar(
            select(EligibilityListEntry.position).where(
                EligibilityListEntry.list_id == list_id, EligibilityListEntry.household_pk == household_pk
            )
        )
        is not None
    )


def record_objection(
    publication: ListPublication,
    actor: User,
    *,
    kind: str,
    reason: str,
    household_id: str | None = None,
    family_head_name: str | None = None,
    family_father_or_husband_name: str | None = None,
    family_village: str | None = None,
    objector_name: str | None = None,
    change_request_id: int | None = None,
    new_household: Mapping | None = None,
) -> Objection:
    """Record an objection on behalf of a community member while the window is open.

    An exclusion objection about a family not registered yet describes the family and either links
    the new-household change request that registers it (``change_request_id``) or starts one from
    ``new_household`` (``{"household": {...}, "members": [...]}``; field staff only, as any change
    request)."""
    require_recorder(actor, publication)
    _lock(publication)  # the duplicate check and the window check see finalisation and each other
    if publication.status != "open":
        raise ValidationConflict(f"publication {publication.id} is finalised: no more objections")
    if utcnow() > publication.objection_deadline:
        raise ValidationConflict(
            f"the objection window of publication {publication.id} closed on "
            f"{publication.objection_deadline.isoformat(timespec='minutes')}"
        )
    issues = []
    if kind not in OBJECTION_KINDS:
        issues.append(Issue("objection", None, household_id, "kind", str(kind), f"one of {OBJECTION_KINDS}"))
    if not (reason or "").strip():
        issues.append(Issue("objection", None, household_id, "reason", "", "say why"))
    household = None
    if household_id:
        try:
            household = get_household(household_id)
        except HouseholdNotFound:
            issues.append(Issue("objection", None, household_id, "household_id", household_id, "no such household"))
    if household is not None:
        if household.union_code != publication.union_code:
            issues.append(
                Issue(
                    "objection",
                    None,
                    household_id,
                    "household_id",
                    household_id,
                    f"lives in union {household.union_code}, not in {publication.union_code}",
                )
            )
        on_list = _on_list(publication.list_id, household.id)
        if kind == "inclusion" and not on_list:
            issues.append(Issue("objection", None, household_id, "household_id", household_id, "is not on the list"))
        if kind == "exclusion" and on_list:
            issues.append(
                Issue("objection", None, household_id, "household_id", household_id, "is already on the list")
            )
    elif not household_id:
        if kind == "inclusion":
            issues.append(Issue("objection", None, None, "household_id", "", "name the household on the list"))
        elif not (family_head_name or "").strip():
            issues.append(
                Issue("objection", None, None, "family_head_name", "", "name the household, or describe the family")
            )
    if issues:
        raise RecordValidationError(issues)
    if household is not None:
        existing = db.session.scalar(
            select(Objection.id)
            .outerjoin(ObjectionDecision, ObjectionDecision.objection_id == Objection.id)
            .where(
                Objection.publication_id == publication.id,
                Objection.household_pk == household.id,
                Objection.kind == kind,
                ObjectionDecision.id.is_(None),
            )
        )
        if existing:
            raise ValidationConflict(
                f"objection {existing} about household {household.household_id} awaits its decision; "
                "add the new evidence or reasons to it"
            )
    objection = Objection(
        publication_id=publication.id,
        kind=kind,
        household_pk=household.id if household is not None else None,
        family_head_name=None if household is not None else family_head_name.strip(),
        family_father_or_husband_name=None
        if household is not None
        else ((family_father_or_husband_name or "").strip() or None),
        family_village=None if household is not None else ((family_village or "").strip() or None),
        reason=reason.strip(),
        objector_name=(objector_name or "").strip() or None,
        recorded_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(objection)
    db.session.flush()
    if household is None:
        if new_household is not None and change_request_id is not None:
            raise _invalid("new_household", "…", "give a new household or a change request id, not both")
        if new_household is not None:
            change_request_id = _start_registration(objection, publication, actor, new_household).id
        if change_request_id is not None:
            _link_registration(objection, publication, change_request_id)
    record_event(
        actor,
        "objection.record",
        "objection",
        objection.id,
        summary=f"{kind} objection on list {publication.list_id} in union {publication.union_code} about "
        + (household.household_id if household is not None else "an unregistered family"),
        after={
            "publication_id": publication.id,
            "kind": kind,
            "household_id": household.household_id if household is not None else None,
            "change_request_id": objection.change_request_id,
        },
    )
    return objection


def _start_registration(objection: Objection, publication: ListPublication, actor: User, new_household: Mapping):
    from registry import change_requests as crs

    payload = {
        "household": {**(new_household.get("household") or {}), "union_code": publication.union_code},
        "members": list(new_household.get("members") or []),
    }
    return crs.submit_change(
        actor,
        "new_household",
        payload=payload,
        reason=f"registration asked by community validation objection {objection.id} (list {publication.list_id})",
    )


def _link_registration(objection: Objection, publication: ListPublication, change_request_id: int) -> None:
    cr = db.session.get(ChangeRequest, change_request_id)
    if cr is None:
        raise _invalid("change_request_id", change_request_id, "no such change request")
    if cr.kind != "new_household" or cr.union_code != publication.union_code:
        raise _invalid(
            "change_request_id", change_request_id, f"must register a new household in union {publication.union_code}"
        )
    if cr.status in ("rejected", "withdrawn"):
        raise _invalid("change_request_id", change_request_id, f"is {cr.status}")
    objection.change_request_id = cr.id
    db.session.flush()


def link_registration(objection: Objection, actor: User, change_request_id: int) -> Objection:
    """Link the new-household change request that registers the family an exclusion objection names."""
    publication = objection.publication
    require_recorder(actor, publication)
    if objection.household_pk is not None:
        raise _invalid("change_request_id", change_request_id, "the objection names a registered household")
    previous = objection.change_request_id
    _link_registration(objection, publication, change_request_id)
    record_event(
        actor,
        "objection.link_registration",
        "objection",
        objection.id,
        summary=f"objection {objection.id}: registration by change request {change_request_id}",
        before={"change_request_id": previous},
        after={"change_request_id": change_request_id},
    )
    return objection


def add_objection_evidence(objection: Objection, actor: User, filename: str, data: bytes, root: Path):
    """Attach a JPEG, PNG or PDF (checked by content, at most 5 MB) until the objection is decided."""
    from registry import change_requests as crs

    require_recorder(actor, objection.publication)
    if objection.decision is not None:
        raise ValidationConflict(f"objection {objection.id} is decided: evidence is closed")
    if not data:
        raise _invalid("file", filename, "the file is empty")
    if len(data) > crs.EVIDENCE_MAX_BYTES:
        raise _invalid("file", filename, f"at most {crs.EVIDENCE_MAX_BYTES // (1024 * 1024)} MB per file")
    detected = crs.detect_evidence_type(data[:16])
    if detected is None:
        raise _invalid("file", filename, "only JPEG, PNG or PDF files (checked from the file's content)")
    if len(objection.evidence) >= crs.EVIDENCE_MAX_FILES:
        raise _invalid("file", filename, f"at most {crs.EVIDENCE_MAX_FILES} files per objection")
    content_type, ext = detected
    evidence = ObjectionEvidence(
        objection_id=objection.id,
        filename=_safe_filename(filename),
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_path="pending",
        uploaded_by_id=actor.id,
    )
    db.session.add(evidence)
    db.session.flush()
    relative = f"{objection.id}/{evidence.id}{ext}"
    target = Path(root) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
    evidence.storage_path = relative
    objection.evidence.append(evidence)
    record_event(
        actor,
        "objection.evidence",
        "objection",
        objection.id,
        summary=f"attached {evidence.filename} ({content_type}, {len(data)} bytes, sha256 {evidence.sha256[:12]})",
    )
    db.session.flush()
    return evidence


def _safe_filename(name: str | None) -> str:
    import re
    import unicodedata

    name = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/")))
    name = re.sub(r"[^\w.\- ()]+", "_", name).strip(" ._") or "evidence"
    return name[:200]


def get_evidence_file(objection: Objection, evidence_id: int, actor: User, root: Path):
    require_publication_reader(actor, objection.publication)
    evidence = next((e for e in objection.evidence if e.id == evidence_id), None)
    if evidence is None:
        raise EvidenceNotFound(objection.id, evidence_id)
    path = (Path(root) / evidence.storage_path).resolve()
    if not path.is_relative_to(Path(root).resolve()) or not path.is_file():
        raise EvidenceNotFound(objection.id, evidence_id)
    return evidence, path


def decide_objection(
    objection: Objection,
    actor: User,
    *,
    outcome: str,
    meeting_date: dt.date,
    reference: str,
    note: str | None = None,
) -> ObjectionDecision:
    """Record the committee's decision on an objection (once; before the publication is finalised)."""
    publication = objection.publication
    require_organiser(actor, publication)
    _lock(publication)
    _lock(objection)
    if publication.status != "open":
        raise ValidationConflict(f"publication {publication.id} is finalised")
    if objection.decision is not None:
        raise ValidationConflict(f"objection {objection.id} was decided on {objection.decision.meeting_date}")
    issues = []
    if outcome not in DECISION_OUTCOMES:
        issues.append(Issue("decision", None, None, "outcome", str(outcome), f"one of {DECISION_OUTCOMES}"))
    if not (reference or "").strip():
        issues.append(Issue("decision", None, None, "reference", "", "the committee's minute or resolution number"))
    today = utcnow().date()
    if meeting_date is None or meeting_date > today or meeting_date < publication.published_at.date():
        issues.append(
            Issue(
                "decision",
                None,
                None,
                "meeting_date",
                str(meeting_date),
                f"between the publication ({publication.published_at.date()}) and today",
            )
        )
    if issues:
        raise RecordValidationError(issues)
    decision = ObjectionDecision(
        objection_id=objection.id,
        outcome=outcome,
        meeting_date=meeting_date,
        reference=reference.strip(),
        note=(note or "").strip() or None,
        decided_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(decision)
    objection.decision = decision
    db.session.flush()
    record_event(
        actor,
        "objection.decide",
        "objection",
        objection.id,
        summary=f"committee {outcome} {objection.kind} objection {objection.id} "
        f"(meeting {meeting_date.isoformat()}, ref. {decision.reference})",
        after={"decision_id": decision.id, "outcome": outcome, "reference": decision.reference},
    )
    return decision


# --- finalising: the validated list ---------------------------------------------------------


def _rank_columns(level: str):
    return RANK_COLUMNS.get(level, RANK_COLUMNS["national"])


def finalise_publication(publication: ListPublication, actor: User) -> EligibilityList:
    """Close the publication (after its window, with every objection decided) and derive the validated
    list applying the decisions of every finalised publication of the list (flushed; caller commits)."""
    require_organiser(actor, publication)
    source = _list(publication)
    # Serialise finalisations of one list (each derives the next validated list from all of them), then
    # re-read the publication so that a concurrent finalisation or decision is seen.
    _lock(source)
    _lock(publication)
    if publication.status != "open":
        raise ValidationConflict(f"publication {publication.id} is already finalised")
    if utcnow() <= publication.objection_deadline:
        raise ValidationConflict(
            f"the objection window of publication {publication.id} is open until "
            f"{publication.objection_deadline.isoformat(timespec='minutes')}: it cannot be finalised before"
        )
    undecided = list(
        db.session.scalars(
            select(Objection.id)
            .outerjoin(ObjectionDecision, ObjectionDecision.objection_id == Objection.id)
            .where(Objection.publication_id == publication.id, ObjectionDecision.id.is_(None))
            .order_by(Objection.id)
        )
    )
    if undecided:
        raise ValidationConflict(f"objections without a committee decision: {', '.join(map(str, undecided))}")
    publication.status = "finalised"
    publication.finalised_at = utcnow()
    publication.finalised_by_id = actor.id
    db.session.flush()
    validated = _derive_validated_list(source, actor)
    publication.validated_list_id = validated.id
    db.session.flush()
    record_event(
        actor,
        "eligibility_list.validate",
        "eligibility_list",
        validated.id,
        summary=f"finalised publication {publication.id} (union {publication.union_code}) of list {source.id}: "
        f"validated list {validated.id} with {validated.n_entries} households",
        after={"source_list_id": source.id, "publication_id": publication.id},
    )
    return validated


def _upheld_changes(source: EligibilityList) -> list[dict]:
    """Upheld decisions of the source list's finalised publications that change its entries, one per
    household (the earliest decision wins)."""
    rows = db.session.execute(
        select(
            Objection.kind,
            Objection.household_pk,
            ObjectionDecision.id.label("decision_id"),
            ListPublication.id.label("publication_id"),
        )
        .join(ObjectionDecision, ObjectionDecision.objection_id == Objection.id)
        .join(ListPublication, ListPublication.id == Objection.publication_id)
        .where(
            ListPublication.list_id == source.id,
            ListPublication.status == "finalised",
            ObjectionDecision.outcome == "upheld",
            Objection.household_pk.is_not(None),
        )
        .order_by(ObjectionDecision.id)
    ).all()
    on_list = set(
        db.session.scalars(
            select(EligibilityListEntry.household_pk).where(
                EligibilityListEntry.list_id == source.id,
                EligibilityListEntry.household_pk.in_([r.household_pk for r in rows]),
            )
        )
    )
    changes: dict[int, dict] = {}
    for r in rows:
        if r.household_pk in changes:
            continue
        if r.kind == "inclusion" and r.household_pk in on_list:
            changes[r.household_pk] = {"change": "removed", **r._asdict()}
        elif r.kind == "exclusion" and r.household_pk not in on_list:
            changes[r.household_pk] = {"change": "added", **r._asdict()}
    return list(changes.values())


def _derive_validated_list(source: EligibilityList, actor: User) -> EligibilityList:
    Entry = EligibilityListEntry
    changes = _upheld_changes(source)
    # A household added by the committee takes its facts from the list's own score run (one model inside
    # a list): one registered since the run was made joins the programme's next list instead, like a
    # family not registered yet (both are listed as deferred by ``validation_view``).
    scored = _scored_in_run(source, [c["household_pk"] for c in changes if c["change"] == "added"])
    changes = [c for c in changes if c["change"] == "removed" or c["household_pk"] in scored]
    added = [c["household_pk"] for c in changes if c["change"] == "added"]
    removed = [c["household_pk"] for c in changes if c["change"] == "removed"]
    run_id = source.score_run_id
    number = (
        db.session.scalar(
            select(func.max(EligibilityList.number)).where(EligibilityList.programme_id == source.programme_id)
        )
        or 0
    ) + 1
    lst = EligibilityList(
        programme_id=source.programme_id,
        number=number,
        status="validated",
        definition=source.definition,
        definition_hash=source.definition_hash,
        programme_version=source.programme_version,
        criteria_labels=source.criteria_labels,
        local_level=source.local_level,
        model_id=source.model_id,
        score_run_id=source.score_run_id,
        as_of=source.as_of,
        built_by_id=actor.id,
        funnel={**(source.funnel or {}), "validation": {"added": len(added), "removed": len(removed)}},
        n_entries=0,
        entries_hash="",
    )
    db.session.add(lst)
    db.session.flush()
    publications = list(
        db.session.scalars(
            select(ListPublication.id).where(
                ListPublication.list_id == source.id, ListPublication.status == "finalised"
            )
        )
    )
    db.session.add(
        ValidatedList(
            list_id=lst.id,
            source_list_id=source.id,
            publication_ids=sorted(publications),
            n_added=len(added),
            n_removed=len(removed),
            created_by_id=actor.id,
        )
    )
    for c in changes:
        db.session.add(
            ValidatedListChange(
                list_id=lst.id,
                source_list_id=source.id,
                household_pk=c["household_pk"],
                change=c["change"],
                decision_id=c["decision_id"],
                publication_id=c["publication_id"],
            )
        )
    db.session.flush()

    kept = (
        select(
            Entry.household_pk,
            Household.household_id,
            Entry.household_version,
            Entry.scored_version,
            Entry.union_code,
            Entry.area_type,
            Entry.head_sex,
            Entry.score,
            Entry.predicted_log_pc,
            Entry.below_poverty_line,
            Entry.national_rank,
            Entry.local_rank,
            Entry.criteria_met,
        )
        .join(Household, Household.id == Entry.household_pk)
        .where(Entry.list_id == source.id)
    )
    if removed:
        kept = kept.where(
            Entry.household_pk.not_in(
                select(ValidatedListChange.household_pk).where(
                    ValidatedListChange.list_id == lst.id, ValidatedListChange.change == "removed"
                )
            )
        )
    parts = [kept]
    if added:
        local_rank, _pct = _rank_columns(source.local_level)
        head_sex = (
            select(Member.sex)
            .where(Member.household_pk == Household.id, Member.relation_to_head == HEAD)
            .limit(1)
            .scalar_subquery()
        )
        parts.append(
            select(
                Household.id.label("household_pk"),
                Household.household_id,
                Household.current_version.label("household_version"),
                HouseholdScore.household_version.label("scored_version"),
                Household.union_code,
                Household.area_type,
                head_sex.label("head_sex"),
                HouseholdScore.score,
                HouseholdScore.predicted_log_pc,
                HouseholdScore.below_poverty_line,
                HouseholdScore.national_rank,
                local_rank.label("local_rank"),
                # Added by the committee, not by the rule: no criterion is claimed.
                literal(0, Integer).label("criteria_met"),
            )
            .join(HouseholdScore, HouseholdScore.household_pk == Household.id)
            .where(HouseholdScore.run_id == run_id, Household.id.in_(added))
        )
    combined = union_all(*parts).subquery("combined") if len(parts) > 1 else kept.subquery("combined")
    position = func.row_number().over(order_by=(combined.c.predicted_log_pc, combined.c.household_id))
    columns = [name for name in el.ENTRY_COLUMNS if name != "position"]
    rows = select(
        literal(lst.id, Integer).label("list_id"), position.label("position"), *(combined.c[n] for n in columns)
    )
    db.session.execute(insert(Entry.__table__).from_select(["list_id", "position", *columns], rows))
    lst.n_entries = db.session.scalar(select(func.count()).select_from(Entry).where(Entry.list_id == lst.id))
    lst.funnel = {**lst.funnel, "selected": lst.n_entries}
    lst.entries_hash = _entries_hash(lst.id)
    db.session.flush()
    return lst


def _scored_in_run(source: EligibilityList, pks: list[int]) -> set[int]:
    """Which of the households were scored in the list's score run."""
    if not pks:
        return set()
    return set(
        db.session.scalars(
            select(HouseholdScore.household_pk).where(
                HouseholdScore.run_id == source.score_run_id, HouseholdScore.household_pk.in_(pks)
            )
        )
    )


def _entries_hash(list_id: int) -> str:
    # The eligibility engine's own definition of a list's entries hash, so validated lists verify alike.
    return el._hash_rows(db.session.execute(el._entry_hash_query(list_id)))


# --- views ----------------------------------------------------------------------------------


def _username(user_id: int | None) -> str | None:
    user = db.session.get(User, user_id) if user_id else None
    return user.username if user else None


def _area_name(code: str) -> str | None:
    area = db.session.get(Area, code)
    return area.name_en if area else None


def publication_view(publication: ListPublication, user: User | None = None) -> dict:
    lst = _list(publication)
    counts = {"inclusion": 0, "exclusion": 0, "upheld": 0, "dismissed": 0, "undecided": 0}
    for o in publication.objections:
        counts[o.kind] += 1
        counts[o.decision.outcome if o.decision else "undecided"] += 1
    return {
        "id": publication.id,
        "list_id": publication.list_id,
        "programme_id": publication.programme_id,
        "programme_name": lst.programme.name,
        "list_number": lst.number,
        "union_code": publication.union_code,
        "union_name": _area_name(publication.union_code),
        "status": publication.status,
        "n_entries": publication.n_entries,
        "objection_days": publication.objection_days,
        "published_at": publication.published_at,
        "published_by": _username(publication.published_by_id),
        "objection_deadline": publication.objection_deadline,
        "window_open": window_open(publication),
        "how_to_object": publication.how_to_object,
        "objections": counts,
        "finalised_at": publication.finalised_at,
        "finalised_by": _username(publication.finalised_by_id),
        "validated_list_id": publication.validated_list_id,
    }


def objection_view(objection: Objection, user: User) -> dict:
    household = db.session.get(Household, objection.household_pk) if objection.household_pk else None
    decision = objection.decision
    cr = db.session.get(ChangeRequest, objection.change_request_id) if objection.change_request_id else None
    return {
        "id": objection.id,
        "publication_id": objection.publication_id,
        "kind": objection.kind,
        "household_id": household.household_id if household else None,
        "family": None
        if household
        else {
            "head_name": objection.family_head_name,
            "father_or_husband_name": objection.family_father_or_husband_name,
            "village": objection.family_village,
        },
        "change_request": {"id": cr.id, "status": cr.status, "household_id": cr.household_id} if cr else None,
        "reason": objection.reason,
        "objector_name": objection.objector_name
        if objection.objector_name is None or is_organiser(user, objection.publication)
        else MASK,
        "recorded_by": _username(objection.recorded_by_id),
        "recorded_at": objection.recorded_at,
        "evidence": [
            {"id": e.id, "filename": e.filename, "content_type": e.content_type, "size_bytes": e.size_bytes}
            for e in objection.evidence
        ],
        "decision": None
        if decision is None
        else {
            "id": decision.id,
            "outcome": decision.outcome,
            "meeting_date": decision.meeting_date,
            "reference": decision.reference,
            "note": decision.note,
            "decided_by": _username(decision.decided_by_id),
            "recorded_at": decision.recorded_at,
        },
    }


def _father_or_husband(head: Mapping) -> tuple[str | None, str | None]:
    """("husband", name) for a married or widowed woman whose husband is recorded, else ("father", name)."""
    if head.get("sex") == 2 and head.get("marital_status") in (2, 3) and head.get("spouse_name"):
        return "husband", head["spouse_name"]
    return ("father", head.get("father_name")) if head.get("father_name") else (None, None)


def notice_view(publication: ListPublication) -> dict:
    """The printable notice: the union's households in rank order (serial, list position), head's name,
    father's/husband's name and village, from the household version the list froze. National IDs,
    phone numbers and dates of birth are never read into it."""
    Entry = EligibilityListEntry
    lst = _list(publication)
    rows = db.session.execute(
        select(Entry.position, Household.household_id, Entry.household_pk, HouseholdVersion.snapshot)
        .join(Household, Household.id == Entry.household_pk)
        .join(
            HouseholdVersion,
            and_(
                HouseholdVersion.household_pk == Entry.household_pk,
                HouseholdVersion.version_no == Entry.household_version,
            ),
        )
        .where(Entry.list_id == lst.id, Entry.union_code == publication.union_code)
        .order_by(Entry.position)
    ).all()
    snapshots = fill_snapshots([(pk, snapshot) for _p, _h, pk, snapshot in rows])
    households = []
    for serial, (position, household_id, household_pk, _stored) in enumerate(rows, start=1):
        snapshot = snapshots[household_pk]
        members = snapshot.get("members") or []
        head = next((m for m in members if m.get("relation_to_head") == HEAD), {})
        relation, relative = _father_or_husband(head)
        households.append(
            {
                "serial": serial,
                "list_position": position,
                "household_id": household_id,
                "head_name_bn": head.get("name_bn"),
                "head_name_en": head.get("name_en"),
                "relative_relation": relation,
                "relative_name": relative,
                "village": (snapshot.get("household") or {}).get("village"),
            }
        )
    chain = []
    area = db.session.get(Area, publication.union_code)
    while area is not None:
        chain.append({"code": area.code, "level": area.level, "name_en": area.name_en, "name_bn": area.name_bn})
        area = db.session.get(Area, area.parent_code) if area.parent_code else None
    return {
        "publication": publication_view(publication),
        "areas": list(reversed(chain)),
        "programme": {"id": lst.programme_id, "name": lst.programme.name, "ministry": lst.programme.ministry},
        "list": {"id": lst.id, "number": lst.number, "model_id": lst.model_id, "as_of": lst.as_of},
        "households": households,
    }


def _deferred(lst: EligibilityList, publication_ids: list[int]) -> list[dict]:
    """Upheld exclusion objections the validated list could not apply: families not registered yet, and
    households registered after the list's score run. They join the programme's next list."""
    on_list = select(EligibilityListEntry.household_pk).where(EligibilityListEntry.list_id == lst.id)
    rows = db.session.execute(
        select(
            Objection.id,
            Objection.publication_id,
            Objection.change_request_id,
            Household.household_id,
            ObjectionDecision.id.label("decision_id"),
            ObjectionDecision.meeting_date,
            ObjectionDecision.reference,
        )
        .join(ObjectionDecision, ObjectionDecision.objection_id == Objection.id)
        .outerjoin(Household, Household.id == Objection.household_pk)
        .where(
            Objection.publication_id.in_(publication_ids or [-1]),
            Objection.kind == "exclusion",
            ObjectionDecision.outcome == "upheld",
            or_(Objection.household_pk.is_(None), Objection.household_pk.not_in(on_list)),
        )
        .order_by(Objection.id)
    ).all()
    return [
        {
            "objection_id": r.id,
            "publication_id": r.publication_id,
            "household_id": r.household_id,
            "change_request_id": r.change_request_id,
            "decision_id": r.decision_id,
            "meeting_date": r.meeting_date,
            "reference": r.reference,
            "reason": "not registered yet" if r.household_id is None else "not scored in the list's score run",
        }
        for r in rows
    ]


def validation_view(lst: EligibilityList) -> dict:
    """A validated list's provenance: its source, the publications applied, every difference with the
    decision behind it, and the upheld objections deferred to the programme's next list."""
    validated = db.session.get(ValidatedList, lst.id)
    if validated is None:
        return {"list_id": lst.id, "validated": False, "source_list_id": None, "changes": [], "deferred": []}
    rows = db.session.execute(
        select(ValidatedListChange, Household.household_id, ObjectionDecision, Objection.kind)
        .join(Household, Household.id == ValidatedListChange.household_pk)
        .join(ObjectionDecision, ObjectionDecision.id == ValidatedListChange.decision_id)
        .join(Objection, Objection.id == ObjectionDecision.objection_id)
        .where(ValidatedListChange.list_id == lst.id)
        .order_by(ValidatedListChange.change, Household.household_id)
    ).all()
    return {
        "list_id": lst.id,
        "validated": True,
        "source_list_id": validated.source_list_id,
        "publication_ids": validated.publication_ids,
        "n_added": validated.n_added,
        "n_removed": validated.n_removed,
        "created_at": validated.created_at,
        "created_by": _username(validated.created_by_id),
        "changes": [
            {
                "household_id": household_id,
                "change": change.change,
                "publication_id": change.publication_id,
                "objection_id": decision.objection_id,
                "objection_kind": kind,
                "decision_id": decision.id,
                "meeting_date": decision.meeting_date,
                "reference": decision.reference,
            }
            for change, household_id, decision, kind in rows
        ],
        "deferred": _deferred(lst, validated.publication_ids),
    }


# --- the centre's spot-check ----------------------------------------------------------------


def _percent(value: float | None) -> float | None:
    """Percentiles as points 0-100 (the scores table keeps them as shares 0-1)."""
    return None if value is None else round(100.0 * value, 2)


def flag_override_rates(
    rates: Mapping, *, override_rate: float = DEFAULT_OVERRIDE_RATE, min_units: int = MIN_UNIONS_FOR_SD_RULE
) -> tuple[dict, float | None, float | None]:
    """Which unions' override rates are unusually high: above ``override_rate``, or (with at least
    ``min_units`` unions) above the mean + 2 population standard deviations of all of them.
    Returns ``({key: [reasons]}, mean, sd)``; pure."""
    values = list(rates.values())
    mean = statistics.fmean(values) if values else None
    sd = statistics.pstdev(values) if len(values) > 1 else None
    sd_limit = mean + 2 * sd if sd is not None and len(values) >= min_units else None
    flags = {}
    for key, rate in rates.items():
        reasons = []
        if rate > override_rate:
            reasons.append(f"override rate above {override_rate:.0%}")
        if sd_limit is not None and rate > sd_limit:
            reasons.append("override rate above the mean + 2 sd of the published unions")
        flags[key] = reasons
    return flags, mean, sd


def spot_check(
    lst: EligibilityList,
    user: User,
    *,
    divergence_points: float = DEFAULT_DIVERGENCE_POINTS,
    override_rate: float = DEFAULT_OVERRIDE_RATE,
) -> dict:
    """Check the committees' upheld decisions against the PMT.

    * **Diverging decisions.** For each household added (upheld exclusion objection) or removed
      (upheld inclusion objection), its percentile within its area at the list's local level (the
      national percentile for national lists), from the list's score run, is compared with the area's
      *cut-off*: the highest percentile among the published list's households of that area. An added
      household more than ``divergence_points`` points above the cut-off (clearly better off than the
      last one the PMT selected), or a removed one more than ``divergence_points`` below it (clearly
      among the poorest), is flagged. The rank and the cut-off rank are reported beside (rank ratio).
    * **Unions with unusual override rates.** Override rate = upheld decisions / households published
      in the union. Flagged above ``override_rate`` (20 %), or, with at least 5 unions published, above
      the mean + 2 standard deviations of the published unions.
    """
    source = source_list_of(lst)
    require_centre(user, source)
    level = source.local_level or "national"
    rank_col, pct_col = _rank_columns(level)
    length = AREA_LENGTHS.get(level, 0)
    Entry = EligibilityListEntry

    def area_of(code: str) -> str:
        return code[:length] if length else "national"

    area_expr = func.substr(Household.union_code, 1, length) if length else literal("national")
    cutoffs = {
        area: {"rank": rank, "percentile": _percent(pct)}
        for area, rank, pct in db.session.execute(
            select(area_expr.label("area"), func.max(rank_col), func.max(pct_col))
            .select_from(Entry)
            .join(Household, Household.id == Entry.household_pk)
            .join(
                HouseholdScore,
                and_(HouseholdScore.household_pk == Entry.household_pk, HouseholdScore.run_id == source.score_run_id),
            )
            .where(Entry.list_id == source.id)
            .group_by(area_expr)
        ).all()
    }
    decisions = db.session.execute(
        select(
            ObjectionDecision.id,
            ObjectionDecision.outcome,
            ObjectionDecision.reference,
            Objection.id.label("objection_id"),
            Objection.kind,
            Objection.household_pk,
            ListPublication.id.label("publication_id"),
            ListPublication.union_code,
        )
        .join(Objection, Objection.id == ObjectionDecision.objection_id)
        .join(ListPublication, ListPublication.id == Objection.publication_id)
        .where(ListPublication.list_id == source.id)
        .order_by(ObjectionDecision.id)
    ).all()
    pks = [d.household_pk for d in decisions if d.household_pk is not None and d.outcome == "upheld"]
    facts = {
        pk: (household_id, rank, _percent(pct))
        for pk, household_id, rank, pct in db.session.execute(
            select(Household.id, Household.household_id, rank_col, pct_col)
            .join(
                HouseholdScore,
                and_(HouseholdScore.household_pk == Household.id, HouseholdScore.run_id == source.score_run_id),
                isouter=True,
            )
            .where(Household.id.in_(pks))
        ).all()
    }
    flagged = []
    checked = []
    for d in decisions:
        if d.outcome != "upheld" or d.household_pk is None:
            continue
        household_id, rank, pct = facts.get(d.household_pk, (None, None, None))
        cutoff = cutoffs.get(area_of(d.union_code), {"rank": None, "percentile": None})
        change = "removed" if d.kind == "inclusion" else "added"
        distance = None
        if pct is not None and cutoff["percentile"] is not None:
            distance = (
                round(pct - cutoff["percentile"], 2) if change == "added" else round(cutoff["percentile"] - pct, 2)
            )
        item = {
            "decision_id": d.id,
            "objection_id": d.objection_id,
            "publication_id": d.publication_id,
            "union_code": d.union_code,
            "household_id": household_id,
            "change": change,
            "reference": d.reference,
            "rank": rank,
            "cutoff_rank": cutoff["rank"],
            "rank_ratio": round(rank / cutoff["rank"], 2) if rank and cutoff["rank"] else None,
            "percentile": pct,
            "cutoff_percentile": cutoff["percentile"],
            "divergence_points": distance,
            "flagged": distance is not None and distance > divergence_points,
        }
        checked.append(item)
        if item["flagged"]:
            flagged.append(item)

    upheld_by_pub: dict[int, int] = {}
    decided_by_pub: dict[int, int] = {}
    for d in decisions:
        decided_by_pub[d.publication_id] = decided_by_pub.get(d.publication_id, 0) + 1
        if d.outcome == "upheld":
            upheld_by_pub[d.publication_id] = upheld_by_pub.get(d.publication_id, 0) + 1
    publications = list(
        db.session.scalars(
            select(ListPublication).where(ListPublication.list_id == source.id).order_by(ListPublication.union_code)
        )
    )
    rates = {p.id: upheld_by_pub.get(p.id, 0) / max(p.n_entries, 1) for p in publications}
    flags, mean, sd = flag_override_rates(rates, override_rate=override_rate)
    unions = []
    for p in publications:
        rate = rates[p.id]
        reasons = flags[p.id]
        unions.append(
            {
                "publication_id": p.id,
                "union_code": p.union_code,
                "union_name": _area_name(p.union_code),
                "status": p.status,
                "entries": p.n_entries,
                "decisions": decided_by_pub.get(p.id, 0),
                "upheld": upheld_by_pub.get(p.id, 0),
                "override_rate": round(rate, 4),
                "flagged": bool(reasons),
                "reasons": reasons,
            }
        )
    return {
        "list_id": lst.id,
        "source_list_id": source.id,
        "local_level": level,
        "thresholds": {
            "divergence_points": divergence_points,
            "override_rate": override_rate,
            "sd_rule_min_unions": MIN_UNIONS_FOR_SD_RULE,
        },
        "decisions": len(decisions),
        "upheld": sum(upheld_by_pub.values()),
        "checked": checked,
        "flagged_decisions": flagged,
        "unions": unions,
        "mean_override_rate": round(mean, 4) if mean is not None else None,
        "sd_override_rate": round(sd, 4) if sd is not None else None,
        "flagged_unions": [u for u in unions if u["flagged"]],
    }
