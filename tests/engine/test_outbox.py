"""Outbox sender: per-lane order, retry with backoff, rate-limit waits, dead rows, crash leases."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.clock import FrozenClock, SystemClock
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow
from bot.outbox.sender import DeliveryResult, OutboxSender
from bot.runtime import Runtime


class Recorder:
    """A deliverer that records deliveries and answers from a script."""

    def __init__(self, script: dict[str, list[DeliveryResult]] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.script = script or {}

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        queue = self.script.get(row.payload["text"])
        result = queue.pop(0) if queue else DeliveryResult(ok=True)
        if result.ok:
            self.sent.append((row.lane, row.payload["text"]))
        return result


async def _enqueue(rt: Runtime, lane: str, *texts: str) -> None:
    async with rt.transaction() as session:
        for text in texts:
            outbox_service.enqueue(
                session, channel="test", lane=lane, payload={"text": text}, now=rt.clock.now()
            )


async def _rows(rt: Runtime) -> dict[str, OutboxRow]:
    async with rt.maker() as session:
        return {r.payload["text"]: r for r in (await session.scalars(select(OutboxRow))).all()}


async def test_a_transactions_rows_go_in_one_insert_in_order_and_vanish_on_rollback(rt: Runtime) -> None:
    inserts: list[int] = []

    def _seen(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            inserts.append(len(params) if many else 1)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _seen)
    try:
        async with rt.maker() as session:
            with pytest.raises(RuntimeError):
                async with session.begin():
                    outbox_service.enqueue(
                        session, channel="test", lane="l", payload={"text": "lost"}, now=rt.clock.now()
                    )
                    raise RuntimeError("rolled back")
            async with session.begin():  # the same session, a new transaction
                for text in ("m1", "m2", "m3"):
                    outbox_service.enqueue(
                        session, channel="test", lane="l", payload={"text": text}, now=rt.clock.now()
                    )
                await session.execute(select(OutboxRow.id))  # an autoflush does not split the batch
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _seen)
    rows = await _rows(rt)
    assert sorted(rows, key=lambda text: rows[text].id) == ["m1", "m2", "m3"]
    assert inserts in ([3], [1])  # SQLite: one executemany; PostgreSQL: one multi-row statement


async def test_lane_order_kept_across_a_failure(rt: Runtime, clock: FrozenClock) -> None:
    recorder = Recorder({"a1": [DeliveryResult(ok=False, error="503")]})
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    await _enqueue(rt, "chat:1", "a1", "a2", "a3")
    await _enqueue(rt, "chat:2", "b1", "b2")
    await sender.run_pass()
    # a1 failed, so a2/a3 wait behind it; the other lane is not held up.
    assert recorder.sent == [("chat:2", "b1")]
    while await sender.run_pass():
        pass
    assert ("chat:1", "a1") not in recorder.sent
    clock.advance(seconds=5)
    while await sender.run_pass():
        clock.advance(seconds=1)
    lane1 = [t for lane, t in recorder.sent if lane == "chat:1"]
    lane2 = [t for lane, t in recorder.sent if lane == "chat:2"]
    assert lane1 == ["a1", "a2", "a3"] and lane2 == ["b1", "b2"]
    rows = await _rows(rt)
    assert rows["a1"].attempts == 1 and all(r.status == "sent" for r in rows.values())


async def test_retry_after_waits_without_counting_an_attempt(rt: Runtime, clock: FrozenClock) -> None:
    recorder = Recorder({"x": [DeliveryResult(ok=False, retry_after=7, error="429")]})
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    await _enqueue(rt, "chat:9", "x")
    await sender.run_pass()
    row = (await _rows(rt))["x"]
    assert row.status == "pending" and row.attempts == 0
    assert row.next_attempt_at == clock.now() + timedelta(seconds=7)
    clock.advance(seconds=6)
    assert await sender.run_pass() == 0
    clock.advance(seconds=1)
    assert await sender.run_pass() == 1 and recorder.sent == [("chat:9", "x")]


async def test_permanent_failure_and_max_attempts_make_rows_dead(rt: Runtime, clock: FrozenClock) -> None:
    failing = [DeliveryResult(ok=False, error="timeout")] * 10
    recorder = Recorder(
        {"blocked": [DeliveryResult(ok=False, permanent=True, error="403")], "flaky": failing}
    )
    sender = OutboxSender(rt.maker, clock, {"test": recorder}, max_attempts=3)
    await _enqueue(rt, "l1", "blocked")
    await _enqueue(rt, "l2", "flaky")
    for _ in range(10):
        await sender.run_pass()
        clock.advance(minutes=10)
    rows = await _rows(rt)
    assert rows["blocked"].status == "dead" and rows["blocked"].attempts == 1
    assert rows["flaky"].status == "dead" and rows["flaky"].attempts == 3


async def test_lease_of_a_dead_sender_expires(rt: Runtime, clock: FrozenClock) -> None:
    await _enqueue(rt, "l1", "m")
    async with rt.transaction() as session:
        claimed = await outbox_service.claim_due(
            session, now=clock.now(), limit=10, lease=timedelta(seconds=60)
        )
    assert [r.payload["text"] for r in claimed] == ["m"]
    recorder = Recorder()
    sender = OutboxSender(rt.maker, clock, {"test": recorder})
    assert await sender.run_pass() == 0  # still leased by the "crashed" sender
    clock.advance(seconds=61)
    assert await sender.run_pass() == 1 and recorder.sent == [("l1", "m")]


class Paced(Recorder):
    """A deliverer that takes a moment per send, as Telegram's rate limits make it."""

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        await asyncio.sleep(random.uniform(0.005, 0.02))  # sends finish one by one, not in step
        return await super().deliver(row)


class CountingSender(OutboxSender):
    """Counts claims (each one reads the whole queue)."""

    claims = 0

    async def _claim(self, limit: int, *, release: bool) -> list[OutboxRow]:
        self.claims += 1
        return await super()._claim(limit, release=release)


async def _run_until_sent(sender: OutboxSender, deliverer: Recorder, count: int, *, within: float) -> None:
    """Run the sender's pipeline until the deliverer has sent `count` rows (or time is up), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    for _ in range(int(within / 0.05)):
        await asyncio.sleep(0.05)
        if len(deliverer.sent) == count:
            break
    stop.set()
    await task


async def test_a_busy_pipeline_claims_in_refills_not_once_per_row_and_keeps_lane_order(rt: Runtime) -> None:
    paced = Paced()
    sender = CountingSender(rt.maker, SystemClock(), {"test": paced}, batch=8, idle_seconds=0.05)
    for lane in range(8):  # a backlog: lanes of 15 rows each
        await _enqueue(rt, f"chat:{lane}", *(f"{lane}-{i:02d}" for i in range(15)))
    await _run_until_sent(sender, paced, 120, within=20.0)
    assert len(paced.sent) == 120
    for lane in range(8):
        assert [t for ln, t in paced.sent if ln == f"chat:{lane}"] == [f"{lane}-{i:02d}" for i in range(15)]
    # One row per lane in flight, so claiming after each send took 38-46 claims here; refills take 16.
    assert sender.claims <= 25, sender.claims


class Queued(Recorder):
    """A deliverer whose sends queue for a bot-wide rate (Telegram's 30/s), one after another."""

    def __init__(self) -> None:
        super().__init__()
        self._turn = asyncio.Lock()

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        async with self._turn:
            await asyncio.sleep(1 / 30)
            return await super().deliver(row)


async def test_a_pipeline_queueing_for_the_bot_wide_rate_refills_at_half_empty(rt: Runtime) -> None:
    """Rows queueing for the rate keep the sender busy: no claim (a read of the whole queue) per send."""
    queued = Queued()
    sender = CountingSender(rt.maker, SystemClock(), {"test": queued}, batch=20, idle_seconds=5.0)
    for lane in range(60):
        await _enqueue(rt, f"chat:{lane}", f"{lane}")
    await _run_until_sent(sender, queued, 60, within=5.0)
    assert sorted(int(t) for _, t in queued.sent) == list(range(60))
    # A claim every REFILL_EVERY while sends finished took 21 here; refilling at half empty, 9.
    assert sender.claims <= 13, sender.claims


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_claim_uses_the_unsent_lane_index_even_in_a_generic_plan(rt: Runtime) -> None:
    """asyncpg prepares statements, so PostgreSQL may plan the claim once for any parameters.

    The probe for older unsent rows must still be able to use the partial index; with the
    statuses bound as parameters it could not (425 ms per claim with 1,400 rows queued).
    """
    for lane in range(30):
        await _enqueue(rt, f"lane-{lane}", "a", "b", "c")
    seen: list[tuple[str, Any]] = []

    def _capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_a: Any) -> None:
        if "FOR UPDATE" in statement and "outbox" in statement:
            seen.append((statement, parameters))

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _capture)
    try:
        async with rt.transaction() as session:
            await outbox_service.claim_due(
                session, now=rt.clock.now(), limit=10, lease=timedelta(seconds=60), channels=["test"]
            )
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _capture)
    assert len(seen) == 2  # the parking of rows behind older ones, then the claim of lane heads
    for n, (statement, parameters) in enumerate(seen):
        async with rt.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.execute("SET plan_cache_mode = force_generic_plan")
            await driver.execute(f"PREPARE claim{n} AS {statement}")
            args = ", ".join(
                str(p) if isinstance(p, int) else "'" + str(p).replace("'", "''") + "'" for p in parameters
            )
            lines = await driver.fetch(f"EXPLAIN EXECUTE claim{n}({args})")
            await driver.execute(f"DEALLOCATE claim{n}")
            await driver.execute("RESET plan_cache_mode")
            await conn.rollback()
        plan = "\n".join(row[0] for row in lines)
        assert "ix_outbox_unsent_lane_id" in plan, plan


class FollowingUp(Recorder):
    """A deliverer whose sends leave bookkeeping for the sender's record transaction."""

    def __init__(self, clock: FrozenClock, failing: str | None = None) -> None:
        super().__init__()
        self.clock, self.failing = clock, failing

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        await super().deliver(row)
        text = row.payload["text"]

        async def after(session: Any) -> None:
            if text == self.failing:
                raise RuntimeError("follow-up broke")
            outbox_service.enqueue(
                session,
                channel="note",
                lane=f"note:{text}",
                payload={"text": f"{text}-noted"},
                now=self.clock.now(),
            )

        return DeliveryResult(ok=True, external_id=f"x-{text}", after=after)


async def test_follow_ups_commit_with_the_sent_marks_and_publish(rt: Runtime, clock: FrozenClock) -> None:
    """One transaction records a batch of sends and their follow-ups; their events reach the bus."""
    published: list[tuple[str, dict[str, Any]]] = []

    async def publish(events: list[tuple[str, dict[str, Any]]]) -> None:
        published.extend(events)

    commits: list[int] = []

    def _commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(rt.engine.sync_engine, "commit", _commit)
    try:
        sender = OutboxSender(rt.maker, clock, {"test": FollowingUp(clock)}, publish=publish)
        await _enqueue(rt, "a", "m1")
        await _enqueue(rt, "b", "m2")
        await _enqueue(rt, "c", "m3")
        commits.clear()
        assert await sender.run_pass() == 3
        assert len(commits) == 2  # the claim, then the outcomes with every follow-up
    finally:
        event.remove(rt.engine.sync_engine, "commit", _commit)
    rows = await _rows(rt)
    assert all(rows[t].status == "sent" for t in ("m1", "m2", "m3"))
    assert {t for t in rows if t.endswith("-noted")} == {"m1-noted", "m2-noted", "m3-noted"}
    assert [topic for topic, _ in published] == ["outbox"] * 3


async def test_a_failing_follow_up_never_keeps_a_send_unrecorded(
    rt: Runtime, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken follow-up is logged; the sends are recorded (never sent twice) and the others run."""
    sender = OutboxSender(rt.maker, clock, {"test": FollowingUp(clock, failing="m2")})
    await _enqueue(rt, "a", "m1")
    await _enqueue(rt, "b", "m2")
    await _enqueue(rt, "c", "m3")
    assert await sender.run_pass() == 3
    rows = await _rows(rt)
    assert all(rows[t].status == "sent" for t in ("m1", "m2", "m3"))
    assert {t for t in rows if t.endswith("-noted")} == {"m1-noted", "m3-noted"}
    assert "follow-up failed" in caplog.text
    assert await sender.run_pass() == 0  # nothing left to send again
