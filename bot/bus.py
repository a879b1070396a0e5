"""Live event bus: in-process by default, Redis pub/sub when scaled out.

Events are hints for live screens (a new message, a case changed); the database stays the truth, so
a lost event costs a refresh, never data. Publish failures are logged and swallowed for that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
PREFIX = "butler:"
MAX_QUEUED = 20_000  # events waiting for Redis; a few seconds of full load


class EventBus(Protocol):
    """Publish JSON events on topics; subscribe to several topics at once."""

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None: ...

    def subscribe(self, topics: list[str]) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class InProcessBus:
    """Fan-out to asyncio queues inside one process."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._queue_size = queue_size

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Deliver to every current subscriber; a full (stalled) subscriber drops the event."""
        for queue in list(self._subs.get(topic, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait({"topic": topic, **event})

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish each event in order."""
        for topic, event in events:
            await self.publish(topic, event)

    async def subscribe(self, topics: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Yield events for the topics until the consumer stops iterating."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        for topic in topics:
            self._subs[topic].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            for topic in topics:
                self._subs[topic].discard(queue)

    async def close(self) -> None:
        """Nothing to release."""


class RedisBus:
    """Pub/sub across processes through Redis."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as redis_asyncio

        self._redis = redis_asyncio.from_url(url, decode_responses=True, socket_timeout=2)
        # (channel, JSON) waiting for the next round trip. A dict: identical events queued together
        # say the same thing once (every message's "outbox.new" wakes the senders once per trip).
        self._queued: dict[tuple[str, str], None] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Publish; if Redis is down the live push is lost and everything else carries on."""
        await self.publish_many([(topic, event)])

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Queue a unit of work's events; one task sends everything queued in one pipeline.

        Under load many transactions commit between two round trips: one pipeline for all of them
        cost a quarter of the CPU of a pipeline each (8 transactions of 3 events, redis-py). Order
        is kept: one sender at a time, in queue order (an identical event queued again is sent once).
        """
        if not events:
            return
        if len(self._queued) >= MAX_QUEUED:  # Redis stalls (not refusing): drop hints, keep memory flat
            log.warning("bus queue full (%d events); dropping %d", len(self._queued), len(events))
            return
        for topic, event in events:
            self._queued[PREFIX + topic, json.dumps({"topic": topic, **event}, default=str)] = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, {}
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
            except Exception as exc:  # any Redis failure: the live push is lost, the work is not
                log.warning("bus publish of %d events failed: %s", len(batch), exc)

    async def subscribe(self, topics: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Yield events; reconnects with backoff while Redis is away."""
        delay = 0.5
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(*[PREFIX + t for t in topics])
                delay = 0.5
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                    if msg is None:
                        yield {"topic": "", "type": "keepalive"}
                        continue
                    with contextlib.suppress(ValueError, TypeError):
                        yield json.loads(msg["data"])
            except (OSError, ConnectionError, TimeoutError) as exc:
                log.warning("bus subscription lost (%s); retrying in %.1fs", exc, delay)
            except Exception as exc:
                if type(exc).__module__.startswith("redis"):
                    log.warning("bus subscription lost (%s); retrying in %.1fs", exc, delay)
                else:
                    raise
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            # A short cap: live screens come back within ~3 s of Redis (a refused connect is cheap).
            delay = min(delay * 2, 3.0)

    async def close(self) -> None:
        """Send what is queued, then close the connection pool."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        await self._redis.aclose()


def make_bus(redis_url: str | None) -> EventBus:
    """The Redis bus when configured, else the in-process one."""
    return RedisBus(redis_url) if redis_url else InProcessBus()


def emit(session: AsyncSession, topic: str, event: dict[str, Any]) -> None:
    """Queue a live event to publish after the session's transaction commits."""
    session.info.setdefault("pending_events", []).append((topic, event))


def take_pending(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Remove and return the events queued on a session."""
    return session.info.pop("pending_events", [])
