"""Console admin pages through real HTTP: access, staff lifecycle, knowledge base, SLA policies, CSRF, XSS.

One server per database backend serves every test of this module (their data does not overlap), which
keeps the module fast; tests run in file order on a module-scoped event loop.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy import func, select

from bot.factory import build_runtime, close_runtime
from bot.migrate import upgrade_async
from bot.settings import Settings
from bot.teams.models import AuditLog, Staff
from escalation.policy_store import SlaPolicyVersion, file_text, prepare_policies
from handlers.console.admin_telegram import normalize_checks, settings_rows
from knowledge.models import FaqEntry
from tests.conftest import PG_URL, drop_pg_database, make_pg_database, need, settings_for
from tests.live import DEMO_PASSWORD, LiveServer, serve

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def admin_backend(request: pytest.FixtureRequest) -> str:
    """Both databases (PostgreSQL only when configured)."""
    if request.param == "postgresql":
        need(PG_URL, "BUTLER_TEST_DATABASE_URL")
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(admin_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """The real app behind uvicorn on a fresh migrated database, shared by this module's tests."""
    if admin_backend == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('admin')) / 'butler.db'}"
    else:
        assert PG_URL
        url = await make_pg_database(PG_URL)
    try:
        await upgrade_async(url)
        async with serve(settings_for(url)) as server:
            yield server
    finally:
        if admin_backend == "postgresql" and PG_URL:
            await drop_pg_database(PG_URL, url)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """New and reset passwords hashed with cheap Argon2 parameters (verification reads them from the hash)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr("bot.teams.admin.hash_password", cheap.hash)


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def console(live: LiveServer, username: str, password: str = DEMO_PASSWORD) -> httpx.AsyncClient:
    """A signed-in console client (redirects not followed, so status codes stay visible)."""
    client = live.client()
    page = await client.get("/console/login")
    r = await client.post(
        "/console/login", data={"username": username, "password": password, "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303, r.text
    await client.get("/console/admin/staff?lang=en")  # the UI language sticks to the session
    return client


async def token_of(client: httpx.AsyncClient, path: str = "/console/admin/staff") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def staff_id(live: LiveServer, username: str) -> int:
    async with live.rt.maker() as session:
        sid = await session.scalar(select(Staff.id).where(Staff.username == username))
    assert sid is not None
    return int(sid)


async def audit_actions(live: LiveServer) -> list[str]:
    async with live.rt.maker() as session:
        return list((await session.scalars(select(AuditLog.action).order_by(AuditLog.id))).all())


def secret_of(page: str) -> str:
    m = re.search(r'id="secret-value">([^<]+)<', page)
    assert m, page
    return html.unescape(m.group(1))


@module_loop
async def test_admin_pages_render_for_admins_only(live: LiveServer) -> None:
    admin = await console(live, "admin")
    specialist = await console(live, "service1")
    async with live.rt.maker() as session:
        entry_id = await session.scalar(select(FaqEntry.id).limit(1))
    sid = await staff_id(live, "service1")
    pages = [
        "/console/admin/staff",
        "/console/admin/staff?role=service&active=all&q=wang",
        "/console/admin/staff/new",
        f"/console/admin/staff/{sid}",
        "/console/admin/sla",
        "/console/admin/kb",
        "/console/admin/kb?category=service&locale=en&enabled=yes&q=brake",
        "/console/admin/kb/new",
        f"/console/admin/kb/{entry_id}",
        "/console/admin/kb/preview?text=oil",
        "/console/admin/telegram",
        "/console/admin/audit",
        "/console/admin/audit?action=staff.&page=2",
    ]
    for path in pages:
        r = await admin.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert 'class="admin-nav"' in r.text or path.startswith("/console/admin/kb/preview")
        r = await specialist.get(path)
        assert r.status_code == 403, path
    r = await admin.get("/console/admin/kb/export?fmt=jsonl")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert (await specialist.get("/console/admin/kb/export")).status_code == 403
    # zh-CN UI
    r = await admin.get("/console/admin/staff?lang=zh-CN")
    assert "员工" in r.text and "审计日志" in r.text

    # Specialists cannot post either, even with their own valid CSRF token.
    token = csrf_of((await specialist.get("/console/")).text)
    r = await specialist.post("/console/admin/staff/new", data={"username": "x", "csrf": token})
    assert r.status_code == 403
    r = await specialist.post(f"/console/admin/staff/{sid}/password", data={"csrf": token})
    assert r.status_code == 403
    # An admin form post without the token is refused.
    r = await admin.post(f"/console/admin/staff/{sid}/deactivate", data={})
    assert r.status_code == 403
    r = await admin.post("/console/admin/sla", data={"yaml_text": "policies: []"})
    assert r.status_code == 403
    r = await admin.post(f"/console/admin/kb/{entry_id}/disable", data={"csrf": "forged"})
    assert r.status_code == 403
    async with live.rt.maker() as session:
        assert await session.scalar(select(Staff.active).where(Staff.id == sid)) is True
        assert await session.scalar(select(FaqEntry.enabled).where(FaqEntry.id == entry_id)) is True
    # Anonymous visitors are sent to the login page.
    async with live.client() as anon:
        r = await anon.get("/console/admin/staff")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
    await admin.aclose()
    await specialist.aclose()


@module_loop
async def test_staff_lifecycle(live: LiveServer) -> None:
    admin = await console(live, "admin")
    token = await token_of(admin, "/console/admin/staff/new")
    form = {
        "username": "newbie",
        "display_name": XSS,
        "role": "sales",
        "languages": ["en"],
        "dealer": "",
        "capacity": "12",
        "on_duty": "1",
        "csrf": token,
    }
    # Bad input is refused with a message and the typed values stay in the form.
    r = await admin.post("/console/admin/staff/new", data={**form, "username": "butler1"})
    assert r.status_code == 422 and "This username is taken." in r.text
    assert 'value="butler1"' in r.text and 'value="12"' in r.text
    r = await admin.post("/console/admin/staff/new", data={**form, "capacity": "lots"})
    assert r.status_code == 422 and "Capacity must be a whole number" in r.text
    r = await admin.post("/console/admin/staff/new", data={**form, "languages": []})
    assert r.status_code == 422 and "at least one language" in r.text
    assert XSS not in r.text and "&lt;script&gt;alert(&#34;x&#34;)" in r.text

    r = await admin.post("/console/admin/staff/new", data=form)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    first_password = secret_of(r.text)
    assert XSS not in r.text and "&lt;script&gt;" in r.text
    new_id = await staff_id(live, "newbie")

    listing = await admin.get("/console/admin/staff?q=newbie")
    assert "&lt;script&gt;" in listing.text and "<script>alert" not in listing.text

    # The new account signs in with the password shown once.
    newbie = await console(live, "newbie", first_password)
    assert (await newbie.get("/console/")).status_code == 200
    assert (await newbie.get("/console/admin/staff")).status_code == 403

    # Edit role, capacity, languages, on duty.
    r = await admin.post(
        f"/console/admin/staff/{new_id}",
        data={
            "display_name": "Newbie Li",
            "role": "service",
            "languages": ["zh-CN", "en"],
            "dealer": "",
            "capacity": "7",
            "csrf": token,
        },
    )
    assert r.status_code == 303
    async with live.rt.maker() as session:
        staff = await session.get(Staff, new_id)
        assert staff is not None
        assert (staff.role, staff.capacity, staff.languages, staff.on_duty) == (
            "service",
            7,
            ["zh-CN", "en"],
            False,
        )
    r = await admin.post(
        f"/console/admin/staff/{new_id}",
        data={"display_name": "", "role": "service", "languages": ["en"], "capacity": "7", "csrf": token},
    )
    assert r.status_code == 422 and "The name must be 1 to 200 characters." in r.text

    # Reset password: the new one is shown once, the user's existing session ends.
    r = await admin.post(f"/console/admin/staff/{new_id}/password", data={"csrf": token})
    assert r.status_code == 200
    second_password = secret_of(r.text)
    assert second_password != first_password
    r = await newbie.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    await newbie.aclose()
    login = live.client()
    page = await login.get("/console/login")
    r = await login.post(
        "/console/login",
        data={"username": "newbie", "password": first_password, "csrf": csrf_of(page.text)},
    )
    assert r.status_code == 401
    await login.aclose()
    newbie = await console(live, "newbie", second_password)

    # Deactivate: the open session ends and the account can no longer sign in.
    r = await admin.post(f"/console/admin/staff/{new_id}/deactivate", data={"csrf": token})
    assert r.status_code == 303
    assert (await newbie.get("/console/")).status_code == 303
    login = live.client()
    page = await login.get("/console/login")
    r = await login.post(
        "/console/login",
        data={"username": "newbie", "password": second_password, "csrf": csrf_of(page.text)},
    )
    assert r.status_code == 401
    await login.aclose()
    assert "newbie" not in (await admin.get("/console/admin/staff")).text
    assert "newbie" in (await admin.get("/console/admin/staff?active=no")).text
    r = await admin.post(f"/console/admin/staff/{new_id}/reactivate", data={"csrf": token})
    assert r.status_code == 303

    # The admin cannot lock themselves out.
    me = await staff_id(live, "admin")
    r = await admin.post(f"/console/admin/staff/{me}/deactivate", data={"csrf": token})
    assert r.status_code == 422 and "own account" in r.text

    actions = await audit_actions(live)
    for action in ("staff.create", "staff.update", "staff.password_reset", "staff.deactivate"):
        assert action in actions
    r = await admin.get(f"/console/admin/audit?object_type=staff&object_id={new_id}")
    assert "staff.password_reset" in r.text and "&lt;script&gt;" in r.text
    assert first_password not in r.text and second_password not in r.text
    r = await admin.get("/console/admin/audit?actor=admin&action=staff.deac")
    assert "staff.deactivate" in r.text and "staff.create" not in r.text
    await admin.aclose()
    await newbie.aclose()


async def preview(client: httpx.AsyncClient, text: str, locale: str = "en") -> tuple[str, str]:
    r = await client.get("/console/admin/kb/preview", params={"text": text, "plocale": locale})
    assert r.status_code == 200
    m = re.search(r'data-decision="(\w+)" data-top="([^"]*)"', r.text)
    assert m, r.text
    return m.group(1), m.group(2)


async def wait_preview(
    client: httpx.AsyncClient, text: str, want: tuple[str, str] | None, avoid: str = ""
) -> None:
    for _ in range(100):
        got = await preview(client, text)
        if (want is not None and got == want) or (
            want is None and not (got[0] == "answer" and got[1] == avoid)
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"preview for {text!r} stayed {got}")


@module_loop
async def test_knowledge_base_edit_preview_import(live: LiveServer) -> None:
    admin = await console(live, "admin")
    token = await token_of(admin, "/console/admin/kb/new")
    question = "Can the butler polish the hubcaps of my zeppelin"
    entry = {
        "topic": "zeppelin_hubcaps",
        "category": "service",
        "locale": "en",
        "questions": f"{question}\nzeppelin hubcap polishing\nhubcaps polish zeppelin service",
        "answer": "Yes: zeppelin hubcaps are polished at every service. " + XSS,
        "csrf": token,
    }
    r = await admin.post("/console/admin/kb/new", data={**entry, "questions": "  \n "})
    assert r.status_code == 422 and "at least one phrasing" in r.text
    assert "zeppelin_hubcaps" in r.text  # the form keeps what was typed

    r = await admin.post("/console/admin/kb/new", data=entry)
    assert r.status_code == 303, r.text
    entry_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    r = await admin.post("/console/admin/kb/new", data=entry)
    assert r.status_code == 409 and "already exists" in r.text

    # Every process rebuilds its index after the change; this one is watched through the preview.
    await wait_preview(admin, question, ("answer", "zeppelin_hubcaps"))
    page = await admin.get("/console/admin/kb/preview", params={"text": question, "plocale": "en"})
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    listing = await admin.get("/console/admin/kb?q=zeppelin")
    assert "zeppelin_hubcaps" in listing.text and "<img src=x" not in listing.text

    r = await admin.post(f"/console/admin/kb/{entry_id}/disable", data={"csrf": token})
    assert r.status_code == 303
    await wait_preview(admin, question, None, avoid="zeppelin_hubcaps")
    r = await admin.post(f"/console/admin/kb/{entry_id}/enable", data={"csrf": token})
    assert r.status_code == 303
    r = await admin.post(
        f"/console/admin/kb/{entry_id}", data={**entry, "answer": "Polished at every service."}
    )
    assert r.status_code == 303
    assert {"faq.create", "faq.disable", "faq.enable", "faq.update"} <= set(await audit_actions(live))

    # A bad import changes nothing: the first line is fine, the second is not.
    async with live.rt.maker() as session:
        before = await session.scalar(select(func.count()).select_from(FaqEntry))
    good = '{"topic": "import_ok", "category": "general", "locale": "en", "questions": ["q"], "answer": "a"}'
    bad = '{"topic": "import_bad", "category": "nonsense", "locale": "en", "questions": ["q"], "answer": "a"}'
    for name, content in (
        ("kb.jsonl", f"{good}\n{bad}\n"),
        ("kb.jsonl", f"{good}\n{{not json\n"),
        ("kb.yaml", "- topic: [unclosed\n"),
        ("kb.txt", good),
        (
            "kb.jsonl",
            f'{{"topic": "{"x" * 80}", "category": "general", "locale": "en", '
            '"questions": ["q"], "answer": "a"}\n',
        ),
    ):
        r = await admin.post(
            "/console/admin/kb/import",
            data={"csrf": token},
            files={"file": (name, content.encode(), "text/plain")},
        )
        assert r.status_code == 422, (name, content, r.text[:300])
        assert 'class="adm-error"' in r.text
    async with live.rt.maker() as session:
        assert await session.scalar(select(func.count()).select_from(FaqEntry)) == before
        assert await session.scalar(select(FaqEntry.id).where(FaqEntry.topic == "import_ok")) is None
    r = await admin.post(
        "/console/admin/kb/import",
        data={"csrf": token},
        files={"file": ("kb.jsonl", good.encode(), "text/plain")},
    )
    assert r.status_code == 303 and "imported:1" in r.headers["location"]

    export = await admin.get("/console/admin/kb/export?fmt=yaml")
    assert "zeppelin_hubcaps" in export.text and "import_ok" in export.text

    # Save as FAQ: a staff reply becomes a prefilled new-entry form.
    message_id = await _staff_reply(live, "我的车刹车有异响", "请到店检查刹车片，通常十分钟可以完成。")
    r = await admin.post(f"/console/admin/kb/from-message/{message_id}", data={"csrf": token})
    assert r.status_code == 200, r.text
    assert "请到店检查刹车片" in r.text and "我的车刹车有异响" in r.text
    assert 'value="zh-CN" selected' in r.text
    r = await admin.post(f"/console/admin/kb/from-message/{message_id}", data={})
    assert r.status_code == 403
    r = await admin.post("/console/admin/kb/from-message/999999", data={"csrf": token})
    assert r.status_code == 404
    await admin.aclose()


async def _staff_reply(live: LiveServer, question: str, answer: str) -> int:
    async with live.client() as c:
        r = await c.post("/api/v1/webchat/sessions", json={"display_name": "王先生", "locale": "zh-CN"})
        chat = {"X-Webchat-Session": r.json()["session_id"]}
        r = await c.post(
            "/api/v1/webchat/messages", json={"text": question, "client_message_id": "q1"}, headers=chat
        )
        assert r.status_code == 201 and r.json()["case_id"] is not None
        manager = await live.token("manager1")
        group = (await c.get("/api/v1/groups", headers=manager)).json()["items"][0]
        detail = (await c.get(f"/api/v1/groups/{group['id']}", headers=manager)).json()
        member = next(m for m in detail["members"] if m["role"] == "service")
        async with live.rt.maker() as session:
            username = await session.scalar(select(Staff.username).where(Staff.id == member["staff_id"]))
        r = await c.post(
            f"/api/v1/groups/{group['id']}/messages",
            json={"body": answer, "internal": False},
            headers=await live.token(str(username)),
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


@module_loop
async def test_sla_policy_edit(live: LiveServer) -> None:
    admin = await console(live, "admin")
    page = await admin.get("/console/admin/sla")
    token = csrf_of(page.text)
    assert 'data-policy="complaint-urgent"' in page.text and "shanghai_office" in page.text
    original, _ = file_text(live.rt.settings.sla_policies_file)

    for bad, message in (
        ("policies: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        (original.replace("calendar: 24x7", "calendar: mars_office"), "unknown calendar"),
        (original.replace("resolution: 24h}", "resolution: soon}"), "bad duration"),
        (original.replace("match: {}", "match: {category: sales}"), "last policy must match everything"),
    ):
        r = await admin.post("/console/admin/sla", data={"yaml_text": bad, "comment": "try", "csrf": token})
        assert r.status_code == 422, bad
        assert message in html.unescape(r.text), r.text[-2000:]
        assert bad.splitlines()[0] in html.unescape(r.text)  # the editor keeps the text
    async with live.rt.maker() as session:
        assert await session.scalar(select(func.count()).select_from(SlaPolicyVersion)) == 0
    assert live.rt.sla.policies.get("default").targets["first_response"] == 300  # type: ignore[union-attr]

    edited = original.replace("first_response: 5m", "first_response: 7m")
    r = await admin.post(
        "/console/admin/sla", data={"yaml_text": edited, "comment": "slower nights", "csrf": token}
    )
    assert r.status_code == 303, r.text
    policy = live.rt.sla.policies.get("default")
    assert policy is not None and policy.targets["first_response"] == 420
    assert live.rt.sla.policies.source == "database version 1"
    page = await admin.get("/console/admin/sla")
    assert "database version 1" in page.text and "slower nights" in page.text and "7m" in page.text
    async with live.rt.maker() as session:
        row = await session.scalar(select(AuditLog).where(AuditLog.action == "sla.policies.save"))
        assert (
            row is not None
            and row.data["version"] == 1
            and row.actor_staff_id == await staff_id(live, "admin")
        )

    # Another process (or a restart) loads the stored version over the file.
    other = build_runtime(live.rt.settings)
    try:
        assert other.sla.policies.get("default").targets["first_response"] == 300  # type: ignore[union-attr]
        await prepare_policies(other)
        assert other.sla.policies.get("default").targets["first_response"] == 420  # type: ignore[union-attr]
    finally:
        await close_runtime(other)
    await admin.aclose()


@module_loop
async def test_telegram_check_and_link(live: LiveServer) -> None:
    tg_models = pytest.importorskip("bot.tg.models")  # the Telegram channel
    pytest.importorskip("handlers.telegram.cli")
    link_tokens = tg_models.StaffLinkToken

    admin = await console(live, "admin")
    page = await admin.get("/console/admin/telegram")
    token = csrf_of(page.text)
    r = await admin.post("/console/admin/telegram/check", data={"csrf": token})
    assert r.status_code == 200 and 'id="tg-checks"' in r.text and "no bot token" in r.text
    assert (await admin.post("/console/admin/telegram/check", data={})).status_code == 403

    sid = await staff_id(live, "sales1")
    r = await admin.post(f"/console/admin/staff/{sid}/telegram-link", data={"csrf": token})
    assert r.status_code == 422 and "Telegram is not configured" in html.unescape(r.text)
    live.rt.settings.telegram_token = "123456:TEST"  # as if configured; the link needs no Telegram call
    try:
        page = await admin.get(f"/console/admin/staff/{sid}")
        assert "/telegram-link" in page.text
        r = await admin.post(f"/console/admin/staff/{sid}/telegram-link", data={"csrf": token})
    finally:
        live.rt.settings.telegram_token = None
    assert r.status_code == 200, r.text
    link = secret_of(r.text)
    assert link.startswith("https://t.me/") and "?start=link_" in link
    async with live.rt.maker() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(link_tokens).where(link_tokens.staff_id == sid)
            )
            == 1
        )
    assert "staff.telegram_link_issued" in await audit_actions(live)
    await admin.aclose()


def test_telegram_settings_are_masked_and_checks_normalized() -> None:

    settings = Settings(
        database_url="sqlite+aiosqlite://",
        telegram_token="123456:SECRET-PART",
        telegram_webhook_secret="hush",
    )
    shown = " ".join(str(v) for _, v, _ in settings_rows(settings))
    assert "123456:…" in shown and "SECRET" not in shown and "hush" not in shown
    Finding = pytest.importorskip("handlers.telegram.cli").Finding

    rows = normalize_checks(
        [Finding(True, "bot @demo_bot answers getMe"), Finding(False, "topics are off", "turn on")]
    )
    assert rows == [
        {"name": "bot @demo_bot answers getMe", "ok": True, "detail": ""},
        {"name": "topics are off", "ok": False, "detail": "turn on"},
    ]
