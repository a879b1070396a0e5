"""Run the Bot API test server standalone: python -m tests.botapi --port 8081 [--rate-limits on|off]."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tests.botapi.server import DEFAULT_TOKEN, BotApiServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m tests.botapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument(
        "--rate-limits",
        choices=("on", "off"),
        default="on",
        help="Telegram's flood limits (30/s per bot, 1/s per private chat, 20/min per group)",
    )
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="token of the default bot")
    parser.add_argument("--username", default="butler_test_bot")
    parser.add_argument(
        "--webhook-retry-base",
        type=float,
        default=0.2,
        help="first webhook retry delay in seconds (doubles up to 2 s)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT/SIGTERM."""
    server = BotApiServer(
        host=args.host,
        port=args.port,
        rate_limits=args.rate_limits == "on",
        token=args.token,
        username=args.username,
        webhook_retry_base=args.webhook_retry_base,
    )
    await server.start()
    print(
        f"Bot API test server on {server.url} (token {server.token}, rate limits {args.rate_limits})",
        flush=True,
    )
    print(f"  PTB: base_url={server.url}/bot base_file_url={server.url}/file/bot", flush=True)
    print(
        f"  control: POST {server.url}/_control/users/<id>/text  GET {server.url}/_control/stats", flush=True
    )
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
