"""Bad updates and blocked customers: logged, answered politely where possible, the bot keeps serving."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import func, select

from bot.conversations.models import Message
from bot.i18n import t
from bot.outbox.models import OutboxRow
from bot.teams.models import ChannelIdentity
from bot.tg.models import TelegramUpdate
from tests.botapi import BotApiServer, GroupClient
from tests.live import LiveServer
from tests.telegram.conftest import STAFF_CHAT, link_staff, open_case_of, staff_username

Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]
PRIVATE = "My card PIN is 4417, please call Li Wei"
PHONE = {"phone_number": "+8613800138000", "first_name": "Li"}


def private_message(user_id: int, message_id: int, **content: object) -> dict[str, object]:
    """A raw private message update body."""
    return {
        "message": {
            "message_id": message_id,
            "date": 1_790_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Sun"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Sun", "language_code": "en"},
            **content,
        }
    }


async def test_bad_updates_are_logged_answered_and_survived(
    butler: Butler, botapi: BotApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown types, missing fields, a huge text, a sticker, junk callback data; then /start works."""
    user = botapi.user(4401, "Sun", language_code="en", started=True)
    caplog.set_level(logging.INFO, logger="handlers.telegram")
    async with butler() as live:
        botapi.push_raw_update({"future_update_kind": {"x": 1}})
        # No chat, no sender; and no usable update_id: logged by id and kind, never by content.
        botapi.push_raw_update({"message": {"message_id": 1, "date": 0, "text": PRIVATE}})
        botapi.push_raw_update(
            {"update_id": "nope", "message": {"text": PRIVATE, "contact": PHONE, "chat": {"title": "Wei"}}}
        )
        botapi.push_raw_update(private_message(user.id, 2, text="x" * 20_000))
        botapi.push_raw_update(
            private_message(
                user.id,
                3,
                sticker={
                    "file_id": "s",
                    "file_unique_id": "u",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            )
        )
        botapi.push_raw_update(
            private_message(
                user.id,
                4,
                text="/nosuchcommand",
                entities=[{"type": "bot_command", "offset": 0, "length": 14}],
            )
        )
        too_long, sticker, unknown_command = await user.wait_for_reply(3)
        assert too_long.text == "That message is too long (limit 4096 characters); please split it up."
        assert sticker.text is not None and sticker.text.startswith("Sorry, I can't handle that kind")
        assert unknown_command.text is not None and unknown_command.text.startswith(
            "I'm your butler assistant"
        )
        await user.send_command("/start")
        [*_, hello] = await user.wait_for_reply(4)
        assert hello.text is not None and hello.text.startswith("Hello Sun")
        [menu_message] = [m for m in user.received() if m.buttons]
        junk = await user.press(menu_message, "zz:%%%", check=False)
        await junk.wait_answer()
        async with live.rt.maker() as session:
            kept = await session.scalar(
                select(func.count()).select_from(Message).where(Message.author_kind == "customer")
            )
            receipts = await session.scalar(select(func.count()).select_from(TelegramUpdate))
    assert kept == 0  # the huge text was refused, not stored
    assert receipts == 7  # every update with an integer id is accounted for, once
    logged = caplog.text
    assert "ignoring malformed update" in logged and "had no handler" in logged
    assert "without a valid update_id" in logged
    for personal in (PRIVATE, PHONE["phone_number"], "Wei", "zz:%%%", "x" * 100):
        assert personal not in logged, "logs carry update ids and kinds, not what people wrote"


async def test_blocked_customer_channel_off_team_told_no_retry_storm(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """Replies to a customer who blocked the bot: one 403, channel inactive, one notice in the topic."""
    customer = botapi.user(4402, "Zhou Min", language_code="en")
    async with butler() as live:
        await customer.send_text("Can someone call me about a strange humming from the seat frame?")
        await botapi.wait_until(lambda: len(botapi.topics(STAFF_CHAT)) == 1)
        [topic] = botapi.topics(STAFF_CHAT)
        await staff_group.wait_for_sent(2, thread_id=topic.message_thread_id)
        case = await open_case_of(live)
        assert case.assignee_id is not None
        specialist = await link_staff(live, botapi, await staff_username(live, case.assignee_id), 7402)
        await customer.wait_for_reply(1)
        # Hold the poller's view of the block back, so the first reply meets Telegram's 403.
        botapi.bot.blocked_by.add(customer.id)
        for text in ("Hello?", "We can call at 3pm", "Or tomorrow"):
            await staff_group.send_text(specialist, text, thread_id=topic.message_thread_id)
        notice = t("channel.blocked", "zh-CN")  # staff topics speak the default locale
        await botapi.wait_until(
            lambda: any(m.text == notice for m in staff_group.sent(topic.message_thread_id)), timeout=10
        )
        botapi.bot.blocked_by.discard(customer.id)
        botapi.block_bot(customer.id)  # now the my_chat_member update comes too: no second notice
        await botapi.wait_until(lambda: botapi.pending_updates() == [], timeout=10)
        async with live.rt.maker() as session:
            identity = await session.scalar(select(ChannelIdentity))
            rows = (
                await session.scalars(select(OutboxRow).where(OutboxRow.lane == f"tg:{customer.id}"))
            ).all()
    assert identity is not None and identity.active is False
    refused = [
        c
        for c in botapi.calls("sendMessage")
        if str(c.params.get("chat_id")) == str(customer.id) and c.status == 403
    ]
    assert len(refused) == 1, "one 403, then no more calls to that chat"
    assert [m.text for m in staff_group.sent(topic.message_thread_id)].count(notice) == 1
    assert {r.status for r in rows} <= {"sent", "dead"} and sum(r.attempts for r in rows) <= len(rows)
