"""PMT model versions: storing a calibration, and the draft → published → active lifecycle.

Publishing needs a statistician other than the one who fitted the model (four eyes); a
published model is immutable. Activating is an audited act that retires the previously active
model and runs every function in :data:`ACTIVATION_HOOKS` (the scoring engine registers the
full re-score there) inside the same transaction.

Besides the lifecycle this module holds what the CLI, the API and the pages share: fitting a
survey from files and storing the result with its report folder (:func:`calibrate_files`,
:func:`store_calibration`), the headline metrics, the scorecard of a stored model, applying
stored models to the registry in chunks (:func:`registry_predictions`) and comparing two
models (:func:`compare_models`). Nothing here reads the Flask request or the instance folder:
callers pass the acting user and the folder under which reports live.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import event, inspect, select, text

from models import Household, Member, PmtModel, User, db
from models.base import utcnow
from models.codes import HOUSEHOLD_FIELD_NAMES, MEMBER_FIELD_NAMES
from registry.access import AccessDenied, require_role
from registry.audit import record_event
from targeting.calibration import (
    PUBLISHABLE_METHODS,
    CalibrationResult,
    SpecError,
    assign_strata,
    calibrate,
    compare,
    eligibility_changes,
    parse_spec,
    predict,
    read_survey,
    write_report,
)
from targeting.features import (
    FEATURE_DEFINITION_VERSION,
    FEATURES,
    ExtraFeature,
    FeatureInputError,
    compute_features,
    household_profile,
)

log = logging.getLogger(__name__)

#: Called as ``hook(model, actor)`` after a model became active, in the same transaction.
ACTIVATION_HOOKS: list[Callable[[PmtModel, User | None], None]] = []

#: Folder under the instance folder that holds one report folder per model id.
REPORTS_DIRNAME = "pmt_reports"
#: Files of a report folder that may be served to users (anything else stays private).
SERVABLE_REPORT_SUFFIXES = (".png", ".json", ".html", ".csv")
#: Coverage labels of the headline table (the spec's coverages give "10%", "20%", ...).
HEADLINE_COVERAGES = ("poverty_rate", "20%", "30%")
#: Households fetched per query when applying models to the registry.
DEFAULT_CHUNK_SIZE = 20_000
#: Key of the PostgreSQL advisory lock that serialises activations (any constant; "PMTA").
_ACTIVATION_LOCK_KEY = 0x504D5441
#: Columns that may still change once a model left the draft state (the lifecycle itself).
_LIFECYCLE_COLUMNS = frozenset(
    {"status", "published_by_id", "published_at", "activated_by_id", "activated_at", "retired_at"}
)

#: The demo model: urban/rural scorecards, WLS published, quantile regression beside it.
DEMO_SPEC = {
    "strata": "urban_rural",
    "poverty_rate": 0.2,
    "methods": ["wls", "quantile"],
    "folds": 5,
}


class ModelStateError(ValueError):
    """The model is not in a state that allows this (e.g. publishing an active model)."""


class ModelNotFound(LookupError):
    def __init__(self, model_id):
        super().__init__(f"no PMT model {model_id}")


class ReportFileNotFound(LookupError):
    """The report file does not exist or may not be served (the message never echoes a path)."""


# --------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------


def create_model(
    result: CalibrationResult,
    *,
    name: str,
    method: str,
    actor: User | None,
    description: str | None = None,
    report_path: str | None = None,
    survey_filename: str | None = None,
) -> PmtModel:
    """Store a calibration result as a draft model version (flushed)."""
    if actor is not None:
        require_role(actor, "statistician")
    if method not in PUBLISHABLE_METHODS:
        raise ModelStateError(
            f"method {method!r} cannot be published as a scorecard (choose one of {', '.join(PUBLISHABLE_METHODS)})"
        )
    if method not in result.coefficients:
        raise ModelStateError(f"method {method!r} was not fitted in this calibration")
    payload = result.to_dict()
    model = PmtModel(
        name=name,
        description=description,
        status="draft",
        method=method,
        spec=payload["spec"],
        strata_variables=list(payload["spec"]["strata"]),
        coefficients=payload["coefficients"],
        poverty_lines=payload["poverty_lines"],
        extra_levels=payload.get("extra_levels") or {},
        feature_definition_version=payload["feature_definition_version"],
        training_data_hash=payload["training_data_hash"],
        library_versions=payload["library_versions"],
        report={
            k: payload[k]
            for k in (
                "metrics",
                "method_info",
                "warnings",
                "notes",
                "dropped_features",
                "strata",
                "features",
                "feature_descriptions",
            )
        },
        report_path=report_path,
        n_households=payload["n_households"],
        survey_filename=survey_filename,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(model)
    db.session.flush()
    record_event(
        actor,
        "pmt_model.create",
        "pmt_model",
        model.id,
        summary=f"calibrated draft model {model.id} {name!r} ({method}, {model.n_households} survey households)",
        after={"training_data_hash": model.training_data_hash, "method": method},
    )
    return model


def get_model(model_id: int) -> PmtModel:
    """The model version with this id, or :class:`ModelNotFound`."""
    model = db.session.get(PmtModel, model_id)
    if model is None:
        raise ModelNotFound(model_id)
    return model


def list_models(*, include_drafts: bool = True) -> list[PmtModel]:
    """Model versions, newest first (drafts only when ``include_drafts``)."""
    stmt = select(PmtModel).order_by(PmtModel.id.desc())
    if not include_drafts:
        stmt = stmt.where(PmtModel.status != "draft")
    return list(db.session.scalars(stmt))


def get_active_model() -> PmtModel | None:
    """The one active model, or None before any model was activated."""
    return db.session.scalar(select(PmtModel).where(PmtModel.status == "active"))


def publish_model(model: PmtModel, actor: User) -> PmtModel:
    """Publish a draft: a different statistician from the one who fitted it; immutable afterwards."""
    require_role(actor, "statistician")
    if model.status != "draft":
        raise ModelStateError(f"model {model.id} is {model.status}; only a draft can be published")
    if model.created_by_id is not None and model.created_by_id == actor.id:
        raise AccessDenied("four eyes: a model must be published by a statistician other than the one who fitted it")
    model.status = "published"
    model.published_by_id = actor.id
    model.published_at = utcnow()
    db.session.flush()
    record_event(actor, "pmt_model.publish", "pmt_model", model.id, summary=f"published model {model.id}")
    return model


def activate_model(model: PmtModel, actor: User) -> PmtModel:
    """Make a published (or retired) model the active one; the previous active model retires."""
    require_role(actor, "statistician")
    _serialise_activations()
    # Re-read the status after taking the lock: another activation may have just committed.
    db.session.refresh(model, ["status"])
    if model.status not in ("published", "retired"):
        raise ModelStateError(f"model {model.id} is {model.status}; only a published model can be activated")
    previous = db.session.scalar(select(PmtModel).where(PmtModel.status == "active").with_for_update())
    if previous is not None:
        previous.status = "retired"
        previous.retired_at = utcnow()
        # The partial unique index allows one active row: retire first, then activate.
        db.session.flush()
    model.status = "active"
    model.activated_by_id = actor.id
    model.activated_at = utcnow()
    db.session.flush()
    record_event(
        actor,
        "pmt_model.activate",
        "pmt_model",
        model.id,
        summary=f"activated model {model.id}" + (f" (model {previous.id} retired)" if previous else ""),
        before={"active_model": previous.id if previous else None},
        after={"active_model": model.id},
    )
    for hook in ACTIVATION_HOOKS:
        hook(model, actor)
    return model


def _serialise_activations() -> None:
    """Take a transaction-scoped lock that every activation takes first (PostgreSQL).

    ``SELECT … FOR UPDATE`` on the active row is not enough on its own: with no active model
    there is no row to lock, and a second activation waiting on that row finds it retired
    once it gets it and would then collide with the new active model on the one-active index.
    An advisory lock makes concurrent activations run one after the other, each retiring
    its predecessor. SQLite already serialises writers (``BEGIN IMMEDIATE``).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK_KEY})


@event.listens_for(PmtModel, "before_update")
def _refuse_changes_after_draft(mapper, connection, target: PmtModel) -> None:
    """Published, active and retired models are immutable: only their lifecycle columns move.

    There is no update path for them in the services; this guard catches any code that
    would change a stored scorecard, spec or report in place after publication.
    """
    state = inspect(target)
    status_history = state.attrs.status.history
    previous_status = status_history.deleted[0] if status_history.deleted else target.status
    if previous_status == "draft":
        return
    changed = [
        attr.key
        for attr in state.attrs
        if attr.key not in _LIFECYCLE_COLUMNS and attr.key in mapper.columns and attr.history.has_changes()
    ]
    if changed:
        raise ModelStateError(
            f"model {target.id} is {previous_status}; published models are immutable ({', '.join(sorted(changed))} "
            "may not change)"
        )


# --------------------------------------------------------------------------------------
# Fitting from files and storing with a report folder
# --------------------------------------------------------------------------------------


def default_members_path(households_csv: str | Path) -> Path | None:
    """``<stem>_members.csv`` beside the households file, when it exists (``survey.csv`` → ``survey_members.csv``)."""
    path = Path(households_csv)
    candidate = path.with_name(f"{path.stem}_members{path.suffix or '.csv'}")
    return candidate if candidate.is_file() else None


def calibrate_files(
    households_csv: str | Path,
    members_csv: str | Path | None,
    spec,
    *,
    step: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Read a survey (households CSV and optional members CSV) and calibrate it as ``spec`` says.

    ``spec`` is a mapping or a parsed spec. ``step(message)`` is told what is happening
    (the maths exposes no finer progress). Raises :class:`SpecError` (or its subclass
    ``DataError``) naming the key, column or rows at fault; a numerical failure inside a
    method is turned into a ``SpecError`` too, so that callers show one clear message.
    """
    step = step or (lambda message: None)
    parsed = parse_spec(spec)
    step("reading the survey")
    households, members = read_survey(households_csv, members_csv)
    step(
        f"fitting {', '.join(parsed.methods)} on {len(households):,} survey households ({parsed.folds}-fold validation)"
    )
    try:
        return calibrate(households, members, parsed)
    except SpecError:
        raise
    except (FeatureInputError, np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        # Deterministic for this data and spec: retrying cannot help, the statistician must act.
        log.warning("calibration failed: %s", exc, exc_info=True)
        raise SpecError(
            f"calibration failed: {type(exc).__name__}: {exc} (try fewer features, other strata or without this method)"
        ) from exc


def write_report_folder(result: CalibrationResult, out_dir: str | Path) -> Path:
    """Write the calibration report into ``out_dir`` (report.json, report.html, scorecard CSVs, PNG plots).

    A thin wrapper of :func:`targeting.calibration.write_report` that returns the folder, so
    that the CLI and :func:`store_calibration` share one call.
    """
    out = Path(out_dir)
    write_report(result, out)
    return out


def reports_folder(instance_path: str | Path) -> Path:
    """Where report folders live: ``<instance>/pmt_reports``."""
    return Path(instance_path) / REPORTS_DIRNAME


def store_calibration(
    result: CalibrationResult,
    *,
    name: str,
    method: str | None,
    actor: User | None,
    instance_path: str | Path | None,
    description: str | None = None,
    survey_filename: str | None = None,
    report_source: str | Path | None = None,
) -> PmtModel:
    """Store a calibration as a draft model with its report folder ``<instance>/pmt_reports/<id>``.

    The report is written (or ``report_source``, a folder already written by
    :func:`write_report`, is copied) into a temporary folder first, so that a failing report
    leaves no model behind; the folder then takes the model's id. ``method`` defaults to the
    first publishable method of the spec. Flushes; the caller commits.
    """
    method = method or default_method(result)
    if instance_path is None:
        return create_model(
            result, name=name, method=method, actor=actor, description=description, survey_filename=survey_filename
        )
    root = reports_folder(instance_path)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uuid.uuid4().hex}"
    try:
        if report_source is not None:
            shutil.copytree(report_source, staging)
        else:
            write_report_folder(result, staging)
        model = create_model(
            result, name=name, method=method, actor=actor, description=description, survey_filename=survey_filename
        )
        final = root / str(model.id)
        if final.exists():
            # Left by a transaction that was rolled back after writing (ids may be reused on SQLite).
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    model.report_path = f"{REPORTS_DIRNAME}/{model.id}"
    db.session.flush()
    return model


def default_method(result: CalibrationResult | PmtModel) -> str:
    """The first publishable method that was fitted (the spec's order)."""
    fitted = result.coefficients
    methods = result.spec.get("methods", []) if isinstance(result.spec, dict) else []
    for method in list(methods) + list(PUBLISHABLE_METHODS):
        if method in fitted:
            return method
    raise ModelStateError("no publishable method (wls, stepwise, lasso, quantile) was fitted")


def calibrate_demo_model(
    survey_households_csv: str | Path,
    survey_members_csv: str | Path | None,
    actor_fitter: User,
    actor_publisher: User,
    *,
    instance_path: str | Path | None = None,
    spec: dict | None = None,
    name: str = "Demo model (synthetic survey)",
) -> PmtModel:
    """Fit, publish and activate a model on the synthetic survey (``socreg demo``); flushes.

    Uses :data:`DEMO_SPEC` (WLS with quantile regression beside it, urban/rural strata,
    poverty rate 20%): a few seconds on 5,000 survey households. Pass ``instance_path`` to
    write the report folder so that the report page shows its plots.
    """
    spec = spec or DEMO_SPEC
    try:
        result = calibrate_files(survey_households_csv, survey_members_csv, spec)
    except SpecError as exc:
        if list(parse_spec(spec).methods) == ["wls"]:
            raise
        # A benchmark method failing numerically must not leave the demo without a model.
        log.warning("demo calibration with %s failed (%s); fitting wls only", ", ".join(spec["methods"]), exc)
        result = calibrate_files(survey_households_csv, survey_members_csv, {**spec, "methods": ["wls"]})
    model = store_calibration(
        result,
        name=name,
        method="wls",
        actor=actor_fitter,
        instance_path=instance_path,
        description="Fitted by socreg demo on the seeded synthetic survey.",
        survey_filename=Path(survey_households_csv).name,
    )
    publish_model(model, actor_publisher)
    return activate_model(model, actor_publisher)


# --------------------------------------------------------------------------------------
# Reading stored models: views, headline metrics, scorecards, report files
# --------------------------------------------------------------------------------------


def headline_metrics(model_or_metrics: PmtModel | dict, coverages: Sequence[str] = HEADLINE_COVERAGES) -> list[dict]:
    """One row per fitted method: out-of-sample figures with the in-sample ones beside them.

    Rows hold ``method``, ``r2`` / ``spearman`` / ``bias`` as ``{"oos", "in"}`` and
    ``targeting[label]`` = ``{"coverage", "exclusion_error", "inclusion_error"}`` (each
    ``{"oos", "in"}``) for the labels among ``coverages`` that the calibration measured.
    """
    metrics = model_or_metrics.report["metrics"] if isinstance(model_or_metrics, PmtModel) else model_or_metrics
    rows = []
    for method, pair in metrics.items():
        oos, ins = pair["out_of_sample"]["overall"], pair["in_sample"]["overall"]
        row = {"method": method}
        for key in ("r2", "spearman", "bias"):
            row[key] = {"oos": oos.get(key), "in": ins.get(key)}
        row["targeting"] = {}
        for label in coverages:
            if label not in oos.get("targeting", {}):
                continue
            t_oos, t_in = oos["targeting"][label], ins["targeting"][label]
            row["targeting"][label] = {
                key: {"oos": t_oos.get(key), "in": t_in.get(key)}
                for key in ("coverage", "exclusion_error", "inclusion_error")
            }
        rows.append(row)
    return rows


def _username(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    return user.username if user is not None else None


def model_view(model: PmtModel) -> dict:
    """A model version for the API and pages: lifecycle, provenance and headline figures (no survey data)."""
    return {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "status": model.status,
        "method": model.method,
        "methods": sorted(model.coefficients),
        "fitted_methods": sorted(model.report.get("metrics", {})),
        "strata_variables": list(model.strata_variables),
        "strata": sorted(model.coefficients.get(model.method, {})),
        "poverty_lines": model.poverty_lines,
        "feature_definition_version": model.feature_definition_version,
        "training_data_hash": model.training_data_hash,
        "library_versions": model.library_versions,
        "n_households": model.n_households,
        "survey_filename": model.survey_filename,
        "spec": model.spec,
        "warnings": model.report.get("warnings", []),
        "created_by": _username(model.created_by_id),
        "created_at": model.created_at,
        "published_by": _username(model.published_by_id),
        "published_at": model.published_at,
        "activated_by": _username(model.activated_by_id),
        "activated_at": model.activated_at,
        "retired_at": model.retired_at,
        "has_report_files": model.report_path is not None,
        "headline": headline_metrics(model),
    }


def scorecard(model: PmtModel, method: str | None = None) -> list[dict]:
    """The scorecard of a stored model: one row per (stratum, intercept or feature).

    The same rows as :func:`targeting.calibration.scorecard_rows` gives for a fresh
    calibration, rebuilt from the stored coefficients: ``stratum``, ``feature``,
    ``coefficient`` and ``description``. Prediction = constant + sum(coefficient x feature).
    """
    method = method or model.method
    if method not in model.coefficients:
        known = ", ".join(sorted(model.coefficients))
        raise ModelStateError(f"model {model.id} has no scorecard for method {method!r} (scorecards: {known})")
    descriptions = model.report.get("feature_descriptions", {})
    rows = []
    for stratum, entry in model.coefficients[method].items():
        how = "pooled model with stratum intercept" if entry.get("estimation") == "pooled" else "stratum model"
        rows.append(
            {
                "stratum": stratum,
                "feature": "(intercept)",
                "coefficient": entry["intercept"],
                "description": f"constant ({how}); prediction = constant + sum(coefficient x feature)",
            }
        )
        for name, b in entry["coefficients"].items():
            rows.append(
                {"stratum": stratum, "feature": name, "coefficient": b, "description": descriptions.get(name, "")}
            )
    return rows


def scorecard_csv(model: PmtModel, method: str | None = None) -> str:
    """The scorecard as CSV text, coefficients written in full (round-trip) precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model_id", "method", "stratum", "feature", "coefficient", "description"])
    method = method or model.method
    for row in scorecard(model, method):
        writer.writerow(
            [model.id, method, row["stratum"], row["feature"], repr(float(row["coefficient"])), row["description"]]
        )
    return buffer.getvalue()


def scorecard_document(model: PmtModel, method: str | None = None) -> dict:
    """The scorecard as a JSON document with what is needed to apply it by hand."""
    method = method or model.method
    return {
        "model_id": model.id,
        "model_name": model.name,
        "status": model.status,
        "method": method,
        "strata_variables": list(model.strata_variables),
        "poverty_lines": model.poverty_lines,
        "feature_definition_version": model.feature_definition_version,
        "training_data_hash": model.training_data_hash,
        "outcome": "log per-capita consumption (Tk per person per month)",
        "rows": scorecard(model, method),
    }


def report_document(model: PmtModel) -> dict:
    """The stored validation report with the model's provenance (what ``…/report`` returns)."""
    return {
        "model_id": model.id,
        "status": model.status,
        "method": model.method,
        "spec": model.spec,
        "training_data_hash": model.training_data_hash,
        "feature_definition_version": model.feature_definition_version,
        "library_versions": model.library_versions,
        "poverty_lines": model.poverty_lines,
        "n_households": model.n_households,
        "coefficients": model.coefficients,
        "headline": headline_metrics(model),
        **model.report,
    }


def report_dir(model: PmtModel, instance_path: str | Path) -> Path | None:
    """The model's report folder, or None when it has none (e.g. stored without files)."""
    if not model.report_path:
        return None
    folder = (Path(instance_path) / model.report_path).resolve()
    root = reports_folder(instance_path).resolve()
    if folder.parent != root or not folder.is_dir():
        return None
    return folder


def list_report_files(model: PmtModel, instance_path: str | Path, suffix: str = ".png") -> list[str]:
    """Names of the report folder's files with ``suffix`` (sorted), e.g. its plots."""
    folder = report_dir(model, instance_path)
    if folder is None:
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix)


def report_file(model: PmtModel, instance_path: str | Path, filename: str) -> Path:
    """A file of the model's report folder, refusing anything but a plain file name listed there.

    Only names found by listing the folder are accepted (never a path built from the request),
    so ``../`` tricks and symlinks out of the folder cannot reach other files.
    """
    folder = report_dir(model, instance_path)
    if folder is None or "/" in filename or "\\" in filename or filename.startswith("."):
        raise ReportFileNotFound(f"model {model.id} has no report file {filename!r}")
    if Path(filename).suffix.lower() not in SERVABLE_REPORT_SUFFIXES:
        raise ReportFileNotFound(f"model {model.id} has no report file {filename!r}")
    for entry in folder.iterdir():
        if entry.name == filename and entry.is_file() and entry.resolve().parent == folder:
            return entry
    raise ReportFileNotFound(f"model {model.id} has no report file {filename!r}")


# --------------------------------------------------------------------------------------
# Applying stored models to the registry, and comparing two models
# --------------------------------------------------------------------------------------

#: Household fields every profile needs (ids, area, the interview date that ages are taken at).
_BASE_HOUSEHOLD_FIELDS = ("household_id", "union_code", "area_type", "interview_date")
#: Member fields the member aggregates read: never names, ID or phone numbers (no personal data is fetched).
_MEMBER_FIELDS = tuple(
    f
    for f in MEMBER_FIELD_NAMES
    if f
    in (
        "line_no",
        "age_years",
        "date_of_birth",
        "sex",
        "relation_to_head",
        "marital_status",
        "education_level",
        "currently_enrolled",
        "occupation",
        "pregnant_or_lactating",
    )
    or f.startswith("disability_")
)


def _household_fields(cards: Sequence[_Scorecard]) -> tuple[str, ...]:
    """The household columns the scorecards' features, extra features and strata read."""
    wanted = set(_BASE_HOUSEHOLD_FIELDS)
    for card in cards:
        wanted.update(column for name in card.features for column in FEATURES[name].inputs)
        wanted.update(e.column for e in card.extra)
        wanted.update(card.strata_variables)
    return tuple(f for f in HOUSEHOLD_FIELD_NAMES if f in wanted)


@dataclass(frozen=True)
class _Scorecard:
    """What applying one stored model needs: its scorecard, strata, features and extra features."""

    model_id: int
    coefficients: dict
    strata_variables: tuple[str, ...]
    features: tuple[str, ...]
    extra: tuple[ExtraFeature, ...]


def _scorecard_of(model: PmtModel) -> _Scorecard:
    if model.feature_definition_version != FEATURE_DEFINITION_VERSION:
        raise ModelStateError(
            f"model {model.id} was fitted with feature definitions v{model.feature_definition_version}; this "
            f"registry computes v{FEATURE_DEFINITION_VERSION}, so the model cannot score registry households"
        )
    coefficients = model.coefficients[model.method]
    used: list[str] = []
    for entry in coefficients.values():
        used += [name for name in entry["coefficients"] if name not in used]
    extra = []
    for item in model.spec.get("extra_features", []):
        levels = tuple(model.extra_levels.get(item["column"], ()))
        extra.append(ExtraFeature(item["column"], item.get("transform", "identity"), levels))
    registry_features = tuple(name for name in used if name in FEATURES)
    return _Scorecard(model.id, coefficients, tuple(model.strata_variables), registry_features, tuple(extra))


def registry_predictions(
    models: PmtModel | Sequence[PmtModel],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    scope_clause=None,
) -> pd.DataFrame:
    """Predicted log per-capita consumption of every current (active) registry household.

    Streams households and their members from the database in chunks of ``chunk_size``
    (keyset pagination on the internal id, so memory stays flat), builds features with the
    same functions as calibration (:func:`~targeting.features.household_profile`,
    :func:`~targeting.features.compute_features`), assigns strata and applies each model's
    published scorecard. ``scope_clause`` (from :func:`registry.access.household_scope_clause`)
    limits the households. Returns a frame indexed by ``household_pk`` with ``household_id``,
    ``household_size`` and one column ``model_<id>`` per model (NaN where a household cannot
    be scored, e.g. a missing feature value). A model whose scorecard needs a survey-only
    column raises :class:`ModelStateError` naming it.
    """
    models = [models] if isinstance(models, PmtModel) else list(models)
    models = list({m.id: m for m in models}.values())  # comparing a model with itself: one column
    cards = [_scorecard_of(m) for m in models]
    names = sorted({name for card in cards for name in card.features})
    fields = _household_fields(cards)
    chunks = []
    last_pk = None
    # Core rather than ORM execution, and frames built column by column: building frames from
    # Row objects row by row cost more than the queries themselves.
    connection = db.session.connection()
    while True:
        stmt = (
            select(Household.id, *(getattr(Household, f) for f in fields))
            .where(Household.status == "active")
            .order_by(Household.id)
            .limit(chunk_size)
        )
        if last_pk is not None:
            stmt = stmt.where(Household.id > last_pk)
        if scope_clause is not None:
            stmt = stmt.where(scope_clause)
        households = _frame(connection.execute(stmt).all(), ["household_pk", *fields])
        if households.empty:
            break
        pks = households["household_pk"].to_numpy(dtype="int64")
        last_pk = int(pks[-1])
        # Members by key range (the households index serves it); the chunk's own filter
        # (status, scope) is applied by keeping the members of the households just read.
        member_stmt = (
            select(Member.household_pk, *(getattr(Member, f) for f in _MEMBER_FIELDS))
            .where(Member.household_pk.between(int(pks[0]), last_pk))
            .order_by(Member.household_pk, Member.line_no)
        )
        members = _frame(connection.execute(member_stmt).all(), ["household_pk", *_MEMBER_FIELDS])
        members = members[members["household_pk"].isin(pks)]
        ids = pd.Series(households["household_id"].to_numpy(), index=pks)
        members.insert(0, "household_id", ids.reindex(members["household_pk"].to_numpy()).to_numpy())
        chunks.append(_predict_chunk(households, members.drop(columns=["household_pk"]), cards, names))
        if len(households) < chunk_size:
            break
    columns = ["household_id", "household_size", *(f"model_{c.model_id}" for c in cards)]
    if not chunks:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="household_pk"))
    return pd.concat(chunks)


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    """A frame from result rows, built column-wise (object columns; features convert them)."""
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    transposed = zip(*rows, strict=True)
    return pd.DataFrame({name: np.array(col, dtype=object) for name, col in zip(columns, transposed, strict=True)})


def _predict_chunk(
    households: pd.DataFrame, members: pd.DataFrame, cards: list[_Scorecard], names: list[str]
) -> pd.DataFrame:
    pks = households["household_pk"].to_numpy()
    profile = household_profile(households.drop(columns=["household_pk"]), members)
    out = pd.DataFrame(
        {"household_id": profile.index.to_numpy(), "household_size": profile["household_size"].to_numpy()},
        index=pd.Index(pks, name="household_pk"),
    )
    features = compute_features(profile, names)
    for card in cards:
        frame = features
        if card.extra:
            lacking = [e.column for e in card.extra if e.column not in profile.columns]
            if lacking:
                raise ModelStateError(
                    f"model {card.model_id} uses survey column {lacking[0]!r} as a feature; "
                    "registry households do not have it, so the model cannot score them"
                )
            frame = pd.concat([features, compute_features(profile, [], card.extra)], axis=1)
        strata = assign_strata(profile, card.strata_variables)
        known = strata.isin(list(card.coefficients)).to_numpy()
        predicted = np.full(len(profile), np.nan)
        if known.any():
            predicted[known] = predict(card.coefficients, frame[known], strata[known]).to_numpy()
        out[f"model_{card.model_id}"] = predicted
    return out


def compare_models(
    a: PmtModel,
    b: PmtModel,
    *,
    coverage: float = 0.2,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    scope_clause=None,
    with_registry: bool = True,
) -> dict:
    """Two models side by side (a = current, b = candidate).

    ``metrics``: the published scorecards' overall figures (out of sample and in sample,
    from each model's own validation), with b - a; ``coefficients``: per stratum and
    feature, a feature absent from a scorecard counting as 0; ``eligibility``: how many
    current registry households the poorest-``coverage`` selection (population coverage:
    households weighted by their size) would move in or out when b replaces a, with the
    households neither model could score counted apart.
    """
    if not 0 < coverage < 1:
        raise SpecError(f"coverage must be strictly between 0 and 1, got {coverage!r}")

    def overall(model: PmtModel) -> dict:
        pair = model.report["metrics"].get(model.method, {})
        return {sample: pair[sample]["overall"] for sample in ("out_of_sample", "in_sample") if sample in pair}

    side_by_side = compare(
        overall(a), {"scorecard": a.coefficients[a.method]}, overall(b), {"scorecard": b.coefficients[b.method]}
    )
    for row in side_by_side["coefficients"]:
        row.pop("method", None)
    result = {
        "a": _compare_summary(a),
        "b": _compare_summary(b),
        "metrics": side_by_side["metrics"],
        "coefficients": side_by_side["coefficients"],
        "eligibility": None,
    }
    if with_registry:
        result["eligibility"] = registry_eligibility_changes(
            a, b, coverage=coverage, chunk_size=chunk_size, scope_clause=scope_clause
        )
    return result


def _compare_summary(model: PmtModel) -> dict:
    return {
        "id": model.id,
        "name": model.name,
        "status": model.status,
        "method": model.method,
        "strata_variables": list(model.strata_variables),
        "n_households": model.n_households,
        "training_data_hash": model.training_data_hash,
    }


def registry_eligibility_changes(
    a: PmtModel, b: PmtModel, *, coverage: float, chunk_size: int = DEFAULT_CHUNK_SIZE, scope_clause=None
) -> dict:
    """How many registry households enter or leave the poorest-``coverage`` selection from a to b."""
    try:
        predictions = registry_predictions([a, b], chunk_size, scope_clause=scope_clause)
    except (ModelStateError, ValueError, FeatureInputError) as exc:
        return {"available": False, "reason": str(exc), "coverage": coverage}
    pred_a = predictions[f"model_{a.id}"].to_numpy(dtype="float64")
    pred_b = predictions[f"model_{b.id}"].to_numpy(dtype="float64")
    size = predictions["household_size"].to_numpy(dtype="float64")
    usable = ~(np.isnan(pred_a) | np.isnan(pred_b) | np.isnan(size) | (size <= 0))
    out = {
        "available": True,
        "coverage": coverage,
        "registry_households": int(len(predictions)),
        "not_scorable": int((~usable).sum()),
        "weights": "household size (population coverage)",
    }
    if usable.sum() < 2:
        out.update({"available": False, "reason": "fewer than two registry households can be scored by both models"})
        return out
    out.update(eligibility_changes(pred_a[usable], pred_b[usable], coverage, weights=size[usable]))
    return out


def spec_from_text(text_value: str, filename: str | None = None) -> dict:
    """Parse a spec given as text (JSON, or YAML for ``.yml``/``.yaml`` files or when JSON fails)."""
    import yaml

    name = (filename or "").lower()
    try:
        if name.endswith((".yml", ".yaml")):
            raw = yaml.safe_load(text_value)
        else:
            try:
                raw = json.loads(text_value)
            except json.JSONDecodeError:
                raw = yaml.safe_load(text_value)
    except yaml.YAMLError as exc:
        raise SpecError(f"{filename or 'spec'}: cannot parse the spec as JSON or YAML: {exc}") from exc
    if raw is None:
        raw = {}
    return parse_spec(raw).to_dict()
