"""Throwaway PostgreSQL and Redis servers, and the Butler processes (`butler web`, `butler worker`).

The failure scenarios stop and restart these, so they never touch the machine's shared services:
each run gets its own PostgreSQL cluster and Redis on free ports in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[2]
PG_BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live (PATH first, then Debian's versioned directories)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # /usr/local/bin may hold symlinks to initdb only
    return next((d for d in PG_BIN_DIRS if (d / "initdb").exists()), None)


def missing_prerequisites() -> list[str]:
    """What the scenarios need and this machine lacks."""
    missing = []
    if pg_bin_dir() is None:
        missing.append("PostgreSQL server binaries (initdb, pg_ctl)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (initdb refuses root)")
    return missing


def _as_owner(cmd: list[str]) -> list[str]:
    """Run a PostgreSQL command as `postgres` when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PgCluster:
    """A private PostgreSQL cluster: trust auth on 127.0.0.1, no fsync (data is thrown away)."""

    def __init__(self, port: int | None = None) -> None:
        self.bin = pg_bin_dir()
        assert self.bin is not None, "PostgreSQL binaries not found"
        # Its own directory under /tmp: `postgres` cannot reach into pytest's private tmp dirs.
        self.home = Path(tempfile.mkdtemp(prefix="butler-pg-"))
        self.dir = self.home / "data"
        self.port = port or free_port()
        self.log = self.home / "pg.log"

    def init(self) -> None:
        """initdb (owned by `postgres` when running as root)."""
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
        initdb = str(self.bin / "initdb")
        self._run([initdb, "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync"])

    def remove(self) -> None:
        """Stop if running and delete the cluster."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.dir}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [str(self.bin / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log), "-o", opts, "-w", "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop (fast: disconnect everybody, like a restart by the operator)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "stop"])

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        """CREATE DATABASE; returns its URL."""
        admin = create_async_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            await admin.dispose()
        return self.url(name)

    def _run(self, cmd: list[str]) -> None:
        done = subprocess.run(_as_owner(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {done.stderr.decode(errors='replace')[-500:]}")


class RedisServer:
    """A private redis-server without persistence; stop() and start() keep the port."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = base
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start and wait for PING."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: Redis vanishes as in a crash (no goodbye to its clients)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Proc:
    """One Butler process we supervise."""

    role: str  # web | worker
    popen: subprocess.Popen[bytes]
    health_url: str


@dataclass
class Butler:
    """`butler web --workers N` and M `butler worker` processes, restarted when they die (like systemd)."""

    env: dict[str, str]
    web_port: int
    web_workers: int = 2
    workers: int = 1
    log_dir: Path | None = None
    procs: list[Proc] = field(default_factory=list)
    kills: list[tuple[float, str, int]] = field(default_factory=list)
    restarts: int = 0

    @property
    def url(self) -> str:
        """The web processes' base URL."""
        return f"http://127.0.0.1:{self.web_port}"

    def _spawn(self, role: str, index: int) -> Proc:
        exe = Path(sys.executable).with_name("butler")
        if role == "web":
            args = ["web", "--workers", str(self.web_workers), "--port", str(self.web_port)]
            health = self.url + "/healthz"
        else:
            port = free_port()
            args = ["worker", "--health-port", str(port)]
            health = f"http://127.0.0.1:{port}/healthz"
        out = open(self.log_dir / f"{role}{index}.log", "ab") if self.log_dir else subprocess.DEVNULL
        # A session of its own: stop() can take down uvicorn's worker processes with their supervisor.
        popen = subprocess.Popen(
            [str(exe), *args], cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        return Proc(role, popen, health)

    def start(self) -> None:
        """Start everything and wait until every process answers /healthz."""
        self.procs = [self._spawn("web", 0)] + [self._spawn("worker", i + 1) for i in range(self.workers)]
        for proc in self.procs:
            wait_healthy(proc.health_url, proc.popen)

    def web_children(self) -> list[int]:
        """Pids of uvicorn's worker processes (the supervisor restarts them when they die)."""
        parent = self.procs[0].popen.pid
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            return [int(p) for p in text.split() if _is_uvicorn_worker(int(p))]
        return []

    def kill_random(self, rng: random.Random) -> tuple[str, int]:
        """SIGKILL one web worker process or one `butler worker`; returns (role, pid)."""
        targets = [("web", pid) for pid in self.web_children()]
        targets += [
            ("worker", p.popen.pid) for p in self.procs if p.role == "worker" and p.popen.poll() is None
        ]
        role, pid = rng.choice(targets)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.kills.append((time.monotonic(), role, pid))
        return role, pid

    def supervise(self) -> None:
        """Restart dead `butler worker` processes (uvicorn's supervisor restarts web workers itself)."""
        for i, proc in enumerate(self.procs):
            if proc.popen.poll() is not None:
                proc.popen.wait()
                self.procs[i] = self._spawn(proc.role, i)
                self.restarts += 1

    def all_up(self) -> bool:
        """Every process alive and the web supervisor at full strength."""
        return (
            all(p.popen.poll() is None for p in self.procs) and len(self.web_children()) >= self.web_workers
        )

    def healthy(self) -> bool:
        """Every process answers /healthz right now."""
        for proc in self.procs:
            try:
                if httpx.get(proc.health_url, timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def stop(self) -> None:
        """SIGTERM everything, SIGKILL what does not exit."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
            # A web worker the supervisor did not wait for (it was SIGKILLed above, or a worker was
            # starting as it stopped) would outlive the test, serving on its port.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)


def _is_uvicorn_worker(pid: int) -> bool:
    """A spawned uvicorn worker, not multiprocessing's resource tracker."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmd


def wait_healthy(url: str, popen: subprocess.Popen[bytes] | None = None, timeout: float = 120) -> float:
    """Poll /healthz until it answers 200; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if popen is not None and popen.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {popen.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")
