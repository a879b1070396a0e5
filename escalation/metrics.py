"""SLA and service metrics for the manager dashboard: live tiles, daily series, escalation queue, team load.

Definitions (the dashboard's help panel says the same in en and zh-CN):

- Days are calendar days in the scope's timezone (the dealer's; UTC without one). On SQLite the UTC
  offset at the start of the range is used for the whole range (exact for zones without DST).
- Open cases: status open, waiting_staff or waiting_customer. Waiting on staff: open or waiting_staff.
- At risk: cases with a clock in state running whose due time is within max(N minutes, 20 % of the
  target) from now, i.e. past 80 % of the target on a 24x7 calendar, or due within N minutes
  (N = `risk_minutes`, 2 by default); running clocks already past due but not yet marked breached by
  the worker count too. Breached now: open cases with a clock in state breached.
- SLA hit rate = (applied - missed) / applied. Applied: `applied` SLA events in the period (the day
  of the event), one per clock round; re-applications after a recategorisation (`data.replaces`) are
  not counted again. Missed: an applied round (case, metric, cycle) with a `breached` event on any of
  its clocks. Clocks still running count as not missed yet. By role: the role of the assignee the
  clock was applied for (`staff_id` of the applied event), `unassigned` without one.
- First-response time: per `met` event of a first-response clock (the first public staff reply of a
  case round), wall seconds from the clock's start to the event, and business seconds (the event's
  `data.elapsed`: the policy calendar's business time, pauses excluded); p50 / p90 are the
  continuous percentiles (PostgreSQL `percentile_cont`, the same interpolation in Python on SQLite),
  bucketed by the day of the reply.
- Backlog at the end of a day: cases opened before the day's end and not resolved by then
  (= open now - opened since + resolved since; a case reopened later counts from its last
  resolution, since a reopen clears `resolved_at`).
- Breaches by specialist: `breached` events in the period by the assignee at breach time.
- CSAT: cases asked for a rating (`csat_asked_at`) in the period; CSAT = positive (4-5) / responses
  (rated), response rate = responses / asked.
- Bot-resolved: a bot answer (message author `bot`; bot answers never belong to a case) such that in
  the same butler group, within W (24 h) after it, no case was opened and no public staff message
  was written, and the customer did not press "not helpful" or "talk to a person" on it. Answers
  younger than W count as resolved so far. Bot-resolved rate = bot-resolved / (bot-resolved + cases
  opened), by the day of the answer and of the opening: every customer request ends either answered
  by the bot alone or as a case.

The charts' per-day facts can come from a per-process FactsCache: days before yesterday for 5 minutes,
yesterday and today for 30 seconds (the defaults). The tiles, the escalation queue and the team
table are always computed live.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from time import monotonic
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.teams.models import Staff
from escalation.metrics_base import (
    BOT_WINDOW,
    MAX_DAYS,
    METRICS,
    POSITIVE,
    Scope,
    Sql,
    applied_rounds,
    bot_answers,
    count_if,
    default_scope,
    first_responses,
    in_dealer_case,
    in_dealer_group,
    no_jit,
    parse_day,
    percentile,
    ratio,
    safe_timezone,
)
from escalation.metrics_team import (
    QueueItem,
    StaffLoad,
    escalation_queue,
    team_load,
    team_rows,
    team_table,
)
from escalation.metrics_tiles import Tiles, dealer_timezone, list_dealers, tiles
from escalation.models import SlaEvent

__all__ = [
    "BOT_WINDOW",
    "MAX_DAYS",
    "METRICS",
    "Dashboard",
    "DayFacts",
    "DayPoint",
    "FactsCache",
    "Scope",
    "Series",
    "Tiles",
    "dashboard",
    "dealer_timezone",
    "default_scope",
    "escalation_queue",
    "list_dealers",
    "percentile",
    "safe_timezone",
    "series",
    "team_load",
    "tiles",
]


# --- daily series: per-day facts, cached for settled days ------------------------------------------


@dataclass
class DayFacts:
    """What one day contributes to the charts; days before yesterday are cached for a while."""

    applied: dict[tuple[str, str], int] = field(default_factory=dict)  # (metric, role) -> rounds
    missed: dict[tuple[str, str], int] = field(default_factory=dict)
    frt_count: int = 0
    frt: tuple[float | None, float | None, float | None, float | None] = (None, None, None, None)
    opened: int = 0
    resolved: int = 0
    csat_asked: int = 0
    csat_responses: int = 0
    csat_positive: int = 0
    bot_answers: int = 0
    bot_resolved: int = 0
    breaches: dict[int | None, int] = field(default_factory=dict)  # assignee at breach -> breaches


class FactsCache:
    """Per-process cache of days' facts: settled days (before yesterday) for `ttl` seconds, yesterday
    and today for `recent_ttl` seconds.

    The tiles never come from here. Recent days move all the time (bot answers settle 24 h after the
    fact, replies and breaches keep coming), so they are kept briefly; older days can still move a
    little (a late rating, a reopen, a long paused clock breaching) and catch up when they expire.
    """

    def __init__(self, ttl: float = 300.0, recent_ttl: float = 30.0, max_entries: int = 5000) -> None:
        self.ttl, self.recent_ttl, self.max_entries = ttl, recent_ttl, max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, DayFacts]] = {}

    def get(self, key: tuple[Any, ...]) -> DayFacts | None:
        """A fresh entry or None."""
        hit = self._entries.get(key)
        if hit is None or hit[0] < monotonic():
            return None
        return hit[1]

    def put(self, key: tuple[Any, ...], facts: DayFacts, *, recent: bool = False) -> None:
        """Store an entry; the oldest go first when full."""
        ttl = self.recent_ttl if recent else self.ttl
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            for old in sorted(self._entries, key=lambda k: self._entries[k][0])[: self.max_entries // 10 + 1]:
                del self._entries[old]
        self._entries[key] = (monotonic() + ttl, facts)


def _key(scope: Scope, day: date) -> tuple[Any, ...]:
    return (scope.dealer_id, safe_timezone(scope.tz), scope.bot_window.total_seconds(), day)


async def day_facts(session: AsyncSession, *, scope: Scope, first: date, last: date) -> dict[date, DayFacts]:
    """Facts of the days [first, last] (local days of the scope), computed in SQL, one query per kind."""
    sql = Sql(session, scope)
    facts = {first + timedelta(days=i): DayFacts() for i in range((last - first).days + 1)}
    start, end = scope.day_start(first), scope.day_start(last + timedelta(days=1))

    def at(day: Any) -> DayFacts | None:
        return facts.get(parse_day(day))

    rounds = applied_rounds(sql, scope, start, end).subquery()
    rows = await session.execute(
        select(
            rounds.c.day, rounds.c.metric, rounds.c.role, func.count(), func.sum(rounds.c.missed)
        ).group_by(rounds.c.day, rounds.c.metric, rounds.c.role)
    )
    for day, metric, role, applied, missed in rows:
        if (f := at(day)) is not None:
            f.applied[(metric, role)] = int(applied)
            f.missed[(metric, role)] = int(missed or 0)
    await _first_response_facts(session, sql, scope, start, end, at)
    in_dealer = in_dealer_group(scope, Case.group_id)
    for column, attr in ((Case.opened_at, "opened"), (Case.resolved_at, "resolved")):
        day_col = sql.day(column).label("day")
        rows = await session.execute(
            select(day_col, func.count())
            .where(column >= start, column < end, in_dealer)
            .group_by(literal_column("day"))
        )
        for day, count in rows:
            if (f := at(day)) is not None:
                setattr(f, attr, int(count))
    day_col = sql.day(Case.csat_asked_at).label("day")
    rows = await session.execute(
        select(day_col, func.count(), func.count(Case.csat_score), count_if(Case.csat_score >= POSITIVE))
        .where(Case.csat_asked_at >= start, Case.csat_asked_at < end, in_dealer)
        .group_by(literal_column("day"))
    )
    for day, asked, responses, positive in rows:
        if (f := at(day)) is not None:
            f.csat_asked, f.csat_responses, f.csat_positive = int(asked), int(responses), int(positive)
    answers = bot_answers(sql, scope, start, end).subquery()
    rows = await session.execute(
        select(
            sql.day(answers.c.created_at).label("day"), func.count(), count_if(answers.c.resolved)
        ).group_by(literal_column("day"))
    )
    for day, total, resolved in rows:
        if (f := at(day)) is not None:
            f.bot_answers, f.bot_resolved = int(total), int(resolved)
    day_col = sql.day(SlaEvent.at).label("day")
    rows = await session.execute(
        select(day_col, SlaEvent.staff_id, func.count())
        .where(
            SlaEvent.kind == "breached",
            SlaEvent.at >= start,
            SlaEvent.at < end,
            in_dealer_case(scope, SlaEvent.case_id),
        )
        .group_by(literal_column("day"), SlaEvent.staff_id)
    )
    for day, staff_id, count in rows:
        if (f := at(day)) is not None:
            f.breaches[staff_id] = int(count)
    return facts


async def _first_response_facts(
    session: AsyncSession,
    sql: Sql,
    scope: Scope,
    start: datetime,
    end: datetime,
    at: Callable[[Any], DayFacts | None],
) -> None:
    if sql.pg:
        # Materialised: otherwise each percentile re-evaluates the per-row lookup of the clock.
        frt = first_responses(sql, scope, start, end).cte("frt").prefix_with("MATERIALIZED")
        rows = await session.execute(
            select(
                frt.c.day,
                func.count(),
                func.percentile_cont(0.5).within_group(frt.c.wall),
                func.percentile_cont(0.9).within_group(frt.c.wall),
                func.percentile_cont(0.5).within_group(frt.c.business),
                func.percentile_cont(0.9).within_group(frt.c.business),
            ).group_by(frt.c.day)
        )
        for day, count, p50, p90, b50, b90 in rows:
            if (f := at(day)) is not None:
                f.frt_count, f.frt = int(count), (_num(p50), _num(p90), _num(b50), _num(b90))
        return
    plain = first_responses(sql, scope, start, end).subquery()
    walls: dict[str, list[float]] = defaultdict(list)
    business: dict[str, list[float]] = defaultdict(list)
    for day, _case, wall, biz in await session.execute(select(plain)):
        walls[day].append(float(wall))
        if biz is not None:
            business[day].append(float(biz))
    for day, values in walls.items():
        if (f := at(day)) is not None:
            f.frt_count = len(values)
            b = business[day]
            f.frt = (percentile(values, 0.5), percentile(values, 0.9), percentile(b, 0.5), percentile(b, 0.9))


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


async def facts_for(
    session: AsyncSession, *, scope: Scope, cache: FactsCache | None = None
) -> dict[date, DayFacts]:
    """Facts of every day of the scope: from the cache where fresh, the rest from SQL."""
    days = scope.days
    recent_from = scope.today - timedelta(days=1)  # yesterday and today: the short TTL
    out: dict[date, DayFacts] = {}
    if cache is not None:
        for d in days:
            if (hit := cache.get(_key(scope, d))) is not None:
                out[d] = hit
    missing = [d for d in days if d not in out]
    if missing:
        fresh = await day_facts(session, scope=scope, first=missing[0], last=missing[-1])
        for d in missing:
            out[d] = fresh[d]
            if cache is not None and d <= scope.today:
                cache.put(_key(scope, d), fresh[d], recent=d >= recent_from)
    return out


@dataclass
class DayPoint:
    """Everything the charts show for one day (None where there is nothing to show)."""

    day: date
    applied: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    frt_count: int = 0
    frt_p50: float | None = None
    frt_p90: float | None = None
    frt_business_p50: float | None = None
    frt_business_p90: float | None = None
    backlog: int | None = None
    opened: int = 0
    resolved: int = 0
    csat_asked: int = 0
    csat_responses: int = 0
    csat_positive: int = 0
    bot_answers: int = 0
    bot_resolved: int = 0

    def hit_rate(self, metric: str | None = None) -> float | None:
        """(applied - missed) / applied for one metric or all."""
        keys = [metric] if metric else list(self.applied)
        applied = sum(self.applied.get(k, 0) for k in keys)
        missed = sum(self.missed.get(k, 0) for k in keys)
        return ratio(applied - missed, applied)

    @property
    def csat(self) -> float | None:
        """Positive / responses."""
        return ratio(self.csat_positive, self.csat_responses)

    @property
    def response_rate(self) -> float | None:
        """Responses / asked."""
        return ratio(self.csat_responses, self.csat_asked)

    @property
    def bot_rate(self) -> float | None:
        """Bot-resolved / (bot-resolved + cases opened)."""
        return ratio(self.bot_resolved, self.bot_resolved + self.opened)


@dataclass(frozen=True)
class RoleRate:
    """SLA attainment of one role over the period."""

    role: str
    applied: int
    missed: int

    @property
    def hit_rate(self) -> float | None:
        """(applied - missed) / applied."""
        return ratio(self.applied - self.missed, self.applied)


@dataclass(frozen=True)
class StaffBreaches:
    """Breaches recorded against one assignee (staff_id None: unassigned)."""

    staff_id: int | None
    name: str
    role: str
    breaches: int


@dataclass
class Series:
    """The charts' data, and breaches per assignee over the period (for the team table too)."""

    days: list[DayPoint]
    roles: list[RoleRate]
    breaches: list[StaffBreaches]
    breaches_by_staff: dict[int | None, int] = field(default_factory=dict)


async def series(
    session: AsyncSession,
    *,
    scope: Scope,
    cache: FactsCache | None = None,
    open_now: int | None = None,
    facts: dict[date, DayFacts] | None = None,
) -> Series:
    """Daily SLA hit rate, first-response p50/p90, backlog, CSAT, bot-resolved; rates by role.

    `open_now` (the open-cases tile) and `facts` (from facts_for) save queries when already known.
    """
    if facts is None:
        facts = await facts_for(session, scope=scope, cache=cache)
    points: list[DayPoint] = []
    roles: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    breaches: dict[int | None, int] = defaultdict(int)
    for d in scope.days:
        f = facts[d]
        point = DayPoint(d, opened=f.opened, resolved=f.resolved, frt_count=f.frt_count)
        point.frt_p50, point.frt_p90, point.frt_business_p50, point.frt_business_p90 = f.frt
        point.csat_asked, point.csat_responses, point.csat_positive = (
            f.csat_asked,
            f.csat_responses,
            f.csat_positive,
        )
        point.bot_answers, point.bot_resolved = f.bot_answers, f.bot_resolved
        for (metric, role), n in f.applied.items():
            point.applied[metric] = point.applied.get(metric, 0) + n
            missed = f.missed.get((metric, role), 0)
            point.missed[metric] = point.missed.get(metric, 0) + missed
            roles[role][0] += n
            roles[role][1] += missed
        for staff_id, n in f.breaches.items():
            breaches[staff_id] += n
        points.append(point)
    await _backlog(session, scope, points, open_now)
    return Series(
        days=points,
        roles=[RoleRate(role, a, m) for role, (a, m) in sorted(roles.items())],
        breaches=await _named_breaches(session, breaches),
        breaches_by_staff=dict(breaches),
    )


async def _backlog(session: AsyncSession, scope: Scope, points: list[DayPoint], open_now: int | None) -> None:
    """Backlog at each day's end = open now - opened after it + resolved after it (days up to today)."""
    in_dealer = in_dealer_group(scope, Case.group_id)
    if open_now is None:
        open_now = int(
            await session.scalar(select(func.count()).where(Case.status.in_(ACTIVE_STATUSES), in_dealer)) or 0
        )
    backlog = open_now
    if scope.end <= scope.now:  # the period ended before today: count what happened since
        opened_after = await session.scalar(
            select(func.count()).where(Case.opened_at >= scope.end, in_dealer)
        )
        resolved_after = await session.scalar(
            select(func.count()).where(Case.resolved_at >= scope.end, in_dealer)
        )
        backlog += int(resolved_after or 0) - int(opened_after or 0)
    today = scope.today
    for point in reversed(points):
        point.backlog = backlog if point.day <= today else None
        backlog += point.resolved - point.opened


async def _named_breaches(
    session: AsyncSession, breaches: dict[int | None, int], limit: int = 20
) -> list[StaffBreaches]:
    top = sorted(breaches.items(), key=lambda kv: (-kv[1], kv[0] or 0))[:limit]
    ids = [sid for sid, _ in top if sid is not None]
    names: dict[int, tuple[str, str]] = {}
    if ids:
        rows = await session.execute(
            select(Staff.id, Staff.display_name, Staff.role).where(Staff.id.in_(ids))
        )
        names = {sid: (name, role) for sid, name, role in rows}
    return [
        StaffBreaches(
            sid, *(names.get(sid, ("—", "unassigned")) if sid is not None else ("—", "unassigned")), n
        )
        for sid, n in top
    ]


@dataclass
class Dashboard:
    """Everything the page shows."""

    scope: Scope
    tiles: Tiles
    series: Series
    queue: list[QueueItem]
    team: list[StaffLoad]


async def dashboard(
    session: AsyncSession,
    *,
    scope: Scope,
    cache: FactsCache | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> Dashboard:
    """Tiles, series, escalation queue and team load for a scope.

    With `maker`, the four independent parts run at once, each on a connection of its own (read
    only); their database waits overlap. Without it they run one after the other on `session`.
    """
    await no_jit(session)
    if maker is None:
        now_tiles = await tiles(session, scope=scope)
        facts = await facts_for(session, scope=scope, cache=cache)
        queue = await escalation_queue(session, scope=scope)
        staff_rows = await team_rows(session, scope)
    else:
        own = maker

        async def tiles_part() -> Tiles:
            async with own() as s:
                await no_jit(s)
                return await tiles(s, scope=scope)

        async def facts_part() -> dict[date, DayFacts]:
            async with own() as s:
                await no_jit(s)
                return await facts_for(s, scope=scope, cache=cache)

        async def queue_part() -> list[QueueItem]:
            async with own() as s:
                return await escalation_queue(s, scope=scope)

        now_tiles, facts, queue, staff_rows = await asyncio.gather(
            tiles_part(), facts_part(), queue_part(), team_rows(session, scope)
        )
    charts = await series(session, scope=scope, open_now=now_tiles.open_cases, facts=facts)
    return Dashboard(
        scope=scope,
        tiles=now_tiles,
        series=charts,
        queue=queue,
        team=team_table(staff_rows, charts.breaches_by_staff),
    )
