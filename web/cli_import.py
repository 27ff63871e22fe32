"""``socreg import``: bulk import of households and members from the two CSV files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask.cli import with_appcontext
from tqdm import tqdm

from models import db
from registry import import_sql, importer, users
from registry.access import AccessDenied

#: How many issues the terminal summary lists (the report has them all).
SHOWN_ISSUES = 10


#: What each phase's bar counts (``index``: indexes and foreign keys a first load rebuilds).
_UNITS = {"read": "KiB", "validate": "hh", "insert": "hh", "index": "index"}


class _Bars:
    """One tqdm bar per phase of the import, on stderr (stdout carries the summary)."""

    def __init__(self):
        self.bar = None
        self.phase = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self.phase:
            self.close()
            self.phase = phase
            unit = _UNITS.get(phase.split()[0], "it")
            self.bar = tqdm(total=total, desc=phase, unit=unit, unit_scale=True, file=sys.stderr, leave=False)
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("import")
@click.option(
    "--households",
    "households_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="households.csv (import format, UTF-8).",
)
@click.option(
    "--members",
    "members_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="members.csv (import format, UTF-8).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Import the valid households; reject a household with any invalid member."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Error report CSV (default: import-report-<timestamp>.csv here, written only when there are errors).",
)
@click.option("--user", "username", default=None, help="Importing user (a supervisor or admin); default: the system.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Validation processes (default: automatic).")
@with_appcontext
def import_command(households_path, members_path, skip_invalid, report_path, username, workers):
    """Validate and import households and members; all or nothing unless --skip-invalid."""
    actor = None
    if username:
        actor = users.get_user_by_username(username)
        if actor is None:
            raise click.ClickException(f"no user {username!r}")
    click.echo(
        f"importing as {actor.username} ({actor.role})"
        if actor
        else "importing as the system (no --user given): versions and the audit event name no person"
    )
    report_path = report_path or Path.cwd() / importer.default_report_name()
    started = time.perf_counter()
    bars = _Bars()
    source_ref = f"cli:{importer.default_report_name()[14:-4]}"
    try:
        result = importer.import_files(
            households_path,
            members_path,
            actor=actor,
            skip_invalid=skip_invalid,
            source_ref=source_ref,
            report_path=report_path,
            progress=bars,
            workers=workers,
        )
    except (importer.ImportFileError, AccessDenied, import_sql.ConcurrentRegistration) as exc:
        db.session.rollback()
        bars.close()
        raise click.ClickException(str(getattr(exc, "reason", exc))) from None
    finally:
        bars.close()
    if result.rejected:
        db.session.rollback()
        importer.audit_rejected_import(result, actor)
    db.session.commit()
    _summary(result, time.perf_counter() - started)
    if result.rejected:
        sys.exit(1)


def _summary(result: importer.ImportResult, elapsed: float) -> None:
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"households in file: {result.households_in_file:,}  members in file: {result.members_in_file:,}")
    if result.issue_count:
        click.echo(f"{result.issue_count:,} problem(s), by rule:")
        for rule, n in result.issues_by_rule.items():
            click.echo(f"  {n:8,}  {rule}")
        click.echo("first problems:")
        for issue in result.first_issues[:SHOWN_ISSUES]:
            household = f" (household {issue['household_id']})" if issue["household_id"] else ""
            click.echo(
                f"  {issue['file']} row {issue['row']}{household}: {issue['field']}={issue['value']!r}: {issue['rule']}"
            )
        click.echo(f"report: {result.report_path}")
    if result.rejected:
        click.secho("import rejected: nothing was written", fg="red", err=True)
    else:
        click.echo(
            f"imported {result.households_imported:,} household(s) with {result.members_imported:,} member(s); "
            f"{result.households_already_registered:,} already registered, {result.households_rejected:,} rejected"
        )
    rate = result.households_in_file / elapsed if elapsed else 0
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
    click.echo(f"done in {elapsed:.1f} s ({rate:,.0f} households/s; {phases})")
