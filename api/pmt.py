"""PMT model versions: upload a survey to calibrate, read reports and scorecards, compare, publish, activate.

Writes are for statisticians only. Every signed-in role reads published, active and retired
models (the scorecard is public by design); drafts are visible to statisticians only. Models
are national, so the area check applies where the registry is read: the eligibility counts
of a comparison cover the caller's areas. State errors answer 409, four-eyes and role
refusals 403, spec and survey problems 422 naming the key or column.

Also ``GET /api/v1/jobs/{id}``: the status of a background job (here: a calibration), for
its creator and administrators.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate
from werkzeug.utils import secure_filename

from api import current_api_user
from models import Job, db
from registry import access, jobs
from registry.access import AccessDenied
from targeting import pmt_models
from targeting.calibration import PUBLISHABLE_METHODS, DataError, SpecError
from targeting.calibration_jobs import (
    UPLOADS_DIRNAME,
    enqueue_calibration,
    last_job_id,
    run_job_now,
    run_jobs_queued_after,
)
from web.errors import api_error

log = logging.getLogger(__name__)

blp = Blueprint("pmt_api", __name__, url_prefix="/api/v1", description="PMT model versions and calibration jobs")

STATISTICIAN = "statistician"


# --------------------------------------------------------------------------------------
# Schemas (explicit output fields: models carry aggregated survey statistics, never survey rows)
# --------------------------------------------------------------------------------------


class PmtPairSchema(Schema):
    oos = fields.Float(allow_none=True, metadata={"description": "out of sample (k-fold)"})
    in_ = fields.Float(data_key="in", attribute="in", allow_none=True, metadata={"description": "in sample"})


class PmtHeadlineSchema(Schema):
    method = fields.String()
    r2 = fields.Nested(PmtPairSchema)
    spearman = fields.Nested(PmtPairSchema)
    bias = fields.Nested(PmtPairSchema)
    targeting = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Nested(PmtPairSchema)),
        metadata={"description": "per coverage label: coverage, exclusion_error, inclusion_error"},
    )


class PmtModelSummarySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String()
    method = fields.String()
    methods = fields.List(fields.String())
    strata_variables = fields.List(fields.String())
    n_households = fields.Integer()
    training_data_hash = fields.String()
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    published_by = fields.String(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    activated_by = fields.String(allow_none=True)
    activated_at = fields.DateTime(allow_none=True)
    retired_at = fields.DateTime(allow_none=True)


class PmtModelSchema(PmtModelSummarySchema):
    fitted_methods = fields.List(fields.String())
    strata = fields.List(fields.String())
    poverty_lines = fields.Dict(keys=fields.String(), values=fields.Float())
    feature_definition_version = fields.Integer()
    library_versions = fields.Dict(keys=fields.String(), values=fields.String())
    survey_filename = fields.String(allow_none=True)
    spec = fields.Dict()
    warnings = fields.List(fields.String())
    headline = fields.List(fields.Nested(PmtHeadlineSchema))
    links = fields.Dict(keys=fields.String(), values=fields.String())


class PmtReportSchema(Schema):
    model_id = fields.Integer()
    status = fields.String()
    method = fields.String()
    spec = fields.Dict()
    training_data_hash = fields.String()
    feature_definition_version = fields.Integer()
    library_versions = fields.Dict(keys=fields.String(), values=fields.String())
    poverty_lines = fields.Dict(keys=fields.String(), values=fields.Float())
    n_households = fields.Integer()
    coefficients = fields.Dict(metadata={"description": "{method: {stratum: {intercept, coefficients, ...}}}"})
    headline = fields.List(fields.Nested(PmtHeadlineSchema))
    metrics = fields.Dict(metadata={"description": "{method: {out_of_sample|in_sample: {overall, by_group}}}"})
    method_info = fields.Dict()
    warnings = fields.List(fields.String())
    notes = fields.List(fields.String())
    dropped_features = fields.Dict()
    strata = fields.Dict()
    features = fields.List(fields.String())
    feature_descriptions = fields.Dict(keys=fields.String(), values=fields.String())
    files = fields.List(fields.String(), metadata={"description": "plots and other files of the report folder"})


class PmtScorecardRowSchema(Schema):
    stratum = fields.String()
    feature = fields.String()
    coefficient = fields.Float()
    description = fields.String()


class PmtScorecardSchema(Schema):
    model_id = fields.Integer()
    model_name = fields.String()
    status = fields.String()
    method = fields.String()
    strata_variables = fields.List(fields.String())
    poverty_lines = fields.Dict(keys=fields.String(), values=fields.Float())
    feature_definition_version = fields.Integer()
    training_data_hash = fields.String()
    outcome = fields.String()
    rows = fields.List(fields.Nested(PmtScorecardRowSchema))


class PmtScorecardArgs(Schema):
    method = fields.String(load_default=None, validate=validate.OneOf(PUBLISHABLE_METHODS))


class PmtUploadFormSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    method = fields.String(load_default=None, validate=validate.OneOf(PUBLISHABLE_METHODS))
    description = fields.String(load_default=None, validate=validate.Length(max=2000))
    spec = fields.String(load_default=None, metadata={"description": "the spec as JSON or YAML text"})


class PmtUploadFilesSchema(Schema):
    survey = Upload(required=True, metadata={"description": "survey households CSV (import format + outcome/weight)"})
    members = Upload(load_default=None, metadata={"description": "survey members CSV"})
    spec = Upload(load_default=None, metadata={"description": "spec file (.json, .yml or .yaml)"})


class PmtJobProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)
    message = fields.String(allow_none=True)


class PmtJobSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    progress = fields.Nested(PmtJobProgressSchema)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    links = fields.Dict(keys=fields.String(), values=fields.String())


class PmtCompareArgs(Schema):
    a = fields.Integer(required=True, metadata={"description": "model id (the current model)"})
    b = fields.Integer(required=True, metadata={"description": "model id (the candidate)"})
    coverage = fields.Float(
        load_default=0.2, validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False)
    )


class PmtCompareSideSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    status = fields.String()
    method = fields.String()
    strata_variables = fields.List(fields.String())
    n_households = fields.Integer()
    training_data_hash = fields.String()


class PmtCompareMetricSchema(Schema):
    metric = fields.String()
    a = fields.Float(allow_none=True)
    b = fields.Float(allow_none=True)
    difference = fields.Float(allow_none=True)


class PmtCompareCoefficientSchema(Schema):
    stratum = fields.String()
    feature = fields.String()
    a = fields.Float(allow_none=True)
    b = fields.Float(allow_none=True)
    difference = fields.Float(allow_none=True)


class PmtEligibilitySchema(Schema):
    available = fields.Boolean()
    reason = fields.String()
    coverage = fields.Float()
    registry_households = fields.Integer()
    not_scorable = fields.Integer()
    weights = fields.String()
    households = fields.Integer()
    selected_a = fields.Integer()
    selected_b = fields.Integer()
    entering = fields.Integer()
    leaving = fields.Integer()
    staying = fields.Integer()
    population_share = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))


class PmtCompareSchema(Schema):
    a = fields.Nested(PmtCompareSideSchema)
    b = fields.Nested(PmtCompareSideSchema)
    metrics = fields.List(fields.Nested(PmtCompareMetricSchema))
    coefficients = fields.List(fields.Nested(PmtCompareCoefficientSchema))
    eligibility = fields.Nested(PmtEligibilitySchema, allow_none=True)


# --------------------------------------------------------------------------------------
# Errors of this blueprint (the app maps AccessDenied → 403 and our LookupErrors → 404)
# --------------------------------------------------------------------------------------


@blp.errorhandler(pmt_models.ModelStateError)
def _state_error(error):
    return api_error(409, "conflict", str(error))


class UploadError(SpecError):
    """An uploaded part is unusable; ``field`` names the multipart field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@blp.errorhandler(SpecError)
def _spec_error(error):
    field = getattr(error, "field", None)
    if field is None:
        prefix = str(error).split(":", 1)[0]
        field = prefix if prefix in ("survey", "members") else "survey" if isinstance(error, DataError) else "spec"
    code = "invalid_survey" if field in ("survey", "members") else "invalid_spec"
    return api_error(422, code, str(error), {field: [str(error)]})


# --------------------------------------------------------------------------------------
# Access
# --------------------------------------------------------------------------------------


def _require_statistician(user) -> None:
    access.require_role(user, STATISTICIAN)


def _load_readable(model_id: int):
    """The model if the caller may read it: drafts are for statisticians only."""
    user = current_api_user()
    model = pmt_models.get_model(model_id)
    if model.status == "draft" and user.role != STATISTICIAN:
        raise AccessDenied(f"model {model_id} is a draft; drafts are visible to statisticians only")
    return user, model


def _model_links(model) -> dict:
    base = f"/api/v1/pmt/models/{model.id}"
    links = {
        "self": base,
        "report": f"{base}/report",
        "scorecard_csv": f"{base}/scorecard.csv",
        "scorecard_json": f"{base}/scorecard.json",
        "page": url_for("pmt.model_detail", model_id=model.id),
    }
    if model.status == "draft":
        links["publish"] = f"{base}/publish"
    if model.status in ("published", "retired"):
        links["activate"] = f"{base}/activate"
    return links


def _model_out(model) -> dict:
    return {**pmt_models.model_view(model), "links": _model_links(model)}


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


@blp.route("/pmt/models")
class Models(MethodView):
    @blp.response(200, PmtModelSummarySchema(many=True))
    def get(self):
        """Model versions, newest first (drafts only for statisticians)."""
        user = current_api_user()
        return [pmt_models.model_view(m) for m in pmt_models.list_models(include_drafts=user.role == STATISTICIAN)]

    @blp.arguments(PmtUploadFormSchema, location="form")
    @blp.arguments(PmtUploadFilesSchema, location="files")
    @blp.response(202, PmtJobSchema)
    def post(self, form, files):
        """Upload a survey and a spec: queues a calibration job that stores a draft model with its report.

        Multipart fields: ``survey`` (households CSV), optional ``members`` (CSV), ``spec``
        (a .json/.yml file, or JSON/YAML text in the ``spec`` form field), ``name``, optional
        ``method`` (the scorecard to publish; default the spec's first linear method). Answers
        202 with the job and a ``Location`` to poll; the job's result names the model.
        """
        user = current_api_user()
        _require_statistician(user)
        spec = _read_spec(form.get("spec"), files.get("spec"))
        if form["method"] and form["method"] not in spec["methods"]:
            raise UploadError(
                "method", f"{form['method']!r} is not among the spec's methods ({', '.join(spec['methods'])})"
            )
        # Fixed file names under a random folder: the client's file names never become paths.
        upload_dir = Path(current_app.instance_path) / UPLOADS_DIRNAME / uuid.uuid4().hex
        upload_dir.mkdir(parents=True)
        try:
            survey_path = _save_csv(files["survey"], upload_dir / "survey.csv", "survey")
            members_path = (
                _save_csv(files["members"], upload_dir / "survey_members.csv", "members")
                if files.get("members")
                else None
            )
            job = enqueue_calibration(
                actor=user,
                survey_path=survey_path,
                members_path=members_path,
                spec=spec,
                name=form["name"],
                method=form["method"],
                description=form["description"],
                instance_path=current_app.instance_path,
                survey_filename=secure_filename(files["survey"].filename or "") or "survey.csv",
            )
        except SpecError:
            shutil.rmtree(upload_dir, ignore_errors=True)
            raise
        db.session.commit()
        job_id = job.id
        if current_app.config.get("JOBS_INLINE"):
            job = run_job_now(job_id)
            if job.status == "failed":
                return api_error(
                    422,
                    "calibration_failed",
                    job.error or "calibration failed",
                    {"survey": [job.error or ""], "job": [str(job_id)]},
                )
        return _job_out(job), 202, {"Location": f"/api/v1/jobs/{job_id}"}


@blp.route("/pmt/models/<int:model_id>")
class ModelDetail(MethodView):
    @blp.response(200, PmtModelSchema)
    def get(self, model_id):
        """One model version: lifecycle, provenance, headline metrics and links."""
        _user, model = _load_readable(model_id)
        return _model_out(model)


@blp.route("/pmt/models/<int:model_id>/report")
class ModelReport(MethodView):
    @blp.response(200, PmtReportSchema)
    def get(self, model_id):
        """The validation report as JSON: metrics per method (out of sample and in sample, by group), notes."""
        _user, model = _load_readable(model_id)
        return {
            **pmt_models.report_document(model),
            "files": pmt_models.list_report_files(model, current_app.instance_path),
        }


@blp.route("/pmt/models/<int:model_id>/scorecard.csv")
class ModelScorecardCsv(MethodView):
    @blp.arguments(PmtScorecardArgs, location="query")
    @blp.doc(
        responses={
            "200": {
                "description": "CSV: model_id, method, stratum, feature, coefficient, description",
                "content": {"text/csv": {}},
            }
        }
    )
    def get(self, args, model_id):
        """The scorecard as CSV: the weights anyone can recompute a score with."""
        _user, model = _load_readable(model_id)
        method = args["method"] or model.method
        body = pmt_models.scorecard_csv(model, method)
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="pmt_model_{model.id}_{method}_scorecard.csv"'},
        )


@blp.route("/pmt/models/<int:model_id>/scorecard.json")
class ModelScorecardJson(MethodView):
    @blp.arguments(PmtScorecardArgs, location="query")
    @blp.response(200, PmtScorecardSchema)
    def get(self, args, model_id):
        """The scorecard as JSON, with strata variables and poverty lines."""
        _user, model = _load_readable(model_id)
        return pmt_models.scorecard_document(model, args["method"])


@blp.route("/pmt/models/<int:model_id>/publish")
class ModelPublish(MethodView):
    @blp.response(200, PmtModelSchema)
    def post(self, model_id):
        """Publish a draft (a statistician other than the one who fitted it); it is immutable afterwards."""
        user = current_api_user()
        _require_statistician(user)
        model = pmt_models.publish_model(pmt_models.get_model(model_id), user)
        db.session.commit()
        return _model_out(model)


@blp.route("/pmt/models/<int:model_id>/activate")
class ModelActivate(MethodView):
    @blp.response(200, PmtModelSchema)
    def post(self, model_id):
        """Make a published model the active one (audited); the previously active model retires."""
        user = current_api_user()
        _require_statistician(user)
        marker = last_job_id()
        model = pmt_models.activate_model(pmt_models.get_model(model_id), user)
        db.session.commit()
        if current_app.config.get("JOBS_INLINE"):
            # The activation hooks queued the full re-score; without a worker it runs here.
            run_jobs_queued_after(marker, user)
            model = pmt_models.get_model(model_id)
        return _model_out(model)


@blp.route("/pmt/compare")
class Compare(MethodView):
    @blp.arguments(PmtCompareArgs, location="query")
    @blp.response(200, PmtCompareSchema)
    def get(self, args):
        """Two models side by side: metrics, coefficient differences, registry households changing eligibility."""
        user = current_api_user()
        _require_statistician(user)
        a = pmt_models.get_model(args["a"])
        b = pmt_models.get_model(args["b"])
        return pmt_models.compare_models(
            a, b, coverage=args["coverage"], scope_clause=access.household_scope_clause(user)
        )


# --------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------


@blp.route("/jobs/<int:job_id>")
class JobStatus(MethodView):
    @blp.response(200, PmtJobSchema)
    def get(self, job_id):
        """A background job's status, progress and outcome (its creator and administrators)."""
        user = current_api_user()
        job = jobs.get_job(job_id)
        if job.created_by_id != user.id and user.role != "admin":
            raise AccessDenied(f"job {job_id} was started by another user")
        return _job_out(job)


def _job_out(job: Job) -> dict:
    view = jobs.job_view(job)
    links = {"self": f"/api/v1/jobs/{job.id}"}
    model_id = (job.result or {}).get("model_id") if job.kind == "pmt.calibrate" else None
    if model_id is not None:
        links["model"] = f"/api/v1/pmt/models/{model_id}"
    return {**view, "links": links}


# --------------------------------------------------------------------------------------
# Upload helpers
# --------------------------------------------------------------------------------------


def _read_spec(text_field: str | None, upload) -> dict:
    if upload is not None and text_field:
        raise UploadError("spec", "give either a spec file or a spec field, not both")
    if upload is not None:
        try:
            text_value = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadError("spec", f"{upload.filename or 'the file'} is not UTF-8 text") from exc
        return pmt_models.spec_from_text(text_value, upload.filename)
    if text_field:
        return pmt_models.spec_from_text(text_field)
    raise UploadError("spec", "give a spec file (.json, .yml) or the spec as JSON/YAML text")


def _save_csv(upload, path: Path, field: str) -> Path:
    upload.save(path)
    if path.stat().st_size == 0:
        raise UploadError(field, "the uploaded file is empty")
    return path
