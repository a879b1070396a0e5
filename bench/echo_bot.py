"""Bare python-telegram-bot echo bot: the baseline ceiling for Telegram load benchmarks.

It does nothing but answer every text with the same text, so whatever throughput and latency it
reaches against the Bot API test server is the ceiling PTB itself imposes; Butler is measured
against it. Webhook mode follows PTB's documented custom-webhook pattern (Application with
updater=None behind a plain aiohttp route that checks the secret and enqueues the update), the
same shape as Butler's production route. There is deliberately no 429 handling: measure ceilings
with the server's --rate-limits off, or read its 429 counters at /_control/stats.

Start the test server first, then the bot:

    python -m tests.botapi --port 8081 --rate-limits off
    python bench/echo_bot.py --api-url http://127.0.0.1:8081 --port 8090

Flags:
    --api-url URL             Bot API server root (required); PTB gets URL/bot and URL/file/bot.
    --token TOKEN             bot token (default: the test server's default bot).
    --mode webhook|polling    webhook (default) or long polling.
    --host HOST               interface the webhook receiver binds and advertises (127.0.0.1).
    --port P                  webhook receiver port (default 8090).
    --path PATH               webhook route (default /telegram/webhook).
    --secret S                secret_token for setWebhook, checked on every request (default bench-secret).
    --max-connections N       setWebhook max_connections (default 40, Telegram's default).
    --concurrent-updates N    PTB concurrent_updates (default 1, PTB's own default, which keeps
                              per-chat order). On the 2-core dev box 1 was also the fastest: more
                              concurrency opens more connections and httpcore's pool bookkeeping
                              grows with them (1: ~180/s, 8: ~100/s, 64: ~60/s, all in one process).
    --pool-size N             PTB HTTP connection pool size (default 256, PTB's default).
    --no-set-webhook          do not call setWebhook (the benchmark driver sets it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

# Same value as tests.botapi.server.DEFAULT_TOKEN; bench/ must run without the tests package.
DEFAULT_TOKEN = "7000000001:TEST-butler-default-bot-token"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (documented in the module docstring)."""
    parser = argparse.ArgumentParser(description="Bare PTB echo bot for load benchmarks.")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--mode", choices=("webhook", "polling"), default="webhook")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--path", default="/telegram/webhook")
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--max-connections", type=int, default=40)
    parser.add_argument("--concurrent-updates", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=256)
    parser.add_argument("--no-set-webhook", action="store_true")
    return parser.parse_args(argv)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a text with the same text."""
    if update.message is not None and update.message.text is not None:
        await update.message.reply_text(update.message.text)


def build(args: argparse.Namespace) -> Application:
    """The Application, pointed at the given Bot API server."""
    api = args.api_url.rstrip("/")
    builder = (
        Application.builder()
        .token(args.token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(args.concurrent_updates)
        .connection_pool_size(args.pool_size)
    )
    if args.mode == "webhook":
        builder = builder.updater(None)
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


def webhook_app(app: Application, args: argparse.Namespace) -> web.Application:
    """aiohttp route: check the secret, enqueue the update, answer 200 at once."""

    async def receive(request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != args.secret:
            return web.Response(status=403)
        await app.update_queue.put(Update.de_json(await request.json(), app.bot))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post(args.path, receive)
    return receiver


async def run(args: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    app = build(args)
    async with app:
        await app.start()
        runner: web.AppRunner | None = None
        if args.mode == "webhook":
            runner = web.AppRunner(webhook_app(app, args), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, args.host, args.port).start()
            url = f"http://{args.host}:{args.port}{args.path}"
            if not args.no_set_webhook:
                await app.bot.set_webhook(url, secret_token=args.secret, max_connections=args.max_connections)
            print(f"echo bot @{app.bot.username}: webhook {url}", flush=True)
        else:
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0.0)
            print(f"echo bot @{app.bot.username}: polling {args.api_url}", flush=True)
        try:
            await stop.wait()
        finally:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            await app.stop()
            if runner is not None:
                await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
