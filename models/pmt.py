"""PMT model versions: a fitted, validated scorecard with its provenance and lifecycle."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow

PMT_MODEL_STATUSES = ("draft", "published", "active", "retired")


class PmtModel(db.Model):
    """One calibrated PMT model version.

    ``draft`` (just fitted, editable metadata only) → ``published`` (by a statistician other than
    the one who fitted it; immutable from then on) → ``active`` (exactly one at a time; the model
    that scores households) → ``retired`` (was active; still usable to reproduce past scores).
    """

    __tablename__ = "pmt_models"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'active', 'retired')", name="status"),
        # Exactly one active model: a partial unique index (PostgreSQL and SQLite both have them).
        Index(
            "uq_pmt_models_one_active",
            "status",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    #: The publishable linear method whose scorecard is applied to households (wls, stepwise, lasso, quantile).
    method: Mapped[str] = mapped_column(String(20))
    #: The normalised calibration spec as it was.
    spec: Mapped[dict] = mapped_column()
    #: Stratum variables (e.g. ["urban"], ["urban", "division"]).
    strata_variables: Mapped[list] = mapped_column()
    #: ``{method: {stratum: {"intercept", "coefficients": {feature: b}, ...}}}`` for every linear method fitted.
    coefficients: Mapped[dict] = mapped_column()
    #: Poverty line per stratum, Tk per person per month.
    poverty_lines: Mapped[dict] = mapped_column()
    #: Levels of categorical extra features (needed to recompute their dummies).
    extra_levels: Mapped[dict] = mapped_column(default=dict)
    feature_definition_version: Mapped[int] = mapped_column(Integer)
    training_data_hash: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[dict] = mapped_column()
    #: The validation report (metrics, per-stratum and per-group tables, warnings) as JSON.
    report: Mapped[dict] = mapped_column()
    #: Folder (under the instance folder) holding the report's HTML and PNG plots.
    report_path: Mapped[str | None] = mapped_column(String(300))
    n_households: Mapped[int] = mapped_column(Integer)
    survey_filename: Mapped[str | None] = mapped_column(String(200))

    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[dt.datetime | None] = mapped_column()
    activated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    activated_at: Mapped[dt.datetime | None] = mapped_column()
    retired_at: Mapped[dt.datetime | None] = mapped_column()

    def __repr__(self) -> str:
        return f"<PmtModel {self.id} {self.name!r} {self.status}>"
