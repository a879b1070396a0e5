"""Acceptance, over polling and over the webhook: the real app, real PTB, the Bot API test server.

/start -> menu in the user's language; a question the bot cannot answer -> the customer's topic is
created in the staff group and the question mirrored; the specialist answers in the topic -> the
customer gets it signed "Name · Role"; /resolve -> rating buttons -> the press stores the rating.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy import select

from bot.conversations.models import Case
from bot.conversations.views import signature
from bot.teams.models import Staff
from tests.botapi import BotApiServer, GroupClient
from tests.botapi.ptb import ptb_bot
from tests.live import LiveServer
from tests.telegram.conftest import (  # noqa: F401 - fixtures shared with tests/telegram
    SECRET,
    STAFF_CHAT,
    botapi,
    butler,
    link_staff,
    open_case_of,
    seeded_template,
    sqlite_url,
    staff_group,
    staff_username,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"),
]
Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]
UNANSWERABLE = "我的车钥匙挂件上的小熊掉色了，能换一个粉色的吗？"


@asynccontextmanager
async def running(butler: Butler, botapi: BotApiServer, mode: str) -> AsyncIterator[LiveServer]:  # noqa: F811
    """The app in polling mode, or in webhook mode with the webhook registered at the test server."""
    async with butler(telegram_mode=mode) as live:
        if mode == "webhook":
            async with ptb_bot(botapi) as bot:
                assert await bot.set_webhook(f"{live.url}/telegram/webhook", secret_token=SECRET)
        yield live


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_question_topic_signed_reply_resolve_rating(
    butler: Butler,  # noqa: F811
    botapi: BotApiServer,  # noqa: F811
    staff_group: GroupClient,  # noqa: F811
    mode: str,
) -> None:
    """The whole loop through the real app, in both update modes."""
    customer = botapi.user(4201, "Han Meimei", language_code="zh-hans")
    async with running(butler, botapi, mode) as live:
        await customer.send_command("/start")
        [hello] = await customer.wait_for_reply(1)
        assert hello.text is not None and hello.text.startswith("您好，Han Meimei")
        assert "m:test_drive" in hello.buttons and "m:person" in hello.buttons
        await customer.send_text(UNANSWERABLE)
        await botapi.wait_until(lambda: any(UNANSWERABLE in (m.text or "") for m in staff_group.sent()))
        [topic] = botapi.topics(STAFF_CHAT)
        in_topic = staff_group.sent(topic.message_thread_id)
        assert topic.name == "Han Meimei #1"
        assert in_topic[0].text is not None and in_topic[0].text.startswith("🧾")  # the header comes first
        assert f"👤 Han Meimei\n{UNANSWERABLE}" in [m.text for m in in_topic]
        case = await open_case_of(live)
        assert case.assignee_id is not None
        specialist = await link_staff(live, botapi, await staff_username(live, case.assignee_id), 7201)
        received = len(customer.received())
        await staff_group.send_text(
            specialist, "可以的，下次保养时带给您。", thread_id=topic.message_thread_id
        )
        [*_, answer] = await customer.wait_for_reply(received + 1)
        async with live.rt.maker() as session:
            staff = await session.get(Staff, case.assignee_id)
        assert staff is not None
        assert (
            answer.text == f"{signature(staff.display_name, staff.role, 'zh-CN')}\n可以的，下次保养时带给您。"
        )
        await staff_group.send_command(specialist, "/resolve", thread_id=topic.message_thread_id)
        [rating] = await botapi.wait_for_sent(customer.id, lambda m: any("rate:" in b for b in m.buttons))
        message_id = rating.buttons[0].split(":")[1]
        assert rating.buttons == [f"b:{message_id}:rate:{n}" for n in (5, 4, 3, 2, 1)]
        press = await customer.press(rating, f"b:{message_id}:rate:4")
        await press.wait_answer()
        await botapi.wait_for_sent(customer.id, lambda m: m.text == "感谢您的评价！")
        async with live.rt.maker() as session:
            stored = await session.scalar(select(Case).where(Case.id == case.id))
    assert stored is not None and stored.csat_score == 4 and stored.status == "closed"
    assert len(botapi.topics(STAFF_CHAT)) == 1
    if mode == "webhook":
        assert {d.via for d in botapi.updates_delivered} == {"webhook"}
