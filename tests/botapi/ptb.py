"""Helpers to run the real python-telegram-bot against the test server (test side only)."""

from __future__ import annotations

import datetime as dtm
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from telegram import Bot
from telegram.ext import Application
from telegram.request import HTTPXRequest

from tests.botapi.server import BotApiServer


def ptb_app(server: BotApiServer, *, polling: bool = True, token: str | None = None) -> Application:
    """An Application pointed at the server; polling=False builds it with updater=None (webhook)."""
    builder = (
        Application.builder()
        .token(token or server.token)
        .base_url(f"{server.url}/bot")
        .base_file_url(f"{server.url}/file/bot")
    )
    if not polling:
        builder = builder.updater(None)
    return builder.build()


def ptb_bot(server: BotApiServer, token: str | None = None, **request_kwargs: Any) -> Bot:
    """A bare Bot for direct calls; request_kwargs go to HTTPXRequest (e.g. read_timeout=0.3)."""
    request = HTTPXRequest(**request_kwargs) if request_kwargs else None
    return Bot(
        token or server.token,
        base_url=f"{server.url}/bot",
        base_file_url=f"{server.url}/file/bot",
        request=request,
    )


@asynccontextmanager
async def run_polling(app: Application, *, poll_timeout: float = 1.0) -> AsyncIterator[Application]:
    """Initialize, start and long-poll for the duration of the block, then shut down."""
    async with app:
        await app.start()
        assert app.updater is not None
        # A short long-poll timeout keeps shutdown quick; the server returns early on new updates anyway.
        await app.updater.start_polling(poll_interval=0.0, timeout=dtm.timedelta(seconds=poll_timeout))
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


@asynccontextmanager
async def webhook_receiver(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str = "/telegram/webhook"
) -> AsyncIterator[str]:
    """Serve `handler` at `path` on a free port of 127.0.0.1; yields the webhook URL."""
    receiver = web.Application()
    receiver.router.add_post(path, handler)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = getattr(site, "_server", None)
    port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else 0
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()
