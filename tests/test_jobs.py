"""Background jobs: success, retries, user errors, crash recovery, exclusive claims."""

import datetime as dt
import threading

import pytest
from sqlalchemy import select, update

from models import Job
from models.base import utcnow
from registry import jobs


@pytest.fixture
def isolated(db_session):
    """Jobs left in the shared database by other tests (PostgreSQL concurrency tests commit for real)
    must not be run or counted here: park them for this test (rolled back afterwards)."""
    db_session.execute(update(Job).where(Job.status == "queued").values(run_after=utcnow() + dt.timedelta(days=1)))
    db_session.execute(update(Job).where(Job.status == "running").values(heartbeat_at=utcnow()))
    return db_session


@pytest.fixture
def handlers():
    calls = []

    @jobs.job_handler("test.ok")
    def ok(ctx):
        ctx.progress(1, 2, "half", force=True)
        calls.append(ctx.payload["n"])
        return {"n": ctx.payload["n"]}

    @jobs.job_handler("test.crash")
    def crash(ctx):
        raise RuntimeError("disk on fire")

    @jobs.job_handler("test.bad_input")
    def bad_input(ctx):
        raise jobs.JobError("column 'rooms' is missing")

    return calls


def test_job_runs_and_records_result(db_session, handlers, isolated, make_user):
    user = make_user("supervisor", areas=["30"])
    job = jobs.enqueue("test.ok", {"n": 7}, actor=user)
    db_session.commit()
    assert jobs.run_pending() == 1
    job = db_session.get(Job, job.id)
    assert job.status == "succeeded" and job.result == {"n": 7} and job.progress_total == 2
    view = jobs.job_view(job)
    assert view["progress"]["done"] == 1 and view["error"] is None


def test_crashing_job_is_retried_then_failed(db_session, handlers, isolated):
    job = jobs.enqueue("test.crash", {}, actor=None, max_attempts=2)
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "queued" and job.attempts == 1 and "disk on fire" in job.error
    job.run_after = utcnow()
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "failed" and job.attempts == 2
    assert jobs.job_view(job)["error"] == "RuntimeError: disk on fire"  # no trace for users


def test_user_error_fails_without_retry(db_session, handlers, isolated):
    job = jobs.enqueue("test.bad_input", {}, actor=None)
    db_session.commit()
    jobs.run_pending()
    job = db_session.get(Job, job.id)
    assert job.status == "failed" and job.attempts == 1 and job.error == "column 'rooms' is missing"


def test_job_of_a_dead_worker_is_requeued(db_session, handlers, isolated):
    job = jobs.enqueue("test.ok", {"n": 1}, actor=None)
    job.status = "running"
    job.heartbeat_at = utcnow() - dt.timedelta(hours=1)
    db_session.commit()
    assert jobs.requeue_stale() == 1
    assert jobs.run_pending() == 1
    assert db_session.get(Job, job.id).status == "succeeded"


def test_two_workers_never_claim_the_same_job(app, postgres_only, handlers):
    """On PostgreSQL, SKIP LOCKED hands each job to exactly one worker."""
    from models import db

    with app.app_context():
        created = [jobs.enqueue("test.ok", {"n": i}, actor=None).id for i in range(20)]
        db.session.commit()
    claimed: list[int] = []
    lock = threading.Lock()

    def work():
        with app.app_context():
            while True:
                job = jobs.claim_next("t")
                if job is None:
                    break
                with lock:
                    claimed.append(job.id)
                jobs.run_job(job)
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(i for i in claimed if i in created) == sorted(created)
    finally:
        with app.app_context():
            for job in db.session.scalars(select(Job).where(Job.id.in_(created))):
                db.session.delete(job)
            db.session.commit()


def test_a_failing_housekeeping_task_is_logged_and_the_others_still_run(db_session, monkeypatch, caplog):
    ran = []

    def broken():
        raise RuntimeError("disk gone")

    def fine():
        ran.append(True)

    monkeypatch.setattr(jobs, "_HOUSEKEEPING", [broken, fine])
    jobs.run_housekeeping()
    assert ran == [True]
    assert "housekeeping task broken failed" in caplog.text
