"""Test data for the PMT core: a synthetic survey from ``registry.synth`` with its known model.

Module-level helpers (cached per process) rather than conftest fixtures, because other test
modules of ``tests/targeting`` have their own conftest needs; import what you use.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from models.codes import HOUSEHOLD_FIELD_NAMES, HOUSEHOLD_SPECS, MEMBER_SPECS
from registry import synth
from targeting.calibration import read_survey

BIDS_CSV = Path(__file__).resolve().parent.parent / "data" / "bids_bangladesh" / "hh_98.csv"
SURVEY_SEED = 11

#: The synthetic generator's consumption model written with our registry features. Each
#: generator variable is one of our features (up to a name), except ``dependents_share``, which
#: is share_children_0_14 + share_elderly_65, and ``cooking_gas_or_electric``, which is
#: fuel_gas + fuel_electric: both parts get the generator's coefficient.
TRUE_MODEL_FEATURES = {
    "log_household_size": ["log_household_size"],
    "dependents_share": ["share_children_0_14", "share_elderly_65"],
    "female_head": ["head_female"],
    "head_edu_primary": ["head_edu_primary"],
    "head_edu_secondary": ["head_edu_secondary"],
    "head_edu_ssc_hsc": ["head_edu_ssc_hsc"],
    "head_edu_degree": ["head_edu_degree"],
    "dwelling_pucca": ["dwelling_pucca"],
    "dwelling_semi_pucca": ["dwelling_semi_pucca"],
    "dwelling_jhupri": ["dwelling_jhupri"],
    "floor_cement": ["floor_cement"],
    "rooms_per_member": ["rooms_per_person"],
    "electricity_grid": ["electricity_grid"],
    "electricity_solar": ["electricity_solar"],
    "toilet_water_seal": ["toilet_sanitary"],
    "cooking_gas_or_electric": ["fuel_gas", "fuel_electric"],
    "water_piped": ["water_piped"],
    "asset_tv": ["asset_tv"],
    "asset_refrigerator": ["asset_refrigerator"],
    "asset_motorcycle": ["asset_motorcycle"],
    "asset_smartphone": ["asset_smartphone"],
    "asset_computer": ["asset_computer"],
    "log_land_cultivable": ["log1p_land_cultivable"],
    "log_cattle": ["log1p_cattle"],
    "remittance_received": ["remittance_received"],
    "bank_or_mfs_account": ["bank_or_mfs_account"],
    "income_agri_wage": ["income_agri_wage"],
    "income_salaried": ["income_salaried"],
    "area_paurashava": ["area_paurashava"],
    "area_city_corporation": ["area_city_corporation"],
    **{
        f"division_{d}": [f"division_{d}"]
        for d in ("barisal", "chittagong", "khulna", "mymensingh", "rajshahi", "rangpur", "sylhet")
    },
}


def true_coefficients() -> dict[str, float]:
    """The generating model's coefficient of each of our features."""
    out = {}
    for variable, features in TRUE_MODEL_FEATURES.items():
        for feature in features:
            out[feature] = synth.TRUE_COEFFICIENTS[variable]
    assert set(TRUE_MODEL_FEATURES) == set(synth.TRUE_COEFFICIENTS), "the generator's model changed"
    return out


@functools.cache
def _survey(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="pmt_survey_") as tmp:
        synth.generate(Path(tmp), 0, seed, survey_households=n)
        return read_survey(Path(tmp) / "survey.csv", Path(tmp) / "survey_members.csv")


def survey(n: int = 3000, seed: int = SURVEY_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Households and members of a synthetic survey, read through the CSV path (fresh copies)."""
    households, members = _survey(n, seed)
    return households.copy(), members.copy()


def true_mean_log_consumption(households: pd.DataFrame, members: pd.DataFrame) -> pd.Series:
    """E[log consumption | characteristics] under the generating model, by household id."""
    ids = households["household_id"].to_numpy()
    position = pd.Index(ids).get_indexer(members["household_id"])
    numeric = {
        c: pd.to_numeric(households[c]).to_numpy()
        for c in HOUSEHOLD_FIELD_NAMES
        if HOUSEHOLD_SPECS[c].kind in ("code", "int", "decimal", "bool")
    }
    numeric["union_code"] = households["union_code"].to_numpy()
    member_values = {
        c: pd.to_numeric(members[c]).to_numpy() for c in ("age_years", "relation_to_head", "sex", "education_level")
    }
    x = synth.true_features(numeric, {"household_index": position, **member_values})
    return pd.Series(synth.true_log_consumption_mean(x), index=pd.Index(ids, name="household_id"))


def db_shaped(frame: pd.DataFrame, specs: dict) -> pd.DataFrame:
    """The frame as a database fetch returns it: ints, bools, Decimal, date objects and None."""
    out = {}
    for column in frame.columns:
        spec = specs.get(column)
        values = frame[column].to_numpy(dtype=object)
        kind = spec.kind if spec is not None else "decimal"
        converted = []
        for v in values:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                converted.append(None)
            elif kind in ("code", "int"):
                converted.append(int(v))
            elif kind == "bool":
                converted.append(v == "1")
            elif kind == "decimal":
                converted.append(Decimal(v))
            elif kind == "date":
                converted.append(dt.date.fromisoformat(v))
            else:
                converted.append(str(v))
        out[column] = pd.Series(converted, dtype=object, index=frame.index)
    return pd.DataFrame(out)


def db_shaped_survey(households: pd.DataFrame, members: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return db_shaped(households, HOUSEHOLD_SPECS), db_shaped(members, MEMBER_SPECS)
