"""change requests, their evidence files, and duplicate-matching keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('change_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('household_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('household_id', sa.String(length=24), nullable=True),
    sa.Column('union_code', sa.String(length=8), nullable=False),
    sa.Column('base_version', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('proposed', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('warnings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('duplicate_flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('nid_conflicts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('risk_reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('approvals_required', sa.SmallInteger(), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_approved_by_id', sa.Integer(), nullable=True),
    sa.Column('first_approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('applied_version_no', sa.Integer(), nullable=True),
    sa.Column('new_household_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rebase_count', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind = 'new_household' OR household_pk IS NOT NULL", name=op.f('ck_change_requests_household_required')),
    sa.CheckConstraint("kind IN ('new_household', 'edit_household', 'add_member', 'edit_member', 'remove_member', 'change_head', 'split', 'deactivate')", name=op.f('ck_change_requests_kind')),
    sa.CheckConstraint("status <> 'rejected' OR decision_reason IS NOT NULL", name=op.f('ck_change_requests_rejection_reason')),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'withdrawn', 'stale')", name=op.f('ck_change_requests_status')),
    sa.CheckConstraint('approvals_required IN (1, 2)', name=op.f('ck_change_requests_approvals_required')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_change_requests_decided_by_id_users')),
    sa.ForeignKeyConstraint(['first_approved_by_id'], ['users.id'], name=op.f('fk_change_requests_first_approved_by_id_users')),
    sa.ForeignKeyConstraint(['household_pk'], ['households.id'], name=op.f('fk_change_requests_household_pk_households')),
    sa.ForeignKeyConstraint(['new_household_pk'], ['households.id'], name=op.f('fk_change_requests_new_household_pk_households')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['users.id'], name=op.f('fk_change_requests_submitted_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_requests'))
    )
    with op.batch_alter_table('change_requests', schema=None) as batch_op:
        batch_op.create_index('ix_change_requests_household_status', ['household_pk', 'status'], unique=False)
        batch_op.create_index('ix_change_requests_status_union', ['status', 'union_code'], unique=False)
        batch_op.create_index('ix_change_requests_submitted_at', ['submitted_at'], unique=False)
        batch_op.create_index('ix_change_requests_submitted_by', ['submitted_by_id'], unique=False)

    op.create_table('change_request_evidence',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('change_request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_path', sa.String(length=200), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'application/pdf')", name=op.f('ck_change_request_evidence_content_type')),
    sa.CheckConstraint('size_bytes > 0', name=op.f('ck_change_request_evidence_size_bytes')),
    sa.ForeignKeyConstraint(['change_request_id'], ['change_requests.id'], name=op.f('fk_change_request_evidence_change_request_id_change_requests'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_change_request_evidence_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_request_evidence'))
    )
    with op.batch_alter_table('change_request_evidence', schema=None) as batch_op:
        batch_op.create_index('ix_change_request_evidence_change_request_id', ['change_request_id'], unique=False)

    op.create_table('member_match_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('household_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('union_code', sa.String(length=8), nullable=False),
    sa.Column('name_key', sa.String(length=80), nullable=False),
    sa.Column('birth_year', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['household_pk'], ['households.id'], name=op.f('fk_member_match_keys_household_pk_households'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_match_keys_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_match_keys'))
    )
    with op.batch_alter_table('member_match_keys', schema=None) as batch_op:
        batch_op.create_index('ix_member_match_keys_household_pk', ['household_pk'], unique=False)
        batch_op.create_index('ix_member_match_keys_key_year', ['name_key', 'birth_year'], unique=False)
        batch_op.create_index('ix_member_match_keys_member_id', ['member_id'], unique=False)
        batch_op.create_index('ix_member_match_keys_union_code', ['union_code'], unique=False)


def downgrade():
    with op.batch_alter_table('member_match_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_member_match_keys_union_code')
        batch_op.drop_index('ix_member_match_keys_member_id')
        batch_op.drop_index('ix_member_match_keys_key_year')
        batch_op.drop_index('ix_member_match_keys_household_pk')

    op.drop_table('member_match_keys')
    with op.batch_alter_table('change_request_evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_change_request_evidence_change_request_id')

    op.drop_table('change_request_evidence')
    with op.batch_alter_table('change_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_change_requests_submitted_by')
        batch_op.drop_index('ix_change_requests_submitted_at')
        batch_op.drop_index('ix_change_requests_status_union')
        batch_op.drop_index('ix_change_requests_household_status')

    op.drop_table('change_requests')
