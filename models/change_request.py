"""Change requests (proposed field updates), their evidence files, and duplicate-matching keys.

A change request is a proposed change to one household made against a *base version*; it
stores the operation as submitted (``payload``) and the full proposed state computed from it
(``proposed``). Only approval (``registry.change_requests.approve_change``) turns it into a
household version. ``MemberMatchKey`` rows are the blocking keys of duplicate detection
(``registry.dedup``): they live with this slice because change requests are what they serve.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, db, utcnow
from models.household import Household
from models.user import User

CHANGE_KINDS = (
    "new_household",
    "edit_household",
    "add_member",
    "edit_member",
    "remove_member",
    "change_head",
    "split",
    "deactivate",
)
CHANGE_STATUSES = ("pending", "approved", "rejected", "withdrawn", "stale")
#: Why a member leaves a household (``remove_member``).
REMOVAL_REASONS = ("death", "migration", "marriage", "duplicate", "other")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class ChangeRequest(db.Model):
    """A proposed change to a household (or a new household), and its review."""

    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint(_in("kind", CHANGE_KINDS), name="kind"),
        CheckConstraint(_in("status", CHANGE_STATUSES), name="status"),
        CheckConstraint("approvals_required IN (1, 2)", name="approvals_required"),
        # A rejection always says why (the issue: "rejected (reason required)").
        CheckConstraint("status <> 'rejected' OR decision_reason IS NOT NULL", name="rejection_reason"),
        CheckConstraint("kind = 'new_household' OR household_pk IS NOT NULL", name="household_required"),
        Index("ix_change_requests_status_union", "status", "union_code"),
        Index("ix_change_requests_household_status", "household_pk", "status"),
        Index("ix_change_requests_submitted_by", "submitted_by_id"),
        Index("ix_change_requests_submitted_at", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    #: The household changed (None for a new household until it is approved).
    household_pk: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    #: Registry id of the household (set on approval for a new household).
    household_id: Mapped[str | None] = mapped_column(String(24))
    #: The household's union (or, for a new household, the proposed one): what area scoping filters on.
    union_code: Mapped[str] = mapped_column(String(8))
    #: The household version the request was made against (None for a new household).
    base_version: Mapped[int | None] = mapped_column(Integer)
    #: The operation as submitted (kind-specific; see ``registry.change_requests``).
    payload: Mapped[dict] = mapped_column()
    #: The validated full state the household would have: {"household", "status", "inactive_reason",
    #: "members"}; a split also holds "new_household" (the state of the household split off).
    proposed: Mapped[dict] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    #: Plausibility warnings for the reviewer: [{"code", "field", "line_no", "message"}].
    warnings: Mapped[list] = mapped_column(default=list)
    #: Likely duplicate persons in other households: [{"line_no", "score", "candidate": {...}}].
    duplicate_flags: Mapped[list] = mapped_column(default=list)
    #: National IDs held by current members of other households (block approval while they last).
    nid_conflicts: Mapped[list] = mapped_column(default=list)
    #: Why a second approver is needed (empty when one approval suffices).
    risk_reasons: Mapped[list] = mapped_column(default=list)
    approvals_required: Mapped[int] = mapped_column(SmallInteger, default=1)

    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    first_approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    first_approved_at: Mapped[dt.datetime | None] = mapped_column()
    #: Who took the final decision (approved, rejected, withdrew) or whose approval found it stale.
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    #: Rejection reason, or why the request went stale.
    decision_reason: Mapped[str | None] = mapped_column(Text)
    #: The household version the approval created.
    applied_version_no: Mapped[int | None] = mapped_column(Integer)
    #: The household created by approving a split or a new household.
    new_household_pk: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    #: How many times the submitter re-based the request on a newer version.
    rebase_count: Mapped[int] = mapped_column(Integer, default=0)

    household: Mapped[Household | None] = relationship(foreign_keys=[household_pk])
    new_household: Mapped[Household | None] = relationship(foreign_keys=[new_household_pk])
    submitted_by: Mapped[User] = relationship(foreign_keys=[submitted_by_id])
    first_approved_by: Mapped[User | None] = relationship(foreign_keys=[first_approved_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    evidence: Mapped[list[ChangeRequestEvidence]] = relationship(
        back_populates="change_request", order_by="ChangeRequestEvidence.id", cascade="all, delete-orphan"
    )

    @property
    def is_high_risk(self) -> bool:
        return self.approvals_required > 1

    def __repr__(self) -> str:
        return f"<ChangeRequest {self.id} {self.kind} {self.status} {self.household_id or self.union_code}>"


class ChangeRequestEvidence(db.Model):
    """A file attached to a change request (an image or a PDF), stored on disk, not in the row."""

    __tablename__ = "change_request_evidence"
    __table_args__ = (
        CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'application/pdf')", name="content_type"),
        CheckConstraint("size_bytes > 0", name="size_bytes"),
        Index("ix_change_request_evidence_change_request_id", "change_request_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    change_request_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id", ondelete="CASCADE"))
    #: The uploader's file name (sanitised), for display and download only.
    filename: Mapped[str] = mapped_column(String(200))
    #: Detected from the file's magic bytes, never taken from the client.
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Path below the evidence root (``<change request id>/<evidence id><ext>``).
    storage_path: Mapped[str] = mapped_column(String(200))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    change_request: Mapped[ChangeRequest] = relationship(back_populates="evidence")
    uploaded_by: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<ChangeRequestEvidence {self.id} of CR {self.change_request_id}: {self.filename}>"


class MemberMatchKey(db.Model):
    """A blocking key of one current member for duplicate search: a phonetic-ish key of the given
    name combined with a parent's given name, plus the birth year. Candidates are looked up by
    ``(name_key, birth_year)`` through the index, never by scanning members."""

    __tablename__ = "member_match_keys"
    __table_args__ = (
        Index("ix_member_match_keys_key_year", "name_key", "birth_year"),
        Index("ix_member_match_keys_household_pk", "household_pk"),
        Index("ix_member_match_keys_member_id", "member_id"),
        Index("ix_member_match_keys_union_code", "union_code"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    household_pk: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    #: Copied from the household (which never changes union) so that scans filter by area without a join.
    union_code: Mapped[str] = mapped_column(String(8))
    name_key: Mapped[str] = mapped_column(String(80))
    birth_year: Mapped[int] = mapped_column(SmallInteger)

    def __repr__(self) -> str:
        return f"<MemberMatchKey {self.name_key}/{self.birth_year} member {self.member_id}>"
