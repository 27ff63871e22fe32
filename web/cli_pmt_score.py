"""``socreg pmt score``: score every current household with a PMT model version, rank, publish.

Runs in this process (not through the job queue) with a progress bar on stderr; the summary goes
to stdout. Hangs on the ``pmt`` group of ``web/cli_pmt.py``.
"""

from __future__ import annotations

import sys
import time

import click
from flask.cli import with_appcontext
from tqdm import tqdm

from models import db
from registry.geo import UnknownAreaError
from targeting import scoring
from targeting.pmt_models import ModelNotFound, get_active_model, get_model


def _fail(message: str) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(1)


@click.command("score")
@click.option("--model", "model_id", type=click.IntRange(min=1), default=None,
              help="Model version to score with (default: the active model).")
@click.option("--area", default=None,
              help="BBS code (2, 4, 6 or 8 digits): a preview run of one area, ranked within it.")
@with_appcontext
def score_command(model_id: int | None, area: str | None) -> None:
    """Score and rank every current household; the run replaces the previous one when complete."""
    try:
        model = get_model(model_id) if model_id is not None else get_active_model()
        if model is None:
            raise scoring.ScoringError("no PMT model is active: activate one, or give --model ID")
        run = scoring.create_score_run(model, area_code=area, actor=None, with_job=False)
    except (scoring.ScoringError, ModelNotFound, UnknownAreaError) as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"score run {run.id}: model {model.id} ({model.name}), "
               f"{'area ' + area if area else 'whole registry'}", err=True)
    started = time.perf_counter()
    with tqdm(unit="hh", unit_scale=True, desc="score", file=sys.stderr) as bar:

        def progress(done: int, total: int | None = None, message: str | None = None, force: bool = False) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            if message:
                bar.set_postfix_str(message, refresh=False)

        try:
            summary = scoring.execute_score_run(run, progress=progress)
            db.session.commit()
        except scoring.ScoringError as exc:
            db.session.rollback()
            scoring.fail_score_run(run.id, str(exc))
            db.session.commit()
            _fail(str(exc))
        except BaseException as exc:
            # Record the failure on the run (it would otherwise look as if still running), then
            # let the error surface to the operator.
            db.session.rollback()
            scoring.fail_score_run(run.id, f"{type(exc).__name__}: {exc}")
            db.session.commit()
            raise
    seconds = summary["seconds"]
    click.echo(f"run {run.id} complete: {summary['households_scored']:,} households scored "
               f"with model {model.id} in {time.perf_counter() - started:.1f} s")
    if summary["households_not_scored"]:
        click.echo(f"not scored: {run.error}")
    click.echo("phases: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()))


@click.command("prune-runs")
@click.option("--older-than-days", type=click.IntRange(min=0), default=scoring.PRUNE_AFTER_DAYS, show_default=True,
              help="Only superseded runs completed at least this long ago.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@with_appcontext
def prune_runs_command(older_than_days: int, dry_run: bool) -> None:
    """Delete the household scores of old superseded runs that no eligibility list was built from."""
    outcome = scoring.prune_score_runs(None, older_than_days=older_than_days, dry_run=dry_run)
    if not dry_run:  # a dry run only read
        db.session.commit()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {outcome.rows:,} household scores of {len(outcome.runs)} superseded run(s)"
               + (f": {', '.join(map(str, outcome.runs))}" if outcome.runs else ""))
    if outcome.kept_for_lists:
        click.echo(f"kept {len(outcome.kept_for_lists)} run(s) that eligibility lists were built from: "
                   + ", ".join(map(str, outcome.kept_for_lists)))
