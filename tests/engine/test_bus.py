"""Event bus: in-process fan-out, and Redis pub/sub across connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.bus import EventBus, InProcessBus, RedisBus
from tests.conftest import REDIS_URL, need


async def _roundtrip(
    publisher: EventBus, subscriber: EventBus, *, many: bool = False
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    stream = subscriber.subscribe(["group:1", "staff:2"])

    async def consume() -> None:
        async for event in stream:
            if event.get("type") == "keepalive":
                continue
            got.append(event)
            if len(got) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)  # let the subscription register
    events: list[tuple[str, dict[str, Any]]] = [
        ("group:1", {"type": "message.new", "message_id": 5}),
        ("other", {"type": "ignored"}),
        ("staff:2", {"type": "case.new", "case_id": 7}),
    ]
    if many:  # a unit of work's events, in one call (one round trip on Redis)
        await publisher.publish_many(events)
    else:
        for topic, event in events:
            await publisher.publish(topic, event)
    await asyncio.wait_for(task, 5)
    return got


@pytest.mark.parametrize("many", [False, True])
async def test_in_process_bus_delivers_to_subscribed_topics_only(many: bool) -> None:
    bus = InProcessBus()
    got = await _roundtrip(bus, bus, many=many)
    assert [e["topic"] for e in got] == ["group:1", "staff:2"] and got[1]["case_id"] == 7


@pytest.mark.parametrize("many", [False, True])
async def test_redis_bus_crosses_connections_in_order(many: bool) -> None:
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    publisher, subscriber = RedisBus(url), RedisBus(url)
    try:
        got = await _roundtrip(publisher, subscriber, many=many)
        assert [e["type"] for e in got] == ["message.new", "case.new"]
    finally:
        await publisher.close()
        await subscriber.close()


async def test_redis_bus_publish_survives_an_unreachable_server() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0")
    await bus.publish("group:1", {"type": "message.new"})  # logged and dropped, never raised
    await bus.publish_many([("group:1", {"type": "message.new"}), ("staff:2", {"type": "notice"})])
    await bus.close()


async def test_redis_bus_sends_concurrent_units_of_work_together_in_order() -> None:
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    publisher, subscriber = RedisBus(url), RedisBus(url)
    got: list[int] = []
    wakes = 0
    stream = subscriber.subscribe(["group:9", "outbox"])

    async def consume() -> None:
        nonlocal wakes
        async for event in stream:
            wakes += event.get("type") == "outbox.new"
            if event.get("type") == "n":
                got.append(event["n"])
                if len(got) == 60:
                    return

    trips = 0
    execute = publisher._redis.pipeline(transaction=False).__class__.execute

    async def counted(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await execute(pipe, *args, **kwargs)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(publisher._redis.pipeline(transaction=False)), "execute", counted)
            # 20 units of work commit at once, 3 events and a sender wake-up each: fewer round trips
            # than units, same order, and the identical wake-ups of one trip sent once.
            wake = ("outbox", {"type": "outbox.new", "channel": "telegram"})
            await asyncio.gather(
                *(
                    publisher.publish_many(
                        [*(("group:9", {"type": "n", "n": 3 * u + i}) for i in range(3)), wake]
                    )
                    for u in range(20)
                )
            )
            await asyncio.wait_for(task, 5)
        assert got == list(range(60))
        assert 1 <= trips < 20 and 1 <= wakes <= trips
    finally:
        await publisher.close()
        await subscriber.close()
