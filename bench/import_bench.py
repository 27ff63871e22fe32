"""Benchmark of the bulk import: households/s, members/s, wall time by phase, peak memory.

    python bench/import_bench.py --households 1000000 [--compare-naive] [--workers N]

Generates N synthetic households (``registry.synth``) into a temporary folder, creates a fresh
database (on the PostgreSQL server of ``SOCREG_DATABASE_URL`` when it points to one, dropped
afterwards; otherwise an SQLite file), migrates it, loads the geography and imports the files
with ``registry.importer.import_files``, exactly as ``socreg import`` does. With
``--compare-naive`` it first times the ORM path (``create_household`` row by row) on a sample,
in a transaction that is rolled back, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def _rss_mib(who: int) -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(who).ru_maxrss / 1024


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _fresh_database(server_url: str | None, tmp: Path) -> tuple[str, callable]:
    from config import normalise_database_url

    if not server_url or not server_url.startswith(("postgresql", "postgres")):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None
    url = make_url(normalise_database_url(server_url))
    name = f"bench_import_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _naive(households_csv: Path, members_csv: Path, sample: int) -> float:
    """Seconds to register ``sample`` households one by one through the ORM (rolled back)."""
    import pandas as pd

    from models import db
    from registry.households import create_household

    households = pd.read_csv(households_csv, dtype=str, keep_default_na=False, nrows=sample)
    wanted = set(households["household_id"])
    members = pd.concat(
        chunk[chunk["household_id"].isin(wanted)]
        for chunk in pd.read_csv(members_csv, dtype=str, keep_default_na=False, chunksize=200_000)
    )
    by_household = {hid: group.to_dict("records") for hid, group in members.groupby("household_id")}
    started = time.perf_counter()
    for record in households.to_dict("records"):
        create_household(record, by_household.get(record["household_id"], []), actor=None, source="bench")
    db.session.flush()
    elapsed = time.perf_counter() - started
    db.session.rollback()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000, help="households to generate and import")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="validation processes (default: automatic)")
    parser.add_argument("--compare-naive", action="store_true", help="also time the ORM row-by-row path")
    parser.add_argument("--naive-sample", type=int, default=200, help="households in the naive sample")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse (or keep) the generated files here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="socreg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("SOCREG_INSTANCE_PATH", str(tmp / "instance"))
        url, drop = _fresh_database(os.environ.get("SOCREG_DATABASE_URL"), tmp)
        try:
            return _run(args, url, tmp)
        finally:
            drop()


def _run(args, url: str, tmp: Path) -> int:
    from flask_migrate import upgrade

    from models import db
    from registry.geo import load_geography
    from registry.importer import import_files
    from registry.synth import generate
    from web.app import create_app

    app = create_app("development", SQLALCHEMY_DATABASE_URI=url)
    dialect = make_url(url).get_backend_name()
    print(f"database: {dialect} ({make_url(url).render_as_string()})")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average {_load()}")
    with app.app_context():
        upgrade()
        load_geography()
        db.session.commit()

        data_dir = args.data_dir or tmp / "data"
        households_csv, members_csv = data_dir / "households.csv", data_dir / "members.csv"
        if not households_csv.exists():
            started = time.perf_counter()
            counts = generate(data_dir, households=args.households, seed=args.seed)
            print(
                f"generated {counts['households']:,} households, {counts['members']:,} members "
                f"in {time.perf_counter() - started:.1f} s (not part of the import figures)"
            )
        size = (households_csv.stat().st_size + members_csv.stat().st_size) / 1024**2
        print(f"files: {size:,.0f} MiB")

        naive_rate = None
        if args.compare_naive:
            sample = min(args.naive_sample, args.households)
            elapsed = _naive(households_csv, members_csv, sample)
            naive_rate = sample / elapsed
            print(
                f"naive ORM (create_household one by one): {sample:,} households in {elapsed:.1f} s "
                f"= {naive_rate:,.2f} households/s"
            )

        def progress(phase, done, total):
            return None

        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before = usage.ru_utime + usage.ru_stime
        started = time.perf_counter()
        result = import_files(
            households_csv, members_csv, actor=None, source_ref="bench", progress=progress, workers=args.workers
        )
        db.session.commit()
        wall = time.perf_counter() - started
        if result.rejected:
            print(f"import REJECTED: {result.issues_by_rule}")
            return 1
        print(f"imported {result.households_imported:,} households, {result.members_imported:,} members")
        print(f"wall time: {wall:.1f} s (including commit)")
        print(f"households/s: {result.households_imported / wall:,.0f}")
        print(f"members/s: {result.members_imported / wall:,.0f}")
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
        print(f"phases: {phases}, commit {wall - result.duration_s:.1f} s")
        # CPU seconds tell more than wall time on a shared machine (the database server's are not counted).
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"CPU: main process {own.ru_utime + own.ru_stime - cpu_before:.1f} s, "
            f"worker processes {children.ru_utime + children.ru_stime:.1f} s"
        )
        print(
            f"peak RSS: main process {_rss_mib(resource.RUSAGE_SELF):,.0f} MiB, "
            f"largest worker process {_rss_mib(resource.RUSAGE_CHILDREN):,.0f} MiB"
        )
        print(f"load average after: {_load()}")
        if naive_rate:
            print(f"speed-up over the naive ORM path: {result.households_imported / wall / naive_rate:,.1f}x")
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
