"""Masking personal data for roles that do not need it."""

from __future__ import annotations

from collections.abc import Mapping

#: Member fields that identify a person.
PII_MEMBER_FIELDS = (
    "name_bn",
    "name_en",
    "father_name",
    "mother_name",
    "spouse_name",
    "date_of_birth",
    "nid_number",
    "birth_reg_number",
    "mobile_number",
)
#: Household fields that locate a household precisely.
PII_HOUSEHOLD_FIELDS = ("address",)
MASK = "•••"


def mask_identifier(value: str | None) -> str | None:
    """Keep only the last 3 characters of an ID number (enough to tell records apart)."""
    if not value:
        return value
    return "•" * max(0, len(value) - 3) + value[-3:]


def mask_member(member: Mapping, can_see_pii: bool) -> dict:
    """A member dict with personal identifiers masked unless the viewer may see them."""
    out = dict(member)
    if can_see_pii:
        return out
    for field in PII_MEMBER_FIELDS:
        if out.get(field) is None:
            continue
        if field in ("nid_number", "birth_reg_number", "mobile_number"):
            out[field] = mask_identifier(str(out[field]))
        else:
            out[field] = MASK
    return out


def mask_household(household: Mapping, can_see_pii: bool) -> dict:
    out = dict(household)
    if not can_see_pii:
        for field in PII_HOUSEHOLD_FIELDS:
            if out.get(field):
                out[field] = MASK
    return out


def mask_snapshot(snapshot: Mapping, can_see_pii: bool) -> dict:
    """A version snapshot with its members' and household's personal data masked."""
    return {
        **snapshot,
        "household": mask_household(snapshot.get("household", {}), can_see_pii),
        "members": [mask_member(m, can_see_pii) for m in snapshot.get("members", [])],
    }
