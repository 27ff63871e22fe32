"""Benchmark of targeting at national scale: full re-score of the registry (then list builds).

    python bench/targeting_bench.py                    # 1,000,000 households on PostgreSQL, median of 3
    python bench/targeting_bench.py --households 100000 --repeat 1 --data-dir /tmp/bench-data --keep

Needs a PostgreSQL server: ``--database-url`` or ``SOCREG_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/socreg_targeting_bench``). The database named there is
created fresh and loaded, unless ``--reuse`` finds it already holding the requested number of
households and an active model (loading a million households takes minutes; it is never timed).

Set-up: seeded synthetic households and a calibration survey (``registry.synth``), imported with
``registry.importer.import_files`` exactly as ``socreg import`` does (or, with ``--loader copy``,
COPYed straight into the current-state tables, which is all scoring reads); a WLS scorecard (urban/rural
strata, every registry feature) calibrated on the survey, published and activated (activation
queues the first full re-score, which runs as a warm-up). Sections, each a function called by
:func:`main`:

* :func:`bench_rescore`: full re-score (read, features, predict, rank, write, publish) timed
  ``--repeat`` times; prints the median and each run, the time per phase, and the peak RSS.
  Each repetition starts from the same state: one complete run of every household in
  ``household_scores`` (the previous repetition's run is deleted afterwards, untimed).
* :func:`bench_lists`: eligibility list builds from the current run (skipped by ``--skip-lists``).

Figures depend on the machine's load (other processes share its cores), so the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/socreg_targeting_bench"
SPEC = {"strata": "urban_rural", "poverty_rate": 0.25, "methods": ["wls"], "folds": 3, "seed": 1}


@dataclass
class BenchContext:
    """What every section needs: the app (with an application context pushed) and the active model."""

    app: object
    model_id: int
    households: int
    members: int


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _fresh_database(url: str, reuse: bool) -> bool:
    """Create the database unless ``reuse`` and it exists; returns whether it already existed."""
    from config import normalise_database_url

    target = make_url(normalise_database_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar()
        if exists and reuse:
            admin.dispose()
            return True
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return False


def _drop_database(url: str) -> None:
    from config import normalise_database_url

    target = make_url(normalise_database_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def _load_by_copy(households_csv: Path, members_csv: Path) -> None:
    """Current-state tables only (``households``, ``members``): COPY into staging tables, then
    ``INSERT … SELECT`` with casts. No validation, version snapshots or audit: a quick way to a
    large registry for benchmarks of what reads current state (scoring, lists). Use the importer
    (the default) for anything else."""
    from models import Household, Member, db
    from models.codes import HOUSEHOLD_FIELD_NAMES, MEMBER_FIELD_NAMES

    connection = db.session.connection()
    metadata = sa.MetaData()
    staged_h = sa.Table("bench_h", metadata, *(sa.Column(c, sa.Text) for c in HOUSEHOLD_FIELD_NAMES),
                        prefixes=["TEMPORARY"])
    staged_m = sa.Table("bench_m", metadata, *(sa.Column(c, sa.Text) for c in MEMBER_FIELD_NAMES),
                        prefixes=["TEMPORARY"])
    metadata.create_all(connection)
    cursor = connection.connection.dbapi_connection.cursor()
    for table, path in ((staged_h, households_csv), (staged_m, members_csv)):
        with open(path, "rb") as fh:
            cursor.copy_expert(f"COPY {table.name} FROM STDIN (FORMAT csv, HEADER true)", fh)
    hh, mm = Household.__table__, Member.__table__
    union = staged_h.c.union_code
    connection.execute(
        sa.insert(hh).from_select(
            [*HOUSEHOLD_FIELD_NAMES, "upazila_code", "district_code", "division_code", "status", "current_version",
             "created_at", "updated_at"],
            sa.select(
                *(sa.cast(staged_h.c[c], hh.c[c].type) for c in HOUSEHOLD_FIELD_NAMES),
                sa.func.substr(union, 1, 6), sa.func.substr(union, 1, 4), sa.func.substr(union, 1, 2),
                sa.literal("active"), sa.literal(1), sa.func.now(), sa.func.now(),
            ).order_by(staged_h.c.household_id),
        )
    )
    member_fields = [c for c in MEMBER_FIELD_NAMES if c != "household_id"]
    connection.execute(
        sa.insert(mm).from_select(
            ["household_pk", *member_fields],
            sa.select(hh.c.id, *(sa.cast(staged_m.c[c], mm.c[c].type) for c in member_fields))
            .join(hh, hh.c.household_id == staged_m.c.household_id)
            .order_by(hh.c.id, sa.cast(staged_m.c.line_no, sa.Integer)),
        )
    )
    metadata.drop_all(connection)


def setup(args) -> BenchContext:
    """Database, households, members and an active model (nothing here is timed)."""
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from models import Household, Member, PmtModel, db
    from registry.geo import load_geography
    from registry.importer import import_files
    from registry.synth import generate
    from registry.users import create_user
    from targeting import pmt_models
    from targeting.calibration import calibrate, read_survey
    from web.app import create_app

    existed = _fresh_database(args.database_url, args.reuse)
    app = create_app("development", SQLALCHEMY_DATABASE_URI=args.database_url)
    app.app_context().push()
    upgrade()
    households = db.session.scalar(select(func.count()).select_from(Household))
    model = db.session.scalar(select(PmtModel).where(PmtModel.status == "active"))
    if existed and households == args.households and model is not None:
        print(f"reusing {args.database_url}: {households:,} households, active model {model.id}")
    else:
        if households:
            raise SystemExit(f"{args.database_url} holds {households:,} households; drop it or leave out --reuse")
        load_geography()
        db.session.commit()
        data_dir = args.data_dir
        files = [data_dir / n for n in ("households.csv", "members.csv", "survey.csv", "survey_members.csv")]
        if not all(f.exists() for f in files):
            started = time.perf_counter()
            generate(data_dir, households=args.households, seed=args.seed, survey_households=args.survey_households)
            print(f"generated synthetic data in {time.perf_counter() - started:.0f} s -> {data_dir}")
        started = time.perf_counter()
        if args.loader == "importer":
            result = import_files(files[0], files[1], actor=None, source_ref="bench")
            if result.rejected:
                raise SystemExit(f"import rejected: {result.issues_by_rule}")
        else:
            _load_by_copy(files[0], files[1])
        db.session.commit()
        print(f"loaded households ({args.loader}) in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        calibration = calibrate(*read_survey(files[2], files[3]), SPEC)
        fitter = create_user("bench-fitter", "statistician", "bench password 0123456789")
        publisher = create_user("bench-publisher", "statistician", "bench password 0123456789")
        model = pmt_models.create_model(calibration, name="bench", method="wls", actor=fitter)
        pmt_models.publish_model(model, publisher)
        pmt_models.activate_model(model, publisher)
        db.session.commit()
        print(f"calibrated, published and activated model {model.id} in {time.perf_counter() - started:.0f} s")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    members = db.session.scalar(select(func.count()).select_from(Member))
    households = db.session.scalar(select(func.count()).select_from(Household))
    return BenchContext(app=app, model_id=model.id, households=households, members=members)


def _run_once(ctx: BenchContext) -> dict:
    from models import PmtModel, db
    from targeting import scoring

    run = scoring.create_score_run(db.session.get(PmtModel, ctx.model_id), with_job=False)
    db.session.commit()
    started = time.perf_counter()
    summary = scoring.execute_score_run(run)
    db.session.commit()
    summary["seconds"]["wall (with commit)"] = time.perf_counter() - started
    return summary


def _drop_superseded_runs(keep_run_id: int) -> None:
    """Delete bench runs other than ``keep_run_id`` so that every repetition starts alike (untimed).

    Runs that eligibility lists were built from (by :func:`bench_lists` of an earlier invocation)
    stay, with their rows: lists keep their score run."""
    from models import HouseholdScore, ScoreRun, db
    from models.programme import EligibilityList

    listed = sa.select(EligibilityList.score_run_id)
    db.session.execute(
        sa.delete(HouseholdScore).where(HouseholdScore.run_id != keep_run_id, HouseholdScore.run_id.not_in(listed))
    )
    db.session.execute(sa.delete(ScoreRun).where(ScoreRun.id != keep_run_id, ScoreRun.id.not_in(listed)))
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE household_scores"))


def bench_rescore(ctx: BenchContext, repeat: int) -> dict:
    """Full re-score with the active model, ``repeat`` times; prints and returns the medians."""
    from registry import jobs
    from targeting import scoring

    started = time.perf_counter()
    jobs.run_pending()  # the run queued by activation (or any left over): the warm-up
    current = scoring.current_run()
    if current is None:
        current = scoring.get_score_run(_run_once(ctx)["run_id"])
    print(f"warm-up run {current.id}: {time.perf_counter() - started:.1f} s")
    _drop_superseded_runs(current.id)
    summaries = []
    for i in range(repeat):
        load = _load()
        summary = _run_once(ctx)
        summaries.append(summary)
        seconds = summary["seconds"]
        print(f"  run {i + 1}/{repeat}: {seconds['wall (with commit)']:.1f} s (load average before: {load}); "
              + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k not in ("total", "wall (with commit)")))
        _drop_superseded_runs(summary["run_id"])
    phases = list(summaries[0]["seconds"])
    medians = {p: statistics.median(s["seconds"][p] for s in summaries) for p in phases}
    walls = [s["seconds"]["wall (with commit)"] for s in summaries]
    print(f"full re-score of {ctx.households:,} households ({ctx.members:,} members), median of {repeat}: "
          f"{medians['wall (with commit)']:.1f} s  [{', '.join(f'{w:.1f}' for w in walls)}]")
    print("  phases (median): " + ", ".join(f"{p} {medians[p]:.1f} s" for p in phases if p != "wall (with commit)"))
    print(f"  households/s: {ctx.households / medians['wall (with commit)']:,.0f}")
    print(f"  peak RSS so far: {_rss_mib():,.0f} MiB")
    return {"rescore_seconds": medians}


def bench_lists(ctx: BenchContext, repeat: int) -> dict:
    """Eligibility list builds from the current run: the issue's programme ("poorest 20% within each
    upazila AND (a member >= 65 OR a member with a disability), at most 300 per union"), timed by
    ``bench/list_bench.py`` (preview, build, summary, CSV export, diff; median of ``repeat``)."""
    from list_bench import bench_lists as time_lists

    return time_lists(repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("SOCREG_DATABASE_URL") or DEFAULT_URL)
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--survey-households", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions of each measurement (median)")
    parser.add_argument("--data-dir", type=Path, default=None, help="synthetic CSVs: reused when present")
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--skip-lists", action="store_true", help="only the re-score section")
    parser.add_argument("--loader", choices=("importer", "copy"), default="importer",
                        help="how to load the households: registry.importer (validated, versioned; default) or a "
                        "bare COPY of the current-state tables (much faster; enough for scoring)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("this benchmark needs PostgreSQL (--database-url postgresql://…)")
    os.environ.setdefault("SOCREG_INSTANCE_PATH", tempfile.mkdtemp(prefix="socreg-bench-instance-"))

    with tempfile.TemporaryDirectory(prefix="socreg-bench-") as tmp:
        args.data_dir = args.data_dir or Path(tmp) / "data"
        ctx = setup(args)
        from models import db

        version = db.session.execute(sa.text("SHOW server_version")).scalar()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB RAM; python {platform.python_version()}; "
              f"PostgreSQL {version}; load average {_load()}")
        bench_rescore(ctx, args.repeat)
        if not args.skip_lists:
            bench_lists(ctx, args.repeat)
        print(f"peak RSS: {_rss_mib():,.0f} MiB")
        db.session.remove()
        db.engine.dispose()
        if not args.keep:
            _drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
