"""Webhook mode: the secret is checked, updates are committed before 200, redelivery is harmless."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select

from bot.app import create_app
from bot.conversations.models import InboundReceipt, Message
from bot.settings import Settings
from bot.teams.models import Customer
from bot.tg.models import TelegramUpdate
from tests.botapi import SECRET_HEADER, BotApiServer, GroupClient
from tests.botapi.media import png_bytes
from tests.botapi.ptb import ptb_bot
from tests.live import LiveServer
from tests.telegram.conftest import SECRET, STAFF_CHAT

Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]


@asynccontextmanager
async def webhook_butler(butler: Butler, botapi: BotApiServer) -> AsyncIterator[LiveServer]:
    """The app in webhook mode, registered with the test server (as setWebhook would on deploy)."""
    async with butler(telegram_mode="webhook") as live:
        async with ptb_bot(botapi) as bot:
            assert await bot.set_webhook(f"{live.url}/telegram/webhook", secret_token=SECRET)
        yield live


async def count(live: LiveServer, model: Any) -> int:
    """Rows of a table."""
    async with live.rt.maker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def update_json(update_id: int, user_id: int, message_id: int, text: str) -> dict[str, Any]:
    """A private text message update as Telegram sends it."""
    user = {"id": user_id, "is_bot": False, "first_name": "Zhou", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_790_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Zhou"},
            "from": user,
            "text": text,
        },
    }


async def test_secret_is_required_and_nothing_is_stored_without_it(
    butler: Butler, botapi: BotApiServer
) -> None:
    """Missing or wrong secret: 403, no receipt, no customer, no message."""
    async with webhook_butler(butler, botapi) as live, live.client() as client:
        body = update_json(900001, 5101, 1, "hello")
        missing = await client.post("/telegram/webhook", json=body)
        wrong = await client.post("/telegram/webhook", json=body, headers={SECRET_HEADER: "nope"})
        assert (missing.status_code, wrong.status_code) == (403, 403)
        assert await count(live, TelegramUpdate) == 0
        assert await count(live, Customer) == 0 and await count(live, Message) == 0


async def test_one_update_three_times_is_processed_once(butler: Butler, botapi: BotApiServer) -> None:
    """The same update three times (and the same message under a new update_id): one message stored."""
    botapi.user(5102, "Zhou", language_code="en", started=True)
    async with webhook_butler(butler, botapi) as live, live.client() as client:
        headers = {SECRET_HEADER: SECRET}
        body = update_json(900002, 5102, 7, "Does the E7 come in green?")
        answers = [await client.post("/telegram/webhook", json=body, headers=headers) for _ in range(3)]
        again = update_json(900003, 5102, 7, "Does the E7 come in green?")
        answers.append(await client.post("/telegram/webhook", json=again, headers=headers))
        assert [a.status_code for a in answers] == [200, 200, 200, 200]
        assert [a.json()["outcome"] for a in answers] == ["processed", "duplicate", "duplicate", "processed"]
        assert await count(live, TelegramUpdate) == 2
        assert await count(live, InboundReceipt) == 1
        async with live.rt.maker() as session:
            customer_messages = await session.scalar(
                select(func.count()).select_from(Message).where(Message.author_kind == "customer")
            )
        assert customer_messages == 1


async def test_failure_before_commit_is_redelivered_then_processed_once(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """getFile fails while a photo is handled: 503 (transient), nothing kept; retried; stored once."""
    customer = botapi.user(5103, "Qian", language_code="en")
    async with webhook_butler(butler, botapi) as live:
        await customer.send_command("/start")
        [hello] = await customer.wait_for_reply(1)
        assert hello.text is not None and hello.text.startswith("Hello Qian")
        botapi.faults.fail_next("getFile", status=500)
        sent = await customer.send_photo(png_bytes(3, 3), caption="scratch on the door")
        await botapi.wait_until(lambda: any(m.method == "sendPhoto" for m in staff_group.sent()), timeout=10)
        [update_id] = [
            d.update_id
            for d in botapi.updates_delivered
            if d.update.get("message", {}).get("message_id") == sent["message_id"]
        ][:1]
        attempts = [a.status for a in botapi.delivery_attempts(update_id)]
        async with live.rt.maker() as session:
            photos = (await session.scalars(select(Message).where(Message.author_kind == "customer"))).all()
            receipt = await session.get(TelegramUpdate, update_id)
    assert attempts == [503, 200]
    assert len(photos) == 1 and photos[0].attachments[0]["type"] == "photo"
    assert photos[0].body == "scratch on the door" and photos[0].attachments[0]["path"]
    assert receipt is not None and receipt.status == "done"
    [topic] = botapi.topics(STAFF_CHAT)
    mirrored = [m for m in staff_group.sent(topic.message_thread_id) if m.method == "sendPhoto"]
    assert len(mirrored) == 1 and mirrored[0].text == "👤 Qian\nscratch on the door"


async def test_no_webhook_route_when_telegram_is_off(sqlite_url: str) -> None:
    """Without a token there is no webhook route at all."""
    app = create_app(Settings(database_url=sqlite_url, telegram_token=None, run_workers=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://butler") as client:
        response = await client.post("/telegram/webhook", json={}, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 404
