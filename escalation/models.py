"""SLA timers (one clock per case metric, with a ladder cursor) and SLA events (what happened)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, BigId

RUNNING, PAUSED, BREACHED, MET, STOPPED = "running", "paused", "breached", "met", "stopped"
# A clock is live in these states; at most one live clock per case and metric.
ACTIVE_STATES = (RUNNING, PAUSED, BREACHED)
_ACTIVE_SQL = "state IN ('running', 'paused', 'breached')"


class SlaTimer(Base):
    """One SLA clock of a case: its target in business time and a cursor over its ladder.

    The ladder (a snapshot of the policy's steps with their current wall-clock due times) lives in
    the row; `next_step` / `next_due_at` point at the next rung. A worker claims a row whose
    `next_due_at` has passed, runs that rung and advances the cursor in the same transaction, so a
    rung can only ever be taken once; `SlaEvent`'s unique (timer, step) key backs this up.
    """

    __tablename__ = "sla_timers"
    __table_args__ = (
        # The worker's only query path: due rows in due order. Idle clocks stay out of the index.
        Index(
            "ix_sla_timers_next_due_at",
            "next_due_at",
            postgresql_where=text("next_due_at IS NOT NULL"),
            sqlite_where=text("next_due_at IS NOT NULL"),
        ),
        Index(
            "uq_sla_timers_active",
            "case_id",
            "metric",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        # Dashboard tiles and the escalation queue: live clocks by state.
        Index(
            "ix_sla_timers_live_state",
            "state",
            "due_at",
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(16))
    # Which round of the metric: the reopen count for first response / resolution, a running
    # number for next response.
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    policy: Mapped[str] = mapped_column(String(64))
    calendar: Mapped[str] = mapped_column(String(64))
    target_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime]
    # When the target is reached given the pauses so far; NULL while paused.
    due_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    # Business seconds spent paused (closed pauses only) and the pauses themselves, as ISO pairs,
    # so a different calendar (recategorisation) can recount them.
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    pauses: Mapped[list[Any]] = mapped_column(default=list)
    # Snapshot of the policy's choice, so editing the YAML later does not change a running clock.
    pause_when_waiting: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(12), default=RUNNING)
    breached_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # [{"action", "at" (business seconds from start), "due" (ISO, or null while paused), "tell"}]
    ladder: Mapped[list[Any]] = mapped_column(default=list)
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None]
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("sla_timers.id", ondelete="SET NULL"))

    @property
    def active(self) -> bool:
        """Still counting (running, paused or breached)."""
        return self.state in ACTIVE_STATES


class SlaEvent(Base):
    """Something that happened to a case's SLA: the single source for the dashboard."""

    __tablename__ = "sla_events"
    __table_args__ = (
        # A ladder rung is recorded at most once per timer (NULL steps, i.e. non-ladder events, repeat).
        UniqueConstraint("timer_id", "step"),
        Index("ix_sla_events_kind_at", "kind", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    timer_id: Mapped[int | None] = mapped_column(ForeignKey("sla_timers.id", ondelete="CASCADE"))
    metric: Mapped[str | None] = mapped_column(String(16))
    # applied, warned, breached, met, paused, resumed, escalated, reassigned, stopped
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
    # The assignee at the time, and whoever the event was addressed to (lead, manager, new assignee).
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    target_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
