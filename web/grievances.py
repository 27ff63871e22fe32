"""Grievance pages: the case queue with deadlines, intake, the case page (timeline, verification,
linked change request, score before/after, actions), statistics, and the field officers' queue of
verification tasks. Views are thin: ``registry.grievances`` checks role and area."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from models import db
from models.codes import MOBILE_PATTERN
from models.grievance import GRIEVANCE_CATEGORIES, GRIEVANCE_CHANNELS, GRIEVANCE_STATUSES
from registry import access
from registry import grievances as gr
from registry.users import get_user_by_username
from registry.validation import RecordValidationError
from web.views import register_nav

bp = Blueprint("grievances", __name__)

register_nav(_l("Grievances"), "grievances.queue", roles=gr.CASE_READER_ROLES)
register_nav(_l("Verification tasks"), "grievances.tasks", roles=gr.FIELD_ROLES)
register_nav(_l("Grievance statistics"), "grievances.stats", roles=gr.STATS_ROLES - gr.CASE_READER_ROLES)

CHANNEL_LABELS = {
    "in_person": _l("In person"),
    "hotline": _l("Hotline"),
    "union_office": _l("Union office"),
    "web": _l("Web"),
}
CATEGORY_LABELS = {
    "exclusion": _l("Exclusion (poor but not selected)"),
    "inclusion": _l("Inclusion (selected but not eligible)"),
    "data_error": _l("Data error"),
    "payment": _l("Payment"),
    "misconduct": _l("Misconduct"),
    "privacy": _l("Privacy"),
}


class IntakeForm(FlaskForm):
    channel = SelectField(_l("Channel"), choices=[SelectChoice(c, CHANNEL_LABELS[c]) for c in GRIEVANCE_CHANNELS])
    category = SelectField(_l("Category"), choices=[SelectChoice(c, CATEGORY_LABELS[c]) for c in GRIEVANCE_CATEGORIES])
    household_id = StringField(_l("Household registry id"), validators=[Optional(), Length(max=24)])
    union_code = StringField(
        _l("Union/ward code (when the family is not registered)"),
        validators=[Optional(), Regexp(r"^\d{8}$", message=_l("An 8-digit union/ward code."))],
    )
    programme_id = IntegerField(_l("Programme id (if the complaint is about a programme)"), validators=[Optional()])
    list_id = IntegerField(_l("Eligibility list id"), validators=[Optional()])
    description = TextAreaField(_l("Complaint"), validators=[DataRequired(), Length(max=5000)])
    complainant_name = StringField(_l("Complainant's name"), validators=[Optional(), Length(max=120)])
    complainant_phone = StringField(
        _l("Complainant's mobile number"),
        validators=[Optional(), Regexp(MOBILE_PATTERN, message=_l("A Bangladeshi mobile number 01XXXXXXXXX."))],
    )


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Grievance officer"), choices=[])


class VerificationForm(FlaskForm):
    instructions = TextAreaField(
        _l("What the field officer should check"), validators=[DataRequired(), Length(max=2000)]
    )


class LinkForm(FlaskForm):
    change_request_id = IntegerField(_l("Change request id"), validators=[DataRequired(), NumberRange(min=1)])


class ResolveForm(FlaskForm):
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=2000)])


class CloseForm(FlaskForm):
    resolution_text = TextAreaField(
        _l("Resolution for the complainant"), validators=[DataRequired(), Length(min=10, max=5000)]
    )


class CompleteTaskForm(FlaskForm):
    finding = SelectField(
        _l("Finding"),
        choices=[
            SelectChoice("no_change", _l("The data is right")),
            SelectChoice("not_found", _l("Household not found")),
        ],
    )
    note = TextAreaField(_l("What was found"), validators=[DataRequired(), Length(max=2000)])


def _form_errors(form) -> None:
    for field, errors in form.errors.items():
        for error in errors:
            flash(f"{getattr(form, field).label.text}: {error}", "error")


def _run(action, success: str) -> bool:
    """Call a service and commit, or roll back and tell the user why; True when it worked."""
    try:
        action()
        db.session.commit()
    except (gr.GrievanceConflict, RecordValidationError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return False
    except Exception:
        db.session.rollback()
        raise
    flash(success, "info")
    return True


def change_request_url(cr_id: int | None) -> str | None:
    """The change-request page (``web.change_requests``)."""
    return url_for("change_requests.detail", change_request_id=cr_id) if cr_id is not None else None


@bp.app_context_processor
def _helpers():
    return {"change_request_url": change_request_url, "category_labels": CATEGORY_LABELS}


@bp.route("/grievances")
def queue():
    """The case queue of the user's areas, most urgent deadline first."""
    args = request.args
    status = args.get("status") or "active"
    overdue = {"yes": True, "no": False}.get(args.get("overdue", ""))
    page = gr.list_grievances(
        current_user,
        status=status if status in (*GRIEVANCE_STATUSES, "active") else None,
        category=args.get("category") if args.get("category") in GRIEVANCE_CATEGORIES else None,
        overdue=overdue,
        assigned=args.get("assigned") or None,
        page=args.get("page", 1, type=int),
        per_page=50,
    )
    rows = [gr.grievance_view(g, current_user, detail=False) for g in page.items]
    return render_template(
        "grievances/queue.html", page=page, rows=rows, statuses=GRIEVANCE_STATUSES, categories=GRIEVANCE_CATEGORIES
    )


@bp.route("/grievances/new", methods=["GET", "POST"])
def new():
    """Record a complaint received in person, on the hotline, at the union office or on the web."""
    access.require_role(current_user, *sorted(gr.INTAKE_ROLES))
    form = IntakeForm()
    if request.method == "GET":
        form.household_id.data = request.args.get("household_id")
    if form.validate_on_submit():
        created = {}

        def action():
            created["case"] = gr.open_grievance(
                current_user,
                channel=form.channel.data,
                category=form.category.data,
                description=form.description.data,
                household_id=(form.household_id.data or "").strip() or None,
                union_code=(form.union_code.data or "").strip() or None,
                programme_id=form.programme_id.data,
                list_id=form.list_id.data,
                complainant_name=form.complainant_name.data,
                complainant_phone=form.complainant_phone.data,
            )

        if _run(action, _("Grievance recorded.")):
            case = created["case"]
            flash(_("Give the complainant this reference: %(ref)s", ref=case.reference), "info")
            if current_user.role in gr.CASE_READER_ROLES:
                return redirect(url_for("grievances.detail", grievance_id=case.id))
            return redirect(url_for("grievances.new"))
    elif request.method == "POST":
        _form_errors(form)
    return render_template("grievances/new.html", form=form), (200 if request.method == "GET" else 400)


@bp.route("/grievances/<int:grievance_id>")
def detail(grievance_id: int):
    """The case: complaint, household, deadline, timeline, verification, change request, outcome."""
    case = gr.get_grievance(grievance_id)
    gr.require_case_reader(current_user, case)
    view = gr.grievance_view(case, current_user)
    is_assigned = current_user.role == "grievance_officer" and case.assigned_to_id == current_user.id
    assign_form = None
    if current_user.role == "grievance_officer" and case.status != "closed":
        assign_form = AssignForm()
        assign_form.assignee.choices = [SelectChoice(u.username) for u in gr.list_assignable_officers(case)]
        assign_form.assignee.data = view["assigned_to"] or current_user.username
    return render_template(
        "grievances/detail.html",
        case=case,
        view=view,
        is_assigned=is_assigned,
        assign_form=assign_form,
        verification_form=VerificationForm(),
        link_form=LinkForm(),
        resolve_form=ResolveForm(),
        close_form=CloseForm(),
    )


@bp.route("/grievances/<int:grievance_id>/assign", methods=["POST"])
def assign(grievance_id: int):
    case = gr.get_grievance(grievance_id)
    assignee = get_user_by_username(request.form.get("assignee", ""))
    form = AssignForm()
    form.assignee.choices = [SelectChoice(u.username) for u in gr.list_assignable_officers(case)]
    if assignee is None or not form.validate_on_submit():
        flash(_("Choose a grievance officer of the case's area."), "error")
    else:
        _run(lambda: gr.assign_grievance(case, assignee, actor=current_user), _("Assigned."))
    return redirect(url_for("grievances.detail", grievance_id=case.id))


@bp.route("/grievances/<int:grievance_id>/request-verification", methods=["POST"])
def request_verification(grievance_id: int):
    case = gr.get_grievance(grievance_id)
    form = VerificationForm()
    if form.validate_on_submit():
        _run(
            lambda: gr.request_verification(case, actor=current_user, instructions=form.instructions.data),
            _("Field verification requested from the area's enumerators."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("grievances.detail", grievance_id=case.id))


@bp.route("/grievances/<int:grievance_id>/link-change-request", methods=["POST"])
def link_change_request(grievance_id: int):
    case = gr.get_grievance(grievance_id)
    form = LinkForm()
    if form.validate_on_submit():
        _run(
            lambda: gr.link_change_request(case, form.change_request_id.data, actor=current_user),
            _("Change request linked to the case."),
        )
    else:
        _form_errors(form)
    if current_user.role in gr.CASE_READER_ROLES:
        return redirect(url_for("grievances.detail", grievance_id=case.id))
    return redirect(url_for("grievances.tasks"))


@bp.route("/grievances/<int:grievance_id>/resolve", methods=["POST"])
def resolve(grievance_id: int):
    case = gr.get_grievance(grievance_id)
    form = ResolveForm()
    if form.validate_on_submit():
        _run(lambda: gr.resolve_grievance(case, actor=current_user, note=form.note.data), _("Outcome recorded."))
    else:
        _form_errors(form)
    return redirect(url_for("grievances.detail", grievance_id=case.id))


@bp.route("/grievances/<int:grievance_id>/close", methods=["POST"])
def close(grievance_id: int):
    case = gr.get_grievance(grievance_id)
    form = CloseForm()
    if form.validate_on_submit():
        _run(
            lambda: gr.close_grievance(case, actor=current_user, resolution_text=form.resolution_text.data),
            _("Case closed."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("grievances.detail", grievance_id=case.id))


@bp.route("/grievances/stats")
def stats():
    """Aggregates for the user's areas (no personal data)."""
    level = request.args.get("level", "district")
    data = gr.grievance_stats(
        current_user,
        area=request.args.get("area") or None,
        level=level if level in gr.AREA_LEVEL_LENGTHS else "district",
    )
    return render_template("grievances/stats.html", stats=data, levels=tuple(gr.AREA_LEVEL_LENGTHS))


@bp.route("/verification-tasks")
def tasks():
    """The field officer's queue: verifications requested in their areas."""
    status = request.args.get("status", "open")
    items = gr.list_verification_tasks(current_user, status=status if status in ("open", "done") else "open")
    return render_template(
        "grievances/tasks.html",
        tasks=[gr.task_view(t) for t in items],
        status=status,
        link_form=LinkForm(),
        complete_form=CompleteTaskForm(),
        propose_url=_propose_url,
    )


def _propose_url(household_id: str | None) -> str:
    """The change-request form for the household, or for registering a new household."""
    if household_id:
        return url_for("change_requests.propose", household_id=household_id)
    return url_for("change_requests.new_household")


@bp.route("/verification-tasks/<int:task_id>/complete", methods=["POST"])
def complete_task(task_id: int):
    task = gr.get_verification_task(task_id)
    form = CompleteTaskForm()
    if form.validate_on_submit():
        _run(
            lambda: gr.complete_verification(task, actor=current_user, finding=form.finding.data, note=form.note.data),
            _("Verification reported."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("grievances.tasks"))
