"""In a real browser: what arrives while a live page is fetching is never dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page, Response, Route, expect

from tests.browser.test_console_flow import _assignee_username, _login
from tests.live import LiveServer


class StaleFetches:
    """Holds the page's fetches matching `pattern` until `release()`, answered as they were at first.

    The server answers at once (before the new message exists); the page sees that answer only after
    the message was stored and announced, so the refreshes asked for meanwhile land while a stale
    fetch is in flight (the race a CI run hit on 2026-12-07).
    """

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.held = 0

    async def install(self, page: Page, pattern: str) -> None:
        await page.route(pattern, self._hold)

    async def _hold(self, route: Route) -> None:
        # Decided as the page asks, not once the server answered: the message's POST may finish first.
        stale = not self.released.is_set()
        response = await route.fetch()
        if stale:
            self.held += 1
            await self.released.wait()
            await asyncio.sleep(0.5)  # the live event arrives meanwhile
        await route.fulfill(response=response)

    def release(self) -> None:
        self.released.set()


async def test_web_chat_shows_a_message_sent_during_a_fetch(
    browser: Browser, contexts: list[Any], live: LiveServer
) -> None:
    ctx = await browser.new_context(locale="en-US")
    contexts.append(ctx)
    chat = await ctx.new_page()
    await chat.goto(f"{live.url}/chat?lang=en")
    stale = StaleFetches()
    await stale.install(chat, "**/api/v1/webchat/messages?after=*")

    def on_response(response: Response) -> None:
        if response.request.method == "POST" and response.url.endswith("/webchat/messages"):
            stale.release()

    chat.on("response", on_response)
    # No composer before the chat has a session (a message sent then would be refused).
    await expect(chat.locator("#composer")).to_be_hidden()
    await chat.fill("#name", "Ada")
    await chat.click("#start button[type=submit]")
    await chat.fill("#text", "What does the first service cost?")
    await chat.click("#send")
    await expect(chat.locator("li.msg.customer")).to_have_count(1, timeout=10_000)
    assert stale.held, "no fetch was in flight when the message was sent: the race was not tested"


async def test_console_shows_a_message_arriving_during_a_fetch(
    browser: Browser, contexts: list[Any], live: LiveServer
) -> None:
    async with live.client() as customer:
        r = await customer.post("/api/v1/webchat/sessions", json={"display_name": "Lin", "locale": "en"})
        headers = {"X-Webchat-Session": r.json()["session_id"]}
        first = {"text": "My brakes squeal"}
        r = await customer.post("/api/v1/webchat/messages", json=first, headers=headers)
        assert r.status_code == 201, r.text
        ctx = await browser.new_context(locale="en-US")
        contexts.append(ctx)
        console = await ctx.new_page()
        await _login(console, live, await _assignee_username(live))
        stale = StaleFetches()
        await stale.install(console, "**/console/groups/*/messages?after=*")
        await console.click("table.cases a")
        await expect(console.locator("#messages")).to_contain_text("My brakes squeal")
        for _ in range(100):  # the fetch the live stream's opening asks for is being held
            if stale.held:
                break
            await asyncio.sleep(0.05)
        r = await customer.post("/api/v1/webchat/messages", json={"text": "Since Monday"}, headers=headers)
        assert r.status_code == 201, r.text
        stale.release()
        await expect(console.locator("#messages")).to_contain_text("Since Monday", timeout=10_000)
        assert stale.held, "no fetch was in flight when the message arrived: the race was not tested"
