"""Households: creating them, writing versions, and reading current and past states.

Every accepted state of a household is a :class:`HouseholdVersion` holding a JSON snapshot
of the household's fields and members; the ``households``/``members`` tables always equal
the latest snapshot. :func:`write_version` is the only function that changes a household's
current state, so both are written together in the caller's transaction.

A bulk import leaves version 1's snapshot to the current tables (``snapshot`` NULL): rendering,
parsing and storing a million JSON documents was half of an import's database time. Until the
household first changes, the current tables *are* that state; :func:`write_version` stores it
before it applies the change, and the readers here fill it in, so callers always see a snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from models import Household, HouseholdVersion, Member, User, db
from models.base import utcnow
from models.codes import HOUSEHOLD_FIELD_NAMES, HOUSEHOLD_SPECS, MEMBER_FIELD_NAMES, MEMBER_SPECS
from registry.audit import record_event
from registry.geo import union_area_types
from registry.validation import RecordValidationError, validate_record

#: Household fields stored in a snapshot (the registry id and union live there too).
SNAPSHOT_HOUSEHOLD_FIELDS = HOUSEHOLD_FIELD_NAMES
SNAPSHOT_MEMBER_FIELDS = tuple(f for f in MEMBER_FIELD_NAMES if f != "household_id")


class HouseholdNotFound(LookupError):
    def __init__(self, household_id: str):
        self.household_id = household_id
        super().__init__(f"no household {household_id!r}")


class VersionNotFound(LookupError):
    def __init__(self, household_id: str, detail: str):
        super().__init__(f"household {household_id!r}: {detail}")


def _json_value(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _typed(values: Mapping, specs: Mapping) -> dict:
    """Snapshot (JSON) values back to the Python types of their columns (dates, decimals)."""
    out = dict(values)
    for field, value in values.items():
        spec = specs.get(field)
        if spec is None or value is None:
            continue
        if spec.kind == "date" and isinstance(value, str):
            out[field] = dt.date.fromisoformat(value[:10])
        elif spec.kind == "decimal" and not isinstance(value, Decimal):
            out[field] = Decimal(str(value))
    return out


def snapshot_of(household: Household) -> dict:
    """The household's current fields and members as a JSON-ready dict."""
    return {
        "household": {f: _json_value(getattr(household, f)) for f in SNAPSHOT_HOUSEHOLD_FIELDS},
        "status": household.status,
        "inactive_reason": household.inactive_reason,
        "members": [
            {f: _json_value(getattr(m, f)) for f in SNAPSHOT_MEMBER_FIELDS}
            for m in sorted(household.members, key=lambda m: m.line_no)
        ],
    }


def validate_household_record(
    household: Mapping, members: list[Mapping], *, exclude_household_pk: int | None = None
) -> tuple[dict, list[dict]]:
    """Validate one household with its members; return typed values or raise
    :class:`RecordValidationError` naming every bad field."""

    def registered(nids):
        stmt = select(Member.nid_number).where(Member.nid_number.in_(list(nids)))
        if exclude_household_pk is not None:
            stmt = stmt.where(Member.household_pk != exclude_household_pk)
        return set(db.session.scalars(stmt))

    hh_values, member_values, issues = validate_record(
        household, members, union_area_types=union_area_types, registered_nids=registered
    )
    if issues:
        raise RecordValidationError(issues)
    return hh_values, member_values


def _set_changed(obj, fields, values: Mapping) -> None:
    """Set the attributes whose value differs (an unchanged one costs no attribute event, nor a
    comparison at flush)."""
    state = obj.__dict__
    for field in fields:
        value = values.get(field)
        if field not in state or state[field] != value:
            setattr(obj, field, value)


def _apply_values(household: Household, values: Mapping, members: list[Mapping]) -> None:
    _set_changed(household, SNAPSHOT_HOUSEHOLD_FIELDS, values)
    household.upazila_code = household.union_code[:6]
    household.district_code = household.union_code[:4]
    household.division_code = household.union_code[:2]
    by_line = {m.line_no: m for m in household.members}
    wanted = {int(m["line_no"]): m for m in members}
    removed = [member for line_no, member in by_line.items() if line_no not in wanted]
    for member in removed:
        household.members.remove(member)
    if removed:
        # Removed members (and their unique NIDs) must be gone before changed ones are written.
        db.session.flush()
    for line_no, data in sorted(wanted.items()):
        member = by_line.get(line_no)
        if member is None:
            member = Member(line_no=line_no)
            household.members.append(member)
        _set_changed(member, SNAPSHOT_MEMBER_FIELDS, data)


def create_household(
    values: Mapping,
    members: list[Mapping],
    *,
    actor: User | None,
    source: str,
    source_ref: str | None = None,
    reason: str | None = None,
) -> Household:
    """Validate and register a new household as version 1 (flushes; the caller commits)."""
    hh_values, member_values = validate_household_record(values, members)
    if db.session.scalar(select(Household.id).where(Household.household_id == hh_values["household_id"])):
        raise RecordValidationError(
            [
                _issue("household_id", hh_values["household_id"], "a household with this id is already registered"),
            ]
        )
    household = Household(status="active", current_version=1)
    db.session.add(household)
    _apply_values(household, hh_values, member_values)
    db.session.flush()
    version = _insert_version(household, 1, actor, source, source_ref, reason)
    record_event(
        actor,
        "household.create",
        "household",
        household.household_id,
        summary=f"registered household {household.household_id} ({len(member_values)} members) via {source}",
        after={"version": version.version_no},
    )
    return household


def write_version(
    household: Household,
    values: Mapping,
    members: list[Mapping],
    *,
    actor: User | None,
    source: str,
    source_ref: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    inactive_reason: str | None = None,
    validated: bool = False,
) -> HouseholdVersion:
    """Replace the household's current state with validated ``values``/``members`` and record
    the next version. The caller holds the household's row lock and commits.

    ``validated=True`` skips validation: for callers that validated exactly these values with
    :func:`validate_household_record`'s rules against the version they replace (an approved change
    request, whose base version is checked under the lock). The database's CHECK constraints and the
    unique national-ID index still guard what is written."""
    if validated:
        hh_values = _typed(values, HOUSEHOLD_SPECS)
        member_values = [_typed(m, MEMBER_SPECS) for m in members]
    else:
        hh_values, member_values = validate_household_record(values, members, exclude_household_pk=household.id)
    next_no = household.current_version + 1
    # The version being replaced, from the current tables: for an imported version 1 to store, and
    # for readers later in this transaction (an approval's answer diffs it against the new one).
    replaced = snapshot_of(household)
    if household.current_version == 1:
        _store_imported_snapshots({household.id: replaced})
    _remember_snapshot(household.id, household.current_version, replaced)
    _apply_values(household, hh_values, member_values)
    if status is not None:
        household.status = status
        household.inactive_reason = inactive_reason
    household.current_version = next_no
    household.updated_at = utcnow()
    # One flush writes the household, its members and the version row (_insert_version flushes).
    return _insert_version(household, next_no, actor, source, source_ref, reason)


_VERSIONS = HouseholdVersion.__table__
#: Built once: every first change of an imported household runs it. A Core statement (not an ORM
#: bulk UPDATE): the ORM's evaluation of the WHERE against the session costs more than the UPDATE,
#: and the one object it could concern is looked for below.
_STORE_IMPORTED_SNAPSHOT = (
    update(_VERSIONS)
    .where(
        _VERSIONS.c.household_pk == bindparam("of_household"),
        _VERSIONS.c.version_no == 1,
        _VERSIONS.c.snapshot.is_(None),
    )
    .values(snapshot=bindparam("stored_snapshot", type_=_VERSIONS.c.snapshot.type))
)


def _store_imported_snapshots(snapshots: Mapping[int, dict]) -> int:
    """Store version 1's snapshot (``snapshots``: by household pk, taken from the current tables)
    where an import left it to them; returns how many were stored."""
    stored = {
        pk: snapshot
        for pk, snapshot in snapshots.items()
        if db.session.execute(_STORE_IMPORTED_SNAPSHOT, {"of_household": pk, "stored_snapshot": snapshot}).rowcount
    }
    if stored:
        # A version-1 row loaded earlier in this transaction must read what is now stored, not the
        # current tables, which are about to hold the next version. Found in the session (one pass
        # for all of them) rather than by RETURNING, which SQLite before 3.35 lacks.
        for loaded in list(db.session.identity_map.values()):
            if type(loaded) is HouseholdVersion:
                values = loaded.__dict__
                snapshot = stored.get(values.get("household_pk")) if values.get("version_no") == 1 else None
                if snapshot is not None:
                    set_committed_value(loaded, "snapshot", snapshot)
    return len(stored)


#: ``Session.info`` key: snapshots of the versions this transaction replaced, by (household pk, version).
_REPLACED_SNAPSHOTS = "registry.replaced_snapshots"


def _remember_snapshot(household_pk: int, version_no: int, snapshot: dict) -> None:
    db.session.info.setdefault(_REPLACED_SNAPSHOTS, {})[(household_pk, version_no)] = snapshot


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_replaced_snapshots(session, *args) -> None:
    # After a rollback the remembered version may not exist; after a commit it is stored.
    session.info.pop(_REPLACED_SNAPSHOTS, None)


def version_snapshot(household: Household, version_no: int) -> dict:
    """A version's state (read-only): the current one from the current tables, one this
    transaction replaced from memory, any other from its version row."""
    if version_no == household.current_version:
        return snapshot_of(household)
    remembered = db.session.info.get(_REPLACED_SNAPSHOTS)
    if remembered and (snapshot := remembered.get((household.id, version_no))) is not None:
        return snapshot
    return get_version(household, version_no).snapshot


def store_imported_snapshots(household_ids: list[str]) -> int:
    """Store the version-1 snapshots that an import left to the current tables, for these
    households (e.g. before a schema downgrade, or for tools that read snapshots in SQL). Returns
    how many were stored; the caller commits."""
    stored = 0
    for start in range(0, len(household_ids), 1_000):
        pending = db.session.scalars(
            select(Household)
            .join(HouseholdVersion, HouseholdVersion.household_pk == Household.id)
            .where(
                Household.household_id.in_(household_ids[start : start + 1_000]),
                HouseholdVersion.version_no == 1,
                HouseholdVersion.snapshot.is_(None),
            )
            .options(selectinload(Household.members))
        )
        stored += _store_imported_snapshots({household.id: snapshot_of(household) for household in pending})
    return stored


def _filled(version: HouseholdVersion | None, household: Household) -> HouseholdVersion | None:
    """A version with its snapshot: an imported version 1 still current reads the current tables
    (without marking the row changed)."""
    if version is not None and version.snapshot is None:
        if version.version_no != household.current_version:
            raise RuntimeError(f"household {household.household_id}: version {version.version_no} has no snapshot")
        set_committed_value(version, "snapshot", snapshot_of(household))
    return version


def fill_snapshots(rows: list[tuple[int, dict | None]]) -> dict[int, dict]:
    """Snapshots by household pk for ``(household_pk, snapshot)`` rows read in SQL, the ones an
    import left to the current tables read from there (one query for all of them)."""
    missing = [pk for pk, snapshot in rows if snapshot is None]
    found = {pk: snapshot for pk, snapshot in rows if snapshot is not None}
    if missing:
        households = db.session.scalars(
            select(Household).where(Household.id.in_(missing)).options(selectinload(Household.members))
        )
        found.update({h.id: snapshot_of(h) for h in households})
    return found


def _insert_version(household, version_no, actor, source, source_ref, reason) -> HouseholdVersion:
    version = HouseholdVersion(
        household_pk=household.id,
        version_no=version_no,
        created_by_id=actor.id if actor is not None else None,
        source=source,
        source_ref=source_ref,
        reason=reason,
        snapshot=snapshot_of(household),
    )
    db.session.add(version)
    db.session.flush()
    return version


def _issue(field, value, rule):
    from registry.validation import Issue

    return Issue("household", None, None, field, str(value), rule)


# --- reads -----------------------------------------------------------------------------


def get_household(household_id: str) -> Household:
    """The current state of a household by registry id, or :class:`HouseholdNotFound`."""
    household = db.session.scalar(
        select(Household).where(Household.household_id == household_id).options(selectinload(Household.members))
    )
    if household is None:
        raise HouseholdNotFound(household_id)
    return household


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def list_households(
    *,
    scope_clause=None,
    area_code: str | None = None,
    search: str | None = None,
    status: str | None = "active",
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Current households, filtered by area (any level), registry id prefix, village or
    member name, paginated and ordered by registry id."""
    stmt = select(Household)
    if scope_clause is not None:
        stmt = stmt.where(scope_clause)
    if area_code:
        stmt = stmt.where(Household.union_code.startswith(area_code, autoescape=True))
    if status:
        stmt = stmt.where(Household.status == status)
    if search:
        term = search.strip()
        member_match = (
            select(Member.household_pk)
            .where((Member.name_en.ilike(f"%{term}%")) | (Member.name_bn.contains(term, autoescape=True)))
            .scalar_subquery()
        )
        stmt = stmt.where(
            Household.household_id.startswith(term, autoescape=True)
            | Household.village.ilike(f"%{term}%")
            | Household.id.in_(member_match)
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    page = max(1, page)
    items = list(
        db.session.scalars(stmt.order_by(Household.household_id).offset((page - 1) * per_page).limit(per_page))
    )
    return Page(items, total or 0, page, per_page)


def list_versions(household: Household) -> list[HouseholdVersion]:
    """Every version of a household, oldest first."""
    versions = db.session.scalars(
        select(HouseholdVersion)
        .where(HouseholdVersion.household_pk == household.id)
        .order_by(HouseholdVersion.version_no)
    )
    return [_filled(v, household) for v in versions]


def get_version(household: Household, version_no: int) -> HouseholdVersion:
    version = db.session.scalar(
        select(HouseholdVersion).where(
            HouseholdVersion.household_pk == household.id, HouseholdVersion.version_no == version_no
        )
    )
    if version is None:
        raise VersionNotFound(household.household_id, f"no version {version_no}")
    return _filled(version, household)


def version_as_of(household: Household, when: dt.datetime) -> HouseholdVersion:
    """The version that was current at ``when``: the latest created at or before it."""
    version = db.session.scalar(
        select(HouseholdVersion)
        .where(HouseholdVersion.household_pk == household.id, HouseholdVersion.created_at <= when)
        .order_by(HouseholdVersion.version_no.desc())
        .limit(1)
    )
    if version is None:
        raise VersionNotFound(household.household_id, f"not registered yet at {when.isoformat()}")
    return _filled(version, household)


def head_of(household: Household) -> Member | None:
    return next((m for m in household.members if m.relation_to_head == 1), None)


def state_view(version: HouseholdVersion, *, can_see_pii: bool) -> dict:
    """A household state (from a version snapshot) as a flat dict for display or the API,
    personal data masked unless ``can_see_pii``."""
    from registry.privacy import mask_snapshot

    snap = mask_snapshot(version.snapshot, can_see_pii)
    return {
        **snap["household"],
        "version": version.version_no,
        "version_created_at": version.created_at,
        "status": snap.get("status", "active"),
        "inactive_reason": snap.get("inactive_reason"),
        "members": snap["members"],
    }


def current_version_of(household: Household) -> HouseholdVersion:
    return get_version(household, household.current_version)


def summary_view(household: Household, *, can_see_pii: bool) -> dict:
    """The one-line listing of a household."""
    head = head_of(household)
    head_name = None
    if head is not None:
        head_name = (head.name_en or head.name_bn) if can_see_pii else None
    return {
        "household_id": household.household_id,
        "union_code": household.union_code,
        "upazila_code": household.upazila_code,
        "district_code": household.district_code,
        "division_code": household.division_code,
        "area_type": household.area_type,
        "village": household.village,
        "status": household.status,
        "current_version": household.current_version,
        "household_size": len(household.members),
        "head_name": head_name,
    }


def version_meta(version: HouseholdVersion) -> dict:
    """Who, when and why of a version."""
    creator = db.session.get(User, version.created_by_id) if version.created_by_id else None
    return {
        "version_no": version.version_no,
        "created_at": version.created_at,
        "created_by": creator.username if creator else None,
        "source": version.source,
        "source_ref": version.source_ref,
        "reason": version.reason,
    }
