"""Grievance cases, their timeline and the field verifications they request.

A case is a complaint about one household's data or outcome (or about payment, misconduct,
privacy). It is routed by union, assigned to a grievance officer of the area, has a service
deadline fixed when it is opened, and keeps the score and eligibility *before* and *after*
its resolution so that what it changed is on record. See ``registry/grievances.py`` and
``docs/grievances.md``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, db, utcnow

GRIEVANCE_CHANNELS = ("in_person", "hotline", "union_office", "web")
GRIEVANCE_CATEGORIES = ("exclusion", "inclusion", "data_error", "payment", "misconduct", "privacy")
#: open (received) → assigned → in_verification (field check requested) → resolved (outcome
#: recorded) → closed (resolution text for the complainant). Cases without a data question may be
#: closed straight from ``assigned``.
GRIEVANCE_STATUSES = ("open", "assigned", "in_verification", "resolved", "closed")
#: What the re-evaluation found. ``not_applicable``: no programme to evaluate against.
GRIEVANCE_OUTCOMES = ("now_eligible", "still_not_eligible", "still_eligible", "no_longer_eligible", "not_applicable")
VERIFICATION_STATUSES = ("open", "done", "cancelled")
#: changed: the field officer submitted a change request; no_change: the data was right;
#: not_found: the household could not be visited.
VERIFICATION_FINDINGS = ("changed", "no_change", "not_found")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Grievance(db.Model):
    """One grievance case."""

    __tablename__ = "grievances"
    __table_args__ = (
        CheckConstraint(_in("channel", GRIEVANCE_CHANNELS), name="channel"),
        CheckConstraint(_in("category", GRIEVANCE_CATEGORIES), name="category"),
        CheckConstraint(_in("status", GRIEVANCE_STATUSES), name="status"),
        CheckConstraint("outcome IS NULL OR " + _in("outcome", GRIEVANCE_OUTCOMES), name="outcome"),
        Index("ix_grievances_union_status", "union_code", "status"),
        Index("ix_grievances_household_pk", "household_pk"),
        Index("ix_grievances_assigned_to_id", "assigned_to_id"),
        Index("ix_grievances_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    #: The union/ward the case belongs to (the household's, or where an unregistered family lives).
    union_code: Mapped[str] = mapped_column(ForeignKey("areas.code"))
    household_pk: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("households.id"))
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programmes.id"))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("eligibility_lists.id"))
    description: Mapped[str] = mapped_column(Text)
    #: Complainant contact: shown only to the assigned grievance officer (``registry.grievances``).
    complainant_name: Mapped[str | None] = mapped_column(String(120))
    complainant_phone: Mapped[str | None] = mapped_column(String(20))

    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The service deadline, fixed at intake so that a later configuration change does not move it.
    due_at: Mapped[dt.datetime] = mapped_column()
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[dt.datetime | None] = mapped_column()

    # The household's state when the case was opened ...
    household_version_before: Mapped[int | None] = mapped_column(Integer)
    score_run_before_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"))
    score_before: Mapped[float | None] = mapped_column(Float)
    eligible_before: Mapped[bool | None] = mapped_column()
    # ... and when it was resolved.
    household_version_after: Mapped[int | None] = mapped_column(Integer)
    score_run_after_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"))
    score_after: Mapped[float | None] = mapped_column(Float)
    eligible_after: Mapped[bool | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(24))
    #: How the outcome was reached: rule evaluated, criteria met, the change request applied.
    outcome_detail: Mapped[dict | None] = mapped_column()
    resolved_at: Mapped[dt.datetime | None] = mapped_column()
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    resolution_text: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    events: Mapped[list[GrievanceEvent]] = relationship(
        back_populates="grievance", order_by="GrievanceEvent.id", cascade="all, delete-orphan"
    )
    verifications: Mapped[list[VerificationTask]] = relationship(
        back_populates="grievance", order_by="VerificationTask.id", cascade="all, delete-orphan"
    )

    @property
    def reference(self) -> str:
        """What the complainant quotes."""
        return f"GR-{self.id:06d}"

    def __repr__(self) -> str:
        return f"<Grievance {self.id} {self.category} {self.status}>"


class GrievanceEvent(db.Model):
    """One step of a case's timeline (append-only, like the audit trail it mirrors)."""

    __tablename__ = "grievance_events"
    __table_args__ = (Index("ix_grievance_events_grievance", "grievance_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    grievance_id: Mapped[int] = mapped_column(ForeignKey("grievances.id", ondelete="CASCADE"))
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column()

    grievance: Mapped[Grievance] = relationship(back_populates="events")

    def __repr__(self) -> str:
        return f"<GrievanceEvent {self.grievance_id}/{self.id} {self.kind}>"


class VerificationTask(db.Model):
    """A field verification a grievance officer requested from the area's enumerators."""

    __tablename__ = "verification_tasks"
    __table_args__ = (
        CheckConstraint(_in("status", VERIFICATION_STATUSES), name="status"),
        CheckConstraint("finding IS NULL OR " + _in("finding", VERIFICATION_FINDINGS), name="finding"),
        Index("ix_verification_tasks_union_status", "union_code", "status"),
        Index("ix_verification_tasks_grievance_id", "grievance_id"),
        Index("ix_verification_tasks_change_request_id", "change_request_id"),
        # Every approval looks up open verifications of its household (registry.grievances hook).
        Index("ix_verification_tasks_household_pk", "household_pk"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    grievance_id: Mapped[int] = mapped_column(ForeignKey("grievances.id", ondelete="CASCADE"))
    household_pk: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("households.id"))
    union_code: Mapped[str] = mapped_column(ForeignKey("areas.code"))
    status: Mapped[str] = mapped_column(String(12), default="open")
    instructions: Mapped[str] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The change request the field officer submitted for this verification.
    change_request_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("change_requests.id"))
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    finding: Mapped[str | None] = mapped_column(String(12))
    finding_note: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    grievance: Mapped[Grievance] = relationship(back_populates="verifications")

    def __repr__(self) -> str:
        return f"<VerificationTask {self.id} grievance {self.grievance_id} {self.status}>"
