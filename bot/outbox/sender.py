"""The outbox sender: delivers claimed rows through channel deliverers, with retry and backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.clock import Clock
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryResult:
    """What a deliverer reports for one row."""

    ok: bool
    retry_after: float | None = None  # seconds the platform asked us to wait
    permanent: bool = False  # no point retrying (blocked, chat gone, bad request)
    error: str | None = None
    external_id: str | None = None


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
    """Claims due rows and hands them to the deliverer of their channel."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        clock: Clock,
        deliverers: dict[str, Deliverer],
        *,
        max_attempts: int = 8,
        batch: int = 50,
        idle_seconds: float = 1.0,
    ) -> None:
        self._maker = maker
        self._clock = clock
        self._deliverers = deliverers
        self._max_attempts = max_attempts
        self._batch = batch
        self._idle = idle_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a pass now (a new row was committed)."""
        self._wake.set()

    async def run_pass(self) -> int:
        """Deliver what is due now; returns the number of rows attempted."""
        now = self._clock.now()
        async with self._maker() as session, session.begin():
            await outbox_service.release_expired_leases(session, now=now)
            rows = await outbox_service.claim_due(
                session,
                now=now,
                limit=self._batch,
                lease=timedelta(seconds=60),
                channels=list(self._deliverers),
            )
        if not rows:
            return 0
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        async with self._maker() as session, session.begin():
            # One query loads the pass's rows, so _record's gets hit the identity map (50 round
            # trips took ~0.5 s on a busy SQLite: a pause in which nothing was sent).
            loaded = await session.scalars(select(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows])))
            held = loaded.all()  # noqa: F841 - keeps the rows in the (weak) identity map
            for row, result in zip(rows, results, strict=True):
                await self._record(session, row, result)
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> DeliveryResult:
        try:
            return await self._deliverers[row.channel].deliver(row)
        except Exception as exc:  # a deliverer bug must not kill the sender
            log.exception("deliverer for %s failed on outbox row %s", row.channel, row.id)
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}")

    async def _record(self, session: AsyncSession, row: OutboxRow, result: DeliveryResult) -> None:
        stored = await session.get(OutboxRow, row.id)
        if stored is None:
            return
        now = self._clock.now()
        metrics.observe_delivery(row.channel, _outcome(result), created_at=stored.created_at, now=now)
        if result.ok:
            stored.status, stored.sent_at, stored.last_error = outbox_service.SENT, now, None
            return
        stored.last_error = result.error
        if result.retry_after is not None:
            # Rate limited: not a failed attempt, just wait what the platform asked.
            stored.status = outbox_service.PENDING
            stored.next_attempt_at = now + timedelta(seconds=result.retry_after)
            return
        stored.attempts += 1
        if result.permanent or stored.attempts >= self._max_attempts:
            stored.status = outbox_service.DEAD
            log.warning("outbox row %s dead after %s attempts: %s", row.id, stored.attempts, result.error)
            return
        stored.status = outbox_service.PENDING
        stored.next_attempt_at = now + timedelta(seconds=backoff_seconds(stored.attempts))

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until stop is set, sleeping until woken or idle time passes."""
        while not stop.is_set():
            try:
                worked = await self.run_pass()
            except Exception:
                log.exception("outbox pass failed; retrying shortly")
                worked = 0
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle)
