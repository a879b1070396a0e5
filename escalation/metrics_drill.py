"""Drill-down: the cases (or bot answers) behind each dashboard number, for the list page and CSV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.teams.models import ButlerGroup, Customer, Dealer, Staff
from escalation.metrics_base import (
    METRICS,
    WAITING_STAFF,
    AnySelect,
    Scope,
    Sql,
    applied_rounds,
    at_risk_condition,
    bot_answers,
    escalation_condition,
    first_responses,
    no_jit,
)
from escalation.models import BREACHED, SlaEvent, SlaTimer

# Drill-down keys and what their detail column holds.
DETAIL: dict[str, str] = {
    "open": "status",
    "waiting_staff": "status",
    "at_risk": "due",
    "breached_now": "breached_at",
    "escalations": "due",
    "csat": "score",
    "sla": "missed",
    "first_response": "seconds",
    "backlog": "status",
    "breaches": "count",
    "staff_open": "status",
    "opened": "status",
    "bot_resolved": "feedback",
}
DRILLS = tuple(DETAIL)
# Drill-downs whose numbers are "now" rather than over the period.
LIVE = frozenset({"open", "waiting_staff", "at_risk", "breached_now", "escalations", "staff_open"})


@dataclass(frozen=True)
class Drill:
    """Which number to open: a drill key plus the chart point's day, metric, role or staff."""

    metric: str
    day: date | None = None
    sla_metric: str | None = None
    role: str | None = None
    staff_id: int | None = None  # 0: unassigned (breaches)
    missed_only: bool = False

    def __post_init__(self) -> None:
        if self.metric not in DETAIL:
            raise ValueError(f"unknown drill-down {self.metric!r}")
        if self.sla_metric is not None and self.sla_metric not in METRICS:
            raise ValueError(f"unknown SLA metric {self.sla_metric!r}")


@dataclass(frozen=True)
class CaseRow:
    """One line of the drill-down list and of the CSV export (case_id None for a bot answer)."""

    case_id: int | None
    group_id: int
    customer: str
    dealer: str | None
    subject: str
    category: str
    priority: str
    status: str
    assignee: str | None
    assignee_role: str | None
    opened_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    csat_score: int | None
    detail: Any


def _ids(sql: Sql, scope: Scope, drill: Drill) -> tuple[AnySelect, str]:
    """(case_id, detail) rows of a drill-down and how to order them: asc, desc or recent."""
    start, end = scope.day_range(drill.day)
    m = drill.metric
    if m in ("open", "waiting_staff", "staff_open"):
        statuses = WAITING_STAFF if m == "waiting_staff" else ACTIVE_STATUSES
        query: AnySelect = select(Case.id.label("case_id"), Case.status.label("detail")).where(
            Case.status.in_(statuses)
        )
        if m == "staff_open":
            query = query.where(Case.assignee_id == (drill.staff_id or 0))
        return query, "recent"
    if m in ("at_risk", "breached_now", "escalations"):
        condition: ColumnElement[bool] = {
            "at_risk": lambda: at_risk_condition(sql, scope),
            "breached_now": lambda: SlaTimer.state == BREACHED,
            "escalations": escalation_condition,
        }[m]()
        detail = func.min(SlaTimer.breached_at if m == "breached_now" else SlaTimer.due_at)
        query = (
            select(SlaTimer.case_id.label("case_id"), detail.label("detail"))
            .join(Case, Case.id == SlaTimer.case_id)
            .where(condition, Case.status.in_(ACTIVE_STATUSES))
            .group_by(SlaTimer.case_id)
        )
        return query, "asc"
    if m == "csat":
        query = select(Case.id.label("case_id"), Case.csat_score.label("detail")).where(
            Case.csat_asked_at >= start, Case.csat_asked_at < min(end, _after(scope.now))
        )
        return query, "recent"
    if m == "sla":
        rounds = applied_rounds(sql, scope, start, end)
        if drill.sla_metric:
            rounds = rounds.where(rounds.selected_columns.metric == drill.sla_metric)
        if drill.role:
            rounds = rounds.where(rounds.selected_columns.role == drill.role)
        sub = rounds.subquery()
        query = select(sub.c.case_id, func.max(sub.c.missed).label("detail")).group_by(sub.c.case_id)
        if drill.missed_only:
            query = query.having(func.max(sub.c.missed) > 0)
        return query, "desc"
    if m == "first_response":
        sub = first_responses(sql, scope, start, end).subquery()
        return select(sub.c.case_id, func.max(sub.c.wall).label("detail")).group_by(sub.c.case_id), "desc"
    if m == "backlog":
        # Open at the end of the day (or of the period): opened before, not resolved by then.
        cut = min(end, _after(scope.now))
        query = select(Case.id.label("case_id"), Case.status.label("detail")).where(
            Case.opened_at < cut, or_(Case.resolved_at.is_(None), Case.resolved_at >= cut)
        )
        return query, "recent"
    if m == "breaches":
        who = SlaEvent.staff_id.is_(None) if drill.staff_id == 0 else SlaEvent.staff_id == drill.staff_id
        query = (
            select(SlaEvent.case_id.label("case_id"), func.count().label("detail"))
            .where(SlaEvent.kind == "breached", SlaEvent.at >= start, SlaEvent.at < end)
            .group_by(SlaEvent.case_id)
        )
        if drill.staff_id is not None:
            query = query.where(who)
        return query, "desc"
    # opened
    query = select(Case.id.label("case_id"), Case.status.label("detail")).where(
        Case.opened_at >= start, Case.opened_at < end
    )
    return query, "recent"


def _after(now: datetime) -> datetime:
    return now + timedelta(microseconds=1)


async def drill_rows(
    session: AsyncSession, *, scope: Scope, drill: Drill, limit: int = 500
) -> tuple[list[CaseRow], int]:
    """The rows behind a dashboard number (at most `limit`) and how many there are in all."""
    sql = Sql(session, scope)
    await no_jit(session)
    if drill.metric == "bot_resolved":
        return await _bot_rows(session, sql, scope, drill, limit)
    ids, order = _ids(sql, scope, drill)
    sub = ids.subquery()
    # Order, count (a window over the whole set, before LIMIT) and cut in one pass over the ids;
    # names are then joined for the rows shown only.
    top_query = (
        select(sub.c.case_id, sub.c.detail, Case.opened_at, func.count().over().label("total"))
        .join(Case, Case.id == sub.c.case_id)
        .order_by(*_ordering(order, sub.c.case_id, sub.c.detail, Case.opened_at))
        .limit(limit)
    )
    if scope.dealer_id is not None:
        top_query = top_query.join(ButlerGroup, ButlerGroup.id == Case.group_id).where(_dealer(scope))
    top = top_query.subquery()
    query = (
        select(
            Case.id,
            Case.group_id,
            Customer.display_name,
            Dealer.name,
            Case.subject,
            Case.category,
            Case.priority,
            Case.status,
            Staff.display_name,
            Staff.role,
            Case.opened_at,
            Case.first_response_at,
            Case.resolved_at,
            Case.csat_score,
            top.c.detail,
            top.c.total,
        )
        .join(top, top.c.case_id == Case.id)
        .join(ButlerGroup, ButlerGroup.id == Case.group_id)
        .join(Customer, Customer.id == ButlerGroup.customer_id)
        .outerjoin(Dealer, Dealer.id == ButlerGroup.dealer_id)
        .outerjoin(Staff, Staff.id == Case.assignee_id)
        .order_by(*_ordering(order, top.c.case_id, top.c.detail, top.c.opened_at))
    )
    rows = (await session.execute(query)).all()
    total = int(rows[0][-1]) if rows else 0
    return [CaseRow(*tuple(row)[:-1]) for row in rows], total


def _ordering(order: str, case_id: Any, detail: Any, opened_at: Any) -> tuple[Any, ...]:
    """asc: by detail (due times); desc: by detail, newest first; recent: newest first."""
    if order == "asc":
        return (detail.asc().nulls_last(), case_id)
    if order == "desc":
        return (detail.desc().nulls_last(), opened_at.desc(), case_id.desc())
    return (opened_at.desc(), case_id.desc())


def _dealer(scope: Scope) -> ColumnElement[bool]:
    if scope.dealer_id is None:
        return literal(True)
    return ButlerGroup.dealer_id == scope.dealer_id


async def _bot_rows(
    session: AsyncSession, sql: Sql, scope: Scope, drill: Drill, limit: int
) -> tuple[list[CaseRow], int]:
    start, end = scope.day_range(drill.day)
    answers = bot_answers(sql, scope, start, min(end, _after(scope.now))).subquery()
    resolved = and_(answers.c.resolved)
    total = int(await session.scalar(select(func.count()).select_from(answers).where(resolved)) or 0)
    rows = await session.execute(
        select(answers.c.group_id, Customer.display_name, Dealer.name, answers.c.meta, answers.c.created_at)
        .join(ButlerGroup, ButlerGroup.id == answers.c.group_id)
        .join(Customer, Customer.id == ButlerGroup.customer_id)
        .outerjoin(Dealer, Dealer.id == ButlerGroup.dealer_id)
        .where(resolved)
        .order_by(answers.c.created_at.desc(), answers.c.id.desc())
        .limit(limit)
    )
    out = []
    for group_id, customer, dealer, meta, created_at in rows:
        meta = meta or {}
        out.append(
            CaseRow(
                case_id=None,
                group_id=group_id,
                customer=customer,
                dealer=dealer,
                subject=str(meta.get("topic") or ""),
                category="bot",
                priority="",
                status="bot_resolved",
                assignee=None,
                assignee_role=None,
                opened_at=created_at,
                first_response_at=None,
                resolved_at=None,
                csat_score=None,
                detail=meta.get("feedback"),
            )
        )
    return out, total
