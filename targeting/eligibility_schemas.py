"""marshmallow schemas of programmes and eligibility lists: validated input, explicit output.

Rule parts (targeting, criteria, exclusions, quotas) are checked by ``targeting.rules``, whose
errors are reported under their JSON path (``criteria.all[1].household.femal_head``), so a 422
names the exact bad part. Output schemas list their fields; personal data never appears in them
(exports, which may carry names for roles that need them, are built in ``targeting.eligibility``).
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from models.programme import PROGRAMME_STATUSES
from registry.schemas import PageMetaSchema
from targeting import rules

AREA_CODE = validate.Regexp(r"^\d{2}(\d{2}){0,3}$", error="expected a BBS area code of 2, 4, 6 or 8 digits")
RULE_PARTS = {
    "targeting": rules.normalise_targeting,
    "criteria": rules.normalise_criteria,
    "exclusions": rules.normalise_exclusions,
    "quotas": rules.normalise_quotas,
}


class RuleInputSchema(Schema):
    """The eligibility rule of a programme: scope, PMT targeting, extra criteria, exclusions, quotas."""

    scope_areas = fields.List(
        fields.String(validate=AREA_CODE),
        load_default=list,
        validate=validate.Length(max=200),
        metadata={"description": "BBS codes the programme covers (any level); empty = national"},
    )
    targeting = fields.Raw(
        required=True,
        metadata={
            "description": '{"method": "poverty_line"} | {"method": "score_below", "value": 30} | '
            '{"method": "consumption_below", "value": 2500} | '
            '{"method": "poorest", "percent": 20, "level": "upazila"} | {"method": "all"}'
        },
    )
    criteria = fields.Raw(
        load_default=None,
        allow_none=True,
        metadata={"description": 'rule tree, e.g. {"any": [{"member": {"age_years": {"gte": 65}}}, ...]}'},
    )
    exclusions = fields.Raw(
        load_default=dict, metadata={"description": '{"programmes": [ids], "benefits": ["OAA", ...]}'}
    )
    quotas = fields.Raw(
        load_default=dict, metadata={"description": '{"level": "union", "per_area": 300, "total": 50000}'}
    )

    @validates_schema(skip_on_field_errors=False)
    def check_rule_parts(self, data, **kwargs):
        problems: dict[str, list[str]] = {}
        for key, normalise in RULE_PARTS.items():
            if key not in data:
                continue
            try:
                normalise(data[key], key)
            except rules.RuleError as exc:
                problems.update(exc.fields())
        if problems:
            raise ValidationError(problems)

    @post_load
    def normalise(self, data, **kwargs):
        for key, normalise in RULE_PARTS.items():
            if key in data:
                data[key] = normalise(data[key], key)
        if "scope_areas" in data:
            data["scope_areas"] = sorted(set(data["scope_areas"]))
        return data


class ProgrammeInputSchema(RuleInputSchema):
    """A programme as created (POST) or replaced (PUT)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    ministry = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=120),
        metadata={"description": "owner ministry; defaults to the officer's own ministry"},
    )
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    status = fields.String(load_default="active", validate=validate.OneOf(PROGRAMME_STATUSES))

    @post_load
    def strip_texts(self, data, **kwargs):
        for key in ("name", "ministry", "description"):
            if isinstance(data.get(key), str):
                data[key] = data[key].strip() or None
        if not data.get("name"):
            raise ValidationError({"name": ["a name is required"]})
        return data


class PreviewInputSchema(RuleInputSchema):
    """A preview request: any rule part given replaces the programme's saved one (load with ``partial=True``)."""


class EligibilityListBriefSchema(Schema):
    id = fields.Integer()
    programme_id = fields.Integer()
    number = fields.Integer()
    status = fields.String()
    n_entries = fields.Integer()
    model_id = fields.Integer()
    score_run_id = fields.Integer()
    as_of = fields.DateTime()
    built_at = fields.DateTime()
    built_by = fields.String(allow_none=True)
    is_current = fields.Boolean()


class ProgrammeSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    ministry = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String()
    scope_areas = fields.List(fields.String())
    targeting = fields.Dict()
    criteria = fields.Raw(allow_none=True)
    criteria_labels = fields.List(fields.String())
    exclusions = fields.Dict()
    quotas = fields.Dict()
    version = fields.Integer()
    owner = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    can_manage = fields.Boolean()
    current_list = fields.Nested(EligibilityListBriefSchema, allow_none=True)


class ProgrammeListArgs(Schema):
    include_archived = fields.Boolean(load_default=False)


class EligibilityFunnelSchema(Schema):
    scored = fields.Integer(metadata={"description": "active households scored in the run, within the scope"})
    targeted = fields.Integer(metadata={"description": "of which meeting the PMT targeting rule"})
    eligible = fields.Integer(metadata={"description": "of which meeting the criteria and not excluded"})
    selected = fields.Integer(metadata={"description": "of which selected after quotas and the overall cap"})


class ProgrammePreviewSchema(Schema):
    model_id = fields.Integer()
    score_run_id = fields.Integer()
    funnel = fields.Nested(EligibilityFunnelSchema)
    criteria_labels = fields.List(fields.String())
    seconds = fields.Float()


class EligibilityListSchema(EligibilityListBriefSchema):
    programme_name = fields.String()
    programme_version = fields.Integer()
    definition = fields.Dict()
    definition_hash = fields.String()
    entries_hash = fields.String()
    criteria_labels = fields.List(fields.String())
    local_level = fields.String()
    funnel = fields.Nested(EligibilityFunnelSchema)
    rebuilt_from_id = fields.Integer(allow_none=True)
    build_seconds = fields.Float(allow_none=True)


class EligibilityEntrySchema(Schema):
    position = fields.Integer()
    household_id = fields.String()
    union_code = fields.String()
    upazila_code = fields.String()
    district_code = fields.String()
    division_code = fields.String()
    area_type = fields.Integer()
    head_sex = fields.Integer(allow_none=True)
    score = fields.Float()
    predicted_log_pc = fields.Float()
    below_poverty_line = fields.Boolean()
    national_rank = fields.Integer(allow_none=True)
    local_rank = fields.Integer(allow_none=True)
    local_level = fields.String()
    criteria_met = fields.List(fields.String())
    household_version = fields.Integer()
    scored_version = fields.Integer()


class EligibilityEntryPageSchema(Schema):
    items = fields.List(fields.Nested(EligibilityEntrySchema))
    meta = fields.Nested(PageMetaSchema)


class ListAreaCountSchema(Schema):
    code = fields.String()
    name = fields.String(allow_none=True)
    count = fields.Integer()


class ExpectedExclusionErrorSchema(Schema):
    coverage = fields.Float(metadata={"description": "share of scored households meeting the PMT rule"})
    exclusion_error = fields.Float(allow_none=True)
    method = fields.String()
    basis = fields.String()


class EligibilityListSummarySchema(Schema):
    n_entries = fields.Integer()
    scope = fields.String(metadata={"description": "'national', or the caller's areas the counts are limited to"})
    by_division = fields.List(fields.Nested(ListAreaCountSchema))
    by_district = fields.List(fields.Nested(ListAreaCountSchema))
    by_upazila = fields.List(fields.Nested(ListAreaCountSchema))
    by_head_sex = fields.Dict(keys=fields.String(), values=fields.Integer())
    female_headed_share = fields.Float(allow_none=True)
    by_area_type = fields.Dict(keys=fields.String(), values=fields.Integer())
    below_poverty_line = fields.Integer()
    funnel = fields.Nested(EligibilityFunnelSchema)
    expected_exclusion_error = fields.Nested(ExpectedExclusionErrorSchema, allow_none=True)


class EligibilityListDetailSchema(Schema):
    list = fields.Nested(EligibilityListSchema)
    summary = fields.Nested(EligibilityListSummarySchema)
    entries = fields.Nested(EligibilityEntryPageSchema)


class EligibilityListEntriesArgs(Schema):
    area = fields.String(load_default=None, validate=AREA_CODE)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class ListDiffEntrySchema(Schema):
    household_id = fields.String()
    union_code = fields.String()
    position = fields.Integer(allow_none=True, metadata={"description": "position in the list it is on"})
    reason = fields.String(metadata={"description": "the first applicable reason, by priority"})
    reasons = fields.List(fields.String())


class ListDiffSchema(Schema):
    base = fields.Nested(EligibilityListBriefSchema)
    other = fields.Nested(EligibilityListBriefSchema)
    rule_changed = fields.Boolean()
    model_changed = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_reason = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Integer()))
    added = fields.List(fields.Nested(ListDiffEntrySchema))
    removed = fields.List(fields.Nested(ListDiffEntrySchema))
    truncated = fields.Boolean()


class ListDiffArgs(Schema):
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=0, max=100_000))


class HouseholdProgrammeListingSchema(Schema):
    programme_id = fields.Integer()
    programme_name = fields.String()
    ministry = fields.String()
    list_id = fields.Integer()
    list_number = fields.Integer()
    built_at = fields.DateTime()
    is_current = fields.Boolean()
    position = fields.Integer()
    n_entries = fields.Integer()
    score = fields.Float()
    national_rank = fields.Integer(allow_none=True)
    local_rank = fields.Integer(allow_none=True)
    local_level = fields.String()
    criteria_met = fields.List(fields.String())


class ProgrammeOverlapPairSchema(Schema):
    programme_a = fields.Integer()
    programme_b = fields.Integer()
    households = fields.Integer()


class ProgrammeOverlapSchema(Schema):
    scope = fields.String()
    programmes = fields.List(fields.Nested(EligibilityListBriefSchema))
    programme_names = fields.Dict(keys=fields.String(), values=fields.String())
    households_by_programme_count = fields.Dict(keys=fields.String(), values=fields.Integer())
    pairs = fields.List(fields.Nested(ProgrammeOverlapPairSchema))
