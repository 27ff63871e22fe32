"""Eligibility rules as data: the whitelist, canonical form, errors by JSON path, labels, and compilation
to parameterised SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from models import Household, Member
from targeting import rules
from targeting.rules import RuleError


def fields_of(raw, normalise=rules.normalise_criteria):
    with pytest.raises(RuleError) as info:
        normalise(raw)
    return info.value.fields()


def test_canonical_form():
    tree = rules.normalise_criteria(
        {
            "any": [
                {"member": {"age_years": {">=": 65}}},
                {"household": {"female_head": True, "area_type": [3, 2]}},
                {"not": {"household": {"receives": "OAA"}}, "label": "not on the old-age allowance"},
            ]
        }
    )
    assert tree == {
        "any": [
            {"member": {"age_years": {"gte": 65}}},
            {"household": {"area_type": {"in": [2, 3]}, "female_head": {"eq": True}}},
            {"not": {"household": {"receives": {"eq": "OAA"}}}, "label": "not on the old-age allowance"},
        ]
    }
    # Normalising is idempotent, so a stored rule can be validated again unchanged.
    assert rules.normalise_criteria(tree) == tree
    assert rules.normalise_criteria(None) is None and rules.normalise_criteria({}) is None


def test_presets_are_valid_rules():
    for name, preset in rules.PRESETS.items():
        assert rules.normalise_criteria(preset), name


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (
            {"all": [{"member": {"age_years": {"gte": 65}}}, {"household": {"femal_head": True}}]},
            "criteria.all[1].household.femal_head",
            "unknown attribute",
        ),
        ({"member": {"sex": {"gt": 1}}}, "criteria.member.sex.gt", "unknown operator"),
        ({"member": {"sex": 7}}, "criteria.member.sex", "expected one of the codes"),
        ({"member": {"age_years": {"gte": "65"}}}, "criteria.member.age_years.gte", "expected a number"),
        ({"member": {"age_years": {"gte": 200}}}, "criteria.member.age_years.gte", "between 0 and 120"),
        ({"member": {"pregnant_or_lactating": 1}}, "criteria.member.pregnant_or_lactating", "true or false"),
        ({"household": {"receives": ["OAA", "XX"]}}, "criteria.household.receives[1]", "expected one of"),
        ({"household": {"area": "3"}}, "criteria.household.area[0]", "BBS area code"),
        ({"household": {"nid_number": "1"}}, "criteria.household.nid_number", "unknown attribute"),
        ({"member": {"name_en": "Rahim"}}, "criteria.member.name_en", "unknown attribute"),
        ({"all": []}, "criteria.all", "non-empty list"),
        ({"any": {"member": {}}}, "criteria.any", "non-empty list"),
        ({"member": {}}, "criteria.member", "expected an object"),
        ({"everyone": True}, "criteria.everyone", "unknown key"),
        ({"member": {"head": True}, "household": {"female_head": True}}, "criteria", "exactly one"),
        ("female head", "criteria", "expected an object"),
        ({"not": {"member": {"agee": 3}}}, "criteria.not.member.agee", "unknown attribute"),
        ({"member": {"age_years": {}}}, "criteria.member.age_years", "at least one operator"),
        ({"household": {"female_head": True}, "label": ""}, "criteria.label", "label"),
    ],
)
def test_bad_parts_are_named_by_path(raw, path, message):
    fields = fields_of(raw)
    assert path in fields, fields
    assert message in fields[path][0]


def test_every_problem_is_reported_at_once():
    fields = fields_of({"all": [{"member": {"agee": 1}}, {"household": {"rooms": {"lt": "x"}}}, {"x": 1}]})
    assert set(fields) == {"criteria.all[0].member.agee", "criteria.all[1].household.rooms.lt", "criteria.all[2].x"}


def test_size_limits():
    deep = {"member": {"age_years": {"gte": 65}}}
    for _ in range(rules.MAX_DEPTH + 1):
        deep = {"not": deep}
    assert "nest at most" in str(fields_of(deep))
    many = {"all": [{"member": {"age_years": {"gte": i}}} for i in range(rules.MAX_TOP_LEVEL + 1)]}
    assert "top-level" in str(fields_of(many))
    huge = {"any": [{"all": [{"member": {"age_years": {"gte": 1}}}] * 10}] * 11}
    assert "at most" in str(fields_of(huge))


def test_targeting_quotas_and_exclusions():
    assert rules.normalise_targeting({"method": "poorest", "percent": 20}) == {
        "method": "poorest",
        "percent": 20,
        "level": "national",
    }
    assert rules.normalise_targeting({"method": "poverty_line"}) == {"method": "poverty_line"}
    assert set(fields_of({"method": "poorest", "percent": 0, "level": "village"}, rules.normalise_targeting)) == {
        "targeting.percent",
        "targeting.level",
    }
    assert "targeting.value" in fields_of({"method": "score_below", "value": 101}, rules.normalise_targeting)
    assert "targeting.value" in fields_of({"method": "poverty_line", "value": 3}, rules.normalise_targeting)
    assert "targeting.method" in fields_of({"method": "richest"}, rules.normalise_targeting)
    assert rules.normalise_quotas({"level": "union", "per_area": 300, "total": None}) == {
        "level": "union",
        "per_area": 300,
    }
    assert "quotas.level" in fields_of({"per_area": 3}, rules.normalise_quotas)
    assert "quotas.per_area" in fields_of({"level": "union"}, rules.normalise_quotas)
    assert "quotas.total" in fields_of({"total": 1.5}, rules.normalise_quotas)
    assert rules.normalise_exclusions({"benefits": ["WA", "OAA", "OAA"], "programmes": [3, 1]}) == {
        "benefits": ["OAA", "WA"],
        "programmes": [1, 3],
    }
    assert "exclusions.programmes[0]" in fields_of({"programmes": ["a"]}, rules.normalise_exclusions)


def test_labels_and_bits():
    tree = rules.normalise_criteria(
        {
            "all": [
                {"member": {"age_years": {"gte": 65}}},
                {"member": {"sex": 2, "marital_status": 3}},
                {"household": {"land_cultivable_decimal": {"lt": 50}}},
                {"household": {"female_head": True}, "label": "woman-headed"},
            ]
        }
    )
    labels = rules.criteria_labels(tree)
    assert labels == [
        "a member with age ≥ 65",
        "a member with marital status = widowed and sex = female",
        "cultivable land (decimals) < 50",
        "woman-headed",
    ]
    assert rules.explain_bits(0b1010, labels) == [labels[1], labels[3]]
    assert rules.criteria_labels({"member": {"disability": {"eq": True}}}) == ["a member with a disability"]
    assert rules.local_level({"method": "poorest", "level": "upazila"}, {"level": "union"}) == "upazila"
    assert rules.local_level({"method": "poverty_line"}, {"level": "upazila"}) == "upazila"
    assert rules.local_level({"method": "poverty_line"}, {}) == "union"


def test_canonical_hash_ignores_key_order():
    a = {"targeting": {"method": "poorest", "percent": 20, "level": "union"}, "quotas": {}}
    b = {"quotas": {}, "targeting": {"level": "union", "percent": 20, "method": "poorest"}}
    assert rules.canonical_hash(a) == rules.canonical_hash(b) != rules.canonical_hash({**a, "quotas": {"total": 1}})


def test_compiled_rules_are_parameterised():
    tree = rules.normalise_criteria(
        {
            "all": [
                {"member": {"age_years": {"gte": 65}, "disability": True}},
                {"household": {"receives": "OAA", "area": ["30", "1004"], "household_size": {"lt": 9}}},
                {"not": {"household": {"widowed_head": True}}},
            ]
        }
    )
    stmt = select(Household.id).where(rules.compile_criteria(tree))
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        compiled = stmt.compile(dialect=dialect)
        sql = str(compiled)
        assert "EXISTS (SELECT" in sql and "members.household_pk = households.id" in sql
        # Values travel as bound parameters, never inside the SQL text.
        assert "65" not in sql and "OAA" not in sql and "1004" not in sql
        assert 65 in compiled.params.values() and ";OAA;" in compiled.params.values()


def test_compiled_rules_select_the_right_households(db_session, households):
    from tests.factories import member

    widow = households.create(members=[member(1, sex=2, marital_status=3, age_years=70, occupation=6)])
    disabled_child = households.create(
        members=[
            member(1),
            member(
                2,
                relation_to_head=3,
                age_years=4,
                marital_status=1,
                occupation=0,
                education_level=0,
                disability_seeing=4,
            ),
        ],
        safety_net_benefits="DA;PSS",
    )
    plain = households.create(members=[member(1)], safety_net_benefits="EGPP")
    # Not a state the registry's rules allow, but the two forms of a rule must still agree on it.
    memberless = households.create(members=[member(1)])
    db_session.execute(delete(Member).where(Member.household_pk == memberless.id))

    def matching(raw):
        tree = rules.normalise_criteria(raw)
        pks = {widow.id, disabled_child.id, plain.id}
        found = set(db_session.scalars(select(Household.id).where(rules.compile_criteria(tree), Household.id.in_(pks))))
        # List builds evaluate the same rule as aggregates over households joined to their members.
        everyone = [*pks, memberless.id]
        by_exists = set(
            db_session.scalars(select(Household.id).where(rules.compile_criteria(tree), Household.id.in_(everyone)))
        )
        by_grouping = set(
            db_session.scalars(
                select(Household.id)
                .outerjoin(Member, Member.household_pk == Household.id)
                .where(Household.id.in_(everyone))
                .group_by(Household.id)
                .having(rules.compile_criteria(tree, grouped=True))
            )
        )
        assert by_exists == by_grouping, raw
        return found

    assert matching({"household": {"widowed_head": True}}) == {widow.id}
    assert matching({"household": {"widowed_head": False}}) == {disabled_child.id, plain.id}
    assert matching({"member": {"disability": True, "age_years": {"lt": 5}}}) == {disabled_child.id}
    assert matching({"member": {"disability": False, "relation_to_head": 1}}) == {widow.id, disabled_child.id, plain.id}
    assert matching({"household": {"receives": "DA"}}) == {disabled_child.id}
    assert matching({"household": {"receives": {"not_in": ["DA", "EGPP"]}}}) == {widow.id}
    assert matching({"household": {"household_size": 2}}) == {disabled_child.id}
    assert matching({"household": {"head_sex": 2, "head_age": {"gte": 65}}}) == {widow.id}
    assert matching({"household": {"area": "1004"}}) == {widow.id, disabled_child.id, plain.id}
    assert matching({"household": {"area": {"not_in": ["10"]}}}) == set()
    assert matching({"any": [{"household": {"receives": "EGPP"}}, {"member": {"sex": 2, "age_years": {">": 60}}}]}) == {
        widow.id,
        plain.id,
    }
