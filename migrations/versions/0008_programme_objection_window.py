"""programmes: their own community-validation objection window

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("objection_days", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_programmes_objection_days"),
            "objection_days IS NULL OR (objection_days >= 1 AND objection_days <= 365)",
        )


def downgrade():
    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_programmes_objection_days"), type_="check")
        batch_op.drop_column("objection_days")
