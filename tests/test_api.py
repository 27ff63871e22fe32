"""The JSON API: authentication, error shape, OpenAPI, households with scoping and masking."""


def test_api_requires_a_bearer_token(client):
    response = client.get("/api/v1/households")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer sr_nonsense"}).status_code == 401


def test_openapi_document_is_generated(client, make_user, api_headers):
    doc = client.get("/api/v1/openapi.json", headers=api_headers(make_user("viewer"))).json
    assert doc["info"]["title"]
    assert "/api/v1/households/{household_id}" in doc["paths"]
    assert "Household" in doc["components"]["schemas"]


def test_me(client, make_user, api_headers):
    user = make_user("supervisor", areas=["30"])
    assert client.get("/api/v1/me", headers=api_headers(user)).json == {
        "username": user.username,
        "full_name": None,
        "role": "supervisor",
        "areas": ["30"],
    }


def test_household_detail_for_supervisor_in_area(client, make_user, api_headers, households):
    household = households.create()
    user = make_user("supervisor", areas=["10"])
    body = client.get(f"/api/v1/households/{household.household_id}", headers=api_headers(user)).json
    assert body["version"] == 1 and body["rooms"] == 2
    assert body["members"][0]["name_bn"] == "রহিম উদ্দিন"
    assert body["members"][0]["nid_number"] == household.members[0].nid_number


def test_supervisor_outside_area_gets_403_saying_why(client, make_user, api_headers, households):
    household = households.create()
    user = make_user("supervisor", areas=["30"])
    response = client.get(f"/api/v1/households/{household.household_id}", headers=api_headers(user))
    assert response.status_code == 403
    assert "outside your assigned areas" in response.json["error"]["message"]


def test_programme_officer_sees_masked_personal_data(client, make_user, api_headers, households):
    household = households.create()
    body = client.get(
        f"/api/v1/households/{household.household_id}", headers=api_headers(make_user("programme_officer"))
    ).json
    member = body["members"][0]
    assert member["name_bn"] == "•••" and member["nid_number"].endswith(household.members[0].nid_number[-3:])
    assert household.members[0].nid_number not in str(body)


def test_viewer_cannot_open_households(client, make_user, api_headers, households):
    household = households.create()
    response = client.get(f"/api/v1/households/{household.household_id}", headers=api_headers(make_user("viewer")))
    assert response.status_code == 403


def test_unknown_household_is_404(client, make_user, api_headers):
    response = client.get("/api/v1/households/10040915-999999", headers=api_headers(make_user("admin")))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_bad_query_is_422_naming_the_field(client, make_user, api_headers):
    response = client.get("/api/v1/households?page=0&area=abc", headers=api_headers(make_user("admin")))
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"page", "area"}


def test_household_list_is_scoped_to_the_users_areas(client, make_user, api_headers, households):
    households.create()
    dhaka = households.create(union_code=households.dhaka_union())
    body = client.get(
        "/api/v1/households?per_page=500", headers=api_headers(make_user("enumerator", areas=["30"]))
    ).json
    ids = {i["household_id"] for i in body["items"]}
    assert dhaka.household_id in ids and all(i.startswith("30") for i in ids)


def test_versions_and_as_of(client, make_user, api_headers, households):
    household = households.create()
    headers = api_headers(make_user("admin"))
    versions = client.get(f"/api/v1/households/{household.household_id}/versions", headers=headers).json
    assert [v["version_no"] for v in versions] == [1]
    assert client.get(f"/api/v1/households/{household.household_id}/versions/1", headers=headers).json["version"] == 1
    assert client.get(f"/api/v1/households/{household.household_id}/versions/2", headers=headers).status_code == 404
    old = client.get(f"/api/v1/households/{household.household_id}?as_of=2000-01-01T00:00:00Z", headers=headers)
    assert old.status_code == 404 and "not registered yet" in old.json["error"]["message"]
    bad = client.get(f"/api/v1/households/{household.household_id}?as_of=yesterday", headers=headers)
    assert bad.status_code == 422 and "as_of" in bad.json["error"]["fields"]


def test_unexpected_errors_show_no_stack_trace(app, client, make_user, api_headers, monkeypatch):
    from registry import households as hh

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(hh, "list_households", boom)
    response = client.get("/api/v1/households", headers=api_headers(make_user("admin")))
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.json["error"]["code"] == "internal_error"


def test_healthz_needs_no_login(client):
    assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
