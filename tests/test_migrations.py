"""The migration chain: one head, and upgrade → downgrade → upgrade on a fresh database."""

import os
import uuid

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy.engine import make_url

from config import PROJECT_ROOT
from web.app import create_app


def test_single_migration_head():
    config = Config(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}"


def _fresh_url(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrations.sqlite3'}", None
    url = make_url(database_url)
    name = f"socreg_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), (admin, name)


def _tables(engine):
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(database_url, tmp_path):
    url, cleanup = _fresh_url(database_url, tmp_path)
    os.environ.setdefault("SOCREG_INSTANCE_PATH", str(tmp_path))
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    from models import db

    try:
        with app.app_context():
            upgrade()
            full = _tables(db.engine)
            assert {"households", "members", "household_versions", "areas", "users", "audit_events"} <= full
            downgrade(revision="base")
            assert _tables(db.engine) == set()
            upgrade()
            assert _tables(db.engine) == full
            db.engine.dispose()
    finally:
        if cleanup:
            admin, name = cleanup
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_models_match_migrations(app, db_session):
    """Autogenerate finds nothing to do: every model change has its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from models import db

    context = MigrationContext.configure(db_session.connection(), opts={"compare_type": False})
    diff = [d for d in compare_metadata(context, db.metadata) if d[0] not in ("remove_table",)]
    assert diff == []
