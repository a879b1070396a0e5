"""The foundation's scenario through real HTTP: web chat -> team -> case -> console/API reply -> resolve."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import func, select

from bot.conversations.models import Message
from tests.live import LiveServer


async def _start_chat(c: httpx.AsyncClient, name: str = "王先生", locale: str = "zh-CN") -> str:
    r = await c.post("/api/v1/webchat/sessions", json={"display_name": name, "locale": locale})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


async def _first_event(url: str, session_id: str, ready: asyncio.Event) -> dict[str, object]:
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as c,
        c.stream("GET", "/api/v1/webchat/events", headers={"X-Webchat-Session": session_id}) as stream,
    ):
        ready.set()
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))
    raise AssertionError("stream ended")


async def test_brake_noise_scenario(live: LiveServer) -> None:
    async with live.client() as c:
        sid = await _start_chat(c)
        chat = {"X-Webchat-Session": sid}
        r = await c.post(
            "/api/v1/webchat/messages",
            json={"text": "我的车刹车有异响", "client_message_id": "m1"},
            headers=chat,
        )
        assert r.status_code == 201, r.text
        case_id = r.json()["case_id"]
        assert case_id is not None and not r.json()["duplicate"]

        manager = await live.token("manager1")
        groups = (await c.get("/api/v1/groups", headers=manager)).json()["items"]
        assert len(groups) == 1
        group = (await c.get(f"/api/v1/groups/{groups[0]['id']}", headers=manager)).json()
        roles = sorted(m["role"] for m in group["members"])
        assert roles == ["butler", "factory", "sales", "service"]
        service_member = next(m for m in group["members"] if m["role"] == "service")
        (case,) = group["cases"]
        assert case["category"] == "service" and case["assignee_id"] == service_member["staff_id"]

        # The service specialist signs into the console and sees the case in the inbox.
        staff = await _username(live, service_member["staff_id"])
        console = live.client(follow_redirects=True)
        login_page = await console.get("/console/login")
        csrf = _csrf(login_page.text)
        r = await console.post(
            "/console/login", data={"username": staff, "password": "demo-pass-123", "csrf": csrf}
        )
        assert r.status_code == 200 and "我的车刹车有异响" in r.text

        ready = asyncio.Event()
        listener = asyncio.create_task(_first_event(live.url, sid, ready))
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.2)
        group_page = await console.get(f"/console/groups/{group['id']}")
        r = await console.post(
            f"/console/groups/{group['id']}/reply",
            data={"body": "您好，请问异响是在低速刹车时出现吗？", "csrf": _csrf(group_page.text)},
        )
        assert r.status_code == 200
        event = await asyncio.wait_for(listener, 5)
        assert event["type"] == "message.new"

        items = (await c.get("/api/v1/webchat/messages", headers=chat)).json()["items"]
        reply = items[-1]
        assert reply["author_kind"] == "staff" and reply["body"].startswith("您好")
        assert reply["author_name"] == service_member["display_name"] and reply["author_role"] == "服务技师"
        assert reply["signature"] == f"{service_member['display_name']} · 服务技师"

        token = await live.token(staff)
        r = await c.post(f"/api/v1/cases/{case_id}/resolve", headers=token)
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        items = (await c.get("/api/v1/webchat/messages", headers=chat)).json()["items"]
        rating = items[-1]
        assert rating["buttons"][0]["id"] == "rate:5"
        r = await c.post(
            "/api/v1/webchat/buttons", json={"message_id": rating["id"], "button": "rate:5"}, headers=chat
        )
        assert r.json() == {"action": "rated", "case_id": case_id}
        await console.aclose()


async def _username(live: LiveServer, staff_id: int) -> str:
    from bot.teams.models import Staff

    async with live.rt.maker() as session:
        staff = await session.get(Staff, staff_id)
        assert staff is not None
        return staff.username


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_same_message_twice_is_stored_once(live: LiveServer) -> None:
    async with live.client() as c:
        sid = await _start_chat(c, "Ann", "en")
        body = {"text": "How often should I service my car?", "client_message_id": "dup-1"}
        first = await c.post("/api/v1/webchat/messages", json=body, headers={"X-Webchat-Session": sid})
        second = await c.post("/api/v1/webchat/messages", json=body, headers={"X-Webchat-Session": sid})
        assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    async with live.rt.maker() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.author_kind == "customer")
        )
    assert stored == 1
