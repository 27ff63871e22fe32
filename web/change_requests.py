"""Pages for change requests: the field officer's proposal forms (a change to a household, a new
household), the supervisor's review queue and request page (side-by-side diff, approve / reject,
bulk decisions), and a household's history with a diff between any two versions."""

from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm

from api.change_requests import evidence_root
from models import db
from models.change_request import CHANGE_KINDS, CHANGE_STATUSES, REMOVAL_REASONS
from models.codes import HOUSEHOLD_FIELDS, MEMBER_FIELDS, RELATION_TO_HEAD
from models.household import DEACTIVATION_REASONS
from registry import access, geo
from registry import change_requests as crs
from registry import households as hh
from registry.validation import Issue, RecordValidationError
from web.views import register_nav

log = logging.getLogger(__name__)

bp = Blueprint("change_requests", __name__)

#: Household fields a proposal form edits (the registry id and union never change).
EDITABLE_HOUSEHOLD_FIELDS = tuple(f for f in HOUSEHOLD_FIELDS if f.name not in ("household_id", "union_code"))
NEW_HOUSEHOLD_FIELDS = tuple(f for f in HOUSEHOLD_FIELDS if f.name != "household_id")
MEMBER_FORM_FIELDS = tuple(f for f in MEMBER_FIELDS if f.name not in ("household_id", "line_no"))
PROPOSAL_KINDS = tuple(k for k in CHANGE_KINDS if k != "new_household")
MAX_FORM_MEMBERS = 15

register_nav(_l("Change requests"), "change_requests.queue", roles=crs.READER_ROLES)
register_nav(_l("Register a household"), "change_requests.new_household", roles=crs.SUBMITTER_ROLES)


class CsrfForm(FlaskForm):
    """No fields: the proposal and review forms are built from the data dictionary; this checks CSRF."""


def _check_csrf() -> None:
    if not CsrfForm().validate_on_submit():
        abort(400, description=_("The form expired or was not sent from this site; reload the page and try again."))


@bp.app_template_filter("cr_kind")
def cr_kind_label(kind: str) -> str:
    labels = {
        "new_household": _("new household"),
        "edit_household": _("edit household"),
        "add_member": _("add member"),
        "edit_member": _("edit member"),
        "remove_member": _("remove member"),
        "change_head": _("change head"),
        "split": _("split household"),
        "deactivate": _("deactivate household"),
    }
    return labels.get(kind, kind)


@bp.errorhandler(crs.ChangeRequestConflict)
def _conflict(error: crs.ChangeRequestConflict):
    db.session.rollback()
    return render_template("error.html", code=409, name=_("Conflict"), description=error.message), 409


# --- the queue ---------------------------------------------------------------------------


@bp.route("/change-requests")
def queue():
    """Change requests in the user's areas: pending ones first for reviewers, oldest first."""
    user = current_user
    if user.role not in crs.READER_ROLES:
        raise access.AccessDenied(_("Your role has no access to change requests."))
    default_status = "pending"
    status = request.args.get("status", default_status)
    status = status if status in CHANGE_STATUSES else None
    kind = request.args.get("kind") if request.args.get("kind") in CHANGE_KINDS else None
    area = (request.args.get("area") or "").strip() or None
    sort = "newest" if request.args.get("sort") == "newest" else "oldest"
    mine = request.args.get("mine") == "1"
    flagged = request.args.get("flagged") == "1"
    page = crs.list_change_requests(
        user,
        status=status,
        area=area,
        kind=kind,
        submitted_by="me" if mine else None,
        flagged=flagged or None,
        sort=sort,
        page=request.args.get("page", 1, type=int),
        per_page=50,
    )
    rows = [crs.summary_view(cr) for cr in page.items]
    return render_template(
        "change_requests/queue.html",
        rows=rows,
        page=page,
        filters={
            "status": status or "",
            "kind": kind or "",
            "area": area or "",
            "sort": sort,
            "mine": mine,
            "flagged": flagged,
        },
        statuses=CHANGE_STATUSES,
        kinds=CHANGE_KINDS,
        can_review=user.role in crs.APPROVER_ROLES,
        form=CsrfForm(),
    )


@bp.route("/change-requests/open")
def open_household():
    """Jump from the queue page to a household's history (or its proposal form)."""
    household_id = (request.args.get("household_id") or "").strip()
    target = request.args.get("to", "history")
    if not household_id:
        return redirect(url_for("change_requests.queue"))
    if target == "propose":
        return redirect(url_for("change_requests.propose", household_id=household_id))
    return redirect(url_for("change_requests.history", household_id=household_id))


@bp.route("/change-requests/bulk", methods=["POST"])
def bulk():
    """Approve or reject the selected requests; each succeeds or fails on its own."""
    _check_csrf()
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    action = request.form.get("action")
    if not ids:
        flash(_("Select at least one change request."), "error")
        return redirect(request.referrer or url_for("change_requests.queue"))
    try:
        outcome = crs.bulk_decide(ids, action, current_user, reason=request.form.get("reason"))
    except RecordValidationError as exc:
        db.session.rollback()
        flash("; ".join(f"{k}: {', '.join(v)}" for k, v in exc.fields().items()), "error")
        return redirect(request.referrer or url_for("change_requests.queue"))
    db.session.commit()
    if outcome.succeeded:
        flash(
            _(
                "%(n)s request(s) done: %(ids)s",
                n=len(outcome.succeeded),
                ids=", ".join(str(s["id"]) for s in outcome.succeeded),
            ),
            "info",
        )
    for failure in outcome.failed:
        flash(_("Request %(id)s: %(message)s", id=failure["id"], message=failure["message"]), "error")
    return redirect(url_for("change_requests.queue", status="pending"))


# --- one request -------------------------------------------------------------------------


@bp.route("/change-requests/<int:change_request_id>")
def detail(change_request_id: int):
    """The request with a side-by-side diff, warnings, duplicate flags and the review buttons."""
    cr = crs.get_change_request(change_request_id)
    crs.require_reader(current_user, cr)
    view = crs.detail_view(cr, current_user)
    return render_template(
        "change_requests/detail.html",
        cr=cr,
        view=view,
        sides=crs.side_by_side_view(cr),
        can_review=crs.can_review(current_user, cr),
        is_submitter=cr.submitted_by_id == current_user.id,
        form=CsrfForm(),
    )


@bp.route("/change-requests/<int:change_request_id>/approve", methods=["POST"])
def approve(change_request_id: int):
    _check_csrf()
    try:
        cr = crs.approve_change(change_request_id, current_user)
    except crs.ChangeRequestStale as exc:
        db.session.commit()  # the request stays stale; say why
        flash(_("Not applied: %(why)s", why=exc.message), "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    except crs.ChangeRequestConflict as exc:
        db.session.rollback()
        flash(_("Not applied: %(why)s", why=exc.message), "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    db.session.commit()
    if cr.status == "approved":
        flash(
            _("Approved: household %(id)s is now at version %(v)s.", id=cr.household_id, v=cr.applied_version_no),
            "info",
        )
    else:
        flash(_("First approval recorded; a second supervisor must approve this high-risk change."), "info")
    return redirect(url_for("change_requests.detail", change_request_id=change_request_id))


@bp.route("/change-requests/<int:change_request_id>/reject", methods=["POST"])
def reject(change_request_id: int):
    _check_csrf()
    try:
        crs.reject_change(change_request_id, current_user, request.form.get("reason", ""))
    except RecordValidationError:
        db.session.rollback()
        flash(_("A rejection needs a reason the submitter can act on."), "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    except crs.ChangeRequestConflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    db.session.commit()
    flash(_("Rejected."), "info")
    return redirect(url_for("change_requests.queue"))


@bp.route("/change-requests/<int:change_request_id>/withdraw", methods=["POST"])
def withdraw(change_request_id: int):
    _check_csrf()
    crs.withdraw_change(change_request_id, current_user)
    db.session.commit()
    flash(_("Withdrawn."), "info")
    return redirect(url_for("change_requests.detail", change_request_id=change_request_id))


@bp.route("/change-requests/<int:change_request_id>/rebase", methods=["POST"])
def rebase(change_request_id: int):
    _check_csrf()
    try:
        cr, changed = crs.rebase_change(change_request_id, current_user)
    except RecordValidationError as exc:
        db.session.rollback()
        flash(_("The change no longer applies to the current version: %(why)s", why=str(exc)), "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    db.session.commit()
    s = changed["summary"]
    flash(
        _(
            "Re-based on version %(v)s. Changed in between: %(h)s household field(s), %(a)s member(s) added, "
            "%(r)s removed, %(c)s changed.",
            v=cr.base_version,
            h=s["household_fields"],
            a=s["members_added"],
            r=s["members_removed"],
            c=s["members_changed"],
        ),
        "info",
    )
    return redirect(url_for("change_requests.detail", change_request_id=change_request_id))


@bp.route("/change-requests/<int:change_request_id>/evidence", methods=["POST"])
def upload_evidence(change_request_id: int):
    _check_csrf()
    try:
        _store_evidence(change_request_id)
    except RecordValidationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("change_requests.detail", change_request_id=change_request_id))
    db.session.commit()
    flash(_("Evidence attached."), "info")
    return redirect(url_for("change_requests.detail", change_request_id=change_request_id))


@bp.route("/change-requests/<int:change_request_id>/evidence/<int:evidence_id>")
def download_evidence(change_request_id: int, evidence_id: int):
    from flask import send_file

    evidence, path = crs.get_evidence_file(change_request_id, evidence_id, current_user, evidence_root())
    return send_file(path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename)


def _store_evidence(change_request_id: int) -> int:
    # Refuse oversized bodies before the form parser spools them to disk.
    if (request.content_length or 0) > crs.EVIDENCE_MAX_FILES * crs.EVIDENCE_MAX_BYTES + 2**20:
        raise RecordValidationError(
            [Issue("evidence", None, None, "evidence", "", f"at most {crs.EVIDENCE_MAX_FILES} files of 5 MB")]
        )
    count = 0
    for upload in request.files.getlist("evidence"):
        if not upload or not upload.filename:
            continue
        data = upload.stream.read(crs.EVIDENCE_MAX_BYTES + 1)
        crs.add_evidence(change_request_id, current_user, upload.filename, data, evidence_root())
        count += 1
    return count


# --- proposing ---------------------------------------------------------------------------


def _blank(value):
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _form_values(specs, prefix: str = "") -> dict:
    return {spec.name: _blank(request.form.get(prefix + spec.name)) for spec in specs}


def _payload_from_form(kind: str, state: dict) -> dict:
    """The operation a proposal form describes (values stay text: validation parses them)."""
    form = request.form
    if kind == "edit_household":
        return {"household": _form_values(EDITABLE_HOUSEHOLD_FIELDS)}
    if kind == "add_member":
        return {"member": {**_form_values(MEMBER_FORM_FIELDS, "m-"), "line_no": _blank(form.get("line_no"))}}
    if kind == "edit_member":
        return {"line_no": _blank(form.get("line_no")), "member": _form_values(MEMBER_FORM_FIELDS, "m-")}
    if kind == "remove_member":
        return {
            "line_no": _blank(form.get("line_no")),
            "removal_reason": _blank(form.get("removal_reason")),
            "new_head_line_no": _blank(form.get("new_head_line_no")),
        }
    if kind == "change_head":
        return {
            "new_head_line_no": _blank(form.get("new_head_line_no")),
            "former_head_relation": _blank(form.get("former_head_relation")),
        }
    if kind == "split":
        relations = {
            key[len("rel-") :]: value for key, value in form.items() if key.startswith("rel-") and _blank(value)
        }
        return {
            "line_nos": form.getlist("line_nos"),
            "new_head_line_no": _blank(form.get("new_head_line_no")),
            "remaining_head_line_no": _blank(form.get("remaining_head_line_no")),
            "relations": relations,
            "household": {
                k: v
                for k, v in (("village", _blank(form.get("village"))), ("address", _blank(form.get("address"))))
                if v is not None
            },
        }
    if kind == "deactivate":
        return {
            "inactive_reason": _blank(form.get("inactive_reason")),
            "duplicate_of": _blank(form.get("duplicate_of")),
        }
    abort(400)


@bp.route("/households/<household_id>/propose", methods=["GET", "POST"])
def propose(household_id: str):
    """The field officer's form: propose a change to a household, against the version shown."""
    user = current_user
    access.require_role(user, *crs.SUBMITTER_ROLES)
    household = hh.get_household(household_id)
    access.require_area(user, household.union_code)
    kind = request.values.get("kind", "edit_household")
    if kind not in PROPOSAL_KINDS:
        kind = "edit_household"
    version = hh.current_version_of(household)
    state = hh.state_view(version, can_see_pii=True)
    errors: dict = {}
    status = 200
    if request.method == "POST":
        _check_csrf()
        base_version = request.form.get("base_version", type=int)
        try:
            cr = crs.submit_change(
                user,
                kind,
                household_id=household.household_id,
                base_version=base_version,
                payload=_payload_from_form(kind, state),
                reason=request.form.get("reason", ""),
            )
            _store_evidence(cr.id)
        except RecordValidationError as exc:
            db.session.rollback()
            errors, status = exc.fields(), 422
            flash(_("Please correct the fields marked below."), "error")
        except crs.ChangeRequestConflict as exc:
            db.session.rollback()
            errors, status = {"_conflict": [exc.message]}, 409
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(_("Change request %(id)s submitted for review.", id=cr.id), "info")
            return redirect(url_for("change_requests.detail", change_request_id=cr.id))
    line_no = request.values.get("line", type=int) or request.form.get("line_no", type=int)
    selected = next((m for m in state["members"] if m["line_no"] == line_no), None)
    return render_template(
        "change_requests/propose.html",
        household=household,
        state=state,
        kind=kind,
        kinds=PROPOSAL_KINDS,
        household_specs=EDITABLE_HOUSEHOLD_FIELDS,
        member_specs=MEMBER_FORM_FIELDS,
        selected=selected,
        next_line=max((m["line_no"] for m in state["members"]), default=0) + 1,
        values=request.form if request.method == "POST" else None,
        errors=errors,
        removal_reasons=REMOVAL_REASONS,
        deactivation_reasons=DEACTIVATION_REASONS,
        relations={k: v for k, v in RELATION_TO_HEAD.items() if k != 1},
        form=CsrfForm(),
    ), status


@bp.route("/change-requests/new-household", methods=["GET", "POST"])
def new_household():
    """Register a new household (with its members) as a change request."""
    user = current_user
    access.require_role(user, *crs.SUBMITTER_ROLES)
    count = min(MAX_FORM_MEMBERS, max(1, request.values.get("members", 4, type=int)))
    errors: dict = {}
    status = 200
    if request.method == "POST":
        _check_csrf()
        household = _form_values(NEW_HOUSEHOLD_FIELDS)
        members = []
        for i in range(1, count + 1):
            values = _form_values(MEMBER_FORM_FIELDS, f"m{i}-")
            if values.get("name_bn") or values.get("name_en"):
                members.append({**values, "line_no": str(i)})
        try:
            if not members:
                raise RecordValidationError([])
            cr = crs.submit_change(
                user,
                "new_household",
                payload={"household": household, "members": members},
                reason=request.form.get("reason", ""),
            )
            _store_evidence(cr.id)
        except RecordValidationError as exc:
            db.session.rollback()
            errors = exc.fields() or {"members": [_("at least one member with a name")]}
            status = 422
            flash(_("Please correct the fields marked below."), "error")
        else:
            db.session.commit()
            flash(_("Change request %(id)s submitted: the registry id is issued on approval.", id=cr.id), "info")
            return redirect(url_for("change_requests.detail", change_request_id=cr.id))
    return render_template(
        "change_requests/new_household.html",
        household_specs=NEW_HOUSEHOLD_FIELDS,
        member_specs=MEMBER_FORM_FIELDS,
        count=count,
        values=request.form if request.method == "POST" else None,
        errors=errors,
        areas=user.area_codes,
        form=CsrfForm(),
    ), status


# --- a household's history ---------------------------------------------------------------


@bp.route("/households/<household_id>/history")
def history(household_id: str):
    """The household page with its version history, an "as of" lookup and a diff between versions."""
    household = hh.get_household(household_id)
    access.require_household_reader(current_user, household)
    pii = access.can_see_pii(current_user)
    as_of_text = (request.args.get("as_of") or "").strip()
    as_of_error = None
    version = hh.current_version_of(household)
    if as_of_text:
        try:
            when = dt.datetime.fromisoformat(as_of_text)
            when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when
            version = hh.version_as_of(household, when)
        except ValueError:
            as_of_error = _("Give a date and time as YYYY-MM-DD HH:MM (UTC).")
        except hh.VersionNotFound as exc:
            as_of_error = str(exc)
    elif request.args.get("version", type=int):
        version = hh.get_version(household, request.args.get("version", type=int))
    versions = [hh.version_meta(v) for v in hh.list_versions(household)]
    from_no = request.args.get("from", type=int)
    to_no = request.args.get("to", type=int) or household.current_version
    diff = None
    if from_no:
        diff = crs.household_diff(household, from_no, to_no, can_see_pii=pii)
    pending = (
        crs.list_change_requests(current_user, household_id=household.household_id, status="pending").items
        if current_user.role in crs.READER_ROLES
        else []
    )
    return render_template(
        "change_requests/household_history.html",
        household=household,
        state=hh.state_view(version, can_see_pii=pii),
        versions=versions,
        chain=geo.area_chain(household.union_code),
        pii=pii,
        diff=diff,
        from_no=from_no,
        to_no=to_no,
        as_of=as_of_text,
        as_of_error=as_of_error,
        pending=pending,
        can_propose=current_user.role in crs.SUBMITTER_ROLES and access.in_scope(current_user, household.union_code),
    )
