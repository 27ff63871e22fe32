"""marshmallow schemas of the registry's API: explicit output fields, validated input."""

from __future__ import annotations

import datetime as dt

from marshmallow import Schema, fields, validate

from models.codes import HOUSEHOLD_SPECS, MEMBER_SPECS


def _field_for(spec):
    kind = spec.kind
    kw = {"allow_none": True, "metadata": {"description": spec.describe_rule()}}
    if kind in ("code", "int"):
        return fields.Integer(**kw)
    if kind == "decimal":
        return fields.Float(**kw)
    if kind == "bool":
        return fields.Boolean(**kw)
    if kind == "date":
        return fields.String(**kw)
    return fields.String(**kw)


#: A member as the API shows it (personal data masked for roles that do not need it).
MemberSchema = Schema.from_dict(
    {
        "line_no": fields.Integer(),
        **{n: _field_for(s) for n, s in MEMBER_SPECS.items() if n not in ("household_id", "line_no")},
    },
    name="Member",
)


class HouseholdSummarySchema(Schema):
    household_id = fields.String()
    union_code = fields.String()
    upazila_code = fields.String()
    district_code = fields.String()
    division_code = fields.String()
    area_type = fields.Integer()
    village = fields.String(allow_none=True)
    status = fields.String()
    current_version = fields.Integer()
    household_size = fields.Integer()
    head_name = fields.String(allow_none=True)


#: A household's full state (current, or a past version).
HouseholdSchema = Schema.from_dict(
    {
        "household_id": fields.String(),
        "version": fields.Integer(),
        "version_created_at": fields.DateTime(allow_none=True),
        "status": fields.String(),
        "inactive_reason": fields.String(allow_none=True),
        **{n: _field_for(s) for n, s in HOUSEHOLD_SPECS.items() if n != "household_id"},
        "members": fields.List(fields.Nested(MemberSchema)),
    },
    name="Household",
)


class VersionSchema(Schema):
    version_no = fields.Integer()
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)
    source = fields.String()
    source_ref = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class PageMetaSchema(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class HouseholdPageSchema(Schema):
    items = fields.List(fields.Nested(HouseholdSummarySchema))
    meta = fields.Nested(PageMetaSchema)


class HouseholdListArgs(Schema):
    area = fields.String(load_default=None, validate=validate.Regexp(r"^\d{2}(\d{2}){0,3}$"))
    q = fields.String(load_default=None, validate=validate.Length(max=120))
    status = fields.String(load_default="active", validate=validate.OneOf(["active", "inactive", "all"]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class AsOfArgs(Schema):
    as_of = fields.AwareDateTime(load_default=None, default_timezone=dt.UTC)


class AreaSchema(Schema):
    code = fields.String()
    level = fields.String()
    parent_code = fields.String(allow_none=True)
    name_en = fields.String()
    name_bn = fields.String(allow_none=True)
    area_type = fields.Integer(allow_none=True)
    unit_type = fields.String()


class AreaListArgs(Schema):
    parent = fields.String(load_default=None, validate=validate.Regexp(r"^\d{2}(\d{2}){0,2}$"))


class MeSchema(Schema):
    username = fields.String()
    full_name = fields.String(allow_none=True)
    role = fields.String()
    areas = fields.List(fields.String())
