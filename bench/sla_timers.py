"""SLA timer benchmark: firing lag, exactly-once, worker CPU/memory; indexed worker vs a naive scan.

    .venv/bin/python bench/sla_timers.py pg --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/sla_timers.py sqlite

PostgreSQL: 1,000,000 open timers, 1,000 rungs coming due per second for 60 s, 2 worker processes.
SQLite: 100,000 open timers, 200 due per second for 60 s, 1 worker process. Each run then fires a
second batch with a naive "scan all open cases every second" loop on the same database.

Workers run the real `run_escalation_worker` with a clock that starts at the first due time (so
seeding time does not matter); lag = commit time - due time of each rung, measured in the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import as_utc
from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.db import make_engine, make_sessionmaker
from bot.factory import build_runtime, close_runtime
from bot.migrate import upgrade_async
from bot.runtime import Runtime
from bot.settings import Settings
from escalation import ladder, worker
from escalation.models import ACTIVE_STATES, SlaEvent, SlaTimer
from escalation.service import parse_iso
from escalation.synthetic import seed_timers

BASE = datetime(2030, 1, 1, tzinfo=UTC)  # fake time of the first due rung of the indexed run
NAIVE_BASE = BASE + timedelta(days=1)  # and of the naive run
FAR = BASE + timedelta(days=10)  # filler timers never come due during the benchmark


class OffsetClock:
    """Wall time shifted so that `epoch` (a time.time() value) reads as `base`."""

    def __init__(self, base: datetime, epoch: float) -> None:
        self._base, self.epoch = base, epoch

    def now(self) -> datetime:
        """The shifted instant."""
        return self._base + timedelta(seconds=time.time() - self.epoch)


# --- worker side -------------------------------------------------------------------------------


class Probe:
    """Collects the due time of every rung a pass fires, and the lag once the pass has committed."""

    def __init__(self, clock: OffsetClock) -> None:
        self.clock = clock
        self.pending: list[datetime] = []
        self.lags: list[float] = []
        self.series: list[tuple[float, int, float]] = []  # (seconds after the first due, fired, worst lag)
        self.passes = 0
        self.claim_seconds = 0.0
        self.pass_seconds = 0.0

    def install(self) -> None:
        """Wrap fire_step and run_pass of this process."""
        real_fire, real_pass, real_claim = ladder.fire_step, worker.run_pass, worker.claim_due

        async def claim(session: Any, *, now: datetime, limit: int) -> Any:
            t = time.perf_counter()
            claimed = await real_claim(session, now=now, limit=limit)
            self.claim_seconds += time.perf_counter() - t
            return claimed

        async def fire(
            ctx: ladder.StepContext, records: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
            row = await real_fire(ctx, records)
            due = parse_iso(row["data"]["due"])
            assert due is not None
            self.pending.append(due)
            return row

        async def run_pass(rt: Runtime, *, limit: int = 200, isolate: bool = False) -> int:
            self.pending = []
            started = time.perf_counter()
            try:
                fired = await real_pass(rt, limit=limit, isolate=isolate)
            except BaseException:
                self.pending = []
                raise
            committed = self.clock.now()
            self.pass_seconds += time.perf_counter() - started
            lags = [(committed - due).total_seconds() for due in self.pending]
            self.lags.extend(lags)
            if lags:
                self.series.append((round(time.time() - self.clock.epoch, 3), len(lags), round(max(lags), 3)))
            self.passes += 1
            return fired

        ladder.fire_step = fire
        worker.run_pass = run_pass
        worker.claim_due = claim


async def naive_loop(rt: Runtime, stop: asyncio.Event, probe: Probe) -> None:
    """Every second: load all open cases' clocks, work out in Python which are due, fire those."""
    while not stop.is_set():
        tick = time.monotonic()
        now = rt.clock.now()
        async with rt.maker() as session:
            rows = (
                await session.execute(
                    select(SlaTimer.id, SlaTimer.next_due_at)
                    .join(Case, Case.id == SlaTimer.case_id)
                    .where(Case.status.in_(ACTIVE_STATUSES), SlaTimer.state.in_(ACTIVE_STATES))
                )
            ).all()
        # No index, no ordering: every open clock is looked at in Python, every second.
        due_ids = [r.id for r in rows if r.next_due_at is not None and r.next_due_at <= now]
        del rows
        for i in range(0, len(due_ids), 500):
            chunk = set(due_ids[i : i + 500])
            probe.pending = []
            async with rt.transaction() as session:
                timers = (await session.scalars(select(SlaTimer).where(SlaTimer.id.in_(chunk)))).all()
                cases = {
                    c.id: c
                    for c in (
                        await session.scalars(select(Case).where(Case.id.in_({t.case_id for t in timers})))
                    ).unique()
                }
                records: list[dict[str, Any]] = []
                supervisors: dict[Any, Any] = {}  # the same lookup cache the real worker uses
                for t in timers:
                    entry = t.ladder[t.next_step]
                    ctx = ladder.StepContext(session, rt, t, cases[t.case_id], entry, now, supervisors)
                    await ladder.fire_step(ctx, records)
                if records:
                    await session.execute(insert(SlaEvent), records)
            committed = rt.clock.now()
            probe.lags.extend((committed - due).total_seconds() for due in probe.pending)
        probe.passes += 1
        if os.environ.get("SLA_BENCH_DEBUG"):
            print(f"naive tick {time.monotonic() - tick:.3f}s, {len(due_ids)} due", file=sys.stderr)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


async def run_worker(url: str, base: datetime, epoch: float, out: Path, naive: bool, batch: int) -> None:
    """One instrumented worker process; writes its figures to `out` when told to stop."""
    clock = OffsetClock(base, epoch)
    rt = build_runtime(Settings(database_url=url, run_workers=False, redis_url=None), clock=clock)
    probe = Probe(clock)
    probe.install()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with rt.maker() as session:  # connect before the clock starts
        await session.execute(select(1))
    await asyncio.sleep(max(0.0, epoch - time.time() - 0.5))
    started_cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    try:
        if naive:
            await naive_loop(rt, stop, probe)
        else:
            await worker.run_escalation_worker(rt, stop, limit=batch, max_idle=5.0)
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - started
        cpu = (usage.ru_utime - started_cpu.ru_utime) + (usage.ru_stime - started_cpu.ru_stime)
        figures = {
            "lags": probe.lags,
            "lag_series": probe.series,
            "passes": probe.passes,
            "claim_seconds": probe.claim_seconds,
            "pass_seconds": probe.pass_seconds,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "max_rss_mb": usage.ru_maxrss / 1024,
        }
        await asyncio.to_thread(out.write_text, json.dumps(figures))
        await close_runtime(rt)


# --- orchestration -----------------------------------------------------------------------------


async def _backend_cpu(url: str) -> float:
    """CPU seconds used so far by the server processes serving this database (server is local)."""
    if not url.startswith("postgresql"):
        return 0.0
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = (await conn.execute(query)).scalars().all()
    finally:
        await engine.dispose()
    return _proc_cpu(list(pids))


def _proc_cpu(pids: list[int]) -> float:
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _count_rungs(url: str, since: datetime, until: datetime) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (
                await session.execute(
                    select(SlaEvent.timer_id, SlaEvent.step, SlaEvent.data).where(SlaEvent.step.is_not(None))
                )
            ).all()
        window = [(t, s) for t, s, d in rows if since <= as_utc(datetime.fromisoformat(d["due"])) < until]
        return len(window), len(set(window))
    finally:
        await engine.dispose()


def _spawn(
    url: str, base: datetime, epoch: float, out: Path, batch: int, naive: bool
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "_worker", "--database-url", url, "--base", base.isoformat()]
    cmd += ["--epoch", repr(epoch), "--out", str(out), "--batch", str(batch)]
    return subprocess.Popen([*cmd, *(["--naive"] if naive else [])])


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def phase(
    url: str, *, base: datetime, rungs: int, rate: float, processes: int, naive: bool, batch: int, label: str
) -> dict[str, Any]:
    """Run worker processes from fake time `base` until every rung of the batch has fired."""
    seconds = rungs / rate
    tmp = Path(tempfile.mkdtemp(prefix="sla-bench-"))
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    epoch = time.time() + 6.0  # the first rung comes due once the workers have started up
    pg_cpu0 = await _backend_cpu(url)
    procs = [_spawn(url, base, epoch, tmp / f"w{n}.json", batch, naive) for n in range(processes)]
    deadline = time.time() + seconds + 120
    engine = make_engine(url)
    fired = 0
    try:
        while time.time() < deadline:
            await asyncio.sleep(1.0)
            async with make_sessionmaker(engine)() as session:
                fired = int(
                    await session.scalar(
                        select(func.count())
                        .select_from(SlaEvent)
                        .where(
                            SlaEvent.at >= base - timedelta(seconds=5),
                            SlaEvent.at < base + timedelta(hours=1),
                        )
                    )
                    or 0
                )
            if fired >= rungs and time.time() > epoch + seconds:
                break
        await asyncio.sleep(1.0)  # anything left over would show up as a duplicate below
        pg_cpu = await _backend_cpu(url) - pg_cpu0
        load_after = os.getloadavg()[0]
    finally:
        await engine.dispose()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
    stats = [json.loads(await asyncio.to_thread((tmp / f"w{n}.json").read_text)) for n in range(processes)]
    if os.environ.get("SLA_BENCH_DEBUG"):
        for n, s in enumerate(stats):
            worst = sorted(s["lag_series"], key=lambda x: -x[2])[:8]
            print(f"worker {n} worst passes (t, fired, lag): {worst}", file=sys.stderr)
            print(
                f"worker {n}: {s['passes']} passes, {s['pass_seconds']:.1f}s in passes, "
                f"{s['claim_seconds']:.1f}s claiming, cpu {s['cpu_seconds']:.1f}s",
                file=sys.stderr,
            )
    lags = [x for s in stats for x in s["lags"]]
    recorded, distinct = await _count_rungs(url, base - timedelta(seconds=1), base + timedelta(hours=1))
    wall = max(s["wall_seconds"] for s in stats)
    return {
        "label": label,
        "rungs_due": rungs,
        "rungs_recorded": recorded,
        "distinct_rungs": distinct,
        "exactly_once": recorded == distinct == rungs,
        "lag_p50_s": round(_pct(lags, 50), 3),
        "lag_p99_s": round(_pct(lags, 99), 3),
        "lag_max_s": round(max(lags), 3) if lags else None,
        "lag_mean_s": round(statistics.fmean(lags), 3) if lags else None,
        "passes": sum(s["passes"] for s in stats),
        "worker_cpu_pct_of_core": [round(100 * s["cpu_seconds"] / s["wall_seconds"], 1) for s in stats],
        "worker_max_rss_mb": [round(s["max_rss_mb"], 1) for s in stats],
        "postgres_cpu_pct_of_core": round(100 * pg_cpu / wall, 1) if pg_cpu else None,
        "wall_s": round(wall, 1),
        "loadavg_1m_before_after": [round(load_before, 2), round(load_after, 2)],
    }


async def seed(url: str, *, timers: int, rate: float, seconds: float, naive_seconds: float) -> dict[str, int]:
    """Open cases with 2 timers each (first response + resolution); some first responses come due."""
    rt = build_runtime(Settings(database_url=url, run_workers=False, redis_url=None))
    now = datetime.now(UTC)
    due, naive_due = int(rate * seconds), int(rate * naive_seconds)
    filler = timers // 2 - due - naive_due
    started = time.monotonic()
    try:
        for tag, cases, first, per_second in (
            ("idx", due, BASE, rate),
            ("naive", naive_due, NAIVE_BASE, rate),
            ("fill", filler, FAR, rate),
        ):
            async with rt.transaction() as session:
                await seed_timers(
                    session,
                    cases=cases,
                    groups=min(cases, 2000),
                    first_due=first,
                    per_second=per_second,
                    ladder=[("breach", 0.0)],
                    now=now,
                    extra_idle_timers=True,
                    tag=tag,
                )
        async with rt.maker() as session:
            open_timers = int(
                await session.scalar(
                    select(func.count()).select_from(SlaTimer).where(SlaTimer.next_due_at.is_not(None))
                )
                or 0
            )
            if url.startswith("postgresql"):
                await session.execute(text("ANALYZE"))
    finally:
        await close_runtime(rt)
    return {
        "open_timers": open_timers,
        "due": due,
        "naive_due": naive_due,
        "seed_seconds": round(time.monotonic() - started),
    }


async def make_database(kind: str, pg_url: str | None) -> tuple[str, Any]:
    """A fresh migrated database; returns its URL and a cleanup coroutine factory."""
    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="sla-bench-")) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_async(url)
        return url, None
    assert pg_url, "--database-url is required for pg"
    name = f"sla_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = pg_url.rsplit("/", 1)[0] + "/" + name

    async def drop() -> None:
        admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()

    await upgrade_async(url)
    return url, drop


async def main_bench(args: argparse.Namespace) -> None:
    """Seed, run the indexed worker phase and the naive phase, print JSON results."""
    pg = args.kind == "pg"
    timers = args.timers or (1_000_000 if pg else 100_000)
    rate = args.rate or (1000.0 if pg else 200.0)
    processes = args.workers or (2 if pg else 1)
    url, drop = await make_database("pg" if pg else "sqlite", args.database_url)
    try:
        seeded = await seed(
            url, timers=timers, rate=rate, seconds=args.seconds, naive_seconds=args.naive_seconds
        )
        print(json.dumps({"seeded": seeded}), flush=True)
        results = [
            await phase(
                url,
                base=BASE,
                rungs=seeded["due"],
                rate=rate,
                processes=processes,
                naive=False,
                batch=args.batch,
                label=f"indexed worker x{processes}",
            )
        ]
        print(json.dumps(results[-1]), flush=True)
        if args.naive_seconds > 0:
            results.append(
                await phase(
                    url,
                    base=NAIVE_BASE,
                    rungs=seeded["naive_due"],
                    rate=rate,
                    processes=1,
                    naive=True,
                    batch=args.batch,
                    label="naive scan every second x1",
                )
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        if drop is not None:
            await drop()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("pg", "sqlite"):
        p = sub.add_parser(kind)
        p.add_argument("--database-url", default=None, help="PostgreSQL server URL (a scratch DB is made)")
        p.add_argument("--timers", type=int, default=0, help="open timers in total")
        p.add_argument("--rate", type=float, default=0, help="rungs coming due per second")
        p.add_argument("--seconds", type=float, default=60.0, help="length of the indexed phase")
        p.add_argument(
            "--naive-seconds", type=float, default=30.0, help="length of the naive phase (0: skip)"
        )
        p.add_argument("--workers", type=int, default=0, help="indexed worker processes")
        p.add_argument("--batch", type=int, default=200, help="rungs claimed per pass")
    w = sub.add_parser("_worker")
    w.add_argument("--database-url", required=True)
    w.add_argument("--base", required=True)
    w.add_argument("--epoch", type=float, required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--batch", type=int, default=200)
    w.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    if args.kind == "_worker":
        base = as_utc(datetime.fromisoformat(args.base))
        asyncio.run(run_worker(args.database_url, base, args.epoch, Path(args.out), args.naive, args.batch))
    else:
        asyncio.run(main_bench(args))


if __name__ == "__main__":
    main()
