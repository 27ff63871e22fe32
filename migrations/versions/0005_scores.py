"""scores and score runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("area_code", sa.String(length=8), nullable=True),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("households_scored", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'complete', 'failed', 'superseded')", name=op.f("ck_score_runs_status")
        ),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_score_runs_created_by_id_users")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_score_runs_job_id_jobs")),
        sa.ForeignKeyConstraint(["model_id"], ["pmt_models.id"], name=op.f("fk_score_runs_model_id_pmt_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_runs")),
    )
    with op.batch_alter_table("score_runs", schema=None) as batch_op:
        batch_op.create_index("ix_score_runs_model_status", ["model_id", "status"], unique=False)

    op.create_table(
        "household_scores",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("household_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("household_version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(length=60), nullable=False),
        sa.Column("predicted_log_pc", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("below_poverty_line", sa.Boolean(), nullable=False),
        sa.Column("national_rank", sa.Integer(), nullable=True),
        sa.Column("national_percentile", sa.Float(), nullable=True),
        sa.Column("division_rank", sa.Integer(), nullable=True),
        sa.Column("district_rank", sa.Integer(), nullable=True),
        sa.Column("upazila_rank", sa.Integer(), nullable=True),
        sa.Column("upazila_percentile", sa.Float(), nullable=True),
        sa.Column("union_rank", sa.Integer(), nullable=True),
        sa.Column("union_percentile", sa.Float(), nullable=True),
        sa.Column("division_percentile", sa.Float(), nullable=True),
        sa.Column("district_percentile", sa.Float(), nullable=True),
        sa.Column("incremental", sa.SmallInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_household_scores_household_pk_households")
        ),
        sa.ForeignKeyConstraint(["model_id"], ["pmt_models.id"], name=op.f("fk_household_scores_model_id_pmt_models")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["score_runs.id"], name=op.f("fk_household_scores_run_id_score_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "household_pk", name=op.f("pk_household_scores")),
    )
    with op.batch_alter_table("household_scores", schema=None) as batch_op:
        batch_op.create_index("ix_household_scores_household", ["household_pk", "run_id"], unique=False)
        batch_op.create_index("ix_household_scores_run_predicted", ["run_id", "predicted_log_pc"], unique=False)


def downgrade():
    with op.batch_alter_table("household_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_household_scores_run_predicted")
        batch_op.drop_index("ix_household_scores_household")

    op.drop_table("household_scores")
    with op.batch_alter_table("score_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_score_runs_model_status")

    op.drop_table("score_runs")
