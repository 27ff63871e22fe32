"""Writing a calibration report: JSON, scorecard CSVs, PNG plots and a self-contained HTML summary."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

from targeting.calibration import plots
from targeting.calibration.core import CalibrationResult, scorecard_rows


def report_json(result: CalibrationResult) -> str:
    """The canonical JSON text of a result (identical for identical inputs, spec and seed)."""
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(result: CalibrationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, scorecard_<method>.csv, PNG plots and report.html into ``out_dir``.

    Returns the written paths by name. The HTML references the PNGs by relative path, so the
    directory can be moved or zipped as a whole.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["report.json"] = out / "report.json"
    written["report.json"].write_text(report_json(result), encoding="utf-8")
    for method in result.coefficients:
        path = out / f"scorecard_{method}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=["stratum", "feature", "coefficient", "description"], lineterminator="\n"
            )
            writer.writeheader()
            for row in scorecard_rows(result, method):
                # repr() is the shortest text that reads back as the same float: hand recomputation is exact.
                writer.writerow({**row, "coefficient": repr(row["coefficient"])})
        written[path.name] = path
    label = report_coverage_label(result)
    written["predicted_vs_actual.png"] = plots.predicted_vs_actual(result, out / "predicted_vs_actual.png")
    written["exclusion_by_coverage.png"] = plots.exclusion_by_coverage(result, out / "exclusion_by_coverage.png")
    written["errors_by_group.png"] = plots.errors_by_group(result, out / "errors_by_group.png", label)
    written["report.html"] = out / "report.html"
    written["report.html"].write_text(render_html(result), encoding="utf-8")
    return written


def report_coverage_label(result: CalibrationResult) -> str:
    """Metrics key of the coverage used for group tables and the group plot."""
    chosen = result.spec["report_coverage"]
    return "poverty_rate" if chosen == "poverty_rate" else f"{chosen * 100:g}%"


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f0f3f7} td.l,th.l{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.4em .8em}
.note{color:#555} img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
code{background:#f4f4f4;padding:0 .2em}
"""


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _table(headers: list[str], rows: list[list], caption: str = "", left: int = 1) -> str:
    head = "".join(
        f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: CalibrationResult) -> str:
    """The report as one HTML page (plots referenced by relative path)."""
    spec = result.spec
    methods = list(result.metrics)
    label = report_coverage_label(result)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>PMT calibration report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>PMT calibration report</h1>",
        _summary(result),
    ]
    if result.warnings:
        parts.append("<h2>Warnings</h2>" + "".join(f'<p class="warn">{html.escape(w)}</p>' for w in result.warnings))
    if result.notes:
        parts.append("<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")

    parts.append("<h2>Strata</h2>")
    parts.append(
        _table(
            ["stratum", "households", "population share", "poverty line", "poverty rate", "estimation"],
            [
                [
                    html.escape(s),
                    f"{v['n_households']:,}",
                    _pct(v["population_share"]),
                    _fmt(v["poverty_line"], 2),
                    _pct(v["poverty_rate"]),
                    html.escape(v["estimation"]),
                ]
                for s, v in result.strata.items()
            ],
        )
    )

    parts.append("<h2>Fit and targeting, all households</h2>")
    parts.append(
        "<p class='note'>Selection: the poorest c of the population by predicted log consumption, nationally. "
        "Exclusion error = poor people not selected / all poor people. Inclusion error = selected people who "
        "are not poor / all selected people. CGH = (share of the benefit reaching the poor) / (poor share of "
        "the population), equal benefit per selected person; 1 = random selection. All figures are "
        "population-weighted (survey weight × household size). Out-of-sample figures come from k-fold "
        f"cross-validation ({spec['folds']} folds, seed {spec['seed']}); in-sample figures flatter the "
        "model and are shown for comparison only.</p>"
    )
    rows = []
    for method in methods:
        for sample in ("out_of_sample", "in_sample"):
            overall = result.metrics[method][sample]["overall"]
            rows.append(
                [
                    f"{html.escape(method)}{' (benchmark)' if method == 'gbm' else ''}",
                    sample.replace("_", "-"),
                    _fmt(overall["r2"]),
                    _fmt(overall["spearman"]),
                    _fmt(overall["bias"]),
                ]
            )
    parts.append(_table(["method", "sample", "R² (log)", "Spearman", "bias"], rows, left=2))
    coverages = list(result.metrics[methods[0]]["out_of_sample"]["overall"]["targeting"])
    for measure, title in (
        ("exclusion_error", "Exclusion error"),
        ("inclusion_error", "Inclusion error"),
        ("cgh", "CGH indicator"),
    ):
        rows = []
        for method in methods:
            for sample in ("out_of_sample", "in_sample"):
                targeting = result.metrics[method][sample]["overall"]["targeting"]
                value = (lambda v: _fmt(v, 2)) if measure == "cgh" else _pct
                rows.append(
                    [html.escape(method), sample.replace("_", "-")] + [value(targeting[c][measure]) for c in coverages]
                )
        parts.append(
            _table(
                ["method", "sample"] + [_coverage_title(result, c) for c in coverages],
                rows,
                caption=f"{title} by coverage",
                left=2,
            )
        )

    parts.append(
        f"<h2>Errors by stratum and group at coverage {html.escape(_coverage_title(result, label))} "
        "(out-of-sample)</h2>"
    )
    groups = result.metrics[methods[0]]["out_of_sample"]["by_group"]
    for group, levels in groups.items():
        rows = []
        for level in levels:
            for method in methods:
                entry = result.metrics[method]["out_of_sample"]["by_group"][group][level]
                t = entry["targeting"][label]
                rows.append(
                    [
                        html.escape(level),
                        html.escape(method),
                        f"{entry['n_households']:,}",
                        _pct(entry["population_share"]),
                        _pct(t["poverty_rate"]),
                        _pct(t["coverage"]),
                        _pct(t["exclusion_error"]),
                        _pct(t["inclusion_error"]),
                        _fmt(t["cgh"], 2),
                        _fmt(entry["r2"]),
                        _fmt(entry["bias"]),
                    ]
                )
        parts.append(
            _table(
                [
                    "level",
                    "method",
                    "households",
                    "population",
                    "poverty rate",
                    "selected",
                    "exclusion error",
                    "inclusion error",
                    "CGH",
                    "R²",
                    "bias",
                ],
                rows,
                caption=group.replace("_", " "),
                left=2,
            )
        )

    parts.append("<h2>Plots</h2>")
    for name, alt in (
        ("predicted_vs_actual.png", "Predicted vs actual log consumption, out-of-sample"),
        ("exclusion_by_coverage.png", "Exclusion error by coverage"),
        ("errors_by_group.png", "Targeting errors by group"),
    ):
        parts.append(f'<p><img src="{name}" alt="{html.escape(alt)}"></p>')

    parts.append("<h2>Scorecards (coefficients per stratum)</h2>")
    parts.append(
        "<p class='note'>Predicted log consumption = intercept + Σ coefficient × feature. Robust standard "
        "errors in brackets: HC1 for WLS and stepwise, a kernel sandwich for quantile regression; the lasso "
        "has none, as standard errors after data-driven selection are not valid. A blank cell: the method did not "
        "select the feature (stepwise, lasso) or it was dropped in that stratum. The exact values are in "
        "the scorecard_&lt;method&gt;.csv files.</p>"
    )
    for stratum in result.strata:
        linear = [m for m in result.coefficients if stratum in result.coefficients[m]]
        if not linear:
            continue
        entries = {m: result.coefficients[m][stratum] for m in linear}
        features = ["(intercept)"] + [
            f for f in result.features if any(f in e["coefficients"] for e in entries.values())
        ]
        rows = []
        for feature in features:
            row = [html.escape(feature)]
            for method in linear:
                entry = entries[method]
                if feature == "(intercept)":
                    value, se = entry["intercept"], entry["intercept_se"]
                else:
                    value = entry["coefficients"].get(feature)
                    se = (entry["std_errors"] or {}).get(feature)
                cell = "" if value is None else f"{value:.4f}"
                if se is not None and value is not None:
                    cell += f" <span class='note'>({se:.4f})</span>"
                row.append(cell)
            rows.append(row)
        how = entries[linear[0]]["estimation"]
        parts.append(
            _table(
                ["feature"] + linear,
                rows,
                caption=f"{stratum} ({how} estimation, {result.strata[stratum]['n_households']:,} households)",
            )
        )

    parts.append("<h2>Features</h2>")
    parts.append(
        _table(
            ["feature", "definition"],
            [
                [html.escape(f), f'<span style="text-align:left">{html.escape(d)}</span>']
                for f, d in result.feature_descriptions.items()
            ],
        )
    )
    dropped_rows = []
    for kind, items in result.dropped_features.items():
        if kind == "by_stratum":
            for stratum, reasons in items.items():
                dropped_rows += [
                    [html.escape(f), f"in {html.escape(stratum)}: {html.escape(r)}"] for f, r in reasons.items()
                ]
        else:
            dropped_rows += [[html.escape(f), html.escape(r)] for f, r in items.items()]
    if dropped_rows:
        parts.append(_table(["dropped feature", "reason"], dropped_rows, left=2))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _coverage_title(result: CalibrationResult, label: str) -> str:
    if label == "poverty_rate":
        first = next(iter(result.metrics.values()))
        rate = first["out_of_sample"]["overall"]["targeting"]["poverty_rate"]["poverty_rate"]
        return f"at poverty rate ({rate * 100:.1f}%)"
    return label


def _summary(result: CalibrationResult) -> str:
    spec = result.spec
    rows = [
        ["households", f"{result.n_households:,}"],
        ["outcome", f"log of <code>{html.escape(spec['outcome'])}</code>"],
        [
            "weights",
            f"<code>{html.escape(str(spec['weight']))}</code>"
            + (" × household size (population weights)" if spec["population_weights"] else ""),
        ],
        ["strata", html.escape(", ".join(result.strata))],
        ["candidate features", str(len(result.features))],
        ["methods", html.escape(", ".join(spec["methods"]))],
        ["validation", f"{spec['folds']}-fold cross-validation stratified by stratum, seed {spec['seed']}"],
        ["feature definition version", str(result.feature_definition_version)],
        ["training data sha256", f"<code>{result.training_data_hash}</code>"],
        ["libraries", html.escape(", ".join(f"{k} {v}" for k, v in result.library_versions.items()))],
    ]
    return _table(["", ""], rows, left=2)
