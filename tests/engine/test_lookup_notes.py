"""What the sender's lookup brings besides the case: the bot's last answer and the customer's channels."""

from __future__ import annotations

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.conversations import service as conv_service
from bot.conversations.enums import AuthorKind
from bot.outbox.models import OutboxRow
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams import service as teams_service
from bot.teams.models import ChannelIdentity
from bot.tg.bridge import TelegramBridge
from knowledge.answerer import KnowledgeAnswerer
from tests.engine.test_active_case_note import statements
from tests.inbound import webchat_customer, webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD

FAQ = "How often should I service my car?"
_ANSWER_LOOKUP = "SELECT messages.created_at FROM messages"  # last_bot_answer_at's own statement
_CHANNELS_LOOKUP = "FROM channel_identities WHERE channel_identities.customer_id"  # deliver_to_customer's


async def _demo(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    assert isinstance(rt.answerer, KnowledgeAnswerer)
    await rt.answerer.reload(rt.maker)


async def test_the_last_answer_comes_with_the_sender_and_a_new_answer_drops_the_note(
    rt: Runtime, clock: FrozenClock
) -> None:
    await _demo(rt)
    ann = await webchat_says(rt, "ann", FAQ, message_id="a1")
    bob = await webchat_says(rt, "bob", FAQ, message_id="b1")
    assert ann.answered_by_bot and bob.answered_by_bot and ann.group_id and bob.group_id
    answered_at = clock.now()
    clock.advance(minutes=1)
    async with rt.transaction() as session:
        with statements(rt) as seen:
            # Looked up together, as a shared transaction's prefetch does.
            await teams_service.prefetch_identities(session, channel="webchat", external_ids=["ann", "bob"])
            for user in ("ann", "bob"):
                await webchat_customer(session, user, now=clock.now())
            assert await conv_service.last_bot_answer_at(session, group_id=ann.group_id) == answered_at
            assert not [s for s in seen if _ANSWER_LOOKUP in s], "the time came with the sender"
            # A unit before Bob's answers in his group: his note no longer holds, he reads afresh.
            await conv_service.add_message(
                session,
                group_id=bob.group_id,
                author_kind=AuthorKind.BOT,
                channel="bot",
                body="another answer",
                now=clock.now(),
            )
            assert await conv_service.last_bot_answer_at(session, group_id=bob.group_id) == clock.now()
            assert [s for s in seen if _ANSWER_LOOKUP in s], "read afresh"


async def test_a_new_group_has_no_answer_to_look_up(rt: Runtime) -> None:
    await _demo(rt)
    with statements(rt) as seen:
        first = await webchat_says(rt, "cyd", FAQ, message_id="c1")
    assert first.group_created and first.answered_by_bot
    assert not [s for s in seen if _ANSWER_LOOKUP in s or _CHANNELS_LOOKUP in s]


async def test_an_answer_reaches_every_channel_of_the_customer(rt: Runtime, clock: FrozenClock) -> None:
    rt.settings.telegram_staff_chat_id = -1009000000001
    rt.bridges["telegram"] = TelegramBridge(rt)
    await _demo(rt)
    await webchat_says(rt, "dan", FAQ, message_id="d1")
    with statements(rt) as seen:  # the customer's only channel came with the lookup
        alone = await webchat_says(rt, "dan", FAQ, message_id="d2")
    assert alone.answered_by_bot and not [s for s in seen if _CHANNELS_LOOKUP in s]
    async with rt.transaction() as session:  # Dan links a Telegram chat as well
        customer, _ = await webchat_customer(session, "dan", now=clock.now())
        session.add(
            ChannelIdentity(
                customer_id=customer.id,
                channel="telegram",
                external_id="7001",
                chat_id="7001",
                active=True,
                created_at=clock.now(),
            )
        )
    clock.advance(minutes=10)
    with statements(rt) as seen:
        both = await webchat_says(rt, "dan", FAQ, message_id="d3")
    assert both.answered_by_bot and [s for s in seen if _CHANNELS_LOOKUP in s], "two channels: looked up"
    async with rt.maker() as session:
        lanes = set(
            await session.scalars(select(OutboxRow.lane).where(OutboxRow.message_id == both.bot_message_id))
        )
    assert "tg:7001" in lanes, lanes
