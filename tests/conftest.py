"""Shared fixtures: a fresh database per run (SQLite, or PostgreSQL when
``SOCREG_TEST_DATABASE_URL`` is set), the app, a per-test transaction that is rolled back
(SQLAlchemy's "join a session into an external transaction" recipe, so code under test may
commit), clients, and factories for users and households."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from config import normalise_database_url
from tests.factories import HouseholdFactory

PG_URL_ENV = "SOCREG_TEST_DATABASE_URL"


def pytest_configure(config):
    os.environ.setdefault("SOCREG_ENV", "testing")


def _is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """A brand-new database for this test run, dropped afterwards."""
    server_url = os.environ.get(PG_URL_ENV)
    if not server_url:
        if _is_ci() and os.environ.get("SOCREG_REQUIRE_POSTGRES"):
            pytest.exit(f"{PG_URL_ENV} must be set when SOCREG_REQUIRE_POSTGRES is set", returncode=3)
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        yield f"sqlite:///{path}"
        return
    url = make_url(normalise_database_url(server_url))
    name = f"socreg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url.render_as_string()} is unreachable: {exc.orig}", returncode=3)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    """The application, migrated to head with the geography loaded (committed once)."""
    from flask_migrate import upgrade

    from models import db
    from registry.geo import load_geography
    from web.app import create_app

    instance = tmp_path_factory.mktemp("instance")
    os.environ["SOCREG_INSTANCE_PATH"] = str(instance)
    application = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, UPLOAD_FOLDER=str(instance / "uploads"))
    with application.app_context():
        upgrade()
        load_geography()
        db.session.commit()
        db.session.remove()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def is_postgres(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


@pytest.fixture
def postgres_only(is_postgres):
    # CI runs the suite a second time on PostgreSQL (.ci/run), where these tests run.
    if not is_postgres:
        pytest.skip(f"needs PostgreSQL: set {PG_URL_ENV}=postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def db_session(app):
    """A session inside an outer transaction that is rolled back after the test."""
    from models import db

    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        # A plain SQLAlchemy session: Flask-SQLAlchemy's own Session ignores ``bind``.
        db.session = scoped_session(sessionmaker(bind=connection, join_transaction_mode="create_savepoint"))
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def client(app, db_session):
    return app.test_client()


class SocregRunner:
    """Invokes the ``socreg`` command group against the test app."""

    def __init__(self, app):
        self._runner = app.test_cli_runner()

    def invoke(self, args, **kwargs):
        from web.cli import main

        return self._runner.invoke(main, args=args, **kwargs)


@pytest.fixture
def runner(app, db_session):
    return SocregRunner(app)


@pytest.fixture
def make_user(db_session):
    """Create a user: ``make_user("supervisor", areas=["30"])``."""
    from registry.users import create_user

    counter = {"n": 0}

    def factory(role: str, areas=(), username: str | None = None, password: str = "correct horse battery"):
        counter["n"] += 1
        user = create_user(username or f"{role}{counter['n']}", role, password, area_codes=areas)
        db_session.flush()
        return user

    return factory


@pytest.fixture
def api_headers(db_session):
    """Bearer headers for a user: ``api_headers(user)``."""
    from registry.users import issue_token

    def headers(user) -> dict:
        return {"Authorization": f"Bearer {issue_token(user)}"}

    return headers


@pytest.fixture
def login(client):
    """Sign a user in through the login form."""

    def do_login(user, password: str = "correct horse battery"):
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do_login


@pytest.fixture
def households(db_session) -> HouseholdFactory:
    """Valid synthetic households: ``households.create(union_code=..., members=[...])``."""
    return HouseholdFactory(db_session)


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
