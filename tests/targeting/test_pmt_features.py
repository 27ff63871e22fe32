"""PMT features: member aggregates, feature definitions, and identical features from CSV and DB paths."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from targeting.features import (
    FEATURE_DEFINITION_VERSION,
    FEATURES,
    ExtraFeature,
    FeatureInputError,
    available_features,
    compute_features,
    education_level_from_years,
    household_profile,
    to_float,
)
from tests.targeting import pmt_data


def _household(hid="10040913-000001", **overrides):
    row = {
        "household_id": hid,
        "union_code": "55270913",
        "area_type": "1",
        "interview_date": "2025-03-10",
        "dwelling_structure": "3",
        "rooms": "2",
        "toilet_type": "2",
        "land_cultivable_decimal": "12.5",
        "asset_tv": "0",
        "cattle": "2",
    }
    row.update(overrides)
    return row


def _member(hid, line, rel, sex, age=None, dob=None, **overrides):
    row = {
        "household_id": hid,
        "line_no": str(line),
        "relation_to_head": str(rel),
        "sex": str(sex),
        "age_years": None if age is None else str(age),
        "date_of_birth": dob,
        "marital_status": "2",
        "education_level": "0",
        "currently_enrolled": "0",
        "occupation": "6",
        "pregnant_or_lactating": "0",
    }
    row.update(overrides)
    return row


def test_member_aggregates_on_a_hand_made_household():
    households = pd.DataFrame([_household(), _household("10040913-000002", area_type="3")])
    members = pd.DataFrame(
        [
            # Head: widowed woman, born 1955-06-01 -> 69 at the interview (birthday not reached yet).
            _member(
                "10040913-000001",
                1,
                1,
                2,
                age=None,
                dob="1955-06-01",
                marital_status="3",
                education_level="4",
                occupation="1",
            ),
            _member("10040913-000001", 2, 3, 1, age=30, occupation="3", education_level="11", disability_walking="3"),
            _member("10040913-000001", 3, 5, 2, age=3, pregnant_or_lactating="0"),
            _member("10040913-000001", 4, 5, 1, age=9, currently_enrolled="0"),
            _member("10040913-000002", 1, 1, 1, age=40, occupation="5", education_level="13"),
            _member("10040913-000002", 2, 2, 2, age=35, pregnant_or_lactating="1", disability_seeing="2"),
        ]
    )
    profile = household_profile(households, members)
    first, second = profile.loc["10040913-000001"], profile.loc["10040913-000002"]
    assert first["household_size"] == 4
    assert first["head_age"] == 69
    assert first["head_female"] == 1 and first["head_widowed"] == 1 and first["head_divorced"] == 0
    assert first["n_children_0_14"] == 2 and first["n_children_0_4"] == 1 and first["n_elderly_65"] == 1
    assert first["n_working_age"] == 1 and first["n_working"] == 2
    assert first["n_children_6_14_not_enrolled"] == 1
    assert first["any_disabled"] == 1 and first["n_disabled"] == 1  # "a lot of difficulty" walking
    assert first["max_education"] == 11 and first["head_education"] == 4
    assert first["division"] == 55 and first["urban"] == 0
    assert second["any_disabled"] == 0  # "some difficulty" is below the Washington Group cut-off
    assert second["any_pregnant_or_lactating"] == 1 and second["head_female"] == 0 and second["urban"] == 1

    features = compute_features(profile)
    f1 = features.loc["10040913-000001"]
    assert f1["log_household_size"] == pytest.approx(np.log(4))
    assert f1["dependency_ratio"] == pytest.approx(3 / 1)  # 2 children + 1 elderly per working-age member
    assert f1["share_working"] == pytest.approx(0.5)
    assert f1["rooms_per_person"] == pytest.approx(0.5)
    assert f1["head_edu_primary"] == 1 and f1["head_edu_secondary"] == 0
    assert f1["head_age_sq"] == pytest.approx(69**2 / 100)
    assert f1["max_education_years"] == 10  # SSC
    assert f1["toilet_pit_slab"] == 1 and f1["toilet_sanitary"] == 0
    assert f1["log1p_land_cultivable"] == pytest.approx(np.log1p(12.5))
    assert f1["division_rangpur"] == 1 and f1["division_sylhet"] == 0
    assert features.loc["10040913-000002", "area_city_corporation"] == 1
    assert features.dtypes.eq("float64").all()


def test_feature_registry_is_consistent():
    assert isinstance(FEATURE_DEFINITION_VERSION, int)
    assert 60 <= len(FEATURES) <= 110
    for name, feature in FEATURES.items():
        assert feature.name == name and feature.inputs and feature.description


def test_a_survey_lacking_a_field_lacks_only_the_features_built_on_it():
    households = pd.DataFrame([_household()]).drop(columns=["rooms"])
    members = pd.DataFrame([_member("10040913-000001", 1, 1, 1, age=40)])
    profile = household_profile(households, members)
    names = available_features(profile.columns)
    assert "rooms_per_person" not in names and "log_household_size" in names
    assert "wall_mud" not in names  # wall_material absent from this household frame
    with pytest.raises(FeatureInputError, match="rooms_per_person needs column.*rooms"):
        compute_features(profile, ["rooms_per_person"])
    with pytest.raises(FeatureInputError, match="unknown feature 'no_such_feature'"):
        compute_features(profile, ["no_such_feature"])


def test_member_less_survey_uses_profile_columns_from_households():
    households = pd.DataFrame(
        {"household_id": ["a", "b"], "household_size": [2, 5], "head_age": [30, 61], "head_female": [0, 1]}
    )
    features = compute_features(
        household_profile(households, None), ["log_household_size", "head_age_sq", "head_female"]
    )
    assert features.loc["b"].tolist() == pytest.approx([np.log(5), 61**2 / 100, 1.0])


def test_bad_values_name_the_column_and_household():
    households = pd.DataFrame([_household(rooms="two")])
    with pytest.raises(FeatureInputError, match=r"column rooms: 'two' is not a number \(household 10040913-000001\)"):
        household_profile(households, None)
    with pytest.raises(FeatureInputError, match="has no household row"):
        household_profile(pd.DataFrame([_household()]), pd.DataFrame([_member("99999999-000009", 1, 1, 1, age=3)]))


def test_to_float_accepts_every_representation():
    series = pd.Series(["1", " 2.5", "", None, "true", "No", True, Decimal("3.25"), 4], dtype=object)
    assert to_float(series, "x") == pytest.approx([1, 2.5, np.nan, np.nan, 1, 0, 1, 3.25, 4], nan_ok=True)
    assert to_float(pd.Series([1, None], dtype="Int64"), "x") == pytest.approx([1, np.nan], nan_ok=True)
    assert to_float(pd.Series([True, None], dtype="boolean"), "x") == pytest.approx([1, np.nan], nan_ok=True)


def test_education_years_mapping_for_surveys():
    assert education_level_from_years(np.array([0, 5, 10, 11, 12, 14, 16, np.nan])).tolist()[:7] == [
        0,
        5,
        10,
        11,
        12,
        12,
        13,
    ]


def test_extra_features():
    profile = pd.DataFrame({"asset": [0.0, 9.0, np.nan], "thana": [3.0, 1.0, 2.0]}, index=["a", "b", "c"])
    extra = [ExtraFeature("asset", "log1p"), ExtraFeature("thana", "categorical", (1.0, 2.0, 3.0))]
    features = compute_features(profile, [], extra)
    assert list(features.columns) == ["log1p_asset", "thana=2", "thana=3"]
    assert features.loc["b", "log1p_asset"] == pytest.approx(np.log(10))
    assert np.isnan(features.loc["c", "log1p_asset"])
    assert features["thana=3"].tolist() == [1.0, 0.0, 0.0]


def test_features_reproduce_the_generators_characteristics():
    households, members = pmt_data.survey(1000)
    features = compute_features(household_profile(households, members))
    truth = pmt_data.true_mean_log_consumption(households, members)
    coefficients = pmt_data.true_coefficients()
    from registry import synth

    ours = synth.TRUE_INTERCEPT + features[list(coefficients)].to_numpy() @ np.array(list(coefficients.values()))
    np.testing.assert_allclose(ours, truth.loc[features.index].to_numpy(), rtol=0, atol=1e-12)


def test_csv_path_and_database_path_give_identical_features():
    """The guarantee behind 'calibration and scoring see the same features': one code path, any input types."""
    households, members = pmt_data.survey(600)
    db_households, db_members = pmt_data.db_shaped_survey(households, members)
    assert isinstance(db_households["rooms"].iloc[0], int)
    assert isinstance(db_households["asset_tv"].iloc[0], bool)
    assert isinstance(db_households["land_cultivable_decimal"].iloc[0], Decimal)
    assert isinstance(db_members["date_of_birth"].dropna().iloc[0], dt.date)
    assert db_members["disability_seeing"].isna().any() or db_members["nid_number"].isna().any()

    from_csv = compute_features(household_profile(households, members))
    from_db = compute_features(household_profile(db_households, db_members))
    assert from_csv.shape[1] >= 90
    pd.testing.assert_frame_equal(from_csv, from_db, check_exact=True)

    # Rows in another order, members shuffled: the same features per household.
    shuffled = compute_features(household_profile(db_households.iloc[::-1], db_members.sample(frac=1, random_state=1)))
    pd.testing.assert_frame_equal(from_csv, shuffled.loc[from_csv.index], check_exact=True)
