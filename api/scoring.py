"""PMT scores: a household's score with "why this score", and score runs (start, status)."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from api import current_api_user
from models import db
from registry import access, jobs
from registry import households as hh
from registry.geo import UnknownAreaError
from targeting import scoring
from targeting.pmt_models import ModelNotFound

blp = Blueprint("scores", __name__, url_prefix="/api/v1", description="PMT scores, ranks and score runs")


class ContributionSchema(Schema):
    feature = fields.String()
    description = fields.String()
    value = fields.Float(allow_none=True, metadata={"description": "the household's feature value"})
    weight = fields.Float(metadata={"description": "the scorecard coefficient of the household's stratum"})
    contribution = fields.Float(allow_none=True, metadata={"description": "weight x value"})


class ExplanationSchema(Schema):
    model_id = fields.Integer()
    method = fields.String()
    household_version = fields.Integer()
    stratum = fields.String(allow_none=True)
    intercept = fields.Float(allow_none=True)
    contributions = fields.List(fields.Nested(ContributionSchema))
    predicted = fields.Float(allow_none=True, metadata={"description": "intercept + sum of contributions"})
    score = fields.Float(allow_none=True)
    poverty_line = fields.Float(allow_none=True)
    below_poverty_line = fields.Boolean(allow_none=True)
    problem = fields.String(allow_none=True)


class RankSchema(Schema):
    rank = fields.Integer(allow_none=True, metadata={"description": "1 = poorest"})
    percentile = fields.Float(allow_none=True, metadata={"description": "rank / households in the area, (0, 1]"})


class RanksSchema(Schema):
    national = fields.Nested(RankSchema)
    division = fields.Nested(RankSchema)
    district = fields.Nested(RankSchema)
    upazila = fields.Nested(RankSchema)
    union = fields.Nested(RankSchema)


class HouseholdScoreSchema(Schema):
    household_id = fields.String()
    current_version = fields.Integer()
    status = fields.String(
        metadata={"description": "scored | outdated (re-score pending) | not_scored | no_active_model"}
    )
    run_id = fields.Integer(allow_none=True)
    model_id = fields.Integer(allow_none=True)
    scored_version = fields.Integer(allow_none=True)
    stratum = fields.String(allow_none=True)
    predicted_log_pc = fields.Float(allow_none=True)
    predicted_consumption_pc = fields.Float(allow_none=True, metadata={"description": "Tk per person per month"})
    score = fields.Float(allow_none=True, metadata={"description": "0-100 display score, higher = better off"})
    below_poverty_line = fields.Boolean(allow_none=True)
    incremental = fields.Boolean(allow_none=True)
    computed_at = fields.DateTime(allow_none=True)
    ranks = fields.Nested(RanksSchema)
    explanation = fields.Nested(ExplanationSchema, allow_none=True)


class ScoreRunArgs(Schema):
    model_id = fields.Integer(
        load_default=None, strict=True, validate=validate.Range(min=1),
        metadata={"description": "model version to score with (default: the active model)"},
    )
    area = fields.String(
        load_default=None, validate=validate.Regexp(r"^\d{2}(\d{2}){0,3}$"),
        metadata={"description": "BBS code: a preview run of one area (default: the whole registry)"},
    )


class ProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)
    message = fields.String(allow_none=True)


class RunJobSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    progress = fields.Nested(ProgressSchema)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)


class ScoreRunSchema(Schema):
    id = fields.Integer()
    model_id = fields.Integer()
    model_name = fields.String(allow_none=True)
    model_active = fields.Boolean()
    status = fields.String(metadata={"description": "running | complete | failed | superseded | pruned (rows deleted)"})
    is_current = fields.Boolean(metadata={"description": "the run readers use for the model"})
    area_code = fields.String(allow_none=True)
    households_scored = fields.Integer()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    created_by = fields.String(allow_none=True)
    notes = fields.String(allow_none=True, metadata={"description": "households that could not be scored, errors"})
    job = fields.Nested(RunJobSchema, allow_none=True)


@blp.route("/households/<household_id>/score")
class HouseholdScore(MethodView):
    @blp.response(200, HouseholdScoreSchema)
    def get(self, household_id):
        """The household's score and ranks in the current run, with each feature's contribution."""
        user = current_api_user()
        household = hh.get_household(household_id)
        access.require_household_reader(user, household)
        return scoring.household_score_view(household)


@blp.route("/pmt/score-runs")
class ScoreRuns(MethodView):
    @blp.response(200, ScoreRunSchema(many=True))
    def get(self):
        """Recent score runs with their status and progress."""
        user = current_api_user()
        scoring.require_run_reader(user)
        runs = [r for r in scoring.list_score_runs() if r.area_code is None or access.in_scope(user, r.area_code)]
        return scoring.run_views(runs)

    @blp.arguments(ScoreRunArgs)
    @blp.response(202, ScoreRunSchema)
    def post(self, args):
        """Start a full (or area preview) re-score as a background job (statisticians)."""
        user = current_api_user()
        try:
            run = scoring.start_score_run(user, model_id=args["model_id"], area_code=args["area"])
        except scoring.ScoreRunConflict as exc:
            abort(409, message=str(exc))
        except (scoring.ScoringError, ModelNotFound) as exc:
            abort(422, message=str(exc), messages={"json": {"model_id": [str(exc)]}})
        except UnknownAreaError as exc:
            abort(422, message=str(exc), messages={"json": {"area": [str(exc)]}})
        db.session.commit()
        if current_app.config.get("JOBS_INLINE"):
            jobs.run_pending()
        return scoring.run_view(scoring.get_score_run(run.id))


@blp.route("/pmt/score-runs/<int:run_id>")
class ScoreRunDetail(MethodView):
    @blp.response(200, ScoreRunSchema)
    def get(self, run_id):
        """A score run's status and its job's progress."""
        run = scoring.get_score_run(run_id)
        scoring.require_run_reader(current_api_user(), run)
        return scoring.run_view(run)
