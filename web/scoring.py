"""Score pages: score runs with their progress, starting a re-score, and "why this score".

Statisticians start runs; statisticians, programme officers, grievance officers and viewers
read run status (no personal data in it). A household's score page is open to the roles that
may open the household itself, within their areas.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import NumberRange, Optional, Regexp

from models import db
from registry import access, jobs
from registry import households as hh
from registry.geo import UnknownAreaError
from targeting import scoring
from targeting.pmt_models import ModelNotFound, get_active_model
from web.views import register_nav

bp = Blueprint("scoring", __name__)
register_nav(_l("Scores"), "scoring.run_list", scoring.RUN_READER_ROLES)

#: Bars drawn in the "why this score" chart (the largest contributions; the table lists all).
CHART_BARS = 25


class StartRunForm(FlaskForm):
    model_id = IntegerField(_l("Model version (empty: the active model)"), validators=[Optional(), NumberRange(min=1)])
    area = StringField(
        _l("Area code (empty: the whole registry)"),
        validators=[Optional(), Regexp(r"^\d{2}(\d{2}){0,3}$", message=_l("A BBS code of 2, 4, 6 or 8 digits."))],
    )


@bp.route("/pmt/score-runs", methods=["GET", "POST"])
def run_list():
    """Recent score runs; statisticians start a full or area re-score here."""
    scoring.require_run_reader(current_user)
    form = StartRunForm()
    can_start = current_user.role in scoring.RUN_ROLES
    if request.method == "POST":
        if not can_start:
            raise access.AccessDenied(_("Only statisticians start score runs."))
        if form.validate_on_submit():
            try:
                run = scoring.start_score_run(
                    current_user, model_id=form.model_id.data, area_code=form.area.data or None
                )
            except (scoring.ScoringError, ModelNotFound, UnknownAreaError) as exc:
                db.session.rollback()
                flash(str(exc), "error")
            else:
                db.session.commit()
                if current_app.config.get("JOBS_INLINE"):
                    jobs.run_pending()
                flash(_("Score run %(id)s started.", id=run.id), "info")
                return redirect(url_for("scoring.run_detail", run_id=run.id))
    runs = [r for r in scoring.list_score_runs() if r.area_code is None or access.in_scope(current_user, r.area_code)]
    views = scoring.run_views(runs)
    return render_template(
        "scoring/runs.html",
        runs=views,
        form=form,
        can_start=can_start,
        active=get_active_model(),
        any_running=any(v["status"] == "running" for v in views),
        rescores=scoring.pending_rescores(),
    ), (400 if form.errors else 200)


@bp.route("/pmt/score-runs/<int:run_id>")
def run_detail(run_id: int):
    """One run's status, with a progress bar while it runs."""
    run = scoring.get_score_run(run_id)
    scoring.require_run_reader(current_user, run)
    return render_template("scoring/run.html", run=scoring.run_view(run))


@bp.route("/pmt/score-lookup")
def lookup():
    """Jump from a registry id typed on the runs page to that household's score."""
    household_id = (request.args.get("household_id") or "").strip()
    if not household_id:
        abort(400, description=_("Give a household id."))
    return redirect(url_for("scoring.household_score", household_id=household_id))


@bp.route("/households/<household_id>/score")
def household_score(household_id: str):
    """Why this score: the household's score, ranks, and each feature's contribution."""
    household = hh.get_household(household_id)
    access.require_household_reader(current_user, household)
    view = scoring.household_score_view(household)
    chart = contribution_chart(view["explanation"]["contributions"]) if view["explanation"] else None
    return render_template("scoring/household.html", household=household, view=view, chart=chart)


def contribution_chart(items: list[dict], bars: int = CHART_BARS) -> dict | None:
    """Geometry of a horizontal bar chart (inline SVG): negative contributions to the left of the
    axis, positive to the right, longest bar = half the plotting width."""
    shown = [i for i in items if i["contribution"]][:bars]
    if not shown:
        return None
    label_width, plot_width, bar_height, gap = 230, 420, 16, 4
    largest = max(abs(i["contribution"]) for i in shown)
    axis = label_width + plot_width / 2
    rows = []
    for n, item in enumerate(shown):
        length = abs(item["contribution"]) / largest * (plot_width / 2 - 40)
        positive = item["contribution"] > 0
        rows.append(
            {
                "feature": item["feature"],
                "value": item["contribution"],
                "y": n * (bar_height + gap),
                "x": axis if positive else axis - length,
                "width": max(length, 1.0),
                "positive": positive,
                "text_x": axis + length + 4 if positive else axis - length - 4,
            }
        )
    return {
        "rows": rows,
        "width": label_width + plot_width,
        "height": len(shown) * (bar_height + gap),
        "bar_height": bar_height,
        "axis": axis,
        "label_width": label_width,
    }
