"""household_versions: an imported version 1 may leave its snapshot to the current tables

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SNAPSHOT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    # A bulk import writes version 1 without a snapshot: until the household first changes, its
    # current tables are that state, and the change that makes version 2 stores version 1's snapshot
    # first (registry.households.write_version). On 200k households the JSONB snapshots were half of
    # the import's database time. Only a version 1 may be stored this way.
    with op.batch_alter_table("household_versions") as batch_op:
        batch_op.alter_column("snapshot", existing_type=SNAPSHOT, nullable=True)
        batch_op.create_check_constraint(
            op.f("ck_household_versions_snapshot_stored"), "snapshot IS NOT NULL OR version_no = 1"
        )


def downgrade():
    left = op.get_bind().execute(sa.text("SELECT count(*) FROM household_versions WHERE snapshot IS NULL")).scalar()
    if left:
        # SQL cannot rebuild a snapshot in snapshot_of's format: refuse rather than lose history.
        raise RuntimeError(
            f"{left} imported version(s) keep their snapshot in the current tables: store them first "
            "(registry.households.store_imported_snapshots)"
        )
    with op.batch_alter_table("household_versions") as batch_op:
        batch_op.drop_constraint(op.f("ck_household_versions_snapshot_stored"), type_="check")
        batch_op.alter_column("snapshot", existing_type=SNAPSHOT, nullable=False)
