"""Fit and targeting metrics, all population-weighted.

Definitions (``w`` = population weight: survey weight x household size; sums run over
households, so every figure is a share of *people*):

* selection at coverage c: households sorted by predicted log consumption (poorest first,
  ties in data order); a household is selected while the population share ranked before it
  is below c, i.e. the smallest prefix whose population reaches c (actual coverage is
  reported; it exceeds c by less than one household);
* poor: true per-capita consumption strictly below the household's stratum poverty line;
* exclusion error = poor people not selected / all poor people;
* inclusion error = selected people who are not poor / all selected people;
* CGH (Coady-Grosh-Hoddinott) = share of the benefit reaching the poor / poor share of the
  population, with an equal benefit per selected person; equals (1 - inclusion error) /
  headcount. 1 is what random selection achieves, higher is better targeted;
* weighted R^2 = 1 - sum w (y - yhat)^2 / sum w (y - ybar_w)^2 on log consumption;
* Spearman = weighted Pearson correlation of weighted mid-ranks (population ranks); with
  equal weights it is the ordinary Spearman coefficient;
* bias = weighted mean of (predicted - actual) log consumption; positive = predicted richer
  than they are, the sign of systematic exclusion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def finite(value) -> float | None:
    """A plain float for JSON, or None where the value is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean (NaN for an empty selection)."""
    total = w.sum()
    return float(np.dot(w, x) / total) if total > 0 else math.nan


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    """Weighted coefficient of determination of ``pred`` for ``y``."""
    if len(y) == 0:
        return math.nan
    mean = weighted_mean(y, w)
    total = float(np.dot(w, (y - mean) ** 2))
    return 1.0 - float(np.dot(w, (y - pred) ** 2)) / total if total > 0 else math.nan


def weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mid-rank of each value in the weighted population: weight ranked below + half its tie group."""
    values, inverse = np.unique(x, return_inverse=True)
    group_weight = np.bincount(inverse, weights=w, minlength=len(values))
    below = np.cumsum(group_weight) - group_weight
    return (below + group_weight / 2.0)[inverse]


def weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation."""
    if len(a) < 2:
        return math.nan
    da, db = a - weighted_mean(a, w), b - weighted_mean(b, w)
    den = math.sqrt(float(np.dot(w, da * da)) * float(np.dot(w, db * db)))
    return float(np.dot(w, da * db)) / den if den > 0 else math.nan


def weighted_spearman(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    """Population-weighted Spearman rank correlation (see module docstring)."""
    if len(y) < 2:
        return math.nan
    return weighted_corr(weighted_ranks(y, w), weighted_ranks(pred, w), w)


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """A cut-off below which a population share ``q`` (by weight ``w``) of ``x`` lies, at least.

    Let v be the value at which the weighted cumulative share of sorted ``x`` first reaches
    ``q``; the cut-off is halfway between v and the next larger value (just above v if there
    is none). So "x below the cut-off" holds for exactly the households up to v: a share of
    ``q`` or more, exceeding it by less than one household, like the selection rule.
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cumulative = np.cumsum(w[order])
    k = min(int(np.searchsorted(cumulative, q * cumulative[-1], side="left")), len(xs) - 1)
    above = xs[k + 1 :][xs[k + 1 :] > xs[k]]
    return float((xs[k] + above[0]) / 2) if len(above) else float(np.nextafter(xs[k], np.inf))


def select_poorest(pred: np.ndarray, w: np.ndarray, coverage: float) -> np.ndarray:
    """Boolean mask of the poorest ``coverage`` share of the population by ``pred`` (see module docstring)."""
    order = np.argsort(pred, kind="stable")
    before = np.cumsum(w[order]) - w[order]
    selected = np.zeros(len(pred), dtype=bool)
    selected[order[before < coverage * w.sum()]] = True
    return selected


def targeting_errors(poor: np.ndarray, selected: np.ndarray, w: np.ndarray) -> dict:
    """Exclusion and inclusion error, CGH, coverage and headcount for one selection."""
    total = w.sum()
    poor_w = float(w[poor].sum())
    sel_w = float(w[selected].sum())
    poor_sel = float(w[poor & selected].sum())
    headcount = poor_w / total if total > 0 else math.nan
    exclusion = (poor_w - poor_sel) / poor_w if poor_w > 0 else math.nan
    inclusion = (sel_w - poor_sel) / sel_w if sel_w > 0 else math.nan
    cgh = (poor_sel / sel_w) / headcount if sel_w > 0 and headcount > 0 else math.nan
    return {
        "coverage": finite(sel_w / total if total > 0 else math.nan),
        "poverty_rate": finite(headcount),
        "exclusion_error": finite(exclusion),
        "inclusion_error": finite(inclusion),
        "cgh": finite(cgh),
    }


def evaluate(
    y: np.ndarray,
    pred: np.ndarray,
    w: np.ndarray,
    poor: np.ndarray,
    coverages: Mapping[str, float],
    groups: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Fit and targeting metrics of one set of predictions, overall and per group.

    ``coverages`` maps a label ("10%", "poverty_rate") to a coverage share; selection is always
    made over the whole sample (the national ranking), then errors are measured inside each
    group. ``groups`` maps a grouping name to an array of labels (one per household; None
    or NaN = not in any level). Returns nested plain dicts (JSON-ready; NaN becomes None).
    """
    selections = {label: select_poorest(pred, w, c) for label, c in coverages.items()}
    everyone = np.ones(len(y), dtype=bool)
    out = {"overall": _summary(y, pred, w, poor, selections, everyone), "by_group": {}}
    for name, labels in (groups or {}).items():
        levels = {}
        for level in sorted(pd.unique(pd.Series(labels).dropna()), key=str):
            levels[str(level)] = _summary(y, pred, w, poor, selections, labels == level)
        out["by_group"][name] = levels
    return out


def _summary(y, pred, w, poor, selections, mask) -> dict:
    yw, pw, ww = y[mask], pred[mask], w[mask]
    return {
        "n_households": int(mask.sum()),
        "population_share": finite(ww.sum() / w.sum()),
        "r2": finite(weighted_r2(yw, pw, ww)),
        "spearman": finite(weighted_spearman(yw, pw, ww)),
        "bias": finite(weighted_mean(pw - yw, ww)),
        "targeting": {label: targeting_errors(poor[mask], sel[mask], ww) for label, sel in selections.items()},
    }
