"""marshmallow schemas of change requests and household diffs: validated input naming every bad
field (422), explicit output fields (nothing is dumped wholesale)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.change_request import CHANGE_KINDS, CHANGE_STATUSES, REMOVAL_REASONS
from models.codes import HOUSEHOLD_ID_PATTERN, HOUSEHOLD_SPECS, MEMBER_SPECS, RELATION_TO_HEAD
from models.household import DEACTIVATION_REASONS
from registry.schemas import PageMetaSchema

_NON_HEAD_RELATIONS = [c for c in RELATION_TO_HEAD if c != 1]
_AREA = validate.Regexp(r"^\d{2}(\d{2}){0,3}$", error="a BBS area code of 2, 4, 6 or 8 digits")
_LINE = validate.Range(min=1, max=99)

#: What each kind needs besides ``kind`` and ``reason``.
REQUIRED_BY_KIND = {
    "new_household": ("household", "members"),
    "edit_household": ("household_id", "base_version", "household"),
    "add_member": ("household_id", "base_version", "member"),
    "edit_member": ("household_id", "base_version", "line_no", "member"),
    "remove_member": ("household_id", "base_version", "line_no", "removal_reason"),
    "change_head": ("household_id", "base_version", "new_head_line_no", "former_head_relation"),
    "split": ("household_id", "base_version", "line_nos", "new_head_line_no"),
    "deactivate": ("household_id", "base_version", "inactive_reason"),
}
#: The operation's own keys (everything but the envelope), copied into the stored payload.
PAYLOAD_KEYS = (
    "household",
    "members",
    "member",
    "line_no",
    "removal_reason",
    "new_head_line_no",
    "remaining_head_line_no",
    "former_head_relation",
    "relations",
    "line_nos",
    "inactive_reason",
    "duplicate_of",
)


class ChangeRequestCreateSchema(Schema):
    """A new change request. Field values inside ``household``/``member(s)`` are checked by the
    registry's validation rules (one code path with imports); this schema checks the envelope."""

    kind = fields.String(required=True, validate=validate.OneOf(CHANGE_KINDS))
    household_id = fields.String(load_default=None, validate=validate.Regexp(HOUSEHOLD_ID_PATTERN))
    base_version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    household = fields.Dict(keys=fields.String(), load_default=None)
    members = fields.List(fields.Dict(keys=fields.String()), load_default=None, validate=validate.Length(max=99))
    member = fields.Dict(keys=fields.String(), load_default=None)
    line_no = fields.Integer(load_default=None, validate=_LINE)
    removal_reason = fields.String(load_default=None, validate=validate.OneOf(REMOVAL_REASONS))
    new_head_line_no = fields.Integer(load_default=None, validate=_LINE)
    remaining_head_line_no = fields.Integer(load_default=None, validate=_LINE)
    former_head_relation = fields.Integer(load_default=None, validate=validate.OneOf(_NON_HEAD_RELATIONS))
    relations = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^\d{1,2}$")),
        values=fields.Integer(validate=validate.OneOf(list(RELATION_TO_HEAD))),
        load_default=None,
    )
    line_nos = fields.List(fields.Integer(validate=_LINE), load_default=None, validate=validate.Length(min=1, max=98))
    inactive_reason = fields.String(load_default=None, validate=validate.OneOf(DEACTIVATION_REASONS))
    duplicate_of = fields.String(load_default=None, validate=validate.Regexp(HOUSEHOLD_ID_PATTERN))

    @validates_schema(skip_on_field_errors=False)
    def kind_requirements(self, data, **kwargs):
        errors: dict[str, list[str]] = {}
        kind = data.get("kind")
        for name in REQUIRED_BY_KIND.get(kind, ()):
            if data.get(name) in (None, "", [], {}):
                errors.setdefault(name, []).append(f"required when kind is {kind}")
        for name, allowed in (("household", HOUSEHOLD_SPECS), ("member", MEMBER_SPECS)):
            for key in sorted(set(data.get(name) or {}) - set(allowed)):
                errors.setdefault(f"{name}.{key}", []).append("not a field of the registry")
        for i, member in enumerate(data.get("members") or []):
            for key in sorted(set(member) - set(MEMBER_SPECS)):
                errors.setdefault(f"members.{i}.{key}", []).append("not a field of the registry")
        if kind == "deactivate" and data.get("inactive_reason") == "duplicate" and not data.get("duplicate_of"):
            errors.setdefault("duplicate_of", []).append("required when the household is a duplicate")
        if errors:
            raise ValidationError(errors)


class ChangeRequestListArgs(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(CHANGE_STATUSES))
    area = fields.String(load_default=None, validate=_AREA)
    submitted_by = fields.String(load_default=None, validate=validate.Length(min=1, max=80))
    kind = fields.String(load_default=None, validate=validate.OneOf(CHANGE_KINDS))
    household_id = fields.String(load_default=None, validate=validate.Regexp(HOUSEHOLD_ID_PATTERN))
    flagged = fields.Boolean(load_default=None)
    sort = fields.String(load_default="oldest", validate=validate.OneOf(["oldest", "newest"]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class ChangeRequestRejectSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class ChangeRequestBulkSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    ids = fields.List(fields.Integer(validate=validate.Range(min=1)), required=True, validate=validate.Length(1, 200))
    reason = fields.String(load_default=None, validate=validate.Length(min=3, max=2000))

    @validates_schema
    def reason_for_reject(self, data, **kwargs):
        if data.get("action") == "reject" and not data.get("reason"):
            raise ValidationError({"reason": ["required to reject"]})


class VersionDiffArgs(Schema):
    from_version = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1))
    to_version = fields.Integer(load_default=None, data_key="to", validate=validate.Range(min=1))


# --- output ------------------------------------------------------------------------------


class VersionFieldChangeSchema(Schema):
    field = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)


class VersionMemberLineSchema(Schema):
    line_no = fields.Integer()
    member = fields.Dict()


class VersionMemberChangeSchema(Schema):
    line_no = fields.Integer()
    changes = fields.List(fields.Nested(VersionFieldChangeSchema))


class VersionMemberDiffSchema(Schema):
    added = fields.List(fields.Nested(VersionMemberLineSchema))
    removed = fields.List(fields.Nested(VersionMemberLineSchema))
    changed = fields.List(fields.Nested(VersionMemberChangeSchema))


class VersionDiffSummarySchema(Schema):
    household_fields = fields.Integer()
    status_fields = fields.Integer()
    members_added = fields.Integer()
    members_removed = fields.Integer()
    members_changed = fields.Integer()


class VersionDiffSchema(Schema):
    household = fields.List(fields.Nested(VersionFieldChangeSchema))
    status = fields.List(fields.Nested(VersionFieldChangeSchema))
    members = fields.Nested(VersionMemberDiffSchema)
    summary = fields.Nested(VersionDiffSummarySchema)
    is_empty = fields.Boolean()


class HouseholdVersionMetaSchema(Schema):
    version_no = fields.Integer()
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)
    source = fields.String()
    source_ref = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class HouseholdDiffSchema(Schema):
    household_id = fields.String()
    from_version = fields.Integer()
    to_version = fields.Integer()
    from_meta = fields.Nested(HouseholdVersionMetaSchema, data_key="from", attribute="from")
    to_meta = fields.Nested(HouseholdVersionMetaSchema, data_key="to", attribute="to")
    diff = fields.Nested(VersionDiffSchema)


class ChangeRequestWarningSchema(Schema):
    code = fields.String()
    message = fields.String()
    field = fields.String(allow_none=True)
    line_no = fields.Integer(allow_none=True)
    household = fields.String(allow_none=True)


class DuplicateCandidateSchema(Schema):
    household_id = fields.String()
    union_code = fields.String()
    line_no = fields.Integer()
    name_bn = fields.String(allow_none=True)
    name_en = fields.String(allow_none=True)
    father_name = fields.String(allow_none=True)
    mother_name = fields.String(allow_none=True)
    date_of_birth = fields.String(allow_none=True)
    age_years = fields.Integer(allow_none=True)
    sex = fields.Integer(allow_none=True)
    nid_number = fields.String(allow_none=True)


class ChangeRequestDuplicateSchema(Schema):
    line_no = fields.Integer(allow_none=True)
    score = fields.Float()
    name_score = fields.Float()
    parent_score = fields.Float(allow_none=True)
    birth_score = fields.Float()
    candidate = fields.Nested(DuplicateCandidateSchema)


class ChangeRequestNidConflictSchema(Schema):
    line_no = fields.Integer()
    nid_number = fields.String()
    household_id = fields.String()
    other_line_no = fields.Integer()


class ChangeRequestEvidenceSchema(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    uploaded_at = fields.DateTime()
    uploaded_by = fields.String(allow_none=True)


class ChangeRequestSummarySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    stage = fields.String(allow_none=True)
    household_id = fields.String(allow_none=True)
    union_code = fields.String()
    base_version = fields.Integer(allow_none=True)
    reason = fields.String()
    submitted_by = fields.String(allow_none=True)
    submitted_at = fields.DateTime()
    age_hours = fields.Float()
    warnings = fields.Integer(metadata={"description": "number of plausibility warnings"})
    duplicate_flags = fields.Integer(metadata={"description": "number of likely duplicate persons"})
    nid_conflicts = fields.Integer()
    high_risk = fields.Boolean()
    risk_reasons = fields.List(fields.String())
    approvals_required = fields.Integer()
    applied_version = fields.Integer(allow_none=True)


class ChangeRequestSplitPartSchema(Schema):
    members = fields.Integer()
    diff = fields.Nested(VersionDiffSchema)


class ChangeRequestDetailSchema(ChangeRequestSummarySchema):
    payload = fields.Dict(allow_none=True)
    current_version = fields.Integer(allow_none=True)
    diff = fields.Nested(
        VersionDiffSchema, metadata={"description": "what approving would change in the current version"}
    )
    requested_changes = fields.Nested(VersionDiffSchema, metadata={"description": "base version to proposed state"})
    changed_since_base = fields.Nested(VersionDiffSchema, allow_none=True)
    new_household = fields.Nested(ChangeRequestSplitPartSchema, allow_none=True)
    warnings_list = fields.List(fields.Nested(ChangeRequestWarningSchema), data_key="warning_details")
    duplicate_flags_list = fields.List(fields.Nested(ChangeRequestDuplicateSchema), data_key="duplicate_candidates")
    nid_conflicts_list = fields.List(fields.Nested(ChangeRequestNidConflictSchema), data_key="nid_conflict_details")
    first_approved_by = fields.String(allow_none=True)
    first_approved_at = fields.DateTime(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    new_household_id = fields.String(allow_none=True)
    rebase_count = fields.Integer()
    evidence = fields.List(fields.Nested(ChangeRequestEvidenceSchema))


class ChangeRequestPageSchema(Schema):
    items = fields.List(fields.Nested(ChangeRequestSummarySchema))
    meta = fields.Nested(PageMetaSchema)


class ChangeRequestRebaseSchema(Schema):
    change_request = fields.Nested(ChangeRequestDetailSchema)
    changed_since_base = fields.Nested(VersionDiffSchema)


class ChangeRequestBulkItemSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    applied_version = fields.Integer(allow_none=True)
    awaiting_second_approval = fields.Boolean()


class ChangeRequestBulkFailureSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    message = fields.String()
    details = fields.Dict()


class ChangeRequestBulkResultSchema(Schema):
    succeeded = fields.List(fields.Nested(ChangeRequestBulkItemSchema))
    failed = fields.List(fields.Nested(ChangeRequestBulkFailureSchema))
