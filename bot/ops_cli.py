"""`butler web` and `butler worker`: the scaled deployment's two processes."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the production commands to the `butler` CLI."""
    app.command()(web)
    app.command()(worker)


def web(
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes")] = 1,
    host: Annotated[str | None, typer.Option(help="bind address (BUTLER_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (BUTLER_PORT)")] = None,
    metrics_dir: Annotated[
        str | None,
        typer.Option(help="PROMETHEUS_MULTIPROC_DIR for several workers (default: a fresh temp dir)"),
    ] = None,
    graceful_timeout: Annotated[int, typer.Option(help="seconds open connections get on shutdown")] = 10,
) -> None:
    """Serve webhook, console and API with N processes; no background work (see `butler worker`).

    Does not migrate: run `butler migrate` first (/readyz answers 503 until the schema is at head).
    """
    from bot.cli import _settings
    from bot.logs import configure_logging
    from bot.processes import run_web

    settings = _settings()
    configure_logging(settings)
    run_web(
        settings,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        metrics_dir=metrics_dir,
        graceful_timeout=graceful_timeout,
    )


def worker(
    health_port: Annotated[
        int | None, typer.Option(help="serve /healthz, /readyz and /metrics on this port (default: off)")
    ] = None,
    health_host: Annotated[str, typer.Option(help="bind address of the health port")] = "127.0.0.1",
) -> None:
    """Run the outbox sender, the SLA escalation worker and the knowledge refresh until SIGTERM."""
    from bot.cli import _settings
    from bot.logs import configure_logging
    from bot.processes import loop_factory, serve_worker

    settings = _settings()
    configure_logging(settings)
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        runner.run(serve_worker(settings, health_host=health_host, health_port=health_port))
