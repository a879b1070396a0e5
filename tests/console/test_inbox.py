"""Inbox: SLA urgency order, filters, search, unread markers; the group view's panels."""

from __future__ import annotations

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.conversations import inbox as inbox_service
from bot.conversations.inbox import InboxFilters
from bot.conversations.staff_flows import staff_reply
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams import service as teams_service
from bot.teams.models import Staff
from tests.inbound import webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD, LiveServer


async def _say(rt: Runtime, user: str, text: str, n: int = 1) -> int:
    result = await webchat_says(rt, user, text, message_id=f"{user}-{n}", locale="zh-CN")
    assert result.case_id is not None
    return result.case_id


async def _staff(rt: Runtime, username: str) -> Staff:
    async with rt.maker() as session:
        staff = await teams_service.get_staff_by_username(session, username=username)
        assert staff is not None
        return staff


async def _rows(rt: Runtime, staff: Staff, **kw: object) -> list[int]:
    async with rt.maker() as session:
        rows = await inbox_service.inbox(session, staff=staff, filters=InboxFilters(**kw), now=rt.clock.now())  # type: ignore[arg-type]
    return [r.case.id for r in rows]


async def test_breached_first_then_nearest_due(rt: Runtime, clock: FrozenClock) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    manager = await _staff(rt, "manager1")
    old = await _say(rt, "a", "我的车刹车有异响")  # service, first response due in 5 min
    clock.advance(minutes=3)
    complaint = await _say(rt, "b", "我要投诉你们的销售，态度太差了")  # complaint, high priority
    clock.advance(minutes=1)
    newest = await _say(rt, "c", "我的车发动机故障灯亮了")
    order = await _rows(rt, manager, scope="team")
    assert order.index(old) < order.index(newest)
    # Run the ladder past the first case's target: it breaches and jumps to the top.
    from escalation.worker import drain

    clock.advance(minutes=2)
    await drain(rt)
    order = await _rows(rt, manager, scope="team")
    assert order[0] == old
    assert await _rows(rt, manager, scope="team", breached=True) == [old]
    assert complaint in await _rows(rt, manager, scope="team", category="complaint")
    assert await _rows(rt, manager, scope="team", category="sales") == []


async def test_search_and_scope(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    case_id = await _say(rt, "zhang", "天窗漏水了，下雨天座椅都湿了")
    other = await _say(rt, "li", "想了解一下你们的置换补贴")
    manager = await _staff(rt, "manager1")
    assert await _rows(rt, manager, scope="team", q="天窗漏水") == [case_id]
    assert await _rows(rt, manager, scope="team", q="li") == [other]
    assert await _rows(rt, manager, scope="team", q="100%_") == []
    async with rt.maker() as session:
        from bot.conversations.models import Case

        case = await session.get(Case, case_id)
        assert case is not None and case.assignee_id is not None
        assignee = await session.get(Staff, case.assignee_id)
        assert assignee is not None
    assert case_id in await _rows(rt, assignee)
    assert other not in await _rows(rt, assignee)


async def test_unread_marker_clears_when_the_group_is_opened(live: LiveServer) -> None:
    rt = live.rt
    case_id = await _say(rt, "wang", "我的车刹车有异响")
    async with rt.maker() as session:
        from bot.conversations.models import Case

        case = await session.get(Case, case_id)
        assert case is not None
        username = (await session.scalar(select(Staff.username).where(Staff.id == case.assignee_id))) or ""
    async with live.client(follow_redirects=True) as c:
        page = await c.get("/console/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        await c.post("/console/login", data={"username": username, "password": DEMO_PASSWORD, "csrf": csrf})
        inbox = await c.get("/console/")
        assert 'class="unread"' in inbox.text
        group = await c.get(f"/console/groups/{case.group_id}")
        assert group.status_code == 200 and "SLA" in group.text and "我的车刹车有异响" in group.text
        assert 'class="unread"' not in (await c.get("/console/")).text
        staff = await _staff(rt, username)
        async with rt.transaction() as session:
            await staff_reply(session, rt, staff=staff, group_id=case.group_id, body="您好", internal=False)
        await _say(rt, "wang", "好的，谢谢", n=2)
        assert 'class="unread"' in (await c.get("/console/")).text
