"""The FastAPI application factory: web chat, console, REST API, and in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware

from bot.clock import Clock
from bot.errors import DomainError
from bot.factory import build_runtime, close_runtime
from bot.loop_watch import LoopWatch
from bot.outbox.sender import OutboxSender
from bot.runtime import Runtime
from bot.settings import Settings
from bot.teams.auth import make_throttle
from escalation.policy_store import prepare_policies, run_policy_refresh
from handlers.api.routes import router as api_router
from handlers.common import error_response
from handlers.console.admin_routes import router as admin_router
from handlers.console.auth import LoginRequired
from handlers.console.dashboard import router as dashboard_router
from handlers.console.pages import render_error
from handlers.console.pages import router as console_router
from handlers.console.vendor import router as vendor_router
from handlers.ops import install_ops
from handlers.webchat.pages import router as webchat_router
from knowledge.worker import prepare_index, run_index_refresh

log = logging.getLogger(__name__)
Worker = Callable[[Runtime, asyncio.Event], Coroutine[None, None, None]]
ROOT = Path(__file__).resolve().parent.parent
# On shutdown, workers get this long to finish the pass they are in before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 20.0


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    workers: list[Worker] | None = None,
    server_process: bool = False,
) -> FastAPI:
    """Build the app; the runtime and background workers live for the lifespan.

    `server_process` (`butler run`, `butler web`, `butler worker`): once started, move everything
    alive into the garbage collector's permanent generation (see `lifespan`) and watch the event loop
    (`bot.loop_watch`).
    """
    settings = settings or Settings()
    rt = build_runtime(settings, clock=clock)
    extra_workers = list(workers or [])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        # "uvloop" or "asyncio" (Settings.event_loop): says which loop this process really runs on.
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])
        await prepare_index(rt)
        await prepare_policies(rt)  # SLA policies saved in the console win over the YAML file
        if server_process:
            # The knowledge index, dictionaries and modules live as long as the process; without
            # this every full collection walks them again and adds 50-100 ms to a request now and
            # then (bench/console_pages.py: dashboard drill-down p95 121 ms -> 55 ms).
            gc.collect()
            gc.freeze()
            # Young collections every 5,000 net allocations (Settings.gc_young_threshold), not 700:
            # under load the default promoted the objects of requests in flight (ORM rows,
            # coroutines, Telegram updates) to older generations, collected again and again. A web
            # process at 134 msg/s spent 25 ms of every second collecting, with full collections of
            # up to 42 ms; with 5,000, 5 ms and none over 16 ms (docs/BENCHMARKS.md).
            gc.set_threshold(settings.gc_young_threshold, 10, 10)
        # Every process keeps its own index and SLA policies current, workers or not.
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(run_index_refresh(rt, stop), name="kb-refresh"),
            asyncio.create_task(run_policy_refresh(rt, stop), name="sla-policies-refresh"),
        ]
        if server_process:
            watch = LoopWatch(settings.loop_warn_ms / 1000)
            tasks.append(asyncio.create_task(watch.run(), name="loop-watch"))
        passes: list[asyncio.Task[None]] = []
        if settings.run_workers:
            for worker in [run_outbox_sender, *default_workers(), *extra_workers]:
                passes.append(
                    asyncio.create_task(worker(rt, stop), name=getattr(worker, "__name__", "worker"))
                )
        tasks += passes
        try:
            yield
        finally:
            stop.set()
            if rt.sender is not None:
                rt.sender.wake()
            if passes:  # let each worker finish the pass it is in
                await asyncio.wait(passes, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await app.state.throttle.close()
            await close_runtime(rt)

    app = FastAPI(
        title="Butler",
        version="0.1.0",
        lifespan=lifespan,
        description="Butler-team customer service for car owners: web chat, staff console, REST API.",
    )
    app.state.rt = rt
    app.state.throttle = make_throttle(settings.redis_url)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="butler_console",
        same_site="lax",
        https_only=bool(settings.public_url and settings.public_url.startswith("https")),
        max_age=12 * 3600,
    )
    install_ops(app)  # /readyz, /metrics; outermost middleware: request ids, access log, metrics, 500s

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if request.url.path.startswith("/console"):
            return render_error(request, exc)
        return error_response(exc)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """Liveness and database reachability."""
        try:
            async with rt.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/console/")

    if settings.telegram_token:
        from handlers.telegram.wiring import install_telegram

        # First: routes are matched in order, and behind the console's (scanned for every update)
        # matching took 0.15 ms per webhook call, 7% of the web process's samples.
        extra_workers.extend(install_telegram(app, rt))
    app.include_router(api_router)
    app.include_router(webchat_router)
    app.include_router(console_router)
    app.include_router(dashboard_router)
    app.include_router(admin_router)
    app.include_router(vendor_router)
    app.mount(
        "/static/console",
        StaticFiles(directory=ROOT / "handlers" / "console" / "static"),
        name="console-static",
    )
    app.mount(
        "/static/webchat",
        StaticFiles(directory=ROOT / "handlers" / "webchat" / "static"),
        name="webchat-static",
    )
    return app


def create_web_app() -> FastAPI:
    """Factory for `butler web` (uvicorn --factory): webhook, console and API, no background workers.

    Settings come from the environment in each web process; logging is configured here because
    uvicorn starts its worker processes fresh.
    """
    from bot.logs import configure_logging

    settings = Settings()
    settings.run_workers = False  # outbox, SLA and Telegram set-up belong to `butler worker`
    configure_logging(settings)
    return create_app(settings, server_process=True)


def default_workers() -> list[Worker]:
    """Workers every full process runs besides the outbox sender (the SLA worker)."""
    try:
        from escalation.worker import run_escalation_worker
    except ImportError:  # the SLA worker is optional until it exists
        return []
    return [run_escalation_worker]


async def run_outbox_sender(rt: Runtime, stop: asyncio.Event) -> None:
    """Deliver outbox rows for the channels this process has deliverers for."""
    if not rt.deliverers:
        return
    sender = OutboxSender(
        rt.maker,
        rt.clock,
        rt.deliverers,
        max_attempts=rt.settings.outbox_max_attempts,
        idle_seconds=rt.settings.outbox_poll_seconds,
        serial=rt.serial,
        publish=rt.publish,
    )
    rt.sender = sender
    # Rows committed by other processes announce themselves on the bus (Redis when scaled).
    listener = asyncio.create_task(_wake_on_bus(rt, sender), name="outbox-bus-listener")
    try:
        await sender.run(stop)
    finally:
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener


async def _wake_on_bus(rt: Runtime, sender: OutboxSender) -> None:
    async for _event in rt.bus.subscribe(["outbox"]):
        sender.wake()
