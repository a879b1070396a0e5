"""Policies: the shipped defaults, first-match order, dealer matching, validation, recategorisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.clock import FrozenClock
from bot.conversations.staff_flows import staff_reply
from bot.errors import InvalidInput
from bot.runtime import Runtime
from escalation.flows import recategorise_case
from escalation.models import STOPPED
from escalation.policies import load_policies, parse_duration, parse_policies
from tests.escalation.conftest import (
    Team,
    customer_writes,
    drain,
    events,
    kinds,
    live_timer,
    system_texts,
    timers,
)

DEFAULTS = load_policies()


@pytest.mark.parametrize(
    ("category", "priority", "key", "first", "resolution"),
    [
        ("general", "normal", "default", 300, 86400),
        ("service", "urgent", "urgent", 120, 86400),
        ("complaint", "high", "complaint", 300, 86400),
        ("complaint", "urgent", "complaint-urgent", 120, 86400),
        ("factory", "normal", "factory", 300, 72 * 3600),
        ("factory", "urgent", "factory-urgent", 120, 72 * 3600),
    ],
)
def test_shipped_defaults(category: str, priority: str, key: str, first: int, resolution: int) -> None:
    policy = DEFAULTS.select(category=category, priority=priority)
    assert policy.key == key
    assert policy.targets == {"first_response": first, "next_response": 900, "resolution": resolution}
    assert policy.pause_resolution_when_waiting_customer is True


def test_complaints_page_the_manager_at_breach() -> None:
    steps = DEFAULTS.select(category="complaint", priority="high").ladders["resolution"]
    target = 86400.0
    at_breach = [s.action for s in steps if s.at_seconds(target) == target]
    assert at_breach == ["breach", "escalate_manager"]
    assert next(s for s in steps if s.action == "escalate_manager").tell_customer is True


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "defaults": {"targets": {"first_response": "5m", "next_response": "15m", "resolution": "1d"}},
        "policies": [
            {"key": "vip", "match": {"dealer": ["BJ01"]}, "targets": {"first_response": "60s"}},
            {"key": "rest", "match": {}},
        ],
    }
    doc.update(overrides)
    return doc


def test_dealer_match_and_implied_breach() -> None:
    policies = parse_policies(_doc())
    assert policies.select(category="sales", priority="normal", dealer="BJ01").key == "vip"
    assert policies.select(category="sales", priority="normal", dealer="SH01").key == "rest"
    assert policies.select(category="sales", priority="normal", dealer=None).key == "rest"
    # No ladder given: the breach is still recorded at the target.
    assert [s.action for s in policies.get("vip").ladders["first_response"]] == ["breach"]  # type: ignore[union-attr]
    assert parse_duration("90s") == 90 and parse_duration("1.5h") == 5400 and parse_duration(30) == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"policies": [{"key": "only", "match": {"category": "sales"}}]},
            "last policy must match everything",
        ),
        ({"policies": [{"key": "a", "match": {}, "calendar": "moon"}]}, "unknown calendar"),
        (
            {"policies": [{"key": "a", "ladders": {"resolution": [{"action": "shout", "at": 1}]}}]},
            "unknown action",
        ),
        (
            {
                "policies": [
                    {"key": "a", "ladders": {"resolution": [{"action": "warn", "at": 0.5, "after": "1m"}]}}
                ]
            },
            "exactly one of at",
        ),
        ({"policies": [{"key": "a", "targets": {"resolution": "soon"}}]}, "bad duration"),
        ({"policies": [{"key": "a"}, {"key": "a"}]}, "unique"),
    ],
)
def test_bad_policy_files_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policies(_doc(**change))


async def test_recategorise_to_urgent_breaches_from_the_original_start(
    rt: Runtime, team: Team, clock: FrozenClock
) -> None:
    opened = clock.now()
    res = await customer_writes(rt, "Hello, I have a question about my car")
    assert res.case_id and res.group_id
    clock.advance(minutes=4)
    assert await drain(rt) == 1  # warned at 80% of 5 minutes
    async with rt.transaction() as session:
        await recategorise_case(session, rt, staff=team["butler"], case_id=res.case_id, priority="urgent")
    # The urgent target (2 min) counted from the original start is already behind us: the breach
    # fires at once; the warning is carried over, not repeated.
    assert await drain(rt) == 2
    all_first = [t for t in await timers(rt, res.case_id) if t.metric == "first_response"]
    old, new = all_first
    assert old.state == STOPPED and old.replaced_by_id == new.id
    assert new.policy == "urgent" and new.started_at == opened and new.breached_at is not None
    assert [e.get("carried", False) for e in new.ladder] == [True, False, False, False]
    assert await kinds(rt, res.case_id, "first_response") == [
        "applied",
        "warned",
        "stopped",
        "applied",
        "breached",
        "reassigned",
    ]
    resolution = await live_timer(rt, res.case_id, "resolution")
    assert resolution is not None and resolution.policy == "urgent"


async def test_recategorise_to_factory_extends_resolution(
    rt: Runtime, team: Team, clock: FrozenClock
) -> None:
    opened = clock.now()
    res = await customer_writes(rt, "My OTA update failed", category="service")
    assert res.case_id and res.group_id
    clock.advance(minutes=1)
    async with rt.transaction() as session:
        await staff_reply(session, rt, staff=team["service"], group_id=res.group_id, body="Let me check.")
    clock.advance(hours=30)  # past the 24 h default, but waiting on the customer (paused) all along
    async with rt.transaction() as session:
        await recategorise_case(session, rt, staff=team["service"], case_id=res.case_id, category="factory")
    resolution = await live_timer(rt, res.case_id, "resolution")
    assert resolution is not None and resolution.policy == "factory" and resolution.state == "paused"
    assert resolution.started_at == opened and resolution.target_seconds == 72 * 3600
    await customer_writes(rt, "Any news?")
    resolution = await live_timer(rt, res.case_id, "resolution")
    assert resolution is not None and resolution.due_at == clock.now() + timedelta(hours=72, minutes=-1)
    applied = [e for e in await events(rt, res.case_id, "resolution") if e.kind == "applied"]
    assert [e.data["reason"] for e in applied] == ["opened", "recategorised"]


async def test_recategorise_refuses_unknown_values(rt: Runtime, team: Team) -> None:
    res = await customer_writes(rt, "Question")
    assert res.case_id
    async with rt.transaction() as session:
        with pytest.raises(InvalidInput):
            await recategorise_case(
                session, rt, staff=team["butler"], case_id=res.case_id, category="weather"
            )


async def test_business_hours_policy_end_to_end(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    doc = _doc(
        calendars={
            "office": {"timezone": "Asia/Shanghai", "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"]}}
        },
        policies=[{"key": "office", "match": {}, "calendar": "office", "targets": {"first_response": "1h"}}],
    )
    rt.sla.reload(parse_policies(doc))
    clock.set(datetime(2026, 11, 6, 9, 30, tzinfo=UTC))  # Friday 17:30 in Shanghai
    res = await customer_writes(rt, "Can I book a test drive?")
    assert res.case_id and res.group_id
    first = await live_timer(rt, res.case_id, "first_response")
    assert first and first.due_at == datetime(2026, 11, 9, 1, 30, tzinfo=UTC)  # Monday 09:30 Shanghai
    # The promise is honest about the weekend: about 64 hours of wall time.
    assert "Chen Jie (Sales) will reply within 64 hours." in await system_texts(rt, res.group_id)
    clock.set(datetime(2026, 11, 9, 1, 29, tzinfo=UTC))
    assert await drain(rt) == 0
    clock.advance(minutes=1)
    assert await drain(rt) == 1
    assert (await events(rt, res.case_id, "first_response"))[-1].kind == "breached"
