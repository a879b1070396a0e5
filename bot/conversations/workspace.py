"""Everything the console's group view shows, gathered in one place (read only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bookings import service as booking_service
from bot.conversations import service as conv_service
from bot.conversations.models import Case, CaseEvent, Message
from bot.runtime import AutoAnswer, Runtime
from bot.teams import access
from bot.teams import service as teams_service
from bot.teams.models import ButlerGroup, ChannelIdentity, Membership, Staff, Vehicle
from escalation.models import SlaEvent, SlaTimer


@dataclass
class TimelineItem:
    """One line of a case's history: a case event or an SLA event."""

    at: datetime
    kind: str
    text: str


@dataclass
class Workspace:
    """A butler group as a specialist works on it."""

    group: ButlerGroup
    members: list[Membership]
    cases: list[Case]
    messages: list[Message]
    active: Case | None
    timers: list[SlaTimer]
    timeline: list[TimelineItem]
    suggestions: list[AutoAnswer]
    channels: list[ChannelIdentity]
    colleagues: list[Staff] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)


async def load_workspace(session: AsyncSession, rt: Runtime, *, staff: Staff, group_id: int) -> Workspace:
    """The group view's data; access is checked first."""
    group = await access.require_group(session, staff=staff, group_id=group_id)
    members = await teams_service.active_members(session, group_id=group.id)
    cases = await conv_service.list_group_cases(session, group_id=group.id)
    messages = await conv_service.list_messages(
        session, group_id=group.id, include_internal=True, limit=300, newest=True
    )
    active = await conv_service.active_case(session, group_id=group.id)
    focus = active or (cases[0] if cases else None)
    timers: list[SlaTimer] = []
    timeline: list[TimelineItem] = []
    if focus is not None:
        timers = list(
            (
                await session.scalars(
                    select(SlaTimer).where(SlaTimer.case_id == focus.id).order_by(SlaTimer.id)
                )
            ).all()
        )
        timeline = await _timeline(session, case=focus)
    suggestions: list[AutoAnswer] = []
    last = await conv_service.last_customer_message(session, group_id=group.id)
    if rt.answerer is not None and last is not None and last.body:
        suggestions = rt.answerer.suggest(last.body, locale=group.customer.locale, k=3)
    channels = list(
        (
            await session.scalars(
                select(ChannelIdentity).where(ChannelIdentity.customer_id == group.customer_id)
            )
        ).all()
    )
    colleagues = [s for s in await teams_service.list_staff(session) if s.active]
    vehicles = await booking_service.customer_vehicles(session, customer_id=group.customer_id)
    return Workspace(
        group, members, cases, messages, active, timers, timeline, suggestions, channels, colleagues, vehicles
    )


async def _timeline(session: AsyncSession, *, case: Case) -> list[TimelineItem]:
    names = {s.id: s.display_name for s in await teams_service.list_staff(session)}
    items: list[TimelineItem] = []
    for ev in (await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))).all():
        who = names.get(ev.actor_staff_id or 0, "")
        if ev.kind == "status":
            text = f"{ev.from_status} → {ev.to_status}" + (f" ({who})" if who else "")
        elif ev.kind == "reassigned":
            text = f"{names.get(ev.data.get('from') or 0, '—')} → {names.get(ev.data.get('to') or 0, '—')}"
        else:
            text = ", ".join(f"{k}: {v}" for k, v in (ev.data or {}).items())
        items.append(TimelineItem(ev.at, f"case.{ev.kind}", text))
    for sla in (await session.scalars(select(SlaEvent).where(SlaEvent.case_id == case.id))).all():
        target = names.get(sla.target_staff_id or 0, "")
        text = f"{sla.metric or ''} {sla.kind}" + (f" → {target}" if target else "")
        items.append(TimelineItem(sla.at, f"sla.{sla.kind}", text.strip()))
    return sorted(items, key=lambda i: i.at)
