"""Calibration spec: parsing, validation, column mappings and survey reading.

A spec is a small YAML or JSON document (or a dict) that says what to fit and how to judge
it. Every problem raises :class:`SpecError` with a message naming the bad key, feature,
method or column, so a statistician can fix the spec without reading code. Data that does
not fit the spec (no outcome column, non-positive consumption, bad weights, an empty
stratum) raises :class:`DataError`, a subclass, so callers can catch both at once.

Keys (defaults in brackets)::

    outcome: consumption_pc         # per-capita consumption column (after mapping) [consumption_pc]
    weight: weight                  # survey weight column; null = equal weights [weight]
    population_weights: true        # multiply the weight by household_size [true]
    strata: urban_rural             # preset, stratum variable, or a list of them [national]
    poverty_rate: 0.3               # derive lines as weighted quantiles, or give
    poverty_lines: {rural: 2500, urban: 3200}   # a line per stratum (or one number for all)
    poverty_line_scope: stratum     # with poverty_rate: one quantile per stratum or national [stratum]
    features: all                   # registry feature names, or all [all]
    exclude_features: []            # names removed from the candidates
    extra_features:                 # survey columns used as features
      - hhasset                     #   as-is
      - {column: hhland, transform: log1p}   # identity | log | log1p | categorical
    methods: [wls, stepwise, lasso, quantile, gbm]
    folds: 5                        # k of the k-fold validation [5]
    seed: 20240601                  # fold assignment and every random choice [20240601]
    min_stratum_size: 200           # strata smaller than max(10 x features, this) are pooled [200]
    small_strata: pool              # pool (with a stratum intercept) or refuse [pool]
    max_missing_share: 0.05         # features missing for more households are dropped [0.05]
    coverages: [0.1, 0.2, 0.3, 0.4, 0.5]
    report_coverage: poverty_rate   # coverage used for the error-by-group plot [poverty_rate]
    mapping: {head_female: "sexhead == 0", household_size: famsize}
"""

from __future__ import annotations

import ast
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.features import (
    EXTRA_TRANSFORMS,
    FEATURES,
    FeatureInputError,
    education_level_from_years,
    to_float,
)

METHODS = ("wls", "stepwise", "lasso", "quantile", "gbm")
#: Methods whose result is a linear scorecard that may be published and applied to households.
PUBLISHABLE_METHODS = ("wls", "stepwise", "lasso", "quantile")
#: Named stratifications and the stratum variables they combine.
STRATA_PRESETS = {
    "national": (),
    "urban_rural": ("urban",),
    "division": ("division",),
    "urban_rural_x_division": ("urban", "division"),
}
#: Stratum variables computed from registry fields (any other name is a survey column).
DERIVED_STRATUM_VARIABLES = ("urban", "area_type", "division")
DEFAULT_SEED = 20240601

_KEYS = (
    "outcome",
    "weight",
    "population_weights",
    "strata",
    "poverty_rate",
    "poverty_lines",
    "poverty_line_scope",
    "features",
    "exclude_features",
    "extra_features",
    "methods",
    "folds",
    "seed",
    "min_stratum_size",
    "small_strata",
    "max_missing_share",
    "coverages",
    "report_coverage",
    "mapping",
)


class SpecError(ValueError):
    """The calibration spec is invalid; the message names the key, feature or method."""


class DataError(SpecError):
    """The survey data does not fit the spec; the message names the column and the rows."""


@dataclass(frozen=True)
class ExtraSpec:
    """A survey column declared as a feature (``transform`` in :data:`EXTRA_TRANSFORMS`)."""

    column: str
    transform: str = "identity"


@dataclass(frozen=True)
class Spec:
    """A validated calibration spec. Build it with :func:`parse_spec`."""

    outcome: str = "consumption_pc"
    weight: str | None = "weight"
    population_weights: bool = True
    strata: tuple[str, ...] = ()
    poverty_rate: float | None = None
    poverty_lines: dict[str, float] | float | None = None
    poverty_line_scope: str = "stratum"
    features: tuple[str, ...] | str = "all"
    exclude_features: tuple[str, ...] = ()
    extra_features: tuple[ExtraSpec, ...] = ()
    methods: tuple[str, ...] = METHODS
    folds: int = 5
    seed: int = DEFAULT_SEED
    min_stratum_size: int = 200
    small_strata: str = "pool"
    max_missing_share: float = 0.05
    coverages: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    report_coverage: float | str = "poverty_rate"
    mapping: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The normalised spec as plain JSON-serialisable data (stored with the model)."""
        return {
            "outcome": self.outcome,
            "weight": self.weight,
            "population_weights": self.population_weights,
            "strata": list(self.strata),
            "poverty_rate": self.poverty_rate,
            "poverty_lines": dict(self.poverty_lines) if isinstance(self.poverty_lines, dict) else self.poverty_lines,
            "poverty_line_scope": self.poverty_line_scope,
            "features": self.features if isinstance(self.features, str) else list(self.features),
            "exclude_features": list(self.exclude_features),
            "extra_features": [{"column": e.column, "transform": e.transform} for e in self.extra_features],
            "methods": list(self.methods),
            "folds": self.folds,
            "seed": self.seed,
            "min_stratum_size": self.min_stratum_size,
            "small_strata": self.small_strata,
            "max_missing_share": self.max_missing_share,
            "coverages": list(self.coverages),
            "report_coverage": self.report_coverage,
            "mapping": dict(self.mapping),
        }


def load_spec(path: str | Path) -> Spec:
    """Read a YAML (``.yml``/``.yaml``) or JSON spec file and validate it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yml", ".yaml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parser error becomes a spec error naming the file
        raise SpecError(f"{path.name}: cannot parse spec: {exc}") from exc
    return parse_spec(raw or {})


def parse_spec(raw: Mapping | Spec) -> Spec:
    """Validate a spec given as a mapping (or return a :class:`Spec` unchanged)."""
    if isinstance(raw, Spec):
        return raw
    if not isinstance(raw, Mapping):
        raise SpecError(f"spec must be a mapping of keys to values, not {type(raw).__name__}")
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        raise SpecError(f"unknown spec key {unknown[0]!r}{_suggest(unknown[0], _KEYS)}")
    d = Spec()
    outcome = _text(raw, "outcome", d.outcome)
    weight = raw.get("weight", d.weight)
    if weight is not None and (not isinstance(weight, str) or not weight):
        raise SpecError("weight: give a column name or null")
    population_weights = _bool(raw, "population_weights", d.population_weights)
    strata = _strata(raw.get("strata", "national"))
    poverty_rate, poverty_lines, scope = _poverty(raw)
    features = _features(raw.get("features", "all"))
    exclude = tuple(_name_list(raw, "exclude_features"))
    for name in exclude:
        _check_feature(name, "exclude_features")
    extra = _extra(raw.get("extra_features", []))
    clash = [e for e in extra if e.column in FEATURES]
    if clash:
        raise SpecError(f"extra_features: {clash[0].column!r} is a registry feature; list it under features")
    methods = tuple(_name_list(raw, "methods")) if "methods" in raw else d.methods
    if not methods:
        raise SpecError("methods: give at least one of " + ", ".join(METHODS))
    for m in methods:
        if m not in METHODS:
            raise SpecError(f"methods: unknown method {m!r}{_suggest(m, METHODS)} (known: {', '.join(METHODS)})")
    if len(set(methods)) != len(methods):
        raise SpecError("methods: a method is listed twice")
    folds = _int(raw, "folds", d.folds, low=2, high=20)
    seed = _int(raw, "seed", d.seed, low=0, high=2**32 - 1)
    min_size = _int(raw, "min_stratum_size", d.min_stratum_size, low=1, high=10**9)
    small = _text(raw, "small_strata", d.small_strata)
    if small not in ("pool", "refuse"):
        raise SpecError(f"small_strata: {small!r} is not 'pool' or 'refuse'")
    max_missing = _number(raw, "max_missing_share", d.max_missing_share, low=0.0, high=1.0)
    coverages = tuple(_coverage(c, "coverages") for c in raw.get("coverages", d.coverages))
    if not coverages:
        raise SpecError("coverages: give at least one coverage")
    report_coverage = raw.get("report_coverage", d.report_coverage)
    if report_coverage != "poverty_rate":
        report_coverage = _coverage(report_coverage, "report_coverage")
    mapping = _mapping(raw.get("mapping", {}))
    return Spec(
        outcome=outcome,
        weight=weight,
        population_weights=population_weights,
        strata=strata,
        poverty_rate=poverty_rate,
        poverty_lines=poverty_lines,
        poverty_line_scope=scope,
        features=features,
        exclude_features=exclude,
        extra_features=extra,
        methods=methods,
        folds=folds,
        seed=seed,
        min_stratum_size=min_size,
        small_strata=small,
        max_missing_share=max_missing,
        coverages=coverages,
        report_coverage=report_coverage,
        mapping=mapping,
    )


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(raw: Mapping, key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{key}: expected a non-empty name, got {value!r}")
    return value


def _bool(raw: Mapping, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{key}: expected true or false, got {value!r}")
    return value


def _int(raw: Mapping, key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{key}: expected an integer from {low} to {high}, got {value!r}")
    return value


def _number(raw: Mapping, key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SpecError(f"{key}: expected a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _coverage(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise SpecError(f"{key}: coverage must be a share strictly between 0 and 1, got {value!r}")
    return float(value)


def _name_list(raw: Mapping, key: str) -> list[str]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"{key}: expected a list of names, got {value!r}")
    return list(value)


def _check_feature(name: str, key: str) -> None:
    if name not in FEATURES:
        raise SpecError(f"{key}: unknown feature {name!r}{_suggest(name, FEATURES)}")


def _features(value) -> tuple[str, ...] | str:
    if value == "all":
        return "all"
    names = _name_list({"features": value}, "features")
    if not names:
        raise SpecError("features: give 'all' or at least one feature name")
    for name in names:
        _check_feature(name, "features")
    if len(set(names)) != len(names):
        raise SpecError("features: a feature is listed twice")
    return tuple(names)


def _strata(value) -> tuple[str, ...]:
    """Expand presets; the result is the tuple of stratum variables (empty = national)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
        raise SpecError(f"strata: expected a preset ({', '.join(STRATA_PRESETS)}) or a list of columns, got {value!r}")
    out: list[str] = []
    for item in items:
        for variable in STRATA_PRESETS.get(item, (item,)):
            # area_type strata merge paurashava and city corporation into "urban".
            variable = "urban" if variable == "area_type" else variable
            if variable in out:
                raise SpecError(f"strata: {item!r} repeats the stratum variable {variable!r}")
            out.append(variable)
    return tuple(out)


def _poverty(raw: Mapping) -> tuple[float | None, dict | float | None, str]:
    rate = raw.get("poverty_rate")
    lines = raw.get("poverty_lines")
    scope = raw.get("poverty_line_scope", "stratum")
    if scope not in ("stratum", "national"):
        raise SpecError(f"poverty_line_scope: {scope!r} is not 'stratum' or 'national'")
    if (rate is None) == (lines is None):
        raise SpecError("give exactly one of poverty_rate (a share) or poverty_lines (per stratum)")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
            raise SpecError(f"poverty_rate: expected a share strictly between 0 and 1, got {rate!r}")
        return float(rate), None, scope
    if isinstance(lines, (int, float)) and not isinstance(lines, bool):
        if not lines > 0:
            raise SpecError(f"poverty_lines: must be positive, got {lines!r}")
        return None, float(lines), scope
    if not isinstance(lines, Mapping) or not lines:
        raise SpecError(f"poverty_lines: expected a number or a mapping of stratum to line, got {lines!r}")
    out = {}
    for stratum, line in lines.items():
        if isinstance(line, bool) or not isinstance(line, (int, float)) or not line > 0:
            raise SpecError(f"poverty_lines: line for stratum {stratum!r} must be a positive number, got {line!r}")
        out[str(stratum)] = float(line)
    return None, out, scope


def _extra(value) -> tuple[ExtraSpec, ...]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"extra_features: expected a list, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str) and item:
            out.append(ExtraSpec(item))
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("column"), str):
            raise SpecError(f"extra_features: each item is a column name or {{column, transform}}, got {item!r}")
        bad = set(item) - {"column", "transform"}
        if bad:
            raise SpecError(f"extra_features: unknown key {sorted(bad)[0]!r} for column {item['column']!r}")
        transform = item.get("transform", "identity")
        if transform not in EXTRA_TRANSFORMS:
            raise SpecError(
                f"extra_features: transform {transform!r} for column {item['column']!r} is not one of "
                + ", ".join(EXTRA_TRANSFORMS)
            )
        out.append(ExtraSpec(item["column"], transform))
    columns = [e.column for e in out]
    if len(set(columns)) != len(columns):
        raise SpecError("extra_features: a column is listed twice")
    return tuple(out)


# --------------------------------------------------------------------------------------
# Column mappings: {target column: survey column or a small expression}
# --------------------------------------------------------------------------------------

_FUNCTIONS = {
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "clip": np.clip,
    "where": np.where,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "education_level_from_years": education_level_from_years,
}
_BINOPS = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_CMPOPS = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


def _mapping(value) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SpecError(f"mapping: expected a mapping of column to expression, got {value!r}")
    out = {}
    for target, expr in value.items():
        if not isinstance(target, str) or not target:
            raise SpecError(f"mapping: bad target column {target!r}")
        if isinstance(expr, (int, float)) and not isinstance(expr, bool):
            expr = repr(expr)
        if not isinstance(expr, str) or not expr.strip():
            raise SpecError(f"mapping.{target}: expected a column name or an expression, got {expr!r}")
        _parse_expression(target, expr)
        out[target] = expr
    return out


def _parse_expression(target: str, expr: str) -> ast.Expression:
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"mapping.{target}: cannot parse {expr!r}: {exc.msg}") from exc
    allowed = (
        ast.Expression,
        ast.Name,
        ast.Load,
        ast.Constant,
        ast.BinOp,
        ast.UnaryOp,
        ast.USub,
        ast.UAdd,
        ast.Not,
        ast.Compare,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.Call,
        ast.List,
        ast.Tuple,
        *_BINOPS,
        *_CMPOPS,
    )
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise SpecError(f"mapping.{target}: {type(node).__name__} is not allowed in {expr!r}")
        if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS):
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise SpecError(f"mapping.{target}: unknown function {name!r} (known: {', '.join(_FUNCTIONS)})")
        if isinstance(node, ast.Call) and node.keywords:
            raise SpecError(f"mapping.{target}: keyword arguments are not supported in {expr!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise SpecError(f"mapping.{target}: only numbers may appear as constants in {expr!r}")
    return tree


def apply_mapping(frame: pd.DataFrame, mapping: Mapping[str, str]) -> pd.DataFrame:
    """Return a copy of ``frame`` with each mapped target column computed from survey columns.

    A value is either an existing column name (copied as-is, so text ids survive) or an
    expression over columns: arithmetic, comparisons (true = 1.0), ``and``/``or``/``not``
    and the functions in ``_FUNCTIONS``. Missing inputs stay missing (NaN). Expressions
    see the original survey columns, not other targets, so the order of keys is irrelevant.
    """
    out = frame.copy()
    for target, expr in mapping.items():
        if expr in frame.columns:
            out[target] = frame[expr]
            continue
        tree = _parse_expression(target, expr)
        with np.errstate(all="ignore"):
            value = _evaluate(tree.body, frame, target, expr)
        value = np.asarray(value, dtype="float64")
        out[target] = np.broadcast_to(value, (len(frame),)).copy() if value.ndim == 0 else value
    return out


def _evaluate(node, frame: pd.DataFrame, target: str, expr: str):
    if isinstance(node, ast.Name):
        if node.id not in frame.columns:
            raise DataError(f"mapping.{target}: column {node.id!r} is not in the survey data ({expr!r})")
        try:
            return to_float(frame[node.id], node.id)
        except FeatureInputError as exc:
            raise DataError(f"mapping.{target}: {exc}") from exc
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(e, frame, target, expr) for e in node.elts]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](
            _evaluate(node.left, frame, target, expr), _evaluate(node.right, frame, target, expr)
        )
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, frame, target, expr)
        if isinstance(node.op, ast.Not):
            return _logical(np.logical_not, value)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, frame, target, expr)
        result = None
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, frame, target, expr)
            part = _missing_aware(_CMPOPS[type(op)], left, right)
            result = part if result is None else _logical(np.logical_and, result, part)
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        func = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [_evaluate(v, frame, target, expr) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = _logical(func, result, value)
        return result
    if isinstance(node, ast.Call):
        args = [_evaluate(a, frame, target, expr) for a in node.args]
        try:
            return _FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"mapping.{target}: {node.func.id}(): {exc}") from exc
    raise SpecError(f"mapping.{target}: cannot evaluate {expr!r}")


def _missing_aware(func, left, right):
    """Comparison as 1.0/0.0 that stays NaN where an operand is missing (so 'sexhead == 0' keeps blanks blank)."""
    left_a, right_a = np.asarray(left, dtype="float64"), np.asarray(right, dtype="float64")
    return np.where(np.isnan(left_a) | np.isnan(right_a), np.nan, func(left_a, right_a).astype(float))


def _logical(func, *values):
    arrays = [np.asarray(v, dtype="float64") for v in values]
    missing = np.zeros(np.broadcast_shapes(*(a.shape for a in arrays)), dtype=bool)
    for a in arrays:
        missing = missing | np.isnan(a)
    return np.where(missing, np.nan, func(*[np.nan_to_num(a) != 0 for a in arrays]).astype(float))


# --------------------------------------------------------------------------------------
# Reading a survey in the registry's import format
# --------------------------------------------------------------------------------------


def read_survey(
    households_csv: str | Path, members_csv: str | Path | None = None, mapping: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read survey CSVs as text (blanks become missing) and apply an optional column mapping.

    Values stay text on purpose: :func:`targeting.features.household_profile` converts them,
    exactly as it converts values fetched from the database, so both paths share one
    conversion. The mapping (see :func:`apply_mapping`) is applied to the households file.
    """
    households = _read_csv(households_csv)
    members = _read_csv(members_csv) if members_csv is not None else None
    if mapping:
        households = apply_mapping(households, _mapping(mapping))
    return households, members


def _read_csv(path: str | Path) -> pd.DataFrame:
    try:
        # Only empty cells are missing: words such as "NA" or "None" stay text and are reported.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{Path(path).name}: cannot read CSV: {exc}") from exc
