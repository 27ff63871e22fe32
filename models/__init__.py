"""SQLAlchemy mapped classes only. Import every model here so metadata is complete."""

from models.audit import AuditEvent
from models.base import Base, db
from models.geo import Area
from models.household import Household, HouseholdVersion, Member
from models.job import Job
from models.pmt import PmtModel
from models.score import HouseholdScore, ScoreRun
from models.user import ApiToken, User, user_areas

__all__ = [
    "ApiToken",
    "Area",
    "AuditEvent",
    "Base",
    "Household",
    "HouseholdScore",
    "HouseholdVersion",
    "Job",
    "Member",
    "PmtModel",
    "ScoreRun",
    "User",
    "db",
    "user_areas",
]
