"""The programmes API: create/edit with rights, 422 naming the bad rule part, preview, build, list pages
with area filters, exports masked by role, diff, a household's programmes, overlap."""

from __future__ import annotations

import csv
import io

import pytest

from tests.factories import RURAL_UNION, member
from tests.targeting.score_helpers import make_model, make_run

MINISTRY = "Ministry of Social Welfare"
OLD_AGE = {
    "name": "Old Age Allowance",
    "ministry": MINISTRY,
    "targeting": {"method": "poorest", "percent": 50, "level": "upazila"},
    "criteria": {"member": {"age_years": {"gte": 65}}},
}


@pytest.fixture
def officer(make_user, db_session):
    user = make_user("programme_officer")
    user.ministry = MINISTRY
    db_session.flush()
    return user


@pytest.fixture
def scored(households, db_session):
    """Six households of one union; the odd ones have a member aged 70; scored poorest first."""
    made = [
        households.create(
            members=[
                member(
                    1, age_years=70 if i % 2 else 40, nid_number=f"19901234567{i:02d}", mobile_number=f"0171234567{i}"
                )
            ]
        )
        for i in range(6)
    ]
    make_run(make_model(), {h: 7.0 + 0.1 * i for i, h in enumerate(made)})
    return made


def _create(client, headers, body=None):
    response = client.post("/api/v1/programmes", json=body or OLD_AGE, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def test_create_read_and_edit(client, officer, api_headers, make_user):
    headers = api_headers(officer)
    body = _create(client, headers)
    assert body["ministry"] == MINISTRY and body["version"] == 1 and body["can_manage"]
    assert body["criteria"] == {"member": {"age_years": {"gte": 65}}}
    assert body["criteria_labels"] == ["a member with age ≥ 65"] and body["current_list"] is None
    viewer = api_headers(make_user("viewer"))
    listed = client.get("/api/v1/programmes", headers=viewer).json
    assert [p["name"] for p in listed] == ["Old Age Allowance"] and listed[0]["can_manage"] is False
    assert client.get(f"/api/v1/programmes/{body['id']}", headers=viewer).json["name"] == "Old Age Allowance"
    updated = client.put(
        f"/api/v1/programmes/{body['id']}",
        json={**OLD_AGE, "quotas": {"level": "union", "per_area": 2}},
        headers=headers,
    )
    assert updated.status_code == 200 and updated.json["version"] == 2
    assert updated.json["quotas"] == {"level": "union", "per_area": 2}


def test_rights(client, officer, api_headers, make_user):
    body = _create(client, api_headers(officer))
    stranger = make_user("programme_officer")
    stranger.ministry = "Ministry of Women and Children Affairs"
    for user in (make_user("viewer"), make_user("statistician"), make_user("admin")):
        response = client.post("/api/v1/programmes", json={**OLD_AGE, "name": "x"}, headers=api_headers(user))
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    response = client.put(f"/api/v1/programmes/{body['id']}", json=OLD_AGE, headers=api_headers(stranger))
    assert response.status_code == 403 and "belongs to" in response.json["error"]["message"]
    response = client.post(f"/api/v1/programmes/{body['id']}/lists", headers=api_headers(stranger))
    assert response.status_code == 403
    assert client.get("/api/v1/programmes", headers=api_headers(make_user("enumerator"))).status_code == 403


def test_bad_rules_are_422_naming_the_bad_part(client, officer, api_headers):
    response = client.post(
        "/api/v1/programmes",
        json={
            **OLD_AGE,
            "criteria": {"all": [{"member": {"age_years": {"gte": 65}}}, {"household": {"femal_head": True}}]},
            "targeting": {"method": "poorest", "percent": 0},
            "quotas": {"per_area": 3},
            "extra": 1,
        },
        headers=api_headers(officer),
    )
    assert response.status_code == 422
    fields = response.json["error"]["fields"]
    assert "unknown attribute" in fields["criteria.all[1].household.femal_head"][0]
    assert {"targeting.percent", "quotas.level", "extra"} <= set(fields)
    response = client.post(
        "/api/v1/programmes", json={**OLD_AGE, "scope_areas": ["99999999"]}, headers=api_headers(officer)
    )
    assert response.status_code == 422 and set(response.json["error"]["fields"]) == {"scope_areas[0]"}


def test_preview_build_and_read(client, officer, api_headers, scored, make_user):
    headers = api_headers(officer)
    programme = _create(client, headers)
    preview = client.post(f"/api/v1/programmes/{programme['id']}/preview", json={}, headers=headers).json
    assert preview["funnel"] == {"scored": 6, "targeted": 3, "eligible": 1, "selected": 1}
    draft = client.post(f"/api/v1/programmes/{programme['id']}/preview", json={"criteria": None}, headers=headers).json
    assert draft["funnel"]["selected"] == 3
    bad = client.post(
        f"/api/v1/programmes/{programme['id']}/preview", json={"criteria": {"member": {"x": 1}}}, headers=headers
    )
    assert bad.status_code == 422 and "criteria.member.x" in bad.json["error"]["fields"]
    built = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=headers)
    assert built.status_code == 201, built.json
    lst = built.json
    assert lst["n_entries"] == 1 and lst["number"] == 1 and lst["is_current"]
    assert lst["definition"]["targeting"] == OLD_AGE["targeting"] and len(lst["entries_hash"]) == 64
    detail = client.get(f"/api/v1/lists/{lst['id']}", headers=api_headers(make_user("viewer"))).json
    entry = detail["entries"]["items"][0]
    assert entry["household_id"] == scored[1].household_id and entry["position"] == 1
    assert entry["criteria_met"] == ["a member with age ≥ 65"] and entry["local_level"] == "upazila"
    assert entry["local_rank"] == 2 and entry["national_rank"] == 2
    assert detail["summary"]["n_entries"] == 1 and detail["summary"]["by_upazila"][0]["code"] == RURAL_UNION[:6]
    assert detail["entries"]["meta"] == {"page": 1, "per_page": 50, "total": 1, "pages": 1}
    assert "nid" not in str(detail).lower()
    other_area = client.get(f"/api/v1/lists/{lst['id']}?area=30", headers=headers).json
    assert other_area["entries"]["meta"]["total"] == 0
    lists = client.get(f"/api/v1/programmes/{programme['id']}/lists", headers=headers).json
    assert [x["id"] for x in lists] == [lst["id"]]


def test_list_entries_are_limited_to_the_callers_areas(client, officer, api_headers, scored, make_user):
    programme = _create(client, api_headers(officer), {**OLD_AGE, "criteria": None})
    lst = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=api_headers(officer)).json
    outside = api_headers(make_user("supervisor", areas=["30"]))
    body = client.get(f"/api/v1/lists/{lst['id']}", headers=outside).json
    assert body["entries"]["items"] == [] and body["summary"]["n_entries"] == 0
    response = client.get(f"/api/v1/lists/{lst['id']}?area=10", headers=outside)
    assert response.status_code == 403
    inside = client.get(f"/api/v1/lists/{lst['id']}", headers=api_headers(make_user("supervisor", areas=["10"])))
    assert inside.json["entries"]["meta"]["total"] == 3
    assert client.get(f"/api/v1/lists/{lst['id']}?per_page=0", headers=outside).status_code == 422
    assert client.get("/api/v1/lists/999999", headers=outside).status_code == 404


def test_build_without_a_score_run_is_409(client, officer, api_headers, households):
    programme = _create(client, api_headers(officer))
    response = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=api_headers(officer))
    assert response.status_code == 409 and "score run" in response.json["error"]["message"]


def _rows(response):
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_exports_mask_personal_data_by_role(client, officer, api_headers, scored, make_user):
    programme = _create(client, api_headers(officer), {**OLD_AGE, "criteria": None})
    lst = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=api_headers(officer)).json
    url = f"/api/v1/lists/{lst['id']}/export.csv"
    full = client.get(url, headers=api_headers(make_user("supervisor", areas=["10"])))
    assert full.status_code == 200 and full.headers["X-PII-Level"] == "full"
    assert full.mimetype == "text/csv" and "attachment" in full.headers["Content-Disposition"]
    rows = _rows(full)
    assert [r["household_id"] for r in rows] == [h.household_id for h in scored[:3]]
    assert rows[0]["head_nid"] == "1990123456700" and rows[0]["head_name_en"] == "Rahim Uddin"
    delivery = client.get(url, headers=api_headers(officer))
    rows = _rows(delivery)
    assert delivery.headers["X-PII-Level"] == "delivery" and rows[0]["head_name_en"] == "Rahim Uddin"
    assert rows[0]["head_nid"].endswith("700") and "1990123456700" not in delivery.get_data(as_text=True)
    assert "01712345670" not in delivery.get_data(as_text=True)
    masked = client.get(url, headers=api_headers(make_user("viewer")))
    text = masked.get_data(as_text=True)
    assert masked.headers["X-PII-Level"] == "masked"
    assert "Rahim" not in text and "রহিম" not in text and "1990123456700" not in text
    assert _rows(masked)[0]["head_name_en"] == "•••"
    xlsx = client.get(f"/api/v1/lists/{lst['id']}/export.xlsx", headers=api_headers(make_user("viewer")))
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx.data), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) == 4 and "Rahim Uddin" not in str(values)


def test_diff_household_programmes_and_overlap(client, officer, api_headers, scored, make_user):
    headers = api_headers(officer)
    programme = _create(client, headers, {**OLD_AGE, "criteria": None})
    first = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=headers).json
    client.put(f"/api/v1/programmes/{programme['id']}", json=OLD_AGE, headers=headers)
    second = client.post(f"/api/v1/programmes/{programme['id']}/lists", headers=headers).json
    diff = client.get(f"/api/v1/lists/{first['id']}/diff/{second['id']}", headers=headers).json
    assert diff["rule_changed"] and diff["counts"] == {"added": 0, "removed": 2, "kept": 1}
    assert {i["reason"] for i in diff["removed"]} == {"rule_changed"}
    assert diff["by_reason"] == {"added": {}, "removed": {"rule_changed": 2}}
    other = _create(client, headers, {**OLD_AGE, "name": "Other", "criteria": None})
    other_list = client.post(f"/api/v1/programmes/{other['id']}/lists", headers=headers).json
    response = client.get(f"/api/v1/lists/{first['id']}/diff/{other_list['id']}", headers=headers)
    assert response.status_code == 422 and "other" in response.json["error"]["fields"]

    listings = client.get(f"/api/v1/households/{scored[1].household_id}/programmes", headers=headers).json
    assert [(x["programme_name"], x["is_current"]) for x in listings] == [
        ("Other", True),
        ("Old Age Allowance", True),
        ("Old Age Allowance", False),
    ]
    viewer = api_headers(make_user("viewer"))
    assert client.get(f"/api/v1/households/{scored[1].household_id}/programmes", headers=viewer).status_code == 403
    overlap = client.get("/api/v1/programmes/overlap", headers=viewer).json
    assert overlap["households_by_programme_count"] == {"1": 2, "2": 1}
    assert overlap["pairs"][0]["households"] == 1 and "household_id" not in str(overlap)


def test_openapi_lists_the_programme_routes(client, make_user, api_headers):
    paths = client.get("/api/v1/openapi.json", headers=api_headers(make_user("viewer"))).json["paths"]
    for path in (
        "/api/v1/programmes",
        "/api/v1/programmes/{programme_id}",
        "/api/v1/programmes/{programme_id}/preview",
        "/api/v1/programmes/{programme_id}/lists",
        "/api/v1/lists/{list_id}",
        "/api/v1/lists/{list_id}/export.csv",
        "/api/v1/lists/{list_id}/export.xlsx",
        "/api/v1/lists/{list_id}/diff/{other_id}",
        "/api/v1/households/{household_id}/programmes",
    ):
        assert path in paths, path
