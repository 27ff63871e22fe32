"""Community validation: publication per union with a window, the printable notice (never a national
ID), objections, committee decisions, the validated list with provenance, evidence, spot-check."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from models import AuditEvent, db
from models.base import utcnow
from models.programme import EligibilityListEntry
from models.validation import Objection, ValidatedListChange
from registry.access import AccessDenied
from registry.validation import RecordValidationError
from targeting import community_validation as cv
from targeting import eligibility as el
from tests.factories import RURAL_UNION, household_record, member
from tests.targeting.score_helpers import make_model, make_run

MINISTRY = "Ministry of Social Welfare"
UNION_B = "10040913"  # Amtali, same upazila (100409) as RURAL_UNION
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def officer(make_user, db_session):
    user = make_user("programme_officer")
    user.ministry = MINISTRY
    db_session.flush()
    return user


@pytest.fixture
def enumerator(make_user):
    return make_user("enumerator", areas=[RURAL_UNION])


class Population:
    """Ten households in union A and four in union B, scored poorest first in creation order; the list
    takes the poorest half of each union."""

    def __init__(self, households, officer):
        self.a = [households.create(union_code=RURAL_UNION, village=f"Village {i}") for i in range(10)]
        self.b = [households.create(union_code=UNION_B) for _ in range(4)]
        model = make_model()
        predicted = {h: 7.0 + 0.1 * i for i, h in enumerate(self.a)}
        predicted.update({h: 7.05 + 0.1 * i for i, h in enumerate(self.b)})
        self.run = make_run(model, predicted)
        self.programme = el.create_programme(
            {"name": "Old age allowance", "targeting": {"method": "poorest", "percent": 50, "level": "union"}},
            officer,
        )
        self.list = el.build_list(self.programme, officer)

    def ids(self, lst):
        from models import Household

        return [
            hid
            for (hid,) in db.session.execute(
                select(Household.household_id)
                .join(EligibilityListEntry, EligibilityListEntry.household_pk == Household.id)
                .where(EligibilityListEntry.list_id == lst.id)
                .order_by(EligibilityListEntry.position)
            )
        ]


@pytest.fixture
def population(db_session, households, officer):
    return Population(households, officer)


def publish(population, officer, union=RURAL_UNION, **kw):
    (publication,) = cv.publish_list(population.list, officer, union_codes=[union], **kw)
    return publication


def close_window(publication):
    publication.objection_deadline = utcnow() - dt.timedelta(minutes=1)
    db.session.flush()


def decide(objection, officer, outcome="upheld"):
    return cv.decide_objection(
        objection, officer, outcome=outcome, meeting_date=utcnow().date(), reference=f"UP-{objection.id}/2026"
    )


# --- publishing ---------------------------------------------------------------------------------


def test_publish_per_union_with_a_window(db_session, population, officer, enumerator):
    publication = publish(population, officer)
    assert publication.n_entries == 5 and publication.objection_days == 30
    assert publication.objection_deadline - publication.published_at == dt.timedelta(days=30)
    assert cv.window_open(publication) and population.list.status == "in_validation"
    assert "Union Parishad" in publication.how_to_object
    with pytest.raises(cv.ValidationConflict, match="already published"):
        publish(population, officer)
    rest = cv.publish_list(population.list, officer, area_code="100409", objection_days=14)
    assert [p.union_code for p in rest] == [UNION_B] and rest[0].objection_days == 14 and rest[0].n_entries == 2
    with pytest.raises(AccessDenied):
        cv.publish_list(population.list, enumerator, union_codes=[RURAL_UNION])
    with pytest.raises(RecordValidationError, match="objection_days"):
        cv.publish_list(population.list, officer, union_codes=["10040987"], objection_days=0)
    with pytest.raises(RecordValidationError, match="not union/ward codes"):
        cv.publish_list(population.list, officer, union_codes=["100409"])
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "eligibility_list.publish"))


def test_notice_lists_households_in_rank_order_without_national_ids(db_session, households, officer):
    wife_headed = households.create(
        union_code=RURAL_UNION,
        village="Char Kukri",
        members=[
            member(
                1,
                name_en="Rahima Khatun",
                name_bn="রহিমা খাতুন",
                sex=2,
                marital_status=3,
                spouse_name="Late Abdul Karim",
                father_name="Hasan Ali",
                nid_number="1990123456789",
                mobile_number="01711111111",
            )
        ],
    )
    others = [households.create(union_code=RURAL_UNION) for _ in range(3)]
    make_run(make_model(), {wife_headed: 6.5, **{h: 7.0 + i for i, h in enumerate(others)}})
    programme = el.create_programme({"name": "Widow allowance", "targeting": {"method": "all"}}, officer)
    lst = el.build_list(programme, officer)
    (publication,) = cv.publish_list(lst, officer, union_codes=[RURAL_UNION])
    notice = cv.notice_view(publication)
    rows = notice["households"]
    assert [r["serial"] for r in rows] == [1, 2, 3, 4] and rows[0]["household_id"] == wife_headed.household_id
    assert rows[0]["head_name_en"] == "Rahima Khatun" and rows[0]["relative_relation"] == "husband"
    assert rows[0]["relative_name"] == "Late Abdul Karim" and rows[0]["village"] == "Char Kukri"
    assert rows[1]["relative_relation"] == "father" and rows[1]["relative_name"] == "Karim Uddin"
    text = json.dumps(notice, default=str)
    nids = [m.nid_number for h in [wife_headed, *others] for m in h.members if m.nid_number]
    assert nids and not any(nid in text for nid in nids)
    assert "01711111111" not in text
    assert notice["publication"]["objection_deadline"] == publication.objection_deadline


# --- objections and decisions -------------------------------------------------------------------


def test_objections_are_checked_against_the_list_and_the_union(db_session, population, officer, enumerator, make_user):
    publication = publish(population, officer)
    on_list, off_list = population.a[0], population.a[9]
    inclusion = cv.record_objection(
        publication,
        enumerator,
        kind="inclusion",
        reason="Owns a shop in town",
        household_id=on_list.household_id,
        objector_name="A neighbour",
    )
    assert inclusion.kind == "inclusion" and inclusion.recorded_by_id == enumerator.id
    with pytest.raises(cv.ValidationConflict, match="awaits its decision"):
        cv.record_objection(publication, officer, kind="inclusion", reason="again", household_id=on_list.household_id)
    with pytest.raises(RecordValidationError, match="is not on the list"):
        cv.record_objection(publication, officer, kind="inclusion", reason="x", household_id=off_list.household_id)
    with pytest.raises(RecordValidationError, match="already on the list"):
        cv.record_objection(publication, officer, kind="exclusion", reason="x", household_id=on_list.household_id)
    with pytest.raises(RecordValidationError, match="lives in union"):
        cv.record_objection(
            publication, officer, kind="exclusion", reason="x", household_id=population.b[3].household_id
        )
    with pytest.raises(RecordValidationError) as caught:
        cv.record_objection(publication, officer, kind="exclusion", reason=" ")
    assert set(caught.value.fields()) == {"reason", "family_head_name"}
    for outsider in (make_user("enumerator", areas=["30"]), make_user("viewer"), make_user("supervisor", ["10"])):
        with pytest.raises(AccessDenied):
            cv.record_objection(
                publication, outsider, kind="exclusion", reason="poor", household_id=off_list.household_id
            )
    # The objector's name is kept for the programme's officers only.
    assert cv.objection_view(inclusion, officer)["objector_name"] == "A neighbour"
    assert cv.objection_view(inclusion, enumerator)["objector_name"] == "•••"


def test_the_window_is_set_per_programme(app, db_session, population, officer, enumerator):
    programme = population.programme
    assert programme.objection_days is None and cv.objection_days_of(programme) == 30
    with pytest.raises(AccessDenied):
        cv.set_objection_window(programme, enumerator, 14)
    with pytest.raises(RecordValidationError, match="objection_days"):
        cv.set_objection_window(programme, officer, 366)
    cv.set_objection_window(programme, officer, 14)
    assert programme.version == 1  # the window is not part of the eligibility rule
    publication = publish(population, officer)
    assert publication.objection_days == 14
    assert publication.objection_deadline - publication.published_at == dt.timedelta(days=14)
    # Back to the configured default: new publications follow it, made ones keep their window.
    cv.set_objection_window(programme, officer, None)
    app.config["COMMUNITY_OBJECTION_DAYS"] = 45
    try:
        (other,) = cv.publish_list(population.list, officer, union_codes=[UNION_B])
    finally:
        del app.config["COMMUNITY_OBJECTION_DAYS"]
    assert other.objection_days == 45 and publication.objection_days == 14
    events = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "programme.objection_window").order_by(AuditEvent.id)
    ).all()
    assert [(e.before, e.after) for e in events] == [
        ({"objection_days": None}, {"objection_days": 14}),
        ({"objection_days": 14}, {"objection_days": None}),
    ]


def test_the_window_is_enforced(db_session, population, officer, enumerator):
    publication = publish(population, officer)
    publication.objection_deadline = utcnow() + dt.timedelta(minutes=1)  # the last minute: still open
    objection = cv.record_objection(
        publication, enumerator, kind="inclusion", reason="Salaried job", household_id=population.a[0].household_id
    )
    with pytest.raises(cv.ValidationConflict, match="open until"):
        cv.finalise_publication(publication, officer)
    close_window(publication)
    assert not cv.window_open(publication)
    for who in (officer, enumerator):
        with pytest.raises(cv.ValidationConflict, match="objection window .* closed"):
            cv.record_objection(
                publication, who, kind="exclusion", reason="poor", household_id=population.a[9].household_id
            )
    decide(objection, officer)  # the committee meets after the window
    cv.finalise_publication(publication, officer)
    with pytest.raises(cv.ValidationConflict, match="finalised"):
        cv.record_objection(
            publication, officer, kind="exclusion", reason="poor", household_id=population.a[9].household_id
        )
    assert db_session.scalar(select(func.count()).select_from(Objection)) == 1


def test_decisions_once_by_the_programme_officers(db_session, population, officer, enumerator):
    publication = publish(population, officer)
    objection = cv.record_objection(
        publication, enumerator, kind="exclusion", reason="Widow, no land", household_id=population.a[9].household_id
    )
    with pytest.raises(AccessDenied):
        decide(objection, enumerator)
    with pytest.raises(RecordValidationError) as caught:
        cv.decide_objection(
            objection, officer, outcome="maybe", meeting_date=utcnow().date() + dt.timedelta(days=2), reference=" "
        )
    assert set(caught.value.fields()) == {"outcome", "meeting_date", "reference"}
    decision = decide(objection, officer, "dismissed")
    assert decision.outcome == "dismissed" and objection.decision is decision
    with pytest.raises(cv.ValidationConflict, match="was decided"):
        decide(objection, officer)


def test_evidence_is_checked_by_content(db_session, population, officer, enumerator, tmp_path):
    publication = publish(population, officer)
    objection = cv.record_objection(
        publication, enumerator, kind="inclusion", reason="Has a brick house", household_id=population.a[1].household_id
    )
    evidence = cv.add_objection_evidence(objection, enumerator, "../photo.png", PNG, tmp_path)
    assert evidence.content_type == "image/png" and evidence.filename == "photo.png"
    assert (tmp_path / evidence.storage_path).read_bytes() == PNG
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "objection.evidence"))
    assert event.object_id == str(objection.id) and evidence.sha256[:12] in event.summary
    with pytest.raises(RecordValidationError, match="only JPEG, PNG or PDF"):
        cv.add_objection_evidence(objection, enumerator, "notes.png", b"just text, not an image", tmp_path)
    found, path = cv.get_evidence_file(objection, evidence.id, officer, tmp_path)
    assert found.id == evidence.id and path.is_file()
    decide(objection, officer)
    with pytest.raises(cv.ValidationConflict, match="evidence is closed"):
        cv.add_objection_evidence(objection, enumerator, "more.png", PNG, tmp_path)


# --- the validated list -------------------------------------------------------------------------


def test_objection_decision_validated_list_with_provenance(db_session, households, population, officer, enumerator):
    source_ids = population.ids(population.list)
    a = population.a
    newcomer = households.create(union_code=RURAL_UNION)  # registered after the list's score run
    assert source_ids[:3] == [a[0].household_id, population.b[0].household_id, a[1].household_id]
    publication = publish(population, officer)
    removed = cv.record_objection(
        publication, enumerator, kind="inclusion", reason="Salaried job", household_id=a[2].household_id
    )
    added = cv.record_objection(
        publication, enumerator, kind="exclusion", reason="Disabled head, no income", household_id=a[6].household_id
    )
    dismissed = cv.record_objection(
        publication, enumerator, kind="inclusion", reason="Rumour", household_id=a[3].household_id
    )
    family = cv.record_objection(
        publication,
        enumerator,
        kind="exclusion",
        reason="New arrivals, very poor",
        family_head_name="Jamal Mia",
        family_village="Char Kukri",
    )
    unscored = cv.record_objection(
        publication, enumerator, kind="exclusion", reason="Arrived last month", household_id=newcomer.household_id
    )
    with pytest.raises(cv.ValidationConflict, match="window .* is open"):
        cv.finalise_publication(publication, officer)
    close_window(publication)
    decide(unscored, officer)  # upheld, but not scored in the list's run: joins a later list
    decide(removed, officer)
    with pytest.raises(cv.ValidationConflict, match="without a committee decision"):
        cv.finalise_publication(publication, officer)
    decide(added, officer)
    decide(dismissed, officer, "dismissed")
    decide(family, officer)  # upheld, but not registered: joins a later list
    validated = cv.finalise_publication(publication, officer)

    assert validated.status == "validated" and validated.programme_id == population.programme.id
    assert (validated.model_id, validated.score_run_id) == (population.list.model_id, population.list.score_run_id)
    expected = [h for h in source_ids if h != a[2].household_id]
    expected.insert(expected.index(a[4].household_id) + 1, a[6].household_id)  # by predicted consumption
    assert population.ids(validated) == expected and validated.n_entries == len(expected)
    positions = db_session.scalars(
        select(EligibilityListEntry.position).where(EligibilityListEntry.list_id == validated.id)
    ).all()
    assert sorted(positions) == list(range(1, len(expected) + 1))
    assert el.get_current_list(population.programme).id == validated.id
    assert publication.status == "finalised" and publication.validated_list_id == validated.id
    provenance = cv.validation_view(validated)
    assert provenance["source_list_id"] == population.list.id
    assert {(c["household_id"], c["change"], c["decision_id"]) for c in provenance["changes"]} == {
        (a[2].household_id, "removed", removed.decision.id),
        (a[6].household_id, "added", added.decision.id),
    }
    changes = db_session.scalars(select(ValidatedListChange).where(ValidatedListChange.list_id == validated.id)).all()
    assert len(changes) == 2 and all(c.publication_id == publication.id for c in changes)
    # Upheld but not applicable to this list: named, with their decisions, for the next one.
    assert [(d["objection_id"], d["household_id"], d["reason"], d["decision_id"]) for d in provenance["deferred"]] == [
        (family.id, None, "not registered yet", family.decision.id),
        (unscored.id, newcomer.household_id, "not scored in the list's score run", unscored.decision.id),
    ]
    # Every step is audited: the publication, each objection and its decision, the validated list.
    audited = {
        (e.action, e.object_id)
        for e in db_session.scalars(select(AuditEvent).where(AuditEvent.action.not_like("change_request%")))
    }
    objections = (removed, added, dismissed, family, unscored)
    assert audited >= {
        ("eligibility_list.publish", str(population.list.id)),
        *(("objection.record", str(o.id)) for o in objections),
        *(("objection.decide", str(o.id)) for o in objections),
        ("eligibility_list.validate", str(validated.id)),
    }
    with pytest.raises(cv.ValidationConflict, match="already finalised"):
        cv.finalise_publication(publication, officer)
    with pytest.raises(cv.ValidationConflict, match="is a validated list"):
        cv.publish_list(validated, officer, union_codes=[UNION_B])

    # The second union's decisions are applied on top, still derived from the published list.
    other = publish(population, officer, union=UNION_B)
    out = cv.record_objection(
        other, officer, kind="inclusion", reason="Migrated abroad", household_id=population.b[0].household_id
    )
    close_window(other)
    decide(out, officer)
    second = cv.finalise_publication(other, officer)
    assert set(population.ids(second)) == set(expected) - {population.b[0].household_id}
    assert cv.validation_view(second)["publication_ids"] == sorted([publication.id, other.id])
    assert len(cv.validation_view(second)["changes"]) == 3


def test_unregistered_family_starts_a_new_household_change_request(
    db_session, population, officer, enumerator, make_user
):
    from models.change_request import ChangeRequest
    from registry import change_requests as crs

    publication = publish(population, officer)
    record = household_record(RURAL_UNION)
    record.pop("household_id")
    record.pop("union_code")
    objection = cv.record_objection(
        publication,
        enumerator,
        kind="exclusion",
        reason="Landless family not registered in the census",
        family_head_name="Jamal Mia",
        family_father_or_husband_name="Kamal Mia",
        family_village="Char Kukri",
        new_household={"household": record, "members": [member(1, nid_number=None)]},
    )
    cr = db_session.get(ChangeRequest, objection.change_request_id)
    assert cr.kind == "new_household" and cr.status == "pending" and cr.union_code == RURAL_UNION
    assert f"objection {objection.id}" in cr.reason
    view = cv.objection_view(objection, officer)
    assert view["family"]["head_name"] == "Jamal Mia" and view["change_request"]["id"] == cr.id
    with pytest.raises(AccessDenied):  # programme officers do not submit change requests
        cv.record_objection(
            publication,
            officer,
            kind="exclusion",
            reason="another family",
            family_head_name="Rina",
            new_household={"household": record, "members": [member(1)]},
        )

    # A family described first and registered later: its change request is linked afterwards.
    later = cv.record_objection(
        publication, officer, kind="exclusion", reason="Widow, no land", family_head_name="Rina Begum"
    )
    assert later.change_request_id is None
    other_union = crs.submit_change(
        make_user("enumerator", areas=[UNION_B]),
        "new_household",
        payload={"household": {**household_record(UNION_B), "household_id": None}, "members": [member(1)]},
        reason="registration in another union",
    )
    with pytest.raises(RecordValidationError, match=f"new household in union {RURAL_UNION}"):
        cv.link_registration(later, enumerator, other_union.id)
    with pytest.raises(RecordValidationError, match="names a registered household"):
        cv.link_registration(
            cv.record_objection(
                publication, officer, kind="exclusion", reason="poor", household_id=population.a[8].household_id
            ),
            enumerator,
            cr.id,
        )
    registration = crs.submit_change(
        enumerator,
        "new_household",
        payload={"household": {**household_record(RURAL_UNION), "household_id": None}, "members": [member(1)]},
        reason=f"registration asked by objection {later.id}",
    )
    with pytest.raises(AccessDenied):
        cv.link_registration(later, make_user("enumerator", areas=[UNION_B]), registration.id)
    cv.link_registration(later, enumerator, registration.id)
    assert cv.objection_view(later, officer)["change_request"]["id"] == registration.id
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "objection.link_registration"))
    assert event.object_id == str(later.id) and event.after == {"change_request_id": registration.id}


# --- spot-check ---------------------------------------------------------------------------------


def test_spot_check_flags_diverging_decisions_and_high_override_unions(
    db_session, population, officer, make_user, enumerator
):
    a = population.a
    publication = publish(population, officer)
    far_added = cv.record_objection(
        publication, enumerator, kind="exclusion", reason="said to be poor", household_id=a[9].household_id
    )  # union percentile 100 vs cut-off 50
    near_added = cv.record_objection(
        publication, enumerator, kind="exclusion", reason="poor", household_id=a[5].household_id
    )  # 60 vs 50: within 20 points
    far_removed = cv.record_objection(
        publication, enumerator, kind="inclusion", reason="relative of member", household_id=a[0].household_id
    )  # 10 vs 50: 40 points below
    close_window(publication)
    for objection in (far_added, near_added, far_removed):
        decide(objection, officer)
    cv.finalise_publication(publication, officer)
    report = cv.spot_check(population.list, make_user("viewer"))
    assert report["local_level"] == "union" and report["upheld"] == 3
    flagged = {(d["household_id"], d["change"]) for d in report["flagged_decisions"]}
    assert flagged == {(a[9].household_id, "added"), (a[0].household_id, "removed")}
    item = next(d for d in report["checked"] if d["household_id"] == a[9].household_id)
    assert item["percentile"] == 100.0 and item["cutoff_percentile"] == 50.0 and item["divergence_points"] == 50.0
    assert item["rank"] == 10 and item["cutoff_rank"] == 5 and item["rank_ratio"] == 2.0
    union_a = next(u for u in report["unions"] if u["union_code"] == RURAL_UNION)
    assert union_a["override_rate"] == 0.6 and union_a["flagged"]  # 3 upheld of 5 published
    assert [u["union_code"] for u in report["flagged_unions"]] == [RURAL_UNION]
    assert "Rahim" not in json.dumps(report, default=str)
    # The validated list maps back to its source; field staff are not "the centre".
    assert (
        cv.spot_check(db_session.get(type(population.list), publication.validated_list_id), officer)["source_list_id"]
        == population.list.id
    )
    with pytest.raises(AccessDenied):
        cv.spot_check(population.list, enumerator)


def test_override_rates_flag_unusual_unions():
    usual = {"u1": 0.02, "u2": 0.03, "u3": 0.02, "u4": 0.04, "u5": 0.03}
    flags, mean, sd = cv.flag_override_rates({**usual, "u6": 0.15})
    # mean 0.0483, sd 0.0460: u6 (0.15) lies above mean + 2 sd = 0.1403 although under the 20 % ceiling.
    assert mean == pytest.approx(0.29 / 6) and sd == pytest.approx(0.04598, abs=1e-4)
    assert {k for k, reasons in flags.items() if reasons} == {"u6"}
    assert flags["u6"] == ["override rate above the mean + 2 sd of the published unions"]
    # Fewer than five unions: only the fixed ceiling applies.
    flags, _mean, _sd = cv.flag_override_rates({"u1": 0.02, "u2": 0.03, "u6": 0.15})
    assert not any(flags.values())
    flags, _mean, _sd = cv.flag_override_rates({"u1": 0.02, "u7": 0.25}, override_rate=0.2)
    assert flags == {"u1": [], "u7": ["override rate above 20%"]}
    assert cv.flag_override_rates({}) == ({}, None, None)


# --- concurrency (PostgreSQL: real commits, one thread and app context each) ----------------------


def _committed_population(app):
    """A population with its list published in both unions and one objection each, committed."""
    import time

    from registry.users import create_user

    with app.app_context():
        tag = f"{time.monotonic_ns() % 10**9}"
        officer = create_user(f"po{tag}", "programme_officer", "correct horse battery")
        officer.ministry = f"Ministry {tag}"
        db.session.flush()

        class _Factory:
            def create(self, union_code=RURAL_UNION, **overrides):
                from registry.households import create_household
                from tests.factories import default_members

                return create_household(
                    household_record(union_code, **overrides), default_members(), actor=None, source="test"
                )

        population = Population(_Factory(), officer)
        publications = cv.publish_list(population.list, officer, area_code="100409")
        objections = [
            cv.record_objection(
                publications[0],
                officer,
                kind="inclusion",
                reason="shop owner",
                household_id=population.b[0].household_id,
            ),
            cv.record_objection(
                publications[1], officer, kind="inclusion", reason="salaried", household_id=population.a[0].household_id
            ),
        ]
        for publication in publications:
            publication.objection_deadline = utcnow() - dt.timedelta(minutes=1)
        db.session.commit()
        ids = {
            "officer": officer.id,
            "list": population.list.id,
            "programme": population.programme.id,
            "run": population.run.id,
            "model": population.run.model_id,
            "households": [h.id for h in population.a + population.b],
            "publications": [p.id for p in publications],
            "objections": [o.id for o in objections],
            "removed": [population.b[0].household_id, population.a[0].household_id],
        }
        db.session.remove()
    return ids


def _cleanup_population(app, ids):
    from sqlalchemy import delete

    from models import Household, HouseholdScore, HouseholdVersion, Member, PmtModel, ScoreRun, User
    from models.programme import EligibilityList, Programme
    from models.validation import (
        ListPublication,
        Objection,
        ObjectionDecision,
        ValidatedList,
    )

    with app.app_context():
        lists = select(EligibilityList.id).where(EligibilityList.programme_id == ids["programme"])
        objections = select(Objection.id).where(Objection.publication_id.in_(ids["publications"]))
        db.session.execute(delete(ValidatedListChange).where(ValidatedListChange.source_list_id == ids["list"]))
        db.session.execute(delete(ValidatedList).where(ValidatedList.source_list_id == ids["list"]))
        db.session.execute(delete(ObjectionDecision).where(ObjectionDecision.objection_id.in_(objections)))
        db.session.execute(delete(Objection).where(Objection.publication_id.in_(ids["publications"])))
        db.session.execute(delete(ListPublication).where(ListPublication.list_id == ids["list"]))
        db.session.execute(delete(EligibilityListEntry).where(EligibilityListEntry.list_id.in_(lists)))
        db.session.execute(delete(EligibilityList).where(EligibilityList.programme_id == ids["programme"]))
        db.session.execute(delete(Programme).where(Programme.id == ids["programme"]))
        db.session.execute(delete(HouseholdScore).where(HouseholdScore.run_id == ids["run"]))
        db.session.execute(delete(ScoreRun).where(ScoreRun.id == ids["run"]))
        db.session.execute(delete(PmtModel).where(PmtModel.id == ids["model"]))
        for table in (HouseholdVersion, Member):
            db.session.execute(delete(table).where(table.household_pk.in_(ids["households"])))
        db.session.execute(delete(Household).where(Household.id.in_(ids["households"])))
        db.session.get(User, ids["officer"]).is_active_user = False  # audit events name it
        db.session.commit()
        db.session.remove()


def _in_threads(app, calls):
    """Run ``calls`` (functions of the officer) at once, one thread and app context each."""
    import threading

    from models import User

    results: list[str] = ["no result"] * len(calls)
    barrier = threading.Barrier(len(calls))

    def work(index, call, user_id):
        with app.app_context():
            user = db.session.get(User, user_id)
            barrier.wait()
            try:
                call(user)
                db.session.commit()
                results[index] = "ok"
            except cv.ValidationConflict as exc:
                db.session.rollback()
                results[index] = f"conflict: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                results[index] = f"error: {type(exc).__name__}: {exc}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(i, call, user_id)) for i, (call, user_id) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_decisions_and_finalisations(app, postgres_only):
    """Two sessions recording a decision on the same objection: one decision. Two unions finalised at
    the same moment: both succeed one after the other, and the later validated list applies both."""
    from models import User
    from models.programme import EligibilityList
    from models.validation import Objection, ObjectionDecision, ValidatedList

    ids = _committed_population(app)
    try:
        first, second = ids["objections"]

        def decide_first(outcome):
            return lambda user: cv.decide_objection(
                db.session.get(Objection, first),
                user,
                outcome=outcome,
                meeting_date=utcnow().date(),
                reference=outcome,
            )

        results = _in_threads(
            app, [(decide_first("upheld"), ids["officer"]), (decide_first("dismissed"), ids["officer"])]
        )
        assert sorted(r.split(":")[0] for r in results) == ["conflict", "ok"], results
        with app.app_context():
            decisions = db.session.scalars(select(ObjectionDecision).where(ObjectionDecision.objection_id == first))
            assert len(decisions.all()) == 1
            cv.decide_objection(
                db.session.get(Objection, second),
                db.session.get(User, ids["officer"]),
                outcome="upheld",
                meeting_date=utcnow().date(),
                reference="R2",
            )
            db.session.commit()
            db.session.remove()

        finals = [
            (lambda user, pid=pid: cv.finalise_publication(cv.get_publication(pid), user), ids["officer"])
            for pid in ids["publications"]
        ]
        results = _in_threads(app, finals)
        assert results == ["ok", "ok"], results
        with app.app_context():
            validated = db.session.scalars(
                select(ValidatedList).where(ValidatedList.source_list_id == ids["list"]).order_by(ValidatedList.list_id)
            ).all()
            assert [len(v.publication_ids) for v in validated] == [1, 2]
            latest = db.session.get(EligibilityList, validated[-1].list_id)
            changes = cv.validation_view(latest)["changes"]
            upheld = {c["household_id"] for c in changes}
            decided = db.session.scalar(
                select(ObjectionDecision.outcome).where(ObjectionDecision.objection_id == first)
            )
            expected = set(ids["removed"]) if decided == "upheld" else {ids["removed"][1]}
            assert upheld == expected and latest.n_entries == 7 - len(expected)
            db.session.remove()
    finally:
        _cleanup_population(app, ids)
