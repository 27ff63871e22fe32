import pytest
from sqlalchemy import select

from models import ApiToken, AuditEvent
from registry.geo import UnknownAreaError
from registry.users import UserError, create_user, issue_token, user_for_token, verify_password


def test_password_is_hashed_with_argon2id(make_user):
    user = make_user("supervisor", areas=["30"])
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert verify_password(user, "correct horse battery")
    assert not verify_password(user, "wrong password!!")


def test_unknown_role_and_area_are_refused(db_session):
    with pytest.raises(UserError, match="unknown role 'boss'"):
        create_user("x1", "boss", "long enough password")
    with pytest.raises(UnknownAreaError, match="'99'"):
        create_user("x2", "supervisor", "long enough password", area_codes=["99"])
    with pytest.raises(UserError, match="at least 10"):
        create_user("x3", "viewer", "short")


def test_duplicate_username_is_refused(make_user):
    make_user("viewer", username="same")
    with pytest.raises(UserError, match="already exists"):
        make_user("viewer", username="same")


def test_tokens_are_stored_hashed_and_resolve_to_their_user(make_user, db_session):
    user = make_user("statistician")
    token = issue_token(user)
    stored = db_session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert token not in stored.token_hash and len(stored.token_hash) == 64
    assert user_for_token(token) is user
    assert user_for_token(token + "x") is None
    assert user_for_token("") is None


def test_user_creation_is_audited(make_user, db_session):
    user = make_user("admin")
    event = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "user.create", AuditEvent.object_id == str(user.id))
    )
    assert event is not None and event.after["role"] == "admin"


def test_token_use_is_recorded_coarsely(db_session, make_user):
    from registry import users

    user = make_user("viewer")
    token = users.issue_token(user)
    assert users.user_for_token(token) == user
    stored = db_session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    first = stored.last_used_at
    assert first is not None
    assert users.user_for_token(token) == user and stored.last_used_at == first  # no write per request
    stored.last_used_at = first - users.TOKEN_USE_RESOLUTION
    assert users.user_for_token(token) == user and stored.last_used_at > first - users.TOKEN_USE_RESOLUTION
