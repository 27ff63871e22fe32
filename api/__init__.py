"""The JSON API (``/api/v1``): bearer-token authentication, OpenAPI document, blueprints."""

from __future__ import annotations

from flask import Flask, g, request
from flask_smorest import Api

from api.errors import unauthorized
from registry.users import user_for_token

API_PREFIX = "/api/v1"
#: API modules, each exposing a flask-smorest Blueprint ``blp`` (one module per feature).
API_MODULES: tuple[str, ...] = (
    "api.meta",
    "api.households",
    "api.grievances",
    "api.validation",
    "api.pmt",
    "api.change_requests",
    "api.household_history",
    "api.programmes",
    "api.imports",
    "api.scoring",
)


class RegistryApi(Api):
    """flask-smorest's Api, leaving error rendering to ``web.errors`` (one error shape)."""

    def _register_error_handlers(self):
        pass


def init_api(app: Flask) -> RegistryApi:
    """Create the API for ``app``, register its blueprints and its authentication hook."""
    from web.extensions import csrf

    api = RegistryApi(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearerAuth": []}],
        },
    )
    import importlib

    for module_name in API_MODULES:
        blueprint = importlib.import_module(module_name).blp
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    # Token-authenticated requests carry no cookies, so CSRF does not apply to the API.
    app.before_request(_authenticate)
    return api


def _authenticate():
    if not request.path.startswith(API_PREFIX):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return unauthorized("missing bearer token: send 'Authorization: Bearer <token>' (socreg users token NAME)")
    user = user_for_token(token.strip())
    if user is None:
        return unauthorized("invalid, revoked or expired token")
    g.api_user = user
    return None


def current_api_user():
    """The user authenticated by the request's bearer token."""
    return g.api_user
