"""The inbound flow: a repeat question soon after a bot answer, an open case, a resolved one."""

from __future__ import annotations

from bot.clock import FrozenClock
from bot.conversations import flows
from bot.conversations import service as conv_service
from bot.conversations.enums import CaseStatus
from bot.conversations.models import Case, Message
from bot.runtime import Runtime
from bot.seed import seed_demo
from knowledge.answerer import KnowledgeAnswerer
from tests.inbound import webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD

FAQ = "How often should I service my car?"


async def _offered_person(rt: Runtime, bot_message_id: int | None) -> bool:
    async with rt.maker() as session:
        answer = await session.get(Message, bot_message_id)
        assert answer is not None
        return bool(answer.meta["offered_person"])


async def test_repeat_questions_active_case_and_resolution(rt: Runtime, clock: FrozenClock) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    assert isinstance(rt.answerer, KnowledgeAnswerer)
    await rt.answerer.reload(rt.maker)
    first = await webchat_says(rt, "c", FAQ, message_id="m1")
    assert first.answered_by_bot and not await _offered_person(rt, first.bot_message_id)
    clock.advance(minutes=2)  # asked again soon after the bot's answer: a person is offered
    again = await webchat_says(rt, "c", "How long is the car warranty?", message_id="m2")
    assert again.answered_by_bot and await _offered_person(rt, again.bot_message_id)
    clock.advance(minutes=10)  # long after the last answer: no offer
    later = await webchat_says(rt, "c", FAQ, message_id="m3")
    assert later.answered_by_bot and not await _offered_person(rt, later.bot_message_id)

    opened = await webchat_says(rt, "c", "My brakes make a grinding noise, please call me", message_id="m4")
    assert opened.case_id is not None and not opened.answered_by_bot
    joined = await webchat_says(rt, "c", FAQ, message_id="m5")  # the open case takes it, not the bot
    assert joined.case_id == opened.case_id and not joined.answered_by_bot

    async with rt.transaction() as session:
        case = await session.get(Case, opened.case_id)
        assert case is not None
        await flows.move_case(session, rt, case=case, to=CaseStatus.RESOLVED, now=clock.now(), reason="done")
    clock.advance(minutes=10)
    after = await webchat_says(rt, "c", FAQ, message_id="m6")  # no active case: the bot answers again
    assert after.answered_by_bot and after.case_id is None


async def test_a_customer_message_is_found_by_its_channel_id(rt: Runtime) -> None:
    """The channel's message id is stored with the message (one statement on PostgreSQL)."""
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    said = await webchat_says(rt, "d", "My brakes make a grinding noise, please call me", message_id="w-17")
    async with rt.maker() as session:
        found = await conv_service.message_by_ref(session, channel="webchat", chat_id="d", external_id="w-17")
        assert found is not None and found.id == said.message_id and found.body.startswith("My brakes")
        missing = await conv_service.message_by_ref(
            session, channel="webchat", chat_id="d", external_id="w-18"
        )
        assert missing is None
