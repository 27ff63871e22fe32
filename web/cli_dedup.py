"""``socreg dedup``: duplicate persons across households (blocking keys, registry-wide scan)."""

from __future__ import annotations

import csv
import sys
import time

import click
from flask.cli import with_appcontext

from models import db
from registry import dedup
from registry.audit import record_event
from registry.geo import UnknownAreaError, get_area


def _check_area(area: str | None) -> None:
    if area is None:
        return
    try:
        get_area(area)
    except UnknownAreaError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("dedup")
def dedup_group():
    """Likely duplicate persons across households."""


@dedup_group.command("index")
@click.option("--area", default=None, help="BBS code of an area (any level); the whole registry when omitted.")
@with_appcontext
def dedup_index(area):
    """(Re)build the duplicate-search keys of current members (after a bulk import, for instance)."""
    _check_area(area)
    started = time.perf_counter()
    rows = dedup.rebuild_keys(area)
    record_event(None, "dedup.index", "area", area or "all", summary=f"rebuilt {rows} duplicate-search keys")
    db.session.commit()
    click.echo(f"{rows} keys for {area or 'the whole registry'} in {time.perf_counter() - started:.1f} s")


@dedup_group.command("scan")
@click.option("--area", default=None, help="BBS code of an area (any level); the whole registry when omitted.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="CSV file to write (standard output when omitted).",
)
@click.option(
    "--min-score",
    default=dedup.FLAG_THRESHOLD,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Lowest score (0-100) listed.",
)
@click.option("--no-reindex", is_flag=True, help="Use the stored keys as they are (skip rebuilding the area's).")
@with_appcontext
def dedup_scan(area, out_path, min_score, no_reindex):
    """List likely duplicate persons (pairs with scores) as CSV, best first."""
    _check_area(area)
    started = time.perf_counter()
    if not no_reindex:
        dedup.rebuild_keys(area)
        db.session.commit()
    rows = sorted(dedup.scan_duplicates(area, min_score=min_score), key=lambda r: -r["score"])
    handle = open(out_path, "w", newline="", encoding="utf-8") if out_path else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(handle, fieldnames=list(dedup.SCAN_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if out_path:
            handle.close()
    # The CSV holds personal data: who listed it, and where, is on the record.
    record_event(
        None,
        "dedup.scan",
        "area",
        area or "all",
        summary=f"listed {len(rows)} likely duplicate pairs (min score {min_score:g}) to {out_path or 'stdout'}",
    )
    db.session.commit()
    click.echo(
        f"{len(rows)} likely duplicate pair(s) in {area or 'the whole registry'} "
        f"({time.perf_counter() - started:.1f} s){' -> ' + out_path if out_path else ''}",
        err=True,
    )
