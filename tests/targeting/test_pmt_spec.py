"""Calibration specs: every bad spec or unfit survey gets an error naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from targeting.calibration import DataError, SpecError, apply_mapping, calibrate, load_spec, parse_spec, read_survey
from tests.targeting import pmt_data

BASE = {"poverty_rate": 0.3, "methods": ["wls"], "features": ["log_household_size", "asset_tv", "rooms_per_person"]}


@pytest.fixture
def survey():
    """Fresh copies for every test: tests spoil values on purpose."""
    return pmt_data.survey(400)


def test_defaults_and_normalised_form():
    spec = parse_spec({"poverty_rate": 0.2, "strata": "urban_rural_x_division"})
    assert spec.strata == ("urban", "division")
    assert parse_spec({"poverty_rate": 0.2, "strata": ["area_type"]}).strata == ("urban",)
    normalised = spec.to_dict()
    assert normalised["methods"] == ["wls", "stepwise", "lasso", "quantile", "gbm"]
    assert normalised["folds"] == 5 and normalised["outcome"] == "consumption_pc" and normalised["features"] == "all"
    assert parse_spec(normalised).to_dict() == normalised  # the stored form parses back to itself
    json.dumps(normalised)


def test_spec_files(tmp_path):
    (tmp_path / "spec.yml").write_text("poverty_rate: 0.25\nstrata: [urban, division]\nmethods: [wls, lasso]\n")
    assert load_spec(tmp_path / "spec.yml").methods == ("wls", "lasso")
    (tmp_path / "spec.json").write_text('{"poverty_lines": {"rural": 2500, "urban": 3000}}')
    assert load_spec(tmp_path / "spec.json").poverty_lines == {"rural": 2500.0, "urban": 3000.0}
    (tmp_path / "bad.yml").write_text("poverty_rate: [0.3\n")
    with pytest.raises(SpecError, match="bad.yml: cannot parse spec"):
        load_spec(tmp_path / "bad.yml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"features": ["log_household_size", "asset_tvv"]},
            r"features: unknown feature 'asset_tvv' \(did you mean 'asset_tv'\?\)",
        ),
        ({"exclude_features": ["nope"]}, "exclude_features: unknown feature 'nope'"),
        ({"methods": ["wls", "ridge"]}, "methods: unknown method 'ridge'"),
        ({"methods": []}, "methods: give at least one"),
        ({"povrety_rate": 0.3}, r"unknown spec key 'povrety_rate' \(did you mean 'poverty_rate'\?\)"),
        ({"poverty_rate": 1.5}, "poverty_rate: expected a share"),
        ({"poverty_lines": {"rural": 2000}}, "give exactly one of poverty_rate"),
        ({"poverty_rate": None, "poverty_lines": {"rural": -5}}, "line for stratum 'rural' must be a positive"),
        ({"folds": 1}, "folds: expected an integer from 2"),
        ({"seed": "abc"}, "seed: expected an integer"),
        ({"strata": 5}, "strata: expected a preset"),
        ({"strata": ["urban", "urban_rural"]}, "strata: 'urban_rural' repeats the stratum variable 'urban'"),
        ({"small_strata": "merge"}, "small_strata: 'merge' is not"),
        ({"coverages": [0.2, 1.2]}, "coverages: coverage must be a share"),
        ({"extra_features": [{"column": "x", "transform": "sqrt"}]}, "transform 'sqrt' for column 'x' is not one of"),
        ({"extra_features": ["asset_tv"]}, "'asset_tv' is a registry feature"),
        ({"mapping": {"head_female": "sexhead = 0"}}, "mapping.head_female: cannot parse"),
        ({"mapping": {"x": "__import__('os')"}}, "mapping.x: unknown function '__import__'"),
        ({"mapping": {"x": "a.b"}}, "mapping.x: Attribute is not allowed"),
    ],
)
def test_bad_specs_name_the_problem(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({k: v for k, v in {**BASE, **change}.items() if v is not None})


def test_no_outcome_column(survey):
    households, members = survey
    with pytest.raises(DataError, match="outcome column 'consumption' is not in the survey households"):
        calibrate(households, members, {**BASE, "outcome": "consumption"})


def test_non_positive_consumption_names_the_row_count(survey):
    households, members = survey
    households.loc[households.index[[3, 7, 9]], "consumption_pc"] = ["0", "-12.5", "0"]
    with pytest.raises(DataError, match=r"consumption_pc' is zero or negative in 3 rows \(first household"):
        calibrate(households, members, BASE)


def test_missing_consumption(survey):
    households, members = survey
    households.loc[households.index[5], "consumption_pc"] = None
    with pytest.raises(DataError, match="consumption_pc' is missing in 1 rows"):
        calibrate(households, members, BASE)


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_zero_or_negative_weights(survey, bad):
    households, members = survey
    households.loc[households.index[:2], "weight"] = bad
    with pytest.raises(DataError, match="weight 'weight' is missing, zero or negative in 2 rows"):
        calibrate(households, members, BASE)


def test_text_in_a_numeric_field_names_column_and_household(survey):
    households, members = survey
    households.loc[households.index[4], "rooms"] = "many"
    hid = households.loc[households.index[4], "household_id"]
    with pytest.raises(DataError, match=f"column rooms: 'many' is not a number \\(household {hid}\\)"):
        calibrate(households, members, BASE)


def test_empty_stratum_in_poverty_lines(survey):
    households, members = survey
    spec = {
        **BASE,
        "poverty_rate": None,
        "strata": "urban_rural",
        "poverty_lines": {"rural": 2500, "urban": 3000, "urban/dhaka": 3500},
    }
    with pytest.raises(DataError, match="poverty_lines: stratum 'urban/dhaka' has no households"):
        calibrate(households, members, {k: v for k, v in spec.items() if v is not None})
    spec["poverty_lines"] = {"rural": 2500}
    with pytest.raises(DataError, match="poverty_lines: no line for stratum 'urban'"):
        calibrate(households, members, {k: v for k, v in spec.items() if v is not None})


def test_small_strata_can_be_refused(survey):
    households, members = survey
    with pytest.raises(
        DataError,
        match=r"strata smaller than max\(10 x features, min_stratum_size\) = 200: .*"
        r"urban/barisal \(\d+ households\)",
    ):
        calibrate(households, members, {**BASE, "strata": "urban_rural_x_division", "small_strata": "refuse"})


def test_unknown_stratum_column_and_extra_column(survey):
    households, members = survey
    with pytest.raises(DataError, match="strata: column 'thana' is not in the survey data"):
        calibrate(households, members, {**BASE, "strata": ["thana"]})
    with pytest.raises(DataError, match="extra_features: column 'hhasset' is not in the survey data"):
        calibrate(households, members, {**BASE, "extra_features": ["hhasset"]})


def test_unavailable_features_are_dropped_and_listed(survey):
    households, members = survey
    result = calibrate(households.drop(columns=["rooms"]), members, {**BASE, "features": "all"})
    assert result.dropped_features["unavailable"]["rooms_per_person"] == "needs rooms"
    assert "rooms_per_person" not in result.features and "asset_tv" in result.features


def test_households_with_missing_features_are_dropped_with_a_warning(survey):
    households, members = survey
    households.loc[households.index[:3], "asset_tv"] = None
    result = calibrate(households, members, {**BASE, "max_missing_share": 0.05})
    assert result.n_households == len(households) - 3
    assert any("3 households dropped because a feature value is missing" in w for w in result.warnings)
    households.loc[households.index[:100], "asset_tv"] = None
    result = calibrate(households, members, BASE)
    assert "asset_tv" in result.dropped_features["missing_values"] and "asset_tv" not in result.features


def test_mapping_expressions():
    frame = pd.DataFrame({"sexhead": ["1", "0", None], "educhead": [3, 11, 16], "exptot": [1200.0, 2400.0, 36.0]})
    mapped = apply_mapping(
        frame,
        {
            "head_female": "sexhead == 0",
            "head_education": "education_level_from_years(educhead)",
            "consumption_pc": "exptot / 12",
            "rich": "exptot > 1000 and not sexhead == 0",
        },
    )
    assert mapped["head_female"].tolist()[:2] == [0.0, 1.0] and np.isnan(mapped["head_female"].iloc[2])
    assert mapped["head_education"].tolist() == [3.0, 11.0, 13.0]
    assert mapped["consumption_pc"].tolist() == [100.0, 200.0, 3.0]
    assert mapped["rich"].tolist()[:2] == [1.0, 0.0]
    with pytest.raises(DataError, match="mapping.x: column 'nope' is not in the survey data"):
        apply_mapping(frame, {"x": "nope + 1"})


def test_member_less_survey_needs_household_size_for_population_weights():
    households, _ = read_survey(pmt_data.BIDS_CSV)
    spec = {"outcome": "exptot", "poverty_rate": 0.3, "methods": ["wls"], "extra_features": ["hhasset"]}
    with pytest.raises(DataError, match="population_weights needs household_size"):
        calibrate(households, None, spec)
    result = calibrate(households, None, {**spec, "population_weights": False})
    assert result.n_households == 1129 and any("row number" in n for n in result.notes)
