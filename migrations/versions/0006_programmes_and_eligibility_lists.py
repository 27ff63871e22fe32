"""programmes and eligibility lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ministry", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("scope_areas", JSON_TYPE, nullable=False),
        sa.Column("targeting", JSON_TYPE, nullable=False),
        sa.Column("criteria", JSON_TYPE, nullable=True),
        sa.Column("exclusions", JSON_TYPE, nullable=False),
        sa.Column("quotas", JSON_TYPE, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_programmes_status")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_programmes_owner_id_users")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_programmes_updated_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programmes")),
        sa.UniqueConstraint("name", name=op.f("uq_programmes_name")),
    )
    op.create_table(
        "eligibility_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("definition", JSON_TYPE, nullable=False),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("programme_version", sa.Integer(), nullable=False),
        sa.Column("criteria_labels", JSON_TYPE, nullable=False),
        sa.Column("local_level", sa.String(length=10), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("score_run_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_by_id", sa.Integer(), nullable=True),
        sa.Column("rebuilt_from_id", sa.Integer(), nullable=True),
        sa.Column("funnel", JSON_TYPE, nullable=False),
        sa.Column("n_entries", sa.Integer(), nullable=False),
        sa.Column("entries_hash", sa.String(length=64), nullable=False),
        sa.Column("build_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["built_by_id"], ["users.id"], name=op.f("fk_eligibility_lists_built_by_id_users")),
        sa.ForeignKeyConstraint(["model_id"], ["pmt_models.id"], name=op.f("fk_eligibility_lists_model_id_pmt_models")),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_eligibility_lists_programme_id_programmes")
        ),
        sa.ForeignKeyConstraint(
            ["rebuilt_from_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_eligibility_lists_rebuilt_from_id_eligibility_lists"),
        ),
        sa.ForeignKeyConstraint(
            ["score_run_id"], ["score_runs.id"], name=op.f("fk_eligibility_lists_score_run_id_score_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_lists")),
        sa.UniqueConstraint("programme_id", "number", name=op.f("uq_eligibility_lists_programme_id_number")),
    )
    with op.batch_alter_table("eligibility_lists", schema=None) as batch_op:
        batch_op.create_index("ix_eligibility_lists_programme", ["programme_id", "id"], unique=False)

    op.create_table(
        "eligibility_list_entries",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("household_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("household_version", sa.Integer(), nullable=False),
        sa.Column("scored_version", sa.Integer(), nullable=False),
        sa.Column("union_code", sa.String(length=8), nullable=False),
        sa.Column("area_type", sa.SmallInteger(), nullable=False),
        sa.Column("head_sex", sa.SmallInteger(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("predicted_log_pc", sa.Float(), nullable=False),
        sa.Column("below_poverty_line", sa.Boolean(), nullable=False),
        sa.Column("national_rank", sa.Integer(), nullable=True),
        sa.Column("local_rank", sa.Integer(), nullable=True),
        sa.Column("criteria_met", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_eligibility_list_entries_household_pk_households")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_eligibility_list_entries_list_id_eligibility_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "household_pk", name=op.f("pk_eligibility_list_entries")),
        sa.UniqueConstraint("list_id", "position", name=op.f("uq_eligibility_list_entries_list_id_position")),
    )
    with op.batch_alter_table("eligibility_list_entries", schema=None) as batch_op:
        batch_op.create_index("ix_eligibility_list_entries_household", ["household_pk"], unique=False)
        batch_op.create_index("ix_eligibility_list_entries_list_union", ["list_id", "union_code"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ministry", sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("ministry")

    with op.batch_alter_table("eligibility_list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_eligibility_list_entries_list_union")
        batch_op.drop_index("ix_eligibility_list_entries_household")

    op.drop_table("eligibility_list_entries")
    with op.batch_alter_table("eligibility_lists", schema=None) as batch_op:
        batch_op.drop_index("ix_eligibility_lists_programme")

    op.drop_table("eligibility_lists")
    op.drop_table("programmes")
