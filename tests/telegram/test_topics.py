"""Staff topics: media both ways, notes, /invite, /transfer, replies and edits mapped across chats."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlalchemy import select

from bot.conversations.models import Case, Message
from bot.conversations.views import signature
from bot.teams.models import Membership, Staff
from bot.tg.models import TelegramTopic
from tests.botapi import BotApiServer, GroupClient, SentMessage, Topic, UserClient
from tests.botapi.media import png_bytes
from tests.live import LiveServer
from tests.telegram.conftest import STAFF_CHAT, link_staff, open_case_of, staff_username

Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]
QUESTION = "The wireless charger pad hums at night, is that a fault?"


async def handed_off(
    live: LiveServer, botapi: BotApiServer, staff_group: GroupClient, customer: UserClient, telegram_id: int
) -> tuple[Topic, UserClient, SentMessage]:
    """The customer asks; returns the topic, the linked assignee and the mirrored question."""
    await customer.send_text(QUESTION)
    mirrored = (await botapi.wait_for_sent(STAFF_CHAT, lambda m: QUESTION in (m.text or "")))[0]
    [topic] = botapi.topics(STAFF_CHAT)
    case = await open_case_of(live)
    assert case.assignee_id is not None
    specialist = await link_staff(live, botapi, await staff_username(live, case.assignee_id), telegram_id)
    return topic, specialist, mirrored


async def signed(live: LiveServer) -> str:
    """How the assignee of the newest case signs in English."""
    case = await open_case_of(live)
    async with live.rt.maker() as session:
        staff = await session.get(Staff, case.assignee_id)
    assert staff is not None
    return signature(staff.display_name, staff.role, "en")


async def test_media_both_ways_within_the_size_limit(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient, tmp_path: Path
) -> None:
    """Customer document, voice and location reach the topic; a staff photo reaches the customer."""
    customer = botapi.user(4501, "Li Lei", language_code="en")
    async with butler(media_max_bytes=2048) as live:
        topic, specialist, _ = await handed_off(live, botapi, staff_group, customer, 7501)
        thread = topic.message_thread_id
        await customer.send_document(b"%PDF-1.4 invoice", "invoice.pdf", caption="my invoice")
        await customer.send_voice(b"OggS voice", duration=2)
        await customer.send_location(31.2, 121.5)
        await botapi.wait_until(
            lambda: (
                {m.method for m in staff_group.sent(thread)} >= {"sendDocument", "sendVoice", "sendLocation"}
            )
        )
        big = await customer.send_document(b"x" * 4096, "big.bin", mime_type="application/octet-stream")
        refused = (await botapi.wait_for_sent(customer.id, lambda m: "too big" in (m.text or "")))[0]
        assert refused.text == (
            "Sorry, that file is too big (limit 2 KB). Please send a smaller one or describe it in words."
        )
        received = len(customer.received())
        await staff_group.send_photo(specialist, png_bytes(5, 5), caption="like this one", thread_id=thread)
        [*_, photo] = await customer.wait_for_reply(received + 1)
        async with live.rt.maker() as session:
            stored = (await session.scalars(select(Message).where(Message.author_kind == "customer"))).all()
    assert photo.method == "sendPhoto" and photo.text == f"{await signed(live)}\nlike this one"
    kinds = [m.attachments[0]["type"] for m in stored if m.attachments]
    assert kinds == ["document", "voice", "location"]
    document = next(m for m in stored if m.attachments and m.attachments[0]["type"] == "document")
    copy = tmp_path / "media" / document.attachments[0]["path"]
    assert copy.read_bytes() == b"%PDF-1.4 invoice" and document.body == "my invoice"
    assert all(m.body != "" or m.attachments for m in stored)
    assert len(stored) == 4  # the question and three attachments; the big file was refused
    assert big["document"]["file_size"] == 4096


async def test_notes_invite_transfer_and_unlinked_staff(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """#note and /note stay internal; /invite seats a specialist; /transfer reassigns; strangers are told."""
    customer = botapi.user(4502, "Chen Jie", language_code="zh-hans")
    async with butler() as live:
        topic, specialist, _ = await handed_off(live, botapi, staff_group, customer, 7502)
        thread = topic.message_thread_id
        before = len(customer.received())
        await staff_group.send_text(specialist, "#note 客户上周来过店", thread_id=thread)
        await staff_group.send_command(specialist, "/note", "需要回电", thread_id=thread)
        await staff_group.send_command(specialist, "/invite", "sales", thread_id=thread)
        await staff_group.send_command(specialist, "/transfer", "service2", thread_id=thread)
        stranger = botapi.user(7999, "Someone", language_code="en")
        await staff_group.send_text(stranger, "hello?", thread_id=thread)
        await botapi.wait_until(
            lambda: (
                sum(
                    "已转交" in (m.text or "") or "没有关联" in (m.text or "")
                    for m in staff_group.sent(thread)
                )
                == 2
            )
        )
        notices = [m.text or "" for m in staff_group.sent(thread)]
        async with live.rt.maker() as session:
            notes = (await session.scalars(select(Message).where(Message.internal.is_(True)))).all()
            case = await session.scalar(select(Case))
            new_assignee = await session.get(Staff, case.assignee_id) if case and case.assignee_id else None
            roles = [m.role for m in (await session.scalars(select(Membership))).all()]
    assert [n.body for n in notes] == ["客户上周来过店", "需要回电"]
    assert len(customer.received()) == before, "internal notes never reach the customer"
    assert sum("内部备注已保存" in n for n in notices) == 2
    assert any(n.startswith("➕") and "销售顾问" in n for n in notices)
    assert new_assignee is not None and new_assignee.username == "service2"
    assert roles.count("sales") == 2
    assert any("没有关联员工账号" in n for n in notices)


async def test_replies_and_edits_follow_across_chats(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """A staff reply to the mirrored question quotes the customer's original; edits update the copies."""
    customer = botapi.user(4503, "Sun Li", language_code="en")
    async with butler() as live:
        topic, specialist, mirrored = await handed_off(live, botapi, staff_group, customer, 7503)
        thread = topic.message_thread_id
        [original] = [m for m in customer.chat.messages.values() if m.get("text") == QUESTION]
        received = len(customer.received())
        staff_reply = await staff_group.send_text(specialist, "Normal, it is the coil.", reply_to=mirrored)
        [*_, answer] = await customer.wait_for_reply(received + 1)
        assert answer.message["reply_to_message"]["message_id"] == original["message_id"]
        follow_up = await customer.send_text("Thanks! And at full charge?", reply_to=answer)
        copy = (await botapi.wait_for_sent(STAFF_CHAT, lambda m: "full charge" in (m.text or "")))[0]
        assert copy.message["reply_to_message"]["message_id"] == staff_reply["message_id"]
        await customer.edit(follow_up, "Thanks! And when fully charged?")
        await botapi.wait_until(lambda: "fully charged" in (copy.text or ""))
        assert copy.text == "👤 Sun Li （已编辑）\nThanks! And when fully charged?"
        await staff_group.edit(specialist, staff_reply, "Normal: it is the charging coil.")
        await botapi.wait_until(lambda: "charging coil" in (answer.text or ""))
        async with live.rt.maker() as session:
            edited = await session.scalar(select(Message).where(Message.body.like("%charging coil%")))
    assert answer.text == f"{await signed(live)}\nNormal: it is the charging coil."
    assert edited is not None and edited.meta.get("edited_at")
    assert thread == copy.thread_id


async def test_a_deleted_topic_is_created_again_once(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """The deliverer remembers thread ids; when Telegram says the thread is gone it asks again."""
    customer = botapi.user(4504, "Zhou Min", language_code="en")
    async with butler() as live:
        await customer.send_text(QUESTION)
        await botapi.wait_for_sent(STAFF_CHAT, lambda m: QUESTION in (m.text or ""))
        await customer.send_text("Still humming tonight")  # sent with the remembered thread id
        await botapi.wait_for_sent(STAFF_CHAT, lambda m: "Still humming" in (m.text or ""))
        [old] = botapi.topics(STAFF_CHAT)
        del staff_group.chat.topics[old.message_thread_id]  # an admin deleted the topic
        await customer.send_text("Any news?")
        again = (await botapi.wait_for_sent(STAFF_CHAT, lambda m: "Any news?" in (m.text or "")))[0]
        await customer.send_text("Thanks")
        await botapi.wait_for_sent(STAFF_CHAT, lambda m: "Thanks" in (m.text or ""))
        [new] = botapi.topics(STAFF_CHAT)
        async with live.rt.maker() as session:
            stored = await session.scalar(select(TelegramTopic.thread_id))
    assert new.message_thread_id != old.message_thread_id
    assert again.thread_id == new.message_thread_id == stored
    assert [m.thread_id for m in staff_group.sent() if "Thanks" in (m.text or "")] == [stored]
