"""Score runs made by hand for eligibility tests: a model, a complete run, and scores with ranks.

Ranks follow ``targeting/ranking.py``: 1 = poorest (lowest predicted log consumption), ties broken by
the household's id, computed nationally and within each area level; percentiles are rank / n.
"""

from __future__ import annotations

import math
from collections import defaultdict

from sqlalchemy import select

from models import Household, HouseholdScore, PmtModel, ScoreRun, db
from models.base import utcnow
from targeting.scoring import display_score

#: Tk per person per month; log ≈ 8.006.
POVERTY_LINE = 3000.0

REPORT = {
    "metrics": {
        "wls": {
            "out_of_sample": {
                "overall": {
                    "targeting": {
                        "10%": {"coverage": 0.1, "exclusion_error": 0.7},
                        "20%": {"coverage": 0.2, "exclusion_error": 0.5},
                        "30%": {"coverage": 0.3, "exclusion_error": 0.4},
                        "poverty_rate": {"coverage": 0.25, "exclusion_error": 0.45},
                    }
                }
            }
        }
    }
}


def make_model(name: str = "test model", *, active: bool = True, report: dict | None = None) -> PmtModel:
    """A minimal model version (active by default, retiring any other active one)."""
    if active:
        for other in db.session.scalars(select(PmtModel).where(PmtModel.status == "active")):
            other.status = "retired"
        db.session.flush()
    model = PmtModel(
        name=name,
        status="active" if active else "published",
        method="wls",
        spec={},
        strata_variables=["urban"],
        coefficients={},
        poverty_lines={"rural": POVERTY_LINE, "urban": POVERTY_LINE},
        extra_levels={},
        feature_definition_version=1,
        training_data_hash="0" * 64,
        library_versions={},
        report=report if report is not None else REPORT,
        n_households=1000,
    )
    db.session.add(model)
    db.session.flush()
    return model


def score_of_predicted(predicted: float) -> float:
    """The scoring engine's 0-100 display score of a predicted log consumption."""
    return float(display_score(predicted))


def make_run(
    model: PmtModel,
    predicted: dict[Household, float],
    *,
    status: str = "complete",
    unranked: tuple[Household, ...] = (),
) -> ScoreRun:
    """A score run of ``model`` with the given predicted log consumption per household."""
    run = ScoreRun(model_id=model.id, status=status, households_scored=len(predicted), finished_at=utcnow())
    db.session.add(run)
    db.session.flush()
    rows = []
    for household, value in predicted.items():
        rows.append(
            {
                "household": household,
                "predicted": value,
                "areas": {
                    "division": household.division_code,
                    "district": household.district_code,
                    "upazila": household.upazila_code,
                    "union": household.union_code,
                },
            }
        )
    ranks: dict[tuple[str, int], int] = {}
    percentiles: dict[tuple[str, int], float] = {}
    for level in ("national", "division", "district", "upazila", "union"):
        groups = defaultdict(list)
        for row in rows:
            if row["household"] in unranked:
                continue
            groups["" if level == "national" else row["areas"][level]].append(row)
        for members in groups.values():
            members.sort(key=lambda r: (r["predicted"], r["household"].id))
            for i, row in enumerate(members, 1):
                ranks[(level, row["household"].id)] = i
                percentiles[(level, row["household"].id)] = i / len(members)
    for row in rows:
        household = row["household"]
        key = household.id

        def rank(level, key=key):
            return ranks.get((level, key))

        def pct(level, key=key):
            return percentiles.get((level, key))

        db.session.add(
            HouseholdScore(
                run_id=run.id,
                household_pk=household.id,
                household_version=household.current_version,
                model_id=model.id,
                stratum="rural" if household.area_type == 1 else "urban",
                predicted_log_pc=row["predicted"],
                score=score_of_predicted(row["predicted"]),
                below_poverty_line=row["predicted"] < math.log(POVERTY_LINE),
                national_rank=rank("national"),
                national_percentile=pct("national"),
                division_rank=rank("division"),
                division_percentile=pct("division"),
                district_rank=rank("district"),
                district_percentile=pct("district"),
                upazila_rank=rank("upazila"),
                upazila_percentile=pct("upazila"),
                union_rank=rank("union"),
                union_percentile=pct("union"),
                incremental=0,
            )
        )
    db.session.flush()
    return run
