"""Benchmark of eligibility lists: preview, build, summary, export and diff on a scored registry.

    SOCREG_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python bench/list_bench.py --households 1000000 [--data-dir DIR] [--database-url URL]

Without ``--database-url`` it creates a fresh database (on the PostgreSQL server of
``SOCREG_DATABASE_URL``, dropped afterwards; otherwise an SQLite file), generates N synthetic
households and a 5,000-household survey (``registry.synth``; reused from ``--data-dir``), imports
them (``registry.importer``), calibrates and activates the demo model and scores the registry with
it (``targeting.scoring``). Those set-up steps are timed but are not the figures of this benchmark.
With ``--database-url`` it uses a database that is already loaded and scored (the set-up is skipped).

Then it times, each the median of ``--repeat`` runs, the issue's programme: "the poorest 20% within
each upazila AND (a member aged 65+ OR a member with a disability), at most 300 per union", and
prints the peak memory of this process during a build (peak RSS, reset before each build through
``/proc/self/clear_refs``; the database server's memory is not included). :func:`bench_lists` is
the part ``bench/targeting_bench.py`` can call on its own scored registry.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

PROGRAMME = {
    "name": "Benchmark allowance",
    "ministry": "Ministry of Social Welfare",
    "description": "poorest 20% within each upazila AND (a member aged 65+ OR a member with a disability), "
    "at most 300 per union",
    "targeting": {"method": "poorest", "percent": 20, "level": "upazila"},
    "criteria": {"any": [{"member": {"age_years": {"gte": 65}}}, {"member": {"disability": True}}]},
    "quotas": {"level": "union", "per_area": 300},
}
TARGET_BUILD_SECONDS = 3.0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(label: str, runs: list[float], echo) -> float:
    value = statistics.median(runs)
    echo(f"{label}: {value:.2f} s (median of {len(runs)}: {', '.join(f'{r:.2f}' for r in runs)})")
    return value


def bench_lists(repeat: int = 3, echo: Callable[[str], None] = print) -> dict:
    """Time preview, build, summary, export and diff of :data:`PROGRAMME` (inside an app context, on a
    scored registry; commits its programme and lists, which stay as the benchmark's evidence)."""
    from sqlalchemy import func, select

    from models import Household, db
    from models.programme import Programme
    from targeting import eligibility as el

    run = el.get_current_run()
    if run is None:
        raise SystemExit("no complete score run of the active model: score the registry first")
    total = db.session.scalar(select(func.count()).select_from(Household))
    echo(f"registry: {total:,} households; model {run.model_id}, score run {run.id}")
    programme = db.session.scalar(select(Programme).where(Programme.name == PROGRAMME["name"]))
    if programme is None:
        programme = el.create_programme(PROGRAMME, None)
        db.session.commit()
    figures: dict = {}

    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        preview = el.preview(programme, None)
        runs.append(time.perf_counter() - started)
        db.session.rollback()
    figures["preview_s"] = _median("preview (funnel + selected count)", runs, echo)
    echo(f"  funnel: {preview['funnel']}")

    runs, peaks, lists = [], [], []
    can_reset = _reset_peak_rss()
    for _ in range(repeat):
        _reset_peak_rss()
        started = time.perf_counter()
        lst = el.build_list(programme, None)
        db.session.commit()
        runs.append(time.perf_counter() - started)
        peaks.append(_peak_rss_mib())
        lists.append(lst)
    # Python allocations are traced in one more build, untimed: tracing slows every allocation.
    tracemalloc.start()
    lists.append(el.build_list(programme, None))
    db.session.commit()
    python_peak = tracemalloc.get_traced_memory()[1] / 1024**2
    tracemalloc.stop()
    figures["build_s"] = _median(
        "list build (counts, one parallel SELECT into a temporary table, INSERT of the entries, hash; commit)",
        runs,
        echo,
    )
    echo(
        f"  {lists[-1].n_entries:,} entries; funnel {lists[-1].funnel}; "
        f"target ≤ {TARGET_BUILD_SECONDS:.0f} s: {'met' if figures['build_s'] <= TARGET_BUILD_SECONDS else 'NOT met'}"
    )
    figures["build_peak_rss_mib"] = max(peaks)
    echo(
        f"  peak memory during a build: {max(peaks):,.0f} MiB RSS"
        + ("" if can_reset else " (process peak: /proc/self/clear_refs unavailable)")
        + f", {python_peak:,.1f} MiB Python allocations (tracemalloc, in an extra untimed build)"
    )
    hashes = {lst.entries_hash for lst in lists}
    echo(
        f"  reproducible: {'yes' if len(hashes) == 1 else 'NO'} "
        f"({len(lists)} builds, entries hash {lists[0].entries_hash[:12]}…)"
    )
    figures["reproducible"] = len(hashes) == 1

    lst = lists[-1]
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        el.list_summary(lst, None)
        runs.append(time.perf_counter() - started)
    figures["summary_s"] = _median("summary (areas, head sex, urban/rural, exclusion error)", runs, echo)

    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        size = sum(len(chunk) for chunk in el.csv_chunks(el.export_list(lst, None, "csv")))
        db.session.rollback()
        runs.append(time.perf_counter() - started)
    figures["export_csv_s"] = _median(f"CSV export ({size / 1024**2:,.1f} MiB, full personal data)", runs, echo)

    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        diff = el.diff_lists(lists[0], lst, None)
        runs.append(time.perf_counter() - started)
    figures["diff_s"] = _median(f"diff of two identical lists ({diff['counts']})", runs, echo)

    started = time.perf_counter()
    verified = el.verify_list(lists[0])
    echo(f"verify (rebuild without writing): {time.perf_counter() - started:.2f} s, identical: {verified['identical']}")
    db.session.rollback()
    return figures


def _fresh_database(server_url: str | None, tmp: Path) -> tuple[str, Callable[[], None]]:
    from config import normalise_database_url

    if not server_url or not server_url.startswith(("postgresql", "postgres")):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None
    url = make_url(normalise_database_url(server_url))
    name = f"socreg_listbench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _load_and_score(args, data_dir: Path) -> None:
    from flask_migrate import upgrade

    from models import ScoreRun, db
    from registry.geo import load_geography
    from registry.importer import import_files
    from registry.synth import generate
    from registry.users import create_user
    from targeting import pmt_models, scoring

    upgrade()
    load_geography()
    db.session.commit()
    households_csv, members_csv = data_dir / "households.csv", data_dir / "members.csv"
    survey_csv, survey_members_csv = data_dir / "survey.csv", data_dir / "survey_members.csv"
    if not households_csv.exists() or not survey_csv.exists():
        started = time.perf_counter()
        generate(data_dir, households=args.households, seed=args.seed, survey_households=5000)
        print(f"set-up: generated the data in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    result = import_files(households_csv, members_csv, actor=None, source_ref="list-bench")
    if result.rejected:
        raise SystemExit(f"import rejected: {result.issues_by_rule}")
    db.session.commit()
    print(f"set-up: imported {result.households_imported:,} households in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    fitter = create_user(f"fit-{uuid.uuid4().hex[:6]}", "statistician", "bench password 123")
    publisher = create_user(f"pub-{uuid.uuid4().hex[:6]}", "statistician", "bench password 123")
    model = pmt_models.calibrate_demo_model(survey_csv, survey_members_csv, fitter, publisher)
    db.session.commit()
    run = db.session.scalar(
        sa.select(ScoreRun).where(ScoreRun.model_id == model.id, ScoreRun.status == "running")
    ) or scoring.create_score_run(model, with_job=False)
    scoring.execute_score_run(run)
    db.session.commit()
    print(f"set-up: calibrated and scored the registry in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse (or keep) the generated files here")
    parser.add_argument("--database-url", default=None, help="an already loaded and scored database (no set-up)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the database made for the run")
    args = parser.parse_args(argv)

    from web.app import create_app

    with tempfile.TemporaryDirectory(prefix="socreg-listbench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("SOCREG_INSTANCE_PATH", str(tmp / "instance"))
        if args.database_url:
            url, drop = args.database_url, (lambda: None)
        else:
            url, drop = _fresh_database(os.environ.get("SOCREG_DATABASE_URL"), tmp)
            if args.keep_database:
                print(f"keeping the database: {make_url(url).render_as_string()}")
                drop = lambda: None  # noqa: E731
        try:
            app = create_app("development", SQLALCHEMY_DATABASE_URI=url)
            print(
                f"database: {make_url(url).get_backend_name()}; machine: {os.cpu_count()} cores, "
                f"python {sys.version.split()[0]}"
            )
            with app.app_context():
                if not args.database_url:
                    _load_and_score(args, args.data_dir or tmp / "data")
                bench_lists(args.repeat)
                from models import db

                db.engine.dispose()
        finally:
            drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
