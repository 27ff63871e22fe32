"""PMT model versions: storage, lifecycle (four eyes, one active, immutability), scorecards,
reproducibility, registry predictions and comparisons, and the demo model."""

from __future__ import annotations

import csv
import io
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from models import AuditEvent, PmtModel, User
from registry.access import AccessDenied, household_scope_clause
from registry.households import snapshot_of
from registry.synth import generate
from targeting import pmt_models
from targeting.calibration import assign_strata, calibrate, predict, read_survey, scorecard_rows
from targeting.features import compute_features, household_profile

SPEC = {"strata": "urban_rural", "poverty_rate": 0.2, "methods": ["wls"], "folds": 3, "seed": 7}
SPEC_NATIONAL = {"strata": "national", "poverty_rate": 0.2, "methods": ["wls", "quantile"], "folds": 3, "seed": 7}


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A small synthetic calibration survey (1,500 households)."""
    folder = tmp_path_factory.mktemp("survey")
    generate(folder, households=0, seed=11, survey_households=1500)
    return folder / "survey.csv", folder / "survey_members.csv"


@pytest.fixture(scope="module")
def frames(survey):
    return read_survey(*survey)


@pytest.fixture(scope="module")
def result(frames):
    return calibrate(*frames, SPEC)


@pytest.fixture(scope="module")
def result_national(frames):
    return calibrate(*frames, SPEC_NATIONAL)


@pytest.fixture
def statisticians(make_user):
    return make_user("statistician"), make_user("statistician")


def _store(result, actor, tmp_path=None, name="test model", method="wls"):
    return pmt_models.store_calibration(result, name=name, method=method, actor=actor, instance_path=tmp_path)


def _events(db_session, model_id, action):
    return list(
        db_session.scalars(
            select(AuditEvent).where(
                AuditEvent.object_type == "pmt_model",
                AuditEvent.object_id == str(model_id),
                AuditEvent.action == action,
            )
        )
    )


def test_store_calibration_keeps_provenance_and_report(db_session, result, statisticians, tmp_path):
    fitter, _ = statisticians
    model = _store(result, fitter, tmp_path)
    assert model.status == "draft" and model.created_by_id == fitter.id
    assert model.spec["strata"] == ["urban"] and model.strata_variables == ["urban"]
    assert set(model.coefficients["wls"]) == {"rural", "urban"}
    assert model.training_data_hash == result.training_data_hash and len(model.training_data_hash) == 64
    assert model.poverty_lines == result.poverty_lines
    assert model.feature_definition_version == result.feature_definition_version
    assert {"numpy", "pandas", "python"} <= set(model.library_versions)
    assert model.report["metrics"]["wls"]["out_of_sample"]["overall"]["r2"] is not None
    assert model.report_path == f"pmt_reports/{model.id}"
    folder = pmt_models.report_dir(model, tmp_path)
    assert folder is not None and (folder / "report.json").is_file()
    assert not [p for p in (tmp_path / "pmt_reports").iterdir() if p.name.startswith(".tmp")]
    assert len(_events(db_session, model.id, "pmt_model.create")) == 1


def test_lifecycle_four_eyes_and_audit(db_session, result, statisticians):
    fitter, reviewer = statisticians
    model = _store(result, fitter)
    with pytest.raises(AccessDenied, match="four eyes"):
        pmt_models.publish_model(model, fitter)
    assert model.status == "draft"
    pmt_models.publish_model(model, reviewer)
    assert model.status == "published" and model.published_by_id == reviewer.id and model.published_at
    # Activation needs no third person, but it is audited.
    pmt_models.activate_model(model, fitter)
    assert model.status == "active" and model.activated_by_id == fitter.id
    assert pmt_models.get_active_model() is model
    assert len(_events(db_session, model.id, "pmt_model.publish")) == 1
    (event,) = _events(db_session, model.id, "pmt_model.activate")
    assert event.actor_id == fitter.id and event.after == {"active_model": model.id}


@pytest.mark.parametrize("role", ["supervisor", "programme_officer", "viewer", "admin"])
def test_only_statisticians_fit_publish_activate(db_session, result, statisticians, make_user, role):
    other = make_user(role, areas=["30"] if role == "supervisor" else ())
    with pytest.raises(AccessDenied):
        _store(result, other)
    model = _store(result, statisticians[0])
    with pytest.raises(AccessDenied):
        pmt_models.publish_model(model, other)
    pmt_models.publish_model(model, statisticians[1])
    with pytest.raises(AccessDenied):
        pmt_models.activate_model(model, other)


def test_wrong_states_are_refused(db_session, result, statisticians):
    fitter, reviewer = statisticians
    model = _store(result, fitter)
    with pytest.raises(pmt_models.ModelStateError, match="only a published model can be activated"):
        pmt_models.activate_model(model, reviewer)
    pmt_models.publish_model(model, reviewer)
    with pytest.raises(pmt_models.ModelStateError, match="only a draft can be published"):
        pmt_models.publish_model(model, reviewer)
    pmt_models.activate_model(model, reviewer)
    with pytest.raises(pmt_models.ModelStateError, match="is active"):
        pmt_models.activate_model(model, reviewer)
    with pytest.raises(pmt_models.ModelStateError, match="only a draft"):
        pmt_models.publish_model(model, fitter)


def test_activation_retires_the_previous_model_and_one_stays_active(db_session, result, statisticians):
    fitter, reviewer = statisticians
    first, second = _store(result, fitter, name="first"), _store(result, fitter, name="second")
    for model in (first, second):
        pmt_models.publish_model(model, reviewer)
    pmt_models.activate_model(first, reviewer)
    pmt_models.activate_model(second, reviewer)
    assert (first.status, second.status) == ("retired", "active") and first.retired_at is not None
    assert db_session.scalar(select(func.count()).where(PmtModel.status == "active")) == 1
    (event,) = _events(db_session, second.id, "pmt_model.activate")
    assert event.before == {"active_model": first.id} and f"model {first.id} retired" in event.summary
    # A retired model can be reactivated (to return to it); it then retires the other one.
    pmt_models.activate_model(first, fitter)
    assert (first.status, second.status) == ("active", "retired")
    assert db_session.scalar(select(func.count()).where(PmtModel.status == "active")) == 1


def test_activation_runs_the_hooks(db_session, result, statisticians, monkeypatch):
    calls = []
    monkeypatch.setattr(pmt_models, "ACTIVATION_HOOKS", [lambda model, actor: calls.append((model.id, actor.id))])
    fitter, reviewer = statisticians
    model = _store(result, fitter)
    pmt_models.publish_model(model, reviewer)
    pmt_models.activate_model(model, reviewer)
    assert calls == [(model.id, reviewer.id)]


def test_published_models_are_immutable(db_session, result, statisticians):
    fitter, reviewer = statisticians
    model = _store(result, fitter)
    model.description = "drafts may still be described"
    db_session.flush()
    pmt_models.publish_model(model, reviewer)
    model.coefficients = {"wls": {}}
    with pytest.raises(pmt_models.ModelStateError, match="immutable.*coefficients"):
        db_session.flush()
    db_session.rollback()


def test_reproducible_same_data_spec_and_seed(db_session, frames, result, statisticians, tmp_path):
    again = calibrate(*frames, SPEC)
    assert again.coefficients == result.coefficients
    assert again.training_data_hash == result.training_data_hash
    assert again.to_dict() == result.to_dict()
    first = _store(result, statisticians[0], tmp_path / "a")
    second = _store(again, statisticians[0], tmp_path / "b")
    for column in ("coefficients", "spec", "poverty_lines", "training_data_hash", "report", "library_versions"):
        assert getattr(first, column) == getattr(second, column), column
    report_a = (pmt_models.report_dir(first, tmp_path / "a") / "report.json").read_bytes()
    report_b = (pmt_models.report_dir(second, tmp_path / "b") / "report.json").read_bytes()
    assert report_a == report_b
    # A different seed changes the folds, hence the out-of-sample figures, but not the data hash.
    other = calibrate(*frames, {**SPEC, "seed": 8})
    assert other.training_data_hash == result.training_data_hash
    assert other.metrics != result.metrics


def test_scorecard_recomputes_by_hand(db_session, frames, result, statisticians):
    model = _store(result, statisticians[0])
    assert pmt_models.scorecard(model) == scorecard_rows(result, "wls")
    rows = list(csv.DictReader(io.StringIO(pmt_models.scorecard_csv(model))))
    assert rows[0].keys() == {"model_id", "method", "stratum", "feature", "coefficient", "description"}
    card: dict = {}
    for row in rows:
        card.setdefault(row["stratum"], {})[row["feature"]] = float(row["coefficient"])
    # One survey household by hand: constant + sum(coefficient x feature) of its stratum.
    profile = household_profile(*frames)
    features = compute_features(profile, result.features)
    strata = assign_strata(profile, ("urban",))
    expected = predict(model.coefficients["wls"], features, strata)
    i = 17
    entry = card[strata.iloc[i]]
    by_hand = entry["(intercept)"] + sum(b * features.iloc[i][f] for f, b in entry.items() if f != "(intercept)")
    assert by_hand == pytest.approx(expected.iloc[i], abs=1e-12)
    document = pmt_models.scorecard_document(model)
    assert document["rows"] == pmt_models.scorecard(model) and document["poverty_lines"] == model.poverty_lines
    with pytest.raises(pmt_models.ModelStateError, match="no scorecard for method 'lasso'"):
        pmt_models.scorecard(model, "lasso")


def test_headline_metrics(result_national):
    rows = pmt_models.headline_metrics(result_national.metrics)
    assert [r["method"] for r in rows] == ["wls", "quantile"]
    wls = rows[0]
    assert set(wls["targeting"]) == {"poverty_rate", "20%", "30%"}
    assert 0 < wls["r2"]["oos"] <= wls["r2"]["in"] < 1
    assert 0 < wls["targeting"]["20%"]["exclusion_error"]["oos"] < 1


def _registry(households, db_session):
    dhaka = households.dhaka_union()
    made = [
        households.create(),
        households.create(area_type=1, rooms=4, asset_tv=True, asset_refrigerator=True),
        households.create(
            dhaka,
            dwelling_structure=1,
            wall_material=5,
            roof_material=4,
            floor_material=3,
            electricity=1,
            asset_tv=True,
            asset_smartphone=True,
            land_cultivable_decimal=150,
        ),
        households.create(
            dhaka,
            dwelling_structure=4,
            wall_material=1,
            roof_material=1,
            rooms=1,
            asset_mobile_phone=False,
            land_homestead_decimal=0,
            land_cultivable_decimal=0,
        ),
    ]
    inactive = households.create()
    inactive.status, inactive.inactive_reason = "inactive", "migrated"
    db_session.flush()
    return made


def test_registry_predictions_use_the_calibration_features(
    db_session, households, result, result_national, statisticians
):
    made = _registry(households, db_session)
    a, b = _store(result_national, statisticians[0]), _store(result, statisticians[0])
    frame = pmt_models.registry_predictions([a, b])
    assert sorted(frame.index) == sorted(h.id for h in made)  # inactive households are not scored
    assert frame[f"model_{a.id}"].notna().all() and frame[f"model_{b.id}"].notna().all()
    assert (frame["household_size"] == 3).all()
    # The same numbers as the calibration path applied to the households' current snapshots.
    snaps = [snapshot_of(h) for h in made]
    hh = pd.DataFrame([s["household"] for s in snaps])
    mm = pd.DataFrame([{**m, "household_id": s["household"]["household_id"]} for s in snaps for m in s["members"]])
    profile = household_profile(hh, mm)
    expected = predict(
        b.coefficients["wls"], compute_features(profile, result.features), assign_strata(profile, ("urban",))
    )
    got = frame.set_index("household_id")[f"model_{b.id}"]
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    # Chunking changes nothing.
    small = pmt_models.registry_predictions([a, b], chunk_size=1)
    pd.testing.assert_frame_equal(small.sort_index(), frame.sort_index(), check_dtype=False)


def test_compare_models_with_registry_households(db_session, households, result, result_national, statisticians):
    _registry(households, db_session)
    a, b = _store(result_national, statisticians[0]), _store(result, statisticians[0])
    out = pmt_models.compare_models(a, b, coverage=0.5)
    assert out["a"]["id"] == a.id and out["b"]["strata_variables"] == ["urban"]
    metric = {r["metric"]: r for r in out["metrics"]}
    r2 = metric["out_of_sample/r2"]
    assert r2["difference"] == pytest.approx(r2["b"] - r2["a"])
    assert "out_of_sample/targeting/20%/exclusion_error" in metric
    strata = {r["stratum"] for r in out["coefficients"]}
    assert strata == {"national", "rural", "urban"}
    intercept = next(r for r in out["coefficients"] if r["stratum"] == "national" and r["feature"] == "(intercept)")
    assert intercept["a"] == a.coefficients["wls"]["national"]["intercept"] and intercept["b"] is None
    e = out["eligibility"]
    assert e["available"] and e["households"] == 4 and e["not_scorable"] == 0
    assert e["entering"] + e["staying"] == e["selected_b"] and e["leaving"] + e["staying"] == e["selected_a"]
    # A household's eligibility with the same model never changes.
    same = pmt_models.compare_models(a, a, coverage=0.5)["eligibility"]
    assert same["entering"] == same["leaving"] == 0
    # The area check: a scope without households leaves nothing to compare.
    scoped = pmt_models.compare_models(
        a, b, coverage=0.5, scope_clause=household_scope_clause(User(username="x", role="supervisor"))
    )
    assert scoped["eligibility"]["available"] is False


def test_model_with_a_survey_only_feature_cannot_score_the_registry(db_session, households, frames, statisticians):
    households.create()
    households.create()
    spec = {**SPEC, "strata": "national", "extra_features": [{"column": "weight", "transform": "log"}]}
    model = _store(calibrate(*frames, spec), statisticians[0])
    plain = _store(calibrate(*frames, {**SPEC, "strata": "national"}), statisticians[0])
    out = pmt_models.compare_models(plain, model)
    assert out["eligibility"]["available"] is False and "'weight'" in out["eligibility"]["reason"]


def test_report_files_are_served_only_from_the_report_folder(db_session, result, statisticians, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "report.json").write_text("{}", encoding="utf-8")
    model = pmt_models.store_calibration(
        result, name="m", method="wls", actor=statisticians[0], instance_path=tmp_path, report_source=source
    )
    folder = pmt_models.report_dir(model, tmp_path)
    (folder / "plot_a.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.png").write_bytes(b"secret")
    plots = pmt_models.list_report_files(model, tmp_path)
    assert "plot_a.png" in plots and "secret.png" not in plots and all(p.endswith(".png") for p in plots)
    assert pmt_models.report_file(model, tmp_path, "plot_a.png") == folder / "plot_a.png"
    for name in ("../secret.png", "..", ".hidden.png", "missing.png", "report.py", "/etc/passwd"):
        with pytest.raises(pmt_models.ReportFileNotFound):
            pmt_models.report_file(model, tmp_path, name)
    model_without = _store(result, statisticians[0])
    assert pmt_models.report_dir(model_without, tmp_path) is None


def test_calibrate_demo_model(db_session, survey, statisticians, tmp_path):
    started = time.perf_counter()
    model = pmt_models.calibrate_demo_model(*survey, *statisticians, instance_path=tmp_path)
    elapsed = time.perf_counter() - started
    # Quantile regression sits beside WLS unless it fails numerically on this small survey (then WLS alone).
    assert model.status == "active" and model.method == "wls" and "wls" in model.coefficients
    assert model.created_by_id == statisticians[0].id and model.published_by_id == statisticians[1].id
    assert pmt_models.get_active_model() is model
    assert (pmt_models.report_dir(model, tmp_path) / "report.json").is_file()
    assert elapsed < 30, elapsed


def test_concurrent_activations_leave_exactly_one_active(app, postgres_only, result, monkeypatch):
    """Two statisticians activating different models at once: both succeed in turn, one model stays active."""
    from models import db

    monkeypatch.setattr(pmt_models, "ACTIVATION_HOOKS", [])
    # Transient users (never stored): the audit rows they leave cannot be deleted, users referenced there neither.
    actor = User(username="concurrent-statistician", role="statistician")
    with app.app_context():
        ids = []
        for name in ("concurrent a", "concurrent b", "concurrent c"):
            model = pmt_models.create_model(result, name=name, method="wls", actor=None)
            model.status = "published"
            ids.append(model.id)
        db.session.commit()
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def activate(model_id: int):
        with app.app_context():
            try:
                model = pmt_models.get_model(model_id)
                barrier.wait()
                pmt_models.activate_model(model, actor)
                time.sleep(0.05)  # hold the lock a little, so that the others really wait
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=activate, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with app.app_context():
            statuses = sorted(db.session.scalars(select(PmtModel.status).where(PmtModel.id.in_(ids))))
            events = db.session.scalar(
                select(func.count()).where(
                    AuditEvent.action == "pmt_model.activate", AuditEvent.object_id.in_([str(i) for i in ids])
                )
            )
        assert statuses == ["active", "retired", "retired"] and events == 3
    finally:
        with app.app_context():
            db.session.execute(delete(PmtModel).where(PmtModel.id.in_(ids)))
            db.session.commit()


# --------------------------------------------------------------------------------------
# socreg pmt … (the commands of web/cli_pmt_models.py on the pmt group)
# --------------------------------------------------------------------------------------


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yml"
    path.write_text("strata: urban_rural\npoverty_rate: 0.2\nmethods: [wls]\nfolds: 3\nseed: 7\n", encoding="utf-8")
    return path


def test_cli_calibrate_prints_metrics_and_writes_the_report(runner, survey, spec_file, tmp_path, db_session):
    out = tmp_path / "report"
    result = runner.invoke(
        args=["pmt", "calibrate", "--survey", str(survey[0]), "--spec", str(spec_file), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "members: " in result.stderr and "survey_members.csv" in result.stderr  # the sibling file was found
    assert "fitted 1,500 survey households" in result.stdout
    header, wls = result.stdout.splitlines()[1:3]
    assert "R2" in header and "excl@pov.rate" in header and "incl@20%" in header and "excl@30%" in header
    assert wls.startswith("wls") and "%" in wls
    assert (out / "report.json").is_file() and f"report: {out}" in result.stdout
    assert db_session.scalar(select(func.count()).select_from(PmtModel)) == 0  # --no-save is the default


def test_cli_calibrate_save_stores_a_draft_with_its_report(runner, survey, spec_file, tmp_path, statisticians, app):
    result = runner.invoke(
        args=[
            "pmt",
            "calibrate",
            "--survey",
            str(survey[0]),
            "--members",
            str(survey[1]),
            "--spec",
            str(spec_file),
            "--out",
            str(tmp_path / "r"),
            "--save",
            "--name",
            "cli",
            "--user",
            statisticians[0].username,
        ]
    )
    assert result.exit_code == 0, result.output
    model_id = int(result.stdout.split("saved draft model ")[1].split()[0])
    model = pmt_models.get_model(model_id)
    assert model.name == "cli" and model.status == "draft" and model.created_by_id == statisticians[0].id
    assert (pmt_models.report_dir(model, app.instance_path) / "report.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--save"], "--user USERNAME is required"),
        (["--save", "--user", "nobody"], "no user 'nobody'"),
        (["--method", "lasso"], "--method lasso is not among the spec's methods"),
    ],
)
def test_cli_calibrate_refuses_bad_options(runner, survey, spec_file, args, message):
    result = runner.invoke(args=["pmt", "calibrate", "--survey", str(survey[0]), "--spec", str(spec_file), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_cli_calibrate_names_the_bad_spec_key_or_file(runner, survey, tmp_path, make_user):
    bad = tmp_path / "bad.yml"
    bad.write_text("poverty_rate: 0.2\nstrata: urban_rural\nmethod: [wls]\n", encoding="utf-8")
    result = runner.invoke(args=["pmt", "calibrate", "--survey", str(survey[0]), "--spec", str(bad)])
    assert result.exit_code == 1 and "unknown spec key 'method'" in result.output and "'methods'" in result.output
    result = runner.invoke(args=["pmt", "calibrate", "--survey", str(tmp_path / "none.csv"), "--spec", str(bad)])
    assert result.exit_code == 1 and "does not exist" in result.output
    viewer = make_user("viewer")
    result = runner.invoke(
        args=["pmt", "calibrate", "--survey", str(survey[0]), "--spec", str(bad), "--save", "--user", viewer.username]
    )
    assert result.exit_code == 1 and "only a statistician" in result.output


def test_cli_lifecycle_compare_and_export(runner, result, result_national, statisticians, households, tmp_path):
    households.create()
    households.create(households.dhaka_union())
    fitter, reviewer = statisticians
    first = _store(result_national, fitter, name="national")
    second = _store(result, fitter, name="urban-rural")
    denied = runner.invoke(args=["pmt", "publish", str(first.id), "--user", fitter.username])
    assert denied.exit_code == 1 and "four eyes" in denied.output
    for model in (first, second):
        assert runner.invoke(args=["pmt", "publish", str(model.id), "--user", reviewer.username]).exit_code == 0
    again = runner.invoke(args=["pmt", "publish", str(first.id), "--user", reviewer.username])
    assert again.exit_code == 1 and "only a draft can be published" in again.output
    assert runner.invoke(args=["pmt", "activate", str(first.id), "--user", fitter.username]).exit_code == 0
    switched = runner.invoke(args=["pmt", "activate", str(second.id), "--user", fitter.username])
    assert switched.exit_code == 0 and f"model {first.id} retired" in switched.output
    listing = runner.invoke(args=["pmt", "list"]).output
    assert f"{second.id:>4d}  active" in listing and f"{first.id:>4d}  retired" in listing
    shown = runner.invoke(args=["pmt", "show", str(second.id)])
    assert shown.exit_code == 0 and second.training_data_hash in shown.output and "activated:" in shown.output
    assert runner.invoke(args=["pmt", "show", "999999"]).exit_code == 1
    compared = runner.invoke(args=["pmt", "compare", str(first.id), str(second.id), "--coverage", "0.5"])
    assert compared.exit_code == 0, compared.output
    assert (
        "out_of_sample/r2" in compared.output and "entering" in compared.output and "over 2 registry" in compared.output
    )
    as_json = runner.invoke(args=["pmt", "compare", str(first.id), str(second.id), "--json", "--no-registry"])
    assert as_json.exit_code == 0 and '"eligibility": null' in as_json.output
    exported = runner.invoke(args=["pmt", "export-scorecard", str(second.id)])
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {r["stratum"] for r in rows} == {"rural", "urban"} and rows[0]["feature"] == "(intercept)"
    target = tmp_path / "card.json"
    assert (
        runner.invoke(
            args=["pmt", "export-scorecard", str(second.id), "--format", "json", "--out", str(target)]
        ).exit_code
        == 0
    )
    assert '"rows"' in target.read_text(encoding="utf-8")
    missing = runner.invoke(args=["pmt", "export-scorecard", str(second.id), "--method", "lasso"])
    assert missing.exit_code == 1 and "no scorecard for method 'lasso'" in missing.output
