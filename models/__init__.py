"""SQLAlchemy mapped classes only. Import every model here so metadata is complete."""

from models.audit import AuditEvent
from models.base import Base, db
from models.change_request import ChangeRequest, ChangeRequestEvidence, MemberMatchKey  # noqa: F401
from models.geo import Area
from models.grievance import Grievance, GrievanceEvent, VerificationTask  # noqa: F401
from models.household import Household, HouseholdVersion, Member
from models.job import Job
from models.pmt import PmtModel
from models.programme import EligibilityList, EligibilityListEntry, Programme  # noqa: F401
from models.score import HouseholdScore, ScoreRun
from models.user import ApiToken, User, user_areas
from models.validation import ListPublication, Objection, ObjectionDecision, ValidatedList  # noqa: F401

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
