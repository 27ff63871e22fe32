"""Households: list, current state, as-of state, versions."""

from flask.views import MethodView
from flask_smorest import Blueprint

from api import current_api_user
from registry import access
from registry import households as hh
from registry.schemas import AsOfArgs, HouseholdListArgs, HouseholdPageSchema, HouseholdSchema, VersionSchema

blp = Blueprint("households", __name__, url_prefix="/api/v1/households", description="Registered households")


def _load(household_id: str):
    user = current_api_user()
    household = hh.get_household(household_id)
    access.require_household_reader(user, household)
    return user, household


@blp.route("")
class HouseholdList(MethodView):
    @blp.arguments(HouseholdListArgs, location="query")
    @blp.response(200, HouseholdPageSchema)
    def get(self, args):
        """Current households in the caller's areas, filtered by area and search, paginated."""
        user = current_api_user()
        if user.role not in access.HOUSEHOLD_READER_ROLES:
            raise access.AccessDenied(f"role {user.role!r} may not browse individual households")
        if args["area"]:
            access.require_area(user, args["area"])
        page = hh.list_households(
            scope_clause=access.household_scope_clause(user),
            area_code=args["area"],
            search=args["q"],
            status=None if args["status"] == "all" else args["status"],
            page=args["page"],
            per_page=args["per_page"],
        )
        pii = access.can_see_pii(user)
        return {
            "items": [hh.summary_view(h, can_see_pii=pii) for h in page.items],
            "meta": {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages},
        }


@blp.route("/<household_id>")
class HouseholdDetail(MethodView):
    @blp.arguments(AsOfArgs, location="query")
    @blp.response(200, HouseholdSchema)
    def get(self, args, household_id):
        """The household's current state, or its state as of a timestamp (``as_of``)."""
        user, household = _load(household_id)
        version = hh.version_as_of(household, args["as_of"]) if args["as_of"] else hh.current_version_of(household)
        return hh.state_view(version, can_see_pii=access.can_see_pii(user))


@blp.route("/<household_id>/versions")
class HouseholdVersions(MethodView):
    @blp.response(200, VersionSchema(many=True))
    def get(self, household_id):
        """Every version of the household with who, when and why."""
        _user, household = _load(household_id)
        return [hh.version_meta(v) for v in hh.list_versions(household)]


@blp.route("/<household_id>/versions/<int:version_no>")
class HouseholdVersionDetail(MethodView):
    @blp.response(200, HouseholdSchema)
    def get(self, household_id, version_no):
        """One past (or the current) version of the household."""
        user, household = _load(household_id)
        return hh.state_view(hh.get_version(household, version_no), can_see_pii=access.can_see_pii(user))
