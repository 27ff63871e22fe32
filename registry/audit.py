"""Writing to the append-only audit trail.

Services call :func:`record_event` with the acting user; the web layer puts the request id
and remote address into :data:`audit_context` so services never touch ``flask.request``.
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from models import AuditEvent, db
from models.user import User


@dataclass(frozen=True)
class AuditContext:
    request_id: str | None = None
    remote_addr: str | None = None


audit_context: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context",
    default=AuditContext(),  # noqa: B039 - frozen dataclass, immutable
)

SYSTEM_ACTOR = "system"


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def record_event(
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | int | None,
    *,
    summary: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one audit event to the current transaction (written with the session's next flush,
    which every query and the commit make: one INSERT for the events of a request, not one each)."""
    ctx = audit_context.get()
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else SYSTEM_ACTOR,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        summary=summary,
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=ctx.request_id,
        remote_addr=ctx.remote_addr,
    )
    db.session.add(event)
    return event


def list_events(object_type: str | None = None, object_id: str | None = None, limit: int = 100) -> list[AuditEvent]:
    """Most recent audit events, optionally for one object."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if object_type:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEvent.object_id == str(object_id))
    return list(db.session.scalars(stmt))
