"""PMT features: one definition shared by survey calibration and registry scoring.

Two pure, vectorised steps:

1. :func:`household_profile` turns a households frame (the registry's household fields, as
   read from an import CSV *or* fetched from the database) and its members frame into one
   row per household: the household fields as numbers plus member aggregates (household
   size, dependants, head characteristics, disability, ...).
2. :func:`compute_features` evaluates named features from :data:`FEATURES` on that profile.
   Every feature records the profile columns it needs, so a survey lacking a field simply
   lacks the features built on it.

Calibration (``targeting.calibration``) and scoring both call exactly these functions, which
is what makes the features of a surveyed household and of a registered household identical.
Change a definition only together with :data:`FEATURE_DEFINITION_VERSION`: published models
record the version they were fitted with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models import codes
from models.codes import HEAD, HOUSEHOLD_SPECS, MEMBER_SPECS
from registry.validation import FALSE_WORDS, TRUE_WORDS

#: Bump whenever a profile column or a feature definition changes meaning.
FEATURE_DEFINITION_VERSION = 1

#: Years of schooling for each ``education_level`` code (class k = k years; SSC is sat after
#: class 10, HSC after class 12; degree+ is taken as 15 years, a bachelor's degree).
EDUCATION_YEARS = {0: 0, **{k: k for k in range(1, 11)}, 11: 10, 12: 12, 13: 15}
#: Age from which a member counts as elderly for ``n_elderly_65`` and the elderly-headed group.
ELDERLY_AGE = 65

#: Columns that :func:`household_profile` derives from the members frame.
MEMBER_PROFILE_COLUMNS = (
    "household_size",
    "n_children_0_4",
    "n_children_0_14",
    "n_children_6_14",
    "n_children_6_14_not_enrolled",
    "n_working_age",
    "n_elderly_65",
    "n_female",
    "n_working",
    "n_disabled",
    "any_disabled",
    "any_child_under5",
    "any_pregnant_or_lactating",
    "max_education",
    "head_female",
    "head_age",
    "head_education",
    "head_marital",
    "head_widowed",
    "head_divorced",
    "head_separated",
)
#: Columns that :func:`household_profile` derives from household fields.
DERIVED_HOUSEHOLD_COLUMNS = ("division", "urban")

_NUMERIC_KINDS = ("code", "int", "decimal", "bool")


class FeatureInputError(ValueError):
    """An input value or column that features cannot be computed from (message names it)."""


# --------------------------------------------------------------------------------------
# Coercion: one canonical representation whatever the source (CSV text or DB objects)
# --------------------------------------------------------------------------------------


def to_float(series: pd.Series, name: str, ids: pd.Series | None = None) -> np.ndarray:
    """Convert a column of numbers/booleans in any representation to float64 (NaN = missing).

    Accepts ints, floats, bools, ``Decimal``, pandas nullable dtypes, and text ("1", "2.5",
    "true"/"false"/"yes"/"no", blanks). A value that is none of these raises
    :class:`FeatureInputError` naming the column, the value and the household.
    """
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    values = series.to_numpy(dtype=object, na_value=None)
    try:
        # Fast path (C loop): numeric text, numbers, Decimal, bools and None (-> NaN).
        return np.array(values, dtype="float64")
    except (TypeError, ValueError):
        pass
    # Slow path for the rest: "true"/"yes" words and blank text; anything else is an error.
    numbers = np.array(pd.to_numeric(pd.Series(values), errors="coerce"), dtype="float64")
    unread = np.isnan(numbers) & pd.notna(values)
    if unread.any():
        text = pd.Series(values[unread]).astype(str).str.strip().str.lower()
        words = np.where(text.isin(TRUE_WORDS), 1.0, np.where(text.isin(FALSE_WORDS), 0.0, np.nan))
        bad = np.isnan(words) & (text != "").to_numpy() & ~text.isin(("nan", "none", "<na>")).to_numpy()
        if bad.any():
            row = np.flatnonzero(unread)[np.argmax(bad)]
            where = f" (household {ids.iloc[row]})" if ids is not None else f" (row {row + 1})"
            raise FeatureInputError(f"column {name}: {values[row]!r} is not a number{where}")
        numbers[unread] = words
    return numbers


def to_date(series: pd.Series) -> pd.Series:
    """Dates as ``datetime64`` from ``YYYY-MM-DD`` text, ``date``/``datetime`` objects or blanks (NaT)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
    return pd.to_datetime(series, format="%Y-%m-%d", errors="coerce")


def as_text(series: pd.Series) -> pd.Series:
    """Identifier-like values as stripped text, None for blanks (integer-valued floats lose their '.0')."""
    raw = series
    if pd.api.types.is_float_dtype(raw.dtype) and (raw.dropna() % 1 == 0).all():
        raw = raw.astype("Int64")
    text = raw.astype("string").str.strip()
    text = text.mask(text == "")
    return pd.Series(text.to_numpy(dtype=object, na_value=None), index=series.index, name=series.name)


def household_ids(frame: pd.DataFrame) -> pd.Series:
    """The ``household_id`` column as text; a missing column or a blank id raises :class:`FeatureInputError`."""
    if "household_id" not in frame.columns:
        raise FeatureInputError("column household_id is missing")
    ids = as_text(frame["household_id"])
    blank = ids.isna().to_numpy()
    if blank.any():
        raise FeatureInputError(f"column household_id: blank in row {int(blank.argmax()) + 1}")
    return ids


# --------------------------------------------------------------------------------------
# Step 1: household profile
# --------------------------------------------------------------------------------------


def household_profile(households: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per household: household fields as float64 plus member aggregates.

    ``households`` holds registry household fields (any subset; extra columns such as
    ``consumption_pc`` or survey-specific columns are passed through, converted to numbers
    where possible). ``members`` holds registry member fields linked by ``household_id``;
    when it is ``None`` the member-derived columns (:data:`MEMBER_PROFILE_COLUMNS`) must
    already be in ``households`` if the features built on them are wanted.

    The result is indexed by ``household_id`` (text), keeps the input's row order, and has
    ``union_code`` as text plus ``division`` (first two digits of ``union_code``) and
    ``urban`` (area types 2 and 3) when their inputs exist.
    """
    ids = household_ids(households)
    if ids.duplicated().any():
        raise FeatureInputError(f"column household_id: {ids[ids.duplicated()].iloc[0]!r} appears more than once")
    out = {}
    for name in households.columns:
        if name == "household_id":
            continue
        spec = HOUSEHOLD_SPECS.get(name)
        column = households[name]
        if spec is not None and spec.kind in _NUMERIC_KINDS or name in MEMBER_PROFILE_COLUMNS:
            out[name] = to_float(column, name, ids)
        elif spec is not None:
            # Text, dates and code sets stay as they are: no feature reads them as numbers.
            out[name] = column.to_numpy()
        else:
            out[name] = _maybe_numeric(column)
    if "union_code" in households.columns:
        union = as_text(households["union_code"])
        out["union_code"] = union.to_numpy()
        out["division"] = pd.to_numeric(union.str[:2], errors="coerce").to_numpy(dtype="float64")
    if "area_type" in out:
        area = out["area_type"]
        out["urban"] = np.where(np.isnan(area), np.nan, np.isin(area, (2, 3)).astype(float))
    if members is not None:
        interview = to_date(households["interview_date"]) if "interview_date" in households.columns else None
        aggregates = member_aggregates(members, ids, interview)
        out.update({name: aggregates[name].to_numpy() for name in aggregates.columns})
    return pd.DataFrame(out, index=pd.Index(ids.to_numpy(), name="household_id"))


def _maybe_numeric(column: pd.Series) -> np.ndarray:
    """Survey-specific columns: numbers when every non-blank value is one, otherwise as given."""
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    try:
        return to_float(column, str(column.name))
    except FeatureInputError:
        return column.to_numpy()


def member_aggregates(members: pd.DataFrame, ids: pd.Series, interview_dates: pd.Series | None = None) -> pd.DataFrame:
    """Aggregate members to :data:`MEMBER_PROFILE_COLUMNS`, one row per id in ``ids`` (same order).

    Age is taken at the household's interview date from ``date_of_birth`` when present
    (the data dictionary prefers it), else ``age_years``. The head is the member with
    ``relation_to_head`` = 1 (the lowest line number if the data has several); households
    without members or without a head get NaN in the columns that need them.
    Missing disability answers count as "no difficulty".
    """
    m_ids = household_ids(members)
    pos = pd.Index(ids.to_numpy()).get_indexer(m_ids.to_numpy())
    if (pos < 0).any():
        raise FeatureInputError(f"members: household_id {m_ids.iloc[int((pos < 0).argmax())]!r} has no household row")
    n = len(ids)

    def col(name: str) -> np.ndarray:
        if name not in members.columns:
            spec = MEMBER_SPECS.get(name)
            if spec is not None and not spec.required:
                return np.full(len(members), np.nan)
            raise FeatureInputError(f"members: column {name} is missing")
        return to_float(members[name], f"members.{name}", m_ids)

    age = col("age_years")
    if "date_of_birth" in members.columns:
        dob = to_date(members["date_of_birth"])
        if interview_dates is not None:
            when = pd.Series(interview_dates.to_numpy()[pos])
        else:
            when = pd.Series(pd.NaT, index=range(len(members)), dtype="datetime64[ns]")
        from_dob = _age_at(dob.reset_index(drop=True), when)
        age = np.where(np.isnan(from_dob), age, from_dob)
    sex = col("sex")
    relation = col("relation_to_head")
    marital = col("marital_status")
    education = col("education_level")
    enrolled = col("currently_enrolled")
    occupation = col("occupation")
    pregnant = col("pregnant_or_lactating")
    difficulty = np.column_stack([col(f"disability_{d}") for d in codes.DISABILITY_DOMAINS])
    disabled = (np.nan_to_num(difficulty, nan=1.0) >= codes.DISABILITY_THRESHOLD).any(axis=1)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pos, weights=np.asarray(mask, dtype=float), minlength=n)

    size = count(np.ones(len(members)))
    child_6_14 = (age >= 6) & (age <= 14)
    out = {
        "household_size": size,
        "n_children_0_4": count(age <= 4),
        "n_children_0_14": count(age <= 14),
        "n_children_6_14": count(child_6_14),
        "n_children_6_14_not_enrolled": count(child_6_14 & (enrolled == 0)),
        "n_working_age": count((age >= 15) & (age < ELDERLY_AGE)),
        "n_elderly_65": count(age >= ELDERLY_AGE),
        "n_female": count(sex == 2),
        "n_working": count(np.isin(occupation, codes.WORKING_OCCUPATIONS)),
        "n_disabled": count(disabled),
    }
    out["any_disabled"] = (out["n_disabled"] > 0).astype(float)
    out["any_child_under5"] = (out["n_children_0_4"] > 0).astype(float)
    out["any_pregnant_or_lactating"] = (count(pregnant == 1) > 0).astype(float)
    max_edu = np.full(n, -np.inf)
    np.maximum.at(max_edu, pos, np.where(np.isnan(education), -np.inf, education))
    out["max_education"] = np.where(np.isfinite(max_edu), max_edu, np.nan)

    # The head: first member (by line number) whose relation is "head".
    line = col("line_no")
    head_rows = np.flatnonzero(relation == HEAD)
    order = np.lexsort((line[head_rows], pos[head_rows]))
    head_rows = head_rows[order]
    head_rows = head_rows[np.r_[True, pos[head_rows][1:] != pos[head_rows][:-1]]] if len(head_rows) else head_rows
    head_pos = pos[head_rows]

    def head_value(values: np.ndarray) -> np.ndarray:
        result = np.full(n, np.nan)
        result[head_pos] = values[head_rows]
        return result

    head_marital = head_value(marital)
    out["head_female"] = head_value(np.where(np.isnan(sex), np.nan, (sex == 2).astype(float)))
    out["head_age"] = head_value(age)
    out["head_education"] = head_value(education)
    out["head_marital"] = head_marital
    for name, code in (("head_widowed", 3), ("head_divorced", 4), ("head_separated", 5)):
        out[name] = np.where(np.isnan(head_marital), np.nan, (head_marital == code).astype(float))
    return pd.DataFrame({name: out[name] for name in MEMBER_PROFILE_COLUMNS})


def _age_at(dob: pd.Series, when: pd.Series) -> np.ndarray:
    """Completed years between two datetime series (NaN where either is missing)."""
    years = when.dt.year - dob.dt.year
    before_birthday = (when.dt.month < dob.dt.month) | ((when.dt.month == dob.dt.month) & (when.dt.day < dob.dt.day))
    age = years - before_birthday.astype(float)
    return age.to_numpy(dtype="float64", na_value=np.nan)


# --------------------------------------------------------------------------------------
# Step 2: named features
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """A named PMT feature: a vectorised function of the profile columns in ``inputs``."""

    name: str
    inputs: tuple[str, ...]
    func: Callable[[pd.DataFrame], np.ndarray]
    description: str
    group: str

    def compute(self, profile: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.func(profile), dtype="float64")


def _num(profile: pd.DataFrame, name: str) -> np.ndarray:
    return profile[name].to_numpy(dtype="float64", na_value=np.nan)


def _flag(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A 0/1 indicator that stays NaN where the input is missing."""
    return np.where(np.isnan(values), np.nan, mask.astype(float))


def _either(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a) | np.isnan(b), np.nan, ((a == 1) | (b == 1)).astype(float))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


FEATURES: dict[str, Feature] = {}


def _add(name: str, inputs: Sequence[str], func: Callable, description: str, group: str) -> None:
    if name in FEATURES:
        raise RuntimeError(f"feature {name} defined twice")
    FEATURES[name] = Feature(name, tuple(inputs), func, description, group)


def _add_dummies(column: str, levels: dict[int, str], reference: int, group: str, label: str) -> None:
    """One 0/1 feature per code of ``column`` except ``reference`` (the omitted category)."""
    codebook = getattr(codes, column.upper())
    assert set(levels) == set(codebook), f"dummies for {column} must cover its code list"
    for code, slug in levels.items():
        if code == reference:
            continue
        _add(
            f"{slug}",
            [column],
            lambda p, c=column, k=code: _flag(_num(p, c), _num(p, c) == k),
            f"{label} is {codebook[code]} (reference: {codebook[reference]})",
            group,
        )


def _define_features() -> None:
    # Demography and household composition.
    _add(
        "log_household_size",
        ["household_size"],
        lambda p: np.log(np.where(_num(p, "household_size") > 0, _num(p, "household_size"), np.nan)),
        "log of household size (members)",
        "demography",
    )
    _add(
        "dependency_ratio",
        ["n_children_0_14", "n_elderly_65", "n_working_age"],
        lambda p: (_num(p, "n_children_0_14") + _num(p, "n_elderly_65")) / np.maximum(_num(p, "n_working_age"), 1.0),
        "(children 0-14 + elderly 65+) / working-age members 15-64 (denominator floored at 1)",
        "demography",
    )
    _add(
        "share_children_0_14",
        ["n_children_0_14", "household_size"],
        lambda p: _ratio(_num(p, "n_children_0_14"), _num(p, "household_size")),
        "share of members aged 0-14",
        "demography",
    )
    _add(
        "share_elderly_65",
        ["n_elderly_65", "household_size"],
        lambda p: _ratio(_num(p, "n_elderly_65"), _num(p, "household_size")),
        "share of members aged 65+",
        "demography",
    )
    _add(
        "share_female",
        ["n_female", "household_size"],
        lambda p: _ratio(_num(p, "n_female"), _num(p, "household_size")),
        "share of female members",
        "demography",
    )
    _add(
        "share_working",
        ["n_working", "household_size"],
        lambda p: _ratio(_num(p, "n_working"), _num(p, "household_size")),
        "share of members in a working occupation (codes.WORKING_OCCUPATIONS)",
        "demography",
    )
    _add(
        "any_child_under5",
        ["any_child_under5"],
        lambda p: _num(p, "any_child_under5"),
        "a member aged 0-4",
        "demography",
    )
    _add(
        "any_pregnant_or_lactating",
        ["any_pregnant_or_lactating"],
        lambda p: _num(p, "any_pregnant_or_lactating"),
        "a pregnant or lactating member",
        "demography",
    )
    _add(
        "any_disabled",
        ["any_disabled"],
        lambda p: _num(p, "any_disabled"),
        "a member with a lot of difficulty or worse in a Washington Group domain",
        "demography",
    )
    _add(
        "share_disabled",
        ["n_disabled", "household_size"],
        lambda p: _ratio(_num(p, "n_disabled"), _num(p, "household_size")),
        "share of members with a disability",
        "demography",
    )
    _add(
        "children_not_enrolled",
        ["n_children_6_14_not_enrolled"],
        lambda p: _flag(_num(p, "n_children_6_14_not_enrolled"), _num(p, "n_children_6_14_not_enrolled") > 0),
        "a child aged 6-14 not currently enrolled",
        "education",
    )

    # Head of household.
    _add("head_female", ["head_female"], lambda p: _num(p, "head_female"), "head is female", "head")
    _add("head_age", ["head_age"], lambda p: _num(p, "head_age"), "age of head (years)", "head")
    _add("head_age_sq", ["head_age"], lambda p: _num(p, "head_age") ** 2 / 100.0, "age of head squared / 100", "head")
    _add("head_widowed", ["head_widowed"], lambda p: _num(p, "head_widowed"), "head is widowed", "head")
    _add(
        "head_divorced_separated",
        ["head_divorced", "head_separated"],
        lambda p: _either(_num(p, "head_divorced"), _num(p, "head_separated")),
        "head is divorced or separated",
        "head",
    )
    for name, lo, hi, text in (
        ("head_edu_primary", 1, 5, "class 1-5"),
        ("head_edu_secondary", 6, 10, "class 6-10"),
        ("head_edu_ssc_hsc", 11, 12, "SSC or HSC"),
        ("head_edu_degree", 13, 13, "a degree or higher"),
    ):
        _add(
            name,
            ["head_education"],
            lambda p, lo=lo, hi=hi: _flag(
                _num(p, "head_education"), (_num(p, "head_education") >= lo) & (_num(p, "head_education") <= hi)
            ),
            f"head's education is {text} (reference: none)",
            "education",
        )
    _add(
        "head_education_years",
        ["head_education"],
        lambda p: _education_years(_num(p, "head_education")),
        "head's years of schooling (from education_level, see EDUCATION_YEARS)",
        "education",
    )
    _add(
        "max_education_years",
        ["max_education"],
        lambda p: _education_years(_num(p, "max_education")),
        "highest years of schooling of any member",
        "education",
    )

    # Housing.
    _add(
        "rooms_per_person",
        ["rooms", "household_size"],
        lambda p: _ratio(_num(p, "rooms"), _num(p, "household_size")),
        "sleeping rooms per member",
        "housing",
    )
    _add_dummies(
        "dwelling_structure",
        {1: "dwelling_pucca", 2: "dwelling_semi_pucca", 3: "dwelling_kutcha", 4: "dwelling_jhupri"},
        3,
        "housing",
        "dwelling",
    )
    _add_dummies(
        "wall_material",
        {1: "wall_straw_bamboo", 2: "wall_mud", 3: "wall_tin", 4: "wall_wood", 5: "wall_brick", 9: "wall_other"},
        5,
        "housing",
        "wall material",
    )
    _add_dummies(
        "roof_material",
        {1: "roof_straw", 2: "roof_tin", 3: "roof_tile", 4: "roof_concrete", 9: "roof_other"},
        2,
        "housing",
        "roof material",
    )
    _add_dummies(
        "floor_material",
        {1: "floor_earth", 2: "floor_wood_bamboo", 3: "floor_cement", 9: "floor_other"},
        1,
        "housing",
        "floor material",
    )
    _add_dummies(
        "tenure",
        {1: "tenure_owned", 2: "tenure_rented", 3: "tenure_rent_free", 9: "tenure_other"},
        1,
        "housing",
        "tenure",
    )
    _add_dummies(
        "toilet_type",
        {1: "toilet_sanitary", 2: "toilet_pit_slab", 3: "toilet_non_sanitary", 4: "toilet_none"},
        4,
        "housing",
        "toilet",
    )
    _add(
        "toilet_shared",
        ["toilet_shared"],
        lambda p: _num(p, "toilet_shared"),
        "toilet shared with other households",
        "housing",
    )
    _add_dummies(
        "water_source",
        {1: "water_piped", 2: "water_tubewell", 3: "water_surface", 4: "water_rain", 9: "water_other"},
        2,
        "housing",
        "drinking water",
    )
    _add_dummies(
        "electricity",
        {1: "electricity_grid", 2: "electricity_solar", 3: "electricity_none"},
        3,
        "housing",
        "electricity",
    )
    _add_dummies(
        "cooking_fuel",
        {1: "fuel_biomass", 2: "fuel_kerosene", 3: "fuel_gas", 4: "fuel_electric", 9: "fuel_other"},
        1,
        "housing",
        "cooking fuel",
    )

    # Assets, land, livestock, finance.
    for asset in codes.ASSETS:
        column = f"asset_{asset}"
        _add(column, [column], lambda p, c=column: _num(p, c), f"owns a {asset.replace('_', ' ')}", "assets")
    for column, name, text in (
        ("land_homestead_decimal", "log1p_land_homestead", "log(1 + homestead land in decimals)"),
        ("land_cultivable_decimal", "log1p_land_cultivable", "log(1 + cultivable land in decimals)"),
        ("cattle", "log1p_cattle", "log(1 + cattle)"),
        ("goats_sheep", "log1p_goats_sheep", "log(1 + goats and sheep)"),
        ("poultry", "log1p_poultry", "log(1 + poultry)"),
        ("remittance_amount_12m", "log1p_remittance_amount", "log(1 + remittances received in 12 months, Tk)"),
    ):
        _add(name, [column], lambda p, c=column: np.log1p(np.clip(_num(p, c), 0, None)), text, "assets")
    _add(
        "landless",
        ["land_cultivable_decimal"],
        lambda p: _flag(_num(p, "land_cultivable_decimal"), _num(p, "land_cultivable_decimal") <= 0),
        "no cultivable land",
        "assets",
    )
    _add(
        "remittance_received",
        ["remittance_received"],
        lambda p: _num(p, "remittance_received"),
        "received remittances in the last 12 months",
        "income",
    )
    _add(
        "bank_or_mfs_account",
        ["bank_or_mfs_account"],
        lambda p: _num(p, "bank_or_mfs_account"),
        "has a bank or mobile financial services account",
        "income",
    )
    _add_dummies(
        "main_income_source",
        {
            1: "income_agriculture",
            2: "income_agri_wage",
            3: "income_nonagri_wage",
            4: "income_business",
            5: "income_salaried",
            6: "income_remittance",
            7: "income_transfers",
            9: "income_other",
        },
        1,
        "income",
        "main income source",
    )
    for shock in codes.SHOCKS:
        column = f"shock_{shock}"
        text = f"shock in the last 12 months: {shock.replace('_', ' ')}"
        _add(column, [column], lambda p, c=column: _num(p, c), text, "shocks")

    # Location.
    _add(
        "area_paurashava",
        ["area_type"],
        lambda p: _flag(_num(p, "area_type"), _num(p, "area_type") == 2),
        "area type is urban paurashava (reference: rural)",
        "location",
    )
    _add(
        "area_city_corporation",
        ["area_type"],
        lambda p: _flag(_num(p, "area_type"), _num(p, "area_type") == 3),
        "area type is city corporation (reference: rural)",
        "location",
    )
    for code, slug in DIVISIONS.items():
        if code == REFERENCE_DIVISION:
            continue
        _add(
            f"division_{slug}",
            ["division"],
            lambda p, k=code: _flag(_num(p, "division"), _num(p, "division") == k),
            f"division {slug.capitalize()} ({code}; reference: Dhaka)",
            "location",
        )


#: BBS division codes (first two digits of a union code) and their names, for division dummies.
DIVISIONS = {
    10: "barisal",
    20: "chittagong",
    30: "dhaka",
    40: "khulna",
    45: "mymensingh",
    50: "rajshahi",
    55: "rangpur",
    60: "sylhet",
}
REFERENCE_DIVISION = 30


def _education_years(level: np.ndarray) -> np.ndarray:
    table = np.full(14, np.nan)
    for code, years in EDUCATION_YEARS.items():
        table[code] = years
    valid = ~np.isnan(level) & (level >= 0) & (level <= 13)
    return np.where(valid, table[np.where(valid, level, 0).astype(int)], np.nan)


def education_level_from_years(years: np.ndarray) -> np.ndarray:
    """Map years of schooling (surveys such as BIDS ``educhead``) to ``education_level`` codes.

    0-10 years are class 0-10; 11 years counts as SSC passed, 12-14 as HSC, 15+ as degree.
    """
    years = np.asarray(years, dtype="float64")
    level = np.where(years >= 15, 13, np.where(years >= 12, 12, np.where(years >= 11, 11, np.floor(years))))
    return np.where(np.isnan(years), np.nan, np.clip(level, 0, 13))


_define_features()


# --------------------------------------------------------------------------------------
# Extra (survey-specific) features declared in a calibration spec
# --------------------------------------------------------------------------------------

EXTRA_TRANSFORMS = ("identity", "log", "log1p", "categorical")


@dataclass(frozen=True)
class ExtraFeature:
    """A survey column used as a feature: as-is, logged, or as dummies of its levels.

    For ``categorical`` the dummy levels (all but the first, which is the reference) must be
    given in ``levels`` so that scoring builds exactly the calibration columns.
    """

    column: str
    transform: str = "identity"
    levels: tuple = ()

    def names(self) -> list[str]:
        if self.transform == "identity":
            return [self.column]
        if self.transform == "categorical":
            return [f"{self.column}={_level_text(v)}" for v in self.levels[1:]]
        return [f"{self.transform}_{self.column}"]

    def describe(self) -> dict[str, str]:
        if self.transform == "categorical":
            ref = _level_text(self.levels[0]) if self.levels else "?"
            return {n: f"survey column {self.column} = {n.split('=', 1)[1]} (reference: {ref})" for n in self.names()}
        text = {"identity": "survey column {}", "log": "log of survey column {}", "log1p": "log(1 + survey column {})"}
        return {self.names()[0]: text[self.transform].format(self.column)}

    def compute(self, profile: pd.DataFrame) -> dict[str, np.ndarray]:
        values = _num(profile, self.column)
        if self.transform == "identity":
            return {self.column: values}
        if self.transform == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                return {self.names()[0]: np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)}
        if self.transform == "log1p":
            return {self.names()[0]: np.log1p(np.clip(values, 0, None))}
        return {name: _flag(values, values == level) for name, level in zip(self.names(), self.levels[1:], strict=True)}


def _level_text(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------------------


def available_features(columns: Iterable[str]) -> list[str]:
    """Registry features whose inputs are all among ``columns``, in registry order."""
    have = set(columns)
    return [name for name, f in FEATURES.items() if set(f.inputs) <= have]


def missing_inputs(name: str, columns: Iterable[str]) -> list[str]:
    """Profile columns that feature ``name`` needs and ``columns`` lacks."""
    have = set(columns)
    return [c for c in FEATURES[name].inputs if c not in have]


def describe_feature(name: str, extra: Sequence[ExtraFeature] = ()) -> str:
    """Human-readable definition of a registry or extra feature (for scorecards)."""
    if name in FEATURES:
        return FEATURES[name].description
    for item in extra:
        described = item.describe()
        if name in described:
            return described[name]
    raise KeyError(name)


def compute_features(
    profile: pd.DataFrame, names: Sequence[str] | None = None, extra: Sequence[ExtraFeature] = ()
) -> pd.DataFrame:
    """Evaluate features on a household profile (from :func:`household_profile`).

    ``names`` defaults to every registry feature whose inputs the profile has. Asking for an
    unknown feature or one whose inputs are missing raises :class:`FeatureInputError` naming
    it. ``extra`` adds survey-specific :class:`ExtraFeature` columns after the registry ones.
    Returns float64 columns (NaN where an input is missing), indexed like ``profile``.
    """
    if names is None:
        names = available_features(profile.columns)
    columns = {}
    for name in names:
        feature = FEATURES.get(name)
        if feature is None:
            raise FeatureInputError(f"unknown feature {name!r}")
        lacking = missing_inputs(name, profile.columns)
        if lacking:
            raise FeatureInputError(f"feature {name} needs column(s) {', '.join(lacking)}")
        columns[name] = feature.compute(profile)
    for item in extra:
        if item.column not in profile.columns:
            raise FeatureInputError(f"extra feature needs column {item.column}")
        columns.update(item.compute(profile))
    return pd.DataFrame(columns, index=profile.index, dtype="float64")
