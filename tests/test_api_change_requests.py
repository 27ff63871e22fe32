"""The change-request API and the household diff endpoint: status codes and error bodies first."""

from __future__ import annotations

import io

import pytest

from models import ChangeRequest
from registry import change_requests as crs

BARISAL = "10"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def team(make_user, api_headers):
    users = {
        "enumerator": make_user("enumerator", areas=[BARISAL]),
        "enumerator2": make_user("enumerator", areas=[BARISAL]),
        "supervisor": make_user("supervisor", areas=[BARISAL]),
        "supervisor2": make_user("supervisor", areas=[BARISAL]),
        "dhaka_supervisor": make_user("supervisor", areas=["30"]),
        "admin": make_user("admin"),
        "viewer": make_user("viewer"),
        "programme_officer": make_user("programme_officer"),
        "statistician": make_user("statistician"),
        "grievance_officer": make_user("grievance_officer", areas=[BARISAL]),
    }
    return {name: (user, api_headers(user)) for name, user in users.items()}


def propose(client, headers, target, **body):
    payload = {
        "kind": "edit_household",
        "household_id": target.household_id,
        "base_version": target.current_version,
        "reason": "field visit",
        "household": {"rooms": 3},
    }
    payload.update(body)
    payload = {k: v for k, v in payload.items() if v is not None}
    return client.post("/api/v1/change-requests", json=payload, headers=headers)


def test_requires_a_bearer_token(client):
    assert client.get("/api/v1/change-requests").status_code == 401
    assert client.post("/api/v1/change-requests/1/approve").status_code == 401


@pytest.mark.parametrize("role", ["viewer", "programme_officer", "statistician", "admin"])
def test_roles_without_access_get_403_saying_why(client, team, households, role):
    household = households.create()
    _user, headers = team[role]
    cr_id = propose(client, team["enumerator"][1], household).json["id"]
    for method, url in (
        ("get", "/api/v1/change-requests"),
        ("get", f"/api/v1/change-requests/{cr_id}"),
        ("post", f"/api/v1/change-requests/{cr_id}/approve"),
        ("post", "/api/v1/change-requests"),
    ):
        response = getattr(client, method)(url, headers=headers, json={})
        assert response.status_code == 403, (method, url)
        assert "has no access to change requests" in response.json["error"]["message"]


def test_submit_then_approve(client, team, households):
    household = households.create()
    response = propose(client, team["enumerator"][1], household, household={"rooms": 4, "poultry": 60})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "pending" and body["stage"] == "awaiting_review" and body["base_version"] == 1
    assert body["diff"]["household"] == [
        {"field": "rooms", "old": 2, "new": 4},
        {"field": "poultry", "old": 6, "new": 60},
    ]
    assert body["warning_details"] == [] and body["duplicate_candidates"] == []
    response = client.post(f"/api/v1/change-requests/{body['id']}/approve", headers=team["supervisor"][1])
    assert response.status_code == 200, response.json
    assert response.json["status"] == "approved" and response.json["applied_version"] == 2
    versions = client.get(f"/api/v1/households/{household.household_id}/versions", headers=team["supervisor"][1]).json
    assert [v["version_no"] for v in versions] == [1, 2] and versions[1]["source_ref"] == f"CR-{body['id']}"
    assert versions[1]["reason"] == "field visit" and versions[1]["created_by"] == team["supervisor"][0].username
    current = client.get(f"/api/v1/households/{household.household_id}", headers=team["supervisor"][1]).json
    assert current["rooms"] == 4 and current["version"] == 2


def test_enumerator_cannot_approve_and_submitter_never_approves(client, team, households):
    household = households.create()
    cr_id = propose(client, team["supervisor"][1], household).json["id"]
    response = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["enumerator"][1])
    assert response.status_code == 403 and "supervisor" in response.json["error"]["message"]
    response = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1])
    assert response.status_code == 403 and "four eyes" in response.json["error"]["message"]
    response = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["admin"][1])
    assert response.status_code == 403


def test_area_scoping_over_http(client, team, households):
    household = households.create()
    cr_id = propose(client, team["enumerator"][1], household).json["id"]
    headers = team["dhaka_supervisor"][1]
    assert client.get(f"/api/v1/change-requests/{cr_id}", headers=headers).status_code == 403
    response = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=headers)
    assert response.status_code == 403 and "outside your assigned areas" in response.json["error"]["message"]
    assert client.get("/api/v1/change-requests?area=10", headers=headers).status_code == 403
    listed = client.get("/api/v1/change-requests?status=pending", headers=headers).json
    assert cr_id not in {i["id"] for i in listed["items"]}
    # Proposing outside one's area is refused too.
    dhaka = households.create(union_code=households.dhaka_union())
    assert propose(client, team["enumerator"][1], dhaka).status_code == 403


def test_validation_errors_name_every_field(client, team, households):
    household = households.create()
    headers = team["enumerator"][1]
    response = client.post("/api/v1/change-requests", json={"kind": "split", "reason": "x"}, headers=headers)
    assert response.status_code == 422
    assert {"household_id", "base_version", "line_nos", "new_head_line_no", "reason"} <= set(
        response.json["error"]["fields"]
    )
    response = propose(client, headers, household, household={"rooms": -1, "colour": "blue"}, extra=1)
    assert response.status_code == 422
    assert {"household.colour", "extra"} <= set(response.json["error"]["fields"])
    response = propose(client, headers, household, household={"rooms": -1, "electricity": 7})
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"household.rooms", "household.electricity"}
    response = propose(
        client, headers, household, kind="edit_member", line_no=2, member={"age_years": 300}, household=None
    )
    assert response.status_code == 422 and "members.2.age_years" in response.json["error"]["fields"]
    response = propose(client, headers, household, kind="edit_member", line_no=9, member={"age_years": 3})
    assert response.status_code == 422 and "line_no" in response.json["error"]["fields"]


def test_second_submission_gets_409_naming_the_pending_request(client, team, households):
    household = households.create()
    first = propose(client, team["enumerator"][1], household).json["id"]
    response = propose(client, team["supervisor"][1], household, household={"cattle": 4})
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "pending_exists" and error["details"]["pending_change_request"] == first
    assert str(first) in error["message"]


def test_stale_approval_is_409_then_rebase(client, db_session, team, households):
    household = households.create()
    enumerator = team["enumerator"][0]
    first = propose(client, team["enumerator"][1], household, household={"rooms": 5}).json["id"]
    second = crs.submit_change(
        enumerator,
        "edit_household",
        household_id=household.household_id,
        base_version=1,
        payload={"household": {"cattle": 8}},
        reason="later visit",
        single_pending=False,
    ).id
    db_session.commit()
    assert client.post(f"/api/v1/change-requests/{first}/approve", headers=team["supervisor"][1]).status_code == 200
    response = client.post(f"/api/v1/change-requests/{second}/approve", headers=team["supervisor"][1])
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "stale" and "version 2" in error["message"]
    assert error["details"]["current_version"] == 2 and error["details"]["changed_since_base"]["household_fields"] == 1
    detail = client.get(f"/api/v1/change-requests/{second}", headers=team["supervisor"][1]).json
    assert detail["status"] == "stale" and detail["changed_since_base"]["household"][0]["field"] == "rooms"
    assert client.post(f"/api/v1/change-requests/{second}/rebase", headers=team["supervisor"][1]).status_code == 403
    response = client.post(f"/api/v1/change-requests/{second}/rebase", headers=team["enumerator"][1])
    assert response.status_code == 200, response.json
    assert response.json["change_request"]["base_version"] == 2
    assert response.json["changed_since_base"]["household"] == [{"field": "rooms", "old": 2, "new": 5}]
    response = client.post(f"/api/v1/change-requests/{second}/approve", headers=team["supervisor2"][1])
    assert response.status_code == 200 and response.json["applied_version"] == 3


def test_reject_needs_a_reason_and_withdraw_is_the_submitters(client, team, households):
    cr_id = propose(client, team["enumerator"][1], households.create()).json["id"]
    response = client.post(f"/api/v1/change-requests/{cr_id}/reject", json={}, headers=team["supervisor"][1])
    assert response.status_code == 422 and "reason" in response.json["error"]["fields"]
    assert client.post(f"/api/v1/change-requests/{cr_id}/withdraw", headers=team["supervisor"][1]).status_code == 403
    response = client.post(
        f"/api/v1/change-requests/{cr_id}/reject",
        json={"reason": "photo does not match"},
        headers=team["supervisor"][1],
    )
    assert response.status_code == 200 and response.json["decision_reason"] == "photo does not match"
    response = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1])
    assert response.status_code == 409 and response.json["error"]["code"] == "not_pending"
    other = propose(client, team["enumerator"][1], households.create()).json["id"]
    response = client.post(f"/api/v1/change-requests/{other}/withdraw", headers=team["enumerator"][1])
    assert response.status_code == 200 and response.json["status"] == "withdrawn"


def test_high_risk_needs_two_approvers_over_http(client, team, households):
    household = households.create()
    response = propose(
        client, team["enumerator"][1], household, kind="deactivate", inactive_reason="dissolved", household=None
    )
    assert response.status_code == 201 and response.json["high_risk"] and response.json["approvals_required"] == 2
    cr_id = response.json["id"]
    first = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1]).json
    assert first["status"] == "pending" and first["stage"] == "awaiting_second_approval"
    again = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1])
    assert again.status_code == 403
    second = client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor2"][1]).json
    assert second["status"] == "approved" and second["first_approved_by"] == team["supervisor"][0].username


def test_nid_conflict_blocks_approval_with_409_naming_the_other_household(client, team, households):
    holder = households.create()
    household = households.create()
    newcomer = {
        "name_en": "Jamal Hossain",
        "name_bn": "জামাল হোসেন",
        "age_years": 30,
        "sex": 1,
        "relation_to_head": 7,
        "marital_status": 1,
        "religion": 1,
        "ethnicity": 1,
        "education_level": 8,
        "currently_enrolled": False,
        "occupation": 3,
        "pregnant_or_lactating": False,
        "nid_number": holder.members[0].nid_number,
    }
    response = propose(client, team["enumerator"][1], household, kind="add_member", member=newcomer, household=None)
    assert response.status_code == 201, response.json
    assert response.json["nid_conflict_details"][0]["household_id"] == holder.household_id
    response = client.post(f"/api/v1/change-requests/{response.json['id']}/approve", headers=team["supervisor"][1])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "nid_conflict"
    assert response.json["error"]["details"]["nid_conflicts"][0]["household_id"] == holder.household_id


def test_list_filters_and_sorting(client, team, households):
    a = propose(client, team["enumerator"][1], households.create()).json["id"]
    b = propose(client, team["supervisor"][1], households.create()).json["id"]
    headers = team["supervisor2"][1]
    body = client.get("/api/v1/change-requests?status=pending&area=10", headers=headers).json
    ids = [i["id"] for i in body["items"]]
    assert ids.index(a) < ids.index(b)  # oldest first
    newest = [i["id"] for i in client.get("/api/v1/change-requests?sort=newest", headers=headers).json["items"]]
    assert newest.index(b) < newest.index(a)
    mine = client.get("/api/v1/change-requests?submitted_by=me", headers=team["enumerator"][1]).json["items"]
    assert {i["id"] for i in mine} == {a}
    by_name = client.get(
        f"/api/v1/change-requests?submitted_by={team['supervisor'][0].username}", headers=headers
    ).json["items"]
    assert {i["id"] for i in by_name} == {b}
    response = client.get("/api/v1/change-requests?status=done&per_page=0", headers=headers)
    assert response.status_code == 422 and set(response.json["error"]["fields"]) == {"status", "per_page"}
    assert client.get("/api/v1/change-requests", headers=team["grievance_officer"][1]).status_code == 200


def test_bulk_lists_successes_and_failures(client, db_session, team, households):
    good = propose(client, team["enumerator"][1], households.create()).json["id"]
    own = propose(client, team["supervisor"][1], households.create()).json["id"]
    response = client.post(
        "/api/v1/change-requests/bulk",
        json={"action": "approve", "ids": [good, own, 999999]},
        headers=team["supervisor"][1],
    )
    assert response.status_code == 200
    assert [s["id"] for s in response.json["succeeded"]] == [good]
    assert {f["id"]: f["code"] for f in response.json["failed"]} == {own: "forbidden", 999999: "not_found"}
    assert db_session.get(ChangeRequest, good).status == "approved"
    response = client.post(
        "/api/v1/change-requests/bulk", json={"action": "reject", "ids": [own]}, headers=team["supervisor2"][1]
    )
    assert response.status_code == 422 and "reason" in response.json["error"]["fields"]


def test_evidence_upload_and_download(client, team, households):
    cr_id = propose(client, team["enumerator"][1], households.create()).json["id"]
    url = f"/api/v1/change-requests/{cr_id}/evidence"
    response = client.post(
        url,
        data={"file": (io.BytesIO(PNG), "photo.png")},
        headers=team["enumerator"][1],
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.json
    evidence = response.json
    assert evidence["content_type"] == "image/png" and evidence["size_bytes"] == len(PNG)
    response = client.post(
        url,
        data={"file": (io.BytesIO(b"<?php evil"), "photo.png")},
        headers=team["enumerator"][1],
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "file" in response.json["error"]["fields"]
    response = client.post(url, data={}, headers=team["enumerator"][1], content_type="multipart/form-data")
    assert response.status_code == 422
    download = client.get(f"{url}/{evidence['id']}", headers=team["supervisor"][1])
    assert download.status_code == 200 and download.data == PNG and download.mimetype == "image/png"
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()
    assert client.get(f"{url}/{evidence['id']}", headers=team["dhaka_supervisor"][1]).status_code == 403
    assert client.get(f"{url}/4242", headers=team["supervisor"][1]).status_code == 404
    detail = client.get(f"/api/v1/change-requests/{cr_id}", headers=team["supervisor"][1]).json
    assert [e["filename"] for e in detail["evidence"]] == ["photo.png"]


def test_unknown_change_request_is_404(client, team):
    response = client.get("/api/v1/change-requests/424242", headers=team["supervisor"][1])
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_household_diff_endpoint(client, team, households):
    household = households.create()
    cr_id = propose(
        client,
        team["enumerator"][1],
        household,
        kind="edit_member",
        line_no=1,
        member={"name_en": "Rahim Uddin Sarkar", "education_level": 10},
        household=None,
    ).json["id"]
    assert client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1]).status_code == 200
    url = f"/api/v1/households/{household.household_id}/diff"
    body = client.get(f"{url}?from=1&to=2", headers=team["supervisor"][1]).json
    assert (body["from_version"], body["to_version"]) == (1, 2) and body["to"]["source_ref"] == f"CR-{cr_id}"
    assert body["diff"]["members"]["changed"] == [
        {
            "line_no": 1,
            "changes": [
                {"field": "name_en", "old": "Rahim Uddin", "new": "Rahim Uddin Sarkar"},
                {"field": "education_level", "old": 5, "new": 10},
            ],
        }
    ]
    assert client.get(f"{url}?from=1", headers=team["supervisor"][1]).json["to_version"] == 2
    masked = client.get(f"{url}?from=1&to=2", headers=team["programme_officer"][1]).json
    assert masked["diff"]["members"]["changed"][0]["changes"][0]["new"] == "•••"
    assert client.get(f"{url}?from=1", headers=team["viewer"][1]).status_code == 403
    assert client.get(f"{url}?from=1", headers=team["dhaka_supervisor"][1]).status_code == 403
    response = client.get(url, headers=team["supervisor"][1])
    assert response.status_code == 422 and "from" in response.json["error"]["fields"]
    assert client.get(f"{url}?from=7", headers=team["supervisor"][1]).status_code == 404


def test_as_of_read_through_the_api(client, team, households):
    household = households.create()
    cr_id = propose(client, team["enumerator"][1], household).json["id"]
    client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=team["supervisor"][1])
    versions = client.get(f"/api/v1/households/{household.household_id}/versions", headers=team["supervisor"][1]).json
    first_at = versions[0]["created_at"]
    body = client.get(
        f"/api/v1/households/{household.household_id}",
        query_string={"as_of": first_at},
        headers=team["supervisor"][1],
    ).json
    assert body["version"] == 1 and body["rooms"] == 2


def test_openapi_lists_the_change_request_paths(client, team):
    doc = client.get("/api/v1/openapi.json", headers=team["supervisor"][1]).json
    for path in (
        "/api/v1/change-requests",
        "/api/v1/change-requests/{change_request_id}",
        "/api/v1/change-requests/{change_request_id}/approve",
        "/api/v1/change-requests/bulk",
        "/api/v1/households/{household_id}/diff",
    ):
        assert path in doc["paths"], path


#: Expected status per role for: list, read, submit, approve, reject, withdraw, re-base, bulk approve,
#: attach evidence (author = the submitter).
PERMISSIONS = {
    "author": (200, 200, 201, 403, 403, 200, 200, 403, 201),
    "enumerator": (200, 200, 201, 403, 403, 403, 403, 403, 403),
    "supervisor": (200, 200, 201, 200, 200, 403, 403, 200, 403),
    # Read 403: a grievance officer opens only change requests of their cases (tests/test_api_grievances.py).
    "grievance_officer": (200, 403, 403, 403, 403, 403, 403, 403, 403),
    "dhaka_supervisor": (200, 403, 403, 403, 403, 403, 403, 200, 403),
    "viewer": (403, 403, 403, 403, 403, 403, 403, 403, 403),
    "statistician": (403, 403, 403, 403, 403, 403, 403, 403, 403),
    "programme_officer": (403, 403, 403, 403, 403, 403, 403, 403, 403),
    "admin": (403, 403, 403, 403, 403, 403, 403, 403, 403),
}


@pytest.mark.parametrize("role", sorted(PERMISSIONS))
def test_every_role_and_action(client, db_session, team, households, role):
    author, author_headers = team["enumerator"]
    headers = {"author": author_headers, "enumerator": team["enumerator2"][1]}.get(role) or team[role][1]
    expected = PERMISSIONS[role]

    def fresh():
        return propose(client, author_headers, households.create()).json["id"]

    def outdated():
        """A pending request of the author's whose household has moved on (so it can be re-based)."""
        household = households.create()
        cr_id = propose(client, author_headers, household).json["id"]
        other = crs.submit_change(
            team["supervisor2"][0],
            "edit_household",
            household_id=household.household_id,
            base_version=1,
            payload={"household": {"cattle": 9}},
            reason="another visit",
            single_pending=False,
        )
        crs.approve_change(other.id, team["supervisor"][0])
        db_session.commit()
        return cr_id

    cr_id = fresh()
    bulk_id = fresh()
    bulk = client.post("/api/v1/change-requests/bulk", json={"action": "approve", "ids": [bulk_id]}, headers=headers)
    got = [
        client.get("/api/v1/change-requests", headers=headers).status_code,
        client.get(f"/api/v1/change-requests/{cr_id}", headers=headers).status_code,
        propose(client, headers, households.create()).status_code,
        client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=headers).status_code,
        client.post(
            f"/api/v1/change-requests/{fresh()}/reject", json={"reason": "not plausible"}, headers=headers
        ).status_code,
        client.post(f"/api/v1/change-requests/{fresh()}/withdraw", headers=headers).status_code,
        client.post(f"/api/v1/change-requests/{outdated()}/rebase", headers=headers).status_code,
        bulk.status_code,
        client.post(
            f"/api/v1/change-requests/{fresh()}/evidence",
            data={"file": (io.BytesIO(PNG), "photo.png")},
            content_type="multipart/form-data",
            headers=headers,
        ).status_code,
    ]
    assert tuple(got) == expected
    if bulk.status_code == 403:
        assert "may not review" in bulk.json["error"]["message"] or "no access" in bulk.json["error"]["message"]
    elif role == "supervisor":
        assert [s["id"] for s in bulk.json["succeeded"]] == [bulk_id] and bulk.json["failed"] == []
    else:  # a supervisor of another area: the item fails on its own, saying why
        assert bulk.json["succeeded"] == [] and bulk.json["failed"][0]["code"] == "forbidden"
        assert "outside your assigned areas" in bulk.json["failed"][0]["message"]


def test_an_imported_household_reads_the_same_before_and_after_its_first_change(client, team, tmp_path, db_session):
    """Version 1 of an imported household is stored by reference (the current tables) until its first
    change; history, diffs and as-of reads through the API cannot tell."""
    from registry.households import get_household
    from registry.importer import import_files
    from tests.registry.test_importer import good, write_files

    data = good(1)
    import_files(*write_files(tmp_path, data), actor=None)
    household = get_household(data[0][0]["household_id"])
    base = f"/api/v1/households/{household.household_id}"
    headers = team["supervisor"][1]
    before = client.get(f"{base}/versions/1", headers=headers).json
    assert before["version"] == 1 and before["rooms"] == household.rooms
    assert before == {**client.get(base, headers=headers).json, "version_created_at": before["version_created_at"]}

    cr_id = propose(client, team["enumerator"][1], household, household={"rooms": household.rooms + 2}).json["id"]
    assert client.post(f"/api/v1/change-requests/{cr_id}/approve", headers=headers).status_code == 200
    assert client.get(f"{base}/versions/1", headers=headers).json == before
    diff = client.get(f"{base}/diff?from=1&to=2", headers=headers).json["diff"]
    assert diff["household"] == [{"field": "rooms", "old": before["rooms"], "new": before["rooms"] + 2}]
    as_of = client.get(base, query_string={"as_of": before["version_created_at"]}, headers=headers).json
    assert as_of["version"] == 1 and as_of["rooms"] == before["rooms"]


def test_bad_list_items_beside_a_schema_error_are_a_422_naming_each_item(client, team):
    """Marshmallow keys a list's bad items by index next to "_schema": the answer must still be JSON."""
    response = client.post(
        "/api/v1/change-requests",
        json={"kind": "new_household", "reason": "new family", "household": {"union_code": BARISAL}, "members": [1, 2]},
        headers=team["enumerator"][1],
    )
    assert response.status_code == 422, response.data[:300]
    members = response.json["error"]["fields"]["members"]
    assert members["0"] == members["1"] == ["Not a valid mapping type."]
    assert "_schema" in members
