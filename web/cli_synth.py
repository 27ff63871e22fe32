"""``socreg synth``: write a seeded synthetic registry (and calibration survey) as import CSVs.

Needs no application context or database: it only writes files, so that test data can be made
before anything is set up. Register it on the ``socreg`` group with ``main.add_command(synth_command)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from registry.synth import generate


@click.command("synth")
@click.option(
    "--households", type=click.IntRange(min=0), required=True, help="Number of registry households to generate."
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=1, show_default=True, help="Random seed (same seed, same bytes)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for households.csv, members.csv (and survey.csv, survey_members.csv).",
)
@click.option(
    "--survey-households",
    type=click.IntRange(min=0),
    default=None,
    help="Also write a calibration survey of this many other households, with consumption and weights.",
)
def synth_command(households: int, seed: int, out_dir: Path, survey_households: int | None) -> None:
    """Generate synthetic households and members in the registry's import format."""
    started = time.perf_counter()
    total = households + (survey_households or 0)
    # The bar goes to stderr so that stdout carries only the summary (scripts may parse it).
    with tqdm(total=total, unit="hh", unit_scale=True, desc="synth", file=sys.stderr) as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        try:
            counts = generate(out_dir, households, seed, survey_households=survey_households, progress=progress)
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
    elapsed = time.perf_counter() - started
    click.echo(f"households: {counts['households']:,}  members: {counts['members']:,}  -> {out_dir}")
    if survey_households is not None:
        click.echo(f"survey households: {counts['survey_households']:,}  survey members: {counts['survey_members']:,}")
    click.echo(f"done in {elapsed:.1f} s")
