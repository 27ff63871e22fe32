"""Calibration end to end on synthetic data with a known model, and on a real survey (BIDS 1998/99)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from registry import synth
from targeting.calibration import (
    assign_strata,
    calibrate,
    compare,
    predict,
    read_survey,
    scorecard_rows,
    training_data_hash,
    write_report,
)
from targeting.calibration.metrics import evaluate
from targeting.calibration.report import report_json
from targeting.features import compute_features, household_profile
from tests.targeting import pmt_data

RECOVERY_HOUSEHOLDS = 4000
#: A short candidate list, so that tests of mechanics (determinism, pooling, reports) stay fast.
FEW_FEATURES = [
    "log_household_size",
    "dependency_ratio",
    "head_female",
    "head_age",
    "head_edu_primary",
    "head_edu_secondary",
    "head_edu_ssc_hsc",
    "head_edu_degree",
    "rooms_per_person",
    "dwelling_pucca",
    "floor_cement",
    "asset_tv",
    "asset_refrigerator",
    "asset_motorcycle",
    "log1p_land_cultivable",
    "remittance_received",
    "electricity_grid",
    "income_agri_wage",
    "division_rangpur",
    "area_city_corporation",
]


@pytest.fixture(scope="module")
def big_survey():
    return pmt_data.survey(RECOVERY_HOUSEHOLDS)


@pytest.fixture(scope="module")
def small_survey():
    return pmt_data.survey(1500)


def test_wls_recovers_the_generating_coefficients(big_survey):
    households, members = big_survey
    truth = pmt_data.true_coefficients()
    spec = {"poverty_rate": 0.25, "features": list(truth), "methods": ["wls"]}
    result = calibrate(households, members, spec)
    entry = result.coefficients["wls"]["national"]
    assert set(entry["coefficients"]) == set(truth)
    z = {name: (entry["coefficients"][name] - b) / entry["std_errors"][name] for name, b in truth.items()}
    assert max(abs(v) for v in z.values()) < 4.0, z
    assert np.mean([abs(v) for v in z.values()]) < 1.2  # ~0.8 expected for standard normal errors
    assert abs(entry["intercept"] - synth.TRUE_INTERCEPT) < 4 * entry["intercept_se"]
    assert max(abs(entry["coefficients"][n] - b) for n, b in truth.items()) < 0.1


def test_out_of_sample_errors_are_close_to_what_the_true_model_allows(big_survey):
    households, members = big_survey
    spec = {"strata": "urban_rural", "poverty_rate": 0.25, "methods": ["wls", "stepwise", "lasso"]}
    result = calibrate(households, members, spec)
    p = result.predictions
    true_pred = pmt_data.true_mean_log_consumption(households, members).loc[p.index].to_numpy()
    coverages = {"20%": 0.2, "30%": 0.3}
    truth = evaluate(p["log_outcome"].to_numpy(), true_pred, p["weight"].to_numpy(), p["poor"].to_numpy(), coverages)[
        "overall"
    ]
    assert 0.35 < truth["r2"] < 0.6  # the generator's noise keeps R-squared near 0.5
    for method in ("wls", "stepwise", "lasso"):
        oos = result.metrics[method]["out_of_sample"]["overall"]
        ins = result.metrics[method]["in_sample"]["overall"]
        assert truth["r2"] - 0.05 < oos["r2"] <= ins["r2"], method
        for label in coverages:
            gap = oos["targeting"][label]["exclusion_error"] - truth["targeting"][label]["exclusion_error"]
            assert -0.02 < gap < 0.05, (method, label, gap)
    # Stepwise keeps fewer features than it was offered, lasso zeroes some.
    assert len(result.coefficients["stepwise"]["rural"]["coefficients"]) < len(result.features)
    assert (
        result.method_info["stepwise"]["rural"]["path"][-1]["cv_mse"]
        < result.method_info["stepwise"]["rural"]["path"][0]["cv_mse"]
    )
    # Constant or collinear columns are dropped per stratum, and the reason is given.
    by_stratum = result.dropped_features["by_stratum"]
    assert by_stratum["rural"]["area_paurashava"].startswith("constant")
    assert by_stratum["urban"]["area_city_corporation"] == "collinear with area_paurashava"


def test_calibration_is_deterministic_and_independent_of_row_and_column_order(small_survey):
    households, members = small_survey
    spec = {"strata": "urban_rural", "poverty_rate": 0.3, "seed": 5, "features": FEW_FEATURES}
    first = calibrate(households, members, spec)
    # Same data in another row and column order (which also covers a plain re-run).
    shuffled = calibrate(
        households.sample(frac=1, random_state=2)[households.columns[::-1]],
        members.sample(frac=1, random_state=3),
        spec,
    )
    assert shuffled.coefficients == first.coefficients
    assert report_json(shuffled) == report_json(first)
    other_seed = calibrate(households, members, {**spec, "seed": 6, "methods": ["wls"]})
    assert other_seed.metrics["wls"]["out_of_sample"] != first.metrics["wls"]["out_of_sample"]
    assert other_seed.coefficients["wls"] == first.coefficients["wls"]  # full-sample WLS does not use folds
    payload = first.to_dict()
    assert payload["training_data_hash"] == training_data_hash(households, members)
    assert {"numpy", "pandas", "scikit-learn", "statsmodels"} <= set(payload["library_versions"])
    assert payload["spec"]["methods"] == ["wls", "stepwise", "lasso", "quantile", "gbm"]
    assert set(payload["coefficients"]) == {"wls", "stepwise", "lasso", "quantile"}  # gbm is never a scorecard
    changed = households.copy()
    changed.loc[changed.index[0], "rooms"] = "9"
    assert training_data_hash(changed, members) != payload["training_data_hash"]


def test_scorecards_reproduce_the_evaluated_predictions_including_pooled_strata(big_survey):
    households, members = big_survey
    spec = {
        "strata": "urban_rural_x_division",
        "poverty_rate": 0.3,
        "methods": ["wls", "stepwise", "quantile"],
        "min_stratum_size": 150,
        "features": FEW_FEATURES,
    }
    result = calibrate(households, members, spec)
    pooled = [s for s, info in result.strata.items() if info["estimation"] == "pooled"]
    own = [s for s, info in result.strata.items() if info["estimation"] == "stratum"]
    assert pooled and own
    assert any("pooled model with a stratum intercept" in w for w in result.warnings)

    # The scoring path: features and strata from the same functions, then predict().
    profile = household_profile(households, members)
    features = compute_features(profile, result.features)
    strata = assign_strata(profile, result.spec["strata"])
    for method in ("wls", "stepwise", "quantile"):
        assert set(result.coefficients[method]) == set(result.strata)
        scored = predict(result.coefficients[method], features, strata)
        expected = result.predictions[f"{method}_in"]
        np.testing.assert_allclose(scored.loc[expected.index], expected, rtol=0, atol=1e-9)

    # And by hand from the published rows, as anyone outside could do.
    rows = scorecard_rows(result, "wls")
    hid = result.predictions.index[0]
    stratum = result.predictions.loc[hid, "stratum"]
    total = sum(
        r["coefficient"] * (1.0 if r["feature"] == "(intercept)" else features.loc[hid, r["feature"]])
        for r in rows
        if r["stratum"] == stratum
    )
    assert total == pytest.approx(result.predictions.loc[hid, "wls_in"], abs=1e-9)

    with pytest.raises(ValueError, match="no scorecard for stratum 'nowhere'"):
        predict(result.coefficients["wls"], features.iloc[:1], pd.Series(["nowhere"]))


def test_report_files(small_survey, tmp_path):
    households, members = small_survey
    result = calibrate(
        households,
        members,
        {
            "strata": "urban_rural",
            "poverty_rate": 0.25,
            "features": FEW_FEATURES,
            "methods": ["wls", "lasso", "gbm"],
            "report_coverage": 0.2,
        },
    )
    written = write_report(result, tmp_path)
    assert {
        "report.json",
        "report.html",
        "scorecard_wls.csv",
        "scorecard_lasso.csv",
        "predicted_vs_actual.png",
        "exclusion_by_coverage.png",
        "errors_by_group.png",
    } <= set(written)
    assert "scorecard_gbm.csv" not in written
    assert json.loads((tmp_path / "report.json").read_text())["coefficients"] == result.coefficients
    page = (tmp_path / "report.html").read_text()
    for name in ("predicted_vs_actual.png", "exclusion_by_coverage.png", "errors_by_group.png"):
        assert f'src="{name}"' in page and (tmp_path / name).stat().st_size > 10_000
    assert "female headed" in page and "Exclusion error by coverage" in page
    with open(tmp_path / "scorecard_wls.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["stratum"] for r in rows} == {"rural", "urban"}
    assert float(rows[0]["coefficient"]) == result.coefficients["wls"]["rural"]["intercept"]


def test_compare_two_calibrations(small_survey):
    households, members = small_survey
    a = calibrate(households, members, {"poverty_rate": 0.25, "methods": ["wls"]})
    b = calibrate(
        households,
        members,
        {"poverty_rate": 0.25, "methods": ["wls"], "features": ["log_household_size", "asset_tv", "rooms_per_person"]},
    )
    diff = compare(a.metrics, a.coefficients, b.metrics, b.coefficients)
    r2 = next(r for r in diff["metrics"] if r["metric"] == "wls/out_of_sample/overall/r2")
    assert r2["difference"] == pytest.approx(r2["b"] - r2["a"]) and r2["difference"] < 0
    tv = next(r for r in diff["coefficients"] if r["feature"] == "asset_tv")
    assert tv["a"] == a.coefficients["wls"]["national"]["coefficients"]["asset_tv"]
    mud = next(r for r in diff["coefficients"] if r["feature"] == "floor_cement")
    assert mud["b"] == 0.0  # absent from b's scorecard = not applied


# --------------------------------------------------------------------------------------
# Real data: BIDS-World Bank Bangladesh household survey 1998/99 (no member file)
# --------------------------------------------------------------------------------------

BIDS_SPEC = {
    "outcome": "exptot",  # per-capita expenditure, Tk/year (logs: the unit only shifts the intercept)
    "weight": "weight",
    "mapping": {
        "household_id": "nh",
        "household_size": "famsize",
        "head_female": "sexhead == 0",
        "head_age": "agehead",
        "head_education": "education_level_from_years(educhead)",
    },
    "features": ["log_household_size", "head_female", "head_age", "head_age_sq", "head_education_years"],
    "extra_features": [
        {"column": "hhland", "transform": "log1p"},
        {"column": "hhasset", "transform": "log1p"},
        "vaccess",
        {"column": "thanaid", "transform": "categorical"},
    ],
    "poverty_rate": 0.3,
    "methods": ["wls", "stepwise", "lasso", "quantile"],
    "seed": 1998,
}


def test_bids_survey_through_a_column_mapping():
    households, members = read_survey(pmt_data.BIDS_CSV)
    assert members is None and len(households) == 1129
    result = calibrate(households, None, BIDS_SPEC)
    assert result.strata["national"]["n_households"] == 1129
    assert result.strata["national"]["poverty_rate"] == pytest.approx(0.3, abs=0.01)
    assert sum(f.startswith("thanaid=") for f in result.features) == 31
    # Published-style figures for this data: OOS R2 about 0.25, exclusion error about 0.45 at 30% coverage.
    for method in ("wls", "stepwise", "lasso"):
        oos = result.metrics[method]["out_of_sample"]["overall"]
        assert 0.15 <= oos["r2"] <= 0.40, (method, oos["r2"])
        assert 0.30 <= oos["targeting"]["30%"]["exclusion_error"] <= 0.60, method
        assert oos["r2"] < result.metrics[method]["in_sample"]["overall"]["r2"]
    wls = result.coefficients["wls"]["national"]["coefficients"]
    assert wls["log_household_size"] < 0 and wls["log1p_hhasset"] > 0 and wls["head_education_years"] > 0
    assert "female_headed" in result.metrics["wls"]["out_of_sample"]["by_group"]
