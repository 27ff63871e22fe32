"""Background jobs: enqueue, claim, run with progress, retry, recover after a crash.

A job is a row in ``jobs``. ``socreg worker`` claims queued jobs one at a time (``SELECT …
FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers never take the same job; SQLite
serialises writers anyway), runs the handler registered for the job's kind, and records the
outcome. Progress is written through a separate short transaction so that readers see it while
the job's own transaction is still open. A job whose worker died (no heartbeat for
``STALE_AFTER``) is put back in the queue; handlers must therefore be idempotent, which every
handler here is (imports skip households already registered, scores are recomputed).

In tests and on single-process set-ups (``JOBS_INLINE``) the API runs a job right after
enqueueing it, through the same code path.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from models import Job, User, db
from models.base import utcnow
from registry.audit import record_event

log = logging.getLogger(__name__)

STALE_AFTER = dt.timedelta(minutes=10)
RETRY_BACKOFF = dt.timedelta(seconds=30)
#: How often progress is written at most (seconds), so tight loops do not hammer the database.
PROGRESS_INTERVAL = 0.5

Handler = Callable[["JobContext"], dict]
_HANDLERS: dict[str, Handler] = {}
#: Modules that register handlers; imported by the worker before it claims anything.
HANDLER_MODULES: list[str] = ["registry.importer", "targeting.calibration_jobs", "registry.dedup", "targeting.scoring"]


class JobError(RuntimeError):
    """A job failed for a reason the user should read (no retry: the input is wrong)."""


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``func(context) -> result dict`` as the handler of jobs of ``kind``."""

    def decorator(func: Handler) -> Handler:
        _HANDLERS[kind] = func
        return func

    return decorator


def load_handlers() -> None:
    import importlib

    for module in HANDLER_MODULES:
        importlib.import_module(module)


#: Built once: every approval queues a re-score through it.
_INSERT_JOB = insert(Job.__table__)


def queue_job(kind: str, payload: dict, *, actor: User | None, max_attempts: int = 3) -> int:
    """Queue a job and audit it; return its id (committed by the caller).

    One INSERT, without flushing the session: a caller inside a larger unit of work (an approval's
    re-score hook) then writes its own changes and this audit event with its next flush, instead of
    flushing once more only to learn the job's id."""
    values = {
        "kind": kind,
        "payload": payload,
        "max_attempts": max_attempts,
        "created_by_id": actor.id if actor else None,
    }
    with db.session.no_autoflush:  # the row depends on nothing pending
        # The new key by RETURNING where the database has it, else by the cursor's lastrowid.
        job_id = db.session.execute(_INSERT_JOB, values).inserted_primary_key[0]
    record_event(actor, "job.enqueue", "job", job_id, summary=f"queued {kind} job {job_id}")
    return job_id


def enqueue(kind: str, payload: dict, *, actor: User | None, max_attempts: int = 3) -> Job:
    """Queue a job (committed by the caller), audit it, and return it."""
    return db.session.get(Job, queue_job(kind, payload, actor=actor, max_attempts=max_attempts))


@dataclass
class JobContext:
    """What a handler gets: the job, its acting user, and a progress reporter."""

    job: Job
    actor: User | None
    _last_write: float = 0.0

    @property
    def payload(self) -> dict:
        return self.job.payload

    def progress(self, done: int, total: int | None = None, message: str | None = None, force: bool = False) -> None:
        """Record progress (throttled), visible to readers at once."""
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL:
            return
        self._last_write = now
        _write_progress(self.job.id, done, total, message)


def _write_progress(job_id: int, done: int, total: int | None, message: str | None) -> None:
    values = {"progress_done": done, "heartbeat_at": utcnow()}
    if total is not None:
        values["progress_total"] = total
    if message is not None:
        values["progress_message"] = message[:200]
    stmt = update(Job).where(Job.id == job_id).values(**values)
    engine = db.session.get_bind()
    if engine.dialect.name != "sqlite":
        with Session(db.engine) as side:
            written = side.execute(stmt).rowcount
            side.commit()
        if written:
            return
    # SQLite has one writer, so a second connection would wait for the job's own transaction;
    # (and a job row not yet committed is invisible to another connection). Progress is then
    # recorded inside the job's transaction and seen when it ends.
    db.session.execute(stmt)


def claim_next(worker_name: str | None = None) -> Job | None:
    """Take the oldest runnable queued job, marking it running (committed)."""
    requeue_stale()
    now = utcnow()
    stmt = (
        select(Job)
        .where(Job.status == "queued", Job.run_after <= now)
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = db.session.scalar(stmt)
    if job is None:
        db.session.rollback()
        return None
    job.status = "running"
    job.attempts += 1
    job.started_at = now
    job.heartbeat_at = now
    job.worker = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    db.session.commit()
    return job


def requeue_stale(stale_after: dt.timedelta = STALE_AFTER) -> int:
    """Put back jobs whose worker stopped sending heartbeats (it crashed or was killed)."""
    cutoff = utcnow() - stale_after
    result = db.session.execute(
        update(Job)
        .where(Job.status == "running", Job.heartbeat_at < cutoff)
        .values(status="queued", worker=None, progress_message="requeued: the previous worker stopped responding")
    )
    if result.rowcount:
        log.warning("requeued %s stale job(s)", result.rowcount)
    db.session.commit()
    return result.rowcount or 0


def run_job(job: Job) -> Job:
    """Run a claimed job's handler; commit its work and outcome, or roll back and record the error."""
    handler = _HANDLERS.get(job.kind)
    job_id = job.id
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    if handler is None:
        return _finish_failed(job_id, f"no handler for job kind {job.kind!r}", retry=False)
    context = JobContext(job=job, actor=actor)
    try:
        result = handler(context)
    except JobError as exc:
        db.session.rollback()
        return _finish_failed(job_id, str(exc), retry=False)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the job, never lost
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        return _finish_failed(job_id, f"{type(exc).__name__}: {exc}", retry=True, trace=traceback.format_exc())
    job = db.session.get(Job, job_id)
    job.status = "succeeded"
    job.result = result or {}
    job.finished_at = utcnow()
    job.heartbeat_at = job.finished_at
    job.error = None
    record_event(actor, f"job.{job.kind}.succeeded", "job", job_id, summary=f"{job.kind} job {job_id} succeeded")
    db.session.commit()
    return job


def _finish_failed(job_id: int, message: str, *, retry: bool, trace: str | None = None) -> Job:
    job = db.session.get(Job, job_id)
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    if retry and job.attempts < job.max_attempts:
        job.status = "queued"
        job.run_after = utcnow() + RETRY_BACKOFF * job.attempts
        job.progress_message = f"attempt {job.attempts} failed; will retry"
    else:
        job.status = "failed"
        job.finished_at = utcnow()
    job.error = message if trace is None else f"{message}\n\n{trace}"[:20000]
    record_event(actor, f"job.{job.kind}.failed", "job", job_id, summary=f"{job.kind} job {job_id}: {message}"[:500])
    db.session.commit()
    return job


def run_pending(max_jobs: int | None = None, worker_name: str | None = None) -> int:
    """Claim and run queued jobs until none is left (or ``max_jobs``); returns how many ran."""
    load_handlers()
    ran = 0
    while max_jobs is None or ran < max_jobs:
        job = claim_next(worker_name)
        if job is None:
            break
        run_job(job)
        ran += 1
    return ran


#: Tasks the worker runs now and then between jobs (retention rules); each commits its own work.
_HOUSEKEEPING: list[Callable[[], object]] = []
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)


def housekeeping(func: Callable[[], object]) -> Callable[[], object]:
    """Register a task for the worker to run every :data:`HOUSEKEEPING_EVERY` (at import time)."""
    _HOUSEKEEPING.append(func)
    return func


def run_housekeeping() -> None:
    """Run every registered housekeeping task; a failing task is logged and rolled back, never fatal."""
    load_handlers()
    for task in _HOUSEKEEPING:
        try:
            task()
            db.session.commit()
        except Exception:  # noqa: BLE001 - housekeeping must not stop the worker
            db.session.rollback()
            log.exception("housekeeping task %s failed", getattr(task, "__name__", task))


def work_forever(poll_seconds: float = 2.0, worker_name: str | None = None) -> None:
    """The worker loop: run jobs as they arrive; sleep when the queue is empty; housekeeping
    (:func:`housekeeping`) at start and then every :data:`HOUSEKEEPING_EVERY`."""
    load_handlers()
    next_housekeeping = time.monotonic()
    while True:
        if time.monotonic() >= next_housekeeping:
            run_housekeeping()
            next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY.total_seconds()
        if run_pending(worker_name=worker_name) == 0:
            time.sleep(poll_seconds)


def get_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


class JobNotFound(LookupError):
    def __init__(self, job_id: int):
        super().__init__(f"no job {job_id}")


def job_view(job: Job) -> dict:
    """A job's status for the API and pages (errors without traces)."""
    total = job.progress_total
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": {
            "done": job.progress_done,
            "total": total,
            "percent": round(100.0 * job.progress_done / total, 1) if total else None,
            "message": job.progress_message,
        },
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": job.result,
        "error": job.error.split("\n\n", 1)[0] if job.error else None,
    }
