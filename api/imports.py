"""Bulk imports: upload two CSV files, follow the background job, download the error report."""

from __future__ import annotations

from pathlib import Path

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from flask_smorest.fields import Upload
from marshmallow import Schema, fields

from api import current_api_user
from models import db
from registry import access, importer, jobs

blp = Blueprint("imports", __name__, url_prefix="/api/v1/imports", description="Bulk imports of households")


class ImportUploadSchema(Schema):
    households = Upload(required=True, metadata={"description": "households.csv (import format, UTF-8)"})
    members = Upload(required=True, metadata={"description": "members.csv (import format, UTF-8)"})


class ImportOptionsSchema(Schema):
    skip_invalid = fields.Boolean(
        load_default=False,
        metadata={"description": "Import the valid households; reject a household with any invalid member."},
    )


class IssueSchema(Schema):
    file = fields.String()
    row = fields.Integer(allow_none=True)
    household_id = fields.String(allow_none=True)
    field = fields.String()
    value = fields.String()
    rule = fields.String()


class ImportOutcomeSchema(Schema):
    outcome = fields.String(metadata={"description": "imported or rejected"})
    skip_invalid = fields.Boolean()
    source_ref = fields.String(allow_none=True)
    households_in_file = fields.Integer()
    members_in_file = fields.Integer()
    households_imported = fields.Integer()
    members_imported = fields.Integer()
    households_already_registered = fields.Integer()
    households_rejected = fields.Integer()
    issue_count = fields.Integer()
    issues_by_rule = fields.Dict(keys=fields.String(), values=fields.Integer())
    first_issues = fields.List(fields.Nested(IssueSchema))
    warnings = fields.List(fields.String())
    duration_s = fields.Float()
    phases = fields.Dict(keys=fields.String(), values=fields.Float())


class ImportProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)
    message = fields.String(allow_none=True)


class ImportFilesSchema(Schema):
    households = fields.String(allow_none=True)
    members = fields.String(allow_none=True)


class ImportJobSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "queued, running, succeeded or failed"})
    progress = fields.Nested(ImportProgressSchema)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)
    result = fields.Nested(ImportOutcomeSchema, allow_none=True)
    files = fields.Nested(ImportFilesSchema)
    skip_invalid = fields.Boolean()
    has_report = fields.Boolean()
    report_url = fields.String(allow_none=True)


def upload_root() -> Path:
    """Where uploads are kept: ``UPLOAD_FOLDER``, or ``uploads/`` in the instance folder."""
    return Path(current_app.config.get("UPLOAD_FOLDER") or Path(current_app.instance_path) / "uploads")


def _view(job, user) -> dict:
    view = importer.import_view(job, can_see_pii=access.can_see_pii(user))
    view["report_url"] = f"{blp.url_prefix}/{job.id}/report.csv" if view["has_report"] else None
    return view


@blp.route("")
class ImportList(MethodView):
    @blp.arguments(ImportUploadSchema, location="files")
    @blp.arguments(ImportOptionsSchema, location="form")
    @blp.response(202, ImportJobSchema)
    def post(self, files, options):
        """Upload households.csv and members.csv; the import runs as a background job.

        Answers at once with the job (202); follow it with ``GET /api/v1/imports/{id}``.
        Supervisors (their own areas) and admins only.
        """
        user = current_api_user()
        access.require_role(user, *importer.IMPORT_ROLES)
        limit = current_app.config.get("IMPORT_MAX_UPLOAD_BYTES") or current_app.config.get("MAX_CONTENT_LENGTH")
        if limit and (request.content_length or 0) > limit:
            abort(413, message=f"the upload is larger than the limit of {limit // (1024 * 1024)} MiB")
        try:
            job = importer.submit_import(
                upload_root(),
                files["households"].stream,
                files["members"].stream,
                actor=user,
                skip_invalid=options["skip_invalid"],
                households_name=files["households"].filename or "households.csv",
                members_name=files["members"].filename or "members.csv",
            )
        except importer.ImportFileError as exc:
            db.session.rollback()
            abort(422, message=str(exc), messages={"files": {exc.field or "files": [str(exc)]}})
        db.session.commit()
        job_id = job.id
        if current_app.config.get("JOBS_INLINE"):
            importer.run_import_now(job_id)
        return _view(jobs.get_job(job_id), user)


@blp.route("/<int:job_id>")
class ImportDetail(MethodView):
    @blp.response(200, ImportJobSchema)
    def get(self, job_id):
        """An import's status, progress and outcome (counts, problems by rule, first problems)."""
        user = current_api_user()
        return _view(importer.get_import_job(job_id, user), user)


@blp.route("/<int:job_id>/report.csv")
class ImportReport(MethodView):
    @blp.response(200, content_type="text/csv")
    def get(self, job_id):
        """The import's error report: file, row, household_id, field, value, rule."""
        user = current_api_user()
        job = importer.get_import_job(job_id, user)
        lines = importer.iter_report(job, can_see_pii=access.can_see_pii(user))
        return Response(
            lines,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="import-{job_id}-report.csv"'},
        )
