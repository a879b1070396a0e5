"""SLA clock lifecycle: start, meet, pause, resume, stop and re-apply timers; record SLA events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bus import emit
from bot.clock import as_utc
from bot.conversations.models import Case
from bot.teams.models import ButlerGroup, Dealer
from escalation.calendar import BusinessCalendar
from escalation.models import ACTIVE_STATES, BREACHED, MET, PAUSED, RUNNING, STOPPED, SlaEvent, SlaTimer
from escalation.policies import Policy, PolicySet


def iso(value: datetime) -> str:
    """A UTC instant as stored in ladder JSON."""
    return as_utc(value).isoformat()


def parse_iso(value: str | None) -> datetime | None:
    """The inverse of iso()."""
    return None if value is None else as_utc(datetime.fromisoformat(value))


def is_postgres(session: AsyncSession) -> bool:
    """Row locks only exist on PostgreSQL; SQLite serialises writers instead."""
    return session.get_bind().dialect.name == "postgresql"


# Every case opening asks it; built once (bot.db.PerDialect says why).
_DEALER_CODE = (
    select(Dealer.code)
    .join(ButlerGroup, ButlerGroup.dealer_id == Dealer.id)
    .where(ButlerGroup.id == bindparam("group_id"))
)


async def dealer_code(session: AsyncSession, *, group_id: int) -> str | None:
    """The dealer code of a group, for policy matching."""
    return await session.scalar(_DEALER_CODE, {"group_id": group_id})


async def policy_for_case(session: AsyncSession, *, policies: PolicySet, case: Case) -> Policy:
    """The first policy matching the case's category, priority and dealer."""
    code = await dealer_code(session, group_id=case.group_id)
    return policies.select(category=case.category, priority=case.priority, dealer=code)


async def case_timers(
    session: AsyncSession, *, case_id: int, active_only: bool = True, lock: bool = False
) -> list[SlaTimer]:
    """A case's clocks, oldest first; `lock` waits for a worker pass holding them (PostgreSQL)."""
    query = select(SlaTimer).where(SlaTimer.case_id == case_id).order_by(SlaTimer.id)
    if active_only:
        query = query.where(SlaTimer.state.in_(ACTIVE_STATES))
    if lock and is_postgres(session):
        # Re-read under the lock: a worker may have advanced the ladder since we last looked.
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    return list((await session.scalars(query)).all())


async def lock_case(session: AsyncSession, *, case_id: int) -> None:
    """Serialise clock changes of one case across concurrent requests (PostgreSQL)."""
    if is_postgres(session):
        await session.execute(select(Case.id).where(Case.id == case_id).with_for_update(key_share=True))


def add_event(
    session: AsyncSession,
    *,
    case_id: int,
    kind: str,
    now: datetime,
    timer: SlaTimer | None = None,
    step: int | None = None,
    staff_id: int | None = None,
    target_staff_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> SlaEvent:
    """Record an SLA event in the caller's transaction."""
    event = SlaEvent(
        case_id=case_id,
        timer_id=timer.id if timer is not None else None,
        metric=timer.metric if timer is not None else None,
        kind=kind,
        step=step,
        at=now,
        staff_id=staff_id,
        target_staff_id=target_staff_id,
        data=data or {},
    )
    session.add(event)
    return event


def elapsed_seconds(timer: SlaTimer, calendar: BusinessCalendar, now: datetime) -> float:
    """Business seconds the clock has counted: start to now (or pause / end), minus closed pauses."""
    end = timer.ended_at if timer.ended_at is not None else (timer.paused_at or now)
    return max(0.0, calendar.business_seconds_between(timer.started_at, end) - timer.paused_seconds)


def build_ladder(policy: Policy, metric: str) -> list[dict[str, Any]]:
    """The policy's steps for a metric in firing order (ties keep the order they are written in)."""
    target = policy.targets[metric]
    steps = sorted(enumerate(policy.ladders[metric]), key=lambda p: (p[1].at_seconds(target), p[0]))
    return [
        {"action": s.action, "at": s.at_seconds(target), "tell": s.tell_customer, "due": None}
        for _, s in steps
    ]


def next_pending(ladder: list[dict[str, Any]], start: int) -> int:
    """Index of the first rung at or after `start` that still has to fire (len when none)."""
    i = start
    while i < len(ladder) and ladder[i].get("carried"):
        i += 1
    return i


def schedule(timer: SlaTimer, calendar: BusinessCalendar, now: datetime) -> None:
    """Recompute the wall-clock due times of the target and the rungs still to come."""
    elapsed = elapsed_seconds(timer, calendar, now)

    def due_for(at: float) -> datetime:
        return now if at <= elapsed else calendar.add_business_time(now, at - elapsed)

    if elapsed < timer.target_seconds or timer.due_at is None:
        timer.due_at = due_for(timer.target_seconds)
    ladder = [dict(entry) for entry in timer.ladder]
    for i in range(timer.next_step, len(ladder)):
        ladder[i]["due"] = None if ladder[i].get("carried") else iso(due_for(float(ladder[i]["at"])))
    timer.ladder = ladder  # a new list, so the JSON column sees the change
    timer.next_step = next_pending(ladder, timer.next_step)
    timer.next_due_at = parse_iso(ladder[timer.next_step]["due"]) if timer.next_step < len(ladder) else None


def advance(timer: SlaTimer) -> None:
    """Move the ladder cursor past the rung that just fired."""
    timer.next_step = next_pending(timer.ladder, timer.next_step + 1)
    if timer.next_step < len(timer.ladder):
        timer.next_due_at = parse_iso(timer.ladder[timer.next_step]["due"])
    else:
        timer.next_due_at = None


def _announce(session: AsyncSession, timer: SlaTimer) -> None:
    # Wakes a sleeping worker if this clock is due before the time it planned to look again.
    if timer.next_due_at is not None:
        emit(
            session, "sla", {"type": "sla.scheduled", "timer_id": timer.id, "due_at": iso(timer.next_due_at)}
        )


async def start_timer(
    session: AsyncSession,
    *,
    case: Case,
    policy: Policy,
    calendar: BusinessCalendar,
    metric: str,
    cycle: int,
    now: datetime,
    reason: str,
) -> SlaTimer:
    """Start a clock for a metric now and record that the policy applies."""
    (timer,) = await start_timers(
        session,
        case=case,
        policy=policy,
        calendar=calendar,
        metrics=[(metric, cycle)],
        now=now,
        reason=reason,
    )
    return timer


async def start_timers(
    session: AsyncSession,
    *,
    case: Case,
    policy: Policy,
    calendar: BusinessCalendar,
    metrics: list[tuple[str, int]],
    now: datetime,
    reason: str,
) -> list[SlaTimer]:
    """Start clocks for several (metric, cycle) at once: one INSERT for them, their events at commit."""
    timers = [
        SlaTimer(
            case_id=case.id,
            metric=metric,
            cycle=cycle,
            policy=policy.key,
            calendar=calendar.name,
            target_seconds=policy.targets[metric],
            started_at=now,
            paused_seconds=0.0,
            pauses=[],
            pause_when_waiting=policy.pause_resolution_when_waiting_customer,
            state=RUNNING,
            ladder=build_ladder(policy, metric),
            next_step=0,
        )
        for metric, cycle in metrics
    ]
    for timer in timers:
        schedule(timer, calendar, now)
    session.add_all(timers)
    await session.flush()  # the events name the timers' ids
    for timer in timers:
        applied(session, case=case, timer=timer, now=now, reason=reason)
        _announce(session, timer)
    return timers


def applied(
    session: AsyncSession, *, case: Case, timer: SlaTimer, now: datetime, reason: str, **more: Any
) -> SlaEvent:
    """Record that a clock started under its policy (its target, calendar and due time)."""
    return add_event(
        session,
        case_id=case.id,
        timer=timer,
        kind="applied",
        now=now,
        staff_id=case.assignee_id,
        data={
            "policy": timer.policy,
            "target": timer.target_seconds,
            "calendar": timer.calendar,
            "due": iso(timer.due_at) if timer.due_at else None,
            "reason": reason,
            **more,
        },
    )


def pause_timer(session: AsyncSession, *, timer: SlaTimer, now: datetime, reason: str) -> None:
    """Stop counting until resumed; nothing on the ladder comes due meanwhile."""
    if timer.state not in (RUNNING, BREACHED):
        return
    timer.state = PAUSED
    timer.paused_at = now
    if timer.breached_at is None:
        timer.due_at = None
    timer.ladder = [
        {**entry, "due": None} if i >= timer.next_step else entry for i, entry in enumerate(timer.ladder)
    ]
    timer.next_due_at = None
    add_event(session, case_id=timer.case_id, timer=timer, kind="paused", now=now, data={"reason": reason})


def _close_pause(timer: SlaTimer, calendar: BusinessCalendar, now: datetime) -> float:
    assert timer.paused_at is not None
    paused = max(0.0, calendar.business_seconds_between(timer.paused_at, now))
    timer.paused_seconds += paused
    timer.pauses = [*timer.pauses, [iso(timer.paused_at), iso(now)]]
    timer.paused_at = None
    return paused


def resume_timer(
    session: AsyncSession, *, timer: SlaTimer, calendar: BusinessCalendar, now: datetime, reason: str
) -> None:
    """Count again from now; due times move out by the business time spent paused."""
    if timer.state != PAUSED or timer.paused_at is None:
        return
    paused = _close_pause(timer, calendar, now)
    timer.state = BREACHED if timer.breached_at is not None else RUNNING
    schedule(timer, calendar, now)
    add_event(
        session,
        case_id=timer.case_id,
        timer=timer,
        kind="resumed",
        now=now,
        data={"reason": reason, "paused": paused, "due": iso(timer.due_at) if timer.due_at else None},
    )
    _announce(session, timer)


def finish_timer(
    session: AsyncSession,
    *,
    timer: SlaTimer,
    calendar: BusinessCalendar,
    now: datetime,
    state: str,
    reason: str,
    staff_id: int | None = None,
) -> SlaEvent | None:
    """End a clock as met (the promise was answered) or stopped (it no longer applies)."""
    if not timer.active:
        return None
    if timer.paused_at is not None:
        _close_pause(timer, calendar, now)
    timer.state = state
    timer.ended_at = now
    timer.next_due_at = None
    elapsed = elapsed_seconds(timer, calendar, now)
    return add_event(
        session,
        case_id=timer.case_id,
        timer=timer,
        kind="met" if state == MET else "stopped",
        now=now,
        staff_id=staff_id,
        data={
            "reason": reason,
            "elapsed": elapsed,
            "target": timer.target_seconds,
            "late": timer.breached_at is not None,
        },
    )


async def next_cycle(session: AsyncSession, *, case_id: int, metric: str) -> int:
    """The next round number of a metric on a case."""
    last = await session.scalar(
        select(func.max(SlaTimer.cycle)).where(SlaTimer.case_id == case_id, SlaTimer.metric == metric)
    )
    return 0 if last is None else int(last) + 1


async def reapply_policy(
    session: AsyncSession,
    *,
    case: Case,
    old: SlaTimer,
    policy: Policy,
    policies: PolicySet,
    now: datetime,
) -> SlaTimer | None:
    """Replace a live clock by one under a new policy, counted from the original start.

    Rungs of the new ladder that are already behind us and whose action already fired on the old
    clock are carried over (not repeated); other overdue rungs fire at once. A breach carries over
    only if the new target is also exceeded.
    """
    target = policy.targets[old.metric]
    if old.policy == policy.key and target == old.target_seconds:
        return None
    calendar = policies.calendar(policy.calendar)
    old_calendar = policies.calendar(old.calendar)
    fired: dict[str, int] = {}
    for entry in old.ladder[: old.next_step]:
        fired[entry["action"]] = fired.get(entry["action"], 0) + 1
    was_paused = old.paused_at
    finish_timer(session, timer=old, calendar=old_calendar, now=now, state=STOPPED, reason="recategorised")
    await session.flush()  # the old clock leaves the one-live-clock index before the new one enters
    pauses = list(old.pauses)
    if was_paused is not None:
        # finish_timer closed the pause at now; the new clock keeps it open instead.
        pauses = pauses[:-1]
    new = SlaTimer(
        case_id=case.id,
        metric=old.metric,
        cycle=old.cycle,
        policy=policy.key,
        calendar=calendar.name,
        target_seconds=target,
        started_at=old.started_at,
        paused_at=was_paused,
        paused_seconds=sum(
            calendar.business_seconds_between(parse_iso(a) or now, parse_iso(b) or now) for a, b in pauses
        ),
        pauses=pauses,
        pause_when_waiting=policy.pause_resolution_when_waiting_customer,
        state=PAUSED if was_paused is not None else RUNNING,
        ladder=build_ladder(policy, old.metric),
        next_step=0,
    )
    elapsed = elapsed_seconds(new, calendar, now)
    if old.breached_at is not None and elapsed >= target:
        new.breached_at = old.breached_at
        new.due_at = old.due_at
        if new.state == RUNNING:
            new.state = BREACHED
    ladder = new.ladder
    for entry in ladder:
        if float(entry["at"]) <= elapsed and fired.get(entry["action"], 0) > 0:
            entry["carried"] = True
            fired[entry["action"]] -= 1
    new.ladder = ladder
    new.next_step = next_pending(ladder, 0)
    if new.state != PAUSED:
        schedule(new, calendar, now)
    session.add(new)
    await session.flush()
    old.replaced_by_id = new.id
    applied(
        session,
        case=case,
        timer=new,
        now=now,
        reason="recategorised",
        replaces=old.id,
        carried=[e["action"] for e in ladder if e.get("carried")],
    )
    if new.state == PAUSED and not policy.pause_resolution_when_waiting_customer:
        resume_timer(session, timer=new, calendar=calendar, now=now, reason="policy does not pause")
    else:
        _announce(session, new)
    return new
