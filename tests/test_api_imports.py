"""The imports API: upload, background job, progress and outcome, report, access."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import func, select

from models import Household, Job
from tests.factories import household_record
from tests.registry.test_importer import good, write_files


def _upload(client, headers, directory, data, **form):
    hh_path, m_path = write_files(directory, data)
    body = {
        "households": (io.BytesIO(hh_path.read_bytes()), "households.csv"),
        "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
        **form,
    }
    return client.post("/api/v1/imports", data=body, headers=headers, content_type="multipart/form-data")


def test_supervisor_uploads_and_the_job_imports(client, db_session, make_user, api_headers, tmp_path, households):
    union = households.dhaka_union()
    supervisor = make_user("supervisor", areas=["30"])
    data = [(household_record(union), members) for _record, members in good(3)]
    response = _upload(client, api_headers(supervisor), tmp_path, data)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "succeeded"
    assert body["result"]["households_imported"] == 3 and body["result"]["outcome"] == "imported"
    assert body["files"] == {"households": "households.csv", "members": "members.csv"}
    assert body["has_report"] is False and body["report_url"] is None
    ids = [d[0]["household_id"] for d in data]
    assert db_session.scalar(select(func.count()).where(Household.household_id.in_(ids))) == 3

    again = client.get(f"/api/v1/imports/{body['id']}", headers=api_headers(supervisor))
    assert again.status_code == 200 and again.get_json()["result"]["households_imported"] == 3
    # The uploaded copies of personal data do not outlive the job.
    payload = db_session.get(Job, body["id"]).payload
    assert not Path(payload["households_path"]).exists() and not Path(payload["members_path"]).exists()


def test_rejected_import_reports_problems_and_the_csv(client, db_session, make_user, api_headers, tmp_path):
    admin = make_user("admin")
    data = good(2)
    data[1][1][0]["nid_number"] = "12345"
    response = _upload(client, api_headers(admin), tmp_path, data, skip_invalid="false")
    body = response.get_json()
    assert response.status_code == 202
    assert body["status"] == "failed" and body["error"].startswith("import rejected")
    assert body["result"]["outcome"] == "rejected"
    issue = body["result"]["first_issues"][0]
    # Admins do not see personal data: the NID is masked, even in the report.
    assert (issue["file"], issue["row"], issue["field"], issue["value"]) == ("members.csv", 5, "nid_number", "••345")
    assert body["report_url"] == f"/api/v1/imports/{body['id']}/report.csv"
    report = client.get(body["report_url"], headers=api_headers(admin))
    assert report.status_code == 200 and report.mimetype == "text/csv"
    lines = report.get_data(as_text=True).splitlines()
    assert lines[0] == "file,row,household_id,field,value,rule"
    assert lines[1].startswith(f"members.csv,5,{data[1][0]['household_id']},nid_number,••345,")
    assert db_session.scalar(select(Household).where(Household.household_id == data[0][0]["household_id"])) is None
    # The files are deleted (the user fixes their own copy); the report stays to be downloaded.
    payload = db_session.get(Job, body["id"]).payload
    assert not Path(payload["households_path"]).exists() and not Path(payload["members_path"]).exists()
    assert Path(payload["report_path"]).exists()


def test_skip_invalid_through_the_api(client, db_session, make_user, api_headers, tmp_path):
    admin = make_user("admin")
    data = good(3)
    data[0][0]["rooms"] = 99
    body = _upload(client, api_headers(admin), tmp_path, data, skip_invalid="true").get_json()
    assert body["status"] == "succeeded" and body["skip_invalid"] is True
    assert body["result"]["households_imported"] == 2 and body["result"]["households_rejected"] == 1
    assert body["has_report"] is True


def test_wrong_files_are_refused_at_upload(client, db_session, make_user, api_headers, tmp_path):
    admin = make_user("admin")
    hh_path, m_path = write_files(tmp_path, good(1))
    headers = api_headers(admin)
    db_session.commit()  # a refused upload rolls back; the token must survive it
    swapped = client.post(
        "/api/v1/imports",
        data={
            "households": (io.BytesIO(m_path.read_bytes()), "households.csv"),
            "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    assert swapped.status_code == 422
    error = swapped.get_json()["error"]
    assert "households" in error["fields"] and "swapped" in error["message"]

    not_csv = client.post(
        "/api/v1/imports",
        data={
            "households": (io.BytesIO(hh_path.read_bytes()), "households.xlsx"),
            "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    assert not_csv.status_code == 422 and "must be a .csv file" in not_csv.get_json()["error"]["message"]

    missing = client.post(
        "/api/v1/imports",
        data={"households": (io.BytesIO(hh_path.read_bytes()), "households.csv")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "members" in missing.get_json()["error"]["fields"]

    latin = client.post(
        "/api/v1/imports",
        data={
            "households": (io.BytesIO("household_id,rooms\nChär".encode("latin-1")), "households.csv"),
            "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    assert latin.status_code == 422 and "not UTF-8" in latin.get_json()["error"]["message"]


def test_only_supervisors_and_admins(client, db_session, make_user, api_headers, tmp_path):
    for role, areas in (("enumerator", ["30"]), ("viewer", []), ("statistician", [])):
        user = make_user(role, areas=areas)
        response = _upload(client, api_headers(user), tmp_path / role, good(1))
        assert response.status_code == 403, role
        assert response.get_json()["error"]["code"] == "forbidden"


def test_imports_are_visible_to_their_owner_and_admins(client, db_session, make_user, api_headers, tmp_path):
    admin = make_user("admin")
    owner = make_user("supervisor", areas=["10"])
    other = make_user("supervisor", areas=["10"])
    job_id = _upload(client, api_headers(owner), tmp_path, good(1)).get_json()["id"]
    assert client.get(f"/api/v1/imports/{job_id}", headers=api_headers(owner)).status_code == 200
    assert client.get(f"/api/v1/imports/{job_id}", headers=api_headers(admin)).status_code == 200
    assert client.get(f"/api/v1/imports/{job_id}", headers=api_headers(other)).status_code == 403
    assert client.get("/api/v1/imports/999999", headers=api_headers(admin)).status_code == 404
    assert client.get(f"/api/v1/imports/{job_id}/report.csv", headers=api_headers(owner)).status_code == 404
    assert client.get(f"/api/v1/imports/{job_id}").status_code == 401


# --- the pages -----------------------------------------------------------------------------------


def test_upload_page_imports_and_shows_the_outcome(client, db_session, make_user, login, tmp_path):
    admin = make_user("admin")
    login(admin)
    page = client.get("/imports")
    assert page.status_code == 200 and 'name="csrf_token"' in page.get_data(as_text=True)
    data = good(2)
    data[1][0]["rooms"] = 50
    hh_path, m_path = write_files(tmp_path, data)
    response = client.post(
        "/imports",
        data={
            "households": (io.BytesIO(hh_path.read_bytes()), "households.csv"),
            "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
            "skip_invalid": "y",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    detail = client.get(response.headers["Location"])
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "Imported" in text and "rooms: integer &gt;= 0 and &lt;= 20" in text
    report = client.get(response.headers["Location"] + "/report.csv")
    assert report.status_code == 200 and "households.csv,3," in report.get_data(as_text=True)
    assert "households.csv" in client.get("/imports").get_data(as_text=True)


def test_upload_page_refuses_other_roles_and_wrong_files(client, db_session, make_user, login, tmp_path):
    enumerator = make_user("enumerator", areas=["10"])
    login(enumerator)
    assert client.get("/imports").status_code == 403
    client.post("/logout")
    supervisor = make_user("supervisor", areas=["10"])
    login(supervisor)
    hh_path, m_path = write_files(tmp_path, good(1))
    response = client.post(
        "/imports",
        data={
            "households": (io.BytesIO(m_path.read_bytes()), "households.csv"),
            "members": (io.BytesIO(m_path.read_bytes()), "members.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and "were the two files swapped" in response.get_data(as_text=True)


def test_error_reports_expire_after_the_retention_period(client, db_session, make_user, api_headers, tmp_path):
    import datetime as dt

    from models import AuditEvent
    from models.base import utcnow
    from registry import importer, jobs

    admin = make_user("admin")
    bodies = []
    for _ in range(2):
        data = good(2)
        data[1][0]["rooms"] = 99
        bodies.append(_upload(client, api_headers(admin), tmp_path, data, skip_invalid="false").get_json())
    old, recent = (db_session.get(Job, body["id"]) for body in bodies)
    assert old.status == recent.status == "failed" and Path(old.payload["report_path"]).exists()
    old.finished_at = utcnow() - importer.REPORT_RETENTION - dt.timedelta(hours=1)
    db_session.commit()

    # The worker runs this between jobs (registered with jobs.housekeeping).
    jobs.run_housekeeping()

    assert not Path(old.payload["report_path"]).exists()
    assert Path(recent.payload["report_path"]).exists()
    view = client.get(f"/api/v1/imports/{old.id}", headers=api_headers(admin)).get_json()
    assert view["has_report"] is False and view["result"]["outcome"] == "rejected"  # the summary stays
    gone = client.get(f"/api/v1/imports/{old.id}/report.csv", headers=api_headers(admin))
    assert gone.status_code == 404 and "deleted 30 days after the import" in gone.get_json()["error"]["message"]
    event = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "import.report_expired", AuditEvent.object_id == str(old.id))
    )
    assert event is not None
    assert importer.expire_import_reports() == 0  # nothing left to expire
