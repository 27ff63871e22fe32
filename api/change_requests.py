"""Change requests: submit, list, review (approve / reject / bulk), withdraw, re-base, evidence.

Errors: 401 without a token, 403 for a role or area that may not (the body says which rule), 404,
409 when the registry's state conflicts (another request pending, stale base version, national ID
held by another household; ``error.details`` says what), 422 naming every bad field.
"""

from __future__ import annotations

from pathlib import Path

from flask import current_app, jsonify, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint

from api import current_api_user
from models import db
from registry import change_requests as crs
from registry.access import AccessDenied
from registry.cr_schemas import (
    PAYLOAD_KEYS,
    ChangeRequestBulkResultSchema,
    ChangeRequestBulkSchema,
    ChangeRequestCreateSchema,
    ChangeRequestDetailSchema,
    ChangeRequestEvidenceSchema,
    ChangeRequestListArgs,
    ChangeRequestPageSchema,
    ChangeRequestRebaseSchema,
    ChangeRequestRejectSchema,
)
from registry.validation import Issue, RecordValidationError
from web.errors import api_error

blp = Blueprint(
    "change_requests_api",
    __name__,
    url_prefix="/api/v1/change-requests",
    description="Proposed household updates and their review by a supervisor",
)


@blp.before_request
def _readers_only():
    """Authorise before parsing: roles without access get 403, whatever they send."""
    user = current_api_user()
    if user.role not in crs.READER_ROLES:
        raise AccessDenied(f"role {user.role!r} has no access to change requests")


@blp.errorhandler(crs.ChangeRequestConflict)
def _conflict(error: crs.ChangeRequestConflict):
    # A stale request was committed by the view before this; anything else is undone.
    db.session.rollback()
    response, status = api_error(409, error.code, error.message)
    body = response.get_json()
    body["error"]["details"] = error.details
    return jsonify(body), 409


def _commit_then(body):
    """Commit, and answer with ``body`` built just before it: read from the objects the service left
    in the session, instead of reloading everything the commit expires (the user, the request, the
    household and its members) for the answer. A failed commit raises: the body is never sent."""
    db.session.commit()
    return body


def evidence_root() -> Path:
    """Where evidence files live: outside the database, below the upload folder."""
    base = current_app.config.get("UPLOAD_FOLDER") or str(Path(current_app.instance_path) / "uploads")
    return Path(base) / "evidence"


@blp.route("")
class ChangeRequestCollection(MethodView):
    @blp.arguments(ChangeRequestListArgs, location="query")
    @blp.response(200, ChangeRequestPageSchema)
    def get(self, args):
        """Change requests in the caller's areas: filter by status, area, submitter (username or
        ``me``), kind, household; oldest first by default (``sort=newest`` to reverse)."""
        user = current_api_user()
        page = crs.list_change_requests(user, **args)
        return {
            "items": [crs.summary_view(cr) for cr in page.items],
            "meta": {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages},
        }

    @blp.arguments(ChangeRequestCreateSchema)
    @blp.response(201, ChangeRequestDetailSchema)
    def post(self, data):
        """Propose a change (enumerators and supervisors, in their areas). 409 names the request
        already pending for the household, or the newer version the change was not made against."""
        user = current_api_user()
        payload = {k: data[k] for k in PAYLOAD_KEYS if data.get(k) is not None}
        cr = crs.submit_change(
            user,
            data["kind"],
            payload=payload,
            reason=data["reason"],
            household_id=data["household_id"],
            base_version=data["base_version"],
        )
        return _commit_then(crs.detail_view(cr, user))


@blp.route("/<int:change_request_id>")
class ChangeRequestDetail(MethodView):
    @blp.response(200, ChangeRequestDetailSchema)
    def get(self, change_request_id):
        """One request with its diff against the current version, warnings, duplicate flags,
        national ID conflicts and evidence."""
        user = current_api_user()
        cr = crs.get_change_request(change_request_id)
        crs.require_reader(user, cr)
        return crs.detail_view(cr, user)


@blp.route("/<int:change_request_id>/approve")
class ApproveChangeRequest(MethodView):
    @blp.response(200, ChangeRequestDetailSchema)
    def post(self, change_request_id):
        """Approve (a supervisor of the household's area who did not submit it). High-risk requests
        need two different approvers: the first answers with ``stage=awaiting_second_approval``.
        409 ``stale`` when the household changed since the request was made (it is now stale)."""
        user = current_api_user()
        try:
            cr = crs.approve_change(change_request_id, user)
        except crs.ChangeRequestStale:
            db.session.commit()  # the request stays stale; the reviewer is told why
            raise
        return _commit_then(crs.detail_view(cr, user))


@blp.route("/<int:change_request_id>/reject")
class RejectChangeRequest(MethodView):
    @blp.arguments(ChangeRequestRejectSchema)
    @blp.response(200, ChangeRequestDetailSchema)
    def post(self, data, change_request_id):
        """Reject with a reason (required)."""
        user = current_api_user()
        cr = crs.reject_change(change_request_id, user, data["reason"])
        return _commit_then(crs.detail_view(cr, user))


@blp.route("/<int:change_request_id>/withdraw")
class WithdrawChangeRequest(MethodView):
    @blp.response(200, ChangeRequestDetailSchema)
    def post(self, change_request_id):
        """The submitter withdraws a pending or stale request."""
        user = current_api_user()
        cr = crs.withdraw_change(change_request_id, user)
        return _commit_then(crs.detail_view(cr, user))


@blp.route("/<int:change_request_id>/rebase")
class RebaseChangeRequest(MethodView):
    @blp.response(200, ChangeRequestRebaseSchema)
    def post(self, change_request_id):
        """The submitter re-applies a stale request to the current version; the answer shows what
        changed in between."""
        user = current_api_user()
        cr, changed = crs.rebase_change(change_request_id, user)
        db.session.commit()
        return {"change_request": crs.detail_view(cr, user), "changed_since_base": changed}


@blp.route("/bulk")
class BulkDecision(MethodView):
    @blp.arguments(ChangeRequestBulkSchema)
    @blp.response(200, ChangeRequestBulkResultSchema)
    def post(self, data):
        """Approve or reject up to 200 requests; each succeeds or fails on its own and the answer
        lists both."""
        user = current_api_user()
        outcome = crs.bulk_decide(data["ids"], data["action"], user, reason=data.get("reason"))
        db.session.commit()
        return {"succeeded": outcome.succeeded, "failed": outcome.failed}


@blp.route("/<int:change_request_id>/evidence")
class EvidenceUpload(MethodView):
    @blp.response(201, ChangeRequestEvidenceSchema)
    def post(self, change_request_id):
        """Attach a file (multipart field ``file``): JPEG, PNG or PDF, at most 5 MB, checked by content."""
        user = current_api_user()
        # Refuse oversized bodies before the form parser spools them to disk.
        if (request.content_length or 0) > crs.EVIDENCE_MAX_BYTES + 64 * 1024:
            raise RecordValidationError(
                [Issue("evidence", None, None, "file", "", f"at most {crs.EVIDENCE_MAX_BYTES // 2**20} MB per file")]
            )
        upload = request.files.get("file")
        if upload is None:
            raise RecordValidationError([Issue("evidence", None, None, "file", "", "required: a multipart file")])
        # Read one byte past the limit so that an oversized file is refused without reading all of it.
        data = upload.stream.read(crs.EVIDENCE_MAX_BYTES + 1)
        evidence = crs.add_evidence(change_request_id, user, upload.filename or "", data, evidence_root())
        db.session.commit()
        return crs.evidence_view(evidence)


@blp.route("/<int:change_request_id>/evidence/<int:evidence_id>")
class EvidenceDownload(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    def get(self, change_request_id, evidence_id):
        """Download an evidence file (users who may see the request)."""
        user = current_api_user()
        evidence, path = crs.get_evidence_file(change_request_id, evidence_id, user, evidence_root())
        return send_file(path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename)
