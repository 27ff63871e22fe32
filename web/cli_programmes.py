"""``socreg lists``: build a programme's eligibility list, and check that a list is reproducible."""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext

from models import db
from registry import users
from targeting import eligibility as el


def _fail(message: str):
    raise click.ClickException(message)


@click.group("lists")
def lists_group():
    """Eligibility lists of programmes."""


@lists_group.command("build")
@click.argument("programme_id", type=int)
@click.option("--as", "username", default=None, help="Build as this programme officer (default: the system).")
@with_appcontext
def build_command(programme_id: int, username: str | None):
    """Build and freeze the next list of PROGRAMME_ID from the current score run."""
    actor = None
    if username:
        actor = users.get_user_by_username(username)
        if actor is None:
            _fail(f"no user {username!r}")
    started = time.perf_counter()
    try:
        programme = el.get_programme(programme_id)
        lst = el.build_list(programme, actor)
    except (el.ProgrammeNotFound, el.EligibilityStateError, PermissionError) as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    funnel = lst.funnel
    click.echo(
        f"list {lst.id} (#{lst.number}) of programme {programme.id} {programme.name!r}: {lst.n_entries:,} households "
        f"(scored {funnel['scored']:,}, PMT rule {funnel['targeted']:,}, eligible {funnel['eligible']:,}); "
        f"model {lst.model_id}, score run {lst.score_run_id}"
    )
    click.echo(f"done in {time.perf_counter() - started:.2f} s")


@lists_group.command("verify")
@click.argument("list_id", type=int)
@with_appcontext
def verify_command(list_id: int):
    """Re-run LIST_ID's frozen inputs against today's data and say whether the list is identical."""
    try:
        lst = el.get_list(list_id)
    except el.ListNotFound as exc:
        _fail(str(exc))
    result = el.verify_list(lst)
    db.session.rollback()
    if result["identical"]:
        click.echo(f"list {list_id} is reproducible: entries hash {result['entries_hash'][:16]}…")
        return
    click.echo(
        f"list {list_id} differs when rebuilt today (data or scores changed since {lst.as_of:%Y-%m-%d %H:%M} UTC): "
        f"{result['entries_hash'][:16]}… vs {result['rebuilt_hash'][:16]}…"
    )
    raise SystemExit(1)
