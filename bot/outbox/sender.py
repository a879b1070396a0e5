"""The outbox sender: delivers claimed rows through channel deliverers, with retry and backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.bus import take_pending
from bot.clock import Clock
from bot.conversations.models import Message
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow

log = logging.getLogger(__name__)
LEASE_SECONDS = 60  # a row claimed by a sender that died goes back to the queue after this
RELEASE_EVERY = 5.0  # seconds between looks for such rows while the pipeline runs
# Each claim reads the queue (the oldest due row of every lane): with thousands of rows waiting for
# Telegram's limits that is ~10 ms of database time, too much to pay for every row sent. So the
# sender claims at most this often (a chat gets one message a second anyway).
REFILL_EVERY = 0.1
# Nor does it claim while the pipeline is more than half full: its rows are queueing for the
# bot-wide limit, and a claim of a few rows every REFILL_EVERY read the whole queue ten times a
# second (seen: 8,000 rows waiting for Telegram's 30/s). A new row lands behind them either way.
LOW_WATER = 0.5
_OUTBOX = cast(Table, OutboxRow.__table__)
# One execution records a batch's outcomes, computed from the rows as claimed (the lease keeps other
# senders off them): loading the rows and flushing them as ORM objects cost twice as much.
_RECORD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        next_attempt_at=bindparam("new_next"),
        sent_at=bindparam("new_sent"),
        last_error=bindparam("new_error"),
    )
)
_DONE = (outbox_service.SENT, outbox_service.DEAD)
# The follow-ups of a send read its message (a copy's bookkeeping): one query loads them all.
_MESSAGES_BY_ID = select(Message).where(Message.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class DeliveryResult:
    """What a deliverer reports for one row."""

    ok: bool
    retry_after: float | None = None  # seconds the platform asked us to wait
    permanent: bool = False  # no point retrying (blocked, chat gone, bad request)
    error: str | None = None
    external_id: str | None = None
    # Bookkeeping of a successful send (the copy's platform id, say), done in the transaction that
    # records the result: one write per send instead of two (SQLite: one turn at the write lock).
    after: Callable[[AsyncSession], Awaitable[None]] | None = field(default=None, compare=False)


class Deliverer(Protocol):
    """Sends one outbox row on one channel."""

    async def deliver(self, row: OutboxRow) -> DeliveryResult: ...


def _outcome(result: DeliveryResult) -> str:
    if result.ok:
        return "sent"
    if result.retry_after is not None:
        return "rate_limited"
    return "failed"


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: 1, 2, 4 ... capped at 5 minutes."""
    return float(min(300.0, 2 ** max(0, attempt - 1)) * (0.8 + random.random() * 0.4))


class OutboxSender:
    """Claims due rows and hands them to the deliverer of their channel.

    `run` is a pipeline: up to `batch` rows are in flight at once (never two of one lane), refilled
    as they finish (see REFILL_EVERY), so the deliverers always have work queued. `run_pass` is one
    claim-deliver-record round (tests, one-off drains).
    """

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        clock: Clock,
        deliverers: dict[str, Deliverer],
        *,
        max_attempts: int = 8,
        batch: int = 50,
        idle_seconds: float = 1.0,
        serial: asyncio.Lock | None = None,
        publish: Callable[[list[tuple[str, dict[str, Any]]]], Awaitable[None]] | None = None,
    ) -> None:
        self._maker = maker
        self._clock = clock
        self._deliverers = deliverers
        self._max_attempts = max_attempts
        self._batch = batch
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self._next_due: datetime | None = None  # earliest retry this process scheduled
        self._released_at = 0.0
        self._claimed_at = 0.0
        self._more = True  # rows may be claimable: the last claim came back full, or a lane moved on
        self._moved: set[str] = set()  # lanes whose head was recorded done since the last claim
        self._serial = serial  # SQLite: the process's write queue (Runtime.serial)
        self._publish = publish  # live events of the follow-ups (Runtime.publish)

    def wake(self) -> None:
        """Run a pass now (a new row was committed)."""
        self._wake.set()

    async def run_pass(self) -> int:
        """Deliver what is due now; returns the number of rows attempted."""
        rows = await self._claim(self._batch, release=True)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        await self._record_all(list(zip(rows, results, strict=True)))
        return len(rows)

    async def _claim(self, limit: int, *, release: bool) -> list[OutboxRow]:
        """Lease up to `limit` due rows (returning expired leases to the queue first if asked)."""
        now = self._clock.now()
        moved, self._moved = sorted(self._moved), set()
        try:
            async with self._maker() as session, self._serial or contextlib.nullcontext(), session.begin():
                if release:
                    await outbox_service.release_expired_leases(session, now=now)
                    await outbox_service.unpark(session, now=now)  # the sweep (see unpark)
                elif moved:
                    await outbox_service.unpark(session, now=now, lanes=moved)
                return await outbox_service.claim_due(
                    session,
                    now=now,
                    limit=limit,
                    lease=timedelta(seconds=LEASE_SECONDS),
                    channels=list(self._deliverers),
                )
        except BaseException:
            self._moved.update(moved)  # freed by a later claim (or the sweep)
            raise

    async def _record_all(self, done: list[tuple[OutboxRow, DeliveryResult]]) -> None:
        """Store the outcomes of finished deliveries, with their follow-ups, in one transaction.

        A failing follow-up must not keep a sent row from being recorded (it would be sent again):
        then the outcomes are stored alone, and each follow-up is tried in its own transaction.
        """
        try:
            await self._record_batch(done, follow_ups=True)
        except Exception:
            if not any(result.after is not None for _, result in done):
                raise
            log.exception("recording deliveries with their follow-ups failed; recording them alone")
            await self._record_batch(done, follow_ups=False)
            for _row, result in done:
                if result.ok and result.after is not None:
                    await self._follow_up_alone(result.after)
        now = self._clock.now()
        for row, result in done:
            metrics.observe_delivery(row.channel, _outcome(result), created_at=row.created_at, now=now)

    async def _record_batch(self, done: list[tuple[OutboxRow, DeliveryResult]], *, follow_ups: bool) -> None:
        now = self._clock.now()
        outcomes = [self._outcome_of(row, result, now) for row, result in done]
        afters = [(row, result.after) for row, result in done if result.ok and result.after is not None]
        async with self._maker() as session:
            async with self._serial or contextlib.nullcontext(), session.begin():
                await session.execute(_RECORD, outcomes)
                if follow_ups and afters:
                    ids = [row.message_id for row, _ in afters if row.message_id is not None]
                    if ids:
                        held = (await session.scalars(_MESSAGES_BY_ID, {"ids": ids})).all()  # noqa: F841
                    for _row, after in afters:
                        await after(session)
            await self._published(session)
        # A lane whose head is done: its next row, parked behind the head, is made due by the next
        # claim (one statement for all lanes moved since, not one per record).
        self._moved.update(
            row.lane for (row, _), o in zip(done, outcomes, strict=True) if o["new_status"] in _DONE
        )

    async def _follow_up_alone(self, after: Callable[[AsyncSession], Awaitable[None]]) -> None:
        try:
            async with self._maker() as session:
                async with self._serial or contextlib.nullcontext(), session.begin():
                    await after(session)
                await self._published(session)
        except Exception:
            log.exception("a delivery's follow-up failed; the send itself is recorded")

    async def _published(self, session: AsyncSession) -> None:
        """Hand the committed follow-ups' live events on (an edit they queued wakes the senders)."""
        events = take_pending(session)
        metrics.run_after_commit(session)
        if events and self._publish is not None:
            await self._publish(events)

    async def _deliver(self, row: OutboxRow) -> DeliveryResult:
        try:
            return await self._deliverers[row.channel].deliver(row)
        except Exception as exc:  # a deliverer bug must not kill the sender
            log.exception("deliverer for %s failed on outbox row %s", row.channel, row.id)
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}")

    def _outcome_of(self, row: OutboxRow, result: DeliveryResult, now: datetime) -> dict[str, Any]:
        """The columns a delivery's result leaves on its row (a rate limit is a wait, not an attempt)."""
        status, attempts, due, sent = outbox_service.PENDING, row.attempts, row.next_attempt_at, row.sent_at
        if result.ok:
            status, sent = outbox_service.SENT, now
        elif result.retry_after is not None:
            due = now + timedelta(seconds=result.retry_after)
            self._due(due)
        else:
            attempts += 1
            if result.permanent or attempts >= self._max_attempts:
                status = outbox_service.DEAD
                log.warning("outbox row %s dead after %s attempts: %s", row.id, attempts, result.error)
            else:
                due = now + timedelta(seconds=backoff_seconds(attempts))
                self._due(due)
        return {
            "row_id": row.id,
            "new_status": status,
            "new_attempts": attempts,
            "new_next": due,
            "new_sent": sent,
            "new_error": None if result.ok else result.error,
        }

    def _due(self, at: datetime) -> None:
        """Remember the earliest retry, so the pipeline wakes for it instead of polling."""
        if self._next_due is None or at < self._next_due:
            self._next_due = at

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to `batch` rows in flight until stop is set; refill as each one finishes."""
        flying: dict[asyncio.Task[DeliveryResult], OutboxRow] = {}
        done: list[tuple[OutboxRow, DeliveryResult]] = []
        while not stop.is_set() or flying or done:
            try:
                if done:
                    await self._record_all(done)
                    done = []
                    self._more = True  # those lanes' next rows may be due now
                if not stop.is_set() and self._may_claim(len(flying)):
                    # Expired leases are looked for every few seconds, not on every refill.
                    release = time.monotonic() - self._released_at > RELEASE_EVERY
                    if release:
                        self._released_at = time.monotonic()
                    self._wake.clear()
                    self._claimed_at = time.monotonic()
                    wanted = self._batch - len(flying)
                    rows = await self._claim(wanted, release=release)
                    self._more = len(rows) == wanted
                    for row in rows:
                        flying[asyncio.create_task(self._deliver(row))] = row
            except Exception:
                log.exception("outbox sender round failed; retrying shortly")
                if stop.is_set() and not flying:
                    return  # unrecorded rows keep their lease and are sent again once it expires
                await asyncio.sleep(min(self._idle, 1.0))
                continue
            finished = await self._wait(flying, stop)
            for task in [t for t in flying if t in finished]:
                done.append((flying.pop(task), task.result()))

    def _pending(self) -> bool:
        """Whether a claim may find something (a row was announced, or see _more)."""
        return self._more or self._wake.is_set()

    def _may_claim(self, flying: int) -> bool:
        """Claim at most every REFILL_EVERY, however empty the pipeline; poll when idle.

        An empty pipeline does not claim at once either: when the claimed rows come straight back
        (rate limited, chat gone), every new row's wake-up would otherwise start another claim
        (seen: 57 claims a second, PostgreSQL busy 80% of the time with them).
        """
        if flying >= self._batch:
            return False
        since = time.monotonic() - self._claimed_at
        if since >= self._idle:  # the safety poll (rows announced while the bus was away)
            return True
        return self._hungry(flying) and self._pending() and since >= REFILL_EVERY

    def _hungry(self, flying: int) -> bool:
        """Whether the pipeline is low enough for a refill (see LOW_WATER)."""
        return flying <= self._batch * LOW_WATER

    async def _wait(
        self, flying: dict[asyncio.Task[DeliveryResult], OutboxRow], stop: asyncio.Event
    ) -> set[asyncio.Future[Any]]:
        """Until a delivery finishes, a row is announced, a scheduled retry is due or idle time passes."""
        timeout = self._idle
        if self._next_due is not None:
            ahead = (self._next_due - self._clock.now()).total_seconds()
            if ahead <= 0:
                self._next_due, self._more = None, True  # a retry is due: claim it
            timeout = max(0.0, min(timeout, ahead))
        helpers: list[asyncio.Future[Any]] = []
        if not stop.is_set():
            helpers.append(asyncio.ensure_future(stop.wait()))
            if len(flying) < self._batch:  # room for more
                if not self._hungry(len(flying)):
                    pass  # the rows in flight come first (see LOW_WATER); the safety poll stays
                elif self._pending():  # claimable once the refill time comes (see _may_claim)
                    timeout = min(timeout, self._claimed_at + REFILL_EVERY - time.monotonic())
                else:  # a wake-up matters
                    helpers.append(asyncio.ensure_future(self._wake.wait()))
                timeout = max(0.0, min(timeout, self._claimed_at + self._idle - time.monotonic()))
        waited: list[asyncio.Future[Any]] = [*flying, *helpers]
        if not waited:  # stopping, nothing in flight
            return set()
        try:
            finished, _ = await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in helpers:
                helper.cancel()
        return {task for task in finished if task in flying}
