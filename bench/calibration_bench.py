"""Benchmark PMT calibration: a synthetic HIES-style survey, all methods, k-fold validation.

    python bench/calibration_bench.py                      # 50,000 households, ~60 features, 5 folds
    python bench/calibration_bench.py --households 10000 --methods wls,stepwise

Generates the survey with ``registry.synth`` (seeded) in a temporary directory, reads it through
the import-format path, calibrates urban/rural scorecards, and prints the seconds spent per
phase and per method, the peak resident memory of the process (``ru_maxrss``), the machine's
load average (the figures are only comparable at similar load), and each method's
out-of-sample fit and targeting figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry import synth  # noqa: E402
from targeting.calibration import METHODS, calibrate, read_survey  # noqa: E402

#: A typical PMT candidate list (demography, head, housing, assets, land, income, location).
BENCH_FEATURES = [
    "log_household_size",
    "dependency_ratio",
    "share_children_0_14",
    "share_elderly_65",
    "share_working",
    "any_disabled",
    "children_not_enrolled",
    "head_female",
    "head_age",
    "head_age_sq",
    "head_widowed",
    "head_edu_primary",
    "head_edu_secondary",
    "head_edu_ssc_hsc",
    "head_edu_degree",
    "max_education_years",
    "rooms_per_person",
    "dwelling_pucca",
    "dwelling_semi_pucca",
    "dwelling_jhupri",
    "wall_straw_bamboo",
    "wall_mud",
    "wall_tin",
    "roof_straw",
    "roof_concrete",
    "floor_cement",
    "tenure_rented",
    "toilet_sanitary",
    "toilet_pit_slab",
    "toilet_shared",
    "water_piped",
    "water_surface",
    "electricity_grid",
    "electricity_solar",
    "fuel_gas",
    "fuel_kerosene",
    "asset_tv",
    "asset_refrigerator",
    "asset_mobile_phone",
    "asset_smartphone",
    "asset_motorcycle",
    "asset_bicycle",
    "asset_rickshaw_van",
    "asset_sewing_machine",
    "asset_shallow_pump",
    "asset_computer",
    "log1p_land_homestead",
    "log1p_land_cultivable",
    "log1p_cattle",
    "log1p_goats_sheep",
    "log1p_poultry",
    "remittance_received",
    "log1p_remittance_amount",
    "bank_or_mfs_account",
    "income_agri_wage",
    "income_nonagri_wage",
    "income_business",
    "income_salaried",
    "area_paurashava",
    "area_city_corporation",
    "division_barisal",
    "division_rangpur",
    "division_mymensingh",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--strata", default="urban_rural")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        synth.generate(Path(tmp), 0, args.seed, survey_households=args.households)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        households, members = read_survey(Path(tmp) / "survey.csv", Path(tmp) / "survey_members.csv")
        read = time.perf_counter() - started
    spec = {
        "strata": args.strata,
        "poverty_rate": 0.25,
        "features": BENCH_FEATURES,
        "methods": args.methods.split(","),
        "folds": args.folds,
        "seed": args.seed,
    }
    started, started_cpu = time.perf_counter(), time.process_time()
    result = calibrate(households, members, spec)
    total, total_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    strata = ", ".join(f"{s} ({v['n_households']:,})" for s, v in result.strata.items())
    print(
        f"survey: {len(households):,} households, {len(members):,} members; {len(result.features)} candidate "
        f"features; strata {strata}; "
        f"{args.folds}-fold CV; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'phase':44s} {'wall s':>7s} {'CPU s':>7s}")
    print(f"{'generate survey (registry.synth)':44s} {generated:7.2f}")
    print(f"{'read CSVs':44s} {read:7.2f}")
    for phase, seconds in result.timings.items():
        label = f"fit {phase} ({args.folds} folds + full, all strata)" if phase in METHODS else phase
        print(f"{label:44s} {seconds['wall']:7.2f} {seconds['cpu']:7.2f}")
    print(f"{'calibrate total':44s} {total:7.2f} {total_cpu:7.2f}")
    print(f"peak memory (maxrss): {peak_mb:.0f} MB")
    print()
    print(
        f"{'method':10s} {'R2 oos':>7s} {'R2 in':>7s} {'rho oos':>8s} {'EE@20%':>7s} {'EE@30%':>7s} {'IE@30%':>7s} "
        f"{'CGH@30%':>8s}"
    )
    for method, metrics in result.metrics.items():
        oos, ins = metrics["out_of_sample"]["overall"], metrics["in_sample"]["overall"]
        t20, t30 = oos["targeting"]["20%"], oos["targeting"]["30%"]
        print(
            f"{method:10s} {oos['r2']:7.3f} {ins['r2']:7.3f} {oos['spearman']:8.3f} {t20['exclusion_error']:7.3f} "
            f"{t30['exclusion_error']:7.3f} {t30['inclusion_error']:7.3f} {t30['cgh']:8.2f}"
        )
    for line in result.warnings:
        print("warning:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
