"""Pages: login required, CSRF, browsing and household pages with masking."""


def test_pages_require_login(client):
    response = client.get("/households")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_and_browse(client, make_user, login, households):
    household = households.create()
    login(make_user("supervisor", areas=["10"]))
    page = client.get("/households?area=10").get_data(as_text=True)
    assert household.household_id in page and "Barishal" in page or "Barisal" in page
    detail = client.get(f"/households/{household.household_id}").get_data(as_text=True)
    assert "রহিম উদ্দিন" in detail and "Version history" in detail
    # The household page leads to "why this score" and to the programmes the household is on.
    for link in (f"/households/{household.household_id}/score", f"/households/{household.household_id}/programmes"):
        assert f'href="{link}"' in detail and client.get(link).status_code == 200


def test_wrong_password_is_refused(client, make_user):
    user = make_user("viewer")
    response = client.post("/login", data={"username": user.username, "password": "not the password"})
    assert response.status_code == 200
    assert "Unknown username or wrong password" in response.get_data(as_text=True)


def test_household_page_outside_area_is_403(client, make_user, login, households):
    household = households.create()
    login(make_user("enumerator", areas=["30"]))
    assert client.get(f"/households/{household.household_id}").status_code == 403


def test_programme_officer_sees_no_names(client, make_user, login, households):
    household = households.create()
    login(make_user("programme_officer"))
    detail = client.get(f"/households/{household.household_id}").get_data(as_text=True)
    assert "রহিম উদ্দিন" not in detail and household.members[0].nid_number not in detail


def test_unknown_page_is_html_404(client, make_user, login):
    login(make_user("admin"))
    response = client.get("/nope")
    assert response.status_code == 404 and "<html" in response.get_data(as_text=True)


def test_login_form_carries_csrf_protection(app, db_session, make_user):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        client = app.test_client()
        user = make_user("viewer")
        assert 'name="csrf_token"' in client.get("/login").get_data(as_text=True)
        response = client.post("/login", data={"username": user.username, "password": "correct horse battery"})
        assert response.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
