"""Benchmark of field updates: concurrent clients submitting and approving change requests over HTTP.

    python bench/approval_bench.py                       # 200,000 households, 8 clients, 60 s
    python bench/approval_bench.py --households 20000 --seconds 20 --keep
    python bench/approval_bench.py --database-url postgresql://postgres@127.0.0.1:5432/socreg_bench_x  # reuse
    python bench/approval_bench.py --profile 40          # also: where one submit+approve cycle spends its time
    python bench/approval_bench.py --approve-only        # the approval path alone (requests pre-written)
    python bench/approval_bench.py --floor               # the framework alone: two GET /api/v1/me a cycle

1. Creates a fresh PostgreSQL database (server from ``SOCREG_DATABASE_URL``, default
   ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, loads the geography and
   imports ``--households`` synthetic households (``registry.synth`` + ``registry.importer``,
   the ``socreg import`` path). ``--database-url`` reuses a prepared database instead.
2. Starts the real server (``socreg serve``: gunicorn, ``--workers`` x ``--threads``) on 127.0.0.1,
   each worker holding at most ``--worker-connections`` connections (default ``--threads`` + 2).
   The clients' eight kept-alive connections stay with the worker that accepted them; uncapped,
   they sometimes all landed in one worker, whose interpreter lock then held the run to about
   70% of what the CPUs allowed (3 of 19 undisturbed runs on this machine). The cap spreads
   them, as many short-lived connections through a proxy would be; the split is printed.
3. Runs ``--clients`` threads for ``--seconds``: each repeatedly submits an ``edit_household``
   change request as an enumerator (``POST /api/v1/change-requests``) and approves it as a
   supervisor (``POST /api/v1/change-requests/{id}/approve``), on its own households (so no
   409 is expected), over keep-alive HTTP connections.
4. Prints approvals/s, p50/p95/p99 latency of submits, approvals and whole cycles, the error
   count by status (with the first answer of each kind), and the CPU time one approval cost the
   server, PostgreSQL and the clients (with the share the hypervisor stole: on a shared host these
   vary less than approvals/s). The first ``--warmup`` seconds are not counted.

``--approve-only`` isolates the approval path: before the clock starts, one pending edit per
household of each client is written straight into ``change_requests`` (one set-based statement
that builds the same payload and proposed state a submission stores), and the clients only approve
them. Submission cost is dominated by validating the full proposed record (``registry.validation``),
so the two modes together say which side limits the cycle.

``--floor`` measures what no approval can go below on this server: each cycle sends the same two
authenticated requests from the same two users (``GET /api/v1/me``: token check, one user row,
a small JSON answer) and does no registry work. Its CPU per cycle is the share of an approval's
cost that is HTTP, WSGI, Flask, authentication and a database round trip.

The clients run on the same machine as the server and the database: their CPU is part of the
figure. The machine's load average is printed because other processes skew the results.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DIVISIONS = ("10", "20", "30", "40", "45", "50", "55", "60")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _fresh_database(server_url: str) -> tuple[str, callable]:
    from config import normalise_database_url

    url = make_url(normalise_database_url(server_url))
    name = f"bench_approval_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _prepare(url: str, households: int, seed: int, clients: int, approve_only: bool = False) -> dict:
    """Migrate, load geography and households (unless there already are enough), create users and tokens."""
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from models import Area, Household, db
    from registry import importer, synth
    from registry.geo import load_geography
    from registry.households import store_imported_snapshots
    from registry.users import create_user, get_user_by_username, issue_token
    from web.app import create_app

    app = create_app("development", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        if not db.session.scalar(select(func.count()).select_from(Area)):
            load_geography()
            db.session.commit()
        have = db.session.scalar(select(func.count()).select_from(Household))
        if have < households:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                synth.generate(Path(tmp), households, seed)
                _log(f"generated {households:,} households in {time.perf_counter() - started:.0f} s")
                started = time.perf_counter()
                result = importer.import_files(Path(tmp) / "households.csv", Path(tmp) / "members.csv", actor=None)
                if result.outcome != "imported":
                    raise SystemExit(f"import failed: {result.outcome} {result.first_issues[:3]}")
                db.session.commit()
                _log(f"imported {households:,} households in {time.perf_counter() - started:.0f} s")
        tokens = []
        for i in range(clients):
            pair = {}
            for role in ("enumerator", "supervisor"):
                name = f"bench_{role}_{i}"
                user = get_user_by_username(name) or create_user(
                    name, role, "bench password 123", area_codes=list(DIVISIONS)
                )
                pair[role] = issue_token(user)
            tokens.append(pair)
        # Each client gets its own households (so the one-pending rule never refuses it) and their versions.
        rows = db.session.execute(
            select(Household.household_id, Household.current_version, Household.poultry)
            .where(Household.status == "active")
            .order_by(func.random())
            .limit(clients * 4000)
        ).all()
        if approve_only:
            # --approve-only builds proposed states from version snapshots in SQL: store the ones the
            # import left to the current tables (the first approval would store them anyway).
            store_imported_snapshots([r.household_id for r in rows])
        db.session.commit()
        # Production servers run autovacuum; a benchmark server may not (this machine's does not),
        # and then a freshly imported registry, or one left by earlier runs, is measured with
        # unset hint bits, stale statistics and dead rows. Start every run from a vacuumed state.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()
    shares = [{r.household_id: r.current_version for r in rows[i::clients]} for i in range(clients)]
    poultry = {r.household_id: r.poultry for r in rows}
    return {"tokens": tokens, "households": shares, "poultry": poultry}


def _new_poultry(current: int | None) -> int:
    """A poultry count other than the current one (a request that changes nothing is refused, 422)."""
    value = random.randint(0, 400)
    return value if value != current else value + 1


def _pending_requests(url: str, prepared: dict) -> list[list[int]]:
    """--approve-only: one pending ``edit_household`` request (poultry changed) per household of each
    client, as a submission would store it: the payload, the proposed state (the current version's
    snapshot with the new value), no warnings or flags, one approval needed."""
    from config import normalise_database_url

    engine = sa.create_engine(normalise_database_url(url))
    out = []
    with engine.begin() as conn:
        for i, share in enumerate(prepared["households"]):
            user_id = conn.execute(
                sa.text("SELECT id FROM users WHERE username = :name"), {"name": f"bench_enumerator_{i}"}
            ).scalar_one()
            ids = conn.execute(
                sa.text(
                    """
                    INSERT INTO change_requests (
                        kind, status, household_pk, household_id, union_code, base_version, payload, proposed,
                        reason, warnings, duplicate_flags, nid_conflicts, risk_reasons, approvals_required,
                        submitted_by_id, submitted_at, updated_at, rebase_count)
                    SELECT 'edit_household', 'pending', h.id, h.household_id, h.union_code, h.current_version,
                           jsonb_build_object('household', jsonb_build_object('poultry', p.value)),
                           jsonb_set(v.snapshot, '{household,poultry}', to_jsonb(p.value)),
                           'bench: poultry count updated', '[]', '[]', '[]', '[]', 1, :user_id, now(), now(), 0
                    FROM households h
                    JOIN household_versions v ON v.household_pk = h.id AND v.version_no = h.current_version
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN coalesce(h.poultry, 0) > 0 THEN h.poultry - 1 ELSE 1 END AS value
                    ) p
                    WHERE h.household_id = ANY(:ids) AND h.status = 'active' AND NOT EXISTS (
                        SELECT 1 FROM change_requests c WHERE c.household_pk = h.id AND c.status = 'pending')
                    RETURNING id
                    """
                ),
                {"user_id": user_id, "ids": list(share)},
            ).scalars()
            out.append(sorted(ids))
    engine.dispose()
    return out


def _withdraw_leftovers(url: str, ids: list[int]) -> None:
    """Withdraw the pre-written requests not approved, so that a reused database takes submissions."""
    from config import normalise_database_url

    engine = sa.create_engine(normalise_database_url(url))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE change_requests SET status = 'withdrawn' WHERE status = 'pending' AND id = ANY(:ids)"),
            {"ids": ids},
        )
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(url: str, port: int, workers: int, threads: int, worker_connections: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        SOCREG_DATABASE_URL=url,
        SOCREG_ENV="production",
        SOCREG_SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnop",
        SOCREG_INSTANCE_PATH=tempfile.mkdtemp(prefix="socreg-bench-"),
    )
    socreg = Path(sys.executable).parent / "socreg"
    proc = subprocess.Popen(
        [
            str(socreg),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            *(["--worker-connections", str(worker_connections)] if worker_connections else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server did not start within 120 s")


def _proc_stat(pid: str, tick: int = 100) -> tuple[str, int, float] | None:
    """A process's name, parent pid and CPU seconds used (``/proc/<pid>/stat``), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick


def _connections_by_worker(server_pid: int, port: int) -> list[int] | None:
    """How many established connections to ``port`` each gunicorn worker (a child of
    ``server_pid``) holds, most first (Linux ``/proc``; None elsewhere). A worker holds a
    kept-alive connection for good, so this split decides how many interpreters share the work."""
    try:
        children = [
            pid for pid in os.listdir("/proc") if pid.isdigit() and (_proc_stat(pid) or ("", 0, 0))[1] == server_pid
        ]
        established = set()
        with open("/proc/net/tcp") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
                    established.add(fields[9])
        counts = []
        for pid in children:
            inodes = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            counts.append(len(inodes & established))
        return sorted(counts, reverse=True)
    except OSError:
        return None


class Client(threading.Thread):
    """Submit an edit as an enumerator, approve it as a supervisor, again and again."""

    def __init__(
        self,
        port: int,
        tokens: dict,
        households: dict,
        stop_at: float,
        count_from: float,
        pending: list[int] | None = None,
        poultry: dict | None = None,
        floor: bool = False,
    ):
        super().__init__(daemon=True)
        #: --floor: two GET /api/v1/me per cycle instead of a submission and an approval.
        self.floor = floor
        #: --approve-only: ids of pending requests to approve (no submissions).
        self.pending = pending
        #: The households' current poultry counts (each edit sets another value).
        self.poultry = dict(poultry or {})
        self.finished_at = 0.0
        self.port = port
        self.tokens = tokens
        self.households = households
        self.order = list(households)
        random.shuffle(self.order)
        self.stop_at = stop_at
        self.count_from = count_from
        self.submit_ms: list[float] = []
        self.approve_ms: list[float] = []
        self.cycle_ms: list[float] = []
        self.approvals = 0
        self.errors: Counter = Counter()
        #: The first answer of each kind of error, to print (a count alone does not say what went wrong).
        self.samples: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def _request(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict, float]:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, {}, (time.perf_counter() - started) * 1000
        elapsed = (time.perf_counter() - started) * 1000
        try:
            parsed = json.loads(payload) if payload else {}
        except ValueError:
            parsed = {}
        return response.status, parsed, elapsed

    def run(self) -> None:
        if self.pending is not None:
            self._approve_only()
        elif self.floor:
            self._floor_cycles()
        else:
            self._cycles()
        self.finished_at = time.monotonic()
        self.conn.close()

    def _approve_only(self) -> None:
        for cr_id in self.pending:
            if time.monotonic() >= self.stop_at:
                return
            counted = time.monotonic() >= self.count_from
            status, body, ms = self._request(
                "POST", f"/api/v1/change-requests/{cr_id}/approve", self.tokens["supervisor"]
            )
            if counted:
                self.approve_ms.append(ms)
                self.cycle_ms.append(ms)
            if status == 200 and body.get("status") == "approved":
                if counted:
                    self.approvals += 1
            elif counted:
                self._error(f"approve {status} {body.get('error', {}).get('code', '')}".strip(), body)
        _log("a client ran out of pending requests before the end: raise --households or shorten --seconds")

    def _floor_cycles(self) -> None:
        while time.monotonic() < self.stop_at:
            counted = time.monotonic() >= self.count_from
            cycle_started = time.perf_counter()
            ok = True
            for role, timings in (("enumerator", self.submit_ms), ("supervisor", self.approve_ms)):
                status, body, ms = self._request("GET", "/api/v1/me", self.tokens[role])
                if counted:
                    timings.append(ms)
                    if status != 200:
                        ok = False
                        self._error(f"me {status}", body)
            if counted and ok:
                self.approvals += 1
                self.cycle_ms.append((time.perf_counter() - cycle_started) * 1000)

    def _cycles(self) -> None:
        i = 0
        while time.monotonic() < self.stop_at:
            household_id = self.order[i % len(self.order)]
            i += 1
            version = self.households[household_id]
            counted = time.monotonic() >= self.count_from
            cycle_started = time.perf_counter()
            status, body, ms = self._request(
                "POST",
                "/api/v1/change-requests",
                self.tokens["enumerator"],
                {
                    "kind": "edit_household",
                    "household_id": household_id,
                    "base_version": version,
                    "reason": "bench: poultry count updated",
                    "household": {"poultry": (poultry := _new_poultry(self.poultry.get(household_id)))},
                },
            )
            if counted:
                self.submit_ms.append(ms)
            if status != 201:
                if counted:
                    self._error(f"submit {status} {body.get('error', {}).get('code', '')}".strip(), body)
                if status == 409 and body.get("error", {}).get("details", {}).get("current_version"):
                    self.households[household_id] = body["error"]["details"]["current_version"]
                continue
            status, body, ms = self._request(
                "POST", f"/api/v1/change-requests/{body['id']}/approve", self.tokens["supervisor"]
            )
            if counted:
                self.approve_ms.append(ms)
            if status == 200 and body.get("status") == "approved":
                self.households[household_id] = body["applied_version"]
                self.poultry[household_id] = poultry
                if counted:
                    self.approvals += 1
                    self.cycle_ms.append((time.perf_counter() - cycle_started) * 1000)
            elif counted:
                self._error(f"approve {status} {body.get('error', {}).get('code', '')}".strip(), body)

    def _error(self, key: str, body: dict) -> None:
        self.errors[key] += 1
        self.samples.setdefault(key, json.dumps(body.get("error", body), ensure_ascii=False)[:600])


class CpuMeter:
    """CPU time spent by the server (gunicorn and its workers), PostgreSQL (every ``postgres``
    process on this machine) and this process (the clients), plus the time the hypervisor stole,
    between :meth:`start` and :meth:`stop` (Linux ``/proc``; silent elsewhere). Per approval, these
    say what an approval costs, which varies less with a shared host's speed than approvals/s."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.begin = self.end = None

    def _sample(self) -> dict | None:
        if not os.path.isdir("/proc/self"):
            return None
        server = postgres = 0.0
        stats = {pid: _proc_stat(pid, self.tick) for pid in os.listdir("/proc") if pid.isdigit()}
        for pid, stat in stats.items():
            if stat is None:
                continue
            name, parent, cpu = stat
            if int(pid) == self.server_pid or parent == self.server_pid:
                server += cpu
            elif name == "postgres":
                postgres += cpu
        times = os.times()
        with open("/proc/stat") as fh:
            total = [int(v) for v in fh.readline().split()[1:]]
        return {
            "server": server,
            "postgres": postgres,
            "clients": times.user + times.system,
            "steal": total[7] / self.tick if len(total) > 7 else 0.0,
            "all": sum(total[:8]) / self.tick,
        }

    def start(self) -> None:
        self.begin = self._sample()

    def stop(self) -> None:
        self.end = self._sample()

    def report(self, approvals: int, unit: str = "approval") -> str:
        if not self.begin or not self.end or not approvals:
            return "not measured"
        used = {k: self.end[k] - self.begin[k] for k in self.begin}
        per = {k: 1000 * used[k] / approvals for k in ("server", "postgres", "clients")}
        total = sum(per.values())
        steal = 100 * used["steal"] / used["all"] if used["all"] else 0.0
        return (
            f"server {per['server']:.1f} ms, PostgreSQL {per['postgres']:.1f} ms, clients {per['clients']:.1f} ms "
            f"per {unit} (total {total:.1f} ms: {os.cpu_count()} CPUs allow {1000 * os.cpu_count() / total:.0f} "
            f"{unit}s/s at that cost); steal {steal:.0f}% of the machine's CPU time"
        )


def _machine_speed() -> str:
    """A crude CPU speed probe (pure Python and a small pandas operation), to compare runs across machines."""
    import pandas as pd

    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    loop_ms = (time.perf_counter() - started) * 1000
    series = pd.Series([1, 2, 3])
    started = time.perf_counter()
    for _ in range(500):
        _ = (series > 1) & (series < 3)
    pandas_us = (time.perf_counter() - started) * 1e6 / 500
    return f"1M-iteration Python loop {loop_ms:.0f} ms, pandas compare-and {pandas_us:.0f} us"


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)}" + (f" ({values[0]:.1f} ms)" if values else "")
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:7.1f} ms   p95 {q[94]:7.1f} ms   p99 {q[98]:7.1f} ms   (n={len(values)})"


def _profile(url: str, cycles: int, prepared: dict) -> None:
    """Run ``cycles`` submit+approve cycles in-process (Flask test client) under cProfile."""
    import cProfile
    import io
    import pstats

    from web.app import create_app

    os.environ.setdefault("SOCREG_INSTANCE_PATH", tempfile.mkdtemp(prefix="socreg-bench-"))
    app = create_app("development", SQLALCHEMY_DATABASE_URI=url)
    client = app.test_client()
    tokens = prepared["tokens"][0]
    households = dict(list(prepared["households"][0].items())[: cycles + 5])
    # Warm up (imports, caches), then profile.
    ids = list(households)

    def cycle(household_id):
        r = client.post(
            "/api/v1/change-requests",
            json={
                "kind": "edit_household",
                "household_id": household_id,
                "base_version": households[household_id],
                "reason": "profile",
                "household": {"poultry": _new_poultry(prepared["poultry"].get(household_id))},
            },
            headers={"Authorization": f"Bearer {tokens['enumerator']}"},
        )
        if r.status_code != 201:
            return
        a = client.post(
            f"/api/v1/change-requests/{r.json['id']}/approve",
            headers={"Authorization": f"Bearer {tokens['supervisor']}"},
        )
        if a.status_code == 200:
            households[household_id] = a.json["applied_version"]

    for household_id in ids[:3]:
        cycle(household_id)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for household_id in ids[3 : 3 + cycles]:
        cycle(household_id)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"\nprofile: {cycles} cycles in-process, {1000 * elapsed / cycles:.1f} ms per cycle (with profiler overhead)")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(r"(registry|api|web)/.*\.py", 25)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--worker-connections",
        type=int,
        default=None,
        help="connections one worker may hold (socreg serve --worker-connections; default: threads + 2; "
        "0: gunicorn's default of 1000, with which all clients' kept-alive connections may land in one worker)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=None, help="reuse this prepared database (not dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the fresh database (prints its URL)")
    parser.add_argument("--profile", type=int, default=0, metavar="CYCLES", help="also profile CYCLES cycles")
    parser.add_argument(
        "--approve-only", action="store_true", help="pre-write pending requests; the clients only approve them"
    )
    parser.add_argument(
        "--floor", action="store_true", help="two authenticated GET /api/v1/me per cycle: the framework's own cost"
    )
    args = parser.parse_args(argv)
    if args.floor and (args.approve_only or args.profile):
        parser.error("--floor runs alone: not with --approve-only or --profile")

    server = os.environ.get("SOCREG_DATABASE_URL") or DEFAULT_SERVER
    drop = None
    if args.database_url:
        url = args.database_url
    else:
        url, drop = _fresh_database(server)
    _log(f"database {make_url(url).database}")
    proc = None
    try:
        started = time.perf_counter()
        prepared = _prepare(url, args.households, args.seed, args.clients, approve_only=args.approve_only)
        _log(f"prepared in {time.perf_counter() - started:.0f} s")
        pending = [None] * args.clients
        if args.approve_only:
            started = time.perf_counter()
            pending = _pending_requests(url, prepared)
            _log(f"wrote {sum(map(len, pending)):,} pending requests in {time.perf_counter() - started:.0f} s")
        port = _free_port()
        worker_connections = args.threads + 2 if args.worker_connections is None else args.worker_connections
        proc = _start_server(url, port, args.workers, args.threads, worker_connections)
        _log(f"server up on 127.0.0.1:{port} ({args.workers} workers x {args.threads} threads)")
        load_before = os.getloadavg()
        now = time.monotonic()
        count_from = now + args.warmup
        stop_at = count_from + args.seconds
        clients = [
            Client(
                port,
                prepared["tokens"][i],
                prepared["households"][i],
                stop_at,
                count_from,
                pending[i],
                {h: prepared["poultry"][h] for h in prepared["households"][i]},
                floor=args.floor,
            )
            for i in range(args.clients)
        ]
        meter = CpuMeter(proc.pid)
        threading.Timer(max(0.0, count_from - time.monotonic()), meter.start).start()
        split: list = []
        threading.Timer(
            max(0.0, count_from + args.seconds / 2 - time.monotonic()),
            lambda: split.append(_connections_by_worker(proc.pid, port)),
        ).start()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        meter.stop()
        load_after = os.getloadavg()
        approvals = sum(c.approvals for c in clients)
        errors = sum((c.errors for c in clients), Counter())
        # Requests started before the end finish after it: the window runs until the last client stopped.
        window = max(max(c.finished_at for c in clients), stop_at) - count_from
        # In --floor mode a "cycle" stands where an approval would: the per-cycle figures compare directly.
        if args.floor:
            mode, done = "floor (two GET /api/v1/me per cycle, no registry work)", "cycles"
        elif args.approve_only:
            mode, done = "approve only (pre-written requests)", "approvals"
        else:
            mode, done = "submit + approve cycles", "approvals"
        print(
            f"\napproval benchmark, {mode}: {args.households:,} households, {args.clients} clients, "
            f"{args.seconds:g} s (after {args.warmup:g} s warm-up), server {args.workers}x{args.threads} "
            f"(at most {worker_connections or 'gunicorn default'} connections per worker), {os.cpu_count()} CPUs"
        )
        if split and split[0] is not None:
            print(f"connections   per worker at mid-run: {', '.join(map(str, split[0]))}")
        print(f"{done + '/s':<13} {approvals / window:8.1f}   ({approvals} {done} in {window:.1f} s)")
        first, second = ("me (1st)", "me (2nd)") if args.floor else ("submit", "approve")
        print(f"{first:<13} {_percentiles([m for c in clients for m in c.submit_ms])}")
        print(f"{second:<13} {_percentiles([m for c in clients for m in c.approve_ms])}")
        print(f"cycle         {_percentiles([m for c in clients for m in c.cycle_ms])}")
        print(f"errors        {sum(errors.values())}" + (f"  {dict(errors)}" if errors else ""))
        samples = {}
        for c in clients:
            for key, text in c.samples.items():
                samples.setdefault(key, text)
        for key, text in samples.items():
            print(f"  first {key}: {text}")
        print(f"cpu           {meter.report(approvals, done[:-1])}")
        print(f"load average  {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
        print(f"cpu probe     {_machine_speed()}")
        if args.profile:
            _profile(url, args.profile, prepared)
        if args.approve_only:
            _withdraw_leftovers(url, [i for ids in pending for i in ids])
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if drop is not None:
            if args.keep:
                _log(f"kept database: {url}")
            else:
                drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
