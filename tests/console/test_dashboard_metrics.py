"""Dashboard metric definitions on hand-built data (tests/console/dashboard_data.py), both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
import pytest_asyncio

from bot.factory import build_runtime, close_runtime
from bot.runtime import Runtime
from escalation import metrics
from escalation.metrics import Scope, percentile
from escalation.metrics_drill import Drill, drill_rows
from tests.console.dashboard_data import World, at, build_world, frozen, migrated_settings

D31, D1, D2 = date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Runtime, World]]:
    """One database per backend with the hand-built data, shared read-only by this module."""
    async with migrated_settings(request.param, tmp_path_factory.mktemp("metrics")) as settings:
        runtime = build_runtime(settings, clock=frozen())
        try:
            yield runtime, await build_world(runtime)
        finally:
            await close_runtime(runtime)


@pytest.fixture
def rt(loaded: tuple[Runtime, World]) -> Runtime:
    """The shared runtime."""
    return loaded[0]


@pytest.fixture
def world(loaded: tuple[Runtime, World]) -> World:
    """The shared data set."""
    return loaded[1]


def scope(rt: Runtime, dealer_id: int | None = None, tz: str = "UTC") -> Scope:
    """Oct 31 - Nov 2 at the frozen now."""
    return Scope(D31, D2, rt.clock.now(), tz=tz, dealer_id=dealer_id)


async def test_percentile_matches_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([180.0], 0.9) == 180.0
    assert percentile([60.0, 600.0], 0.5) == 330.0
    assert percentile([60.0, 600.0], 0.9) == pytest.approx(546.0)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


async def test_tiles_all_dealers_and_one(rt: Runtime, world: World) -> None:
    async with rt.maker() as session:
        t = await metrics.tiles(session, scope=scope(rt))
        a = await metrics.tiles(session, scope=scope(rt, world.dealer_a))
        b = await metrics.tiles(session, scope=scope(rt, world.dealer_b))
    assert (t.open_cases, t.waiting_staff, t.at_risk, t.breached_now) == (3, 2, 1, 1)
    assert (t.bot_answers_today, t.bot_resolved_today) == (6, 2)
    assert (t.csat_asked_today, t.csat_responses_today, t.csat_positive_today) == (2, 1, 1)
    assert t.csat_today == 1.0 and t.response_rate_today == 0.5
    assert (a.open_cases, a.waiting_staff, a.at_risk, a.breached_now) == (2, 2, 1, 1)
    assert (a.bot_answers_today, a.bot_resolved_today) == (5, 2)
    assert (b.open_cases, b.waiting_staff, b.at_risk, b.breached_now) == (1, 0, 0, 0)
    assert (b.bot_answers_today, b.bot_resolved_today, b.csat_asked_today) == (1, 0, 0)


async def test_at_risk_follows_the_clock(rt: Runtime, world: World) -> None:
    # c3's first response (5 min target) is due at 09:01; 2 minutes margin (20 % of 5 min is 1 min).
    async with rt.maker() as session:
        early = await metrics.tiles(
            session, scope=Scope(D31, D2, at(2, 8, 58) + timedelta(seconds=30), tz="UTC")
        )
        edge = await metrics.tiles(session, scope=Scope(D31, D2, at(2, 8, 59), tz="UTC"))
        wide = Scope(D31, D2, at(2, 8, 57), tz="UTC", risk_minutes=5)
        wider = await metrics.tiles(session, scope=wide)
    assert early.at_risk == 0
    assert edge.at_risk == 1
    assert wider.at_risk == 1


async def test_sla_hit_rate_by_day_metric_and_role(rt: Runtime, world: World) -> None:
    async with rt.maker() as session:
        s = await metrics.series(session, scope=scope(rt))
        a = await metrics.series(session, scope=scope(rt, world.dealer_a))
    days = {p.day: p for p in s.days}
    assert [p.day for p in s.days] == [D31, D1, D2]
    assert days[D31].hit_rate() == 1.0
    # 11-01: c2 first response missed, c2 resolution, c4 first response and resolution.
    assert days[D1].applied == {"first_response": 2, "resolution": 2}
    assert days[D1].hit_rate() == 0.75
    assert days[D1].hit_rate("first_response") == 0.5
    # 11-02: c3 and c5 first response (c5 missed), c5 resolution once (its re-application is not a new round).
    assert sum(days[D2].applied.values()) == 3 and sum(days[D2].missed.values()) == 1
    assert days[D2].hit_rate() == pytest.approx(2 / 3)
    roles = {r.role: r for r in s.roles}
    assert (roles["butler"].applied, roles["butler"].missed) == (4, 1)
    assert (roles["sales"].applied, roles["sales"].missed) == (2, 0)
    assert roles["service"].hit_rate == pytest.approx(2 / 3)
    a_days = {p.day: p for p in a.days}
    assert a_days[D1].hit_rate() == 0.5
    assert "sales" not in {r.role for r in a.roles}


async def test_first_response_percentiles_wall_and_business(rt: Runtime, world: World) -> None:
    async with rt.maker() as session:
        s = await metrics.series(session, scope=scope(rt))
    days = {p.day: p for p in s.days}
    assert (days[D31].frt_count, days[D31].frt_p50, days[D31].frt_p90) == (1, 180.0, 180.0)
    assert days[D1].frt_count == 2
    assert days[D1].frt_p50 == pytest.approx(330.0)
    assert days[D1].frt_p90 == pytest.approx(546.0)
    assert days[D1].frt_business_p50 == pytest.approx(280.0)
    assert days[D1].frt_business_p90 == pytest.approx(456.0)
    assert days[D2].frt_count == 0 and days[D2].frt_p50 is None


async def test_backlog_csat_and_bot_rate_by_day(rt: Runtime, world: World) -> None:
    async with rt.maker() as session:
        s = await metrics.series(session, scope=scope(rt))
        a = await metrics.series(session, scope=scope(rt, world.dealer_a))
    days = {p.day: p for p in s.days}
    assert [days[d].backlog for d in (D31, D1, D2)] == [0, 1, 3]
    assert [days[d].opened for d in (D31, D1, D2)] == [1, 2, 4]
    assert [(days[d].csat_asked, days[d].csat_responses, days[d].csat_positive) for d in (D31, D1, D2)] == [
        (1, 1, 1),
        (1, 1, 0),
        (2, 1, 1),
    ]
    assert days[D1].csat == 0.0 and days[D2].response_rate == 0.5
    assert (days[D1].bot_answers, days[D1].bot_resolved) == (1, 1)
    assert (days[D2].bot_answers, days[D2].bot_resolved) == (6, 2)
    assert days[D2].bot_rate == pytest.approx(2 / 6)
    assert [p.backlog for p in a.days] == [0, 0, 2]
    assert {b.name: b.breaches for b in s.breaches} == {"Staff w_butler": 1, "Staff w_service": 1}


async def test_days_follow_the_timezone(rt: Runtime, world: World) -> None:
    # c2's clocks started 11-01 08:00 UTC = 16:00 in Shanghai; c1's 10-31 10:00 UTC = 18:00 there.
    # In Los Angeles (UTC-7 in early November 2026) c2's 08:00 UTC is 11-01 01:00; c1 10-31 03:00.
    async with rt.maker() as session:
        sh = await metrics.series(session, scope=scope(rt, tz="Asia/Shanghai"))
        ny = await metrics.series(session, scope=Scope(D31, D2, rt.clock.now(), tz="America/Los_Angeles"))
    assert {p.day: sum(p.applied.values()) for p in sh.days} == {D31: 2, D1: 4, D2: 3}
    assert sum(sum(p.applied.values()) for p in ny.days) == 9


async def test_queue_and_team_load(rt: Runtime, world: World) -> None:
    async with rt.maker() as session:
        queue = await metrics.escalation_queue(session, scope=scope(rt))
        team = await metrics.team_load(session, scope=scope(rt, world.dealer_a))
    assert [q.case_id for q in queue] == [world.cases["c5"]]
    assert queue[0].overdue_seconds == 25 * 60
    assert queue[0].last_step == "escalated" and queue[0].escalated_to == "Staff w_lead"
    by_name = {t.name: t for t in team}
    assert set(by_name) == {"Staff w_butler", "Staff w_service"}
    assert (by_name["Staff w_service"].open_cases, by_name["Staff w_service"].breaches) == (2, 1)
    assert by_name["Staff w_service"].load == 0.2
    assert team[0].name == "Staff w_service"


async def test_drill_downs_list_the_cases_behind_the_numbers(rt: Runtime, world: World) -> None:
    c = world.cases
    sc = scope(rt)
    async with rt.maker() as session:

        async def ids(drill: Drill, s: Scope = sc) -> list[int | None]:
            rows, total = await drill_rows(session, scope=s, drill=drill)
            assert total == len(rows)
            return [r.case_id for r in rows]

        assert set(await ids(Drill("open"))) == {c["c3"], c["c4"], c["c5"]}
        assert set(await ids(Drill("open"), scope(rt, world.dealer_a))) == {c["c3"], c["c5"]}
        assert set(await ids(Drill("waiting_staff"))) == {c["c3"], c["c5"]}
        assert await ids(Drill("at_risk")) == [c["c3"]]
        assert await ids(Drill("breached_now")) == [c["c5"]]
        assert await ids(Drill("escalations")) == [c["c5"]]
        assert await ids(Drill("sla", day=D1, missed_only=True)) == [c["c2"]]
        assert set(await ids(Drill("sla", day=D1))) == {c["c2"], c["c4"]}
        assert await ids(Drill("sla", role="service", sla_metric="first_response", missed_only=True)) == [
            c["c5"]
        ]
        assert await ids(Drill("first_response", day=D1)) == [c["c2"], c["c4"]]  # slowest first
        assert await ids(Drill("backlog", day=D1)) == [c["c4"]]
        assert set(await ids(Drill("backlog", day=D2))) == {c["c3"], c["c4"], c["c5"]}
        assert set(await ids(Drill("csat", day=D2))) == {c["c6"], c["c7"]}
        assert await ids(Drill("breaches", staff_id=world.staff["w_service"])) == [c["c5"]]
        assert set(await ids(Drill("staff_open", staff_id=world.staff["w_service"]))) == {c["c3"], c["c5"]}
        assert set(await ids(Drill("opened", day=D1))) == {c["c2"], c["c4"]}
        rows, total = await drill_rows(session, scope=sc, drill=Drill("bot_resolved", day=D2))
        assert total == 2 and {r.group_id for r in rows} == {world.groups["g2"], world.groups["g5"]}
        assert all(r.case_id is None and r.status == "bot_resolved" for r in rows)
        rows, _ = await drill_rows(session, scope=sc, drill=Drill("first_response", day=D1))
        assert rows[0].detail == pytest.approx(600.0)
        assert rows[0].customer == "Customer g2" and rows[0].dealer == "Dealer A"


async def test_scope_days_and_bounds() -> None:
    s = Scope(D31, D2, at(2, 9), tz="Asia/Shanghai")
    assert s.start == at(30, 16, month=10)
    assert s.end - s.start == timedelta(days=3)
    assert s.today == D2
    assert metrics.safe_timezone("Robert'); DROP TABLE cases;--") == "UTC"
    with pytest.raises(ValueError):
        Drill("nope")


async def test_settled_days_come_from_the_cache(rt: Runtime, world: World) -> None:
    cache = metrics.FactsCache(ttl=300)
    sc = scope(rt)
    async with rt.maker() as session:
        live = await metrics.series(session, scope=sc)
        cached = await metrics.series(session, scope=sc, cache=cache)
        assert cached.days == live.days and cached.roles == live.roles
        # 10-31 is settled (before yesterday); yesterday and today are kept briefly, or not at all.
        entry = cache.get((None, "UTC", 86400.0, D31))
        assert entry is not None and entry.opened == 1
        assert cache.get((None, "UTC", 86400.0, D1)) is not None
        unkept = metrics.FactsCache(ttl=300, recent_ttl=0)
        await metrics.series(session, scope=sc, cache=unkept)
        assert unkept.get((None, "UTC", 86400.0, D1)) is None
        assert unkept.get((None, "UTC", 86400.0, D31)) is not None
        entry.opened = 99  # served from the cache on the next call
        again = await metrics.series(session, scope=sc, cache=cache)
        assert {p.day: p.opened for p in again.days}[D31] == 99
        expired = metrics.FactsCache(ttl=0, recent_ttl=0)
        await metrics.series(session, scope=sc, cache=expired)
        assert expired.get((None, "UTC", 86400.0, D31)) is None


async def test_dashboard_parts_in_parallel_match_one_session(rt: Runtime, world: World) -> None:
    sc = scope(rt, world.dealer_a)
    async with rt.maker() as session:
        one = await metrics.dashboard(session, scope=sc)
    async with rt.maker() as session:
        many = await metrics.dashboard(session, scope=sc, maker=rt.maker)
    assert one.tiles == many.tiles and one.series == many.series
    assert one.queue == many.queue and one.team == many.team
    assert [t.name for t in many.team] == ["Staff w_service", "Staff w_butler"]
