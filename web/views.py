"""HTML pages: sign-in, the registry browser, households and their versions."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import text

from models import db
from registry import access, geo
from registry import households as hh
from registry.audit import record_event
from registry.users import get_user_by_username, verify_password
from web.forms import LoginForm

bp = Blueprint("web", __name__)

#: Navigation entries added by each page module: (label, endpoint, roles or None for everyone).
NAV_ITEMS: list[tuple[str, str, frozenset[str] | None]] = []


def register_nav(label, endpoint: str, roles=None) -> None:
    """Add a top-navigation link shown to ``roles`` (all signed-in users when None)."""
    if not any(item[1] == endpoint for item in NAV_ITEMS):
        NAV_ITEMS.append((label, endpoint, frozenset(roles) if roles else None))


@bp.app_context_processor
def inject_nav():
    if not current_user.is_authenticated:
        return {"nav_items": []}
    items = [
        {"label": label, "url": url_for(endpoint)}
        for label, endpoint, roles in NAV_ITEMS
        if roles is None or current_user.role in roles
    ]
    return {"nav_items": items}

PUBLIC_ENDPOINTS = {"web.login", "web.healthz", "web.set_language", "static"}


@bp.before_app_request
def require_login():
    """Every page needs a signed-in user, except sign-in itself and the health check."""
    if request.path.startswith("/api/"):
        return None
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    return None


@bp.route("/healthz")
def healthz():
    """Liveness and database check, for load balancers and monitoring."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        db.session.rollback()
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}


@bp.route("/language/<lang>")
def set_language(lang: str):
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    return redirect(_safe_next(request.referrer) or url_for("web.index"))


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = get_user_by_username(form.username.data.strip())
        if user is not None and user.is_active and verify_password(user, form.password.data):
            login_user(user, remember=form.remember.data)
            record_event(user, "user.login", "user", user.id, summary=f"{user.username} signed in")
            db.session.commit()
            nxt = request.args.get("next")
            return redirect(_safe_next(nxt) if nxt and nxt.startswith("/") else url_for("web.index"))
        record_event(None, "user.login_failed", "user", None, summary=f"failed sign-in as {form.username.data!r}")
        db.session.commit()
        flash(_("Unknown username or wrong password."), "error")
    return render_template("login.html", form=form), (200 if request.method == "GET" or form.errors == {} else 400)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    record_event(current_user, "user.logout", "user", current_user.id, summary=f"{current_user.username} signed out")
    db.session.commit()
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("web.login"))


@bp.route("/")
def index():
    return render_template("index.html")


@bp.route("/households")
def household_list():
    """Browse households by area (drill-down) and search."""
    user = current_user
    if user.role not in access.HOUSEHOLD_READER_ROLES:
        raise access.AccessDenied(_("Your role does not give access to individual household records."))
    area_code = request.args.get("area") or None
    search = (request.args.get("q") or "").strip() or None
    page_no = request.args.get("page", 1, type=int)
    chain = []
    if area_code:
        chain = geo.area_chain(area_code)
        access.require_area(user, area_code)
    children = geo.list_children(area_code) if not area_code or len(area_code) < 8 else []
    children = [a for a in children if access.in_scope(user, a.code) or _is_ancestor_of_scope(user, a.code)]
    page = hh.list_households(
        scope_clause=access.household_scope_clause(user),
        area_code=area_code,
        search=search,
        page=page_no,
        per_page=current_app.config["PAGE_SIZE"],
    )
    pii = access.can_see_pii(user)
    rows = [hh.summary_view(h, can_see_pii=pii) for h in page.items]
    return render_template(
        "households/list.html", chain=chain, children=children, page=page, rows=rows, area_code=area_code, q=search
    )


def _is_ancestor_of_scope(user, code: str) -> bool:
    return any(scope.startswith(code) for scope in user.area_codes)


@bp.route("/households/<household_id>")
def household_detail(household_id: str):
    household = hh.get_household(household_id)
    access.require_household_reader(current_user, household)
    pii = access.can_see_pii(current_user)
    version_no = request.args.get("version", type=int)
    version = hh.get_version(household, version_no) if version_no else hh.current_version_of(household)
    state = hh.state_view(version, can_see_pii=pii)
    versions = [hh.version_meta(v) for v in hh.list_versions(household)]
    chain = geo.area_chain(household.union_code)
    return render_template(
        "households/detail.html", household=household, state=state, versions=versions, chain=chain, pii=pii
    )


@bp.app_template_filter("code_label")
def code_label(value, field: str):
    """Render a coded value with its label from the data dictionary."""
    from models.codes import HOUSEHOLD_SPECS, MEMBER_SPECS

    spec = HOUSEHOLD_SPECS.get(field) or MEMBER_SPECS.get(field)
    if value is None or spec is None or spec.codes is None or spec.kind != "code":
        return "" if value is None else value
    return f"{spec.codes.get(value, value)}"
