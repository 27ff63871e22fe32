"""Programme pages: the editor with a live preview count, the list page, the list diff, a household's
programmes and the cross-programme overlap.

Every page checks the role and the areas through ``targeting.eligibility`` (programme officers of
the programme's ministry edit and build; every role reads, area-bound roles within their areas).
"""

from __future__ import annotations

import json
import logging
import re

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.routing import BuildError
from wtforms import (
    FloatField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from models import db
from models.codes import AREA_LEVELS, SAFETY_NET_PROGRAMMES
from models.programme import PROGRAMME_STATUSES
from registry import access
from registry import households as hh
from targeting import eligibility as el
from targeting import rules
from web.views import register_nav

log = logging.getLogger(__name__)

bp = Blueprint("programmes", __name__)
register_nav(_l("Programmes"), "programmes.index")

METHOD_LABELS = {
    "poverty_line": _l("Below the poverty line of the household's stratum"),
    "score_below": _l("Score (0-100) below a cut-off"),
    "consumption_below": _l("Predicted consumption below a cut-off (Tk per person per month)"),
    "poorest": _l("The poorest X%, nationally or within each area"),
    "all": _l("Every scored household (criteria decide)"),
}
LEVEL_LABELS = {
    "national": _l("national"),
    "division": _l("division"),
    "district": _l("district"),
    "upazila": _l("upazila"),
    "union": _l("union"),
}
PRESET_LABELS = {
    "member_65_plus": _l("a member aged 65+"),
    "female_head": _l("female head"),
    "member_disability": _l("a member with a disability"),
    "child_under_5": _l("a child under 5"),
    "pregnant_or_lactating": _l("a pregnant or lactating woman"),
    "widowed_head": _l("a widowed head"),
    "cultivable_land_under_50": _l("cultivable land < 50 decimals"),
    "rural": _l("rural"),
    "not_on_oaa": _l("not receiving the Old Age Allowance"),
}
AREA_CODE = re.compile(r"^\d{2}(\d{2}){0,3}$")


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ProgrammeForm(FlaskForm):
    """The programme editor (CSRF-protected). The rule parts are validated by the eligibility service."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    ministry = StringField(_l("Owner ministry"), validators=[Optional(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=4000)])
    status = SelectField(_l("Status"), choices=[SelectChoice(s, s) for s in PROGRAMME_STATUSES], default="active")
    scope_areas = StringField(_l("Areas (BBS codes, separated by spaces or commas; empty = national)"))
    method = SelectField(
        _l("Targeting rule"), choices=[SelectChoice(k, v) for k, v in METHOD_LABELS.items()], default="poorest"
    )
    value = FloatField(_l("Cut-off"), validators=[Optional()])
    percent = FloatField(_l("Poorest (%)"), validators=[Optional(), NumberRange(min=0, max=100)])
    level = SelectField(
        _l("Within each"), choices=[SelectChoice(k, v) for k, v in LEVEL_LABELS.items()], default="national"
    )
    criteria = TextAreaField(_l("Extra criteria (JSON rule)"))
    exclude_programmes = MultiCheckboxField(_l("Not on the current list of"), coerce=int, choices=[])
    exclude_benefits = MultiCheckboxField(
        _l("Not already receiving"),
        choices=[SelectChoice(code, f"{code} – {label}") for code, label in SAFETY_NET_PROGRAMMES.items()],
    )
    quota_level = SelectField(
        _l("At most … households per"),
        choices=[SelectChoice("", _l("(no per-area quota)"))]
        + [SelectChoice(lvl, LEVEL_LABELS[lvl]) for lvl in AREA_LEVELS],
        default="",
    )
    quota_per_area = IntegerField(_l("Households per area"), validators=[Optional(), NumberRange(min=1)])
    quota_total = IntegerField(_l("Overall cap"), validators=[Optional(), NumberRange(min=1)])

    def load(self, programme) -> None:
        """Fill the form from a saved programme."""
        self.name.data = programme.name
        self.ministry.data = programme.ministry
        self.description.data = programme.description
        self.status.data = programme.status
        self.scope_areas.data = " ".join(programme.scope_areas or [])
        targeting = programme.targeting
        self.method.data = targeting["method"]
        self.value.data = targeting.get("value")
        self.percent.data = targeting.get("percent")
        self.level.data = targeting.get("level", "national")
        self.criteria.data = json.dumps(programme.criteria, indent=2, ensure_ascii=False) if programme.criteria else ""
        self.exclude_programmes.data = (programme.exclusions or {}).get("programmes", [])
        self.exclude_benefits.data = (programme.exclusions or {}).get("benefits", [])
        quotas = programme.quotas or {}
        self.quota_level.data = quotas.get("level", "")
        self.quota_per_area.data = quotas.get("per_area")
        self.quota_total.data = quotas.get("total")

    def rule_parts(self) -> dict:
        """The rule as the service reads it; raises ``RuleError`` for text that is not JSON."""
        problems = []
        targeting: dict = {"method": self.method.data}
        if self.method.data in ("score_below", "consumption_below"):
            targeting["value"] = self.value.data
        elif self.method.data == "poorest":
            targeting["percent"] = self.percent.data
            targeting["level"] = self.level.data
        criteria = None
        text = (self.criteria.data or "").strip()
        if text:
            try:
                criteria = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(("criteria", text[:40], _("not valid JSON: %(error)s", error=str(exc))))
        scope = [c for c in re.split(r"[\s,;]+", self.scope_areas.data or "") if c]
        for i, code in enumerate(scope):
            if not AREA_CODE.match(code):
                problems.append((f"scope_areas[{i}]", code, _("expected a BBS area code of 2, 4, 6 or 8 digits")))
        if problems:
            raise rules.RuleError(problems)
        quotas = {}
        if self.quota_level.data:
            quotas["level"] = self.quota_level.data
        if self.quota_per_area.data:
            quotas["per_area"] = self.quota_per_area.data
        if self.quota_total.data:
            quotas["total"] = self.quota_total.data
        exclusions = {}
        if self.exclude_programmes.data:
            exclusions["programmes"] = list(self.exclude_programmes.data)
        if self.exclude_benefits.data:
            exclusions["benefits"] = list(self.exclude_benefits.data)
        return {
            "scope_areas": scope,
            "targeting": targeting,
            "criteria": criteria,
            "exclusions": exclusions,
            "quotas": quotas,
        }

    def definition(self) -> dict:
        return {
            "name": self.name.data,
            "ministry": self.ministry.data or None,
            "description": self.description.data or None,
            "status": self.status.data,
            **self.rule_parts(),
        }


class BuildForm(FlaskForm):
    """A bare form: the CSRF token of the build button."""


def _form(programme=None) -> ProgrammeForm:
    form = ProgrammeForm()
    others = [p for p in el.list_programmes(include_archived=True) if programme is None or p.id != programme.id]
    form.exclude_programmes.choices = [SelectChoice(p.id, p.name) for p in others]
    return form


def _require_officer() -> None:
    access.require_role(current_user, el.MANAGER_ROLE)


def _validation_url(list_id: int) -> str | None:
    try:
        return url_for("validation.list_page", list_id=list_id)
    except BuildError:
        return None


@bp.errorhandler(el.EligibilityStateError)
def _state_error(error):
    return render_template("error.html", code=409, name=_("Conflict"), description=str(error)), 409


# --- programmes -------------------------------------------------------------------------------------


@bp.route("/programmes")
def index():
    """Every programme; programme officers may create one."""
    el.require_reader(current_user)
    archived = request.args.get("archived") == "1"
    rows = [el.programme_view(p, current_user) for p in el.list_programmes(include_archived=archived)]
    return render_template(
        "programmes/index.html", rows=rows, archived=archived, is_officer=current_user.role == el.MANAGER_ROLE
    )


def _save(form: ProgrammeForm, programme=None):
    """Create or update from the form; on a refused rule, the errors by JSON path."""
    try:
        definition = form.definition()
        if programme is None:
            programme = el.create_programme(definition, current_user)
        else:
            programme = el.update_programme(programme, definition, current_user)
    except rules.RuleError as exc:
        db.session.rollback()
        return None, exc.fields()
    db.session.commit()
    return programme, None


@bp.route("/programmes/new", methods=["GET", "POST"])
def new():
    """The editor for a new programme (programme officers)."""
    _require_officer()
    form = _form()
    if request.method == "GET":
        form.ministry.data = current_user.ministry
    errors = None
    if form.validate_on_submit():
        programme, errors = _save(form)
        if programme is not None:
            flash(_("Programme created."), "info")
            return redirect(url_for("programmes.detail", programme_id=programme.id))
    return _editor(form, None, errors)


@bp.route("/programmes/<int:programme_id>/edit", methods=["GET", "POST"])
def edit(programme_id: int):
    """The editor of a saved programme (its own officers)."""
    programme = el.get_programme(programme_id)
    el.require_manager(current_user, programme)
    form = _form(programme)
    if request.method == "GET":
        form.load(programme)
    errors = None
    if form.validate_on_submit():
        saved, errors = _save(form, programme)
        if saved is not None:
            flash(_("Programme saved (version %(v)s).", v=saved.version), "info")
            return redirect(url_for("programmes.detail", programme_id=programme_id))
    return _editor(form, programme, errors)


def _editor(form, programme, errors):
    status = 200 if request.method == "GET" or (not errors and not form.errors) else 422
    presets = [{"key": key, "label": str(PRESET_LABELS[key]), "rule": rule} for key, rule in rules.PRESETS.items()]
    return (
        render_template(
            "programmes/edit.html",
            form=form,
            programme=programme,
            errors=errors or {},
            presets=presets,
            household_attributes=list(rules.HOUSEHOLD_ATTRIBUTES),
            member_attributes=list(rules.MEMBER_ATTRIBUTES),
        ),
        status,
    )


@bp.route("/programmes/preview", methods=["POST"])
def preview():
    """The live preview: counts for the editor's form as it stands, or (``saved=1``) for the saved
    programme. JSON; CSRF-protected like every POST."""
    el.require_reader(current_user)
    programme_id = request.args.get("programme_id", type=int)
    programme = el.get_programme(programme_id) if programme_id else None
    if programme is None:
        _require_officer()
    try:
        if request.args.get("saved") == "1" and programme is not None:
            return jsonify({"ok": True, **el.preview(programme, current_user)})
        form = _form(programme)
        form.validate()
        # The name and texts do not change a count; only the rule's fields matter here.
        errors = {k: [str(m) for m in v] for k, v in form.errors.items() if k not in ("name", "description")}
        if errors:
            return jsonify({"ok": False, "errors": errors}), 422
        return jsonify({"ok": True, **el.preview(programme, current_user, form.rule_parts())})
    except rules.RuleError as exc:
        return jsonify({"ok": False, "errors": exc.fields()}), 422
    except el.EligibilityStateError as exc:
        return jsonify({"ok": False, "errors": {"score_run": [str(exc)]}}), 409


@bp.route("/programmes/<int:programme_id>")
def detail(programme_id: int):
    """A programme: its definition, lists and (for its officers) the build button."""
    el.require_reader(current_user)
    programme = el.get_programme(programme_id)
    view = el.programme_view(programme, current_user)
    lists = el.list_lists(programme)
    names = {p.id: p.name for p in el.list_programmes(include_archived=True)}
    return render_template(
        "programmes/detail.html",
        programme=view,
        lists=[el.list_brief(lst, current=i == 0) for i, lst in enumerate(lists)],
        names=names,
        build_form=BuildForm(),
        run=el.get_current_run(),
        method_labels=METHOD_LABELS,
    )


@bp.route("/programmes/<int:programme_id>/lists", methods=["POST"])
def build(programme_id: int):
    """Build the programme's next list (its officers), then show it."""
    programme = el.get_programme(programme_id)
    el.require_manager(current_user, programme)
    form = BuildForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("programmes.detail", programme_id=programme_id))
    try:
        lst = el.build_list(programme, current_user)
    except el.EligibilityStateError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("programmes.detail", programme_id=programme_id))
    db.session.commit()
    flash(_("List #%(n)s built: %(count)s households.", n=lst.number, count=lst.n_entries), "info")
    return redirect(url_for("programmes.list_detail", list_id=lst.id))


@bp.route("/programmes/overlap")
def overlap():
    """How many households are on several programmes' current lists (aggregates only)."""
    summary = el.overlap_summary(current_user)
    return render_template("programmes/overlap.html", summary=summary)


# --- lists ------------------------------------------------------------------------------------------


@bp.route("/lists/<int:list_id>")
def list_detail(list_id: int):
    """A list: frozen inputs, summary with a chart, entries by area (paginated), exports, diff."""
    el.require_reader(current_user)
    lst = el.get_list(list_id)
    area = (request.args.get("area") or "").strip() or None
    if area and not AREA_CODE.match(area):
        flash(_("Area: expected a BBS code of 2, 4, 6 or 8 digits."), "error")
        area = None
    page = el.list_entries(lst, current_user, area=area, page=request.args.get("page", 1, type=int), per_page=50)
    summary = el.list_summary(lst, current_user)
    others = [x for x in el.list_lists(lst.programme) if x.id != lst.id]
    return render_template(
        "programmes/list.html",
        lst=el.list_view(lst),
        summary=summary,
        page=page,
        area=area,
        others=others,
        validation_url=_validation_url(lst.id),
        chart=_chart(summary["by_district"] if len(summary["by_division"]) <= 1 else summary["by_division"]),
    )


def _chart(rows: list[dict], limit: int = 25) -> dict:
    """Bars for an inline SVG chart (largest areas first)."""
    top = sorted(rows, key=lambda r: (-r["count"], r["code"]))[:limit]
    biggest = max((r["count"] for r in top), default=0) or 1
    return {
        "bars": [{**r, "width": round(100.0 * r["count"] / biggest, 1)} for r in top],
        "height": 22 * len(top) + 4,
        "more": max(0, len(rows) - limit),
    }


def _export_filename(lst, extension: str) -> str:
    return f"eligibility-list-{lst.id}-programme-{lst.programme_id}-n{lst.number}.{extension}"


@bp.route("/lists/<int:list_id>/export.csv")
def export_csv(list_id: int):
    """The list as CSV (streamed), personal data masked by role."""
    el.require_reader(current_user)
    lst = el.get_list(list_id)
    export = el.export_list(lst, current_user, "csv")
    db.session.commit()
    return Response(
        stream_with_context(el.csv_chunks(export)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_export_filename(lst, "csv")}"'},
    )


@bp.route("/lists/<int:list_id>/export.xlsx")
def export_xlsx(list_id: int):
    """The list as XLSX, personal data masked by role."""
    el.require_reader(current_user)
    lst = el.get_list(list_id)
    export = el.export_list(lst, current_user, "xlsx")
    body = el.xlsx_bytes(export, f"list {lst.id}")
    db.session.commit()
    return Response(
        body,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{_export_filename(lst, "xlsx")}"'},
    )


@bp.route("/lists/<int:list_id>/diff")
def diff_pick(list_id: int):
    """The diff form's target: redirect to the diff with the chosen list."""
    other = request.args.get("other", type=int)
    if not other:
        flash(_("Choose a list to compare with."), "error")
        return redirect(url_for("programmes.list_detail", list_id=list_id))
    return redirect(url_for("programmes.list_diff", list_id=list_id, other_id=other))


@bp.route("/lists/<int:list_id>/diff/<int:other_id>")
def list_diff(list_id: int, other_id: int):
    """Who was added and removed between two lists of a programme, and why."""
    el.require_reader(current_user)
    base, other = el.get_list(list_id), el.get_list(other_id)
    # Lists of two programmes are refused with a RuleError (a 422 page naming the problem).
    diff = el.diff_lists(base, other, current_user, limit=2000)
    return render_template("programmes/diff.html", diff=diff, programme=base.programme, reason_text=el.DIFF_REASON_TEXT)


# --- households -------------------------------------------------------------------------------------


@bp.route("/households/<household_id>/programmes")
def household_programmes(household_id: str):
    """The programmes and lists a household is on (for those who may open the household)."""
    household = hh.get_household(household_id)
    access.require_household_reader(current_user, household)
    return render_template("programmes/household.html", household=household, rows=el.lists_for_household(household))
