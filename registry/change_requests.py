"""Change requests: how every field update reaches the registry, screened by a supervisor.

No field officer writes a household directly. An enumerator (or a supervisor) *submits* a change
request against the household version they saw (its *base version*); a supervisor of the
household's area, never the submitter, *approves* it, which applies it atomically and creates the
next household version; or *rejects* it with a reason. Every past state stays readable
(``registry.households``).

Kinds and their ``payload`` (the operation, kept as submitted so that a stale request can be
re-based on a newer version by applying the same operation again):

* ``new_household``: ``{"household": {...all fields, no household_id...}, "members": [{...}, ...]}``;
  the registry id (union code + next free serial) is issued on approval.
* ``edit_household``: ``{"household": {field: value, ...}}``; stored reduced to the fields that
  change. ``household_id`` and ``union_code`` never change (a move is a new registration).
* ``add_member``: ``{"member": {...}}`` (``line_no`` optional: next free line).
* ``edit_member``: ``{"line_no": n, "member": {field: value, ...}}``.
* ``remove_member``: ``{"line_no": n, "removal_reason": death|migration|marriage|duplicate|other,
  "new_head_line_no": m}`` (a new head is required when the head leaves).
* ``change_head``: ``{"new_head_line_no": n, "former_head_relation": code, "relations": {line: code}}``.
* ``split``: ``{"line_nos": [...], "new_head_line_no": n, "remaining_head_line_no": m (when the head
  leaves), "relations": {line: code}, "household": {...overrides for the new household...}}``: the
  listed members move to a new household (same union, renumbered from 1 with the new head first),
  and the old household gets a new version without them, in one transaction.
* ``deactivate``: ``{"inactive_reason": dissolved|duplicate|migrated, "duplicate_of": household id}``.

Validation is the import's (one code path: ``registry.validation.validate_record`` runs the rules of
``validate_records`` on one household) on the full proposed state, at submission and at re-base; the
validated state is stored in ``proposed``.
Approval applies it only while its base version is still current, so it does not validate the same
record against the same version again (``write_version(validated=True)``); national IDs are
re-checked against other households, and the database's CHECK constraints and unique national-ID
index still guard the write. New households (and the household a split creates) are validated again
by ``create_household``. Plausibility checks produce *warnings* for the reviewer, not refusals.

Decisions (and why):

* **One pending request per household.** Approval requires the base version to be current, so a
  second pending request would go stale the moment the first is approved, even if it touched other
  fields. A second submission is refused with 409 naming the pending one (withdraw it, or wait).
  The check runs under the household's row lock, so two simultaneous submissions cannot both pass.
* **Approval** locks the household row only (``SELECT … FOR UPDATE OF households``, found from the
  request in the same statement; SQLite serialises writers), then reads the request again and
  checks it is still pending and that its base version is current. If not, the request becomes
  ``stale`` (that state is flushed and the caller commits it before answering 409) and the
  submitter may ``rebase`` it: the same operation applied to the current version, revalidated, with
  the changes made in between shown. Rejecting, withdrawing and re-basing take the same household
  lock, and so does a submission (from its first read of the household, so that its base check and
  one-pending check see what a concurrent decision committed), so every decision on a household's
  requests is serialised by one row lock (a new household's request, having no household row yet,
  locks its own row). Validation and duplicate search happen at submission, so an approval holds the
  lock for a few statements only: an edit's approval is about ten statements (see
  ``bench/approval_bench.py``); a submission holds it while it validates its one household.
* **High-risk requests** (a national ID changed or cleared on an existing member, a deactivation,
  a likely duplicate person) need two approvals by two different supervisors, neither the
  submitter. The first approval is recorded; the second applies.
* **National ID conflicts** (an ID held by a current member of another household) do not stop a
  submission (the field officer may be right) but block approval, with the other household named,
  until the other household's record is corrected through its own change request, or the request is
  rejected.
* **Roles**: enumerators and supervisors submit within their areas; supervisors approve and reject
  within their areas; grievance officers may read requests in their areas (field verification links
  to them); administrators, statisticians, programme officers and viewers have no access.

Re-scoring: :data:`AFTER_APPROVAL_HOOKS` are called inside the approval transaction with
``(household, version, actor)`` for every household version an approval creates (two for a split),
after the version is written and before the commit. A hook that raises aborts the approval (nothing
is applied); a hook that must never block approvals should catch its own errors or enqueue a job.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import BigInteger, and_, bindparam, cast, false, func, or_, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from models import Household, HouseholdVersion, Member, User, db
from models.base import utcnow
from models.change_request import (
    CHANGE_KINDS,
    CHANGE_STATUSES,
    REMOVAL_REASONS,
    ChangeRequest,
    ChangeRequestEvidence,
)
from models.codes import HEAD, HOUSEHOLD_SPECS, MEMBER_SPECS, RELATION_TO_HEAD, UNION_CODE_PATTERN
from models.household import DEACTIVATION_REASONS
from registry import access, dedup
from registry import households as hh
from registry.audit import record_event
from registry.diff import diff_states, mask_diff, same_value, side_by_side
from registry.geo import union_area_types
from registry.validation import Issue, RecordValidationError, validate_record

log = logging.getLogger(__name__)

#: Called as ``hook(household, version, actor)`` inside the approval transaction for every version
#: an approval creates. Register with ``AFTER_APPROVAL_HOOKS.append(func)``; see the module docstring.
AFTER_APPROVAL_HOOKS: list[Callable[[Household, HouseholdVersion, User], None]] = []

SUBMITTER_ROLES = ("enumerator", "supervisor")
APPROVER_ROLES = ("supervisor",)
READER_ROLES = ("enumerator", "supervisor", "grievance_officer")

#: Evidence files: accepted types by magic bytes (never by extension or the client's claim).
EVIDENCE_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
EVIDENCE_MAX_BYTES = 5 * 1024 * 1024
EVIDENCE_MAX_FILES = 10
BULK_MAX_ITEMS = 200
#: pg_advisory_xact_lock class id serialising registry-id allocation within a union.
_SERIAL_LOCK_CLASS = 20_003
#: Member fields whose change makes a person worth a duplicate search.
_IDENTITY_FIELDS = ("name_bn", "name_en", "father_name", "mother_name", "date_of_birth", "sex")
_FORBIDDEN_HOUSEHOLD_EDITS = ("household_id", "union_code")


# --- errors ------------------------------------------------------------------------------


class ChangeRequestNotFound(LookupError):
    def __init__(self, change_request_id):
        super().__init__(f"no change request {change_request_id!r}")


class ChangeRequestConflict(Exception):
    """The request cannot proceed in the registry's current state (HTTP 409). ``code`` is
    machine-readable, ``details`` says what conflicts (the pending request, the other household...)."""

    code = "conflict"

    def __init__(self, code: str, message: str, details: dict | None = None):
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(message)


class ChangeRequestStale(ChangeRequestConflict):
    """Approval found the base version outdated; the request is now ``stale`` (flushed, to commit)."""


def _invalid(field: str, value, rule: str) -> RecordValidationError:
    return RecordValidationError(
        [Issue("change_request", None, None, field, "" if value is None else str(value), rule)]
    )


# --- small helpers -----------------------------------------------------------------------


def _json_value(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _int(value, field: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise _invalid(field, value, "a whole number") from None
    return number


def _relation_code(value, field: str) -> int:
    code = _int(value, field)
    if code not in RELATION_TO_HEAD or code == HEAD:
        raise _invalid(field, value, "a relation code other than 1 (head): " + ", ".join(map(str, RELATION_TO_HEAD)))
    return code


# --- building the proposed state -----------------------------------------------------------


def _members(state: Mapping) -> dict[int, dict]:
    return {int(m["line_no"]): dict(m) for m in state["members"]}


def _state(household: dict, members: Iterable[dict], status="active", inactive_reason=None) -> dict:
    return {
        "household": household,
        "status": status,
        "inactive_reason": inactive_reason,
        "members": sorted(members, key=lambda m: int(m["line_no"])),
    }


def _line(payload: Mapping, key: str, lines: Mapping[int, dict]) -> int:
    if payload.get(key) in (None, ""):
        raise _invalid(key, None, "required for this kind of change")
    line_no = _int(payload[key], key)
    if line_no not in lines:
        raise _invalid(key, line_no, f"no member with this line number (lines: {', '.join(map(str, sorted(lines)))})")
    return line_no


def _apply_relations(members: dict[int, dict], relations: Mapping | None, field: str = "relations") -> None:
    for key, code in (relations or {}).items():
        line_no = _int(key, field)
        if line_no not in members:
            raise _invalid(f"{field}.{key}", key, "no member with this line number")
        members[line_no]["relation_to_head"] = _relation_code(code, f"{field}.{key}")


def _check_keys(data: Mapping, allowed, field: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise RecordValidationError(
            [Issue("change_request", None, None, f"{field}.{k}", "", "not a field of the registry") for k in unknown]
        )


def build_proposed(kind: str, payload: Mapping, base: Mapping | None) -> tuple[dict, dict | None]:
    """Apply an operation to a base state (a version snapshot): returns the proposed state and, for
    a split, the state of the household split off. Pure (no database); values are not yet validated."""
    payload = copy.deepcopy(dict(payload or {}))
    if kind == "new_household":
        household = payload.get("household") or {}
        members = payload.get("members") or []
        if not isinstance(household, Mapping) or not isinstance(members, list):
            raise _invalid("household", None, "an object with the household's fields and a list of members")
        _check_keys(household, HOUSEHOLD_SPECS, "household")
        # Named by position in the list (1, 2, ...): a member without a valid line number has no other
        # name, and the state is ordered by line number before validation reads it.
        for position, member in enumerate(members, start=1):
            if not isinstance(member, Mapping):
                raise _invalid(f"members.{position}", member, "an object with the member's fields")
            _check_keys(member, MEMBER_SPECS, "members")
            if member.get("line_no") in (None, ""):
                raise _invalid(f"members.{position}.line_no", None, "required")
            _int(member["line_no"], f"members.{position}.line_no")
        return _state(dict(household), [dict(m) for m in members]), None
    if base is None:
        raise _invalid("household_id", None, "required for this kind of change")
    household = dict(base["household"])
    members = _members(base)
    status, inactive_reason = base.get("status", "active"), base.get("inactive_reason")

    if kind == "edit_household":
        changes = payload.get("household") or {}
        _check_keys(changes, HOUSEHOLD_SPECS, "household")
        for field in _FORBIDDEN_HOUSEHOLD_EDITS:
            if field in changes and not same_value(changes[field], household.get(field)):
                raise _invalid(f"household.{field}", changes[field], "cannot change (a move is a new registration)")
        household.update({k: v for k, v in changes.items() if k not in _FORBIDDEN_HOUSEHOLD_EDITS})
    elif kind == "add_member":
        member = dict(payload.get("member") or {})
        _check_keys(member, MEMBER_SPECS, "member")
        line_no = member.get("line_no")
        line_no = max(members, default=0) + 1 if line_no in (None, "") else _int(line_no, "member.line_no")
        if line_no in members:
            raise _invalid("member.line_no", line_no, "line number already used in this household")
        member["line_no"] = line_no
        members[line_no] = member
    elif kind == "edit_member":
        line_no = _line(payload, "line_no", members)
        changes = dict(payload.get("member") or {})
        _check_keys(changes, MEMBER_SPECS, "member")
        if changes.get("line_no") not in (None, "") and _int(changes["line_no"], "member.line_no") != line_no:
            raise _invalid("member.line_no", changes["line_no"], "line numbers do not change")
        changes.pop("line_no", None)
        members[line_no].update(changes)
    elif kind == "remove_member":
        line_no = _line(payload, "line_no", members)
        if payload.get("removal_reason") not in REMOVAL_REASONS:
            raise _invalid("removal_reason", payload.get("removal_reason"), "one of " + ", ".join(REMOVAL_REASONS))
        if len(members) == 1:
            raise _invalid("line_no", line_no, "the last member cannot be removed: deactivate the household instead")
        removed = members.pop(line_no)
        if int(removed.get("relation_to_head") or 0) == HEAD:
            new_head = _line(payload, "new_head_line_no", members)
            members[new_head]["relation_to_head"] = HEAD
        _apply_relations(members, payload.get("relations"))
    elif kind == "change_head":
        new_head = _line(payload, "new_head_line_no", members)
        if int(members[new_head].get("relation_to_head") or 0) == HEAD:
            raise _invalid("new_head_line_no", new_head, "this member is already the head")
        former = payload.get("former_head_relation")
        if former in (None, ""):
            raise _invalid("former_head_relation", None, "required: the former head's relation to the new head")
        former_code = _relation_code(former, "former_head_relation")
        for member in members.values():
            if int(member.get("relation_to_head") or 0) == HEAD:
                member["relation_to_head"] = former_code
        members[new_head]["relation_to_head"] = HEAD
        _apply_relations(members, payload.get("relations"))
    elif kind == "split":
        return _split(payload, household, members, status, inactive_reason)
    elif kind == "deactivate":
        reason = payload.get("inactive_reason")
        if reason not in DEACTIVATION_REASONS:
            raise _invalid("inactive_reason", reason, "one of " + ", ".join(DEACTIVATION_REASONS))
        status, inactive_reason = "inactive", reason
    else:
        raise _invalid("kind", kind, "one of " + ", ".join(CHANGE_KINDS))
    return _state(household, members.values(), status, inactive_reason), None


def _split(payload, household, members, status, inactive_reason):
    raw = payload.get("line_nos")
    if not isinstance(raw, list | tuple) or not raw:
        raise _invalid("line_nos", raw, "a non-empty list of the line numbers of the members who move")
    moving = []
    for value in raw:
        line_no = _int(value, "line_nos")
        if line_no not in members:
            raise _invalid("line_nos", line_no, "no member with this line number")
        if line_no not in moving:
            moving.append(line_no)
    if len(moving) == len(members):
        raise _invalid("line_nos", ",".join(map(str, moving)), "at least one member must stay (or deactivate instead)")
    new_head = payload.get("new_head_line_no")
    if new_head in (None, ""):
        raise _invalid("new_head_line_no", None, "required: who heads the new household")
    new_head = _int(new_head, "new_head_line_no")
    if new_head not in moving:
        raise _invalid("new_head_line_no", new_head, "must be one of the members who move")
    overrides = dict(payload.get("household") or {})
    _check_keys(overrides, HOUSEHOLD_SPECS, "household")
    for field in _FORBIDDEN_HOUSEHOLD_EDITS:
        overrides.pop(field, None)
    relations = payload.get("relations") or {}
    _apply_relations(members, relations)
    stay = {n: m for n, m in members.items() if n not in moving}
    if not any(int(m.get("relation_to_head") or 0) == HEAD for m in stay.values()):
        remaining_head = _line(payload, "remaining_head_line_no", stay)
        stay[remaining_head]["relation_to_head"] = HEAD
    # The new household numbers its members from 1, the new head first, others in their old order.
    order = [new_head] + [n for n in moving if n != new_head]
    line_map = {old: i + 1 for i, old in enumerate(order)}
    moved = []
    for old in order:
        member = dict(members[old])
        member["line_no"] = line_map[old]
        if old == new_head:
            member["relation_to_head"] = HEAD
        elif int(member.get("relation_to_head") or 0) == HEAD:
            raise _invalid(f"relations.{old}", HEAD, "the former head moves but is not the new head: give a relation")
        moved.append(member)
    new_household = {**household, **overrides, "household_id": None}
    proposed = _state(household, stay.values(), status, inactive_reason)
    proposed["line_map"] = {str(k): v for k, v in line_map.items()}
    return proposed, _state(new_household, moved)


# --- validation --------------------------------------------------------------------------


def _validated(state: Mapping, *, prefix: str = "", new: bool = False) -> dict:
    """Validate a proposed state with the import rules; return it typed (JSON values) or raise
    :class:`RecordValidationError` naming every bad field (``household.rooms``, ``members.3.age_years``)."""
    household = dict(state["household"])
    union = household.get("union_code")
    if new:
        # The registry issues the id on approval; validate with a placeholder of the right shape.
        household["household_id"] = f"{union}-000000" if union and UNION_CODE_PATTERN.match(str(union)) else None
    members = [dict(m) for m in state["members"]]
    typed_h, typed_members, issues = validate_record(
        household,
        members,
        union_area_types=union_area_types,
        registered_nids=None,  # NIDs held elsewhere are conflicts to resolve, not input errors
    )
    issues = [i for i in issues if not (new and i.field == "household_id")]
    if issues:
        renamed = []
        for issue in issues:
            if issue.file == "members" and issue.row is not None and 0 < issue.row <= len(members):
                line = members[issue.row - 1].get("line_no")
                field = f"{prefix}members.{line if line not in (None, '') else '?'}.{issue.field}"
            else:
                field = f"{prefix}household.{issue.field}"
            renamed.append(Issue("change_request", issue.row, issue.household_id, field, issue.value, issue.rule))
        raise RecordValidationError(renamed)
    out_household = {f: _json_value(typed_h.get(f)) for f in hh.SNAPSHOT_HOUSEHOLD_FIELDS}
    if new:
        out_household["household_id"] = None
    out_members = [{f: _json_value(m.get(f)) for f in hh.SNAPSHOT_MEMBER_FIELDS} for m in typed_members]
    out = _state(out_household, out_members, state.get("status", "active"), state.get("inactive_reason"))
    if "line_map" in state:
        out["line_map"] = state["line_map"]
    return out


def plausibility_warnings(kind: str, base: Mapping | None, proposed: Mapping, new_household: Mapping | None) -> list:
    """Checks that do not refuse a request but that the reviewer should look at."""
    warnings = []

    def warn(code, message, field=None, line_no=None, household="proposed"):
        warnings.append({"code": code, "message": message, "field": field, "line_no": line_no, "household": household})

    for label, state in (("proposed", proposed), ("new_household", new_household)):
        if state is None:
            continue
        members = _members(state)
        head = next((m for m in members.values() if int(m.get("relation_to_head") or 0) == HEAD), None)
        if head is not None and head.get("age_years") is not None:
            head_age = int(head["age_years"])
            if head_age < 15:
                warn(
                    "head_under_15",
                    f"the head (line {head['line_no']}) is {head_age} years old",
                    "age_years",
                    head["line_no"],
                    label,
                )
            for m in members.values():
                rel, age = int(m.get("relation_to_head") or 0), m.get("age_years")
                if age is None:
                    continue
                if rel == 3 and int(age) > head_age - 12:
                    warn(
                        "child_not_younger",
                        f"child (line {m['line_no']}) aged {age} is not 12+ years younger than the head ({head_age})",
                        "age_years",
                        m["line_no"],
                        label,
                    )
                if rel == 6 and int(age) < head_age + 12:
                    warn(
                        "parent_not_older",
                        f"parent (line {m['line_no']}) aged {age} is not 12+ years older than the head ({head_age})",
                        "age_years",
                        m["line_no"],
                        label,
                    )
    if new_household is not None:
        for m in new_household["members"]:
            if int(m.get("relation_to_head") or 0) != HEAD:
                warn(
                    "relation_carried_over",
                    f"line {m['line_no']}: relation to head carried over from the old household unless given; check it",
                    "relation_to_head",
                    m["line_no"],
                    "new_household",
                )
    if base is None:
        return warnings
    old_h, new_h = base["household"], proposed["household"]
    for field in ("land_homestead_decimal", "land_cultivable_decimal"):
        old, new = float(old_h.get(field) or 0), float(new_h.get(field) or 0)
        low, high = min(old, new), max(old, new)
        if (low > 0 and high >= 10 * low) or (low == 0 and high >= 10 and old != new):
            warn("land_jump", f"{field} changes from {old:g} to {new:g} (10 times or more)", field)
    size_change = len(proposed["members"]) - len(base["members"])
    if abs(size_change) > 3:
        warn(
            "size_jump",
            f"household size changes by {size_change:+d} ({len(base['members'])} to {len(proposed['members'])})",
            "members",
        )
    old_m, new_m = _members(base), _members(proposed)
    for line_no in sorted(old_m.keys() & new_m.keys()):
        old_age, new_age = old_m[line_no].get("age_years"), new_m[line_no].get("age_years")
        if old_age is not None and new_age is not None and int(new_age) < int(old_age):
            warn("age_decreases", f"line {line_no}: age decreases from {old_age} to {new_age}", "age_years", line_no)
        old_nid, new_nid = old_m[line_no].get("nid_number"), new_m[line_no].get("nid_number")
        if old_nid and old_nid != new_nid:
            warn(
                "nid_changed",
                f"line {line_no}: national ID changes from {old_nid} to {new_nid or 'none'}",
                "nid_number",
                line_no,
            )
    return warnings


def _risk_reasons(kind: str, base: Mapping | None, proposed: Mapping, flags: list) -> list[str]:
    reasons = []
    if base is not None:
        old_m, new_m = _members(base), _members(proposed)
        for line_no in sorted(old_m.keys() & new_m.keys()):
            old_nid = old_m[line_no].get("nid_number")
            if old_nid and old_nid != new_m[line_no].get("nid_number"):
                reasons.append(f"national ID change (line {line_no})")
    if kind == "deactivate":
        reasons.append("deactivation")
    if flags:
        reasons.append("likely duplicate person")
    return reasons


def _persons_to_check(kind: str, base: Mapping | None, proposed: Mapping) -> list[dict]:
    """Members worth a duplicate search: new persons, and persons whose identity fields changed."""
    if kind == "new_household":
        return list(proposed["members"])
    if base is None or kind in ("split", "deactivate", "remove_member", "change_head"):
        return []
    old_m = _members(base)
    out = []
    for line_no, member in _members(proposed).items():
        old = old_m.get(line_no)
        if old is None or any(not same_value(old.get(f), member.get(f)) for f in _IDENTITY_FIELDS):
            out.append(member)
    return out


def find_nid_conflicts(
    states: Iterable[Mapping | None], exclude_household_pks: Iterable[int], *, own_nids: Iterable[str] = ()
) -> list[dict]:
    """National IDs in the proposed states held by current members of *other* households.

    ``own_nids`` are the IDs the excluded household's current members hold: the unique index on
    members' national IDs means no other household holds them, so they are not looked up (an edit
    that keeps the household's IDs costs no query)."""
    by_nid = {}
    own = set(own_nids)
    for state in states:
        if state is None:
            continue
        for m in state["members"]:
            if m.get("nid_number") and m["nid_number"] not in own:
                by_nid[m["nid_number"]] = m["line_no"]
    if not by_nid:
        return []
    stmt = (
        select(Member.nid_number, Member.line_no, Household.household_id)
        .join(Household, Household.id == Member.household_pk)
        .where(Member.nid_number.in_(sorted(by_nid)))
    )
    exclude = [pk for pk in exclude_household_pks if pk is not None]
    if exclude:
        stmt = stmt.where(Member.household_pk.not_in(exclude))
    return [
        {"line_no": by_nid[nid], "nid_number": nid, "household_id": other, "other_line_no": other_line}
        for nid, other_line, other in db.session.execute(stmt).all()
    ]


def _nids_of(household: Household | None) -> set[str]:
    """National IDs held by a household's current members (loaded with it)."""
    if household is None:
        return set()
    return {m.nid_number for m in household.members if m.nid_number}


@dataclass
class _Prepared:
    payload: dict
    proposed: dict
    new_household: dict | None
    warnings: list
    flags: list
    nid_conflicts: list
    risks: list


def _prepare(kind: str, payload: Mapping, base: Mapping | None, household: Household | None) -> _Prepared:
    """Everything done before the lock: apply, validate, warn, search duplicates and NID conflicts."""
    proposed_raw, new_raw = build_proposed(kind, payload, base)
    proposed = _validated(proposed_raw, new=kind == "new_household")
    new_household = _validated(new_raw, prefix="new_household.", new=True) if new_raw is not None else None
    payload = copy.deepcopy(dict(payload or {}))
    if kind == "edit_household":
        payload["household"] = {
            f: v
            for f, v in proposed["household"].items()
            if f not in _FORBIDDEN_HOUSEHOLD_EDITS and not same_value(base["household"].get(f), v)
        }
    elif kind == "edit_member":
        line_no = int(payload["line_no"])
        old, new = _members(base)[line_no], _members(proposed)[line_no]
        payload["line_no"] = line_no
        payload["member"] = {f: v for f, v in new.items() if f != "line_no" and not same_value(old.get(f), v)}
    if base is not None and new_household is None and diff_states(base, proposed)["is_empty"]:
        raise _invalid("payload", "", "the request changes nothing in the household")
    warnings = plausibility_warnings(kind, base, proposed, new_household)
    own = [household.id] if household is not None else []
    persons = _persons_to_check(kind, base, proposed)
    flags = (
        dedup.find_duplicates(
            persons, interview_date=proposed["household"].get("interview_date"), exclude_household_pks=own
        )
        if persons
        else []
    )
    conflicts = find_nid_conflicts([proposed, new_household], own, own_nids=_nids_of(household))
    return _Prepared(
        payload, proposed, new_household, warnings, flags, conflicts, _risk_reasons(kind, base, proposed, flags)
    )


# --- access ------------------------------------------------------------------------------


def require_reader(user: User, cr: ChangeRequest) -> None:
    """Refuse unless the user may see this change request."""
    if user.role not in READER_ROLES:
        raise access.AccessDenied(f"role {user.role!r} has no access to change requests")
    access.require_area(user, cr.union_code)
    if user.role == "grievance_officer":
        # Imported here: registry.grievances builds on this module.
        from registry.grievances import require_case_change_request_access

        require_case_change_request_access(user, cr)


def _require_reviewer(user: User, cr: ChangeRequest) -> None:
    if user.role not in APPROVER_ROLES:
        raise access.AccessDenied(
            f"role {user.role!r} may not review change requests (needs: supervisor)"
            + ("; administrators never approve data" if user.role == "admin" else "")
        )
    access.require_area(user, cr.union_code)
    if cr.submitted_by_id == user.id:
        raise access.AccessDenied("you submitted this change request: another supervisor must review it (four eyes)")


def _require_approver(user: User, cr: ChangeRequest) -> None:
    _require_reviewer(user, cr)
    if cr.approvals_required > 1 and cr.first_approved_by_id == user.id:
        raise access.AccessDenied(
            "you gave the first approval of this high-risk change request: the second must come from another supervisor"
        )


def _require_submitter(user: User, cr: ChangeRequest, action: str) -> None:
    if cr.submitted_by_id != user.id:
        raise access.AccessDenied(f"only the submitter may {action} a change request")
    access.require_area(user, cr.union_code)


def scope_clause(user: User):
    """A SQL condition restricting change requests to the user's areas (None: no restriction)."""
    if user.role not in READER_ROLES:
        return false()
    if access.has_national_scope(user):
        return None
    if not user.area_codes:
        return false()
    clause = or_(*(ChangeRequest.union_code.startswith(code, autoescape=True) for code in user.area_codes))
    if user.role == "grievance_officer":
        # A change request carries a household's personal data: only those of their cases.
        from registry.grievances import case_change_request_scope_clause

        clause = and_(clause, case_change_request_scope_clause(user))
    return clause


# --- writes ------------------------------------------------------------------------------


# The two statements of every decision, built once (SQLAlchemy caches their SQL, not their construction).
_LOCK_HOUSEHOLD_OF_REQUEST = (
    select(Household)
    .where(
        Household.id
        == select(ChangeRequest.household_pk).where(ChangeRequest.id == bindparam("cr_id")).scalar_subquery()
    )
    .with_for_update(of=Household)
    .options(joinedload(Household.members))
    .execution_options(populate_existing=True)
)
# The submitter (for the answer's "submitted_by") and the evidence list come in the same statement.
_REQUEST_AFTER_LOCK = (
    select(ChangeRequest)
    .where(ChangeRequest.id == bindparam("cr_id"))
    .options(
        joinedload(ChangeRequest.submitted_by).lazyload(User.areas),
        joinedload(ChangeRequest.evidence),
    )
    .execution_options(populate_existing=True)
)


def _lock_for_decision(change_request_id) -> tuple[Household | None, ChangeRequest]:
    """Serialise every decision on a request (approve, reject, withdraw, re-base) and every submission
    for the same household on one lock: the household's row, found from the request in the same
    statement. The request is read after the lock, so a decision taken meanwhile is seen. A new
    household has no row yet: its request row is locked instead (an approval sets ``household_pk``
    only when it commits). Raises :class:`ChangeRequestNotFound`."""
    try:
        cr_id = int(change_request_id)
    except (TypeError, ValueError):
        raise ChangeRequestNotFound(change_request_id) from None
    household = db.session.execute(_LOCK_HOUSEHOLD_OF_REQUEST, {"cr_id": cr_id}).unique().scalar_one_or_none()
    stmt = _REQUEST_AFTER_LOCK if household is not None else _REQUEST_AFTER_LOCK.with_for_update(of=ChangeRequest)
    cr = db.session.execute(stmt, {"cr_id": cr_id}).unique().scalar_one_or_none()
    if cr is None:
        raise ChangeRequestNotFound(change_request_id)
    if household is not None:
        set_committed_value(cr, "household", household)  # keeps it in the session for the answer
    return household, cr


_HOUSEHOLD_WITH_MEMBERS = (
    select(Household).where(Household.household_id == bindparam("household_id")).options(joinedload(Household.members))
)
_HOUSEHOLD_WITH_MEMBERS_LOCKED = _HOUSEHOLD_WITH_MEMBERS.with_for_update(of=Household).execution_options(
    populate_existing=True
)


def _household_for_update(household_id: str, *, lock: bool = False) -> Household:
    """The current state of a household by registry id, with its members, in one statement;
    ``lock``: under its row lock (``FOR UPDATE OF households``), read as it is once locked."""
    stmt = _HOUSEHOLD_WITH_MEMBERS_LOCKED if lock else _HOUSEHOLD_WITH_MEMBERS
    household = db.session.execute(stmt, {"household_id": household_id}).unique().scalar_one_or_none()
    if household is None:
        raise hh.HouseholdNotFound(household_id)
    return household


#: The columns a refusal names (not the whole request: every submission asks, almost always for none).
_PENDING_OF_HOUSEHOLD = (
    select(ChangeRequest.id, ChangeRequest.household_id, ChangeRequest.kind, ChangeRequest.submitted_at)
    .where(
        ChangeRequest.household_pk == bindparam("household_pk"),
        ChangeRequest.status == "pending",
        ChangeRequest.id != bindparam("exclude_id"),
    )
    .order_by(ChangeRequest.id)
    .limit(1)
)


def _pending_for(household_pk: int, exclude_id: int | None = None):
    """The household's pending request other than ``exclude_id`` (id, household_id, kind,
    submitted_at), or None."""
    # Request ids start at 1: 0 excludes none.
    params = {"household_pk": household_pk, "exclude_id": exclude_id if exclude_id is not None else 0}
    return db.session.execute(_PENDING_OF_HOUSEHOLD, params).first()


def _pending_conflict(pending) -> ChangeRequestConflict:
    return ChangeRequestConflict(
        "pending_exists",
        f"household {pending.household_id} already has a pending change request ({pending.id}, {pending.kind}, "
        f"submitted {pending.submitted_at:%Y-%m-%d %H:%M} UTC): wait for its review or withdraw it",
        {"pending_change_request": pending.id, "kind": pending.kind, "submitted_at": pending.submitted_at.isoformat()},
    )


def _outdated_conflict(household: Household, base_version: int) -> ChangeRequestConflict:
    current = household.current_version
    return ChangeRequestConflict(
        "base_outdated",
        f"household {household.household_id} is at version {current}; your change was made "
        f"against version {base_version}: reload it and propose again",
        {"household_id": household.household_id, "current_version": current, "base_version": base_version},
    )


def submit_change(
    actor: User,
    kind: str,
    *,
    payload: Mapping,
    reason: str,
    household_id: str | None = None,
    base_version: int | None = None,
    single_pending: bool = True,
) -> ChangeRequest:
    """Submit a change request (flushes; the caller commits).

    Raises :class:`AccessDenied` (role or area), :class:`RecordValidationError` (every bad field),
    :class:`ChangeRequestConflict` (another request pending, base version outdated, household inactive)
    or ``HouseholdNotFound``. ``single_pending=False`` skips the one-pending-request rule; it exists
    for tests of the approval lock and for tools that knowingly queue alternatives (approval still
    lets only one of them apply).
    """
    access.require_role(actor, *SUBMITTER_ROLES)
    reason = (reason or "").strip()
    problems = []
    if kind not in CHANGE_KINDS:
        problems.append(Issue("change_request", None, None, "kind", str(kind), "one of " + ", ".join(CHANGE_KINDS)))
    if not reason:
        problems.append(Issue("change_request", None, None, "reason", "", "required: why the change is needed"))
    if kind in CHANGE_KINDS and kind != "new_household":
        if not household_id:
            problems.append(Issue("change_request", None, None, "household_id", "", "required for this kind"))
        if base_version is None:
            problems.append(Issue("change_request", None, None, "base_version", "", "required: the version you saw"))
    if problems:
        raise RecordValidationError(problems)

    household = None
    base = None
    if kind == "new_household":
        union = str(((payload or {}).get("household") or {}).get("union_code") or "")
        if UNION_CODE_PATTERN.match(union):
            access.require_area(actor, union)
    else:
        # Under the household's lock from the first read: the base check and the one-pending rule
        # below must see what concurrent decisions on this household committed (see the module
        # docstring). Only requests on this same household wait for it.
        household = _household_for_update(household_id, lock=True)
        access.require_area(actor, household.union_code)
        if household.status != "active":
            raise ChangeRequestConflict(
                "inactive",
                f"household {household.household_id} is inactive ({household.inactive_reason})",
                {"household_id": household.household_id},
            )
        if base_version != household.current_version:
            raise _outdated_conflict(household, base_version)
        if single_pending and (pending := _pending_for(household.id)) is not None:
            raise _pending_conflict(pending)
        base = hh.version_snapshot(household, base_version)
        union = household.union_code

    prepared = _prepare(kind, payload, base, household)

    cr = ChangeRequest(
        kind=kind,
        status="pending",
        household_pk=household.id if household else None,
        household_id=household.household_id if household else None,
        union_code=union,
        base_version=base_version if household else None,
        payload=prepared.payload,
        proposed={**prepared.proposed, **({"new_household": prepared.new_household} if prepared.new_household else {})},
        reason=reason,
        warnings=prepared.warnings,
        duplicate_flags=prepared.flags,
        nid_conflicts=prepared.nid_conflicts,
        risk_reasons=prepared.risks,
        approvals_required=2 if prepared.risks else 1,
        submitted_by_id=actor.id,
        evidence=[],  # none yet: known, so that showing the new request does not query for it
    )
    if household is not None:
        set_committed_value(cr, "household", household)  # loaded with its members: the answer reads it
    db.session.add(cr)
    db.session.flush()
    target = cr.household_id or f"a new household in {union}"
    record_event(
        actor,
        "change_request.submit",
        "change_request",
        cr.id,
        summary=f"{kind} on {target} against v{base_version or 0}: {reason}"[:500],
        after={
            "kind": kind,
            "household_id": cr.household_id,
            "base_version": base_version,
            "warnings": len(prepared.warnings),
            "duplicate_flags": len(prepared.flags),
            "nid_conflicts": len(prepared.nid_conflicts),
            "risk_reasons": prepared.risks,
        },
    )
    return cr


def _states_of(cr: ChangeRequest) -> tuple[dict, dict | None]:
    proposed = dict(cr.proposed)
    new_household = proposed.pop("new_household", None)
    return proposed, new_household


def _allocate_household_id(union_code: str) -> str:
    """The next free registry id in a union (union code + serial), serialised per union."""
    if _is_postgres():
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": _SERIAL_LOCK_CLASS, "key": int(union_code)}
        )
    last = db.session.scalar(
        select(func.max(cast(func.substr(Household.household_id, 10), BigInteger))).where(
            Household.union_code == union_code
        )
    )
    return f"{union_code}-{(last or 0) + 1:06d}"


def _nid_conflict_error(cr: ChangeRequest, conflicts: list[dict]) -> ChangeRequestConflict:
    listing = "; ".join(
        f"line {c['line_no']}: NID {c['nid_number']} is held by household {c['household_id']} "
        f"(line {c['other_line_no']})"
        for c in conflicts
    )
    return ChangeRequestConflict(
        "nid_conflict",
        f"national ID conflict blocks approval until it is resolved on the other household: {listing}",
        {"nid_conflicts": conflicts},
    )


def approve_change(change_request_id: int, actor: User) -> ChangeRequest:
    """Approve a pending change request (flushes; the caller commits).

    Returns the request, ``approved`` (applied: ``applied_version_no`` is the new version) or still
    ``pending`` after the first of two approvals of a high-risk request. Raises :class:`AccessDenied`,
    :class:`ChangeRequestConflict` (not pending, national ID conflict, concurrent integrity conflict)
    and :class:`ChangeRequestStale` (the request is now stale: commit, then tell the reviewer why).
    """
    household, cr = _lock_for_decision(change_request_id)
    _require_approver(actor, cr)
    if cr.status != "pending":
        raise ChangeRequestConflict("not_pending", f"change request {cr.id} is {cr.status}", {"status": cr.status})
    proposed, new_household = _states_of(cr)
    exclude = [cr.household_pk] if cr.household_pk else []
    # National IDs again (the other household may have been corrected, or taken one since): only IDs
    # the household does not already hold, through the unique index; none for most edits.
    conflicts = find_nid_conflicts([proposed, new_household], exclude, own_nids=_nids_of(household))
    if conflicts:
        raise _nid_conflict_error(cr, conflicts)
    now = utcnow()
    if household is not None and household.current_version != cr.base_version:
        cr.status = "stale"
        cr.decided_by_id = actor.id
        cr.decided_at = now
        cr.updated_at = now
        cr.decision_reason = (
            f"household {household.household_id} is at version {household.current_version}, but this request was "
            f"made against version {cr.base_version}; the submitter may re-base it"
        )
        record_event(
            actor,
            "change_request.stale",
            "change_request",
            cr.id,
            summary=cr.decision_reason,
            before={"base_version": cr.base_version},
            after={"current_version": household.current_version},
        )
        db.session.flush()
        raise ChangeRequestStale(
            "stale",
            cr.decision_reason,
            {
                "base_version": cr.base_version,
                "current_version": household.current_version,
                "changed_since_base": _changed_since_base_summary(household, cr.base_version),
            },
        )
    if cr.approvals_required > 1 and cr.first_approved_by_id is None:
        cr.first_approved_by_id = actor.id
        cr.first_approved_at = now
        cr.updated_at = now
        record_event(
            actor,
            "change_request.first_approval",
            "change_request",
            cr.id,
            summary=f"first of two approvals ({'; '.join(cr.risk_reasons)})",
        )
        db.session.flush()
        return cr

    try:
        applied = _apply(cr, household, proposed, new_household, actor)
    except IntegrityError as exc:
        # A concurrent approval elsewhere took something unique (a national ID, a registry id).
        raise ChangeRequestConflict(
            "integrity",
            "a concurrent change conflicts with this one (e.g. the same national ID approved for "
            "another household at the same moment); review again",
            {"detail": str(exc.orig)[:300]},
        ) from exc
    except RecordValidationError as exc:
        nid_issues = [i for i in exc.issues if i.field == "nid_number" and "already held" in i.rule]
        if nid_issues and len(nid_issues) == len(exc.issues):
            raise _nid_conflict_error(cr, find_nid_conflicts([proposed, new_household], exclude)) from exc
        raise
    main_household, version = applied[0]
    cr.status = "approved"
    cr.decided_by_id = actor.id
    cr.decided_at = now
    cr.updated_at = now
    cr.applied_version_no = version.version_no
    cr.household_pk = main_household.id
    cr.household_id = main_household.household_id
    if len(applied) > 1:
        cr.new_household_pk = applied[1][0].id
    elif cr.kind == "new_household":
        cr.new_household_pk = main_household.id
    for target, target_version in applied:
        if target_version.version_no == 1:
            continue  # create_household audited the registration itself
        record_event(
            actor,
            "household.update",
            "household",
            target.household_id,
            summary=f"v{target_version.version_no} from change request {cr.id} ({cr.kind})",
            after={"version": target_version.version_no, "change_request": cr.id},
        )
    record_event(
        actor,
        "change_request.approve",
        "change_request",
        cr.id,
        summary=f"approved {cr.kind} on {cr.household_id}: v{cr.base_version or 0} -> v{version.version_no}"
        + (f" (second approval, after {_username(cr.first_approved_by_id)})" if cr.first_approved_by_id else ""),
        before={"version": cr.base_version},
        after={
            "version": version.version_no,
            "new_household": applied[1][0].household_id if len(applied) > 1 else None,
        },
    )
    for target, target_version in applied:
        for hook in AFTER_APPROVAL_HOOKS:
            hook(target, target_version, actor)
    db.session.flush()
    return cr


def _apply(cr, household, proposed, new_household, actor) -> list[tuple[Household, HouseholdVersion]]:
    """Write the approved state(s) through ``registry.households`` (the only writers of current state)."""
    common = {"actor": actor, "source": "change_request", "source_ref": f"CR-{cr.id}", "reason": cr.reason}
    applied = []
    if cr.kind == "new_household":
        values = {**proposed["household"], "household_id": _allocate_household_id(cr.union_code)}
        created = hh.create_household(values, proposed["members"], **common)
        applied.append((created, hh.current_version_of(created)))
    else:
        status = proposed.get("status") if cr.kind == "deactivate" else None
        version = hh.write_version(
            household,
            proposed["household"],
            proposed["members"],
            status=status,
            inactive_reason=proposed.get("inactive_reason") if status else None,
            # Validated on submission (or re-base) against this very base version, which the caller
            # checked is current under the lock: validating again would only repeat the same answer.
            validated=True,
            **common,
        )
        applied.append((household, version))
        if new_household is not None:
            values = {**new_household["household"], "household_id": _allocate_household_id(household.union_code)}
            created = hh.create_household(values, new_household["members"], **common)
            applied.append((created, hh.current_version_of(created)))
    if cr.kind in ("new_household", "add_member", "edit_member", "split", "remove_member"):
        dedup.index_households([h for h, _v in applied])
    return applied


def _changed_since_base_summary(household: Household, base_version: int) -> dict:
    base = hh.get_version(household, base_version).snapshot
    current = hh.snapshot_of(household)
    return diff_states(base, current)["summary"]


def reject_change(change_request_id: int, actor: User, reason: str) -> ChangeRequest:
    """Reject a pending change request with a reason (flushes; the caller commits)."""
    _household, cr = _lock_for_decision(change_request_id)
    _require_reviewer(actor, cr)
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise _invalid("reason", reason, "required: tell the submitter why (at least 3 characters)")
    if cr.status != "pending":
        raise ChangeRequestConflict("not_pending", f"change request {cr.id} is {cr.status}", {"status": cr.status})
    now = utcnow()
    cr.status = "rejected"
    cr.decided_by_id = actor.id
    cr.decided_at = now
    cr.updated_at = now
    cr.decision_reason = reason
    record_event(actor, "change_request.reject", "change_request", cr.id, summary=f"rejected: {reason}"[:500])
    db.session.flush()
    return cr


def withdraw_change(change_request_id: int, actor: User) -> ChangeRequest:
    """The submitter withdraws a pending or stale request (flushes; the caller commits)."""
    _household, cr = _lock_for_decision(change_request_id)
    _require_submitter(actor, cr, "withdraw")
    if cr.status not in ("pending", "stale"):
        raise ChangeRequestConflict("not_pending", f"change request {cr.id} is {cr.status}", {"status": cr.status})
    now = utcnow()
    cr.status = "withdrawn"
    cr.decided_by_id = actor.id
    cr.decided_at = now
    cr.updated_at = now
    record_event(actor, "change_request.withdraw", "change_request", cr.id, summary="withdrawn by the submitter")
    db.session.flush()
    return cr


def rebase_change(change_request_id: int, actor: User) -> tuple[ChangeRequest, dict]:
    """Re-base a stale (or outdated pending) request on the household's current version: the same
    operation applied again, revalidated, warnings and duplicate flags recomputed, approvals reset.
    Returns the request and the diff of what changed between its old base and the current version."""
    cr = get_change_request(change_request_id)
    _require_submitter(actor, cr, "re-base")
    if cr.kind == "new_household":
        raise ChangeRequestConflict("not_rebasable", "a new household has no base version to re-base")
    household = _household_for_update(cr.household_id)
    if cr.status not in ("stale", "pending") or (
        cr.status == "pending" and cr.base_version == household.current_version
    ):
        raise ChangeRequestConflict(
            "not_rebasable",
            f"change request {cr.id} is {cr.status} against the current version; nothing to re-base",
            {"status": cr.status},
        )
    if household.status != "active":
        raise ChangeRequestConflict("inactive", f"household {household.household_id} is inactive")
    old_base_no = cr.base_version
    target_no = household.current_version
    old_base = hh.get_version(household, old_base_no).snapshot
    current = hh.version_snapshot(household, target_no)
    prepared = _prepare(cr.kind, cr.payload, current, household)

    household, cr = _lock_for_decision(cr.id)
    if household.current_version != target_no:
        raise _outdated_conflict(household, target_no)
    if cr.status not in ("stale", "pending"):
        raise ChangeRequestConflict("not_pending", f"change request {cr.id} is {cr.status}", {"status": cr.status})
    if (pending := _pending_for(household.id, exclude_id=cr.id)) is not None:
        raise _pending_conflict(pending)
    cr.base_version = target_no
    cr.status = "pending"
    cr.payload = prepared.payload
    cr.proposed = {**prepared.proposed, **({"new_household": prepared.new_household} if prepared.new_household else {})}
    cr.warnings = prepared.warnings
    cr.duplicate_flags = prepared.flags
    cr.nid_conflicts = prepared.nid_conflicts
    cr.risk_reasons = prepared.risks
    cr.approvals_required = 2 if prepared.risks else 1
    cr.first_approved_by_id = None
    cr.first_approved_at = None
    cr.decided_by_id = None
    cr.decided_at = None
    cr.decision_reason = None
    cr.rebase_count += 1
    cr.updated_at = utcnow()
    changed = diff_states(old_base, current)
    record_event(
        actor,
        "change_request.rebase",
        "change_request",
        cr.id,
        summary=f"re-based from v{old_base_no} to v{target_no}",
        before={"base_version": old_base_no},
        after={"base_version": target_no, "changed_since_base": changed["summary"]},
    )
    db.session.flush()
    return cr, changed


@dataclass
class BulkOutcome:
    succeeded: list[dict]
    failed: list[dict]


def describe_error(exc: Exception) -> dict:
    """A failure as the API reports it: code, message, details."""
    if isinstance(exc, ChangeRequestConflict):
        return {"code": exc.code, "message": exc.message, "details": exc.details}
    if isinstance(exc, access.AccessDenied):
        return {"code": "forbidden", "message": exc.reason, "details": {}}
    if isinstance(exc, RecordValidationError):
        return {"code": "validation_failed", "message": str(exc), "details": {"fields": exc.fields()}}
    if isinstance(exc, LookupError):
        return {"code": "not_found", "message": str(exc), "details": {}}
    return {"code": "error", "message": str(exc), "details": {}}


def bulk_decide(ids: Iterable[int], action: str, actor: User, *, reason: str | None = None) -> BulkOutcome:
    """Approve or reject several requests; each item succeeds or fails on its own (one savepoint each,
    so a failure rolls back only that item; a request found stale stays stale). Flushes; the caller
    commits once."""
    if actor.role not in APPROVER_ROLES:
        # A role that can never review is refused as a whole; area and four eyes are judged per item.
        raise access.AccessDenied(f"role {actor.role!r} may not review change requests (needs: supervisor)")
    if action not in ("approve", "reject"):
        raise _invalid("action", action, "approve or reject")
    ids = sorted({int(i) for i in ids})
    if not ids or len(ids) > BULK_MAX_ITEMS:
        raise _invalid("ids", len(ids), f"between 1 and {BULK_MAX_ITEMS} change request ids")
    if action == "reject" and len((reason or "").strip()) < 3:
        raise _invalid("reason", reason, "required to reject: tell the submitters why (at least 3 characters)")
    outcome = BulkOutcome([], [])
    for cr_id in ids:
        try:
            with db.session.begin_nested():
                try:
                    if action == "approve":
                        cr = approve_change(cr_id, actor)
                    else:
                        cr = reject_change(cr_id, actor, reason or "")
                except ChangeRequestStale as exc:
                    # Keep the stale state (the savepoint is released), report the item as failed.
                    outcome.failed.append({"id": cr_id, **describe_error(exc)})
                    continue
            outcome.succeeded.append(
                {
                    "id": cr_id,
                    "status": cr.status,
                    "applied_version": cr.applied_version_no,
                    "awaiting_second_approval": cr.status == "pending",
                }
            )
        except (
            ChangeRequestConflict,
            access.AccessDenied,
            RecordValidationError,
            ChangeRequestNotFound,
            hh.HouseholdNotFound,
            IntegrityError,
            OperationalError,
        ) as exc:
            outcome.failed.append({"id": cr_id, **describe_error(exc)})
    record_event(
        actor,
        f"change_request.bulk_{action}",
        "change_request",
        None,
        summary=f"bulk {action}: {len(outcome.succeeded)} succeeded, {len(outcome.failed)} failed",
        after={"succeeded": [s["id"] for s in outcome.succeeded], "failed": [f["id"] for f in outcome.failed]},
    )
    return outcome


# --- evidence ----------------------------------------------------------------------------

_UNSAFE_FILENAME = re.compile(r"[^\w.\- ()]+", re.UNICODE)


def _safe_filename(name: str | None) -> str:
    name = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/")))
    name = _UNSAFE_FILENAME.sub("_", name).strip(" ._") or "evidence"
    return name[:200]


def detect_evidence_type(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) from a file's first bytes, or None when not an accepted type."""
    for signature, content_type, ext in EVIDENCE_SIGNATURES:
        if head.startswith(signature):
            return content_type, ext
    return None


def add_evidence(change_request_id: int, actor: User, filename: str, data: bytes, root: Path) -> ChangeRequestEvidence:
    """Attach a file (JPEG, PNG or PDF, at most 5 MB) to a request; stored under
    ``root/<request id>/`` with its SHA-256 recorded (flushes; the caller commits)."""
    cr = get_change_request(change_request_id)
    _require_submitter(actor, cr, "add evidence to")
    if cr.status not in ("pending", "stale"):
        raise ChangeRequestConflict("not_pending", f"change request {cr.id} is {cr.status}: evidence is closed")
    if not data:
        raise RecordValidationError([Issue("evidence", None, None, "file", filename or "", "the file is empty")])
    if len(data) > EVIDENCE_MAX_BYTES:
        raise RecordValidationError(
            [
                Issue(
                    "evidence",
                    None,
                    None,
                    "file",
                    filename or "",
                    f"at most {EVIDENCE_MAX_BYTES // (1024 * 1024)} MB per file",
                )
            ]
        )
    detected = detect_evidence_type(data[:16])
    if detected is None:
        raise RecordValidationError(
            [
                Issue(
                    "evidence",
                    None,
                    None,
                    "file",
                    filename or "",
                    "only JPEG, PNG or PDF files (checked from the file's content)",
                )
            ]
        )
    if len(cr.evidence) >= EVIDENCE_MAX_FILES:
        raise RecordValidationError(
            [
                Issue(
                    "evidence",
                    None,
                    None,
                    "file",
                    filename or "",
                    f"at most {EVIDENCE_MAX_FILES} files per change request",
                )
            ]
        )
    content_type, ext = detected
    evidence = ChangeRequestEvidence(
        filename=_safe_filename(filename),
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_path="pending",
        uploaded_by_id=actor.id,
    )
    cr.evidence.append(evidence)
    db.session.flush()
    relative = f"{cr.id}/{evidence.id}{ext}"
    target = Path(root) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    evidence.storage_path = relative
    record_event(
        actor,
        "change_request.evidence",
        "change_request",
        cr.id,
        summary=f"attached {evidence.filename} ({content_type}, {len(data)} bytes, sha256 {evidence.sha256[:12]})",
    )
    db.session.flush()
    return evidence


def get_evidence_file(
    change_request_id: int, evidence_id: int, actor: User, root: Path
) -> tuple[ChangeRequestEvidence, Path]:
    """An evidence row and its file path, for users who may see the request."""
    cr = get_change_request(change_request_id)
    require_reader(actor, cr)
    evidence = db.session.scalar(
        select(ChangeRequestEvidence).where(
            ChangeRequestEvidence.id == evidence_id, ChangeRequestEvidence.change_request_id == cr.id
        )
    )
    if evidence is None:
        raise EvidenceNotFound(change_request_id, evidence_id)
    path = (Path(root) / evidence.storage_path).resolve()
    if not path.is_relative_to(Path(root).resolve()) or not path.is_file():
        raise EvidenceNotFound(change_request_id, evidence_id)
    return evidence, path


class EvidenceNotFound(LookupError):
    def __init__(self, change_request_id, evidence_id):
        super().__init__(f"no evidence {evidence_id} on change request {change_request_id}")


# --- reads -------------------------------------------------------------------------------


def get_change_request(change_request_id) -> ChangeRequest:
    """A change request by id, or :class:`ChangeRequestNotFound`."""
    try:
        key = int(change_request_id)
    except (TypeError, ValueError):
        raise ChangeRequestNotFound(change_request_id) from None
    cr = db.session.get(ChangeRequest, key)
    if cr is None:
        raise ChangeRequestNotFound(change_request_id)
    return cr


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def list_change_requests(
    actor: User,
    *,
    status: str | None = None,
    area: str | None = None,
    submitted_by: str | None = None,
    kind: str | None = None,
    household_id: str | None = None,
    flagged: bool | None = None,
    sort: str = "oldest",
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Change requests the actor may see, filtered, oldest first by default (a review queue works
    through the oldest first). ``submitted_by`` is a username (or ``me``)."""
    if actor.role not in READER_ROLES:
        raise access.AccessDenied(f"role {actor.role!r} has no access to change requests")
    if area:
        access.require_area(actor, area)
    stmt = select(ChangeRequest)
    clause = scope_clause(actor)
    if clause is not None:
        stmt = stmt.where(clause)
    if status:
        if status not in CHANGE_STATUSES:
            raise _invalid("status", status, "one of " + ", ".join(CHANGE_STATUSES))
        stmt = stmt.where(ChangeRequest.status == status)
    if area:
        stmt = stmt.where(ChangeRequest.union_code.startswith(area, autoescape=True))
    if kind:
        stmt = stmt.where(ChangeRequest.kind == kind)
    if household_id:
        # Through the household's key: (household_pk, status) is indexed, the registry id is not.
        pk = select(Household.id).where(Household.household_id == household_id).scalar_subquery()
        stmt = stmt.where(ChangeRequest.household_pk == pk)
    if submitted_by:
        if submitted_by == "me":
            stmt = stmt.where(ChangeRequest.submitted_by_id == actor.id)
        else:
            stmt = stmt.join(User, User.id == ChangeRequest.submitted_by_id).where(User.username == submitted_by)
    if flagged:
        stmt = stmt.where(ChangeRequest.approvals_required > 1)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = ChangeRequest.submitted_at.asc() if sort != "newest" else ChangeRequest.submitted_at.desc()
    page = max(1, page)
    items = list(
        db.session.scalars(
            stmt.order_by(order, ChangeRequest.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
            .options(selectinload(ChangeRequest.submitted_by))  # the queue shows who: one query, not one a row
        )
    )
    return Page(items, total, page, per_page)


def stage_of(cr: ChangeRequest) -> str | None:
    """Where a pending request stands: awaiting review, or awaiting its second approval."""
    if cr.status != "pending":
        return None
    if cr.approvals_required > 1 and cr.first_approved_by_id is not None:
        return "awaiting_second_approval"
    return "awaiting_review"


def _username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    loaded = db.session.identity_map.get(identity_key(User, user_id))
    if loaded is not None and "username" in loaded.__dict__:
        return loaded.username
    # Not loaded: the name alone (loading a User also loads its areas).
    return db.session.scalar(select(User.username).where(User.id == user_id))


def summary_view(cr: ChangeRequest) -> dict:
    """The queue row of a change request."""
    now = utcnow()
    return {
        "id": cr.id,
        "kind": cr.kind,
        "status": cr.status,
        "stage": stage_of(cr),
        "household_id": cr.household_id,
        "union_code": cr.union_code,
        "base_version": cr.base_version,
        "reason": cr.reason,
        "submitted_by": _username(cr.submitted_by_id),
        "submitted_at": cr.submitted_at,
        "age_hours": round((now - cr.submitted_at).total_seconds() / 3600, 1),
        "warnings": len(cr.warnings or []),
        "duplicate_flags": len(cr.duplicate_flags or []),
        "nid_conflicts": len(cr.nid_conflicts or []),
        "high_risk": cr.approvals_required > 1,
        "risk_reasons": list(cr.risk_reasons or []),
        "approvals_required": cr.approvals_required,
        "applied_version": cr.applied_version_no,
    }


def review_states(cr: ChangeRequest) -> dict:
    """The states a reviewer compares: base, current, proposed (and the household split off)."""
    proposed, new_household = _states_of(cr)
    base = current = household = applied = None
    if cr.household_pk is not None and cr.kind != "new_household":
        household = cr.household
        base = hh.version_snapshot(household, cr.base_version)
        current = base if cr.base_version == household.current_version else hh.snapshot_of(household)
        if cr.status == "approved" and cr.applied_version_no is not None:
            applied = current if cr.applied_version_no == household.current_version else None
            applied = applied or hh.get_version(household, cr.applied_version_no).snapshot
    return {
        "household": household,
        "base": base,
        "current": current,
        "proposed": proposed,
        "new_household": new_household,
        "applied": applied,
    }


def detail_view(cr: ChangeRequest, actor: User) -> dict:
    """Everything a reviewer needs: the requested change, the diff against the current version
    (and what changed since the base, when it is not current), warnings, flags and evidence."""
    pii = access.can_see_pii(actor)
    states = review_states(cr)
    household = states["household"]
    base, current, proposed = states["base"], states["current"], states["proposed"]
    out = summary_view(cr)
    applied = states["applied"]
    if cr.kind == "new_household":
        requested = diff_states(None, proposed)
        against_current = requested
    else:
        requested = diff_states(base, applied if applied is not None else proposed)
        if cr.status in ("pending", "stale") and current is not base:
            against_current = diff_states(current, proposed)
        else:
            against_current = requested
    changed_since = None
    if household is not None and cr.kind != "new_household" and cr.base_version != household.current_version:
        changed_since = diff_states(base, current) if cr.status in ("pending", "stale") else None
    out.update(
        {
            "payload": cr.payload if pii else None,
            "current_version": household.current_version if household is not None else None,
            "diff": mask_diff(against_current, pii),
            "requested_changes": mask_diff(requested, pii),
            "changed_since_base": mask_diff(changed_since, pii) if changed_since else None,
            "new_household": (
                {
                    "members": len(states["new_household"]["members"]),
                    "diff": mask_diff(diff_states(None, states["new_household"]), pii),
                }
                if states["new_household"]
                else None
            ),
            "warnings_list": list(cr.warnings or []),
            "duplicate_flags_list": list(cr.duplicate_flags or []) if pii else [],
            "nid_conflicts_list": list(cr.nid_conflicts or []) if pii else [],
            "first_approved_by": _username(cr.first_approved_by_id),
            "first_approved_at": cr.first_approved_at,
            "decided_by": _username(cr.decided_by_id),
            "decided_at": cr.decided_at,
            "decision_reason": cr.decision_reason,
            "new_household_id": db.session.get(Household, cr.new_household_pk).household_id
            if cr.new_household_pk
            else None,
            "rebase_count": cr.rebase_count,
            "evidence": [evidence_view(e) for e in cr.evidence],
        }
    )
    return out


def side_by_side_view(cr: ChangeRequest) -> dict:
    """Two-column rows (current or base | proposed) for the review page."""
    states = review_states(cr)
    left = states["current"] if cr.status in ("pending", "stale") else states["base"]
    right = states["applied"] if states["applied"] is not None else states["proposed"]
    return {
        "main": side_by_side(left, right),
        "new_household": side_by_side(None, states["new_household"]) if states["new_household"] else None,
        "changed_since_base": (
            diff_states(states["base"], states["current"])
            if states["household"] is not None
            and cr.base_version != states["household"].current_version
            and cr.status in ("pending", "stale")
            else None
        ),
    }


def evidence_view(evidence: ChangeRequestEvidence) -> dict:
    return {
        "id": evidence.id,
        "filename": evidence.filename,
        "content_type": evidence.content_type,
        "size_bytes": evidence.size_bytes,
        "sha256": evidence.sha256,
        "uploaded_at": evidence.uploaded_at,
        "uploaded_by": _username(evidence.uploaded_by_id),
    }


def household_diff(household: Household, from_version: int, to_version: int | None, *, can_see_pii: bool) -> dict:
    """The field-level diff between two versions of a household (``to`` defaults to the current)."""
    to_no = to_version or household.current_version
    old = hh.get_version(household, from_version)
    new = hh.get_version(household, to_no)
    return {
        "household_id": household.household_id,
        "from_version": old.version_no,
        "to_version": new.version_no,
        "from": hh.version_meta(old),
        "to": hh.version_meta(new),
        "diff": mask_diff(diff_states(old.snapshot, new.snapshot), can_see_pii),
    }


def can_review(user: User, cr: ChangeRequest) -> bool:
    """Whether the user could approve or reject this request now (for showing buttons)."""
    if cr.status != "pending":
        return False
    try:
        _require_approver(user, cr)
    except access.AccessDenied:
        return False
    return True
