"""The PMT model API: upload → job → draft, reads per role, publish/activate (409/403), report,
scorecards, compare, and job status."""

from __future__ import annotations

import csv
import io
import json

import pytest

from registry.synth import generate
from targeting import pmt_models
from targeting.calibration import calibrate, read_survey

SPEC = {"strata": "urban_rural", "poverty_rate": 0.2, "methods": ["wls"], "folds": 3, "seed": 3}


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A survey small enough to upload in one request body under 500 kB: beyond that werkzeug's test
    client spools the body to a temporary file it never closes (a ResourceWarning, an error here)."""
    folder = tmp_path_factory.mktemp("api_survey")
    generate(folder, households=0, seed=21, survey_households=350)
    return folder / "survey.csv", folder / "survey_members.csv"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A larger survey for models stored directly (meaningful metrics)."""
    folder = tmp_path_factory.mktemp("api_survey_1500")
    generate(folder, households=0, seed=22, survey_households=1500)
    return read_survey(folder / "survey.csv", folder / "survey_members.csv")


@pytest.fixture(scope="module")
def result(frames):
    return calibrate(*frames, SPEC)


@pytest.fixture(scope="module")
def report_folder(result, tmp_path_factory):
    """The report written once (plots take seconds); stored models copy it, as ``calibrate --save`` does."""
    return pmt_models.write_report_folder(result, tmp_path_factory.mktemp("report") / "report")


@pytest.fixture
def stats(make_user):
    return make_user("statistician"), make_user("statistician")


@pytest.fixture
def draft(app, result, stats, report_folder):
    return pmt_models.store_calibration(
        result, name="draft", method="wls", actor=stats[0], instance_path=app.instance_path, report_source=report_folder
    )


@pytest.fixture
def published(draft, stats):
    return pmt_models.publish_model(draft, stats[1])


def _bytes(path) -> io.BytesIO:
    with open(path, "rb") as handle:
        return io.BytesIO(handle.read())


def _upload(client, headers, survey, spec=SPEC, name="uploaded", members=True, **extra):
    data = {"name": name, "survey": (_bytes(survey[0]), "hies_2025.csv"), **extra}
    if spec is not None:
        data["spec"] = spec if isinstance(spec, str) else json.dumps(spec)
    if members:
        data["members"] = (_bytes(survey[1]), "hies_2025_members.csv")
    return client.post("/api/v1/pmt/models", data=data, headers=headers, content_type="multipart/form-data")


def test_upload_calibrates_in_a_job_and_stores_a_draft(client, api_headers, survey, stats, make_user, app):
    headers = api_headers(stats[0])
    response = _upload(client, headers, survey)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "pmt.calibrate" and job["status"] == "succeeded", job
    model_id = job["result"]["model_id"]
    assert job["links"]["model"] == f"/api/v1/pmt/models/{model_id}"
    polled = client.get(response.headers["Location"], headers=headers)
    assert polled.status_code == 200 and polled.get_json()["progress"]["percent"] == 100.0
    body = client.get(f"/api/v1/pmt/models/{model_id}", headers=headers).get_json()
    assert body["status"] == "draft" and body["created_by"] == stats[0].username
    assert body["survey_filename"] == "hies_2025.csv" and body["strata"] == ["rural", "urban"]
    assert body["headline"][0]["method"] == "wls" and body["headline"][0]["r2"]["oos"] > 0
    assert body["links"]["publish"] == f"/api/v1/pmt/models/{model_id}/publish"
    model = pmt_models.get_model(model_id)
    assert (pmt_models.report_dir(model, app.instance_path) / "report.json").is_file()
    # Job status is for its creator (and administrators).
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=api_headers(stats[1])).status_code == 403
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=api_headers(make_user("admin"))).status_code == 200
    assert client.get("/api/v1/jobs/999999", headers=headers).status_code == 404


def test_upload_spec_as_yaml_file_and_members_default(client, api_headers, survey, stats):
    yaml_spec = "strata: national\npoverty_lines: 2800\nmethods: [wls]\nfolds: 3\n"
    data = {
        "name": "yaml",
        "survey": (_bytes(survey[0]), "s.csv"),
        "members": (_bytes(survey[1]), "m.csv"),
        "spec": (io.BytesIO(yaml_spec.encode()), "spec.yml"),
    }
    response = client.post(
        "/api/v1/pmt/models", data=data, headers=api_headers(stats[0]), content_type="multipart/form-data"
    )
    assert response.status_code == 202, response.get_json()
    model = pmt_models.get_model(response.get_json()["result"]["model_id"])
    assert model.poverty_lines == {"national": 2800.0} and model.strata_variables == []


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({**SPEC, "stratta": "urban_rural"}, "stratta"),
        ({**SPEC, "methods": ["wls", "ridge"]}, "ridge"),
        ({"strata": "urban_rural", "methods": ["wls"]}, "poverty_rate"),
        ({**SPEC, "folds": 1}, "folds"),
        ("methods: [wls\n", "spec"),
        (None, "spec"),
    ],
)
def test_upload_with_a_bad_spec_is_422_naming_the_key(client, api_headers, survey, stats, spec, named):
    response = _upload(client, api_headers(stats[0]), survey, spec=spec)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_spec" and named in error["message"] and "spec" in error["fields"]


def test_upload_with_a_survey_lacking_the_outcome_is_422_naming_the_column(client, api_headers, survey, stats):
    response = _upload(client, api_headers(stats[0]), survey, spec={**SPEC, "outcome": "consumption_total"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert "'consumption_total'" in error["message"] and "survey" in error["fields"]


def test_upload_with_bad_survey_values_fails_the_job_with_the_reason(client, api_headers, survey, stats, tmp_path):
    with open(survey[0], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[4]["consumption_pc"] = "0"
    bad = tmp_path / "bad.csv"
    with open(bad, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    response = _upload(client, api_headers(stats[0]), (bad, survey[1]), spec=SPEC)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "calibration_failed" and "zero or negative" in error["message"]
    assert "consumption_pc" in error["message"] and error["fields"]["job"]


def test_upload_needs_a_statistician(client, api_headers, survey, make_user):
    for role, areas in (("supervisor", ["30"]), ("programme_officer", []), ("admin", [])):
        response = _upload(client, api_headers(make_user(role, areas=areas)), survey)
        assert response.status_code == 403, role
    assert client.post("/api/v1/pmt/models").status_code == 401


def test_missing_form_fields_are_named(client, api_headers, stats):
    response = client.post(
        "/api/v1/pmt/models", data={}, headers=api_headers(stats[0]), content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "name" in response.get_json()["error"]["fields"] or "survey" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    "role", ["enumerator", "supervisor", "programme_officer", "grievance_officer", "viewer", "admin"]
)
def test_reads_per_role(client, api_headers, make_user, draft, stats, role):
    user = make_user(role, areas=["30"] if role in ("enumerator", "supervisor", "grievance_officer") else [])
    headers = api_headers(user)
    base = f"/api/v1/pmt/models/{draft.id}"
    # Drafts are for statisticians only.
    assert [m["id"] for m in client.get("/api/v1/pmt/models", headers=headers).get_json()] == []
    for path in ("", "/report", "/scorecard.csv", "/scorecard.json"):
        assert client.get(base + path, headers=headers).status_code == 403, path
    assert client.get(base, headers=api_headers(stats[1])).status_code == 200
    pmt_models.publish_model(draft, stats[1])
    assert [m["id"] for m in client.get("/api/v1/pmt/models", headers=headers).get_json()] == [draft.id]
    for path in ("", "/report", "/scorecard.csv", "/scorecard.json"):
        assert client.get(base + path, headers=headers).status_code == 200, path
    # Writes stay with statisticians.
    assert client.post(base + "/activate", headers=headers).status_code == 403
    assert client.get(f"/api/v1/pmt/compare?a={draft.id}&b={draft.id}", headers=headers).status_code == 403


def test_publish_and_activate_lifecycle(client, api_headers, draft, stats, app, result):
    fitter, reviewer = (api_headers(s) for s in stats)
    base = f"/api/v1/pmt/models/{draft.id}"
    response = client.post(base + "/publish", headers=fitter)
    assert response.status_code == 403 and "four eyes" in response.get_json()["error"]["message"]
    response = client.post(base + "/activate", headers=reviewer)
    assert response.status_code == 409 and "only a published model" in response.get_json()["error"]["message"]
    response = client.post(base + "/publish", headers=reviewer)
    assert response.status_code == 200 and response.get_json()["status"] == "published"
    assert response.get_json()["published_by"] == stats[1].username
    response = client.post(base + "/publish", headers=reviewer)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "conflict"
    assert "only a draft can be published" in response.get_json()["error"]["message"]
    response = client.post(base + "/activate", headers=fitter)
    assert response.status_code == 200 and response.get_json()["status"] == "active"
    assert client.post(base + "/activate", headers=fitter).status_code == 409
    second = pmt_models.store_calibration(result, name="second", method="wls", actor=stats[1], instance_path=None)
    assert client.post(f"/api/v1/pmt/models/{second.id}/publish", headers=fitter).status_code == 200
    assert client.post(f"/api/v1/pmt/models/{second.id}/activate", headers=fitter).status_code == 200
    assert client.get(base, headers=fitter).get_json()["status"] == "retired"
    assert client.post("/api/v1/pmt/models/999999/publish", headers=fitter).status_code == 404


def test_report_and_scorecards(client, api_headers, published, stats, make_user, app):
    headers = api_headers(make_user("viewer"))
    base = f"/api/v1/pmt/models/{published.id}"
    folder = pmt_models.report_dir(published, app.instance_path)
    (folder / "calibration_plot.png").write_bytes(b"\x89PNG fake")
    report = client.get(base + "/report", headers=headers).get_json()
    assert report["training_data_hash"] == published.training_data_hash and report["spec"]["folds"] == 3
    assert report["metrics"]["wls"]["out_of_sample"]["overall"]["r2"] > 0
    assert "calibration_plot.png" in report["files"] and "report.json" not in report["files"]
    assert report["headline"][0]["targeting"]["poverty_rate"]["exclusion_error"]["oos"] is not None
    response = client.get(base + "/scorecard.csv", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["stratum"] for r in rows} == {"rural", "urban"}
    intercept = next(r for r in rows if r["stratum"] == "rural" and r["feature"] == "(intercept)")
    assert float(intercept["coefficient"]) == published.coefficients["wls"]["rural"]["intercept"]
    document = client.get(base + "/scorecard.json", headers=headers).get_json()
    assert document["method"] == "wls" and len(document["rows"]) == len(rows)
    response = client.get(base + "/scorecard.csv?method=lasso", headers=headers)
    assert response.status_code == 409 and "lasso" in response.get_json()["error"]["message"]
    assert client.get(base + "/scorecard.csv?method=gbm", headers=headers).status_code == 422


def test_compare(client, api_headers, households, published, stats, frames):
    for _ in range(3):
        households.create()
    households.create(households.dhaka_union(), rooms=5, asset_tv=True, asset_refrigerator=True)
    other = pmt_models.store_calibration(
        calibrate(*frames, {**SPEC, "strata": "national"}),
        name="national",
        method="wls",
        actor=stats[0],
        instance_path=None,
    )
    headers = api_headers(stats[0])
    response = client.get(f"/api/v1/pmt/compare?a={published.id}&b={other.id}&coverage=0.5", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["a"]["id"] == published.id and body["b"]["id"] == other.id
    assert any(r["metric"] == "out_of_sample/r2" for r in body["metrics"])
    assert {r["stratum"] for r in body["coefficients"]} == {"rural", "urban", "national"}
    e = body["eligibility"]
    assert e["available"] and e["households"] == 4 and e["entering"] + e["staying"] == e["selected_b"]
    assert (
        client.get(f"/api/v1/pmt/compare?a={published.id}&b={other.id}&coverage=1.5", headers=headers).status_code
        == 422
    )
    assert client.get(f"/api/v1/pmt/compare?a={published.id}", headers=headers).status_code == 422
    assert client.get(f"/api/v1/pmt/compare?a={published.id}&b=999999", headers=headers).status_code == 404


def test_openapi_document_lists_the_pmt_endpoints(client, make_user, api_headers):
    paths = client.get("/api/v1/openapi.json", headers=api_headers(make_user("viewer"))).get_json()["paths"]
    for path in (
        "/api/v1/pmt/models",
        "/api/v1/pmt/models/{model_id}/report",
        "/api/v1/pmt/compare",
        "/api/v1/jobs/{job_id}",
    ):
        assert path in paths, path


def test_activation_runs_the_queued_rescore_inline(client, api_headers, published, stats, households, db_session):
    """With JOBS_INLINE the full re-score that the activation hooks queue runs in the request."""
    from sqlalchemy import select

    from models import Job, ScoreRun
    from targeting import scoring  # noqa: F401 - registers the scoring engine's activation hook

    households.create()
    households.create(households.dhaka_union())
    response = client.post(f"/api/v1/pmt/models/{published.id}/activate", headers=api_headers(stats[0]))
    assert response.status_code == 200
    run = db_session.scalar(select(ScoreRun).where(ScoreRun.model_id == published.id))
    assert run is not None and run.job_id is not None
    job = db_session.get(Job, run.job_id)
    assert job.status in ("succeeded", "failed"), job.status  # run here, not left for a worker
    if job.status == "succeeded":
        assert run.status == "complete" and run.households_scored == 2
