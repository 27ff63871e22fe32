"""Households, members and immutable household versions.

``households`` and ``members`` hold the *current* state with typed, indexed columns (what
scoring and eligibility read in one set-based pass); ``household_versions`` holds every
accepted state as an immutable JSON snapshot (what history, "as of" reads and diffs use).
Both are written in the same transaction; see ``docs/architecture.md``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, db, utcnow
from models.codes import HOUSEHOLD_FIELDS, MEMBER_FIELDS, FieldSpec

HOUSEHOLD_STATUSES = ("active", "inactive")
DEACTIVATION_REASONS = ("dissolved", "duplicate", "migrated")


def spec_checks(specs: tuple[FieldSpec, ...], skip: tuple[str, ...] = ()) -> list[CheckConstraint]:
    """CHECK constraints mirroring the field specs, so that no other path lets a bad code in."""
    checks = []
    for spec in specs:
        if spec.name in skip:
            continue
        col = spec.name
        if spec.kind == "code":
            expr = f"{col} IN ({', '.join(str(c) for c in spec.codes)})"
        elif spec.kind in ("int", "decimal") and (spec.min is not None or spec.max is not None):
            parts = []
            if spec.min is not None:
                parts.append(f"{col} >= {spec.min:g}")
            if spec.max is not None:
                parts.append(f"{col} <= {spec.max:g}")
            expr = " AND ".join(parts)
        elif spec.kind == "pattern" and spec.name == "nid_number":
            expr = f"length({col}) IN (10, 13, 17)"
        elif spec.kind == "pattern" and spec.name == "birth_reg_number":
            expr = f"length({col}) = 17"
        elif spec.kind == "pattern" and spec.name == "mobile_number":
            expr = f"length({col}) = 11 AND substr({col}, 1, 2) = '01'"
        else:
            continue
        checks.append(CheckConstraint(f"{col} IS NULL OR ({expr})", name=col))
    return checks


class Household(db.Model):
    """The current state of one household. ``household_id`` is the stable registry id."""

    __tablename__ = "households"
    __table_args__ = (
        *spec_checks(HOUSEHOLD_FIELDS, skip=("household_id", "union_code")),
        CheckConstraint("status IN ('active', 'inactive')", name="status"),
        CheckConstraint("current_version >= 1", name="current_version"),
        CheckConstraint(
            "inactive_reason IS NULL OR inactive_reason IN ('dissolved', 'duplicate', 'migrated')",
            name="inactive_reason",
        ),
        Index("ix_households_union_code", "union_code"),
        Index("ix_households_upazila_code", "upazila_code"),
        Index("ix_households_district_code", "district_code"),
        Index("ix_households_division_code", "division_code"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(String(24), unique=True)
    union_code: Mapped[str] = mapped_column(ForeignKey("areas.code"))
    # Derived from union_code (BBS codes are concatenated) and kept for indexed area filters.
    upazila_code: Mapped[str] = mapped_column(String(6))
    district_code: Mapped[str] = mapped_column(String(4))
    division_code: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10), default="active")
    inactive_reason: Mapped[str | None] = mapped_column(String(20))
    #: The household version this row reflects; also SQLAlchemy's optimistic-lock column.
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    area_type: Mapped[int] = mapped_column(SmallInteger)
    village: Mapped[str | None] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    interview_date: Mapped[dt.date] = mapped_column(Date)
    enumerator_id: Mapped[str | None] = mapped_column(String(40))
    questionnaire_version: Mapped[str | None] = mapped_column(String(20))
    dwelling_structure: Mapped[int] = mapped_column(SmallInteger)
    wall_material: Mapped[int] = mapped_column(SmallInteger)
    roof_material: Mapped[int] = mapped_column(SmallInteger)
    floor_material: Mapped[int] = mapped_column(SmallInteger)
    rooms: Mapped[int] = mapped_column(Integer)
    tenure: Mapped[int] = mapped_column(SmallInteger)
    toilet_type: Mapped[int] = mapped_column(SmallInteger)
    toilet_shared: Mapped[bool] = mapped_column(Boolean)
    water_source: Mapped[int] = mapped_column(SmallInteger)
    electricity: Mapped[int] = mapped_column(SmallInteger)
    cooking_fuel: Mapped[int] = mapped_column(SmallInteger)
    land_homestead_decimal: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    land_cultivable_decimal: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    cattle: Mapped[int] = mapped_column(Integer)
    goats_sheep: Mapped[int] = mapped_column(Integer)
    poultry: Mapped[int] = mapped_column(Integer)
    asset_tv: Mapped[bool] = mapped_column(Boolean)
    asset_refrigerator: Mapped[bool] = mapped_column(Boolean)
    asset_mobile_phone: Mapped[bool] = mapped_column(Boolean)
    asset_smartphone: Mapped[bool] = mapped_column(Boolean)
    asset_motorcycle: Mapped[bool] = mapped_column(Boolean)
    asset_bicycle: Mapped[bool] = mapped_column(Boolean)
    asset_rickshaw_van: Mapped[bool] = mapped_column(Boolean)
    asset_sewing_machine: Mapped[bool] = mapped_column(Boolean)
    asset_shallow_pump: Mapped[bool] = mapped_column(Boolean)
    asset_computer: Mapped[bool] = mapped_column(Boolean)
    remittance_received: Mapped[bool] = mapped_column(Boolean)
    remittance_amount_12m: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    main_income_source: Mapped[int] = mapped_column(SmallInteger)
    shock_flood: Mapped[bool] = mapped_column(Boolean)
    shock_cyclone: Mapped[bool] = mapped_column(Boolean)
    shock_river_erosion: Mapped[bool] = mapped_column(Boolean)
    shock_drought: Mapped[bool] = mapped_column(Boolean)
    shock_illness_death: Mapped[bool] = mapped_column(Boolean)
    shock_job_loss: Mapped[bool] = mapped_column(Boolean)
    shock_crop_loss: Mapped[bool] = mapped_column(Boolean)
    shock_other: Mapped[bool] = mapped_column(Boolean)
    #: ';'-separated safety-net programme codes (``codes.SAFETY_NET_PROGRAMMES``), sorted.
    safety_net_benefits: Mapped[str | None] = mapped_column(String(100))
    bank_or_mfs_account: Mapped[bool] = mapped_column(Boolean)
    consent_given: Mapped[bool] = mapped_column(Boolean)
    consent_date: Mapped[dt.date | None] = mapped_column(Date)

    members: Mapped[list[Member]] = relationship(
        back_populates="household", order_by="Member.line_no", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": current_version, "version_id_generator": False}

    def __repr__(self) -> str:
        return f"<Household {self.household_id} v{self.current_version}>"


class Member(db.Model):
    """A current member of a household, identified within it by ``line_no``."""

    __tablename__ = "members"
    __table_args__ = (
        *spec_checks(MEMBER_FIELDS, skip=("household_id",)),
        CheckConstraint("name_bn IS NOT NULL OR name_en IS NOT NULL", name="has_name"),
        # Also the index for "the members of a household" (its leading column).
        UniqueConstraint("household_pk", "line_no"),
        # A national ID belongs to one current member; conflicts are resolved before approval.
        Index("uq_members_nid_number", "nid_number", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    household_pk: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(SmallInteger)
    name_bn: Mapped[str | None] = mapped_column(String(120))
    name_en: Mapped[str | None] = mapped_column(String(120))
    father_name: Mapped[str | None] = mapped_column(String(120))
    mother_name: Mapped[str | None] = mapped_column(String(120))
    spouse_name: Mapped[str | None] = mapped_column(String(120))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    #: Always present: entered, or derived from date_of_birth at the interview date.
    age_years: Mapped[int] = mapped_column(SmallInteger)
    sex: Mapped[int] = mapped_column(SmallInteger)
    relation_to_head: Mapped[int] = mapped_column(SmallInteger)
    marital_status: Mapped[int] = mapped_column(SmallInteger)
    religion: Mapped[int] = mapped_column(SmallInteger)
    ethnicity: Mapped[int] = mapped_column(SmallInteger)
    education_level: Mapped[int] = mapped_column(SmallInteger)
    currently_enrolled: Mapped[bool] = mapped_column(Boolean)
    occupation: Mapped[int] = mapped_column(SmallInteger)
    disability_seeing: Mapped[int | None] = mapped_column(SmallInteger)
    disability_hearing: Mapped[int | None] = mapped_column(SmallInteger)
    disability_walking: Mapped[int | None] = mapped_column(SmallInteger)
    disability_cognition: Mapped[int | None] = mapped_column(SmallInteger)
    disability_self_care: Mapped[int | None] = mapped_column(SmallInteger)
    disability_communication: Mapped[int | None] = mapped_column(SmallInteger)
    pregnant_or_lactating: Mapped[bool] = mapped_column(Boolean)
    nid_number: Mapped[str | None] = mapped_column(String(17))
    birth_reg_number: Mapped[str | None] = mapped_column(String(17))
    mobile_number: Mapped[str | None] = mapped_column(String(11))

    household: Mapped[Household] = relationship(back_populates="members")

    def __repr__(self) -> str:
        return f"<Member {self.household_pk}/{self.line_no}>"


class HouseholdVersion(db.Model):
    """One immutable accepted state of a household: its fields and members as a JSON snapshot."""

    __tablename__ = "household_versions"
    __table_args__ = (
        UniqueConstraint("household_pk", "version_no"),
        CheckConstraint("version_no >= 1", name="version_no"),
        CheckConstraint("snapshot IS NOT NULL OR version_no = 1", name="snapshot_stored"),
        Index("ix_household_versions_household_created", "household_pk", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    household_pk: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    version_no: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Why this version exists: "import", "change_request", "demo", ...
    source: Mapped[str] = mapped_column(String(30))
    #: The import job or change request that produced it.
    source_ref: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    #: {"household": {...fields...}, "members": [{...}, ...]}, values JSON-encoded. NULL only for a
    #: bulk-imported version 1 that is still current: its state is the current tables, and the change
    #: that makes version 2 stores it first. Read versions through ``registry.households``, which
    #: fills it in.
    snapshot: Mapped[dict | None] = mapped_column(
        JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
    )

    household: Mapped[Household] = relationship()

    def __repr__(self) -> str:
        return f"<HouseholdVersion {self.household_pk} v{self.version_no}>"
