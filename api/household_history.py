"""Household history: the field-level diff between two versions (versions and as-of reads live in
``api.households``)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import current_api_user
from registry import access
from registry import change_requests as crs
from registry import households as hh
from registry.cr_schemas import HouseholdDiffSchema, VersionDiffArgs

blp = Blueprint("household_history", __name__, url_prefix="/api/v1/households", description="Household version history")


@blp.route("/<household_id>/diff")
class HouseholdDiff(MethodView):
    @blp.arguments(VersionDiffArgs, location="query")
    @blp.response(200, HouseholdDiffSchema)
    def get(self, args, household_id):
        """What changed between version ``from`` and version ``to`` (default: the current one):
        household fields, status, and members matched by line number (added, removed, changed)."""
        user = current_api_user()
        household = hh.get_household(household_id)
        access.require_household_reader(user, household)
        return crs.household_diff(
            household, args["from_version"], args["to_version"], can_see_pii=access.can_see_pii(user)
        )
