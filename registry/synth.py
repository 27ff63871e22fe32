"""Seeded synthetic households and members: the registry's test data and the PMT's calibration survey.

``generate`` writes ``households.csv``/``members.csv`` in the registry's import format and,
optionally, ``survey.csv``/``survey_members.csv``: other households with the same fields plus
measured per-capita consumption and a survey weight, as a HIES-style calibration sample.

How the data hang together (``docs/synthetic_data.md`` has the numbers):

- every household gets a latent welfare level ``w`` (division and urban/rural effects plus
  a standard normal); housing, assets, land, education, income source, household size,
  safety-net receipt and shocks are all drawn from ``w`` with their own noise, so they are
  correlated with each other the way PMT variables are;
- survey consumption is a *known* linear function of household characteristics plus normal
  noise: ``log(consumption_pc) = TRUE_INTERCEPT + sum(TRUE_COEFFICIENTS[k] * x_k) + N(0, NOISE_SD)``
  with ``x_k`` computed by :func:`true_features` from the written fields, so calibration code
  can be checked against the truth, and the noise keeps R-squared near 0.5 as in real PMTs;
- the output is a function of ``(seed, households, survey_households)`` only: households are
  drawn in fixed blocks of ``BLOCK_SIZE``, each from its own random stream
  ``default_rng([seed, stream, block])``; ``chunk_size`` only sets how much is buffered
  between writes (memory) and how often ``progress`` is called.

Generation is vectorised with numpy per block (no per-member Python loops); one million
households (4.2 million members) take about 70 s of CPU and ~200 MB of memory, whatever their number.
"""

from __future__ import annotations

import csv
import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.codes import (
    ASSETS,
    DISABILITY_DOMAINS,
    DISABILITY_THRESHOLD,
    HOUSEHOLD_FIELD_NAMES,
    MEMBER_FIELD_NAMES,
    SAFETY_NET_PROGRAMMES,
    SHOCKS,
)

GEO_DIR = Path(__file__).resolve().parent.parent / "data" / "bd_geo"

#: Households drawn from one random stream. It defines the output (unlike ``chunk_size``): never change it
#: without accepting that every seed produces different data.
BLOCK_SIZE = 2_000
#: Largest household generated (line numbers 1..15); bigger compositions are truncated.
MAX_MEMBERS = 15

#: Columns of ``survey.csv`` after the household columns.
SURVEY_EXTRA_FIELDS = ("consumption_pc", "weight")
#: A poverty line (Tk per person per month) that classifies about a fifth of the survey population as poor.
POVERTY_LINE = 2_800
#: Survey weights add up to about this many households (the 2022 census counted about 41 million).
NATIONAL_HOUSEHOLDS = 41_000_000
#: The survey over-samples urban households (as HIES does); weights undo it.
SURVEY_URBAN_OVERSAMPLING = 1.5

#: Interview periods (inclusive). Both lie in the past and avoid 29 February, so that a birthday
#: "n years before the interview" always exists.
REGISTRY_INTERVIEW_PERIOD = ("2025-02-01", "2025-06-30")
SURVEY_INTERVIEW_PERIOD = ("2024-07-01", "2025-06-30")
REGISTRY_QUESTIONNAIRE = "NHD-2025.1"
SURVEY_QUESTIONNAIRE = "HIES-2025.1"

#: Survey households take serials from here on within their union, so their ids never meet the registry's.
SURVEY_SERIAL_START = 900_000
# National ID and birth registration numbers end in 9 digits that are a bijection (mod 10**9) of a person
# key = household index * 16 + line_no - 1: unique across registry and survey without remembering any.
_KEY_SPACE = 10**9
_LINE_SLOTS = 16
_SURVEY_INDEX_OFFSET = 60_000_000
MAX_REGISTRY_HOUSEHOLDS = _SURVEY_INDEX_OFFSET
MAX_SURVEY_HOUSEHOLDS = _KEY_SPACE // _LINE_SLOTS - _SURVEY_INDEX_OFFSET

DIVISION_CODES = ("10", "20", "30", "40", "45", "50", "55", "60")
DIVISION_NAMES = ("barisal", "chittagong", "dhaka", "khulna", "mymensingh", "rajshahi", "rangpur", "sylhet")
_BARISAL, _CHITTAGONG, _DHAKA, _KHULNA, _MYMENSINGH, _RAJSHAHI, _RANGPUR, _SYLHET = range(8)
#: Mean latent welfare by division (Dhaka and Chittagong richest; Rangpur, Mymensingh, Barisal poorest),
#: in the order of ``DIVISION_CODES``.
DIVISION_WELFARE = (-0.25, 0.15, 0.25, -0.05, -0.3, -0.1, -0.4, 0.1)
#: Latent welfare shift by area type (1 rural, 2 paurashava, 3 city corporation).
AREA_WELFARE = {1: 0.0, 2: 0.2, 3: 0.4}
#: Share of a district's population living in city corporation wards (only districts with wards in the
#: 2011 geography); all other districts have only unions and paurashavas.
CITY_CORPORATION_SHARE = {"3026": 0.70, "2015": 0.35, "4047": 0.30, "1006": 0.15, "5081": 0.20, "6091": 0.15}
#: Share of every district's population living in paurashavas (makes ~27% urban nationally).
PAURASHAVA_SHARE = 0.18

HILL_DISTRICTS = ("2046", "2084", "2003")  # Khagrachhari, Rangamati, Bandarban
GARO_DISTRICTS = ("4561", "4572", "4589")  # Mymensingh, Netrakona, Sherpur
SANTAL_DISTRICTS = ("5527", "5081", "5064", "5070", "5038")  # Dinajpur, Rajshahi, Naogaon, Nawabganj, Joypurhat
OTHER_INDIGENOUS_DISTRICTS = ("6058", "6036", "2022", "1078")  # Maulvibazar, Habiganj, Cox's Bazar, Patuakhali

#: The consumption model: ``log(consumption_pc) = TRUE_INTERCEPT + sum(TRUE_COEFFICIENTS[k] * x_k) + e``,
#: ``e ~ N(0, NOISE_SD)``, with ``x_k`` as defined by :func:`true_features`. Division dummies are relative
#: to Dhaka, area dummies to rural, education dummies to "no schooling", dwelling dummies to kutcha.
TRUE_COEFFICIENTS: dict[str, float] = {
    "log_household_size": -0.32,
    "dependents_share": -0.25,
    "female_head": -0.04,
    "head_edu_primary": 0.04,
    "head_edu_secondary": 0.1,
    "head_edu_ssc_hsc": 0.18,
    "head_edu_degree": 0.3,
    "dwelling_pucca": 0.12,
    "dwelling_semi_pucca": 0.06,
    "dwelling_jhupri": -0.08,
    "floor_cement": 0.05,
    "rooms_per_member": 0.1,
    "electricity_grid": 0.06,
    "electricity_solar": 0.03,
    "toilet_water_seal": 0.04,
    "cooking_gas_or_electric": 0.07,
    "water_piped": 0.03,
    "asset_tv": 0.05,
    "asset_refrigerator": 0.1,
    "asset_motorcycle": 0.09,
    "asset_smartphone": 0.05,
    "asset_computer": 0.09,
    "log_land_cultivable": 0.03,
    "log_cattle": 0.035,
    "remittance_received": 0.13,
    "bank_or_mfs_account": 0.03,
    "income_agri_wage": -0.09,
    "income_salaried": 0.04,
    "area_paurashava": -0.03,
    "area_city_corporation": -0.06,
    "division_barisal": -0.08,
    "division_chittagong": 0.02,
    "division_khulna": -0.03,
    "division_mymensingh": -0.10,
    "division_rajshahi": -0.05,
    "division_rangpur": -0.15,
    "division_sylhet": -0.02,
}
#: Intercept of the consumption model (sets the median per-capita consumption near 4,000 Tk/month).
TRUE_INTERCEPT = 8.52
#: Standard deviation of the consumption model's error term (sets R-squared near 0.5).
NOISE_SD = 0.36

_HOUSEHOLD_FILE = "households.csv"
_MEMBER_FILE = "members.csv"
_SURVEY_FILE = "survey.csv"
_SURVEY_MEMBER_FILE = "survey_members.csv"
_REGISTRY_STREAM = 0
_SURVEY_STREAM = 1


# --------------------------------------------------------------------------------------------------
# public API


def generate(
    out_dir: Path,
    households: int,
    seed: int,
    survey_households: int | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 20_000,
) -> dict:
    """Write a synthetic registry (and optionally a calibration survey) into ``out_dir``.

    Writes ``households.csv`` and ``members.csv`` (columns ``HOUSEHOLD_FIELD_NAMES`` and
    ``MEMBER_FIELD_NAMES``, UTF-8, ``\\n`` line ends, booleans 1/0, dates YYYY-MM-DD, empty
    cells for missing optional values). With ``survey_households``, also ``survey.csv`` (the
    household columns plus ``consumption_pc`` in Tk per person per month and ``weight``, the
    number of households each one represents) and ``survey_members.csv``.

    The bytes depend only on ``(seed, households, survey_households)``. ``chunk_size``
    (households buffered between writes, rounded up to whole blocks of ``BLOCK_SIZE``) is a
    memory knob. ``progress(n)`` is called after each chunk with the number of households
    written so far, registry then survey households (so it ends at ``households +
    survey_households``). Returns the counts ``households``, ``members``,
    ``survey_households`` and ``survey_members``.
    """
    if households < 0 or (survey_households is not None and survey_households < 0):
        raise ValueError("household counts must not be negative")
    if households > MAX_REGISTRY_HOUSEHOLDS:
        raise ValueError(f"at most {MAX_REGISTRY_HOUSEHOLDS:,} registry households")
    if survey_households and survey_households > MAX_SURVEY_HOUSEHOLDS:
        raise ValueError(f"at most {MAX_SURVEY_HOUSEHOLDS:,} survey households")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    geo = _geography()
    ids = _IdScheme.from_seed(seed)
    blocks_per_chunk = max(1, -(-int(chunk_size) // BLOCK_SIZE))
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done)

    counts = {"households": 0, "members": 0, "survey_households": 0, "survey_members": 0}
    counts["households"], counts["members"] = _write_files(
        out_dir / _HOUSEHOLD_FILE,
        out_dir / _MEMBER_FILE,
        HOUSEHOLD_FIELD_NAMES,
        _blocks(geo, ids, seed, _REGISTRY_STREAM, households),
        blocks_per_chunk,
        report,
    )
    if survey_households is not None:
        counts["survey_households"], counts["survey_members"] = _write_files(
            out_dir / _SURVEY_FILE,
            out_dir / _SURVEY_MEMBER_FILE,
            HOUSEHOLD_FIELD_NAMES + SURVEY_EXTRA_FIELDS,
            _blocks(geo, ids, seed, _SURVEY_STREAM, survey_households),
            blocks_per_chunk,
            report,
        )
    return counts


def true_features(households: dict[str, np.ndarray], members: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The consumption model's characteristics ``x_k`` (keys of ``TRUE_COEFFICIENTS``), one value per household.

    ``households`` maps household field names to equal-length arrays of numbers (codes, 0/1,
    decimals), with ``union_code`` as strings (or ``division`` as an index into
    ``DIVISION_CODES``); ``members`` maps ``household_index`` (the position of the member's
    household in ``households``), ``age_years``, ``relation_to_head``, ``sex`` and
    ``education_level`` to arrays. Exposed so that tests and calibration code can recompute the
    truth from the CSVs.
    """
    n = len(households["area_type"])
    hh = np.asarray(members["household_index"])
    age = np.asarray(members["age_years"])
    size = np.bincount(hh, minlength=n).astype(float)
    dependents = np.bincount(hh, weights=((age < 15) | (age >= 65)).astype(float), minlength=n)
    head = np.asarray(members["relation_to_head"]) == 1
    head_sex = np.zeros(n)
    head_edu = np.zeros(n)
    head_sex[hh[head]] = np.asarray(members["sex"])[head]
    head_edu[hh[head]] = np.asarray(members["education_level"])[head]

    def h(name):
        return np.asarray(households[name], dtype=float)

    dwelling, electricity, area = h("dwelling_structure"), h("electricity"), h("area_type")
    fuel, income = h("cooking_fuel"), h("main_income_source")
    division = (
        np.asarray(households["division"])
        if "division" in households
        else _division_index(np.asarray(households["union_code"]))
    )
    x = {
        "log_household_size": np.log(size),
        "dependents_share": dependents / size,
        "female_head": (head_sex == 2).astype(float),
        "head_edu_primary": ((head_edu >= 1) & (head_edu <= 5)).astype(float),
        "head_edu_secondary": ((head_edu >= 6) & (head_edu <= 10)).astype(float),
        "head_edu_ssc_hsc": ((head_edu == 11) | (head_edu == 12)).astype(float),
        "head_edu_degree": (head_edu == 13).astype(float),
        "dwelling_pucca": (dwelling == 1).astype(float),
        "dwelling_semi_pucca": (dwelling == 2).astype(float),
        "dwelling_jhupri": (dwelling == 4).astype(float),
        "floor_cement": (h("floor_material") == 3).astype(float),
        "rooms_per_member": h("rooms") / size,
        "electricity_grid": (electricity == 1).astype(float),
        "electricity_solar": (electricity == 2).astype(float),
        "toilet_water_seal": (h("toilet_type") == 1).astype(float),
        "cooking_gas_or_electric": ((fuel == 3) | (fuel == 4)).astype(float),
        "water_piped": (h("water_source") == 1).astype(float),
        "asset_tv": h("asset_tv"),
        "asset_refrigerator": h("asset_refrigerator"),
        "asset_motorcycle": h("asset_motorcycle"),
        "asset_smartphone": h("asset_smartphone"),
        "asset_computer": h("asset_computer"),
        "log_land_cultivable": np.log1p(h("land_cultivable_decimal")),
        "log_cattle": np.log1p(h("cattle")),
        "remittance_received": h("remittance_received"),
        "bank_or_mfs_account": h("bank_or_mfs_account"),
        "income_agri_wage": (income == 2).astype(float),
        "income_salaried": (income == 5).astype(float),
        "area_paurashava": (area == 2).astype(float),
        "area_city_corporation": (area == 3).astype(float),
    }
    for i, name in enumerate(DIVISION_NAMES):
        if i != _DHAKA:
            x[f"division_{name}"] = (division == i).astype(float)
    return {k: x[k] for k in TRUE_COEFFICIENTS}


def true_log_consumption_mean(features: dict[str, np.ndarray]) -> np.ndarray:
    """``TRUE_INTERCEPT + sum(TRUE_COEFFICIENTS[k] * x_k)``: expected log per-capita consumption."""
    total = np.full(len(next(iter(features.values()))), TRUE_INTERCEPT)
    for k, b in TRUE_COEFFICIENTS.items():
        total = total + b * features[k]
    return total


# --------------------------------------------------------------------------------------------------
# geography


@dataclass(frozen=True)
class _Geography:
    codes: np.ndarray  # '<U8' union codes
    place: np.ndarray  # object: "union name, upazila name" for addresses
    area_type: np.ndarray  # 1/2/3
    division: np.ndarray  # index into DIVISION_CODES
    district: np.ndarray  # '<U4'
    p_registry: np.ndarray  # probability of each union for a registry household
    p_survey: np.ndarray  # ... for a survey household (urban over-sampled)
    cum_registry: np.ndarray
    cum_survey: np.ndarray


def _division_index(union_codes: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(DIVISION_CODES)}
    return np.array([lookup[str(c)[:2]] for c in union_codes], dtype=np.int8)


@functools.cache
def _geography() -> _Geography:
    """Unions with the probability that a household lives there.

    A union's share is its district's 2022 census population times the share of its unit
    type in that district (city corporation, paurashava, rural), split evenly among the
    district's units of that type. That keeps division shares close to the census (Dhaka
    largest) and makes ~27% of households urban.
    """
    with open(GEO_DIR / "unions.csv", encoding="utf-8", newline="") as fh:
        unions = list(csv.DictReader(fh))
    with open(GEO_DIR / "upazilas.csv", encoding="utf-8", newline="") as fh:
        upazila_names = {r["code"]: r["name_en"] for r in csv.DictReader(fh)}
    with open(GEO_DIR / "districts_population.csv", encoding="utf-8", newline="") as fh:
        population = {r["code"]: float(r["phc2022_population_enumerated"]) for r in csv.DictReader(fh)}
    unit_area = {"union": 1, "paurashava": 2, "ward": 3}
    codes = np.array([u["code"] for u in unions], dtype="<U8")
    area = np.array([unit_area[u["unit_type"]] for u in unions], dtype=np.int8)
    district = np.array([c[:4] for c in codes], dtype="<U4")
    n_units: dict[tuple[str, int], int] = {}
    for d, a in zip(district.tolist(), area.tolist(), strict=True):
        n_units[(d, a)] = n_units.get((d, a), 0) + 1
    weights = np.empty(len(unions))
    for i, (d, a) in enumerate(zip(district.tolist(), area.tolist(), strict=True)):
        city = CITY_CORPORATION_SHARE.get(d, 0.0) if n_units.get((d, 3)) else 0.0
        town = PAURASHAVA_SHARE if n_units.get((d, 2)) else 0.0
        share = {1: 1.0 - city - town, 2: town, 3: city}[a]
        weights[i] = population[d] * share / n_units[(d, a)]
    p = weights / weights.sum()
    oversample = np.where(area > 1, SURVEY_URBAN_OVERSAMPLING, 1.0)
    p_survey = p * oversample / (p * oversample).sum()
    place = np.array(
        [f"{u['name_en']}, {upazila_names.get(u['parent_code'], '')}".rstrip(", ") for u in unions], dtype=object
    )
    return _Geography(
        codes, place, area, _division_index(codes), district, p, p_survey, np.cumsum(p), np.cumsum(p_survey)
    )


# --------------------------------------------------------------------------------------------------
# names: small lists of common Bangladeshi names, (English, Bangla)

_MUSLIM_MALE = (
    ("Rahim", "রহিম"),
    ("Karim", "করিম"),
    ("Jamal", "জামাল"),
    ("Kamal", "কামাল"),
    ("Rafiq", "রফিক"),
    ("Shafiq", "শফিক"),
    ("Habib", "হাবিব"),
    ("Jahangir", "জাহাঙ্গীর"),
    ("Alamgir", "আলমগীর"),
    ("Mizanur", "মিজানুর"),
    ("Mostafa", "মোস্তফা"),
    ("Nurul", "নুরুল"),
    ("Anwar", "আনোয়ার"),
    ("Babul", "বাবুল"),
    ("Selim", "সেলিম"),
    ("Shahidul", "শহিদুল"),
    ("Aminul", "আমিনুল"),
    ("Rashid", "রশিদ"),
    ("Faruk", "ফারুক"),
    ("Harun", "হারুন"),
    ("Sohel", "সোহেল"),
    ("Rubel", "রুবেল"),
    ("Imran", "ইমরান"),
    ("Hasan", "হাসান"),
    ("Mamun", "মামুন"),
    ("Liton", "লিটন"),
    ("Shamim", "শামীম"),
    ("Saiful", "সাইফুল"),
    ("Monir", "মনির"),
    ("Abul", "আবুল"),
    ("Delwar", "দেলোয়ার"),
    ("Ariful", "আরিফুল"),
    ("Nazrul", "নজরুল"),
    ("Rakib", "রাকিব"),
    ("Sabbir", "সাব্বির"),
    ("Tanvir", "তানভীর"),
    ("Yusuf", "ইউসুফ"),
    ("Jashim", "জসিম"),
    ("Alauddin", "আলাউদ্দিন"),
)
_MUSLIM_FEMALE = (
    ("Fatema", "ফাতেমা"),
    ("Ayesha", "আয়েশা"),
    ("Rahima", "রহিমা"),
    ("Karima", "করিমা"),
    ("Hasina", "হাসিনা"),
    ("Nasrin", "নাসরিন"),
    ("Shirin", "শিরিন"),
    ("Rokeya", "রোকেয়া"),
    ("Salma", "সালমা"),
    ("Nazma", "নাজমা"),
    ("Jesmin", "জেসমিন"),
    ("Shahnaz", "শাহনাজ"),
    ("Rina", "রিনা"),
    ("Morjina", "মর্জিনা"),
    ("Jahanara", "জাহানারা"),
    ("Sufia", "সুফিয়া"),
    ("Amena", "আমেনা"),
    ("Khadija", "খাদিজা"),
    ("Parvin", "পারভীন"),
    ("Taslima", "তাসলিমা"),
    ("Rupa", "রুপা"),
    ("Mousumi", "মৌসুমী"),
    ("Sumaiya", "সুমাইয়া"),
    ("Tania", "তানিয়া"),
    ("Sharmin", "শারমিন"),
    ("Nusrat", "নুসরাত"),
    ("Shapla", "শাপলা"),
    ("Bilkis", "বিলকিস"),
    ("Halima", "হালিমা"),
    ("Kulsum", "কুলসুম"),
    ("Rehana", "রেহানা"),
    ("Sathi", "সাথী"),
    ("Mim", "মীম"),
    ("Asma", "আসমা"),
    ("Rabeya", "রাবেয়া"),
)
_MUSLIM_SURNAME_MALE = (
    ("Hossain", "হোসেন"),
    ("Rahman", "রহমান"),
    ("Islam", "ইসলাম"),
    ("Uddin", "উদ্দিন"),
    ("Ahmed", "আহমেদ"),
    ("Ali", "আলী"),
    ("Mia", "মিয়া"),
    ("Khan", "খান"),
    ("Sheikh", "শেখ"),
    ("Sarkar", "সরকার"),
    ("Mondal", "মন্ডল"),
    ("Howlader", "হাওলাদার"),
    ("Talukder", "তালুকদার"),
    ("Chowdhury", "চৌধুরী"),
    ("Molla", "মোল্লা"),
    ("Bhuiyan", "ভূঁইয়া"),
    ("Sikder", "সিকদার"),
    ("Kazi", "কাজী"),
    ("Pramanik", "প্রামানিক"),
)
_MUSLIM_SURNAME_FEMALE = (
    ("Akter", "আক্তার"),
    ("Begum", "বেগম"),
    ("Khatun", "খাতুন"),
    ("Sultana", "সুলতানা"),
    ("Bibi", "বিবি"),
    ("Khanam", "খানম"),
    ("Islam", "ইসলাম"),
    ("Rahman", "রহমান"),
)
_HINDU_MALE = (
    ("Ratan", "রতন"),
    ("Gopal", "গোপাল"),
    ("Shyamal", "শ্যামল"),
    ("Prodip", "প্রদীপ"),
    ("Subrata", "সুব্রত"),
    ("Nikhil", "নিখিল"),
    ("Bimal", "বিমল"),
    ("Tapan", "তপন"),
    ("Sujon", "সুজন"),
    ("Ashok", "অশোক"),
    ("Krishna", "কৃষ্ণ"),
    ("Nitai", "নিতাই"),
    ("Haripada", "হরিপদ"),
    ("Sanjoy", "সঞ্জয়"),
    ("Uttam", "উত্তম"),
    ("Dipak", "দীপক"),
    ("Biplob", "বিপ্লব"),
    ("Pankaj", "পঙ্কজ"),
    ("Sukumar", "সুকুমার"),
    ("Amit", "অমিত"),
)
_HINDU_FEMALE = (
    ("Rita", "রীতা"),
    ("Shikha", "শিখা"),
    ("Anjali", "অঞ্জলি"),
    ("Mala", "মালা"),
    ("Lakshmi", "লক্ষ্মী"),
    ("Sabita", "সবিতা"),
    ("Puja", "পূজা"),
    ("Mitu", "মিতু"),
    ("Kakoli", "কাকলী"),
    ("Durga", "দুর্গা"),
    ("Sumitra", "সুমিত্রা"),
    ("Gita", "গীতা"),
    ("Chandana", "চন্দনা"),
    ("Parboti", "পার্বতী"),
    ("Shila", "শীলা"),
    ("Bithi", "বীথি"),
    ("Tumpa", "টুম্পা"),
    ("Jharna", "ঝর্ণা"),
)
_HINDU_SURNAME = (
    ("Das", "দাস"),
    ("Roy", "রায়"),
    ("Saha", "সাহা"),
    ("Ghosh", "ঘোষ"),
    ("Dey", "দে"),
    ("Paul", "পাল"),
    ("Sarker", "সরকার"),
    ("Biswas", "বিশ্বাস"),
    ("Mondal", "মন্ডল"),
    ("Barman", "বর্মন"),
    ("Chakraborty", "চক্রবর্তী"),
    ("Sil", "শীল"),
    ("Karmakar", "কর্মকার"),
    ("Debnath", "দেবনাথ"),
    ("Majumder", "মজুমদার"),
    ("Bhowmik", "ভৌমিক"),
)
_CHRISTIAN_MALE = (
    ("Peter", "পিটার"),
    ("John", "জন"),
    ("Joseph", "যোসেফ"),
    ("Robin", "রবিন"),
    ("Michael", "মাইকেল"),
    ("Paul", "পল"),
    ("Anthony", "অ্যান্থনি"),
    ("Thomas", "টমাস"),
)
_CHRISTIAN_FEMALE = (
    ("Mary", "মেরি"),
    ("Rita", "রীতা"),
    ("Anita", "অনিতা"),
    ("Monica", "মনিকা"),
    ("Shefali", "শেফালী"),
    ("Margaret", "মার্গারেট"),
    ("Agnes", "অ্যাগনেস"),
    ("Lucy", "লুসি"),
)
_CHRISTIAN_SURNAME = (
    ("Gomes", "গোমেজ"),
    ("D'Costa", "ডি'কস্টা"),
    ("Rozario", "রোজারিও"),
    ("Gonsalves", "গনসালভেস"),
    ("Halder", "হালদার"),
    ("Baroi", "বাড়ৈ"),
    ("Corraya", "কোড়াইয়া"),
)
_BUDDHIST_MALE = (
    ("Sumon", "সুমন"),
    ("Jyotish", "জ্যোতিষ"),
    ("Prodip", "প্রদীপ"),
    ("Ratan", "রতন"),
    ("Dipankar", "দীপংকর"),
    ("Ananda", "আনন্দ"),
    ("Bodhipal", "বোধিপাল"),
)
_BUDDHIST_FEMALE = (
    ("Shanti", "শান্তি"),
    ("Mitali", "মিতালী"),
    ("Rupa", "রুপা"),
    ("Sonali", "সোনালী"),
    ("Dipa", "দীপা"),
    ("Keya", "কেয়া"),
)
_CHAKMA_MALE = (
    ("Bijoy", "বিজয়"),
    ("Arun", "অরুণ"),
    ("Mithun", "মিঠুন"),
    ("Subhash", "সুভাষ"),
    ("Nirmal", "নির্মল"),
    ("Jyotirmoy", "জ্যোতির্ময়"),
    ("Ananta", "অনন্ত"),
    ("Pulak", "পুলক"),
)
_CHAKMA_FEMALE = (
    ("Kalpana", "কল্পনা"),
    ("Nirupa", "নিরুপা"),
    ("Shanti", "শান্তি"),
    ("Sonali", "সোনালী"),
    ("Mitali", "মিতালী"),
    ("Jharna", "ঝর্ণা"),
)
_MARMA_MALE = (
    ("Aung Thowai", "অং থোয়াই"),
    ("Mong Sing", "মং সিং"),
    ("Ching Hla", "চিং হ্লা"),
    ("Thowai Ching", "থোয়াই চিং"),
    ("Uching", "উচিং"),
)
_MARMA_FEMALE = (("Mra Ching", "ম্রা চিং"), ("Nu Ching", "নু চিং"), ("Ma Nu", "মা নু"), ("Mya Sing", "ম্যা সিং"))
_TRIPURA_MALE = (("Ananta", "অনন্ত"), ("Bikash", "বিকাশ"), ("Sukanta", "সুকান্ত"), ("Ratan", "রতন"))
_TRIPURA_FEMALE = (("Sumi", "সুমি"), ("Rinku", "রিংকু"), ("Mina", "মিনা"), ("Sabita", "সবিতা"))
_GARO_MALE = (("Peter", "পিটার"), ("John", "জন"), ("Albert", "আলবার্ট"), ("Robin", "রবিন"))
_GARO_FEMALE = (("Mary", "মেরি"), ("Agnes", "অ্যাগনেস"), ("Nilima", "নীলিমা"), ("Jui", "জুই"))
_SANTAL_MALE = (("Sidhu", "সিধু"), ("Kanu", "কানু"), ("Babulal", "বাবুলাল"), ("Ramesh", "রমেশ"), ("Lakhan", "লখন"))
_SANTAL_FEMALE = (("Sumi", "সুমি"), ("Mala", "মালা"), ("Lakhi", "লক্ষী"), ("Sonamoni", "সোনামনি"))
_OTHER_IND_MALE = (("Ratan", "রতন"), ("Bikash", "বিকাশ"), ("Sukumar", "সুকুমার"), ("Uttam", "উত্তম"))
_OTHER_IND_FEMALE = (("Mala", "মালা"), ("Sumi", "সুমি"), ("Gita", "গীতা"), ("Mina", "মিনা"))

_MD = ("Md.", "মোঃ")
_MST = ("Mst.", "মোছাঃ")
_RANI = ("Rani", "রানী")

# Name pools: (male given, female given, male surnames, female surnames, male prefix, female prefix,
# female middle name). Pool index = _POOL_* below.
_POOL_SPECS = (
    (_MUSLIM_MALE, _MUSLIM_FEMALE, _MUSLIM_SURNAME_MALE, _MUSLIM_SURNAME_FEMALE, _MD, _MST, None),
    (_HINDU_MALE, _HINDU_FEMALE, _HINDU_SURNAME, _HINDU_SURNAME, None, None, _RANI),
    (_CHRISTIAN_MALE, _CHRISTIAN_FEMALE, _CHRISTIAN_SURNAME, _CHRISTIAN_SURNAME, None, None, None),
    (
        _BUDDHIST_MALE,
        _BUDDHIST_FEMALE,
        (("Barua", "বড়ুয়া"), ("Mutsuddi", "মুৎসুদ্দী")),
        (("Barua", "বড়ুয়া"),),
        None,
        None,
        None,
    ),
    (_CHAKMA_MALE, _CHAKMA_FEMALE, (("Chakma", "চাকমা"),), (("Chakma", "চাকমা"),), None, None, None),
    (_MARMA_MALE, _MARMA_FEMALE, (("Marma", "মারমা"),), (("Marma", "মারমা"),), None, None, None),
    (_TRIPURA_MALE, _TRIPURA_FEMALE, (("Tripura", "ত্রিপুরা"),), (("Tripura", "ত্রিপুরা"),), None, None, None),
    (
        _GARO_MALE,
        _GARO_FEMALE,
        (("Sangma", "সাংমা"), ("Marak", "মারাক"), ("Chisim", "চিসিম")),
        (("Sangma", "সাংমা"), ("Marak", "মারাক"), ("Chisim", "চিসিম")),
        None,
        None,
        None,
    ),
    (
        _SANTAL_MALE,
        _SANTAL_FEMALE,
        (
            ("Murmu", "মুর্মু"),
            ("Hembram", "হেমব্রম"),
            ("Soren", "সরেন"),
            ("Tudu", "টুডু"),
            ("Hansda", "হাঁসদা"),
            ("Kisku", "কিস্কু"),
        ),
        (("Murmu", "মুর্মু"), ("Hembram", "হেমব্রম"), ("Soren", "সরেন"), ("Tudu", "টুডু")),
        None,
        None,
        None,
    ),
    (
        _OTHER_IND_MALE,
        _OTHER_IND_FEMALE,
        (("Hajong", "হাজং"), ("Oraon", "ওঁরাও"), ("Sinha", "সিনহা"), ("Rakhaine", "রাখাইন")),
        (("Hajong", "হাজং"), ("Oraon", "ওঁরাও"), ("Sinha", "সিনহা")),
        None,
        None,
        None,
    ),
)
_POOL_MUSLIM, _POOL_HINDU, _POOL_CHRISTIAN, _POOL_BUDDHIST = 0, 1, 2, 3
#: Name pool of each indigenous ethnicity code (2 Chakma ... 7 other indigenous group).
_POOL_BY_ETHNICITY = {2: 4, 3: 5, 4: 6, 5: 7, 6: 8, 7: 9}


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


@functools.cache
def _name_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All full names of all pools in two flat arrays (English, Bangla) with offset/size per (pool, sex).

    Full names are combinations of optional prefix, given name, optional middle name and surname,
    so that a member's name is one index into a table (fast, vectorised).
    """
    en: list[str] = []
    bn: list[str] = []
    offset = np.zeros((len(_POOL_SPECS), 2), dtype=np.int64)
    size = np.zeros((len(_POOL_SPECS), 2), dtype=np.int64)
    for p, (m_given, f_given, m_sur, f_sur, m_prefix, f_prefix, f_middle) in enumerate(_POOL_SPECS):
        for sex, (given, surnames, prefix, middle) in enumerate(
            ((m_given, m_sur, m_prefix, None), (f_given, f_sur, f_prefix, f_middle))
        ):
            offset[p, sex] = len(en)
            # Listing the variants with and without a prefix/middle name gives each about half the names.
            prefixes = [None, prefix] if prefix else [None]
            middles = [None, middle] if middle else [None]
            for pre, g, mid, s in itertools.product(prefixes, given, middles, surnames):
                parts = [x for x in (pre, g, mid, s) if x]
                en.append(" ".join(x[0] for x in parts))
                bn.append(_nfc(" ".join(x[1] for x in parts)))
            size[p, sex] = len(en) - offset[p, sex]
    return np.array(en, dtype=object), np.array(bn, dtype=object), offset, size


_RURAL_PLACES = (
    "Uttar Para",
    "Dakshin Para",
    "Purba Para",
    "Paschim Para",
    "Madhya Para",
    "Kazi Para",
    "Molla Para",
    "Mia Bari",
    "Char Para",
    "Notun Para",
    "Haji Para",
    "Sarkar Para",
    "Mondal Para",
    "Bepari Para",
    "Khan Bari",
    "Bazar Para",
    "Boro Gram",
    "Choto Gram",
    "Fakir Para",
    "Kumar Para",
    "Jele Para",
    "Purba Gram",
    "Paschim Gram",
    "Char Kalikapur",
    "Noyapara",
    "Kandi Para",
    "Bil Para",
    "Talukdar Bari",
    "Majhi Para",
    "Bagan Para",
)
_URBAN_PLACES = (
    "Station Road",
    "College Para",
    "Court Para",
    "Masjid Para",
    "Hospital Road",
    "Bazar Road",
    "Thana Para",
    "Kalibari Road",
    "Natun Bazar",
    "Puran Bazar",
    "School Road",
    "Launch Ghat",
    "Bus Stand Para",
    "Mill Para",
    "Housing Estate",
    "Sadar Road",
    "Paurashava Road",
    "Rail Colony",
    "Bank Colony",
    "Kachari Para",
)


# --------------------------------------------------------------------------------------------------
# identifiers


@dataclass(frozen=True)
class _IdScheme:
    """Seed-dependent bijections person key -> 9 digits, for NIDs and birth registration numbers."""

    nid_a: int
    nid_b: int
    brn_a: int
    brn_b: int

    @classmethod
    def from_seed(cls, seed: int) -> _IdScheme:
        rng = np.random.default_rng([seed, 2])

        def unit() -> int:
            # A multiplier coprime with 10**9 (odd, not a multiple of 5) makes key -> a*key+b (mod 10**9) one-to-one.
            while True:
                a = int(rng.integers(10**8, _KEY_SPACE))
                if a % 2 and a % 5:
                    return a

        return cls(unit(), int(rng.integers(_KEY_SPACE)), unit(), int(rng.integers(_KEY_SPACE)))

    @staticmethod
    def _mix(key: np.ndarray, a: int, b: int) -> np.ndarray:
        # a * key < 10**18 fits in int64; the modular product is computed without overflow.
        return (key.astype(np.int64) * a + b) % _KEY_SPACE

    def nid_digits(self, key: np.ndarray) -> np.ndarray:
        return self._mix(key, self.nid_a, self.nid_b)

    def brn_digits(self, key: np.ndarray) -> np.ndarray:
        return self._mix(key, self.brn_a, self.brn_b)


# --------------------------------------------------------------------------------------------------
# writing


def _write_files(
    household_path: Path,
    member_path: Path,
    household_columns: tuple[str, ...],
    blocks: Iterator[_Block],
    blocks_per_chunk: int,
    report: Callable[[int], None],
) -> tuple[int, int]:
    n_households = n_members = 0
    with (
        open(household_path, "w", encoding="utf-8", newline="") as hf,
        open(member_path, "w", encoding="utf-8", newline="") as mf,
    ):
        hf.write(",".join(household_columns) + "\n")
        mf.write(",".join(MEMBER_FIELD_NAMES) + "\n")
        while True:
            # A block's cells become CSV lines at once: lines take far less memory than lists of cells.
            h_lines: list[str] = []
            m_lines: list[str] = []
            for block in itertools.islice(blocks, blocks_per_chunk):
                h_lines.extend(_csv_lines(block.households, household_columns))
                m_lines.extend(_csv_lines(block.members, MEMBER_FIELD_NAMES))
            if not h_lines:
                break
            hf.write("\n".join(h_lines) + "\n")
            mf.write("\n".join(m_lines) + "\n")
            n_households += len(h_lines)
            n_members += len(m_lines)
            report(len(h_lines))
    return n_households, n_members


_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def _csv_lines(columns: dict[str, list[str]], names: tuple[str, ...]) -> list[str]:
    """CSV lines (RFC 4180 quoting, as ``csv.writer`` would) of equal-length columns of strings.

    Joining strings directly is faster than ``csv.writer``; cells are quoted only in
    the columns that contain a comma, a quote or a line break somewhere.
    """
    cells = []
    for name in names:
        values = columns[name]
        if _NEEDS_QUOTES.search("\x00".join(values)):
            values = ['"' + v.replace('"', '""') + '"' if _NEEDS_QUOTES.search(v) else v for v in values]
        cells.append(values)
    return list(map(",".join, zip(*cells, strict=True)))


@dataclass
class _Block:
    households: dict[str, list[str]]
    members: dict[str, list[str]]


def _blocks(geo: _Geography, ids: _IdScheme, seed: int, stream: int, n: int) -> Iterator[_Block]:
    """Blocks of ``BLOCK_SIZE`` households, each from its own random stream; serials carry across blocks."""
    next_serial = np.full(len(geo.codes), SURVEY_SERIAL_START if stream == _SURVEY_STREAM else 0, dtype=np.int64)
    index_offset = _SURVEY_INDEX_OFFSET if stream == _SURVEY_STREAM else 0
    for b, start in enumerate(range(0, n, BLOCK_SIZE)):
        rng = np.random.default_rng([seed, stream, b])
        size = min(BLOCK_SIZE, n - start)
        yield _generate_block(rng, geo, ids, size, index_offset + start, next_serial, stream == _SURVEY_STREAM, n)


# --------------------------------------------------------------------------------------------------
# small vectorised helpers


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bern(rng: np.random.Generator, logit) -> np.ndarray:
    """One Bernoulli draw per element with success probability ``logistic(logit)``."""
    logit = np.asarray(logit, dtype=float)
    return rng.random(logit.shape) < _logistic(logit)


def _chance(rng: np.random.Generator, p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return rng.random(p.shape) < p


def _ordered(rng: np.random.Generator, score: np.ndarray, cuts) -> np.ndarray:
    """Ordered-logit category 0..len(cuts): the number of cut points below ``score`` + logistic noise."""
    return np.searchsorted(np.asarray(cuts, dtype=float), score + rng.logistic(size=score.shape))


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Index of a category drawn from each row of ``probs`` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _pick_fixed(rng: np.random.Generator, n: int, values, probs) -> np.ndarray:
    """``n`` draws of ``values`` with fixed probabilities."""
    cum = np.cumsum(np.asarray(probs, dtype=float))
    idx = np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(cum) - 1)
    return np.asarray(values)[idx]


def _argmax_logits(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """Multinomial-logit draw per row (Gumbel-max trick)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


_INT_TEXT = np.array([str(i) for i in range(10_001)], dtype=object)
_HUNDREDTHS = np.array([""] + [f".{i:02d}".rstrip("0") for i in range(1, 100)], dtype=object)


def _text_int(values: np.ndarray) -> list[str]:
    values = np.asarray(values, dtype=np.int64)
    if len(values) and values.min() >= 0 and values.max() < len(_INT_TEXT):
        return _INT_TEXT[values].tolist()
    return values.astype(str).tolist()


def _text_bool(values: np.ndarray) -> list[str]:
    return np.where(np.asarray(values, dtype=bool), "1", "0").tolist()


def _text_hundredths(values: np.ndarray) -> list[str]:
    """Decimal text of integer hundredths: 1250 -> '12.5', 7 -> '0.07', 300 -> '3'."""
    values = np.asarray(values, dtype=np.int64)
    whole = np.asarray(_text_int(values // 100), dtype=object)
    return (whole + _HUNDREDTHS[values % 100]).tolist()


def _text_dates(days: np.ndarray, present: np.ndarray | None = None) -> list[str]:
    text = np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)
    if present is not None:
        text[~present] = ""
    return text.tolist()


def _group_any(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per household (members sorted by household, ``starts`` = first row of each): any flag set."""
    return np.maximum.reduceat(flags.astype(np.int8), starts) > 0


def _group_sum(values: np.ndarray, hh: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(hh, weights=values, minlength=n)


@functools.cache
def _period_days(period: tuple[str, str]) -> np.ndarray:
    days = np.arange(np.datetime64(period[0]), np.datetime64(period[1]) + 1)
    month_day = np.datetime_as_string(days)
    return days[~np.char.endswith(month_day.astype(str), "-02-29")]


# --------------------------------------------------------------------------------------------------
# one block of households


def _generate_block(
    rng: np.random.Generator,
    geo: _Geography,
    ids: _IdScheme,
    n: int,
    first_index: int,
    next_serial: np.ndarray,
    survey: bool,
    total: int,
) -> _Block:
    """Draw ``n`` households (of ``total`` in the file) with their members, as CSV cells."""
    # ---- location and latent welfare
    cum_p = geo.cum_survey if survey else geo.cum_registry
    union = np.minimum(np.searchsorted(cum_p, rng.random(n) * cum_p[-1], side="right"), len(cum_p) - 1)
    area = geo.area_type[union].astype(np.int64)
    division = geo.division[union].astype(np.int64)
    district = geo.district[union]
    urban = area > 1
    city = area == 3
    rural = ~urban
    w = (  # latent welfare: everything below is drawn from it, each with its own noise
        np.asarray(DIVISION_WELFARE)[division]
        + np.array([0.0, AREA_WELFARE[1], AREA_WELFARE[2], AREA_WELFARE[3]])[area]
        + rng.standard_normal(n)
    )

    # ---- religion and ethnicity (household level)
    ethnicity, religion = _religion_ethnicity(rng, division, district)

    # ---- remittances: migration is concentrated in Chittagong, Sylhet and Dhaka divisions
    rem_div = np.array([0.0, 0.7, 0.2, -0.3, -0.3, -0.5, -0.7, 0.8])
    remittance = _bern(rng, -2.75 + rem_div[division] + 0.25 * w - 0.3 * city)

    # ---- members
    m = _compose_members(rng, n, w, urban, remittance)
    hh, rel, age, sex, marital = m.hh, m.relation, m.age, m.sex, m.marital
    starts, size = m.starts, m.size
    head_row = starts
    n_members = len(hh)
    head_age = age[head_row]
    head_female = sex[head_row] == 2
    mw = w[hh]  # welfare of each member's household

    # ---- education: a target attainment driven by welfare and birth cohort, capped by age
    cohort = np.select([age <= 24, age <= 30, age <= 45, age <= 60], [2.0, 1.0, 0.4, -0.3], -1.0)
    female_gap = np.where((sex == 2) & (age > 40), -0.6, 0.0)
    target = _ordered(rng, 0.9 * mw + cohort + female_gap + 0.5 * urban[hh], (-1.6, 0.3, 2.4, 3.3, 4.0))
    primary_class = np.where(rng.random(n_members) < 0.5, 5, rng.integers(1, 5, n_members))
    secondary_class = np.where(rng.random(n_members) < 0.35, 10, rng.integers(6, 10, n_members))
    target_level = np.select(
        [target == 0, target == 1, target == 2, target == 3, target == 4],
        [0, primary_class, secondary_class, 11, 12],
        13,
    )
    age_cap = np.select([age <= 6, age <= 16, age <= 18, age <= 21], [0, age - 6, 11, 12], 13)
    delay = _pick_fixed(rng, n_members, [0, 1, 2], [0.6, 0.3, 0.1]) * (mw < 0.5)
    school_age = (age >= 6) & (age <= 24)
    education = np.where(school_age, np.minimum(target_level, np.maximum(age_cap - delay, 0)), target_level)
    education = np.minimum(education, np.maximum(age_cap, 0))
    enrolled = school_age & (target_level > education)
    enrolled |= (age == 5) & _bern(rng, -0.8 + 0.5 * mw)
    head_edu = education[head_row]

    # ---- disability (Washington Group short set, asked from age 5): more and worse with age
    disability = _disability(rng, age)
    severe_any = np.zeros(n_members, dtype=bool)
    severe_limiting = np.zeros(n_members, dtype=bool)
    for d, levels in disability.items():
        severe = levels >= DISABILITY_THRESHOLD
        severe_any |= severe
        if d in ("walking", "self_care", "cognition"):
            severe_limiting |= severe

    # ---- housing
    dwelling_cat = _ordered(rng, 1.1 * w + 0.9 * urban + 0.9 * city, (-3.1, 1.3, 2.9))
    dwelling = np.array([4, 3, 2, 1])[dwelling_cat]
    wall, roof, floor = _materials(rng, dwelling, w)
    rooms = np.clip(
        1 + rng.poisson(np.clip(0.7 + 0.45 * w + 0.12 * (size - 4) + 0.6 * (dwelling <= 2), 0.05, None)), 1, 20
    )
    tenure_probs = np.array([[0.0] * 4, [0.87, 0.03, 0.09, 0.01], [0.64, 0.28, 0.07, 0.01], [0.36, 0.57, 0.06, 0.01]])
    tenure = np.array([1, 2, 3, 9])[_pick(rng, tenure_probs[area])]
    # The poorest rural families often live rent-free on someone else's (or government khas) land.
    tenure = np.where(rural & (tenure == 1) & (w < -1.2) & (rng.random(n) < 0.25), 3, tenure)
    toilet_cat = _ordered(rng, 1.0 * w + 0.8 * urban, (-3.3, -1.3, 0.7))
    toilet = np.array([4, 3, 2, 1])[toilet_cat]
    toilet_shared = (toilet != 4) & _bern(rng, -1.2 - 0.5 * w + 0.9 * city)
    grid = _bern(rng, 2.1 + 1.0 * w + 2.0 * urban - 0.5 * np.isin(division, (_BARISAL, _SYLHET, _RANGPUR)))
    # Off-grid solar home systems are common in the haor, coastal islands and hill tracts.
    solar_logit = 0.1 + 0.5 * np.isin(division, (_BARISAL, _SYLHET)) + 1.0 * np.isin(district, HILL_DISTRICTS)
    solar = ~grid & _bern(rng, solar_logit)
    electricity = np.where(grid, 1, np.where(solar, 2, 3))
    piped = _bern(rng, np.select([city, urban], [0.8 + 0.5 * w, -1.0 + 0.5 * w], -3.8 + 0.5 * w))
    coastal = np.isin(division, (_KHULNA, _BARISAL))
    other_water = _pick(
        rng,
        np.column_stack(
            [
                np.full(n, 0.90),
                0.03 + 0.05 * coastal + 0.02 * (w < -1),
                0.01 + 0.04 * coastal,
                np.full(n, 0.02),
            ]
        )
        / (0.96 + 0.09 * coastal + 0.02 * (w < -1))[:, None],
    )
    water = np.where(piped, 1, np.array([2, 3, 4, 9])[other_water])
    gas = _bern(rng, np.select([city, urban], [1.9 + 0.8 * w, -0.6 + 0.8 * w], -2.8 + 0.9 * w))
    other_fuel = _pick_fixed(rng, n, [1, 2, 4, 9], [0.93, 0.03, 0.02, 0.02])
    other_fuel = np.where((other_fuel == 4) & (electricity != 1), 1, other_fuel)
    fuel = np.where(gas, 3, other_fuel)

    # ---- land (hundredths of a decimal, so that the CSV text is exact) and livestock
    owns_home = tenure == 1
    homestead = np.where(
        owns_home,
        np.round(np.exp(np.log(np.where(urban, 3.0, 6.0)) + 0.3 * w + 0.6 * rng.standard_normal(n)) * 4) * 25,
        0,
    ).astype(np.int64)
    has_land = _bern(rng, np.where(urban, -2.3 + 0.5 * w, 0.0 + 1.0 * w))
    cultivable = np.where(
        has_land,
        np.round(
            np.minimum(np.exp(np.log(np.where(urban, 20.0, 45.0)) + 0.5 * w + 0.9 * rng.standard_normal(n)), 5000) * 4
        )
        * 25,
        0,
    ).astype(np.int64)
    cultivable_dec = cultivable / 100.0
    cattle = np.where(
        _bern(rng, -0.7 + 0.3 * w + 1.2 * (cultivable > 0) - 2.5 * urban),
        1 + rng.poisson(1.0 + 0.5 * np.maximum(w, 0)),
        0,
    )
    goats = np.where(_bern(rng, -1.2 - 0.2 * w - 2.0 * urban), 1 + rng.poisson(1.5, n), 0)
    poultry = np.where(_bern(rng, 0.4 - 2.5 * urban), 2 + rng.poisson(6.0, n), 0)

    # ---- main income source (multinomial logit on welfare, land, education, remittances, age)
    edu_high = (head_edu >= 11).astype(float)
    land_big = (cultivable_dec >= 50).astype(float)
    logits = np.column_stack(
        [
            np.where(urban, -3.5, -0.6 + 1.8 * (cultivable_dec >= 20) + 0.2 * w),  # 1 own agriculture
            np.where(urban, -2.5 - 1.0 * w, 0.4 - 1.0 * w - 1.5 * land_big),  # 2 agricultural wage
            np.where(urban, 0.8 - 0.4 * w, 0.1 - 0.3 * w),  # 3 non-agricultural wage
            np.where(urban, 0.2 + 0.2 * w, -0.6 + 0.3 * w),  # 4 business
            np.where(urban, -0.4 + 0.6 * w, -1.7 + 0.7 * w) + 1.2 * edu_high,  # 5 salaried
            np.where(remittance, 1.0 + 1.5 * head_female, -np.inf),  # 6 remittance
            -4.0 + 2.5 * (head_age >= 70) + 1.0 * head_female - 0.5 * w,  # 7 transfers
            np.full(n, -2.8),  # 9 other
        ]
    )
    income = np.array([1, 2, 3, 4, 5, 6, 7, 9])[_argmax_logits(rng, logits)]

    # ---- occupations, consistent with age, enrolment, sex and the household's income source
    occupation = _occupations(rng, m, education, enrolled, severe_limiting, income, urban, w, cultivable_dec)

    # ---- pregnant or lactating: mothers of infants, some other married women of childbearing age
    women = (sex == 2) & (age >= 15) & (age <= 49)
    infant = age <= 1
    head_infant = _group_any(infant & (rel == 3), starts)
    grand_infant = _group_any(infant & (rel == 5), starts)
    mother_of_children = np.where(head_female[hh], rel == 1, rel == 2)
    lactating = (
        women
        & ((mother_of_children & head_infant[hh]) | ((rel == 4) & grand_infant[hh]))
        & (rng.random(n_members) < 0.85)
    )
    pregnant = women & (marital == 2) & _bern(rng, -2.8 - 0.06 * (age - 25))
    pregnant_or_lactating = lactating | pregnant

    # ---- assets
    smartphone = _bern(rng, -0.3 + 1.1 * w + 0.6 * urban + 0.4 * city)
    assets = {
        "tv": (electricity != 3) & _bern(rng, -0.8 + 1.2 * w + 1.0 * urban - 0.8 * (electricity == 2)),
        "refrigerator": (electricity == 1) & _bern(rng, -1.4 + 1.3 * w + 0.8 * urban),
        "mobile_phone": smartphone | _bern(rng, 2.6 + 0.8 * w + 0.5 * urban),
        "smartphone": smartphone,
        "motorcycle": _bern(rng, -3.2 + 1.0 * w),
        "bicycle": _bern(rng, -1.3 + 0.2 * w + 0.5 * rural),
        "rickshaw_van": _bern(rng, -3.1 - 0.4 * w + 0.6 * (income == 3)),
        "sewing_machine": _bern(rng, -2.8 + 0.4 * w),
        "shallow_pump": rural & (cultivable_dec >= 50) & _bern(rng, -1.6 + 0.5 * w),
        "computer": _bern(rng, -4.6 + 1.5 * w + 1.0 * city),
    }
    remittance_amount = np.where(
        remittance, np.round(np.exp(np.log(90_000) + 0.3 * w + 0.7 * rng.standard_normal(n)) / 100) * 100, 0
    ).astype(np.int64)
    bank = _bern(rng, 0.2 + 0.9 * w + 0.6 * urban + 0.8 * remittance)

    # ---- shocks in the last 12 months: floods in the haor and northern char lands, cyclones on the coast
    has_elderly = _group_any(age >= 65, starts)
    flood_div = np.array([0.0, 0.0, 0.3, 0.0, 0.9, 0.3, 0.9, 1.8])
    cyclone_div = np.array([2.2, 1.2, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    erosion_div = np.array([1.0, 0.0, 0.5, 0.0, 0.3, 0.8, 1.2, 0.0])
    drought_div = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 1.5, 1.2, 0.0])
    shocks = {
        "flood": _bern(rng, -2.9 + flood_div[division] - 0.3 * w - 1.2 * city),
        "cyclone": _bern(rng, -4.0 + cyclone_div[division] - 0.2 * w - 1.0 * city),
        "river_erosion": _bern(rng, -4.2 + erosion_div[division] - 0.3 * w - 2.0 * urban),
        "drought": _bern(rng, -4.2 + drought_div[division] - 2.0 * urban),
        "illness_death": _bern(rng, -2.2 - 0.2 * w + 0.5 * has_elderly),
        "job_loss": _bern(rng, -3.3 + 0.8 * urban - 0.2 * w),
        "crop_loss": _bern(rng, -3.3 + 1.6 * (cultivable > 0) - 0.2 * w),
        "other": _bern(rng, -4.2 + 0 * w),
    }

    # ---- safety-net programmes: eligibility from members, receipt more likely the poorer the household
    elderly_eligible = _group_any(((sex == 1) & (age >= 65)) | ((sex == 2) & (age >= 62)), starts)
    widow = _group_any((sex == 2) & (age >= 18) & np.isin(marital, (3, 4, 5)), starts)
    disabled_member = _group_any(severe_any, starts)
    mother = _group_any(pregnant_or_lactating, starts)
    primary_pupil = _group_any(enrolled & (age >= 6) & (age <= 11), starts)
    benefits = {
        "OAA": elderly_eligible & _bern(rng, -0.1 - 0.9 * w - 0.4 * urban),
        "WA": widow & _bern(rng, -0.6 - 0.9 * w - 0.4 * urban),
        "DA": disabled_member & _bern(rng, 0.2 - 0.6 * w),
        "VGD": _bern(rng, -3.6 - 1.0 * w + 1.0 * head_female - 1.5 * urban),
        "VGF": _bern(rng, -3.2 - 1.0 * w + 0.8 * (shocks["flood"] | shocks["cyclone"]) - 1.0 * urban),
        "EGPP": rural & np.isin(income, (2, 3)) & _bern(rng, -2.5 - 0.8 * w),
        "MCA": mother & _bern(rng, -2.0 - 0.8 * w),
        "PSS": primary_pupil & _bern(rng, -0.3 - 0.7 * w - 0.7 * urban),
        "OTH": _bern(rng, -4.5 - 0.5 * w),
    }
    mask = np.zeros(n, dtype=np.int64)
    for bit, code in enumerate(SAFETY_NET_PROGRAMMES):
        mask |= benefits[code].astype(np.int64) << bit
    benefit_text = _benefit_texts()[mask]

    # ---- identifiers and free text
    counts_here = np.bincount(union, minlength=len(geo.codes))
    order = np.argsort(union, kind="stable")
    sorted_union = union[order]
    group_start = np.searchsorted(sorted_union, sorted_union, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    serial = next_serial[union] + rank + 1
    if serial.max(initial=0) >= (10**6 if survey else SURVEY_SERIAL_START):
        raise ValueError("too many households in one union for 6-digit serials")
    next_serial += counts_here
    union_code = geo.codes[union]
    household_id = np.strings.add(np.strings.add(union_code, "-"), np.strings.zfill(serial.astype("<U7"), 6))
    days = _period_days(SURVEY_INTERVIEW_PERIOD if survey else REGISTRY_INTERVIEW_PERIOD)
    interview = days[rng.integers(0, len(days), n)]
    consent = rng.random(n) < 0.985
    place_names = np.where(
        urban,
        np.array(_URBAN_PLACES, dtype=object)[rng.integers(0, len(_URBAN_PLACES), n)],
        np.array(_RURAL_PLACES, dtype=object)[rng.integers(0, len(_RURAL_PLACES), n)],
    )
    holding = rng.integers(1, 400, n)
    address = [
        f"Holding {h}, {v}, {pl}"
        for h, v, pl in zip(holding.tolist(), place_names.tolist(), geo.place[union].tolist(), strict=True)
    ]
    enumerator = np.strings.add(
        np.strings.add("ENU-", union_code), np.strings.add("-", rng.integers(1, 6, n).astype("<U1"))
    )

    households = {
        "household_id": household_id.tolist(),
        "union_code": union_code.tolist(),
        "area_type": _text_int(area),
        "village": place_names.tolist(),
        "address": address,
        "interview_date": _text_dates(interview),
        "enumerator_id": enumerator.tolist(),
        "questionnaire_version": [SURVEY_QUESTIONNAIRE if survey else REGISTRY_QUESTIONNAIRE] * n,
        "dwelling_structure": _text_int(dwelling),
        "wall_material": _text_int(wall),
        "roof_material": _text_int(roof),
        "floor_material": _text_int(floor),
        "rooms": _text_int(rooms),
        "tenure": _text_int(tenure),
        "toilet_type": _text_int(toilet),
        "toilet_shared": _text_bool(toilet_shared),
        "water_source": _text_int(water),
        "electricity": _text_int(electricity),
        "cooking_fuel": _text_int(fuel),
        "land_homestead_decimal": _text_hundredths(homestead),
        "land_cultivable_decimal": _text_hundredths(cultivable),
        "cattle": _text_int(cattle),
        "goats_sheep": _text_int(goats),
        "poultry": _text_int(poultry),
        **{f"asset_{a}": _text_bool(assets[a]) for a in ASSETS},
        "remittance_received": _text_bool(remittance),
        "remittance_amount_12m": _text_int(remittance_amount),
        "main_income_source": _text_int(income),
        **{f"shock_{s}": _text_bool(shocks[s]) for s in SHOCKS},
        "safety_net_benefits": benefit_text.tolist(),
        "bank_or_mfs_account": _text_bool(bank),
        "consent_given": _text_bool(consent),
        "consent_date": _text_dates(interview, consent),
    }

    if survey:
        numeric = {
            "area_type": area,
            "dwelling_structure": dwelling,
            "floor_material": floor,
            "rooms": rooms,
            "electricity": electricity,
            "toilet_type": toilet,
            "cooking_fuel": fuel,
            "water_source": water,
            **{f"asset_{a}": assets[a] for a in ASSETS},
            "land_cultivable_decimal": cultivable_dec,
            "cattle": cattle,
            "remittance_received": remittance,
            "bank_or_mfs_account": bank,
            "main_income_source": income,
            "division": division,
        }
        x = true_features(
            numeric,
            {
                "household_index": hh,
                "age_years": age,
                "relation_to_head": rel,
                "sex": sex,
                "education_level": education,
            },
        )
        log_c = true_log_consumption_mean(x) + NOISE_SD * rng.standard_normal(n)
        consumption = np.round(np.exp(log_c) * 100).astype(np.int64)
        # Weight = households represented: the inverse of the (relative) selection probability, with a little
        # non-response adjustment noise, scaled so that weights add up to the national household count.
        inverse_p = geo.p_registry[union] / geo.p_survey[union]
        weight = np.round(inverse_p * rng.uniform(0.85, 1.15, n) * NATIONAL_HOUSEHOLDS / total * 100)
        households["consumption_pc"] = _text_hundredths(consumption)
        households["weight"] = _text_hundredths(weight.astype(np.int64))

    members = _member_columns(
        rng,
        ids,
        m,
        first_index,
        household_id,
        union_code,
        religion,
        ethnicity,
        interview,
        education,
        enrolled,
        occupation,
        disability,
        pregnant_or_lactating,
    )
    return _Block(households, members)


# --------------------------------------------------------------------------------------------------
# block parts


def _religion_ethnicity(
    rng: np.random.Generator, division: np.ndarray, district: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Household ethnicity and religion: ~90% Muslim, ~8% Hindu; indigenous groups where they live."""
    n = len(division)
    hill = np.isin(district, HILL_DISTRICTS)
    garo = np.isin(district, GARO_DISTRICTS)
    santal = np.isin(district, SANTAL_DISTRICTS)
    other_ind = np.isin(district, OTHER_INDIGENOUS_DISTRICTS)
    indigenous = rng.random(n) < 0.5 * hill + 0.02 * garo + 0.015 * santal + 0.01 * other_ind
    hill_group = _pick_fixed(rng, n, [2, 3, 4, 7], [0.45, 0.30, 0.15, 0.10])
    group = np.select([hill, garo, santal], [hill_group, 5, 6], 7)
    ethnicity = np.where(indigenous, group, np.where(rng.random(n) < 0.001, 9, 1))
    # Religion probabilities over (Islam, Hindu, Buddhist, Christian, other), per household.
    hindu = np.array([0.11, 0.07, 0.06, 0.12, 0.04, 0.07, 0.11, 0.12])[division]
    buddhist = np.where(division == _CHITTAGONG, 0.012, 0.0005)
    probs = np.column_stack([1 - hindu - buddhist - 0.004, hindu, buddhist, np.full(n, 0.003), np.full(n, 0.001)])
    by_group = {
        2: (0, 0, 0.95, 0.05, 0),
        3: (0, 0, 0.97, 0.03, 0),
        4: (0, 0.7, 0, 0.3, 0),
        5: (0, 0, 0, 0.9, 0.1),
        6: (0, 0.3, 0, 0.4, 0.3),
        7: (0, 0.5, 0.25, 0.25, 0),
        9: (1, 0, 0, 0, 0),
    }
    for code, row in by_group.items():
        probs[ethnicity == code] = row
    religion = np.array([1, 2, 3, 4, 9])[_pick(rng, probs)]
    return ethnicity, religion


@dataclass
class _Members:
    """Members of a block sorted by household then line; ``starts``/``size`` are per household."""

    hh: np.ndarray
    relation: np.ndarray
    age: np.ndarray
    sex: np.ndarray
    marital: np.ndarray
    married_son: np.ndarray
    line: np.ndarray
    starts: np.ndarray
    size: np.ndarray


def _marital_by_age(rng: np.random.Generator, age: np.ndarray, adult_codes, adult_probs) -> np.ndarray:
    """Never married under 18; otherwise drawn from ``adult_codes`` with ``adult_probs``."""
    return np.where(age < 18, 1, _pick_fixed(rng, len(age), adult_codes, adult_probs))


def _births(
    rng: np.random.Generator, mother_hh: np.ndarray, mother_age: np.ndarray, planned: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Household and age of each child born so far to each mother (one mother per entry).

    The first birth comes at 16-25, the next ones every 2-6 years; a child is born only if the
    mother has reached that age (and before 45), so young mothers have fewer children and
    siblings are spaced as in real families.
    """
    hh = np.repeat(mother_hh, planned)
    m_age = np.repeat(mother_age, planned)
    first = np.repeat(np.cumsum(planned) - planned, planned)  # row of each mother's first child
    gaps = np.where(np.arange(len(hh)) == first, 16 + rng.gamma(2.0, 1.5, len(hh)), 1.5 + rng.gamma(2.0, 1.2, len(hh)))
    total = np.cumsum(gaps)
    birth_age = total - (total[first] - gaps[first]) if len(hh) else total
    born = birth_age <= np.minimum(m_age, 45)
    return hh[born], np.floor(m_age - birth_age)[born].astype(np.int64)


def _compose_members(
    rng: np.random.Generator, n: int, w: np.ndarray, urban: np.ndarray, remittance: np.ndarray
) -> _Members:
    """Household rosters: head, spouse, children, married son's family, parents, siblings, others.

    Ages are drawn relative to the head and the mother, so that children are at least 17 years
    younger than their mother (and so than the head) and the head's parents at least 17 years older.
    """
    hh_index = np.arange(n)
    # Heads: about 13% women, most of them widows or wives of migrant workers.
    head_female = rng.random(n) < np.where(remittance, 0.40, 0.10)
    head_age = np.where(
        head_female,
        np.where(remittance, 20 + rng.gamma(3.0, 5.0, n), 22 + rng.gamma(4.0, 8.0, n)),
        19 + rng.gamma(4.5, 5.8, n),
    )
    head_age = np.clip(np.floor(head_age), 18, 95).astype(np.int64)
    single = rng.random(n) < (
        0.005
        + 0.04 * (head_age >= 65)
        + 0.02 * (head_female & ~remittance)
        + 0.03 * (urban & ~head_female & (head_age < 35))
    )
    spouse_p = np.where(
        head_female, np.where(remittance, 0.0, 0.05), np.select([head_age < 25, head_age < 70], [0.75, 0.94], 0.72)
    )
    has_spouse = ~single & (rng.random(n) < spouse_p)
    gap = 1 + np.floor(rng.gamma(2.0, 3.0, n)).astype(np.int64)
    spouse_age = np.where(head_female, np.minimum(head_age + gap, 100), np.maximum(head_age - gap, 16))
    mother_age = np.where(head_female, head_age, np.where(has_spouse, spouse_age, head_age - 7))
    never_married_man = ~head_female & ~has_spouse & (head_age < 30)

    # Children of the head (older cohorts had more); daughters leave at marriage, sons later.
    fertility = np.clip(2.4 + 0.04 * np.maximum(mother_age - 35, 0) - 0.3 * w + 0.25 * ~urban, 1.2, 6.0)
    # Few couples stay childless (~5%), hence 1 + Poisson rather than Poisson.
    childless = single | never_married_man | (rng.random(n) < 0.05)
    n_planned = np.where(childless, 0, np.minimum(1 + rng.poisson(fertility - 1), 8))
    c_hh, c_age = _births(rng, hh_index, mother_age, n_planned)
    c_female = rng.random(len(c_hh)) < 0.49
    leave = np.where(
        c_female, np.clip(0.15 + 0.12 * (c_age - 16), 0, 0.97) * (c_age >= 16), np.clip(0.03 * (c_age - 20), 0, 0.8)
    )
    stay = rng.random(len(c_hh)) >= leave
    c_hh, c_age, c_female = c_hh[stay], c_age[stay], c_female[stay]
    n_child = np.bincount(c_hh, minlength=n)

    # The eldest son at home aged 21+ may be married, with his wife and children in the household.
    candidates = ~c_female & (c_age >= 21)
    order = np.lexsort((-c_age, c_hh))
    cand_rows = order[candidates[order]]
    _, first = np.unique(c_hh[cand_rows], return_index=True)
    eldest = cand_rows[first]
    eldest = eldest[rng.random(len(eldest)) < 0.9 * _logistic((c_age[eldest] - 23) * 0.5)]
    c_married_son = np.zeros(len(c_hh), dtype=bool)
    c_married_son[eldest] = True
    d_hh = c_hh[eldest]
    d_age = np.maximum(c_age[eldest] - 1 - np.floor(rng.gamma(2.0, 2.5, len(eldest))).astype(np.int64), 16)
    g_hh, g_age = _births(rng, d_hh, d_age, np.minimum(rng.poisson(2.0, len(d_hh)), 5))
    g_female = rng.random(len(g_hh)) < 0.49

    # Parents of younger heads.
    parent_p = np.select([head_age < 30, head_age < 40, head_age < 50, head_age < 60], [0.38, 0.24, 0.12, 0.04], 0.0)
    has_parents = ~single & (rng.random(n) < parent_p)
    parents_kind = _pick_fixed(rng, n, [0, 1, 2], [0.6, 0.3, 0.1])  # mother only, both, father only
    p_mother_age = np.minimum(head_age + 17 + np.floor(rng.gamma(2.0, 4.0, n)).astype(np.int64), 98)
    p_father_age = np.minimum(p_mother_age + 1 + np.floor(rng.gamma(2.0, 3.0, n)).astype(np.int64), 100)
    mother_hh = hh_index[has_parents & (parents_kind <= 1)]
    father_hh = hh_index[has_parents & (parents_kind >= 1)]
    both = has_parents & (parents_kind == 1)

    # Siblings (mostly of young heads living with their parents), other relatives, domestic workers.
    sib_p = (0.05 + 0.10 * has_parents) * (head_age < 45) * ~single
    n_sib = np.where(rng.random(n) < sib_p, 1 + (rng.random(n) < 0.25), 0)
    s_hh = np.repeat(hh_index, n_sib)
    s_age = np.maximum(head_age[s_hh] + rng.integers(-14, 3, len(s_hh)), 1)
    o_hh = hh_index[~single & (rng.random(n) < 0.09)]
    o_kind = _pick_fixed(rng, len(o_hh), [0, 1, 2], [0.5, 0.3, 0.2])
    o_age = np.select(
        [o_kind == 0, o_kind == 1],
        [rng.integers(3, 18, len(o_hh)), rng.integers(18, 36, len(o_hh))],
        rng.integers(60, 86, len(o_hh)),
    )
    x_hh = hh_index[~single & _bern(rng, -4.0 + 0.7 * w + 0.6 * urban)]
    x_age = rng.integers(14, 56, len(x_hh))

    # Marital status of heads: spouse present -> married; otherwise by sex, age and migration.
    female_alone = _pick_fixed(rng, n, [3, 4, 5, 2], [0.78, 0.08, 0.09, 0.05])
    young_female_alone = _pick_fixed(rng, n, [2, 4, 5, 3], [0.35, 0.25, 0.25, 0.15])
    male_alone = _pick_fixed(rng, n, [3, 4, 5, 2, 1], [0.55, 0.12, 0.08, 0.10, 0.15])
    male_alone = np.where((male_alone == 1) & (n_child > 0), 3, male_alone)
    head_marital = np.select(
        [has_spouse, head_female & remittance, head_female & (head_age >= 35), head_female, never_married_man],
        [2, 2, female_alone, young_female_alone, 1],
        male_alone,
    )

    c_marital = np.where(
        c_married_son,
        2,
        np.where(
            c_age < 18,
            1,
            np.where(
                c_female,
                _pick_fixed(rng, len(c_hh), [1, 3, 4, 5], [0.85, 0.05, 0.05, 0.05]),
                _pick_fixed(rng, len(c_hh), [1, 2], [0.97, 0.03]),
            ),
        ),
    )
    s_female = rng.random(len(s_hh)) < 0.5
    o_female = rng.random(len(o_hh)) < 0.55
    x_female = rng.random(len(x_hh)) < 0.7
    parts = [
        # (household, relation, age, female, marital, married_son)
        (hh_index, 1, head_age, head_female, head_marital, False),
        (hh_index[has_spouse], 2, spouse_age[has_spouse], ~head_female[has_spouse], 2, False),
        (c_hh, 3, c_age, c_female, c_marital, c_married_son),
        (d_hh, 4, d_age, True, 2, False),
        (g_hh, 5, g_age, g_female, 1, False),
        (mother_hh, 6, p_mother_age[mother_hh], True, np.where(both[mother_hh], 2, 3), False),
        (father_hh, 6, p_father_age[father_hh], False, np.where(both[father_hh], 2, 3), False),
        (s_hh, 7, s_age, s_female, _marital_by_age(rng, s_age, [1, 2, 3, 4, 5], [0.7, 0.1, 0.1, 0.05, 0.05]), False),
        (o_hh, 8, o_age, o_female, _marital_by_age(rng, o_age, [1, 2, 3], [0.45, 0.25, 0.30]), False),
        (x_hh, 9, x_age, x_female, _marital_by_age(rng, x_age, [1, 2, 3, 4], [0.5, 0.35, 0.1, 0.05]), False),
    ]
    hh = np.concatenate([p[0] for p in parts])
    lengths = [len(p[0]) for p in parts]
    relation = np.repeat([p[1] for p in parts], lengths)
    age = np.concatenate([np.broadcast_to(p[2], (k,)) for p, k in zip(parts, lengths, strict=True)]).astype(np.int64)
    female = np.concatenate([np.broadcast_to(p[3], (k,)) for p, k in zip(parts, lengths, strict=True)])
    marital = np.concatenate([np.broadcast_to(p[4], (k,)) for p, k in zip(parts, lengths, strict=True)])
    married_son = np.concatenate([np.broadcast_to(p[5], (k,)) for p, k in zip(parts, lengths, strict=True)])
    sex = np.where(female, 2, 1)
    # A few adults other than the head and spouse are recorded as hijra (third gender).
    sex = np.where((relation >= 3) & (age >= 15) & (marital != 2) & (rng.random(len(hh)) < 0.0005), 3, sex)

    order = np.lexsort((-age, relation, hh))
    hh, relation, age, sex = hh[order], relation[order], age[order], sex[order]
    marital, married_son = marital[order].astype(np.int64), married_son[order]
    size = np.bincount(hh, minlength=n)
    starts = np.cumsum(size) - size
    line = np.arange(len(hh)) - starts[hh] + 1
    keep = line <= MAX_MEMBERS
    if not keep.all():
        hh, relation, age, sex = hh[keep], relation[keep], age[keep], sex[keep]
        marital, married_son, line = marital[keep], married_son[keep], line[keep]
        size = np.bincount(hh, minlength=n)
        starts = np.cumsum(size) - size
    return _Members(hh, relation, age, sex, marital, married_son, line, starts, size)


def _disability(rng: np.random.Generator, age: np.ndarray) -> dict[str, np.ndarray]:
    """Washington Group levels per domain (0 = not asked, under 5): mostly 1, some 2, a few 3/4."""
    k = len(age)
    severe_p = np.select([age < 18, age < 40, age < 60, age < 75], [0.004, 0.009, 0.022, 0.065], 0.17)
    severe = rng.random(k) < severe_p
    domain_p = [0.25, 0.13, 0.35, 0.12, 0.08, 0.07]  # seeing, hearing, walking, cognition, self care, communication
    first = _pick_fixed(rng, k, np.arange(6), domain_p)
    second = np.where(rng.random(k) < 0.3, _pick_fixed(rng, k, np.arange(6), domain_p), -1)
    severe_level = np.where(rng.random(k) < 0.25, 4, 3)
    mild_scale = np.clip(0.01 + 0.006 * np.maximum(age - 40, 0), 0, 0.4)
    out = {}
    for i, (domain, base) in enumerate(zip(DISABILITY_DOMAINS, (1.0, 0.6, 0.9, 0.5, 0.25, 0.25), strict=True)):
        level = np.where(rng.random(k) < base * mild_scale, 2, 1)
        level = np.where(severe & ((first == i) | (second == i)), severe_level, level)
        out[domain] = np.where(age < 5, 0, level)
    return out


def _materials(rng: np.random.Generator, dwelling: np.ndarray, w: np.ndarray):
    """Wall, roof and floor materials consistent with the dwelling structure (and welfare within kutcha)."""
    n = len(dwelling)
    pucca, semi, kutcha = dwelling == 1, dwelling == 2, dwelling == 3
    kutcha_wall = np.array([1, 2, 3])[_ordered(rng, 0.8 * w, (-1.6, -0.6))]
    kutcha_wall = np.where(rng.random(n) < 0.06, 4, np.where(rng.random(n) < 0.01, 9, kutcha_wall))
    wall = np.select(
        [pucca, semi, kutcha],
        [5, _pick_fixed(rng, n, [5, 3, 4, 2], [0.75, 0.2, 0.03, 0.02]), kutcha_wall],
        _pick_fixed(rng, n, [1, 3, 9], [0.85, 0.1, 0.05]),
    )
    kutcha_roof = np.where(_bern(rng, -2.3 - 0.8 * w), 1, np.where(rng.random(n) < 0.02, 3, 2))
    roof = np.select(
        [pucca, semi, kutcha],
        [_pick_fixed(rng, n, [4, 3], [0.96, 0.04]), _pick_fixed(rng, n, [2, 3, 4], [0.9, 0.05, 0.05]), kutcha_roof],
        _pick_fixed(rng, n, [1, 2, 9], [0.6, 0.35, 0.05]),
    )
    kutcha_floor = np.where(_bern(rng, -2.4 + 0.6 * w), 3, _pick_fixed(rng, n, [1, 2, 9], [0.95, 0.04, 0.01]))
    floor = np.select(
        [pucca, semi, kutcha],
        [3, _pick_fixed(rng, n, [3, 1], [0.9, 0.1]), kutcha_floor],
        _pick_fixed(rng, n, [1, 2], [0.9, 0.1]),
    )
    return wall, roof, floor


def _occupations(
    rng: np.random.Generator,
    m: _Members,
    education: np.ndarray,
    enrolled: np.ndarray,
    severe_limiting: np.ndarray,
    income: np.ndarray,
    urban: np.ndarray,
    w: np.ndarray,
    cultivable_dec: np.ndarray,
) -> np.ndarray:
    """Occupation codes: 0 under 10, students, homemakers, heads matching the household's income source."""
    age, sex, rel, hh = m.age, m.sex, m.relation, m.hh
    k = len(age)
    mw, mu, land = w[hh], urban[hh], cultivable_dec[hh]
    logits = np.column_stack(
        [
            np.where(mu, -4.0, -0.5 + 1.5 * (land >= 20)) - 1.0 * (sex == 2),  # 1 farmer
            np.where(mu, -3.0, 0.0 - 0.8 * mw),  # 2 agricultural labourer
            0.2 - 0.3 * mw + 0.4 * mu,  # 3 non-agricultural labourer
            -0.8 + 0.3 * mw + 0.3 * mu,  # 4 business
            -1.2 + 0.6 * mw + 0.5 * mu + 1.2 * (education >= 11),  # 5 service
            -1.8 + 0.5 * (age < 25),  # 8 unemployed
            np.full(k, -2.5),  # 10 other
        ]
    )
    working = np.array([1, 2, 3, 4, 5, 8, 10])[_argmax_logits(rng, logits)]
    adult_female = np.where(rng.random(k) < _logistic(1.4 + 0.2 * mw), 6, working)
    other_adult = np.where(sex == 2, adult_female, working)
    other_adult = np.where(
        (age >= 65) & (rng.random(k) < np.where(sex == 2, 0.3, 0.5)), np.where(sex == 2, 6, 9), other_adult
    )
    other_adult = np.where((age >= 75) & (rng.random(k) < 0.5), 9, other_adult)
    other_adult = np.where(rel == 9, np.where(rng.random(k) < 0.6, 10, 3), other_adult)
    head_income = income[hh]
    head_occ = np.select(
        [head_income <= 5, head_income == 6, head_income == 7],
        [head_income, np.where(sex == 2, 6, 10), np.where(age >= 65, 9, 8)],
        10,
    )
    head_occ = np.where((sex == 2) & (head_income <= 5) & (rng.random(k) < 0.25), 6, head_occ)
    head_occ = np.where((age >= 75) & (rng.random(k) < 0.5), 9, head_occ)
    adult = np.where(rel == 1, head_occ, other_adult)
    adult = np.where(severe_limiting & (rng.random(k) < 0.7), 9, adult)
    child_work = np.where(rng.random(k) < 0.35 - 0.1 * mw, np.where(mu, 3, 2), 0)
    return np.select(
        [age < 10, enrolled, age < 15],
        [0, 7, child_work],
        adult,
    ).astype(np.int64)


@functools.cache
def _benefit_texts() -> np.ndarray:
    """Text of each bitmask of ``SAFETY_NET_PROGRAMMES`` (bit i = i-th programme), ';'-separated."""
    codes = list(SAFETY_NET_PROGRAMMES)
    return np.array(
        [";".join(c for i, c in enumerate(codes) if mask >> i & 1) for mask in range(1 << len(codes))], dtype=object
    )


_DIFFICULTY_TEXT = np.array(["", "1", "2", "3", "4"], dtype=object)


def _member_columns(
    rng: np.random.Generator,
    ids: _IdScheme,
    m: _Members,
    first_index: int,
    household_id: np.ndarray,
    union_code: np.ndarray,
    religion: np.ndarray,
    ethnicity: np.ndarray,
    interview: np.ndarray,
    education: np.ndarray,
    enrolled: np.ndarray,
    occupation: np.ndarray,
    disability: dict[str, np.ndarray],
    pregnant_or_lactating: np.ndarray,
) -> dict[str, list[str]]:
    hh, rel, age, sex, marital, line, starts = m.hh, m.relation, m.age, m.sex, m.marital, m.line, m.starts
    k, n = len(hh), len(starts)

    # ---- names: one pool per household (religion/ethnicity), relatives' names linked within the household
    en_all, bn_all, offset, size = _name_tables()
    ethnic_pool = np.full(10, -1)
    ethnic_pool[list(_POOL_BY_ETHNICITY)] = list(_POOL_BY_ETHNICITY.values())
    pool = np.where(
        ethnic_pool[ethnicity] >= 0,
        ethnic_pool[ethnicity],
        np.select(
            [religion == 2, religion == 3, religion == 4, religion == 9],
            [_POOL_HINDU, _POOL_BUDDHIST, _POOL_CHRISTIAN, _POOL_HINDU],
            _POOL_MUSLIM,
        ),
    )
    mpool = pool[hh]
    own = np.where(sex == 1, 0, np.where(sex == 2, 1, rng.integers(0, 2, k)))

    def draw(sex_index):
        return offset[mpool, sex_index] + np.floor(rng.random(k) * size[mpool, sex_index]).astype(np.int64)

    name = draw(own)
    rand_father, rand_mother, rand_spouse = draw(0), draw(1), draw(1 - own)

    def row_of(mask):
        out = np.full(n, -1, dtype=np.int64)
        out[hh[mask]] = np.flatnonzero(mask)
        return out

    def name_at(rows):  # name index of the member at ``rows`` (-1 stays -1)
        return np.where(rows >= 0, name[np.maximum(rows, 0)], -1)

    head_row = starts
    head_male = sex[head_row] == 1
    spouse_name = name_at(row_of(rel == 2))
    father_row, mother_row = row_of((rel == 6) & (sex == 1)), row_of((rel == 6) & (sex == 2))
    son_name, dil_name = name_at(row_of(m.married_son)), name_at(row_of(rel == 4))
    head_name = name[head_row]
    # The head's spouse: in the household, or absent (e.g. working abroad) when the head is married.
    head_spouse = np.where(spouse_name >= 0, spouse_name, np.where(marital[head_row] == 2, rand_spouse[head_row], -1))
    head_father = np.where(father_row >= 0, name_at(father_row), rand_father[head_row])
    head_mother = np.where(mother_row >= 0, name_at(mother_row), rand_mother[head_row])

    father = rand_father.copy()
    mother = rand_mother.copy()
    spouse = np.where(marital == 2, rand_spouse, -1)
    is_head, is_child = rel == 1, rel == 3
    father = np.where(is_head, head_father[hh], father)
    mother = np.where(is_head, head_mother[hh], mother)
    spouse = np.where(is_head, head_spouse[hh], spouse)
    spouse = np.where(rel == 2, head_name[hh], spouse)
    hs = head_spouse[hh]
    child_father = np.where(head_male[hh], head_name[hh], np.where(hs >= 0, hs, rand_father))
    child_mother = np.where(head_male[hh], np.where(hs >= 0, hs, rand_mother), head_name[hh])
    father = np.where(is_child, child_father, father)
    mother = np.where(is_child, child_mother, mother)
    spouse = np.where(m.married_son & (dil_name[hh] >= 0), dil_name[hh], spouse)
    spouse = np.where(rel == 4, son_name[hh], spouse)
    father = np.where((rel == 5) & (son_name[hh] >= 0), son_name[hh], father)
    mother = np.where((rel == 5) & (dil_name[hh] >= 0), dil_name[hh], mother)
    both_parents = (father_row >= 0) & (mother_row >= 0)
    spouse = np.where((rel == 6) & (sex == 1) & both_parents[hh], name_at(mother_row)[hh], spouse)
    spouse = np.where((rel == 6) & (sex == 2) & both_parents[hh], name_at(father_row)[hh], spouse)
    father = np.where(rel == 7, head_father[hh], father)
    mother = np.where(rel == 7, head_mother[hh], mother)
    unknown_parents = (rel == 9) & (rng.random(k) < 0.3)
    father = np.where(unknown_parents, -1, father)
    mother = np.where(unknown_parents, -1, mother)

    # Relatives' names are written in one script per household (the enumerator's choice).
    in_bangla = (rng.random(n) < 0.6)[hh]

    def names_text(idx):
        safe = np.maximum(idx, 0)
        out = np.where(in_bangla, bn_all[safe], en_all[safe])
        out[idx < 0] = ""
        return out.tolist()

    name_en = en_all[name].copy()
    name_en[rng.random(k) < 0.02] = ""  # some members are registered with a Bangla name only

    # ---- date of birth for ~70% (more often for the young), consistent with the age at the interview
    member_interview = interview[hh]
    iv_month = member_interview.astype("datetime64[M]")
    iv_day = (member_interview - iv_month.astype("datetime64[D]")).astype(np.int64)

    def birthday(years_before):  # the interview's month and day, ``years_before`` years earlier
        return (iv_month - 12 * years_before).astype("datetime64[D]") + iv_day

    latest = birthday(age)
    earliest = birthday(age + 1) + 1
    span = (latest - earliest).astype(np.int64) + 1
    dob = earliest + np.floor(rng.random(k) * span).astype(np.int64)
    has_dob = rng.random(k) < np.select([age < 18, age < 50], [0.85, 0.72], 0.5)
    birth_year = dob.astype("datetime64[Y]").astype(np.int64) + 1970

    # ---- national ID (18+, ~90%), birth registration (most children), mobile numbers
    key = (first_index + hh).astype(np.int64) * _LINE_SLOTS + (line - 1)
    region = np.array([int(c[:4]) for c in union_code.tolist()], dtype=np.int64)[hh]  # division + district
    nid9 = ids.nid_digits(key)
    nid_kind = _pick_fixed(rng, k, [10, 17, 13], [0.6, 0.33, 0.07])
    nid = np.select(
        [nid_kind == 10, nid_kind == 17],
        [rng.integers(1, 10, k) * _KEY_SPACE + nid9, (birth_year * 10_000 + region) * _KEY_SPACE + nid9],
        region * _KEY_SPACE + nid9,
    )
    has_nid = (age >= 18) & (rng.random(k) < 0.9)
    brn = (birth_year * 10_000 + region) * _KEY_SPACE + ids.brn_digits(key)
    has_brn = rng.random(k) < np.where(age < 18, 0.85, 0.12)
    mobile = (13 + rng.integers(0, 7, k)) * 10**8 + rng.integers(0, 10**8, k)
    has_mobile = (age >= 18) & (rng.random(k) < np.where(rel == 1, 0.75, 0.35))

    def optional_digits(values, present, prefix=""):
        out = np.asarray(values.astype(str), dtype=object)
        if prefix:
            out = prefix + out
        out[~present] = ""
        return out.tolist()

    columns = {
        "household_id": household_id[hh].tolist(),
        "line_no": _text_int(line),
        "name_bn": bn_all[name].tolist(),
        "name_en": name_en.tolist(),
        "father_name": names_text(father),
        "mother_name": names_text(mother),
        "spouse_name": names_text(spouse),
        "date_of_birth": _text_dates(dob, has_dob),
        "age_years": _text_int(age),
        "sex": _text_int(sex),
        "relation_to_head": _text_int(rel),
        "marital_status": _text_int(marital),
        "religion": _text_int(religion[hh]),
        "ethnicity": _text_int(ethnicity[hh]),
        "education_level": _text_int(education),
        "currently_enrolled": _text_bool(enrolled),
        "occupation": _text_int(occupation),
        **{f"disability_{d}": _DIFFICULTY_TEXT[disability[d]].tolist() for d in DISABILITY_DOMAINS},
        "pregnant_or_lactating": _text_bool(pregnant_or_lactating),
        "nid_number": optional_digits(nid, has_nid),
        "birth_reg_number": optional_digits(brn, has_brn),
        "mobile_number": optional_digits(mobile, has_mobile, "0"),
    }
    return columns
