"""Telegram outbox benchmark: 1,500 messages to 50 private chats and 2 staff topics, limits enforced.

The Bot API test server runs in a child process with Telegram's flood limits on (30 msg/s per bot,
1 msg/s per private chat with no burst, 20 msg/min per group) and records every message with its
arrival time. This process fills the outbox (SQLite by default) and runs the product's own
OutboxSender + TelegramDeliverer (real PTB over HTTP) until the outbox is empty, then checks:

- nothing lost: every row sent, each text arrived exactly once;
- per-chat order: every chat and topic received its messages in enqueue order;
- rate: overall (all messages, first to last arrival) and sustained (the middle 90% of the
  messages, i.e. without connection warm-up and the last stragglers) against 30 msg/s;
- 429s: how many the server issued, whether any send was started inside a retry_after the sender
  had received (never), and how many requests the server counts as early because they were already
  on their way when it issued the 429 (its "not_honoured").

The mix is 1,480 private messages (29-30 per chat) and 20 topic messages (10 per topic): a group
takes 20 messages a minute, so 20 is what two topics of one staff group can carry in a ~50 s run.

    python bench/outbox_telegram.py                       # SQLite, in-process limiter
    python bench/outbox_telegram.py --redis-url redis://127.0.0.1:6379/0
    python bench/outbox_telegram.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GROUP_ID = -1007770000001
FIRST_USER = 8001


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--private", type=int, default=1480, help="messages to private chats")
    parser.add_argument("--topic-messages", type=int, default=20, help="messages to the 2 topics")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", default=None, help="share the limiter through Redis")
    parser.add_argument("--idle", type=float, default=0.2, help="sender idle wake-up (s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--timeline", action="store_true", help="also print arrivals per second")
    return parser.parse_args(argv)


def serve_botapi(conn: Connection, chats: int) -> None:
    """Child process: the test server with limits on; reports what arrived when asked."""
    from tests.botapi import BotApiServer

    async def main() -> None:
        async with BotApiServer(rate_limits=True) as server:
            for uid in range(FIRST_USER, FIRST_USER + chats):
                server.user(uid, f"U{uid}", started=True)
            admin = server.user(9999, "Admin", started=True)
            group = server.supergroup(GROUP_ID, "Staff", bot_rights={"can_manage_topics": True})
            topics = [(await group.create_topic(admin, name)).message_thread_id for name in ("T1", "T2")]
            conn.send({"url": server.url, "token": server.token, "topics": topics})
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # the parent says "report"
            sent: dict[str, list[tuple[str, float]]] = {}
            for uid in [*range(FIRST_USER, FIRST_USER + chats), GROUP_ID]:
                for msg in server.sent(uid):
                    key = f"{uid}:{msg.thread_id}" if uid == GROUP_ID else str(uid)
                    sent.setdefault(key, []).append((msg.text or "", msg.at))
            scopes: dict[str, int] = {}
            for event in server.rate_limit_events:
                scopes[event.scope] = scopes.get(event.scope, 0) + 1
            stats = {**server.rate_limit_stats, "by_scope": scopes}
            conn.send({"sent": sent, "stats": stats, "errors": len(server.internal_errors)})

    asyncio.run(main())


async def run(args: argparse.Namespace, server: dict[str, Any]) -> dict[str, Any]:
    """Fill the outbox, deliver it with the product's sender and deliverer, return timings."""
    from bot.db import make_engine
    from bot.factory import build_runtime, close_runtime
    from bot.migrate import upgrade_async
    from bot.outbox import service as outbox_service
    from bot.outbox.sender import OutboxSender
    from bot.settings import Settings
    from handlers.telegram.application import build_sender_bot
    from handlers.telegram.deliverer import TelegramDeliverer
    from handlers.telegram.limiter import make_limiter

    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    await upgrade_async(url)
    settings = Settings(
        database_url=url,
        redis_url=args.redis_url,
        run_workers=False,
        telegram_token=server["token"],
        telegram_api_base_url=server["url"],
    )
    rt = build_runtime(settings)
    lanes: list[tuple[str, dict[str, Any]]] = [
        (f"tg:{uid}", {"chat_id": uid}) for uid in range(FIRST_USER, FIRST_USER + args.chats)
    ]
    per_lane = {lane: 0 for lane, _ in lanes}
    # Topic messages first: a group takes one message per ~1.2 s, so they are drained from the
    # start while the private chats fill the rest of the 30/s (queued last, they would trail).
    plan: list[tuple[str, dict[str, Any]]] = [
        (f"tg:topic:{thread}", {"chat_id": GROUP_ID, "thread_id": thread})
        for thread in (server["topics"][i % 2] for i in range(args.topic_messages))
    ]
    plan += [lanes[i % args.chats] for i in range(args.private)]
    async with rt.transaction() as session:
        for lane, target in plan:
            per_lane[lane] = per_lane.get(lane, 0) + 1
            text = f"{lane}#{per_lane[lane]:03d}"
            outbox_service.enqueue(
                session,
                channel="telegram",
                lane=lane,
                payload={**target, "text": text},
                now=rt.clock.now(),
                kind="send",
            )

    class Watched(TelegramDeliverer):
        """The product's deliverer, noting when sends start and when 429s come back."""

        starts: list[float] = []
        limited: list[tuple[float, float]] = []

        async def _call(self, payload: dict[str, Any], common: dict[str, Any]) -> Any:
            self.starts.append(time.monotonic())
            return await super()._call(payload, common)

        async def _rate_limited(self, chat_id: int, seconds: float, exc: Exception) -> Any:
            self.limited.append((time.monotonic(), seconds))
            return await super()._rate_limited(chat_id, seconds, exc)

    deliverer = Watched(rt, build_sender_bot(settings), make_limiter(args.redis_url))
    sender = OutboxSender(rt.maker, rt.clock, {"telegram": deliverer}, idle_seconds=args.idle)
    stop = asyncio.Event()
    started, cpu_started = time.monotonic(), time.process_time()
    task = asyncio.create_task(sender.run(stop))
    while True:
        await asyncio.sleep(0.25)
        async with rt.maker() as session:
            if await outbox_service.depth(session) == 0:
                break
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    stop.set()
    sender.wake()
    await task
    async with rt.maker() as session:
        from sqlalchemy import func, select

        from bot.outbox.models import OutboxRow

        statuses = dict(
            (await session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))).all()
        )
        attempts = int(await session.scalar(select(func.sum(OutboxRow.attempts))) or 0)
    await deliverer.close()
    await close_runtime(rt)
    engine = make_engine(url)
    await engine.dispose()
    inside = sum(1 for start in Watched.starts for at, wait in Watched.limited if at <= start < at + wait)
    return {
        "wall": wall,
        "cpu": cpu,
        "statuses": statuses,
        "attempts": attempts,
        "expected": per_lane,
        "429_seen": len(Watched.limited),
        "started_inside_retry_after": inside,
    }


def check(result: dict[str, Any], report: dict[str, Any], total: int) -> dict[str, Any]:
    """Order, loss and rate from what the server recorded."""
    sent: dict[str, list[tuple[str, float]]] = report["sent"]
    texts = [t for msgs in sent.values() for t, _ in msgs]
    in_order = all([t for t, _ in msgs] == sorted(t for t, _ in msgs) for msgs in sent.values())
    times = sorted(at for msgs in sent.values() for _, at in msgs)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    overall = (len(times) - 1) / span if span else 0.0
    # Sustained: the middle 90% of the messages, without connection warm-up and the last stragglers.
    low, high = int(len(times) * 0.05), int(len(times) * 0.95)
    middle = times[high] - times[low] if high > low else 0.0
    rate = (high - low) / middle if middle else 0.0
    return {
        "messages": total,
        "arrived": len(texts),
        "distinct": len(set(texts)),
        "lost": total - len(set(texts)),
        "per_chat_order_kept": in_order,
        "span_s": round(span, 2),
        "overall_msg_per_s": round(overall, 2),
        "sustained_msg_per_s": round(rate, 2),
        "of_limit": f"{rate / 30:.1%}",
        "wall_s": round(result["wall"], 2),
        # The sender's process: sender, deliverer, outbox queries (SQLite's too), the depth polls.
        "sender_cpu_ms_per_message": round(result["cpu"] * 1000 / max(len(texts), 1), 2),
        "outbox": result["statuses"],
        "failed_attempts": result["attempts"],
        "rate_limits": report["stats"],
        "429s_seen_by_sender": result["429_seen"],
        "sends_started_inside_a_seen_retry_after": result["started_inside_retry_after"],
        "server_errors": report["errors"],
        "per_second": [sum(1 for at in times if int(at - times[0]) == i) for i in range(int(span) + 1)],
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the verdict."""
    args = parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve_botapi, args=(child, args.chats), daemon=True)
    proc.start()
    try:
        server = parent.recv()
        result = asyncio.run(run(args, server))
        parent.send("report")
        report = parent.recv()
    finally:
        proc.terminate()
        proc.join(5)
    summary = check(result, report, args.private + args.topic_messages)
    summary["machine"] = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    timeline = summary.pop("per_second")
    for key, value in summary.items():
        print(f"{key:>22}: {value}")
    if args.timeline:
        print("arrivals per second:", " ".join(str(n) for n in timeline))
    ok = (
        summary["lost"] == 0
        and summary["per_chat_order_kept"]
        and summary["rate_limits"]["not_honoured"] == 0
    )
    print("PASS" if ok and summary["sustained_msg_per_s"] >= 28.5 else "CHECK")


def _cpu_model() -> str:
    """The CPU model line of /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
