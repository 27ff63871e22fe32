"""Comparing two calibrations, and how many households a model change moves in or out."""

from __future__ import annotations

import numpy as np

from targeting.calibration.metrics import finite, select_poorest


def _flatten(tree: dict, prefix: str = "") -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, path))
        elif isinstance(value, (int, float)) or value is None:
            out[path] = value
    return out


def compare(metrics_a: dict, coefs_a: dict, metrics_b: dict, coefs_b: dict) -> dict:
    """Side-by-side metrics and coefficient differences of two calibrations (a = current, b = candidate).

    ``metrics_*`` are ``CalibrationResult.metrics`` and ``coefs_*`` ``CalibrationResult.coefficients``
    (or the same dicts read back from report.json). Returns ``{"metrics": [...], "coefficients": [...]}``:
    metric rows ``{"metric": "wls/out_of_sample/overall/targeting/30%/exclusion_error", "a", "b",
    "difference"}`` (b - a; None where either side lacks the figure) and coefficient rows
    ``{"method", "stratum", "feature", "a", "b", "difference"}``, a feature absent from a scorecard
    that has the stratum counting as 0 (that is what the scorecard applies).
    """
    flat_a, flat_b = _flatten(metrics_a), _flatten(metrics_b)
    metric_rows = []
    for key in list(flat_a) + [k for k in flat_b if k not in flat_a]:
        a, b = flat_a.get(key), flat_b.get(key)
        metric_rows.append({"metric": key, "a": a, "b": b, "difference": None if a is None or b is None else b - a})
    coef_rows = []
    for method in list(coefs_a) + [m for m in coefs_b if m not in coefs_a]:
        strata_a, strata_b = coefs_a.get(method, {}), coefs_b.get(method, {})
        for stratum in list(strata_a) + [s for s in strata_b if s not in strata_a]:
            entry_a, entry_b = strata_a.get(stratum), strata_b.get(stratum)
            features = ["(intercept)"]
            for entry in (entry_a, entry_b):
                features += [f for f in (entry or {}).get("coefficients", {}) if f not in features]
            for feature in features:
                a, b = _coefficient(entry_a, feature), _coefficient(entry_b, feature)
                coef_rows.append(
                    {
                        "method": method,
                        "stratum": stratum,
                        "feature": feature,
                        "a": a,
                        "b": b,
                        "difference": None if a is None or b is None else b - a,
                    }
                )
    return {"metrics": metric_rows, "coefficients": coef_rows}


def _coefficient(entry: dict | None, feature: str) -> float | None:
    if entry is None:
        return None
    if feature == "(intercept)":
        return entry["intercept"]
    return entry["coefficients"].get(feature, 0.0)


def eligibility_changes(
    pred_a: np.ndarray, pred_b: np.ndarray, coverage: float, weights: np.ndarray | None = None
) -> dict:
    """How the poorest-``coverage`` selection changes from predictions a to predictions b.

    Both selections use :func:`~targeting.calibration.metrics.select_poorest` on the same
    households (``weights`` = people per household for a population coverage; default one
    per household). Returns household counts ``selected_a``, ``selected_b``, ``entering``
    (selected by b only), ``leaving`` (selected by a only), ``staying`` (both) and, with
    weights, the same as population shares.
    """
    pred_a, pred_b = np.asarray(pred_a, dtype=float), np.asarray(pred_b, dtype=float)
    if pred_a.shape != pred_b.shape:
        raise ValueError(f"predictions differ in length: {len(pred_a)} and {len(pred_b)}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be strictly between 0 and 1, got {coverage!r}")
    if np.isnan(pred_a).any() or np.isnan(pred_b).any():
        raise ValueError("predictions contain NaN (households that could not be scored)")
    w = np.ones(len(pred_a)) if weights is None else np.asarray(weights, dtype=float)
    sel_a, sel_b = select_poorest(pred_a, w, coverage), select_poorest(pred_b, w, coverage)
    out = {
        "coverage": coverage,
        "households": int(len(pred_a)),
        "selected_a": int(sel_a.sum()),
        "selected_b": int(sel_b.sum()),
        "entering": int((sel_b & ~sel_a).sum()),
        "leaving": int((sel_a & ~sel_b).sum()),
        "staying": int((sel_a & sel_b).sum()),
    }
    if weights is not None:
        total = w.sum()
        out["population_share"] = {
            key: finite(w[mask].sum() / total)
            for key, mask in (("entering", sel_b & ~sel_a), ("leaving", sel_a & ~sel_b), ("staying", sel_a & sel_b))
        }
    return out
