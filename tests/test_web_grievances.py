"""Grievance pages: queue with deadlines, intake form, case page and its actions, tasks, statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from models.base import utcnow
from registry import grievances as gr
from tests.registry.test_grievances import install_scores, open_case


@pytest.fixture
def officer(make_user):
    return make_user("grievance_officer", areas=["1004"])


def test_pages_need_login_and_role(client, make_user, login):
    assert client.get("/grievances").status_code == 302
    login(make_user("viewer"))
    assert client.get("/grievances").status_code == 403
    assert client.get("/grievances/stats").status_code == 200
    assert client.get("/verification-tasks").status_code == 403


def test_intake_form_records_a_case(client, db_session, officer, login, households):
    household = households.create()
    login(officer)
    form = client.get(f"/grievances/new?household_id={household.household_id}").get_data(as_text=True)
    assert household.household_id in form and "csrf_token" in form
    response = client.post(
        "/grievances/new",
        data={
            "channel": "union_office",
            "category": "exclusion",
            "household_id": household.household_id,
            "description": "We are poor and were left out of the old-age allowance.",
            "complainant_name": "Rokeya",
            "complainant_phone": "01912345678",
        },
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Give the complainant this reference: GR-" in page
    assert "Rokeya" not in page and "01912345678" not in page  # not assigned yet: contact masked


def test_intake_form_shows_errors(client, officer, login):
    login(officer)
    response = client.post(
        "/grievances/new",
        data={"channel": "web", "category": "data_error", "description": "x", "complainant_phone": "12"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "01XXXXXXXXX" in page


def test_queue_flags_overdue_cases(client, db_session, officer, login, households):
    household = households.create()
    late = open_case(officer, household)
    late.due_at = utcnow() - dt.timedelta(days=2)
    open_case(officer, household, category="payment")
    db_session.commit()
    login(officer)
    page = client.get("/grievances").get_data(as_text=True)
    assert late.reference in page and "overdue" in page and "days left" in page


def test_case_page_actions_and_timeline(client, db_session, officer, login, households):
    household = households.create()
    install_scores(db_session, {household: 33.3})
    case = open_case(officer, household)
    db_session.commit()
    login(officer)
    url = f"/grievances/{case.id}"
    page = client.get(url).get_data(as_text=True)
    assert "Timeline" in page and "33.3" in page and "Amina" not in page
    assert client.post(f"{url}/assign", data={"assignee": officer.username}).status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "Amina Begum" in page and "01712345678" in page and "Request field verification" in page
    client.post(f"{url}/request-verification", data={"instructions": "Measure the land."})
    client.post(f"{url}/close", data={"resolution_text": "Closing too early, this must fail."})
    page = client.get(url).get_data(as_text=True)
    assert "is still open" in page  # the conflict is explained, not a 500
    assert "verification requested" in page


def test_enumerator_task_queue(client, db_session, make_user, officer, login, households):
    household = households.create()
    case = open_case(officer, household)
    gr.assign_grievance(case, officer, actor=officer)
    task = gr.request_verification(case, actor=officer, instructions="Check the roof material.")
    db_session.commit()
    enumerator = make_user("enumerator", areas=["10040915"])
    login(enumerator)
    page = client.get("/verification-tasks").get_data(as_text=True)
    assert "Check the roof material." in page and household.household_id in page and "Amina" not in page
    response = client.post(
        f"/verification-tasks/{task.id}/complete", data={"finding": "no_change", "note": "Tin roof, as recorded."}
    )
    assert response.status_code == 302
    assert "No verification tasks here." in client.get("/verification-tasks").get_data(as_text=True)


def test_case_page_links_the_change_request_and_the_task_page_the_proposal_form(
    client, db_session, make_user, officer, login, households
):
    from registry import change_requests as crs

    household = households.create()
    case = open_case(officer, household)
    gr.assign_grievance(case, officer, actor=officer)
    gr.request_verification(case, actor=officer, instructions="Check the rooms.")
    enumerator = make_user("enumerator", areas=["10040915"])
    db_session.commit()
    login(enumerator)
    tasks = client.get("/verification-tasks").get_data(as_text=True)
    assert f"/households/{household.household_id}/propose" in tasks
    cr = crs.submit_change(
        enumerator,
        "edit_household",
        payload={"household": {"rooms": 1}},
        reason="verified",
        household_id=household.household_id,
        base_version=1,
    )
    db_session.commit()
    response = client.post(f"/grievances/{case.id}/link-change-request", data={"change_request_id": cr.id})
    assert response.status_code == 302 and response.headers["Location"].endswith("/verification-tasks")
    login(officer)
    page = client.get(f"/grievances/{case.id}").get_data(as_text=True)
    assert f'href="/change-requests/{cr.id}"' in page and "pending" in page


def test_grievance_officer_pages_show_only_the_households_of_their_cases(
    client, db_session, officer, login, households
):
    named, other = households.create(), households.create()
    open_case(officer, named)
    db_session.commit()
    login(officer)
    listing = client.get("/households").get_data(as_text=True)
    assert named.household_id in listing and other.household_id not in listing
    case_page = client.get(f"/grievances/{gr.list_grievances(officer).items[0].id}").get_data(as_text=True)
    assert f"/households/{named.household_id}" in case_page
    for path in ("", "/history", "/score", "/programmes"):
        status = client.get(f"/households/{named.household_id}{path}").status_code
        assert status == 200 or (path == "/score" and status == 404), (path, status)  # unscored here
        assert client.get(f"/households/{other.household_id}{path}").status_code == 403, path


def test_stats_page(client, make_user, officer, login, households):
    open_case(officer, households.create())
    login(make_user("supervisor", areas=["10"]))
    page = client.get("/grievances/stats?level=union").get_data(as_text=True)
    assert "Grievance statistics" in page and "10040915" in page and "Amina" not in page


def test_forms_carry_csrf_protection(app, db_session, officer, households):
    case = open_case(officer, households.create())
    db_session.commit()
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        client = app.test_client()
        client.post(
            "/login",
            data={"username": officer.username, "password": "correct horse battery", "csrf_token": _token(client)},
        )
        page = client.get(f"/grievances/{case.id}").get_data(as_text=True)
        assert 'name="csrf_token"' in page
        assert client.post(f"/grievances/{case.id}/assign", data={"assignee": officer.username}).status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def _token(client) -> str:
    import re

    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


# --- community validation pages ---------------------------------------------------------------


@pytest.fixture
def programme_officer(make_user, db_session):
    from tests.targeting.test_community_validation import MINISTRY

    user = make_user("programme_officer")
    user.ministry = MINISTRY
    db_session.flush()
    return user


@pytest.fixture
def population(db_session, households, programme_officer):
    from tests.targeting.test_community_validation import Population

    return Population(households, programme_officer)


def test_publish_object_decide_finalise_through_the_pages(
    client, db_session, population, programme_officer, login, make_user
):
    from targeting import community_validation as cv

    login(programme_officer)
    page_url = f"/lists/{population.list.id}/community-validation"
    assert "Publish for objections" in client.get(page_url).get_data(as_text=True)
    response = client.post(page_url, data={"area_code": "10040915", "objection_days": "30", "how_to_object": ""})
    assert response.status_code == 302
    (publication,) = cv.list_publications(population.list, programme_officer)
    pub_url = f"/publications/{publication.id}"
    client.post(
        f"{pub_url}/objections",
        data={"kind": "inclusion", "household_id": population.a[0].household_id, "reason": "Has a pucca house in town"},
    )
    page = client.get(pub_url).get_data(as_text=True)
    assert "Has a pucca house in town" in page and "Record decision" in page
    (objection,) = publication.objections
    client.post(
        f"/objections/{objection.id}/decision",
        data={"outcome": "upheld", "reference": "UP/7", "meeting_date": utcnow().date().isoformat()},
    )
    client.post(f"{pub_url}/finalise")
    assert "window" in client.get(pub_url).get_data(as_text=True)  # refused: the window is still open
    publication.objection_deadline = utcnow() - dt.timedelta(minutes=1)
    db_session.commit()
    response = client.post(f"{pub_url}/finalise")
    assert response.status_code == 302
    validated = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Validated list" in validated and population.a[0].household_id in validated and "UP/7" in validated
    login(make_user("viewer"))
    report = client.get(f"/lists/{population.list.id}/spot-check").get_data(as_text=True)
    assert "Override rates by union" in report and "10040915" in report


def test_notice_print_view_is_a4_and_never_shows_national_ids(
    client, db_session, population, programme_officer, login, make_user
):
    from targeting import community_validation as cv

    (publication,) = cv.publish_list(population.list, programme_officer, union_codes=["10040915"])
    db_session.commit()
    login(make_user("enumerator", areas=["10040915"]))
    html = client.get(f"/publications/{publication.id}/notice").get_data(as_text=True)
    assert "size: A4" in html and "@page" in html and "Rahim Uddin" in html and "Karim Uddin" in html
    assert html.index(population.a[0].household_id) < html.index(population.a[1].household_id)  # rank order
    nids = [m.nid_number for h in population.a for m in h.members if m.nid_number]
    assert nids and not any(nid in html for nid in nids)
    assert publication.objection_deadline.strftime("%d %B %Y") in html
    login(make_user("enumerator", areas=["30"]))
    assert client.get(f"/publications/{publication.id}/notice").status_code == 403


def test_programme_window_set_on_the_page_applies_to_publications(
    client, db_session, population, programme_officer, login, make_user
):
    from targeting import community_validation as cv

    login(programme_officer)
    page_url = f"/lists/{population.list.id}/community-validation"
    assert "stay open for objections for 30 days" in client.get(page_url).get_data(as_text=True)
    response = client.post(f"{page_url}/window", data={"window-window_days": "12"})
    assert response.status_code == 302 and population.programme.objection_days == 12
    assert "stay open for objections for 12 days" in client.get(page_url).get_data(as_text=True)
    client.post(page_url, data={"area_code": "10040915", "objection_days": "", "how_to_object": ""})
    (publication,) = cv.list_publications(population.list, programme_officer)
    assert publication.objection_days == 12
    login(make_user("enumerator", areas=["10040915"]))
    assert client.post(f"{page_url}/window", data={"window-window_days": "3"}).status_code == 403
    assert population.programme.objection_days == 12
