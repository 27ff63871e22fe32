"""The grievance API: intake, queue, steps, errors (401/403/404/409/422), privacy, statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from models.base import utcnow
from registry import grievances as gr
from tests.registry.test_grievances import install_scores

BODY = {
    "channel": "hotline",
    "category": "data_error",
    "description": "The enumerator recorded a motorcycle we do not own.",
    "complainant_name": "Karim Mia",
    "complainant_phone": "01812345678",
}


@pytest.fixture
def officer(make_user):
    return make_user("grievance_officer", areas=["1004"])


def _open(client, headers, household, **overrides):
    body = {**BODY, "household_id": household.household_id, **overrides}
    response = client.post("/api/v1/grievances", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def test_requires_a_token(client):
    assert client.get("/api/v1/grievances").status_code == 401
    assert client.post("/api/v1/grievances", json=BODY).status_code == 401


def test_intake_and_case_detail(client, db_session, officer, api_headers, households):
    household = households.create()
    install_scores(db_session, {household: 61.0})
    headers = api_headers(officer)
    case = _open(client, headers, household)
    assert case["reference"] == f"GR-{case['id']:06d}" and case["status"] == "open"
    assert case["before"] == {
        "household_version": 1,
        "score": 61.0,
        "score_run_id": case["before"]["score_run_id"],
        "eligible": None,
    }
    assert case["household"]["household_id"] == household.household_id
    assert case["complainant"]["masked"] is True and "01812345678" not in str(case)
    assert case["timeline"][0]["kind"] == "opened"
    detail = client.get(f"/api/v1/grievances/{case['id']}", headers=headers).json
    assert detail["id"] == case["id"] and detail["due_at"]


def test_bad_input_names_every_field(client, officer, api_headers):
    response = client.post(
        "/api/v1/grievances",
        json={"channel": "pigeon", "category": "x", "complainant_phone": "123", "union_code": "1"},
        headers=api_headers(officer),
    )
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) >= {
        "channel",
        "category",
        "description",
        "complainant_phone",
        "union_code",
    }


def test_service_validation_is_422_with_fields(client, officer, api_headers):
    response = client.post(
        "/api/v1/grievances", json={**BODY, "household_id": "10040915-999999"}, headers=api_headers(officer)
    )
    assert response.status_code == 422 and "household_id" in response.json["error"]["fields"]


def test_full_path_without_data_change(client, db_session, make_user, officer, api_headers, households):
    household = households.create()
    headers = api_headers(officer)
    case = _open(client, headers, household)
    url = f"/api/v1/grievances/{case['id']}"
    assert client.post(f"{url}/assign", json={"assignee": "nobody"}, headers=headers).status_code == 422
    assigned = client.post(f"{url}/assign", json={"assignee": officer.username}, headers=headers).json
    assert assigned["status"] == "assigned" and assigned["complainant"] == {
        "name": "Karim Mia",
        "phone": "01812345678",
        "masked": False,
    }
    task = client.post(f"{url}/request-verification", json={"instructions": "Check the assets."}, headers=headers)
    assert task.status_code == 201 and task.json["status"] == "open"
    again = client.post(f"{url}/request-verification", json={"instructions": "again"}, headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
    enumerator = make_user("enumerator", areas=["10040915"])
    queue = client.get("/api/v1/verification-tasks", headers=api_headers(enumerator)).json
    assert [t["id"] for t in queue] == [task.json["id"]] and "Karim" not in str(queue)
    done = client.post(
        f"/api/v1/verification-tasks/{task.json['id']}/complete",
        json={"finding": "no_change", "note": "No motorcycle found; the record shows none either."},
        headers=api_headers(enumerator),
    )
    assert done.status_code == 200 and done.json["finding"] == "no_change"
    resolved = client.post(f"{url}/resolve", json={}, headers=headers).json
    assert resolved["status"] == "resolved" and resolved["outcome"] == "not_applicable"
    short = client.post(f"{url}/close", json={"resolution_text": "ok"}, headers=headers)
    assert short.status_code == 422 and "resolution_text" in short.json["error"]["fields"]
    closed = client.post(
        f"{url}/close", json={"resolution_text": "Checked in the field: no change needed."}, headers=headers
    ).json
    assert closed["status"] == "closed" and closed["resolution_text"].startswith("Checked")
    kinds = [step["kind"] for step in closed["timeline"]]
    assert kinds == ["opened", "assigned", "verification_requested", "verification_completed", "resolved", "closed"]


def test_permissions(client, make_user, officer, api_headers, households):
    household = households.create()
    case = _open(client, api_headers(officer), household)
    url = f"/api/v1/grievances/{case['id']}"
    outsider = make_user("grievance_officer", areas=["30"])
    response = client.get(url, headers=api_headers(outsider))
    assert response.status_code == 403 and "outside your assigned areas" in response.json["error"]["message"]
    assert client.get(url, headers=api_headers(make_user("viewer"))).status_code == 403
    assert client.get("/api/v1/grievances", headers=api_headers(make_user("statistician"))).status_code == 403
    assert (
        client.post(f"{url}/assign", json={"assignee": officer.username}, headers=api_headers(outsider)).status_code
        == 403
    )
    assert client.post(f"{url}/resolve", json={}, headers=api_headers(officer)).status_code == 403  # not assigned
    assert client.get("/api/v1/grievances/999999", headers=api_headers(officer)).status_code == 404
    assert client.get("/api/v1/verification-tasks", headers=api_headers(officer)).status_code == 403
    supervisor_view = client.get(url, headers=api_headers(make_user("supervisor", areas=["10"]))).json
    assert supervisor_view["complainant"]["masked"] is True


def test_queue_filters_and_overdue(client, db_session, officer, api_headers, households):
    household = households.create()
    headers = api_headers(officer)
    late = _open(client, headers, household)
    _open(client, headers, household, category="payment")
    case = gr.get_grievance(late["id"])
    case.due_at = utcnow() - dt.timedelta(hours=1)
    db_session.commit()
    listing = client.get("/api/v1/grievances?overdue=true", headers=headers).json
    assert [c["id"] for c in listing["items"]] == [late["id"]] and listing["items"][0]["overdue"] is True
    assert client.get("/api/v1/grievances?category=payment", headers=headers).json["meta"]["total"] == 1
    assert client.get("/api/v1/grievances?status=bogus", headers=headers).status_code == 422
    assert client.get("/api/v1/grievances?area=30", headers=headers).status_code == 403


def test_stats(client, make_user, officer, api_headers, households):
    household = households.create()
    _open(client, api_headers(officer), household)
    stats = client.get("/api/v1/grievances/stats?level=union", headers=api_headers(make_user("viewer"))).json
    assert stats["total"] == 1 and stats["by_area"] == {household.union_code: 1}
    assert stats["by_category"]["data_error"] == 1 and "Karim" not in str(stats)
    assert (
        client.get("/api/v1/grievances/stats?level=village", headers=api_headers(make_user("viewer"))).status_code
        == 422
    )
    assert client.get("/api/v1/grievances/stats", headers=api_headers(make_user("admin"))).status_code == 403


# --- the complete path through the API, with the real scoring engine ----------------------------

RICH = {
    "dwelling_structure": 1,
    "wall_material": 5,
    "roof_material": 4,
    "floor_material": 3,
    "rooms": 5,
    "toilet_type": 1,
    "electricity": 1,
    "cooking_fuel": 3,
    "land_cultivable_decimal": 300,
    "asset_tv": True,
    "asset_refrigerator": True,
    "asset_motorcycle": True,
    "asset_smartphone": True,
    "main_income_source": 5,
}
#: What the field officer found: the record had another family's assets.
POOR = {
    "dwelling_structure": 3,
    "wall_material": 1,
    "roof_material": 1,
    "floor_material": 1,
    "rooms": 1,
    "toilet_type": 3,
    "electricity": 3,
    "cooking_fuel": 1,
    "land_cultivable_decimal": 0,
    "asset_tv": False,
    "asset_refrigerator": False,
    "asset_motorcycle": False,
    "asset_smartphone": False,
    "main_income_source": 2,
}


def test_grievance_verification_approval_rescore_eligibility_closure(
    client, db_session, make_user, officer, api_headers, households, tmp_path
):
    """grievance → verification change request → approval → re-score with the active model →
    eligibility re-evaluated against the programme's current rule → outcome → closure."""
    from registry import jobs, synth
    from targeting import eligibility as el
    from targeting import pmt_models, scoring

    target = households.create(**RICH)
    for _ in range(3):
        households.create()
    fitter, publisher = make_user("statistician"), make_user("statistician")
    synth.generate(tmp_path, 0, 11, survey_households=1500)
    model = pmt_models.calibrate_demo_model(
        tmp_path / "survey.csv",
        tmp_path / "survey_members.csv",
        fitter,
        publisher,
        spec={**pmt_models.DEMO_SPEC, "methods": ["wls"]},
    )
    db_session.commit()
    jobs.run_pending()  # the activation's full re-score
    before = scoring.score_of(target)
    assert before is not None and before.model_id == model.id and before.household_version == 1
    before_score = before.score  # the row is updated in place by the incremental re-score

    programme_officer = make_user("programme_officer")
    programme_officer.ministry = "Ministry of Food"
    # Eligible below the target's current score: it is not eligible now, and a poorer record makes it so.
    programme = el.create_programme(
        {"name": "Food friendly programme", "targeting": {"method": "score_below", "value": before_score - 0.5}},
        programme_officer,
    )
    lst = el.build_list(programme, programme_officer)
    db_session.commit()

    headers = api_headers(officer)
    case = client.post(
        "/api/v1/grievances",
        json={**BODY, "category": "exclusion", "household_id": target.household_id, "list_id": lst.id},
        headers=headers,
    ).json
    url = f"/api/v1/grievances/{case['id']}"
    assert case["before"]["score"] == pytest.approx(before_score) and case["before"]["eligible"] is False
    client.post(f"{url}/assign", json={"assignee": officer.username}, headers=headers)
    task = client.post(
        f"{url}/request-verification", json={"instructions": "Check dwelling and assets."}, headers=headers
    ).json

    enumerator = make_user("enumerator", areas=["10040915"])
    supervisor = make_user("supervisor", areas=["1004"])
    assert [t["id"] for t in client.get("/api/v1/verification-tasks", headers=api_headers(enumerator)).json] == [
        task["id"]
    ]
    cr = client.post(
        "/api/v1/change-requests",
        json={
            "kind": "edit_household",
            "household_id": target.household_id,
            "base_version": 1,
            "household": POOR,
            "reason": f"field verification of grievance {case['reference']}",
        },
        headers=api_headers(enumerator),
    )
    assert cr.status_code == 201, cr.json
    linked = client.post(
        f"{url}/link-change-request", json={"change_request_id": cr.json["id"]}, headers=api_headers(enumerator)
    )
    assert linked.status_code == 200 and linked.json["change_request"]["status"] == "pending"
    pending = client.post(f"{url}/resolve", json={}, headers=headers)
    assert pending.status_code == 409 and "awaits approval" in pending.json["error"]["message"]

    approved = client.post(f"/api/v1/change-requests/{cr.json['id']}/approve", json={}, headers=api_headers(supervisor))
    assert approved.status_code == 200, approved.json
    jobs.run_pending()  # the incremental re-score queued by the approval (inline in JOBS_INLINE set-ups)
    after = scoring.score_of(target)
    assert after.household_version == 2 and after.score < before_score

    resolved = client.post(f"{url}/resolve", json={"note": "Assets belonged to the neighbour."}, headers=headers)
    assert resolved.status_code == 200, resolved.json
    body = resolved.json
    assert body["outcome"] == "now_eligible" and body["after"]["eligible"] is True
    assert body["before"]["score"] == pytest.approx(before_score) and body["after"]["score"] == pytest.approx(
        after.score
    )
    assert (body["before"]["household_version"], body["after"]["household_version"]) == (1, 2)
    assert body["change_request"]["status"] == "approved" and body["outcome_detail"]["data_changed"] is True
    closed = client.post(
        f"{url}/close", json={"resolution_text": "Your record is corrected: you are now eligible."}, headers=headers
    ).json
    assert closed["status"] == "closed"
    assert [s["kind"] for s in closed["timeline"]] == [
        "opened",
        "assigned",
        "verification_requested",
        "change_request_linked",
        "change_request_approved",
        "resolved",
        "closed",
    ]
    stats = client.get("/api/v1/grievances/stats", headers=headers).json
    assert stats["outcomes"]["now_eligible"] == 1 and stats["closed_within_deadline"] == 1


def test_grievance_officer_opens_only_households_named_in_a_case(client, officer, api_headers, households):
    named, other = households.create(), households.create()
    _open(client, api_headers(officer), named)
    assert client.get(f"/api/v1/households/{named.household_id}", headers=api_headers(officer)).status_code == 200
    response = client.get(f"/api/v1/households/{other.household_id}", headers=api_headers(officer))
    assert response.status_code == 403 and "named in no grievance" in response.json["error"]["message"]


HOUSEHOLD_PATHS = ("", "/versions", "/versions/1", "/diff?from=1", "/score", "/programmes")


def test_grievance_officer_browses_only_the_households_of_their_cases(
    client, db_session, make_user, officer, api_headers, households
):
    named, other = households.create(), households.create()
    far = households.create(union_code="10040987")
    _open(client, api_headers(officer), named)
    headers = api_headers(officer)
    db_session.commit()  # the token outlives the rollback of refused requests
    listing = client.get("/api/v1/households?per_page=100", headers=headers).json
    assert [h["household_id"] for h in listing["items"]] == [named.household_id] and listing["meta"]["total"] == 1
    assert client.get(f"/api/v1/households?q={other.household_id}", headers=headers).json["meta"]["total"] == 0
    for path in HOUSEHOLD_PATHS:
        status = client.get(f"/api/v1/households/{named.household_id}{path}", headers=headers).status_code
        assert status == 200 or (path == "/score" and status == 404), (path, status)  # unscored here
        for household in (other, far):
            response = client.get(f"/api/v1/households/{household.household_id}{path}", headers=headers)
            assert response.status_code == 403, (path, response.status_code)
    # A supervisor of the same area is not restricted to cases.
    supervisor = api_headers(make_user("supervisor", areas=["1004"]))
    db_session.commit()
    assert client.get("/api/v1/households?per_page=100", headers=supervisor).json["meta"]["total"] == 3
    assert client.get(f"/api/v1/households/{other.household_id}", headers=supervisor).status_code == 200


def test_grievance_officer_reads_only_the_change_requests_of_their_cases(
    client, db_session, make_user, officer, api_headers, households
):
    named, other = households.create(), households.create()
    _open(client, api_headers(officer), named)
    enumerator = api_headers(make_user("enumerator", areas=["1004"]))
    ids = {}
    for household in (named, other):
        response = client.post(
            "/api/v1/change-requests",
            json={
                "kind": "edit_household",
                "household_id": household.household_id,
                "base_version": household.current_version,
                "reason": "field visit",
                "household": {"rooms": 3},
            },
            headers=enumerator,
        )
        assert response.status_code == 201, response.json
        ids[household.household_id] = response.json["id"]
    headers = api_headers(officer)
    db_session.commit()  # the token outlives the rollback of refused requests
    listing = client.get("/api/v1/change-requests", headers=headers).json
    assert [item["id"] for item in listing["items"]] == [ids[named.household_id]]
    assert client.get(f"/api/v1/change-requests/{ids[named.household_id]}", headers=headers).status_code == 200
    refused = client.get(f"/api/v1/change-requests/{ids[other.household_id]}", headers=headers)
    assert refused.status_code == 403 and "no grievance" in refused.json["error"]["message"]
