"""score runs: a 'pruned' status (superseded, its household scores deleted)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD = "status IN ('running', 'complete', 'failed', 'superseded')"
NEW = "status IN ('running', 'complete', 'failed', 'superseded', 'pruned')"


def _replace_status_check(condition: str) -> None:
    with op.batch_alter_table("score_runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_score_runs_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_score_runs_status"), condition)


def upgrade():
    _replace_status_check(NEW)


def downgrade():
    op.execute("UPDATE score_runs SET status = 'superseded' WHERE status = 'pruned'")
    _replace_status_check(OLD)
