"""The community-validation API: publish, notice, objections with evidence, decisions, finalise,
provenance, spot-check; errors 401/403/404/409/422."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from models.base import utcnow
from targeting import community_validation as cv
from tests.factories import RURAL_UNION
from tests.targeting.test_community_validation import MINISTRY, PNG, UNION_B, Population


@pytest.fixture
def officer(make_user, db_session):
    user = make_user("programme_officer")
    user.ministry = MINISTRY
    db_session.flush()
    return user


@pytest.fixture
def enumerator(make_user):
    return make_user("enumerator", areas=[RURAL_UNION])


@pytest.fixture
def population(db_session, households, officer):
    return Population(households, officer)


def _publish(client, headers, population, **body):
    response = client.post(f"/api/v1/lists/{population.list.id}/publications", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["items"]


def test_requires_a_token(client):
    assert client.post("/api/v1/lists/1/publications", json={}).status_code == 401


def test_publish_and_read(client, population, officer, enumerator, api_headers, make_user):
    headers = api_headers(officer)
    (publication,) = _publish(client, headers, population, union_code=RURAL_UNION, objection_days=21)
    assert publication["n_entries"] == 5 and publication["objection_days"] == 21 and publication["window_open"]
    again = client.post(
        f"/api/v1/lists/{population.list.id}/publications", json={"union_code": RURAL_UNION}, headers=headers
    )
    assert again.status_code == 409 and "already published" in again.json["error"]["message"]
    bad = client.post(
        f"/api/v1/lists/{population.list.id}/publications",
        json={"union_code": "12", "objection_days": 0},
        headers=headers,
    )
    assert bad.status_code == 422 and set(bad.json["error"]["fields"]) == {"union_code", "objection_days"}
    both = client.post(
        f"/api/v1/lists/{population.list.id}/publications",
        json={"union_code": UNION_B, "area_code": "100409"},
        headers=headers,
    )
    assert both.status_code == 422 and set(both.json["error"]["fields"]) == {"union_code", "area_code"}
    assert (
        client.post(
            f"/api/v1/lists/{population.list.id}/publications",
            json={"union_code": UNION_B},
            headers=api_headers(enumerator),
        ).status_code
        == 403
    )
    assert client.post("/api/v1/lists/999999/publications", json={}, headers=headers).status_code == 404
    bulk = _publish(client, headers, population, area_code="100409")
    assert [p["union_code"] for p in bulk] == [UNION_B]
    listing = client.get(f"/api/v1/lists/{population.list.id}/publications", headers=headers).json["items"]
    assert {p["union_code"] for p in listing} == {RURAL_UNION, UNION_B}
    url = f"/api/v1/publications/{publication['id']}"
    assert client.get(url, headers=api_headers(enumerator)).json["union_code"] == RURAL_UNION
    assert client.get(url, headers=api_headers(make_user("enumerator", areas=["30"]))).status_code == 403
    assert client.get("/api/v1/publications/999999", headers=headers).status_code == 404


def test_notice_never_carries_national_ids(client, population, officer, api_headers):
    (publication,) = _publish(client, api_headers(officer), population, union_code=RURAL_UNION)
    notice = client.get(f"/api/v1/publications/{publication['id']}/notice", headers=api_headers(officer)).json
    assert [h["serial"] for h in notice["households"]] == [1, 2, 3, 4, 5]
    assert notice["households"][0]["head_name_en"] == "Rahim Uddin"
    text = json.dumps(notice)
    nids = [m.nid_number for h in population.a for m in h.members if m.nid_number]
    assert nids and not any(nid in text for nid in nids) and "nid" not in text.lower()


def test_objection_decision_finalise_provenance(client, db_session, population, officer, enumerator, api_headers):
    headers = api_headers(officer)
    (publication,) = _publish(client, headers, population, union_code=RURAL_UNION)
    url = f"/api/v1/publications/{publication['id']}"
    a = population.a
    out = client.post(
        f"{url}/objections",
        json={
            "kind": "inclusion",
            "reason": "Owns two shops",
            "household_id": a[1].household_id,
            "objector_name": "Neighbour",
        },
        headers=api_headers(enumerator),
    )
    assert out.status_code == 201 and out.json["objector_name"] == "•••"  # only the programme's officers see it
    bad = client.post(
        f"{url}/objections",
        json={"kind": "exclusion", "reason": "poor", "household_id": a[0].household_id},
        headers=headers,
    )
    assert bad.status_code == 422 and "household_id" in bad.json["error"]["fields"]
    inn = client.post(
        f"{url}/objections",
        json={"kind": "exclusion", "reason": "Widow without land", "household_id": a[7].household_id},
        headers=headers,
    ).json
    evidence = client.post(
        f"/api/v1/objections/{inn['id']}/evidence",
        data={"file": (io.BytesIO(PNG), "land-record.png")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert evidence.status_code == 201 and evidence.json["content_type"] == "image/png"
    fake = client.post(
        f"/api/v1/objections/{inn['id']}/evidence",
        data={"file": (io.BytesIO(b"MZ not an image"), "x.png")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert fake.status_code == 422
    download = client.get(f"/api/v1/objections/{inn['id']}/evidence/{evidence.json['id']}", headers=headers)
    assert download.status_code == 200 and download.data == PNG
    download.close()

    early = client.post(f"{url}/finalise", headers=headers)
    assert early.status_code == 409 and "open until" in early.json["error"]["message"]
    today = utcnow().date().isoformat()
    decision = client.post(
        f"/api/v1/objections/{out.json['id']}/decision",
        json={"outcome": "upheld", "meeting_date": today, "reference": "UP/12/2026"},
        headers=headers,
    )
    assert decision.status_code == 201 and decision.json["decision"]["outcome"] == "upheld"
    assert (
        client.post(
            f"/api/v1/objections/{out.json['id']}/decision",
            json={"outcome": "dismissed", "meeting_date": today, "reference": "again"},
            headers=headers,
        ).status_code
        == 409
    )
    assert (
        client.post(
            f"/api/v1/objections/{inn['id']}/decision",
            json={"outcome": "upheld", "meeting_date": today, "reference": "x"},
            headers=api_headers(enumerator),
        ).status_code
        == 403
    )
    bad_decision = client.post(f"/api/v1/objections/{inn['id']}/decision", json={"outcome": "perhaps"}, headers=headers)
    assert bad_decision.status_code == 422
    assert set(bad_decision.json["error"]["fields"]) == {"outcome", "meeting_date", "reference"}
    client.post(
        f"/api/v1/objections/{inn['id']}/decision",
        json={"outcome": "upheld", "meeting_date": today, "reference": "UP/13/2026"},
        headers=headers,
    )

    pub = cv.get_publication(publication["id"])
    pub.objection_deadline = utcnow() - dt.timedelta(seconds=1)
    db_session.commit()
    late = client.post(
        f"{url}/objections",
        json={"kind": "exclusion", "reason": "late", "household_id": a[8].household_id},
        headers=headers,
    )
    assert late.status_code == 409 and "closed" in late.json["error"]["message"]
    done = client.post(f"{url}/finalise", headers=headers)
    assert done.status_code == 200, done.json
    validated = done.json["validated_list"]
    assert done.json["publication"]["status"] == "finalised" and done.json["n_entries"] == population.list.n_entries
    assert {(c["household_id"], c["change"]) for c in validated["changes"]} == {
        (a[1].household_id, "removed"),
        (a[7].household_id, "added"),
    }
    provenance = client.get(f"/api/v1/lists/{validated['list_id']}/validation", headers=headers).json
    assert provenance["source_list_id"] == population.list.id and len(provenance["changes"]) == 2
    assert all(c["decision_id"] and c["reference"].startswith("UP/") for c in provenance["changes"])
    entries = client.get(f"/api/v1/lists/{validated['list_id']}", headers=headers)
    assert entries.status_code == 200


def test_spot_check(client, db_session, population, officer, enumerator, api_headers, make_user):
    headers = api_headers(officer)
    (publication,) = _publish(client, headers, population, union_code=RURAL_UNION)
    url = f"/api/v1/publications/{publication['id']}"
    objection = client.post(
        f"{url}/objections",
        json={"kind": "exclusion", "reason": "poor", "household_id": population.a[9].household_id},
        headers=headers,
    ).json
    client.post(
        f"/api/v1/objections/{objection['id']}/decision",
        json={"outcome": "upheld", "meeting_date": utcnow().date().isoformat(), "reference": "R1"},
        headers=headers,
    )
    report = client.get(f"/api/v1/lists/{population.list.id}/spot-check", headers=api_headers(make_user("viewer")))
    assert report.status_code == 200
    assert [d["household_id"] for d in report.json["flagged_decisions"]] == [population.a[9].household_id]
    assert report.json["unions"][0]["override_rate"] == 0.2 and not report.json["unions"][0]["flagged"]
    strict = client.get(
        f"/api/v1/lists/{population.list.id}/spot-check?override_rate=0.1&divergence_points=60", headers=headers
    ).json
    assert strict["flagged_decisions"] == [] and strict["flagged_unions"][0]["union_code"] == RURAL_UNION
    assert (
        client.get(f"/api/v1/lists/{population.list.id}/spot-check", headers=api_headers(enumerator)).status_code == 403
    )
    assert (
        client.get(f"/api/v1/lists/{population.list.id}/spot-check?override_rate=2", headers=headers).status_code == 422
    )


def test_objection_window_per_programme(client, db_session, population, officer, enumerator, api_headers):
    url = f"/api/v1/programmes/{population.programme.id}/objection-window"
    headers = api_headers(officer)
    db_session.commit()  # the token outlives the rollback of a refused request
    assert client.get(url, headers=headers).json == {
        "programme_id": population.programme.id,
        "objection_days": None,
        "default_days": 30,
        "effective_days": 30,
    }
    assert client.put(url, json={"objection_days": 10}, headers=api_headers(enumerator)).status_code == 403
    bad = client.put(url, json={"objection_days": 0}, headers=headers)
    assert bad.status_code == 422 and set(bad.json["error"]["fields"]) == {"objection_days"}
    assert client.put(url, json={}, headers=headers).status_code == 422
    assert (
        client.put(
            "/api/v1/programmes/999999/objection-window", json={"objection_days": 9}, headers=headers
        ).status_code
        == 404
    )
    saved = client.put(url, json={"objection_days": 10}, headers=headers)
    assert saved.status_code == 200 and saved.json["effective_days"] == 10
    (publication,) = _publish(client, headers, population, union_code=RURAL_UNION)
    assert publication["objection_days"] == 10
    (other,) = _publish(client, headers, population, union_code=UNION_B, objection_days=5)  # an explicit override
    assert other["objection_days"] == 5
    assert client.put(url, json={"objection_days": None}, headers=headers).json["effective_days"] == 30


def test_registration_of_an_unregistered_family_is_linked(
    client, db_session, population, officer, enumerator, api_headers
):
    from registry import change_requests as crs
    from tests.factories import household_record, member

    headers = api_headers(enumerator)
    (publication,) = _publish(client, api_headers(officer), population, union_code=RURAL_UNION)
    objection = client.post(
        f"/api/v1/publications/{publication['id']}/objections",
        json={"kind": "exclusion", "reason": "Landless, never registered", "family_head_name": "Jamal Mia"},
        headers=headers,
    ).json
    assert objection["change_request"] is None and objection["family"]["head_name"] == "Jamal Mia"
    record = household_record(RURAL_UNION)
    record.pop("household_id")
    cr = crs.submit_change(
        enumerator, "new_household", payload={"household": record, "members": [member(1)]}, reason="registration"
    )
    db_session.commit()
    url = f"/api/v1/objections/{objection['id']}/registration"
    assert client.post(url, json={}, headers=headers).status_code == 422
    assert client.post(url, json={"change_request_id": 999999}, headers=headers).status_code == 422
    linked = client.post(url, json={"change_request_id": cr.id}, headers=headers)
    assert linked.status_code == 200 and linked.json["change_request"] == {
        "id": cr.id,
        "status": "pending",
        "household_id": None,
    }
