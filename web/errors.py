"""Error handling: JSON errors on the API, HTML pages on the web side, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from registry.access import AccessDenied
from registry.validation import RecordValidationError

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


def wants_json() -> bool:
    return request.path.startswith(API_PREFIX) or request.path == "/healthz"


def api_error(status: int, code: str, message: str, fields: dict | None = None):
    """The API's one error shape: ``{"error": {"code", "message", "fields"}}``."""
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    if g.get("request_id"):
        body["error"]["request_id"] = g.request_id
    return jsonify(body), status


def _fields_from_webargs(error: HTTPException) -> dict:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or {}
    fields: dict = {}
    for _location, entries in messages.items():
        if isinstance(entries, dict):
            fields.update(_string_keys(entries))
    return fields


def _string_keys(messages):
    """Marshmallow names a list's bad items by index (int) beside ``_schema`` (str): JSON keys are
    strings, and the answer's sorted keys cannot mix the two."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    return messages


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException):
        if wants_json():
            fields = _fields_from_webargs(error)
            message = error.description if not fields else "the request has invalid fields"
            if getattr(error, "data", None) and error.data.get("message"):
                message = error.data["message"]
            return api_error(error.code or 500, (error.name or "error").lower().replace(" ", "_"), message, fields)
        return render_template("error.html", code=error.code, name=error.name, description=error.description), (
            error.code or 500
        )

    @app.errorhandler(AccessDenied)
    def handle_denied(error: AccessDenied):
        if wants_json():
            return api_error(403, "forbidden", error.reason)
        return render_template("error.html", code=403, name="Forbidden", description=error.reason), 403

    @app.errorhandler(RecordValidationError)
    def handle_invalid(error: RecordValidationError):
        if wants_json():
            return api_error(422, "validation_failed", str(error), error.fields())
        return render_template("error.html", code=422, name="Invalid data", description=str(error)), 422

    @app.errorhandler(LookupError)
    def handle_not_found(error: LookupError):
        # Our services raise LookupError subclasses (unknown household, version, area).
        if type(error).__module__.startswith(("registry", "targeting")):
            if wants_json():
                return api_error(404, "not_found", str(error))
            return render_template("error.html", code=404, name="Not Found", description=str(error)), 404
        return handle_unexpected(error)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        # Log the trace for operators; show users only a reference they can quote.
        log.exception("unhandled error (request %s)", g.get("request_id"))
        from models import db

        db.session.rollback()
        message = f"An internal error occurred. Quote reference {g.get('request_id', '-')} to support."
        if wants_json():
            return api_error(500, "internal_error", message)
        return render_template("error.html", code=500, name=InternalServerError.name, description=message), 500
