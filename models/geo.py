"""Geographic areas: the BBS division → district → upazila → union/ward hierarchy."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db


class Area(db.Model):
    """One administrative unit with its BBS geo-code (2, 4, 6 or 8 digits by level)."""

    __tablename__ = "areas"
    __table_args__ = (
        CheckConstraint("level IN ('division', 'district', 'upazila', 'union')", name="level"),
        CheckConstraint("area_type IS NULL OR area_type IN (1, 2, 3)", name="area_type"),
        CheckConstraint(
            "(level = 'division' AND length(code) = 2) OR (level = 'district' AND length(code) = 4)"
            " OR (level = 'upazila' AND length(code) = 6) OR (level = 'union' AND length(code) = 8)",
            name="code_length",
        ),
        Index("ix_areas_parent_code", "parent_code"),
        Index("ix_areas_level", "level"),
    )

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("areas.code"))
    name_en: Mapped[str] = mapped_column(String(120))
    name_bn: Mapped[str | None] = mapped_column(String(120))
    #: For union-level units: 1 rural union, 2 urban paurashava, 3 city corporation ward.
    area_type: Mapped[int | None] = mapped_column(SmallInteger)
    #: union / paurashava / ward / upazila / metro_thana / district / division.
    unit_type: Mapped[str] = mapped_column(String(20))
    #: current / metro_thana_2011 / added_post_2011 / renamed_recoded (upazilas); current otherwise.
    status: Mapped[str] = mapped_column(String(20), default="current")

    def __repr__(self) -> str:
        return f"<Area {self.code} {self.level} {self.name_en!r}>"
