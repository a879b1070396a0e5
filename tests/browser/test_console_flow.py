"""In a real browser: staff answer from the console, the customer's web chat shows it live."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.browser.conftest import SCREENSHOTS
from tests.live import DEMO_PASSWORD, LiveServer

XSS = '<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>'


def _collect_errors(page: Page, errors: list[str]) -> None:
    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    def on_response(response: Any) -> None:
        if response.status >= 400:
            errors.append(f"HTTP {response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", on_response)


async def _login(page: Page, live: LiveServer, username: str) -> None:
    await page.goto(f"{live.url}/console/login?lang=en")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_contain_text(re.compile("cases", re.I))


async def _assignee_username(live: LiveServer) -> str:
    from sqlalchemy import select

    from bot.conversations.models import Case
    from bot.teams.models import Staff

    async with live.rt.maker() as session:
        case = await session.scalar(select(Case).order_by(Case.id.desc()).limit(1))
        assert case is not None and case.assignee_id is not None
        staff = await session.get(Staff, case.assignee_id)
        assert staff is not None
        return staff.username


async def test_reply_from_console_appears_live_in_web_chat(
    browser: Browser, contexts: list[Any], live: LiveServer
) -> None:
    customer_ctx = await browser.new_context(locale="zh-CN")
    staff_ctx = await browser.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    contexts.extend([customer_ctx, staff_ctx])
    errors: list[str] = []
    chat = await customer_ctx.new_page()
    _collect_errors(chat, errors)
    await chat.goto(f"{live.url}/chat?lang=zh-CN")
    await chat.fill("#name", "王芳")
    await chat.click("#start button[type=submit]")
    await chat.fill("#text", "我的车刹车有异响")
    await chat.click("#send")
    # The first test of a fresh CI machine: the first Chinese text loads jieba's dictionary and the
    # browser its CJK fonts. (A message dropped by a stale fetch also failed here once: see
    # test_live_refresh.py.)
    await expect(chat.locator("li.msg.customer")).to_have_count(1, timeout=20_000)
    await expect(chat.locator("li.msg.system")).to_contain_text("服务技师", timeout=20_000)

    staff_name = await _assignee_username(live)
    console = await staff_ctx.new_page()
    _collect_errors(console, errors)
    await _login(console, live, staff_name)
    await expect(console.locator("table.cases")).to_contain_text("我的车刹车有异响")
    await console.screenshot(path=str(SCREENSHOTS / "inbox.png"), full_page=True)
    await console.click("table.cases a")
    await expect(console.locator("#messages")).to_contain_text("我的车刹车有异响")

    reply = "您好，请问是低速刹车时有声音吗？我们可以安排上门检查。"
    await console.fill("#reply-body", reply)
    await console.click("#send")
    await expect(console.locator("#messages li.msg.staff")).to_contain_text("上门检查")
    await console.screenshot(path=str(SCREENSHOTS / "group.png"), full_page=True)

    # The customer's page was never reloaded: the reply arrives over server-sent events.
    staff_msg = chat.locator("li.msg.staff")
    await expect(staff_msg).to_contain_text("上门检查", timeout=10_000)
    await expect(staff_msg.locator(".who")).to_contain_text("服务技师")
    await chat.screenshot(path=str(SCREENSHOTS / "webchat.png"), full_page=True)
    assert errors == []


async def test_customer_xss_payload_is_shown_as_text(
    browser: Browser, contexts: list[Any], live: LiveServer
) -> None:
    ctx = await browser.new_context()
    contexts.append(ctx)
    errors: list[str] = []
    chat = await ctx.new_page()
    _collect_errors(chat, errors)
    await chat.goto(f"{live.url}/chat?lang=en")
    await chat.fill("#name", XSS)
    await chat.click("#start button[type=submit]")
    await chat.fill("#text", XSS)
    await chat.click("#send")
    await expect(chat.locator("li.msg.customer .body")).to_have_text(XSS)

    staff_name = await _assignee_username(live)
    console = await ctx.new_page()
    _collect_errors(console, errors)
    await _login(console, live, staff_name)
    await expect(console.locator("table.cases")).to_contain_text("<img src=x")
    await console.click("table.cases a")
    await expect(console.locator("#messages li.msg.customer .body")).to_have_text(XSS)
    flags: Any = await console.evaluate("window.__xss")
    assert flags is None and await chat.evaluate("window.__xss") is None
    assert await console.locator("#messages img").count() == 0
    assert errors == []
