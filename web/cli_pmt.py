"""``socreg pmt …``: the PMT command group. Each concern adds its commands here (one import each)."""

from __future__ import annotations

import click

from web.cli_pmt_models import register as register_model_commands
from web.cli_pmt_score import prune_runs_command, score_command

pmt_group = click.Group("pmt", help="PMT models: calibration, publication, scoring and ranking.")
pmt_group.add_command(score_command)
pmt_group.add_command(prune_runs_command)
register_model_commands(pmt_group)
