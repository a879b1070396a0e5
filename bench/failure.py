"""Failure survival at full size: SIGKILLs, a Redis outage, a PostgreSQL restart under Telegram traffic.

    .venv/bin/python bench/failure.py                  # all three, full size (about 10 minutes)
    .venv/bin/python bench/failure.py kill --messages 2000

Each scenario runs on its own PostgreSQL cluster and Redis (temporary directory, free ports), with
`butler web --workers 2` and two `butler worker` processes behind the Bot API test server's webhook
delivery. Prints one JSON object per scenario (the numbers in docs/BENCHMARKS.md, "Failure survival").
The pytest version with fewer messages is tests/failure/test_failure_survival.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.failure.harness import Scenario, run_scenario  # noqa: E402
from tests.failure.services import PgCluster, RedisServer, missing_prerequisites  # noqa: E402


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The three scenarios at the requested size."""
    n, rate = args.messages, args.rate
    inject = n / rate
    made = {
        "kill": Scenario(
            "kill", n, rate, kill_every=args.kill_every, workers=args.workers, drain_timeout=900
        ),
        "redis": Scenario(
            "redis",
            n,
            rate,
            redis_down=(min(5.0, inject / 4), args.redis_seconds),
            workers=args.workers,
            drain_timeout=900,
        ),
        "pg": Scenario(
            "pg",
            n,
            rate,
            pg_down=(min(5.0, inject / 4), args.pg_seconds),
            workers=args.workers,
            drain_timeout=900,
        ),
    }
    return [made[name] for name in args.which or ["kill", "redis", "pg"]]


async def main(args: argparse.Namespace) -> int:
    """Run the scenarios; exit 1 if one lost a message or duplicated an SLA step."""
    missing = missing_prerequisites()
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    failed = 0
    for scenario in scenarios(args):
        with tempfile.TemporaryDirectory(prefix=f"butler-failure-{scenario.name}-") as tmp:
            started = time.monotonic()
            base = Path(tmp)
            if args.keep:
                base = Path(args.keep) / scenario.name
                base.mkdir(parents=True)
            pg, redis = PgCluster(), RedisServer(base)
            await asyncio.to_thread(pg.init)
            await asyncio.to_thread(pg.start)
            await asyncio.to_thread(redis.start)
            try:
                result = await run_scenario(scenario, base, pg, redis)
            finally:
                await asyncio.to_thread(redis.stop)
                await asyncio.to_thread(pg.remove)
            summary = {**result.summary(), "total_seconds": round(time.monotonic() - started, 1)}
            print(json.dumps(summary, ensure_ascii=False), flush=True)
            failed += bool(summary["lost"] or summary["stored_twice"] or summary["sla_steps_duplicated"])
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="bench/failure.py", description=__doc__)
    parser.add_argument("which", nargs="*", help="kill, redis and/or pg (default: all three)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="injected messages per second")
    parser.add_argument("--workers", type=int, default=2, help="`butler worker` processes")
    parser.add_argument("--redis-seconds", type=float, default=30.0)
    parser.add_argument("--pg-seconds", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between SIGKILLs")
    parser.add_argument("--keep", help="put data and process logs under this directory and keep them")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
