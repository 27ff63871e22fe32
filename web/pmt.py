"""PMT model pages: the list, upload and specify a calibration, the report, compare, publish and activate.

Statisticians calibrate, compare, publish and activate; every other signed-in role reads the
published, active and retired models and their scorecards (drafts stay with statisticians).
Models are national; the area check applies where the registry is read (the comparison's
eligibility counts cover the user's areas).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from werkzeug.utils import secure_filename
from wtforms import (
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from models import db
from registry import access, jobs
from registry.access import AccessDenied
from targeting import pmt_models
from targeting.calibration import METHODS, PUBLISHABLE_METHODS, SpecError
from targeting.calibration_jobs import (
    UPLOADS_DIRNAME,
    enqueue_calibration,
    last_job_id,
    run_job_now,
    run_jobs_queued_after,
)
from web.views import register_nav

log = logging.getLogger(__name__)

bp = Blueprint("pmt", __name__, url_prefix="/pmt")
register_nav(_l("PMT models"), "pmt.model_list")

STATISTICIAN = "statistician"
#: Stratification presets offered by the form (the spec also accepts a list of columns).
STRATA_CHOICES = [
    SelectChoice("national", _l("National (one scorecard)")),
    SelectChoice("urban_rural", _l("Urban / rural")),
    SelectChoice("division", _l("Division")),
    SelectChoice("urban_rural_x_division", _l("Urban/rural × division")),
]
METHOD_LABELS = {
    "wls": _l("Weighted least squares"),
    "stepwise": _l("Stepwise selection"),
    "lasso": _l("Lasso"),
    "quantile": _l("Quantile regression (near the poverty line)"),
    "gbm": _l("Gradient boosting (benchmark only, not publishable)"),
}


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class CalibrationForm(FlaskForm):
    """Upload a survey and specify the calibration (or paste a YAML/JSON spec)."""

    name = StringField(_l("Model name"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    survey = FileField(_l("Survey households (CSV)"), validators=[FileRequired(), FileAllowed(["csv"], _l("CSV only"))])
    members = FileField(_l("Survey members (CSV, optional)"), validators=[FileAllowed(["csv"], _l("CSV only"))])
    spec_mode = RadioField(
        _l("Specification"),
        choices=[SelectChoice("form", _l("Build it here")), SelectChoice("text", _l("Paste a YAML or JSON spec"))],
        default="form",
    )
    strata = SelectField(_l("Strata"), choices=STRATA_CHOICES, default="urban_rural")
    methods = MultiCheckboxField(
        _l("Methods"), choices=[SelectChoice(m, METHOD_LABELS[m]) for m in METHODS], default=["wls"]
    )
    publish_method = SelectField(
        _l("Scorecard to publish"),
        choices=[SelectChoice(m, METHOD_LABELS[m]) for m in PUBLISHABLE_METHODS],
        default="wls",
    )
    poverty_mode = RadioField(
        _l("Poverty line"),
        choices=[
            SelectChoice("rate", _l("From a poverty rate")),
            SelectChoice("lines", _l("Given lines (Tk/person/month)")),
        ],
        default="rate",
    )
    poverty_rate = StringField(_l("Poverty rate (share, e.g. 0.2)"), default="0.2")
    poverty_lines = StringField(_l("Lines: one number, or stratum=line pairs (rural=2500, urban=3200)"))
    folds = IntegerField(_l("Folds (k-fold validation)"), default=5, validators=[InputRequired(), NumberRange(2, 20)])
    seed = IntegerField(_l("Seed"), default=20240601, validators=[InputRequired(), NumberRange(0, 2**32 - 1)])
    spec_text = TextAreaField(_l("Spec (YAML or JSON)"))

    def build_spec(self) -> dict:
        """The spec as the calibration reads it; raises ``SpecError`` naming the problem."""
        if self.spec_mode.data == "text":
            if not (self.spec_text.data or "").strip():
                raise SpecError(_("spec: paste a YAML or JSON spec, or build it with the form"))
            return pmt_models.spec_from_text(self.spec_text.data)
        if not self.methods.data:
            raise SpecError(_("methods: choose at least one method"))
        spec: dict = {
            "strata": self.strata.data,
            "methods": list(self.methods.data),
            "folds": self.folds.data,
            "seed": self.seed.data,
        }
        if self.poverty_mode.data == "lines":
            spec["poverty_lines"] = _parse_lines(self.poverty_lines.data or "")
        else:
            spec["poverty_rate"] = _parse_number(self.poverty_rate.data, "poverty_rate")
        return pmt_models.spec_from_text(_json(spec))


class ConfirmForm(FlaskForm):
    """A bare form: the CSRF token of a publish or activate confirmation."""


def _json(value) -> str:
    import json

    return json.dumps(value)


def _parse_number(text_value: str | None, key: str) -> float:
    try:
        return float((text_value or "").strip())
    except ValueError:
        raise SpecError(_("%(key)s: %(value)r is not a number", key=key, value=text_value)) from None


def _parse_lines(text_value: str) -> float | dict:
    text_value = text_value.strip()
    if not text_value:
        raise SpecError(_("poverty_lines: give one number or stratum=line pairs"))
    if "=" not in text_value:
        return _parse_number(text_value, "poverty_lines")
    lines = {}
    for part in text_value.replace(";", ",").split(","):
        if not part.strip():
            continue
        stratum, _sep, value = part.partition("=")
        lines[stratum.strip()] = _parse_number(value, f"poverty_lines.{stratum.strip()}")
    return lines


# --------------------------------------------------------------------------------------
# Access helpers
# --------------------------------------------------------------------------------------


def _is_statistician() -> bool:
    return current_user.role == STATISTICIAN


def _require_statistician() -> None:
    access.require_role(current_user, STATISTICIAN)


def _load_readable(model_id: int):
    model = pmt_models.get_model(model_id)
    if model.status == "draft" and not _is_statistician():
        raise AccessDenied(_("Model %(id)s is a draft; drafts are visible to statisticians only.", id=model_id))
    return model


@bp.errorhandler(pmt_models.ModelStateError)
def _state_error(error):
    return render_template("error.html", code=409, name=_("Conflict"), description=str(error)), 409


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------


@bp.route("/models")
def model_list():
    """Model versions with their status; statisticians also see drafts and may start a calibration."""
    models = pmt_models.list_models(include_drafts=_is_statistician())
    views = [pmt_models.model_view(m) for m in models]
    return render_template(
        "pmt/list.html",
        models=views,
        is_statistician=_is_statistician(),
        active=next((v for v in views if v["status"] == "active"), None),
    )


@bp.route("/models/new", methods=["GET", "POST"])
def model_new():
    """Upload a survey and specify the calibration; queues a job and shows its progress."""
    _require_statistician()
    form = CalibrationForm()
    if form.validate_on_submit():
        try:
            spec = form.build_spec()
            method = form.publish_method.data
            if method not in spec["methods"]:
                raise SpecError(_("Scorecard to publish: %(method)s is not among the chosen methods", method=method))
            job = _enqueue_upload(form, spec, method)
        except SpecError as exc:
            form.spec_text.errors = [*form.spec_text.errors, str(exc)]
            return render_template("pmt/new.html", form=form, spec_error=str(exc)), 422
        db.session.commit()
        job_id = job.id
        if current_app.config.get("JOBS_INLINE"):
            job = run_job_now(job_id)
            if job.status == "succeeded":
                flash(_("Calibration done: draft model %(id)s stored.", id=job.result["model_id"]), "info")
                return redirect(url_for("pmt.model_detail", model_id=job.result["model_id"]))
        return redirect(url_for("pmt.job_status", job_id=job_id))
    # A submitted form that failed validation answers 422 (its fields say what is wrong).
    return render_template("pmt/new.html", form=form, spec_error=None), (422 if request.method == "POST" else 200)


def _enqueue_upload(form: CalibrationForm, spec: dict, method: str):
    # Fixed file names under a random folder: the browser's file names never become paths.
    upload_dir = Path(current_app.instance_path) / UPLOADS_DIRNAME / uuid.uuid4().hex
    upload_dir.mkdir(parents=True)
    try:
        survey_path = upload_dir / "survey.csv"
        form.survey.data.save(survey_path)
        members_path = None
        if form.members.data:
            members_path = upload_dir / "survey_members.csv"
            form.members.data.save(members_path)
        return enqueue_calibration(
            actor=current_user,
            survey_path=survey_path,
            members_path=members_path,
            spec=spec,
            name=form.name.data.strip(),
            method=method,
            description=(form.description.data or "").strip() or None,
            instance_path=current_app.instance_path,
            survey_filename=secure_filename(form.survey.data.filename or "") or "survey.csv",
        )
    except SpecError:
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise


@bp.route("/jobs/<int:job_id>")
def job_status(job_id: int):
    """Progress of a calibration job; the page refreshes itself until the job ends."""
    job = jobs.get_job(job_id)
    if job.created_by_id != current_user.id and current_user.role != "admin":
        raise AccessDenied(_("Job %(id)s was started by another user.", id=job_id))
    return render_template("pmt/job.html", job=jobs.job_view(job))


@bp.route("/models/<int:model_id>")
def model_detail(model_id: int):
    """The report: headline metrics, strata, errors by group, plots, the scorecard, provenance, actions."""
    model = _load_readable(model_id)
    view = pmt_models.model_view(model)
    active = pmt_models.get_active_model()
    return render_template(
        "pmt/detail.html",
        model=view,
        report=model.report,
        metrics=model.report.get("metrics", {}).get(model.method, {}),
        scorecard=pmt_models.scorecard(model),
        plots=pmt_models.list_report_files(model, current_app.instance_path, ".png"),
        is_statistician=_is_statistician(),
        active=active,
        form=ConfirmForm(),
    )


@bp.route("/models/<int:model_id>/files/<filename>")
def report_file(model_id: int, filename: str):
    """A plot of the model's report folder (only file names listed in that folder; PNG only)."""
    model = _load_readable(model_id)
    if not filename.lower().endswith(".png"):
        abort(404)
    path = pmt_models.report_file(model, current_app.instance_path, filename)
    return send_file(path, mimetype="image/png", max_age=3600)


@bp.route("/models/<int:model_id>/scorecard.<fmt>")
def scorecard_download(model_id: int, fmt: str):
    """The scorecard as a CSV or JSON download."""
    model = _load_readable(model_id)
    method = request.args.get("method") or model.method
    if fmt == "csv":
        body, mimetype = pmt_models.scorecard_csv(model, method), "text/csv"
    elif fmt == "json":
        import json

        body = json.dumps(pmt_models.scorecard_document(model, method), indent=2, ensure_ascii=False)
        mimetype = "application/json"
    else:
        abort(404)
    filename = f"pmt_model_{model.id}_{method}_scorecard.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/models/<int:model_id>/publish", methods=["GET", "POST"])
def model_publish(model_id: int):
    """Confirm, then publish a draft (a statistician other than the one who fitted it)."""
    _require_statistician()
    model = pmt_models.get_model(model_id)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        pmt_models.publish_model(model, current_user)
        db.session.commit()
        flash(_("Model %(id)s is published; it can no longer change.", id=model.id), "info")
        return redirect(url_for("pmt.model_detail", model_id=model.id))
    return render_template(
        "pmt/confirm.html",
        model=pmt_models.model_view(model),
        action="publish",
        form=form,
        active=pmt_models.get_active_model(),
    )


@bp.route("/models/<int:model_id>/activate", methods=["GET", "POST"])
def model_activate(model_id: int):
    """Confirm, then make a published model the active one (the previous one retires)."""
    _require_statistician()
    model = pmt_models.get_model(model_id)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        marker = last_job_id()
        pmt_models.activate_model(model, current_user)
        db.session.commit()
        if current_app.config.get("JOBS_INLINE"):
            # The activation hooks queued the full re-score; without a worker it runs here.
            run_jobs_queued_after(marker, current_user)
        flash(_("Model %(id)s is now the active model; households will be re-scored with it.", id=model.id), "info")
        return redirect(url_for("pmt.model_detail", model_id=model.id))
    return render_template(
        "pmt/confirm.html",
        model=pmt_models.model_view(model),
        action="activate",
        form=form,
        active=pmt_models.get_active_model(),
    )


@bp.route("/compare")
def compare():
    """Two models side by side, with the registry households a switch would move in or out."""
    _require_statistician()
    models = [pmt_models.model_view(m) for m in pmt_models.list_models()]
    a_id, b_id = request.args.get("a", type=int), request.args.get("b", type=int)
    coverage = request.args.get("coverage", 0.2, type=float)
    result = error = None
    if a_id and b_id:
        if not 0 < coverage < 1:
            error = _("Coverage must be a share strictly between 0 and 1.")
        else:
            a, b = pmt_models.get_model(a_id), pmt_models.get_model(b_id)
            result = pmt_models.compare_models(
                a, b, coverage=coverage, scope_clause=access.household_scope_clause(current_user)
            )
    return render_template(
        "pmt/compare.html", models=models, a_id=a_id, b_id=b_id, coverage=coverage, result=result, error=error
    ), (422 if error else 200)
