"""Background calibration of uploaded surveys: the ``pmt.calibrate`` job.

The API and the upload page store the survey file(s) and the spec under the instance folder
(``<instance>/pmt_uploads/<uuid>/``) and queue a job whose payload names them; the handler
calibrates, writes the report to ``<instance>/pmt_reports/<model id>/`` and stores a draft
model created by the uploading statistician. A bad spec or survey fails the job at once (no
retry) with the message naming the key or column. The model and the job's outcome commit in
one transaction, so a job that dies half-way has created nothing and can simply run again.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from sqlalchemy import func, select

from models import Job, User, db
from models.base import utcnow
from registry.access import AccessDenied
from registry.jobs import JobContext, JobError, enqueue, job_handler, run_job
from targeting.calibration import DataError, SpecError, parse_spec
from targeting.pmt_models import ModelStateError, calibrate_files, headline_metrics, store_calibration

log = logging.getLogger(__name__)

JOB_KIND = "pmt.calibrate"
#: Folder under the instance folder that keeps uploaded surveys and specs (the models' training data).
UPLOADS_DIRNAME = "pmt_uploads"
_STEPS = 4


def enqueue_calibration(
    *,
    actor: User,
    survey_path: str | Path,
    members_path: str | Path | None,
    spec: dict,
    name: str,
    method: str | None,
    instance_path: str | Path,
    description: str | None = None,
    survey_filename: str | None = None,
) -> Job:
    """Queue the calibration of a stored upload (flushed; the caller commits).

    The spec and the survey's header are checked first, so a bad spec or a survey lacking
    the outcome or weight column is refused before anything is queued.
    """
    check_survey_header(survey_path, members_path, spec)
    return enqueue(
        JOB_KIND,
        {
            "survey_path": str(survey_path),
            "members_path": str(members_path) if members_path else None,
            "spec": spec,
            "name": name,
            "method": method,
            "description": description,
            "survey_filename": survey_filename,
            "instance_path": str(instance_path),
        },
        actor=actor,
        max_attempts=1,
    )


def run_job_now(job_id: int) -> Job:
    """Run a just-queued job in this process (``JOBS_INLINE``) through the worker's code path; commits.

    Claims exactly this job (not whatever else is queued), then lets
    :func:`registry.jobs.run_job` run the handler and record the outcome.
    """
    job = db.session.get(Job, job_id)
    if job is None or job.status != "queued":
        return job
    now = utcnow()
    job.status, job.started_at, job.heartbeat_at, job.worker = "running", now, now, "inline"
    job.attempts += 1
    db.session.commit()
    return run_job(job)


def last_job_id() -> int:
    """The highest job id so far (0 when there is none): a marker for :func:`run_jobs_queued_after`."""
    return db.session.scalar(select(func.max(Job.id))) or 0


def run_jobs_queued_after(marker: int, actor: User | None) -> list[Job]:
    """Run inline (``JOBS_INLINE``) the jobs ``actor`` queued after ``marker``, e.g. the full re-score
    that activating a model queues through its activation hooks. Commits."""
    ids = list(
        db.session.scalars(
            select(Job.id)
            .where(
                Job.id > marker, Job.status == "queued", Job.created_by_id == (actor.id if actor is not None else None)
            )
            .order_by(Job.id)
        )
    )
    return [run_job_now(job_id) for job_id in ids]


def check_survey_header(survey_path: str | Path, members_path: str | Path | None, spec: dict) -> None:
    """Cheap checks on the CSV headers (the full checks run in the job); raises ``DataError`` naming the column."""
    parsed = parse_spec(spec)
    header = _header(survey_path, "survey")
    mapped = set(parsed.mapping)
    for key, column in (("outcome", parsed.outcome), ("weight", parsed.weight)):
        if column and column not in header and column not in mapped:
            raise DataError(
                f"survey: {key} column {column!r} is not in the survey households file "
                f"(columns: {', '.join(header[:12])}{', ...' if len(header) > 12 else ''})"
            )
    if members_path is not None:
        if "household_id" not in header:
            raise DataError("survey: column household_id is missing (needed to link the members)")
        if "household_id" not in _header(members_path, "members"):
            raise DataError("members: column household_id is missing (needed to link the members)")


def _header(path: str | Path, label: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            row = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{label}: cannot read the CSV header: {exc}") from exc
    if not row or not any(cell.strip() for cell in row):
        raise DataError(f"{label}: the file has no header row")
    return [cell.strip() for cell in row]


@job_handler(JOB_KIND)
def run_calibration(context: JobContext) -> dict:
    """Calibrate the uploaded survey and store a draft model with its report."""
    payload = context.payload
    done = {"n": 0}

    def step(message: str) -> None:
        context.progress(done["n"], _STEPS, message, force=True)
        done["n"] += 1

    try:
        result = calibrate_files(payload["survey_path"], payload.get("members_path"), payload["spec"], step=step)
        step("writing the report and storing the draft model")
        model = store_calibration(
            result,
            name=payload["name"],
            method=payload.get("method"),
            actor=context.actor,
            instance_path=payload["instance_path"],
            description=payload.get("description"),
            survey_filename=payload.get("survey_filename"),
        )
    except (SpecError, ModelStateError, AccessDenied) as exc:
        # The input (or who sent it) is wrong: a retry would fail the same way.
        raise JobError(str(exc)) from exc
    context.progress(_STEPS, _STEPS, f"stored draft model {model.id}", force=True)
    log.info("calibration job %s stored draft model %s", context.job.id, model.id)
    return {
        "model_id": model.id,
        "status": model.status,
        "method": model.method,
        "training_data_hash": model.training_data_hash,
        "headline": headline_metrics(model),
        "warnings": model.report.get("warnings", []),
    }
