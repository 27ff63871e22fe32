"""Who may do what, and where.

Roles are fixed (``models.codes.ROLES``). Area-bound roles see only the areas they are
assigned to; national roles with no assigned area see the whole country. Services call
these checks with the acting user; the web and API layers turn :class:`AccessDenied`
into 403 responses that say which rule refused.
"""

from __future__ import annotations

from sqlalchemy import and_, false, or_

from models import Household, User

#: Roles whose work is tied to a territory: without assigned areas they see nothing.
AREA_BOUND_ROLES = frozenset({"enumerator", "supervisor", "grievance_officer"})
#: Roles that may read household personal data (names, IDs, phone numbers) in their area.
PII_ROLES = frozenset({"enumerator", "supervisor", "grievance_officer"})
#: Roles that may browse individual households at all.
HOUSEHOLD_READER_ROLES = frozenset({"enumerator", "supervisor", "grievance_officer", "programme_officer", "admin"})


class AccessDenied(PermissionError):
    """The user may not do this; ``reason`` says which rule refused."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def require_role(user: User, *roles: str) -> None:
    """Refuse unless the user has one of ``roles``."""
    if user.role not in roles:
        raise AccessDenied(f"role {user.role!r} may not do this (needs one of: {', '.join(roles)})")


def has_national_scope(user: User) -> bool:
    return not user.area_codes and user.role not in AREA_BOUND_ROLES


def in_scope(user: User, area_code: str) -> bool:
    """Whether ``area_code`` (any level) lies within the user's areas. BBS codes nest by prefix."""
    if has_national_scope(user):
        return True
    return any(area_code.startswith(scope) for scope in user.area_codes)


def require_area(user: User, area_code: str) -> None:
    """Refuse unless the area lies within the user's assigned areas."""
    if not in_scope(user, area_code):
        raise AccessDenied(f"area {area_code} is outside your assigned areas ({', '.join(user.area_codes) or 'none'})")


def household_scope_clause(user: User):
    """A SQL condition restricting households to the user's areas (and, for grievance officers,
    to the households named in a case of their areas)."""
    if has_national_scope(user):
        return None
    if not user.area_codes:
        return false()
    clause = or_(*(Household.union_code.startswith(code, autoescape=True) for code in user.area_codes))
    if user.role == "grievance_officer":
        from registry.grievances import case_household_scope_clause

        clause = and_(clause, case_household_scope_clause(user))
    return clause


def can_see_pii(user: User) -> bool:
    return user.role in PII_ROLES


def require_household_reader(user: User, household: Household) -> None:
    """Refuse unless the user may open this household's record."""
    if user.role not in HOUSEHOLD_READER_ROLES:
        raise AccessDenied(f"role {user.role!r} may not open individual household records")
    require_area(user, household.union_code)
    if user.role == "grievance_officer":
        # Imported here: registry.grievances itself builds on this module.
        from registry.grievances import require_case_household_access

        require_case_household_access(user, household)
