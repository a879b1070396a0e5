"""Processes for the load benchmark: databases, Butler / echo-bot children, and /proc sampling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BUTLER = (
    [sys.executable, "-m", "bot.cli"]
    if not (Path(sys.executable).parent / "butler").exists()
    else [str(Path(sys.executable).parent / "butler")]
)
TICK = os.sysconf("SC_CLK_TCK")
# Enough specialists that 1,000 customers never hit capacity: a full team forms for everyone.
BENCH_STAFF_PER_ROLE = 25
BENCH_STAFF_CAPACITY = 500
STAFF_CHAT = -1009000000777  # the staff supergroup on the Bot API test server


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- /proc ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    """Resident set size in MB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pids_named(name: str) -> list[int]:
    """Every process whose command name is `name` (the whole PostgreSQL server: run under the lock)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(entry.path, "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def loadavg() -> float:
    """1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Sampler:
    """CPU share and peak RSS of labelled process groups over a window (one benchmark step)."""

    pids: dict[str, list[int]]
    cpu0: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    t0: float = 0.0
    task: asyncio.Task[None] | None = None

    cpu_pid: dict[int, float] = field(default_factory=dict)

    def _cpu(self, label: str) -> float:
        return sum(cpu_seconds(p) for p in self.pids[label])

    def _cpu_delta(self, label: str) -> float:
        """CPU used since start by the group's processes still alive (a closed pool connection's
        backend is gone, and its time with it). The "postgres" group is every PostgreSQL process
        at the end, so backends opened during the step count too (all their time is in the step)."""
        total = 0.0
        if label == "postgres":
            self.pids[label] = pids_named("postgres")
        for p in self.pids[label]:
            now = cpu_seconds(p)
            if now > 0:
                total += now - self.cpu_pid.get(p, 0.0)
        return total

    def _rss(self, label: str) -> float:
        return sum(rss_mb(p) for p in self.pids[label])

    def start(self) -> None:
        """Snapshot CPU times and start polling RSS."""
        if "postgres" in self.pids:
            self.pids["postgres"] = pids_named("postgres")
        self.t0 = time.monotonic()
        self.cpu0 = {k: self._cpu(k) for k in self.pids}
        self.cpu_pid = {p: cpu_seconds(p) for group in self.pids.values() for p in group}
        self.rss = {k: self._rss(k) for k in self.pids}
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for k in self.pids:
                self.rss[k] = max(self.rss.get(k, 0.0), self._rss(k))

    def stop(self) -> dict[str, dict[str, float]]:
        """{label: {cpu_pct, rss_mb}} since start (cpu_pct: % of one core, summed over the group)."""
        if self.task is not None:
            self.task.cancel()
        wall = max(time.monotonic() - self.t0, 1e-6)
        return {
            k: {
                "cpu_pct": round(100 * self._cpu_delta(k) / wall, 1),
                "rss_mb": round(max(self.rss.get(k, 0.0), self._rss(k)), 1),
            }
            for k in self.pids
        }


# ---- databases --------------------------------------------------------------------------------------


async def recreate_pg(url: str) -> None:
    """Drop and create the benchmark database named in `url` (connects to `postgres` for that)."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    target = make_url(url)  # also postgresql+asyncpg://user@/db?host=/var/run/postgresql (Unix socket)
    name = target.database
    dsn = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database (its own db number)."""
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


class AutoAnalyze:
    """Autovacuum's ANALYZE, for a server that runs with autovacuum off (this machine's does).

    Production keeps autovacuum on (docs/operations.md). Without it the planner never learns that
    the benchmark's tables grew from empty to tens of thousands of rows: the outbox claim then
    scans every pending row (31 ms with 15,500 queued instead of 0.6 ms after ANALYZE). Every
    `naptime` seconds this analyzes the tables autovacuum would: rows changed since the last
    analyze > 50 + 10% of the table (autovacuum_analyze_threshold / _scale_factor defaults).
    """

    SQL = (
        "SELECT relname FROM pg_stat_user_tables"
        " WHERE n_mod_since_analyze > 50 + 0.1 * n_live_tup ORDER BY relname"
    )

    def __init__(self, url: str, naptime: float = 30.0) -> None:
        self.url, self.naptime = url, naptime
        self.passes: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin analyzing in the background if the server's own autovacuum is off."""
        import asyncpg  # type: ignore[import-untyped]
        from sqlalchemy.engine import make_url

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn = await asyncpg.connect(dsn)
        if await self._conn.fetchval("SHOW autovacuum") == "on":
            await self._conn.close()
            return
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.naptime)
            started = time.monotonic()
            tables = [r["relname"] for r in await self._conn.fetch(self.SQL)]
            for table in tables:
                await self._conn.execute(f'ANALYZE "{table}"')
            self.passes.append({"tables": len(tables), "seconds": round(time.monotonic() - started, 3)})

    async def stop(self) -> list[dict[str, Any]]:
        """Stop; returns one entry per pass (tables analyzed, seconds taken)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self._conn.close()
        return self.passes


def migrate(url: str) -> None:
    """Bring the schema to head in a child process (Alembic runs its own event loop)."""
    env = {**os.environ, "BUTLER_DATABASE_URL": url}
    subprocess.run([*BUTLER, "migrate"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


async def seed(url: str) -> None:
    """Demo data plus enough bench specialists per team role."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from bot.db import make_engine, make_sessionmaker, session_scope
    from bot.seed import seed_demo
    from bot.teams.models import Dealer, Staff

    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            await seed_demo(session, password_hash="bench-no-login")
            dealer = await session.scalar(select(Dealer.id).order_by(Dealer.id).limit(1))
            now = datetime.now(UTC)
            for role in ("butler", "sales", "service", "factory"):
                for i in range(BENCH_STAFF_PER_ROLE):
                    session.add(
                        Staff(
                            username=f"bench-{role}-{i}",
                            display_name=f"Bench {role.title()} {i}",
                            role=role,
                            languages=["zh-CN", "en"],
                            dealer_id=dealer,
                            capacity=BENCH_STAFF_CAPACITY,
                            on_duty=True,
                            active=True,
                            password_hash="bench-no-login",
                            created_at=now,
                        )
                    )
    finally:
        await engine.dispose()


# ---- child processes --------------------------------------------------------------------------------


@dataclass
class Child:
    """A process this benchmark started (and only those are stopped)."""

    label: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


HELD = re.compile(r"event loop held (\d+) ms \(process CPU (\d+) ms, garbage collection (\d+) ms\) at (.*)")


class HoldLog:
    """The event-loop holds Butler's processes log (bot.loop_watch), read from their log files."""

    def __init__(self, kids: list[Child]) -> None:
        self.files = {kid.label: kid.log for kid in kids}
        self.offsets = dict.fromkeys(self.files, 0)

    def skip(self) -> None:
        """Forget what the logs hold so far."""
        for label, path in self.files.items():
            with contextlib.suppress(OSError):
                self.offsets[label] = path.stat().st_size

    def read(self) -> list[dict[str, Any]]:
        """The holds logged since the last skip or read."""
        holds = []
        for label, path in self.files.items():
            with contextlib.suppress(OSError), path.open("rb") as f:
                f.seek(self.offsets[label])
                data = f.read()
                data = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
                self.offsets[label] += len(data)
                for m in HELD.finditer(data.decode("utf-8", "replace")):
                    held, cpu, gc_ms, where = m.groups()
                    holds.append(
                        {"process": label, "held_ms": int(held), "cpu_ms": int(cpu), "gc_ms": int(gc_ms)}
                        | {"where": where.strip()}
                    )
        return holds


def spawn(label: str, cmd: list[str], env: dict[str, str], workdir: Path) -> Child:
    """Start a child with its output in workdir/<label>.log."""
    log = workdir / f"{label}.log"
    out = log.open("wb")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return Child(label, proc, log)


async def prepare_butler(
    *, embedded: bool, workdir: Path, database_url: str, redis_url: str, port: int, api_url: str, token: str
) -> tuple[str, dict[str, str]]:
    """Migrate and seed a fresh store (SQLite file, or PostgreSQL + Redis); returns (db url, Butler env)."""
    url, redis = (f"sqlite+aiosqlite:///{workdir}/butler.db", None) if embedded else (database_url, redis_url)
    if redis is not None:
        await recreate_pg(url)
        await flush_redis(redis)
    migrate(url)
    await seed(url)
    env = butler_env(
        db_url=url,
        redis_url=redis,
        port=port,
        api_url=api_url,
        token=token,
        staff_chat=STAFF_CHAT,
        workdir=workdir,
    )
    return url, env


def butler_env(
    *, db_url: str, redis_url: str | None, port: int, api_url: str, token: str, staff_chat: int, workdir: Path
) -> dict[str, str]:
    """Settings shared by every Butler process of one mode (webhook mode against the test server)."""
    env = {
        "BUTLER_DATABASE_URL": db_url,
        "BUTLER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "BUTLER_HOST": "127.0.0.1",
        "BUTLER_PORT": str(port),
        "BUTLER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BUTLER_TELEGRAM_TOKEN": token,
        "BUTLER_TELEGRAM_API_BASE_URL": api_url,
        "BUTLER_TELEGRAM_STAFF_CHAT_ID": str(staff_chat),
        "BUTLER_TELEGRAM_MODE": "webhook",
        "BUTLER_TELEGRAM_WEBHOOK_SECRET": "bench-webhook-secret",
        "BUTLER_MEDIA_DIR": str(workdir / "media"),
        "BUTLER_KB_SEMANTIC": "off",
        # A step fails at p99 > 200 ms: holds of half that are what a failing step needs explained.
        "BUTLER_LOOP_WARN_MS": os.environ.get("BUTLER_LOOP_WARN_MS", "100"),
    }
    if redis_url:
        env["BUTLER_REDIS_URL"] = redis_url
    return env


async def wait_http(url: str, limit: float = 90.0) -> None:
    """Poll until GET url answers 200."""
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 in {limit:.0f} s")
            await asyncio.sleep(0.3)


def labelled_pids(kids: list[Child]) -> dict[str, list[int]]:
    """Every process to sample: each child and, for uvicorn supervisors, its worker processes."""
    pids: dict[str, list[int]] = {}
    for child in kids:
        pids[child.label] = [child.proc.pid]
        # multiprocessing's resource tracker is a child too; it is tiny and idle.
        kids = [p for p in sorted(children(child.proc.pid)) if "resource_tracker" not in _cmdline(p)]
        for n, pid in enumerate(kids, start=1):
            pids[f"{child.label}.{n}"] = [pid]
    return pids


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def summary(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values; inf when empty."""
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def fmt(value: Any) -> str:
    """Milliseconds for a latency in seconds."""
    return "inf" if value == float("inf") else f"{value * 1000:.0f}"
