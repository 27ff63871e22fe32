"""PMT calibration: fit scorecards on a survey, validate them out of sample, report.

Public API::

    from targeting.calibration import calibrate, load_spec, read_survey, write_report
    households, members = read_survey("survey.csv", "survey_members.csv")
    result = calibrate(households, members, load_spec("spec.yml"))
    write_report(result, "out/")
    predict(result.coefficients["wls"], features, strata)   # what registry scoring applies
"""

from targeting.calibration.compare import compare, eligibility_changes
from targeting.calibration.core import (
    CalibrationResult,
    assign_strata,
    calibrate,
    library_versions,
    predict,
    scorecard_rows,
    training_data_hash,
)
from targeting.calibration.report import write_report
from targeting.calibration.spec import (
    METHODS,
    PUBLISHABLE_METHODS,
    DataError,
    Spec,
    SpecError,
    apply_mapping,
    load_spec,
    parse_spec,
    read_survey,
)

__all__ = [
    "METHODS",
    "PUBLISHABLE_METHODS",
    "CalibrationResult",
    "DataError",
    "Spec",
    "SpecError",
    "apply_mapping",
    "assign_strata",
    "calibrate",
    "compare",
    "eligibility_changes",
    "library_versions",
    "load_spec",
    "parse_spec",
    "predict",
    "read_survey",
    "scorecard_rows",
    "training_data_hash",
    "write_report",
]
