"""community validation and grievances

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "grievances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("union_code", sa.String(length=8), nullable=False),
        sa.Column("household_pk", BIGINT, nullable=True),
        sa.Column("programme_id", sa.Integer(), nullable=True),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("complainant_name", sa.String(length=120), nullable=True),
        sa.Column("complainant_phone", sa.String(length=20), nullable=True),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_to_id", sa.Integer(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("household_version_before", sa.Integer(), nullable=True),
        sa.Column("score_run_before_id", sa.Integer(), nullable=True),
        sa.Column("score_before", sa.Float(), nullable=True),
        sa.Column("eligible_before", sa.Boolean(), nullable=True),
        sa.Column("household_version_after", sa.Integer(), nullable=True),
        sa.Column("score_run_after_id", sa.Integer(), nullable=True),
        sa.Column("score_after", sa.Float(), nullable=True),
        sa.Column("eligible_after", sa.Boolean(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("outcome_detail", JSON_TYPE, nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolution_text", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category IN ('exclusion', 'inclusion', 'data_error', 'payment', 'misconduct', 'privacy')",
            name=op.f("ck_grievances_category"),
        ),
        sa.CheckConstraint(
            "channel IN ('in_person', 'hotline', 'union_office', 'web')", name=op.f("ck_grievances_channel")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('now_eligible', 'still_not_eligible', 'still_eligible', 'no_longer_eligible', 'not_applicable')",
            name=op.f("ck_grievances_outcome"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'assigned', 'in_verification', 'resolved', 'closed')", name=op.f("ck_grievances_status")
        ),
        sa.ForeignKeyConstraint(["assigned_to_id"], ["users.id"], name=op.f("fk_grievances_assigned_to_id_users")),
        sa.ForeignKeyConstraint(["closed_by_id"], ["users.id"], name=op.f("fk_grievances_closed_by_id_users")),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_grievances_household_pk_households")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["eligibility_lists.id"], name=op.f("fk_grievances_list_id_eligibility_lists")
        ),
        sa.ForeignKeyConstraint(["opened_by_id"], ["users.id"], name=op.f("fk_grievances_opened_by_id_users")),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_grievances_programme_id_programmes")
        ),
        sa.ForeignKeyConstraint(["resolved_by_id"], ["users.id"], name=op.f("fk_grievances_resolved_by_id_users")),
        sa.ForeignKeyConstraint(
            ["score_run_after_id"], ["score_runs.id"], name=op.f("fk_grievances_score_run_after_id_score_runs")
        ),
        sa.ForeignKeyConstraint(
            ["score_run_before_id"], ["score_runs.id"], name=op.f("fk_grievances_score_run_before_id_score_runs")
        ),
        sa.ForeignKeyConstraint(["union_code"], ["areas.code"], name=op.f("fk_grievances_union_code_areas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grievances")),
    )
    with op.batch_alter_table("grievances", schema=None) as batch_op:
        batch_op.create_index("ix_grievances_assigned_to_id", ["assigned_to_id"], unique=False)
        batch_op.create_index("ix_grievances_household_pk", ["household_pk"], unique=False)
        batch_op.create_index("ix_grievances_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_grievances_union_status", ["union_code", "status"], unique=False)

    op.create_table(
        "list_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("union_code", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("n_entries", sa.Integer(), nullable=False),
        sa.Column("objection_days", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("objection_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("how_to_object", sa.Text(), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalised_by_id", sa.Integer(), nullable=True),
        sa.Column("validated_list_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'finalised')", name=op.f("ck_list_publications_status")),
        sa.CheckConstraint(
            "objection_days >= 1 AND objection_days <= 365", name=op.f("ck_list_publications_objection_days")
        ),
        sa.ForeignKeyConstraint(
            ["finalised_by_id"], ["users.id"], name=op.f("fk_list_publications_finalised_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["eligibility_lists.id"], name=op.f("fk_list_publications_list_id_eligibility_lists")
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_list_publications_programme_id_programmes")
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"], ["users.id"], name=op.f("fk_list_publications_published_by_id_users")
        ),
        sa.ForeignKeyConstraint(["union_code"], ["areas.code"], name=op.f("fk_list_publications_union_code_areas")),
        sa.ForeignKeyConstraint(
            ["validated_list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_list_publications_validated_list_id_eligibility_lists"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_publications")),
        sa.UniqueConstraint("list_id", "union_code", name=op.f("uq_list_publications_list_id_union_code")),
    )
    with op.batch_alter_table("list_publications", schema=None) as batch_op:
        batch_op.create_index("ix_list_publications_union_code", ["union_code"], unique=False)

    op.create_table(
        "validated_lists",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("source_list_id", sa.Integer(), nullable=False),
        sa.Column("publication_ids", JSON_TYPE, nullable=False),
        sa.Column("n_added", sa.Integer(), nullable=False),
        sa.Column("n_removed", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_validated_lists_created_by_id_users")),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_validated_lists_list_id_eligibility_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_validated_lists_source_list_id_eligibility_lists"),
        ),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_validated_lists")),
    )
    with op.batch_alter_table("validated_lists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_validated_lists_source_list_id"), ["source_list_id"], unique=False)

    op.create_table(
        "grievance_events",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("grievance_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", JSON_TYPE, nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_grievance_events_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["grievance_id"],
            ["grievances.id"],
            name=op.f("fk_grievance_events_grievance_id_grievances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grievance_events")),
    )
    with op.batch_alter_table("grievance_events", schema=None) as batch_op:
        batch_op.create_index("ix_grievance_events_grievance", ["grievance_id", "id"], unique=False)

    op.create_table(
        "objections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("household_pk", BIGINT, nullable=True),
        sa.Column("family_head_name", sa.String(length=120), nullable=True),
        sa.Column("family_father_or_husband_name", sa.String(length=120), nullable=True),
        sa.Column("family_village", sa.String(length=120), nullable=True),
        sa.Column("change_request_id", BIGINT, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("objector_name", sa.String(length=120), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "household_pk IS NOT NULL OR (kind = 'exclusion' AND family_head_name IS NOT NULL)",
            name=op.f("ck_objections_subject"),
        ),
        sa.CheckConstraint("kind IN ('inclusion', 'exclusion')", name=op.f("ck_objections_kind")),
        sa.ForeignKeyConstraint(
            ["change_request_id"], ["change_requests.id"], name=op.f("fk_objections_change_request_id_change_requests")
        ),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_objections_household_pk_households")
        ),
        sa.ForeignKeyConstraint(
            ["publication_id"], ["list_publications.id"], name=op.f("fk_objections_publication_id_list_publications")
        ),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["users.id"], name=op.f("fk_objections_recorded_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
    )
    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.create_index("ix_objections_household_pk", ["household_pk"], unique=False)
        batch_op.create_index("ix_objections_publication_id", ["publication_id"], unique=False)

    op.create_table(
        "verification_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grievance_id", sa.Integer(), nullable=False),
        sa.Column("household_pk", BIGINT, nullable=True),
        sa.Column("union_code", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_request_id", BIGINT, nullable=True),
        sa.Column("linked_by_id", sa.Integer(), nullable=True),
        sa.Column("finding", sa.String(length=12), nullable=True),
        sa.Column("finding_note", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "finding IS NULL OR finding IN ('changed', 'no_change', 'not_found')",
            name=op.f("ck_verification_tasks_finding"),
        ),
        sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name=op.f("ck_verification_tasks_status")),
        sa.ForeignKeyConstraint(
            ["change_request_id"],
            ["change_requests.id"],
            name=op.f("fk_verification_tasks_change_request_id_change_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["completed_by_id"], ["users.id"], name=op.f("fk_verification_tasks_completed_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["grievance_id"],
            ["grievances.id"],
            name=op.f("fk_verification_tasks_grievance_id_grievances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_verification_tasks_household_pk_households")
        ),
        sa.ForeignKeyConstraint(["linked_by_id"], ["users.id"], name=op.f("fk_verification_tasks_linked_by_id_users")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_verification_tasks_requested_by_id_users")
        ),
        sa.ForeignKeyConstraint(["union_code"], ["areas.code"], name=op.f("fk_verification_tasks_union_code_areas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_tasks")),
    )
    with op.batch_alter_table("verification_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_verification_tasks_change_request_id", ["change_request_id"], unique=False)
        batch_op.create_index("ix_verification_tasks_grievance_id", ["grievance_id"], unique=False)
        batch_op.create_index("ix_verification_tasks_household_pk", ["household_pk"], unique=False)
        batch_op.create_index("ix_verification_tasks_union_status", ["union_code", "status"], unique=False)

    op.create_table(
        "objection_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("objection_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("meeting_date", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('upheld', 'dismissed')", name=op.f("ck_objection_decisions_outcome")),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_objection_decisions_decided_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["objection_id"], ["objections.id"], name=op.f("fk_objection_decisions_objection_id_objections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection_decisions")),
        sa.UniqueConstraint("objection_id", name=op.f("uq_objection_decisions_objection_id")),
    )
    op.create_table(
        "objection_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("objection_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=200), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "content_type IN ('image/jpeg', 'image/png', 'application/pdf')",
            name=op.f("ck_objection_evidence_content_type"),
        ),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_objection_evidence_size_bytes")),
        sa.ForeignKeyConstraint(
            ["objection_id"],
            ["objections.id"],
            name=op.f("fk_objection_evidence_objection_id_objections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_objection_evidence_uploaded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection_evidence")),
    )
    with op.batch_alter_table("objection_evidence", schema=None) as batch_op:
        batch_op.create_index("ix_objection_evidence_objection_id", ["objection_id"], unique=False)

    op.create_table(
        "validated_list_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("source_list_id", sa.Integer(), nullable=False),
        sa.Column("household_pk", BIGINT, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("change IN ('added', 'removed')", name=op.f("ck_validated_list_changes_change")),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["objection_decisions.id"],
            name=op.f("fk_validated_list_changes_decision_id_objection_decisions"),
        ),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_validated_list_changes_household_pk_households")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_validated_list_changes_list_id_eligibility_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["list_publications.id"],
            name=op.f("fk_validated_list_changes_publication_id_list_publications"),
        ),
        sa.ForeignKeyConstraint(
            ["source_list_id"],
            ["eligibility_lists.id"],
            name=op.f("fk_validated_list_changes_source_list_id_eligibility_lists"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validated_list_changes")),
        sa.UniqueConstraint("list_id", "household_pk", name=op.f("uq_validated_list_changes_list_id_household_pk")),
    )
    with op.batch_alter_table("validated_list_changes", schema=None) as batch_op:
        batch_op.create_index("ix_validated_list_changes_source_list_id", ["source_list_id"], unique=False)


def downgrade():
    with op.batch_alter_table("validated_list_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_validated_list_changes_source_list_id")

    op.drop_table("validated_list_changes")
    with op.batch_alter_table("objection_evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_objection_evidence_objection_id")

    op.drop_table("objection_evidence")
    op.drop_table("objection_decisions")
    with op.batch_alter_table("verification_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_tasks_union_status")
        batch_op.drop_index("ix_verification_tasks_household_pk")
        batch_op.drop_index("ix_verification_tasks_grievance_id")
        batch_op.drop_index("ix_verification_tasks_change_request_id")

    op.drop_table("verification_tasks")
    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.drop_index("ix_objections_publication_id")
        batch_op.drop_index("ix_objections_household_pk")

    op.drop_table("objections")
    with op.batch_alter_table("grievance_events", schema=None) as batch_op:
        batch_op.drop_index("ix_grievance_events_grievance")

    op.drop_table("grievance_events")
    with op.batch_alter_table("validated_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_validated_lists_source_list_id"))

    op.drop_table("validated_lists")
    with op.batch_alter_table("list_publications", schema=None) as batch_op:
        batch_op.drop_index("ix_list_publications_union_code")

    op.drop_table("list_publications")
    with op.batch_alter_table("grievances", schema=None) as batch_op:
        batch_op.drop_index("ix_grievances_union_status")
        batch_op.drop_index("ix_grievances_status_due")
        batch_op.drop_index("ix_grievances_household_pk")
        batch_op.drop_index("ix_grievances_assigned_to_id")

    op.drop_table("grievances")
