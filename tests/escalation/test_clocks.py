"""SLA clocks driven through the real flows with a frozen clock: met, warned, breached, paused, reopened."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.conversations.flows import send_bot_answer
from bot.conversations.models import CaseEvent
from bot.conversations.staff_flows import reopen_case, resolve_case, staff_reply, transfer_case
from bot.runtime import AutoAnswer, Runtime
from bot.teams.models import ButlerGroup, Customer
from escalation.models import MET, PAUSED, STOPPED
from tests.escalation.conftest import (
    Team,
    customer_writes,
    drain,
    events,
    get_case,
    kinds,
    live_timer,
    minutes,
    system_texts,
    timers,
)


async def _reply(rt: Runtime, team: Team, who: str, group_id: int, body: str, internal: bool = False) -> None:
    async with rt.transaction() as session:
        await staff_reply(session, rt, staff=team[who], group_id=group_id, body=body, internal=internal)


async def test_promise_and_first_response_met(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    opened = clock.now()
    res = await customer_writes(rt, "My brakes make a grinding noise")
    assert res.case_id is not None and res.group_id is not None
    case = await get_case(rt, res.case_id)
    assert case.assignee_id == team["service"].id
    assert "Wang Fang (Service) will reply within 5 minutes." in await system_texts(rt, res.group_id)
    first = await live_timer(rt, case.id, "first_response")
    resolution = await live_timer(rt, case.id, "resolution")
    assert first and resolution and first.due_at and resolution.due_at
    assert minutes(opened, first.due_at) == 5 and minutes(opened, resolution.due_at) == 24 * 60
    assert first.policy == "default"

    clock.advance(minutes=3)
    await _reply(rt, team, "service", res.group_id, "Please come in tomorrow at 10.")
    assert await drain(rt) == 0
    evs = await events(rt, case.id, "first_response")
    assert [e.kind for e in evs] == ["applied", "met"]
    assert evs[-1].data["elapsed"] == 180 and evs[-1].data["late"] is False
    # The staff reply moved the case to waiting on the customer: resolution pauses.
    resolution = await live_timer(rt, case.id, "resolution")
    assert resolution is not None and resolution.state == PAUSED


async def test_first_response_warned_then_met(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "Brake warning light is on")
    assert res.case_id and res.group_id
    clock.advance(minutes=3, seconds=59)
    assert await drain(rt) == 0
    clock.advance(seconds=1)
    assert await drain(rt) == 1
    warned = (await events(rt, res.case_id, "first_response"))[-1]
    assert warned.kind == "warned" and warned.target_staff_id == team["service"].id and warned.step == 0
    clock.advance(seconds=30)
    await _reply(rt, team, "service", res.group_id, "Looking at it now.")
    assert await kinds(rt, res.case_id, "first_response") == ["applied", "warned", "met"]
    clock.advance(hours=1)
    assert await drain(rt) == 0  # a met clock fires nothing more


async def test_first_response_breach_reassigns_and_escalates(
    rt: Runtime, team: Team, clock: FrozenClock
) -> None:
    res = await customer_writes(rt, "Strange noise from the engine")
    assert res.case_id and res.group_id
    clock.advance(minutes=5)
    assert await drain(rt) == 3  # warn, breach, reassign (at the target) in due order
    evs = await events(rt, res.case_id, "first_response")
    assert [e.kind for e in evs] == ["applied", "warned", "breached", "reassigned"]
    breached, reassigned = evs[2], evs[3]
    assert breached.target_staff_id == team["lead"].id
    assert reassigned.data["moved"] is True and reassigned.target_staff_id == team["service2"].id
    case = await get_case(rt, res.case_id)
    assert case.assignee_id == team["service2"].id
    timer = await live_timer(rt, res.case_id, "first_response")
    assert timer is not None and timer.breached_at == timer.due_at
    async with rt.maker() as session:
        moved = await session.scalars(select(CaseEvent).where(CaseEvent.kind == "reassigned"))
        assert [e.data["to"] for e in moved.all()] == [team["service2"].id]
    texts = await system_texts(rt, res.group_id)
    assert "Sorry for the wait: your request has been escalated to Zhao Lei (Service)." in texts

    clock.advance(minutes=15)
    assert await drain(rt) == 1
    escalated = (await events(rt, res.case_id, "first_response"))[-1]
    assert escalated.kind == "escalated" and escalated.target_staff_id == team["manager"].id
    assert escalated.data["to"] == "manager"
    assert "escalated to Liu Yang (Manager)" in (await system_texts(rt, res.group_id))[-1]

    clock.advance(minutes=1)
    await _reply(rt, team, "service2", res.group_id, "Sorry for the delay, I am on it.")
    met = (await events(rt, res.case_id, "first_response"))[-1]
    assert met.kind == "met" and met.data["late"] is True and met.staff_id == team["service2"].id


async def test_chinese_customer_gets_promise_in_chinese(rt: Runtime, team: Team) -> None:
    res = await customer_writes(rt, "刹车有异响", user="zh", locale="zh-CN")
    assert res.group_id
    assert "已为您转接 Wang Fang（服务技师），将在 5 分钟内回复您。" in await system_texts(rt, res.group_id)


async def test_next_response_met_warned_breached(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "Tyre pressure warning light")
    assert res.case_id and res.group_id
    clock.advance(minutes=1)
    await _reply(rt, team, "service", res.group_id, "Check the pressure please.")
    assert await live_timer(rt, res.case_id, "next_response") is None

    clock.advance(minutes=10)
    await customer_writes(rt, "It says 1.9 bar")
    nxt = await live_timer(rt, res.case_id, "next_response")
    assert nxt is not None and nxt.due_at and minutes(clock.now(), nxt.due_at) == 15 and nxt.cycle == 0
    clock.advance(minutes=5)
    await customer_writes(rt, "Hello?")  # a follow-up does not restart the clock
    assert (await live_timer(rt, res.case_id, "next_response")).id == nxt.id  # type: ignore[union-attr]
    clock.advance(minutes=5)
    await _reply(rt, team, "service", res.group_id, "Inflate to 2.4 bar.")
    assert await kinds(rt, res.case_id, "next_response") == ["applied", "met"]

    # Round two: warned at 12 minutes, breached at 15, met late.
    await customer_writes(rt, "Done, thanks. One more question")
    clock.advance(minutes=12)
    assert await drain(rt) == 1
    clock.advance(minutes=3)
    assert await drain(rt) == 1
    clock.advance(minutes=1)
    await _reply(rt, team, "service", res.group_id, "Sure, go ahead.")
    rounds = [t for t in await timers(rt, res.case_id) if t.metric == "next_response"]
    assert [t.cycle for t in rounds] == [0, 1]
    assert await kinds(rt, res.case_id, "next_response") == [
        "applied",
        "met",
        "applied",
        "warned",
        "breached",
        "met",
    ]
    assert (await events(rt, res.case_id, "next_response"))[-1].data["late"] is True


async def test_resolution_warned_breached_then_met_late(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "Please arrange maintenance")
    assert res.case_id and res.group_id
    clock.advance(hours=18)
    await drain(rt)
    assert await kinds(rt, res.case_id, "resolution") == ["applied", "warned"]
    clock.advance(hours=6)
    await drain(rt)
    clock.advance(hours=4)
    await drain(rt)
    assert await kinds(rt, res.case_id, "resolution") == ["applied", "warned", "breached", "escalated"]
    clock.advance(hours=1)
    case = await get_case(rt, res.case_id)
    assert case.assignee_id is not None
    async with rt.transaction() as session:
        await resolve_case(session, rt, staff=team["manager"], case_id=res.case_id)
    last = (await events(rt, res.case_id, "resolution"))[-1]
    assert last.kind == "met" and last.data["late"] is True and last.data["elapsed"] == 29 * 3600
    # The unanswered first-response clock stops at resolve; nothing stays live.
    assert [t.state for t in await timers(rt, res.case_id)] == [STOPPED, MET]


async def test_resolution_met_in_time(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "What is the price of the long range model?")
    assert res.case_id and res.group_id
    clock.advance(minutes=2)
    await _reply(rt, team, "sales", res.group_id, "It is 259,900.")
    clock.advance(hours=1)
    async with rt.transaction() as session:
        await resolve_case(session, rt, staff=team["sales"], case_id=res.case_id)
    evs = await events(rt, res.case_id, "resolution")
    assert [e.kind for e in evs] == ["applied", "paused", "met"]
    # Waiting on the customer did not count: only the 2 minutes before the reply did.
    assert evs[-1].data["elapsed"] == 120 and evs[-1].data["late"] is False


async def test_pause_and_resume_shift_the_ladder(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    start = clock.now()
    res = await customer_writes(rt, "Booking a service for my car")
    assert res.case_id and res.group_id
    clock.advance(minutes=1)
    await _reply(rt, team, "service", res.group_id, "Which day suits you?")
    paused = await live_timer(rt, res.case_id, "resolution")
    assert paused and paused.state == PAUSED and paused.next_due_at is None and paused.due_at is None
    clock.advance(hours=20)  # past the original warn time (18h) while paused: nothing fires
    assert await drain(rt) == 0
    await customer_writes(rt, "Saturday morning please")
    resumed = await live_timer(rt, res.case_id, "resolution")
    assert resumed is not None and resumed.state == "running" and resumed.due_at is not None
    assert resumed.paused_seconds == 20 * 3600
    assert resumed.due_at == start + timedelta(hours=24) + timedelta(hours=20)
    assert resumed.next_due_at == start + timedelta(hours=18) + timedelta(hours=20)
    assert await kinds(rt, res.case_id, "resolution") == ["applied", "paused", "resumed"]
    clock.set(resumed.next_due_at - timedelta(seconds=1))
    await drain(rt)  # (the next-response clock the message started does fire meanwhile)
    assert await kinds(rt, res.case_id, "resolution") == ["applied", "paused", "resumed"]
    clock.advance(seconds=1)
    await drain(rt)
    assert await kinds(rt, res.case_id, "resolution") == ["applied", "paused", "resumed", "warned"]


async def test_reopen_starts_new_clocks(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "Windscreen washer does not work, repair please")
    assert res.case_id and res.group_id
    clock.advance(minutes=2)
    await _reply(rt, team, "service", res.group_id, "Fixed remotely, try again.")
    async with rt.transaction() as session:
        await resolve_case(session, rt, staff=team["service"], case_id=res.case_id)
    clock.advance(hours=2)
    async with rt.transaction() as session:
        await reopen_case(session, rt, staff=team["service"], case_id=res.case_id)
    all_timers = await timers(rt, res.case_id)
    assert [(t.metric, t.cycle, t.state) for t in all_timers] == [
        ("first_response", 0, MET),
        ("resolution", 0, MET),
        ("first_response", 1, "running"),
        ("resolution", 1, "running"),
    ]
    fresh = all_timers[2]
    assert fresh.started_at == clock.now() and fresh.due_at == clock.now() + timedelta(minutes=5)
    applied = [e for e in await events(rt, res.case_id) if e.kind == "applied"]
    assert [e.data["reason"] for e in applied] == ["opened", "opened", "reopened", "reopened"]
    clock.advance(minutes=5)
    assert await drain(rt) == 3
    assert await kinds(rt, res.case_id, "first_response") == [
        "applied",
        "met",
        "applied",
        "warned",
        "breached",
        "reassigned",
    ]


async def test_transfer_keeps_the_clock(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    res = await customer_writes(rt, "Need a repair appointment")
    assert res.case_id and res.group_id
    before = await live_timer(rt, res.case_id, "first_response")
    clock.advance(minutes=2)
    async with rt.transaction() as session:
        await transfer_case(
            session, rt, staff=team["service"], case_id=res.case_id, to_staff_id=team["service2"].id
        )
    after = await live_timer(rt, res.case_id, "first_response")
    assert before and after and after.id == before.id and after.due_at == before.due_at
    moved = (await events(rt, res.case_id))[-1]
    assert moved.kind == "reassigned" and moved.timer_id is None and moved.data["source"] == "staff"
    assert moved.staff_id == team["service"].id and moved.target_staff_id == team["service2"].id
    clock.advance(minutes=2)
    assert await drain(rt) == 1
    warned = (await events(rt, res.case_id, "first_response"))[-1]
    assert warned.kind == "warned" and warned.target_staff_id == team["service2"].id


async def test_internal_note_and_bot_messages_do_not_stop_clocks(
    rt: Runtime, team: Team, clock: FrozenClock
) -> None:
    res = await customer_writes(rt, "The car will not start")
    assert res.case_id and res.group_id
    clock.advance(minutes=1)
    await _reply(rt, team, "service", res.group_id, "Probably the 12V battery", internal=True)
    async with rt.transaction() as session:
        group = await session.get(ButlerGroup, res.group_id)
        assert group is not None
        customer = await session.get(Customer, group.customer_id)
        assert customer is not None
        answer = AutoAnswer(topic="battery", text="Try the spare key fob.", score=0.9, locale="en")
        await send_bot_answer(session, rt, group=group, customer=customer, answer=answer)
    first = await live_timer(rt, res.case_id, "first_response")
    assert first is not None and first.state == "running"
    assert (await get_case(rt, res.case_id)).first_response_at is None
    clock.advance(minutes=4)
    assert await drain(rt) == 3
    assert await kinds(rt, res.case_id, "first_response") == ["applied", "warned", "breached", "reassigned"]
