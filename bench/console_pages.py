# ruff: noqa: E501  (SQL text reads better unwrapped)
"""Console page benchmark: inbox, group view and dashboard over 100,000 cases and 1,000,000 messages.

    .venv/bin/python bench/console_pages.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Creates (or, with --reuse, reuses) the database `bench_console` next to the given one, seeds it
with generate_series SQL (5 dealers, 151 staff, 50,000 customers and butler groups, 100,000 cases
spread over a year, 1,000,000 messages, their SLA clocks and events, case events), then starts the real app under
uvicorn in a child process (no background workers, so nothing mutates the data meanwhile) and
requests each page N times after a warm-up with an HTTP client, one request at a time.

Server time is what the app spent on a request: a bench-only ASGI wrapper in the child process
stamps `Server-Timing: app;dur=<ms>, db;dur=<ms>` on each response (time to the response start, and
the time spent inside database calls). The client-side latency is reported next to it. Slow SQL
statements (> --slow-ms) are written to var/bench/console_slow_sql.txt with their timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console_seed import counts, seed  # noqa: E402  (bench/ is the script's directory)

from bot.migrate import upgrade_async  # noqa: E402

DB_NAME = "bench_console"
PASSWORD = "bench-pass-123"
OUT = ROOT / "var" / "bench"
# --- the server (child process) --------------------------------------------------------------------

_DB_TIME: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("bench_db_time", default=None)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ServerTiming:
    """Bench-only ASGI wrapper: Server-Timing with the app's time and its database time."""

    def __init__(self, app: Any, slow_ms: float, slow_log: Path) -> None:
        self.app, self.slow_ms, self.slow_log = app, slow_ms, slow_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        db: list[float] = [0.0, 0.0]
        token = _DB_TIME.set(db)

        async def timed_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                app_ms = (time.perf_counter() - started) * 1000
                value = f'app;dur={app_ms:.2f}, db;dur={db[0] * 1000:.2f};desc="{int(db[1])} queries"'
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"server-timing", value.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _DB_TIME.reset(token)

    def watch(self, engine: AsyncEngine) -> None:
        """Time every statement; log the slow ones."""

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            conn.info.setdefault("bench_t", []).append(time.perf_counter())

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            elapsed = time.perf_counter() - conn.info["bench_t"].pop()
            db = _DB_TIME.get()
            if db is not None:
                db[0] += elapsed
                db[1] += 1
            if elapsed * 1000 > self.slow_ms:
                with self.slow_log.open("a", encoding="utf-8") as f:
                    f.write(f"--- {elapsed * 1000:.1f} ms\n{statement}\n{params!r}\n")


def serve(url: str, port: int, slow_ms: float, facts_ttl: float | None, gc_freeze: bool) -> None:
    """Run the app under uvicorn (child process)."""
    import uvicorn

    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings(
        database_url=url,
        run_workers=False,
        secret_key="bench-secret",
        telegram_token=None,
        redis_url=None,
        kb_semantic="off",
        log_level="WARNING",
    )
    app = create_app(settings, server_process=gc_freeze)  # as `butler run` / `butler web` do
    if facts_ttl is not None:  # the dashboard's cache of settled days, as the handler would make it
        from escalation.metrics import FactsCache

        app.state.rt.extras["dashboard_facts"] = FactsCache(ttl=facts_ttl, recent_ttl=min(30.0, facts_ttl))
    OUT.mkdir(parents=True, exist_ok=True)
    wrapper = ServerTiming(app, slow_ms, OUT / "console_slow_sql.txt")
    wrapper.watch(app.state.rt.engine)
    uvicorn.run(wrapper, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


# --- the client -------------------------------------------------------------------------------------


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def server(
    url: str, slow_ms: float, facts_ttl: float | None = None, gc_freeze: bool = True
) -> AsyncIterator[str]:
    """The child server process; yields its base URL."""
    port = free_port()
    args = ["--serve", "--database-url", url, "--port", str(port), "--slow-ms", str(slow_ms)]
    if not gc_freeze:
        args.append("--no-gc-freeze")
    if facts_ttl is not None:
        args += ["--facts-ttl", str(facts_ttl)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(600):
                if proc.returncode is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)


async def sign_in(base: str, username: str) -> httpx.AsyncClient:
    """A console session."""
    client = httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False)
    page = await client.get("/console/login")
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, "no CSRF token on the login page"
    r = await client.post(
        "/console/login", data={"username": username, "password": PASSWORD, "csrf": m.group(1)}
    )
    assert r.status_code == 303, (username, r.status_code, r.text[:200])
    return client


def timing(response: httpx.Response) -> tuple[float, float, int]:
    """(app ms, db ms, queries) from Server-Timing."""
    header = response.headers.get("server-timing", "")
    app = re.search(r"app;dur=([\d.]+)", header)
    db = re.search(r"db;dur=([\d.]+);desc=\"(\d+) queries\"", header)
    return (
        float(app.group(1)) if app else float("nan"),
        float(db.group(1)) if db else float("nan"),
        int(db.group(2)) if db else 0,
    )


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p * len(ordered) + 0.5) - 1))]


async def measure(client: httpx.AsyncClient, paths: list[str], n: int, warmup: int) -> dict[str, Any]:
    """Request the paths round-robin: warm-up, then n timed requests."""
    first_ms = None
    for i in range(warmup):
        r = await client.get(paths[i % len(paths)])
        assert r.status_code == 200, (paths[i % len(paths)], r.status_code, r.text[:300])
        if first_ms is None:
            first_ms = timing(r)[0]
    app_ms, db_ms, client_ms, queries, sizes = [], [], [], [], []
    for i in range(n):
        started = time.perf_counter()
        r = await client.get(paths[i % len(paths)])
        client_ms.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (paths[i % len(paths)], r.status_code)
        a, d, q = timing(r)
        app_ms.append(a)
        db_ms.append(d)
        queries.append(q)
        sizes.append(len(r.content))
    return {
        "n": n,
        "first_request_ms": None if first_ms is None else round(first_ms, 1),
        "server_p50_ms": round(statistics.median(app_ms), 1),
        "server_p95_ms": round(pct(app_ms, 0.95), 1),
        "server_p99_ms": round(pct(app_ms, 0.99), 1),
        "server_max_ms": round(max(app_ms), 1),
        "db_p50_ms": round(statistics.median(db_ms), 1),
        "db_p95_ms": round(pct(db_ms, 0.95), 1),
        "queries": round(statistics.median(queries)),
        "client_p50_ms": round(statistics.median(client_ms), 1),
        "client_p95_ms": round(pct(client_ms, 0.95), 1),
        "kb": round(statistics.median(sizes) / 1024, 1),
    }


async def pick_targets(engine: AsyncEngine) -> dict[str, Any]:
    """A butler with an average load and groups of theirs with a typical transcript."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """SELECT s.username, s.id, count(c.id) AS n FROM staff s
                       JOIN cases c ON c.assignee_id = s.id AND c.status IN ('open', 'waiting_staff', 'waiting_customer')
                       WHERE s.role = 'butler' GROUP BY s.id ORDER BY n DESC LIMIT 1"""
                )
            )
        ).one()
        groups = (
            (
                await conn.execute(
                    text(
                        """SELECT m.group_id FROM memberships m
                       JOIN cases c ON c.group_id = m.group_id AND c.status IN ('open', 'waiting_staff')
                       WHERE m.staff_id = :sid AND m.left_at IS NULL ORDER BY m.group_id LIMIT 20"""
                    ),
                    {"sid": row.id},
                )
            )
            .scalars()
            .all()
        )
        lead_groups = (
            (
                await conn.execute(
                    text(
                        """SELECT DISTINCT c.group_id FROM cases c JOIN butler_groups g ON g.id = c.group_id
                       WHERE g.dealer_id = 2 AND c.status IN ('open', 'waiting_staff')
                       ORDER BY c.group_id LIMIT 20"""
                    )
                )
            )
            .scalars()
            .all()
        )
        per_group = (
            await conn.execute(
                text("SELECT count(*) FROM messages WHERE group_id = ANY(:g)"), {"g": list(groups)}
            )
        ).scalar_one()
    return {
        "butler": row.username,
        "butler_open_cases": int(row.n),
        "groups": list(groups),
        "lead_groups": list(lead_groups),
        "messages_per_group": round(per_group / max(1, len(groups)), 1),
    }


def machine() -> str:
    """nproc and CPU model."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {model}, {platform.system()} {platform.release()}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seed (unless reused), serve, measure."""
    base_url = args.database_url
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    url = base_url.rsplit("/", 1)[0] + "/" + DB_NAME
    seeded = None
    async with admin.connect() as conn:
        exists = (
            await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME})
        ).first()
        if exists and not args.reuse:
            await conn.exec_driver_sql(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
        if not exists or not args.reuse:
            await conn.exec_driver_sql(f'CREATE DATABASE "{DB_NAME}"')
    await admin.dispose()
    await upgrade_async(url)
    engine = create_async_engine(url)
    if not args.reuse or not exists:
        from argon2 import PasswordHasher

        password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        print("seeding ...", flush=True)
        started = time.perf_counter()
        rows = await seed(engine, password_hash)
        seeded = round(time.perf_counter() - started, 1)
        print(f"seeded in {seeded}s: {rows}", flush=True)
    rows = await counts(engine)
    targets = await pick_targets(engine)
    await engine.dispose()
    results: dict[str, Any] = {}
    (OUT / "console_slow_sql.txt").unlink(missing_ok=True)
    async with server(url, args.slow_ms, gc_freeze=not args.no_gc_freeze) as base:
        butler = await sign_in(base, targets["butler"])
        manager = await sign_in(base, "d1_manager_1")
        lead = await sign_in(base, "d2_lead_1")
        drill = "/console/dashboard/cases?metric=sla"
        export = "/console/dashboard/export.csv?metric=breaches"
        pages = {
            "inbox /console/ (butler: my cases)": (butler, ["/console/"]),
            "inbox /console/ (lead: the dealer's cases)": (lead, ["/console/"]),
            "inbox /console/ (manager: all cases)": (manager, ["/console/"]),
            "group view /console/groups/{id} (butler)": (
                butler,
                [f"/console/groups/{g}" for g in targets["groups"]],
            ),
            "group view /console/groups/{id} (lead)": (
                lead,
                [f"/console/groups/{g}" for g in targets["lead_groups"]],
            ),
            "group view /console/groups/{id} (manager)": (
                manager,
                [f"/console/groups/{g}" for g in targets["groups"]],
            ),
            "dashboard /console/dashboard (lead, one dealer, 14 days)": (lead, ["/console/dashboard"]),
            "dashboard /console/dashboard (manager, all dealers, 14 days)": (manager, ["/console/dashboard"]),
            "dashboard tiles fragment (manager)": (manager, ["/console/dashboard/tiles"]),
            "drill-down list: SLA clocks applied, 14 days (manager)": (manager, [drill]),
            "drill-down list: SLA clocks applied, 14 days (lead)": (lead, [drill]),
            "CSV export: cases with breaches, 14 days (manager)": (manager, [export]),
        }
        for name, (client, paths) in pages.items():
            if not _wanted(name, args.only):
                continue
            results[name] = await measure(client, paths, args.requests, args.warmup)
            print(f"{name}: {json.dumps(results[name])}", flush=True)
        for client in (butler, manager, lead):
            await client.aclose()
    # Worst case: no cache of settled days, every request recomputes the whole period.
    uncached = "dashboard without the settled-days cache (manager, all dealers, 14 days)"
    if not _wanted(uncached, args.only):
        return _report(args, seeded, rows, targets, results)
    async with server(url, args.slow_ms, facts_ttl=0, gc_freeze=not args.no_gc_freeze) as base:
        manager = await sign_in(base, "d1_manager_1")
        results[uncached] = await measure(manager, ["/console/dashboard"], args.uncached_requests, 3)
        print(f"{uncached}: {json.dumps(results[uncached])}", flush=True)
        await manager.aclose()
    return _report(args, seeded, rows, targets, results)


def _wanted(name: str, only: list[str] | None) -> bool:
    """Whether --only selects a page."""
    return not only or any(part in name for part in only)


def _report(
    args: argparse.Namespace,
    seeded: float | None,
    rows: dict[str, int],
    targets: dict[str, Any],
    results: dict[str, Any],
) -> dict[str, Any]:
    """The JSON report."""
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "command": " ".join(["python", "bench/console_pages.py", *sys.argv[1:]]),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "gc_freeze": not args.no_gc_freeze,
        "seed_seconds": seeded,
        "rows": rows,
        "targets": targets,
        "results": results,
    }


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BUTLER_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL URL; the benchmark database is created next to it",
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per page first")
    parser.add_argument("--reuse", action="store_true", help="reuse an already seeded benchmark database")
    parser.add_argument("--slow-ms", type=float, default=50.0, help="log statements slower than this")
    parser.add_argument("--uncached-requests", type=int, default=30, help="timed requests without the cache")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="serve without create_app(server_process=True), which `butler run` and `butler web` use",
    )
    parser.add_argument(
        "--only", action="append", help="measure only pages whose name contains this (repeatable)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--facts-ttl", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.database_url, args.port, args.slow_ms, args.facts_ttl, not args.no_gc_freeze)
        return
    report = asyncio.run(run(args))
    OUT.mkdir(parents=True, exist_ok=True)
    name = "console_pages_no_gc_freeze.json" if args.no_gc_freeze else "console_pages.json"
    (OUT / name).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
