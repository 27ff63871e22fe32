"""Community validation of eligibility lists (not to be confused with data validation in
``registry/validation.py``).

A list is *published* per union/ward for an objection window; *objections* (inclusion: "should
not be on the list", exclusion: "poor and missing") are recorded on behalf of community members
with evidence; the committee's *decision* on each is recorded; *finalising* derives a validated
list whose every difference from the published one points to the decision behind it
(``validated_list_changes``). See ``targeting/community_validation.py``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, db, utcnow

PUBLICATION_STATUSES = ("open", "finalised")
OBJECTION_KINDS = ("inclusion", "exclusion")
DECISION_OUTCOMES = ("upheld", "dismissed")
LIST_CHANGES = ("added", "removed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class ListPublication(db.Model):
    """An eligibility list published in one union/ward for objections."""

    __tablename__ = "list_publications"
    __table_args__ = (
        UniqueConstraint("list_id", "union_code"),
        CheckConstraint(_in("status", PUBLICATION_STATUSES), name="status"),
        CheckConstraint("objection_days >= 1 AND objection_days <= 365", name="objection_days"),
        Index("ix_list_publications_union_code", "union_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("eligibility_lists.id"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    union_code: Mapped[str] = mapped_column(ForeignKey("areas.code"))
    status: Mapped[str] = mapped_column(String(12), default="open")
    #: Households of the list in this union when it was published.
    n_entries: Mapped[int] = mapped_column(Integer)
    objection_days: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Objections are accepted until this moment (published_at + objection_days).
    objection_deadline: Mapped[dt.datetime] = mapped_column()
    #: Printed on the notice: where and how community members can object.
    how_to_object: Mapped[str] = mapped_column(Text)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    finalised_at: Mapped[dt.datetime | None] = mapped_column()
    finalised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The validated list created when this publication was finalised.
    validated_list_id: Mapped[int | None] = mapped_column(ForeignKey("eligibility_lists.id"))

    objections: Mapped[list[Objection]] = relationship(back_populates="publication", order_by="Objection.id")

    def __repr__(self) -> str:
        return f"<ListPublication {self.id} list {self.list_id} union {self.union_code} {self.status}>"


class Objection(db.Model):
    """An objection to a published list, recorded on behalf of a community member."""

    __tablename__ = "objections"
    __table_args__ = (
        CheckConstraint(_in("kind", OBJECTION_KINDS), name="kind"),
        # An inclusion objection names a household on the list; an exclusion names a registered
        # household or describes a family not registered yet.
        CheckConstraint(
            "household_pk IS NOT NULL OR (kind = 'exclusion' AND family_head_name IS NOT NULL)", name="subject"
        ),
        Index("ix_objections_publication_id", "publication_id"),
        Index("ix_objections_household_pk", "household_pk"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("list_publications.id"))
    kind: Mapped[str] = mapped_column(String(12))
    household_pk: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("households.id"))
    # A family not in the registry (exclusion only).
    family_head_name: Mapped[str | None] = mapped_column(String(120))
    family_father_or_husband_name: Mapped[str | None] = mapped_column(String(120))
    family_village: Mapped[str | None] = mapped_column(String(120))
    #: The new-household change request that registers that family.
    change_request_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("change_requests.id"))
    reason: Mapped[str] = mapped_column(Text)
    #: Who objected (kept private like a complainant's contact; may be empty: anonymous objection).
    objector_name: Mapped[str | None] = mapped_column(String(120))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    publication: Mapped[ListPublication] = relationship(back_populates="objections")
    decision: Mapped[ObjectionDecision | None] = relationship(back_populates="objection", uselist=False)
    evidence: Mapped[list[ObjectionEvidence]] = relationship(order_by="ObjectionEvidence.id")

    def __repr__(self) -> str:
        return f"<Objection {self.id} {self.kind} publication {self.publication_id}>"


class ObjectionDecision(db.Model):
    """The committee's decision on one objection."""

    __tablename__ = "objection_decisions"
    __table_args__ = (CheckConstraint(_in("outcome", DECISION_OUTCOMES), name="outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    objection_id: Mapped[int] = mapped_column(ForeignKey("objections.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(12))
    meeting_date: Mapped[dt.date] = mapped_column(Date)
    #: The committee's minute or resolution number.
    reference: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    objection: Mapped[Objection] = relationship(back_populates="decision")

    def __repr__(self) -> str:
        return f"<ObjectionDecision {self.id} objection {self.objection_id} {self.outcome}>"


class ObjectionEvidence(db.Model):
    """A file supporting an objection (image or PDF), stored on disk below the upload folder."""

    __tablename__ = "objection_evidence"
    __table_args__ = (
        CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'application/pdf')", name="content_type"),
        CheckConstraint("size_bytes > 0", name="size_bytes"),
        Index("ix_objection_evidence_objection_id", "objection_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    objection_id: Mapped[int] = mapped_column(ForeignKey("objections.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200))
    #: Detected from the file's magic bytes, never taken from the client.
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Path below the objection evidence root (``<objection id>/<evidence id><ext>``).
    storage_path: Mapped[str] = mapped_column(String(200))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ObjectionEvidence {self.id} of objection {self.objection_id}: {self.filename}>"


class ValidatedListChange(db.Model):
    """One difference between a validated list and the list it was derived from, and the decision
    that made it."""

    __tablename__ = "validated_list_changes"
    __table_args__ = (
        UniqueConstraint("list_id", "household_pk"),
        CheckConstraint(_in("change", LIST_CHANGES), name="change"),
        Index("ix_validated_list_changes_source_list_id", "source_list_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The validated list.
    list_id: Mapped[int] = mapped_column(ForeignKey("eligibility_lists.id", ondelete="CASCADE"))
    #: The published list it was derived from.
    source_list_id: Mapped[int] = mapped_column(ForeignKey("eligibility_lists.id"))
    household_pk: Mapped[int] = mapped_column(BigIntPK, ForeignKey("households.id"))
    change: Mapped[str] = mapped_column(String(8))
    decision_id: Mapped[int] = mapped_column(ForeignKey("objection_decisions.id"))
    publication_id: Mapped[int] = mapped_column(ForeignKey("list_publications.id"))

    def __repr__(self) -> str:
        return f"<ValidatedListChange list {self.list_id} household {self.household_pk} {self.change}>"


class ValidatedList(db.Model):
    """Marks an eligibility list as the validated version of a published one, and which
    publications' decisions it applies (every finalised publication of the source list so far)."""

    __tablename__ = "validated_lists"

    list_id: Mapped[int] = mapped_column(ForeignKey("eligibility_lists.id", ondelete="CASCADE"), primary_key=True)
    source_list_id: Mapped[int] = mapped_column(ForeignKey("eligibility_lists.id"), index=True)
    #: Ids of the finalised publications whose decisions this list applies.
    publication_ids: Mapped[list] = mapped_column()
    n_added: Mapped[int] = mapped_column(Integer, default=0)
    n_removed: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ValidatedList {self.list_id} from {self.source_list_id} (+{self.n_added} -{self.n_removed})>"
