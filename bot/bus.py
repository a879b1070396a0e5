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

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Publish; if Redis is down the live push is lost and everything else carries on."""
        try:
            await self._redis.publish(PREFIX + topic, json.dumps({"topic": topic, **event}, default=str))
        except Exception as exc:  # any Redis failure must not fail the caller's work
            log.warning("bus publish failed on %s: %s", topic, exc)

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish a unit of work's events in one round trip (a message makes 5-8 of them)."""
        if not events:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for topic, event in events:
                    pipe.publish(PREFIX + topic, json.dumps({"topic": topic, **event}, default=str))
                await pipe.execute()
        except Exception as exc:  # as in publish: the live push is lost, the work is not
            log.warning("bus publish of %d events failed: %s", len(events), exc)

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
        """Close the connection pool."""
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
