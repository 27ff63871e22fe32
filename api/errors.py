"""Helpers for API error responses."""

from web.errors import api_error


def unauthorized(message: str):
    response, status = api_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response, status
