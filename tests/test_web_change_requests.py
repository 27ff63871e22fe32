"""Pages: proposal forms, the review queue, the request page with its diff and buttons, history."""

from __future__ import annotations

import io
import re

import pytest

from models import ChangeRequest
from registry import change_requests as crs
from registry import households as hh

BARISAL = "10"


@pytest.fixture
def staff(make_user):
    return {
        "enumerator": make_user("enumerator", areas=[BARISAL]),
        "supervisor": make_user("supervisor", areas=[BARISAL]),
        "dhaka_supervisor": make_user("supervisor", areas=["30"]),
        "viewer": make_user("viewer"),
        "programme_officer": make_user("programme_officer"),
    }


def submit(user, household, **changes):
    return crs.submit_change(
        user,
        "edit_household",
        household_id=household.household_id,
        base_version=household.current_version,
        payload={"household": changes or {"rooms": 3}},
        reason="field visit",
    )


def test_queue_needs_a_role_with_access(client, login, staff):
    assert client.get("/change-requests").status_code == 302  # to the sign-in page
    login(staff["viewer"])
    response = client.get("/change-requests")
    assert response.status_code == 403 and "no access to change requests" in response.get_data(as_text=True)


def test_queue_shows_the_areas_pending_requests_with_flags(client, login, staff, households):
    household = households.create()
    cr = crs.submit_change(
        staff["enumerator"],
        "deactivate",
        household_id=household.household_id,
        base_version=1,
        payload={"inactive_reason": "migrated"},
        reason="moved away",
    )
    login(staff["supervisor"])
    page = client.get("/change-requests").get_data(as_text=True)
    assert f'value="{cr.id}"' in page and household.household_id in page
    assert "two approvals" in page and "Approve selected" in page
    client.post("/logout")
    login(staff["dhaka_supervisor"])
    other = client.get("/change-requests").get_data(as_text=True)
    assert household.household_id not in other and f'/change-requests/{cr.id}"' not in other


def test_propose_form_submit_and_review_flow(client, login, staff, households, db_session):
    household = households.create()
    login(staff["enumerator"])
    form = client.get(f"/households/{household.household_id}/propose").get_data(as_text=True)
    assert 'name="rooms"' in form and 'name="base_version" value="1"' in form
    data = {
        k: ("" if v is None else v)
        for k, v in hh.state_view(hh.current_version_of(household), can_see_pii=True).items()
        if k != "members"
    }
    data.update(
        {
            "rooms": "4",
            "toilet_shared": "0",
            "reason": "new room built",
            "base_version": "1",
            "evidence": (io.BytesIO(b"%PDF-1.4 test"), "receipt.pdf"),
        }
    )
    data = {k: ("1" if v is True else "0" if v is False else v) for k, v in data.items()}
    response = client.post(
        f"/households/{household.household_id}/propose?kind=edit_household",
        data=data,
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    cr = db_session.query(ChangeRequest).filter_by(household_pk=household.id).one()
    assert cr.payload == {"household": {"rooms": 4}} and len(cr.evidence) == 1
    # The submitter sees no review buttons on their own request.
    page = client.get(f"/change-requests/{cr.id}").get_data(as_text=True)
    assert "Approve and apply" not in page and "Withdraw" in page
    client.post("/logout")
    login(staff["supervisor"])
    page = client.get(f"/change-requests/{cr.id}").get_data(as_text=True)
    assert "Approve and apply" in page and "receipt.pdf" in page and "side by side" in page
    response = client.post(f"/change-requests/{cr.id}/approve")
    assert response.status_code == 302
    assert hh.get_household(household.household_id).rooms == 4
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "now at version 2" in page


def test_propose_form_shows_field_errors(client, login, staff, households):
    household = households.create()
    login(staff["enumerator"])
    response = client.post(
        f"/households/{household.household_id}/propose?kind=edit_member",
        data={"line_no": "2", "m-age_years": "300", "m-name_en": "Rahima", "reason": "typo", "base_version": "1"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "members.2.age_years" in page and "Please correct the fields" in page


def test_second_proposal_is_told_which_request_is_pending(client, login, staff, households):
    household = households.create()
    first = submit(staff["supervisor"], household)
    login(staff["enumerator"])
    response = client.post(
        f"/households/{household.household_id}/propose?kind=deactivate",
        data={"inactive_reason": "dissolved", "reason": "gone", "base_version": "1"},
    )
    assert response.status_code == 409 and f"({first.id}," in response.get_data(as_text=True)


def test_propose_outside_area_or_by_a_supervisor_only_role_is_refused(client, login, staff, households):
    household = households.create(union_code=households.dhaka_union())
    login(staff["enumerator"])
    assert client.get(f"/households/{household.household_id}/propose").status_code == 403
    client.post("/logout")
    login(staff["programme_officer"])
    assert client.get(f"/households/{households.create().household_id}/propose").status_code == 403


def test_reject_needs_a_reason_on_the_page(client, login, staff, households):
    cr = submit(staff["enumerator"], households.create())
    login(staff["supervisor"])
    response = client.post(f"/change-requests/{cr.id}/reject", data={"reason": ""}, follow_redirects=True)
    assert "needs a reason" in response.get_data(as_text=True)
    response = client.post(f"/change-requests/{cr.id}/reject", data={"reason": "no such room"})
    assert response.status_code == 302


def test_stale_request_page_explains_and_offers_rebase(client, login, staff, households, db_session):
    household = households.create()
    first = submit(staff["enumerator"], household, rooms=5)
    second = crs.submit_change(
        staff["enumerator"],
        "edit_household",
        household_id=household.household_id,
        base_version=1,
        payload={"household": {"cattle": 9}},
        reason="later",
        single_pending=False,
    )
    crs.approve_change(first.id, staff["supervisor"])
    db_session.commit()
    login(staff["supervisor"])
    page = client.post(f"/change-requests/{second.id}/approve", follow_redirects=True).get_data(as_text=True)
    assert "Not applied" in page and "made against version 1" in page
    client.post("/logout")
    login(staff["enumerator"])
    page = client.get(f"/change-requests/{second.id}").get_data(as_text=True)
    assert "Re-base on the current version" in page and "Changed since this request was made" in page
    page = client.post(f"/change-requests/{second.id}/rebase", follow_redirects=True).get_data(as_text=True)
    assert "Re-based on version 2" in page


def test_bulk_form(client, login, staff, households):
    a = submit(staff["enumerator"], households.create())
    b = submit(staff["supervisor"], households.create())
    login(staff["supervisor"])
    page = client.post(
        "/change-requests/bulk", data={"ids": [str(a.id), str(b.id)], "action": "approve"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "1 request(s) done" in page and "four eyes" in page


def test_new_household_form(client, login, staff, households, db_session):
    login(staff["enumerator"])
    assert 'name="m1-name_bn"' in client.get("/change-requests/new-household").get_data(as_text=True)
    record = households.record()
    record.pop("household_id")
    data = {k: ("1" if v is True else "0" if v is False else "" if v is None else str(v)) for k, v in record.items()}
    head = households.members()[0]
    data.update(
        {
            f"m1-{k}": ("1" if v is True else "0" if v is False else "" if v is None else str(v))
            for k, v in head.items()
            if k != "line_no"
        }
    )
    data["reason"] = "not in the census listing"
    response = client.post("/change-requests/new-household?members=2", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    cr = db_session.query(ChangeRequest).filter_by(kind="new_household").one()
    assert [m["line_no"] for m in cr.proposed["members"]] == [1]
    bad = dict(data, rooms="99")
    response = client.post("/change-requests/new-household?members=2", data=bad)
    assert response.status_code == 422 and "household.rooms" in response.get_data(as_text=True)


def test_history_page_with_diff_and_as_of(client, login, staff, households):
    household = households.create()
    crs.approve_change(submit(staff["enumerator"], household, rooms=6).id, staff["supervisor"])
    login(staff["supervisor"])
    page = client.get(f"/households/{household.household_id}/history?from=1&to=2").get_data(as_text=True)
    assert "Compare two versions" in page and "Version history" in page
    assert "rooms" in page and "diff-changed" in page
    page = client.get(f"/households/{household.household_id}/history?as_of=2001-01-01").get_data(as_text=True)
    assert "not registered yet" in page
    client.post("/logout")
    login(staff["programme_officer"])  # may read households (masked), not propose
    page = client.get(f"/households/{household.household_id}/history").get_data(as_text=True)
    assert "Propose a change" not in page and "রহিম উদ্দিন" not in page


def test_forms_carry_csrf_protection(app, db_session, make_user, households):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        client = app.test_client()
        user = make_user("enumerator", areas=[BARISAL])
        household = households.create()
        login_page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page).group(1)
        client.post(
            "/login", data={"username": user.username, "password": "correct horse battery", "csrf_token": token}
        )
        form = client.get(f"/households/{household.household_id}/propose").get_data(as_text=True)
        assert 'name="csrf_token"' in form
        response = client.post(
            f"/households/{household.household_id}/propose", data={"rooms": "4", "reason": "x", "base_version": "1"}
        )
        assert response.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.parametrize("kind", crs.CHANGE_KINDS[1:])
def test_every_proposal_form_renders(client, login, staff, households, kind):
    household = households.create()
    login(staff["enumerator"])
    response = client.get(f"/households/{household.household_id}/propose?kind={kind}&line=2")
    assert response.status_code == 200
    assert 'name="reason"' in response.get_data(as_text=True)


def test_split_through_the_form(client, login, staff, households, db_session):
    household = households.create()
    login(staff["enumerator"])
    response = client.post(
        f"/households/{household.household_id}/propose?kind=split",
        data={
            "line_nos": ["2", "3"],
            "new_head_line_no": "2",
            "rel-3": "3",
            "village": "Notun Para",
            "reason": "moved out",
            "base_version": "1",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    cr = db_session.query(ChangeRequest).filter_by(household_pk=household.id).one()
    assert cr.kind == "split" and cr.proposed["new_household"]["household"]["village"] == "Notun Para"


def test_review_page_and_queue_show_duplicate_flags_and_nid_conflicts(client, login, staff, households):
    from registry import dedup
    from tests.factories import member

    elsewhere = households.create()
    dedup.index_households([elsewhere])
    taken = elsewhere.members[1].nid_number
    household = households.create(
        members=[member(1, name_en="Kamal Hossain", name_bn="কামাল হোসেন", father_name="Jalal", mother_name="Amena")]
    )
    # The head of ``elsewhere`` under another spelling (a likely duplicate), carrying an ID held there.
    same_person = member(
        2,
        name_en="Mohammad Raheem Uddin",
        name_bn="মোহাম্মদ রহীম উদ্দীন",
        relation_to_head=7,
        age_years=40,
        nid_number=taken,
    )
    cr = crs.submit_change(
        staff["enumerator"],
        "add_member",
        household_id=household.household_id,
        base_version=1,
        payload={"member": same_person},
        reason="brother-in-law moved in",
    )
    assert cr.duplicate_flags and cr.nid_conflicts
    login(staff["supervisor"])
    queue = client.get("/change-requests").get_data(as_text=True)
    row = queue[queue.index(f'name="ids" value="{cr.id}"') :].split("</tr>")[0]
    assert "likely duplicate" in row and "NID conflict" in row and "two approvals" in row
    page = client.get(f"/change-requests/{cr.id}").get_data(as_text=True)
    assert "Likely duplicate persons" in page
    flag = cr.duplicate_flags[0]
    assert f"<strong>{flag['score']}</strong>" in page and elsewhere.household_id in page
    assert f"NID {taken} is held by household" in page
