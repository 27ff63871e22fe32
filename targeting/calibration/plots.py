"""Validation plots (PNG) of a calibration, drawn with matplotlib's object API (no pyplot state).

Each function takes a :class:`~targeting.calibration.core.CalibrationResult` and a path,
writes one PNG and returns the path. Figures are built with ``matplotlib.figure.Figure``,
which renders through the Agg backend without touching the global pyplot backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from targeting.calibration.metrics import select_poorest, targeting_errors

DPI = 110
#: Coverage grid of the exclusion-error curve.
COVERAGE_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
_COLOURS = {"wls": "#1f77b4", "stepwise": "#2ca02c", "lasso": "#9467bd", "quantile": "#ff7f0e", "gbm": "#7f7f7f"}


def _methods(result) -> list[str]:
    return [m for m in result.spec["methods"] if f"{m}_oos" in result.predictions.columns]


def predicted_vs_actual(result, path: Path) -> Path:
    """Out-of-sample predicted against actual log per-capita consumption, one panel per method."""
    data = result.predictions
    methods = _methods(result)
    fig = Figure(figsize=(4.2 * len(methods), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharex=True, sharey=True))
    actual = data["log_outcome"].to_numpy()
    low, high = np.percentile(actual, [0.5, 99.5])
    for ax, method in zip(axes, methods, strict=True):
        predicted = data[f"{method}_oos"].to_numpy()
        if len(actual) > 3000:
            ax.hexbin(actual, predicted, gridsize=45, bins="log", cmap="Blues", mincnt=1, extent=(low, high, low, high))
        else:
            ax.scatter(actual, predicted, s=6, alpha=0.4, color=_COLOURS.get(method, "C0"))
        ax.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="predicted = actual")
        r2 = result.metrics[method]["out_of_sample"]["overall"]["r2"]
        ax.set_title(f"{method} (out-of-sample R² {r2:.2f})" if r2 is not None else method)
        ax.set_xlabel("actual log consumption per capita")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("predicted log consumption per capita")
    fig.suptitle("Predicted vs actual (out-of-sample, k-fold)")
    fig.savefig(path, dpi=DPI)
    return path


def exclusion_by_coverage(result, path: Path) -> Path:
    """Exclusion error against coverage for each method (out-of-sample), with the perfect-targeting floor."""
    data = result.predictions
    w = data["weight"].to_numpy()
    poor = data["poor"].to_numpy(dtype=bool)
    headcount = w[poor].sum() / w.sum()
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    for method in _methods(result):
        predicted = data[f"{method}_oos"].to_numpy()
        errors = [targeting_errors(poor, select_poorest(predicted, w, c), w)["exclusion_error"] for c in COVERAGE_GRID]
        ax.plot(
            COVERAGE_GRID * 100,
            errors,
            marker="o",
            markersize=3,
            color=_COLOURS.get(method),
            label=method + (" (benchmark only)" if method == "gbm" else ""),
        )
    floor = np.clip(1 - COVERAGE_GRID / headcount, 0, None)
    ax.plot(COVERAGE_GRID * 100, floor, color="black", linestyle=":", label="perfect ranking")
    ax.axvline(headcount * 100, color="grey", linewidth=0.8, linestyle="--")
    ax.annotate(
        f"poverty rate {headcount:.0%}",
        (headcount * 100, 0.95),
        rotation=90,
        ha="right",
        va="top",
        fontsize=8,
        color="grey",
    )
    ax.set_xlabel("coverage: share of the population selected, poorest first by predicted consumption (%)")
    ax.set_ylabel("exclusion error (poor not selected / all poor)")
    ax.set_ylim(0, 1)
    ax.set_title("Exclusion error by coverage (out-of-sample, population-weighted)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=DPI)
    return path


def errors_by_group(result, path: Path, coverage_label: str) -> Path:
    """Exclusion and inclusion error per group at one coverage (out-of-sample), bars per method."""
    methods = _methods(result)
    first = result.metrics[methods[0]]["out_of_sample"]["by_group"]
    bars = [(group, level) for group, levels in first.items() if group != "stratum" for level in levels]
    bars = bars or [("stratum", level) for level in first.get("stratum", {})]
    fig = Figure(figsize=(max(8, 0.55 * len(bars) * max(1, len(methods)) / 2), 8), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(bars))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        groups = result.metrics[method]["out_of_sample"]["by_group"]
        for ax, measure in zip(axes, ("exclusion_error", "inclusion_error"), strict=True):
            values = [groups[g][lvl]["targeting"][coverage_label][measure] for g, lvl in bars]
            values = [np.nan if v is None else v for v in values]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, color=_COLOURS.get(method), label=method)
    overall = result.metrics[methods[0]]["out_of_sample"]["overall"]["targeting"][coverage_label]["coverage"]
    axes[0].set_ylabel("exclusion error\n(poor not selected / poor)")
    axes[1].set_ylabel("inclusion error\n(selected non-poor / selected)")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(methods), fontsize=8)
    axes[1].set_xticks(x, [f"{g.replace('_', ' ')}: {lvl}" for g, lvl in bars], rotation=45, ha="right", fontsize=8)
    shown = "= the poverty rate" if coverage_label == "poverty_rate" else coverage_label
    fig.suptitle(
        f"Targeting errors by group at coverage {shown} "
        f"({overall:.0%} of the population selected nationally; out-of-sample)"
    )
    fig.savefig(path, dpi=DPI)
    return path
