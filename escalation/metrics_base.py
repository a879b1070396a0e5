"""Building blocks of the dashboard metrics: the scope, dialect helpers, shared conditions and row sets.

Definitions are in escalation/metrics.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.types import Interval

from bot.clock import as_utc
from bot.conversations.enums import ACTIVE_STATUSES, AuthorKind, CaseStatus
from bot.conversations.models import Case, Message
from bot.teams.models import ButlerGroup, Staff
from escalation.models import ACTIVE_STATES, RUNNING, SlaEvent, SlaTimer

METRICS = ("first_response", "next_response", "resolution")
BOT_WINDOW = timedelta(hours=24)
RISK_FRACTION = 0.8
POSITIVE = 4
WAITING_STAFF = (CaseStatus.OPEN, CaseStatus.WAITING_STAFF)
# Feedback on a bot answer that says it did not settle the question.
UNHELPFUL = ("not_helpful", "person")
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")
MAX_DAYS = 366
# A select of any columns (SQLAlchemy 2.1 types Select by its column tuple).
AnySelect = Select[*tuple[Any, ...]]


def safe_timezone(name: str | None) -> str:
    """A known IANA zone name (it is inlined into SQL), else UTC."""
    if not name or not _TZ_NAME.match(name):
        return "UTC"
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):
        return "UTC"
    return name


@dataclass(frozen=True)
class Scope:
    """What the dashboard looks at: calendar days [first_day, last_day] in tz, a dealer or all, now."""

    first_day: date
    last_day: date
    now: datetime
    tz: str = "UTC"
    dealer_id: int | None = None
    risk_minutes: float = 2.0
    bot_window: timedelta = BOT_WINDOW

    @property
    def zone(self) -> ZoneInfo:
        """The timezone of the day boundaries."""
        return ZoneInfo(safe_timezone(self.tz))

    def day_start(self, day: date) -> datetime:
        """Local midnight of a day, in UTC."""
        return as_utc(datetime.combine(day, time(0), tzinfo=self.zone))

    @property
    def start(self) -> datetime:
        """Start of the period (inclusive), UTC."""
        return self.day_start(self.first_day)

    @property
    def end(self) -> datetime:
        """End of the period (exclusive), UTC."""
        return self.day_start(self.last_day + timedelta(days=1))

    @property
    def days(self) -> list[date]:
        """Every day of the period."""
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]

    @property
    def today(self) -> date:
        """The current local day."""
        return as_utc(self.now).astimezone(self.zone).date()

    def day_range(self, day: date | None) -> tuple[datetime, datetime]:
        """[start, end) of one day, or of the whole period without one."""
        if day is None:
            return self.start, self.end
        return self.day_start(day), self.day_start(day + timedelta(days=1))


def default_scope(now: datetime, *, tz: str, days: int = 14, dealer_id: int | None = None) -> Scope:
    """The last `days` days up to today."""
    zone = ZoneInfo(safe_timezone(tz))
    today = as_utc(now).astimezone(zone).date()
    return Scope(today - timedelta(days=days - 1), today, now, safe_timezone(tz), dealer_id)


class Sql:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.scope = scope
        tz = safe_timezone(scope.tz)
        self._tz_sql: ColumnElement[Any] = literal_column(f"'{tz}'")
        offset = scope.zone.utcoffset(datetime.combine(scope.first_day, time(12))) or timedelta(0)
        self._offset_sql: ColumnElement[Any] = literal_column(
            f"'{int(offset.total_seconds() // 60):+d} minutes'"
        )

    def day(self, col: Any) -> ColumnElement[Any]:
        """The local day of a timestamp: a date on PostgreSQL, 'YYYY-MM-DD' on SQLite."""
        if self.pg:
            return cast(func.timezone(self._tz_sql, col), Date)
        return func.strftime(literal_column("'%Y-%m-%d'"), col, self._offset_sql)

    def epoch(self, col: Any) -> ColumnElement[float]:
        """Seconds since 1970 of a timestamp."""
        if self.pg:
            return func.extract("epoch", col)  # type: ignore[return-value]
        return (func.julianday(col) - 2440587.5) * 86400.0

    def seconds_between(self, start: Any, end: Any) -> ColumnElement[float]:
        """end - start in seconds (to the millisecond on SQLite, whose julian days are doubles)."""
        if self.pg:
            return self.epoch(end) - self.epoch(start)
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)

    def plus(self, col: Any, delta: timedelta) -> ColumnElement[Any]:
        """A timestamp moved by a fixed duration."""
        if self.pg:
            return col + literal(delta, Interval())
        return func.strftime(
            literal_column("'%Y-%m-%d %H:%M:%f'"),
            col,
            literal_column(f"'+{int(delta.total_seconds())} seconds'"),
        )

    def greatest(self, a: Any, b: Any) -> ColumnElement[float]:
        """The larger of two numbers."""
        return func.greatest(a, b) if self.pg else func.max(a, b)


_PLAIN_PLANS = text(
    "SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"
)


async def no_jit(session: AsyncSession) -> None:
    """Plain plans for the dashboard's short aggregates (PostgreSQL, this transaction only).

    JIT compiles them for ~100 ms each and saves nothing at these sizes; parallel workers cost
    more to start than the few thousand rows of a live day take to read.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_PLAIN_PLANS)


def _dealer_groups(dealer_id: int) -> Select[int]:
    return select(ButlerGroup.id).where(ButlerGroup.dealer_id == dealer_id)


def in_dealer_group(scope: Scope, group_col: Any, *, few: bool = False) -> ColumnElement[bool]:
    """Rows of a butler group of the scope's dealer (always true for all dealers).

    `few`: the rows are few (open cases, today's answers): look each group up by its key instead of
    hashing all of the dealer's groups (thousands) first.
    """
    if scope.dealer_id is None:
        return literal(True)
    if few:
        g = aliased(ButlerGroup, name="dealer_group")
        return select(g.dealer_id).where(g.id == group_col).scalar_subquery() == scope.dealer_id
    return group_col.in_(_dealer_groups(scope.dealer_id))


def in_dealer_case(scope: Scope, case_col: Any) -> ColumnElement[bool]:
    """Rows of a case of the scope's dealer (always true for all dealers)."""
    if scope.dealer_id is None:
        return literal(True)
    return case_col.in_(select(Case.id).where(Case.group_id.in_(_dealer_groups(scope.dealer_id))))


def parse_day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def percentile(values: Sequence[float], p: float) -> float | None:
    """Continuous percentile with linear interpolation (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def ratio(part: float, whole: float) -> float | None:
    """part / whole, None when there is nothing to divide."""
    return None if not whole else part / whole


# --- conditions shared by tiles, series and drill-down ---------------------------------------------


def at_risk_condition(sql: Sql, scope: Scope) -> ColumnElement[bool]:
    """A running clock due within max(N minutes, 20 % of its target) from now."""
    left = sql.epoch(SlaTimer.due_at) - as_utc(scope.now).timestamp()
    margin = sql.greatest(scope.risk_minutes * 60.0, (1 - RISK_FRACTION) * SlaTimer.target_seconds)
    return and_(SlaTimer.state == RUNNING, SlaTimer.due_at.is_not(None), left <= margin)


def active_case_timers(scope: Scope, condition: ColumnElement[bool]) -> AnySelect:
    return (
        select(SlaTimer.case_id)
        .join(Case, Case.id == SlaTimer.case_id)
        .where(condition, Case.status.in_(ACTIVE_STATUSES), in_dealer_group(scope, Case.group_id, few=True))
    )


def escalation_condition() -> ColumnElement[bool]:
    """A live clock that breached (also paused since) or was escalated."""
    escalated = exists().where(SlaEvent.timer_id == SlaTimer.id, SlaEvent.kind == "escalated")
    return and_(SlaTimer.state.in_(ACTIVE_STATES), or_(SlaTimer.breached_at.is_not(None), escalated))


def bot_answers(sql: Sql, scope: Scope, start: datetime, end: datetime, *, few: bool = False) -> AnySelect:
    """Bot answers in [start, end) with a `resolved` flag (see escalation/metrics.py)."""
    m = aliased(Message, name="bot_msg")
    c = aliased(Case, name="later_case")
    s = aliased(Message, name="staff_msg")
    window_end = sql.plus(m.created_at, scope.bot_window)
    case_followed = exists().where(
        c.group_id == m.group_id, c.opened_at >= m.created_at, c.opened_at < window_end
    )
    staff_followed = exists().where(
        s.group_id == m.group_id,
        s.author_kind == AuthorKind.STAFF,
        s.internal.is_(False),
        s.created_at >= m.created_at,
        s.created_at < window_end,
    )
    feedback = m.meta["feedback"].as_string()
    unhelpful = and_(feedback.is_not(None), feedback.in_(UNHELPFUL))
    resolved = ~or_(case_followed, staff_followed, unhelpful)
    return select(m.id, m.group_id, m.created_at, m.meta, resolved.label("resolved")).where(
        m.author_kind == AuthorKind.BOT,
        m.created_at >= start,
        m.created_at < end,
        in_dealer_group(scope, m.group_id, few=few),
    )


def applied_rounds(sql: Sql, scope: Scope, start: datetime, end: datetime) -> AnySelect:
    """One row per clock round applied in [start, end): day, case, metric, assignee role, missed.

    A round is (case, metric, start of the clock): a clock re-applied after recategorisation keeps
    the start of the one it replaces, so a breach on either clock marks the round missed. The first
    `applied` event of a round happens at the clock's start; re-applications (`data.replaces`) are
    skipped. Missed rounds come from one uncorrelated set (hashed on PostgreSQL), not a probe per row.
    """
    a = aliased(SlaEvent, name="applied")
    b = aliased(SlaEvent, name="breach")
    tb = aliased(SlaTimer, name="breach_timer")
    breached_rounds = (
        select(tb.case_id, tb.metric, tb.started_at)
        .join(b, b.timer_id == tb.id)
        .where(b.kind == "breached", b.at >= start, tb.started_at >= start, tb.started_at < end)
    )
    missed = tuple_(a.case_id, a.metric, a.at).in_(breached_rounds)
    return (
        select(
            sql.day(a.at).label("day"),
            a.case_id.label("case_id"),
            a.metric.label("metric"),
            func.coalesce(Staff.role, "unassigned").label("role"),
            case((missed, 1), else_=0).label("missed"),
        )
        .select_from(a)
        .outerjoin(Staff, Staff.id == a.staff_id)
        .where(
            a.kind == "applied",
            a.at >= start,
            a.at < end,
            a.data["replaces"].as_string().is_(None),
            in_dealer_case(scope, a.case_id),
        )
    )


def first_responses(sql: Sql, scope: Scope, start: datetime, end: datetime) -> AnySelect:
    """First-response clocks met in [start, end): day, case, wall and business seconds."""
    # The clock's start is looked up per event by its key: a join makes PostgreSQL hash all the
    # clocks (a sequential scan of every timer ever, 60 ms at 230,000) for a few thousand events.
    started = select(SlaTimer.started_at).where(SlaTimer.id == SlaEvent.timer_id).scalar_subquery()
    return select(
        sql.day(SlaEvent.at).label("day"),
        SlaEvent.case_id.label("case_id"),
        sql.seconds_between(started, SlaEvent.at).label("wall"),
        SlaEvent.data["elapsed"].as_float().label("business"),
    ).where(
        SlaEvent.timer_id.is_not(None),
        SlaEvent.kind == "met",
        SlaEvent.metric == "first_response",
        SlaEvent.at >= start,
        SlaEvent.at < end,
        in_dealer_case(scope, SlaEvent.case_id),
    )
