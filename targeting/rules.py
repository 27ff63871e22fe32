"""Eligibility rules as data: validation against a whitelist, and compilation to SQL expressions.

A programme's extra criteria are a small JSON tree, never code::

    {"all": [
        {"member": {"age_years": {"gte": 65}}},                 # a member aged 65 or more
        {"household": {"female_head": true}},                   # a female head
        {"not": {"household": {"receives": "OAA"}}}             # not already on the old-age allowance
    ]}

* ``all`` / ``any`` take a non-empty list of nodes, ``not`` takes one node.
* ``member`` holds conditions that must be true of *the same* member (``{"member": {"sex": 2,
  "age_years": {"gte": 60}}}`` = a woman aged 60+); it compiles to ``EXISTS (SELECT … FROM members
  WHERE members.household_pk = households.id AND …)``.
* ``household`` holds conditions on the household (all must hold), including derived ones about its
  head (``female_head``, ``widowed_head``, ``head_age``, ``head_sex``), its size, its area and the
  safety-net benefits it already receives (``receives``).
* A condition is ``{operator: value}``; a bare value means ``eq`` (or ``in`` for a list). Operators
  depend on the attribute's kind (:data:`OPERATORS`); symbols (``>=``, ``<`` …) are accepted too.
* Any node may carry a ``label`` (shown in explanations); otherwise one is generated.

Validation collects every problem with its JSON path (``criteria.all[1].household.femal_head:
unknown attribute``) and raises :class:`RuleError`, which the web layer answers with 422. Compiled
expressions are SQLAlchemy Core with bound parameters; no SQL text is ever built from a rule.

The PMT targeting rule (poverty line, cut-off, poorest X% nationally or within each area of a
level) and quotas are validated here too; ``targeting.eligibility`` turns them into the query.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, not_, or_, select, true

from models import Household, Member
from models.codes import (
    AREA_LEVELS,
    DISABILITY_DOMAINS,
    DISABILITY_THRESHOLD,
    HEAD,
    HOUSEHOLD_SPECS,
    MEMBER_SPECS,
    SAFETY_NET_PROGRAMMES,
    SEX,
)
from registry.validation import Issue, RecordValidationError

#: Limits that keep rules readable and queries small.
MAX_DEPTH = 8
MAX_NODES = 100
#: Top-level criteria are recorded per entry as a bitmask in a 32-bit integer.
MAX_TOP_LEVEL = 20
MAX_LABEL = 80

TARGETING_METHODS = ("poverty_line", "score_below", "consumption_below", "poorest", "all")
TARGETING_LEVELS = ("national", *AREA_LEVELS)
QUOTA_LEVELS = AREA_LEVELS
FEMALE = 2
WIDOWED = 3

OPERATORS: dict[str, tuple[str, ...]] = {
    "number": ("eq", "ne", "lt", "lte", "gt", "gte"),
    "code": ("eq", "ne", "in", "not_in"),
    "bool": ("eq",),
    "codeset": ("eq", "in", "not_in"),
    "area": ("in", "not_in"),
}
OPERATOR_SYMBOLS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
OPERATOR_TEXT = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "in": "in", "not_in": "not in"}


class RuleError(RecordValidationError):
    """A rule or programme definition is invalid; ``fields()`` maps JSON paths to reasons."""

    def __init__(self, problems: list[tuple[str, Any, str]]):
        issues = [Issue("rule", None, None, path, _short(value), message) for path, value, message in problems]
        super().__init__(issues)

    def fields(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for issue in self.issues:
            out.setdefault(issue.field, []).append(issue.rule)
        return out


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Attribute:
    """One attribute a rule may test: its kind, its allowed values and a label."""

    name: str
    kind: str
    label: str
    codes: Mapping | None = None
    min: float | None = None
    max: float | None = None
    integer: bool = False


LABELS = {
    "age_years": "age",
    "land_cultivable_decimal": "cultivable land (decimals)",
    "land_homestead_decimal": "homestead land (decimals)",
    "remittance_amount_12m": "remittances in 12 months (Tk)",
}


def _from_spec(spec) -> Attribute | None:
    label = LABELS.get(spec.name) or spec.label or spec.name.replace("_", " ")
    if spec.kind == "code":
        return Attribute(spec.name, "code", label, codes=spec.codes)
    if spec.kind in ("int", "decimal"):
        return Attribute(spec.name, "number", label, min=spec.min, max=spec.max, integer=spec.kind == "int")
    if spec.kind == "bool":
        return Attribute(spec.name, "bool", label)
    # Text, dates and identifiers (names, NIDs, phone numbers) are not targeting criteria.
    return None


def _attributes(specs, skip, derived) -> dict[str, Attribute]:
    out = {}
    for name, spec in specs.items():
        if name in skip:
            continue
        attribute = _from_spec(spec)
        if attribute is not None:
            out[name] = attribute
    out.update({a.name: a for a in derived})
    return dict(sorted(out.items()))


HOUSEHOLD_ATTRIBUTES: dict[str, Attribute] = _attributes(
    HOUSEHOLD_SPECS,
    skip=("household_id", "union_code", "safety_net_benefits"),
    derived=(
        Attribute("female_head", "bool", "female head"),
        Attribute("widowed_head", "bool", "widowed head"),
        Attribute("head_age", "number", "head's age", min=0, max=120, integer=True),
        Attribute("head_sex", "code", "head's sex", codes=SEX),
        Attribute("household_size", "number", "household size", min=0, max=99, integer=True),
        Attribute("area", "area", "area"),
        Attribute("receives", "codeset", "receives", codes=SAFETY_NET_PROGRAMMES),
    ),
)
MEMBER_ATTRIBUTES: dict[str, Attribute] = _attributes(
    MEMBER_SPECS,
    skip=("household_id", "line_no"),
    derived=(
        Attribute("disability", "bool", "a disability"),
        Attribute("head", "bool", "is the head"),
    ),
)
SUBJECTS = {"household": HOUSEHOLD_ATTRIBUTES, "member": MEMBER_ATTRIBUTES}
NODE_KEYS = ("all", "any", "not", "household", "member")

#: Ready-made criteria offered by the programme editor.
PRESETS: dict[str, dict] = {
    "member_65_plus": {"member": {"age_years": {"gte": 65}}},
    "female_head": {"household": {"female_head": True}},
    "member_disability": {"member": {"disability": True}},
    "child_under_5": {"member": {"age_years": {"lt": 5}}},
    "pregnant_or_lactating": {"member": {"pregnant_or_lactating": True}},
    "widowed_head": {"household": {"widowed_head": True}},
    "cultivable_land_under_50": {"household": {"land_cultivable_decimal": {"lt": 50}}},
    "rural": {"household": {"area_type": 1}},
    "not_on_oaa": {"not": {"household": {"receives": "OAA"}}},
}


# --- validation ---------------------------------------------------------------------------


class _Checker:
    def __init__(self):
        self.problems: list[tuple[str, Any, str]] = []
        self.nodes = 0

    def fail(self, path: str, value: Any, message: str) -> None:
        self.problems.append((path, value, message))

    def node(self, raw: Any, path: str, depth: int) -> dict | None:
        self.nodes += 1
        if self.nodes == MAX_NODES + 1:
            self.fail(path, None, f"a rule may have at most {MAX_NODES} conditions")
        if depth > MAX_DEPTH:
            self.fail(path, None, f"rules may nest at most {MAX_DEPTH} levels deep")
            return None
        if not isinstance(raw, Mapping):
            self.fail(path, raw, f"expected an object with one of: {', '.join(NODE_KEYS)}")
            return None
        label = raw.get("label")
        keys = [k for k in raw if k != "label"]
        unknown = [k for k in keys if k not in NODE_KEYS]
        for key in unknown:
            self.fail(f"{path}.{key}", key, f"unknown key (use one of: {', '.join(NODE_KEYS)}, label)")
        known = [k for k in keys if k in NODE_KEYS]
        if unknown:
            return None
        if len(known) != 1:
            self.fail(path, keys, f"expected exactly one of: {', '.join(NODE_KEYS)}")
            return None
        key = known[0]
        value = raw[key]
        out: dict[str, Any]
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.fail(f"{path}.{key}", value, "expected a non-empty list of conditions")
                return None
            children = [self.node(child, f"{path}.{key}[{i}]", depth + 1) for i, child in enumerate(value)]
            out = {key: children}
        elif key == "not":
            out = {"not": self.node(value, f"{path}.not", depth + 1)}
        else:
            out = {key: self.conditions(key, value, f"{path}.{key}")}
        if label is not None:
            if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
                self.fail(f"{path}.label", label, f"a label is a non-empty text of at most {MAX_LABEL} characters")
            else:
                out["label"] = label.strip()
        return out

    def conditions(self, subject: str, raw: Any, path: str) -> dict:
        attributes = SUBJECTS[subject]
        if not isinstance(raw, Mapping) or not raw:
            self.fail(path, raw, f"expected an object of {subject} attribute conditions")
            return {}
        out = {}
        for name, condition in raw.items():
            attribute = attributes.get(name)
            if attribute is None:
                self.fail(
                    f"{path}.{name}", name, f"unknown attribute (known {subject} attributes: {', '.join(attributes)})"
                )
                continue
            normalised = self.condition(attribute, condition, f"{path}.{name}")
            if normalised is not None:
                out[name] = normalised
        return dict(sorted(out.items()))

    def condition(self, attribute: Attribute, raw: Any, path: str) -> dict | None:
        allowed = OPERATORS[attribute.kind]
        if isinstance(raw, Mapping):
            if not raw:
                self.fail(path, raw, f"expected at least one operator ({', '.join(allowed)})")
                return None
            pairs = list(raw.items())
        elif isinstance(raw, list):
            pairs = [("in", raw)]
        else:
            pairs = [("in" if attribute.kind == "area" else "eq", raw)]
        out = {}
        for op, value in pairs:
            op_name = OPERATOR_SYMBOLS.get(op, op) if isinstance(op, str) else op
            if op_name not in allowed:
                self.fail(
                    f"{path}.{op}",
                    op,
                    f"unknown operator for {attribute.kind} attribute {attribute.name} (use {', '.join(allowed)})",
                )
                continue
            checked = self.value(attribute, op_name, value, f"{path}.{op}" if isinstance(raw, Mapping) else path)
            if checked is not None:
                out[op_name] = checked
        return dict(sorted(out.items())) if out else None

    def value(self, attribute: Attribute, op: str, value: Any, path: str) -> Any:
        if op in ("in", "not_in"):
            values = value if isinstance(value, list) else [value]
            if not values:
                self.fail(path, value, "expected a non-empty list of values")
                return None
            checked = [self.scalar(attribute, v, f"{path}[{i}]") for i, v in enumerate(values)]
            if any(c is None for c in checked):
                return None
            return sorted(set(checked), key=lambda v: (str(type(v)), v))
        return self.scalar(attribute, value, path)

    def scalar(self, attribute: Attribute, value: Any, path: str) -> Any:
        kind = attribute.kind
        if kind == "bool":
            if not isinstance(value, bool):
                self.fail(path, value, "expected true or false")
                return None
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                self.fail(path, value, "expected a number")
                return None
            if (attribute.min is not None and value < attribute.min) or (
                attribute.max is not None and value > attribute.max
            ):
                self.fail(path, value, f"expected a number between {attribute.min:g} and {attribute.max:g}")
                return None
            return int(value) if attribute.integer and float(value).is_integer() else value
        if kind == "code":
            if isinstance(value, bool) or not isinstance(value, int) or value not in attribute.codes:
                codes = ", ".join(f"{c} {label}" for c, label in attribute.codes.items())
                self.fail(path, value, f"expected one of the codes: {codes}")
                return None
            return value
        if kind == "codeset":
            if not isinstance(value, str) or value not in attribute.codes:
                self.fail(path, value, f"expected one of: {', '.join(attribute.codes)}")
                return None
            return value
        if kind == "area":
            if not isinstance(value, str) or not value.isdigit() or len(value) not in (2, 4, 6, 8):
                self.fail(path, value, "expected a BBS area code of 2, 4, 6 or 8 digits")
                return None
            return value
        raise AssertionError(kind)  # pragma: no cover - kinds are fixed above


def normalise_criteria(raw: Any, path: str = "criteria") -> dict | None:
    """Validate a criteria tree and return it in canonical form (None when ``raw`` is empty).

    Raises :class:`RuleError` naming every bad part by its JSON path.
    """
    if raw is None or raw == {}:
        return None
    checker = _Checker()
    tree = checker.node(raw, path, 1)
    if tree is not None and not checker.problems:
        count = len(top_level(tree))
        if count > MAX_TOP_LEVEL:
            checker.fail(path, count, f"at most {MAX_TOP_LEVEL} top-level criteria")
    if checker.problems:
        raise RuleError(checker.problems)
    return tree


def normalise_targeting(raw: Any, path: str = "targeting") -> dict:
    """Validate the PMT targeting rule; canonical form ``{"method", ...}`` (see :data:`TARGETING_METHODS`)."""
    problems: list[tuple[str, Any, str]] = []
    if not isinstance(raw, Mapping):
        raise RuleError([(path, raw, f"expected an object with a method ({', '.join(TARGETING_METHODS)})")])
    method = raw.get("method")
    allowed_keys = {"method"}
    out: dict[str, Any] = {"method": method}
    if method not in TARGETING_METHODS:
        problems.append((f"{path}.method", method, f"expected one of: {', '.join(TARGETING_METHODS)}"))
    elif method in ("score_below", "consumption_below"):
        allowed_keys.add("value")
        value = raw.get("value")
        low, high = (0, 100) if method == "score_below" else (0, 1_000_000)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
            problems.append((f"{path}.value", value, f"expected a number above {low} and at most {high}"))
        else:
            out["value"] = value
    elif method == "poorest":
        allowed_keys |= {"percent", "level"}
        percent = raw.get("percent")
        level = raw.get("level", "national")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
            problems.append((f"{path}.percent", percent, "expected a percentage above 0 and at most 100"))
        else:
            out["percent"] = percent
        if level not in TARGETING_LEVELS:
            problems.append((f"{path}.level", level, f"expected one of: {', '.join(TARGETING_LEVELS)}"))
        else:
            out["level"] = level
    for key in raw:
        if key not in allowed_keys:
            problems.append((f"{path}.{key}", raw[key], f"not used by method {method!r}"))
    if problems:
        raise RuleError(problems)
    return out


def normalise_quotas(raw: Any, path: str = "quotas") -> dict:
    """Validate quotas: ``{"level", "per_area", "total"}``, each optional (``per_area`` needs ``level``)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RuleError([(path, raw, "expected an object with level, per_area and/or total")])
    problems: list[tuple[str, Any, str]] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "level":
            if value is not None and value not in QUOTA_LEVELS:
                problems.append((f"{path}.level", value, f"expected one of: {', '.join(QUOTA_LEVELS)}"))
            elif value is not None:
                out["level"] = value
        elif key in ("per_area", "total"):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append((f"{path}.{key}", value, "expected a whole number of households, at least 1"))
            else:
                out[key] = value
        else:
            problems.append((f"{path}.{key}", value, "unknown key (use level, per_area, total)"))
    if "per_area" in out and "level" not in out:
        problems.append((f"{path}.level", None, "give the area level of the per-area quota"))
    if "level" in out and "per_area" not in out and not problems:
        problems.append((f"{path}.per_area", None, "give the number of households per area"))
    if problems:
        raise RuleError(problems)
    return out


def normalise_exclusions(raw: Any, path: str = "exclusions") -> dict:
    """Validate exclusions: ``{"programmes": [ids], "benefits": [codes]}`` (ids are checked by the service)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RuleError([(path, raw, "expected an object with programmes and/or benefits")])
    problems: list[tuple[str, Any, str]] = []
    out: dict[str, list] = {}
    for key, value in raw.items():
        if key not in ("programmes", "benefits"):
            problems.append((f"{path}.{key}", value, "unknown key (use programmes, benefits)"))
            continue
        if value is None:
            continue
        if not isinstance(value, list):
            problems.append((f"{path}.{key}", value, "expected a list"))
            continue
        good = []
        for i, item in enumerate(value):
            if key == "programmes" and (isinstance(item, bool) or not isinstance(item, int) or item < 1):
                problems.append((f"{path}.{key}[{i}]", item, "expected a programme id"))
            elif key == "benefits" and item not in SAFETY_NET_PROGRAMMES:
                problems.append((f"{path}.{key}[{i}]", item, f"expected one of: {', '.join(SAFETY_NET_PROGRAMMES)}"))
            else:
                good.append(item)
        if good:
            out[key] = sorted(set(good))
    if problems:
        raise RuleError(problems)
    return out


def local_level(targeting: Mapping, quotas: Mapping) -> str:
    """The area level whose rank explains an entry: the targeting level, else the quota level, else union."""
    if targeting.get("method") == "poorest" and targeting.get("level", "national") != "national":
        return targeting["level"]
    return quotas.get("level") or "union"


def canonical_hash(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value`` (sorted keys), for comparing definitions."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- explanation ------------------------------------------------------------------------------


def top_level(tree: Mapping | None) -> list[dict]:
    """The criteria recorded per entry: the children of a root ``all``/``any``, else the root itself."""
    if not tree:
        return []
    for key in ("all", "any"):
        if key in tree:
            return list(tree[key])
    return [dict(tree)]


def _describe_condition(subject: str, name: str, condition: Mapping) -> str:
    attribute = SUBJECTS[subject][name]
    parts = []
    # Sorted here and below: JSONB stores keys in its own order, and a label must not depend on it.
    for op, value in sorted(condition.items()):
        if attribute.kind == "bool":
            parts.append(attribute.label if value else f"not {attribute.label}")
            continue
        values = value if isinstance(value, list) else [value]
        if attribute.codes is not None:
            shown = ", ".join(str(attribute.codes.get(v, v)) for v in values)
        else:
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
        parts.append(f"{attribute.label} {OPERATOR_TEXT[op]} {shown}")
    return " and ".join(parts)


def describe(tree: Mapping) -> str:
    """A readable description of a (normalised) rule node, e.g. ``a member with age years ≥ 65``."""
    if tree.get("label"):
        return tree["label"]
    if "all" in tree or "any" in tree:
        key = "all" if "all" in tree else "any"
        joined = f" {'and' if key == 'all' else 'or'} ".join(describe(child) for child in tree[key])
        return f"({joined})"
    if "not" in tree:
        return f"not {describe(tree['not'])}"
    if "member" in tree:
        conditions = sorted(tree["member"].items())
        return "a member with " + " and ".join(_describe_condition("member", n, c) for n, c in conditions)
    return " and ".join(_describe_condition("household", n, c) for n, c in sorted(tree["household"].items()))


def criteria_labels(tree: Mapping | None) -> list[str]:
    """Labels of the top-level criteria, in order (the bit order of ``criteria_met``)."""
    return [describe(node) for node in top_level(tree)]


# --- compilation ------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "in": lambda column, values: column.in_(values),
    "not_in": lambda column, values: column.not_in(values),
}


def _apply(column, condition: Mapping) -> ColumnElement[bool]:
    return and_(*(_COMPARE[op](column, value) for op, value in condition.items()))


def _member_has_disability() -> ColumnElement[bool]:
    return or_(*(getattr(Member, f"disability_{d}") >= DISABILITY_THRESHOLD for d in DISABILITY_DOMAINS))


def _member_clause(name: str, condition: Mapping) -> ColumnElement[bool]:
    if name == "disability":
        if condition["eq"]:
            return _member_has_disability()
        # A missing difficulty level means none was recorded; NOT over NULL would hide the member.
        columns = (getattr(Member, f"disability_{d}") for d in DISABILITY_DOMAINS)
        return and_(*(or_(column.is_(None), column < DISABILITY_THRESHOLD) for column in columns))
    if name == "head":
        return (Member.relation_to_head == HEAD) if condition["eq"] else (Member.relation_to_head != HEAD)
    return _apply(getattr(Member, name), condition)


#: Household attributes worked out from its members (they read ``members`` like a member node).
MEMBER_DERIVED = frozenset({"female_head", "widowed_head", "head_age", "head_sex", "household_size"})


def reads_members(tree: Mapping | None) -> bool:
    """Whether a (normalised) tree has a test on members, directly or through a derived attribute."""
    if not tree:
        return False
    for key in ("all", "any"):
        if key in tree:
            return any(reads_members(child) for child in tree[key])
    if "not" in tree:
        return reads_members(tree["not"])
    if "member" in tree:
        return True
    return not MEMBER_DERIVED.isdisjoint(tree["household"])


def _member_exists(*clauses: ColumnElement[bool], grouped: bool) -> ColumnElement[bool]:
    if grouped:
        # Over ``households LEFT JOIN members`` grouped by household. A household without members
        # has one row of NULLs, which must not count as a member (``disability IS NULL`` holds of it).
        return func.max(case((and_(Member.id.is_not(None), *clauses), 1), else_=0)) == 1
    return select(Member.id).where(Member.household_pk == Household.id, *clauses).exists()


def _benefit_text():
    # ';'-delimited on both sides so that "OAA" never matches inside another code.
    return literal(";") + func.coalesce(Household.safety_net_benefits, "") + literal(";")


def receives_any(codes) -> ColumnElement[bool]:
    """Households already receiving any of the safety-net ``codes`` (bound LIKE parameters)."""
    text = _benefit_text()
    return or_(*(text.contains(f";{code};", autoescape=True) for code in codes))


def _household_clause(name: str, condition: Mapping, grouped: bool) -> ColumnElement[bool]:
    head = Member.relation_to_head == HEAD
    if name in ("female_head", "widowed_head"):
        column, wanted = (Member.sex, FEMALE) if name == "female_head" else (Member.marital_status, WIDOWED)
        exists = _member_exists(head, column == wanted, grouped=grouped)
        return exists if condition["eq"] else not_(exists)
    if name == "head_age":
        return _member_exists(head, _apply(Member.age_years, condition), grouped=grouped)
    if name == "head_sex":
        return _member_exists(head, _apply(Member.sex, condition), grouped=grouped)
    if name == "household_size":
        if grouped:
            size = func.count(Member.id)
        else:
            size = select(func.count(Member.id)).where(Member.household_pk == Household.id).scalar_subquery()
        return _apply(size, condition)
    if name == "area":
        clauses = []
        for op, codes in condition.items():
            inside = or_(*(Household.union_code.startswith(code, autoescape=True) for code in codes))
            clauses.append(inside if op == "in" else not_(inside))
        return and_(*clauses)
    if name == "receives":
        clauses = []
        for op, value in condition.items():
            codes = value if isinstance(value, list) else [value]
            has = receives_any(codes)
            clauses.append(not_(has) if op == "not_in" else has)
        return and_(*clauses)
    return _apply(getattr(Household, name), condition)


def compile_criteria(tree: Mapping | None, *, grouped: bool = False) -> ColumnElement[bool]:
    """A SQL boolean over ``households`` for a normalised tree.

    By default it is correlated to ``households.id`` (tests on members are ``EXISTS`` sub-queries),
    for a query with one row per household. With ``grouped`` it is meant for the ``HAVING`` of a
    query over ``households LEFT JOIN members`` grouped by household: tests on members are aggregates,
    so every criterion is decided in one pass over the members instead of one probe per test.
    """
    if not tree:
        return true()
    if "all" in tree:
        return and_(*(compile_criteria(child, grouped=grouped) for child in tree["all"]))
    if "any" in tree:
        # "A member with X, or a member with Y" is one test over members (X OR Y): the same
        # households, but a single sub-query that PostgreSQL can run as one semi-join instead of
        # one probe per household and alternative.
        members = [child for child in tree["any"] if "member" in child]
        clauses = [compile_criteria(child, grouped=grouped) for child in tree["any"] if "member" not in child]
        if len(members) > 1:
            clauses.append(
                _member_exists(
                    or_(*(and_(*(_member_clause(n, c) for n, c in node["member"].items())) for node in members)),
                    grouped=grouped,
                )
            )
        else:
            clauses += [compile_criteria(child, grouped=grouped) for child in members]
        return or_(*clauses)
    if "not" in tree:
        return not_(compile_criteria(tree["not"], grouped=grouped))
    if "member" in tree:
        return _member_exists(*(_member_clause(n, c) for n, c in tree["member"].items()), grouped=grouped)
    return and_(*(_household_clause(n, c, grouped) for n, c in tree["household"].items()))


def explain_bits(bits: int, labels: list[str]) -> list[str]:
    """The labels of the criteria set in an entry's ``criteria_met`` bitmask."""
    return [label for i, label in enumerate(labels) if bits & (1 << i)]
