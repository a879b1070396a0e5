"""The dashboard's live tiles and the dealer look-ups of its filter (definitions: escalation/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.teams.models import Dealer
from escalation.metrics_base import (
    POSITIVE,
    WAITING_STAFF,
    Scope,
    Sql,
    active_case_timers,
    at_risk_condition,
    bot_answers,
    count_if,
    in_dealer_group,
    ratio,
    safe_timezone,
)
from escalation.models import BREACHED, SlaTimer


@dataclass
class Tiles:
    """The live numbers at the top of the dashboard."""

    open_cases: int = 0
    waiting_staff: int = 0
    at_risk: int = 0
    breached_now: int = 0
    bot_answers_today: int = 0
    bot_resolved_today: int = 0
    csat_asked_today: int = 0
    csat_responses_today: int = 0
    csat_positive_today: int = 0

    @property
    def csat_today(self) -> float | None:
        """Positive / responses."""
        return ratio(self.csat_positive_today, self.csat_responses_today)

    @property
    def response_rate_today(self) -> float | None:
        """Responses / asked."""
        return ratio(self.csat_responses_today, self.csat_asked_today)


async def tiles(session: AsyncSession, *, scope: Scope) -> Tiles:
    """Open, waiting on staff, at risk, breached now, bot-resolved today, CSAT today."""
    sql = Sql(session, scope)
    out = Tiles()
    row = (
        await session.execute(
            select(func.count(), count_if(Case.status.in_(WAITING_STAFF))).where(
                Case.status.in_(ACTIVE_STATUSES), in_dealer_group(scope, Case.group_id, few=True)
            )
        )
    ).one()
    out.open_cases, out.waiting_staff = int(row[0]), int(row[1])
    # At risk and breached now in one pass over the live clocks of open cases.
    risky, late = at_risk_condition(sql, scope), SlaTimer.state == BREACHED
    clocks = (
        active_case_timers(scope, or_(risky, late))
        .add_columns(risky.label("risky"), late.label("late"))
        .subquery()
    )
    row = (
        await session.execute(
            select(
                func.count(distinct(case((clocks.c.risky, clocks.c.case_id)))),
                func.count(distinct(case((clocks.c.late, clocks.c.case_id)))),
            )
        )
    ).one()
    out.at_risk, out.breached_now = int(row[0]), int(row[1])
    today_start, _ = scope.day_range(scope.today)
    answers = bot_answers(sql, scope, today_start, scope.now + timedelta(microseconds=1), few=True).subquery()
    bot = (await session.execute(select(func.count(), count_if(answers.c.resolved)))).one()
    out.bot_answers_today, out.bot_resolved_today = int(bot[0]), int(bot[1])
    csat = (
        await session.execute(
            select(
                func.count(),
                func.count(Case.csat_score),
                count_if(Case.csat_score >= POSITIVE),
            ).where(
                Case.csat_asked_at >= today_start,
                Case.csat_asked_at <= scope.now,
                in_dealer_group(scope, Case.group_id, few=True),
            )
        )
    ).one()
    out.csat_asked_today, out.csat_responses_today, out.csat_positive_today = map(int, csat)
    return out


async def dealer_timezone(session: AsyncSession, *, dealer_id: int | None) -> str:
    """The timezone a dealer's days are counted in (UTC without a dealer)."""
    if dealer_id is None:
        return "UTC"
    return safe_timezone(await session.scalar(select(Dealer.timezone).where(Dealer.id == dealer_id)))


async def list_dealers(session: AsyncSession) -> list[Dealer]:
    """Every dealer, by name, for the filter."""
    return list((await session.scalars(select(Dealer).order_by(Dealer.name))).all())
