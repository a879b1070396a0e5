"""The staff inbox: cases ordered by SLA urgency, with filters and full-text search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.enums import ACTIVE_STATUSES, AuthorKind
from bot.conversations.models import Case, Message
from bot.teams.enums import Role
from bot.teams.models import ButlerGroup, Customer, Membership, ReadMark, Staff
from escalation.models import BREACHED, RUNNING, SlaTimer

# A running clock with less than this share of its target left is "at risk".
AT_RISK_SHARE = 0.25


@dataclass(frozen=True)
class InboxFilters:
    """What the inbox shows."""

    scope: str = "mine"  # mine | team (every case the caller may see)
    status: str | None = None  # one status, "active" (default) or "all"
    category: str | None = None
    role: str | None = None  # the role of the assignee
    dealer_id: int | None = None
    at_risk: bool = False
    breached: bool = False
    q: str | None = None  # search over customer names and message texts
    limit: int = 100


@dataclass
class InboxRow:
    """One case with what the inbox shows about its clocks."""

    case: Case
    customer_name: str
    due_at: datetime | None
    breached: bool
    at_risk: bool
    unread: bool = False


def _scoped(query: Select[Any], staff: Staff, scope: str) -> Select[Any]:
    if scope == "mine" or staff.role not in (Role.LEAD, Role.MANAGER, Role.ADMIN):
        if scope == "mine":
            return query.where(Case.assignee_id == staff.id)
        member = exists().where(
            Membership.group_id == Case.group_id,
            Membership.staff_id == staff.id,
            Membership.left_at.is_(None),
        )
        return query.where(member)
    if staff.role == Role.LEAD:
        return query.where(or_(ButlerGroup.dealer_id == staff.dealer_id, ButlerGroup.dealer_id.is_(None)))
    return query


async def inbox(
    session: AsyncSession, *, staff: Staff, filters: InboxFilters, now: datetime
) -> list[InboxRow]:
    """Cases for the caller, breached first, then by the nearest SLA due time, then oldest."""
    due = (
        select(
            SlaTimer.case_id,
            func.min(SlaTimer.due_at).label("due_at"),
            func.max(case((SlaTimer.state == BREACHED, 1), else_=0)).label("breached"),
            func.max(case((and_(SlaTimer.state == RUNNING, SlaTimer.due_at.is_not(None)), 1), else_=0)).label(
                "running"
            ),
        )
        .where(SlaTimer.state.in_((RUNNING, BREACHED)))
        .group_by(SlaTimer.case_id)
        .subquery()
    )
    read_upto = (
        select(ReadMark.last_message_id)
        .where(ReadMark.staff_id == staff.id, ReadMark.group_id == Case.group_id)
        .correlate(Case)
        .scalar_subquery()
    )
    unread = exists().where(
        Message.group_id == Case.group_id,
        Message.author_kind == AuthorKind.CUSTOMER,
        Message.id > func.coalesce(read_upto, 0),
    )
    query: Select[Any] = (
        select(Case, Customer.display_name, due.c.due_at, func.coalesce(due.c.breached, 0), unread)
        .join(ButlerGroup, ButlerGroup.id == Case.group_id)
        .join(Customer, Customer.id == ButlerGroup.customer_id)
        .outerjoin(due, due.c.case_id == Case.id)
    )
    query = _scoped(query, staff, filters.scope)
    if filters.status in (None, "", "active"):
        query = query.where(Case.status.in_(ACTIVE_STATUSES))
    elif filters.status != "all":
        query = query.where(Case.status == filters.status)
    if filters.category:
        query = query.where(Case.category == filters.category)
    if filters.dealer_id:
        query = query.where(ButlerGroup.dealer_id == filters.dealer_id)
    if filters.role:
        query = query.join(Staff, Staff.id == Case.assignee_id).where(Staff.role == filters.role)
    if filters.breached:
        query = query.where(due.c.breached == 1)
    if filters.q:
        pattern = f"%{_escape_like(filters.q.strip()[:100])}%"
        in_messages = exists().where(
            Message.group_id == Case.group_id, Message.body.ilike(pattern, escape="\\")
        )
        query = query.where(or_(Customer.display_name.ilike(pattern, escape="\\"), in_messages))
    query = query.order_by(
        func.coalesce(due.c.breached, 0).desc(), due.c.due_at.is_(None), due.c.due_at, Case.opened_at
    ).limit(max(1, min(filters.limit, 500)))
    rows: list[InboxRow] = []
    for found, name, due_at, breached, has_unread in (await session.execute(query)).unique().all():
        at_risk = bool(due_at and not breached and _at_risk(found, due_at, now))
        if filters.at_risk and not at_risk:
            continue
        rows.append(
            InboxRow(
                case=found,
                customer_name=name,
                due_at=due_at,
                breached=bool(breached),
                at_risk=at_risk,
                unread=bool(has_unread),
            )
        )
    return rows


def _at_risk(found: Case, due_at: datetime, now: datetime) -> bool:
    left = due_at - now
    opened_span = max(due_at - found.opened_at, timedelta(minutes=1))
    return left <= opened_span * AT_RISK_SHARE


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
