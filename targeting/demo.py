"""The targeting half of ``socreg demo``: fit, publish and activate a PMT model on the
synthetic survey, score the registry, and build the two example programmes' lists.

Idempotent like the rest of the demo: an existing active model and existing programmes are
reused, and a registry already scored by the active model is not scored again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import current_app

from models import db
from registry import jobs
from registry.synth import generate
from registry.users import get_user_by_username
from targeting.eligibility import create_demo_programmes
from targeting.pmt_models import calibrate_demo_model, get_active_model
from targeting.scoring import current_run

DEMO_SURVEY_HOUSEHOLDS = 5_000
DEMO_SURVEY_SEED = 20261123


def setup_demo_targeting(echo: Callable[[str], None] = print) -> None:
    """Make sure the demo has an active model, a complete score run and two programme lists (commits)."""
    model = get_active_model()
    if model is None:
        folder = Path(current_app.instance_path) / "demo" / f"survey-{DEMO_SURVEY_SEED}-{DEMO_SURVEY_HOUSEHOLDS}"
        if not (folder / "survey.csv").exists():
            generate(folder, households=0, seed=DEMO_SURVEY_SEED, survey_households=DEMO_SURVEY_HOUSEHOLDS)
        fitter = get_user_by_username("statistician")
        publisher = get_user_by_username("statistician2")
        model = calibrate_demo_model(
            folder / "survey.csv",
            folder / "survey_members.csv",
            fitter,
            publisher,
            instance_path=current_app.instance_path,
        )
        db.session.commit()
        echo(f"PMT model {model.id} fitted on {DEMO_SURVEY_HOUSEHOLDS} synthetic survey households and activated")
    # Activation queued a full re-score; run it (and anything else queued) now.
    ran = jobs.run_pending()
    run = current_run()
    if run is None:
        raise RuntimeError("the demo re-score did not complete; see the jobs table for the error")
    echo(f"score run {run.id}: {run.households_scored} households scored ({ran} job(s) run)")
    programme_officer = get_user_by_username("programme")
    lists = create_demo_programmes(programme_officer)
    db.session.commit()
    for built in lists:
        echo(f"eligibility list {built.id} built for programme {built.programme_id}")
