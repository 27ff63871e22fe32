"""Programmes and eligibility lists: definitions, preview, frozen list builds, summaries, diffs, exports.

How a list is built (set-based SQL with bound parameters): one count of the scored and targeted
households, then one ``SELECT`` with window functions that evaluates the criteria and exclusions once,
applies quotas and cap, numbers the entries and explains them (:meth:`_Selection.selected`). When the
criteria are about members, the targeted households are joined to their members and grouped, so
every criterion and the explanation come from one pass over the members. The rows are materialised
in a temporary table (``CREATE TEMPORARY TABLE … AS``, which PostgreSQL runs with parallel workers:
an ``INSERT … SELECT`` would run without them, twice as slow on a million households), inserted from
there in household order, and hashed; they never travel through Python. The preview counts the same
selection without writing (:meth:`_Selection.funnel`):

1. **Score run.** The latest complete national run of the active model is chosen once, at the
   start; every entry comes from that one run, so a model switch during a build can never mix
   model versions inside a list.
2. **Scope.** Active households whose union lies in the programme's areas (all when national).
3. **PMT targeting.** ``poverty_line`` (the score's own flag, against its stratum's line),
   ``score_below`` (0-100 display score), ``consumption_below`` (predicted Tk per person per month),
   ``poorest`` X% nationally or within each area of a level, or ``all``. "Poorest X%" uses the run's
   stored percentiles (rank / n within the area, ``targeting.ranking``: selected when the percentile
   is at most X/100), which are computed over *all* scored households, before any extra criterion.
   That is the NHD practice: the PMT picks the poorest X% of each area's population, then the
   programme's criteria filter them; and it is the percentile a household's page shows.
4. **Criteria** (``targeting.rules``) and **exclusions**: not on the *current* list of a named
   programme (the exact list ids are frozen into the list), not already receiving a named benefit.
5. **Quotas.** At most N per area of a level, taking the best-ranked (``row_number() OVER
   (PARTITION BY area …) <= N``), then an overall cap (``LIMIT``).
6. **Order.** Entries are numbered by predicted consumption, poorest first; ties are broken by the
   registry id, which is stable and independent of internal keys, so a rebuild orders identically.

A list freezes the definition as it was (and its hash), the programme version, the model and score
run, the data as-of time, and per entry: the household version the criteria saw, the version that
was scored, where it lived, the score, national and local rank, and a bitmask of the top-level
criteria it met. The same inputs give the same entries (``entries_hash``; :func:`verify_list`).

Who may do what: programme officers manage (create, edit, build) the programmes of their ministry
(``users.ministry``) and the ones they own, within their areas; every role reads programmes and
lists, and area-bound roles see only the entries in their areas. Exports carry personal data by
need: roles that work with household records (enumerators, supervisors, grievance officers) see it
as the registry shows it; the programme's own officers see the head's name (needed to deliver the
benefit and to run community validation) with masked ID and phone numbers; everyone else gets
masked names and IDs.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from marshmallow import ValidationError
from sqlalchemy import (
    Integer,
    and_,
    case,
    column,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    table,
    text,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ClauseElement, Executable

from models import Area, Household, HouseholdScore, HouseholdVersion, Member, PmtModel, ScoreRun, User, db
from models.base import utcnow
from models.codes import HEAD, SEX
from models.programme import EligibilityList, EligibilityListEntry, Programme
from registry import access
from registry.audit import record_event
from registry.households import Page
from registry.privacy import MASK, mask_identifier
from targeting import rules, scoring
from targeting.eligibility_schemas import PreviewInputSchema, ProgrammeInputSchema

log = logging.getLogger(__name__)

Entry = EligibilityListEntry
MANAGER_ROLE = "programme_officer"
RULE_KEYS = ("scope_areas", "targeting", "criteria", "exclusions", "quotas")
AREA_LENGTHS = {"division": 2, "district": 4, "upazila": 6, "union": 8}
#: Why a household entered or left a list, in priority order (the first that applies is the reason).
DIFF_REASONS = (
    "rule_changed",
    "model_changed",
    "data_changed",
    "score_changed",
    "community_validation",
    "ranking_changed",
)
DIFF_REASON_TEXT = {
    "rule_changed": "the programme's rule changed and decides differently for this household",
    "model_changed": "the list was built with a different PMT model",
    "data_changed": "the household's data changed (a new version, or newly registered or deactivated)",
    "score_changed": "same model, different score (re-scored)",
    "community_validation": "a community validation decision (one of the lists is a validated list)",
    "ranking_changed": "other households moved ahead or behind (percentile cut, quota, cap or exclusion lists)",
}


class ProgrammeNotFound(LookupError):
    def __init__(self, programme_id):
        super().__init__(f"no programme {programme_id}")


class ListNotFound(LookupError):
    def __init__(self, list_id):
        super().__init__(f"no eligibility list {list_id}")


class EligibilityStateError(RuntimeError):
    """The list cannot be built now (no complete score run, archived programme); the message says why."""


# --- access --------------------------------------------------------------------------------------


def _covers(user: User, scope_areas: list[str]) -> bool:
    if not scope_areas:
        return access.has_national_scope(user)
    return all(access.in_scope(user, code) for code in scope_areas)


def can_manage(user: User | None, programme: Programme) -> bool:
    """Whether ``user`` may edit the programme and build its lists."""
    if user is None or user.role != MANAGER_ROLE:
        return False
    mine = (user.ministry is not None and user.ministry == programme.ministry) or programme.owner_id == user.id
    return mine and _covers(user, programme.scope_areas)


def require_manager(user: User | None, programme: Programme) -> None:
    """Refuse unless ``user`` manages the programme (None = the system, e.g. the CLI or the demo)."""
    if user is None:
        return
    access.require_role(user, MANAGER_ROLE)
    if not can_manage(user, programme):
        raise access.AccessDenied(
            f"programme {programme.id} belongs to {programme.ministry!r}; only its own programme officers, "
            "working in its areas, may change it or build its lists"
        )


def require_reader(user: User) -> None:
    """Every signed-in role may read programmes and lists (entries are limited to the user's areas)."""
    if not access.has_national_scope(user) and not user.area_codes:
        raise access.AccessDenied(f"role {user.role!r} without assigned areas sees no eligibility lists")


def _scope_clause(user: User | None, column):
    """Restrict ``column`` (a union code) to the user's areas; None = no restriction."""
    if user is None or access.has_national_scope(user):
        return None
    return or_(*(column.startswith(code, autoescape=True) for code in user.area_codes))


def scope_label(user: User) -> str:
    return "national" if access.has_national_scope(user) else ", ".join(user.area_codes)


# --- programmes ------------------------------------------------------------------------------------


def _flatten(messages, prefix: str = "") -> list[tuple[str, object, str]]:
    out = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out.extend((prefix, None, m) for m in messages)
    else:
        out.append((prefix, None, str(messages)))
    return out


def _load(schema, data: Mapping) -> dict:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise rules.RuleError(_flatten(exc.messages)) from exc


def _check_references(values: dict, programme_id: int | None) -> None:
    problems = []
    scope = values.get("scope_areas") or []
    if scope:
        known = set(db.session.scalars(select(Area.code).where(Area.code.in_(scope))))
        problems += [(f"scope_areas[{i}]", c, "unknown area code") for i, c in enumerate(scope) if c not in known]
    excluded = (values.get("exclusions") or {}).get("programmes") or []
    if excluded:
        known = set(db.session.scalars(select(Programme.id).where(Programme.id.in_(excluded))))
        for i, pid in enumerate(excluded):
            if pid == programme_id:
                problems.append((f"exclusions.programmes[{i}]", pid, "a programme cannot exclude its own list"))
            elif pid not in known:
                problems.append((f"exclusions.programmes[{i}]", pid, "unknown programme"))
    name = values.get("name")
    if name:
        clash = select(Programme.id).where(func.lower(Programme.name) == name.lower())
        if programme_id is not None:
            clash = clash.where(Programme.id != programme_id)
        if db.session.scalar(clash) is not None:
            problems.append(("name", name, "a programme with this name exists"))
    if problems:
        raise rules.RuleError(problems)


def _definition(programme: Programme) -> dict:
    return {
        "name": programme.name,
        "ministry": programme.ministry,
        "description": programme.description,
        "status": programme.status,
        **{key: getattr(programme, key) for key in RULE_KEYS},
    }


def rule_of(programme: Programme) -> dict:
    """The programme's current eligibility rule (scope, targeting, criteria, exclusions, quotas)."""
    return {key: getattr(programme, key) for key in RULE_KEYS}


def create_programme(data: Mapping, actor: User | None) -> Programme:
    """Validate and create a programme (flushed). Programme officers create them for their own ministry."""
    values = _load(ProgrammeInputSchema(), data)
    if actor is not None:
        access.require_role(actor, MANAGER_ROLE)
        if actor.ministry and values["ministry"] and values["ministry"] != actor.ministry:
            raise access.AccessDenied(
                f"you work for {actor.ministry!r}; you may not create programmes of {values['ministry']!r}"
            )
        values["ministry"] = values["ministry"] or actor.ministry
        if not _covers(actor, values["scope_areas"]):
            raise access.AccessDenied("the programme's areas must lie within your assigned areas")
    if not values["ministry"]:
        raise rules.RuleError([("ministry", None, "give the owner ministry")])
    _check_references(values, None)
    now = utcnow()
    programme = Programme(
        **values,
        version=1,
        owner_id=actor.id if actor else None,
        updated_by_id=actor.id if actor else None,
        created_at=now,
        updated_at=now,
    )
    db.session.add(programme)
    db.session.flush()
    record_event(
        actor,
        "programme.create",
        "programme",
        programme.id,
        summary=f"created programme {programme.id} {programme.name!r} ({programme.ministry})",
        after=_definition(programme),
    )
    return programme


def update_programme(programme: Programme, data: Mapping, actor: User | None) -> Programme:
    """Replace a programme's definition (PUT semantics); bumps its version when anything changed."""
    require_manager(actor, programme)
    values = _load(ProgrammeInputSchema(), data)
    values["ministry"] = values["ministry"] or programme.ministry
    if actor is not None:
        if actor.ministry and values["ministry"] != actor.ministry:
            raise access.AccessDenied(
                f"you work for {actor.ministry!r}; a programme cannot be handed to another ministry"
            )
        if not _covers(actor, values["scope_areas"]):
            raise access.AccessDenied("the programme's areas must lie within your assigned areas")
    _check_references(values, programme.id)
    before = _definition(programme)
    changed = {k: v for k, v in values.items() if before.get(k) != v}
    if not changed:
        return programme
    for key, value in changed.items():
        setattr(programme, key, value)
    programme.version += 1
    programme.updated_at = utcnow()
    programme.updated_by_id = actor.id if actor else None
    db.session.flush()
    record_event(
        actor,
        "programme.update",
        "programme",
        programme.id,
        summary=f"edited programme {programme.id} ({', '.join(sorted(changed))}); now version {programme.version}",
        before={k: before[k] for k in changed},
        after=changed,
    )
    return programme


def get_programme(programme_id: int) -> Programme:
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        raise ProgrammeNotFound(programme_id)
    return programme


def list_programmes(*, include_archived: bool = False) -> list[Programme]:
    stmt = select(Programme).order_by(Programme.name)
    if not include_archived:
        stmt = stmt.where(Programme.status == "active")
    return list(db.session.scalars(stmt))


def programme_view(programme: Programme, user: User | None) -> dict:
    """A programme for the API and pages."""
    owner = db.session.get(User, programme.owner_id) if programme.owner_id else None
    current = get_current_list(programme)
    return {
        **_definition(programme),
        "id": programme.id,
        "criteria_labels": rules.criteria_labels(programme.criteria),
        "version": programme.version,
        "owner": owner.username if owner else None,
        "created_at": programme.created_at,
        "updated_at": programme.updated_at,
        "can_manage": can_manage(user, programme),
        "current_list": list_brief(current, current=True) if current else None,
    }


# --- score runs ------------------------------------------------------------------------------------


def get_current_run() -> ScoreRun | None:
    """The latest complete national score run of the active model (what lists are built from)."""
    return scoring.current_run()


# --- the selection query ---------------------------------------------------------------------------


def _area_column(level: str):
    return {
        "division": Household.division_code,
        "district": Household.district_code,
        "upazila": Household.upazila_code,
        "union": Household.union_code,
    }[level]


def _percentile_column(level: str):
    return {
        "national": HouseholdScore.national_percentile,
        "division": HouseholdScore.division_percentile,
        "district": HouseholdScore.district_percentile,
        "upazila": HouseholdScore.upazila_percentile,
        "union": HouseholdScore.union_percentile,
    }[level]


def _rank_column(level: str):
    return {
        "national": HouseholdScore.national_rank,
        "division": HouseholdScore.division_rank,
        "district": HouseholdScore.district_rank,
        "upazila": HouseholdScore.upazila_rank,
        "union": HouseholdScore.union_rank,
    }[level]


class _Selection:
    """The eligibility query of one rule against one score run (Core expressions, bound parameters)."""

    def __init__(self, rule: Mapping, run_id: int, exclusion_list_ids: list[int]):
        self.rule = rule
        self.run_id = run_id
        self.level = rules.local_level(rule["targeting"], rule.get("quotas") or {})
        self.quotas = rule.get("quotas") or {}
        self.from_ = HouseholdScore.__table__.join(Household.__table__, Household.id == HouseholdScore.household_pk)
        self.base = [HouseholdScore.run_id == run_id, Household.status == "active"]
        self.scope = [Household.union_code.startswith(code, autoescape=True) for code in rule.get("scope_areas") or []]
        if self.scope:
            self.base.append(or_(*self.scope))
        self.targeted = self._targeting(rule["targeting"])
        criteria = rule.get("criteria")
        #: Whether deciding eligibility reads members: then the candidates are households joined to
        #: their members and grouped, and the criteria are a ``HAVING`` (one pass over the members).
        self.reads_members = rules.reads_members(criteria)
        self.criteria = rules.compile_criteria(criteria, grouped=self.reads_members)
        #: Exclusions (other programmes' lists, benefits already received): plain WHERE clauses.
        self.exclusions = []
        exclusions = rule.get("exclusions") or {}
        if exclusions.get("benefits"):
            self.exclusions.append(not_(rules.receives_any(exclusions["benefits"])))
        if exclusion_list_ids:
            on_list = (
                select(Entry.household_pk)
                .where(Entry.list_id.in_(exclusion_list_ids), Entry.household_pk == Household.id)
                .exists()
            )
            self.exclusions.append(not_(on_list))
        self.tops = rules.top_level(criteria)
        #: The criteria met by one household, as an expression over ``households`` (one-household checks).
        self.criteria_bits = self._bits(lambda i, node: rules.compile_criteria(node))
        #: The same, as recorded in list entries (an aggregate when the candidates are grouped).
        self.entry_bits = self._bits(lambda i, node: rules.compile_criteria(node, grouped=self.reads_members))

    def _bits(self, test):
        bits = [case((test(i, node), 1 << i), else_=0) for i, node in enumerate(self.tops)]
        return sum(bits[1:], bits[0]) if bits else literal(0, Integer)

    def _targeting(self, targeting: Mapping):
        method = targeting["method"]
        if method == "poverty_line":
            return HouseholdScore.below_poverty_line.is_(True)
        if method == "score_below":
            return HouseholdScore.score < targeting["value"]
        if method == "consumption_below":
            return HouseholdScore.predicted_log_pc < math.log(targeting["value"])
        if method == "all":
            return true()
        # The scoring engine's percentile is rank / n within the area (``targeting.ranking``), so "the
        # poorest X%" is exactly what the registry shows a household's percentile to be.
        return _percentile_column(targeting.get("level", "national")) <= targeting["percent"] / 100

    def counts_query(self):
        """Households scored in scope and meeting the PMT rule: one pass over the run, no member read.

        The same households as ``from_`` / ``base`` select. Nationally, "active" is written as "no
        inactive household with this key", which PostgreSQL answers without hashing every household
        (the targeting rule reads only ``household_scores``)."""
        counted = [HouseholdScore.run_id == self.run_id]
        if self.scope:
            in_scope = select(Household.id).where(Household.status == "active", or_(*self.scope))
            counted.append(HouseholdScore.household_pk.in_(in_scope))
        else:
            inactive = select(Household.id).where(
                Household.id == HouseholdScore.household_pk, Household.status != "active"
            )
            counted.append(~inactive.exists())
        return select(
            func.count().label("scored"),
            func.coalesce(func.sum(case((self.targeted, 1), else_=0)), 0).label("targeted"),
        ).where(*counted)

    def candidates(self, *, only_pks=None, count_eligible: bool = False):
        """Eligible households with everything an entry records (before quotas); with
        ``count_eligible``, also how many there are (``n_eligible``, the same on every row).

        When the criteria read members, households are joined to their members and grouped, so each
        criterion (and the head's sex) is one aggregate: the members of a targeted household are read
        once, in PostgreSQL's parallel workers, instead of once per test and again for the
        explanation. Otherwise no member is read here (``head_sex`` is left to :meth:`selected`).
        """
        columns = [
            Household.id.label("household_pk"),
            Household.household_id.label("household_id"),
            Household.current_version.label("household_version"),
            HouseholdScore.household_version.label("scored_version"),
            Household.union_code.label("union_code"),
            Household.area_type.label("area_type"),
            HouseholdScore.score.label("score"),
            HouseholdScore.predicted_log_pc.label("predicted_log_pc"),
            HouseholdScore.below_poverty_line.label("below_poverty_line"),
            HouseholdScore.national_rank.label("national_rank"),
            _rank_column(self.level).label("local_rank"),
            self.entry_bits.label("criteria_met"),
        ]
        if self.reads_members:
            columns.append(_head_sex().label("head_sex"))
        if self.quotas.get("per_area"):
            columns.append(
                func.row_number(type_=Integer)
                .over(
                    partition_by=_area_column(self.quotas["level"]),
                    order_by=(HouseholdScore.predicted_log_pc, Household.household_id),
                )
                .label("area_rn")
            )
        if count_eligible:
            columns.append(func.count(type_=Integer).over().label("n_eligible"))
        where = [*self.base, self.targeted, *self.exclusions]
        if only_pks is not None:
            where.append(Household.id.in_(only_pks))
        if not self.reads_members:
            return select(*columns).select_from(self.from_).where(*where, self.criteria)
        return (
            select(*columns)
            .select_from(self.from_.outerjoin(Member.__table__, Member.household_pk == Household.id))
            .where(*where)
            # The primary keys of both tables: every selected column depends on them.
            .group_by(Household.id, HouseholdScore.run_id, HouseholdScore.household_pk)
            .having(self.criteria)
        )

    def _within_quota(self, candidates):
        return candidates.c.area_rn <= self.quotas["per_area"] if self.quotas.get("per_area") else true()

    def funnel(self) -> dict:
        """Households scored in scope, meeting the PMT rule, eligible, and selected (after quotas and cap).

        Two queries: the counts without members, then one pass over the eligible candidates (the
        criteria are evaluated once) counting those the per-area quota keeps; the cap is a minimum.
        """
        counts = db.session.execute(self.counts_query()).one()
        cand = self.candidates().subquery("candidates")
        eligible, kept = db.session.execute(
            select(
                func.count(), func.coalesce(func.sum(case((self._within_quota(cand), 1), else_=0)), 0)
            ).select_from(cand)
        ).one()
        selected = int(kept) if not self.quotas.get("total") else min(int(kept), self.quotas["total"])
        return {"scored": counts.scored, "targeted": int(counts.targeted), "eligible": eligible, "selected": selected}

    def selected(self):
        """The final list: quotas, cap, positions and the explanation, ordered by position; each row
        also carries ``n_eligible``, the number of eligible households before quotas and cap.

        One statement. When the candidates did not read members, the head's sex is looked up for
        the selected households only (a CTE, referenced twice, so they are worked out once).
        """
        cand = self.candidates(count_eligible=True).subquery("candidates")
        inner = select(*(c for c in cand.c if c.name != "area_rn"))
        if self.quotas.get("per_area"):
            inner = inner.where(self._within_quota(cand))
        if self.quotas.get("total"):
            inner = inner.order_by(cand.c.predicted_log_pc, cand.c.household_id).limit(self.quotas["total"])
        if self.reads_members:
            sel = inner.subquery("selected")
            from_, head_sex = sel, sel.c.head_sex
        else:
            sel = inner.cte("selected")
            facts = (
                select(Member.household_pk.label("household_pk"), _head_sex().label("head_sex"))
                .join(sel, sel.c.household_pk == Member.household_pk)
                .group_by(Member.household_pk)
                .subquery("facts")
            )
            from_ = sel.outerjoin(facts, facts.c.household_pk == sel.c.household_pk)
            head_sex = facts.c.head_sex
        position = func.row_number().over(order_by=(sel.c.predicted_log_pc, sel.c.household_id))
        return (
            select(
                # ENTRY_COLUMNS first, in order (the rows are written as they come).
                position.label("position"),
                sel.c.household_pk,
                sel.c.household_version,
                sel.c.scored_version,
                sel.c.union_code,
                sel.c.area_type,
                head_sex.label("head_sex"),
                sel.c.score,
                sel.c.predicted_log_pc,
                sel.c.below_poverty_line,
                sel.c.national_rank,
                sel.c.local_rank,
                sel.c.criteria_met,
                sel.c.household_id,
                sel.c.n_eligible,
            )
            .select_from(from_)
            .order_by(sel.c.predicted_log_pc, sel.c.household_id)
        )


def _head_sex():
    """The sex of the household's head, as an aggregate over its members."""
    return func.min(case((Member.relation_to_head == HEAD, Member.sex)))


def _fast_plans() -> None:
    """Plan settings for the eligibility queries of this transaction (PostgreSQL; reverted at its end).

    JIT compilation does not pay for queries of a few seconds: measured on a 1M-household registry,
    compiling the list query took 4.3 s of its 7.1 s. More sort memory keeps the ordering of the
    selected households off disk.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL jit = off"))
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))


ENTRY_COLUMNS = (
    "position",
    "household_pk",
    "household_version",
    "scored_version",
    "union_code",
    "area_type",
    "head_sex",
    "score",
    "predicted_log_pc",
    "below_poverty_line",
    "national_rank",
    "local_rank",
    "criteria_met",
)


#: What a list's ``entries_hash`` covers, in order: enough to tell two lists apart.
HASHED_COLUMNS = ("position", "household_id", "household_version", "scored_version", "criteria_met")


#: Rows hashed per update: streamed result rows are never all held at once.
_HASH_BATCH = 10_000


def _hash_rows(rows) -> str:
    """The entries hash of rows holding :data:`HASHED_COLUMNS` (by name), in position order."""
    digest = hashlib.sha256()
    rows = iter(rows)
    picks = None
    while batch := list(islice(rows, _HASH_BATCH)):
        if picks is None:
            # By index: attribute access on result rows costs more than the hashing.
            picks = [batch[0]._fields.index(name) for name in HASHED_COLUMNS]
        digest.update("".join("{}|{}|{}|{}|{}\n".format(*(row[i] for i in picks)) for row in batch).encode())
    return digest.hexdigest()


def _resolve_exclusion_lists(rule: Mapping) -> dict[str, int | None]:
    """The current list of every excluded programme (None when it has no list yet)."""
    ids = (rule.get("exclusions") or {}).get("programmes") or []
    return {str(pid): (lst.id if (lst := get_current_list(db.session.get(Programme, pid))) else None) for pid in ids}


# --- preview and build -----------------------------------------------------------------------------


def preview(programme: Programme | None, actor: User | None, overrides: Mapping | None = None) -> dict:
    """How many households the rule would select now: scored, targeted, eligible, selected.

    ``overrides`` (rule parts, validated) replace the programme's saved ones, so an editor can show
    the count of an unsaved draft; ``programme`` may be None for a programme not created yet.
    """
    if actor is not None:
        if programme is not None:
            require_reader(actor)
        else:
            access.require_role(actor, MANAGER_ROLE)
    started = time.perf_counter()
    rule = (
        rule_of(programme)
        if programme is not None
        else {"scope_areas": [], "criteria": None, "exclusions": {}, "quotas": {}}
    )
    if overrides:
        values = _load(PreviewInputSchema(partial=True), overrides)
        _check_references(values, programme.id if programme else None)
        rule.update(values)
    if "targeting" not in rule:
        raise rules.RuleError([("targeting", None, "give the PMT targeting rule")])
    run = _require_run()
    exclusion_lists = [i for i in _resolve_exclusion_lists(rule).values() if i is not None]
    selection = _Selection(rule, run.id, exclusion_lists)
    _fast_plans()
    return {
        "model_id": run.model_id,
        "score_run_id": run.id,
        "funnel": selection.funnel(),
        "criteria_labels": rules.criteria_labels(rule.get("criteria")),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _require_run() -> ScoreRun:
    run = get_current_run()
    if run is None:
        raise EligibilityStateError(
            "no complete score run of the active PMT model: activate a model and run a full re-score first"
        )
    return run


def _lock_programme(programme: Programme) -> None:
    # Serialises builds of one programme, so list numbers never collide (SQLite serialises writers anyway).
    db.session.execute(select(Programme.id).where(Programme.id == programme.id).with_for_update())


def build_list(programme: Programme, actor: User | None, *, run: ScoreRun | None = None) -> EligibilityList:
    """Build and freeze the programme's next eligibility list from the current score run (flushed)."""
    require_manager(actor, programme)
    if programme.status != "active":
        raise EligibilityStateError(f"programme {programme.id} is archived; lists are built for active programmes")
    _lock_programme(programme)
    run = run or _require_run()
    rule = rule_of(programme)
    return _build(programme, rule, run, _resolve_exclusion_lists(rule), programme.version, actor, None)


def rebuild_list(source: EligibilityList, actor: User | None) -> EligibilityList:
    """Build a new list from another list's frozen inputs (rule, score run, exclusion lists)."""
    programme = source.programme
    require_manager(actor, programme)
    _lock_programme(programme)
    run = db.session.get(ScoreRun, source.score_run_id)
    rule = {key: source.definition[key] for key in RULE_KEYS}
    return _build(
        programme, rule, run, source.definition.get("exclusion_lists", {}), source.programme_version, actor, source
    )


def _build(
    programme: Programme,
    rule: dict,
    run: ScoreRun,
    exclusion_lists: dict[str, int | None],
    programme_version: int,
    actor: User | None,
    source: EligibilityList | None,
) -> EligibilityList:
    started = time.perf_counter()
    as_of = utcnow()
    number = (
        db.session.scalar(select(func.max(EligibilityList.number)).where(EligibilityList.programme_id == programme.id))
        or 0
    ) + 1
    selection = _Selection(rule, run.id, [i for i in exclusion_lists.values() if i is not None])
    lst = EligibilityList(
        programme_id=programme.id,
        number=number,
        status="built",
        definition={"name": programme.name, "ministry": programme.ministry, **rule, "exclusion_lists": exclusion_lists},
        definition_hash=rules.canonical_hash(rule),
        programme_version=programme_version,
        criteria_labels=rules.criteria_labels(rule.get("criteria")),
        local_level=selection.level,
        model_id=run.model_id,
        score_run_id=run.id,
        as_of=as_of,
        built_by_id=actor.id if actor else None,
        rebuilt_from_id=source.id if source else None,
        funnel={},
        n_entries=0,
        entries_hash="",
    )
    db.session.add(lst)
    db.session.flush()
    _fast_plans()
    counts = db.session.execute(selection.counts_query()).one()
    n_entries, n_eligible, entries_hash = _write_entries(lst.id, selection.selected())
    lst.n_entries = n_entries
    lst.funnel = {
        "scored": counts.scored,
        "targeted": int(counts.targeted),
        # Nothing selected means nothing eligible: quotas and caps are at least 1.
        "eligible": n_eligible,
        "selected": n_entries,
    }
    lst.entries_hash = entries_hash
    lst.build_seconds = round(time.perf_counter() - started, 3)
    db.session.flush()
    record_event(
        actor,
        "eligibility_list.build",
        "eligibility_list",
        lst.id,
        summary=(
            f"built list {lst.id} (#{lst.number}) of programme {programme.id} {programme.name!r}: "
            f"{lst.n_entries} households, model {run.model_id}, score run {run.id}"
            + (f", rebuilt from list {source.id}" if source else "")
        ),
        after={"funnel": lst.funnel, "definition_hash": lst.definition_hash, "entries_hash": lst.entries_hash},
    )
    log.info(
        "built eligibility list %s of programme %s: %s entries in %.2f s",
        lst.id,
        programme.id,
        lst.n_entries,
        lst.build_seconds,
    )
    return lst


class _CreateTemporaryTableAs(Executable, ClauseElement):
    """``CREATE TEMPORARY TABLE name AS <select>`` (PostgreSQL and SQLite; dropped at commit on
    PostgreSQL). On PostgreSQL the select still runs with parallel workers, which an
    ``INSERT … SELECT`` would not."""

    inherit_cache = False

    def __init__(self, name: str, query):
        self.name = name
        self.query = query


@compiles(_CreateTemporaryTableAs)
def _compile_create_temporary_table_as(element, compiler, **kw):
    on_commit = " ON COMMIT DROP" if compiler.dialect.name == "postgresql" else ""
    return f"CREATE TEMPORARY TABLE {element.name}{on_commit} AS {compiler.process(element.query, **kw)}"


def _write_entries(list_id: int, selected) -> tuple[int, int, str]:
    """Write a list's entries from ``selected`` (:meth:`_Selection.selected`); return the number of
    entries, of eligible households and the entries hash.

    The rows never travel to Python and back: they are materialised in a temporary table (parallel
    on PostgreSQL), inserted from there in household order (the entries' household index is then
    filled page by page, not at random: a third less time at 50,000 entries), and only the hashed
    columns are read back.
    """
    name = f"list_build_{list_id}"
    db.session.execute(_CreateTemporaryTableAs(name, selected))
    built = table(name, *(column(c) for c in (*ENTRY_COLUMNS, "household_id", "n_eligible")))
    db.session.execute(
        insert(Entry.__table__).from_select(
            ["list_id", *ENTRY_COLUMNS],
            select(literal(list_id, Integer), *(built.c[c] for c in ENTRY_COLUMNS)).order_by(built.c.household_pk),
        )
    )
    counts = select(func.count(), func.max(built.c.n_eligible)).select_from(built)
    n_entries, n_eligible = db.session.execute(counts).one()
    hashed = select(*(built.c[c] for c in HASHED_COLUMNS)).order_by(built.c.position)
    entries_hash = _hash_rows(db.session.execute(hashed.execution_options(yield_per=_HASH_BATCH)))
    db.session.execute(text(f"DROP TABLE {name}"))
    return int(n_entries), int(n_eligible or 0), entries_hash


def _entry_hash_query(list_id: int):
    return (
        select(
            Entry.position,
            Household.household_id,
            Entry.household_version,
            Entry.scored_version,
            Entry.criteria_met,
        )
        .join(Household, Household.id == Entry.household_pk)
        .where(Entry.list_id == list_id)
        .order_by(Entry.position)
        .execution_options(yield_per=10_000)
    )


def evaluate_household(programme: Programme, household: Household) -> dict:
    """Whether one household meets the programme's *current* rule now, and what was evaluated.

    The rule is compiled exactly as for a list build and run against the current score run,
    restricted to this household. ``eligible`` means "in scope, meets the PMT targeting rule, the
    criteria and the exclusions"; a per-area quota or an overall cap may still leave it off a list.
    ``eligible`` is None (and ``evaluated`` False) when there is no complete score run to judge by.
    Grievance redress uses this to judge a case by today's rule.
    """
    run = get_current_run()
    if run is None:
        return {"eligible": None, "evaluated": False, "reason": "no complete score run of the active model"}
    rule = rule_of(programme)
    exclusion_lists = [i for i in _resolve_exclusion_lists(rule).values() if i is not None]
    selection = _Selection(rule, run.id, exclusion_lists)
    candidates = selection.candidates(only_pks=[household.id]).subquery()
    eligible = db.session.execute(select(candidates.c.household_pk)).first() is not None
    met = db.session.scalar(select(selection.criteria_bits).select_from(Household).where(Household.id == household.id))
    return {
        "eligible": eligible,
        "evaluated": True,
        "programme_version": programme.version,
        "rule_hash": rules.canonical_hash(rule),
        "model_id": run.model_id,
        "score_run_id": run.id,
        "criteria_met": rules.explain_bits(int(met or 0), rules.criteria_labels(rule.get("criteria"))),
    }


def verify_list(lst: EligibilityList) -> dict:
    """Re-run a list's frozen inputs against today's data without writing; say whether it is identical."""
    rule = {key: lst.definition[key] for key in RULE_KEYS}
    exclusion_lists = [i for i in (lst.definition.get("exclusion_lists") or {}).values() if i is not None]
    selection = _Selection(rule, lst.score_run_id, exclusion_lists)
    _fast_plans()
    # Fetched whole (tens of bytes per entry): a server-side cursor would make PostgreSQL plan for the
    # first rows instead of the whole list, which is slower by far for this query.
    rebuilt = _hash_rows(db.session.execute(selection.selected()))
    return {
        "list_id": lst.id,
        "identical": rebuilt == lst.entries_hash,
        "entries_hash": lst.entries_hash,
        "rebuilt_hash": rebuilt,
    }


# --- reading lists ---------------------------------------------------------------------------------


def get_list(list_id: int) -> EligibilityList:
    lst = db.session.get(EligibilityList, list_id)
    if lst is None:
        raise ListNotFound(list_id)
    return lst


def get_current_list(programme: Programme | None) -> EligibilityList | None:
    """The programme's current list: the latest built."""
    if programme is None:
        return None
    return db.session.scalar(
        select(EligibilityList)
        .where(EligibilityList.programme_id == programme.id)
        .order_by(EligibilityList.id.desc())
        .limit(1)
    )


def list_lists(programme: Programme) -> list[EligibilityList]:
    """Every list of a programme, newest first."""
    return list(
        db.session.scalars(
            select(EligibilityList)
            .where(EligibilityList.programme_id == programme.id)
            .order_by(EligibilityList.id.desc())
        )
    )


def _current_list_ids():
    return select(func.max(EligibilityList.id).label("id")).group_by(EligibilityList.programme_id)


def is_current(lst: EligibilityList) -> bool:
    current = get_current_list(lst.programme)
    return current is not None and current.id == lst.id


def list_brief(lst: EligibilityList, *, current: bool | None = None) -> dict:
    """The one-line description of a list (``current``: whether it is its programme's current list,
    looked up when not given)."""
    builder = db.session.get(User, lst.built_by_id) if lst.built_by_id else None
    return {
        "id": lst.id,
        "programme_id": lst.programme_id,
        "number": lst.number,
        "status": lst.status,
        "n_entries": lst.n_entries,
        "model_id": lst.model_id,
        "score_run_id": lst.score_run_id,
        "as_of": lst.as_of,
        "built_at": lst.built_at,
        "built_by": builder.username if builder else None,
        "is_current": is_current(lst) if current is None else current,
    }


def list_view(lst: EligibilityList) -> dict:
    """A list's frozen metadata for the API and pages."""
    return {
        **list_brief(lst),
        "programme_name": lst.programme.name,
        "programme_version": lst.programme_version,
        "definition": lst.definition,
        "definition_hash": lst.definition_hash,
        "entries_hash": lst.entries_hash,
        "criteria_labels": lst.criteria_labels,
        "local_level": lst.local_level,
        "funnel": lst.funnel,
        "rebuilt_from_id": lst.rebuilt_from_id,
        "build_seconds": lst.build_seconds,
    }


def _entries_stmt(lst: EligibilityList, user: User | None, area: str | None):
    stmt = (
        select(Entry, Household.household_id)
        .join(Household, Household.id == Entry.household_pk)
        .where(Entry.list_id == lst.id)
    )
    scope = _scope_clause(user, Entry.union_code)
    if scope is not None:
        stmt = stmt.where(scope)
    if area:
        stmt = stmt.where(Entry.union_code.startswith(area, autoescape=True))
    return stmt


def entry_view(entry: Entry, household_id: str, lst: EligibilityList) -> dict:
    """One entry with its explanation (no personal data)."""
    return {
        "position": entry.position,
        "household_id": household_id,
        "union_code": entry.union_code,
        "upazila_code": entry.union_code[:6],
        "district_code": entry.union_code[:4],
        "division_code": entry.union_code[:2],
        "area_type": entry.area_type,
        "head_sex": entry.head_sex,
        "score": entry.score,
        "predicted_log_pc": entry.predicted_log_pc,
        "below_poverty_line": entry.below_poverty_line,
        "national_rank": entry.national_rank,
        "local_rank": entry.local_rank,
        "local_level": lst.local_level,
        "criteria_met": rules.explain_bits(entry.criteria_met, lst.criteria_labels),
        "household_version": entry.household_version,
        "scored_version": entry.scored_version,
    }


def list_entries(
    lst: EligibilityList, user: User | None, *, area: str | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """A page of the list's entries in position order, within the user's areas and an optional area."""
    if user is not None:
        require_reader(user)
        if area:
            access.require_area(user, area)
    stmt = _entries_stmt(lst, user, area)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = max(1, page)
    rows = db.session.execute(stmt.order_by(Entry.position).offset((page - 1) * per_page).limit(per_page))
    return Page([entry_view(e, hid, lst) for e, hid in rows], total, page, per_page)


def _area_counts(lst: EligibilityList, user: User | None, level: str) -> list[dict]:
    code = func.substr(Entry.union_code, 1, AREA_LENGTHS[level]).label("code")
    stmt = select(code, func.count().label("n")).where(Entry.list_id == lst.id).group_by(code).order_by(code)
    scope = _scope_clause(user, Entry.union_code)
    if scope is not None:
        stmt = stmt.where(scope)
    rows = db.session.execute(stmt).all()
    names = dict(db.session.execute(select(Area.code, Area.name_en).where(Area.code.in_([r.code for r in rows]))).all())
    return [{"code": r.code, "name": names.get(r.code), "count": r.n} for r in rows]


def expected_exclusion_error(model: PmtModel, coverage: float) -> dict | None:
    """The model's out-of-sample exclusion error at ``coverage``, interpolated in its validation report.

    The report gives the error at a few coverages (e.g. 10%…50% and the poverty rate); between two of
    them the error is interpolated linearly; outside them the nearest reported value is used (and the
    method says so).
    """
    try:
        targeting = model.report["metrics"][model.method]["out_of_sample"]["overall"]["targeting"]
    except (KeyError, TypeError):
        return None
    points = sorted(
        (p["coverage"], p["exclusion_error"])
        for p in targeting.values()
        if isinstance(p, Mapping) and p.get("coverage") is not None and p.get("exclusion_error") is not None
    )
    if not points:
        return None
    basis = (
        "the PMT's own error (selection by predicted consumption alone) at the share of scored households "
        "meeting the targeting rule; the report's coverages are shares of people, this one of households"
    )
    if coverage <= points[0][0] or coverage >= points[-1][0]:
        c, e = points[0] if coverage <= points[0][0] else points[-1]
        if math.isclose(coverage, c):
            return {"coverage": coverage, "exclusion_error": e, "method": f"reported at {c:.0%}", "basis": basis}
        return {
            "coverage": coverage,
            "exclusion_error": e,
            "method": f"outside the reported coverages: nearest reported value ({c:.0%})",
            "basis": basis,
        }
    for (c0, e0), (c1, e1) in zip(points, points[1:], strict=False):
        if c0 <= coverage <= c1:
            t = 0.0 if c1 == c0 else (coverage - c0) / (c1 - c0)
            return {
                "coverage": coverage,
                "exclusion_error": e0 + t * (e1 - e0),
                "method": f"linear interpolation between the reported coverages {c0:.0%} and {c1:.0%}",
                "basis": basis,
            }
    return None  # pragma: no cover - the points cover the range by construction


def list_summary(lst: EligibilityList, user: User | None) -> dict:
    """Counts per area, by sex of head, urban/rural, and the model's expected exclusion error."""
    if user is not None:
        require_reader(user)
    base = select(Entry).where(Entry.list_id == lst.id)
    scope = _scope_clause(user, Entry.union_code)
    if scope is not None:
        base = base.where(scope)
    sub = base.subquery()
    sexes = dict(db.session.execute(select(sub.c.head_sex, func.count()).group_by(sub.c.head_sex)).all())
    types = dict(db.session.execute(select(sub.c.area_type, func.count()).group_by(sub.c.area_type)).all())
    total = sum(sexes.values())
    below = db.session.scalar(select(func.count()).select_from(sub).where(sub.c.below_poverty_line.is_(True)))
    female = sexes.get(2, 0)
    funnel = lst.funnel or {}
    model = db.session.get(PmtModel, lst.model_id)
    coverage = funnel["targeted"] / funnel["scored"] if funnel.get("scored") else None
    return {
        "n_entries": total,
        "scope": "national" if user is None else scope_label(user),
        "by_division": _area_counts(lst, user, "division"),
        "by_district": _area_counts(lst, user, "district"),
        "by_upazila": _area_counts(lst, user, "upazila"),
        "by_head_sex": {SEX.get(code, "unknown") if code is not None else "unknown": n for code, n in sexes.items()},
        "female_headed_share": female / total if total else None,
        "by_area_type": {
            "rural": types.get(1, 0),
            "urban": sum(n for code, n in types.items() if code in (2, 3)),
        },
        "below_poverty_line": below or 0,
        "funnel": funnel,
        "expected_exclusion_error": (
            expected_exclusion_error(model, coverage) if model is not None and coverage is not None else None
        ),
    }


# --- diff ------------------------------------------------------------------------------------------


def _version_at(when: dt.datetime, household_pk):
    return (
        select(func.max(HouseholdVersion.version_no))
        .where(HouseholdVersion.household_pk == household_pk, HouseholdVersion.created_at <= when)
        .scalar_subquery()
    )


def _score_in(run_id: int, household_pk):
    return (
        select(HouseholdScore.predicted_log_pc)
        .where(HouseholdScore.run_id == run_id, HouseholdScore.household_pk == household_pk)
        .scalar_subquery()
    )


def _eligible_pks(lst: EligibilityList, run_id: int, pks) -> set[int]:
    """Households among ``pks`` that ``lst``'s frozen rule deems eligible (before quotas) in ``run_id``."""
    rule = {key: lst.definition[key] for key in RULE_KEYS}
    exclusion_lists = [i for i in (lst.definition.get("exclusion_lists") or {}).values() if i is not None]
    stmt = _Selection(rule, run_id, exclusion_lists).candidates(only_pks=pks).subquery()
    return set(db.session.scalars(select(stmt.c.household_pk)))


def diff_lists(base: EligibilityList, other: EligibilityList, user: User | None, *, limit: int = 1000) -> dict:
    """Who is on ``other`` but not ``base`` (added) and the reverse (removed), and why.

    Each household gets every applicable reason and a primary one, the first in :data:`DIFF_REASONS`:
    the rule changed *and* decides differently for it (old and new rules evaluated on the newer list's
    inputs), the model changed, its data changed (its version then and now differ, or it was registered
    or deactivated in between), its score changed under the same model, a community validation decision
    (when either list is a validated list), else other households moved (percentile cut, quota, cap,
    exclusion lists). Reasons are computed set-based for all changes; the
    returned items are limited to ``limit`` per side.
    """
    if user is not None:
        require_reader(user)
    if base.programme_id != other.programme_id:
        raise rules.RuleError([("other", other.id, f"list {other.id} is not a list of programme {base.programme_id}")])
    older, newer = (base, other) if base.as_of <= other.as_of else (other, base)
    rule_changed = base.definition_hash != other.definition_hash
    model_changed = base.model_id != other.model_id
    validated = "validated" in (base.status, other.status)
    scope = _scope_clause(user, Entry.union_code)
    sides: dict[str, list[dict]] = {}
    for name, present, absent in (("added", other, base), ("removed", base, other)):
        mine, theirs = aliased(Entry), aliased(Entry)
        missing = ~exists().where(theirs.list_id == absent.id, theirs.household_pk == mine.household_pk)
        stmt = (
            select(
                mine.household_pk,
                mine.position,
                mine.union_code,
                mine.household_version,
                mine.predicted_log_pc,
                Household.household_id,
                _version_at(absent.as_of, mine.household_pk).label("other_version"),
                _score_in(absent.score_run_id, mine.household_pk).label("other_score"),
            )
            .join(Household, Household.id == mine.household_pk)
            .where(mine.list_id == present.id, missing)
            .order_by(mine.position)
        )
        if scope is not None:
            stmt = stmt.where(_scope_clause(user, mine.union_code))
        rows = db.session.execute(stmt).all()
        rule_effect: set[int] = set()
        if rule_changed and rows:
            pks = [r.household_pk for r in rows]
            chunks = [pks[i : i + 5000] for i in range(0, len(pks), 5000)]
            under_newer, under_older = set(), set()
            for chunk in chunks:
                under_newer |= _eligible_pks(newer, newer.score_run_id, chunk)
                under_older |= _eligible_pks(older, newer.score_run_id, chunk)
            rule_effect = {pk for pk in pks if (pk in under_newer) != (pk in under_older)}
        items = []
        for r in rows:
            reasons = []
            if r.household_pk in rule_effect:
                reasons.append("rule_changed")
            if model_changed:
                reasons.append("model_changed")
            if r.other_version != r.household_version:
                reasons.append("data_changed")
            if not model_changed and (r.other_score is None or not math.isclose(r.other_score, r.predicted_log_pc)):
                reasons.append("score_changed")
            if not reasons and validated:
                reasons.append("community_validation")
            if not reasons:
                reasons.append("ranking_changed")
            items.append(
                {
                    "household_id": r.household_id,
                    "union_code": r.union_code,
                    "position": r.position,
                    "reason": reasons[0],
                    "reasons": reasons,
                }
            )
        sides[name] = items
    kept = _count_kept(base, other, user)
    return {
        "base": list_brief(base),
        "other": list_brief(other),
        "rule_changed": rule_changed,
        "model_changed": model_changed,
        "counts": {"added": len(sides["added"]), "removed": len(sides["removed"]), "kept": kept},
        "by_reason": {name: dict(Counter(i["reason"] for i in items)) for name, items in sides.items()},
        "added": sides["added"][:limit],
        "removed": sides["removed"][:limit],
        "truncated": len(sides["added"]) > limit or len(sides["removed"]) > limit,
    }


def _count_kept(base: EligibilityList, other: EligibilityList, user: User | None) -> int:
    mine, theirs = aliased(Entry), aliased(Entry)
    stmt = (
        select(func.count())
        .select_from(mine)
        .join(theirs, and_(theirs.household_pk == mine.household_pk, theirs.list_id == other.id))
        .where(mine.list_id == base.id)
    )
    scope = _scope_clause(user, mine.union_code)
    if scope is not None:
        stmt = stmt.where(scope)
    return db.session.scalar(stmt) or 0


# --- households and overlap ------------------------------------------------------------------------


def lists_for_household(household: Household) -> list[dict]:
    """Every list the household is on (newest first), saying which are their programme's current list."""
    current = set(db.session.scalars(_current_list_ids()))
    rows = db.session.execute(
        select(Entry, EligibilityList, Programme)
        .join(EligibilityList, EligibilityList.id == Entry.list_id)
        .join(Programme, Programme.id == EligibilityList.programme_id)
        .where(Entry.household_pk == household.id)
        .order_by(EligibilityList.id.desc())
    ).all()
    return [
        {
            "programme_id": programme.id,
            "programme_name": programme.name,
            "ministry": programme.ministry,
            "list_id": lst.id,
            "list_number": lst.number,
            "built_at": lst.built_at,
            "is_current": lst.id in current,
            "position": entry.position,
            "n_entries": lst.n_entries,
            "score": entry.score,
            "national_rank": entry.national_rank,
            "local_rank": entry.local_rank,
            "local_level": lst.local_level,
            "criteria_met": rules.explain_bits(entry.criteria_met, lst.criteria_labels),
        }
        for entry, lst, programme in rows
    ]


def overlap_summary(user: User | None) -> dict:
    """Cross-programme overlap of the current lists, as aggregate counts only (no household shown)."""
    if user is not None:
        require_reader(user)
    current_ids = list(db.session.scalars(_current_list_ids()))
    lists = [get_list(i) for i in sorted(current_ids)]
    lists = [lst for lst in lists if lst.programme.status == "active"]
    ids = [lst.id for lst in lists]
    scope = _scope_clause(user, Entry.union_code)
    per_household = select(Entry.household_pk, func.count().label("k")).where(Entry.list_id.in_(ids))
    if scope is not None:
        per_household = per_household.where(scope)
    per_household = per_household.group_by(Entry.household_pk).subquery()
    distribution = dict(db.session.execute(select(per_household.c.k, func.count()).group_by(per_household.c.k)).all())
    by_count: dict[str, int] = {}
    for k, n in sorted(distribution.items()):
        key = str(k) if k < 3 else "3+"
        by_count[key] = by_count.get(key, 0) + n
    a, b = aliased(Entry), aliased(Entry)
    pair_stmt = (
        select(a.list_id, b.list_id, func.count())
        .join(b, and_(b.household_pk == a.household_pk, b.list_id > a.list_id))
        .where(a.list_id.in_(ids), b.list_id.in_(ids))
        .group_by(a.list_id, b.list_id)
    )
    pair_scope = _scope_clause(user, a.union_code)
    if pair_scope is not None:
        pair_stmt = pair_stmt.where(pair_scope)
    programme_of = {lst.id: lst.programme_id for lst in lists}
    pairs = [
        {"programme_a": programme_of[x], "programme_b": programme_of[y], "households": n}
        for x, y, n in db.session.execute(pair_stmt).all()
    ]
    return {
        "scope": "national" if user is None else scope_label(user),
        "programmes": [list_brief(lst, current=True) for lst in lists],
        "programme_names": {str(lst.programme_id): lst.programme.name for lst in lists},
        "households_by_programme_count": by_count,
        "pairs": pairs,
    }


# --- exports ---------------------------------------------------------------------------------------

EXPORT_HEADER = (
    "position",
    "household_id",
    "division_code",
    "district_code",
    "upazila_code",
    "union_code",
    "area_type",
    "head_sex",
    "head_name_en",
    "head_name_bn",
    "head_nid",
    "head_mobile",
    "score",
    "predicted_consumption_tk",
    "below_poverty_line",
    "national_rank",
    "local_rank",
    "criteria_met",
    "household_version",
)


def export_pii_level(user: User | None, programme: Programme) -> str:
    """``full`` (registry PII roles; the system), ``delivery`` (the programme's officers: names, masked
    IDs) or ``masked`` (everyone else). Grievance officers see personal data only of the households named
    in their cases (registry.access), never a whole list's."""
    if user is not None and user.role == "grievance_officer":
        return "masked"
    if user is None or access.can_see_pii(user):
        return "full"
    if can_manage(user, programme):
        return "delivery"
    return "masked"


@dataclass
class Export:
    """An export's rows (lazily streamed) and the personal-data level applied to them."""

    pii_level: str
    header: tuple[str, ...]
    rows: Iterator[list]


def export_list(lst: EligibilityList, user: User | None, fmt: str) -> Export:
    """Audit the export and return its rows (position order, within the user's areas)."""
    if user is not None:
        require_reader(user)
    level = export_pii_level(user, lst.programme)
    record_event(
        user,
        "eligibility_list.export",
        "eligibility_list",
        lst.id,
        summary=f"exported list {lst.id} as {fmt} ({level} personal data, scope "
        f"{scope_label(user) if user else 'national'})",
    )
    return Export(level, EXPORT_HEADER, _export_rows(lst, user, level))


def _mask(level: str, value, kind: str):
    if value is None or level == "full":
        return value
    if kind == "name":
        return value if level == "delivery" else MASK
    return mask_identifier(str(value))


def _export_rows(lst: EligibilityList, user: User | None, level: str) -> Iterator[list]:
    head = aliased(Member)
    stmt = (
        select(Entry, Household.household_id, head.name_en, head.name_bn, head.nid_number, head.mobile_number)
        .join(Household, Household.id == Entry.household_pk)
        .outerjoin(head, and_(head.household_pk == Entry.household_pk, head.relation_to_head == HEAD))
        .where(Entry.list_id == lst.id)
        .order_by(Entry.position)
        .execution_options(yield_per=5_000)
    )
    scope = _scope_clause(user, Entry.union_code)
    if scope is not None:
        stmt = stmt.where(scope)
    labels = lst.criteria_labels
    for entry, household_id, name_en, name_bn, nid, mobile in db.session.execute(stmt):
        yield [
            entry.position,
            household_id,
            entry.union_code[:2],
            entry.union_code[:4],
            entry.union_code[:6],
            entry.union_code,
            entry.area_type,
            entry.head_sex,
            _mask(level, name_en, "name"),
            _mask(level, name_bn, "name"),
            _mask(level, nid, "id"),
            _mask(level, mobile, "id"),
            round(entry.score, 2),
            round(math.exp(entry.predicted_log_pc), 0),
            entry.below_poverty_line,
            entry.national_rank,
            entry.local_rank,
            "; ".join(rules.explain_bits(entry.criteria_met, labels)),
            entry.household_version,
        ]


def csv_chunks(export: Export, rows_per_chunk: int = 2_000) -> Iterator[str]:
    """The export as CSV text, in chunks (for a streamed response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(export.header)
    for i, row in enumerate(export.rows, 1):
        writer.writerow(row)
        if i % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_bytes(export: Export, title: str) -> bytes:
    """The export as an XLSX workbook (openpyxl write-only mode: rows are not kept in memory)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31] or "list")
    sheet.append(list(export.header))
    for row in export.rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- demo ------------------------------------------------------------------------------------------

DEMO_MINISTRY = "Ministry of Social Welfare"
DEMO_PROGRAMMES = (
    {
        "name": "Old Age Allowance (demo)",
        "ministry": DEMO_MINISTRY,
        "description": "A household with a member aged 65 or more, among the poorest 30% of its upazila by PMT.",
        "targeting": {"method": "poorest", "percent": 30, "level": "upazila"},
        "criteria": {"member": {"age_years": {"gte": 65}}, "label": "a member aged 65 or more"},
    },
    {
        "name": "Disability Allowance (demo)",
        "ministry": DEMO_MINISTRY,
        "description": "A household with a member with a disability, predicted below its stratum's poverty line.",
        "targeting": {"method": "poverty_line"},
        "criteria": {"member": {"disability": True}, "label": "a member with a disability"},
    },
)


def create_demo_programmes(actor: User | None) -> list[EligibilityList]:
    """The demo's two programmes (created once) and a list of each, when a score run exists (flushed)."""
    built = []
    run = get_current_run()
    for definition in DEMO_PROGRAMMES:
        programme = db.session.scalar(select(Programme).where(Programme.name == definition["name"]))
        if programme is None:
            programme = create_programme(definition, actor)
        if run is None:
            log.warning("no complete score run yet: demo programme %r has no list", programme.name)
            continue
        built.append(build_list(programme, actor, run=run))
    return built
