"""The ``socreg`` command line: one click group per concern, registered on one Flask group."""

from __future__ import annotations

import sys
import time

import click
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate.cli import db as db_group

from models import db
from models.codes import ROLES
from registry import geo, users
from registry.geo import UnknownAreaError


def _create_app():
    from web.app import create_app

    return create_app()


def fail(message: str, code: int = 1):
    """Print a clear error on stderr and exit non-zero."""
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


main = FlaskGroup(
    name="socreg",
    create_app=_create_app,
    add_default_commands=False,
    load_dotenv=False,
    set_debug_flag=False,
    help="National social registry and PMT targeting engine.",
)
main.add_command(db_group, "db")


@main.group("geo")
def geo_group():
    """Geography (BBS geo-codes)."""


@geo_group.command("load")
@with_appcontext
def geo_load():
    """Load divisions, districts, upazilas and unions (idempotent: a second run changes nothing)."""
    started = time.perf_counter()
    counts = geo.load_geography()
    db.session.commit()
    totals = geo.count_areas()
    for level, c in counts.items():
        click.echo(
            f"{level:9s} {totals[level]:6d} in registry "
            f"({c['inserted']} inserted, {c['updated']} updated, {c['unchanged']} unchanged)"
        )
    click.echo(f"done in {time.perf_counter() - started:.1f} s")


@main.group("users")
def users_group():
    """Users, roles and API tokens."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The user's one role.")
@click.option("--area", "areas", multiple=True, help="BBS code of an assigned area (repeatable).")
@click.option("--full-name", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(username, role, areas, full_name, password_stdin):
    """Create USERNAME with a role and assigned areas."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(username, role, password, area_codes=areas, full_name=full_name)
    except (users.UserError, UnknownAreaError) as exc:
        db.session.rollback()
        fail(str(exc))
    db.session.commit()
    click.echo(f"created {user.username} ({user.role}; areas: {', '.join(user.area_codes) or 'national'})")


@users_group.command("token")
@click.argument("username")
@with_appcontext
def users_token(username):
    """Print a new API token for USERNAME (shown once; stored hashed)."""
    user = users.get_user_by_username(username)
    if user is None:
        fail(f"no user {username!r}")
    token = users.issue_token(user)
    db.session.commit()
    click.echo(token)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.option(
    "--worker-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Most connections one worker holds (gunicorn's default: 1000). Behind a proxy that keeps a "
    "few upstream connections alive, a cap a little above --threads spreads them over the workers.",
)
def serve(host, port, workers, threads, worker_connections):
    """Serve the application with gunicorn (a production WSGI server)."""
    from web.serve import run_gunicorn

    run_gunicorn(
        _create_app, host=host, port=port, workers=workers, threads=threads, worker_connections=worker_connections
    )


@main.command("demo")
@click.option("--no-serve", is_flag=True, help="Set everything up and exit.")
@click.option("--households", default=None, type=int, help="How many synthetic demo households.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def demo(no_serve, households, host, port):
    """Create the database, geography, one user per role and demo households; then serve."""
    from registry.demo import DEFAULT_DEMO_HOUSEHOLDS, run_demo_setup

    started = time.perf_counter()
    from targeting.demo import setup_demo_targeting

    report = run_demo_setup(households or DEFAULT_DEMO_HOUSEHOLDS, echo=click.echo)
    setup_demo_targeting(echo=click.echo)
    click.echo(f"demo set-up done in {time.perf_counter() - started:.1f} s")
    click.echo("")
    click.echo("Demo users (username / password / role / areas):")
    for row in report["users"]:
        click.echo(f"  {row['username']:14s} {row['password']:22s} {row['role']:18s} {row['areas'] or 'national'}")
    if no_serve:
        return
    click.echo(f"\nServing on http://{host}:{port}/ (Ctrl-C to stop)")
    from web.serve import run_gunicorn

    run_gunicorn(_create_app, host=host, port=port, workers=1, threads=8)


def _register_domain_commands() -> None:
    """Commands that live in their own modules (one click group per file)."""
    import importlib

    for module_name, attribute in DOMAIN_COMMANDS:
        main.add_command(getattr(importlib.import_module(module_name), attribute))


DOMAIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("web.cli_synth", "synth_command"),
    ("web.cli_import", "import_command"),
    ("web.cli_dedup", "dedup_group"),
    ("web.cli_programmes", "lists_group"),
    ("web.cli_pmt", "pmt_group"),
)
_register_domain_commands()


@main.command("worker")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between polls of an empty queue.")
@with_appcontext
def worker(once, poll):
    """Run background jobs (imports, re-scores) from the job table; survives restarts."""
    from registry import jobs

    if once:
        ran = jobs.run_pending()
        click.echo(f"ran {ran} job(s)")
        return
    click.echo(f"worker started; polling every {poll:g} s (Ctrl-C to stop)")
    try:
        jobs.work_forever(poll_seconds=poll)
    except KeyboardInterrupt:
        click.echo("worker stopped")
