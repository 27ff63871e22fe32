"""PMT model pages: list and nav, upload and specify, the report with plots, publish/activate
with confirmation (CSRF), compare, and who may see what."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from registry.synth import generate
from targeting import pmt_models
from targeting.calibration import calibrate, read_survey

SPEC = {"strata": "urban_rural", "poverty_rate": 0.2, "methods": ["wls"], "folds": 3, "seed": 5}


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Small enough for one in-memory request body (see tests/test_api_pmt.py)."""
    folder = tmp_path_factory.mktemp("web_survey")
    generate(folder, households=0, seed=31, survey_households=350)
    return folder / "survey.csv", folder / "survey_members.csv"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web_survey_1500")
    generate(folder, households=0, seed=32, survey_households=1500)
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
    model = pmt_models.store_calibration(
        result,
        name="Web draft",
        method="wls",
        actor=stats[0],
        instance_path=app.instance_path,
        report_source=report_folder,
    )
    (pmt_models.report_dir(model, app.instance_path) / "calibration.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return model


def _bytes(path) -> io.BytesIO:
    with open(path, "rb") as handle:
        return io.BytesIO(handle.read())


def test_nav_and_list(client, login, draft, stats, make_user):
    login(stats[0])
    page = client.get("/").get_data(as_text=True)
    assert 'href="/pmt/models"' in page and "PMT models" in page
    page = client.get("/pmt/models").get_data(as_text=True)
    assert "Web draft" in page and 'class="badge draft"' in page and "New calibration" in page
    client.post("/logout")
    login(make_user("viewer"))
    page = client.get("/pmt/models").get_data(as_text=True)
    assert 'href="/pmt/models"' in page and "Web draft" not in page and "New calibration" not in page


def test_upload_and_specify_runs_the_calibration(client, login, survey, stats):
    login(stats[0])
    assert client.get("/pmt/models/new").status_code == 200
    data = {
        "name": "From the form",
        "survey": (_bytes(survey[0]), "hies.csv"),
        "members": (_bytes(survey[1]), "hies_members.csv"),
        "spec_mode": "form",
        "strata": "national",
        "methods": ["wls"],
        "publish_method": "wls",
        "poverty_mode": "lines",
        "poverty_lines": "2800",
        "folds": "3",
        "seed": "9",
    }
    response = client.post("/pmt/models/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    model_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    model = pmt_models.get_model(model_id)
    assert model.name == "From the form" and model.status == "draft" and model.created_by_id == stats[0].id
    assert model.spec["poverty_lines"] == 2800.0 and model.spec["folds"] == 3 and model.spec["seed"] == 9
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "From the form" in page and "Headline metrics" in page and "Scorecard (wls)" in page


def test_upload_with_a_pasted_yaml_spec_naming_a_bad_key(client, login, survey, stats):
    login(stats[0])
    data = {
        "name": "pasted",
        "survey": (_bytes(survey[0]), "hies.csv"),
        "spec_mode": "text",
        "spec_text": "poverty_rate: 0.2\nmethods: [wls]\nfoldz: 3\n",
        "publish_method": "wls",
        "methods": ["wls"],
        "folds": "5",
        "seed": "1",
        "strata": "national",
        "poverty_mode": "rate",
        "poverty_rate": "0.2",
    }
    response = client.post("/pmt/models/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "foldz" in response.get_data(as_text=True)


def test_upload_page_is_for_statisticians(client, login, make_user):
    login(make_user("programme_officer"))
    assert client.get("/pmt/models/new").status_code == 403
    assert client.post("/pmt/models/new", data={}).status_code == 403


def test_report_page_with_plots_and_scorecard(client, login, draft, stats, make_user, app):
    login(stats[1])
    page = client.get(f"/pmt/models/{draft.id}").get_data(as_text=True)
    for text in (
        "Web draft",
        "Headline metrics",
        "Errors by group",
        "female headed",
        "Strata and poverty lines",
        f"/pmt/models/{draft.id}/files/calibration.png",
        "Publish…",
        draft.training_data_hash,
    ):
        assert text in page, text
    png = client.get(f"/pmt/models/{draft.id}/files/calibration.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.get_data().startswith(b"\x89PNG")
    png.close()
    Path(app.instance_path, "pmt_reports", "x.png").write_bytes(b"not in the model's folder")
    for bad in ("report.json", "..%2Fx.png", "missing.png", ".hidden.png"):
        assert client.get(f"/pmt/models/{draft.id}/files/{bad}").status_code == 404, bad
    csv_response = client.get(f"/pmt/models/{draft.id}/scorecard.csv")
    assert csv_response.status_code == 200 and csv_response.get_data(as_text=True).startswith("model_id,method")
    assert client.get(f"/pmt/models/{draft.id}/scorecard.json").get_json()["method"] == "wls"
    assert client.get(f"/pmt/models/{draft.id}/scorecard.xml").status_code == 404
    client.post("/logout")
    login(make_user("viewer"))
    assert client.get(f"/pmt/models/{draft.id}").status_code == 403
    assert client.get(f"/pmt/models/{draft.id}/files/calibration.png").status_code == 403
    assert client.get("/pmt/models/999999").status_code == 404


def test_publish_and_activate_with_confirmation(client, login, draft, stats, make_user):
    login(stats[0])
    confirm = client.get(f"/pmt/models/{draft.id}/publish")
    assert confirm.status_code == 200 and 'name="csrf_token"' in confirm.get_data(as_text=True)
    response = client.post(f"/pmt/models/{draft.id}/publish")
    assert response.status_code == 403 and "four eyes" in response.get_data(as_text=True)
    client.post("/logout")
    login(stats[1])
    response = client.post(f"/pmt/models/{draft.id}/publish")
    assert response.status_code == 302 and draft.status == "published"
    response = client.post(f"/pmt/models/{draft.id}/publish")
    assert response.status_code == 409 and "only a draft can be published" in response.get_data(as_text=True)
    page = client.get(f"/pmt/models/{draft.id}").get_data(as_text=True)
    assert "Activate…" in page and "Publish…" not in page
    assert "will be retired" not in client.get(f"/pmt/models/{draft.id}/activate").get_data(as_text=True)
    response = client.post(f"/pmt/models/{draft.id}/activate")
    assert response.status_code == 302 and draft.status == "active"
    assert 'class="badge active"' in client.get("/pmt/models").get_data(as_text=True)
    client.post("/logout")
    login(make_user("viewer"))
    page = client.get(f"/pmt/models/{draft.id}").get_data(as_text=True)
    assert "Activate…" not in page and "Scorecard (CSV)" in page
    assert client.post(f"/pmt/models/{draft.id}/activate").status_code == 403


def test_confirmation_forms_need_the_csrf_token(client, login, draft, stats, app, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    login_page = client.get("/login").get_data(as_text=True)
    token = (
        login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        if 'name="csrf_token" type="hidden" value="' in login_page
        else None
    )
    response = client.post(
        "/login", data={"username": stats[1].username, "password": "correct horse battery", "csrf_token": token}
    )
    assert response.status_code == 302
    assert client.post(f"/pmt/models/{draft.id}/publish").status_code == 400
    assert draft.status == "draft"
    page = client.get(f"/pmt/models/{draft.id}/publish").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post(f"/pmt/models/{draft.id}/publish", data={"csrf_token": token}).status_code == 302
    assert draft.status == "published"


def test_compare_page(client, login, households, draft, stats, frames, make_user):
    for _ in range(3):
        households.create()
    other = pmt_models.store_calibration(
        calibrate(*frames, {**SPEC, "strata": "national"}),
        name="National",
        method="wls",
        actor=stats[0],
        instance_path=None,
    )
    login(stats[0])
    assert client.get("/pmt/compare").status_code == 200
    page = client.get(f"/pmt/compare?a={draft.id}&b={other.id}&coverage=0.5").get_data(as_text=True)
    for text in (
        "Registry households changing eligibility",
        "Entering (B only)",
        "Coefficient differences",
        "out of sample › r2",
    ):
        assert text in page, text
    assert client.get(f"/pmt/compare?a={draft.id}&b={other.id}&coverage=2").status_code == 422
    client.post("/logout")
    login(make_user("viewer"))
    assert client.get("/pmt/compare").status_code == 403
