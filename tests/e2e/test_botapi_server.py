"""The Bot API test server driven by the real python-telegram-bot over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from tests.botapi import SECRET_HEADER, BotApiServer
from tests.botapi.media import png_bytes
from tests.botapi.ptb import ptb_app, ptb_bot, run_polling, webhook_receiver

pytestmark = [
    pytest.mark.e2e,
    # PTB 22 warns on every RetryAfter.retry_after read about its future timedelta type.
    pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"),
]

GROUP_ID = -1001234567890


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    """A fresh server per test; any internal server error fails the test."""
    async with BotApiServer() as srv:
        yield srv
    assert srv.internal_errors == []


def seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def api(server: BotApiServer, method: str, token: str | None = None, **params: Any) -> httpx.Response:
    """Raw JSON call, for semantics PTB hides."""
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{server.url}/bot{token or server.token}/{method}", json=params)


async def test_echo_start_and_edit_over_polling(server: BotApiServer) -> None:
    """/start, echo and edited_message reach PTB handlers by getUpdates; replies carry real fields."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        assert update.message is not None and user is not None
        await update.message.reply_text(f"Welcome, {user.first_name} ({user.language_code}) {context.args}")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(update.message.text or "")

    async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.edited_message is not None
        await context.bot.send_message(update.edited_message.chat_id, f"edited: {update.edited_message.text}")

    app = ptb_app(server)
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, edited))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    user = server.user(1001, "Li Lei")
    async with run_polling(app):
        await user.send_command("/start", "vin123")
        hello = await user.send_text("你好")
        await user.wait_for_reply(2)
        await user.edit(hello, "你好!")
        sent = await user.wait_for_reply(3)
    assert [s.text for s in sent] == ["Welcome, Li Lei (zh-hans) ['vin123']", "你好", "edited: 你好!"]
    first = sent[0].message
    assert first["from"]["is_bot"] is True and first["from"]["id"] == server.bot.id
    assert first["chat"] == {"id": 1001, "type": "private", "first_name": "Li Lei"}
    assert [s.message_id for s in sent] == [3, 4, 5]  # one counter per chat: the user wrote 1 and 2
    assert len({d.update_id for d in server.updates_delivered}) == 3
    assert server.calls("deleteWebhook"), "PTB bootstraps polling with deleteWebhook"
    assert server.pending_updates() == []  # PTB's last getUpdates confirmed everything


async def test_callback_button_answer_and_edit(server: BotApiServer) -> None:
    """Pressing an inline button produces a callback_query; answer and edit are recorded."""

    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        keyboard = [
            [InlineKeyboardButton("Yes", callback_data="yes"), InlineKeyboardButton("No", callback_data="no")]
        ]
        await update.message.reply_text("Helpful?", reply_markup=InlineKeyboardMarkup(keyboard))

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Thanks!")
        await query.edit_message_text(f"You chose {query.data}")

    app = ptb_app(server)
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CallbackQueryHandler(pressed))
    user = server.user(1002, "Han Meimei")
    async with run_polling(app):
        await user.send_command("menu")
        [prompt] = await user.wait_for_reply(1)
        assert prompt.buttons == ["yes", "no"]
        with pytest.raises(ValueError, match="no button"):
            await user.press(prompt, "maybe")
        press = await user.press(prompt, "yes")
        answer = await press.wait_answer()
        await server.wait_until(lambda: prompt.text == "You chose yes")
    assert answer["text"] == "Thanks!" and answer["show_alert"] is False
    assert "reply_markup" not in prompt.message  # an edit without reply_markup drops the keyboard
    assert "edit_date" in prompt.message


async def test_photo_upload_get_file_and_download(server: BotApiServer) -> None:
    """A user's photo is downloadable through getFile; the bot's multipart uploads get file_ids."""
    image = png_bytes(2, 3)

    async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        file = await update.message.photo[-1].get_file()
        data = bytes(await file.download_as_bytearray())
        await update.message.reply_photo(data, caption=f"{len(data)} bytes")
        await update.message.reply_document(data, filename="copy.png")

    app = ptb_app(server)
    app.add_handler(MessageHandler(filters.PHOTO, photo))
    user = server.user(1003, "Zhang Wei")
    async with run_polling(app):
        await user.send_photo(image, caption="my scratch")
        photo_msg, doc_msg = await user.wait_for_reply(2)
        sent_photo = photo_msg.message["photo"][-1]
        assert (sent_photo["width"], sent_photo["height"]) == (2, 3)
        assert photo_msg.text == f"{len(image)} bytes"
        assert doc_msg.message["document"]["file_name"] == "copy.png"
        reused = await app.bot.send_photo(1003, sent_photo["file_id"])  # file_id reuse, no upload
        assert reused.photo[-1].file_id == sent_photo["file_id"]
        downloaded = await (
            await app.bot.get_file(doc_msg.message["document"]["file_id"])
        ).download_as_bytearray()
        assert bytes(downloaded) == image
        with pytest.raises(BadRequest, match="Invalid file_id"):
            await app.bot.get_file("nope")
        with pytest.raises(BadRequest, match="Image_process_failed"):
            await app.bot.send_photo(1003, b"not an image")
    assert [
        c.params["photo"]["size"]
        for c in server.calls("sendPhoto")
        if isinstance(c.params.get("photo"), dict)
    ]


async def test_user_media_kinds_reach_handlers(server: BotApiServer) -> None:
    """Documents, voice, location and contact from a user arrive as the right message types."""
    seen: list[str] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.message
        assert msg is not None
        kind = next(k for k in ("document", "voice", "location", "contact") if getattr(msg, k))
        seen.append(kind)
        await msg.reply_text(kind)

    app = ptb_app(server)
    app.add_handler(
        MessageHandler(filters.Document.ALL | filters.VOICE | filters.LOCATION | filters.CONTACT, record)
    )
    user = server.user(1004, "Liu Yang")
    async with run_polling(app):
        await user.send_document(b"%PDF-1.4 invoice", "invoice.pdf")
        await user.send_voice(b"OggS voice", duration=3)
        await user.send_location(31.23, 121.47)
        await user.share_contact("+8613800000000")
        await user.wait_for_reply(4)
    assert seen == ["document", "voice", "location", "contact"]


async def test_forum_topic_per_customer_and_relay(server: BotApiServer) -> None:
    """The butler flow: check rights, create a topic, mirror into it, relay the staff reply back."""
    group = server.supergroup(GROUP_ID, "Butler staff", bot_rights={"can_manage_topics": True})
    staff = server.user(2001, "Wang")
    group.add_member(staff, "administrator", {"can_manage_topics": True})

    async def customer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, bot = update.message, context.bot
        assert msg is not None and msg.from_user is not None
        chat = await bot.get_chat(GROUP_ID)
        me = await bot.get_chat_member(GROUP_ID, bot.id)
        assert chat.is_forum and me.status == "administrator" and getattr(me, "can_manage_topics", False)
        topic = await bot.create_forum_topic(GROUP_ID, f"{msg.from_user.first_name} #{msg.from_user.id}")
        context.bot_data[topic.message_thread_id] = msg.chat_id
        await bot.send_message(GROUP_ID, msg.text or "", message_thread_id=topic.message_thread_id)

    async def staff_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.message
        assert msg is not None and msg.from_user is not None
        customer_chat = context.bot_data[msg.message_thread_id]
        await context.bot.send_message(customer_chat, f"{msg.from_user.first_name}: {msg.text}")

    app = ptb_app(server)
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, customer))
    app.add_handler(
        MessageHandler(filters.Chat(GROUP_ID) & filters.IS_TOPIC_MESSAGE & filters.TEXT, staff_reply)
    )
    user = server.user(1005, "Chen Jie")
    async with run_polling(app):
        await user.send_text("My brakes squeak")
        [mirrored] = await group.wait_for_sent(1)
        [topic] = server.topics(GROUP_ID)
        assert topic.name == "Chen Jie #1005"
        assert mirrored.thread_id == topic.message_thread_id
        assert mirrored.message["is_topic_message"] is True
        assert mirrored.message["chat"]["is_forum"] is True
        reply = await group.send_text(staff, "Come in tomorrow", thread_id=topic.message_thread_id)
        [relayed] = await user.wait_for_reply(1)
    assert relayed.text == "Wang: Come in tomorrow"
    # Telegram marks plain topic messages as replies to the topic's creation service message.
    assert "forum_topic_created" in reply["reply_to_message"]
    assert server.sent(GROUP_ID, thread_id=topic.message_thread_id) == [mirrored]


async def test_create_topic_needs_forum_and_rights(server: BotApiServer) -> None:
    """createForumTopic is refused without can_manage_topics or outside forums; unknown threads are 400."""
    server.supergroup(
        -1001, "No rights", bot_rights={"can_manage_topics": False, "can_delete_messages": True}
    )
    server.supergroup(-1002, "Plain member", bot_rights=None)
    server.supergroup(-1003, "Not a forum", is_forum=False, bot_rights={"can_manage_topics": True})
    ok = server.supergroup(-1004, "Fine", bot_rights={"can_manage_topics": True})
    async with ptb_bot(server) as bot:
        for chat_id in (-1001, -1002):
            with pytest.raises(BadRequest, match="Not enough rights to create a topic"):
                await bot.create_forum_topic(chat_id, "x")
        with pytest.raises(BadRequest, match="The chat is not a forum"):
            await bot.create_forum_topic(-1003, "x")
        member = await bot.get_chat_member(-1001, bot.id)
        assert member.status == "administrator" and member.can_manage_topics is False  # type: ignore[attr-defined]
        admins = await bot.get_chat_administrators(-1004)
        assert [a.user.id for a in admins] == [bot.id]
        with pytest.raises(BadRequest, match="Message thread not found"):
            await bot.send_message(-1004, "hi", message_thread_id=999)
        topic = await bot.create_forum_topic(-1004, "Topic")
        assert topic.message_thread_id in {t.message_thread_id for t in ok.topics()}


async def test_webhook_redelivers_until_2xx(server: BotApiServer) -> None:
    """A 500 from the receiver makes the server retry; the update is processed exactly once."""
    secrets: list[str | None] = []
    processed: list[int] = []
    app = ptb_app(server, polling=False)

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        processed.append(update.update_id)
        await update.message.reply_text(f"echo {update.message.text}")

    async def receive(request: web.Request) -> web.Response:
        secrets.append(request.headers.get(SECRET_HEADER))
        if len(secrets) == 1:
            return web.Response(status=500)  # e.g. the database was down: Telegram must try again
        await app.update_queue.put(Update.de_json(await request.json(), app.bot))
        return web.Response()

    app.add_handler(MessageHandler(filters.TEXT, echo))
    user = server.user(1006, "Zhao Min")
    async with webhook_receiver(receive) as url, app:
        await app.start()
        assert await app.bot.set_webhook(url, secret_token="s3cret_Token-1")
        conflict = await api(server, "getUpdates")
        assert conflict.status_code == 409 and "webhook is active" in conflict.json()["description"]
        await user.send_text("ping")
        [reply] = await user.wait_for_reply(1)
        info = await app.bot.get_webhook_info()
        await app.stop()
    update_id = processed[0]
    assert reply.text == "echo ping" and processed == [update_id]
    assert [a.status for a in server.delivery_attempts(update_id)] == [500, 200]
    assert secrets == ["s3cret_Token-1", "s3cret_Token-1"]
    assert info.pending_update_count == 0 and "500" in (info.last_error_message or "")
    assert [d.via for d in server.updates_delivered] == ["webhook"]


async def test_private_chat_rate_limit_real_clock() -> None:
    """With limits on, the second fast message to one private chat gets 429 with retry_after."""
    async with BotApiServer(rate_limits=True) as server:
        server.user(1007, "Sun Li", started=True)
        first = await api(server, "sendMessage", chat_id=1007, text="one")
        second = await api(server, "sendMessage", chat_id=1007, text="two")
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }


async def test_rate_limits_and_honour_tracking() -> None:
    """Private, group and overall limits on an injected clock; early retries count as not honoured."""
    now = [1000.0]
    async with BotApiServer(rate_limits=True, clock=lambda: now[0]) as server:
        for uid in range(3000, 3032):
            server.user(uid, "U", started=True)
        server.supergroup(GROUP_ID, "Staff", is_forum=False, bot_rights={})
        async with ptb_bot(server) as bot:
            await bot.send_message(3000, "a")
            with pytest.raises(RetryAfter) as exc:
                await bot.send_message(3000, "b")
            assert seconds(exc.value.retry_after) == 1
            with pytest.raises(RetryAfter):
                await bot.send_message(3000, "too early")  # ignores retry_after
            now[0] += 1.0
            await bot.send_message(3000, "c")
            assert server.rate_limit_stats == {
                "issued": 2,
                "honoured": 1,
                "not_honoured": 1,
                "pending": 0,
                "early_retries": 1,
            }
            now[0] += 1.0
            for i in range(20):
                await bot.send_message(GROUP_ID, f"g{i}")
                now[0] += 0.1
            with pytest.raises(RetryAfter) as exc:
                await bot.send_message(GROUP_ID, "21st")
            assert 55 <= seconds(exc.value.retry_after) <= 60
            now[0] += 5.0
            for uid in range(3001, 3031):
                await bot.send_message(uid, "broadcast")
            with pytest.raises(RetryAfter):
                await bot.send_message(3031, "31st in one second")
    assert [e.scope for e in server.rate_limit_events] == ["private", "private", "group", "overall"]


async def test_blocked_and_unstarted_users_get_403(server: BotApiServer) -> None:
    """Blocked bot: 403 and a my_chat_member update; a user who never wrote cannot be messaged."""
    user = server.user(1008, "Qian Hao", started=True)
    server.user(1009, "Never Wrote")
    async with ptb_bot(server) as bot:
        await bot.send_message(1008, "hello")
        user.block_bot()
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(1008, "are you there?")
        with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
            await bot.send_message(1009, "hi")
        [update] = await bot.get_updates()
    assert update.my_chat_member is not None and update.my_chat_member.new_chat_member.status == "kicked"
    with pytest.raises(RuntimeError):
        await user.send_text("blocked users must unblock first")


async def test_get_updates_long_poll_semantics(server: BotApiServer) -> None:
    """Timeout returns [] after waiting; a new update ends the wait early; offset confirms; 409 on overlap."""
    started = time.monotonic()
    empty = await api(server, "getUpdates", timeout=1)
    assert empty.json() == {"ok": True, "result": []} and 0.9 <= time.monotonic() - started < 2.5

    user = server.user(1010, "Zhou Xun")
    poll = asyncio.create_task(api(server, "getUpdates", timeout=5))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await user.send_text("wake up")
    [update] = (await poll).json()["result"]
    assert time.monotonic() - started < 2.0 and update["message"]["text"] == "wake up"  # not the 5 s timeout

    for i in range(3):
        server.push_raw_update(
            {"message": {"message_id": 100 + i, "date": 0, "chat": {"id": 1, "type": "private"}}}
        )
    assert len((await api(server, "getUpdates", limit=2)).json()["result"]) == 2
    assert len((await api(server, "getUpdates", limit=0)).json()["result"]) == 1  # clamped into 1..100
    last = (await api(server, "getUpdates", offset=-1)).json()["result"]
    assert len(last) == 1 and len(server.pending_updates()) == 1  # negative offset forgets older ones
    assert (await api(server, "getUpdates", offset=last[0]["update_id"] + 1)).json()["result"] == []
    assert server.pending_updates() == []

    older = asyncio.create_task(api(server, "getUpdates", timeout=5))
    await asyncio.sleep(0.1)
    newer = asyncio.create_task(api(server, "getUpdates", timeout=0))
    assert (await older).status_code == 409 and (await newer).status_code == 200

    await api(server, "getUpdates", allowed_updates=["callback_query"])
    await user.send_text("filtered out")
    assert server.pending_updates() == []


async def test_tokens_methods_and_body_encodings(server: BotApiServer) -> None:
    """401 for unknown tokens, 404 for unknown methods; query, form and JSON bodies all work."""
    assert (await api(server, "getMe", token="123:wrong")).json() == {
        "ok": False,
        "error_code": 401,
        "description": "Unauthorized",
    }
    assert (await api(server, "fooBar")).status_code == 404
    with pytest.raises(InvalidToken):
        async with ptb_bot(server, token="123:wrong"):
            pass
    server.user(1011, "Wu Di", started=True)
    async with httpx.AsyncClient() as client:
        base = f"{server.url}/bot{server.token}"
        assert (await client.get(f"{base}/getme")).json()["result"]["username"] == "butler_test_bot"
        form = await client.post(
            f"{base}/sendMessage",
            data={"chat_id": "1011", "text": "form", "reply_markup": '{"remove_keyboard": true}'},
        )
        query = await client.get(f"{base}/sendMessage", params={"chat_id": 1011, "text": "query"})
        upload = await client.post(
            f"{base}/sendVoice",
            data={"chat_id": "1011", "duration": "2"},
            files={"voice": ("v.ogg", b"OggS...", "audio/ogg")},
        )
    assert form.json()["result"]["text"] == "form" and query.json()["result"]["text"] == "query"
    assert upload.json()["result"]["voice"]["duration"] == 2
    assert server.sent(1011)[0].reply_markup == {"remove_keyboard": True}


async def test_message_rules_follow_telegram(server: BotApiServer) -> None:
    """Length, markup, reply, edit, copy/forward, delete, commands: answers as Telegram gives them."""
    server.user(1012, "Ma Li", started=True)
    too_long = await api(server, "sendMessage", chat_id=1012, text="x" * 4097)
    assert too_long.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is too long",
    }
    assert (await api(server, "sendMessage", chat_id=1012, text="x" * 4096)).status_code == 200
    async with ptb_bot(server) as bot:
        html = await bot.send_message(
            1012, "<b>Hi</b> &lt;3 <a href='https://x.cn'>link</a>", parse_mode="HTML"
        )
        assert html.text == "Hi <3 link" and [e.type for e in html.entities] == ["bold", "text_link"]
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(1012, "a <b>b", parse_mode="HTML")
        with pytest.raises(BadRequest, match="reserved"):
            await bot.send_message(1012, "Price 1.5", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await bot.send_message(
                1012,
                "x",
                reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]]),
            )
        with pytest.raises(BadRequest, match="Message to be replied not found"):
            await bot.send_message(1012, "re", reply_to_message_id=9999)
        quiet = await bot.send_message(1012, "re", reply_to_message_id=9999, allow_sending_without_reply=True)
        reply = await bot.send_message(1012, "re", reply_to_message_id=html.message_id)
        assert quiet.reply_to_message is None and reply.reply_to_message.message_id == html.message_id  # type: ignore[union-attr]
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text("re", 1012, reply.message_id)
        copied = await bot.copy_message(1012, 1012, html.message_id)
        forwarded = await bot.forward_message(1012, 1012, html.message_id)
        assert copied.message_id == forwarded.message_id - 1
        assert forwarded.forward_origin is not None and forwarded.forward_origin.type == "user"
        assert await bot.delete_message(1012, copied.message_id)
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await bot.delete_message(1012, copied.message_id)
        assert await bot.send_chat_action(1012, "typing")
        location = await bot.send_location(1012, 31.2, 121.5)
        assert location.location is not None and location.location.latitude == 31.2
        assert await bot.set_my_commands([("start", "Start"), ("help", "Help")], language_code="zh")
        assert [c.command for c in await bot.get_my_commands(language_code="zh")] == ["start", "help"]
        assert await bot.get_my_commands() == ()
    assert [s.deleted for s in server.sent(1012, include_deleted=True)].count(True) == 1


async def test_fault_injection(server: BotApiServer) -> None:
    """fail_next gives 5xx once; hang_next times the client out, with or without the side effect."""
    server.user(1013, "Lin Feng", started=True)
    server.faults.fail_next("sendMessage", status=502)
    async with ptb_bot(server, read_timeout=0.3) as bot:
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(1013, "lost")
        await bot.send_message(1013, "works again")
        server.faults.hang_next("sendMessage", 1.0)
        with pytest.raises(TimedOut):
            await bot.send_message(1013, "never sent")
        server.faults.hang_next("sendMessage", 1.0, execute=True)
        with pytest.raises(TimedOut):
            await bot.send_message(1013, "sent but answer lost")
    await asyncio.sleep(0.8)  # let the abandoned hang finish; the client is gone so nothing runs
    assert [s.text for s in server.sent(1013)] == ["works again", "sent but answer lost"]


async def test_raw_updates_for_fuzzing(server: BotApiServer) -> None:
    """Unknown update types and unknown fields pass through to PTB without breaking polling."""
    seen: list[Update] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update)

    app = ptb_app(server)
    app.add_handler(TypeHandler(Update, record))
    async with run_polling(app):
        server.push_raw_update({"future_update_kind": {"x": 1}})
        server.push_raw_update(
            {
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 5, "type": "private"},
                    "text": "hi",
                    "brand_new_field": True,
                }
            }
        )
        await server.wait_until(lambda: len(seen) == 2)
    assert seen[0].effective_message is None
    assert seen[1].message is not None and seen[1].message.api_kwargs == {"brand_new_field": True}
