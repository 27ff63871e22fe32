"""Import pages: upload two CSV files, follow the background job, read the outcome."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField

from models import db
from registry import access, importer
from web.views import register_nav

bp = Blueprint("import_pages", __name__, url_prefix="/imports")
register_nav(_l("Imports"), "import_pages.index", roles=importer.IMPORT_ROLES)


class ImportForm(FlaskForm):
    households = FileField(
        _l("Households file (households.csv)"),
        validators=[FileRequired(), FileAllowed(["csv"], _l("A .csv file, please."))],
    )
    members = FileField(
        _l("Members file (members.csv)"),
        validators=[FileRequired(), FileAllowed(["csv"], _l("A .csv file, please."))],
    )
    skip_invalid = BooleanField(_l("Import the valid households and skip the invalid ones"))


def _upload_root() -> Path:
    return Path(current_app.config.get("UPLOAD_FOLDER") or Path(current_app.instance_path) / "uploads")


@bp.route("", methods=["GET", "POST"])
def index():
    """The upload form and the user's recent imports."""
    access.require_role(current_user, *importer.IMPORT_ROLES)
    form = ImportForm()
    if form.validate_on_submit():
        try:
            job = importer.submit_import(
                _upload_root(),
                form.households.data.stream,
                form.members.data.stream,
                actor=current_user,
                skip_invalid=form.skip_invalid.data,
                households_name=form.households.data.filename or "households.csv",
                members_name=form.members.data.filename or "members.csv",
            )
        except importer.ImportFileError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            job_id = job.id
            if current_app.config.get("JOBS_INLINE"):
                importer.run_import_now(job_id)
            else:
                flash(_("The import is queued; this page shows its progress."), "info")
            return redirect(url_for("import_pages.detail", job_id=job_id))
    pii = access.can_see_pii(current_user)
    recent = [importer.import_view(j, can_see_pii=pii) for j in importer.list_import_jobs(current_user)]
    status = 200 if not form.errors else 400
    return render_template("imports/index.html", form=form, recent=recent), status


@bp.route("/<int:job_id>")
def detail(job_id: int):
    """An import's progress (the page refreshes itself while it runs) and its outcome."""
    job = importer.get_import_job(job_id, current_user)
    view = importer.import_view(job, can_see_pii=access.can_see_pii(current_user))
    return render_template("imports/detail.html", job=view, running=job.status in ("queued", "running"))


@bp.route("/<int:job_id>/report.csv")
def report(job_id: int):
    """The import's error report as CSV."""
    job = importer.get_import_job(job_id, current_user)
    lines = importer.iter_report(job, can_see_pii=access.can_see_pii(current_user))
    return Response(
        lines,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-report.csv"'},
    )
