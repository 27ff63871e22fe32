"""Community validation pages: publish a list per union/ward, the A4 notice, record objections and
committee decisions, finalise into the validated list, and the centre's spot-check report. Views are
thin: ``targeting.community_validation`` checks role and area."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, FileField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from models import db
from registry.validation import RecordValidationError
from targeting import community_validation as cv
from targeting import eligibility as el
from web.views import register_nav

bp = Blueprint("validation", __name__)

register_nav(_l("Community validation"), "validation.index", roles={"programme_officer", "enumerator", "supervisor"})


class PublishForm(FlaskForm):
    area_code = StringField(
        _l("Union/ward code, or a larger area to publish in all its unions"),
        validators=[Optional(), Regexp(r"^\d{2}(\d{2}){0,3}$", message=_l("A BBS area code."))],
    )
    objection_days = IntegerField(
        _l("Objection window (days; empty: the programme's window)"), validators=[Optional(), NumberRange(1, 365)]
    )
    how_to_object = TextAreaField(
        _l("How to object (leave empty for the standard text)"), [Optional(), Length(max=2000)]
    )


class WindowForm(FlaskForm):
    window_days = IntegerField(
        _l("Objection window of the programme (days; empty: the default)"), [Optional(), NumberRange(1, 365)]
    )


class ObjectionForm(FlaskForm):
    kind = SelectField(
        _l("Objection"),
        choices=[
            SelectChoice("inclusion", _l("Inclusion: this household should not be on the list")),
            SelectChoice("exclusion", _l("Exclusion: this household is poor and missing")),
        ],
    )
    household_id = StringField(_l("Household registry id"), validators=[Optional(), Length(max=24)])
    family_head_name = StringField(_l("Or, a family not registered: head's name"), [Optional(), Length(max=120)])
    family_father_or_husband_name = StringField(_l("Father's/husband's name"), [Optional(), Length(max=120)])
    family_village = StringField(_l("Village"), [Optional(), Length(max=120)])
    change_request_id = IntegerField(_l("Its new-household change request id (if submitted)"), [Optional()])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=5000)])
    objector_name = StringField(_l("Objector (kept private; may be left empty)"), [Optional(), Length(max=120)])


class DecisionForm(FlaskForm):
    outcome = SelectField(
        _l("Committee decision"),
        choices=[SelectChoice("upheld", _l("Upheld")), SelectChoice("dismissed", _l("Dismissed"))],
    )
    meeting_date = DateField(_l("Meeting date"), validators=[DataRequired()])
    reference = StringField(_l("Minute / resolution number"), validators=[DataRequired(), Length(max=120)])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])


class EvidenceForm(FlaskForm):
    file = FileField(_l("Evidence (JPEG, PNG or PDF, at most 5 MB)"))


def _form_errors(form) -> None:
    for field, errors in form.errors.items():
        for error in errors:
            flash(f"{getattr(form, field).label.text}: {error}", "error")


def _run(action, success: str) -> tuple[bool, object]:
    """Call a service and commit; on a refusal roll back and tell the user why. (worked, result)."""
    try:
        result = action()
        db.session.commit()
    except (cv.ValidationConflict, RecordValidationError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return False, None
    except Exception:
        db.session.rollback()
        raise
    flash(success, "info")
    return True, result


def _evidence_root() -> Path:
    base = current_app.config.get("UPLOAD_FOLDER") or str(Path(current_app.instance_path) / "uploads")
    return Path(base) / "objections"


def list_url(list_id: int) -> str:
    """The eligibility list's own page (``web.programmes``)."""
    return url_for("programmes.list_detail", list_id=list_id)


@bp.route("/community-validation")
def index():
    """Open publications in the user's areas, nearest deadline first."""
    publications = cv.list_open_publications(current_user)
    return render_template("validation/index.html", rows=[cv.publication_view(p, current_user) for p in publications])


@bp.route("/lists/<int:list_id>/community-validation", methods=["GET", "POST"])
def list_page(list_id: int):
    """A list's publications per union, and (for its programme officers) the publish form."""
    lst = el.get_list(list_id)
    el.require_reader(current_user)
    form = PublishForm()
    window_form = WindowForm(prefix="window")
    can_publish = el.can_manage(current_user, lst.programme)
    if request.method == "POST":
        el.require_manager(current_user, lst.programme)
        if form.validate_on_submit():
            code = (form.area_code.data or "").strip() or None
            done, created = _run(
                lambda: cv.publish_list(
                    lst,
                    current_user,
                    union_codes=[code] if code and len(code) == 8 else None,
                    area_code=code if code and len(code) < 8 else None,
                    objection_days=form.objection_days.data,
                    how_to_object=form.how_to_object.data,
                ),
                _("Published."),
            )
            if done:
                if not created:
                    flash(_("Nothing new to publish there (already published, or no household on the list)."), "error")
                return redirect(url_for("validation.list_page", list_id=lst.id))
        else:
            _form_errors(form)
    rows = [cv.publication_view(p, current_user) for p in cv.list_publications(lst, current_user)]
    if request.method == "GET":
        window_form.window_days.data = lst.programme.objection_days
    return render_template(
        "validation/list.html",
        lst=lst,
        rows=rows,
        form=form,
        window_form=window_form,
        window_days=cv.objection_days_of(lst.programme),
        default_days=cv.default_objection_days(),
        can_publish=can_publish,
        provenance=cv.validation_view(lst),
        list_url=list_url(lst.id),
    )


@bp.route("/lists/<int:list_id>/community-validation/window", methods=["POST"])
def set_window(list_id: int):
    """Set the objection window of the list's programme (its officers)."""
    lst = el.get_list(list_id)
    form = WindowForm(prefix="window")
    if form.validate_on_submit():
        _run(
            lambda: cv.set_objection_window(lst.programme, current_user, form.window_days.data),
            _("Objection window saved."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("validation.list_page", list_id=lst.id))


@bp.route("/publications/<int:publication_id>")
def publication(publication_id: int):
    """The publication: window, objections with their decisions, and the forms to add them."""
    pub = cv.get_publication(publication_id)
    cv.require_publication_reader(current_user, pub)
    view = cv.publication_view(pub, current_user)
    objections = [cv.objection_view(o, current_user) for o in pub.objections]
    return render_template(
        "validation/publication.html",
        pub=view,
        objections=objections,
        is_organiser=cv.is_organiser(current_user, pub),
        can_record=current_user.role == "enumerator" or cv.is_organiser(current_user, pub),
        objection_form=ObjectionForm(),
        decision_form=DecisionForm(),
        evidence_form=EvidenceForm(),
    )


@bp.route("/publications/<int:publication_id>/notice")
def notice(publication_id: int):
    """The notice to post at the union office: an A4 print view."""
    pub = cv.get_publication(publication_id)
    cv.require_publication_reader(current_user, pub)
    return render_template("validation/notice.html", notice=cv.notice_view(pub))


@bp.route("/publications/<int:publication_id>/objections", methods=["POST"])
def record_objection(publication_id: int):
    pub = cv.get_publication(publication_id)
    form = ObjectionForm()
    if form.validate_on_submit():
        _run(
            lambda: cv.record_objection(
                pub,
                current_user,
                kind=form.kind.data,
                reason=form.reason.data,
                household_id=(form.household_id.data or "").strip() or None,
                family_head_name=form.family_head_name.data,
                family_father_or_husband_name=form.family_father_or_husband_name.data,
                family_village=form.family_village.data,
                objector_name=form.objector_name.data,
                change_request_id=form.change_request_id.data,
            ),
            _("Objection recorded."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("validation.publication", publication_id=pub.id))


@bp.route("/objections/<int:objection_id>/decision", methods=["POST"])
def decide(objection_id: int):
    objection = cv.get_objection(objection_id)
    form = DecisionForm()
    if form.validate_on_submit():
        _run(
            lambda: cv.decide_objection(
                objection,
                current_user,
                outcome=form.outcome.data,
                meeting_date=form.meeting_date.data,
                reference=form.reference.data,
                note=form.note.data,
            ),
            _("Decision recorded."),
        )
    else:
        _form_errors(form)
    return redirect(url_for("validation.publication", publication_id=objection.publication_id))


@bp.route("/objections/<int:objection_id>/evidence", methods=["POST"])
def upload_evidence(objection_id: int):
    from registry.change_requests import EVIDENCE_MAX_BYTES

    objection = cv.get_objection(objection_id)
    form = EvidenceForm()
    upload = request.files.get("file")
    if not form.validate_on_submit() or upload is None or not upload.filename:
        flash(_("Choose a file to attach."), "error")
    else:
        data = upload.stream.read(EVIDENCE_MAX_BYTES + 1)
        _run(
            lambda: cv.add_objection_evidence(objection, current_user, upload.filename, data, _evidence_root()),
            _("Evidence attached."),
        )
    return redirect(url_for("validation.publication", publication_id=objection.publication_id))


@bp.route("/objections/<int:objection_id>/evidence/<int:evidence_id>")
def download_evidence(objection_id: int, evidence_id: int):
    objection = cv.get_objection(objection_id)
    evidence, path = cv.get_evidence_file(objection, evidence_id, current_user, _evidence_root())
    return send_file(path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename)


@bp.route("/publications/<int:publication_id>/finalise", methods=["POST"])
def finalise(publication_id: int):
    pub = cv.get_publication(publication_id)
    form = FlaskForm()
    if not form.validate_on_submit():
        _form_errors(form)
        return redirect(url_for("validation.publication", publication_id=pub.id))
    done, validated = _run(
        lambda: cv.finalise_publication(pub, current_user), _("Finalised: the validated list is built.")
    )
    if done:
        return redirect(url_for("validation.list_page", list_id=validated.id))
    return redirect(url_for("validation.publication", publication_id=pub.id))


@bp.route("/lists/<int:list_id>/spot-check")
def spot_check(list_id: int):
    """The centre's report: decisions that diverge strongly from the PMT, unions with high override rates."""
    lst = el.get_list(list_id)
    points = request.args.get("divergence_points", cv.DEFAULT_DIVERGENCE_POINTS, type=float)
    rate = request.args.get("override_rate", cv.DEFAULT_OVERRIDE_RATE, type=float)
    report = cv.spot_check(
        lst, current_user, divergence_points=min(max(points, 0.0), 100.0), override_rate=min(max(rate, 0.0), 1.0)
    )
    return render_template("validation/spot_check.html", lst=lst, report=report)
