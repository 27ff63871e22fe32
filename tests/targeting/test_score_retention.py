"""Retention of score runs: old superseded runs lose their per-household rows unless a list needs them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from models import AuditEvent, HouseholdScore, db
from models.base import utcnow
from registry.access import AccessDenied
from targeting import eligibility as el
from targeting import scoring
from tests.targeting.score_helpers import make_model, make_run
from tests.targeting.test_eligibility import MINISTRY, make_household, rule


def _rows(run) -> int:
    return db.session.scalar(select(func.count()).where(HouseholdScore.run_id == run.id))


def _age(run, days: int) -> None:
    run.status = "superseded"
    run.finished_at = utcnow() - dt.timedelta(days=days)


@pytest.fixture
def runs(db_session, households, make_user):
    officer = make_user("programme_officer")
    officer.ministry = MINISTRY
    pair = [make_household(households), make_household(households)]
    model = make_model()
    listed = make_run(model, {pair[0]: 7.0, pair[1]: 7.5})
    programme = el.create_programme(rule(name="Kept for its list"), officer)
    el.build_list(programme, officer)
    old = make_run(model, {pair[0]: 7.1, pair[1]: 7.4})
    recent = make_run(model, {pair[0]: 7.2, pair[1]: 7.3})
    current = make_run(model, {pair[0]: 7.3, pair[1]: 7.2})
    _age(listed, 200)
    _age(old, 200)
    _age(recent, 10)
    db_session.flush()
    return {"listed": listed, "old": old, "recent": recent, "current": current}


def test_dry_run_says_what_would_go_and_deletes_nothing(db_session, runs):
    outcome = scoring.prune_score_runs(None, dry_run=True)
    assert outcome.runs == [runs["old"].id] and outcome.rows == 2 and outcome.dry_run
    assert outcome.kept_for_lists == [runs["listed"].id]
    assert all(_rows(run) == 2 for run in runs.values())


def test_prune_deletes_only_old_unlisted_superseded_runs_and_audits(db_session, runs, make_user):
    admin = make_user("admin")
    outcome = scoring.prune_score_runs(admin, older_than_days=90)
    assert outcome.runs == [runs["old"].id] and outcome.rows == 2
    db_session.refresh(runs["old"])
    assert runs["old"].status == "pruned" and _rows(runs["old"]) == 0
    assert runs["old"].households_scored == 2  # the run's record stays
    for name in ("listed", "recent", "current"):
        assert _rows(runs[name]) == 2, name
    assert scoring.current_run() == runs["current"]
    event = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "score_run.prune", AuditEvent.object_id == str(runs["old"].id))
    )
    assert event is not None and event.actor_id == admin.id and event.before["rows"] == 2
    # Nothing left to prune: a second pass is a no-op.
    assert scoring.prune_score_runs(admin).runs == []
    # A shorter retention reaches the recent run too, never the listed or current one.
    assert scoring.prune_score_runs(admin, older_than_days=5).runs == [runs["recent"].id]


def test_only_admins_prune(db_session, runs, make_user):
    with pytest.raises(AccessDenied):
        scoring.prune_score_runs(make_user("statistician"))
    assert _rows(runs["old"]) == 2


def test_command_line_dry_run(runner, runs):
    result = runner.invoke(args=["pmt", "prune-runs", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 2 household scores of 1 superseded run(s)" in result.output
    assert f"kept 1 run(s) that eligibility lists were built from: {runs['listed'].id}" in result.output
    assert _rows(runs["old"]) == 2
