"""PMT scoring: the registry path equals calibration's, runs publish atomically, ranks are
deterministic, activation re-scores, approval re-scores one household, a model switch never mixes
models inside a run, and (on PostgreSQL) a run completes consistent with concurrent approvals."""

from __future__ import annotations

import functools
import math
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from models import Area, AuditEvent, Household, HouseholdScore, Job, PmtModel, ScoreRun, db
from models.base import utcnow
from models.codes import HOUSEHOLD_FIELD_NAMES
from registry import change_requests as crs
from registry import jobs
from registry.access import AccessDenied
from registry.synth import generate
from targeting import pmt_models, ranking, scoring
from targeting.calibration import assign_strata, calibrate, predict, read_survey
from targeting.features import compute_features, household_profile
from tests.factories import RURAL_UNION

SPEC = {"strata": "urban_rural", "poverty_rate": 0.25, "methods": ["wls"], "folds": 3, "seed": 5}


@functools.cache
def survey_and_calibration():
    """A small synthetic calibration survey and its calibration, made once per test process (the
    API tests use them too)."""
    with tempfile.TemporaryDirectory() as folder:
        generate(Path(folder), households=0, seed=21, survey_households=2500)
        frames = read_survey(Path(folder) / "survey.csv", Path(folder) / "survey_members.csv")
    return frames, calibrate(*frames, SPEC)


@pytest.fixture
def survey_frames():
    return survey_and_calibration()[0]


@pytest.fixture
def calibration():
    return survey_and_calibration()[1]


@pytest.fixture
def statisticians(make_user):
    return make_user("statistician"), make_user("statistician")


def new_model(calibration, statisticians, *, activate=True, name="scoring test model") -> PmtModel:
    """A calibrated model, published by a second statistician, optionally activated (which queues a re-score)."""
    fitter, publisher = statisticians
    model = pmt_models.create_model(calibration, name=name, method="wls", actor=fitter)
    pmt_models.publish_model(model, publisher)
    if activate:
        pmt_models.activate_model(model, publisher)
    return model


def urban_union(session) -> str:
    return session.scalar(
        select(Area.code).where(Area.level == "union", Area.area_type == 2).order_by(Area.code).limit(1)
    )


def register(households, count: int, union: str = RURAL_UNION, **fixed) -> list[Household]:
    """Households that differ in housing, assets and land, so that their scores differ."""
    out = []
    area_type = fixed.pop("area_type", 1)
    for i in range(count):
        values = {
            "rooms": 1 + i % 4,
            "dwelling_structure": 1 + i % 4,
            "asset_tv": i % 2 == 0,
            "asset_refrigerator": i % 3 == 0,
            "land_cultivable_decimal": 3 * i,
            "area_type": area_type,
        }
        values.update(fixed)
        out.append(households.create(union_code=union, **values))
    return out


def full_run(model) -> ScoreRun:
    """Queue and run a full re-score of ``model`` (as the API does), returning the finished run."""
    run = scoring.create_score_run(model)
    db.session.commit()
    jobs.run_pending()
    db.session.refresh(run)
    return run


def rows_of(run) -> dict[int, HouseholdScore]:
    rows = db.session.scalars(select(HouseholdScore).where(HouseholdScore.run_id == run.id))
    return {r.household_pk: r for r in rows}


# --- the registry path equals the calibration path ------------------------------------------------


def test_registry_scores_equal_calibration_predictions_on_the_same_households(
    db_session, calibration, survey_frames, statisticians
):
    """Register survey households, score them from the database, and compare with the survey path."""
    survey_households, survey_members = survey_frames
    sample = survey_households.iloc[:8]
    ids = set(sample["household_id"])
    members = survey_members[survey_members["household_id"].isin(ids)]
    from registry.households import create_household

    for record in sample[list(HOUSEHOLD_FIELD_NAMES)].to_dict("records"):
        its_members = members[members["household_id"] == record["household_id"]].drop(columns=["household_id"])
        create_household(record, its_members.to_dict("records"), actor=None, source="test")
    db_session.flush()
    model = new_model(calibration, statisticians, activate=False)
    card = scoring.Scorecard.from_model(model)

    profile = household_profile(sample, members)
    features = compute_features(profile, list(card.features))
    strata = assign_strata(profile, model.strata_variables)
    expected = predict(model.coefficients["wls"], features, strata)

    run = scoring.create_score_run(model, with_job=False)
    scoring.execute_score_run(run)
    stored = {
        hid: predicted
        for hid, predicted in db_session.execute(
            select(Household.household_id, HouseholdScore.predicted_log_pc)
            .join(HouseholdScore, HouseholdScore.household_pk == Household.id)
            .where(HouseholdScore.run_id == run.id, Household.household_id.in_(ids))
        )
    }
    assert len(stored) == len(ids)
    for hid, value in expected.items():
        assert stored[hid] == pytest.approx(value, rel=1e-12, abs=1e-12)
    strata_stored = dict(
        db_session.execute(
            select(Household.household_id, HouseholdScore.stratum)
            .join(HouseholdScore, HouseholdScore.household_pk == Household.id)
            .where(HouseholdScore.run_id == run.id, Household.household_id.in_(ids))
        ).all()
    )
    assert strata_stored == strata.to_dict()


# --- full runs ---------------------------------------------------------------------------------------


def test_activation_queues_a_full_rescore_that_scores_and_ranks_everyone(
    db_session, calibration, statisticians, households
):
    rural = register(households, 6)
    urban = register(households, 4, union=urban_union(db_session), area_type=2)
    model = new_model(calibration, statisticians)
    queued = db_session.scalars(select(ScoreRun).where(ScoreRun.model_id == model.id)).all()
    assert [r.status for r in queued] == ["running"]
    assert db_session.get(Job, queued[0].job_id).kind == scoring.SCORE_JOB
    assert scoring.current_run() is None  # readers see nothing until the run completes
    db_session.commit()
    jobs.run_pending()

    run = scoring.current_run()
    assert run is not None and run.id == queued[0].id and run.status == "complete"
    assert db_session.get(Job, run.job_id).status == "succeeded"
    rows = rows_of(run)
    ours = [h.id for h in rural + urban]
    assert set(ours) <= set(rows)
    assert run.households_scored == len(rows) == db_session.scalar(
        select(func.count()).select_from(Household).where(Household.status == "active")
    )
    for household in rural + urban:
        row = rows[household.id]
        assert row.model_id == model.id and row.household_version == household.current_version
        assert row.stratum == ("urban" if household in urban else "rural")
        assert row.score == pytest.approx(scoring.display_score(row.predicted_log_pc))
        assert row.below_poverty_line == (row.predicted_log_pc < math.log(model.poverty_lines[row.stratum]))
        assert scoring.score_of(household) == row

    # Ranks: 1 = poorest, ties by key, percentile = rank / n, for every level.
    keys = np.array(sorted(rows))
    predicted = np.array([rows[k].predicted_log_pc for k in keys])
    unions = dict(db_session.execute(select(Household.id, Household.union_code)).all())
    for level, digits in ranking.LEVELS.items():
        for i, key in enumerate(keys):
            same = np.ones(len(keys), bool) if digits is None else np.array(
                [unions[k][:digits] == unions[key][:digits] for k in keys]
            )
            poorer = same & ((predicted < predicted[i]) | ((predicted == predicted[i]) & (keys < key)))
            row = rows[key]
            assert getattr(row, f"{level}_rank") == poorer.sum() + 1
            assert getattr(row, f"{level}_percentile") == pytest.approx((poorer.sum() + 1) / same.sum())


def test_ties_are_broken_by_household_key(db_session, calibration, statisticians, households):
    twins = [households.create(rooms=2) for _ in range(4)]
    model = new_model(calibration, statisticians, activate=False)
    run = scoring.create_score_run(model, with_job=False)
    scoring.execute_score_run(run, chunk_size=3)  # several chunks, same answer
    rows = rows_of(run)
    assert len({rows[t.id].predicted_log_pc for t in twins}) == 1
    union_ranks = [rows[t.id].union_rank for t in sorted(twins, key=lambda h: h.id)]
    assert union_ranks == sorted(union_ranks) and len(set(union_ranks)) == 4
    assert [rows[t.id].national_rank for t in sorted(twins, key=lambda h: h.id)] == sorted(
        rows[t.id].national_rank for t in twins
    )
    # Re-running gives identical ranks.
    again = scoring.create_score_run(model, with_job=False)
    scoring.execute_score_run(again, chunk_size=1000)
    assert {k: r.national_rank for k, r in rows_of(again).items()} == {k: r.national_rank for k, r in rows.items()}


def test_a_new_run_supersedes_the_previous_one_only_when_complete(db_session, calibration, statisticians, households):
    register(households, 3)
    model = new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    first = scoring.current_run()
    second = scoring.create_score_run(model)
    db_session.commit()
    assert scoring.current_run() == first  # the running run is invisible
    jobs.run_pending()
    db_session.refresh(first)
    assert scoring.current_run() == second and first.status == "superseded"
    assert rows_of(first), "superseded runs stay readable (lists built from them are reproducible)"


def test_a_failing_run_is_retried_then_marked_failed_and_readers_keep_the_old_run(
    db_session, calibration, statisticians, households, monkeypatch
):
    register(households, 3)
    model = new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    good = scoring.current_run()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(scoring, "_write_scores", broken)
    run = scoring.create_score_run(model)
    job = db_session.get(Job, run.job_id)
    job.max_attempts = 2
    db_session.commit()
    jobs.run_pending()
    db_session.refresh(run)
    assert run.status == "running" and db_session.get(Job, run.job_id).status == "queued"
    db_session.get(Job, run.job_id).run_after = utcnow()
    db_session.commit()
    jobs.run_pending()
    db_session.refresh(run)
    assert run.status == "failed" and "disk full" in run.error
    assert db_session.get(Job, run.job_id).status == "failed"
    assert scoring.current_run() == good
    assert not rows_of(run)


def test_a_model_that_cannot_score_the_registry_fails_its_run_with_the_reason(
    db_session, calibration, statisticians, households
):
    model = new_model(calibration, statisticians, activate=False)
    spec = dict(model.spec)
    db_session.execute(
        PmtModel.__table__.update()
        .where(PmtModel.id == model.id)
        .values(feature_definition_version=model.feature_definition_version + 1, spec=spec)
    )
    db_session.expire(model)
    with pytest.raises(scoring.ScoringError, match="feature definitions"):
        scoring.Scorecard.from_model(model)
    run = scoring.create_score_run(model, check=False)
    db_session.commit()
    jobs.run_pending()
    db_session.refresh(run)
    assert run.status == "failed" and "feature definitions" in run.error
    assert db_session.get(Job, run.job_id).attempts == 1  # a user error is not retried


def test_area_run_is_a_preview_ranked_within_the_area(db_session, calibration, statisticians, households):
    inside = register(households, 4)
    outside = register(households, 2, union=households.dhaka_union())
    model = new_model(calibration, statisticians, activate=False)
    run = scoring.create_score_run(model, area_code=RURAL_UNION[:4], with_job=False)
    scoring.execute_score_run(run)
    rows = rows_of(run)
    assert {h.id for h in inside} <= set(rows) and not ({h.id for h in outside} & set(rows))
    assert all(r.national_rank is None and r.division_rank is None for r in rows.values())
    assert all(r.district_rank is not None and r.union_rank is not None for r in rows.values())
    assert run.status == "complete" and scoring.current_run(model.id) is None


def test_a_run_over_an_area_without_households_completes_empty(db_session, calibration, statisticians):
    model = new_model(calibration, statisticians, activate=False)
    run = scoring.create_score_run(model, area_code="60", with_job=False)  # Sylhet: no test households
    summary = scoring.execute_score_run(run)
    assert summary["households_scored"] == 0 and run.status == "complete" and not rows_of(run)


def test_households_that_cannot_be_scored_are_reported_not_hidden(
    db_session, calibration, statisticians, households, monkeypatch
):
    register(households, 3)
    odd = households.create(rooms=3)
    model = new_model(calibration, statisticians, activate=False)
    original = scoring.Scorecard.score

    def lose_one(self, profile):
        features, strata, predicted = original(self, profile)
        strata = strata.copy()
        strata[profile.index == str(odd.id)] = None
        predicted = np.where(profile.index == str(odd.id), np.nan, predicted)
        return features, strata, predicted

    monkeypatch.setattr(scoring.Scorecard, "score", lose_one)
    run = scoring.create_score_run(model, with_job=False)
    summary = scoring.execute_score_run(run)
    assert summary["households_not_scored"] == 1
    assert odd.id not in rows_of(run)
    assert "1 not scored: missing stratum variable (urban)" in run.error and odd.household_id in run.error


def test_starting_runs_needs_a_statistician_and_refuses_duplicates(
    db_session, calibration, statisticians, households, make_user
):
    model = new_model(calibration, statisticians)  # queues a full run
    with pytest.raises(scoring.ScoreRunConflict):
        scoring.start_score_run(statisticians[0])
    run = scoring.start_score_run(statisticians[0], area_code=RURAL_UNION)
    assert run.model_id == model.id and run.area_code == RURAL_UNION and run.job_id
    for role in ("admin", "supervisor", "programme_officer", "viewer"):
        with pytest.raises(AccessDenied):
            scoring.start_score_run(make_user(role, areas=["10"] if role == "supervisor" else ()))


# --- why this score ---------------------------------------------------------------------------------


def test_contributions_add_up_to_the_stored_prediction(db_session, calibration, statisticians, households):
    target = register(households, 3)[1]
    model = new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    explanation = scoring.contributions(target)
    row = scoring.score_of(target)
    assert explanation["model_id"] == model.id and explanation["stratum"] == row.stratum == "rural"
    total = explanation["intercept"] + sum(item["contribution"] for item in explanation["contributions"])
    assert total == pytest.approx(explanation["predicted"], abs=1e-9)
    assert explanation["predicted"] == pytest.approx(row.predicted_log_pc, abs=1e-12)
    assert explanation["score"] == pytest.approx(row.score)
    weights = model.coefficients["wls"]["rural"]["coefficients"]
    assert {i["feature"] for i in explanation["contributions"]} == set(weights)
    for item in explanation["contributions"]:
        assert item["weight"] == weights[item["feature"]]
        assert item["contribution"] == pytest.approx(item["weight"] * item["value"])
        assert item["description"]
    magnitudes = [abs(i["contribution"]) for i in explanation["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)

    view = scoring.household_score_view(target)
    assert view["status"] == "scored" and view["ranks"]["union"]["rank"] == row.union_rank


def test_display_score_mapping():
    low, high = scoring.SCORE_ANCHORS_TK
    assert scoring.display_score(math.log(low)) == 0.0
    assert scoring.display_score(math.log(high)) == 100.0
    assert scoring.display_score(math.log(100)) == 0.0 and scoring.display_score(math.log(10**6)) == 100.0
    assert float(scoring.display_score(math.log(math.sqrt(low * high)))) == pytest.approx(50.0)


# --- incremental re-scores ------------------------------------------------------------------------


@pytest.fixture
def supervisors(make_user):
    return make_user("enumerator", areas=["10"]), make_user("supervisor", areas=["10"])


def approve_edit(household, supervisors, **changes):
    enumerator, supervisor = supervisors
    cr = crs.submit_change(
        enumerator,
        "edit_household",
        household_id=household.household_id,
        base_version=household.current_version,
        payload={"household": changes},
        reason="field visit",
    )
    crs.approve_change(cr.id, supervisor)
    db.session.commit()
    return cr


def test_approval_rescores_the_household_into_the_current_run(
    db_session, calibration, statisticians, households, supervisors
):
    neighbours = register(households, 5)
    target = neighbours[2]
    model = new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    run = scoring.current_run()
    before = scoring.score_of(target)
    old = (before.predicted_log_pc, before.household_version)

    approve_edit(target, supervisors, dwelling_structure=1, wall_material=5, roof_material=4, floor_material=3,
                 asset_refrigerator=True, asset_motorcycle=True, electricity=1)
    queued = db_session.scalars(select(Job).where(Job.kind == scoring.RESCORE_JOB)).all()
    assert len(queued) == 1 and queued[0].payload["household_pk"] == target.id
    assert queued[0].max_attempts == scoring.RESCORE_ATTEMPTS
    # The queued job is audited in the approval's transaction, as the approver, under its own id.
    audited = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "job.enqueue", AuditEvent.object_id == str(queued[0].id))
    ).all()
    assert [(e.actor_id, e.object_type) for e in audited] == [(queued[0].created_by_id, "job")]
    assert queued[0].created_by_id == supervisors[1].id
    jobs.run_pending()

    assert scoring.current_run() == run  # updated in place, not a new run
    row = scoring.score_of(target)
    assert row.household_version == target.current_version == old[1] + 1
    assert row.predicted_log_pc > old[0] and row.incremental == 1 and row.model_id == model.id
    assert row.predicted_log_pc == pytest.approx(scoring.contributions(target)["predicted"])
    # Union and upazila ranks are exact again; the national rank is the household's exact position.
    everyone = sorted(rows_of(run).values(), key=lambda r: (r.predicted_log_pc, r.household_pk))
    union_pks = set(db_session.scalars(select(Household.id).where(Household.union_code == target.union_code)))
    in_union = [r for r in everyone if r.household_pk in union_pks]
    n = len(in_union)
    assert [r.union_rank for r in in_union] == list(range(1, n + 1))
    assert [r.union_percentile for r in in_union] == pytest.approx([i / n for i in range(1, n + 1)])
    assert row.national_rank == everyone.index(row) + 1
    assert scoring.household_score_view(target)["status"] == "scored"


def test_a_failed_rescore_is_retried_never_skipped(
    db_session, calibration, statisticians, households, supervisors, monkeypatch
):
    target = register(households, 2)[0]
    new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    original = scoring.rescore_household
    calls = []

    def flaky(household_pk, *, actor=None):
        calls.append(household_pk)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return original(household_pk, actor=actor)

    monkeypatch.setattr(scoring, "rescore_household", flaky)
    approve_edit(target, supervisors, rooms=5)
    jobs.run_pending()
    job = db_session.scalars(select(Job).where(Job.kind == scoring.RESCORE_JOB)).one()
    assert job.status == "queued" and "database went away" in job.error
    assert scoring.score_of(target).household_version == target.current_version - 1
    job.run_after = utcnow()
    db_session.commit()
    jobs.run_pending()
    assert db_session.get(Job, job.id).status == "succeeded"
    assert scoring.score_of(target).household_version == target.current_version
    assert scoring.pending_rescores() == {"succeeded": 1}


def test_rescore_without_a_complete_run_waits_for_the_full_run(
    db_session, calibration, statisticians, households, supervisors
):
    target = register(households, 2)[0]
    new_model(calibration, statisticians)  # its full run is queued, not run
    result = scoring.rescore_household(target.id)
    assert result["status"] == "skipped" and "no complete run" in result["reason"]


def test_deactivated_household_leaves_the_current_run(db_session, calibration, statisticians, households):
    from registry.households import snapshot_of, write_version

    group = register(households, 4)
    target = group[0]
    new_model(calibration, statisticians)
    db_session.commit()
    jobs.run_pending()
    snapshot = snapshot_of(target)
    write_version(target, snapshot["household"], snapshot["members"], actor=None, source="test",
                  status="inactive", inactive_reason="migrated")
    result = scoring.rescore_household(target.id)
    assert result["status"] == "removed"
    assert scoring.score_of(target) is None
    union_pks = set(db_session.scalars(select(Household.id).where(Household.union_code == target.union_code)))
    ranks = sorted(r.union_rank for r in rows_of(scoring.current_run()).values() if r.household_pk in union_pks)
    assert ranks == list(range(1, len(ranks) + 1))


# --- model switches ---------------------------------------------------------------------------------


def test_a_model_switch_mid_run_never_mixes_models_inside_a_run(db_session, calibration, statisticians, households):
    register(households, 6)
    model_a = new_model(calibration, statisticians, name="A")
    db_session.commit()
    jobs.run_pending()
    model_b = new_model(calibration, statisticians, activate=False, name="B")
    run_a = scoring.create_score_run(model_a, with_job=False)
    switched = []

    def switch(done, total=None, message=None, force=False):
        if done and not switched:
            pmt_models.activate_model(model_b, statisticians[1])  # queues B's full run
            switched.append(done)

    scoring.execute_score_run(run_a, progress=switch, chunk_size=2)
    db_session.commit()
    assert switched
    assert set(db_session.scalars(select(HouseholdScore.model_id).where(HouseholdScore.run_id == run_a.id))) == {
        model_a.id
    }
    assert scoring.current_run() is None  # B is active and not scored yet: no mixing with A's scores
    assert scoring.current_run(model_a.id) == run_a
    jobs.run_pending()
    run_b = scoring.current_run()
    assert run_b.model_id == model_b.id
    assert set(db_session.scalars(select(HouseholdScore.model_id).where(HouseholdScore.run_id == run_b.id))) == {
        model_b.id
    }


# --- PostgreSQL: concurrency with real commits ------------------------------------------------------


def test_run_completes_consistent_with_an_approval_committed_while_it_ran(
    app, postgres_only, calibration, monkeypatch
):
    """A household changed (and committed) while the run reads is re-read before the run completes."""
    from registry.households import create_household, snapshot_of, write_version
    from tests.factories import default_members, household_record

    created: dict[str, list] = {"households": [], "models": [], "runs": []}
    with app.app_context():
        try:
            for i in range(6):
                record = household_record(rooms=1 + i % 3)
                created["households"].append(create_household(record, default_members(), actor=None, source="test").id)
            payload = calibration.to_dict()
            model = PmtModel(
                name="concurrency", status="published", method="wls", spec=payload["spec"],
                strata_variables=list(payload["spec"]["strata"]), coefficients=payload["coefficients"],
                poverty_lines=payload["poverty_lines"], extra_levels={},
                feature_definition_version=payload["feature_definition_version"],
                training_data_hash=payload["training_data_hash"], library_versions={}, report={},
                n_households=payload["n_households"],
            )
            db.session.add(model)
            db.session.flush()
            created["models"].append(model.id)
            run = scoring.create_score_run(model, with_job=False)
            created["runs"].append(run.id)
            db.session.commit()
            target_pk = created["households"][0]
            reading = threading.Event()
            changed = threading.Event()

            def change_while_reading(done, total=None, message=None, force=False):
                if done and not reading.is_set():
                    reading.set()
                    assert changed.wait(20)

            def change():
                assert reading.wait(20)
                with app.app_context():
                    household = db.session.get(Household, target_pk)
                    snapshot = snapshot_of(household)
                    write_version(household, {**snapshot["household"], "rooms": 7, "asset_computer": True},
                                  snapshot["members"], actor=None, source="test")
                    db.session.commit()
                    db.session.remove()
                changed.set()

            worker = threading.Thread(target=change)
            worker.start()
            summary = scoring.execute_score_run(
                db.session.get(ScoreRun, run.id), progress=change_while_reading, chunk_size=2
            )
            db.session.commit()
            worker.join()
            assert summary["reconciled"] >= 1
            # The run read through the helper thread's connection (the session here may open others);
            # it reads exactly what the session's own connection reads.
            reader = scoring._RegistryReader(prefetch=True)
            assert reader.prefetch
            pks, _ = reader.active_ids()
            statements = [
                (reader._households.sql(Household.id.between(int(pks[i]), int(pks[min(i + 1, len(pks) - 1)]))),
                 reader._members.sql(Household.id > 0))
                for i in range(0, len(pks), 2)
            ][:3]
            assert list(scoring._prefetched(statements)) == list(reader._fetched(statements))
            row = db.session.get(HouseholdScore, (run.id, target_pk))
            assert row.household_version == 2
            assert set(db.session.scalars(select(HouseholdScore.household_pk).where(
                HouseholdScore.run_id == run.id))) >= set(created["households"])
        finally:
            db.session.rollback()
            db.session.execute(delete(HouseholdScore).where(HouseholdScore.run_id.in_(created["runs"])))
            db.session.execute(delete(ScoreRun).where(ScoreRun.id.in_(created["runs"])))
            db.session.execute(delete(Household).where(Household.id.in_(created["households"])))
            db.session.execute(delete(PmtModel).where(PmtModel.id.in_(created["models"])))
            db.session.commit()
            db.session.remove()
