"""A case's SLA clocks and events, and the policies, in words (for `butler sla` and the console)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.models import Case
from bot.teams.models import Staff
from escalation import service
from escalation.ladder import METRIC_NAMES
from escalation.models import MET, PAUSED, SlaEvent, SlaTimer
from escalation.policies import PolicySet, duration_label


def _t(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _metric(timer_or_name: SlaTimer | str | None) -> str:
    name = timer_or_name.metric if isinstance(timer_or_name, SlaTimer) else timer_or_name
    return METRIC_NAMES.get(name or "", name or "case")


def _ladder_lines(timer: SlaTimer) -> list[str]:
    lines = []
    for i, entry in enumerate(timer.ladder):
        if entry.get("carried"):
            status = "carried over"
        elif i < timer.next_step:
            status = "done"
        elif i == timer.next_step and timer.active:
            due = service.parse_iso(entry.get("due"))
            status = f"next, due {_t(due)}" if due else "next, on hold while paused"
        else:
            status = "pending" if timer.active else "not reached"
        lines.append(
            f"      {i}. {entry['action']} at {duration_label(float(entry['at']))} business time: {status}"
        )
    return lines


def describe_timer(timer: SlaTimer, policies: PolicySet, now: datetime) -> list[str]:
    """A clock in a few lines: policy, target, where it stands, its ladder."""
    calendar = policies.calendar(timer.calendar)
    elapsed = service.elapsed_seconds(timer, calendar, now)
    head = (
        f"  {_metric(timer)} (round {timer.cycle + 1}, clock #{timer.id}): policy {timer.policy}, "
        f"calendar {timer.calendar}, target {duration_label(timer.target_seconds)}"
    )
    if timer.state == MET:
        verdict = "late" if timer.breached_at else "within target"
        where = f"met at {_t(timer.ended_at)} after {duration_label(elapsed)} ({verdict})"
    elif not timer.active:
        why = f"replaced by clock #{timer.replaced_by_id}" if timer.replaced_by_id else "no longer applies"
        where = f"stopped at {_t(timer.ended_at)} after {duration_label(elapsed)} ({why})"
    elif timer.state == PAUSED:
        where = f"paused since {_t(timer.paused_at)}; counted {duration_label(elapsed)} so far"
    else:
        left = timer.target_seconds - elapsed
        where = (
            f"running: {duration_label(elapsed)} counted, {duration_label(left)} left, due {_t(timer.due_at)}"
            if left > 0
            else f"BREACHED at {_t(timer.breached_at or timer.due_at)}; {duration_label(-left)} over"
        )
    lines = [head, f"    started {_t(timer.started_at)}; {where}"]
    if timer.paused_seconds:
        lines.append(f"    paused {len(timer.pauses)}x for {duration_label(timer.paused_seconds)} in total")
    return [*lines, "    ladder:", *_ladder_lines(timer)]


def describe_event(event: SlaEvent, names: dict[int, str]) -> str:
    """One event as a line."""
    data: dict[str, Any] = event.data or {}
    who = names.get(event.target_staff_id or 0)
    parts = [f"  {_t(event.at)}  {event.kind:<10} {_metric(event.metric)}"]
    if event.kind == "applied":
        parts.append(
            f"policy {data.get('policy')} ({data.get('reason')}), target "
            f"{duration_label(float(data.get('target', 0)))}, due {data.get('due')}"
        )
    elif event.kind in ("met", "stopped"):
        late = " late" if data.get("late") else ""
        parts.append(f"after {duration_label(float(data.get('elapsed', 0)))}{late} ({data.get('reason')})")
    elif event.kind in ("paused", "resumed"):
        parts.append(str(data.get("reason", "")))
    elif event.kind == "reassigned":
        if data.get("moved") is False:
            parts.append(f"no backup available ({data.get('reason')})")
        else:
            frm = names.get(data.get("from") or 0, data.get("from"))
            parts.append(f"from {frm} to {names.get(data.get('to') or 0, data.get('to'))}")
    elif event.kind == "escalated":
        parts.append(f"to the {data.get('to')}" + (f" {who}" if who else " (nobody found)"))
    elif who:
        parts.append(f"-> {who}")
    if event.step is not None:
        parts.append(f"[step {event.step}, due {data.get('due')}]")
    if data.get("error"):
        parts.append(f"error: {data['error']}")
    return " ".join(parts)


async def explain_case(
    session: AsyncSession, *, case_id: int, policies: PolicySet, now: datetime
) -> list[str]:
    """Everything about a case's SLA as lines of text."""
    case = await session.get(Case, case_id)
    if case is None:
        return [f"Case #{case_id} does not exist."]
    timers = await service.case_timers(session, case_id=case_id, active_only=False)
    events = list(
        (
            await session.scalars(
                select(SlaEvent).where(SlaEvent.case_id == case_id).order_by(SlaEvent.at, SlaEvent.id)
            )
        ).all()
    )
    ids = (
        {case.assignee_id or 0} | {e.staff_id or 0 for e in events} | {e.target_staff_id or 0 for e in events}
    )
    ids |= {int(e.data.get(k) or 0) for e in events for k in ("from", "to") if isinstance(e.data.get(k), int)}
    staff = (
        await session.execute(select(Staff.id, Staff.display_name, Staff.role).where(Staff.id.in_(ids)))
    ).all()
    names = {s.id: f"{s.display_name} ({s.role})" for s in staff}
    lines = [
        f'Case #{case.id} "{case.subject}": {case.category}/{case.priority}, status {case.status}, '
        f"assignee {names.get(case.assignee_id or 0, 'nobody')}, opened {_t(case.opened_at)}",
        "Clocks:" if timers else "Clocks: none (no policy applied yet)",
    ]
    for timer in timers:
        lines.extend(describe_timer(timer, policies, now))
    lines.append("Events:" if events else "Events: none")
    lines.extend(describe_event(e, names) for e in events)
    return lines


def describe_policies(policies: PolicySet) -> list[str]:
    """What applies to what, in the order policies are tried."""
    lines = [f"SLA policies from {policies.source or '(built in)'}; the first match applies:"]
    for n, p in enumerate(policies.policies, 1):
        targets = ", ".join(f"{_metric(m)} {duration_label(s)}" for m, s in p.targets.items())
        pause = "pauses" if p.pause_resolution_when_waiting_customer else "keeps running"
        lines.append(f"{n}. {p.key}: {p.describe_match()}")
        lines.append(
            f"   targets: {targets} (calendar {p.calendar}; resolution {pause} while waiting on the customer)"
        )
        for metric, steps in p.ladders.items():
            lines.append(f"   {_metric(metric)} ladder: " + "; ".join(s.describe() for s in steps))
    lines.append("Calendars:")
    lines.extend(f"  {cal.describe()}" for cal in policies.calendars.values())
    return lines
