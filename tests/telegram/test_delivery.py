"""The outbox deliverer against the Bot API test server: limits, 429s honoured, 5xx and timeouts, 403."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import metrics
from bot.factory import build_runtime, close_runtime
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow
from bot.outbox.sender import OutboxSender
from bot.runtime import Runtime
from bot.settings import Settings
from bot.teams.models import ChannelIdentity, Customer
from bot.tg import bridge
from bot.tg.flows import TgUser, start_customer
from handlers.telegram.deliverer import TelegramDeliverer
from handlers.telegram.limiter import LocalLimiter, RedisLimiter, Rule
from tests.botapi import BotApiServer, RateLimitConfig
from tests.botapi.ptb import ptb_bot
from tests.conftest import REDIS_URL, need

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


class FakeTime:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_local_windows_admit_by_actual_time_and_hand_back_long_waits() -> None:
    """3 per window, then the 4th waits for the oldest to leave; long waits are handed back unheld."""
    clock = FakeTime()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    limiter = LocalLimiter(clock, sleep)
    overall = Rule("overall", 3, 1.0)
    waits = [(await limiter.reserve([overall], max_wait=5, patience=5)).wait for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and 1.0 <= waits[3] <= 1.004
    chat = Rule("chat:1", 1, 1.2, hand_back=True)
    assert (await limiter.reserve([chat], max_wait=5, patience=0.5)).granted
    handed_back = await limiter.reserve([overall, chat], max_wait=5, patience=0.5)
    assert not handed_back.granted and handed_back.wait == pytest.approx(1.2)
    clock.now += 1.2
    assert (await limiter.reserve([chat], max_wait=5, patience=0.5)).wait == 0.0  # nothing was held
    await limiter.penalize("chat:1", 3.0)
    assert 3.0 <= (await limiter.reserve([chat], max_wait=5, patience=5)).wait <= 3.004
    slow = Rule("overall:slow", 1, 2.0)
    await limiter.reserve([slow], max_wait=5, patience=0.5)
    assert (await limiter.reserve([slow], max_wait=5, patience=0.5)).granted  # not hand_back: waits


async def test_redis_windows_are_shared_between_processes() -> None:
    """Two limiters (two processes) on one Redis see each other's sends and 429 pauses."""
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    prefix = f"butler:test:{time.time_ns()}:"
    first, second = RedisLimiter(url, prefix=prefix), RedisLimiter(url, prefix=prefix)
    try:
        chat = Rule("chat:7", 1, 1.0)
        assert (await first.reserve([chat], max_wait=5, patience=5)).wait == 0.0
        started = time.monotonic()
        shared = await second.reserve([chat], max_wait=5, patience=5)
        assert shared.granted and 0.9 <= time.monotonic() - started <= 1.2
        await first.penalize("chat:8", 2.0)
        blocked = await second.reserve([Rule("chat:8", 1, 1.0, hand_back=True)], max_wait=5, patience=0.5)
        assert not blocked.granted and 1.8 <= blocked.wait <= 2.0
    finally:
        await first.close()
        await second.close()


async def test_redis_down_falls_back_to_local_windows() -> None:
    """No Redis: messages still go out under this process's limits."""
    limiter = RedisLimiter("redis://127.0.0.1:9/0")
    try:
        rule = Rule("chat:9", 1, 1.0)
        assert (await limiter.reserve([rule], max_wait=5, patience=5)).wait == 0.0
        assert (await limiter.reserve([rule], max_wait=5, patience=5)).wait > 0.9
    finally:
        await limiter.close()


@pytest.fixture
async def live_rt(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on the wall clock (retry_after waits are real seconds here)."""
    settings = Settings(
        database_url=sqlite_url,
        run_workers=False,
        telegram_chat_per_second=10.0,
        media_dir=tmp_path / "media",
    )
    runtime = build_runtime(settings)
    yield runtime
    await close_runtime(runtime)


async def drain(sender: OutboxSender, rt: Runtime, *, within: float = 15.0) -> list[OutboxRow]:
    """Run sender passes until no row is pending; returns the rows."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await sender.run_pass()
        async with rt.maker() as session:
            if await outbox_service.depth(session) == 0:
                break
        await asyncio.sleep(0.05)
    async with rt.maker() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def queue_texts(rt: Runtime, chat_id: int, texts: list[str]) -> None:
    """Queue texts to one chat."""
    async with rt.transaction() as session:
        for text in texts:
            bridge.send(session, rt, chat_id=chat_id, text=text)


async def test_429_is_honoured_and_order_kept(live_rt: Runtime) -> None:
    """The chat limit is set above Telegram's: every 429 is waited out and order holds."""
    limits = RateLimitConfig(private_per_second=2.0, private_burst=1)
    async with BotApiServer(rate_limits=True, limits=limits) as server:
        server.user(6101, "Tang", started=True)
        deliverer = TelegramDeliverer(live_rt, ptb_bot(server), LocalLimiter())
        sender = OutboxSender(live_rt.maker, live_rt.clock, {"telegram": deliverer}, idle_seconds=0.05)
        texts = [f"m{i}" for i in range(4)]
        counted = metrics.TELEGRAM_429._value.get()
        await queue_texts(live_rt, 6101, texts)
        rows = await drain(sender, live_rt)
        await deliverer.close()
        stats = server.rate_limit_stats
        sent = [s.text for s in server.sent(6101)]
    assert sent == texts and {r.status for r in rows} == {"sent"}
    assert stats["issued"] >= 1 and stats["not_honoured"] == 0 and stats["early_retries"] == 0
    assert all(r.attempts == 0 for r in rows), "rate limits are waits, not failed attempts"
    assert metrics.TELEGRAM_429._value.get() - counted == stats["issued"], "every 429 is counted once"


async def test_pipelined_sender_keeps_lane_order_and_refills(live_rt: Runtime) -> None:
    """`run` keeps rows in flight across lanes, one per lane, and drains everything in order."""
    limits = RateLimitConfig(private_per_second=20.0)  # above the deliverer's 10/s: no 429 expected
    async with BotApiServer(rate_limits=True, limits=limits) as server:
        chats = [6111, 6112, 6113]
        for chat in chats:
            server.user(chat, f"U{chat}", started=True)
        deliverer = TelegramDeliverer(live_rt, ptb_bot(server), LocalLimiter())
        sender = OutboxSender(
            live_rt.maker, live_rt.clock, {"telegram": deliverer}, batch=2, idle_seconds=0.05
        )
        for chat in chats:
            await queue_texts(live_rt, chat, [f"{chat}-{i}" for i in range(3)])
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        try:
            await server.wait_until(lambda: sum(len(server.sent(c)) for c in chats) == 9, timeout=15)
        finally:
            stop.set()
            await task
            await deliverer.close()
        sent = {chat: [s.text for s in server.sent(chat)] for chat in chats}
        stats = server.rate_limit_stats
        async with live_rt.maker() as session:
            statuses = set((await session.scalars(select(OutboxRow.status))).all())
    assert sent == {chat: [f"{chat}-{i}" for i in range(3)] for chat in chats}
    assert statuses == {"sent"}, "stopping waits for the rows in flight and records them"
    assert stats["issued"] == 0 and stats["early_retries"] == 0


async def test_5xx_and_timeouts_retry_with_backoff(live_rt: Runtime) -> None:
    """A 502 and a timeout each cost one attempt; the messages arrive once, in order."""
    async with BotApiServer() as server:
        server.user(6102, "Jiang", started=True)
        deliverer = TelegramDeliverer(live_rt, ptb_bot(server, read_timeout=0.3), LocalLimiter())
        sender = OutboxSender(live_rt.maker, live_rt.clock, {"telegram": deliverer}, idle_seconds=0.05)
        server.faults.fail_next("sendMessage", status=502)
        await queue_texts(live_rt, 6102, ["first", "second"])
        rows = await drain(sender, live_rt)
        server.faults.hang_next("sendMessage", 1.0)
        await queue_texts(live_rt, 6102, ["third"])
        rows = await drain(sender, live_rt)
        await deliverer.close()
        sent = [s.text for s in server.sent(6102)]
    assert sent == ["first", "second", "third"]
    assert [r.attempts for r in rows] == [1, 0, 1] and {r.status for r in rows} == {"sent"}


async def test_blocked_customer_is_marked_once_and_not_retried(live_rt: Runtime) -> None:
    """403: the identity goes inactive, one notice for the team, later rows never reach Telegram."""
    async with BotApiServer() as server:
        server.supergroup(-1009000000001, "Staff", bot_rights={"can_manage_topics": True})
        live_rt.settings.telegram_staff_chat_id = -1009000000001
        user = server.user(6103, "Lu", started=True)
        async with live_rt.transaction() as session:
            await start_customer(session, live_rt, user=TgUser(6103, 6103, "Lu"))
        user.block_bot()
        deliverer = TelegramDeliverer(live_rt, ptb_bot(server), LocalLimiter())
        sender = OutboxSender(live_rt.maker, live_rt.clock, {"telegram": deliverer}, idle_seconds=0.05)
        await queue_texts(live_rt, 6103, ["one", "two", "three"])
        rows = await drain(sender, live_rt)
        await deliverer.close()
        calls = [c for c in server.calls("sendMessage") if str(c.params.get("chat_id")) == "6103"]
        topic_texts = [s.text or "" for s in server.sent(-1009000000001)]
        async with live_rt.maker() as session:
            identity = await session.scalar(select(ChannelIdentity))
            customer = await session.scalar(select(Customer))
    assert identity is not None and not identity.active and customer is not None
    assert len(calls) == 1 and calls[0].status == 403
    assert [r.status for r in rows if r.lane == "tg:6103"] == ["dead", "dead", "dead"]
    assert sum("屏蔽" in t for t in topic_texts) == 1


async def test_topics_of_a_busy_group_come_back_one_by_one(live_rt: Runtime) -> None:
    """A busy staff group hands its topics' rows back for slots one chat period apart, not all at once.

    Through Redis (as in production) a reservation takes a round trip, and Telegram's 1 msg/s per
    chat holds one topic's row in it: the other topics' rows arrive meanwhile and are handed back.
    They all came back together 1.2 s later, again and again (hundreds of topics: a busy worker).
    """
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    staff = -1009000000002
    async with BotApiServer() as server:
        server.supergroup(staff, "Staff", bot_rights={"can_manage_topics": True})
        live_rt.settings.telegram_staff_chat_id = staff
        live_rt.settings.telegram_group_per_minute = 3
        live_rt.settings.telegram_chat_per_second = 1.0
        for chat in range(6201, 6209):
            server.user(chat, f"U{chat}", started=True)
            async with live_rt.transaction() as session:
                await start_customer(session, live_rt, user=TgUser(chat, chat, f"U{chat}"))
        limiter = RedisLimiter(url, prefix=f"butler:test:{time.time_ns()}:")
        deliverer = TelegramDeliverer(live_rt, ptb_bot(server), limiter)
        sender = OutboxSender(live_rt.maker, live_rt.clock, {"telegram": deliverer}, idle_seconds=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(3.0)
        stop.set()
        await task
        await deliverer.close()
        arrived = server.sent(staff)
        async with live_rt.maker() as session:
            waiting = (
                await session.scalars(
                    select(OutboxRow.next_attempt_at)
                    .where(OutboxRow.lane.like("tg:topic:%"), OutboxRow.status == "pending")
                    .order_by(OutboxRow.next_attempt_at)
                )
            ).all()
    assert len(arrived) <= 3, "the group's limit holds"
    assert len(waiting) >= 4, "the rest waits in the outbox"
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(waiting)]
    assert min(gaps) >= 1.0, gaps
