"""The synthetic data generator: format, validity against the field specs, consistency, realism, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from models.codes import (
    DISABILITY_DOMAINS,
    DISABILITY_THRESHOLD,
    HOUSEHOLD_FIELD_NAMES,
    HOUSEHOLD_SPECS,
    MEMBER_FIELD_NAMES,
    MEMBER_SPECS,
    FieldSpec,
)
from registry import synth
from web.cli_synth import synth_command

pytestmark = pytest.mark.filterwarnings("error")

N_HOUSEHOLDS = 4_000
N_SURVEY = 4_000
FILES = ("households.csv", "members.csv", "survey.csv", "survey_members.csv")
DECIMAL = re.compile(r"^\d+(\.\d{1,2})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    counts = synth.generate(out, N_HOUSEHOLDS, seed=11, survey_households=N_SURVEY)
    tables = {name: read_csv(out / name) for name in FILES}
    rows = {name.removesuffix(".csv"): rows for name, (_, rows) in tables.items()}
    headers = {name: header for name, (header, _) in tables.items()}
    return {"dir": out, "counts": counts, "headers": headers, **rows}


def column(rows: list[dict[str, str]], name: str, dtype=float) -> np.ndarray:
    return np.array([dtype(r[name]) if r[name] != "" else np.nan for r in rows], dtype=float)


# ---------------------------------------------------------------------------------------------------- format


def test_counts_and_headers(data):
    counts = data["counts"]
    assert counts["households"] == len(data["households"]) == N_HOUSEHOLDS
    assert counts["survey_households"] == len(data["survey"]) == N_SURVEY
    assert counts["members"] == len(data["members"])
    assert counts["survey_members"] == len(data["survey_members"])
    headers = data["headers"]
    assert headers["households.csv"] == list(HOUSEHOLD_FIELD_NAMES)
    assert headers["members.csv"] == list(MEMBER_FIELD_NAMES)
    assert headers["survey.csv"] == list(HOUSEHOLD_FIELD_NAMES) + ["consumption_pc", "weight"]
    assert headers["survey_members.csv"] == list(MEMBER_FIELD_NAMES)


def test_files_are_plain_utf8_with_unix_line_ends(data):
    for name in FILES:
        raw = (data["dir"] / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf"), name
        assert b"\r" not in raw, name
        raw.decode("utf-8")


def _check_value(spec: FieldSpec, value: str) -> str | None:
    """Why ``value`` breaks ``spec`` (the import format's rules), or None."""
    if value == "":
        return "required" if spec.required else None
    kind = spec.kind
    if kind in ("code", "int"):
        if not re.fullmatch(r"\d+", value):
            return "not an integer"
        number = int(value)
        if kind == "code":
            return None if number in spec.codes else "not in code list"
    elif kind == "decimal":
        if not DECIMAL.fullmatch(value):
            return "not a decimal with at most 2 decimals"
        number = float(value)
    elif kind == "bool":
        return None if value in ("0", "1") else "not 0/1"
    elif kind == "date":
        if not DATE.fullmatch(value):
            return "not YYYY-MM-DD"
        dt.date.fromisoformat(value)
        return None
    elif kind == "pattern":
        return None if spec.pattern.fullmatch(value) else "does not match pattern"
    elif kind == "codeset":
        parts = value.split(";")
        if len(set(parts)) != len(parts) or not set(parts) <= set(spec.codes):
            return "bad code set"
        return None
    elif kind == "text":
        if spec.max_length and len(value) > spec.max_length:
            return "too long"
        return None if unicodedata.is_normalized("NFC", value) else "not NFC"
    else:
        return f"unknown kind {kind}"
    if spec.min is not None and number < spec.min:
        return "below minimum"
    if spec.max is not None and number > spec.max:
        return "above maximum"
    return None


@pytest.mark.parametrize(
    ("table", "specs"),
    [("households", HOUSEHOLD_SPECS), ("members", MEMBER_SPECS), ("survey", HOUSEHOLD_SPECS),
     ("survey_members", MEMBER_SPECS)],
)
def test_every_value_is_valid_against_the_field_specs(data, table, specs):
    rows = data[table]
    problems = []
    for name, spec in specs.items():
        for value in {r[name] for r in rows}:  # distinct values suffice
            why = _check_value(spec, value)
            if why:
                problems.append((name, value, why))
    assert problems == []


def test_union_codes_are_real_and_area_types_match(data):
    with open(synth.GEO_DIR / "unions.csv", encoding="utf-8", newline="") as fh:
        unit_type = {r["code"]: r["unit_type"] for r in csv.DictReader(fh)}
    unit_area = {code: {"union": "1", "paurashava": "2", "ward": "3"}[t] for code, t in unit_type.items()}
    for rows in (data["households"], data["survey"]):
        for r in rows:
            assert unit_area[r["union_code"]] == r["area_type"]
            assert r["household_id"].startswith(r["union_code"] + "-")
            assert r["consent_date"] == (r["interview_date"] if r["consent_given"] == "1" else "")


def test_household_ids_unique_and_survey_ids_distinct(data):
    registry_ids = [r["household_id"] for r in data["households"]]
    survey_ids = [r["household_id"] for r in data["survey"]]
    assert len(set(registry_ids)) == len(registry_ids)
    assert len(set(survey_ids)) == len(survey_ids)
    assert not set(registry_ids) & set(survey_ids)


def test_survey_columns(data):
    consumption = column(data["survey"], "consumption_pc")
    weight = column(data["survey"], "weight")
    assert (consumption > 0).all() and (weight > 0).all()
    assert all(DECIMAL.fullmatch(r["consumption_pc"]) and DECIMAL.fullmatch(r["weight"]) for r in data["survey"])
    # Weights undo the urban over-sampling and add up to the national household count.
    urban = np.array([r["area_type"] != "1" for r in data["survey"]])
    assert weight[urban].mean() < weight[~urban].mean()
    assert weight.sum() == pytest.approx(synth.NATIONAL_HOUSEHOLDS, rel=0.05)


# ---------------------------------------------------------------------------------------------------- members


def households_with_members(hh_rows, member_rows):
    members: dict[str, list[dict[str, str]]] = {r["household_id"]: [] for r in hh_rows}
    for r in member_rows:
        members[r["household_id"]].append(r)  # KeyError = a member without a household
    return members


@pytest.mark.parametrize(("hh_table", "member_table"), [("households", "members"), ("survey", "survey_members")])
def test_rosters(data, hh_table, member_table):
    interview = {r["household_id"]: dt.date.fromisoformat(r["interview_date"]) for r in data[hh_table]}
    spouses = opposite = 0
    for hid, members in households_with_members(data[hh_table], data[member_table]).items():
        assert [int(m["line_no"]) for m in members] == list(range(1, len(members) + 1)), hid
        heads = [m for m in members if m["relation_to_head"] == "1"]
        assert len(heads) == 1 and heads[0]["line_no"] == "1", hid
        head = heads[0]
        head_age = int(head["age_years"])
        for m in members:
            age = int(m["age_years"])
            if m["relation_to_head"] == "3":
                assert age <= head_age - 15, hid
            if m["relation_to_head"] == "6":
                assert age >= head_age + 15, hid
            if m["relation_to_head"] == "2":
                spouses += 1
                opposite += m["sex"] != head["sex"]
            if m["date_of_birth"]:
                dob, when = dt.date.fromisoformat(m["date_of_birth"]), interview[hid]
                assert when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day)) == age, hid
    assert opposite / spouses > 0.95


@pytest.mark.parametrize("member_table", ["members", "survey_members"])
def test_member_fields_consistent_with_age_and_sex(data, member_table):
    rows = data[member_table]
    for m in rows:
        age, sex = int(m["age_years"]), m["sex"]
        if m["pregnant_or_lactating"] == "1":
            assert sex == "2" and 15 <= age <= 49
        if age < 15:
            assert m["marital_status"] == "1"
        if age < 10:
            assert m["occupation"] == "0"
        if m["currently_enrolled"] == "1":
            assert 5 <= age <= 24
        education = int(m["education_level"])
        assert education <= max(age - 6, 0) or (education >= 11 and age >= 17)
        assert education < 13 or age >= 22
        if m["nid_number"]:
            assert age >= 18
        if age < 5:
            assert all(m[f"disability_{d}"] == "" for d in DISABILITY_DOMAINS)
        else:
            assert all(m[f"disability_{d}"] != "" for d in DISABILITY_DOMAINS)
    ages = column(rows, "age_years")
    adults = ages >= 18
    with_nid = np.array([m["nid_number"] != "" for m in rows])
    assert 0.85 < with_nid[adults].mean() < 0.95
    assert 0.6 < np.mean([m["date_of_birth"] != "" for m in rows]) < 0.8
    children = np.array([m["birth_reg_number"] != "" for m in rows])[ages < 18]
    assert children.mean() > 0.7


def test_nids_unique_across_registry_and_survey(data):
    nids = [m["nid_number"] for m in data["members"] + data["survey_members"] if m["nid_number"]]
    assert len(set(nids)) == len(nids)
    lengths = {n: sum(len(x) == n for x in nids) / len(nids) for n in (10, 13, 17)}
    assert lengths[10] > 0.4 and lengths[17] > 0.2 and 0 < lengths[13] < 0.15
    brns = [m["birth_reg_number"] for m in data["members"] + data["survey_members"] if m["birth_reg_number"]]
    assert len(set(brns)) == len(brns)


def test_names_are_bangla_and_english_and_linked_within_households(data):
    bangla = re.compile(r"^[\u0980-\u09ff .'\u200c\u200d]+$")
    for m in data["members"]:
        assert bangla.fullmatch(m["name_bn"]), m["name_bn"]
        assert unicodedata.is_normalized("NFC", m["name_bn"])
        assert m["name_en"] == "" or re.fullmatch(r"[A-Za-z .']+", m["name_en"]), m["name_en"]
    checked = 0
    for members in households_with_members(data["households"], data["members"]).values():
        head = members[0]
        head_names = {head["name_bn"], head["name_en"]} - {""}
        for m in members:
            if m["relation_to_head"] == "3":
                parent = m["father_name"] if head["sex"] == "1" else m["mother_name"]
                if parent and (head["name_en"] or parent == head["name_bn"] or not parent.isascii()):
                    assert parent in head_names
                    checked += 1
            if m["relation_to_head"] == "2":
                assert m["spouse_name"] in head_names or (head["name_en"] == "" and m["spouse_name"].isascii())
    assert checked > 1000


def test_disability_and_benefits(data):
    members = households_with_members(data["households"], data["members"])
    severe = np.mean(
        [any(m[f"disability_{d}"] in ("3", "4") for m in ms for d in DISABILITY_DOMAINS) for ms in members.values()]
    )
    assert 0.04 <= severe <= 0.10
    levels = [int(m[f"disability_{d}"]) for m in data["members"] for d in DISABILITY_DOMAINS if m[f"disability_{d}"]]
    assert np.mean(np.array(levels) == 1) > 0.9
    assert np.mean(np.array(levels) >= DISABILITY_THRESHOLD) < 0.02
    for r in data["households"]:
        ms = members[r["household_id"]]
        benefits = set(r["safety_net_benefits"].split(";")) - {""}
        if "OAA" in benefits:
            assert any(int(m["age_years"]) >= 62 for m in ms)
        if "WA" in benefits:
            assert any(m["sex"] == "2" and m["marital_status"] in ("3", "4", "5") for m in ms)
        if "DA" in benefits:
            assert any(m[f"disability_{d}"] in ("3", "4") for m in ms for d in DISABILITY_DOMAINS)


# ---------------------------------------------------------------------------------------------------- realism


def test_plausible_population(data):
    households, members = data["households"], data["members"]
    sizes = np.bincount(np.unique([m["household_id"] for m in members], return_inverse=True)[1])
    assert 3.8 <= sizes.mean() <= 4.6
    assert sizes.min() >= 1 and sizes.max() <= synth.MAX_MEMBERS
    urban = np.mean([r["area_type"] != "1" for r in households])
    assert 0.20 <= urban <= 0.35
    divisions = {}
    for r in households:
        divisions[r["union_code"][:2]] = divisions.get(r["union_code"][:2], 0) + 1
    assert max(divisions, key=divisions.get) == "30"  # Dhaka
    assert set(divisions) == set(synth.DIVISION_CODES)
    female_heads = np.mean([m["sex"] == "2" for m in members if m["relation_to_head"] == "1"])
    assert 0.08 < female_heads < 0.2
    muslim = np.mean([m["religion"] == "1" for m in members])
    assert 0.85 < muslim < 0.95


def _survey_arrays(data):
    survey, survey_members = data["survey"], data["survey_members"]
    numeric = [n for n in HOUSEHOLD_FIELD_NAMES if HOUSEHOLD_SPECS[n].kind in ("code", "int", "decimal", "bool")]
    households = {n: column(survey, n) for n in numeric}
    households["union_code"] = np.array([r["union_code"] for r in survey])
    index = {r["household_id"]: i for i, r in enumerate(survey)}
    members = {n: column(survey_members, n) for n in ("age_years", "relation_to_head", "sex", "education_level")}
    members["household_index"] = np.array([index[m["household_id"]] for m in survey_members])
    return households, members


def test_consumption_follows_the_documented_model(data):
    households, members = _survey_arrays(data)
    features = synth.true_features(households, members)
    y = np.log(column(data["survey"], "consumption_pc"))
    residual = y - synth.true_log_consumption_mean(features)
    assert abs(residual.mean()) < 0.03
    assert residual.std() == pytest.approx(synth.NOISE_SD, rel=0.08)
    # OLS on the true characteristics: R^2 like a real PMT's, coefficients close to the truth.
    x = np.column_stack([np.ones(len(y))] + [features[k] for k in synth.TRUE_COEFFICIENTS])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    r2 = 1 - np.var(y - x @ beta) / np.var(y)
    assert 0.40 <= r2 <= 0.60
    estimated = dict(zip(synth.TRUE_COEFFICIENTS, beta[1:], strict=True))
    for name in ("log_household_size", "dependents_share", "head_edu_ssc_hsc", "remittance_received"):
        assert estimated[name] == pytest.approx(synth.TRUE_COEFFICIENTS[name], abs=0.06), name


def test_poverty_profile(data):
    survey = data["survey"]
    consumption = column(survey, "consumption_pc")
    size = {}
    for m in data["survey_members"]:
        size[m["household_id"]] = size.get(m["household_id"], 0) + 1
    people = column(survey, "weight") * np.array([size[r["household_id"]] for r in survey])
    poor = consumption < synth.POVERTY_LINE
    headcount = people[poor].sum() / people.sum()
    assert 0.17 <= headcount <= 0.29
    order = np.argsort(consumption)
    median = consumption[order][np.searchsorted(np.cumsum(people[order]) / people.sum(), 0.5)]
    assert 3_000 <= median <= 4_800
    division = np.array([r["union_code"][:2] for r in survey])
    rate = {d: poor[division == d].mean() for d in synth.DIVISION_CODES}
    # Rangpur, Mymensingh and Barisal poorer than Dhaka and Chittagong.
    assert min(rate["55"], rate["45"], rate["10"]) > max(rate["30"], rate["20"])
    # Housing tracks welfare: kutcha/jhupri far more common among the poorest fifth than the richest.
    kutcha = np.array([r["dwelling_structure"] in ("3", "4") for r in survey])
    fifth = len(order) // 5
    assert kutcha[order[:fifth]].mean() > kutcha[order[-fifth:]].mean() + 0.3


# ---------------------------------------------------------------------------------------------------- determinism


def _bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    synth.generate(tmp_path / "a", 600, seed=5, survey_households=200)
    synth.generate(tmp_path / "b", 600, seed=5, survey_households=200)
    synth.generate(tmp_path / "c", 600, seed=6, survey_households=200)
    a, b, c = _bytes(tmp_path / "a"), _bytes(tmp_path / "b"), _bytes(tmp_path / "c")
    assert a == b
    assert set(a) == set(FILES)
    assert all(a[name] != c[name] for name in FILES)


def test_output_does_not_depend_on_chunk_size(tmp_path):
    n = synth.BLOCK_SIZE + 300  # two blocks, the second one partial
    calls = {}
    for chunk in (1, 10**6):  # one block per write, everything in one write
        seen: list[int] = []
        synth.generate(tmp_path / str(chunk), n, seed=3, survey_households=250, chunk_size=chunk, progress=seen.append)
        calls[chunk] = seen
    assert _bytes(tmp_path / "1") == _bytes(tmp_path / str(10**6))
    assert calls[1] == [synth.BLOCK_SIZE, n, n + 250]
    assert calls[10**6] == [n, n + 250]


def test_without_survey_and_empty(tmp_path):
    counts = synth.generate(tmp_path, 0, seed=1)
    assert counts == {"households": 0, "members": 0, "survey_households": 0, "survey_members": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["households.csv", "members.csv"]
    assert (tmp_path / "households.csv").read_text(encoding="utf-8") == ",".join(HOUSEHOLD_FIELD_NAMES) + "\n"


def test_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        synth.generate(tmp_path, -1, seed=1)
    with pytest.raises(ValueError):
        synth.generate(tmp_path, 10, seed=-1)


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_files_and_reports_counts(tmp_path):
    result = CliRunner().invoke(
        synth_command, ["--households", "300", "--seed", "4", "--out", str(tmp_path), "--survey-households", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "households: 300" in result.stdout
    assert "survey households: 50" in result.stdout
    assert "done in" in result.stdout
    assert (tmp_path / "survey_members.csv").exists()
    result = CliRunner().invoke(synth_command, ["--households", "-3", "--out", str(tmp_path)])
    assert result.exit_code != 0
