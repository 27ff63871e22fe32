"""Scores through HTTP and the CLI: a household's score with contributions (roles and areas),
starting and following score runs (statisticians only, every bad field named), the pages
(runs, progress, "why this score" with its chart) and ``socreg pmt score``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import HouseholdScore, Job, ScoreRun
from registry import jobs
from targeting import scoring
from tests.factories import RURAL_UNION
from tests.targeting.test_scoring import new_model, register, survey_and_calibration


@pytest.fixture
def calibration():
    return survey_and_calibration()[1]


@pytest.fixture
def stats(make_user):
    return make_user("statistician"), make_user("statistician")


@pytest.fixture
def scored(db_session, calibration, stats, households):
    """Households scored by the active model's complete run."""
    group = register(households, 5)
    model = new_model(calibration, stats)
    db_session.commit()
    jobs.run_pending()
    return {"households": group, "model": model, "run": scoring.current_run()}


# --- GET /households/{id}/score ----------------------------------------------------------------------


def test_grievance_officer_sees_no_score_of_a_household_outside_their_cases(client, api_headers, make_user, scored):
    target = scored["households"][2]
    headers = api_headers(make_user("grievance_officer", ["1004"]))
    response = client.get(f"/api/v1/households/{target.household_id}/score", headers=headers)
    assert response.status_code == 403
    assert "named in no grievance" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "role, areas",
    [
        ("enumerator", ["10"]),
        ("supervisor", [RURAL_UNION]),
        ("programme_officer", []),
        ("admin", []),
    ],
)
def test_household_score_with_contributions_for_readers(client, api_headers, make_user, scored, role, areas):
    target = scored["households"][2]
    headers = api_headers(make_user(role, areas))
    response = client.get(f"/api/v1/households/{target.household_id}/score", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    row = scoring.score_of(target)
    assert body["status"] == "scored" and body["household_id"] == target.household_id
    assert body["run_id"] == scored["run"].id and body["model_id"] == scored["model"].id
    assert body["scored_version"] == body["current_version"] == target.current_version
    assert body["score"] == pytest.approx(row.score) and body["predicted_log_pc"] == pytest.approx(row.predicted_log_pc)
    assert body["ranks"]["union"] == {"rank": row.union_rank, "percentile": pytest.approx(row.union_percentile)}
    assert set(body["ranks"]) == {"national", "division", "district", "upazila", "union"}
    explanation = body["explanation"]
    total = explanation["intercept"] + sum(item["contribution"] for item in explanation["contributions"])
    assert total == pytest.approx(body["predicted_log_pc"], abs=1e-9)
    assert {"feature", "description", "value", "weight", "contribution"} <= set(explanation["contributions"][0])


@pytest.mark.parametrize("role, areas", [("statistician", []), ("viewer", []), ("enumerator", ["30"])])
def test_household_score_refused_outside_role_or_area(client, api_headers, make_user, scored, role, areas):
    target = scored["households"][0]
    headers = api_headers(make_user(role, areas))
    response = client.get(f"/api/v1/households/{target.household_id}/score", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_household_score_of_unknown_household_is_404(client, api_headers, make_user):
    response = client.get("/api/v1/households/10040915-999999/score", headers=api_headers(make_user("admin")))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_household_score_without_an_active_model(client, api_headers, make_user, households):
    target = households.create()
    response = client.get(f"/api/v1/households/{target.household_id}/score", headers=api_headers(make_user("admin")))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "no_active_model" and body["score"] is None and body["explanation"] is None


# --- score runs ----------------------------------------------------------------------------------------


def test_statistician_starts_a_run_and_follows_it(client, api_headers, scored, stats, households):
    households.create(rooms=4)
    headers = api_headers(stats[0])
    response = client.post("/api/v1/pmt/score-runs", json={}, headers=headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["model_id"] == scored["model"].id and body["area_code"] is None
    # JOBS_INLINE: the job ran after the request committed.
    assert body["status"] == "complete" and body["is_current"] and body["job"]["status"] == "succeeded"
    assert body["job"]["progress"]["done"] == body["job"]["progress"]["total"] == body["households_scored"]
    detail = client.get(f"/api/v1/pmt/score-runs/{body['id']}", headers=headers)
    assert detail.status_code == 200 and detail.get_json()["id"] == body["id"]
    listing = client.get("/api/v1/pmt/score-runs", headers=headers).get_json()
    assert [r["id"] for r in listing][:2] == [body["id"], scored["run"].id]
    assert listing[1]["status"] == "superseded"


def test_area_run_through_the_api(client, api_headers, scored, stats):
    response = client.post("/api/v1/pmt/score-runs", json={"area": RURAL_UNION[:6]}, headers=api_headers(stats[0]))
    assert response.status_code == 202
    run = scoring.get_score_run(response.get_json()["id"])
    assert run.area_code == RURAL_UNION[:6] and run.status == "complete"
    assert scoring.current_run() == scored["run"]  # a preview never replaces the registry-wide run


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"model_id": "seven"}, "model_id"),
        ({"model_id": 0}, "model_id"),
        ({"area": "123"}, "area"),
        ({"areas": "10"}, "areas"),
        ({"model_id": 999999}, "model_id"),
        ({"area": "99"}, "area"),
    ],
)
def test_bad_run_requests_name_the_field(client, api_headers, scored, stats, payload, field):
    response = client.post("/api/v1/pmt/score-runs", json=payload, headers=api_headers(stats[0]))
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]


def test_run_without_an_active_model_is_422(client, api_headers, stats):
    response = client.post("/api/v1/pmt/score-runs", json={}, headers=api_headers(stats[0]))
    assert response.status_code == 422
    assert "no PMT model is active" in response.get_json()["error"]["message"]


def test_a_second_run_while_one_is_queued_is_409(client, api_headers, db_session, calibration, stats):
    new_model(calibration, stats)  # activation queued a full run (not run yet)
    db_session.commit()
    response = client.post("/api/v1/pmt/score-runs", json={}, headers=api_headers(stats[0]))
    assert response.status_code == 409 and "already in progress" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("role", ["admin", "programme_officer", "viewer", "supervisor", "enumerator"])
def test_only_statisticians_start_runs(client, api_headers, make_user, scored, role):
    user = make_user(role, areas=["10"] if role in ("supervisor", "enumerator") else ())
    response = client.post("/api/v1/pmt/score-runs", json={}, headers=api_headers(user))
    assert response.status_code == 403
    assert scoring.list_score_runs()[0].id == scored["run"].id


@pytest.mark.parametrize("role, status", [("programme_officer", 200), ("viewer", 200), ("enumerator", 403)])
def test_run_status_readers(client, api_headers, make_user, scored, role, status):
    user = make_user(role, areas=["10"] if role == "enumerator" else ())
    assert client.get(f"/api/v1/pmt/score-runs/{scored['run'].id}", headers=api_headers(user)).status_code == status
    assert client.get("/api/v1/pmt/score-runs", headers=api_headers(user)).status_code == status


def test_unknown_run_is_404(client, api_headers, stats):
    response = client.get("/api/v1/pmt/score-runs/424242", headers=api_headers(stats[0]))
    assert response.status_code == 404 and "no score run 424242" in response.get_json()["error"]["message"]


def test_openapi_lists_the_score_endpoints(client, api_headers, stats):
    paths = client.get("/api/v1/openapi.json", headers=api_headers(stats[0])).get_json()["paths"]
    assert {"/api/v1/households/{household_id}/score", "/api/v1/pmt/score-runs",
            "/api/v1/pmt/score-runs/{run_id}"} <= set(paths)


# --- pages ----------------------------------------------------------------------------------------------


def test_runs_page_and_starting_a_run(client, login, scored, stats, db_session):
    login(stats[0])
    page = client.get("/pmt/score-runs")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Start a re-score" in text and 'name="csrf_token"' in text
    assert f">{scored['run'].id}</a>" in text
    response = client.post("/pmt/score-runs", data={"model_id": "", "area": RURAL_UNION})
    assert response.status_code == 302
    run = db_session.scalars(select(ScoreRun).order_by(ScoreRun.id.desc())).first()
    assert response.headers["Location"].endswith(f"/pmt/score-runs/{run.id}") and run.area_code == RURAL_UNION
    detail = client.get(f"/pmt/score-runs/{run.id}").get_data(as_text=True)
    assert "<progress" in detail and "complete" in detail
    bad = client.post("/pmt/score-runs", data={"area": "1"})
    assert bad.status_code == 400 and "A BBS code of 2, 4, 6 or 8 digits." in bad.get_data(as_text=True)


def test_runs_page_for_readers_and_refusals(client, login, scored, make_user):
    officer = make_user("programme_officer")
    login(officer)
    text = client.get("/pmt/score-runs").get_data(as_text=True)
    assert "Start a re-score" not in text and "Why this score" in text
    assert client.post("/pmt/score-runs", data={}).status_code == 403
    client.post("/logout")
    login(make_user("enumerator", areas=["10"]))
    assert client.get("/pmt/score-runs").status_code == 403


def test_why_this_score_page(client, login, scored, make_user):
    target = scored["households"][1]
    login(make_user("supervisor", areas=["10"]))
    lookup = client.get(f"/pmt/score-lookup?household_id={target.household_id}")
    assert lookup.status_code == 302 and lookup.headers["Location"].endswith(f"/households/{target.household_id}/score")
    page = client.get(f"/households/{target.household_id}/score")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<svg" in text and "<rect" in text and "Contributions" in text
    explanation = scoring.contributions(target)
    assert explanation["contributions"][0]["feature"] in text
    assert f"{explanation['predicted']:.4f}" in text


def test_why_this_score_page_is_area_bound(client, login, scored, make_user):
    target = scored["households"][0]
    login(make_user("supervisor", areas=["30"]))
    assert client.get(f"/households/{target.household_id}/score").status_code == 403


def test_contribution_chart_geometry():
    from web.scoring import contribution_chart

    chart = contribution_chart(
        [
            {"feature": "a", "contribution": 0.4},
            {"feature": "b", "contribution": -0.2},
            {"feature": "c", "contribution": 0.0},
        ]
    )
    first, second = chart["rows"]
    assert first["positive"] and first["x"] == chart["axis"] and not second["positive"]
    assert second["x"] + second["width"] == pytest.approx(chart["axis"])
    assert first["width"] == pytest.approx(2 * second["width"])
    assert contribution_chart([{"feature": "a", "contribution": 0.0}]) is None


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_scores_the_registry(runner, db_session, calibration, stats, households):
    group = register(households, 3)
    model = new_model(calibration, stats, activate=False)
    result = runner.invoke(["pmt", "score", "--model", str(model.id)])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output and "households scored" in result.output
    run = scoring.current_run(model.id)
    assert run.status == "complete" and run.job_id is None
    pks = set(db_session.scalars(select(HouseholdScore.household_pk).where(HouseholdScore.run_id == run.id)))
    assert {h.id for h in group} <= pks


def test_cli_errors_are_clear(runner, db_session, calibration, stats):
    model = new_model(calibration, stats, activate=False)
    db_session.commit()  # the command rolls back its own failed work
    result = runner.invoke(["pmt", "score"])
    assert result.exit_code == 1 and "no PMT model is active" in result.output
    result = runner.invoke(["pmt", "score", "--model", str(model.id), "--area", "99"])
    assert result.exit_code == 1 and "unknown area code '99'" in result.output
    assert not db_session.scalars(select(Job).where(Job.kind == scoring.SCORE_JOB)).all()
