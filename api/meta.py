"""Who am I, and the geography."""

from flask.views import MethodView
from flask_smorest import Blueprint

from api import current_api_user
from registry.geo import get_area, list_children
from registry.schemas import AreaListArgs, AreaSchema, MeSchema

blp = Blueprint("meta", __name__, url_prefix="/api/v1", description="The current user and the geography")


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """The authenticated user, their role and assigned areas."""
        user = current_api_user()
        return {"username": user.username, "full_name": user.full_name, "role": user.role, "areas": user.area_codes}


@blp.route("/areas")
class Areas(MethodView):
    @blp.arguments(AreaListArgs, location="query")
    @blp.response(200, AreaSchema(many=True))
    def get(self, args):
        """Divisions, or the sub-areas of ``parent``."""
        if args["parent"]:
            get_area(args["parent"])
        return list_children(args["parent"])
