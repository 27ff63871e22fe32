"""The demo set-up: database, geography, one user per role, synthetic households.

Households come from the seeded synthetic generator (``registry.synth``) through the bulk
import, exactly as a census load would. Re-running it on the same database reuses what is
there: migrations are brought to head, the geography load is idempotent, demo users get their
demo passwords back, and households already registered are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import func, select

from models import HouseholdVersion, db
from registry import geo, users
from registry.importer import import_files
from registry.synth import generate

DEFAULT_DEMO_HOUSEHOLDS = 20_000
#: Versions written by the demo carry this source (the import is otherwise a normal one).
DEMO_SOURCE = "demo"
DEMO_SEED = 20261122
#: Area-bound demo users work in Dhaka division so that they see many demo households.
DEMO_AREA = "30"
DEMO_USERS = (
    ("enumerator", "enumerator", (DEMO_AREA,)),
    ("supervisor", "supervisor", (DEMO_AREA,)),
    ("supervisor2", "supervisor", (DEMO_AREA,)),
    ("statistician", "statistician", ()),
    ("statistician2", "statistician", ()),
    ("programme", "programme_officer", ()),
    ("grievance", "grievance_officer", (DEMO_AREA,)),
    ("viewer", "viewer", ()),
    ("admin", "admin", ()),
)


def demo_password(username: str) -> str:
    """Demo passwords are predictable on purpose: this is a local demo with synthetic data."""
    return f"demo-{username}-2026"


def ensure_demo_users() -> list[dict]:
    rows = []
    for username, role, areas in DEMO_USERS:
        password = demo_password(username)
        user = users.get_user_by_username(username)
        if user is None:
            users.create_user(username, role, password, area_codes=areas, full_name=f"Demo {role.replace('_', ' ')}")
        else:
            user.password_hash = users.hash_password(password)
        rows.append({"username": username, "password": password, "role": role, "areas": ", ".join(areas)})
    db.session.flush()
    return rows


def load_demo_households(count: int, echo: Callable[[str], None] = print, data_dir: Path | None = None) -> int:
    """Generate ``count`` synthetic households (seeded) and bulk-import those not yet registered.

    The files are written once into ``data_dir`` (default: ``demo/`` in the instance folder) and
    reused; a registry that already holds the demo households is left as it is.
    """
    already = db.session.scalar(
        select(func.count())
        .select_from(HouseholdVersion)
        .where(HouseholdVersion.source == DEMO_SOURCE, HouseholdVersion.version_no == 1)
    )
    if already >= count:
        echo(f"demo households: {already} already registered")
        return 0
    folder = (data_dir or Path(current_app.instance_path) / "demo") / f"synth-{DEMO_SEED}-{count}"
    households_csv, members_csv = folder / "households.csv", folder / "members.csv"
    if not (households_csv.exists() and members_csv.exists()):
        started = time.perf_counter()
        counts = generate(folder, households=count, seed=DEMO_SEED)
        echo(
            f"generated {counts['households']} synthetic households ({counts['members']} members) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    result = import_files(households_csv, members_csv, actor=None, source=DEMO_SOURCE, source_ref=f"demo:{DEMO_SEED}")
    if result.rejected:
        raise RuntimeError(f"the demo data did not validate: {result.first_issues[:3]}")
    echo(
        f"demo households: {result.households_imported} imported ({result.members_imported} members), "
        f"{result.households_already_registered} already registered, in {result.duration_s:.1f} s"
    )
    return result.households_imported


def run_demo_setup(households: int = DEFAULT_DEMO_HOUSEHOLDS, echo: Callable[[str], None] = print) -> dict:
    """Bring the database to the current schema and fill it with demo data; commits."""
    upgrade()
    counts = geo.load_geography()
    db.session.commit()
    echo("geography: " + ", ".join(f"{n} {level}s" for level, n in geo.count_areas().items()))
    _ = counts
    user_rows = ensure_demo_users()
    db.session.commit()
    load_demo_households(households, echo=echo)
    db.session.commit()
    return {"users": user_rows}
