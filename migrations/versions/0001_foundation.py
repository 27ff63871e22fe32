"""foundation: geography, households, members, versions, users, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:52:07.042337
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "areas",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_code", sa.String(length=8), nullable=True),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_bn", sa.String(length=120), nullable=True),
        sa.Column("area_type", sa.SmallInteger(), nullable=True),
        sa.Column("unit_type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "(level = 'division' AND length(code) = 2) OR (level = 'district' AND length(code) = 4) OR (level = 'upazila' AND length(code) = 6) OR (level = 'union' AND length(code) = 8)",
            name=op.f("ck_areas_code_length"),
        ),
        sa.CheckConstraint("level IN ('division', 'district', 'upazila', 'union')", name=op.f("ck_areas_level")),
        sa.CheckConstraint("area_type IS NULL OR area_type IN (1, 2, 3)", name=op.f("ck_areas_area_type")),
        sa.ForeignKeyConstraint(["parent_code"], ["areas.code"], name=op.f("fk_areas_parent_code_areas")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_areas")),
    )
    with op.batch_alter_table("areas", schema=None) as batch_op:
        batch_op.create_index("ix_areas_level", ["level"], unique=False)
        batch_op.create_index("ix_areas_parent_code", ["parent_code"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=True),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active_user", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('enumerator', 'supervisor', 'statistician', 'programme_officer', 'grievance_officer', 'viewer', 'admin')",
            name=op.f("ck_users_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=80), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column(
            "before", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "after", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_audit_events_actor_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_actor_id", ["actor_id"], unique=False)
        batch_op.create_index("ix_audit_events_object", ["object_type", "object_id"], unique=False)
        batch_op.create_index("ix_audit_events_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "households",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("household_id", sa.String(length=24), nullable=False),
        sa.Column("union_code", sa.String(length=8), nullable=False),
        sa.Column("upazila_code", sa.String(length=6), nullable=False),
        sa.Column("district_code", sa.String(length=4), nullable=False),
        sa.Column("division_code", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("inactive_reason", sa.String(length=20), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("area_type", sa.SmallInteger(), nullable=False),
        sa.Column("village", sa.String(length=120), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("interview_date", sa.Date(), nullable=False),
        sa.Column("enumerator_id", sa.String(length=40), nullable=True),
        sa.Column("questionnaire_version", sa.String(length=20), nullable=True),
        sa.Column("dwelling_structure", sa.SmallInteger(), nullable=False),
        sa.Column("wall_material", sa.SmallInteger(), nullable=False),
        sa.Column("roof_material", sa.SmallInteger(), nullable=False),
        sa.Column("floor_material", sa.SmallInteger(), nullable=False),
        sa.Column("rooms", sa.Integer(), nullable=False),
        sa.Column("tenure", sa.SmallInteger(), nullable=False),
        sa.Column("toilet_type", sa.SmallInteger(), nullable=False),
        sa.Column("toilet_shared", sa.Boolean(), nullable=False),
        sa.Column("water_source", sa.SmallInteger(), nullable=False),
        sa.Column("electricity", sa.SmallInteger(), nullable=False),
        sa.Column("cooking_fuel", sa.SmallInteger(), nullable=False),
        sa.Column("land_homestead_decimal", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("land_cultivable_decimal", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cattle", sa.Integer(), nullable=False),
        sa.Column("goats_sheep", sa.Integer(), nullable=False),
        sa.Column("poultry", sa.Integer(), nullable=False),
        sa.Column("asset_tv", sa.Boolean(), nullable=False),
        sa.Column("asset_refrigerator", sa.Boolean(), nullable=False),
        sa.Column("asset_mobile_phone", sa.Boolean(), nullable=False),
        sa.Column("asset_smartphone", sa.Boolean(), nullable=False),
        sa.Column("asset_motorcycle", sa.Boolean(), nullable=False),
        sa.Column("asset_bicycle", sa.Boolean(), nullable=False),
        sa.Column("asset_rickshaw_van", sa.Boolean(), nullable=False),
        sa.Column("asset_sewing_machine", sa.Boolean(), nullable=False),
        sa.Column("asset_shallow_pump", sa.Boolean(), nullable=False),
        sa.Column("asset_computer", sa.Boolean(), nullable=False),
        sa.Column("remittance_received", sa.Boolean(), nullable=False),
        sa.Column("remittance_amount_12m", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("main_income_source", sa.SmallInteger(), nullable=False),
        sa.Column("shock_flood", sa.Boolean(), nullable=False),
        sa.Column("shock_cyclone", sa.Boolean(), nullable=False),
        sa.Column("shock_river_erosion", sa.Boolean(), nullable=False),
        sa.Column("shock_drought", sa.Boolean(), nullable=False),
        sa.Column("shock_illness_death", sa.Boolean(), nullable=False),
        sa.Column("shock_job_loss", sa.Boolean(), nullable=False),
        sa.Column("shock_crop_loss", sa.Boolean(), nullable=False),
        sa.Column("shock_other", sa.Boolean(), nullable=False),
        sa.Column("safety_net_benefits", sa.String(length=100), nullable=True),
        sa.Column("bank_or_mfs_account", sa.Boolean(), nullable=False),
        sa.Column("consent_given", sa.Boolean(), nullable=False),
        sa.Column("consent_date", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "inactive_reason IS NULL OR inactive_reason IN ('dissolved', 'duplicate', 'migrated')",
            name=op.f("ck_households_inactive_reason"),
        ),
        sa.CheckConstraint("status IN ('active', 'inactive')", name=op.f("ck_households_status")),
        sa.CheckConstraint("area_type IS NULL OR (area_type IN (1, 2, 3))", name=op.f("ck_households_area_type")),
        sa.CheckConstraint("cattle IS NULL OR (cattle >= 0 AND cattle <= 1000)", name=op.f("ck_households_cattle")),
        sa.CheckConstraint(
            "cooking_fuel IS NULL OR (cooking_fuel IN (1, 2, 3, 4, 9))", name=op.f("ck_households_cooking_fuel")
        ),
        sa.CheckConstraint("current_version >= 1", name=op.f("ck_households_current_version")),
        sa.CheckConstraint(
            "dwelling_structure IS NULL OR (dwelling_structure IN (1, 2, 3, 4))",
            name=op.f("ck_households_dwelling_structure"),
        ),
        sa.CheckConstraint("electricity IS NULL OR (electricity IN (1, 2, 3))", name=op.f("ck_households_electricity")),
        sa.CheckConstraint(
            "floor_material IS NULL OR (floor_material IN (1, 2, 3, 9))", name=op.f("ck_households_floor_material")
        ),
        sa.CheckConstraint(
            "goats_sheep IS NULL OR (goats_sheep >= 0 AND goats_sheep <= 1000)", name=op.f("ck_households_goats_sheep")
        ),
        sa.CheckConstraint(
            "land_cultivable_decimal IS NULL OR (land_cultivable_decimal >= 0 AND land_cultivable_decimal <= 100000)",
            name=op.f("ck_households_land_cultivable_decimal"),
        ),
        sa.CheckConstraint(
            "land_homestead_decimal IS NULL OR (land_homestead_decimal >= 0 AND land_homestead_decimal <= 100000)",
            name=op.f("ck_households_land_homestead_decimal"),
        ),
        sa.CheckConstraint(
            "main_income_source IS NULL OR (main_income_source IN (1, 2, 3, 4, 5, 6, 7, 9))",
            name=op.f("ck_households_main_income_source"),
        ),
        sa.CheckConstraint(
            "poultry IS NULL OR (poultry >= 0 AND poultry <= 10000)", name=op.f("ck_households_poultry")
        ),
        sa.CheckConstraint(
            "remittance_amount_12m IS NULL OR (remittance_amount_12m >= 0 AND remittance_amount_12m <= 1e+08)",
            name=op.f("ck_households_remittance_amount_12m"),
        ),
        sa.CheckConstraint(
            "roof_material IS NULL OR (roof_material IN (1, 2, 3, 4, 9))", name=op.f("ck_households_roof_material")
        ),
        sa.CheckConstraint("rooms IS NULL OR (rooms >= 0 AND rooms <= 20)", name=op.f("ck_households_rooms")),
        sa.CheckConstraint("tenure IS NULL OR (tenure IN (1, 2, 3, 9))", name=op.f("ck_households_tenure")),
        sa.CheckConstraint(
            "toilet_type IS NULL OR (toilet_type IN (1, 2, 3, 4))", name=op.f("ck_households_toilet_type")
        ),
        sa.CheckConstraint(
            "wall_material IS NULL OR (wall_material IN (1, 2, 3, 4, 5, 9))", name=op.f("ck_households_wall_material")
        ),
        sa.CheckConstraint(
            "water_source IS NULL OR (water_source IN (1, 2, 3, 4, 9))", name=op.f("ck_households_water_source")
        ),
        sa.ForeignKeyConstraint(["union_code"], ["areas.code"], name=op.f("fk_households_union_code_areas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
        sa.UniqueConstraint("household_id", name=op.f("uq_households_household_id")),
    )
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.create_index("ix_households_district_code", ["district_code"], unique=False)
        batch_op.create_index("ix_households_division_code", ["division_code"], unique=False)
        batch_op.create_index("ix_households_union_code", ["union_code"], unique=False)
        batch_op.create_index("ix_households_upazila_code", ["upazila_code"], unique=False)

    op.create_table(
        "user_areas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["area_code"], ["areas.code"], name=op.f("fk_user_areas_area_code_areas")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_areas_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "area_code", name=op.f("pk_user_areas")),
    )
    op.create_table(
        "household_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("household_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version_no", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("source_ref", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "snapshot", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.CheckConstraint("version_no >= 1", name=op.f("ck_household_versions_version_no")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_household_versions_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["household_pk"],
            ["households.id"],
            name=op.f("fk_household_versions_household_pk_households"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_versions")),
        sa.UniqueConstraint("household_pk", "version_no", name=op.f("uq_household_versions_household_pk_version_no")),
    )
    with op.batch_alter_table("household_versions", schema=None) as batch_op:
        batch_op.create_index("ix_household_versions_household_created", ["household_pk", "created_at"], unique=False)

    op.create_table(
        "members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("household_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("name_bn", sa.String(length=120), nullable=True),
        sa.Column("name_en", sa.String(length=120), nullable=True),
        sa.Column("father_name", sa.String(length=120), nullable=True),
        sa.Column("mother_name", sa.String(length=120), nullable=True),
        sa.Column("spouse_name", sa.String(length=120), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("age_years", sa.SmallInteger(), nullable=False),
        sa.Column("sex", sa.SmallInteger(), nullable=False),
        sa.Column("relation_to_head", sa.SmallInteger(), nullable=False),
        sa.Column("marital_status", sa.SmallInteger(), nullable=False),
        sa.Column("religion", sa.SmallInteger(), nullable=False),
        sa.Column("ethnicity", sa.SmallInteger(), nullable=False),
        sa.Column("education_level", sa.SmallInteger(), nullable=False),
        sa.Column("currently_enrolled", sa.Boolean(), nullable=False),
        sa.Column("occupation", sa.SmallInteger(), nullable=False),
        sa.Column("disability_seeing", sa.SmallInteger(), nullable=True),
        sa.Column("disability_hearing", sa.SmallInteger(), nullable=True),
        sa.Column("disability_walking", sa.SmallInteger(), nullable=True),
        sa.Column("disability_cognition", sa.SmallInteger(), nullable=True),
        sa.Column("disability_self_care", sa.SmallInteger(), nullable=True),
        sa.Column("disability_communication", sa.SmallInteger(), nullable=True),
        sa.Column("pregnant_or_lactating", sa.Boolean(), nullable=False),
        sa.Column("nid_number", sa.String(length=17), nullable=True),
        sa.Column("birth_reg_number", sa.String(length=17), nullable=True),
        sa.Column("mobile_number", sa.String(length=11), nullable=True),
        sa.CheckConstraint(
            "mobile_number IS NULL OR (length(mobile_number) = 11 AND substr(mobile_number, 1, 2) = '01')",
            name=op.f("ck_members_mobile_number"),
        ),
        sa.CheckConstraint(
            "age_years IS NULL OR (age_years >= 0 AND age_years <= 120)", name=op.f("ck_members_age_years")
        ),
        sa.CheckConstraint(
            "birth_reg_number IS NULL OR (length(birth_reg_number) = 17)", name=op.f("ck_members_birth_reg_number")
        ),
        sa.CheckConstraint(
            "disability_cognition IS NULL OR (disability_cognition IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_cognition"),
        ),
        sa.CheckConstraint(
            "disability_communication IS NULL OR (disability_communication IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_communication"),
        ),
        sa.CheckConstraint(
            "disability_hearing IS NULL OR (disability_hearing IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_hearing"),
        ),
        sa.CheckConstraint(
            "disability_seeing IS NULL OR (disability_seeing IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_seeing"),
        ),
        sa.CheckConstraint(
            "disability_self_care IS NULL OR (disability_self_care IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_self_care"),
        ),
        sa.CheckConstraint(
            "disability_walking IS NULL OR (disability_walking IN (1, 2, 3, 4))",
            name=op.f("ck_members_disability_walking"),
        ),
        sa.CheckConstraint(
            "education_level IS NULL OR (education_level IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13))",
            name=op.f("ck_members_education_level"),
        ),
        sa.CheckConstraint(
            "ethnicity IS NULL OR (ethnicity IN (1, 2, 3, 4, 5, 6, 7, 9))", name=op.f("ck_members_ethnicity")
        ),
        sa.CheckConstraint("line_no IS NULL OR (line_no >= 1 AND line_no <= 99)", name=op.f("ck_members_line_no")),
        sa.CheckConstraint(
            "marital_status IS NULL OR (marital_status IN (1, 2, 3, 4, 5))", name=op.f("ck_members_marital_status")
        ),
        sa.CheckConstraint("name_bn IS NOT NULL OR name_en IS NOT NULL", name=op.f("ck_members_has_name")),
        sa.CheckConstraint(
            "nid_number IS NULL OR (length(nid_number) IN (10, 13, 17))", name=op.f("ck_members_nid_number")
        ),
        sa.CheckConstraint(
            "occupation IS NULL OR (occupation IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))",
            name=op.f("ck_members_occupation"),
        ),
        sa.CheckConstraint(
            "relation_to_head IS NULL OR (relation_to_head IN (1, 2, 3, 4, 5, 6, 7, 8, 9))",
            name=op.f("ck_members_relation_to_head"),
        ),
        sa.CheckConstraint("religion IS NULL OR (religion IN (1, 2, 3, 4, 9))", name=op.f("ck_members_religion")),
        sa.CheckConstraint("sex IS NULL OR (sex IN (1, 2, 3))", name=op.f("ck_members_sex")),
        sa.ForeignKeyConstraint(
            ["household_pk"], ["households.id"], name=op.f("fk_members_household_pk_households"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("household_pk", "line_no", name=op.f("uq_members_household_pk_line_no")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_household_pk", ["household_pk"], unique=False)
        batch_op.create_index("uq_members_nid_number", ["nid_number"], unique=True)

    _create_audit_guard()


def downgrade():
    _drop_audit_guard()
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("uq_members_nid_number")
        batch_op.drop_index("ix_members_household_pk")

    op.drop_table("members")
    with op.batch_alter_table("household_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_household_versions_household_created")

    op.drop_table("household_versions")
    op.drop_table("user_areas")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_index("ix_households_upazila_code")
        batch_op.drop_index("ix_households_union_code")
        batch_op.drop_index("ix_households_division_code")
        batch_op.drop_index("ix_households_district_code")

    op.drop_table("households")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_occurred_at")
        batch_op.drop_index("ix_audit_events_object")
        batch_op.drop_index("ix_audit_events_actor_id")

    op.drop_table("audit_events")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    with op.batch_alter_table("areas", schema=None) as batch_op:
        batch_op.drop_index("ix_areas_parent_code")
        batch_op.drop_index("ix_areas_level")

    op.drop_table("areas")


# The audit trail is append-only: the database itself refuses UPDATE and DELETE.
def _create_audit_guard():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only';
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def _drop_audit_guard():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
