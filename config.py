"""Configuration classes, chosen by ``SOCREG_ENV`` (development, testing, production).

Secrets and the database URL come only from the environment. The default database is an
SQLite file in the instance folder, so a fresh machine needs nothing installed or started.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to set."""


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    SQLALCHEMY_DATABASE_URI: str | None = os.environ.get("SOCREG_DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SECRET_KEY = os.environ.get("SOCREG_SECRET_KEY")
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    BABEL_DEFAULT_LOCALE = "en"
    LANGUAGES = ("en", "bn")
    MAX_CONTENT_LENGTH = 512 * 1024 * 1024
    PAGE_SIZE = 50
    # flask-smorest / OpenAPI
    API_TITLE = "Social registry and PMT targeting API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    # Background jobs run inline (in the request's process) unless a worker is configured.
    JOBS_INLINE = False

    @classmethod
    def check(cls, app) -> None:
        """Refuse settings that cannot work; called by the app factory."""


class DevelopmentConfig(Config):
    """Local use and the demo: SQLite in the instance folder, a fixed dev secret."""

    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SOCREG_SECRET_KEY") or "dev-only-secret-key-change-me-0123456789"


class TestingConfig(Config):
    """The test suite: CSRF off for the API-style form posts, a throwaway secret."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-not-for-production-0123456789"
    SQLALCHEMY_DATABASE_URI = os.environ.get("SOCREG_TEST_DATABASE_URL") or os.environ.get("SOCREG_DATABASE_URL")
    WTF_CSRF_ENABLED = False
    JOBS_INLINE = True
    # Cheap password hashing keeps the suite fast; production uses the argon2 defaults.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8 * 1024


class ProductionConfig(Config):
    """Production: a real secret is mandatory and cookies are secure."""

    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True

    @classmethod
    def check(cls, app) -> None:
        key = app.config.get("SECRET_KEY")
        if not key:
            raise ConfigError(
                "SOCREG_SECRET_KEY is not set: production refuses to start without a secret key "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"SOCREG_SECRET_KEY is too short ({len(key)} characters): production needs at least "
                f"{MIN_SECRET_KEY_LENGTH}."
            )


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def normalise_database_url(url: str) -> str:
    """Use the pinned psycopg2 driver for plain ``postgresql://`` URLs (SQLAlchemy 2.1 would
    otherwise pick psycopg 3, which is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def get_config(name: str | None = None) -> type[Config]:
    """Return the configuration class named by ``name`` or ``SOCREG_ENV`` (default development)."""
    name = name or os.environ.get("SOCREG_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"SOCREG_ENV={name!r} is not one of {', '.join(CONFIGS)}.") from None
