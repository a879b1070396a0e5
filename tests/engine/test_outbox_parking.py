"""Outbox parking: rows queued behind an older unsent row of their lane stay out of the claim's reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.clock import FrozenClock
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow
from bot.outbox.sender import DeliveryResult, OutboxSender
from bot.runtime import Runtime
from tests.engine.test_outbox import Recorder, _enqueue, _rows


async def _due(rt: Runtime) -> list[str]:
    """Texts of the pending rows a claim would read (next_attempt_at has come)."""
    async with rt.maker() as session:
        rows = await session.scalars(
            select(OutboxRow)
            .where(OutboxRow.status == "pending", OutboxRow.next_attempt_at <= rt.clock.now())
            .order_by(OutboxRow.id)
        )
        return [r.payload["text"] for r in rows]


async def _claim(rt: Runtime, limit: int = 10) -> list[str]:
    async with rt.transaction() as session:
        rows = await outbox_service.claim_due(
            session, now=rt.clock.now(), limit=limit, lease=timedelta(seconds=60), channels=["test"]
        )
        return [r.payload["text"] for r in rows]


async def test_a_claim_parks_what_waits_behind_its_lane_head(rt: Runtime, clock: FrozenClock) -> None:
    await _enqueue(rt, "topic:1", *(f"t{n}" for n in range(200)))
    await _enqueue(rt, "chat:1", "c1", "c2")
    assert len(await _due(rt)) == 202
    assert await _claim(rt) == ["t0", "c1"]
    # Nothing is due any more: the heads are leased, the 200 rows behind them parked.
    assert await _due(rt) == []
    rows = await _rows(rt)
    assert rows["t1"].next_attempt_at == outbox_service.PARKED == rows["c2"].next_attempt_at
    # A later claim reads no row twice: only what arrived since is looked at, and parked too.
    await _enqueue(rt, "topic:1", "t200")
    assert await _claim(rt) == [] and await _due(rt) == []


async def test_sent_and_dead_heads_unpark_their_next_row_in_order(rt: Runtime, clock: FrozenClock) -> None:
    recorder = Recorder({"a1": [DeliveryResult(ok=False, permanent=True, error="403")]})
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    await _enqueue(rt, "chat:1", "a1", "a2", "a3")
    await _enqueue(rt, "chat:2", "b1", "b2", "b3")
    assert await sender.run_pass() == 2  # a1 (dead), b1 (sent)
    assert await _due(rt) == []  # the rows behind them wait parked for the sender's next claim
    # That claim (not the every-few-seconds sweep) makes each lane's next row due, and only it.
    claimed = await sender._claim(10, release=False)
    assert [r.payload["text"] for r in claimed] == ["a2", "b2"]
    await sender._record_all([(row, DeliveryResult(ok=True)) for row in claimed])
    assert await _due(rt) == []
    while await sender.run_pass():
        pass
    assert [t for _, t in recorder.sent] == ["b1", "a3", "b3"]
    rows = await _rows(rt)
    assert rows["a1"].status == "dead" and all(rows[t].status == "sent" for t in ("a2", "a3", "b3"))


async def test_a_head_waiting_out_a_rate_limit_keeps_its_lane_parked(rt: Runtime, clock: FrozenClock) -> None:
    recorder = Recorder({"x1": [DeliveryResult(ok=False, retry_after=30, error="group busy")]})
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    await _enqueue(rt, "topic:7", "x1", "x2")
    assert await sender.run_pass() == 1
    clock.advance(seconds=10)
    assert await _due(rt) == [] and await sender.run_pass() == 0
    clock.advance(seconds=20)
    assert await _due(rt) == ["x1"]
    while await sender.run_pass():
        pass
    assert [t for _, t in recorder.sent] == ["x1", "x2"]


async def test_the_sweep_frees_a_head_parked_by_a_race(rt: Runtime, clock: FrozenClock) -> None:
    """PostgreSQL: a claim may park a row while another sender's record frees its lane; the sweep frees it."""
    await _enqueue(rt, "chat:5", "h1", "h2")
    async with rt.transaction() as session:  # the row parked although nothing is ahead of it any more
        await session.execute(update(OutboxRow).values(next_attempt_at=outbox_service.PARKED))
    recorder = Recorder()
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    # The sweep runs with the lease check, in the first pass and then every few seconds.
    assert await sender.run_pass() == 1 and recorder.sent == [("chat:5", "h1")]
    assert await sender.run_pass() == 1 and recorder.sent[-1] == ("chat:5", "h2")
    async with rt.transaction() as session:
        assert await outbox_service.unpark(session, now=clock.now()) == 0


async def test_a_deep_backlog_is_parked_a_batch_per_claim(
    rt: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_service, "PARK_BATCH", 4)
    await _enqueue(rt, "topic:2", *(f"q{n}" for n in range(10)))
    assert await _claim(rt) == ["q0"]
    assert len(await _due(rt)) == 5  # 4 of the 9 behind the head parked
    assert await _claim(rt) == [] and len(await _due(rt)) == 1
    assert await _claim(rt) == [] and await _due(rt) == []
