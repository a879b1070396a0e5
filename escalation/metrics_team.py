"""The dashboard's escalation queue and team-load table (definitions in escalation/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.clock import as_utc
from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.teams.enums import TEAM_ROLES
from bot.teams.models import ButlerGroup, Customer, Staff
from escalation.metrics_base import Scope, escalation_condition, in_dealer_case, in_dealer_group, ratio
from escalation.models import SlaEvent, SlaTimer


@dataclass(frozen=True)
class QueueItem:
    """An open case with a breached or escalated clock."""

    case_id: int
    group_id: int
    subject: str
    customer: str
    priority: str
    assignee: str | None
    metric: str
    state: str
    due_at: datetime | None
    overdue_seconds: float | None
    last_step: str | None
    escalated_to: str | None


async def escalation_queue(session: AsyncSession, *, scope: Scope, limit: int = 50) -> list[QueueItem]:
    """Open cases with a breached or escalated clock, most overdue first."""
    # The most overdue clocks first, then names for those few rows only.
    top = (
        select(SlaTimer.case_id, SlaTimer.metric, SlaTimer.state, SlaTimer.due_at)
        .join(Case, Case.id == SlaTimer.case_id)
        .where(
            escalation_condition(),
            Case.status.in_(ACTIVE_STATUSES),
            in_dealer_group(scope, Case.group_id, few=True),
        )
        .order_by(SlaTimer.due_at.asc().nulls_last(), SlaTimer.case_id)
        .limit(limit * 3)
        .subquery()
    )
    rows = await session.execute(
        select(
            top.c.case_id,
            top.c.metric,
            top.c.state,
            top.c.due_at,
            Case.group_id,
            Case.subject,
            Case.priority,
            Customer.display_name,
            Staff.display_name,
        )
        .select_from(top)
        .join(Case, Case.id == top.c.case_id)
        .join(ButlerGroup, ButlerGroup.id == Case.group_id)
        .join(Customer, Customer.id == ButlerGroup.customer_id)
        .outerjoin(Staff, Staff.id == Case.assignee_id)
        .order_by(top.c.due_at.asc().nulls_last(), top.c.case_id)
    )
    items: dict[int, dict[str, Any]] = {}
    now = as_utc(scope.now)
    for case_id, metric, state, due_at, group_id, subject, priority, customer, assignee in rows:
        if case_id in items or len(items) >= limit:
            continue
        items[case_id] = {
            "case_id": case_id,
            "group_id": group_id,
            "subject": subject,
            "customer": customer,
            "priority": priority,
            "assignee": assignee,
            "metric": metric,
            "state": state,
            "due_at": due_at,
            "overdue_seconds": (now - due_at).total_seconds() if due_at else None,
            "last_step": None,
            "escalated_to": None,
        }
    if items:
        target = aliased(Staff)
        events = await session.execute(
            select(SlaEvent.case_id, SlaEvent.kind, target.display_name)
            .outerjoin(target, target.id == SlaEvent.target_staff_id)
            .where(
                SlaEvent.case_id.in_(list(items)),
                SlaEvent.kind.in_(("breached", "escalated", "reassigned")),
            )
            .order_by(SlaEvent.at, SlaEvent.id)
        )
        for case_id, kind, name in events:
            items[case_id]["last_step"], items[case_id]["escalated_to"] = kind, name
    return [QueueItem(**item) for item in items.values()]


@dataclass(frozen=True)
class StaffLoad:
    """One specialist's load."""

    staff_id: int
    name: str
    role: str
    open_cases: int
    capacity: int
    on_duty: bool
    breaches: int

    @property
    def load(self) -> float | None:
        """Open cases / capacity."""
        return ratio(self.open_cases, self.capacity)


TeamRow = tuple[int, str, str, int, bool, int]  # id, name, role, capacity, on duty, open cases


async def team_rows(session: AsyncSession, scope: Scope) -> list[TeamRow]:
    """Active specialists of the scope with their open cases (id, name, role, capacity, on duty, open)."""
    open_cases = func.count(Case.id)
    query = (
        select(Staff.id, Staff.display_name, Staff.role, Staff.capacity, Staff.on_duty, open_cases)
        .outerjoin(Case, and_(Case.assignee_id == Staff.id, Case.status.in_(ACTIVE_STATUSES)))
        .where(Staff.active.is_(True), Staff.role.in_([str(r) for r in TEAM_ROLES]))
        .group_by(Staff.id, Staff.display_name, Staff.role, Staff.capacity, Staff.on_duty)
    )
    if scope.dealer_id is not None:
        query = query.where(Staff.dealer_id == scope.dealer_id)
    return [
        (sid, name, role, cap, duty, int(n)) for sid, name, role, cap, duty, n in await session.execute(query)
    ]


def team_table(rows: list[TeamRow], breaches: dict[int | None, int]) -> list[StaffLoad]:
    """The team-load rows, fullest first."""
    loads = [
        StaffLoad(sid, name, role, n, cap, duty, breaches.get(sid, 0))
        for sid, name, role, cap, duty, n in rows
    ]
    return sorted(loads, key=lambda x: (-(x.load or 0.0), -x.breaches, x.name))


async def team_load(
    session: AsyncSession, *, scope: Scope, breaches: dict[int | None, int] | None = None
) -> list[StaffLoad]:
    """Per active specialist of the dealer: open cases, capacity, on duty, breaches in the period.

    `breaches` (assignee -> breaches in the period, as `series` returns them) saves a query.
    """
    rows = await team_rows(session, scope)
    if breaches is None:
        breach_rows = await session.execute(
            select(SlaEvent.staff_id, func.count())
            .where(
                SlaEvent.kind == "breached",
                SlaEvent.at >= scope.start,
                SlaEvent.at < scope.end,
                in_dealer_case(scope, SlaEvent.case_id),
            )
            .group_by(SlaEvent.staff_id)
        )
        breaches = {sid: int(n) for sid, n in breach_rows}
    return team_table(rows, breaches)
