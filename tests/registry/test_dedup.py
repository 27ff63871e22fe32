"""Duplicate detection: Bangla and English normalisation, blocking keys, scores, the key index,
flags on change requests, the registry-wide scan and its command."""

from __future__ import annotations

import csv
import unicodedata

import pytest
from sqlalchemy import select, text

from models import MemberMatchKey
from registry import change_requests as crs
from registry import dedup, jobs
from tests.factories import member

BARISAL = "10"


def person(**overrides):
    data = {
        "line_no": 1,
        "name_bn": "মোঃ রহিম উদ্দিন",
        "name_en": "Md. Rahim Uddin",
        "father_name": "Karim Uddin",
        "mother_name": "Fatema Begum",
        "date_of_birth": "1985-03-01",
        "age_years": 40,
        "sex": 1,
    }
    data.update(overrides)
    return data


# --- normalisation and keys ----------------------------------------------------------------


def test_bangla_spelling_variants_normalise_alike():
    assert dedup.normalise_name("মোঃ রহিম উদ্দিন") == dedup.normalise_name("মোহাম্মদ রহীম উদ্দীন") == "রহিম উদ্দিন"
    # য় typed as one code point or as য + nukta, and the o-kar typed in two parts, are the same name.
    precomposed, decomposed = "\u09df", "\u09af\u09bc"
    assert dedup.normalise_name(f"না{precomposed}ন") == dedup.normalise_name(f"না{decomposed}ন")
    assert dedup.normalise_name("ম\u09c7\u09beমিন") == dedup.normalise_name(unicodedata.normalize("NFC", "মোমিন"))
    assert dedup.normalise_name("শাহানা") == dedup.normalise_name("সাহানা")  # sibilants fold
    assert dedup.normalise_name("মোসাম্মৎ রোকেয়া বেগম") == dedup.normalise_name("রোকেয়া বেগম")


def test_english_spelling_variants_normalise_alike():
    variants = ["Md. Rahim Uddin", "Mohammad Rahim Uddeen", "MUHAMMAD RAHIM UDDIN", "Mohammed Rahim Ud-din"]
    assert {dedup.normalise_name(v) for v in variants} == {"rahim uddin"}
    assert dedup.normalise_name("Mst. Rahima Bagum") == dedup.normalise_name("Mosammat Rahima Begum")


def test_given_name_skips_honorifics_and_particles():
    assert dedup.given_name("Md. Abdul Karim") == "karim"
    assert dedup.given_name("মোঃ আব্দুল করিম") == dedup.given_name("করিম")
    assert dedup.given_name("Md.") == "md"  # nothing but a particle: keep what there is
    assert dedup.given_name(None) is None


def test_skeleton_keys_absorb_vowel_spellings():
    assert dedup.skeleton("rahim") == dedup.skeleton("raheem") == dedup.skeleton("rohim")
    assert dedup.skeleton("karim") == dedup.skeleton("kareem") != dedup.skeleton("rahim")
    assert dedup.skeleton("রহিম") == dedup.skeleton("রহীম") == dedup.skeleton("রাহিম")


def test_person_keys_combine_given_name_and_parents():
    keys = dedup.person_keys(person())
    assert len(keys) == 4  # (Bangla, English given name) x (father, mother)
    variant = person(name_bn="মোহাম্মদ রহীম উদ্দীন", name_en="Rahim Uddeen", father_name="Korim Uddin")
    assert dedup.person_keys(variant) & keys
    assert dedup.person_keys(person(father_name=None, mother_name=None)) == {
        f"{dedup.skeleton('রহিম')}|-",
        f"{dedup.skeleton('rahim')}|-",
    }


# --- scores ------------------------------------------------------------------------------------


def test_same_person_spelled_differently_is_a_likely_duplicate():
    variant = person(
        name_bn="মোহাম্মদ রহীম উদ্দীন",
        name_en="Mohammad Raheem Uddin",
        father_name="Korim Uddin",
        date_of_birth="1985-09-20",
    )
    match = dedup.score_pair(person(), variant)
    assert match.is_likely_duplicate and match.score >= 85, match


def test_siblings_twins_and_strangers():
    sister = person(name_bn="রহিমা খাতুন", name_en="Rahima Khatun", sex=2, date_of_birth="1987-01-01")
    assert not dedup.score_pair(person(), sister).is_likely_duplicate
    stranger = person(father_name="Abul Kalam", mother_name="Jahanara", date_of_birth="1985-03-01")
    assert not dedup.score_pair(person(), stranger).is_likely_duplicate
    much_older = person(date_of_birth="1960-03-01")
    assert not dedup.score_pair(person(), much_older).is_likely_duplicate


def test_age_only_persons_compare_by_derived_birth_year():
    a = person(date_of_birth=None, age_years=40)
    b = person(date_of_birth=None, age_years=41, name_en="Rahim Uddeen")
    match = dedup.score_pair(a, b, "2026-01-15", "2026-01-15")
    assert match.birth == 70.0 and match.is_likely_duplicate


# --- the index and candidate search -----------------------------------------------------------


def test_candidates_come_from_the_key_index_not_a_scan(db_session, households):
    household = households.create()
    probe = person(name_en="Rahim Uddeen", name_bn="রহীম উদ্দিন", date_of_birth=None, age_years=40)
    # Not indexed yet: the search looks only at keys, so nothing is found.
    assert dedup.find_duplicates([probe], interview_date="2026-01-15") == []
    assert dedup.index_households([household]) > 0
    flags = dedup.find_duplicates([probe], interview_date="2026-01-15")
    assert [(f["candidate"]["household_id"], f["candidate"]["line_no"]) for f in flags] == [(household.household_id, 1)]
    assert flags[0]["score"] >= dedup.FLAG_THRESHOLD and flags[0]["line_no"] == 1
    assert dedup.find_duplicates([probe], interview_date="2026-01-15", exclude_household_pks=[household.id]) == []


def test_candidate_lookup_can_use_the_key_index(db_session, postgres_only, households):
    household = households.create()
    dedup.index_households([household])
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        db_session.scalars(
            text(
                "EXPLAIN SELECT member_id FROM member_match_keys WHERE name_key IN ('rm|fkrm') "
                "AND birth_year BETWEEN 1984 AND 1986"
            )
        )
    )
    assert "ix_member_match_keys_key_year" in plan


def test_rebuild_keys_for_an_area(db_session, households):
    barisal = households.create()
    dhaka = households.create(union_code=households.dhaka_union())
    written = dedup.rebuild_keys(BARISAL)
    assert written == dedup.count_keys(BARISAL) > 0
    assert dedup.count_keys("30") == 0
    household_pks = set(db_session.scalars(select(MemberMatchKey.household_pk)))
    assert barisal.id in household_pks and dhaka.id not in household_pks


def test_dedup_index_job(db_session, households):
    households.create()
    job = jobs.enqueue("dedup.index", {"area": BARISAL}, actor=None)
    db_session.commit()
    jobs.run_pending()
    db_session.refresh(job)
    assert job.status == "succeeded" and job.result["keys"] > 0


# --- flags on change requests ------------------------------------------------------------------


def test_adding_a_person_registered_elsewhere_flags_a_likely_duplicate(db_session, households, make_user):
    enumerator = make_user("enumerator", areas=[BARISAL])
    first, second = make_user("supervisor", areas=[BARISAL]), make_user("supervisor", areas=[BARISAL])
    elsewhere = households.create()
    dedup.index_households([elsewhere])
    household = households.create(
        members=[member(1, name_en="Kamal Hossain", name_bn="কামাল হোসেন", father_name="Jalal", mother_name="Amena")]
    )
    same_person = member(
        2,
        name_en="Mohammad Raheem Uddin",
        name_bn="মোহাম্মদ রহীম উদ্দীন",
        relation_to_head=7,
        age_years=40,
        nid_number=None,
    )
    cr = crs.submit_change(
        enumerator,
        "add_member",
        household_id=household.household_id,
        base_version=1,
        payload={"member": same_person},
        reason="brother-in-law moved in",
    )
    assert len(cr.duplicate_flags) == 1
    flag = cr.duplicate_flags[0]
    assert flag["candidate"]["household_id"] == elsewhere.household_id and flag["line_no"] == 2
    assert flag["score"] >= dedup.FLAG_THRESHOLD
    # A likely duplicate is high-risk: two different supervisors must approve.
    assert cr.risk_reasons == ["likely duplicate person"] and cr.approvals_required == 2
    assert crs.approve_change(cr.id, first).status == "pending"
    assert crs.approve_change(cr.id, second).status == "approved"
    # The approved household's members are indexed at once, so the next search finds them too.
    flags = dedup.find_duplicates([person()], exclude_household_pks=[elsewhere.id])
    assert household.household_id in {f["candidate"]["household_id"] for f in flags}


# --- the registry-wide scan -----------------------------------------------------------------------


def test_scan_lists_each_pair_once_with_scores(db_session, households):
    a = households.create()
    b = households.create(members=[member(1, name_en="Mohammed Rahim Uddeen", name_bn="রহীম উদ্দীন", nid_number=None)])
    households.create(members=[member(1, name_en="Jamal", name_bn="জামাল", father_name="Kashem", mother_name="Rina")])
    dedup.rebuild_keys(BARISAL)
    rows = list(dedup.scan_duplicates(BARISAL))
    pairs = {frozenset((r["a_household_id"], r["b_household_id"])) for r in rows}
    assert frozenset((a.household_id, b.household_id)) in pairs
    assert len(rows) == len(pairs)  # each pair once, although the persons share several keys
    assert all(r["score"] >= dedup.FLAG_THRESHOLD for r in rows)


def test_scan_command_writes_csv(db_session, runner, households, tmp_path):
    households.create()
    households.create(members=[member(1, name_en="Md Rahim Uddin", name_bn="মোঃ রহিম উদ্দিন", nid_number=None)])
    out = tmp_path / "dups.csv"
    result = runner.invoke(["dedup", "scan", "--area", BARISAL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == set(dedup.SCAN_COLUMNS)
    assert float(rows[0]["score"]) >= dedup.FLAG_THRESHOLD
    assert "likely duplicate pair" in result.output


def test_scan_command_refuses_an_unknown_area(db_session, runner):
    result = runner.invoke(["dedup", "scan", "--area", "99"])
    assert result.exit_code != 0 and "unknown area code" in result.output


def test_index_command(db_session, runner, households):
    households.create()
    result = runner.invoke(["dedup", "index", "--area", BARISAL])
    assert result.exit_code == 0, result.output
    assert "keys for 10" in result.output


@pytest.mark.parametrize("text_value", ["", None, "   "])
def test_blank_names_have_no_keys(text_value):
    assert dedup.person_keys({"name_bn": text_value, "name_en": text_value}) == set()
