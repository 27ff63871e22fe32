"""``socreg pmt calibrate|list|show|publish|activate|compare|export-scorecard``: PMT model versions.

These commands hang on the ``pmt`` group of ``web/cli_pmt.py`` through :func:`register`.
Output meant for people goes to stdout; step messages go to stderr so that scripts can parse
stdout (``export-scorecard`` writes only the scorecard there).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from models import Job, db
from registry.access import AccessDenied
from registry.users import get_user_by_username
from targeting import pmt_models
from targeting.calibration import PUBLISHABLE_METHODS, SpecError, load_spec
from targeting.calibration_jobs import last_job_id


def _fail(message: str, code: int = 1):
    """A clear error on stderr and a non-zero exit (never a trace)."""
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


def _step(message: str) -> None:
    click.echo(f"… {message}", err=True)


def _statistician(username: str | None, option: str = "--user"):
    if not username:
        _fail(f"{option} USERNAME is required (a statistician)")
    user = get_user_by_username(username)
    if user is None:
        _fail(f"no user {username!r}")
    if user.role != "statistician":
        _fail(f"user {username!r} is a {user.role}; only a statistician may do this")
    return user


def _load(model_id: int):
    try:
        return pmt_models.get_model(model_id)
    except pmt_models.ModelNotFound as exc:
        _fail(str(exc))


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def echo_headline(rows: list[dict]) -> None:
    """Print the headline metrics: out of sample, in sample in brackets."""
    labels = []
    for row in rows:
        labels += [label for label in row["targeting"] if label not in labels]
    header = f"{'method':10s} {'R2':>15s} {'Spearman':>15s}"
    for label in labels:
        name = "pov.rate" if label == "poverty_rate" else label
        header += f" {'excl@' + name:>17s} {'incl@' + name:>17s}"
    click.echo(header)
    for row in rows:
        line = f"{row['method']:10s} {_num(row['r2']['oos']) + ' (' + _num(row['r2']['in']) + ')':>15s}"
        line += f" {_num(row['spearman']['oos']) + ' (' + _num(row['spearman']['in']) + ')':>15s}"
        for label in labels:
            t = row["targeting"].get(label)
            for key in ("exclusion_error", "inclusion_error"):
                cell = "" if t is None else f"{_pct(t[key]['oos'])} ({_pct(t[key]['in'])})"
                line += f" {cell:>17s}"
        click.echo(line)
    click.echo("(out of sample, k-fold; in-sample in brackets. excl = exclusion error, incl = inclusion error)")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


@click.command("calibrate")
@click.option(
    "--survey",
    "survey",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Survey households CSV (registry import format plus consumption and weight).",
)
@click.option(
    "--members",
    "members",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Survey members CSV [default: <survey stem>_members.csv beside the survey, if present].",
)
@click.option(
    "--spec",
    "spec_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Calibration spec (.yml, .yaml or .json).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder [default: ./pmt-report-<timestamp>].",
)
@click.option("--name", default=None, help="Model name when saving [default: the survey file name and date].")
@click.option(
    "--method",
    default=None,
    type=click.Choice(PUBLISHABLE_METHODS),
    help="Scorecard to publish when saving [default: the spec's first linear method].",
)
@click.option("--save/--no-save", default=False, show_default=True, help="Store the result as a draft model.")
@click.option("--user", "username", default=None, help="The statistician who fits the model (needed with --save).")
@with_appcontext
def calibrate_command(survey, members, spec_path, out_dir, name, method, save, username):
    """Fit and validate PMT scorecards on a survey; print the headline metrics and write the report."""
    started = time.perf_counter()
    actor = _statistician(username) if save else None
    if not survey.is_file():
        _fail(f"--survey: {survey} does not exist")
    if members is None:
        members = pmt_models.default_members_path(survey)
        if members is not None:
            _step(f"members: {members}")
    elif not members.is_file():
        _fail(f"--members: {members} does not exist")
    if not spec_path.is_file():
        _fail(f"--spec: {spec_path} does not exist")
    try:
        spec = load_spec(spec_path)
        if method is not None and method not in spec.methods:
            raise SpecError(f"--method {method} is not among the spec's methods ({', '.join(spec.methods)})")
        result = pmt_models.calibrate_files(survey, members, spec, step=_step)
    except SpecError as exc:
        _fail(str(exc))
    click.echo(
        f"fitted {result.n_households:,} survey households, {len(result.features)} features, "
        f"strata: {', '.join(result.strata)}"
    )
    echo_headline(pmt_models.headline_metrics(result.metrics))
    timings = getattr(result, "timings", None) or {}
    if timings:
        _step("time per phase: " + ", ".join(f"{phase} {t.get('wall', 0):.1f} s" for phase, t in timings.items()))
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow")
    out_dir = out_dir or Path(f"pmt-report-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    _step(f"writing the report to {out_dir}")
    pmt_models.write_report_folder(result, out_dir)
    click.echo(f"report: {out_dir}")
    if save:
        try:
            model = pmt_models.store_calibration(
                result,
                name=name or f"{survey.name} {dt.date.today().isoformat()}",
                method=method,
                actor=actor,
                instance_path=current_app.instance_path,
                survey_filename=survey.name,
                report_source=out_dir,
            )
        except (pmt_models.ModelStateError, AccessDenied) as exc:
            _fail(str(exc))
        db.session.commit()
        click.echo(f"saved draft model {model.id} ({model.method}); training data hash {model.training_data_hash}")
    click.echo(f"done in {time.perf_counter() - started:.1f} s")


@click.command("list")
@with_appcontext
def list_command():
    """Model versions, newest first."""
    models = pmt_models.list_models()
    if not models:
        click.echo("no PMT model yet")
        return
    click.echo(
        f"{'id':>4s}  {'status':9s} {'method':8s} {'strata':22s} {'survey hh':>9s} {'R2 oos':>7s}  "
        f"{'fitted by':14s} {'created':16s} name"
    )
    for model in models:
        view = pmt_models.model_view(model)
        r2 = next((row["r2"]["oos"] for row in view["headline"] if row["method"] == model.method), None)
        click.echo(
            f"{model.id:>4d}  {model.status:9s} {model.method:8s} "
            f"{' x '.join(model.strata_variables) or 'national':22s} {model.n_households:>9,d} {_num(r2):>7s}  "
            f"{(view['created_by'] or 'system'):14s} {model.created_at.strftime('%Y-%m-%d %H:%M'):16s} "
            f"{model.name}"
        )


@click.command("show")
@click.argument("model_id", type=int)
@with_appcontext
def show_command(model_id):
    """A model's lifecycle, provenance, strata and headline metrics."""
    model = _load(model_id)
    view = pmt_models.model_view(model)
    click.echo(f"model {model.id}: {model.name} [{model.status}]")
    if model.description:
        click.echo(f"  {model.description}")
    click.echo(f"scorecard method: {model.method} (fitted: {', '.join(view['fitted_methods'])})")
    click.echo(f"strata: {', '.join(view['strata'])}")
    for stratum, line in sorted(model.poverty_lines.items()):
        click.echo(f"  poverty line {stratum}: {line:,.1f} Tk/person/month")
    click.echo(f"survey: {model.survey_filename or '-'} ({model.n_households:,} households)")
    click.echo(f"training data hash: {model.training_data_hash}")
    click.echo(f"feature definition version: {model.feature_definition_version}")
    click.echo("libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(model.library_versions.items())))
    for label, who, when in (
        ("fitted", view["created_by"], model.created_at),
        ("published", view["published_by"], model.published_at),
        ("activated", view["activated_by"], model.activated_at),
        ("retired", None, model.retired_at),
    ):
        if when is not None:
            click.echo(f"{label}: {when.strftime('%Y-%m-%d %H:%M')} UTC" + (f" by {who}" if who else ""))
    if model.report_path:
        click.echo(f"report folder: {Path(current_app.instance_path) / model.report_path}")
    echo_headline(view["headline"])
    for warning in view["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow")


@click.command("publish")
@click.argument("model_id", type=int)
@click.option("--user", "username", required=True, help="The publishing statistician (not the one who fitted it).")
@with_appcontext
def publish_command(model_id, username):
    """Publish a draft model (four eyes); it is immutable afterwards."""
    user = _statistician(username)
    model = _load(model_id)
    try:
        pmt_models.publish_model(model, user)
    except (pmt_models.ModelStateError, AccessDenied) as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(f"published model {model.id} ({model.name})")


@click.command("activate")
@click.argument("model_id", type=int)
@click.option("--user", "username", required=True, help="The activating statistician.")
@with_appcontext
def activate_command(model_id, username):
    """Make a published model the active one (audited); the previous one retires."""
    user = _statistician(username)
    model = _load(model_id)
    previous = pmt_models.get_active_model()
    marker = last_job_id()
    try:
        pmt_models.activate_model(model, user)
    except (pmt_models.ModelStateError, AccessDenied) as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(
        f"activated model {model.id} ({model.name})"
        + (f"; model {previous.id} retired" if previous is not None and previous.id != model.id else "")
    )
    queued = db.session.scalars(select(Job).where(Job.id > marker, Job.status == "queued")).all()
    for job in queued:
        # The activation hooks (the full re-score) queue background work: say who runs it.
        click.echo(f"queued {job.kind} job {job.id}: run `socreg worker` (or `socreg worker --once`) to process it")


@click.command("compare")
@click.argument("model_a", type=int)
@click.argument("model_b", type=int)
@click.option(
    "--coverage",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Population share selected, for the eligibility changes.",
)
@click.option(
    "--registry/--no-registry",
    default=True,
    show_default=True,
    help="Count the registry households whose eligibility would change.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
@with_appcontext
def compare_command(model_a, model_b, coverage, registry, as_json):
    """Compare MODEL_A (current) with MODEL_B (candidate): metrics, coefficients, eligibility changes."""
    a, b = _load(model_a), _load(model_b)
    try:
        result = pmt_models.compare_models(a, b, coverage=coverage, with_registry=registry)
    except SpecError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"A = model {a.id} {a.name!r} ({a.status}, {a.method}); B = model {b.id} {b.name!r} ({b.status}, {b.method})"
    )
    click.echo(f"{'metric':58s} {'A':>9s} {'B':>9s} {'B - A':>9s}")
    for row in result["metrics"]:
        if row["metric"].endswith(("n_households", "population_share", "/coverage", "poverty_rate/poverty_rate")):
            continue
        click.echo(
            f"{row['metric']:58s} {_num(row['a'], 4):>9s} {_num(row['b'], 4):>9s} {_num(row['difference'], 4):>9s}"
        )
    changed = sorted((r for r in result["coefficients"] if r["difference"]), key=lambda r: -abs(r["difference"]))
    click.echo(f"coefficients: {len(result['coefficients'])} compared, largest differences:")
    for row in changed[:15]:
        click.echo(
            f"  {row['stratum']:24s} {row['feature']:32s} {_num(row['a'], 4):>9s} {_num(row['b'], 4):>9s} "
            f"{_num(row['difference'], 4):>9s}"
        )
    eligibility = result["eligibility"]
    if eligibility is None:
        return
    if not eligibility["available"]:
        click.echo(f"eligibility changes: not available ({eligibility['reason']})")
        return
    click.echo(
        f"eligibility at {coverage:.0%} coverage over {eligibility['households']:,} registry households "
        f"({eligibility['not_scorable']} not scorable): selected A {eligibility['selected_a']:,}, "
        f"B {eligibility['selected_b']:,}; entering {eligibility['entering']:,}, "
        f"leaving {eligibility['leaving']:,}, staying {eligibility['staying']:,}"
    )


@click.command("export-scorecard")
@click.argument("model_id", type=int)
@click.option(
    "--method",
    default=None,
    type=click.Choice(PUBLISHABLE_METHODS),
    help="Scorecard of another fitted method [default: the model's].",
)
@click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "json"]))
@click.option(
    "--out",
    "out_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@with_appcontext
def export_scorecard_command(model_id, method, fmt, out_file):
    """Export a model's scorecard (stratum, feature, coefficient, description) as CSV or JSON."""
    model = _load(model_id)
    try:
        if fmt == "csv":
            body = pmt_models.scorecard_csv(model, method)
        else:
            body = json.dumps(pmt_models.scorecard_document(model, method), indent=2, ensure_ascii=False) + "\n"
    except pmt_models.ModelStateError as exc:
        _fail(str(exc))
    if out_file is None:
        click.echo(body, nl=False)
    else:
        out_file.write_text(body, encoding="utf-8")
        click.echo(f"wrote {out_file}", err=True)


COMMANDS = (
    calibrate_command,
    list_command,
    show_command,
    publish_command,
    activate_command,
    compare_command,
    export_scorecard_command,
)


def register(group: click.Group) -> None:
    """Attach the model commands to the ``pmt`` click group."""
    for command in COMMANDS:
        group.add_command(command)
