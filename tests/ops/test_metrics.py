"""Prometheus /metrics: inbound and outbound counts and latencies, outbox and SLA gauges, errors."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.app import create_app
from bot.clock import FrozenClock
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow
from bot.outbox.sender import DeliveryResult, OutboxSender
from bot.runtime import Runtime
from bot.settings import Settings
from tests.escalation.conftest import customer_writes, drain, make_team
from tests.ops.conftest import metric, serve_app


def total(text: str, name: str) -> float:
    """Sum of a metric's samples over all label values."""
    return sum(
        s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name
    )


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return r.text


async def test_two_apps_in_one_process_both_expose_metrics(settings: Settings) -> None:
    a, b = create_app(settings), create_app(settings)
    async with serve_app(a) as url_a, serve_app(b) as url_b:
        for url in (url_a, url_b):
            text = await scrape(url)
            assert "butler_outbox_depth 0.0" in text
            assert "process_resident_memory_bytes" in text


async def test_inbound_messages_are_counted_at_commit_by_outcome(settings: Settings) -> None:
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        before = await scrape(url)
        r = await c.post("/api/v1/webchat/sessions", json={"locale": "en"})
        chat = {"X-Webchat-Session": r.json()["session_id"]}
        for text in ("Where is my car?", "Hello again"):
            assert (
                await c.post("/api/v1/webchat/messages", json={"text": text}, headers=chat)
            ).status_code == 201
        body = {"text": "once", "client_message_id": "c-1"}
        for _ in range(2):
            assert (await c.post("/api/v1/webchat/messages", json=body, headers=chat)).status_code == 201
        assert (await c.post("/api/v1/webchat/messages", json={"text": " "}, headers=chat)).status_code == 422
        after = await scrape(url)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("butler_inbound_messages_total", channel="webchat", outcome="stored") == 3
    assert delta("butler_inbound_messages_total", channel="webchat", outcome="duplicate") == 1
    assert delta("butler_inbound_latency_seconds_count", channel="webchat") == 3
    assert delta("butler_inbound_latency_seconds_sum", channel="webchat") > 0
    route = "/api/v1/webchat/messages"
    assert delta("butler_http_requests_total", method="POST", route=route, status="201") == 4
    assert delta("butler_http_requests_total", method="POST", route=route, status="422") == 1


class Scripted:
    """A deliverer: first answer 429 once, then succeed."""

    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        self.calls += 1
        if self.calls == 1:
            return DeliveryResult(ok=False, retry_after=3, error="429")
        return DeliveryResult(ok=True)


async def test_outbound_deliveries_and_outbox_gauges(settings: Settings, clock: FrozenClock) -> None:
    app = create_app(settings, clock=clock)
    rt: Runtime = app.state.rt
    async with serve_app(app) as url:
        before = await scrape(url)
        async with rt.transaction() as session:
            for i in range(3):
                outbox_service.enqueue(
                    session, channel="probe", lane=f"chat:{i}", payload={"text": "x"}, now=clock.now()
                )
        clock.advance(seconds=90)
        gauges = await scrape(url)
        assert metric(gauges, "butler_outbox_depth") == 3
        assert metric(gauges, "butler_outbox_rows", status="pending") == 3
        assert metric(gauges, "butler_outbox_oldest_age_seconds") == 90

        sender = OutboxSender(rt.maker, clock, {"probe": Scripted()})
        await sender.run_pass()  # one 429, two sent
        clock.advance(seconds=5)
        await sender.run_pass()  # the rate-limited one goes now
        after = await scrape(url)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("butler_outbound_messages_total", channel="probe", result="sent") == 3
    assert delta("butler_outbound_messages_total", channel="probe", result="rate_limited") == 1
    assert delta("butler_outbound_delivery_seconds_count", channel="probe") == 3
    # Enqueued at t0: two sent at t0+90 s, one at t0+95 s.
    assert delta("butler_outbound_delivery_seconds_sum", channel="probe") == 90 + 90 + 95
    assert metric(after, "butler_outbox_depth") == 0
    assert metric(after, "butler_outbox_oldest_age_seconds") == 0


async def test_sla_timers_due_fired_and_breaches(settings: Settings, clock: FrozenClock) -> None:
    app = create_app(settings, clock=clock)
    rt: Runtime = app.state.rt
    async with serve_app(app) as url:
        await make_team(rt)
        before = await scrape(url)
        await customer_writes(rt, "My engine light is on, please call", user="sla-1")
        clock.advance(timedelta(hours=30))
        due = await scrape(url)
        assert metric(due, "butler_sla_timers_due") >= 1
        assert metric(due, "butler_sla_oldest_due_age_seconds") > 0
        fired = await drain(rt)
        after = await scrape(url)
    assert fired > 0
    assert metric(after, "butler_sla_timers_due") == 0
    steps = total(after, "butler_sla_steps_fired_total") - total(before, "butler_sla_steps_fired_total")
    assert steps == fired
    breaches = metric(after, "butler_sla_breaches_total", metric="first_response") - metric(
        before, "butler_sla_breaches_total", metric="first_response"
    )
    assert breaches == 1


async def test_unhandled_errors_are_counted_answered_500_and_the_app_keeps_serving(
    settings: Settings,
) -> None:
    app: FastAPI = create_app(settings)

    @app.get("/boom/{item_id}")
    async def boom(item_id: int) -> None:
        raise RuntimeError("kaputt")

    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        before = await scrape(url)
        r = await c.get("/boom/7", headers={"X-Request-ID": "req-boom"})
        assert r.status_code == 500
        assert r.json() == {"error": "internal", "detail": "internal error", "request_id": "req-boom"}
        assert r.headers["x-request-id"] == "req-boom"
        assert (await c.get("/healthz")).status_code == 200
        after = await scrape(url)
    route = "/boom/{item_id}"
    assert (
        metric(after, "butler_http_unhandled_exceptions_total", route=route, exception="RuntimeError")
        - metric(before, "butler_http_unhandled_exceptions_total", route=route, exception="RuntimeError")
        == 1
    )
    assert metric(after, "butler_http_requests_total", route=route, status="500") >= 1


async def test_telegram_429_counter_is_exposed(settings: Settings) -> None:
    async with serve_app(create_app(settings)) as url:
        before = metric(await scrape(url), "butler_telegram_rate_limited_total")
        metrics.TELEGRAM_429.inc()
        assert metric(await scrape(url), "butler_telegram_rate_limited_total") == before + 1


async def test_database_gauges_degrade_when_the_database_is_away(settings: Settings) -> None:
    settings.database_url = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    app = create_app(settings)
    text = (await metrics.exposition(app.state.rt))[0].decode()
    assert "butler_metrics_database_up 0.0" in text
    assert "butler_outbox_depth" not in text
    await app.state.rt.engine.dispose()
