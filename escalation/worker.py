"""The escalation worker: claims due ladder rungs, fires each exactly once, sleeps until the next.

Exactly once: a rung fires only inside the transaction that holds its timer row (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite's single writer lock, taken before reading) and moves the timer's
cursor past it. Commit makes the action, its SLA event and the cursor move visible together; a
crash rolls all three back and the rung stays due. The event's unique (timer, step) key refuses a
second record should anything else ever try.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import logging
import signal
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from bot.conversations.models import Case
from bot.runtime import Runtime
from bot.teams.models import ButlerGroup, Staff
from escalation import ladder
from escalation.models import ACTIVE_STATES, SlaEvent, SlaTimer
from escalation.service import is_postgres, parse_iso

log = logging.getLogger(__name__)


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int
) -> tuple[list[tuple[SlaTimer, Case]], datetime]:
    """Lock the earliest due timers (with their cases), skipping rows others hold.

    Also returns the horizon: no unclaimed rung is due before it (the last claimed due time when
    the batch was full, else now), so claimed timers may fire further rungs up to it.
    """
    query = (
        select(SlaTimer)
        .where(SlaTimer.next_due_at <= now, SlaTimer.state.in_(ACTIVE_STATES))
        .order_by(SlaTimer.next_due_at, SlaTimer.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    postgres = is_postgres(session)
    if postgres:
        # NO KEY UPDATE: enough to own the cursor, and it does not block the KEY SHARE locks that
        # foreign keys to the timer (its events) take.
        query = query.with_for_update(skip_locked=True, key_share=True)
    else:
        # SQLite reads outside a transaction until the first write; a no-op write first takes the
        # database's single writer lock, so what we read next cannot change under us.
        await session.execute(text("UPDATE sla_timers SET id = id WHERE 0"))
    timers = list((await session.scalars(query)).all())
    if not timers:
        return [], now
    horizon = now if len(timers) < limit else max(t.next_due_at or now for t in timers)
    if postgres:
        timers = await _lock_cases_to_change(session, timers)
    case_query = select(Case).where(Case.id.in_({t.case_id for t in timers}))
    case_query = case_query.options(
        joinedload(Case.group).joinedload(ButlerGroup.customer),
        joinedload(Case.assignee),
    )
    cases = {c.id: c for c in (await session.scalars(case_query)).unique()}
    return [(t, cases[t.case_id]) for t in timers], horizon


async def _lock_cases_to_change(session: AsyncSession, timers: list[SlaTimer]) -> list[SlaTimer]:
    # A reassign rung changes its case. Lock those cases too, but never wait for one: a request
    # holding the case may be waiting for our timer lock, so we leave that timer for a later pass.
    wanted = {t.case_id for t in timers if any(e["action"] == "reassign" for e in t.ladder[t.next_step :])}
    if not wanted:
        return timers
    got = set(
        (
            await session.scalars(
                select(Case.id).where(Case.id.in_(wanted)).with_for_update(skip_locked=True, key_share=True)
            )
        ).all()
    )
    return [t for t in timers if t.case_id not in wanted or t.case_id in got]


async def run_pass(rt: Runtime, *, limit: int = 200, isolate: bool = False) -> int:
    """Fire the rungs due now in due order; returns how many fired.

    Claims the `limit` earliest due timers, then fires their rungs from a heap: after a rung, the
    same timer's next rung joins the heap if it is due and not later than the last claimed due
    time (nothing unclaimed can be earlier than that), so rungs fire in due order across timers.
    """
    now = rt.clock.now()
    limit = 1 if isolate else limit
    supervisors: dict[tuple[str, int | None], Staff | None] = {}
    fired = 0
    async with rt.transaction() as session:
        claimed, horizon = await claim_due(session, now=now, limit=limit)
        if not claimed:
            return 0
        heap = [(t.next_due_at or now, t.id, i) for i, (t, _) in enumerate(claimed)]
        heapq.heapify(heap)
        records: list[dict[str, Any]] = []
        while heap:
            _, _, i = heapq.heappop(heap)
            timer, case = claimed[i]
            entry = timer.ladder[timer.next_step]
            ctx = ladder.StepContext(session, rt, timer, case, entry, now, supervisors)
            await ladder.fire_step(ctx, records)
            fired += 1
            nxt = timer.next_due_at
            if nxt is not None and nxt <= horizon and not isolate:
                heapq.heappush(heap, (nxt, timer.id, i))
        # One bulk insert for the pass; its unique (timer, step) key would fail the whole pass
        # rather than let a rung be recorded twice.
        if records:
            await session.execute(insert(SlaEvent), records)
    return fired


async def _record_failure(rt: Runtime, error: str) -> int:
    # The earliest due rung failed on its own: record it as failed so the ladder moves on.
    now = rt.clock.now()
    async with rt.transaction() as session:
        claimed, _ = await claim_due(session, now=now, limit=1)
        for timer, case in claimed:
            ctx = ladder.StepContext(session, rt, timer, case, timer.ladder[timer.next_step], now)
            log.error("SLA step %s of timer %s failed: %s", ctx.entry["action"], timer.id, error)
            await ladder.fail_step(ctx, error)
    return len(claimed)


async def drain(rt: Runtime, *, limit: int = 200) -> int:
    """Run passes until nothing is due; a rung that keeps failing is recorded as failed."""
    total = 0
    while True:
        try:
            fired = await run_pass(rt, limit=limit)
        except DBAPIError:
            raise  # the database is unwell (or a lock timed out): the caller retries later
        except Exception:
            log.exception("SLA pass failed; retrying one rung at a time")
            try:
                fired = await run_pass(rt, isolate=True)
            except DBAPIError:
                raise
            except Exception as exc:
                fired = await _record_failure(rt, f"{type(exc).__name__}: {exc}")
        total += fired
        if fired == 0:
            return total


async def next_due_at(rt: Runtime) -> datetime | None:
    """When the earliest rung comes due."""
    async with rt.maker() as session:
        return await session.scalar(select(func.min(SlaTimer.next_due_at)))


async def run_escalation_worker(
    rt: Runtime, stop: asyncio.Event, *, limit: int = 200, max_idle: float = 15.0
) -> None:
    """Fire due rungs until `stop` is set, sleeping until the next due time or a nearer new timer.

    New clocks announce themselves on the bus topic "sla"; `max_idle` bounds the sleep so a lost
    bus event (Redis down, another process without Redis) only delays a rung, never loses it.
    """
    wake = asyncio.Event()
    wake_at: list[datetime | None] = [None]

    async def listen() -> None:
        async for event in rt.bus.subscribe(["sla"]):
            due = parse_iso(event.get("due_at")) if event.get("due_at") else None
            if due is not None and (wake_at[0] is None or due < wake_at[0]):
                wake.set()

    listener = asyncio.create_task(listen(), name="sla-bus-listener")
    backoff = 1.0
    try:
        while not stop.is_set():
            wake.clear()  # before the pass, so an event arriving during it still wakes us
            try:
                fired = await drain(rt, limit=limit)
                upcoming = await next_due_at(rt)
                backoff = 1.0
            except Exception:
                log.exception("SLA worker pass failed; retrying in %.0fs", backoff)
                upcoming, backoff = None, min(backoff * 2, 30.0)
                delay = backoff
            else:
                now = rt.clock.now()
                delay = max_idle if upcoming is None else (upcoming - now).total_seconds()
                delay = min(max(delay, 0.0), max_idle)
                if delay == 0 and fired == 0:
                    delay = 0.02  # what is due is held by another worker right now: let it finish
            wake_at[0] = upcoming
            if delay <= 0:
                continue
            await _wait_any(stop, wake, delay)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, delay: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def main(argv: list[str] | None = None) -> None:
    """`python -m escalation.worker`: run one escalation worker process until SIGTERM / SIGINT."""
    from bot.factory import build_runtime, close_runtime
    from bot.settings import Settings

    parser = argparse.ArgumentParser(description="Butler SLA escalation worker")
    parser.add_argument("--database-url", help="overrides BUTLER_DATABASE_URL")
    parser.add_argument("--batch", type=int, default=200, help="rungs claimed per transaction")
    parser.add_argument("--max-idle", type=float, default=15.0, help="longest sleep between passes (s)")
    args = parser.parse_args(argv)
    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        from escalation.policy_store import prepare_policies, run_policy_refresh

        rt = build_runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Policies saved in the console win over the YAML file, here as in every other process.
        await prepare_policies(rt)
        refresh = asyncio.create_task(run_policy_refresh(rt, stop), name="sla-policies-refresh")
        try:
            await run_escalation_worker(rt, stop, limit=args.batch, max_idle=args.max_idle)
        finally:
            stop.set()
            refresh.cancel()
            await asyncio.gather(refresh, return_exceptions=True)
            await close_runtime(rt)

    asyncio.run(run())


if __name__ == "__main__":
    main()
