"""Production processes: `butler web` (N uvicorn workers, no background work) and `butler worker`.

The worker is the app's lifespan without the public HTTP server: the same runtime, outbox sender,
SLA escalation worker, knowledge and policy refresh and Telegram set-up as the embedded process,
so nothing wired into the app factory is missed. An optional small health server answers
/healthz, /readyz and /metrics. SIGTERM (or SIGINT) lets each pass finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bot.runtime import Runtime
from bot.settings import Settings

log = logging.getLogger("butler.worker")
# Longer than a load balancer's idle timeout (60 s is common), so the other side closes idle connections.
KEEP_ALIVE_SECONDS = 75
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at 2 for this process and the processes it starts.

    glibc gives each thread that allocates its own arena (up to 8 per core), and the database
    threads (aiosqlite runs one per pooled SQLite connection) each kept their own partly used
    heap: the embedded process grew to 245-256 MB under load, 186-201 MB with two arenas
    (docs/BENCHMARKS.md). An operator's MALLOC_ARENA_MAX wins; other C libraries are left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)  # read by glibc in uvicorn's worker processes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS))  # this process: arenas created from now on


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop a process runs on: uvloop (libuv, socket I/O in C) unless asyncio's is asked for.

    `choice` is Settings.event_loop; "auto" falls back to asyncio's loop when uvloop is not installed.
    """
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


# butler web


def prepare_metrics_dir(workers: int, metrics_dir: str | None) -> tuple[str | None, bool]:
    """Set PROMETHEUS_MULTIPROC_DIR for the web processes; returns (dir, created_here).

    Needed when several processes serve one port, so /metrics sums all of them. The directory is
    emptied first: files from an earlier run would count twice.
    """
    chosen = metrics_dir or os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not chosen:
        return None, False
    created = False
    if not chosen:
        chosen, created = tempfile.mkdtemp(prefix="butler-metrics-"), True
    path = Path(chosen)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path), created


def run_web(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    metrics_dir: str | None = None,
    graceful_timeout: int = 10,
) -> None:
    """Serve bot.app:create_web_app with uvicorn and `workers` processes (blocking)."""
    directory, created = prepare_metrics_dir(workers, metrics_dir)
    log.info(
        "web: %d process(es) on %s:%d%s",
        workers,
        host,
        port,
        f", metrics in {directory}" if directory else "",
    )
    try:
        uvicorn.run(
            "bot.app:create_web_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,  # each process configures logging in create_web_app
            access_log=False,  # butler.access logs route templates, never query strings
            timeout_graceful_shutdown=graceful_timeout,
            server_header=False,
            loop=settings.event_loop,
            # Idle keep-alive connections are closed by the client or proxy first (load balancers idle
            # out at 60 s): when the server closes first, a request already sent on that connection fails.
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            # A fresh worker imports the whole app before it can answer uvicorn's supervisor; on a
            # busy small machine that takes longer than the 5 s default, and it would be killed.
            timeout_worker_healthcheck=60,
        )
    finally:
        if created and directory:
            shutil.rmtree(directory, ignore_errors=True)


# butler worker


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the worker."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Signals are the worker's business."""
        yield


def health_app(rt: Runtime) -> FastAPI:
    """The worker's small health server: liveness, readiness, metrics."""
    from handlers.ops import router as ops_router

    app = FastAPI(title="Butler worker", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.rt = rt

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """The worker's loop is running."""
        return JSONResponse({"status": "ok", "role": "worker", "pid": os.getpid()})

    app.include_router(ops_router)
    return app


async def serve_worker(
    settings: Settings,
    *,
    health_host: str = "127.0.0.1",
    health_port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the background passes until SIGTERM / SIGINT (or `stop`), then shut down gracefully."""
    from bot.app import create_app

    settings.run_workers = True
    app = create_app(settings, server_process=True)
    rt: Runtime = app.state.rt
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server: _QuietServer | None = None
    server_task: asyncio.Task[None] | None = None
    try:
        async with app.router.lifespan_context(app):
            if health_port is not None:
                config = uvicorn.Config(
                    health_app(rt),
                    host=health_host,
                    port=health_port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
                server = _QuietServer(config)
                server_task = asyncio.create_task(server.serve(), name="worker-health")
            log.info(
                "worker running (outbox sender, SLA escalation, knowledge refresh)%s",
                f"; health on {health_host}:{health_port}" if health_port is not None else "",
            )
            await stop.wait()
            log.info("worker stopping: finishing the current passes")
            if server is not None and server_task is not None:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server_task, timeout=5)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("worker stopped")
