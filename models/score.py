"""PMT scores of household versions, grouped into score runs.

A *score run* scores households with one model version. Readers use the latest *complete*
full run of the active model, so a re-score in progress is invisible until it completes
(readers never see a half-scored registry); older runs stay readable, which keeps every
eligibility list reproducible.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, db, utcnow

SCORE_RUN_STATUSES = ("running", "complete", "failed", "superseded")


class ScoreRun(db.Model):
    """One scoring pass of the registry (or of one area) with one model version."""

    __tablename__ = "score_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'complete', 'failed', 'superseded', 'pruned')", name="status"),
        Index("ix_score_runs_model_status", "model_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("pmt_models.id"))
    status: Mapped[str] = mapped_column(String(12), default="running")
    #: Area code the run was limited to; None for a full (national) run.
    area_code: Mapped[str | None] = mapped_column(String(8))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    households_scored: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    error: Mapped[str | None] = mapped_column(String(2000))

    def __repr__(self) -> str:
        return f"<ScoreRun {self.id} model {self.model_id} {self.status}>"


class HouseholdScore(db.Model):
    """The score of one household version under one model, within one score run."""

    __tablename__ = "household_scores"
    # No foreign keys and no secondary index: a full run writes a million rows at once, and each
    # foreign key would cost a trigger check per row (migration 0009 has the measurements). Every
    # read names the run, so the primary key serves them. Only ``targeting.scoring`` writes here:
    # keys come from ``households`` in the run's transaction and ``model_id`` is the run's model.
    # Runs are never deleted by the application; whoever deletes one deletes its rows first.

    #: ``score_runs.id``
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: ``households.id``
    household_pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    household_version: Mapped[int] = mapped_column(Integer)
    #: ``pmt_models.id`` (the run's model)
    model_id: Mapped[int] = mapped_column(Integer)
    stratum: Mapped[str] = mapped_column(String(60))
    #: Predicted log per-capita consumption (Tk/month).
    predicted_log_pc: Mapped[float] = mapped_column(Float)
    #: 0-100 display score (see docs/pmt.md for the mapping); higher = better off.
    score: Mapped[float] = mapped_column(Float)
    #: Whether the prediction falls below the poverty line of the household's stratum.
    below_poverty_line: Mapped[bool] = mapped_column()
    # Ranks: 1 = poorest (lowest predicted consumption); ties broken by household id.
    national_rank: Mapped[int | None] = mapped_column(Integer)
    national_percentile: Mapped[float | None] = mapped_column(Float)
    division_rank: Mapped[int | None] = mapped_column(Integer)
    district_rank: Mapped[int | None] = mapped_column(Integer)
    upazila_rank: Mapped[int | None] = mapped_column(Integer)
    upazila_percentile: Mapped[float | None] = mapped_column(Float)
    union_rank: Mapped[int | None] = mapped_column(Integer)
    union_percentile: Mapped[float | None] = mapped_column(Float)
    division_percentile: Mapped[float | None] = mapped_column(Float)
    district_percentile: Mapped[float | None] = mapped_column(Float)
    #: 1 when the score was written by an incremental re-score after an approval (ranks then
    #: lag until the next full run re-ranks; see docs/pmt.md).
    incremental: Mapped[int] = mapped_column(SmallInteger, default=0)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<HouseholdScore run {self.run_id} household {self.household_pk} {self.score:.1f}>"
