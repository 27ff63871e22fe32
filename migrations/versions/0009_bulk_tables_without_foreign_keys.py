"""bulk-written tables without per-row foreign keys: household_scores, eligibility_list_entries

A full score run writes one row per household (1M rows) with one ``COPY``. Each foreign key costs
PostgreSQL a trigger check per row: measured on 1,000,000 rows, the three foreign keys took 26 s of
a 35 s write, and the two secondary indexes 6 s of the remaining 9 s; with the primary key alone the
write takes 3 s. No query needs the secondary indexes (every read names the run: the primary key
``(run_id, household_pk)`` serves them). Integrity is kept by the only writer (``targeting.scoring``):
rows are read from ``households`` in the run's own transaction (households are deactivated, never
deleted) and ``model_id`` is the run's model. Runs are never deleted by the application (old runs keep
eligibility lists reproducible); whoever deletes one deletes its rows first.

``eligibility_list_entries`` likewise: a list build writes its entries at once (52,000 for the
benchmark programme on 1M households): with its two foreign keys the write took 1.8 s, without them
0.8 s. Entries are written only by the list builders, for the list they have just created, from
``households`` in the same transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("household_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_household_scores_run_predicted")
        batch_op.drop_index("ix_household_scores_household")
        batch_op.drop_constraint(op.f("fk_household_scores_run_id_score_runs"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_household_scores_model_id_pmt_models"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_household_scores_household_pk_households"), type_="foreignkey")
    with op.batch_alter_table("eligibility_list_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_eligibility_list_entries_list_id_eligibility_lists"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_eligibility_list_entries_household_pk_households"), type_="foreignkey")


def downgrade():
    with op.batch_alter_table("eligibility_list_entries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_eligibility_list_entries_household_pk_households"), "households", ["household_pk"], ["id"]
        )
        batch_op.create_foreign_key(
            op.f("fk_eligibility_list_entries_list_id_eligibility_lists"),
            "eligibility_lists",
            ["list_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("household_scores", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_household_scores_household_pk_households"), "households", ["household_pk"], ["id"]
        )
        batch_op.create_foreign_key(op.f("fk_household_scores_model_id_pmt_models"), "pmt_models", ["model_id"], ["id"])
        batch_op.create_foreign_key(
            op.f("fk_household_scores_run_id_score_runs"), "score_runs", ["run_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_household_scores_household", ["household_pk", "run_id"], unique=False)
        batch_op.create_index("ix_household_scores_run_predicted", ["run_id", "predicted_log_pc"], unique=False)
