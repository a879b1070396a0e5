"""The worker: overdue rungs after a restart, crashes mid-pass, failing actions, concurrent passes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.conversations.models import CaseEvent
from bot.factory import build_runtime, close_runtime
from bot.runtime import Runtime
from bot.settings import Settings
from escalation import ladder, worker
from escalation.models import SlaEvent, SlaTimer
from escalation.policies import parse_policies
from escalation.service import parse_iso
from tests.escalation.conftest import Team, customer_writes, drain, events, make_team


class Crash(BaseException):
    """Stands in for the process dying mid-pass (not an Exception, so nothing catches it)."""


async def _step_events(rt: Runtime) -> list[SlaEvent]:
    async with rt.maker() as session:
        query = select(SlaEvent).where(SlaEvent.step.is_not(None)).order_by(SlaEvent.id)
        return list((await session.scalars(query)).all())


async def _expected_steps(rt: Runtime) -> int:
    # Every rung of every clock whose due time has passed (all clocks here are unanswered).
    async with rt.maker() as session:
        all_timers = (await session.scalars(select(SlaTimer))).all()
    now = rt.clock.now()
    return sum(1 for t in all_timers for e in t.ladder if e["due"] and e["due"] <= now.isoformat())


async def _open_cases(rt: Runtime, clock: FrozenClock, n: int, gap_seconds: float) -> list[int]:
    ids = []
    for i in range(n):
        res = await customer_writes(rt, f"Brake noise number {i}", user=f"c{i}")
        assert res.case_id
        ids.append(res.case_id)
        clock.advance(seconds=gap_seconds)
    return ids


async def test_restart_fires_overdue_rungs_at_once_in_due_order(
    rt: Runtime, team: Team, clock: FrozenClock
) -> None:
    await _open_cases(rt, clock, 6, gap_seconds=50)
    # The worker was down for two hours: every first-response rung is overdue.
    clock.advance(hours=2)
    expected = await _expected_steps(rt)
    assert expected == 6 * 4
    fired = 0
    while True:  # a restarted single worker, small batches
        n = await worker.run_pass(rt, limit=2)
        if n == 0:
            break
        fired += n
    assert fired == expected
    evs = await _step_events(rt)
    dues = [e.data["due"] for e in evs]
    assert dues == sorted(dues)
    assert Counter((e.timer_id, e.step) for e in evs).most_common(1)[0][1] == 1
    assert all(e.at == clock.now() for e in evs)  # at once, not at their old due times
    assert await drain(rt) == 0


async def test_crash_mid_pass_rolls_back_and_fires_once_later(
    rt: Runtime, team: Team, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = clock.now()
    first, second = await _open_cases(rt, clock, 2, gap_seconds=59)
    clock.set(start + timedelta(minutes=4, seconds=30))
    assert await worker.run_pass(rt) == 1  # the first case's warning
    real_breach = ladder.ACTIONS["breach"]

    async def crash(ctx: ladder.StepContext) -> ladder.Outcome:
        raise Crash

    # Next pass: the second case's warning (due 09:04:59) fires, then the process dies on the
    # first case's breach (due 09:05:00) before committing.
    monkeypatch.setitem(ladder.ACTIONS, "breach", crash)
    clock.set(start + timedelta(minutes=6))
    with pytest.raises(Crash):
        await worker.run_pass(rt, limit=50)
    assert [(e.case_id, e.kind) for e in await _step_events(rt)] == [(first, "warned")]
    monkeypatch.setitem(ladder.ACTIONS, "breach", real_breach)
    assert await drain(rt) == 5
    evs = await _step_events(rt)
    assert sorted(Counter(e.kind for e in evs).items()) == [("breached", 2), ("reassigned", 2), ("warned", 2)]
    assert len({(e.timer_id, e.step) for e in evs}) == 6
    async with rt.maker() as session:
        moved = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "reassigned")
        )
    assert moved == 2
    assert second


async def test_a_failing_action_is_recorded_and_the_ladder_moves_on(
    rt: Runtime, team: Team, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (case_id,) = await _open_cases(rt, clock, 1, gap_seconds=0)

    async def broken(ctx: ladder.StepContext) -> ladder.Outcome:
        raise RuntimeError("console is down")

    monkeypatch.setitem(ladder.ACTIONS, "warn", broken)
    clock.advance(minutes=5)
    assert await drain(rt) == 3
    evs = [e for e in await events(rt, case_id, "first_response") if e.step is not None]
    assert [(e.step, e.kind) for e in evs] == [(0, "failed"), (1, "breached"), (2, "reassigned")]
    assert "console is down" in evs[0].data["error"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_concurrent_passes_fire_each_rung_once(rt: Runtime, team: Team, clock: FrozenClock) -> None:
    cases = await _open_cases(rt, clock, 30, gap_seconds=7)
    clock.advance(hours=1)
    expected = await _expected_steps(rt)
    assert expected == 30 * 4  # first-response rungs only; resolution is not due yet
    totals = await asyncio.gather(*(worker.drain(rt, limit=3) for _ in range(4)))
    assert sum(totals) == expected
    evs = await _step_events(rt)
    assert len(evs) == expected
    assert len({(e.timer_id, e.step) for e in evs}) == expected
    async with rt.maker() as session:
        moved = (await session.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "reassigned"))).all()
    assert sorted(moved) == sorted(cases)  # each case reassigned exactly once


async def test_worker_loop_sleeps_until_due_and_wakes_on_new_timers(settings: Settings) -> None:
    # A real clock and one-second targets: the loop must wake for a timer created while it sleeps.
    rt = build_runtime(settings)
    try:
        team = await make_team(rt)
        doc = {
            "defaults": {"targets": {"first_response": "1s", "next_response": "15m", "resolution": "1d"}},
            "ladders": {"fast": [{"action": "warn", "at": 0.5}, {"action": "breach", "at": 1.0}]},
            "policies": [{"key": "fast", "match": {}, "ladders": {"first_response": "fast"}}],
        }
        rt.sla.reload(parse_policies(doc))
        stop = asyncio.Event()
        loop_task = asyncio.create_task(worker.run_escalation_worker(rt, stop, max_idle=30.0))
        await asyncio.sleep(0.3)  # the loop is now asleep with nothing due (up to 30 s)
        res = await customer_writes(rt, "Help please")
        assert res.case_id and team
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            fired = [e for e in await events(rt, res.case_id, "first_response") if e.step is not None]
            if len(fired) == 2:
                break
            await asyncio.sleep(0.05)
        assert [e.kind for e in fired] == ["warned", "breached"]
        for e in fired:  # fired on time: woken by the bus, then asleep exactly until due
            due = parse_iso(e.data["due"])
            assert due is not None and 0 <= (e.at - due).total_seconds() < 0.5
        stop.set()
        await asyncio.wait_for(loop_task, timeout=2)
    finally:
        await close_runtime(rt)
