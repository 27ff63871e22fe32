"""Community validation: publications per union/ward, the notice, objections (with evidence),
committee decisions, finalisation into a validated list, and the centre's spot-check.

Thin handlers over ``targeting.community_validation`` (which checks role and area); a step the
publication's state does not allow (window closed, already decided, not yet finalisable) answers 409.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from flask import current_app, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api import current_api_user
from models import db
from models.validation import DECISION_OUTCOMES, OBJECTION_KINDS
from registry.validation import Issue, RecordValidationError
from targeting import community_validation as cv
from targeting import eligibility as el
from web.errors import api_error

blp = Blueprint("validation_api", __name__, url_prefix="/api/v1", description="Community validation of lists")

UNION = validate.Regexp(r"^\d{8}$", error="an 8-digit union/ward code")


@blp.errorhandler(cv.ValidationConflict)
def _conflict(error: cv.ValidationConflict):
    db.session.rollback()
    return api_error(409, "conflict", str(error))


@contextmanager
def _committing():
    try:
        yield
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def evidence_root() -> Path:
    """Objection evidence lives on disk below the upload folder, beside change-request evidence."""
    base = current_app.config.get("UPLOAD_FOLDER") or str(Path(current_app.instance_path) / "uploads")
    return Path(base) / "objections"


# --- schemas --------------------------------------------------------------------------------


class PublishSchema(Schema):
    union_codes = fields.List(fields.String(validate=UNION), load_default=None, validate=validate.Length(min=1))
    union_code = fields.String(load_default=None, validate=UNION)
    area_code = fields.String(
        load_default=None, validate=validate.Regexp(r"^\d{2}(\d{2}){0,3}$", error="a BBS area code")
    )
    objection_days = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=365),
        metadata={"description": "days; default: the programme's objection window (else 30)"},
    )
    how_to_object = fields.String(load_default=None, validate=validate.Length(max=2000))

    @validates_schema
    def one_place(self, data, **kwargs):
        given = [k for k in ("union_codes", "union_code", "area_code") if data.get(k)]
        if len(given) > 1:
            raise ValidationError({k: ["give one of union_codes, union_code or area_code"] for k in given})


class ObjectionWindowSchema(Schema):
    objection_days = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1, max=365))


class ObjectionWindowOutSchema(Schema):
    programme_id = fields.Integer()
    #: The programme's own window (None: it uses the default).
    objection_days = fields.Integer(allow_none=True)
    default_days = fields.Integer()
    #: What a new publication gets.
    effective_days = fields.Integer()


class ObjectionCountsSchema(Schema):
    inclusion = fields.Integer()
    exclusion = fields.Integer()
    upheld = fields.Integer()
    dismissed = fields.Integer()
    undecided = fields.Integer()


class PublicationSchema(Schema):
    id = fields.Integer()
    list_id = fields.Integer()
    programme_id = fields.Integer()
    programme_name = fields.String()
    list_number = fields.Integer()
    union_code = fields.String()
    union_name = fields.String(allow_none=True)
    status = fields.String()
    n_entries = fields.Integer()
    objection_days = fields.Integer()
    published_at = fields.DateTime()
    published_by = fields.String(allow_none=True)
    objection_deadline = fields.DateTime()
    window_open = fields.Boolean()
    how_to_object = fields.String()
    objections = fields.Nested(ObjectionCountsSchema)
    finalised_at = fields.DateTime(allow_none=True)
    finalised_by = fields.String(allow_none=True)
    validated_list_id = fields.Integer(allow_none=True)


class PublicationListSchema(Schema):
    items = fields.List(fields.Nested(PublicationSchema))


class NoticeHouseholdSchema(Schema):
    serial = fields.Integer()
    list_position = fields.Integer()
    household_id = fields.String()
    head_name_bn = fields.String(allow_none=True)
    head_name_en = fields.String(allow_none=True)
    relative_relation = fields.String(allow_none=True)
    relative_name = fields.String(allow_none=True)
    village = fields.String(allow_none=True)


class NoticeAreaSchema(Schema):
    code = fields.String()
    level = fields.String()
    name_en = fields.String()
    name_bn = fields.String(allow_none=True)


class NoticeProgrammeSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    ministry = fields.String()


class NoticeListSchema(Schema):
    id = fields.Integer()
    number = fields.Integer()
    model_id = fields.Integer()
    as_of = fields.DateTime()


class NoticeSchema(Schema):
    """The notice: deliberately no national ID, phone number or date of birth field."""

    publication = fields.Nested(PublicationSchema)
    areas = fields.List(fields.Nested(NoticeAreaSchema))
    programme = fields.Nested(NoticeProgrammeSchema)
    list = fields.Nested(NoticeListSchema)
    households = fields.List(fields.Nested(NoticeHouseholdSchema))


class NewHouseholdSchema(Schema):
    household = fields.Dict(required=True)
    members = fields.List(fields.Dict(), required=True)


class ObjectionCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(OBJECTION_KINDS))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    household_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=24))
    family_head_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    family_father_or_husband_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    family_village = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    objector_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    change_request_id = fields.Integer(load_default=None, allow_none=True)
    new_household = fields.Nested(NewHouseholdSchema, load_default=None, allow_none=True)


class DecisionSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(DECISION_OUTCOMES))
    meeting_date = fields.Date(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=120))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class DecisionOutSchema(Schema):
    id = fields.Integer()
    outcome = fields.String()
    meeting_date = fields.Date()
    reference = fields.String()
    note = fields.String(allow_none=True)
    decided_by = fields.String(allow_none=True)
    recorded_at = fields.DateTime()


class FamilySchema(Schema):
    head_name = fields.String(allow_none=True)
    father_or_husband_name = fields.String(allow_none=True)
    village = fields.String(allow_none=True)


class LinkedRequestSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    household_id = fields.String(allow_none=True)


class ObjectionEvidenceSchema(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size_bytes = fields.Integer()


class ObjectionSchema(Schema):
    id = fields.Integer()
    publication_id = fields.Integer()
    kind = fields.String()
    household_id = fields.String(allow_none=True)
    family = fields.Nested(FamilySchema, allow_none=True)
    change_request = fields.Nested(LinkedRequestSchema, allow_none=True)
    reason = fields.String()
    objector_name = fields.String(allow_none=True)
    recorded_by = fields.String(allow_none=True)
    recorded_at = fields.DateTime()
    evidence = fields.List(fields.Nested(ObjectionEvidenceSchema))
    decision = fields.Nested(DecisionOutSchema, allow_none=True)


class ValidatedChangeSchema(Schema):
    household_id = fields.String()
    change = fields.String()
    publication_id = fields.Integer()
    objection_id = fields.Integer()
    objection_kind = fields.String()
    decision_id = fields.Integer()
    meeting_date = fields.Date()
    reference = fields.String()


class DeferredDecisionSchema(Schema):
    objection_id = fields.Integer()
    publication_id = fields.Integer()
    household_id = fields.String(allow_none=True)
    change_request_id = fields.Integer(allow_none=True)
    decision_id = fields.Integer()
    meeting_date = fields.Date()
    reference = fields.String()
    reason = fields.String()


class ValidationSchema(Schema):
    list_id = fields.Integer()
    validated = fields.Boolean()
    source_list_id = fields.Integer(allow_none=True)
    publication_ids = fields.List(fields.Integer())
    n_added = fields.Integer()
    n_removed = fields.Integer()
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)
    changes = fields.List(fields.Nested(ValidatedChangeSchema))
    #: Upheld exclusion objections this list could not apply (not registered / not scored in its run).
    deferred = fields.List(fields.Nested(DeferredDecisionSchema))


class FinaliseOutSchema(Schema):
    publication = fields.Nested(PublicationSchema)
    validated_list = fields.Nested(ValidationSchema)
    n_entries = fields.Integer()


class SpotCheckArgs(Schema):
    divergence_points = fields.Float(load_default=cv.DEFAULT_DIVERGENCE_POINTS, validate=validate.Range(0, 100))
    override_rate = fields.Float(load_default=cv.DEFAULT_OVERRIDE_RATE, validate=validate.Range(0, 1))


class SpotCheckDecisionSchema(Schema):
    decision_id = fields.Integer()
    objection_id = fields.Integer()
    publication_id = fields.Integer()
    union_code = fields.String()
    household_id = fields.String(allow_none=True)
    change = fields.String()
    reference = fields.String()
    rank = fields.Integer(allow_none=True)
    cutoff_rank = fields.Integer(allow_none=True)
    rank_ratio = fields.Float(allow_none=True)
    percentile = fields.Float(allow_none=True)
    cutoff_percentile = fields.Float(allow_none=True)
    divergence_points = fields.Float(allow_none=True)
    flagged = fields.Boolean()


class SpotCheckUnionSchema(Schema):
    publication_id = fields.Integer()
    union_code = fields.String()
    union_name = fields.String(allow_none=True)
    status = fields.String()
    entries = fields.Integer()
    decisions = fields.Integer()
    upheld = fields.Integer()
    override_rate = fields.Float()
    flagged = fields.Boolean()
    reasons = fields.List(fields.String())


class SpotCheckSchema(Schema):
    list_id = fields.Integer()
    source_list_id = fields.Integer()
    local_level = fields.String()
    thresholds = fields.Dict()
    decisions = fields.Integer()
    upheld = fields.Integer()
    checked = fields.List(fields.Nested(SpotCheckDecisionSchema))
    flagged_decisions = fields.List(fields.Nested(SpotCheckDecisionSchema))
    unions = fields.List(fields.Nested(SpotCheckUnionSchema))
    mean_override_rate = fields.Float(allow_none=True)
    sd_override_rate = fields.Float(allow_none=True)
    flagged_unions = fields.List(fields.Nested(SpotCheckUnionSchema))


# --- routes ---------------------------------------------------------------------------------


def _publication(publication_id: int):
    user = current_api_user()
    publication = cv.get_publication(publication_id)
    return user, publication


def _window_view(programme) -> dict:
    return {
        "programme_id": programme.id,
        "objection_days": programme.objection_days,
        "default_days": cv.default_objection_days(),
        "effective_days": cv.objection_days_of(programme),
    }


@blp.route("/programmes/<int:programme_id>/objection-window")
class ProgrammeObjectionWindow(MethodView):
    @blp.response(200, ObjectionWindowOutSchema)
    def get(self, programme_id):
        """The objection window new publications of the programme get (its own, else the default)."""
        el.require_reader(current_api_user())
        return _window_view(el.get_programme(programme_id))

    @blp.arguments(ObjectionWindowSchema)
    @blp.response(200, ObjectionWindowOutSchema)
    def put(self, args, programme_id):
        """Set the programme's own objection window (days, 1-365), or ``null`` for the default. The
        programme's officers only; publications already made keep their window."""
        user = current_api_user()
        programme = el.get_programme(programme_id)
        with _committing():
            cv.set_objection_window(programme, user, args["objection_days"])
        return _window_view(programme)


@blp.route("/lists/<int:list_id>/publications")
class ListPublications(MethodView):
    @blp.response(200, PublicationListSchema)
    def get(self, list_id):
        """The list's publications in the caller's areas."""
        user = current_api_user()
        lst = el.get_list(list_id)
        el.require_reader(user)
        return {"items": [cv.publication_view(p, user) for p in cv.list_publications(lst, user)]}

    @blp.arguments(PublishSchema)
    @blp.response(201, PublicationListSchema)
    def post(self, args, list_id):
        """Publish the list for objections in one union (``union_code``), several (``union_codes``) or every
        union of an area that has households on it (``area_code``; all when nothing is given). The window
        is ``objection_days`` if given, else the programme's own, else the default (30 days)."""
        user = current_api_user()
        lst = el.get_list(list_id)
        unions = args["union_codes"] or ([args["union_code"]] if args["union_code"] else None)
        with _committing():
            created = cv.publish_list(
                lst,
                user,
                union_codes=unions,
                area_code=args["area_code"],
                objection_days=args["objection_days"],
                how_to_object=args["how_to_object"],
            )
        return {"items": [cv.publication_view(p, user) for p in created]}


@blp.route("/lists/<int:list_id>/validation")
class ListValidation(MethodView):
    @blp.response(200, ValidationSchema)
    def get(self, list_id):
        """A validated list's provenance: its source list and every difference with its decision."""
        el.require_reader(current_api_user())
        return cv.validation_view(el.get_list(list_id))


@blp.route("/lists/<int:list_id>/spot-check")
class SpotCheck(MethodView):
    @blp.arguments(SpotCheckArgs, location="query")
    @blp.response(200, SpotCheckSchema)
    def get(self, args, list_id):
        """Upheld decisions that diverge strongly from the PMT, and unions with unusual override rates."""
        return cv.spot_check(el.get_list(list_id), current_api_user(), **args)


@blp.route("/publications/<int:publication_id>")
class PublicationDetail(MethodView):
    @blp.response(200, PublicationSchema)
    def get(self, publication_id):
        """One publication: window, deadline, objection counts, finalisation."""
        user, publication = _publication(publication_id)
        cv.require_publication_reader(user, publication)
        return cv.publication_view(publication, user)


@blp.route("/publications/<int:publication_id>/notice")
class PublicationNotice(MethodView):
    @blp.response(200, NoticeSchema)
    def get(self, publication_id):
        """The notice's content (the printable A4 page is ``/publications/{id}/notice`` on the web side)."""
        user, publication = _publication(publication_id)
        cv.require_publication_reader(user, publication)
        return cv.notice_view(publication)


@blp.route("/publications/<int:publication_id>/objections")
class PublicationObjections(MethodView):
    @blp.response(200, ObjectionSchema(many=True))
    def get(self, publication_id):
        """The objections recorded on this publication, with their decisions."""
        user, publication = _publication(publication_id)
        cv.require_publication_reader(user, publication)
        return [cv.objection_view(o, user) for o in publication.objections]

    @blp.arguments(ObjectionCreateSchema)
    @blp.response(201, ObjectionSchema)
    def post(self, args, publication_id):
        """Record an objection on behalf of a community member while the window is open."""
        user, publication = _publication(publication_id)
        new_household = args.pop("new_household")
        with _committing():
            objection = cv.record_objection(publication, user, new_household=new_household, **args)
        return cv.objection_view(objection, user)


@blp.route("/publications/<int:publication_id>/finalise")
class PublicationFinalise(MethodView):
    @blp.response(200, FinaliseOutSchema)
    def post(self, publication_id):
        """Close the publication (after its window, every objection decided) and derive the validated list."""
        user, publication = _publication(publication_id)
        with _committing():
            validated = cv.finalise_publication(publication, user)
        return {
            "publication": cv.publication_view(publication, user),
            "validated_list": cv.validation_view(validated),
            "n_entries": validated.n_entries,
        }


@blp.route("/objections/<int:objection_id>")
class ObjectionDetail(MethodView):
    @blp.response(200, ObjectionSchema)
    def get(self, objection_id):
        user = current_api_user()
        objection = cv.get_objection(objection_id)
        cv.require_publication_reader(user, objection.publication)
        return cv.objection_view(objection, user)


@blp.route("/objections/<int:objection_id>/decision")
class ObjectionDecisionRoute(MethodView):
    @blp.arguments(DecisionSchema)
    @blp.response(201, ObjectionSchema)
    def post(self, args, objection_id):
        """Record the committee's decision (upheld / dismissed, meeting date, reference)."""
        user = current_api_user()
        objection = cv.get_objection(objection_id)
        with _committing():
            cv.decide_objection(objection, user, **args)
        return cv.objection_view(objection, user)


class RegistrationLinkSchema(Schema):
    change_request_id = fields.Integer(required=True, validate=validate.Range(min=1))


@blp.route("/objections/<int:objection_id>/registration")
class ObjectionRegistration(MethodView):
    @blp.arguments(RegistrationLinkSchema)
    @blp.response(200, ObjectionSchema)
    def post(self, args, objection_id):
        """Link the new-household change request that registers the unregistered family an exclusion
        objection names (the union's field staff or the programme's officers)."""
        user = current_api_user()
        objection = cv.get_objection(objection_id)
        with _committing():
            cv.link_registration(objection, user, args["change_request_id"])
        return cv.objection_view(objection, user)


@blp.route("/objections/<int:objection_id>/evidence")
class ObjectionEvidenceUpload(MethodView):
    @blp.response(201, ObjectionEvidenceSchema)
    def post(self, objection_id):
        """Attach a file (multipart field ``file``): JPEG, PNG or PDF, at most 5 MB, checked by content."""
        from registry.change_requests import EVIDENCE_MAX_BYTES

        user = current_api_user()
        objection = cv.get_objection(objection_id)
        upload = request.files.get("file")
        if upload is None:
            raise RecordValidationError([Issue("evidence", None, None, "file", "", "required: a multipart file")])
        data = upload.stream.read(EVIDENCE_MAX_BYTES + 1)
        with _committing():
            evidence = cv.add_objection_evidence(objection, user, upload.filename or "", data, evidence_root())
        return {
            "id": evidence.id,
            "filename": evidence.filename,
            "content_type": evidence.content_type,
            "size_bytes": evidence.size_bytes,
        }


@blp.route("/objections/<int:objection_id>/evidence/<int:evidence_id>")
class ObjectionEvidenceDownload(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    def get(self, objection_id, evidence_id):
        """Download an evidence file (users who may read the publication)."""
        objection = cv.get_objection(objection_id)
        evidence, path = cv.get_evidence_file(objection, evidence_id, current_api_user(), evidence_root())
        return send_file(path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename)
