"""Access control matrix: every route and API endpoint x every role gets the expected answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.conversations.models import Case, Message
from bot.teams.models import Dealer, Staff
from knowledge.models import FaqEntry
from tests.live import DEMO_HASH, DEMO_PASSWORD, LiveServer

ROLES = ["anon", "member", "outsider", "lead", "lead_other", "manager", "admin"]
STAFF_ROLES = ROLES[1:]
SUPERVISORS = {"lead", "lead_other", "manager", "admin"}

# Route classes: who may use them. Every route of the app must be classified here.
PUBLIC = "public"  # anyone (customers, probes)
STAFF = "staff"  # any signed-in staff member
GROUP = "group"  # members of the group, leads of its dealer, managers, admins
DASHBOARD = "dashboard"  # leads, managers, admins
ADMIN = "admin"  # admins only

RULES: list[tuple[str, str]] = [
    (r"^/(healthz|readyz|metrics|chat|openapi\.json|docs.*|redoc|)$", PUBLIC),
    (r"^/static/", PUBLIC),
    (r"^/api/v1/webchat/", PUBLIC),
    (r"^/api/v1/auth/token$", PUBLIC),
    (r"^/telegram/", PUBLIC),
    (r"^/console/(login|logout)$", PUBLIC),
    (r"^/console/(|events|inbox/cases)$", STAFF),
    (r"^/api/v1/(me|groups)$", STAFF),
    (r"^/(console|api/v1)/(groups|cases)/", GROUP),
    (r"^/console/dashboard", DASHBOARD),
    (r"^/console/admin", ADMIN),
]


def classify(path: str) -> str:
    for pattern, kind in RULES:
        if re.match(pattern, path):
            return kind
    raise AssertionError(f"route {path} is not in the access matrix: classify it in RULES")


def allowed(kind: str, role: str) -> bool:
    return {
        PUBLIC: True,
        STAFF: role != "anon",
        GROUP: role in ("member", "lead", "manager", "admin"),
        DASHBOARD: role in SUPERVISORS,
        ADMIN: role == "admin",
    }[kind]


def app_routes(live: LiveServer) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (mounts and docs excluded)."""
    found: list[tuple[str, str]] = []
    for route in live.app.router.routes:
        contexts = route.effective_route_contexts() if type(route).__name__ == "_IncludedRouter" else [route]
        for ctx in contexts:
            methods = getattr(ctx, "methods", None) or set()
            for method in sorted(methods - {"HEAD"}):
                found.append((method, ctx.path))
    return found


@dataclass
class World:
    ids: dict[str, int]
    clients: dict[str, httpx.AsyncClient]
    csrf: dict[str, str]
    tokens: dict[str, dict[str, str]]


async def _world(live: LiveServer) -> World:
    rt = live.rt
    async with live.client() as c:
        sid = (
            await c.post("/api/v1/webchat/sessions", json={"display_name": "Matrix", "locale": "zh-CN"})
        ).json()["session_id"]
        await c.post(
            "/api/v1/webchat/messages", json={"text": "我的车刹车有异响"}, headers={"X-Webchat-Session": sid}
        )
    async with rt.transaction() as session:
        case = await session.scalar(select(Case).order_by(Case.id.desc()).limit(1))
        assert case is not None and case.assignee_id is not None
        member = await session.get(Staff, case.assignee_id)
        assert member is not None
        outsider = await session.scalar(
            select(Staff).where(Staff.role == member.role, Staff.id != member.id).order_by(Staff.id)
        )
        assert outsider is not None
        other = Dealer(code="DM-BJ02", name="Demo Motors Beijing", timezone="Asia/Shanghai")
        session.add(other)
        await session.flush()
        now = rt.clock.now()
        lead_other = Staff(
            username="lead_bj",
            display_name="Other Lead",
            role="lead",
            languages=["zh-CN"],
            dealer_id=other.id,
            password_hash=DEMO_HASH,
            created_at=now,
        )
        victim = Staff(
            username="victim",
            display_name="Victim",
            role="sales",
            languages=["zh-CN"],
            dealer_id=member.dealer_id,
            password_hash=DEMO_HASH,
            created_at=now,
        )
        session.add_all([lead_other, victim])
        await session.flush()
        message = await session.scalar(select(Message).where(Message.group_id == case.group_id).limit(1))
        entry = await session.scalar(select(FaqEntry.id).limit(1))
        assert message is not None and entry is not None
        ids = {
            "group_id": case.group_id,
            "case_id": case.id,
            "message_id": message.id,
            "entry_id": entry,
            "staff_id": victim.id,
        }
        usernames = {
            "member": member.username,
            "outsider": outsider.username,
            "lead": "lead1",
            "lead_other": "lead_bj",
            "manager": "manager1",
            "admin": "admin",
        }
    clients: dict[str, httpx.AsyncClient] = {"anon": live.client()}
    csrf: dict[str, str] = {"anon": ""}
    tokens: dict[str, dict[str, str]] = {"anon": {}}
    for role, username in usernames.items():
        client = live.client()
        page = await client.get("/console/login")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        r = await client.post(
            "/console/login", data={"username": username, "password": DEMO_PASSWORD, "csrf": token}
        )
        assert r.status_code == 303, (role, r.status_code)
        inbox = await client.get("/console/")
        csrf[role] = inbox.text.split('name="csrf" value="')[1].split('"')[0]
        clients[role] = client
        tokens[role] = await live.token(username)
    return World(ids, clients, csrf, tokens)


def _fill(path: str, ids: dict[str, int]) -> str:
    path = re.sub(r"\{(\w+)(:int)?\}", lambda m: str(ids.get(m.group(1), 1)), path)
    return path.replace("{name}", "htmx.min.js")


def _denied(kind: str, role: str, response: httpx.Response) -> bool:
    if role == "anon" and kind != PUBLIC:
        if response.status_code == 303:
            return "/console/login" in response.headers.get("location", "")
        return response.status_code == 401
    return response.status_code in (401, 403)


SKIP = {("POST", "/console/logout"), ("POST", "/console/login")}
STREAMS = {
    "/console/events",
    "/console/groups/{group_id}/events",
    "/console/dashboard/events",
    "/api/v1/webchat/events",
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_access_matrix(live: LiveServer) -> None:
    world = await _world(live)
    routes = [r for r in app_routes(live) if r not in SKIP]
    failures: list[str] = []
    checked = 0
    try:
        for role in ROLES:
            client = world.clients[role]
            for method, template in routes:
                kind = classify(template)
                if kind == PUBLIC:
                    continue
                path = _fill(template, world.ids)
                headers = dict(world.tokens[role]) if template.startswith("/api/") else {}
                data: dict[str, Any] = {
                    "csrf": world.csrf[role],
                    "body": "matrix",
                    "role": "sales",
                    "to_staff_id": str(world.ids["staff_id"]),
                }
                if template in STREAMS:
                    async with client.stream(method, path, headers=headers) as response:
                        status_response = response
                elif method == "GET":
                    status_response = await client.get(path, headers=headers)
                elif template.startswith("/api/"):
                    status_response = await client.post(
                        path,
                        headers=headers,
                        json={"body": "matrix", "role": "sales", "to_staff_id": world.ids["staff_id"]},
                    )
                else:
                    status_response = await client.post(path, headers=headers, data=data)
                checked += 1
                denied = _denied(kind, role, status_response)
                if allowed(kind, role) == denied or status_response.status_code >= 500:
                    failures.append(f"{role:<10} {method} {template} -> {status_response.status_code}")
    finally:
        for client in world.clients.values():
            await client.aclose()
    assert failures == [], "\n".join(failures)
    assert checked >= 300
