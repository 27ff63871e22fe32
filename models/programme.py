"""Programmes, their eligibility rules, and the frozen eligibility lists built from them.

A :class:`Programme` is a ministry's definition (scope, PMT targeting rule, extra criteria,
exclusions, quotas) and may change over time (``version`` counts its edits). An
:class:`EligibilityList` is an immutable snapshot: the definition *as it was*, the model and
score run used, the data as-of time and one :class:`EligibilityListEntry` per selected
household, in rank order, with the facts that explain its selection. See
``targeting/eligibility.py`` for how lists are built.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, db, utcnow

PROGRAMME_STATUSES = ("active", "archived")


class Programme(db.Model):
    """A safety-net programme and its current eligibility definition."""

    __tablename__ = "programmes"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'archived')", name="status"),
        CheckConstraint(
            "objection_days IS NULL OR (objection_days >= 1 AND objection_days <= 365)", name="objection_days"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: The owner ministry; programme officers of this ministry manage the programme.
    ministry: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="active")
    #: BBS codes (any level) the programme covers; empty = national.
    scope_areas: Mapped[list] = mapped_column(default=list)
    #: The PMT targeting rule (``targeting.rules``): poverty line, cut-off or poorest X% (by area).
    targeting: Mapped[dict] = mapped_column()
    #: Extra criteria as a rule tree (all/any/not over household and member attributes), or None.
    criteria: Mapped[dict | None] = mapped_column()
    #: ``{"programmes": [ids], "benefits": [safety-net codes]}``.
    exclusions: Mapped[dict] = mapped_column(default=dict)
    #: ``{"level": "union"|"upazila", "per_area": N, "total": M}`` (each optional).
    quotas: Mapped[dict] = mapped_column(default=dict)
    #: Community validation: the days a published list stays open for objections (None: the configured
    #: default, ``COMMUNITY_OBJECTION_DAYS`` = 30). Set by ``targeting.community_validation``; not part of
    #: the eligibility rule, so changing it does not bump ``version``.
    objection_days: Mapped[int | None] = mapped_column(Integer)
    #: Bumped by every edit; each list records the version it was built from.
    version: Mapped[int] = mapped_column(Integer, default=1)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    def __repr__(self) -> str:
        return f"<Programme {self.id} {self.name!r} v{self.version}>"


class EligibilityList(db.Model):
    """A frozen, reproducible eligibility list of one programme."""

    __tablename__ = "eligibility_lists"
    __table_args__ = (
        UniqueConstraint("programme_id", "number"),
        Index("ix_eligibility_lists_programme", "programme_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id"))
    #: 1, 2, 3… within the programme.
    number: Mapped[int] = mapped_column(Integer)
    #: "built" when made; later stages (community validation) may advance it.
    status: Mapped[str] = mapped_column(String(20), default="built")
    #: The programme definition as it was (scope, targeting, criteria, exclusions with the exact
    #: lists they referred to, quotas), normalised.
    definition: Mapped[dict] = mapped_column()
    #: SHA-256 of the canonical JSON of ``definition``: equal hashes = same rule.
    definition_hash: Mapped[str] = mapped_column(String(64))
    programme_version: Mapped[int] = mapped_column(Integer)
    #: Labels of the top-level criteria; ``EligibilityListEntry.criteria_met`` is a bitmask over them.
    criteria_labels: Mapped[list] = mapped_column(default=list)
    #: The area level of ``EligibilityListEntry.local_rank``.
    local_level: Mapped[str] = mapped_column(String(10))
    model_id: Mapped[int] = mapped_column(ForeignKey("pmt_models.id"))
    score_run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id"))
    #: The data as-of time: when the build read the registry.
    as_of: Mapped[dt.datetime] = mapped_column()
    built_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    built_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Set when the list was rebuilt from another list's frozen inputs.
    rebuilt_from_id: Mapped[int | None] = mapped_column(ForeignKey("eligibility_lists.id"))
    #: Households at each step: scored in scope, meeting the PMT rule, eligible, selected.
    funnel: Mapped[dict] = mapped_column(default=dict)
    n_entries: Mapped[int] = mapped_column(Integer, default=0)
    #: SHA-256 over the ordered entries (registry id, versions, criteria met): equal = identical list.
    entries_hash: Mapped[str] = mapped_column(String(64))
    build_seconds: Mapped[float | None] = mapped_column(Float)

    programme: Mapped[Programme] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<EligibilityList {self.id} programme {self.programme_id} #{self.number} ({self.n_entries})>"


class EligibilityListEntry(db.Model):
    """One selected household of a list, with the facts that explain its place."""

    __tablename__ = "eligibility_list_entries"
    __table_args__ = (
        UniqueConstraint("list_id", "position"),
        Index("ix_eligibility_list_entries_household", "household_pk"),
        Index("ix_eligibility_list_entries_list_union", "list_id", "union_code"),
    )

    # No foreign keys: a build writes tens of thousands of entries at once and each key would cost a
    # trigger check per row (half of the write; migration 0009). Entries are written only by the
    # list builders, from ``households`` in the build's transaction, for the list they just created;
    # households are never deleted, and lists are never deleted by the application.
    #: ``eligibility_lists.id``
    list_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: ``households.id``
    household_pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    #: 1 = first served (poorest by predicted consumption; ties by registry id).
    position: Mapped[int] = mapped_column(Integer)
    #: The household version whose data the criteria were evaluated on.
    household_version: Mapped[int] = mapped_column(Integer)
    #: The household version the score was computed from.
    scored_version: Mapped[int] = mapped_column(Integer)
    #: Where the household lived when the list was built (frozen).
    union_code: Mapped[str] = mapped_column(String(8))
    area_type: Mapped[int] = mapped_column(SmallInteger)
    head_sex: Mapped[int | None] = mapped_column(SmallInteger)
    score: Mapped[float] = mapped_column(Float)
    predicted_log_pc: Mapped[float] = mapped_column(Float)
    below_poverty_line: Mapped[bool] = mapped_column(Boolean)
    national_rank: Mapped[int | None] = mapped_column(Integer)
    #: Rank within the household's area at the list's ``local_level``.
    local_rank: Mapped[int | None] = mapped_column(Integer)
    #: Bit i set = the household met top-level criterion i (``EligibilityList.criteria_labels``).
    criteria_met: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"<EligibilityListEntry list {self.list_id} #{self.position} household {self.household_pk}>"
