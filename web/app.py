"""The application factory."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from flask import Flask, g, request, session
from flask_babel import get_locale
from sqlalchemy import event
from sqlalchemy.engine import Engine

from config import PROJECT_ROOT, get_config, normalise_database_url
from models import db
from registry.audit import AuditContext, audit_context
from registry.users import configure_password_hashing
from web.extensions import babel, csrf, login_manager, migrate

log = logging.getLogger(__name__)


def default_database_url(instance_path: str) -> str:
    """The embedded default: an SQLite file in the instance folder."""
    return "sqlite:///" + str(Path(instance_path) / "socreg.sqlite3")


def create_app(config_name: str | None = None, **overrides) -> Flask:
    """Build the Flask application: configuration, extensions, blueprints, error handlers."""
    app = Flask(
        "web",
        instance_path=os.environ.get("SOCREG_INSTANCE_PATH") or str(PROJECT_ROOT / "instance"),
        template_folder="templates",
        static_folder="static",
    )
    config_class = get_config(config_name)
    app.config.from_object(config_class)
    # Read at call time so that the environment of this process wins over import-time values.
    env_url = os.environ.get(
        "SOCREG_TEST_DATABASE_URL" if config_class.ENV_NAME == "testing" else "SOCREG_DATABASE_URL"
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        overrides.pop("SQLALCHEMY_DATABASE_URI", None) or env_url or default_database_url(app.instance_path)
    )
    if os.environ.get("SOCREG_SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ["SOCREG_SECRET_KEY"]
    app.config.update(overrides)
    config_class.check(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    _init_extensions(app)
    _register_blueprints(app)
    _register_request_hooks(app)
    from web.errors import register_error_handlers

    register_error_handlers(app)
    return app


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db)
    csrf.init_app(app)
    # The Bangla catalogue (web/translations/bn/LC_MESSAGES/messages.{po,mo}); see docs/translations.md.
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).parent / "translations"))
    babel.init_app(app, locale_selector=_select_locale)
    app.jinja_env.globals["get_locale"] = get_locale  # base.html: <html lang="...">
    login_manager.init_app(app)
    login_manager.login_view = "web.login"
    login_manager.session_protection = "strong"
    configure_password_hashing(app.config.get("ARGON2_TIME_COST"), app.config.get("ARGON2_MEMORY_COST"))

    from models import User

    @login_manager.user_loader
    def load_user(user_id: str):
        user = db.session.get(User, int(user_id))
        return user if user is not None and user.is_active else None


def _select_locale() -> str:
    from flask import current_app

    wanted = request.args.get("lang") or session.get("lang")
    if wanted in current_app.config["LANGUAGES"]:
        return wanted
    return request.accept_languages.best_match(current_app.config["LANGUAGES"]) or "en"


#: Page modules, each exposing a Blueprint ``bp`` (one module per feature).
WEB_MODULES: tuple[str, ...] = (
    "web.views",
    "web.pmt",
    "web.grievances",
    "web.validation",
    "web.imports",
    "web.change_requests",
    "web.programmes",
    "web.scoring",
)


def _register_blueprints(app: Flask) -> None:
    import importlib

    from api import init_api

    init_api(app)
    for module_name in WEB_MODULES:
        app.register_blueprint(importlib.import_module(module_name).bp)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def set_audit_context():
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
        g.audit_token = audit_context.set(AuditContext(request_id=g.request_id, remote_addr=request.remote_addr))

    @app.after_request
    def add_headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.teardown_request
    def reset_audit_context(exc):
        token = g.pop("audit_token", None)
        if token is not None:
            audit_context.reset(token)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """Enforce foreign keys and allow concurrent readers on SQLite."""
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    # Let SQLAlchemy, not pysqlite, decide when transactions begin, so that SAVEPOINTs and
    # transactional DDL work (the SQLAlchemy documentation's pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection):
    if connection.dialect.name == "sqlite":
        # IMMEDIATE takes the write lock up front: concurrent writers queue on busy_timeout
        # instead of failing with "database is locked" when upgrading a read lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
