"""Programme pages: editor (errors by rule path, live preview), build, list page, exports, diff,
a household's programmes, overlap; roles, areas and CSRF."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from models.programme import EligibilityList, Programme
from targeting import eligibility as el
from tests.factories import member
from tests.targeting.score_helpers import make_model, make_run

MINISTRY = "Ministry of Social Welfare"


@pytest.fixture
def officer(make_user, db_session):
    user = make_user("programme_officer")
    user.ministry = MINISTRY
    db_session.flush()
    return user


@pytest.fixture
def scored(households):
    made = [households.create(members=[member(1, age_years=70 if i % 2 else 40)]) for i in range(6)]
    make_run(make_model(), {h: 7.0 + 0.1 * i for i, h in enumerate(made)})
    return made


FORM = {
    "name": "Old Age Allowance",
    "ministry": MINISTRY,
    "status": "active",
    "method": "poorest",
    "percent": "50",
    "level": "upazila",
    "criteria": json.dumps({"member": {"age_years": {"gte": 65}}}),
    "scope_areas": "",
    "quota_level": "",
}


def _programme(db_session, name="Old Age Allowance"):
    return db_session.scalar(select(Programme).where(Programme.name == name))


def test_pages_need_login(client):
    response = client.get("/programmes")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_officer_creates_a_programme_with_the_editor(client, db_session, officer, login, scored):
    login(officer)
    page = client.get("/programmes/new").get_data(as_text=True)
    assert 'name="csrf_token"' in page and "a member aged 65+" in page and 'id="preview"' in page
    # Jinja's gettext %-formats every string: a bare "%" once rendered as "X{}re taken".
    assert "The poorest X% are taken from everyone scored" in page
    response = client.post("/programmes/new", data=FORM)
    assert response.status_code == 302, response.get_data(as_text=True)
    programme = _programme(db_session)
    assert programme.criteria == {"member": {"age_years": {"gte": 65}}}
    assert programme.targeting == {"method": "poorest", "percent": 50, "level": "upazila"}
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Old Age Allowance" in detail and "Build a new list" in detail and "a member with age ≥ 65" in detail


def test_editor_names_the_bad_part_of_a_rule(client, officer, login):
    login(officer)
    bad = {**FORM, "criteria": json.dumps({"all": [{"household": {"femal_head": True}}]})}
    response = client.post("/programmes/new", data=bad)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "criteria.all[0].household.femal_head" in page
    assert "unknown attribute" in page
    response = client.post("/programmes/new", data={**FORM, "criteria": "{not json"})
    assert response.status_code == 422 and "not valid JSON" in response.get_data(as_text=True)


def test_live_preview_counts_the_form_as_it_stands(client, officer, login, scored):
    login(officer)
    body = client.post("/programmes/preview", data=FORM).json
    assert body["ok"] and body["funnel"] == {"scored": 6, "targeted": 3, "eligible": 1, "selected": 1}
    body = client.post("/programmes/preview", data={**FORM, "criteria": "", "name": ""}).json
    assert body["funnel"]["selected"] == 3
    response = client.post("/programmes/preview", data={**FORM, "criteria": '{"member": {"agee": 1}}'})
    assert response.status_code == 422 and "criteria.member.agee" in response.json["errors"]


def test_build_and_list_page(client, db_session, officer, login, scored, make_user):
    programme = el.create_programme({**_definition(), "criteria": None}, officer)
    db_session.commit()
    login(officer)
    saved = client.post(f"/programmes/preview?programme_id={programme.id}&saved=1").json
    assert saved["funnel"]["selected"] == 3
    response = client.post(f"/programmes/{programme.id}/lists")
    assert response.status_code == 302
    lst = db_session.scalar(select(EligibilityList).where(EligibilityList.programme_id == programme.id))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Eligibility list" in page and "<svg" in page and scored[0].household_id in page
    assert "export.csv" in page and "export.xlsx" in page and "Expected exclusion error" in page
    filtered = client.get(f"/lists/{lst.id}?area=30").get_data(as_text=True)
    assert scored[0].household_id not in filtered and "No household in this area" in filtered
    csv_text = client.get(f"/lists/{lst.id}/export.csv").get_data(as_text=True)
    assert "Rahim Uddin" in csv_text  # the programme's own officer: names for delivery
    client.post("/logout")
    login(make_user("viewer"))
    csv_text = client.get(f"/lists/{lst.id}/export.csv").get_data(as_text=True)
    assert scored[0].household_id in csv_text and "Rahim" not in csv_text
    assert client.get(f"/lists/{lst.id}/export.xlsx").data[:2] == b"PK"
    assert "Build a new list" not in client.get(f"/programmes/{programme.id}").get_data(as_text=True)
    assert client.post(f"/programmes/{programme.id}/lists").status_code == 403
    assert client.get("/programmes/new").status_code == 403


def _definition():
    return {
        "name": "Old Age Allowance",
        "targeting": {"method": "poorest", "percent": 50, "level": "upazila"},
        "criteria": {"member": {"age_years": {"gte": 65}}},
    }


def test_other_ministries_cannot_edit(client, db_session, officer, login, make_user):
    programme = el.create_programme(_definition(), officer)
    db_session.commit()
    stranger = make_user("programme_officer")
    stranger.ministry = "Finance Division"
    db_session.commit()
    login(stranger)
    assert client.get(f"/programmes/{programme.id}/edit").status_code == 403
    assert client.post(f"/programmes/{programme.id}/edit", data=FORM).status_code == 403
    client.post("/logout")
    login(officer)
    page = client.get(f"/programmes/{programme.id}/edit").get_data(as_text=True)
    assert "Old Age Allowance" in page and "age_years" in page
    response = client.post(
        f"/programmes/{programme.id}/edit", data={**FORM, "quota_level": "union", "quota_per_area": "2"}
    )
    assert response.status_code == 302
    db_session.refresh(programme)
    assert programme.version == 2 and programme.quotas == {"level": "union", "per_area": 2}


def test_diff_household_and_overlap_pages(client, db_session, officer, login, scored, make_user):
    programme = el.create_programme({**_definition(), "criteria": None}, officer)
    first = el.build_list(programme, officer)
    el.update_programme(programme, _definition(), officer)
    second = el.build_list(programme, officer)
    db_session.commit()
    login(officer)
    page = client.get(f"/lists/{first.id}/diff/{second.id}").get_data(as_text=True)
    assert "rule changed" in page and scored[0].household_id in page
    assert client.get(f"/lists/{first.id}/diff?other={second.id}").status_code == 302
    page = client.get(f"/households/{scored[1].household_id}/programmes").get_data(as_text=True)
    assert "Old Age Allowance" in page and "current" in page
    client.post("/logout")
    login(make_user("viewer"))
    assert client.get(f"/households/{scored[1].household_id}/programmes").status_code == 403
    page = client.get("/programmes/overlap").get_data(as_text=True)
    assert "Overlap between programmes" in page and scored[1].household_id not in page
    assert "Old Age Allowance" in client.get("/programmes").get_data(as_text=True)


def test_forms_carry_csrf_protection(app, client, db_session, officer, login, scored):
    programme = el.create_programme(_definition(), officer)
    db_session.commit()
    login(officer)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = client.get(f"/programmes/{programme.id}").get_data(as_text=True)
        assert 'name="csrf_token"' in page
        assert client.post(f"/programmes/{programme.id}/lists").status_code == 400
        assert client.post("/programmes/preview", data=FORM).status_code == 400
        assert client.post("/programmes/new", data=FORM).status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
