"""Grievances: intake, queue, assignment, field verification, outcome, closure, statistics.

Thin handlers: parse with a schema, load or 404, call one service of ``registry.grievances`` (which
checks role and area), commit once, dump with an explicit schema. A step the case's state does not
allow answers 409 saying why.
"""

from __future__ import annotations

from contextlib import contextmanager

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api import current_api_user
from models import db
from models.codes import MOBILE_PATTERN
from models.grievance import GRIEVANCE_CATEGORIES, GRIEVANCE_CHANNELS, GRIEVANCE_STATUSES
from registry import grievances as gr
from registry.schemas import PageMetaSchema
from registry.users import get_user_by_username
from registry.validation import Issue, RecordValidationError
from web.errors import api_error

blp = Blueprint("grievances_api", __name__, url_prefix="/api/v1", description="Grievance redress")

AREA_CODE = validate.Regexp(r"^\d{2}(\d{2}){0,3}$", error="a BBS area code (2, 4, 6 or 8 digits)")


@blp.errorhandler(gr.GrievanceConflict)
def _conflict(error: gr.GrievanceConflict):
    db.session.rollback()
    return api_error(409, "conflict", str(error))


@contextmanager
def _committing():
    """One commit at the edge; nothing half-done stays in the session on failure."""
    try:
        yield
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


# --- schemas --------------------------------------------------------------------------------


class GrievanceCreateSchema(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(GRIEVANCE_CHANNELS))
    category = fields.String(required=True, validate=validate.OneOf(GRIEVANCE_CATEGORIES))
    description = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    household_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=24))
    union_code = fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{8}$", error="an 8-digit union/ward code")
    )
    programme_id = fields.Integer(load_default=None, allow_none=True)
    list_id = fields.Integer(load_default=None, allow_none=True)
    complainant_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    complainant_phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(MOBILE_PATTERN, error="a Bangladeshi mobile number 01XXXXXXXXX"),
    )


class GrievanceListArgs(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf((*GRIEVANCE_STATUSES, "active")))
    category = fields.String(load_default=None, validate=validate.OneOf(GRIEVANCE_CATEGORIES))
    area = fields.String(load_default=None, validate=AREA_CODE)
    overdue = fields.Boolean(load_default=None)
    assigned = fields.String(load_default=None, validate=validate.Length(max=80))
    household_id = fields.String(load_default=None, validate=validate.Length(max=24))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class GrievanceAssignSchema(Schema):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=80))


class VerificationRequestSchema(Schema):
    instructions = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class GrievanceLinkSchema(Schema):
    change_request_id = fields.Integer(required=True, validate=validate.Range(min=1))


class GrievanceResolveSchema(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class GrievanceCloseSchema(Schema):
    resolution_text = fields.String(required=True, validate=validate.Length(min=10, max=5000))


class VerificationCompleteSchema(Schema):
    finding = fields.String(required=True, validate=validate.OneOf(("no_change", "not_found")))
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class GrievanceStatsArgs(Schema):
    area = fields.String(load_default=None, validate=AREA_CODE)
    level = fields.String(load_default="district", validate=validate.OneOf(tuple(gr.AREA_LEVEL_LENGTHS)))


class GrievanceHouseholdSchema(Schema):
    household_id = fields.String()
    union_code = fields.String()
    village = fields.String(allow_none=True)
    current_version = fields.Integer()
    head_name = fields.String(allow_none=True)
    status = fields.String()


class GrievanceContactSchema(Schema):
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    masked = fields.Boolean()


class GrievanceStateSchema(Schema):
    household_version = fields.Integer(allow_none=True)
    score = fields.Float(allow_none=True)
    score_run_id = fields.Integer(allow_none=True)
    eligible = fields.Boolean(allow_none=True)


class GrievanceChangeRequestSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    submitted_by = fields.String(allow_none=True)
    submitted_at = fields.DateTime()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    applied_version_no = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)


class VerificationTaskSchema(Schema):
    id = fields.Integer()
    grievance_id = fields.Integer()
    grievance_reference = fields.String()
    category = fields.String()
    household_id = fields.String(allow_none=True)
    village = fields.String(allow_none=True)
    union_code = fields.String()
    status = fields.String()
    instructions = fields.String()
    requested_by = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    due_at = fields.DateTime()
    change_request = fields.Nested(GrievanceChangeRequestSchema, allow_none=True)
    finding = fields.String(allow_none=True)
    finding_note = fields.String(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)


class GrievanceStepSchema(Schema):
    at = fields.DateTime()
    actor = fields.String()
    kind = fields.String()
    summary = fields.String()


class GrievanceSummarySchema(Schema):
    id = fields.Integer()
    reference = fields.String()
    channel = fields.String()
    category = fields.String()
    status = fields.String()
    union_code = fields.String()
    household = fields.Nested(GrievanceHouseholdSchema, allow_none=True)
    programme_id = fields.Integer(allow_none=True)
    list_id = fields.Integer(allow_none=True)
    opened_at = fields.DateTime()
    opened_by = fields.String(allow_none=True)
    due_at = fields.DateTime()
    overdue = fields.Boolean()
    days_left = fields.Integer(allow_none=True)
    assigned_to = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)


class GrievanceSchema(GrievanceSummarySchema):
    description = fields.String()
    complainant = fields.Nested(GrievanceContactSchema)
    assigned_at = fields.DateTime(allow_none=True)
    before = fields.Nested(GrievanceStateSchema)
    after = fields.Nested(GrievanceStateSchema)
    outcome_detail = fields.Dict(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolution_text = fields.String(allow_none=True)
    closed_by = fields.String(allow_none=True)
    verifications = fields.List(fields.Nested(VerificationTaskSchema))
    change_request = fields.Nested(GrievanceChangeRequestSchema, allow_none=True)
    timeline = fields.List(fields.Nested(GrievanceStepSchema))


class GrievancePageSchema(Schema):
    items = fields.List(fields.Nested(GrievanceSummarySchema))
    meta = fields.Nested(PageMetaSchema)


class GrievanceDaysSchema(Schema):
    mean = fields.Float(allow_none=True)
    median = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)


class GrievanceStatsSchema(Schema):
    total = fields.Integer()
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_area = fields.Dict(keys=fields.String(), values=fields.Integer())
    area_level = fields.String()
    open_overdue = fields.Integer()
    closed = fields.Integer()
    days_to_close = fields.Nested(GrievanceDaysSchema)
    closed_within_deadline = fields.Integer()
    share_within_deadline = fields.Float(allow_none=True)
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer())


# --- routes ---------------------------------------------------------------------------------


def _load(grievance_id: int):
    user = current_api_user()
    grievance = gr.get_grievance(grievance_id)
    return user, grievance


def _view(grievance, user) -> dict:
    return gr.grievance_view(grievance, user)


@blp.route("/grievances")
class GrievanceList(MethodView):
    @blp.arguments(GrievanceListArgs, location="query")
    @blp.response(200, GrievancePageSchema)
    def get(self, args):
        """The cases the caller may read, most urgent deadline first."""
        user = current_api_user()
        page = gr.list_grievances(user, **args)
        return {
            "items": [gr.grievance_view(g, user, detail=False) for g in page.items],
            "meta": {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages},
        }

    @blp.arguments(GrievanceCreateSchema)
    @blp.response(201, GrievanceSchema)
    def post(self, args):
        """Record a complaint from any channel (in person, hotline, union office, web)."""
        user = current_api_user()
        with _committing():
            grievance = gr.open_grievance(user, **args)
        return _view(grievance, user)


@blp.route("/grievances/stats")
class GrievanceStats(MethodView):
    @blp.arguments(GrievanceStatsArgs, location="query")
    @blp.response(200, GrievanceStatsSchema)
    def get(self, args):
        """Cases by category, status and area; time to close; share within the deadline; outcomes."""
        return gr.grievance_stats(current_api_user(), **args)


@blp.route("/grievances/<int:grievance_id>")
class GrievanceDetail(MethodView):
    @blp.response(200, GrievanceSchema)
    def get(self, grievance_id):
        """One case with its timeline, verification, linked change request and outcome."""
        user, grievance = _load(grievance_id)
        gr.require_case_reader(user, grievance)
        return _view(grievance, user)


@blp.route("/grievances/<int:grievance_id>/assign")
class GrievanceAssign(MethodView):
    @blp.arguments(GrievanceAssignSchema)
    @blp.response(200, GrievanceSchema)
    def post(self, args, grievance_id):
        """Assign the case to a grievance officer of its area."""
        user, grievance = _load(grievance_id)
        assignee = get_user_by_username(args["assignee"])
        if assignee is None:
            raise RecordValidationError([Issue("grievance", None, None, "assignee", args["assignee"], "no such user")])
        with _committing():
            gr.assign_grievance(grievance, assignee, actor=user)
        return _view(grievance, user)


@blp.route("/grievances/<int:grievance_id>/request-verification")
class GrievanceVerification(MethodView):
    @blp.arguments(VerificationRequestSchema)
    @blp.response(201, VerificationTaskSchema)
    def post(self, args, grievance_id):
        """Ask the area's enumerators to verify the household in the field."""
        user, grievance = _load(grievance_id)
        with _committing():
            task = gr.request_verification(grievance, actor=user, instructions=args["instructions"])
        return gr.task_view(task)


@blp.route("/grievances/<int:grievance_id>/link-change-request")
class GrievanceLink(MethodView):
    @blp.arguments(GrievanceLinkSchema)
    @blp.response(200, VerificationTaskSchema)
    def post(self, args, grievance_id):
        """Attach the field officer's change request to the case's verification."""
        user, grievance = _load(grievance_id)
        with _committing():
            task = gr.link_change_request(grievance, args["change_request_id"], actor=user)
        return gr.task_view(task)


@blp.route("/grievances/<int:grievance_id>/resolve")
class GrievanceResolve(MethodView):
    @blp.arguments(GrievanceResolveSchema)
    @blp.response(200, GrievanceSchema)
    def post(self, args, grievance_id):
        """Record the outcome: score before/after and eligibility re-evaluated under the current rule."""
        user, grievance = _load(grievance_id)
        with _committing():
            gr.resolve_grievance(grievance, actor=user, note=args["note"])
        return _view(grievance, user)


@blp.route("/grievances/<int:grievance_id>/close")
class GrievanceClose(MethodView):
    @blp.arguments(GrievanceCloseSchema)
    @blp.response(200, GrievanceSchema)
    def post(self, args, grievance_id):
        """Close the case with the resolution text for the complainant."""
        user, grievance = _load(grievance_id)
        with _committing():
            gr.close_grievance(grievance, actor=user, resolution_text=args["resolution_text"])
        return _view(grievance, user)


@blp.route("/verification-tasks")
class VerificationTaskList(MethodView):
    @blp.response(200, VerificationTaskSchema(many=True))
    def get(self):
        """Open field verifications in the caller's areas (enumerators and supervisors)."""
        return [gr.task_view(t) for t in gr.list_verification_tasks(current_api_user())]


@blp.route("/verification-tasks/<int:task_id>/complete")
class VerificationTaskComplete(MethodView):
    @blp.arguments(VerificationCompleteSchema)
    @blp.response(200, VerificationTaskSchema)
    def post(self, args, task_id):
        """Report a verification that needs no change request (data right, or household not found)."""
        user = current_api_user()
        task = gr.get_verification_task(task_id)
        with _committing():
            gr.complete_verification(task, actor=user, finding=args["finding"], note=args["note"])
        return gr.task_view(task)
