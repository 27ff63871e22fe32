"""Users, password hashing (argon2id) and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from models import ApiToken, Area, User, db
from models.base import utcnow
from models.codes import ROLES
from registry.audit import record_event
from registry.geo import UnknownAreaError

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "sr_"

_hasher = PasswordHasher()


class UserError(ValueError):
    """A user operation was refused; the message says why."""


def configure_password_hashing(time_cost: int | None = None, memory_cost: int | None = None) -> None:
    """Tune argon2 (the app factory lowers the cost for the test suite only)."""
    global _hasher
    kwargs = {}
    if time_cost:
        kwargs["time_cost"] = time_cost
    if memory_cost:
        kwargs["memory_cost"] = memory_cost
    _hasher = PasswordHasher(**kwargs)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is the user's; rehashes transparently when parameters changed."""
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def get_user_by_username(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))


def create_user(
    username: str,
    role: str,
    password: str,
    *,
    area_codes: Iterable[str] = (),
    full_name: str | None = None,
    actor: User | None = None,
) -> User:
    """Create a user with one role and its assigned areas (flushes, does not commit)."""
    username = (username or "").strip()
    if not username or len(username) > 80:
        raise UserError("username must be 1-80 characters")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if get_user_by_username(username) is not None:
        raise UserError(f"user {username!r} already exists")
    areas = []
    for code in area_codes:
        area = db.session.get(Area, code)
        if area is None:
            raise UnknownAreaError(code)
        areas.append(area)
    user = User(username=username, role=role, full_name=full_name, password_hash=hash_password(password), areas=areas)
    db.session.add(user)
    db.session.flush()
    record_event(
        actor,
        "user.create",
        "user",
        user.id,
        summary=f"created user {username} with role {role}",
        after={"username": username, "role": role, "areas": [a.code for a in areas]},
    )
    return user


def issue_token(user: User, actor: User | None = None) -> str:
    """Create an API token for ``user`` and return it; only its digest is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_digest(token), prefix=token[:10]))
    db.session.flush()
    record_event(actor, "token.issue", "user", user.id, summary=f"API token {token[:10]}… issued for {user.username}")
    return token


#: ``ApiToken.last_used_at`` is refreshed at most this often.
TOKEN_USE_RESOLUTION = dt.timedelta(minutes=5)


#: One round trip for the token, its user and the user's areas (which every area check reads).
#: Every API request starts here, so the statement is built once, not per request.
_TOKEN_OWNER = (
    select(ApiToken)
    .options(joinedload(ApiToken.user).joinedload(User.areas))
    .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
)


def user_for_token(token: str) -> User | None:
    """The active user owning a valid, unrevoked token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    api_token = db.session.execute(_TOKEN_OWNER, {"digest": _digest(token)}).unique().scalar_one_or_none()
    if api_token is None or not api_token.user.is_active:
        return None
    now = utcnow()
    # Coarse on purpose: a write on every API call would cost each request an UPDATE for a field
    # that only answers "is this token still in use?".
    if api_token.last_used_at is None or now - api_token.last_used_at >= TOKEN_USE_RESOLUTION:
        api_token.last_used_at = now
    return api_token.user


def _digest(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast digest is enough (no KDF needed).
    return hashlib.sha256(token.encode()).hexdigest()
