import pytest

from config import ConfigError, get_config
from web.app import create_app


def test_production_refuses_to_start_without_secret_key(monkeypatch):
    monkeypatch.delenv("SOCREG_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SOCREG_SECRET_KEY is not set"):
        create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_refuses_a_short_secret_key(monkeypatch):
    monkeypatch.setenv("SOCREG_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_starts_with_a_long_secret(monkeypatch):
    monkeypatch.setenv("SOCREG_SECRET_KEY", "x" * 48)
    app = create_app("production", SQLALCHEMY_DATABASE_URI="sqlite://")
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_unknown_environment_is_named():
    with pytest.raises(ConfigError, match="'staging' is not one of"):
        get_config("staging")


def test_default_database_is_sqlite_in_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SOCREG_DATABASE_URL", raising=False)
    monkeypatch.setenv("SOCREG_INSTANCE_PATH", str(tmp_path))
    app = create_app("development")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/socreg.sqlite3"
