"""Every integrity rule of the data dictionary refuses bad input, naming the field and rule."""

import datetime as dt
import random
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from models.codes import HOUSEHOLD_FIELD_NAMES, MEMBER_FIELD_NAMES
from registry.validation import SMALL_FRAME_ROWS, validate_record, validate_records
from tests.factories import default_members, household_record, member

UNIONS = {"10040915": 1, "10040999": 2}


# One household as the frames of the import's path (``validate_records``), and a typed row read
# back as plain values: the reference the change-request path (``validate_record``) is held to.
def records_from_dicts(household: Mapping, members: list[Mapping]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frames of one household (and its members) from plain dicts, as an import chunk holds them."""
    hh = pd.DataFrame([{k: household.get(k) for k in HOUSEHOLD_FIELD_NAMES}], dtype=object)
    mem = pd.DataFrame(
        [{**{k: m.get(k) for k in MEMBER_FIELD_NAMES}, "household_id": household.get("household_id")} for m in members],
        columns=list(MEMBER_FIELD_NAMES),
        dtype=object,
    )
    return hh, mem


def typed_row(frame: pd.DataFrame, index) -> dict:
    """A typed record of a frame as plain Python values (None for missing)."""
    out = {}
    for key, value in frame.loc[index].items():
        if key == "_row":
            continue
        if value is pd.NA or value is None or (isinstance(value, float) and np.isnan(value)):
            out[key] = None
        elif isinstance(value, np.bool_):
            out[key] = bool(value)
        elif isinstance(value, np.integer):
            out[key] = int(value)
        elif isinstance(value, np.floating):
            out[key] = float(value)
        else:
            out[key] = value
    return out


def issues_for(record, members):
    hh, mem = records_from_dicts(record, members)
    result = validate_records(hh, mem, union_area_types=UNIONS)
    return {(i.field, i.rule) for i in result.issues}, result


def test_valid_household_has_no_issues():
    issues, result = issues_for(household_record(), default_members())
    assert issues == set()
    assert result.households.loc[0, "rooms"] == 2
    assert result.members["age_years"].tolist() == [40, 35, 8]


@pytest.mark.parametrize(
    "field,value,rule_part",
    [
        ("dwelling_structure", 7, "one of 1, 2, 3, 4"),
        ("rooms", 25, "<= 20"),
        ("rooms", "two", "integer"),
        ("rooms", "inf", "integer"),
        ("rooms", "2.5", "integer"),
        ("household_id", "10040915-" + "1" * 16, "at most 24 characters"),
        ("land_cultivable_decimal", -1, ">= 0"),
        ("toilet_shared", "maybe", "0/1"),
        ("interview_date", "15/01/2026", "YYYY-MM-DD"),
        ("union_code", "10049999", "unknown union code"),
        ("area_type", 3, "must match the union's area type"),
        ("safety_net_benefits", "OAA;XYZ", "codes from"),
        ("electricity", None, "required"),
    ],
)
def test_household_field_rules(field, value, rule_part):
    record = household_record()
    record[field] = value
    issues, _ = issues_for(record, default_members())
    assert any(f == field and rule_part in r for f, r in issues), issues


@pytest.mark.parametrize(
    "overrides,field,rule_part",
    [
        ({"sex": 4}, "sex", "one of"),
        ({"age_years": 130}, "age_years", "<= 120"),
        ({"nid_number": "12345"}, "nid_number", "10, 13 or 17 digits"),
        ({"birth_reg_number": "1234"}, "birth_reg_number", "17 digits"),
        ({"mobile_number": "02123456789"}, "mobile_number", "01XXXXXXXXX"),
        ({"name_bn": None, "name_en": None}, "name_bn", "at least one of"),
        ({"age_years": None, "date_of_birth": None}, "age_years", "age_years or date_of_birth"),
        ({"pregnant_or_lactating": True}, "pregnant_or_lactating", "women aged 12-55"),
        ({"date_of_birth": "2027-01-01", "age_years": None}, "date_of_birth", "on or before the interview date"),
    ],
)
def test_member_field_rules(overrides, field, rule_part):
    members = default_members()
    members[0].update(overrides)
    issues, _ = issues_for(household_record(), members)
    assert any(f == field and rule_part in r for f, r in issues), issues


def test_exactly_one_head_and_unique_line_numbers():
    members = default_members()
    members[1]["relation_to_head"] = 1
    members[2]["line_no"] = 2
    issues, _ = issues_for(household_record(), members)
    assert (
        "relation_to_head",
        "a household needs exactly one member with relation_to_head=1 (head); found this many",
    ) in issues
    assert ("line_no", "line_no must be unique within the household") in issues


def test_age_is_derived_from_date_of_birth_at_interview():
    members = default_members()
    members[0].update(age_years=None, date_of_birth="1980-06-30")
    _, result = issues_for(household_record(interview_date="2026-01-15"), members)
    assert result.members.loc[0, "age_years"] == 45


def test_duplicate_nid_within_file_and_against_registry():
    members = default_members()
    members[1]["nid_number"] = members[0]["nid_number"]
    hh, mem = records_from_dicts(household_record(), members)
    result = validate_records(hh, mem, union_area_types=UNIONS, registered_nids=lambda nids: {members[0]["nid_number"]})
    rules = [(i.field, i.row, i.rule) for i in result.issues]
    assert ("nid_number", 2, "national ID appears more than once in the file") in rules
    assert ("nid_number", 1, "national ID already held by a current member of another household") in rules


def test_issue_names_file_row_household_value():
    members = default_members()
    members[2]["sex"] = 9
    record = household_record()
    _, result = issues_for(record, members)
    (issue,) = result.issues
    assert (issue.file, issue.row, issue.household_id, issue.field, issue.value) == (
        "members",
        3,
        record["household_id"],
        "sex",
        "9",
    )


def test_member_of_unknown_household():
    record = household_record()
    hh, mem = records_from_dicts(record, [member(1)])
    mem.loc[0, "household_id"] = "10040915-999999"
    result = validate_records(hh, mem, union_area_types=UNIONS)
    assert any(i.rule == "no household with this household_id in the file" for i in result.issues)


def test_string_input_like_a_csv_is_accepted():
    record = {k: ("" if v is None else str(v)) for k, v in household_record().items()}
    members = [{k: ("" if v is None else str(v)) for k, v in m.items()} for m in default_members()]
    hh = pd.DataFrame([record], dtype=str)
    mem = pd.DataFrame(members, dtype=str)
    mem["household_id"] = record["household_id"]
    result = validate_records(hh, mem, union_area_types=UNIONS)
    assert result.issues == []
    assert result.households.loc[0, "toilet_shared"] is False or result.households.loc[0, "toilet_shared"] == False  # noqa: E712


def test_household_id_limit_matches_the_column():
    from models import Household
    from registry.validation import HOUSEHOLD_ID_MAX_LENGTH

    assert Household.__table__.c.household_id.type.length == HOUSEHOLD_ID_MAX_LENGTH
    ok = household_record(household_id="10040915-" + "1" * 15)
    issues, _ = issues_for(ok, default_members())
    assert issues == set()


def test_many_rows_give_the_same_issues_as_one_row_at_a_time():
    """Whole-column checks over a chunk agree with checking each household alone."""
    spoiled = [
        ({"rooms": 30}, {}),
        ({"toilet_shared": "maybe", "village": "e\u0301" * 3}, {"sex": 9}),
        ({}, {"age_years": None, "date_of_birth": "2030-01-01"}),
        ({"safety_net_benefits": " oaa ;wa"}, {"pregnant_or_lactating": True}),
        ({}, {}),
    ]
    records = []
    for household_changes, member_changes in spoiled:
        record = household_record(**household_changes)
        members = default_members()
        members[0].update(member_changes)
        records.append((record, members))
    one_by_one = []
    for record, members in records:
        _, result = issues_for(record, members)
        one_by_one += [(i.household_id, i.field, i.value, i.rule) for i in result.issues]
    frames = [records_from_dicts(r, m) for r, m in records]
    hh = pd.concat([f[0] for f in frames], ignore_index=True)
    mem = pd.concat([f[1] for f in frames], ignore_index=True)
    together = validate_records(hh, mem, union_area_types=UNIONS)
    assert sorted(one_by_one) == sorted((i.household_id, i.field, i.value, i.rule) for i in together.issues)
    assert len(one_by_one) == 5
    assert together.households["safety_net_benefits"].tolist()[3] == "OAA;WA"
    assert together.households["village"].tolist()[1] == "\u00e9" * 3


#: Cells that break (or nearly break) some rule, as a form, a JSON body or a CSV would give them.
ODD_CELLS = [
    *("", " ", None, float("nan"), pd.NA, "abc", "1.5", "2.0", " 3 ", "-1", "-0", "+5", "1e3", "inf", "nan"),
    *("99999999999999999999", "9007199254740993", "\u09e7\u09e8", "0x10", "1_000", "12.345", "100001", "121"),
    *(True, False, 0, 1, 2, 7, 2.5, 12, 55),
    *("2026-13-01", "2026-1-5", "2026-02-29", "2024-02-29", "15/01/2026", "2300-01-01", "2030-01-01"),
    *("1900-01-01", "1980-06-30", dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 5)),
    *("yes", "N", "maybe", "TRUE", " true ", "OAA;xyz", " oaa ;wa", ";", "e\u0301" * 3, "x" * 130, "x" * 301),
    *("12345", "01712345678", "0171234567", "10040915", "10040999", "10049999"),
]


def _spoiled_households(seed: int, count: int) -> list[tuple[dict, list[dict]]]:
    """Valid households with random odd cells. Household ids and NIDs stay distinct, so that
    each household's issues do not depend on the others."""
    rng = random.Random(seed)
    household_fields = [f for f in HOUSEHOLD_FIELD_NAMES if f != "household_id"]
    member_fields = [f for f in MEMBER_FIELD_NAMES if f not in ("household_id", "nid_number")]
    out = []
    for _ in range(count):
        record = household_record()
        for field in rng.sample(household_fields, rng.randint(0, 4)):
            record[field] = rng.choice(ODD_CELLS)
        members = default_members()
        for person in members:
            for field in rng.sample(member_fields, rng.randint(0, 3)):
                person[field] = rng.choice(ODD_CELLS)
        out.append((record, members))
    return out


def _as_csv_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(lambda v: "" if v is None or v is pd.NA or v != v else str(v)).astype(str)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("as_text", [False, True])
def test_random_odd_cells_give_the_same_issues_and_values_alone_and_in_bulk(seed, as_text):
    """A household validated alone (a change request: few rows) gets exactly the issues and
    typed values it gets inside a bucket of many (an import: whole-column pandas work)."""
    records = _spoiled_households(seed, 70)
    frames = [records_from_dicts(r, m) for r, m in records]
    if as_text:
        frames = [(_as_csv_text(h), _as_csv_text(m)) for h, m in frames]
    hh = pd.concat([f[0] for f in frames], ignore_index=True)
    mem = pd.concat([f[1] for f in frames], ignore_index=True)
    assert len(hh) > SMALL_FRAME_ROWS and len(mem) > SMALL_FRAME_ROWS  # both frames take the bulk path
    together = validate_records(hh, mem, union_area_types=UNIONS)

    alone, member_offset = [], 0
    for position, (h, m) in enumerate(frames):
        result = validate_records(h, m, union_area_types=UNIONS)
        for issue in result.issues:
            offset = position if issue.file == "households" else member_offset
            alone.append((issue.file, issue.row + offset, issue.household_id, issue.field, issue.value, issue.rule))
        assert typed_row(result.households, 0) == typed_row(together.households, position)
        for i in range(len(m)):
            assert typed_row(result.members, i) == typed_row(together.members, member_offset + i)
        # A change request's path (dicts in and out, no frame) gives the same values and issues.
        typed_h, typed_members, issues = validate_record(
            h.iloc[0].to_dict(), m.to_dict("records"), union_area_types=UNIONS, households_file="households"
        )
        assert typed_h == typed_row(result.households, 0)
        assert typed_members == [typed_row(result.members, i) for i in range(len(m))]
        assert [(i.file, i.row, i.household_id, i.field, i.value, i.rule) for i in issues] == [
            (i.file, i.row, i.household_id, i.field, i.value, i.rule) for i in result.issues
        ]
        member_offset += len(m)
    bulk = [(i.file, i.row, i.household_id, i.field, i.value, i.rule) for i in together.issues]
    assert sorted(alone) == sorted(bulk)
    assert len(bulk) > 30
    assert together.households.dtypes.to_dict() == result.households.dtypes.to_dict()
    assert together.members.dtypes.to_dict() == result.members.dtypes.to_dict()


def test_a_few_dates_are_read_exactly_as_pandas_reads_many():
    """One household's dates take a numpy path; it must accept and refuse what pandas does."""
    from registry.validation import _pandas_dates, _parse_dates

    rng = random.Random(5)
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y in (1900, 1999, 2000, 2023, 2024) for m in range(14) for d in range(33)]
    texts += [f"{rng.randint(1000, 2999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}" for _ in range(500)]
    texts += [
        "2020-1-5",
        "2020-01-5",
        "0999-01-01",
        "3000-01-01",
        "2020-01-05T00",
        "20200105",
        "2020/01/05",
        "2020-01-05 ",
        "٢٠٢٠-০১-০৫",
        "২০২০-০১-০৫",
        "2020-01-32",
        "x",
        "",
        "1e3",
        "-2020-01-01",
    ]
    rng.shuffle(texts)
    assert any(np.isnat(d) for d in _pandas_dates(texts)) and not all(np.isnat(d) for d in _pandas_dates(texts))
    for start in range(0, len(texts), SMALL_FRAME_ROWS):
        chunk = texts[start : start + SMALL_FRAME_ROWS]
        got, want = _parse_dates(chunk), _pandas_dates(chunk)
        assert [str(d) for d in got] == [str(d) for d in want], chunk
