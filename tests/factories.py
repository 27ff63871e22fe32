"""Factories of valid records for tests (synthetic, never real people)."""

from __future__ import annotations

import copy
import itertools

RURAL_UNION = "10040915"  # Arpangashia, Amtali, Barguna (Barisal division)
DHAKA_UNION = None  # resolved lazily: a rural union in Dhaka division (30)

_serial = itertools.count(1)
_nid = itertools.count(1_000_000_001)

BASE_HOUSEHOLD = {
    "area_type": 1,
    "village": "Char Kukri",
    "address": "Ward 3, house 12",
    "interview_date": "2026-01-15",
    "enumerator_id": "ENU-001",
    "questionnaire_version": "NHD-2026",
    "dwelling_structure": 3,
    "wall_material": 3,
    "roof_material": 2,
    "floor_material": 1,
    "rooms": 2,
    "tenure": 1,
    "toilet_type": 2,
    "toilet_shared": False,
    "water_source": 2,
    "electricity": 1,
    "cooking_fuel": 1,
    "land_homestead_decimal": 5,
    "land_cultivable_decimal": 20,
    "cattle": 1,
    "goats_sheep": 2,
    "poultry": 6,
    **{
        f"asset_{a}": a in ("mobile_phone",)
        for a in (
            "tv",
            "refrigerator",
            "mobile_phone",
            "smartphone",
            "motorcycle",
            "bicycle",
            "rickshaw_van",
            "sewing_machine",
            "shallow_pump",
            "computer",
        )
    },
    "remittance_received": False,
    "remittance_amount_12m": 0,
    "main_income_source": 2,
    **{
        f"shock_{s}": False
        for s in (
            "flood",
            "cyclone",
            "river_erosion",
            "drought",
            "illness_death",
            "job_loss",
            "crop_loss",
            "other",
        )
    },
    "safety_net_benefits": None,
    "bank_or_mfs_account": True,
    "consent_given": True,
    "consent_date": "2026-01-15",
}


def member(line_no: int, **overrides) -> dict:
    data = {
        "line_no": line_no,
        "name_bn": "রহিম উদ্দিন",
        "name_en": "Rahim Uddin",
        "father_name": "Karim Uddin",
        "mother_name": "Fatema Begum",
        "spouse_name": None,
        "date_of_birth": None,
        "age_years": 40,
        "sex": 1,
        "relation_to_head": 1,
        "marital_status": 2,
        "religion": 1,
        "ethnicity": 1,
        "education_level": 5,
        "currently_enrolled": False,
        "occupation": 2,
        **{f"disability_{d}": 1 for d in ("seeing", "hearing", "walking", "cognition", "self_care", "communication")},
        "pregnant_or_lactating": False,
        "nid_number": None,
        "birth_reg_number": None,
        "mobile_number": None,
    }
    data.update(overrides)
    return data


def default_members() -> list[dict]:
    return [
        member(1, nid_number=str(next(_nid))),
        member(
            2,
            name_bn="রহিমা খাতুন",
            name_en="Rahima Khatun",
            sex=2,
            relation_to_head=2,
            age_years=35,
            occupation=6,
            spouse_name="Rahim Uddin",
            nid_number=str(next(_nid)),
        ),
        member(
            3,
            name_bn="সুমি",
            name_en="Sumi",
            sex=2,
            relation_to_head=3,
            age_years=8,
            marital_status=1,
            occupation=7,
            currently_enrolled=True,
            education_level=2,
            father_name="Rahim Uddin",
            mother_name="Rahima Khatun",
        ),
    ]


def household_record(union_code: str = RURAL_UNION, **overrides) -> dict:
    record = copy.deepcopy(BASE_HOUSEHOLD)
    record["union_code"] = union_code
    record["household_id"] = f"{union_code}-{next(_serial):06d}"
    record.update(overrides)
    return record


class HouseholdFactory:
    """Creates registered households through the real service (version 1, audited)."""

    def __init__(self, session):
        self.session = session

    def record(self, union_code: str = RURAL_UNION, **overrides) -> dict:
        return household_record(union_code, **overrides)

    def members(self) -> list[dict]:
        return default_members()

    def dhaka_union(self) -> str:
        from sqlalchemy import select

        from models import Area

        return self.session.scalar(
            select(Area.code)
            .where(Area.level == "union", Area.code.startswith("30"), Area.area_type == 1)
            .order_by(Area.code)
            .limit(1)
        )

    def create(self, union_code: str = RURAL_UNION, members: list[dict] | None = None, actor=None, **overrides):
        from registry.households import create_household

        record = household_record(union_code, **overrides)
        household = create_household(
            record, members if members is not None else default_members(), actor=actor, source="test"
        )
        self.session.flush()
        return household
