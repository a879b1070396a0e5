"""Internal notes stay internal, members-only access, and bad input bounces off cleanly."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.conversations.models import Case, Message
from bot.teams.models import ButlerGroup, Customer, WebchatSession
from tests.live import LiveServer


async def _chat(live: LiveServer, text: str = "我想预约保养") -> tuple[str, int]:
    async with live.client() as c:
        sid = (
            await c.post("/api/v1/webchat/sessions", json={"display_name": "Li", "locale": "zh-CN"})
        ).json()["session_id"]
        r = await c.post("/api/v1/webchat/messages", json={"text": text}, headers={"X-Webchat-Session": sid})
        assert r.status_code == 201, r.text
    async with live.rt.maker() as session:
        group_id = await session.scalar(select(func.max(ButlerGroup.id)))
    assert group_id is not None
    return sid, group_id


async def _counts(live: LiveServer) -> tuple[int, int, int]:
    async with live.rt.maker() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(Message)) or 0),
            int(await session.scalar(select(func.count()).select_from(Case)) or 0),
            int(await session.scalar(select(func.count()).select_from(Customer)) or 0),
        )


async def _member(live: LiveServer, group_id: int) -> str:
    async with live.client() as c:
        group = (await c.get(f"/api/v1/groups/{group_id}", headers=await live.token("manager1"))).json()
    staff_id = group["members"][0]["staff_id"]
    from bot.teams.models import Staff

    async with live.rt.maker() as session:
        staff = await session.get(Staff, staff_id)
        assert staff is not None
        return staff.username


async def test_internal_note_never_reaches_customer(live: LiveServer) -> None:
    sid, group_id = await _chat(live)
    member = await _member(live, group_id)
    async with live.client() as c:
        token = await live.token(member)
        r = await c.post(
            f"/api/v1/groups/{group_id}/messages",
            json={"body": "客户很急，优先处理", "internal": True},
            headers=token,
        )
        assert r.status_code == 201 and r.json()["internal"] is True
        customer_items = (await c.get("/api/v1/webchat/messages", headers={"X-Webchat-Session": sid})).json()[
            "items"
        ]
        assert all("客户很急" not in m["body"] for m in customer_items)
        staff_items = (await c.get(f"/api/v1/groups/{group_id}/messages", headers=token)).json()["items"]
        assert any(m["internal"] and "客户很急" in m["body"] for m in staff_items)


async def test_non_member_gets_403_in_api_and_console(live: LiveServer) -> None:
    _sid, group_id = await _chat(live)
    async with live.client() as c:
        group = (await c.get(f"/api/v1/groups/{group_id}", headers=await live.token("manager1"))).json()
    members = {m["staff_id"] for m in group["members"]}
    from bot.teams.models import Staff

    async with live.rt.maker() as session:
        outsider = await session.scalar(
            select(Staff.username).where(Staff.id.not_in(members), Staff.role.in_(["sales", "service"]))
        )
    assert outsider
    async with live.client() as c:
        token = await live.token(outsider)
        for path in (f"/api/v1/groups/{group_id}", f"/api/v1/groups/{group_id}/messages"):
            assert (await c.get(path, headers=token)).status_code == 403
        r = await c.post(f"/api/v1/groups/{group_id}/messages", json={"body": "hi"}, headers=token)
        assert r.status_code == 403
        assert (await c.get("/api/v1/groups", headers=token)).json()["items"] == []
    async with live.client(follow_redirects=True) as console:
        page = await console.get("/console/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        await console.post(
            "/console/login", data={"username": outsider, "password": "demo-pass-123", "csrf": csrf}
        )
        r = await console.get(f"/console/groups/{group_id}")
        assert r.status_code == 403


async def test_bad_input_gets_clear_4xx_and_stores_nothing(live: LiveServer) -> None:
    sid, _group_id = await _chat(live)
    before = await _counts(live)
    chat = {"X-Webchat-Session": sid}
    async with live.client() as c:
        cases = [
            (
                await c.post("/api/v1/webchat/messages", json={"text": "   "}, headers=chat),
                422,
                "message.empty",
            ),
            (
                await c.post("/api/v1/webchat/messages", json={"text": "长" * 4097}, headers=chat),
                422,
                "message.too_long",
            ),
            (
                await c.post(
                    "/api/v1/webchat/messages",
                    content=b"{not json",
                    headers={**chat, "Content-Type": "application/json"},
                ),
                422,
                None,
            ),
            (
                await c.post(
                    "/api/v1/webchat/messages", json={"text": "hi"}, headers={"X-Webchat-Session": "nope"}
                ),
                404,
                "session.unknown",
            ),
            (await c.post("/api/v1/webchat/messages", json={"text": "hi"}), 404, "session.unknown"),
            (
                await c.post("/api/v1/auth/token", json={"username": "manager1", "password": "wrong"}),
                401,
                "auth.invalid",
            ),
            (await c.get("/api/v1/groups", headers={"Authorization": "Bearer forged"}), 401, "auth.token"),
            (await c.get("/api/v1/groups"), 401, "auth.token"),
            (
                await c.post("/api/v1/webchat/buttons", json={"button": "explode"}, headers=chat),
                422,
                "button.unknown",
            ),
        ]
        for response, status, code in cases:
            assert response.status_code == status, (response.request.url, response.text)
            if code:
                assert response.json()["error"] == code
            else:
                assert "detail" in response.json()
    assert await _counts(live) == before


async def test_expired_session_is_refused(live: LiveServer) -> None:
    sid, _ = await _chat(live)
    async with live.rt.transaction() as session:
        chat = await session.get(WebchatSession, sid)
        assert chat is not None
        chat.expires_at = live.rt.clock.now() - timedelta(seconds=1)
    async with live.client() as c:
        r = await c.post(
            "/api/v1/webchat/messages", json={"text": "还在吗"}, headers={"X-Webchat-Session": sid}
        )
        assert r.status_code == 404 and r.json()["error"] == "session.expired"
