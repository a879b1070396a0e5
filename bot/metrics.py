"""Prometheus metrics: the metric objects others increment, and the /metrics exposition.

The objects below are created unregistered (`registry=None`), so importing this module registers
nothing and any number of apps can live in one process. Each scrape builds a fresh
CollectorRegistry: in one process it holds these objects; under `butler web --workers N`
(PROMETHEUS_MULTIPROC_DIR set before the worker processes start) a MultiProcessCollector sums the
per-process files instead. Gauges that describe the database (outbox depth, due SLA timers) are
computed on scrape with a few indexed queries and are the same whichever process answers.

Increment freely from anywhere, e.g. the Telegram deliverer:
    from bot.metrics import TELEGRAM_429
    TELEGRAM_429.inc()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import as_utc
from bot.context import RECEIVED_AT

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

INBOUND_MESSAGES = Counter(
    "butler_inbound_messages",
    "Customer messages received, by channel and outcome (stored, duplicate), counted at commit",
    ["channel", "outcome"],
    registry=None,
)
INBOUND_LATENCY = Histogram(
    "butler_inbound_latency_seconds",
    "From receipt (request arrival) to the commit that stored the customer message",
    ["channel"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
OUTBOUND_MESSAGES = Counter(
    "butler_outbound_messages",
    "Outbox delivery attempts by channel and result (sent, failed, rate_limited)",
    ["channel", "result"],
    registry=None,
)
OUTBOUND_LATENCY = Histogram(
    "butler_outbound_delivery_seconds",
    "From enqueue (outbox row created) to sent, per channel",
    ["channel"],
    buckets=DELIVERY_BUCKETS,
    registry=None,
)
SLA_STEPS = Counter(
    "butler_sla_steps_fired",
    "SLA ladder rungs fired (committed), by metric, action and outcome kind",
    ["metric", "action", "kind"],
    registry=None,
)
SLA_BREACHES = Counter(
    "butler_sla_breaches", "SLA targets breached (committed), by metric", ["metric"], registry=None
)
TELEGRAM_429 = Counter(
    "butler_telegram_rate_limited", "429 Too Many Requests answers from the Telegram Bot API", registry=None
)
HTTP_REQUESTS = Counter(
    "butler_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "butler_http_request_duration_seconds",
    "HTTP request duration by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
HTTP_ERRORS = Counter(
    "butler_http_unhandled_exceptions",
    "Unhandled exceptions (answered 500) by route template and exception type",
    ["route", "exception"],
    registry=None,
)
EVENT_LOOP_LAG = Histogram(
    "butler_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 50 ms (a held loop delays every request at once)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
    registry=None,
)
GC_PAUSE = Histogram(
    "butler_gc_pause_seconds",
    "Garbage collections and how long each held the process, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    registry=None,
)
ALL: tuple[Collector, ...] = (
    INBOUND_MESSAGES,
    INBOUND_LATENCY,
    OUTBOUND_MESSAGES,
    OUTBOUND_LATENCY,
    SLA_STEPS,
    SLA_BREACHES,
    TELEGRAM_429,
    HTTP_REQUESTS,
    HTTP_LATENCY,
    HTTP_ERRORS,
    EVENT_LOOP_LAG,
    GC_PAUSE,
)
_AFTER_COMMIT = "metrics_after_commit"


def multiprocess_mode() -> bool:
    """Whether values live in PROMETHEUS_MULTIPROC_DIR files (decided when prometheus_client loaded)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


# Counting at commit: flows note what happened on the session; Runtime.transaction calls
# run_after_commit once the commit succeeded, so a rolled-back unit of work counts nothing.


def after_commit(session: AsyncSession, fn: Callable[[], None]) -> None:
    """Run fn once the session's transaction has committed (through Runtime.transaction)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


def run_after_commit(session: AsyncSession) -> None:
    """Run and forget what after_commit queued; a failing metric never fails the caller."""
    for fn in session.info.pop(_AFTER_COMMIT, []):
        try:
            fn()
        except Exception:
            log.exception("metric update failed")


def discard_after_commit(session: AsyncSession) -> None:
    """Forget queued metric updates (the transaction rolled back)."""
    session.info.pop(_AFTER_COMMIT, None)


def note_inbound(session: AsyncSession, *, channel: str, duplicate: bool) -> None:
    """Count a customer message at commit, with its latency from the request's arrival."""
    started = RECEIVED_AT.get() or time.perf_counter()

    def observe() -> None:
        INBOUND_MESSAGES.labels(channel, "duplicate" if duplicate else "stored").inc()
        if not duplicate:
            INBOUND_LATENCY.labels(channel).observe(time.perf_counter() - started)

    after_commit(session, observe)


def note_sla_step(session: AsyncSession, *, metric: str, action: str, kind: str) -> None:
    """Count an SLA rung (and a breach) at commit."""

    def observe() -> None:
        SLA_STEPS.labels(metric, action, kind).inc()
        if kind == "breached":
            SLA_BREACHES.labels(metric).inc()

    after_commit(session, observe)


def observe_delivery(channel: str, result: str, *, created_at: datetime | None, now: datetime) -> None:
    """Count one outbox delivery attempt; a sent row also records enqueue-to-sent latency."""
    OUTBOUND_MESSAGES.labels(channel, result).inc()
    if result == "sent" and created_at is not None:
        OUTBOUND_LATENCY.labels(channel).observe(max(0.0, (now - as_utc(created_at)).total_seconds()))


# Gauges computed on scrape.


@dataclass
class Snapshot:
    """Database-derived gauges, read at scrape time."""

    ok: bool = True
    outbox: dict[str, int] = field(default_factory=dict)
    outbox_oldest: datetime | None = None
    sla_due: int = 0
    sla_oldest_due: datetime | None = None


async def read_snapshot(rt: Runtime, *, limit_seconds: float = 3.0) -> Snapshot:
    """Outbox rows by status, oldest undelivered row, due SLA rungs; ok=False if the DB is away."""
    from bot.outbox import service as outbox_service
    from bot.outbox.models import OutboxRow
    from escalation.models import ACTIVE_STATES, SlaTimer

    now = rt.clock.now()

    async def read() -> Snapshot:
        snap = Snapshot(outbox={s: 0 for s in (outbox_service.PENDING, outbox_service.SENDING, "dead")})
        async with rt.maker() as session:
            rows = await session.execute(
                select(OutboxRow.status, func.count(), func.min(OutboxRow.created_at))
                .where(OutboxRow.status.in_(list(snap.outbox)))
                .group_by(OutboxRow.status)
            )
            for status, count, oldest in rows:
                snap.outbox[status] = int(count)
                if status != "dead" and oldest is not None:
                    oldest = as_utc(oldest)
                    snap.outbox_oldest = min(snap.outbox_oldest or oldest, oldest)
            due = (
                await session.execute(
                    select(func.count(), func.min(SlaTimer.next_due_at)).where(
                        SlaTimer.next_due_at <= now, SlaTimer.state.in_(ACTIVE_STATES)
                    )
                )
            ).one()
            snap.sla_due = int(due[0] or 0)
            snap.sla_oldest_due = as_utc(due[1]) if due[1] is not None else None
        return snap

    try:
        return await asyncio.wait_for(read(), limit_seconds)
    except Exception as exc:
        log.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
        return Snapshot(ok=False)


class SnapshotCollector(Collector):
    """Exposes one Snapshot."""

    def __init__(self, snap: Snapshot, now: datetime) -> None:
        self.snap, self.now = snap, now

    def collect(self) -> Iterable[Metric]:
        """The gauges."""
        snap = self.snap
        yield GaugeMetricFamily(
            "butler_metrics_database_up", "1 if the database gauges below could be read", value=int(snap.ok)
        )
        if not snap.ok:
            return
        rows = GaugeMetricFamily("butler_outbox_rows", "Outbox rows by status (not sent)", labels=["status"])
        for status, count in sorted(snap.outbox.items()):
            rows.add_metric([status], count)
        yield rows
        yield GaugeMetricFamily(
            "butler_outbox_depth",
            "Outbox rows waiting for delivery (pending + sending)",
            value=snap.outbox.get("pending", 0) + snap.outbox.get("sending", 0),
        )
        yield GaugeMetricFamily(
            "butler_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row (0 when empty)",
            value=_age(snap.outbox_oldest, self.now),
        )
        yield GaugeMetricFamily(
            "butler_sla_timers_due", "SLA timers whose next rung is due and not yet fired", value=snap.sla_due
        )
        yield GaugeMetricFamily(
            "butler_sla_oldest_due_age_seconds",
            "How late the most overdue unfired SLA rung is (escalation worker lag; 0 when none)",
            value=_age(snap.sla_oldest_due, self.now),
        )


def _age(at: datetime | None, now: datetime) -> float:
    return 0.0 if at is None else max(0.0, (now - at).total_seconds())


async def exposition(rt: Runtime) -> tuple[bytes, str]:
    """The /metrics body and content type for this process (or all web processes in multiprocess mode)."""
    snap = await read_snapshot(rt)
    registry = CollectorRegistry()
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in ALL:
            registry.register(metric)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    registry.register(SnapshotCollector(snap, rt.clock.now()))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Tidy this process's live-gauge files on exit (multiprocess mode only)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
